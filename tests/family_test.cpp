// The model-family seam (src/nn/model_family.h), proven with a family that
// exists only here: a linear classifier over the bag of words of token-id
// sequences. It is registered with one line and trains, forgets, verifies
// and predicts through the unchanged engine, exactly.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "nn/dropout.h"
#include "nn/model_family.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "sisa/shard_trainer.h"
#include "test_util.h"
#include "text/tokenizer.h"

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

// The torch-free half: the family's keys (a shipped family keeps this in
// src/config/, where the sanitizer build and every command can read it).
ModelSpec bag_of_words_spec() {
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
SISA_REGISTER_MODEL_SPEC(bag_of_words_spec);

// The torch half.
class BagOfWordsFamily : public ModelFamily {
 public:
  std::string name() const override { return "test-bag-of-words"; }
  std::shared_ptr<ShardNet> build(const Config& c) const override {
    return std::make_shared<BagOfWords>(c.model.get<int64_t>("vocab"), c.data.num_classes,
                                        c.model.get<std::string>("prior"));
  }
  bool owns(const ShardNet&, const std::string& tensor) const override { return tensor != "prior"; }
  void initialize(ShardNet& net, at::Generator& gen) const override {
    torch::NoGradGuard no_grad;
    for (auto& p : net.named_parameters()) {
      if (owns(net, p.key())) p.value().normal_(0.0, 0.1, gen);
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
    test::write_text(
        path, test::config_yaml(dir_ / "train.h5", dir_ / "train.h5", 8, 3, model_yaml, "  shards: 3\n  slices: 3\n",
                                "  epochs: 4\n  batch_size: 16\n  optimizer: adam\n  lr: 0.05\n"));
    return path;
  }
  // Ids of shard `shard` (seed 7, as config_yaml writes).
  std::vector<int64_t> ids_in_shard(int64_t shard, size_t count) const {
    return test::ids_in_shard(data_, shard, 3, count);
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

// Text: a CSV text column (RFC 4180 quoting: commas, quotes, line breaks)
// tokenized at ingest by a SentencePiece model that the run pins as a shared
// artifact; the same family then trains, forgets and verifies exactly.
TEST_F(Family, TextRowsAreTokenizedWithATokenizerPinnedInTheRun) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "dlmopen (the SentencePiece plugin) is not supported under AddressSanitizer";
#endif
  const std::vector<std::vector<std::string>> words = {
      {"cat", "dog", "horse", "bird", "fish", "wolf", "sheep", "goat", "mouse", "lion"},
      {"rain", "snow", "wind", "storm", "cloud", "sun", "fog", "hail", "frost", "thunder"},
      {"run", "walk", "swim", "fly", "jump", "climb", "crawl", "ride", "drive", "sail"}};
  std::string csv = "id,label,text\n", corpus;
  uint64_t x = 3;
  for (int i = 0; i < 150; ++i) {
    std::string text;
    for (int w = 0; w < 3 + i % 5; ++w) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      text += (w ? " " : "") + words[i % 3][(x >> 33) % 10];
    }
    if (i == 4) {
      text += ", the \"\"very\"\" long\ntale";
      for (int k = 0; k < 12; ++k) text += " of it all and more";
    }
    corpus += text + "\n";
    csv += std::to_string(1000 + i) + "," + std::to_string(i % 3) + ",\"" + text + "\"\n";
  }
  test::write_text(dir_ / "text.csv", csv);
  test::write_text(dir_ / "corpus.txt", corpus);
  TokenizerTraining t;
  t.input = dir_ / "corpus.txt";
  t.model_path = dir_ / "tok.model";
  t.vocab_size = 48;
  Tokenizer::train(t);
  const std::string yaml =
      "seed: 7\ndata:\n  format: csv\n  train: text.csv\n  test: text.csv\n  num_classes: 3\n"
      "  input_shape: [48]\n  id_column: id\n  text_column: text\n  tokenizer: tok.model\n  max_tokens: 48\n"
      "sisa:\n  shards: 3\n  slices: 2\nmodel:\n  type: test-bag-of-words\n  vocab: 48\n"
      "train:\n  epochs: 4\n  batch_size: 8\n  lr: 0.05\n";
  test::write_text(dir_ / "text.yaml", yaml);
  const std::string cfg = dir_ / "text.yaml", a = dir_ / "ta", c = dir_ / "tc";
  const std::vector<int64_t> doomed = {1004, 1010, 1077};
  const auto trained = train({cfg, {}, a, {}});
  EXPECT_EQ(trained["texts_truncated"], 1);
  train({cfg, {}, c, doomed});
  forget({a, doomed});
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(c));
  EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>());
  PredictRequest p;
  p.run_dir = a;
  EXPECT_GT(predict(p)["accuracy_mean"].get<double>(), 0.6);
  // The run holds its own copy of the tokenizer; a changed copy is refused by name.
  std::string copy;
  for (const auto& [rel, bytes] : test::snapshot(a)) {
    if (rel.rfind("artifacts/", 0) == 0) copy = rel;
  }
  ASSERT_FALSE(copy.empty());
  std::ofstream(a + "/" + copy, std::ios::app) << "x";
  try {
    forget({a, {1001}});
    FAIL() << "a changed tokenizer was accepted";
  } catch (const CorruptionError& e) {
    EXPECT_NE(std::string(e.what()).find("shared artifact data.tokenizer"), std::string::npos) << e.what();
  }
  // Bad text names its row.
  test::write_text(dir_ / "text.csv", "id,label,text\n1000,0,cat dog\n1001,1,\"  \"\n");
  try {
    train({cfg, {}, dir_ / "bad", {}});
    FAIL() << "empty text was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("text.csv:3: id 1001 has empty text"), std::string::npos) << e.what();
  }
  test::write_text(dir_ / "text.csv", "id,label,text\n1000,0,cat \xff dog\n");
  try {
    train({cfg, {}, dir_ / "bad2", {}});
    FAIL() << "invalid UTF-8 was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("id 1000: text is not valid UTF-8"), std::string::npos) << e.what();
  }
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

// set_compute_threads installs the huge-page allocator: a tensor of 32 MiB
// or more starts on a 2 MiB boundary, and arithmetic on it gives the same
// bits as on a small tensor (alignment is not part of any result).
TEST(HugePageAllocator, LargeTensorsAreHugePageAlignedAndComputeTheSameBits) {
  sisa::set_compute_threads(1);
  const int64_t rows = (int64_t{33} << 20) / (64 * sizeof(float));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto large = torch::randn({rows, 64}, gen);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large.data_ptr()) % (uintptr_t{2} << 20), 0u);
  const auto w = torch::randn({64, 8}, gen);
  const auto head = large.slice(0, 0, 16);
  const auto small = head.clone();  // under 32 MiB: libtorch's own path
  EXPECT_TRUE(torch::equal(head.matmul(w), small.matmul(w)));
  EXPECT_TRUE(torch::equal(head.softmax(-1), small.softmax(-1)));
  // Out of memory names the size, like libtorch's own allocator.
  try {
    torch::empty({int64_t{1} << 48}, torch::kFloat32);  // 1 PiB
    ADD_FAILURE() << "a 1 PiB tensor was allocated";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("1125899906842624 bytes"), std::string::npos) << e.what();
  }
}

