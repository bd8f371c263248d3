// `sisa repair`: rebuild a damaged shard, never by loading bad bytes. A bad
// checkpoint C_j is retrained from the last good one, C_{j-1} (C_0 from its
// seed); a bad store is rebuilt from the user's source data minus the deleted
// ids. Exactness makes the result checkable: every rebuilt checkpoint must
// reproduce the state digest MANIFEST.json recorded for it, and a rebuilt
// store the recorded hash of its ids, or nothing is published.
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "deletion_log.h"
#include "environment.h"
#include "fs.h"
#include "run_common.h"
#include "shard_store.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"

namespace sisa {
namespace {

// The rows of `shard` in the source data that have not been deleted.
Dataset rebuild_rows(const Config& c, const Manifest& m, int64_t shard) {
  const Dataset all = load_source(c.data, Split::kTrain);
  const std::set<int64_t> ids(m.deleted_ids.begin(), m.deleted_ids.end());
  const std::set<int64_t> groups(m.deleted_groups.begin(), m.deleted_groups.end());
  std::vector<size_t> keep;
  for (size_t i = 0; i < all.size(); ++i) {
    if (shard_of(c.seed, all.key(i), c.sisa.shards) != shard || ids.count(all.ids[i]) ||
        (all.has_groups() && groups.count(all.groups[i]))) {
      continue;
    }
    keep.push_back(i);
  }
  Dataset rows = all.select(keep);
  rows.sort_by_id();
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
    const auto bytes = read_verified(run, ref);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(bytes.view().data, bytes.view().data + bytes.view().size);
    } catch (const nlohmann::json::exception& e) {
      throw CorruptionError(run.path(ref.path) + ": not a readable receipt: " + e.what());
    }
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
  nlohmann::json out = {{"rebuilt", true}, {"damaged_bytes", damaged}, {"restored_from_receipts", restored},
                        {"applied_through", m.last_seq}, {"pending_requests", pending}};
  if (!salvaged.damaged.empty()) {
    out["warning"] = "the damaged bytes may have held deletion requests accepted after request " +
                     std::to_string(m.last_seq) + " and not yet applied; only the pending requests listed here " +
                     "survive: submit again every deletion acknowledged after request " + std::to_string(m.last_seq) +
                     " that is not among them";
    spdlog::warn("{}: {}", path, out["warning"].get<std::string>());
  }
  return out;
}

}  // namespace

nlohmann::json repair(const RepairRequest& req) {
  const RunDir run(req.run_dir, req.env);
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

  nlohmann::json repaired = nlohmann::json::array();
  for (auto& e : m.entries) {
    bool store_ok = true;
    Dataset rows;
    try {
      rows = load_store(run, e);
    } catch (const CorruptionError& err) {
      spdlog::warn("[shard {}] {}", e.shard, err.what());
      store_ok = false;
    }
    int64_t first_bad = -1;
    for (const auto& ref : e.checkpoints) {
      try {
        if (load_checkpoint(run, ref).state_digest() == ref.state_digest) continue;
      } catch (const CorruptionError& err) {
        spdlog::warn("[shard {}] {}", e.shard, err.what());
      }
      first_bad = ref.stage;
      break;
    }
    if (store_ok && first_bad < 0) continue;

    if (!store_ok) {
      rows = rebuild_rows(c, m, e.shard);
      if (ids_hash(rows.ids) != e.ids_hash) {
        throw CorruptionError("cannot repair shard " + std::to_string(e.shard) + ": its store " +
                              run.path(e.store.path) + " is damaged and the source data '" +
                              c.data.train + "' no longer holds the same samples");
      }
      first_bad = 0;  // the rebuilt inputs are checked by retraining every stage
    }
    const int64_t gen = e.generation + 1;
    const ShardData data = make_shard_data(std::move(rows), c);
    const int64_t first_stage = std::max<int64_t>(first_bad, 1);
    spdlog::info("[shard {}] repairing: {}retraining stages {}..{}", e.shard,
                 store_ok ? "" : "store rebuilt from the source data, ", first_stage, c.sisa.slices);
    // Retrain in memory; write nothing until every state reproduces its digest.
    ShardTrainer init(c, e.shard);
    std::vector<ModelState> states;
    if (first_bad == 0) states.push_back(init.initial_state());
    const ModelState start =
        first_bad == 0 ? states.front() : load_checkpoint(run, e.checkpoints[first_bad - 1]);
    StageRun stages{&c, nullptr, m.identity_hash, {}, nullptr, nullptr, {}};
    train_stages(stages, e.shard, gen, data, start, first_stage, &states);
    const int64_t first_written = first_bad;
    for (size_t i = 0; i < states.size(); ++i) {
      const int64_t stage = first_written + static_cast<int64_t>(i);
      if (states[i].state_digest() != e.checkpoints[stage].state_digest) {
        throw CorruptionError("cannot repair shard " + std::to_string(e.shard) + ": retraining stage " +
                              std::to_string(stage) + " does not reproduce the recorded state" +
                              (store_ok ? "" : " (the source data changed?)"));
      }
    }
    std::vector<CheckpointRef> refs;
    for (size_t i = 0; i < states.size(); ++i) {
      refs.push_back(checkpoint_ref(&run, m.identity_hash, e.shard,
                                    first_written + static_cast<int64_t>(i), gen, data, states[i]));
    }
    if (!store_ok) e.store = write_run_file(run, store_file(e.shard, gen), encode_store(data.rows, e.shard));
    e.checkpoints.resize(static_cast<size_t>(first_written));
    for (auto& r : refs) e.checkpoints.push_back(std::move(r));
    e.generation = gen;
    repaired.push_back({{"shard", e.shard}, {"store_rebuilt", !store_ok}, {"from_stage", first_written},
                        {"generation", gen}});
  }
  if (!repaired.empty()) save_manifest(*run.env, run.root, m);
  auto recovered = recover_locked(run, m, c, {}, req.runner);
  return {{"repaired_shards", repaired}, {"recovered", recovered}, {"log", log_report}};
}

}  // namespace sisa
