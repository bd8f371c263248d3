// What the language-model code of nn/ shares (torch): a model built from a
// state, and which predicted positions lie inside their rows.
#pragma once

#include <memory>

#include "nn/model_family.h"

namespace sisa {

// The config's family built and loaded with `state`, in eval mode.
std::shared_ptr<ShardNet> load_net(const Config& c, const ModelState& state);
// Position t predicts token t+1 when t+1 < length: [n, L-1] as float.
torch::Tensor predicted_inside(const Batch& b);

}  // namespace sisa
