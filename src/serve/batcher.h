// Predictions of concurrent requests share one pass over the weights. A
// single input costs little arithmetic but streams every shard's weights
// (0.8 MB per MLP shard); requests that arrive while the compute threads are
// busy are queued, and the next free thread runs everything queued as one
// batch. No request waits for a batch to fill: with one client, batches are
// of one; under load they grow by themselves. Nothing blocks: a request's
// answer is handed to a callback.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "run/ensemble.h"
#include "serve/api.h"

namespace sisa {

class PredictBatcher {
 public:
  struct Result {
    EnsembleOutput out;                        // this request's rows only
    std::shared_ptr<const Ensemble> ensemble;  // the snapshot that answered
  };
  // Called once per request, on the compute thread that ran its batch;
  // `error` is set (and `result` empty) if the batch failed. Must not throw.
  using Done = std::function<void(Result result, std::exception_ptr error)>;

  // `snapshot` gives the ensemble to use for a batch (taken when the batch
  // runs, so a batch never mixes snapshots); `threads` compute threads each
  // run one batch at a time, all but the first only when kManyRows wait.
  // `nice`: the compute threads' scheduling niceness (serve/thread_priority.h).
  PredictBatcher(std::function<std::shared_ptr<const Ensemble>()> snapshot, int threads, int64_t max_rows,
                 int nice = 0);
  ~PredictBatcher();  // finishes what is queued, then joins

  // Queues the request and returns at once: callers on an event loop keep
  // reading other requests while a batch computes. Only a lone small request
  // (no other one in flight, under kManyRows inputs) is computed by the
  // caller itself: it spares a lone client two thread wake-ups.
  void submit(std::shared_ptr<const PredictInput> in, Done done);

 private:
  struct Pending {
    std::shared_ptr<const PredictInput> in;
    Done done;
  };
  void work(int index);
  // The rows that must wait before a second compute thread takes a batch, and
  // the most a lone request may have to be computed on its caller's thread.
  static constexpr int64_t kManyRows = 16;
  // Computes one batch and calls each request's `done`.
  void run_batch(std::vector<Pending>& batch);

  std::function<std::shared_ptr<const Ensemble>()> snapshot_;
  const int64_t max_rows_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  int64_t queued_rows_ = 0;
  int64_t in_flight_ = 0;  // submitted, not yet answered
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sisa
