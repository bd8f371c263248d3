#include "sisa/cluster.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "comm/communicator.h"
#include "run/seams.h"
#include "run/shard_jobs.h"
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

struct Cluster::Impl {
  bool mpi = false;
  void (*finalize)() = nullptr;  // MPI_Finalize, from the plugin
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<ShardRunner> runner;
  bool finished = false;
};

Cluster::Cluster(int* argc, char*** argv) : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.mpi = launched_by_mpirun();
  if (c.mpi) {
    MpiPlugin plugin = load_mpi_plugin(argc, argv);
    c.comm = std::move(plugin.comm);
    c.finalize = plugin.finalize;
  } else {
    c.comm = make_single_process_communicator();
  }
  // With one rank, shards train in this process (a null runner).
  if (c.comm->size() > 1 && c.comm->rank() == 0) c.runner = make_coordinator_runner(*c.comm);
}

Cluster::~Cluster() = default;

int Cluster::rank() const { return impl_->comm->rank(); }
int Cluster::size() const { return impl_->comm->size(); }
RunSeams seams_of(Cluster* cluster) {
  RunSeams s;
  if (cluster) s.runner = cluster->impl_->runner.get();
  return s;
}

void Cluster::serve() { serve_jobs(*impl_->comm); }

void Cluster::finish() {
  Impl& c = *impl_;
  if (c.finished) return;
  c.finished = true;
  if (c.comm->rank() == 0) stop_workers(*c.comm);
  if (c.finalize) c.finalize();
}

void Cluster::abort(int exit_code) {
  if (impl_->mpi) impl_->comm->abort(exit_code);
  std::exit(exit_code);
}

}  // namespace sisa
