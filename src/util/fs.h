// Every durable byte goes through here: atomic replace (temp, fsync, rename,
// fsync dir), strict reads, directory creation and the run lock. Keeping all
// file access in one module is the seam crash tests hook into.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sisa/errors.h"

namespace sisa {

// The seam every durable write goes through (as LevelDB's Env): each call is
// one step a crash can interrupt, so tests substitute an Env that fails or
// "crashes" at the Nth step and then prove recovery.
class Env {
 public:
  virtual ~Env() = default;
  // The real filesystem. SISA_UNSAFE_NO_SYNC=1 skips fsync: for measuring
  // the cost of durability in benchmarks only, never for real runs.
  static Env& posix();

  // Creates or truncates `path` (mode 0600) and writes all bytes, unsynced.
  virtual void write_file(const std::string& path, const void* data, size_t n) = 0;
  virtual void sync_file(const std::string& path) = 0;
  virtual void rename_file(const std::string& from, const std::string& to) = 0;
  virtual void sync_dir(const std::string& dir) = 0;
  // Appends (creating the file 0600 if needed) and syncs the data.
  virtual void append_file(const std::string& path, const void* data, size_t n) = 0;
  virtual void remove_file(const std::string& path) = 0;  // missing is fine
  virtual void truncate_file(const std::string& path, uint64_t size) = 0;
};

// Writes `bytes` to `path` so a crash leaves either the old or the new file:
// temp file, fsync, rename, fsync the directory.
void atomic_write(Env& env, const std::string& path, const void* data, size_t n);
inline void atomic_write(Env& env, const std::string& path, const std::vector<uint8_t>& bytes) {
  atomic_write(env, path, bytes.data(), bytes.size());
}
inline void atomic_write(Env& env, const std::string& path, const std::string& text) {
  atomic_write(env, path, text.data(), text.size());
}
// Appends and syncs (the deletion log); syncs the directory if the file is new.
void append_durable(Env& env, const std::string& path, const void* data, size_t n);
// Unlinks a file and syncs its directory.
void remove_durable(Env& env, const std::string& path);

// Files inside a run directory (listed as a closed world before they are
// read, so never a FIFO or a device). IOError names the path.
std::vector<uint8_t> read_file(const std::string& path);

// A file the user names (a flag or a config key): what it is called in
// errors, the most bytes it may hold, and the exit code of a file that is
// not a regular file or is too large (docs/cli.md, "Input files").
struct InputFile {
  std::string what;  // "--token-file", "data.tokenizer", ...
  uint64_t max_bytes = 0;
  ExitCode error = ExitCode::kUsage;
};
// Bounds of the user's input files (docs/cli.md lists them).
constexpr uint64_t kMiB = uint64_t{1} << 20, kGiB = uint64_t{1} << 30;
constexpr uint64_t kMaxConfigBytes = 16 * kMiB;      // YAML configs
constexpr uint64_t kMaxTokenFileBytes = 4096;        // --token-file
constexpr uint64_t kMaxIdFileBytes = 1 * kGiB;       // --ids-file, --groups-file, --exclude-ids (and stdin)
constexpr uint64_t kMaxTokenizerBytes = 256 * kMiB;  // a SentencePiece model
constexpr uint64_t kMaxSecretsBytes = 256 * kMiB;    // sisa audit --secrets
constexpr uint64_t kMaxArtifactBytes = 16 * kGiB;    // a backbone or other shared artifact
constexpr uint64_t kMaxCorpusBytes = 16 * kGiB;      // pretraining and tokenizer corpora
constexpr uint64_t kMaxDataFileBytes = 64 * kGiB;    // training and test data

// Checks that `path` is a regular file of at most spec.max_bytes, without
// blocking on a FIFO; returns its size. The error (of spec.error's type)
// names spec.what, the path and the bound. IOError if it cannot be opened.
uint64_t check_input_file(const std::string& path, const InputFile& spec);
// check_input_file, then the whole file.
std::vector<uint8_t> read_input_file(const std::string& path, const InputFile& spec);
// Standard input (a pipe, a file or a terminal) to its end, refused past
// spec.max_bytes: `--ids-file -`.
std::vector<uint8_t> read_stdin(const InputFile& spec);

// A read-only view of bytes owned elsewhere (a vector or a MappedFile).
struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;
  ByteView() = default;
  ByteView(const uint8_t* d, size_t n) : data(d), size(n) {}
  ByteView(const std::vector<uint8_t>& v) : data(v.data()), size(v.size()) {}  // NOLINT: implicit
};

// A whole file mapped read-only and pre-faulted (MAP_POPULATE): large stores
// are hashed and decoded in place, without a copy into fresh heap pages.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // IOError names the path
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ByteView view() const { return {data_, size_}; }
  operator ByteView() const { return view(); }  // NOLINT: implicit

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};
std::string read_text(const std::string& path);

// mkdir -p with mode 0700 for each created component.
void make_dirs(const std::string& dir);

// flock on <run_dir>/LOCK for a command's lifetime: exclusive for a writer
// (a second one gets LockedError "run directory D is locked by pid N"),
// shared for a reader that needs a consistent view (fsck: LockedError
// "busy" while a writer runs). The lock file is never followed if it is a
// symbolic link.
class RunLock {
 public:
  enum class Mode { kWriter, kReader };
  explicit RunLock(const std::string& run_dir, Mode mode = Mode::kWriter);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace sisa
