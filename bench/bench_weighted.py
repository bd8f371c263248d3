#!/usr/bin/env python3
"""Distribution-aware placement against uniform placement on Fashion-MNIST
(standard library only).

10% of the training ids are marked likely to be deleted: in a weights file
they weigh 1 and the others 1/36, in proportion to each id's chance of a
request in the stream below. A skewed stream of single-id deletion
requests draws 80% of its ids from that 10%. The same stream is applied to a
run with uniform placement (configs/fashion-mnist.yaml) and to one with
`sisa.placement: weighted` (heavy_shards 1, heavy_slices 1). Reported per run:
test accuracy, the cost model's expected cost per deletion, and the measured
mean retraining loop and sample-epochs per request.

Usage: python3 bench/bench_weighted.py [--sisa build/sisa] [--work /tmp/sisa-weighted] [--requests 20]
"""
import argparse
import os
import random
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine, run  # noqa: E402

CONFIG = "configs/fashion-mnist.yaml"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-weighted")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    sisa = os.path.abspath(a.sisa)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    rng = random.Random(a.seed)
    ids = list(range(60000))
    heavy = set(rng.sample(ids, 6000))
    light = [i for i in ids if i not in heavy]
    heavy_list = sorted(heavy)
    weights = f"{a.work}/weights.csv"
    # Weights proportional to each id's chance of a request in the stream:
    # 0.8/6000 for a heavy id against 0.2/54000 for a light one, i.e. 1 : 1/36.
    with open(weights, "w") as f:
        f.write("id,weight\n" + "".join(f"{i},{1 if i in heavy else 1 / 36:.6f}\n" for i in ids))
    stream, used = [], set()
    while len(stream) < a.requests:
        i = rng.choice(heavy_list) if rng.random() < 0.8 else rng.choice(light)
        if i not in used:
            used.add(i)
            stream.append(i)

    results = {}
    for name, extra in (("uniform", []),
                        ("weighted", ["--set", "sisa.placement=weighted", "--set", f"data.weights_file={weights}"])):
        run_dir = f"{a.work}/{name}"
        t, _ = run([sisa, "train", "-q", "--json", "-c", CONFIG, "-r", run_dir, *extra], env)
        acc, _ = run([sisa, "predict", "-q", "--json", "-r", run_dir], env)
        loops, work, walls = [], [], []
        for i in stream:
            r, wall = run([sisa, "forget", "-q", "--json", "-r", run_dir, "--ids", str(i)], env)
            loops.append(r["training_seconds"])
            work.append(sum(s["sample_epochs"] for s in r["shards"]))
            walls.append(wall)
        after, _ = run([sisa, "predict", "-q", "--json", "-r", run_dir], env)
        results[name] = {"train": t, "accuracy": acc, "accuracy_after": after, "loop": loops, "work": work,
                         "wall": walls}
        print(f"{name}: mean loop {statistics.mean(loops):.2f} s, mean {statistics.mean(work):,.0f} sample-epochs",
              file=sys.stderr)

    heavy_share = sum(i in heavy for i in stream) / len(stream)
    print(f"Machine: {machine()}  \nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(f"{len(stream)} single-id deletions, {heavy_share:.0%} of them from the 10% of ids marked heavy "
          "(weight 1; the others 1/36); S=5, R=4, E=20 (8 epochs per stage); weighted: heavy_shards 1, heavy_slices 1.\n")
    print("| placement | accuracy mean / vote | expected sample-epochs per deletion (model) | "
          "measured sample-epochs per deletion | mean retrain loop s | mean forget wall s | "
          "accuracy after |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        cost = r["train"]["expected_deletion_cost"]
        expected = cost["weighted"] if name == "weighted" else None
        if expected is None:
            # Uniform placement, the same stream: 80% heavy ids cost what any id costs.
            expected = cost["per_key"]
        print(f"| {name} | {r['accuracy']['accuracy_mean']:.4f} / {r['accuracy']['accuracy_vote']:.4f} | "
              f"{expected:,.0f} | {statistics.mean(r['work']):,.0f} | {statistics.mean(r['loop']):.2f} | "
              f"{statistics.mean(r['wall']):.2f} | {r['accuracy_after']['accuracy_mean']:.4f} |")
    u, w = results["uniform"], results["weighted"]
    print(f"\nSpeed-up of the mean retrain loop: {statistics.mean(u['loop']) / statistics.mean(w['loop']):.2f}x; "
          f"of the sample-epochs: {statistics.mean(u['work']) / statistics.mean(w['work']):.2f}x.")


if __name__ == "__main__":
    main()
