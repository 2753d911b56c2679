/*
 * test_ops_sort.c — sorting along one axis (argsort, sort, top_k), the cumulative product and
 * einsum, against references computed on the host: values, ties (stable order), NaN and the
 * infinities, ranks 1 to 3 along every axis, rows longer than one work-group; the gradients of
 * sort, top_k and cumprod (with zeros in the input) against their closed forms; einsum against
 * explicit products, transposes and sums, its gradient against matmul's, and its errors.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "support.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const ct_dtype DTS[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};

/* ---- host references -------------------------------------------------------------------------- */
/* whether (a, ia) goes before (b, ib): stable, NaN larger than every number */
static bool before(double a, int64_t ia, double b, int64_t ib, bool desc) {
  bool an = isnan(a), bn = isnan(b);
  if (an || bn) return an && bn ? ia < ib : (desc ? an : bn);
  if (a != b) return desc ? a > b : a < b;
  return ia < ib;
}

/* indices sorting v (rank, shape) along axis a, row-major like the tensor */
static double *ref_argsort(const double *v, int rank, const int64_t *shape, int a, bool desc) {
  int64_t outer = 1, inner = 1, n = shape[a];
  for (int d = 0; d < rank; ++d) {
    if (d < a) outer *= shape[d];
    if (d > a) inner *= shape[d];
  }
  double *out = malloc(sizeof(double) * (size_t)(outer * n * inner + 1));
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(n + 1));
  cr_assert(out && idx);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const double *row = v + o * n * inner + i;
      for (int64_t k = 0; k < n; ++k) { /* insertion sort: stable by construction */
        int64_t j = k;
        while (j > 0 && before(row[k * inner], k, row[idx[j - 1] * inner], idx[j - 1], desc)) {
          idx[j] = idx[j - 1];
          --j;
        }
        idx[j] = k;
      }
      for (int64_t k = 0; k < n; ++k) out[(o * n + k) * inner + i] = (double)idx[k];
    }
  free(idx);
  return out;
}

/* v taken at the indices idx along axis a; idx has shape ishape (ishape[a] = m) */
static double *ref_take(const double *v, const double *idx, int rank, const int64_t *shape, const int64_t *ishape, int a) {
  int64_t outer = 1, inner = 1, n = shape[a], m = ishape[a];
  for (int d = 0; d < rank; ++d) {
    if (d < a) outer *= shape[d];
    if (d > a) inner *= shape[d];
  }
  double *out = malloc(sizeof(double) * (size_t)(outer * m * inner + 1));
  cr_assert(out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < m; ++k)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t e = (o * m + k) * inner + i;
        out[e] = v[(o * n + (int64_t)idx[e]) * inner + i];
      }
  return out;
}

/* values with many ties: integers in [-4, 4] (exact in every dtype) */
static double *tied_values(int64_t n, uint64_t seed) {
  double *v = malloc(sizeof(double) * (size_t)(n + 1));
  cr_assert(v);
  ts_rng_state = seed;
  for (int64_t i = 0; i < n; ++i) v[i] = floor(ts_rnd01() * 9) - 4;
  return v;
}

/* distinct-ish values (few ties): uniform in [-100, 100) rounded to 1/64 */
static double *spread_values(int64_t n, uint64_t seed) {
  double *v = malloc(sizeof(double) * (size_t)(n + 1));
  cr_assert(v);
  ts_rng_state = seed;
  for (int64_t i = 0; i < n; ++i) v[i] = floor(ts_rnd01() * 12800) / 64 - 100;
  return v;
}

/* argsort and sort of x (values v) along axis against the host, both directions */
static void check_sorts(ct_context *ctx, ct_dtype dt, const double *v, int rank, const int64_t *shape, const char *what) {
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v);
  int64_t n = ts_numel(rank, shape);
  double *vx = ts_read(x); /* the values as the dtype holds them */
  for (int axis = -rank; axis < rank; ++axis)
    for (int desc = 0; desc < 2; ++desc) {
      int a = axis < 0 ? axis + rank : axis;
      char msg[160];
      snprintf(msg, sizeof msg, "%s, %s, axis %d, %s", what, ct_dtype_name(dt), axis, desc ? "descending" : "ascending");
      ct_tensor *idx = NULL, *sorted = NULL;
      OK(ct_argsort(x, axis, desc, &idx));
      cr_assert_eq(ct_tensor_dtype(idx), CT_INT32, "%s: int32 indices", msg);
      ts_assert_shape(idx, rank, shape, msg);
      double *want = ref_argsort(vx, rank, shape, a, desc);
      ts_assert_close(idx, want, n, 0, 0, msg);
      OK(ct_sort(x, axis, desc, &sorted));
      cr_assert_eq(ct_tensor_dtype(sorted), dt, "%s: sort keeps the dtype", msg);
      double *wv = ref_take(vx, want, rank, shape, shape, a);
      ts_assert_close(sorted, wv, n, 0, 0, msg);
      free(want);
      free(wv);
      ct_tensor_free(idx);
      ct_tensor_free(sorted);
    }
  free(vx);
  ct_tensor_free(x);
}

