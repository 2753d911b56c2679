/*
 * test_ops_elementwise.c — every elementwise op of the op table against a host reference computed
 * in double precision with libm: unary ops, binary ops and their scalar forms, comparisons, where
 * and cast, for float32, float64 and (where the header allows) int32. Shapes cover 0-d, one
 * element, empty tensors, sizes that are not a multiple of the work-group size, more than a
 * million elements and NumPy broadcasting edge cases up to rank 8.
 *
 * Tolerances: float64 results must agree to 1e-12 relative. float32 arithmetic that IEEE rounds
 * once (add, sub, mul, square, ...) must be within 1 ulp of the correctly rounded value; division
 * within 2.5 ulp (OpenCL's bound); sqrt/rsqrt within 4 ulp (the bound the library accepts when it
 * picks native_ math); transcendental functions within 4 ulp or 1e-6 absolute.
 */
#include "support.h"
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- host references --------------------------------------------------------------------- */
static double r_neg(double x) { return -x; }
static double r_abs(double x) { return fabs(x); }
/* NaN propagates through sign, relu, maximum and minimum, as in NumPy and TensorFlow */
static double r_sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : (x == 0 ? 0.0 : x)); }
static double r_square(double x) { return x * x; }
static double r_rsqrt(double x) { return 1.0 / sqrt(x); }
static double r_reciprocal(double x) { return 1.0 / x; }
static double r_sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }
static double r_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }
static double r_relu(double x) { return x < 0 ? 0.0 : x; }
static double r_elu(double x) { return x > 0 ? x : expm1(x); }
static double r_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

static double r_add(double a, double b) { return a + b; }
static double r_sub(double a, double b) { return a - b; }
static double r_mul(double a, double b) { return a * b; }
static double r_div(double a, double b) { return a / b; }
static double r_maximum(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a > b ? a : b); }
static double r_minimum(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a < b ? a : b); }
static double r_gt(double a, double b) { return a > b; }
static double r_ge(double a, double b) { return a >= b; }
static double r_lt(double a, double b) { return a < b; }
static double r_le(double a, double b) { return a <= b; }
static double r_eq(double a, double b) { return a == b; }
static double r_ne(double a, double b) { return a != b; }

/* Accuracy classes. */
enum { EXACT, ARITH, DIVLIKE, ROOT, TRANS };

typedef struct {
  const char *name;
  ct_status (*fn)(const ct_tensor *, ct_tensor **);
  double (*ref)(double);
  double lo, hi; /* input domain */
  int cls;
  bool ints;     /* also defined on int32 */
} unop;

static const unop UNOPS[] = {
    {"neg", ct_neg, r_neg, -100, 100, EXACT, true},
    {"abs", ct_abs, r_abs, -100, 100, EXACT, true},
    {"sign", ct_sign, r_sign, -3, 3, EXACT, true},
    {"square", ct_square, r_square, -100, 100, ARITH, true},
    {"sqrt", ct_sqrt, sqrt, 0, 1e6, ROOT, false},
    {"rsqrt", ct_rsqrt, r_rsqrt, 1e-3, 1e6, ROOT, false},
    {"reciprocal", ct_reciprocal, r_reciprocal, 0.01, 1000, DIVLIKE, false},
    {"exp", ct_exp, exp, -80, 80, TRANS, false},
    {"expm1", ct_expm1, expm1, -20, 20, TRANS, false},
    {"log", ct_log, log, 1e-6, 1e6, TRANS, false},
    {"log1p", ct_log1p, log1p, -0.999, 1000, TRANS, false},
    {"sin", ct_sin, sin, -100, 100, TRANS, false},
    {"cos", ct_cos, cos, -100, 100, TRANS, false},
    {"tan", ct_tan, tan, -1.5, 1.5, TRANS, false},
    {"tanh", ct_tanh, tanh, -20, 20, TRANS, false},
    {"sigmoid", ct_sigmoid, r_sigmoid, -100, 100, TRANS, false},
    {"softplus", ct_softplus, r_softplus, -100, 100, TRANS, false},
    {"relu", ct_relu, r_relu, -10, 10, EXACT, false},
    {"elu", ct_elu, r_elu, -20, 20, TRANS, false},
    {"gelu", ct_gelu, r_gelu, -10, 10, TRANS, false},
    {"erf", ct_erf, erf, -5, 5, TRANS, false},
    {"floor", ct_floor, floor, -100, 100, EXACT, false},
    {"ceil", ct_ceil, ceil, -100, 100, EXACT, false},
    {"round", ct_round, rint, -100, 100, EXACT, false},
};
#define N_UNOPS ((int)(sizeof UNOPS / sizeof *UNOPS))

typedef struct {
  const char *name;
  ct_status (*fn)(const ct_tensor *, const ct_tensor *, ct_tensor **);
  ct_status (*fn_scalar)(const ct_tensor *, double, ct_tensor **);
  double (*ref)(double, double);
  int cls;
  bool cmp;
} binop;

static const binop BINOPS[] = {
    {"add", ct_add, ct_add_scalar, r_add, ARITH, false},
    {"sub", ct_sub, ct_sub_scalar, r_sub, ARITH, false},
    {"mul", ct_mul, ct_mul_scalar, r_mul, ARITH, false},
    {"div", ct_div, ct_div_scalar, r_div, DIVLIKE, false},
    {"pow", ct_pow, ct_pow_scalar, pow, TRANS, false},
    {"maximum", ct_maximum, ct_maximum_scalar, r_maximum, EXACT, false},
    {"minimum", ct_minimum, ct_minimum_scalar, r_minimum, EXACT, false},
    {"greater", ct_greater, ct_greater_scalar, r_gt, EXACT, true},
    {"greater_equal", ct_greater_equal, ct_greater_equal_scalar, r_ge, EXACT, true},
    {"less", ct_less, ct_less_scalar, r_lt, EXACT, true},
    {"less_equal", ct_less_equal, ct_less_equal_scalar, r_le, EXACT, true},
    {"equal", ct_equal, ct_equal_scalar, r_eq, EXACT, true},
    {"not_equal", ct_not_equal, ct_not_equal_scalar, r_ne, EXACT, true},
};
#define N_BINOPS ((int)(sizeof BINOPS / sizeof *BINOPS))

/* ---- helpers ----------------------------------------------------------------------------- */



