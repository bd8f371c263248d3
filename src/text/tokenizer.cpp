#include "text/tokenizer.h"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "sisa/errors.h"
#include "text/use_tokenizer.h"
#include "util/fs.h"

namespace sisa {
namespace {

struct Plugin {
  int (*train)(const char*, const char*, char**, size_t*, char*, size_t) = nullptr;
  void (*free_bytes)(char*) = nullptr;
  void* (*load)(const char*, char*, size_t) = nullptr;
  int (*vocab_size)(void*) = nullptr;
  int (*piece_id)(void*, const char*) = nullptr;
  int (*encode)(void*, const char*, size_t, int32_t*, size_t, size_t*, char*, size_t) = nullptr;
  int (*decode)(void*, const int32_t*, size_t, char*, size_t, size_t*, char*, size_t) = nullptr;
  void (*release)(void*) = nullptr;
  size_t (*longest_piece)(void*) = nullptr;
};

// Loaded once, next to libsisa.so (the build tree or an install), into a
// link namespace of its own (spm_plugin.cpp says why), and never unloaded.
const Plugin& plugin() {
  static const Plugin p = [] {
    Dl_info self{};
    std::string path = "libsisa_spm.so";
    if (dladdr(reinterpret_cast<void*>(&valid_utf8), &self) && self.dli_fname) {
      const auto beside = std::filesystem::path(self.dli_fname).parent_path() / "libsisa_spm.so";
      if (std::filesystem::exists(beside)) path = beside.string();
    }
#if defined(__SANITIZE_ADDRESS__)
    throw IOError("the SentencePiece plugin is loaded with dlmopen, which AddressSanitizer does not support");
#endif
    void* h = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) throw IOError(std::string("cannot load the SentencePiece plugin: ") + dlerror());
    Plugin q;
    q.train = reinterpret_cast<decltype(q.train)>(dlsym(h, "sisa_spm_train"));
    q.load = reinterpret_cast<decltype(q.load)>(dlsym(h, "sisa_spm_load"));
    q.vocab_size = reinterpret_cast<decltype(q.vocab_size)>(dlsym(h, "sisa_spm_vocab_size"));
    q.encode = reinterpret_cast<decltype(q.encode)>(dlsym(h, "sisa_spm_encode"));
    q.decode = reinterpret_cast<decltype(q.decode)>(dlsym(h, "sisa_spm_decode"));
    q.release = reinterpret_cast<decltype(q.release)>(dlsym(h, "sisa_spm_free"));
    q.piece_id = reinterpret_cast<decltype(q.piece_id)>(dlsym(h, "sisa_spm_piece_id"));
    q.free_bytes = reinterpret_cast<decltype(q.free_bytes)>(dlsym(h, "sisa_spm_free_bytes"));
    q.longest_piece = reinterpret_cast<decltype(q.longest_piece)>(dlsym(h, "sisa_spm_longest_piece"));
    if (!q.train || !q.free_bytes || !q.piece_id || !q.load || !q.vocab_size || !q.encode || !q.decode || !q.release ||
        !q.longest_piece) {
      throw IOError(path + ": not a sisa SentencePiece plugin");
    }
    return q;
  }();
  return p;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path) {
  // SentencePiece reads the file itself: a directory, a FIFO or /dev/zero
  // must be refused before it tries.
  check_input_file(model_path, {"tokenizer", kMaxTokenizerBytes, ExitCode::kUsage});
  if (model_path.size() >= 5 && model_path.compare(model_path.size() - 5, 5, ".json") == 0) {
    use_ = std::make_unique<UseTokenizer>(model_path);
    longest_piece_ = use_->longest_piece_bytes();
    return;
  }
  char err[512] = {0};
  handle_ = plugin().load(model_path.c_str(), err, sizeof err);
  if (!handle_) throw IOError("cannot load SentencePiece model '" + model_path + "': " + err);
  longest_piece_ = plugin().longest_piece(handle_);
}

size_t Tokenizer::byte_bound(int64_t max_tokens) const {
  return static_cast<size_t>(std::max<int64_t>(max_tokens, 1)) * 4 * longest_piece_;
}

std::string_view Tokenizer::bounded(std::string_view text, int64_t max_tokens) const {
  static constexpr const char* kSpace = " \t\n\r";
  const size_t bound = byte_bound(max_tokens);
  if (text.size() <= bound) return text;
  // Leading whitespace yields no token: it must not fill the bound.
  text.remove_prefix(std::min(text.find_first_not_of(kSpace), text.size()));
  if (text.size() <= bound) return text;
  const size_t space = text.find_last_of(kSpace, bound);
  if (space != std::string_view::npos && space > 0) return text.substr(0, space);
  size_t cut = bound;  // no word boundary: cut at a character boundary
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

Tokenizer::~Tokenizer() {
  if (handle_) plugin().release(handle_);
}

bool blank_text(std::string_view text) { return text.find_first_not_of(" \t\n\r") == std::string_view::npos; }

bool append_token_row(const Tokenizer& tokenizer, std::string_view text, int64_t max_tokens,
                      std::vector<int32_t>* tokens, std::vector<int32_t>* lengths) {
  const std::string_view head = tokenizer.bounded(text, max_tokens);
  std::vector<int32_t> ids = tokenizer.encode(head);
  const bool cut = static_cast<int64_t>(ids.size()) > max_tokens || head.size() < text.size();
  if (cut) ids.resize(static_cast<size_t>(max_tokens));
  lengths->push_back(static_cast<int32_t>(ids.size()));
  ids.resize(static_cast<size_t>(max_tokens), 0);
  tokens->insert(tokens->end(), ids.begin(), ids.end());
  return cut;
}

int Tokenizer::vocab_size() const { return use_ ? use_->vocab_size() : plugin().vocab_size(handle_); }

int Tokenizer::piece_id(const std::string& piece) const {
  return use_ ? use_->piece_id(piece) : plugin().piece_id(handle_, piece.c_str());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  if (!valid_utf8(text)) throw DataError("text is not valid UTF-8");
  if (use_) return use_->encode(text);
  std::vector<int32_t> ids(text.size() + 8);
  size_t n = 0;
  char err[512] = {0};
  if (plugin().encode(handle_, text.data(), text.size(), ids.data(), ids.size(), &n, err, sizeof err) != 0) {
    throw DataError(std::string("SentencePiece cannot encode the text: ") + err);
  }
  if (n > ids.size()) {  // more pieces than bytes cannot happen, but never truncate silently
    ids.resize(n);
    plugin().encode(handle_, text.data(), text.size(), ids.data(), ids.size(), &n, err, sizeof err);
  }
  ids.resize(n);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  if (use_) return use_->decode(ids);
  std::string text(ids.size() * 16 + 16, '\0');
  size_t n = 0;
  char err[512] = {0};
  if (plugin().decode(handle_, ids.data(), ids.size(), text.data(), text.size(), &n, err, sizeof err) != 0) {
    throw DataError(std::string("SentencePiece cannot decode the tokens: ") + err);
  }
  if (n > text.size()) {
    text.resize(n);
    plugin().decode(handle_, ids.data(), ids.size(), text.data(), text.size(), &n, err, sizeof err);
  }
  text.resize(n);
  return text;
}

void Tokenizer::train(const TokenizerTraining& o) {
  // One thread and every sentence (no sampling): the model depends on the text alone.
  std::string flags = "--vocab_size=" + std::to_string(o.vocab_size) + " --model_type=" + o.model_type +
                      " --num_threads=1 --input_sentence_size=0 --shuffle_input_sentence=false"
                      " --character_coverage=1.0 --minloglevel=2";
  std::string control;
  for (const auto& s : o.control_symbols) control += (control.empty() ? "" : ",") + s;
  if (!control.empty()) flags += " --control_symbols=" + control;
  check_input_file(o.input, {"corpus", kMaxCorpusBytes, ExitCode::kData});
  char err[1024] = {0};
  char* model = nullptr;
  size_t n = 0;
  if (plugin().train(flags.c_str(), o.input.c_str(), &model, &n, err, sizeof err) != 0) {
    // The file was readable: what fails is the text (empty, or too little for the vocabulary).
    throw DataError("SentencePiece cannot train a " + std::to_string(o.vocab_size) + "-piece tokenizer on '" + o.input +
                    "': " + err);
  }
  const std::string bytes(model, n);
  plugin().free_bytes(model);
  atomic_write(Env::posix(), o.model_path, bytes);
}

}  // namespace sisa
