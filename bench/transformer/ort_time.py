#!/usr/bin/env python3
"""Fastest wall time of one onnxruntime fp32 run (all graph optimizations on) of MODEL on the .npy inputs in DIR.
Usage: ort_time.py MODEL DIR THREADS REPEATS"""
import os, sys, time
import numpy as np
import onnxruntime as ort

model, d, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
o = ort.SessionOptions()
o.intra_op_num_threads = threads
o.inter_op_num_threads = 1
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
feeds = {i.name: np.load(os.path.join(d, i.name + ".npy")) for i in s.get_inputs()}
s.run(None, feeds)
times = []
for _ in range(repeats):
    t = time.perf_counter(); s.run(None, feeds); times.append(time.perf_counter() - t)
print(f"{min(times):.6f}")
