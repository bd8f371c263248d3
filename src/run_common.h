// Pieces shared by the commands: run-directory layout, verified file reads,
// shard data with slices, and training a range of stages into checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "manifest.h"
#include "progress.h"
#include "sisa/config.h"
#include "sisa/dataset.h"
#include "sisa/shard_trainer.h"

namespace sisa {

// Relative paths inside a run directory. Generations make every rewrite a new
// file, so the manifest switch is the only in-place change.
std::string store_file(int64_t shard, int64_t generation);
std::string checkpoint_file(int64_t shard, int64_t stage, int64_t generation);
std::string receipt_file(uint64_t seq);
inline const char* kConfigFile = "config.yaml";
inline const char* kLogFile = "deletions.log";

std::string in_run(const std::string& run_dir, const std::string& rel);

// A run directory and the Env its durable writes go through.
struct RunDir {
  RunDir(std::string root_dir, Env* file_env) : root(std::move(root_dir)), env(file_env ? file_env : &Env::posix()) {}
  std::string path(const std::string& rel) const { return in_run(root, rel); }
  std::string root;
  Env* env;
};

// What a command that changes a run holds: the lock, the manifest and the
// config. Opening one refuses a foreign numeric environment (unless forced or
// `check_environment` is false) and pins libtorch's and the BLAS's threads.
struct Writer {
  Writer(const RunDir& run, bool force_environment, bool check_environment = true);
  RunLock lock;
  Manifest manifest;
  Config config;
};

// Atomically writes `bytes` at run/rel and returns its reference.
FileRef write_run_file(const RunDir& run, const std::string& rel, const std::vector<uint8_t>& bytes);
// Reads a referenced file; CorruptionError if its SHA-256 differs.
MappedFile read_verified(const RunDir& run, const FileRef& ref);

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

// Sorts by id and computes each row's slice from its placement key.
ShardData make_shard_data(Dataset rows, const Config& c);
std::string ids_hash(const std::vector<int64_t>& sorted_ids);
std::string identity_hash(const Config& c, const nlohmann::json& environment);

// Work units (samples x epochs) for stages first..R of a shard.
int64_t stage_work(const Config& c, const ShardData& data, int64_t first_stage);

struct StageRun {
  const Config* config = nullptr;
  const RunDir* dir = nullptr;  // null: keep checkpoints in memory only (verify)
  std::string identity_hash;
  TrainerOptions trainer;
  Progress* progress = nullptr;
  double* loop_seconds = nullptr;  // if set, accumulates time spent in epochs (no I/O)
  std::function<void(const CheckpointRef&)> on_checkpoint;  // after each checkpoint is written
};

// Trains stages first..R of `shard` from `start` (C_{first-1}), writing each
// C_r as generation `generation`. Returns refs for stages first..R; with
// `states` non-null, also the states.
std::vector<CheckpointRef> train_stages(const StageRun& run, int64_t shard, int64_t generation,
                                        const ShardData& data, const ModelState& start,
                                        int64_t first_stage, std::vector<ModelState>* states);

// The manifest entry for checkpoint C_stage of `shard`; with `dir` set, also
// writes the checkpoint file of generation `generation`.
CheckpointRef checkpoint_ref(const RunDir* dir, const std::string& identity, int64_t shard,
                             int64_t stage, int64_t generation, const ShardData& data,
                             const ModelState& state);

// A training shard's progress journal (journal/shard-NNN.json): the store and
// the checkpoints written so far, so an interrupted `train` resumes after the
// last complete stage instead of starting over. Removed once the run is published.
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

// A run directory is a closed world: sisa never follows a symbolic link in
// it, so no command can read, rewrite or remove a file outside the run, and
// a purge cannot miss a superseded file that lives elsewhere. A run that
// holds a symbolic link (or a FIFO, socket or device) is refused; the run
// directory itself may be reached through a link or a mount.
struct RunListing {
  std::vector<std::string> files;    // regular files, relative to the run directory
  std::vector<std::string> foreign;  // everything else but directories, described ("data (symbolic link to /x)")
};
// Lists the run directory without following links (empty if it does not exist).
RunListing list_run(const std::string& run_dir);
// CorruptionError naming every foreign entry, if there is any.
void require_closed_world(const std::string& run_dir);
void require_closed_world(const std::string& run_dir, const RunListing& listing);
// For `train`: refuses (UsageError) a directory that holds anything but an
// interrupted run's files, since train removes every file it did not write.
void require_run_or_empty(const std::string& run_dir);

// Unlinks every regular file under the run directory except LOCK and `keep`
// (paths relative to the run directory), syncing each directory. Returns
// them. Refuses (CorruptionError, nothing removed) a run that is not closed.
std::vector<std::string> remove_files_except(const RunDir& run, const std::set<std::string>& keep);

// Unlinks every file under run_dir that the manifest does not reference
// (superseded generations, temp files, outputs), then syncs. Returns the paths.
std::vector<std::string> remove_unreferenced(const RunDir& run, const Manifest& m);

}  // namespace sisa
