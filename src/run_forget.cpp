// `sisa forget`: exact deletion of one batch (DESIGN.md sections 3 and 4).
// Validate, log `accepted` durably, retrain each affected shard once from its
// last clean checkpoint into a new generation, publish the manifest, purge
// what the old generation held, then log `applied`.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
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

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string join_ids(const std::vector<int64_t>& ids, size_t limit = 20) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < limit; ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  if (ids.size() > limit) s += ", ... (" + std::to_string(ids.size()) + " in all)";
  return s;
}

std::vector<int64_t> merge_sorted(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::set<int64_t> s(a.begin(), a.end());
  s.insert(b.begin(), b.end());
  return {s.begin(), s.end()};
}

// Carries out one logged request against the current generation. Idempotent:
// shards that no longer hold any of its keys are left alone, so re-running
// after a crash finishes the job without repeating it.
nlohmann::json apply_request(const std::string& run_dir, Manifest& m, const Config& c,
                             const LogRecord& rec, const TrainerOptions& trainer) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::set<int64_t> keys(rec.keys.begin(), rec.keys.end());
  struct Plan {
    size_t entry;
    ShardData remaining;
    int64_t first_stage;
    std::vector<int64_t> removed;
  };
  std::vector<Plan> plans;
  std::set<int64_t> found;
  int64_t total_work = 0;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const ShardEntry& e = m.entries[i];
    if (e.last_seq >= rec.seq || e.n_samples == 0) continue;
    Dataset rows = load_store(run_dir, e);
    std::vector<size_t> keep;
    Plan plan{i, {}, c.sisa.slices + 1, {}};
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t k = rec.by_group ? rows.key(r) : rows.ids[r];
      if (keys.count(k)) {
        plan.removed.push_back(rows.ids[r]);
        found.insert(k);
        plan.first_stage = std::min(plan.first_stage, slice_of(c.seed, rows.key(r), c.sisa.slices));
      } else {
        keep.push_back(r);
      }
    }
    if (plan.removed.empty()) continue;
    plan.remaining = make_shard_data(rows.select(keep), c);
    total_work += stage_work(c, plan.remaining, plan.first_stage);
    plans.push_back(std::move(plan));
  }

  Progress progress(total_work);
  StageRun run{&c, run_dir, m.identity_hash, trainer, &progress};
  nlohmann::json shards_json = nlohmann::json::array();
  std::vector<int64_t> removed_ids;
  double loop_seconds = 0.0;
  for (auto& p : plans) {
    ShardEntry& e = m.entries[p.entry];
    const int64_t gen = e.generation + 1;
    spdlog::info("[shard {}] forgetting {} sample(s): retraining stages {}..{} from checkpoint {}",
                 e.shard, p.removed.size(), p.first_stage, c.sisa.slices, p.first_stage - 1);
    const auto ts = std::chrono::steady_clock::now();
    const FileRef store = write_run_file(run_dir, store_file(e.shard, gen),
                                         encode_store(p.remaining.rows, e.shard));
    const ModelState start = load_checkpoint(run_dir, e.checkpoints[p.first_stage - 1]);
    const auto tl = std::chrono::steady_clock::now();
    auto refs = train_stages(run, e.shard, gen, p.remaining, start, p.first_stage, nullptr);
    const double shard_loop = since(tl);
    loop_seconds += shard_loop;
    e.checkpoints.resize(static_cast<size_t>(p.first_stage));
    for (auto& r : refs) e.checkpoints.push_back(std::move(r));
    e.generation = gen;
    e.store = store;
    e.n_samples = static_cast<int64_t>(p.remaining.rows.size());
    e.last_seq = rec.seq;
    removed_ids.insert(removed_ids.end(), p.removed.begin(), p.removed.end());
    shards_json.push_back({{"shard", e.shard},
                           {"deleted", p.removed.size()},
                           {"retrained_stages", {p.first_stage, c.sisa.slices}},
                           {"generation", gen},
                           {"n_samples", e.n_samples},
                           {"fingerprint", e.final_checkpoint().fingerprint},
                           {"state_digest", e.final_checkpoint().state_digest},
                           {"training_seconds", shard_loop},
                           {"seconds", since(ts)}});
  }
  std::sort(removed_ids.begin(), removed_ids.end());
  std::vector<int64_t> not_present;
  for (int64_t k : keys) {
    if (!found.count(k)) not_present.push_back(k);
  }

  nlohmann::json receipt = {{"format", "sisa-receipt"},
                            {"format_version", 1},
                            {"seq", rec.seq},
                            {"by_group", rec.by_group},
                            {"requested", rec.keys.size()},
                            {"deleted_ids", removed_ids},
                            {"deleted_count", removed_ids.size()},
                            {"already_deleted", not_present},
                            {"shards", shards_json},
                            {"training_seconds", loop_seconds},
                            {"seconds", since(t0)}};
  const std::string text = receipt.dump(1) + "\n";
  m.receipts.push_back(
      write_run_file(run_dir, receipt_file(rec.seq), std::vector<uint8_t>(text.begin(), text.end())));
  m.last_seq = std::max(m.last_seq, rec.seq);
  m.deleted_ids = merge_sorted(m.deleted_ids, removed_ids);
  if (rec.by_group) {
    std::vector<int64_t> groups(found.begin(), found.end());
    m.deleted_groups = merge_sorted(m.deleted_groups, groups);
  }
  // Publish, then purge what the old generation held, then record `applied`.
  save_manifest(run_dir, m);
  const auto removed_files = remove_unreferenced(run_dir, m);
  spdlog::debug("purged {} superseded file(s)", removed_files.size());
  append_log(in_run(run_dir, kLogFile), {LogRecord::Type::kApplied, rec.seq, false, {}});
  receipt["purged_files"] = removed_files.size();
  return receipt;
}

}  // namespace

