// Config::parse and load: YAML in, typed fields out, every problem collected.
#include "sisa/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <type_traits>

#include "fs.h"
#include "model_spec.h"
#include "sisa/errors.h"
#include "yaml_fields.h"

namespace fs = std::filesystem;

namespace sisa {

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
  // Absolute, so the config's YAML means the same file to a process that
  // parses it against another base (a shard job given a run's config).
  if (p.is_relative() && !base_dir.empty()) p = fs::absolute(fs::path(base_dir) / p);
  return p.lexically_normal().string();
}

namespace {

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

}  // namespace

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
  if (r.check_map(root, "", {"seed", "data", "sisa", "model", "train", "loo"})) {
    r.get(root, "", "seed", &c.seed, "a non-negative integer");
    const YAML::Node d = root["data"];
    if (r.check_map(d, "data",
                    {"format", "train", "train_labels", "test", "test_labels", "num_classes",
                     "input_shape", "scale", "offset", "label_column", "id_column",
                     "group_column", "inputs_dataset", "labels_dataset", "ids_dataset",
                     "groups_dataset", "lengths_dataset", "weight_column", "weights_dataset",
                     "weights_file", "text_column", "tokenizer", "max_tokens"})) {
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
      r.get(d, "data", "weight_column", &c.data.weight_column, "a string");
      r.get(d, "data", "weights_dataset", &c.data.weights_dataset, "a string");
      r.get(d, "data", "weights_file", &c.data.weights_file, "a path");
      r.get(d, "data", "text_column", &c.data.text_column, "a string");
      r.get(d, "data", "tokenizer", &c.data.tokenizer, "a path");
      r.get(d, "data", "max_tokens", &c.data.max_tokens, "an integer");
    }
    const YAML::Node s = root["sisa"];
    if (r.check_map(s, "sisa", {"shards", "slices", "placement", "heavy_weight", "heavy_shards", "heavy_slices"})) {
      r.get(s, "sisa", "shards", &c.sisa.shards, "an integer");
      r.get(s, "sisa", "slices", &c.sisa.slices, "an integer");
      r.get(s, "sisa", "placement", &c.sisa.placement, "a string");
      r.get(s, "sisa", "heavy_weight", &c.sisa.heavy_weight, "a number");
      r.get(s, "sisa", "heavy_shards", &c.sisa.heavy_shards, "an integer");
      r.get(s, "sisa", "heavy_slices", &c.sisa.heavy_slices, "an integer");
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
    const YAML::Node l = root["loo"];
    if (r.check_map(l, "loo", {"student", "epochs", "steps", "lr", "batch_size", "temperature", "retain_batch",
                                      "target_cache_mb"})) {
      r.get(l, "loo", "student", &c.loo.student, "true or false");
      r.get(l, "loo", "epochs", &c.loo.epochs, "an integer");
      r.get(l, "loo", "steps", &c.loo.steps, "an integer");
      r.get(l, "loo", "lr", &c.loo.lr, "a number");
      r.get(l, "loo", "batch_size", &c.loo.batch_size, "an integer");
      r.get(l, "loo", "temperature", &c.loo.temperature, "a number");
      r.get(l, "loo", "retain_batch", &c.loo.retain_batch, "an integer");
      r.get(l, "loo", "target_cache_mb", &c.loo.target_cache_mb, "an integer");
    }
  }
  if (const ModelSpec* spec = find_model_spec(c.model.type)) c.data.unlabeled = spec->language_model;
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
  c.data.weights_file = resolve_path(c.data.weights_file, base_dir);
  c.data.tokenizer = resolve_path(c.data.tokenizer, base_dir);

  if (errors.empty()) errors = c.validate();
  if (!errors.empty()) {
    std::string msg = origin + ": invalid config:";
    for (const auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
  return c;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  const auto bytes = read_input_file(path, {"config file", kMaxConfigBytes, ExitCode::kUsage});
  const std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return parse(std::string(bytes.begin(), bytes.end()), path, base, overrides);
}

Placement Config::placement() const {
  Placement p;
  p.seed = seed;
  p.shards = sisa.shards;
  p.slices = sisa.slices;
  if (sisa.placement == "weighted") {
    p.heavy_shards = sisa.heavy_shards;
    p.heavy_slices = sisa.heavy_slices;
    p.heavy_weight = sisa.heavy_weight;
  }
  return p;
}

}  // namespace sisa
