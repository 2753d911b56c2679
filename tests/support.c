#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_internal.h"
#include <criterion/hooks.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- skipped tests: each one named with its reason, and counted (runner process; tests left
 * out by --filter are not counted) ----------------------------------------------------------- */
static size_t ts_skipped;
ReportHook(POST_TEST)(struct criterion_test_stats *st) {
  if (st->test_status != CR_STATUS_SKIPPED || (st->test->data && st->test->data->disabled)) return;
  ts_skipped++;
  fprintf(stderr, "[SKIP] %s::%s: %s\n", st->test->category, st->test->name, st->message ? st->message : "");
}
ReportHook(POST_ALL)(struct criterion_global_stats *st) {
  if (ts_skipped)
    fprintf(stderr, "[====] Skipped: %zu of %zu tests (reasons on the [SKIP] lines)\n", ts_skipped, st->nb_tests);
}

bool ts_has_fp64(const ct_context *ctx) {
  ct_device_info info;
  ct_status s = ct_context_device(ctx, &info);
  cr_assert_eq(s, CT_OK, "ct_context_device: %s", ct_errmsg());
  return info.fp64;
}

bool ts_has_dtype(const ct_context *ctx, ct_dtype dt) { return dt != CT_FLOAT64 || ts_has_fp64(ctx); }

ct_dtype ts_best_float(const ct_context *ctx) { return ts_has_fp64(ctx) ? CT_FLOAT64 : CT_FLOAT32; }

void ts_require_fp64(const ct_context *ctx) {
  if (ts_has_fp64(ctx)) return;
  cr_skip_test("needs float64: device \"%s\" has none", ctb_device_name(ctx));
}

double ts_ulps(const ct_context *ctx) { return ctb_math_ulps(ctx) + 1.0; }

double ts_ulp_diff(ct_dtype dt, double got, double want) {
  if (isnan(got) || isnan(want)) return isnan(got) && isnan(want) ? 0 : INFINITY;
  if (got == want) return 0;
  if (dt == CT_INT32) return fabs(got - want);
  if (isinf(got) || isinf(want)) return INFINITY;
  double ulp;
  if (dt == CT_FLOAT32) {
    float w = fabsf((float)want);
    ulp = w < FLT_MIN ? (double)FLT_TRUE_MIN : (double)(nextafterf(w, INFINITY) - w);
  } else {
    double w = fabs(want);
    ulp = w < DBL_MIN ? DBL_TRUE_MIN : nextafter(w, INFINITY) - w;
  }
  return fabs(got - want) / ulp;
}

uint64_t ts_rng_state;
double ts_rnd01(void) {
  ts_rng_state = ts_rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(ts_rng_state >> 11) * (1.0 / 9007199254740992.0);
}

/* Not inlined: GCC 12.2 at -O2 vectorises two inlined calls into one store and drops the float32
 * rounding. */
__attribute__((noinline)) double ts_to_dtype(ct_dtype dt, double v) {
  if (dt == CT_FLOAT32) return (double)(float)v;
  if (dt == CT_INT32) return (double)(int32_t)v;
  return v;
}

double *ts_lcg_values(ct_dtype dt, int64_t n, uint32_t seed) {
  double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  cr_assert(v);
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    v[i] = ts_to_dtype(dt, (double)(s >> 8) / (double)(1u << 24) * 2.0 - 1.0);
  }
  return v;
}

ct_tensor *ts_lcg_tensor(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, uint32_t seed, double **host) {
  double *v = ts_lcg_values(dt, ts_numel(rank, shape), seed);
  ct_tensor *t = ts_tensor(ctx, dt, rank, shape, v);
  if (host) *host = v;
  else free(v);
  return t;
}

int64_t ts_numel(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  return n;
}

ct_context *ts_ctx(void) {
  ct_context *ctx = NULL;
  ct_status s = ct_context_create(NULL, &ctx);
  cr_assert_eq(s, CT_OK, "ct_context_create: %s", ct_errmsg());
  return ctx;
}

