// Crash safety (docs/design.md, "Crashes, corruption and recovery"): a deletion acknowledged is never lost,
// applied exactly once, and leaves no deleted bytes behind, wherever a crash
// or an I/O error strikes. Faults are injected at every durable step through
// the Env seam, and real `sisa forget` processes are killed with SIGKILL.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "fault_env.h"
#include "format/deletion_log.h"
#include "format/manifest.h"
#include "run/deletion_tx.h"
#include "run/seams.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "store/run_dir.h"
#include "store/run_files.h"
#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
using namespace sisa;
using sisa::test::FaultEnv;
using sisa::test::InjectedCrash;
using sisa::test::TempDir;

namespace {

using test::row_bytes;
using test::stage_digests;

class Durability : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic(160, 6, 3, 17);
    test::write_csv(data_, dir_ / "train.csv");
    test::write_text(cfg_,
                     test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", 6, 3, "  type: mlp\n  hidden: [8]\n",
                                       "  shards: 2\n  slices: 3\n", "  epochs: 3\n  batch_size: 8\n  lr: 0.01\n"));
    for (int64_t id : data_.ids) {
      const int64_t s = shard_of(7, id, 2), r = slice_of(7, id, 3);
      if (s == 0 && r == 2 && doomed_.size() < 1) doomed_.push_back(id);
      if (s == 1 && r == 1 && doomed_.size() == 1) doomed_.push_back(id);
    }
    ASSERT_EQ(doomed_.size(), 2u);
    train({cfg_, {}, base_, {}});
    train({cfg_, {}, excluded_, doomed_});
    before_ = stage_digests(base_);
    after_ = stage_digests(excluded_);
  }

  // After recovery the run holds either the request fully applied exactly
  // once (if it was accepted) or nothing of it; fsck is clean either way.
  void expect_consistent(const std::string& run, const std::string& what, bool* accepted) {
    const auto log = read_log(in_run(run, kLogFile));
    int accepted_records = 0, applied_records = 0;
    for (const auto& r : log.records) {
      (r.type == LogRecord::Type::kAccepted ? accepted_records : applied_records) += 1;
    }
    *accepted = accepted_records > 0;
    ASSERT_LE(accepted_records, 1) << what;
    EXPECT_EQ(applied_records, accepted_records) << what;
    EXPECT_EQ(stage_digests(run), *accepted ? after_ : before_) << what;
    if (*accepted) {
      for (int64_t id : doomed_) {
        EXPECT_EQ(test::files_containing(run, row_bytes(data_, id)), std::vector<std::string>{})
            << what << ": id " << id;
      }
    }
    const auto check = fsck(run);
    EXPECT_TRUE(check["ok"].get<bool>()) << what << ": " << check["problems"].dump();
  }

  TempDir dir_;
  Dataset data_;
  std::string cfg_ = dir_ / "config.yaml";
  std::string base_ = dir_ / "base", excluded_ = dir_ / "excluded";
  std::vector<int64_t> doomed_;
  std::vector<std::string> before_, after_;
};

TEST_F(Durability, CrashAtEveryDurableStepOfForgetThenRecover) {
  const std::string counted = dir_ / "counted";
  fs::copy(base_, counted, fs::copy_options::recursive);
  FaultEnv counter(-1, FaultEnv::Mode::kCrash);
  forget({counted, doomed_}, RunSeams{&counter, nullptr});
  const int64_t steps = counter.steps();
  ASSERT_GT(steps, 20);
  int accepted_runs = 0;
  for (int64_t k = 1; k <= steps; ++k) {
    const std::string run = dir_ / ("crash-" + std::to_string(k));
    fs::copy(base_, run, fs::copy_options::recursive);
    FaultEnv env(k, FaultEnv::Mode::kCrash);
    EXPECT_THROW(forget({run, doomed_}, RunSeams{&env, nullptr}), InjectedCrash) << "step " << k;
    recover({run, false, nullptr});
    bool accepted = false;
    expect_consistent(run, "crash at step " + std::to_string(k), &accepted);
    accepted_runs += accepted;
    fs::remove_all(run);
  }
  // Early crashes lose an unacknowledged request; every later one is finished.
  EXPECT_GT(accepted_runs, 0);
  EXPECT_LT(accepted_runs, steps);
}

TEST_F(Durability, IoErrorAtEveryDurableStepKeepsThePreviousGeneration) {
  const std::string counted = dir_ / "counted";
  fs::copy(base_, counted, fs::copy_options::recursive);
  FaultEnv counter(-1, FaultEnv::Mode::kError);
  forget({counted, doomed_}, RunSeams{&counter, nullptr});
  const int64_t steps = counter.steps();
  for (int64_t k = 1; k <= steps; ++k) {
    const std::string run = dir_ / ("error-" + std::to_string(k));
    fs::copy(base_, run, fs::copy_options::recursive);
    FaultEnv env(k, FaultEnv::Mode::kError);
    EXPECT_THROW(forget({run, doomed_}, RunSeams{&env, nullptr}), IOError) << "step " << k;
    // Whatever the manifest names is intact and loads.
    const Manifest m = load_manifest(run);
    const RunDir dir(run, nullptr);
    for (const auto& e : m.entries) {
      EXPECT_NO_THROW(load_store(dir, e)) << "step " << k;
      for (const auto& c : e.checkpoints) EXPECT_NO_THROW(load_checkpoint(dir, c)) << "step " << k;
    }
    recover({run, false, nullptr});
    bool accepted = false;
    expect_consistent(run, "I/O error at step " + std::to_string(k), &accepted);
    fs::remove_all(run);
  }
}

