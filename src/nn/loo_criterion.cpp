#include "nn/loo_criterion.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sisa {

GroupZ group_z(const std::vector<double>& heldout, const std::vector<double>& deleted,
               const std::vector<int64_t>& group_of_row, int64_t groups) {
  double mean = 0.0, ss = 0.0;
  for (double g : heldout) mean += g;
  mean /= static_cast<double>(heldout.size());
  for (double g : heldout) ss += (g - mean) * (g - mean);
  const double sd = std::max(std::sqrt(ss / static_cast<double>(heldout.size() - 1)), 1e-12);
  std::vector<double> sum(static_cast<size_t>(groups), 0.0), count(sum.size(), 0.0);
  for (size_t i = 0; i < deleted.size(); ++i) {
    sum[static_cast<size_t>(group_of_row[i])] += deleted[i];
    count[static_cast<size_t>(group_of_row[i])] += 1.0;
  }
  GroupZ out;
  out.max_z = -std::numeric_limits<double>::infinity();
  for (size_t g = 0; g < sum.size(); ++g) {
    const double z = (sum[g] / count[g] - mean) / sd;
    out.max_z = std::max(out.max_z, z);
    out.mean_z += z / static_cast<double>(sum.size());
  }
  return out;
}

GroupZ criterion_levels(int64_t groups) {
  const auto g = static_cast<double>(groups);
  return {upper_normal_quantile(0.05 / g), upper_normal_quantile(0.05) / std::sqrt(g)};
}

double upper_normal_quantile(double p) {  // bisection on erfc
  double lo = -10.0, hi = 40.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace sisa
