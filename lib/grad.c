/* grad.c — the gradient of every differentiable op of the table, built from ordinary ops so
 * that an outer tape records them (higher derivatives come for free). A gradient function writes
 * dx[i] only where g->need[i]; it may return a gradient of the broadcast (output) shape: the tape
 * sums it back to the input's shape in ct__sum_to_shape, the one place that does so. */
#include "ct_internal.h"
#include <math.h>
#include <string.h>

ct_status ct__nograd(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx) {
  (void)g;
  (void)dy;
  (void)dx;
  return CT_OK;
}

/* Sums gt to `shape`, keeping its first `keep` axes (a batch of gradients) as they are. */
static ct_status sum_to(const ct_tensor *gt, int keep, int rank, const int64_t *shape, ct_tensor **out) {
  int axes[CT_MAX_RANK], n = 0;
  int lead = gt->rank - keep - rank;
  if (lead < 0) return ct__error(gt->ctx, CT_ERR_INTERNAL, "gradient has a lower rank than its input");
  for (int d = keep; d < gt->rank; ++d) {
    int e = d - keep;
    if (e < lead || (shape[e - lead] == 1 && gt->shape[d] != 1)) axes[n++] = d;
    else if (shape[e - lead] != gt->shape[d])
      return ct__error(gt->ctx, CT_ERR_INTERNAL, "gradient shape does not reduce to its input's shape");
  }
  int64_t full[CT_MAX_RANK + 1];
  for (int d = 0; d < keep; ++d) full[d] = gt->shape[d];
  for (int d = 0; d < rank; ++d) full[keep + d] = shape[d];
  if (keep + rank > CT_MAX_RANK) return ct__error(gt->ctx, CT_ERR_SHAPE, "a batch of gradients would have rank > 8");
  ct_tensor *s;
  CT_TRY(ct_sum(gt, axes, n, true, &s));
  ct_status st = ct_reshape(s, keep + rank, full, out);
  ct_tensor_free(s);
  return st;
}

ct_status ct__sum_to_shape(const ct_tensor *gt, int rank, const int64_t *shape, ct_tensor **out) {
  return sum_to(gt, 0, rank, shape, out);
}

ct_status ct__sum_to_shape_batched(const ct_tensor *gt, int rank, const int64_t *shape, ct_tensor **out) {
  return sum_to(gt, 1, rank, shape, out);
}

/* y = dy * f, the common case */
static ct_status times(const ct_tensor *dy, ct_tensor *f, ct_tensor **out) {
  if (!f) return CT_ERR_INTERNAL;
  ct_status s = ct_mul(dy, f, out);
  ct_tensor_free(f);
  return s;
}

