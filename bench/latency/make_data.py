#!/usr/bin/env python3
"""Random calibration data for a model, in the layout `bitswitch train --data` reads: x_train.npy / y_train.npy /
x_test.npy / y_test.npy, inputs N(0, 1) float32 shaped like the model's input with the batch dimension replaced,
labels uniform over the classes of the [N, classes] output. Latency does not depend on the values; the data only
gives the post-training calibration (bitswitch --ptq, onnxruntime's quantize_static) activation ranges to measure.

Usage: make_data.py MODEL.onnx OUT_DIR [--train 32] [--test 4] [--seed 1]
"""
import argparse
import os

import numpy as np
import onnx


def dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=32)
    ap.add_argument("--test", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    model = onnx.load(a.model, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise SystemExit(f"{a.model}: expected one input and one output")
    shape = dims(inputs[0])[1:]
    classes = dims(model.graph.output[0])[-1]
    if any(d is None for d in shape) or classes is None:
        raise SystemExit(f"{a.model}: input {inputs[0].name} or the output has a symbolic non-batch dimension")
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    for split, n in (("train", a.train), ("test", a.test)):
        np.save(os.path.join(a.out, f"x_{split}.npy"), rng.standard_normal((n, *shape), dtype=np.float32))
        np.save(os.path.join(a.out, f"y_{split}.npy"), rng.integers(0, classes, n).astype(np.int64))


if __name__ == "__main__":
    main()
