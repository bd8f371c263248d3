// Training a range of SISA stages of one shard into checkpoints: the shard's
// rows with their slices, the work a range costs, and each checkpoint's
// manifest entry (written as a run file, or kept in memory for verify).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/shard_trainer.h"
#include "store/run_dir.h"
#include "util/progress.h"

namespace sisa {

// Sorts by id and computes each row's slice from its placement key.
ShardData make_shard_data(Dataset rows, const Config& c);

// Work units (samples x epochs) for stages first..R of a shard.
int64_t stage_work(const Config& c, const ShardData& data, int64_t first_stage);

struct StageRun {
  const Config* config = nullptr;
  const RunDir* dir = nullptr;  // null: keep checkpoints in memory only (verify)
  std::string identity_hash;
  TrainerOptions trainer;
  Progress* progress = nullptr;
  double* loop_seconds = nullptr;                           // if set, accumulates time spent in epochs (no I/O)
  std::function<void(const CheckpointRef&)> on_checkpoint;  // after each checkpoint is written
};

// Trains stages first..R of `shard` from `start` (C_{first-1}), writing each
// C_r as generation `generation`. Returns refs for stages first..R; with
// `states` non-null, also the states.
std::vector<CheckpointRef> train_stages(const StageRun& run, int64_t shard, int64_t generation, const ShardData& data,
                                        const ModelState& start, int64_t first_stage, std::vector<ModelState>* states);

// The manifest entry for checkpoint C_stage of `shard`; with `dir` set, also
// writes the checkpoint file of generation `generation`.
CheckpointRef checkpoint_ref(const RunDir* dir, const std::string& identity, int64_t shard, int64_t stage,
                             int64_t generation, const ShardData& data, const ModelState& state);

}  // namespace sisa
