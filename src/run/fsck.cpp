// `sisa fsck`: read-only check of a whole run directory, under a shared lock
// (a running writer makes it answer "busy"). No symbolic link or special
// file may be in the run (then nothing else is read: sisa never follows
// one); every file the manifest names must match its SHA-256 and decode;
// every checkpoint's digests must match the manifest; no store may still
// hold a deleted id; no file the manifest does not name may remain (it could
// hold deleted samples); and the manifest, its receipts and the deletion log
// must tell the same story of what was deleted.
#include <algorithm>
#include <filesystem>
#include <set>

#include "format/checkpoint.h"
#include "format/deletion_log.h"
#include "format/shard_store.h"
#include "sisa/errors.h"
#include "sisa/run.h"
#include "store/closed_world.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "util/fs.h"

namespace sisa {
namespace {

// Runs `check`, turning a typed error into a reported problem.
template <typename Check>
void guard(std::vector<std::string>* problems, const Check& check) {
  try {
    check();
  } catch (const Error& e) {
    problems->push_back(e.what());
  }
}

// Each store matches its manifest entry and holds no deleted key; each
// checkpoint decodes to the recorded digests of this run. Returns the count
// of files checked.
int64_t check_shards(const RunDir& run, const Manifest& m, bool config_ok, std::vector<std::string>* problems) {
  int64_t checked = 0;
  const std::set<int64_t> deleted(m.deleted_ids.begin(), m.deleted_ids.end());
  const std::set<int64_t> deleted_groups(m.deleted_groups.begin(), m.deleted_groups.end());
  for (const auto& e : m.entries) {
    std::vector<int64_t> ids;
    guard(problems, [&] {
      Dataset rows = load_store(run, e);
      ++checked;
      if (static_cast<int64_t>(rows.size()) != e.n_samples) {
        throw CorruptionError(run.path(e.store.path) + ": holds " + std::to_string(rows.size()) +
                              " samples, MANIFEST.json says " + std::to_string(e.n_samples));
      }
      for (size_t i = 0; i < rows.size(); ++i) {
        if (deleted.count(rows.ids[i]) || (rows.has_groups() && deleted_groups.count(rows.groups[i]))) {
          throw CorruptionError(run.path(e.store.path) + ": still holds deleted id " + std::to_string(rows.ids[i]));
        }
      }
      ids = rows.ids;
    });
    for (const auto& ref : e.checkpoints) {
      guard(problems, [&] {
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
          throw CorruptionError(run.path(ref.file.path) + ": was not trained on the samples the shard's store holds");
        }
      });
    }
  }
  if (m.student) {
    // The LOO student: intact, and the model the manifest names. (It cannot be
    // rebuilt: its updates read teachers of generations since purged.)
    guard(problems, [&] {
      const CheckpointRef& ref = m.student->checkpoint;
      const ModelState s = decode_checkpoint(read_verified(run, ref.file), run.path(ref.file.path));
      ++checked;
      if (s.state_digest() != ref.state_digest || s.fingerprint() != ref.fingerprint) {
        throw CorruptionError(run.path(ref.file.path) + ": digests differ from MANIFEST.json");
      }
    });
  }
  return checked;
}

// The manifest, the receipts it names and the log agree: the deleted ids
// are exactly those the receipts list, the last applied request is the last
// receipt, and every request the log holds as applied (or the manifest as
// published) has its receipt and its ids deleted.
void cross_check(const RunDir& run, const Manifest& m, const LogContents* log, int64_t* checked,
                 std::vector<std::string>* problems) {
  const std::string manifest = run.path("MANIFEST.json");
  std::set<int64_t> receipt_ids;
  std::set<uint64_t> receipt_seqs;
  bool receipts_ok = true;
  for (const auto& r : m.receipts) {
    guard(problems, [&] {
      receipts_ok = false;
      const auto j = load_receipt(run, r);
      ++*checked;
      try {
        receipt_seqs.insert(j.at("seq").get<uint64_t>());
        for (const auto& id : j.at("deleted_ids")) receipt_ids.insert(id.get<int64_t>());
      } catch (const nlohmann::json::exception& e) {
        throw CorruptionError(run.path(r.path) + ": not a readable receipt: " + e.what());
      }
      receipts_ok = true;
    });
    if (!receipts_ok) return;  // reported; the rest would only repeat it
  }
  const std::set<int64_t> deleted(m.deleted_ids.begin(), m.deleted_ids.end());
  if (receipt_ids != deleted) {
    problems->push_back(manifest + ": lists " + std::to_string(deleted.size()) + " deleted ids, its receipts " +
                        std::to_string(receipt_ids.size()) + " (an edited manifest or receipt)");
  }
  const uint64_t last_receipt = receipt_seqs.empty() ? 0 : *receipt_seqs.rbegin();
  if (last_receipt != m.last_seq) {
    problems->push_back(manifest + ": says the last applied request is " + std::to_string(m.last_seq) +
                        ", its receipts end at " + std::to_string(last_receipt));
  }
  for (const auto& e : m.entries) {
    if (e.last_seq > m.last_seq) {
      problems->push_back(manifest + ": shard " + std::to_string(e.shard) + " applied request " +
                          std::to_string(e.last_seq) + ", after the run's last (" + std::to_string(m.last_seq) + ")");
    }
  }
  if (!log) return;
  const std::string log_path = run.path(kLogFile);
  std::set<uint64_t> accepted;
  for (const auto& r : log->records) {
    if (r.type == LogRecord::Type::kApplied && r.seq > m.last_seq) {
      problems->push_back(log_path + ": request " + std::to_string(r.seq) +
                          " is logged as applied, but MANIFEST.json has applied only up to " +
                          std::to_string(m.last_seq));
    }
    if (r.type != LogRecord::Type::kAccepted) continue;
    accepted.insert(r.seq);
    if (r.seq > m.last_seq || r.by_group) continue;
    for (int64_t k : r.keys) {
      if (!deleted.count(k)) {
        problems->push_back(manifest + ": id " + std::to_string(k) + " of applied request " + std::to_string(r.seq) +
                            " is not among the deleted ids");
        break;
      }
    }
  }
  for (uint64_t seq : receipt_seqs) {
    if (!accepted.count(seq)) {
      problems->push_back(log_path + ": holds no record of request " + std::to_string(seq) + ", which has a receipt");
    }
  }
}

}  // namespace

