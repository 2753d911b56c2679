/*
 * test_ops_index.c — gather_nd, scatter, scatter_add and boolean_mask: values written out by hand,
 * then every index depth into tensors of rank 1 to 4 against a host reference, repeated indices
 * (scatter_add adds them up, scatter keeps the last), empty indices, masks and tensors, indices out
 * of range (an error naming the index, nothing computed), and the gradients, read through a tape.
 */
#include "support.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const ct_dtype DTS[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
#define SH(...) ((const int64_t[]){__VA_ARGS__})

static ct_tensor *ints(ct_context *ctx, int rank, const int64_t *shape, const double *v) {
  return ts_tensor(ctx, CT_INT32, rank, shape, v);
}

/* ---- values written out by hand ------------------------------------------------------------- */
enum { GATHER_ND, SCATTER_ADD, SCATTER, BOOLEAN_MASK };
typedef struct {
  const char *what;
  int op;
  int xr, ir, ur, yr; /* ranks of x, the indices (or mask), the updates, the result */
  int64_t xs[2], is[3], us[2], ys[2];
  double x[8], idx[10], u[6], want[9];
} by_hand;

static const by_hand HAND[] = {
    /* x = [[1, 2, 3], [4, 5, 6]] */
    {"gather_nd elements [1, 2], [0, 0], [1, 0]", GATHER_ND, 2, 2, 0, 1, {2, 3}, {3, 2}, {0}, {3},
     {1, 2, 3, 4, 5, 6}, {1, 2, 0, 0, 1, 0}, {0}, {6, 1, 4}},
    {"gather_nd rows 1, 0, 1", GATHER_ND, 2, 2, 0, 2, {2, 3}, {3, 1}, {0}, {3, 3},
     {1, 2, 3, 4, 5, 6}, {1, 0, 1}, {0}, {4, 5, 6, 1, 2, 3, 4, 5, 6}},
    {"gather_nd batched indices (2, 1, 2)", GATHER_ND, 2, 3, 0, 2, {2, 3}, {2, 1, 2}, {0}, {2, 1},
     {1, 2, 3, 4, 5, 6}, {0, 2, 1, 1}, {0}, {3, 5}},
    {"gather_nd one index vector: a scalar", GATHER_ND, 2, 1, 0, 0, {2, 3}, {2}, {0}, {0},
     {1, 2, 3, 4, 5, 6}, {1, 0}, {0}, {4}},
    /* TensorFlow's tensor_scatter_nd_add / _update example: [1 .. 8], [9 .. 12] at 4, 3, 1, 7 */
    {"scatter_add (TensorFlow's example)", SCATTER_ADD, 1, 2, 1, 1, {8}, {4, 1}, {4}, {8},
     {1, 2, 3, 4, 5, 6, 7, 8}, {4, 3, 1, 7}, {9, 10, 11, 12}, {1, 13, 3, 14, 14, 6, 7, 20}},
    {"scatter_add: 1 three times, 6 twice", SCATTER_ADD, 1, 2, 1, 1, {8}, {5, 1}, {5}, {8},
     {1, 2, 3, 4, 5, 6, 7, 8}, {1, 6, 1, 1, 6}, {10, 20, 30, 40, 50}, {1, 82, 3, 4, 5, 6, 77, 8}},
    {"scatter_add rows 2, 0, 2", SCATTER_ADD, 2, 2, 2, 2, {3, 2}, {3, 1}, {3, 2}, {3, 2},
     {1, 2, 3, 4, 5, 6}, {2, 0, 2}, {10, 20, 30, 40, 50, 60}, {31, 42, 3, 4, 65, 86}},
    {"scatter (TensorFlow's example)", SCATTER, 1, 2, 1, 1, {8}, {4, 1}, {4}, {8},
     {1, 2, 3, 4, 5, 6, 7, 8}, {4, 3, 1, 7}, {9, 10, 11, 12}, {1, 11, 3, 10, 9, 6, 7, 12}},
    {"scatter: (0, 1) three times, (1, 2) twice, the last wins", SCATTER, 2, 2, 1, 2, {2, 3}, {5, 2}, {5}, {2, 3},
     {1, 2, 3, 4, 5, 6}, {0, 1, 1, 2, 0, 1, 0, 1, 1, 2}, {10, 20, 30, 40, 50}, {1, 40, 3, 4, 5, 50}},
    {"scatter rows 2, 0, 2", SCATTER, 2, 2, 2, 2, {3, 2}, {3, 1}, {3, 2}, {3, 2},
     {1, 2, 3, 4, 5, 6}, {2, 0, 2}, {10, 20, 30, 40, 50, 60}, {30, 40, 3, 4, 50, 60}},
    {"boolean_mask rows 0 and 2", BOOLEAN_MASK, 2, 1, 0, 2, {3, 2}, {3}, {0}, {2, 2},
     {1, 2, 3, 4, 5, 6}, {1, 0, 1}, {0}, {1, 2, 5, 6}},
    {"boolean_mask of x's shape (negative is true)", BOOLEAN_MASK, 2, 2, 0, 1, {3, 2}, {3, 2}, {0}, {3},
     {1, 2, 3, 4, 5, 6}, {0, 7, -1, 0, 0, 2}, {0}, {2, 3, 6}},
    {"boolean_mask: nothing selected", BOOLEAN_MASK, 2, 1, 0, 2, {3, 2}, {3}, {0}, {0, 2},
     {1, 2, 3, 4, 5, 6}, {0, 0, 0}, {0}, {0}},
};

