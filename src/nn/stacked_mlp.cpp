#include "nn/stacked_mlp.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "config/model_spec.h"
#include "sisa/errors.h"
#include "sisa/shard_trainer.h"

namespace sisa {
namespace {

at::Tensor tensor_of(const ModelState& state, const std::string& name) {
  const TensorBlob* b = state.find(name);
  if (!b || b->dtype != DType::kFloat32) throw CorruptionError("checkpoint lacks float32 tensor '" + name + "'");
  auto t = at::empty(b->shape, at::kFloat);
  if (static_cast<size_t>(t.numel()) * sizeof(float) != b->bytes.size()) {
    throw CorruptionError("checkpoint tensor '" + name + "' has the wrong size");
  }
  std::memcpy(t.data_ptr<float>(), b->bytes.data(), b->bytes.size());
  return t;
}

}  // namespace

struct StackedMlp::Impl {
  int64_t shards = 0, width = 0, classes = 0;
  bool tanh = false;
  at::Tensor first_weight_t;  // width x (shards * out0): the first layer of every shard side by side
  at::Tensor first_bias;      // shards * out0
  int64_t first_out = 0;
  std::vector<at::Tensor> weight_t;  // later layers: shards x in x out
  std::vector<at::Tensor> bias;      // shards x 1 x out

  at::Tensor activate(const at::Tensor& x) const { return tanh ? at::tanh(x) : at::relu(x); }
};

StackedMlp::StackedMlp() : impl_(std::make_unique<Impl>()) {}
StackedMlp::~StackedMlp() = default;

std::unique_ptr<StackedMlp> StackedMlp::build(const Config& c, const std::vector<const ModelState*>& states) {
  if (!model_spec(c.model).stackable_mlp || states.empty()) return nullptr;
  const auto& hidden = c.model.get<std::vector<int64_t>>("hidden");
  std::unique_ptr<StackedMlp> m(new StackedMlp());
  Impl& p = *m->impl_;
  p.shards = static_cast<int64_t>(states.size());
  p.classes = c.data.num_classes;
  // sisa-fc's heads read the backbone's features, not data.input_shape.
  p.width = caches_features(c) ? cached_feature_width(c) : c.data.width();
  const auto& keys = model_spec(c.model).options;
  const bool has_activation =
      std::any_of(keys.begin(), keys.end(), [](const ModelOptionSpec& o) { return o.key == "activation"; });
  p.tanh = has_activation && c.model.get<std::string>("activation") == "tanh";
  // The layers in order, named as the dense family registers them (nn/dense_family.cpp).
  std::vector<std::string> layers;
  for (size_t i = 0; i < hidden.size(); ++i) layers.push_back("fc" + std::to_string(i));
  layers.push_back("out");
  at::NoGradGuard no_grad;
  for (size_t l = 0; l < layers.size(); ++l) {
    std::vector<at::Tensor> w, b;
    const int64_t in = l == 0 ? p.width : hidden[l - 1];
    const int64_t out = l + 1 == layers.size() ? p.classes : hidden[l];
    for (const ModelState* s : states) {
      w.push_back(tensor_of(*s, layers[l] + ".weight"));  // out x in
      b.push_back(tensor_of(*s, layers[l] + ".bias"));
      if (w.back().sizes() != at::IntArrayRef{out, in} || b.back().sizes() != at::IntArrayRef{out}) {
        throw CorruptionError("checkpoint layer '" + layers[l] + "' does not have the config's shape");
      }
    }
    if (l == 0) {
      p.first_weight_t = at::cat(w, 0).t().contiguous();
      p.first_bias = at::cat(b, 0).contiguous();
      p.first_out = w[0].size(0);
    } else {
      for (auto& t : w) t = t.t();
      p.weight_t.push_back(at::stack(w, 0).contiguous());
      p.bias.push_back(at::stack(b, 0).unsqueeze(1).contiguous());
    }
  }
  return m;
}

std::vector<float> StackedMlp::posteriors(const float* inputs, int64_t n) const {
  const Impl& p = *impl_;
  c10::InferenceMode inference;
  std::vector<float> out(static_cast<size_t>(p.shards * n * p.classes));
  // Row blocks keep the intermediates (rows x shards x hidden) in cache; one
  // block for all 10,000 test inputs ran at half the per-shard rate.
  constexpr int64_t kRows = 256;
  for (int64_t first = 0; first < n; first += kRows) {
    const int64_t m = std::min(kRows, n - first);
    const auto x = at::from_blob(const_cast<float*>(inputs + first * p.width), {m, p.width}, at::kFloat);
    at::Tensor h = at::addmm(p.first_bias, x, p.first_weight_t);          // m x (shards * out0)
    h = h.view({m, p.shards, p.first_out}).transpose(0, 1).contiguous();  // shards x m x out0
    for (size_t l = 0; l < p.weight_t.size(); ++l) {
      h = at::baddbmm(p.bias[l], p.activate(h), p.weight_t[l]);
    }
    const at::Tensor probs = at::softmax(h, 2).contiguous();  // shards x m x classes
    const float* src = probs.data_ptr<float>();
    for (int64_t s = 0; s < p.shards; ++s) {
      std::memcpy(out.data() + (s * n + first) * p.classes, src + s * m * p.classes,
                  static_cast<size_t>(m * p.classes) * sizeof(float));
    }
  }
  return out;
}

}  // namespace sisa