/* ---- unary ------------------------------------------------------------------------------- */
CT_GRADIENT(ct__grad_neg) {
  (void)g;
  return ct_neg(dy, &dx[0]);
}
CT_GRADIENT(ct__grad_abs) {
  ct_tensor *s;
  CT_TRY(ct_sign(IN(0), &s));
  return times(dy, s, &dx[0]);
}
CT_GRADIENT(ct__grad_square) {
  ct_tensor *t;
  CT_TRY(ct_mul_scalar(IN(0), 2.0, &t));
  return times(dy, t, &dx[0]);
}
CT_GRADIENT(ct__grad_sqrt) {
  ct_tensor *t;
  CT_TRY(ct_rdiv_scalar(0.5, OUT, &t));
  return times(dy, t, &dx[0]);
}
CT_GRADIENT(ct__grad_rsqrt) {
  ct_tensor *y2 = NULL, *y3 = NULL, *t = NULL;
  ct_status s = ct_square(OUT, &y2);
  if (s == CT_OK) s = ct_mul(y2, OUT, &y3);
  if (s == CT_OK) s = ct_mul_scalar(y3, -0.5, &t);
  if (s == CT_OK) {
    s = ct_mul(dy, t, &dx[0]);
  }
  DROP(y2, y3, t);
  return s;
}
CT_GRADIENT(ct__grad_reciprocal) {
  ct_tensor *y2 = NULL, *t = NULL;
  ct_status s = ct_square(OUT, &y2);
  if (s == CT_OK) s = ct_neg(y2, &t);
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  DROP(y2, t);
  return s;
}
CT_GRADIENT(ct__grad_exp) { return ct_mul(dy, OUT, &dx[0]); }
CT_GRADIENT(ct__grad_expm1) {
  ct_tensor *t;
  CT_TRY(ct_add_scalar(OUT, 1.0, &t));
  return times(dy, t, &dx[0]);
}
CT_GRADIENT(ct__grad_log) { return ct_div(dy, IN(0), &dx[0]); }
CT_GRADIENT(ct__grad_log1p) {
  ct_tensor *t;
  CT_TRY(ct_add_scalar(IN(0), 1.0, &t));
  ct_status s = ct_div(dy, t, &dx[0]);
  ct_tensor_free(t);
  return s;
}
CT_GRADIENT(ct__grad_sin) {
  ct_tensor *t;
  CT_TRY(ct_cos(IN(0), &t));
  return times(dy, t, &dx[0]);
}
CT_GRADIENT(ct__grad_cos) {
  ct_tensor *s1 = NULL, *t = NULL;
  ct_status s = ct_sin(IN(0), &s1);
  if (s == CT_OK) s = ct_neg(s1, &t);
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  DROP(s1, t);
  return s;
}
CT_GRADIENT(ct__grad_tan) {
  ct_tensor *y2 = NULL, *t = NULL;
  ct_status s = ct_square(OUT, &y2);
  if (s == CT_OK) s = ct_add_scalar(y2, 1.0, &t);
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  DROP(y2, t);
  return s;
}
CT_GRADIENT(ct__grad_tanh) {
  ct_tensor *y2 = NULL, *t = NULL;
  ct_status s = ct_square(OUT, &y2);
  if (s == CT_OK) s = ct_rsub_scalar(1.0, y2, &t);
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  DROP(y2, t);
  return s;
}
CT_GRADIENT(ct__grad_sigmoid) {
  ct_tensor *om = NULL, *t = NULL;
  ct_status s = ct_rsub_scalar(1.0, OUT, &om);
  if (s == CT_OK) s = ct_mul(OUT, om, &t);
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  DROP(om, t);
  return s;
}
CT_GRADIENT(ct__grad_softplus) {
  ct_tensor *t;
  CT_TRY(ct_sigmoid(IN(0), &t));
  return times(dy, t, &dx[0]);
}
CT_GRADIENT(ct__grad_relu) {
  if (g->dy_masked) { /* dy is already dy * sign(y) (lib/tape.c, relu_mask_of) */
    dx[0] = ct_tensor_retain((ct_tensor *)dy);
    return CT_OK;
  }
  ct_tensor *t; /* y >= 0, so sign(y) is the step function */
  CT_TRY(ct_sign(OUT, &t));
  return times(dy, t, &dx[0]);
}
CT_GRADIENT(ct__grad_elu) {
  /* x > 0: 1; else exp(x) = y + 1; both are min(y, 0) + 1 */
  ct_tensor *m = NULL, *t = NULL;
  ct_status s = ct_minimum_scalar(OUT, 0.0, &m);
  if (s == CT_OK) s = ct_add_scalar(m, 1.0, &t);
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  DROP(m, t);
  return s;
}
CT_GRADIENT(ct__grad_gelu) {
  /* 0.5 (1 + erf(x/sqrt2)) + x exp(-x^2/2) / sqrt(2 pi) */
  const ct_tensor *x = IN(0);
  ct_tensor *a = NULL, *e = NULL, *c = NULL, *x2 = NULL, *h = NULL, *ex = NULL, *p = NULL, *q = NULL, *t = NULL;
  ct_status s = ct_mul_scalar(x, 0.70710678118654752440, &a);
  if (s == CT_OK) s = ct_erf(a, &e);
  if (s == CT_OK) s = ct_add_scalar(e, 1.0, &c);
  if (s == CT_OK) s = ct_square(x, &x2);
  if (s == CT_OK) s = ct_mul_scalar(x2, -0.5, &h);
  if (s == CT_OK) s = ct_exp(h, &ex);
  if (s == CT_OK) s = ct_mul(x, ex, &p);
  if (s == CT_OK) s = ct_mul_scalar(p, 0.39894228040143267794 * 2.0, &q); /* 2/sqrt(2 pi), halved below */
  if (s == CT_OK) s = ct_add(c, q, &t);
  ct_tensor *u = NULL;
  if (s == CT_OK) s = ct_mul_scalar(t, 0.5, &u);
  if (s == CT_OK) s = ct_mul(dy, u, &dx[0]);
  DROP(a, e, c, x2, h, ex, p, q, t, u);
  return s;
}
CT_GRADIENT(ct__grad_erf) {
  ct_tensor *x2 = NULL, *n = NULL, *e = NULL, *t = NULL;
  ct_status s = ct_square(IN(0), &x2);
  if (s == CT_OK) s = ct_neg(x2, &n);
  if (s == CT_OK) s = ct_exp(n, &e);
  if (s == CT_OK) s = ct_mul_scalar(e, 1.12837916709551257390, &t); /* 2/sqrt(pi) */
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  DROP(x2, n, e, t);
  return s;
}

