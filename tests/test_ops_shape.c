/*
 * test_ops_shape.c — shape and data-movement ops against host references: reshape, transpose,
 * slice (Python semantics: negative indices, steps of either sign, clamping, empty results),
 * concat, stack, broadcast_to, gather, one_hot and matmul (every transpose flag, batches that are
 * equal, broadcast or of different rank, odd sizes, float32 and float64).
 */
#include "support.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>




/* Distinct values 0, 1, 2, ... (exact in every dtype), so every misplaced element shows. */
static double *iota_vals(int64_t n) {
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  cr_assert(v);
  for (int64_t i = 0; i < n; ++i) v[i] = (double)i;
  return v;
}

static void strides_of(int rank, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    st[d] = s;
    s *= shape[d];
  }
}

static const ct_dtype DTS[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};

/* ---- reshape ------------------------------------------------------------------------------- */
Test(shape, reshape) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    double *v = iota_vals(24);
    int64_t s234[3] = {2, 3, 4};
    ct_tensor *x = ts_tensor(ctx, dt, 3, s234, v), *y = NULL, *z = NULL;
    OK(ct_reshape(x, 2, (int64_t[]){4, -1}, &y));
    ts_assert_shape(y, 2, (int64_t[]){4, 6}, "reshape (4, -1)");
    ts_assert_close(y, v, 24, 0, 0, "reshape keeps the row-major order");
    cr_assert_eq(ct_tensor_dtype(y), dt);
    OK(ct_reshape(y, 1, (int64_t[]){-1}, &z));
    ts_assert_shape(z, 1, (int64_t[]){24}, "flatten");
    ts_assert_close(z, v, 24, 0, 0, "flatten");
    ct_tensor_free(z);
    OK(ct_reshape(y, 4, (int64_t[]){1, 2, -1, 3}, &z));
    ts_assert_shape(z, 4, (int64_t[]){1, 2, 4, 3}, "(1, 2, -1, 3)");
    ct_tensor_free(z);
    OK(ct_reshape(x, 8, (int64_t[]){1, 2, 1, 3, 1, 4, 1, 1}, &z));
    ts_assert_shape(z, 8, (int64_t[]){1, 2, 1, 3, 1, 4, 1, 1}, "rank 8");
    ts_assert_close(z, v, 24, 0, 0, "rank 8");
    ct_tensor_free(z);
    ct_tensor_free(y);
    ct_tensor_free(x);
    /* 0-d <-> (1,) <-> (1, 1) */
    double one = 7;
    x = ts_tensor(ctx, dt, 0, NULL, &one);
    OK(ct_reshape(x, 2, (int64_t[]){1, -1}, &y));
    ts_assert_shape(y, 2, (int64_t[]){1, 1}, "scalar to (1, 1)");
    OK(ct_reshape(y, 0, NULL, &z));
    cr_assert_eq(ct_tensor_rank(z), 0);
    cr_assert_eq(ts_item(z), 7);
    ct_tensor_free_n((ct_tensor *[]){x, y, z}, 3);
    /* empty tensors */
    OK(ct_zeros(ctx, dt, 2, (int64_t[]){0, 3}, &x));
    OK(ct_reshape(x, 3, (int64_t[]){3, -1, 5}, &y));
    ts_assert_shape(y, 3, (int64_t[]){3, 0, 5}, "empty with -1");
    ct_tensor_free(y);
    EXPECT_STATUS(ct_reshape(x, 2, (int64_t[]){-1, 0}, &y), CT_ERR_SHAPE); /* -1 is ambiguous */
    cr_assert_null(y);
    ct_tensor_free(x);
    free(v);
  }
  ct_context_free(ctx);
}

/* ---- transpose ------------------------------------------------------------------------------- */
static void check_transpose(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const int *perm) {
  int64_t n = ts_numel(rank, shape), st[8], oshape[8], ost[8];
  double *v = iota_vals(n);
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v), *y = NULL;
  OK(ct_transpose(x, perm, &y));
  int p[8];
  for (int i = 0; i < rank; ++i) {
    p[i] = perm ? (perm[i] < 0 ? perm[i] + rank : perm[i]) : rank - 1 - i;
    oshape[i] = shape[p[i]];
  }
  ts_assert_shape(y, rank, oshape, "transpose");
  strides_of(rank, shape, st);
  strides_of(rank, oshape, ost);
  double *want = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t o = 0; o < n; ++o) {
    int64_t rem = o, src = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t c = rem % oshape[d];
      rem /= oshape[d];
      src += c * st[p[d]];
    }
    want[o] = v[src];
  }
  ts_assert_close(y, want, n, 0, 0, "transpose values");
  free(want);
  free(v);
  ct_tensor_free(y);
  ct_tensor_free(x);
}

Test(shape, transpose) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    check_transpose(ctx, dt, 2, (int64_t[]){17, 33}, NULL);
    check_transpose(ctx, dt, 2, (int64_t[]){5, 3}, (int[]){0, 1});
    check_transpose(ctx, dt, 3, (int64_t[]){2, 3, 4}, NULL);
    int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int k = 0; k < 6; ++k) check_transpose(ctx, dt, 3, (int64_t[]){2, 3, 4}, perms[k]);
    check_transpose(ctx, dt, 3, (int64_t[]){2, 3, 4}, (int[]){-1, 0, -2});
    check_transpose(ctx, dt, 4, (int64_t[]){2, 3, 4, 5}, (int[]){3, 1, 0, 2});
    check_transpose(ctx, dt, 8, (int64_t[]){2, 1, 2, 3, 1, 2, 1, 2}, (int[]){7, 3, 5, 0, 6, 1, 4, 2});
    check_transpose(ctx, dt, 3, (int64_t[]){2, 0, 4}, (int[]){2, 0, 1});
    check_transpose(ctx, dt, 0, NULL, NULL);
    check_transpose(ctx, dt, 1, (int64_t[]){5}, NULL);
    /* large enough that a CPU's copy runs several elements of the innermost axis per work-item
     * (ctb_copy_strided: up to 32, strided in the source) */
    check_transpose(ctx, dt, 3, (int64_t[]){32, 40, 64}, (int[]){1, 2, 0});
    check_transpose(ctx, dt, 3, (int64_t[]){16, 24, 32}, (int[]){0, 2, 1});
  }
  ct_context_free(ctx);
}

