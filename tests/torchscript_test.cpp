// Bring your own model (issue #26): model.type: torchscript trains a scripted
// module as SISA shards. The module is written here with
// torch::jit::Module::define (no Python): a frozen encoder, a running-mean
// buffer that changes in training, dropout from libtorch's default generator,
// and a LoRA head (frozen weight, trained low-rank A, B and bias). It must
// forget exactly (== --exclude-ids, verify, mpirun), checkpoint only what
// model.trainable chooses (and every buffer), serve, and refuse a changed
// module file and bad patterns by name.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "server_process.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/run.h"
#include "test_util.h"

using namespace sisa;
using sisa::test::TempDir;

namespace {

constexpr int64_t kWidth = 6, kClasses = 3, kHidden = 16, kRank = 2;
const char* kMpirun2 =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun -np 2";

torch::jit::Module submodule(const std::string& name) {
  torch::jit::Module m(name);
  m.register_attribute("training", c10::BoolType::get(), true);
  return m;
}

// Saved with requires_grad on the LoRA tensors and the head's bias only.
void write_module(const std::string& path) {
  torch::manual_seed(3);
  auto frozen = [](torch::Tensor t) { return t.set_requires_grad(false); };
  auto trained = [](torch::Tensor t) { return t.set_requires_grad(true); };
  torch::jit::Module enc = submodule("Encoder");
  enc.register_parameter("weight", frozen(torch::randn({kHidden, kWidth}) * 0.5), false);
  enc.register_parameter("bias", frozen(torch::randn({kHidden}) * 0.1), false);
  enc.define("def forward(self, x):\n  return torch.relu(torch.matmul(x, self.weight.t()) + self.bias)\n");
  torch::jit::Module norm = submodule("RunningCentre");
  norm.register_buffer("running_mean", torch::zeros({kHidden}));
  norm.define(
      "def forward(self, h):\n"
      "  if self.training:\n"
      "    m = h.detach().mean(0)\n"
      "    self.running_mean.mul_(0.9).add_(m, alpha=0.1)\n"
      "    return h - m\n"
      "  return h - self.running_mean\n");
  torch::jit::Module head = submodule("LoraHead");
  head.register_parameter("weight", frozen(torch::randn({kClasses, kHidden}) * 0.3), false);
  head.register_parameter("lora_a", trained(torch::randn({kRank, kHidden}) * 0.1), false);
  head.register_parameter("lora_b", trained(torch::zeros({kClasses, kRank})), false);
  head.register_parameter("bias", trained(torch::zeros({kClasses})), false);
  head.define(
      "def forward(self, h):\n"
      "  low = torch.matmul(torch.matmul(h, self.lora_a.t()), self.lora_b.t())\n"
      "  return torch.matmul(h, self.weight.t()) + low + self.bias\n");
  torch::jit::Module root = submodule("Net");
  root.register_module("enc", enc);
  root.register_module("norm", norm);
  root.register_module("head", head);
  root.define(
      "def forward(self, x):\n"
      "  h = self.norm.forward(self.enc.forward(x))\n"
      "  return self.head.forward(torch.dropout(h, 0.2, self.training))\n");
  root.save(path);
}

// Token rows: a frozen bag-of-embeddings encoder (the part model.cache_below
// caches) and a trained linear head read by the exported forward_above.
void write_token_module(const std::string& path, int64_t vocab, int64_t dim) {
  torch::manual_seed(4);
  torch::jit::Module enc = submodule("BagEncoder");
  enc.register_parameter("embed", torch::randn({vocab, dim}).set_requires_grad(false), false);
  enc.define(
      "def forward(self, tokens, lengths):\n"
      "  keep = (torch.arange(tokens.size(1)).unsqueeze(0) < lengths.unsqueeze(1)).float()\n"
      "  v = torch.embedding(self.embed, tokens) * keep.unsqueeze(2)\n"
      "  return torch.tanh(v.sum(1) / lengths.clamp_min(1).float().unsqueeze(1))\n");
  torch::jit::Module root = submodule("TokenNet");
  root.register_module("encoder", enc);
  root.register_parameter("head_weight", torch::zeros({kClasses, dim}).set_requires_grad(true), false);
  root.register_parameter("head_bias", torch::zeros({kClasses}).set_requires_grad(true), false);
  root.define(
      "def forward_above(self, h):\n"
      "  return torch.matmul(torch.dropout(h, 0.1, self.training), self.head_weight.t()) + self.head_bias\n"
      "def forward(self, tokens, lengths):\n"
      "  return self.forward_above(self.encoder.forward(tokens, lengths))\n");
  root.save(path);
}

class TorchScript : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::synthetic(300, kWidth, kClasses, 5);
    test::write_csv(data_, dir_ / "train.csv");
    write_module(dir_ / "net.pt");
  }
  std::string config(const std::string& extra_model_yaml = "", const std::string& module = "net.pt") {
    const std::string path = dir_ / "config.yaml";
    test::write_text(path, test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", kWidth, kClasses,
                                             "  type: torchscript\n  module: " + module + "\n" + extra_model_yaml,
                                             "  shards: 3\n  slices: 2\n",
                                             "  epochs: 4\n  batch_size: 16\n  optimizer: adam\n  lr: 0.02\n"));
    return path;
  }
  std::vector<int64_t> ids_in_shard(int64_t shard, size_t count) const {
    return test::ids_in_shard(data_, shard, 3, count);
  }
  std::vector<std::string> checkpoints_with(const std::string& run, const std::string& needle) {
    return test::checkpoints_containing(run, needle);
  }
  TempDir dir_;
  Dataset data_;
};

