// Torch-free units: placement, schedule, config, id lists, deletion log,
// HDF5 module, checkpoints, manifest, the run lock.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "config/config_keys.h"
#include "format/checkpoint.h"
#include "format/deletion_log.h"
#include "format/h5file.h"
#include "format/manifest.h"
#include "format/shard_store.h"
#include "lm/audit_stats.h"
#include "nn/loo_criterion.h"
#include "serve/api.h"
#include "sisa/config.h"
#include "sisa/errors.h"
#include "sisa/id_list.h"
#include "sisa/placement.h"
#include "test_util.h"
#include "util/fs.h"

using namespace sisa;
using sisa::test::TempDir;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ---- placement ---------------------------------------------------------

TEST(Placement, PinnedTestVectors) {
  // SplitMix64's published first output for state 0.
  EXPECT_EQ(mix64(0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(derive(42, "shard", {4711}), 4302220107259773584ULL);
  const int64_t keys[] = {0, 1, 17, 4711, 59999};
  const int64_t shards[] = {1, 3, 4, 4, 1};
  const int64_t slices[] = {4, 2, 1, 3, 4};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(shard_of(42, keys[i], 5), shards[i]) << keys[i];
    EXPECT_EQ(slice_of(42, keys[i], 4), slices[i]) << keys[i];
  }
  EXPECT_EQ(permutation(10, 123), (std::vector<int64_t>{7, 3, 4, 9, 8, 2, 1, 0, 6, 5}));
}

TEST(Placement, BalancedAndInRange) {
  std::vector<int> count(5);
  for (int64_t k = 0; k < 50000; ++k) {
    const int64_t s = shard_of(1, k, 5), r = slice_of(1, k, 4);
    ASSERT_TRUE(s >= 0 && s < 5 && r >= 1 && r <= 4);
    ++count[s];
  }
  for (int c : count) EXPECT_NEAR(c, 10000, 400);
}

TEST(Placement, PermutationIsAPermutation) {
  auto p = permutation(1000, 5);
  std::set<int64_t> s(p.begin(), p.end());
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_EQ(*s.begin(), 0);
  EXPECT_EQ(*s.rbegin(), 999);
  EXPECT_NE(permutation(1000, 6), p);
  EXPECT_TRUE(permutation(0, 1).empty());
}

TEST(Placement, FinalBatchOfOneIsMerged) {
  EXPECT_EQ(batch_bounds(10, 4), (std::vector<int64_t>{0, 4, 8, 10}));
  EXPECT_EQ(batch_bounds(9, 4), (std::vector<int64_t>{0, 4, 9}));
  EXPECT_EQ(batch_bounds(8, 4), (std::vector<int64_t>{0, 4, 8}));
  EXPECT_EQ(batch_bounds(1, 4), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(batch_bounds(0, 4), (std::vector<int64_t>{0}));
}

TEST(Schedule, IntegerStageEpochs) {
  EXPECT_EQ(stage_epochs(20, 4), (std::vector<int64_t>{0, 8, 8, 8, 8}));
  EXPECT_EQ(stage_epochs(3, 4), (std::vector<int64_t>{0, 1, 1, 1, 1}));
  EXPECT_EQ(stage_epochs(7, 3), (std::vector<int64_t>{0, 3, 4, 3}));
  EXPECT_EQ(stage_epochs(2, 4)[1], 0);  // invalid: slice 1 would never train
  // Total passes over the shard are about E (here exactly).
  const auto e = stage_epochs(20, 4);
  double passes = 0;
  for (int r = 1; r <= 4; ++r) passes += e[r] * r / 4.0;
  EXPECT_DOUBLE_EQ(passes, 20.0);
}

// ---- shard stores -------------------------------------------------------

// 8-bit inputs (pixels under the run's fixed scale) are stored as bytes and
// decode to the very floats the loader produced; anything else stays float32.
TEST(ShardStore, EightBitInputsAreStoredAsBytesAndDecodeBitIdentical) {
  DataConfig data;
  data.scale = 0.00392156862745098;  // 1/255, as configs/fashion-mnist.yaml
  Dataset d;
  d.width = 4;
  const float scale = static_cast<float>(data.scale), offset = 0.0f;
  for (int64_t i = 0; i < 1000; ++i) {
    d.ids.push_back(10 * i);
    d.labels.push_back(i % 3);
    for (int k = 0; k < 4; ++k) {
      const uint8_t pixel = static_cast<uint8_t>((i * 37 + k * 101) % 256);
      d.inputs.push_back(pixel * scale + offset);  // what the idx loader computes
    }
  }
  const auto bytes = encode_store(d, 2, data);
  const Dataset back = decode_store(bytes, "s.h5");
  ASSERT_EQ(back.inputs.size(), d.inputs.size());
  EXPECT_EQ(std::memcmp(back.inputs.data(), d.inputs.data(), d.inputs.size() * sizeof(float)), 0);
  EXPECT_EQ(back.ids, d.ids);
  EXPECT_EQ(back.labels, d.labels);
  // Not representable as bytes (one value off by one ulp): float32, also exact.
  Dataset odd = d;
  odd.inputs[5] = std::nextafter(odd.inputs[5], 2.0f);
  const auto odd_bytes = encode_store(odd, 2, data);
  EXPECT_GT(odd_bytes.size(), bytes.size() + 1000 * 4 * 2);  // float32 costs 3 more bytes per value
  const Dataset odd_back = decode_store(odd_bytes, "s.h5");
  EXPECT_EQ(std::memcmp(odd_back.inputs.data(), odd.inputs.data(), odd.inputs.size() * sizeof(float)), 0);
}

// ---- config -------------------------------------------------------------

const char* kMinimal = "data:\n  format: csv\n  train: t.csv\n  num_classes: 3\n  input_shape: [4]\n";

// Weighted placement: uniform is the old function exactly; heavy keys go to
// the reserved shards and last slices; everything is a function of (seed, key, weight).
TEST(Placement, WeightedPlacementReservesShardsAndSlicesForHeavyKeys) {
  Placement uniform{42, 7, 5};
  Placement weighted{42, 7, 5, 2, 2, 0.5};
  for (int64_t k = 0; k < 5000; ++k) {
    EXPECT_EQ(uniform.shard(k, 3.0), shard_of(42, k, 7));
    EXPECT_EQ(uniform.slice(k, 3.0), slice_of(42, k, 5));
    const int64_t hs = weighted.shard(k, 0.5), hr = weighted.slice(k, 0.5);
    EXPECT_TRUE(hs >= 5 && hs < 7 && hr >= 4 && hr <= 5) << k;
    const int64_t ls = weighted.shard(k, 0.49), lr = weighted.slice(k, 0.49);
    EXPECT_TRUE(ls >= 0 && ls < 5) << k;
    EXPECT_EQ(lr, slice_of(42, k, 5));
  }
  // A float weight written as exactly the threshold is heavy ((double)0.7f < 0.7).
  const Placement at{1, 4, 4, 1, 1, 0.7};
  EXPECT_TRUE(at.heavy(0.7f));
  EXPECT_FALSE(at.heavy(0.69f));
}

TEST(Config, WeightedPlacementIsCheckedAndOnlyItChangesTheIdentity) {
  const Config uniform = Config::parse(kMinimal, "x.yaml", "");
  EXPECT_EQ(uniform.training_json().find("\"placement\""), std::string::npos) << uniform.training_json();
  const std::string need = error_of([] { Config::parse(kMinimal, "x.yaml", "", {"sisa.placement=weighted"}); });
  EXPECT_NE(need.find("sisa.placement: weighted needs a deletion weight per sample"), std::string::npos) << need;
  const std::string range = error_of([] {
    Config::parse(kMinimal, "x.yaml", "", {"sisa.placement=weighted", "data.weight_column=w", "sisa.heavy_shards=5"});
  });
  EXPECT_NE(range.find("sisa.heavy_shards: must be in 1..shards-1, got 5"), std::string::npos) << range;
  const std::string unused = error_of([] { Config::parse(kMinimal, "x.yaml", "", {"data.weight_column=w"}); });
  EXPECT_NE(unused.find("sisa.placement is uniform"), std::string::npos) << unused;
  const Config w = Config::parse(kMinimal, "x.yaml", "", {"sisa.placement=weighted", "data.weight_column=w"});
  EXPECT_NE(w.training_json().find("\"heavy_shards\":1"), std::string::npos) << w.training_json();
  EXPECT_TRUE(w.placement().weighted());
  EXPECT_EQ(Config::parse(w.to_yaml(), "y", "").training_hash(), w.training_hash());
}

// Weights come from a CSV column (not a feature), one per data subject, >= 0;
// the store keeps them (a row's slice depends on its weight).
TEST(Dataset, WeightsAreReadCheckedAndStored) {
  TempDir dir;
  DataConfig c;
  c.format = "csv";
  c.train = dir / "t.csv";
  c.num_classes = 2;
  c.input_shape = {2};
  c.id_column = "id";
  c.group_column = "person";
  c.weight_column = "w";
  test::write_text(c.train, "id,person,a,w,b,label\n1,7,0.5,0.25,1.5,0\n2,7,1,0.25,2,1\n3,8,2,0,3,1\n");
  const Dataset d = load_source(c, Split::kTrain);
  EXPECT_EQ(d.width, 2);
  EXPECT_EQ(d.inputs, (std::vector<float>{0.5f, 1.5f, 1, 2, 2, 3}));
  EXPECT_EQ(d.weights, (std::vector<float>{0.25f, 0.25f, 0}));
  const auto stored = encode_store(d, 0, c);
  const Dataset back = decode_store(stored, "s.h5");
  EXPECT_EQ(back.weights, d.weights);
  // Stores with weights (or tokens) are format 3; others stay 2.
  EXPECT_NE(H5Image(stored, "s.h5").attr("", "meta").find("\"format_version\":3"), std::string::npos);
  Dataset plain = d;
  plain.weights.clear();
  const auto plain_bytes = encode_store(plain, 0, c);
  EXPECT_NE(H5Image(plain_bytes, "s.h5").attr("", "meta").find("\"format_version\":2"), std::string::npos);
  // A test file may lack the weight column.
  DataConfig test = c;
  test.test = dir / "test.csv";
  test::write_text(test.test, "id,person,a,b,label\n9,7,0.5,1.5,0\n");
  EXPECT_EQ(load_source(test, Split::kTest).size(), 1u);
  test::write_text(c.train, "id,person,a,w,b,label\n1,7,0.5,0.25,1.5,0\n2,7,1,0.5,2,1\n");
  std::string msg = error_of([&c] { load_source(c, Split::kTrain); });
  EXPECT_NE(msg.find("group 7 has rows of weight 0.250000 and 0.500000"), std::string::npos) << msg;
  test::write_text(c.train, "id,person,a,w,b,label\n1,7,0.5,-1,1.5,0\n");
  msg = error_of([&c] { load_source(c, Split::kTrain); });
  EXPECT_NE(msg.find("id 1 has weight -1"), std::string::npos) << msg;
  // A weights file: unlisted keys weigh 0; a key the data lacks is an error.
  c.weight_column.clear();
  c.weights_file = dir / "w.csv";
  test::write_text(c.train, "id,person,a,b,label\n1,7,0.5,1.5,0\n2,7,1,2,1\n3,8,2,3,1\n");
  test::write_text(c.weights_file, "id,weight\n1,2.5\n");
  msg = error_of([&c] { load_source(c, Split::kTrain); });
  EXPECT_NE(msg.find("expected the header 'group,weight'"), std::string::npos) << msg;
  test::write_text(c.weights_file, "group,weight\n8,2.5\n");
  EXPECT_EQ(load_source(c, Split::kTrain).weights, (std::vector<float>{0, 0, 2.5f}));
  test::write_text(c.weights_file, "group,weight\n9,1\n");
  msg = error_of([&c] { load_source(c, Split::kTrain); });
  EXPECT_NE(msg.find("group 9 is not in the training data"), std::string::npos) << msg;
}

TEST(Config, DefaultsAndRelativePaths) {
  const Config c = Config::parse(kMinimal, "x.yaml", "/base");
  EXPECT_EQ(c.data.train, "/base/t.csv");
  EXPECT_EQ(c.sisa.shards, 5);
  EXPECT_EQ(c.train.threads, 1);
  // The resolved YAML parses back to the same training identity.
  EXPECT_EQ(Config::parse(c.to_yaml(), "y", "").training_hash(), c.training_hash());
}

TEST(Config, OverridesWinOverTheFile) {
  const Config c = Config::parse(kMinimal, "x.yaml", "", {"sisa.shards=8", "model.hidden=[3, 2]"});
  EXPECT_EQ(c.sisa.shards, 8);
  EXPECT_EQ(c.model.get<std::vector<int64_t>>("hidden"), (std::vector<int64_t>{3, 2}));
  EXPECT_NE(c.training_hash(), Config::parse(kMinimal, "x.yaml", "").training_hash());
}

TEST(Config, PathsAndLoggingAreNotIdentity) {
  EXPECT_EQ(Config::parse(kMinimal, "a", "/one").training_hash(), Config::parse(kMinimal, "b", "/two").training_hash());
}

TEST(Config, EveryProblemIsReportedByItsKey) {
  const std::string msg = error_of([] {
    Config::parse(std::string(kMinimal) + "model:\n  hiden: [3]\n  dropout: 1.5\nsisa:\n  shards: 0\n", "bad.yaml", "");
  });
  EXPECT_NE(msg.find("bad.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.hiden: unknown key"), std::string::npos) << msg;
  // Unknown keys stop validation, so fix the key and look again.
  const std::string msg2 = error_of(
      [] { Config::parse(std::string(kMinimal) + "model:\n  dropout: 1.5\nsisa:\n  shards: 0\n", "bad.yaml", ""); });
  EXPECT_NE(msg2.find("model.dropout"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("sisa.shards"), std::string::npos) << msg2;
}

// Every key, set away from its default, survives to_yaml() and a re-parse:
// the resolved config a run stores is the config it was trained with.
TEST(Config, EveryKeyRoundTripsThroughTheStoredYaml) {
  const char* every =
      "seed: 42\n"
      "data:\n  format: idx\n  train: tr.gz\n  train_labels: trl.gz\n  test: te.gz\n  test_labels: tel.gz\n"
      "  num_classes: 7\n  input_shape: [2, 4, 4]\n  scale: 0.25\n  offset: -1.5\n  label_column: y\n"
      "  id_column: key\n  group_column: person\n  inputs_dataset: X\n  labels_dataset: Y\n"
      "  ids_dataset: K\n  groups_dataset: G\n  lengths_dataset: L\n"
      "sisa:\n  shards: 9\n  slices: 3\n"
      "model:\n  type: cnn\n  hidden: [12, 6]\n  activation: tanh\n  dropout: 0.3\n  channels: [5, 3]\n"
      "  batch_norm: false\n"
      "train:\n  epochs: 11\n  batch_size: 17\n  optimizer: sgd\n  lr: 0.05\n  momentum: 0.7\n"
      "  weight_decay: 0.001\n  beta1: 0.8\n  beta2: 0.99\n  eps: 1e-6\n  threads: 2\n";
  const Config a = Config::parse(every, "every.yaml", "/base");
  const Config b = Config::parse(a.to_yaml(), "stored.yaml", "/elsewhere");
  EXPECT_EQ(b.to_yaml(), a.to_yaml());
  EXPECT_EQ(b.training_hash(), a.training_hash());
  EXPECT_EQ(b.seed, 42u);
  const DataConfig& d = b.data;
  EXPECT_EQ(d.format, "idx");
  EXPECT_EQ(d.train, "/base/tr.gz");
  EXPECT_EQ(d.train_labels, "/base/trl.gz");
  EXPECT_EQ(d.test, "/base/te.gz");
  EXPECT_EQ(d.test_labels, "/base/tel.gz");
  EXPECT_EQ(d.num_classes, 7);
  EXPECT_EQ(d.input_shape, (std::vector<int64_t>{2, 4, 4}));
  EXPECT_EQ(d.scale, 0.25);
  EXPECT_EQ(d.offset, -1.5);
  EXPECT_EQ(d.label_column, "y");
  EXPECT_EQ(d.id_column, "key");
  EXPECT_EQ(d.group_column, "person");
  EXPECT_EQ(d.inputs_dataset, "X");
  EXPECT_EQ(d.labels_dataset, "Y");
  EXPECT_EQ(d.ids_dataset, "K");
  EXPECT_EQ(d.groups_dataset, "G");
  EXPECT_EQ(d.lengths_dataset, "L");
  EXPECT_EQ(b.sisa.shards, 9);
  EXPECT_EQ(b.sisa.slices, 3);
  const ModelConfig& m = b.model;
  EXPECT_EQ(m.type, "cnn");
  EXPECT_EQ(m.get<std::vector<int64_t>>("hidden"), (std::vector<int64_t>{12, 6}));
  EXPECT_EQ(m.get<std::string>("activation"), "tanh");
  EXPECT_EQ(m.get<double>("dropout"), 0.3);
  EXPECT_EQ(m.get<std::vector<int64_t>>("channels"), (std::vector<int64_t>{5, 3}));
  EXPECT_FALSE(m.get<bool>("batch_norm"));
  const TrainConfig& t = b.train;
  EXPECT_EQ(t.epochs, 11);
  EXPECT_EQ(t.batch_size, 17);
  EXPECT_EQ(t.optimizer, "sgd");
  EXPECT_EQ(t.lr, 0.05);
  EXPECT_EQ(t.momentum, 0.7);
  EXPECT_EQ(t.weight_decay, 0.001);
  EXPECT_EQ(t.beta1, 0.8);
  EXPECT_EQ(t.beta2, 0.99);
  EXPECT_EQ(t.eps, 1e-6);
  EXPECT_EQ(t.threads, 2);
}

// The identity JSON of the built-in families is what it was before model
// families existed: runs trained then keep their config hash (pinned here
// from configs/fashion-mnist-cnn.yaml at commit 16aad89).
TEST(Config, IdentityOfBuiltInFamiliesIsPinned) {
  const char* cnn =
      "seed: 1\ndata:\n  format: idx\n  train: a\n  train_labels: b\n  num_classes: 10\n"
      "  input_shape: [1, 28, 28]\n  scale: 0.00392156862745098\n"
      "sisa:\n  shards: 5\n  slices: 4\nmodel:\n  type: cnn\n  hidden: [128]\n  dropout: 0.25\n"
      "train:\n  epochs: 8\n";
  EXPECT_EQ(Config::parse(cnn, "c.yaml", "").training_json(),
            "{\"data\":{\"grouped\":false,\"input_shape\":[1,28,28],\"num_classes\":10,\"offset\":0.0,"
            "\"scale\":0.00392156862745098},\"model\":{\"activation\":\"relu\",\"batch_norm\":true,"
            "\"channels\":[32,64],\"dropout\":0.25,\"hidden\":[128],\"type\":\"cnn\"},\"placement_version\":1,"
            "\"seed\":1,\"sisa\":{\"shards\":5,\"slices\":4},\"train\":{\"batch_size\":64,\"beta1\":0.9,"
            "\"beta2\":0.999,\"epochs\":8,\"eps\":1e-08,\"lr\":0.001,\"momentum\":0.0,\"optimizer\":\"adam\","
            "\"threads\":1,\"weight_decay\":0.0}}");
  // An integer where the family declares a number is read as that number.
  const Config c = Config::parse(kMinimal, "x.yaml", "", {"model.dropout=0"});
  EXPECT_NE(c.training_json().find("\"dropout\":0.0"), std::string::npos) << c.training_json();
}

// The identity JSON and config.yaml of every section's keys, pinned as 62b387b
// wrote them (before the keys were declared in one table): older runs keep
// their hash and their stored config, whichever sections they use.
TEST(Config, EverySectionsIdentityAndYamlArePinned) {
  TempDir t;
  const std::string dir = t / "";
  { std::ofstream(dir + "tok.model") << "a tokenizer's bytes"; }
  const char* a =
      "seed: 3\ndata: {format: csv, train: t.csv, num_classes: 4, input_shape: [6], group_column: g, weight_column: w, "
      "scale: 0.5, offset: -1}\n"
      "sisa: {shards: 4, slices: 3, placement: weighted, heavy_weight: 0.25, heavy_shards: 1, heavy_slices: 2}\n"
      "model: {type: mlp, hidden: [8, 4], activation: tanh}\ntrain: {epochs: 6, optimizer: sgd, lr: 0.1, momentum: "
      "0.9, threads: 2}\n";
  const char* b =
      "data: {format: hdf5, train: t.h5, input_shape: [16], ids_dataset: ids, groups_dataset: groups}\n"
      "model: {type: lm, vocab_size: 50, dim: 16, layers: 1, heads: 2, ff: 32}\n"
      "loo: {student: true, steps: 5, lr: 0.01, batch_size: 4, temperature: 2, retain_batch: 3, target_cache_mb: 7}\n";
  const char* c =
      "data: {format: csv, train: t.csv, num_classes: 3, input_shape: [12], text_column: text, tokenizer: tok.model, "
      "max_tokens: 12}\n"
      "model: {type: transformer, vocab_size: 40, dim: 16, layers: 1, heads: 2, ff: 32}\n";
  const char* d =
      "data: {format: hdf5, train: t.h5, input_shape: [16]}\nmodel: {type: lm, vocab_size: 50, dim: 16, layers: 1, "
      "heads: 2, ff: 32}\nloo: {student: true}\n";
  const std::vector<std::string> json = {
      R"({"data":{"grouped":true,"input_shape":[6],"num_classes":4,"offset":-1.0,"scale":0.5},"model":{"activation":"tanh","batch_norm":true,"channels":[32,64],"dropout":0.0,"hidden":[8,4],"type":"mlp"},"placement_version":1,"seed":3,"sisa":{"heavy_shards":1,"heavy_slices":2,"heavy_weight":0.25,"placement":"weighted","shards":4,"slices":3},"train":{"batch_size":64,"beta1":0.9,"beta2":0.999,"epochs":6,"eps":1e-08,"lr":0.1,"momentum":0.9,"optimizer":"sgd","threads":2,"weight_decay":0.0}})",
      R"({"data":{"grouped":true,"input_shape":[16],"num_classes":0,"offset":0.0,"scale":1.0},"loo":{"batch_size":4,"epochs":0,"lr":0.01,"retain_batch":3,"steps":5,"target_cache_mb":7,"temperature":2.0},"model":{"dim":16,"dropout":0.1,"ff":32,"heads":2,"layers":1,"type":"lm","vocab_size":50},"placement_version":1,"seed":0,"sisa":{"shards":5,"slices":4},"train":{"batch_size":64,"beta1":0.9,"beta2":0.999,"epochs":10,"eps":1e-08,"lr":0.001,"momentum":0.0,"optimizer":"adam","threads":1,"weight_decay":0.0}})", R"({"data":{"grouped":false,"input_shape":[12],"max_tokens":12,"num_classes":3,"offset":0.0,"scale":1.0,"tokenizer":{"sha256":"979f9fdfb5e7d856d6c5202d739d7111cb9c519312d6825d78bd6fd2576d4fdd"}},"model":{"backbone":null,"dim":16,"dropout":0.1,"ff":32,"heads":2,"hidden":[],"layers":1,"type":"transformer","vocab_size":40},"placement_version":1,"seed":0,"sisa":{"shards":5,"slices":4},"train":{"batch_size":64,"beta1":0.9,"beta2":0.999,"epochs":10,"eps":1e-08,"lr":0.001,"momentum":0.0,"optimizer":"adam","threads":1,"weight_decay":0.0}})", R"({"data":{"grouped":false,"input_shape":[16],"num_classes":0,"offset":0.0,"scale":1.0},"loo":{"batch_size":0,"epochs":0,"lr":0.001,"retain_batch":0,"steps":20},"model":{"dim":16,"dropout":0.1,"ff":32,"heads":2,"layers":1,"type":"lm","vocab_size":50},"placement_version":1,"seed":0,"sisa":{"shards":5,"slices":4},"train":{"batch_size":64,"beta1":0.9,"beta2":0.999,"epochs":10,"eps":1e-08,"lr":0.001,"momentum":0.0,"optimizer":"adam","threads":1,"weight_decay":0.0}})"};
  const std::vector<std::string> yaml = {
      R"(seed: 3
data:
  format: csv
  train: {dir}/t.csv
  train_labels: ""
  test: ""
  test_labels: ""
  num_classes: 4
  input_shape: [6]
  scale: 0.5
  offset: -1
  label_column: label
  id_column: ""
  group_column: g
  inputs_dataset: inputs
  labels_dataset: labels
  ids_dataset: ""
  groups_dataset: ""
  lengths_dataset: lengths
  weight_column: w
  weights_dataset: ""
  weights_file: ""
  text_column: ""
  tokenizer: ""
  max_tokens: 128
sisa:
  shards: 4
  slices: 3
  placement: weighted
  heavy_weight: 0.25
  heavy_shards: 1
  heavy_slices: 2
model:
  type: mlp
  hidden: [8, 4]
  activation: tanh
  dropout: 0
  channels: [32, 64]
  batch_norm: true
train:
  epochs: 6
  batch_size: 64
  optimizer: sgd
  lr: 0.10000000000000001
  momentum: 0.90000000000000002
  weight_decay: 0
  beta1: 0.90000000000000002
  beta2: 0.999
  eps: 1e-08
  threads: 2
)",
      R"(seed: 0
data:
  format: hdf5
  train: {dir}/t.h5
  train_labels: ""
  test: ""
  test_labels: ""
  num_classes: 0
  input_shape: [16]
  scale: 1
  offset: 0
  label_column: label
  id_column: ""
  group_column: ""
  inputs_dataset: inputs
  labels_dataset: labels
  ids_dataset: ids
  groups_dataset: groups
  lengths_dataset: lengths
  weight_column: ""
  weights_dataset: ""
  weights_file: ""
  text_column: ""
  tokenizer: ""
  max_tokens: 128
sisa:
  shards: 5
  slices: 4
  placement: uniform
  heavy_weight: 0.5
  heavy_shards: 1
  heavy_slices: 1
model:
  type: lm
  dropout: 0.10000000000000001
  dim: 16
  layers: 1
  heads: 2
  ff: 32
  vocab_size: 50
train:
  epochs: 10
  batch_size: 64
  optimizer: adam
  lr: 0.001
  momentum: 0
  weight_decay: 0
  beta1: 0.90000000000000002
  beta2: 0.999
  eps: 1e-08
  threads: 1
loo:
  student: true
  epochs: 0
  steps: 5
  lr: 0.01
  batch_size: 4
  temperature: 2
  retain_batch: 3
  target_cache_mb: 7
)",
      R"(seed: 0
data:
  format: csv
  train: {dir}/t.csv
  train_labels: ""
  test: ""
  test_labels: ""
  num_classes: 3
  input_shape: [12]
  scale: 1
  offset: 0
  label_column: label
  id_column: ""
  group_column: ""
  inputs_dataset: inputs
  labels_dataset: labels
  ids_dataset: ""
  groups_dataset: ""
  lengths_dataset: lengths
  weight_column: ""
  weights_dataset: ""
  weights_file: ""
  text_column: text
  tokenizer: {dir}/tok.model
  max_tokens: 12
sisa:
  shards: 5
  slices: 4
  placement: uniform
  heavy_weight: 0.5
  heavy_shards: 1
  heavy_slices: 1
model:
  type: transformer
  backbone: ""
  dropout: 0.10000000000000001
  hidden: []
  dim: 16
  layers: 1
  heads: 2
  ff: 32
  vocab_size: 40
train:
  epochs: 10
  batch_size: 64
  optimizer: adam
  lr: 0.001
  momentum: 0
  weight_decay: 0
  beta1: 0.90000000000000002
  beta2: 0.999
  eps: 1e-08
  threads: 1
)",
      R"(seed: 0
data:
  format: hdf5
  train: {dir}/t.h5
  train_labels: ""
  test: ""
  test_labels: ""
  num_classes: 0
  input_shape: [16]
  scale: 1
  offset: 0
  label_column: label
  id_column: ""
  group_column: ""
  inputs_dataset: inputs
  labels_dataset: labels
  ids_dataset: ""
  groups_dataset: ""
  lengths_dataset: lengths
  weight_column: ""
  weights_dataset: ""
  weights_file: ""
  text_column: ""
  tokenizer: ""
  max_tokens: 128
sisa:
  shards: 5
  slices: 4
  placement: uniform
  heavy_weight: 0.5
  heavy_shards: 1
  heavy_slices: 1
model:
  type: lm
  dropout: 0.10000000000000001
  dim: 16
  layers: 1
  heads: 2
  ff: 32
  vocab_size: 50
train:
  epochs: 10
  batch_size: 64
  optimizer: adam
  lr: 0.001
  momentum: 0
  weight_decay: 0
  beta1: 0.90000000000000002
  beta2: 0.999
  eps: 1e-08
  threads: 1
loo:
  student: true
  epochs: 0
  steps: 20
  lr: 0.001
  batch_size: 0
  retain_batch: 0
)"};
  const char* configs[] = {a, b, c, d};
  for (size_t i = 0; i < 4; ++i) {
    const Config cfg = Config::parse(configs[i], "p.yaml", t.path());
    EXPECT_EQ(cfg.training_json(), json[i]) << "config " << i;
    std::string want = yaml[i];
    for (size_t at = want.find("{dir}"); at != std::string::npos; at = want.find("{dir}", at))
      want.replace(at, 5, t.path());
    EXPECT_EQ(cfg.to_yaml(), want) << "config " << i;
  }
}

