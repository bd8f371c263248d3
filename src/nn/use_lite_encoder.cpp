#include "nn/use_lite_encoder.h"

#include "nn/tensor_blobs.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

// h / max(|h|, 1e-6): rsqrt of the clamped sum of squares, as the graph has it. h: [n, 512].
torch::Tensor l2_normalize(const torch::Tensor& h) {
  return h * torch::rsqrt(torch::clamp_min((h * h).sum(-1, true), 1e-12f));
}

// TF's layer norm, in its order: (scale * rsqrt(var + eps)) * (x - mean) + bias.
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& bias) {
  const auto centred = x - x.mean(-1, true);
  const auto var = (centred * centred).mean(-1, true);
  return (scale * torch::rsqrt(var + 1e-6f)) * centred + bias;
}

}  // namespace

UseLiteEncoder::UseLiteEncoder(int64_t adapter_size, int64_t cached_layers) {
  embed_ = register_parameter("embed", torch::zeros({8002, 256}));
  timing_ = register_buffer("timing", torch::zeros({1, 128}));
  l0_ = make_layer("l0", 256, true, cached_layers > 0 ? 0 : adapter_size);
  l1_ = make_layer("l1", 512, false, adapter_size);
  tanh_w_ = register_parameter("tanh_w", torch::zeros({512, 512}));
  tanh_b_ = register_parameter("tanh_b", torch::zeros({512}));
}

UseLiteEncoder::Layer UseLiteEncoder::make_layer(const std::string& name, int64_t in, bool adjust,
                                                 int64_t adapter_size) {
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
  if (adapter_size > 0) {
    const auto linear = [&](const char* n, int64_t a, int64_t b) {
      return l.m->register_module(n, torch::nn::Linear(a, b));
    };
    l.adapter1_down = linear("adapter1_down", 512, adapter_size),
    l.adapter1_up = linear("adapter1_up", adapter_size, 512);
    l.adapter2_down = linear("adapter2_down", 512, adapter_size),
    l.adapter2_up = linear("adapter2_up", adapter_size, 512);
  }
  return l;
}

