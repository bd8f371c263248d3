// One shard's SISA training. Every random draw comes from a generator
// re-seeded from (seed, shard, stage, epoch); the optimizer is written here
// (SGD with momentum, Adam, the same update rules as torch.optim) so its whole
// state is explicit tensors that checkpoints save and restore exactly.
#include "sisa/shard_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "nn/huge_page_allocator.h"
#include "nn/model_family.h"
#include "nn/tensor_blobs.h"
#include "sisa/errors.h"
#include "sisa/placement.h"

namespace sisa {

void set_compute_threads(int64_t threads) {
  install_huge_page_allocator();
  at::set_num_threads(static_cast<int>(threads));
  // OpenBLAS spawns its own pool; pin it (its thread count changes bits).
  using SetThreads = void (*)(int);
  if (auto* f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    f(static_cast<int>(threads));
  }
}

namespace {

// The optimizer state that later steps read, held as plain tensors. It
// covers the parameters the shard owns; frozen ones get none.
class Optimizer {
 public:
  Optimizer(const TrainConfig& cfg, const std::vector<NamedTensor>& owned) : cfg_(cfg) {
    for (const auto& [name, t] : owned) {
      names_.push_back(name);
      params_.push_back(t);
      first_.push_back(torch::zeros_like(t));
      if (adam()) second_.push_back(torch::zeros_like(t));
    }
  }

  bool adam() const { return cfg_.optimizer == "adam"; }
  bool has_momentum() const { return adam() || cfg_.momentum > 0.0; }

  void step() {
    torch::NoGradGuard no_grad;
    ++step_;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      if (!p.grad().defined()) continue;
      auto g = p.grad();
      if (cfg_.weight_decay > 0.0) g = g.add(p, cfg_.weight_decay);
      if (adam()) {
        const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(step_));
        const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(step_));
        first_[i].mul_(cfg_.beta1).add_(g, 1.0 - cfg_.beta1);
        second_[i].mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
        auto denom = (second_[i].sqrt() / std::sqrt(bc2)).add_(cfg_.eps);
        p.addcdiv_(first_[i], denom, -cfg_.lr / bc1);
      } else if (cfg_.momentum > 0.0) {
        first_[i].mul_(cfg_.momentum).add_(g);
        p.add_(first_[i], -cfg_.lr);
      } else {
        p.add_(g, -cfg_.lr);
      }
    }
  }

  void save(ModelState* s) const {
    for (size_t i = 0; i < params_.size(); ++i) {
      if (has_momentum()) {
        s->tensors.push_back(
            to_blob((adam() ? "optim.exp_avg." : "optim.momentum.") + names_[i], TensorRole::kOptimizer, first_[i]));
      }
      if (adam()) {
        s->tensors.push_back(to_blob("optim.exp_avg_sq." + names_[i], TensorRole::kOptimizer, second_[i]));
      }
    }
    s->tensors.push_back(to_blob("optim.step", TensorRole::kCounter, torch::tensor(step_, torch::kInt64)));
  }

  void load(const ModelState& s) {
    for (size_t i = 0; i < params_.size(); ++i) {
      if (has_momentum()) {
        copy_blob(require(s, (adam() ? "optim.exp_avg." : "optim.momentum.") + names_[i]), first_[i]);
      }
      if (adam()) copy_blob(require(s, "optim.exp_avg_sq." + names_[i]), second_[i]);
    }
    step_ = from_blob_copy(require(s, "optim.step")).item<int64_t>();
  }

  void reset() {
    torch::NoGradGuard no_grad;
    for (auto& t : first_) t.zero_();
    for (auto& t : second_) t.zero_();
    step_ = 0;
  }

 private:
  TrainConfig cfg_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_, first_, second_;
  int64_t step_ = 0;
};

// A checkpoint: the owned parameters, then the owned buffers, then the
// optimizer state and counters.
ModelState export_state(const ModelFamily& family, ShardNet& net, const Optimizer& opt, int64_t stage) {
  ModelState s;
  for (const auto& [name, t] : owned_parameters(family, net)) {
    s.tensors.push_back(to_blob(name, TensorRole::kParameter, t));
  }
  for (const auto& [name, t] : owned_buffers(family, net)) {
    s.tensors.push_back(to_blob(name, TensorRole::kBuffer, t));
  }
  opt.save(&s);
  s.tensors.push_back(to_blob("counter.stage", TensorRole::kCounter, torch::tensor(stage, torch::kInt64)));
  return s;
}

}  // namespace

