// Fault injection through the Env seam (src/util/fs.h), for the crash-safety
// tests (tests/durability_test.cpp, tests/loo_test.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "sisa/errors.h"
#include "util/fs.h"

namespace sisa::test {

struct InjectedCrash {};  // deliberately not a std::exception: nothing may swallow it

// Delegates to the real file system and fails at the Nth durable step: either
// a crash (a partial effect, then InjectedCrash) or an I/O error (IOError).
class FaultEnv : public Env {
 public:
  enum class Mode { kCrash, kError };
  FaultEnv(int64_t fail_at, Mode mode) : fail_at_(fail_at), mode_(mode) {}
  int64_t steps() const { return steps_; }

  void write_file(const std::string& path, const void* data, size_t n) override {
    if (fail(path)) {
      Env::posix().write_file(path, data, n / 2);  // a torn write
      throw InjectedCrash{};
    }
    Env::posix().write_file(path, data, n);
  }
  void sync_file(const std::string& path) override {
    if (fail(path)) throw InjectedCrash{};
    Env::posix().sync_file(path);
  }
  void rename_file(const std::string& from, const std::string& to) override {
    if (fail(to)) throw InjectedCrash{};
    Env::posix().rename_file(from, to);
  }
  void sync_dir(const std::string& dir) override {
    if (fail(dir)) throw InjectedCrash{};
    Env::posix().sync_dir(dir);
  }
  void append_file(const std::string& path, const void* data, size_t n) override {
    if (fail(path)) {
      Env::posix().append_file(path, data, n / 2);  // a torn record
      throw InjectedCrash{};
    }
    Env::posix().append_file(path, data, n);
  }
  void remove_file(const std::string& path) override {
    if (fail(path)) throw InjectedCrash{};
    Env::posix().remove_file(path);
  }
  void truncate_file(const std::string& path, uint64_t size) override {
    if (fail(path)) throw InjectedCrash{};
    Env::posix().truncate_file(path, size);
  }

 private:
  // True if this step should crash; throws IOError for an error injection.
  bool fail(const std::string& path) {
    if (++steps_ != fail_at_) return false;
    if (mode_ == Mode::kError) {
      throw IOError("injected I/O error at step " + std::to_string(steps_) + " on '" + path + "'");
    }
    return true;
  }
  int64_t fail_at_;
  Mode mode_;
  int64_t steps_ = 0;
};

}  // namespace sisa::test
