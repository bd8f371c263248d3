#include "sisa/dataset.h"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <unordered_set>

#include "fs.h"
#include "h5file.h"
#include "sisa/errors.h"

namespace sisa {

InputView InputView::rows(int64_t begin, int64_t count) const {
  InputView v = *this;
  v.n = count;
  if (features) v.features = features + begin * width;
  if (tokens) v.tokens = tokens + begin * width, v.lengths = lengths + begin;
  return v;
}

InputView Dataset::view() const {
  InputView v;
  v.input = input;
  v.n = static_cast<int64_t>(size());
  v.width = width;
  if (has_tokens()) {
    v.tokens = tokens.data(), v.lengths = lengths.data();
  } else {
    v.features = inputs.data();
  }
  return v;
}

Dataset Dataset::select(const std::vector<size_t>& rows) const {
  Dataset out;
  out.width = width;
  out.input = input;
  out.ids.reserve(rows.size());
  out.labels.reserve(rows.size());
  const size_t w = static_cast<size_t>(width);
  for (size_t r : rows) {
    out.ids.push_back(ids[r]);
    if (has_groups()) out.groups.push_back(groups[r]);
    out.labels.push_back(labels[r]);
    if (has_tokens()) {
      out.tokens.insert(out.tokens.end(), tokens.begin() + r * w, tokens.begin() + (r + 1) * w);
      out.lengths.push_back(lengths[r]);
    } else {
      out.inputs.insert(out.inputs.end(), row(r), row(r) + width);
    }
  }
  return out;
}

void Dataset::erase_rows(const std::vector<bool>& erase) {
  size_t out = 0;
  const size_t w = static_cast<size_t>(width);
  for (size_t i = 0; i < size(); ++i) {
    if (erase[i]) continue;
    if (out != i) {
      ids[out] = ids[i];
      labels[out] = labels[i];
      if (has_groups()) groups[out] = groups[i];
      if (has_tokens()) {
        std::copy(tokens.begin() + i * w, tokens.begin() + (i + 1) * w, tokens.begin() + out * w);
        lengths[out] = lengths[i];
      } else {
        std::copy(row(i), row(i) + width, inputs.begin() + static_cast<long>(out * width));
      }
    }
    ++out;
  }
  ids.resize(out);
  labels.resize(out);
  if (has_groups()) groups.resize(out);
  if (has_tokens()) {
    tokens.resize(out * w);
    lengths.resize(out);
  } else {
    inputs.resize(out * w);
  }
}

void Dataset::sort_by_id() {
  std::vector<size_t> order(size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [this](size_t a, size_t b) { return ids[a] < ids[b]; });
  *this = select(order);
}

namespace {

// Reads a whole gzip (or plain) file: zlib's gzread handles both.
std::vector<uint8_t> read_gz(const std::string& path) {
  if (!std::filesystem::exists(path)) throw DataError("data file not found: '" + path + "'");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError("cannot open data file '" + path + "'");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  const bool failed = n < 0;
  gzclose(f);
  if (failed) throw DataError("'" + path + "': corrupt gzip stream");
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// IDX (the MNIST format): magic 0x0000 08 <ndim>, then ndim big-endian sizes, then uint8 data.
std::vector<uint8_t> read_idx(const std::string& path, size_t ndim, std::vector<uint32_t>* dims) {
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

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::stringstream ss(line);
  while (std::getline(ss, cell, ',')) {
    while (!cell.empty() && (cell.back() == '\r' || cell.back() == ' ')) cell.pop_back();
    size_t s = 0;
    while (s < cell.size() && cell[s] == ' ') ++s;
    out.push_back(cell.substr(s));
  }
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

double parse_number(const std::string& cell, const std::string& where) {
  if (cell.empty()) throw DataError(where + ": empty value");
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(cell.c_str(), &end);
  if (*end != '\0' || errno == ERANGE) throw DataError(where + ": '" + cell + "' is not a number");
  return v;
}

int64_t parse_integer(const std::string& cell, const std::string& where) {
  if (cell.empty()) throw DataError(where + ": empty value");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(cell.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE) {
    throw DataError(where + ": '" + cell + "' is not a 64-bit integer");
  }
  return v;
}

Dataset load_csv(const DataConfig& c, const std::string& path) {
  if (!std::filesystem::exists(path)) throw DataError("data file not found: '" + path + "'");
  std::ifstream in(path);
  if (!in) throw DataError("cannot open data file '" + path + "'");
  std::string line;
  if (!std::getline(in, line)) throw DataError("'" + path + "': empty file, expected a header");
  const auto header = split_csv_line(line);
  auto column = [&](const std::string& name) -> int {
    if (name.empty()) return -1;
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw DataError("'" + path + "': no column named '" + name + "'");
    return static_cast<int>(it - header.begin());
  };
  const int label_col = column(c.label_column);
  const int id_col = column(c.id_column);
  const int group_col = column(c.group_column);
  std::vector<int> feature_cols;
  for (int i = 0; i < static_cast<int>(header.size()); ++i) {
    if (i != label_col && i != id_col && i != group_col) feature_cols.push_back(i);
  }
  Dataset d;
  d.width = static_cast<int64_t>(feature_cols.size());
  if (d.width != c.width()) {
    throw DataError("'" + path + "': " + std::to_string(d.width) +
                    " feature columns but data.input_shape says " +
                    std::to_string(c.width()));
  }
  int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    const auto cells = split_csv_line(line);
    const std::string where = path + ":" + std::to_string(line_no);
    if (cells.size() != header.size()) {
      throw DataError(where + ": " + std::to_string(cells.size()) + " fields, header has " +
                      std::to_string(header.size()));
    }
    d.ids.push_back(id_col >= 0 ? parse_integer(cells[id_col], where + " column '" + c.id_column + "'")
                                : static_cast<int64_t>(d.labels.size()));
    if (group_col >= 0) {
      d.groups.push_back(parse_integer(cells[group_col], where + " column '" + c.group_column + "'"));
    }
    d.labels.push_back(parse_integer(cells[label_col], where + " column '" + c.label_column + "'"));
    for (int f : feature_cols) {
      const double v = parse_number(cells[f], where + " column '" + header[f] + "'");
      d.inputs.push_back(static_cast<float>(v * c.scale + c.offset));
    }
  }
  return d;
}

Dataset load_hdf5(const DataConfig& c, const std::string& path) {
  if (!std::filesystem::exists(path)) throw DataError("data file not found: '" + path + "'");
  const auto bytes = read_file(path);
  H5Image img(bytes, path);
  auto need = [&](const std::string& name) {
    if (!img.has(name)) throw DataError("'" + path + "': no dataset named '" + name + "'");
  };
  need(c.inputs_dataset);
  need(c.labels_dataset);
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
  d.labels = read_ints(c.labels_dataset);
  if (!c.ids_dataset.empty()) {
    d.ids = read_ints(c.ids_dataset);
  } else {
    d.ids.resize(static_cast<size_t>(n));
    std::iota(d.ids.begin(), d.ids.end(), 0);
  }
  if (!c.groups_dataset.empty()) d.groups = read_ints(c.groups_dataset);
  return d;
}

void check(const Dataset& d, const DataConfig& c, const std::string& path) {
  std::unordered_set<int64_t> seen;
  seen.reserve(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    if (d.ids[i] < 0) throw DataError("'" + path + "': negative id " + std::to_string(d.ids[i]));
    if (!seen.insert(d.ids[i]).second) {
      throw DataError("'" + path + "': duplicate id " + std::to_string(d.ids[i]));
    }
    if (d.labels[i] < 0 || d.labels[i] >= c.num_classes) {
      throw DataError("'" + path + "': id " + std::to_string(d.ids[i]) + " has label " +
                      std::to_string(d.labels[i]) + ", outside [0, data.num_classes=" +
                      std::to_string(c.num_classes) + ")");
    }
    if (d.has_groups() && d.groups[i] < 0) {
      throw DataError("'" + path + "': id " + std::to_string(d.ids[i]) + " has negative group");
    }
  }
  for (float v : d.inputs) {
    if (!std::isfinite(v)) throw DataError("'" + path + "': inputs contain NaN or infinity");
  }
  // Token rows: the length in 0..width, ids >= 0, and explicit 0 padding after the length.
  for (size_t i = 0; i < d.lengths.size(); ++i) {
    const std::string row = "'" + path + "': id " + std::to_string(d.ids[i]);
    if (d.lengths[i] < 0 || d.lengths[i] > d.width) {
      throw DataError(row + " has length " + std::to_string(d.lengths[i]) + ", outside [0, " + std::to_string(d.width) + "]");
    }
    for (int64_t j = 0; j < d.width; ++j) {
      const int32_t t = d.tokens[i * static_cast<size_t>(d.width) + static_cast<size_t>(j)];
      if (t < 0) throw DataError(row + " has a negative token id");
      if (j >= d.lengths[i] && t != 0) throw DataError(row + " has a non-zero token after its length (padding must be 0)");
    }
  }
}

}  // namespace

Dataset load_source(const DataConfig& c, Split split) {
  const bool train = split == Split::kTrain;
  const std::string& path = train ? c.train : c.test;
  if (path.empty()) throw DataError("the config names no " + std::string(train ? "train" : "test") + " data (data." + (train ? "train" : "test") + ")");
  // Paths are resolved against the config's directory; say which file is read.
  spdlog::info("reading {} data from '{}'{}", train ? "training" : "test", path,
               c.format == "idx" ? " and '" + (train ? c.train_labels : c.test_labels) + "'" : "");
  Dataset d;
  if (c.format == "idx") {
    d = load_idx(c, path, train ? c.train_labels : c.test_labels);
  } else if (c.format == "csv") {
    d = load_csv(c, path);
  } else {
    d = load_hdf5(c, path);
  }
  check(d, c, path);
  return d;
}

}  // namespace sisa
