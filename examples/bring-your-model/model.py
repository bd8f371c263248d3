#!/usr/bin/env python3
"""Your own PyTorch model, scripted for `sisa` (model.type: torchscript).

A Fashion-MNIST classifier: an encoder layer with LoRA (a frozen 784x256
weight plus a trained rank-8 update B A), dropout, and a trained head.
`config.yaml` in this folder chooses what each shard trains with
model.trainable (here the LoRA matrices and the head); everything else stays
as this file saves it, in no checkpoint.

The frozen weight here is a fixed random projection so the example needs no
download; yours would come from a pretrained checkpoint (whatever data it
saw is outside the deletion guarantee). Requires PyTorch 1.13 for Python
(Debian: python3-torch). Usage: model.py OUT.pt
"""
import math
import sys

import torch
import torch.nn.functional as F


class LoraLinear(torch.nn.Module):
    """y = x W^T + b + (alpha / r) x A^T B^T; B starts at zero (Hu et al. 2021)."""

    def __init__(self, n_in: int, n_out: int, rank: int, alpha: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(n_out, n_in))
        self.bias = torch.nn.Parameter(torch.zeros(n_out))
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.lora_a = torch.nn.Parameter(torch.randn(rank, n_in) / math.sqrt(n_in))
        self.lora_b = torch.nn.Parameter(torch.zeros(n_out, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = LoraLinear(784, 256, rank=8, alpha=16.0)
        self.drop = torch.nn.Dropout(0.1)  # sisa reseeds it per (seed, shard, slice, epoch, step)
        self.head = torch.nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: float32 [n, 784]
        return self.head(self.drop(torch.relu(self.encoder(x))))


def main() -> None:
    torch.manual_seed(0)
    net = Net()
    # What the saved module marks trainable is sisa's default; the config's
    # model.trainable overrides it by name.
    net.encoder.weight.requires_grad_(False)
    net.encoder.bias.requires_grad_(False)
    scripted = torch.jit.script(net)
    scripted.save(sys.argv[1])
    trained = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    print(f"wrote {sys.argv[1]}: {total} parameters, {trained} trained per shard")


if __name__ == "__main__":
    main()
