#include "util/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "sisa/errors.h"

namespace fs = std::filesystem;

namespace sisa {
namespace {

[[noreturn]] void throw_io(const std::string& what, const std::string& path) {
  throw IOError(what + " '" + path + "': " + std::strerror(errno));
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_io("cannot write", path);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

std::string parent_of(const std::string& path) {
  std::string d = fs::path(path).parent_path().string();
  return d.empty() ? "." : d;
}

}  // namespace

namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw_io("cannot open", path);
  if (::fsync(fd) != 0) {
    ::close(fd);
    throw_io("cannot sync", path);
  }
  ::close(fd);
}

class PosixEnv : public Env {
 public:
  PosixEnv() {
    const char* v = std::getenv("SISA_UNSAFE_NO_SYNC");
    sync_ = !(v && std::string(v) == "1");
  }

  void write_file(const std::string& path, const void* data, size_t n) override {
    // O_NOFOLLOW: a symbolic link planted in the run never redirects a write.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw_io("cannot create", path);
    try {
      write_all(fd, data, n, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  }
  void sync_file(const std::string& path) override {
    if (sync_) fsync_path(path, O_RDONLY);
  }
  void rename_file(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) throw_io("cannot rename into place", to);
  }
  void sync_dir(const std::string& dir) override {
    if (sync_) fsync_path(dir, O_RDONLY | O_DIRECTORY);
  }
  void append_file(const std::string& path, const void* data, size_t n) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw_io("cannot open for append", path);
    try {
      write_all(fd, data, n, path);
      if (sync_ && ::fdatasync(fd) != 0) throw_io("cannot sync", path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  }
  void remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_io("cannot remove", path);
  }
  void truncate_file(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) throw_io("cannot truncate", path);
  }

 private:
  bool sync_ = true;
};

}  // namespace

Env& Env::posix() {
  static PosixEnv env;
  return env;
}

