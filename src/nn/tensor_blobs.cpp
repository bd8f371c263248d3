#include "nn/tensor_blobs.h"

#include <cstring>

#include "sisa/errors.h"

namespace sisa {

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
  return torch::from_blob(const_cast<uint8_t*>(blob.bytes.data()), blob.shape, torch::TensorOptions().dtype(dtype))
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

const TensorBlob& require(const ModelState& state, const std::string& name) {
  const TensorBlob* b = state.find(name);
  if (!b) throw CorruptionError("checkpoint lacks tensor '" + name + "'");
  return *b;
}

}  // namespace sisa
