#include "sisa/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

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

  template <typename T>
  void get(const YAML::Node& map, const std::string& prefix, const char* key, T* out,
           const char* expected) {
    const YAML::Node node = map[key];
    if (!node) return;
    try {
      *out = node.as<T>();
    } catch (const YAML::Exception&) {
      std::ostringstream shown;
      shown << node;
      errors_->push_back(join(prefix, key) + ": expected " + expected + ", got '" +
                         shown.str() + "'");
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
                     "groups_dataset"})) {
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
    }
    const YAML::Node s = root["sisa"];
    if (r.check_map(s, "sisa", {"shards", "slices"})) {
      r.get(s, "sisa", "shards", &c.sisa.shards, "an integer");
      r.get(s, "sisa", "slices", &c.sisa.slices, "an integer");
    }
    const YAML::Node m = root["model"];
    if (r.check_map(m, "model",
                    {"type", "hidden", "activation", "dropout", "channels", "batch_norm"})) {
      r.get(m, "model", "type", &c.model.type, "a string");
      r.get(m, "model", "hidden", &c.model.hidden, "a list of integers");
      r.get(m, "model", "activation", &c.model.activation, "a string");
      r.get(m, "model", "dropout", &c.model.dropout, "a number");
      r.get(m, "model", "channels", &c.model.channels, "a list of integers");
      r.get(m, "model", "batch_norm", &c.model.batch_norm, "true or false");
    }
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
  check(model.type == "mlp" || model.type == "cnn",
        "model.type: must be mlp or cnn, got '" + model.type + "'");
  for (int64_t h : model.hidden) check(h > 0, "model.hidden: every width must be > 0");
  for (int64_t h : model.channels) check(h > 0, "model.channels: every entry must be > 0");
  check(model.activation == "relu" || model.activation == "tanh",
        "model.activation: must be relu or tanh, got '" + model.activation + "'");
  check(model.dropout >= 0.0 && model.dropout < 1.0, "model.dropout: must be in [0, 1)");
  if (model.type == "cnn") {
    check(data.input_shape.size() == 3, "data.input_shape: a cnn needs [channels, height, width]");
    check(!model.channels.empty(), "model.channels: a cnn needs at least one conv block");
  }
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
  out << YAML::EndMap;
  out << YAML::Key << "sisa" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "shards" << YAML::Value << sisa.shards;
  out << YAML::Key << "slices" << YAML::Value << sisa.slices;
  out << YAML::EndMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << model.type;
  out << YAML::Key << "hidden" << YAML::Value << YAML::Flow << model.hidden;
  out << YAML::Key << "activation" << YAML::Value << model.activation;
  out << YAML::Key << "dropout" << YAML::Value << YAML::Precision(17) << model.dropout;
  out << YAML::Key << "channels" << YAML::Value << YAML::Flow << model.channels;
  out << YAML::Key << "batch_norm" << YAML::Value << model.batch_norm;
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
  j["model"] = {{"type", model.type},         {"hidden", model.hidden},
                {"activation", model.activation}, {"dropout", model.dropout},
                {"channels", model.channels}, {"batch_norm", model.batch_norm}};
  j["train"] = {{"epochs", train.epochs},   {"batch_size", train.batch_size},
                {"optimizer", train.optimizer}, {"lr", train.lr},
                {"momentum", train.momentum}, {"weight_decay", train.weight_decay},
                {"beta1", train.beta1},     {"beta2", train.beta2},
                {"eps", train.eps},         {"threads", train.threads}};
  return j.dump();
}

std::string Config::training_hash() const { return sha256_hex(training_json()); }

}  // namespace sisa
