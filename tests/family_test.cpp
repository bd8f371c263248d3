// The model-family seam (src/nn/model_family.h), proven with a family that
// exists only here: a linear classifier over the bag of words of token-id
// sequences. It is registered with one line and trains, forgets, verifies
// and predicts through the unchanged engine, exactly.
#include <gtest/gtest.h>

#include <fstream>

#include "nn/model_family.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "test_util.h"

using namespace sisa;
using sisa::test::TempDir;

namespace {

// logits = mean over a sequence's tokens of (E + P)[token] + b. Padding
// (after each row's length) does not count. P, the optional "prior" table,
// stands in for a pretrained part: read from a shared artifact (raw float32,
// vocab x classes), the same in every shard, never trained or checkpointed.
class BagOfWords : public ShardNet {
 public:
  BagOfWords(int64_t vocab, int64_t classes, const std::string& prior_file) {
    embed_ = register_parameter("embed", torch::zeros({vocab, classes}));
    bias_ = register_parameter("bias", torch::zeros({classes}));
    if (!prior_file.empty()) {
      std::ifstream in(prior_file, std::ios::binary);
      std::vector<float> values(static_cast<size_t>(vocab * classes));
      if (!in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * 4))) {
        throw DataError("model.prior: '" + prior_file + "' is not " + std::to_string(values.size()) + " floats");
      }
      prior_ = register_parameter("prior", torch::tensor(values).reshape({vocab, classes}), /*requires_grad=*/false);
    }
  }
  torch::Tensor forward(const Batch& batch, at::Generator*) override {
    const auto n = batch.inputs.size(0), len = batch.inputs.size(1);
    auto table = prior_.defined() ? embed_ + prior_ : embed_;
    auto vectors = table.index_select(0, batch.inputs.reshape({-1})).reshape({n, len, -1});
    auto mask = (torch::arange(len).unsqueeze(0) < batch.lengths.unsqueeze(1)).to(torch::kFloat32);
    auto sum = (vectors * mask.unsqueeze(2)).sum(1);
    return sum / batch.lengths.clamp_min(1).to(torch::kFloat32).unsqueeze(1) + bias_;
  }

 private:
  torch::Tensor embed_, bias_, prior_;
};

class BagOfWordsFamily : public ModelFamily {
 public:
  ModelSpec spec() const override {
    ModelSpec s;
    s.name = "test-bag-of-words";
    s.input = InputKind::kTokens;
    s.options = {
        {"vocab", int64_t{32},
         [](const ModelOption& v) { return std::get<int64_t>(v) >= 2 ? "" : std::string("must be >= 2"); }},
        {"prior", std::string(), nullptr, /*identity=*/true, /*artifact=*/true},
    };
    s.vocab_size = [](const Config& c) { return c.model.get<int64_t>("vocab"); };
    return s;
  }
  std::shared_ptr<ShardNet> build(const Config& c) const override {
    return std::make_shared<BagOfWords>(c.model.get<int64_t>("vocab"), c.data.num_classes,
                                        c.model.get<std::string>("prior"));
  }
  bool owns(const std::string& tensor) const override { return tensor != "prior"; }
  void initialize(ShardNet& net, at::Generator& gen) const override {
    torch::NoGradGuard no_grad;
    for (auto& p : net.named_parameters()) {
      if (owns(p.key())) p.value().normal_(0.0, 0.1, gen);
    }
  }
};

SISA_REGISTER_MODEL_FAMILY(BagOfWordsFamily);

class Family : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic_tokens(240, 8, 32, 5, /*groups=*/0);
    test::write_hdf5(data_, dir_ / "train.h5");
  }
  std::string config(const std::string& model_yaml) {
    const std::string path = dir_ / "config.yaml";
    test::write_text(path, test::config_yaml(dir_ / "train.h5", dir_ / "train.h5", 8, 3, model_yaml,
                                             "  shards: 3\n  slices: 3\n",
                                             "  epochs: 4\n  batch_size: 16\n  optimizer: adam\n  lr: 0.05\n"));
    return path;
  }
  // Ids of shard `shard` (seed 7, as config_yaml writes).
  std::vector<int64_t> ids_in_shard(int64_t shard, size_t count) const {
    std::vector<int64_t> out;
    for (size_t i = 0; i < data_.size() && out.size() < count; ++i) {
      if (shard_of(7, data_.ids[i], 3) == shard) out.push_back(data_.ids[i]);
    }
    return out;
  }
  TempDir dir_;
  Dataset data_;
};

