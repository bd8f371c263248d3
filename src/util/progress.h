// Progress over a whole job in work units (samples x epochs) with an ETA from
// the average rate so far.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sisa {

class Progress {
 public:
  explicit Progress(int64_t total_units);
  void advance(int64_t units) { done_ += units; }
  double elapsed_seconds() const;
  // "ETA 1m23s", or "ETA ?" before any work is done.
  std::string eta() const;
  int percent() const;

 private:
  int64_t total_;
  int64_t done_ = 0;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);
// Wall seconds since t0.
double since(std::chrono::steady_clock::time_point t0);
// User + system CPU time of this process so far (what rank 0 spends coordinating).
double process_cpu_seconds();

}  // namespace sisa