/* Is `got` close enough to the exact `want` for a result of dtype dt in accuracy class cls? */
static bool close_enough(ct_dtype dt, int cls, double got, double want, double *err_ulp) {
  *err_ulp = 0;
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  if (dt == CT_INT32 || dt == CT_BOOL) return got == want;
  if (dt == CT_FLOAT64) {
    if (cls == EXACT) return got == want;
    return fabs(got - want) <= 1e-12 * fabs(want) || got == want;
  }
  float wf = (float)want;
  if (isinf(wf)) return isinf(got) && (got > 0) == (wf > 0); /* overflows to inf in float32 */
  double err = fabs(got - want);
  *err_ulp = ts_ulp_diff(CT_FLOAT32, got, want);
  switch (cls) {
    case EXACT: return got == (double)wf;
    case ARITH: return *err_ulp <= 1.0;
    case DIVLIKE: return *err_ulp <= 2.5;
    case ROOT: return *err_ulp <= 4.0;
    default: return *err_ulp <= 4.0 || err <= 1e-6;
  }
}

static void check_values(const char *what, ct_dtype dt, int cls, const ct_tensor *t, const double *want, int64_t n,
                         const double *in_a, const double *in_b) {
  cr_assert(t, "%s: result is NULL", what);
  cr_assert_eq(ct_tensor_size(t), n, "%s: %lld elements, wanted %lld", what, (long long)ct_tensor_size(t), (long long)n);
  double *got = n ? ts_read(t) : NULL;
  for (int64_t i = 0; i < n; ++i) {
    double e;
    bool ok = close_enough(dt, cls, got[i], want[i], &e);
    if (!ok) {
      char args[128] = "";
      if (in_a && in_b) snprintf(args, sizeof args, "(%.17g, %.17g)", in_a[i], in_b[i]);
      else if (in_a) snprintf(args, sizeof args, "(%.17g)", in_a[i]);
      cr_assert(ok, "%s [%s]: element %lld %s = %.17g, wanted %.17g (%.2f ulp)", what, ct_dtype_name(dt),
                (long long)i, args, got[i], want[i], e);
    }
  }
  free(got);
}

static ct_tensor *make(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *v) {
  return ts_tensor(ctx, dt, rank, shape, v);
}

/* Random values in [lo, hi] (as held in dt), with a few fixed points of interest mixed in. */
static double *gen(ct_dtype dt, int64_t n, double lo, double hi) {
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  cr_assert(v);
  for (int64_t i = 0; i < n; ++i) v[i] = ts_to_dtype(dt, lo + (hi - lo) * ts_rnd01());
  static const double special[] = {0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 1e-3, 10.0, -10.0};
  for (int k = 0; k < 10 && k < n; ++k) {
    double s = special[k];
    if (s >= lo && s <= hi) v[(k * 97) % n] = ts_to_dtype(dt, s);
  }
  if (n > 2) {
    v[n - 1] = ts_to_dtype(dt, hi);
    v[n - 2] = ts_to_dtype(dt, lo);
  }
  return v;
}

/* Index of the element of an input (shape right-aligned to out) read for output index i. */
static int64_t bcast_index(int64_t i, int orank, const int64_t *oshape, int rank, const int64_t *shape) {
  int64_t idx = 0, mul = 1;
  for (int d = orank - 1; d >= 0; --d) {
    int64_t c = i % oshape[d];
    i /= oshape[d];
    int sd = d - (orank - rank);
    if (sd >= 0) {
      if (shape[sd] != 1) idx += c * mul;
      mul *= shape[sd];
    }
  }
  return idx;
}

/* ---- unary ---------------------------------------------------------------------------------- */
static void unary_all(ct_dtype dt, int64_t n) {
  ct_context *ctx = ts_ctx();
  if (dt == CT_FLOAT64) ts_require_fp64(ctx);
  ts_rng_state = 12345;
  for (int k = 0; k < N_UNOPS; ++k) {
    const unop *op = &UNOPS[k];
    if (dt == CT_INT32 && !op->ints) continue;
    double *in = gen(dt, n, op->lo, op->hi);
    double *want = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; ++i) want[i] = ts_to_dtype(dt == CT_INT32 ? CT_INT32 : CT_FLOAT64, op->ref(in[i]));
    int64_t shape[1] = {n};
    ct_tensor *x = make(ctx, dt, 1, shape, in), *y = NULL;
    OK(op->fn(x, &y));
    ts_assert_shape(y, 1, shape, op->name);
    cr_assert_eq(ct_tensor_dtype(y), dt, "%s: dtype changed", op->name);
    check_values(op->name, dt, op->cls, y, want, n, in, NULL);
    ct_tensor_free(y);
    ct_tensor_free(x);
    free(in);
    free(want);
  }
  ct_context_free(ctx);
}

Test(unary, float32_all_ops_1001) { unary_all(CT_FLOAT32, 1001); }
Test(unary, float64_all_ops_1001) { unary_all(CT_FLOAT64, 1001); }
Test(unary, int32_ops) { unary_all(CT_INT32, 777); }

/* 0-d, one element and empty tensors keep their shape for every op and dtype. */
Test(unary, scalar_single_and_empty_shapes) {
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = dts[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    for (int k = 0; k < N_UNOPS; ++k) {
      const unop *op = &UNOPS[k];
      if (dt == CT_INT32 && !op->ints) continue;
      double v = ts_to_dtype(dt, op->lo > 0 ? op->lo + 0.25 : (op->hi < 1 ? op->hi : 0.75));
      double want = ts_to_dtype(dt == CT_INT32 ? CT_INT32 : CT_FLOAT64, op->ref(v));
      /* 0-d */
      ct_tensor *x = make(ctx, dt, 0, NULL, &v), *y = NULL;
      OK(op->fn(x, &y));
      cr_assert_eq(ct_tensor_rank(y), 0, "%s: 0-d input gave rank %d", op->name, ct_tensor_rank(y));
      check_values(op->name, dt, op->cls, y, &want, 1, &v, NULL);
      ct_tensor_free(y);
      ct_tensor_free(x);
      /* (1,) */
      int64_t one[1] = {1};
      x = make(ctx, dt, 1, one, &v);
      OK(op->fn(x, &y));
      ts_assert_shape(y, 1, one, op->name);
      check_values(op->name, dt, op->cls, y, &want, 1, &v, NULL);
      ct_tensor_free(y);
      ct_tensor_free(x);
      /* (0,) and (3, 0, 2) */
      int64_t e1[1] = {0}, e3[3] = {3, 0, 2};
      x = make(ctx, dt, 1, e1, NULL);
      OK(op->fn(x, &y));
      ts_assert_shape(y, 1, e1, op->name);
      cr_assert_eq(ct_tensor_size(y), 0);
      ct_tensor_free(y);
      ct_tensor_free(x);
      x = make(ctx, dt, 3, e3, NULL);
      OK(op->fn(x, &y));
      ts_assert_shape(y, 3, e3, op->name);
      cr_assert_eq(ct_tensor_size(y), 0);
      ct_tensor_free(y);
      ct_tensor_free(x);
    }
  }
  ct_context_free(ctx);
}

