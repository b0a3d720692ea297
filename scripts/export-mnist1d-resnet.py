#!/usr/bin/env python3
"""The mnist1d-resnet example: a 1-D ResNet exported from PyTorch (untrained), and
MNIST-1D with 25,000 sequences from the mnist1d package's offline generator (seed 42).

  export-mnist1d-resnet.py data  [OUTDIR]   x/y_{train,test}.npy: 20,000 / 5,000
  export-mnist1d-resnet.py model [OUT.onnx]  needs torch (scripts/setup-venv.sh --with-torch)
  export-mnist1d-resnet.py fixture [OUT.onnx]  the same with widths 4/8/8, one block per stage (a test fixture)

The model is exported the way a user exports one: torch.onnx.export of a fresh
nn.Module in eval mode, without any clean-up. PyTorch's TorchScript exporter
deduplicates equal initializers (a fresh BN's bias and running mean are zeros,
its weight and running variance ones) and feeds the copies through Identity
nodes; BitSwitch's importer un-aliases them.
"""
from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "mnist1d-resnet")


def export_data(outdir: str) -> None:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 25000
    args.train_split = 0.8
    args.seed = 42
    data = make_dataset(args)
    arrays = {
        "x_train": np.asarray(data["x"], dtype=np.float32)[:, None, :],
        "y_train": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float32)[:, None, :],
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }
    assert arrays["x_train"].shape == (20000, 1, 40) and arrays["x_test"].shape == (5000, 1, 40)
    os.makedirs(outdir, exist_ok=True)
    for name, arr in arrays.items():
        tmp = os.path.join(outdir, f".{name}.tmp.npy")
        np.save(tmp, np.ascontiguousarray(arr))
        os.replace(tmp, os.path.join(outdir, f"{name}.npy"))
    print(f"mnist1d-resnet data: train {arrays['x_train'].shape} test {arrays['x_test'].shape} "
          f"(seed {args.seed}) -> {outdir}")


def export_model(out: str, widths=(32, 64, 128), blocks: int = 2) -> None:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv1d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm1d(cout)
            self.conv2 = nn.Conv1d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm1d(cout)
            self.relu = nn.ReLU()
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            s = x if self.downsample is None else self.downsample(x)
            return self.relu(y + s)

    class ResNet1D(nn.Module):
        def __init__(self):
            super().__init__()
            w1, w2, w3 = widths
            self.conv1 = nn.Conv1d(1, w1, 5, 1, 2, bias=False)
            self.bn1 = nn.BatchNorm1d(w1)
            self.relu = nn.ReLU()

            def stage(cin, cout, stride):
                return nn.Sequential(Block(cin, cout, stride), *[Block(cout, cout, 1) for _ in range(blocks - 1)])

            self.layer1 = stage(w1, w1, 1)
            self.layer2 = stage(w1, w2, 2)
            self.layer3 = stage(w2, w3, 2)
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.fc = nn.Linear(w3, 10)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(self.pool(x), 1))

    torch.manual_seed(0)
    model = ResNet1D().eval()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    torch.onnx.export(model, (torch.zeros(1, 1, 40),), tmp, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False,
                      do_constant_folding=False)
    os.replace(tmp, out)
    n = sum(p.numel() for p in model.parameters())
    print(f"mnist1d-resnet model: {n} parameters -> {out}")


def main() -> int:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "data":
        export_data(sys.argv[2] if len(sys.argv) > 2 else os.path.join(EXAMPLE, "data"))
    elif what == "model":
        export_model(sys.argv[2] if len(sys.argv) > 2 else os.path.join(EXAMPLE, "model.onnx"))
    elif what == "fixture":
        export_model(sys.argv[2] if len(sys.argv) > 2 else
                     os.path.join(ROOT, "Tests", "BitSwitchONNXTests", "Fixtures", "torch_resnet1d_tiny.onnx"),
                     widths=(4, 8, 8), blocks=1)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
