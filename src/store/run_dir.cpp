#include "store/run_dir.h"

#include <cstdio>
#include <filesystem>

#include "sisa/errors.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace sisa {

std::string store_file(int64_t shard, int64_t generation) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "data/shard-%03lld.g%lld.h5", static_cast<long long>(shard),
                static_cast<long long>(generation));
  return buf;
}

std::string checkpoint_file(int64_t shard, int64_t stage, int64_t generation) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "ckpt/shard-%03lld/stage-%02lld.g%lld.h5", static_cast<long long>(shard),
                static_cast<long long>(stage), static_cast<long long>(generation));
  return buf;
}

std::string receipt_file(uint64_t seq) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "receipts/%06llu.json", static_cast<unsigned long long>(seq));
  return buf;
}

std::string in_run(const std::string& run_dir, const std::string& rel) { return (fs::path(run_dir) / rel).string(); }

FileRef write_run_file(const RunDir& run, const std::string& rel, const std::vector<uint8_t>& bytes) {
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

}  // namespace sisa