/* ---- argsort and sort ----------------------------------------------------------------------- */
Test(sort, ranks_1_to_3_every_axis_every_dtype) {
  ct_context *ctx = ts_ctx();
  static const struct {
    int rank;
    int64_t shape[3];
  } shapes[] = {{1, {1}}, {1, {2}}, {1, {7}}, {1, {64}}, {1, {129}}, {2, {3, 5}}, {2, {4, 33}},
                {3, {2, 3, 4}}, {3, {3, 1, 9}}, {3, {5, 6, 2}}};
  for (size_t di = 0; di < 3; ++di) {
    if (!ts_has_dtype(ctx, DTS[di])) continue;
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; ++k) {
      int64_t n = ts_numel(shapes[k].rank, shapes[k].shape);
      double *t = tied_values(n, 11 + k), *s = spread_values(n, 101 + k);
      check_sorts(ctx, DTS[di], t, shapes[k].rank, shapes[k].shape, "ties");
      check_sorts(ctx, DTS[di], s, shapes[k].rank, shapes[k].shape, "spread");
      free(t);
      free(s);
    }
  }
  ct_context_free(ctx);
}

/* rows longer than a work-group's items (each item sorts several pairs), with and without ties,
 * lengths just past and just below a power of two */
Test(sort, long_rows) {
  ct_context *ctx = ts_ctx();
  static const int64_t lens[] = {511, 512, 513, 1000, 4099};
  for (size_t k = 0; k < sizeof lens / sizeof *lens; ++k) {
    int64_t shape[2] = {2, lens[k]};
    double *t = tied_values(2 * lens[k], 7 + k), *s = spread_values(2 * lens[k], 70 + k);
    check_sorts(ctx, CT_FLOAT32, t, 2, shape, "long rows, ties");
    check_sorts(ctx, CT_INT32, s, 2, shape, "long rows, spread");
    free(t);
    free(s);
  }
  ct_context_free(ctx);
}

/* the same on a device with little local memory: rows past 256 slots sort in a global scratch
 * buffer instead of local memory (host/launch_sort.c) */
Test(sort, long_rows_without_local_memory) {
  ct__env_override("CLTAPE_TEST_LOCAL_MEM", "4096");
  ct_context *ctx = ts_ctx();
  static const int64_t lens[] = {255, 257, 1000};
  for (size_t k = 0; k < sizeof lens / sizeof *lens; ++k) {
    int64_t shape[2] = {3, lens[k]};
    double *t = tied_values(3 * lens[k], 17 + k), *s = spread_values(3 * lens[k], 170 + k);
    check_sorts(ctx, CT_FLOAT32, t, 2, shape, "global scratch, ties");
    check_sorts(ctx, CT_INT32, s, 2, shape, "global scratch, spread");
    free(t);
    free(s);
  }
  ct_context_free(ctx);
}

/* all equal: the identity order either way (stable) */
Test(sort, all_ties_keep_the_order) {
  ct_context *ctx = ts_ctx();
  double v[100], want[100];
  for (int i = 0; i < 100; ++i) v[i] = 3, want[i] = i;
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){100}, v), *i1 = NULL, *i2 = NULL;
  OK(ct_argsort(x, 0, false, &i1));
  OK(ct_argsort(x, -1, true, &i2));
  ts_assert_close(i1, want, 100, 0, 0, "ascending");
  ts_assert_close(i2, want, 100, 0, 0, "descending");
  ct_tensor_free(x), ct_tensor_free(i1), ct_tensor_free(i2);
  ct_context_free(ctx);
}

/* NaN is larger than every number: last when ascending, first when descending, by index among
 * themselves; the infinities in between */