Test(index, by_hand) {
  ct_context *ctx = ts_ctx();
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    for (size_t k = 0; k < sizeof HAND / sizeof *HAND; ++k) {
      const by_hand *c = &HAND[k];
      ct_tensor *x = ts_tensor(ctx, dt, c->xr, c->xs, c->x), *idx = ints(ctx, c->ir, c->is, c->idx), *u = NULL, *y = NULL;
      ct_status s;
      switch (c->op) {
      case GATHER_ND: s = ct_gather_nd(x, idx, &y); break;
      case BOOLEAN_MASK: s = ct_boolean_mask(x, idx, &y); break;
      default:
        u = ts_tensor(ctx, dt, c->ur, c->us, c->u);
        s = c->op == SCATTER ? ct_scatter(x, idx, u, &y) : ct_scatter_add(x, idx, u, &y);
      }
      cr_assert_eq(s, CT_OK, "%s (%s): %s", c->what, ct_dtype_name(dt), ct_errmsg());
      ts_assert_shape(y, c->yr, c->ys, c->what);
      cr_assert_eq(ct_tensor_dtype(y), dt, "%s", c->what);
      ts_assert_close(y, c->want, ts_numel(c->yr, c->ys), 0, 0, c->what);
      ct_tensor_free_n((ct_tensor *[]){x, idx, u, y}, 4);
    }
    /* a comparison's mask: x[x > 2] */
    ct_tensor *x = ts_tensor(ctx, dt, 1, SH(5), (double[]){3, 1, 4, 1, 5}), *m = NULL, *y = NULL;
    OK(ct_greater_scalar(x, 2, &m));
    OK(ct_boolean_mask(x, m, &y));
    ts_assert_shape(y, 1, SH(3), "x[x > 2]");
    ts_assert_close(y, (double[]){3, 4, 5}, 3, 0, 0, "x[x > 2]");
    ct_tensor_free_n((ct_tensor *[]){x, m, y}, 3);
  }
  /* a replaced infinity or NaN leaves nothing behind */
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, SH(3), (double[]){INFINITY, NAN, 1}), *y = NULL;
  ct_tensor *idx = ints(ctx, 2, SH(2, 1), (double[]){0, 1});
  ct_tensor *u = ts_tensor(ctx, CT_FLOAT32, 1, SH(2), (double[]){5, 6});
  OK(ct_scatter(x, idx, u, &y));
  ts_assert_close(y, (double[]){5, 6, 1}, 3, 0, 0, "inf and NaN replaced");
  ct_tensor_free_n((ct_tensor *[]){x, idx, u, y}, 4);
  ct_context_free(ctx);
}

/* ---- every depth into ranks 1 to 4, against a host reference -------------------------------- */
typedef struct {
  int rank;
  int64_t shape[4];
} shape4;
static const shape4 SHAPES[] = {{1, {5}}, {2, {3, 4}}, {3, {2, 3, 4}}, {4, {2, 3, 2, 3}}};

/* K index vectors of depth D into shape, drawn from a fixed sequence (repeats included) */
static double *draw_indices(const shape4 *s, int D, int64_t K, uint64_t *state) {
  double *v = malloc(sizeof(double) * (size_t)(K * D > 0 ? K * D : 1));
  cr_assert(v);
  for (int64_t k = 0; k < K; ++k)
    for (int d = 0; d < D; ++d) v[k * D + d] = (double)(ts_splitmix64(state) % (uint64_t)s->shape[d]);
  return v;
}

