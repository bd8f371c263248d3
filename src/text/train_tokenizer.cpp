// `sisa tokenizer` (include/sisa/pretrain.h): a SentencePiece model trained
// on a text file, the way pretraining trains its own.
#include <filesystem>

#include "format/use_lite_package.h"
#include "sisa/errors.h"
#include "sisa/pretrain.h"
#include "text/tokenizer.h"
#include "util/fs.h"
#include "util/sha256.h"

namespace sisa {

nlohmann::json train_tokenizer(const TokenizerRequest& r) {
  if (r.vocab_size < 16 || r.vocab_size > 1000000) throw UsageError("--vocab-size must be in 16..1000000");
  Tokenizer::train({r.corpus, r.out, static_cast<int>(r.vocab_size), "unigram", {}});
  return {{"tokenizer", r.out}, {"vocab_size", Tokenizer(r.out).vocab_size()}, {"sha256", sha256_file(r.out)}};
}

nlohmann::json import_encoder(const ImportEncoderRequest& r) {
  const std::string suffix = ".h5";
  if (r.out.size() <= suffix.size() || r.out.compare(r.out.size() - suffix.size(), suffix.size(), suffix) != 0) {
    throw UsageError("--out must name a .h5 file, got '" + r.out + "'");
  }
  Backbone b = read_use_lite_package(r.package);
  if (r.reinitialize_seed >= 0) reinitialize(&b, static_cast<uint64_t>(r.reinitialize_seed));
  const std::string vocab = r.out.substr(0, r.out.size() - suffix.size()) + ".vocab.json";
  const auto parent = std::filesystem::path(r.out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const auto words = read_input_file(r.package + "/vocab.json", {"USE-Lite vocabulary", 64ull << 20, ExitCode::kData});
  atomic_write(Env::posix(), vocab, words);
  atomic_write(Env::posix(), r.out, encode_backbone(b));
  int64_t parameters = 0;
  for (const auto& t : b.weights.tensors) parameters += t.numel();
  return {{"backbone", r.out},
          {"tokenizer", vocab},
          {"architecture", b.architecture},
          {"parameters", parameters},
          {"backbone_sha256", sha256_file(r.out)},
          {"tokenizer_sha256", b.tokenizer_sha256},
          {"vocab_size", Tokenizer(vocab).vocab_size()},
          {"pretrained", r.reinitialize_seed < 0}};
}

}  // namespace sisa
