// The `sisa` command: parse flags, call the library, print, map errors to
// the exit codes of docs/cli.md. No logic of its own.
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "sisa/id_list.h"
#include "sisa/cluster.h"
#include "sisa/errors.h"
#include "sisa/logging.h"
#include "sisa/pretrain.h"
#include "sisa/run.h"
#include "sisa/serve.h"

namespace {

std::vector<int64_t> ids_from(const std::string& list, const std::string& file, const char* flag) {
  if (!list.empty() && !file.empty()) {
    throw sisa::UsageError(std::string("give ") + flag + " or " + flag + "-file, not both");
  }
  if (!file.empty()) return sisa::read_id_file(file);
  if (!list.empty()) return sisa::parse_id_list(list, flag);
  return {};
}

void print(const nlohmann::json& result, bool json, const std::string& human) {
  if (json) {
    std::cout << result.dump(2) << std::endl;
  } else if (!human.empty()) {
    std::cout << human << std::endl;
  }
}

}  // namespace

int run_command(int argc, char** argv, sisa::Cluster& cluster);

int main(int argc, char** argv) {
  // Keep large buffers (shard stores, HDF5 images) on the heap and reuse them:
  // fresh mmap'd pages cost ~10 us each to fault in on virtual machines, and a
  // deletion otherwise faults in several copies of a 40 MB store.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  sisa::Cluster cluster(&argc, &argv);
  if (!cluster.is_coordinator()) {
    // A worker rank: train the shards rank 0 hands out until it says stop.
    sisa::init_logging(sisa::Verbosity::kNormal, cluster.rank());
    try {
      cluster.serve();
    } catch (const std::exception& e) {
      spdlog::error("worker failed: {}", e.what());
      cluster.abort(static_cast<int>(sisa::ExitCode::kInternal));
    }
    cluster.finish();
    return 0;
  }
  const int code = run_command(argc, argv, cluster);
  // Workers may be waiting for (or running) a job: a failure ends them all.
  if (code != 0 && cluster.size() > 1) cluster.abort(code);
  cluster.finish();
  return code;
}

