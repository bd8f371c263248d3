// The LOO student's update after a deletion (issue #11, docs/loo.md), with
// libtorch behind the implementation so its callers compile without it.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/model_state.h"

namespace sisa {

// One leave-one-out update of the student (issue #11, docs/loo.md).
struct LooInputs {
  const Dataset* deleted = nullptr;  // the deleted rows (tokens)
  std::vector<int64_t> holder;       // per deleted row: the teacher (shard) that held it
  // Teachers after their exact retrain: (shard, final state); empty shards left out.
  std::vector<std::pair<int64_t, std::shared_ptr<const ModelState>>> teachers;
  const Dataset* retained = nullptr;  // rows still held, for loo.retain_batch (else null)
  uint64_t request = 0;               // the deletion's sequence number: seeds its draws
};
struct LooResult {
  ModelState student;
  int64_t steps = 0;
  double kl_before = 0.0, kl_after = 0.0;           // mean per-token KL(target || student) on the deleted rows
  bool target_cached = false;                       // the target fit loo.target_cache_mb and was computed once
  std::vector<std::vector<int64_t>> teachers_used;  // per deleted row: the teachers averaged
};
// Fine-tunes `student` for loo.steps Adam steps at loo.lr on the deleted
// rows toward the mean next-token distribution of the teachers that did not
// hold each row (soft cross-entropy at loo.temperature). Deterministic:
// order, retained rows and dropout come from (seed, request, step).
// DataError if a row has no teacher left to learn from.
LooResult loo_update(const Config& config, const ModelState& student, const LooInputs& inputs);

}  // namespace sisa
