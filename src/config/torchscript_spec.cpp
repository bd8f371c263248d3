// The keys of "torchscript" (issue #26): any nn.Module a user scripts in
// Python (torch.jit.script(m).save("m.pt")) trains as SISA shards. The
// module file is a shared artifact, pinned by its SHA-256; model.trainable
// chooses which parameters a shard trains and checkpoints, so full
// fine-tuning, a head over a frozen encoder, adapters and LoRA are one family.
// Torch-free: the patterns are checked against the module when it is built
// (src/nn/torchscript_family.cpp).
#include <limits>

#include "config/model_spec.h"
#include "text/tokenizer.h"

namespace sisa {
namespace {

ModelSpec torchscript_spec() {
  ModelSpec s;
  s.name = "torchscript";
  s.options = {
      {"module", std::string(),
       [](const ModelOption& v) {
         return std::get<std::string>(v).empty() ? "must name a TorchScript file (torch.jit.script(m).save)" : "";
       },
       true, /*artifact=*/true, false,
       "the TorchScript file (`torch.jit.script(m).save(...)`, PyTorch 1.13); a shared artifact pinned by its "
       "SHA-256. forward(x) for features, forward(tokens, lengths) for tokens; it returns class logits"},
      {"input", std::string("features"),
       [](const ModelOption& v) {
         const auto& k = std::get<std::string>(v);
         return k == "features" || k == "tokens" ? std::string() : "must be features or tokens, got '" + k + "'";
       },
       true, false, false,
       "`features`: float32 [n, width]; `tokens`: int64 token ids [n, max_tokens] (0-padded) and int64 lengths [n]"},
      {"trainable", std::vector<std::string>{},
       [](const ModelOption& v) {
         for (const auto& p : std::get<std::vector<std::string>>(v)) {
           if (p.empty()) return std::string("a pattern is empty");
         }
         return std::string();
       },
       true, false, false,
       "the parameters a shard trains and checkpoints, as name patterns (`*` any run of characters, `?` one; "
       "`head.*`, `*.lora_*`); []: those whose requires_grad is true in the saved module. Every buffer is "
       "checkpointed"},
      {"cache_below", std::string(), nullptr, true, false, false,
       "tokens only, opt-in: a frozen submodule (`encoder`) whose output forward_above(h) reads; its "
       "output is computed once per row at ingest (eval mode, row by row) and kept beside the tokens, so a "
       "retrain runs only forward_above. No trainable parameter may sit in it. Empty: nothing cached"},
  };
  s.check = [](const Config& c) {
    std::vector<std::string> e;
    if (!c.model.get<std::string>("cache_below").empty() && c.model.get<std::string>("input") != "tokens") {
      e.push_back("model.cache_below: needs model.input: tokens (rows of features are not cached)");
    }
    return e;
  };
  s.input_of = [](const Config& c) {
    return c.model.get<std::string>("input") == "tokens" ? InputKind::kTokens : InputKind::kFeatures;
  };
  s.vocab_size = [](const Config& c) -> int64_t {
    if (c.data.tokenizer.empty()) return std::numeric_limits<int32_t>::max();
    return Tokenizer(c.data.tokenizer).vocab_size();
  };
  return s;
}

}  // namespace
}  // namespace sisa

SISA_REGISTER_MODEL_SPEC(sisa::torchscript_spec);
