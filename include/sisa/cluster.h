// The processes of one `sisa` invocation. Under mpirun, rank 0 runs the
// command (it owns the manifest and the deletion log) and hands shards to the
// other ranks as they become free; started alone, one process does it all.
// Results never depend on the number of ranks.
#pragma once

#include <memory>

namespace sisa {

class Communicator;
class ShardRunner;

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
  bool mpi_;
  void (*finalize_)() = nullptr;  // MPI_Finalize, from the plugin
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<ShardRunner> runner_;
  bool finished_ = false;
};

}  // namespace sisa
