/* tensor.c — tensor handles: lifetime, creation, read back, printing, variables. */
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

ct_status ct__check(const ct_tensor *t, const char *what) {
  CT_TRY(CT_CHECK_HANDLE(t, CT_HANDLE_TENSOR, what));
  if (!ctb_context_alive(t->ctx))
    return ct__error(NULL, CT_ERR_RELEASED, "%s: the tensor's context was already freed", what);
  return CT_OK;
}

ct_status ct__check_dtype(const ct_context *ctx, ct_dtype dt) {
  if ((unsigned)dt > CT_INT32) return ct__error(ctx, CT_ERR_DTYPE, "invalid dtype %d", (int)dt);
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
  if (n > INT32_MAX)
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "tensors of more than 2^31-1 elements are not supported (%lld)", (long long)n);
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

ct_status ct__tensor_struct(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, ct_tensor **out) {
  ct_tensor *t = ct__handle_new(CT_HANDLE_TENSOR, sizeof *t);
  if (!t) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a tensor");
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
  ct_tensor *t;
  ct_status s = ct__tensor_struct(ctx, dt, rank, shape, &t);
  if (s != CT_OK) {
    ctb_release(b);
    return s;
  }
  t->buf = b;
  *out = t;
  return CT_OK;
}

ct_status ct__tensor_alias(const ct_tensor *src, int rank, const int64_t *shape, bool keep_id, ct_tensor **out) {
  ct_tensor *t;
  CT_TRY(ct__tensor_struct(src->ctx, src->dtype, rank, shape, &t));
  t->buf = ctb_retain(src->buf);
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
  ct_tensor *t;
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
  if (n > INT32_MAX) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_range: %g elements is too many", n);
  if (dtype == CT_INT32) CT_TRY(check_int32_span(ctx, "ct_range", start, delta, (int64_t)n));
  return iota(ctx, dtype, (int64_t)n, start, delta, out);
}

static ct_status random_tensor(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double a, double b,
                               uint64_t seed, bool normal, ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "random: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "random"));
  if (!ct__is_float(dtype)) return ct__error(ctx, CT_ERR_DTYPE, "random tensors must be float32 or float64");
  /* the device tensor first: a shape the device cannot hold fails before any host staging */
  ct_tensor *t;
  CT_TRY(ct__tensor_new(ctx, dtype, rank, shape, &t));
  int64_t n = t->size;
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  void *host = malloc(ct_dtype_size(dtype) * (size_t)(n ? n : 1));
  if (!v || !host) {
    free(v);
    free(host);
    ct_tensor_free(t);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "random: host staging of %lld elements", (long long)n);
  }
  if (normal) ct__philox_fill_normal(seed, n, v);
  else ct__philox_fill_uniform(seed, n, v);
  for (int64_t i = 0; i < n; ++i) {
    double x = normal ? a + b * v[i] : a + (b - a) * v[i];
    if (dtype == CT_FLOAT32) ((float *)host)[i] = (float)x;
    else ((double *)host)[i] = x;
  }
  free(v);
  ct_status s = ctb_write(ctx, t->buf, 0, host, (size_t)n * ct_dtype_size(dtype));
  free(host);
  if (s != CT_OK) {
    ct_tensor_free(t);
    return s;
  }
  *out = t;
  return CT_OK;
}

ct_status ct_random_normal(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double mean, double stddev,
                           uint64_t seed, ct_tensor **out) {
  return random_tensor(ctx, dtype, rank, shape, mean, stddev, seed, true, out);
}
ct_status ct_random_uniform(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double low, double high,
                            uint64_t seed, ct_tensor **out) {
  return random_tensor(ctx, dtype, rank, shape, low, high, seed, false, out);
}

