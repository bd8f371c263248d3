#!/usr/bin/env python3
"""Builds the public text corpus for masked-LM pretraining of a small text
backbone, one sentence per line, from two Debian packages:

  * `bible-kjv`: the King James Bible, one verse per line (31,102 verses), the
    verse reference stripped;
  * `dict-gcide`: the Collaborative International Dictionary of English
    (Webster's 1913 and its later additions): one line per definition, note
    or quotation paragraph, in the dictionary's order.

Why the WordNet entries go: the backbone pretrained on this text is then
fine-tuned on the WordNet gloss classification task (scripts/make_wordnet_csv.py).
GCIDE copied thousands of senses from WordNet 1.5/1.6, glosses included, so
as it stands it holds much of that task's text, test split included. Every
GCIDE chunk (the lines since the previous source tag or headword, up to and
including its source tag such as [1913 Webster] or [WordNet 1.5 +PJC]) whose
tag or text mentions WordNet is removed, and so is an untagged chunk in
WordNet's style ([Narrower terms: ...], [Ant: ...], Also See:). That leaves
what WordNet itself took from Webster's 1913: some 0.5% of WordNet's glosses
("the act of cleaving or splitting") are found word for word in Webster's
definitions. So, last, every line (KJV and GCIDE) that contains a gloss of
the task is dropped: the gloss texts exactly as make_wordnet_csv.py writes
them to train.csv and test.csv (imported from it, read from `wordnet-base`),
compared with whitespace collapsed and case ignored; a gloss of 4 words or
more is looked for anywhere in a line, a shorter one ("a hard blow") only as
the whole line. The output contains no gloss of the task, test split
included, and the backbone never sees the glosses it is tested on.
--keep-wordnet-glosses turns this last step off.

Kept chunks lose the headword lines (pronunciation, etymology), Syn: lists,
source tags, sense numbers, pronunciations and quotation attributions
("--Shak."); {} markup is dropped, accent codes such as ["e] and [ae] become
letters, whitespace is collapsed; lines of fewer than 4 words are dropped,
and so is a GCIDE line already written. The 00-database-* records (license
and preamble) are skipped.

Deterministic: the same packages give the same bytes (source order, KJV
first, no shuffling); the file is written atomically. Standard library only.
Usage: python3 scripts/make_pretrain_corpus.py OUT.txt [--max-gcide-lines N]
           [--wordnet-dict DIR] [--keep-wordnet-glosses]
"""
import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_wordnet_csv  # noqa: E402  (the task's gloss texts, parsed as the task builder parses them)

GCIDE_DICT = "/usr/share/dictd/gcide.dict.dz"
GCIDE_INDEX = "/usr/share/dictd/gcide.index"
WORDNET_DICT = "/usr/share/wordnet"
INSTALL = "apt-get install bible-kjv dict-gcide wordnet-base"
MIN_WORDS = 4
# A gloss of this many words or more is looked for anywhere in a line; a shorter one only as the line.
GLOSS_WORDS = 4

# `bible -f` (pretty-printing off): "Ge1:1 In the beginning ...", "1Sm3:4 ...", one verse a line.
VERSE = re.compile(r"([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)")

# A bracketed group that names where a sense came from: [1913 Webster], [WordNet 1.5 +PJC],
# [Webster 1913 Suppl.], [PJC], [Century Dict. 1906], [RDH], [AS], ... (not [Obs.], [Written also ...]).
SOURCE = re.compile(r"(?i)webster|wordnet|century dict|"
                    r"^(\s*\+?\s*(PJC|AS|RDH|GG|RP|CM|JG|MW10|PC|JC|RHUD|MI11)\.?)+\s*$")
BRACKETED = re.compile(r"\[([^\[\]]*)\]")
# WordNet's own material: its name (also in broken tags such as "[WordNet 1.5" or "Webster + WordNet
# 1.5]"), its sense references ("candelabra[wn1]", "(WN definition 5)") and its relation lists.
WORDNET = re.compile(r"(?i)wordnet|\[wn\d|\bWN definition|\[Narrower terms|\[Ant:|\bAlso See:")
# A headword line: "Abandon \A*ban"don\ ([.a]*b[a^]n"d[u^]n), v. t. [imp. & p. p. ..." at column 0.
HEADWORD = re.compile(r"^\S[^\n]*\\", re.M)
PRONUNCIATION = re.compile(r"\\[^\\\n]*\\")
# Parts of speech and inflections left over from a headword: "n.", "a.", "v. t.", "pl.", "imp. & p. p.".
GRAMMAR = re.compile(r"(?:(?:n|a|adj|adv|v|t|i|prep|conj|interj|pron|pl|sing|imp|p|pr|pres|obs|prop|vb|"
                     r"compar|superl|fem|masc)\.(?:\s*[,;&]\s*|\s+|$))+")
