// What `sisa serve` holds on a run directory: the writer lock, the served
// ensemble, and a worker thread that carries out deletion requests in the
// background. A request is acknowledged only once it is durably logged;
// when its retrain is published the new ensemble is swapped in, and only
// then is the request reported `applied`, so every prediction that starts
// after that answer comes from the new models.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "format/deletion_log.h"
#include "run/ensemble.h"
#include "run/writer.h"
#include "sisa/errors.h"
#include "store/run_dir.h"

namespace sisa {

// The request cannot be taken now (deletions paused after a failure).
class UnavailableError : public Error {
 public:
  explicit UnavailableError(const std::string& m) : Error(ExitCode::kInternal, m) {}
};

class DeletionService {
 public:
  // Takes the run lock, recovers what needs no retraining (stale files, a
  // torn log tail), loads the ensemble, and queues requests that were
  // accepted but not applied before the last stop.
  DeletionService(const std::string& run_dir, bool force_environment);
  ~DeletionService();  // stop()

  void start();  // the background worker
  // Stops the worker: a retrain in progress is abandoned after its current
  // epoch; its request stays accepted in the log and resumes at the next start.
  void stop();

  std::shared_ptr<const Ensemble> ensemble() const;
  const Config& config() const { return writer_.config; }

  struct Submitted {
    uint64_t seq = 0;  // 0: every key was deleted before; nothing was logged
    std::vector<int64_t> already_deleted;
  };
  // Logs the request durably and queues it; returns its sequence number.
  // DataError (naming them) if any id (or group key) was never part of the
  // run; UsageError for groups in a run without groups. A request whose keys
  // were all deleted before is answered without a log record (seq 0).
  Submitted submit(const std::vector<int64_t>& keys, bool by_group = false);

  // {"id", "state": pending|running|applied|failed, "receipt"?, "error"?,
  // "receipt_error"?}; null if no request has this id. Never throws: a
  // receipt that cannot be read is reported as damaged.
  nlohmann::json request(uint64_t seq) const;
  // Receipts that failed their check at start-up ("path: what is wrong").
  std::vector<std::string> damaged_receipts() const;

  struct Counts {
    size_t pending = 0;    // accepted, not yet applied (queued or running)
    uint64_t applied = 0;  // applied by this process
    uint64_t failed = 0;
  };
  Counts counts() const;
  std::vector<uint64_t> pending_ids() const;
  std::string paused_reason() const;  // empty while deletions run
  // Non-empty if a published deletion's models could not be loaded: the
  // served ensemble still holds deleted samples, so predictions must stop.
  std::string stale_reason() const;

 private:
  struct State {
    std::string state;
    nlohmann::json receipt;
    std::string error;
  };
  void work();
  // Records a request's outcome and takes it off the queue, atomically.
  void settle(uint64_t seq, const std::string& state, nlohmann::json receipt = nullptr, std::string error = {});
  void pause(const std::string& why);
  void swap_in(std::shared_ptr<const Ensemble> next);
  void recover_from_failure(const LogRecord& rec, const std::string& what);
  nlohmann::json receipt_of(uint64_t seq) const;

  RunDir run_;
  Writer writer_;                                // lock, manifest (owned by the worker), config
  std::vector<int64_t> known_ids_;               // sorted: every id the run ever held
  std::vector<int64_t> known_groups_;            // sorted: every group key (empty: the run has no groups)
  std::map<std::string, std::string> receipts_;  // published before this process started: path -> "" or damage

  mutable std::mutex ensemble_mu_;
  std::shared_ptr<const Ensemble> ensemble_;
  std::string stale_;

  mutable std::mutex mu_;  // everything below
  std::condition_variable wake_;
  std::deque<LogRecord> queue_;
  std::map<uint64_t, State> states_;  // requests seen by this process
  uint64_t next_seq_ = 1;
  std::set<int64_t> deleted_ids_, deleted_groups_;  // as published
  uint64_t applied_ = 0, failed_ = 0;
  std::string paused_;

  std::atomic<bool> stop_{false};
  std::thread worker_;
};

}  // namespace sisa