/* ---- slice ------------------------------------------------------------------------------------- */
/* CPython's slice.indices(): start, step and length of x[b:e:s] on an axis of n. */
static int64_t py_slice(int64_t n, const int64_t *b, const int64_t *e, int64_t s, int64_t *start) {
  int64_t lo = s < 0 ? -1 : 0, hi = s < 0 ? n - 1 : n;
  int64_t st, en;
  if (!b) st = s < 0 ? hi : lo;
  else {
    st = *b;
    if (st < 0) {
      st += n;
      if (st < lo) st = lo;
    } else if (st > hi) st = hi;
  }
  if (!e) en = s < 0 ? lo : hi;
  else {
    en = *e;
    if (en < 0) {
      en += n;
      if (en < lo) en = lo;
    } else if (en > hi) en = hi;
  }
  *start = st;
  if (s > 0) return en > st ? (en - st - 1) / s + 1 : 0;
  return st > en ? (st - en - 1) / (-s) + 1 : 0;
}

static void check_slice(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const int64_t *b,
                        const int64_t *e, const int64_t *s) {
  int64_t n = ts_numel(rank, shape), st[8], start[8], len[8], step[8];
  double *v = iota_vals(n);
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v), *y = NULL;
  OK(ct_slice(x, b, e, s, &y));
  char what[256];
  int k = snprintf(what, sizeof what, "slice [%s]", ct_dtype_name(dt));
  for (int d = 0; d < rank; ++d) {
    step[d] = s ? s[d] : 1;
    len[d] = py_slice(shape[d], b ? &b[d] : NULL, e ? &e[d] : NULL, step[d], &start[d]);
    k += snprintf(what + k, sizeof what - (size_t)k, " %lld:%lld:%lld/%lld", b ? (long long)b[d] : -999LL,
                  e ? (long long)e[d] : -999LL, (long long)step[d], (long long)shape[d]);
  }
  ts_assert_shape(y, rank, len, what);
  strides_of(rank, shape, st);
  int64_t m = ts_numel(rank, len);
  double *want = malloc(sizeof(double) * (size_t)(m ? m : 1));
  for (int64_t o = 0; o < m; ++o) {
    int64_t rem = o, src = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t c = rem % len[d];
      rem /= len[d];
      src += (start[d] + c * step[d]) * st[d];
    }
    want[o] = v[src];
  }
  ts_assert_close(y, want, m, 0, 0, what);
  free(want);
  free(v);
  ct_tensor_free(y);
  ct_tensor_free(x);
}

Test(shape, slice_python_semantics) {
  ct_context *ctx = ts_ctx();
  static const int64_t idx[] = {-12, -8, -7, -6, -2, -1, 0, 1, 3, 6, 7, 8, 100};
  static const int64_t steps[] = {1, 2, 3, -1, -2, -3, 7, -8};
  const int ni = (int)(sizeof idx / sizeof *idx), ns = (int)(sizeof steps / sizeof *steps);
  int64_t shape[1] = {7};
  /* every begin/end (given or defaulted) with every step on a 1-D tensor of 7 */
  for (int s = 0; s < ns; ++s)
    for (int bi = -1; bi < ni; ++bi)
      for (int ei = -1; ei < ni; ++ei) {
        const int64_t *b = bi < 0 ? NULL : &idx[bi], *e = ei < 0 ? NULL : &idx[ei];
        check_slice(ctx, CT_FLOAT32, 1, shape, b, e, &steps[s]);
      }
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    int64_t s3[3] = {4, 5, 6};
    check_slice(ctx, dt, 3, s3, (int64_t[]){1, -1, 0}, (int64_t[]){3, -6, 6}, (int64_t[]){1, -2, 2});
    check_slice(ctx, dt, 3, s3, NULL, NULL, (int64_t[]){-1, -1, -1});
    check_slice(ctx, dt, 3, s3, (int64_t[]){-100, 2, 5}, (int64_t[]){100, 2, 0}, NULL); /* empty middle */
    check_slice(ctx, dt, 3, s3, (int64_t[]){0, 0, 5}, (int64_t[]){4, 5, -100}, (int64_t[]){3, 2, -4});
    check_slice(ctx, dt, 3, s3, NULL, NULL, NULL);
    check_slice(ctx, dt, 2, (int64_t[]){0, 3}, NULL, NULL, (int64_t[]){-1, 2});
    check_slice(ctx, dt, 0, NULL, NULL, NULL, NULL);
    /* runs of the innermost axis per work-item on a CPU, read backwards, and with a step */
    check_slice(ctx, dt, 2, (int64_t[]){64, 256}, NULL, NULL, (int64_t[]){-1, -1});
    check_slice(ctx, dt, 2, (int64_t[]){64, 512}, (int64_t[]){1, 1}, NULL, (int64_t[]){1, 2});
  }
  /* step 0 is an error */
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 1, shape, &x));
  EXPECT_STATUS(ct_slice(x, NULL, NULL, (int64_t[]){0}, &y), CT_ERR_INVALID);
  cr_assert_null(y);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- concat / stack ------------------------------------------------------------------------------ */
