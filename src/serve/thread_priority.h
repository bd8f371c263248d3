// Serving threads run at a lower scheduling priority than the deletion
// worker, so that under full prediction load a retrain still gets about a
// core: deletions have deadlines, and without this a 3-shard deletion under
// an 8-connection load took 3-6x its idle time (docs/benchmarks.md). When no
// deletion runs, the nice value changes nothing: idle cores go to whoever
// wants them.
#pragma once

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sisa {

// Sets the calling thread's nice value (Linux: per thread). 0 leaves it as it is.
inline void set_this_thread_nice(int nice) {
  if (nice == 0) return;
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  if (setpriority(PRIO_PROCESS, tid, nice) != 0) spdlog::debug("could not set thread nice {}", nice);
}

}  // namespace sisa
