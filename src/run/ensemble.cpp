#include "run/ensemble.h"

#include <algorithm>

#include "lm/lm_runtime.h"
#include "nn/stacked_mlp.h"
#include "sisa/errors.h"
#include "store/run_files.h"

namespace sisa {

std::shared_ptr<const Ensemble> Ensemble::load(const RunDir& run, const Manifest& m, const Config& c,
                                               const Ensemble* previous) {
  auto e = std::make_shared<Ensemble>();
  e->width_ = c.data.width();
  if (caches_features(c)) e->features_from_ = std::make_shared<const Config>(c);
  e->classes_ = c.data.num_classes;
  e->last_applied_ = m.last_seq;
  std::vector<const ModelState*> voting;
  for (const auto& entry : m.entries) {
    EnsembleShard s{entry.shard,
                    entry.generation,
                    entry.n_samples,
                    entry.final_checkpoint().fingerprint,
                    entry.final_checkpoint().state_digest,
                    nullptr,
                    nullptr};
    if (entry.n_samples > 0) {
      const EnsembleShard* old = nullptr;
      if (previous && entry.shard < static_cast<int64_t>(previous->shards_.size())) {
        old = &previous->shards_[static_cast<size_t>(entry.shard)];
      }
      if (old && old->state && old->generation == s.generation && old->state_digest == s.state_digest) {
        s.state = old->state;
        s.model = old->model;
      } else {
        s.state = std::make_shared<const ModelState>(load_checkpoint(run, entry.final_checkpoint()));
      }
      voting.push_back(s.state.get());
    }
    e->shards_.push_back(std::move(s));
  }
  if (c.data.unlabeled) {
    // Language models answer generate and score, not predict (the states
    // loaded above are the teachers).
    std::vector<std::shared_ptr<const ModelState>> teachers;
    for (const auto& s : e->shards_) {
      if (s.state) teachers.push_back(s.state);
    }
    e->language_models_ = LmRuntime::load(run, m, c, teachers);
    return e;
  }
  e->stacked_ = StackedMlp::build(c, voting);
  if (!e->stacked_) {
    for (auto& s : e->shards_) {
      if (s.state && !s.model) s.model = std::make_shared<const ShardModel>(c, *s.state);
    }
  }
  return e;  // with no voting shard (every sample deleted), predict() says so
}

int64_t Ensemble::voting_shards() const {
  return std::count_if(shards_.begin(), shards_.end(), [](const EnsembleShard& s) { return s.state != nullptr; });
}

EnsembleOutput Ensemble::predict(const float* inputs, int64_t n, bool with_shard_labels) const {
  InputView v;
  v.n = n;
  v.width = width_;
  v.features = inputs;
  return predict(v, with_shard_labels);
}

EnsembleOutput Ensemble::predict(const InputView& inputs, bool with_shard_labels) const {
  const int64_t n = inputs.n;
  if (voting_shards() == 0) {
    throw NoModelError("every sample of the run has been deleted: no shard has a model to predict with");
  }
  const int64_t k = classes_;
  EnsembleOutput out;
  out.n = n;
  out.classes = k;
  out.shards = static_cast<int64_t>(shards_.size());
  out.mean.assign(static_cast<size_t>(n * k), 0.0f);
  out.votes.assign(static_cast<size_t>(n * k), 0);
  if (with_shard_labels) out.shard_labels.assign(static_cast<size_t>(n * out.shards), -1);
  // sisa-fc: the frozen backbone runs once per row, not once per shard.
  std::vector<float> features;
  InputView in = inputs;
  if (features_from_ && !in.features) {
    features = cached_features(*features_from_, in);
    in.features = features.data(), in.feature_width = cached_feature_width(*features_from_);
  }
  if (features_from_ && in.feature_width != cached_feature_width(*features_from_)) {
    throw CorruptionError("cached features of width " + std::to_string(in.feature_width) +
                          " where the backbone gives " + std::to_string(cached_feature_width(*features_from_)));
  }
  const std::vector<float> stacked = stacked_ ? stacked_->posteriors(in.features, n) : std::vector<float>();
  int64_t voter = 0;  // index among the voting shards
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (!shards_[s].state) continue;
    std::vector<float> own;
    const float* p = nullptr;
    if (stacked_) {
      p = stacked.data() + voter * n * k;
    } else {
      own = shards_[s].model->posteriors(in);
      p = own.data();
    }
    ++voter;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = p + i * k;
      const int64_t label = std::max_element(row, row + k) - row;
      out.votes[static_cast<size_t>(i * k + label)] += 1;
      if (with_shard_labels) out.shard_labels[static_cast<size_t>(i * out.shards) + s] = label;
      float* sum = out.mean.data() + i * k;
      for (int64_t j = 0; j < k; ++j) sum[j] += row[j];
    }
  }
  const auto used = static_cast<float>(voting_shards());
  out.label_mean.resize(static_cast<size_t>(n));
  out.label_vote.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* sum = out.mean.data() + i * k;
    const int64_t* v = out.votes.data() + i * k;
    out.label_mean[i] = std::max_element(sum, sum + k) - sum;
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j) {
      if (v[j] > v[best] || (v[j] == v[best] && sum[j] > sum[best])) best = j;
    }
    out.label_vote[i] = best;
  }
  for (auto& x : out.mean) x /= used;
  return out;
}

}  // namespace sisa
