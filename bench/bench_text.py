#!/usr/bin/env python3
"""The text families on the WordNet gloss task (issue #10), S=5, R=4, one
backbone: a transformer trained from scratch (no backbone), `transformer`
(full fine-tuning of the backbone: plain SISA), `sisa-a` and `sisa-fc`.

For each: test accuracy (mean and vote), train wall time, the mean wall time
of single deletions (each `sisa forget` of one random training id, process
start included), bytes per checkpoint and per run. Then one SISA-FC deletion
over HTTP (POST /v1/forget until `applied`). Writes docs/data/text.json and
prints a Markdown table with Kumar et al.'s figures beside ours as ratios.

Needs data/wordnet (scripts/make_wordnet_csv.py), data/pretrain-corpus.txt
(scripts/make_pretrain_corpus.py) and backbones/small.h5 (sisa pretrain; this
script runs it when the file is missing and times it). Standard library only.

Usage: python3 bench/bench_text.py [--sisa build/sisa] [--work /tmp/sisa-text]
       [--deletions 10] [--slow-deletions 3] [--only sisa-fc,sisa-a]
"""
import argparse
import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine, run  # noqa: E402

VARIANTS = [  # (name, config, deletions are slow: full retrains of a shard's later slices)
    ("scratch", "configs/wordnet-scratch.yaml", True),
    ("transformer", "configs/wordnet-transformer.yaml", True),
    ("sisa-a", "configs/wordnet-sisa-a.yaml", False),
    ("sisa-fc", "configs/wordnet-sisa-fc.yaml", False),
]
# Kumar et al. 2022, averages over GLUE tasks with BERT: accuracy and seconds per retrain.
KUMAR = {"transformer": (83.3, 1732.7), "sisa-a": (80.7, 145.7)}


def dir_bytes(path):
    return sum(os.path.getsize(f) for f in glob.glob(f"{path}/**", recursive=True) if os.path.isfile(f))


def train_ids(path):
    with open(path) as f:
        next(f)
        return [int(line.split(",", 1)[0]) for line in f if line[:1].isdigit()]


def http_deletion(sisa, run_dir, doomed, env):
    """Seconds from POST /v1/forget to `applied`, on a live server."""
    token = os.path.join(os.path.dirname(run_dir), "token")
    with open(token, "w") as f:
        f.write("bench-token-0123456789abcdef\n")
    os.chmod(token, 0o600)
    server = subprocess.Popen([sisa, "serve", "--json", "--port", "0", "-r", run_dir, "--token-file", token],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        port = json.loads(server.stdout.readline())["port"]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/forget", data=json.dumps({"ids": [doomed]}).encode(),
                                     headers={"Authorization": "Bearer bench-token-0123456789abcdef",
                                              "Content-Type": "application/json"})
        t0 = time.monotonic()
        seq = json.loads(urllib.request.urlopen(req).read())["id"]
        while True:
            poll = urllib.request.Request(f"http://127.0.0.1:{port}/v1/forget/{seq}",
                                          headers={"Authorization": "Bearer bench-token-0123456789abcdef"})
            state = json.loads(urllib.request.urlopen(poll).read())["state"]
            if state == "applied":
                return time.monotonic() - t0
            if state == "failed":
                sys.exit("the HTTP deletion failed")
            time.sleep(0.005)
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-text")
    ap.add_argument("--deletions", type=int, default=10)
    ap.add_argument("--slow-deletions", type=int, default=3, help="for scratch and transformer")
    ap.add_argument("--only", default="", help="comma-separated variants")
    ap.add_argument("--out", default="docs/data/text.json")
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    sisa = os.path.abspath(a.sisa)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    os.makedirs(a.work, exist_ok=True)
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "variants": {}}
    if os.path.exists(a.out):
        results["variants"] = json.load(open(a.out)).get("variants", {})
    if not os.path.exists("backbones/small.h5"):
        r, wall = run([sisa, "--json", "pretrain", "-c", "configs/backbone-small.yaml", "-o", "backbones/small.h5"], env)
        results["pretrain"] = {"seconds": wall, "final_loss": r["final_loss"], "backbone_sha256": r["backbone_sha256"]}
    ids = train_ids("data/wordnet/train.csv")
    only = set(a.only.split(",")) if a.only else None
    for name, config, slow in VARIANTS:
        if only and name not in only:
            continue
        run_dir = f"{a.work}/{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"{name}: train", file=sys.stderr, flush=True)
        trained, train_wall = run([sisa, "--json", "-q", "train", "-c", config, "-r", run_dir], env)
        pred, _ = run([sisa, "--json", "-q", "predict", "-r", run_dir], env)
        pred_vote, _ = run([sisa, "--json", "-q", "predict", "-r", run_dir, "--aggregate", "vote"], env)
        ckpts = glob.glob(f"{run_dir}/ckpt/**/*.h5", recursive=True)
        row = {"config": config, "train_seconds": train_wall, "texts_truncated": trained.get("texts_truncated"),
               "accuracy_mean": pred["accuracy_mean"], "accuracy_vote": pred["accuracy_vote"],
               "bytes_per_checkpoint": statistics.mean(os.path.getsize(f) for f in ckpts),
               "checkpoints": len(ckpts), "bytes_per_run": dir_bytes(run_dir)}
        rng = random.Random(a.seed)
        times = []
        for doomed in rng.sample(ids, a.slow_deletions if slow else a.deletions):
            print(f"{name}: forget {doomed}", file=sys.stderr, flush=True)
            _, wall = run([sisa, "--json", "-q", "forget", "-r", run_dir, "--ids", str(doomed)], env)
            times.append(wall)
        row["deletion_seconds"] = times
        row["deletion_mean_seconds"] = statistics.mean(times)
        if name == "sisa-fc":
            row["http_deletion_seconds"] = http_deletion(sisa, run_dir, rng.choice(ids), env)
        results["variants"][name] = row
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
    v = results["variants"]
    print(f"\n{results['machine']}, {results['date']}\n")
    print("| variant | accuracy (mean / vote) | train | mean single deletion | bytes per checkpoint | bytes per run |")
    print("|---|---|---|---|---|---|")
    for name, _, _ in VARIANTS:
        if name in v:
            r = v[name]
            print(f"| {name} | {100 * r['accuracy_mean']:.1f}% / {100 * r['accuracy_vote']:.1f}% | "
                  f"{r['train_seconds']:.0f} s | {r['deletion_mean_seconds']:.2f} s (n={len(r['deletion_seconds'])}) | "
                  f"{r['bytes_per_checkpoint'] / 1e6:.2f} MB | {r['bytes_per_run'] / 1e6:.1f} MB |")
    if "transformer" in v and "sisa-a" in v:
        t, s = v["transformer"], v["sisa-a"]
        print(f"\nSISA-A vs full fine-tuning: accuracy {100 * (s['accuracy_mean'] - t['accuracy_mean']):+.1f} points "
              f"(Kumar et al.: {KUMAR['sisa-a'][0] - KUMAR['transformer'][0]:+.1f}); deletion time ratio "
              f"{s['deletion_mean_seconds'] / t['deletion_mean_seconds']:.2f} (Kumar et al. per retrain: "
              f"{KUMAR['sisa-a'][1] / KUMAR['transformer'][1]:.2f}); checkpoint bytes ratio "
              f"{s['bytes_per_checkpoint'] / t['bytes_per_checkpoint']:.3f}")


if __name__ == "__main__":
    main()
