#include "serve/batcher.h"

#include <algorithm>
#include <cstring>

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
  if (!all.shard_labels.empty()) o.shard_labels.assign(all.shard_labels.begin() + f * s, all.shard_labels.begin() + (f + m) * s);
  return o;
}

}  // namespace

PredictBatcher::PredictBatcher(std::function<std::shared_ptr<const Ensemble>()> snapshot, int slots,
                               int64_t max_rows)
    : snapshot_(std::move(snapshot)), max_rows_(max_rows), free_slots_(std::max(slots, 1)) {}

PredictBatcher::Result PredictBatcher::predict(const PredictInput& in) {
  Pending me{&in, {}, nullptr, false};
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(&me);
  for (;;) {
    if (me.done) break;
    if (free_slots_ > 0 && !queue_.empty()) {
      // Lead a batch: everything queued, in order, up to max_rows (a larger
      // request goes alone). It may not include this request; then wait on.
      std::vector<Pending*> batch;
      int64_t rows = 0;
      while (!queue_.empty() && (batch.empty() || rows + queue_.front()->in->n <= max_rows_)) {
        rows += queue_.front()->in->n;
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      --free_slots_;
      lock.unlock();
      run_batch(batch);
      lock.lock();
      ++free_slots_;
      for (Pending* p : batch) p->done = true;
      finished_.notify_all();
      continue;
    }
    finished_.wait(lock);
  }
  if (me.error) std::rethrow_exception(me.error);
  return std::move(me.result);
}

void PredictBatcher::run_batch(const std::vector<Pending*>& batch) const {
  try {
    const auto ensemble = snapshot_();
    int64_t rows = 0;
    bool shard_labels = false;
    for (const Pending* p : batch) {
      rows += p->in->n;
      shard_labels = shard_labels || p->in->shard_votes;
    }
    EnsembleOutput all;
    if (batch.size() == 1) {
      all = ensemble->predict(batch[0]->in->inputs.data(), rows, shard_labels);
    } else {
      std::vector<float> inputs;
      inputs.reserve(static_cast<size_t>(rows * ensemble->width()));
      for (const Pending* p : batch) inputs.insert(inputs.end(), p->in->inputs.begin(), p->in->inputs.end());
      all = ensemble->predict(inputs.data(), rows, shard_labels);
    }
    int64_t first = 0;
    for (Pending* p : batch) {
      p->result.out = batch.size() == 1 ? std::move(all) : slice_rows(all, first, p->in->n);
      p->result.ensemble = ensemble;
      first += p->in->n;
    }
  } catch (...) {
    for (Pending* p : batch) p->error = std::current_exception();
  }
}

}  // namespace sisa