/* Values where a naive formula overflows or loses everything. */
Test(unary, stable_at_extremes) {
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64};
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = dts[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    double in[] = {-100, 100, -1000, 1000, -88, 88, 0};
    int64_t shape[1] = {7};
    ct_tensor *x = make(ctx, dt, 1, shape, in), *s = NULL, *p = NULL, *t = NULL;
    OK(ct_sigmoid(x, &s));
    OK(ct_softplus(x, &p));
    OK(ct_tanh(x, &t));
    double *sv = ts_read(s), *pv = ts_read(p), *tv = ts_read(t);
    for (int i = 0; i < 7; ++i) {
      cr_assert(isfinite(sv[i]) && isfinite(pv[i]) && isfinite(tv[i]), "%s: not finite at %g: %g %g %g",
                ct_dtype_name(dt), in[i], sv[i], pv[i], tv[i]);
      cr_assert(sv[i] >= 0 && sv[i] <= 1, "sigmoid(%g) = %g", in[i], sv[i]);
      cr_assert(pv[i] >= 0, "softplus(%g) = %g", in[i], pv[i]);
    }
    cr_assert_eq(sv[1], 1.0, "sigmoid(100) = %.17g", sv[1]);
    cr_assert(sv[0] < 1e-40, "sigmoid(-100) = %g", sv[0]);
    cr_assert_eq(sv[6], 0.5);
    cr_assert_eq(pv[1], 100.0, "softplus(100) = %.17g", pv[1]);
    cr_assert_eq(pv[3], 1000.0, "softplus(1000) = %.17g", pv[3]);
    cr_assert(pv[0] < 1e-40, "softplus(-100) = %g", pv[0]);
    cr_assert(fabs(pv[6] - log(2.0)) < 1e-6, "softplus(0) = %.17g", pv[6]);
    cr_assert_eq(tv[3], 1.0);
    cr_assert_eq(tv[2], -1.0);
    free(sv);
    free(pv);
    free(tv);
    ct_tensor_free_n((ct_tensor *[]){x, s, p, t}, 4);
    /* sigmoid(10) in float32 is the guide's 0.9999546 */
    double ten = 10;
    x = make(ctx, dt, 0, NULL, &ten);
    OK(ct_sigmoid(x, &s));
    double v = ts_item(s);
    if (dt == CT_FLOAT32) cr_assert_eq((float)v, 0.9999546f, "sigmoid(10) = %.9g", v);
    else cr_assert(fabs(v - 0.9999546021312976) < 1e-15, "sigmoid(10) = %.17g", v);
    ct_tensor_free(s);
    ct_tensor_free(x);
    /* exp overflows to inf, log(0) is -inf, sqrt(-1) and log(-1) are nan */
    double sp[] = {1000, 0, -1};
    shape[0] = 3;
    x = make(ctx, dt, 1, shape, sp);
    ct_tensor *e = NULL, *l = NULL, *q = NULL;
    OK(ct_exp(x, &e));
    OK(ct_log(x, &l));
    OK(ct_sqrt(x, &q));
    double *ev = ts_read(e), *lv = ts_read(l), *qv = ts_read(q);
    cr_assert(isinf(ev[0]) && ev[0] > 0 && ev[1] == 1.0);
    cr_assert(isinf(lv[1]) && lv[1] < 0, "log(0) = %g", lv[1]);
    cr_assert(isnan(lv[2]) && isnan(qv[2]), "log(-1) = %g, sqrt(-1) = %g", lv[2], qv[2]);
    free(ev);
    free(lv);
    free(qv);
    ct_tensor_free_n((ct_tensor *[]){x, e, l, q}, 4);
  }
  ct_context_free(ctx);
}

/* round is half to even (as NumPy and TensorFlow); floor/ceil on negative halves. */
Test(unary, rounding_halves) {
  ct_context *ctx = ts_ctx();
  double in[] = {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, -3.51};
  double wr[] = {0, 2, 2, -0.0, -2, -2, 3, -4};
  double wf[] = {0, 1, 2, -1, -2, -3, 3, -4};
  double wc[] = {1, 2, 3, -0.0, -1, -2, 4, -3};
  int64_t shape[1] = {8};
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = di ? CT_FLOAT64 : CT_FLOAT32;
    if (!ts_has_dtype(ctx, dt)) continue;
    ct_tensor *x = make(ctx, dt, 1, shape, in), *r = NULL, *f = NULL, *c = NULL;
    OK(ct_round(x, &r));
    OK(ct_floor(x, &f));
    OK(ct_ceil(x, &c));
    check_values("round", dt, EXACT, r, wr, 8, in, NULL);
    check_values("floor", dt, EXACT, f, wf, 8, in, NULL);
    check_values("ceil", dt, EXACT, c, wc, 8, in, NULL);
    ct_tensor_free_n((ct_tensor *[]){x, r, f, c}, 4);
  }
  ct_context_free(ctx);
}

