// The torch-free half of the text families (src/nn/text_spec.cpp).
#pragma once

#include <string>

#include "backbone.h"
#include "model_spec.h"

namespace sisa {

// "transformer", "sisa-fc" or "sisa-a".
ModelSpec text_model_spec(const std::string& name);
// "lm": a causal language model (decoder-only transformer), trained from scratch per shard.
ModelSpec lm_model_spec();
// The encoder a text config builds: its backbone's shape, or (a transformer
// without a backbone) the model keys' with the tokenizer's vocabulary.
BackboneShape text_encoder_shape(const Config& config);

}  // namespace sisa
