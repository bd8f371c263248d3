#include "serve/server.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include "config/model_spec.h"
#include "lm/lm_runtime.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

using json = nlohmann::json;

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

}  // namespace

Server::Server(const ServeOptions& o, DeletionService& service, const BearerToken& token)
    : options_(o), service_(service), token_(token) {
  const Config& c = service_.config();
  scale_ = c.data.scale;
  offset_ = c.data.offset;
  width_ = c.data.width();
  tokens_ = model_input(c) == InputKind::kTokens;
  max_tokens_ = c.data.max_tokens;
  language_model_ = model_spec(c.model).language_model;
  family_ = c.model.type;
  // Text runs tokenize in the server with the run's own tokenizer copy, as training did.
  if (tokens_ && !c.data.tokenizer.empty()) tokenizer_ = std::make_unique<Tokenizer>(c.data.tokenizer);
  facts_ = {token_.configured(), tokenizer_ != nullptr, model_json(c)};
  std::error_code ignored;
  for (const auto& p : {std::filesystem::absolute(o.run_dir, ignored).lexically_normal(),
                        std::filesystem::weakly_canonical(o.run_dir, ignored)}) {
    std::string dir = p.string();
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (dir.size() > 1) run_paths_.push_back(dir);
  }
}

void Server::handle(HttpRequest& req, const HttpTransport::Reply& reply) {
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

void Server::observe(const HttpRequest& req, int status, double seconds) {
  metrics_.observe(endpoint_of(req.path), status, seconds);
  spdlog::debug("{} {} -> {} ({:.3f} ms)", req.method, req.path, status, seconds * 1e3);
}

HttpResponse Server::route(const HttpRequest& req) {
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
    if (auto refused = token_.refuse(req, "GET /v1/forget/{id}")) return *refused;
    const json r = service_.request(std::stoull(m[1].str()));
    return r.is_null() ? error(404, "unknown_request", "no deletion request " + m[1].str()) : answer(200, r);
  }
  if (p == "/v1/status") {
    if (req.method != "GET") return wrong_method("GET");
    if (auto refused = token_.refuse(req, "GET /v1/status")) return *refused;
    return answer(200, status_json(service_, facts_));
  }
  if (p == "/v1/generate" || p == "/v1/score") return wrong_method("POST");
  if (p == "/healthz") {
    if (req.method != "GET") return wrong_method("GET");
    bool ok = false;
    const json body = health_json(service_, &ok);
    return answer(ok ? 200 : 503, body);
  }
  if (p == "/metrics") {
    if (req.method != "GET") return wrong_method("GET");
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics_text(service_, metrics_);
    return r;
  }
  return error(404, "not_found", "no endpoint " + req.method + " " + p);
}

void Server::language(HttpRequest& req, const HttpTransport::Reply& reply) {
  if (const std::string stale = service_.stale_reason(); !stale.empty()) {
    return reply(error(503, "models_out_of_date", stale));
  }
  auto snapshot = service_.ensemble();
  if (!snapshot->language_models()) {
    return reply(error(501, "unsupported_input",
                       "this run's model family '" + family_ + "' is not a language model: use /v1/predict"));
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

void Server::predict(HttpRequest& req, const HttpTransport::Reply& reply) {
  if (const std::string stale = service_.stale_reason(); !stale.empty()) {
    return reply(error(503, "models_out_of_date", stale));
  }
  if (language_model_) {
    return reply(error(501, "unsupported_input",
                       "this run's model family '" + family_ + "' is a language model: it predicts no classes"));
  }
  if (tokens_ && !tokenizer_) {
    // Token ids from an HDF5 file, with no tokenizer to turn texts into them.
    return reply(error(501, "unsupported_input",
                       "this run reads token ids without a tokenizer (data.tokenizer); "
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

void Server::release(std::string& body) {
  const bool large = body.size() >= kTrimBodyBytes;
  std::string().swap(body);
  if (large) malloc_trim(0);
}

void Server::parse_and_submit(const std::string& body, const HttpTransport::Reply& reply) {
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

HttpResponse Server::answer_predictions(const PredictInput& in, const PredictBatcher::Result& r) {
  // Finite inputs can still overflow inside the network (every pixel
  // 1e40): say which input, rather than answer null probabilities.
  const auto& mean = r.out.mean;
  for (int64_t i = 0; i < r.out.n; ++i) {
    for (int64_t k = 0; k < r.out.classes; ++k) {
      if (!std::isfinite(mean[static_cast<size_t>(i * r.out.classes + k)])) {
        return error(
            422, "not_finite_output",
            "input " + std::to_string(i) + " gives a non-finite output: its values overflow inside the network");
      }
    }
  }
  HttpResponse res;
  res.body = render_predict(in, r.out, *r.ensemble);
  return res;
}

HttpResponse Server::forget(const HttpRequest& req) {
  if (auto refused = token_.refuse(req, "POST /v1/forget (deletion over HTTP)")) return *refused;
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

}  // namespace sisa