/* One large tensor (not a multiple of 256) through a few ops of each kind. */
Test(unary, large_1000003) {
  ct_context *ctx = ts_ctx();
  const int64_t n = 1000003;
  ts_rng_state = 99;
  int64_t shape[1] = {n};
  static const int picks[] = {4 /* sqrt */, 7 /* exp */, 15 /* sigmoid */, 23 /* round */};
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = di ? CT_FLOAT64 : CT_FLOAT32;
    if (!ts_has_dtype(ctx, dt)) continue;
    for (int k = 0; k < 4; ++k) {
      const unop *op = &UNOPS[picks[k]];
      double *in = gen(dt, n, op->lo, op->hi);
      double *want = malloc(sizeof(double) * (size_t)n);
      for (int64_t i = 0; i < n; ++i) want[i] = op->ref(in[i]);
      ct_tensor *x = make(ctx, dt, 1, shape, in), *y = NULL;
      OK(op->fn(x, &y));
      check_values(op->name, dt, op->cls, y, want, n, in, NULL);
      ct_tensor_free(y);
      ct_tensor_free(x);
      free(in);
      free(want);
    }
  }
  ct_context_free(ctx);
}

/* ---- binary --------------------------------------------------------------------------------- */
static void binary_inputs(const binop *op, ct_dtype dt, int64_t n, double **a, double **b) {
  if (op->cmp || dt == CT_INT32) {
    /* small integers so that equal pairs occur; comparisons also see a NaN */
    *a = gen(dt, n, -6, 6);
    *b = gen(dt, n, -6, 6);
    for (int64_t i = 0; i < n; ++i) {
      (*a)[i] = ts_to_dtype(dt, round((*a)[i] * (dt == CT_INT32 ? 1 : 2)) / (dt == CT_INT32 ? 1 : 2));
      (*b)[i] = ts_to_dtype(dt, round((*b)[i] * (dt == CT_INT32 ? 1 : 2)) / (dt == CT_INT32 ? 1 : 2));
    }
    if (op->cmp && dt != CT_INT32 && n > 5) {
      (*a)[3] = NAN;
      (*b)[5] = NAN;
    }
    if (strcmp(op->name, "div") == 0)
      for (int64_t i = 0; i < n; ++i)
        if ((*b)[i] == 0 && dt != CT_INT32) (*b)[i] = 3;
  } else if (strcmp(op->name, "pow") == 0) {
    *a = gen(dt, n, 0.05, 10);
    *b = gen(dt, n, -4, 4);
    /* negative bases with integral exponents are defined */
    for (int64_t i = 0; i + 7 < n; i += 7) {
      (*a)[i] = -(*a)[i];
      (*b)[i] = round((*b)[i]);
    }
  } else if (strcmp(op->name, "div") == 0) {
    *a = gen(dt, n, -1000, 1000);
    *b = gen(dt, n, 0.01, 100);
    for (int64_t i = 0; i < n; i += 2) (*b)[i] = -(*b)[i];
  } else {
    *a = gen(dt, n, -1000, 1000);
    *b = gen(dt, n, -1000, 1000);
    /* maximum and minimum see a NaN on either side */
    if ((strcmp(op->name, "maximum") == 0 || strcmp(op->name, "minimum") == 0) && n > 5) {
      (*a)[3] = NAN;
      (*b)[5] = NAN;
    }
  }
}

static double ref_binary(const binop *op, ct_dtype dt, double a, double b) {
  if (dt == CT_INT32) {
    int32_t x = (int32_t)a, y = (int32_t)b;
    if (strcmp(op->name, "div") == 0) return y == 0 ? 0 : (y == -1 ? (double)(int32_t)(0u - (uint32_t)x) : x / y);
    if (!op->cmp) return (double)(int32_t)(uint32_t)(int64_t)op->ref(a, b);
  }
  return op->ref(a, b);
}

static void binary_all(ct_dtype dt, int64_t n) {
  ct_context *ctx = ts_ctx();
  if (dt == CT_FLOAT64) ts_require_fp64(ctx);
  ts_rng_state = 777;
  int64_t shape[1] = {n};
  for (int k = 0; k < N_BINOPS; ++k) {
    const binop *op = &BINOPS[k];
    if (dt == CT_INT32 && strcmp(op->name, "pow") == 0) continue;
    double *a, *b;
    binary_inputs(op, dt, n, &a, &b);
    double *want = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; ++i) want[i] = ref_binary(op, dt, a[i], b[i]);
    ct_dtype odt = op->cmp ? CT_BOOL : dt;
    ct_tensor *ta = make(ctx, dt, 1, shape, a), *tb = make(ctx, dt, 1, shape, b), *y = NULL;
    OK(op->fn(ta, tb, &y));
    ts_assert_shape(y, 1, shape, op->name);
    cr_assert_eq(ct_tensor_dtype(y), odt, "%s: result dtype %s", op->name, ct_dtype_name(ct_tensor_dtype(y)));
    check_values(op->name, odt, op->cls, y, want, n, a, b);
    ct_tensor_free(y);
    /* tensor (op) scalar: the scalar is converted to the tensor's dtype */
    double s = ts_to_dtype(dt, strcmp(op->name, "pow") == 0 ? 1.5 : (op->cmp || dt == CT_INT32 ? 2 : -3.25));
    char what[64];
    snprintf(what, sizeof what, "%s_scalar", op->name);
    OK(op->fn_scalar(ta, s, &y));
    ts_assert_shape(y, 1, shape, what);
    for (int64_t i = 0; i < n; ++i) {
      want[i] = ref_binary(op, dt, a[i], s);
      if (strcmp(op->name, "pow") == 0 && a[i] < 0) want[i] = NAN;
    }
    check_values(what, odt, op->cls, y, want, n, a, NULL);
    ct_tensor_free(y);
    ct_tensor_free(tb);
    ct_tensor_free(ta);
    free(a);
    free(b);
    free(want);
  }
  ct_context_free(ctx);
}

Test(binary, float32_all_ops_1001) { binary_all(CT_FLOAT32, 1001); }
Test(binary, float64_all_ops_1001) { binary_all(CT_FLOAT64, 1001); }
Test(binary, int32_all_ops_777) { binary_all(CT_INT32, 777); }

