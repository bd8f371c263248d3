#include "sisa/cluster.h"

#include <cstdlib>

#include "comm/communicator.h"
#include "shard_jobs.h"

namespace sisa {

Cluster::Cluster(int* argc, char*** argv) {
  if (!launched_by_mpirun()) return;
  comm_ = make_mpi_communicator(argc, argv);
  if (comm_->size() > 1 && comm_->rank() == 0) runner_ = make_coordinator_runner(*comm_);
}

Cluster::~Cluster() = default;

int Cluster::rank() const { return comm_ ? comm_->rank() : 0; }
int Cluster::size() const { return comm_ ? comm_->size() : 1; }
ShardRunner* Cluster::runner() { return runner_.get(); }

void Cluster::serve() {
  if (comm_) serve_jobs(*comm_);
}

void Cluster::finish() {
  if (finished_ || !comm_) return;
  finished_ = true;
  if (comm_->rank() == 0) stop_workers(*comm_);
  finalize_mpi();
}

void Cluster::abort(int exit_code) {
  if (comm_) comm_->abort(exit_code);
  std::exit(exit_code);
}

}  // namespace sisa
