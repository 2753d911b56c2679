#!/usr/bin/env python3
"""Regenerates the seed corpus of the .npy/.npz fuzzer (tests/fuzz/corpus/npy): valid files of each
dtype, version and order, .npz archives (stored and deflated) and near misses, each well under 4 KB.
Python's standard library only (no NumPy). Usage: tests/fuzz/make_npy_corpus.py"""
import os
import struct
import zipfile

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "npy")
os.makedirs(out, exist_ok=True)
for f in os.listdir(out):
    os.remove(os.path.join(out, f))


def npy(descr, shape, data, version=(1, 0), fortran=False, header=None):
    if header is None:
        dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    pre = 10 if version[0] == 1 else 12
    h = header.encode("latin1")
    h += b" " * ((64 - (pre + len(h) + 1) % 64) % 64) + b"\n"
    size = struct.pack("<H", len(h)) if version[0] == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes(version) + size + h + data


def put(name, b):
    with open(os.path.join(out, name), "wb") as f:
        f.write(b)


f32 = struct.pack("<6f", 0, 1, 2, 3, 4.5, -1)
put("valid_f4.npy", npy("<f4", (2, 3), f32))
put("valid_f4_fortran.npy", npy("<f4", (2, 3), f32, fortran=True))
put("valid_f8_v2.npy", npy("<f8", (3,), struct.pack("<3d", 1, 2, 3), version=(2, 0)))
put("valid_i4_v3.npy", npy("<i4", (2, 2), struct.pack("<4i", 1, -2, 3, -4), version=(3, 0)))
put("valid_i8.npy", npy("<i8", (2,), struct.pack("<2q", 5, -(1 << 31))))
put("valid_u1.npy", npy("|u1", (2, 2, 2), bytes(range(8))))
put("valid_i1.npy", npy("|i1", (3,), bytes([255, 0, 1])))
put("valid_i2.npy", npy("<i2", (2,), struct.pack("<2h", -7, 7)))
put("valid_u2.npy", npy("<u2", (2,), struct.pack("<2H", 65535, 1)))
put("valid_b1.npy", npy("|b1", (4,), bytes([0, 1, 1, 0])))
put("valid_scalar.npy", npy("<f8", (), struct.pack("<d", 3.25)))
put("valid_empty.npy", npy("<f4", (0, 5), b""))
put("valid_double_quotes.npy", npy("", (), struct.pack("<f", 1),
                                   header='{"descr": "<f4", "fortran_order": False, "shape": ()}'))
put("near_big_endian.npy", npy(">f4", (1,), struct.pack(">f", 1)))
put("near_structured.npy", npy("", (1,), b"\0" * 8,
                               header="{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }"))
put("valid_f2.npy", npy("<f2", (1,), b"\0<"))
put("near_object.npy", npy("|O", (1,), b"\0" * 8))
put("near_truncated.npy", npy("<f4", (2, 3), f32)[:-5])
put("near_trailing.npy", npy("<f4", (2, 3), f32) + b"\0")
put("near_huge.npy", npy("<f8", (1 << 20, 1 << 20), b""))
put("near_version.npy", npy("<f4", (1,), struct.pack("<f", 1), version=(4, 0)))
put("near_missing_key.npy", npy("", (1,), b"\0" * 4, header="{'descr': '<f4', 'shape': (1,), }"))
put("near_duplicate_key.npy", npy("", (1,), b"\0" * 4,
                                  header="{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"))
put("near_rank9.npy", npy("|u1", (1,) * 9, b"\1"))
put("near_header_length.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr'")
put("near_magic.npy", b"\x93NUMPZ\x01\x00\x10\x00")


def npz(name, members, method):
    path = os.path.join(out, name)
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for k, v in members.items():  # a fixed date: the same bytes every time
            z.writestr(zipfile.ZipInfo(k, date_time=(2020, 1, 1, 0, 0, 0)), v, compress_type=method)


arrays = {"x.npy": npy("<f4", (2, 3), f32), "y.npy": npy("|u1", (2,), bytes([1, 0]))}
npz("valid_stored.npz", arrays, zipfile.ZIP_STORED)
npz("valid_deflated.npz", arrays, zipfile.ZIP_DEFLATED)
npz("near_member.npz", {"x.npy": npy("<f4", (2, 3), f32)[:-3], "y": b"not an array"}, zipfile.ZIP_DEFLATED)
with open(os.path.join(out, "valid_stored.npz"), "rb") as f:
    whole = f.read()
put("near_cut.npz", whole[: len(whole) // 2])
bad = bytearray(whole)
bad[170] ^= 0xFF  # inside the first array's elements: a CRC mismatch
put("near_crc.npz", bytes(bad))
