#!/usr/bin/env python3
"""PyTorch side of bench/train: the same training step as `bitswitch bench-train` (forward, cross-entropy,
backward, Adam update at batch B on random data), on the same ONNX graph through scripts/torch_reference.py's
OnnxModule. Reports the median wall time per step and the process CPU time per step (the latter is what a loaded
machine distorts least for one thread).

Usage: torch_bench.py MODEL.onnx --batch 128 --threads T --steps K --repeats R --warmup W
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from torch_reference import OnnxModule  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    net = OnnxModule(onnx.load(a.model))
    x = torch.randn(*([a.batch] + [d or 1 for d in net.input_shape[1:]]))
    with torch.no_grad():
        classes = net.eval()(x[:2]).shape[1]
    y = torch.randint(0, classes, (a.batch,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()

    def step():
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    wall, cpu = [], []
    for _ in range(a.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            step()
        wall.append((time.perf_counter() - w0) / a.steps)
        cpu.append((time.process_time() - c0) / a.steps)
    w, c = float(np.median(wall)), float(np.median(cpu))
    print(json.dumps({"model": a.model, "batch": a.batch, "threads": a.threads, "step_seconds": w,
                      "cpu_seconds": c, "samples_per_second": a.batch / w, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
