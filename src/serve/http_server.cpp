// The HTTP layer of `sisa serve` (cpp-httplib; the only file that includes
// it). Handlers are thin: parsing and rendering live in api.cpp, state in
// DeletionService.
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "fs.h"
#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/deletion_service.h"
#include "serve/metrics.h"
#include "sisa/errors.h"
#include "sisa/serve.h"

namespace sisa {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_signal{0};  // lock-free, so safe to set from a signal handler
static_assert(std::atomic<int>::is_always_lock_free);

constexpr const char* kJson = "application/json";
constexpr const char* kBodyTooLarge = "the body exceeds the server's limit (--max-body-bytes)";

std::string read_token(const std::string& path) {
  const auto bytes = read_file(path);
  std::string token(bytes.begin(), bytes.end());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
  if (token.size() < 16) {
    throw UsageError("--token-file '" + path + "' holds a token of " + std::to_string(token.size()) +
                     " characters; use at least 16 (e.g. openssl rand -hex 32)");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077)) {
    spdlog::warn("--token-file '{}' is readable by group or others (chmod 600 it)", path);
  }
  return token;
}

// Compares in time independent of where the strings differ.
bool same_secret(const std::string& given, const std::string& secret) {
  unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ secret[i % secret.size()]);
  }
  return diff == 0;
}

Metrics::Endpoint endpoint_of(const httplib::Request& req) {
  const std::string& p = req.path;
  if (p == "/v1/predict") return Metrics::kPredict;
  if (p == "/v1/forget") return Metrics::kForget;
  if (p.rfind("/v1/forget/", 0) == 0) return Metrics::kForgetStatus;
  if (p == "/v1/status") return Metrics::kStatus;
  if (p == "/healthz") return Metrics::kHealth;
  if (p == "/metrics") return Metrics::kMetrics;
  return Metrics::kOther;
}

// httplib's server with its listening socket exposed: Debian's build listens
// with a backlog of 5, so 64 clients connecting at once saw dropped SYNs
// (1 s retransmits, connect errors). Linux lets listen() raise it.
class HttpServer : public httplib::Server {
 public:
  void widen_backlog() {
    const int fd = svr_sock_;
    if (fd >= 0) ::listen(fd, SOMAXCONN);
  }
};

void reply_error(httplib::Response& res, int status, const std::string& error, const std::string& detail) {
  res.status = status;
  res.set_content(error_body(error, detail), kJson);
}

