#include "serve/api.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <string_view>
#include <vector>

#include "util/strict_json.h"

namespace sisa {
namespace {

using json = nlohmann::json;

// SAX handler for predict bodies: parsing 784 numbers into a DOM first cost
// about as much as the five shards' forward passes.
class PredictParser : public json::json_sax_t {
 public:
  PredictParser(PredictInput* out, int64_t width, double scale, double offset)
      : out_(out), width_(width), scale_(scale), offset_(offset) {}

  bool null() override { return value("null"); }
  bool boolean(bool v) override {
    if (depth_ == 1 && key_ == "shard_votes") {
      out_->shard_votes = v;
      return true;
    }
    return value("a boolean");
  }
  bool number_integer(number_integer_t v) override { return number(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v); }
  bool string(string_t& v) override {
    if (depth_ == 1 && key_ == "aggregate") {
      if (v != "mean" && v != "vote")
        fail(422, "bad_aggregate", "aggregate must be \"mean\" or \"vote\", got \"" + v + "\"");
      out_->vote = v == "vote";
      return true;
    }
    return value("a string");
  }
  bool binary(binary_t&) override { return value("binary"); }
  bool start_object(std::size_t) override {
    if (depth_ != 0) return value("an object");
    ++depth_;
    return true;
  }
  bool key(string_t& k) override {
    if (k != "inputs" && k != "aggregate" && k != "shard_votes") {
      fail(400, "unknown_field", "unknown field \"" + k + "\" (expected inputs, aggregate, shard_votes)");
    }
    if (!seen_keys_.insert(k).second) fail(400, "duplicate_field", "field \"" + k + "\" appears twice");
    key_ = k;
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 1 && key_ == "inputs") {
      seen_inputs_ = true;
      ++depth_;
      return true;
    }
    if (depth_ == 2) {  // one input
      row_values_ = 0;
      ++depth_;
      return true;
    }
    return value("an array");
  }
  bool end_array() override {
    if (depth_ == 3) {
      if (row_values_ != width_) {
        fail(422, "bad_width",
             "input " + std::to_string(out_->n) + " has " + std::to_string(row_values_) +
                 " values; this run's inputs have " + std::to_string(width_));
      }
      ++out_->n;
    }
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    fail(400, "malformed_json", "body is not valid JSON at byte " + std::to_string(position) + ": " + e.what());
    return false;
  }
  bool seen_inputs() const { return seen_inputs_; }

 private:
  [[noreturn]] void fail(int status, const std::string& error, const std::string& detail) {
    throw ApiError(status, error, detail);
  }
  bool number(double v) {
    if (depth_ != 3) return value("a number");
    if (!std::isfinite(v)) {
      fail(422, "not_finite",
           "input " + std::to_string(out_->n) + " value " + std::to_string(row_values_) + " is not a finite number");
    }
    if (row_values_ >= width_) {
      fail(422, "bad_width",
           "input " + std::to_string(out_->n) + " has more than " + std::to_string(width_) + " values");
    }
    const auto x = static_cast<float>(v * scale_ + offset_);
    if (!std::isfinite(x)) {  // finite in JSON, but not once scaled into float
      fail(422, "not_finite",
           "input " + std::to_string(out_->n) + " value " + std::to_string(row_values_) + " is out of range");
    }
    out_->inputs.push_back(x);
    ++row_values_;
    return true;
  }
  bool value(const char* what) {
    std::string where = depth_ == 0   ? "the body"
                        : depth_ == 1 ? "field \"" + key_ + "\""
                        : depth_ == 2 ? "\"inputs\" (an array of inputs, each an array of numbers)"
                                      : "input " + std::to_string(out_->n);
    fail(400, "bad_request", std::string("unexpected ") + what + " in " + where);
  }

  PredictInput* out_;
  int64_t width_;
  double scale_, offset_;
  int depth_ = 0;
  std::string key_;
  int64_t row_values_ = 0;
  bool seen_inputs_ = false;
  std::set<std::string> seen_keys_;
};

}  // namespace

json parse_request_json(const std::string& body) {
  try {
    return parse_strict_json(body);
  } catch (const StrictJsonError& e) {
    switch (e.kind()) {
      case StrictJsonError::Kind::kTooDeep:
        throw ApiError(400, "too_deep", e.what());
      case StrictJsonError::Kind::kDuplicateKey:
        throw ApiError(400, "duplicate_field", e.what());
      default:
        throw ApiError(400, "malformed_json", std::string("body is ") + e.what());
    }
  }
}

