#!/usr/bin/env python3
"""Models "as they come" from model zoos and exporters, for the tests of part 8 of issue 7 (Tests/CLITests/Fixtures):

- zoo_mnist_batch1.onnx: the layout of the ONNX model zoo's MNIST model (mnist-8), written with onnx.helper:
  input fixed to [1, 1, 8, 8] here (8x8 digits), Conv+Add bias, Relu, MaxPool, Conv+Add, Relu, MaxPool,
  Reshape to the constant [1, 64] (the batch baked in), and a MatMul whose weight is Reshape(constant [4, 2, 2, 10],
  [64, 10]) — so the MatMul's weight reaches it through a Reshape of a constant. Random weights.
- torch_batch1.onnx: a real torch.onnx.export (TorchScript exporter, opset 17) of a small CNN with BatchNorm in
  training form, exported with a dummy input of batch 1 and no dynamic axes, whose classifier is `x.view(1, -1) @
  self.w.t()`: a Reshape to [1, -1] and a MatMul reading Transpose(w). Made only when torch is importable (the
  committed file is what the tests read; torch is not needed to run them).
- batch_in_concat.onnx: a batch-1 model whose batch is also baked into a Concat with a constant [1, 4] tensor, which
  the batch rewrite cannot handle (the fallback: one sample at a time).

Usage: make-zoo-fixtures.py [OUT_DIR]
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save(model, path):
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    print(f"{path}: {len(model.graph.node)} nodes")


def zoo_mnist(out):
    rng = np.random.default_rng(0)
    f = lambda *s: (rng.standard_normal(s) * np.sqrt(2.0 / np.prod(s[1:]))).astype(np.float32)
    inits = [
        numpy_helper.from_array(f(4, 1, 3, 3), "Parameter5"),
        numpy_helper.from_array(np.zeros((4, 1, 1), np.float32), "Parameter6"),
        numpy_helper.from_array(f(4, 4, 3, 3), "Parameter87"),
        numpy_helper.from_array(np.zeros((4, 1, 1), np.float32), "Parameter88"),
        numpy_helper.from_array(np.array([1, 16], np.int64), "Pooling160_Output_0_reshape0_shape"),
        numpy_helper.from_array((rng.standard_normal((4, 2, 2, 10)) * 0.25).astype(np.float32), "Parameter193"),
        numpy_helper.from_array(np.array([16, 10], np.int64), "Parameter193_reshape1_shape"),
        numpy_helper.from_array(np.zeros((1, 10), np.float32), "Parameter194"),
    ]
    n = helper.make_node
    nodes = [
        n("Reshape", ["Parameter193", "Parameter193_reshape1_shape"], ["Parameter193_reshape1"], name="Times212_reshape1"),
        n("Conv", ["Input3", "Parameter5"], ["Convolution28_Output_0"], name="Convolution28", kernel_shape=[3, 3],
          pads=[1, 1, 1, 1], strides=[1, 1]),
        n("Add", ["Convolution28_Output_0", "Parameter6"], ["Plus30_Output_0"], name="Plus30"),
        n("Relu", ["Plus30_Output_0"], ["ReLU32_Output_0"], name="ReLU32"),
        n("MaxPool", ["ReLU32_Output_0"], ["Pooling66_Output_0"], name="Pooling66", kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["Pooling66_Output_0", "Parameter87"], ["Convolution110_Output_0"], name="Convolution110",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        n("Add", ["Convolution110_Output_0", "Parameter88"], ["Plus112_Output_0"], name="Plus112"),
        n("Relu", ["Plus112_Output_0"], ["ReLU114_Output_0"], name="ReLU114"),
        n("MaxPool", ["ReLU114_Output_0"], ["Pooling160_Output_0"], name="Pooling160", kernel_shape=[2, 2],
          strides=[2, 2]),
        n("Reshape", ["Pooling160_Output_0", "Pooling160_Output_0_reshape0_shape"], ["Pooling160_Output_0_reshape0"],
          name="Times212_reshape0"),
        n("MatMul", ["Pooling160_Output_0_reshape0", "Parameter193_reshape1"], ["Times212_Output_0"], name="Times212"),
        n("Add", ["Times212_Output_0", "Parameter194"], ["Plus214_Output_0"], name="Plus214"),
    ]
    g = helper.make_graph(nodes, "CNTKGraph",
                          [helper.make_tensor_value_info("Input3", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info("Plus214_Output_0", TensorProto.FLOAT, [1, 10])],
                          initializer=inits)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="zoo-style"),
         os.path.join(out, "zoo_mnist_batch1.onnx"))


def batch_in_concat(out):
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array((rng.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32), "w0"),
        numpy_helper.from_array(np.array([1, 256], np.int64), "flat_shape"),
        numpy_helper.from_array(np.ones((1, 4), np.float32), "extra"),
        numpy_helper.from_array((rng.standard_normal((260, 10)) * 0.05).astype(np.float32), "w1"),
    ]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w0"], ["c0"], name="conv0", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Relu", ["c0"], ["r0"], name="relu0"),
        n("Reshape", ["r0", "flat_shape"], ["flat"], name="flatten"),
        n("Concat", ["flat", "extra"], ["cat"], name="cat", axis=1),
        n("MatMul", ["cat", "w1"], ["logits"], name="fc"),
    ]
    g = helper.make_graph(nodes, "batch_in_concat",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], initializer=inits)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(out, "batch_in_concat.onnx"))


def torch_export(out):
    try:
        import torch
    except ImportError:
        print("torch not importable: torch_batch1.onnx left as it is")
        return
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = torch.nn.Conv2d(1, 8, 3, padding=1, bias=False)
            self.bn0 = torch.nn.BatchNorm2d(8)
            self.conv1 = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(8)
            self.w = torch.nn.Parameter(torch.randn(10, 8 * 4 * 4) * 0.05)

        def forward(self, x):
            x = torch.relu(self.bn0(self.conv0(x)))
            x = torch.nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
            return x.view(1, -1) @ self.w.t()

    m = Net().eval()
    path = os.path.join(out, "torch_batch1.onnx")
    # training=TRAINING keeps BatchNormalization as a node (eval-mode export would fold it into the Conv);
    # do_constant_folding=False keeps the Transpose of the classifier weight, as a user's export may.
    torch.onnx.export(m, (torch.randn(1, 1, 8, 8),), path, input_names=["x"], output_names=["logits"],
                      opset_version=17, dynamo=False, training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)
    model = onnx.load(path)
    print(f"{path}: {len(model.graph.node)} nodes: {[n.op_type for n in model.graph.node]}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "CLITests", "Fixtures")
    os.makedirs(out, exist_ok=True)
    zoo_mnist(out)
    batch_in_concat(out)
    torch_export(out)


if __name__ == "__main__":
    main()