/* rsub / rdiv: scalar on the left. */
Test(binary, reversed_scalar_forms) {
  ct_context *ctx = ts_ctx();
  ts_rng_state = 5;
  int64_t shape[2] = {3, 7};
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = dts[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    double *a = gen(dt, 21, 1, 50), want[21];
    a[4] = ts_to_dtype(dt, -7);
    ct_tensor *x = make(ctx, dt, 2, shape, a), *y = NULL;
    OK(ct_rsub_scalar(10, x, &y));
    ts_assert_shape(y, 2, shape, "rsub");
    for (int i = 0; i < 21; ++i) want[i] = 10 - a[i];
    check_values("rsub_scalar", dt, ARITH, y, want, 21, a, NULL);
    ct_tensor_free(y);
    OK(ct_rdiv_scalar(100, x, &y));
    for (int i = 0; i < 21; ++i) want[i] = dt == CT_INT32 ? (double)(100 / (int32_t)a[i]) : 100 / a[i];
    check_values("rdiv_scalar", dt, DIVLIKE, y, want, 21, a, NULL);
    ct_tensor_free(y);
    ct_tensor_free(x);
    free(a);
  }
  ct_context_free(ctx);
}

/* int32 division truncates toward zero, x/0 is 0 and INT_MIN/-1 wraps; nothing traps. */
Test(binary, int32_division_edges) {
  ct_context *ctx = ts_ctx();
  double a[] = {7, -7, 7, -7, 5, 0, -5, INT_MIN, INT_MIN, INT_MAX, 1};
  double b[] = {2, 2, -2, -2, 0, 0, 0, -1, 1, -1, INT_MIN};
  double want[] = {3, -3, -3, 3, 0, 0, 0, INT_MIN, INT_MIN, -INT_MAX, 0};
  int64_t shape[1] = {11};
  ct_tensor *x = make(ctx, CT_INT32, 1, shape, a), *y = make(ctx, CT_INT32, 1, shape, b), *q = NULL;
  OK(ct_div(x, y, &q));
  check_values("int div", CT_INT32, EXACT, q, want, 11, a, b);
  ct_tensor_free(q);
  /* scalar 0 divisor, both ways */
  OK(ct_div_scalar(x, 0, &q));
  double zeros[11] = {0};
  check_values("int div by scalar 0", CT_INT32, EXACT, q, zeros, 11, a, NULL);
  ct_tensor_free(q);
  OK(ct_rdiv_scalar(12, y, &q));
  double w2[] = {6, 6, -6, -6, 0, 0, 0, -12, 12, -12, 0};
  check_values("int rdiv", CT_INT32, EXACT, q, w2, 11, b, NULL);
  ct_tensor_free(q);
  ct_tensor_free(x);
  ct_tensor_free(y);
  /* the context still works afterwards */
  double v = 3;
  ct_tensor *s = make(ctx, CT_INT32, 0, NULL, &v), *sq = NULL;
  OK(ct_square(s, &sq));
  cr_assert_eq(ts_item(sq), 9.0);
  ct_tensor_free(sq);
  ct_tensor_free(s);
  ct_context_free(ctx);
}

/* Broadcasting: result shape and values against a host reference. */
typedef struct {
  int ra;
  int64_t sa[8];
  int rb;
  int64_t sb[8];
  int ro;
  int64_t so[8];
} bcase;

static const bcase BCASES[] = {
    {2, {3, 1}, 2, {1, 4}, 2, {3, 4}},
    {2, {1, 4}, 2, {3, 1}, 2, {3, 4}},
    {3, {2, 3, 4}, 1, {4}, 3, {2, 3, 4}},
    {1, {4}, 3, {2, 3, 4}, 3, {2, 3, 4}},
    {0, {0}, 2, {3, 5}, 2, {3, 5}},
    {2, {3, 5}, 0, {0}, 2, {3, 5}},
    {1, {1}, 1, {5}, 1, {5}},
    {1, {5}, 1, {1}, 1, {5}},
    {3, {2, 1, 3}, 2, {4, 1}, 3, {2, 4, 3}},
    {3, {5, 1, 1}, 3, {1, 1, 7}, 3, {5, 1, 7}},
    {2, {0, 3}, 2, {1, 3}, 2, {0, 3}},
    {1, {0}, 0, {0}, 1, {0}},
    {0, {0}, 0, {0}, 0, {0}},
    {8, {2, 1, 2, 1, 2, 1, 2, 1}, 8, {1, 2, 1, 2, 1, 2, 1, 3}, 8, {2, 2, 2, 2, 2, 2, 2, 3}},
    {8, {2, 1, 2, 1, 2, 1, 2, 3}, 3, {2, 1, 3}, 8, {2, 1, 2, 1, 2, 2, 2, 3}},
    {4, {1, 1, 1, 1}, 2, {3, 1}, 4, {1, 1, 3, 1}},
};

static void broadcast_cases(ct_dtype dt) {
  ct_context *ctx = ts_ctx();
  if (dt == CT_FLOAT64) ts_require_fp64(ctx);
  ts_rng_state = 31;
  for (size_t c = 0; c < sizeof BCASES / sizeof *BCASES; ++c) {
    const bcase *bc = &BCASES[c];
    int64_t na = ts_numel(bc->ra, bc->sa), nb = ts_numel(bc->rb, bc->sb), no = ts_numel(bc->ro, bc->so);
    double *a = gen(dt, na, -20, 20), *b = gen(dt, nb, 1, 20);
    ct_tensor *ta = make(ctx, dt, bc->ra, bc->sa, a), *tb = make(ctx, dt, bc->rb, bc->sb, b);
    double *want = malloc(sizeof(double) * (size_t)(no ? no : 1)), *ia = malloc(sizeof(double) * (size_t)(no ? no : 1)),
           *ib = malloc(sizeof(double) * (size_t)(no ? no : 1));
    for (int k = 0; k < N_BINOPS; ++k) {
      const binop *op = &BINOPS[k];
      if (dt == CT_INT32 && strcmp(op->name, "pow") == 0) continue;
      for (int64_t i = 0; i < no; ++i) {
        ia[i] = a[bcast_index(i, bc->ro, bc->so, bc->ra, bc->sa)];
        ib[i] = b[bcast_index(i, bc->ro, bc->so, bc->rb, bc->sb)];
        want[i] = ref_binary(op, dt, ia[i], ib[i]);
      }
      ct_tensor *y = NULL;
      OK(op->fn(ta, tb, &y));
      char what[96];
      snprintf(what, sizeof what, "%s broadcast case %zu", op->name, c);
      ts_assert_shape(y, bc->ro, bc->so, what);
      check_values(what, op->cmp ? CT_INT32 : dt, op->cls, y, want, no, ia, ib);
      ct_tensor_free(y);
    }
    ct_tensor_free(ta);
    ct_tensor_free(tb);
    free(a);
    free(b);
    free(want);
    free(ia);
    free(ib);
  }
  ct_context_free(ctx);
}

