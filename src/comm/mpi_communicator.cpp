// The only file that includes <mpi.h>, built as the plugin libsisa_mpi.so.
// Every call is checked; messages are a 64-bit length followed by chunks of
// at most INT_MAX bytes; receiving polls
// with a short sleep, because OpenMPI's blocking receive spins a whole core
// and the coordinator must leave the cores to the workers.
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "comm/communicator.h"
#include "sisa/errors.h"

#define SISA_MPI_CHECK(expr)                                                                                        \
  do {                                                                                                              \
    const int sisa_mpi_rc = (expr);                                                                                 \
    if (sisa_mpi_rc != MPI_SUCCESS) {                                                                               \
      char sisa_mpi_msg[MPI_MAX_ERROR_STRING];                                                                      \
      int sisa_mpi_len = 0;                                                                                         \
      MPI_Error_string(sisa_mpi_rc, sisa_mpi_msg, &sisa_mpi_len);                                                   \
      throw ::sisa::IOError(std::string("MPI call failed: " #expr ": ") + std::string(sisa_mpi_msg, sisa_mpi_len)); \
    }                                                                                                               \
  } while (0)

namespace sisa {

constexpr int kLengthTag = 1;
constexpr int kChunkTag = 2;

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    SISA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    SISA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void send(int dest, const std::string& bytes) override {
    unsigned long long n = bytes.size();
    SISA_MPI_CHECK(MPI_Send(&n, 1, MPI_UNSIGNED_LONG_LONG, dest, kLengthTag, MPI_COMM_WORLD));
    for (size_t off = 0; off < bytes.size(); off += INT_MAX) {
      const int chunk = static_cast<int>(std::min<size_t>(INT_MAX, bytes.size() - off));
      SISA_MPI_CHECK(MPI_Send(bytes.data() + off, chunk, MPI_CHAR, dest, kChunkTag, MPI_COMM_WORLD));
    }
  }

  std::string receive_any(int* source) override {
    MPI_Status status;
    int ready = 0;
    auto pause = std::chrono::microseconds(50);
    for (;;) {
      SISA_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kLengthTag, MPI_COMM_WORLD, &ready, &status));
      if (ready) break;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(20000));
    }
    *source = status.MPI_SOURCE;
    unsigned long long n = 0;
    SISA_MPI_CHECK(MPI_Recv(&n, 1, MPI_UNSIGNED_LONG_LONG, *source, kLengthTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    std::string bytes(n, '\0');
    for (size_t off = 0; off < n; off += INT_MAX) {
      const int chunk = static_cast<int>(std::min<size_t>(INT_MAX, n - off));
      SISA_MPI_CHECK(
          MPI_Recv(bytes.data() + off, chunk, MPI_CHAR, *source, kChunkTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    }
    return bytes;
  }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace sisa

extern "C" sisa::Communicator* sisa_mpi_create(int* argc, char*** argv) {
  SISA_MPI_CHECK(MPI_Init(argc, argv));
  return new sisa::MpiCommunicator();
}

extern "C" void sisa_mpi_finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