// Every key is declared once (src/config/config_keys.cpp); docs/config.md's
// key table is that declaration, rendered. On a mismatch the table to paste
// is written to config-keys.md in the test's directory.
TEST(Config, TheDocsKeyTableIsTheDeclaredOne) {
  const std::string docs = read_text(std::string(SISA_SOURCE_DIR) + "/docs/config.md");
  const std::string begin = "<!-- keys: generated from src/config/config_keys.cpp -->\n";
  const std::string end = "<!-- end of keys -->";
  const size_t from = docs.find(begin), to = docs.find(end);
  ASSERT_NE(from, std::string::npos) << "docs/config.md lacks " << begin;
  ASSERT_NE(to, std::string::npos) << "docs/config.md lacks " << end;
  const std::string want = config_keys_markdown();
  if (docs.substr(from + begin.size(), to - from - begin.size()) != want) {
    std::ofstream("config-keys.md") << want;
    ADD_FAILURE() << "docs/config.md's key table differs from the declared keys; the declared table is in "
                  << std::filesystem::absolute("config-keys.md");
  }
}

TEST(Config, ModelKeysComeFromTheFamily) {
  const std::string unknown = error_of([] { Config::parse(kMinimal, "x.yaml", "", {"model.type=gpt"}); });
  EXPECT_NE(unknown.find("model.type: unknown model family 'gpt' (registered: "), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("cnn, "), std::string::npos) << unknown;
  const std::string bad = error_of([] { Config::parse(kMinimal, "x.yaml", "", {"model.hidden=wide"}); });
  EXPECT_NE(bad.find("model.hidden: expected a list of integers, got 'wide'"), std::string::npos) << bad;
  Config c = Config::parse(kMinimal, "x.yaml", "");
  c.model.options["depth"] = int64_t{3};
  const auto errors = c.validate();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "model.depth: not a key of model family 'mlp'");
  EXPECT_NE(error_of([&c] { c.model.get<double>("hidden"); }).find("model.hidden"), std::string::npos);
  EXPECT_NE(error_of([&c] { c.model.get<double>("depth"); }).find("model.depth: not a key"), std::string::npos);
}

