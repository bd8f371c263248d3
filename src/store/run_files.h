// The run's files as typed values, each read through read_verified (a file
// whose SHA-256 differs from the manifest is a CorruptionError naming it):
// the config, receipts, checkpoints and shard stores, and what they hold.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/model_state.h"
#include "store/run_dir.h"

namespace sisa {

// The config the run was trained with, after its shared artifacts are checked.
Config load_run_config(const RunDir& run, const Manifest& m);
// A receipt the manifest names, hash-checked and parsed; CorruptionError
// names it if it is damaged or not JSON.
nlohmann::json load_receipt(const RunDir& run, const FileRef& ref);
ModelState load_checkpoint(const RunDir& run, const CheckpointRef& ref);
Dataset load_store(const RunDir& run, const ShardEntry& e);
// Every row the run's shards hold now (deleted rows are gone from the
// stores), sorted by id: `predict --split train` and the LOO student.
Dataset load_all_rows(const RunDir& run, const Manifest& m);
// Every sample id and group key the run ever held (its stores' keys and the
// deleted ones), each sorted and unique; groups empty if the data has none.
struct RunKeys {
  std::vector<int64_t> ids, groups;
};
RunKeys known_keys(const RunDir& run, const Manifest& m);
// The SHA-256 of sorted ids: what a checkpoint was trained on.
std::string ids_hash(const std::vector<int64_t>& sorted_ids);

}  // namespace sisa
