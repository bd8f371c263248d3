#!/usr/bin/env bash
# sisa serve on a trained Fashion-MNIST run, used with curl and with a Python
# urllib client: predict, forget with the token, poll to `applied`, predict.
# Usage: bash examples/serving/run.sh [--quick]   (--quick: a small model, 3 epochs)
# Env: SISA (default build/sisa), WORK (default runs/examples/serving)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SISA=${SISA:-$root/build/sisa}
WORK=${WORK:-$root/runs/examples/serving}
export OMP_WAIT_POLICY=PASSIVE
small=()
[[ ${1:-} == --quick ]] && small=(--set train.epochs=3 --set 'model.hidden=[16]' --set sisa.shards=3)
rm -rf "$WORK" && mkdir -p "$WORK"
run="$WORK/run"
"$SISA" train --config "$root/configs/fashion-mnist.yaml" --run-dir "$run" "${small[@]}" --quiet

# The deletion token: whoever holds it may delete. Keep it out of the run directory.
( umask 077 && python3 -c 'import secrets; print(secrets.token_hex(24))' > "$WORK/forget.token" )
# Two test images as raw pixel values (0..255): the server applies the run's scale.
python3 - "$WORK/inputs.json" <<'PY'
import gzip, json, sys
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
json.dump([list(raw[16 + i * 784: 16 + (i + 1) * 784]) for i in range(2)], open(sys.argv[1], "w"))
PY

# --port 0 takes any free port; with --json the first line says which.
"$SISA" serve --run-dir "$run" --host 127.0.0.1 --port 0 --json --token-file "$WORK/forget.token" \
  > "$WORK/serve.out" 2> "$WORK/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s "$WORK/serve.out" ]] && break; sleep 0.1; done
port=$(head -1 "$WORK/serve.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
url="http://127.0.0.1:$port"
echo "== sisa serve listens on $url"

echo "== curl: health, predict, status"
curl -sf "$url/healthz"; echo
curl -sf "$url/v1/predict" -H 'Content-Type: application/json' \
  -d "{\"inputs\": $(cat "$WORK/inputs.json"), \"aggregate\": \"mean\"}" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("labels", r["labels"])'
auth="Authorization: Bearer $(cat "$WORK/forget.token")"  # status and receipts need the token too
curl -sf -H "$auth" "$url/v1/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("serving", len(s["shard_status"]), "shards; last applied request", s["last_applied_request"])'

echo "== curl: forget id 17 with the token, then poll"
curl -sf "$url/v1/forget" -H "$auth" -d '{"ids": [17]}'; echo
for _ in $(seq 600); do
  state=$(curl -sf -H "$auth" "$url/v1/forget/1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [[ $state == applied || $state == failed ]] && break
  sleep 0.2
done
echo "request 1: $state"
test "$state" == applied

echo "== the Python client (urllib): predict, forget id 4711, poll, predict"
python3 "$here/client.py" "$url" "$WORK/forget.token" "$WORK/inputs.json" 4711

kill -TERM $server && wait $server || true
trap - EXIT
echo "== after the server stopped: both deletions are in the run, and exact"
"$SISA" status --run-dir "$run" | tail -3
"$SISA" verify --run-dir "$run" --quiet