/* ---- read back --------------------------------------------------------------------------- */
ct_status ct_tensor_read(const ct_tensor *t, void *dst, size_t bytes) {
  CT_TRY(ct__check(t, "ct_tensor_read"));
  size_t need = (size_t)t->size * ct_dtype_size(t->dtype);
  if (!dst && need) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_read: dst is NULL");
  if (bytes != need)
    return ct__error(t->ctx, CT_ERR_INVALID, "ct_tensor_read: %zu bytes given, the tensor holds %zu", bytes, need);
  return ctb_read(t->ctx, t->buf, 0, dst, need);
}

ct_status ct_tensor_read_f64(const ct_tensor *t, double *dst, int64_t n) {
  CT_TRY(ct__check(t, "ct_tensor_read_f64"));
  if (!dst && t->size) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_read_f64: dst is NULL");
  if (n < t->size)
    return ct__error(t->ctx, CT_ERR_INVALID, "ct_tensor_read_f64: room for %lld elements, need %lld", (long long)n,
                     (long long)t->size);
  size_t es = ct_dtype_size(t->dtype);
  void *tmp = malloc(es * (size_t)(t->size ? t->size : 1));
  if (!tmp) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensor_read_f64: staging");
  ct_status s = ctb_read(t->ctx, t->buf, 0, tmp, es * (size_t)t->size);
  if (s == CT_OK)
    for (int64_t i = 0; i < t->size; ++i)
      dst[i] = t->dtype == CT_FLOAT32 ? ((float *)tmp)[i] : t->dtype == CT_FLOAT64 ? ((double *)tmp)[i] : ((int32_t *)tmp)[i];
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

/* ---- printing (NumPy's style) -------------------------------------------------------------- */
/* What NumPy's str() does with its default print options: shortest digits that read back as the
 * same value at the tensor's precision, at most 8 fraction digits; scientific notation when the
 * magnitudes call for it; columns aligned on the decimal point; lines wrapped at 75 characters;
 * arrays of more than 1000 elements summarised with "..." around 3 items per edge. */
#define PRINT_PRECISION 8
#define PRINT_THRESHOLD 1000
#define PRINT_EDGE 3
#define PRINT_WIDTH 75
#define DIG 80 /* room for the digits of any value printed positionally (|v| < 1e16) or in scientific */

typedef struct {
  char *p;
  size_t n, cap;
  bool oom;
} dstr;

static void ds_putn(dstr *s, const char *t, size_t l) {
  if (s->oom) return;
  if (s->n + l + 1 > s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 256;
    while (nc < s->n + l + 1) nc *= 2;
    char *np = realloc(s->p, nc);
    if (!np) {
      s->oom = true;
      return;
    }
    s->p = np;
    s->cap = nc;
  }
  memcpy(s->p + s->n, t, l);
  s->n += l;
  s->p[s->n] = 0;
}
static void ds_put(dstr *s, const char *t) { ds_putn(s, t, strlen(t)); }
static void ds_spaces(dstr *s, int k) {
  for (int i = 0; i < k; ++i) ds_putn(s, " ", 1);
}

/* Decimal digits of finite v != 0: the fewest significant digits that read back as v (as a float
 * when f32), or exactly `sig` significant digits when sig > 0. digits gets them without trailing
 * zeros, *e10 the exponent of the first one. */
static int sig_digits(double v, bool f32, int sig, char *digits, int *e10) {
  char b[64];
  for (int p = sig > 0 ? sig - 1 : 0; p <= 16; ++p) {
    snprintf(b, sizeof b, "%.*e", p, fabs(v));
    double back = strtod(b, NULL);
    if (sig > 0 || (f32 ? (float)back == (float)fabs(v) : back == fabs(v))) break;
  }
  char *e = strchr(b, 'e');
  *e10 = atoi(e + 1);
  int k = 0;
  for (const char *c = b; c < e; ++c)
    if (*c >= '0' && *c <= '9') digits[k++] = *c;
  while (k > 1 && digits[k - 1] == '0') --k;
  digits[k] = 0;
  return k;
}

/* Positional digits of finite v: shortest, rounded to at most prec fraction digits (prec < 0: no
 * limit). Writes the integer part (with sign) to ip and the fraction digits to fp ("" for none). */
static void positional(double v, bool f32, int prec, char *ip, char *fp) {
  char d[40];
  int e10 = 0, k = v == 0 ? 0 : sig_digits(v, f32, 0, d, &e10);
  if (k && prec >= 0 && k - 1 - e10 > prec) { /* too many fraction digits: round at prec */
    char b[DIG - 2];
    snprintf(b, sizeof b, "%.*f", prec, fabs(v));
    char *dot = strchr(b, '.');
    if (dot) *dot = 0;
    snprintf(ip, DIG, "%s%s", signbit(v) ? "-" : "", b);
    size_t l = dot ? strlen(dot + 1) : 0;
    if (dot) memmove(fp, dot + 1, l + 1);
    else fp[0] = 0;
    while (l && fp[l - 1] == '0') fp[--l] = 0;
    return;
  }
  char *o = ip;
  if (signbit(v)) *o++ = '-';
  if (k == 0 || e10 < 0) *o++ = '0';
  else
    for (int i = 0; i <= e10 && i < DIG - 2; ++i) *o++ = i < k ? d[i] : '0';
  *o = 0;
  o = fp;
  if (k && e10 < 0)
    for (int i = 0; i < -e10 - 1 && i < DIG - 40; ++i) *o++ = '0';
  for (int i = e10 < 0 ? 0 : e10 + 1; i < k; ++i) *o++ = d[i];
  *o = 0;
}

/* Scientific digits of finite v: mantissa fraction digits (shortest, at most prec when prec >= 0)
 * and the exponent. */
static void scientific(double v, bool f32, int prec, char *lead, char *fp, int *e10) {
  char d[40];
  if (v == 0) {
    snprintf(lead, 4, "%s0", signbit(v) ? "-" : "");
    fp[0] = 0;
    *e10 = 0;
    return;
  }
  int k = sig_digits(v, f32, 0, d, e10);
  if (prec >= 0 && k - 1 > prec) k = sig_digits(v, f32, prec + 1, d, e10);
  snprintf(lead, 4, "%s%c", v < 0 ? "-" : "", d[0]);
  memcpy(fp, d + 1, (size_t)k);
}

/* One value as NumPy prints a float scalar: like Python's repr, positional from 1e-4 up to 1e16
 * (float64) or 1e6 (float32), scientific outside. */
static void scalar_repr(double v, bool f32, char *out, size_t cap) {
  char ip[DIG], fp[DIG];
  if (isnan(v)) snprintf(out, cap, "nan");
  else if (isinf(v)) snprintf(out, cap, v > 0 ? "inf" : "-inf");
  else if (v == 0 || (fabs(v) >= 1e-4 && fabs(v) < (f32 ? 1e6 : 1e16))) {
    positional(v, f32, -1, ip, fp);
    snprintf(out, cap, "%s.%s", ip, fp[0] ? fp : "0");
  } else {
    int e10;
    scientific(v, f32, -1, ip, fp, &e10);
    snprintf(out, cap, "%s%s%se%c%02d", ip, fp[0] ? "." : "", fp, e10 < 0 ? '-' : '+', abs(e10));
  }
}

/* The column layout of an array's elements (NumPy's FloatingFormat / IntegerFormat). */
typedef struct {
  bool is_int, f32, exp;
  int pad_left, pad_right, precision, exp_size, int_width;
} cellfmt;

static void cell(const cellfmt *f, double v, dstr *s) {
  char ip[DIG], fp[DIG], b[2 * DIG + 16];
  if (f->is_int) {
    snprintf(b, sizeof b, "%*d", f->int_width, (int)v);
    ds_put(s, b);
    return;
  }
  if (!isfinite(v)) {
    const char *w = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    ds_spaces(s, f->pad_left + f->pad_right + 1 - (int)strlen(w));
    ds_put(s, w);
    return;
  }
  if (f->exp) {
    /* every value gets the column's number of digits: the digits past its shortest form are its
     * own (correctly rounded), not zeros, as NumPy's min_digits gives */
    char m[DIG];
    snprintf(m, sizeof m, "%.*e", f->precision, fabs(v));
    char *e = strchr(m, 'e');
    int e10 = atoi(e + 1);
    *e = 0;
    snprintf(ip, sizeof ip, "%s%c", signbit(v) ? "-" : "", m[0]);
    ds_spaces(s, f->pad_left - (int)strlen(ip));
    snprintf(b, sizeof b, "%s.%se%c%0*d", ip, m[1] == '.' ? m + 2 : "", e10 < 0 ? '-' : '+', f->exp_size, abs(e10));
    ds_put(s, b);
    return;
  }
  positional(v, f->f32, f->precision, ip, fp);
  ds_spaces(s, f->pad_left - (int)strlen(ip));
  ds_put(s, ip);
  ds_put(s, ".");
  ds_put(s, fp);
  ds_spaces(s, f->pad_right - (int)strlen(fp));
}

/* Is element i shown? (all of them unless the array is summarised) */
static bool shown(const ct_tensor *t, int64_t i, bool summary) {
  if (!summary) return true;
  for (int d = t->rank - 1; d >= 0; --d) {
    int64_t n = t->shape[d], c = i % n;
    i /= n;
    if (n > 2 * PRINT_EDGE && c >= PRINT_EDGE && c < n - PRINT_EDGE) return false;
  }
  return true;
}

static void choose_format(const ct_tensor *t, const double *v, bool summary, cellfmt *f) {
  memset(f, 0, sizeof *f);
  f->f32 = t->dtype == CT_FLOAT32;
  if (t->dtype == CT_INT32) {
    f->is_int = true;
    for (int64_t i = 0; i < t->size; ++i)
      if (shown(t, i, summary)) {
        char b[16];
        int w = snprintf(b, sizeof b, "%d", (int)v[i]);
        if (w > f->int_width) f->int_width = w;
      }
    return;
  }
  double mx = 0, mn = INFINITY;
  bool any_finite = false, any_nonfinite = false, neg_inf = false;
  for (int64_t i = 0; i < t->size; ++i) {
    if (!shown(t, i, summary)) continue;
    if (!isfinite(v[i])) {
      any_nonfinite = true;
      neg_inf = neg_inf || (isinf(v[i]) && v[i] < 0);
      continue;
    }
    any_finite = true;
    double a = fabs(v[i]);
    if (a == 0) continue;
    if (a > mx) mx = a;
    if (a < mn) mn = a;
  }
  /* scientific from 1e8 (float64) or 1e6 (float32, as NumPy 2.3 and later), below 1e-4, or when
   * the magnitudes span more than three decades */
  f->exp = mn != INFINITY && (mx >= (f->f32 ? 1e6 : 1e8) || mn < 1e-4 || mx / mn > 1e3);
  f->precision = PRINT_PRECISION;
  if (any_finite) {
    int fmax = 0, emax = 0;
    for (int64_t i = 0; i < t->size; ++i) {
      if (!shown(t, i, summary) || !isfinite(v[i])) continue;
      char ip[DIG], fp[DIG];
      int e10 = 0;
      if (f->exp) scientific(v[i], f->f32, PRINT_PRECISION, ip, fp, &e10);
      else positional(v[i], f->f32, PRINT_PRECISION, ip, fp);
      int li = (int)strlen(ip), lf = (int)strlen(fp), le = abs(e10) >= 100 ? 3 : 2;
      if (li > f->pad_left) f->pad_left = li;
      if (lf > fmax) fmax = lf;
      if (le > emax) emax = le;
    }
    if (f->exp) {
      f->precision = fmax;
      f->exp_size = emax;
      f->pad_right = emax + 2 + fmax;
    } else {
      f->pad_right = fmax;
    }
  }
  if (any_nonfinite) { /* room for "nan" / "inf" / "-inf" right-aligned */
    int offset = f->pad_right + 1, inflen = 3 + (neg_inf ? 1 : 0);
    if (3 - offset > f->pad_left) f->pad_left = 3 - offset;
    if (inflen - offset > f->pad_left) f->pad_left = inflen - offset;
  }
}

/* NumPy's _extendLine: appends word to line, wrapping first when the line would grow too long. */
static void extend_line(dstr *s, dstr *line, const char *word, int width, int indent) {
  if ((int)(line->n + strlen(word)) > width && (int)line->n > indent) {
    size_t l = line->n;
    while (l && line->p[l - 1] == ' ') --l;
    ds_putn(s, line->p, l);
    ds_put(s, "\n");
    line->n = 0;
    ds_spaces(line, indent);
  }
  ds_put(line, word);
}

/* NumPy's _formatArray for the sub-array at `base` from `axis` on. */
static void format_rec(dstr *out, const ct_tensor *t, const double *v, const cellfmt *f, bool summary, int axis,
                       int64_t base, int indent, int width) {
  int64_t n = t->shape[axis], stride = 1;
  for (int d = axis + 1; d < t->rank; ++d) stride *= t->shape[d];
  bool summ = summary && n > 2 * PRINT_EDGE;
  int64_t lead = summ ? PRINT_EDGE : 0, trail = summ ? PRINT_EDGE : n;
  dstr s = {0};
  if (axis == t->rank - 1) {
    dstr line = {0}, word = {0};
    ds_spaces(&line, indent);
    for (int64_t k = 0; k < lead + trail; ++k) {
      int64_t i = k < lead ? k : n - (lead + trail - k);
      word.n = 0;
      cell(f, v[base + i], &word);
      extend_line(&s, &line, word.p ? word.p : "", width - 1, indent);
      if (k + 1 < lead + trail) ds_put(&line, " ");
      if (summ && k + 1 == lead) {
        extend_line(&s, &line, "...", width - 1, indent);
        ds_put(&line, " ");
      }
    }
    ds_putn(&s, line.p ? line.p : "", line.n);
    free(line.p);
    free(word.p);
    s.oom = s.oom || line.oom || word.oom;
  } else {
    int blank = t->rank - 1 - axis; /* newlines between rows: one more per extra axis */
    for (int64_t k = 0; k < lead + trail; ++k) {
      int64_t i = k < lead ? k : n - (lead + trail - k);
      ds_spaces(&s, indent);
      format_rec(&s, t, v, f, summary, axis + 1, base + i * stride, indent + 1, width - 1);
      if (k + 1 < lead + trail)
        for (int b = 0; b < blank; ++b) ds_put(&s, "\n");
      if (summ && k + 1 == lead) {
        ds_spaces(&s, indent);
        ds_put(&s, "...");
        for (int b = 0; b < blank; ++b) ds_put(&s, "\n");
      }
    }
  }
  ds_put(out, "[");
  if (s.p && (int)s.n >= indent) ds_putn(out, s.p + indent, s.n - (size_t)indent);
  ds_put(out, "]");
  out->oom = out->oom || s.oom;
  free(s.p);
}

ct_status ct_shape_format(const ct_tensor *t, char *buf, size_t cap) {
  CT_TRY(ct__check(t, "ct_shape_format"));
  if (!buf || cap == 0) return ct__error(t->ctx, CT_ERR_NULL, "ct_shape_format: empty buffer");
  ct__shape_str(t->rank, t->shape, buf, cap);
  return CT_OK;
}

ct_status ct_tensor_format(const ct_tensor *t, ct_format_style style, char *buf, size_t cap) {
  CT_TRY(ct__check(t, "ct_tensor_format"));
  if (!buf || cap == 0) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_format: empty buffer");
  if (style != CT_FORMAT_REPR && style != CT_FORMAT_VALUES)
    return ct__error(t->ctx, CT_ERR_INVALID, "ct_tensor_format: unknown style %d", (int)style);
  buf[0] = 0;
  int64_t n = t->size;
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  if (!v) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensor_format: staging %lld elements", (long long)n);
  ct_status s = ct_tensor_read_f64(t, v, n);
  if (s != CT_OK) {
    free(v);
    return s;
  }
  dstr o = {0};
  if (style == CT_FORMAT_REPR) ds_put(&o, "tf.Tensor(");
  if (t->rank == 0) {
    char c[2 * DIG + 16];
    if (t->dtype == CT_INT32) snprintf(c, sizeof c, "%d", (int)v[0]);
    else scalar_repr(v[0], t->dtype == CT_FLOAT32, c, sizeof c);
    ds_put(&o, c);
  } else if (n == 0) {
    ds_put(&o, "[]");
  } else {
    bool summary = n > PRINT_THRESHOLD;
    cellfmt f;
    choose_format(t, v, summary, &f);
    format_rec(&o, t, v, &f, summary, 0, 0, 1, PRINT_WIDTH);
  }
  if (style == CT_FORMAT_REPR) {
    char tail[160], sh[96];
    ct__shape_str(t->rank, t->shape, sh, sizeof sh);
    snprintf(tail, sizeof tail, ", shape=%s, dtype=%s)", sh, ct_dtype_name(t->dtype));
    ds_put(&o, tail);
  }
  free(v);
  if (o.oom) {
    free(o.p);
    return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensor_format: building the text");
  }
  /* copy, truncated with "..." when it does not fit */
  if (o.n < cap) memcpy(buf, o.p, o.n + 1);
  else if (cap >= 4) {
    memcpy(buf, o.p, cap - 4);
    memcpy(buf + cap - 4, "...", 4);
  } else {
    memcpy(buf, o.p, cap - 1);
    buf[cap - 1] = 0;
  }
  free(o.p);
  return CT_OK;
}

/* ---- variables ----------------------------------------------------------------------------- */
ct_status ct_variable_create(const ct_tensor *initial, const char *name, bool trainable, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_variable_create: out is NULL");
  *out = NULL;
  CT_TRY(ct__check(initial, "ct_variable_create"));
  ct_tensor *v;
  CT_TRY(ct__tensor_new(initial->ctx, initial->dtype, initial->rank, initial->shape, &v));
  ct_status s = ctb_copy(v->ctx, initial->buf, 0, v->buf, 0, (size_t)v->size * ct_dtype_size(v->dtype));
  const char *base = name && *name ? name : "Variable";
  size_t l = strlen(base);
  v->name = malloc(l + 3);
  if (s == CT_OK && !v->name) s = ct__error(v->ctx, CT_ERR_OUT_OF_MEMORY, "variable name");
  if (s != CT_OK) {
    ct_tensor_free(v);
    return s;
  }
  /* "x0" -> "x0:0"; a name that already ends in ":<digits>" is kept */
  const char *colon = strrchr(base, ':');
  bool has_suffix = colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1);
  snprintf(v->name, l + 3, has_suffix ? "%s" : "%s:0", base);
  v->is_var = true;
  v->trainable = trainable;
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
  return ct__tensor_alias(var, var->rank, var->shape, false, out);
}

