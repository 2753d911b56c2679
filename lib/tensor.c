/* tensor.c — tensor handles: lifetime, creation, read back, variables. Printing is in
 * tensor_format.c, random tensors in random.c. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t next_id = 1;
uint64_t ct__next_id(void) { return atomic_fetch_add(&next_id, 1); }

bool ct__is_float(ct_dtype dt) { return dt == CT_FLOAT32 || dt == CT_FLOAT64; }
bool ct__is_half(ct_dtype dt) { return dt == CT_FLOAT16 || dt == CT_BFLOAT16; }
bool ct__is_floating(ct_dtype dt) { return ct__is_float(dt) || ct__is_half(dt); }

ct_status ct__check(const ct_tensor *t, const char *what) {
  CT_TRY(CT_CHECK_HANDLE(t, CT_HANDLE_TENSOR, what));
  if (!ctb_context_alive(t->ctx))
    return ct__error(NULL, CT_ERR_RELEASED, "%s: the tensor's context was already freed", what);
  return CT_OK;
}

ct_status ct__check_dtype(const ct_context *ctx, ct_dtype dt) {
  if ((unsigned)dt > CT_BOOL) return ct__error(ctx, CT_ERR_DTYPE, "invalid dtype %d", (int)dt);
  if (dt == CT_FLOAT64 && ctx && !ctb_has_fp64(ctx))
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "float64 is not supported by device \"%s\"", ctb_device_name(ctx));
  return CT_OK;
}

int64_t ct__shape_size(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  return n;
}

ct_status ct__check_shape(const ct_context *ctx, int rank, const int64_t *shape, int64_t *size) {
  if (rank < 0 || rank > CT_MAX_RANK) return ct__error(ctx, CT_ERR_SHAPE, "rank %d is outside 0..%d", rank, CT_MAX_RANK);
  if (rank > 0 && !shape) return ct__error(ctx, CT_ERR_NULL, "shape is NULL for rank %d", rank);
  /* the product of the non-zero extents is bounded even when a zero extent makes the count 0:
   * strides and partial products of an empty tensor's extents must not overflow either */
  int64_t nz = 8, n = 1; /* nz: bytes of the non-zero extents at 8 bytes an element */
  for (int i = 0; i < rank; ++i) {
    if (shape[i] < 0) return ct__error(ctx, CT_ERR_SHAPE, "negative extent %lld on axis %d", (long long)shape[i], i);
    if (shape[i] > 0 && !ct__mul_ok(nz, shape[i], &nz))
      return ct__error(ctx, CT_ERR_SHAPE, "shape's element count overflows (axis %d, extent %lld)", i,
                       (long long)shape[i]);
    if (shape[i] == 0) n = 0;
  }
  if (n) n = nz / 8;
  /* no element limit of its own: the device's largest allocation bounds a tensor (ctb_alloc), and
   * every launch indexes in long where its sizes pass 2^31 - 1 (host/ct_host.h, ctb_wide) */
  *size = n;
  return CT_OK;
}

void ct__shape_str(int rank, const int64_t *shape, char *buf, size_t cap) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, cap - n, "(");
  for (int i = 0; i < rank && n < cap; ++i)
    n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (n < cap) n += (size_t)snprintf(buf + n, cap - n, rank == 1 ? ",)" : ")");
}

ct_status ct__tensor_struct(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, ct_buffer *b,
                            ct_tensor **out) {
  ct_tensor *t = ct__handle_new(CT_HANDLE_TENSOR, sizeof *t);
  if (!t) {
    ctb_release(b);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a tensor");
  }
  t->buf = b;
  t->refs = 1;
  t->ctx = ctx;
  ctb_context_retain(ctx);
  t->dtype = dt;
  t->rank = rank;
  for (int i = 0; i < rank; ++i) t->shape[i] = shape[i];
  t->size = ct__shape_size(rank, shape);
  t->id = ct__next_id();
  *out = t;
  return CT_OK;
}

