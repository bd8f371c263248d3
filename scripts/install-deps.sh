#!/usr/bin/env bash
# Installs every Debian package sisa needs (a quick no-op when all are there).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread          # libtorch; OpenBLAS chosen deliberately (docs/benchmarks.md)
  libhdf5-dev libyaml-cpp-dev libspdlog-dev libgtest-dev
  libcli11-dev nlohmann-json3-dev libssl-dev zlib1g-dev
  libutf8proc-dev                             # NFKC for the USE-Lite tokenizer (src/text/use_tokenizer.cpp)
  libopenmpi-dev openmpi-bin libboost-dev      # Boost.Beast/Asio: the HTTP server
  libcpp-httplib-dev                          # the HTTP client of the serve tests
  python3-torch                               # examples/bring-your-model scripts its model in Python (PyTorch 1.13)
  sentencepiece libsentencepiece-dev          # tokenizer of the text families (a plugin: src/text/)
  wordnet-base                                # the text task: scripts/make_wordnet_csv.py
  bible-kjv dict-gcide                        # the backbone's public text: scripts/make_pretrain_corpus.py
  wrk                                         # load generator for bench/bench_serve.py
  dataset-fashion-mnist
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
