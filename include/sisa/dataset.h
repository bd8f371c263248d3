// In-memory samples: ids, optional groups (data subjects), scaled float
// inputs and integer labels. Torch-free so loaders and stores stay cheap to build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sisa/config.h"

namespace sisa {

// What a model reads per sample: float features, or a sequence of int32
// token ids (padded with 0 up to the width, with its length).
enum class InputKind { kFeatures, kTokens };

// n rows of model input, borrowed: features (n x width floats) or token ids
// (n x width int32, 0-padded, with each row's length), the latter with
// optional cached features (n x feature_width floats; see Dataset).
struct InputView {
  InputKind input = InputKind::kFeatures;
  int64_t n = 0, width = 0;
  int64_t feature_width = 0;  // tokens with cached features; else 0
  const float* features = nullptr;
  const int32_t* tokens = nullptr;
  const int32_t* lengths = nullptr;

  // Rows [begin, begin + count).
  InputView rows(int64_t begin, int64_t count) const;
};

struct Dataset {
  std::vector<int64_t> ids;
  std::vector<int64_t> groups;  // empty when the data has no groups
  std::vector<int64_t> labels;
  InputKind input = InputKind::kFeatures;
  int64_t width = 0;  // features per row, or the padded sequence length
  // features: size() * width, row-major, already scaled. Tokens: the cached
  // features of each row (size() * feature_width), or empty.
  std::vector<float> inputs;
  int64_t feature_width = 0;     // tokens with cached features (sisa-fc's backbone output); else 0
  std::vector<int32_t> tokens;   // tokens: size() * width ids, 0 after each row's length
  std::vector<int32_t> lengths;  // tokens: each row's length, 0..width
  std::vector<float> weights;    // each row's deletion weight; empty when the data has none
  int64_t truncated = 0;         // text rows cut to data.max_tokens when loaded (not stored)

  size_t size() const { return ids.size(); }
  bool has_groups() const { return !groups.empty(); }
  bool has_tokens() const { return input == InputKind::kTokens; }
  // The placement key: the data subject when there is one, else the id.
  int64_t key(size_t row) const { return groups.empty() ? ids[row] : groups[row]; }
  const float* row(size_t i) const { return inputs.data() + i * width; }
  double weight(size_t row) const { return weights.empty() ? 0.0 : weights[row]; }
  InputView view() const;

  // Rows in the given order (indices into this dataset).
  Dataset select(const std::vector<size_t>& rows) const;
  // Removes the rows whose flag is set, in place (no copy of the kept rows).
  void erase_rows(const std::vector<bool>& erase);
  // Appends the rows of `other`, of the same input kind and width (an empty
  // dataset takes other's).
  void append(const Dataset& other);
  // Sorts rows by id (the canonical order every stage starts from).
  void sort_by_id();
};

enum class Split { kTrain, kTest };

// Reads the user's source file for a split as the config describes it.
// Checks: width == prod(input_shape), labels in [0, num_classes), ids >= 0
// and unique. Errors name the file and the row or id.
Dataset load_source(const DataConfig& data, Split split);

}  // namespace sisa
