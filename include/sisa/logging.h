// Log set-up for the CLI: spdlog to stderr, tagged with the MPI rank when
// there is more than one process. Library code logs "[shard i][stage r] ...".
#pragma once

namespace sisa {

enum class Verbosity { kQuiet, kNormal, kVerbose };

// rank < 0: single process, no rank tag.
void init_logging(Verbosity verbosity, int rank = -1);

}  // namespace sisa
