// Dropout, the one implementation every family uses, with masks drawn
// exactly as libtorch draws them, several times faster.
//
// torch::Tensor::bernoulli_(p, generator) on the CPU (libtorch built without
// MKL, as Debian's is) draws every element serially: two outputs of the
// generator's mt19937, a double in [0, 1) from their low 53 bits, compared with
// p. For a 128 x 512 mask that is ~0.4 ms, about half of a SISA-FC step. The
// bits of every checkpoint depend on those draws, so the faster path must make
// the same ones: it copies the generator's mt19937 state, produces the same
// stream in blocks (vectorised where the CPU has AVX2: integer operations
// only, identical on every instruction set), compares in integers
// (x * 2^-53 < p  <=>  x < ceil(p * 2^53), both sides exact), and stores the
// advanced state back. tests/family_test.cpp compares it with bernoulli_ element
// for element and state for state.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace sisa {

// x with each element zeroed with probability p, scaled by 1/(1-p); masks
// drawn from `gen` (bernoulli_mask). Identity when gen is null or p == 0.
torch::Tensor dropout(const torch::Tensor& x, double p, at::Generator* gen);

// A tensor shaped like `like` of 1s (probability p) and 0s: bit for bit
// torch::empty_like(like).bernoulli_(p, gen), and `gen` left in the same state.
// A contiguous float32 tensor and a CPU generator take the fast path; anything
// else calls bernoulli_ itself.
torch::Tensor bernoulli_mask(const torch::Tensor& like, double p, at::Generator& gen);

}  // namespace sisa
