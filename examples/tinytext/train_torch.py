#!/usr/bin/env python3
"""The PyTorch reference for examples/tinytext: the same decoder (scripts/export-tinytext.py's build(), the same
seed, so the same initial weights as model.onnx), the same data and the same recipe as `bitswitch train`:

- data: the text's bytes, windows of 128 tokens at stride 128 (x = t[i:i+128], y = t[i+1:i+129]); the last 10 %
  of the text held out (TextDataset in Sources/BitSwitchData/TextData.swift);
- Adam (betas 0.9/0.999, eps 1e-8), no weight decay, batch B, a linear warm-up of W steps ((s+1)/W) then a
  half-cosine to 0 at S steps (LearningRateSchedule in Sources/BitSwitchRuntime/Training/Optimizer.swift);
- loss: the mean per-token cross-entropy; reported: the held-out loss over every held-out window in nats and
  bits per byte (= per character: the text is ASCII).

The windows are shuffled by numpy with the seed, or with --order bitswitch in BitSwitch's exact order (a port of
its SplitMix64 Fisher-Yates, one permutation per epoch, the last partial batch kept), which makes the two runs
see the same batches.

Usage: train_torch.py TEXT --steps S [--batch 32 --lr 1e-3 --warmup-steps W --threads T --seed 0 --held-out 0.1
                                      --order numpy|bitswitch]
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_export_module():
    spec = importlib.util.spec_from_file_location("export_tinytext", os.path.join(ROOT, "scripts", "export-tinytext.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


M64 = (1 << 64) - 1


class SplitMix64:
    """BitSwitch's generator (Sources/BitSwitchData/Random.swift), for --order bitswitch."""

    def __init__(self, seed: int) -> None:
        self.state = seed & M64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    @staticmethod
    def derive(seed: int, *components: int) -> int:
        g = SplitMix64(seed)
        s = g.next()
        for c in components:
            g = SplitMix64(s ^ ((c * 0xD6E8FEB86659FD93) & M64))
            s = g.next()
        return s

    def below(self, n: int) -> int:
        m = self.next() * n
        if (m & M64) < n:
            threshold = ((1 << 64) - n) % n
            while (m & M64) < threshold:
                m = self.next() * n
        return m >> 64

    def permutation(self, n: int) -> np.ndarray:
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            p[i], p[j] = p[j], p[i]
        return np.array(p)


def windows(tokens: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    n = (len(tokens) - t - 1) // t + 1 if len(tokens) >= t + 1 else 0
    starts = np.arange(n) * t
    idx = starts[:, None] + np.arange(t)[None, :]
    return tokens[idx], tokens[idx + 1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", type=float, default=0.1)
    ap.add_argument("--order", choices=["numpy", "bitswitch"], default="numpy",
                    help="window order: numpy's generator, or BitSwitch's exact one (SplitMix64 Fisher-Yates per epoch)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    mod = load_export_module()
    model = mod.build()
    t = mod.CONTEXT
    data = np.frombuffer(open(a.text, "rb").read(), dtype=np.uint8).astype(np.int64)
    cut = int(round(len(data) * (1 - a.held_out)))
    xtr, ytr = windows(data[:cut], t)
    xte, yte = windows(data[cut:], t)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    def factor(s: int) -> float:
        if s < a.warmup_steps:
            return (s + 1) / a.warmup_steps
        span = max(1, a.steps - a.warmup_steps)
        return (1 + math.cos(math.pi * min(1.0, (s - a.warmup_steps) / span))) / 2

    rng = np.random.default_rng(a.seed)
    epoch = 0

    def permutation(n: int) -> np.ndarray:
        if a.order == "bitswitch":
            return SplitMix64(SplitMix64.derive(a.seed, 0, epoch)).permutation(n)
        return rng.permutation(n)

    order = permutation(len(xtr))
    pos = 0
    model.train()
    start, cpu0 = time.perf_counter(), time.process_time()
    for s in range(a.steps):
        if pos >= len(order):  # BitSwitch keeps the last partial batch of an epoch
            epoch += 1
            order, pos = permutation(len(xtr)), 0
        b = order[pos:pos + a.batch]
        pos += a.batch
        for g in opt.param_groups:
            g["lr"] = a.lr * factor(s)
        logits = model(torch.from_numpy(xtr[b]))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(ytr[b]).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (s + 1) % 50 == 0 or s == 0:
            print(f"step {s + 1}/{a.steps}: train loss {loss.item():.4f}", flush=True)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(xte), 256):
            logits = model(torch.from_numpy(xte[i:i + 256]))
            y = torch.from_numpy(yte[i:i + 256])
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    nats = total / count
    print(f"pytorch {torch.__version__}: held-out {nats:.4f} nats/token = {nats / math.log(2):.4f} bits per byte; "
          f"{a.steps} steps of batch {a.batch} in {seconds:.1f} s ({seconds / a.steps:.3f} s/step wall, "
          f"{cpu / a.steps:.3f} s/step CPU, {a.threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
