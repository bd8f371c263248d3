// The core property (docs/design.md, "The guarantee"): after forget, every shard's
// parameters, buffers and optimizer state are bit-identical to training from
// scratch without the deleted samples. Real HDF5 files in temp directories.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "format/manifest.h"
#include "nn/stacked_mlp.h"
#include "run/seams.h"
#include "sisa/config.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sisa;
using sisa::test::row_bytes;
using sisa::test::stage_digests;
using sisa::test::TempDir;

namespace {

constexpr uint64_t kSeed = 7;  // test_util's config_yaml uses seed 7

// Ids of `d` in shard `shard` and slice `slice` (slice 0: any).
std::vector<int64_t> ids_at(const Dataset& d, int64_t shards, int64_t slices, int64_t shard, int64_t slice) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (shard_of(kSeed, d.key(i), shards) == shard && (slice == 0 || slice_of(kSeed, d.key(i), slices) == slice)) {
      out.push_back(d.ids[i]);
    }
  }
  return out;
}

class Exactness : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic(300, 8, 3, 11);
    test::write_csv(data_, dir_ / "train.csv");
  }
  std::string config(const std::string& train_yaml,
                     const std::string& model_yaml = "  type: mlp\n  hidden: [16]\n  dropout: 0.2\n") {
    const std::string path = dir_ / ("config" + std::to_string(n_configs_++) + ".yaml");
    test::write_text(path, test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", 8, 3, model_yaml,
                                             "  shards: 3\n  slices: 4\n", train_yaml));
    return path;
  }
  TempDir dir_;
  Dataset data_;
  int n_configs_ = 0;
};

const char* kAdam = "  epochs: 4\n  batch_size: 16\n  optimizer: adam\n  lr: 0.01\n";

TEST_F(Exactness, ForgetEqualsRetrainWithoutTheSamples) {
  const std::string cfg = config(kAdam);
  // First, last and a middle slice; shards 0 and 1 only, so shard 2 is untouched.
  const std::vector<int64_t> doomed = {ids_at(data_, 3, 4, 0, 1).at(0), ids_at(data_, 3, 4, 0, 4).at(0),
                                       ids_at(data_, 3, 4, 1, 2).at(0), ids_at(data_, 3, 4, 1, 3).at(1)};
  const std::string a = dir_ / "batch", b = dir_ / "separate", c = dir_ / "excluded";
  train({cfg, {}, a, {}});
  train({cfg, {}, b, {}});
  train({cfg, {}, c, doomed});

  std::map<std::string, std::string> untouched;
  for (const auto& [rel, bytes] : test::snapshot(a)) {
    if (rel.find("shard-002") != std::string::npos) untouched[rel] = bytes;
  }
  ASSERT_EQ(untouched.size(), 6u);  // the store and C_0..C_4

  ForgetRequest batch{a, doomed};
  const auto receipt = forget(batch);
  EXPECT_EQ(receipt["deleted_count"], doomed.size());
  EXPECT_EQ(receipt["shards"].size(), 2u);
  for (int64_t id : doomed) forget({b, {id}});

  const auto expected = stage_digests(c);
  EXPECT_EQ(stage_digests(a), expected);
  EXPECT_EQ(stage_digests(b), expected);

  // Shards without deleted ids keep their files byte for byte.
  const auto after = test::snapshot(a);
  for (const auto& [rel, bytes] : untouched) {
    ASSERT_TRUE(after.count(rel)) << rel;
    EXPECT_EQ(after.at(rel), bytes) << rel;
  }
  // No file in either run directory holds a deleted sample's stored bytes.
  for (int64_t id : doomed) {
    const std::string needle = row_bytes(data_, id);
    ASSERT_FALSE(needle.empty());
    EXPECT_EQ(test::files_containing(a, needle), std::vector<std::string>{}) << "id " << id;
    EXPECT_EQ(test::files_containing(b, needle), std::vector<std::string>{}) << "id " << id;
  }
  // A kept sample's bytes are still in the store (the search does find rows).
  EXPECT_EQ(test::files_containing(a, row_bytes(data_, ids_at(data_, 3, 4, 0, 2).at(0))).size(), 1u);

  EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>());
}

