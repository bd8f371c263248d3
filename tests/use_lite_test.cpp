// USE-Lite, the real pretrained encoder (issue #27), checked against its own
// implementation: the npm package's JavaScript, run under node by
// scripts/fetch-encoder.sh (scripts/use-lite-reference.js), wrote the token
// ids (and embeddings) of 23 test sentences; the port here must give the
// same ids. Skipped, saying so, when the package was not fetched.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>

#include "format/use_lite_package.h"
#include "nn/use_lite_encoder.h"
#include "sisa/errors.h"
#include "sisa/pretrain.h"
#include "sisa/run.h"
#include "test_util.h"
#include "text/use_tokenizer.h"
#include "util/sha256.h"

using namespace sisa;

namespace {

const std::string kEncoder = std::string(SISA_SOURCE_DIR) + "/encoders/use-lite";

class UseLite : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kEncoder + "/reference.json")) {
      GTEST_SKIP() << "USE-Lite is not fetched: run bash scripts/fetch-encoder.sh (npm, node; opt-in)";
    }
    reference_ = nlohmann::json::parse(test::read_text(kEncoder + "/reference.json"));
  }
  nlohmann::json reference_;
};

TEST_F(UseLite, TokenIdsAreThePackagesOwn) {
  const UseTokenizer tokenizer(kEncoder + "/model/vocab.json");
  EXPECT_EQ(tokenizer.vocab_size(), 8000);
  size_t checked = 0, longest = 0;
  for (const auto& row : reference_["sentences"]) {
    const auto want = row["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer.encode(row["text"].get<std::string>()), want) << row["text"];
    longest = std::max(longest, want.size());
    ++checked;
  }
  EXPECT_GE(checked, 20u);
  EXPECT_GT(longest, 128u) << "one sentence must be cut at the encoder's 128 tokens";
  EXPECT_THROW(tokenizer.encode("bad \xff byte"), DataError);
}

// The port of the graph, from the backbone file `sisa import-encoder` writes:
// every sentence's embedding within 1e-5 of the package's (they differ by
// float32 rounding: ~8e-7 measured), the 141-token one cut at 128.
TEST_F(UseLite, EmbeddingsAreThePackagesWithin1e5) {
  test::TempDir dir;
  const Backbone imported = read_use_lite_package(kEncoder + "/model");
  EXPECT_EQ(imported.architecture, "use-lite");
  EXPECT_EQ(imported.tokenizer_sha256, sha256_file(kEncoder + "/model/vocab.json"));
  const auto bytes = encode_backbone(imported);
  test::write_text(dir / "use-lite.h5", std::string(bytes.begin(), bytes.end()));
  const Backbone b = read_backbone(dir / "use-lite.h5");
  ASSERT_EQ(b.architecture, "use-lite");
  UseLiteEncoder encoder;
  encoder.load(b.weights, "use-lite.h5");
  encoder.eval();
  torch::NoGradGuard no_grad;
  double worst = 0.0;
  size_t compared = 0;
  for (const auto& row : reference_["sentences"]) {
    const auto ids = row["ids"].get<std::vector<int64_t>>();
    if (ids.empty()) continue;  // the package's graph cannot take an empty sentence
    const auto want = torch::tensor(row["embedding"].get<std::vector<float>>());
    const auto got = encoder.embed_one(torch::tensor(ids));
    const double diff = (got - want).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5) << row["text"];
    worst = std::max(worst, diff);
    ++compared;
  }
  EXPECT_GE(compared, 20u);
  std::cout << "USE-Lite port: largest difference from the package " << worst << " over " << compared << " sentences\n";
  // The batched path the fine-tuned families train (padding masked as the
  // graph masks it) gives the package's embeddings too.
  std::vector<std::vector<int64_t>> rows;
  for (const auto& row : reference_["sentences"]) {
    auto ids = row["ids"].get<std::vector<int64_t>>();
    if (ids.empty()) continue;
    ids.resize(std::min<size_t>(ids.size(), 40));  // a batch 40 wide: most rows padded
    rows.push_back(ids);
  }
  auto tokens = torch::zeros({static_cast<int64_t>(rows.size()), 40}, torch::kInt64);
  auto lengths = torch::zeros({static_cast<int64_t>(rows.size())}, torch::kInt64);
  for (size_t i = 0; i < rows.size(); ++i) {
    tokens[static_cast<int64_t>(i)].slice(0, 0, static_cast<int64_t>(rows[i].size())).copy_(torch::tensor(rows[i]));
    lengths[static_cast<int64_t>(i)] = static_cast<int64_t>(rows[i].size());
  }
  const auto batched = encoder.forward_batch(tokens, lengths);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto one = encoder.embed_one(torch::tensor(rows[i]));
    EXPECT_LE((batched[static_cast<int64_t>(i)] - one).abs().max().item<double>(), 1e-5) << i;
  }
  // A batch of rows gives each row's own embedding, whatever its neighbours.
  const auto t = torch::tensor({{5, 9, 30, 0, 0}, {11, 12, 13, 14, 15}}, torch::kInt64);
  const auto batch = encoder.forward(t, torch::tensor({3, 5}, torch::kInt64));
  EXPECT_TRUE(torch::equal(batch[0], encoder.embed_one(torch::tensor({5, 9, 30}, torch::kInt64))));
  EXPECT_TRUE(torch::equal(batch[1], encoder.embed_one(t[1])));
}

