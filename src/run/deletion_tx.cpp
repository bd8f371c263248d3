// The deletion transaction, the one path `sisa forget` and `sisa serve`
// take (docs/design.md, "A deletion"): accept (validate, log `accepted`
// durably) -> plan -> shard jobs -> a manifest edit built on a copy -> the
// derived-model hook -> commit (receipt, publish, purge, log `applied`).
#include "run/deletion_tx.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "config/environment.h"
#include "format/deletion_log.h"
#include "format/shard_store.h"
#include "lm/loo_student.h"
#include "run/shard_jobs.h"
#include "run/stages.h"
#include "sisa/errors.h"
#include "sisa/id_list.h"
#include "sisa/placement.h"
#include "store/closed_world.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "util/fs.h"

namespace sisa {
namespace {

std::vector<int64_t> merge_sorted(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::set<int64_t> s(a.begin(), a.end());
  s.insert(b.begin(), b.end());
  return {s.begin(), s.end()};
}

}  // namespace

CheckedRequest check_request(const std::string& run_root, const Config& c, const std::vector<int64_t>& keys,
                             bool by_group, const std::function<bool(int64_t)>& known,
                             const std::function<bool(int64_t)>& deleted) {
  if (keys.empty()) throw UsageError("no ids given to forget");
  if (by_group && !c.data.grouped()) {
    throw UsageError("run '" + run_root + "' has no groups; forget by ids");
  }
  const std::set<int64_t> unique(keys.begin(), keys.end());
  std::vector<int64_t> unknown;
  for (int64_t k : unique) {
    if (!known(k)) unknown.push_back(k);
  }
  if (!unknown.empty()) {
    throw DataError(std::string("unknown ") + (by_group ? "group(s)" : "id(s)") + " in run '" + run_root +
                    "': " + format_id_list(unknown) + "; the request was rejected, nothing deleted");
  }
  CheckedRequest r{{unique.begin(), unique.end()}, by_group, false};
  r.noop = std::all_of(r.keys.begin(), r.keys.end(), deleted);
  return r;
}

LogRecord accept_request(const RunDir& run, uint64_t seq, const CheckedRequest& request) {
  LogRecord rec{LogRecord::Type::kAccepted, seq, request.by_group, request.keys};
  append_log(*run.env, run.path(kLogFile), rec);
  spdlog::info("deletion request {} accepted ({} {})", seq, rec.keys.size(), request.by_group ? "group(s)" : "id(s)");
  return rec;
}

// Loads everything a retrain reads before the request is accepted, so a
// damaged store or checkpoint is reported first. Shards that no longer hold
// any key (the request was applied before a crash) are left alone.
RequestPlan plan_request(const RunDir& run, const Manifest& m, const Config& c, const LogRecord& rec) {
  const std::set<int64_t> keys(rec.keys.begin(), rec.keys.end());
  // A placement key names its shard, so only those shards are read. Only
  // sample ids in grouped data (placed by group) need every shard's ids.
  // Under weighted placement the shard also depends on the key's weight,
  // which only the stores hold: every shard's keys are read then.
  const Placement placement = c.placement();
  const bool scan_all = (!rec.by_group && c.data.grouped()) || placement.weighted();
  std::set<int64_t> candidates;
  for (int64_t k : keys) candidates.insert(shard_of(c.seed, k, c.sisa.shards));
  RequestPlan plan;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const ShardEntry& e = m.entries[i];
    if (e.last_seq >= rec.seq || e.n_samples == 0) continue;
    if (!scan_all && !candidates.count(e.shard)) continue;
    const auto bytes = read_verified(run, e.store);
    if (scan_all) {
      std::vector<int64_t> ids, groups;
      decode_store_keys(bytes, run.path(e.store.path), &ids, &groups);
      const auto& stored = rec.by_group ? groups : ids;
      if (std::none_of(stored.begin(), stored.end(), [&](int64_t k) { return keys.count(k) > 0; })) {
        continue;
      }
    }
    Dataset rows = decode_store(bytes, run.path(e.store.path));
    std::vector<bool> erase(rows.size(), false);
    ShardPlan sp{i, {}, c.sisa.slices + 1, {}, {}};
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t k = rec.by_group ? rows.key(r) : rows.ids[r];
      if (keys.count(k)) {
        sp.removed.push_back(rows.ids[r]);
        plan.found.insert(k);
        sp.first_stage = std::min(sp.first_stage, placement.slice(rows.key(r), rows.weight(r)));
        erase[r] = true;
      }
    }
    if (sp.removed.empty()) continue;
    if (c.loo.student) {
      std::vector<size_t> gone;
      for (size_t r = 0; r < rows.size(); ++r) {
        if (erase[r]) gone.push_back(r);
      }
      sp.deleted = rows.select(gone);
    }
    rows.erase_rows(erase);
    sp.remaining = make_shard_data(std::move(rows), c);
    // Load (and so check) the checkpoint the retrain starts from.
    load_checkpoint(run, e.checkpoints[sp.first_stage - 1]);
    plan.shards.push_back(std::move(sp));
  }
  return plan;
}

