// The keys of the built-in dense families. "mlp": dense layers over the
// flattened input. "cnn": conv3x3 -> [BatchNorm] -> ReLU -> maxpool2 blocks,
// then the same dense layers. Both declare all five keys, so their identity
// JSON is what it was before families existed (old runs keep their hash).
// Torch-free: config parsing needs it in the sanitizer build.
#include <algorithm>

#include "config/model_spec.h"

namespace sisa {
namespace {

std::function<std::string(const ModelOption&)> each_positive(std::string what) {
  return [what](const ModelOption& v) {
    const auto& list = std::get<std::vector<int64_t>>(v);
    const bool ok = std::all_of(list.begin(), list.end(), [](int64_t x) { return x > 0; });
    return ok ? std::string() : what;
  };
}

// The five keys both dense families declare.
ModelSpec dense_spec(const std::string& name) {
  ModelSpec s;
  s.name = name;
  s.options = {
      {"hidden", std::vector<int64_t>{256}, each_positive("every width must be > 0"), true, false, false,
       "hidden widths (cnn: the dense layers after the conv blocks)"},
      {"activation", std::string("relu"),
       [](const ModelOption& v) {
         const auto& a = std::get<std::string>(v);
         return a == "relu" || a == "tanh" ? std::string() : "must be relu or tanh, got '" + a + "'";
       },
       true, false, false, "`relu` or `tanh`"},
      {"dropout", 0.0,
       [](const ModelOption& v) {
         const double p = std::get<double>(v);
         return p >= 0.0 && p < 1.0 ? std::string() : std::string("must be in [0, 1)");
       },
       true, false, false, "in [0, 1); masks drawn from the shard's own generator"},
      {"channels", std::vector<int64_t>{32, 64}, each_positive("every entry must be > 0"), true, false, false,
       "cnn only: output channels of each conv block, conv3x3 (+BatchNorm) + ReLU + maxpool2"},
      {"batch_norm", true, nullptr, true, false, false, "cnn only: BatchNorm after each conv"},
  };
  return s;
}

// Dense layers over the flattened input; serving may stack every shard's.
ModelSpec mlp_spec() {
  ModelSpec s = dense_spec("mlp");
  s.stackable_mlp = true;
  return s;
}

// Conv blocks over [channels, height, width], then the dense layers.
ModelSpec cnn_spec() {
  ModelSpec s = dense_spec("cnn");
  s.check = [](const Config& c) {
    std::vector<std::string> e;
    if (c.data.input_shape.size() != 3) e.push_back("data.input_shape: a cnn needs [channels, height, width]");
    if (c.model.get<std::vector<int64_t>>("channels").empty()) {
      e.push_back("model.channels: a cnn needs at least one conv block");
    }
    return e;
  };
  return s;
}

}  // namespace

SISA_REGISTER_MODEL_SPEC(mlp_spec);
SISA_REGISTER_MODEL_SPEC(cnn_spec);

}  // namespace sisa