/* The variable takes over the storage of `value` (already computed, same shape and dtype). */
static void var_take(ct_tensor *var, ct_tensor *value) {
  ct_buffer *old = var->buf;
  var->buf = ctb_retain(value->buf);
  ctb_release(old);
}

ct_status ct__variable_update(ct_tensor *var, const ct_tensor *value, int mode, const char *what);
ct_status ct__variable_update(ct_tensor *var, const ct_tensor *value, int mode, const char *what) {
  CT_TRY(check_var(var, what));
  CT_TRY(ct__check(value, what));
  if (value->ctx != var->ctx) return ct__error(var->ctx, CT_ERR_CONTEXT, "%s: value belongs to another context", what);
  if (value->dtype != var->dtype)
    return ct__error(var->ctx, CT_ERR_DTYPE, "%s: variable %s is %s, value is %s", what, var->name,
                     ct_dtype_name(var->dtype), ct_dtype_name(value->dtype));
  /* the new value, computed without recording: assignments are state, not ops */
  extern void ct__tapes_suspend(int delta);
  ct__tapes_suspend(+1);
  ct_tensor *cur = NULL, *res = NULL;
  ct_status s = ct__tensor_alias(var, var->rank, var->shape, false, &cur);
  if (s == CT_OK) {
    if (mode == 0) s = ct_broadcast_to(value, var->rank, var->shape, &res);
    else if (mode == 1) s = ct_add(cur, value, &res);
    else s = ct_sub(cur, value, &res);
  }
  ct__tapes_suspend(-1);
  if (s == CT_OK && (res->rank != var->rank || memcmp(res->shape, var->shape, sizeof(int64_t) * (size_t)var->rank)))
    s = ct__error(var->ctx, CT_ERR_SHAPE, "%s: the value's shape does not match variable %s", what, var->name);
  if (s == CT_OK) {
    if (res->buf == value->buf) {
      /* broadcast_to of an equal shape returns the value itself: copy so the variable owns it */
      ct_buffer *nb;
      s = ctb_alloc(var->ctx, ctb_bytes(value->buf), &nb);
      if (s == CT_OK) s = ctb_copy(var->ctx, value->buf, 0, nb, 0, ctb_bytes(value->buf));
      if (s == CT_OK) {
        ctb_release(var->buf);
        var->buf = nb;
      } else if (nb) ctb_release(nb);
    } else {
      var_take(var, res);
    }
  }
  ct_tensor_free(cur);
  ct_tensor_free(res);
  return s;
}

