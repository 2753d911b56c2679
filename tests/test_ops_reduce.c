/*
 * test_ops_reduce.c — reductions (sum, mean, max, min, prod, logsumexp) over every set of axes of
 * a rank-3 and a rank-4 tensor, with and without keepdims; large reductions (a million elements
 * into a scalar, rows of 5000 that take the work-group path); argmax/argmin with ties; softmax and
 * log-softmax over every axis; reductions of empty tensors.
 *
 * Tolerances: the worst-case bound of recursive summation, n u sum|x_i| (u the unit roundoff of the
 * dtype, 2^-24 float32, 2^-53 float64), is far too loose to catch anything for a million terms;
 * rounding errors that behave like independent random variables give the realistic bound
 * sqrt(n) u sum|x_i| (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., 4.2), and
 * the tests allow twice that plus a few roundings. max/min must be exact.
 */
#include "support.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_LSE, R_KINDS };
static const char *const KIND_NAMES[] = {"sum", "mean", "max", "min", "prod", "logsumexp"};
typedef ct_status (*reduce_fn)(const ct_tensor *, const int *, int, bool, ct_tensor **);
static const reduce_fn KIND_FNS[] = {ct_sum, ct_mean, ct_max, ct_min, ct_prod, ct_logsumexp};



static double unit_roundoff(ct_dtype dt) { return dt == CT_FLOAT32 ? 0x1p-24 : 0x1p-53; }

static double *gen(ct_dtype dt, int64_t n, double lo, double hi) {
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  cr_assert(v);
  for (int64_t i = 0; i < n; ++i) v[i] = ts_to_dtype(dt, lo + (hi - lo) * ts_rnd01());
  return v;
}


/* Host reduction over the axes in `mask` into out (keepdims layout). Also returns, per output,
 * sum|x| and the count, for the error bound. */
static void ref_reduce(int kind, int rank, const int64_t *shape, const double *x, unsigned mask, double *out,
                       double *abs_sum, int64_t *count_out) {
  int64_t oshape[8], ost[8], n = ts_numel(rank, shape);
  for (int d = 0; d < rank; ++d) oshape[d] = (mask >> d) & 1 ? 1 : shape[d];
  int64_t no = ts_numel(rank, oshape), s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    ost[d] = s;
    s *= oshape[d];
  }
  int64_t count = no ? n / no : 0;
  *count_out = count;
  double *mx = malloc(sizeof(double) * (size_t)(no ? no : 1));
  for (int64_t o = 0; o < no; ++o) {
    abs_sum[o] = 0;
    mx[o] = -INFINITY;
    out[o] = kind == R_PROD ? 1 : kind == R_MAX ? -INFINITY : kind == R_MIN ? INFINITY : 0;
  }
  for (int pass = 0; pass < (kind == R_LSE ? 2 : 1); ++pass)
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, o = 0;
      for (int d = rank - 1; d >= 0; --d) {
        int64_t c = rem % shape[d];
        rem /= shape[d];
        if (!((mask >> d) & 1)) o += c * ost[d];
      }
      double v = x[i];
      switch (kind) {
        case R_SUM:
        case R_MEAN: out[o] += v; abs_sum[o] += fabs(v); break;
        case R_MAX: out[o] = fmax(out[o], v); break;
        case R_MIN: out[o] = fmin(out[o], v); break;
        case R_PROD: out[o] *= v; break;
        case R_LSE:
          if (pass == 0) mx[o] = fmax(mx[o], v);
          else out[o] += exp(v - mx[o]);
          break;
      }
    }
  for (int64_t o = 0; o < no; ++o) {
    if (kind == R_MEAN) {
      out[o] /= (double)count;
      abs_sum[o] /= (double)count;
    }
    if (kind == R_LSE) out[o] = log(out[o]) + (isfinite(mx[o]) ? mx[o] : 0);
  }
  free(mx);
}

static double tolerance(int kind, ct_dtype dt, double want, double abs_sum, int64_t count) {
  double u = unit_roundoff(dt), k = 2 * sqrt((double)count);
  switch (kind) {
    case R_SUM: return (k + 2) * u * abs_sum;
    case R_MEAN: return (k + 3) * u * abs_sum;
    case R_PROD: return (k + 2) * u * fabs(want);
    case R_LSE: return (k + 8) * u * fmax(1.0, fabs(want)); /* exp (4 ulp), sum, log, add */
    default: return 0;
  }
}

