#!/usr/bin/env bash
# Text (issue #10): pretrain a backbone on public text, then plain SISA (full
# fine-tuning), SISA-A (adapters) and SISA-FC (a head over frozen features) on
# the WordNet gloss task; forget two glosses from each, verify bit for bit,
# and print a table.
# Usage: bash examples/text/run.sh [--quick]
#   --quick: a tiny backbone on part of the corpus and every 35th gloss (a minute or two)
#   full: configs/backbone-small.yaml (about 20 minutes) and the whole task (about 30 more)
# Env: SISA (default build/sisa), WORK (default runs/examples/text)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/text}
export OMP_WAIT_POLICY=PASSIVE
quick=false
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
[[ ${1:-} == --quick ]] && quick=true
mkdir -p "$WORK"
cd "$root"

echo "== the data: the pretraining corpus (KJV + GCIDE minus WordNet) and the WordNet task"
data=$root/data
$quick && data=$WORK/data
mkdir -p "$data"
[[ -s $data/pretrain-corpus.txt ]] || python3 scripts/make_pretrain_corpus.py "$data/pretrain-corpus.txt"
[[ -s $data/wordnet/train.csv ]] || python3 scripts/make_wordnet_csv.py "$data/wordnet"
sets=()
if $quick; then
  head -n 6000 "$data/pretrain-corpus.txt" > "$WORK/corpus.txt"
  # Every 35th gloss (ids are sorted by part of speech and offset, so not the first ones).
  awk 'NR == 1 || NR % 35 == 0' "$data/wordnet/train.csv" > "$WORK/train.csv"
  awk 'NR == 1 || NR % 20 == 0' "$data/wordnet/test.csv" > "$WORK/test.csv"
  cat > "$WORK/backbone.yaml" <<YAML
seed: 1
corpus: corpus.txt
tokenizer: {vocab_size: 1000}
encoder: {dim: 32, layers: 1, heads: 2, ff: 64, max_len: 32}
train: {steps: 60, batch_size: 32, warmup: 10, lr: 0.002, threads: 2}
YAML
  backbone_config="$WORK/backbone.yaml"
  backbone="$WORK/backbone.h5"
  train_csv="$WORK/train.csv"
  sets=(--set "data.train=$WORK/train.csv" --set "data.test=$WORK/test.csv" --set train.epochs=3
        --set "data.tokenizer=$WORK/backbone.tokenizer.model")
else
  backbone_config=configs/backbone-small.yaml
  backbone=$root/backbones/small.h5
  train_csv=$data/wordnet/train.csv
fi

echo "== pretrain the backbone ($backbone)"
if [[ ! -s $backbone ]]; then
  "$SISA" pretrain --config "$backbone_config" --out "$backbone" --quiet
fi

printf '%s\n' "| variant | accuracy (mean) | train | forget 2 glosses | checkpoint bytes | verify |" \
              "|---|---|---|---|---|---|" > "$WORK/table.md"
for variant in transformer sisa-a sisa-fc; do
  run="$WORK/run-$variant"
  rm -rf "$run"
  echo "== $variant: train"
  start=$(date +%s.%N)
  "$SISA" train --config "configs/wordnet-$variant.yaml" --run-dir "$run" --quiet "${sets[@]}" \
    --set "model.backbone=$backbone"
  trained=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f} s')" "$start" "$(date +%s.%N)")
  acc=$("$SISA" predict --run-dir "$run" --json | field accuracy_mean | awk '{printf "%.1f%%", 100 * $1}')
  echo "== $variant: forget two glosses, then verify"
  ids=$(sed -n '2p;3p' "$train_csv" | cut -d, -f1 | paste -sd,)
  forgot=$("$SISA" forget --run-dir "$run" --ids "$ids" --json --quiet | field total_seconds | awk '{printf "%.2f s", $1}')
  "$SISA" verify --run-dir "$run" --quiet
  bytes=$(python3 -c 'import glob,os,statistics,sys; print(int(statistics.mean(os.path.getsize(f) for f in glob.glob(sys.argv[1] + "/ckpt/**/*.h5", recursive=True))))' "$run")
  echo "| $variant | $acc | $trained | $forgot | $bytes | identical |" >> "$WORK/table.md"
done
echo
cat "$WORK/table.md"