// Token-id rows (int32, explicit 0 padding, lengths) survive the store and
// the HDF5 loader; malformed rows are refused naming the id.
TEST(ShardStore, TokenRowsRoundTripAndAreChecked) {
  TempDir dir;
  const Dataset d = test::synthetic_tokens(50, 6, 20, 3, 4);
  const Dataset back = decode_store(encode_store(d, 1, DataConfig{}), "s.h5");
  EXPECT_TRUE(back.has_tokens());
  EXPECT_EQ(back.tokens, d.tokens);
  EXPECT_EQ(back.lengths, d.lengths);
  EXPECT_EQ(back.groups, d.groups);
  EXPECT_EQ(back.width, 6);
  Dataset kept = back;
  std::vector<bool> erase(kept.size(), false);
  erase[0] = erase[7] = true;
  kept.erase_rows(erase);
  EXPECT_EQ(kept.select({0}).tokens, std::vector<int32_t>(d.tokens.begin() + 6, d.tokens.begin() + 12));
  EXPECT_EQ(kept.lengths.size(), 48u);

  DataConfig c;
  c.format = "hdf5";
  c.train = dir / "t.h5";
  c.num_classes = 3;
  c.input_shape = {6};
  c.inputs_dataset = "x", c.labels_dataset = "y", c.ids_dataset = "id";
  test::write_hdf5(d, c.train);
  const Dataset loaded = load_source(c, Split::kTrain);
  EXPECT_EQ(loaded.tokens, d.tokens);
  Dataset bad = d;
  bad.tokens[6 * 2 + 5] = 9, bad.lengths[2] = 1;  // a token after the length
  test::write_hdf5(bad, c.train);
  const std::string msg = error_of([&c] { load_source(c, Split::kTrain); });
  EXPECT_NE(msg.find("id 1014 has a non-zero token after its length"), std::string::npos) << msg;
}

