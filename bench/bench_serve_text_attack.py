#!/usr/bin/env python3
"""`sisa serve` on text runs against hostile texts (issue #23): 8 MB texts to
POST /v1/predict (a text classifier), /v1/generate and /v1/score (a language
model), 4 at once to each endpoint, while 64 slowloris clients hold
connections and a healthy client keeps asking /healthz. Each hostile
request comes from its own loopback address (127.0.0.3, ...), so the
per-client body budget does not turn them away; the slowloris clients use
127.0.0.2 and the healthy client 127.0.0.1.

Measured per server: the healthy client's /healthz p50/p99/max and errors,
the latency of an ordinary request to the attacked endpoint meanwhile,
each hostile request's status and time to its answer, the server's RSS
before, at its peak and after, whether it survived; and that a receipt and
/v1/status answer 401 without the token, and no answer names the run's
absolute path. With --other (a build of an earlier commit, e.g. 62b387b) the
same attack runs against it too, in the same process of measurement.

Data: the first --verses verses of the KJV (Debian bible-kjv, through
scripts/make_lm_corpus.py), a 1,000-piece tokenizer, a small causal LM and a
small transformer classifier (labels: the verse id mod 3), trained once into
--work. Prints Markdown for docs/benchmarks.md.

Usage: python3 bench/bench_serve_text_attack.py [--sisa build/sisa] [--other OLD/sisa]
       [--other-lib DIR] [--work runs/bench-text-attack] [--seconds 8]
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import bench_serve_attack
from bench_serve_attack import rss_mib, slowloris, watch_peak_rss

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOKEN = "bench-attack-token-0123456789abcdef"
HOSTILE = 8_000_000  # bytes of text: under the default 8 MiB body limit


def env(lib=None):
    e = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if lib:
        e["LD_LIBRARY_PATH"] = lib
    return e


def prepare(sisa, work, verses):
    """The corpus, tokenizer and both runs; reused when they exist."""
    os.makedirs(work, exist_ok=True)
    csv, tok = f"{work}/kjv.csv", f"{work}/kjv.model"
    if not os.path.exists(tok):
        subprocess.run([sys.executable, f"{ROOT}/scripts/make_lm_corpus.py", csv, "--max-verses", str(verses),
                        "--per-count", "4", "--held-out", "4", "--tokenizer-text", f"{work}/tok.txt"], check=True)
        subprocess.run([sisa, "tokenizer", "-q", "--corpus", f"{work}/tok.txt", "--vocab-size", "1000", "-o", tok],
                       check=True, env=env())
    labelled = f"{work}/labelled.csv"
    if not os.path.exists(labelled):
        with open(csv) as src, open(labelled, "w") as out:
            out.write("id,label,text\n")
            for line in list(src)[1:]:
                rid, _, text = line.rstrip("\n").split(",", 2)
                out.write(f"{rid},{int(rid) % 3},{text}\n")
    common = (f"seed: 1\ndata:\n  format: csv\n  id_column: id\n  text_column: text\n  tokenizer: {tok}\n"
              "  max_tokens: 48\n  input_shape: [48]\nsisa:\n  shards: 2\n  slices: 1\n"
              "train:\n  epochs: 1\n  batch_size: 64\n  lr: 0.003\n  threads: 1\n")
    lm_yaml = common.replace("data:\n", f"data:\n  train: {csv}\n  test: {csv[:-4]}-test.csv\n  group_column: group\n") + \
        "model:\n  type: lm\n  dim: 32\n  layers: 1\n  heads: 2\n  ff: 64\n  dropout: 0.0\n"
    text_yaml = common.replace("data:\n", f"data:\n  train: {labelled}\n  test: {labelled}\n  num_classes: 3\n") + \
        "model:\n  type: transformer\n  dim: 32\n  layers: 1\n  heads: 2\n  ff: 64\n"
    runs = {}
    for name, yaml in (("lm", lm_yaml), ("text", text_yaml)):
        cfg, run = f"{work}/{name}.yaml", f"{work}/{name}-run"
        with open(cfg, "w") as f:
            f.write(yaml)
        if not os.path.exists(f"{run}/MANIFEST.json"):
            shutil.rmtree(run, ignore_errors=True)
            subprocess.run([sisa, "train", "-q", "-c", cfg, "-r", run], check=True, env=env())
        runs[name] = run
    with open(f"{work}/token", "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(f"{work}/token", 0o600)
    return runs


class Server(bench_serve_attack.Server):
    """A text run's server, with the token; stop() and alive() as the fmnist one's."""

    def __init__(self, sisa, lib, run, token_file):
        self.p = subprocess.Popen([sisa, "serve", "--json", "-q", "--port", "0", "-r", run, "--token-file", token_file],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env(lib))
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit(f"{sisa} serve did not start")
        self.port = json.loads(line)["port"]

    def request(self, method, path, body=None, source="127.0.0.1", headers=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(source, 0))
        try:
            c.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


def attack(sisa, lib, run, token_file, endpoints, seconds):
    server = Server(sisa, lib, run, token_file)
    # Warm up with ordinary requests (thread pools, kernels): RSS growth is the attack's own.
    for path, field in endpoints:
        for _ in range(3):
            server.request("POST", path, json.dumps({field: ["in the beginning"] if field == "texts" else "in the beginning"}))
    before = rss_mib(server.p.pid)
    stop = threading.Event()
    peak = [before]

    health, health_errors = [], [0]
    ordinary, ordinary_errors = [], [0]
    path0, field0 = endpoints[0]
    small = json.dumps({field0: ["in the beginning"] if field0 == "texts" else "in the beginning"})

    def healthy():
        """/healthz, and every fifth time an ordinary request of the attacked endpoint."""
        i = 0
        while not stop.is_set():
            i += 1
            path, body, times, errors = (("/healthz", None, health, health_errors) if i % 5 else
                                         (path0, small, ordinary, ordinary_errors))
            t0 = time.monotonic()
            try:
                status, _ = server.request("POST" if body else "GET", path, body, timeout=10)
                times.append(time.monotonic() - t0)
                errors[0] += status != 200
            except OSError:
                errors[0] += 1
            stop.wait(0.02)

    background = [threading.Thread(target=watch_peak_rss, args=(server.p.pid, stop, peak, 0.05)),
                  threading.Thread(target=slowloris, args=(server.port, 64, stop)),
                  threading.Thread(target=healthy)]
    for t in background:
        t.start()
    time.sleep(2)  # slowloris in place, healthy client going
    results = []

    def hostile(path, field, source):
        body = json.dumps({field: ["x" * HOSTILE] if field == "texts" else "x" * HOSTILE})
        t0 = time.monotonic()
        try:
            status, _ = server.request("POST", path, body, source=source)
        except OSError as e:
            status = f"error: {e.__class__.__name__}"
        results.append((path, status, time.monotonic() - t0))

    hostiles = []
    for i, (path, field) in enumerate((p, f) for p, f in endpoints for _ in range(4)):
        hostiles.append(threading.Thread(target=hostile, args=(path, field, f"127.0.0.{3 + i}")))
    for t in hostiles:
        t.start()
    for t in hostiles:
        t.join()
    time.sleep(max(0.0, seconds - 2))
    stop.set()
    for t in background:
        t.join()
    time.sleep(1)
    after = rss_mib(server.p.pid)
    survived = server.alive()
    private = []
    if survived:
        for path in ("/v1/status", "/v1/forget/1"):
            private.append(server.request("GET", path)[0])
        _, status_body = server.request("GET", "/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
        private.append(os.path.abspath(run) not in status_body.decode())
    server.stop()
    health.sort()
    ordinary.sort()
    pct = (lambda q: health[min(len(health) - 1, int(len(health) * q))] * 1e3) if health else (lambda q: float("nan"))
    return {"health_n": len(health), "health_errors": health_errors[0], "p50": pct(0.5), "p99": pct(0.99),
            "max": health[-1] * 1e3 if health else float("nan"), "hostile": results, "rss": (before, peak[0], after),
            "survived": survived, "private": private,
            "ordinary": (ordinary[len(ordinary) // 2] * 1e3 if ordinary else float("nan"),
                         ordinary[-1] * 1e3 if ordinary else float("nan"), ordinary_errors[0], len(ordinary))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default=f"{ROOT}/build/sisa")
    ap.add_argument("--other", help="another build's sisa (e.g. the commit before a change)")
    ap.add_argument("--other-lib", help="LD_LIBRARY_PATH for --other")
    ap.add_argument("--work", default=f"{ROOT}/runs/bench-text-attack")
    ap.add_argument("--verses", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=8)
    a = ap.parse_args()
    runs = prepare(a.sisa, a.work, a.verses)
    targets = [("text classifier", runs["text"], [("/v1/predict", "texts")]),
               ("language model", runs["lm"], [("/v1/generate", "prompt"), ("/v1/score", "text")])]
    builds = [("this build", a.sisa, None)] + ([("other build", a.other, a.other_lib)] if a.other else [])
    print("| build | run | /healthz p50 / p99 / max ms (errors) | ordinary request p50 / max ms (errors) "
          "| hostile answers (status: count, slowest s) | RSS MiB before / peak / after | survived "
          "| 401 without token; no abs path |")
    print("|---|---|---|---|---|---|---|---|")
    for bname, sisa, lib in builds:
        for tname, run, endpoints in targets:
            r = attack(sisa, lib, run, f"{a.work}/token", endpoints, a.seconds)
            by = {}
            for path, status, secs in r["hostile"]:
                k = f"{path} {status}"
                n, worst = by.get(k, (0, 0.0))
                by[k] = (n + 1, max(worst, secs))
            hostile = "; ".join(f"{k}: {n}, {w:.2f}" for k, (n, w) in sorted(by.items()))
            b, p, af = r["rss"]
            print(f"| {bname} | {tname} | {r['p50']:.2f} / {r['p99']:.2f} / {r['max']:.2f} ({r['health_errors']} of "
                  f"{r['health_n'] + r['health_errors']}) | {r['ordinary'][0]:.1f} / {r['ordinary'][1]:.1f} "
                  f"({r['ordinary'][2]} of {r['ordinary'][3] + r['ordinary'][2]}) | {hostile} | {b:.0f} / {p:.0f} / {af:.0f} | "
                  f"{'yes' if r['survived'] else 'NO'} | {r['private']} |", flush=True)


if __name__ == "__main__":
    main()
