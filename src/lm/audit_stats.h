// The statistics of `sisa audit` (lm/audit.cpp), apart from the models so
// they can be tested against known values (tests/unit_test.cpp): the
// skew-normal that extrapolates a canary's rank (Carlini et al. 2019,
// section 5.1), a loss-threshold attack's AUC with its standard error
// (Hanley & McNeil 1982), and the standard error of a mean.
#pragma once

#include <cstddef>
#include <vector>

namespace sisa {

// P(Z <= z) for a standard normal Z.
double normal_cdf(double z);

// A skew-normal (location xi, scale omega, shape alpha).
struct SkewNormal {
  double xi = 0.0, omega = 1.0, alpha = 0.0;
  // Fitted to samples by the method of moments (Azzalini); the sample
  // skewness is clamped into the family's range (-0.99, 0.99).
  static SkewNormal fit(const std::vector<double>& x);
  // P(X <= x), integrated by Simpson's rule from 40 standard units below,
  // so a far left tail keeps its relative precision.
  double cdf(double x) const;
};

// P(member loss < non-member loss) + half the ties: the AUC of an attack
// that calls a sequence a member when its loss is below a threshold. NaN if
// either group is empty.
double auc(const std::vector<double>& members, const std::vector<double>& others);
// The AUC's standard error (Hanley & McNeil 1982) from the AUC and the two
// group sizes; NaN where the AUC is.
double auc_standard_error(double a, size_t members, size_t others);

double sum_of(const std::vector<double>& v);
// The standard error of a mean (sample deviation / sqrt(n)); NaN below 2 values.
double standard_error(const std::vector<double>& v);

}  // namespace sisa
