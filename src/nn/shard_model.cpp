#include <cstring>

#include "nn/model_family.h"
#include "sisa/errors.h"
#include "sisa/shard_trainer.h"

namespace sisa {

struct ShardModel::Impl {
  explicit Impl(const Config& c) : config(c), family(model_family(c.model.type)), net(family.build(c)) {}
  Config config;
  const ModelFamily& family;
  std::shared_ptr<ShardNet> net;
};

ShardModel::ShardModel(const Config& config, const ModelState& state) : impl_(std::make_unique<Impl>(config)) {
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

int64_t cached_feature_width(const Config& config) {
  return model_family(config.model.type).cached_feature_width(config);
}

std::vector<float> cached_features(const Config& config, const InputView& rows,
                                   const std::function<void(int64_t)>& progress) {
  const ModelFamily& family = model_family(config.model.type);
  const int64_t width = family.cached_feature_width(config);
  if (width == 0 || rows.input != InputKind::kTokens)
    throw DataError("model family '" + config.model.type + "' caches no features of token rows");
  torch::NoGradGuard no_grad;
  std::vector<float> out(static_cast<size_t>(rows.n * width));
  InputView tokens_only = rows;
  tokens_only.features = nullptr, tokens_only.feature_width = 0;
  constexpr int64_t kChunk = 256;  // the backbone runs row by row inside; chunks only bound the copies
  for (int64_t s = 0; s < rows.n; s += kChunk) {
    const int64_t m = std::min(kChunk, rows.n - s);
    const auto f = family.cached_features(config, make_batch(tokens_only.rows(s, m))).contiguous();
    if (f.dim() != 2 || f.size(0) != m || f.size(1) != width) {
      throw DataError("the backbone of model family '" + config.model.type + "' gave features of the wrong shape");
    }
    std::memcpy(out.data() + s * width, f.data_ptr<float>(), static_cast<size_t>(m * width) * sizeof(float));
    if (progress) progress(s + m);
  }
  return out;
}

void add_cached_features(const Config& config, Dataset* rows, const std::function<void(int64_t)>& progress) {
  if (!caches_features(config) || !rows->has_tokens()) return;
  rows->feature_width = 0;
  auto features = cached_features(config, rows->view(), progress);
  rows->inputs = std::move(features);
  rows->feature_width = cached_feature_width(config);
}

}  // namespace sisa
