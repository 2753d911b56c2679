/*
 * kernel_families.c — every kernel family of the kernels/ sources launched on tiny odd shapes and checked
 * against host references: elementwise unary ops, binary ops in all four variants (same shape,
 * scalar right, scalar left, general broadcasting), where, cast, fill, iota, reductions (the
 * per-column and the work-group "rows" kernels), argmax/argmin, argsort, strided copies, gather and its
 * gradient, one_hot, a user-defined op, matrix products (on the engine in force, host/tune.c: with
 * the context's tile, then with other tiles from a tuning store) and, with include/cltape_nn.h, the
 * neural-network kernels (convolution and both backprops, pooling and its gradients, dropout,
 * softmax cross-entropy and its gradient, the optimizers), and the gradient checker (ct_gradcheck)
 * on a few representative ops, in float64 and in float32 mode. scripts/reliability.sh runs the matrix
 * products with CLTAPE_MATMUL=tiled under oclgrind, so that the simulator checks the tiled kernels
 * of kernels/matmul.cl; CLBlast's kernels stay out there (large and slow to simulate, and
 * CLBlast's own). KERNEL_FAMILIES_MATMUL=0 leaves the matrix products out (and the convolutions
 * run as matrix products or by Winograd's transforms, families conv_gemm and conv_winograd).
 *
 * Two uses: under oclgrind (scripts/reliability.sh builds this file with oclgrind_keep_buffers.c
 * as a program and runs it with --data-races --uniform-writes --check-api, then with
 * --uninitialized; any report fails CI), and in the test suite (tests/test_kernel_families.c
 * includes it) on the default device.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cltape.h"
#include "ct_host.h" /* ctb_gemm, the tile plans and the tuning store (kf_matmul) */
#include "ct_internal.h" /* tensors' buffers */
#if defined(__has_include)
#if __has_include("cltape_nn.h")
#include "cltape_nn.h"
#include "nn/nn_internal.h" /* ct__conv2d_bias_act: the Conv2D layer's fused rows */
#define KF_NN 1
#endif
#endif
#ifndef KF_NN
#define KF_NN 0
#endif

static int kf_failures, kf_checks;

#define KF_FAIL(...)                         \
  do {                                       \
    kf_failures++;                           \
    fprintf(stderr, "kernel families: ");    \
    fprintf(stderr, __VA_ARGS__);            \
    fputc('\n', stderr);                     \
  } while (0)
/* A call that must succeed; on failure the family stops (goto out). */
#define KF_OK(call)                                                                                 \
  do {                                                                                              \
    ct_status kf_s_ = (call);                                                                       \
    if (kf_s_ != CT_OK) {                                                                           \
      KF_FAIL("%s:%d: %s -> %s: %s", __FILE__, __LINE__, #call, ct_status_name(kf_s_), ct_errmsg()); \
      goto out;                                                                                     \
    }                                                                                               \
  } while (0)

static const ct_dtype KF_DTS[3] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
/* whether the device has float64 (set by kf_run): the families check the dtypes it has */
static bool kf_fp64 = true;

static ct_tensor *kf_tensor(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *v) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  unsigned char *h = calloc((size_t)(n ? n : 1), 8);
  for (int64_t i = 0; h && i < n; ++i) {
    if (dt == CT_FLOAT32) ((float *)h)[i] = (float)v[i];
    else if (dt == CT_FLOAT64) ((double *)h)[i] = v[i];
    else ((int32_t *)h)[i] = (int32_t)v[i];
  }
  ct_tensor *t = NULL;
  ct_status s = h ? ct_tensor_from_data(ctx, dt, rank, shape, h, &t) : CT_ERR_OUT_OF_MEMORY;
  free(h);
  if (s != CT_OK) KF_FAIL("creating a tensor: %s", ct_errmsg());
  return t;
}

/* Values of a pattern that avoids ties and zeros: k-th value in [lo, hi]. */
static void kf_values(double *v, int64_t n, double lo, double hi, bool integral) {
  for (int64_t k = 0; k < n; ++k) {
    double f = (double)((k * 7919 + 13) % 101) / 100.0; /* a permutation-like walk of [0, 1] */
    v[k] = lo + (hi - lo) * f;
    if (integral) v[k] = floor(v[k]);
  }
}

/* Compares a tensor with host values; tolerance by dtype. */
static void kf_expect(const char *what, const ct_tensor *t, const double *want, int64_t n, double tol32) {
  kf_checks++;
  if (!t) {
    KF_FAIL("%s: no tensor", what);
    return;
  }
  if (ct_tensor_size(t) != n) {
    KF_FAIL("%s: %lld elements, wanted %lld", what, (long long)ct_tensor_size(t), (long long)n);
    return;
  }
  double *got = malloc(sizeof(double) * (size_t)(n ? n : 1));
  if (!got || ct_tensor_read_f64(t, got, n) != CT_OK) {
    KF_FAIL("%s: read back failed: %s", what, ct_errmsg());
    free(got);
    return;
  }
  ct_dtype dt = ct_tensor_dtype(t);
  double rtol = dt == CT_FLOAT32   ? tol32
                : dt == CT_FLOAT64 ? 1e-12
                                   : 0,
         atol = dt == CT_FLOAT32   ? tol32
                : dt == CT_FLOAT64 ? 1e-12
                                   : 0;
  for (int64_t i = 0; i < n; ++i) {
    bool ok =
        (isnan(got[i]) && isnan(want[i])) || got[i] == want[i] || fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i]);
    if (!ok) {
      KF_FAIL("%s [%s]: element %lld is %.17g, wanted %.17g", what, ct_dtype_name(dt), (long long)i, got[i], want[i]);
      break;
    }
  }
  free(got);
}

/* ---- elementwise ------------------------------------------------------------------------------ */
typedef struct {
  const char *name;
  ct_status (*fn)(const ct_tensor *, ct_tensor **);
  double (*ref)(double);
  double lo, hi;
  bool ints;
} kf_unop;
static double r_neg(double x) { return -x; }
static double r_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x; } /* NaN stays NaN */
static double r_square(double x) { return x * x; }
static double r_rsqrt(double x) { return 1 / sqrt(x); }
static double r_recip(double x) { return 1 / x; }
static double r_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double r_softplus(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }
static double r_relu(double x) { return x < 0 ? 0 : x; } /* NaN stays NaN */
static double r_elu(double x) { return x > 0 ? x : expm1(x); }
static double r_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static const kf_unop KF_UNOPS[] = {
    {"neg", ct_neg, r_neg, -9, 9, true},        {"abs", ct_abs, fabs, -9, 9, true},
    {"sign", ct_sign, r_sign, -9, 9, true},     {"square", ct_square, r_square, -9, 9, true},
    {"sqrt", ct_sqrt, sqrt, 0.1, 9, false},     {"rsqrt", ct_rsqrt, r_rsqrt, 0.1, 9, false},
    {"reciprocal", ct_reciprocal, r_recip, 0.5, 9, false},
    {"exp", ct_exp, exp, -3, 3, false},         {"expm1", ct_expm1, expm1, -3, 3, false},
    {"log", ct_log, log, 0.1, 9, false},        {"log1p", ct_log1p, log1p, -0.5, 9, false},
    {"sin", ct_sin, sin, -3, 3, false},         {"cos", ct_cos, cos, -3, 3, false},
    {"tan", ct_tan, tan, -1.2, 1.2, false},     {"tanh", ct_tanh, tanh, -3, 3, false},
    {"sigmoid", ct_sigmoid, r_sigmoid, -5, 5, false},
    {"softplus", ct_softplus, r_softplus, -5, 5, false},
    {"relu", ct_relu, r_relu, -3, 3, false},    {"elu", ct_elu, r_elu, -3, 3, false},
    {"gelu", ct_gelu, r_gelu, -3, 3, false},    {"erf", ct_erf, erf, -2, 2, false},
    {"floor", ct_floor, floor, -3, 3, false},   {"ceil", ct_ceil, ceil, -3, 3, false},
    {"round", ct_round, nearbyint, -3.3, 3.3, false},
};

static void kf_unary(ct_context *ctx) {
  int64_t shape[2] = {3, 5};
  double x[15], want[15];
  for (size_t k = 0; k < sizeof KF_UNOPS / sizeof *KF_UNOPS; ++k) {
    const kf_unop *u = &KF_UNOPS[k];
    for (int d = 0; d < 3; ++d) {
      if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
      ct_dtype dt = KF_DTS[d];
      if (dt == CT_INT32 && !u->ints) continue;
      kf_values(x, 15, u->lo, u->hi, dt == CT_INT32);
      for (int i = 0; i < 15; ++i) {
        if (dt == CT_FLOAT32) x[i] = (float)x[i];
        want[i] = u->ref(x[i]);
      }
      ct_tensor *t = kf_tensor(ctx, dt, 2, shape, x), *y = NULL;
      KF_OK(u->fn(t, &y));
      kf_expect(u->name, y, want, 15, 4e-6);
    out:
      ct_tensor_free(y);
      ct_tensor_free(t);
    }
  }
}

typedef struct {
  const char *name;
  ct_status (*fn)(const ct_tensor *, const ct_tensor *, ct_tensor **);
  double (*ref)(double, double);
  bool ints, positive_b;
} kf_binop;
static double r_add(double a, double b) { return a + b; }
static double r_sub(double a, double b) { return a - b; }
static double r_mul(double a, double b) { return a * b; }
static double r_div(double a, double b) { return a / b; }
static double r_max(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }
static double r_min(double a, double b) { return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }
static double r_gt(double a, double b) { return a > b; }
static double r_ge(double a, double b) { return a >= b; }
static double r_lt(double a, double b) { return a < b; }
static double r_le(double a, double b) { return a <= b; }
static double r_eq(double a, double b) { return a == b; }
static double r_ne(double a, double b) { return a != b; }
static const kf_binop KF_BINOPS[] = {
    {"add", ct_add, r_add, true, false},           {"sub", ct_sub, r_sub, true, false},
    {"mul", ct_mul, r_mul, true, false},           {"div", ct_div, r_div, true, true},
    {"pow", ct_pow, pow, false, true},             {"maximum", ct_maximum, r_max, true, false},
    {"minimum", ct_minimum, r_min, true, false},   {"greater", ct_greater, r_gt, true, false},
    {"greater_equal", ct_greater_equal, r_ge, true, false},
    {"less", ct_less, r_lt, true, false},          {"less_equal", ct_less_equal, r_le, true, false},
    {"equal", ct_equal, r_eq, true, false},        {"not_equal", ct_not_equal, r_ne, true, false},
};

/* The four kernel variants: shapes that select each (lib/ops.c fwd_binary). */
typedef struct {
  const char *variant;
  int ra, rb;
  int64_t sa[3], sb[3];
} kf_bshape;
static const kf_bshape KF_BSHAPES[] = {
    {"same shape", 2, 2, {3, 5}, {3, 5}},
    {"scalar b", 2, 0, {3, 5}, {0}},
    {"scalar a", 0, 2, {0}, {3, 5}},
    {"broadcast", 2, 2, {3, 1}, {1, 5}},
    {"broadcast rank 3", 3, 2, {2, 3, 1}, {3, 5}},
};

