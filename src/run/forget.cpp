// `sisa forget` and `sisa recover`: the deletion transaction
// (src/deletion_tx.h) run once, under the writer lock, from the command line.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "format/deletion_log.h"
#include "run/deletion_tx.h"
#include "run/seams.h"
#include "run/writer.h"
#include "sisa/errors.h"
#include "sisa/run.h"
#include "store/closed_world.h"
#include "store/run_dir.h"
#include "util/progress.h"

namespace sisa {

nlohmann::json recover(const RecoverRequest& req) { return recover(req, seams_of(req.cluster)); }

nlohmann::json recover(const RecoverRequest& req, const RunSeams& seams) {
  const RunDir run(req.run_dir, seams.env);
  require_closed_world(req.run_dir);  // before the log is read
  // Only retraining needs the run's numeric environment.
  const bool pending = !pending_requests(read_log(run.path(kLogFile))).empty();
  Writer w(run, req.force_environment, pending);
  return recover_locked(run, w.manifest, w.config, {}, seams.runner);
}

nlohmann::json forget(const ForgetRequest& req) { return forget(req, seams_of(req.cluster)); }

nlohmann::json forget(const ForgetRequest& req, const RunSeams& seams) {
  const auto t0 = std::chrono::steady_clock::now();
  if (req.keys.empty()) throw UsageError("no ids given to forget");
  const RunDir run(req.run_dir, seams.env);
  Writer w(run, req.force_environment);
  Manifest& m = w.manifest;
  const Config& c = w.config;
  recover_locked(run, m, c, seams.trainer, seams.runner);

  // The plan comes first: it finds which keys the run holds (and reports a
  // damaged store or checkpoint) before anything is written.
  const uint64_t seq = next_request_seq(m, read_log(run.path(kLogFile)));
  LogRecord draft{LogRecord::Type::kAccepted, seq, req.by_group, req.keys};
  const auto t_plan = std::chrono::steady_clock::now();
  const double setup_seconds = since(t0);
  auto plan = plan_request(run, m, c, draft);
  const double plan_seconds = since(t_plan);
  const auto& deleted = req.by_group ? m.deleted_groups : m.deleted_ids;
  const auto was_deleted = [&deleted](int64_t k) { return std::binary_search(deleted.begin(), deleted.end(), k); };
  const CheckedRequest checked = check_request(
      req.run_dir, c, req.keys, req.by_group, [&](int64_t k) { return plan.found.count(k) > 0 || was_deleted(k); },
      was_deleted);
  if (checked.noop) {
    // Every key was deleted before: nothing to log, retrain or purge.
    spdlog::info("nothing to delete: every {} was deleted before; no request logged", req.by_group ? "group" : "id");
    return {{"seq", nullptr},
            {"noop", true},
            {"by_group", req.by_group},
            {"requested", checked.keys.size()},
            {"deleted_ids", nlohmann::json::array()},
            {"deleted_count", 0},
            {"already_deleted", checked.keys},
            {"shards", nlohmann::json::array()},
            {"total_seconds", since(t0)}};
  }
  const LogRecord rec = accept_request(run, seq, checked);
  auto receipt = execute_request(run, m, c, rec, std::move(plan), seams.trainer, seams.runner);
  receipt["receipt_path"] = run.path(receipt_file(seq));
  receipt["setup_seconds"] = setup_seconds;
  receipt["plan_seconds"] = plan_seconds;
  receipt["total_seconds"] = since(t0);
  spdlog::info("deletion request {} applied: {} sample(s) removed, {} shard(s) retrained in {:.2f}s", seq,
               receipt["deleted_count"].get<int64_t>(), receipt["shards"].size(), since(t0));
  return receipt;
}

}  // namespace sisa
