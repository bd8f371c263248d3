// "torchscript" (issue #26): a user's scripted nn.Module as a shard's
// network. Each shard loads its own copy of the module file (a shared
// artifact pinned by hash) and starts from the module's saved tensors, the
// same for every shard. model.trainable chooses the parameters a shard
// trains: only those get gradients and optimizer state and go into its
// checkpoints; the rest stay frozen as the file has them. Every buffer is
// checkpointed (BatchNorm statistics change in training, frozen part or not).
//
// The engine reads tensors by name through torch::nn::Module, so the net
// mirrors the module's hierarchy with empty holder modules and registers the
// module's own tensors in them (the same storage: the engine's optimizer
// updates the scripted module in place), under the module's dotted names.
//
// Randomness inside the module (dropout) draws from libtorch's default
// generator, which a script cannot be handed. So each training forward
// reseeds it from the shard's generator (seeded from (seed, shard, stage,
// epoch) and advanced once per step), under a lock: every draw is still a
// function of (seed, shard, slice, epoch, step).
//
// model.cache_below (tokens only): a frozen submodule's output is computed at
// ingest, row by row in eval mode (so a row's features never depend on which
// rows share its batch), and kept beside the tokens as sisa-fc keeps its
// backbone features; a shard then runs only the module's forward_above(h).
#include <ATen/CPUGeneratorImpl.h>
#include <fnmatch.h>
#include <torch/script.h>

#include <map>
#include <mutex>
#include <set>

#include "nn/model_family.h"
#include "sisa/errors.h"

namespace sisa {
namespace {

std::string joined(const std::vector<std::string>& names, size_t most = 12) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < most; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > most) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

// The interpreter's message without its TorchScript traceback.
std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string m = c10 ? c10->what_without_backtrace() : e.what();
  const size_t at = m.rfind("RuntimeError: ");
  if (at != std::string::npos) m = m.substr(at + 14);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

torch::jit::Module load_module(const std::string& path) {
  try {
    return torch::jit::load(path);
  } catch (const c10::Error& e) {
    throw CorruptionError("model.module: '" + path + "' is not a TorchScript module: " + e.what_without_backtrace());
  }
}

// The module's frozen submodule named by model.cache_below, loaded once per
// process and file (run copies are content-addressed and checked before use).
class FrozenPrefix {
 public:
  FrozenPrefix(const std::string& path, const std::string& name, int64_t max_tokens) : name_(name) {
    auto root = load_module(path);
    bool found = false;
    for (const auto& child : root.named_children()) {
      if (child.name == name) module_ = child.value, found = true;
    }
    if (!found) {
      throw ConfigError("model.cache_below: '" + path + "' has no submodule '" + name + "' directly under the root");
    }
    if (!root.find_method("forward_above")) {
      throw ConfigError("model.cache_below: '" + path +
                        "' exports no forward_above(self, h) (decorate it with @torch.jit.export): the part of the "
                        "module above '" +
                        name + "'");
    }
    module_.eval();
    Batch probe;
    probe.inputs = torch::ones({1, max_tokens}, torch::kInt64);
    probe.lengths = torch::full({1}, max_tokens, torch::kInt64);
    width_ = features(probe).size(1);
  }

  int64_t width() const { return width_; }

  // [n, width] float32, one row at a time.
  torch::Tensor features(const Batch& batch) const {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < batch.inputs.size(0); ++i) {
      torch::jit::IValue out;
      try {
        out = const_cast<torch::jit::Module&>(module_).forward(
            {batch.inputs.slice(0, i, i + 1), batch.lengths.slice(0, i, i + 1)});
      } catch (const std::exception& e) {  // the interpreter's errors are not all c10::Error
        throw DataError("model.cache_below: submodule '" + name_ + "' failed: " + first_line(e));
      }
      if (!out.isTensor() || out.toTensor().dim() != 2 || out.toTensor().size(0) != 1 ||
          out.toTensor().scalar_type() != torch::kFloat32) {
        throw ConfigError("model.cache_below: submodule '" + name_ +
                          "' must return float32 [n, width] for tokens [n, max_tokens] and lengths [n]");
      }
      rows.push_back(out.toTensor());
    }
    return torch::cat(rows, 0).contiguous();
  }

 private:
  std::string name_;
  torch::jit::Module module_;
  int64_t width_ = 0;
};

