#include "format/deletion_log.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "sisa/errors.h"
#include "util/fs.h"

namespace sisa {
namespace {

const char kMagic[7] = {'S', 'I', 'S', 'A', 'L', 'O', 'G'};

void put_u64(std::vector<uint8_t>* b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u32(std::vector<uint8_t>* b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::vector<uint8_t> encode(const LogRecord& r) {
  std::vector<uint8_t> payload;
  put_u64(&payload, r.seq);
  if (r.type == LogRecord::Type::kAccepted) {
    payload.push_back(r.by_group ? 1 : 0);
    put_u64(&payload, r.keys.size());
    for (int64_t k : r.keys) put_u64(&payload, static_cast<uint64_t>(k));
  }
  std::vector<uint8_t> typed;
  typed.push_back(static_cast<uint8_t>(r.type));
  typed.insert(typed.end(), payload.begin(), payload.end());
  std::vector<uint8_t> out;
  put_u32(&out, static_cast<uint32_t>(payload.size()));
  put_u32(&out, ~static_cast<uint32_t>(payload.size()));
  put_u32(&out, static_cast<uint32_t>(crc32(0, typed.data(), static_cast<uInt>(typed.size()))));
  out.insert(out.end(), typed.begin(), typed.end());
  return out;
}

}  // namespace

// Appends read the log first (to find a torn tail or a missing header), so
// two threads appending at once (serve's request handlers and its deletion
// worker) could each misread the other's half-written record as torn.
std::mutex& log_mutex() {
  static std::mutex mu;
  return mu;
}

namespace {

constexpr size_t kHeaderBytes = 8;  // magic + version
constexpr size_t kFrameBytes = 12;  // length, ~length, crc

enum class Parse { kOk, kTorn, kDamagedLength, kBadCrc, kMalformed };

// Parses the record at `pos` into `r`; on kOk sets `next` past it.
Parse parse_record(const std::vector<uint8_t>& bytes, size_t pos, LogRecord* r, size_t* next) {
  if (bytes.size() - pos < kFrameBytes + 1) return Parse::kTorn;
  const uint32_t len = get_u32(&bytes[pos]);
  if (get_u32(&bytes[pos + 4]) != ~len) return Parse::kDamagedLength;
  const uint32_t crc = get_u32(&bytes[pos + 8]);
  if (bytes.size() - pos - kFrameBytes < 1 + static_cast<size_t>(len)) return Parse::kTorn;
  const uint8_t* typed = &bytes[pos + kFrameBytes];
  if (crc32(0, typed, 1 + len) != crc) return Parse::kBadCrc;
  *r = LogRecord{};
  r->type = static_cast<LogRecord::Type>(typed[0]);
  const uint8_t* p = typed + 1;
  if (len < 8) return Parse::kMalformed;
  r->seq = get_u64(p);
  if (r->type == LogRecord::Type::kAccepted) {
    if (len < 17) return Parse::kMalformed;
    r->by_group = p[8] != 0;
    const uint64_t n = get_u64(p + 9);
    if (n > len || len != 17 + 8 * n) return Parse::kMalformed;
    for (uint64_t i = 0; i < n; ++i) r->keys.push_back(static_cast<int64_t>(get_u64(p + 17 + 8 * i)));
  } else if (r->type != LogRecord::Type::kApplied || len != 8) {
    return Parse::kMalformed;
  }
  *next = pos + kFrameBytes + 1 + len;
  return Parse::kOk;
}

const char* kRebuildHint = "; `sisa repair --rebuild-log` keeps the intact records and says what cannot be recovered";

}  // namespace

LogContents read_log(const std::string& path) {
  LogContents out;
  if (!std::filesystem::exists(path)) return out;
  const auto bytes = read_file(path);
  if (bytes.empty()) return out;
  if (bytes.size() < kHeaderBytes) {
    // A crash while the header itself was being appended.
    if (std::memcmp(bytes.data(), kMagic, std::min<size_t>(bytes.size(), 7)) != 0) {
      throw CorruptionError(path + ": not a sisa deletion log (bad header)" + kRebuildHint);
    }
    out.torn_tail = true;
    return out;
  }
  if (std::memcmp(bytes.data(), kMagic, 7) != 0) {
    throw CorruptionError(path + ": not a sisa deletion log (bad header)" + kRebuildHint);
  }
  if (bytes[7] != kLogFormatVersion) {
    throw CorruptionError(path + ": deletion log format version " + std::to_string(bytes[7]) + " is not supported");
  }
  size_t pos = kHeaderBytes;
  out.valid_bytes = pos;
  while (pos < bytes.size()) {
    LogRecord r;
    size_t next = 0;
    // A crash mid-append leaves a prefix of the record or, on some file
    // systems, zeros to the end: both are a torn tail.
    const bool zeros =
        std::all_of(bytes.begin() + static_cast<long>(pos), bytes.end(), [](uint8_t b) { return b == 0; });
    const Parse p = zeros ? Parse::kTorn : parse_record(bytes, pos, &r, &next);
    if (p == Parse::kTorn) {
      out.torn_tail = true;
      break;
    }
    if (p != Parse::kOk) {
      const char* what = p == Parse::kDamagedLength ? " has a damaged length"
                         : p == Parse::kBadCrc      ? " fails its CRC check"
                                                    : " is malformed";
      throw CorruptionError(path + ": deletion log record at byte " + std::to_string(pos) + what + kRebuildHint);
    }
    out.records.push_back(std::move(r));
    pos = next;
    out.valid_bytes = pos;
  }
  return out;
}

SalvagedLog salvage_log(const std::string& path) {
  SalvagedLog out;
  if (!std::filesystem::exists(path)) return out;
  const auto bytes = read_file(path);
  size_t pos = std::min(bytes.size(), kHeaderBytes);
  if (bytes.size() >= kHeaderBytes && (std::memcmp(bytes.data(), kMagic, 7) != 0 || bytes[7] != kLogFormatVersion)) {
    out.damaged.emplace_back(0, kHeaderBytes);
  }
  while (pos < bytes.size()) {
    LogRecord r;
    size_t next = 0;
    const Parse p = parse_record(bytes, pos, &r, &next);
    if (p == Parse::kOk) {
      out.records.push_back(std::move(r));
      pos = next;
      continue;
    }
    if (p == Parse::kTorn) break;  // never acknowledged: not damage
    // Find the next record whose framing and CRC check out; what lies
    // between is lost.
    size_t resume = pos + 1;
    while (resume < bytes.size() && parse_record(bytes, resume, &r, &next) != Parse::kOk) ++resume;
    out.damaged.emplace_back(pos, resume);
    pos = resume;
  }
  return out;
}

void rewrite_log(Env& env, const std::string& path, const std::vector<LogRecord>& records) {
  std::lock_guard<std::mutex> hold(log_mutex());
  std::vector<uint8_t> bytes(kMagic, kMagic + 7);
  bytes.push_back(kLogFormatVersion);
  for (const auto& r : records) {
    const auto rec = encode(r);
    bytes.insert(bytes.end(), rec.begin(), rec.end());
  }
  atomic_write(env, path, bytes);
}

bool drop_torn_tail(Env& env, const std::string& path) {
  std::lock_guard<std::mutex> hold(log_mutex());
  const auto log = read_log(path);
  if (log.torn_tail) env.truncate_file(path, log.valid_bytes);
  return log.torn_tail;
}

void append_log(Env& env, const std::string& path, const LogRecord& record) {
  std::lock_guard<std::mutex> hold(log_mutex());
  const auto log = read_log(path);
  if (log.torn_tail || (log.valid_bytes == 0 && std::filesystem::exists(path))) {
    // Drop a torn tail (never acknowledged: acknowledgement follows the sync).
    env.truncate_file(path, log.valid_bytes);
  }
  std::vector<uint8_t> bytes;
  if (log.valid_bytes == 0) {
    bytes.insert(bytes.end(), kMagic, kMagic + 7);
    bytes.push_back(kLogFormatVersion);
  }
  const auto rec = encode(record);
  bytes.insert(bytes.end(), rec.begin(), rec.end());
  append_durable(env, path, bytes.data(), bytes.size());
}

std::vector<LogRecord> pending_requests(const LogContents& log) {
  std::set<uint64_t> applied;
  for (const auto& r : log.records) {
    if (r.type == LogRecord::Type::kApplied) applied.insert(r.seq);
  }
  std::vector<LogRecord> out;
  for (const auto& r : log.records) {
    if (r.type == LogRecord::Type::kAccepted && !applied.count(r.seq)) out.push_back(r);
  }
  return out;
}

}  // namespace sisa