Test(shape, concat_each_axis) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    for (int axis = -3; axis < 3; ++axis) {
      int a = axis < 0 ? axis + 3 : axis;
      int64_t ext[3] = {2, 0, 3}; /* an empty piece in the middle */
      ct_tensor *xs[3];
      double *vals[3];
      int64_t shapes[3][3];
      double base = 0;
      for (int i = 0; i < 3; ++i) {
        int64_t sh[3] = {2, 3, 4};
        sh[a] = ext[i];
        memcpy(shapes[i], sh, sizeof sh);
        int64_t n = ts_numel(3, sh);
        vals[i] = iota_vals(n);
        for (int64_t k = 0; k < n; ++k) vals[i][k] += base;
        base += 1000;
        xs[i] = ts_tensor(ctx, dt, 3, sh, vals[i]);
      }
      ct_tensor *y = NULL;
      OK(ct_concat(xs, 3, axis, &y));
      int64_t os[3] = {2, 3, 4};
      os[a] = 5;
      ts_assert_shape(y, 3, os, "concat");
      double want[120];
      int64_t m = ts_numel(3, os), ost[3];
      strides_of(3, os, ost);
      for (int64_t o = 0; o < m; ++o) {
        int64_t c[3], rem = o;
        for (int d = 2; d >= 0; --d) {
          c[d] = rem % os[d];
          rem /= os[d];
        }
        int piece = c[a] < 2 ? 0 : 2;
        if (piece == 2) c[a] -= 2;
        int64_t pst[3];
        strides_of(3, shapes[piece], pst);
        want[o] = vals[piece][c[0] * pst[0] + c[1] * pst[1] + c[2] * pst[2]];
      }
      ts_assert_close(y, want, m, 0, 0, "concat values");
      ct_tensor_free(y);
      /* one tensor: a copy */
      OK(ct_concat(xs, 1, axis, &y));
      ts_assert_shape(y, 3, shapes[0], "concat of one");
      ts_assert_close(y, vals[0], ts_numel(3, shapes[0]), 0, 0, "concat of one");
      ct_tensor_free(y);
      for (int i = 0; i < 3; ++i) {
        ct_tensor_free(xs[i]);
        free(vals[i]);
      }
    }
  }
  ct_context_free(ctx);
}

Test(shape, stack_each_axis) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    int64_t sh[2] = {2, 3};
    double *v0 = iota_vals(6), v1[6];
    for (int i = 0; i < 6; ++i) v1[i] = 100 + i;
    ct_tensor *xs[2] = {ts_tensor(ctx, dt, 2, sh, v0), ts_tensor(ctx, dt, 2, sh, v1)};
    for (int axis = -3; axis < 3; ++axis) {
      int a = axis < 0 ? axis + 3 : axis;
      ct_tensor *y = NULL;
      OK(ct_stack(xs, 2, axis, &y));
      int64_t os[3];
      for (int d = 0, k = 0; d < 3; ++d) os[d] = d == a ? 2 : sh[k++];
      ts_assert_shape(y, 3, os, "stack");
      double want[12];
      for (int64_t o = 0; o < 12; ++o) {
        int64_t c[3], rem = o;
        for (int d = 2; d >= 0; --d) {
          c[d] = rem % os[d];
          rem /= os[d];
        }
        int64_t which = c[a], rc[2];
        for (int d = 0, k = 0; d < 3; ++d)
          if (d != a) rc[k++] = c[d];
        want[o] = (which ? v1 : v0)[rc[0] * 3 + rc[1]];
      }
      ts_assert_close(y, want, 12, 0, 0, "stack values");
      ct_tensor_free(y);
    }
    /* stacking scalars gives a vector */
    double a = 1, b = 2;
    ct_tensor *ss[2] = {ts_tensor(ctx, dt, 0, NULL, &a), ts_tensor(ctx, dt, 0, NULL, &b)}, *y = NULL;
    OK(ct_stack(ss, 2, 0, &y));
    ts_assert_shape(y, 1, (int64_t[]){2}, "stack of scalars");
    ts_assert_close(y, (double[]){1, 2}, 2, 0, 0, "stack of scalars");
    ct_tensor_free_n((ct_tensor *[]){ss[0], ss[1], y, xs[0], xs[1]}, 5);
    free(v0);
  }
  ct_context_free(ctx);
}

/* ---- broadcast_to ---------------------------------------------------------------------------------- */
static void check_broadcast_to(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, int orank,
                               const int64_t *oshape) {
  int64_t n = ts_numel(rank, shape), m = ts_numel(orank, oshape);
  double *v = iota_vals(n);
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v), *y = NULL;
  OK(ct_broadcast_to(x, orank, oshape, &y));
  ts_assert_shape(y, orank, oshape, "broadcast_to");
  double *want = malloc(sizeof(double) * (size_t)(m ? m : 1));
  for (int64_t o = 0; o < m; ++o) {
    int64_t rem = o, idx = 0, mul = 1;
    for (int d = orank - 1; d >= 0; --d) {
      int64_t c = rem % oshape[d];
      rem /= oshape[d];
      int sd = d - (orank - rank);
      if (sd >= 0) {
        if (shape[sd] != 1) idx += c * mul;
        mul *= shape[sd];
      }
    }
    want[o] = v[idx];
  }
  ts_assert_close(y, want, m, 0, 0, "broadcast_to values");
  free(want);
  free(v);
  ct_tensor_free(y);
  ct_tensor_free(x);
}

Test(shape, broadcast_to) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    check_broadcast_to(ctx, dt, 2, (int64_t[]){3, 1}, 3, (int64_t[]){2, 3, 4});
    check_broadcast_to(ctx, dt, 0, NULL, 2, (int64_t[]){2, 2});
    check_broadcast_to(ctx, dt, 2, (int64_t[]){2, 3}, 2, (int64_t[]){2, 3});
    check_broadcast_to(ctx, dt, 1, (int64_t[]){1}, 1, (int64_t[]){0});
    check_broadcast_to(ctx, dt, 1, (int64_t[]){4}, 8, (int64_t[]){1, 2, 1, 2, 1, 2, 1, 4});
    check_broadcast_to(ctx, dt, 3, (int64_t[]){1, 3, 1}, 3, (int64_t[]){5, 3, 7});
  }
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 1, (int64_t[]){3}, &x));
  EXPECT_STATUS(ct_broadcast_to(x, 2, (int64_t[]){3, 4}, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_broadcast_to(x, 0, NULL, &y), CT_ERR_SHAPE);
  cr_assert_null(y);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- gather / one_hot ------------------------------------------------------------------------------- */
static void check_gather(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, int irank, const int64_t *ishape,
                         const double *idx, int axis) {
  int a = axis < 0 ? axis + rank : axis;
  int64_t n = ts_numel(rank, shape), k = ts_numel(irank, ishape);
  double *v = iota_vals(n);
  for (int64_t i = 0; i < n; ++i) v[i] += 1; /* zero marks "out of range" */
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v), *ix = ts_tensor(ctx, CT_INT32, irank, ishape, idx), *y = NULL;
  OK(ct_gather(x, ix, axis, &y));
  int64_t oshape[8];
  int orank = 0;
  for (int d = 0; d < a; ++d) oshape[orank++] = shape[d];
  for (int d = 0; d < irank; ++d) oshape[orank++] = ishape[d];
  for (int d = a + 1; d < rank; ++d) oshape[orank++] = shape[d];
  ts_assert_shape(y, orank, oshape, "gather");
  int64_t outer = 1, inner = 1, N = shape[a];
  for (int d = 0; d < a; ++d) outer *= shape[d];
  for (int d = a + 1; d < rank; ++d) inner *= shape[d];
  int64_t m = outer * k * inner;
  double *want = malloc(sizeof(double) * (size_t)(m ? m : 1));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t t = (int64_t)idx[j];
        want[(o * k + j) * inner + i] = t >= 0 && t < N ? v[(o * N + t) * inner + i] : 0;
      }
  ts_assert_close(y, want, m, 0, 0, "gather values");
  free(want);
  free(v);
  ct_tensor_free_n((ct_tensor *[]){x, ix, y}, 3);
}

