// Typed run configuration. Defaults and the checks applied by validate() sit
// beside each field. Precedence: defaults < YAML file < --set key=value.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "sisa/placement.h"

namespace sisa {

struct DataConfig {
  std::string format = "idx";        // check: idx | csv | hdf5
  std::string train;                 // check: required; idx: images file, csv/hdf5: the file
  std::string train_labels;          // check: required for idx; idx labels file
  std::string test;                  // optional; same forms as train
  std::string test_labels;           // idx only
  int64_t num_classes = 0;           // check: >= 2. Never inferred from the data.
  std::vector<int64_t> input_shape;  // check: non-empty, every entry > 0; [784] or [1, 28, 28]
  double scale = 1.0;                // input = raw * scale + offset; from config, never from data
  double offset = 0.0;
  // csv: named columns; every other column is a feature, in file order.
  std::string label_column = "label";
  std::string id_column;     // empty: id = 0-based row index
  std::string group_column;  // empty: no data subjects; placement key is the id
  // hdf5: dataset names inside the file.
  std::string inputs_dataset = "inputs";
  std::string labels_dataset = "labels";
  std::string ids_dataset;                  // empty: id = row index
  std::string groups_dataset;               // empty: no groups
  std::string lengths_dataset = "lengths";  // token-id inputs: each row's length
  // A deletion weight per sample (how likely it is to be deleted; >= 0, the
  // user's, never estimated from the data), for sisa.placement: weighted.
  std::string weight_column;    // csv: a column (not a feature)
  std::string weights_dataset;  // hdf5: a float32 dataset
  std::string weights_file;     // any format: a CSV with the header "id,weight" ("group,weight" when grouped); unlisted
                                // keys weigh 0
  // Text (csv): a column of UTF-8 text, tokenized at ingest with a
  // SentencePiece model, a shared artifact of the run. Rows become token ids.
  std::string text_column;
  std::string tokenizer;     // the .model file; check: required with text_column
  int64_t max_tokens = 128;  // check: 1..65536; longer texts are truncated (counted); input_shape must be [max_tokens]
  // Not a key: set from the model family. Language models read rows without
  // labels (no label column; every label is 0).
  bool unlabeled = false;

  bool has_weights() const { return !weight_column.empty() || !weights_dataset.empty() || !weights_file.empty(); }
  // Samples belong to data subjects (placement and deletion by group).
  bool grouped() const { return !group_column.empty() || !groups_dataset.empty(); }
  // Features per input: the product of input_shape.
  int64_t width() const {
    int64_t w = 1;
    for (auto d : input_shape) w *= d;
    return w;
  }
};

struct SisaConfig {
  int64_t shards = 5;                 // check: 1..4096
  int64_t slices = 4;                 // check: 1..1024
  std::string placement = "uniform";  // check: uniform | weighted (needs data weights; sisa/placement.h)
  double heavy_weight = 0.5;          // weighted: keys weighing at least this are heavy; check: finite
  int64_t heavy_shards = 1;           // weighted: shards reserved for heavy keys; check: 1..shards-1
  int64_t heavy_slices = 1;           // weighted: heavy keys go to this many last slices; check: 1..slices
};

// One value of a model family's option (`model.<key>`). Its type is the type
// of the default the family declares (src/config/model_spec.h).
using ModelOption = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<std::string>>;

struct ModelConfig {
  std::string type = "mlp";  // check: a registered model family (built in: mlp, cnn)
  // The family's own keys, as given in YAML or by --set. A key not given has
  // the default its family declares once, with its check, beside its name
  // (mlp and cnn: src/config/dense_spec.cpp). Read values with get<T>(key).
  std::map<std::string, ModelOption> options;

  // The value in force: given or declared default. Throws ConfigError naming
  // model.<key> when the family does not declare the key or T is not its type.
  template <typename T>
  const T& get(const std::string& key) const {
    const T* v = std::get_if<T>(&option(key));
    if (!v) wrong_type(key);
    return *v;
  }
  const ModelOption& option(const std::string& key) const;

