// Write-ahead log of deletion requests (docs/design.md, durability). Holds ids, never
// sample contents. Format: 8-byte header "SISALOG" + version byte, then records
//   u32 payload length | u32 ~length | u32 crc32(type, payload) | u8 type | payload
// The complemented length tells a damaged length (corruption) from a record
// cut short by a crash (a torn tail, which was never acknowledged).
// with payload = u64 seq, u8 by_group, u64 count, count x i64 keys (accepted)
// or u64 seq (applied); all little-endian.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sisa {

inline constexpr uint8_t kLogFormatVersion = 1;

struct LogRecord {
  enum class Type : uint8_t { kAccepted = 1, kApplied = 2 };
  Type type = Type::kAccepted;
  uint64_t seq = 0;
  bool by_group = false;
  std::vector<int64_t> keys;
};

struct LogContents {
  std::vector<LogRecord> records;
  bool torn_tail = false;    // an incomplete last record (a crash mid-append)
  uint64_t valid_bytes = 0;  // length of the intact prefix
};

// A missing file reads as empty. A complete record with a bad CRC is a
// CorruptionError naming the file and byte offset.
LogContents read_log(const std::string& path);
class Env;
// Appends and fsyncs; truncates a torn tail first.
void append_log(Env& env, const std::string& path, const LogRecord& record);

// Truncates an incomplete last record (never acknowledged: acknowledgement
// follows the sync); true if there was one. Serialized with append_log.
bool drop_torn_tail(Env& env, const std::string& path);

// What survives of a damaged log: every intact record (found again past
// damage by scanning for the next record whose framing and CRC check out)
// and the byte ranges [first, last) that could not be read.
struct SalvagedLog {
  std::vector<LogRecord> records;
  std::vector<std::pair<uint64_t, uint64_t>> damaged;
};
SalvagedLog salvage_log(const std::string& path);
// Replaces the log atomically with exactly these records.
void rewrite_log(Env& env, const std::string& path, const std::vector<LogRecord>& records);

// Accepted requests with no applied record, in order.
std::vector<LogRecord> pending_requests(const LogContents& log);

}  // namespace sisa