static void kf_binary(ct_context *ctx) {
  double a[30], b[30], want[30];
  for (size_t k = 0; k < sizeof KF_BINOPS / sizeof *KF_BINOPS; ++k) {
    const kf_binop *op = &KF_BINOPS[k];
    for (int d = 0; d < 3; ++d) {
      if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
      ct_dtype dt = KF_DTS[d];
      if (dt == CT_INT32 && !op->ints) continue;
      for (size_t v = 0; v < sizeof KF_BSHAPES / sizeof *KF_BSHAPES; ++v) {
        const kf_bshape *bs = &KF_BSHAPES[v];
        int64_t na = 1, nb = 1, shape[3];
        for (int i = 0; i < bs->ra; ++i) na *= bs->sa[i];
        for (int i = 0; i < bs->rb; ++i) nb *= bs->sb[i];
        kf_values(a, na, -4, 4, dt == CT_INT32);
        kf_values(b, nb, op->positive_b ? 0.5 : -4, 4, dt == CT_INT32);
        for (int i = 0; i < nb; ++i) {
          if (i % 4 == 1 && i < na) b[i] = a[i]; /* some equal pairs for the comparisons */
          if (op->positive_b && b[i] <= 0) b[i] = 3;
        }
        for (int i = 0; i < 30; ++i) {
          if (dt == CT_FLOAT32) a[i] = (float)a[i], b[i] = (float)b[i];
        }
        /* the reference, broadcast by hand */
        int r = bs->ra > bs->rb ? bs->ra : bs->rb;
        int64_t n = 1;
        for (int dd = 0; dd < r; ++dd) {
          int ia = dd - (r - bs->ra), ib = dd - (r - bs->rb);
          int64_t ea = ia >= 0 ? bs->sa[ia] : 1, eb = ib >= 0 ? bs->sb[ib] : 1;
          shape[dd] = ea > eb ? ea : eb;
          n *= shape[dd];
        }
        for (int64_t i = 0; i < n; ++i) {
          int64_t rem = i, oa = 0, ob = 0, sta = 1, stb = 1;
          for (int dd = r - 1; dd >= 0; --dd) {
            int64_t c = rem % shape[dd];
            rem /= shape[dd];
            int ia = dd - (r - bs->ra), ib = dd - (r - bs->rb);
            if (ia >= 0) {
              if (bs->sa[ia] > 1) oa += c * sta;
              sta *= bs->sa[ia];
            }
            if (ib >= 0) {
              if (bs->sb[ib] > 1) ob += c * stb;
              stb *= bs->sb[ib];
            }
          }
          double x = op->ref(a[oa], b[ob]);
          if (dt == CT_INT32 && op->fn == ct_div) x = trunc(a[oa] / b[ob]);
          if (dt == CT_FLOAT32) x = (float)x;
          want[i] = x;
        }
        ct_tensor *ta = kf_tensor(ctx, dt, bs->ra, bs->sa, a), *tb = kf_tensor(ctx, dt, bs->rb, bs->sb, b), *y = NULL;
        char what[96];
        snprintf(what, sizeof what, "%s, %s", op->name, bs->variant);
        KF_OK(op->fn(ta, tb, &y));
        kf_expect(what, y, want, n, 4e-6);
      out:
        ct_tensor_free(y);
        ct_tensor_free(ta);
        ct_tensor_free(tb);
      }
    }
  }
}

/* where (general broadcasting of three operands), cast between every pair, fill, iota */
static void kf_select_cast_fill(ct_context *ctx) {
  ct_tensor *c = NULL, *cf = NULL, *a = NULL, *b = NULL, *y = NULL, *x = NULL, *z = NULL;
  double cv[3] = {1, 0, 1}, av[5], bv[15], want[15];
  kf_values(av, 5, -3, 3, false);
  kf_values(bv, 15, -2, 2, false);
  for (int d = 0; d < 3; ++d) {
    if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
    ct_dtype dt = KF_DTS[d];
    c = kf_tensor(ctx, CT_INT32, 2, (int64_t[]){3, 1}, cv);
    cf = kf_tensor(ctx, kf_fp64 ? CT_FLOAT64 : CT_FLOAT32, 2, (int64_t[]){3, 1}, cv);
    a = kf_tensor(ctx, dt, 2, (int64_t[]){1, 5}, av);
    b = kf_tensor(ctx, dt, 2, (int64_t[]){3, 5}, bv);
    for (int i = 0; i < 15; ++i) {
      double va = dt == CT_INT32 ? (int32_t)av[i % 5] : dt == CT_FLOAT32 ? (float)av[i % 5] : av[i % 5];
      double vb = dt == CT_INT32 ? (int32_t)bv[i] : dt == CT_FLOAT32 ? (float)bv[i] : bv[i];
      want[i] = cv[i / 5] ? va : vb;
    }
    KF_OK(ct_where(c, a, b, &y));
    kf_expect("where", y, want, 15, 0);
    ct_tensor_free(y);
    y = NULL;
    KF_OK(ct_where(cf, a, b, &y)); /* a float condition goes through not_equal first */
    kf_expect("where, float condition", y, want, 15, 0);
    ct_tensor_free(y);
    y = NULL;
    /* casts to each other dtype */
    for (int e = 0; e < 3; ++e) {
      if (KF_DTS[e] == CT_FLOAT64 && !kf_fp64) continue;
      if (e == d) continue;
      KF_OK(ct_cast(b, KF_DTS[e], &y));
      double w[15];
      for (int i = 0; i < 15; ++i) {
        double v = dt == CT_INT32 ? (int32_t)bv[i] : dt == CT_FLOAT32 ? (float)bv[i] : bv[i];
        w[i] = KF_DTS[e] == CT_INT32 ? trunc(v) : KF_DTS[e] == CT_FLOAT32 ? (float)v : v;
      }
      kf_expect("cast", y, w, 15, 0);
      ct_tensor_free(y);
      y = NULL;
    }
    /* fill and iota */
    KF_OK(ct_fill(ctx, dt, 2, (int64_t[]){3, 7}, 5.0, &x));
    for (int i = 0; i < 15; ++i) want[i] = 5;
    kf_expect("fill", x, (double[21]){5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, 21, 0);
    KF_OK(ct_range(ctx, dt, 3, 22, 2, &z));
    double rv[10];
    for (int i = 0; i < 10; ++i) rv[i] = 3 + 2 * i;
    kf_expect("iota (range)", z, rv, 10, 0);
    ct_tensor_free(x);
    ct_tensor_free(z);
    x = z = NULL;
    if (dt != CT_INT32) {
      KF_OK(ct_linspace(ctx, dt, -1, 1, 9, &z));
      double lv[9];
      for (int i = 0; i < 9; ++i) lv[i] = -1 + 0.25 * i;
      kf_expect("iota (linspace)", z, lv, 9, 1e-7);
      ct_tensor_free(z);
      z = NULL;
    }
  out:;
    ct_tensor *all[] = {c, cf, a, b, y, x, z};
    for (int i = 0; i < 7; ++i) ct_tensor_free(all[i]);
    c = cf = a = b = y = x = z = NULL;
  }
}

/* ---- reductions ------------------------------------------------------------------------------------ */
static void kf_reduce(ct_context *ctx) {
  typedef ct_status (*red_fn)(const ct_tensor *, const int *, int, bool, ct_tensor **);
  static const red_fn fns[4] = {ct_sum, ct_max, ct_min, ct_prod};
  static const char *names[4] = {"sum", "max", "min", "prod"};
  /* (3, 5, 7) over each axis and over all: the per-column kernel; (3, 1031) over axis 1: the
   * work-group kernel (R >= 4 x 256, inner 1) */
  static const struct {
    int rank;
    int64_t shape[3];
    int naxes;
    int axes[3];
  } cases[] = {{3, {3, 5, 7}, 1, {0}}, {3, {3, 5, 7}, 1, {1}}, {3, {3, 5, 7}, 1, {2}},
               {3, {3, 5, 7}, 2, {0, 2}}, {3, {3, 5, 7}, 3, {0, 1, 2}}, {2, {3, 1031}, 1, {1}}};
  double *x = malloc(sizeof(double) * 3093), *want = malloc(sizeof(double) * 3093);
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
    int64_t n = 1;
    for (int i = 0; i < cases[c].rank; ++i) n *= cases[c].shape[i];
    for (int d = 0; d < 3; ++d) {
      if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
      ct_dtype dt = KF_DTS[d];
      for (int f = 0; f < 4; ++f) {
        /* prod of many values: keep them near 1 */
        kf_values(x, n, f == 3 ? 0.995 : -50, f == 3 ? 1.005 : 50, dt == CT_INT32);
        if (dt == CT_INT32 && f == 3)
          for (int64_t i = 0; i < n; ++i) x[i] = (i % 5 == 0) ? -1 : 1;
        for (int64_t i = 0; i < n; ++i)
          if (dt == CT_FLOAT32) x[i] = (float)x[i];
        /* reference: reduce the flagged axes */
        bool red[3] = {false, false, false};
        for (int i = 0; i < cases[c].naxes; ++i) red[cases[c].axes[i]] = true;
        int64_t on = 1;
        for (int i = 0; i < cases[c].rank; ++i)
          if (!red[i]) on *= cases[c].shape[i];
        for (int64_t o = 0; o < on; ++o) want[o] = f == 0 ? 0 : f == 1 ? -INFINITY : f == 2 ? INFINITY : 1;
        for (int64_t i = 0; i < n; ++i) {
          int64_t rem = i, idx[3], o = 0;
          for (int dd = cases[c].rank - 1; dd >= 0; --dd) {
            idx[dd] = rem % cases[c].shape[dd];
            rem /= cases[c].shape[dd];
          }
          for (int dd = 0; dd < cases[c].rank; ++dd)
            if (!red[dd]) o = o * cases[c].shape[dd] + idx[dd];
          want[o] = f == 0   ? want[o] + x[i]
                    : f == 1 ? r_max(want[o], x[i])
                    : f == 2 ? r_min(want[o], x[i])
                             : want[o] * x[i];
        }
        ct_tensor *t = kf_tensor(ctx, dt, cases[c].rank, cases[c].shape, x), *y = NULL;
        char what[64];
        snprintf(what, sizeof what, "%s over %d axes of rank %d (case %zu)", names[f], cases[c].naxes, cases[c].rank,
                 c);
        KF_OK(fns[f](t, cases[c].axes, cases[c].naxes, false, &y));
        kf_expect(what, y, want, on, 2e-5);
      out:
        ct_tensor_free(y);
        ct_tensor_free(t);
      }
    }
  }
  free(x);
  free(want);
}

/* argmax / argmin along each axis of (5, 7) */
static void kf_argreduce(ct_context *ctx) {
  double x[35], want[7];
  for (int d = 0; d < 3; ++d) {
    if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
    ct_dtype dt = KF_DTS[d];
    kf_values(x, 35, -50, 50, false);
    for (int i = 0; i < 35; ++i) x[i] += i * 1e-3; /* no ties, also as int32 (the walk has no repeats) */
    for (int k = 0; k < 4; ++k) {
      int axis = k / 2, mx = k % 2;
      ct_tensor *t = kf_tensor(ctx, dt, 2, (int64_t[]){5, 7}, x), *y = NULL;
      int outer = axis ? 5 : 7, R = axis ? 7 : 5;
      for (int o = 0; o < outer; ++o) {
        int best = 0;
        for (int r = 1; r < R; ++r) {
          double v = axis ? x[o * 7 + r] : x[r * 7 + o], bv = axis ? x[o * 7 + best] : x[best * 7 + o];
          if (dt == CT_INT32) v = (int32_t)v, bv = (int32_t)bv;
          if (mx ? v > bv : v < bv) best = r;
        }
        want[o] = best;
      }
      KF_OK((mx ? ct_argmax : ct_argmin)(t, axis, &y));
      kf_expect(mx ? "argmax" : "argmin", y, want, outer, 0);
    out:
      ct_tensor_free(y);
      ct_tensor_free(t);
    }
  }
}

/* argsort (kernels/sort.cl) along each axis of (3, 5) and of one row of 70 (several pairs per
 * work-item), both directions, with ties (stable: by index) */
static void kf_sort(ct_context *ctx) {
  double x[70], want[70];
  static const int64_t shapes[2][2] = {{3, 5}, {1, 70}};
  for (int d = 0; d < 3; ++d) {
    if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
    ct_dtype dt = KF_DTS[d];
    for (int c = 0; c < 8; ++c) {
      const int64_t *sh = shapes[c / 4];
      int axis = (c / 2) % 2, desc = c % 2, n = (int)(sh[0] * sh[1]);
      for (int i = 0; i < n; ++i) x[i] = (double)((i * 37 + 11) % 7) - 3; /* ties */
      ct_tensor *t = kf_tensor(ctx, dt, 2, sh, x), *y = NULL;
      int len = (int)sh[axis], rows = n / len, st = axis ? 1 : (int)sh[1];
      for (int r = 0; r < rows; ++r) {
        int base = axis ? r * (int)sh[1] : r, idx[70];
        for (int k = 0; k < len; ++k) { /* insertion sort: stable */
          int j = k;
          double v = x[base + k * st];
          while (j > 0 && (desc ? v > x[base + idx[j - 1] * st] : v < x[base + idx[j - 1] * st])) {
            idx[j] = idx[j - 1];
            --j;
          }
          idx[j] = k;
        }
        for (int k = 0; k < len; ++k) want[base + k * st] = idx[k];
      }
      KF_OK(ct_argsort(t, axis, desc != 0, &y));
      kf_expect(desc ? "argsort descending" : "argsort", y, want, n, 0);
    out:
      ct_tensor_free(y);
      ct_tensor_free(t);
    }
  }
}