struct ShardTrainer::Impl {
  Impl(const Config& c, int64_t s, TrainerOptions o)
      : config(c),
        shard(s),
        options(o),
        family(model_family(c.model.type)),
        net(family.build(c)),
        optimizer(c.train, owned_parameters(family, *net)),
        generator(at::make_generator<at::CPUGeneratorImpl>(0)) {}
  Config config;
  int64_t shard;
  TrainerOptions options;
  const ModelFamily& family;
  std::shared_ptr<ShardNet> net;
  Optimizer optimizer;
  at::Generator generator;
};

ShardTrainer::ShardTrainer(const Config& config, int64_t shard, TrainerOptions options)
    : impl_(std::make_unique<Impl>(config, shard, options)) {
  set_compute_threads(config.train.threads);
}

ShardTrainer::~ShardTrainer() = default;

ModelState ShardTrainer::initial_state() {
  auto& m = *impl_;
  m.generator.set_current_seed(derive(m.config.seed, "init", {static_cast<uint64_t>(m.shard)}));
  m.family.initialize(*m.net, m.generator);
  m.optimizer.reset();
  return export_state(m.family, *m.net, m.optimizer, 0);
}

ModelState ShardTrainer::train_stage(const ModelState& previous, int64_t stage, const ShardData& data,
                                     const EpochCallback& on_epoch) {
  auto& m = *impl_;
  const Config& c = m.config;
  load_owned_state(m.family, *m.net, previous);
  if (m.options.restore_optimizer_state) {
    m.optimizer.load(previous);
  } else {
    m.optimizer.reset();
  }
  // The stage's samples: slices 1..stage, in id order (the data is sorted).
  std::vector<int64_t> rows;
  for (size_t i = 0; i < data.slice.size(); ++i) {
    if (data.slice[i] <= stage) rows.push_back(static_cast<int64_t>(i));
  }
  const auto n = static_cast<int64_t>(rows.size());
  Batch stage_rows;
  if (n > 0) {
    Batch all = make_batch(data.rows.view());
    all.targets = torch::from_blob(const_cast<int64_t*>(data.rows.labels.data()),
                                   {static_cast<int64_t>(data.rows.size())}, torch::kInt64);
    stage_rows = select_rows(all, torch::from_blob(rows.data(), {n}, torch::kInt64));
  }
  const int64_t epochs = stage_epochs(c.train.epochs, c.sisa.slices)[stage];
  m.net->train();
  for (int64_t epoch = 0; epoch < epochs && n > 0; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t s = static_cast<uint64_t>(m.shard), r = static_cast<uint64_t>(stage),
                   k = static_cast<uint64_t>(epoch);
    auto order = permutation(n, derive(c.seed, "order", {s, r, k}));
    m.generator.set_current_seed(derive(c.seed, "dropout", {s, r, k}));
    const auto order_t = torch::from_blob(order.data(), {n}, torch::kInt64);
    const auto bounds = batch_bounds(n, c.train.batch_size);
    auto loss_sum = torch::zeros({}, torch::kFloat64);
    for (size_t b = 0; b + 1 < bounds.size(); ++b) {
      const Batch batch = select_rows(stage_rows, order_t.slice(0, bounds[b], bounds[b + 1]));
      m.net->zero_grad();
      const auto loss = m.family.loss(m.net->forward(batch, &m.generator), batch);
      loss.backward();
      m.optimizer.step();
      loss_sum += loss.detach().to(torch::kFloat64) * static_cast<double>(bounds[b + 1] - bounds[b]);
    }
    if (on_epoch) {
      EpochReport rep;
      rep.shard = m.shard;
      rep.stage = stage;
      rep.epoch = epoch + 1;
      rep.epochs = epochs;
      rep.samples = n;
      rep.mean_loss = loss_sum.item<double>() / static_cast<double>(n);
      rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      on_epoch(rep);
    }
  }
  return export_state(m.family, *m.net, m.optimizer, stage);
}

}  // namespace sisa
