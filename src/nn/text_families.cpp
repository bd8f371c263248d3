// The text families over a transformer encoder (keys and checks in
// config/text_spec.cpp), one class each over a common TextFamily. Every shard builds its own encoder copy from the
// backbone; what a shard owns, and so trains and checkpoints:
//   transformer  every tensor (plain SISA; a backbone only sets the start)
//   sisa-a       the adapters (of the blocks, and of the embeddings with
//                model.embedding_rank > 0), the LayerNorms and the head
//   sisa-fc      the head; the frozen backbone is not part of the shard net,
//                its pooled features come with the batch (cached at ingest)
//                or are computed on the fly.
#include <sys/stat.h>
#include <torch/script.h>

#include <functional>
#include <map>
#include <mutex>

#include "config/text_spec.h"
#include "format/use_lite_package.h"
#include "nn/model_family.h"
#include "nn/text_encoder.h"
#include "nn/use_lite_encoder.h"
#include "sisa/errors.h"
#include "util/fs.h"

namespace sisa {
namespace {

// Backbones are read once per process and shared by every shard. Run copies
// are content-addressed (artifacts/<sha256>.h5) and checked before any
// command builds a model; the key adds size and mtime for files outside a run.
std::string cache_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw IOError("cannot read backbone '" + path + "'");
  return path + "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// What `load` makes of the file at `path`, made once per cache_key (one
// cache for each type T).
template <typename T>
std::shared_ptr<const T> load_once(const std::string& path,
                                   const std::function<std::shared_ptr<const T>(const std::string&)>& load) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const T>> cache;
  const std::string key = cache_key(path);
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[key];
  if (!slot) slot = load(path);
  return slot;
}

std::shared_ptr<const Backbone> cached_backbone(const std::string& path) {
  return load_once<Backbone>(path,
                             [](const std::string& p) { return std::make_shared<const Backbone>(read_backbone(p)); });
}

// The frozen feature extractor of sisa-fc: a native encoder in eval mode, or
// a TorchScript module with forward(tokens, lengths) -> [n, dim] float.
class FrozenBackbone {
 public:
  explicit FrozenBackbone(const std::string& path) : path_(path) {
    if (is_native_backbone(path) && cached_backbone(path)->architecture == kUseLiteArchitecture) {
      // A real pretrained encoder: its sentence embedding is the feature.
      use_lite_ = std::make_shared<UseLiteEncoder>();
      use_lite_->load(cached_backbone(path)->weights, path);
      use_lite_->eval();
      dim_ = UseLiteEncoder::kDim;
    } else if (is_native_backbone(path)) {
      const auto b = cached_backbone(path);
      encoder_ = std::make_shared<TextEncoder>(b->shape, 0, 0.0);
      encoder_->load(b->weights, path);
      encoder_->eval();
      dim_ = b->shape.dim;
    } else {
      check_input_file(path, {"model.backbone", kMaxArtifactBytes, ExitCode::kData});
      try {
        script_ = torch::jit::load(path);
      } catch (const c10::Error& e) {
        throw CorruptionError("model.backbone: '" + path +
                              "' is not a TorchScript module: " + e.what_without_backtrace());
      }
      script_.eval();
      torch::NoGradGuard no_grad;
      dim_ = features(torch::ones({1, 1}, torch::kInt64), torch::ones({1}, torch::kInt64)).size(1);
    }
  }

  // Row by row, each cut to its length: a row's features are then the same
  // bits whatever rows share its batch (at ingest, in predict, in serve).
  torch::Tensor features(const torch::Tensor& tokens, const torch::Tensor& lengths) const {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < tokens.size(0); ++i) {
      const int64_t len = std::max<int64_t>(1, lengths[i].item<int64_t>());
      rows.push_back(one_row(tokens.slice(0, i, i + 1).slice(1, 0, len), lengths.slice(0, i, i + 1)));
    }
    return torch::cat(rows, 0);
  }
  int64_t dim() const { return dim_; }

 private:
  torch::Tensor one_row(const torch::Tensor& tokens, const torch::Tensor& lengths) const {
    if (use_lite_) return use_lite_->forward(tokens, lengths);
    if (encoder_) return TextEncoder::mean_pool(encoder_->forward(tokens, lengths, nullptr), lengths);
    torch::Tensor out;
    try {
      out = const_cast<torch::jit::Module&>(script_).forward({tokens, lengths}).toTensor();
    } catch (const c10::Error& e) {
      throw CorruptionError("model.backbone: TorchScript module '" + path_ +
                            "' failed on forward(tokens, lengths): " + e.what_without_backtrace());
    }
    if (out.dim() != 2 || out.size(0) != 1 || out.scalar_type() != torch::kFloat32) {
      throw CorruptionError("model.backbone: TorchScript module '" + path_ + "' must return float32 [n, dim] features");
    }
    return out;
  }

