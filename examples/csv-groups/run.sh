#!/usr/bin/env bash
# A CSV with a group column: forget a data subject (every row of person 7).
# Usage: bash examples/csv-groups/run.sh [--quick]   (--quick: 60 people instead of 300)
# Env: SISA (default build/sisa), WORK (default runs/examples/csv-groups)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/csv-groups}
export OMP_WAIT_POLICY=PASSIVE
people=300
[[ ${1:-} == --quick ]] && people=60
rm -rf "$WORK" && mkdir -p "$WORK"
python3 "$here/make_data.py" "$WORK/data.csv" "$people" 10
cp "$here/config.yaml" "$WORK/config.yaml"
run="$WORK/run"

echo "== train on $people people x 10 rows"
"$SISA" train --config "$WORK/config.yaml" --run-dir "$run" --quiet
before=$("$SISA" predict --run-dir "$run" --split train --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples"])')
echo "== forget person 7 (a data subject: all of their rows)"
"$SISA" forget --run-dir "$run" --groups 7 --json > "$WORK/receipt.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("deleted ids", r["deleted_ids"], "from shard(s)", [s["shard"] for s in r["shards"]])' "$WORK/receipt.json"
after=$("$SISA" predict --run-dir "$run" --split train --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples"])')
echo "training samples held: $before before, $after after"
echo "== verify and check every file"
"$SISA" verify --run-dir "$run" --quiet
"$SISA" fsck --run-dir "$run"
# Nothing of person 7 is left in the run directory (ids are kept in the log and receipt only).
test "$((before - after))" -eq 10
