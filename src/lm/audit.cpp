// `sisa audit`: how much a run's language models remember of the canaries
// inserted into their corpus (issue #11, docs/loo.md), for the student and
// for the teachers' ensemble:
//  * exposure (Carlini et al., "The Secret Sharer", 2019): log2 of the
//    candidate space minus log2 of the canary's rank among all secrets of
//    its format by model likelihood. The rank is estimated from `candidates`
//    random secrets (at most log2(candidates + 1) bits), and extrapolated
//    over the whole space by fitting a skew-normal to the candidates'
//    log-perplexities (Carlini's section 5.1), capped at the space's bits;
//  * extraction: greedy and beam decoding from the canary's prefix;
//  * membership: the AUC of a loss-threshold attack, inserted canaries
//    against the held-out ones (never trained on) of the same format;
//  * perplexity on the held-out text (data.test).
// A canary nobody trained on has an expected exposure of 1/ln 2 = 1.44 bits.
// Secrets are read from their file and never written to a log or the answer.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "lm/audit_stats.h"
#include "lm/lm_runtime.h"
#include "lm/loo_student.h"
#include "nn/lm_models.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "sisa/shard_trainer.h"
#include "store/closed_world.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "text/tokenizer.h"
#include "util/fs.h"
#include "util/progress.h"

namespace sisa {
namespace {

struct Canary {
  int64_t group = 0, repetitions = 0;
  std::string prefix, secret;
  std::vector<int64_t> ids;
  bool deleted = false;
  size_t digits = 0;
};

// One CSV record (RFC 4180 quotes) of a line.
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        out.back() += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      out.emplace_back();
    } else if (ch != '\r') {
      out.back() += ch;
    }
  }
  return out;
}

// The digits of a secret "3 1 4 1 5 9"; 0 if it is not of that format.
size_t secret_digits(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool digit = s[i] >= '0' && s[i] <= '9';
    if (i % 2 == 0 ? !digit : s[i] != ' ') return 0;
    n += digit;
  }
  return s.size() % 2 == 1 ? n : 0;
}