Test(shape, gather_each_axis) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    int64_t sh[3] = {3, 4, 5};
    double idx[] = {2, 0, -1, 1, 7, 2}; /* -1 and 7 are out of range on every axis */
    for (int axis = -3; axis < 3; ++axis) {
      check_gather(ctx, dt, 3, sh, 1, (int64_t[]){6}, idx, axis);
      check_gather(ctx, dt, 3, sh, 2, (int64_t[]){2, 3}, idx, axis);
      check_gather(ctx, dt, 3, sh, 0, NULL, idx, axis);             /* a scalar index drops the axis */
      check_gather(ctx, dt, 3, sh, 1, (int64_t[]){0}, idx, axis);    /* no indices */
    }
    check_gather(ctx, dt, 1, (int64_t[]){5}, 1, (int64_t[]){4}, (double[]){4, 3, 5, 0}, 0);
  }
  ct_context_free(ctx);
}

Test(shape, one_hot) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    double idx[] = {0, 3, -1, 2, 4, 1};
    int64_t ish[2] = {2, 3};
    ct_tensor *ix = ts_tensor(ctx, CT_INT32, 2, ish, idx), *y = NULL;
    OK(ct_one_hot(ix, 4, dt, &y));
    ts_assert_shape(y, 3, (int64_t[]){2, 3, 4}, "one_hot");
    cr_assert_eq(ct_tensor_dtype(y), dt);
    double want[24] = {0};
    for (int i = 0; i < 6; ++i)
      if (idx[i] >= 0 && idx[i] < 4) want[i * 4 + (int)idx[i]] = 1;
    ts_assert_close(y, want, 24, 0, 0, "one_hot values");
    ct_tensor_free(y);
    OK(ct_one_hot(ix, 0, dt, &y));
    ts_assert_shape(y, 3, (int64_t[]){2, 3, 0}, "one_hot depth 0");
    ct_tensor_free(y);
    ct_tensor_free(ix);
    double s = 2;
    ix = ts_tensor(ctx, CT_INT32, 0, NULL, &s);
    OK(ct_one_hot(ix, 3, dt, &y));
    ts_assert_shape(y, 1, (int64_t[]){3}, "one_hot of a scalar");
    ts_assert_close(y, (double[]){0, 0, 1}, 3, 0, 0, "one_hot of a scalar");
    ct_tensor_free(y);
    ct_tensor_free(ix);
  }
  ct_context_free(ctx);
}

/* ---- matmul -------------------------------------------------------------------------------------- */
/* op(A)[i][p] with A stored row-major as (rows, cols) */
static double mat_at(const double *a, int64_t rows, int64_t cols, bool t, int64_t i, int64_t p) {
  (void)rows;
  return t ? a[p * cols + i] : a[i * cols + p];
}

static void check_matmul(ct_context *ctx, ct_dtype dt, int ra, const int64_t *sa, int rb, const int64_t *sb, bool ta,
                         bool tb) {
  ts_rng_state += 17;
  int64_t na = ts_numel(ra, sa), nb = ts_numel(rb, sb);
  double *a = malloc(sizeof(double) * (size_t)(na ? na : 1)), *b = malloc(sizeof(double) * (size_t)(nb ? nb : 1));
  for (int64_t i = 0; i < na; ++i) a[i] = ts_to_dtype(dt, 2 * ts_rnd01() - 1);
  for (int64_t i = 0; i < nb; ++i) b[i] = ts_to_dtype(dt, 2 * ts_rnd01() - 1);
  ct_tensor *x = ts_tensor(ctx, dt, ra, sa, a), *w = ts_tensor(ctx, dt, rb, sb, b), *y = NULL;
  OK(ct_matmul(x, w, ta, tb, &y));
  int64_t arows = sa[ra - 2], acols = sa[ra - 1], brows = sb[rb - 2], bcols = sb[rb - 1];
  int64_t m = ta ? acols : arows, k = ta ? arows : acols, n = tb ? brows : bcols;
  /* batch shape: broadcast of the leading axes */
  int br = (ra > rb ? ra : rb) - 2;
  int64_t bs[8], oshape[8];
  for (int d = 0; d < br; ++d) {
    int da = d - (br - (ra - 2)), db = d - (br - (rb - 2));
    int64_t ea = da >= 0 ? sa[da] : 1, eb = db >= 0 ? sb[db] : 1;
    bs[d] = ea > eb ? ea : eb;
    oshape[d] = bs[d];
  }
  oshape[br] = m;
  oshape[br + 1] = n;
  char what[160];
  snprintf(what, sizeof what, "matmul %s%s [%s] rank %d x %d, m %lld k %lld n %lld", ta ? "A^T" : "A", tb ? "B^T" : "B",
           ct_dtype_name(dt), ra, rb, (long long)m, (long long)k, (long long)n);
  ts_assert_shape(y, br + 2, oshape, what);
  int64_t batch = ts_numel(br, bs);
  double *got = ts_read(y), u = dt == CT_FLOAT32 ? 0x1p-24 : 0x1p-53;
  for (int64_t bi = 0; bi < batch; ++bi) {
    /* batch index of each operand */
    int64_t rem = bi, ia = 0, ib = 0, mula = 1, mulb = 1;
    for (int d = br - 1; d >= 0; --d) {
      int64_t c = rem % bs[d];
      rem /= bs[d];
      int da = d - (br - (ra - 2)), db = d - (br - (rb - 2));
      if (da >= 0) {
        if (sa[da] != 1) ia += c * mula;
        mula *= sa[da];
      }
      if (db >= 0) {
        if (sb[db] != 1) ib += c * mulb;
        mulb *= sb[db];
      }
    }
    const double *A = a + ia * arows * acols, *B = b + ib * brows * bcols;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0, sabs = 0;
        for (int64_t p = 0; p < k; ++p) {
          double t = mat_at(A, arows, acols, ta, i, p) * mat_at(B, brows, bcols, tb, p, j);
          s += t;
          sabs += fabs(t);
        }
        double g = got[(bi * m + i) * n + j];
        double tol = (double)(k + 2) * u * sabs;
        cr_assert(fabs(g - s) <= tol, "%s: batch %lld (%lld, %lld) = %.17g, wanted %.17g", what, (long long)bi,
                  (long long)i, (long long)j, g, s);
      }
  }
  free(got);
  free(a);
  free(b);
  ct_tensor_free_n((ct_tensor *[]){x, w, y}, 3);
}