namespace {

// Every affected shard's retrain as one batch of jobs, run here or on worker
// ranks; rank 0 writes each new store just before its job is handed out.
std::vector<ShardJob> retrain_jobs(const RunDir& dir, const Config& c, const Manifest& m,
                                   std::vector<ShardPlan>& plans) {
  std::vector<ShardJob> jobs;
  for (auto& p : plans) {
    const ShardEntry& e = m.entries[p.entry];
    const int64_t gen = e.generation + 1;
    spdlog::info("[shard {}] forgetting {} sample(s): retraining stages {}..{} from checkpoint {}", e.shard,
                 p.removed.size(), p.first_stage, c.sisa.slices, p.first_stage - 1);
    jobs.push_back({e.shard,
                    gen,
                    {},
                    false,
                    e.checkpoints[p.first_stage - 1],
                    p.first_stage,
                    stage_work(c, p.remaining, p.first_stage),
                    false,
                    {},
                    [&dir, &c, &p, shard = e.shard, gen](ShardJob& j) {
                      j.store =
                          write_run_file(dir, store_file(shard, gen), encode_store(p.remaining.rows, shard, c.data));
                    },
                    // Not owned: `plans` outlives the jobs.
                    std::shared_ptr<const ShardData>(std::shared_ptr<void>(), &p.remaining)});
  }
  return jobs;
}

// What the retrains changed, applied to the edit: each shard's new
// checkpoints, store and generation; the receipt's per-shard lines.
struct Retrained {
  nlohmann::json shards = nlohmann::json::array();
  std::vector<int64_t> removed_ids;  // sorted
  double loop_seconds = 0.0, prepare_cpu = 0.0;
};

Retrained apply_retrains(Manifest& m, const Config& c, const LogRecord& rec, const std::vector<ShardPlan>& plans,
                         const std::vector<ShardJob>& jobs, const std::vector<ShardJobResult>& results) {
  Retrained out;
  for (size_t i = 0; i < plans.size(); ++i) {
    const auto& p = plans[i];
    out.prepare_cpu += results[i].prepare_cpu_seconds;
    ShardEntry& e = m.entries[p.entry];
    out.loop_seconds += results[i].loop_seconds;
    e.checkpoints.resize(static_cast<size_t>(p.first_stage));
    for (const auto& r : results[i].checkpoints) e.checkpoints.push_back(r);
    e.generation = jobs[i].generation;
    e.store = jobs[i].store;
    e.n_samples = static_cast<int64_t>(p.remaining.rows.size());
    e.ids_hash = ids_hash(p.remaining.rows.ids);
    e.last_seq = rec.seq;
    out.removed_ids.insert(out.removed_ids.end(), p.removed.begin(), p.removed.end());
    out.shards.push_back({{"shard", e.shard},
                          {"deleted", p.removed.size()},
                          {"retrained_stages", {p.first_stage, c.sisa.slices}},
                          {"sample_epochs", jobs[i].work},
                          {"generation", e.generation},
                          {"n_samples", e.n_samples},
                          {"fingerprint", e.final_checkpoint().fingerprint},
                          {"state_digest", e.final_checkpoint().state_digest},
                          {"training_seconds", results[i].loop_seconds},
                          {"rank", results[i].rank}});
  }
  std::sort(out.removed_ids.begin(), out.removed_ids.end());
  return out;
}

}  // namespace