TEST_F(TorchScript, AScriptedModuleWithAFrozenPartForgetsExactlyAndServes) {
  const std::string cfg = config(), a = dir_ / "a", c = dir_ / "c";
  std::vector<int64_t> doomed = ids_in_shard(0, 2);
  doomed.push_back(ids_in_shard(2, 1).at(0));
  train({cfg, {}, a, {}});
  train({cfg, {}, c, doomed});
  EXPECT_NE(test::stage_digests(a), test::stage_digests(c));
  std::filesystem::remove(dir_ / "net.pt");  // the run holds its own copy
  forget({a, doomed});
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(c)) << "forget != training without the rows";
  EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>());
  EXPECT_TRUE(fsck(a)["ok"].get<bool>()) << fsck(a).dump(2);

  // What a shard trains is what the file saved with requires_grad; only that
  // has optimizer state; the frozen tensors are in no checkpoint; the buffer is.
  for (const char* frozen : {"enc.weight", "enc.bias", "head.weight"}) {
    EXPECT_EQ(checkpoints_with(a, frozen), std::vector<std::string>{}) << frozen;
  }
  for (const char* owned :
       {"optim.exp_avg.head.lora_a", "optim.exp_avg.head.lora_b", "optim.exp_avg.head.bias", "norm.running_mean"}) {
    EXPECT_FALSE(checkpoints_with(a, owned).empty()) << owned;
  }

  PredictRequest p;
  p.run_dir = a;
  const auto predicted = predict(p);
  EXPECT_GT(predicted["accuracy_mean"].get<double>(), 0.5) << predicted.dump();  // chance: about 1/3

  // A real server answers from the same ensemble.
  test::write_text(dir_ / "token", "a-token-of-sixteen-chars\n");
  test::ServerProcess server("-q -r " + a + " --token-file " + dir_ / "token");
  ASSERT_TRUE(server.running());
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < 5; ++i) rows.push_back(std::vector<float>(data_.row(i), data_.row(i) + data_.width));
  auto client = server.client();
  const auto r = client.Post("/v1/predict", nlohmann::json{{"inputs", rows}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body)["labels"].size(), 5u);
}