/* ---- data movement ------------------------------------------------------------------------------ */
static void kf_movement(ct_context *ctx) {
  double x[30], want[64];
  kf_values(x, 30, -9, 9, true);
  for (int d = 0; d < 3; ++d) {
    if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
    ct_dtype dt = KF_DTS[d];
    ct_tensor *t = NULL, *y = NULL, *u = NULL, *idx = NULL, *parts[2] = {NULL, NULL}, *v = NULL, *g = NULL;
    ct_tape *tape = NULL;
    t = kf_tensor(ctx, dt, 3, (int64_t[]){2, 3, 5}, x);
    /* transpose (2, 0, 1): y[k][i][j] = x[i][j][k] */
    KF_OK(ct_transpose(t, (int[]){2, 0, 1}, &y));
    for (int k = 0; k < 5; ++k)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) want[(k * 2 + i) * 3 + j] = x[(i * 3 + j) * 5 + k];
    kf_expect("transpose", y, want, 30, 0);
    ct_tensor_free(y);
    y = NULL;
    /* slice [::-1, 1:, 4:0:-2] */
    KF_OK(ct_slice(t, (int64_t[]){1, 1, 4}, (int64_t[]){-3, 3, 0}, (int64_t[]){-1, 1, -2}, &y));
    int m = 0;
    for (int i = 1; i >= 0; --i)
      for (int j = 1; j < 3; ++j)
        for (int k = 4; k > 0; k -= 2) want[m++] = x[(i * 3 + j) * 5 + k];
    kf_expect("slice", y, want, m, 0);
    ct_tensor_free(y);
    y = NULL;
    /* broadcast_to (3, 1) -> (2, 3, 5) */
    u = kf_tensor(ctx, dt, 2, (int64_t[]){3, 1}, x);
    KF_OK(ct_broadcast_to(u, 3, (int64_t[]){2, 3, 5}, &y));
    for (int i = 0; i < 30; ++i) want[i] = x[(i / 5) % 3];
    kf_expect("broadcast_to", y, want, 30, 0);
    ct_tensor_free(y);
    y = NULL;
    /* concat on axis 2 of (2, 3, 5) and (2, 3, 1); stack */
    parts[0] = t;
    parts[1] = kf_tensor(ctx, dt, 3, (int64_t[]){2, 3, 1}, x + 7);
    KF_OK(ct_concat(parts, 2, 2, &y));
    for (int r = 0; r < 6; ++r)
      for (int c = 0; c < 6; ++c) want[r * 6 + c] = c < 5 ? x[r * 5 + c] : x[7 + r];
    kf_expect("concat", y, want, 36, 0);
    ct_tensor_free(y);
    y = NULL;
    ct_tensor_free(parts[1]);
    parts[1] = t;
    KF_OK(ct_stack(parts, 2, 1, &y)); /* (2, 2, 3, 5): y[i][s] = x[i] */
    for (int i = 0; i < 60; ++i) want[i] = x[(i / 30) * 15 + i % 15];
    kf_expect("stack", y, want, 60, 0);
    ct_tensor_free(y);
    y = NULL;
    parts[1] = NULL;
    /* gather along axis 1 with an out-of-range index (zeros), and along axis 0 */
    double iv[4] = {4, 0, -1, 2};
    idx = kf_tensor(ctx, CT_INT32, 1, (int64_t[]){4}, iv);
    ct_tensor *x2 = NULL;
    KF_OK(ct_reshape(t, 2, (int64_t[]){6, 5}, &x2));
    ct_tensor_free(t);
    t = x2;
    KF_OK(ct_gather(t, idx, 1, &y));
    for (int r = 0; r < 6; ++r)
      for (int k = 0; k < 4; ++k) want[r * 4 + k] = iv[k] >= 0 && iv[k] < 5 ? x[r * 5 + (int)iv[k]] : 0;
    kf_expect("gather axis 1", y, want, 24, 0);
    ct_tensor_free(y);
    y = NULL;
    KF_OK(ct_gather(t, idx, 0, &y));
    for (int k = 0; k < 4; ++k)
      for (int c = 0; c < 5; ++c) want[k * 5 + c] = iv[k] >= 0 && iv[k] < 6 ? x[(int)iv[k] * 5 + c] : 0;
    kf_expect("gather axis 0", y, want, 20, 0);
    ct_tensor_free(y);
    y = NULL;
    /* one_hot with an index out of range */
    KF_OK(ct_one_hot(idx, 3, dt, &y));
    for (int k = 0; k < 4; ++k)
      for (int c = 0; c < 3; ++c) want[k * 3 + c] = iv[k] == c;
    kf_expect("one_hot", y, want, 12, 0);
    ct_tensor_free(y);
    y = NULL;
    if (dt != CT_INT32) {
      /* gather_grad: the gradient of sum(gather(x, [4, 0, -1, 2, 4], axis 1) * w) counts each column's uses */
      double iv5[5] = {4, 0, -1, 2, 4}, wv[30];
      ct_tensor *idx5 = kf_tensor(ctx, CT_INT32, 1, (int64_t[]){5}, iv5), *p = NULL, *s = NULL;
      kf_values(wv, 30, 0.5, 1.5, false);
      ct_tensor *w = kf_tensor(ctx, dt, 2, (int64_t[]){6, 5}, wv);
      ct_status st = ct_tape_begin(ctx, NULL, &tape);
      if (st == CT_OK) st = ct_tape_watch(tape, t);
      if (st == CT_OK) st = ct_gather(t, idx5, 1, &v);
      if (st == CT_OK) st = ct_mul(v, w, &p);
      if (st == CT_OK) st = ct_sum(p, NULL, 0, false, &s);
      if (tape) ct_tape_end(tape);
      if (st == CT_OK) st = ct_tape_gradient1(tape, s, t, &g);
      if (st != CT_OK) KF_FAIL("gather_grad: %s", ct_errmsg());
      for (int r = 0; r < 6; ++r)
        for (int c = 0; c < 5; ++c) {
          double acc = 0;
          for (int k = 0; k < 5; ++k)
            if (iv5[k] == c) acc += dt == CT_FLOAT32 ? (float)wv[r * 5 + k] : wv[r * 5 + k];
          want[r * 5 + c] = acc;
        }
      if (st == CT_OK) kf_expect("gather_grad", g, want, 30, 1e-6);
      ct_tensor *tmp[] = {idx5, p, s, w};
      ct_tensor_free_n(tmp, 4);
    }
  out:
    ct_tape_free(tape);
    if (parts[1] != t) ct_tensor_free(parts[1]);
    ct_tensor *all[] = {t, y, u, idx, v, g};
    ct_tensor_free_n(all, 6);
  }
}

/* KERNEL_FAMILIES_PLANT=uninitialized, a check of the checker (scripts/reliability.sh): an op that
 * leaves the last element of its result unwritten, read by the next op (an add). oclgrind
 * --uninitialized must report the add; the values are not checked. */
static void kf_plant_uninitialized(ct_context *ctx) {
  const char *plant = getenv("KERNEL_FAMILIES_PLANT");
  if (!plant || strcmp(plant, "uninitialized") != 0) return;
  static bool registered;
  if (!registered) {
    ct_custom_op op = {"KernelFamiliesLeaveLast",
                       "__kernel void kf_leave_last(int n, __global T *y, __global const T *a, int ra, int8 sa) {"
                       "  int i = get_global_id(0); if (i < n - 1) y[i] = a[i]; }",
                       "kf_leave_last", 1, NULL, NULL};
    if (ct_custom_op_register(&op) != CT_OK) KF_FAIL("registering the planted op: %s", ct_errmsg());
    registered = true;
  }
  double v[5] = {1, 2, 3, 4, 5};
  ct_tensor *x = kf_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){5}, v), *y = NULL, *z = NULL;
  KF_OK(ct_custom_op_call(ctx, "KernelFamiliesLeaveLast", &x, 1, &y));
  KF_OK(ct_add(y, y, &z));
  KF_OK(ct_context_sync(ctx));
out:
  ct_tensor_free(z);
  ct_tensor_free(y);
  ct_tensor_free(x);
}

/* ---- a user-defined op ------------------------------------------------------------------------------ */
static void kf_custom(ct_context *ctx) {
  static bool registered;
  if (!registered) {
    ct_custom_op op = {"KernelFamiliesAxpy",
                       "__kernel void kf_axpy(int n, __global T *y, __global const T *a, int ra, int8 sa,"
                       "                      __global const T *b, int rb, int8 sb) {"
                       "  int i = get_global_id(0); if (i < n) y[i] = (T)2 * a[i] + b[i]; }",
                       "kf_axpy", 2, NULL, NULL};
    if (ct_custom_op_register(&op) != CT_OK) KF_FAIL("registering the custom op: %s", ct_errmsg());
    registered = true;
  }
  double a[21], b[21], want[21];
  kf_values(a, 21, -5, 5, true);
  kf_values(b, 21, 1, 9, true);
  for (int d = 0; d < 3; ++d) {
    if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
    ct_tensor *in[2] = {kf_tensor(ctx, KF_DTS[d], 2, (int64_t[]){3, 7}, a),
                        kf_tensor(ctx, KF_DTS[d], 2, (int64_t[]){3, 7}, b)};
    ct_tensor *y = NULL;
    for (int i = 0; i < 21; ++i) want[i] = 2 * a[i] + b[i];
    KF_OK(ct_custom_op_call(ctx, "KernelFamiliesAxpy", in, 2, &y));
    kf_expect("custom op", y, want, 21, 0);
  out:
    ct_tensor_free(y);
    ct_tensor_free_n(in, 2);
  }
  kf_plant_uninitialized(ctx);
}

/* ---- matrix products ------------------------------------------------------------------------------- */
/* ct_matmul runs on the engine in force (host/tune.c, ctb_tune_plan): on CPU devices the tiled
 * kernels of kernels/matmul.cl (gemm_pack_b, gemm_pack_a, gemm_tile), else CLBlast;
 * CLTAPE_MATMUL=tiled|clblast forces one. Every product runs on shapes that reach each edge of a
 * tile, in every transpose combination and in batches, first with the context's own tile, then
 * with other tiles read from a tuning store (kf_matmul_stored). */

/* The plan of dt, for the messages: "tiled MRxNVxVW packA|inplace wgWG bnBN" or "CLBlast". */
static void kf_plan_name(ct_context *ctx, ct_dtype dt, char *out, size_t cap) {
  ctb_gemm_plan p;
  ctb_tune_plan(ctx, dt, &p);
  if (p.engine != CTB_GEMM_TILE) snprintf(out, cap, "CLBlast");
  else
    snprintf(out, cap, "tiled %dx%dx%d %s wg%d bn%d", p.mr, p.nv, p.vw, p.pack_a ? "packA" : "inplace", p.wg, p.bn);
}

/* op(A) (m x k) times op(B) (k x n) through ct_matmul against a host loop. ba, bb: the batch of
 * each operand, 0 for a single matrix (rank 2, broadcast over the other's batch). */