TEST(Config, TypedErrors) {
  EXPECT_THROW(Config::parse("data: [1, 2", "m.yaml", ""), ConfigError);
  EXPECT_NE(error_of([] { Config::parse("data: [1, 2", "m.yaml", ""); }).find("m.yaml: malformed YAML"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              Config::parse(std::string(kMinimal) + "train:\n  epochs: two\n", "e", "");
            }).find("train.epochs: expected an integer"),
            std::string::npos);
  const std::string few = error_of([] { Config::parse(std::string(kMinimal) + "train:\n  epochs: 2\n", "e", ""); });
  EXPECT_NE(few.find("train.epochs"), std::string::npos) << few;
  EXPECT_NE(few.find("zero epochs"), std::string::npos) << few;
  EXPECT_THROW(Config::parse(kMinimal, "x", "", {"sisa.shards"}), ConfigError);
}

// ---- id lists -------------------------------------------------------------

TEST(IdList, StrictParsing) {
  EXPECT_EQ(parse_id_list("17, 4711,59999", "--ids"), (std::vector<int64_t>{17, 4711, 59999}));
  EXPECT_EQ(parse_id_list("9223372036854775807", "--ids").at(0), INT64_MAX);
  for (const char* bad :
       {"-1", "1,,2", "1,2,", ",1", "12a", "9223372036854775808", "99999999999999999999", "", "1 2", "+3", "0x10"}) {
    EXPECT_THROW(parse_id_list(bad, "--ids"), UsageError) << bad;
  }
  EXPECT_NE(error_of([] { parse_id_list("4,x7", "--ids"); }).find("'x7'"), std::string::npos);
}