 private:
  [[noreturn]] void wrong_type(const std::string& key) const;
};

struct TrainConfig {
  int64_t epochs = 10;             // check: >= ceil((slices+1)/2) so every stage gets an epoch
  int64_t batch_size = 64;         // check: >= 1
  std::string optimizer = "adam";  // check: adam | sgd
  double lr = 1e-3;                // check: > 0
  double momentum = 0.0;           // check: 0 <= m < 1 (sgd)
  double weight_decay = 0.0;       // check: >= 0
  double beta1 = 0.9;              // check: 0 <= b < 1 (adam)
  double beta2 = 0.999;            // check: 0 <= b < 1 (adam)
  double eps = 1e-8;               // check: > 0 (adam)
  int64_t threads = 1;             // check: 1..256; part of the run's identity (changes bits for CNNs)
};

// Leave-one-out unlearning (issue #11, docs/loo.md): after the shards (the
// teachers) a student language model of the same family trains on every row;
// a deletion retrains the teachers exactly and fine-tunes the student toward
// the mean next-token distribution of the teachers that never held the
// deleted rows. The teachers are exact; the student is approximate.
struct LooConfig {
  bool student = false;    // check: only with a language-model family (model.type: lm)
  int64_t epochs = 0;      // the student's epochs over all rows; 0: train.epochs. check: >= 0
  int64_t steps = 20;      // LOO fine-tuning steps per deletion; check: 1..100000
  double lr = 1e-3;        // Adam's step size for them (fresh state each deletion); check: > 0
  int64_t batch_size = 0;  // deleted rows per step (cycled in a derived order); 0: all at once. check: >= 0
  // Softens the target and the student alike (target q^(1/t), logits / t,
  // loss x t^2): above 1, the update also matches how the teachers rank the
  // unlikely tokens, e.g. a secret's digits (docs/loo.md). 1: the paper's
  // plain soft cross-entropy. check: in [1, 100]
  double temperature = 1.0;
  // Retained rows mixed into every step with the next-token loss, drawn from
  // (seed, request, step): protects perplexity, pulls less toward the
  // teachers. 0: none. check: >= 0
  int64_t retain_batch = 0;
  // The leave-one-out target ([deleted rows, tokens, vocab] floats) is
  // computed once and kept when it fits this many MiB; above it, each step
  // computes its own rows' target (more teacher passes, bounded memory).
  // A constant of the config, not the machine's free memory, so a request
  // gives the same student everywhere. 0: never kept. check: >= 0
  int64_t target_cache_mb = 1024;
  // How an update stops (docs/loo.md, "When the update stops"). "steps":
  // exactly loo.steps at loo.lr. "criterion" (opt-in, experimental): it steps
  // until the deleted rows look like rows the student never saw (each deleted
  // group's excess log-likelihood over the teachers, against held-out rows of
  // data.test kept in the run), doubling its step size when it stalls, at
  // most max_steps steps.
  std::string stop = "steps";  // check: steps | criterion; criterion needs data.test
  int64_t max_steps = 400;     // the criterion's cap; check: 1..100000
  int64_t heldout_rows = 256;  // test rows kept to calibrate it (the first by id); check: 16..100000
};

struct Config {
  uint64_t seed = 0;
  DataConfig data;
  SisaConfig sisa;
  ModelConfig model;
  TrainConfig train;
  LooConfig loo;

  // Parses YAML text. `origin` names the file in error messages; relative data
  // paths are resolved against `base_dir`. Applies `overrides` ("a.b=value").
  // Throws ConfigError listing every unknown key, bad value and failed check.
  static Config parse(const std::string& yaml_text, const std::string& origin, const std::string& base_dir,
                      const std::vector<std::string>& overrides = {});
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});

  // Every failed check as "key: reason". Empty when valid.
  std::vector<std::string> validate() const;

  // The resolved config as YAML (absolute paths), re-parseable by parse().
  std::string to_yaml() const;
  // Canonical JSON of the fields that decide training results (no paths).
  std::string training_json() const;
  // SHA-256 of training_json().
  std::string training_hash() const;
  // Where keys go: sisa.* and the seed (uniform unless sisa.placement: weighted).
  Placement placement() const;
};

// The SISA stage schedule: e_r = floor(2E r/(R+1)) - floor(2E (r-1)/(R+1)),
// integer arithmetic. Returns R+1 entries; index 0 is unused (0).
std::vector<int64_t> stage_epochs(int64_t epochs, int64_t slices);

}  // namespace sisa
