#include "run/deletion_cost.h"

#include <unordered_set>

namespace sisa {

nlohmann::json expected_deletion_cost(const std::vector<ShardData>& shards, const Config& c) {
  const int64_t R = c.sisa.slices;
  const auto epochs = stage_epochs(c.train.epochs, R);
  double weighted = 0.0, weight_sum = 0.0, per_key = 0.0, full = 0.0;
  int64_t keys = 0;
  for (const ShardData& s : shards) {
    // cost[r]: retraining stages r..R of this shard.
    std::vector<double> in_slice(static_cast<size_t>(R) + 2, 0.0), cost(static_cast<size_t>(R) + 2, 0.0);
    for (int32_t r : s.slice) in_slice[r] += 1.0;
    std::vector<double> upto(static_cast<size_t>(R) + 1, 0.0);
    for (int64_t r = 1; r <= R; ++r) upto[r] = upto[r - 1] + in_slice[r];
    for (int64_t r = R; r >= 1; --r) cost[r] = cost[r + 1] + static_cast<double>(epochs[r]) * upto[r];
    full += cost[1];
    std::unordered_set<int64_t> seen;  // a group's rows share its shard, slice and weight: count it once
    for (size_t i = 0; i < s.rows.size(); ++i) {
      if (!seen.insert(s.rows.key(i)).second) continue;
      const double w = s.rows.weight(i), k = cost[s.slice[i]];
      weighted += w * k;
      weight_sum += w;
      per_key += k;
      ++keys;
    }
  }
  const double uniform = keys > 0 ? per_key / static_cast<double>(keys) : 0.0;
  return {{"weighted", weight_sum > 0 ? weighted / weight_sum : uniform},
          {"per_key", uniform},
          {"full_retrain", full},
          {"unit", "sample-epochs"}};
}

}  // namespace sisa