TEST(IdList, FilesWithCommentsAndMixedSeparators) {
  TempDir t;
  test::write_text(t / "ids.txt", "# deletion requests\n1 2,3\n\n  4 # trailing\n");
  EXPECT_EQ(read_id_file(t / "ids.txt"), (std::vector<int64_t>{1, 2, 3, 4}));
  test::write_text(t / "bad.txt", "1\n2\n-3\n");
  EXPECT_NE(error_of([&] { read_id_file(t / "bad.txt"); }).find("bad.txt:3"), std::string::npos);
  EXPECT_THROW(read_id_file(t / "missing.txt"), UsageError);
}

// ---- deletion log ---------------------------------------------------------

TEST(DeletionLog, RoundTripAndPending) {
  TempDir t;
  const std::string p = t / "deletions.log";
  EXPECT_TRUE(read_log(p).records.empty());
  append_log(Env::posix(), p, {LogRecord::Type::kAccepted, 1, false, {5, 9}});
  append_log(Env::posix(), p, {LogRecord::Type::kApplied, 1, false, {}});
  append_log(Env::posix(), p, {LogRecord::Type::kAccepted, 2, true, {INT64_MAX}});
  const auto log = read_log(p);
  ASSERT_EQ(log.records.size(), 3u);
  EXPECT_EQ(log.records[0].keys, (std::vector<int64_t>{5, 9}));
  EXPECT_TRUE(log.records[2].by_group);
  const auto pending = pending_requests(log);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].seq, 2u);
  EXPECT_EQ(pending[0].keys.at(0), INT64_MAX);
}

