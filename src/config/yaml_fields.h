// Typed reading of YAML configs, shared by Config (sisa/config.h) and the
// pretraining config (sisa/pretrain.h): every problem is collected, so a user
// sees all bad keys at once, each named by its dotted path.
#pragma once

#include <yaml-cpp/yaml.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace sisa {

// Reads typed fields out of a YAML map and collects every problem, so a user
// sees all bad keys at once. Keys are reported by their dotted path.
class FieldReader {
 public:
  explicit FieldReader(std::vector<std::string>* errors) : errors_(errors) {}

  // Records unknown keys under `prefix` and returns false if `node` is not a map.
  bool check_map(const YAML::Node& node, const std::string& prefix, const std::set<std::string>& allowed) {
    if (!node) return false;
    if (!node.IsMap()) {
      errors_->push_back((prefix.empty() ? std::string("top level") : prefix) + ": expected a mapping");
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
  bool get(const YAML::Node& map, const std::string& prefix, const char* key, T* out, const char* expected) {
    const YAML::Node node = map[key];
    if (!node) return false;
    try {
      *out = node.as<T>();
      return true;
    } catch (const YAML::Exception&) {
      std::ostringstream shown;
      shown << node;
      errors_->push_back(join(prefix, key) + ": expected " + expected + ", got '" + shown.str() + "'");
      return false;
    }
  }

  static std::string join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }

 private:
  std::vector<std::string>* errors_;
};

// Applies "a.b.c=value" (the value parsed as YAML) to `root`; ConfigError naming `origin`.
void apply_override(YAML::Node root, const std::string& assignment, const std::string& origin);
// `path` against `base_dir` when relative (empty stays empty), normalized.
std::string resolve_path(const std::string& path, const std::string& base_dir);

}  // namespace sisa