/* shapes of A and B for op(A) (m x k) and op(B) (k x n) */
static void mat_shape(int64_t m, int64_t k, bool t, int64_t *out) {
  out[0] = t ? k : m;
  out[1] = t ? m : k;
}

static void matmul_suite(ct_dtype dt) {
  ct_context *ctx = ts_ctx();
  if (dt == CT_FLOAT64) ts_require_fp64(ctx);
  ts_rng_state = 1;
  for (int f = 0; f < 4; ++f) {
    bool ta = f & 1, tb = f & 2;
    int64_t sa[4], sb[4];
    /* 2-D, odd sizes */
    mat_shape(17, 33, ta, sa);
    mat_shape(33, 9, tb, sb);
    check_matmul(ctx, dt, 2, sa, 2, sb, ta, tb);
    mat_shape(1, 5, ta, sa);
    mat_shape(5, 1, tb, sb);
    check_matmul(ctx, dt, 2, sa, 2, sb, ta, tb);
    /* equal batch */
    int64_t a3[3] = {3, 0, 0}, b3[3] = {3, 0, 0};
    mat_shape(17, 33, ta, a3 + 1);
    mat_shape(33, 9, tb, b3 + 1);
    check_matmul(ctx, dt, 3, a3, 3, b3, ta, tb);
    /* batch 1 against batch B, both ways */
    a3[0] = 1;
    check_matmul(ctx, dt, 3, a3, 3, b3, ta, tb);
    a3[0] = 4;
    b3[0] = 1;
    check_matmul(ctx, dt, 3, a3, 3, b3, ta, tb);
    /* rank 2 against rank 3, both ways */
    int64_t a2[2], b2[2];
    mat_shape(17, 33, ta, a2);
    mat_shape(33, 9, tb, b2);
    b3[0] = 5;
    check_matmul(ctx, dt, 2, a2, 3, b3, ta, tb);
    check_matmul(ctx, dt, 3, a3, 2, b2, ta, tb);
    /* (2, 1, ...) x (1, 3, ...): a real broadcast of both batches */
    int64_t a4[4] = {2, 1, 0, 0}, b4[4] = {1, 3, 0, 0};
    mat_shape(7, 6, ta, a4 + 2);
    mat_shape(6, 5, tb, b4 + 2);
    check_matmul(ctx, dt, 4, a4, 4, b4, ta, tb);
    /* rank 4 against rank 3 with a broadcast inner batch */
    int64_t b3c[3] = {1, 0, 0};
    mat_shape(6, 5, tb, b3c + 1);
    int64_t a4c[4] = {2, 3, 0, 0};
    mat_shape(7, 6, ta, a4c + 2);
    check_matmul(ctx, dt, 4, a4c, 3, b3c, ta, tb);
  }
  /* degenerate: k = 0 gives zeros, m = 0 gives an empty result */
  check_matmul(ctx, dt, 2, (int64_t[]){3, 0}, 2, (int64_t[]){0, 4}, false, false);
  check_matmul(ctx, dt, 2, (int64_t[]){0, 3}, 2, (int64_t[]){3, 4}, false, false);
  check_matmul(ctx, dt, 3, (int64_t[]){2, 3, 0}, 3, (int64_t[]){2, 0, 4}, false, false);
  /* a larger one */
  check_matmul(ctx, dt, 2, (int64_t[]){129, 257}, 2, (int64_t[]){257, 65}, false, false);
  ct_context_free(ctx);
}
Test(matmul, float32) { matmul_suite(CT_FLOAT32); }
Test(matmul, float64) { matmul_suite(CT_FLOAT64); }

Test(matmul, errors) {
  ct_context *ctx = ts_ctx();
  ct_tensor *a = NULL, *b = NULL, *y = NULL, *i = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 2, (int64_t[]){3, 4}, &a));
  OK(ct_zeros(ctx, CT_FLOAT32, 2, (int64_t[]){5, 2}, &b));
  EXPECT_STATUS(ct_matmul(a, b, false, false, &y), CT_ERR_SHAPE);
  cr_assert_null(y);
  EXPECT_STATUS(ct_matmul(a, b, true, true, &y), CT_ERR_SHAPE); /* (4, 3) x (2, 5) */
  ct_tensor_free(b);
  OK(ct_zeros(ctx, CT_FLOAT32, 2, (int64_t[]){5, 4}, &b));
  OK(ct_matmul(a, b, false, true, &y)); /* (3, 4) x (4, 5) */
  ts_assert_shape(y, 2, (int64_t[]){3, 5}, "matmul with transpose_b");
  ct_tensor_free(y);
  ct_tensor_free(b);
  OK(ct_zeros(ctx, CT_FLOAT32, 3, (int64_t[]){2, 4, 2}, &b));
  ct_tensor *a3 = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 3, (int64_t[]){3, 3, 4}, &a3));
  EXPECT_STATUS(ct_matmul(a3, b, false, false, &y), CT_ERR_SHAPE); /* batch 3 vs 2 */
  OK(ct_zeros(ctx, CT_INT32, 2, (int64_t[]){4, 2}, &i));
  EXPECT_STATUS(ct_matmul(a, i, false, false, &y), CT_ERR_DTYPE);
  ct_tensor *i2 = NULL;
  OK(ct_zeros(ctx, CT_INT32, 2, (int64_t[]){2, 4}, &i2));
  EXPECT_STATUS(ct_matmul(i2, i, false, false, &y), CT_ERR_DTYPE); /* no integer gemm */
  ct_tensor_free(i2);
  ct_tensor *v = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 1, (int64_t[]){4}, &v));
  EXPECT_STATUS(ct_matmul(a, v, false, false, &y), CT_ERR_SHAPE);
  ct_tensor_free_n((ct_tensor *[]){a, b, a3, i, v}, 5);
  ct_context_free(ctx);
}