Test(sort, nan_ordering) {
  ct_context *ctx = ts_ctx();
  const double v[8] = {3, NAN, -INFINITY, 1, NAN, INFINITY, -0.5, 1};
  const double asc[8] = {2, 6, 3, 7, 0, 5, 1, 4}, desc[8] = {1, 4, 5, 0, 3, 7, 6, 2};
  const double asc_v[8] = {-INFINITY, -0.5, 1, 1, 3, INFINITY, NAN, NAN};
  for (size_t di = 0; di < 2; ++di) {
    if (!ts_has_dtype(ctx, DTS[di])) continue;
    ct_tensor *x = ts_tensor(ctx, DTS[di], 1, (int64_t[]){8}, v), *ia = NULL, *id = NULL, *sa = NULL, *tv = NULL,
              *ti = NULL;
    OK(ct_argsort(x, 0, false, &ia));
    OK(ct_argsort(x, 0, true, &id));
    OK(ct_sort(x, 0, false, &sa));
    ts_assert_close(ia, asc, 8, 0, 0, "ascending: NaNs last");
    ts_assert_close(id, desc, 8, 0, 0, "descending: NaNs first");
    ts_assert_close(sa, asc_v, 8, 0, 0, "sorted values (NaN equals NaN)");
    OK(ct_top_k(x, 3, 0, &tv, &ti));
    const double top_i[3] = {1, 4, 5}, top_v[3] = {NAN, NAN, INFINITY};
    ts_assert_close(ti, top_i, 3, 0, 0, "top_k: the NaNs first");
    ts_assert_close(tv, top_v, 3, 0, 0, "top_k values");
    ct_tensor_free(x), ct_tensor_free(ia), ct_tensor_free(id), ct_tensor_free(sa), ct_tensor_free(tv), ct_tensor_free(ti);
  }
  ct_context_free(ctx);
}

/* several rows (axis 0 and a middle axis) with NaNs against the host reference */
Test(sort, nan_in_rows_against_the_host) {
  ct_context *ctx = ts_ctx();
  int64_t shape[3] = {3, 37, 2}, n = 3 * 37 * 2;
  double *v = tied_values(n, 5);
  for (int64_t i = 0; i < n; i += 7) v[i] = NAN;
  v[1] = INFINITY, v[2] = -INFINITY;
  check_sorts(ctx, CT_FLOAT32, v, 3, shape, "NaN rows");
  if (ts_has_fp64(ctx)) check_sorts(ctx, CT_FLOAT64, v, 3, shape, "NaN rows");
  free(v);
  ct_context_free(ctx);
}

Test(sort, empty_tensors) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *i = NULL, *s = NULL, *tv = NULL, *ti = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 2, (int64_t[]){3, 0}, &x));
  OK(ct_argsort(x, 1, false, &i));
  OK(ct_sort(x, 0, true, &s));
  OK(ct_top_k(x, 0, 1, &tv, &ti));
  ts_assert_shape(i, 2, (int64_t[]){3, 0}, "argsort");
  ts_assert_shape(s, 2, (int64_t[]){3, 0}, "sort");
  ts_assert_shape(tv, 2, (int64_t[]){3, 0}, "top_k values");
  ts_assert_shape(ti, 2, (int64_t[]){3, 0}, "top_k indices");
  EXPECT_STATUS(ct_top_k(x, 1, 1, &tv, &ti), CT_ERR_INVALID);
  cr_assert_null(tv);
  cr_assert_null(ti);
  ct_tensor_free(x), ct_tensor_free(i), ct_tensor_free(s);
  ct_context_free(ctx);
}