static void check_reduce(int kind, ct_dtype dt, const ct_tensor *x, const double *xv, unsigned mask, bool keepdims,
                         bool use_null, const char *ctx_what) {
  int rank = ct_tensor_rank(x);
  const int64_t *shape = ct_tensor_shape(x);
  int axes[8], na = 0;
  for (int d = 0; d < rank; ++d)
    if ((mask >> d) & 1) {
      axes[na] = (na % 2) ? d - rank : d; /* mix negative axis numbers in */
      ++na;
    }
  ct_tensor *y = NULL;
  ct_status s = KIND_FNS[kind](x, use_null ? NULL : axes, use_null ? 0 : na, keepdims, &y);
  char what[160];
  snprintf(what, sizeof what, "%s %s mask 0x%x%s keepdims=%d [%s]", ctx_what, KIND_NAMES[kind], mask,
           use_null ? " (NULL axes)" : "", keepdims, ct_dtype_name(dt));
  cr_assert_eq(s, CT_OK, "%s: %s", what, ct_errmsg());
  /* shape */
  int64_t wshape[8];
  int wr = 0;
  for (int d = 0; d < rank; ++d)
    if (!((mask >> d) & 1)) wshape[wr++] = shape[d];
    else if (keepdims) wshape[wr++] = 1;
  ts_assert_shape(y, wr, wshape, what);
  cr_assert_eq(ct_tensor_dtype(y), dt, "%s: dtype", what);
  /* values */
  int64_t no = ts_numel(wr, wshape), count;
  double *want = malloc(sizeof(double) * (size_t)(no ? no : 1)), *as = malloc(sizeof(double) * (size_t)(no ? no : 1));
  ref_reduce(kind, rank, shape, xv, mask, want, as, &count);
  double *got = ts_read(y);
  for (int64_t o = 0; o < no; ++o) {
    double w = dt == CT_FLOAT32 && (kind == R_MAX || kind == R_MIN) ? (double)(float)want[o] : want[o];
    double tol = tolerance(kind, dt, w, as[o], count);
    cr_assert(fabs(got[o] - w) <= tol || got[o] == w, "%s: element %lld = %.17g, wanted %.17g (tolerance %.3g)", what,
              (long long)o, got[o], w, tol);
  }
  free(got);
  free(want);
  free(as);
  ct_tensor_free(y);
}

static void all_axis_sets(ct_dtype dt, int rank, const int64_t *shape) {
  ct_context *ctx = ts_ctx();
  if (dt == CT_FLOAT64) ts_require_fp64(ctx);
  ts_rng_state = 2024 + (uint64_t)rank;
  int64_t n = ts_numel(rank, shape);
  double *v = gen(dt, n, -1, 1), *p = gen(dt, n, 0.5, 1.5);
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v), *xp = ts_tensor(ctx, dt, rank, shape, p);
  char what[32];
  snprintf(what, sizeof what, "rank %d", rank);
  for (int kind = 0; kind < R_KINDS; ++kind)
    for (unsigned mask = 0; mask < (1u << rank); ++mask)
      for (int kd = 0; kd < 2; ++kd) {
        check_reduce(kind, dt, kind == R_PROD ? xp : x, kind == R_PROD ? p : v, mask, kd, false, what);
        if (mask == (1u << rank) - 1) check_reduce(kind, dt, kind == R_PROD ? xp : x, kind == R_PROD ? p : v, mask, kd, true, what);
      }
  ct_tensor_free(x);
  ct_tensor_free(xp);
  free(v);
  free(p);
  ct_context_free(ctx);
}

