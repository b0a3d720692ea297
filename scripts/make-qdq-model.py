#!/usr/bin/env python3
"""Quantizes a float ONNX model with onnxruntime's quantize_static (QDQ format, per-channel int8 weights) on
samples of a dataset directory (x_train.npy), the way users bring models quantized elsewhere to BitSwitch.

Usage: make-qdq-model.py MODEL.onnx DATA_DIR OUT.onnx [--activation uint8|int8] [--per-tensor] [--samples N]
"""
import argparse, os
import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process


class Reader(CalibrationDataReader):
    def __init__(self, name, x, batch=1):
        self.items = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.items, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model"); ap.add_argument("data"); ap.add_argument("out")
    ap.add_argument("--activation", default="uint8", choices=["uint8", "int8"])
    ap.add_argument("--per-tensor", action="store_true")
    ap.add_argument("--samples", type=int, default=128)
    a = ap.parse_args()
    d = a.data if os.path.exists(os.path.join(a.data, "x_train.npy")) else os.path.join(a.data, "data")
    x = np.load(os.path.join(d, "x_train.npy")).astype(np.float32)[: a.samples]
    m = onnx.load(a.model)
    name = m.graph.input[0].name
    pre = a.out + ".pre.onnx"
    quant_pre_process(a.model, pre, skip_symbolic_shape=True)
    quantize_static(pre, a.out, Reader(name, x), quant_format=QuantFormat.QDQ, per_channel=not a.per_tensor,
                    activation_type=QuantType.QUInt8 if a.activation == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    os.remove(pre)


if __name__ == "__main__":
    main()
