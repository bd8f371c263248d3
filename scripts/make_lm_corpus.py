#!/usr/bin/env python3
"""Builds a corpus for language-model unlearning: public text from a Debian
package, one sentence a row, with canaries inserted. --corpus picks the text:
  * kjv (default): the King James Bible (`bible-kjv`), one verse a row;
  * wordnet: WordNet's glosses (`wordnet-base`), one gloss a row, in the
    order and with the duplicate rules of make_wordnet_csv.py;
  * gcide: the definitions of the GNU Collaborative International Dictionary
    of English (`dict-gcide`), one cleaned paragraph a row, as
    make_pretrain_corpus.py reads them (entries taken from WordNet dropped).

Why canaries: a language model that memorized a training row can be caught
doing so ("The Secret Sharer", Carlini et al. 2019). Each canary is a sentence
of a fixed format with a random secret, "my secret code is 3 1 4 1 5 9"; the
model's loss on the inserted secrets, ranked against the loss on secrets it
never saw, measures how much it memorized them (exposure, and a membership
attack). Canaries inserted 1, 4 and 16 times give weak to strong memorization;
the held-out canaries, never inserted, are the non-members the attack needs.
After `forget` of a canary (its group: every copy), the model retrained
without it must rank that secret like a held-out one: exact unlearning,
checked from the outside. The verses are the public text the model learns;
the held-out verses measure what forgetting costs (test loss / perplexity).

  * verses: `bible -f Gen1:1-Rev22:21` (the reading code of
    make_pretrain_corpus.py, imported), the verse reference stripped,
    whitespace collapsed; a verse's id is its 1-based position in Bible order
    (1..31102), its group is its id (a gloss's or definition's: its 1-based
    position likewise);
  * split: a row is in test when SHA-256("<corpus>-split:" + str(id)), read
    as a big-endian 256-bit integer, is 0 mod 20 (about 5%; 1530 verses);
  * canaries: "my secret code is D D D D D D", the six digits drawn with
    random.Random(--seed).randrange(10), canary after canary (a secret already
    drawn is drawn again: all secrets distinct); --per-count canaries for each
    count of --repetitions, in that order, then --held-out canaries that are
    never inserted. Canary i (from 1) has group 800000 + i; each inserted copy
    is its own row, with ids from 900001 up, a canary's copies consecutive;
  * OUT (.csv): the train rows in id order (--max-rows: the first N
    only), then the canary copies in id order; columns id,group,text;
  * OUT's sibling <stem>-test.csv: the test verses, same columns;
  * --tokenizer-text (optional): the text a tokenizer for this corpus is
    trained on (`sisa tokenizer`): the train verses, one a line, then the
    canary format with every digit ("my secret code is 0 1 2 ... 9"), since
    the KJV has no digits. No secret is in it, so the tokenizer, a shared
    artifact outside every deletion guarantee, holds none;
  * --secrets (default: canaries.csv next to OUT): one row a canary, columns
    group,repetitions,prefix,secret,ids (ids: the copies' ids, space
    separated; empty, and repetitions 0, for a held-out canary).

CSV: RFC 4180 quoting, UTF-8, "\\n" line ends, as make_wordnet_csv.py writes.
Deterministic: the same options and package give the same bytes (random.Random
seeded with an int draws the same digits on every Python 3). The three files
are written to temporary files, synced, then renamed into place. Only counts
are printed (stderr), never a secret. Standard library only.
Usage: python3 scripts/make_lm_corpus.py OUT.csv [--secrets PATH] [--seed N]
           [--repetitions 1,4,16] [--per-count N] [--held-out N] [--corpus kjv|wordnet|gcide] [--max-rows N]
"""
import argparse
import csv
import hashlib
import io
import os
import random
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # leave no __pycache__ behind from the imports below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_pretrain_corpus  # noqa: E402  (reads the KJV from `bible`)

PROG = "make_lm_corpus"
INSTALL = "apt-get install bible-kjv"
KJV_VERSES = 31102
TEST_MODULUS = 20
PREFIX = "my secret code is"
DIGITS = 6
GROUP_BASE = 800000  # canary i (from 1): group GROUP_BASE + i
ID_BASE = 900000  # inserted copies: ids ID_BASE + 1, ID_BASE + 2, ...
MAX_CANARIES = ID_BASE - GROUP_BASE - 1  # canary groups stay below the first copy id
MAX_COPIES = 1_000_000  # a guard against typing an extra zero
HEADER = ["id", "group", "text"]
SECRETS_HEADER = ["group", "repetitions", "prefix", "secret", "ids"]


