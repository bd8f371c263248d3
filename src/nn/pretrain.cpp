// `sisa pretrain`: the tokenizer, then a masked-LM encoder (BERT's recipe at
// a small scale: 15% of tokens predicted, 80% of those shown as <mask>, 10% as
// a random token, 10% unchanged; output weights tied to the embeddings).
// Every draw (line order, masks, dropout) comes from generators seeded from
// (seed, step), so a rerun gives the same backbone, byte for byte.
#include "sisa/pretrain.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "format/backbone.h"
#include "nn/tensor_blobs.h"
#include "nn/text_encoder.h"
#include "sisa/errors.h"
#include "sisa/placement.h"
#include "sisa/shard_trainer.h"
#include "text/tokenizer.h"
#include "util/fs.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace sisa {
namespace {

// Every line of the corpus as token ids, cut to max_len; lines under two tokens are skipped.
std::vector<std::vector<int32_t>> encode_corpus(const std::string& path, const Tokenizer& tok, int64_t max_len) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError("cannot read corpus '" + path + "'");
  std::vector<std::vector<int32_t>> lines;
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (!valid_utf8(line)) throw DataError("'" + path + "': line " + std::to_string(no) + " is not valid UTF-8");
    auto ids = tok.encode(line);
    if (ids.size() < 2) continue;
    if (static_cast<int64_t>(ids.size()) > max_len) ids.resize(static_cast<size_t>(max_len));
    lines.push_back(std::move(ids));
  }
  if (lines.empty()) throw DataError("'" + path + "' has no line of two or more tokens");
  return lines;
}

// The prediction head: transform, GELU, LayerNorm, then the tied embeddings.
struct MlmHead : torch::nn::Module {
  explicit MlmHead(int64_t dim, int64_t vocab)
      : transform(register_module("transform", torch::nn::Linear(dim, dim))),
        norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        bias(register_parameter("bias", torch::zeros({vocab}))) {}
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& embedding) {
    return torch::matmul(norm->forward(torch::gelu(transform->forward(h))), embedding.t()) + bias;
  }
  torch::nn::Linear transform;
  torch::nn::LayerNorm norm;
  torch::Tensor bias;
};

// BERT's initialisation: weights N(0, 0.02), biases 0, LayerNorms (1, 0).
void initialize(torch::nn::Module& m, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters(true)) {
    auto& t = p.value();
    if (p.key().find("norm") != std::string::npos) {
      t.fill_(p.key().size() >= 6 && p.key().compare(p.key().size() - 6, 6, "weight") == 0 ? 1.0 : 0.0);
    } else if (t.dim() >= 2) {
      t.normal_(0.0, 0.02, gen);
    } else {
      t.zero_();
    }
  }
}

}  // namespace

namespace {

// The masked-LM training loop over the encoded corpus (BERT's recipe): each
// step's lines, masks, dropout and order come from (seed, step, epoch) alone.
class MaskedLmTraining {
 public:
  MaskedLmTraining(const PretrainConfig& c, const std::vector<std::vector<int32_t>>& lines, int64_t mask_id)
      : c_(c),
        lines_(lines),
        n_lines_(static_cast<int64_t>(lines.size())),
        mask_id_(mask_id),
        shape_{c.vocab_size, c.dim, c.layers, c.heads, c.ff, c.max_len},
        encoder_(shape_, 0, c.dropout),
        head_(c.dim, c.vocab_size) {
    auto init = at::make_generator<at::CPUGeneratorImpl>(derive(c.seed, "pretrain-init", {}));
    initialize(encoder_, init);
    initialize(head_, init);
    params_ = encoder_.parameters();
    for (auto& p : head_.parameters()) params_.push_back(p);
  }

