// PretrainConfig::parse and load (the torch-free half of `sisa pretrain`).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/fields.h"
#include "config/yaml_fields.h"
#include "sisa/errors.h"
#include "sisa/pretrain.h"
#include "util/fs.h"

namespace sisa {

namespace {

using F = Field<PretrainConfig>;

std::string ok_if(bool ok, const char* why) { return ok ? std::string() : why; }

// Every key of a pretraining config, declared once (config/fields.h). The
// identity (to_json, stored in the backbone) is every key but the corpus path.
const std::vector<F>& pretrain_keys() {
  // clang-format off
  static const std::vector<F> table = {
    {"", "seed", [](PretrainConfig& c) -> FieldRef { return &c.seed; }, "a non-negative integer", nullptr,
     "every draw of pretraining derives from it"},
    {"", "corpus", [](PretrainConfig& c) -> FieldRef { return &c.corpus; }, "a path",
     [](const PretrainConfig& c) { return ok_if(!c.corpus.empty(), "required (a text file, one sentence per line)"); },
     "UTF-8 text, one sentence per line", true, never<PretrainConfig>},
    {"tokenizer", "vocab_size", [](PretrainConfig& c) -> FieldRef { return &c.vocab_size; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.vocab_size >= 16 && c.vocab_size <= 1000000, "must be in 16..1000000"); },
     "pieces of the tokenizer trained first"},
    {"encoder", "dim", [](PretrainConfig& c) -> FieldRef { return &c.dim; }, "an integer",
     [](const PretrainConfig& c) {
       return ok_if(c.heads >= 1 && c.dim >= 1 && c.dim % c.heads == 0, "must be a positive multiple of encoder.heads");
     },
     "model width"},
    {"encoder", "layers", [](PretrainConfig& c) -> FieldRef { return &c.layers; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.layers >= 1, "must be >= 1"); }, "transformer blocks"},
    {"encoder", "heads", [](PretrainConfig& c) -> FieldRef { return &c.heads; }, "an integer", nullptr,
     "attention heads"},
    {"encoder", "ff", [](PretrainConfig& c) -> FieldRef { return &c.ff; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.ff >= 1, "must be >= 1"); }, "feed-forward width"},
    {"encoder", "max_len", [](PretrainConfig& c) -> FieldRef { return &c.max_len; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.max_len >= 8 && c.max_len <= 4096, "must be in 8..4096"); },
     "the longest input in tokens (longer lines are cut)"},
    {"train", "steps", [](PretrainConfig& c) -> FieldRef { return &c.steps; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.steps >= 1, "must be >= 1"); }, "optimizer steps"},
    {"train", "batch_size", [](PretrainConfig& c) -> FieldRef { return &c.batch_size; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.batch_size >= 1, "must be >= 1"); }, "lines per step"},
    {"train", "warmup", [](PretrainConfig& c) -> FieldRef { return &c.warmup; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.warmup >= 0, "must be >= 0"); },
     "linear warm-up steps, then linear decay to 0"},
    {"train", "lr", [](PretrainConfig& c) -> FieldRef { return &c.lr; }, "a number",
     [](const PretrainConfig& c) { return ok_if(c.lr > 0.0, "must be > 0"); }, "peak AdamW learning rate"},
    {"train", "weight_decay", [](PretrainConfig& c) -> FieldRef { return &c.weight_decay; }, "a number",
     [](const PretrainConfig& c) { return ok_if(c.weight_decay >= 0.0, "must be >= 0"); }, "AdamW's"},
    {"train", "mask_prob", [](PretrainConfig& c) -> FieldRef { return &c.mask_prob; }, "a number",
     [](const PretrainConfig& c) { return ok_if(c.mask_prob > 0.0 && c.mask_prob < 1.0, "must be in (0, 1)"); },
     "share of tokens predicted (80% <mask>, 10% random, 10% kept)"},
    {"train", "dropout", [](PretrainConfig& c) -> FieldRef { return &c.dropout; }, "a number",
     [](const PretrainConfig& c) { return ok_if(c.dropout >= 0.0 && c.dropout < 1.0, "must be in [0, 1)"); },
     "in [0, 1)"},
    {"train", "threads", [](PretrainConfig& c) -> FieldRef { return &c.threads; }, "an integer",
     [](const PretrainConfig& c) { return ok_if(c.threads >= 1, "must be >= 1"); },
     "changes the bits, like train.threads"},
  };
  // clang-format on
  return table;
}

}  // namespace

PretrainConfig PretrainConfig::parse(const std::string& yaml, const std::string& origin, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": not valid YAML: " + e.msg);
  }
  PretrainConfig c;
  std::vector<std::string> errors;
  FieldReader r(&errors);
  const auto& table = pretrain_keys();
  if (r.check_map(root, "", top_level_keys(table))) {
    read_section(root, table, "", r, &c);
    for (const char* section : {"tokenizer", "encoder", "train"}) {
      if (r.check_map(root[section], section, keys_of(table, section)))
        read_section(root[section], table, section, r, &c);
    }
  }
  resolve_paths(table, base_dir, &c);
  if (errors.empty()) errors = check_fields(table, c);
  throw_if_invalid(origin, "pretrain config", errors);
  return c;
}

PretrainConfig PretrainConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  const auto bytes = read_input_file(path, {"config file", kMaxConfigBytes, ExitCode::kUsage});
  YAML::Node root;
  try {
    root = YAML::Load(std::string(bytes.begin(), bytes.end()));
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ": not valid YAML: " + e.msg);
  }
  for (const auto& o : overrides) apply_override(root, o, path);
  std::stringstream out;
  out << root;
  const auto dir = std::filesystem::absolute(path).parent_path().string();
  return parse(out.str(), path, dir);
}

nlohmann::json PretrainConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  identity_fields(pretrain_keys(), *this, &j);
  return j;
}

std::string tokenizer_path_for(const std::string& out) {
  std::string stem = out;
  for (const char* ext : {".h5", ".hdf5"}) {
    const std::string e = ext;
    if (stem.size() > e.size() && stem.compare(stem.size() - e.size(), e.size(), e) == 0) {
      stem.resize(stem.size() - e.size());
      break;
    }
  }
  return stem + ".tokenizer.model";
}

}  // namespace sisa
