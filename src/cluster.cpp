#include "sisa/cluster.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "comm/communicator.h"
#include "shard_jobs.h"
#include "sisa/errors.h"

namespace sisa {

bool launched_by_mpirun() {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  return size != nullptr && *size != '\0';
}

MpiPlugin load_mpi_plugin(int* argc, char*** argv) {
  // Next to libsisa.so (the build tree or an install), else the loader's path.
  Dl_info self{};
  std::string path = "libsisa_mpi.so";
  if (dladdr(reinterpret_cast<void*>(&load_mpi_plugin), &self) && self.dli_fname) {
    const auto beside = std::filesystem::path(self.dli_fname).parent_path() / "libsisa_mpi.so";
    if (std::filesystem::exists(beside)) path = beside.string();
  }
  // RTLD_GLOBAL: OpenMPI's own components need libmpi's symbols.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) throw IOError(std::string("cannot load the MPI plugin: ") + dlerror());
  using Create = Communicator* (*)(int*, char***);
  auto create = reinterpret_cast<Create>(dlsym(handle, "sisa_mpi_create"));
  auto finalize = reinterpret_cast<void (*)()>(dlsym(handle, "sisa_mpi_finalize"));
  if (!create || !finalize) throw IOError("the MPI plugin " + path + " lacks its entry points");
  return {std::unique_ptr<Communicator>(create(argc, argv)), finalize};
}

Cluster::Cluster(int* argc, char*** argv) : mpi_(launched_by_mpirun()) {
  if (mpi_) {
    MpiPlugin plugin = load_mpi_plugin(argc, argv);
    comm_ = std::move(plugin.comm);
    finalize_ = plugin.finalize;
  } else {
    comm_ = make_single_process_communicator();
  }
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
  if (finalize_) finalize_();
}

void Cluster::abort(int exit_code) {
  if (mpi_) comm_->abort(exit_code);
  std::exit(exit_code);
}

}  // namespace sisa
