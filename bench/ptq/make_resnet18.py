#!/usr/bin/env python3
"""ResNet-18 (torchvision topology: 7x7 stem, max-pool, 4 stages of 2 BasicBlocks, 64-128-256-512 channels,
global average pool, Gemm to 1000 classes) with random He-normal weights and BatchNormalization kept as nodes
(as the multi-precision method needs), written with onnx.helper (no torch), opset 17; plus a calibration set of
random N(0, 1) images and a tiny test split in the layout `bitswitch train --data` reads.

Usage: make_resnet18.py OUT_DIR [--size 224] [--samples 512]
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(size: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def conv(name, x, cin, cout, k, stride, pad):
        w = rng.normal(0, np.sqrt(2.0 / (cin * k * k)), size=(cout, cin, k, k))
        nodes.append(helper.make_node("Conv", [x, init(name + ".weight", w)], [name], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4))
        return name

    def bn(name, x, c):
        ins = [x, init(name + ".scale", np.ones(c)), init(name + ".bias", np.zeros(c)),
               init(name + ".mean", np.zeros(c)), init(name + ".var", np.ones(c))]
        nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=1e-5, momentum=0.9))
        return name

    def relu(name, x):
        nodes.append(helper.make_node("Relu", [x], [name], name=name))
        return name

    x = relu("relu0", bn("bn0", conv("conv0", "x", 3, 64, 7, 2, 3), 64))
    nodes.append(helper.make_node("MaxPool", [x], ["pool0"], name="pool0", kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, cin = "pool0", 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for block in range(2):
            p = f"layer{stage + 1}.{block}"
            stride = 2 if stage > 0 and block == 0 else 1
            y = relu(p + ".relu1", bn(p + ".bn1", conv(p + ".conv1", x, cin, cout, 3, stride, 1), cout))
            y = bn(p + ".bn2", conv(p + ".conv2", y, cout, cout, 3, 1, 1), cout)
            short = x
            if stride != 1 or cin != cout:
                short = bn(p + ".down.bn", conv(p + ".down.conv", x, cin, cout, 1, stride, 0), cout)
            nodes.append(helper.make_node("Add", [y, short], [p + ".add"], name=p + ".add"))
            x, cin = relu(p + ".relu2", p + ".add"), cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1))
    w = init("fc.weight", rng.uniform(-1 / np.sqrt(512), 1 / np.sqrt(512), size=(1000, 512)))
    b = init("fc.bias", np.zeros(1000))
    nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "resnet18",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bitswitch-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--samples", type=int, default=512)
    a = ap.parse_args()
    os.makedirs(os.path.join(a.out, "data"), exist_ok=True)
    onnx.save(build(a.size), os.path.join(a.out, "resnet18.onnx"))
    rng = np.random.default_rng(1)
    d = os.path.join(a.out, "data")
    np.save(os.path.join(d, "x_train.npy"), rng.standard_normal((a.samples, 3, a.size, a.size), dtype=np.float32))
    np.save(os.path.join(d, "y_train.npy"), rng.integers(0, 1000, a.samples).astype(np.int64))
    np.save(os.path.join(d, "x_test.npy"), rng.standard_normal((8, 3, a.size, a.size), dtype=np.float32))
    np.save(os.path.join(d, "y_test.npy"), rng.integers(0, 1000, 8).astype(np.int64))


if __name__ == "__main__":
    main()
