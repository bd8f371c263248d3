// A run's language models loaded for queries, as one immutable snapshot: the
// LOO student (if the run has one) and the teachers' ensemble, with the
// run's tokenizer. `sisa generate`, `sisa score` and `sisa serve`'s
// /v1/generate and /v1/score answer through it, so the CLI and the server
// give the same answer to the same request.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/model_state.h"
#include "store/run_dir.h"

namespace sisa {

class LmScorer;
class Tokenizer;

class LmRuntime {
 public:
  // UsageError if the run's family is not a language model. The teachers'
  // final states are read from the run, or taken from `teachers` (the
  // non-empty shards', in shard order) when the caller has them loaded.
  static std::shared_ptr<const LmRuntime> load(const RunDir& run, const Manifest& m, const Config& c);
  static std::shared_ptr<const LmRuntime> load(const RunDir& run, const Manifest& m, const Config& c,
                                               const std::vector<std::shared_ptr<const ModelState>>& teachers);
  ~LmRuntime();

  // model: "student" (the default when the run has one) or "teachers". UsageError otherwise.
  const LmScorer& scorer(const std::string& model) const;
  std::string default_model() const { return student_ ? "student" : "teachers"; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // What the model's answers are worth: exact (teachers) or approximate (student).
  static const char* guarantee(const std::string& model);

  // {"model", "guarantee", "text", "tokens", ...}: the continuation of
  // `prompt`, greedy (top_k <= 1) or top-k sampled from `seed`.
  nlohmann::json generate(const std::string& prompt, int64_t max_tokens, int64_t top_k, uint64_t seed,
                          const std::string& model) const;
  // {"model", "guarantee", "tokens", "log_probs", "log_likelihood", "perplexity"}.
  nlohmann::json score(const std::string& text, const std::string& model) const;

  uint64_t last_applied() const { return last_applied_; }
  int64_t student_generation() const { return student_generation_; }

 private:
  LmRuntime() = default;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<LmScorer> student_, teachers_;
  uint64_t last_applied_ = 0;
  int64_t student_generation_ = -1;
};

}  // namespace sisa
