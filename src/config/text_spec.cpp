// The keys of the text families over a transformer encoder (issue #10):
// "transformer" (every tensor trained per shard: plain SISA; from a
// pretrained backbone, or from scratch when model.backbone is empty),
// "sisa-fc" (a frozen backbone, a per-shard head over its pooled features) and
// "sisa-a" (a frozen backbone with per-shard Houlsby adapters, LayerNorms and
// head, and optionally a low-rank adapter of the token embeddings).
// Torch-free: config checks read the backbone's shape from its file.
#include "config/text_spec.h"

#include <algorithm>

#include "sisa/errors.h"
#include "text/tokenizer.h"
#include "util/sha256.h"

namespace sisa {
namespace {

std::string positive(const ModelOption& v) { return std::get<int64_t>(v) > 0 ? "" : "must be > 0"; }

std::string probability(const ModelOption& v) {
  const double p = std::get<double>(v);
  return p >= 0.0 && p < 1.0 ? "" : "must be in [0, 1)";
}

std::string widths(const ModelOption& v) {
  const auto& w = std::get<std::vector<int64_t>>(v);
  return std::all_of(w.begin(), w.end(), [](int64_t x) { return x > 0; }) ? "" : "every width must be > 0";
}

// The config's backbone path; "" for families without one (lm).
std::string backbone_of(const Config& c) {
  for (const auto& o : model_spec(c.model).options) {
    if (o.key == "backbone") return c.model.get<std::string>("backbone");
  }
  return {};
}

// The shape the family builds: the backbone's, or (transformer without a
// backbone, lm) the model keys' with the tokenizer's vocabulary.
BackboneShape shape_of(const Config& c) {
  const std::string path = backbone_of(c);
  if (!path.empty()) return read_backbone(path).shape;
  BackboneShape s;
  s.vocab_size = c.model.get<int64_t>("vocab_size");
  if (s.vocab_size == 0 && !c.data.tokenizer.empty()) s.vocab_size = Tokenizer(c.data.tokenizer).vocab_size();
  s.dim = c.model.get<int64_t>("dim");
  s.layers = c.model.get<int64_t>("layers");
  s.heads = c.model.get<int64_t>("heads");
  s.ff = c.model.get<int64_t>("ff");
  // The sequence width: [max_tokens] for text (checked), the HDF5 token width otherwise.
  s.max_len = c.data.input_shape.size() == 1 ? c.data.input_shape[0] : c.data.max_tokens;
  return s;
}

// What sets the text families apart in their checks.
struct TextVariant {
  const char* name;
  bool needs_backbone;   // sisa-fc and sisa-a freeze one; a transformer may start from scratch
  bool script_backbone;  // a TorchScript backbone is frozen: only a head over it can train (sisa-fc)
};

std::vector<std::string> check_text(const Config& c, const TextVariant& variant) {
  std::vector<std::string> e;
  const std::string path = backbone_of(c);
  const std::string family = variant.name;
  if (path.empty()) {
    if (variant.needs_backbone) {
      e.push_back("model.backbone: family '" + family + "' needs a pretrained backbone");
    } else if (c.model.get<int64_t>("vocab_size") == 0 && c.data.tokenizer.empty()) {
      e.push_back("model.vocab_size: needed without a backbone or data.tokenizer");
    }
    if (!e.empty()) return e;
  }
  if (!path.empty() && !is_native_backbone(path)) {
    if (!variant.script_backbone) {
      e.push_back("model.backbone: a TorchScript backbone ('" + path + "') is frozen: only family sisa-fc can use it");
    } else if (c.data.text_column.empty()) {
      e.push_back("model.backbone: a TorchScript backbone needs data.text_column and data.tokenizer");
    }
    return e;
  }
  BackboneShape shape;
  std::string want;  // the tokenizer the backbone was pretrained with
  try {
    if (path.empty()) {
      shape = shape_of(c);
    } else {
      const Backbone b = read_backbone(path);  // once: shape and tokenizer hash
      shape = b.shape;
      want = b.tokenizer_sha256;
      const int64_t cached = family == "sisa-a" ? c.model.get<int64_t>("cached_layers") : 0;
      if (cached > 0 && (b.architecture != "use-lite" || cached > 1)) {
        return {"model.cached_layers: " + std::to_string(cached) +
                " needs a use-lite backbone, which has 2 layers: "
                "0 or 1 (" +
                path + " is " + b.architecture + ")"};
      }
      if (b.architecture != "post-ln" && family == "sisa-a" && c.model.get<int64_t>("embedding_rank") > 0) {
        return {"model.embedding_rank: a " + b.architecture + " backbone ('" + path +
                "') has no embedding adapter; use 0"};
      }
    }
  } catch (const Error& err) {
    // Without a backbone the shape reads the tokenizer's vocabulary.
    return {(path.empty() ? "data.tokenizer: " : "model.backbone: ") + std::string(err.what())};
  }
  for (const auto& why : shape_problems(shape)) e.push_back("model." + why);
  const int64_t width = c.data.input_shape.empty() ? 0 : c.data.input_shape[0];
  if (c.data.input_shape.size() != 1 || width > shape.max_len) {
    e.push_back("data.input_shape: must be [sequence length] with length <= " + std::to_string(shape.max_len) +
                " (the encoder's max_len)");
  }
  if (!path.empty() && !c.data.tokenizer.empty()) {
    std::string have;
    try {
      have = sha256_file(c.data.tokenizer);
    } catch (const Error& err) {
      return {"data.tokenizer: " + std::string(err.what())};
    }
    if (have != want) {
      e.push_back("data.tokenizer: '" + c.data.tokenizer + "' is not the tokenizer backbone '" + path +
                  "' was pretrained with (sha256 " + want.substr(0, 12) + "...)");
    }
  }
  return e;
}

// A causal language model (decoder-only transformer), trained from scratch per shard.
ModelSpec lm_spec() {
  ModelSpec s;
  s.name = "lm";
  s.input = InputKind::kTokens;
  s.language_model = true;
  s.options = {
      {"dropout", 0.1, probability, true, false, false, "in [0, 1)"},
      {"dim", int64_t{128}, positive, true, false, false, "width"},
      {"layers", int64_t{2}, positive, true, false, false, "blocks"},
      {"heads", int64_t{4}, positive, true, false, false, "attention heads"},
      {"ff", int64_t{256}, positive, true, false, false, "feed-forward width"},
      {"vocab_size", int64_t{0},
       [](const ModelOption& v) { return std::get<int64_t>(v) >= 0 ? "" : "must be >= 0 (0: the tokenizer's)"; }, true,
       false, false, "0: the tokenizer's size"},
  };
  s.check = [](const Config& c) {
    std::vector<std::string> e;
    if (c.model.get<int64_t>("vocab_size") == 0 && c.data.tokenizer.empty()) {
      e.push_back("model.vocab_size: needed without data.tokenizer");
      return e;
    }
    BackboneShape shape;
    try {
      shape = shape_of(c);
    } catch (const Error& err) {
      return std::vector<std::string>{"data.tokenizer: " + std::string(err.what())};
    }
    for (const auto& why : shape_problems(shape)) e.push_back("model." + why);
    if (c.data.input_shape.size() != 1 || c.data.input_shape[0] < 2) {
      e.push_back("data.input_shape: a language model needs [sequence length] with length >= 2");
    }
    return e;
  };
  s.vocab_size = [](const Config& c) -> int64_t { return shape_of(c).vocab_size; };
  return s;
}

// The keys every text family has, its checks, and its vocabulary.
ModelSpec text_spec(const TextVariant& variant) {
  ModelSpec s;
  s.name = variant.name;
  s.input = InputKind::kTokens;
  s.options = {
      {"backbone", std::string(), nullptr, true, /*artifact=*/true, false,
       "a backbone from `sisa pretrain` (.h5), or for sisa-fc a TorchScript file; a shared artifact. Empty: a "
       "transformer trained from scratch"},
      {"dropout", 0.1, probability, true, false, false, "in [0, 1)"},
      {"hidden", std::vector<int64_t>{}, widths, true, false, false,
       "hidden widths of the head over the pooled features ([]: one linear layer)"},
  };
  s.check = [variant](const Config& c) { return check_text(c, variant); };
  s.vocab_size = [](const Config& c) -> int64_t {
    const std::string path = backbone_of(c);
    if (!path.empty() && !is_native_backbone(path)) return Tokenizer(c.data.tokenizer).vocab_size();
    return shape_of(c).vocab_size;
  };
  return s;
}

// Plain SISA: every tensor trained per shard, from a backbone or from scratch.
ModelSpec transformer_spec() {
  ModelSpec s = text_spec({"transformer", false, false});
  // The encoder's shape when there is no backbone (ignored with one).
  s.options.push_back({"dim", int64_t{128}, positive, true, false, false, "without a backbone: the width"});
  s.options.push_back({"layers", int64_t{2}, positive, true, false, false, "without a backbone: blocks"});
  s.options.push_back({"heads", int64_t{4}, positive, true, false, false, "without a backbone: attention heads"});
  s.options.push_back({"ff", int64_t{256}, positive, true, false, false, "without a backbone: feed-forward width"});
  s.options.push_back(
      {"vocab_size", int64_t{0},
       [](const ModelOption& v) { return std::get<int64_t>(v) >= 0 ? "" : "must be >= 0 (0: the tokenizer's)"; }, true,
       false, false, "without a backbone: 0 takes the tokenizer's size"});
  return s;
}

// A frozen backbone, a per-shard head over its pooled features (cached at ingest).
ModelSpec sisa_fc_spec() {
  ModelSpec s = text_spec({"sisa-fc", true, true});
  s.stackable_mlp = true;  // the head is dense layers fc0..fcK, out over the pooled features
  return s;
}

// A frozen backbone with per-shard Houlsby adapters, LayerNorms and head.
ModelSpec sisa_a_spec() {
  ModelSpec s = text_spec({"sisa-a", true, false});
  s.options.push_back({"adapter_size", int64_t{32}, positive, true, false, false, "each adapter's bottleneck"});
  // The rank of the embedding adapter (text_encoder.h); 0: none, the
  // token embeddings stay as pretrained (Houlsby et al.'s SISA-A).
  s.options.push_back(
      {"embedding_rank", int64_t{0},
       [](const ModelOption& v) { return std::get<int64_t>(v) >= 0 ? "" : "must be >= 0 (0: no embedding adapter)"; },
       true, false, /*omit_default=*/true, "rank of the embedding adapter; 0: none"});
  // Issue #27: adapters in the top layer only, the frozen layer below computed
  // once per row at ingest and cached, so a retrain runs only the top layer.
  s.options.push_back(
      {"cached_layers", int64_t{0},
       [](const ModelOption& v) { return std::get<int64_t>(v) >= 0 ? "" : "must be >= 0"; }, true, false,
       /*omit_default=*/true,
       "a use-lite backbone: 1 freezes its bottom layer (no adapters, LayerNorms frozen) and caches its output per "
       "row at ingest (max_tokens x 512 floats a row), so a retrain runs only the top layer; 0: adapters in both"});
  return s;
}

}  // namespace

SISA_REGISTER_MODEL_SPEC(transformer_spec);
SISA_REGISTER_MODEL_SPEC(sisa_fc_spec);
SISA_REGISTER_MODEL_SPEC(sisa_a_spec);
SISA_REGISTER_MODEL_SPEC(lm_spec);

BackboneShape text_encoder_shape(const Config& c) { return shape_of(c); }

}  // namespace sisa
