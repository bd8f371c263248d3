#include "sisa/cluster.h"

#include <cstdlib>

#include "comm/communicator.h"
#include "shard_jobs.h"

namespace sisa {

Cluster::Cluster(int* argc, char*** argv)
    : mpi_(launched_by_mpirun()),
      comm_(mpi_ ? make_mpi_communicator(argc, argv) : make_single_process_communicator()) {
  // With one rank, shards train in this process (a null runner).
  if (comm_->size() > 1 && comm_->rank() == 0) runner_ = make_coordinator_runner(*comm_);
}

Cluster::~Cluster() = default;

int Cluster::rank() const { return comm_->rank(); }
int Cluster::size() const { return comm_->size(); }
ShardRunner* Cluster::runner() { return runner_.get(); }

void Cluster::serve() { serve_jobs(*comm_); }

void Cluster::finish() {
  if (finished_) return;
  finished_ = true;
  if (comm_->rank() == 0) stop_workers(*comm_);
  if (mpi_) finalize_mpi();
}

void Cluster::abort(int exit_code) {
  if (mpi_) comm_->abort(exit_code);
  std::exit(exit_code);
}

}  // namespace sisa
