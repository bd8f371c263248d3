// The resolved config as YAML (what a run stores) and the canonical JSON of
// the fields that decide training results (its identity).
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "fs.h"
#include "model_spec.h"
#include "sha256.h"
#include "sisa/config.h"
#include "sisa/errors.h"
#include "sisa/placement.h"

namespace sisa {
namespace {

// The SHA-256 of a shared artifact; DataError naming the key and the file.
std::string file_sha256(const std::string& path, const std::string& key) {
  check_input_file(path, {key, kMaxArtifactBytes, ExitCode::kData});
  return sha256_file(path);
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
  out << YAML::Key << "weight_column" << YAML::Value << data.weight_column;
  out << YAML::Key << "weights_dataset" << YAML::Value << data.weights_dataset;
  out << YAML::Key << "weights_file" << YAML::Value << data.weights_file;
  out << YAML::Key << "text_column" << YAML::Value << data.text_column;
  out << YAML::Key << "tokenizer" << YAML::Value << data.tokenizer;
  out << YAML::Key << "max_tokens" << YAML::Value << data.max_tokens;
  out << YAML::EndMap;
  out << YAML::Key << "sisa" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "shards" << YAML::Value << sisa.shards;
  out << YAML::Key << "slices" << YAML::Value << sisa.slices;
  out << YAML::Key << "placement" << YAML::Value << sisa.placement;
  out << YAML::Key << "heavy_weight" << YAML::Value << YAML::Precision(17) << sisa.heavy_weight;
  out << YAML::Key << "heavy_shards" << YAML::Value << sisa.heavy_shards;
  out << YAML::Key << "heavy_slices" << YAML::Value << sisa.heavy_slices;
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
  if (loo.student) {
    out << YAML::Key << "loo" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "student" << YAML::Value << true;
    out << YAML::Key << "epochs" << YAML::Value << loo.epochs;
    out << YAML::Key << "steps" << YAML::Value << loo.steps;
    out << YAML::Key << "lr" << YAML::Value << YAML::Precision(17) << loo.lr;
    out << YAML::Key << "batch_size" << YAML::Value << loo.batch_size;
    if (loo.temperature != 1.0) out << YAML::Key << "temperature" << YAML::Value << YAML::Precision(17) << loo.temperature;
    out << YAML::Key << "retain_batch" << YAML::Value << loo.retain_batch;
    if (loo.target_cache_mb != 1024) out << YAML::Key << "target_cache_mb" << YAML::Value << loo.target_cache_mb;
    out << YAML::EndMap;
  }
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
  // Text runs add the tokenizer's content and the truncation length; other
  // runs keep the identity they had before text existed.
  if (!data.text_column.empty()) {
    j["data"]["max_tokens"] = data.max_tokens;
    j["data"]["tokenizer"] = {{"sha256", file_sha256(data.tokenizer, "data.tokenizer")}};
  }
  j["sisa"] = {{"shards", sisa.shards}, {"slices", sisa.slices}};
  // Only weighted placement adds keys: uniform runs keep the identity they
  // had before placement could be weighted. The weights are data, like the labels.
  if (sisa.placement == "weighted") {
    j["sisa"]["placement"] = sisa.placement;
    j["sisa"]["heavy_weight"] = sisa.heavy_weight;
    j["sisa"]["heavy_shards"] = sisa.heavy_shards;
    j["sisa"]["heavy_slices"] = sisa.heavy_slices;
  }
  // The family's identity keys. For mlp and cnn these are all five, as
  // before families existed, so the hash of every older run is unchanged.
  j["model"] = {{"type", model.type}};
  for (const auto& o : model_spec(model).options) {
    if (!o.identity || (o.omit_default && model.option(o.key) == o.default_value)) continue;
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
  // Only runs with a LOO student add keys (older runs keep their identity).
  if (loo.student) {
    j["loo"] = {{"epochs", loo.epochs}, {"steps", loo.steps}, {"lr", loo.lr},
                {"batch_size", loo.batch_size}, {"retain_batch", loo.retain_batch}};
    if (loo.temperature != 1.0) j["loo"]["temperature"] = loo.temperature;  // added later: absent keeps the hash
    if (loo.target_cache_mb != 1024) j["loo"]["target_cache_mb"] = loo.target_cache_mb;  // likewise
  }
  return j.dump();
}

std::string Config::training_hash() const { return sha256_hex(training_json()); }

}  // namespace sisa
