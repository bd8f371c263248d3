#!/usr/bin/env python3
"""Plots serving latency against connections from `bench/bench_serve.py --json F`
(needs Debian's python3-matplotlib): docs/img/serving_latency.png.
Usage: python3 scripts/plot_serving.py [docs/data/serve.json] [docs/img]"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src = sys.argv[1] if len(sys.argv) > 1 else "docs/data/serve.json"
out = sys.argv[2] if len(sys.argv) > 2 else "docs/img"
os.makedirs(out, exist_ok=True)
d = json.load(open(src))
fig, (lat, thr) = plt.subplots(1, 2, figsize=(10, 4))
for shards in sorted({p["shards"] for p in d["single_sample"]}):
    pts = [p for p in d["single_sample"] if p["shards"] == shards]
    c = [p["connections"] for p in pts]
    lat.plot(c, [p["p50_ms"] for p in pts], "o-", label=f"S={shards} p50")
    lat.plot(c, [p["p99_ms"] for p in pts], "s--", label=f"S={shards} p99")
    thr.plot(c, [p["rps"] for p in pts], "o-", label=f"S={shards}")
for ax in (lat, thr):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent connections (wrk, keep-alive)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
lat.set_yscale("log")
lat.set_ylabel("latency, ms")
lat.set_title("Single-sample predictions: latency")
thr.set_ylabel("requests/s")
thr.set_title("Throughput")
fig.text(0.01, 0.01, f"Fashion-MNIST MLP, {d['cpus']} vCPU, {d['date']}, {d['seconds_per_point']} s per point",
         fontsize=7, color="gray")
fig.tight_layout()
fig.savefig(f"{out}/serving_latency.png", dpi=120)
print(f"wrote {out}/serving_latency.png")