/* ---- binary ------------------------------------------------------------------------------- */
CT_GRADIENT(ct__grad_add) {
  if (NEED(0)) dx[0] = ct_tensor_retain((ct_tensor *)dy);
  if (NEED(1)) dx[1] = ct_tensor_retain((ct_tensor *)dy);
  return CT_OK;
}
CT_GRADIENT(ct__grad_sub) {
  if (NEED(0)) dx[0] = ct_tensor_retain((ct_tensor *)dy);
  if (NEED(1)) CT_TRY(ct_neg(dy, &dx[1]));
  return CT_OK;
}
CT_GRADIENT(ct__grad_mul) {
  if (NEED(0)) CT_TRY(ct_mul(dy, IN(1), &dx[0]));
  if (NEED(1)) CT_TRY(ct_mul(dy, IN(0), &dx[1]));
  return CT_OK;
}
CT_GRADIENT(ct__grad_div) {
  if (NEED(0)) CT_TRY(ct_div(dy, IN(1), &dx[0]));
  if (NEED(1)) {
    ct_tensor *q = NULL, *t = NULL;
    ct_status s = ct_div(OUT, IN(1), &q); /* a/b^2 = y/b */
    if (s == CT_OK) s = ct_mul(dy, q, &t);
    if (s == CT_OK) s = ct_neg(t, &dx[1]);
    DROP(q, t);
    return s;
  }
  return CT_OK;
}
CT_GRADIENT(ct__grad_pow) {
  const ct_tensor *a = IN(0), *b = IN(1);
  if (NEED(0)) {
    ct_tensor *bm = NULL, *p = NULL, *t = NULL, *u = NULL;
    ct_status s = ct_sub_scalar(b, 1.0, &bm);
    if (s == CT_OK) s = ct_pow(a, bm, &p);
    if (s == CT_OK) s = ct_mul(p, b, &t);
    if (s == CT_OK) s = ct_mul(dy, t, &u);
    DROP(bm, p, t);
    if (s != CT_OK) return s;
    dx[0] = u;
  }
  if (NEED(1)) {
    /* y * log(a), taken as 0 where a <= 0 */
    ct_tensor *pos = NULL, *one = NULL, *safe = NULL, *l = NULL, *z = NULL, *lz = NULL, *t = NULL;
    ct_status s = ct_greater_scalar(a, 0.0, &pos);
    if (s == CT_OK) s = ct_ones_like(a, &one);
    if (s == CT_OK) s = ct_where(pos, a, one, &safe);
    if (s == CT_OK) s = ct_log(safe, &l);
    if (s == CT_OK) s = ct_zeros_like(a, &z);
    if (s == CT_OK) s = ct_where(pos, l, z, &lz);
    if (s == CT_OK) s = ct_mul(OUT, lz, &t);
    if (s == CT_OK) s = ct_mul(dy, t, &dx[1]);
    DROP(pos, one, safe, l, z, lz, t);
    return s;
  }
  return CT_OK;
}