static int64_t row_of(const shape4 *s, const double *iv, int D, int64_t *inner) {
  int64_t row = 0;
  *inner = 1;
  for (int d = 0; d < s->rank; ++d) {
    if (d < D) row = row * s->shape[d] + (int64_t)iv[d];
    else *inner *= s->shape[d];
  }
  return row;
}

Test(index, ranks_one_to_four) {
  ct_context *ctx = ts_ctx();
  uint64_t state = 7;
  for (int di = 0; di < 3; ++di) {
    ct_dtype dt = DTS[di];
    if (!ts_has_dtype(ctx, dt)) continue;
    for (size_t si = 0; si < sizeof SHAPES / sizeof *SHAPES; ++si) {
      const shape4 *s = &SHAPES[si];
      int64_t n = ts_numel(s->rank, s->shape);
      double *xv = malloc(sizeof(double) * (size_t)n);
      for (int64_t i = 0; i < n; ++i) xv[i] = (double)(i + 1);
      ct_tensor *x = ts_tensor(ctx, dt, s->rank, s->shape, xv);
      for (int D = 0; D <= s->rank; ++D) {
        const int64_t K = 6; /* indices (2, 3, D) */
        double *iv = draw_indices(s, D, K, &state);
        ct_tensor *idx = ints(ctx, 3, SH(2, 3, D), iv), *g = NULL, *sa = NULL, *sc = NULL;
        int64_t inner, oshape[CT_MAX_RANK] = {2, 3};
        for (int d = D; d < s->rank; ++d) oshape[2 + d - D] = s->shape[d];
        OK(ct_gather_nd(x, idx, &g));
        ts_assert_shape(g, 2 + s->rank - D, oshape, "gather_nd shape");
        double *want = malloc(sizeof(double) * (size_t)(K * n + 1)), *sum = malloc(sizeof(double) * (size_t)n),
               *upd = malloc(sizeof(double) * (size_t)n);
        memcpy(sum, xv, sizeof(double) * (size_t)n);
        memcpy(upd, xv, sizeof(double) * (size_t)n);
        for (int64_t k = 0; k < K; ++k) {
          int64_t row = row_of(s, iv + k * D, D, &inner);
          for (int64_t e = 0; e < inner; ++e) {
            want[k * inner + e] = xv[row * inner + e];
            double u = 100.0 * (double)(k + 1) + (double)e; /* the update gather_nd's result is given */
            sum[row * inner + e] += u;
            upd[row * inner + e] = u;
          }
        }
        ts_assert_close(g, want, K * inner, 0, 0, "gather_nd values");
        /* updates[k] = 100 (k + 1) + e, of the gathered shape */
        for (int64_t k = 0; k < K; ++k)
          for (int64_t e = 0; e < inner; ++e) want[k * inner + e] = 100.0 * (double)(k + 1) + (double)e;
        ct_tensor *u = ts_tensor(ctx, dt, 2 + s->rank - D, oshape, want);
        OK(ct_scatter_add(x, idx, u, &sa));
        ts_assert_shape(sa, s->rank, s->shape, "scatter_add shape");
        ts_assert_close(sa, sum, n, 0, 0, "scatter_add values");
        OK(ct_scatter(x, idx, u, &sc));
        ts_assert_shape(sc, s->rank, s->shape, "scatter shape");
        ts_assert_close(sc, upd, n, 0, 0, "scatter values (the last repeated index wins)");
        ct_tensor_free_n((ct_tensor *[]){idx, g, sa, sc, u}, 5);
        free(iv);
        free(want);
        free(sum);
        free(upd);
      }
      /* boolean_mask over the first M axes: every third element of the mask set */
      for (int M = 1; M <= s->rank; ++M) {
        int64_t rows = ts_numel(M, s->shape), inner = n / rows, K = 0;
        double *mv = malloc(sizeof(double) * (size_t)rows), *want = malloc(sizeof(double) * (size_t)n);
        for (int64_t r = 0; r < rows; ++r) {
          mv[r] = r % 3 == 1 ? 1 : 0;
          if (mv[r] != 0) memcpy(want + K++ * inner, xv + r * inner, sizeof(double) * (size_t)inner);
        }
        ct_tensor *m = ints(ctx, M, s->shape, mv), *y = NULL;
        OK(ct_boolean_mask(x, m, &y));
        int64_t oshape[CT_MAX_RANK] = {K};
        for (int d = M; d < s->rank; ++d) oshape[1 + d - M] = s->shape[d];
        ts_assert_shape(y, 1 + s->rank - M, oshape, "boolean_mask shape");
        ts_assert_close(y, want, K * inner, 0, 0, "boolean_mask values");
        ct_tensor_free_n((ct_tensor *[]){m, y}, 2);
        free(mv);
        free(want);
      }
      ct_tensor_free(x);
      free(xv);
    }
  }
  ct_context_free(ctx);
}