static void kf_matmul_one(ct_context *ctx, ct_dtype dt, int ba, int bb, int m, int n, int k, bool ta, bool tb) {
  int batch = ba > bb ? ba : bb;
  if (batch < 1) batch = 1;
  int64_t na = (int64_t)(ba ? ba : 1) * m * k, nb = (int64_t)(bb ? bb : 1) * k * n, nc = (int64_t)batch * m * n;
  double *v = malloc(sizeof(double) * (size_t)(na + nb + nc));
  ct_tensor *a = NULL, *b = NULL, *y = NULL;
  if (!v) {
    KF_FAIL("matmul: out of host memory");
    return;
  }
  double *av = v, *bv = v + na, *want = v + na + nb;
  kf_values(v, na + nb, -1, 1, false); /* B continues A's walk */
  for (int64_t i = 0; dt == CT_FLOAT32 && i < na + nb; ++i) v[i] = (float)v[i];
  for (int bt = 0; bt < batch; ++bt)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        const double *ab = av + (ba ? (int64_t)bt * m * k : 0), *bb_ = bv + (bb ? (int64_t)bt * k * n : 0);
        double acc = 0;
        for (int q = 0; q < k; ++q) acc += ab[ta ? q * m + i : i * k + q] * bb_[tb ? j * k + q : q * n + j];
        want[((int64_t)bt * m + i) * n + j] = acc;
      }
  int64_t sa[3] = {ba, ta ? k : m, ta ? m : k}, sb[3] = {bb, tb ? n : k, tb ? k : n};
  a = kf_tensor(ctx, dt, ba ? 3 : 2, ba ? sa : sa + 1, av);
  b = kf_tensor(ctx, dt, bb ? 3 : 2, bb ? sb : sb + 1, bv);
  char plan[64], what[160];
  kf_plan_name(ctx, dt, plan, sizeof plan);
  snprintf(what, sizeof what, "matmul (%s), batch %d/%d, %dx%dx%d, ta=%d tb=%d", plan, ba, bb, m, n, k, ta, tb);
  KF_OK(ct_matmul(a, b, ta, tb, &y));
  kf_expect(what, y, want, nc, 1e-5);
out:
  ct_tensor_free(y);
  ct_tensor_free(a);
  ct_tensor_free(b);
  free(v);
}

/* C = alpha op(A) op(B) + beta C (ct_matmul only asks for alpha 1, beta 0: the kernel's reads of
 * C are reached through ctb_gemm only), a batch of 2, columns past full tiles. */
static void kf_matmul_alpha_beta(ct_context *ctx, ct_dtype dt) {
  enum { B = 2, M = 7, N = 17, K = 3 };
  double av[B * K * M], bv[B * K * N], cv[B * M * N], want[B * M * N];
  kf_values(av, B * K * M, -1, 1, false);
  kf_values(bv, B * K * N, -0.5, 1.5, false);
  kf_values(cv, B * M * N, -2, 1, false);
  double *all[3] = {av, bv, cv};
  int64_t cnt[3] = {B * K * M, B * K * N, B * M * N};
  for (int t = 0; dt == CT_FLOAT32 && t < 3; ++t)
    for (int64_t i = 0; i < cnt[t]; ++i) all[t][i] = (float)all[t][i];
  /* op(A) = A^T (A stored K x M), op(B) = B */
  for (int bt = 0; bt < B; ++bt)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        double acc = 0;
        for (int q = 0; q < K; ++q) acc += av[(bt * K + q) * M + i] * bv[(bt * K + q) * N + j];
        want[(bt * M + i) * N + j] = 0.5 * acc - 1.5 * cv[(bt * M + i) * N + j];
      }
  ct_tensor *a = kf_tensor(ctx, dt, 3, (int64_t[]){B, K, M}, av), *b = kf_tensor(ctx, dt, 3, (int64_t[]){B, K, N}, bv),
            *c = kf_tensor(ctx, dt, 3, (int64_t[]){B, M, N}, cv);
  char plan[64], what[160];
  kf_plan_name(ctx, dt, plan, sizeof plan);
  snprintf(what, sizeof what, "gemm alpha 0.5, beta -1.5 (%s)", plan);
  if (!a || !b || !c) goto out;
  KF_OK(ctb_gemm(ctx, dt, true, false, M, N, K, 0.5, a->buf, M, K * M, b->buf, N, K * N, -1.5, c->buf, N, M * N, B));
  kf_expect(what, c, want, B * M * N, 1e-5);
out:
  ct_tensor_free(a);
  ct_tensor_free(b);
  ct_tensor_free(c);
}

/* Every edge of the tiles in use (rows x columns: the defaults 6 x 16 in float32 and 6 x 8 in
 * float64, the stored 5 x 8, 3 x 6, 1 x 16 and 7 x 4): fewer rows and columns than a tile, one row
 * and one column past a tile (7 rows and 17 columns for the defaults, 6 and 9 for 5 x 8, 4 and 7
 * for 3 x 6, 8 and 5 for 7 x 4), n = 1, k = 1, more column panels than a band holds, each in every
 * transpose combination; then batches (both operands batched, either one a single matrix), then
 * alpha and beta. float64 where the device has it. */
static void kf_matmul_edges(ct_context *ctx) {
  static const int shapes[][3] = {{1, 1, 1}, {5, 3, 7}, {7, 17, 5}, {6, 9, 4},
                                  {4, 7, 3}, {8, 5, 2}, {13, 1, 6}, {4, 33, 1}};
  ct_device_info info;
  if (ct_context_device(ctx, &info) != CT_OK) {
    KF_FAIL("ct_context_device: %s", ct_errmsg());
    return;
  }
  for (int d = 0; d < 2; ++d) {
    ct_dtype dt = KF_DTS[d];
    if (dt == CT_FLOAT64 && !info.fp64) continue;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; ++s)
      for (int combo = 0; combo < 4; ++combo)
        kf_matmul_one(ctx, dt, 0, 0, shapes[s][0], shapes[s][1], shapes[s][2], combo & 1, combo >> 1);
    kf_matmul_one(ctx, dt, 3, 3, 7, 9, 4, true, false);
    kf_matmul_one(ctx, dt, 2, 0, 3, 4, 5, false, false); /* B broadcast over A's batch */
    kf_matmul_one(ctx, dt, 0, 2, 5, 7, 3, false, true);  /* A broadcast over B's batch */
    kf_matmul_alpha_beta(ctx, dt);
  }
}

/* Other tiles, as a tuning store sets them ([0] float32, [1] float64): odd row counts, one vector
 * or several, A read in place or packed, several work-items per group (up to 64, most of them past
 * the last tile on these shapes) and bands of column panels, the last band narrower; B packed for
 * every product (SMALL 0) or for those whose B has more than 20 elements. The default tile reads
 * the operands of these small shapes in place, except a transposed B (always packed). */
static const ctb_gemm_plan KF_STORED_TILES[][2] = {
    {{CTB_GEMM_TILE, 5, 1, 8, 0, 4, 3, 0}, {CTB_GEMM_TILE, 3, 3, 2, 0, 2, 2, 0}},
    {{CTB_GEMM_TILE, 1, 4, 4, 1, 64, 4, 0}, {CTB_GEMM_TILE, 7, 1, 4, 1, 8, 3, 20}},
};
/* A store holds complete sets: with each tile, CLBlast's generic parameters (host/tune.c starts from
 * them), valid on every device. CLBlast keeps them for the rest of the process: only its speed
 * could change. */
static const char *KF_STORE_CLBLAST[2] = {
    "float32 Xgemm GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 MWG=32 NDIMB=16 NDIMC=16 NWG=32 SA=1 SB=1 STRM=0 "
    "STRN=0 VWM=4 VWN=2\n"
    "float32 XgemmDirect KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=1 VWND=1 WGD=16\n"
    "float32 Copy COPY_DIMX=16 COPY_DIMY=16 COPY_VW=4 COPY_WPT=2\n"
    "float32 Pad PAD_DIMX=32 PAD_DIMY=8 PAD_WPTX=2 PAD_WPTY=1\n"
    "float32 Transpose TRA_DIM=8 TRA_PAD=0 TRA_SHUFFLE=1 TRA_WPT=4\n"
    "float32 Padtranspose PADTRA_PAD=0 PADTRA_TILE=8 PADTRA_WPT=4\n"
    "float32 GemmRoutine XGEMM_MIN_INDIRECT_SIZE=896\n",
    "float64 Xgemm GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=16 MDIMC=16 MWG=32 NDIMB=8 NDIMC=8 NWG=32 SA=1 SB=1 STRM=0 "
    "STRN=0 VWM=2 VWN=4\n"
    "float64 XgemmDirect KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=2 VWND=2 WGD=16\n"
    "float64 Copy COPY_DIMX=16 COPY_DIMY=8 COPY_VW=2 COPY_WPT=1\n"
    "float64 Pad PAD_DIMX=32 PAD_DIMY=8 PAD_WPTX=1 PAD_WPTY=1\n"
    "float64 Transpose TRA_DIM=8 TRA_PAD=0 TRA_SHUFFLE=1 TRA_WPT=2\n"
    "float64 Padtranspose PADTRA_PAD=0 PADTRA_TILE=8 PADTRA_WPT=4\n"
    "float64 GemmRoutine XGEMM_MIN_INDIRECT_SIZE=1152\n",
};

static void kf_remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[1024];
  while (d && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  if (d) closedir(d);
  rmdir(dir);
}

/* The edges again with stored tiles: the store goes to a temporary cache directory (never the
 * user's); CLTAPE_CACHE_DIR names it only while one context writes the store and a second one, on
 * ctx's device, reads it at its creation. */
static void kf_matmul_stored(ct_context *ctx, const ctb_gemm_plan tiles[2]) {
  ct_device_info info;
  ct_context *w = NULL, *t = NULL;
  char dir[512], sel[16], body[4096];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/cltape-kernel-families-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (ct_context_device(ctx, &info) != CT_OK || !mkdtemp(dir)) {
    KF_FAIL("matmul with stored tiles: no device information or no temporary directory %s", dir);
    return;
  }
  snprintf(sel, sizeof sel, "%d", info.index);
  size_t o = 0;
  for (int d = 0; d < (info.fp64 ? 2 : 1); ++d) {
    const ctb_gemm_plan *p = &tiles[d];
    o += (size_t)snprintf(body + o, sizeof body - o, "%s%s Tile ENGINE=%d MR=%d NV=%d VW=%d PACKA=%d WG=%d BN=%d SMALL=%d\n",
                          KF_STORE_CLBLAST[d], d ? "float64" : "float32", p->engine, p->mr, p->nv, p->vw, p->pack_a,
                          p->wg, p->bn, p->small_b);
  }
  /* the environment of the two creations: this cache directory, stores applied (CLTAPE_TUNE unset) */
  static const char *names[2] = {"CLTAPE_CACHE_DIR", "CLTAPE_TUNE"};
  char *saved[2];
  for (int i = 0; i < 2; ++i) saved[i] = ct__getenv(names[i]) ? strdup(ct__getenv(names[i])) : NULL;
  ct_status s = ct__env_override(names[0], dir) == 0 && ct__env_override(names[1], NULL) == 0 ? CT_OK : CT_ERR_IO;
  if (s == CT_OK) s = ct_context_create(sel, &w);
  if (s == CT_OK) s = ctb_tune_store_write(w, body);
  if (s == CT_OK) s = ct_context_create(sel, &t);
  for (int i = 0; i < 2; ++i) {
    if (saved[i]) ct__env_override(names[i], saved[i]);
    else ct__env_override(names[i], NULL);
    free(saved[i]);
  }
  if (s != CT_OK) {
    KF_FAIL("matmul with stored tiles: writing or reading the store in %s: %s", dir, ct_errmsg());
  } else {
    /* the stored tiles are in force (the engine: CLTAPE_MATMUL may force one) */
    for (int d = 0; d < (info.fp64 ? 2 : 1); ++d) {
      ctb_gemm_plan p, q = tiles[d];
      ctb_tune_plan(t, KF_DTS[d], &p);
      kf_checks++;
      if (p.mr != q.mr || p.nv != q.nv || p.vw != q.vw || p.pack_a != q.pack_a || p.wg != q.wg || p.bn != q.bn ||
          p.small_b != q.small_b)
        KF_FAIL("matmul: the stored %s tile is not in force (MR %d NV %d VW %d PACKA %d WG %d BN %d SMALL %d)",
                ct_dtype_name(KF_DTS[d]), p.mr, p.nv, p.vw, p.pack_a, p.wg, p.bn, p.small_b);
    }
    kf_matmul_edges(t);
  }
  ct_context_free(t);
  ct_context_free(w);
  kf_remove_dir(dir);
}

/* C = op(A) op(B) (batch matrices) with the given plan, whatever the context's own, against a host
 * loop. lda: A's row stride (at least its row length; larger strides lie between the rows). */
