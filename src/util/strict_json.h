// JSON parsed as the HTTP API and the JSON Lines reader need it: nesting
// bounded before it is built (nlohmann's dump() and comparisons recurse, so
// 100,000 nested arrays would overflow the stack) and an object that names a
// key twice refused (which value counts would be a guess).
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace sisa {

class StrictJsonError : public std::runtime_error {
 public:
  enum class Kind { kMalformed, kTooDeep, kDuplicateKey };
  StrictJsonError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

constexpr int kMaxJsonDepth = 32;

// A DOM like nlohmann::json::parse; StrictJsonError says what is wrong and
// where ("not valid JSON at byte N: ...", "nested deeper than 32 levels",
// "field \"id\" appears twice in one object").
nlohmann::json parse_strict_json(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace sisa
