#include "nn/use_lite_encoder.h"

#include "nn/tensor_blobs.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

// TF's layer norm, in its order: (scale * rsqrt(var + eps)) * (x - mean) + bias.
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& bias) {
  const auto centred = x - x.mean(-1, true);
  const auto var = (centred * centred).mean(-1, true);
  return (scale * torch::rsqrt(var + 1e-6f)) * centred + bias;
}

}  // namespace

UseLiteEncoder::UseLiteEncoder() {
  embed_ = register_parameter("embed", torch::zeros({8002, 256}));
  timing_ = register_buffer("timing", torch::zeros({1, 128}));
  l0_ = make_layer("l0", 256, true);
  l1_ = make_layer("l1", 512, false);
  tanh_w_ = register_parameter("tanh_w", torch::zeros({512, 512}));
  tanh_b_ = register_parameter("tanh_b", torch::zeros({512}));
}

UseLiteEncoder::Layer UseLiteEncoder::make_layer(const std::string& name, int64_t in, bool adjust) {
  Layer l;
  l.m = register_module(name, std::make_shared<torch::nn::Module>());
  auto p = [&](const char* n, std::vector<int64_t> shape) { return l.m->register_parameter(n, torch::zeros(shape)); };
  l.norm1_scale = p("norm1_scale", {in}), l.norm1_bias = p("norm1_bias", {in});
  l.qkv_w = p("qkv_w", {in, 3 * in}), l.qkv_b = p("qkv_b", {3 * in});
  l.out_w = p("out_w", {in, 512}), l.out_b = p("out_b", {512});
  if (adjust) l.adjust_w = p("adjust_w", {256, 512}), l.adjust_b = p("adjust_b", {512});
  l.norm2_scale = p("norm2_scale", {512}), l.norm2_bias = p("norm2_bias", {512});
  l.ff1_w = p("ff1_w", {512, 1536}), l.ff1_b = p("ff1_b", {1536});
  l.ff2_w = p("ff2_w", {1536, 512}), l.ff2_b = p("ff2_b", {512});
  return l;
}

void UseLiteEncoder::load(const ModelState& weights, const std::string& origin) {
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters(true)) {
    const TensorBlob* blob = weights.find(p.key());
    if (!blob) throw CorruptionError(origin + ": USE-Lite backbone lacks tensor " + p.key());
    copy_blob(*blob, p.value());
  }
  for (auto& b : named_buffers(true)) {
    const TensorBlob* blob = weights.find(b.key());
    if (!blob) throw CorruptionError(origin + ": USE-Lite backbone lacks tensor " + b.key());
    copy_blob(*blob, b.value());
  }
}

torch::Tensor UseLiteEncoder::attend(const Layer& l, const torch::Tensor& x) const {
  const int64_t t = x.size(0), width = l.qkv_w.size(1) / 3, head = width / l.heads;
  const auto qkv = torch::matmul(layer_norm(x, l.norm1_scale, l.norm1_bias), l.qkv_w) + l.qkv_b;
  const auto split = [&](int64_t i) {
    return qkv.slice(1, i * width, (i + 1) * width).view({t, l.heads, head}).transpose(0, 1);
  };
  const auto q = split(0) * static_cast<float>(1.0 / std::sqrt(static_cast<double>(head)));
  const auto w = torch::softmax(torch::matmul(q, split(1).transpose(1, 2)), -1);
  const auto o = torch::matmul(w, split(2)).transpose(0, 1).reshape({t, width});
  return torch::matmul(o, l.out_w) + l.out_b;
}

torch::Tensor UseLiteEncoder::feed_forward(const Layer& l, const torch::Tensor& x) const {
  const auto h = torch::relu(torch::matmul(layer_norm(x, l.norm2_scale, l.norm2_bias), l.ff1_w) + l.ff1_b);
  return torch::matmul(h, l.ff2_w) + l.ff2_b;
}

torch::Tensor UseLiteEncoder::embed_one(const torch::Tensor& all_ids) {
  const auto ids = all_ids.slice(0, 0, std::min<int64_t>(all_ids.size(0), kMaxTokens));
  const int64_t t = ids.size(0);
  const auto e = embed_.index_select(0, ids);
  const auto scaled = torch::arange(t, torch::kFloat32).unsqueeze(1) * timing_;
  const auto x = e + (e + torch::cat({torch::sin(scaled), torch::cos(scaled)}, 1));  // the graph's order
  const auto a = attend(l0_, x) + (torch::matmul(x, l0_.adjust_w) + l0_.adjust_b);
  const auto y = a + feed_forward(l0_, a);
  const auto b = attend(l1_, y) + y;
  const auto z = b + feed_forward(l1_, b);
  const auto h = torch::tanh(torch::matmul(z.sum(0) / static_cast<float>(t), tanh_w_) + tanh_b_);
  return h * torch::rsqrt(torch::clamp_min((h * h).sum(), 1e-12f));
}

torch::Tensor UseLiteEncoder::forward(const torch::Tensor& tokens, const torch::Tensor& lengths) {
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < tokens.size(0); ++i) {
    const int64_t len = lengths[i].item<int64_t>();
    if (len <= 0) {
      const auto h = torch::tanh(tanh_b_);
      rows.push_back(h * torch::rsqrt(torch::clamp_min((h * h).sum(), 1e-12f)));
    } else {
      rows.push_back(embed_one(tokens[i].slice(0, 0, len)));
    }
  }
  return torch::stack(rows, 0);
}

}  // namespace sisa
