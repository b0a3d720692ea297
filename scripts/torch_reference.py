#!/usr/bin/env python3
"""PyTorch peer for BitSwitch: builds a torch module from an ONNX file (same
graph, weights from its initializers, so architectures match exactly), then

  train MODEL.onnx --data DIR [-o OUT.onnx]  trains on DIR/{x,y}_{train,test}.npy
                                             with Adam + cosine and reports test
                                             accuracy and training seconds;
  bench MODEL.onnx --batch B --threads T     times training steps (forward,
                                             backward, Adam) on random data and
                                             prints samples per second.

Supported ONNX ops: Conv (1-D/2-D), BatchNormalization, Relu, LeakyRelu, Clip,
Sigmoid, MaxPool, AveragePool, GlobalAveragePool, Flatten, Gemm, MatMul, Add,
Identity, Dropout.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _torch_pads(pads: list[int], dims: int) -> int | tuple[int, ...]:
    begin, end = pads[:dims], pads[dims:]
    if begin != end:
        raise ValueError(f"asymmetric pads {pads} are not supported by the torch peer")
    return tuple(begin)


class OnnxModule(nn.Module):
    """Runs an ONNX graph's nodes in order with torch layers holding its initializers."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        g = model.graph
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.input_name = next(i.name for i in g.input if i.name not in inits)
        self.input_shape = [d.dim_value if d.HasField("dim_value") else None
                            for d in next(i for i in g.input if i.name == self.input_name)
                            .type.tensor_type.shape.dim]
        self.output_name = g.output[0].name
        self.layers = nn.ModuleDict()
        self.consts: dict[str, torch.Tensor] = {}
        self.steps: list[tuple[str, str, list[str], str, dict]] = []
        # initializer name -> (layer key, torch parameter/buffer name) for write-back
        self.init_map: dict[str, tuple[str, str]] = {}
        for i, node in enumerate(g.node):
            key = f"n{i}_{(node.name or node.op_type).replace('.', '_')}"
            a = _attrs(node)
            op = node.op_type
            if op == "Conv":
                w = inits[node.input[1]]
                dims = w.ndim - 2
                conv_cls = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
                has_bias = len(node.input) > 2 and node.input[2] != ""
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                    raise ValueError(f"{node.name}: auto_pad is not supported by the torch peer")
                layer = conv_cls(w.shape[1] * a.get("group", 1), w.shape[0], w.shape[2:],
                                 stride=tuple(a.get("strides", [1] * dims)),
                                 padding=_torch_pads(a.get("pads", [0] * 2 * dims), dims),
                                 dilation=tuple(a.get("dilations", [1] * dims)),
                                 groups=a.get("group", 1), bias=has_bias)
                self._load(layer, key, {"weight": node.input[1]} |
                           ({"bias": node.input[2]} if has_bias else {}), inits)
            elif op == "BatchNormalization":
                c = inits[node.input[1]].shape[0]
                # ONNX momentum weights the running value; torch's weights the batch.
                layer = nn.BatchNorm1d(c, eps=a.get("epsilon", 1e-5),
                                       momentum=1.0 - a.get("momentum", 0.9))
                self._load(layer, key, {"weight": node.input[1], "bias": node.input[2],
                                        "running_mean": node.input[3],
                                        "running_var": node.input[4]}, inits)
            elif op == "Gemm":
                if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                    raise ValueError(f"{node.name}: only Gemm(A, B[^T], C) with alpha=beta=1")
                w = inits[node.input[1]]
                if not a.get("transB", 0):
                    raise ValueError(f"{node.name}: Gemm needs transB=1 (weight [out,in])")
                has_bias = len(node.input) > 2 and node.input[2] != ""
                layer = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
                self._load(layer, key, {"weight": node.input[1]} |
                           ({"bias": node.input[2]} if has_bias else {}), inits)
            else:
                layer = None
                for name in node.input:
                    if name in inits:
                        self.consts[name] = torch.from_numpy(inits[name].copy())
            if layer is not None:
                self.layers[key] = layer
            self.steps.append((op, key, list(node.input), node.output[0], a))

    def _load(self, layer: nn.Module, key: str, names: dict[str, str], inits: dict) -> None:
        with torch.no_grad():
            for attr, init_name in names.items():
                getattr(layer, attr).copy_(torch.from_numpy(inits[init_name].copy()))
                self.init_map[init_name] = (key, attr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {self.input_name: x}
        val = lambda n: env[n] if n in env else self.consts[n]  # noqa: E731
        for op, key, ins, out, a in self.steps:
            if op in ("Conv", "Gemm"):
                y = self.layers[key](val(ins[0]))
            elif op == "BatchNormalization":
                h = val(ins[0])
                y = self.layers[key](h.flatten(2) if h.dim() > 3 else h).view_as(h)
            elif op == "Relu":
                y = F.relu(val(ins[0]))
            elif op == "LeakyRelu":
                y = F.leaky_relu(val(ins[0]), a.get("alpha", 0.01))
            elif op == "Sigmoid":
                y = torch.sigmoid(val(ins[0]))
            elif op == "Clip":
                lo = float(val(ins[1])) if len(ins) > 1 and ins[1] else a.get("min")
                hi = float(val(ins[2])) if len(ins) > 2 and ins[2] else a.get("max")
                y = torch.clamp(val(ins[0]), lo, hi)
            elif op in ("MaxPool", "AveragePool"):
                h = val(ins[0])
                dims = h.dim() - 2
                k = tuple(a["kernel_shape"])
                s = tuple(a.get("strides", [1] * dims))
                p = _torch_pads(a.get("pads", [0] * 2 * dims), dims)
                if op == "MaxPool":
                    y = (F.max_pool1d if dims == 1 else F.max_pool2d)(h, k, s, p)
                else:
                    y = (F.avg_pool1d if dims == 1 else F.avg_pool2d)(
                        h, k, s, p, count_include_pad=bool(a.get("count_include_pad", 0)))
            elif op == "GlobalAveragePool":
                h = val(ins[0])
                y = h.mean(dim=tuple(range(2, h.dim())), keepdim=True)
            elif op == "Flatten":
                y = torch.flatten(val(ins[0]), a.get("axis", 1))
            elif op == "MatMul":
                y = val(ins[0]) @ val(ins[1])
            elif op == "Add":
                y = val(ins[0]) + val(ins[1])
            elif op in ("Identity", "Dropout"):
                y = val(ins[0])
            else:
                raise ValueError(f"op {op} is not supported by the torch peer")
            env[out] = y
        return env[self.output_name]

    def write_back(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """A copy of model with every mapped initializer replaced by the trained value."""
        out = onnx.ModelProto()
        out.CopyFrom(model)
        for t in out.graph.initializer:
            if t.name in self.init_map:
                key, attr = self.init_map[t.name]
                arr = getattr(self.layers[key], attr).detach().cpu().numpy()
                t.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))
        return out