TEST_F(Exactness, SkippingAdamStateIsNotExact) {
  // Negative control: what the reference code does (weights only) must differ.
  const std::string cfg = config(kAdam);
  const int64_t id = ids_at(data_, 3, 4, 1, 2).at(0);  // a middle slice
  const std::string a = dir_ / "a", c = dir_ / "c";
  train({cfg, {}, a, {}});
  train({cfg, {}, c, {id}});
  ForgetRequest req{a, {id}};
  RunSeams control;
  control.trainer.restore_optimizer_state = false;
  forget(req, control);
  const auto got = stage_digests(a), want = stage_digests(c);  // shard s, stage r at 5 s + r
  for (int r = 0; r <= 4; ++r) EXPECT_EQ(got[r], want[r]);     // shard 0 untouched
  EXPECT_EQ(got[5 + 1], want[5 + 1]);                          // shard 1's C_1 is reused untouched
  EXPECT_NE(got[5 + 4], want[5 + 4]);
}

// Distribution-aware placement: ids that are likely to be deleted (weight 1)
// go to the reserved last shard and its last slice, so deleting one retrains
// one stage of one shard; placement stays exact and stable under deletion.
TEST_F(Exactness, WeightedPlacementPutsLikelyDeletionsLastAndStaysExact) {
  std::string weights = "id,weight\n";
  std::vector<int64_t> heavy, light;
  for (size_t i = 0; i < data_.size(); ++i) {
    (i % 10 == 0 ? heavy : light).push_back(data_.ids[i]);
    if (i % 10 == 0) weights += std::to_string(data_.ids[i]) + ",1\n";
  }
  test::write_text(dir_ / "w.csv", weights);
  std::string yaml = test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", 8, 3, "  type: mlp\n  hidden: [16]\n",
                                       "  shards: 3\n  slices: 4\n  placement: weighted\n", kAdam);
  yaml.replace(yaml.find("data:\n") + 6, 0, "  weights_file: w.csv\n");
  const std::string cfg = dir_ / "weighted.yaml";
  test::write_text(cfg, yaml);
  const Placement p = Config::load(cfg).placement();
  for (int64_t id : heavy) {
    EXPECT_EQ(p.shard(id, 1.0), 2);
    EXPECT_EQ(p.slice(id, 1.0), 4);
  }
  for (int64_t id : light) EXPECT_LT(p.shard(id, 0.0), 2);

  const std::string a = dir_ / "a", c = dir_ / "c";
  const auto trained = train({cfg, {}, a, {}});
  const auto& cost = trained["expected_deletion_cost"];
  EXPECT_LT(cost["weighted"].get<double>(), 0.5 * cost["per_key"].get<double>()) << cost.dump();
  const auto one = forget({a, {heavy[3]}});
  ASSERT_EQ(one["shards"].size(), 1u);
  EXPECT_EQ(one["shards"][0]["shard"], 2);
  EXPECT_EQ(one["shards"][0]["retrained_stages"], nlohmann::json::array({4, 4}));
  EXPECT_EQ(one["expected_deletion_cost"], cost);
  const std::vector<int64_t> rest = {heavy[0], light[5], light[40]};
  forget({a, rest});
  train({cfg, {}, c, {heavy[3], heavy[0], light[5], light[40]}});
  EXPECT_EQ(stage_digests(a), stage_digests(c));
  EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>());
  EXPECT_TRUE(fsck(a)["ok"].get<bool>());
  EXPECT_EQ(status(a)["placement"], "weighted");
}

