// The commands on a run directory (and pretraining): flags, then a call
// into the library, then what a person reads.
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "sisa/errors.h"
#include "sisa/id_list.h"
#include "sisa/pretrain.h"
#include "sisa/run.h"
#include "sisa/serve.h"

namespace sisa::cli {
namespace {

const char* kForceHelp = "Run even if the numeric environment differs";

// -r/--run-dir and, for writers that check the environment, --force.
struct RunFlags {
  std::string run_dir;
  bool force = false;
};
CLI::App* with_run(CLI::App* sub, RunFlags& f, bool force = true) {
  sub->add_option("-r,--run-dir", f.run_dir, "Run directory")->required();
  if (force) sub->add_flag("--force", f.force, kForceHelp);
  return sub;
}

Command train(CLI::App& app, const Globals& g, Cluster& cluster) {
  struct Flags {
    TrainRequest req;
    std::string exclude_file;
  };
  auto f = std::make_shared<Flags>();
  auto* sub = app.add_subcommand("train", "Ingest the data and train every shard");
  sub->add_option("-c,--config", f->req.config_path, "YAML config")->required();
  sub->add_option("-r,--run-dir", f->req.run_dir, "Run directory to create")->required();
  sub->add_option("--set", f->req.overrides, "Override a config key: --set train.epochs=4");
  sub->add_option("--exclude-ids", f->exclude_file, "File of ids to train without (an independent check of forget)");
  return {sub, [f, &g, &cluster] {
            if (!f->exclude_file.empty()) f->req.exclude_ids = read_id_file(f->exclude_file);
            f->req.cluster = &cluster;
            const auto r = sisa::train(f->req);
            print(r, g.json,
                  "trained " + r["shards"].dump() + " shards on " + r["samples"].dump() + " samples in " +
                      r["total_seconds"].dump() + " s; run directory " + f->req.run_dir);
            return 0;
          }};
}

Command pretrain(CLI::App& app, const Globals& g, Cluster& cluster) {
  auto req = std::make_shared<PretrainRequest>();
  auto* sub = app.add_subcommand("pretrain", "Pretrain a text backbone (masked LM) and its tokenizer");
  sub->add_option("-c,--config", req->config_path, "Pretraining YAML config (configs/backbone-small.yaml)")->required();
  sub->add_option("-o,--out", req->out,
                  "The backbone to write, <name>.h5 (the tokenizer goes to <name>.tokenizer.model)")
      ->required();
  sub->add_option("--set", req->overrides, "Override a config key: --set train.steps=100");
  return {sub, [req, &g, &cluster] {
            if (cluster.size() > 1) throw UsageError("pretrain runs in one process; start it without mpirun");
            const auto r = sisa::pretrain(*req);
            print(r, g.json,
                  "pretrained " + r["backbone"].get<std::string>() + " (masked-LM loss " + r["final_loss"].dump() +
                      ") and " + r["tokenizer"].get<std::string>() + " in " + r["seconds"].dump() + " s");
            return 0;
          }};
}

Command tokenizer(CLI::App& app, const Globals& g, Cluster&) {
  auto req = std::make_shared<TokenizerRequest>();
  auto* sub = app.add_subcommand("tokenizer", "Train a SentencePiece tokenizer on a text file (one sentence a line)");
  sub->add_option("--corpus", req->corpus, "Text file, one sentence per line")->required();
  sub->add_option("-o,--out", req->out, "The .model file to write")->required();
  sub->add_option("--vocab-size", req->vocab_size, "Pieces in the vocabulary")->capture_default_str();
  return {sub, [req, &g] {
            const auto r = train_tokenizer(*req);
            print(r, g.json,
                  "wrote " + req->out + " (" + r["vocab_size"].dump() + " pieces, sha256 " +
                      r["sha256"].get<std::string>().substr(0, 16) + "...)");
            return 0;
          }};
}

Command import_encoder(CLI::App& app, const Globals& g, Cluster&) {
  auto req = std::make_shared<ImportEncoderRequest>();
  auto* sub = app.add_subcommand(
      "import-encoder", "Convert USE-Lite (scripts/fetch-encoder.sh) into a backbone and tokenizer for the text families (transformer, sisa-a, sisa-fc)");
  req->package = "encoders/use-lite/model";
  sub->add_option("--package", req->package, "USE-Lite's model files")->capture_default_str();
  sub->add_option("-o,--out", req->out, "The backbone to write, <name>.h5 (the tokenizer goes to <name>.vocab.json)")
      ->required();
  sub->add_option("--reinitialize", req->reinitialize_seed,
                  "Write the architecture untrained instead, weights drawn from this seed (a control)")
      ->check(CLI::NonNegativeNumber);
  return {sub, [req, &g] {
            const auto r = sisa::import_encoder(*req);
            print(r, g.json,
                  "wrote " + r["backbone"].get<std::string>() + " (USE-Lite, " + r["parameters"].dump() +
                      " parameters) and " + r["tokenizer"].get<std::string>() + " (" + r["vocab_size"].dump() +
                      " pieces)");
            return 0;
          }};
}

// Ids from a list or a file (not both).
std::vector<int64_t> ids_from(const std::string& list, const std::string& file, const char* flag) {
  if (!list.empty() && !file.empty()) throw UsageError(std::string("give ") + flag + " or " + flag + "-file, not both");
  if (!file.empty()) return read_id_file(file);
  if (!list.empty()) return parse_id_list(list, flag);
  return {};
}

// The LOO student's part of a forget answer, for people: how its update
// stopped, and the warning when the cap stopped it (docs/loo.md).
std::string student_summary(const nlohmann::json& r) {
  if (!r.contains("student")) return "";
  const auto& s = r["student"];
  std::string out = "\nstudent (approximate, see `sisa audit`): " + s["steps"].dump() + " update step(s)";
  if (s.value("stop", "") == "criterion") {
    const auto& c = s["criterion"];
    char buf[160];
    std::snprintf(buf, sizeof buf, "; largest z %.2f -> %.2f (level %.2f), mean z %.2f -> %.2f (level %.2f)",
                  c["max_z"]["before"].get<double>(), c["max_z"]["after"].get<double>(),
                  c["max_z"]["level"].get<double>(), c["mean_z"]["before"].get<double>(),
                  c["mean_z"]["after"].get<double>(), c["mean_z"]["level"].get<double>());
    out += std::string(c["reached"].get<bool>() ? ", until the deleted rows looked unseen" : "") + buf;
  }
  if (s.contains("warning")) out += "\nwarning: " + s["warning"].get<std::string>();
  return out;
}

Command forget(CLI::App& app, const Globals& g, Cluster& cluster) {
  struct Flags : RunFlags {
    std::string ids, ids_file, groups, groups_file;
  };
  auto f = std::make_shared<Flags>();
  auto* sub = with_run(app.add_subcommand("forget", "Exactly delete samples (or data subjects)"), *f);
  sub->add_option("--ids", f->ids, "Comma-separated sample ids");
  sub->add_option("--ids-file", f->ids_file, "File of sample ids (- reads standard input)");
  sub->add_option("--groups", f->groups, "Comma-separated group keys (data subjects)");
  sub->add_option("--groups-file", f->groups_file, "File of group keys (- reads standard input)");
  return {sub, [f, &g, &cluster] {
            ForgetRequest req;
            req.run_dir = f->run_dir;
            req.force_environment = f->force;
            const auto by_id = ids_from(f->ids, f->ids_file, "--ids");
            const auto by_group = ids_from(f->groups, f->groups_file, "--groups");
            if (by_id.empty() == by_group.empty()) {
              throw UsageError("give exactly one of --ids, --ids-file, --groups, --groups-file");
            }
            req.by_group = !by_group.empty();
            req.keys = req.by_group ? by_group : by_id;
            req.cluster = &cluster;
            const auto r = sisa::forget(req);
            if (r.value("noop", false)) {
              print(r, g.json,
                    "nothing to delete: all " + std::to_string(r["already_deleted"].size()) +
                        " were deleted before (no request logged)");
              return 0;
            }
            print(r, g.json,
                  "request " + r["seq"].dump() + ": deleted " + r["deleted_count"].dump() + " sample(s), retrained " +
                      std::to_string(r["shards"].size()) +
                      " shard(s); already deleted: " + std::to_string(r["already_deleted"].size()) + "; receipt " +
                      r["receipt_path"].get<std::string>() + student_summary(r));
            return 0;
          }};
}

Command predict(CLI::App& app, const Globals& g, Cluster&) {
  auto req = std::make_shared<PredictRequest>();
  auto* sub = app.add_subcommand("predict", "Ensemble predictions and accuracy");
  sub->add_option("-r,--run-dir", req->run_dir, "Run directory")->required();
  sub->add_option("--split", req->split, "test (the config's test file) or train (the samples the run still holds)")
      ->capture_default_str();
  sub->add_option("--aggregate", req->aggregate, "mean | vote")->capture_default_str();
  sub->add_option("-o,--output", req->output_csv, "Write per-sample predictions as CSV");
  return {sub, [req, &g] {
            const auto r = sisa::predict(*req);
            char line[160];
            std::snprintf(line, sizeof line, "%lld samples, %lld shards: accuracy %.4f (mean %.4f, vote %.4f)",
                          static_cast<long long>(r["samples"].get<int64_t>()),
                          static_cast<long long>(r["shards_used"].get<int64_t>()), r["accuracy"].get<double>(),
                          r["accuracy_mean"].get<double>(), r["accuracy_vote"].get<double>());
            print(r, g.json, line);
            return 0;
          }};
}

Command verify(CLI::App& app, const Globals& g, Cluster& cluster) {
  struct Flags : RunFlags {
    std::string shards;
  };
  auto f = std::make_shared<Flags>();
  auto* sub = with_run(app.add_subcommand("verify", "Retrain from scratch and compare bit for bit"), *f);
  sub->add_option("--shards", f->shards, "Comma-separated shards (default all)");
  return {sub, [f, &g, &cluster] {
            VerifyRequest req;
            req.run_dir = f->run_dir;
            req.force_environment = f->force;
            if (!f->shards.empty()) req.shards = parse_id_list(f->shards, "--shards");
            req.cluster = &cluster;
            const auto r = sisa::verify(req);
            const bool same = r["identical"].get<bool>();
            print(r, g.json,
                  same ? "verified: every checked shard is bit-identical to a fresh retrain"
                       : "MISMATCH: some shard differs from a fresh retrain (see log)");
            return same ? 0 : static_cast<int>(ExitCode::kVerifyFailed);
          }};
}

Command recover(CLI::App& app, const Globals& g, Cluster& cluster) {
  auto f = std::make_shared<RunFlags>();
  auto* sub = app.add_subcommand("recover", "Finish interrupted work: apply accepted deletions, remove stray files");
  with_run(sub, *f);
  return {sub, [f, &g, &cluster] {
            const auto r = sisa::recover({f->run_dir, f->force, &cluster});
            print(r, g.json,
                  "recovered: " + std::to_string(r["resumed_requests"].size()) + " deletion request(s) completed, " +
                      std::to_string(r["removed_files"].size()) + " stray file(s) removed");
            return 0;
          }};
}

Command repair(CLI::App& app, const Globals& g, Cluster& cluster) {
  struct Flags : RunFlags {
    bool rebuild_log = false;
  };
  auto f = std::make_shared<Flags>();
  auto* sub = with_run(app.add_subcommand("repair",
                                          "Rebuild damaged shards exactly (checkpoints from the last good "
                                          "one, stores from the source)"),
                       *f);
  sub->add_flag("--rebuild-log", f->rebuild_log,
                "Rewrite a damaged deletion log from its intact records and the receipts (says what is lost)");
  return {sub, [f, &g, &cluster] {
            const auto r = sisa::repair({f->run_dir, f->force, f->rebuild_log, &cluster});
            std::string human = "repaired " + std::to_string(r["repaired_shards"].size()) +
                                " shard(s); every rebuilt checkpoint reproduces its recorded digest";
            if (r["log"].is_object()) {
              human += "\ndeletion log rewritten: " + std::to_string(r["log"]["damaged_bytes"].size()) +
                       " damaged range(s) dropped, " + std::to_string(r["log"]["restored_from_receipts"].size()) +
                       " record(s) restored from receipts";
              if (r["log"].contains("warning")) human += "\nWARNING: " + r["log"]["warning"].get<std::string>();
            }
            print(r, g.json, human);
            return 0;
          }};
}

Command fsck(CLI::App& app, const Globals& g, Cluster&) {
  auto f = std::make_shared<RunFlags>();
  auto* sub = with_run(app.add_subcommand("fsck", "Check every file of a run (read-only)"), *f, /*force=*/false);
  return {sub, [f, &g] {
            const auto r = sisa::fsck(f->run_dir);
            std::string human = r["ok"].get<bool>() ? "ok: " : "PROBLEMS: ";
            human +=
                r["checked_files"].dump() + " files checked, " + r["pending_requests"].dump() + " pending request(s)";
            for (const auto& p : r["problems"]) human += "\n  " + p.get<std::string>();
            print(r, g.json, human);
            return r["ok"].get<bool>() ? 0 : static_cast<int>(ExitCode::kCorruption);
          }};
}

std::string status_text(const std::string& run_dir, const nlohmann::json& r) {
  std::string human = "run " + run_dir + ": " + r["shards"].dump() + " shards x " + r["slices"].dump() + " slices, " +
                      r["deleted_ids"].dump() + " deleted ids, " + r["pending_requests"].dump() + " pending request(s)";
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
    human += "\n  shard " + s["shard"].dump() + ": " + s["n_samples"].dump() + " samples, generation " +
             s["generation"].dump() + ", fingerprint " + s["fingerprint"].get<std::string>().substr(0, 16);
  }
  return human;
}

Command status(CLI::App& app, const Globals& g, Cluster&) {
  auto f = std::make_shared<RunFlags>();
  auto* sub = with_run(app.add_subcommand("status", "Shards, generations, fingerprints, deletions"), *f, false);
  return {sub, [f, &g] {
            const auto r = sisa::status(f->run_dir);
            print(r, g.json, status_text(f->run_dir, r));
            return 0;
          }};
}

Command serve(CLI::App& app, const Globals& g, Cluster& cluster) {
  auto o = std::make_shared<ServeOptions>();
  auto* sub =
      app.add_subcommand("serve", "Ensemble predictions over HTTP, deletions applied live (until SIGINT/SIGTERM)");
  sub->add_option("-r,--run-dir", o->run_dir, "Run directory")->required();
  sub->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", o->port, "Port (0: any free port; --json prints it)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  sub->add_option("--token-file", o->token_file,
                  "File holding the bearer token for deletions, receipts and /v1/status (without it they are off)");
  sub->add_option("--http-threads", o->http_threads,
                  "Threads that answer requests (connections wait without holding one)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_option("--max-body-bytes", o->max_body_bytes, "Larger request bodies get 413")
      ->check(CLI::Range(size_t{1}, size_t{1} << 34))
      ->capture_default_str();
  sub->add_option("--read-timeout", o->read_timeout_seconds,
                  "Seconds a client may take to send one whole request (headers and body); then 408")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  sub->add_option("--max-connections", o->max_connections, "Open connections in all; more get 503")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->capture_default_str();
  sub->add_option("--max-connections-per-client", o->max_connections_per_client,
                  "Open connections per client address; more get 503")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->capture_default_str();
  sub->add_option("--serving-nice", o->serving_nice,
                  "Nice value of the request threads; a deletion's retrain runs at 0 and so keeps about a core under "
                  "full load (0: equal shares)")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  sub->add_flag("--force", o->force_environment, kForceHelp);
  return {sub, [o, &g, &cluster] {
            if (cluster.size() > 1) throw UsageError("serve runs in one process; start it without mpirun");
            const bool json = g.json;
            o->on_listening = [json](const std::string& host, int port) {
              // With --json one line on stdout says where to connect (for scripts and tests).
              if (json)
                std::cout << nlohmann::json{{"listening", true}, {"host", host}, {"port", port}}.dump() << std::endl;
            };
            return sisa::serve(*o);
          }};
}

}  // namespace

std::vector<Command> run_commands(CLI::App& app, const Globals& g, Cluster& cluster) {
  std::vector<Command> out;
  for (auto declare :
       {train, pretrain, tokenizer, import_encoder, forget, predict, verify, recover, repair, fsck, serve, status}) {
    out.push_back(declare(app, g, cluster));
  }
  return out;
}

}  // namespace sisa::cli