ct_status ct__tensor_new(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, ct_tensor **out) {
  *out = NULL;
  int64_t n;
  CT_TRY(ct__check_dtype(ctx, dt));
  CT_TRY(ct__check_shape(ctx, rank, shape, &n));
  ct_buffer *b;
  CT_TRY(ctb_alloc(ctx, (size_t)n * ct_dtype_size(dt), &b));
  return ct__tensor_struct(ctx, dt, rank, shape, b, out);
}

ct_status ct__tensor_alias(const ct_tensor *src, int rank, const int64_t *shape, bool keep_id, ct_tensor **out) {
  ct_tensor *t;
  CT_TRY(ct__tensor_struct(src->ctx, src->dtype, rank, shape, ctb_retain(src->buf), &t));
  if (keep_id) t->id = src->id;
  *out = t;
  return CT_OK;
}

ct_tensor *ct_tensor_retain(ct_tensor *t) {
  if (t && t->magic == CT_TENSOR_MAGIC) t->refs++;
  return t;
}

void ct_tensor_free(ct_tensor *t) {
  if (!t || t->magic != CT_TENSOR_MAGIC) return;
  if (--t->refs > 0) return;
  ctb_release(t->buf);
  free(t->name);
  t->name = NULL;
  ct_context *ctx = t->ctx;
  ct__handle_free(t);
  ctb_context_release(ctx);
}

void ct_tensor_free_n(ct_tensor **ts, int n) {
  if (!ts) return;
  for (int i = 0; i < n; ++i) {
    ct_tensor_free(ts[i]);
    ts[i] = NULL;
  }
}

static bool live(const ct_tensor *t) { return t && t->magic == CT_TENSOR_MAGIC; }
ct_context *ct_tensor_context(const ct_tensor *t) { return live(t) ? t->ctx : NULL; }
ct_dtype ct_tensor_dtype(const ct_tensor *t) { return live(t) ? t->dtype : CT_FLOAT32; }
int ct_tensor_rank(const ct_tensor *t) { return live(t) ? t->rank : -1; }
const int64_t *ct_tensor_shape(const ct_tensor *t) { return live(t) ? t->shape : NULL; }
int64_t ct_tensor_size(const ct_tensor *t) { return live(t) ? t->size : -1; }
uint64_t ct_tensor_id(const ct_tensor *t) { return live(t) ? t->id : 0; }

/* ---- creation ---------------------------------------------------------------------------- */
ct_status ct_tensor_from_data(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, const void *data,
                              ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_tensor_from_data: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_tensor_from_data"));
  ct_tensor *t;
  CT_TRY(ct__tensor_new(ctx, dtype, rank, shape, &t));
  if (t->size > 0 && !data) {
    ct_tensor_free(t);
    return ct__error(ctx, CT_ERR_NULL, "ct_tensor_from_data: data is NULL");
  }
  ct_status s = ctb_write(ctx, t->buf, 0, data, (size_t)t->size * ct_dtype_size(dtype));
  if (s != CT_OK) {
    ct_tensor_free(t);
    return s;
  }
  *out = t;
  return CT_OK;
}

