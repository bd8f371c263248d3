#include "store/closed_world.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include "sisa/errors.h"

namespace fs = std::filesystem;

namespace sisa {
namespace {

// "'a', 'b', ... (N in all)" for messages.
std::string format_names(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 5) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

}  // namespace

RunListing list_run(const std::string& run_dir) {
  RunListing out;
  std::error_code ec;
  if (!fs::exists(run_dir, ec)) return out;
  // The iterator does not descend into linked directories; each entry's own
  // (not followed) status decides what it is. Paths stay lexical.
  for (const auto& entry : fs::recursive_directory_iterator(run_dir)) {
    const std::string rel = entry.path().lexically_relative(run_dir).string();
    const auto type = entry.symlink_status().type();
    if (type == fs::file_type::regular) {
      out.files.push_back(rel);
    } else if (type == fs::file_type::symlink) {
      out.foreign.push_back(rel + " (symbolic link to " + fs::read_symlink(entry.path(), ec).string() + ")");
    } else if (type != fs::file_type::directory) {
      out.foreign.push_back(rel + " (not a regular file)");
    }
  }
  std::sort(out.files.begin(), out.files.end());
  std::sort(out.foreign.begin(), out.foreign.end());
  return out;
}

void require_closed_world(const std::string& run_dir) { require_closed_world(run_dir, list_run(run_dir)); }

void require_closed_world(const std::string& run_dir, const RunListing& listing) {
  const auto& foreign = listing.foreign;
  if (foreign.empty()) return;
  std::string names;
  for (const auto& f : foreign) names += "\n  " + in_run(run_dir, f);
  throw CorruptionError("run directory '" + run_dir + "' holds " + std::to_string(foreign.size()) +
                        " symbolic link(s) or special file(s); sisa refuses to follow them (a purge could "
                        "miss or destroy files outside the run). Replace each with the real file or "
                        "directory, or move the whole run directory instead:" +
                        names);
}

void require_run_or_empty(const std::string& run_dir) {
  std::error_code ec;
  if (!fs::exists(run_dir, ec)) return;
  if (!fs::is_directory(run_dir, ec)) throw UsageError("--run-dir '" + run_dir + "' is not a directory");
  // An interrupted train has taken the lock (its first act) and holds only
  // files named as sisa names them; anything else may be the user's.
  static const std::regex ours(R"((LOCK|config\.yaml|MANIFEST\.json|deletions\.log|data/shard-\d+\.g\d+\.h5|)"
                               R"(ckpt/shard-\d+/stage-\d+\.g\d+\.h5|journal/shard-\d+\.json|receipts/\d+\.json|)"
                               R"(student/(student\.g\d+|heldout)\.h5|)"
                               R"(artifacts/[0-9a-f]{64}(\.[A-Za-z0-9]{1,16})?)(\.tmp)?)");
  const RunListing listing = list_run(run_dir);
  if (listing.files.empty() && listing.foreign.empty()) return;
  std::vector<std::string> other;
  for (const auto& f : listing.files) {
    if (!std::regex_match(f, ours)) other.push_back(f);
  }
  const bool locked_before = std::find(listing.files.begin(), listing.files.end(), "LOCK") != listing.files.end();
  if (other.empty() && locked_before) return require_closed_world(run_dir, listing);
  if (other.empty()) other = listing.files;
  throw UsageError("--run-dir '" + run_dir + "' is not empty and holds no interrupted sisa run (found " +
                   format_names(other) +
                   "); sisa train removes every file of its run directory that it "
                   "did not write: use a new or empty directory");
}

std::vector<std::string> remove_files_except(const RunDir& run, const std::set<std::string>& keep) {
  const RunListing listing = list_run(run.root);
  require_closed_world(run.root, listing);  // before anything is removed
  std::vector<std::string> removed;
  for (const auto& rel : listing.files) {
    if (rel == "LOCK" || keep.count(rel)) continue;
    removed.push_back(rel);
  }
  for (const auto& rel : removed) remove_durable(*run.env, run.path(rel));
  return removed;
}

std::vector<std::string> remove_unreferenced(const RunDir& run, const Manifest& m) {
  auto keep = m.referenced_files();
  keep.insert({"MANIFEST.json", kLogFile});
  return remove_files_except(run, keep);
}

}  // namespace sisa