// The text families over USE-Lite, imported once (backbone + vocabulary) and
// pinned in the run like any backbone: sisa-fc (a head over its embedding),
// transformer (fine-tuning every tensor) and sisa-a (adapters inside its
// blocks), each exact under forget.
TEST_F(UseLite, EachTextFamilyOverTheImportedEncoderForgetsExactly) {
  test::TempDir dir;
  const auto imported = import_encoder({kEncoder + "/model", dir / "use-lite.h5"});
  EXPECT_EQ(imported["tokenizer"], dir / "use-lite.vocab.json");
  EXPECT_EQ(imported["parameters"], 6975872);
  const char* glosses[] = {"a domestic animal kept for companionship",
                           "a large body of salt water",
                           "to move swiftly on foot",
                           "a feline that hunts mice",
                           "the act of running a race",
                           "a river flowing to the sea",
                           "to travel on water in a boat",
                           "a small dog with short legs"};
  std::string csv = "id,label,text\n";
  for (int i = 0; i < 96; ++i) {
    const int g = i % 8;
    csv += std::to_string(5000 + i) + "," + std::to_string(g % 3) + ",\"" + glosses[g] + " number " +
           std::to_string(i) + "\"\n";
  }
  test::write_text(dir / "glosses.csv", csv);
  const auto config = [&](const std::string& type) {
    test::write_text(dir / (type + ".yaml"),
                     "seed: 3\ndata:\n  format: csv\n  train: glosses.csv\n  test: glosses.csv\n  num_classes: 3\n"
                     "  input_shape: [16]\n  id_column: id\n  text_column: text\n  tokenizer: use-lite.vocab.json\n"
                     "  max_tokens: 16\nsisa:\n  shards: 2\n  slices: 2\nmodel:\n  type: " +
                         type + "\n  backbone: use-lite.h5\ntrain:\n  epochs: 4\n  batch_size: 16\n  lr: 0.01\n");
    return dir / (type + ".yaml");
  };
  const std::vector<int64_t> doomed = {5003, 5010, 5077};
  train({config("sisa-fc"), {}, dir / "a", {}});
  train({dir / "sisa-fc.yaml", {}, dir / "c", doomed});
  forget({dir / "a", doomed});
  EXPECT_EQ(test::stage_digests(dir / "a"), test::stage_digests(dir / "c"));
  EXPECT_TRUE(verify({dir / "a", {}, false})["identical"].get<bool>());
  PredictRequest p;
  p.run_dir = dir / "a";
  EXPECT_GT(predict(p)["accuracy_mean"].get<double>(), 0.6);  // chance: 1/3
  // Fine-tuned (transformer) and adapted (sisa-a) inside its blocks: exact
  // too; sisa-a's checkpoints hold its adapters and LayerNorms, not the encoder.
  for (const std::string type : {"sisa-a", "transformer"}) {
    const std::string a = dir / (type + "-a"), c = dir / (type + "-c");
    train({config(type), {}, a, {}});
    train({dir / (type + ".yaml"), {}, c, doomed});
    forget({a, doomed});
    EXPECT_EQ(test::stage_digests(a), test::stage_digests(c)) << type;
    EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>()) << type;
    const auto in_checkpoints = [&](const std::string& tensor) {
      return !test::checkpoints_containing(a, tensor).empty();
    };
    EXPECT_TRUE(in_checkpoints("encoder.l1.norm1_scale")) << type;
    EXPECT_EQ(in_checkpoints("encoder.l1.qkv_w"), type == "transformer");
    EXPECT_EQ(in_checkpoints("encoder.l0.adapter1_down.weight"), type == "sisa-a");
  }
  // sisa-a with the bottom layer cached: adapters and LayerNorms of the top
  // layer only; the bottom layer's output per row sits beside the tokens.
  const std::string a = dir / "cached-a", c = dir / "cached-c";
  train({config("sisa-a"), {"model.cached_layers=1"}, a, {}});
  train({dir / "sisa-a.yaml", {"model.cached_layers=1"}, c, doomed});
  forget({a, doomed});
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(c));
  EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>());
  EXPECT_FALSE(test::checkpoints_containing(a, "encoder.l1.adapter1_down.weight").empty());
  EXPECT_TRUE(test::checkpoints_containing(a, "encoder.l0.norm1_scale").empty()) << "the cached layer is frozen";
  p.run_dir = a;
  EXPECT_GT(predict(p)["accuracy_mean"].get<double>(), 0.6);
  try {
    train({dir / "sisa-a.yaml", {"model.cached_layers=2"}, dir / "never", {}});
    ADD_FAILURE() << "cached_layers 2 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.cached_layers: 2 needs a use-lite backbone"), std::string::npos)
        << e.what();
  }
}

}  // namespace
