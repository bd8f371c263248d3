// A training shard's progress journal (journal/shard-NNN.json): the store and
// the checkpoints written so far, so an interrupted `train` resumes after the
// last complete stage instead of starting over. Removed once the run is published.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "store/run_dir.h"

namespace sisa {

struct ShardJournal {
  std::string identity_hash;
  std::string ids_hash;  // of the store's sorted ids
  FileRef store;
  std::vector<CheckpointRef> checkpoints;  // C_0, C_1, ... in order
};
std::string journal_file(int64_t shard);
void write_journal(const RunDir& run, int64_t shard, const ShardJournal& journal);
// Null when there is none or it does not parse (then the shard starts over).
std::unique_ptr<ShardJournal> read_journal(const RunDir& run, int64_t shard);

}  // namespace sisa
