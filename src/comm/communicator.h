// Message passing between the coordinator (rank 0) and shard workers. The
// shard trainer never sees this; only the job runner does. Three
// implementations: MPI (src/comm/mpi_communicator.cpp, the only file that
// includes <mpi.h>), a single process, and in-memory ranks on threads for
// unit tests of the coordinator's protocol.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace sisa {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Sends `bytes` to `dest` (any length; large messages are chunked).
  virtual void send(int dest, const std::string& bytes) = 0;
  // Blocks until a message arrives from any rank, without spinning a core.
  virtual std::string receive_any(int* source) = 0;
  // Ends every rank of the job (after a failure that cannot be reported).
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

// n in-memory ranks for tests; run each rank's code on its own thread.
std::vector<std::unique_ptr<Communicator>> make_in_memory_communicators(int n);
// A job of one rank: what `sisa` is when started without mpirun.
std::unique_ptr<Communicator> make_single_process_communicator();

// True when this process was started by mpirun (OpenMPI sets these variables).
bool launched_by_mpirun();

// The MPI communicator lives in a plugin, libsisa_mpi.so, loaded only under
// mpirun: linking OpenMPI into every `sisa` process cost ~0.25 s per start.
// It exports (C linkage):
//   sisa::Communicator* sisa_mpi_create(int* argc, char*** argv);  // MPI_Init
//   void sisa_mpi_finalize();  // after the last message, never from a destructor
struct MpiPlugin {
  std::unique_ptr<Communicator> comm;
  void (*finalize)() = nullptr;
};
MpiPlugin load_mpi_plugin(int* argc, char*** argv);

}  // namespace sisa
