// A pretrained text backbone on disk (`sisa pretrain` writes it; the text
// families read it): an HDF5 file of the encoder's tensors under /t/, with a
// JSON "meta" attribute holding its shape, the SHA-256 of the tokenizer it was
// trained with, and how it was trained. Torch-free, so config checks can read
// the shape. Data inside a backbone is never unlearned (docs/design.md).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "sisa/model_state.h"

namespace sisa {

inline constexpr int kBackboneFormatVersion = 1;

// A post-LayerNorm transformer encoder (src/nn/text_encoder.h).
struct BackboneShape {
  int64_t vocab_size = 0;  // token ids are below this (the tokenizer's size)
  int64_t dim = 0;         // hidden width; the pooled feature width
  int64_t layers = 0;
  int64_t heads = 0;    // dim must be a multiple of heads
  int64_t ff = 0;       // feed-forward width
  int64_t max_len = 0;  // longest sequence (learned positions)
};

nlohmann::json to_json(const BackboneShape& s);
// The reasons (each "key: why") the shape is unusable; empty if it is fine.
std::vector<std::string> shape_problems(const BackboneShape& s);

struct Backbone {
  // "post-ln": TextEncoder (sisa pretrain); "use-lite": UseLiteEncoder, the
  // layout of a real pretrained encoder (src/format/use_lite_package.h).
  std::string architecture = "post-ln";
  BackboneShape shape;
  std::string tokenizer_sha256;
  nlohmann::json pretrain;  // how it was made (corpus hash, steps, seed, loss)
  ModelState weights;       // the encoder's tensors, named as TextEncoder names them
};

std::vector<uint8_t> encode_backbone(const Backbone& b);
// Reads and checks `path` (IOError if unreadable, CorruptionError naming it
// if it is not a backbone or its tensors do not match their digest).
Backbone read_backbone(const std::string& path);
// True for the native format (.h5/.hdf5); anything else is TorchScript.
bool is_native_backbone(const std::string& path);

}  // namespace sisa
