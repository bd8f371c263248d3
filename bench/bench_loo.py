#!/usr/bin/env python3
"""Leave-one-out unlearning (issues #11, #25), M=4 teachers, on one of several corpora.

Builds a corpus with canaries (scripts/make_lm_corpus.py --corpus: the KJV,
WordNet glosses or GCIDE definitions, optionally only the first --max-rows
rows), --per-count canaries inserted 1, 4, 8 and 16 times and as many held
out, and a tokenizer trained on its text without any secret. Trains
configs/kjv-loo.yaml on it (only data.* and seed changed), audits, forgets
every inserted canary (one request, by group; --delete-every K: every K-th, the
others retained and reported apart), audits again, then trains the
same config without the canary rows (`--exclude-ids`): the gold standard, a
student retrained from scratch without them. Reports per copy count: mean
exposure (sampled and skew-normal extrapolated), greedy and beam extraction,
membership AUC, with standard errors, for (a) the student before deletion,
(b) the student after the LOO update, (c) the retrained student, (d) the
teachers' ensemble after the exact deletion; held-out perplexity of each; the
update's stopping criterion (before/after, steps, reached) and its wall time
against retraining the student.

Writes docs/data/loo-<corpus>.json (--out) and prints Markdown. Standard
library only.

Usage: python3 bench/bench_loo.py [--corpus kjv|wordnet|gcide] [--max-rows N] [--per-count 20]
                                  [--sisa build/sisa] [--work /tmp/sisa-loo] [--candidates 10000]
                                  [--canary-seed S] [--out PATH] [--set KEY=VALUE] [--delete-every K]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine, run  # noqa: E402

CONFIG = "configs/kjv-loo.yaml"


def audit(sisa, run_dir, candidates, secrets):
    result, wall = run([sisa, "audit", "-q", "--json", "-r", run_dir, "--secrets", secrets,
                        "--candidates", str(candidates)])
    result["wall_seconds"] = wall
    return result


def rows(model):
    """{repetitions: summary} for canaries inserted that many times (held-out ones: 0). Each secrets
    file the bench audits holds one kind of inserted canary (deleted or retained), so there is one
    summary per count."""
    return {g["repetitions"]: g for g in model["by_repetitions"]}


def write_secrets(path, header, lines):
    with open(path, "w") as f:
        f.write("\n".join(",".join(l) for l in [header] + lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-loo")
    ap.add_argument("--candidates", type=int, default=10000)
    ap.add_argument("--out", default=None, help="default: docs/data/loo-<corpus>[-<max-rows>].json")
    ap.add_argument("--corpus", choices=["kjv", "wordnet", "gcide"], default="kjv")
    ap.add_argument("--max-rows", type=int, default=None, help="only the first N train rows of the corpus")
    ap.add_argument("--vocab-size", type=int, default=None, help="the tokenizer's pieces (kjv: 2000, else 1000)")
    ap.add_argument("--per-count", type=int, default=20, help="canaries per copy count, and held out")
    ap.add_argument("--canary-seed", type=int, default=1, help="seed of the canaries' digits")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the config for both trains (e.g. loo.batch_size=128)")
    ap.add_argument("--delete-every", type=int, default=1, metavar="K",
                    help="forget every K-th inserted canary of each count (default 1: all); with K > 1 the "
                         "others are retained and audited separately (does the update forget only what was asked?)")
    a = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    name = a.corpus + (f"-{a.max_rows}" if a.max_rows else "")
    out = a.out or f"docs/data/loo-{name}" + (f"-every{a.delete_every}" if a.delete_every > 1 else "") + ".json"
    vocab = a.vocab_size or (2000 if a.corpus == "kjv" else 1000)
    stem = f"data/lm-{name}-p{a.per_count}-s{a.canary_seed}"
    secrets, tokenizer = stem + "-secrets.csv", stem + f".v{vocab}.tokenizer.model"
    if not os.path.exists(stem + ".csv"):
        cmd = ["python3", "scripts/make_lm_corpus.py", stem + ".csv", "--corpus", a.corpus, "--secrets", secrets,
               "--repetitions", "1,4,8,16", "--per-count", str(a.per_count), "--held-out", str(a.per_count),
               "--seed", str(a.canary_seed), "--tokenizer-text", stem + "-tokenizer.txt"]
        subprocess.run(cmd + (["--max-rows", str(a.max_rows)] if a.max_rows else []), check=True)
    if not os.path.exists(tokenizer):
        subprocess.run([a.sisa, "tokenizer", "-q", "--corpus", stem + "-tokenizer.txt", "--vocab-size", str(vocab),
                        "-o", tokenizer], check=True)
    corpus = ["--set", "data.train=" + os.path.abspath(stem + ".csv"),
              "--set", "data.test=" + os.path.abspath(stem + "-test.csv"),
              "--set", "data.tokenizer=" + os.path.abspath(tokenizer)]
    for kv in a.set:
        corpus += ["--set", kv]
    subprocess.run(["rm", "-rf", a.work], check=True)
    os.makedirs(a.work)
    with open(secrets) as f:
        header, *lines = [line.rstrip("\n").split(",") for line in f]
    held_out = [l for l in lines if int(l[1]) == 0]
    inserted = [l for l in lines if int(l[1]) > 0]
    deleted, retained = [], []
    for reps in sorted({int(l[1]) for l in inserted}):
        of_count = [l for l in inserted if int(l[1]) == reps]
        deleted += of_count[::a.delete_every]
        retained += [l for i, l in enumerate(of_count) if i % a.delete_every]
    secrets_deleted = os.path.join(a.work, "secrets-deleted.csv")
    secrets_retained = os.path.join(a.work, "secrets-retained.csv")
    write_secrets(secrets_deleted, header, deleted + held_out)
    write_secrets(secrets_retained, header, retained + held_out)
    groups = [l[0] for l in deleted]
    copies = [i for l in deleted for i in l[4].split()]
    with open(os.path.join(a.work, "canary-ids.txt"), "w") as f:
        f.write("\n".join(copies) + "\n")

    loo_run, gold_run = os.path.join(a.work, "loo"), os.path.join(a.work, "gold")
    print("train (teachers + student)", file=sys.stderr)
    trained, train_wall = run([a.sisa, "train", "-q", "--json", "-c", CONFIG, "-r", loo_run] + corpus)
    print("audit before", file=sys.stderr)
    before = audit(a.sisa, loo_run, a.candidates, secrets_deleted)
    before_retained = retained and audit(a.sisa, loo_run, a.candidates, secrets_retained)
    print(f"forget {len(groups)} of {len(inserted)} inserted canaries", file=sys.stderr)
    receipt, forget_wall = run([a.sisa, "forget", "-q", "--json", "-r", loo_run, "--groups", ",".join(groups)])
    print("audit after", file=sys.stderr)
    after = audit(a.sisa, loo_run, a.candidates, secrets_deleted)
    after_retained = retained and audit(a.sisa, loo_run, a.candidates, secrets_retained)
    print("train without the deleted canaries (the gold standard)", file=sys.stderr)
    gold_trained, gold_wall = run([a.sisa, "train", "-q", "--json", "-c", CONFIG, "-r", gold_run, "--exclude-ids",
                                   os.path.join(a.work, "canary-ids.txt")] + corpus)
    gold = audit(a.sisa, gold_run, a.candidates, secrets_deleted)
    gold_retained = retained and audit(a.sisa, gold_run, a.candidates, secrets_retained)
    same_teachers = subprocess.run(
        [a.sisa, "status", "-q", "--json", "-r", loo_run], capture_output=True, text=True).stdout
    gold_status = subprocess.run([a.sisa, "status", "-q", "--json", "-r", gold_run], capture_output=True, text=True).stdout
    fingerprints = lambda s: [x["state_digest"] for x in json.loads(s)["shard_status"]]  # noqa: E731
    columns = {
        "a_student_before": before["models"]["student"],
        "b_student_after_loo": after["models"]["student"],
        "c_student_retrained": gold["models"]["student"],
        "d_teachers_after_exact": after["models"]["teachers"],
        "teachers_before": before["models"]["teachers"],
    }
    if retained:  # the canaries not asked for: their exposure should not move
        columns.update({
            "e_retained_student_before": before_retained["models"]["student"],
            "f_retained_student_after_loo": after_retained["models"]["student"],
            "g_retained_student_retrained": gold_retained["models"]["student"],
        })
    result = {
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "config": CONFIG,
        "corpus": a.corpus,
        "max_rows": a.max_rows,
        "tokenizer_pieces": vocab,
        "overrides": a.set,
        "canaries_per_count": a.per_count,
        "canary_seed": a.canary_seed,
        "delete_every": a.delete_every,
        "deleted_canaries": len(deleted),
        "retained_canaries": len(retained),
        "candidates": a.candidates,
        "samples": trained["samples"],
        "train_seconds": trained["total_seconds"],
        "student_train_seconds": trained["student"]["seconds"],
        "gold_student_train_seconds": gold_trained["student"]["seconds"],
        "forget_seconds": receipt["seconds"],
        "teachers_retrain_seconds": receipt["retrain_phase_seconds"],
        "loo_update_seconds": receipt["student"]["seconds"],
        "loo": {k: receipt["student"].get(k) for k in ("stop", "steps", "lr", "final_lr", "temperature", "retain_batch",
                                                       "kl_before", "kl_after", "criterion", "warning")},
        "deleted_rows": receipt["deleted_count"],
        "teachers_equal_gold": fingerprints(same_teachers) == fingerprints(gold_status),
        "columns": {},
    }
    for column, model in columns.items():
        result["columns"][column] = {"heldout_perplexity": model.get("heldout_perplexity"),
                                   "by_repetitions": rows(model)}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")

    print(f"Machine: {result['machine']}; {result['date']}; {CONFIG} on {name}; {result['samples']} rows; "
          f"{a.per_count} canaries per count; {a.candidates} candidates per canary.\n")
    print("| model | reps | exposure (sampled, +-SE) | exposure (skew-normal) | greedy extracted | beam extracted | "
          "membership AUC (+-SE) | held-out perplexity |")
    print("|---|---|---|---|---|---|---|---|")
    for column, col in result["columns"].items():
        for reps in sorted(col["by_repetitions"], key=int):
            g = col["by_repetitions"][reps]
            se = lambda k: "-" if g.get(k) is None else f"{g[k]:.2f}"  # noqa: E731
            auc = "-" if g["membership_auc"] is None else f"{g['membership_auc']:.2f} +-{se('membership_auc_standard_error')}"
            print(f"| {column} | {reps} | {g['mean_exposure']:.2f} +-{se('mean_exposure_standard_error')} | "
                  f"{g['mean_exposure_extrapolated']:.2f} | "
                  f"{g['greedy_extracted']}/{g['canaries']} | {g['beam_extracted']}/{g['canaries']} | {auc} | "
                  f"{col['heldout_perplexity']:.2f} |")
    ratio = result["gold_student_train_seconds"] / result["loo_update_seconds"]
    print(f"\nLOO update {result['loo_update_seconds']:.1f} s; retraining the student "
          f"{result['gold_student_train_seconds']:.0f} s ({ratio:.1f}x); teachers' exact retrain "
          f"{result['teachers_retrain_seconds']:.0f} s; teachers equal the gold run's: {result['teachers_equal_gold']}")
    loo = result["loo"]
    crit = loo.get("criterion") or {}
    if crit:
        print(f"stop: {loo['stop']}; {loo['steps']} steps, final lr {loo['final_lr']}; largest z "
              f"{crit['max_z']['before']:.2f} -> {crit['max_z']['after']:.2f} (level {crit['max_z']['level']:.2f}); "
              f"mean z {crit['mean_z']['before']:.2f} -> {crit['mean_z']['after']:.2f} "
              f"(level {crit['mean_z']['level']:.2f}); reached: {crit['reached']}; {loo.get('warning') or ''}")


if __name__ == "__main__":
    main()
