// The processes of one `sisa` invocation. Under mpirun, rank 0 runs the
// command (it owns the manifest and the deletion log) and hands shards to the
// other ranks as they become free; started alone, one process does it all.
// Results never depend on the number of ranks.
#pragma once

#include <memory>

namespace sisa {

struct RunSeams;  // private to the library (src/run/seams.h)

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
  // Worker ranks: run shard jobs until rank 0 finishes.
  void serve();
  // After the command: rank 0 releases the workers; every rank finalizes MPI
  // (explicitly, never from a destructor).
  void finish();
  // Pass it to a command (TrainRequest::cluster, ...): rank 0 then hands the
  // command's shards to the worker ranks.
  // Ends every rank, e.g. after a failure on rank 0 while workers wait.
  [[noreturn]] void abort(int exit_code);

 private:
  friend RunSeams seams_of(Cluster* cluster);  // reads the runner (src/run/seams.h)
  struct Impl;                                 // the communicator, the MPI plugin's state, the runner
  std::unique_ptr<Impl> impl_;
};

}  // namespace sisa
