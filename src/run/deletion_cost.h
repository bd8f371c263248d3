// The SISA cost model of one deletion, in sample-epochs: retraining stages
// r*..R of the key's shard costs sum_{r >= r*} e_r N_{s,<=r}, where N_{s,<=r}
// counts the shard's samples in slices 1..r and e_r is stage r's epochs.
// Averaged over the keys (ids, or groups when grouped), each weighted by the
// user's deletion weight, it is what a deletion costs on average under the
// run's placement (docs/design.md, "Distribution-aware placement").
#pragma once

#include <nlohmann/json.hpp>

#include <vector>

#include "sisa/config.h"
#include "sisa/shard_trainer.h"

namespace sisa {

// {"weighted": E_w, "per_key": E_u, "full_retrain": F} in sample-epochs:
// the weighted expectation (E_u when no key weighs anything), the
// expectation with every key equally likely, and a retrain of every shard.
nlohmann::json expected_deletion_cost(const std::vector<ShardData>& shards, const Config& c);

}  // namespace sisa
