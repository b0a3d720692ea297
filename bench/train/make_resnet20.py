#!/usr/bin/env python3
"""CIFAR-style ResNet-20 (He et al. 2016, §4.2) as ONNX opset 17 for the training benchmark.

Conv3x3(3->16)-BN-ReLU, three stages of three basic blocks (16, 32, 64 channels; stride 2 at the start of
stages 2 and 3), GlobalAveragePool, Flatten, Gemm(64->10). Shortcuts that change shape use a 1x1 conv + BN
projection (option B), so the graph only needs Conv, BatchNormalization, Relu, Add, GlobalAveragePool, Flatten
and Gemm -- ops both bitswitch and scripts/torch_reference.py run. 272,474 parameters, untrained
(PyTorch's default init from a fixed numpy seed); the benchmark feeds random 32x32 data.

Usage: make_resnet20.py OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
nodes, inits = [], []


def init(name, arr):
    inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
    return name


def conv(name, x, cin, cout, k, stride):
    bound = 1.0 / np.sqrt(cin * k * k)
    w = init(name + ".weight", rng.uniform(-bound, bound, (cout, cin, k, k)))
    nodes.append(helper.make_node("Conv", [x, w], [name], name=name, kernel_shape=[k, k],
                                  strides=[stride, stride], pads=[k // 2] * 4))
    return name


def bn(name, x, c):
    ins = [x, init(name + ".scale", np.ones(c)), init(name + ".bias", np.zeros(c)),
           init(name + ".mean", np.zeros(c)), init(name + ".var", np.ones(c))]
    nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=1e-5, momentum=0.9))
    return name


def relu(name, x):
    nodes.append(helper.make_node("Relu", [x], [name], name=name))
    return name


def block(name, x, cin, cout, stride):
    h = relu(name + ".relu1", bn(name + ".bn1", conv(name + ".conv1", x, cin, cout, 3, stride), cout))
    h = bn(name + ".bn2", conv(name + ".conv2", h, cout, cout, 3, 1), cout)
    if stride != 1 or cin != cout:
        x = bn(name + ".proj_bn", conv(name + ".proj", x, cin, cout, 1, stride), cout)
    nodes.append(helper.make_node("Add", [h, x], [name + ".add"], name=name + ".add"))
    return relu(name + ".out", name + ".add")


def main():
    x = relu("stem.relu", bn("stem.bn", conv("stem.conv", "x", 3, 16, 3, 1), 16))
    cin = 16
    for s, cout in enumerate([16, 32, 64]):
        for b in range(3):
            stride = 2 if s > 0 and b == 0 else 1
            x = block(f"s{s}.b{b}", x, cin, cout, stride)
            cin = cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1))
    bound = 1.0 / np.sqrt(64)
    w = init("fc.weight", rng.uniform(-bound, bound, (10, 64)))
    b = init("fc.bias", rng.uniform(-bound, bound, (10,)))
    nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "resnet20",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[1])
    n = sum(int(np.prod(t.dims)) for t in inits if not t.name.endswith((".mean", ".var")))
    print(f"wrote {sys.argv[1]} ({len(nodes)} nodes, {n} parameters)")


if __name__ == "__main__":
    main()
