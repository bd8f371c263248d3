#include "serve/views.h"

#include "config/model_spec.h"
#include "lm/lm_runtime.h"
#include "util/sha256.h"

namespace sisa {

using json = nlohmann::json;

json model_json(const Config& c) {
  json m = {{"family", c.model.type}, {"exactness", "exact: every shard equals a retrain without the deleted data"}};
  if (c.loo.student) {
    m["exactness"] = "teachers (the shards): exact; the student: approximate (leave-one-out), see \"student\"";
  }
  for (const auto& o : model_spec(c.model).options) {
    if (!o.artifact) continue;
    const auto& path = c.model.get<std::string>(o.key);
    if (path.empty()) continue;
    m[o.key] = {{"path", path},
                {"sha256", sha256_file(path)},
                {"note", "data inside a pretrained " + o.key + " is outside the deletion guarantee"}};
  }
  return m;
}

json status_json(const DeletionService& service, const StatusFacts& facts) {
  const Config& c = service.config();
  const auto e = service.ensemble();
  json shards = json::array();
  for (const auto& s : e->shards()) {
    shards.push_back({{"shard", s.shard},
                      {"generation", s.generation},
                      {"n_samples", s.n_samples},
                      {"fingerprint", s.fingerprint},
                      {"state_digest", s.state_digest}});
  }
  const std::string paused = service.paused_reason();
  const bool tokens = model_input(c) == InputKind::kTokens;
  const auto& lm = e->language_models();
  return {
      {"shard_status", shards},
      {"last_applied_request", e->last_applied()},
      {"pending_requests", service.pending_ids()},
      {"deletions", !facts.deletions_enabled ? "disabled (no --token-file)"
                    : paused.empty()         ? "enabled"
                                             : "paused: " + paused},
      {"damaged_receipts", service.damaged_receipts()},
      {"input",
       tokens ? json{{"kind", facts.text ? "text" : "token ids"}, {"max_tokens", c.data.max_tokens}}
              : json{{"kind", "features"}, {"width", e->width()}, {"scale", c.data.scale}, {"offset", c.data.offset}}},
      {"model", facts.model},
      {"student", lm && lm->student_generation() >= 0
                      ? json{{"generation", lm->student_generation()},
                             {"guarantee", LmRuntime::guarantee("student")},
                             {"audit", "sisa audit --run-dir <run> --secrets <canaries.csv>"}}
                      : json()},
      {"classes", e->classes()}};
}

json health_json(const DeletionService& service, bool* ok) {
  const std::string paused = service.paused_reason();
  const bool stale = !service.stale_reason().empty();
  *ok = !stale;
  return {{"status", stale ? "models_out_of_date" : "ok"},
          {"deletions", paused.empty() ? "ok" : "paused"},
          {"models", service.ensemble()->voting_shards() > 0 ? "ok" : "none"}};
}

std::string metrics_text(const DeletionService& service, const Metrics& metrics) {
  const auto c = service.counts();
  const auto e = service.ensemble();
  std::string out;
  out += prometheus_scalar("sisa_deletions_pending", "gauge", "Deletion requests accepted and not yet applied.",
                           static_cast<double>(c.pending));
  out += prometheus_scalar("sisa_deletions_applied_total", "counter", "Deletion requests applied by this process.",
                           static_cast<double>(c.applied));
  out += prometheus_scalar("sisa_deletions_failed_total", "counter",
                           "Deletion requests that failed (deletions then pause).", static_cast<double>(c.failed));
  out += prometheus_scalar("sisa_last_applied_request", "gauge", "The last deletion request the served models include.",
                           static_cast<double>(e->last_applied()));
  out += "# HELP sisa_shard_generation Generation of each served shard (bumped by every deletion that retrains it).\n";
  out += "# TYPE sisa_shard_generation gauge\n";
  for (const auto& s : e->shards()) {
    out += "sisa_shard_generation{shard=\"" + std::to_string(s.shard) + "\"} " + std::to_string(s.generation) + "\n";
  }
  return metrics.render(out);
}

}  // namespace sisa