ct_status ct_variable_assign(ct_tensor *var, const ct_tensor *value) {
  return ct__variable_update(var, value, 0, "ct_variable_assign");
}
ct_status ct_variable_assign_add(ct_tensor *var, const ct_tensor *value) {
  return ct__variable_update(var, value, 1, "ct_variable_assign_add");
}
ct_status ct_variable_assign_sub(ct_tensor *var, const ct_tensor *value) {
  return ct__variable_update(var, value, 2, "ct_variable_assign_sub");
}

/* ---- Philox-4x32-10 ------------------------------------------------------------------------ */
static void philox(uint32_t ctr[4], uint32_t key[2]) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = (uint64_t)M0 * ctr[0], p1 = (uint64_t)M1 * ctr[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
    ctr[0] = n0;
    ctr[1] = (uint32_t)p1;
    ctr[2] = n2;
    ctr[3] = (uint32_t)p0;
    k0 += W0;
    k1 += W1;
  }
}

void ct__philox_block(uint64_t seed, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  philox(ctr, key);
  memcpy(out, ctr, sizeof ctr);
}

static double u01(uint32_t hi, uint32_t lo) { /* 53 random bits in [0, 1) */
  return (double)(((uint64_t)hi << 21) ^ (lo >> 11)) * (1.0 / 9007199254740992.0);
}

void ct__philox_fill_uniform(uint64_t seed, int64_t n, double *out) {
  for (int64_t i = 0; i < n; i += 2) {
    uint32_t r[4];
    ct__philox_block(seed, (uint64_t)i / 2, r);
    out[i] = u01(r[0], r[1]);
    if (i + 1 < n) out[i + 1] = u01(r[2], r[3]);
  }
}

void ct__philox_fill_normal(uint64_t seed, int64_t n, double *out) {
  for (int64_t i = 0; i < n; i += 2) {
    uint32_t r[4];
    ct__philox_block(seed ^ 0x6e6f726d616cULL, (uint64_t)i / 2, r);
    double u1 = 1.0 - u01(r[0], r[1]), u2 = u01(r[2], r[3]); /* u1 in (0, 1] */
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    out[i] = rad * cos(th);
    if (i + 1 < n) out[i + 1] = rad * sin(th);
  }
}
