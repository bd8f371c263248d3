#!/usr/bin/env python3
"""Distributed training and deletion on one machine (standard library only).

Measures, for configs/fashion-mnist.yaml with S=4 shards:
  * the machine's own ceiling: one single-process train alone, then two at once
    (combined training-loop samples/s over one alone),
  * `sisa train` with -np 1 (no mpirun), mpirun -np 2 and -np 3 (one / two workers):
    training-phase time (no process start, no ingest), samples/s, rank 0's CPU time,
  * a batch forget of 20 random ids (touching every shard) with -np 1 and -np 3.
Prints Markdown for docs/benchmarks.md.

Usage: python3 bench/bench_mpi.py [--sisa build/sisa] [--work /tmp/sisa-bench-mpi] [--epochs 20]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

MPIRUN = ["mpirun", "--oversubscribe"]


def env():
    e = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if os.geteuid() == 0:
        e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return e


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env())
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-bench-mpi")
    ap.add_argument("--epochs", type=int, default=20)
    a = ap.parse_args()
    sisa = os.path.abspath(a.sisa)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    sets = ["--set", "sisa.shards=4", "--set", f"train.epochs={a.epochs}"]
    train = [sisa, "train", "-q", "--json", "-c", "configs/fashion-mnist.yaml"] + sets
    out = [f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} vCPU; "
           f"configs/fashion-mnist.yaml with S=4, E={a.epochs}, train.threads=1.", ""]

    # The machine's own ceiling for two CPU-bound processes.
    # One alone before and one after the pair, the faster counts: a single
    # slow "alone" run (noisy neighbours) would otherwise inflate the ceiling.
    alone = run(train + ["-r", f"{a.work}/alone"])
    procs = [subprocess.Popen(train + ["-r", f"{a.work}/pair{i}"], stdout=subprocess.PIPE, text=True, env=env())
             for i in range(2)]
    pair = [json.loads(p.communicate()[0]) for p in procs]
    shutil.rmtree(f"{a.work}/alone")
    alone = max(alone, run(train + ["-r", f"{a.work}/alone"]), key=lambda r: r["samples_per_second"])
    ceiling = sum(p["samples_per_second"] for p in pair) / alone["samples_per_second"]
    out += [f"Ceiling: one train alone (the faster of two runs) ran its loop at {alone['samples_per_second']:.0f} samples/s; two at once "
            f"at {pair[0]['samples_per_second']:.0f} + {pair[1]['samples_per_second']:.0f}: "
            f"**{ceiling:.2f}x** is what two processes can get from this machine.", ""]

    out += ["Rank 0 CPU: all of its CPU time in the training phase, and the part spent only coordinating "
            "(waiting for and handing out jobs; the rest is writing the shard stores just before their "
            "jobs go out).", "",
            "| command | workers | training phase s | samples/s | speed-up | efficiency vs ceiling | "
            "rank 0 CPU s | of which coordinating s | coordinating CPU / wall |",
            "|---|---|---|---|---|---|---|---|---|"]
    base = None
    for np_ in (1, 2, 3):
        d = f"{a.work}/np{np_}"
        r = run((MPIRUN + ["-np", str(np_)] if np_ > 1 else []) + train + ["-r", d])
        phase = r["train_seconds"]
        sps = r["sample_epochs"] / phase
        base = base or phase
        workers = max(np_ - 1, 1)
        speedup = base / phase
        eff = speedup / (ceiling if workers == 2 else 1.0)
        cpu, wait = r["coordinator_cpu_seconds"], r["coordinator_wait_cpu_seconds"]
        coord = f"{wait:.2f} | {wait / phase:.1%}" if np_ > 1 else "- | -"
        out.append(f"| train -np {np_} | {workers}{' (rank 0 trains)' if np_ == 1 else ''} | {phase:.1f} | "
                   f"{sps:.0f} | {speedup:.2f} | {eff:.0%} | {cpu:.2f} | {coord} |")
    ids = ",".join(str(i) for i in random.Random(7).sample(range(60000), 20))
    for np_ in (1, 3):
        d = f"{a.work}/np{np_}"
        r = run((MPIRUN + ["-np", str(np_)] if np_ > 1 else []) +
                [sisa, "forget", "-q", "--json", "-r", d, "--ids", ids])
        phase = r["retrain_phase_seconds"]
        cpu, wait = r["coordinator_cpu_seconds"], r["coordinator_wait_cpu_seconds"]
        coord = f"{wait:.2f} | {wait / phase:.1%}" if np_ > 1 else "- | -"
        out.append(f"| forget 20 ids -np {np_} ({len(r['shards'])} shards) | {max(np_ - 1, 1)} | {phase:.1f} | "
                   f"{sum(s['sample_epochs'] for s in r['shards']) / phase:.0f} | | | {cpu:.2f} | {coord} |")
    same = run([sisa, "status", "--json", "-r", f"{a.work}/np1"])["shard_status"] == \
        run([sisa, "status", "--json", "-r", f"{a.work}/np3"])["shard_status"]
    out += ["", f"Fingerprints after train and forget identical for -np 1 and -np 3: {same}.", ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
