// The per-shard networks (MLP, small CNN) and the conversion between module
// state and torch-free ModelState blobs. Only src/nn/*.cpp include this.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "sisa/config.h"
#include "sisa/model_state.h"

namespace sisa {

class Net : public torch::nn::Module {
 public:
  explicit Net(const Config& config);
  // `dropout` draws the dropout masks in training; null means eval behaviour.
  torch::Tensor forward(torch::Tensor x, at::Generator* dropout);

 private:
  torch::Tensor activate(const torch::Tensor& x) const;
  torch::Tensor drop(const torch::Tensor& x, at::Generator* gen) const;

  ModelConfig model_;
  std::vector<int64_t> input_shape_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  std::vector<torch::nn::Linear> dense_;  // hidden layers, then the output layer
};

// PyTorch's default layer init (uniform +-1/sqrt(fan_in)) drawn from `gen`
// instead of libtorch's shared global generator.
void init_parameters(Net& net, at::Generator& gen);

TensorBlob to_blob(const std::string& name, TensorRole role, const torch::Tensor& t);
// Copies a blob into an existing tensor, checking name, dtype and shape.
void copy_blob(const TensorBlob& blob, torch::Tensor& dst);
torch::Tensor from_blob_copy(const TensorBlob& blob);
// Copies parameters and buffers of `s` into the module.
void load_module_state(Net& net, const ModelState& s);

// Finds `name` in `state` or throws CorruptionError naming it.
const TensorBlob& require(const ModelState& state, const std::string& name);

}  // namespace sisa
