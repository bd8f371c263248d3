#include "nn/dropout.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <mutex>

namespace sisa {
namespace {

// at::mt19937 (ATen/core/MT19937RNGEngine.h), restated over its plain state so
// that a whole block is produced in one loop the compiler can vectorise.
constexpr int kN = at::MERSENNE_STATE_N, kM = at::MERSENNE_STATE_M;

inline uint32_t temper(uint32_t y) {
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return y;
}

inline uint32_t twist(uint32_t u, uint32_t v) {
  return (((u & at::UMASK) | (v & at::LMASK)) >> 1) ^ ((v & 1u) ? at::MATRIX_A : 0u);
}

__attribute__((always_inline)) inline void next_state(at::mt19937_data_pod& d) {
  uint32_t* s = d.state_.data();
  for (int i = 0; i < kN - kM; ++i) s[i] = s[i + kM] ^ twist(s[i], s[i + 1]);
  for (int i = kN - kM; i < kN - 1; ++i) s[i] = s[i + kM - kN] ^ twist(s[i], s[i + 1]);
  s[kN - 1] = s[kM - 1] ^ twist(s[kN - 1], s[0]);
  d.left_ = kN;
  d.next_ = 0;
}

// n outputs, as n calls of at::mt19937::operator() give them: each call
// decrements left_ and regenerates the state when it reaches 0.
__attribute__((always_inline)) inline void draw(at::mt19937_data_pod& d, uint32_t* out, int64_t n) {
  while (n > 0) {
    const int64_t k = std::min<int64_t>(n, d.left_ - 1);
    const uint32_t* s = d.state_.data() + d.next_;
    for (int64_t i = 0; i < k; ++i) out[i] = temper(s[i]);
    d.next_ += static_cast<uint32_t>(k);
    d.left_ -= static_cast<int>(k);
    out += k;
    n -= k;
    if (n > 0) {
      next_state(d);
      *out++ = temper(d.state_[d.next_++]);
      --n;
    }
  }
}

// One element per two outputs (CPUGeneratorImpl::random64: the first is the
// high word), kept when its low 53 bits fall below the threshold.
__attribute__((target_clones("avx2", "default"))) void fill_mask(at::mt19937_data_pod& d, int64_t threshold,
                                                                 float* out, int64_t n) {
  constexpr int64_t kChunk = 2048;
  constexpr uint64_t kLow53 = (uint64_t{1} << 53) - 1;
  uint32_t words[2 * kChunk];
  for (int64_t at = 0; at < n; at += kChunk) {
    const int64_t m = std::min(kChunk, n - at);
    draw(d, words, 2 * m);
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t r = (static_cast<uint64_t>(words[2 * i]) << 32) | words[2 * i + 1];
      out[at + i] = static_cast<int64_t>(r & kLow53) < threshold ? 1.0f : 0.0f;
    }
  }
}

}  // namespace

torch::Tensor bernoulli_mask(const torch::Tensor& like, double p, at::Generator& gen) {
  auto* cpu = gen.defined() && gen.device().is_cpu() ? gen.get<at::CPUGeneratorImpl>() : nullptr;
  if (!cpu || like.scalar_type() != torch::kFloat32 || !like.device().is_cpu() || !like.is_contiguous() ||
      !(p >= 0.0 && p <= 1.0)) {
    return torch::empty_like(like).bernoulli_(p, gen);
  }
  auto mask = torch::empty_like(like);  // contiguous like `like`: elements in the order bernoulli_ fills them
  // uniform x = r * 2^-53 (exact), kept when x < p: for an integer r that is
  // r < p * 2^53 (exact: a power-of-two scale), i.e. r < ceil(p * 2^53).
  const auto threshold = static_cast<int64_t>(std::ceil(std::ldexp(p, 53)));
  std::lock_guard<std::mutex> lock(cpu->mutex_);  // as bernoulli_ holds it
  at::mt19937 engine = cpu->engine();
  at::mt19937_data_pod state = engine.data();
  fill_mask(state, threshold, mask.data_ptr<float>(), mask.numel());
  engine.set_data(state);
  cpu->set_engine(engine);
  return mask;
}

torch::Tensor dropout(const torch::Tensor& x, double p, at::Generator* gen) {
  if (!gen || p <= 0.0) return x;
  const double keep = 1.0 - p;
  return x * bernoulli_mask(x, keep, *gen) / keep;
}

}  // namespace sisa
