// MANIFEST.json: the one consistent generation of every shard (store and
// checkpoints, each with its whole-file SHA-256), the run's identity and the
// deleted ids. Replaced atomically; everything it does not name is garbage.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sisa {

// 2: a "checksum" (SHA-256 of the rest of the JSON, dumped compactly with
// sorted keys) catches edits and damage inside the file. Version 1 is read.
inline constexpr int kManifestFormatVersion = 2;

struct FileRef {
  std::string path;    // relative to the run directory
  std::string sha256;  // of the whole file
};

struct CheckpointRef {
  int64_t stage = 0;
  FileRef file;
  int64_t n_samples = 0;
  std::string fingerprint;
  std::string state_digest;
};

struct ShardEntry {
  int64_t shard = 0;
  int64_t generation = 0;  // bumped by every deletion that touches the shard
  int64_t n_samples = 0;
  uint64_t last_seq = 0;  // last deletion request applied to this shard
  std::string ids_hash;   // of the sorted ids in the store (lets repair check a rebuilt store)
  FileRef store;
  std::vector<CheckpointRef> checkpoints;  // stages 0..R

  const CheckpointRef& final_checkpoint() const { return checkpoints.back(); }
};

// A shared artifact: a file the run uses but does not train (a pretrained
// backbone, a tokenizer model), copied into the run under a content name.
struct ArtifactRef {
  std::string key;  // the config key that names it, e.g. "model.backbone"
  FileRef file;     // artifacts/<sha256><ext>
};

// The LOO student (issue #11): one model derived from every shard's rows. It
// is approximate after a deletion (a leave-one-out fine-tune, not a retrain),
// so it has one checkpoint, replaced (a new generation) by every deletion.
struct StudentEntry {
  int64_t generation = 0;             // bumped by every LOO update
  CheckpointRef checkpoint;           // stage 1: the student trains as one stage
  std::vector<uint64_t> loo_updates;  // the deletion requests that fine-tuned it, in order
  // Held-out rows of data.test (a shard store) that calibrate the update's
  // stopping rule (loo.stop: criterion); absent in runs trained before it.
  std::optional<FileRef> heldout;
};

struct Manifest {
  int format_version = kManifestFormatVersion;  // as read; always written as the current one
  std::string identity_hash;                    // training config + environment
  std::string config_hash;
  nlohmann::json environment;
  FileRef config;  // config.yaml
  int64_t shards = 0, slices = 0;
  uint64_t last_seq = 0;  // last deletion request applied to the run
  std::vector<ShardEntry> entries;
  std::vector<int64_t> deleted_ids;     // sorted; ids only, never contents
  std::vector<int64_t> deleted_groups;  // sorted
  // Ids `train --exclude-ids` trained without (sorted): a run that never
  // held them, the gold standard a deletion is compared with. Not deleted:
  // forgetting one is an unknown id.
  std::vector<int64_t> excluded_ids;
  std::vector<FileRef> receipts;
  std::vector<ArtifactRef> artifacts;  // written only when there are any (older manifests lack the key)
  // Weighted placement: the expected cost of a deletion at train time
  // (src/deletion_cost.h); null otherwise, and then not written.
  nlohmann::json deletion_cost;
  // A run with loo.student (written only then).
  std::optional<StudentEntry> student;

  nlohmann::json to_json() const;
  static Manifest from_json(const nlohmann::json& j, const std::string& path);
  std::set<std::string> referenced_files() const;
};

// JSON forms shared by the manifest and the coordinator's messages.
nlohmann::json ref_json(const FileRef& f);
FileRef ref_from(const nlohmann::json& j);
// CorruptionError if `rel` is not a plain relative path inside the run.
void check_inside_run(const std::string& rel);
nlohmann::json ref_json(const CheckpointRef& c);
CheckpointRef checkpoint_from(const nlohmann::json& j);

// The checksum of a manifest's JSON, its "checksum" field left out.
std::string manifest_checksum(const nlohmann::json& j);

std::string manifest_path(const std::string& run_dir);
bool has_manifest(const std::string& run_dir);
Manifest load_manifest(const std::string& run_dir);  // CorruptionError on damage
class Env;
void save_manifest(Env& env, const std::string& run_dir, const Manifest& m);

}  // namespace sisa