/* ---- top_k ------------------------------------------------------------------------------------- */
Test(top_k, against_the_host_every_axis) {
  ct_context *ctx = ts_ctx();
  int64_t shape[3] = {3, 6, 5}, n = 90;
  double *v = tied_values(n, 3);
  for (size_t di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    ct_tensor *x = ts_tensor(ctx, dt, 3, shape, v);
    for (int a = 0; a < 3; ++a)
      for (int64_t k = 0; k <= shape[a]; ++k) {
        ct_tensor *tv = NULL, *ti = NULL, *only = NULL;
        OK(ct_top_k(x, k, a - 3, &tv, &ti));
        int64_t ks[3] = {shape[0], shape[1], shape[2]};
        ks[a] = k;
        ts_assert_shape(tv, 3, ks, "top_k values");
        ts_assert_shape(ti, 3, ks, "top_k indices");
        double *all = ref_argsort(v, 3, shape, a, true);
        /* the first k of the descending order along axis a */
        int64_t outer = 1, inner = 1;
        for (int d = 0; d < a; ++d) outer *= shape[d];
        for (int d = a + 1; d < 3; ++d) inner *= shape[d];
        double *want_i = malloc(sizeof(double) * (size_t)(outer * k * inner + 1));
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t j = 0; j < k; ++j)
            for (int64_t i = 0; i < inner; ++i) want_i[(o * k + j) * inner + i] = all[(o * shape[a] + j) * inner + i];
        double *want_v = ref_take(v, want_i, 3, shape, ks, a);
        char msg[96];
        snprintf(msg, sizeof msg, "%s axis %d k %lld", ct_dtype_name(dt), a, (long long)k);
        ts_assert_close(ti, want_i, outer * k * inner, 0, 0, msg);
        ts_assert_close(tv, want_v, outer * k * inner, 0, 0, msg);
        OK(ct_top_k(x, k, a, &only, NULL)); /* values alone */
        ts_assert_close(only, want_v, outer * k * inner, 0, 0, msg);
        ct_tensor_free(only);
        OK(ct_top_k(x, k, a, NULL, &only)); /* indices alone */
        ts_assert_close(only, want_i, outer * k * inner, 0, 0, msg);
        free(all), free(want_i), free(want_v);
        ct_tensor_free(only), ct_tensor_free(tv), ct_tensor_free(ti);
      }
    ct_tensor *tv = NULL, *ti = NULL;
    EXPECT_STATUS(ct_top_k(x, 7, 1, &tv, &ti), CT_ERR_INVALID); /* k > n */
    cr_assert(strstr(ct_errmsg(), "k = 7"), "%s", ct_errmsg());
    EXPECT_STATUS(ct_top_k(x, -1, 1, &tv, &ti), CT_ERR_INVALID);
    EXPECT_STATUS(ct_top_k(x, 2, 3, &tv, &ti), CT_ERR_AXIS);
    cr_assert_null(tv);
    cr_assert_null(ti);
    ct_tensor_free(x);
  }
  free(v);
  ct_context_free(ctx);
}

/* ---- gradients of sort and top_k: the upstream gradient lands at the sorted positions ---------- */
Test(sort, gradients_scatter_back_by_the_indices) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  const double v[10] = {0.5, -1, 2, 0.5, 3, -2, 7, 0.25, -1, 1}; /* ties at 0.5 and -1 */
  const double w[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  ct_tensor *x = ts_tensor(ctx, dt, 2, (int64_t[]){2, 5}, v), *wt = ts_tensor(ctx, dt, 2, (int64_t[]){2, 5}, w);
  for (int desc = 0; desc < 2; ++desc) {
    ct_tape *t = ts_tape(ctx, false, false);
    OK(ct_tape_watch(t, x));
    ct_tensor *s = NULL, *p = NULL, *loss = NULL, *idx = NULL;
    OK(ct_sort(x, 1, desc, &s));
    OK(ct_mul(s, wt, &p));
    OK(ct_sum(p, NULL, 0, false, &loss));
    OK(ct_tape_end(t));
    ct_tensor *g = ts_grad1(t, loss, x);
    OK(ct_argsort(x, 1, desc, &idx));
    double *iv = ts_read(idx), want[10];
    for (int r = 0; r < 2; ++r)
      for (int j = 0; j < 5; ++j) want[r * 5 + (int)iv[r * 5 + j]] = w[r * 5 + j];
    ts_assert_close(g, want, 10, 0, 0, desc ? "d sort descending" : "d sort ascending");
    free(iv);
    ct_tensor_free(s), ct_tensor_free(p), ct_tensor_free(loss), ct_tensor_free(idx), ct_tensor_free(g);
    ct_tape_free(t);
  }
  /* top_k along axis 0 of the transpose view: only the k chosen elements get a gradient */
  ct_tape *t = ts_tape(ctx, false, false);
  OK(ct_tape_watch(t, x));
  ct_tensor *tv = NULL, *ti = NULL, *wk = NULL, *p = NULL, *loss = NULL;
  OK(ct_top_k(x, 2, 1, &tv, &ti));
  const double w2[4] = {10, 20, 30, 40};
  wk = ts_tensor(ctx, dt, 2, (int64_t[]){2, 2}, w2);
  OK(ct_mul(tv, wk, &p));
  OK(ct_sum(p, NULL, 0, false, &loss));
  OK(ct_tape_end(t));
  ct_tensor *g = ts_grad1(t, loss, x);
  /* row 0 {0.5, -1, 2, 0.5, 3}: 3 (index 4), 2 (index 2); row 1 {-2, 7, 0.25, -1, 1}: 7 (1), 1 (4) */
  const double want[10] = {0, 0, 20, 0, 10, 0, 30, 0, 0, 40};
  ts_assert_close(g, want, 10, 0, 0, "d top_k");
  double *iv = ts_read(ti);
  const double want_i[4] = {4, 2, 1, 4};
  for (int i = 0; i < 4; ++i) cr_expect_eq(iv[i], want_i[i], "top_k index %d", i);
  free(iv);
  ct_tensor_free(tv), ct_tensor_free(ti), ct_tensor_free(wk), ct_tensor_free(p), ct_tensor_free(loss), ct_tensor_free(g);
  ct_tape_free(t);
  /* argsort is not differentiable: no gradient through it, nothing on the tape */
  t = ts_tape(ctx, false, false);
  OK(ct_tape_watch(t, x));
  ct_tensor *ia = NULL;
  OK(ct_argsort(x, 0, false, &ia));
  OK(ct_tape_end(t));
  cr_expect_eq(ct_tape_size(t), 0, "argsort leaves nothing on the tape");
  ct_tensor_free(ia);
  ct_tape_free(t);
  ct_tensor_free(x), ct_tensor_free(wt);
  ct_context_free(ctx);
}