# A pronunciation, known by its syllable marks: (ăb*dŏm`ĭ*nŏs"kō*py̆), (sl[i^]t"sh[e^]l`).
SYLLABLES = r"\((?=[^()]*\w[*\"`]\w)[^()]*\)"
INLINE_PRONUNCIATION = re.compile(r"\s" + SYLLABLES)
# What may open a paragraph and is not its text: a pronunciation, alone or after a form ("Abilities
# (ȧ*bĭl"ĭ*tĭz).", "pl. Abaci (-sī)."), parts of speech, an etymology or inflection in brackets
# ("[L. abacus, abax]", but not "[Passion] would give"), sense numbers ("1.", "(a)"), "Note:", "Usage:".
LEAD = re.compile(r"^(?:(?:pl\.\s+)?(?:[^\s(]+\s+)?" + SYLLABLES + r"[.,;]?\s*|pl\.\s+[^\s(]+\s+\([^()]*\)[.,;]?\s+|"
                  + GRAMMAR.pattern + r"|\[[^\[\]]*[.+:;=][^\[\]]*\]\s*|\d+\.\s+|\([a-z]\)\s+|(?:Note|Usage)\s*:\s*)+")
# "--Shak.", "--I. Taylor.", "--Jude 21.", "--[RHUD]" after a quotation: up to the next quotation
# mark or the paragraph's end, when that is at most 6 words.
ATTRIBUTION = re.compile(r"(?:^|\s)--(?=[^\s-])[^\s\"]*(?:\s+[^\s\"]+)*?(?=\s+\"|$)")
# A run-on derivative with its syllable marks: "-- Mac`ro*scop\"ic*al*ly, adv." up to the end.
RUN_ON = re.compile(r"\s--\s+(?=\S*\w[*\"`]\w).*$")
# GCIDE's ASCII codes for letters it cannot type: ["e] e-diaeresis, [ae] ligature, [=a] a-macron, ...
NAMED = {
    "ae": "\u00e6", "AE": "\u00c6", "oe": "\u0153", "OE": "\u0152", "imac": "\u012b", "aum": "\u00e4",
    "eth": "\u00f0", "thorn": "\u00fe", "th": "\u00fe", "ng": "\u014b", "yogh": "\u021d", "deg": "\u00b0",
    "sect": "\u00a7", "root": "\u221a", "pounds": "\u00a3", "para": "\u00b6", "middot": "\u00b7",
    "times": "\u00d7", "divby": "\u00f7", "div": "\u00f7", "dagger": "\u2020", "dag": "\u2020",
    "flat": "\u266d", "sharp": "\u266f", "rarr": "\u2192", "nbsp": " ", "ldqo": "\u201c", "rdqo": "\u201d",
    "frac12": "\u00bd", "frac14": "\u00bc", "frac34": "\u00be", "frac13": "\u2153", "frac23": "\u2154",
    "alpha": "\u03b1", "beta": "\u03b2", "gamma": "\u03b3", "delta": "\u03b4", "eta": "\u03b7",
    "theta": "\u03b8", "iota": "\u03b9", "kappa": "\u03ba", "lambda": "\u03bb", "mu": "\u03bc",
    "pi": "\u03c0", "rho": "\u03c1", "sigma": "\u03c3", "tau": "\u03c4", "phi": "\u03c6", "chi": "\u03c7",
    "psi": "\u03c8", "omega": "\u03c9", "Gamma": "\u0393", "Delta": "\u0394", "Lambda": "\u039b",
    "Sigma": "\u03a3", "Omega": "\u03a9",
}
# Diacritic codes: a mark before or after one letter: ['e], [`e], [^o], ["u], [=a], [~n], [,c], [a^] (breve).
MARK_BEFORE = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "=": "\u0304", "~": "\u0303",
               ",": "\u0327", ".": "\u0307", "-": "\u0304", "*": ""}
