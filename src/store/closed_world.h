// A run directory is a closed world: sisa never follows a symbolic link in
// it, so no command can read, rewrite or remove a file outside the run, and
// a purge cannot miss a superseded file that lives elsewhere. A run that
// holds a symbolic link (or a FIFO, socket or device) is refused; the run
// directory itself may be reached through a link or a mount. The purge
// (every file the manifest does not name) lives here for the same reason:
// it must see exactly what the listing sees.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "store/run_dir.h"

namespace sisa {

struct RunListing {
  std::vector<std::string> files;    // regular files, relative to the run directory
  std::vector<std::string> foreign;  // everything else but directories, described ("data (symbolic link to /x)")
};
// Lists the run directory without following links (empty if it does not exist).
RunListing list_run(const std::string& run_dir);
// CorruptionError naming every foreign entry, if there is any.
void require_closed_world(const std::string& run_dir);
void require_closed_world(const std::string& run_dir, const RunListing& listing);
// For `train`: refuses (UsageError) a directory that holds anything but an
// interrupted run's files, since train removes every file it did not write.
void require_run_or_empty(const std::string& run_dir);

// Unlinks every regular file under the run directory except LOCK and `keep`
// (paths relative to the run directory), syncing each directory. Returns
// them. Refuses (CorruptionError, nothing removed) a run that is not closed.
std::vector<std::string> remove_files_except(const RunDir& run, const std::set<std::string>& keep);

// Unlinks every file under run_dir that the manifest does not reference
// (superseded generations, temp files, outputs), then syncs. Returns the paths.
std::vector<std::string> remove_unreferenced(const RunDir& run, const Manifest& m);

}  // namespace sisa
