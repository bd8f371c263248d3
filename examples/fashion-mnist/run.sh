#!/usr/bin/env bash
# Fashion-MNIST end to end: train 5 shards x 4 slices, predict, forget three
# samples, prove the result bit-identical to a retrain, predict again.
# Usage: bash examples/fashion-mnist/run.sh [--quick]
#   --quick: a smaller model and fewer epochs (the same commands; what the tests run)
# Env: SISA (the binary; default build/sisa), WORK (default runs/examples/fashion-mnist)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/fashion-mnist}
export OMP_WAIT_POLICY=PASSIVE
small=()
[[ ${1:-} == --quick ]] && small=(--set train.epochs=3 --set 'model.hidden=[16]' --set sisa.shards=3)
rm -rf "$WORK" && mkdir -p "$WORK"
run="$WORK/run"

echo "== train (the Debian package dataset-fashion-mnist: 60000 training images)"
"$SISA" train --config "$root/configs/fashion-mnist.yaml" --run-dir "$run" "${small[@]}"
echo "== test accuracy"
"$SISA" predict --run-dir "$run" --quiet
echo "== forget three training samples"
"$SISA" forget --run-dir "$run" --ids 17,4711,59999 --json > "$WORK/receipt.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("deleted", r["deleted_count"], "sample(s); retrained shards", [s["shard"] for s in r["shards"]], "; receipt", r["receipt_path"])' "$WORK/receipt.json"
echo "== verify: retrain every shard from scratch without them, compare bit for bit"
"$SISA" verify --run-dir "$run" --quiet
echo "== test accuracy after the deletion"
"$SISA" predict --run-dir "$run" --quiet
"$SISA" status --run-dir "$run"