ACCENT = re.compile(r"\[(?:([" + re.escape("".join(MARK_BEFORE)) + r"])([A-Za-z]{1,2})|([A-Za-z]{1,2})\^"
                    r"|(" + "|".join(sorted(NAMED, key=len, reverse=True)) + r"))\]")


def fail(message, prog="make_pretrain_corpus", install=INSTALL):
    print(f"{prog}: {message}; install with: {install}", file=sys.stderr)
    sys.exit(2)


def check_inputs(wordnet_dict):
    """Exit 2 naming every missing input, before any work (wordnet_dict: None when not needed)."""
    missing = []
    if shutil.which("bible") is None:
        missing.append("the `bible` program (package bible-kjv) is not on PATH")
    for path in (GCIDE_DICT, GCIDE_INDEX):
        if not os.path.isfile(path):
            missing.append(f"{path} (package dict-gcide) is missing")
    if wordnet_dict is not None:
        for name in ("noun", "verb", "adj", "adv"):
            path = os.path.join(wordnet_dict, f"data.{name}")
            if not os.path.isfile(path):
                missing.append(f"{path} (package wordnet-base) is missing")
    if missing:
        fail("; ".join(missing))


def kjv_verses(prog="make_pretrain_corpus", install=INSTALL):
    """The text of every verse, in order, from one `bible` call over the whole range. prog and
    install: the program name and install command that its error messages give (other scripts
    reuse this function: make_lm_corpus.py)."""
    bible = shutil.which("bible")
    # -f turns pretty-printing off: one verse a line, never wrapped. cwd "/" because bible looks for
    # its data file in the current directory before /usr/lib.
    run = subprocess.run([bible, "-f", "Gen1:1-Rev22:21"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd="/")
    lines = run.stdout.decode("utf-8", errors="replace").splitlines()
    if run.returncode != 0 or len(lines) < 31000:
        detail = run.stderr.decode("utf-8", errors="replace").strip()
        fail(f"`bible -f Gen1:1-Rev22:21` gave {len(lines)} lines, exit status {run.returncode}"
             + (f" ({detail})" if detail else ""), prog, install)
    verses = []
    for line_no, line in enumerate(lines, 1):
        m = VERSE.fullmatch(line)
        if m is None:
            sys.exit(f"{prog}: bible output line {line_no} is not a verse: {line[:80]!r}")
        text = " ".join(m.group(4).split())
        if text:
            verses.append(text)
    return verses


def decode64(digits):
    """dictd's index numbers: base 64 with the alphabet A-Z a-z 0-9 + /."""
    value = 0
    for c in digits:
        value = value * 64 + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(c)
    return value


def gcide_records():
    """The text of every dictionary record (one or more entries under one headword), in file order;
    the 00-database-* records (title, URL, the license and preamble) are skipped."""
    spans = {}
    with open(GCIDE_INDEX, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                sys.exit(f"make_pretrain_corpus: {GCIDE_INDEX}:{line_no}: not an index line")
            spans.setdefault((decode64(fields[1]), decode64(fields[2])), []).append(fields[0])
    with gzip.open(GCIDE_DICT) as f:  # dictzip is gzip with a random-access table
        data = f.read()
    previous = None
    for (offset, length), headwords in sorted(spans.items()):
        if all(h.startswith("00-") for h in headwords):
            continue
        raw = data[offset:offset + length]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # three stray Windows-1252 bytes (a right quote, a c-cedilla)
            text = raw.decode("cp1252", errors="replace").replace("\u2019", "'")
        if previous is not None:
            first = HEADWORD.search(text)
            yield unglue(previous, headword_of(first) if first else None)
        previous = text
    if previous is not None:
        yield unglue(previous, None)


def headword_of(match):
    """"Abandon" from the headword line "Abandon \\A*ban"don\\ ..."."""
    return match.group(0).split("\\")[0].strip().rstrip(",")


def unglue(text, headword):
    """The text without the next entry's headword that the conversion left at its end, on a line of
    its own ("   Eruct") or after the last line's text ("... larv[ae].  Eruct", "[WordNet 1.5] Absinth")."""
    stripped = text.rstrip()
    if headword and (stripped.endswith("\n   " + headword) or stripped.endswith(" " + headword)):
        return stripped[:-len(headword)].rstrip() + "\n"
    return text


def chunks(record):
    """(text, tag) for each chunk of a record: text runs up to a source tag (tag: its content, the
    tag itself not in text) or up to the next headword line or the record's end (tag None). Text
    before the first headword (the preamble's closing quotation, in the first record) is left out."""
    cuts = []  # (start of the next chunk, end of this chunk's text, tag or None, headword or None)
    for m in BRACKETED.finditer(record):
        if SOURCE.search(" ".join(m.group(1).split())):
            cuts.append((m.end(), m.start(), m.group(1), None))
    for m in HEADWORD.finditer(record):
        cuts.append((m.start(), m.start(), None, headword_of(m)))
    cuts.sort()
    first = HEADWORD.search(record)
    start = first.start() if first else 0
    for next_start, end, tag, headword in cuts:
        if next_start <= start:  # the first headword, or one inside a multi-line tag (none seen)
            continue
        text = record[start:end] if tag is not None else unglue(record[start:end], headword)
        if text.strip() or tag is not None:
            yield text, tag
        start = next_start
    if record[start:].strip():
        yield record[start:], None


def unaccent(m):
    before, letters, breve, named = m.groups()
    if named:
        return NAMED[named]
    if breve:
        return unicodedata.normalize("NFC", breve[0] + "\u0306" + breve[1:])
    return unicodedata.normalize("NFC", letters[0] + MARK_BEFORE[before] + letters[1:])


def paragraphs(text):
    """The chunk's paragraphs (blank-line separated), its headword lines left out: the line at
    column 0, and the lines after it while its brackets are open, while it ends in a comma or
    semicolon, or while they open with a part of speech or an inflection ("pl. {Abaci} ...")."""
    para, depth, in_head = [], 0, False
    for line in text.split("\n"):
        if line and not line[0].isspace() and "\\" in line:
            in_head, depth = True, 0
        elif in_head and line.strip() and (depth > 0 or GRAMMAR.match(line.strip()) or line.lstrip().startswith("[")):
            pass
        else:
            in_head = False
        if in_head:
            depth = max(0, depth + line.count("[") - line.count("]") + line.count("(") - line.count(")"))
            if line.rstrip().endswith((",", ";", "&")):
                depth = max(depth, 1)  # the head goes on
            continue
        if line.strip():
            para.append(line.strip())
        elif para:
            yield " ".join(para)
            para = []
    if para:
        yield " ".join(para)


def drop_attribution(m):
    return " " if len(m.group(0).split()) <= 6 else m.group(0)


def clean(paragraph):
    """One corpus line from a paragraph, or None when it is a Syn: list or too short."""
    if re.match(r"Syn\.?:", paragraph):
        return None
    text = PRONUNCIATION.sub(" ", paragraph)
    text = text.replace("{", "").replace("}", "")
    text = ACCENT.sub(unaccent, text)
    text = " ".join(text.split())
    text = LEAD.sub("", text)
    text = INLINE_PRONUNCIATION.sub("", text)
    text = RUN_ON.sub("", text)
    text = ATTRIBUTION.sub(drop_attribution, text)
    text = " ".join(text.split())
    if text.endswith(" --"):  # an attribution wrapped onto a line of its own
        text = text[:-3]
    if len(text.split()) < MIN_WORDS or not any(c.isalpha() for c in text):
        return None
    return text


def normalize(text):
    """A gloss or a line as they are compared: whitespace collapsed, lower case."""
    return " ".join(text.split()).lower()


class GlossFilter:
    """Tells whether a line contains one of the given glosses (both normalized). A gloss of
    GLOSS_WORDS words or more, w1 w2 ... wn, is a substring of a line only if its inner words
    w2 .. w(n-1) (two or more) are whole words of the line, with a word before and one after (w1
    may end a longer word, wn begin one): the glosses are indexed by their inner words, a line's
    word runs are looked up (only the lengths that some gloss's inner words starting with the same
    two words have), and each candidate is confirmed with a plain substring test. A shorter gloss
    matches only a line equal to it."""

    def __init__(self, glosses):
        self.short = set()
        self.by_inner = {}  # inner words (tuple) -> the normalized glosses that have them
        lengths = {}  # first two inner words -> the inner-word counts seen
        for gloss in glosses:
            gloss = normalize(gloss)
            words = gloss.split()
            if len(words) < GLOSS_WORDS:
                self.short.add(gloss)
                continue
            inner = tuple(words[1:-1])
            self.by_inner.setdefault(inner, []).append(gloss)
            lengths.setdefault(inner[:2], set()).add(len(inner))
        self.lengths = {pair: sorted(counts) for pair, counts in lengths.items()}
        self.count = len(self.short) + sum(len(v) for v in self.by_inner.values())

    def matches(self, line):
        text = normalize(line)
        if text in self.short:
            return True
        words = text.split()
        for j in range(1, len(words) - 2):  # inner words start after the first word...
            counts = self.lengths.get((words[j], words[j + 1]))
            if counts is None:
                continue
            for count in counts:
                if j + count >= len(words):  # ...and end before the last
                    break
                candidates = self.by_inner.get(tuple(words[j:j + count]))
                if candidates and any(gloss in text for gloss in candidates):
                    return True
        return False


def gcide_lines(limit, gloss_filter):
    """(lines, removed, dropped): the kept GCIDE lines, in order, the number of WordNet chunks removed
    and the number of lines dropped because they contain a gloss (gloss_filter: None to keep them)."""
    lines, seen, removed, dropped = [], set(), 0, 0
    for record in gcide_records():
        for text, tag in chunks(record):
            if WORDNET.search(text) or (tag is not None and WORDNET.search(tag)):
                removed += 1
                continue
            for paragraph in paragraphs(text):
                line = clean(paragraph)
                if line is None or line in seen:
                    continue
                seen.add(line)
                if gloss_filter is not None and gloss_filter.matches(line):
                    dropped += 1
                    continue
                lines.append(line)
                if limit is not None and len(lines) >= limit:
                    return lines, removed, dropped
    return lines, removed, dropped


def write_atomically(path, lines):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write("".join(line + "\n" for line in lines).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the corpus file to write, e.g. data/pretrain.txt")
    ap.add_argument("--max-gcide-lines", type=int, default=None, metavar="N",
                    help="stop after N GCIDE lines (default: all)")
    ap.add_argument("--wordnet-dict", default=WORDNET_DICT, metavar="DIR",
                    help=f"wordnet-base's data files, whose glosses are kept out (default: {WORDNET_DICT})")
    ap.add_argument("--keep-wordnet-glosses", action="store_true",
                    help="keep the lines that contain a WordNet gloss (the output then overlaps the task)")
    a = ap.parse_args()
    if a.max_gcide_lines is not None and a.max_gcide_lines < 0:
        ap.error("--max-gcide-lines must be >= 0")
    check_inputs(None if a.keep_wordnet_glosses else a.wordnet_dict)
    gloss_filter = None if a.keep_wordnet_glosses else GlossFilter(make_wordnet_csv.task_texts(a.wordnet_dict))
    verses = kjv_verses()
    if gloss_filter is not None:
        kept = [verse for verse in verses if not gloss_filter.matches(verse)]
        kjv_dropped, verses = len(verses) - len(kept), kept
    else:
        kjv_dropped = 0
    gcide, removed, gcide_dropped = (gcide_lines(a.max_gcide_lines, gloss_filter) if a.max_gcide_lines != 0
                                     else ([], 0, 0))
    written = write_atomically(a.out, verses + gcide)
    print(f"wrote {a.out}: {len(verses)} KJV verses, {len(gcide)} GCIDE lines (removed {removed} WordNet chunks), "
          f"{written} bytes", file=sys.stderr)
    if gloss_filter is not None:
        print(f"dropped {kjv_dropped + gcide_dropped} lines that contain a WordNet gloss ({kjv_dropped} KJV, "
              f"{gcide_dropped} GCIDE; {gloss_filter.count} glosses from {a.wordnet_dict})", file=sys.stderr)
    else:
        print("kept the lines that contain a WordNet gloss (--keep-wordnet-glosses)", file=sys.stderr)


if __name__ == "__main__":
    main()
