#include "config/model_spec.h"

#include <map>
#include <mutex>
#include <set>

#include "sisa/errors.h"

namespace sisa {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, ModelSpec> specs;  // node-based: references stay valid
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: read during static destruction too
  return *r;
}

}  // namespace

void register_model_spec(ModelSpec spec) {
  if (spec.name.empty()) throw ConfigError("a model family needs a name");
  std::set<std::string> keys;
  for (const auto& o : spec.options) {
    if (o.key.empty() || o.key == "type" || !keys.insert(o.key).second) {
      throw ConfigError("model family '" + spec.name + "' declares key '" + o.key + "' twice or reserved");
    }
    if (o.artifact && !std::holds_alternative<std::string>(o.default_value)) {
      throw ConfigError("model family '" + spec.name + "': artifact key '" + o.key + "' must be a string (a path)");
    }
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const std::string name = spec.name;
  if (!r.specs.emplace(name, std::move(spec)).second) {
    throw ConfigError("model family '" + name + "' is registered twice");
  }
}

const ModelSpec* find_model_spec(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const auto it = r.specs.find(name);
  return it == r.specs.end() ? nullptr : &it->second;
}

std::vector<std::string> model_family_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& kv : r.specs) names.push_back(kv.first);
  return names;
}

const ModelSpec& registered_spec(const std::string& name) {
  ModelConfig m;
  m.type = name;
  return model_spec(m);
}

const ModelSpec& model_spec(const ModelConfig& model) {
  if (const ModelSpec* s = find_model_spec(model.type)) return *s;
  std::string known;
  for (const auto& n : model_family_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("model.type: unknown model family '" + model.type + "' (registered: " + known + ")");
}

const ModelOption& ModelConfig::option(const std::string& key) const {
  const auto given = options.find(key);
  for (const auto& o : model_spec(*this).options) {
    if (o.key == key) return given != options.end() ? given->second : o.default_value;
  }
  throw ConfigError("model." + key + ": not a key of model family '" + type + "'");
}

InputKind model_input(const Config& config) {
  const ModelSpec& spec = model_spec(config.model);
  return spec.input_of ? spec.input_of(config) : spec.input;
}

void check_model_inputs(const Dataset& rows, const Config& config, const std::string& origin) {
  const ModelSpec& spec = model_spec(config.model);
  const InputKind input = model_input(config);
  if (rows.input != input) {
    const auto kind = [](InputKind k) { return k == InputKind::kTokens ? "token ids" : "float features"; };
    throw DataError("'" + origin + "' holds " + kind(rows.input) + " but model family '" + spec.name + "' reads " +
                    kind(input));
  }
  if (!rows.has_tokens() || !spec.vocab_size) return;
  const int64_t vocab = spec.vocab_size(config);
  for (size_t i = 0; i < rows.tokens.size(); ++i) {
    if (rows.tokens[i] >= vocab) {
      throw DataError("'" + origin + "': id " + std::to_string(rows.ids[i / static_cast<size_t>(rows.width)]) +
                      " has token id " + std::to_string(rows.tokens[i]) + ", outside the vocabulary [0, " +
                      std::to_string(vocab) + ")");
    }
  }
}

void ModelConfig::wrong_type(const std::string& key) const {
  throw ConfigError("model." + key + ": read with a type other than family '" + type + "' declares");
}

}  // namespace sisa
