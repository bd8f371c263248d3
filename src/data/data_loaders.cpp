// The readers of the user's source files (IDX, CSV, HDF5). Each checks the
// shape of what it reads and names the file, row or column at fault;
// load_source (src/dataset.cpp) then checks ids, labels and values.
#include "data/data_loaders.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "util/fs.h"
#include "format/h5file.h"
#include "util/strict_json.h"
#include "sisa/errors.h"
#include "text/tokenizer.h"

namespace sisa {

// A data file must exist and be a regular file (a FIFO or a device would
// never end) of at most kMaxDataFileBytes.
static void check_data_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw DataError("data file not found: '" + path + "'");
  check_input_file(path, {"data file", kMaxDataFileBytes, ExitCode::kData});
}

// Reads a whole gzip (or plain) file: zlib's gzread handles both.
static std::vector<uint8_t> read_gz(const std::string& path) {
  check_data_file(path);
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError("cannot open data file '" + path + "'");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  // The decompressed bytes are bounded too: a small gzip file can expand without end.
  while ((n = gzread(f, buf, sizeof buf)) > 0 && out.size() <= kMaxDataFileBytes) out.insert(out.end(), buf, buf + n);
  const bool failed = n < 0;
  gzclose(f);
  if (failed) throw DataError("'" + path + "': corrupt gzip stream");
  if (out.size() > kMaxDataFileBytes) {
    throw DataError("data file '" + path + "' expands to more than " + std::to_string(kMaxDataFileBytes >> 30) +
                    " GiB, the most sisa reads for one data file");
  }
  return out;
}

static uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// IDX (the MNIST format): magic 0x0000 08 <ndim>, then ndim big-endian sizes, then uint8 data.
static std::vector<uint8_t> read_idx(const std::string& path, size_t ndim, std::vector<uint32_t>* dims) {
  auto bytes = read_gz(path);
  const size_t header = 4 + 4 * ndim;
  if (bytes.size() < header || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 ||
      bytes[3] != ndim) {
    throw DataError("'" + path + "': not an IDX file of unsigned bytes with " +
                    std::to_string(ndim) + " dimensions");
  }
  size_t n = 1;
  dims->clear();
  for (size_t i = 0; i < ndim; ++i) {
    dims->push_back(be32(bytes.data() + 4 + 4 * i));
    n *= dims->back();
  }
  if (bytes.size() != header + n) {
    throw DataError("'" + path + "': expected " + std::to_string(n) + " data bytes, found " +
                    std::to_string(bytes.size() - header));
  }
  return std::vector<uint8_t>(bytes.begin() + static_cast<long>(header), bytes.end());
}

Dataset load_idx(const DataConfig& c, const std::string& images, const std::string& labels) {
  std::vector<uint32_t> idims, ldims;
  const auto pixels = read_idx(images, 3, &idims);
  const auto labs = read_idx(labels, 1, &ldims);
  if (idims[0] != ldims[0]) {
    throw DataError("'" + images + "' has " + std::to_string(idims[0]) + " images but '" + labels +
                    "' has " + std::to_string(ldims[0]) + " labels");
  }
  Dataset d;
  d.width = int64_t{idims[1]} * idims[2];
  if (d.width != c.width()) {
    throw DataError("'" + images + "': images have " + std::to_string(d.width) +
                    " pixels but data.input_shape says " + std::to_string(c.width()));
  }
  const size_t n = idims[0];
  d.ids.resize(n);
  d.labels.resize(n);
  d.inputs.resize(pixels.size());
  const float scale = static_cast<float>(c.scale), offset = static_cast<float>(c.offset);
  for (size_t i = 0; i < pixels.size(); ++i) d.inputs[i] = pixels[i] * scale + offset;
  for (size_t i = 0; i < n; ++i) {
    d.ids[i] = static_cast<int64_t>(i);
    d.labels[i] = labs[i];
  }
  return d;
}

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

