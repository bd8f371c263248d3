#!/usr/bin/env bash
# The whole test suite from a fresh machine: install, build, then
#  1. the torch-free units under AddressSanitizer + UndefinedBehaviorSanitizer,
#  2. cmake --install, and a program built against the installed package,
#  3. every suite with ctest (unit, exactness, CLI, durability incl. real SIGKILLs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
# OpenMP must not spin when tests run two at a time on two cores.
export OMP_WAIT_POLICY=PASSIVE

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSISA_SANITIZE=ON >/dev/null
cmake --build build-asan --target unit_test -j "$(nproc)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" \
  ./build-asan/unit_test --gtest_brief=1

# The installed library, as another project uses it (examples/cpp-library).
bash scripts/test-install.sh

cd build
ctest -j2 --output-on-failure --timeout 900
