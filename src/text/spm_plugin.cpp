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

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

int fail(const std::string& what, char* err, size_t errlen) {
  if (err && errlen > 0) {
    std::strncpy(err, what.c_str(), errlen - 1);
    err[errlen - 1] = '\0';
  }
  return 1;
}

}  // namespace

extern "C" {

// SentencePieceTrainer::Train with a flag string ("--input=... --model_prefix=...").
int sisa_spm_train(const char* flags, char* err, size_t errlen) {
  const auto status = sentencepiece::SentencePieceTrainer::Train(flags);
  return status.ok() ? 0 : fail(status.ToString(), err, errlen);
}

// A processor for the model file, or null (err says why).
void* sisa_spm_load(const char* model_path, char* err, size_t errlen) {
  auto p = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = p->Load(model_path);
  if (!status.ok()) {
    fail(status.ToString(), err, errlen);
    return nullptr;
  }
  return p.release();
}

int sisa_spm_vocab_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

// The ids of `text` into `out` (at most `cap`; *n is the full count).
int sisa_spm_encode(void* handle, const char* text, size_t len, int32_t* out, size_t cap, size_t* n, char* err,
                    size_t errlen) {
  std::vector<int> ids;
  const auto status =
      static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(std::string(text, len), &ids);
  if (!status.ok()) return fail(status.ToString(), err, errlen);
  *n = ids.size();
  for (size_t i = 0; i < ids.size() && i < cap; ++i) out[i] = static_cast<int32_t>(ids[i]);
  return 0;
}

void sisa_spm_free(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

}  // extern "C"
