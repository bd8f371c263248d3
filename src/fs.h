// Every durable byte goes through here: atomic replace (temp, fsync, rename,
// fsync dir), strict reads, directory creation and the run lock. Keeping all
// file access in one module is the seam crash tests hook into.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sisa {

// Writes `bytes` to `path` so a crash leaves either the old or the new file.
void atomic_write(const std::string& path, const void* data, size_t n);
inline void atomic_write(const std::string& path, const std::vector<uint8_t>& bytes) {
  atomic_write(path, bytes.data(), bytes.size());
}
inline void atomic_write(const std::string& path, const std::string& text) {
  atomic_write(path, text.data(), text.size());
}

std::vector<uint8_t> read_file(const std::string& path);  // IOError names the path

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

// Appends and fsyncs (the deletion log). Creates the file (0600) if needed.
void append_durable(const std::string& path, const void* data, size_t n);

void fsync_dir(const std::string& dir);
// mkdir -p with mode 0700 for each created component.
void make_dirs(const std::string& dir);
// Unlinks a file and fsyncs its directory. Missing files are fine.
void remove_durable(const std::string& path);

// Exclusive flock on <run_dir>/LOCK for a writer's lifetime. A second writer
// gets LockedError "run directory D is locked by pid N".
class RunLock {
 public:
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace sisa
