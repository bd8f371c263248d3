// PretrainConfig::parse and load (the torch-free half of `sisa pretrain`).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fs.h"
#include "sisa/errors.h"
#include "sisa/pretrain.h"
#include "yaml_fields.h"

namespace sisa {

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
  if (r.check_map(root, "", {"seed", "corpus", "tokenizer", "encoder", "train"})) {
    r.get(root, "", "seed", &c.seed, "a non-negative integer");
    r.get(root, "", "corpus", &c.corpus, "a path");
    if (r.check_map(root["tokenizer"], "tokenizer", {"vocab_size"})) {
      r.get(root["tokenizer"], "tokenizer", "vocab_size", &c.vocab_size, "an integer");
    }
    const YAML::Node e = root["encoder"];
    if (r.check_map(e, "encoder", {"dim", "layers", "heads", "ff", "max_len"})) {
      r.get(e, "encoder", "dim", &c.dim, "an integer");
      r.get(e, "encoder", "layers", &c.layers, "an integer");
      r.get(e, "encoder", "heads", &c.heads, "an integer");
      r.get(e, "encoder", "ff", &c.ff, "an integer");
      r.get(e, "encoder", "max_len", &c.max_len, "an integer");
    }
    const YAML::Node t = root["train"];
    if (r.check_map(t, "train", {"steps", "batch_size", "warmup", "lr", "weight_decay", "mask_prob", "dropout",
                                 "threads"})) {
      r.get(t, "train", "steps", &c.steps, "an integer");
      r.get(t, "train", "batch_size", &c.batch_size, "an integer");
      r.get(t, "train", "warmup", &c.warmup, "an integer");
      r.get(t, "train", "lr", &c.lr, "a number");
      r.get(t, "train", "weight_decay", &c.weight_decay, "a number");
      r.get(t, "train", "mask_prob", &c.mask_prob, "a number");
      r.get(t, "train", "dropout", &c.dropout, "a number");
      r.get(t, "train", "threads", &c.threads, "an integer");
    }
  }
  c.corpus = resolve_path(c.corpus, base_dir);
  auto check = [&errors](bool ok, const char* what) {
    if (!ok) errors.push_back(what);
  };
  if (errors.empty()) {
    check(!c.corpus.empty(), "corpus: required (a text file, one sentence per line)");
    check(c.vocab_size >= 16 && c.vocab_size <= 1000000, "tokenizer.vocab_size: must be in 16..1000000");
    check(c.layers >= 1, "encoder.layers: must be >= 1");
    check(c.heads >= 1 && c.dim >= 1 && c.dim % c.heads == 0, "encoder.dim: must be a positive multiple of encoder.heads");
    check(c.ff >= 1, "encoder.ff: must be >= 1");
    check(c.max_len >= 8 && c.max_len <= 4096, "encoder.max_len: must be in 8..4096");
    check(c.steps >= 1, "train.steps: must be >= 1");
    check(c.batch_size >= 1, "train.batch_size: must be >= 1");
    check(c.warmup >= 0, "train.warmup: must be >= 0");
    check(c.lr > 0.0, "train.lr: must be > 0");
    check(c.weight_decay >= 0.0, "train.weight_decay: must be >= 0");
    check(c.mask_prob > 0.0 && c.mask_prob < 1.0, "train.mask_prob: must be in (0, 1)");
    check(c.dropout >= 0.0 && c.dropout < 1.0, "train.dropout: must be in [0, 1)");
    check(c.threads >= 1, "train.threads: must be >= 1");
  }
  if (!errors.empty()) {
    std::string msg = origin + ": invalid pretrain config:";
    for (const auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
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
  return {{"seed", seed},
          {"tokenizer", {{"vocab_size", vocab_size}}},
          {"encoder", {{"dim", dim}, {"layers", layers}, {"heads", heads}, {"ff", ff}, {"max_len", max_len}}},
          {"train",
           {{"steps", steps},
            {"batch_size", batch_size},
            {"warmup", warmup},
            {"lr", lr},
            {"weight_decay", weight_decay},
            {"mask_prob", mask_prob},
            {"dropout", dropout},
            {"threads", threads}}}};
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
