// Where a sample lives and in which order it is seen: pure functions of
// (seed, key, ...), so deleting one sample never moves another and a resumed
// shard sees the same order as one trained from scratch. Pinned by test
// vectors in tests/unit_test.cpp; change the hash and you must bump
// kPlacementVersion (stored in every run).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace sisa {

inline constexpr int kPlacementVersion = 1;

// SplitMix64 finalizer: a bijection on 64-bit words with full avalanche.
uint64_t mix64(uint64_t x);
// 64-bit FNV-1a of a short tag ("shard", "slice", "order", ...).
uint64_t tag_hash(std::string_view tag);
// H(seed, tag, w...): chained mix64 over the words.
uint64_t derive(uint64_t seed, std::string_view tag, std::initializer_list<uint64_t> words);

// shard(k) = H(seed, "shard", k) mod S, in [0, S).
int64_t shard_of(uint64_t seed, int64_t key, int64_t shards);
// slice(k) = 1 + H(seed, "slice", k) mod R, in [1, R].
int64_t slice_of(uint64_t seed, int64_t key, int64_t slices);

// Distribution-aware placement (the SISA paper's, `sisa.placement: weighted`):
// a key whose user-given deletion weight is at least `heavy_weight` goes to
// the last `heavy_shards` shards and the last `heavy_slices` slices, where
// deleting it retrains little; every other key to the other shards and any
// slice. Still a pure function of (seed, key, weight), so stable under
// deletion. With heavy_shards == 0 it is shard_of / slice_of exactly.
struct Placement {
  uint64_t seed = 0;
  int64_t shards = 1, slices = 1;
  int64_t heavy_shards = 0, heavy_slices = 0;
  double heavy_weight = 0.0;

  bool weighted() const { return heavy_shards > 0; }
  // Weights are stored as float: the threshold is compared as a float too, so
  // a weight written as exactly the threshold (0.7) is heavy.
  bool heavy(double weight) const {
    return weighted() && static_cast<float>(weight) >= static_cast<float>(heavy_weight);
  }
  int64_t shard(int64_t key, double weight) const;
  int64_t slice(int64_t key, double weight) const;
};

// A deterministic 64-bit stream (SplitMix64), independent of any library RNG.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform in [0, bound), unbiased (rejection sampling).
  uint64_t below(uint64_t bound);

 private:
  uint64_t state_;
};

// Fisher-Yates permutation of 0..n-1 driven by SplitMix64(seed).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

// Batch boundaries for n samples at batch size b; a final batch of size 1 is
// merged into the previous one (BatchNorm cannot train on one sample).
// Returns the start offsets plus n at the end.
std::vector<int64_t> batch_bounds(int64_t n, int64_t b);

}  // namespace sisa
