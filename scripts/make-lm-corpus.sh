#!/usr/bin/env bash
# Builds the language-model unlearning corpus: the KJV with canaries inserted, its test split and
# the canaries' secrets (scripts/make_lm_corpus.py, whose arguments it passes on unchanged).
# Usage: bash scripts/make-lm-corpus.sh data/kjv-canaries.csv [--seed N] [--repetitions 1,4,16] ...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/make_lm_corpus.py" "$@"
