#!/usr/bin/env python3
"""USE-Lite on the WordNet task (issue #27): full fine-tuning (`transformer`),
the same architecture from scratch (its weights reinitialized:
`sisa import-encoder --reinitialize`), SISA-A (adapters inside its blocks)
and SISA-FC (a head over its embedding), each with the shipped
configs/wordnet-*.yaml (only the backbone, tokenizer and data changed), on a
subset of the training glosses (chosen by a hash of the id, not the first
rows) and the full test set. Reports accuracy, training time, bytes per
checkpoint and single deletions (CLI). Needs scripts/fetch-encoder.sh first.
Usage: bench/bench_use_lite.py [--train-rows 2000] [--skip-rows 0] [--deletions 2] [--variants A,B] [--set VARIANT:KEY=VALUE]
       [--work DIR] [--json OUT]
"""
import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # noqa: E402


def run_json(cmd, env):
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sisa", default=os.path.join(ROOT, "build/sisa"))
    ap.add_argument("--work", default="/tmp/sisa-bench-use-lite")
    ap.add_argument("--train-rows", type=int, default=2000)
    ap.add_argument("--skip-rows", type=int, default=0,
                    help="start the subset this many rows into the hash order (a disjoint subset: data not tuned on)")
    ap.add_argument("--deletions", type=int, default=2)
    ap.add_argument("--variants", default="transformer,scratch,scratch-lr1e-3,sisa-a,sisa-a-cached,sisa-fc")
    ap.add_argument("--json", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="VARIANT:KEY=VALUE",
                    help="a config override for one variant (repeatable), e.g. sisa-a:train.lr=0.003")
    a = ap.parse_args()
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    os.makedirs(a.work, exist_ok=True)
    data = os.path.join(a.work, "wordnet")
    if not os.path.exists(os.path.join(data, "train.csv")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_wordnet_csv.py"), data], check=True,
                       stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader(open(os.path.join(data, "train.csv"))))
    rows.sort(key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
    subset = sorted(rows[a.skip_rows:a.skip_rows + a.train_rows], key=lambda r: int(r["id"]))
    tag = f"{a.train_rows}" + (f"-from{a.skip_rows}" if a.skip_rows else "")
    train = os.path.join(a.work, f"train-{tag}.csv")
    with open(train, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "label", "text"])
        w.writeheader()
        w.writerows(subset)
    enc = os.path.join(a.work, "use-lite.h5"), os.path.join(a.work, "use-lite-scratch.h5")
    package = os.path.join(ROOT, "encoders/use-lite/model")
    run_json([a.sisa, "import-encoder", "--json", "--package", package, "-o", enc[0]], env)
    run_json([a.sisa, "import-encoder", "--json", "--package", package, "-o", enc[1], "--reinitialize", "1"], env)
    vocab = os.path.join(a.work, "use-lite.vocab.json")
    base = {"transformer": "wordnet-transformer.yaml", "scratch": "wordnet-transformer.yaml",
            "scratch-lr1e-3": "wordnet-transformer.yaml", "sisa-a": "wordnet-sisa-a.yaml",
            "sisa-a-cached": "wordnet-sisa-a.yaml",
            "sisa-fc": "wordnet-sisa-fc.yaml"}
    results = {}
    for v in a.variants.split(","):
        sets = [f"data.train={train}", f"data.test={data}/test.csv", f"data.tokenizer={vocab}",
                f"model.backbone={enc[1] if v.startswith('scratch') else enc[0]}"]
        if v == "scratch-lr1e-3":
            sets.append("train.lr=0.001")
        if v == "sisa-a-cached":
            sets.append("model.cached_layers=1")
        sets += [o.split(":", 1)[1] for o in a.set if o.split(":", 1)[0] == v]
        run = os.path.join(a.work, f"run-{v}-{tag}")
        subprocess.run(["rm", "-rf", run], check=True)
        cmd = [a.sisa, "train", "-q", "--json", "-c", os.path.join(ROOT, "configs", base[v]), "-r", run]
        for s in sets:
            cmd += ["--set", s]
        t = run_json(cmd, env)
        acc = run_json([a.sisa, "predict", "-q", "--json", "-r", run], env)
        ckpt = os.path.join(run, "ckpt", "shard-000")
        stage = sorted(f for f in os.listdir(ckpt) if f.startswith("stage-01"))[0]
        ids = [int(r["id"]) for r in subset[:: max(1, len(subset) // a.deletions)][:a.deletions]]
        forgets = [run_json([a.sisa, "forget", "-q", "--json", "-r", run, "--ids", str(i)], env)["total_seconds"]
                   for i in ids]
        results[v] = {"accuracy_mean": acc["accuracy_mean"], "accuracy_vote": acc["accuracy_vote"],
                      "train_seconds": t["total_seconds"], "checkpoint_bytes": os.path.getsize(os.path.join(ckpt, stage)),
                      "forget_seconds": forgets}
        print(f"{v}: {results[v]}", file=sys.stderr)
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "train_rows": a.train_rows, "skip_rows": a.skip_rows, "overrides": a.set, "test_rows": 11808,
           "results": results}
    print(f"Machine: {out['machine']}; {out['date']}; {a.train_rows} training glosses (from row {a.skip_rows} of the "
          f"hash order), full test set; overrides {a.set or 'none'}.\n")
    print("| variant | accuracy (mean / vote) | train | bytes per checkpoint | single deletions (CLI) |")
    print("|---|---|---|---|---|")
    for v, r in results.items():
        print(f"| {v} | {100 * r['accuracy_mean']:.1f}% / {100 * r['accuracy_vote']:.1f}% | {r['train_seconds']:.0f} s | "
              f"{r['checkpoint_bytes'] / 1e6:.2f} MB | {', '.join(f'{x:.1f}' for x in r['forget_seconds'])} s |")
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
