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

Memory: each variant is timed in its own process (this script run again with --child, after the quantized models are
made), so that one session's memory, or the quantizer's, does not inflate another's peak. The child reports its
resident set after its imports (Python, numpy, onnxruntime: the baseline before the session exists) and the peak
resident set of its process at the end (/proc/self/status VmHWM, the high-water mark of this address space; also
getrusage's ru_maxrss, which Linux carries across fork and exec from the parent and so may be larger).

Usage: ort_latency.py MODEL.onnx DATA_DIR WORK_DIR [--calib 32] [--warmup 3] [--budget 2] [--min-runs 5]
                      [--max-runs 1000] [--variants fp32,u8s8,s8s8] [--threads 1]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

VARIANTS = {"fp32": None, "u8s8": ("QUInt8", "QInt8"), "s8s8": ("QInt8", "QInt8")}


def status_kb(key):
    """A line of /proc/self/status ("VmRSS", "VmHWM") in kB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def quantize(model, prep, out, name, x, activation, weight):
    if os.path.exists(out):
        return
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batch=8):
            self.batches = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

        def get_next(self):
            return next(self.batches, None)

    activation, weight = getattr(QuantType, activation), getattr(QuantType, weight)
    if not os.path.exists(prep):
        quant_pre_process(model, prep + ".tmp", skip_symbolic_shape=True)
        os.replace(prep + ".tmp", prep)
    quantize_static(prep, out + ".tmp", Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=activation, weight_type=weight)
    os.replace(out + ".tmp", out)


def session(path, threads=1):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def measure(a, path, variant, sample_shape):
    """Times one variant in this process and prints its JSON line, with this process's memory."""
    base_kb = status_kb("VmRSS")
    s = session(path, a.threads)
    feed = {s.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, *sample_shape), dtype=np.float32)}
    session_kb = status_kb("VmRSS")
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
                      "mean_ms": statistics.fmean(times) * 1e3,
                      "hwm_kb": status_kb("VmHWM"), "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "base_rss_kb": base_kb, "session_rss_kb": session_kb,
                      "model_bytes": os.path.getsize(path)}), flush=True)


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
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # time one made variant, in this process
    a = ap.parse_args()
    variants = a.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"ort_latency: unknown variant {v} (fp32, u8s8, s8s8)")
    paths = {v: a.model if v == "fp32" else os.path.join(a.work, f"ort-{v}.onnx") for v in VARIANTS}
    x_train = np.load(os.path.join(a.data, "x_train.npy"), mmap_mode="r")
    if a.child:
        if len(variants) != 1:
            sys.exit("ort_latency: --child times exactly one variant")
        measure(a, paths[variants[0]], variants[0], x_train.shape[1:])
        return
    os.makedirs(a.work, exist_ok=True)
    calib = np.ascontiguousarray(x_train[:a.calib], dtype=np.float32)
    name = None
    prep = os.path.join(a.work, "ort-prep.onnx")
    for v in variants:
        if VARIANTS[v] and not os.path.exists(paths[v]):
            name = name or session(a.model).get_inputs()[0].name
            quantize(a.model, prep, paths[v], name, calib, *VARIANTS[v])
    for v in variants:
        cmd = [sys.executable, os.path.abspath(__file__), a.model, a.data, a.work, "--warmup", str(a.warmup),
               "--budget", str(a.budget), "--min-runs", str(a.min_runs), "--max-runs", str(a.max_runs),
               "--threads", str(a.threads), "--variants", v, "--child"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(r.stdout)
        sys.stdout.flush()
        if r.returncode:
            sys.exit(f"ort_latency: timing {v} failed (exit {r.returncode})")


if __name__ == "__main__":
    main()
