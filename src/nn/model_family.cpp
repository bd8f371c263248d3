#include "nn/model_family.h"

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

#include "nn/tensor_blobs.h"
#include "sisa/errors.h"

namespace sisa {

namespace {

struct Families {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<const ModelFamily>> by_name;
};

Families& families() {
  static Families* f = new Families;  // never destroyed: static destructors may still look families up
  return *f;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

void register_model_family(std::shared_ptr<const ModelFamily> family) {
  const std::string name = family->name();
  Families& f = families();
  std::lock_guard<std::mutex> lock(f.mu);
  if (f.by_name.count(name)) throw ConfigError("model family '" + name + "' is registered twice");
  f.by_name.emplace(name, std::move(family));
}

const ModelFamily& model_family(const std::string& type) {
  Families& f = families();
  {
    std::lock_guard<std::mutex> lock(f.mu);
    const auto it = f.by_name.find(type);
    if (it != f.by_name.end()) return *it->second;
  }
  ModelConfig m;
  m.type = type;
  model_spec(m);  // throws the error that lists the registered families
  throw ConfigError("model.type: family '" + type + "' has a spec but no torch half registered");
}

void ModelFamily::initialize(ShardNet& net, at::Generator& gen) const {
  torch::NoGradGuard no_grad;
  double bound = 0.0;  // of the last weight matrix; its bias follows it
  for (auto& p : net.named_parameters(/*recurse=*/true)) {
    auto& t = p.value();
    const std::string& name = p.key();
    if (!owns(net, name)) {
      bound = 0.0;  // frozen: the family set it in build()
    } else if (t.dim() >= 2) {
      const double fan_in = static_cast<double>(t.numel() / t.size(0));
      bound = 1.0 / std::sqrt(fan_in);
      t.uniform_(-bound, bound, gen);
    } else if (bound > 0.0 && ends_with(name, "bias")) {
      t.uniform_(-bound, bound, gen);
      bound = 0.0;
    } else {
      bound = 0.0;  // BatchNorm affine parameters keep their (1, 0) init
    }
  }
  for (auto& b : net.named_buffers(true)) {
    // BatchNorm starts from running mean 0, variance 1, zero batches seen.
    if (!owns(net, b.key())) {
      continue;
    } else if (b.key().find("running_var") != std::string::npos) {
      b.value().fill_(1);
    } else {
      b.value().zero_();
    }
  }
}

torch::Tensor ModelFamily::loss(const torch::Tensor& output, const Batch& batch) const {
  return torch::nn::functional::cross_entropy(output, batch.targets);
}

torch::Tensor ModelFamily::posteriors(const torch::Tensor& output) const { return torch::softmax(output, 1); }

std::vector<NamedTensor> owned_parameters(const ModelFamily& family, ShardNet& net) {
  std::vector<NamedTensor> out;
  for (auto& p : net.named_parameters(true)) {
    if (family.owns(net, p.key())) out.emplace_back(p.key(), p.value());
  }
  return out;
}

std::vector<NamedTensor> owned_buffers(const ModelFamily& family, ShardNet& net) {
  std::vector<NamedTensor> out;
  for (auto& b : net.named_buffers(true)) {
    if (family.owns(net, b.key())) out.emplace_back(b.key(), b.value());
  }
  return out;
}

void load_owned_state(const ModelFamily& family, ShardNet& net, const ModelState& s) {
  for (auto& [name, t] : owned_parameters(family, net)) copy_blob(require(s, name), t);
  for (auto& [name, t] : owned_buffers(family, net)) copy_blob(require(s, name), t);
}

Batch make_batch(const InputView& rows) {
  Batch b;
  if (rows.input == InputKind::kTokens) {
    b.inputs =
        torch::from_blob(const_cast<int32_t*>(rows.tokens), {rows.n, rows.width}, torch::kInt32).to(torch::kInt64);
    b.lengths = torch::from_blob(const_cast<int32_t*>(rows.lengths), {rows.n}, torch::kInt32).to(torch::kInt64);
    if (rows.features) {
      b.features = torch::from_blob(const_cast<float*>(rows.features), {rows.n, rows.feature_width});
    }
  } else {
    b.inputs = torch::from_blob(const_cast<float*>(rows.features), {rows.n, rows.width});
  }
  return b;
}

Batch select_rows(const Batch& batch, const torch::Tensor& idx) {
  Batch b;
  b.inputs = batch.inputs.index_select(0, idx);
  if (batch.lengths.defined()) b.lengths = batch.lengths.index_select(0, idx);
  if (batch.targets.defined()) b.targets = batch.targets.index_select(0, idx);
  if (batch.features.defined()) b.features = batch.features.index_select(0, idx);
  return b;
}

}  // namespace sisa
