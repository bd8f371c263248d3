// The real `sisa` binary: exit codes, messages that name the culprit, and a
// run directory left unchanged by every rejected command.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "format/manifest.h"
#include "run/seams.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
using namespace sisa;
using sisa::test::run_sisa;
using sisa::test::TempDir;

namespace {

int code(ExitCode c) { return static_cast<int>(c); }

TEST(Cli, HelpOnEveryCommand) {
  EXPECT_EQ(run_sisa("--help").exit_code, 0);
  for (const char* cmd : {"train", "forget", "predict", "verify", "status", "serve", "recover", "repair", "fsck"}) {
    const auto r = run_sisa(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.output.find("--run-dir"), std::string::npos) << r.output;
  }
  EXPECT_EQ(run_sisa("frobnicate").exit_code, code(ExitCode::kUsage));
  EXPECT_EQ(run_sisa("forget --ids 1").exit_code, code(ExitCode::kUsage));  // no --run-dir
}

class CliRun : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic(150, 5, 3, 21);
    test::write_csv(data_, dir_ / "train.csv");
    test::write_text(cfg_,
                     test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", 5, 3, "  type: mlp\n  hidden: [8]\n",
                                       "  shards: 3\n  slices: 3\n", "  epochs: 3\n  batch_size: 8\n  lr: 0.01\n"));
  }
  // An id in `shard` whose slice is `slice` (seed 7, S=3, R=3 as configured).
  int64_t id_at(int64_t shard, int64_t slice) const {
    for (int64_t id : data_.ids) {
      if (shard_of(7, id, 3) == shard && slice_of(7, id, 3) == slice) return id;
    }
    return -1;
  }
  void train_run() {
    const auto r = run_sisa("train -q -c " + cfg_ + " -r " + run_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  TempDir dir_;
  Dataset data_;
  std::string cfg_ = dir_ / "config.yaml";
  std::string run_ = dir_ / "run";
};

TEST_F(CliRun, BadConfigsAreRejectedByNameBeforeTheRunDirectoryExists) {
  struct Case {
    std::string yaml_or_set;
    bool is_override;
    int exit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"seed: 1\ndata: {train: [1,\n", false, code(ExitCode::kUsage), "malformed YAML at line"},
      {"model:\n  hiden: [3]\n", false, code(ExitCode::kUsage), "model.hiden: unknown key"},
      {"sisa.shards=0", true, code(ExitCode::kUsage), "sisa.shards"},
      {"train.epochs=1", true, code(ExitCode::kUsage), "train.epochs"},
      {"data.train=" + (dir_ / "nowhere.csv"), true, code(ExitCode::kData), "nowhere.csv"},
  };
  for (const auto& c : cases) {
    std::string cmd = "train -c ";
    if (c.is_override) {
      cmd += cfg_ + " --set " + c.yaml_or_set;
    } else {
      const std::string bad = dir_ / "bad.yaml";
      test::write_text(bad, c.yaml_or_set);
      cmd += bad;
    }
    const auto r = run_sisa(cmd + " -r " + run_);
    EXPECT_EQ(r.exit_code, c.exit) << c.yaml_or_set << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(run_)) << c.yaml_or_set;
  }
}

