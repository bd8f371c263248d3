#!/usr/bin/env bash
# Training and deletion on 3 MPI ranks: rank 0 coordinates (it alone writes
# the run directory), ranks 1 and 2 train shards as they become free. The
# result is bit-identical to a single-process run; the script checks that.
# Usage: bash examples/mpirun/run.sh [--quick]   (--quick: a small model, 3 epochs)
# Env: SISA (default build/sisa), WORK (default runs/examples/mpirun), MPIRUN_ARGS (extra mpirun flags)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/mpirun}
export OMP_WAIT_POLICY=PASSIVE
small=()
[[ ${1:-} == --quick ]] && small=(--set train.epochs=3 --set 'model.hidden=[16]' --set sisa.shards=4)
# More ranks than cores is fine here (rank 0 mostly waits); OpenMPI refuses to run as root unless told.
mpi=(mpirun -np 3 --oversubscribe)
[[ $(id -u) == 0 ]] && mpi+=(--allow-run-as-root)
# shellcheck disable=SC2206
mpi+=(${MPIRUN_ARGS:-})
rm -rf "$WORK" && mkdir -p "$WORK"

echo "== train on 3 ranks"
"${mpi[@]}" "$SISA" train --config "$root/configs/fashion-mnist.yaml" --run-dir "$WORK/mpi" "${small[@]}" --quiet
echo "== forget on 3 ranks: the retrains go to the worker ranks"
"${mpi[@]}" "$SISA" forget --run-dir "$WORK/mpi" --ids 17,4711,59999,31337 --json > "$WORK/receipt.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("retrained", [(s["shard"], "rank %d" % s["rank"]) for s in r["shards"]])' "$WORK/receipt.json"
echo "== verify on 3 ranks"
"${mpi[@]}" "$SISA" verify --run-dir "$WORK/mpi" --quiet
echo "== the same in one process, then compare the shards' fingerprints"
"$SISA" train --config "$root/configs/fashion-mnist.yaml" --run-dir "$WORK/one" "${small[@]}" --quiet
"$SISA" forget --run-dir "$WORK/one" --ids 17,4711,59999,31337 --quiet
fingerprints() { "$SISA" status --run-dir "$1" --json | python3 -c 'import json,sys; print([s["fingerprint"] for s in json.load(sys.stdin)["shard_status"]])'; }
a=$(fingerprints "$WORK/mpi"); b=$(fingerprints "$WORK/one")
echo "3 ranks:   $a"
echo "1 process: $b"
test "$a" == "$b" && echo "identical: the number of ranks never changes a bit"
