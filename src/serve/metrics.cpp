#include "serve/metrics.h"

#include <fmt/format.h>

namespace sisa {

std::string prometheus_scalar(const std::string& name, const char* type, const std::string& help, double value) {
  return fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
}

const char* Metrics::name(Endpoint e) {
  static const char* names[] = {"/v1/predict", "/v1/forget",   "/v1/forget/{id}", "/v1/status", "/healthz",
                                "/metrics",    "/v1/generate", "/v1/score",       "other"};
  return names[e];
}

void Metrics::observe(Endpoint e, int status, double seconds) {
  PerEndpoint& p = endpoints_[e];
  if (status < 0 || status >= 600) status = 0;
  p.by_status[static_cast<size_t>(status)].fetch_add(1, std::memory_order_relaxed);
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  p.buckets[b].fetch_add(1, std::memory_order_relaxed);
  p.count.fetch_add(1, std::memory_order_relaxed);
  p.sum_ns.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

std::string Metrics::render(const std::string& extra) const {
  std::string out;
  out += "# HELP sisa_http_requests_total HTTP requests answered, by endpoint and status code.\n";
  out += "# TYPE sisa_http_requests_total counter\n";
  for (int e = 0; e < kEndpoints; ++e) {
    for (size_t s = 0; s < 600; ++s) {
      const uint64_t n = endpoints_[e].by_status[s].load(std::memory_order_relaxed);
      if (n) {
        out += fmt::format("sisa_http_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n",
                           name(static_cast<Endpoint>(e)), s, n);
      }
    }
  }
  out += "# HELP sisa_http_request_duration_seconds Time from the request's arrival to its answer.\n";
  out += "# TYPE sisa_http_request_duration_seconds histogram\n";
  for (int e = 0; e < kEndpoints; ++e) {
    const PerEndpoint& p = endpoints_[e];
    const char* n = name(static_cast<Endpoint>(e));
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += p.buckets[b].load(std::memory_order_relaxed);
      const std::string le = b < kBuckets.size() ? fmt::format("{}", kBuckets[b]) : "+Inf";
      out +=
          fmt::format("sisa_http_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"{}\"}} {}\n", n, le, cumulative);
    }
    out += fmt::format("sisa_http_request_duration_seconds_sum{{endpoint=\"{}\"}} {:.6f}\n", n,
                       static_cast<double>(p.sum_ns.load(std::memory_order_relaxed)) * 1e-9);
    out += fmt::format("sisa_http_request_duration_seconds_count{{endpoint=\"{}\"}} {}\n", n,
                       p.count.load(std::memory_order_relaxed));
  }
  out += prometheus_scalar("sisa_predictions_total", "counter", "Inputs predicted.",
                           static_cast<double>(predictions_.load(std::memory_order_relaxed)));
  return out + extra;
}

}  // namespace sisa
