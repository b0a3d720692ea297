#!/usr/bin/env python3
"""Times onnxruntime's quantize_static (QDQ, per-channel int8 weights) on a model and the calibration samples of a
`bitswitch --data` directory, batches of 32. Prints one JSON line: method, samples, seconds.

Usage: ort_calibrate.py MODEL DATA_DIR OUT.onnx [--method minmax|percentile] [--samples 512]
"""
import argparse
import json
import os
import time

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static


class Reader(CalibrationDataReader):
    def __init__(self, x, batch):
        self.batches = iter([{"x": x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--method", default="minmax", choices=["minmax", "percentile"])
    ap.add_argument("--samples", type=int, default=512)
    a = ap.parse_args()
    x = np.load(os.path.join(a.data, "x_train.npy"), mmap_mode="r")[:a.samples]
    x = np.ascontiguousarray(x)
    method = CalibrationMethod.MinMax if a.method == "minmax" else CalibrationMethod.Percentile
    # Bounded memory: flush the collected outputs every few batches (MinMax); the percentile rule of bitswitch's
    # PTQ (99.9) for the Percentile calibrator.
    # (onnxruntime 1.32 raises "No data is collected" when the batch count is a multiple of the flush interval.)
    batches = -(-len(x) // 32)
    flush = 4
    while batches % flush == 0:
        flush += 1
    extra = {"CalibMaxIntermediateOutputs": flush} if a.method == "minmax" else {"CalibPercentile": 99.9}
    t0 = time.perf_counter()
    quantize_static(a.model, a.out, Reader(x, 32), quant_format=QuantFormat.QDQ, per_channel=True,
                    calibrate_method=method, extra_options=extra)
    seconds = time.perf_counter() - t0
    print(json.dumps({"method": a.method, "samples": len(x), "seconds": seconds}))


if __name__ == "__main__":
    main()
