#!/usr/bin/env python3
"""`sisa serve` under load (standard library + the `wrk` load generator).

For configs/fashion-mnist.yaml (MLP 784-256-10) with S=5 and S=20 shards:
  * single-sample POST /v1/predict at 1, 8 and 64 connections: requests/s, p50, p99,
  * batched requests (64 inputs each) at 8 connections: predictions/s,
  * the same single-sample load at 8 connections while a deletion (ids in
    several shards) retrains in the background: errors, p99, time to `applied`,
  * the compute floor: FLOPs per prediction over the matrix-multiply rate that
    `sisa predict` reaches on the whole test set (one large batch per shard).
Prints Markdown for docs/benchmarks.md.

Usage: python3 bench/bench_serve.py [--sisa build/sisa] [--work /tmp/sisa-bench-serve] [--seconds 10]
"""
import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def env():
    return dict(os.environ, OMP_WAIT_POLICY="PASSIVE")


def sh(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env())
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return p.stdout


def wrk(url, body_file, connections, seconds, timeout=2):
    """POSTs body_file with wrk; a request unanswered for `timeout` seconds counts as an error."""
    threads = min(connections, 2)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "--timeout", f"{timeout}s", "-s", os.path.join(HERE, "wrk_post.lua"), url],
                         capture_output=True, text=True, env=dict(os.environ, SISA_BODY=body_file)).stdout
    m = re.search(r"SISA_RESULT requests=(\d+) duration_us=(\d+) errors=(\d+) non2xx=(\d+) "
                  r"p50_us=(\d+) p99_us=(\d+)", out)
    if not m:
        sys.exit("wrk gave no result:\n" + out)
    req, dur, err, non2xx, p50, p99 = map(int, m.groups())
    return {"rps": req / (dur / 1e6), "requests": req, "errors": err + non2xx, "p50_ms": p50 / 1e3,
            "p99_ms": p99 / 1e3}


def request_bodies(work):
    """Two predict bodies in `work`: one Fashion-MNIST test image, and 64; returns their paths."""
    pixels = gzip.open(IMAGES).read()[16:]
    rows = [list(pixels[i * 784:(i + 1) * 784]) for i in range(64)]
    one, batch = f"{work}/one.json", f"{work}/batch64.json"
    json.dump({"inputs": rows[:1]}, open(one, "w"))
    json.dump({"inputs": rows}, open(batch, "w"))
    return one, batch


class Server:
    def __init__(self, sisa, run_dir, token_file, extra=()):
        self.p = subprocess.Popen([sisa, "serve", "--json", "-q", "--port", "0", "-r", run_dir,
                                   "--token-file", token_file, *extra], stdout=subprocess.PIPE, text=True, env=env())
        self.port = json.loads(self.p.stdout.readline())["port"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = open(token_file).read().strip()  # receipts and /v1/status need it

    def post(self, path, body, token=None):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
        return json.loads(urllib.request.urlopen(req).read())

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        return json.loads(urllib.request.urlopen(req).read())

    def stop(self):
        self.p.terminate()
        return self.p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-bench-serve")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", default="1,8,64", help="single-sample loads to measure")
    ap.add_argument("--json", help="also write the single-sample points here (scripts/plot_serving.py)")
    a = ap.parse_args()
    points = []
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    sisa = os.path.abspath(a.sisa)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    token = "%032x" % random.getrandbits(128)
    token_file = f"{a.work}/token"
    with open(token_file, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)
    one, batch = request_bodies(a.work)

    out = [f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} vCPU; configs/fashion-mnist.yaml "
           f"(MLP 784-256-10, E=20); wrk on the same machine (2 threads, keep-alive), {a.seconds} s per "
           "measurement; one Fashion-MNIST test image per request (raw pixels as JSON numbers, ~2.3 KB).", "",
           "| S | load | connections | requests/s | predictions/s | p50 ms | p99 ms | errors |",
           "|---|---|---|---|---|---|---|---|"]
    floors = []
    for shards in (5, 20):
        run = f"{a.work}/s{shards}"
        sh([sisa, "train", "-q", "-c", "configs/fashion-mnist.yaml", "-r", run, "--set", f"sisa.shards={shards}"])
        pred = json.loads(sh([sisa, "predict", "--json", "-q", "-r", run]))
        flops = shards * 2 * (784 * 256 + 256 * 10)
        rate = flops * pred["samples"] / pred["seconds"]
        floors.append(f"S={shards}: {flops / 1e6:.2f} MFLOP per prediction; `sisa predict` ran the 10,000 test "
                      f"images at {rate / 1e9:.1f} GFLOP/s ({pred['seconds']:.2f} s), so the floor is "
                      f"{flops / rate * 1e6:.0f} us of one core per prediction (~{rate / flops:,.0f} "
                      "predictions/s per core).")
        server = Server(sisa, run, token_file)
        url = server.url + "/v1/predict"
        wrk(url, one, 8, 2)  # warm up
        for c in map(int, a.connections.split(",")):
            r = wrk(url, one, c, a.seconds)
            points.append({"shards": shards, "connections": c, **r})
            out.append(f"| {shards} | single | {c} | {r['rps']:,.0f} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                       f"{r['p99_ms']:.2f} | {r['errors']} |")
        r = wrk(url, batch, 8, a.seconds)
        out.append(f"| {shards} | batch of 64 | 8 | {r['rps']:,.0f} | {r['rps'] * 64:,.0f} | {r['p50_ms']:.2f} | "
                   f"{r['p99_ms']:.2f} | {r['errors']} |")
        # A deletion retraining in the background while the load runs.
        ids = random.Random(shards).sample(range(60000), 3)
        # wrk stops (and reports) on SIGINT: the load spans the whole deletion, the swap included.
        load = subprocess.Popen(["wrk", "-t2", "-c8", "-d600s", "-s", os.path.join(HERE, "wrk_post.lua"),
                                 url], stdout=subprocess.PIPE, text=True, env=dict(os.environ, SISA_BODY=one))
        time.sleep(2)
        t0 = time.time()
        rid = server.post("/v1/forget", {"ids": ids}, token)["id"]
        while server.get(f"/v1/forget/{rid}")["state"] not in ("applied", "failed"):
            time.sleep(0.05)
        applied = time.time() - t0
        state = server.get(f"/v1/forget/{rid}")
        time.sleep(2)
        load.send_signal(signal.SIGINT)
        m = re.search(r"SISA_RESULT requests=(\d+) duration_us=(\d+) errors=(\d+) non2xx=(\d+) p50_us=(\d+) "
                      r"p99_us=(\d+)", load.communicate()[0])
        req, dur, err, non2xx, p50, p99 = map(int, m.groups())
        out.append(f"| {shards} | single, during a deletion ({len(state['receipt']['shards'])} shards retrained, "
                   f"applied after {applied:.1f} s) | 8 | {req / (dur / 1e6):,.0f} | {req / (dur / 1e6):,.0f} | "
                   f"{p50 / 1e3:.2f} | {p99 / 1e3:.2f} | {err + non2xx} |")
        server.stop()
    out += ["", "Compute floor: " + " ".join(floors), ""]
    print("\n".join(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                       "seconds_per_point": a.seconds, "single_sample": points}, f, indent=1)


if __name__ == "__main__":
    main()
