#include "lm/audit_stats.h"

#include <algorithm>
#include <cmath>

namespace sisa {
namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

SkewNormal SkewNormal::fit(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  double mean = 0.0;
  for (double v : x) mean += v;
  mean /= n;
  double m2 = 0.0, m3 = 0.0;
  for (double v : x) {
    m2 += (v - mean) * (v - mean);
    m3 += (v - mean) * (v - mean) * (v - mean);
  }
  m2 /= n;
  m3 /= n;
  double g = m2 > 0.0 ? m3 / std::pow(m2, 1.5) : 0.0;
  g = std::clamp(g, -0.99, 0.99);  // the skew-normal's skewness lies in (-0.9953, 0.9953)
  const double a = std::pow(std::abs(g), 2.0 / 3.0);
  const double delta = (g < 0 ? -1.0 : 1.0) * std::sqrt(kPi / 2.0 * a / (a + std::pow((4.0 - kPi) / 2.0, 2.0 / 3.0)));
  SkewNormal s;
  s.alpha = delta / std::sqrt(1.0 - delta * delta);
  s.omega = std::sqrt(std::max(m2, 1e-300) / (1.0 - 2.0 * delta * delta / kPi));
  s.xi = mean - s.omega * delta * std::sqrt(2.0 / kPi);
  return s;
}

// The density 2 phi(z) Phi(alpha z) / omega, integrated over z (no
// 1 - (1 - p) cancellation in the far left tail).
double SkewNormal::cdf(double x) const {
  const double z = (x - xi) / omega;
  if (z > 40.0) return 1.0;
  const double lo = std::min(z, 0.0) - 40.0, h = (z - lo) / 8000.0;
  auto pdf = [&](double t) { return 2.0 * std::exp(-0.5 * t * t) / std::sqrt(2.0 * kPi) * normal_cdf(alpha * t); };
  double sum = pdf(lo) + pdf(z);
  for (int i = 1; i < 8000; ++i) sum += pdf(lo + i * h) * (i % 2 == 1 ? 4.0 : 2.0);
  return std::min(1.0, sum * h / 3.0);
}

double auc(const std::vector<double>& members, const std::vector<double>& others) {
  if (members.empty() || others.empty()) return std::nan("");
  double wins = 0.0;
  for (double a : members) {
    for (double b : others) wins += a < b ? 1.0 : (a == b ? 0.5 : 0.0);
  }
  return wins / static_cast<double>(members.size() * others.size());
}

double auc_standard_error(double a, size_t members, size_t others) {
  if (std::isnan(a) || members == 0 || others == 0) return std::nan("");
  const double m = static_cast<double>(members), o = static_cast<double>(others);
  const double q1 = a / (2.0 - a), q2 = 2.0 * a * a / (1.0 + a);
  return std::sqrt((a * (1.0 - a) + (m - 1.0) * (q1 - a * a) + (o - 1.0) * (q2 - a * a)) / (m * o));
}

double sum_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}

double standard_error(const std::vector<double>& v) {
  if (v.size() < 2) return std::nan("");
  const double mean = sum_of(v) / static_cast<double>(v.size());
  double ss = 0.0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()));
}

}  // namespace sisa
