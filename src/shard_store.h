// The run's own copy of a shard's samples (ids, groups, inputs, labels), one
// HDF5 file per shard and generation. A deletion writes a new file without
// the deleted rows; the old file is then unlinked (never edited in place).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs.h"
#include "sisa/dataset.h"

namespace sisa {

inline constexpr int kStoreFormatVersion = 1;

std::vector<uint8_t> encode_store(const Dataset& rows, int64_t shard);
Dataset decode_store(ByteView bytes, const std::string& path);
// Only the ids (and groups when present), for resolving deletion requests.
void decode_store_keys(ByteView bytes, const std::string& path,
                       std::vector<int64_t>* ids, std::vector<int64_t>* groups);

}  // namespace sisa