TEST_F(Exactness, SgdWithMomentum) {
  const std::string cfg = config("  epochs: 3\n  batch_size: 10\n  optimizer: sgd\n  lr: 0.05\n  momentum: 0.9\n");
  const std::vector<int64_t> doomed = {ids_at(data_, 3, 4, 2, 3).at(0), ids_at(data_, 3, 4, 0, 2).at(2)};
  train({cfg, {}, dir_ / "a", {}});
  train({cfg, {}, dir_ / "c", doomed});
  forget({dir_ / "a", doomed});
  EXPECT_EQ(stage_digests(dir_ / "a"), stage_digests(dir_ / "c"));
}

TEST_F(Exactness, AlreadyDeletedIdsAreANoOpAndUnknownIdsRejectTheBatch) {
  const std::string cfg = config(kAdam);
  const std::string a = dir_ / "a";
  train({cfg, {}, a, {}});
  const int64_t id = ids_at(data_, 3, 4, 2, 1).at(0);
  forget({a, {id}});
  const auto digests = stage_digests(a);
  const auto again = forget({a, {id}});
  EXPECT_EQ(again["deleted_count"], 0);
  EXPECT_EQ(again["already_deleted"], nlohmann::json::array({id}));
  EXPECT_EQ(stage_digests(a), digests);

  const auto before = test::snapshot(a);
  try {
    forget({a, {ids_at(data_, 3, 4, 0, 0).at(0), 999999, 5}});
    FAIL() << "an unknown id was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("999999"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(": 5, 999999;"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(test::snapshot(a) == before) << "files changed";
  EXPECT_EQ(status(a)["deleted_ids"], 1);
}

TEST(ExactnessSmall, EmptySlicesAndAShardEmptiedByDeletion) {
  TempDir dir;
  const Dataset d = test::synthetic(7, 4, 2, 5);
  test::write_csv(d, dir / "train.csv");
  const std::string cfg = dir / "c.yaml";
  test::write_text(cfg, test::config_yaml(dir / "train.csv", dir / "train.csv", 4, 2, "  type: mlp\n  hidden: [4]\n",
                                          "  shards: 2\n  slices: 4\n", "  epochs: 3\n  batch_size: 2\n  lr: 0.01\n"));
  const auto doomed = ids_at(d, 2, 4, 0, 0);  // every sample of shard 0
  ASSERT_FALSE(doomed.empty());
  ASSERT_LT(doomed.size(), d.size());
  train({cfg, {}, dir / "a", {}});
  train({cfg, {}, dir / "c", doomed});
  forget({dir / "a", doomed});
  EXPECT_EQ(stage_digests(dir / "a"), stage_digests(dir / "c"));
  EXPECT_EQ(status(dir / "a")["shard_status"][0]["n_samples"], 0);
  const auto p = predict({dir / "a"});
  EXPECT_EQ(p["shards_used"], 1);  // the empty shard is left out of aggregation
  const auto q = predict({dir / "c"});
  EXPECT_EQ(p["accuracy_mean"], q["accuracy_mean"]);
  EXPECT_EQ(p["accuracy_vote"], q["accuracy_vote"]);
}

TEST(ExactnessCnn, BatchNormDropoutAndAMergedFinalBatchFromHdf5) {
  TempDir dir;
  const Dataset d = test::synthetic(120, 16, 3, 9);
  test::write_hdf5(d, dir / "train.h5");
  // Delete one sample of shard 0 and pick the batch size so the shard's last
  // stage then has B + 1 samples: its final batch of 1 merges into the previous.
  const auto shard0 = ids_at(d, 2, 3, 0, 0);
  const int64_t doomed = ids_at(d, 2, 3, 0, 2).at(0);
  const auto batch = static_cast<int64_t>(shard0.size()) - 2;
  ASSERT_GE(batch, 4);
  const std::string cfg = dir / "c.yaml";
  test::write_text(cfg, test::config_yaml(dir / "train.h5", dir / "train.h5", 16, 3,
                                          "  type: cnn\n  channels: [3]\n  hidden: [8]\n  dropout: 0.25\n"
                                          "  batch_norm: true\n",
                                          "  shards: 2\n  slices: 3\n",
                                          "  epochs: 3\n  batch_size: " + std::to_string(batch) + "\n  lr: 0.01\n",
                                          false, "[1, 4, 4]"));
  train({cfg, {}, dir / "a", {}});
  train({cfg, {}, dir / "c", {doomed}});
  forget({dir / "a", {doomed}});
  EXPECT_EQ(stage_digests(dir / "a"), stage_digests(dir / "c"));
  // BatchNorm running statistics are part of the fingerprint and moved.
  const auto m = load_manifest(dir / "a");
  EXPECT_NE(m.entries[0].checkpoints[0].fingerprint, m.entries[0].checkpoints[3].fingerprint);
  EXPECT_TRUE(verify({dir / "a", {0}, false})["identical"].get<bool>());
}

TEST(ExactnessGroups, ForgettingADataSubjectRemovesAllTheirRows) {
  TempDir dir;
  const Dataset d = test::synthetic(200, 6, 3, 13, /*groups=*/20);
  test::write_csv(d, dir / "train.csv");
  const std::string cfg = dir / "c.yaml";
  test::write_text(cfg,
                   test::config_yaml(dir / "train.csv", dir / "train.csv", 6, 3, "  type: mlp\n  hidden: [8]\n",
                                     "  shards: 4\n  slices: 3\n", "  epochs: 2\n  batch_size: 8\n", /*grouped=*/true));
  std::vector<int64_t> rows_of_subjects;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d.groups[i] == 3 || d.groups[i] == 11) rows_of_subjects.push_back(d.ids[i]);
  }
  train({cfg, {}, dir / "a", {}});
  train({cfg, {}, dir / "c", rows_of_subjects});
  ForgetRequest req{dir / "a", {3, 11}};
  req.by_group = true;
  const auto receipt = forget(req);
  EXPECT_EQ(receipt["deleted_count"], rows_of_subjects.size());
  EXPECT_LE(receipt["shards"].size(), 2u);  // one subject lives in one shard
  EXPECT_EQ(stage_digests(dir / "a"), stage_digests(dir / "c"));
}

}  // namespace

