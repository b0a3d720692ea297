#!/usr/bin/env python3
"""Export examples/tinytext/model.onnx: a small GPT-style byte-level decoder, untrained.

4 pre-norm blocks of causal self-attention (4 heads) and a GELU MLP (4x), width 128, context 128, a byte vocabulary
(256 tokens), learned positions, untied head. Weights are initialised as nanoGPT does (normal 0.02, residual
projections 0.02/sqrt(2*layers)) with torch.manual_seed(SEED), so scripts that import `build()` get the same
weights as the file.

The graph is what the TorchScript exporter writes at opset 20: Gather (token embedding), Add (positions),
LayerNormalization, MatMul+Add (linear layers), Split (q, k, v), Reshape/Transpose (heads), MatMul (Q.K^T, P.V),
Mul (1/sqrt(d)), Where with a constant boolean causal mask (masked_fill), Softmax, Gelu. The input is int64
tokens [N, 128], the output logits [N, 128, 256].

Usage: export-tinytext.py [OUT.onnx] [--vocab V --context T --width C --heads H --layers L]
(default: examples/tinytext/model.onnx at the sizes above; the CLI tests' fixture is
--vocab 128 --context 8 --width 16 --heads 2 --layers 1)
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 0
VOCAB, CONTEXT, WIDTH, HEADS, LAYERS = 256, 128, 128, 4, 4


class Block(nn.Module):
    def __init__(self, c: int, heads: int, t: int) -> None:
        super().__init__()
        self.c, self.heads, self.t = c, heads, t
        self.ln1 = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        self.ln2 = nn.LayerNorm(c)
        self.fc = nn.Linear(c, 4 * c)
        self.gelu = nn.GELU()
        self.out = nn.Linear(4 * c, c)
        self.register_buffer("mask", torch.tril(torch.ones(t, t, dtype=torch.bool)).view(1, 1, t, t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, t = self.c, self.heads, self.t
        d = c // h
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q = q.reshape(-1, t, h, d).transpose(1, 2)
        k = k.reshape(-1, t, h, d).transpose(1, 2)
        v = v.reshape(-1, t, h, d).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
        att = att.masked_fill(~self.mask, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(-1, t, c))
        return x + self.out(self.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    def __init__(self, vocab: int = VOCAB, t: int = CONTEXT, c: int = WIDTH, heads: int = HEADS,
                 layers: int = LAYERS) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, c)
        self.pos = nn.Parameter(torch.zeros(1, t, c))
        self.blocks = nn.ModuleList([Block(c, heads, t) for _ in range(layers)])
        self.ln = nn.LayerNorm(c)
        self.head = nn.Linear(c, vocab, bias=False)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2 or name == "pos":
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


def build(**dims: int) -> TinyGPT:
    torch.manual_seed(SEED)
    return TinyGPT(**dims)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "examples", "tinytext", "model.onnx"))
    ap.add_argument("--vocab", type=int, default=VOCAB)
    ap.add_argument("--context", type=int, default=CONTEXT)
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--heads", type=int, default=HEADS)
    ap.add_argument("--layers", type=int, default=LAYERS)
    a = ap.parse_args()
    model = build(vocab=a.vocab, t=a.context, c=a.width, heads=a.heads, layers=a.layers).eval()
    idx = torch.zeros(2, a.context, dtype=torch.int64)
    out = a.out
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    torch.onnx.export(model, (idx,), tmp, dynamo=False, opset_version=20, input_names=["tokens"],
                      output_names=["logits"], dynamic_axes={"tokens": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True)
    os.replace(tmp, out)
    n = sum(p.numel() for p in model.parameters())
    print(f"tinytext: {a.layers} layers, width {a.width}, {a.heads} heads, context {a.context}, vocab {a.vocab}: "
          f"{n} parameters -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
