// Scoring, decoding, the student's training and the leave-one-out update
// (src/lm_models.h) over the language-model family of nn/lm_family.cpp.
#include "nn/lm_models.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "nn/model_family.h"
#include "nn/tensor_blobs.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/shard_trainer.h"

namespace sisa {
namespace {

std::shared_ptr<ShardNet> load_net(const Config& c, const ModelState& state) {
  const ModelFamily& family = model_family(c.model.type);
  auto net = family.build(c);
  load_owned_state(family, *net, state);
  net->eval();
  return net;
}

// Sequences as one 0-padded batch of their own longest length.
Batch pad(const std::vector<TokenIds>& seqs, size_t begin, size_t end) {
  int64_t len = 1;
  for (size_t i = begin; i < end; ++i) len = std::max<int64_t>(len, static_cast<int64_t>(seqs[i].size()));
  const auto n = static_cast<int64_t>(end - begin);
  auto tokens = torch::zeros({n, len}, torch::kInt64);
  auto lengths = torch::zeros({n}, torch::kInt64);
  auto t = tokens.accessor<int64_t, 2>();
  for (size_t i = begin; i < end; ++i) {
    for (size_t j = 0; j < seqs[i].size(); ++j) t[static_cast<int64_t>(i - begin)][static_cast<int64_t>(j)] = seqs[i][j];
    lengths[static_cast<int64_t>(i - begin)] = static_cast<int64_t>(seqs[i].size());
  }
  Batch b;
  b.inputs = tokens;
  b.lengths = lengths;
  return b;
}

// Mean over the predicted positions of each row that lie inside it:
// position t predicts token t+1 when t+1 < length. [n, L-1] as float.
torch::Tensor predicted_inside(const Batch& b) {
  const int64_t len = b.inputs.size(1);
  return (torch::arange(1, len, torch::kInt64).unsqueeze(0) < b.lengths.unsqueeze(1)).to(torch::kFloat32);
}

}  // namespace

struct LmScorer::Impl {
  Config config;
  std::vector<std::shared_ptr<ShardNet>> nets;

  // log of the members' mean next-token probability: [n, L, vocab].
  torch::Tensor log_probs(const Batch& b) const {
    torch::Tensor acc;
    for (const auto& net : nets) {
      const auto lp = torch::log_softmax(net->forward(b, nullptr), -1);
      acc = acc.defined() ? torch::logaddexp(acc, lp) : lp;
    }
    return nets.size() == 1 ? acc : acc - std::log(static_cast<double>(nets.size()));
  }
  // The next-token log-probabilities after each of `seqs` (all the same length): [n, vocab].
  torch::Tensor next(const std::vector<TokenIds>& seqs) const {
    const Batch b = pad(seqs, 0, seqs.size());
    return log_probs(b).select(1, b.inputs.size(1) - 1);
  }
};

LmScorer::LmScorer(const Config& config, const std::vector<std::shared_ptr<const ModelState>>& members)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  if (members.empty()) throw DataError("no language model to score with: every shard is empty");
  for (const auto& m : members) impl_->nets.push_back(load_net(config, *m));
}

LmScorer::~LmScorer() = default;
LmScorer::LmScorer(LmScorer&&) noexcept = default;

int64_t LmScorer::max_tokens() const { return impl_->config.data.input_shape.at(0); }
int64_t LmScorer::members() const { return static_cast<int64_t>(impl_->nets.size()); }

std::vector<std::vector<double>> LmScorer::token_log_probs(const std::vector<TokenIds>& seqs) const {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (static_cast<int64_t>(seqs[i].size()) > max_tokens()) {
      throw DataError("text " + std::to_string(i) + " has " + std::to_string(seqs[i].size()) +
                      " tokens; the model reads at most data.max_tokens=" + std::to_string(max_tokens()));
    }
  }
  std::vector<std::vector<double>> out(seqs.size());
  constexpr size_t kBatch = 512;
  for (size_t s = 0; s < seqs.size(); s += kBatch) {
    const size_t e = std::min(seqs.size(), s + kBatch);
    const Batch b = pad(seqs, s, e);
    const int64_t len = b.inputs.size(1);
    if (len < 2) continue;
    const auto lp = impl_->log_probs(b).slice(1, 0, len - 1);
    const auto picked = lp.gather(2, b.inputs.slice(1, 1, len).unsqueeze(2)).squeeze(2).to(torch::kFloat64).contiguous();
    const auto acc = picked.accessor<double, 2>();
    for (size_t i = s; i < e; ++i) {
      const auto n = static_cast<int64_t>(seqs[i].size());
      for (int64_t t = 0; t + 1 < n; ++t) out[i].push_back(acc[static_cast<int64_t>(i - s)][t]);
    }
  }
  return out;
}