// Serving evaluates all shards' MLPs as one stacked network; it must give
// each shard's own posteriors (to float rounding: the multiplies are grouped
// differently), for any depth and activation, and for a batch of one.
TEST(StackedMlp, MatchesEachShardModel) {
  TempDir dir;
  test::write_csv(test::synthetic(40, 6, 4, 5), dir / "train.csv");
  for (const std::string model : {"  type: mlp\n  hidden: [16, 8]\n  activation: tanh\n", "  type: mlp\n  hidden: []\n",
                                  "  type: mlp\n  hidden: [12]\n"}) {
    const std::string cfg = dir / "c.yaml";
    test::write_text(cfg, test::config_yaml(dir / "train.csv", dir / "train.csv", 6, 4, model,
                                            "  shards: 3\n  slices: 1\n", "  epochs: 1\n"));
    const Config c = Config::load(cfg, {});
    std::vector<ModelState> states;
    for (int64_t s = 0; s < 3; ++s) states.push_back(ShardTrainer(c, s).initial_state());
    const auto stacked = StackedMlp::build(c, {&states[0], &states[1], &states[2]});
    ASSERT_TRUE(stacked) << model;
    const Dataset d = load_source(c.data, Split::kTrain);
    for (int64_t n : {int64_t{1}, int64_t{40}}) {
      const auto all = stacked->posteriors(d.inputs.data(), n);
      for (int64_t s = 0; s < 3; ++s) {
        const auto own = ShardModel(c, states[s]).posteriors(d.inputs.data(), n);
        for (int64_t i = 0; i < n * 4; ++i) {
          EXPECT_NEAR(all[s * n * 4 + i], own[i], 1e-6) << model << " shard " << s << " n " << n;
        }
      }
    }
  }
}