nlohmann::json forget(const ForgetRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  if (req.keys.empty()) throw UsageError("no ids given to forget");
  RunLock lock(req.run_dir);
  Manifest m = load_manifest(req.run_dir);
  const Config c = load_run_config(req.run_dir, m);
  check_environment(m.environment, c.train.threads, req.force_environment, req.run_dir);
  set_compute_threads(c.train.threads);

  // Finish what an earlier, interrupted forget accepted.
  const std::string log_path = in_run(req.run_dir, kLogFile);
  auto log = read_log(log_path);
  for (const auto& pending : pending_requests(log)) {
    spdlog::warn("resuming deletion request {} accepted before an interruption", pending.seq);
    apply_request(req.run_dir, m, c, pending, req.trainer);
  }

  // Validate the whole batch before anything is written.
  const bool grouped = c.data.group_column.size() + c.data.groups_dataset.size() > 0;
  if (req.by_group && !grouped) {
    throw UsageError("--groups given but run '" + req.run_dir + "' has no groups");
  }
  std::set<int64_t> live;
  for (const auto& e : m.entries) {
    std::vector<int64_t> ids, groups;
    decode_store_keys(read_verified(req.run_dir, e.store), in_run(req.run_dir, e.store.path), &ids,
                      &groups);
    live.insert(req.by_group ? groups.begin() : ids.begin(), req.by_group ? groups.end() : ids.end());
  }
  const auto& deleted = req.by_group ? m.deleted_groups : m.deleted_ids;
  std::vector<int64_t> unknown;
  std::set<int64_t> unique(req.keys.begin(), req.keys.end());
  for (int64_t k : unique) {
    if (!live.count(k) && !std::binary_search(deleted.begin(), deleted.end(), k)) unknown.push_back(k);
  }
  if (!unknown.empty()) {
    throw DataError(std::string("unknown ") + (req.by_group ? "group(s)" : "id(s)") + " in run '" +
                    req.run_dir + "': " + join_ids(unknown) + "; the batch was rejected, nothing deleted");
  }

  log = read_log(log_path);
  uint64_t seq = m.last_seq;
  for (const auto& r : log.records) seq = std::max(seq, r.seq);
  ++seq;
  LogRecord rec{LogRecord::Type::kAccepted, seq, req.by_group, {unique.begin(), unique.end()}};
  append_log(log_path, rec);
  spdlog::info("deletion request {} accepted ({} {})", seq, rec.keys.size(),
               req.by_group ? "group(s)" : "id(s)");
  auto receipt = apply_request(req.run_dir, m, c, rec, req.trainer);
  receipt["total_seconds"] = since(t0);
  spdlog::info("deletion request {} applied: {} sample(s) removed, {} shard(s) retrained in {:.2f}s",
               seq, receipt["deleted_count"].get<int64_t>(), receipt["shards"].size(),
               since(t0));
  return receipt;
}

}  // namespace sisa
