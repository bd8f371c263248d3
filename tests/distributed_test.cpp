// Distribution never changes results: the coordinator's protocol on in-memory
// ranks (threads), and the real binary under `mpirun -np 2` and `-np 3`.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "comm/communicator.h"
#include "format/manifest.h"
#include "run/seams.h"
#include "run/shard_jobs.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sisa;
using sisa::test::stage_digests;
using sisa::test::TempDir;

namespace {

// Root in a container: OpenMPI wants these; --oversubscribe for 3 ranks on 2 cores.
const char* kMpirun =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
    "mpirun -np";

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic(400, 6, 3, 31);
    test::write_csv(data_, dir_ / "train.csv");
    test::write_text(
        cfg_,
        test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", 6, 3, "  type: mlp\n  hidden: [8]\n  dropout: 0.1\n",
                          "  shards: 4\n  slices: 3\n", "  epochs: 3\n  batch_size: 8\n  lr: 0.01\n"));
  }
  TempDir dir_;
  Dataset data_;
  std::string cfg_ = dir_ / "config.yaml";
};

// Runs `body` as rank 0 with `n - 1` worker threads serving jobs.
template <typename F>
void with_workers(int n, const F& body) {
  auto comms = make_in_memory_communicators(n);
  std::vector<std::thread> workers;
  for (int r = 1; r < n; ++r) workers.emplace_back([&, r] { serve_jobs(*comms[r]); });
  try {
    body(*comms[0]);
  } catch (...) {
    stop_workers(*comms[0]);
    for (auto& t : workers) t.join();
    throw;
  }
  stop_workers(*comms[0]);
  for (auto& t : workers) t.join();
}

TEST_F(Distributed, CoordinatorProtocolOnInMemoryRanksMatchesOneProcess) {
  train({cfg_, {}, dir_ / "local", {}});
  std::vector<int64_t> doomed;
  for (int64_t id : data_.ids) {
    if (slice_of(7, id, 3) == 2 && doomed.size() < 5) doomed.push_back(id);
  }
  forget({dir_ / "local", doomed});
  with_workers(3, [&](Communicator& rank0) {
    const auto runner = make_coordinator_runner(rank0);
    const RunSeams seams{nullptr, runner.get()};
    train({cfg_, {}, dir_ / "spread", {}}, seams);
    const auto receipt = forget({dir_ / "spread", doomed}, seams);
    std::set<int> ranks;
    for (const auto& s : receipt["shards"]) ranks.insert(s["rank"].get<int>());
    EXPECT_TRUE(ranks.count(0) == 0) << "rank 0 only coordinates";
  });
  EXPECT_EQ(stage_digests(dir_ / "spread"), stage_digests(dir_ / "local"));
}

TEST_F(Distributed, AFailingWorkerEndsTheJobNamingRankAndShard) {
  train({cfg_, {}, dir_ / "run", {}});
  const Manifest m = load_manifest(dir_ / "run");
  const std::string before = test::snapshot(dir_ / "run").at("MANIFEST.json");
  // Shard 2's store no longer matches its hash: the worker must refuse it.
  std::vector<ShardJob> jobs;
  for (const auto& e : m.entries) {
    ShardJob j{e.shard, 1, e.store, false, e.checkpoints[0], 1, 10, false, {}, {}, nullptr};
    if (e.shard == 2) j.store.sha256 = std::string(64, '0');
    jobs.push_back(j);
  }
  const Config c = Config::load(cfg_);
  const JobContext context{dir_ / "run", c.to_yaml(), m.identity_hash, m.environment, {}, 2};
  with_workers(2, [&](Communicator& rank0) {
    try {
      make_coordinator_runner(rank0)->run(context, jobs);
      FAIL() << "a failed shard was not reported";
    } catch (const CorruptionError& e) {  // the worker's error type survives the trip, not only its code
      EXPECT_EQ(e.code(), ExitCode::kCorruption);
      EXPECT_NE(std::string(e.what()).find("rank 1 failed on shard 2"), std::string::npos) << e.what();
    }
  });
  EXPECT_EQ(test::snapshot(dir_ / "run").at("MANIFEST.json"), before);  // nothing published

  // A worker whose numeric environment differs from the run's refuses.
  JobContext foreign = context;
  foreign.environment["blas"] = "/elsewhere/libblas.so.3";
  jobs.resize(1);
  with_workers(2, [&](Communicator& rank0) {
    try {
      make_coordinator_runner(rank0)->run(foreign, jobs);
      FAIL() << "a worker trained in a foreign environment";
    } catch (const EnvironmentError& e) {
      EXPECT_EQ(e.code(), ExitCode::kEnvironment);
      EXPECT_NE(std::string(e.what()).find("blas"), std::string::npos) << e.what();
    }
  });
}

TEST_F(Distributed, RealMpirunGivesTheSameFingerprintsForAnyRankCount) {
  std::vector<int64_t> doomed;
  for (int64_t id : data_.ids) {
    if (doomed.size() < 6 && slice_of(7, id, 3) != 3) doomed.push_back(id);
  }
  std::string ids;
  for (int64_t id : doomed) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  std::vector<std::vector<std::string>> results;
  for (int np : {1, 2, 3}) {
    const std::string run = dir_ / ("np" + std::to_string(np));
    const std::string prefix = np == 1 ? "" : std::string(kMpirun) + " " + std::to_string(np);
    auto r = test::run_sisa("train -q -c " + cfg_ + " -r " + run, prefix);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = test::run_sisa("forget -q -r " + run + " --ids " + ids, prefix);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    results.push_back(stage_digests(run));
  }
  EXPECT_EQ(results[1], results[0]);
  EXPECT_EQ(results[2], results[0]);
  // A rejected batch under mpirun: the exit code and message still reach the user.
  const auto r = test::run_sisa("forget -r " + (dir_ / "np2") + " --ids 77777777", std::string(kMpirun) + " 2");
  EXPECT_EQ(r.exit_code, static_cast<int>(ExitCode::kData)) << r.output;
  EXPECT_NE(r.output.find("77777777"), std::string::npos) << r.output;
}

