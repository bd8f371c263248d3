#include "util/progress.h"

#include <sys/resource.h>

#include <cmath>

namespace sisa {

Progress::Progress(int64_t total_units) : total_(total_units), start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

int Progress::percent() const { return total_ > 0 ? static_cast<int>(100 * done_ / total_) : 100; }

std::string Progress::eta() const {
  if (done_ <= 0) return "ETA ?";
  const double rate = static_cast<double>(done_) / std::max(elapsed_seconds(), 1e-9);
  return "ETA " + format_duration(static_cast<double>(total_ - done_) / rate);
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(seconds, 0.0)));
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
  return std::to_string(s / 3600) + "h" + std::to_string((s % 3600) / 60) + "m";
}

}  // namespace sisa
