// The readers of the user's IDX, JSON Lines and HDF5 files (CSV:
// csv_loader.cpp). Each checks the shape of what it reads and names the
// file, row or column at fault; load_source (load_source.cpp) then checks
// ids, labels and values.
#include "data/data_loaders.h"

#include <nlohmann/json.hpp>
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

#include "format/h5file.h"
#include "sisa/errors.h"
#include "text/tokenizer.h"
#include "util/fs.h"
#include "util/strict_json.h"

namespace sisa {

// A data file must exist and be a regular file (a FIFO or a device would
// never end) of at most kMaxDataFileBytes.
void check_data_file(const std::string& path) {
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
  if (bytes.size() < header || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != ndim) {
    throw DataError("'" + path + "': not an IDX file of unsigned bytes with " + std::to_string(ndim) + " dimensions");
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
    throw DataError("'" + images + "' has " + std::to_string(idims[0]) + " images but '" + labels + "' has " +
                    std::to_string(ldims[0]) + " labels");
  }
  Dataset d;
  d.width = int64_t{idims[1]} * idims[2];
  if (d.width != c.width()) {
    throw DataError("'" + images + "': images have " + std::to_string(d.width) + " pixels but data.input_shape says " +
                    std::to_string(c.width()));
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
    throw DataError("'" + path + "': '" + c.inputs_dataset + "' rows have " + std::to_string(d.width) +
                    " values but data.input_shape says " + std::to_string(c.width()));
  }
  auto read_ints = [&](const std::string& name) {
    need(name);
    if (img.shape(name) != std::vector<int64_t>{n}) {
      throw DataError("'" + path + "': dataset '" + name + "' must have " + std::to_string(n) + " entries");
    }
    if (img.dtype(name) != DType::kInt64) {
      throw DataError("'" + path + "': dataset '" + name + "' must be int64");
    }
    return img.read_i64(name);
  };
  if (img.is_integer(c.inputs_dataset)) {
    // Token ids: n x L integers, 0 after each row's length, and a lengths dataset.
    if (shape.size() != 2)
      throw DataError("'" + path + "': token dataset '" + c.inputs_dataset + "' must be n x length");
    need(c.lengths_dataset);
    if (img.shape(c.lengths_dataset) != std::vector<int64_t>{n}) {
      throw DataError("'" + path + "': dataset '" + c.lengths_dataset + "' must have " + std::to_string(n) +
                      " entries");
    }
    d.input = InputKind::kTokens;
    d.tokens = img.read_i32(c.inputs_dataset);
    d.lengths = img.read_i32(c.lengths_dataset);
  } else {
    if (img.dtype(c.inputs_dataset) != DType::kFloat32) {
      throw DataError("'" + path + "': dataset '" + c.inputs_dataset +
                      "' must be float32 (features) or integers (token ids)");
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
      throw DataError("'" + path + "': dataset '" + c.weights_dataset + "' must be " + std::to_string(n) +
                      " float32 weights");
    }
    d.weights = img.read_f32(c.weights_dataset);
  }
  return d;
}

}  // namespace sisa
