// Checkpoint C_r of one shard as an HDF5 file: every tensor of ModelState
// under /t/<name>, and a JSON "meta" root attribute with the format version,
// run identity, the hash of the ids trained on and both digests. Loading
// recomputes the digests, so a flipped bit is a CorruptionError, never a model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs.h"
#include "sisa/model_state.h"

namespace sisa {

inline constexpr int kCheckpointFormatVersion = 1;

struct CheckpointInfo {
  int64_t shard = 0;
  int64_t stage = 0;
  int64_t n_samples = 0;   // samples the stage trained on
  std::string identity_hash;
  std::string ids_hash;    // sha256 of the sorted ids trained on so far
  std::string fingerprint;
  std::string state_digest;
};

std::vector<uint8_t> encode_checkpoint(const ModelState& state, const CheckpointInfo& info);
// `path` names the file in errors.
ModelState decode_checkpoint(ByteView bytes, const std::string& path,
                             CheckpointInfo* info = nullptr);

}  // namespace sisa
