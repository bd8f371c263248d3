#!/usr/bin/env bash
# Bring your own PyTorch model: a LoRA classifier scripted in Python
# (model.py) trains as SISA shards with `sisa`, forgets three images exactly,
# is verified bit for bit, and is served over HTTP.
# Usage: bash examples/bring-your-model/run.sh [--quick]   (--quick: 3 shards, 2 epochs)
# Env: SISA (default build/sisa), WORK (default runs/examples/bring-your-model),
#      PYTHON (a Python with PyTorch 1.13; default: the first of python3, /usr/bin/python3 that has it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/bring-your-model}
export OMP_WAIT_POLICY=PASSIVE
small=()
[[ ${1:-} == --quick ]] && small=(--set train.epochs=2 --set sisa.shards=3 --set sisa.slices=2)
if [[ -z ${PYTHON:-} ]]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import torch' 2>/dev/null; then PYTHON=$p; break; fi
  done
fi
if [[ -z ${PYTHON:-} ]]; then
  echo "run.sh: needs PyTorch for Python to script the model (Debian: apt-get install python3-torch)" >&2
  exit 3
fi
rm -rf "$WORK" && mkdir -p "$WORK"
run="$WORK/run"

echo "== script the model in Python (model.py)"
"$PYTHON" "$here/model.py" "$WORK/model.pt"
cp "$here/config.yaml" "$WORK/config.yaml"

echo "== train it as SISA shards (Fashion-MNIST, 60000 images)"
"$SISA" train --config "$WORK/config.yaml" --run-dir "$run" "${small[@]}" --quiet
"$SISA" predict --run-dir "$run" --quiet
echo "module (frozen part included, one shared copy): $(du -b "$run"/artifacts/*.pt | cut -f1) bytes;" \
  "one slice checkpoint (LoRA, head, Adam state): $(du -b "$run/ckpt/shard-000/stage-01.g0.h5" | cut -f1) bytes"

echo "== forget three training images; verify against a retrain from scratch"
"$SISA" forget --run-dir "$run" --ids 17,4711,59999 --quiet
"$SISA" verify --run-dir "$run" --quiet
"$SISA" fsck --run-dir "$run"

echo "== serve it: predict two test images over HTTP"
( umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(24))' > "$WORK/forget.token" )
"$SISA" serve --run-dir "$run" --host 127.0.0.1 --port 0 --json --token-file "$WORK/forget.token" \
  > "$WORK/serve.out" 2> "$WORK/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s "$WORK/serve.out" ]] && break; sleep 0.1; done
port=$(head -1 "$WORK/serve.out" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["port"])')
"$PYTHON" - "http://127.0.0.1:$port" <<'PY'
import gzip, json, sys, urllib.request
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
body = json.dumps({"inputs": [list(raw[16 + i * 784: 16 + (i + 1) * 784]) for i in range(2)]}).encode()
req = urllib.request.Request(sys.argv[1] + "/v1/predict", body, {"Content-Type": "application/json"})
print("labels of test images 0 and 1:", json.load(urllib.request.urlopen(req))["labels"])
PY
kill -TERM $server && wait $server || true
trap - EXIT
"$SISA" status --run-dir "$run" | tail -3
