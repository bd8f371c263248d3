#include "sisa/model_state.h"

#include <stdexcept>

#include "util/sha256.h"

namespace sisa {

const char* dtype_name(DType t) { return t == DType::kFloat32 ? "float32" : "int64"; }

const char* role_name(TensorRole r) {
  switch (r) {
    case TensorRole::kParameter:
      return "parameter";
    case TensorRole::kBuffer:
      return "buffer";
    case TensorRole::kOptimizer:
      return "optimizer";
    case TensorRole::kCounter:
      return "counter";
  }
  return "?";
}

TensorRole role_from_name(const std::string& s) {
  if (s == "parameter") return TensorRole::kParameter;
  if (s == "buffer") return TensorRole::kBuffer;
  if (s == "optimizer") return TensorRole::kOptimizer;
  if (s == "counter") return TensorRole::kCounter;
  throw std::invalid_argument("unknown tensor role '" + s + "'");
}

int64_t TensorBlob::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

const TensorBlob* ModelState::find(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

// The canonical byte stream (docs/design.md, "The guarantee"): per tensor its name,
// dtype, shape and contiguous little-endian bytes, in registration order.
std::string digest(const ModelState& s, bool everything) {
  Sha256 h;
  for (const auto& t : s.tensors) {
    if (!everything && t.role != TensorRole::kParameter && t.role != TensorRole::kBuffer) continue;
    h.update_u64(t.name.size());
    h.update(t.name);
    h.update(dtype_name(t.dtype));
    h.update_u64(t.shape.size());
    for (auto d : t.shape) h.update_u64(static_cast<uint64_t>(d));
    h.update_u64(t.bytes.size());
    h.update(t.bytes.data(), t.bytes.size());
  }
  return h.hex();
}

}  // namespace

std::string ModelState::fingerprint() const { return digest(*this, false); }
std::string ModelState::state_digest() const { return digest(*this, true); }

}  // namespace sisa
