#include "nn/huge_page_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace sisa {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
// glibc serves allocations above its mmap threshold (adaptive, at most
// 32 MiB) with a fresh mapping and unmaps it on free, so every use of such
// a tensor faults all its pages again; smaller ones reuse its heap. Only
// the former are worth the advice (measured: the same speed either way
// for 2-32 MiB tensors).
constexpr size_t kMapped = size_t{32} << 20;

// Aligned to a huge page, so the whole block can be backed by them; freed
// by free() like alloc_cpu's blocks. Out of memory is libtorch's own error,
// naming the size, as alloc_cpu reports it.
void* huge_page_aligned(size_t n) {
  void* p = nullptr;
  TORCH_CHECK(posix_memalign(&p, kHugePage, n) == 0, "not enough memory: you tried to allocate ", n,
              " bytes (sisa's huge-page allocator; SISA_HUGE_PAGES=0 turns it off)");
  madvise(p, n & ~(kHugePage - 1), MADV_HUGEPAGE);  // advice: failure leaves 4 KiB pages
  return p;
}

class HugePageAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    void* p = n < kMapped ? c10::alloc_cpu(n) : huge_page_aligned(n);
    return {p, p, &c10::free_cpu, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &c10::free_cpu; }
};

}  // namespace

void install_huge_page_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("SISA_HUGE_PAGES");
    if (env != nullptr && std::strcmp(env, "0") == 0) return;
    // Never destroyed: libtorch allocates through it until the process ends.
    c10::SetCPUAllocator(new HugePageAllocator, /*priority=*/1);
  });
}

}  // namespace sisa
