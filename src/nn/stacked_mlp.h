// Every shard's MLP evaluated as one network, for serving. Small requests are
// dominated by per-call overhead, not arithmetic: one input through S=20
// shards one by one took ~1.8 ms of CPU against a compute floor of ~0.1 ms.
// Stacked, the first layer of all shards is one matrix multiply (inputs times
// [W_1; ...; W_S]^T) and each later layer one batched multiply, so the call
// count no longer grows with S. Torch stays behind the pimpl.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "sisa/config.h"
#include "sisa/model_state.h"

namespace sisa {

class StackedMlp {
 public:
  // Null unless the config's family is stackable (an MLP; sisa-fc's heads
  // over backbone features). `states`: the shards to stack, in order.
  static std::unique_ptr<StackedMlp> build(const Config& config, const std::vector<const ModelState*>& states);
  ~StackedMlp();

  // Softmax posteriors of every stacked shard: shards x n x classes, row-major.
  // `inputs`: n rows of the first layer's width.
  std::vector<float> posteriors(const float* inputs, int64_t n) const;

 private:
  StackedMlp();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sisa
