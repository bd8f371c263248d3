// SentencePiece tokenization for the text families (issue #10), through the
// libsisa_spm.so plugin (src/text/spm_plugin.cpp explains why a plugin).
// Training is deterministic: one thread, every input sentence, a fixed seed,
// and no file path in the model, so the same text and options give the same
// model file, byte for byte, wherever it is written.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sisa {

struct TokenizerTraining {
  std::string input;       // a text file, one sentence per line
  std::string model_path;  // the .model file written (atomically); it records no path
  int vocab_size = 8000;
  std::string model_type = "unigram";  // unigram | bpe
  // Reserved pieces that encode() never produces (pretraining's "<mask>").
  std::vector<std::string> control_symbols;
};

class UseTokenizer;

class Tokenizer {
 public:
  // A SentencePiece .model, or a USE-Lite vocabulary (a .json file of
  // [[piece, score], ...]: src/text/use_tokenizer.h, the package's own
  // tokenizer, needs no plugin).
  // UsageError if the path is not a regular file of at most 256 MiB; IOError
  // naming the file if the model cannot be loaded (or the plugin is missing).
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of UTF-8 text (DataError for invalid UTF-8, naming nothing: the caller names the row).
  std::vector<int32_t> encode(std::string_view text) const;
  // The text of token ids (DataError for an id outside the vocabulary).
  std::string decode(const std::vector<int32_t>& ids) const;
  int vocab_size() const;
  // The bytes of text that rows of `max_tokens` tokens are encoded from:
  // 4 x max_tokens x the longest piece (in bytes of text), so text of
  // ordinary words and spacing yields max_tokens tokens well within it,
  // while a hostile text costs bounded work.
  size_t byte_bound(int64_t max_tokens) const;
  // `text` if it fits byte_bound(max_tokens), else its head cut before the
  // last whitespace within the bound (at a character boundary if there is
  // none): SentencePiece's pieces never span a word boundary, so whole words
  // encode to the head of the whole text's ids.
  std::string_view bounded(std::string_view text, int64_t max_tokens) const;
  // The id of a piece (a control symbol), or -1 if the model lacks it.
  int piece_id(const std::string& piece) const;
  const std::string& path() const { return path_; }

  // Trains a model. The corpus must be a regular file of at most 16 GiB;
  // DataError with SentencePiece's message if it cannot train on the text.
  static void train(const TokenizerTraining& options);

 private:
  std::string path_;
  void* handle_ = nullptr;
  std::unique_ptr<UseTokenizer> use_;  // a .json vocabulary
  size_t longest_piece_ = 1;
};

// True if `text` is well-formed UTF-8.
bool valid_utf8(std::string_view text);
// True if `text` holds nothing but spaces, tabs and line breaks.
bool blank_text(std::string_view text);

// Appends one model input row: the ids of tokenizer.bounded(text) cut to
// `max_tokens`, then 0 padding up to it, and the row's length. Training
// (data_loaders.cpp) and serving encode through this, so a text gives the
// same row in both, and no text costs more than byte_bound to encode.
// Returns whether the text was cut. The caller checks blank_text and valid_utf8.
bool append_token_row(const Tokenizer& tokenizer, std::string_view text, int64_t max_tokens,
                      std::vector<int32_t>* tokens, std::vector<int32_t>* lengths);

}  // namespace sisa
