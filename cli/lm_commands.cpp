// The language-model commands: audit, generate, score.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "sisa/run.h"

namespace sisa::cli {
namespace {

// "-" for null, else two decimals.
std::string fixed2(const nlohmann::json& x) {
  if (x.is_null()) return "-";
  char s[32];
  std::snprintf(s, sizeof s, "%.2f", x.get<double>());
  return s;
}

std::string audit_text(const AuditRequest& req, const nlohmann::json& r) {
  std::string human = "audit of " + req.run_dir + " (" + r["candidates"].dump() +
                      " candidates; a canary never trained on scores 1.44 bits on average)\n"
                      "model     reps deleted canaries exposure (+-SE) extrapolated greedy beam  AUC (+-SE)";
  for (const auto& [name, m] : r["models"].items()) {
    for (const auto& g : m["by_repetitions"]) {
      char line[240];
      std::snprintf(line, sizeof line, "\n%-9s %4lld %-7s %8lld %8.2f (%4s) %12.2f %6lld %4lld  %s (%s)", name.c_str(),
                    static_cast<long long>(g["repetitions"].get<int64_t>()), g["deleted"].get<bool>() ? "yes" : "no",
                    static_cast<long long>(g["canaries"].get<int64_t>()), g["mean_exposure"].get<double>(),
                    fixed2(g["mean_exposure_standard_error"]).c_str(), g["mean_exposure_extrapolated"].get<double>(),
                    static_cast<long long>(g["greedy_extracted"].get<int64_t>()),
                    static_cast<long long>(g["beam_extracted"].get<int64_t>()), fixed2(g["membership_auc"]).c_str(),
                    fixed2(g["membership_auc_standard_error"]).c_str());
      human += line;
    }
    if (m.contains("heldout_perplexity")) {
      human += "\n" + name + ": held-out perplexity " + std::to_string(m["heldout_perplexity"].get<double>()) + "; " +
               m["guarantee"].get<std::string>();
    }
  }
  return human;
}

Command audit(CLI::App& app, const Globals& g, Cluster&) {
  auto req = std::make_shared<AuditRequest>();
  auto* sub = app.add_subcommand(
      "audit", "Language models: canary exposure, extraction, membership AUC and held-out perplexity");
  sub->add_option("-r,--run-dir", req->run_dir, "Run directory")->required();
  sub->add_option("--secrets", req->secrets, "The canaries file (scripts/make-lm-corpus.sh)")->required();
  sub->add_option("--model", req->model, "student | teachers | both")->capture_default_str();
  sub->add_option("--candidates", req->candidates, "Random secrets each canary is ranked against")
      ->capture_default_str();
  sub->add_option("--beam", req->beam, "Beam width of the extraction attack")->capture_default_str();
  sub->add_option("--seed", req->seed, "Draws the candidates")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--heldout-rows", req->heldout_rows, "Perplexity on the first N test rows (0: all)")
      ->capture_default_str();
  return {sub, [req, &g] {
            const auto r = sisa::audit(*req);
            print(r, g.json, audit_text(*req, r));
            return 0;
          }};
}

Command generate(CLI::App& app, const Globals& g, Cluster&) {
  auto req = std::make_shared<GenerateRequest>();
  auto* sub = app.add_subcommand("generate", "Language models: continue a prompt (the student, or the teachers)");
  sub->add_option("-r,--run-dir", req->run_dir, "Run directory")->required();
  sub->add_option("--prompt", req->prompt, "Text to continue")->required();
  sub->add_option("--max-tokens", req->max_tokens, "Tokens to add at most")->capture_default_str();
  sub->add_option("--top-k", req->top_k, "Sample from the k likeliest tokens (<= 1: greedy)")->capture_default_str();
  sub->add_option("--seed", req->seed, "Seed of top-k sampling")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--model", req->model, "student | teachers (default: the student if the run has one)");
  return {sub, [req, &g] {
            const auto r = sisa::generate(*req);
            print(r, g.json,
                  r["text"].get<std::string>() + "\n(" + r["model"].get<std::string>() + ": " +
                      r["guarantee"].get<std::string>() + ")");
            return 0;
          }};
}

Command score(CLI::App& app, const Globals& g, Cluster&) {
  auto req = std::make_shared<ScoreRequest>();
  auto* sub = app.add_subcommand("score", "Language models: per-token log-probabilities and perplexity of a text");
  sub->add_option("-r,--run-dir", req->run_dir, "Run directory")->required();
  sub->add_option("--text", req->text, "Text to score")->required();
  sub->add_option("--model", req->model, "student | teachers (default: the student if the run has one)");
  return {sub, [req, &g] {
            const auto r = sisa::score(*req);
            print(r, g.json,
                  "log-likelihood " + r["log_likelihood"].dump() + ", perplexity " + r["perplexity"].dump() + " (" +
                      r["model"].get<std::string>() + ": " + r["guarantee"].get<std::string>() + ")");
            return 0;
          }};
}

}  // namespace

std::vector<Command> lm_commands(CLI::App& app, const Globals& g, Cluster& cluster) {
  return {audit(app, g, cluster), generate(app, g, cluster), score(app, g, cluster)};
}

}  // namespace sisa::cli