Test(broadcast, float32_cases) { broadcast_cases(CT_FLOAT32); }
Test(broadcast, float64_cases) { broadcast_cases(CT_FLOAT64); }
Test(broadcast, int32_cases) { broadcast_cases(CT_INT32); }

/* A large broadcast: (1000003,) + (1,) + (1000003,) * scalar, and (1000, 1) x (1, 1001). */
Test(broadcast, large) {
  ct_context *ctx = ts_ctx();
  ts_rng_state = 8;
  const int64_t n = 1000003;
  int64_t shape[1] = {n}, one[1] = {1};
  double *a = gen(CT_FLOAT32, n, -5, 5), bias = 0.25;
  ct_tensor *x = make(ctx, CT_FLOAT32, 1, shape, a), *b = make(ctx, CT_FLOAT32, 1, one, &bias), *y = NULL, *z = NULL;
  OK(ct_add(x, b, &y));
  OK(ct_mul(y, x, &z));
  double *want = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; ++i) want[i] = (double)((float)(a[i] + 0.25)) * a[i];
  check_values("(x + b) * x", CT_FLOAT32, ARITH, z, want, n, a, NULL);
  ct_tensor_free_n((ct_tensor *[]){x, b, y, z}, 4);
  free(a);
  free(want);
  int64_t sa[2] = {1000, 1}, sb[2] = {1, 1001};
  const ct_dtype fdt = ts_best_float(ctx); /* float64; float32 on a device without it */
  double *va = gen(fdt, 1000, -1, 1), *vb = gen(fdt, 1001, -1, 1);
  x = make(ctx, fdt, 2, sa, va);
  b = make(ctx, fdt, 2, sb, vb);
  OK(ct_sub(x, b, &y));
  want = malloc(sizeof(double) * 1001000);
  for (int i = 0; i < 1000; ++i)
    for (int j = 0; j < 1001; ++j) want[i * 1001 + j] = va[i] - vb[j];
  int64_t so[2] = {1000, 1001};
  ts_assert_shape(y, 2, so, "outer difference");
  check_values("outer difference", fdt, ARITH, y, want, 1001000, NULL, NULL);
  ct_tensor_free_n((ct_tensor *[]){x, b, y}, 3);
  free(va);
  free(vb);
  free(want);
  ct_context_free(ctx);
}

/* ---- where ---------------------------------------------------------------------------------- */
Test(where, masks_dtypes_and_broadcasting) {
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = dts[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    /* same shapes, int32 mask */
    double c[] = {1, 0, 5, 0, -1, 0}, a[] = {1, 2, 3, 4, 5, 6}, b[] = {-1, -2, -3, -4, -5, -6};
    double w[] = {1, -2, 3, -4, 5, -6};
    int64_t s6[1] = {6};
    ct_tensor *tc = make(ctx, CT_INT32, 1, s6, c), *ta = make(ctx, dt, 1, s6, a), *tb = make(ctx, dt, 1, s6, b),
              *y = NULL;
    OK(ct_where(tc, ta, tb, &y));
    ts_assert_shape(y, 1, s6, "where");
    cr_assert_eq(ct_tensor_dtype(y), dt);
    check_values("where", dt, EXACT, y, w, 6, c, NULL);
    ct_tensor_free(y);
    ct_tensor_free(tc);
    /* float condition: nonzero (and NaN) is true */
    double cf[] = {0.5, 0, -0.0, NAN, 1e-30, 0};
    double wf[] = {1, -2, -3, 4, 5, -6};
    for (int ci = 0; ci < 2; ++ci) {
      ct_dtype cdt = ci ? CT_FLOAT64 : CT_FLOAT32;
      if (!ts_has_dtype(ctx, cdt)) continue;
      tc = make(ctx, cdt, 1, s6, cf);
      OK(ct_where(tc, ta, tb, &y));
      check_values("where (float cond)", dt, EXACT, y, wf, 6, cf, NULL);
      ct_tensor_free(y);
      ct_tensor_free(tc);
    }
    ct_tensor_free(ta);
    ct_tensor_free(tb);
    /* broadcasting all three: cond (3,1), a (1,4), b scalar */
    double c3[] = {1, 0, 1}, a4[] = {10, 20, 30, 40}, bs = -1;
    int64_t sc[2] = {3, 1}, sa[2] = {1, 4};
    tc = make(ctx, CT_INT32, 2, sc, c3);
    ta = make(ctx, dt, 2, sa, a4);
    tb = make(ctx, dt, 0, NULL, &bs);
    OK(ct_where(tc, ta, tb, &y));
    int64_t so[2] = {3, 4};
    ts_assert_shape(y, 2, so, "where broadcast");
    double wb[] = {10, 20, 30, 40, -1, -1, -1, -1, 10, 20, 30, 40};
    check_values("where broadcast", dt, EXACT, y, wb, 12, NULL, NULL);
    ct_tensor_free(y);
    /* the condition alone sets the rank: scalar a and b against a (2,2,1) mask */
    ct_tensor *tc2 = NULL, *as = NULL;
    int64_t s221[3] = {2, 2, 1};
    double c4[] = {0, 1, 1, 0};
    tc2 = make(ctx, CT_INT32, 3, s221, c4);
    double av = 7;
    as = make(ctx, dt, 0, NULL, &av);
    OK(ct_where(tc2, as, tb, &y));
    ts_assert_shape(y, 3, s221, "where scalar branches");
    double w4[] = {-1, 7, 7, -1};
    check_values("where scalar branches", dt, EXACT, y, w4, 4, NULL, NULL);
    ct_tensor_free_n((ct_tensor *[]){y, tc2, as, tc, ta, tb}, 6);
    /* empty */
    int64_t s0[2] = {0, 4};
    tc = make(ctx, CT_INT32, 2, s0, NULL);
    ta = make(ctx, dt, 2, sa, a4);
    tb = make(ctx, dt, 0, NULL, &bs);
    OK(ct_where(tc, ta, tb, &y));
    ts_assert_shape(y, 2, s0, "where empty");
    ct_tensor_free_n((ct_tensor *[]){y, tc, ta, tb}, 4);
  }
  /* a large one */
  const int64_t n = 1000003;
  int64_t sn[1] = {n};
  ts_rng_state = 3;
  double *c = gen(CT_FLOAT32, n, -1, 1), *a = gen(CT_FLOAT32, n, -9, 9), zero = 0;
  ct_tensor *tc = make(ctx, CT_FLOAT32, 1, sn, c), *ta = make(ctx, CT_FLOAT32, 1, sn, a), *tz = NULL, *m = NULL,
            *y = NULL;
  tz = make(ctx, CT_FLOAT32, 0, NULL, &zero);
  OK(ct_greater_scalar(tc, 0, &m));
  OK(ct_where(m, ta, tz, &y));
  double *want = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; ++i) want[i] = c[i] > 0 ? a[i] : 0;
  check_values("where large", CT_FLOAT32, EXACT, y, want, n, c, a);
  ct_tensor_free_n((ct_tensor *[]){tc, ta, tz, m, y}, 5);
  free(c);
  free(a);
  free(want);
  ct_context_free(ctx);
}

