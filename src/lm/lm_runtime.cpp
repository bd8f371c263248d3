// `sisa generate` and `sisa score`, and the snapshot of a run's language
// models that they and `sisa serve` answer through (src/lm_runtime.h).
#include "lm/lm_runtime.h"

#include <cmath>
#include <filesystem>

#include "config/model_spec.h"
#include "lm/loo_student.h"
#include "nn/lm_models.h"
#include "sisa/errors.h"
#include "sisa/pretrain.h"
#include "sisa/run.h"
#include "sisa/shard_trainer.h"
#include "store/closed_world.h"
#include "store/run_files.h"
#include "text/tokenizer.h"
#include "util/sha256.h"

namespace sisa {

LmRuntime::~LmRuntime() = default;

std::shared_ptr<const LmRuntime> LmRuntime::load(const RunDir& run, const Manifest& m, const Config& c) {
  std::vector<std::shared_ptr<const ModelState>> teachers;
  if (c.data.unlabeled) {
    for (auto& t : load_teachers(run, m)) teachers.push_back(std::move(t.second));
  }
  return load(run, m, c, teachers);
}

std::shared_ptr<const LmRuntime> LmRuntime::load(const RunDir& run, const Manifest& m, const Config& c,
                                                 const std::vector<std::shared_ptr<const ModelState>>& teachers) {
  if (!c.data.unlabeled) {
    throw UsageError("run '" + run.root + "' holds model family '" + c.model.type +
                     "', not a language model: generate and score need model.type: lm");
  }
  std::shared_ptr<LmRuntime> rt(new LmRuntime());
  rt->tokenizer_ = std::make_unique<Tokenizer>(c.data.tokenizer);
  if (!teachers.empty()) rt->teachers_ = std::make_unique<LmScorer>(c, teachers);
  if (m.student) {
    rt->student_ = std::make_unique<LmScorer>(
        c, std::vector<std::shared_ptr<const ModelState>>{std::make_shared<const ModelState>(load_student(run, m))});
    rt->student_generation_ = m.student->generation;
  }
  rt->last_applied_ = m.last_seq;
  return rt;
}

const char* LmRuntime::guarantee(const std::string& model) {
  return model == "student" ? kStudentGuarantee : kTeachersGuarantee;
}

const LmScorer& LmRuntime::scorer(const std::string& model) const {
  const std::string name = model.empty() ? default_model() : model;
  if (name == "student") {
    if (!student_) throw UsageError("this run has no student (loo.student is off); ask for model \"teachers\"");
    return *student_;
  }
  if (name == "teachers") {
    if (!teachers_) throw NoModelError("every shard is empty: the teachers have nothing to say");
    return *teachers_;
  }
  throw UsageError("model must be \"student\" or \"teachers\", not \"" + name + "\"");
}

namespace {

// The ids of a prompt or text the model reads whole. A text longer than the
// tokenizer's bound for the model's positions is refused before it is
// encoded: no text costs more than that bound to answer.
std::vector<int32_t> encode_text(const Tokenizer& tok, const std::string& text, const char* what, int64_t max_tokens) {
  if (text.size() > tok.byte_bound(max_tokens)) {
    throw DataError(std::string(what) + " has " + std::to_string(text.size()) + " bytes; the model reads at most " +
                    "data.max_tokens=" + std::to_string(max_tokens) + " tokens, and texts over " +
                    std::to_string(tok.byte_bound(max_tokens)) + " bytes are refused before tokenizing");
  }
  if (!valid_utf8(text)) throw DataError(std::string(what) + " is not valid UTF-8");
  if (blank_text(text)) throw DataError(std::string(what) + " is empty");
  return tok.encode(text);
}

}  // namespace

nlohmann::json LmRuntime::generate(const std::string& prompt, int64_t max_tokens, int64_t top_k, uint64_t seed,
                                   const std::string& model) const {
  const std::string name = model.empty() ? default_model() : model;
  const LmScorer& s = scorer(name);
  if (max_tokens < 1 || max_tokens > 65536) throw UsageError("max_tokens must be in 1..65536");
  if (top_k < 0 || top_k > 1000000) throw UsageError("top_k must be in 0..1000000");
  const auto ids = encode_text(*tokenizer_, prompt, "the prompt", s.max_tokens());
  if (static_cast<int64_t>(ids.size()) >= s.max_tokens()) {
    throw DataError("the prompt has " + std::to_string(ids.size()) +
                    " tokens; the model reads at most data.max_tokens=" + std::to_string(s.max_tokens()) + " in all");
  }
  const auto out = s.generate(ids, max_tokens, top_k, seed);
  return {{"model", name},
          {"guarantee", guarantee(name)},
          {"prompt_tokens", ids.size()},
          {"tokens", out},
          {"text", tokenizer_->decode(out)},
          {"decoding", top_k <= 1 ? "greedy" : "top-k"},
          {"top_k", top_k},
          {"seed", seed},
          {"last_applied_request", last_applied_}};
}

nlohmann::json LmRuntime::score(const std::string& text, const std::string& model) const {
  const std::string name = model.empty() ? default_model() : model;
  const LmScorer& s = scorer(name);
  const auto ids = encode_text(*tokenizer_, text, "the text", s.max_tokens());
  if (ids.size() < 2)
    throw DataError("the text has " + std::to_string(ids.size()) + " token(s); scoring needs 2 or more");
  const auto lp = s.token_log_probs({ids})[0];
  double sum = 0.0;
  for (double v : lp) sum += v;
  return {{"model", name},
          {"guarantee", guarantee(name)},
          {"tokens", ids},
          {"log_probs", lp},
          {"log_likelihood", sum},
          {"perplexity", std::exp(-sum / static_cast<double>(lp.size()))},
          {"last_applied_request", last_applied_}};
}

namespace {

std::shared_ptr<const LmRuntime> open_runtime(const std::string& run_dir) {
  require_closed_world(run_dir);
  const RunDir run(run_dir, nullptr);
  const Manifest m = load_manifest(run_dir);
  const Config c = load_run_config(run, m);
  set_compute_threads(c.train.threads);
  return LmRuntime::load(run, m, c);
}

}  // namespace

nlohmann::json generate(const GenerateRequest& r) {
  return open_runtime(r.run_dir)->generate(r.prompt, r.max_tokens, r.top_k, r.seed, r.model);
}

nlohmann::json score(const ScoreRequest& r) { return open_runtime(r.run_dir)->score(r.text, r.model); }

}  // namespace sisa
