#!/usr/bin/env bash
# The bits a refactoring must not change (issue #24): every shard's
# fingerprint and state digest (and the LOO student's) after train and after
# forget, for the quickstart (Fashion-MNIST, 10 ids), the grouped-CSV example
# (one data subject), the text example's three families (--quick) and the
# LOO example (--quick). Run it with the build before a change and with the
# build after, and compare the two files: they must be identical.
# Usage: bash scripts/fingerprints.sh OUT.txt   Env: SISA (default build/sisa), WORK
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1")
export SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/fingerprints}
export OMP_WAIT_POLICY=PASSIVE
rm -rf "$WORK" && mkdir -p "$WORK"
: > "$out"
digests() {  # label run: one line per shard (and the student)
  "$SISA" status --run-dir "$2" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
for sh in s["shard_status"]:
    print(sys.argv[1], "shard", sh["shard"], sh["fingerprint"], sh["state_digest"])
st = s.get("student") or {}
if st.get("fingerprint"):
    print(sys.argv[1], "student", st["fingerprint"], st.get("state_digest", ""))
' "$1" >> "$out"
}
echo "== quickstart: train, forget 10 ids"
"$SISA" train -q --config "$root/configs/fashion-mnist.yaml" --run-dir "$WORK/fmnist"
digests quickstart-train "$WORK/fmnist"
"$SISA" forget -q --run-dir "$WORK/fmnist" --ids 17,4711,59999,123,2024,31337,40000,5,808,27182
digests quickstart-forget "$WORK/fmnist"
echo "== grouped CSV"
WORK=$WORK/groups bash "$root/examples/csv-groups/run.sh" > /dev/null
digests csv-groups-forget "$WORK/groups/run"
echo "== text families (--quick)"
WORK=$WORK/text bash "$root/examples/text/run.sh" --quick --backbone own > /dev/null
for v in transformer sisa-a sisa-fc; do digests "text-$v-forget" "$WORK/text/run-$v"; done
echo "== LOO (--quick)"
WORK=$WORK/loo bash "$root/examples/loo/run.sh" --quick > /dev/null
digests loo-forget "$WORK/loo/run"
wc -l < "$out"