/* ---- cumprod ----------------------------------------------------------------------------------- */
static double *ref_cumprod(const double *v, int rank, const int64_t *shape, int a) {
  int64_t outer = 1, inner = 1, n = shape[a];
  for (int d = 0; d < rank; ++d) {
    if (d < a) outer *= shape[d];
    if (d > a) inner *= shape[d];
  }
  double *out = malloc(sizeof(double) * (size_t)(outer * n * inner + 1));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double p = 1;
      for (int64_t k = 0; k < n; ++k) {
        int64_t e = (o * n + k) * inner + i;
        p *= v[e];
        out[e] = p;
      }
    }
  return out;
}

Test(cumprod, values_ranks_1_to_3_with_zeros) {
  ct_context *ctx = ts_ctx();
  static const struct {
    int rank;
    int64_t shape[3];
  } shapes[] = {{1, {1}}, {1, {9}}, {2, {4, 5}}, {3, {2, 3, 4}}, {3, {3, 17, 2}}};
  for (size_t di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; ++k) {
      int rank = shapes[k].rank;
      int64_t n = ts_numel(rank, shapes[k].shape);
      double *v = malloc(sizeof(double) * (size_t)n);
      /* small integers (exact products in every dtype), a zero every 11 */
      for (int64_t i = 0; i < n; ++i) v[i] = i % 11 == 5 ? 0 : (double)((int)(i % 3) - 1 ? (int)(i % 3) - 1 : 2);
      ct_tensor *x = ts_tensor(ctx, dt, rank, shapes[k].shape, v);
      for (int axis = -rank; axis < rank; ++axis) {
        ct_tensor *y = NULL;
        OK(ct_cumprod(x, axis, &y));
        cr_assert_eq(ct_tensor_dtype(y), dt);
        ts_assert_shape(y, rank, shapes[k].shape, "cumprod");
        double *want = ref_cumprod(v, rank, shapes[k].shape, axis < 0 ? axis + rank : axis);
        char msg[64];
        snprintf(msg, sizeof msg, "cumprod %s shape %zu axis %d", ct_dtype_name(dt), k, axis);
        ts_assert_close(y, want, n, 0, 0, msg);
        free(want);
        ct_tensor_free(y);
      }
      free(v);
      ct_tensor_free(x);
    }
  }
  ct_context_free(ctx);
}

/* d/dx_i sum_j w_j prod_{k<=j} x_k = sum_{j>=i} w_j prod_{k<=j, k!=i} x_k: exact with zeros
 * (one zero, two zeros, a zero first and last) */
