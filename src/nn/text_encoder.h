// The transformer encoder behind the text families and `sisa pretrain`:
// token and learned position embeddings, then post-LayerNorm blocks (BERT's
// layout: x = LN(x + Drop(Attn(x))), x = LN(x + Drop(FF(x)))). With
// adapter_size > 0 each block gets Houlsby adapters: a bottleneck
// (down, GELU, up, plus the residual) after the attention projection and
// after the feed-forward, before each residual add and LayerNorm. With
// embedding_rank > 0 the token embeddings get a low-rank adapter too: a
// trainable delta down[token] x up (vocab x r, then r x dim) added to the
// frozen table, so a frozen backbone can still move what each word means
// (LoRA's form, Hu et al. 2021, on the embedding). Padding is
// masked by length, never by token id (SentencePiece's <unk> is id 0). A
// causal encoder (the language-model family) lets each position attend only
// to itself and earlier positions.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include "format/backbone.h"
#include "nn/dropout.h"

namespace sisa {

class TextEncoder : public torch::nn::Module {
 public:
  TextEncoder(const BackboneShape& shape, int64_t adapter_size, double dropout, bool causal = false,
              int64_t embedding_rank = 0);

  // tokens, lengths: int64 [n, L], [n] (L <= max_len). Returns [n, L, dim].
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths, at::Generator* gen);
  // The mean of the hidden states over each row's real tokens: [n, dim].
  static torch::Tensor mean_pool(const torch::Tensor& hidden, const torch::Tensor& lengths);

  // Copies every tensor of `weights` into the encoder tensor of that name
  // (CorruptionError naming `origin` for a missing tensor or a shape mismatch).
  void load(const ModelState& weights, const std::string& origin);
  // True for tensors of the adapters (blocks and embeddings) and of the LayerNorms.
  static bool is_adapter(const std::string& name);
  static bool is_layer_norm(const std::string& name);

  const BackboneShape& shape() const { return shape_; }
  torch::Tensor token_embedding() const { return tok_emb_->weight; }

 private:
  struct Block {
    torch::nn::Linear qkv{nullptr}, proj{nullptr}, ff1{nullptr}, ff2{nullptr};
    torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
    torch::nn::Linear down1{nullptr}, up1{nullptr}, down2{nullptr}, up2{nullptr};  // adapters
  };
  torch::Tensor attend(Block& b, const torch::Tensor& x, const torch::Tensor& pad_mask) const;

  BackboneShape shape_;
  double dropout_;
  bool causal_;
  torch::nn::Embedding tok_emb_{nullptr};
  torch::nn::Embedding emb_down_{nullptr};  // the embedding adapter (embedding_rank > 0)
  torch::nn::Linear emb_up_{nullptr};
  torch::Tensor pos_emb_;
  torch::nn::LayerNorm emb_norm_{nullptr};
  std::vector<Block> blocks_;
};

}  // namespace sisa