// A whole field as a 64-bit integer ("12abc", "" and overflow are not).
bool parse_int64(const std::string& s, int64_t* out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// The canaries file. Every id must be one the run held and every group must
// be listed once: a canary the run never saw would be audited as if it had.
std::vector<Canary> read_secrets(const std::string& path, const Manifest& m, const RunKeys& known,
                                 const std::string& run_dir) {
  check_input_file(path, {"--secrets", kMaxSecretsBytes, ExitCode::kUsage});
  std::ifstream in(path);
  if (!in) throw IOError("cannot read the secrets file '" + path + "'");
  std::string line;
  std::getline(in, line);
  if (csv_fields(line) != std::vector<std::string>{"group", "repetitions", "prefix", "secret", "ids"}) {
    throw DataError(path + ": the header must be group,repetitions,prefix,secret,ids (scripts/make-lm-corpus.sh)");
  }
  const std::set<int64_t> deleted_ids(m.deleted_ids.begin(), m.deleted_ids.end());
  const std::set<int64_t> deleted_groups(m.deleted_groups.begin(), m.deleted_groups.end());
  std::vector<Canary> out;
  std::set<int64_t> groups_seen;
  for (int64_t row = 2; std::getline(in, line); ++row) {
    if (line.empty()) continue;
    const auto f = csv_fields(line);
    const std::string where = path + " line " + std::to_string(row);
    if (f.size() != 5) throw DataError(where + ": expected 5 fields");
    Canary c;
    bool integers = parse_int64(f[0], &c.group) && parse_int64(f[1], &c.repetitions) && c.repetitions >= 0;
    std::istringstream ids(f[4]);
    for (std::string word; integers && ids >> word;) {
      int64_t id = 0;
      integers = parse_int64(word, &id);
      c.ids.push_back(id);
    }
    if (!integers) throw DataError(where + ": group, repetitions and ids must be integers (repetitions >= 0)");
    if (!groups_seen.insert(c.group).second) throw DataError(where + ": group " + f[0] + " is listed twice");
    for (int64_t id : c.ids) {
      if (!std::binary_search(known.ids.begin(), known.ids.end(), id) &&
          !std::binary_search(m.excluded_ids.begin(), m.excluded_ids.end(), id)) {
        throw DataError(where + ": id " + std::to_string(id) + " was never part of run '" + run_dir +
                        "' (nor left out by train --exclude-ids)");
      }
    }
    c.prefix = f[2];
    c.secret = f[3];
    c.digits = secret_digits(c.secret);
    // The line is named, never the secret.
    if (c.digits == 0) throw DataError(where + ": the secret is not space-separated digits");
    if (static_cast<int64_t>(c.ids.size()) != c.repetitions) {
      throw DataError(where + ": repetitions is " + f[1] + " but " + std::to_string(c.ids.size()) + " ids are listed");
    }
    c.deleted = deleted_groups.count(c.group) > 0 ||
                (!c.ids.empty() &&
                 std::all_of(c.ids.begin(), c.ids.end(), [&](int64_t id) { return deleted_ids.count(id) > 0; }));
    out.push_back(std::move(c));
  }
  if (out.empty()) throw DataError(path + ": no canaries");
  return out;
}

struct CanaryResult {
  double log_likelihood = 0.0, loss = 0.0, exposure = 0.0, extrapolated = 0.0;
  bool greedy = false, beam = false;
};

// A canary's format: its prefix and how many digits its secret has.
using Format = std::pair<std::string, size_t>;

// The log-likelihoods of `candidates` random secrets of each canary format,
// one pool per format, scored once. DataError if a canary is longer than
// the model reads.
std::map<Format, std::vector<double>> score_candidates(const std::string& name, const LmScorer& scorer,
                                                       const Tokenizer& tok, const std::vector<Canary>& canaries,
                                                       const AuditRequest& req, Progress& progress) {
  std::map<Format, std::vector<double>> pools;
  for (const auto& c : canaries) {
    pools[{c.prefix, c.digits}];
    const auto n = static_cast<int64_t>(tok.encode(c.prefix + " " + c.secret).size());
    if (n > scorer.max_tokens()) {
      throw DataError("canary group " + std::to_string(c.group) + " is " + std::to_string(n) +
                      " tokens long; the model reads at most data.max_tokens=" + std::to_string(scorer.max_tokens()));
    }
  }
  uint64_t pool_index = 0;
  for (auto& [format, scores] : pools) {
    std::vector<TokenIds> seqs;
    for (int64_t i = 0; i < req.candidates; ++i) {
      std::string secret;
      for (size_t d = 0; d < format.second; ++d) {
        const uint64_t digit = derive(req.seed, "audit-candidate", {pool_index, static_cast<uint64_t>(i), d}) % 10;
        secret += (d ? " " : "") + std::to_string(digit);
      }
      seqs.push_back(tok.encode(format.first + " " + secret));
    }
    constexpr size_t kChunk = 2000;
    for (size_t s = 0; s < seqs.size(); s += kChunk) {
      const std::vector<TokenIds> part(seqs.begin() + static_cast<std::ptrdiff_t>(s),
                                       seqs.begin() + static_cast<std::ptrdiff_t>(std::min(seqs.size(), s + kChunk)));
      for (const auto& lp : scorer.token_log_probs(part)) scores.push_back(sum_of(lp));
      progress.advance(static_cast<int64_t>(part.size()));
      spdlog::info("[audit] {}: candidates {}/{} {}% {}", name, std::min(seqs.size(), s + kChunk), seqs.size(),
                   progress.percent(), progress.eta());
    }
    ++pool_index;
  }
  return pools;
}

// One canary against its format's pool (`scores`, and the skew-normal fitted
// to their negative log-likelihoods): exposure, loss, extraction.
CanaryResult audit_canary(const Canary& c, const LmScorer& scorer, const Tokenizer& tok,
                          const std::vector<double>& scores, const SkewNormal& fit, int64_t beam) {
  CanaryResult r;
  const auto full = tok.encode(c.prefix + " " + c.secret);
  const auto prompt = tok.encode(c.prefix);
  const auto lp = scorer.token_log_probs({full})[0];
  r.log_likelihood = sum_of(lp);
  r.loss = -r.log_likelihood / static_cast<double>(std::max<size_t>(lp.size(), 1));
  const double above =
      static_cast<double>(std::count_if(scores.begin(), scores.end(), [&](double s) { return s > r.log_likelihood; }));
  const double space_bits = static_cast<double>(c.digits) * std::log2(10.0);
  r.exposure = std::log2(static_cast<double>(scores.size() + 1)) - std::log2(above + 1.0);
  const double tail = fit.cdf(-r.log_likelihood);
  r.extrapolated = tail > 0.0 ? std::min(space_bits, -std::log2(tail)) : space_bits;
  // Extraction: the secret's tokens follow the prefix's (a prefix that
  // tokenizes differently inside the canary is prompted as it is there).
  const bool aligned = prompt.size() < full.size() && std::equal(prompt.begin(), prompt.end(), full.begin());
  const size_t k = aligned ? prompt.size() : full.size() - c.digits;
  const TokenIds head(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(k)),
      tail_ids(full.begin() + static_cast<std::ptrdiff_t>(k), full.end());
  const auto n_new = static_cast<int64_t>(tail_ids.size());
  r.greedy = scorer.generate(head, n_new, 1, 0) == tail_ids;
  r.beam = scorer.beam_search(head, n_new, beam) == tail_ids;
  return r;
}

// Per (repetitions, deleted): mean exposure and its standard error,
// extraction counts, and membership against the held-out canaries.
nlohmann::json summarize(const std::vector<Canary>& canaries, const std::vector<CanaryResult>& results) {
  std::vector<double> heldout_losses;
  for (size_t i = 0; i < canaries.size(); ++i) {
    if (canaries[i].repetitions == 0) heldout_losses.push_back(results[i].loss);
  }
  std::map<std::pair<int64_t, bool>, std::vector<size_t>> groups;
  for (size_t i = 0; i < canaries.size(); ++i) groups[{canaries[i].repetitions, canaries[i].deleted}].push_back(i);
  nlohmann::json summary = nlohmann::json::array();
  for (const auto& [key, members] : groups) {
    double extrapolated = 0.0;
    int64_t greedy = 0, beam = 0;
    std::vector<double> losses, exposures;
    for (size_t i : members) {
      exposures.push_back(results[i].exposure);
      extrapolated += results[i].extrapolated;
      greedy += results[i].greedy;
      beam += results[i].beam;
      losses.push_back(results[i].loss);
    }
    const double n = static_cast<double>(members.size());
    const double a = key.first > 0 ? auc(losses, heldout_losses) : std::nan("");
    const auto number_or_null = [](double x) { return std::isnan(x) ? nlohmann::json() : nlohmann::json(x); };
    summary.push_back({{"repetitions", key.first},
                       {"deleted", key.second},
                       {"canaries", members.size()},
                       {"mean_exposure", sum_of(exposures) / n},
                       {"mean_exposure_standard_error", number_or_null(standard_error(exposures))},
                       {"mean_exposure_extrapolated", extrapolated / n},
                       {"greedy_extracted", greedy},
                       {"beam_extracted", beam},
                       {"membership_auc", number_or_null(a)},
                       {"membership_auc_standard_error",
                        number_or_null(auc_standard_error(a, losses.size(), heldout_losses.size()))}});
  }
  return summary;
}

// Perplexity, rows and tokens of the held-out text.
void add_heldout_perplexity(const LmScorer& scorer, const Dataset& heldout, nlohmann::json* out) {
  std::vector<TokenIds> rows;
  const auto w = static_cast<size_t>(heldout.width);
  for (size_t i = 0; i < heldout.size(); ++i) {
    const auto* t = heldout.tokens.data() + i * w;
    rows.emplace_back(t, t + heldout.lengths[i]);
  }
  double sum = 0.0;
  int64_t count = 0;
  for (const auto& lp : scorer.token_log_probs(rows)) {
    sum += sum_of(lp);
    count += static_cast<int64_t>(lp.size());
  }
  (*out)["heldout_perplexity"] = std::exp(-sum / static_cast<double>(std::max<int64_t>(count, 1)));
  (*out)["heldout_rows"] = heldout.size();
  (*out)["heldout_tokens"] = count;
}

nlohmann::json audit_model(const std::string& name, const LmScorer& scorer, const Tokenizer& tok,
                           const std::vector<Canary>& canaries, const AuditRequest& req, const Dataset* heldout) {
  spdlog::info("[audit] {}: {} canaries against {} candidates each", name, canaries.size(), req.candidates);
  std::set<Format> formats;
  for (const auto& c : canaries) formats.insert({c.prefix, c.digits});
  Progress progress(static_cast<int64_t>(formats.size()) * req.candidates + static_cast<int64_t>(canaries.size()));
  const auto pools = score_candidates(name, scorer, tok, canaries, req, progress);
  std::map<Format, SkewNormal> fits;
  for (const auto& [format, scores] : pools) {
    std::vector<double> nll;
    for (double s : scores) nll.push_back(-s);
    fits[format] = SkewNormal::fit(nll);
  }
  std::vector<CanaryResult> results;
  nlohmann::json per = nlohmann::json::array();
  for (const auto& c : canaries) {
    const Format format{c.prefix, c.digits};
    const CanaryResult r = audit_canary(c, scorer, tok, pools.at(format), fits.at(format), req.beam);
    progress.advance(1);
    results.push_back(r);
    per.push_back({{"group", c.group},
                   {"repetitions", c.repetitions},
                   {"deleted", c.deleted},
                   {"exposure", r.exposure},
                   {"exposure_extrapolated", r.extrapolated},
                   {"loss", r.loss},
                   {"greedy_extracted", r.greedy},
                   {"beam_extracted", r.beam}});
  }
  nlohmann::json out = {
      {"guarantee", LmRuntime::guarantee(name)}, {"by_repetitions", summarize(canaries, results)}, {"canaries", per}};
  if (heldout && heldout->size() > 0) add_heldout_perplexity(scorer, *heldout, &out);
  return out;
}

}  // namespace