Test(cumprod, gradient_with_zeros) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  static const double rows[][6] = {
      {1.5, -2, 0, 3, 0.5, 2}, {1.5, 0, 2, 0, -1, 3}, {0, 2, 3, 1.5, -1, 0.5}, {2, 3, -1, 0.5, 1.5, 0}, {1, 2, 3, 4, 5, 6}};
  const double w[6] = {0.5, -1, 2, 1.5, -0.5, 1};
  for (size_t r = 0; r < sizeof rows / sizeof *rows; ++r) {
    ct_tensor *x = ts_tensor(ctx, dt, 1, (int64_t[]){6}, rows[r]), *wt = ts_tensor(ctx, dt, 1, (int64_t[]){6}, w);
    ct_tape *t = ts_tape(ctx, false, false);
    OK(ct_tape_watch(t, x));
    ct_tensor *y = NULL, *p = NULL, *loss = NULL;
    OK(ct_cumprod(x, 0, &y));
    OK(ct_mul(y, wt, &p));
    OK(ct_sum(p, NULL, 0, false, &loss));
    OK(ct_tape_end(t));
    ct_tensor *g = ts_grad1(t, loss, x);
    double want[6];
    for (int i = 0; i < 6; ++i) {
      want[i] = 0;
      for (int j = i; j < 6; ++j) {
        double prod = w[j];
        for (int k = 0; k <= j; ++k)
          if (k != i) prod *= rows[r][k];
        want[i] += prod;
      }
    }
    char msg[48];
    snprintf(msg, sizeof msg, "d cumprod, row %zu", r);
    ts_assert_close(g, want, 6, 1e-12, 1e-6, msg);
    cr_expect(r == 4 || want[0] != 0 || r == 2, "the case has a nonzero gradient next to a zero");
    ct_tensor_free(x), ct_tensor_free(wt), ct_tensor_free(y), ct_tensor_free(p), ct_tensor_free(loss), ct_tensor_free(g);
    ct_tape_free(t);
  }
  ct_context_free(ctx);
}

/* ---- einsum ------------------------------------------------------------------------------------ */
static ct_tensor *rnd(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, uint64_t seed) {
  int64_t n = ts_numel(rank, shape);
  double *v = malloc(sizeof(double) * (size_t)(n + 1));
  ts_rng_state = seed;
  for (int64_t i = 0; i < n; ++i) v[i] = ts_rnd01() * 2 - 1;
  ct_tensor *t = ts_tensor(ctx, dt, rank, shape, v);
  free(v);
  return t;
}

static void same(const ct_tensor *got, const ct_tensor *want, const char *what) {
  int r = ct_tensor_rank(want);
  ts_assert_shape(got, r, ct_tensor_shape(want), what);
  double *w = ts_read(want);
  ts_assert_close(got, w, ct_tensor_size(want), 1e-12, 1e-5, what);
  free(w);
}