  // Every step; returns the mean loss of the last report window.
  double run() {
    torch::optim::AdamW optimizer(params_, torch::optim::AdamWOptions(c_.lr).weight_decay(c_.weight_decay));
    Progress progress(c_.steps);
    double loss_window = 0.0, last_loss = 0.0;
    int64_t window = 0;
    const int64_t report_every = std::max<int64_t>(1, c_.steps / 40);
    encoder_.train();
    for (int64_t step = 0; step < c_.steps; ++step) {
      const auto loss = step_loss(step);
      // Linear warm-up, then linear decay to zero.
      const double ramp = c_.warmup > 0 ? static_cast<double>(step + 1) / static_cast<double>(c_.warmup) : 1.0;
      const double decay =
          static_cast<double>(c_.steps - step) / static_cast<double>(std::max<int64_t>(1, c_.steps - c_.warmup));
      static_cast<torch::optim::AdamWOptions&>(optimizer.param_groups()[0].options()).lr(c_.lr * std::min(ramp, decay));
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(params_, 1.0);
      optimizer.step();

      loss_window += loss.item<double>(), ++window;
      progress.advance(1);
      if ((step + 1) % report_every == 0 || step + 1 == c_.steps) {
        last_loss = loss_window / static_cast<double>(window);
        spdlog::info("pretrain: step {}/{} ({}%) masked-LM loss {:.4f}, {}", step + 1, c_.steps, progress.percent(),
                     last_loss, progress.eta());
        loss_window = 0.0, window = 0;
      }
    }
    return last_loss;
  }

  const BackboneShape& shape() const { return shape_; }
  TextEncoder& encoder() { return encoder_; }

 private:
  // The step's lines: the next batch_size of a per-epoch permutation, as
  // 0-padded token rows cut to the longest; sets `lengths`.
  torch::Tensor step_lines(int64_t step, torch::Tensor* lengths) {
    auto tokens = torch::zeros({c_.batch_size, c_.max_len}, torch::kInt64);
    *lengths = torch::zeros({c_.batch_size}, torch::kInt64);
    auto token_at = tokens.accessor<int64_t, 2>();
    auto length_at = lengths->accessor<int64_t, 1>();
    int64_t longest = 0;
    for (int64_t j = 0; j < c_.batch_size; ++j) {
      const int64_t pos = step * c_.batch_size + j, epoch = pos / n_lines_;
      if (epoch != order_epoch_) {
        order_ = permutation(n_lines_, derive(c_.seed, "pretrain-order", {static_cast<uint64_t>(epoch)}));
        order_epoch_ = epoch;
      }
      const auto& ids = lines_[static_cast<size_t>(order_[static_cast<size_t>(pos % n_lines_)])];
      const auto len = static_cast<int64_t>(ids.size());
      for (int64_t k = 0; k < len; ++k) token_at[j][k] = ids[static_cast<size_t>(k)];
      length_at[j] = len;
      longest = std::max(longest, len);
    }
    return tokens.slice(1, 0, longest);
  }

  // The masked-LM loss of one step: mask_prob of the real tokens are
  // predicted, shown as <mask> (80%), a random token (10%) or themselves.
  torch::Tensor step_loss(int64_t step) {
    torch::Tensor lengths;
    const auto tokens = step_lines(step, &lengths);
    const int64_t longest = tokens.size(1);
    const auto valid = torch::arange(longest, torch::kInt64).unsqueeze(0) < lengths.unsqueeze(1);
    draws_.set_current_seed(derive(c_.seed, "pretrain-mask", {static_cast<uint64_t>(step)}));
    auto chosen = (torch::rand({c_.batch_size, longest}, draws_) < c_.mask_prob).logical_and(valid);
    if (!chosen.any().item<bool>()) chosen[0][0] = true;
    const auto how = torch::rand({c_.batch_size, longest}, draws_);
    const auto random_ids = torch::randint(c_.vocab_size, {c_.batch_size, longest}, draws_, torch::kInt64);
    auto shown =
        torch::where(how < 0.8, torch::full_like(tokens, mask_id_), torch::where(how < 0.9, random_ids, tokens));
    shown = torch::where(chosen, shown, tokens);
    drops_.set_current_seed(derive(c_.seed, "pretrain-dropout", {static_cast<uint64_t>(step)}));
    const auto hidden = encoder_.forward(shown, lengths, &drops_);
    const auto logits = head_.forward(hidden.index({chosen}), encoder_.token_embedding());
    return torch::nn::functional::cross_entropy(logits, tokens.index({chosen}));
  }

