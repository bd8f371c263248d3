#include "sisa/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <type_traits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "model_spec.h"
#include "sha256.h"
#include "sisa/errors.h"
#include "sisa/placement.h"

namespace fs = std::filesystem;

namespace sisa {
namespace {

// Reads typed fields out of a YAML map and collects every problem, so a user
// sees all bad keys at once. Keys are reported by their dotted path.
class FieldReader {
 public:
  explicit FieldReader(std::vector<std::string>* errors) : errors_(errors) {}

  // Records unknown keys under `prefix` and returns false if `node` is not a map.
  bool check_map(const YAML::Node& node, const std::string& prefix,
                 const std::set<std::string>& allowed) {
    if (!node) return false;
    if (!node.IsMap()) {
      errors_->push_back((prefix.empty() ? std::string("top level") : prefix) +
                         ": expected a mapping");
      return false;
    }
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      if (!allowed.count(key)) {
        errors_->push_back(join(prefix, key) + ": unknown key");
      }
    }
    return true;
  }

  // True if the key was there and read.
  template <typename T>
  bool get(const YAML::Node& map, const std::string& prefix, const char* key, T* out,
           const char* expected) {
    const YAML::Node node = map[key];
    if (!node) return false;
    try {
      *out = node.as<T>();
      return true;
    } catch (const YAML::Exception&) {
      std::ostringstream shown;
      shown << node;
      errors_->push_back(join(prefix, key) + ": expected " + expected + ", got '" +
                         shown.str() + "'");
      return false;
    }
  }

  static std::string join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }

 private:
  std::vector<std::string>* errors_;
};

void apply_override(YAML::Node root, const std::string& assignment, const std::string& origin) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(origin + ": override '" + assignment + "' is not key=value");
  }
  const std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError("override '" + assignment + "': " + e.msg);
  }
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = node[parts[i]];
    if (child && !child.IsMap()) {
      throw ConfigError("override '" + assignment + "': '" + parts[i] + "' is not a section");
    }
    node.reset(child);
  }
  node[parts.back()] = value;
}

std::string resolve_path(const std::string& path, const std::string& base_dir) {
  if (path.empty()) return path;
  fs::path p(path);
  if (p.is_relative() && !base_dir.empty()) p = fs::path(base_dir) / p;
  return p.lexically_normal().string();
}

// Reads one option as the type of its declared default.
void read_option(const YAML::Node& node, const ModelOptionSpec& spec, FieldReader& r, ModelOption* out) {
  std::visit(
      [&](const auto& def) {
        using T = std::decay_t<decltype(def)>;
        T value = def;
        const char* expected = std::is_same_v<T, bool>           ? "true or false"
                               : std::is_same_v<T, int64_t>      ? "an integer"
                               : std::is_same_v<T, double>       ? "a number"
                               : std::is_same_v<T, std::string>  ? "a string"
                                                                 : "a list of integers";
        if (r.get(node, "model", spec.key.c_str(), &value, expected)) *out = value;
      },
      spec.default_value);
}

// The model block: its type names the family, whose spec says which keys exist.
void read_model(const YAML::Node& m, FieldReader& r, ModelConfig* model) {
  if (!m) return;
  if (m.IsMap()) r.get(m, "model", "type", &model->type, "a string");
  const ModelSpec* spec = find_model_spec(model->type);
  std::set<std::string> allowed = {"type"};
  if (spec) {
    for (const auto& o : spec->options) allowed.insert(o.key);
  }
  if (!r.check_map(m, "model", allowed) || !spec) return;  // validate() names an unknown type
  for (const auto& o : spec->options) {
    if (!m[o.key]) continue;
    ModelOption value = o.default_value;
    read_option(m, o, r, &value);
    model->options[o.key] = value;
  }
}

// The SHA-256 of a shared artifact; DataError naming the key and the file.
std::string file_sha256(const std::string& path, const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(key + ": cannot read shared artifact '" + path + "'");
  Sha256 h;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) h.update(reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(in.gcount()));
  return h.hex();
}

void emit_option(YAML::Emitter& out, const ModelOption& v) {
  std::visit(
      [&out](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, double>) {
          out << YAML::Precision(17) << x;
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          out << YAML::Flow << x;
        } else {
          out << x;
        }
      },
      v);
}

}  // namespace

