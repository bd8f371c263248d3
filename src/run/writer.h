// What a command that changes a run holds: the lock, the manifest and the
// config. Opening one refuses a foreign numeric environment (unless forced or
// `check_environment` is false) and pins libtorch's and the BLAS's threads.
#pragma once

#include "format/manifest.h"
#include "sisa/config.h"
#include "store/run_dir.h"
#include "util/fs.h"

namespace sisa {

struct Writer {
  Writer(const RunDir& run, bool force_environment, bool check_environment = true);
  RunLock lock;
  Manifest manifest;
  Config config;
};

}  // namespace sisa