/* ---- cast ----------------------------------------------------------------------------------- */
static double ref_cast(double v, ct_dtype to) {
  if (to == CT_INT32) return isnan(v) ? 0 : v >= 2147483647.0 ? 2147483647.0 : v <= -2147483648.0 ? -2147483648.0 : trunc(v);
  if (to == CT_FLOAT32) return (double)(float)v;
  return v;
}

Test(cast, all_dtype_pairs) {
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  double vals[] = {0,   1,    -1,        2.5,        -2.5,       2.7,        -2.7,     1e-8,     16777217.0,
                   0.1, -0.0, 123456.78, 2147483520, -2147483648, 1.0000001, 3.999999, -1e5 - 0.5};
  const int n = (int)(sizeof vals / sizeof *vals);
  int64_t shape[2] = {1, n};
  for (int fi = 0; fi < 3; ++fi)
    for (int ti = 0; ti < 3; ++ti) {
      ct_dtype from = dts[fi], to = dts[ti];
      if (!ts_has_dtype(ctx, from) || !ts_has_dtype(ctx, to)) continue;
      double in[32], want[32];
      for (int i = 0; i < n; ++i) {
        in[i] = ts_to_dtype(from, vals[i]);
        want[i] = ref_cast(in[i], to);
      }
      ct_tensor *x = make(ctx, from, 2, shape, in), *y = NULL;
      OK(ct_cast(x, to, &y));
      cr_assert_eq(ct_tensor_dtype(y), to);
      ts_assert_shape(y, 2, shape, "cast");
      char what[64];
      snprintf(what, sizeof what, "cast %s -> %s", ct_dtype_name(from), ct_dtype_name(to));
      check_values(what, to, EXACT, y, want, n, in, NULL);
      ct_tensor_free(y);
      /* 0-d and empty */
      double v = in[3];
      ct_tensor *s = make(ctx, from, 0, NULL, &v);
      OK(ct_cast(s, to, &y));
      cr_assert_eq(ct_tensor_rank(y), 0);
      cr_assert_eq(ts_item(y), ref_cast(v, to), "%s of %g", what, v);
      ct_tensor_free(y);
      ct_tensor_free(s);
      int64_t e[1] = {0};
      s = make(ctx, from, 1, e, NULL);
      OK(ct_cast(s, to, &y));
      ts_assert_shape(y, 1, e, what);
      cr_assert_eq(ct_tensor_dtype(y), to);
      ct_tensor_free(y);
      ct_tensor_free(s);
      ct_tensor_free(x);
    }
  /* float64 -> float32 rounds to nearest: exact halfway points of float32 go to even */
  double h[] = {1.0 + 0x1p-24, 1.0 + 3 * 0x1p-24, 1.0 + 0x1p-24 + 0x1p-40};
  double wh[] = {1.0, 1.0 + 4 * 0x1p-24, 1.0 + 2 * 0x1p-24};
  int64_t s3[1] = {3};
  ct_tensor *x = NULL, *y = NULL;
  if (ts_has_fp64(ctx)) {
    x = make(ctx, CT_FLOAT64, 1, s3, h);
    OK(ct_cast(x, CT_FLOAT32, &y));
    check_values("f64->f32 rounding", CT_FLOAT32, EXACT, y, wh, 3, h, NULL);
    ct_tensor_free(y);
    ct_tensor_free(x);
  }
  /* a large cast */
  const int64_t big = 1000003;
  int64_t sb[1] = {big};
  ts_rng_state = 4;
  const ct_dtype fdt = ts_best_float(ctx); /* float64; float32 on a device without it */
  double *v = gen(fdt, big, -1e6, 1e6), *want = malloc(sizeof(double) * (size_t)big);
  for (int64_t i = 0; i < big; ++i) want[i] = ref_cast(v[i], CT_INT32);
  x = make(ctx, fdt, 1, sb, v);
  OK(ct_cast(x, CT_INT32, &y));
  check_values("large float->i32", CT_INT32, EXACT, y, want, big, v, NULL);
  ct_tensor_free(y);
  ct_tensor_free(x);
  free(v);
  free(want);
  ct_context_free(ctx);
}

/* ---- NaN ----------------------------------------------------------------------------------- */
/* NaN propagates as in NumPy and TensorFlow: relu(NaN), sign(NaN), maximum(NaN, 1),
 * maximum(1, NaN), minimum likewise, the max / min reductions are NaN; argmax / argmin point at
 * the first NaN. Gradients follow TensorFlow's: maximum's goes to the other operand where one is
 * NaN (TensorFlow's mask x >= y is false), abs' and relu's are NaN at NaN (dy * sign). */
static ct_tensor *grad_of(ct_tensor *x, ct_status (*f)(const ct_tensor *, ct_tensor **)) {
  ct_tape *tape = NULL;
  ct_tensor *y = NULL, *g = NULL;
  OK(ct_tape_begin(ct_tensor_context(x), NULL, &tape));
  OK(ct_tape_watch(tape, x));
  OK(f(x, &y));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient(tape, &y, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, &g));
  ct_tape_free(tape);
  ct_tensor_free(y);
  return g;
}
static ct_status max_with_1(const ct_tensor *x, ct_tensor **y) { return ct_maximum_scalar(x, 1.0, y); }
static ct_status min_with_1(const ct_tensor *x, ct_tensor **y) { return ct_minimum_scalar(x, 1.0, y); }
static ct_status max_all(const ct_tensor *x, ct_tensor **y) { return ct_max(x, NULL, 0, false, y); }

