#!/usr/bin/env bash
# Every suite under AddressSanitizer + UndefinedBehaviorSanitizer (slow: the
# libtorch translation units compile ~3x slower). libtorch itself is not
# instrumented and keeps allocations until exit, so leak checking is off here;
# scripts/test.sh runs the torch-free units with it on. A failed allocation
# returns null (as glibc does) instead of aborting: the huge-page allocator's
# test asks for 1 PiB and expects libtorch's out-of-memory error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSISA_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$(nproc)"
export OMP_WAIT_POLICY=PASSIVE ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1
cd build-asan
ctest -j2 --output-on-failure --timeout 3600
