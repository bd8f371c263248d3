#include "nn/text_encoder.h"

#include <cmath>

#include "nn/tensor_blobs.h"
#include "sisa/errors.h"

namespace sisa {

TextEncoder::TextEncoder(const BackboneShape& shape, int64_t adapter_size, double dropout, bool causal,
                         int64_t embedding_rank)
    : shape_(shape), dropout_(dropout), causal_(causal) {
  const int64_t d = shape.dim;
  tok_emb_ = register_module("tok_emb", torch::nn::Embedding(shape.vocab_size, d));
  if (embedding_rank > 0) {
    emb_down_ = register_module("adapter_emb_down", torch::nn::Embedding(shape.vocab_size, embedding_rank));
    emb_up_ =
        register_module("adapter_emb_up", torch::nn::Linear(torch::nn::LinearOptions(embedding_rank, d).bias(false)));
  }
  pos_emb_ = register_parameter("pos_emb", torch::zeros({shape.max_len, d}));
  emb_norm_ = register_module("emb_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  // Blocks are child modules named block<i>, so tensors read "block0.qkv.weight".
  for (int64_t i = 0; i < shape.layers; ++i) {
    auto m = register_module("block" + std::to_string(i), std::make_shared<torch::nn::Module>());
    Block b;
    b.qkv = m->register_module("qkv", torch::nn::Linear(d, 3 * d));
    b.proj = m->register_module("proj", torch::nn::Linear(d, d));
    b.norm1 = m->register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    b.ff1 = m->register_module("ff1", torch::nn::Linear(d, shape.ff));
    b.ff2 = m->register_module("ff2", torch::nn::Linear(shape.ff, d));
    b.norm2 = m->register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    if (adapter_size > 0) {
      b.down1 = m->register_module("adapter1_down", torch::nn::Linear(d, adapter_size));
      b.up1 = m->register_module("adapter1_up", torch::nn::Linear(adapter_size, d));
      b.down2 = m->register_module("adapter2_down", torch::nn::Linear(d, adapter_size));
      b.up2 = m->register_module("adapter2_up", torch::nn::Linear(adapter_size, d));
    }
    blocks_.push_back(b);
  }
}

torch::Tensor TextEncoder::attend(Block& b, const torch::Tensor& x, const torch::Tensor& pad_mask) const {
  const int64_t n = x.size(0), len = x.size(1), h = shape_.heads, dh = shape_.dim / h;
  auto qkv = b.qkv->forward(x).view({n, len, 3, h, dh}).permute({2, 0, 3, 1, 4});  // 3, n, h, L, dh
  auto scores = torch::matmul(qkv[0], qkv[1].transpose(-2, -1)) / std::sqrt(static_cast<double>(dh));
  auto hidden = pad_mask.view({n, 1, 1, len});                                             // keys past each row's end
  if (causal_) hidden = hidden.logical_or(torch::ones({len, len}, torch::kBool).triu(1));  // later keys
  scores = scores.masked_fill(hidden, -1e9);
  auto out = torch::matmul(torch::softmax(scores, -1), qkv[2]);  // n, h, L, dh
  return b.proj->forward(out.transpose(1, 2).reshape({n, len, shape_.dim}));
}

torch::Tensor TextEncoder::forward(const torch::Tensor& tokens, const torch::Tensor& lengths, at::Generator* gen) {
  const int64_t len = tokens.size(1);
  const auto positions = torch::arange(len, torch::kInt64);
  const auto pad_mask = positions.unsqueeze(0) >= lengths.unsqueeze(1);  // n, L: true past the end
  auto x = tok_emb_->forward(tokens);
  if (emb_down_) x = x + emb_up_->forward(emb_down_->forward(tokens));
  x = x + pos_emb_.slice(0, 0, len).unsqueeze(0);
  x = dropout(emb_norm_->forward(x), dropout_, gen);
  auto adapt = [](torch::nn::Linear& down, torch::nn::Linear& up, const torch::Tensor& y) {
    if (!down) return y;
    return y + up->forward(torch::gelu(down->forward(y)));
  };
  for (auto& b : blocks_) {
    x = b.norm1->forward(x + adapt(b.down1, b.up1, dropout(attend(b, x, pad_mask), dropout_, gen)));
    auto ff = b.ff2->forward(torch::gelu(b.ff1->forward(x)));
    x = b.norm2->forward(x + adapt(b.down2, b.up2, dropout(ff, dropout_, gen)));
  }
  return x;
}

torch::Tensor TextEncoder::mean_pool(const torch::Tensor& hidden, const torch::Tensor& lengths) {
  const int64_t len = hidden.size(1);
  const auto keep = (torch::arange(len, torch::kInt64).unsqueeze(0) < lengths.unsqueeze(1)).to(hidden.dtype());
  const auto sum = (hidden * keep.unsqueeze(2)).sum(1);
  return sum / lengths.clamp_min(1).to(hidden.dtype()).unsqueeze(1);
}

void TextEncoder::load(const ModelState& weights, const std::string& origin) {
  torch::NoGradGuard no_grad;
  auto params = named_parameters(true);
  for (const auto& blob : weights.tensors) {
    auto* t = params.find(blob.name);
    if (!t) throw CorruptionError(origin + ": backbone tensor '" + blob.name + "' is not part of the encoder");
    copy_blob(blob, *t);
  }
  for (const auto& p : params) {
    if (!is_adapter(p.key()) && !weights.find(p.key())) {
      throw CorruptionError(origin + ": backbone lacks tensor '" + p.key() + "'");
    }
  }
}

bool TextEncoder::is_adapter(const std::string& name) {
  return name.rfind("adapter", 0) == 0 || name.find(".adapter") != std::string::npos;
}

bool TextEncoder::is_layer_norm(const std::string& name) { return name.find("norm") != std::string::npos; }

}  // namespace sisa
