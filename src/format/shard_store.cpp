#include "format/shard_store.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "format/h5file.h"
#include "sisa/errors.h"

namespace sisa {

namespace {

// The float the model sees for a stored byte: the same expression as the
// idx loader's (src/dataset.cpp), used both to check an encoding and to
// decode it, so a stored byte always decodes to the float it replaced.
inline float dequantize(uint8_t b, float scale, float offset) { return static_cast<float>(b) * scale + offset; }

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The inputs as bytes if every value is byte * scale + offset exactly (to
// the bit), as 8-bit images are; else empty.
std::vector<uint8_t> as_bytes(const std::vector<float>& inputs, float scale, float offset) {
  std::vector<uint8_t> out(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const float q = std::nearbyint((inputs[i] - offset) / scale);
    if (!(q >= 0.0f && q <= 255.0f)) return {};
    out[i] = static_cast<uint8_t>(q);
    if (bits_of(dequantize(out[i], scale, offset)) != bits_of(inputs[i])) return {};
  }
  return out;
}

}  // namespace

std::vector<uint8_t> encode_store(const Dataset& rows, int64_t shard, const DataConfig& data) {
  const auto n = static_cast<int64_t>(rows.size());
  const auto scale = static_cast<float>(data.scale), offset = static_cast<float>(data.offset);
  const bool tokens = rows.has_tokens();
  const std::vector<uint8_t> bytes =
      scale > 0.0f && !tokens ? as_bytes(rows.inputs, scale, offset) : std::vector<uint8_t>();
  const bool u8 = !tokens && (!bytes.empty() || rows.inputs.empty());
  H5Builder b;
  b.write("ids", DType::kInt64, {n}, rows.ids.data());
  if (rows.has_groups()) b.write("groups", DType::kInt64, {n}, rows.groups.data());
  if (tokens) {
    b.write_i32("inputs", {n, rows.width}, rows.tokens.data());
    b.write_i32("lengths", {n}, rows.lengths.data());
    if (rows.feature_width > 0) b.write("features", DType::kFloat32, {n, rows.feature_width}, rows.inputs.data());
  } else if (u8) {
    b.write_u8("inputs", {n, rows.width}, bytes.data());
  } else {
    b.write("inputs", DType::kFloat32, {n, rows.width}, rows.inputs.data());
  }
  b.write("labels", DType::kInt64, {n}, rows.labels.data());
  // Weighted placement: a row's slice depends on its weight, so the retrain
  // after a deletion needs it.
  if (!rows.weights.empty()) b.write("weights", DType::kFloat32, {n}, rows.weights.data());
  const int version = tokens || !rows.weights.empty() ? kStoreFormatVersionTokensWeights : kStoreFormatVersion;
  nlohmann::json meta = {{"format", "sisa-store"},
                         {"format_version", version},
                         {"shard", shard},
                         {"rows", n},
                         {"width", rows.width},
                         {"grouped", rows.has_groups()},
                         {"inputs", tokens ? "tokens"
                                    : u8   ? "uint8"
                                           : "float32"}};
  if (u8) meta["scale_bits"] = bits_of(scale), meta["offset_bits"] = bits_of(offset);
  if (!rows.weights.empty()) meta["weighted"] = true;
  if (rows.feature_width > 0) meta["feature_width"] = rows.feature_width;
  b.set_attr("", "meta", meta.dump());
  return b.finish();
}

namespace {

nlohmann::json read_meta(const H5Image& img, const std::string& path) {
  try {
    auto meta = nlohmann::json::parse(img.attr("", "meta"));
    // Version 1 stores (always float32 inputs) are read as they are.
    if (meta.at("format") != "sisa-store" ||
        (meta.at("format_version") != kStoreFormatVersion && meta.at("format_version") != 1 &&
         meta.at("format_version") != kStoreFormatVersionTokensWeights)) {
      throw CorruptionError(path + ": not a sisa store of format version 1, 2 or 3");
    }
    return meta;
  } catch (const nlohmann::json::exception& e) {
    throw CorruptionError(path + ": bad store metadata: " + e.what());
  }
}

}  // namespace

void decode_store_keys(ByteView bytes, const std::string& path, std::vector<int64_t>* ids,
                       std::vector<int64_t>* groups) {
  H5Image img(bytes, path);
  const auto meta = read_meta(img, path);
  *ids = img.read_i64("ids");
  groups->clear();
  if (meta.value("grouped", false)) *groups = img.read_i64("groups");
}

Dataset decode_store(ByteView bytes, const std::string& path) {
  H5Image img(bytes, path);
  const auto meta = read_meta(img, path);
  Dataset d;
  d.ids = img.read_i64("ids");
  if (meta.value("grouped", false)) d.groups = img.read_i64("groups");
  d.labels = img.read_i64("labels");
  if (meta.value("weighted", false)) d.weights = img.read_f32("weights");
  const auto shape = img.shape("inputs");
  if (shape.size() != 2 || shape[0] != static_cast<int64_t>(d.ids.size()) || d.labels.size() != d.ids.size() ||
      (d.has_groups() && d.groups.size() != d.ids.size()) || (!d.weights.empty() && d.weights.size() != d.ids.size())) {
    throw CorruptionError(path + ": store datasets disagree in length");
  }
  d.width = shape[1];
  const std::string kind = meta.value("inputs", "float32");
  if (kind == "tokens") {
    d.input = InputKind::kTokens;
    d.tokens = img.read_i32("inputs");
    d.lengths = img.read_i32("lengths");
    if (d.lengths.size() != d.ids.size()) throw CorruptionError(path + ": store datasets disagree in length");
    d.feature_width = meta.value("feature_width", int64_t{0});
    if (d.feature_width > 0) {
      d.inputs = img.read_f32("features");
      if (d.inputs.size() != d.ids.size() * static_cast<size_t>(d.feature_width)) {
        throw CorruptionError(path + ": store datasets disagree in length");
      }
    }
  } else if (kind == "uint8") {
    const float scale = float_of(meta.at("scale_bits").get<uint32_t>());
    const float offset = float_of(meta.at("offset_bits").get<uint32_t>());
    const auto bytes = img.read_u8("inputs");
    d.inputs.resize(bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) d.inputs[i] = dequantize(bytes[i], scale, offset);
  } else {
    d.inputs = img.read_f32("inputs");
  }
  return d;
}

}  // namespace sisa
