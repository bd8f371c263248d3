#include "run_common.h"

#include "artifacts.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "artifacts.h"
#include "environment.h"
#include "fs.h"
#include "sha256.h"
#include "shard_store.h"
#include "sisa/errors.h"
#include "sisa/placement.h"

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

std::string store_file(int64_t shard, int64_t generation) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "data/shard-%03lld.g%lld.h5", static_cast<long long>(shard),
                static_cast<long long>(generation));
  return buf;
}

std::string checkpoint_file(int64_t shard, int64_t stage, int64_t generation) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "ckpt/shard-%03lld/stage-%02lld.g%lld.h5",
                static_cast<long long>(shard), static_cast<long long>(stage),
                static_cast<long long>(generation));
  return buf;
}

std::string receipt_file(uint64_t seq) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "receipts/%06llu.json", static_cast<unsigned long long>(seq));
  return buf;
}

std::string in_run(const std::string& run_dir, const std::string& rel) {
  return (fs::path(run_dir) / rel).string();
}

FileRef write_run_file(const RunDir& run, const std::string& rel,
                       const std::vector<uint8_t>& bytes) {
  const std::string path = run.path(rel);
  make_dirs(fs::path(path).parent_path().string());
  atomic_write(*run.env, path, bytes);
  return {rel, sha256_hex(bytes.data(), bytes.size())};
}

MappedFile read_verified(const RunDir& run, const FileRef& ref) {
  const std::string path = run.path(ref.path);
  if (!fs::exists(path)) throw CorruptionError(path + ": missing (named in MANIFEST.json)");
  MappedFile bytes(path);
  if (sha256_hex(bytes.view().data, bytes.view().size) != ref.sha256) {
    throw CorruptionError(path + ": SHA-256 does not match MANIFEST.json (file damaged or altered)");
  }
  return bytes;
}

Writer::Writer(const RunDir& run, bool force_environment, bool check)
    // Closed world first: the lock file itself may be the link.
    : lock((require_closed_world(run.root), run.root)),
      manifest(load_manifest(run.root)),
      config(load_run_config(run, manifest)) {
  if (check) check_environment(manifest.environment, config.train.threads, force_environment, run.root);
  set_compute_threads(config.train.threads);
}

Config load_run_config(const RunDir& run, const Manifest& m) {
  const MappedFile bytes = read_verified(run, m.config);
  const std::string path = run.path(m.config.path);
  const ByteView v = bytes.view();
  // Before parsing: a family's checks read its artifacts (a backbone's shape),
  // and the hash reads them too; a changed copy must be named as such.
  verify_artifacts(run, m);
  // Relative paths in it (shared artifacts) lie inside the run.
  Config c = Config::parse(std::string(reinterpret_cast<const char*>(v.data), v.size), path, run.root);
  if (c.training_hash() != m.config_hash) {
    throw CorruptionError(path + ": config hash does not match MANIFEST.json");
  }
  return c;
}

nlohmann::json load_receipt(const RunDir& run, const FileRef& ref) {
  const auto bytes = read_verified(run, ref);
  try {
    return nlohmann::json::parse(bytes.view().data, bytes.view().data + bytes.view().size);
  } catch (const nlohmann::json::exception& e) {
    throw CorruptionError(run.path(ref.path) + ": not a readable receipt: " + e.what());
  }
}

ModelState load_checkpoint(const RunDir& run, const CheckpointRef& ref) {
  const auto bytes = read_verified(run, ref.file);
  return decode_checkpoint(bytes, run.path(ref.file.path));
}

Dataset load_store(const RunDir& run, const ShardEntry& e) {
  const auto bytes = read_verified(run, e.store);
  return decode_store(bytes, run.path(e.store.path));
}

Dataset load_all_rows(const RunDir& run, const Manifest& m) {
  Dataset all;
  for (const auto& e : m.entries) {
    if (e.n_samples > 0) all.append(load_store(run, e));
  }
  all.sort_by_id();
  return all;
}

