// libsisa_spm.so: SentencePiece behind a C interface. Debian's
// libsentencepiece bundles protobuf 3.14 and exports its symbols, while
// libtorch loads protobuf 3.21: linked into one process they crash before
// main (../shared/TOOLCHAIN.md). src/text/tokenizer.cpp loads this plugin
// with dlmopen(LM_ID_NEWLM): a link namespace of its own, with its own
// libstdc++ and protobuf, so nothing is shared but this C interface (plain
// pointers; each side frees what it allocates). RTLD_DEEPBIND was tried
// first: it crashes in std::cerr, which the executable holds as a copy
// relocation that a deep-bound libstdc++ never sees initialised. Nothing else
// in sisa includes a SentencePiece header.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

int fail(const std::string& what, char* err, size_t errlen) {
  if (err && errlen > 0) {
    std::strncpy(err, what.c_str(), errlen - 1);
    err[errlen - 1] = '\0';
  }
  return 1;
}

// The lines of a text file, fed to the trainer directly: the model then
// records no input path or prefix, so its bytes depend on the text alone.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const char* path) : in_(path) { Next(); }
  bool done() const override { return done_; }
  void Next() override { done_ = !std::getline(in_, line_); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
};

}  // namespace

extern "C" {

// SentencePieceTrainer::Train with a flag string (no --input or
// --model_prefix) over the lines of `input`. On success *model (size
// *model_len, freed with sisa_spm_free_bytes) is the serialized model.
int sisa_spm_train(const char* flags, const char* input, char** model, size_t* model_len, char* err, size_t errlen) {
  try {
    std::ifstream probe(input);
    if (!probe) return fail(std::string("cannot read '") + input + "'", err, errlen);
    LineIterator lines(input);
    // As a map: the flag-string overload logs its command line before it reads --minloglevel.
    std::unordered_map<std::string, std::string> kwargs;
    std::istringstream words(flags);
    for (std::string word; words >> word;) {
      const auto eq = word.find('=');
      if (word.rfind("--", 0) != 0 || eq == std::string::npos)
        return fail("bad trainer flag '" + word + "'", err, errlen);
      kwargs[word.substr(2, eq - 2)] = word.substr(eq + 1);
    }
    std::string proto;
    const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &lines, &proto);
    if (!status.ok()) return fail(status.ToString(), err, errlen);
    *model = static_cast<char*>(std::malloc(proto.size()));
    if (!*model) return fail("out of memory", err, errlen);
    std::memcpy(*model, proto.data(), proto.size());
    *model_len = proto.size();
    return 0;
  } catch (const std::exception& e) {  // nothing may unwind across this C interface
    return fail(e.what(), err, errlen);
  }
}

void sisa_spm_free_bytes(char* bytes) { std::free(bytes); }

// A processor for the model file, or null (err says why).
void* sisa_spm_load(const char* model_path, char* err, size_t errlen) {
  try {
    auto p = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = p->Load(model_path);
    if (!status.ok()) {
      fail(status.ToString(), err, errlen);
      return nullptr;
    }
    return p.release();
  } catch (const std::exception& e) {  // nothing may unwind across this C interface
    fail(e.what(), err, errlen);
    return nullptr;
  }
}

// The longest piece that text can match, in bytes of text: the word
// boundary mark U+2581 stands for one space. Control, unknown, unused and
// byte-fallback pieces never match text and are left out.
size_t sisa_spm_longest_piece(void* handle) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  static const std::string kSpace = "\xe2\x96\x81";
  size_t longest = 1;
  for (int i = 0; i < p->GetPieceSize(); ++i) {
    if (p->IsControl(i) || p->IsUnknown(i) || p->IsUnused(i) || p->IsByte(i)) continue;
    const std::string& piece = p->IdToPiece(i);
    size_t bytes = piece.size();
    for (size_t at = piece.find(kSpace); at != std::string::npos; at = piece.find(kSpace, at + kSpace.size())) {
      bytes -= kSpace.size() - 1;
    }
    longest = std::max(longest, bytes);
  }
  return longest;
}

int sisa_spm_vocab_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

// The ids of `text` into `out` (at most `cap`; *n is the full count).
int sisa_spm_encode(void* handle, const char* text, size_t len, int32_t* out, size_t cap, size_t* n, char* err,
                    size_t errlen) {
  try {
    std::vector<int> ids;
    const auto status =
        static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(std::string(text, len), &ids);
    if (!status.ok()) return fail(status.ToString(), err, errlen);
    *n = ids.size();
    for (size_t i = 0; i < ids.size() && i < cap; ++i) out[i] = static_cast<int32_t>(ids[i]);
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what(), err, errlen);
  }
}

// The text of `ids` into `out` (at most `cap` bytes; *len is the full size).
int sisa_spm_decode(void* handle, const int32_t* ids, size_t n, char* out, size_t cap, size_t* len, char* err,
                    size_t errlen) {
  try {
    auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
    std::vector<int> v(ids, ids + n);
    for (int id : v) {
      if (id < 0 || id >= p->GetPieceSize())
        return fail("token id " + std::to_string(id) + " is not in the vocabulary", err, errlen);
    }
    std::string text;
    const auto status = p->Decode(v, &text);
    if (!status.ok()) return fail(status.ToString(), err, errlen);
    *len = text.size();
    std::memcpy(out, text.data(), std::min(cap, text.size()));
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what(), err, errlen);
  }
}

// The id of `piece`, or -1 if the model does not have it (SentencePiece maps unknown pieces to <unk>).
int sisa_spm_piece_id(void* handle, const char* piece) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  const int id = p->PieceToId(piece);
  return p->IdToPiece(id) == piece ? id : -1;
}

void sisa_spm_free(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

}  // extern "C"
