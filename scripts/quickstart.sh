#!/usr/bin/env bash
# From a fresh machine: install, build, then the main job on Fashion-MNIST:
# train 5 shards, forget 10 ids, prove the result exact, compare accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
export OMP_WAIT_POLICY=PASSIVE
SISA=./build/sisa
RUN=${RUN:-runs/fashion-mnist}
rm -rf "$RUN"
$SISA train --config configs/fashion-mnist.yaml --run-dir "$RUN"
echo "== test accuracy before forgetting"
$SISA predict --run-dir "$RUN" --quiet
$SISA forget --run-dir "$RUN" --ids 17,4711,59999,123,2024,31337,40000,5,808,27182
echo "== retraining every shard from scratch to prove the deletion exact"
$SISA verify --run-dir "$RUN"
echo "== test accuracy after forgetting"
$SISA predict --run-dir "$RUN" --quiet
$SISA status --run-dir "$RUN"