RunKeys known_keys(const RunDir& run, const Manifest& m) {
  RunKeys k{m.deleted_ids, m.deleted_groups};
  for (const auto& e : m.entries) {
    const auto bytes = read_verified(run, e.store);
    std::vector<int64_t> ids, groups;
    decode_store_keys(bytes, run.path(e.store.path), &ids, &groups);
    k.ids.insert(k.ids.end(), ids.begin(), ids.end());
    k.groups.insert(k.groups.end(), groups.begin(), groups.end());
  }
  for (auto* v : {&k.ids, &k.groups}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return k;
}

ShardData make_shard_data(Dataset rows, const Config& c) {
  // Stores are written sorted; sorting again would copy every row.
  if (!std::is_sorted(rows.ids.begin(), rows.ids.end())) rows.sort_by_id();
  ShardData d;
  d.slice.resize(rows.size());
  const Placement placement = c.placement();
  for (size_t i = 0; i < rows.size(); ++i) {
    d.slice[i] = static_cast<int32_t>(placement.slice(rows.key(i), rows.weight(i)));
  }
  d.rows = std::move(rows);
  return d;
}

std::string ids_hash(const std::vector<int64_t>& sorted_ids) {
  Sha256 h;
  for (int64_t id : sorted_ids) h.update_u64(static_cast<uint64_t>(id));
  return h.hex();
}

std::string identity_hash(const Config& c, const nlohmann::json& environment) {
  return sha256_hex(c.training_json() + "\n" + environment.dump());
}

int64_t stage_work(const Config& c, const ShardData& data, int64_t first_stage) {
  const auto epochs = stage_epochs(c.train.epochs, c.sisa.slices);
  int64_t work = 0;
  for (int64_t r = first_stage; r <= c.sisa.slices; ++r) {
    int64_t n = 0;
    for (int32_t s : data.slice) n += s <= r;
    work += n * epochs[r];
  }
  return work;
}

std::vector<CheckpointRef> train_stages(const StageRun& run, int64_t shard, int64_t generation,
                                        const ShardData& data, const ModelState& start,
                                        int64_t first_stage, std::vector<ModelState>* states) {
  const Config& c = *run.config;
  ShardTrainer trainer(c, shard, run.trainer);
  std::vector<CheckpointRef> refs;
  ModelState state = start;
  for (int64_t r = first_stage; r <= c.sisa.slices; ++r) {
    state = trainer.train_stage(state, r, data, [&](const EpochReport& e) {
      if (run.trainer.stop && run.trainer.stop->load()) {
        throw InterruptedError("[shard " + std::to_string(shard) + "] training interrupted in stage " +
                               std::to_string(r));
      }
      if (run.progress) run.progress->advance(e.samples);
      if (run.loop_seconds) *run.loop_seconds += e.seconds;
      spdlog::info("[shard {}][stage {}] epoch {}/{} loss {:.4f} {:.0f} samples/s{}", e.shard,
                   e.stage, e.epoch, e.epochs, e.mean_loss,
                   static_cast<double>(e.samples) / std::max(e.seconds, 1e-9),
                   run.progress ? fmt::format(" {}% {}", run.progress->percent(),
                                              run.progress->eta())
                                : std::string());
    });
    refs.push_back(checkpoint_ref(run.dir, run.identity_hash, shard, r, generation, data, state));
    if (run.on_checkpoint) run.on_checkpoint(refs.back());
    if (states) states->push_back(state);
  }
  return refs;
}

CheckpointRef checkpoint_ref(const RunDir* dir, const std::string& identity, int64_t shard,
                             int64_t stage, int64_t generation, const ShardData& data,
                             const ModelState& state) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < data.slice.size(); ++i) {
    if (data.slice[i] <= stage) ids.push_back(data.rows.ids[i]);
  }
  CheckpointRef ref;
  ref.stage = stage;
  ref.n_samples = static_cast<int64_t>(ids.size());
  ref.fingerprint = state.fingerprint();
  ref.state_digest = state.state_digest();
  if (dir) {
    const CheckpointInfo info{shard, stage, ref.n_samples, identity, ids_hash(ids), ref.fingerprint,
                              ref.state_digest};
    ref.file = write_run_file(*dir, checkpoint_file(shard, stage, generation),
                              encode_checkpoint(state, info));
  }
  return ref;
}

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
                        "directory, or move the whole run directory instead:" + names);
}

void require_run_or_empty(const std::string& run_dir) {
  std::error_code ec;
  if (!fs::exists(run_dir, ec)) return;
  if (!fs::is_directory(run_dir, ec)) throw UsageError("--run-dir '" + run_dir + "' is not a directory");
  // An interrupted train has taken the lock (its first act) and holds only
  // files named as sisa names them; anything else may be the user's.
  static const std::regex ours(
      R"((LOCK|config\.yaml|MANIFEST\.json|deletions\.log|data/shard-\d+\.g\d+\.h5|)"
      R"(ckpt/shard-\d+/stage-\d+\.g\d+\.h5|journal/shard-\d+\.json|receipts/\d+\.json|)"
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
                   format_names(other) + "); sisa train removes every file of its run directory that it "
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

std::string journal_file(int64_t shard) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "journal/shard-%03lld.json", static_cast<long long>(shard));
  return buf;
}

void write_journal(const RunDir& run, int64_t shard, const ShardJournal& j) {
  nlohmann::json cks = nlohmann::json::array();
  for (const auto& c : j.checkpoints) cks.push_back(ref_json(c));
  const std::string text = nlohmann::json{{"format", "sisa-journal"},
                                          {"format_version", 1},
                                          {"shard", shard},
                                          {"identity_hash", j.identity_hash},
                                          {"ids_hash", j.ids_hash},
                                          {"store", ref_json(j.store)},
                                          {"checkpoints", cks}}
                               .dump(1);
  write_run_file(run, journal_file(shard), std::vector<uint8_t>(text.begin(), text.end()));
}

std::unique_ptr<ShardJournal> read_journal(const RunDir& run, int64_t shard) {
  const std::string path = run.path(journal_file(shard));
  if (!fs::exists(path)) return nullptr;
  try {
    const auto j = nlohmann::json::parse(read_text(path));
    if (j.at("format") != "sisa-journal" || j.at("format_version") != 1) return nullptr;
    auto out = std::make_unique<ShardJournal>();
    out->identity_hash = j.at("identity_hash");
    out->ids_hash = j.at("ids_hash");
    out->store = ref_from(j.at("store"));
    for (const auto& c : j.at("checkpoints")) out->checkpoints.push_back(checkpoint_from(c));
    check_inside_run(out->store.path);
    for (const auto& c : out->checkpoints) check_inside_run(c.file.path);
    return out;
  } catch (const std::exception& e) {
    spdlog::warn("{}: unreadable progress journal ({}); the shard starts over", path, e.what());
    return nullptr;
  }
}

}  // namespace sisa
