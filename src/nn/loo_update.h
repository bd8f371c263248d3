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
  // Rows no model of the run saw (loo.stop: criterion): the update steps
  // until the deleted rows look like them. Null: exactly loo.steps steps.
  const Dataset* heldout = nullptr;
  uint64_t request = 0;  // the deletion's sequence number: seeds its draws
};
// One check of the stopping rule: after `step` steps, the deleted groups'
// largest and mean z, the held-out rows' perplexity and the step size the
// update goes on with; rolled_back: the check found the held-out rows harmed
// past the budget, so the weights went back to the previous check's.
struct LooCheck {
  int64_t step = 0;
  double max_z = 0.0, mean_z = 0.0, heldout_perplexity = 0.0, lr = 0.0;
  bool rolled_back = false;
};
struct LooResult {
  ModelState student;
  int64_t steps = 0;
  double kl_before = 0.0, kl_after = 0.0;           // mean per-token KL(target || student) on the deleted rows
  bool target_cached = false;                       // the target fit loo.target_cache_mb and was computed once
  std::vector<std::vector<int64_t>> teachers_used;  // per deleted row: the teachers averaged
  // The stopping rule (with heldout rows): the deleted groups' largest and
  // mean z before and after, the levels they must reach, whether they did
  // (else the cap stopped it), the groups and the step size it ended at.
  double max_z_before = 0.0, max_z_after = 0.0, max_z_threshold = 0.0;
  double mean_z_before = 0.0, mean_z_after = 0.0, mean_z_threshold = 0.0;
  bool criterion_reached = true;
  int64_t criterion_groups = 0;
  double final_lr = 0.0;
  // The student's mean per-token log-likelihood of the held-out rows before
  // and after: what the update must not spend.
  double heldout_before = 0.0, heldout_after = 0.0;
  std::vector<LooCheck> checks;  // every check, in order (the first before any step)
};
// Fine-tunes `student` on the deleted rows toward the mean next-token
// distribution of the teachers that did not hold each row (soft
// cross-entropy at loo.temperature): with held-out rows, until the stopping
// rule holds (at most loo.max_steps; docs/loo.md), else for loo.steps Adam
// steps at loo.lr. Deterministic: order, retained rows and dropout come
// from (seed, request, step), the rule's checks from the same states.
// DataError if a row has no teacher left to learn from.
LooResult loo_update(const Config& config, const ModelState& student, const LooInputs& inputs);

}  // namespace sisa