TEST_F(Family, ATestOnlyFamilyTrainsForgetsAndVerifiesExactly) {
  const std::string cfg = config("  type: test-bag-of-words\n  vocab: 32\n");
  const std::string a = dir_ / "a", c = dir_ / "c";
  std::vector<int64_t> doomed = ids_in_shard(0, 2);
  doomed.push_back(ids_in_shard(2, 1).at(0));
  train({cfg, {}, a, {}});
  train({cfg, {}, c, doomed});
  EXPECT_NE(test::stage_digests(a), test::stage_digests(c));
  const auto receipt = forget({a, doomed});
  EXPECT_EQ(receipt["deleted_count"], 3);
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(c));
  EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>());
  EXPECT_TRUE(fsck(a)["ok"].get<bool>()) << fsck(a).dump(2);
  // Deleted token rows are gone from every file; kept ones are still stored.
  for (int64_t id : doomed) {
    EXPECT_EQ(test::files_containing(a, test::row_bytes(data_, id)), std::vector<std::string>{}) << id;
  }
  EXPECT_EQ(test::files_containing(a, test::row_bytes(data_, ids_in_shard(1, 1).at(0))).size(), 1u);
  // The ensemble reads token ids too, and has learned the rule.
  PredictRequest p;
  p.run_dir = a;
  const auto out = predict(p);
  EXPECT_GT(out["accuracy_mean"].get<double>(), 0.5) << out.dump();  // chance: about 1/3
}

// Frozen tensors come from a shared artifact: copied into the run under its
// content name, part of the identity, neither trained nor checkpointed, and
// checked by every command. Training and forgetting stay exact.
TEST_F(Family, FrozenTensorsComeFromASharedArtifact) {
  std::vector<float> prior(32 * 3);
  for (size_t i = 0; i < prior.size(); ++i) prior[i] = static_cast<float>(i % 7) / 70.0f;
  test::write_text(dir_ / "prior.bin", std::string(reinterpret_cast<const char*>(prior.data()), prior.size() * 4));
  const std::string cfg = config("  type: test-bag-of-words\n  prior: prior.bin\n");
  const std::string a = dir_ / "a", c = dir_ / "c";
  const std::vector<int64_t> doomed = ids_in_shard(1, 2);
  train({cfg, {}, a, {}});
  train({cfg, {}, c, doomed});
  std::filesystem::remove(dir_ / "prior.bin");  // the run holds its own copy
  forget({a, doomed});
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(c));
  EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>());
  EXPECT_TRUE(fsck(a)["ok"].get<bool>()) << fsck(a).dump(2);
  // No checkpoint names the frozen tensor; the trained one has Adam state.
  for (const auto& file : test::files_containing(a, "prior")) {
    EXPECT_EQ(file.rfind("ckpt/", 0), std::string::npos) << file;
  }
  EXPECT_FALSE(test::files_containing(a, "optim.exp_avg.embed").empty());
  // The copy is named by its content and survives the purge of the forget.
  std::string copy;
  for (const auto& [rel, bytes] : test::snapshot(a)) {
    if (rel.rfind("artifacts/", 0) == 0) copy = rel;
  }
  ASSERT_EQ(copy.size(), std::string("artifacts/").size() + 64 + 4) << copy;

  // An artifact changed on disk: forget and predict refuse, naming the file.
  prior[0] += 1.0f;
  test::write_text(a + "/" + copy, std::string(reinterpret_cast<const char*>(prior.data()), prior.size() * 4));
  const auto refused = [&](const std::function<void()>& command) {
    try {
      command();
    } catch (const CorruptionError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  PredictRequest p;
  p.run_dir = a;
  for (const std::string& why : {refused([&] { forget({a, ids_in_shard(2, 1)}); }), refused([&] { predict(p); })}) {
    EXPECT_NE(why.find(copy + ": SHA-256 does not match MANIFEST.json"), std::string::npos) << why;
    EXPECT_NE(why.find("shared artifact model.prior"), std::string::npos) << why;
  }
  EXPECT_FALSE(fsck(a)["ok"].get<bool>());
}

TEST_F(Family, BadTokenDataIsRefusedBeforeTheRunExists) {
  const std::string cfg = config("  type: test-bag-of-words\n  vocab: 16\n");
  try {
    train({cfg, {}, dir_ / "r", {}});
    FAIL() << "a token id beyond model.vocab was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary [0, 16)"), std::string::npos) << e.what();
  }
  // A token family on float features is refused naming both.
  test::write_hdf5(test::synthetic(50, 8, 3, 1), dir_ / "train.h5");
  try {
    train({config("  type: test-bag-of-words\n"), {}, dir_ / "r2", {}});
    FAIL() << "float features were accepted by a token family";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("holds float features but model family 'test-bag-of-words' reads token ids"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