void UseLiteEncoder::load(const ModelState& weights, const std::string& origin) {
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters(true)) {
    if (p.key().find(".adapter") != std::string::npos) continue;  // sisa-a's own, not the backbone's
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

torch::Tensor UseLiteEncoder::attend(const Layer& l, const torch::Tensor& x, const torch::Tensor& bias) const {
  // One row is a batch of one without padding; the head axis sits before the sequence.
  const bool one = x.dim() == 2;
  const auto xb = one ? x.unsqueeze(0) : x;
  const int64_t n = xb.size(0), t = xb.size(1), width = l.qkv_w.size(1) / 3, head = width / l.heads;
  const auto qkv = torch::matmul(layer_norm(xb, l.norm1_scale, l.norm1_bias), l.qkv_w) + l.qkv_b;
  const auto split = [&](int64_t i) {
    return qkv.slice(2, i * width, (i + 1) * width).reshape({n, t, l.heads, head}).transpose(1, 2);
  };
  const auto q = split(0) * static_cast<float>(1.0 / std::sqrt(static_cast<double>(head)));
  auto logits = torch::matmul(q, split(1).transpose(2, 3));
  if (bias.defined()) logits = logits + bias;
  const auto o = torch::matmul(torch::softmax(logits, -1), split(2)).transpose(1, 2).reshape({n, t, width});
  auto out = torch::matmul(o, l.out_w) + l.out_b;
  if (l.adapter1_down) out = adapt(l.adapter1_down, l.adapter1_up, out);
  return one ? out.squeeze(0) : out;
}

torch::Tensor UseLiteEncoder::adapt(const torch::nn::Linear& down, const torch::nn::Linear& up,
                                    const torch::Tensor& x) {
  return x + torch::nn::functional::linear(torch::gelu(torch::nn::functional::linear(x, down->weight, down->bias)),
                                           up->weight, up->bias);
}

torch::Tensor UseLiteEncoder::feed_forward(const Layer& l, const torch::Tensor& x) const {
  const auto h = torch::relu(torch::matmul(layer_norm(x, l.norm2_scale, l.norm2_bias), l.ff1_w) + l.ff1_b);
  const auto out = torch::matmul(h, l.ff2_w) + l.ff2_b;
  return l.adapter2_down ? adapt(l.adapter2_down, l.adapter2_up, out) : out;
}

torch::Tensor UseLiteEncoder::embed_one(const torch::Tensor& ids) {
  const int64_t t = std::min<int64_t>(ids.size(0), kMaxTokens);
  return forward_batch(ids.slice(0, 0, t).unsqueeze(0), torch::full({1}, t, torch::kInt64))[0];
}

namespace {

// The rows' real positions [n, T] and the attention bias [n, 1, 1, T] (0 at real keys, -1e9 at padding).
std::pair<torch::Tensor, torch::Tensor> masks(int64_t width, const torch::Tensor& lengths) {
  const auto real = torch::arange(width, torch::kInt64).unsqueeze(0) < lengths.unsqueeze(1);
  return {real, (real.logical_not().to(torch::kFloat32) * -1e9f).unsqueeze(1).unsqueeze(1)};
}

}  // namespace

torch::Tensor UseLiteEncoder::layer0(const torch::Tensor& tokens, const torch::Tensor& keep,
                                     const torch::Tensor& bias) const {
  const int64_t width = tokens.size(1);
  const auto e = embed_.index_select(0, tokens.reshape({-1})).reshape({tokens.size(0), width, -1});
  const auto scaled = torch::arange(width, torch::kFloat32).unsqueeze(1) * timing_;
  const auto x = (e + (e + torch::cat({torch::sin(scaled), torch::cos(scaled)}, 1))) * keep;
  const auto a = attend(l0_, x, bias) + (torch::matmul(x, l0_.adjust_w) + l0_.adjust_b);
  return a + feed_forward(l0_, a);
}

torch::Tensor UseLiteEncoder::upper(const torch::Tensor& y, const torch::Tensor& keep, const torch::Tensor& bias,
                                    const torch::Tensor& lengths) const {
  const auto b = attend(l1_, y, bias) + y;
  const auto z = b + feed_forward(l1_, b);
  const auto pooled = (z * keep).sum(1) / lengths.clamp_min(1).to(torch::kFloat32).unsqueeze(1);
  return l2_normalize(torch::tanh(torch::matmul(pooled, tanh_w_) + tanh_b_));
}

torch::Tensor UseLiteEncoder::forward_batch(const torch::Tensor& all_tokens, const torch::Tensor& all_lengths) {
  const int64_t width = std::min<int64_t>(all_tokens.size(1), kMaxTokens);
  const auto lengths = all_lengths.clamp_max(width);
  const auto [real, bias] = masks(width, lengths);
  const auto keep = real.to(torch::kFloat32).unsqueeze(2);
  return upper(layer0(all_tokens.slice(1, 0, width), keep, bias), keep, bias, lengths);
}

torch::Tensor UseLiteEncoder::lower(const torch::Tensor& tokens, const torch::Tensor& lengths) const {
  torch::NoGradGuard no_grad;
  const int64_t n = tokens.size(0), width = std::min<int64_t>(tokens.size(1), kMaxTokens);
  auto out = torch::zeros({n, width, kDim});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = std::min(lengths[i].item<int64_t>(), width);
    if (len <= 0) continue;
    const auto row = tokens[i].slice(0, 0, len).unsqueeze(0);
    const auto ones = torch::ones({1, len, 1});
    out[i].slice(0, 0, len).copy_(layer0(row, ones, torch::zeros({1, 1, 1, len}))[0]);
  }
  return out.reshape({n, width * kDim});
}

torch::Tensor UseLiteEncoder::forward_upper(const torch::Tensor& lower, const torch::Tensor& all_lengths) {
  const int64_t n = lower.size(0), width = lower.size(1) / kDim;
  const auto lengths = all_lengths.clamp_max(width);
  const auto [real, bias] = masks(width, lengths);
  return upper(lower.reshape({n, width, kDim}), real.to(torch::kFloat32).unsqueeze(2), bias, lengths);
}

torch::Tensor UseLiteEncoder::forward(const torch::Tensor& tokens, const torch::Tensor& lengths) {
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < tokens.size(0); ++i) {
    const int64_t len = lengths[i].item<int64_t>();
    if (len <= 0) {
      rows.push_back(l2_normalize(torch::tanh(tanh_b_)));  // the mean of no state is 0
    } else {
      rows.push_back(embed_one(tokens[i].slice(0, 0, len)));
    }
  }
  return torch::stack(rows, 0);
}

}  // namespace sisa