TEST(DeletionLog, TornTailIsDetectedAndDropped) {
  TempDir t;
  const std::string p = t / "deletions.log";
  append_log(Env::posix(), p, {LogRecord::Type::kAccepted, 1, false, {5}});
  const auto size = std::filesystem::file_size(p);
  append_log(Env::posix(), p, {LogRecord::Type::kAccepted, 2, false, {6, 7}});
  std::filesystem::resize_file(p, std::filesystem::file_size(p) - 3);  // a crash mid-append
  auto log = read_log(p);
  EXPECT_TRUE(log.torn_tail);
  EXPECT_EQ(log.valid_bytes, size);
  ASSERT_EQ(log.records.size(), 1u);
  append_log(Env::posix(), p, {LogRecord::Type::kApplied, 1, false, {}});
  log = read_log(p);
  EXPECT_FALSE(log.torn_tail);
  EXPECT_EQ(log.records.size(), 2u);
}

TEST(DeletionLog, FlippedByteIsCorruptionNamingTheOffset) {
  TempDir t;
  const std::string p = t / "deletions.log";
  append_log(Env::posix(), p, {LogRecord::Type::kAccepted, 1, false, {5}});
  append_log(Env::posix(), p, {LogRecord::Type::kApplied, 1, false, {}});
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8 + 13 + 3);  // inside the first record's payload
  f.put('\x7f');
  f.close();
  const std::string msg = error_of([&] { read_log(p); });
  EXPECT_NE(msg.find("deletions.log"), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte 8"), std::string::npos) << msg;
  EXPECT_THROW(read_log(p), CorruptionError);
  // A damaged length is corruption too, not a torn tail that would be dropped.
  append_log(Env::posix(), t / "b.log", {LogRecord::Type::kAccepted, 1, false, {5}});
  std::fstream g(t / "b.log", std::ios::in | std::ios::out | std::ios::binary);
  g.seekp(8 + 1);
  g.put('\x40');
  g.close();
  EXPECT_THROW(read_log(t / "b.log"), CorruptionError);
}

// ---- HDF5, checkpoints, manifest -------------------------------------------

ModelState sample_state() {
  ModelState s;
  TensorBlob w{"fc.weight", TensorRole::kParameter, DType::kFloat32, {2, 2}, {}};
  const float v[4] = {1.5f, -2.0f, 0.25f, 3.0f};
  w.bytes.assign(reinterpret_cast<const uint8_t*>(v), reinterpret_cast<const uint8_t*>(v) + 16);
  TensorBlob step{"optim.step", TensorRole::kCounter, DType::kInt64, {}, std::vector<uint8_t>(8, 0)};
  step.bytes[0] = 42;
  s.tensors = {w, step};
  return s;
}