Test(reduce, rank3_every_axis_set_float32) { all_axis_sets(CT_FLOAT32, 3, (int64_t[]){3, 4, 5}); }
Test(reduce, rank3_every_axis_set_float64) { all_axis_sets(CT_FLOAT64, 3, (int64_t[]){3, 4, 5}); }
Test(reduce, rank4_every_axis_set_float32) { all_axis_sets(CT_FLOAT32, 4, (int64_t[]){2, 3, 4, 5}); }
Test(reduce, rank4_every_axis_set_float64) { all_axis_sets(CT_FLOAT64, 4, (int64_t[]){2, 3, 4, 5}); }

/* Reductions of 0-d tensors and of int32 tensors. */
Test(reduce, scalars_and_int32) {
  ct_context *ctx = ts_ctx();
  double v = 2.5;
  ct_tensor *s = ts_tensor(ctx, CT_FLOAT32, 0, NULL, &v), *y = NULL;
  for (int kind = 0; kind < R_KINDS; ++kind) {
    OK(KIND_FNS[kind](s, NULL, 0, false, &y));
    cr_assert_eq(ct_tensor_rank(y), 0);
    double want = kind == R_LSE ? 2.5 : 2.5;
    cr_assert(fabs(ts_item(y) - want) < 1e-6, "%s of a scalar = %g", KIND_NAMES[kind], ts_item(y));
    ct_tensor_free(y);
  }
  ct_tensor_free(s);
  int64_t shape[2] = {3, 4};
  double iv[12] = {1, -2, 3, 4, 5, 6, -7, 8, 9, 10, 11, -12};
  ct_tensor *x = ts_tensor(ctx, CT_INT32, 2, shape, iv);
  int ax1 = 1, ax0 = 0;
  OK(ct_sum(x, &ax1, 1, false, &y));
  cr_assert_eq(ct_tensor_dtype(y), CT_INT32);
  ts_assert_close(y, (double[]){6, 12, 18}, 3, 0, 0, "int32 sum");
  ct_tensor_free(y);
  OK(ct_max(x, &ax0, 1, true, &y));
  ts_assert_shape(y, 2, (int64_t[]){1, 4}, "int32 max");
  ts_assert_close(y, (double[]){9, 10, 11, 8}, 4, 0, 0, "int32 max");
  ct_tensor_free(y);
  OK(ct_min(x, NULL, 0, false, &y));
  cr_assert_eq(ts_item(y), -12);
  ct_tensor_free(y);
  OK(ct_prod(x, &ax1, 1, false, &y));
  ts_assert_close(y, (double[]){-24, -1680, -11880}, 3, 0, 0, "int32 prod");
  ct_tensor_free(y);
  OK(ct_mean(x, &ax1, 1, false, &y)); /* integer mean truncates */
  ts_assert_close(y, (double[]){1, 3, 4}, 3, 0, 0, "int32 mean");
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* A million elements into a scalar, and long rows that take the work-group kernel (whole and in
 * parts). */
static void large(ct_dtype dt) {
  ct_context *ctx = ts_ctx();
  if (dt == CT_FLOAT64) ts_require_fp64(ctx);
  ts_rng_state = 77;
  const int64_t n = 1000003;
  int64_t shape[1] = {n};
  double *v = gen(dt, n, 0, 1);
  v[123457] = ts_to_dtype(dt, 5.0); /* a unique max and min away from the ends */
  v[876543] = ts_to_dtype(dt, -4.0);
  ct_tensor *x = ts_tensor(ctx, dt, 1, shape, v);
  for (int kind = 0; kind < R_KINDS; ++kind) {
    if (kind == R_PROD) continue;
    check_reduce(kind, dt, x, v, 1, false, true, "1000003 elements");
    check_reduce(kind, dt, x, v, 1, true, false, "1000003 elements");
  }
  ct_tensor_free(x);
  free(v);
  /* 2^20 elements, and rows of 32768 in a (2, 32768) tensor: rows whose length a power of two
   * divides are reduced in parts first (host/launch.c) */
  const int64_t n2 = 1 << 20;
  double *v2 = gen(dt, n2, 0, 1);
  v2[654321] = ts_to_dtype(dt, 5.0);
  v2[12345] = ts_to_dtype(dt, -4.0);
  ct_tensor *x2 = ts_tensor(ctx, dt, 1, (int64_t[]){n2}, v2);
  for (int kind = 0; kind < R_KINDS; ++kind) {
    if (kind == R_PROD) continue;
    check_reduce(kind, dt, x2, v2, 1, false, true, "2^20 elements");
  }
  ct_tensor_free(x2);
  free(v2);
  {
    int64_t sh[2] = {2, 32768};
    double *r = gen(dt, 2 * 32768, -1, 1), *p = gen(dt, 2 * 32768, 1, 1);
    r[40000] = ts_to_dtype(dt, 3.0);
    r[7] = ts_to_dtype(dt, -3.0);
    /* products of powers of two are exact: every factor, in whichever part, must be in it */
    p[5] = 2;
    p[20000] = 0.5;
    p[32767] = 8;
    p[32768 + 100] = 0.25;
    p[32768 + 30000] = 0.5;
    ct_tensor *xr = ts_tensor(ctx, dt, 2, sh, r), *xp = ts_tensor(ctx, dt, 2, sh, p);
    for (int kind = 0; kind < R_KINDS; ++kind)
      check_reduce(kind, dt, kind == R_PROD ? xp : xr, kind == R_PROD ? p : r, 2, false, false, "rows of 32768");
    ct_tensor_free(xr);
    ct_tensor_free(xp);
    free(r);
    free(p);
  }
  /* rows of 5000: axis 1 of (7, 5000), and axis 1 of (3, 5000, 2) (strided), axis 0 of (5000, 3) */
  static const int64_t shapes[3][3] = {{7, 5000, 1}, {3, 5000, 2}, {5000, 3, 1}};
  static const int ranks[3] = {2, 3, 2};
  static const unsigned masks[3] = {2, 2, 1};
  for (int c = 0; c < 3; ++c) {
    int64_t m = ts_numel(ranks[c], shapes[c]);
    double *r = gen(dt, m, -1, 1), *p = gen(dt, m, 0.999, 1.001);
    r[m / 3] = ts_to_dtype(dt, 3.0);
    r[m / 2] = ts_to_dtype(dt, -3.0);
    ct_tensor *xr = ts_tensor(ctx, dt, ranks[c], shapes[c], r), *xp = ts_tensor(ctx, dt, ranks[c], shapes[c], p);
    for (int kind = 0; kind < R_KINDS; ++kind)
      for (int kd = 0; kd < 2; ++kd)
        check_reduce(kind, dt, kind == R_PROD ? xp : xr, kind == R_PROD ? p : r, masks[c], kd, false, "rows of 5000");
    ct_tensor_free(xr);
    ct_tensor_free(xp);
    free(r);
    free(p);
  }
  ct_context_free(ctx);
}
Test(reduce, large_float32) { large(CT_FLOAT32); }
Test(reduce, large_float64) { large(CT_FLOAT64); }

/* NaN propagates through max/min as in NumPy. */
Test(reduce, nan_propagates) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = di ? CT_FLOAT64 : CT_FLOAT32;
    if (!ts_has_dtype(ctx, dt)) continue;
    int64_t n = 3000;
    double *v = gen(dt, n, -1, 1);
    v[1777] = NAN;
    ct_tensor *x = ts_tensor(ctx, dt, 1, &n, v), *y = NULL;
    OK(ct_max(x, NULL, 0, false, &y));
    cr_assert(isnan(ts_item(y)), "max with a NaN = %g", ts_item(y));
    ct_tensor_free(y);
    OK(ct_min(x, NULL, 0, false, &y));
    cr_assert(isnan(ts_item(y)), "min with a NaN = %g", ts_item(y));
    ct_tensor_free(y);
    ct_tensor_free(x);
    free(v);
  }
  ct_context_free(ctx);
}