  const PretrainConfig& c_;
  const std::vector<std::vector<int32_t>>& lines_;
  const int64_t n_lines_, mask_id_;
  const BackboneShape shape_;
  TextEncoder encoder_;
  MlmHead head_;
  std::vector<torch::Tensor> params_;
  at::Generator draws_ = at::make_generator<at::CPUGeneratorImpl>(0);
  at::Generator drops_ = at::make_generator<at::CPUGeneratorImpl>(0);
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
};

// The tokenizer pretraining trains first, with its reserved <mask> piece;
// returns the piece's id.
int64_t train_pretrain_tokenizer(const PretrainConfig& c, const std::string& tok_path) {
  spdlog::info("pretrain: training a {}-piece tokenizer on '{}'", c.vocab_size, c.corpus);
  TokenizerTraining tt;
  tt.input = c.corpus;
  tt.model_path = tok_path;
  tt.vocab_size = static_cast<int>(c.vocab_size);
  tt.control_symbols = {"<mask>"};
  Tokenizer::train(tt);
  const int64_t mask_id = Tokenizer(tok_path).piece_id("<mask>");
  if (mask_id < 0) throw IOError(tok_path + ": the tokenizer lacks its <mask> piece");
  return mask_id;
}

}  // namespace

nlohmann::json pretrain(const PretrainRequest& req) {
  const auto t_start = std::chrono::steady_clock::now();
  const PretrainConfig c = PretrainConfig::load(req.config_path, req.overrides);
  if (req.out.empty()) throw UsageError("--out is required");
  if (!is_native_backbone(req.out)) throw UsageError("--out '" + req.out + "' must end in .h5");
  set_compute_threads(c.threads);
  const auto parent = std::filesystem::path(req.out).parent_path();
  if (!parent.empty()) make_dirs(parent.string());

  const std::string tok_path = tokenizer_path_for(req.out);
  const int64_t mask_id = train_pretrain_tokenizer(c, tok_path);
  const auto lines = encode_corpus(c.corpus, Tokenizer(tok_path), c.max_len);
  const auto n_lines = static_cast<int64_t>(lines.size());
  if (n_lines == 0) throw DataError("'" + c.corpus + "': no line of two or more tokens to pretrain on");
  spdlog::info("pretrain: {} lines; {} steps of {} lines", n_lines, c.steps, c.batch_size);
  MaskedLmTraining training(c, lines, mask_id);
  const double last_loss = training.run();

  Backbone b;
  b.shape = training.shape();
  b.tokenizer_sha256 = sha256_file(tok_path);
  const std::string corpus_sha = sha256_file(c.corpus);
  b.pretrain = {{"config", c.to_json()},
                {"corpus_sha256", corpus_sha},
                {"corpus_lines", n_lines},
                {"final_loss", last_loss},
                {"objective", "masked-lm"}};
  for (const auto& p : training.encoder().named_parameters(true)) {
    b.weights.tensors.push_back(to_blob(p.key(), TensorRole::kParameter, p.value()));
  }
  atomic_write(Env::posix(), req.out, encode_backbone(b));
  spdlog::info("pretrain: wrote '{}' and '{}'", req.out, tok_path);
  return {{"backbone", req.out},
          {"tokenizer", tok_path},
          {"tokenizer_sha256", b.tokenizer_sha256},
          {"backbone_sha256", sha256_file(req.out)},
          {"corpus_sha256", corpus_sha},
          {"corpus_lines", n_lines},
          {"shape", to_json(b.shape)},
          {"steps", c.steps},
          {"final_loss", last_loss},
          {"seconds", since(t_start)}};
}

}  // namespace sisa
