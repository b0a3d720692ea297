#!/usr/bin/env python3
"""Time per training step of the tinytext decoder in PyTorch (forward, per-token cross-entropy, backward, Adam),
on random tokens, like `bitswitch bench-train examples/tinytext/model.onnx`: median of timed repeats, wall and CPU.

Usage: bench_torch.py [--batch 32 --threads 1 --steps 5 --repeats 3 --warmup 2]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = importlib.util.spec_from_file_location("e", os.path.join(ROOT, "scripts", "export-tinytext.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, mod.VOCAB, (a.batch, mod.CONTEXT), generator=g)
    y = torch.randint(0, mod.VOCAB, (a.batch, mod.CONTEXT), generator=g)

    def step() -> None:
        loss = F.cross_entropy(model(x).reshape(-1, mod.VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    wall, cpu = [], []
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            step()
        wall.append((time.perf_counter() - t0) / a.steps)
        cpu.append((time.process_time() - c0) / a.steps)
    print(json.dumps({"torch": torch.__version__, "batch": a.batch, "threads": a.threads,
                      "step_seconds": sorted(wall)[len(wall) // 2], "cpu_seconds": sorted(cpu)[len(cpu) // 2]}))


if __name__ == "__main__":
    main()
