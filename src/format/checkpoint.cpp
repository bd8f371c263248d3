#include "format/checkpoint.h"

#include <nlohmann/json.hpp>

#include "format/h5file.h"
#include "sisa/errors.h"

namespace sisa {

std::vector<uint8_t> encode_state_file(const ModelState& state, nlohmann::json meta) {
  meta["fingerprint"] = state.fingerprint();
  meta["state_digest"] = state.state_digest();
  nlohmann::json list = nlohmann::json::array();
  H5Builder b;
  for (const auto& t : state.tensors) {
    b.write("t/" + t.name, t.dtype, t.shape, t.bytes.data());
    list.push_back({{"name", t.name}, {"role", role_name(t.role)}});
  }
  meta["tensors"] = list;
  b.set_attr("", "meta", meta.dump());
  return b.finish();
}

ModelState decode_state_file(ByteView bytes, const std::string& path, const std::string& format, int version,
                             nlohmann::json* meta_out) {
  const std::string what = format == "sisa-checkpoint" ? "checkpoint" : format;
  H5Image img(bytes, path);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(img.attr("", "meta"));
    if (meta.at("format") != format) throw CorruptionError(path + ": not a " + what);
    if (meta.at("format_version") != version) {
      throw CorruptionError(path + ": " + what + " format version " + meta.at("format_version").dump() +
                            " is not supported");
    }
  } catch (const nlohmann::json::exception& e) {
    throw CorruptionError(path + ": bad " + what + " metadata: " + e.what());
  }
  ModelState state;
  try {
    for (const auto& entry : meta.at("tensors")) {
      TensorBlob t;
      t.name = entry.at("name").get<std::string>();
      t.role = role_from_name(entry.at("role").get<std::string>());
      const std::string ds = "t/" + t.name;
      t.dtype = img.dtype(ds);
      t.shape = img.shape(ds);
      t.bytes.resize(static_cast<size_t>(t.numel()) * (t.dtype == DType::kFloat32 ? 4 : 8));
      img.read(ds, t.dtype, t.bytes.data());
      state.tensors.push_back(std::move(t));
    }
  } catch (const std::invalid_argument& e) {
    throw CorruptionError(path + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw CorruptionError(path + ": bad tensor list: " + e.what());
  }
  if (state.state_digest() != meta.value("state_digest", "")) {
    throw CorruptionError(path + ": " + what + " contents do not match its recorded state digest");
  }
  if (meta_out) *meta_out = std::move(meta);
  return state;
}

std::vector<uint8_t> encode_checkpoint(const ModelState& state, const CheckpointInfo& info) {
  return encode_state_file(state, {{"format", "sisa-checkpoint"},
                                   {"format_version", kCheckpointFormatVersion},
                                   {"shard", info.shard},
                                   {"stage", info.stage},
                                   {"n_samples", info.n_samples},
                                   {"identity_hash", info.identity_hash},
                                   {"ids_hash", info.ids_hash}});
}

ModelState decode_checkpoint(ByteView bytes, const std::string& path, CheckpointInfo* info) {
  nlohmann::json meta;
  ModelState state = decode_state_file(bytes, path, "sisa-checkpoint", kCheckpointFormatVersion, &meta);
  if (info) {
    info->shard = meta.value("shard", int64_t{0});
    info->stage = meta.value("stage", int64_t{0});
    info->n_samples = meta.value("n_samples", int64_t{0});
    info->identity_hash = meta.value("identity_hash", "");
    info->ids_hash = meta.value("ids_hash", "");
    info->fingerprint = meta.value("fingerprint", "");
    info->state_digest = meta.value("state_digest", "");
  }
  return state;
}

}  // namespace sisa