TEST_F(TorchScript, MpirunGivesTheOneProcessBits) {
  const std::string cfg = config(), one = dir_ / "one", many = dir_ / "many";
  train({cfg, {}, one, {}});
  auto r = test::run_sisa("train -q -c " + cfg + " -r " + many, kMpirun2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(test::stage_digests(one), test::stage_digests(many));
  const auto doomed = ids_in_shard(1, 1).at(0);
  r = test::run_sisa("forget -q -r " + many + " --ids " + std::to_string(doomed), kMpirun2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  forget({one, {doomed}});
  EXPECT_EQ(test::stage_digests(one), test::stage_digests(many));
}

// model.trainable, not the file's requires_grad, decides when it is given.
TEST_F(TorchScript, ThePatternsDecideWhatIsTrainedAndCheckpointed) {
  const std::string a = dir_ / "enc";
  train({config("  trainable: [\"enc.*\", head.bias]\n"), {}, a, {}});
  for (const char* owned : {"optim.exp_avg.enc.weight", "optim.exp_avg.enc.bias", "optim.exp_avg.head.bias"}) {
    EXPECT_FALSE(checkpoints_with(a, owned).empty()) << owned;
  }
  for (const char* frozen : {"head.lora_a", "head.lora_b", "head.weight"}) {
    EXPECT_EQ(checkpoints_with(a, frozen), std::vector<std::string>{}) << frozen;
  }
  const auto doomed = ids_in_shard(2, 2);
  train({dir_ / "config.yaml", {}, dir_ / "enc-gold", doomed});
  forget({a, doomed});
  EXPECT_EQ(test::stage_digests(a), test::stage_digests(dir_ / "enc-gold"));
}

TEST_F(TorchScript, AChangedModuleAndBadPatternsAreRefusedByName) {
  const std::string cfg = config(), a = dir_ / "a";
  train({cfg, {}, a, {}});
  std::string copy;
  for (const auto& [rel, bytes] : test::snapshot(a)) {
    if (rel.rfind("artifacts/", 0) == 0) copy = rel;
  }
  ASSERT_EQ(copy.size(), std::string("artifacts/").size() + 64 + 3) << copy;  // <sha256>.pt
  std::ofstream(a + "/" + copy, std::ios::app) << "x";
  const auto r = test::run_sisa("forget -q -r " + a + " --ids " + std::to_string(ids_in_shard(0, 1).at(0)));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("shared artifact model.module"), std::string::npos) << r.output;

  const auto refused = [&](const std::string& model_yaml) {
    try {
      train({config(model_yaml), {}, dir_ / "never", {}});
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(refused("  trainable: [\"decoder.*\"]\n").find("pattern 'decoder.*' matches no parameter"),
            std::string::npos);
  EXPECT_NE(refused("  trainable: [norm.running_mean]\n").find("matches buffer 'norm.running_mean'"),
            std::string::npos);
  EXPECT_NE(refused("  input: tokens\n").find("data.format: model family 'torchscript' reads token ids"),
            std::string::npos);
  EXPECT_NE(refused("  input: pixels\n").find("model.input: must be features or tokens"), std::string::npos);
  // Logits of the wrong width are refused before any training.
  test::write_text(dir_ / "four.yaml", test::config_yaml(dir_ / "train.csv", dir_ / "train.csv", kWidth, 4,
                                                         "  type: torchscript\n  module: net.pt\n",
                                                         "  shards: 3\n  slices: 2\n", "  epochs: 4\n"));
  try {
    train({dir_ / "four.yaml", {}, dir_ / "never3", {}});
    ADD_FAILURE() << "3 logits for 4 classes were accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("want float32 logits [2, 4] (data.num_classes)"), std::string::npos)
        << e.what();
  }
  test::write_text(dir_ / "not-a-module.pt", "hello");
  try {
    train({config("", "not-a-module.pt"), {}, dir_ / "never2", {}});
    ADD_FAILURE() << "a file that is not a TorchScript module was accepted";
  } catch (const CorruptionError& e) {
    EXPECT_NE(std::string(e.what()).find("model.module: '"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not a TorchScript module"), std::string::npos) << e.what();
  }
}

// model.input: tokens, with and without model.cache_below: both forget
// exactly; with it the encoder's output is stored beside the tokens (so a
// retrain runs only the head), and the cached run predicts like the uncached.
TEST_F(TorchScript, TokenRowsWithACachedFrozenEncoderForgetExactly) {
  const Dataset tokens = test::synthetic_tokens(240, 8, 32, 5);
  test::write_hdf5(tokens, dir_ / "tokens.h5");
  write_token_module(dir_ / "tokens.pt", 32, 12);
  const auto config_for = [&](const std::string& name, const std::string& extra) {
    const std::string path = dir_ / (name + ".yaml");
    test::write_text(path, test::config_yaml(dir_ / "tokens.h5", dir_ / "tokens.h5", 8, kClasses,
                                             "  type: torchscript\n  module: tokens.pt\n  input: tokens\n" + extra,
                                             "  shards: 3\n  slices: 2\n",
                                             "  epochs: 4\n  batch_size: 16\n  optimizer: adam\n  lr: 0.05\n"));
    return path;
  };
  const std::vector<int64_t> doomed = test::ids_in_shard(tokens, 1, 3, 3);
  std::map<std::string, double> accuracy;
  for (const std::string extra : {"", "  cache_below: encoder\n"}) {
    const std::string cfg = config_for(extra.empty() ? "plain" : "cached", extra);
    const std::string a = dir_ / ("a" + std::to_string(extra.size())), c = dir_ / ("c" + std::to_string(extra.size()));
    train({cfg, {}, a, {}});
    train({cfg, {}, c, doomed});
    forget({a, doomed});
    EXPECT_EQ(test::stage_digests(a), test::stage_digests(c)) << extra;
    EXPECT_TRUE(verify({a, {}, false})["identical"].get<bool>()) << extra;
    EXPECT_EQ(checkpoints_with(a, "encoder.embed"), std::vector<std::string>{}) << extra;
    PredictRequest p;
    p.run_dir = a;
    accuracy[extra] = predict(p)["accuracy_mean"].get<double>();
    EXPECT_GT(accuracy[extra], 0.5) << extra;  // chance: about 1/3
  }
  EXPECT_NEAR(accuracy[""], accuracy["  cache_below: encoder\n"], 0.05);

  const auto refused = [&](const std::string& extra) {
    try {
      train({config_for("bad", extra), {}, dir_ / "never", {}});
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(refused("  cache_below: encoder\n  trainable: [\"encoder.*\", \"head_*\"]\n")
                .find("'encoder.embed' is inside model.cache_below 'encoder'"),
            std::string::npos);
  EXPECT_NE(refused("  cache_below: decoder\n").find("has no submodule 'decoder'"), std::string::npos);
  try {
    train({config("  cache_below: enc\n"), {}, dir_ / "never-features", {}});  // features rows
    ADD_FAILURE() << "cache_below with rows of features was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.cache_below: needs model.input: tokens"), std::string::npos)
        << e.what();
  }
}

}  // namespace
