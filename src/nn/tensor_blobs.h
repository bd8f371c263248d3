// Conversion between torch tensors and the torch-free TensorBlobs that
// checkpoints hold. Only src/nn/*.cpp include this.
#pragma once

#include <torch/torch.h>

#include <string>

#include "sisa/model_state.h"

namespace sisa {

TensorBlob to_blob(const std::string& name, TensorRole role, const torch::Tensor& t);
// Copies a blob into an existing tensor, checking name, dtype and shape.
void copy_blob(const TensorBlob& blob, torch::Tensor& dst);
torch::Tensor from_blob_copy(const TensorBlob& blob);
// Finds `name` in `state` or throws CorruptionError naming it.
const TensorBlob& require(const ModelState& state, const std::string& name);

}  // namespace sisa
