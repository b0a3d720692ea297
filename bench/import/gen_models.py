#!/usr/bin/env python3
"""Make the import benchmark's models in a cache dir (default: .cache/bench in
the repo root):

  gemm_100mb.onnx  one Gemm with a [5000, 5000] float32 weight (100 MB) and a bias;
  resnet50.onnx    the ResNet-50 v1.5 topology (torchvision's: stride on the 3x3
                   of each bottleneck), BN kept as nodes, random weights,
                   25,557,032 parameters.

Both are built with onnx.helper at opset 17, weights in raw_data. Existing files
from the same generator version are kept.

Usage: gen_models.py [CACHE_DIR]
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION = "1"  # bump when the models change so cached files are rebuilt
OPSET = 17


def save(model: onnx.ModelProto, path: str) -> None:
    onnx.checker.check_model(model)  # proto-level check; works on >100 MB protos too
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)


def model_of(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="bitswitch-bench", producer_version=VERSION,
                          doc_string=doc)
    m.ir_version = 8
    return m


def gemm_100mb(rng: np.random.Generator) -> onnx.ModelProto:
    n = 5000
    w = rng.standard_normal((n, n), dtype=np.float32) * np.float32(1 / np.sqrt(n))
    b = np.zeros(n, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1)],
        "gemm_100mb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
        initializer=[numpy_helper.from_array(w, "fc.weight"), numpy_helper.from_array(b, "fc.bias")])
    return model_of(graph, "One Gemm with a 5000x5000 float32 weight (100 MB).")


class ResNet50:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.params = 0

    def _init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(arr, name))
        self.params += arr.size
        return name

    def conv_bn(self, name: str, x: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        fan_in = cin * k * k
        w = (self.rng.standard_normal((cout, cin, k, k), dtype=np.float32)
             * np.float32(np.sqrt(2.0 / fan_in)))
        self.nodes.append(helper.make_node(
            "Conv", [x, self._init(f"{name}.weight", w)], [f"{name}.conv"], name=f"{name}.conv",
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        bn = f"{name}.bn"
        ins = [f"{name}.conv",
               self._init(f"{bn}.scale", np.ones(cout, np.float32)),
               self._init(f"{bn}.bias", np.zeros(cout, np.float32)),
               # running stats are not parameters; keep them out of the count
               f"{bn}.mean", f"{bn}.var"]
        self.inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{bn}.mean"))
        self.inits.append(numpy_helper.from_array(np.ones(cout, np.float32), f"{bn}.var"))
        self.nodes.append(helper.make_node("BatchNormalization", ins, [bn], name=bn, epsilon=1e-5))
        if not relu:
            return bn
        self.nodes.append(helper.make_node("Relu", [bn], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    def bottleneck(self, name: str, x: str, cin: int, width: int, stride: int) -> str:
        cout = 4 * width
        h = self.conv_bn(f"{name}.c1", x, cin, width, 1, 1, True)
        h = self.conv_bn(f"{name}.c2", h, width, width, 3, stride, True)
        h = self.conv_bn(f"{name}.c3", h, width, cout, 1, 1, False)
        skip = x
        if stride != 1 or cin != cout:
            skip = self.conv_bn(f"{name}.down", x, cin, cout, 1, stride, False)
        self.nodes.append(helper.make_node("Add", [h, skip], [f"{name}.add"], name=f"{name}.add"))
        self.nodes.append(helper.make_node("Relu", [f"{name}.add"], [f"{name}.out"], name=f"{name}.out"))
        return f"{name}.out"

    def build(self) -> onnx.ModelProto:
        x = self.conv_bn("stem", "x", 3, 64, 7, 2, True)
        self.nodes.append(helper.make_node("MaxPool", [x], ["stem.pool"], name="stem.pool",
                                           kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
        x, cin = "stem.pool", 64
        for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512))):
            for b in range(blocks):
                stride = 2 if (b == 0 and stage > 0) else 1
                x = self.bottleneck(f"layer{stage + 1}.{b}", x, cin, width, stride)
                cin = 4 * width
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
        self.nodes.append(helper.make_node("Flatten", ["gap"], ["flatten"], name="flatten", axis=1))
        w = self.rng.uniform(-1, 1, (1000, 2048)).astype(np.float32) * np.float32(1 / np.sqrt(2048))
        self.nodes.append(helper.make_node(
            "Gemm", ["flatten", self._init("fc.weight", w), self._init("fc.bias", np.zeros(1000, np.float32))],
            ["logits"], name="fc", transB=1))
        graph = helper.make_graph(
            self.nodes, "resnet50",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
            initializer=self.inits)
        return model_of(graph, f"ResNet-50 v1.5 topology, random weights, {self.params} parameters.")


def main() -> int:
    cache = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "bench"))
    os.makedirs(cache, exist_ok=True)
    stamp = os.path.join(cache, ".import-models-stamp")
    want = f"gen_models={VERSION} onnx={onnx.__version__}\n"
    paths = {name: os.path.join(cache, f"{name}.onnx") for name in ("gemm_100mb", "resnet50")}
    if (os.path.isfile(stamp) and open(stamp).read() == want
            and all(os.path.isfile(p) for p in paths.values())):
        print(f"import models up to date in {cache}", file=sys.stderr)
        return 0
    if os.path.exists(stamp):
        os.remove(stamp)
    rng = np.random.default_rng(0)
    save(gemm_100mb(rng), paths["gemm_100mb"])
    r = ResNet50(rng)
    save(r.build(), paths["resnet50"])
    with open(stamp, "w") as f:
        f.write(want)
    for name, p in paths.items():
        print(f"{name}: {os.path.getsize(p) / 1e6:.1f} MB -> {p}", file=sys.stderr)
    print(f"resnet50: {r.params} parameters, {len(r.nodes)} nodes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