/* dy where mask, 0 elsewhere */
static ct_status masked(const ct_tensor *mask, const ct_tensor *dy, bool invert, ct_tensor **out) {
  ct_tensor *z;
  CT_TRY(ct_scalar(dy->ctx, dy->dtype, 0.0, &z));
  ct_status s = invert ? ct_where(mask, z, dy, out) : ct_where(mask, dy, z, out);
  ct_tensor_free(z);
  return s;
}

static ct_status grad_extreme2(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx, bool is_max) {
  ct_tensor *m = NULL; /* where input 0 wins: a >= b for maximum, a <= b for minimum */
  ct_status s = is_max ? ct_greater_equal(IN(0), IN(1), &m) : ct_less_equal(IN(0), IN(1), &m);
  if (s == CT_OK && NEED(0)) s = masked(m, dy, false, &dx[0]);
  if (s == CT_OK && NEED(1)) s = masked(m, dy, true, &dx[1]);
  ct_tensor_free(m);
  return s;
}
CT_GRADIENT(ct__grad_maximum) { return grad_extreme2(g, dy, dx, true); }
CT_GRADIENT(ct__grad_minimum) { return grad_extreme2(g, dy, dx, false); }

CT_GRADIENT(ct__grad_select) {
  if (NEED(1)) CT_TRY(masked(IN(0), dy, false, &dx[1]));
  if (NEED(2)) CT_TRY(masked(IN(0), dy, true, &dx[2]));
  return CT_OK;
}
CT_GRADIENT(ct__grad_cast) {
  if (NEED(0) && ct__is_floating(g->e->out.dtype)) CT_TRY(ct_cast(dy, g->e->in[0].dtype, &dx[0]));
  return CT_OK;
}
CT_GRADIENT(ct__grad_identity) {
  (void)g;
  dx[0] = ct_tensor_retain((ct_tensor *)dy);
  return CT_OK;
}

/* ---- reductions --------------------------------------------------------------------------- */
/* The reduced output's shape with the reduced axes kept as 1. */
static void keep_shape(const ct_gctx *g, int64_t *shape) {
  const ct_slot *in = &g->e->in[0];
  memcpy(shape, in->shape, sizeof(int64_t) * CT_MAX_RANK);
  for (int i = 0; i < g->e->at->reduce.naxes; ++i) shape[g->e->at->reduce.axes[i]] = 1;
}

CT_GRADIENT(ct__grad_sum) {
  const ct_slot *in = &g->e->in[0];
  int64_t ks[CT_MAX_RANK];
  keep_shape(g, ks);
  ct_tensor *r;
  CT_TRY(ct_reshape(dy, in->rank, ks, &r));
  ct_status s = ct_broadcast_to(r, in->rank, in->shape, &dx[0]);
  ct_tensor_free(r);
  return s;
}

CT_GRADIENT(ct__grad_reduce_extreme) {
  /* the gradient is shared equally between the elements equal to the extreme */
  const ct_slot *in = &g->e->in[0];
  int64_t ks[CT_MAX_RANK];
  keep_shape(g, ks);
  ct_tensor *yk = NULL, *dyk = NULL, *eq = NULL, *mf = NULL, *cnt = NULL, *w = NULL;
  ct_status s = ct_reshape(OUT, in->rank, ks, &yk);
  if (s == CT_OK) s = ct_reshape(dy, in->rank, ks, &dyk);
  if (s == CT_OK) s = ct_equal(IN(0), yk, &eq);
  if (s == CT_OK) s = ct_cast(eq, in->dtype, &mf);
  if (s == CT_OK) s = ct_sum(mf, g->e->at->reduce.axes, g->e->at->reduce.naxes, true, &cnt);
  if (s == CT_OK) s = ct_div(mf, cnt, &w);
  if (s == CT_OK) s = ct_mul(w, dyk, &dx[0]);
  DROP(yk, dyk, eq, mf, cnt, w);
  return s;
}

