#!/usr/bin/python3
"""Writes .npy and .npz files with NumPy into the folder given, for tests/test_nn_npy.c: files as
NumPy writes them, read back by cltape. Exits 77 when NumPy is missing (Debian: python3-numpy).
Every array holds the values 0, 1, 2, ... in C order (bool: i % 2 == 0), so that the reader can
check each element without a table.
Usage: npy_numpy.py <folder>"""
import os
import sys

try:
    import numpy as np
except ImportError:
    sys.exit(77)

out = sys.argv[1]


def path(name):
    return os.path.join(out, name)


def counting(shape, dtype):
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape).astype(dtype)


# one file per dtype the library reads, rank 2
for code in ["<f4", "<f8", "<f2", "<i4", "<i8", "<u1", "|u1", "|i1", "<i2", "<u2", "<u4", "<u8"]:
    np.save(path("dtype_%s.npy" % code.replace("<", "le_").replace("|", "na_")), counting((3, 4), code))
np.save(path("dtype_na_b1.npy"), np.arange(12).reshape(3, 4) % 2 == 0)
# shapes: a scalar, an empty array, rank 5
np.save(path("scalar.npy"), np.float32(0))
np.save(path("empty.npy"), np.zeros((0, 3), np.float32))
np.save(path("rank5.npy"), counting((2, 1, 3, 1, 2), np.float32))
# Fortran order: NumPy writes the transposed layout and fortran_order True
np.save(path("fortran.npy"), np.asfortranarray(counting((2, 3, 4), np.float32)))
# the header versions 2.0 and 3.0
for v in [(2, 0), (3, 0)]:
    with open(path("version_%d.npy" % v[0]), "wb") as f:
        np.lib.format.write_array(f, counting((2, 3), np.float32), version=v)
# refused: big-endian, structured, complex, strings
np.save(path("refused_big_endian.npy"), counting((3,), ">f4"))
np.save(path("refused_structured.npy"), np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
np.save(path("refused_c8.npy"), counting((3,), np.complex64))
np.save(path("refused_unicode.npy"), np.array(["ab", "c"]))
# a uint64 that int64 cannot hold
np.save(path("refused_u8_range.npy"), np.array([1, 2**63], dtype=np.uint64))
# archives: a dataset of 20 images 4x4 (uint8) with int64 labels 0..3, stored and deflated
x = counting((20, 4, 4), np.uint8)
y = np.arange(20, dtype=np.int64) % 4
np.savez(path("data.npz"), x_train=x, y_train=y, y_float=counting((20,), np.float32))
np.savez_compressed(path("data_compressed.npz"), x_train=x, y_train=y)
np.save(path("x.npy"), x)
np.save(path("y.npy"), y)
