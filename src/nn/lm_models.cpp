// Scoring, decoding and the student's training (nn/lm_models.h) over the
// language-model family of nn/lm_family.cpp.
#include "nn/lm_models.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "nn/lm_nets.h"
#include "nn/model_family.h"
#include "nn/tensor_blobs.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/shard_trainer.h"

namespace sisa {

std::shared_ptr<ShardNet> load_net(const Config& c, const ModelState& state) {
  const ModelFamily& family = model_family(c.model.type);
  auto net = family.build(c);
  load_owned_state(family, *net, state);
  net->eval();
  return net;
}

namespace {

// Sequences as one 0-padded batch of their own longest length.
Batch pad(const std::vector<TokenIds>& seqs, size_t begin, size_t end) {
  int64_t len = 1;
  for (size_t i = begin; i < end; ++i) len = std::max<int64_t>(len, static_cast<int64_t>(seqs[i].size()));
  const auto n = static_cast<int64_t>(end - begin);
  auto tokens = torch::zeros({n, len}, torch::kInt64);
  auto lengths = torch::zeros({n}, torch::kInt64);
  auto t = tokens.accessor<int64_t, 2>();
  for (size_t i = begin; i < end; ++i) {
    for (size_t j = 0; j < seqs[i].size(); ++j)
      t[static_cast<int64_t>(i - begin)][static_cast<int64_t>(j)] = seqs[i][j];
    lengths[static_cast<int64_t>(i - begin)] = static_cast<int64_t>(seqs[i].size());
  }
  Batch b;
  b.inputs = tokens;
  b.lengths = lengths;
  return b;
}

}  // namespace

torch::Tensor predicted_inside(const Batch& b) {
  const int64_t len = b.inputs.size(1);
  return (torch::arange(1, len, torch::kInt64).unsqueeze(0) < b.lengths.unsqueeze(1)).to(torch::kFloat32);
}

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
    const auto picked =
        lp.gather(2, b.inputs.slice(1, 1, len).unsqueeze(2)).squeeze(2).to(torch::kFloat64).contiguous();
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

}  // namespace sisa
