// USE-Lite's encoder (Google's Universal Sentence Encoder Lite, issue #27),
// ported from the TF.js graph its npm package runs and checked against it
// (tests/use_lite_test.cpp: embeddings within 1e-5). Per sentence, cut to
// its first 128 tokens:
//   x = 2 e + [sin(p w), cos(p w)]            (e: token embeddings; the graph adds them twice)
//   layer 0 (256 -> 512): a = Attn0(LN(x)) + Adjust(x);  y = a + FFN0(LN(a))
//   layer 1 (512):        b = Attn1(LN(y)) + y;          y = b + FFN1(LN(b))
//   out = l2norm(tanh(mean_t(y) W + c))
// pre-LayerNorm (eps 1e-6), 4 heads in both layers (64 and 128 wide), ReLU
// feed-forward 1536 wide; no final LayerNorm. Kernels are [in, out] as TF
// stores them. Each row runs alone, so a row's embedding never depends on
// which rows share its batch.
#pragma once

#include <torch/torch.h>

#include "sisa/model_state.h"

namespace sisa {

class UseLiteEncoder : public torch::nn::Module {
 public:
  // adapter_size > 0: Houlsby adapters in each layer (a bottleneck, GELU,
  // up, plus the residual) after the attention output and after the
  // feed-forward, before each residual add ("lN.adapter{1,2}_{down,up}"),
  // for sisa-a. They are not in the backbone.
  // cached_layers 1: layer 0 gets no adapters (sisa-a computes it once per
  // row and caches it: lower(), then forward_upper()).
  explicit UseLiteEncoder(int64_t adapter_size = 0, int64_t cached_layers = 0);
  // Copies every tensor of a "use-lite" backbone but the adapters
  // (CorruptionError naming `origin` for a missing one).
  void load(const ModelState& weights, const std::string& origin);
  // Training and the fine-tuned families: a batch at once, padded rows
  // masked (keys, pooling) as the graph masks them. int64 [n, L], [n] ->
  // [n, 512]. Within float rounding of forward(); it is what a shard trains.
  torch::Tensor forward_batch(const torch::Tensor& tokens, const torch::Tensor& lengths);
  // tokens, lengths: int64 [n, L], [n]. Returns the L2-normalised sentence
  // embeddings, [n, 512]; a row with no token gets l2norm(tanh(c)), as the graph gives it.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths);
  // One sentence's ids (int64 [T], T >= 1; only the first 128 count): [512].
  torch::Tensor embed_one(const torch::Tensor& ids);
  // Layer 0's output for each row alone, zero past its length, flattened:
  // float32 [n, width * 512] (width = tokens.size(1), at most 128). A row's
  // values never depend on its batch.
  torch::Tensor lower(const torch::Tensor& tokens, const torch::Tensor& lengths) const;
  // The rest from lower()'s output: layer 1, pooling, tanh, L2 norm: [n, 512].
  torch::Tensor forward_upper(const torch::Tensor& lower, const torch::Tensor& lengths);

  static constexpr int64_t kMaxTokens = 128, kDim = 512;

 private:
  struct Layer {
    std::shared_ptr<torch::nn::Module> m;
    torch::nn::Linear adapter1_down{nullptr}, adapter1_up{nullptr}, adapter2_down{nullptr}, adapter2_up{nullptr};
    torch::Tensor norm1_scale, norm1_bias, qkv_w, qkv_b, out_w, out_b, adjust_w, adjust_b;
    torch::Tensor norm2_scale, norm2_bias, ff1_w, ff1_b, ff2_w, ff2_b;
    int64_t heads = 4;
  };
  Layer make_layer(const std::string& name, int64_t in, bool adjust, int64_t adapter_size);
  // x: [T, in] (one row) or [n, T, in] with `bias` [n, 1, 1, T] (0 at real keys, -1e9 at padding).
  torch::Tensor attend(const Layer& l, const torch::Tensor& x, const torch::Tensor& bias = {}) const;
  torch::Tensor feed_forward(const Layer& l, const torch::Tensor& x) const;
  static torch::Tensor adapt(const torch::nn::Linear& down, const torch::nn::Linear& up, const torch::Tensor& x);

  // x -> layer 0 for token rows [n, T] with `keep` [n, T, 1] and attention `bias`.
  torch::Tensor layer0(const torch::Tensor& tokens, const torch::Tensor& keep, const torch::Tensor& bias) const;
  torch::Tensor upper(const torch::Tensor& y, const torch::Tensor& keep, const torch::Tensor& bias,
                      const torch::Tensor& lengths) const;

  torch::Tensor embed_, timing_, tanh_w_, tanh_b_;
  Layer l0_, l1_;
};

}  // namespace sisa
