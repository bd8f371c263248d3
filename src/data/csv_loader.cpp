// The CSV reader (RFC 4180 records; features, or a text column tokenized
// at ingest) and data.weights_file, a CSV of deletion weights. Each names
// the file, line and column at fault; load_source checks the rest.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <unordered_map>
#include <unordered_set>

#include "data/data_loaders.h"
#include "sisa/errors.h"
#include "text/tokenizer.h"
#include "util/fs.h"

namespace sisa {

static double parse_number(const std::string& cell, const std::string& where) {
  if (cell.empty()) throw DataError(where + ": empty value");
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(cell.c_str(), &end);
  if (*end != '\0' || errno == ERANGE) throw DataError(where + ": '" + cell + "' is not a number");
  return v;
}

static int64_t parse_integer(const std::string& cell, const std::string& where) {
  if (cell.empty()) throw DataError(where + ": empty value");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(cell.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE) {
    throw DataError(where + ": '" + cell + "' is not a 64-bit integer");
  }
  return v;
}

// One CSV record (RFC 4180): a quoted field may hold commas, doubled quotes
// and line breaks; unquoted fields lose surrounding spaces. False at the end
// of the input. `line_no` counts the physical lines read.
static bool read_csv_record(std::istream& in, const std::string& path, int64_t* line_no,
                            std::vector<std::string>* cells) {
  std::string line;
  if (!std::getline(in, line)) return false;
  const int64_t first_line = ++*line_no;
  cells->clear();
  std::string cell;
  bool quoted = false, was_quoted = false;
  const auto finish = [&] {
    if (!was_quoted) {
      const size_t b = cell.find_first_not_of(" \r"), e = cell.find_last_not_of(" \r");
      cell = b == std::string::npos ? std::string() : cell.substr(b, e - b + 1);
    }
    cells->push_back(cell);
    cell.clear();
    was_quoted = false;
  };
  for (size_t i = 0;;) {
    if (i == line.size()) {
      if (!quoted) break;
      if (!std::getline(in, line)) {
        throw DataError(path + ":" + std::to_string(first_line) + ": a quoted field is never closed");
      }
      ++*line_no;
      cell += '\n';
      i = 0;
      continue;
    }
    const char ch = line[i++];
    if (quoted) {
      if (ch != '"') {
        cell += ch;
      } else if (i < line.size() && line[i] == '"') {
        cell += '"', ++i;
      } else {
        quoted = false;
      }
    } else if (ch == '"' && cell.find_first_not_of(' ') == std::string::npos) {
      quoted = was_quoted = true;
      cell.clear();
    } else if (ch == ',') {
      finish();
    } else if (!(was_quoted && (ch == ' ' || ch == '\r'))) {
      cell += ch;
    }
  }
  finish();
  return true;
}

// Calls `row(cells, where)` for every non-blank record after the header,
// each with exactly `fields` cells; `where` is "path:line" for error
// messages, the line where the record starts.
template <typename Row>
static void for_each_csv_row(std::istream& in, const std::string& path, size_t fields, int64_t line_no,
                             const Row& row) {
  std::vector<std::string> cells;
  for (int64_t start = line_no + 1; read_csv_record(in, path, &line_no, &cells); start = line_no + 1) {
    if (cells.size() == 1 && cells[0].empty()) continue;
    const std::string where = path + ":" + std::to_string(start);
    if (cells.size() != fields) {
      throw DataError(where + ": " + std::to_string(cells.size()) + " fields, the header has " + std::to_string(fields));
    }
    row(cells, where);
  }
}

// The columns that are not inputs, and the parse of one row's id, group,
// label and weight from them.
struct KeyColumns {
  int label = -1, id = -1, group = -1, weight = -1;