ct_tensor *ts_tensor(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *values) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  size_t es = ct_dtype_size(dt);
  unsigned char *h = calloc((size_t)(n ? n : 1), es);
  cr_assert(h);
  for (int64_t i = 0; i < n; ++i) {
    if (dt == CT_FLOAT32) ((float *)h)[i] = (float)values[i];
    else if (dt == CT_FLOAT64) ((double *)h)[i] = values[i];
    else if (dt == CT_INT32) ((int32_t *)h)[i] = (int32_t)values[i];
    else ct__elem_set(dt, h, (size_t)i, values[i]); /* float16, bfloat16, int64, bool */
  }
  ct_tensor *t = NULL;
  ct_status s = ct_tensor_from_data(ctx, dt, rank, shape, h, &t);
  free(h);
  cr_assert_eq(s, CT_OK, "ct_tensor_from_data: %s", ct_errmsg());
  return t;
}

double *ts_read(const ct_tensor *t) {
  cr_assert(t, "tensor is NULL");
  int64_t n = ct_tensor_size(t);
  double *v = calloc((size_t)(n ? n : 1), sizeof *v);
  cr_assert(v);
  ct_status s = ct_tensor_read_f64(t, v, n);
  cr_assert_eq(s, CT_OK, "ct_tensor_read_f64: %s", ct_errmsg());
  return v;
}

void ts_assert_close(const ct_tensor *t, const double *want, int64_t n, double atol, double rtol, const char *what) {
  cr_assert(t, "%s: tensor is NULL", what);
  cr_assert_eq(ct_tensor_size(t), n, "%s: %lld elements, wanted %lld", what, (long long)ct_tensor_size(t), (long long)n);
  double *v = ts_read(t);
  ct_dtype dt = ct_tensor_dtype(t);
  double ulps = dt == CT_INT32 || (atol <= 0 && rtol <= 0) ? 0 : ts_ulps(ct_tensor_context(t));
  for (int64_t i = 0; i < n; ++i) {
    bool ok = (isnan(v[i]) && isnan(want[i])) || v[i] == want[i] || fabs(v[i] - want[i]) <= atol + rtol * fabs(want[i]) ||
              (ulps > 0 && ts_ulp_diff(dt, v[i], want[i]) <= ulps);
    cr_assert(ok, "%s: element %lld is %.9g, wanted %.9g (%.3g ulps of %s away; %.3g allowed)", what, (long long)i, v[i],
              want[i], ts_ulp_diff(dt, v[i], want[i]), ct_dtype_name(dt), ulps);
  }
  free(v);
}

void ts_assert_ulps(const ct_tensor *t, const double *want, int64_t n, double ulps, const char *what) {
  cr_assert(t, "%s: tensor is NULL", what);
  cr_assert_eq(ct_tensor_size(t), n, "%s: %lld elements, wanted %lld", what, (long long)ct_tensor_size(t), (long long)n);
  double *v = ts_read(t);
  ct_dtype dt = ct_tensor_dtype(t);
  for (int64_t i = 0; i < n; ++i) {
    double d = ts_ulp_diff(dt, v[i], want[i]);
    cr_assert(d <= ulps, "%s: element %lld is %.9g, wanted %.9g: %.3g ulps of %s away (%.3g allowed)", what,
              (long long)i, v[i], want[i], d, ct_dtype_name(dt), ulps);
  }
  free(v);
}

void ts_assert_shape(const ct_tensor *t, int rank, const int64_t *shape, const char *what) {
  cr_assert(t, "%s: tensor is NULL", what);
  cr_assert_eq(ct_tensor_rank(t), rank, "%s: rank %d, wanted %d", what, ct_tensor_rank(t), rank);
  for (int i = 0; i < rank; ++i)
    cr_assert_eq(ct_tensor_shape(t)[i], shape[i], "%s: axis %d is %lld, wanted %lld", what, i,
                 (long long)ct_tensor_shape(t)[i], (long long)shape[i]);
}

double ts_item(const ct_tensor *t) {
  double v = NAN;
  cr_assert(t, "tensor is NULL");
  ct_status s = ct_tensor_item(t, &v);
  cr_assert_eq(s, CT_OK, "ct_tensor_item: %s", ct_errmsg());
  return v;
}

/* ---- the user op of S19 ---------------------------------------------------------------------- */
static const char *contrast_src =
    "__kernel void adjust_contrast(int n, __global T *out,\n"
    "                              __global const T *img, int rank0, int8 shape0,\n"
    "                              __global const T *delta, int rank1, int8 shape1) {\n"
    "  int i = get_global_id(0);\n"
    "  if (i >= n) return;\n"
    "  int c = shape0.s2, hw = shape0.s0 * shape0.s1, ch = i % c;\n"
    "  T m = (T)0;\n"
    "  for (int k = 0; k < hw; ++k) m += img[k * c + ch];\n"
    "  m /= (T)hw;\n"
    "  out[i] = (img[i] - m) * delta[0] + m;\n"
    "}\n";

