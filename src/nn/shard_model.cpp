#include <cstring>

#include "nn/net.h"
#include "sisa/shard_trainer.h"

namespace sisa {

struct ShardModel::Impl {
  explicit Impl(const Config& c) : config(c), net(c) {}
  Config config;
  Net net;
};

ShardModel::ShardModel(const Config& config, const ModelState& state)
    : impl_(std::make_unique<Impl>(config)) {
  load_module_state(impl_->net, state);
  impl_->net.eval();
}

ShardModel::~ShardModel() = default;
ShardModel::ShardModel(ShardModel&&) noexcept = default;

std::vector<float> ShardModel::posteriors(const float* inputs, int64_t n) const {
  torch::NoGradGuard no_grad;
  const int64_t width = impl_->config.data.width();
  const int64_t k = impl_->config.data.num_classes;
  std::vector<float> out(static_cast<size_t>(n * k));
  constexpr int64_t kBatch = 2048;
  for (int64_t s = 0; s < n; s += kBatch) {
    const int64_t m = std::min(kBatch, n - s);
    auto x = torch::from_blob(const_cast<float*>(inputs + s * width), {m, width});
    auto p = torch::softmax(impl_->net.forward(x, nullptr), 1).contiguous();
    std::memcpy(out.data() + s * k, p.data_ptr<float>(), static_cast<size_t>(m * k) * sizeof(float));
  }
  return out;
}

}  // namespace sisa