TEST_F(CliRun, ForgetThroughTheCliMatchesExcludeIdsAndVerifies) {
  train_run();
  const int64_t a = id_at(0, 2), b = id_at(2, 1);
  test::write_text(dir_ / "ids.txt", std::to_string(a) + "\n" + std::to_string(b) + "\n");
  auto r = run_sisa("train -q -c " + cfg_ + " -r " + (dir_ / "excluded") + " --exclude-ids " + (dir_ / "ids.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_sisa("forget -q --json -r " + run_ + " --ids-file " + (dir_ / "ids.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto receipt = nlohmann::json::parse(r.output);
  EXPECT_EQ(receipt["deleted_count"], 2);
  EXPECT_TRUE(fs::exists(run_ + "/receipts/000001.json"));

  const auto s1 = nlohmann::json::parse(run_sisa("status --json -r " + run_).output);
  const auto s2 = nlohmann::json::parse(run_sisa("status --json -r " + (dir_ / "excluded")).output);
  ASSERT_EQ(s1["shard_status"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    for (const char* key : {"fingerprint", "state_digest", "n_samples"}) {
      EXPECT_EQ(s1["shard_status"][i][key], s2["shard_status"][i][key]) << key;
    }
  }
  EXPECT_EQ(s1["deleted_ids"], 2);
  EXPECT_EQ(s1["pending_requests"], 0);
  for (const char* key : {"shards", "slices", "identity_hash", "environment"}) {
    EXPECT_TRUE(s1.contains(key)) << key;
  }
  r = run_sisa("verify -q -r " + run_);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Private by default: the run holds personal data.
  EXPECT_EQ(fs::status(run_).permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_EQ(fs::status(run_ + "/data").permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_EQ(fs::status(run_ + "/MANIFEST.json").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(run_ + "/deletions.log").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  r = run_sisa("predict -q --json -r " + run_ + " --aggregate vote -o " + (dir_ / "p.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto p = nlohmann::json::parse(r.output);
  EXPECT_GT(p["accuracy"].get<double>(), 0.5);
  EXPECT_EQ(p["accuracy"], p["accuracy_vote"]);
  std::ifstream csv(dir_ / "p.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "id,label,predicted,p0,p1,p2");
}

TEST_F(CliRun, UnknownIdsRejectTheWholeBatchAndChangeNothing) {
  train_run();
  const auto before = test::snapshot(run_);
  const auto r = run_sisa("forget -r " + run_ + " --ids " + std::to_string(id_at(1, 1)) + ",424242");
  EXPECT_EQ(r.exit_code, code(ExitCode::kData)) << r.output;
  EXPECT_NE(r.output.find("424242"), std::string::npos) << r.output;
  EXPECT_TRUE(test::snapshot(run_) == before) << "files changed";
  EXPECT_EQ(run_sisa("forget -r " + run_ + " --ids 1,-2").exit_code, code(ExitCode::kUsage));
  EXPECT_TRUE(test::snapshot(run_) == before) << "files changed";
}

TEST_F(CliRun, DamagedFilesAreCorruptionNamingTheFileAndNothingIsAccepted) {
  train_run();
  const int64_t id = id_at(1, 2);  // forgetting it reads checkpoint C_1 of shard 1
  const std::string ckpt = run_ + "/ckpt/shard-001/stage-01.g0.h5";
  fs::resize_file(ckpt, fs::file_size(ckpt) / 2);
  auto before = test::snapshot(run_);
  auto r = run_sisa("forget -r " + run_ + " --ids " + std::to_string(id));
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("stage-01.g0.h5"), std::string::npos) << r.output;
  EXPECT_TRUE(test::snapshot(run_) == before) << "files changed";
  r = run_sisa("verify -r " + run_ + " --shards 1");
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  r = run_sisa("fsck -r " + run_);
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("stage-01.g0.h5"), std::string::npos) << r.output;

  // A flipped byte in a shard store.
  const std::string store = run_ + "/data/shard-002.g0.h5";
  {
    std::fstream f(store, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(store) / 2));
    const char c = static_cast<char>(f.peek());
    f.put(static_cast<char>(c ^ 0x10));
  }
  before = test::snapshot(run_);
  r = run_sisa("forget -r " + run_ + " --ids " + std::to_string(id_at(2, 1)));
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("shard-002.g0.h5"), std::string::npos) << r.output;
  EXPECT_TRUE(test::snapshot(run_) == before) << "files changed";
}

TEST_F(CliRun, ASecondWriterAndAForeignEnvironmentAreRefused) {
  train_run();
  const auto before = test::snapshot(run_);
  const std::string ids = " --ids " + std::to_string(id_at(0, 1));
  {
    RunLock held(run_);
    const auto r = run_sisa("forget -r " + run_ + ids);
    EXPECT_EQ(r.exit_code, code(ExitCode::kLocked)) << r.output;
    EXPECT_NE(r.output.find("locked by pid"), std::string::npos) << r.output;
  }
  EXPECT_TRUE(test::snapshot(run_) == before) << "files changed";
  // A different CPU kernel path changes bits: forget refuses and says why.
  const char* now = std::getenv("ATEN_CPU_CAPABILITY");
  const std::string other = now && std::string(now) == "default" ? "avx2" : "default";
  const auto r = run_sisa("forget -r " + run_ + ids, "ATEN_CPU_CAPABILITY=" + other);
  EXPECT_EQ(r.exit_code, code(ExitCode::kEnvironment)) << r.output;
  EXPECT_NE(r.output.find("aten_cpu_capability"), std::string::npos) << r.output;
  EXPECT_TRUE(test::snapshot(run_) == before) << "files changed";
}

// The control for verify itself: a deletion that restarts the optimizer at
// each stage (the reference implementation's bug) is not exact, and verify
// must say so, naming the stages, with exit 8.
TEST_F(CliRun, VerifySaysDiffersWhenADeletionLostTheOptimizerState) {
  train_run();
  ForgetRequest req;
  req.run_dir = run_;
  req.keys = {id_at(1, 1)};
  RunSeams control;
  control.trainer.restore_optimizer_state = false;
  forget(req, control);
  auto r = run_sisa("verify -r " + run_ + " --shards 0,1");
  EXPECT_EQ(r.exit_code, code(ExitCode::kVerifyFailed)) << r.output;
  EXPECT_NE(r.output.find("MISMATCH"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[shard 1] differs from a fresh retrain"), std::string::npos) << r.output;
  r = run_sisa("verify -q -r " + run_ + " --shards 0");  // the untouched shard is still exact
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// predict --split train scores what the run still holds; forget --json names its receipt.
TEST_F(CliRun, PredictOnTheRemainingTrainingDataAndTheReceiptPath) {
  train_run();
  auto r = run_sisa("predict -q --json --split train -r " + run_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output)["samples"], 150);
  r = run_sisa("forget -q --json -r " + run_ + " --ids " + std::to_string(id_at(2, 1)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string receipt = nlohmann::json::parse(r.output)["receipt_path"];
  EXPECT_EQ(receipt, run_ + "/receipts/000001.json");
  EXPECT_TRUE(fs::exists(receipt));
  r = run_sisa("predict -q --json --split train -r " + run_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output)["samples"], 149);
  EXPECT_EQ(run_sisa("predict -q --split validation -r " + run_).exit_code, code(ExitCode::kUsage));
}

void flip_middle_byte(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
  const char c = static_cast<char>(f.peek());
  f.put(static_cast<char>(c ^ 0x01));
}

TEST_F(CliRun, RepairRebuildsDamagedShardsExactlyOrRefuses) {
  train_run();
  ASSERT_EQ(run_sisa("forget -q -r " + run_ + " --ids " + std::to_string(id_at(0, 2))).exit_code, 0);
  const auto digests = test::stage_digests(run_);
  const Manifest m = load_manifest(run_);
  fs::resize_file(run_ + "/" + m.entries[1].checkpoints[1].file.path, 100);  // truncated C_1
  flip_middle_byte(run_ + "/" + m.entries[0].store.path);                    // the post-deletion store
  EXPECT_EQ(run_sisa("fsck -q -r " + run_).exit_code, code(ExitCode::kCorruption));

  auto r = run_sisa("repair -q --json -r " + run_);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // stdout's JSON follows the warnings that name the damaged files on stderr.
  const auto json_at = r.output.rfind("\n{") == std::string::npos ? 0 : r.output.rfind("\n{") + 1;
  EXPECT_NE(r.output.find("stage-01.g0.h5"), std::string::npos) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output.substr(json_at))["repaired_shards"].size(), 2u);
  r = run_sisa("fsck -r " + run_);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(test::stage_digests(run_), digests);  // bit for bit what was lost
  EXPECT_EQ(run_sisa("verify -q -r " + run_).exit_code, 0);

  // A store whose source data has since changed cannot be rebuilt exactly.
  Dataset edited = data_;
  for (size_t i = 0; i < edited.size(); ++i) {
    if (shard_of(7, edited.ids[i], 3) == 2) {
      edited.inputs[i * edited.width] += 1.0f;
      break;
    }
  }
  test::write_csv(edited, dir_ / "train.csv");
  flip_middle_byte(run_ + "/" + load_manifest(run_).entries[2].store.path);
  const auto before = test::snapshot(run_);
  r = run_sisa("repair -r " + run_);
  EXPECT_EQ(r.exit_code, code(ExitCode::kCorruption)) << r.output;
  EXPECT_NE(r.output.find("cannot repair shard 2"), std::string::npos) << r.output;
  EXPECT_TRUE(test::snapshot(run_) == before) << "files changed";
}

}  // namespace
