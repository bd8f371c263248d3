// Config::parse and load: YAML in, typed fields out, every problem collected.
#include "sisa/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <type_traits>

#include "config/config_keys.h"
#include "config/model_spec.h"
#include "config/yaml_fields.h"
#include "sisa/errors.h"
#include "util/fs.h"

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

void throw_if_invalid(const std::string& origin, const std::string& what, const std::vector<std::string>& errors) {
  if (errors.empty()) return;
  std::string msg = origin + ": invalid " + what + ":";
  for (const auto& e : errors) msg += "\n  " + e;
  throw ConfigError(msg);
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
        const char* expected = std::is_same_v<T, bool>          ? "true or false"
                               : std::is_same_v<T, int64_t>     ? "an integer"
                               : std::is_same_v<T, double>      ? "a number"
                               : std::is_same_v<T, std::string> ? "a string"
                               : std::is_same_v<T, std::vector<int64_t>> ? "a list of integers"
                                                                : "a list of strings";
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

Config Config::parse(const std::string& yaml_text, const std::string& origin, const std::string& base_dir,
                     const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": malformed YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                      std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const auto& o : overrides) apply_override(root, o, origin);

  std::vector<std::string> errors;
  FieldReader r(&errors);
  Config c;
  const auto& table = config_keys();
  auto top = top_level_keys(table);
  top.insert("model");
  if (r.check_map(root, "", top)) {
    read_section(root, table, "", r, &c);
    for (const char* section : {"data", "sisa", "model", "train", "loo"}) {
      if (section == std::string("model")) {
        read_model(root["model"], r, &c.model);
      } else if (r.check_map(root[section], section, keys_of(table, section))) {
        read_section(root[section], table, section, r, &c);
      }
    }
  }
  const ModelSpec* spec = find_model_spec(c.model.type);
  if (spec) {
    c.data.unlabeled = spec->language_model;
    for (const auto& o : spec->options) {
      const auto it = c.model.options.find(o.key);
      if (!o.artifact || it == c.model.options.end()) continue;
      if (auto* path = std::get_if<std::string>(&it->second)) *path = resolve_path(*path, base_dir);
    }
  }
  resolve_paths(table, base_dir, &c);

  if (errors.empty()) errors = c.validate();
  throw_if_invalid(origin, "config", errors);
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
