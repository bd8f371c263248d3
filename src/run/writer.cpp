#include "run/writer.h"

#include "config/environment.h"
#include "sisa/shard_trainer.h"
#include "store/closed_world.h"
#include "store/run_files.h"

namespace sisa {

Writer::Writer(const RunDir& run, bool force_environment, bool check)
    // Closed world first: the lock file itself may be the link.
    : lock((require_closed_world(run.root), run.root)),
      manifest(load_manifest(run.root)),
      config(load_run_config(run, manifest)) {
  if (check) check_environment(manifest.environment, config.train.threads, force_environment, run.root);
  set_compute_threads(config.train.threads);
}

}  // namespace sisa
