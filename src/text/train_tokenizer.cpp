// `sisa tokenizer` (include/sisa/pretrain.h): a SentencePiece model trained
// on a text file, the way pretraining trains its own.
#include "sisa/errors.h"
#include "sisa/pretrain.h"
#include "text/tokenizer.h"
#include "util/sha256.h"

namespace sisa {

nlohmann::json train_tokenizer(const TokenizerRequest& r) {
  if (r.vocab_size < 16 || r.vocab_size > 1000000) throw UsageError("--vocab-size must be in 16..1000000");
  Tokenizer::train({r.corpus, r.out, static_cast<int>(r.vocab_size), "unigram", {}});
  return {{"tokenizer", r.out}, {"vocab_size", Tokenizer(r.out).vocab_size()}, {"sha256", sha256_file(r.out)}};
}

}  // namespace sisa
