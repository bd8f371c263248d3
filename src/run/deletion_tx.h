// The deletion transaction: the steps of an exact deletion, the one path
// `sisa forget` (run_forget.cpp) and `sisa serve`'s background deletions
// (serve/deletion_service.cpp) take:
//   accept  check_request, then accept_request logs `accepted` durably: the
//           request is acknowledged and will be applied, whatever happens next;
//   plan    plan_request: which shards hold the keys, their data loaded;
//   execute execute_request: shard jobs, the manifest edit on a copy, the
//           derived-model hook, then commit (receipt, publish, purge, `applied`).
// A failure at any step leaves the published manifest whole; an accepted
// request is finished by the next writer (recover_locked).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "format/deletion_log.h"
#include "format/manifest.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/shard_trainer.h"
#include "store/run_dir.h"

namespace sisa {

class ShardRunner;

// A request that passed its checks: its keys sorted and unique, and whether
// every one was deleted before (then nothing is logged, retrained or purged).
struct CheckedRequest {
  std::vector<int64_t> keys;
  bool by_group = false;
  bool noop = false;
};

// The checks of the accept step, before anything is written: groups only in
// a run that has them (UsageError); every key one the run ever held
// (`known`), else DataError naming the unknown ones and saying nothing was
// deleted; `deleted` says which keys are gone already.
CheckedRequest check_request(const std::string& run_root, const Config& c, const std::vector<int64_t>& keys,
                             bool by_group, const std::function<bool(int64_t)>& known,
                             const std::function<bool(int64_t)>& deleted);

// Logs the checked request as `accepted` under `seq`, durably (synced)
// before it returns: from here on the deletion is acknowledged and is never
// forgotten. Returns the record the later steps carry.
LogRecord accept_request(const RunDir& run, uint64_t seq, const CheckedRequest& request);

struct ShardPlan {
  size_t entry;         // index into Manifest::entries
  ShardData remaining;  // the shard's rows without the deleted ones
  int64_t first_stage;  // the earliest stage that saw a deleted row
  std::vector<int64_t> removed;
  Dataset deleted;  // the removed rows themselves (a derived model learns from them)
};

struct RequestPlan {
  std::vector<ShardPlan> shards;
  std::set<int64_t> found;  // keys that matched a stored sample
};

// Which shards hold the request's keys, with everything their retraining
// reads loaded (so a damaged store or checkpoint is reported early).
// Idempotent: shards that already applied the request are left alone.
RequestPlan plan_request(const RunDir& run, const Manifest& m, const Config& c, const LogRecord& rec);

// Carries out a planned, logged request and returns its receipt. The
// manifest edit is built on a copy; models derived from the shards (the LOO
// student, src/loo_student.h) are updated into it after the shards retrain,
// so they are published in the same atomic switch; it is assigned to
// `published` once it is on disk: a failure before that (a throw from the
// derived update too) leaves `published` untouched and the request accepted.
nlohmann::json execute_request(const RunDir& dir, Manifest& published, const Config& c, const LogRecord& rec,
                               RequestPlan plan, const TrainerOptions& trainer, ShardRunner* runner);

// What every writer does first, in two steps. prepare_recovery drops files
// the manifest does not name (a crashed attempt's new generation, temp files)
// and a torn log tail, and returns the requests accepted but not applied;
// finish_request carries one out (a request the manifest already records was
// published before the crash: only its `applied` record is missing; then it
// returns null, else the receipt). recover_locked does both: what every
// writer does first.
std::vector<LogRecord> prepare_recovery(const RunDir& run, const Manifest& m, nlohmann::json* report);
nlohmann::json finish_request(const RunDir& run, Manifest& m, const Config& c, const LogRecord& rec,
                              const TrainerOptions& trainer, ShardRunner* runner);
nlohmann::json recover_locked(const RunDir& run, Manifest& m, const Config& c, const TrainerOptions& trainer,
                              ShardRunner* runner);

// The sequence number the next request gets: one past every number the log
// or the manifest has seen.
uint64_t next_request_seq(const Manifest& m, const LogContents& log);

}  // namespace sisa
