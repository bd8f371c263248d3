#include "serve/work_queue.h"

#include <algorithm>

#include "serve/thread_priority.h"

namespace sisa {

WorkQueue::WorkQueue(int threads, int nice) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    threads_.emplace_back([this, nice] {
      set_this_thread_nice(nice);
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        wake_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, nothing left
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        job();
        lock.lock();
      }
    });
  }
}

WorkQueue::~WorkQueue() {
  {
    std::lock_guard<std::mutex> hold(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkQueue::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> hold(mu_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

}  // namespace sisa