std::vector<int64_t> stage_epochs(int64_t epochs, int64_t slices) {
  std::vector<int64_t> e(static_cast<size_t>(std::max<int64_t>(slices, 0)) + 1, 0);
  for (int64_t r = 1; r <= slices; ++r) {
    e[r] = (2 * epochs * r) / (slices + 1) - (2 * epochs * (r - 1)) / (slices + 1);
  }
  return e;
}

Config Config::parse(const std::string& yaml_text, const std::string& origin,
                     const std::string& base_dir, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": malformed YAML at line " + std::to_string(e.mark.line + 1) +
                      ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const auto& o : overrides) apply_override(root, o, origin);

  std::vector<std::string> errors;
  FieldReader r(&errors);
  Config c;
  if (r.check_map(root, "", {"seed", "data", "sisa", "model", "train"})) {
    r.get(root, "", "seed", &c.seed, "a non-negative integer");
    const YAML::Node d = root["data"];
    if (r.check_map(d, "data",
                    {"format", "train", "train_labels", "test", "test_labels", "num_classes",
                     "input_shape", "scale", "offset", "label_column", "id_column",
                     "group_column", "inputs_dataset", "labels_dataset", "ids_dataset",
                     "groups_dataset", "lengths_dataset"})) {
      r.get(d, "data", "format", &c.data.format, "a string");
      r.get(d, "data", "train", &c.data.train, "a path");
      r.get(d, "data", "train_labels", &c.data.train_labels, "a path");
      r.get(d, "data", "test", &c.data.test, "a path");
      r.get(d, "data", "test_labels", &c.data.test_labels, "a path");
      r.get(d, "data", "num_classes", &c.data.num_classes, "an integer");
      r.get(d, "data", "input_shape", &c.data.input_shape, "a list of integers");
      r.get(d, "data", "scale", &c.data.scale, "a number");
      r.get(d, "data", "offset", &c.data.offset, "a number");
      r.get(d, "data", "label_column", &c.data.label_column, "a string");
      r.get(d, "data", "id_column", &c.data.id_column, "a string");
      r.get(d, "data", "group_column", &c.data.group_column, "a string");
      r.get(d, "data", "inputs_dataset", &c.data.inputs_dataset, "a string");
      r.get(d, "data", "labels_dataset", &c.data.labels_dataset, "a string");
      r.get(d, "data", "ids_dataset", &c.data.ids_dataset, "a string");
      r.get(d, "data", "groups_dataset", &c.data.groups_dataset, "a string");
      r.get(d, "data", "lengths_dataset", &c.data.lengths_dataset, "a string");
    }
    const YAML::Node s = root["sisa"];
    if (r.check_map(s, "sisa", {"shards", "slices"})) {
      r.get(s, "sisa", "shards", &c.sisa.shards, "an integer");
      r.get(s, "sisa", "slices", &c.sisa.slices, "an integer");
    }
    read_model(root["model"], r, &c.model);
    const YAML::Node t = root["train"];
    if (r.check_map(t, "train",
                    {"epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                     "beta1", "beta2", "eps", "threads"})) {
      r.get(t, "train", "epochs", &c.train.epochs, "an integer");
      r.get(t, "train", "batch_size", &c.train.batch_size, "an integer");
      r.get(t, "train", "optimizer", &c.train.optimizer, "a string");
      r.get(t, "train", "lr", &c.train.lr, "a number");
      r.get(t, "train", "momentum", &c.train.momentum, "a number");
      r.get(t, "train", "weight_decay", &c.train.weight_decay, "a number");
      r.get(t, "train", "beta1", &c.train.beta1, "a number");
      r.get(t, "train", "beta2", &c.train.beta2, "a number");
      r.get(t, "train", "eps", &c.train.eps, "a number");
      r.get(t, "train", "threads", &c.train.threads, "an integer");
    }
  }
  if (const ModelSpec* spec = find_model_spec(c.model.type)) {
    for (const auto& o : spec->options) {
      const auto it = c.model.options.find(o.key);
      if (!o.artifact || it == c.model.options.end()) continue;
      if (auto* path = std::get_if<std::string>(&it->second)) *path = resolve_path(*path, base_dir);
    }
  }
  c.data.train = resolve_path(c.data.train, base_dir);
  c.data.train_labels = resolve_path(c.data.train_labels, base_dir);
  c.data.test = resolve_path(c.data.test, base_dir);
  c.data.test_labels = resolve_path(c.data.test_labels, base_dir);

  if (errors.empty()) errors = c.validate();
  if (!errors.empty()) {
    std::string msg = origin + ": invalid config:";
    for (const auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
  return c;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read config file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return parse(ss.str(), path, base, overrides);
}

namespace {

// The family's declared checks, then its cross-section checks.
std::vector<std::string> validate_model(const Config& c) {
  const ModelSpec* spec = find_model_spec(c.model.type);
  if (!spec) {
    std::string known;
    for (const auto& n : model_family_names()) known += (known.empty() ? "" : ", ") + n;
    return {"model.type: unknown model family '" + c.model.type + "' (registered: " + known + ")"};
  }
  std::vector<std::string> e;
  for (const auto& kv : c.model.options) {
    const bool declared = std::any_of(spec->options.begin(), spec->options.end(),
                                      [&kv](const ModelOptionSpec& o) { return o.key == kv.first; });
    if (!declared) e.push_back("model." + kv.first + ": not a key of model family '" + c.model.type + "'");
  }
  if (!e.empty()) return e;
  for (const auto& o : spec->options) {
    const ModelOption& v = c.model.option(o.key);
    if (v.index() != o.default_value.index()) {
      e.push_back("model." + o.key + ": has the wrong type");
    } else if (o.check) {
      const std::string why = o.check(v);
      if (!why.empty()) e.push_back("model." + o.key + ": " + why);
    }
  }
  if (e.empty() && spec->check) {
    for (const auto& m : spec->check(c)) e.push_back(m);
  }
  if (spec->input == InputKind::kTokens && c.data.format != "hdf5") {
    e.push_back("data.format: model family '" + c.model.type + "' reads token ids, which only hdf5 data holds");
  }
  return e;
}

}  // namespace

std::vector<std::string> Config::validate() const {
  std::vector<std::string> e;
  auto check = [&e](bool ok, const std::string& msg) {
    if (!ok) e.push_back(msg);
  };
  check(data.format == "idx" || data.format == "csv" || data.format == "hdf5",
        "data.format: must be idx, csv or hdf5, got '" + data.format + "'");
  check(!data.train.empty(), "data.train: required");
  if (data.format == "idx") {
    check(!data.train_labels.empty(), "data.train_labels: required for format idx");
    check(data.test.empty() || !data.test_labels.empty(),
          "data.test_labels: required for format idx when data.test is set");
  }
  check(data.num_classes >= 2, "data.num_classes: must be >= 2 (it is never inferred from data)");
  check(!data.input_shape.empty(), "data.input_shape: required, e.g. [784] or [1, 28, 28]");
  for (int64_t d : data.input_shape) check(d > 0, "data.input_shape: every entry must be > 0");
  check(sisa.shards >= 1 && sisa.shards <= 4096, "sisa.shards: must be in 1..4096, got " +
                                                      std::to_string(sisa.shards));
  check(sisa.slices >= 1 && sisa.slices <= 1024, "sisa.slices: must be in 1..1024, got " +
                                                      std::to_string(sisa.slices));
  for (const auto& m : validate_model(*this)) e.push_back(m);
  check(train.batch_size >= 1, "train.batch_size: must be >= 1");
  check(train.optimizer == "adam" || train.optimizer == "sgd",
        "train.optimizer: must be adam or sgd, got '" + train.optimizer + "'");
  check(train.lr > 0.0, "train.lr: must be > 0");
  check(train.momentum >= 0.0 && train.momentum < 1.0, "train.momentum: must be in [0, 1)");
  check(train.weight_decay >= 0.0, "train.weight_decay: must be >= 0");
  check(train.beta1 >= 0.0 && train.beta1 < 1.0, "train.beta1: must be in [0, 1)");
  check(train.beta2 >= 0.0 && train.beta2 < 1.0, "train.beta2: must be in [0, 1)");
  check(train.eps > 0.0, "train.eps: must be > 0");
  check(train.threads >= 1 && train.threads <= 256, "train.threads: must be in 1..256");
  if (sisa.slices >= 1 && sisa.slices <= 1024) {
    const auto ep = stage_epochs(train.epochs, sisa.slices);
    for (int64_t r = 1; r <= sisa.slices; ++r) {
      if (ep[r] <= 0) {
        e.push_back("train.epochs: " + std::to_string(train.epochs) + " epochs give stage " +
                    std::to_string(r) + " of " + std::to_string(sisa.slices) +
                    " zero epochs; need at least " + std::to_string((sisa.slices + 2) / 2));
        break;
      }
    }
  }
  return e;
}

std::string Config::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "seed" << YAML::Value << seed;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "format" << YAML::Value << data.format;
  out << YAML::Key << "train" << YAML::Value << data.train;
  out << YAML::Key << "train_labels" << YAML::Value << data.train_labels;
  out << YAML::Key << "test" << YAML::Value << data.test;
  out << YAML::Key << "test_labels" << YAML::Value << data.test_labels;
  out << YAML::Key << "num_classes" << YAML::Value << data.num_classes;
  out << YAML::Key << "input_shape" << YAML::Value << YAML::Flow << data.input_shape;
  out << YAML::Key << "scale" << YAML::Value << YAML::Precision(17) << data.scale;
  out << YAML::Key << "offset" << YAML::Value << YAML::Precision(17) << data.offset;
  out << YAML::Key << "label_column" << YAML::Value << data.label_column;
  out << YAML::Key << "id_column" << YAML::Value << data.id_column;
  out << YAML::Key << "group_column" << YAML::Value << data.group_column;
  out << YAML::Key << "inputs_dataset" << YAML::Value << data.inputs_dataset;
  out << YAML::Key << "labels_dataset" << YAML::Value << data.labels_dataset;
  out << YAML::Key << "ids_dataset" << YAML::Value << data.ids_dataset;
  out << YAML::Key << "groups_dataset" << YAML::Value << data.groups_dataset;
  out << YAML::Key << "lengths_dataset" << YAML::Value << data.lengths_dataset;
  out << YAML::EndMap;
  out << YAML::Key << "sisa" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "shards" << YAML::Value << sisa.shards;
  out << YAML::Key << "slices" << YAML::Value << sisa.slices;
  out << YAML::EndMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << model.type;
  if (const ModelSpec* spec = find_model_spec(model.type)) {
    for (const auto& o : spec->options) {
      out << YAML::Key << o.key << YAML::Value;
      emit_option(out, model.option(o.key));
    }
  }
  out << YAML::EndMap;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "epochs" << YAML::Value << train.epochs;
  out << YAML::Key << "batch_size" << YAML::Value << train.batch_size;
  out << YAML::Key << "optimizer" << YAML::Value << train.optimizer;
  out << YAML::Key << "lr" << YAML::Value << YAML::Precision(17) << train.lr;
  out << YAML::Key << "momentum" << YAML::Value << YAML::Precision(17) << train.momentum;
  out << YAML::Key << "weight_decay" << YAML::Value << YAML::Precision(17) << train.weight_decay;
  out << YAML::Key << "beta1" << YAML::Value << YAML::Precision(17) << train.beta1;
  out << YAML::Key << "beta2" << YAML::Value << YAML::Precision(17) << train.beta2;
  out << YAML::Key << "eps" << YAML::Value << YAML::Precision(17) << train.eps;
  out << YAML::Key << "threads" << YAML::Value << train.threads;
  out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string Config::training_json() const {
  // nlohmann::json sorts object keys, which makes the dump canonical.
  nlohmann::json j;
  j["seed"] = seed;
  j["placement_version"] = kPlacementVersion;
  j["data"] = {{"num_classes", data.num_classes},
               {"input_shape", data.input_shape},
               {"scale", data.scale},
               {"offset", data.offset},
               {"grouped", data.grouped()}};
  j["sisa"] = {{"shards", sisa.shards}, {"slices", sisa.slices}};
  // The family's identity keys. For mlp and cnn these are all five, as
  // before families existed, so the hash of every older run is unchanged.
  j["model"] = {{"type", model.type}};
  for (const auto& o : model_spec(model).options) {
    if (!o.identity) continue;
    if (o.artifact) {
      // The file's content is the identity, wherever it lies.
      const std::string& path = model.get<std::string>(o.key);
      j["model"][o.key] = path.empty() ? nlohmann::json(nullptr) : nlohmann::json{{"sha256", file_sha256(path, "model." + o.key)}};
      continue;
    }
    std::visit([&](const auto& v) { j["model"][o.key] = v; }, model.option(o.key));
  }
  j["train"] = {{"epochs", train.epochs},   {"batch_size", train.batch_size},
                {"optimizer", train.optimizer}, {"lr", train.lr},
                {"momentum", train.momentum}, {"weight_decay", train.weight_decay},
                {"beta1", train.beta1},     {"beta2", train.beta2},
                {"eps", train.eps},         {"threads", train.threads}};
  return j.dump();
}

std::string Config::training_hash() const { return sha256_hex(training_json()); }

}  // namespace sisa