/* A float32 sum of 4M values against the float64 sum, within the worst-case bound of the
 * reduction's order: a sum whose every term passes through at most d roundings is within
 * gamma_d sum|x_i|, gamma_d = d u / (1 - d u) (Higham, 4.2 and 4.3). The reduce kernels
 * (kernels/reduce.cl) give each term at most n / 1024 + 1 additions in the accumulators of its
 * work-item (groups of at least 64 items, vectors of at least 4 lanes, four accumulators), 18
 * more in the lanes, accumulators and local tree, and at most n / 4096 in the partials of the
 * second stage: d = n / 1024 + n / 4096 + 20. The values lie in [1, 1.25), where adding them one
 * after another would lose ~1%: the host checks that such a sum breaks the bound, so that the
 * bound tells a tree from a loop. */
static void sum_4m_in_tree_order(bool mean) {
  ct_context *ctx = ts_ctx();
  ts_rng_state = 4242;
  const int64_t n = (INT64_C(1) << 22) + 5; /* the 5 past the last vector take the scalar tail */
  double *v = gen(CT_FLOAT32, n, 1.0, 1.25);
  double exact = 0, abs_sum = 0;
  float serial = 0;
  for (int64_t i = 0; i < n; ++i) {
    exact += v[i];
    abs_sum += fabs(v[i]);
    serial += (float)v[i];
  }
  const double u = 0x1p-24, d = (double)(n / 1024 + n / 4096 + 20), tol = d * u / (1 - d * u) * abs_sum;
  cr_assert_gt(fabs((double)serial - exact), tol, "a serial float32 sum is within the bound: the bound is too loose");
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, &n, v), *y = NULL;
  OK((mean ? ct_mean : ct_sum)(x, NULL, 0, false, &y));
  double got = ts_item(y), want = mean ? exact / (double)n : exact, t = mean ? (tol + u * exact) / (double)n : tol;
  cr_assert(fabs(got - want) <= t, "%s of 2^22 + 5 values: %.9g, float64 %.9g, error %.3g > bound %.3g",
            mean ? "mean" : "sum", got, want, fabs(got - want), t);
  ct_tensor_free(y);
  ct_tensor_free(x);
  free(v);
  ct_context_free(ctx);
}
Test(reduce, sum_4m_float32_within_the_tree_bound, .timeout = 120) { sum_4m_in_tree_order(false); }
Test(reduce, mean_4m_float32_within_the_tree_bound, .timeout = 120) { sum_4m_in_tree_order(true); }

