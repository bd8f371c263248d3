// `sisa serve`: the ensemble over HTTP, with deletions applied live.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace sisa {

struct ServeOptions {
  std::string run_dir;
  std::string host = "127.0.0.1";    // loopback unless asked otherwise
  int port = 8080;                   // 0: any free port (see on_listening)
  std::string token_file;            // bearer token for POST /v1/forget; empty: deletion over HTTP disabled
  int http_threads = 2;              // threads that run the event loop and parse/answer requests; connections hold none
  size_t max_body_bytes = 8u << 20;  // larger bodies get 413
  double read_timeout_seconds = 10;  // to send a whole request (headers and body); then 408 and close
  size_t max_connections = 1000;     // open connections in all; more are answered 503
  size_t max_connections_per_client = 128;  // open connections per client address
  bool force_environment = false;           // serve (and retrain) in a different numeric environment
  // Nice value of the threads that answer requests, against 0 for the one
  // that retrains after a deletion: under full load a retrain keeps about a
  // core (nice 10: weight 110 against 1024). 0: both share the CPU equally.
  int serving_nice = 10;
  std::function<void(const std::string& host, int port)> on_listening;  // once accepting connections
};

// Holds the run lock, recovers, serves until SIGINT or SIGTERM, then finishes
// in-flight requests and returns 0. Throws (typed errors) if it cannot start.
int serve(const ServeOptions& options);

}  // namespace sisa
