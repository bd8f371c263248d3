#include "sisa/id_list.h"

#include <cctype>
#include <limits>

#include "sisa/errors.h"
#include "util/fs.h"

namespace sisa {
namespace {

int64_t parse_id(const std::string& token, const std::string& where) {
  if (token.empty() || token.size() > 19) {
    throw UsageError(where + ": '" + token + "' is not an id (a non-negative 64-bit integer)");
  }
  uint64_t v = 0;
  for (char ch : token) {
    if (!std::isdigit(static_cast<unsigned char>(ch))) {
      throw UsageError(where + ": '" + token + "' is not an id (a non-negative 64-bit integer)");
    }
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw UsageError(where + ": id '" + token + "' is larger than 2^63-1");
  }
  return static_cast<int64_t>(v);
}

void split_into(const std::string& text, const std::string& where, bool commas_only, std::vector<int64_t>* out) {
  std::string token;
  bool pending_separator = false, after_comma = false;
  auto flush = [&] {
    if (!token.empty()) out->push_back(parse_id(token, where));
    token.clear();
  };
  for (char ch : text) {
    if (ch == ',') {
      if (token.empty() && !pending_separator && commas_only) {
        throw UsageError(where + ": empty entry in id list '" + text + "'");
      }
      flush();
      pending_separator = false;
      after_comma = true;
    } else if (std::isspace(static_cast<unsigned char>(ch))) {
      if (!token.empty()) {
        flush();
        pending_separator = commas_only;
      }
    } else {
      if (pending_separator) {
        throw UsageError(where + ": ids must be separated by commas in '" + text + "'");
      }
      token.push_back(ch);
      after_comma = false;
    }
  }
  if (after_comma && commas_only) throw UsageError(where + ": empty entry after the last comma in '" + text + "'");
  flush();
}

}  // namespace

std::vector<int64_t> parse_id_list(const std::string& text, const std::string& origin) {
  std::vector<int64_t> ids;
  split_into(text, origin, true, &ids);
  if (ids.empty()) throw UsageError(origin + ": no ids given");
  return ids;
}

std::string format_id_list(const std::vector<int64_t>& ids, size_t limit) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < limit; ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  if (ids.size() > limit) s += ", ... (" + std::to_string(ids.size()) + " in all)";
  return s;
}

std::vector<int64_t> read_id_file(const std::string& path) {
  // A file must be regular (a FIFO or /dev/zero would never end); "-" reads
  // standard input, a pipe included, up to the same bound.
  const InputFile spec{"id file", kMaxIdFileBytes, ExitCode::kUsage};
  std::vector<uint8_t> bytes;
  try {
    bytes = path == "-" ? read_stdin(spec) : read_input_file(path, spec);
  } catch (const IOError& e) {
    throw UsageError(std::string("cannot read id file: ") + e.what());
  }
  const std::string text(bytes.begin(), bytes.end());
  std::vector<int64_t> ids;
  size_t line_no = 0, start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    ++line_no;
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    split_into(line, path + ":" + std::to_string(line_no), false, &ids);
    start = end + 1;
  }
  if (ids.empty()) throw UsageError("id file '" + path + "' holds no ids");
  return ids;
}

}  // namespace sisa
