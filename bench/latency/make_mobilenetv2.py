#!/usr/bin/env python3
"""MobileNetV2 (Sandler et al. 2018; torchvision's `mobilenet_v2` topology, width 1.0) as ONNX opset 17 for the
latency benchmark, written with onnx.helper (no torch).

Conv3x3(3->32, stride 2)-BN-ReLU6, 17 inverted-residual blocks (expand 1x1 -> depthwise 3x3 -> project 1x1, BN after
each conv, ReLU6 after the first two, identity Add when stride 1 and channels equal; (t, c, n, s) = (1,16,1,1),
(6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1)), Conv1x1(320->1280)-BN-ReLU6,
GlobalAveragePool, Flatten, Gemm(1280->classes). ReLU6 is `Clip(x, 0, 6)` as torch exports it. BN stays a node (the
multi-precision method needs it). Random weights (He-normal convs from a fixed seed, BN at identity): the benchmark
measures latency, not accuracy. 3,504,872 parameters at 224x224 and 1000 classes.

Usage: make_mobilenetv2.py OUT.onnx [--size 224] [--classes 1000]
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(size: int, classes: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def conv(name, x, cin, cout, k, stride, groups=1):
        fan_in = cin // groups * k * k
        w = rng.normal(0, np.sqrt(2.0 / fan_in), size=(cout, cin // groups, k, k))
        nodes.append(helper.make_node("Conv", [x, init(name + ".weight", w)], [name], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
                                      group=groups))
        return name

    def bn(name, x, c):
        ins = [x, init(name + ".scale", np.ones(c)), init(name + ".bias", np.zeros(c)),
               init(name + ".mean", np.zeros(c)), init(name + ".var", np.ones(c))]
        nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=1e-5, momentum=0.9))
        return name

    init("relu6.min", np.array(0.0))
    init("relu6.max", np.array(6.0))

    def relu6(name, x):
        nodes.append(helper.make_node("Clip", [x, "relu6.min", "relu6.max"], [name], name=name))
        return name

    def cbr(name, x, cin, cout, k, stride, groups=1):
        return relu6(name + ".relu6", bn(name + ".bn", conv(name + ".conv", x, cin, cout, k, stride, groups), cout))

    x = cbr("features.0", "x", 3, 32, 3, 2)
    cin, index = 32, 1
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{index}"
            hidden = cin * t
            h = x
            if t != 1:
                h = cbr(p + ".expand", h, cin, hidden, 1, 1)
            h = cbr(p + ".dw", h, hidden, hidden, 3, stride, groups=hidden)
            h = bn(p + ".project.bn", conv(p + ".project.conv", h, hidden, c, 1, 1), c)
            if stride == 1 and cin == c:
                nodes.append(helper.make_node("Add", [h, x], [p + ".add"], name=p + ".add"))
                h = p + ".add"
            x, cin, index = h, c, index + 1
    x = cbr(f"features.{index}", x, cin, 1280, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1))
    bound = 1 / np.sqrt(1280)
    w = init("classifier.weight", rng.uniform(-bound, bound, size=(classes, 1280)))
    b = init("classifier.bias", np.zeros(classes))
    nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], name="classifier", transB=1))
    graph = helper.make_graph(nodes, "mobilenetv2",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bitswitch-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    a = ap.parse_args()
    model = build(a.size, a.classes)
    onnx.save(model, a.out)
    n = sum(int(np.prod(t.dims)) for t in model.graph.initializer
            if not t.name.endswith((".mean", ".var")) and not t.name.startswith("relu6."))
    print(f"wrote {a.out} ({len(model.graph.node)} nodes, {n} parameters)")


if __name__ == "__main__":
    main()
