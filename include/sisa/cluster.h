// The processes of one `sisa` invocation. Under mpirun, rank 0 runs the
// command (it owns the manifest and the deletion log) and hands shards to the
// other ranks as they become free; started alone, one process does it all.
// Results never depend on the number of ranks.
#pragma once

#include <memory>

namespace sisa {

class ShardRunner;  // opaque here (src/shard_jobs.h)

class Cluster {
 public:
  // Initializes MPI only when launched by mpirun.
  Cluster(int* argc, char*** argv);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  int rank() const;
  int size() const;
  bool is_coordinator() const { return rank() == 0; }
  // Where a command's shards train: null means in this process.
  ShardRunner* runner();
  // Worker ranks: run shard jobs until rank 0 finishes.
  void serve();
  // After the command: rank 0 releases the workers; every rank finalizes MPI
  // (explicitly, never from a destructor).
  void finish();
  // Ends every rank, e.g. after a failure on rank 0 while workers wait.
  [[noreturn]] void abort(int exit_code);

 private:
  struct Impl;  // the communicator, the MPI plugin's state, the runner
  std::unique_ptr<Impl> impl_;
};

}  // namespace sisa
