#!/usr/bin/env python3
"""Export MNIST-1D to examples/mnist1d/data/*.npy with the mnist1d package's
offline generator (make_dataset(get_dataset_args()); get_dataset() would try to
download).

x: float32 [N,1,40]; y: int64; the generator's own train/test split.

Usage: export-mnist1d.py [OUTDIR]   (default: examples/mnist1d/data)
"""
from __future__ import annotations

import os
import sys

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "examples", "mnist1d", "data")
    args = get_dataset_args()  # the package's defaults, including its fixed seed
    data = make_dataset(args)
    arrays = {
        "x_train": np.asarray(data["x"], dtype=np.float32)[:, None, :],
        "y_train": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float32)[:, None, :],
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }
    os.makedirs(outdir, exist_ok=True)
    for name, arr in arrays.items():
        np.save(os.path.join(outdir, f"{name}.npy"), np.ascontiguousarray(arr))
    print(f"mnist1d: train {arrays['x_train'].shape} test {arrays['x_test'].shape} "
          f"(seed {args.seed}) -> {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
