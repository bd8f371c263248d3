#!/usr/bin/env bash
# The whole test suite from a fresh machine: install, build, ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
# OpenMP must not spin when tests run two at a time on two cores.
export OMP_WAIT_POLICY=PASSIVE
cd build
ctest -j2 --output-on-failure --timeout 900
