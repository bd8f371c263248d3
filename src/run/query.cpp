// Read-only commands: predict, verify (retrain in memory and compare), status.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>

#include "config/environment.h"
#include "config/model_spec.h"
#include "format/deletion_log.h"
#include "lm/loo_student.h"
#include "run/ensemble.h"
#include "run/seams.h"
#include "run/shard_jobs.h"
#include "run/stages.h"
#include "sisa/errors.h"
#include "sisa/run.h"
#include "store/closed_world.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "util/fs.h"

namespace sisa {
namespace {

// Predictions need no log: a damaged one is reported, not fatal.
size_t pending_count(const std::string& run_dir) {
  try {
    return pending_requests(read_log(in_run(run_dir, kLogFile))).size();
  } catch (const CorruptionError& e) {
    spdlog::warn("{} (sisa repair --rebuild-log explains the way back)", e.what());
    return 0;
  }
}

// The training samples the run holds now, from its own stores (deleted
// samples are gone from them), in id order.
Dataset remaining_training_data(const RunDir& run, const Manifest& m) {
  Dataset all = load_all_rows(run, m);
  if (all.size() == 0) throw NoModelError("every sample of the run has been deleted: no training data is left");
  return all;
}

}  // namespace

nlohmann::json predict(const PredictRequest& req) {
  if (req.aggregate != "mean" && req.aggregate != "vote") {
    throw UsageError("--aggregate must be mean or vote, got '" + req.aggregate + "'");
  }
  if (req.split != "test" && req.split != "train") {
    throw UsageError("--split must be test or train, got '" + req.split + "'");
  }
  const RunDir run(req.run_dir, nullptr);
  require_closed_world(req.run_dir);
  const Manifest m = load_manifest(req.run_dir);
  const Config c = load_run_config(run, m);
  if (model_spec(c.model).language_model) {
    throw UsageError("model family '" + c.model.type + "' is a language model: predict scores classes; it has none");
  }
  if (const size_t pending = pending_count(req.run_dir)) {
    spdlog::warn(
        "{} deletion request(s) accepted but not yet applied; predictions come from the "
        "last published models (run sisa forget or recover to apply them)",
        pending);
  }
  const Dataset test = req.split == "test" ? load_source(c.data, Split::kTest) : remaining_training_data(run, m);
  check_model_inputs(test, c, req.split == "test" ? c.data.test : run.root);
  set_compute_threads(c.train.threads);
  const int64_t n = static_cast<int64_t>(test.size()), k = c.data.num_classes;
  const auto ensemble = Ensemble::load(run, m, c);
  const auto t0 = std::chrono::steady_clock::now();  // inference only
  const EnsembleOutput out = ensemble->predict(test.view(), false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t right_mean = 0, right_vote = 0;
  const auto& pred_mean = out.label_mean;
  const auto& pred_vote = out.label_vote;
  for (int64_t i = 0; i < n; ++i) {
    right_mean += pred_mean[i] == test.labels[i];
    right_vote += pred_vote[i] == test.labels[i];
  }
  if (!req.output_csv.empty()) {
    std::string csv = "id,label,predicted";
    for (int64_t j = 0; j < k; ++j) csv += ",p" + std::to_string(j);
    csv += "\n";
    const auto& chosen = req.aggregate == "mean" ? pred_mean : pred_vote;
    char buf[32];
    for (int64_t i = 0; i < n; ++i) {
      csv += std::to_string(test.ids[i]) + "," + std::to_string(test.labels[i]) + "," + std::to_string(chosen[i]);
      for (int64_t j = 0; j < k; ++j) {
        std::snprintf(buf, sizeof buf, ",%.6g", out.mean[i * k + j]);
        csv += buf;
      }
      csv += "\n";
    }
    atomic_write(Env::posix(), req.output_csv, csv);
  }
  const double acc_mean = static_cast<double>(right_mean) / static_cast<double>(n);
  const double acc_vote = static_cast<double>(right_vote) / static_cast<double>(n);
  return {{"split", req.split},
          {"samples", n},
          {"shards_used", ensemble->voting_shards()},
          {"aggregate", req.aggregate},
          {"accuracy", req.aggregate == "mean" ? acc_mean : acc_vote},
          {"accuracy_mean", acc_mean},
          {"accuracy_vote", acc_vote},
          {"seconds", seconds}};
}

namespace {

// One verification of the generation the manifest names now. A concurrent
// writer may publish and purge meanwhile: the files then go missing, which
// verify() tells from damage by the manifest having changed.
nlohmann::json verify_snapshot(const VerifyRequest& req, const RunSeams& seams) {
  const RunDir run(req.run_dir, nullptr);
  require_closed_world(req.run_dir);
  const Manifest m = load_manifest(req.run_dir);
  const Config c = load_run_config(run, m);
  check_environment(m.environment, c.train.threads, req.force_environment, run.root);
  set_compute_threads(c.train.threads);
  std::vector<int64_t> shards = req.shards;
  if (shards.empty()) {
    for (int64_t s = 0; s < m.shards; ++s) shards.push_back(s);
  }
  for (int64_t s : shards) {
    if (s < 0 || s >= m.shards) {
      throw UsageError("--shards: no shard " + std::to_string(s) + " (run has " + std::to_string(m.shards) + ")");
    }
  }
  // Every shard retrained from its seed, in memory, here or on worker ranks.
  std::vector<ShardData> data;
  data.reserve(shards.size());
  std::vector<ShardJob> jobs;
  for (int64_t s : shards) {
    const ShardEntry& e = m.entries[s];
    for (const auto& ref : e.checkpoints) load_checkpoint(run, ref);  // every stored checkpoint loads and checks
    data.push_back(make_shard_data(load_store(run, e), c));
    ShardJob j;
    j.shard = e.shard;
    j.store = e.store;
    j.from_seed = true;
    j.write = false;
    j.work = stage_work(c, data.back(), 1);
    j.data = std::shared_ptr<const ShardData>(std::shared_ptr<void>(), &data.back());  // not owned
    jobs.push_back(std::move(j));
    spdlog::info("[shard {}] retraining from scratch to verify", e.shard);
  }
  const JobContext context{run.root,      c.to_yaml(), m.identity_hash,
                           m.environment, {},          static_cast<int>(spdlog::get_level())};
  const auto local = make_local_runner(nullptr);
  const auto fresh = (seams.runner ? *seams.runner : *local).run(context, jobs);
  bool all_identical = true;
  nlohmann::json results = nlohmann::json::array();
  for (size_t i = 0; i < shards.size(); ++i) {
    const ShardEntry& e = m.entries[shards[i]];
    nlohmann::json mismatched = nlohmann::json::array();
    for (size_t r = 0; r < e.checkpoints.size(); ++r) {
      if (r >= fresh[i].checkpoints.size() || fresh[i].checkpoints[r].state_digest != e.checkpoints[r].state_digest) {
        mismatched.push_back(r);
      }
    }
    const bool same = mismatched.empty();
    all_identical = all_identical && same;
    if (!same) spdlog::error("[shard {}] differs from a fresh retrain at stage(s) {}", e.shard, mismatched.dump());
    results.push_back({{"shard", e.shard},
                       {"identical", same},
                       {"mismatched_stages", mismatched},
                       {"state_digest", e.final_checkpoint().state_digest},
                       {"rank", fresh[i].rank}});
  }
  nlohmann::json out = {{"identical", all_identical}, {"shards", results}};
  // The LOO student is not a retrain of anything: verify checks the teachers.
  if (m.student) out["student"] = std::string("not verified: ") + kStudentGuarantee;
  return out;
}

}  // namespace

nlohmann::json verify(const VerifyRequest& req) { return verify(req, seams_of(req.cluster)); }

nlohmann::json verify(const VerifyRequest& req, const RunSeams& seams) {
  // No lock: verify writes nothing, so it runs beside a writer (sisa serve
  // holds the lock for its lifetime). Every generation's files are immutable
  // until a purge removes them, so a snapshot is consistent unless a file
  // vanishes: then the run moved on, and verify reads the new generation.
  for (int attempt = 1;; ++attempt) {
    const std::string before = read_text(manifest_path(req.run_dir));
    try {
      return verify_snapshot(req, seams);
    } catch (const CorruptionError& e) {
      if (attempt == 3 || read_text(manifest_path(req.run_dir)) == before) throw;  // real damage
      spdlog::info("the run changed while verify read it ({}); verifying the new generation", e.what());
    }
  }
}

nlohmann::json status(const std::string& run_dir) {
  require_closed_world(run_dir);
  const Manifest m = load_manifest(run_dir);
  // A damaged log does not hide the run's state: status reports it.
  LogContents log;
  std::string log_damage;
  try {
    log = read_log(in_run(run_dir, kLogFile));
  } catch (const CorruptionError& e) {
    log_damage = e.what();
  }
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& e : m.entries) {
    shards.push_back({{"shard", e.shard},
                      {"n_samples", e.n_samples},
                      {"generation", e.generation},
                      {"last_seq", e.last_seq},
                      {"fingerprint", e.final_checkpoint().fingerprint},
                      {"state_digest", e.final_checkpoint().state_digest}});
  }
  nlohmann::json student;
  if (m.student) {
    student = {{"generation", m.student->generation},
               {"fingerprint", m.student->checkpoint.fingerprint},
               {"loo_updates", m.student->loo_updates.size()},
               {"guarantee", kStudentGuarantee},
               {"teachers_guarantee", kTeachersGuarantee}};
  }
  return {{"run_dir", run_dir},
          {"student", student},
          {"shards", m.shards},
          {"slices", m.slices},
          {"identity_hash", m.identity_hash},
          {"config_hash", m.config_hash},
          {"environment", m.environment},
          {"shard_status", shards},
          {"deleted_ids", m.deleted_ids.size()},
          {"deleted_groups", m.deleted_groups.size()},
          {"last_applied_request", m.last_seq},
          {"placement", m.deletion_cost.is_null() ? "uniform" : "weighted"},
          {"expected_deletion_cost", m.deletion_cost},

          {"pending_requests", log_damage.empty() ? nlohmann::json(pending_requests(log).size()) : nlohmann::json()},
          {"log_torn_tail", log.torn_tail},
          {"log_damaged", log_damage.empty() ? nlohmann::json() : nlohmann::json(log_damage)}};
}

}  // namespace sisa
