#!/usr/bin/env python3
"""The two curves of the SISA paper on Fashion-MNIST (standard library only).

  * accuracy (posterior mean and majority vote) and training time against the
    number of shards S = 1, 2, 5, 10, 20 (configs/fashion-mnist.yaml otherwise);
  * the cost of a batch of K random deletions (S=5) against K = 1, 2, 5, 10,
    20, 50, 100: the measured retraining loop beside the cost model (the
    batch's sample-epochs at the training run's rate) and DESIGN.md's expected
    speed-up over a full retrain.

Writes JSON (machine, date, points) for scripts/plot_curves.py and prints a
Markdown summary. Usage:
  python3 bench/bench_curves.py [--sisa build/sisa] [--work /tmp/sisa-curves] [--out docs/data/curves.json]
"""
import argparse
import json
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import expected_speedup, machine, run  # noqa: E402

CONFIG = "configs/fashion-mnist.yaml"
E, R = 20, 4  # the config's epochs and slices


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-curves")
    ap.add_argument("--out", default="docs/data/curves.json")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    sisa = os.path.abspath(a.sisa)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")

    shards = []
    for s in (1, 2, 5, 10, 20):
        run_dir = f"{a.work}/s{s}"
        t, _ = run([sisa, "train", "-q", "--json", "-c", CONFIG, "-r", run_dir, "--set", f"sisa.shards={s}"], env)
        p, _ = run([sisa, "predict", "-q", "--json", "-r", run_dir], env)
        shards.append({"shards": s, "accuracy_mean": p["accuracy_mean"], "accuracy_vote": p["accuracy_vote"],
                       "train_seconds": t["train_seconds"], "loop_seconds": t["loop_seconds"],
                       "samples_per_second": t["samples_per_second"]})
        print(f"S={s}: accuracy mean {p['accuracy_mean']:.4f}, vote {p['accuracy_vote']:.4f}, "
              f"loop {t['loop_seconds']:.1f} s", file=sys.stderr)

    base = f"{a.work}/s5"
    s5 = next(x for x in shards if x["shards"] == 5)
    full_loop, rate = s5["loop_seconds"], s5["samples_per_second"]  # the model's rate: this training run's
    batches = []
    rng = random.Random(a.seed)
    for k in (1, 2, 5, 10, 20, 50, 100):
        run_dir = f"{a.work}/k{k}"
        shutil.copytree(base, run_dir)
        ids = rng.sample(range(60000), k)
        r, wall = run([sisa, "forget", "-q", "--json", "-r", run_dir, "--ids", ",".join(map(str, ids))], env)
        work = sum(s["sample_epochs"] for s in r["shards"])
        batches.append({"k": k, "shards_retrained": len(r["shards"]), "loop_seconds": r["training_seconds"],
                        "model_seconds": work / rate, "wall_seconds": wall,
                        "full_retrain_loop_seconds": full_loop,
                        "expected_speedup": expected_speedup(E, R, 5, k)})
        print(f"K={k}: {len(r['shards'])} shards, loop {r['training_seconds']:.1f} s, model {work / rate:.1f} s",
              file=sys.stderr)
        shutil.rmtree(run_dir)

    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "config": CONFIG,
           "accuracy_vs_shards": shards, "deletion_cost_vs_batch": batches}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"Machine: {out['machine']}  \nDate: {out['date']}\n")
    print("| S | accuracy (mean) | accuracy (vote) | train s | loop s |\n|---|---|---|---|---|")
    for x in shards:
        print(f"| {x['shards']} | {x['accuracy_mean']:.4f} | {x['accuracy_vote']:.4f} | {x['train_seconds']:.1f} | "
              f"{x['loop_seconds']:.1f} |")
    print("\n| K | shards retrained | loop s | model s | wall s | speed-up (loop) | expected speed-up |")
    print("|---|---|---|---|---|---|---|")
    for x in batches:
        print(f"| {x['k']} | {x['shards_retrained']} | {x['loop_seconds']:.1f} | {x['model_seconds']:.1f} | "
              f"{x['wall_seconds']:.1f} | {full_loop / x['loop_seconds']:.2f} | {x['expected_speedup']:.2f} |")


if __name__ == "__main__":
    main()