// Per LOO update the student received, how it stopped (from the request's
// receipt): the criterion before and after, its steps, whether it was
// reached, and the warning when the cap stopped it.
static nlohmann::json student_updates(const RunDir& run, const Manifest& m) {
  nlohmann::json out = nlohmann::json::array();
  for (uint64_t seq : m.student->loo_updates) {
    nlohmann::json u = {{"request", seq}};
    const std::string path = receipt_file(seq);
    const auto ref =
        std::find_if(m.receipts.begin(), m.receipts.end(), [&](const FileRef& f) { return f.path == path; });
    try {
      if (ref == m.receipts.end()) throw CorruptionError("'" + run.path(path) + "' is not in the manifest");
      const MappedFile file = read_verified(run, *ref);
      const ByteView bytes = file.view();
      const auto s = nlohmann::json::parse(bytes.data, bytes.data + bytes.size).at("student");
      for (const char* key : {"stop", "steps", "criterion", "warning"}) {
        if (s.contains(key)) u[key] = s[key];
      }
      if (u.contains("criterion")) u["criterion"].erase("checks");
    } catch (const std::exception& e) {
      u["error"] = std::string("receipt unreadable: ") + e.what();
    }
    out.push_back(u);
  }
  return out;
}

nlohmann::json audit(const AuditRequest& req) {
  if (req.secrets.empty()) throw UsageError("--secrets is required (the canaries file of scripts/make-lm-corpus.sh)");
  if (req.candidates < 100 || req.candidates > 10000000) throw UsageError("--candidates must be in 100..10000000");
  if (req.beam < 1 || req.beam > 1000) throw UsageError("--beam must be in 1..1000");
  if (req.heldout_rows < 0) throw UsageError("--heldout-rows must be >= 0 (0: every test row)");
  if (req.model != "both" && req.model != "student" && req.model != "teachers") {
    throw UsageError("--model must be student, teachers or both, not '" + req.model + "'");
  }
  require_closed_world(req.run_dir);
  const RunDir run(req.run_dir, nullptr);
  const Manifest m = load_manifest(req.run_dir);
  const Config c = load_run_config(run, m);
  set_compute_threads(c.train.threads);
  const auto rt = LmRuntime::load(run, m, c);
  const auto canaries = read_secrets(req.secrets, m, known_keys(run, m), req.run_dir);
  std::unique_ptr<Dataset> heldout;
  if (!c.data.test.empty()) {
    heldout = std::make_unique<Dataset>(load_source(c.data, Split::kTest));
    if (req.heldout_rows > 0 && static_cast<int64_t>(heldout->size()) > req.heldout_rows) {
      std::vector<size_t> first(static_cast<size_t>(req.heldout_rows));
      for (size_t i = 0; i < first.size(); ++i) first[i] = i;
      *heldout = heldout->select(first);
    }
  }
  nlohmann::json models;
  std::vector<std::string> names;
  if (req.model != "teachers" && m.student) names.push_back("student");
  if (req.model == "student" && !m.student)
    throw UsageError("run '" + req.run_dir + "' has no student (loo.student is off)");
  if (req.model != "student") names.push_back("teachers");
  for (const auto& name : names) {
    models[name] = audit_model(name, rt->scorer(name), rt->tokenizer(), canaries, req, heldout.get());
  }
  if (models.contains("student")) models["student"]["updates"] = student_updates(run, m);
  return {{"run_dir", req.run_dir},
          {"last_applied_request", m.last_seq},
          {"student_generation", m.student ? nlohmann::json(m.student->generation) : nlohmann::json()},
          {"candidates", req.candidates},
          {"seed", req.seed},
          {"beam", req.beam},
          {"expected_exposure_unseen", 1.0 / std::log(2.0)},
          {"models", models}};
}

}  // namespace sisa
