#!/usr/bin/env python3
"""Plots what bench/bench_curves.py measured (needs Debian's python3-matplotlib):
  docs/img/accuracy_vs_shards.png   test accuracy (mean, vote) against the number of shards
  docs/img/deletion_cost_vs_batch.png  retraining time of a batch of K deletions, measured and
                                       modelled, and the full retrain it replaces
Usage: python3 scripts/plot_curves.py [docs/data/curves.json] [docs/img]"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

src = sys.argv[1] if len(sys.argv) > 1 else "docs/data/curves.json"
out = sys.argv[2] if len(sys.argv) > 2 else "docs/img"
os.makedirs(out, exist_ok=True)
d = json.load(open(src))
note = f"{d['config']}, {d['date']}"

s = d["accuracy_vs_shards"]
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot([x["shards"] for x in s], [x["accuracy_mean"] for x in s], "o-", label="posterior mean")
ax.plot([x["shards"] for x in s], [x["accuracy_vote"] for x in s], "s--", label="majority vote")
ax.set_xscale("log")
ax.set_xticks([x["shards"] for x in s], [str(x["shards"]) for x in s])
ax.set_xlabel("shards S")
ax.set_ylabel("test accuracy")
ax.set_title("Fashion-MNIST: accuracy against the number of shards")
ax.grid(alpha=0.3)
ax.legend()
fig.text(0.01, 0.01, note, fontsize=7, color="gray")
fig.tight_layout()
fig.savefig(f"{out}/accuracy_vs_shards.png", dpi=120)

b = d["deletion_cost_vs_batch"]
fig, ax = plt.subplots(figsize=(6, 4))
ks = [x["k"] for x in b]
ax.plot(ks, [x["loop_seconds"] for x in b], "o-", label="measured retraining loop")
ax.plot(ks, [x["model_seconds"] for x in b], "x--", label="cost model (sample-epochs / training rate)")
full = b[0]["full_retrain_loop_seconds"]
ax.plot(ks, [full / x["expected_speedup"] for x in b], ":", label="expected (DESIGN.md, uniform deletions)")
ax.axhline(full, color="gray", lw=1, label=f"full retrain ({full:.1f} s)")
ax.set_xscale("log")
ax.set_xticks(ks, [str(k) for k in ks])
ax.set_xlabel("deletions in one batch K (S=5, R=4)")
ax.set_ylabel("seconds")
ax.set_title("Cost of a batch of deletions")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.text(0.01, 0.01, note, fontsize=7, color="gray")
fig.tight_layout()
fig.savefig(f"{out}/deletion_cost_vs_batch.png", dpi=120)
print(f"wrote {out}/accuracy_vs_shards.png and {out}/deletion_cost_vs_batch.png")
