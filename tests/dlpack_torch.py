#!/usr/bin/python3
"""DLPack between cltape and Debian's PyTorch (python3-torch), through ctypes on libcltape.so.

Checks what docs/dlpack.md says: host exports (ct_dlpack_export_host) become torch tensors, torch
tensors (CPU, contiguous or strided, float32/float64/int32) import into cltape, and a no-copy
OpenCL export (ct_dlpack_export) is refused by PyTorch. Usage: dlpack_torch.py <libcltape.so>"""
import ctypes as C
import sys

try:
    import torch
    import torch.utils.dlpack as tdl
except ImportError as e:  # never a silent skip: scripts/setup.sh installs python3-torch
    sys.exit(f"FAIL: PyTorch is needed (apt-get install python3-torch): {e}")

lib = C.CDLL(sys.argv[1])
P = C.c_void_p
lib.ct_errmsg.restype = C.c_char_p
lib.ct_status_name.restype = C.c_char_p
lib.ct_status_name.argtypes = [C.c_int]
for name, args in {
    "ct_context_create": [C.c_char_p, C.POINTER(P)],
    "ct_tensor_from_data": [P, C.c_int, C.c_int, C.POINTER(C.c_int64), P, C.POINTER(P)],
    "ct_tensor_read_f64": [P, C.POINTER(C.c_double), C.c_int64],
    "ct_square": [P, C.POINTER(P)],
    "ct_dlpack_export": [P, C.POINTER(P)],
    "ct_dlpack_export_host": [P, C.POINTER(P)],
    "ct_dlpack_import": [P, P, C.POINTER(P)],
}.items():
    getattr(lib, name).argtypes = args
    getattr(lib, name).restype = C.c_int
lib.ct_tensor_free.argtypes = [P]
lib.ct_context_free.argtypes = [P]

class DLTensor(C.Structure):
    _fields_ = [("data", P), ("device_type", C.c_int32), ("device_id", C.c_int32), ("ndim", C.c_int32),
                ("code", C.c_uint8), ("bits", C.c_uint8), ("lanes", C.c_uint16),
                ("shape", C.POINTER(C.c_int64)), ("strides", C.POINTER(C.c_int64)), ("byte_offset", C.c_uint64)]

class DLManagedTensor(C.Structure):
    pass
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", P),
                            ("deleter", C.CFUNCTYPE(None, C.POINTER(DLManagedTensor)))]

api = C.pythonapi
api.PyCapsule_New.restype = C.py_object
api.PyCapsule_New.argtypes = [P, C.c_char_p, P]
api.PyCapsule_GetPointer.restype = P
api.PyCapsule_GetPointer.argtypes = [C.py_object, C.c_char_p]
api.PyCapsule_SetName.restype = C.c_int
api.PyCapsule_SetName.argtypes = [C.py_object, C.c_char_p]

def ok(status, what):
    if status != 0:
        sys.exit(f"FAIL: {what}: {lib.ct_errmsg().decode()}")

ctx = P()
ok(lib.ct_context_create(None, C.byref(ctx)), "ct_context_create")

def ct_tensor(values, dtype=0, ctype=C.c_float):
    shape = (C.c_int64 * 2)(2, 3)
    data = (ctype * 6)(*values)
    t = P()
    ok(lib.ct_tensor_from_data(ctx, dtype, 2, shape, data, C.byref(t)), "ct_tensor_from_data")
    return t

def read(t, n):
    out = (C.c_double * n)()
    ok(lib.ct_tensor_read_f64(t, out, n), "ct_tensor_read_f64")
    return list(out)

checks = 0
# 1. cltape -> torch through host memory: a copy that torch owns and frees (its deleter)
vals = [1.5, -2.0, 3.25, 0.0, 7.0, -8.5]
t = ct_tensor(vals)
y = P()
ok(lib.ct_square(t, C.byref(y)), "ct_square")
m = P()
ok(lib.ct_dlpack_export_host(y, C.byref(m)), "ct_dlpack_export_host")
tt = tdl.from_dlpack(api.PyCapsule_New(m, b"dltensor", None))
assert tt.device.type == "cpu" and tt.dtype == torch.float32 and tuple(tt.shape) == (2, 3), tt
assert tt.flatten().tolist() == [v * v for v in vals], tt
checks += 1
del tt

# 2. torch -> cltape: contiguous float32, float64, int32, and a strided (transposed) view; the
#    capsule is renamed "used_dltensor" as the protocol asks, cltape calls the deleter
for src, dt in [(torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2.5, 0),
                (torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(2, 3), 1),
                (torch.tensor([[1, -2, 3], [2147483647, -5, 6]], dtype=torch.int32), 2),
                (torch.arange(6, dtype=torch.float32).reshape(3, 2).t(), 0)]:
    cap = tdl.to_dlpack(src)
    ptr = api.PyCapsule_GetPointer(cap, b"dltensor")
    api.PyCapsule_SetName(cap, b"used_dltensor")
    out = P()
    s = lib.ct_dlpack_import(ctx, ptr, C.byref(out))
    if dt == 1 and lib.ct_status_name(s) == b"CT_ERR_UNSUPPORTED":  # a device without float64
        print(f"float64 import: {lib.ct_errmsg().decode()}")
        continue
    ok(s, f"ct_dlpack_import of {src.dtype}")
    got = read(out, 6)
    want = [float(v) for v in src.flatten().tolist()]
    assert got == want, (src.dtype, got, want)
    lib.ct_tensor_free(out)
    checks += 1

# 3. cltape -> torch without a copy (kDLOpenCL): PyTorch refuses the device type
m = P()
ok(lib.ct_dlpack_export(t, C.byref(m)), "ct_dlpack_export")
mt = C.cast(m, C.POINTER(DLManagedTensor))
assert mt.contents.dl_tensor.device_type == 4, mt.contents.dl_tensor.device_type  # kDLOpenCL
try:
    tdl.from_dlpack(api.PyCapsule_New(m, b"dltensor", None))
    sys.exit("FAIL: PyTorch accepted an OpenCL tensor: update docs/dlpack.md")
except Exception as e:
    msg = str(e)
    print(f"PyTorch {torch.__version__} refuses a kDLOpenCL tensor: {type(e).__name__}: {msg}")
    assert "OPENCL" in msg.upper(), msg
mt.contents.deleter(mt)  # refused: the producer's deleter is still ours to call
checks += 1

lib.ct_tensor_free(y)
lib.ct_tensor_free(t)
lib.ct_context_free(ctx)
print(f"dlpack with PyTorch {torch.__version__}: {checks} checks passed")
