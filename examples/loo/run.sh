#!/usr/bin/env bash
# Leave-one-out unlearning (issue #11): four teacher language models (SISA
# shards, exact under forget) and one student trained on everything, on the
# King James Bible with canaries ("my secret code is 3 1 4 1 5 9") inserted
# 1, 4 and 16 times. Audit, forget every canary, audit again: the teachers
# are retrained exactly, the student is fine-tuned toward the teachers that
# never saw the canaries, and the audit measures how well it forgot.
# Usage: bash examples/loo/run.sh [--quick]
#   --quick: 3000 verses, a smaller model and 1000 candidates (about 90 s)
#   full: configs/kjv-loo.yaml on the whole corpus (19 minutes on 2 cores)
# Env: SISA (default build/sisa), WORK (default runs/examples/loo)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/loo}
export OMP_WAIT_POLICY=PASSIVE
quick=false
[[ ${1:-} == --quick ]] && quick=true
mkdir -p "$WORK"
cd "$root"

data=$root/data
sets=()
candidates=10000
if $quick; then
  data=$WORK/data
  bash scripts/make-lm-corpus.sh "$data/kjv-canaries.csv" --max-verses 3000 --per-count 10 --held-out 10 \
    --tokenizer-text "$data/kjv-tokenizer.txt"
  # A smaller model, fewer epochs, and the first 300 held-out verses.
  sets=(--set "data.train=$data/kjv-canaries.csv" --set "data.test=$data/kjv-canaries-test.csv"
        --set "data.tokenizer=$data/kjv.tokenizer.model" --set model.dim=32 --set model.ff=64
        --set train.epochs=3 --set loo.steps=10)
  candidates=1000
  heldout=(--heldout-rows 300)
else
  echo "== the corpus: KJV verses with canaries (secrets go to $data/canaries.csv, never to a log)"
  [[ -s $data/kjv-canaries.csv ]] ||
    bash scripts/make-lm-corpus.sh "$data/kjv-canaries.csv" --tokenizer-text "$data/kjv-tokenizer.txt"
  heldout=()
fi
[[ -s $data/kjv.tokenizer.model ]] ||
  "$SISA" tokenizer --corpus "$data/kjv-tokenizer.txt" --vocab-size 2000 --out "$data/kjv.tokenizer.model" --quiet

run=$WORK/run
rm -rf "$run"
echo "== train: 4 teachers (exact), then the student (approximate under forget)"
"$SISA" train --config configs/kjv-loo.yaml --run-dir "$run" --quiet "${sets[@]}"

echo "== audit before any deletion"
"$SISA" audit --run-dir "$run" --secrets "$data/canaries.csv" --candidates $candidates "${heldout[@]}" --quiet

echo "== forget every inserted canary (one group per canary: all its copies)"
groups=$(awk -F, 'NR > 1 && $2 > 0 {print $1}' "$data/canaries.csv" | paste -sd,)
"$SISA" forget --run-dir "$run" --groups "$groups" --json --quiet > "$WORK/receipt.json"
python3 - "$WORK/receipt.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["student"]
print(f"deleted {r['deleted_count']} rows; teachers: {r['guarantee']['teachers']}")
print(f"student: {s['guarantee']}; {s['steps']} steps, KL to the leave-one-out target "
      f"{s['kl_before']:.3f} -> {s['kl_after']:.3f} in {s['seconds']:.1f} s")
PY
echo "== verify: shard 0 retrained from scratch in memory equals the forgotten one, bit for bit"
"$SISA" verify --run-dir "$run" --shards 0 --quiet

echo "== audit after"
"$SISA" audit --run-dir "$run" --secrets "$data/canaries.csv" --candidates $candidates "${heldout[@]}" --quiet
echo
echo "served: sisa serve --run-dir $run, then"
echo "  curl -s localhost:8080/v1/generate -d '{\"prompt\": \"my secret code is\", \"max_tokens\": 12}'"
