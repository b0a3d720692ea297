#!/usr/bin/env python3
"""A QDQ model from a PyTorch QAT export, for the tests of issue 7 part 7 (Tests/CLITests/Fixtures/torch_qat_qdq.onnx).

Eager-mode torch.ao.quantization QAT (fuse_modules_qat + prepare_qat, FakeQuantize with per-tensor uint8 activations
and per-channel symmetric int8 weights) of a small CNN on the digits data (8 epochs, Adam), observers frozen, then
torch.onnx.export (TorchScript exporter, opset 17): every FakeQuantize becomes QuantizeLinear -> DequantizeLinear,
the weights as float constants behind Identity -> QuantizeLinear (per-channel) -> DequantizeLinear. (The default
'fbgemm' QAT qconfig uses the fused observer op, which torch.onnx cannot export; hence the explicit FakeQuantize.)
Conv(1->16,3,pad 1)-ReLU, Conv(16->32,3,stride 2,pad 1)-ReLU, Flatten, Linear(512->10): the export's Gemm reads
the Flatten of a DequantizeLinear.
Needs torch (scripts/setup-venv.sh --with-torch); the tests read the committed file and do not need torch.

Usage: make-torch-qat-qdq.py [OUT.onnx]
"""
import os
import sys

import numpy as np
import torch
import torch.ao.quantization as tq
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = tq.QuantStub()
        self.c1, self.r1 = nn.Conv2d(1, 16, 3, padding=1), nn.ReLU()
        self.c2, self.r2 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU()
        self.f = nn.Linear(32 * 16, 10)
        self.dq = tq.DeQuantStub()

    def forward(self, x):
        return self.dq(self.f(torch.flatten(self.r2(self.c2(self.r1(self.c1(self.q(x))))), 1)))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests/CLITests/Fixtures/torch_qat_qdq.onnx")
    torch.manual_seed(0)
    d = os.path.join(ROOT, "examples/digits/data")
    x = torch.tensor(np.load(f"{d}/x_train.npy"))
    y = torch.tensor(np.load(f"{d}/y_train.npy")).long()
    m = Net().train()
    m.qconfig = tq.QConfig(
        activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                             dtype=torch.quint8, reduce_range=False),
        weight=tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-128,
                                         quant_max=127, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                         ch_axis=0))
    tq.fuse_modules_qat(m, [["c1", "r1"], ["c2", "r2"]], inplace=True)
    tq.prepare_qat(m, inplace=True)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for _ in range(8):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    m.eval()
    m.apply(tq.disable_observer)
    xt = torch.tensor(np.load(f"{d}/x_test.npy"))
    acc = (m(xt).argmax(1).numpy() == np.load(f"{d}/y_test.npy")).mean()
    torch.onnx.export(m, xt[:1], out, input_names=["x"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    print(f"{out}: fake-quant top-1 {acc * 100:.2f} % on the digits test set")


if __name__ == "__main__":
    main()
