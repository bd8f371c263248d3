// The torch half of a model family: it builds a shard's network, initialises
// it from the derived generator, says which tensors a shard owns (trains and
// checkpoints) and supplies the loss. The engine (ShardTrainer, ShardModel,
// Ensemble) holds no family-specific code: a family is its own file plus one
// SISA_REGISTER_MODEL_FAMILY line (docs/design.md, "Adding a model family").
// Only src/nn/*.cpp and family files include this header (it pulls in torch).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/model_spec.h"
#include "sisa/model_state.h"

namespace sisa {

// One mini-batch as the engine hands it to a family.
struct Batch {
  torch::Tensor inputs;   // features: float32 [n, width]; tokens: int64 [n, width], 0-padded
  torch::Tensor lengths;  // tokens: int64 [n]; undefined for features
  torch::Tensor targets;  // int64 [n], class labels; undefined at inference
  // Token rows whose family caches features: float32 [n, cached_feature_width]
  // computed at ingest from the tokens (sisa-fc's frozen backbone). Else undefined.
  torch::Tensor features;
};

// A shard's network.
class ShardNet : public torch::nn::Module {
 public:
  // The model's output (class logits for classifiers). `random` draws the
  // training-time randomness (dropout masks); null means eval behaviour.
  virtual torch::Tensor forward(const Batch& batch, at::Generator* random) = 0;
};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;
  // The model.type it answers to. Its keys, input kind and capabilities
  // are the torch-free half, a ModelSpec registered under the same name
  // (SISA_REGISTER_MODEL_SPEC, src/config/model_spec.h).
  virtual std::string name() const = 0;
  virtual std::shared_ptr<ShardNet> build(const Config& config) const = 0;
  // Draws the shard's initial owned tensors from `gen`, seeded from
  // H(seed, "init", shard); never from libtorch's global generator. Frozen
  // tensors must come out the same for every shard. Default: PyTorch's layer
  // init (uniform +-1/sqrt(fan_in)); BatchNorm affine (1, 0), running stats (0, 1).
  virtual void initialize(ShardNet& net, at::Generator& gen) const;
  // Whether a shard trains and owns the tensor (a parameter or buffer name).
  // Owned tensors get optimizer state and go into every checkpoint; the rest
  // are frozen inputs the family sets in build() (from a shared artifact),
  // stored nowhere per shard. Default: a shard owns everything.
  virtual bool owns(const ShardNet& net, const std::string& tensor) const { return true; }
  // The training loss of a batch: a scalar, the mean over its rows.
  // Default: cross-entropy of the class logits against batch.targets.
  virtual torch::Tensor loss(const torch::Tensor& output, const Batch& batch) const;
  // Class posteriors from the output, n x num_classes. Default: softmax.
  virtual torch::Tensor posteriors(const torch::Tensor& output) const;

  // Families whose shards read a frozen function of the tokens (sisa-fc's
  // backbone features): its width, else 0. The engine computes the features
  // once per row when the data is ingested, stores them beside the tokens
  // (purged with them) and hands them to forward() in Batch::features.
  virtual int64_t cached_feature_width(const Config& config) const { return 0; }
  // Those features for a batch of token rows: float32 [n, width].
  virtual torch::Tensor cached_features(const Config& config, const Batch& batch) const { return {}; }
};

// Adds a family (its spec is registered on its own). ConfigError if the name is taken.
void register_model_family(std::shared_ptr<const ModelFamily> family);
// The family named by model.type (ConfigError naming it).
const ModelFamily& model_family(const std::string& type);

// A tensor with its registered name.
using NamedTensor = std::pair<std::string, torch::Tensor>;
// What a shard owns, in registration order: parameters, then buffers.
std::vector<NamedTensor> owned_parameters(const ModelFamily& family, ShardNet& net);
std::vector<NamedTensor> owned_buffers(const ModelFamily& family, ShardNet& net);

// Copies the owned tensors of a checkpoint into the net (CorruptionError
// naming a missing or mismatched tensor).
void load_owned_state(const ModelFamily& family, ShardNet& net, const ModelState& s);

// Every row of a view as a batch (tokens widened to int64; cached features
// when the view has them), no targets.
// Feature rows are borrowed, not copied: the view must outlive the batch.
Batch make_batch(const InputView& rows);
// Rows `idx` of a batch (every defined tensor).
Batch select_rows(const Batch& batch, const torch::Tensor& idx);

}  // namespace sisa

// At namespace scope in the family's .cpp (or a test): registers it at start-up.
#define SISA_REGISTER_MODEL_FAMILY(Class)                                                     \
  static const bool SISA_REGISTRATION_NAME(sisa_model_family_registered_, __COUNTER__) = [] { \
    ::sisa::register_model_family(std::make_shared<const Class>());                           \
    return true;                                                                              \
  }()
