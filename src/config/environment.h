// The numeric environment that decides floating-point results
// (docs/design.md, "The guarantee"): part of a run's identity. forget/verify compare it to the one
// the run was trained in.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "sisa/config.h"

namespace sisa {

nlohmann::json current_environment(int64_t threads);
// "key: recorded 'a', here 'b'" for every field that differs.
std::vector<std::string> environment_diff(const nlohmann::json& recorded, const nlohmann::json& current);
// The run's identity: the training config's canonical JSON and the numeric
// environment, hashed together (docs/design.md, "The guarantee").
std::string identity_hash(const Config& c, const nlohmann::json& environment);

// Throws EnvironmentError listing the differences unless `force`.
void check_environment(const nlohmann::json& recorded, int64_t threads, bool force, const std::string& run_dir);

}  // namespace sisa
