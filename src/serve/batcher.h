// Predictions of concurrent requests share one pass over the weights. A
// single input costs little arithmetic but streams every shard's weights
// (0.8 MB per MLP shard); requests that arrive while the compute slots are
// busy are queued, and the next free slot runs everything queued as one
// batch. No request waits for a batch to fill: with one client, batches are
// of one; under load they grow by themselves.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>

#include "ensemble.h"
#include "serve/api.h"

namespace sisa {

class PredictBatcher {
 public:
  struct Result {
    EnsembleOutput out;                        // this request's rows only
    std::shared_ptr<const Ensemble> ensemble;  // the snapshot that answered
  };
  // `snapshot` gives the ensemble to use for a batch (taken when the batch
  // runs, so a batch never mixes snapshots); `slots` batches run at once.
  PredictBatcher(std::function<std::shared_ptr<const Ensemble>()> snapshot, int slots, int64_t max_rows);

  // Blocks until this request's rows are computed (in whatever batch).
  Result predict(const PredictInput& in);

 private:
  struct Pending {
    const PredictInput* in;
    Result result;
    std::exception_ptr error;
    bool done = false;
  };
  void run_batch(const std::vector<Pending*>& batch) const;

  std::function<std::shared_ptr<const Ensemble>()> snapshot_;
  const int64_t max_rows_;
  std::mutex mu_;
  std::condition_variable finished_;
  std::deque<Pending*> queue_;
  int free_slots_;
};

}  // namespace sisa
