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
  UseLiteEncoder();
  // Copies every tensor of a "use-lite" backbone (CorruptionError naming `origin`).
  void load(const ModelState& weights, const std::string& origin);
  // tokens, lengths: int64 [n, L], [n]. Returns the L2-normalised sentence
  // embeddings, [n, 512]; a row with no token gets l2norm(tanh(c)), as the graph gives it.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths);
  // One sentence's ids (int64 [T], T >= 1; only the first 128 count): [512].
  torch::Tensor embed_one(const torch::Tensor& ids);

  static constexpr int64_t kMaxTokens = 128, kDim = 512;

 private:
  struct Layer {
    std::shared_ptr<torch::nn::Module> m;
    torch::Tensor norm1_scale, norm1_bias, qkv_w, qkv_b, out_w, out_b, adjust_w, adjust_b;
    torch::Tensor norm2_scale, norm2_bias, ff1_w, ff1_b, ff2_w, ff2_b;
    int64_t heads = 4;
  };
  Layer make_layer(const std::string& name, int64_t in, bool adjust);
  torch::Tensor attend(const Layer& l, const torch::Tensor& x) const;
  torch::Tensor feed_forward(const Layer& l, const torch::Tensor& x) const;

  torch::Tensor embed_, timing_, tanh_w_, tanh_b_;
  Layer l0_, l1_;
};

}  // namespace sisa
