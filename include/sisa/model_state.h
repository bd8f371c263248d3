// Everything a checkpoint holds, as named little-endian byte blobs, so the
// file format, hashing and comparison never need libtorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sisa {

enum class DType : uint8_t { kFloat32 = 0, kInt64 = 1 };
// kParameter and kBuffer decide predictions (the fingerprint); kOptimizer and
// kCounter are what later training reads (added in the state digest).
enum class TensorRole : uint8_t { kParameter = 0, kBuffer = 1, kOptimizer = 2, kCounter = 3 };

const char* dtype_name(DType t);
const char* role_name(TensorRole r);
TensorRole role_from_name(const std::string& s);  // throws CorruptionError-free std::invalid_argument

struct TensorBlob {
  std::string name;
  TensorRole role = TensorRole::kParameter;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // contiguous, little-endian

  int64_t numel() const;
};

struct ModelState {
  std::vector<TensorBlob> tensors;  // registration order

  const TensorBlob* find(const std::string& name) const;
  // SHA-256 (hex) over (name, dtype, shape, bytes) of parameters and buffers.
  std::string fingerprint() const;
  // Same, over every tensor: adds optimizer state and counters.
  std::string state_digest() const;
};

}  // namespace sisa
