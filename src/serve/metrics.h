// Request counts and latency histograms per endpoint, rendered in the
// Prometheus text format (version 0.0.4). Lock-free on the request path.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace sisa {

// One sample without labels, with its HELP and TYPE lines.
std::string prometheus_scalar(const std::string& name, const char* type, const std::string& help, double value);

class Metrics {
 public:
  enum Endpoint { kPredict, kForget, kForgetStatus, kStatus, kHealth, kMetrics, kGenerate, kScore, kOther, kEndpoints };
  static const char* name(Endpoint e);

  void observe(Endpoint e, int status, double seconds);
  void add_predictions(int64_t n) { predictions_ += static_cast<uint64_t>(n); }
  // Everything recorded so far; `extra` (already formatted) is appended.
  std::string render(const std::string& extra) const;

  static constexpr std::array<double, 13> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1.0,   2.5,  10.0};

 private:
  struct PerEndpoint {
    std::array<std::atomic<uint64_t>, 600> by_status{};                // index: HTTP status
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};  // last: +Inf
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
  };
  std::array<PerEndpoint, kEndpoints> endpoints_;
  std::atomic<uint64_t> predictions_{0};
};

}  // namespace sisa
