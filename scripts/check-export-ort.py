#!/usr/bin/env python3
"""Checks that a model exported by BitSwitch runs in onnxruntime and reproduces reference outputs.

Usage: check-export-ort.py EXPORTED.onnx FIXTURE_STEM [--atol 1e-5]
  FIXTURE_STEM is e.g. Tests/BitSwitchONNXTests/Fixtures/conv_bn: inputs are FIXTURE_STEM.input_K.pb and the
  expected outputs FIXTURE_STEM.output_K.pb (bare TensorProtos written by make-onnx-fixtures.py).
Also runs onnx.checker on the exported model. Exit status 0 when everything matches.
"""
import argparse
import glob
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def load_tensors(pattern):
    def index(p):
        return int(p.rsplit("_", 1)[1].split(".")[0])
    out = []
    for p in sorted(glob.glob(pattern), key=index):
        t = onnx.load_tensor(p)
        out.append((t.name, numpy_helper.to_array(t)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("stem")
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args()

    onnx.checker.check_model(onnx.load(args.model), full_check=True)
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    feeds = dict(load_tensors(args.stem + ".input_*.pb"))
    expected = load_tensors(args.stem + ".output_*.pb")
    names = [n for n, _ in expected]
    got = sess.run(names, feeds)
    ok = True
    for (name, want), have in zip(expected, got):
        same_type = want.dtype == have.dtype and want.shape == have.shape
        close = same_type and (np.array_equal(want, have) if want.dtype.kind in "biu"
                               else np.allclose(want, have, atol=args.atol, rtol=0))
        print(f"  {name}: {'ok' if close else 'MISMATCH'} ({have.dtype}{list(have.shape)})")
        ok &= bool(close)
    print(f"{args.model}: {'PASS' if ok else 'FAIL'} ({len(expected)} outputs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
