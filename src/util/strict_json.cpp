#include "util/strict_json.h"

#include <set>
#include <vector>

namespace sisa {
namespace {

using json = nlohmann::json;

class StrictDomParser : public json::json_sax_t {
 public:
  StrictDomParser(json* out, int max_depth) : dom_(*out, true), max_depth_(max_depth) {}

  bool null() override { return dom_.null(); }
  bool boolean(bool v) override { return dom_.boolean(v); }
  bool number_integer(number_integer_t v) override { return dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) override { return dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) override { return dom_.number_float(v, s); }
  bool string(string_t& v) override { return dom_.string(v); }
  bool binary(binary_t& v) override { return dom_.binary(v); }
  bool start_object(std::size_t n) override {
    enter();
    keys_.emplace_back();
    return dom_.start_object(n);
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) {
      throw StrictJsonError(StrictJsonError::Kind::kDuplicateKey, "field \"" + k + "\" appears twice in one object");
    }
    return dom_.key(k);
  }
  bool end_object() override {
    --depth_;
    keys_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t n) override {
    enter();
    keys_.emplace_back();  // unused: keeps one entry per open container
    return dom_.start_array(n);
  }
  bool end_array() override {
    --depth_;
    keys_.pop_back();
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    throw StrictJsonError(StrictJsonError::Kind::kMalformed,
                          "not valid JSON at byte " + std::to_string(position) + ": " + e.what());
  }

 private:
  void enter() {
    if (++depth_ > max_depth_) {
      throw StrictJsonError(StrictJsonError::Kind::kTooDeep,
                            "JSON nested deeper than " + std::to_string(max_depth_) + " levels");
    }
  }
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  const int max_depth_;
  int depth_ = 0;
  std::vector<std::set<std::string>> keys_;
};

}  // namespace

json parse_strict_json(std::string_view text, int max_depth) {
  json out;
  StrictDomParser parser(&out, max_depth);
  json::sax_parse(text.begin(), text.end(), &parser);
  return out;
}

}  // namespace sisa