ct_status ct_fill(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double value, ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_fill: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_fill"));
  /* the conversion truncates toward zero; a value without an int32 (NaN, inf, out of range) has none */
  if (dtype == CT_INT32 && !(value > -2147483649.0 && value < 2147483648.0))
    return ct__error(ctx, CT_ERR_INVALID, "ct_fill: %g is not representable as int32", value);
  if (dtype == CT_INT64 && !(value >= -9223372036854775808.0 && value < 9223372036854775808.0))
    return ct__error(ctx, CT_ERR_INVALID, "ct_fill: %g is not representable as int64", value);
  ct_tensor *t;
  if (ct__is_half(dtype) || dtype == CT_BOOL) {
    /* the value rounded once on the host, filled exactly in float32 (int32 for bool), then cast */
    uint16_t h = dtype == CT_FLOAT16 ? ct__f16_from_double(value) : ct__bf16_from_double(value);
    double w = dtype == CT_BOOL ? (value != 0) : dtype == CT_FLOAT16 ? ct__f16_to_double(h) : ct__bf16_to_double(h);
    ct_tensor *wide = NULL;
    CT_TRY(ct__check_dtype(ctx, dtype));
    CT_TRY(ct_fill(ctx, dtype == CT_BOOL ? CT_INT32 : CT_FLOAT32, rank, shape, w, &wide));
    ct_status s = ct__tensor_new(ctx, dtype, rank, shape, &t);
    if (s == CT_OK && t->size) s = ctb_cast(ctx, wide->dtype, dtype, t->size, wide->buf, t->buf);
    ct_tensor_free(wide);
    if (s != CT_OK) {
      ct_tensor_free(t);
      return s;
    }
    *out = t;
    return CT_OK;
  }
  if (ct__fusion_on() && dtype != CT_INT64) {
    int64_t n;
    CT_TRY(ct__check_dtype(ctx, dtype));
    CT_TRY(ct__check_shape(ctx, rank, shape, &n));
    if (n) return ct__lazy_fill(ctx, dtype, rank, shape, value, out);
  }
  CT_TRY(ct__tensor_new(ctx, dtype, rank, shape, &t));
  ct_status s = t->size ? ctb_fill(ctx, dtype, t->size, value, t->buf) : CT_OK;
  if (s != CT_OK) {
    ct_tensor_free(t);
    return s;
  }
  *out = t;
  return CT_OK;
}

ct_status ct_scalar(ct_context *ctx, ct_dtype dtype, double value, ct_tensor **out) {
  return ct_fill(ctx, dtype, 0, NULL, value, out);
}
ct_status ct_zeros(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, ct_tensor **out) {
  return ct_fill(ctx, dtype, rank, shape, 0.0, out);
}
ct_status ct_ones(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, ct_tensor **out) {
  return ct_fill(ctx, dtype, rank, shape, 1.0, out);
}
ct_status ct_zeros_like(const ct_tensor *t, ct_tensor **out) {
  if (out) *out = NULL;
  CT_TRY(ct__check(t, "ct_zeros_like"));
  return ct_fill(t->ctx, t->dtype, t->rank, t->shape, 0.0, out);
}
ct_status ct_ones_like(const ct_tensor *t, ct_tensor **out) {
  if (out) *out = NULL;
  CT_TRY(ct__check(t, "ct_ones_like"));
  return ct_fill(t->ctx, t->dtype, t->rank, t->shape, 1.0, out);
}

/* Does v truncate to an int32? (false for NaN) */
static bool fits_int32(double v) { return v > -2147483649.0 && v < 2147483648.0; }

/* For an int32 iota: do its first and last values, as the device computes them (in float where it
 * has no float64), fit in int32? The values in between lie between those two. */
static ct_status check_int32_span(ct_context *ctx, const char *fn, double start, double delta, int64_t n) {
  if (n == 0) return CT_OK;
  double last = start + delta * (double)(n - 1);
  bool ok = fits_int32(start) && fits_int32(last);
  if (ok && !ctb_has_fp64(ctx)) {
    float fs = (float)start, fd = (float)delta;
    ok = fits_int32((double)fs) && fits_int32((double)(fs + fd * (float)(n - 1)));
  }
  if (!ok)
    return ct__error(ctx, CT_ERR_INVALID, "%s: the values from %.17g to %.17g do not all fit in int32", fn, start, last);
  return CT_OK;
}

static ct_status iota(ct_context *ctx, ct_dtype dtype, int64_t n, double start, double delta, ct_tensor **out) {
  ct_tensor *t;
  int64_t shape[1] = {n};
  if (dtype == CT_BOOL) return ct__error(ctx, CT_ERR_DTYPE, "a range of bool values has no meaning");
  if (ct__is_half(dtype)) { /* computed in float32, then rounded */
    ct_tensor *w = NULL;
    CT_TRY(ct__check_dtype(ctx, dtype));
    CT_TRY(iota(ctx, CT_FLOAT32, n, start, delta, &w));
    ct_status s = ct__tensor_new(ctx, dtype, 1, shape, &t);
    if (s == CT_OK && n) s = ctb_cast(ctx, CT_FLOAT32, dtype, n, w->buf, t->buf);
    ct_tensor_free(w);
    if (s != CT_OK) {
      ct_tensor_free(t);
      return s;
    }
    *out = t;
    return CT_OK;
  }
  CT_TRY(ct__tensor_new(ctx, dtype, 1, shape, &t));
  ct_status s = n ? ctb_iota(ctx, dtype, n, start, delta, t->buf) : CT_OK;
  if (s != CT_OK) {
    ct_tensor_free(t);
    return s;
  }
  *out = t;
  return CT_OK;
}