TokenIds LmScorer::generate(const TokenIds& prompt, int64_t max_new, int64_t top_k, uint64_t seed) const {
  torch::NoGradGuard no_grad;
  if (prompt.empty()) throw UsageError("the prompt has no tokens");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  TokenIds seq = prompt;
  for (int64_t i = 0; i < max_new && static_cast<int64_t>(seq.size()) < max_tokens(); ++i) {
    const auto lp = impl_->next({seq})[0];
    int64_t token;
    if (top_k <= 1) {
      token = lp.argmax().item<int64_t>();
    } else {
      const auto top = lp.topk(std::min<int64_t>(top_k, lp.size(0)));
      const auto pick = torch::multinomial(torch::softmax(std::get<0>(top), 0), 1, false, gen);
      token = std::get<1>(top)[pick.item<int64_t>()].item<int64_t>();
    }
    seq.push_back(static_cast<int32_t>(token));
  }
  return TokenIds(seq.begin() + static_cast<std::ptrdiff_t>(prompt.size()), seq.end());
}

TokenIds LmScorer::beam_search(const TokenIds& prompt, int64_t n_new, int64_t width) const {
  torch::NoGradGuard no_grad;
  if (prompt.empty()) throw UsageError("the prompt has no tokens");
  n_new = std::min<int64_t>(n_new, max_tokens() - static_cast<int64_t>(prompt.size()));
  struct Beam {
    TokenIds seq;
    double logp;
  };
  std::vector<Beam> beams{{prompt, 0.0}};
  for (int64_t step = 0; step < n_new; ++step) {
    std::vector<TokenIds> seqs;
    for (const auto& b : beams) seqs.push_back(b.seq);
    const auto lp = impl_->next(seqs).to(torch::kFloat64);
    const auto top = lp.topk(std::min<int64_t>(width, lp.size(1)), 1);
    const auto vals = std::get<0>(top).contiguous(), idx = std::get<1>(top).contiguous();
    std::vector<Beam> next;
    for (size_t b = 0; b < beams.size(); ++b) {
      for (int64_t k = 0; k < vals.size(1); ++k) {
        Beam nb = beams[b];
        nb.seq.push_back(static_cast<int32_t>(idx[static_cast<int64_t>(b)][k].item<int64_t>()));
        nb.logp += vals[static_cast<int64_t>(b)][k].item<double>();
        next.push_back(std::move(nb));
      }
    }
    // Stable: equal scores keep the earlier beam (deterministic ties).
    std::stable_sort(next.begin(), next.end(), [](const Beam& a, const Beam& b) { return a.logp > b.logp; });
    next.resize(std::min<size_t>(next.size(), static_cast<size_t>(width)));
    beams = std::move(next);
  }
  return TokenIds(beams[0].seq.begin() + static_cast<std::ptrdiff_t>(prompt.size()), beams[0].seq.end());
}

ModelState train_student(const Config& config, Dataset rows, const std::function<void(int64_t, double)>& on_epoch) {
  // One stage of E epochs: the SISA schedule with one slice gives stage 1
  // all of them. "Shard" S (one past the teachers) names its streams.
  Config c = config;
  c.sisa.slices = 1;
  if (config.loo.epochs > 0) c.train.epochs = config.loo.epochs;
  ShardData data;
  data.slice.assign(rows.size(), 1);
  data.rows = std::move(rows);
  ShardTrainer trainer(c, config.sisa.shards);
  return trainer.train_stage(trainer.initial_state(), 1, data, [&](const EpochReport& e) {
    if (on_epoch) on_epoch(e.epoch, e.mean_loss);
  });
}