std::string error_body(const std::string& error, const std::string& detail) {
  // `detail` may quote client bytes (a path, a JSON parse error) that are not
  // valid UTF-8: replace them rather than throw while answering.
  return json{{"error", error}, {"detail", detail}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

PredictInput parse_predict(const std::string& body, int64_t width, double scale, double offset) {
  PredictInput in;
  in.inputs.reserve(static_cast<size_t>(width));
  PredictParser parser(&in, width, scale, offset);
  json::sax_parse(body, &parser);
  if (!parser.seen_inputs()) throw ApiError(400, "bad_request", "missing field \"inputs\"");
  if (in.n == 0) throw ApiError(422, "empty", "\"inputs\" holds no input");
  return in;
}

PredictInput parse_predict_texts(const std::string& body, const Tokenizer& tokenizer, int64_t max_tokens) {
  const json j = parse_request_json(body);
  if (!j.is_object()) throw ApiError(400, "bad_request", "expected {\"texts\": [\"...\", ...]}");
  PredictInput in;
  for (const auto& [k, v] : j.items()) {
    if (k == "aggregate") {
      if (!v.is_string() || (v != "mean" && v != "vote")) {
        throw ApiError(422, "bad_aggregate", "aggregate must be \"mean\" or \"vote\"");
      }
      in.vote = v == "vote";
    } else if (k == "shard_votes") {
      if (!v.is_boolean()) throw ApiError(422, "bad_request", "shard_votes must be true or false");
      in.shard_votes = v.get<bool>();
    } else if (k != "texts") {
      throw ApiError(400, "unknown_field", "unknown field \"" + k + "\" (expected texts, aggregate, shard_votes)");
    }
  }
  if (!j.contains("texts")) {
    throw ApiError(400, "bad_request",
                   j.contains("inputs") ? "this run reads text: send {\"texts\": [\"...\", ...]}, not inputs"
                                        : "missing field \"texts\"");
  }
  const auto& texts = j["texts"];
  if (!texts.is_array()) throw ApiError(422, "bad_texts", "\"texts\" must be an array of strings");
  if (texts.empty()) throw ApiError(422, "empty", "\"texts\" holds no text");
  // Each text becomes max_tokens ids: bound what a short body can make the server allocate.
  constexpr size_t kMaxTokenCells = size_t{1} << 24;  // 64 MB of int32 ids
  if (texts.size() * static_cast<size_t>(max_tokens) > kMaxTokenCells) {
    throw ApiError(413, "too_many_texts",
                   std::to_string(texts.size()) + " texts of up to " + std::to_string(max_tokens) +
                       " tokens each; send at most " +
                       std::to_string(kMaxTokenCells / static_cast<size_t>(max_tokens)) + " per request");
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string at = "texts[" + std::to_string(i) + "]";
    if (!texts[i].is_string())
      throw ApiError(422, "bad_texts", at + " is a " + std::string(texts[i].type_name()) + ", not a string");
    const auto& text = texts[i].get_ref<const std::string&>();
    if (blank_text(text)) throw ApiError(422, "empty_text", at + " is empty");
    if (!valid_utf8(text)) throw ApiError(422, "bad_text", at + " is not valid UTF-8");
    if (append_token_row(tokenizer, text, max_tokens, &in.tokens, &in.lengths)) ++in.truncated;
  }
  in.n = static_cast<int64_t>(texts.size());
  return in;
}

namespace {

// A flat row-major n x width buffer as a JSON array of n arrays.
template <typename T>
json rows(const std::vector<T>& flat, int64_t n, int64_t width) {
  json out = json::array();
  for (int64_t i = 0; i < n; ++i)
    out.push_back(std::vector<T>(flat.begin() + i * width, flat.begin() + (i + 1) * width));
  return out;
}

}  // namespace

std::string render_predict(const PredictInput& in, const EnsembleOutput& out, const Ensemble& e) {
  json gens = json::array();
  for (const auto& s : e.shards()) gens.push_back(s.generation);
  json r = {{"labels", in.vote ? out.label_vote : out.label_mean},
            {"probabilities", rows(out.mean, out.n, out.classes)},
            {"aggregate", in.vote ? "vote" : "mean"},
            {"last_applied_request", e.last_applied()},
            {"generations", gens}};
  if (in.vote) r["votes"] = rows(out.votes, out.n, out.classes);
  if (!in.tokens.empty()) r["texts_truncated"] = in.truncated;
  if (in.shard_votes) r["shard_votes"] = rows(out.shard_labels, out.n, out.shards);
  return r.dump() + "\n";
}

ForgetInput parse_forget(const std::string& body) {
  const json j = parse_request_json(body);
  if (!j.is_object() || j.contains("ids") == j.contains("groups")) {
    throw ApiError(400, "bad_request", "expected {\"ids\": [id, ...]} or {\"groups\": [group, ...]}");
  }
  for (const auto& [k, v] : j.items()) {
    if (k != "ids" && k != "groups")
      throw ApiError(400, "unknown_field", "unknown field \"" + k + "\" (expected ids or groups)");
  }
  ForgetInput out;
  out.by_group = j.contains("groups");
  const char* field = out.by_group ? "groups" : "ids";
  const auto& keys = j[field];
  if (!keys.is_array() || keys.empty()) {
    throw ApiError(422, "empty", std::string("\"") + field + "\" must be a non-empty array of integers");
  }
  for (const auto& v : keys) {
    if (!v.is_number_integer()) {
      // Never echo the value: it is the client's, of any size.
      throw ApiError(422, "bad_id",
                     std::string("\"") + field + "\" holds " +
                         (v.is_number() ? std::string("a non-integer number") : std::string("a ") + v.type_name()) +
                         ", not an integer");
    }
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw ApiError(422, "bad_id", std::to_string(v.get<uint64_t>()) + " is out of range");
    }
    out.keys.push_back(v.get<int64_t>());
  }
  return out;
}

}  // namespace sisa
