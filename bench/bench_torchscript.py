#!/usr/bin/env python3
"""The cost of a scripted model (issue #26): the built-in `mlp` against the
same MLP written in PyTorch and scripted (model.type: torchscript), on
configs/fashion-mnist.yaml (784-256-10, ReLU, Adam, S=5, R=4, 20 epochs), each
trained `--repeat` times, alternating; reports the median training loop.
Needs a Python with PyTorch 1.13 (Debian python3-torch) to script the module:
run it with that Python (for example /usr/bin/python3).
With --cache: the cost model.cache_below saves instead. WordNet glosses (45
classes, scripts/make_wordnet_csv.py), a scripted frozen 2-layer transformer
encoder (d 128) under a trained linear head, S=5, R=4, 10 epochs: training and
one single deletion with the encoder cached at ingest against run every step.
Usage: bench/bench_torchscript.py [--sisa build/sisa] [--work DIR] [--repeat 3] [--cache] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import machine  # noqa: E402


class Mlp(torch.nn.Module):
    """The built-in mlp's layout: fc0 (784 -> 256), ReLU, out (256 -> 10)."""

    def __init__(self):
        super().__init__()
        self.fc0 = torch.nn.Linear(784, 256)
        self.out = torch.nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc0(x)))


class Encoder(torch.nn.Module):
    """A frozen text encoder: embeddings, 2 transformer blocks, mean over real tokens."""

    def __init__(self, vocab: int, dim: int, max_len: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.position = torch.nn.Parameter(torch.randn(max_len, dim) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(dim, 4, 256, dropout=0.0, batch_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)  # same shape in eval

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, width = tokens.size(0), tokens.size(1)
        pad = torch.arange(width).unsqueeze(0) >= lengths.unsqueeze(1)
        x = self.blocks(self.embed(tokens) + self.position[:width], src_key_padding_mask=pad)
        keep = (~pad).to(x.dtype).unsqueeze(2)
        return (x * keep).sum(1) / lengths.clamp_min(1).to(x.dtype).unsqueeze(1)


class Classifier(torch.nn.Module):
    def __init__(self, vocab: int, classes: int, max_len: int):
        super().__init__()
        self.encoder = Encoder(vocab, 128, max_len)
        self.head = torch.nn.Linear(128, classes)

    @torch.jit.export
    def forward_above(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_above(self.encoder(tokens, lengths))


def run_json(cmd, env):
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


def bench_cache(a, env) -> dict:
    data = os.path.join(a.work, "wordnet")
    if not os.path.exists(os.path.join(data, "train.csv")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_wordnet_csv.py"), data], check=True,
                       stdout=subprocess.DEVNULL)
    tok = os.path.join(a.work, "wordnet.tokenizer.model")
    if not os.path.exists(tok):
        corpus = os.path.join(a.work, "corpus.txt")
        import csv
        with open(corpus, "w") as f:
            for row in csv.DictReader(open(os.path.join(data, "train.csv"))):
                f.write(row["text"] + "\n")
        subprocess.run([a.sisa, "tokenizer", "--corpus", corpus, "-o", tok, "--vocab-size", "1000"], check=True,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    torch.manual_seed(0)
    net = Classifier(1000, 45, 32)
    for p in net.encoder.parameters():
        p.requires_grad_(False)
    module = os.path.join(a.work, "encoder-head.pt")
    torch.jit.script(net).save(module)
    base = f"""seed: 1
data:
  format: csv
  train: {data}/train.csv
  test: {data}/test.csv
  id_column: id
  label_column: label
  text_column: text
  tokenizer: {tok}
  max_tokens: 32
  input_shape: [32]
  num_classes: 45
sisa: {{shards: 5, slices: 4}}
model:
  type: torchscript
  module: {module}
  input: tokens
train: {{epochs: 10, batch_size: 128, optimizer: adam, lr: 0.003, threads: 1}}
"""
    result = {}
    for name, extra in (("every step", ""), ("cache_below: encoder", "  cache_below: encoder\n")):
        cfg = os.path.join(a.work, "cache.yaml" if extra else "plain.yaml")
        open(cfg, "w").write(base.replace("  input: tokens\n", "  input: tokens\n" + extra))
        run = os.path.join(a.work, "run-cache" if extra else "run-plain")
        subprocess.run(["rm", "-rf", run], check=True)
        t = run_json([a.sisa, "train", "-q", "--json", "-c", cfg, "-r", run], env)
        ids = [int(r.split(",")[0]) for r in open(os.path.join(data, "train.csv")).read().splitlines()[1:4]]
        forgets = [run_json([a.sisa, "forget", "-q", "--json", "-r", run, "--ids", str(i)], env)["total_seconds"]
                   for i in ids]
        acc = run_json([a.sisa, "predict", "-q", "--json", "-r", run], env)["accuracy_mean"]
        result[name] = {"train_seconds": t["total_seconds"], "loop_seconds": t["loop_seconds"],
                        "ingest_seconds": t["ingest_seconds"], "forget_seconds": forgets, "accuracy_mean": acc}
        print(f"{name}: train {t['total_seconds']:.1f} s (loop {t['loop_seconds']:.1f} s), forget "
              f"{', '.join(f'{x:.1f}' for x in forgets)} s, accuracy {acc:.4f}", file=sys.stderr)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sisa", default=os.path.join(ROOT, "build/sisa"))
    ap.add_argument("--work", default="/tmp/sisa-bench-torchscript")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cache", action="store_true", help="measure model.cache_below instead")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    if a.cache:
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        r = bench_cache(a, env)
        print(f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
        print("| frozen encoder | train (loop) | single deletion, 3 ids | test accuracy |")
        print("|---|---|---|---|")
        for name, x in r.items():
            print(f"| {name} | {x['train_seconds']:.1f} s ({x['loop_seconds']:.1f} s) | "
                  f"{', '.join(f'{f:.1f}' for f in x['forget_seconds'])} s | {x['accuracy_mean']:.4f} |")
        if a.json:
            json.dump({"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **r},
                      open(a.json, "w"), indent=1)
        return
    torch.manual_seed(0)
    module = os.path.join(a.work, "mlp.pt")
    torch.jit.script(Mlp()).save(module)
    base = open(os.path.join(ROOT, "configs/fashion-mnist.yaml")).read()
    model_block = base[base.index("\nmodel:\n"):base.index("\ntrain:\n")]
    configs = {
        "mlp": base,
        "torchscript": base.replace(model_block, f"\nmodel:\n  type: torchscript\n  module: {module}"),
    }
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    loops = {name: [] for name in configs}
    accuracy = {}
    for r in range(a.repeat):
        for name, text in configs.items():
            cfg = os.path.join(a.work, f"{name}.yaml")
            open(cfg, "w").write(text)
            run = os.path.join(a.work, f"run-{name}")
            subprocess.run(["rm", "-rf", run], check=True)
            out = subprocess.run([a.sisa, "train", "-q", "--json", "-c", cfg, "-r", run], env=env, check=True,
                                 capture_output=True, text=True).stdout
            loops[name].append(json.loads(out)["loop_seconds"])
            if r == 0:
                p = subprocess.run([a.sisa, "predict", "-q", "--json", "-r", run], env=env, check=True,
                                   capture_output=True, text=True).stdout
                accuracy[name] = json.loads(p)["accuracy_mean"]
            print(f"{name} run {r + 1}: loop {loops[name][-1]:.2f} s", file=sys.stderr)
    median = {n: statistics.median(v) for n, v in loops.items()}
    result = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": "configs/fashion-mnist.yaml",
        "loop_seconds": loops,
        "median_loop_seconds": median,
        "ratio": median["torchscript"] / median["mlp"],
        "accuracy_mean": accuracy,
    }
    print(f"Machine: {result['machine']}; {result['date']}; {a.repeat} runs each, alternating.\n")
    print("| model | training loop, median (runs) | test accuracy |")
    print("|---|---|---|")
    for n in configs:
        runs = ", ".join(f"{x:.2f}" for x in loops[n])
        print(f"| {n} | {median[n]:.2f} s ({runs}) | {accuracy[n]:.4f} |")
    print(f"\nscripted / built-in: {result['ratio']:.2f}x")
    if a.json:
        json.dump(result, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