nlohmann::json fsck(const std::string& run_dir) {
  std::vector<std::string> problems;
  int64_t checked = 0;
  const RunDir run(run_dir, nullptr);
  const auto report = [&](const std::vector<std::string>& stray, nlohmann::json pending) {
    return nlohmann::json{{"ok", problems.empty()},
                          {"problems", problems},
                          {"checked_files", checked},
                          {"unreferenced_files", stray},
                          {"pending_requests", pending}};
  };
  for (const auto& f : list_run(run_dir).foreign) {
    problems.push_back(in_run(run_dir, f) +
                       ": sisa never follows links or special files in a run; "
                       "replace it with the real file or directory");
  }
  if (!problems.empty()) return report({}, nullptr);
  const RunLock reading(run_dir, RunLock::Mode::kReader);  // LockedError "busy" while a writer runs
  const RunListing listing = list_run(run_dir);            // under the lock: no writer moves files now
  Manifest m;
  try {
    m = load_manifest(run_dir);
  } catch (const CorruptionError& e) {
    problems.push_back(e.what());
    return report({}, nullptr);
  }
  if (m.format_version == 1) {
    problems.push_back(manifest_path(run_dir) +
                       ": format version 1 carries no checksum, so an edit to it cannot be detected; if sisa "
                       "wrote it (before version 2), `sisa repair` checks the run and rewrites it as version 2");
  }
  bool config_ok = false;
  guard(&problems, [&] {
    load_run_config(run, m);
    config_ok = true;
    ++checked;
  });
  checked += check_shards(run, m, config_ok, &problems);

  LogContents log;
  bool log_ok = false;
  guard(&problems, [&] {
    log = read_log(run.path(kLogFile));
    log_ok = true;
  });
  if (log.torn_tail) {
    problems.push_back(run.path(kLogFile) + ": torn tail (an append interrupted by a crash; the next writer drops it)");
  }
  cross_check(run, m, log_ok ? &log : nullptr, &checked, &problems);

  auto referenced = m.referenced_files();
  referenced.insert({"MANIFEST.json", "LOCK", kLogFile});
  std::vector<std::string> stray;
  for (const auto& rel : listing.files) {
    if (!referenced.count(rel)) stray.push_back(rel);
  }
  for (const auto& f : stray) {
    problems.push_back(run.path(f) +
                       ": not named by MANIFEST.json (left by an interrupted command; "
                       "`sisa recover` removes it)");
  }
  auto out = report(stray, log_ok ? nlohmann::json(pending_requests(log).size()) : nlohmann::json());
  out["deleted_ids"] = m.deleted_ids.size();
  return out;
}

}  // namespace sisa