Test(einsum, against_explicit_ops) {
  ct_context *ctx = ts_ctx();
  for (size_t di = 0; di < 2; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    ct_tensor *A = rnd(ctx, dt, 2, (int64_t[]){3, 4}, 1), *B = rnd(ctx, dt, 2, (int64_t[]){4, 5}, 2);
    ct_tensor *C = rnd(ctx, dt, 2, (int64_t[]){5, 2}, 3);
    ct_tensor *BA = rnd(ctx, dt, 3, (int64_t[]){2, 3, 4}, 4), *BB = rnd(ctx, dt, 3, (int64_t[]){2, 4, 5}, 5);
    ct_tensor *u = rnd(ctx, dt, 1, (int64_t[]){4}, 6), *v = rnd(ctx, dt, 1, (int64_t[]){4}, 7);
    ct_tensor *e = NULL, *w = NULL, *w2 = NULL;
    /* matrix product, explicit and implicit */
    OK(ct_einsum("ij,jk->ik", (ct_tensor *[]){A, B}, 2, &e));
    OK(ct_matmul(A, B, false, false, &w));
    same(e, w, "ij,jk->ik");
    ct_tensor_free(e);
    OK(ct_einsum("ij,jk", (ct_tensor *[]){A, B}, 2, &e));
    same(e, w, "ij,jk (implicit)");
    ct_tensor_free(e);
    /* the product transposed: ki */
    OK(ct_einsum(" ij , jk -> ki ", (ct_tensor *[]){A, B}, 2, &e));
    OK(ct_transpose(w, NULL, &w2));
    same(e, w2, "ij,jk->ki");
    ct_tensor_free(e), ct_tensor_free(w), ct_tensor_free(w2);
    /* a right operand stored transposed */
    ct_tensor *Bt = NULL;
    OK(ct_transpose(B, NULL, &Bt));
    OK(ct_einsum("ij,kj->ik", (ct_tensor *[]){A, Bt}, 2, &e));
    OK(ct_matmul(A, Bt, false, true, &w));
    same(e, w, "ij,kj->ik");
    ct_tensor_free(e), ct_tensor_free(w), ct_tensor_free(Bt);
    /* batched */
    OK(ct_einsum("bij,bjk->bik", (ct_tensor *[]){BA, BB}, 2, &e));
    OK(ct_matmul(BA, BB, false, false, &w));
    same(e, w, "bij,bjk->bik");
    ct_tensor_free(e), ct_tensor_free(w);
    /* batch axis last in the result */
    OK(ct_einsum("bij,bjk->ikb", (ct_tensor *[]){BA, BB}, 2, &e));
    OK(ct_matmul(BA, BB, false, false, &w));
    OK(ct_transpose(w, (int[]){1, 2, 0}, &w2));
    same(e, w2, "bij,bjk->ikb");
    ct_tensor_free(e), ct_tensor_free(w), ct_tensor_free(w2);
    /* transpose, sums */
    OK(ct_einsum("ij->ji", (ct_tensor *[]){A}, 1, &e));
    OK(ct_transpose(A, NULL, &w));
    same(e, w, "ij->ji");
    ct_tensor_free(e), ct_tensor_free(w);
    OK(ct_einsum("ij->", (ct_tensor *[]){A}, 1, &e));
    OK(ct_sum(A, NULL, 0, false, &w));
    same(e, w, "ij->");
    ct_tensor_free(e), ct_tensor_free(w);
    OK(ct_einsum("ij->j", (ct_tensor *[]){A}, 1, &e));
    OK(ct_sum(A, (int[]){0}, 1, false, &w));
    same(e, w, "ij->j");
    ct_tensor_free(e), ct_tensor_free(w);
    OK(ct_einsum("bij->jb", (ct_tensor *[]){BA}, 1, &e));
    OK(ct_sum(BA, (int[]){1}, 1, false, &w));
    OK(ct_transpose(w, NULL, &w2));
    same(e, w2, "bij->jb");
    ct_tensor_free(e), ct_tensor_free(w), ct_tensor_free(w2);
    /* dot and outer */
    OK(ct_einsum("i,i->", (ct_tensor *[]){u, v}, 2, &e));
    OK(ct_mul(u, v, &w));
    OK(ct_sum(w, NULL, 0, false, &w2));
    same(e, w2, "i,i->");
    ct_tensor_free(e), ct_tensor_free(w), ct_tensor_free(w2);
    OK(ct_einsum("i,j->ij", (ct_tensor *[]){u, v}, 2, &e));
    double *uv = ts_read(u), *vv = ts_read(v), outer[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) outer[i * 4 + j] = uv[i] * vv[j];
    ts_assert_shape(e, 2, (int64_t[]){4, 4}, "i,j->ij");
    ts_assert_close(e, outer, 16, 1e-12, 1e-6, "i,j->ij");
    free(uv), free(vv);
    ct_tensor_free(e);
    /* three operands: (A B) C; a letter summed in one operand only (row sums of A dotted with u) */
    OK(ct_einsum("ij,jk,kl->il", (ct_tensor *[]){A, B, C}, 3, &e));
    OK(ct_matmul(A, B, false, false, &w));
    OK(ct_matmul(w, C, false, false, &w2));
    same(e, w2, "ij,jk,kl->il");
    ct_tensor_free(e), ct_tensor_free(w), ct_tensor_free(w2);
    OK(ct_einsum("ij,j->", (ct_tensor *[]){A, u}, 2, &e));
    {
      ct_tensor *u2 = NULL, *m = NULL;
      OK(ct_reshape(u, 2, (int64_t[]){4, 1}, &u2));
      OK(ct_matmul(A, u2, false, false, &m));
      OK(ct_sum(m, NULL, 0, false, &w));
      same(e, w, "ij,j->");
      ct_tensor_free(u2), ct_tensor_free(m);
    }
    ct_tensor_free(e), ct_tensor_free(w);
    ct_tensor *all[] = {A, B, C, BA, BB, u, v};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i) ct_tensor_free(all[i]);
  }
  ct_context_free(ctx);
}

/* the gradient of "bij,bjk->bik" is matmul's */
Test(einsum, gradient_is_the_matmul_gradient) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  ct_tensor *a = rnd(ctx, dt, 3, (int64_t[]){2, 3, 4}, 8), *b = rnd(ctx, dt, 3, (int64_t[]){2, 4, 5}, 9);
  ct_tensor *g[2][2];
  for (int way = 0; way < 2; ++way) {
    ct_tape *t = ts_tape(ctx, true, false);
    OK(ct_tape_watch(t, a));
    OK(ct_tape_watch(t, b));
    ct_tensor *y = NULL, *y2 = NULL, *l = NULL;
    if (way == 0) OK(ct_einsum("bij,bjk->bik", (ct_tensor *[]){a, b}, 2, &y));
    else OK(ct_matmul(a, b, false, false, &y));
    OK(ct_square(y, &y2));
    OK(ct_sum(y2, NULL, 0, false, &l));
    OK(ct_tape_end(t));
    g[way][0] = ts_grad1(t, l, a);
    g[way][1] = ts_grad1(t, l, b);
    ct_tensor_free(y), ct_tensor_free(y2), ct_tensor_free(l);
    ct_tape_free(t);
  }
  same(g[0][0], g[1][0], "d/da");
  same(g[0][1], g[1][1], "d/db");
  for (int i = 0; i < 4; ++i) ct_tensor_free(g[i / 2][i % 2]);
  ct_tensor_free(a), ct_tensor_free(b);
  ct_context_free(ctx);
}

