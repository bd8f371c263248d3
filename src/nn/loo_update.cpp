// The leave-one-out update (nn/loo_update.h): the student is fine-tuned on
// the deleted rows toward, per row, the mean next-token distribution of the
// teachers that never held it.
#include "nn/loo_update.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "nn/lm_nets.h"
#include "nn/model_family.h"
#include "nn/tensor_blobs.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/shard_trainer.h"

namespace sisa {
namespace {

// Rows in a block of the target and of the KL diagnostics: each block's
// teacher outputs stay small enough to be reused from cache.
constexpr int64_t kBlock = 32;

class LooUpdate {
 public:
  LooUpdate(const Config& c, const ModelState& student, const LooInputs& in)
      : c_(c),
        family_(model_family(c.model.type)),
        in_(in),
        student_(student),
        n_(static_cast<int64_t>(in.deleted->size())) {}

  LooResult run() {
    if (n_ == 0) {
      out_.student = student_;
      return out_;
    }
    net_ = family_.build(c_);
    load_owned_state(family_, *net_, student_);
    for (const auto& [shard, state] : in_.teachers) teachers_.emplace_back(shard, load_net(c_, *state));
    out_.teachers_used = teachers_of_each_row();
    all_ = make_batch(in_.deleted->view());
    holders_ = torch::tensor(in_.holder, torch::kInt64);
    len_ = all_.inputs.size(1);
    keep_or_drop_target();
    out_.kl_before = mean_kl();
    fine_tune();
    out_.steps = c_.loo.steps;
    out_.kl_after = mean_kl();
    out_.student = updated_state();
    return out_;
  }

 private:
  // Per deleted row, the teachers it learns from: every one but its holder.
  std::vector<std::vector<int64_t>> teachers_of_each_row() const {
    std::vector<std::vector<int64_t>> out;
    for (int64_t i = 0; i < n_; ++i) {
      std::vector<int64_t> used;
      for (const auto& t : teachers_) {
        if (t.first != in_.holder[static_cast<size_t>(i)]) used.push_back(t.first);
      }
      if (used.empty()) {
        throw DataError("row id " + std::to_string(in_.deleted->ids[static_cast<size_t>(i)]) +
                        ": no teacher besides shard " + std::to_string(in_.holder[static_cast<size_t>(i)]) +
                        " holds data; the leave-one-out target is empty");
      }
      out.push_back(std::move(used));
    }
    return out;
  }

  // The leave-one-out target of rows `idx`: per row, the mean next-token
  // probabilities of the teachers that did not hold it, [rows, L-1, vocab],
  // in blocks of rows (a row's block is fixed by its place in `idx`).
  torch::Tensor loo_target(const torch::Tensor& idx) const {
    torch::NoGradGuard no_grad;
    const int64_t rows = idx.size(0);
    torch::Tensor target;
    for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
      const auto pick = idx.slice(0, r0, std::min(rows, r0 + kBlock));
      const Batch b = select_rows(all_, pick);
      const auto holder = holders_.index_select(0, pick);
      torch::Tensor sum, count;
      for (const auto& [shard, teacher] : teachers_) {
        const auto p = torch::softmax(teacher->forward(b, nullptr), -1).slice(1, 0, len_ - 1);
        const auto keep = (holder != shard).to(torch::kFloat32).view({-1, 1, 1});
        sum = sum.defined() ? sum + p * keep : p * keep;
        count = count.defined() ? count + keep : keep;
      }
      if (!target.defined()) target = torch::empty({rows, len_ - 1, sum.size(2)}, sum.options());
      target.slice(0, r0, r0 + pick.size(0)).copy_(sum / count);
    }
    return target;
  }

  // The target does not change across steps: it is computed once and kept
  // when it fits loo.target_cache_mb, else each step computes its own rows'
  // (more teacher passes, bounded memory). 1 GiB holds ~2,800 rows of 47
  // tokens over 2,000 pieces.
  void keep_or_drop_target() {
    const double target_bytes = static_cast<double>(n_) * static_cast<double>(len_ - 1) *
                                static_cast<double>(model_spec(c_.model).vocab_size(c_)) * sizeof(float);
    cached_ = target_bytes <= static_cast<double>(c_.loo.target_cache_mb) * 1024.0 * 1024.0;
    out_.target_cached = cached_;
    every_row_ = torch::arange(n_, torch::kInt64);
    if (cached_) target_ = loo_target(every_row_);
  }
  torch::Tensor target_of(const torch::Tensor& idx) const {
    return cached_ ? target_.index_select(0, idx) : loo_target(idx);
  }

  // The target softened by temperature t (Hinton et al. 2015): q^(1/t)
  // renormalised. At t = 1 the ops are the plain ones, bit for bit.
  torch::Tensor soften(const torch::Tensor& target) const {
    if (c_.loo.temperature == 1.0) return target;
    torch::NoGradGuard no_grad;
    return torch::softmax(target.clamp_min(1e-30).log() / c_.loo.temperature, -1);
  }