static void kf_matmul_plan(ct_context *ctx, ct_dtype dt, const ctb_gemm_plan *p, const char *name, int batch, int m,
                           int n, int k, int lda, bool ta, bool tb) {
  const int ar = ta ? k : m, ldb = tb ? k : n;
  const int64_t na = (int64_t)batch * ar * lda, nb = (int64_t)batch * k * n, nc = (int64_t)batch * m * n;
  double *v = malloc(sizeof(double) * (size_t)(na + nb + 2 * nc));
  ct_tensor *a = NULL, *b = NULL, *c = NULL;
  if (!v) {
    KF_FAIL("matmul: out of host memory");
    return;
  }
  double *av = v, *bv = v + na, *want = v + na + nb, *zero = want + nc;
  kf_values(v, na + nb, -1, 1, false);
  for (int64_t i = 0; dt == CT_FLOAT32 && i < na + nb; ++i) v[i] = (float)v[i];
  for (int64_t i = 0; i < nc; ++i) zero[i] = 0;
  for (int bt = 0; bt < batch; ++bt)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        const double *ab = av + (int64_t)bt * ar * lda, *bb = bv + (int64_t)bt * k * n;
        double acc = 0;
        for (int q = 0; q < k; ++q) acc += ab[ta ? q * lda + i : i * lda + q] * bb[tb ? j * ldb + q : q * ldb + j];
        want[((int64_t)bt * m + i) * n + j] = acc;
      }
  a = kf_tensor(ctx, dt, 1, &na, av);
  b = kf_tensor(ctx, dt, 1, &nb, bv);
  c = kf_tensor(ctx, dt, 1, &nc, zero);
  char what[200];
  snprintf(what, sizeof what, "matmul (%s %dx%dx%d pack A %d, B in place up to %d), batch %d, %dx%dx%d, lda %d, ta=%d tb=%d",
           name, p->mr, p->nv, p->vw, p->pack_a, p->small_b, batch, m, n, k, lda, ta, tb);
  if (!a || !b || !c) goto out;
  KF_OK(ctb_lazy_status(ctx));
  KF_OK(ctb_gemm_cl(ctx, dt, p, ta, tb, (size_t)m, (size_t)n, (size_t)k, 1.0, *ctb_mem_ptr(a->buf), (size_t)lda,
                    (size_t)(ar * lda), *ctb_mem_ptr(b->buf), (size_t)ldb, (size_t)(k * n), 0.0, *ctb_mem_ptr(c->buf),
                    (size_t)n, (size_t)(m * n), (size_t)batch));
  kf_expect(what, c, want, nc, 1e-5);
out:
  ct_tensor_free(a);
  ct_tensor_free(b);
  ct_tensor_free(c);
  free(v);
}

/* The default tile of a CPU with 64-byte vectors (AVX-512: 12 x 2 vectors of 16 floats or 8
 * doubles, bands of 4 column panels), whatever this device's own: every edge of its 12 x 32 (12 x
 * 16) tile in every transpose combination with B packed and read in place, a batch, and A packed
 * (rows 1 KiB apart, more column panels than a band). */
static void kf_matmul_wide(ct_context *ctx) {
  static const int shapes[][3] = {{1, 1, 1}, {11, 31, 5}, {13, 33, 3}, {12, 32, 2}, {25, 17, 4}};
  ct_device_info info, avx512;
  if (ct_context_device(ctx, &info) != CT_OK) {
    KF_FAIL("ct_context_device: %s", ct_errmsg());
    return;
  }
  memset(&avx512, 0, sizeof avx512);
  avx512.type = CT_DEVICE_CPU;
  avx512.float_vector_width = 16;
  avx512.local_mem_bytes = 1 << 20;
  avx512.max_work_group_size = 4096;
  for (int d = 0; d < 2; ++d) {
    ct_dtype dt = KF_DTS[d];
    if (dt == CT_FLOAT64 && !info.fp64) continue;
    ctb_gemm_plan p;
    ctb_tune_default_plan(&avx512, dt, &p);
    kf_checks++;
    if (p.engine != CTB_GEMM_TILE || p.vw * (dt == CT_FLOAT64 ? 8 : 4) != 64 || p.mr * p.nv < 24)
      KF_FAIL("matmul: the default %s tile of an AVX-512 CPU is %s %dx%dx%d, not one of 64-byte vectors",
              ct_dtype_name(dt), p.engine == CTB_GEMM_TILE ? "tiled" : "CLBlast", p.mr, p.nv, p.vw);
    for (int small = 0; small < 2; ++small) {
      ctb_gemm_plan q = p;
      q.small_b = small ? 1 << 20 : 0;
      for (size_t s = 0; s < sizeof shapes / sizeof *shapes; ++s)
        for (int combo = 0; combo < 4; ++combo) {
          const int m = shapes[s][0], k = shapes[s][2], lda = combo & 1 ? m : k;
          kf_matmul_plan(ctx, dt, &q, "AVX-512 default", 1, m, shapes[s][1], k, lda, combo & 1, combo >> 1);
        }
      kf_matmul_plan(ctx, dt, &q, "AVX-512 default", 3, 13, 35, 6, 6, false, true);
    }
    /* A packed: rows 1 KiB apart (lda 256 floats, 128 doubles), two column panels, bands of one, B
     * packed (A is packed only with B: blas.c) */
    ctb_gemm_plan q = p;
    q.bn = 1;
    q.pack_a = 1;
    q.small_b = 0;
    const int lda = dt == CT_FLOAT64 ? 128 : 256;
    kf_matmul_plan(ctx, dt, &q, "AVX-512 default", 1, 13, 2 * p.nv * p.vw + 1, 9, lda, false, false);
    kf_matmul_plan(ctx, dt, &q, "AVX-512 default", 2, 14, 2 * p.nv * p.vw + 3, 9, lda, true, false);
    /* k in two whole runs of the packing kernels (16 steps: the vector copies of A's rows, of A
     * transposed where 16 rows from the panel's first lie inside A, of B transposed) and a partial
     * one, a partial row panel and a partial column panel */
    kf_matmul_plan(ctx, dt, &q, "AVX-512 default", 2, 13, 2 * p.nv * p.vw + 1, 37, lda, false, false);
    kf_matmul_plan(ctx, dt, &q, "AVX-512 default", 1, 29, 2 * p.nv * p.vw + 3, 37, lda, true, true);
  }
}

static void kf_matmul(ct_context *ctx) {
  kf_matmul_edges(ctx);
  kf_matmul_wide(ctx);
  for (size_t i = 0; i < sizeof KF_STORED_TILES / sizeof *KF_STORED_TILES; ++i)
    kf_matmul_stored(ctx, KF_STORED_TILES[i]);
}

#if KF_NN
/* ---- neural-network kernels ------------------------------------------------------------------------ */
/* Output extent and padding before, as ct_padding documents. */
static int kf_out(int in, int k, int st, bool same, int *pad) {
  if (!same) {
    *pad = 0;
    return (in - k) / st + 1;
  }
  int o = (in + st - 1) / st, total = (o - 1) * st + k - in;
  *pad = total > 0 ? total / 2 : 0;
  return o;
}

static double kf_dot(const ct_tensor *a, const double *b, int64_t n) {
  double *v = malloc(sizeof(double) * (size_t)n), acc = 0;
  if (v && ct_tensor_read_f64(a, v, n) == CT_OK)
    for (int64_t i = 0; i < n; ++i) acc += v[i] * b[i];
  else acc = NAN;
  free(v);
  return acc;
}

/* y [oh, ow, oc] = the convolution of one image x [h, w, c] with f [kh, kw, c, oc] (strides sh, sw;
 * padding pt, pl), as a direct loop */
static void kf_conv_ref(const double *x, const double *f, int h, int w, int c, int kh, int kw, int oc, int sh, int sw,
                        int pt, int pl, int oh, int ow, double *y) {
  for (int i = 0; i < oh; ++i)
    for (int j = 0; j < ow; ++j)
      for (int o = 0; o < oc; ++o) {
        double acc = 0;
        for (int a = 0; a < kh; ++a)
          for (int b = 0; b < kw; ++b)
            for (int ch = 0; ch < c; ++ch) {
              int ih = i * sh + a - pt, iw = j * sw + b - pl;
              if (ih >= 0 && ih < h && iw >= 0 && iw < w)
                acc += x[(ih * w + iw) * c + ch] * f[((a * kw + b) * c + ch) * oc + o];
            }
        y[(i * ow + j) * oc + o] = acc;
      }
}

/* Convolution against a direct loop; both backprops through the adjoint identity: for
 * L = sum(conv(x, f) * w), <x, dL/dx> = <f, dL/df> = L. */
static void kf_conv(ct_context *ctx) {
  enum { H = 5, W = 5, C = 2, KH = 3, KW = 3, OC = 3 };
  static const struct {
    int sh, sw;
    bool same;
  } cases[] = {{1, 1, true}, {2, 2, false}, {2, 1, true}};
  double x[H * W * C], f[KH * KW * C * OC], w[H * W * OC], want[H * W * OC];
  kf_values(x, H * W * C, -1, 1, false);
  kf_values(f, KH * KW * C * OC, -0.5, 0.5, false);
  kf_values(w, H * W * OC, 0.5, 1.5, false);
  for (int d = 0; d < (kf_fp64 ? 2 : 1); ++d) /* float64 where the device has it */
    for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
      ct_dtype dt = KF_DTS[d];
      int pt, pl, oh = kf_out(H, KH, cases[c].sh, cases[c].same, &pt),
                  ow = kf_out(W, KW, cases[c].sw, cases[c].same, &pl);
      ct_tensor *tx = kf_tensor(ctx, dt, 4, (int64_t[]){1, H, W, C}, x),
                *tf = kf_tensor(ctx, dt, 4, (int64_t[]){KH, KW, C, OC}, f);
      ct_tensor *tw = kf_tensor(ctx, dt, 4, (int64_t[]){1, oh, ow, OC}, w), *y = NULL, *p = NULL, *l = NULL,
                *g[2] = {NULL, NULL};
      ct_tape *tape = NULL;
      double L = 0;
      kf_conv_ref(x, f, H, W, C, KH, KW, OC, cases[c].sh, cases[c].sw, pt, pl, oh, ow, want);
      for (int i = 0; i < oh * ow * OC; ++i) L += want[i] * w[i];
      KF_OK(ct_tape_begin(ctx, NULL, &tape));
      KF_OK(ct_tape_watch(tape, tx));
      KF_OK(ct_tape_watch(tape, tf));
      KF_OK(
          ct_conv2d(tx, tf, (int[]){cases[c].sh, cases[c].sw}, cases[c].same ? CT_PADDING_SAME : CT_PADDING_VALID, &y));
      KF_OK(ct_mul(y, tw, &p));
      KF_OK(ct_sum(p, NULL, 0, false, &l));
      KF_OK(ct_tape_end(tape));
      kf_expect("conv2d", y, want, oh * ow * OC, 1e-5);
      ct_tensor *src[2] = {tx, tf};
      KF_OK(ct_tape_gradient(tape, &l, 1, src, 2, NULL, CT_UNCONNECTED_NONE, g));
      double lx = kf_dot(g[0], x, H * W * C), lf = kf_dot(g[1], f, KH * KW * C * OC);
      kf_checks += 2;
      if (!(fabs(lx - L) <= 1e-4 * (1 + fabs(L)))) KF_FAIL("conv2d backprop input: <x, dx> = %.9g, L = %.9g", lx, L);
      if (!(fabs(lf - L) <= 1e-4 * (1 + fabs(L)))) KF_FAIL("conv2d backprop filter: <f, df> = %.9g, L = %.9g", lf, L);
    out:
      ct_tape_free(tape);
      ct_tensor *all[] = {tx, tf, tw, y, p, l, g[0], g[1]};
      ct_tensor_free_n(all, 8);
    }
}

/* Channels in vectors with a bias (the Conv2D layer's Conv2DBiasAdd row): the vector kernels of
 * the forward and of both gradients, and the filter's and the bias's gradients from one launch
 * (Conv2DBackpropFilterBias: the gradient is taken after the tape stopped recording), against a
 * direct loop and the adjoint identity: for L = sum((conv(x, f) + b) * w) and Lc its part without
 * b, <x, dL/dx> = <f, dL/df> = Lc, and dL/db[o] = sum of w[..., o]. 8 input channels with SAME
 * padding (the forward and the filter gradient read the padding themselves) and VALID with stride
 * 2; 3 channels with SAME padding (the forward's input padded first, the filter gradient in tiles
 * of 9 k). */