// A deletion builds its manifest edit on a copy: a failure at any step
// (here, at the first file the deletion writes) leaves the
// caller's manifest and the disk as they were, with the request still
// accepted. (tests/loo_test.cpp crashes a deletion with a derived model, the
// LOO student, at every durable step.)
TEST_F(Durability, TheManifestEditIsBuiltOnACopy) {
  const RunDir run(base_, nullptr);
  Manifest m = load_manifest(base_);
  const Config c = load_run_config(run, m);
  const nlohmann::json before = m.to_json();
  const std::string disk_before = read_text(manifest_path(base_));
  const LogRecord rec{LogRecord::Type::kAccepted, 1, false, doomed_};
  append_log(Env::posix(), run.path(kLogFile), rec);
  FaultEnv failing(1, FaultEnv::Mode::kError);
  const RunDir faulty(base_, &failing);
  EXPECT_THROW(execute_request(faulty, m, c, rec, plan_request(run, m, c, rec), {}, nullptr), IOError);
  EXPECT_EQ(m.to_json(), before);  // no half-updated manifest in memory
  EXPECT_EQ(read_text(manifest_path(base_)), disk_before);
  EXPECT_EQ(pending_requests(read_log(run.path(kLogFile))).size(), 1u);
  recover({base_});  // the next writer finishes it, exactly
  EXPECT_EQ(stage_digests(base_), after_);
  EXPECT_TRUE(fsck(base_)["ok"].get<bool>());
}

TEST_F(Durability, SigkillAtRandomMomentsLosesNothing) {
  // A bigger shard so the retrain takes long enough to be interrupted.
  const Dataset big = test::synthetic(3000, 32, 4, 23);
  test::write_csv(big, dir_ / "big.csv");
  const std::string cfg = dir_ / "big.yaml";
  test::write_text(cfg, test::config_yaml(dir_ / "big.csv", dir_ / "big.csv", 32, 4, "  type: mlp\n  hidden: [64]\n",
                                          "  shards: 2\n  slices: 2\n", "  epochs: 6\n  batch_size: 4\n  lr: 0.01\n"));
  std::vector<int64_t> doomed;
  for (int64_t id : big.ids) {
    if (slice_of(7, id, 2) == 1 && doomed.size() < 3) doomed.push_back(id);
  }
  const std::string base = dir_ / "big-base", excluded = dir_ / "big-excluded";
  ASSERT_EQ(test::run_sisa("train -q -c " + cfg + " -r " + base).exit_code, 0);
  std::string ids_file;
  for (int64_t id : doomed) ids_file += std::to_string(id) + "\n";
  test::write_text(dir_ / "ids.txt", ids_file);
  ASSERT_EQ(test::run_sisa("train -q -c " + cfg + " -r " + excluded + " --exclude-ids " + (dir_ / "ids.txt")).exit_code,
            0);
  const auto before = stage_digests(base), after = stage_digests(excluded);
  std::string ids;
  for (int64_t id : doomed) ids += (ids.empty() ? "" : ",") + std::to_string(id);

  // Kill moments come from this machine's own timing of an uninterrupted
  // forget (a sanitized or loaded build starts several times slower): from
  // half the time to acceptance (the log's first record) to the end, so
  // kills land before acceptance, during the retrain and around the publish.
  double to_accept = 0;
  std::atomic<double> to_end{0};
  {
    const std::string run = dir_ / "timed";
    fs::copy(base, run, fs::copy_options::recursive);
    const std::string log = in_run(run, kLogFile);
    const auto t0 = std::chrono::steady_clock::now();
    const auto since = [&t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    std::thread forget([&] {
      const auto r = test::run_sisa("forget -q -r " + run + " --ids " + ids);
      to_end = since();
      EXPECT_EQ(r.exit_code, 0) << r.output;
    });
    while (to_end == 0 && !(fs::exists(log) && fs::file_size(log) > 0)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    to_accept = since();
    forget.join();
    ASSERT_EQ(stage_digests(run), after);
    fs::remove_all(run);
  }
  ASSERT_LT(to_accept, to_end.load());
  std::mt19937 rng(20261128);
  std::uniform_real_distribution<double> delay(to_accept / 2, to_end.load());
  int killed = 0, accepted_runs = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const std::string run = dir_ / ("kill-" + std::to_string(trial));
    fs::copy(base, run, fs::copy_options::recursive);
    char t[32];
    std::snprintf(t, sizeof t, "%.2f", delay(rng));
    const auto r = test::run_sisa("forget -q -r " + run + " --ids " + ids, std::string("timeout -s KILL ") + t);
    killed += r.exit_code == 128 + 9 || r.exit_code == 137;
    const auto rec = test::run_sisa("recover -q -r " + run);
    ASSERT_EQ(rec.exit_code, 0) << rec.output;
    const auto log = read_log(in_run(run, kLogFile));
    const bool accepted = !log.records.empty();
    accepted_runs += accepted;
    EXPECT_EQ(pending_requests(log).size(), 0u);
    EXPECT_EQ(stage_digests(run), accepted ? after : before) << "trial " << trial << " killed at " << t;
    if (accepted) {
      for (int64_t id : doomed) {
        EXPECT_EQ(test::files_containing(run, row_bytes(big, id)), std::vector<std::string>{}) << "trial " << trial;
      }
    }
    fs::remove_all(run);
  }
  EXPECT_GT(killed, 5);  // most trials really were interrupted
  EXPECT_GT(accepted_runs, 0);
}

}  // namespace
