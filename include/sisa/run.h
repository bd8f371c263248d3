// The commands on a run directory. The `sisa` CLI is a thin layer over these;
// tests call them in-process. Results are JSON objects (what --json prints).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sisa {

class Cluster;  // sisa/cluster.h: under mpirun, shards go to its worker ranks

struct TrainRequest {
  std::string config_path;
  std::vector<std::string> overrides;  // "key=value", applied after the YAML
  std::string run_dir;
  std::vector<int64_t> exclude_ids;  // train as if these ids were absent
  Cluster* cluster = nullptr;        // null: every shard trains in this process
};
// Ingests the source data into the run's store and trains every shard.
nlohmann::json train(const TrainRequest& request);

struct ForgetRequest {
  std::string run_dir;
  std::vector<int64_t> keys;  // sample ids, or group keys when by_group
  bool by_group = false;
  bool force_environment = false;  // run even if the numeric environment differs
  Cluster* cluster = nullptr;      // null: every shard trains in this process
};
// Exact deletion of one batch. Returns the receipt.
nlohmann::json forget(const ForgetRequest& request);

struct RecoverRequest {
  std::string run_dir;
  bool force_environment = false;
  Cluster* cluster = nullptr;  // null: every shard trains in this process
};
// Finishes interrupted work: removes files the manifest does not name and
// applies deletion requests that were accepted but not applied. `forget`
// does the same before its own request.
nlohmann::json recover(const RecoverRequest& request);

struct RepairRequest {
  std::string run_dir;
  bool force_environment = false;
  bool rebuild_log = false;    // rewrite a damaged deletion log (see repair())
  Cluster* cluster = nullptr;  // null: every shard trains in this process
};
// Rebuilds damaged shards: checkpoints by retraining from the last good one,
// stores from the source data minus deleted ids. Publishes only what
// reproduces the digests MANIFEST.json recorded; throws CorruptionError if a
// shard cannot be rebuilt exactly. Then does what recover() does. A damaged
// deletion log is refused (CorruptionError) unless `rebuild_log`: then it is
// rewritten from its intact records and the receipts of applied requests,
// and the answer's "log" names any pending request that could not be read.
nlohmann::json repair(const RepairRequest& request);

struct PredictRequest {
  std::string run_dir;
  std::string split = "test";      // test: the config's test file; train: the samples the run holds now
  std::string aggregate = "mean";  // mean | vote: which one `predictions` carries
  std::string output_csv;          // optional per-sample output
};
nlohmann::json predict(const PredictRequest& request);

struct VerifyRequest {
  std::string run_dir;
  std::vector<int64_t> shards;  // empty: all
  bool force_environment = false;
  Cluster* cluster = nullptr;  // null: every shard trains in this process
};
// Retrains the shards from scratch in memory and compares every checkpoint's
// state digest. Returns "identical": false (and the stages that differ) when
// any differs; the CLI then exits 8.
nlohmann::json verify(const VerifyRequest& request);

nlohmann::json status(const std::string& run_dir);

// Language-model runs (issue #11, docs/loo.md).
struct AuditRequest {
  std::string run_dir;
  std::string secrets;         // the canaries file of scripts/make-lm-corpus.sh (group,repetitions,prefix,secret,ids)
  std::string model = "both";  // student | teachers | both (student only if the run has one)
  int64_t candidates = 10000;  // random secrets of the canaries' format to rank each canary against
  int64_t beam = 5;            // beam width of the extraction attack
  uint64_t seed = 0;           // draws the candidates
  int64_t heldout_rows = 0;    // perplexity on the first N rows of data.test; 0: all of them
};
// Exposure (sampled rank and Carlini's skew-normal extrapolation), greedy and
// beam extraction, a loss-threshold membership attack's AUC and held-out
// perplexity, per canary and per repetition count. Never prints a secret.
nlohmann::json audit(const AuditRequest& request);

struct GenerateRequest {
  std::string run_dir;
  std::string prompt;
  int64_t max_tokens = 20;
  int64_t top_k = 1;  // <= 1: greedy
  uint64_t seed = 0;  // top-k sampling
  std::string model;  // student | teachers; empty: the student if there is one
};
nlohmann::json generate(const GenerateRequest& request);

struct ScoreRequest {
  std::string run_dir;
  std::string text;
  std::string model;  // student | teachers; empty: the student if there is one
};
// Per-token log-probabilities, log-likelihood and perplexity of `text`.
nlohmann::json score(const ScoreRequest& request);

// Read-only check of every file of a run (hashes, digests, deleted ids absent
// from every store, no unreferenced files). `ok` is false with `problems`
// naming each file; it never repairs.
nlohmann::json fsck(const std::string& run_dir);

}  // namespace sisa