/* ---- empty indices, masks and tensors -------------------------------------------------------- */
Test(index, empty) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 2, SH(3, 2), (double[]){1, 2, 3, 4, 5, 6}), *y = NULL;
  /* no index vectors */
  ct_tensor *none = ints(ctx, 2, SH(0, 1), NULL);
  OK(ct_gather_nd(x, none, &y));
  ts_assert_shape(y, 2, SH(0, 2), "no indices");
  ct_tensor_free(y);
  ct_tensor *u0 = ts_tensor(ctx, CT_FLOAT32, 2, SH(0, 2), NULL);
  OK(ct_scatter_add(x, none, u0, &y));
  ts_assert_close(y, (double[]){1, 2, 3, 4, 5, 6}, 6, 0, 0, "scatter_add of nothing");
  ct_tensor_free(y);
  OK(ct_scatter(x, none, u0, &y));
  ts_assert_close(y, (double[]){1, 2, 3, 4, 5, 6}, 6, 0, 0, "scatter of nothing");
  ct_tensor_free_n((ct_tensor *[]){y, none, u0}, 3);
  /* depth 0: each index names the whole tensor */
  ct_tensor *d0 = ints(ctx, 2, SH(2, 0), NULL);
  OK(ct_gather_nd(x, d0, &y));
  ts_assert_shape(y, 3, SH(2, 3, 2), "depth 0");
  ts_assert_close(y, (double[]){1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}, 12, 0, 0, "depth 0");
  ct_tensor_free_n((ct_tensor *[]){y, d0}, 2);
  /* an empty tensor with no indices into it */
  ct_tensor *e = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 2, SH(0, 3), &e));
  none = ints(ctx, 2, SH(0, 1), NULL);
  OK(ct_gather_nd(e, none, &y));
  ts_assert_shape(y, 2, SH(0, 3), "empty from empty");
  ct_tensor_free(y);
  ct_tensor *m0 = ints(ctx, 1, SH(0), NULL);
  OK(ct_boolean_mask(e, m0, &y));
  ts_assert_shape(y, 2, SH(0, 3), "empty mask");
  ct_tensor_free_n((ct_tensor *[]){y, m0, none, e, x}, 5);
  ct_context_free(ctx);
}

/* ---- indices out of range --------------------------------------------------------------------- */
Test(index, out_of_range) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 2, SH(3, 2), (double[]){1, 2, 3, 4, 5, 6}), *y = NULL;
  ct_tensor *u = ts_tensor(ctx, CT_FLOAT32, 1, SH(2), (double[]){1, 2});
  static const double bad[][4] = {{0, 0, 3, 1}, {0, 0, 1, 2}, {-1, 0, 0, 0}, {0, -5, 1, 1}};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; ++k) {
    ct_tensor *idx = ints(ctx, 2, SH(2, 2), bad[k]);
    y = (ct_tensor *)ctx;
    EXPECT_STATUS(ct_gather_nd(x, idx, &y), CT_ERR_INVALID);
    cr_assert_null(y);
    cr_assert(strstr(ct_errmsg(), "out of range"), "%s", ct_errmsg());
    EXPECT_STATUS(ct_scatter_add(x, idx, u, &y), CT_ERR_INVALID);
    EXPECT_STATUS(ct_scatter(x, idx, u, &y), CT_ERR_INVALID);
    cr_assert_null(y);
    ct_tensor_free(idx);
  }
  /* the message names the index and the axis */
  ct_tensor *idx = ints(ctx, 2, SH(2, 2), bad[0]);
  EXPECT_STATUS(ct_gather_nd(x, idx, &y), CT_ERR_INVALID);
  cr_assert(strstr(ct_errmsg(), "[3, 1]") && strstr(ct_errmsg(), "axis 0"), "%s", ct_errmsg());
  ct_tensor_free(idx);
  /* any index into an empty axis is out of range */
  ct_tensor *e = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 2, SH(0, 3), &e));
  idx = ints(ctx, 2, SH(1, 1), (double[]){0});
  EXPECT_STATUS(ct_gather_nd(e, idx, &y), CT_ERR_INVALID);
  ct_tensor_free_n((ct_tensor *[]){idx, e, x, u}, 4);
  /* the context still computes */
  x = ts_tensor(ctx, CT_FLOAT32, 1, SH(2), (double[]){1, 2});
  idx = ints(ctx, 2, SH(1, 1), (double[]){1});
  OK(ct_gather_nd(x, idx, &y));
  ts_assert_close(y, (double[]){2}, 1, 0, 0, "after the errors");
  ct_tensor_free_n((ct_tensor *[]){x, idx, y}, 3);
  ct_context_free(ctx);
}

