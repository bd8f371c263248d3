// The torch-free half of a model family: its name, its `model.*` keys (each
// declared once with its default, its check and whether it is part of the
// run's identity), the kind of input it reads and its optional capabilities.
// Config parsing, validation, YAML output and the identity hash read the
// family's keys from here, so none of them lists a family's keys. The torch
// half (building, initialising and training the module) is ModelFamily in
// src/nn/model_family.h; registering a ModelFamily registers its spec too.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sisa/config.h"
#include "sisa/dataset.h"

namespace sisa {

struct ModelOptionSpec {
  std::string key;
  ModelOption default_value;  // its type is the option's type
  // Empty when the value is acceptable, else the reason ("must be > 0"); the
  // caller prefixes "model.<key>: ".
  std::function<std::string(const ModelOption&)> check;
  // Part of the identity hash: true for every key that can change a bit.
  bool identity = true;
  // A string naming a file the run uses but does not train (a pretrained
  // backbone): a shared artifact. Resolved against the config's directory;
  // `train` copies it into the run (artifacts/<sha256><ext>) and the stored
  // config names the copy; the identity hash takes its SHA-256, not its path.
  bool artifact = false;
  // A key added after runs existed: the identity leaves it out while it
  // holds its default, so those runs keep their hash.
  bool omit_default = false;
  // Its line in the docs' key table.
  std::string doc;
};

struct ModelSpec {
  std::string name;
  std::vector<ModelOptionSpec> options;  // in the order YAML output lists them
  InputKind input = InputKind::kFeatures;
  // A family whose input kind a key chooses (torchscript's model.input):
  // overrides `input`. Optional; read it through model_input().
  std::function<InputKind(const Config&)> input_of;
  // Checks that involve other sections, each "key: reason" (a cnn needs a
  // 3-d data.input_shape). Optional.
  std::function<std::vector<std::string>(const Config&)> check;
  // Token families: every token id must be below this. Optional.
  std::function<int64_t(const Config&)> vocab_size;
  // Capability: a shard is dense layers fc0..fcK then out (parameters
  // "<layer>.weight", "<layer>.bias"), ReLU or tanh by model.activation, so
  // serving may evaluate every shard as one stacked network (src/nn/stacked_mlp.h).
  bool stackable_mlp = false;
  // A causal language model: rows have no labels (data.num_classes stays 0)
  // and the model predicts each next token; `predict` does not apply.
  bool language_model = false;
};

// Adds a family. ConfigError if the name is taken or the spec is malformed.
void register_model_spec(ModelSpec spec);
// Null if no family has that name. The built-in families are always there.
const ModelSpec* find_model_spec(const std::string& name);
// The spec of the config's family, or ConfigError naming model.type.
const ModelSpec& model_spec(const ModelConfig& model);
// The kind of input the config's family reads.
InputKind model_input(const Config& config);
// Registered names, sorted (for messages).
std::vector<std::string> model_family_names();

// DataError naming `origin` unless the rows are the kind of input the
// config's family reads, and token ids are below its vocabulary size.
void check_model_inputs(const Dataset& rows, const Config& config, const std::string& origin);

// The registered spec of a family that must exist (a built-in one's torch
// half asks for its own); ConfigError naming it otherwise.
const ModelSpec& registered_spec(const std::string& name);

}  // namespace sisa

// At namespace scope beside a spec's declaration: registers the spec made by
// `factory()` (a function returning a ModelSpec) at start-up, torch-free, so
// every command and the sanitizer build can parse the family's configs.
#define SISA_REGISTER_MODEL_SPEC(factory)                                                   \
  static const bool SISA_REGISTRATION_NAME(sisa_model_spec_registered_, __COUNTER__) = [] { \
    ::sisa::register_model_spec(factory());                                                 \
    return true;                                                                            \
  }()
// A name of its own for each registration in a file.
#define SISA_REGISTRATION_NAME(prefix, n) SISA_REGISTRATION_NAME_(prefix, n)
#define SISA_REGISTRATION_NAME_(prefix, n) prefix##n

namespace sisa {}  // namespace sisa
