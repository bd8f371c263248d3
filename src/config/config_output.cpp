// The resolved config as YAML (what a run stores) and the canonical JSON of
// the fields that decide training results (its identity).
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <type_traits>

#include "config/config_keys.h"
#include "config/model_spec.h"
#include "sisa/config.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "util/fs.h"
#include "util/sha256.h"

namespace sisa {
namespace {

void emit_option(YAML::Emitter& out, const ModelOption& v) {
  std::visit(
      [&out](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, double>) {
          out << YAML::Precision(17) << x;
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<std::string>>) {
          out << YAML::Flow << x;
        } else {
          out << x;
        }
      },
      v);
}

}  // namespace

std::string Config::to_yaml() const {
  const auto& table = config_keys();
  YAML::Emitter out;
  out << YAML::BeginMap;
  emit_section(out, table, "", *this);
  for (const char* section : {"data", "sisa", "model", "train", "loo"}) {
    if (section == std::string("loo") && !loo.student) continue;  // older runs' config.yaml had no loo
    out << YAML::Key << section << YAML::Value << YAML::BeginMap;
    if (section == std::string("model")) {
      out << YAML::Key << "type" << YAML::Value << model.type;
      if (const ModelSpec* spec = find_model_spec(model.type)) {
        for (const auto& o : spec->options) {
          out << YAML::Key << o.key << YAML::Value;
          emit_option(out, model.option(o.key));
        }
      }
    } else {
      emit_section(out, table, section, *this);
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string Config::training_json() const {
  // nlohmann::json sorts object keys, which makes the dump canonical. The
  // key table says which keys enter it (config_keys.cpp); beside them, what
  // no key holds: the placement's version and whether samples have groups.
  nlohmann::json j;
  identity_fields(config_keys(), *this, &j);
  j["placement_version"] = kPlacementVersion;
  j["data"]["grouped"] = data.grouped();
  // The family's identity keys. For mlp and cnn these are all five, as
  // before families existed, so the hash of every older run is unchanged.
  j["model"] = {{"type", model.type}};
  for (const auto& o : model_spec(model).options) {
    if (!o.identity || (o.omit_default && model.option(o.key) == o.default_value)) continue;
    if (o.artifact) {
      // The file's content is the identity, wherever it lies.
      const std::string& path = model.get<std::string>(o.key);
      j["model"][o.key] = path.empty() ? nlohmann::json(nullptr) : artifact_identity(path, "model." + o.key);
      continue;
    }
    std::visit([&](const auto& v) { j["model"][o.key] = v; }, model.option(o.key));
  }
  return j.dump();
}

std::string Config::training_hash() const { return sha256_hex(training_json()); }

}  // namespace sisa
