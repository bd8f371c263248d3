// `sisa repair`: rebuild a damaged shard, never by loading bad bytes. A bad
// checkpoint C_j is retrained from the last good one, C_{j-1} (C_0 from its
// seed); a bad store is rebuilt from the user's source data minus the deleted
// ids. Exactness makes the result checkable: every rebuilt checkpoint must
// reproduce the state digest MANIFEST.json recorded for it, and a rebuilt
// store the recorded hash of its ids, or nothing is published.
#include <spdlog/spdlog.h>

#include <set>

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

}  // namespace

nlohmann::json repair(const RepairRequest& req) {
  const RunDir run(req.run_dir, req.env);
  Writer w(run, req.force_environment);
  Manifest& m = w.manifest;
  const Config& c = w.config;

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
  return {{"repaired_shards", repaired}, {"recovered", recovered}};
}

}  // namespace sisa