/* ---- gradients -------------------------------------------------------------------------------- */
/* d/dx and d/du of sum(w * f(x, idx, u)), read through a tape, against want_x and want_u (u and
 * want_u NULL for gather_nd and boolean_mask) */
static void check_grads(ct_context *ctx, int op, const ct_tensor *x, const ct_tensor *idx, const ct_tensor *u,
                        const ct_tensor *w, const double *want_x, const double *want_u, const char *what) {
  ct_tape *t = ts_tape(ctx, true, true);
  ct_tensor *y = NULL, *l = NULL;
  OK(ct_tape_watch(t, x));
  if (u) OK(ct_tape_watch(t, u));
  switch (op) {
  case GATHER_ND: OK(ct_gather_nd(x, idx, &y)); break;
  case BOOLEAN_MASK: OK(ct_boolean_mask(x, idx, &y)); break;
  case SCATTER: OK(ct_scatter(x, idx, u, &y)); break;
  default: OK(ct_scatter_add(x, idx, u, &y));
  }
  OK(ct_mul(y, w, &l));
  ct_tensor *gx = ts_grad1(t, l, x), *gu = u ? ts_grad1(t, l, u) : NULL;
  ts_assert_close(gx, want_x, ct_tensor_size(x), 0, 0, what);
  if (u) ts_assert_close(gu, want_u, ct_tensor_size(u), 0, 0, what);
  ct_tensor_free_n((ct_tensor *[]){y, l, gx, gu}, 4);
  ct_tape_free(t);
}

Test(index, gradients) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  ct_tensor *x = ts_tensor(ctx, dt, 2, SH(3, 2), (double[]){1, 2, 3, 4, 5, 6});
  ct_tensor *w = ts_tensor(ctx, dt, 2, SH(3, 2), (double[]){1, 2, 3, 4, 5, 6});
  /* gather_nd of rows 2, 0, 2: row 2's gradients add up */
  ct_tensor *rows = ints(ctx, 2, SH(3, 1), (double[]){2, 0, 2});
  check_grads(ctx, GATHER_ND, x, rows, NULL, w, (double[]){3, 4, 0, 0, 6, 8}, NULL, "gather_nd: scatter-added back");
  /* elements (0, 1) twice, then (2, 0) */
  ct_tensor *ie = ints(ctx, 2, SH(3, 2), (double[]){0, 1, 0, 1, 2, 0});
  ct_tensor *u = ts_tensor(ctx, dt, 1, SH(3), (double[]){7, 8, 9});
  /* scatter: x gets zeros where replaced, the overwritten update nothing */
  check_grads(ctx, SCATTER, x, ie, u, w, (double[]){1, 0, 3, 4, 0, 6}, (double[]){0, 2, 5}, "scatter");
  /* scatter_add: x gets the whole gradient, each update the gradient at its index (gather_nd) */
  check_grads(ctx, SCATTER_ADD, x, ie, u, w, (double[]){1, 2, 3, 4, 5, 6}, (double[]){2, 2, 5}, "scatter_add");
  /* boolean_mask: the selected rows' gradients in place, zeros elsewhere */
  ct_tensor *m = ints(ctx, 1, SH(3), (double[]){0, 1, 1}), *w2 = ts_tensor(ctx, dt, 2, SH(2, 2), (double[]){1, 2, 3, 4});
  check_grads(ctx, BOOLEAN_MASK, x, m, NULL, w2, (double[]){0, 0, 1, 2, 3, 4}, NULL, "boolean_mask: into zeros");
  ct_tensor_free_n((ct_tensor *[]){x, w, rows, ie, u, m, w2}, 7);
  ct_context_free(ctx);
}
