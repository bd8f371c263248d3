// `sisa serve`: options, signals, the transport and the deletion service
// around one Server (server.h).
#include "sisa/serve.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "serve/server.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

std::atomic<int> g_signal{0};  // lock-free, so safe to set from a signal handler
static_assert(std::atomic<int>::is_always_lock_free);

void check_options(const ServeOptions& o) {
  if (o.run_dir.empty()) throw UsageError("--run-dir is required");
  if (o.port < 0 || o.port > 65535) throw UsageError("--port must be 0..65535, got " + std::to_string(o.port));
  if (o.http_threads < 1 || o.http_threads > 1024) {
    throw UsageError("--http-threads must be 1..1024, got " + std::to_string(o.http_threads));
  }
  if (!std::isfinite(o.read_timeout_seconds) || o.read_timeout_seconds <= 0 || o.read_timeout_seconds > 3600) {
    throw UsageError("--read-timeout must be a number of seconds in (0, 3600], got " +
                     std::to_string(o.read_timeout_seconds));
  }
  if (o.max_body_bytes < 1) throw UsageError("--max-body-bytes must be at least 1");
  if (o.serving_nice < 0 || o.serving_nice > 19) {
    throw UsageError("--serving-nice must be 0..19, got " + std::to_string(o.serving_nice));
  }
  if (o.max_connections < 1 || o.max_connections_per_client < 1) {
    throw UsageError("--max-connections and --max-connections-per-client must be at least 1");
  }
}

// Room for every connection we may accept, if the hard limit allows it.
void raise_fd_limit(size_t connections) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  const rlim_t want = std::min<rlim_t>(r.rlim_max, static_cast<rlim_t>(connections + 256));
  if (r.rlim_cur < want) {
    r.rlim_cur = want;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

int serve(const ServeOptions& o) {
  check_options(o);
  const BearerToken token(o.token_file);
  if (!token.configured()) spdlog::info("no --token-file: deletions, receipts and /v1/status are off over HTTP");

  // SIGINT/SIGTERM only set a flag (libraries started threads before us, so
  // masking them cannot route the signal to one thread); a watcher thread
  // sees it and stops the transport, which lets in-flight requests finish.
  g_signal = 0;
  struct sigaction action {
  }, ignore{}, old_int{}, old_term{}, old_pipe{};
  action.sa_handler = [](int sig) { g_signal = sig; };
  sigemptyset(&action.sa_mask);
  ignore.sa_handler = SIG_IGN;  // a client hanging up must cost a failed write, not the server
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  sigaction(SIGPIPE, &ignore, &old_pipe);
  struct RestoreSignals {
    struct sigaction *i, *t, *p;
    ~RestoreSignals() {
      sigaction(SIGINT, i, nullptr);
      sigaction(SIGTERM, t, nullptr);
      sigaction(SIGPIPE, p, nullptr);
    }
  } restore{&old_int, &old_term, &old_pipe};

  DeletionService service(o.run_dir, o.force_environment);
  Server server(o, service, token);
  HttpLimits limits;
  limits.max_body_bytes = o.max_body_bytes;
  limits.max_body_bytes_in_flight = std::max(limits.max_body_bytes_in_flight, 4 * o.max_body_bytes);
  limits.request_timeout_seconds = o.read_timeout_seconds;
  limits.max_connections = o.max_connections;
  limits.max_connections_per_client = o.max_connections_per_client;
  limits.threads = o.http_threads;
  limits.nice = o.serving_nice;
  raise_fd_limit(limits.max_connections);
  HttpTransport transport(
      limits, [&server](HttpRequest& r, const HttpTransport::Reply& reply) { server.handle(r, reply); },
      [&server](const HttpRequest& r, int status, double s) { server.observe(r, status, s); }, error_body);
  const int port = transport.bind(o.host, o.port);
  service.start();
  // The socket listens from bind on: connections queue until run() accepts them.
  spdlog::info("serving run '{}' on http://{}:{} ({} HTTP threads)", o.run_dir, o.host, port, o.http_threads);
  if (o.on_listening) o.on_listening(o.host, port);
  std::atomic<bool> done{false};
  std::thread signal_waiter([&] {
    while (!done) {
      if (const int sig = g_signal) {
        spdlog::info("{}: finishing in-flight requests, then stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        transport.stop();  // a stop before run() takes effect as run() starts
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  transport.run();
  done = true;
  signal_waiter.join();
  service.stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace sisa
