// Checkpoint C_r of one shard as an HDF5 file: every tensor of ModelState
// under /t/<name>, and a JSON "meta" root attribute with the format version,
// run identity, the hash of the ids trained on and both digests. Loading
// recomputes the digests, so a flipped bit is a CorruptionError, never a model.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "sisa/model_state.h"
#include "util/fs.h"

namespace sisa {

inline constexpr int kCheckpointFormatVersion = 1;

struct CheckpointInfo {
  int64_t shard = 0;
  int64_t stage = 0;
  int64_t n_samples = 0;  // samples the stage trained on
  std::string identity_hash;
  std::string ids_hash;  // sha256 of the sorted ids trained on so far
  std::string fingerprint;
  std::string state_digest;
};

// Any file of named tensors (checkpoints, pretrained backbones): each tensor
// at /t/<name>, and `meta` (plus "tensors", "fingerprint", "state_digest")
// as the JSON root attribute "meta".
std::vector<uint8_t> encode_state_file(const ModelState& state, nlohmann::json meta);
// CorruptionError naming `path` unless meta.format is `format` at `version`
// and the tensors match the recorded digest. `meta` receives the attribute.
ModelState decode_state_file(ByteView bytes, const std::string& path, const std::string& format, int version,
                             nlohmann::json* meta = nullptr);

std::vector<uint8_t> encode_checkpoint(const ModelState& state, const CheckpointInfo& info);
// `path` names the file in errors.
ModelState decode_checkpoint(ByteView bytes, const std::string& path, CheckpointInfo* info = nullptr);

}  // namespace sisa
