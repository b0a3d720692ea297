#!/usr/bin/env python3
"""Export scikit-learn's bundled 8x8 digits to examples/digits/data/*.npy.

x: float32 [N,1,8,8] in [0,1] (pixel counts 0..16 divided by 16); y: int64.
A fixed stratified 80/20 split (seed 0). Works offline: the data ships with
scikit-learn.

Usage: export-digits.py [OUTDIR]   (default: examples/digits/data)
"""
from __future__ import annotations

import os
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "examples", "digits", "data")
    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    os.makedirs(outdir, exist_ok=True)
    for name, arr in (("x_train", x_train), ("y_train", y_train),
                      ("x_test", x_test), ("y_test", y_test)):
        np.save(os.path.join(outdir, f"{name}.npy"), np.ascontiguousarray(arr))
    print(f"digits: train {x_train.shape} test {x_test.shape} -> {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
