// `sisa repair`: rebuild a damaged shard, never by loading bad bytes. A bad
// checkpoint C_j is retrained from the last good one, C_{j-1} (C_0 from its
// seed); a bad store is rebuilt from the user's source data minus the deleted
// ids. Exactness makes the result checkable: every rebuilt checkpoint must
// reproduce the state digest MANIFEST.json recorded for it, and a rebuilt
// store the recorded hash of its ids, or nothing is published.
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "config/environment.h"
#include "format/deletion_log.h"
#include "format/shard_store.h"
#include "lm/loo_student.h"
#include "run/deletion_tx.h"
#include "run/seams.h"
#include "run/shard_jobs.h"
#include "run/stages.h"
#include "run/writer.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "sisa/shard_trainer.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "util/fs.h"

namespace sisa {
namespace {

// The rows of `shard` in the source data that have not been deleted.
Dataset rebuild_rows(const Config& c, const Manifest& m, int64_t shard) {
  const Dataset all = load_source(c.data, Split::kTrain);
  const Placement placement = c.placement();
  const std::set<int64_t> ids(m.deleted_ids.begin(), m.deleted_ids.end());
  const std::set<int64_t> groups(m.deleted_groups.begin(), m.deleted_groups.end());
  std::vector<size_t> keep;
  for (size_t i = 0; i < all.size(); ++i) {
    if (placement.shard(all.key(i), all.weight(i)) != shard || ids.count(all.ids[i]) ||
        (all.has_groups() && groups.count(all.groups[i]))) {
      continue;
    }
    keep.push_back(i);
  }
  Dataset rows = all.select(keep);
  rows.sort_by_id();
  add_cached_features(c, &rows);  // sisa-fc: row by row, so the same bits as at ingest
  return rows;
}

// Rewrites a damaged deletion log: the intact records, plus for every
// request the manifest has published (its receipt names its keys) an
// `accepted` and an `applied` record where the log lost them. What no file
// can restore, a pending request whose record lay in the damaged bytes, is
// named in the answer and the log: the operator must submit it again.
nlohmann::json rebuild_log(const RunDir& run, const Manifest& m) {
  const std::string path = run.path(kLogFile);
  SalvagedLog salvaged = salvage_log(path);
  std::map<uint64_t, LogRecord> accepted;
  std::set<uint64_t> applied;
  for (auto& r : salvaged.records) {
    if (r.type == LogRecord::Type::kApplied) {
      applied.insert(r.seq);
    } else {
      accepted.emplace(r.seq, std::move(r));
    }
  }
  nlohmann::json restored = nlohmann::json::array();
  for (const auto& ref : m.receipts) {
    const nlohmann::json j = load_receipt(run, ref);
    const uint64_t seq = j.at("seq");
    applied.insert(seq);
    if (accepted.count(seq)) continue;
    LogRecord r{LogRecord::Type::kAccepted, seq, j.at("by_group").get<bool>(), {}};
    std::set<int64_t> keys;
    for (const char* field : {"already_deleted", r.by_group ? "deleted_groups" : "deleted_ids"}) {
      for (const auto& k : j.value(field, nlohmann::json::array())) keys.insert(k.get<int64_t>());
    }
    r.keys.assign(keys.begin(), keys.end());
    accepted.emplace(seq, std::move(r));
    restored.push_back(seq);
  }
  std::vector<LogRecord> records;
  nlohmann::json pending = nlohmann::json::array();
  for (auto& [seq, r] : accepted) {
    records.push_back(r);
    if (applied.count(seq)) {
      records.push_back({LogRecord::Type::kApplied, seq, false, {}});
    } else {
      pending.push_back(seq);
    }
  }
  nlohmann::json damaged = nlohmann::json::array();
  for (const auto& [from, to] : salvaged.damaged) damaged.push_back({from, to});
  rewrite_log(*run.env, path, records);
  nlohmann::json out = {{"rebuilt", true},
                        {"damaged_bytes", damaged},
                        {"restored_from_receipts", restored},
                        {"applied_through", m.last_seq},
                        {"pending_requests", pending}};
  if (!salvaged.damaged.empty()) {
    out["warning"] = "the damaged bytes may have held deletion requests accepted after request " +
                     std::to_string(m.last_seq) + " and not yet applied; only the pending requests listed here " +
                     "survive: submit again every deletion acknowledged after request " + std::to_string(m.last_seq) +
                     " that is not among them";
    spdlog::warn("{}: {}", path, out["warning"].get<std::string>());
  }
  return out;
}

// A damaged shard: what is damaged, and the rows its retrain reads.
struct RepairPlan {
  size_t entry = 0;  // index into Manifest::entries
  bool store_ok = true;
  int64_t first_bad = 0;  // the first checkpoint to rebuild (0: all, from the seed)
  ShardData data;
};

// Finds every damaged store or checkpoint, never by loading bad bytes; a
// damaged store is rebuilt (in memory) from the source data minus the
// deleted ids, or repair is refused.
std::vector<RepairPlan> plan_repairs(const RunDir& run, const Manifest& m, const Config& c) {
  std::vector<RepairPlan> plans;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const ShardEntry& e = m.entries[i];
    RepairPlan p{i, true, -1, {}};
    Dataset rows;
    try {
      rows = load_store(run, e);
    } catch (const CorruptionError& err) {
      spdlog::warn("[shard {}] {}", e.shard, err.what());
      p.store_ok = false;
    }
    for (const auto& ref : e.checkpoints) {
      try {
        if (load_checkpoint(run, ref).state_digest() == ref.state_digest) continue;
      } catch (const CorruptionError& err) {
        spdlog::warn("[shard {}] {}", e.shard, err.what());
      }
      p.first_bad = ref.stage;
      break;
    }
    if (p.store_ok && p.first_bad < 0) continue;
    if (!p.store_ok) {
      rows = rebuild_rows(c, m, e.shard);
      if (ids_hash(rows.ids) != e.ids_hash) {
        throw CorruptionError("cannot repair shard " + std::to_string(e.shard) + ": its store " +
                              run.path(e.store.path) + " is damaged and the source data '" + c.data.train +
                              "' no longer holds the same samples");
      }
      p.first_bad = 0;  // the rebuilt inputs are checked by retraining every stage
    }
    p.data = make_shard_data(std::move(rows), c);
    plans.push_back(std::move(p));
  }
  return plans;
}

// Every rebuilt checkpoint must reproduce the state digest the manifest
// recorded; otherwise the new files are removed and repair is refused.
void check_reproduced(const RunDir& run, const Manifest& m, const std::vector<RepairPlan>& plans,
                      const std::vector<ShardJob>& jobs, const std::vector<ShardJobResult>& results) {
  for (size_t i = 0; i < plans.size(); ++i) {
    const ShardEntry& e = m.entries[plans[i].entry];
    for (size_t k = 0; k < results[i].checkpoints.size(); ++k) {
      const int64_t stage = plans[i].first_bad + static_cast<int64_t>(k);
      if (results[i].checkpoints[k].state_digest == e.checkpoints[static_cast<size_t>(stage)].state_digest) continue;
      for (size_t j = 0; j < plans.size(); ++j) {
        for (const auto& ck : results[j].checkpoints) remove_durable(*run.env, run.path(ck.file.path));
        if (!plans[j].store_ok) remove_durable(*run.env, run.path(jobs[j].store.path));
      }
      throw CorruptionError("cannot repair shard " + std::to_string(e.shard) + ": retraining stage " +
                            std::to_string(stage) + " does not reproduce the recorded state" +
                            (plans[i].store_ok ? "" : " (the source data changed?)"));
    }
  }
}

}  // namespace

