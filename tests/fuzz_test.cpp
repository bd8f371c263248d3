// Seeded random-input tests for the parsers that read user or disk input:
// the config parser, the id-list parser and the deletion-log reader. Every
// input must either parse or fail with a typed sisa::Error; anything else
// (another exception, a crash, a sanitizer report in the sanitized CI build)
// is a bug. Deterministic: the same seeds every run.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "format/deletion_log.h"
#include "util/fs.h"
#include "sisa/config.h"
#include "sisa/errors.h"
#include "sisa/id_list.h"
#include "test_util.h"

using namespace sisa;

namespace {

// Applies 1-4 random byte edits (replace, insert, delete) to `s`.
std::string mutate(std::string s, std::mt19937_64& rng, const std::string& alphabet) {
  std::uniform_int_distribution<int> edits(1, 4), kind(0, 2);
  for (int e = edits(rng); e > 0; --e) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    const char c = alphabet[rng() % alphabet.size()];
    switch (kind(rng)) {
      case 0: if (pos < s.size()) s[pos] = c; break;
      case 1: s.insert(s.begin() + static_cast<long>(pos), c); break;
      default: if (pos < s.size()) s.erase(pos, 1); break;
    }
  }
  return s;
}

template <typename F>
void expect_typed(const F& f, const std::string& input) {
  try {
    f();
  } catch (const Error&) {
    // a clear, typed rejection
  } catch (const std::exception& e) {
    ADD_FAILURE() << "untyped " << typeid(e).name() << ": " << e.what() << "\ninput: " << input;
  }
}

const char* kConfig =
    "seed: 3\n"
    "data:\n  format: csv\n  train: t.csv\n  num_classes: 3\n  input_shape: [4]\n"
    "  scale: 0.5\n  label_column: label\n"
    "sisa:\n  shards: 4\n  slices: 2\n"
    "model:\n  type: mlp\n  hidden: [8, 4]\n  dropout: 0.1\n"
    "train:\n  epochs: 4\n  batch_size: 16\n  optimizer: adam\n  lr: 0.01\n";

TEST(Fuzz, ConfigParserRejectsGarbageWithTypedErrors) {
  std::mt19937_64 rng(1);
  const std::string alphabet = "abcdefxyz0123456789 :-[],{}.\n\t#'\"!&*|>%@`\\";
  for (int i = 0; i < 3000; ++i) {
    const std::string text = mutate(kConfig, rng, alphabet);
    expect_typed([&] { Config::parse(text, "fuzz.yaml", "/base"); }, text);
  }
  for (const char* o : {"a", "=1", "sisa=1", "sisa.shards=[", "data.input_shape={}", "x.y.z=1",
                        "train.lr=nan", "train.epochs=1e99", "seed=-1"}) {
    expect_typed([&] { Config::parse(kConfig, "fuzz.yaml", "", {o}); }, o);
  }
}

TEST(Fuzz, IdListParserRejectsGarbageWithTypedErrors) {
  std::mt19937_64 rng(2);
  const std::string alphabet = "0123456789,, -+x\n\t#e.";
  for (int i = 0; i < 5000; ++i) {
    const std::string text = mutate("17, 4711,59999,9223372036854775807", rng, alphabet);
    expect_typed([&] { parse_id_list(text, "--ids"); }, text);
  }
}

bool same_record(const LogRecord& a, const LogRecord& b) {
  return a.type == b.type && a.seq == b.seq && a.by_group == b.by_group && a.keys == b.keys;
}

TEST(Fuzz, LogReaderDetectsDamageWithTypedErrors) {
  test::TempDir t;
  const std::string path = t / "deletions.log";
  const std::vector<LogRecord> written = {{LogRecord::Type::kAccepted, 1, false, {5, 9, 11}},
                                          {LogRecord::Type::kApplied, 1, false, {}},
                                          {LogRecord::Type::kAccepted, 2, true, {3}}};
  std::vector<uint64_t> ends;  // the byte after each record
  for (const auto& r : written) {
    append_log(Env::posix(), path, r);
    ends.push_back(std::filesystem::file_size(path));
  }
  const auto good = read_file(path);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 3000; ++i) {
    auto bytes = good;
    if (i % 3 == 0) {
      bytes.resize(rng() % (bytes.size() + 1));  // truncation: a torn tail, never an error
    } else {
      for (int f = 1 + static_cast<int>(rng() % 3); f > 0; --f) bytes[rng() % bytes.size()] ^= 1u << (rng() % 8);
    }
    const std::string damaged = t / "damaged.log";
    std::ofstream(damaged, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    try {
      const auto log = read_log(damaged);
      // What survives is a prefix of what was written, record for record.
      ASSERT_LE(log.records.size(), written.size());
      for (size_t r = 0; r < log.records.size(); ++r) {
        EXPECT_TRUE(same_record(log.records[r], written[r])) << "record " << r << " of trial " << i;
      }
      if (i % 3 == 0) {
        // A truncation keeps exactly the records that end within it.
        const auto whole = static_cast<size_t>(std::count_if(ends.begin(), ends.end(),
                                                             [&](uint64_t e) { return e <= bytes.size(); }));
        EXPECT_EQ(log.records.size(), whole) << "trial " << i;
        EXPECT_EQ(log.valid_bytes, whole ? ends[whole - 1] : (bytes.size() >= 8 ? 8u : 0u));  // 8: the header
      }
    } catch (const CorruptionError&) {
      EXPECT_NE(i % 3, 0) << "a truncated log must read as a torn tail, not corruption";
    }
    // Salvage never invents a record: everything it keeps was written.
    for (const auto& r : salvage_log(damaged).records) {
      EXPECT_TRUE(std::any_of(written.begin(), written.end(), [&](const LogRecord& w) { return same_record(r, w); }))
          << "salvage kept a record that was never written (trial " << i << ")";
    }
  }
}

}  // namespace