/* ---- empty tensors with huge extents ---------------------------------------------------------- */
/* A zero extent makes the element count 0, not the other extents harmless: their product (strides,
 * outer and inner counts) must still fit. Such shapes are refused at creation; the largest accepted
 * ones run through every shape op and its gradient without overflowing anything (the sanitizer
 * build checks that no signed arithmetic overflows on the way). */
Test(shape, empty_tensors_with_huge_extents) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = NULL;
  const int64_t big = (int64_t)1 << 28;
  EXPECT_STATUS(ct_zeros(ctx, CT_FLOAT32, 3, (int64_t[]){0, INT64_MAX, INT64_MAX}, &t), CT_ERR_SHAPE);
  cr_assert_null(t);
  EXPECT_STATUS(ct_zeros(ctx, CT_FLOAT32, 4, (int64_t[]){INT64_MAX, 2, 0, 2}, &t), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_zeros(ctx, CT_FLOAT32, 3, (int64_t[]){big * 8, 0, big * 8}, &t), CT_ERR_SHAPE);
  ct_tensor *e = NULL, *y = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 3, (int64_t[]){0, big, big}, &e));
  /* reshape of an empty tensor: any shape with a zero extent, but not one whose others overflow */
  EXPECT_STATUS(ct_reshape(e, 3, (int64_t[]){INT64_MAX, 0, INT64_MAX}, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_reshape(e, 3, (int64_t[]){INT64_MAX, 2, 0}, &y), CT_ERR_SHAPE);
  OK(ct_reshape(e, 3, (int64_t[]){big, 0, big}, &y));
  ts_assert_shape(y, 3, (int64_t[]){big, 0, big}, "reshape");
  ct_tensor_free(y);
  /* broadcast_to and binary broadcasting to a shape whose non-zero extents overflow */
  EXPECT_STATUS(ct_broadcast_to(e, 4, (int64_t[]){INT64_MAX, 0, big, big}, &y), CT_ERR_SHAPE);
  ct_tensor *col = NULL, *row = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 4, (int64_t[]){0, 1, (int64_t)1 << 31, 1}, &col));
  OK(ct_zeros(ctx, CT_FLOAT32, 4, (int64_t[]){1, (int64_t)1 << 31, 1, 0}, &row));
  EXPECT_STATUS(ct_add(col, row, &y), CT_ERR_SHAPE); /* (0, 2^31, 2^31, 0): 2^62 elements but for the zeros */
  ct_tensor_free(col);
  ct_tensor_free(row);
  /* concat: extents that add up past int64 */
  ct_tensor *part = NULL, *parts[17];
  OK(ct_zeros(ctx, CT_FLOAT32, 2, (int64_t[]){0, (int64_t)1 << 59}, &part));
  for (int i = 0; i < 17; ++i) parts[i] = part;
  EXPECT_STATUS(ct_concat(parts, 17, 1, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_concat(parts, 9, 1, &y), CT_ERR_SHAPE);
  OK(ct_concat(parts, 2, 0, &y));
  ts_assert_shape(y, 2, (int64_t[]){0, (int64_t)1 << 59}, "concat");
  ct_tensor_free(y);
  EXPECT_STATUS(ct_stack(parts, 17, 1, &y), CT_ERR_SHAPE);
  ct_tensor_free(part);
  /* matmul whose broadcast batch overflows */
  ct_tensor *a = NULL, *b = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 4, (int64_t[]){(int64_t)1 << 31, 1, 0, 1}, &a));
  OK(ct_zeros(ctx, CT_FLOAT32, 4, (int64_t[]){1, (int64_t)1 << 31, 1, 0}, &b));
  EXPECT_STATUS(ct_matmul(a, b, false, false, &y), CT_ERR_SHAPE);
  ct_tensor_free(a);
  ct_tensor_free(b);
  /* every shape op and its gradient on the largest empty tensors accepted */
  ct_tape *tape = NULL;
  ct_tape_options to = ct_tape_default_options();
  to.persistent = true;
  OK(ct_tape_begin(ctx, &to, &tape));
  OK(ct_tape_watch(tape, e));
  ct_tensor *r[16] = {NULL};
  int k = 0;
  OK(ct_transpose(e, (const int[]){2, 0, 1}, &r[k++]));
  OK(ct_slice(e, (int64_t[]){0, 1, -1}, (int64_t[]){0, INT64_MAX, INT64_MIN}, (int64_t[]){1, INT64_MAX, -3}, &r[k++]));
  OK(ct_concat((ct_tensor *[]){e, e}, 2, 2, &r[k++]));
  OK(ct_stack((ct_tensor *[]){e, e}, 2, 3, &r[k++]));
  OK(ct_broadcast_to(e, 4, (int64_t[]){7, 0, big, big}, &r[k++]));
  OK(ct_matmul(e, e, false, true, &r[k++]));
  OK(ct_matmul(e, e, true, false, &r[k++]));
  OK(ct_prod(e, (const int[]){1}, 1, false, &r[k++]));
  OK(ct_sum(e, (const int[]){1, 2}, 2, true, &r[k++])); /* (0, 1, 1): a sum over axis 0 would be a (1, big, 1) tensor of 1 GiB */
  OK(ct_mean(e, (const int[]){1}, 1, false, &r[k++]));
  EXPECT_STATUS(ct_max(e, (const int[]){0}, 1, false, &r[k]), CT_ERR_SHAPE); /* an empty axis: no identity */
  OK(ct_max(e, (const int[]){1}, 1, false, &r[k++]));                     /* an empty result: fine */
  OK(ct_argmax(e, 2, &r[k++]));
  OK(ct_mul(e, e, &r[k++]));
  OK(ct_tape_end(tape));
  ts_assert_shape(r[0], 3, (int64_t[]){big, 0, big}, "transpose");
  ts_assert_shape(r[5], 3, (int64_t[]){0, big, big}, "matmul");
  ts_assert_shape(r[6], 3, (int64_t[]){0, big, big}, "matmul^T");
  ts_assert_shape(r[7], 2, (int64_t[]){0, big}, "prod");
  for (int i = 0; i < k; ++i) {
    if (ct_tensor_dtype(r[i]) == CT_INT32) continue; /* argmax */
    ct_tensor *g = NULL;
    OK(ct_tape_gradient(tape, &r[i], 1, &e, 1, NULL, CT_UNCONNECTED_ZERO, &g));
    ts_assert_shape(g, 3, (int64_t[]){0, big, big}, "gradient");
    ct_tensor_free(g);
  }
  ct_tape_free(tape);
  ct_tensor_free_n(r, k);
  ct_tensor_free(e);
  ct_context_free(ctx);
}

