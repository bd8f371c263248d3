// The `sisa` command: parse flags, call the library, print, map errors to
// the exit codes of docs/cli.md. No logic of its own.
#include <CLI/CLI.hpp>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "commands.h"
#include "sisa/cluster.h"
#include "sisa/errors.h"
#include "sisa/logging.h"

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

namespace sisa::cli {

void print(const nlohmann::json& result, bool json, const std::string& human) {
  if (json) {
    std::cout << result.dump(2) << std::endl;
  } else if (!human.empty()) {
    std::cout << human << std::endl;
  }
}

}  // namespace sisa::cli

// The command line as a table of subcommands (cli/commands.h): each declares
// its flags; the one chosen runs; an error's type is the exit code.
int run_command(int argc, char** argv, sisa::Cluster& cluster) {
  CLI::App app{
      "sisa: exact machine unlearning by SISA training (sharded, isolated, sliced, "
      "aggregated).\nExit codes: 0 ok, 1 internal, 2 usage/config, 3 data/unknown id, "
      "4 corruption, 5 locked, 6 environment mismatch, 7 I/O, 8 verify mismatch, 9 interrupted."};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  bool quiet = false, verbose = false;
  sisa::cli::Globals globals;
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors on stderr");
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  app.add_flag("--json", globals.json, "Print the result as JSON on stdout");
  auto commands = sisa::cli::run_commands(app, globals, cluster);
  for (auto& c : sisa::cli::lm_commands(app, globals, cluster)) commands.push_back(std::move(c));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : static_cast<int>(sisa::ExitCode::kUsage);
  }
  sisa::init_logging(quiet     ? sisa::Verbosity::kQuiet
                     : verbose ? sisa::Verbosity::kVerbose
                               : sisa::Verbosity::kNormal,
                     cluster.size() > 1 ? cluster.rank() : -1);
  try {
    for (const auto& c : commands) {
      if (*c.app) return c.run();
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
