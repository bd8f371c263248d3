#include <cstring>

#include "nn/model_family.h"
#include "sisa/shard_trainer.h"

namespace sisa {

struct ShardModel::Impl {
  explicit Impl(const Config& c) : config(c), family(model_family(c.model.type)), net(family.build(c)) {}
  Config config;
  const ModelFamily& family;
  std::shared_ptr<ShardNet> net;
};

ShardModel::ShardModel(const Config& config, const ModelState& state)
    : impl_(std::make_unique<Impl>(config)) {
  load_owned_state(impl_->family, *impl_->net, state);
  impl_->net->eval();
}

ShardModel::~ShardModel() = default;
ShardModel::ShardModel(ShardModel&&) noexcept = default;

std::vector<float> ShardModel::posteriors(const float* inputs, int64_t n) const {
  InputView v;
  v.n = n;
  v.width = impl_->config.data.width();
  v.features = inputs;
  return posteriors(v);
}

std::vector<float> ShardModel::posteriors(const InputView& inputs) const {
  torch::NoGradGuard no_grad;
  const int64_t n = inputs.n, k = impl_->config.data.num_classes;
  std::vector<float> out(static_cast<size_t>(n * k));
  constexpr int64_t kBatch = 2048;
  for (int64_t s = 0; s < n; s += kBatch) {
    const int64_t m = std::min(kBatch, n - s);
    const Batch batch = make_batch(inputs.rows(s, m));
    auto p = impl_->family.posteriors(impl_->net->forward(batch, nullptr)).contiguous();
    std::memcpy(out.data() + s * k, p.data_ptr<float>(), static_cast<size_t>(m * k) * sizeof(float));
  }
  return out;
}

}  // namespace sisa
