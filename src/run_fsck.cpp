// `sisa fsck`: read-only check of a whole run directory. Every file the
// manifest names must match its SHA-256 and decode; every checkpoint's digests
// must match the manifest; no store may still hold a deleted id; no file the
// manifest does not name may remain (it could hold deleted samples).
#include <algorithm>
#include <filesystem>
#include <set>

#include "checkpoint.h"
#include "deletion_log.h"
#include "run_common.h"
#include "shard_store.h"
#include "sisa/errors.h"
#include "sisa/run.h"

namespace fs = std::filesystem;

namespace sisa {

nlohmann::json fsck(const std::string& run_dir) {
  std::vector<std::string> problems;
  int64_t checked = 0;
  const RunDir run(run_dir, nullptr);
  Manifest m;
  try {
    m = load_manifest(run_dir);
  } catch (const CorruptionError& e) {
    return {{"ok", false}, {"problems", {e.what()}}, {"checked_files", 0}};
  }
  // Runs `check`, turning a typed error into a reported problem.
  auto guard = [&](const auto& check) {
    try {
      check();
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  };
  Config config;
  bool config_ok = false;
  guard([&] {
    config = load_run_config(run, m);
    config_ok = true;
    ++checked;
  });
  const std::set<int64_t> deleted(m.deleted_ids.begin(), m.deleted_ids.end());
  const std::set<int64_t> deleted_groups(m.deleted_groups.begin(), m.deleted_groups.end());
  for (const auto& e : m.entries) {
    std::vector<int64_t> ids;
    guard([&] {
      Dataset rows = load_store(run, e);
      ++checked;
      if (static_cast<int64_t>(rows.size()) != e.n_samples) {
        throw CorruptionError(run.path(e.store.path) + ": holds " + std::to_string(rows.size()) +
                              " samples, MANIFEST.json says " + std::to_string(e.n_samples));
      }
      for (size_t i = 0; i < rows.size(); ++i) {
        if (deleted.count(rows.ids[i]) || (rows.has_groups() && deleted_groups.count(rows.groups[i]))) {
          throw CorruptionError(run.path(e.store.path) + ": still holds deleted id " +
                                std::to_string(rows.ids[i]));
        }
      }
      ids = rows.ids;
    });
    for (const auto& ref : e.checkpoints) {
      guard([&] {
        CheckpointInfo info;
        const auto bytes = read_verified(run, ref.file);
        const ModelState s = decode_checkpoint(bytes, run.path(ref.file.path), &info);
        ++checked;
        if (s.state_digest() != ref.state_digest || s.fingerprint() != ref.fingerprint) {
          throw CorruptionError(run.path(ref.file.path) + ": digests differ from MANIFEST.json");
        }
        if (info.identity_hash != m.identity_hash) {
          throw CorruptionError(run.path(ref.file.path) + ": written by a different run identity");
        }
        if (config_ok && ref.stage == m.slices && !ids.empty() && info.ids_hash != ids_hash(ids)) {
          throw CorruptionError(run.path(ref.file.path) +
                                ": was not trained on the samples the shard's store holds");
        }
      });
    }
  }
  for (const auto& r : m.receipts) {
    guard([&] {
      read_verified(run, r);
      ++checked;
    });
  }
  LogContents log;
  guard([&] { log = read_log(run.path(kLogFile)); });
  if (log.torn_tail) {
    problems.push_back(run.path(kLogFile) + ": torn tail (an append interrupted by a crash; "
                                            "the next writer drops it)");
  }
  const auto referenced = m.referenced_files();
  std::vector<std::string> stray;
  for (const auto& entry : fs::recursive_directory_iterator(run_dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string rel = fs::relative(entry.path(), run_dir).string();
    if (rel == "MANIFEST.json" || rel == "LOCK" || rel == kLogFile || referenced.count(rel)) continue;
    stray.push_back(rel);
  }
  for (const auto& f : stray) {
    problems.push_back(run.path(f) + ": not named by MANIFEST.json (left by an interrupted "
                                     "command; `sisa recover` removes it)");
  }
  const size_t pending = pending_requests(log).size();
  return {{"ok", problems.empty()},
          {"problems", problems},
          {"checked_files", checked},
          {"unreferenced_files", stray},
          {"pending_requests", pending},
          {"deleted_ids", m.deleted_ids.size()}};
}

}  // namespace sisa