static void kf_conv_bias(ct_context *ctx) {
  enum { H = 5, W = 5, CMAX = 8, KH = 3, KW = 3, OC = 8 };
  static const struct {
    int s;
    bool same;
    int c;
  } cases[] = {{1, true, 8}, {2, false, 8}, {1, true, 3}};
  double x[H * W * CMAX], f[KH * KW * CMAX * OC], b[OC], w[H * W * OC], want[H * W * OC], dbw[OC];
  kf_values(x, H * W * CMAX, -1, 1, false);
  kf_values(f, KH * KW * CMAX * OC, -0.5, 0.5, false);
  kf_values(b, OC, -1, 1, false);
  kf_values(w, H * W * OC, 0.5, 1.5, false);
  for (int d = 0; d < (kf_fp64 ? 2 : 1); ++d)
    for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
      ct_dtype dt = KF_DTS[d];
      const int st = cases[c].s, C = cases[c].c;
      int pt, pl, oh = kf_out(H, KH, st, cases[c].same, &pt), ow = kf_out(W, KW, st, cases[c].same, &pl);
      ct_tensor *tx = kf_tensor(ctx, dt, 4, (int64_t[]){1, H, W, C}, x),
                *tf = kf_tensor(ctx, dt, 4, (int64_t[]){KH, KW, C, OC}, f),
                *tb = kf_tensor(ctx, dt, 1, (int64_t[]){OC}, b);
      ct_tensor *tw = kf_tensor(ctx, dt, 4, (int64_t[]){1, oh, ow, OC}, w), *y = NULL, *p = NULL, *l = NULL,
                *g[3] = {NULL, NULL, NULL};
      ct_tape *tape = NULL;
      double Lc = 0;
      memset(dbw, 0, sizeof dbw);
      kf_conv_ref(x, f, H, W, C, KH, KW, OC, st, st, pt, pl, oh, ow, want);
      for (int i = 0; i < oh * ow * OC; ++i) {
        Lc += want[i] * w[i];
        want[i] += b[i % OC];
        dbw[i % OC] += w[i];
      }
      KF_OK(ct_tape_begin(ctx, NULL, &tape));
      KF_OK(ct_tape_watch(tape, tx));
      KF_OK(ct_tape_watch(tape, tf));
      KF_OK(ct_tape_watch(tape, tb));
      KF_OK(ct__conv2d_bias_act(tx, tf, tb, (int[]){st, st}, cases[c].same ? CT_PADDING_SAME : CT_PADDING_VALID, false,
                                &y));
      KF_OK(ct_mul(y, tw, &p));
      KF_OK(ct_sum(p, NULL, 0, false, &l));
      KF_OK(ct_tape_end(tape));
      kf_expect("conv2d with bias, channels in vectors", y, want, oh * ow * OC, 1e-5);
      ct_tensor *src[3] = {tx, tf, tb};
      KF_OK(ct_tape_gradient(tape, &l, 1, src, 3, NULL, CT_UNCONNECTED_NONE, g));
      double lx = kf_dot(g[0], x, H * W * C), lf = kf_dot(g[1], f, KH * KW * C * OC);
      kf_checks += 2;
      if (!(fabs(lx - Lc) <= 1e-4 * (1 + fabs(Lc))))
        KF_FAIL("conv2d with bias, backprop input: <x, dx> = %.9g, Lc = %.9g", lx, Lc);
      if (!(fabs(lf - Lc) <= 1e-4 * (1 + fabs(Lc))))
        KF_FAIL("conv2d with bias, backprop filter: <f, df> = %.9g, Lc = %.9g", lf, Lc);
      kf_expect("conv2d with bias, the bias's gradient", g[2], dbw, OC, 1e-5);
    out:
      ct_tape_free(tape);
      ct_tensor *all[] = {tx, tf, tb, tw, y, p, l, g[0], g[1], g[2]};
      ct_tensor_free_n(all, 10);
    }
}

/* A family of convolutions with CLTAPE_CONV=mode, as it was afterwards. */
static void kf_conv_as(ct_context *ctx, const char *mode, void (*family)(ct_context *)) {
  const char *was = ct__getenv("CLTAPE_CONV");
  char keep[64];
  snprintf(keep, sizeof keep, "%s", was ? was : "");
  ct__env_override("CLTAPE_CONV", mode);
  family(ctx);
  if (was) ct__env_override("CLTAPE_CONV", keep);
  else ct__env_override("CLTAPE_CONV", NULL);
}
/* as matrix products (host/conv_gemm.c: the gathers of kernels/conv_gemm.cl, then the products) */
static void kf_conv_gemm(ct_context *ctx) { kf_conv_as(ctx, "gemm", kf_conv); }
/* the 3x3 windows of stride 1 by Winograd's transforms (kernels/conv_gemm.cl's wino_*) and the
 * 36 products between them, with and without the bias and ReLU its output transform adds */
static void kf_conv_winograd(ct_context *ctx) {
  kf_conv_as(ctx, "winograd", kf_conv);
  kf_conv_as(ctx, "winograd", kf_conv_bias);
}

/* Pooling, its gradient against a host loop, max pooling's second derivative; 2 channels (the
 * scalar kernels) and 8 (the vector ones: a multiple of every vector width they use), windows
 * padded, overlapping and disjoint (2x2 of a 5x5 image: a row and a column left over), and max
 * pooling of a ReLU's output, whose gradient the pooling gradient masks itself. */
static void kf_pool(ct_context *ctx) {
  enum { H = 5, W = 5, CMAX = 8, N = H * W * CMAX };
  static const struct {
    int k, s;
    bool same;
  } cases[] = {{2, 2, true}, {3, 2, false}, {3, 1, true}, {2, 2, false}};
  static const int cs[] = {2, CMAX};
  double x[N], w[N], v[N], want[N], gwant[N], ggwant[N];
  kf_values(x, N, -1, 1, false);
  for (int i = 0; i < N; ++i) x[i] += i * 1e-4; /* no ties but among a ReLU's zeros */
  kf_values(w, N, 0.5, 1.5, false);
  kf_values(v, N, -2, 2, false);
  for (int d = 0; d < (kf_fp64 ? 2 : 1); ++d) /* float64 where the device has it */
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ++ci)
      for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c)
        for (int mode = 0; mode < 3; ++mode) { /* average, max, max of relu(x) */
          ct_dtype dt = KF_DTS[d];
          const int C = cs[ci], mx = mode > 0, relu = mode == 2;
          int k = cases[c].k, s = cases[c].s, pt, pl, oh = kf_out(H, k, s, cases[c].same, &pt),
              ow = kf_out(W, k, s, cases[c].same, &pl);
          double xs[N];
          for (int i = 0; i < H * W * C; ++i) {
            xs[i] = dt == CT_FLOAT32 ? (float)x[i] : x[i];
            if (relu && xs[i] < 0) xs[i] = 0;
          }
          memset(gwant, 0, sizeof gwant);
          memset(ggwant, 0, sizeof ggwant);
          for (int i = 0; i < oh; ++i)
            for (int j = 0; j < ow; ++j)
              for (int ch = 0; ch < C; ++ch) {
                double best = -INFINITY, sum = 0;
                int at = -1, cnt = 0;
                for (int a = 0; a < k; ++a)
                  for (int b = 0; b < k; ++b) {
                    int ih = i * s + a - pt, iw = j * s + b - pl;
                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                    int q = (ih * W + iw) * C + ch;
                    if (xs[q] > best) best = xs[q], at = q;
                    sum += xs[q];
                    cnt++;
                  }
                int o = (i * ow + j) * C + ch;
                want[o] = mx ? best : sum / cnt;
                for (int a = 0; a < k && !mx; ++a)
                  for (int b = 0; b < k; ++b) {
                    int ih = i * s + a - pt, iw = j * s + b - pl;
                    if (ih >= 0 && ih < H && iw >= 0 && iw < W) gwant[(ih * W + iw) * C + ch] += w[o] / cnt;
                  }
                if (mx) {
                  double pass = relu ? (best > 0) : 1; /* the ReLU's derivative at the maximum */
                  gwant[at] += w[o] * pass;
                  ggwant[o] = v[at] * pass; /* d/dw sum(maxpool_grad(x, w) * v) */
                }
              }
          int64_t xshape[4] = {1, H, W, C}, pshape[4] = {1, oh, ow, C};
          ct_tensor *tx = kf_tensor(ctx, dt, 4, xshape, x), *tw = kf_tensor(ctx, dt, 4, pshape, w);
          ct_tensor *tv = kf_tensor(ctx, dt, 4, xshape, v);
          ct_tensor *r = NULL, *y = NULL, *p = NULL, *l = NULL, *g = NULL, *gv = NULL, *l2 = NULL, *gg = NULL;
          ct_tape *outer = NULL, *inner = NULL;
          ct_tape_options po = {true, true};
          char what[3][96];
          for (int q = 0; q < 3; ++q)
            snprintf(what[q], sizeof what[q], "%s_pool%s%s, %dx%d/%d%s, C = %d, %s", mx ? "max" : "avg",
                     (const char *[]){"", "_grad", "_gradgrad"}[q], relu ? " of relu" : "", k, k, s,
                     cases[c].same ? " same" : "", C, ct_dtype_name(dt));
          KF_OK(ct_tape_begin(ctx, &po, &outer));
          KF_OK(ct_tape_watch(outer, tw));
          KF_OK(ct_tape_begin(ctx, NULL, &inner));
          KF_OK(ct_tape_watch(inner, tx));
          int pool[2] = {k, k}, st[2] = {s, s};
          ct_padding pad = cases[c].same ? CT_PADDING_SAME : CT_PADDING_VALID;
          if (relu) KF_OK(ct_relu(tx, &r));
          KF_OK((mx ? ct_max_pool2d : ct_avg_pool2d)(relu ? r : tx, pool, st, pad, &y));
          KF_OK(ct_mul(y, tw, &p));
          KF_OK(ct_sum(p, NULL, 0, false, &l));
          KF_OK(ct_tape_end(inner));
          kf_expect(what[0], y, want, oh * ow * C, 1e-6);
          KF_OK(ct_tape_gradient1(inner, l, tx, &g));
          kf_expect(what[1], g, gwant, H * W * C, 1e-6);
          if (mx) {
            KF_OK(ct_mul(g, tv, &gv));
            KF_OK(ct_sum(gv, NULL, 0, false, &l2));
            KF_OK(ct_tape_end(outer));
            KF_OK(ct_tape_gradient1(outer, l2, tw, &gg));
            kf_expect(what[2], gg, ggwant, oh * ow * C, 1e-6);
          }
        out:
          ct_tape_free(inner);
          ct_tape_free(outer);
          ct_tensor *all[] = {tx, tw, tv, r, y, p, l, g, gv, l2, gg};
          ct_tensor_free_n(all, 11);
        }
}

/* the fused attention (kernels/attention.cl) against the composed one, values and the gradients of
 * q, k and v: 2 heads, 3 queries, 5 keys, 2 and 3 features, causal and not; the blocks read in
 * place (CPU devices) and through local memory (CLTAPE_TEST_ATTENTION_LOCAL=1) */
