#include "nn/net.h"

#include <cmath>
#include <cstring>

#include "sisa/errors.h"

namespace sisa {

Net::Net(const Config& config) : model_(config.model), input_shape_(config.data.input_shape) {
  int64_t features = 1;
  for (auto d : input_shape_) features *= d;
  if (model_.type == "cnn") {
    int64_t channels = input_shape_[0], h = input_shape_[1], w = input_shape_[2];
    for (size_t i = 0; i < model_.channels.size(); ++i) {
      convs_.push_back(register_module(
          "conv" + std::to_string(i),
          torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, model_.channels[i], 3).padding(1))));
      if (model_.batch_norm) {
        norms_.push_back(register_module("bn" + std::to_string(i),
                                         torch::nn::BatchNorm2d(model_.channels[i])));
      }
      channels = model_.channels[i];
      h /= 2;
      w /= 2;
    }
    features = channels * h * w;
  }
  for (size_t i = 0; i < model_.hidden.size(); ++i) {
    dense_.push_back(
        register_module("fc" + std::to_string(i), torch::nn::Linear(features, model_.hidden[i])));
    features = model_.hidden[i];
  }
  dense_.push_back(register_module("out", torch::nn::Linear(features, config.data.num_classes)));
}

torch::Tensor Net::activate(const torch::Tensor& x) const {
  return model_.activation == "tanh" ? torch::tanh(x) : torch::relu(x);
}

torch::Tensor Net::drop(const torch::Tensor& x, at::Generator* gen) const {
  if (!gen || model_.dropout <= 0.0) return x;
  const double keep = 1.0 - model_.dropout;
  auto mask = torch::empty_like(x).bernoulli_(keep, *gen);
  return x * mask / keep;
}

torch::Tensor Net::forward(torch::Tensor x, at::Generator* dropout) {
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
  for (size_t i = 0; i + 1 < dense_.size(); ++i) x = drop(activate(dense_[i]->forward(x)), dropout);
  return dense_.back()->forward(x);
}

void init_parameters(Net& net, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  double bound = 0.0;  // of the last weight matrix; its bias follows it
  for (auto& p : net.named_parameters(/*recurse=*/true)) {
    auto& t = p.value();
    const std::string& name = p.key();
    if (t.dim() >= 2) {
      const double fan_in = static_cast<double>(t.numel() / t.size(0));
      bound = 1.0 / std::sqrt(fan_in);
      t.uniform_(-bound, bound, gen);
    } else if (bound > 0.0 && name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) {
      t.uniform_(-bound, bound, gen);
      bound = 0.0;
    } else {
      bound = 0.0;  // BatchNorm affine parameters keep their (1, 0) init
    }
  }
}

TensorBlob to_blob(const std::string& name, TensorRole role, const torch::Tensor& t) {
  TensorBlob b;
  b.name = name;
  b.role = role;
  const auto c = t.detach().contiguous();
  if (c.scalar_type() == torch::kFloat32) {
    b.dtype = DType::kFloat32;
  } else if (c.scalar_type() == torch::kInt64) {
    b.dtype = DType::kInt64;
  } else {
    throw Error(ExitCode::kInternal, "tensor '" + name + "' has an unsupported dtype");
  }
  b.shape.assign(c.sizes().begin(), c.sizes().end());
  b.bytes.resize(c.nbytes());
  if (!b.bytes.empty()) std::memcpy(b.bytes.data(), c.data_ptr(), b.bytes.size());
  return b;
}

torch::Tensor from_blob_copy(const TensorBlob& blob) {
  const auto dtype = blob.dtype == DType::kFloat32 ? torch::kFloat32 : torch::kInt64;
  return torch::from_blob(const_cast<uint8_t*>(blob.bytes.data()), blob.shape,
                          torch::TensorOptions().dtype(dtype))
      .clone();
}

void copy_blob(const TensorBlob& blob, torch::Tensor& dst) {
  const bool dtype_ok = (blob.dtype == DType::kFloat32 && dst.scalar_type() == torch::kFloat32) ||
                        (blob.dtype == DType::kInt64 && dst.scalar_type() == torch::kInt64);
  if (!dtype_ok || std::vector<int64_t>(dst.sizes().begin(), dst.sizes().end()) != blob.shape) {
    throw CorruptionError("checkpoint tensor '" + blob.name +
                          "' does not match the model's dtype or shape (wrong config?)");
  }
  torch::NoGradGuard no_grad;
  dst.copy_(from_blob_copy(blob));
}

void load_module_state(Net& net, const ModelState& s) {
  for (auto& p : net.named_parameters(true)) copy_blob(require(s, p.key()), p.value());
  for (auto& b : net.named_buffers(true)) copy_blob(require(s, b.key()), b.value());
}

const TensorBlob& require(const ModelState& state, const std::string& name) {
  const TensorBlob* b = state.find(name);
  if (!b) throw CorruptionError("checkpoint lacks tensor '" + name + "'");
  return *b;
}

}  // namespace sisa
