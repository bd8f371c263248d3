// A run directory's layout and the two ways into it: the names of its files
// (generations make every rewrite a new file, so the manifest switch is the
// only in-place change), an atomic write that returns the file's reference,
// and a read that checks the SHA-256 the manifest recorded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/manifest.h"
#include "util/fs.h"

namespace sisa {

// Relative paths inside a run directory.
std::string store_file(int64_t shard, int64_t generation);
std::string checkpoint_file(int64_t shard, int64_t stage, int64_t generation);
std::string receipt_file(uint64_t seq);
inline const char* kConfigFile = "config.yaml";
inline const char* kLogFile = "deletions.log";

std::string in_run(const std::string& run_dir, const std::string& rel);

// A run directory and the Env its durable writes go through.
struct RunDir {
  RunDir(std::string root_dir, Env* file_env) : root(std::move(root_dir)), env(file_env ? file_env : &Env::posix()) {}
  std::string path(const std::string& rel) const { return in_run(root, rel); }
  std::string root;
  Env* env;
};

// Atomically writes `bytes` at run/rel and returns its reference.
FileRef write_run_file(const RunDir& run, const std::string& rel, const std::vector<uint8_t>& bytes);
// Reads a referenced file; CorruptionError if its SHA-256 differs.
MappedFile read_verified(const RunDir& run, const FileRef& ref);

}  // namespace sisa
