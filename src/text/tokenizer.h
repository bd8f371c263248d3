// SentencePiece tokenization for the text families (issue #10), through the
// libsisa_spm.so plugin (src/text/spm_plugin.cpp explains why a plugin).
// Training is deterministic: one thread, every input sentence, a fixed seed,
// so the same text and options give the same model file, byte for byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sisa {

struct TokenizerTraining {
  std::string input;         // a text file, one sentence per line
  std::string model_prefix;  // writes <prefix>.model and <prefix>.vocab
  int vocab_size = 8000;
  std::string model_type = "unigram";  // unigram | bpe
};

class Tokenizer {
 public:
  // IOError naming the file if the model cannot be loaded (or the plugin is missing).
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of UTF-8 text (DataError for invalid UTF-8, naming nothing: the caller names the row).
  std::vector<int32_t> encode(std::string_view text) const;
  int vocab_size() const;
  const std::string& path() const { return path_; }

  // Trains a model; IOError with SentencePiece's message on failure.
  static void train(const TokenizerTraining& options);

 private:
  std::string path_;
  void* handle_ = nullptr;
};

// True if `text` is well-formed UTF-8.
bool valid_utf8(std::string_view text);

}  // namespace sisa
