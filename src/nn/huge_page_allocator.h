// libtorch's CPU allocator, with transparent huge pages for large tensors.
#pragma once

namespace sisa {

// Installs (once per process) a CPU allocator that asks the kernel for
// transparent huge pages (madvise MADV_HUGEPAGE) on every allocation of
// 32 MiB or more. Why: the default allocator hands such tensors to glibc,
// which maps them afresh and unmaps them on free, so each step faults all
// their 4 KiB pages again. A language-model update over [rows, 48, vocab]
// tensors faulted ~3 million pages per deletion and ran 2x slower
// (docs/benchmarks.md). Addresses and alignment do not enter any kernel's
// arithmetic: results are unchanged, bit for bit (tests compare
// fingerprints across runs). SISA_HUGE_PAGES=0 keeps the default allocator.
void install_huge_page_allocator();

}  // namespace sisa
