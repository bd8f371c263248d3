// The endpoints of `sisa serve` over the event-driven transport
// (http_transport.h). Handlers are thin: parsing and rendering live in
// api.cpp, state in DeletionService.
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <regex>
#include <thread>

#include "util/fs.h"
#include "config/model_spec.h"
#include "lm/lm_runtime.h"
#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/deletion_service.h"
#include "serve/http_transport.h"
#include "serve/metrics.h"
#include "serve/work_queue.h"
#include "util/sha256.h"
#include "sisa/errors.h"
#include "sisa/serve.h"

namespace sisa {
namespace {

using json = nlohmann::json;

std::atomic<int> g_signal{0};  // lock-free, so safe to set from a signal handler
static_assert(std::atomic<int>::is_always_lock_free);

// The bearer token: one line of at least 16 visible ASCII characters
// (whitespace around it is dropped). Anything else (a second line, spaces inside,
// binary bytes) is refused: no client could ever send it in a header. The
// token itself is never echoed.
std::string read_token(const std::string& path) {
  const auto bytes = read_input_file(path, {"--token-file", kMaxTokenFileBytes, ExitCode::kUsage});
  std::string token(bytes.begin(), bytes.end());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
  for (size_t i = 0; i < token.size(); ++i) {
    const auto ch = static_cast<unsigned char>(token[i]);
    if (ch < 0x21 || ch > 0x7e) {
      throw UsageError("--token-file '" + path + "': byte " + std::to_string(i) + " is " +
                       (ch == '\n' || ch == '\r' ? std::string("a line break inside the token")
                                                  : std::string("not a visible ASCII character")) +
                       "; the file must hold one token of visible ASCII characters on one line");
    }
  }
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

// The credentials of "Authorization: Bearer <token>"; the scheme is
// case-insensitive (RFC 7235). Empty for any other scheme.
std::string bearer_token(const std::string& header) {
  const size_t start = header.find_first_not_of(' ');
  const size_t space = start == std::string::npos ? start : header.find(' ', start);
  if (space == std::string::npos) return {};
  std::string scheme = header.substr(start, space - start);
  for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const size_t t = header.find_first_not_of(' ', space);
  if (scheme != "bearer" || t == std::string::npos) return {};
  return header.substr(t, header.find_last_not_of(' ') + 1 - t);
}

Metrics::Endpoint endpoint_of(const std::string& p) {
  if (p == "/v1/predict") return Metrics::kPredict;
  if (p == "/v1/forget") return Metrics::kForget;
  if (p.rfind("/v1/forget/", 0) == 0) return Metrics::kForgetStatus;
  if (p == "/v1/status") return Metrics::kStatus;
  if (p == "/healthz") return Metrics::kHealth;
  if (p == "/metrics") return Metrics::kMetrics;
  if (p == "/v1/generate") return Metrics::kGenerate;
  if (p == "/v1/score") return Metrics::kScore;
  return Metrics::kOther;
}

HttpResponse answer(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump() + "\n";
  return r;
}
HttpResponse error(int status, const std::string& error, const std::string& detail) {
  HttpResponse r;
  r.status = status;
  r.body = error_body(error, detail);
  return r;
}

class Server {
 public:
  Server(const ServeOptions& o, DeletionService& service, std::string token)
      : options_(o), service_(service), token_(std::move(token)) {
    const Config& c = service_.config();
    scale_ = c.data.scale;
    offset_ = c.data.offset;
    width_ = c.data.width();
    tokens_ = model_spec(c.model).input == InputKind::kTokens;
    max_tokens_ = c.data.max_tokens;
    language_model_ = model_spec(c.model).language_model;
    family_ = c.model.type;
    // Text runs tokenize in the server with the run's own tokenizer copy, as training did.
    if (tokens_ && !c.data.tokenizer.empty()) tokenizer_ = std::make_unique<Tokenizer>(c.data.tokenizer);
    model_ = model_json(c);
    std::error_code ignored;
    for (const auto& p : {std::filesystem::absolute(o.run_dir, ignored).lexically_normal(),
                          std::filesystem::weakly_canonical(o.run_dir, ignored)}) {
      std::string dir = p.string();
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      if (dir.size() > 1) run_paths_.push_back(dir);
    }
  }

  // Every answer leaves through here: no absolute path of this machine (a
  // message naming a run file) reaches a client; run files are named
  // relative to the run.
  void handle(HttpRequest& req, const HttpTransport::Reply& reply) {
    const HttpTransport::Reply private_reply = [this, reply](HttpResponse r) {
      for (const auto& dir : run_paths_) {
        for (size_t at = r.body.find(dir); at != std::string::npos; at = r.body.find(dir, at)) {
          const bool inside = at + dir.size() < r.body.size() && r.body[at + dir.size()] == '/';
          r.body.replace(at, dir.size() + (inside ? 1 : 0), inside ? "" : "<run>");
        }
      }
      reply(std::move(r));
    };
    if (req.method == "POST" && req.path == "/v1/predict") return predict(req, private_reply);
    if (req.method == "POST" && (req.path == "/v1/generate" || req.path == "/v1/score")) {
      return language(req, private_reply);
    }
    private_reply(route(req));
  }

  void observe(const HttpRequest& req, int status, double seconds) {
    metrics_.observe(endpoint_of(req.path), status, seconds);
    spdlog::debug("{} {} -> {} ({:.3f} ms)", req.method, req.path, status, seconds * 1e3);
  }

 private:
  // Every endpoint but POST /v1/predict, answered at once.
  HttpResponse route(const HttpRequest& req) {
    const std::string& p = req.path;
    const auto wrong_method = [&](const char* allowed) {
      HttpResponse r = error(405, "method_not_allowed", req.method + " " + p + " (use " + allowed + ")");
      r.headers.emplace_back("Allow", allowed);
      return r;
    };
    static const std::regex forget_status(R"(/v1/forget/(\d{1,18}))");
    std::smatch m;
    if (p == "/v1/predict") return wrong_method("POST");
    if (p == "/v1/forget") return req.method == "POST" ? forget(req) : wrong_method("POST");
    if (std::regex_match(p, m, forget_status)) {
      if (req.method != "GET") return wrong_method("GET");
      // A receipt names who asked to be forgotten: only for the token's holder.
      if (auto refused = unauthorized(req, "GET /v1/forget/{id}")) return *refused;
      const json r = service_.request(std::stoull(m[1].str()));
      return r.is_null() ? error(404, "unknown_request", "no deletion request " + m[1].str()) : answer(200, r);
    }
    if (p == "/v1/status") {
      if (req.method != "GET") return wrong_method("GET");
      if (auto refused = unauthorized(req, "GET /v1/status")) return *refused;
      return answer(200, status());
    }
    if (p == "/v1/generate" || p == "/v1/score") return wrong_method("POST");
    if (p == "/healthz") return req.method == "GET" ? health() : wrong_method("GET");
    if (p == "/metrics") {
      if (req.method != "GET") return wrong_method("GET");
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = metrics();
      return r;
    }
    return error(404, "not_found", "no endpoint " + req.method + " " + p);
  }

  // The bearer token's check: nothing if it holds, else the answer (403 with
  // no --token-file: nothing is served that needs it; 401 otherwise).
  std::optional<HttpResponse> unauthorized(const HttpRequest& req, const std::string& what) const {
    if (token_.empty()) {
      return error(403, "forbidden", what + " is disabled: start sisa serve with --token-file");
    }
    if (same_secret(bearer_token(req.authorization), token_)) return std::nullopt;
    HttpResponse r = error(401, "unauthorized", what + " needs 'Authorization: Bearer <token>'");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sisa\"");
    return r;
  }

  // Language-model runs: the student (or the teachers) of the current
  // snapshot, on a compute thread (tokenizing and decoding are the work).
  void language(HttpRequest& req, const HttpTransport::Reply& reply) {
    if (const std::string stale = service_.stale_reason(); !stale.empty()) {
      return reply(error(503, "models_out_of_date", stale));
    }
    auto snapshot = service_.ensemble();
    if (!snapshot->language_models()) {
      return reply(error(501, "unsupported_input", "this run's model family '" + family_ +
                                                        "' is not a language model: use /v1/predict"));
    }
    work_.post([snapshot = std::move(snapshot), path = req.path, body = std::move(req.body), reply]() mutable {
      try {
        reply(answer(200, answer_language(path, body, *snapshot->language_models())));
      } catch (const ApiError& e) {
        reply(error(e.status(), e.error(), e.what()));
      } catch (const std::exception& e) {
        spdlog::error("POST {}: {}", path, e.what());
        reply(error(500, "internal", e.what()));
      }
      release(body);
    });
  }

  void predict(HttpRequest& req, const HttpTransport::Reply& reply) {
    if (const std::string stale = service_.stale_reason(); !stale.empty()) {
      return reply(error(503, "models_out_of_date", stale));
    }
    if (language_model_) {
      return reply(error(501, "unsupported_input", "this run's model family '" + family_ +
                                                       "' is a language model: it predicts no classes"));
    }
    if (tokens_ && !tokenizer_) {
      // Token ids from an HDF5 file, with no tokenizer to turn texts into them.
      return reply(error(501, "unsupported_input", "this run reads token ids without a tokenizer (data.tokenizer); "
                                                   "/v1/predict takes texts or feature rows (use sisa predict)"));
    }
    // A small body of numbers is parsed here (a lone client is spared two
    // thread hops); texts, and bodies that take long to parse, go to a
    // compute thread.
    if (!tokens_ && req.body.size() <= kInlineBodyBytes) return parse_and_submit(req.body, reply);
    work_.post([this, body = std::move(req.body), reply]() mutable {
      parse_and_submit(body, reply);
      release(body);
    });
  }

  // Frees a request body once it is parsed. After a large one, freed memory
  // goes back to the OS: sisa keeps freed heap for reuse (cli/main.cpp), and
  // a few hostile 8 MB texts would otherwise stay resident for good.
  static void release(std::string& body) {
    const bool large = body.size() >= kTrimBodyBytes;
    std::string().swap(body);
    if (large) malloc_trim(0);
  }

  // Parses a predict body and queues it to the batcher; answers parse errors.
  void parse_and_submit(const std::string& body, const HttpTransport::Reply& reply) {
    std::shared_ptr<const PredictInput> in;
    try {
      in = std::make_shared<const PredictInput>(tokens_ ? parse_predict_texts(body, *tokenizer_, max_tokens_)
                                                        : parse_predict(body, width_, scale_, offset_));
    } catch (const ApiError& e) {
      return reply(error(e.status(), e.error(), e.what()));
    } catch (const DataError& e) {
      return reply(error(422, "bad_text", e.what()));
    } catch (const std::exception& e) {
      spdlog::error("POST /v1/predict: {}", e.what());
      return reply(error(500, "internal", e.what()));
    }
    // One ensemble snapshot per batch, so never a mix of generations.
    const auto answer = [this, in, reply](PredictBatcher::Result r, std::exception_ptr failed) {
      try {
        if (failed) std::rethrow_exception(failed);
        metrics_.add_predictions(in->n);
        reply(answer_predictions(*in, r));
      } catch (const NoModelError& e) {
        reply(error(409, "no_model", e.what()));
      } catch (const std::exception& e) {
        spdlog::error("POST /v1/predict: {}", e.what());
        reply(error(500, "internal", e.what()));
      }
    };
    batcher_.submit(in, answer);
  }

  static HttpResponse answer_predictions(const PredictInput& in, const PredictBatcher::Result& r) {
    // Finite inputs can still overflow inside the network (every pixel
    // 1e40): say which input, rather than answer null probabilities.
    const auto& mean = r.out.mean;
    for (int64_t i = 0; i < r.out.n; ++i) {
      for (int64_t k = 0; k < r.out.classes; ++k) {
        if (!std::isfinite(mean[static_cast<size_t>(i * r.out.classes + k)])) {
          return error(422, "not_finite_output",
                       "input " + std::to_string(i) +
                           " gives a non-finite output: its values overflow inside the network");
        }
      }
    }
    HttpResponse res;
    res.body = render_predict(in, r.out, *r.ensemble);
    return res;
  }

  HttpResponse forget(const HttpRequest& req) {
    if (auto refused = unauthorized(req, "POST /v1/forget (deletion over HTTP)")) return *refused;
    try {
      const ForgetInput in = parse_forget(req.body);
      try {
        const DeletionService::Submitted s = service_.submit(in.keys, in.by_group);
        if (s.seq == 0) {
          // Every key was deleted before: nothing to log, nothing to retrain.
          return answer(200, json{{"id", nullptr}, {"state", "noop"}, {"already_deleted", s.already_deleted}});
        }
        const std::string url = "/v1/forget/" + std::to_string(s.seq);
        HttpResponse r = answer(202, json{{"id", s.seq}, {"state", "pending"}, {"status_url", url}});
        r.headers.emplace_back("Location", url);
        return r;
      } catch (const DataError& e) {
        return error(422, in.by_group ? "unknown_groups" : "unknown_ids", e.what());
      } catch (const UsageError& e) {
        return error(422, "no_groups", e.what());
      }
    } catch (const ApiError& e) {
      return error(e.status(), e.error(), e.what());
    } catch (const UnavailableError& e) {
      return error(503, "unavailable", e.what());
    }
  }

  HttpResponse health() const {
    const std::string paused = service_.paused_reason();
    const bool stale = !service_.stale_reason().empty();
    return answer(stale ? 503 : 200, json{{"status", stale ? "models_out_of_date" : "ok"},
                                          {"deletions", paused.empty() ? "ok" : "paused"},
                                          {"models", service_.ensemble()->voting_shards() > 0 ? "ok" : "none"}});
  }

  json status() const {
    const auto e = service_.ensemble();
    json shards = json::array();
    for (const auto& s : e->shards()) {
      shards.push_back({{"shard", s.shard}, {"generation", s.generation}, {"n_samples", s.n_samples},
                        {"fingerprint", s.fingerprint}, {"state_digest", s.state_digest}});
    }
    const std::string paused = service_.paused_reason();
    return {{"shard_status", shards},
            {"last_applied_request", e->last_applied()},
            {"pending_requests", service_.pending_ids()},
            {"deletions", token_.empty() ? "disabled (no --token-file)" : paused.empty() ? "enabled" : "paused: " + paused},
            {"damaged_receipts", service_.damaged_receipts()},
            {"input", tokens_ ? json{{"kind", tokenizer_ ? "text" : "token ids"}, {"max_tokens", max_tokens_}}
                              : json{{"kind", "features"}, {"width", e->width()}, {"scale", scale_}, {"offset", offset_}}},
            {"model", model_},
            {"student", e->language_models() && e->language_models()->student_generation() >= 0
                            ? json{{"generation", e->language_models()->student_generation()},
                                   {"guarantee", LmRuntime::guarantee("student")},
                                   {"audit", "sisa audit --run-dir <run> --secrets <canaries.csv>"}}
                            : json()},
            {"classes", e->classes()}};
  }

  // The family and what it is built on. Every shard of every family is exact
  // under forget; what a pretrained backbone learned is never unlearned.
  static json model_json(const Config& c) {
    json m = {{"family", c.model.type}, {"exactness", "exact: every shard equals a retrain without the deleted data"}};
    if (c.loo.student) {
      m["exactness"] = "teachers (the shards): exact; the student: approximate (leave-one-out), see \"student\"";
    }
    for (const auto& o : model_spec(c.model).options) {
      if (!o.artifact) continue;
      const auto& path = c.model.get<std::string>(o.key);
      if (path.empty()) continue;
      m[o.key] = {{"path", path}, {"sha256", sha256_file(path)},
                  {"note", "data inside a pretrained " + o.key + " is outside the deletion guarantee"}};
    }
    return m;
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

  // Predict bodies up to this size are parsed on the event-loop thread:
  // about 60 inputs of 784 numbers, under a millisecond to parse.
  static constexpr size_t kInlineBodyBytes = 256u << 10;
  static constexpr size_t kTrimBodyBytes = 1u << 20;

  const ServeOptions& options_;
  DeletionService& service_;
  const std::string token_;
  std::vector<std::string> run_paths_;  // the run directory's absolute spellings, kept out of answers
  double scale_ = 1.0, offset_ = 0.0;
  int64_t width_ = 0, max_tokens_ = 0;
  bool tokens_ = false, language_model_ = false;
  std::string family_;
  std::unique_ptr<Tokenizer> tokenizer_;
  json model_;
  Metrics metrics_;  // before the batcher: its answers count predictions
  // Compute threads, one per core; the first takes any work, the others only
  // many rows at once. Single inputs thus gather into batches (one stream of
  // the weights for many inputs) while the other core reads and parses
  // requests: on 2 cores ~60% more single-sample requests at 8 connections
  // than one thread per core taking everything. Large requests use every
  // core, and the event-loop threads never compute them.
  PredictBatcher batcher_{[this] { return service_.ensemble(); },
                          static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 256,
                          options_.serving_nice};
  // Parsing, tokenizing and language-model answers (work_queue.h); last,
  // so it is destroyed first and its jobs finish while the batcher lives.
  WorkQueue work_{static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), options_.serving_nice};
};

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
  const std::string token = o.token_file.empty() ? "" : read_token(o.token_file);
  if (token.empty()) spdlog::info("no --token-file: POST /v1/forget is disabled");

  // SIGINT/SIGTERM only set a flag (libraries started threads before us, so
  // masking them cannot route the signal to one thread); a watcher thread
  // sees it and stops the transport, which lets in-flight requests finish.
  g_signal = 0;
  struct sigaction action {}, ignore {}, old_int {}, old_term {}, old_pipe {};
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
