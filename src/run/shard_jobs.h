// Shards as units of work. train, forget and repair describe what to train
// as ShardJobs; a ShardRunner carries them out, either in this process or by
// handing them to free MPI worker ranks (dynamic scheduling: after deletions
// shards differ in cost). A job names files in the run directory, so any
// rank with the same (shared) file system can run it; results are the
// checkpoint references the coordinator publishes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "sisa/shard_trainer.h"
#include "util/progress.h"

namespace sisa {

class Communicator;
class Env;

// What every job of one command shares.
struct JobContext {
  std::string run_dir;
  std::string config_yaml;  // the run's resolved config
  std::string identity_hash;
  nlohmann::json environment;  // the run's numeric environment; workers must match it
  TrainerOptions trainer;
  int log_level = 2;  // spdlog level for the workers
};

struct ShardJob {
  int64_t shard = 0;
  int64_t generation = 0;  // of the checkpoints the job writes
  FileRef store;           // the shard's samples
  bool from_seed = false;  // start from C_0 drawn from the seed, and write C_0 too
  CheckpointRef start;     // otherwise C_{first_stage-1}
  int64_t first_stage = 1;
  int64_t work = 0;                 // samples x epochs: the largest jobs are handed out first
  bool journal = false;             // keep journal/shard-NNN.json current (train), so a restart resumes
  std::vector<CheckpointRef> done;  // with journal: checkpoints already written (C_0..C_{first-1})
  // Run on rank 0 just before the job is handed out (not sent): writes the
  // shard's store and sets `store`, so workers start while later stores are
  // still being written.
  std::function<void(ShardJob&)> prepare;
  // Optional, not sent: the store's rows already in memory on rank 0, so a job
  // run in this process need not read back the store it was just given.
  std::shared_ptr<const ShardData> data;
  bool write = true;  // false: keep the checkpoints in memory (verify); results carry their digests
};

struct ShardJobResult {
  int64_t shard = 0;
  double prepare_cpu_seconds = 0.0;        // rank 0's CPU time in this job's `prepare`
  std::vector<CheckpointRef> checkpoints;  // the stages written, in order
  double loop_seconds = 0.0;               // time in training epochs
  int rank = 0;                            // who ran it
};

class ShardRunner {
 public:
  virtual ~ShardRunner() = default;
  // Runs every job (after its `prepare`); results in the order of `jobs`. Throws if any job fails,
  // naming the rank and shard; nothing is published by the runner itself.
  virtual std::vector<ShardJobResult> run(const JobContext& context, std::vector<ShardJob>& jobs) = 0;
};

std::unique_ptr<ShardRunner> make_local_runner(Env* env);
// Rank 0 of `comm` hands jobs to ranks 1..size-1; with size 1 it runs them itself.
std::unique_ptr<ShardRunner> make_coordinator_runner(Communicator& comm);
// A worker rank: runs jobs from rank 0 until told to stop.
void serve_jobs(Communicator& comm);
// Rank 0: tells every worker to stop.
void stop_workers(Communicator& comm);

// Runs one job here (what a worker and the local runner both do); `progress`
// (optional) spans all the jobs of the command, for the ETA.
ShardJobResult run_shard_job(const JobContext& context, const Config& config, const ShardJob& job, Env* env,
                             Progress* progress = nullptr);

}  // namespace sisa
