#!/usr/bin/env python3
"""Builds the WordNet gloss classification task (issue #10) from Debian's
`wordnet-base`: each synset's definition, labelled with its lexicographer
file (45 classes: noun.animal, verb.motion, ...).

  * id: stable, from the part of speech and the synset offset:
    pos * 100000000 + offset, with n=1, v=2, a=3, s=4 (adjective satellite), r=5;
  * text: the definition, the gloss up to its first example (`; "...`);
  * label: the lexicographer file number, 0..44 (names in labels.txt);
  * duplicates: identical definitions (whitespace collapsed) under several
    synsets are kept once (the smallest id) when every copy has the same
    label, and dropped entirely when the copies disagree, so no text is in
    both train and test and no text has two answers;
  * split: an id is in test when SHA-256("wordnet-split:" + id) mod 10 == 0.

Writes OUT/train.csv, OUT/test.csv (RFC 4180 quoting; columns id,label,text)
and OUT/labels.txt, and prints counts. Standard library only.
Usage: python3 scripts/make_wordnet_csv.py [OUT=data/wordnet] [--dict /usr/share/wordnet]
"""
import argparse
import csv
import hashlib
import os
import re
import sys
from collections import defaultdict

# lexnames(5WN): the lexicographer files, numbered as in the data files.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
]
POS = {"n": 1, "v": 2, "a": 3, "s": 4, "r": 5}


def synsets(dict_dir):
    """(id, label, definition) for every synset of the four data files."""
    for name in ("noun", "verb", "adj", "adv"):
        path = os.path.join(dict_dir, f"data.{name}")
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if line.startswith("  "):  # the license header
                    continue
                head, sep, gloss = line.partition(" | ")
                fields = head.split()
                if not sep or len(fields) < 3:
                    sys.exit(f"{path}:{line_no}: not a synset line")
                offset, lexfile, pos = int(fields[0]), int(fields[1]), fields[2]
                definition = re.split(r';\s*"', gloss, maxsplit=1)[0]
                definition = " ".join(definition.split())
                if definition:
                    yield POS[pos] * 100_000_000 + offset, lexfile, definition


def in_test(synset_id):
    return hashlib.sha256(f"wordnet-split:{synset_id}".encode()).digest()[0] % 10 == 0


def task_rows(dict_dir):
    """(kept, total, duplicates, conflicting): kept is the task's (id, label, text) rows, sorted by id,
    after the duplicate rules above; the rest are the counts main() prints."""
    by_text = defaultdict(list)
    total = 0
    for synset_id, label, text in synsets(dict_dir):
        by_text[text].append((synset_id, label))
        total += 1
    kept, conflicting, duplicates = [], 0, 0
    for text, copies in by_text.items():
        if len({label for _, label in copies}) > 1:
            conflicting += len(copies)
            continue
        duplicates += len(copies) - 1
        synset_id, label = min(copies)
        kept.append((synset_id, label, text))
    kept.sort()
    return kept, total, duplicates, conflicting


def task_texts(dict_dir="/usr/share/wordnet"):
    """The text column of every row of train.csv and test.csv, in id order (for other scripts that
    must keep clear of the task, such as make_pretrain_corpus.py)."""
    return [text for _, _, text in task_rows(dict_dir)[0]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="data/wordnet")
    ap.add_argument("--dict", default="/usr/share/wordnet", help="wordnet-base's data files")
    a = ap.parse_args()
    kept, total, duplicates, conflicting = task_rows(a.dict)
    os.makedirs(a.out, exist_ok=True)
    counts = {"train": 0, "test": 0}
    writers = {}
    files = {}
    for split in counts:
        files[split] = open(os.path.join(a.out, f"{split}.csv"), "w", newline="", encoding="utf-8")
        writers[split] = csv.writer(files[split], lineterminator="\n")
        writers[split].writerow(["id", "label", "text"])
    for synset_id, label, text in kept:
        split = "test" if in_test(synset_id) else "train"
        writers[split].writerow([synset_id, label, text])
        counts[split] += 1
    for f in files.values():
        f.close()
    with open(os.path.join(a.out, "labels.txt"), "w") as f:
        f.write("".join(f"{i}\t{name}\n" for i, name in enumerate(LEXNAMES)))
    used = len({label for _, label, _ in kept})
    print(f"{total} synsets; {duplicates} duplicate definitions merged, {conflicting} with disagreeing labels "
          f"dropped; {len(kept)} kept in {used} classes: train {counts['train']}, test {counts['test']} "
          f"-> {a.out}/train.csv, test.csv, labels.txt")


if __name__ == "__main__":
    main()
