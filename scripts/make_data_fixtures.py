"""Writes the small .npy files (made by NumPy itself) that BitSwitchDataTests reads, to check interoperability.

Run: /work/main/.venv/bin/python scripts/make_data_fixtures.py
"""
import os
import numpy as np
from numpy.lib import format as npf

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "BitSwitchDataTests", "Fixtures")
os.makedirs(out, exist_ok=True)

np.save(os.path.join(out, "f32_2x3.npy"), np.arange(6, dtype="<f4").reshape(2, 3) / 4 - 0.5)
np.save(os.path.join(out, "i64_4.npy"), np.array([-3, 0, 7, 2**40], dtype="<i8"))
np.save(os.path.join(out, "u8_2x2x2.npy"), np.arange(8, dtype=np.uint8).reshape(2, 2, 2) * 30)
np.save(os.path.join(out, "bool_3.npy"), np.array([True, False, True]))
np.save(os.path.join(out, "f64_scalar.npy"), np.array(2.5, dtype="<f8"))
with open(os.path.join(out, "i32_v2.npy"), "wb") as f:
    a = np.array([[1, -2], [3, -4]], dtype="<i4")
    npf.write_array(f, a, version=(2, 0))
np.save(os.path.join(out, "fortran.npy"), np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
np.save(os.path.join(out, "bigendian.npy"), np.arange(3, dtype=">f4"))
np.save(os.path.join(out, "complex.npy"), np.arange(3, dtype=np.complex64))

# gzip-compressed IDX files as MNIST and Fashion-MNIST ship them (read through zlib). The second file holds two
# concatenated gzip members (as `cat a.gz b.gz` makes), which gunzip and zlib-based readers accept.
import gzip
import struct
idx = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 2, 3, 4) + bytes(range(0, 240, 10))
with open(os.path.join(out, "u8_2x3x4.idx.gz"), "wb") as f:
    f.write(gzip.compress(idx, mtime=0))
with open(os.path.join(out, "u8_2x3x4_two_members.idx.gz"), "wb") as f:
    f.write(gzip.compress(idx[:10], mtime=0) + gzip.compress(idx[10:], mtime=0))
