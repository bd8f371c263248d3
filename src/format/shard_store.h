// The run's own copy of a shard's samples (ids, groups, inputs, labels), one
// HDF5 file per shard and generation. A deletion writes a new file without
// the deleted rows; the old file is then unlinked (never edited in place).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sisa/dataset.h"
#include "util/fs.h"

namespace sisa {

// 2: inputs that are 8-bit values under the run's scale and offset (images)
// are stored as bytes, with that scale and offset; decoding gives the very
// floats training saw. Token-id rows are int32 "inputs" with "lengths"
// (meta inputs = "tokens"; a store version 1 reader never saw them, so the
// version stays 2). Version 1 (float32 only) is read.
inline constexpr int kStoreFormatVersion = 2;
// 3: also token-id rows ("inputs": "tokens", with "lengths", and for sisa-fc
// the backbone features cached beside them: "features", meta feature_width)
// or per-row deletion weights ("weights"). Written only for such stores, so every other
// store stays version 2, byte for byte, and a reader of version 2 refuses what
// it cannot read instead of misreading it.
inline constexpr int kStoreFormatVersionTokensWeights = 3;

// `data` gives the scale and offset under which inputs may be stored as bytes.
std::vector<uint8_t> encode_store(const Dataset& rows, int64_t shard, const DataConfig& data);
Dataset decode_store(ByteView bytes, const std::string& path);
// Only the ids (and groups when present), for resolving deletion requests.
void decode_store_keys(ByteView bytes, const std::string& path, std::vector<int64_t>* ids,
                       std::vector<int64_t>* groups);

}  // namespace sisa