// verify and repair hand their retrains to worker ranks like train and
// forget do: every shard is retrained on rank 1 or 2, never on rank 0.
TEST_F(Distributed, VerifyAndRepairUseTheWorkerRanks) {
  const std::string run = dir_ / "run";
  const std::string mpirun3 = std::string(kMpirun) + " 3";
  ASSERT_EQ(test::run_sisa("train -q -c " + cfg_ + " -r " + run).exit_code, 0);
  const auto ranks_of = [](const std::string& output, const char* list) {
    std::set<int> ranks;
    const auto result = nlohmann::json::parse(output.substr(output.rfind("\n{") + 1));
    for (const auto& s : result.at(list)) ranks.insert(s.at("rank").get<int>());
    return ranks;
  };
  auto r = test::run_sisa("verify -q --json -r " + run, mpirun3);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ranks_of("\n" + r.output, "shards"), (std::set<int>{1, 2})) << r.output;
  // Damage two shards' last checkpoints; repair rebuilds them on the workers, exactly.
  const auto digests = stage_digests(run);
  const Manifest m = load_manifest(run);
  for (int s : {0, 2}) fs::resize_file(run + "/" + m.entries[s].final_checkpoint().file.path, 64);
  r = test::run_sisa("repair -q --json -r " + run, mpirun3);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto repair_ranks = ranks_of("\n" + r.output, "repaired_shards");
  EXPECT_FALSE(repair_ranks.count(0)) << r.output;
  EXPECT_EQ(stage_digests(run), digests);
  EXPECT_EQ(test::run_sisa("fsck -q -r " + run).exit_code, 0);
}

// The pid of the `sisa` process that is MPI rank `rank` of a job on `run`.
int find_rank(const std::string& run, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& p : fs::directory_iterator("/proc")) {
    const std::string name = p.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd(p.path() / "cmdline"), env(p.path() / "environ");
    const std::string cmdline((std::istreambuf_iterator<char>(cmd)), {});
    const std::string environ((std::istreambuf_iterator<char>(env)), {});
    if (cmdline.find(SISA_BINARY) != 0 || cmdline.find(run) == std::string::npos) continue;
    std::stringstream vars(environ);
    for (std::string v; std::getline(vars, v, '\0');) {
      if (v == want) return std::stoi(name);
    }
  }
  return -1;
}

TEST_F(Distributed, AKilledWorkerLeavesAJournalAndTheRerunResumesExactly) {
  const Dataset big = test::synthetic(2400, 32, 4, 37);
  test::write_csv(big, dir_ / "big.csv");
  const std::string cfg = dir_ / "big.yaml";
  test::write_text(cfg, test::config_yaml(dir_ / "big.csv", dir_ / "big.csv", 32, 4, "  type: mlp\n  hidden: [64]\n",
                                          "  shards: 3\n  slices: 3\n", "  epochs: 6\n  batch_size: 4\n  lr: 0.01\n"));
  ASSERT_EQ(test::run_sisa("train -q -c " + cfg + " -r " + (dir_ / "whole")).exit_code, 0);

  const std::string run = dir_ / "killed";
  const std::string cmd = std::string(kMpirun) + " 2 " + SISA_BINARY + " train -q -c " + cfg + " -r " + run;
  ASSERT_EQ(std::system(("(" + cmd + " > " + (dir_ / "log") + " 2>&1; echo $? > " + (dir_ / "rc") + ") &").c_str()), 0);
  // Wait until the worker has finished a few stages, then kill it.
  int worker = -1;
  for (int i = 0; i < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (fs::exists(run + "/ckpt/shard-000/stage-02.g0.h5") || fs::exists(run + "/ckpt/shard-001/stage-02.g0.h5") ||
        fs::exists(run + "/ckpt/shard-002/stage-02.g0.h5")) {
      worker = find_rank(run, 1);
      break;
    }
  }
  ASSERT_GT(worker, 0) << "the worker was not found running";
  ::kill(worker, SIGKILL);
  for (int i = 0; i < 1200 && !fs::exists(dir_ / "rc"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(fs::exists(dir_ / "rc"));
  EXPECT_NE(test::snapshot(dir_.path()).at("rc"), "0\n") << "the job should have failed";
  EXPECT_FALSE(fs::exists(run + "/MANIFEST.json"));  // nothing published
  EXPECT_TRUE(fs::exists(run + "/journal"));

  const auto r = test::run_sisa("train -c " + cfg + " -r " + run, std::string(kMpirun) + " 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming after stage"), std::string::npos) << r.output;
  EXPECT_EQ(stage_digests(run), stage_digests(dir_ / "whole"));
  EXPECT_FALSE(fs::exists(run + "/journal/shard-000.json"));  // journals go once published
  EXPECT_TRUE(fsck(run)["ok"].get<bool>());
}

}  // namespace