def load_split(data: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.load(f"{data}/x_{split}.npy").astype(np.float32))
    y = torch.from_numpy(np.load(f"{data}/y_{split}.npy").astype(np.int64))
    return x, y


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> tuple[float, float]:
    net.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch):
        logits = net(x[i:i + batch])
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x), loss / len(x)


def cmd_train(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = onnx.load(args.model)
    net = OnnxModule(model)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "test")
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(x_train), args.batch):
            idx = perm[i:i + args.batch]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx],
                                   label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        if args.verbose:
            acc, tl = evaluate(net, x_test, y_test)
            print(f"epoch {epoch + 1}: train loss {total / seen:.4f}, test loss {tl:.4f}, "
                  f"test acc {100 * acc:.2f}%", file=sys.stderr)
    seconds = time.perf_counter() - start
    acc, test_loss = evaluate(net, x_test, y_test)
    result = {"model": args.model, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
              "seed": args.seed, "threads": args.threads, "test_accuracy": round(100 * acc, 2),
              "test_loss": round(test_loss, 4), "train_seconds": round(seconds, 2)}
    if args.output:
        onnx.save(net.write_back(model), args.output)
        result["output"] = args.output
    print(json.dumps(result) if args.json else
          f"test accuracy {100 * acc:.2f}% (loss {test_loss:.4f}), trained {args.epochs} epochs "
          f"in {seconds:.1f} s")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    net = OnnxModule(onnx.load(args.model))
    shape = [args.batch] + [d if d else 1 for d in net.input_shape[1:]]
    if args.input_shape:
        shape = [args.batch] + [int(s) for s in args.input_shape.split(",")]
    x = torch.randn(*shape)
    with torch.no_grad():
        classes = net.eval()(x[:1]).shape[1]
    y = torch.randint(0, classes, (args.batch,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()

    def step() -> None:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        times.append((time.perf_counter() - t0) / args.steps)
    sec = float(np.median(times))
    result = {"model": args.model, "batch": args.batch, "threads": args.threads,
              "step_seconds": sec, "samples_per_second": args.batch / sec}
    print(json.dumps(result) if args.json else
          f"torch {torch.__version__}: {args.batch / sec:.0f} samples/s "
          f"({1e3 * sec:.2f} ms/step, batch {args.batch}, {args.threads} threads)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description="PyTorch peer for BitSwitch (train / bench an ONNX model)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train and report test accuracy and seconds")
    t.add_argument("model")
    t.add_argument("--data", required=True, help="dir with x_train/y_train/x_test/y_test .npy")
    t.add_argument("-o", "--output", help="write the trained model as ONNX")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--verbose", action="store_true", help="test accuracy after every epoch")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)
    b = sub.add_parser("bench", help="samples/s of a training step on random data")
    b.add_argument("model")
    b.add_argument("--batch", type=int, default=128)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    b.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--input-shape", help="C,H,W (without batch) when the model's are symbolic")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