nlohmann::json repair(const RepairRequest& req) { return repair(req, seams_of(req.cluster)); }

nlohmann::json repair(const RepairRequest& req, const RunSeams& seams) {
  const RunDir run(req.run_dir, seams.env);
  Writer w(run, req.force_environment);
  Manifest& m = w.manifest;
  const Config& c = w.config;
  nlohmann::json log_report = nullptr;
  if (req.rebuild_log) {
    log_report = rebuild_log(run, m);
  } else {
    try {
      read_log(run.path(kLogFile));
    } catch (const CorruptionError& e) {
      throw CorruptionError(std::string(e.what()) +
                            ". Nothing was changed. `sisa repair --rebuild-log` rewrites the log from its intact "
                            "records and the receipts of applied requests, and lists any pending request it "
                            "could not read (copy the log first if you want to keep the damaged bytes)");
    }
  }

  auto plans = plan_repairs(run, m, c);
  // Every retrain as one batch of jobs, here or on worker ranks, into a new
  // generation of files; published only if every state reproduces its digest.
  std::vector<ShardJob> jobs;
  for (auto& p : plans) {
    const ShardEntry& e = m.entries[p.entry];
    const int64_t gen = e.generation + 1;
    spdlog::info("[shard {}] repairing: {}retraining stages {}..{}", e.shard,
                 p.store_ok ? "" : "store rebuilt from the source data, ", std::max<int64_t>(p.first_bad, 1),
                 c.sisa.slices);
    ShardJob j;
    j.shard = e.shard;
    j.generation = gen;
    j.store = e.store;
    j.from_seed = p.first_bad == 0;
    if (p.first_bad > 0) j.start = e.checkpoints[static_cast<size_t>(p.first_bad - 1)];
    j.first_stage = std::max<int64_t>(p.first_bad, 1);
    j.work = stage_work(c, p.data, j.first_stage);
    if (!p.store_ok) {
      j.prepare = [&run, &c, &p, gen](ShardJob& job) {
        job.store = write_run_file(run, store_file(job.shard, gen), encode_store(p.data.rows, job.shard, c.data));
      };
    }
    j.data = std::shared_ptr<const ShardData>(std::shared_ptr<void>(), &p.data);  // not owned: plans outlive jobs
    jobs.push_back(std::move(j));
  }
  const JobContext context{run.root,      c.to_yaml(), m.identity_hash,
                           m.environment, {},          static_cast<int>(spdlog::get_level())};
  const auto local = make_local_runner(run.env);
  const auto results =
      jobs.empty() ? std::vector<ShardJobResult>() : (seams.runner ? *seams.runner : *local).run(context, jobs);
  check_reproduced(run, m, plans, jobs, results);
  nlohmann::json repaired = nlohmann::json::array();
  for (size_t i = 0; i < plans.size(); ++i) {
    ShardEntry& e = m.entries[plans[i].entry];
    e.checkpoints.resize(static_cast<size_t>(plans[i].first_bad));
    for (const auto& r : results[i].checkpoints) e.checkpoints.push_back(r);
    e.store = jobs[i].store;
    e.generation = jobs[i].generation;
    repaired.push_back({{"shard", e.shard},
                        {"store_rebuilt", !plans[i].store_ok},
                        {"from_stage", plans[i].first_bad},
                        {"generation", e.generation},
                        {"rank", results[i].rank}});
  }
  // A damaged LOO student cannot be rebuilt as it was (its updates read
  // teachers of purged generations): it is retrained on the rows the run
  // holds now, which is what a train without the deleted rows would give.
  nlohmann::json student = nullptr;
  if (m.student) {
    try {
      load_checkpoint(run, m.student->checkpoint);
    } catch (const CorruptionError& e) {
      spdlog::warn("{}: retraining the student on the rows the run holds now", e.what());
      m.student = train_student_entry(run, c, m, m.student->generation + 1);
      student = {{"retrained", true},
                 {"generation", m.student->generation},
                 {"note", "the damaged student was replaced by one retrained without every deleted row"}};
    }
  }
  // A version-1 manifest (no checksum) is rewritten as the current version
  // once every file it names has checked out above.
  if (!repaired.empty() || !student.is_null() || m.format_version == 1) save_manifest(*run.env, run.root, m);
  auto recovered = recover_locked(run, m, c, {}, seams.runner);
  return {{"repaired_shards", repaired}, {"recovered", recovered}, {"log", log_report}, {"student", student}};
}

}  // namespace sisa
