#include "sisa/placement.h"

namespace sisa {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t tag_hash(std::string_view tag) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : tag) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t derive(uint64_t seed, std::string_view tag, std::initializer_list<uint64_t> words) {
  uint64_t h = mix64(seed ^ mix64(tag_hash(tag)));
  for (uint64_t w : words) h = mix64(h ^ mix64(w));
  return h;
}

int64_t shard_of(uint64_t seed, int64_t key, int64_t shards) {
  return static_cast<int64_t>(derive(seed, "shard", {static_cast<uint64_t>(key)}) % static_cast<uint64_t>(shards));
}

int64_t slice_of(uint64_t seed, int64_t key, int64_t slices) {
  return 1 + static_cast<int64_t>(derive(seed, "slice", {static_cast<uint64_t>(key)}) % static_cast<uint64_t>(slices));
}

int64_t Placement::shard(int64_t key, double weight) const {
  if (!weighted()) return shard_of(seed, key, shards);
  const uint64_t h = derive(seed, "shard", {static_cast<uint64_t>(key)});
  const int64_t light = shards - heavy_shards;
  return heavy(weight) ? light + static_cast<int64_t>(h % static_cast<uint64_t>(heavy_shards))
                       : static_cast<int64_t>(h % static_cast<uint64_t>(light));
}

int64_t Placement::slice(int64_t key, double weight) const {
  if (!heavy(weight)) return slice_of(seed, key, slices);
  const uint64_t h = derive(seed, "slice", {static_cast<uint64_t>(key)});
  return slices - heavy_slices + 1 + static_cast<int64_t>(h % static_cast<uint64_t>(heavy_slices));
}

uint64_t SplitMix64::next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
  // Reject the top partial block so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  uint64_t x;
  do {
    x = next();
  } while (x >= limit);
  return x % bound;
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  SplitMix64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

std::vector<int64_t> batch_bounds(int64_t n, int64_t b) {
  std::vector<int64_t> bounds;
  for (int64_t s = 0; s < n; s += b) bounds.push_back(s);
  if (bounds.size() >= 2 && n - bounds.back() == 1) bounds.pop_back();
  bounds.push_back(n);
  return bounds;
}

}  // namespace sisa
