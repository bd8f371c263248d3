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

}  // namespace sisa