Test(nan, propagates_through_relu_sign_maximum_minimum_and_reductions) {
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64};
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = dts[di];
    if (dt == CT_FLOAT64 && !info.fp64) continue;
    const char *dn = ct_dtype_name(dt);
    double in[] = {NAN, -2, 0, 3};
    int64_t shape[1] = {4};
    ct_tensor *x = make(ctx, dt, 1, shape, in), *one = NULL, *y = NULL;
    OK(ct_fill(ctx, dt, 1, shape, 1.0, &one));
    struct {
      const char *name;
      ct_status (*f)(const ct_tensor *, ct_tensor **);
      double want[4];
    } un[] = {{"relu", ct_relu, {NAN, 0, 0, 3}},          {"sign", ct_sign, {NAN, -1, 0, 1}},
              {"abs", ct_abs, {NAN, 2, 0, 3}},            {"elu", ct_elu, {NAN, expm1(-2.0), 0, 3}},
              {"maximum(x, 1)", max_with_1, {NAN, 1, 1, 3}}, {"minimum(x, 1)", min_with_1, {NAN, -2, 0, 1}}};
    for (size_t k = 0; k < sizeof un / sizeof *un; ++k) {
      OK(un[k].f(x, &y));
      char what[64];
      snprintf(what, sizeof what, "%s %s", dn, un[k].name);
      ts_assert_close(y, un[k].want, 4, 1e-6, 1e-6, what);
      ct_tensor_free(y);
    }
    /* NaN as either operand of maximum / minimum, tensor and scalar forms */
    double want_max_a[] = {NAN, 1, 1, 3}, want_min_a[] = {NAN, -2, 0, 1};
    OK(ct_maximum(one, x, &y));
    ts_assert_close(y, want_max_a, 4, 0, 0, "maximum(1, x)");
    ct_tensor_free(y);
    OK(ct_minimum(one, x, &y));
    ts_assert_close(y, want_min_a, 4, 0, 0, "minimum(1, x)");
    ct_tensor_free(y);
    ct_tensor *s = NULL;
    OK(ct_scalar(ctx, dt, NAN, &s));
    double all_nan[] = {NAN, NAN, NAN, NAN};
    OK(ct_maximum(x, s, &y));
    ts_assert_close(y, all_nan, 4, 0, 0, "maximum(x, NaN)");
    ct_tensor_free(y);
    OK(ct_minimum(s, x, &y));
    ts_assert_close(y, all_nan, 4, 0, 0, "minimum(NaN, x)");
    ct_tensor_free(y);
    ct_tensor_free(s);
    /* reductions: NaN wherever one is in the reduced part; argmax / argmin give its index */
    ct_status (*red[])(const ct_tensor *, const int *, int, bool, ct_tensor **) = {ct_max, ct_min, ct_sum, ct_prod};
    for (int r = 0; r < 4; ++r) {
      OK(red[r](x, NULL, 0, false, &y));
      cr_assert(isnan(ts_item(y)), "%s reduction %d of a tensor with a NaN: %g", dn, r, ts_item(y));
      ct_tensor_free(y);
    }
    double in2[] = {1, 5, NAN, 2};
    ct_tensor *x2 = make(ctx, dt, 1, shape, in2);
    OK(ct_argmax(x2, 0, &y));
    cr_assert_eq(ts_item(y), 2, "argmax points at the NaN");
    ct_tensor_free(y);
    OK(ct_argmin(x2, 0, &y));
    cr_assert_eq(ts_item(y), 2, "argmin points at the NaN");
    ct_tensor_free(y);
    ct_tensor_free(x2);
    /* gradients */
    ct_tensor *g = grad_of(x, max_with_1);
    double gmax[] = {0, 0, 0, 1}; /* TensorFlow: dy where x >= 1, which NaN is not */
    ts_assert_close(g, gmax, 4, 0, 0, "d maximum(x, 1) / dx");
    ct_tensor_free(g);
    g = grad_of(x, min_with_1);
    double gmin[] = {0, 1, 1, 0};
    ts_assert_close(g, gmin, 4, 0, 0, "d minimum(x, 1) / dx");
    ct_tensor_free(g);
    g = grad_of(x, ct_abs);
    double gabs[] = {NAN, -1, 0, 1}; /* dy * sign(x) */
    ts_assert_close(g, gabs, 4, 0, 0, "d abs / dx");
    ct_tensor_free(g);
    g = grad_of(x, ct_relu);
    double grelu[] = {NAN, 0, 0, 1};
    ts_assert_close(g, grelu, 4, 0, 0, "d relu / dx");
    ct_tensor_free(g);
    g = grad_of(x, max_all);
    ts_assert_close(g, all_nan, 4, 0, 0, "d max(x) / dx (0 / 0: no element equals NaN)");
    ct_tensor_free(g);
    g = grad_of(x, ct_elu);
    double gelu[] = {NAN, exp(-2.0), 1, 1}; /* dy (min(y, 0) + 1) */
    ts_assert_close(g, gelu, 4, 1e-6, 1e-6, "d elu / dx");
    ct_tensor_free(g);
    /* rows: softmax and logsumexp are NaN in the row with the NaN only */
    double rows[] = {NAN, 1, 2, 3};
    ct_tensor *m = make(ctx, dt, 2, (int64_t[]){2, 2}, rows);
    OK(ct_softmax(m, 1, &y));
    double *sv = ts_read(y);
    cr_assert(isnan(sv[0]) && isnan(sv[1]) && fabs(sv[2] + sv[3] - 1) < 1e-6, "%s softmax rows", dn);
    free(sv);
    ct_tensor_free(y);
    OK(ct_logsumexp(m, (const int[]){1}, 1, false, &y));
    sv = ts_read(y);
    cr_assert(isnan(sv[0]) && fabs(sv[1] - (3 + log1p(exp(-1.0)))) < 1e-6, "%s logsumexp rows: %g %g", dn, sv[0], sv[1]);
    free(sv);
    ct_tensor_free(y);
    ct_tensor_free(m);
    ct_tensor_free(x);
    ct_tensor_free(one);
  }
  ct_context_free(ctx);
}