  std::string path_;
  std::shared_ptr<TextEncoder> encoder_;
  std::shared_ptr<UseLiteEncoder> use_lite_;
  torch::jit::Module script_;
  int64_t dim_ = 0;
};

std::shared_ptr<const FrozenBackbone> cached_frozen(const std::string& path) {
  return load_once<FrozenBackbone>(path,
                                   [](const std::string& p) { return std::make_shared<const FrozenBackbone>(p); });
}

// What a shard computes its pooled features with: its own encoder (with
// adapters of this size and an embedding adapter of this rank; 0: none), or
// the frozen backbone (sisa-fc).
struct TextFeatures {
  bool frozen = false;
  int64_t adapter_size = 0, embedding_rank = 0;
  int64_t cached_layers = 0;  // sisa-a on USE-Lite: bottom layers computed once per row and cached
};

// The bottom layer of a USE-Lite backbone, for sisa-a's cache: loaded once per
// process and file, computed row by row.
std::shared_ptr<const UseLiteEncoder> cached_lower_layer(const std::string& path) {
  return load_once<UseLiteEncoder>(path, [](const std::string& p) {
    auto encoder = std::make_shared<UseLiteEncoder>(0, 1);
    encoder->load(cached_backbone(p)->weights, p);
    encoder->eval();
    return std::shared_ptr<const UseLiteEncoder>(std::move(encoder));
  });
}

class TextNet : public ShardNet {
 public:
  TextNet(const Config& c, const TextFeatures& kind)
      : dropout_(c.model.get<double>("dropout")), backbone_(c.model.get<std::string>("backbone")) {
    const std::string& backbone = backbone_;
    int64_t width = 0;
    if (kind.frozen) {
      frozen_ = cached_frozen(backbone);
      width = frozen_->dim();
    } else if (!backbone.empty() && is_native_backbone(backbone) &&
               cached_backbone(backbone)->architecture == kUseLiteArchitecture) {
      // A real pretrained encoder, fine-tuned (transformer) or adapted (sisa-a).
      use_lite_ = register_module("encoder", std::make_shared<UseLiteEncoder>(kind.adapter_size, kind.cached_layers));
      cached_layers_ = kind.cached_layers;
      use_lite_->load(cached_backbone(backbone)->weights, backbone);
      width = UseLiteEncoder::kDim;
    } else {
      const BackboneShape shape = text_encoder_shape(c);
      encoder_ = register_module(
          "encoder", std::make_shared<TextEncoder>(shape, kind.adapter_size, dropout_, false, kind.embedding_rank));
      if (!backbone.empty()) encoder_->load(cached_backbone(backbone)->weights, backbone);
      width = shape.dim;
    }
    const auto& hidden = c.model.get<std::vector<int64_t>>("hidden");
    for (size_t i = 0; i < hidden.size(); ++i) {
      head_.push_back(register_module("fc" + std::to_string(i), torch::nn::Linear(width, hidden[i])));
      width = hidden[i];
    }
    head_.push_back(register_module("out", torch::nn::Linear(width, c.data.num_classes)));
  }

  torch::Tensor features(const Batch& batch, at::Generator* gen) {
    if (frozen_) return batch.features.defined() ? batch.features : frozen_->features(batch.inputs, batch.lengths);
    if (use_lite_ && cached_layers_ > 0) {
      const auto lower =
          batch.features.defined() ? batch.features : cached_lower_layer(backbone_)->lower(batch.inputs, batch.lengths);
      return use_lite_->forward_upper(lower, batch.lengths);
    }
    if (use_lite_) return use_lite_->forward_batch(batch.inputs, batch.lengths);
    return TextEncoder::mean_pool(encoder_->forward(batch.inputs, batch.lengths, gen), batch.lengths);
  }

  torch::Tensor forward(const Batch& batch, at::Generator* gen) override {
    auto x = dropout(features(batch, gen), dropout_, gen);
    for (size_t i = 0; i + 1 < head_.size(); ++i) x = dropout(torch::relu(head_[i]->forward(x)), dropout_, gen);
    return head_.back()->forward(x);
  }