ct_status ct_linspace(ct_context *ctx, ct_dtype dtype, double start, double stop, int64_t num, ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_linspace: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_linspace"));
  if (num < 1) return ct__error(ctx, CT_ERR_INVALID, "ct_linspace: num must be >= 1 (got %lld)", (long long)num);
  if (!isfinite(start) || !isfinite(stop)) return ct__error(ctx, CT_ERR_INVALID, "ct_linspace: bounds must be finite");
  double delta = num > 1 ? (stop - start) / (double)(num - 1) : 0.0;
  if (!isfinite(delta)) return ct__error(ctx, CT_ERR_INVALID, "ct_linspace: the step from %g to %g overflows", start, stop);
  /* int32: both ends must fit (the last value is stop itself, written below) */
  if (dtype == CT_INT32 && (!fits_int32(start) || !fits_int32(stop)))
    return ct__error(ctx, CT_ERR_INVALID, "ct_linspace: the values from %.17g to %.17g do not all fit in int32", start,
                     stop);
  if (dtype == CT_INT32) CT_TRY(check_int32_span(ctx, "ct_linspace", start, delta, num));
  CT_TRY(iota(ctx, dtype, num, start, delta, out));
  if (num == 1) return CT_OK;
  /* as NumPy: the last value is stop itself, not start + (num - 1) * step rounded */
  ct_tensor *last = NULL;
  ct_status s = ct_scalar(ctx, dtype, stop, &last);
  size_t es = ct_dtype_size(dtype);
  if (s == CT_OK) s = ctb_copy(ctx, last->buf, 0, (*out)->buf, (size_t)(num - 1) * es, es);
  ct_tensor_free(last);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
  }
  return s;
}

ct_status ct_range(ct_context *ctx, ct_dtype dtype, double start, double limit, double delta, ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_range: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_range"));
  if (delta == 0 || !isfinite(delta) || !isfinite(start) || !isfinite(limit))
    return ct__error(ctx, CT_ERR_INVALID, "ct_range: delta must be finite and non-zero");
  if (!isfinite(limit - start))
    return ct__error(ctx, CT_ERR_INVALID, "ct_range: the span from %g to %g overflows", start, limit);
  double n = ceil((limit - start) / delta);
  if (n < 0) n = 0;
  if (n > (double)(INT64_C(1) << 60)) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_range: %g elements is too many", n);
  if (dtype == CT_INT32) CT_TRY(check_int32_span(ctx, "ct_range", start, delta, (int64_t)n));
  return iota(ctx, dtype, (int64_t)n, start, delta, out);
}

/* ---- read back --------------------------------------------------------------------------- */
ct_status ct_tensor_read(const ct_tensor *t, void *dst, size_t bytes) {
  CT_TRY(ct__check(t, "ct_tensor_read"));
  size_t need = (size_t)t->size * ct_dtype_size(t->dtype);
  if (!dst && need) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_read: dst is NULL");
  if (bytes != need)
    return ct__error(t->ctx, CT_ERR_INVALID, "ct_tensor_read: %zu bytes given, the tensor holds %zu", bytes, need);
  double host[64];
  if (t->size <= 64 && ct__lazy_host_read(t, host)) { /* a few elements from constants: no device round trip */
    for (int64_t i = 0; i < t->size; ++i) {
      ct__elem_set(t->dtype, dst, (size_t)i, host[i]);
    }
    return CT_OK;
  }
  return ctb_read(t->ctx, t->buf, 0, dst, need);
}

