// load_source: a split of the user's data through the reader of its format
// (data_loaders.h), then every check on what was read: ids, groups, labels,
// weights and token rows.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "data/data_loaders.h"
#include "sisa/dataset.h"
#include "sisa/errors.h"

namespace sisa {

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
