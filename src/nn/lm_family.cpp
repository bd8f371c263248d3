// "lm": a causal language model, the teachers of leave-one-out unlearning
// (issue #11). A decoder-only transformer (the encoder of text_encoder.h with
// a causal mask) whose output layer is tied to its token embeddings; the loss
// is next-token cross-entropy over each row's real tokens. A transformer
// rather than the paper's LSTM: it reuses the text families' blocks, and the
// audit's exposure and extraction measure the model, not its architecture.
// Keys and checks: lm_spec() in config/text_spec.cpp.
#include "config/text_spec.h"
#include "nn/model_family.h"
#include "nn/text_encoder.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

class LanguageModel : public ShardNet {
 public:
  explicit LanguageModel(const Config& c) : shape_(text_encoder_shape(c)) {
    encoder_ = register_module(
        "encoder", std::make_shared<TextEncoder>(shape_, 0, c.model.get<double>("dropout"), /*causal=*/true));
    bias_ = register_parameter("lm_bias", torch::zeros({shape_.vocab_size}));
  }

  // Next-token logits at every position: [n, L, vocab].
  torch::Tensor forward(const Batch& batch, at::Generator* gen) override {
    const auto hidden = encoder_->forward(batch.inputs, batch.lengths, gen);
    return torch::matmul(hidden, encoder_->token_embedding().t()) + bias_;
  }

 private:
  BackboneShape shape_;
  std::shared_ptr<TextEncoder> encoder_;
  torch::Tensor bias_;
};

class LanguageModelFamily : public ModelFamily {
 public:
  std::string name() const override { return "lm"; }
  std::shared_ptr<ShardNet> build(const Config& c) const override { return std::make_shared<LanguageModel>(c); }

  // The mean over every predicted token of the batch: position t predicts
  // token t+1 while t+1 is inside the row.
  torch::Tensor loss(const torch::Tensor& logits, const Batch& batch) const override {
    const int64_t len = batch.inputs.size(1), vocab = logits.size(2);
    const auto predicted = logits.slice(1, 0, len - 1).reshape({-1, vocab});
    const auto next = batch.inputs.slice(1, 1, len).reshape({-1});
    const auto inside = (torch::arange(1, len, torch::kInt64).unsqueeze(0) < batch.lengths.unsqueeze(1))
                            .reshape({-1})
                            .to(logits.dtype());
    const auto each = torch::nn::functional::cross_entropy(
        predicted, next, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    return (each * inside).sum() / inside.sum().clamp_min(1.0);
  }

  torch::Tensor posteriors(const torch::Tensor&) const override {
    throw UsageError("model family 'lm' is a language model: it has no class posteriors");
  }
};

}  // namespace
}  // namespace sisa

using sisa::LanguageModelFamily;
SISA_REGISTER_MODEL_FAMILY(LanguageModelFamily);