/* ---- squeeze, expand_dims, clip_by_value, pad, tile, split, cumsum ------------------------------- */
static void unravel(int64_t o, int rank, const int64_t *shape, int64_t *c) {
  for (int d = rank - 1; d >= 0; --d) {
    c[d] = shape[d] ? o % shape[d] : 0;
    o = shape[d] ? o / shape[d] : 0;
  }
}
static int64_t ravel(int rank, const int64_t *shape, const int64_t *c) {
  int64_t o = 0;
  for (int d = 0; d < rank; ++d) o = o * shape[d] + c[d];
  return o;
}

Test(shape, squeeze_and_expand_dims) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    double *v = iota_vals(6);
    ct_tensor *x = ts_tensor(ctx, dt, 4, (int64_t[]){1, 3, 1, 2}, v), *y = NULL;
    OK(ct_squeeze(x, NULL, 0, &y));
    ts_assert_shape(y, 2, (int64_t[]){3, 2}, "squeeze all");
    ts_assert_close(y, v, 6, 0, 0, "squeeze all");
    ct_tensor_free(y);
    OK(ct_squeeze(x, (int[]){0}, 1, &y));
    ts_assert_shape(y, 3, (int64_t[]){3, 1, 2}, "squeeze axis 0");
    ct_tensor_free(y);
    OK(ct_squeeze(x, (int[]){-2, 0}, 2, &y));
    ts_assert_shape(y, 2, (int64_t[]){3, 2}, "squeeze axes -2, 0");
    ts_assert_close(y, v, 6, 0, 0, "squeeze axes -2, 0");
    cr_assert_eq(ct_tensor_dtype(y), dt);
    ct_tensor_free(y);
    ct_tensor_free(x);
    x = ts_tensor(ctx, dt, 2, (int64_t[]){2, 3}, v);
    for (int axis = -3; axis <= 2; ++axis) {
      int a = axis < 0 ? axis + 3 : axis;
      int64_t os[3];
      for (int d = 0, k = 0; d < 3; ++d) os[d] = d == a ? 1 : (int64_t[]){2, 3}[k++];
      OK(ct_expand_dims(x, axis, &y));
      ts_assert_shape(y, 3, os, "expand_dims");
      ts_assert_close(y, v, 6, 0, 0, "expand_dims");
      ct_tensor_free(y);
    }
    double one = 5;
    ct_tensor *s = ts_tensor(ctx, dt, 0, NULL, &one);
    OK(ct_expand_dims(s, -1, &y));
    ts_assert_shape(y, 1, (int64_t[]){1}, "expand_dims of a scalar");
    ct_tensor *z = NULL;
    OK(ct_squeeze(y, NULL, 0, &z));
    cr_assert_eq(ct_tensor_rank(z), 0, "squeeze back to a scalar");
    ts_assert_close(z, &one, 1, 0, 0, "squeeze back to a scalar");
    ct_tensor_free_n((ct_tensor *[]){s, y, z, x}, 4);
    free(v);
  }
  ct_context_free(ctx);
}

Test(shape, clip_by_value) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    double v[12], want[12];
    double lo = dt == CT_INT32 ? -2 : -1.25, hi = dt == CT_INT32 ? 3 : 1.5;
    for (int i = 0; i < 12; ++i) {
      v[i] = dt == CT_INT32 ? i - 5 : -2.75 + 0.5 * i;
      want[i] = v[i] < lo ? lo : (v[i] > hi ? hi : v[i]);
    }
    ct_tensor *x = ts_tensor(ctx, dt, 2, (int64_t[]){3, 4}, v), *y = NULL;
    OK(ct_clip_by_value(x, lo, hi, &y));
    ts_assert_shape(y, 2, (int64_t[]){3, 4}, "clip_by_value");
    cr_assert_eq(ct_tensor_dtype(y), dt);
    ts_assert_close(y, want, 12, 0, 0, "clip_by_value");
    ct_tensor_free(y);
    OK(ct_clip_by_value(x, 0.5, 0.5, &y)); /* lo == hi: a constant */
    for (int i = 0; i < 12; ++i) want[i] = dt == CT_INT32 ? 0 : 0.5;
    ts_assert_close(y, want, 12, 0, 0, "clip_by_value to one value");
    ct_tensor_free_n((ct_tensor *[]){x, y}, 2);
  }
  ct_context_free(ctx);
}

/* pad against its definition: out[c] = x[c - before] inside, value outside */
static void check_pad(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const int64_t *pads, double value) {
  int64_t n = 1, os[8], on = 1;
  for (int d = 0; d < rank; ++d) {
    n *= shape[d];
    os[d] = shape[d] + pads[2 * d] + pads[2 * d + 1];
    on *= os[d];
  }
  double *v = iota_vals(n), *want = malloc(sizeof(double) * (size_t)(on ? on : 1));
  for (int64_t o = 0; o < on; ++o) {
    int64_t c[8];
    unravel(o, rank, os, c);
    bool in = true;
    for (int d = 0; d < rank; ++d) {
      c[d] -= pads[2 * d];
      in = in && c[d] >= 0 && c[d] < shape[d];
    }
    want[o] = in ? v[ravel(rank, shape, c)] : value;
  }
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v), *y = NULL;
  OK(ct_pad(x, pads, value, &y));
  ts_assert_shape(y, rank, os, "pad");
  cr_assert_eq(ct_tensor_dtype(y), dt);
  ts_assert_close(y, want, on, 0, 0, "pad");
  ct_tensor_free_n((ct_tensor *[]){x, y}, 2);
  free(v);
  free(want);
}

