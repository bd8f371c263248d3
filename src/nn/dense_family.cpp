// The built-in dense families. "mlp": dense layers over the flattened input.
// "cnn": conv3x3 (padding 1) -> [BatchNorm] -> ReLU -> maxpool2 blocks, then
// the same dense layers. Their keys are declared in config/dense_spec.cpp.
#include "nn/dropout.h"
#include "nn/model_family.h"

namespace sisa {
namespace {

class DenseNet : public ShardNet {
 public:
  // `conv`: conv blocks (model.channels) before the dense layers (the cnn).
  DenseNet(const Config& config, bool conv);
  torch::Tensor forward(const Batch& batch, at::Generator* gen) override;

 private:
  torch::Tensor activate(const torch::Tensor& x) const;

  std::vector<int64_t> hidden_, channels_;
  bool tanh_;
  double dropout_;
  std::vector<int64_t> input_shape_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  std::vector<torch::nn::Linear> dense_;  // hidden layers, then the output layer
};

DenseNet::DenseNet(const Config& config, bool conv)
    : hidden_(config.model.get<std::vector<int64_t>>("hidden")),
      channels_(config.model.get<std::vector<int64_t>>("channels")),
      tanh_(config.model.get<std::string>("activation") == "tanh"),
      dropout_(config.model.get<double>("dropout")),
      input_shape_(config.data.input_shape) {
  int64_t features = 1;
  for (auto d : input_shape_) features *= d;
  if (conv) {
    int64_t channels = input_shape_[0], h = input_shape_[1], w = input_shape_[2];
    for (size_t i = 0; i < channels_.size(); ++i) {
      convs_.push_back(
          register_module("conv" + std::to_string(i),
                          torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels_[i], 3).padding(1))));
      if (config.model.get<bool>("batch_norm")) {
        norms_.push_back(register_module("bn" + std::to_string(i), torch::nn::BatchNorm2d(channels_[i])));
      }
      channels = channels_[i];
      h /= 2;
      w /= 2;
    }
    features = channels * h * w;
  }
  for (size_t i = 0; i < hidden_.size(); ++i) {
    dense_.push_back(register_module("fc" + std::to_string(i), torch::nn::Linear(features, hidden_[i])));
    features = hidden_[i];
  }
  dense_.push_back(register_module("out", torch::nn::Linear(features, config.data.num_classes)));
}

torch::Tensor DenseNet::activate(const torch::Tensor& x) const { return tanh_ ? torch::tanh(x) : torch::relu(x); }

torch::Tensor DenseNet::forward(const Batch& batch, at::Generator* gen) {
  torch::Tensor x = batch.inputs;
  const int64_t n = x.size(0);
  if (!convs_.empty()) {
    x = x.view({n, input_shape_[0], input_shape_[1], input_shape_[2]});
    for (size_t i = 0; i < convs_.size(); ++i) {
      x = convs_[i]->forward(x);
      if (!norms_.empty()) x = norms_[i]->forward(x);
      x = torch::max_pool2d(torch::relu(x), 2);
    }
  }
  x = x.reshape({n, -1});
  for (size_t i = 0; i + 1 < dense_.size(); ++i) x = dropout(activate(dense_[i]->forward(x)), dropout_, gen);
  return dense_.back()->forward(x);
}

// Dense layers over the flattened input (keys: config/dense_spec.cpp).
class MlpFamily : public ModelFamily {
 public:
  std::string name() const override { return "mlp"; }
  std::shared_ptr<ShardNet> build(const Config& config) const override {
    return std::make_shared<DenseNet>(config, /*conv=*/false);
  }
};

// Conv blocks, then the same dense layers.
class CnnFamily : public ModelFamily {
 public:
  std::string name() const override { return "cnn"; }
  std::shared_ptr<ShardNet> build(const Config& config) const override {
    return std::make_shared<DenseNet>(config, /*conv=*/true);
  }
};

}  // namespace
}  // namespace sisa

SISA_REGISTER_MODEL_FAMILY(sisa::MlpFamily);
SISA_REGISTER_MODEL_FAMILY(sisa::CnnFamily);