class Server {
 public:
  Server(const ServeOptions& o, DeletionService& service, std::string token)
      : options_(o), service_(service), token_(std::move(token)) {
    const Config& c = service_.config();
    scale_ = c.data.scale;
    offset_ = c.data.offset;
    width_ = service_.ensemble()->width();
    routes();
    http_.new_task_queue = [n = o.http_threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    http_.set_tcp_nodelay(true);  // without it every answer waited ~40-90 ms for the client's ACK
    http_.set_keep_alive_max_count(100000);
    http_.set_keep_alive_timeout(5);
    http_.set_payload_max_length(o.max_body_bytes);
    const auto timeout = std::chrono::duration<double>(o.read_timeout_seconds);
    http_.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
    http_.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  }

  HttpServer& http() { return http_; }

 private:
  void routes() {
    // The arrival time of the request this thread is answering (a request is
    // answered on one thread), for the latency histograms.
    http_.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      started() = Clock::now();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      // Requests httplib rejects before routing (a bad request line) have no start time.
      const Clock::time_point t0 = started();
      const double s = t0 == Clock::time_point{} ? 0.0 : std::chrono::duration<double>(Clock::now() - t0).count();
      started() = Clock::time_point{};
      metrics_.observe(endpoint_of(req), res.status, s);
      spdlog::debug("{} {} -> {} ({:.3f} ms)", req.method, req.path, res.status, s * 1e3);
    });
    // Errors httplib itself answers (no route, body too large, bad request
    // line) get the same JSON shape as ours.
    // httplib calls this outside its own exception handling: it must not throw.
    http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const int s = res.status;
      try {
        const std::string error = s == 404 ? "not_found" : s == 413 ? "body_too_large" : s == 405 ? "method_not_allowed"
                                  : s == 408 ? "timeout" : "bad_request";
        const std::string detail = s == 404 ? "no endpoint " + req.method + " " + req.path
                                   : s == 413 ? kBodyTooLarge
                                              : "the request could not be read (status " + std::to_string(s) + ")";
        res.set_content(error_body(error, detail), kJson);
      } catch (...) {
        res.set_content("{\"error\":\"bad_request\",\"detail\":\"unreadable request\"}\n", kJson);
      }
    });
    http_.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("{} {}: {}", req.method, req.path, what);
      reply_error(res, 500, "internal", what);
    });

    // Bodies are read through a content reader: otherwise httplib parses a
    // body sent as a form (curl -d's default content type) as one and
    // refuses it beyond 8 KiB.
    http_.Post("/v1/predict", [this](const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& read) {
      std::string body;
      if (read_body(read, &body, res)) predict(req, body, res);
    });
    http_.Post("/v1/forget", [this](const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& read) {
      std::string body;
      if (read_body(read, &body, res)) forget(req, body, res);
    });
    http_.Get(R"(/v1/forget/(\d{1,18}))", [this](const httplib::Request& req, httplib::Response& res) {
      const json r = service_.request(std::stoull(req.matches[1].str()));
      if (r.is_null()) return reply_error(res, 404, "unknown_request", "no deletion request " + req.matches[1].str());
      res.set_content(r.dump() + "\n", kJson);
    });
    http_.Get("/v1/status", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(status().dump() + "\n", kJson);
    });
    http_.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      const std::string paused = service_.paused_reason();
      const bool stale = !service_.stale_reason().empty();
      res.status = stale ? 503 : 200;
      res.set_content(json{{"status", stale ? "models_out_of_date" : "ok"},
                           {"deletions", paused.empty() ? "ok" : "paused"}}.dump() + "\n", kJson);
    });
    http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics(), "text/plain; version=0.0.4");
    });
  }

  // False (with the answer set) if the body could not be read: over the size
  // limit (httplib checks Content-Length; chunked bodies are counted here),
  // or the client stalled or hung up.
  bool read_body(const httplib::ContentReader& read, std::string* body, httplib::Response& res) const {
    bool too_large = false;
    const bool ok = read([&](const char* data, size_t n) {
      if (body->size() + n > options_.max_body_bytes) {
        too_large = true;
        return false;
      }
      body->append(data, n);
      return true;
    });
    if (ok) return true;
    res.set_header("Connection", "close");
    if (too_large || res.status == 413) {
      reply_error(res, 413, "body_too_large", kBodyTooLarge);
    } else {
      reply_error(res, 400, "incomplete_body", "the body ended early or stalled longer than the read timeout");
    }
    return false;
  }

  static Clock::time_point& started() {
    static thread_local Clock::time_point t;
    return t;
  }

  void predict(const httplib::Request&, const std::string& body, httplib::Response& res) {
    if (const std::string stale = service_.stale_reason(); !stale.empty()) {
      return reply_error(res, 503, "models_out_of_date", stale);
    }
    try {
      const PredictInput in = parse_predict(body, width_, scale_, offset_);
      // One ensemble snapshot per batch: never a mix of generations.
      const PredictBatcher::Result r = batcher_.predict(in);
      metrics_.add_predictions(in.n);
      res.set_content(render_predict(in, r.out, *r.ensemble), kJson);
    } catch (const ApiError& e) {
      reply_error(res, e.status(), e.error(), e.what());
    }
  }

  void forget(const httplib::Request& req, const std::string& body, httplib::Response& res) {
    if (token_.empty()) {
      return reply_error(res, 403, "forbidden",
                         "deletion over HTTP is disabled: start sisa serve with --token-file");
    }
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.compare(0, prefix.size(), prefix) != 0 || !same_secret(auth.substr(prefix.size()), token_)) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"sisa\"");
      return reply_error(res, 401, "unauthorized", "POST /v1/forget needs 'Authorization: Bearer <token>'");
    }
    try {
      const ForgetInput in = parse_forget(body);
      try {
        const uint64_t seq = service_.submit(in.keys, in.by_group);
        const std::string url = "/v1/forget/" + std::to_string(seq);
        res.status = 202;
        res.set_header("Location", url);
        res.set_content(json{{"id", seq}, {"state", "pending"}, {"status_url", url}}.dump() + "\n", kJson);
      } catch (const DataError& e) {
        reply_error(res, 422, in.by_group ? "unknown_groups" : "unknown_ids", e.what());
      } catch (const UsageError& e) {
        reply_error(res, 422, "no_groups", e.what());
      }
    } catch (const ApiError& e) {
      reply_error(res, e.status(), e.error(), e.what());
    } catch (const UnavailableError& e) {
      reply_error(res, 503, "unavailable", e.what());
    }
  }

  json status() const {
    const auto e = service_.ensemble();
    json shards = json::array();
    for (const auto& s : e->shards()) {
      shards.push_back({{"shard", s.shard}, {"generation", s.generation}, {"n_samples", s.n_samples},
                        {"fingerprint", s.fingerprint}, {"state_digest", s.state_digest}});
    }
    const std::string paused = service_.paused_reason();
    return {{"run_dir", options_.run_dir},
            {"shard_status", shards},
            {"last_applied_request", e->last_applied()},
            {"pending_requests", service_.pending_ids()},
            {"deletions", token_.empty() ? "disabled (no --token-file)" : paused.empty() ? "enabled" : "paused: " + paused},
            {"input", {{"width", e->width()}, {"scale", scale_}, {"offset", offset_}}},
            {"classes", e->classes()}};
  }

  std::string metrics() const {
    const auto c = service_.counts();
    const auto e = service_.ensemble();
    std::string out;
    out += prometheus_scalar("sisa_deletions_pending", "gauge", "Deletion requests accepted and not yet applied.",
                             static_cast<double>(c.pending));
    out += prometheus_scalar("sisa_deletions_applied_total", "counter", "Deletion requests applied by this process.",
                             static_cast<double>(c.applied));
    out += prometheus_scalar("sisa_deletions_failed_total", "counter",
                             "Deletion requests that failed (deletions then pause).", static_cast<double>(c.failed));
    out += prometheus_scalar("sisa_last_applied_request", "gauge",
                             "The last deletion request the served models include.",
                             static_cast<double>(e->last_applied()));
    out += "# HELP sisa_shard_generation Generation of each served shard (bumped by every deletion that retrains it).\n";
    out += "# TYPE sisa_shard_generation gauge\n";
    for (const auto& s : e->shards()) {
      out += "sisa_shard_generation{shard=\"" + std::to_string(s.shard) + "\"} " + std::to_string(s.generation) + "\n";
    }
    return metrics_.render(out);
  }

  const ServeOptions& options_;
  DeletionService& service_;
  const std::string token_;
  double scale_ = 1.0, offset_ = 0.0;
  int64_t width_ = 0;
  // As many batches at once as cores: each batch runs on one thread.
  PredictBatcher batcher_{[this] { return service_.ensemble(); },
                          static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 256};
  HttpServer http_;
  Metrics metrics_;
};

}  // namespace

