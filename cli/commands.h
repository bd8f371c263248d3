// The `sisa` command as a table: each subcommand declares its flags on the
// app and says how it runs (returning its exit code). run_commands.cpp holds
// the commands on a run, lm_commands.cpp those of language models.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "sisa/cluster.h"

namespace sisa::cli {

// Flags every command shares (given before or after the subcommand).
struct Globals {
  bool json = false;
};

struct Command {
  CLI::App* app;             // the subcommand, its flags declared
  std::function<int()> run;  // after a successful parse, when it was chosen
};

// `result` as JSON with --json, else the human line(s).
void print(const nlohmann::json& result, bool json, const std::string& human);

std::vector<Command> run_commands(CLI::App& app, const Globals& g, Cluster& cluster);
std::vector<Command> lm_commands(CLI::App& app, const Globals& g, Cluster& cluster);

}  // namespace sisa::cli
