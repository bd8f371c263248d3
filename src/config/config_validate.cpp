// Config::validate(): every check, each "key: reason", collected at once.
#include <algorithm>
#include <cmath>

#include "config/config_keys.h"
#include "config/model_spec.h"
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
  const InputKind input = model_input(c);
  if (input == InputKind::kTokens && !tokens) {
    e.push_back("data.format: model family '" + c.model.type +
                "' reads token ids: give data.text_column (csv) "
                "or integer inputs (hdf5)");
  }
  if (input == InputKind::kFeatures && !c.data.text_column.empty()) {
    e.push_back("data.text_column: model family '" + c.model.type + "' reads float features, not text");
  }
  return e;
}

// The weights and the placement that uses them (the keys' own checks are in
// the key table).
std::vector<std::string> validate_placement(const Config& c) {
  std::vector<std::string> e;
  const DataConfig& d = c.data;
  if ((!d.weight_column.empty() + !d.weights_dataset.empty() + !d.weights_file.empty()) > 1) {
    e.push_back("data: give at most one of weight_column, weights_dataset, weights_file");
  }
  if (c.sisa.placement == "uniform" && d.has_weights()) {
    e.push_back("data: weights are given but sisa.placement is uniform (set sisa.placement: weighted)");
  }
  if (c.sisa.placement == "weighted" && !d.has_weights()) {
    e.push_back(
        "sisa.placement: weighted needs a deletion weight per sample "
        "(data.weight_column, weights_dataset or weights_file)");
  }
  return e;
}

// Every stage must get an epoch.
std::vector<std::string> validate_schedule(const Config& c) {
  if (c.sisa.slices < 1 || c.sisa.slices > 1024) return {};
  const auto ep = stage_epochs(c.train.epochs, c.sisa.slices);
  for (int64_t r = 1; r <= c.sisa.slices; ++r) {
    if (ep[r] <= 0) {
      return {"train.epochs: " + std::to_string(c.train.epochs) + " epochs give stage " + std::to_string(r) + " of " +
              std::to_string(c.sisa.slices) + " zero epochs; need at least " + std::to_string((c.sisa.slices + 2) / 2)};
    }
  }
  return {};
}

}  // namespace

std::vector<std::string> Config::validate() const {
  // Each key's own check, then the checks across keys.
  std::vector<std::string> e = check_fields(config_keys(), *this);
  for (const auto& check : {validate_model, validate_placement, validate_schedule}) {
    for (auto& m : check(*this)) e.push_back(std::move(m));
  }
  return e;
}

}  // namespace sisa