/* The paths of the two-stage kernels (host/launch.c, ctb_reduce): long rows split among
 * work-groups, with a scalar tail past the last vector; columns whose reduced axis is split into
 * parts, one column or a vector of them per work-item; short rows, one per work-item; every kind,
 * in float32, float64 and int32. */
Test(reduce, two_stage_paths) {
  ct_context *ctx = ts_ctx();
  ts_rng_state = 99;
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  static const struct {
    int rank;
    int64_t shape[3];
    unsigned mask;
  } cases[] = {
      {2, {3, 100003, 1}, 2},  /* rows with a tail, a few rows: split */
      {1, {65541, 1, 1}, 1},   /* one row, every partial */
      {2, {200001, 3, 1}, 1},  /* axis 0, three columns: parts of single columns */
      {2, {40000, 32, 1}, 1},  /* axis 0, 32 columns: parts of vectors of columns */
      {3, {2, 30000, 16}, 2},  /* the middle axis, vectors of columns */
      {3, {5, 7, 4099}, 5},    /* two axes, one run at a time */
      {2, {3000, 77, 1}, 2},   /* short rows read in vectors, with a tail */
      {2, {20, 40, 1}, 2},     /* short rows, a few */
  };
  for (size_t di = 0; di < sizeof dts / sizeof *dts; ++di) {
    ct_dtype dt = dts[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
      int64_t m = ts_numel(cases[c].rank, cases[c].shape);
      /* int32: small values, whose sums are exact; products of powers of two, exact as well */
      double *r = dt == CT_INT32 ? gen(dt, m, -3, 4) : gen(dt, m, -1, 1);
      double *p = gen(dt, m, 1, 1);
      for (int64_t i = 0; i < m; ++i) p[i] = 1;
      p[m / 5] = 2;
      p[m - 1] = dt == CT_INT32 ? 4 : 0.5;
      p[m / 2] = dt == CT_INT32 ? -2 : 0.25;
      r[m / 3] = ts_to_dtype(dt, 9.0);   /* a unique max and min away from the ends */
      r[m - 2] = ts_to_dtype(dt, -9.0);
      ct_tensor *xr = ts_tensor(ctx, dt, cases[c].rank, cases[c].shape, r);
      ct_tensor *xp = ts_tensor(ctx, dt, cases[c].rank, cases[c].shape, p);
      char what[64];
      snprintf(what, sizeof what, "case %zu", c);
      for (int kind = 0; kind < R_KINDS; ++kind) {
        if (dt == CT_INT32 && (kind == R_MEAN || kind == R_LSE)) continue; /* float only */
        check_reduce(kind, dt, kind == R_PROD ? xp : xr, kind == R_PROD ? p : r, cases[c].mask, false, false, what);
      }
      ct_tensor_free(xr);
      ct_tensor_free(xp);
      free(r);
      free(p);
    }
  }
  ct_context_free(ctx);
}

