// Language models of a run for the commands that read or update them (the
// LOO student, the audit, generate and score), with libtorch behind a pimpl
// so their callers compile without it (issue #11; src/nn/lm_models.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/model_state.h"

namespace sisa {

using TokenIds = std::vector<int32_t>;

// One language model (the student) or an ensemble (the teachers), whose
// next-token distribution is the mean of its members' probabilities.
// Inference only: dropout off.
class LmScorer {
 public:
  LmScorer(const Config& config, const std::vector<std::shared_ptr<const ModelState>>& members);
  ~LmScorer();
  LmScorer(LmScorer&&) noexcept;

  // For each sequence, log p(token t | tokens before t) for t = 1..len-1 (the
  // first token is context). Sequences longer than the model's positions
  // (data.max_tokens) are a DataError.
  std::vector<std::vector<double>> token_log_probs(const std::vector<TokenIds>& sequences) const;
  // Continues `prompt` by up to `max_new` tokens (fewer at data.max_tokens):
  // greedy when top_k <= 1, else sampled from the top k with a generator
  // seeded from `seed` alone, so one seed gives one text.
  TokenIds generate(const TokenIds& prompt, int64_t max_new, int64_t top_k, uint64_t seed) const;
  // The `n_new`-token continuation of highest log-likelihood found by a beam
  // search of `width` beams.
  TokenIds beam_search(const TokenIds& prompt, int64_t n_new, int64_t width) const;
  // Positions the model has: the longest sequence it reads.
  int64_t max_tokens() const;
  int64_t members() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Trains the LOO student: one stage over every row, for loo.epochs (or
// train.epochs) epochs, with the shard trainer's rules and its own streams
// (the "shard" one past the teachers). `rows` sorted by id.
ModelState train_student(const Config& config, Dataset rows, const std::function<void(int64_t, double)>& on_epoch);

// One leave-one-out update of the student (issue #11, docs/loo.md).
struct LooInputs {
  const Dataset* deleted = nullptr;          // the deleted rows (tokens)
  std::vector<int64_t> holder;               // per deleted row: the teacher (shard) that held it
  // Teachers after their exact retrain: (shard, final state); empty shards left out.
  std::vector<std::pair<int64_t, std::shared_ptr<const ModelState>>> teachers;
  const Dataset* retained = nullptr;         // rows still held, for loo.retain_batch (else null)
  uint64_t request = 0;                      // the deletion's sequence number: seeds its draws
};
struct LooResult {
  ModelState student;
  int64_t steps = 0;
  double kl_before = 0.0, kl_after = 0.0;    // mean per-token KL(target || student) on the deleted rows
  bool target_cached = false;                // the target fit loo.target_cache_mb and was computed once
  std::vector<std::vector<int64_t>> teachers_used;  // per deleted row: the teachers averaged
};
// Fine-tunes `student` for loo.steps Adam steps at loo.lr on the deleted
// rows toward the mean next-token distribution of the teachers that did not
// hold each row (soft cross-entropy at loo.temperature). Deterministic:
// order, retained rows and dropout come from (seed, request, step).
// DataError if a row has no teacher left to learn from.
LooResult loo_update(const Config& config, const ModelState& student, const LooInputs& inputs);

}  // namespace sisa