std::shared_ptr<const FrozenPrefix> frozen_prefix(const Config& c) {
  const std::string path = c.model.get<std::string>("module"), name = c.model.get<std::string>("cache_below");
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const FrozenPrefix>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = loaded[path + "|" + name + "|" + std::to_string(c.data.width())];
  if (!slot) slot = std::make_shared<const FrozenPrefix>(path, name, c.data.width());
  return slot;
}

class TorchScriptNet : public ShardNet {
 public:
  explicit TorchScriptNet(const Config& c)
      : path_(c.model.get<std::string>("module")),
        tokens_(c.model.get<std::string>("input") == "tokens"),
        cache_below_(c.model.get<std::string>("cache_below")),
        module_(load_module(path_)) {
    if (!cache_below_.empty()) prefix_ = frozen_prefix(c);
    choose_owned(c.model.get<std::vector<std::string>>("trainable"));
    mirror();
    check_output(c);
  }

  bool owns(const std::string& name) const { return owned_.count(name) > 0; }

  // Puts back the module file's values of every tensor a shard owns.
  void restore_saved() {
    torch::NoGradGuard no_grad;
    for (auto& [live, saved] : saved_) live.copy_(saved);
  }

  void train(bool on) override {
    ShardNet::train(on);
    module_.train(on);
  }

