/* npy_io.c — tensors to and from NumPy's .npy files and .npz archives (lib/formats/npy.h), and the
 * one conversion of a host array of any .npy dtype into a library dtype, which the datasets
 * (dataset.c) use too. */
#include "nn_internal.h"
#include "npy.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

ct_status ct__npy_convert(ct_context *ctx, ct_status bad, const ct_npy *x, size_t count, ct_dtype dtype, double scale,
                          double offset, const char *what, void **out) {
  *out = NULL;
  size_t es = ct_dtype_size(dtype);
  void *buf = malloc(es * (count ? count : 1));
  if (!buf) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "%s: %zu elements", what, count);
  bool same = scale == 1.0 && offset == 0.0 &&
              ((dtype == CT_FLOAT32 && x->type == CT_NPY_F32) || (dtype == CT_FLOAT64 && x->type == CT_NPY_F64) ||
               (dtype == CT_INT32 && x->type == CT_NPY_I32) || (dtype == CT_FLOAT16 && x->type == CT_NPY_F16));
  if (same) {
    if (count) memcpy(buf, x->data, es * count);
    *out = buf;
    return CT_OK;
  }
  if (dtype == CT_INT64 && scale == 1.0 && offset == 0.0 && (x->type == CT_NPY_I64 || x->type == CT_NPY_U64)) {
    /* exactly, without going through double (which holds 53 bits) */
    for (size_t i = 0; i < count; ++i) {
      uint64_t u;
      memcpy(&u, (const unsigned char *)x->data + 8 * i, 8);
      if (x->type == CT_NPY_U64 && u > (uint64_t)INT64_MAX) {
        free(buf);
        return ct__error(ctx, bad, "%s: element %zu (dtype '%s') is %llu, which int64 cannot hold", what, i,
                         ct_npy_type_name(x->type), (unsigned long long)u);
      }
      memcpy((unsigned char *)buf + 8 * i, &u, 8);
    }
    *out = buf;
    return CT_OK;
  }
  for (size_t i = 0; i < count; ++i) {
    double v = ct_npy_value(x->type, x->data, i) * scale + offset;
    if (dtype == CT_FLOAT32) ((float *)buf)[i] = (float)v;
    else if (dtype == CT_FLOAT64) ((double *)buf)[i] = v;
    else if (dtype != CT_INT32) ct__elem_set(dtype, buf, i, v); /* float16, bfloat16 (rounded once), bool, int64 */
    else if (v >= -2147483648.0 && v <= 2147483647.0 && v == floor(v)) ((int32_t *)buf)[i] = (int32_t)v;
    else {
      free(buf);
      return ct__error(ctx, bad, "%s: element %zu (dtype '%s') is %.17g, which int32 cannot hold exactly", what, i,
                       ct_npy_type_name(x->type), v);
    }
  }
  *out = buf;
  return CT_OK;
}

/* The library dtype a .npy dtype is read as: floats, int64 and bool as themselves, uint64 as int64
 * (checked to fit), the other integers as int32 (uint32 checked to fit). */
static ct_dtype natural_dtype(ct_npy_type t) {
  switch (t) {
    case CT_NPY_F32: return CT_FLOAT32;
    case CT_NPY_F64: return CT_FLOAT64;
    case CT_NPY_F16: return CT_FLOAT16;
    case CT_NPY_I64:
    case CT_NPY_U64: return CT_INT64;
    case CT_NPY_BOOL: return CT_BOOL;
    default: return CT_INT32;
  }
}

/* x (owned: freed here) as a tensor on ctx. */
static ct_status tensor_of(ct_context *ctx, ct_npy *x, const char *what, ct_tensor **out) {
  ct_dtype dt = natural_dtype(x->type);
  void *host = NULL;
  ct_status s = ct__npy_convert(ctx, CT_ERR_DTYPE, x, x->count, dt, 1.0, 0.0, what, &host);
  if (s == CT_OK) s = ct_tensor_from_data(ctx, dt, x->rank, x->shape, host, out);
  free(host);
  ct_npy_free(x);
  return s;
}

ct_status ct_tensor_load_npy(ct_context *ctx, const char *path, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_tensor_load_npy: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_tensor_load_npy"));
  if (!path) return ct__error(ctx, CT_ERR_NULL, "ct_tensor_load_npy: path is NULL");
  ct_npy x;
  ct_status s = ct_npy_read(path, &x);
  if (s != CT_OK) return ct__error(ctx, s, "ct_tensor_load_npy: %s", ct__errmsg_copy());
  return tensor_of(ctx, &x, path, out);
}

ct_status ct__npz_read(ct_context *ctx, const char *path, int n, const char *const *names, ct_npy *arrays) {
  for (int i = 0; i < n; ++i) memset(&arrays[i], 0, sizeof arrays[i]);
  ct_npz *z = NULL;
  ct_status s = ct_npz_open(path, &z); /* its message names the file */
  if (s != CT_OK) return ct__error(ctx, s, "%s", ct__errmsg_copy());
  for (int i = 0; i < n && s == CT_OK; ++i) s = ct_npz_read(z, names[i], &arrays[i]);
  if (s != CT_OK) {
    s = ct__error(ctx, s, "%s: %s", path, ct__errmsg_copy());
    for (int i = 0; i < n; ++i) ct_npy_free(&arrays[i]);
  }
  ct_npz_close(z);
  return s;
}

ct_status ct_tensor_load_npz(ct_context *ctx, const char *path, const char *name, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_tensor_load_npz: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_tensor_load_npz"));
  if (!path || !name) return ct__error(ctx, CT_ERR_NULL, "ct_tensor_load_npz: path and name are required");
  ct_npy x;
  ct_status s = ct__npz_read(ctx, path, 1, &name, &x);
  if (s != CT_OK) return ct__error(ctx, s, "ct_tensor_load_npz: %s", ct__errmsg_copy());
  return tensor_of(ctx, &x, name, out);
}

ct_status ct_tensor_save_npy(const ct_tensor *t, const char *path) {
  CT_TRY(ct__check(t, "ct_tensor_save_npy"));
  if (!path) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_save_npy: path is NULL");
  size_t nbytes = (size_t)t->size * ct_dtype_size(t->dtype);
  void *host = malloc(nbytes ? nbytes : 1);
  if (!host) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensor_save_npy: staging %zu bytes", nbytes);
  ct_status s = ct_tensor_read(t, host, nbytes);
  ct_npy_type type = t->dtype == CT_FLOAT32 ? CT_NPY_F32 : t->dtype == CT_FLOAT64 ? CT_NPY_F64
                     : t->dtype == CT_FLOAT16 ? CT_NPY_F16 : t->dtype == CT_INT64 ? CT_NPY_I64
                     : t->dtype == CT_BOOL ? CT_NPY_BOOL : CT_NPY_I32;
  if (s == CT_OK && t->dtype == CT_BFLOAT16)
    s = ct__error(t->ctx, CT_ERR_DTYPE, "ct_tensor_save_npy: NumPy has no bfloat16 (cast to float32, which holds it "
                  "exactly; safetensors files hold it as it is)");
  if (s == CT_OK) {
    s = ct_npy_write(path, type, t->rank, t->shape, host);
    if (s != CT_OK) s = ct__error(t->ctx, s, "ct_tensor_save_npy: %s", ct__errmsg_copy());
  }
  free(host);
  return s;
}
