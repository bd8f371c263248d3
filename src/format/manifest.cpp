#include "format/manifest.h"

#include <algorithm>
#include <filesystem>

#include "sisa/errors.h"
#include "util/fs.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace sisa {

nlohmann::json ref_json(const FileRef& f) { return {{"path", f.path}, {"sha256", f.sha256}}; }

FileRef ref_from(const nlohmann::json& j) {
  return {j.at("path").get<std::string>(), j.at("sha256").get<std::string>()};
}

void check_inside_run(const std::string& rel) {
  // Relative, normal, no "..": a damaged or edited manifest or journal must
  // not steer a read or a purge out of the run.
  const fs::path p(rel);
  const bool inside = !rel.empty() && p.is_relative() && p.lexically_normal() == p &&
                      std::none_of(p.begin(), p.end(), [](const fs::path& c) { return c == ".." || c == "."; });
  if (!inside) throw CorruptionError("file reference '" + rel + "' does not name a file inside the run directory");
}

nlohmann::json ref_json(const CheckpointRef& c) {
  return {{"stage", c.stage},
          {"file", ref_json(c.file)},
          {"n_samples", c.n_samples},
          {"fingerprint", c.fingerprint},
          {"state_digest", c.state_digest}};
}

CheckpointRef checkpoint_from(const nlohmann::json& j) {
  CheckpointRef r;
  r.stage = j.at("stage");
  r.file = ref_from(j.at("file"));
  r.n_samples = j.at("n_samples");
  r.fingerprint = j.at("fingerprint");
  r.state_digest = j.at("state_digest");
  return r;
}

nlohmann::json Manifest::to_json() const {
  nlohmann::json shards_json = nlohmann::json::array();
  for (const auto& e : entries) {
    nlohmann::json ck = nlohmann::json::array();
    for (const auto& c : e.checkpoints) ck.push_back(ref_json(c));
    shards_json.push_back({{"shard", e.shard},
                           {"generation", e.generation},
                           {"n_samples", e.n_samples},
                           {"ids_hash", e.ids_hash},
                           {"last_seq", e.last_seq},
                           {"store", ref_json(e.store)},
                           {"checkpoints", ck}});
  }
  nlohmann::json rec = nlohmann::json::array();
  for (const auto& r : receipts) rec.push_back(ref_json(r));
  nlohmann::json j = {{"format", "sisa-manifest"},
                      {"format_version", kManifestFormatVersion},
                      {"identity_hash", identity_hash},
                      {"config_hash", config_hash},
                      {"environment", environment},
                      {"config", ref_json(config)},
                      {"shards", shards},
                      {"slices", slices},
                      {"last_seq", last_seq},
                      {"shard_entries", shards_json},
                      {"deleted_ids", deleted_ids},
                      {"deleted_groups", deleted_groups},
                      {"receipts", rec}};
  if (!excluded_ids.empty()) j["excluded_ids"] = excluded_ids;
  if (!artifacts.empty()) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : artifacts) a.push_back({{"key", r.key}, {"file", ref_json(r.file)}});
    j["artifacts"] = a;
  }
  if (!deletion_cost.is_null()) j["expected_deletion_cost"] = deletion_cost;
  if (student) {
    j["student"] = {{"generation", student->generation},
                    {"checkpoint", ref_json(student->checkpoint)},
                    {"loo_updates", student->loo_updates}};
    if (student->heldout) j["student"]["heldout"] = ref_json(*student->heldout);
  }

  return j;
}