/* NaN in one vector lane of a long row and of a vector of columns wins max and min. */
Test(reduce, nan_in_vector_lanes) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = di ? CT_FLOAT64 : CT_FLOAT32;
    if (!ts_has_dtype(ctx, dt)) continue;
    int64_t shape[2] = {4096, 32}, m = shape[0] * shape[1];
    double *v = gen(dt, m, -1, 1);
    v[70001] = NAN; /* row 2187, column 17 */
    ct_tensor *x = ts_tensor(ctx, dt, 2, shape, v), *y = NULL;
    for (int k = 0; k < 2; ++k) {
      OK((k ? ct_min : ct_max)(x, NULL, 0, false, &y));
      cr_assert(isnan(ts_item(y)), "%s of all with a NaN = %g", k ? "min" : "max", ts_item(y));
      ct_tensor_free(y);
      OK((k ? ct_min : ct_max)(x, (int[]){0}, 1, false, &y));
      double *got = ts_read(y);
      for (int i = 0; i < 32; ++i)
        cr_assert(isnan(got[i]) == (i == 17), "%s over axis 0, column %d = %g", k ? "min" : "max", i, got[i]);
      free(got);
      ct_tensor_free(y);
    }
    ct_tensor_free(x);
    free(v);
  }
  ct_context_free(ctx);
}

/* ---- argmax / argmin -------------------------------------------------------------------------- */
static void check_arg(ct_dtype dt, bool is_max, const ct_tensor *x, const double *v, int axis) {
  int rank = ct_tensor_rank(x);
  const int64_t *shape = ct_tensor_shape(x);
  int a = axis < 0 ? axis + rank : axis;
  ct_tensor *y = NULL;
  OK((is_max ? ct_argmax : ct_argmin)(x, axis, &y));
  int64_t oshape[8];
  int orank = 0;
  for (int d = 0; d < rank; ++d)
    if (d != a) oshape[orank++] = shape[d];
  char what[64];
  snprintf(what, sizeof what, "%s axis %d [%s]", is_max ? "argmax" : "argmin", axis, ct_dtype_name(dt));
  ts_assert_shape(y, orank, oshape, what);
  cr_assert_eq(ct_tensor_dtype(y), CT_INT32, "%s: dtype", what);
  int64_t outer = 1, inner = 1, R = shape[a];
  for (int d = 0; d < a; ++d) outer *= shape[d];
  for (int d = a + 1; d < rank; ++d) inner *= shape[d];
  double *got = ts_read(y);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      for (int64_t r = 1; r < R; ++r) {
        double c = v[(o * R + r) * inner + i], b = v[(o * R + best) * inner + i];
        if (isnan(b)) break;
        if (isnan(c) || (is_max ? c > b : c < b)) best = r;
      }
      cr_assert_eq(got[o * inner + i], (double)best, "%s: at (%lld, %lld) got %g, wanted %lld", what, (long long)o,
                   (long long)i, got[o * inner + i], (long long)best);
    }
  free(got);
  ct_tensor_free(y);
}

