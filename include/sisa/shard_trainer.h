// Trains one shard, stage by stage. Knows nothing of files, MPI or other
// shards: a stage maps (checkpoint C_{r-1}, data) to C_r. Torch stays behind
// the pimpl so callers compile without it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/model_state.h"

namespace sisa {

// A shard's samples sorted by id, with each row's slice (1..R).
struct ShardData {
  Dataset rows;
  std::vector<int32_t> slice;
};

struct EpochReport {
  int64_t shard = 0, stage = 0, epoch = 0, epochs = 0;  // epoch is 1-based
  int64_t samples = 0;                                  // samples seen this epoch
  double mean_loss = 0.0;
  double seconds = 0.0;  // wall time of this epoch
};
using EpochCallback = std::function<void(const EpochReport&)>;

struct TrainerOptions {
  // Test-only negative control: start every stage with fresh optimizer state
  // (what the reference implementation does). Breaks exactness under Adam.
  bool restore_optimizer_state = true;
  // Serve's shutdown flag. The trainer itself does not read it: the stage
  // runner (train_stages in src/run/stages.cpp) checks it after every epoch
  // and throws InterruptedError; nothing of the stage is kept.
  const std::atomic<bool>* stop = nullptr;
};

class ShardTrainer {
 public:
  ShardTrainer(const Config& config, int64_t shard, TrainerOptions options = {});
  ~ShardTrainer();
  ShardTrainer(const ShardTrainer&) = delete;
  ShardTrainer& operator=(const ShardTrainer&) = delete;

  // C_0: the initial model, drawn from H(seed, "init", shard); data-independent.
  ModelState initial_state();
  // C_stage from C_{stage-1}, trained on rows with slice <= stage for e_stage epochs.
  ModelState train_stage(const ModelState& previous, int64_t stage, const ShardData& data,
                         const EpochCallback& on_epoch = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A trained shard for inference (eval mode: dropout off, BatchNorm running stats).
class ShardModel {
 public:
  ShardModel(const Config& config, const ModelState& state);
  ~ShardModel();
  ShardModel(ShardModel&&) noexcept;
  // Posteriors, n x num_classes, row-major, of n feature rows.
  std::vector<float> posteriors(const float* inputs, int64_t n) const;
  // The same for any kind of input (token ids too).
  std::vector<float> posteriors(const InputView& inputs) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sets libtorch's intra-op threads and pins OpenBLAS's (both change bits);
// installs the huge-page CPU allocator (src/nn/huge_page_allocator.h).
void set_compute_threads(int64_t threads);

// For families that cache features of the tokens (sisa-fc): computes every
// row's features into rows->inputs (feature_width floats per row); a no-op
// for other families. Each row is computed on its own, so its features do not
// depend on which other rows were ingested with it (a run trained without a
// deleted row sees the same bits). `progress` is called with rows done.
void add_cached_features(const Config& config, Dataset* rows,
                         const std::function<void(int64_t done)>& progress = nullptr);
// The same features for token rows: n x cached_feature_width(config).
std::vector<float> cached_features(const Config& config, const InputView& rows,
                                   const std::function<void(int64_t done)>& progress = nullptr);
// Floats per row the config's family caches; 0 if it caches none.
int64_t cached_feature_width(const Config& config);
inline bool caches_features(const Config& config) { return cached_feature_width(config) > 0; }

}  // namespace sisa