static ct_status contrast_shape(int n, const ct_tensor *const *in, int *rank, int64_t *shape, ct_dtype *dt, void *user) {
  (void)user;
  if (n != 2 || ct_tensor_rank(in[0]) != 3 || ct_tensor_size(in[1]) != 1) return CT_ERR_SHAPE;
  *rank = 3;
  for (int i = 0; i < 3; ++i) shape[i] = ct_tensor_shape(in[0])[i];
  *dt = ct_tensor_dtype(in[0]);
  return CT_OK;
}

/* dx = d dy + (1 - d) mean_hw(dy);  dd = sum((x - m) dy) */
ct_status ts_contrast_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)user;
  const ct_tensor *x = ct_grad_ctx_input(g, 0), *d = ct_grad_ctx_input(g, 1);
  int hw[2] = {0, 1};
  ct_tensor *m = NULL, *c = NULL, *cd = NULL, *s = NULL, *a = NULL, *om = NULL, *dm = NULL, *b = NULL;
  ct_status st = ct_mean(x, hw, 2, true, &m);
  if (st == CT_OK) st = ct_sub(x, m, &c);
  if (st == CT_OK) st = ct_mul(c, dy, &cd);
  if (st == CT_OK) st = ct_sum(cd, NULL, 0, false, &s);
  if (st == CT_OK) st = ct_reshape(s, ct_tensor_rank(d), ct_tensor_shape(d), &dx[1]);
  if (st == CT_OK) st = ct_mul(dy, d, &a);
  if (st == CT_OK) st = ct_rsub_scalar(1.0, d, &om);
  if (st == CT_OK) st = ct_mean(dy, hw, 2, true, &dm);
  if (st == CT_OK) st = ct_mul(dm, om, &b);
  if (st == CT_OK) st = ct_add(a, b, &dx[0]);
  ct_tensor *tmp[] = {m, c, cd, s, a, om, dm, b};
  ct_tensor_free_n(tmp, 8);
  return st;
}

ct_status ts_contrast_register(const char *name, bool with_gradient) {
  ct_custom_op op = {name, contrast_src, "adjust_contrast", 2, contrast_shape, NULL};
  ct_status s = ct_custom_op_register(&op);
  if (s == CT_OK && with_gradient) s = ct_register_gradient(name, ts_contrast_grad, NULL);
  return s;
}

void ts_tmpdir(char *dir, size_t cap, const char *name) {
  snprintf(dir, cap, "/tmp/cltape_%s_XXXXXX", name);
  cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

void ts_rmdir(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

uint64_t ts_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

ct_tape *ts_tape(ct_context *ctx, bool persistent, bool watch_accessed) {
  ct_tape_options o = {persistent, watch_accessed};
  ct_tape *t = NULL;
  ct_status s = ct_tape_begin(ctx, &o, &t);
  cr_assert_eq(s, CT_OK, "ct_tape_begin: %s", ct_errmsg());
  return t;
}
ct_tensor *ts_grad1(ct_tape *t, const ct_tensor *y, const ct_tensor *x) {
  ct_tensor *g = NULL;
  ct_status s = ct_tape_gradient1(t, y, x, &g);
  cr_assert_eq(s, CT_OK, "ct_tape_gradient1: %s", ct_errmsg());
  return g;
}
cl_uint ts_mem_refs(cl_mem m) {
  cl_uint r = 0;
  cr_assert_eq(clGetMemObjectInfo(m, CL_MEM_REFERENCE_COUNT, sizeof r, &r, NULL), CL_SUCCESS);
  return r;
}
cl_uint ts_ctx_refs(cl_context c) {
  cl_uint r = 0;
  cr_assert_eq(clGetContextInfo(c, CL_CONTEXT_REFERENCE_COUNT, sizeof r, &r, NULL), CL_SUCCESS);
  return r;
}
cl_uint ts_queue_refs(cl_command_queue q) {
  cl_uint r = 0;
  cr_assert_eq(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof r, &r, NULL), CL_SUCCESS);
  return r;
}
cl_uint ts_event_refs(cl_event e) {
  cl_uint r = 0;
  cr_assert_eq(clGetEventInfo(e, CL_EVENT_REFERENCE_COUNT, sizeof r, &r, NULL), CL_SUCCESS);
  return r;
}