CT_GRADIENT(ct__grad_prod) {
  /* d prod / d x_i is the product of the other elements of x_i's group. Without zeros that is
   * y / x_i; with one zero it is the product of the non-zeros at the zero and 0 elsewhere; with
   * two or more zeros it is 0 everywhere. Zeros are replaced by ones to form that product. */
  const ct_slot *in = &g->e->in[0];
  const int *axes = g->e->at->reduce.axes;
  int na = g->e->at->reduce.naxes;
  int64_t ks[CT_MAX_RANK];
  keep_shape(g, ks);
  const ct_tensor *x = IN(0);
  ct_tensor *isz = NULL, *one = NULL, *xs = NULL, *p = NULL, *zf = NULL, *zc = NULL, *q = NULL, *none = NULL;
  ct_tensor *single = NULL, *zero = NULL, *a = NULL, *b = NULL, *f = NULL, *dyk = NULL;
  ct_status s = ct_equal_scalar(x, 0.0, &isz);
  if (s == CT_OK) s = ct_scalar(x->ctx, x->dtype, 1.0, &one);
  if (s == CT_OK) s = ct_scalar(x->ctx, x->dtype, 0.0, &zero);
  if (s == CT_OK) s = ct_where(isz, one, x, &xs);
  if (s == CT_OK) s = ct_prod(xs, axes, na, true, &p);
  if (s == CT_OK) s = ct_cast(isz, x->dtype, &zf);
  if (s == CT_OK) s = ct_sum(zf, axes, na, true, &zc);
  if (s == CT_OK) s = ct_div(p, xs, &q);
  if (s == CT_OK) s = ct_equal_scalar(zc, 0.0, &none);
  if (s == CT_OK) s = ct_equal_scalar(zc, 1.0, &single);
  if (s == CT_OK) s = ct_where(none, q, zero, &a);
  if (s == CT_OK) s = ct_where(single, p, zero, &b);
  if (s == CT_OK) s = ct_where(isz, b, a, &f);
  if (s == CT_OK) s = ct_reshape(dy, in->rank, ks, &dyk);
  if (s == CT_OK) s = ct_mul(f, dyk, &dx[0]);
  DROP(isz, one, xs, p, zf, zc, q, none, single, zero, a, b, f, dyk);
  return s;
}

/* ---- shapes ------------------------------------------------------------------------------ */
CT_GRADIENT(ct__grad_reshape) {
  return ct_reshape(dy, g->e->in[0].rank, g->e->in[0].shape, &dx[0]);
}
CT_GRADIENT(ct__grad_transpose) {
  int inv[CT_MAX_RANK];
  for (int i = 0; i < g->e->in[0].rank; ++i) inv[g->e->at->perm.perm[i]] = i;
  return ct_transpose(dy, inv, &dx[0]);
}
CT_GRADIENT(ct__grad_slice) {
  ct_attrs at = ct__attrs_copy(g->e->at);
  at.slice.rank = g->e->in[0].rank;
  memcpy(at.slice.shape, g->e->in[0].shape, sizeof at.slice.shape);
  const ct_tensor *in[1] = {dy};
  return ct__run(CT_OP_SLICE_GRAD, in, 1, &at, &dx[0]);
}
CT_GRADIENT(ct__grad_slice_grad) {
  ct_attrs at = ct__attrs_copy(g->e->at);
  at.slice.rank = g->e->in[0].rank;
  memcpy(at.slice.shape, g->e->in[0].shape, sizeof at.slice.shape);
  const ct_tensor *in[1] = {dy};
  return ct__run(CT_OP_SLICE, in, 1, &at, &dx[0]);
}
CT_GRADIENT(ct__grad_concat) {
  int axis = g->e->at->axis.axis;
  int64_t off = 0;
  for (int i = 0; i < g->e->n_in; ++i) {
    const ct_slot *sl = &g->e->in[i];
    if (NEED(i)) {
      ct_attrs at = ct__attrs(CT_AT_SLICE);
      at.slice.rank = sl->rank;
      memcpy(at.slice.shape, sl->shape, sizeof at.slice.shape);
      for (int d = 0; d < sl->rank; ++d) at.slice.step[d] = 1;
      at.slice.begin[axis] = off;
      const ct_tensor *in[1] = {dy};
      CT_TRY(ct__run(CT_OP_SLICE, in, 1, &at, &dx[i]));
    }
    off += sl->shape[axis];
  }
  return CT_OK;
}
CT_GRADIENT(ct__grad_broadcast_to) {
  (void)g;
  dx[0] = ct_tensor_retain((ct_tensor *)dy); /* summed back by the tape */
  return CT_OK;
}
CT_GRADIENT(ct__grad_gather) {
  if (!NEED(0)) return CT_OK;
  ct_attrs at = ct__attrs_copy(g->e->at);
  at.gather.rank = g->e->in[0].rank;
  memcpy(at.gather.shape, g->e->in[0].shape, sizeof at.gather.shape);
  const ct_tensor *in[2] = {dy, IN(1)};
  return ct__run(CT_OP_GATHER_GRAD, in, 2, &at, &dx[0]);
}
CT_GRADIENT(ct__grad_gather_grad) {
  if (!NEED(0)) return CT_OK;
  return ct_gather(dy, IN(1), g->e->at->gather.axis, &dx[0]);
}

