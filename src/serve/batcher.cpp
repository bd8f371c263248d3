#include "serve/batcher.h"

#include <algorithm>
#include <cstring>

#include "serve/thread_priority.h"

namespace sisa {
namespace {

// Rows [first, first + n) of `all` as an output of its own.
EnsembleOutput slice_rows(const EnsembleOutput& all, int64_t first, int64_t n) {
  EnsembleOutput o;
  o.n = n;
  o.classes = all.classes;
  o.shards = all.shards;
  const auto k = static_cast<size_t>(all.classes), s = static_cast<size_t>(all.shards);
  const auto f = static_cast<size_t>(first), m = static_cast<size_t>(n);
  o.mean.assign(all.mean.begin() + f * k, all.mean.begin() + (f + m) * k);
  o.votes.assign(all.votes.begin() + f * k, all.votes.begin() + (f + m) * k);
  o.label_mean.assign(all.label_mean.begin() + f, all.label_mean.begin() + f + m);
  o.label_vote.assign(all.label_vote.begin() + f, all.label_vote.begin() + f + m);
  if (!all.shard_labels.empty())
    o.shard_labels.assign(all.shard_labels.begin() + f * s, all.shard_labels.begin() + (f + m) * s);
  return o;
}

}  // namespace

PredictBatcher::PredictBatcher(std::function<std::shared_ptr<const Ensemble>()> snapshot, int threads, int64_t max_rows,
                               int nice)
    : snapshot_(std::move(snapshot)), max_rows_(max_rows) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    threads_.emplace_back([this, i, nice] {
      set_this_thread_nice(nice);
      work(i);
    });
  }
}

PredictBatcher::~PredictBatcher() {
  {
    std::lock_guard<std::mutex> hold(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void PredictBatcher::submit(std::shared_ptr<const PredictInput> in, Done done) {
  std::unique_lock<std::mutex> lock(mu_);
  if (in_flight_++ == 0 && in->n < kManyRows) {
    // The only request in the server: nothing to batch with, so run it
    // here, which spares a lone client two thread wake-ups (a third of its
    // latency). Requests that arrive meanwhile go to the compute threads.
    lock.unlock();
    std::vector<Pending> batch;
    batch.push_back({std::move(in), std::move(done)});
    run_batch(batch);
    return;
  }
  queued_rows_ += in->n;
  queue_.push_back({std::move(in), std::move(done)});
  lock.unlock();
  wake_.notify_all();  // the first thread takes anything, the others only many rows
}

void PredictBatcher::work(int index) {
  const int64_t wanted = index == 0 ? 1 : kManyRows;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || queued_rows_ >= wanted; });
    if (queue_.empty()) {
      if (stop_) return;
      continue;
    }
    // Everything queued, in order, up to max_rows (a larger request goes alone).
    std::vector<Pending> batch;
    int64_t rows = 0;
    while (!queue_.empty() && (batch.empty() || rows + queue_.front().in->n <= max_rows_)) {
      rows += queue_.front().in->n;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    queued_rows_ -= rows;
    lock.unlock();
    run_batch(batch);
    lock.lock();
  }
}

void PredictBatcher::run_batch(std::vector<Pending>& batch) {
  std::vector<Result> results(batch.size());
  std::exception_ptr error;
  try {
    const auto ensemble = snapshot_();
    int64_t rows = 0;
    bool shard_labels = false;
    for (const Pending& p : batch) {
      rows += p.in->n;
      shard_labels = shard_labels || p.in->shard_votes;
    }
    EnsembleOutput all;
    if (!batch[0].in->tokens.empty()) {
      // Text: token rows, max_tokens wide (every input of a run is the same kind).
      std::vector<int32_t> tokens, lengths;
      for (const Pending& p : batch) {
        tokens.insert(tokens.end(), p.in->tokens.begin(), p.in->tokens.end());
        lengths.insert(lengths.end(), p.in->lengths.begin(), p.in->lengths.end());
      }
      InputView v;
      v.input = InputKind::kTokens;
      v.n = rows;
      v.width = static_cast<int64_t>(tokens.size()) / rows;
      v.tokens = tokens.data(), v.lengths = lengths.data();
      all = ensemble->predict(v, shard_labels);
    } else if (batch.size() == 1) {
      all = ensemble->predict(batch[0].in->inputs.data(), rows, shard_labels);
    } else {
      std::vector<float> inputs;
      inputs.reserve(static_cast<size_t>(rows * ensemble->width()));
      for (const Pending& p : batch) inputs.insert(inputs.end(), p.in->inputs.begin(), p.in->inputs.end());
      all = ensemble->predict(inputs.data(), rows, shard_labels);
    }
    int64_t first = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      results[i].out = batch.size() == 1 ? std::move(all) : slice_rows(all, first, batch[i].in->n);
      results[i].ensemble = ensemble;
      first += batch[i].in->n;
    }
  } catch (...) {
    error = std::current_exception();
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].done(error ? Result{} : std::move(results[i]), error);
  }
  std::lock_guard<std::mutex> hold(mu_);
  in_flight_ -= static_cast<int64_t>(batch.size());
}

}  // namespace sisa
