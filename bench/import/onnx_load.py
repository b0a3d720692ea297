#!/usr/bin/env python3
"""Time Python's onnx.load on one file, in-process: prints the median of
--repeats loads (after one untimed warm-up load) as JSON.

Usage: onnx_load.py MODEL [--repeats 5]
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import onnx


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    # The warm-up pulls the file into the page cache, as bitswitch's runs get it.
    model = onnx.load(args.model)
    params = sum(int(t.ByteSize()) for t in model.graph.initializer)
    del model
    gc.collect()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model = onnx.load(args.model)
        times.append(time.perf_counter() - t0)
        # Drop it before the next load so peak RSS is that of one loaded model.
        del model
        gc.collect()
    print(json.dumps({"model": args.model, "onnx": onnx.__version__,
                      "median_s": statistics.median(times), "times_s": times,
                      "initializer_bytes": params}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
