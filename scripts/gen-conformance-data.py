#!/usr/bin/env python3
"""Regenerate ONNX's backend conformance cases into OUTDIR.

onnx 1.23 no longer ships backend/test/data/node, but it still ships the Python
that defines every node case. This writes them to OUTDIR/node/<case>/ and copies
the wheel's shipped pytorch-converted, pytorch-operator and simple cases beside
them, all in the same layout:

    <case>/model.onnx
    <case>/test_data_set_0/input_K.pb, output_K.pb   (bare TensorProto)

A stamp file with the onnx and ml_dtypes versions makes a second run a no-op.

Usage: gen-conformance-data.py OUTDIR [--force]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import types
import warnings

SHIPPED_KINDS = ("pytorch-converted", "pytorch-operator", "simple")
STAMP_NAME = ".bitswitch-conformance-stamp"


def count_cases(outdir: str) -> dict[str, int]:
    counts = {}
    for kind in ("node",) + SHIPPED_KINDS:
        d = os.path.join(outdir, kind)
        counts[kind] = sum(
            1 for c in os.listdir(d) if os.path.isfile(os.path.join(d, c, "model.onnx"))
        ) if os.path.isdir(d) else 0
    return counts


def generate_node_cases(outdir: str) -> None:
    import onnx.backend.test.case.node as node_cases
    from onnx.backend.test import cmd_tools

    # generate_data writes whatever cmd_tools.model_test.collect_testcases()
    # returns to <output>/<case.kind>/<case.name>; upstream that is the model
    # cases, so point it at the node cases (kind "node") instead.
    # Many cases draw random inputs from numpy's global generator: seed it so
    # every machine gets the same data. Some cases overflow or divide by zero
    # on purpose; their numpy warnings are noise here.
    import numpy as np

    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cases = node_cases.collect_testcases()
    shim = types.SimpleNamespace(collect_testcases=lambda: cases)
    saved = cmd_tools.model_test
    cmd_tools.model_test = shim
    try:
        cmd_tools.generate_data(argparse.Namespace(output=outdir))
    finally:
        cmd_tools.model_test = saved


def copy_shipped_cases(outdir: str) -> None:
    import onnx.backend.test

    data_dir = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data")
    for kind in SHIPPED_KINDS:
        src = os.path.join(data_dir, kind)
        if not os.path.isdir(src):
            raise SystemExit(f"gen-conformance-data: the onnx wheel has no {src}")
        dst = os.path.join(outdir, kind)
        if os.path.lexists(dst):
            shutil.rmtree(dst) if os.path.isdir(dst) and not os.path.islink(dst) else os.remove(dst)
        # Copied, not linked: a link into a venv breaks when the venv is rebuilt.
        shutil.copytree(src, dst)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    args = ap.parse_args()

    import ml_dtypes
    import onnx

    outdir = os.path.abspath(args.outdir)
    stamp = os.path.join(outdir, STAMP_NAME)
    # ml_dtypes computes the expected outputs of the int4/float8 Cast cases (0.7 changed its float -> int4 casts).
    want = f"onnx={onnx.__version__}\nml_dtypes={ml_dtypes.__version__}\n"
    if not args.force and os.path.isfile(stamp):
        with open(stamp) as f:
            if f.read() == want:
                counts = count_cases(outdir)
                print(f"conformance data up to date in {outdir}: "
                      + ", ".join(f"{k} {v}" for k, v in counts.items())
                      + f" ({sum(counts.values())} cases)")
                return 0

    start = time.monotonic()
    os.makedirs(outdir, exist_ok=True)
    if os.path.exists(stamp):
        os.remove(stamp)
    node_dir = os.path.join(outdir, "node")
    if os.path.isdir(node_dir):
        # Drop cases that an older onnx had and this one does not.
        shutil.rmtree(node_dir)
    generate_node_cases(outdir)
    copy_shipped_cases(outdir)
    with open(stamp, "w") as f:
        f.write(want)
    counts = count_cases(outdir)
    print(f"generated conformance data (onnx {onnx.__version__}) in {outdir} "
          f"in {time.monotonic() - start:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f" ({sum(counts.values())} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