Test(argreduce, ties_take_the_first_every_axis) {
  ct_context *ctx = ts_ctx();
  ts_rng_state = 11;
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  int64_t shape[3] = {4, 5, 6};
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = dts[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    double v[120];
    for (int i = 0; i < 120; ++i) v[i] = floor(ts_rnd01() * 3); /* many ties */
    ct_tensor *x = ts_tensor(ctx, dt, 3, shape, v);
    for (int axis = -3; axis < 3; ++axis) {
      check_arg(dt, true, x, v, axis);
      check_arg(dt, false, x, v, axis);
    }
    ct_tensor_free(x);
  }
  /* long axis, a 1-element axis, NaN wins */
  int64_t n = 5000;
  double *v = gen(CT_FLOAT32, n, -1, 1);
  v[4000] = 2;
  v[4001] = 2;
  v[17] = -2;
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, &n, v), *y = NULL;
  OK(ct_argmax(x, 0, &y));
  cr_assert_eq(ct_tensor_rank(y), 0);
  cr_assert_eq(ts_item(y), 4000);
  ct_tensor_free(y);
  OK(ct_argmin(x, -1, &y));
  cr_assert_eq(ts_item(y), 17);
  ct_tensor_free(y);
  ct_tensor_free(x);
  free(v);
  double nv[] = {1, NAN, 3, NAN};
  int64_t s4 = 4;
  x = ts_tensor(ctx, ts_best_float(ctx), 1, &s4, nv);
  OK(ct_argmax(x, 0, &y));
  cr_assert_eq(ts_item(y), 1);
  ct_tensor_free(y);
  OK(ct_argmin(x, 0, &y));
  cr_assert_eq(ts_item(y), 1);
  ct_tensor_free(y);
  ct_tensor_free(x);
  int64_t s31[2] = {3, 1};
  x = ts_tensor(ctx, CT_FLOAT32, 2, s31, (double[]){4, 5, 6});
  OK(ct_argmax(x, 1, &y));
  ts_assert_close(y, (double[]){0, 0, 0}, 3, 0, 0, "argmax over extent 1");
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- softmax ----------------------------------------------------------------------------------- */
static void check_softmax(ct_dtype dt, const ct_tensor *x, const double *v, int axis, bool log_form) {
  int rank = ct_tensor_rank(x);
  const int64_t *shape = ct_tensor_shape(x);
  int a = axis < 0 ? axis + rank : axis;
  ct_tensor *y = NULL;
  OK((log_form ? ct_log_softmax : ct_softmax)(x, axis, &y));
  char what[64];
  snprintf(what, sizeof what, "%s axis %d [%s]", log_form ? "log_softmax" : "softmax", axis, ct_dtype_name(dt));
  ts_assert_shape(y, rank, shape, what);
  int64_t outer = 1, inner = 1, R = shape[a];
  for (int d = 0; d < a; ++d) outer *= shape[d];
  for (int d = a + 1; d < rank; ++d) inner *= shape[d];
  double *got = ts_read(y), u = unit_roundoff(dt);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double m = -INFINITY, s = 0, total = 0;
      for (int64_t r = 0; r < R; ++r) m = fmax(m, v[(o * R + r) * inner + i]);
      for (int64_t r = 0; r < R; ++r) s += exp(v[(o * R + r) * inner + i] - m);
      for (int64_t r = 0; r < R; ++r) {
        int64_t k = (o * R + r) * inner + i;
        double lw = v[k] - m - log(s), w = exp(lw);
        double g = got[k];
        cr_assert(isfinite(g), "%s: element %lld is %g", what, (long long)k, g);
        /* x - max, exp (4 ulp), a sum of R terms, log or divide */
        double tol = (2 * sqrt((double)R) + 8) * u;
        if (log_form) {
          cr_assert(fabs(g - lw) <= tol * fmax(1.0, fabs(lw)), "%s: element %lld = %.17g, wanted %.17g", what,
                    (long long)k, g, lw);
          total += exp(g);
        } else {
          cr_assert(fabs(g - w) <= tol * fmax(w, u), "%s: element %lld = %.17g, wanted %.17g", what, (long long)k, g, w);
          total += g;
        }
      }
      cr_assert(fabs(total - 1) <= (4 * sqrt((double)R) + 8) * u, "%s: row (%lld, %lld) sums to %.17g", what,
                (long long)o, (long long)i, total);
    }
  free(got);
  ct_tensor_free(y);
}