Dataset load_jsonl(const DataConfig& c, const std::string& path, bool train) {
  check_data_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open data file '" + path + "'");
  const Tokenizer tokenizer(c.tokenizer);
  Dataset d;
  d.input = InputKind::kTokens;
  d.width = c.max_tokens;
  const std::vector<std::string> known = {c.text_column, c.unlabeled ? "" : c.label_column, c.id_column, c.group_column,
                                          c.weight_column};
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (blank_text(line)) continue;
    const std::string where = path + ":" + std::to_string(no);
    nlohmann::json row;
    try {
      row = parse_strict_json(line);  // a field named twice is refused, as CSV and HTTP refuse it
    } catch (const StrictJsonError& e) {
      throw DataError(where + ": " + e.what());
    }
    if (!row.is_object()) throw DataError(where + ": not a JSON object");
    for (const auto& [key, value] : row.items()) {
      if (key.empty() || std::find(known.begin(), known.end(), key) == known.end()) {
        throw DataError(where + ": field '" + key + "' is neither the text, label, id, group nor weight field");
      }
    }
    auto integer = [&](const std::string& key, bool required, int64_t fallback) -> int64_t {
      if (key.empty() || !row.contains(key)) {
        if (required) throw DataError(where + ": no field '" + key + "'");
        return fallback;
      }
      const auto& v = row[key];
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
        throw DataError(where + ": field '" + key + "' must be a 64-bit integer");
      }
      return v.get<int64_t>();
    };
    d.ids.push_back(integer(c.id_column, !c.id_column.empty(), static_cast<int64_t>(d.labels.size())));
    const std::string at = where + ": id " + std::to_string(d.ids.back());
    if (!c.group_column.empty()) d.groups.push_back(integer(c.group_column, true, 0));
    d.labels.push_back(c.unlabeled ? 0 : integer(c.label_column, true, 0));
    if (!c.weight_column.empty() && (train || row.contains(c.weight_column))) {
      if (!row.contains(c.weight_column) || !row[c.weight_column].is_number()) {
        throw DataError(at + ": field '" + c.weight_column + "' must be a number");
      }
      d.weights.push_back(row[c.weight_column].get<float>());
    }
    if (!row.contains(c.text_column) || !row[c.text_column].is_string()) {
      throw DataError(at + ": field '" + c.text_column + "' must be a string");
    }
    const auto& text = row[c.text_column].get_ref<const std::string&>();
    if (blank_text(text)) throw DataError(at + " has empty text");
    if (append_token_row(tokenizer, text, c.max_tokens, &d.tokens, &d.lengths)) ++d.truncated;
  }
  return d;
}

Dataset load_hdf5(const DataConfig& c, const std::string& path, bool train) {
  if (!std::filesystem::exists(path)) throw DataError("data file not found: '" + path + "'");
  const auto bytes = read_input_file(path, {"data file", kMaxDataFileBytes, ExitCode::kData});
  H5Image img(bytes, path);
  auto need = [&](const std::string& name) {
    if (!img.has(name)) throw DataError("'" + path + "': no dataset named '" + name + "'");
  };
  need(c.inputs_dataset);
  if (!c.unlabeled) need(c.labels_dataset);
  Dataset d;
  const auto shape = img.shape(c.inputs_dataset);
  if (shape.empty()) throw DataError("'" + path + "': dataset '" + c.inputs_dataset + "' is a scalar");
  const int64_t n = shape[0];
  d.width = 1;
  for (size_t i = 1; i < shape.size(); ++i) d.width *= shape[i];
  if (d.width != c.width()) {
    throw DataError("'" + path + "': '" + c.inputs_dataset + "' rows have " +
                    std::to_string(d.width) + " values but data.input_shape says " +
                    std::to_string(c.width()));
  }
  auto read_ints = [&](const std::string& name) {
    need(name);
    if (img.shape(name) != std::vector<int64_t>{n}) {
      throw DataError("'" + path + "': dataset '" + name + "' must have " + std::to_string(n) +
                      " entries");
    }
    if (img.dtype(name) != DType::kInt64) {
      throw DataError("'" + path + "': dataset '" + name + "' must be int64");
    }
    return img.read_i64(name);
  };
  if (img.is_integer(c.inputs_dataset)) {
    // Token ids: n x L integers, 0 after each row's length, and a lengths dataset.
    if (shape.size() != 2) throw DataError("'" + path + "': token dataset '" + c.inputs_dataset + "' must be n x length");
    need(c.lengths_dataset);
    if (img.shape(c.lengths_dataset) != std::vector<int64_t>{n}) {
      throw DataError("'" + path + "': dataset '" + c.lengths_dataset + "' must have " + std::to_string(n) + " entries");
    }
    d.input = InputKind::kTokens;
    d.tokens = img.read_i32(c.inputs_dataset);
    d.lengths = img.read_i32(c.lengths_dataset);
  } else {
    if (img.dtype(c.inputs_dataset) != DType::kFloat32) {
      throw DataError("'" + path + "': dataset '" + c.inputs_dataset + "' must be float32 (features) or integers (token ids)");
    }
    d.inputs = img.read_f32(c.inputs_dataset);
    for (auto& v : d.inputs) v = static_cast<float>(v * c.scale + c.offset);
  }
  d.labels = c.unlabeled ? std::vector<int64_t>(static_cast<size_t>(n), 0) : read_ints(c.labels_dataset);
  if (!c.ids_dataset.empty()) {
    d.ids = read_ints(c.ids_dataset);
  } else {
    d.ids.resize(static_cast<size_t>(n));
    std::iota(d.ids.begin(), d.ids.end(), 0);
  }
  if (!c.groups_dataset.empty()) d.groups = read_ints(c.groups_dataset);
  if (!c.weights_dataset.empty() && train) {
    need(c.weights_dataset);
    if (img.shape(c.weights_dataset) != std::vector<int64_t>{n} || img.dtype(c.weights_dataset) != DType::kFloat32) {
      throw DataError("'" + path + "': dataset '" + c.weights_dataset + "' must be " + std::to_string(n) + " float32 weights");
    }
    d.weights = img.read_f32(c.weights_dataset);
  }
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