  torch::Tensor forward(const Batch& batch, at::Generator* random) override {
    if (!random || !is_training()) return run(batch);
    static std::mutex default_generator_user;  // one reseeded forward at a time in this process
    std::lock_guard<std::mutex> lock(default_generator_user);
    uint64_t seed;
    {
      std::lock_guard<std::mutex> g(random->mutex());
      seed = at::check_generator<at::CPUGeneratorImpl>(*random)->random64();
    }
    auto def = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> g(def.mutex());
      def.set_current_seed(seed);
    }
    return run(batch);
  }

 private:
  torch::Tensor run(const Batch& batch) {
    try {
      return run_module(batch);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw DataError("model.module: '" + path_ + "' failed on a batch of " + std::to_string(batch.inputs.size(0)) +
                      " row(s): " + first_line(e));
    }
  }

  torch::Tensor run_module(const Batch& batch) {
    if (prefix_) {
      const auto h = batch.features.defined() ? batch.features : prefix_->features(batch);
      const auto out = module_.run_method("forward_above", h);
      if (!out.isTensor()) throw DataError("model.module: '" + path_ + "' forward_above did not return a tensor");
      return out.toTensor();
    }
    std::vector<torch::jit::IValue> args{batch.inputs};
    if (tokens_) args.emplace_back(batch.lengths);
    const auto out = module_.forward(args);
    if (!out.isTensor()) throw DataError("model.module: '" + path_ + "' forward did not return a tensor");
    return out.toTensor();
  }

  // Trainable: the parameters the patterns match, or (no patterns) those the
  // file saved with requires_grad. Every buffer is owned.
  void choose_owned(const std::vector<std::string>& patterns) {
    std::vector<std::string> params, buffers;
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) params.push_back(p.name);
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) buffers.push_back(b.name);
    const auto matches = [](const std::string& pattern, const std::string& name) {
      return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
    };
    for (const auto& pattern : patterns) {
      bool any = false;
      for (const auto& n : params) {
        if (matches(pattern, n)) owned_.insert(n), any = true;
      }
      if (any) continue;
      for (const auto& n : buffers) {
        if (matches(pattern, n)) {
          throw ConfigError("model.trainable: pattern '" + pattern + "' matches buffer '" + n + "' of '" + path_ +
                            "' and no parameter: patterns choose parameters (every buffer is checkpointed)");
        }
      }
      throw ConfigError("model.trainable: pattern '" + pattern + "' matches no parameter of '" + path_ +
                        "' (its parameters: " + joined(params) + ")");
    }
    if (patterns.empty()) {
      for (const auto& p : module_.named_parameters(true)) {
        if (p.value.requires_grad()) owned_.insert(p.name);
      }
    }
    if (owned_.empty()) {
      throw ConfigError("model.trainable: no parameter of '" + path_ +
                        "' is trainable (none saved with requires_grad; name them by pattern)");
    }
    const std::string below = cache_below_ + ".";
    for (const auto& n : owned_) {
      if (!cache_below_.empty() && n.rfind(below, 0) == 0) {
        throw ConfigError("model.trainable: '" + n + "' is inside model.cache_below '" + cache_below_ +
                          "', whose output is computed once and cached: it cannot be trained");
      }
    }
    for (const auto& n : buffers) {
      if (cache_below_.empty() || n.rfind(below, 0) != 0) owned_.insert(n);  // a cached part runs in eval mode
    }
  }

  // The module's tensors under their dotted names, in holder modules.
  void mirror() {
    std::map<std::string, std::shared_ptr<torch::nn::Module>> holders;
    const auto holder_of = [&](const std::string& name, std::string* leaf) -> torch::nn::Module& {
      torch::nn::Module* at = this;
      size_t from = 0, dot;
      while ((dot = name.find('.', from)) != std::string::npos) {
        const std::string prefix = name.substr(0, dot);
        auto& h = holders[prefix];
        if (!h) h = at->register_module(name.substr(from, dot - from), std::make_shared<torch::nn::Module>());
        at = h.get();
        from = dot + 1;
      }
      *leaf = name.substr(from);
      return *at;
    };
    std::string leaf;
    for (const auto& p : module_.named_parameters(true)) {
      const bool trained = owns(p.name);
      holder_of(p.name, &leaf).register_parameter(leaf, p.value, trained);
      if (trained) saved_.emplace_back(p.value, p.value.detach().clone());
    }
    for (const auto& b : module_.named_buffers(true)) {
      holder_of(b.name, &leaf).register_buffer(leaf, b.value);
      saved_.emplace_back(b.value, b.value.detach().clone());
    }
  }

  // One eval-mode forward of two dummy rows: the module takes the configured
  // input and gives [n, num_classes] logits, or the user hears it now.
  void check_output(const Config& c) {
    torch::NoGradGuard no_grad;
    Batch b;
    const std::string shape = tokens_ ? "int64 tokens [2, " + std::to_string(c.data.width()) + "] and lengths [2]"
                                      : "float32 [2, " + std::to_string(c.data.width()) + "]";
    if (tokens_) {
      b.inputs = torch::ones({2, c.data.width()}, torch::kInt64);
      b.lengths = torch::full({2}, c.data.width(), torch::kInt64);
    } else {
      b.inputs = torch::zeros({2, c.data.width()});
    }
    module_.eval();
    torch::Tensor out;
    try {
      out = run_module(b);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw ConfigError("model.module: '" + path_ + "' cannot run on " + shape +
                        " (model.input: " + (tokens_ ? "tokens" : "features") + "): " + first_line(e));
    }
    if (out.dim() != 2 || out.size(0) != 2 || out.size(1) != c.data.num_classes ||
        out.scalar_type() != torch::kFloat32) {
      throw ConfigError("model.module: '" + path_ + "' returned " + c10::str(out.sizes()) + " " +
                        c10::toString(out.scalar_type()) + " for " + shape + "; want float32 logits [2, " +
                        std::to_string(c.data.num_classes) + "] (data.num_classes)");
    }
  }

  std::string path_;
  bool tokens_;
  std::string cache_below_;
  torch::jit::Module module_;
  std::shared_ptr<const FrozenPrefix> prefix_;  // set with model.cache_below
  std::set<std::string> owned_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;  // (live, the file's value), owned tensors
};

class TorchScriptFamily : public ModelFamily {
 public:
  std::string name() const override { return "torchscript"; }
  std::shared_ptr<ShardNet> build(const Config& c) const override { return std::make_shared<TorchScriptNet>(c); }
  bool owns(const ShardNet& net, const std::string& tensor) const override {
    return static_cast<const TorchScriptNet&>(net).owns(tensor);
  }
  int64_t cached_feature_width(const Config& c) const override {
    return c.model.get<std::string>("cache_below").empty() ? 0 : frozen_prefix(c)->width();
  }
  torch::Tensor cached_features(const Config& c, const Batch& batch) const override {
    return frozen_prefix(c)->features(batch);
  }
  // Every shard starts from the module file's values (a LoRA's zero B
  // stays zero); nothing is drawn.
  void initialize(ShardNet& net, at::Generator&) const override { static_cast<TorchScriptNet&>(net).restore_saved(); }
};

}  // namespace
}  // namespace sisa

SISA_REGISTER_MODEL_FAMILY(sisa::TorchScriptFamily);