TEST(Checkpoint, RoundTripIsExactAndDeterministic) {
  const ModelState s = sample_state();
  const CheckpointInfo info{3, 2, 10, "identity", "ids", s.fingerprint(), s.state_digest()};
  const auto bytes = encode_checkpoint(s, info);
  EXPECT_EQ(encode_checkpoint(s, info), bytes);  // no timestamps in the file
  CheckpointInfo back;
  const ModelState r = decode_checkpoint(bytes, "ck.h5", &back);
  EXPECT_EQ(r.state_digest(), s.state_digest());
  EXPECT_EQ(back.stage, 2);
  EXPECT_EQ(back.identity_hash, "identity");
  // The fingerprint ignores optimizer counters; the state digest does not.
  ModelState other = s;
  other.tensors[1].bytes[0] = 43;
  EXPECT_EQ(other.fingerprint(), s.fingerprint());
  EXPECT_NE(other.state_digest(), s.state_digest());
}

TEST(Checkpoint, TruncatedOrFlippedIsCorruptionNamingTheFile) {
  const ModelState s = sample_state();
  auto bytes = encode_checkpoint(s, {0, 0, 0, "", "", s.fingerprint(), s.state_digest()});
  auto truncated = bytes;
  truncated.resize(bytes.size() / 2);
  EXPECT_THROW(decode_checkpoint(truncated, "ck.h5"), CorruptionError);
  EXPECT_NE(error_of([&] { decode_checkpoint(truncated, "dir/ck.h5"); }).find("dir/ck.h5"), std::string::npos);
  // Flip one bit of the weight's float bytes, wherever HDF5 put them.
  const std::vector<uint8_t>& w = s.tensors[0].bytes;
  auto at = std::search(bytes.begin(), bytes.end(), w.begin(), w.end());
  ASSERT_NE(at, bytes.end());
  *at ^= 1;
  EXPECT_THROW(decode_checkpoint(bytes, "ck.h5"), CorruptionError);
}

TEST(Manifest, JsonRoundTrip) {
  TempDir t;
  Manifest m;
  m.identity_hash = "id";
  m.config_hash = "cfg";
  m.environment = {{"torch_version", "1.13"}};
  m.config = {"config.yaml", "abc"};
  m.shards = 1;
  m.slices = 1;
  ShardEntry e;
  e.store = {"data/shard-000.g0.h5", "s"};
  e.checkpoints.resize(2);
  e.checkpoints[0].file.path = "ckpt/a.h5";
  e.checkpoints[1].file.path = "ckpt/b.h5";
  m.entries = {e};
  m.deleted_ids = {3, 9};
  save_manifest(Env::posix(), t.path(), m);
  const Manifest back = load_manifest(t.path());
  EXPECT_EQ(back.to_json(), m.to_json());
  EXPECT_EQ(back.referenced_files().size(), 4u);
  test::write_text(manifest_path(t.path()), "{\"format\": \"sisa-manifest\"");
  EXPECT_THROW(load_manifest(t.path()), CorruptionError);
}

TEST(Files, AtomicWriteLeavesNoTempAndLockExcludesASecondWriter) {
  TempDir t;
  atomic_write(Env::posix(), t / "f", std::string("hello"));
  EXPECT_EQ(read_text(t / "f"), "hello");
  EXPECT_FALSE(std::filesystem::exists(t / "f.tmp"));
  RunLock first(t.path());
  const std::string msg = error_of([&] { RunLock second(t.path()); });
  EXPECT_NE(msg.find("locked by pid " + std::to_string(::getpid())), std::string::npos) << msg;
  EXPECT_THROW(read_file(t / "missing"), IOError);
}

}  // namespace

// serve's request parsing, apart from HTTP (the server itself: serve_test.cpp).
TEST(ServeApi, PredictBodiesAreStreamedTransformedAndChecked) {
  const auto in = sisa::parse_predict(
      R"({"aggregate": "vote", "inputs": [[0, 255, 51], [1.5, -2, 1e2]], "shard_votes": true})", 3, 1.0 / 255.0, 0.5);
  EXPECT_EQ(in.n, 2);
  EXPECT_TRUE(in.vote);
  EXPECT_TRUE(in.shard_votes);
  ASSERT_EQ(in.inputs.size(), 6u);
  EXPECT_FLOAT_EQ(in.inputs[0], 0.5f);
  EXPECT_FLOAT_EQ(in.inputs[1], 1.5f);
  EXPECT_FLOAT_EQ(in.inputs[5], static_cast<float>(100.0 / 255.0 + 0.5));
  struct Case {
    std::string body;
    int status;
    std::string error;
  };
  for (const auto& c : std::vector<Case>{{"", 400, "malformed_json"},
                                         {"{\"inputs\": [[1,2,3]", 400, "malformed_json"},
                                         {"{}", 400, "bad_request"},
                                         {"{\"inputs\": [1,2,3]}", 400, "bad_request"},
                                         {"{\"inputs\": [[[1],2,3]]}", 400, "bad_request"},
                                         {"{\"inputs\": [[1,2]]}", 422, "bad_width"},
                                         {"{\"inputs\": [[1,2,3,4]]}", 422, "bad_width"},
                                         {"{\"inputs\": [[1,2,null]]}", 400, "bad_request"},
                                         {"{\"inputs\": []}", 422, "empty"},
                                         {"{\"inputs\": [[1,2,3]], \"extra\": 1}", 400, "unknown_field"},
                                         {"{\"inputs\": [[1,2,3]], \"aggregate\": 1}", 400, "bad_request"},
                                         {"{\"inputs\": [[1,2,3]], \"aggregate\": \"max\"}", 422, "bad_aggregate"},
                                         {"[{\"inputs\": [[1,2,3]]}]", 400, "bad_request"},
                                         {"{\"inputs\": [[1,2,1e300]]}", 422, "not_finite"},
                                         {"{\"inputs\": [[1,2,3]], \"aggregate\": \"\xff\"}", 400, "malformed_json"}}) {
    try {
      sisa::parse_predict(c.body, 3, 1.0, 0.0);
      ADD_FAILURE() << "accepted: " << c.body;
    } catch (const sisa::ApiError& e) {
      EXPECT_EQ(e.status(), c.status) << c.body << ": " << e.what();
      EXPECT_EQ(e.error(), c.error) << c.body << ": " << e.what();
      EXPECT_NO_THROW(sisa::error_body(e.error(), e.what()));  // even with invalid UTF-8 in it
    }
  }
}

