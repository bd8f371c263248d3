// The statistics of the LOO update's stopping rule (loo.stop: criterion,
// docs/loo.md "When the update stops"), torch-free so they are unit-tested
// alone: per deleted group (a data subject, or a row), the z of its mean
// excess log-likelihood against the held-out rows', and the levels the
// largest and the mean z must fall to.
#pragma once

#include <cstdint>
#include <vector>

namespace sisa {

struct GroupZ {
  double max_z = 0.0, mean_z = 0.0;
};
// heldout: each held-out row's excess (>= 2 rows); deleted: each deleted
// row's; group_of_row: each deleted row's group in [0, groups).
GroupZ group_z(const std::vector<double>& heldout, const std::vector<double>& deleted,
               const std::vector<int64_t>& group_of_row, int64_t groups);

// The levels for `groups` groups: the one-sided 5% normal level with
// Bonferroni's correction for the largest z, Phi^-1(1 - 0.05/G), and the
// 5% level of a mean of G z's for the mean, 1.645/sqrt(G).
GroupZ criterion_levels(int64_t groups);

// z with P(Z > z) = p for a standard normal Z.
double upper_normal_quantile(double p);

}  // namespace sisa
