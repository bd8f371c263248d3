// The keys of the built-in dense families. "mlp": dense layers over the
// flattened input. "cnn": conv3x3 -> [BatchNorm] -> ReLU -> maxpool2 blocks,
// then the same dense layers. Both declare all five keys, so their identity
// JSON is what it was before families existed (old runs keep their hash).
// Torch-free: config parsing needs it in the sanitizer build.
#include <algorithm>

#include "model_spec.h"

namespace sisa {
namespace {

std::function<std::string(const ModelOption&)> each_positive(std::string what) {
  return [what](const ModelOption& v) {
    const auto& list = std::get<std::vector<int64_t>>(v);
    const bool ok = std::all_of(list.begin(), list.end(), [](int64_t x) { return x > 0; });
    return ok ? std::string() : what;
  };
}

}  // namespace

ModelSpec dense_model_spec(const std::string& name) {
  ModelSpec s;
  s.name = name;
  s.options = {
      // MLP hidden widths; for a cnn, the dense widths after the conv blocks.
      {"hidden", std::vector<int64_t>{256}, each_positive("every width must be > 0")},
      {"activation", std::string("relu"),
       [](const ModelOption& v) {
         const auto& a = std::get<std::string>(v);
         return a == "relu" || a == "tanh" ? std::string() : "must be relu or tanh, got '" + a + "'";
       }},
      {"dropout", 0.0,
       [](const ModelOption& v) {
         const double p = std::get<double>(v);
         return p >= 0.0 && p < 1.0 ? std::string() : std::string("must be in [0, 1)");
       }},
      // Output channels of each conv block (cnn only).
      {"channels", std::vector<int64_t>{32, 64}, each_positive("every entry must be > 0")},
      {"batch_norm", true, nullptr},  // cnn: BatchNorm after each conv
  };
  if (name == "cnn") {
    s.check = [](const Config& c) {
      std::vector<std::string> e;
      if (c.data.input_shape.size() != 3) e.push_back("data.input_shape: a cnn needs [channels, height, width]");
      if (c.model.get<std::vector<int64_t>>("channels").empty()) {
        e.push_back("model.channels: a cnn needs at least one conv block");
      }
      return e;
    };
  }
  s.stackable_mlp = name == "mlp";
  return s;
}

}  // namespace sisa
