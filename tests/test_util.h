// Helpers for the test suites: temp directories, small synthetic data sets
// written as real CSV and HDF5 files, configs, and running the real binary.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sisa/dataset.h"

namespace sisa::test {

// A fresh directory under $TMPDIR, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// n samples, `width` features, `classes` labels from a noisy linear rule;
// ids are 1000 + 7 i (not row positions); groups (if > 0) are i % groups.
Dataset synthetic(int64_t n, int64_t width, int64_t classes, uint64_t seed, int64_t groups = 0);
// n token-id sequences of length 1..max_len over ids 1..vocab-1 (0 pads);
// the label is which third of the vocabulary most tokens fall in (3 classes).
// ids are 1000 + 7 i; groups (if > 0) are i % groups.
Dataset synthetic_tokens(int64_t n, int64_t max_len, int64_t vocab, uint64_t seed, int64_t groups = 0);
void write_csv(const Dataset& d, const std::string& path);
// Datasets x (float32 features or int32 token ids), y, id, [subject], [lengths].
void write_hdf5(const Dataset& d, const std::string& path);

// A config YAML over `train_path` and `test_path` (csv or hdf5, chosen by the
// extension): seed 7, `width` features (or input_shape, if given), `classes`
// classes, and the model, sisa and train sections' lines as given
// (`model_yaml` etc., each line indented by two spaces).
std::string config_yaml(const std::string& train_path, const std::string& test_path, int64_t width, int64_t classes,
                        const std::string& model_yaml, const std::string& sisa_yaml, const std::string& train_yaml,
                        bool grouped = false, const std::string& input_shape = "");
void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};
// Runs the built `sisa` binary with `args` (shell-quoted by the caller).
// `env` is prepended as shell assignments, e.g. "ATEN_CPU_CAPABILITY=default".
CommandResult run_sisa(const std::string& args, const std::string& env = "");

// Every regular file under dir (relative path -> bytes), LOCK excluded.
std::map<std::string, std::string> snapshot(const std::string& dir);
// Files under dir whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::string& dir, const std::string& needle);

// The files under the run's ckpt/ (slice checkpoints) whose bytes hold `needle` (a tensor's name).
std::vector<std::string> checkpoints_containing(const std::string& run_dir, const std::string& needle);
// The first `count` ids of `d` that placement (seed, no weights) puts in `shard` of `shards`.
std::vector<int64_t> ids_in_shard(const Dataset& d, int64_t shard, int64_t shards, size_t count, uint64_t seed = 7);

// Every checkpoint's state digest, shard by shard and stage by stage, from the
// run's manifest: the run's whole training state in one comparable value.
std::vector<std::string> stage_digests(const std::string& run_dir);
// The stored bytes of the input row of `id` (float32 features or int32 token ids; "" if absent).
std::string row_bytes(const Dataset& d, int64_t id);

}  // namespace sisa::test
