// The leave-one-out update (nn/loo_update.h): the student is fine-tuned on
// the deleted rows toward, per row, the mean next-token distribution of the
// teachers that never held it.
#include "nn/loo_update.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "nn/lm_nets.h"
#include "nn/loo_criterion.h"
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
    if (in_.heldout) {
      prepare_criterion();
      fine_tune_until_unseen();
    } else {
      out_.kl_before = deleted_pass().kl;
      fine_tune(c_.loo.steps);
      out_.steps = c_.loo.steps;
      out_.final_lr = c_.loo.lr;
      out_.kl_after = deleted_pass().kl;
    }
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

  // The student on every deleted row, in blocks of rows (neither its logits
  // nor the target are ever held for all rows at once): the mean per-token
  // KL(target || student), and the log-likelihood of each predicted token
  // ([rows, L-1], 0 outside rows).
  struct DeletedPass {
    double kl = 0.0;
    torch::Tensor picked;
  };
  DeletedPass deleted_pass() const {
    net_->eval();
    double kl = 0.0, tokens = 0.0;
    const auto all_picked = by_blocks(all_, [&](const torch::Tensor& idx, const Batch& b) {
      const auto q = target_of(idx);
      const auto lp = torch::log_softmax(net_->forward(b, nullptr).slice(1, 0, len_ - 1), -1);
      const auto inside = predicted_inside(b);
      kl += ((q * (q.clamp_min(1e-30).log() - lp)).sum(-1) * inside).sum().item<double>();
      tokens += inside.sum().item<double>();
      return picked(lp, b);
    });
    return {kl / std::max(1.0, tokens), all_picked};
  }

  // The optimizer (fresh state at loo.lr), the whole-request target and the
  // retained rows, made once before the first step.
  void start_training() {
    adam_ = std::make_unique<torch::optim::Adam>(owned_tensors(), torch::optim::AdamOptions(c_.loo.lr));
    batch_ = c_.loo.batch_size == 0 ? n_ : std::min(c_.loo.batch_size, n_);
    if (batch_ == n_) whole_target_ = soften(cached_ ? target_ : loo_target(every_row_));
    if (in_.retained && c_.loo.retain_batch > 0 && in_.retained->size() > 0)
      retained_ = make_batch(in_.retained->view());
    net_->train();
  }

  // One Adam step: its rows, retained rows and dropout come from (seed,
  // request, step).
  void step(int64_t step) {
    const uint64_t seq = in_.request, s = static_cast<uint64_t>(step);
    Batch b = all_;
    torch::Tensor step_target = whole_target_;
    if (batch_ < n_) {
      auto order = permutation(n_, derive(c_.seed, "loo-order", {seq, s}));
      order.resize(static_cast<size_t>(batch_));
      const auto idx = torch::tensor(order, torch::kInt64);
      b = select_rows(all_, idx);
      step_target = soften(target_of(idx));
    }
    gen_.set_current_seed(derive(c_.seed, "loo-dropout", {seq, s}));
    adam_->zero_grad();
    auto loss = soft_cross_entropy(net_->forward(b, &gen_), step_target, b);
    if (retained_.inputs.defined()) {
      const int64_t total = retained_.inputs.size(0);
      auto pick = permutation(total, derive(c_.seed, "loo-retain", {seq, s}));
      pick.resize(static_cast<size_t>(std::min(c_.loo.retain_batch, total)));
      const Batch r = select_rows(retained_, torch::tensor(pick, torch::kInt64));
      loss = loss + family_.loss(net_->forward(r, &gen_), r);
    }
    loss.backward();
    adam_->step();
  }

  // loo.stop: steps. Exactly `steps` steps at loo.lr.
  void fine_tune(int64_t steps) {
    start_training();
    for (int64_t s = 0; s < steps; ++s) step(s);
  }

  // loo.stop: criterion. Steps until the deleted groups' gap looks like the
  // held-out rows' (excess() <= 0), checking every kCheckEvery steps. The
  // step size adapts: a check that finds less than a quarter of the
  // remaining excess gone doubles it (up to kMaxLrGrowth x loo.lr); a check
  // that finds the held-out rows' log-likelihood fallen by more than
  // kHeldoutBudget (the update harming what it must keep) goes back to the
  // last check's weights and halves it for good. At most loo.max_steps steps.
  void fine_tune_until_unseen() {
    constexpr int64_t kCheckEvery = 5;
    constexpr double kMaxLrGrowth = 8.0;
    const double kHeldoutBudget = std::log(1.02);
    Check now = check();
    out_.max_z_before = now.max_z;
    out_.mean_z_before = now.mean_z;
    out_.kl_before = now.kl;
    out_.heldout_before = now.heldout;
    double lr = c_.loo.lr;
    bool may_grow = true;
    int64_t steps = 0;
    auto record = [&](const Check& k, bool rolled_back) {
      out_.checks.push_back({steps, k.max_z, k.mean_z, std::exp(-k.heldout), lr, rolled_back});
    };
    record(now, false);
    if (excess(now) > 0.0) {
      start_training();
      Check kept = now;
      auto snapshot = owned_copy();
      while (steps < c_.loo.max_steps) {
        const int64_t until = std::min(c_.loo.max_steps, steps + kCheckEvery);
        for (; steps < until; ++steps) step(steps);
        now = check();
        net_->train();
        if (out_.heldout_before - now.heldout > kHeldoutBudget) {
          restore(snapshot);
          lr /= 2.0;
          record(now, true);
          now = kept;
          may_grow = false;
          adam_ = std::make_unique<torch::optim::Adam>(owned_tensors(), torch::optim::AdamOptions(lr));
          continue;
        }
        if (excess(now) > 0.0 && may_grow && excess(kept) - excess(now) < 0.25 * excess(kept) &&
            lr < kMaxLrGrowth * c_.loo.lr) {
          lr *= 2.0;
          for (auto& group : adam_->param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
        }
        record(now, false);
        if (excess(now) <= 0.0) break;
        kept = now;
        snapshot = owned_copy();
      }
    }
    out_.steps = steps;
    out_.max_z_after = now.max_z;
    out_.mean_z_after = now.mean_z;
    out_.kl_after = now.kl;
    out_.heldout_after = now.heldout;
    out_.criterion_reached = excess(now) <= 0.0;
    out_.final_lr = lr;
  }

  std::vector<torch::Tensor> owned_tensors() const {
    std::vector<torch::Tensor> out;
    for (auto& [name, t] : owned_parameters(family_, *net_)) out.push_back(t);
    return out;
  }
  std::vector<torch::Tensor> owned_copy() const {
    std::vector<torch::Tensor> out;
    for (const auto& t : owned_tensors()) out.push_back(t.detach().clone());
    return out;
  }
  void restore(const std::vector<torch::Tensor>& copy) const {
    torch::NoGradGuard no_grad;
    const auto now = owned_tensors();
    for (size_t i = 0; i < now.size(); ++i) now[i].copy_(copy[i]);
  }

  // Per row of `b` and predicted token, the log-probability the model gives
  // it (0 outside the row): `next_log_probs` is [rows, L-1, vocab].
  static torch::Tensor picked(const torch::Tensor& next_log_probs, const Batch& b) {
    const int64_t len = b.inputs.size(1);
    return next_log_probs.gather(2, b.inputs.slice(1, 1, len).unsqueeze(2)).squeeze(2) * predicted_inside(b);
  }

  // fn(rows r0.., one block of kBlock at most) for every block of `rows`,
  // the results stacked: no per-row tensor is ever held for all rows at once.
  template <typename Fn>
  static torch::Tensor by_blocks(const Batch& rows, Fn fn) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    const int64_t n = rows.inputs.size(0);
    for (int64_t r0 = 0; r0 < n; r0 += kBlock) {
      const auto idx = torch::arange(r0, std::min(n, r0 + kBlock), torch::kInt64);
      parts.push_back(fn(idx, select_rows(rows, idx)));
    }
    return torch::cat(parts);
  }

  // The student's per-token log-likelihood of `rows`, [rows, L-1], in eval mode.
  torch::Tensor student_picked(const Batch& rows) const {
    net_->eval();
    return by_blocks(rows, [&](const torch::Tensor&, const Batch& b) {
      return picked(torch::log_softmax(net_->forward(b, nullptr).slice(1, 0, len_of(b) - 1), -1), b);
    });
  }
  static int64_t len_of(const Batch& b) { return b.inputs.size(1); }

  // Per row, how much more the student believes its tokens than the teachers
  // do: the mean over its predicted tokens of max(0, student - teacher
  // log-likelihood). Only the excess counts, so tokens the update pushed below
  // the teachers cannot hide a token (a secret's digits) still remembered.
  static std::vector<double> row_excess(const torch::Tensor& student, const torch::Tensor& teacher, const Batch& b) {
    const auto inside = predicted_inside(b);
    const auto gap = (student - teacher).clamp_min(0.0) * inside;
    const auto mean = (gap.sum(1) / inside.sum(1).clamp_min(1.0)).to(torch::kFloat64).contiguous();
    return std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
  }

  // What the criterion compares the student with, computed once: per deleted
  // row, the leave-one-out target's per-token log-likelihood; per held-out
  // row, the mean of every teacher's (none held it). Also each deleted row's
  // group (its data subject, or itself) and the thresholds.
  void prepare_criterion() {
    teacher_deleted_ = by_blocks(all_, [&](const torch::Tensor& idx, const Batch& b) {
      return picked(target_of(idx).clamp_min(1e-30).log(), b);
    });
    heldout_ = make_batch(in_.heldout->view());
    teacher_heldout_ = by_blocks(heldout_, [&](const torch::Tensor&, const Batch& b) {
      torch::Tensor sum;
      for (const auto& [shard, teacher] : teachers_) {
        const auto p = torch::softmax(teacher->forward(b, nullptr), -1).slice(1, 0, len_of(b) - 1);
        sum = sum.defined() ? sum + p : p;
      }
      return picked((sum / static_cast<double>(teachers_.size())).clamp_min(1e-30).log(), b);
    });
    const Dataset& d = *in_.deleted;
    std::map<int64_t, int64_t> index_of;
    for (size_t i = 0; i < d.size(); ++i) {
      const int64_t key = d.has_groups() ? d.groups[i] : d.ids[i];
      group_of_row_.push_back(index_of.emplace(key, static_cast<int64_t>(index_of.size())).first->second);
    }
    out_.criterion_groups = static_cast<int64_t>(index_of.size());
    const GroupZ levels = criterion_levels(out_.criterion_groups);
    out_.max_z_threshold = levels.max_z;
    out_.mean_z_threshold = levels.mean_z;
  }

  // A deleted group's z: (its mean row excess - the held-out rows' mean) /
  // the held-out rows' deviation. A group the student still remembers stands
  // far above the rows it never saw.
  struct Check {
    double max_z = 0.0, mean_z = 0.0;  // over the deleted groups
    double heldout = 0.0;              // the student's per-token log-likelihood of the held-out rows
    double kl = 0.0;                   // deleted_pass().kl
  };
  // How far the deleted groups are from looking unseen: above 0 while one
  // group stands out (max z over the one-sided 5% level, Bonferroni over the
  // groups) or the groups as a whole do (mean z over its 5% level).
  double excess(const Check& c) const {
    return std::max(c.max_z - out_.max_z_threshold, c.mean_z - out_.mean_z_threshold);
  }
  Check check() const {
    const auto held_lp = student_picked(heldout_);
    const auto inside = predicted_inside(heldout_);
    const auto held = row_excess(held_lp, teacher_heldout_, heldout_);
    const DeletedPass pass = deleted_pass();
    const auto del = row_excess(pass.picked, teacher_deleted_, all_);
    const GroupZ z = group_z(held, del, group_of_row_, out_.criterion_groups);
    Check out;
    out.max_z = z.max_z;
    out.mean_z = z.mean_z;
    out.heldout = (held_lp.sum() / inside.sum().clamp_min(1.0)).item<double>();
    out.kl = pass.kl;
    return out;
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
  // Training state (start_training).
  std::unique_ptr<torch::optim::Adam> adam_;
  int64_t batch_ = 0;
  torch::Tensor whole_target_;
  Batch retained_;
  at::Generator gen_ = at::make_generator<at::CPUGeneratorImpl>(0);
  // The stopping rule (prepare_criterion).
  Batch heldout_;
  torch::Tensor teacher_deleted_, teacher_heldout_;  // per-token log-likelihoods
  std::vector<int64_t> group_of_row_;
};

}  // namespace

LooResult loo_update(const Config& config, const ModelState& student, const LooInputs& inputs) {
  return LooUpdate(config, student, inputs).run();
}

}  // namespace sisa
