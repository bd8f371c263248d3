#include "shard_store.h"

#include <nlohmann/json.hpp>

#include "h5file.h"
#include "sisa/errors.h"

namespace sisa {

std::vector<uint8_t> encode_store(const Dataset& rows, int64_t shard) {
  const auto n = static_cast<int64_t>(rows.size());
  H5Builder b;
  b.write("ids", DType::kInt64, {n}, rows.ids.data());
  if (rows.has_groups()) b.write("groups", DType::kInt64, {n}, rows.groups.data());
  b.write("inputs", DType::kFloat32, {n, rows.width}, rows.inputs.data());
  b.write("labels", DType::kInt64, {n}, rows.labels.data());
  const nlohmann::json meta = {{"format", "sisa-store"}, {"format_version", kStoreFormatVersion},
                               {"shard", shard},         {"rows", n},
                               {"width", rows.width},    {"grouped", rows.has_groups()}};
  b.set_attr("", "meta", meta.dump());
  return b.finish();
}

namespace {

nlohmann::json read_meta(const H5Image& img, const std::string& path) {
  try {
    auto meta = nlohmann::json::parse(img.attr("", "meta"));
    if (meta.at("format") != "sisa-store" || meta.at("format_version") != kStoreFormatVersion) {
      throw CorruptionError(path + ": not a sisa store of format version " +
                            std::to_string(kStoreFormatVersion));
    }
    return meta;
  } catch (const nlohmann::json::exception& e) {
    throw CorruptionError(path + ": bad store metadata: " + e.what());
  }
}

}  // namespace

void decode_store_keys(ByteView bytes, const std::string& path,
                       std::vector<int64_t>* ids, std::vector<int64_t>* groups) {
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
  const auto shape = img.shape("inputs");
  if (shape.size() != 2 || shape[0] != static_cast<int64_t>(d.ids.size()) ||
      d.labels.size() != d.ids.size() || (d.has_groups() && d.groups.size() != d.ids.size())) {
    throw CorruptionError(path + ": store datasets disagree in length");
  }
  d.width = shape[1];
  d.inputs = img.read_f32("inputs");
  return d;
}

}  // namespace sisa