CT_GRADIENT(ct__grad_matmul) {
  const ct_tensor *a = IN(0), *b = IN(1);
  bool ta = g->e->at->matmul.ta, tb = g->e->at->matmul.tb;
  if (NEED(0)) {
    if (!ta) CT_TRY(ct_matmul(dy, b, false, !tb, &dx[0]));      /* dA = dY op(B)^T */
    else CT_TRY(ct_matmul(b, dy, tb, true, &dx[0]));            /* dA = op(B) dY^T */
  }
  if (NEED(1)) {
    if (!tb) CT_TRY(ct_matmul(a, dy, !ta, false, &dx[1]));      /* dB = op(A)^T dY */
    else CT_TRY(ct_matmul(dy, a, true, ta, &dx[1]));            /* dB = dY^T op(A) */
  }
  return CT_OK;
}

/* A user-defined op has no gradient of its own: only a registered one (the tape looks there first). */
CT_GRADIENT(ct__grad_custom) {
  (void)dy;
  (void)dx;
  const ct_tensor *x0 = g->e->n_in > 0 ? IN(0) : NULL; /* every input is kept (S_ALL) */
  return ct__error(x0 ? x0->ctx : NULL, CT_ERR_NO_GRADIENT, "gradient registry has no entry for: %s",
                   g->e->at->custom.rec ? g->e->at->custom.rec->name : "Custom");
}

/* ---- batching rules ------------------------------------------------------------------------ *
 * A jacobian pushes a batch of output gradients dy [K] + out.shape through the backward pass at
 * once. The elementwise rows, where, cast, identity, broadcast_to and matmul take such a dy as
 * it is (their gradients broadcast, or treat the leading axes as a batch); sum, reshape and
 * transpose have rules of their own here. Every other op goes through the tape's loop over the
 * batch (lib/tape.c). */
static bool batches_as_is(ct_op_id op) {
  const ct_op_info *r = &ct_ops[op];
  if (r->grad == ct__nograd) return false;
  return r->kind == K_UN || r->kind == K_BIN || op == CT_OP_SELECT || op == CT_OP_CAST || op == CT_OP_IDENTITY ||
         op == CT_OP_BROADCAST || op == CT_OP_MATMUL;
}

bool ct__grad_has_batching_rule(ct_op_id op) {
  return batches_as_is(op) || op == CT_OP_SUM || op == CT_OP_RESHAPE || op == CT_OP_TRANSPOSE;
}

/* matmul against a matrix (rank 2): the batch of gradients folds into the rows of one product
 * instead of a batched product that broadcasts the matrix */