  // Soft cross-entropy of the student against the target over the rows'
  // predicted tokens: the student's logits divided by t, the loss scaled by t^2.
  torch::Tensor soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target, const Batch& b) const {
    const double t = c_.loo.temperature;
    const int64_t len = b.inputs.size(1);
    const auto z = logits.slice(1, 0, len - 1);
    const auto lp = torch::log_softmax(t == 1.0 ? z : z / t, -1);
    const auto inside = predicted_inside(b);
    const auto ce = (-(target * lp).sum(-1) * inside).sum() / inside.sum().clamp_min(1.0);
    return t == 1.0 ? ce : ce * (t * t);
  }

  // Mean per-token KL(target || student) over every deleted row, in blocks
  // of rows: neither the student's logits nor the target are ever held for
  // all rows at once.
  double mean_kl() {
    torch::NoGradGuard no_grad;
    net_->eval();
    double kl = 0.0, tokens = 0.0;
    for (int64_t r0 = 0; r0 < n_; r0 += kBlock) {
      const auto idx = torch::arange(r0, std::min(n_, r0 + kBlock), torch::kInt64);
      const Batch b = select_rows(all_, idx);
      const auto q = target_of(idx);
      const auto lp = torch::log_softmax(net_->forward(b, nullptr).slice(1, 0, len_ - 1), -1);
      const auto inside = predicted_inside(b);
      kl += ((q * (q.clamp_min(1e-30).log() - lp)).sum(-1) * inside).sum().item<double>();
      tokens += inside.sum().item<double>();
    }
    return kl / std::max(1.0, tokens);
  }

  // loo.steps Adam steps at loo.lr from a fresh state; each step's rows,
  // retained rows and dropout come from (seed, request, step).
  void fine_tune() {
    std::vector<torch::Tensor> params;
    for (auto& [name, t] : owned_parameters(family_, *net_)) params.push_back(t);
    torch::optim::Adam adam(params, torch::optim::AdamOptions(c_.loo.lr));
    const int64_t batch = c_.loo.batch_size == 0 ? n_ : std::min(c_.loo.batch_size, n_);
    const torch::Tensor whole_target =
        batch == n_ ? soften(cached_ ? target_ : loo_target(every_row_)) : torch::Tensor();
    Batch retained;
    if (in_.retained && c_.loo.retain_batch > 0 && in_.retained->size() > 0)
      retained = make_batch(in_.retained->view());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    net_->train();
    for (int64_t step = 0; step < c_.loo.steps; ++step) {
      const uint64_t seq = in_.request, s = static_cast<uint64_t>(step);
      Batch b = all_;
      torch::Tensor step_target = whole_target;
      if (batch < n_) {
        auto order = permutation(n_, derive(c_.seed, "loo-order", {seq, s}));
        order.resize(static_cast<size_t>(batch));
        const auto idx = torch::tensor(order, torch::kInt64);
        b = select_rows(all_, idx);
        step_target = soften(target_of(idx));
      }
      gen.set_current_seed(derive(c_.seed, "loo-dropout", {seq, s}));
      adam.zero_grad();
      auto loss = soft_cross_entropy(net_->forward(b, &gen), step_target, b);
      if (retained.inputs.defined()) {
        const int64_t total = retained.inputs.size(0);
        auto pick = permutation(total, derive(c_.seed, "loo-retain", {seq, s}));
        pick.resize(static_cast<size_t>(std::min(c_.loo.retain_batch, total)));
        const Batch r = select_rows(retained, torch::tensor(pick, torch::kInt64));
        loss = loss + family_.loss(net_->forward(r, &gen), r);
      }
      loss.backward();
      adam.step();
    }
  }

  // The student's owned tensors and its count of LOO updates, plus one.
  ModelState updated_state() const {
    ModelState out;
    for (const auto& [name, t] : owned_parameters(family_, *net_))
      out.tensors.push_back(to_blob(name, TensorRole::kParameter, t));
    for (const auto& [name, t] : owned_buffers(family_, *net_))
      out.tensors.push_back(to_blob(name, TensorRole::kBuffer, t));
    int64_t updates = 0;
    if (const TensorBlob* u = student_.find("counter.loo_updates")) updates = from_blob_copy(*u).item<int64_t>();
    out.tensors.push_back(
        to_blob("counter.loo_updates", TensorRole::kCounter, torch::tensor(updates + 1, torch::kInt64)));
    return out;
  }

  const Config& c_;
  const ModelFamily& family_;
  const LooInputs& in_;
  const ModelState& student_;
  const int64_t n_;
  std::shared_ptr<ShardNet> net_;
  std::vector<std::pair<int64_t, std::shared_ptr<ShardNet>>> teachers_;
  Batch all_;
  torch::Tensor holders_, every_row_, target_;
  int64_t len_ = 0;
  bool cached_ = false;
  LooResult out_;
};

}  // namespace

LooResult loo_update(const Config& config, const ModelState& student, const LooInputs& inputs) {
  return LooUpdate(config, student, inputs).run();
}

}  // namespace sisa
