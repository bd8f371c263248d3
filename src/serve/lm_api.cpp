// The language-model endpoints of `sisa serve` (src/serve/api.h).
#include <set>

#include "lm/lm_runtime.h"
#include "serve/api.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

using json = nlohmann::json;

const json* field(const json& body, const char* key) {
  const auto it = body.find(key);
  return it == body.end() ? nullptr : &*it;
}

std::string text_field(const json& body, const char* key, bool required) {
  const json* v = field(body, key);
  if (!v) {
    if (required) throw ApiError(400, "missing_field", std::string("field \"") + key + "\" is required");
    return {};
  }
  if (!v->is_string()) throw ApiError(400, "bad_field", std::string("field \"") + key + "\" must be a string");
  return v->get<std::string>();
}

int64_t integer_field(const json& body, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_number_integer())
    throw ApiError(400, "bad_field", std::string("field \"") + key + "\" must be an integer");
  const bool negative = v->is_number_unsigned() ? false : v->get<int64_t>() < 0;
  if (negative ? lo >= 0 || v->get<int64_t>() < lo
               : (v->is_number_unsigned() ? v->get<uint64_t>() > static_cast<uint64_t>(hi) : v->get<int64_t>() > hi)) {
    throw ApiError(422, "bad_value",
                   std::string("field \"") + key + "\" must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v->get<int64_t>();
}

}  // namespace

json answer_language(const std::string& path, const std::string& body, const LmRuntime& lm) {
  const json in = parse_request_json(body);
  if (!in.is_object()) throw ApiError(400, "bad_request", "the body must be a JSON object");
  const bool generate = path == "/v1/generate";
  const std::set<std::string> allowed = generate
                                            ? std::set<std::string>{"prompt", "max_tokens", "top_k", "seed", "model"}
                                            : std::set<std::string>{"text", "model"};
  for (const auto& [key, value] : in.items()) {
    if (!allowed.count(key)) {
      throw ApiError(400, "unknown_field",
                     "unknown field \"" + key + "\" (expected " +
                         (generate ? "prompt, max_tokens, top_k, seed, model" : "text, model") + ")");
    }
  }
  const std::string model = text_field(in, "model", false);
  try {
    if (generate) {
      return lm.generate(text_field(in, "prompt", true), integer_field(in, "max_tokens", 20, 1, 65536),
                         integer_field(in, "top_k", 1, 0, 1000000),
                         static_cast<uint64_t>(integer_field(in, "seed", 0, 0, INT64_MAX)), model);
    }
    return lm.score(text_field(in, "text", true), model);
  } catch (const NoModelError& e) {
    throw ApiError(409, "no_model", e.what());
  } catch (const UsageError& e) {
    throw ApiError(422, "bad_value", e.what());
  } catch (const DataError& e) {
    throw ApiError(422, "bad_text", e.what());
  }
}

}  // namespace sisa
