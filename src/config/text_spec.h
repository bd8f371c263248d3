// The torch-free half of the text families (src/config/text_spec.cpp).
#pragma once

#include <string>

#include "config/model_spec.h"
#include "format/backbone.h"

namespace sisa {

// The specs of "transformer", "sisa-fc", "sisa-a" and "lm" are registered by
// text_spec.cpp (find_model_spec finds them).
// The encoder a text config builds: its backbone's shape, or (a transformer
// without a backbone) the model keys' with the tokenizer's vocabulary.
BackboneShape text_encoder_shape(const Config& config);

}  // namespace sisa
