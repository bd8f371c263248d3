#include "store/run_files.h"

#include <algorithm>

#include "format/checkpoint.h"
#include "format/shard_store.h"
#include "sisa/errors.h"
#include "store/artifacts.h"
#include "util/sha256.h"

namespace sisa {

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

std::string ids_hash(const std::vector<int64_t>& sorted_ids) {
  Sha256 h;
  for (int64_t id : sorted_ids) h.update_u64(static_cast<uint64_t>(id));
  return h.hex();
}

}  // namespace sisa
