#include "sisa/dataset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "data_loaders.h"
#include "sisa/errors.h"

namespace sisa {

InputView InputView::rows(int64_t begin, int64_t count) const {
  InputView v = *this;
  v.n = count;
  if (features) v.features = features + begin * (tokens ? feature_width : width);
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
    if (feature_width > 0) v.feature_width = feature_width, v.features = inputs.data();
  } else {
    v.features = inputs.data();
  }
  return v;
}

Dataset Dataset::select(const std::vector<size_t>& rows) const {
  Dataset out;
  out.width = width;
  out.input = input;
  out.feature_width = feature_width;
  out.ids.reserve(rows.size());
  out.labels.reserve(rows.size());
  const size_t w = static_cast<size_t>(width);
  for (size_t r : rows) {
    out.ids.push_back(ids[r]);
    if (has_groups()) out.groups.push_back(groups[r]);
    out.labels.push_back(labels[r]);
    if (!weights.empty()) out.weights.push_back(weights[r]);
    if (has_tokens()) {
      out.tokens.insert(out.tokens.end(), tokens.begin() + r * w, tokens.begin() + (r + 1) * w);
      out.lengths.push_back(lengths[r]);
      const size_t f = static_cast<size_t>(feature_width);
      out.inputs.insert(out.inputs.end(), inputs.begin() + r * f, inputs.begin() + (r + 1) * f);
    } else {
      out.inputs.insert(out.inputs.end(), row(r), row(r) + width);
    }
  }
  return out;
}

void Dataset::append(const Dataset& other) {
  if (ids.empty()) {
    input = other.input;
    width = other.width;
    feature_width = other.feature_width;
  }
  ids.insert(ids.end(), other.ids.begin(), other.ids.end());
  groups.insert(groups.end(), other.groups.begin(), other.groups.end());
  labels.insert(labels.end(), other.labels.begin(), other.labels.end());
  inputs.insert(inputs.end(), other.inputs.begin(), other.inputs.end());
  tokens.insert(tokens.end(), other.tokens.begin(), other.tokens.end());
  lengths.insert(lengths.end(), other.lengths.begin(), other.lengths.end());
  weights.insert(weights.end(), other.weights.begin(), other.weights.end());
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
      if (!weights.empty()) weights[out] = weights[i];
      if (has_tokens()) {
        std::copy(tokens.begin() + i * w, tokens.begin() + (i + 1) * w, tokens.begin() + out * w);
        lengths[out] = lengths[i];
        const size_t f = static_cast<size_t>(feature_width);
        std::copy(inputs.begin() + i * f, inputs.begin() + (i + 1) * f, inputs.begin() + out * f);
      } else {
        std::copy(row(i), row(i) + width, inputs.begin() + static_cast<long>(out * width));
      }
    }
    ++out;
  }
  ids.resize(out);
  labels.resize(out);
  if (has_groups()) groups.resize(out);
  if (!weights.empty()) weights.resize(out);
  if (has_tokens()) {
    tokens.resize(out * w);
    lengths.resize(out);
    inputs.resize(out * static_cast<size_t>(feature_width));
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

// Weights: finite, >= 0, and one per data subject (placement follows the group).
void check_weights(const Dataset& d, const std::string& path) {
  std::unordered_map<int64_t, float> of_group;
  for (size_t i = 0; i < d.weights.size(); ++i) {
    const float w = d.weights[i];
    if (!std::isfinite(w) || w < 0) {
      throw DataError("'" + path + "': id " + std::to_string(d.ids[i]) + " has weight " + std::to_string(w) +
                      "; weights must be finite and >= 0");
    }
    if (!d.has_groups()) continue;
    const auto [it, fresh] = of_group.emplace(d.groups[i], w);
    if (!fresh && it->second != w) {
      throw DataError("'" + path + "': group " + std::to_string(d.groups[i]) + " has rows of weight " +
                      std::to_string(it->second) + " and " + std::to_string(w) + "; a data subject has one weight");
    }
  }
}

void check(const Dataset& d, const DataConfig& c, const std::string& path) {
  std::unordered_set<int64_t> seen;
  seen.reserve(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    if (d.ids[i] < 0) throw DataError("'" + path + "': negative id " + std::to_string(d.ids[i]));
    if (!seen.insert(d.ids[i]).second) {
      throw DataError("'" + path + "': duplicate id " + std::to_string(d.ids[i]));
    }
    if (!c.unlabeled && (d.labels[i] < 0 || d.labels[i] >= c.num_classes)) {
      throw DataError("'" + path + "': id " + std::to_string(d.ids[i]) + " has label " +
                      std::to_string(d.labels[i]) + ", outside [0, data.num_classes=" +
                      std::to_string(c.num_classes) + ")");
    }
    if (d.has_groups() && d.groups[i] < 0) {
      throw DataError("'" + path + "': id " + std::to_string(d.ids[i]) + " has negative group");
    }
  }
  check_weights(d, path);
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
    d = load_csv(c, path, train);
  } else if (c.format == "jsonl") {
    d = load_jsonl(c, path, train);
  } else {
    d = load_hdf5(c, path, train);
  }
  if (!c.weights_file.empty() && train) load_weights_file(c, d);
  check(d, c, path);
  return d;
}

}  // namespace sisa