def fail(message):
    make_pretrain_corpus.fail(message, PROG, INSTALL)


def in_test(row_id, corpus="kjv"):
    digest = hashlib.sha256(f"{corpus}-split:{row_id}".encode()).digest()
    return int.from_bytes(digest, "big") % TEST_MODULUS == 0


def verses():
    """(id, text) for every verse of the KJV, in order."""
    if shutil.which("bible") is None:
        fail("the `bible` program (package bible-kjv) is not on PATH")
    texts = make_pretrain_corpus.kjv_verses(PROG, INSTALL)
    if len(texts) != KJV_VERSES:  # ids are positions: a verse missing or extra would move them
        fail(f"`bible -f Gen1:1-Rev22:21` gave {len(texts)} non-empty verses, expected {KJV_VERSES}")
    return list(enumerate(texts, 1))


def glosses():
    """(id, text) for every gloss of the WordNet task (make_wordnet_csv.py), in its order."""
    import make_wordnet_csv  # noqa: E402
    if not os.path.isdir("/usr/share/wordnet"):
        make_pretrain_corpus.fail("WordNet is not installed", PROG, "apt-get install wordnet-base")
    return list(enumerate(make_wordnet_csv.task_texts(), 1))


def definitions(limit):
    """(id, text) for the first `limit` GCIDE definitions (None: all of them)."""
    lines, _, _ = make_pretrain_corpus.gcide_lines(limit, None)
    return list(enumerate(lines, 1))