TEST(ServeApi, ForgetBodiesNeedANonEmptyListOfIntegers) {
  const auto ids = sisa::parse_forget(R"({"ids": [3, -1, 9007199254740993]})");
  EXPECT_EQ(ids.keys, (std::vector<int64_t>{3, -1, 9007199254740993}));
  EXPECT_FALSE(ids.by_group);
  const auto groups = sisa::parse_forget(R"({"groups": [7]})");
  EXPECT_EQ(groups.keys, (std::vector<int64_t>{7}));
  EXPECT_TRUE(groups.by_group);
  for (const char* bad :
       {"", "{}", "{\"ids\": []}", "{\"ids\": [1.5]}", "{\"ids\": [\"1\"]}", "{\"ids\": [1], \"why\": 2}",
        "{\"ids\": [18446744073709551615]}", "[1]", "{\"ids\": [1], \"groups\": [2]}", "{\"groups\": []}"}) {
    EXPECT_THROW(sisa::parse_forget(bad), sisa::ApiError) << bad;
  }
}

// Nesting is refused before a DOM is built or dumped (both recurse), and a
// key given twice is refused rather than guessed.
TEST(ServeApi, DeepNestingAndDuplicateKeysAreRefused) {
  const auto error_of = [](const std::string& body) {
    try {
      sisa::parse_forget(body);
    } catch (const sisa::ApiError& e) {
      return e.error();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error_of("{\"ids\": " + std::string(100000, '[') + std::string(100000, ']') + "}"), "too_deep");
  EXPECT_EQ(error_of(std::string(33, '[') + std::string(33, ']')), "too_deep");
  EXPECT_EQ(error_of(R"({"ids": [1], "ids": [2]})"), "duplicate_field");
  EXPECT_EQ(error_of(R"({"ids": [{"a": 1, "a": 2}]})"), "duplicate_field");
  EXPECT_EQ(error_of(R"({"ids": [[[1]]]})"), "bad_id");  // nested, but not too deep: a plain type error
  try {
    sisa::parse_predict(R"({"inputs": [[1, 2, 3]], "inputs": [[1, 2, 3]]})", 3, 1.0, 0.0);
    ADD_FAILURE() << "duplicate inputs accepted";
  } catch (const sisa::ApiError& e) {
    EXPECT_EQ(e.error(), "duplicate_field");
  }
}

// The audit's statistics (lm/audit_stats.h) against values known in closed form.
TEST(AuditStats, SkewNormalCdfMatchesItsClosedForms) {
  EXPECT_NEAR(normal_cdf(0.0), 0.5, 1e-15);
  EXPECT_NEAR(normal_cdf(1.959963984540054), 0.975, 1e-12);
  // P(X <= xi) = 1/2 - arctan(alpha) / pi for a skew-normal.
  for (double alpha : {0.0, 1.0, -2.0, 5.0}) {
    EXPECT_NEAR((SkewNormal{1.5, 2.0, alpha}.cdf(1.5)), 0.5 - std::atan(alpha) / M_PI, 1e-9) << alpha;
  }
  // With alpha 0 it is the normal, far tail included (relative precision).
  const double tail = SkewNormal{0.0, 1.0, 0.0}.cdf(-10.0);
  EXPECT_NEAR(tail / 7.619853024160527e-24, 1.0, 1e-6);
  EXPECT_EQ((SkewNormal{0.0, 1.0, 0.0}.cdf(50.0)), 1.0);
}

TEST(AuditStats, SkewNormalFitRecoversItsParameters) {
  // X = xi + omega (delta |U0| + sqrt(1 - delta^2) U1) is skew-normal with
  // shape alpha = delta / sqrt(1 - delta^2).
  const double xi = 1.0, omega = 2.0, alpha = 3.0, delta = alpha / std::sqrt(1.0 + alpha * alpha);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::vector<double> x(400000);
  for (auto& v : x) v = xi + omega * (delta * std::abs(normal(rng)) + std::sqrt(1.0 - delta * delta) * normal(rng));
  const SkewNormal s = SkewNormal::fit(x);
  EXPECT_NEAR(s.xi, xi, 0.05);
  EXPECT_NEAR(s.omega, omega, 0.05);
  EXPECT_NEAR(s.alpha, alpha, 0.35);
  // Symmetric data: a normal with the sample's mean and deviation.
  const SkewNormal n = SkewNormal::fit({-2.0, -1.0, 0.0, 1.0, 2.0});
  EXPECT_NEAR(n.alpha, 0.0, 1e-12);
  EXPECT_NEAR(n.xi, 0.0, 1e-12);
  EXPECT_NEAR(n.omega, std::sqrt(2.0), 1e-12);
}

TEST(AuditStats, AucAndStandardErrorsMatchHandComputedValues) {
  EXPECT_EQ(auc({1, 2}, {3, 4}), 1.0);
  EXPECT_EQ(auc({3, 4}, {1, 2}), 0.0);
  EXPECT_EQ(auc({1, 3}, {2, 3}), 0.625);  // 1<2, 1<3, 3>2, and a tie counting a half
  EXPECT_TRUE(std::isnan(auc({}, {1.0})));
  // Hanley & McNeil at A = 0.5, 10 and 10: q1 = q2 = 1/3, SE^2 = (0.25 + 9/12 + 9/12) / 100.
  EXPECT_NEAR(auc_standard_error(0.5, 10, 10), std::sqrt(0.0175), 1e-12);
  EXPECT_EQ(auc_standard_error(1.0, 5, 7), 0.0);  // a perfect AUC has none
  EXPECT_TRUE(std::isnan(auc_standard_error(0.5, 0, 7)));
  EXPECT_NEAR(standard_error({1, 2, 3, 4}), std::sqrt(5.0 / 3.0 / 4.0), 1e-15);
  EXPECT_TRUE(std::isnan(standard_error({1})));
  EXPECT_EQ(sum_of({0.5, 0.25}), 0.75);
}

// The LOO stopping rule's statistics (nn/loo_criterion.h).
TEST(LooCriterion, LevelsAndGroupZ) {
  EXPECT_NEAR(upper_normal_quantile(0.05), 1.6448536, 1e-6);
  EXPECT_NEAR(upper_normal_quantile(0.5), 0.0, 1e-9);
  const GroupZ levels = criterion_levels(4);
  EXPECT_NEAR(levels.max_z, upper_normal_quantile(0.0125), 1e-12);  // Bonferroni over 4 groups
  EXPECT_NEAR(levels.mean_z, 1.6448536 / 2.0, 1e-6);
  // Held-out excess 0, 1, 2 (mean 1, sd 1); group 0 = rows {3, 5} (mean 4, z 3), group 1 = row {1} (z 0).
  const GroupZ z = group_z({0.0, 1.0, 2.0}, {3.0, 1.0, 5.0}, {0, 1, 0}, 2);
  EXPECT_DOUBLE_EQ(z.max_z, 3.0);
  EXPECT_DOUBLE_EQ(z.mean_z, 1.5);
}