ct_status ct_tensor_read_f64(const ct_tensor *t, double *dst, int64_t n) {
  CT_TRY(ct__check(t, "ct_tensor_read_f64"));
  if (!dst && t->size) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_read_f64: dst is NULL");
  if (n < t->size)
    return ct__error(t->ctx, CT_ERR_INVALID, "ct_tensor_read_f64: room for %lld elements, need %lld", (long long)n,
                     (long long)t->size);
  if (ct__lazy_host_read(t, dst)) return CT_OK; /* a few elements from constants: no device round trip */
  size_t es = ct_dtype_size(t->dtype);
  void *tmp = malloc(es * (size_t)(t->size ? t->size : 1));
  if (!tmp) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensor_read_f64: staging");
  ct_status s = ctb_read(t->ctx, t->buf, 0, tmp, es * (size_t)t->size);
  if (s == CT_OK)
    for (int64_t i = 0; i < t->size; ++i)
      dst[i] = ct__elem_get(t->dtype, tmp, (size_t)i);
  free(tmp);
  return s;
}

ct_status ct_tensor_item(const ct_tensor *t, double *value) {
  CT_TRY(ct__check(t, "ct_tensor_item"));
  if (!value) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_item: value is NULL");
  if (t->size != 1)
    return ct__error(t->ctx, CT_ERR_SHAPE, "ct_tensor_item: tensor has %lld elements, not 1", (long long)t->size);
  return ct_tensor_read_f64(t, value, 1);
}

/* ---- variables ----------------------------------------------------------------------------- */
ct_status ct__variable_init(ct_tensor *v, const char *name, bool trainable) {
  const char *base = name && *name ? name : "Variable";
  size_t l = strlen(base);
  char *full = malloc(l + 3);
  if (!full) return ct__error(v->ctx, CT_ERR_OUT_OF_MEMORY, "variable name");
  /* "x0" -> "x0:0"; a name that already ends in ":<digits>" is kept */
  const char *colon = strrchr(base, ':');
  bool has_suffix = colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1);
  snprintf(full, l + 3, has_suffix ? "%s" : "%s:0", base);
  free(v->name);
  v->name = full;
  v->is_var = true;
  v->trainable = trainable;
  return CT_OK;
}

ct_status ct_variable_create(const ct_tensor *initial, const char *name, bool trainable, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_variable_create: out is NULL");
  *out = NULL;
  CT_TRY(ct__check(initial, "ct_variable_create"));
  ct_tensor *v;
  CT_TRY(ct__tensor_new(initial->ctx, initial->dtype, initial->rank, initial->shape, &v));
  ct_status s = ctb_copy(v->ctx, initial->buf, 0, v->buf, 0, (size_t)v->size * ct_dtype_size(v->dtype));
  if (s == CT_OK) s = ct__variable_init(v, name, trainable);
  if (s != CT_OK) {
    ct_tensor_free(v);
    return s;
  }
  *out = v;
  return CT_OK;
}

ct_status ct_variable_scalar(ct_context *ctx, double value, const char *name, bool trainable, ct_tensor **out) {
  if (out) *out = NULL;
  ct_tensor *init;
  CT_TRY(ct_scalar(ctx, CT_FLOAT32, value, &init));
  ct_status s = ct_variable_create(init, name, trainable, out);
  ct_tensor_free(init);
  return s;
}

bool ct_tensor_is_variable(const ct_tensor *t) { return live(t) && t->is_var; }
const char *ct_variable_name(const ct_tensor *t) { return live(t) && t->is_var ? t->name : NULL; }
bool ct_variable_trainable(const ct_tensor *t) { return live(t) && t->is_var && t->trainable; }

static ct_status check_var(const ct_tensor *v, const char *what) {
  CT_TRY(ct__check(v, what));
  if (!v->is_var) return ct__error(v->ctx, CT_ERR_INVALID, "%s: the tensor is not a variable", what);
  return CT_OK;
}

ct_status ct_variable_set_trainable(ct_tensor *var, bool trainable) {
  CT_TRY(check_var(var, "ct_variable_set_trainable"));
  var->trainable = trainable;
  return CT_OK;
}

