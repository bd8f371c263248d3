#!/usr/bin/env python3
"""Writes a synthetic tabular data set with data subjects: `people` people with
`per_person` rows each (8 features, 4 classes from a fixed linear rule).
Columns: id, person, f0..f7, label. Standard library only.
Usage: make_data.py OUT.csv [people] [per_person]"""
import random
import sys

out = sys.argv[1]
people = int(sys.argv[2]) if len(sys.argv) > 2 else 300
per_person = int(sys.argv[3]) if len(sys.argv) > 3 else 10
rng = random.Random(5)
weights = [[rng.uniform(-1, 1) for _ in range(8)] for _ in range(4)]
with open(out, "w") as f:
    f.write("id,person," + ",".join(f"f{j}" for j in range(8)) + ",label\n")
    row = 0
    for person in range(people):
        bias = [rng.gauss(0, 0.3) for _ in range(8)]  # each person's rows resemble each other
        for _ in range(per_person):
            x = [rng.gauss(0, 1) + b for b in bias]
            label = max(range(4), key=lambda c: sum(w * v for w, v in zip(weights[c], x)))
            f.write(f"{100000 + row},{person}," + ",".join(f"{v:.5f}" for v in x) + f",{label}\n")
            row += 1
