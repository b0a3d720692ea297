#!/usr/bin/env python3
"""Batch-1 latency of onnxruntime on THREADS threads (intra_op_num_threads; default 1): the float model, and its int8 QDQ quantization in both of
onnxruntime's x86 formats, U8S8 (uint8 activations, int8 weights) and S8S8 (int8 activations and weights).

The QDQ models are made once (cached in WORK_DIR) the way onnxruntime's documentation prescribes: `quant_pre_process`
(ONNX shape inference and onnxruntime's graph optimisations, which fold every BatchNormalization into its Conv), then
`quantize_static` (QuantFormat.QDQ, per-channel weights, MinMax calibration on the first CALIB samples of
DATA_DIR/x_train.npy). Every session: intra_op_num_threads=THREADS, inter_op_num_threads=1, sequential execution,
ORT_ENABLE_ALL graph optimisation (which fuses the QDQ pairs into integer kernels). Timing: WARMUP untimed runs,
then RUNS timed `session.run` calls on one fixed N(0, 1) sample (perf_counter around each call), RUNS chosen to fit
BUDGET seconds (between MIN_RUNS and MAX_RUNS) from the warm-up time. Prints one JSON line per variant.

Usage: ort_latency.py MODEL.onnx DATA_DIR WORK_DIR [--calib 32] [--warmup 3] [--budget 2] [--min-runs 5]
                      [--max-runs 1000] [--variants fp32,u8s8,s8s8] [--threads 1]
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process


class Reader(CalibrationDataReader):
    def __init__(self, name, x, batch=8):
        self.batches = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def quantize(model, prep, out, name, x, activation, weight):
    if os.path.exists(out):
        return
    if not os.path.exists(prep):
        quant_pre_process(model, prep + ".tmp", skip_symbolic_shape=True)
        os.replace(prep + ".tmp", prep)
    quantize_static(prep, out + ".tmp", Reader(name, x), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=activation, weight_type=weight)
    os.replace(out + ".tmp", out)


def session(path, threads=1):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("work")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--min-runs", type=int, default=5)
    ap.add_argument("--max-runs", type=int, default=1000)
    ap.add_argument("--variants", default="fp32,u8s8,s8s8")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    x_train = np.load(os.path.join(a.data, "x_train.npy"), mmap_mode="r")
    calib = np.ascontiguousarray(x_train[:a.calib], dtype=np.float32)
    name = session(a.model).get_inputs()[0].name
    sample = np.random.default_rng(0).standard_normal((1, *x_train.shape[1:]), dtype=np.float32)
    prep = os.path.join(a.work, "ort-prep.onnx")
    paths = {"fp32": a.model}
    for variant, act, wt in (("u8s8", QuantType.QUInt8, QuantType.QInt8), ("s8s8", QuantType.QInt8, QuantType.QInt8)):
        paths[variant] = os.path.join(a.work, f"ort-{variant}.onnx")
    for variant in a.variants.split(","):
        if variant not in paths:
            sys.exit(f"ort_latency: unknown variant {variant} (fp32, u8s8, s8s8)")
        if variant == "u8s8":
            quantize(a.model, prep, paths[variant], name, calib, QuantType.QUInt8, QuantType.QInt8)
        elif variant == "s8s8":
            quantize(a.model, prep, paths[variant], name, calib, QuantType.QInt8, QuantType.QInt8)
        s = session(paths[variant], a.threads)
        feed = {name: sample}
        t0 = time.perf_counter()
        for _ in range(a.warmup):
            s.run(None, feed)
        each = (time.perf_counter() - t0) / a.warmup
        runs = max(a.min_runs, min(a.max_runs, int(a.budget / each) if each > 0 else a.max_runs))
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            s.run(None, feed)
            times.append(time.perf_counter() - t)
        print(json.dumps({"kind": "ort", "variant": variant, "threads": a.threads, "runs": runs,
                          "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
                          "mean_ms": statistics.fmean(times) * 1e3}), flush=True)


if __name__ == "__main__":
    main()