Manifest Manifest::from_json(const nlohmann::json& j, const std::string& path) {
  try {
    if (j.at("format") != "sisa-manifest") throw CorruptionError(path + ": not a sisa manifest");
    const auto version = j.at("format_version");
    if (version != kManifestFormatVersion && version != 1) {
      throw CorruptionError(path + ": manifest format version " + version.dump() + " is not supported");
    }
    // Version 1 had no checksum; it is read as it is and written as version 2.
    if (version != 1 && manifest_checksum(j) != j.at("checksum").get<std::string>()) {
      throw CorruptionError(path +
                            ": checksum does not match its content (the file was edited or damaged; "
                            "it cannot be rebuilt: restore it from a backup of the run)");
    }
    Manifest m;
    m.format_version = version.get<int>();
    m.identity_hash = j.at("identity_hash");
    m.config_hash = j.at("config_hash");
    m.environment = j.at("environment");
    m.config = ref_from(j.at("config"));
    m.shards = j.at("shards");
    m.slices = j.at("slices");
    m.last_seq = j.at("last_seq");
    for (const auto& s : j.at("shard_entries")) {
      ShardEntry e;
      e.shard = s.at("shard");
      e.generation = s.at("generation");
      e.n_samples = s.at("n_samples");
      e.ids_hash = s.at("ids_hash");
      e.last_seq = s.at("last_seq");
      e.store = ref_from(s.at("store"));
      for (const auto& c : s.at("checkpoints")) e.checkpoints.push_back(checkpoint_from(c));
      if (static_cast<int64_t>(e.checkpoints.size()) != m.slices + 1) {
        throw CorruptionError(path + ": shard " + std::to_string(e.shard) + " lists " +
                              std::to_string(e.checkpoints.size()) + " checkpoints, expected " +
                              std::to_string(m.slices + 1));
      }
      m.entries.push_back(std::move(e));
    }
    if (static_cast<int64_t>(m.entries.size()) != m.shards) {
      throw CorruptionError(path + ": lists " + std::to_string(m.entries.size()) + " shards, expected " +
                            std::to_string(m.shards));
    }
    m.deleted_ids = j.at("deleted_ids").get<std::vector<int64_t>>();
    m.deleted_groups = j.at("deleted_groups").get<std::vector<int64_t>>();
    if (j.contains("excluded_ids")) m.excluded_ids = j.at("excluded_ids").get<std::vector<int64_t>>();
    for (const auto& r : j.at("receipts")) m.receipts.push_back(ref_from(r));
    if (j.contains("expected_deletion_cost")) m.deletion_cost = j.at("expected_deletion_cost");

    if (j.contains("artifacts")) {
      for (const auto& a : j.at("artifacts")) m.artifacts.push_back({a.at("key"), ref_from(a.at("file"))});
    }
    if (j.contains("student")) {
      const auto& s = j.at("student");
      m.student = StudentEntry{s.at("generation"), checkpoint_from(s.at("checkpoint")),
                               s.at("loo_updates").get<std::vector<uint64_t>>(), std::nullopt};
      if (s.contains("heldout")) m.student->heldout = ref_from(s.at("heldout"));
    }
    for (const auto& f : m.referenced_files()) check_inside_run(f);
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw CorruptionError(path + ": malformed manifest: " + e.what());
  } catch (const CorruptionError& e) {
    if (std::string(e.what()).rfind(path, 0) == 0) throw;
    throw CorruptionError(path + ": " + e.what());
  }
}

std::string manifest_checksum(const nlohmann::json& j) {
  nlohmann::json content = j;
  content.erase("checksum");
  return sha256_hex(content.dump());
}

std::set<std::string> Manifest::referenced_files() const {
  std::set<std::string> files{config.path};
  for (const auto& e : entries) {
    files.insert(e.store.path);
    for (const auto& c : e.checkpoints) files.insert(c.file.path);
  }
  for (const auto& r : receipts) files.insert(r.path);
  for (const auto& a : artifacts) files.insert(a.file.path);
  if (student) files.insert(student->checkpoint.file.path);
  if (student && student->heldout) files.insert(student->heldout->path);
  return files;
}

std::string manifest_path(const std::string& run_dir) { return (fs::path(run_dir) / "MANIFEST.json").string(); }

bool has_manifest(const std::string& run_dir) { return fs::exists(manifest_path(run_dir)); }

Manifest load_manifest(const std::string& run_dir) {
  const std::string path = manifest_path(run_dir);
  if (!fs::exists(path)) {
    throw UsageError("'" + run_dir + "' is not a trained sisa run (no MANIFEST.json)");
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw CorruptionError(path + ": not valid JSON: " + e.what());
  }
  return Manifest::from_json(j, path);
}

void save_manifest(Env& env, const std::string& run_dir, const Manifest& m) {
  nlohmann::json j = m.to_json();
  j["checksum"] = manifest_checksum(j);
  atomic_write(env, manifest_path(run_dir), j.dump(1) + "\n");
}

}  // namespace sisa