  TextEncoder* encoder() { return encoder_.get(); }
  UseLiteEncoder* use_lite() { return use_lite_.get(); }
  // sisa-a on USE-Lite with its bottom layer cached: that layer is frozen, LayerNorms too.
  bool frozen_layer(const std::string& name) const { return cached_layers_ > 0 && name.rfind("encoder.l0.", 0) == 0; }
  const std::string& backbone() const { return backbone_; }

 private:
  double dropout_;
  std::string backbone_;
  std::shared_ptr<TextEncoder> encoder_;
  std::shared_ptr<UseLiteEncoder> use_lite_;
  int64_t cached_layers_ = 0;
  std::shared_ptr<const FrozenBackbone> frozen_;
  std::vector<torch::nn::Linear> head_;
};

// What the three families share: a TextNet, started from the backbone.
class TextFamily : public ModelFamily {
 public:
  std::shared_ptr<ShardNet> build(const Config& c) const override {
    auto net = std::make_shared<TextNet>(c, features(c));
    for (auto& p : net->named_parameters(true)) {
      if (!owns(*net, p.key())) p.value().set_requires_grad(false);  // frozen: no gradient is computed for it
    }
    return net;
  }

  void initialize(ShardNet& net, at::Generator& gen) const override {
    ModelFamily::initialize(net, gen);  // the owned tensors, from the shard's generator
    auto& text = static_cast<TextNet&>(net);
    const std::string& backbone = text.backbone();
    torch::nn::Module* encoder = text.encoder();
    if (auto* use_lite = text.use_lite()) {
      use_lite->load(cached_backbone(backbone)->weights, backbone);
      encoder = use_lite;
    } else if (!encoder || backbone.empty()) {
      return;
    } else {
      text.encoder()->load(cached_backbone(backbone)->weights, backbone);
    }
    // Start from the pretrained weights; the adapters start as the identity
    // (up-projections zero), so a shard starts from the backbone's features.
    torch::NoGradGuard no_grad;
    for (auto& p : encoder->named_parameters(true)) {
      if (p.key().find("_up.") != std::string::npos) p.value().zero_();
    }
  }

 protected:
  virtual TextFeatures features(const Config& c) const = 0;
};

// Plain SISA: a shard trains every tensor (a backbone only sets the start).
class TransformerFamily : public TextFamily {
 public:
  std::string name() const override { return "transformer"; }

 protected:
  TextFeatures features(const Config&) const override { return {}; }
};

// SISA-FC: a head over the frozen backbone's pooled features, which the
// engine computes once per row at ingest and stores with the row.
class SisaFcFamily : public TextFamily {
 public:
  std::string name() const override { return "sisa-fc"; }
  int64_t cached_feature_width(const Config& c) const override {
    return cached_frozen(c.model.get<std::string>("backbone"))->dim();
  }
  torch::Tensor cached_features(const Config& c, const Batch& batch) const override {
    return cached_frozen(c.model.get<std::string>("backbone"))->features(batch.inputs, batch.lengths);
  }

 protected:
  TextFeatures features(const Config&) const override { return {true, 0, 0}; }
};

// SISA-A: a shard owns the adapters, the LayerNorms and the head; the rest
// of the encoder is the backbone's, frozen and in no checkpoint.
class SisaAFamily : public TextFamily {
 public:
  std::string name() const override { return "sisa-a"; }
  bool owns(const ShardNet& net, const std::string& name) const override {
    if (name.rfind("encoder.", 0) != 0) return true;
    if (static_cast<const TextNet&>(net).frozen_layer(name)) return false;
    return TextEncoder::is_adapter(name) || TextEncoder::is_layer_norm(name);
  }
  // model.cached_layers 1 (USE-Lite): layer 0's output per row, [max_tokens x 512].
  int64_t cached_feature_width(const Config& c) const override {
    return c.model.get<int64_t>("cached_layers") > 0 ? c.data.width() * UseLiteEncoder::kDim : 0;
  }
  torch::Tensor cached_features(const Config& c, const Batch& batch) const override {
    return cached_lower_layer(c.model.get<std::string>("backbone"))->lower(batch.inputs, batch.lengths);
  }

 protected:
  TextFeatures features(const Config& c) const override {
    return {false, c.model.get<int64_t>("adapter_size"), c.model.get<int64_t>("embedding_rank"),
            c.model.get<int64_t>("cached_layers")};
  }
};

}  // namespace
}  // namespace sisa

SISA_REGISTER_MODEL_FAMILY(sisa::TransformerFamily);
SISA_REGISTER_MODEL_FAMILY(sisa::SisaFcFamily);
SISA_REGISTER_MODEL_FAMILY(sisa::SisaAFamily);
