// Language models of a run for the commands that read them (the LOO
// student, the audit, generate and score), with libtorch behind a pimpl
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

}  // namespace sisa
