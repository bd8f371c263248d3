// Every key of the run config but the family's own `model.*` keys, declared
// once (config/fields.h): parse, validate, config.yaml, the identity JSON and
// docs/config.md's table read this list. The identity rules keep every older
// run's hash: keys added later enter it only when they change something.
#include "config/config_keys.h"

#include <algorithm>
#include <cmath>

#include "config/model_spec.h"
#include "sisa/errors.h"
#include "util/fs.h"
#include "util/sha256.h"

namespace sisa {
namespace {

using F = Field<Config>;

std::string ok_if(bool ok, const std::string& why) { return ok ? std::string() : why; }

bool text(const Config& c) { return !c.data.text_column.empty(); }
bool weighted(const Config& c) { return c.sisa.placement == "weighted"; }
bool student(const Config& c) { return c.loo.student; }

std::vector<F> make_table() {
  // clang-format off
  return {
    {"", "seed", [](Config& c) -> FieldRef { return &c.seed; }, "a non-negative integer", nullptr,
     "every placement and random draw derives from it"},

    {"data", "format", [](Config& c) -> FieldRef { return &c.data.format; }, "a string",
     [](const Config& c) {
       const auto& f = c.data.format;
       return ok_if(f == "idx" || f == "csv" || f == "hdf5" || f == "jsonl",
                    "must be idx, csv, hdf5 or jsonl, got '" + f + "'");
     },
     "`idx` (gzipped MNIST-style files), `csv`, `hdf5`, `jsonl` (JSON Lines of text rows: one object per line "
     "whose fields are named by `text_column`, `label_column`, `id_column`, `group_column`, `weight_column`; any "
     "other field, or one named twice, is an error naming the line)", false, never<Config>},
    {"data", "train", [](Config& c) -> FieldRef { return &c.data.train; }, "a path",
     [](const Config& c) { return ok_if(!c.data.train.empty(), "required"); },
     "the training data file (`idx`: the images)", true, never<Config>},
    {"data", "train_labels", [](Config& c) -> FieldRef { return &c.data.train_labels; }, "a path",
     [](const Config& c) {
       return ok_if(c.data.format != "idx" || !c.data.train_labels.empty(), "required for format idx");
     },
     "`idx` only: the training labels file", true, never<Config>},
    {"data", "test", [](Config& c) -> FieldRef { return &c.data.test; }, "a path", nullptr,
     "the test data file, same forms as `train` (optional)", true, never<Config>},
    {"data", "test_labels", [](Config& c) -> FieldRef { return &c.data.test_labels; }, "a path",
     [](const Config& c) {
       return ok_if(c.data.format != "idx" || c.data.test.empty() || !c.data.test_labels.empty(),
                    "required for format idx when data.test is set");
     },
     "`idx` only: the test labels file", true, never<Config>},
    {"data", "num_classes", [](Config& c) -> FieldRef { return &c.data.num_classes; }, "an integer",
     [](const Config& c) {
       if (c.data.unlabeled) {
         return ok_if(c.data.num_classes == 0,
                      "model family '" + c.model.type + "' is a language model: it has no classes");
       }
       return ok_if(c.data.num_classes >= 2, "must be >= 2 (it is never inferred from data)");
     },
     ">= 2; never inferred from the data (a language model has none: 0)", false, nullptr, nullptr, nullptr, "-"},
    {"data", "input_shape", [](Config& c) -> FieldRef { return &c.data.input_shape; }, "a list of integers",
     [](const Config& c) {
       if (c.data.input_shape.empty()) return std::string("required, e.g. [784] or [1, 28, 28]");
       const bool positive = std::all_of(c.data.input_shape.begin(), c.data.input_shape.end(),
                                         [](int64_t d) { return d > 0; });
       return ok_if(positive, "every entry must be > 0");
     },
     "`[784]` for an MLP, `[C, H, W]` for a CNN, `[max_tokens]` for text; the data's width must match", false,
     nullptr, nullptr, nullptr, "-"},
    {"data", "scale", [](Config& c) -> FieldRef { return &c.data.scale; }, "a number", nullptr,
     "input = raw * scale + offset, fixed in the config (never estimated from data)"},
    {"data", "offset", [](Config& c) -> FieldRef { return &c.data.offset; }, "a number", nullptr,
     "see `scale`"},
    {"data", "label_column", [](Config& c) -> FieldRef { return &c.data.label_column; }, "a string", nullptr,
     "CSV / JSON Lines: the label column; every column that is not the label, id, group or weight is a feature",
     false, never<Config>},
    {"data", "id_column", [](Config& c) -> FieldRef { return &c.data.id_column; }, "a string", nullptr,
     "CSV / JSON Lines: the id column; none: id = row index", false, never<Config>},
    {"data", "group_column", [](Config& c) -> FieldRef { return &c.data.group_column; }, "a string", nullptr,
     "CSV / JSON Lines: the data subject of each row; placement and `forget --groups` follow the group", false,
     never<Config>},
    {"data", "inputs_dataset", [](Config& c) -> FieldRef { return &c.data.inputs_dataset; }, "a string", nullptr,
     "HDF5: float32 inputs, or integer token ids (n x L) for a family that reads them", false, never<Config>},
    {"data", "labels_dataset", [](Config& c) -> FieldRef { return &c.data.labels_dataset; }, "a string", nullptr,
     "HDF5: int64 labels", false, never<Config>},
    {"data", "ids_dataset", [](Config& c) -> FieldRef { return &c.data.ids_dataset; }, "a string", nullptr,
     "HDF5: int64 ids; none: id = row index", false, never<Config>},
    {"data", "groups_dataset", [](Config& c) -> FieldRef { return &c.data.groups_dataset; }, "a string", nullptr,
     "HDF5: int64 data subjects", false, never<Config>},
    {"data", "lengths_dataset", [](Config& c) -> FieldRef { return &c.data.lengths_dataset; }, "a string",
     nullptr, "HDF5 token ids: each row's length (0..L); ids after it must be 0", false, never<Config>},
    {"data", "weight_column", [](Config& c) -> FieldRef { return &c.data.weight_column; }, "a string",
     [](const Config& c) {
       return ok_if(c.data.weight_column.empty() || c.data.format == "csv" || c.data.format == "jsonl",
                    "only for format csv or jsonl (else weights_file)");
     },
     "CSV / JSON Lines: each row's deletion weight (>= 0: how likely it is to be deleted; given by you, never "
     "estimated), for `sisa.placement: weighted`; not a feature", false, never<Config>},
    {"data", "weights_dataset", [](Config& c) -> FieldRef { return &c.data.weights_dataset; }, "a string",
     [](const Config& c) {
       return ok_if(c.data.weights_dataset.empty() || c.data.format == "hdf5", "only for format hdf5 (else weights_file)");
     },
     "HDF5: a float32 dataset of deletion weights", false, never<Config>},
    {"data", "weights_file", [](Config& c) -> FieldRef { return &c.data.weights_file; }, "a path", nullptr,
     "any format: a CSV `id,weight` (`group,weight` when grouped) of deletion weights; unlisted keys weigh 0",
     true, never<Config>},
    {"data", "text_column", [](Config& c) -> FieldRef { return &c.data.text_column; }, "a string",
     [](const Config& c) {
       if (c.data.text_column.empty()) {
         return ok_if(c.data.format != "jsonl", "required for format jsonl (JSON Lines hold text)");
       }
       return ok_if(c.data.format == "csv" || c.data.format == "jsonl", "only for format csv or jsonl");
     },
     "CSV or JSON Lines text: a column (field) of UTF-8 text (RFC 4180 quoting), tokenized at ingest; every other "
     "column must be the label, id, group or weight column. Needs a family that reads token ids", false,
     never<Config>},
    {"data", "tokenizer", [](Config& c) -> FieldRef { return &c.data.tokenizer; }, "a path",
     [](const Config& c) {
       if (c.data.text_column.empty()) return ok_if(c.data.tokenizer.empty(), "only with data.text_column");
       return ok_if(!c.data.tokenizer.empty(), "required with data.text_column (a SentencePiece .model)");
     },
     "with `text_column`: a SentencePiece `.model`. A shared artifact: `train` copies it into the run and every "
     "command checks it; in the identity by its SHA-256", true, text,
     [](const Config& c) { return artifact_identity(c.data.tokenizer, "data.tokenizer"); }},
    {"data", "max_tokens", [](Config& c) -> FieldRef { return &c.data.max_tokens; }, "an integer",
     [](const Config& c) {
       if (!text(c)) return std::string();
       if (c.data.max_tokens < 1 || c.data.max_tokens > 65536) return std::string("must be in 1..65536");
       return ok_if(c.data.input_shape == std::vector<int64_t>{c.data.max_tokens},
                    "data.input_shape must be [data.max_tokens] = [" + std::to_string(c.data.max_tokens) +
                        "] for text");
     },
     "with `text_column`: 1..65536; longer texts are cut (`train --json` counts `texts_truncated`), a text over "
     "the tokenizer's byte bound first to its head ([text.md](text.md)); `input_shape` must be `[max_tokens]`",
     false, text},

    {"sisa", "shards", [](Config& c) -> FieldRef { return &c.sisa.shards; }, "an integer",
     [](const Config& c) {
       return ok_if(c.sisa.shards >= 1 && c.sisa.shards <= 4096, "must be in 1..4096, got " + std::to_string(c.sisa.shards));
     },
     "S, 1..4096"},
    {"sisa", "slices", [](Config& c) -> FieldRef { return &c.sisa.slices; }, "an integer",
     [](const Config& c) {
       return ok_if(c.sisa.slices >= 1 && c.sisa.slices <= 1024, "must be in 1..1024, got " + std::to_string(c.sisa.slices));
     },
     "R, 1..1024"},
    {"sisa", "placement", [](Config& c) -> FieldRef { return &c.sisa.placement; }, "a string",
     [](const Config& c) {
       return ok_if(c.sisa.placement == "uniform" || weighted(c),
                    "must be uniform or weighted, got '" + c.sisa.placement + "'");
     },
     "`uniform`, or `weighted`: distribution-aware placement by each sample's deletion weight (docs/design.md). "
     "Needs weights; in the identity only when weighted", false, weighted},
    {"sisa", "heavy_weight", [](Config& c) -> FieldRef { return &c.sisa.heavy_weight; }, "a number",
     [](const Config& c) { return ok_if(!weighted(c) || std::isfinite(c.sisa.heavy_weight), "must be a finite number"); },
     "weighted: a key weighing at least this is heavy (likely to be deleted)", false, weighted},
    {"sisa", "heavy_shards", [](Config& c) -> FieldRef { return &c.sisa.heavy_shards; }, "an integer",
     [](const Config& c) {
       return ok_if(!weighted(c) || (c.sisa.heavy_shards >= 1 && c.sisa.heavy_shards < c.sisa.shards),
                    "must be in 1..shards-1, got " + std::to_string(c.sisa.heavy_shards));
     },
     "weighted: shards reserved for heavy keys (the last ones), 1..shards-1", false, weighted},
    {"sisa", "heavy_slices", [](Config& c) -> FieldRef { return &c.sisa.heavy_slices; }, "an integer",
     [](const Config& c) {
       return ok_if(!weighted(c) || (c.sisa.heavy_slices >= 1 && c.sisa.heavy_slices <= c.sisa.slices),
                    "must be in 1..slices, got " + std::to_string(c.sisa.heavy_slices));
     },
     "weighted: heavy keys go to the last this-many slices of their shard, 1..slices", false, weighted},

    {"train", "epochs", [](Config& c) -> FieldRef { return &c.train.epochs; }, "an integer", nullptr,
     "E; stage r trains e_r = floor(2Er/(R+1)) - floor(2E(r-1)/(R+1)) epochs; must give every stage >= 1"},
    {"train", "batch_size", [](Config& c) -> FieldRef { return &c.train.batch_size; }, "an integer",
     [](const Config& c) { return ok_if(c.train.batch_size >= 1, "must be >= 1"); },
     ">= 1; a final batch of one sample is merged into the previous one"},
    {"train", "optimizer", [](Config& c) -> FieldRef { return &c.train.optimizer; }, "a string",
     [](const Config& c) {
       return ok_if(c.train.optimizer == "adam" || c.train.optimizer == "sgd",
                    "must be adam or sgd, got '" + c.train.optimizer + "'");
     },
     "`adam` or `sgd`"},
    {"train", "lr", [](Config& c) -> FieldRef { return &c.train.lr; }, "a number",
     [](const Config& c) { return ok_if(c.train.lr > 0.0, "must be > 0"); }, "> 0"},
    {"train", "momentum", [](Config& c) -> FieldRef { return &c.train.momentum; }, "a number",
     [](const Config& c) { return ok_if(c.train.momentum >= 0.0 && c.train.momentum < 1.0, "must be in [0, 1)"); },
     "SGD, in [0, 1)"},
    {"train", "weight_decay", [](Config& c) -> FieldRef { return &c.train.weight_decay; }, "a number",
     [](const Config& c) { return ok_if(c.train.weight_decay >= 0.0, "must be >= 0"); }, ">= 0"},
    {"train", "beta1", [](Config& c) -> FieldRef { return &c.train.beta1; }, "a number",
     [](const Config& c) { return ok_if(c.train.beta1 >= 0.0 && c.train.beta1 < 1.0, "must be in [0, 1)"); },
     "Adam, in [0, 1)"},
    {"train", "beta2", [](Config& c) -> FieldRef { return &c.train.beta2; }, "a number",
     [](const Config& c) { return ok_if(c.train.beta2 >= 0.0 && c.train.beta2 < 1.0, "must be in [0, 1)"); },
     "Adam, in [0, 1)"},
    {"train", "eps", [](Config& c) -> FieldRef { return &c.train.eps; }, "a number",
     [](const Config& c) { return ok_if(c.train.eps > 0.0, "must be > 0"); }, "Adam, > 0"},
    {"train", "threads", [](Config& c) -> FieldRef { return &c.train.threads; }, "an integer",
     [](const Config& c) { return ok_if(c.train.threads >= 1 && c.train.threads <= 256, "must be in 1..256"); },
     "intra-op threads per shard, 1..256; part of the run's identity (it changes bits for CNNs)"},

    {"loo", "student", [](Config& c) -> FieldRef { return &c.loo.student; }, "true or false",
     [](const Config& c) {
       return ok_if(!c.loo.student || c.data.unlabeled,
                    "needs a language-model family (model.type: lm), not '" + c.model.type + "'");
     },
     "language models (`model.type: lm`) only: train a student on every row after the teachers and update it by "
     "leave-one-out distillation on every deletion ([loo.md](loo.md)); the student is approximate, the teachers "
     "stay exact. The `loo` keys enter the identity only with it", false, never<Config>},
    {"loo", "epochs", [](Config& c) -> FieldRef { return &c.loo.epochs; }, "an integer",
     [](const Config& c) { return ok_if(c.loo.epochs >= 0, "must be >= 0 (0: train.epochs)"); },
     "the student's epochs; 0: `train.epochs`", false, student, nullptr, student},
    {"loo", "steps", [](Config& c) -> FieldRef { return &c.loo.steps; }, "an integer",
     [](const Config& c) { return ok_if(c.loo.steps >= 1 && c.loo.steps <= 100000, "must be in 1..100000"); },
     "Adam steps of each deletion's student update (`loo.stop: steps`), 1..100000", false, student, nullptr,
     student},
    {"loo", "lr", [](Config& c) -> FieldRef { return &c.loo.lr; }, "a number",
     [](const Config& c) { return ok_if(c.loo.lr > 0.0, "must be > 0"); },
     "the update's step size, > 0 (`criterion`: where it starts)", false, student, nullptr, student},
    {"loo", "batch_size", [](Config& c) -> FieldRef { return &c.loo.batch_size; }, "an integer",
     [](const Config& c) { return ok_if(c.loo.batch_size >= 0, "must be >= 0 (0: every deleted row in each step)"); },
     "deleted rows per step, drawn from (seed, request, step); 0: all of them", false, student, nullptr, student},
    {"loo", "temperature", [](Config& c) -> FieldRef { return &c.loo.temperature; }, "a number",
     [](const Config& c) {
       return ok_if(c.loo.temperature >= 1.0 && c.loo.temperature <= 100.0, "must be in [1, 100]");
     },
     "softens target and student alike (target q^(1/t) renormalised, student logits / t, loss x t^2), so the "
     "update also matches how the teachers rank unlikely tokens; 1: the paper's plain soft cross-entropy; in "
     "[1, 100]; in the identity only when not 1", false,
     [](const Config& c) { return student(c) && c.loo.temperature != 1.0; }, nullptr,
     [](const Config& c) { return student(c) && c.loo.temperature != 1.0; }},
    {"loo", "retain_batch", [](Config& c) -> FieldRef { return &c.loo.retain_batch; }, "an integer",
     [](const Config& c) { return ok_if(c.loo.retain_batch >= 0, "must be >= 0"); },
     "retained rows mixed into each step with the next-token loss (holds held-out perplexity); 0: none", false,
     student, nullptr, student},
    {"loo", "target_cache_mb", [](Config& c) -> FieldRef { return &c.loo.target_cache_mb; }, "an integer",
     [](const Config& c) { return ok_if(c.loo.target_cache_mb >= 0, "must be >= 0 (0: never keep the target)"); },
     "the leave-one-out target (deleted rows x tokens x vocab floats) is computed once and kept when it fits this "
     "many MiB; above it each step computes its own rows' target: more teacher passes, bounded memory. 0: never "
     "kept; in the identity only when not 1024", false,
     [](const Config& c) { return student(c) && c.loo.target_cache_mb != 1024; }, nullptr,
     [](const Config& c) { return student(c) && c.loo.target_cache_mb != 1024; }},
    {"loo", "stop", [](Config& c) -> FieldRef { return &c.loo.stop; }, "a string",
     [](const Config& c) {
       if (c.loo.stop != "criterion" && c.loo.stop != "steps") {
         return "must be steps or criterion, got '" + c.loo.stop + "'";
       }
       return ok_if(!student(c) || c.loo.stop != "criterion" || !c.data.test.empty(),
                    "criterion calibrates on held-out rows: give data.test (or loo.stop: steps)");
     },
     "`steps`: each update takes exactly `loo.steps` at `loo.lr`; `criterion` (experimental): it steps until the "
     "deleted rows look like rows the student never saw (their excess log-likelihood over the teachers against "
     "held-out rows of `data.test`, per data subject), doubling its step size when it stalls, at most `max_steps` "
     "([loo.md](loo.md)). In the identity only when not `steps`", false,
     [](const Config& c) { return student(c) && c.loo.stop != "steps"; }, nullptr,
     [](const Config& c) { return student(c) && c.loo.stop != "steps"; }},
    {"loo", "max_steps", [](Config& c) -> FieldRef { return &c.loo.max_steps; }, "an integer",
     [](const Config& c) { return ok_if(c.loo.max_steps >= 1 && c.loo.max_steps <= 100000, "must be in 1..100000"); },
     "`criterion`: the most steps an update takes; reaching it is a warning in the receipt. In the identity only "
     "when not 400", false,
     [](const Config& c) { return student(c) && c.loo.max_steps != 400; }, nullptr,
     [](const Config& c) { return student(c) && c.loo.max_steps != 400; }},
    {"loo", "heldout_rows", [](Config& c) -> FieldRef { return &c.loo.heldout_rows; }, "an integer",
     [](const Config& c) {
       return ok_if(c.loo.heldout_rows >= 16 && c.loo.heldout_rows <= 100000, "must be in 16..100000");
     },
     "`criterion`: how many rows of `data.test` (the first by id) `train` keeps in the run to calibrate it. In the "
     "identity only when not 256", false,
     [](const Config& c) { return student(c) && c.loo.heldout_rows != 256; }, nullptr,
     [](const Config& c) { return student(c) && c.loo.heldout_rows != 256; }},
  };
  // clang-format on
}

}  // namespace

nlohmann::json artifact_identity(const std::string& path, const std::string& key) {
  check_input_file(path, {key, kMaxArtifactBytes, ExitCode::kData});
  return {{"sha256", sha256_file(path)}};
}

const std::vector<Field<Config>>& config_keys() {
  static const std::vector<Field<Config>> table = make_table();
  return table;
}

std::string config_keys_markdown() {
  std::string out = "| key | default | meaning |\n|---|---|---|\n";
  const Config defaults;
  const auto& table = config_keys();
  const auto rows = markdown_rows(table, defaults);
  // model.type and the built-in families' keys sit between sisa and train, as in YAML.
  const size_t train_at = rows.find("| `train.");
  out += rows.substr(0, train_at);
  out +=
      "| `model.type` | mlp | a registered model family: `mlp` and `cnn` (features), `transformer`, `sisa-fc` "
      "and `sisa-a` (text), `lm` (a causal language model; keys in [text.md](text.md)), `torchscript` (your own "
      "scripted PyTorch module; keys in [torchscript.md](torchscript.md)). The other `model.*` "
      "keys are the family's own, declared once by it (below: `mlp` and `cnn`, src/config/dense_spec.cpp); a "
      "key the family does not declare is rejected |\n";
  for (const auto& o : registered_spec("mlp").options) {  // both dense families declare all five
    {
      std::string value = std::visit(
          [](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string>) return v;
            if constexpr (std::is_same_v<T, bool>) return std::string(v ? "true" : "false");
            return nlohmann::json(v).dump();
          },
          o.default_value);
      out += "| `model." + o.key + "` | " + value + " | " + o.doc + " |\n";
    }
  }
  out += rows.substr(train_at);
  return out;
}

}  // namespace sisa
