// One declaration per config key (issue #24). A key of a section names the
// field it fills, what YAML must hold there, its check, whether it is a path,
// how it enters the run's identity and config.yaml, and its line in the
// docs. Parsing, validation, YAML output, the identity JSON and the key
// tables of docs/config.md are all read off the table, so a key is spelled
// once. Config's table is in config_keys.cpp, the pretraining config's in
// pretrain_config.cpp; `model.*` keys are the families' (model_spec.h).
#pragma once

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "config/yaml_fields.h"

namespace sisa {

// The field a key fills.
using FieldRef = std::variant<bool*, int64_t*, uint64_t*, double*, std::string*, std::vector<int64_t>*>;

template <typename Root>
struct Field {
  const char* section;  // "" for a top-level key
  const char* key;
  FieldRef (*ref)(Root&);
  const char* expected;  // what YAML must hold: "an integer", "a path", ...
  // Empty when the value is acceptable, else why not ("must be >= 1"); the
  // message is prefixed with "section.key: ".
  std::string (*check)(const Root&);
  const char* doc;  // docs/config.md's "meaning" column
  // Resolved against the config file's directory when relative.
  bool path = false;
  // Whether the key is in the run's identity, and as what (null: always, as
  // its value). A key that came after runs existed is left out while it
  // holds its default, so those runs keep their hash.
  bool (*in_identity)(const Root&) = nullptr;
  nlohmann::json (*identity_value)(const Root&) = nullptr;
  // Whether config.yaml writes it (null: always).
  bool (*in_yaml)(const Root&) = nullptr;
  // How docs/config.md shows the default (null: the default itself).
  const char* default_doc = nullptr;

  std::string name() const { return FieldReader::join(section, key); }
  FieldRef get(const Root& r) const { return ref(const_cast<Root&>(r)); }
};

// For in_identity: the key is never part of the identity.
template <typename Root>
bool never(const Root&) {
  return false;
}

// The keys of `section` in table order.
template <typename Root>
std::set<std::string> keys_of(const std::vector<Field<Root>>& table, const std::string& section) {
  std::set<std::string> keys;
  for (const auto& f : table) {
    if (section == f.section) keys.insert(f.key);
  }
  return keys;
}

// The keys a config's top level may hold: its top-level keys and its sections.
template <typename Root>
std::set<std::string> top_level_keys(const std::vector<Field<Root>>& table) {
  std::set<std::string> keys;
  for (const auto& f : table) keys.insert(*f.section ? f.section : f.key);
  return keys;
}

// ConfigError "<origin>: invalid <what>:" listing every error, if any.
void throw_if_invalid(const std::string& origin, const std::string& what, const std::vector<std::string>& errors);

// Reads every key of `section` present under `node` into `out`.
template <typename Root>
void read_section(const YAML::Node& node, const std::vector<Field<Root>>& table, const std::string& section,
                  FieldReader& r, Root* out) {
  for (const auto& f : table) {
    if (section != f.section) continue;
    std::visit([&](auto* field) { r.get(node, section, f.key, field, f.expected); }, f.ref(*out));
  }
}

// Every failed per-key check, "section.key: reason".
template <typename Root>
std::vector<std::string> check_fields(const std::vector<Field<Root>>& table, const Root& c) {
  std::vector<std::string> errors;
  for (const auto& f : table) {
    if (!f.check) continue;
    const std::string why = f.check(c);
    if (!why.empty()) errors.push_back(f.name() + ": " + why);
  }
  return errors;
}

// Resolves every path key against `base_dir`.
template <typename Root>
void resolve_paths(const std::vector<Field<Root>>& table, const std::string& base_dir, Root* c) {
  for (const auto& f : table) {
    if (f.path) {
      std::string* p = std::get<std::string*>(f.ref(*c));
      *p = resolve_path(*p, base_dir);
    }
  }
}

// The identity's entries: {section: {key: value}} (top-level keys at the top).
template <typename Root>
void identity_fields(const std::vector<Field<Root>>& table, const Root& c, nlohmann::json* out) {
  for (const auto& f : table) {
    if (f.in_identity && !f.in_identity(c)) continue;
    nlohmann::json& at = *f.section ? (*out)[f.section] : *out;
    at[f.key] =
        f.identity_value ? f.identity_value(c) : std::visit([](auto* v) { return nlohmann::json(*v); }, f.get(c));
  }
}

// Writes the keys of `section` that config.yaml holds, in table order.
template <typename Root>
void emit_section(YAML::Emitter& out, const std::vector<Field<Root>>& table, const std::string& section,
                  const Root& c) {
  for (const auto& f : table) {
    if (section != f.section || (f.in_yaml && !f.in_yaml(c))) continue;
    out << YAML::Key << f.key << YAML::Value;
    std::visit(
        [&out](auto* v) {
          using T = std::decay_t<decltype(*v)>;
          if constexpr (std::is_same_v<T, double>) {
            out << YAML::Precision(17) << *v;
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
            out << YAML::Flow << *v;
          } else {
            out << *v;
          }
        },
        f.get(c));
  }
}

// "| `section.key` | default | doc |" rows, the defaults read off `defaults`.
template <typename Root>
std::string markdown_rows(const std::vector<Field<Root>>& table, const Root& defaults) {
  std::string rows;
  for (const auto& f : table) {
    std::string value;
    if (f.default_doc) {
      value = f.default_doc;
    } else {
      std::visit(
          [&value](auto* v) {
            using T = std::decay_t<decltype(*v)>;
            if constexpr (std::is_same_v<T, bool>) {
              value = *v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::string>) {
              value = v->empty() ? "-" : *v;
            } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
              value = nlohmann::json(*v).dump();
            } else {
              value = nlohmann::json(*v).dump();
            }
          },
          f.get(defaults));
    }
    rows += "| `" + f.name() + "` | " + value + " | " + f.doc + " |\n";
  }
  return rows;
}

}  // namespace sisa