static ct_status matmul_batched(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx) {
  const ct_tensor *a = IN(0), *b = IN(1);
  bool ta = g->e->at->matmul.ta, tb = g->e->at->matmul.tb;
  int r = dy->rank;
  int64_t m = dy->shape[r - 2], n = dy->shape[r - 1], rows = dy->size / n;
  ct_status s = CT_OK;
  if (NEED(0) && b->rank == 2 && !ta) { /* dA = dY op(B)^T, every row of every dY at once */
    ct_tensor *flat = NULL, *p = NULL;
    int64_t fs[2] = {rows, n}, out[CT_MAX_RANK];
    memcpy(out, dy->shape, sizeof(int64_t) * (size_t)r);
    out[r - 1] = tb ? b->shape[1] : b->shape[0];
    s = ct_reshape(dy, 2, fs, &flat);
    if (s == CT_OK) s = ct_matmul(flat, b, false, !tb, &p);
    if (s == CT_OK) s = ct_reshape(p, r, out, &dx[0]);
    DROP(flat, p);
  } else if (NEED(0)) {
    bool need1[2] = {true, false};
    ct_gctx g0 = {g->e, need1, false, false, NULL};
    s = ct__grad_matmul(&g0, dy, dx);
  }
  if (s == CT_OK && NEED(1) && a->rank == 2 && r == 3 && !tb) { /* dB[k] = op(A)^T dY[k] */
    int64_t K = dy->shape[0], kk = ta ? a->shape[0] : a->shape[1];
    ct_tensor *t = NULL, *flat = NULL, *p = NULL, *p3 = NULL;
    s = ct_transpose(dy, (const int[]){1, 0, 2}, &t); /* [m, K, n] */
    if (s == CT_OK) s = ct_reshape(t, 2, (const int64_t[]){m, K * n}, &flat);
    if (s == CT_OK) s = ct_matmul(a, flat, !ta, false, &p); /* [k, K n] */
    if (s == CT_OK) s = ct_reshape(p, 3, (const int64_t[]){kk, K, n}, &p3);
    if (s == CT_OK) s = ct_transpose(p3, (const int[]){1, 0, 2}, &dx[1]);
    DROP(t, flat, p, p3);
  } else if (s == CT_OK && NEED(1)) {
    bool need2[2] = {false, true};
    ct_gctx g1 = {g->e, need2, false, false, NULL};
    s = ct__grad_matmul(&g1, dy, dx);
  }
  return s;
}

ct_status ct__grad_batched(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx) {
  ct_op_id op = g->e->op;
  if (op == CT_OP_MATMUL) return matmul_batched(g, dy, dx);
  if (batches_as_is(op)) return ct_ops[op].grad(g, dy, dx);
  const ct_slot *in = &g->e->in[0];
  int64_t shape[CT_MAX_RANK + 1];
  shape[0] = dy->shape[0];
  if (in->rank + 1 > CT_MAX_RANK) return ct__error(dy->ctx, CT_ERR_SHAPE, "a batch of gradients would have rank > 8");
  switch (op) {
  case CT_OP_RESHAPE:
    memcpy(shape + 1, in->shape, sizeof(int64_t) * (size_t)in->rank);
    return ct_reshape(dy, in->rank + 1, shape, &dx[0]);
  case CT_OP_TRANSPOSE: {
    int inv[CT_MAX_RANK];
    inv[0] = 0;
    for (int i = 0; i < in->rank; ++i) inv[g->e->at->perm.perm[i] + 1] = i + 1;
    return ct_transpose(dy, inv, &dx[0]);
  }
  case CT_OP_SUM: {
    int64_t ks[CT_MAX_RANK];
    keep_shape(g, ks);
    memcpy(shape + 1, ks, sizeof(int64_t) * (size_t)in->rank);
    ct_tensor *r;
    CT_TRY(ct_reshape(dy, in->rank + 1, shape, &r));
    memcpy(shape + 1, in->shape, sizeof(int64_t) * (size_t)in->rank);
    ct_status s = ct_broadcast_to(r, in->rank + 1, shape, &dx[0]);
    ct_tensor_free(r);
    return s;
  }
  default:
    return ct__error(dy->ctx, CT_ERR_INTERNAL, "%s has no batching rule", ct_ops[op].name);
  }
}