Test(softmax, every_axis_and_stability) {
  ct_context *ctx = ts_ctx();
  ts_rng_state = 5;
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = di ? CT_FLOAT64 : CT_FLOAT32;
    if (!ts_has_dtype(ctx, dt)) continue;
    int64_t shape[3] = {3, 4, 7};
    double *v = gen(dt, 84, -5, 5);
    ct_tensor *x = ts_tensor(ctx, dt, 3, shape, v);
    for (int axis = -3; axis < 3; ++axis)
      for (int lf = 0; lf < 2; ++lf) check_softmax(dt, x, v, axis, lf);
    ct_tensor_free(x);
    free(v);
    /* huge logits: exp would overflow without the shift */
    double big[] = {1000, 1001, 1002, -1000, -1001, -1002, 88, 89, 1e4, 0, 0, 0};
    int64_t s43[2] = {4, 3};
    x = ts_tensor(ctx, dt, 2, s43, big);
    double bv[12];
    for (int i = 0; i < 12; ++i) bv[i] = ts_to_dtype(dt, big[i]);
    for (int lf = 0; lf < 2; ++lf) check_softmax(dt, x, bv, 1, lf);
    ct_tensor_free(x);
    /* one long row */
    int64_t n = 5000;
    v = gen(dt, n, -30, 30);
    x = ts_tensor(ctx, dt, 1, &n, v);
    for (int lf = 0; lf < 2; ++lf) check_softmax(dt, x, v, 0, lf);
    ct_tensor_free(x);
    free(v);
  }
  ct_context_free(ctx);
}

/* ---- empty tensors ----------------------------------------------------------------------------- */
Test(reduce, empty_tensors) {
  ct_context *ctx = ts_ctx();
  int64_t shape[2] = {0, 3};
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 2, shape, &x));
  int ax0 = 0, ax1 = 1;
  /* max/min over an empty axis has no identity */
  ct_status s = ct_max(x, &ax0, 1, false, &y);
  EXPECT_STATUS(s, CT_ERR_SHAPE);
  cr_assert_null(y);
  EXPECT_STATUS(ct_min(x, NULL, 0, true, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_argmax(x, 0, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_argmin(x, 0, &y), CT_ERR_SHAPE);
  /* ... but over a non-empty axis the result is just empty */
  OK(ct_max(x, &ax1, 1, false, &y));
  ts_assert_shape(y, 1, (int64_t[]){0}, "max over the non-empty axis");
  ct_tensor_free(y);
  OK(ct_argmax(x, 1, &y));
  ts_assert_shape(y, 1, (int64_t[]){0}, "argmax over the non-empty axis");
  ct_tensor_free(y);
  /* sum/prod/mean/logsumexp over the empty axis: 0, 1, nan, -inf */
  OK(ct_sum(x, &ax0, 1, false, &y));
  ts_assert_shape(y, 1, (int64_t[]){3}, "sum over empty");
  ts_assert_close(y, (double[]){0, 0, 0}, 3, 0, 0, "sum over empty");
  ct_tensor_free(y);
  OK(ct_prod(x, &ax0, 1, true, &y));
  ts_assert_shape(y, 2, (int64_t[]){1, 3}, "prod over empty");
  ts_assert_close(y, (double[]){1, 1, 1}, 3, 0, 0, "prod over empty");
  ct_tensor_free(y);
  OK(ct_mean(x, &ax0, 1, false, &y));
  ts_assert_close(y, (double[]){NAN, NAN, NAN}, 3, 0, 0, "mean over empty");
  ct_tensor_free(y);
  OK(ct_logsumexp(x, &ax0, 1, false, &y));
  ts_assert_shape(y, 1, (int64_t[]){3}, "logsumexp over empty");
  ts_assert_close(y, (double[]){-INFINITY, -INFINITY, -INFINITY}, 3, 0, 0, "logsumexp over empty");
  ct_tensor_free(y);
  OK(ct_sum(x, NULL, 0, false, &y));
  cr_assert_eq(ts_item(y), 0.0);
  ct_tensor_free(y);
  /* the context still works */
  OK(ct_sum(x, &ax1, 1, true, &y));
  ts_assert_shape(y, 2, (int64_t[]){0, 1}, "sum keeps the empty axis");
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_context_free(ctx);
}