int run_command(int argc, char** argv, sisa::Cluster& cluster) {
  CLI::App app{"sisa: exact machine unlearning by SISA training (sharded, isolated, sliced, "
               "aggregated).\nExit codes: 0 ok, 1 internal, 2 usage/config, 3 data/unknown id, "
               "4 corruption, 5 locked, 6 environment mismatch, 7 I/O, 8 verify mismatch, 9 interrupted."};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  bool quiet = false, verbose = false, json = false;
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors on stderr");
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  app.add_flag("--json", json, "Print the result as JSON on stdout");

  std::string run_dir;
  bool force = false;

  auto* train = app.add_subcommand("train", "Ingest the data and train every shard");
  sisa::TrainRequest treq;
  std::string exclude_file;
  train->add_option("-c,--config", treq.config_path, "YAML config")->required();
  train->add_option("-r,--run-dir", treq.run_dir, "Run directory to create")->required();
  train->add_option("--set", treq.overrides, "Override a config key: --set train.epochs=4");
  train->add_option("--exclude-ids", exclude_file,
                    "File of ids to train without (an independent check of forget)");

  auto* pretrain = app.add_subcommand("pretrain", "Pretrain a text backbone (masked LM) and its tokenizer");
  sisa::PretrainRequest ptreq;
  pretrain->add_option("-c,--config", ptreq.config_path, "Pretraining YAML config (configs/backbone-small.yaml)")->required();
  pretrain->add_option("-o,--out", ptreq.out, "The backbone to write, <name>.h5 (the tokenizer goes to <name>.tokenizer.model)")
      ->required();
  pretrain->add_option("--set", ptreq.overrides, "Override a config key: --set train.steps=100");

  auto* tokenizer = app.add_subcommand("tokenizer", "Train a SentencePiece tokenizer on a text file (one sentence a line)");
  sisa::TokenizerRequest tkreq;
  tokenizer->add_option("--corpus", tkreq.corpus, "Text file, one sentence per line")->required();
  tokenizer->add_option("-o,--out", tkreq.out, "The .model file to write")->required();
  tokenizer->add_option("--vocab-size", tkreq.vocab_size, "Pieces in the vocabulary")->capture_default_str();

  auto* forget = app.add_subcommand("forget", "Exactly delete samples (or data subjects)");
  std::string ids, ids_file, groups, groups_file;
  forget->add_option("-r,--run-dir", run_dir, "Run directory")->required();
  forget->add_option("--ids", ids, "Comma-separated sample ids");
  forget->add_option("--ids-file", ids_file, "File of sample ids");
  forget->add_option("--groups", groups, "Comma-separated group keys (data subjects)");
  forget->add_option("--groups-file", groups_file, "File of group keys");
  forget->add_flag("--force", force, "Run even if the numeric environment differs");

  auto* predict = app.add_subcommand("predict", "Ensemble predictions and accuracy");
  sisa::PredictRequest preq;
  predict->add_option("-r,--run-dir", preq.run_dir, "Run directory")->required();
  predict->add_option("--split", preq.split,
                      "test (the config's test file) or train (the samples the run still holds)")
      ->capture_default_str();
  predict->add_option("--aggregate", preq.aggregate, "mean | vote")->capture_default_str();
  predict->add_option("-o,--output", preq.output_csv, "Write per-sample predictions as CSV");

  auto* verify = app.add_subcommand("verify", "Retrain from scratch and compare bit for bit");
  std::string shard_list;
  verify->add_option("-r,--run-dir", run_dir, "Run directory")->required();
  verify->add_option("--shards", shard_list, "Comma-separated shards (default all)");
  verify->add_flag("--force", force, "Run even if the numeric environment differs");

  auto* recover = app.add_subcommand(
      "recover", "Finish interrupted work: apply accepted deletions, remove stray files");
  recover->add_option("-r,--run-dir", run_dir, "Run directory")->required();
  recover->add_flag("--force", force, "Run even if the numeric environment differs");

  auto* repair = app.add_subcommand(
      "repair", "Rebuild damaged shards exactly (checkpoints from the last good one, stores from the source)");
  repair->add_option("-r,--run-dir", run_dir, "Run directory")->required();
  repair->add_flag("--force", force, "Run even if the numeric environment differs");
  bool rebuild_log = false;
  repair->add_flag("--rebuild-log", rebuild_log,
                   "Rewrite a damaged deletion log from its intact records and the receipts (says what is lost)");

  auto* fsck = app.add_subcommand("fsck", "Check every file of a run (read-only)");
  fsck->add_option("-r,--run-dir", run_dir, "Run directory")->required();

  auto* serve = app.add_subcommand(
      "serve", "Ensemble predictions over HTTP, deletions applied live (until SIGINT/SIGTERM)");
  sisa::ServeOptions sopt;
  serve->add_option("-r,--run-dir", sopt.run_dir, "Run directory")->required();
  serve->add_option("--host", sopt.host, "Address to listen on")->capture_default_str();
  serve->add_option("--port", sopt.port, "Port (0: any free port; --json prints it)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  serve->add_option("--token-file", sopt.token_file,
                    "File holding the bearer token for POST /v1/forget (without it, deletion over HTTP is off)");
  serve->add_option("--http-threads", sopt.http_threads,
                    "Threads that answer requests (connections wait without holding one)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve->add_option("--max-body-bytes", sopt.max_body_bytes, "Larger request bodies get 413")
      ->check(CLI::Range(size_t{1}, size_t{1} << 34))
      ->capture_default_str();
  serve->add_option("--read-timeout", sopt.read_timeout_seconds,
                    "Seconds a client may take to send one whole request (headers and body); then 408")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  serve->add_option("--max-connections", sopt.max_connections, "Open connections in all; more get 503")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->capture_default_str();
  serve->add_option("--max-connections-per-client", sopt.max_connections_per_client,
                    "Open connections per client address; more get 503")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->capture_default_str();
  serve->add_option("--serving-nice", sopt.serving_nice,
                    "Nice value of the request threads; a deletion's retrain runs at 0 and so keeps about a "
                    "core under full load (0: equal shares)")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  serve->add_flag("--force", sopt.force_environment, "Run even if the numeric environment differs");

  auto* audit = app.add_subcommand(
      "audit", "Language models: canary exposure, extraction, membership AUC and held-out perplexity");
  sisa::AuditRequest areq;
  audit->add_option("-r,--run-dir", areq.run_dir, "Run directory")->required();
  audit->add_option("--secrets", areq.secrets, "The canaries file (scripts/make-lm-corpus.sh)")->required();
  audit->add_option("--model", areq.model, "student | teachers | both")->capture_default_str();
  audit->add_option("--candidates", areq.candidates, "Random secrets each canary is ranked against")
      ->capture_default_str();
  audit->add_option("--beam", areq.beam, "Beam width of the extraction attack")->capture_default_str();
  audit->add_option("--seed", areq.seed, "Draws the candidates")->check(CLI::NonNegativeNumber)->capture_default_str();
  audit->add_option("--heldout-rows", areq.heldout_rows, "Perplexity on the first N test rows (0: all)")
      ->capture_default_str();

  auto* generate = app.add_subcommand("generate", "Language models: continue a prompt (the student, or the teachers)");
  sisa::GenerateRequest greq;
  generate->add_option("-r,--run-dir", greq.run_dir, "Run directory")->required();
  generate->add_option("--prompt", greq.prompt, "Text to continue")->required();
  generate->add_option("--max-tokens", greq.max_tokens, "Tokens to add at most")->capture_default_str();
  generate->add_option("--top-k", greq.top_k, "Sample from the k likeliest tokens (<= 1: greedy)")->capture_default_str();
  generate->add_option("--seed", greq.seed, "Seed of top-k sampling")->check(CLI::NonNegativeNumber)->capture_default_str();
  generate->add_option("--model", greq.model, "student | teachers (default: the student if the run has one)");

  auto* score = app.add_subcommand("score", "Language models: per-token log-probabilities and perplexity of a text");
  sisa::ScoreRequest screq;
  score->add_option("-r,--run-dir", screq.run_dir, "Run directory")->required();
  score->add_option("--text", screq.text, "Text to score")->required();
  score->add_option("--model", screq.model, "student | teachers (default: the student if the run has one)");

  auto* status = app.add_subcommand("status", "Shards, generations, fingerprints, deletions");
  status->add_option("-r,--run-dir", run_dir, "Run directory")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : static_cast<int>(sisa::ExitCode::kUsage);
  }
  sisa::init_logging(quiet ? sisa::Verbosity::kQuiet
                           : verbose ? sisa::Verbosity::kVerbose : sisa::Verbosity::kNormal,
                     cluster.size() > 1 ? cluster.rank() : -1);
  try {
    if (*train) {
      if (!exclude_file.empty()) treq.exclude_ids = sisa::read_id_file(exclude_file);
      treq.cluster = &cluster;
      const auto r = sisa::train(treq);
      print(r, json, "trained " + r["shards"].dump() + " shards on " + r["samples"].dump() +
                         " samples in " + r["total_seconds"].dump() + " s; run directory " +
                         treq.run_dir);
    } else if (*pretrain) {
      if (cluster.size() > 1) throw sisa::UsageError("pretrain runs in one process; start it without mpirun");
      const auto r = sisa::pretrain(ptreq);
      print(r, json, "pretrained " + r["backbone"].get<std::string>() + " (masked-LM loss " + r["final_loss"].dump() +
                         ") and " + r["tokenizer"].get<std::string>() + " in " + r["seconds"].dump() + " s");
    } else if (*tokenizer) {
      const auto r = sisa::train_tokenizer(tkreq);
      print(r, json, "wrote " + tkreq.out + " (" + r["vocab_size"].dump() + " pieces, sha256 " +
                         r["sha256"].get<std::string>().substr(0, 16) + "...)");
    } else if (*audit) {
      const auto r = sisa::audit(areq);
      std::string human = "audit of " + areq.run_dir + " (" + r["candidates"].dump() +
                          " candidates; a canary never trained on scores 1.44 bits on average)\n"
                          "model     reps deleted canaries exposure (+-SE) extrapolated greedy beam  AUC (+-SE)";
      const auto fixed2 = [](const nlohmann::json& x) {  // "-" for null
        if (x.is_null()) return std::string("-");
        char s[32];
        std::snprintf(s, sizeof s, "%.2f", x.get<double>());
        return std::string(s);
      };
      for (const auto& [name, m] : r["models"].items()) {
        for (const auto& g : m["by_repetitions"]) {
          char line[240];
          std::snprintf(line, sizeof line, "\n%-9s %4lld %-7s %8lld %8.2f (%4s) %12.2f %6lld %4lld  %s (%s)",
                        name.c_str(), static_cast<long long>(g["repetitions"].get<int64_t>()),
                        g["deleted"].get<bool>() ? "yes" : "no", static_cast<long long>(g["canaries"].get<int64_t>()),
                        g["mean_exposure"].get<double>(), fixed2(g["mean_exposure_standard_error"]).c_str(),
                        g["mean_exposure_extrapolated"].get<double>(),
                        static_cast<long long>(g["greedy_extracted"].get<int64_t>()),
                        static_cast<long long>(g["beam_extracted"].get<int64_t>()),
                        fixed2(g["membership_auc"]).c_str(), fixed2(g["membership_auc_standard_error"]).c_str());
          human += line;
        }
        if (m.contains("heldout_perplexity")) {
          human += "\n" + name + ": held-out perplexity " + std::to_string(m["heldout_perplexity"].get<double>()) +
                   "; " + m["guarantee"].get<std::string>();
        }
      }
      print(r, json, human);
    } else if (*generate) {
      const auto r = sisa::generate(greq);
      print(r, json, r["text"].get<std::string>() + "\n(" + r["model"].get<std::string>() + ": " +
                         r["guarantee"].get<std::string>() + ")");
    } else if (*score) {
      const auto r = sisa::score(screq);
      print(r, json, "log-likelihood " + r["log_likelihood"].dump() + ", perplexity " + r["perplexity"].dump() + " (" +
                         r["model"].get<std::string>() + ": " + r["guarantee"].get<std::string>() + ")");
    } else if (*forget) {
      sisa::ForgetRequest freq;
      freq.run_dir = run_dir;
      freq.force_environment = force;
      const auto by_id = ids_from(ids, ids_file, "--ids");
      const auto by_group = ids_from(groups, groups_file, "--groups");
      if (by_id.empty() == by_group.empty()) {
        throw sisa::UsageError("give exactly one of --ids, --ids-file, --groups, --groups-file");
      }
      freq.by_group = !by_group.empty();
      freq.keys = freq.by_group ? by_group : by_id;
      freq.cluster = &cluster;
      const auto r = sisa::forget(freq);
      if (r.value("noop", false)) {
        print(r, json, "nothing to delete: all " + std::to_string(r["already_deleted"].size()) +
                           " were deleted before (no request logged)");
        return 0;
      }
      print(r, json, "request " + r["seq"].dump() + ": deleted " + r["deleted_count"].dump() +
                         " sample(s), retrained " + std::to_string(r["shards"].size()) +
                         " shard(s); already deleted: " + std::to_string(r["already_deleted"].size()) +
                         "; receipt " + r["receipt_path"].get<std::string>());
    } else if (*predict) {
      const auto r = sisa::predict(preq);
      char line[160];
      std::snprintf(line, sizeof line, "%lld samples, %lld shards: accuracy %.4f (mean %.4f, vote %.4f)",
                    static_cast<long long>(r["samples"].get<int64_t>()),
                    static_cast<long long>(r["shards_used"].get<int64_t>()),
                    r["accuracy"].get<double>(), r["accuracy_mean"].get<double>(),
                    r["accuracy_vote"].get<double>());
      print(r, json, line);
    } else if (*verify) {
      sisa::VerifyRequest vreq;
      vreq.run_dir = run_dir;
      vreq.force_environment = force;
      if (!shard_list.empty()) vreq.shards = sisa::parse_id_list(shard_list, "--shards");
      vreq.cluster = &cluster;
      const auto r = sisa::verify(vreq);
      const bool same = r["identical"].get<bool>();
      print(r, json, same ? "verified: every checked shard is bit-identical to a fresh retrain"
                          : "MISMATCH: some shard differs from a fresh retrain (see log)");
      return same ? 0 : static_cast<int>(sisa::ExitCode::kVerifyFailed);
    } else if (*recover) {
      const auto r = sisa::recover({run_dir, force, &cluster});
      print(r, json, "recovered: " + std::to_string(r["resumed_requests"].size()) +
                         " deletion request(s) completed, " +
                         std::to_string(r["removed_files"].size()) + " stray file(s) removed");
    } else if (*repair) {
      const auto r = sisa::repair({run_dir, force, rebuild_log, &cluster});
      std::string human = "repaired " + std::to_string(r["repaired_shards"].size()) +
                          " shard(s); every rebuilt checkpoint reproduces its recorded digest";
      if (r["log"].is_object()) {
        human += "\ndeletion log rewritten: " + std::to_string(r["log"]["damaged_bytes"].size()) +
                 " damaged range(s) dropped, " + std::to_string(r["log"]["restored_from_receipts"].size()) +
                 " record(s) restored from receipts";
        if (r["log"].contains("warning")) human += "\nWARNING: " + r["log"]["warning"].get<std::string>();
      }
      print(r, json, human);
    } else if (*fsck) {
      const auto r = sisa::fsck(run_dir);
      std::string human = r["ok"].get<bool>() ? "ok: " : "PROBLEMS: ";
      human += r["checked_files"].dump() + " files checked, " + r["pending_requests"].dump() +
               " pending request(s)";
      for (const auto& p : r["problems"]) human += "\n  " + p.get<std::string>();
      print(r, json, human);
      return r["ok"].get<bool>() ? 0 : static_cast<int>(sisa::ExitCode::kCorruption);
    } else if (*serve) {
      if (cluster.size() > 1) throw sisa::UsageError("serve runs in one process; start it without mpirun");
      sopt.on_listening = [json](const std::string& host, int port) {
        // With --json one line on stdout says where to connect (for scripts and tests).
        if (json) std::cout << nlohmann::json{{"listening", true}, {"host", host}, {"port", port}}.dump() << std::endl;
      };
      return sisa::serve(sopt);
    } else if (*status) {
      const auto r = sisa::status(run_dir);
      std::string human = "run " + run_dir + ": " + r["shards"].dump() + " shards x " +
                          r["slices"].dump() + " slices, " + r["deleted_ids"].dump() +
                          " deleted ids, " + r["pending_requests"].dump() + " pending request(s)";
      if (!r["log_damaged"].is_null()) human += "\n  DELETION LOG DAMAGED: " + r["log_damaged"].get<std::string>();
      if (const auto& cost = r["expected_deletion_cost"]; !cost.is_null()) {
        char line[200];
        std::snprintf(line, sizeof line,
                      "\n  weighted placement: a deletion is expected to retrain %.0f sample-epochs "
                      "(%.0f with every key equally likely; a full retrain is %.0f)",
                      cost["weighted"].get<double>(), cost["per_key"].get<double>(), cost["full_retrain"].get<double>());
        human += line;
      }
      for (const auto& s : r["shard_status"]) {
        human += "\n  shard " + s["shard"].dump() + ": " + s["n_samples"].dump() +
                 " samples, generation " + s["generation"].dump() + ", fingerprint " +
                 s["fingerprint"].get<std::string>().substr(0, 16);
      }
      print(r, json, human);
    }
  } catch (const sisa::Error& e) {
    spdlog::error("{}", e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return static_cast<int>(sisa::ExitCode::kInternal);
  }
  return 0;
}