nlohmann::json execute_request(const RunDir& dir, Manifest& published, const Config& c, const LogRecord& rec,
                               RequestPlan plan, const TrainerOptions& trainer, ShardRunner* runner) {
  // The edit is built on a copy: a failure before the publish leaves the
  // caller's manifest as it is on disk (LevelDB's VersionEdit, in spirit).
  Manifest m = published;
  const auto t0 = std::chrono::steady_clock::now();
  const auto& found = plan.found;
  std::vector<ShardJob> jobs = retrain_jobs(dir, c, m, plan.shards);
  const JobContext context{dir.root,      c.to_yaml(), m.identity_hash,
                           m.environment, trainer,     static_cast<int>(spdlog::get_level())};
  const auto local = make_local_runner(dir.env);
  const auto t_jobs = std::chrono::steady_clock::now();
  const double cpu_before = process_cpu_seconds();
  const auto results = (runner ? *runner : *local).run(context, jobs);
  const double jobs_seconds = since(t_jobs), coordinator_cpu = process_cpu_seconds() - cpu_before;
  const Retrained r = apply_retrains(m, c, rec, plan.shards, jobs, results);

  std::vector<int64_t> not_present;
  for (int64_t k : std::set<int64_t>(rec.keys.begin(), rec.keys.end())) {
    if (!found.count(k)) not_present.push_back(k);
  }
  nlohmann::json receipt = {
      {"format", "sisa-receipt"},
      {"format_version", 1},
      {"seq", rec.seq},
      {"by_group", rec.by_group},
      {"requested", rec.keys.size()},
      {"deleted_ids", r.removed_ids},
      {"deleted_count", r.removed_ids.size()},
      {"already_deleted", not_present},
      // Found group keys: with the ids above, every key of the request
      // (so `repair --rebuild-log` can restore its log record).
      {"deleted_groups", rec.by_group ? std::vector<int64_t>(found.begin(), found.end()) : std::vector<int64_t>()},
      {"shards", r.shards},
      // Weighted placement: what a deletion was expected to cost at train time.
      {"expected_deletion_cost", m.deletion_cost},
      {"training_seconds", r.loop_seconds},
      {"retrain_phase_seconds", jobs_seconds},
      {"coordinator_cpu_seconds", coordinator_cpu},
      {"coordinator_wait_cpu_seconds", coordinator_cpu - r.prepare_cpu},
      {"seconds", since(t0)}};
  // Models derived from the shards learn of the deletion from the retrained
  // shards, before the receipt is written: published in the same switch.
  if (m.student) {
    std::vector<DeletedRows> deleted;
    for (const auto& p : plan.shards) deleted.push_back({m.entries[p.entry].shard, &p.deleted});
    receipt["guarantee"] = {{"teachers", kTeachersGuarantee}, {"student", kStudentGuarantee}};
    receipt["student"] = update_student(dir, c, m, rec.seq, deleted);
  }
  const std::string text = receipt.dump(1) + "\n";
  m.receipts.push_back(write_run_file(dir, receipt_file(rec.seq), std::vector<uint8_t>(text.begin(), text.end())));
  m.last_seq = std::max(m.last_seq, rec.seq);
  m.deleted_ids = merge_sorted(m.deleted_ids, r.removed_ids);
  if (rec.by_group) m.deleted_groups = merge_sorted(m.deleted_groups, std::vector<int64_t>(found.begin(), found.end()));
  // Publish, then purge what the old generation held, then record `applied`.
  const auto tp = std::chrono::steady_clock::now();
  save_manifest(*dir.env, dir.root, m);
  published = m;
  const auto removed_files = remove_unreferenced(dir, m);
  spdlog::debug("purged {} superseded file(s)", removed_files.size());
  append_log(*dir.env, dir.path(kLogFile), {LogRecord::Type::kApplied, rec.seq, false, {}});
  receipt["purged_files"] = removed_files.size();
  receipt["publish_seconds"] = since(tp);
  return receipt;
}

uint64_t next_request_seq(const Manifest& m, const LogContents& log) {
  uint64_t seq = m.last_seq;
  for (const auto& r : log.records) seq = std::max(seq, r.seq);
  return seq + 1;
}

std::vector<LogRecord> prepare_recovery(const RunDir& run, const Manifest& m, nlohmann::json* report) {
  const auto stale = remove_unreferenced(run, m);
  if (!stale.empty()) spdlog::info("removed {} file(s) not named by the manifest", stale.size());
  // An append a crash cut short was never acknowledged (that follows the sync).
  const bool torn = drop_torn_tail(*run.env, run.path(kLogFile));
  if (torn) spdlog::warn("{}: dropped a torn tail left by an interrupted append", run.path(kLogFile));
  if (report) *report = {{"removed_files", stale}, {"dropped_torn_tail", torn}};
  return pending_requests(read_log(run.path(kLogFile)));
}

nlohmann::json finish_request(const RunDir& run, Manifest& m, const Config& c, const LogRecord& rec,
                              const TrainerOptions& trainer, ShardRunner* runner) {
  if (m.last_seq >= rec.seq) {
    // Published before the crash: only the purge (done) and `applied` remain.
    append_log(*run.env, run.path(kLogFile), {LogRecord::Type::kApplied, rec.seq, false, {}});
    return nullptr;
  }
  return execute_request(run, m, c, rec, plan_request(run, m, c, rec), trainer, runner);
}

nlohmann::json recover_locked(const RunDir& run, Manifest& m, const Config& c, const TrainerOptions& trainer,
                              ShardRunner* runner) {
  nlohmann::json report;
  nlohmann::json resumed = nlohmann::json::array();
  for (const auto& pending : prepare_recovery(run, m, &report)) {
    spdlog::warn("resuming deletion request {} accepted before an interruption", pending.seq);
    finish_request(run, m, c, pending, trainer, runner);
    resumed.push_back(pending.seq);
  }
  report["resumed_requests"] = resumed;
  return report;
}

}  // namespace sisa