Test(shape, pad) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    check_pad(ctx, dt, 2, (int64_t[]){2, 3}, (int64_t[]){1, 0, 2, 1}, 0);
    check_pad(ctx, dt, 2, (int64_t[]){2, 3}, (int64_t[]){0, 2, 0, 0}, -7);
    check_pad(ctx, dt, 3, (int64_t[]){2, 1, 3}, (int64_t[]){1, 1, 0, 3, 2, 0}, 9);
    check_pad(ctx, dt, 1, (int64_t[]){0}, (int64_t[]){2, 1}, 4); /* an empty tensor: all padding */
    check_pad(ctx, dt, 0, NULL, NULL, 3);                        /* a scalar: nothing to pad */
  }
  ct_context_free(ctx);
}

/* tile against its definition: out[c] = x[c mod shape] */
static void check_tile(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const int64_t *mult) {
  int64_t n = 1, os[8], on = 1;
  for (int d = 0; d < rank; ++d) {
    n *= shape[d];
    os[d] = shape[d] * mult[d];
    on *= os[d];
  }
  double *v = iota_vals(n), *want = malloc(sizeof(double) * (size_t)(on ? on : 1));
  for (int64_t o = 0; o < on; ++o) {
    int64_t c[8];
    unravel(o, rank, os, c);
    for (int d = 0; d < rank; ++d) c[d] %= shape[d];
    want[o] = v[ravel(rank, shape, c)];
  }
  ct_tensor *x = ts_tensor(ctx, dt, rank, shape, v), *y = NULL;
  OK(ct_tile(x, mult, &y));
  ts_assert_shape(y, rank, os, "tile");
  cr_assert_eq(ct_tensor_dtype(y), dt);
  ts_assert_close(y, want, on, 0, 0, "tile");
  ct_tensor_free_n((ct_tensor *[]){x, y}, 2);
  free(v);
  free(want);
}

Test(shape, tile) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    check_tile(ctx, dt, 2, (int64_t[]){2, 3}, (int64_t[]){2, 3});
    check_tile(ctx, dt, 2, (int64_t[]){2, 3}, (int64_t[]){1, 1});
    check_tile(ctx, dt, 2, (int64_t[]){2, 3}, (int64_t[]){0, 2});
    check_tile(ctx, dt, 3, (int64_t[]){2, 1, 3}, (int64_t[]){3, 4, 1});
    check_tile(ctx, dt, 1, (int64_t[]){5}, (int64_t[]){3});
    check_tile(ctx, dt, 0, NULL, NULL);
  }
  ct_context_free(ctx);
}

Test(shape, split_inverts_concat) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    int64_t sh[3] = {4, 5, 2};
    double *v = iota_vals(40);
    ct_tensor *x = ts_tensor(ctx, dt, 3, sh, v);
    static const int64_t sizes[3][4] = {{1, 0, 3, 0}, {2, 1, 2, 0}, {1, 1, 0, 0}};
    static const int nparts[3] = {3, 3, 2};
    for (int axis = -3; axis < 3; ++axis) {
      int a = axis < 0 ? axis + 3 : axis;
      ct_tensor *parts[4] = {0}, *back = NULL;
      OK(ct_split(x, sizes[a], nparts[a], axis, parts));
      int64_t off = 0;
      for (int p = 0; p < nparts[a]; ++p) {
        int64_t ps[3] = {sh[0], sh[1], sh[2]};
        ps[a] = sizes[a][p];
        ts_assert_shape(parts[p], 3, ps, "split part");
        int64_t pn = ps[0] * ps[1] * ps[2];
        double want[40];
        for (int64_t o = 0; o < pn; ++o) {
          int64_t c[3];
          unravel(o, 3, ps, c);
          c[a] += off;
          want[o] = v[ravel(3, sh, c)];
        }
        ts_assert_close(parts[p], want, pn, 0, 0, "split part values");
        off += sizes[a][p];
      }
      OK(ct_concat(parts, nparts[a], axis, &back));
      ts_assert_shape(back, 3, sh, "concat of the parts");
      ts_assert_close(back, v, 40, 0, 0, "concat of the parts");
      ct_tensor_free(back);
      ct_tensor_free_n(parts, nparts[a]);
    }
    ct_tensor_free(x);
    free(v);
  }
  ct_context_free(ctx);
}

Test(shape, cumsum) {
  ct_context *ctx = ts_ctx();
  static const int64_t shapes[][2] = {{3, 4}, {1, 9}, {5, 1}, {2, 0}, {7, 17}};
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; ++si) {
      const int64_t *sh = shapes[si];
      int64_t n = sh[0] * sh[1];
      double *v = iota_vals(n), *want = malloc(sizeof(double) * (size_t)(n ? n : 1));
      for (int64_t i = 0; i < n; ++i) v[i] = (double)((i * 7) % 11) - 4; /* exact sums in every dtype */
      ct_tensor *x = ts_tensor(ctx, dt, 2, sh, v);
      for (int axis = -2; axis < 2; ++axis) {
        int a = axis < 0 ? axis + 2 : axis;
        for (int64_t o = 0; o < n; ++o) {
          int64_t c[2];
          unravel(o, 2, sh, c);
          want[o] = v[o] + (c[a] > 0 ? want[o - (a ? 1 : sh[1])] : 0);
        }
        ct_tensor *y = NULL;
        OK(ct_cumsum(x, axis, &y));
        ts_assert_shape(y, 2, sh, "cumsum");
        cr_assert_eq(ct_tensor_dtype(y), dt);
        ts_assert_close(y, want, n, 0, 0, "cumsum");
        ct_tensor_free(y);
      }
      ct_tensor_free(x);
      free(v);
      free(want);
    }
  }
  ct_context_free(ctx);
}
