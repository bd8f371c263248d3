// Typed errors. Every message names the file, key or id at fault; the exit
// code of the `sisa` command is a property of the error type (docs/cli.md).
#pragma once

#include <stdexcept>
#include <string>

namespace sisa {

// One table for every command. Keep docs/cli.md in step.
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,      // a bug or an unexpected library failure
  kUsage = 2,         // bad flags, malformed or invalid config
  kData = 3,          // bad input data, unknown or duplicate ids
  kCorruption = 4,    // a file does not match its recorded hash or format
  kLocked = 5,        // another writer holds the run directory
  kEnvironment = 6,   // the run was trained in a different numeric environment
  kIO = 7,            // the operating system refused a read or write
  kVerifyFailed = 8,  // `verify` found a shard that differs from a fresh retrain
  kInterrupted = 9,   // stopped by SIGINT/SIGTERM; accepted deletions resume at the next start
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

#define SISA_DEFINE_ERROR(Name, Code)                                   \
  class Name : public Error {                                           \
   public:                                                              \
    explicit Name(const std::string& message) : Error(Code, message) {} \
  };

SISA_DEFINE_ERROR(UsageError, ExitCode::kUsage)
SISA_DEFINE_ERROR(ConfigError, ExitCode::kUsage)
SISA_DEFINE_ERROR(DataError, ExitCode::kData)
SISA_DEFINE_ERROR(CorruptionError, ExitCode::kCorruption)
SISA_DEFINE_ERROR(LockedError, ExitCode::kLocked)
SISA_DEFINE_ERROR(EnvironmentError, ExitCode::kEnvironment)
SISA_DEFINE_ERROR(IOError, ExitCode::kIO)
SISA_DEFINE_ERROR(VerifyError, ExitCode::kVerifyFailed)
SISA_DEFINE_ERROR(InterruptedError, ExitCode::kInterrupted)

#undef SISA_DEFINE_ERROR

// Every shard is empty (every sample was deleted): there is nothing to
// predict with. A DataError (exit 3); `serve` answers 409.
class NoModelError : public DataError {
 public:
  using DataError::DataError;
};

// Throws the error type that `code` stands for: an error that crossed a
// process boundary (a worker rank's) keeps its type, not just its code.
[[noreturn]] inline void throw_error(ExitCode code, const std::string& message) {
  switch (code) {
    case ExitCode::kUsage:
      throw UsageError(message);
    case ExitCode::kData:
      throw DataError(message);
    case ExitCode::kCorruption:
      throw CorruptionError(message);
    case ExitCode::kLocked:
      throw LockedError(message);
    case ExitCode::kEnvironment:
      throw EnvironmentError(message);
    case ExitCode::kIO:
      throw IOError(message);
    case ExitCode::kVerifyFailed:
      throw VerifyError(message);
    case ExitCode::kInterrupted:
      throw InterruptedError(message);
    default:
      throw Error(ExitCode::kInternal, message);
  }
}

}  // namespace sisa