// Dropout masks come from nn/dropout's bernoulli_mask, a faster restatement of
// bernoulli_: the same elements and the generator left in the same state, at
// sizes around the mt19937 block (624 words) and from states part-way through one.
TEST(BernoulliMask, DrawsWhatBernoulliDrawsAndLeavesTheGeneratorWhereItLeavesIt) {
  for (const int64_t n : {1, 7, 311, 312, 313, 623, 624, 625, 1249, 2048, 2049, 65536, 100003}) {
    for (const double p : {0.0, 0.1, 0.5, 0.9, 0.75, 1.0}) {
      for (const uint64_t seed : {0ull, 1ull, 987654321ull}) {
        auto a = at::make_generator<at::CPUGeneratorImpl>(seed);
        auto b = at::make_generator<at::CPUGeneratorImpl>(seed);
        a.get<at::CPUGeneratorImpl>()->random();  // start part-way through a block
        b.get<at::CPUGeneratorImpl>()->random();
        for (int round = 0; round < 3; ++round) {
          const auto like = torch::empty({n});
          const auto expected = torch::empty_like(like).bernoulli_(p, a);
          const auto got = bernoulli_mask(like, p, b);
          ASSERT_TRUE(torch::equal(expected, got)) << "n " << n << ", p " << p << ", seed " << seed;
        }
        ASSERT_EQ(a.get<at::CPUGeneratorImpl>()->random64(), b.get<at::CPUGeneratorImpl>()->random64());
      }
    }
  }
  // Shapes and what the fast path does not take (doubles, a transposed view) give bernoulli_'s answer too.
  auto a = at::make_generator<at::CPUGeneratorImpl>(5), b = at::make_generator<at::CPUGeneratorImpl>(5);
  for (const auto& like : {torch::empty({128, 512}), torch::empty({3, 5, 7}), torch::empty({4, 6}, torch::kFloat64),
                           torch::empty({6, 4}).t()}) {
    const auto expected = torch::empty_like(like).bernoulli_(0.9, a);
    const auto got = bernoulli_mask(like, 0.9, b);
    EXPECT_EQ(got.sizes(), like.sizes());
    EXPECT_TRUE(torch::equal(expected, got));
  }
}
