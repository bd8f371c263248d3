#!/usr/bin/env python3
"""The folders of src/ are layers (docs/design.md, "Folder map"): a file may
include headers of its own folder and of the folders below it, never above.
Each heavy dependency stays in the one place that needs it. Exits 1 listing
every include that breaks a rule. Run by ctest (`layers`).

Usage: python3 scripts/check_layers.py [ROOT]
"""
import os
import re
import sys

# Lowest first. cli/ sits above them all and includes only include/sisa/ (and its own headers).
LAYERS = ["util", "core", "comm", "format", "text", "config", "data", "store", "nn", "lm", "run", "serve"]

# <header prefix>: the only files (relative to src/) that may include it, and why.
CONTAINED = {
    "torch/version.h": {"config/environment.cpp"},  # the numeric environment records libtorch's version
    "torch/": "nn/",  # everything else of libtorch: only the torch folder
    "ATen/": "nn/",
    "c10/": "nn/",
    "mpi.h": {"comm/mpi_communicator.cpp"},
    "boost/": {"serve/http_transport_impl.h"},  # the transport's inside (its two .cpp files include it)
    "sentencepiece": {"text/spm_plugin.cpp"},
    "H5": {"format/h5file.cpp"},
    "hdf5": {"format/h5file.cpp"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def allowed_by(rule, rel):
    return rel.startswith(rule) if isinstance(rule, str) else rel in rule


def check(root):
    src = os.path.join(root, "src")
    problems = []
    for dirpath, _, names in os.walk(src):
        for name in sorted(names):
            if not name.endswith((".h", ".cpp")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)
            folder = rel.split(os.sep)[0]
            if folder not in LAYERS:
                problems.append(f"src/{rel}: not in a layer folder ({', '.join(LAYERS)})")
                continue
            text = open(path, encoding="utf-8").read()
            for kind, header in INCLUDE.findall(text):
                if kind == '"' and "/" in header and not header.startswith("sisa/"):
                    target = header.split("/")[0]
                    if target in LAYERS and LAYERS.index(target) > LAYERS.index(folder):
                        problems.append(f"src/{rel}: includes \"{header}\" from layer '{target}', "
                                        f"above its own '{folder}'")
                elif kind == '"' and "/" not in header and not os.path.exists(os.path.join(dirpath, header)):
                    problems.append(f"src/{rel}: includes \"{header}\" by a bare name; name its folder")
                if kind == "<":
                    for prefix, rule in CONTAINED.items():
                        if header.startswith(prefix):
                            if not allowed_by(rule, rel):
                                problems.append(f"src/{rel}: includes <{header}>, which only "
                                                f"{rule if isinstance(rule, str) else ', '.join(sorted(rule))} may")
                            break
    for name in sorted(os.listdir(os.path.join(root, "cli"))):
        text = open(os.path.join(root, "cli", name), encoding="utf-8").read()
        for kind, header in INCLUDE.findall(text):
            local = os.path.exists(os.path.join(root, "cli", header))
            if kind == '"' and not header.startswith("sisa/") and not local:
                problems.append(f"cli/{name}: includes \"{header}\"; the command sees only include/sisa/ "
                                f"and its own files")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    problems = check(root)
    for p in problems:
        print(p)
    print(f"{len(problems)} layering problem(s)" if problems else "layers: every include points down")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
