// The JSON of `sisa serve`'s endpoints, apart from HTTP: request parsing with
// every check the server promises (shape, finite numbers, known fields) and
// response rendering. Errors carry the HTTP status they map to.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "run/ensemble.h"
#include "text/tokenizer.h"

namespace sisa {

// A client error: `status` (4xx), a short machine-readable `error` and a
// human `detail`. Rendered as {"error": ..., "detail": ...}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string error, const std::string& detail)
      : std::runtime_error(detail), status_(status), error_(std::move(error)) {}
  int status() const { return status_; }
  const std::string& error() const { return error_; }

 private:
  int status_;
  std::string error_;
};
std::string error_body(const std::string& error, const std::string& detail);
// A request body as JSON, nesting bounded and duplicate keys refused:
// ApiError 400 malformed_json, too_deep or duplicate_field.
nlohmann::json parse_request_json(const std::string& body);

struct PredictInput {
  int64_t n = 0;
  std::vector<float> inputs;  // n x width, transformed like the training data
  // Text runs: the texts as token rows (n x max_tokens, 0-padded) and lengths.
  std::vector<int32_t> tokens, lengths;
  int64_t truncated = 0;     // texts cut to data.max_tokens
  bool vote = false;         // aggregate: "mean" (default) or "vote"
  bool shard_votes = false;  // also answer each shard's label
};
// Parses {"inputs": [[...], ...], "aggregate": "mean"|"vote", "shard_votes": bool}.
// Each input has `width` raw values (as in the source data), transformed
// with the run's scale and offset. Streams the numbers (no DOM).
PredictInput parse_predict(const std::string& body, int64_t width, double scale, double offset);
// Text runs: {"texts": ["...", ...], "aggregate": ..., "shard_votes": ...},
// each text encoded as training encodes it (tokenizer, cut to max_tokens).
PredictInput parse_predict_texts(const std::string& body, const Tokenizer& tokenizer, int64_t max_tokens);
std::string render_predict(const PredictInput& in, const EnsembleOutput& out, const Ensemble& e);

struct ForgetInput {
  std::vector<int64_t> keys;  // sample ids, or group keys (data subjects)
  bool by_group = false;
};
// Parses {"ids": [int, ...]} or {"groups": [int, ...]} (exactly one, non-empty).
ForgetInput parse_forget(const std::string& body);

class LmRuntime;
// POST /v1/generate {"prompt", "max_tokens"?, "top_k"?, "seed"?, "model"?} and
// POST /v1/score {"text", "model"?} (`path` says which), answered by the
// snapshot's language models exactly as `sisa generate` / `sisa score` answer.
// ApiError: 400 for malformed JSON, unknown or mistyped fields; 422 for a bad
// value or text; 409 when every shard is empty.
nlohmann::json answer_language(const std::string& path, const std::string& body, const LmRuntime& lm);

}  // namespace sisa
