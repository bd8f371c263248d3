// The endpoints of `sisa serve` over the event-driven transport
// (http_transport.h). Handlers are thin: parsing and rendering live in
// api.cpp and views.cpp, state in DeletionService, the token in auth.h.
// CPU-heavy work runs on the batcher's and the work queue's threads, never
// on the event loop's.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "serve/api.h"
#include "serve/auth.h"
#include "serve/batcher.h"
#include "serve/deletion_service.h"
#include "serve/http_transport.h"
#include "serve/metrics.h"
#include "serve/views.h"
#include "serve/work_queue.h"
#include "sisa/serve.h"
#include "text/tokenizer.h"

namespace sisa {

class Server {
 public:
  Server(const ServeOptions& o, DeletionService& service, const BearerToken& token);

  // Every answer leaves through here: no absolute path of this machine (a
  // message naming a run file) reaches a client; run files are named
  // relative to the run.
  void handle(HttpRequest& req, const HttpTransport::Reply& reply);

  void observe(const HttpRequest& req, int status, double seconds);

 private:
  // Every endpoint but POST /v1/predict, answered at once.
  HttpResponse route(const HttpRequest& req);

  // Language-model runs: the student (or the teachers) of the current
  // snapshot, on a compute thread (tokenizing and decoding are the work).
  void language(HttpRequest& req, const HttpTransport::Reply& reply);

  void predict(HttpRequest& req, const HttpTransport::Reply& reply);

  // Frees a request body once it is parsed. After a large one, freed memory
  // goes back to the OS: sisa keeps freed heap for reuse (cli/main.cpp), and
  // a few hostile 8 MB texts would otherwise stay resident for good.
  static void release(std::string& body);

  // Parses a predict body and queues it to the batcher; answers parse errors.
  void parse_and_submit(const std::string& body, const HttpTransport::Reply& reply);

  static HttpResponse answer_predictions(const PredictInput& in, const PredictBatcher::Result& r);

  HttpResponse forget(const HttpRequest& req);

  // Predict bodies up to this size are parsed on the event-loop thread:
  // about 60 inputs of 784 numbers, under a millisecond to parse.
  static constexpr size_t kInlineBodyBytes = 256u << 10;
  static constexpr size_t kTrimBodyBytes = 1u << 20;

  const ServeOptions& options_;
  DeletionService& service_;
  const BearerToken& token_;
  std::vector<std::string> run_paths_;  // the run directory's absolute spellings, kept out of answers
  double scale_ = 1.0, offset_ = 0.0;
  int64_t width_ = 0, max_tokens_ = 0;
  bool tokens_ = false, language_model_ = false;
  std::string family_;
  std::unique_ptr<Tokenizer> tokenizer_;
  StatusFacts facts_;
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

}  // namespace sisa