Test(einsum, errors_name_the_problem) {
  ct_context *ctx = ts_ctx();
  ct_tensor *A = rnd(ctx, CT_FLOAT32, 2, (int64_t[]){3, 4}, 1), *B = rnd(ctx, CT_FLOAT32, 2, (int64_t[]){4, 5}, 2);
  ct_tensor *S = rnd(ctx, CT_FLOAT32, 2, (int64_t[]){3, 3}, 3), *out = NULL;
  static const struct {
    const char *eq;
    int n;
    ct_status want;
    const char *needle;
  } cases[] = {
      {"ii->i", 1, CT_ERR_UNSUPPORTED, "repeats in operand 0"},
      {"ii->", 1, CT_ERR_UNSUPPORTED, "diagonals"},
      {"...ij->ij", 1, CT_ERR_UNSUPPORTED, "ellipsis"},
      {"ij,jk->ik", 1, CT_ERR_INVALID, "more operands"},
      {"ij->ik", 1, CT_ERR_INVALID, "'k' of the result is in no operand"},
      {"ij->ii", 1, CT_ERR_INVALID, "repeats in the result"},
      {"ij->i->j", 1, CT_ERR_INVALID, "two \"->\""},
      {"i3->i", 1, CT_ERR_INVALID, "not a letter"},
      {"ij-<i", 1, CT_ERR_INVALID, "not a letter"},
      {"ijk->i", 1, CT_ERR_SHAPE, "rank 2"},
      {"ij,ij->i", 2, CT_ERR_SHAPE, "letter 'i' has extent 4"},
      {"ij", 2, CT_ERR_INVALID, "names 1 operands, 2 given"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; ++k) {
    ct_tensor *xs[2] = {k < 2 ? S : A, B};
    EXPECT_STATUS(ct_einsum(cases[k].eq, xs, cases[k].n, &out), cases[k].want);
    cr_expect(strstr(ct_errmsg(), cases[k].needle), "\"%s\": message \"%s\" lacks \"%s\"", cases[k].eq, ct_errmsg(),
              cases[k].needle);
    cr_assert_null(out);
  }
  /* many operands: 32 at most, and an equation naming more terms than given */
  ct_tensor *many[33];
  char eq[200] = "";
  for (int i = 0; i < 33; ++i) many[i] = A, strcat(eq, i ? ",ij" : "ij");
  strcat(eq, "->ij");
  EXPECT_STATUS(ct_einsum(eq, many, 33, &out), CT_ERR_INVALID);
  cr_expect(strstr(ct_errmsg(), "1 to 32"), "%s", ct_errmsg());
  EXPECT_STATUS(ct_einsum(eq, many, 32, &out), CT_ERR_INVALID);
  cr_expect(strstr(ct_errmsg(), "more operands than the 32 given"), "%s", ct_errmsg());
  cr_assert_null(out);
  /* 32 operands: the elementwise product of 32 copies */
  ct_tensor *o3 = rnd(ctx, CT_FLOAT32, 1, (int64_t[]){3}, 12);
  for (int i = 0; i < 32; ++i) many[i] = o3;
  char eq32[120] = "";
  for (int i = 0; i < 32; ++i) strcat(eq32, i ? ",i" : "i");
  strcat(eq32, "->i");
  OK(ct_einsum(eq32, many, 32, &out));
  double *ov = ts_read(o3), want[3];
  for (int k = 0; k < 3; ++k) want[k] = pow(ov[k], 32);
  ts_assert_close(out, want, 3, 1e-30, 1e-4, "32 operands");
  free(ov);
  ct_tensor_free(out), ct_tensor_free(o3);
  ct_tensor_free(A), ct_tensor_free(B), ct_tensor_free(S);
  ct_context_free(ctx);
}