LooResult loo_update(const Config& c, const ModelState& student, const LooInputs& in) {
  const ModelFamily& family = model_family(c.model.type);
  const Dataset& deleted = *in.deleted;
  const auto n = static_cast<int64_t>(deleted.size());
  LooResult out;
  if (n == 0) {
    out.student = student;
    return out;
  }
  auto net = family.build(c);
  load_owned_state(family, *net, student);
  std::vector<std::pair<int64_t, std::shared_ptr<ShardNet>>> teachers;
  for (const auto& [shard, state] : in.teachers) teachers.emplace_back(shard, load_net(c, *state));
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> used;
    for (const auto& t : teachers) {
      if (t.first != in.holder[static_cast<size_t>(i)]) used.push_back(t.first);
    }
    if (used.empty()) {
      throw DataError("row id " + std::to_string(deleted.ids[static_cast<size_t>(i)]) +
                      ": no teacher besides shard " + std::to_string(in.holder[static_cast<size_t>(i)]) +
                      " holds data; the leave-one-out target is empty");
    }
    out.teachers_used.push_back(std::move(used));
  }

  const Batch all = make_batch(deleted.view());
  const auto holders = torch::tensor(in.holder, torch::kInt64);
  const int64_t len = all.inputs.size(1);
  // The leave-one-out target of rows `idx`: per row, the mean next-token
  // probabilities of the teachers that did not hold it, [rows, L-1, vocab].
  // In blocks of rows, so each block's teacher outputs stay small enough to
  // be reused from cache; a row's block is fixed by its place in `idx`.
  constexpr int64_t kBlock = 32;
  auto loo_target = [&](const torch::Tensor& idx) {
    torch::NoGradGuard no_grad;
    const int64_t rows = idx.size(0);
    torch::Tensor target;
    for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
      const auto pick = idx.slice(0, r0, std::min(rows, r0 + kBlock));
      const Batch b = select_rows(all, pick);
      const auto holder = holders.index_select(0, pick);
      torch::Tensor sum, count;
      for (const auto& [shard, teacher] : teachers) {
        const auto p = torch::softmax(teacher->forward(b, nullptr), -1).slice(1, 0, len - 1);
        const auto keep = (holder != shard).to(torch::kFloat32).view({-1, 1, 1});
        sum = sum.defined() ? sum + p * keep : p * keep;
        count = count.defined() ? count + keep : keep;
      }
      if (!target.defined()) target = torch::empty({rows, len - 1, sum.size(2)}, sum.options());
      target.slice(0, r0, r0 + pick.size(0)).copy_(sum / count);
    }
    return target;
  };
  // The target does not change across steps: it is computed once and kept
  // when it fits loo.target_cache_mb, else each step computes its own rows'
  // (more teacher passes, bounded memory). 1 GiB holds ~2,800 rows of 47
  // tokens over 2,000 pieces.
  const double target_bytes = static_cast<double>(n) * static_cast<double>(len - 1) *
                              static_cast<double>(model_spec(c.model).vocab_size(c)) * sizeof(float);
  const bool cached = target_bytes <= static_cast<double>(c.loo.target_cache_mb) * 1024.0 * 1024.0;
  out.target_cached = cached;
  const auto every_row = torch::arange(n, torch::kInt64);
  const torch::Tensor target = cached ? loo_target(every_row) : torch::Tensor();
  auto target_of = [&](const torch::Tensor& idx) { return cached ? target.index_select(0, idx) : loo_target(idx); };
  // Soft cross-entropy of the student against the target over the rows'
  // predicted tokens, both softened by temperature t (Hinton et al. 2015):
  // the target as q^(1/t) renormalised, the student's logits divided by t,
  // the loss scaled by t^2. At t = 1 the ops are the plain ones, bit for bit.
  const double temperature = c.loo.temperature;
  auto soften = [&](const torch::Tensor& target) {
    if (temperature == 1.0) return target;
    torch::NoGradGuard no_grad;
    return torch::softmax(target.clamp_min(1e-30).log() / temperature, -1);
  };
  auto soft_ce = [&](const torch::Tensor& logits, const torch::Tensor& target, const Batch& b, double t) {
    const int64_t len = b.inputs.size(1);
    const auto z = logits.slice(1, 0, len - 1);
    const auto lp = torch::log_softmax(t == 1.0 ? z : z / t, -1);
    const auto inside = predicted_inside(b);
    const auto ce = (-(target * lp).sum(-1) * inside).sum() / inside.sum().clamp_min(1.0);
    return t == 1.0 ? ce : ce * (t * t);
  };
  // Mean per-token KL(target || student) over every deleted row, in blocks
  // of rows: neither the student's logits nor the target are ever held for
  // all rows at once.
  auto mean_kl = [&]() {
    torch::NoGradGuard no_grad;
    net->eval();
    double kl = 0.0, tokens = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += kBlock) {
      const auto idx = torch::arange(r0, std::min(n, r0 + kBlock), torch::kInt64);
      const Batch b = select_rows(all, idx);
      const auto q = target_of(idx);
      const auto lp = torch::log_softmax(net->forward(b, nullptr).slice(1, 0, len - 1), -1);
      const auto inside = predicted_inside(b);
      kl += ((q * (q.clamp_min(1e-30).log() - lp)).sum(-1) * inside).sum().item<double>();
      tokens += inside.sum().item<double>();
    }
    return kl / std::max(1.0, tokens);
  };
  out.kl_before = mean_kl();

  std::vector<torch::Tensor> params;
  for (auto& [name, t] : owned_parameters(family, *net)) params.push_back(t);
  torch::optim::Adam adam(params, torch::optim::AdamOptions(c.loo.lr));
  const int64_t batch = c.loo.batch_size == 0 ? n : std::min(c.loo.batch_size, n);
  const torch::Tensor whole_target = batch == n ? soften(cached ? target : loo_target(every_row)) : torch::Tensor();
  Batch retained;
  if (in.retained && c.loo.retain_batch > 0 && in.retained->size() > 0) retained = make_batch(in.retained->view());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  net->train();
  for (int64_t step = 0; step < c.loo.steps; ++step) {
    const uint64_t seq = in.request, s = static_cast<uint64_t>(step);
    Batch b = all;
    torch::Tensor step_target = whole_target;
    if (batch < n) {
      auto order = permutation(n, derive(c.seed, "loo-order", {seq, s}));
      order.resize(static_cast<size_t>(batch));
      const auto idx = torch::tensor(order, torch::kInt64);
      b = select_rows(all, idx);
      step_target = soften(target_of(idx));
    }
    gen.set_current_seed(derive(c.seed, "loo-dropout", {seq, s}));
    adam.zero_grad();
    auto loss = soft_ce(net->forward(b, &gen), step_target, b, temperature);
    if (retained.inputs.defined()) {
      const int64_t total = retained.inputs.size(0);
      auto pick = permutation(total, derive(c.seed, "loo-retain", {seq, s}));
      pick.resize(static_cast<size_t>(std::min(c.loo.retain_batch, total)));
      const Batch r = select_rows(retained, torch::tensor(pick, torch::kInt64));
      loss = loss + family.loss(net->forward(r, &gen), r);
    }
    loss.backward();
    adam.step();
  }
  out.steps = c.loo.steps;
  out.kl_after = mean_kl();

  for (const auto& [name, t] : owned_parameters(family, *net)) out.student.tensors.push_back(to_blob(name, TensorRole::kParameter, t));
  for (const auto& [name, t] : owned_buffers(family, *net)) out.student.tensors.push_back(to_blob(name, TensorRole::kBuffer, t));
  int64_t updates = 0;
  if (const TensorBlob* u = student.find("counter.loo_updates")) updates = from_blob_copy(*u).item<int64_t>();
  out.student.tensors.push_back(
      to_blob("counter.loo_updates", TensorRole::kCounter, torch::tensor(updates + 1, torch::kInt64)));
  return out;
}

}  // namespace sisa