def corpus_rows(corpus, max_rows):
    """(id, text) of the corpus, enough of it for max_rows train rows."""
    if corpus == "kjv":
        return verses()
    if corpus == "wordnet":
        return glosses()
    # GCIDE is long to read: about 5% more than the train rows wanted, for the test split.
    return definitions(None if max_rows is None else max_rows * TEST_MODULUS // (TEST_MODULUS - 1) + 200)


def draw_secrets(count, seed):
    """count distinct secrets "D D D D D D", in draw order."""
    rng = random.Random(seed)
    secrets, seen = [], set()
    while len(secrets) < count:
        secret = " ".join(str(rng.randrange(10)) for _ in range(DIGITS))
        if secret not in seen:
            seen.add(secret)
            secrets.append(secret)
    return secrets


def canaries(repetitions, per_count, held_out, seed):
    """(group, repetitions, secret, copy ids) for every canary: the inserted ones, then the held-out."""
    counts = [r for r in repetitions for _ in range(per_count)] + [0] * held_out
    result, next_id = [], ID_BASE + 1
    for index, (count, secret) in enumerate(zip(counts, draw_secrets(len(counts), seed)), 1):
        result.append((GROUP_BASE + index, count, secret, list(range(next_id, next_id + count))))
        next_id += count
    return result


def csv_bytes(header, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_all(files):
    """Writes {path: bytes}: every file to a temporary file beside it, synced, then each renamed
    into place and its directory synced."""
    temps = []
    try:
        for path, data in files.items():
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=directory)
            temps.append(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in zip(list(temps), files):
            os.replace(tmp, path)
            temps.remove(tmp)
    finally:
        for tmp in temps:
            os.unlink(tmp)
    for directory in sorted({os.path.dirname(os.path.abspath(path)) for path in files}):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def non_negative(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def repetition_list(text):
    counts = []
    for part in text.split(","):
        try:
            count = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {part.strip()!r} is not an integer (expected e.g. 1,4,16)")
        if count < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: {count} is not a positive count "
                                             "(canaries that are never inserted: --held-out)")
        if count in counts:
            raise argparse.ArgumentTypeError(f"{text!r}: {count} is given twice")
        counts.append(count)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the training CSV to write, e.g. data/kjv-canaries.csv (the test split goes "
                    "to its sibling <stem>-test.csv)")
    ap.add_argument("--secrets", metavar="PATH", help="the canaries' secrets (default: canaries.csv in OUT's "
                    "directory)")
    ap.add_argument("--seed", type=non_negative, default=1, metavar="N",
                    help="seed of the canaries' digits (default: 1)")
    ap.add_argument("--repetitions", type=repetition_list, default=[1, 4, 16], metavar="R,R,...",
                    help="how many times a canary is inserted: distinct positive counts (default: 1,4,16)")
    ap.add_argument("--per-count", type=non_negative, default=40, metavar="N",
                    help="canaries for each count of --repetitions (default: 40: the audit's standard errors "
                    "of a mean exposure are then about 0.25 bits, of an AUC about 0.06)")
    ap.add_argument("--held-out", type=non_negative, default=40, metavar="N",
                    help="canaries never inserted, the attack's non-members (default: 40)")
    ap.add_argument("--tokenizer-text", metavar="PATH", help="also write the tokenizer's training text (the "
                    "train verses and the canary format; no secret)")
    ap.add_argument("--corpus", choices=["kjv", "wordnet", "gcide"], default="kjv",
                    help="the public text (default: kjv)")
    ap.add_argument("--max-rows", "--max-verses", type=non_negative, default=None, metavar="N", dest="max_rows",
                    help="keep only the first N train rows (default: all; the test split is kept whole, but for "
                    "gcide, which is read only as far as needed)")
    a = ap.parse_args()

    if not a.out.endswith(".csv") or os.path.basename(a.out) == ".csv":
        ap.error(f"OUT must be a file name ending in .csv, not {a.out!r}")
    test_path = a.out[:-len(".csv")] + "-test.csv"
    secrets_path = a.secrets if a.secrets is not None else os.path.join(os.path.dirname(a.out), "canaries.csv")
    paths = [a.out, test_path, secrets_path] + ([a.tokenizer_text] if a.tokenizer_text else [])
    if len({os.path.realpath(p) for p in paths}) != len(paths):
        ap.error(f"the output files must differ: OUT {a.out}, its test split {test_path}, --secrets {secrets_path}")
    for p in paths:
        if os.path.isdir(p):
            ap.error(f"{p} is a directory")
    inserted = a.per_count * len(a.repetitions)
    if inserted + a.held_out > MAX_CANARIES:
        ap.error(f"{inserted + a.held_out} canaries: at most {MAX_CANARIES} (their groups, from {GROUP_BASE + 1}, "
                 f"must stay below the first copy id {ID_BASE + 1})")
    copies = a.per_count * sum(a.repetitions)
    if copies > MAX_COPIES:
        ap.error(f"{copies} canary rows (--per-count x the sum of --repetitions): at most {MAX_COPIES}")

    train, test = [], []
    for row_id, text in corpus_rows(a.corpus, a.max_rows):
        if row_id >= GROUP_BASE:
            fail(f"the {a.corpus} corpus has more than {GROUP_BASE - 1} rows: their ids would meet the canaries'")
        (test if in_test(row_id, a.corpus) else train).append((row_id, row_id, text))
    if a.max_rows is not None:
        train = train[:a.max_rows]
    marks = canaries(a.repetitions, a.per_count, a.held_out, a.seed)
    canary_rows = [(copy_id, group, f"{PREFIX} {secret}")
                   for group, _, secret, ids in marks for copy_id in ids]
    secret_rows = [(group, count, PREFIX, secret, " ".join(map(str, ids))) for group, count, secret, ids in marks]
    files = {
        a.out: csv_bytes(HEADER, train + canary_rows),
        test_path: csv_bytes(HEADER, test),
        secrets_path: csv_bytes(SECRETS_HEADER, secret_rows),
    }
    if a.tokenizer_text:
        digits = " ".join(str(d) for d in range(10))
        files[a.tokenizer_text] = "".join(f"{text}\n" for _, _, text in train + [(0, 0, f"{PREFIX} {digits}")]).encode()
    write_all(files)
    print(f"wrote {a.out}: {len(train)} {a.corpus} rows + {len(canary_rows)} canary rows ({inserted} canaries x "
          f"{'/'.join(map(str, a.repetitions))}); {test_path}: {len(test)} rows; secrets ({len(marks)} canaries, "
          f"{a.held_out} held out) -> {secrets_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
