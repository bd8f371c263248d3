#!/usr/bin/env bash
# Installs the built tree into build/install, builds examples/cpp-library
# against it with find_package(sisa), and runs it on a tiny CSV: the library
# as another C++ project sees it. Expects scripts/build.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$PWD/build/install"
rm -rf "$prefix" build/example build/example-run
cmake --install build --prefix "$prefix" >/dev/null
cmake -S examples/cpp-library -B build/example -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build/example -j "$(nproc)" >/dev/null
mkdir -p build/example-run
# 300 samples, 4 features, 3 classes; ids 1000, 1007, ...
awk 'BEGIN { srand(7); print "id,f0,f1,f2,f3,label";
             for (i = 0; i < 300; i++) printf "%d,%.4f,%.4f,%.4f,%.4f,%d\n", 1000 + 7 * i, rand(), rand(), rand(), rand(), i % 3 }' \
  > build/example-run/data.csv
cat > build/example-run/config.yaml <<'YAML'
seed: 3
data: {format: csv, train: data.csv, test: data.csv, num_classes: 3, input_shape: [4], id_column: id}
sisa: {shards: 2, slices: 2}
model: {type: mlp, hidden: [8]}
train: {epochs: 2, batch_size: 16, lr: 0.01}
YAML
out=$(OMP_WAIT_POLICY=PASSIVE ./build/example/train_forget_predict build/example-run/config.yaml build/example-run/run 1007 2>/dev/null)
echo "$out"
grep -q "forgot 1 sample" <<<"$out"
# The installed command finds its library and its MPI plugin beside it.
"$prefix/bin/sisa" fsck -q -r build/example-run/run
echo "test-install: ok (installed into $prefix, example built with find_package(sisa))"
