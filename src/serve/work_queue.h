// The threads that do the CPU-heavy part of requests: parsing a large body,
// tokenizing texts, a language model's generate and score. The event-loop
// threads (http_transport.h) then only read, route and write, so a hostile
// request (8 MB of text) costs a compute thread its time, never /healthz or
// another client's answer. Jobs run in order of arrival; each is bounded by
// the request body it holds, which the transport's in-flight budget caps.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sisa {

class WorkQueue {
 public:
  // `threads` threads at scheduling niceness `nice` (thread_priority.h).
  WorkQueue(int threads, int nice);
  ~WorkQueue();  // runs what is queued, then joins
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `job`; it must not throw (it answers its own errors).
  void post(std::function<void()> job);

 private:
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sisa