static void kf_attention(ct_context *ctx) {
  double x[40];
  kf_values(x, 40, -3, 3, true);
  for (int d = 0; d < 2; ++d) {
    if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
    for (int c = 0; c < 4; ++c) {
      ct_dtype dt = KF_DTS[d];
      bool causal = c % 2;
      ct_tensor *in[3] = {kf_tensor(ctx, dt, 3, (int64_t[]){2, 3, 2}, x),
                          kf_tensor(ctx, dt, 3, (int64_t[]){2, 5, 2}, x + 3),
                          kf_tensor(ctx, dt, 3, (int64_t[]){2, 5, 3}, x + 1)};
      ct_tensor *y[2] = {NULL, NULL}, *g[2][3] = {{NULL}};
      double *want = malloc(sizeof(double) * 30);
      if (c / 2) ct__env_override("CLTAPE_TEST_ATTENTION_LOCAL", "1");
      for (int m = 0; m < 2; ++m) { /* composed, then fused */
        ct__env_override("CLTAPE_ATTENTION", m ? "fused" : "composed");
        ct_tape *t = NULL;
        KF_OK(ct_tape_begin(ctx, NULL, &t));
        for (int i = 0; i < 3; ++i) ct_tape_watch(t, in[i]);
        ct_status s = ct_scaled_dot_product_attention(in[0], in[1], in[2], causal, &y[m]);
        ct_tape_end(t);
        if (s == CT_OK) s = ct_tape_gradient(t, &y[m], 1, in, 3, NULL, CT_UNCONNECTED_ZERO, g[m]);
        ct_tape_free(t);
        KF_OK(s);
      }
      KF_OK(ct_tensor_read_f64(y[0], want, 18));
      kf_expect(causal ? "fused causal attention" : "fused attention", y[1], want, 18, 1e-5);
      for (int i = 0; i < 3; ++i) {
        int64_t n = ct_tensor_size(g[0][i]);
        KF_OK(ct_tensor_read_f64(g[0][i], want, n));
        kf_expect("fused attention gradient", g[1][i], want, n, 1e-5);
      }
    out:
      ct__env_override("CLTAPE_ATTENTION", NULL);
      ct__env_override("CLTAPE_TEST_ATTENTION_LOCAL", NULL);
      free(want);
      ct_tensor_free_n(in, 3);
      ct_tensor_free_n(y, 2);
      ct_tensor_free_n(g[0], 3);
      ct_tensor_free_n(g[1], 3);
    }
  }
}

/* Dropout (mask and gradient), softmax cross-entropy and its gradient, every optimizer kernel. */
static void kf_nn_misc(ct_context *ctx) {
  for (int d = 0; d < 2; ++d) {
    if (KF_DTS[d] == CT_FLOAT64 && !kf_fp64) continue; /* float64 is optional */
    ct_dtype dt = KF_DTS[d];
    ct_tensor *x = NULL, *y = NULL, *l = NULL, *g = NULL, *logits = NULL, *labels = NULL, *loss = NULL;
    ct_tensor *tw = NULL, *p = NULL, *var = NULL, *grad = NULL, *gl = NULL;
    ct_optimizer *opt = NULL;
    ct_tape *tape = NULL;
    double ones[35], yv[35], lv[15], labv[5] = {0, 2, 1, 1, 0}, wv[5], want[15];
    for (int i = 0; i < 35; ++i) ones[i] = 1;
    x = kf_tensor(ctx, dt, 2, (int64_t[]){7, 5}, ones);
    KF_OK(ct_tape_begin(ctx, NULL, &tape));
    KF_OK(ct_tape_watch(tape, x));
    KF_OK(ct_dropout(x, 0.5, 3, &y));
    KF_OK(ct_sum(y, NULL, 0, false, &l));
    KF_OK(ct_tape_end(tape));
    KF_OK(ct_tape_gradient1(tape, l, x, &g));
    KF_OK(ct_tensor_read_f64(y, yv, 35));
    int kept = 0;
    for (int i = 0; i < 35; ++i) {
      if (yv[i] != 0 && yv[i] != 2) KF_FAIL("dropout: element %d is %g, not 0 or 2", i, yv[i]);
      kept += yv[i] != 0;
    }
    if (kept == 0 || kept == 35) KF_FAIL("dropout kept %d of 35", kept);
    kf_expect("dropout gradient (the same mask)", g, yv, 35, 0);
    ct_tape_free(tape);
    tape = NULL;
    /* softmax cross-entropy */
    kf_values(lv, 15, -2, 2, false);
    kf_values(wv, 5, 0.5, 1.5, false);
    logits = kf_tensor(ctx, dt, 2, (int64_t[]){5, 3}, lv);
    labels = kf_tensor(ctx, CT_INT32, 1, (int64_t[]){5}, labv);
    tw = kf_tensor(ctx, dt, 1, (int64_t[]){5}, wv);
    KF_OK(ct_tape_begin(ctx, NULL, &tape));
    KF_OK(ct_tape_watch(tape, logits));
    KF_OK(ct_sparse_softmax_cross_entropy(logits, labels, &loss));
    KF_OK(ct_mul(loss, tw, &p));
    KF_OK(ct_sum(p, NULL, 0, false, &gl));
    KF_OK(ct_tape_end(tape));
    double lw[5];
    for (int r = 0; r < 5; ++r) {
      double z[3], m = -INFINITY, s = 0;
      for (int c = 0; c < 3; ++c) z[c] = dt == CT_FLOAT32 ? (float)lv[r * 3 + c] : lv[r * 3 + c], m = fmax(m, z[c]);
      for (int c = 0; c < 3; ++c) s += exp(z[c] - m);
      lw[r] = m + log(s) - z[(int)labv[r]];
      double wr = dt == CT_FLOAT32 ? (float)wv[r] : wv[r];
      for (int c = 0; c < 3; ++c) want[r * 3 + c] = wr * (exp(z[c] - m) / s - (c == labv[r]));
    }
    kf_expect("softmax_xent", loss, lw, 5, 1e-5);
    ct_tensor_free(g);
    g = NULL;
    KF_OK(ct_tape_gradient1(tape, gl, logits, &g));
    kf_expect("softmax_xent_grad", g, want, 15, 1e-5);
    ct_tape_free(tape);
    tape = NULL;
    /* optimizers: SGD, SGD with Nesterov momentum, Adam, AdamW with clipping; two steps each */
    for (int o = 0; o < 4; ++o) {
      ct_optimizer_options oo = ct_optimizer_default_options(o < 2    ? CT_OPTIMIZER_SGD
                                                             : o == 2 ? CT_OPTIMIZER_ADAM
                                                                      : CT_OPTIMIZER_ADAMW);
      oo.learning_rate = 0.1;
      if (o == 1) oo.momentum = 0.9, oo.nesterov = true, oo.weight_decay = 0.01;
      if (o == 3) oo.clip_global_norm = 0.5;
      double pv[15], gv[15], got[15];
      kf_values(pv, 15, -1, 1, false);
      kf_values(gv, 15, -0.5, 0.5, false);
      ct_tensor *init = kf_tensor(ctx, dt, 2, (int64_t[]){3, 5}, pv);
      KF_OK(ct_variable_create(init, "p", true, &var));
      ct_tensor_free(init);
      grad = kf_tensor(ctx, dt, 2, (int64_t[]){3, 5}, gv);
      KF_OK(ct_optimizer_create(ctx, &oo, &opt));
      KF_OK(ct_optimizer_apply(opt, &grad, &var, 1));
      if (o == 0) {
        for (int i = 0; i < 15; ++i) {
          double pi = dt == CT_FLOAT32 ? (float)pv[i] : pv[i], gi = dt == CT_FLOAT32 ? (float)gv[i] : gv[i];
          want[i] = pi - 0.1 * gi;
        }
        kf_expect("opt_sgd", var, want, 15, 1e-6);
      }
      KF_OK(ct_optimizer_apply(opt, &grad, &var, 1));
      KF_OK(ct_tensor_read_f64(var, got, 15));
      kf_checks++;
      for (int i = 0; i < 15; ++i)
        if (!isfinite(got[i]) || got[i] == pv[i]) {
          KF_FAIL("optimizer %d: parameter %d is %g after two steps (was %g)", o, i, got[i], pv[i]);
          break;
        }
      ct_optimizer_free(opt);
      opt = NULL;
      ct_tensor_free(var);
      ct_tensor_free(grad);
      var = grad = NULL;
    }
  out:
    ct_optimizer_free(opt);
    ct_tape_free(tape);
    ct_tensor *all[] = {x, y, l, g, logits, labels, loss, tw, p, var, grad, gl};
    ct_tensor_free_n(all, 12);
  }
}
#endif

/* ---- gradient checks ------------------------------------------------------------------------------- */
/* ct_gradcheck (central finite differences against the tape) on a few representative ops, on tiny
 * inputs: matmul in the four transpose combinations (three of them batched), an elementwise chain
 * with broadcasting, reductions over an axis, with include/cltape_nn.h softmax cross-entropy and two
 * convolutions, a second derivative, and a wrong gradient that must be caught. In float64 where the
 * device has fp64 (PoCL and oclgrind have), then in float32 mode with its own tolerances, as on a
 * device without fp64; KERNEL_FAMILIES_GRADCHECK_FLOAT32=1 leaves float64 out. Under oclgrind this
 * shows that the checker's tolerances hold on a second device (docs/reliability.md, "Threads and
 * determinism"). */
typedef struct {
  ct_context *ctx; /* the inner tape's context (second derivative) */
  bool ta, tb;     /* matmul */
  int stride_h;    /* conv2d */
} kf_gc_args;

/* Per mode (0 float64, 1 float32), for the summary line of main: checks, partial derivatives, and
 * the worst partial (largest |analytic - numeric| over its tolerance atol + rtol |numeric|). */
typedef struct {
  int checks, partials;
  double worst_share, worst_rel, max_abs;
  char worst[64];
} kf_gc_stat;
static kf_gc_stat kf_gc_stats[2];

static ct_status kf_gc_matmul(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const kf_gc_args *a = u;
  return ct_matmul(in[0], in[1], a->ta, a->tb, out);
}

/* tanh(x) * exp(y) * x: y (1, 3) broadcast over the rows of x (2, 3); x reaches the result twice */
static ct_status kf_gc_chain(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n, (void)u;
  ct_tensor *t = NULL, *e = NULL, *p = NULL;
  ct_status s = ct_tanh(in[0], &t);
  if (s == CT_OK) s = ct_exp(in[1], &e);
  if (s == CT_OK) s = ct_mul(t, e, &p);
  if (s == CT_OK) s = ct_mul(p, in[0], out);
  ct_tensor *tmp[] = {t, e, p};
  ct_tensor_free_n(tmp, 3);
  return s;
}

/* sum over axis 0, mean over axis 1 and max over axis 1 of x (2, 3), concatenated */
static ct_status kf_gc_reduce(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n, (void)u;
  const int ax0 = 0, ax1 = 1;
  ct_tensor *r[3] = {NULL, NULL, NULL};
  ct_status s = ct_sum(in[0], &ax0, 1, false, &r[0]);
  if (s == CT_OK) s = ct_mean(in[0], &ax1, 1, false, &r[1]);
  if (s == CT_OK) s = ct_max(in[0], &ax1, 1, false, &r[2]);
  if (s == CT_OK) s = ct_concat(r, 3, 0, out);
  ct_tensor_free_n(r, 3);
  return s;
}

/* d/dx sum(tanh(x) * x * v) = (tanh'(x) x + tanh(x)) v, by an inner tape: its gradient is a
 * second derivative of tanh and of mul */
static ct_status kf_gc_inner_grad(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const kf_gc_args *a = u;
  ct_tape *tape = NULL;
  ct_tensor *t = NULL, *y = NULL;
  ct_status s = ct_tape_begin(a->ctx, NULL, &tape);
  if (s == CT_OK) s = ct_tape_watch(tape, in[0]);
  if (s == CT_OK) s = ct_tanh(in[0], &t);
  if (s == CT_OK) s = ct_mul(t, in[0], &y);
  if (tape) ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_gradient(tape, &y, 1, &in[0], 1, &in[1], CT_UNCONNECTED_ZERO, out);
  ct_tensor_free(t);
  ct_tensor_free(y);
  ct_tape_free(tape);
  return s;
}

static ct_status kf_gc_sin(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n, (void)u;
  return ct_sin(in[0], out);
}

/* A wrong gradient of Sin: dy (cos(x) + 0.1) */
static ct_status kf_gc_wrong_sin_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)user;
  ct_tensor *c = NULL, *c1 = NULL;
  ct_status s = ct_cos(ct_grad_ctx_input(g, 0), &c);
  if (s == CT_OK) s = ct_add_scalar(c, 0.1, &c1);
  if (s == CT_OK) s = ct_mul(dy, c1, &dx[0]);
  ct_tensor_free(c);
  ct_tensor_free(c1);
  return s;
}

#if KF_NN
static ct_status kf_gc_xent(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n, (void)u;
  return ct_sparse_softmax_cross_entropy(in[0], in[1], out);
}

/* x (1, 3, 3, 2) with a 2x2 filter to 2 channels, SAME padding (one row and column after) */
static ct_status kf_gc_conv(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const kf_gc_args *a = u;
  return ct_conv2d(in[0], in[1], (const int[]){a->stride_h, 1}, CT_PADDING_SAME, out);
}
#endif