void atomic_write(Env& env, const std::string& path, const void* data, size_t n) {
  const std::string tmp = path + ".tmp";
  try {
    env.write_file(tmp, data, n);
    env.sync_file(tmp);
    env.rename_file(tmp, path);
  } catch (const std::exception&) {
    // A full disk (or another error) must not leave a partial temp file
    // until the next writer runs. Best effort: the error that matters is
    // the one being thrown. (A crash leaves it; every writer's start removes it.)
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  env.sync_dir(parent_of(path));
}

namespace {

// Opens `path` read-only; sets its size. The caller closes the descriptor.
int open_for_read(const std::string& path, size_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_io("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_io("cannot stat", path);
  }
  *size = static_cast<size_t>(st.st_size);
  return fd;
}

// Reads `fd` to its end (closing it), not to a size fstat gave: a file may
// grow while it is read. More than `limit` bytes: false, with the first
// limit + 1 bytes read.
bool read_to_end(int fd, const std::string& path, uint64_t limit, size_t size_hint, std::vector<uint8_t>* out) {
  std::vector<uint8_t>& bytes = *out;
  bytes.assign(static_cast<size_t>(std::min<uint64_t>(std::max<size_t>(size_hint + 1, 4096), limit + 1)), 0);
  size_t got = 0;
  for (;;) {
    if (got == bytes.size()) {
      if (got > limit) break;
      bytes.resize(static_cast<size_t>(std::min<uint64_t>(uint64_t{bytes.size()} * 2, limit + 1)));
    }
    const ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      throw_io("cannot read", path);
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  bytes.resize(got);
  return got <= limit;
}

std::string bound_text(uint64_t bytes) {
  if (bytes >= kGiB && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + " GiB";
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  return std::to_string(bytes) + " bytes";
}

[[noreturn]] void too_large(const std::string& path, const InputFile& spec) {
  throw_error(spec.error, spec.what + ": '" + path + "' holds more than " + bound_text(spec.max_bytes) +
                              ", the most sisa reads for it");
}

// Opens an input file that must be regular (O_NONBLOCK: opening a FIFO
// never waits for a writer); sets its size. The caller closes it.
int open_input(const std::string& path, const InputFile& spec, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) throw_error(spec.error, spec.what + ": '" + path + "' does not exist");
    throw_io("cannot open", path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_io("cannot stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const char* kind = S_ISDIR(st.st_mode)                          ? "a directory"
                       : S_ISFIFO(st.st_mode)                       ? "a FIFO (named pipe)"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                       : S_ISSOCK(st.st_mode)                       ? "a socket"
                                                                    : "not a regular file";
    throw_error(spec.error, spec.what + ": '" + path + "' is " + kind + "; sisa reads only regular files here");
  }
  *size = static_cast<uint64_t>(st.st_size);
  if (*size > spec.max_bytes) {
    ::close(fd);
    too_large(path, spec);
  }
  return fd;
}

}  // namespace

std::vector<uint8_t> read_file(const std::string& path) {
  size_t size = 0;
  const int fd = open_for_read(path, &size);
  std::vector<uint8_t> bytes;
  read_to_end(fd, path, std::numeric_limits<uint64_t>::max() - 1, size, &bytes);
  return bytes;
}

uint64_t check_input_file(const std::string& path, const InputFile& spec) {
  uint64_t size = 0;
  ::close(open_input(path, spec, &size));
  return size;
}

std::vector<uint8_t> read_input_file(const std::string& path, const InputFile& spec) {
  uint64_t size = 0;
  const int fd = open_input(path, spec, &size);
  std::vector<uint8_t> bytes;
  if (!read_to_end(fd, path, spec.max_bytes, static_cast<size_t>(size), &bytes)) too_large(path, spec);
  return bytes;
}

std::vector<uint8_t> read_stdin(const InputFile& spec) {
  const int fd = ::dup(STDIN_FILENO);
  if (fd < 0) throw_io("cannot read", "standard input");
  std::vector<uint8_t> bytes;
  if (!read_to_end(fd, "standard input", spec.max_bytes, 0, &bytes)) too_large("-", spec);
  return bytes;
}

MappedFile::MappedFile(const std::string& path) {
  const int fd = open_for_read(path, &size_);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw_io("cannot map", path);
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

std::string read_text(const std::string& path) {
  const auto b = read_file(path);
  return std::string(b.begin(), b.end());
}

void append_durable(Env& env, const std::string& path, const void* data, size_t n) {
  const bool existed = fs::exists(path);
  env.append_file(path, data, n);
  if (!existed) env.sync_dir(parent_of(path));
}

void make_dirs(const std::string& dir) {
  fs::path acc;
  for (const auto& part : fs::path(dir)) {
    acc /= part;
    if (acc.empty() || fs::exists(acc)) continue;
    if (::mkdir(acc.c_str(), 0700) != 0 && errno != EEXIST) throw_io("cannot create directory", acc);
  }
}

void remove_durable(Env& env, const std::string& path) {
  env.remove_file(path);
  env.sync_dir(parent_of(path));
}

RunLock::RunLock(const std::string& run_dir, Mode mode) {
  const std::string path = (fs::path(run_dir) / "LOCK").string();
  const bool exclusive = mode == Mode::kWriter;
  fd_ = ::open(path.c_str(), (exclusive ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) {
    if (!exclusive && errno == ENOENT) return;  // no writer ever ran: nothing to wait for
    throw_io("cannot open lock file", path);
  }
  if (::flock(fd_, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t r = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = r > 0 ? std::string(buf, static_cast<size_t>(r)) : "?";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (!exclusive) {
      throw LockedError("run directory '" + run_dir + "' is busy: a writer (pid " + pid +
                        ") is changing it; check it again when that command is done");
    }
    throw LockedError("run directory '" + run_dir + "' is locked by pid " + pid +
                      " (another sisa writer is running, or sisa fsck is checking it)");
  }
  if (!exclusive) return;
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] ssize_t w = ::pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

}  // namespace sisa
