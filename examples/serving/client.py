#!/usr/bin/env python3
"""A client of `sisa serve` with the standard library only (urllib): predict,
forget with the bearer token, poll the request until it is `applied`, predict
again. Usage: client.py URL TOKEN_FILE INPUTS.json ID"""
import json
import sys
import time
import urllib.error
import urllib.request

url, token_file, inputs_file, victim = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
token = open(token_file).read().strip()


def call(method, path, body=None, auth=False):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:  # 4xx/5xx carry a JSON error body
        return e.code, json.load(e)


inputs = json.load(open(inputs_file))
status, out = call("POST", "/v1/predict", {"inputs": inputs, "aggregate": "vote"})
print("predict:", status, "labels", out["labels"])
status, out = call("POST", "/v1/forget", {"ids": [victim]}, auth=True)
print("forget:", status, out)
request_id = out["id"]
for _ in range(600):
    status, out = call("GET", f"/v1/forget/{request_id}", auth=True)  # receipts need the token
    if out["state"] in ("applied", "failed"):
        break
    time.sleep(0.2)
print("request", request_id, "is", out["state"], "- retrained shards:", [s["shard"] for s in out["receipt"]["shards"]])
status, out = call("POST", "/v1/predict", {"inputs": inputs, "aggregate": "vote"})
print("predict after the deletion:", status, "labels", out["labels"])
status, out = call("POST", "/v1/forget", {"ids": [victim]})
print("forget without the token:", status, out["error"])
sys.exit(0 if out["error"] else 1)