  bool is_key(int col) const { return col == label || col == id || col == group || col == weight; }
  void read(const std::vector<std::string>& cells, const DataConfig& c, const std::string& where, Dataset& d) const {
    d.ids.push_back(id >= 0 ? parse_integer(cells[id], where + " column '" + c.id_column + "'")
                            : static_cast<int64_t>(d.labels.size()));
    if (group >= 0) d.groups.push_back(parse_integer(cells[group], where + " column '" + c.group_column + "'"));
    d.labels.push_back(label < 0 ? 0 : parse_integer(cells[label], where + " column '" + c.label_column + "'"));
    if (weight >= 0) {
      d.weights.push_back(static_cast<float>(parse_number(cells[weight], where + " column '" + c.weight_column + "'")));
    }
  }
};

// Text rows: the text column tokenized with data.tokenizer, truncated to
// data.max_tokens (counted), 0-padded. Empty or invalid text names its row.
static void read_text_rows(const DataConfig& c, const std::string& path, std::istream& in,
                           const std::vector<std::string>& header, int64_t line_no, const KeyColumns& keys,
                           int text_col, Dataset& d) {
  for (int i = 0; i < static_cast<int>(header.size()); ++i) {
    if (i != text_col && !keys.is_key(i)) {
      throw DataError("'" + path + "': column '" + header[i] + "' is neither the text, label, id, group nor weight column");
    }
  }
  const Tokenizer tokenizer(c.tokenizer);
  d.input = InputKind::kTokens;
  d.width = c.max_tokens;
  for_each_csv_row(in, path, header.size(), line_no, [&](const std::vector<std::string>& cells, const std::string& where) {
    keys.read(cells, c, where, d);
    const std::string& text = cells[text_col];
    const std::string row = where + ": id " + std::to_string(d.ids.back());
    if (blank_text(text)) throw DataError(row + " has empty text");
    if (!valid_utf8(text)) throw DataError(row + ": text is not valid UTF-8");
    if (append_token_row(tokenizer, text, c.max_tokens, &d.tokens, &d.lengths)) ++d.truncated;
  });
}

Dataset load_csv(const DataConfig& c, const std::string& path, bool train) {
  check_data_file(path);
  std::ifstream in(path);
  if (!in) throw DataError("cannot open data file '" + path + "'");
  std::vector<std::string> header;
  int64_t line_no = 0;
  if (!read_csv_record(in, path, &line_no, &header)) throw DataError("'" + path + "': empty file, expected a header");
  auto column = [&](const std::string& name) -> int {
    if (name.empty()) return -1;
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw DataError("'" + path + "': no column named '" + name + "'");
    return static_cast<int>(it - header.begin());
  };
  KeyColumns keys;
  keys.label = c.unlabeled ? -1 : column(c.label_column);
  keys.id = column(c.id_column);
  keys.group = column(c.group_column);
  const bool has_weight = std::find(header.begin(), header.end(), c.weight_column) != header.end();
  keys.weight = train || has_weight ? column(c.weight_column) : -1;
  Dataset d;
  if (!c.text_column.empty()) {
    read_text_rows(c, path, in, header, line_no, keys, column(c.text_column), d);
    return d;
  }
  std::vector<int> feature_cols;
  for (int i = 0; i < static_cast<int>(header.size()); ++i) {
    if (!keys.is_key(i)) feature_cols.push_back(i);
  }
  d.width = static_cast<int64_t>(feature_cols.size());
  if (d.width != c.width()) {
    throw DataError("'" + path + "': " + std::to_string(d.width) +
                    " feature columns but data.input_shape says " +
                    std::to_string(c.width()));
  }
  for_each_csv_row(in, path, header.size(), line_no, [&](const std::vector<std::string>& cells, const std::string& where) {
    keys.read(cells, c, where, d);
    for (int f : feature_cols) {
      const double v = parse_number(cells[f], where + " column '" + header[f] + "'");
      d.inputs.push_back(static_cast<float>(v * c.scale + c.offset));
    }
  });
  return d;
}

void load_weights_file(const DataConfig& c, Dataset& d) {
  const std::string& path = c.weights_file;
  check_input_file(path, {"data.weights_file", kMaxDataFileBytes, ExitCode::kData});
  std::ifstream in(path);
  if (!in) throw DataError("data.weights_file: cannot read '" + path + "'");
  std::vector<std::string> header;
  int64_t line_no = 0;
  read_csv_record(in, path, &line_no, &header);
  const std::string key_name = d.has_groups() ? "group" : "id";
  if (header.size() != 2 || header[0] != key_name || header[1] != "weight") {
    throw DataError("'" + path + "': expected the header '" + key_name + ",weight'" +
                    (d.has_groups() ? " (the data has groups: weights belong to data subjects)" : ""));
  }
  std::unordered_map<int64_t, float> weight_of;
  for_each_csv_row(in, path, 2, line_no, [&](const std::vector<std::string>& cells, const std::string& where) {
    const int64_t key = parse_integer(cells[0], where + " column '" + header[0] + "'");
    if (!weight_of.emplace(key, static_cast<float>(parse_number(cells[1], where + " column 'weight'"))).second) {
      throw DataError(where + ": key " + std::to_string(key) + " is listed twice");
    }
  });
  d.weights.assign(d.size(), 0.0f);
  for (size_t i = 0; i < d.size(); ++i) {
    const auto it = weight_of.find(d.key(i));
    if (it != weight_of.end()) d.weights[i] = it->second;
  }
  std::unordered_set<int64_t> keys;
  for (size_t i = 0; i < d.size(); ++i) keys.insert(d.key(i));
  for (const auto& [key, w] : weight_of) {
    if (!keys.count(key)) {
      throw DataError("'" + path + "': " + (d.has_groups() ? "group " : "id ") + std::to_string(key) +
                      " is not in the training data");
    }
  }
}

}  // namespace sisa
