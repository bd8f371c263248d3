// Seeded random-input tests for the parsers that read user or disk input:
// the config parser, the id-list parser and the deletion-log reader. Every
// input must either parse or fail with a typed sisa::Error (anything else,
// a crash or a sanitizer report is a bug), and each test decides apart from
// the parser what must be refused: garbage that parses is a failure too.
// Deterministic: the same seeds every run.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>

#include "config/config_keys.h"
#include "config/model_spec.h"
#include "format/deletion_log.h"
#include "sisa/config.h"
#include "sisa/errors.h"
#include "sisa/id_list.h"
#include "test_util.h"
#include "util/fs.h"

using namespace sisa;

namespace {

// Applies 1-4 random byte edits (replace, insert, delete) to `s`.
std::string mutate(std::string s, std::mt19937_64& rng, const std::string& alphabet) {
  std::uniform_int_distribution<int> edits(1, 4), kind(0, 2);
  for (int e = edits(rng); e > 0; --e) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    const char c = alphabet[rng() % alphabet.size()];
    switch (kind(rng)) {
      case 0:
        if (pos < s.size()) s[pos] = c;
        break;
      case 1:
        s.insert(s.begin() + static_cast<long>(pos), c);
        break;
      default:
        if (pos < s.size()) s.erase(pos, 1);
        break;
    }
  }
  return s;
}

const char* kConfig =
    "seed: 3\n"
    "data:\n  format: csv\n  train: t.csv\n  num_classes: 3\n  input_shape: [4]\n"
    "  scale: 0.5\n  label_column: label\n"
    "sisa:\n  shards: 4\n  slices: 2\n"
    "model:\n  type: mlp\n  hidden: [8, 4]\n  dropout: 0.1\n"
    "train:\n  epochs: 4\n  batch_size: 16\n  optimizer: adam\n  lr: 0.01\n";

// Whether a YAML document names a key the config does not declare (the
// `model` keys are the mlp family's, as kConfig's).
bool has_unknown_key(const YAML::Node& root) {
  if (!root.IsMap()) return !root.IsNull();
  std::set<std::string> top = top_level_keys(config_keys());
  top.insert("model");
  for (const auto& kv : root) {
    const std::string section = kv.first.Scalar();
    if (!top.count(section)) return true;
    if (!kv.second.IsMap()) continue;  // a section that is not a map is refused on its own
    std::set<std::string> keys = keys_of(config_keys(), section);
    if (section == "model") {
      keys = {"type"};
      for (const auto& o : registered_spec("mlp").options) keys.insert(o.key);
    }
    for (const auto& k : kv.second) {
      if (!keys.count(k.first.Scalar())) return true;
    }
  }
  return false;
}

TEST(Fuzz, ConfigParserRejectsGarbageWithTypedErrors) {
  std::mt19937_64 rng(1);
  const std::string alphabet = "abcdefxyz0123456789 :-[],{}.\n\t#'\"!&*|>%@`\\";
  int refused = 0, accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string text = mutate(kConfig, rng, alphabet);
    // What must be refused, decided apart from the parser: text that is not
    // YAML, and a key that is not declared.
    bool must_refuse = false;
    try {
      must_refuse = has_unknown_key(YAML::Load(text));
    } catch (const YAML::Exception&) {
      must_refuse = true;
    }
    try {
      const Config c = Config::parse(text, "fuzz.yaml", "/base");
      ++accepted;
      EXPECT_FALSE(must_refuse) << "garbage accepted:\n" << text;
      EXPECT_TRUE(c.validate().empty()) << text;
      // What is accepted means what it says: it survives its own YAML.
      EXPECT_EQ(Config::parse(c.to_yaml(), "again.yaml", "/base").training_json(), c.training_json()) << text;
    } catch (const ConfigError&) {
      ++refused;  // a clear, typed rejection
    } catch (const std::exception& e) {
      ADD_FAILURE() << "untyped " << typeid(e).name() << ": " << e.what() << "\ninput: " << text;
    }
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(accepted, 50);  // the edits also land in comments and values that stay valid
  for (const char* o : {"a", "=1", "sisa=1", "sisa.shards=[", "data.input_shape={}", "x.y.z=1", "train.lr=nan",
                        "train.epochs=1e99", "seed=-1", "train.lr=-1", "sisa.slices=0"}) {
    EXPECT_THROW(Config::parse(kConfig, "fuzz.yaml", "", {o}), ConfigError) << o;
  }
}

// The ids of "17, 4711,59999" by a grammar of its own: non-negative
// decimal integers up to 2^63-1 separated by commas, spaces around them
// allowed; false for anything else.
bool reference_ids(const std::string& text, std::vector<int64_t>* out) {
  static const std::regex list(R"(\s*\d+(\s*,\s*\d+)*\s*)");
  if (!std::regex_match(text, list)) return false;
  static const std::regex number(R"(\d+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), number); it != std::sregex_iterator(); ++it) {
    const std::string digits = it->str();
    if (digits.size() > 19 || (digits.size() == 19 && digits > "9223372036854775807")) return false;
    out->push_back(std::stoll(digits));
  }
  return true;
}

TEST(Fuzz, IdListParserRejectsGarbageWithTypedErrors) {
  std::mt19937_64 rng(2);
  const std::string alphabet = "0123456789,, -+x\n\t#e.";
  int refused = 0, accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string text = mutate("17, 4711,59999,9223372036854775807", rng, alphabet);
    std::vector<int64_t> want;
    const bool valid = reference_ids(text, &want);
    try {
      const auto ids = parse_id_list(text, "--ids");
      ++accepted;
      EXPECT_TRUE(valid) << "garbage accepted: '" << text << "'";
      EXPECT_EQ(ids, want) << text;
    } catch (const UsageError&) {
      ++refused;
      EXPECT_FALSE(valid) << "a valid list refused: '" << text << "'";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "untyped " << typeid(e).name() << ": " << e.what() << "\ninput: " << text;
    }
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(accepted, 100);
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
        const auto whole =
            static_cast<size_t>(std::count_if(ends.begin(), ends.end(), [&](uint64_t e) { return e <= bytes.size(); }));
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
