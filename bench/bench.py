#!/usr/bin/env python3
"""Benchmarks for sisa on Fashion-MNIST (standard library only).

Runs the real CLI and prints a Markdown report (copy it into docs/benchmarks.md):
  * train time, samples/s, test accuracy (mean and vote) for configs/fashion-mnist.yaml
  * 20 single deletions of random ids, each against the SISA cost model for its slice
  * a batch of 10 and of 100 random ids, and a full retrain
  * the public reference implementation's configuration (configs/reference-study.yaml)
    with the BLAS sisa installs (OpenBLAS) and with Debian's reference BLAS

Usage: python3 bench/bench.py [--sisa build/sisa] [--work /tmp/sisa-bench] [--singles 20]
"""
import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time

REF_BLAS_DIR = "/usr/lib/x86_64-linux-gnu/blas"  # Debian's reference libblas.so.3


def run(cmd, env=None):
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout), wall


def stage_epochs(E, R):
    return [0] + [(2 * E * r) // (R + 1) - (2 * E * (r - 1)) // (R + 1) for r in range(1, R + 1)]


def cost_fraction(E, R, first):
    """Share of one shard's full training that a retrain from stage `first` costs."""
    e = stage_epochs(E, R)
    return sum(e[r] * r for r in range(first, R + 1)) / sum(e[r] * r for r in range(1, R + 1))


def expected_speedup(E, R, S, K):
    e = stage_epochs(E, R)
    num = sum(e[r] * r for r in range(1, R + 1))
    den = sum(e[r] * r * (1 - (1 - r / (R * S)) ** K) for r in range(1, R + 1))
    return num / den


M64 = (1 << 64) - 1


def mix64(x):
    """SplitMix64 finalizer, as src/core/placement.cpp (pinned by the same test vector)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def tag_hash(tag):
    h = 0xCBF29CE484222325
    for ch in tag.encode():
        h = ((h ^ ch) * 0x100000001B3) & M64
    return h


def derive(seed, tag, *words):
    h = mix64(seed ^ mix64(tag_hash(tag)))
    for w in words:
        h = mix64(h ^ mix64(w))
    return h


def slice_of(seed, key, slices):
    return 1 + derive(seed, "slice", key) % slices


assert mix64(0) == 0xE220A8397B1DCDAF and derive(42, "shard", 4711) == 4302220107259773584


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} vCPU, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-bench")
    ap.add_argument("--singles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-reference", action="store_true")
    a = ap.parse_args()
    sisa = os.path.abspath(a.sisa)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    out = [f"Machine: {machine()}  ", f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}  ",
           f"Binary: {sisa}", ""]

    # ---- default config ----------------------------------------------------
    cfg = "configs/fashion-mnist.yaml"
    run_dir = os.path.join(a.work, "fmnist")
    tr, tr_wall = run([sisa, "train", "-q", "--json", "-c", cfg, "-r", run_dir], env)
    pr, _ = run([sisa, "predict", "-q", "--json", "-r", run_dir], env)
    st, _ = run([sisa, "status", "--json", "-r", run_dir], env)
    S, R = st["shards"], st["slices"]
    E = 20
    out += ["## configs/fashion-mnist.yaml (MLP 784-256-10, Adam, S=5, R=4, E=20)", "",
            "| metric | value |", "|---|---|",
            f"| train wall time (process) | {tr_wall:.1f} s |",
            f"| ingest (read + place) | {tr['ingest_seconds']:.2f} s |",
            f"| training loop | {tr['loop_seconds']:.1f} s |",
            f"| samples/s (training loop) | {tr['samples_per_second']:.0f} |",
            f"| test accuracy, posterior mean | {pr['accuracy_mean']:.4f} |",
            f"| test accuracy, majority vote | {pr['accuracy_vote']:.4f} |", ""]

    # ---- single deletions ----------------------------------------------------
    rng = random.Random(a.seed)
    ids = rng.sample(range(60000), a.singles + 110)
    rows, ratios, overheads = [], [], []
    for i in range(a.singles):
        rec, wall = run([sisa, "forget", "-q", "--json", "-r", run_dir, "--ids", str(ids[i])], env)
        sh = rec["shards"][0]
        first = sh["retrained_stages"][0]
        # The cost model for this deletion's actual slice: the samples x epochs it
        # retrains, at the training run's measured rate.
        model = sh["sample_epochs"] / tr["samples_per_second"]
        share = cost_fraction(E, R, first)
        loop = rec["training_seconds"]
        ratio = loop / model
        overhead = wall - loop
        ratios.append(ratio)
        overheads.append(overhead)
        rows.append(f"| {ids[i]} | {sh['shard']} | {first} | {share:.2f} | {sh['sample_epochs']} | {model:.2f} | {loop:.2f} | {ratio:.2f} | "
                    f"{rec['plan_seconds']:.2f} | {rec['seconds'] - loop:.2f} | {overhead:.2f} | {wall:.2f} |")
    out += [f"## {a.singles} single deletions (random ids, seed {a.seed})", "",
            "Model: the samples x epochs this deletion retrains (stages r*..R of its shard, "
            "sum_{r>=r*} e_r n_r) at the training run's measured rate "
            f"({tr['samples_per_second']:.0f} samples/s); 'share' is DESIGN.md's "
            "sum_{r>=r*} e_r r / sum_r e_r r of one shard's training. Overhead = process wall time minus training loop "
            "(process start ~0.65 s, plan = read + hash + decode the shard's store and checkpoint, "
            "store/checkpoint rewrite, publish, purge, syncs).", "",
            "| id | shard | r* | share | sample-epochs | model s | loop s | loop/model | plan s | store+ckpt+publish s | overhead s | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"] + rows
    ratios.sort()
    overheads.sort()
    out += ["", f"loop/model: median {ratios[len(ratios)//2]:.2f}, min {ratios[0]:.2f}, max {ratios[-1]:.2f}; "
            f"fixed overhead: median {overheads[len(overheads)//2]:.2f} s, max {overheads[-1]:.2f} s", ""]

    # ---- batches and full retrain -------------------------------------------
    out += ["## Batches", "", "Model s: the batch's sample-epochs at the training rate; expected speed-up: "
            "DESIGN.md's formula for K uniformly random deletions.", "",
            "| batch | shards retrained | model s | loop s | wall s | full retrain loop s | "
            "speed-up (loop) | expected speed-up |", "|---|---|---|---|---|---|---|---|"]
    start = a.singles
    for k in (10, 100):
        batch = ids[start:start + k]
        start += k
        rec, wall = run([sisa, "forget", "-q", "--json", "-r", run_dir, "--ids",
                         ",".join(map(str, batch))], env)
        loop = rec["training_seconds"]
        model = sum(sh["sample_epochs"] for sh in rec["shards"]) / tr["samples_per_second"]
        out.append(f"| {k} | {len(rec['shards'])} | {model:.1f} | {loop:.1f} | {wall:.1f} | {tr['loop_seconds']:.1f} | "
                   f"{tr['loop_seconds'] / loop:.2f} | {expected_speedup(E, R, S, k):.2f} |")
    vr_t0 = time.monotonic()
    vr, _ = run([sisa, "verify", "-q", "--json", "-r", run_dir], env)
    out += ["", f"`sisa verify` after all deletions: identical = {vr['identical']} "
            f"({time.monotonic() - vr_t0:.1f} s: a full retrain of every shard)", ""]

    # ---- durability ---------------------------------------------------------------
    # Deletions in the last slice (the cheapest retrain, so syncs weigh most),
    # alternating syncs on and off (SISA_UNSAFE_NO_SYNC=1, benchmarks only).
    used = set(ids[:start])
    last = [i for i in range(60000) if i not in used and slice_of(1, i, R) == R]
    rng.shuffle(last)
    timings = {"on": [], "off": []}
    for n in range(8):
        mode = "on" if n % 2 == 0 else "off"
        e2 = dict(env, SISA_UNSAFE_NO_SYNC="1") if mode == "off" else env
        rec, wall = run([sisa, "forget", "-q", "--json", "-r", run_dir, "--ids", str(last[n])], e2)
        timings[mode].append((wall, rec["total_seconds"], rec["training_seconds"]))
    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]
    on_wall, off_wall = med([t[0] for t in timings["on"]]), med([t[0] for t in timings["off"]])
    on_in, off_in = med([t[1] for t in timings["on"]]), med([t[1] for t in timings["off"]])
    out += ["## Durability", "", "Single deletions in the last slice, 4 with syncs and 4 without "
            "(`SISA_UNSAFE_NO_SYNC=1`, for this measurement only), medians:", "",
            "| | syncs on | syncs off | cost of durability |", "|---|---|---|---|",
            f"| process wall s | {on_wall:.2f} | {off_wall:.2f} | {on_wall - off_wall:+.2f} s "
            f"({100 * (on_wall - off_wall) / on_wall:+.1f}%) |",
            f"| forget() s (excl. process start) | {on_in:.2f} | {off_in:.2f} | {on_in - off_in:+.2f} s "
            f"({100 * (on_in - off_in) / on_in:+.1f}%) |", ""]
    # Recovery: kill a forget mid-retrain, then time `sisa recover` (it finishes the request).
    victim = ",".join(str(i) for i in last[8:11])
    p = subprocess.Popen([sisa, "forget", "-q", "-r", run_dir, "--ids", victim], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    p.kill()
    p.wait()
    rec, wall = run([sisa, "recover", "-q", "--json", "-r", run_dir], env)
    out += [f"Recovery after SIGKILL 2.5 s into a 3-id forget: `sisa recover` took {wall:.2f} s "
            f"(resumed requests {rec['resumed_requests']}, removed {len(rec['removed_files'])} "
            "stray file(s)); it re-runs the interrupted retrain from the last published generation.", ""]

    # ---- reference configuration ----------------------------------------------
    if not a.skip_reference:
        out += ["## The reference implementation's configuration (configs/reference-study.yaml)", "",
                "MLP 784-128(tanh)-10, SGD lr 0.001, batch 16, E=20, S=5, R=4.", "",
                "| BLAS | training loop s | samples/s | accuracy vote | accuracy mean |", "|---|---|---|---|---|"]
        for name, extra in (("OpenBLAS (as sisa installs it)", {}),
                            ("reference BLAS (libblas3)", {"LD_LIBRARY_PATH": REF_BLAS_DIR})):
            d = os.path.join(a.work, "ref-" + ("ref" if extra else "openblas"))
            e2 = dict(env, **extra)
            t, _ = run([sisa, "train", "-q", "--json", "-c", "configs/reference-study.yaml", "-r", d], e2)
            p, _ = run([sisa, "predict", "-q", "--json", "-r", d], e2)
            out.append(f"| {name} | {t['loop_seconds']:.1f} | {t['samples_per_second']:.0f} | "
                       f"{p['accuracy_vote']:.4f} | {p['accuracy_mean']:.4f} |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