/* An input of a check: shape and values, float in the checking dtype or int32 (labels). */
typedef struct {
  int rank;
  int64_t shape[4];
  const double *v;
  bool int32;
} kf_gc_in;

/* One check: ct_gradcheck on f at the inputs, then the report: no error, every element of the
 * float inputs checked, passed, and the largest absolute error within the absolute tolerance alone
 * (the pass rule adds rtol |numeric| to it). The tolerances are the defaults that include/cltape.h
 * gives for ct_gradcheck_options. */
static void kf_gc_check(ct_context *g, bool f32, const char *what, ct_fn f, kf_gc_args *args, const kf_gc_in *ins,
                        int n) {
  const double atol = f32 ? 2e-2 : 1e-5, rtol = f32 ? 2e-2 : 1e-4;
  const char *mode = f32 ? "float32" : "float64";
  ct_gradcheck_options o = {.float32 = f32};
  ct_gradcheck_report r;
  memset(&r, 0, sizeof r);
  ct_tensor *in[4] = {NULL, NULL, NULL, NULL};
  kf_checks++;
  args->ctx = g;
  int partials = 0;
  bool made = true;
  for (int i = 0; i < n; ++i) {
    in[i] = kf_tensor(g, ins[i].int32 ? CT_INT32 : f32 ? CT_FLOAT32 : CT_FLOAT64, ins[i].rank, ins[i].shape, ins[i].v);
    made = made && in[i];
    if (!ins[i].int32 && in[i]) partials += (int)ct_tensor_size(in[i]);
  }
  ct_status s = made ? ct_gradcheck(g, f, args, in, n, &o, &r) : CT_ERR_NULL;
  ct_tensor_free_n(in, n);
  if (s != CT_OK) {
    KF_FAIL("gradcheck of %s [%s]: %s: %s", what, mode, ct_status_name(s), made ? ct_errmsg() : "no input");
  } else {
    double err = fabs(r.worst_analytic - r.worst_numeric), share = err / (atol + rtol * fabs(r.worst_numeric));
    if (!r.passed || r.checked != partials || !(r.max_abs_error <= atol) || !(share <= 1))
      KF_FAIL("gradcheck of %s [%s]: %d partials (wanted %d), max abs error %.3g (atol %g): %s", what, mode, r.checked,
              partials, r.max_abs_error, atol, r.message);
    kf_gc_stat *st = &kf_gc_stats[f32];
    st->checks++;
    st->partials += r.checked;
    if (r.max_abs_error > st->max_abs) st->max_abs = r.max_abs_error;
    if (share >= st->worst_share) {
      st->worst_share = share;
      st->worst_rel = r.worst_numeric != 0 ? err / fabs(r.worst_numeric) : err;
      snprintf(st->worst, sizeof st->worst, "%s", what);
    }
  }
}

/* The check of a wrong gradient: sin with the gradient dy (cos(x) + 0.1) must fail. The error of
 * each partial is 0.1 w, w the checker's projection weight in [0.5, 1.5), beyond either mode's
 * tolerance (at most 0.02 + 0.02 w |cos(x)|). */
static void kf_gc_wrong(ct_context *g, bool f32, const double *v) {
  const char *mode = f32 ? "float32" : "float64";
  ct_gradcheck_options o = {.float32 = f32};
  ct_gradcheck_report r;
  memset(&r, 0, sizeof r);
  kf_checks++;
  ct_tensor *x = kf_tensor(g, f32 ? CT_FLOAT32 : CT_FLOAT64, 1, (int64_t[]){3}, v);
  ct_status s = ct_register_gradient("Sin", kf_gc_wrong_sin_grad, NULL);
  if (s == CT_OK) {
    s = x ? ct_gradcheck(g, kf_gc_sin, NULL, &x, 1, &o, &r) : CT_ERR_NULL;
    if (ct_unregister_gradient("Sin") != CT_OK)
      KF_FAIL("gradcheck: unregistering the wrong Sin gradient: %s", ct_errmsg());
  }
  if (s != CT_OK)
    KF_FAIL("gradcheck of a wrong Sin gradient [%s]: %s: %s", mode, ct_status_name(s), ct_errmsg());
  else if (r.passed || r.checked != 3 || !(r.max_abs_error >= 0.045 && r.max_abs_error <= 0.155) ||
           !(r.worst_analytic - r.worst_numeric >= 0.045))
    KF_FAIL("gradcheck of a wrong Sin gradient (cos(x) + 0.1) [%s] was not caught as it should be: %s", mode,
            r.message);
  ct_tensor_free(x);
}

/* Every check in one mode (float64 when f32 is false), on a context of its own on device `sel`:
 * oclgrind's race detector goes through every buffer of a context at the end of each kernel, and
 * under oclgrind this program keeps every buffer until it exits (oclgrind_keep_buffers.c), so that
 * on the program's context each of the checker's many small launches would go through the buffers
 * of all the families before it (docs/reliability.md, "Threads and determinism", has the times). */
static void kf_gradcheck_mode(const char *sel, bool f32) {
  ct_context *g = NULL;
  if (ct_context_create(sel, &g) != CT_OK) {
    KF_FAIL("gradcheck [%s]: no context on device %s: %s", f32 ? "float32" : "float64", sel, ct_errmsg());
    return;
  }
  const char *mm = getenv("KERNEL_FAMILIES_MATMUL");
  double v[36], w[36];
  /* the values of kf_values lie at least 0.03 (hi - lo) apart: no ties for max, also with float32
   * mode's step of 1e-2 */
  kf_values(v, 36, -1, 1, false);
  kf_values(w, 36, -0.8, 1.2, false);
  kf_gc_args a = {NULL, false, false, 1};
  if (!(mm && strcmp(mm, "0") == 0)) {
    /* (2, 3) x (3, 2) in each transpose combination, the operands stored as op() needs them; the
     * transposed A as a batch of 2 against one matrix, the transposed B in a batch of 2 too */
    static const struct {
      bool ta, tb;
      int ra, rb;
      int64_t sa[3], sb[3];
      const char *what;
    } mms[4] = {{false, false, 2, 2, {2, 3}, {3, 2}, "matmul A B"},
                {true, false, 3, 2, {2, 3, 2}, {3, 2}, "matmul A^T B, batch of A"},
                {false, true, 2, 3, {2, 3}, {2, 2, 3}, "matmul A B^T, batch of B"},
                {true, true, 3, 2, {2, 3, 2}, {2, 3}, "matmul A^T B^T, batch of A"}};
    for (int i = 0; i < 4; ++i) {
      a.ta = mms[i].ta, a.tb = mms[i].tb;
      kf_gc_in in[2] = {{mms[i].ra, {mms[i].sa[0], mms[i].sa[1], mms[i].sa[2]}, v, false},
                        {mms[i].rb, {mms[i].sb[0], mms[i].sb[1], mms[i].sb[2]}, w, false}};
      kf_gc_check(g, f32, mms[i].what, kf_gc_matmul, &a, in, 2);
    }
  }
  kf_gc_check(g, f32, "tanh(x) exp(y) x, broadcast", kf_gc_chain, &a,
              (kf_gc_in[]){{2, {2, 3}, v, false}, {2, {1, 3}, w, false}}, 2);
  kf_gc_check(g, f32, "sum, mean, max over an axis", kf_gc_reduce, &a, (kf_gc_in[]){{2, {2, 3}, v, false}}, 1);
#if KF_NN
  static const double labels[3] = {2, 0, 3};
  kf_gc_check(g, f32, "sparse softmax cross-entropy", kf_gc_xent, &a,
              (kf_gc_in[]){{2, {3, 4}, w, false}, {1, {3}, labels, true}}, 2);
  for (a.stride_h = 1; a.stride_h <= 2; ++a.stride_h)
    kf_gc_check(g, f32, a.stride_h == 1 ? "conv2d SAME, strides 1 1" : "conv2d SAME, strides 2 1", kf_gc_conv, &a,
                (kf_gc_in[]){{4, {1, 3, 3, 2}, v, false}, {4, {2, 2, 2, 2}, w, false}}, 2);
#endif
  kf_gc_check(g, f32, "second derivative of tanh(x) x", kf_gc_inner_grad, &a,
              (kf_gc_in[]){{1, {4}, v, false}, {1, {4}, w, false}}, 2);
  kf_gc_wrong(g, f32, v);
  if (ct_context_sync(g) != CT_OK) KF_FAIL("gradcheck: ct_context_sync: %s", ct_errmsg());
  ct_context_free(g);
}

static void kf_gradcheck(ct_context *ctx) {
  ct_device_info info;
  char sel[16];
  if (ct_context_device(ctx, &info) != CT_OK) {
    KF_FAIL("gradcheck: no device information: %s", ct_errmsg());
    return;
  }
  snprintf(sel, sizeof sel, "%d", info.index);
  const char *only32 = getenv("KERNEL_FAMILIES_GRADCHECK_FLOAT32");
  if (info.fp64 && !(only32 && strcmp(only32, "1") == 0)) kf_gradcheck_mode(sel, false);
  kf_gradcheck_mode(sel, true);
}

/* ---- the run ------------------------------------------------------------------------------------------ */
/* Runs every family on ctx (or those whose names contain KERNEL_FAMILIES_ONLY); returns the
 * number of failed checks (each printed to stderr). */
typedef struct {
  const char *name;
  void (*fn)(ct_context *);
} kf_family;
static const kf_family KF_FAMILIES[] = {
    {"unary", kf_unary},     {"binary", kf_binary},   {"select_cast_fill", kf_select_cast_fill},
    {"reduce", kf_reduce},   {"argreduce", kf_argreduce}, {"movement", kf_movement},
    {"custom", kf_custom},   {"matmul", kf_matmul},   {"sort", kf_sort},
#if KF_NN
    {"conv", kf_conv},       {"conv_bias", kf_conv_bias}, {"pool", kf_pool},   {"nn_misc", kf_nn_misc},
    {"conv_gemm", kf_conv_gemm}, {"conv_winograd", kf_conv_winograd},
    {"attention", kf_attention},
#endif
    {"gradcheck", kf_gradcheck},
};

static int kf_run(ct_context *ctx) {
  kf_failures = kf_checks = 0;
  ct_device_info info;
  kf_fp64 = ct_context_device(ctx, &info) != CT_OK || info.fp64;
  memset(kf_gc_stats, 0, sizeof kf_gc_stats);
  const char *only = getenv("KERNEL_FAMILIES_ONLY"), *mm = getenv("KERNEL_FAMILIES_MATMUL");
  for (size_t k = 0; k < sizeof KF_FAMILIES / sizeof *KF_FAMILIES; ++k) {
    if (only && *only && !strstr(KF_FAMILIES[k].name, only)) continue;
    const bool products = KF_FAMILIES[k].fn == kf_matmul || KF_FAMILIES[k].fn == kf_conv_gemm ||
                          KF_FAMILIES[k].fn == kf_conv_winograd;
    if (products && mm && strcmp(mm, "0") == 0) continue;
    KF_FAMILIES[k].fn(ctx);
  }
  if (ct_context_sync(ctx) != CT_OK) KF_FAIL("ct_context_sync: %s", ct_errmsg());
  return kf_failures;
}

#ifndef KERNEL_FAMILIES_NO_MAIN
int main(void) {
  ct_context *ctx = NULL;
  if (ct_context_create(NULL, &ctx) != CT_OK) {
    fprintf(stderr, "kernel families: no context: %s\n", ct_errmsg());
    return 2;
  }
  ct_device_info info;
  ct_context_device(ctx, &info);
  int failures = kf_run(ctx);
  ct_context_free(ctx);
  printf("kernel families on \"%s\": %d checks, %d failed\n", info.name, kf_checks, failures);
  for (int m = 0; m < 2; ++m)
    if (kf_gc_stats[m].checks)
      printf("gradcheck in %s: %d checks, %d partials; the worst partial (%s) at %.6g of its tolerance, relative "
             "error %.6g there; largest absolute error %.6g\n",
             m ? "float32 mode" : "float64", kf_gc_stats[m].checks, kf_gc_stats[m].partials, kf_gc_stats[m].worst,
             kf_gc_stats[m].worst_share, kf_gc_stats[m].worst_rel, kf_gc_stats[m].max_abs);
  return failures ? 1 : 0;
}
#endif
