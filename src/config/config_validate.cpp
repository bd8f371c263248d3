// Config::validate(): every check, each "key: reason", collected at once.
#include <algorithm>
#include <cmath>

#include "model_spec.h"
#include "sisa/config.h"

namespace sisa {

std::vector<int64_t> stage_epochs(int64_t epochs, int64_t slices) {
  std::vector<int64_t> e(static_cast<size_t>(std::max<int64_t>(slices, 0)) + 1, 0);
  for (int64_t r = 1; r <= slices; ++r) {
    e[r] = (2 * epochs * r) / (slices + 1) - (2 * epochs * (r - 1)) / (slices + 1);
  }
  return e;
}

namespace {

// The family's declared checks, then its cross-section checks.
std::vector<std::string> validate_model(const Config& c) {
  const ModelSpec* spec = find_model_spec(c.model.type);
  if (!spec) {
    std::string known;
    for (const auto& n : model_family_names()) known += (known.empty() ? "" : ", ") + n;
    return {"model.type: unknown model family '" + c.model.type + "' (registered: " + known + ")"};
  }
  std::vector<std::string> e;
  for (const auto& kv : c.model.options) {
    const bool declared = std::any_of(spec->options.begin(), spec->options.end(),
                                      [&kv](const ModelOptionSpec& o) { return o.key == kv.first; });
    if (!declared) e.push_back("model." + kv.first + ": not a key of model family '" + c.model.type + "'");
  }
  if (!e.empty()) return e;
  for (const auto& o : spec->options) {
    const ModelOption& v = c.model.option(o.key);
    if (v.index() != o.default_value.index()) {
      e.push_back("model." + o.key + ": has the wrong type");
    } else if (o.check) {
      const std::string why = o.check(v);
      if (!why.empty()) e.push_back("model." + o.key + ": " + why);
    }
  }
  if (e.empty() && spec->check) {
    for (const auto& m : spec->check(c)) e.push_back(m);
  }
  const bool tokens = c.data.format == "hdf5" || !c.data.text_column.empty();
  if (spec->input == InputKind::kTokens && !tokens) {
    e.push_back("data.format: model family '" + c.model.type + "' reads token ids: give data.text_column (csv) "
                "or integer inputs (hdf5)");
  }
  if (spec->input == InputKind::kFeatures && !c.data.text_column.empty()) {
    e.push_back("data.text_column: model family '" + c.model.type + "' reads float features, not text");
  }
  return e;
}

std::vector<std::string> validate_text(const DataConfig& d) {
  std::vector<std::string> e;
  if (d.text_column.empty()) {
    if (!d.tokenizer.empty()) e.push_back("data.tokenizer: only with data.text_column");
    if (d.format == "jsonl") e.push_back("data.text_column: required for format jsonl (JSON Lines hold text)");
    return e;
  }
  if (d.format != "csv" && d.format != "jsonl") e.push_back("data.text_column: only for format csv or jsonl");
  if (d.tokenizer.empty()) e.push_back("data.tokenizer: required with data.text_column (a SentencePiece .model)");
  if (d.max_tokens < 1 || d.max_tokens > 65536) e.push_back("data.max_tokens: must be in 1..65536");
  if (d.input_shape != std::vector<int64_t>{d.max_tokens}) {
    e.push_back("data.input_shape: must be [data.max_tokens] = [" + std::to_string(d.max_tokens) + "] for text");
  }
  return e;
}

std::vector<std::string> validate_placement(const Config& c) {
  std::vector<std::string> e;
  const auto check = [&e](bool ok, const std::string& msg) {
    if (!ok) e.push_back(msg);
  };
  const DataConfig& d = c.data;
  check(d.weight_column.empty() || d.format == "csv" || d.format == "jsonl",
        "data.weight_column: only for format csv or jsonl (else weights_file)");
  check(d.weights_dataset.empty() || d.format == "hdf5", "data.weights_dataset: only for format hdf5 (else weights_file)");
  check((!d.weight_column.empty() + !d.weights_dataset.empty() + !d.weights_file.empty()) <= 1,
        "data: give at most one of weight_column, weights_dataset, weights_file");
  const SisaConfig& s = c.sisa;
  check(s.placement == "uniform" || s.placement == "weighted",
        "sisa.placement: must be uniform or weighted, got '" + s.placement + "'");
  if (s.placement != "weighted") {
    check(!d.has_weights(), "data: weights are given but sisa.placement is uniform (set sisa.placement: weighted)");
    return e;
  }
  check(d.has_weights(), "sisa.placement: weighted needs a deletion weight per sample "
                         "(data.weight_column, weights_dataset or weights_file)");
  check(std::isfinite(s.heavy_weight), "sisa.heavy_weight: must be a finite number");
  check(s.heavy_shards >= 1 && s.heavy_shards < s.shards,
        "sisa.heavy_shards: must be in 1..shards-1, got " + std::to_string(s.heavy_shards));
  check(s.heavy_slices >= 1 && s.heavy_slices <= s.slices,
        "sisa.heavy_slices: must be in 1..slices, got " + std::to_string(s.heavy_slices));
  return e;
}

}  // namespace

std::vector<std::string> Config::validate() const {
  std::vector<std::string> e;
  auto check = [&e](bool ok, const std::string& msg) {
    if (!ok) e.push_back(msg);
  };
  check(data.format == "idx" || data.format == "csv" || data.format == "hdf5" || data.format == "jsonl",
        "data.format: must be idx, csv, hdf5 or jsonl, got '" + data.format + "'");
  check(!data.train.empty(), "data.train: required");
  if (data.format == "idx") {
    check(!data.train_labels.empty(), "data.train_labels: required for format idx");
    check(data.test.empty() || !data.test_labels.empty(),
          "data.test_labels: required for format idx when data.test is set");
  }
  if (data.unlabeled) {
    check(data.num_classes == 0, "data.num_classes: model family '" + model.type + "' is a language model: it has no classes");
  } else {
    check(data.num_classes >= 2, "data.num_classes: must be >= 2 (it is never inferred from data)");
  }
  check(!data.input_shape.empty(), "data.input_shape: required, e.g. [784] or [1, 28, 28]");
  for (int64_t d : data.input_shape) check(d > 0, "data.input_shape: every entry must be > 0");
  check(sisa.shards >= 1 && sisa.shards <= 4096, "sisa.shards: must be in 1..4096, got " +
                                                      std::to_string(sisa.shards));
  check(sisa.slices >= 1 && sisa.slices <= 1024, "sisa.slices: must be in 1..1024, got " +
                                                      std::to_string(sisa.slices));
  for (const auto& m : validate_model(*this)) e.push_back(m);
  for (const auto& m : validate_placement(*this)) e.push_back(m);
  for (const auto& m : validate_text(data)) e.push_back(m);
  check(train.batch_size >= 1, "train.batch_size: must be >= 1");
  check(train.optimizer == "adam" || train.optimizer == "sgd",
        "train.optimizer: must be adam or sgd, got '" + train.optimizer + "'");
  check(train.lr > 0.0, "train.lr: must be > 0");
  check(train.momentum >= 0.0 && train.momentum < 1.0, "train.momentum: must be in [0, 1)");
  check(train.weight_decay >= 0.0, "train.weight_decay: must be >= 0");
  check(train.beta1 >= 0.0 && train.beta1 < 1.0, "train.beta1: must be in [0, 1)");
  check(train.beta2 >= 0.0 && train.beta2 < 1.0, "train.beta2: must be in [0, 1)");
  check(train.eps > 0.0, "train.eps: must be > 0");
  check(train.threads >= 1 && train.threads <= 256, "train.threads: must be in 1..256");
  if (loo.student) {
    check(data.unlabeled, "loo.student: needs a language-model family (model.type: lm), not '" + model.type + "'");
  }
  check(loo.epochs >= 0, "loo.epochs: must be >= 0 (0: train.epochs)");
  check(loo.steps >= 1 && loo.steps <= 100000, "loo.steps: must be in 1..100000");
  check(loo.lr > 0.0, "loo.lr: must be > 0");
  check(loo.batch_size >= 0, "loo.batch_size: must be >= 0 (0: every deleted row in each step)");
  check(loo.temperature >= 1.0 && loo.temperature <= 100.0, "loo.temperature: must be in [1, 100]");
  check(loo.retain_batch >= 0, "loo.retain_batch: must be >= 0");
  check(loo.target_cache_mb >= 0, "loo.target_cache_mb: must be >= 0 (0: never keep the target)");
  if (sisa.slices >= 1 && sisa.slices <= 1024) {
    const auto ep = stage_epochs(train.epochs, sisa.slices);
    for (int64_t r = 1; r <= sisa.slices; ++r) {
      if (ep[r] <= 0) {
        e.push_back("train.epochs: " + std::to_string(train.epochs) + " epochs give stage " +
                    std::to_string(r) + " of " + std::to_string(sisa.slices) +
                    " zero epochs; need at least " + std::to_string((sisa.slices + 2) / 2));
        break;
      }
    }
  }
  return e;
}

}  // namespace sisa