ct_status ct_variable_value(const ct_tensor *var, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_variable_value: out is NULL");
  *out = NULL;
  CT_TRY(ct__check(var, "ct_variable_value"));
  if (!var->is_var) {
    *out = ct_tensor_retain((ct_tensor *)var);
    return CT_OK;
  }
  return ct_identity(var, out); /* a read, recorded as TensorFlow records ReadVariableOp */
}

ct_status ct__variable_unshare(ct_tensor *var, ct_buffer *spare) {
  if (ctb_refcount(var->buf) < 2) {
    ctb_release(spare);
    return CT_OK;
  }
  if (!spare) CT_TRY(ctb_alloc(var->ctx, ctb_bytes(var->buf), &spare));
  /* the sharers' buffer gets the copy; the variable a buffer of its own over the same memory */
  ct_buffer *shared = var->buf;
  CT_TRY(ctb_split_off(var->ctx, shared, spare));
  var->buf = spare;
  ctb_release(shared);
  return CT_OK;
}

ct_status ct__variable_store(ct_tensor *var, ct_buffer *value) {
  if (value == var->buf) return CT_OK;
  if (!var->in_place) {
    ct_buffer *old = var->buf;
    var->buf = ctb_retain(value);
    ctb_release(old);
    return CT_OK;
  }
  CT_TRY(ct__variable_unshare(var, NULL));
  return ctb_copy(var->ctx, value, 0, var->buf, 0, ctb_bytes(var->buf));
}

static ct_status variable_update(ct_tensor *var, const ct_tensor *value, int mode, const char *what) {
  CT_TRY(check_var(var, what));
  CT_TRY(ct__check(value, what));
  if (value->ctx != var->ctx) return ct__error(var->ctx, CT_ERR_CONTEXT, "%s: value belongs to another context", what);
  if (value->dtype != var->dtype)
    return ct__error(var->ctx, CT_ERR_DTYPE, "%s: variable %s is %s, value is %s", what, var->name,
                     ct_dtype_name(var->dtype), ct_dtype_name(value->dtype));
  /* the new value, computed without recording: assignments are state, not ops */
  ct__tapes_suspend(+1);
  ct_tensor *cur = NULL, *res = NULL;
  ct_status s = ct__tensor_alias(var, var->rank, var->shape, false, &cur);
  if (s == CT_OK) {
    if (mode == 0) s = ct_broadcast_to(value, var->rank, var->shape, &res);
    else if (mode == 1) s = ct_add(cur, value, &res);
    else s = ct_sub(cur, value, &res);
  }
  ct__tapes_suspend(-1);
  ct_tensor_free(cur); /* before the update: the alias shares the variable's storage */
  cur = NULL;
  if (s == CT_OK && (res->rank != var->rank || memcmp(res->shape, var->shape, sizeof(int64_t) * (size_t)var->rank)))
    s = ct__error(var->ctx, CT_ERR_SHAPE, "%s: the value's shape does not match variable %s", what, var->name);
  if (s == CT_OK) {
    if (var->in_place) {
      s = ct__variable_store(var, res->buf); /* a copy into the caller's buffer */
    } else if (res->buf == value->buf) {
      /* broadcast_to of an equal shape returns the value itself: copy so the variable owns it */
      ct_buffer *nb;
      s = ctb_alloc(var->ctx, ctb_bytes(value->buf), &nb);
      if (s == CT_OK) s = ctb_copy(var->ctx, value->buf, 0, nb, 0, ctb_bytes(value->buf));
      if (s == CT_OK) {
        ctb_release(var->buf);
        var->buf = nb;
      } else if (nb) ctb_release(nb);
    } else {
      s = ct__variable_store(var, res->buf);
    }
  }
  ct_tensor_free(res);
  return s;
}

ct_status ct_variable_assign(ct_tensor *var, const ct_tensor *value) {
  return variable_update(var, value, 0, "ct_variable_assign");
}
ct_status ct_variable_assign_add(ct_tensor *var, const ct_tensor *value) {
  return variable_update(var, value, 1, "ct_variable_assign_add");
}
ct_status ct_variable_assign_sub(ct_tensor *var, const ct_tensor *value) {
  return variable_update(var, value, 2, "ct_variable_assign_sub");
}