int serve(const ServeOptions& o) {
  if (o.run_dir.empty()) throw UsageError("--run-dir is required");
  if (o.http_threads < 1) throw UsageError("--http-threads must be >= 1");
  const std::string token = o.token_file.empty() ? "" : read_token(o.token_file);
  if (token.empty()) spdlog::info("no --token-file: POST /v1/forget is disabled");

  // SIGINT/SIGTERM only set a flag (libraries started threads before us, so
  // masking them cannot route the signal to one thread); a watcher thread
  // sees it and stops the HTTP server, which lets in-flight requests finish.
  g_signal = 0;
  // SIGPIPE is ignored: httplib 0.11 sends without MSG_NOSIGNAL, and a client
  // hanging up must cost a failed write, not the server.
  struct sigaction action {}, ignore {}, old_int {}, old_term {}, old_pipe {};
  action.sa_handler = [](int sig) { g_signal = sig; };
  sigemptyset(&action.sa_mask);
  ignore.sa_handler = SIG_IGN;
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
  auto& http = server.http();
  const int port = o.port == 0 ? http.bind_to_any_port(o.host) : (http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) {
    throw IOError("cannot listen on " + o.host + ":" + std::to_string(o.port) + " (in use, or not an address of this host)");
  }
  http.widen_backlog();
  service.start();
  // The socket listens from bind on: connections queue until the accept loop runs.
  spdlog::info("serving run '{}' on http://{}:{} ({} HTTP threads)", o.run_dir, o.host, port, o.http_threads);
  if (o.on_listening) o.on_listening(o.host, port);
  std::atomic<bool> done{false};
  std::thread signal_waiter([&] {
    while (!done) {
      // stop() is a no-op until the accept loop runs: a signal that came
      // during start-up waits for it.
      if (const int sig = g_signal; sig && http.is_running()) {
        spdlog::info("{}: finishing in-flight requests, then stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        http.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const bool ok = http.listen_after_bind();
  done = true;
  signal_waiter.join();
  service.stop();
  if (!ok) throw IOError("the HTTP server on " + o.host + ":" + std::to_string(port) + " stopped unexpectedly");
  spdlog::info("stopped");
  return 0;
}

}  // namespace sisa
