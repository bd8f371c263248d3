// The served model: every shard's final checkpoint loaded for inference, as
// one immutable snapshot. `predict` and `serve` aggregate through it;
// `serve` swaps whole snapshots, so a prediction never mixes generations.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/errors.h"
#include "sisa/model_state.h"
#include "sisa/shard_trainer.h"
#include "store/run_dir.h"

namespace sisa {
class StackedMlp;
class LmRuntime;
}  // namespace sisa

namespace sisa {

struct EnsembleShard {
  int64_t shard = 0;
  int64_t generation = 0;
  int64_t n_samples = 0;
  std::string fingerprint;
  std::string state_digest;
  std::shared_ptr<const ModelState> state;  // null for an empty shard (it has no say)
  std::shared_ptr<const ShardModel> model;  // for models that are not stacked (CNNs)
};

struct EnsembleOutput {
  int64_t n = 0, classes = 0, shards = 0;
  std::vector<float> mean;            // n x classes: posteriors averaged over the voting shards
  std::vector<int64_t> votes;         // n x classes: how many shards chose each class
  std::vector<int64_t> label_mean;    // argmax of mean
  std::vector<int64_t> label_vote;    // majority vote, ties to the larger mean, then the lower label
  std::vector<int64_t> shard_labels;  // n x shards (only if asked; -1 for an empty shard)
};

class Ensemble {
 public:
  // Loads the final checkpoint of every shard of `m` (hash-checked). Shards
  // whose generation and digest match `previous` reuse its loaded model.
  static std::shared_ptr<const Ensemble> load(const RunDir& run, const Manifest& m, const Config& c,
                                              const Ensemble* previous = nullptr);

  // `inputs`: n rows of width() features, already transformed like the
  // training data. NoModelError if no shard holds samples. Runs each shard
  // once over the whole batch (MLPs: all shards as one stacked network).
  EnsembleOutput predict(const float* inputs, int64_t n, bool with_shard_labels) const;
  // Any kind of input (token ids too), `inputs.width` wide.
  EnsembleOutput predict(const InputView& inputs, bool with_shard_labels) const;

  int64_t width() const { return width_; }
  int64_t classes() const { return classes_; }
  uint64_t last_applied() const { return last_applied_; }
  const std::vector<EnsembleShard>& shards() const { return shards_; }
  int64_t voting_shards() const;
  // Language-model runs: the student and the teachers, loaded with this
  // snapshot (null for classifiers).
  const std::shared_ptr<const LmRuntime>& language_models() const { return language_models_; }

 private:
  std::vector<EnsembleShard> shards_;
  std::shared_ptr<const StackedMlp> stacked_;  // the voting shards, in order (MLPs)
  // Families that cache backbone features (sisa-fc): the config whose
  // backbone computes them for inputs that arrive without them.
  std::shared_ptr<const Config> features_from_;
  std::shared_ptr<const LmRuntime> language_models_;  // language-model runs: the student and the teachers
  int64_t width_ = 0, classes_ = 0;
  uint64_t last_applied_ = 0;
};

}  // namespace sisa
