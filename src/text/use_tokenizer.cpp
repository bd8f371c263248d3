#include "text/use_tokenizer.h"

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "sisa/errors.h"
#include "util/fs.h"

namespace sisa {
namespace {

constexpr char32_t kSeparator = U'\u2581';

std::u32string code_points(std::string_view utf8, const char* what) {
  std::u32string out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(utf8.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(utf8.size());
  while (left > 0) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n < 0) throw DataError(std::string(what) + " is not valid UTF-8");
    out.push_back(static_cast<char32_t>(c));
    p += n, left -= n;
  }
  return out;
}

// String.prototype.normalize("NFKC").
std::string nfkc(std::string_view text) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (n < 0) throw DataError(std::string("text is not valid UTF-8: ") + utf8proc_errmsg(n));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

}  // namespace

UseTokenizer::UseTokenizer(const std::string& path) {
  const auto bytes = read_input_file(path, {"USE-Lite vocabulary", 64ull << 20, ExitCode::kData});
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw DataError("'" + path + "' is not JSON: " + e.what());
  }
  if (!vocab.is_array() || static_cast<int>(vocab.size()) <= kReserved) {
    throw DataError("'" + path + "' is not a vocabulary ([[piece, score], ...] past the reserved ids)");
  }
  for (size_t id = 0; id < vocab.size(); ++id) {
    const auto& entry = vocab[id];
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() ||
        !(entry[1].is_number() || entry[1].is_null())) {
      throw DataError("'" + path + "': entry " + std::to_string(id) + " is not [piece, score]");
    }
    const std::string where = "'" + path + "': piece " + std::to_string(id);
    pieces_.push_back(code_points(entry[0].get<std::string>(), where.c_str()));
    if (static_cast<int>(id) < kReserved || pieces_.back().empty()) continue;
    // The package's file has null for the scores of five pieces with a ':'
    // (":", "://", "▁:", "▁:)", "▁:("); JavaScript adds null as 0, and so do we.
    const double score = entry[1].is_null() ? 0.0 : entry[1].get<double>();
    lookup_[pieces_.back()] = Piece{score, static_cast<int32_t>(id)};
    longest_ = std::max(longest_, pieces_.back().size());
    longest_bytes_ = std::max(longest_bytes_, entry[0].get<std::string>().size());
  }
}

std::vector<int32_t> UseTokenizer::encode(std::string_view text) const {
  std::u32string symbols = code_points(nfkc(text), "text");
  if (symbols.empty()) return {};
  for (auto& c : symbols) {
    if (c == U' ') c = kSeparator;
  }
  symbols.insert(symbols.begin(), kSeparator);
  const size_t n = symbols.size();
  // The lattice: per end position, per start position (ascending, as a JS
  // object's integer keys iterate), the pieces in the order the trie finds
  // them (shortest first). A position where no piece starts gets the
  // unknown id for its one character, score 0.
  struct Arc {
    size_t start, length;
    double score;
    int32_t id;
  };
  std::vector<std::vector<Arc>> ending(n + 1);
  std::u32string key;
  for (size_t i = 0; i < n; ++i) {
    bool any = false;
    key.clear();
    for (size_t len = 1; len <= longest_ && i + len <= n; ++len) {
      key.push_back(symbols[i + len - 1]);
      const auto it = lookup_.find(key);
      if (it != lookup_.end()) ending[i + len].push_back({i, len, it->second.score, it->second.id}), any = true;
    }
    if (!any) ending[i + 1].push_back({i, 1, 0.0, 0});
  }
  for (auto& arcs : ending) {
    std::stable_sort(arcs.begin(), arcs.end(), [](const Arc& a, const Arc& b) { return a.start < b.start; });
  }
  std::vector<double> best(n + 1, 0.0);
  std::vector<int32_t> word(n + 1, 0);
  for (size_t end = 0; end <= n; ++end) {
    for (const Arc& a : ending[end]) {
      const double score = a.score + best[end - a.length];
      if (best[end] == 0.0 || score >= best[end]) best[end] = score, word[end] = a.id;  // the package's rule
    }
  }
  // Back from the end by each chosen piece's length; runs of unknowns merge.
  std::vector<int32_t> reversed;
  bool previous_unknown = false;
  for (size_t at = n; at > 0;) {
    const int32_t id = word[at];
    if (!(previous_unknown && id == 0)) reversed.push_back(id);
    previous_unknown = id == 0;
    const size_t step = pieces_[static_cast<size_t>(id)].size();
    at = step >= at ? 0 : at - step;
  }
  return std::vector<int32_t>(reversed.rbegin(), reversed.rend());
}

int UseTokenizer::piece_id(const std::string& piece) const {
  const auto it = lookup_.find(code_points(piece, "piece"));
  return it == lookup_.end() ? -1 : it->second.id;
}

std::string UseTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw DataError("token id " + std::to_string(id) + " is outside the vocabulary");
    for (const char32_t c : pieces_[static_cast<size_t>(id)]) {
      utf8proc_uint8_t buf[4];
      const auto n = utf8proc_encode_char(c == kSeparator ? U' ' : static_cast<utf8proc_int32_t>(c), buf);
      out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    }
  }
  return out.size() > 0 && out[0] == ' ' ? out.substr(1) : out;
}

}  // namespace sisa
