/* ops.c — the op pipeline. Every op, built-in or user-defined, goes through ct__run():
 * check the arguments, compute the output shape, launch the forward kernel through the backend,
 * record the call on the active tapes. The table itself is lib/ops.def. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The table: one ct_op_info per row of ops.def (and of lib/nn/ops_nn.def, which it includes). */
#define SV(always, if0, if1)                                                                              \
  .saves = ((always) | (if0) | (if1)) & S_ALL, .saves_always = (always) & S_ALL, .saves_if = {(if0), (if1)}, \
  .gflags = (always) & ~S_ALL
#define DOM(a0_, da_, b0_, db_, alt_) .has_domain = true, .a0 = a0_, .da = da_, .b0 = b0_, .db = db_, .b_alternate = alt_
#define NODOM .has_domain = false
/* the reference column: R(expr) one element (ct__ref_<ID>) and the whole tensors through
 * ct__ref_elementwise; RF(fn) whole tensors only; NOREF neither */
#define REF_ONE_R(e) 1
#define REF_ONE_RF(fn) 0
#define REF_ONE_NOREF 0
#define REF_ALL_R(e) ct__ref_elementwise
#define REF_ALL_RF(fn) fn
#define REF_ALL_NOREF NULL
#define NOGRAD ct__nograd
#define PUB_UN(l) .unary = ct_##l
#define PUB_BIN(l) .binary = ct_##l
#define PUB_CMP(l) .binary = ct_##l
#define PUB_OTHER(l) .unary = NULL
#define X(id, lname_, name_, kind_, nin, dts, expr_, ref, saves, attrs_, fwd, dom, grad_)                              \
  {.name = name_, .lname = #lname_, .stem = #id, .kind = K_##kind_, .n_inputs = nin, .dtypes = dts, .expr = expr_,    \
   saves, .attrs = CT_AT_##attrs_, .forward = fwd, .grad = grad_, .reference = REF_ONE_##ref ? ct__ref_##id : NULL,  \
   .ref_forward = REF_ALL_##ref, dom,      \
   PUB_##kind_(lname_)},
const ct_op_info ct_ops[CT_OP_COUNT] = {
#include "ops.def"
};
#undef X
#undef SV
#undef DOM
#undef NODOM
#undef REF_ONE_R
#undef REF_ONE_RF
#undef REF_ONE_NOREF
#undef REF_ALL_R
#undef REF_ALL_RF
#undef REF_ALL_NOREF
#undef NOGRAD
_Static_assert(sizeof ct_ops / sizeof *ct_ops == CT_OP_COUNT, "op table");

size_t ct__attrs_size(ct_attr_family family) {
  static const size_t member[CT_AT_COUNT] = {
      [CT_AT_NONE] = 0,
      [CT_AT_REDUCE] = sizeof(((ct_attrs *)0)->reduce),
      [CT_AT_AXIS] = sizeof(((ct_attrs *)0)->axis),
      [CT_AT_PERM] = sizeof(((ct_attrs *)0)->perm),
      [CT_AT_SHAPE] = sizeof(((ct_attrs *)0)->shape),
      [CT_AT_SLICE] = sizeof(((ct_attrs *)0)->slice),
      [CT_AT_GATHER] = sizeof(((ct_attrs *)0)->gather),
      [CT_AT_ONE_HOT] = sizeof(((ct_attrs *)0)->one_hot),
      [CT_AT_CAST] = sizeof(((ct_attrs *)0)->cast),
      [CT_AT_MATMUL] = sizeof(((ct_attrs *)0)->matmul),
      [CT_AT_CUSTOM] = sizeof(((ct_attrs *)0)->custom),
      [CT_AT_WINDOW] = sizeof(((ct_attrs *)0)->window),
      [CT_AT_DROPOUT] = sizeof(((ct_attrs *)0)->dropout),
      [CT_AT_SORT] = sizeof(((ct_attrs *)0)->sort),
      [CT_AT_ATTENTION] = sizeof(((ct_attrs *)0)->attention),
  };
  return offsetof(ct_attrs, reduce) + member[family];
}

/* ---- shapes ------------------------------------------------------------------------------ */
static void contiguous_strides(int rank, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    st[i] = s;
    s *= shape[i];
  }
}

/* Broadcast shape of n tensors (NumPy rules). */
static ct_status broadcast_shape(const ct_tensor *const *ts, int n, int *rank, int64_t *shape, const char *what) {
  int r = 0;
  for (int i = 0; i < n; ++i)
    if (ts[i]->rank > r) r = ts[i]->rank;
  for (int d = 0; d < r; ++d) shape[d] = 1;
  for (int i = 0; i < n; ++i) {
    for (int d = 0; d < ts[i]->rank; ++d) {
      int od = r - ts[i]->rank + d;
      int64_t e = ts[i]->shape[d];
      if (e == shape[od] || e == 1) continue;
      if (shape[od] == 1) {
        shape[od] = e;
        continue;
      }
      char s1[96], s2[96];
      ct__shape_str(ts[0]->rank, ts[0]->shape, s1, sizeof s1);
      ct__shape_str(ts[i]->rank, ts[i]->shape, s2, sizeof s2);
      return ct__error(ts[0]->ctx, CT_ERR_SHAPE, "%s: shapes %s and %s do not broadcast (axis %d: %lld vs %lld)", what,
                       s1, s2, od, (long long)shape[od], (long long)e);
    }
  }
  *rank = r;
  return CT_OK;
}

/* Strides of t read as a tensor of shape (rank, shape): 0 on broadcast axes. */
static void bcast_strides(const ct_tensor *t, int rank, const int64_t *shape, int64_t *st) {
  int64_t own[CT_MAX_RANK];
  contiguous_strides(t->rank, t->shape, own);
  for (int d = 0; d < rank; ++d) {
    int td = d - (rank - t->rank);
    st[d] = (td < 0 || t->shape[td] == 1) && shape[d] != 1 ? 0 : (td < 0 ? 0 : own[td]);
  }
}

static bool same_shape(const ct_tensor *a, int rank, const int64_t *shape) {
  return a->rank == rank && memcmp(a->shape, shape, sizeof(int64_t) * (size_t)rank) == 0;
}

ct_status ct__normalize_axes(const ct_tensor *x, const int *axes, int n_axes, int *out, int *n_out) {
  if (!axes) {
    for (int i = 0; i < x->rank; ++i) out[i] = i;
    *n_out = x->rank;
    return CT_OK;
  }
  if (n_axes < 0 || n_axes > CT_MAX_RANK) return ct__error(x->ctx, CT_ERR_AXIS, "%d axes given", n_axes);
  bool seen[CT_MAX_RANK] = {0};
  for (int i = 0; i < n_axes; ++i) {
    int a = axes[i];
    if (a < -x->rank || a >= x->rank)
      return ct__error(x->ctx, CT_ERR_AXIS, "axis %d is out of range for rank %d", a, x->rank);
    if (a < 0) a += x->rank;
    if (seen[a]) return ct__error(x->ctx, CT_ERR_AXIS, "axis %d is repeated", axes[i]);
    seen[a] = true;
  }
  int k = 0;
  for (int i = 0; i < x->rank; ++i)
    if (seen[i]) out[k++] = i;
  *n_out = k;
  return CT_OK;
}

static ct_status norm_axis(const ct_tensor *x, int axis, int rank_plus, int *out) {
  *out = 0;
  int r = x->rank + rank_plus;
  if (axis < -r || axis >= r) return ct__error(x->ctx, CT_ERR_AXIS, "axis %d is out of range for rank %d", axis, r);
  *out = axis < 0 ? axis + r : axis;
  return CT_OK;
}

/* ---- forward of each kind ----------------------------------------------------------------- */
/* the most inputs of one call that widened_forward converts (float16, bfloat16, bool) */
#define CT_MAX_INPUTS_WIDENED 16
static ct_status new_like(const ct_tensor *ref, ct_dtype dt, int rank, const int64_t *shape, ct_tensor **out) {
  return ct__tensor_new(ref->ctx, dt, rank, shape, out);
}

/* the dtypes the fused kernels (lib/fuse.c) generate code for; int64 runs op by op; float16
 * reaches a forward function only where it computes in half (half_row, below) */
static bool fusible(ct_dtype dt) {
  return dt == CT_FLOAT32 || dt == CT_FLOAT64 || dt == CT_INT32 || dt == CT_FLOAT16;
}

static ct_status check_dtypes(ct_op_id op, const ct_tensor *x) {
  if (ct_ops[op].dtypes == DF && !ct__is_float(x->dtype) && !(x->dtype == CT_FLOAT16 && ctb_half_compute(x->ctx)))
    return ct__error(x->ctx, CT_ERR_DTYPE, "%s needs a float32 or float64 tensor, got %s", ct_ops[op].name,
                     ct_dtype_name(x->dtype));
  return CT_OK;
}

CT_FORWARD(ct__fwd_unary) {
  (void)n_in;
  (void)at;
  const ct_tensor *x = in[0];
  CT_TRY(check_dtypes(op, x));
  if (x->size && ct__fusion_on() && fusible(x->dtype)) return ct__lazy_op(op, in, 1, x->dtype, x->rank, x->shape, out);
  CT_TRY(new_like(x, x->dtype, x->rank, x->shape, out));
  if (x->size == 0) return CT_OK;
  return ctb_unary(x->ctx, ct_ops[op].stem, x->dtype, x->size, x->buf, (*out)->buf);
}

CT_FORWARD(ct__fwd_binary) {
  (void)n_in;
  (void)at;
  const ct_tensor *a = in[0], *b = in[1];
  if (a->dtype != b->dtype)
    return ct__error(a->ctx, CT_ERR_DTYPE, "%s: operands have different dtypes (%s and %s)", ct_ops[op].name,
                     ct_dtype_name(a->dtype), ct_dtype_name(b->dtype));
  CT_TRY(check_dtypes(op, a));
  int rank = 0;
  int64_t shape[CT_MAX_RANK];
  const ct_tensor *ab[2] = {a, b};
  CT_TRY(broadcast_shape(ab, 2, &rank, shape, ct_ops[op].name));
  ct_dtype odt = ct_ops[op].kind == K_CMP ? CT_BOOL : a->dtype; /* the compare kernels write bool themselves */
  if (ct__shape_size(rank, shape) && ct__fusion_on() && fusible(a->dtype)) return ct__lazy_op(op, ab, 2, odt, rank, shape, out);
  CT_TRY(new_like(a, odt, rank, shape, out));
  ct_tensor *y = *out;
  if (y->size == 0) return CT_OK;
  ctb_bmode mode;
  ctb_geom g;
  memset(&g, 0, sizeof g);
  if (same_shape(a, rank, shape) && same_shape(b, rank, shape)) mode = CTB_SAME;
  else if (b->size == 1 && same_shape(a, rank, shape)) mode = CTB_SCALAR_B;
  else if (a->size == 1 && same_shape(b, rank, shape)) mode = CTB_SCALAR_A;
  else {
    mode = CTB_GENERAL;
    g.rank = rank;
    g.n = y->size;
    for (int d = 0; d < rank; ++d) g.shape[d] = shape[d];
    bcast_strides(a, rank, shape, g.st[0]);
    bcast_strides(b, rank, shape, g.st[1]);
  }
  return ctb_binary(a->ctx, ct_ops[op].stem, a->dtype, mode, &g, y->size, a->buf, b->buf, y->buf);
}

CT_FORWARD(ct__fwd_select) {
  (void)op;
  (void)n_in;
  (void)at;
  const ct_tensor *c = in[0], *a = in[1], *b = in[2];
  if (a->dtype != b->dtype)
    return ct__error(a->ctx, CT_ERR_DTYPE, "where: branches have different dtypes (%s and %s)", ct_dtype_name(a->dtype),
                     ct_dtype_name(b->dtype));
  int rank = 0;
  int64_t shape[CT_MAX_RANK];
  const ct_tensor *cab[3] = {c, a, b};
  CT_TRY(broadcast_shape(cab, 3, &rank, shape, "where"));
  /* the kernels read a bool condition; any other is compared with 0 first (NaN is true) */
  ct_tensor *mask = NULL;
  if (c->dtype != CT_BOOL) CT_TRY(ct_not_equal_scalar(c, 0.0, &mask));
  const ct_tensor *cm = mask ? mask : c;
  ct_status s;
  if (ct__shape_size(rank, shape) && ct__fusion_on() && fusible(a->dtype)) {
    const ct_tensor *lz[3] = {cm, a, b};
    s = ct__lazy_op(op, lz, 3, a->dtype, rank, shape, out);
    ct_tensor_free(mask);
    return s;
  }
  s = new_like(a, a->dtype, rank, shape, out);
  if (s == CT_OK && (*out)->size) {
    ctb_geom g;
    memset(&g, 0, sizeof g);
    g.rank = rank;
    g.n = (*out)->size;
    for (int d = 0; d < rank; ++d) g.shape[d] = shape[d];
    bcast_strides(cm, rank, shape, g.st[0]);
    bcast_strides(a, rank, shape, g.st[1]);
    bcast_strides(b, rank, shape, g.st[2]);
    s = ctb_where(a->ctx, a->dtype, &g, cm->buf, a->buf, b->buf, (*out)->buf);
  }
  ct_tensor_free(mask);
  return s;
}

/* Reduces x over sorted axes. Adjacent axes are merged; each run is one (outer, R, inner) pass. */
static ct_status reduce_forward(ct_op_id op, ctb_reduce_kind kind, const ct_tensor *x, const ct_attrs *at,
                                ct_tensor **out) {
  int64_t kshape[CT_MAX_RANK]; /* keepdims shape, updated as runs are reduced */
  memcpy(kshape, x->shape, sizeof kshape);
  bool red[CT_MAX_RANK] = {0};
  for (int i = 0; i < at->reduce.naxes; ++i) {
    red[at->reduce.axes[i]] = true;
    /* as NumPy: only a reduction over an empty axis lacks an identity, not one of an empty result */
    if ((kind == CTB_RMAX || kind == CTB_RMIN) && x->shape[at->reduce.axes[i]] == 0)
      return ct__error(x->ctx, CT_ERR_SHAPE, "%s over the empty axis %d has no identity", ct_ops[op].name, at->reduce.axes[i]);
  }
  ct_tensor *cur = ct_tensor_retain((ct_tensor *)x);
  ct_status s = CT_OK;
  for (int d = x->rank - 1; d >= 0 && s == CT_OK;) {
    if (!red[d]) {
      --d;
      continue;
    }
    int hi = d;
    while (d >= 0 && red[d]) --d;
    int lo = d + 1; /* run [lo, hi] */
    int64_t outer = 1, R = 1, inner = 1;
    for (int i = 0; i < lo; ++i) outer *= kshape[i];
    for (int i = lo; i <= hi; ++i) R *= kshape[i];
    for (int i = hi + 1; i < x->rank; ++i) inner *= kshape[i];
    for (int i = lo; i <= hi; ++i) kshape[i] = 1;
    ct_tensor *nxt;
    s = new_like(x, x->dtype, x->rank, kshape, &nxt);
    if (s != CT_OK) break;
    bool fused = false;
    if (nxt->size && cur == x) s = ct__lazy_reduce(x, kind, outer, R, inner, nxt->buf, &fused);
    if (nxt->size && s == CT_OK && !fused) s = ctb_reduce(x->ctx, kind, x->dtype, outer, R, inner, cur->buf, nxt->buf);
    ct_tensor_free(cur);
    cur = nxt;
  }
  if (s != CT_OK) {
    ct_tensor_free(cur);
    return s;
  }
  int orank = 0;
  int64_t oshape[CT_MAX_RANK];
  for (int i = 0; i < x->rank; ++i)
    if (!red[i]) oshape[orank++] = x->shape[i];
    else if (at->reduce.keepdims) oshape[orank++] = 1;
  s = ct__tensor_alias(cur, orank, oshape, false, out);
  ct_tensor_free(cur);
  return s;
}

#define REDUCTION(fn, kind)                 \
  CT_FORWARD(fn) {                          \
    (void)n_in;                             \
    return reduce_forward(op, kind, in[0], at, out); \
  }
REDUCTION(ct__fwd_sum, CTB_RSUM)
REDUCTION(ct__fwd_max, CTB_RMAX)
REDUCTION(ct__fwd_min, CTB_RMIN)
REDUCTION(ct__fwd_prod, CTB_RPROD)

static ct_status argreduce_forward(ct_op_id op, ctb_reduce_kind kind, const ct_tensor *x, const ct_attrs *at,
                                   ct_tensor **out) {
  int a = at->axis.axis;
  if (x->shape[a] == 0) return ct__error(x->ctx, CT_ERR_SHAPE, "%s over an empty axis", ct_ops[op].name);
  int64_t outer = 1, inner = 1, oshape[CT_MAX_RANK];
  int orank = 0;
  for (int i = 0; i < x->rank; ++i) {
    if (i < a) outer *= x->shape[i];
    if (i > a) inner *= x->shape[i];
    if (i != a) oshape[orank++] = x->shape[i];
  }
  CT_TRY(new_like(x, CT_INT32, orank, oshape, out));
  if ((*out)->size == 0) return CT_OK;
  return ctb_reduce(x->ctx, kind, x->dtype, outer, x->shape[a], inner, x->buf, (*out)->buf);
}
CT_FORWARD(ct__fwd_argmax) {
  (void)n_in;
  return argreduce_forward(op, CTB_RARGMAX, in[0], at, out);
}
CT_FORWARD(ct__fwd_argmin) {
  (void)n_in;
  return argreduce_forward(op, CTB_RARGMIN, in[0], at, out);
}

/* out (contiguous, shape) <- src read through (offset, strides) */
static ct_status strided_into(const ct_tensor *src, int64_t soff, const int64_t *sst, int rank, const int64_t *shape,
                              ct_tensor *dst, int64_t doff, const int64_t *dst_st) {
  ctb_geom g;
  memset(&g, 0, sizeof g);
  g.rank = rank;
  int64_t n = ct__shape_size(rank, shape);
  if (n == 0) return CT_OK;
  g.n = n;
  for (int d = 0; d < rank; ++d) {
    g.shape[d] = shape[d];
    g.st[0][d] = sst[d];
    g.st[1][d] = dst_st[d];
  }
  return ctb_copy_strided(src->ctx, src->dtype, &g, src->buf, soff, dst->buf, doff);
}

CT_FORWARD(ct__fwd_transpose) {
  (void)op;
  (void)n_in;
  const ct_tensor *x = in[0];
  int64_t shape[CT_MAX_RANK], st[CT_MAX_RANK], pst[CT_MAX_RANK], ost[CT_MAX_RANK];
  contiguous_strides(x->rank, x->shape, st);
  for (int i = 0; i < x->rank; ++i) {
    shape[i] = x->shape[at->perm.perm[i]];
    pst[i] = st[at->perm.perm[i]];
  }
  CT_TRY(new_like(x, x->dtype, x->rank, shape, out));
  contiguous_strides(x->rank, shape, ost);
  return strided_into(x, 0, pst, x->rank, shape, *out, 0, ost);
}

/* Output extent of a normalized slice. */
static int64_t slice_len(int64_t begin, int64_t end, int64_t step) {
  if (step > 0) return end > begin ? (end - begin + step - 1) / step : 0;
  return begin > end ? (begin - end + (-step) - 1) / (-step) : 0;
}

CT_FORWARD(ct__fwd_slice) {
  (void)op;
  (void)n_in;
  const ct_tensor *x = in[0];
  int64_t shape[CT_MAX_RANK], st[CT_MAX_RANK], sst[CT_MAX_RANK], ost[CT_MAX_RANK];
  contiguous_strides(x->rank, x->shape, st);
  int64_t off = 0;
  for (int i = 0; i < x->rank; ++i) {
    shape[i] = at->slice.shape[i];
    sst[i] = st[i] * at->slice.step[i];
    if (shape[i] > 0) off += at->slice.begin[i] * st[i];
  }
  CT_TRY(new_like(x, x->dtype, x->rank, shape, out));
  contiguous_strides(x->rank, shape, ost);
  return strided_into(x, off, sst, x->rank, shape, *out, 0, ost);
}

/* zeros shaped like the sliced input, with g written where the slice came from */
CT_FORWARD(ct__fwd_slice_grad) {
  (void)op;
  (void)n_in;
  const ct_tensor *g = in[0];
  int64_t st[CT_MAX_RANK], dst[CT_MAX_RANK], gst[CT_MAX_RANK];
  CT_TRY(ct_zeros(g->ctx, g->dtype, at->slice.rank, at->slice.shape, out));
  contiguous_strides(at->slice.rank, at->slice.shape, st);
  contiguous_strides(g->rank, g->shape, gst);
  int64_t off = 0;
  for (int i = 0; i < at->slice.rank; ++i) {
    dst[i] = st[i] * at->slice.step[i];
    if (g->shape[i] > 0) off += at->slice.begin[i] * st[i];
  }
  return strided_into(g, 0, gst, g->rank, g->shape, *out, off, dst);
}

CT_FORWARD(ct__fwd_concat) {
  (void)op;
  const ct_tensor *const *xs = in;
  int n = n_in;
  int axis = at->axis.axis;
  int64_t shape[CT_MAX_RANK];
  memcpy(shape, xs[0]->shape, sizeof shape);
  shape[axis] = 0;
  for (int i = 0; i < n; ++i) shape[axis] += xs[i]->shape[axis];
  CT_TRY(new_like(xs[0], xs[0]->dtype, xs[0]->rank, shape, out));
  int64_t ost[CT_MAX_RANK], off = 0;
  contiguous_strides(xs[0]->rank, shape, ost);
  for (int i = 0; i < n; ++i) {
    int64_t st[CT_MAX_RANK];
    contiguous_strides(xs[i]->rank, xs[i]->shape, st);
    CT_TRY(strided_into(xs[i], 0, st, xs[i]->rank, xs[i]->shape, *out, off * ost[axis], ost));
    off += xs[i]->shape[axis];
  }
  return CT_OK;
}

static ct_status broadcast_into(const ct_tensor *x, int rank, const int64_t *shape, ct_tensor **out) {
  if (same_shape(x, rank, shape)) return ct__tensor_alias(x, x->rank, x->shape, false, out);
  double v;
  if (ct__lazy_fill_value(x, &v)) return ct__lazy_fill(x->ctx, x->dtype, rank, shape, v, out); /* still one value */
  /* float16 is read as half inside a fused kernel: only where the device computes in half */
  if (ct__shape_size(rank, shape) && ct__fusion_on() && fusible(x->dtype) &&
      (x->dtype != CT_FLOAT16 || ctb_half_compute(x->ctx)))
    return ct__lazy_broadcast(x, rank, shape, out);
  int64_t sst[CT_MAX_RANK], ost[CT_MAX_RANK];
  bcast_strides(x, rank, shape, sst);
  CT_TRY(new_like(x, x->dtype, rank, shape, out));
  contiguous_strides(rank, shape, ost);
  return strided_into(x, 0, sst, rank, shape, *out, 0, ost);
}

CT_FORWARD(ct__fwd_broadcast) {
  (void)op;
  (void)n_in;
  return broadcast_into(in[0], at->shape.rank, at->shape.shape, out);
}

/* Identity, StopGradient, Reshape: the same storage under a fresh id, in the target shape */
CT_FORWARD(ct__fwd_alias) {
  (void)op;
  (void)n_in;
  return ct__tensor_alias(in[0], at->shape.rank, at->shape.shape, false, out);
}

static void axis_split(const int64_t *shape, int rank, int axis, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; ++i) *outer *= shape[i];
  for (int i = axis + 1; i < rank; ++i) *inner *= shape[i];
}

CT_FORWARD(ct__fwd_gather) {
  (void)op;
  (void)n_in;
  const ct_tensor *x = in[0], *idx = in[1];
  int axis = at->gather.axis;
  if (x->rank + idx->rank - 1 > CT_MAX_RANK) return ct__error(x->ctx, CT_ERR_SHAPE, "gather: result rank exceeds 8");
  int64_t shape[CT_MAX_RANK];
  int r = 0;
  for (int i = 0; i < axis; ++i) shape[r++] = x->shape[i];
  for (int i = 0; i < idx->rank; ++i) shape[r++] = idx->shape[i];
  for (int i = axis + 1; i < x->rank; ++i) shape[r++] = x->shape[i];
  CT_TRY(new_like(x, x->dtype, r, shape, out));
  int64_t outer, inner;
  axis_split(x->shape, x->rank, axis, &outer, &inner);
  if ((*out)->size == 0) return CT_OK;
  return ctb_gather(x->ctx, x->dtype, outer, x->shape[axis], idx->size, inner, x->buf, idx->buf, (*out)->buf);
}

CT_FORWARD(ct__fwd_gather_grad) {
  (void)op;
  (void)n_in;
  const ct_tensor *g = in[0], *idx = in[1];
  CT_TRY(new_like(g, g->dtype, at->gather.rank, at->gather.shape, out));
  int64_t outer, inner;
  axis_split(at->gather.shape, at->gather.rank, at->gather.axis, &outer, &inner);
  if ((*out)->size == 0) return CT_OK;
  return ctb_gather_grad(g->ctx, g->dtype, outer, at->gather.shape[at->gather.axis], idx->size, inner, g->buf, idx->buf, (*out)->buf);
}

CT_FORWARD(ct__fwd_one_hot) {
  (void)op;
  (void)n_in;
  const ct_tensor *idx = in[0];
  int64_t shape[CT_MAX_RANK];
  memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->rank);
  shape[idx->rank] = at->one_hot.depth;
  CT_TRY(new_like(idx, at->one_hot.dtype, idx->rank + 1, shape, out));
  if ((*out)->size == 0) return CT_OK;
  return ctb_one_hot(idx->ctx, at->one_hot.dtype, idx->size, at->one_hot.depth, idx->buf, (*out)->buf);
}

CT_FORWARD(ct__fwd_cast) {
  (void)op;
  (void)n_in;
  const ct_tensor *x = in[0];
  if (x->dtype == at->cast.dtype) return ct__tensor_alias(x, x->rank, x->shape, false, out);
  /* casts from and to float16 keep cast.cl's kernels (their rounding, devices without half) */
  if (x->size && ct__fusion_on() && (fusible(x->dtype) || x->dtype == CT_BOOL) &&
      (fusible(at->cast.dtype) || at->cast.dtype == CT_BOOL) && x->dtype != CT_FLOAT16 &&
      at->cast.dtype != CT_FLOAT16)
    return ct__lazy_op(op, in, 1, at->cast.dtype, x->rank, x->shape, out);
  CT_TRY(new_like(x, at->cast.dtype, x->rank, x->shape, out));
  if (x->size == 0) return CT_OK;
  return ctb_cast(x->ctx, x->dtype, at->cast.dtype, x->size, x->buf, (*out)->buf);
}

CT_FORWARD(ct__fwd_matmul) {
  (void)n_in;
  const ct_tensor *a = in[0], *b = in[1];
  ct_context *ctx = a->ctx;
  if (a->rank < 2 || b->rank < 2)
    return ct__error(ctx, CT_ERR_SHAPE, "matmul needs operands of rank >= 2 (got %d and %d)", a->rank, b->rank);
  if (a->dtype != b->dtype)
    return ct__error(ctx, CT_ERR_DTYPE, "matmul: operands have different dtypes (%s and %s)", ct_dtype_name(a->dtype),
                     ct_dtype_name(b->dtype));
  CT_TRY(check_dtypes(op, a)); /* CLBlast has no integer GEMM */
  int64_t m = at->matmul.ta ? a->shape[a->rank - 1] : a->shape[a->rank - 2];
  int64_t ka = at->matmul.ta ? a->shape[a->rank - 2] : a->shape[a->rank - 1];
  int64_t kb = at->matmul.tb ? b->shape[b->rank - 1] : b->shape[b->rank - 2];
  int64_t n = at->matmul.tb ? b->shape[b->rank - 2] : b->shape[b->rank - 1];
  if (ka != kb) {
    char s1[96], s2[96];
    ct__shape_str(a->rank, a->shape, s1, sizeof s1);
    ct__shape_str(b->rank, b->shape, s2, sizeof s2);
    return ct__error(ctx, CT_ERR_SHAPE, "matmul: inner dimensions differ: %s%s x %s%s", s1, at->matmul.ta ? "^T" : "", s2,
                     at->matmul.tb ? "^T" : "");
  }
  /* batch shapes broadcast */
  int br = (a->rank > b->rank ? a->rank : b->rank) - 2;
  int64_t bshape[CT_MAX_RANK];
  for (int d = 0; d < br; ++d) {
    int da = d - (br - (a->rank - 2)), db = d - (br - (b->rank - 2));
    int64_t ea = da >= 0 ? a->shape[da] : 1, eb = db >= 0 ? b->shape[db] : 1;
    if (ea != eb && ea != 1 && eb != 1)
      return ct__error(ctx, CT_ERR_SHAPE, "matmul: batch dimensions do not broadcast (%lld vs %lld)", (long long)ea,
                       (long long)eb);
    bshape[d] = ea > eb ? ea : eb;
  }
  int64_t oshape[CT_MAX_RANK];
  memcpy(oshape, bshape, sizeof(int64_t) * (size_t)br);
  oshape[br] = m;
  oshape[br + 1] = n;
  CT_TRY(new_like(a, a->dtype, br + 2, oshape, out)); /* checks the broadcast batch shape first */
  int64_t batch = ct__shape_size(br, bshape);
  /* each operand: batch stride 0 when it has a single matrix, its own stride when its batch
   * shape equals the result's, else it is broadcast to the full batch first */
  const ct_tensor *ops[2] = {a, b};
  ct_tensor *tmp[2] = {NULL, NULL};
  int64_t strides[2];
  ct_status s = CT_OK;
  for (int i = 0; i < 2 && s == CT_OK; ++i) {
    const ct_tensor *t = ops[i];
    int64_t mat = t->shape[t->rank - 1] * t->shape[t->rank - 2];
    int64_t tb = ct__shape_size(t->rank - 2, t->shape);
    bool full = t->rank - 2 == br && memcmp(t->shape, bshape, sizeof(int64_t) * (size_t)br) == 0;
    if (tb == 1) strides[i] = 0;
    else if (full) strides[i] = mat;
    else {
      int64_t fshape[CT_MAX_RANK];
      memcpy(fshape, bshape, sizeof(int64_t) * (size_t)br);
      fshape[br] = t->shape[t->rank - 2];
      fshape[br + 1] = t->shape[t->rank - 1];
      s = broadcast_into(t, br + 2, fshape, &tmp[i]);
      ops[i] = tmp[i];
      strides[i] = mat;
    }
  }
  if (s == CT_OK && (*out)->size)
    s = ctb_gemm(ctx, a->dtype, at->matmul.ta, at->matmul.tb, m, n, ka, 1.0, ops[0]->buf, a->shape[a->rank - 1], strides[0],
                 ops[1]->buf, b->shape[b->rank - 1], strides[1], 0.0, (*out)->buf, n, m * n, batch);
  ct_tensor_free(tmp[0]);
  ct_tensor_free(tmp[1]);
  return s;
}

CT_FORWARD(ct__fwd_custom) {
  (void)op;
  int n = n_in;
  const ct_custom_rec *c = at->custom.rec;
  int rank = in[0]->rank;
  int64_t shape[CT_MAX_RANK];
  memcpy(shape, in[0]->shape, sizeof shape);
  ct_dtype dt = in[0]->dtype;
  if (c->shape) {
    ct_status s = c->shape(n, (const ct_tensor *const *)in, &rank, shape, &dt, c->user);
    if (s != CT_OK) return ct__error(in[0]->ctx, s, "shape rule of op %s rejected its inputs", c->name);
  }
  for (int i = 0; i < n; ++i)
    if (in[i]->dtype != dt)
      return ct__error(in[0]->ctx, CT_ERR_DTYPE, "op %s: input %d is %s, the op computes in %s", c->name, i,
                       ct_dtype_name(in[i]->dtype), ct_dtype_name(dt));
  CT_TRY(new_like(in[0], dt, rank, shape, out));
  const ct_buffer *bufs[8];
  int ranks[8];
  int64_t shapes[8][CT_MAX_RANK];
  for (int i = 0; i < n; ++i) {
    bufs[i] = in[i]->buf;
    ranks[i] = in[i]->rank;
    memcpy(shapes[i], in[i]->shape, sizeof shapes[i]);
  }
  if ((*out)->size == 0) return CT_OK;
  return ctb_custom(in[0]->ctx, c->source, c->kernel, dt, (*out)->size, (*out)->buf, n, bufs, ranks,
                    (const int64_t(*)[CT_MAX_RANK])shapes);
}

/* ---- the pipeline ------------------------------------------------------------------------- */
/* A copy of x in dtype `to` (not recorded: the caller records the op it serves). */
static ct_status cast_copy(const ct_tensor *x, ct_dtype to, ct_tensor **out) {
  CT_TRY(new_like(x, to, x->rank, x->shape, out));
  if (x->size == 0) return CT_OK;
  return ctb_cast(x->ctx, x->dtype, to, x->size, x->buf, (*out)->buf);
}

/* Does row `op` compute float16 in half on a context that computes in half (ctb_half_compute)?
 * The elementwise rows, comparisons included (their kernels and the fused kernels have a half
 * build: kernels/prelude.cl, -DCT_HALF=1) and sum, max, min and prod (kernels/reduce.cl: float
 * accumulators, the result rounded to half). Every other row is widened to float32
 * (widened_forward). */
static bool half_row(ct_op_id op) {
  const ct_op_info *info = &ct_ops[op];
  return (info->kind == K_UN && info->forward == ct__fwd_unary) ||
         ((info->kind == K_BIN || info->kind == K_CMP) && info->forward == ct__fwd_binary) ||
         info->forward == ct__fwd_sum || info->forward == ct__fwd_max || info->forward == ct__fwd_min ||
         info->forward == ct__fwd_prod;
}

/* The row's forward, with the storage-only dtypes widened: float16 and bfloat16 inputs are read
 * as float32, the op computes in float32 and a float32 result is rounded back to the inputs'
 * dtype; bool inputs are moved and compared as int32 (a comparison's result is bool),
 * and arithmetic and reductions refuse them. One place for every row, kernels included: the
 * kernels exist in float32, float64, int32 and int64 only. Not for cast (it has kernels for every
 * pair) nor the rows that alias their input's storage; where's condition is not widened either
 * (it compares a non-bool condition with 0 itself). The tape records the call with the caller's
 * tensors, so gradients come back in the inputs' dtype. Not either for float16 on a context that
 * computes in half, in the rows half_row names. */
static ct_status widened_forward(ct_op_id op, const ct_tensor *const *in, int n_in, const ct_attrs *at,
                                 ct_tensor **out) {
  const ct_op_info *info = &ct_ops[op];
  if (info->forward == ct__fwd_cast || info->forward == ct__fwd_alias) return info->forward(op, in, n_in, at, out);
  bool narrow_in[CT_MAX_INPUTS_WIDENED] = {false};
  ct_dtype narrow = CT_FLOAT32;
  bool any = false, wide_float = false;
  for (int i = 0; i < n_in && i < CT_MAX_INPUTS_WIDENED; ++i) {
    ct_dtype d = in[i]->dtype;
    if (info->forward == ct__fwd_select && i == 0) continue;
    if (ct__is_half(d) || d == CT_BOOL) {
      if (any && d != narrow)
        return ct__error(in[0]->ctx, CT_ERR_DTYPE, "%s: operands have different dtypes (%s and %s)", info->name,
                         ct_dtype_name(narrow), ct_dtype_name(d));
      narrow_in[i] = any = true;
      narrow = d;
    } else if (ct__is_float(d)) wide_float = true;
  }
  if (!any) return info->forward(op, in, n_in, at, out);
  if (n_in > CT_MAX_INPUTS_WIDENED)
    return ct__error(in[0]->ctx, CT_ERR_UNSUPPORTED, "%s: more than %d inputs of dtype %s", info->name,
                     CT_MAX_INPUTS_WIDENED, ct_dtype_name(narrow));
  if (ct__is_half(narrow) && wide_float)
    return ct__error(in[0]->ctx, CT_ERR_DTYPE, "%s: operands have different dtypes (%s with float32 or float64; cast one)",
                     info->name, ct_dtype_name(narrow));
  if (narrow == CT_FLOAT16 && half_row(op) && ctb_half_compute(in[0]->ctx)) return info->forward(op, in, n_in, at, out);
  if (narrow == CT_BOOL && (info->kind == K_UN || info->kind == K_BIN || info->attrs == CT_AT_REDUCE))
    return ct__error(in[0]->ctx, CT_ERR_DTYPE, "%s does not take bool tensors (cast to int32 or float32 first)",
                     info->name);
  ct_dtype wdt = narrow == CT_BOOL ? CT_INT32 : CT_FLOAT32;
  ct_tensor *w[CT_MAX_INPUTS_WIDENED] = {NULL};
  const ct_tensor *win[CT_MAX_INPUTS_WIDENED];
  ct_status s = CT_OK;
  for (int i = 0; i < n_in && s == CT_OK; ++i) {
    win[i] = in[i];
    if (narrow_in[i]) {
      s = cast_copy(in[i], wdt, &w[i]);
      win[i] = w[i];
    }
  }
  ct_tensor *y = NULL;
  if (s == CT_OK) s = info->forward(op, win, n_in, at, &y);
  for (int i = 0; i < n_in; ++i) ct_tensor_free(w[i]);
  if (s != CT_OK) {
    ct_tensor_free(y);
    return s;
  }
  if (y->dtype != wdt || info->kind == K_CMP) {
    *out = y;
    return CT_OK;
  }
  s = cast_copy(y, narrow, out);
  ct_tensor_free(y);
  return s;
}

ct_status ct__run(ct_op_id op, const ct_tensor *const *in, int n_in, const ct_attrs *at, ct_tensor **out) {
  *out = NULL;
  const ct_op_info *info = &ct_ops[op];
  for (int i = 0; i < n_in; ++i) {
    CT_TRY(ct__check(in[i], info->name));
    if (in[i]->ctx != in[0]->ctx)
      return ct__error(in[0]->ctx, CT_ERR_CONTEXT, "%s: input %d belongs to another context", info->name, i);
  }
  if (info->n_inputs >= 0 && n_in != info->n_inputs)
    return ct__error(in[0]->ctx, CT_ERR_INTERNAL, "%s takes %d inputs, %d given", info->name, info->n_inputs, n_in);
  if (at->family != info->attrs)
    return ct__error(in[0]->ctx, CT_ERR_INTERNAL, "%s: attributes of family %d given, the table says %d", info->name,
                     (int)at->family, (int)info->attrs);
  ct_status s = widened_forward(op, in, n_in, at, out);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
    return s;
  }
  s = ct__tape_record(op, in, n_in, *out, at);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
  }
  return s;
}

/* ---- public ops -------------------------------------------------------------------------- */
#define OUT_CHECK(fn)                                                          \
  do {                                                                         \
    if (!out) return ct__error(NULL, CT_ERR_NULL, fn ": out is NULL");         \
    *out = NULL;                                                               \
  } while (0)

static ct_status run1(ct_op_id op, const ct_tensor *x, const ct_attrs *at, ct_tensor **out) {
  const ct_tensor *in[1] = {x};
  ct_attrs none = ct__attrs(CT_AT_NONE);
  if (!at) at = &none;
  return ct__run(op, in, 1, at, out);
}
static ct_status run2(ct_op_id op, const ct_tensor *a, const ct_tensor *b, const ct_attrs *at, ct_tensor **out) {
  const ct_tensor *in[2] = {a, b};
  ct_attrs none = ct__attrs(CT_AT_NONE);
  if (!at) at = &none;
  return ct__run(op, in, 2, at, out);
}

static ct_status scalar_like(const ct_tensor *a, double v, ct_tensor **out) {
  CT_TRY(ct__check(a, "scalar operand"));
  return ct_scalar(a->ctx, a->dtype, v, out);
}

/* the public elementwise functions, one (unary) or two (binary: the tensor and the scalar form)
 * per elementwise row of the table */
#define DEF_UN(name, id)                                             \
  ct_status ct_##name(const ct_tensor *x, ct_tensor **out) {         \
    OUT_CHECK("ct_" #name);                                          \
    return run1(CT_OP_##id, x, NULL, out);                           \
  }
#define DEF_BIN(name, id)                                                      \
  ct_status ct_##name(const ct_tensor *a, const ct_tensor *b, ct_tensor **out) { \
    OUT_CHECK("ct_" #name);                                                    \
    return run2(CT_OP_##id, a, b, NULL, out);                                  \
  }                                                                            \
  ct_status ct_##name##_scalar(const ct_tensor *a, double b, ct_tensor **out) { \
    OUT_CHECK("ct_" #name "_scalar");                                          \
    ct_tensor *s;                                                              \
    CT_TRY(scalar_like(a, b, &s));                                             \
    ct_status st = run2(CT_OP_##id, a, s, NULL, out);                          \
    ct_tensor_free(s);                                                         \
    return st;                                                                 \
  }
#define DEF_CMP DEF_BIN
#define DEF_OTHER(name, id)
#define X(id, lname, name, kind, nin, dts, expr, ref, saves, attrs, fwd, dom, grad) DEF_##kind(lname, id)
#include "ops.def"
#undef X

ct_status ct_rsub_scalar(double v, const ct_tensor *a, ct_tensor **out) {
  OUT_CHECK("ct_rsub_scalar");
  ct_tensor *s;
  CT_TRY(scalar_like(a, v, &s));
  ct_status st = run2(CT_OP_SUB, s, a, NULL, out);
  ct_tensor_free(s);
  return st;
}
ct_status ct_rdiv_scalar(double v, const ct_tensor *a, ct_tensor **out) {
  OUT_CHECK("ct_rdiv_scalar");
  ct_tensor *s;
  CT_TRY(scalar_like(a, v, &s));
  ct_status st = run2(CT_OP_DIV, s, a, NULL, out);
  ct_tensor_free(s);
  return st;
}

ct_status ct_where(const ct_tensor *cond, const ct_tensor *a, const ct_tensor *b, ct_tensor **out) {
  OUT_CHECK("ct_where");
  const ct_tensor *in[3] = {cond, a, b};
  ct_attrs at = ct__attrs(CT_AT_NONE);
  return ct__run(CT_OP_SELECT, in, 3, &at, out);
}

ct_status ct_cast(const ct_tensor *x, ct_dtype dtype, ct_tensor **out) {
  OUT_CHECK("ct_cast");
  CT_TRY(ct__check(x, "ct_cast"));
  CT_TRY(ct__check_dtype(x->ctx, dtype));
  ct_attrs at = ct__attrs(CT_AT_CAST);
  at.cast.dtype = dtype;
  return run1(CT_OP_CAST, x, &at, out);
}

static ct_status same_shape_op(ct_op_id op, const ct_tensor *x, ct_tensor **out, const char *fn) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(ct__check(x, fn));
  ct_attrs at = ct__attrs(CT_AT_SHAPE);
  at.shape.rank = x->rank;
  memcpy(at.shape.shape, x->shape, sizeof at.shape.shape);
  return run1(op, x, &at, out);
}
ct_status ct_stop_gradient(const ct_tensor *x, ct_tensor **out) {
  return same_shape_op(CT_OP_STOP_GRAD, x, out, "ct_stop_gradient");
}
ct_status ct_identity(const ct_tensor *x, ct_tensor **out) { return same_shape_op(CT_OP_IDENTITY, x, out, "ct_identity"); }

ct_status ct__reduce(ct_op_id op, const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out) {
  OUT_CHECK("reduction");
  CT_TRY(ct__check(x, ct_ops[op].name));
  ct_attrs at = ct__attrs(CT_AT_REDUCE);
  CT_TRY(ct__normalize_axes(x, axes, n_axes, at.reduce.axes, &at.reduce.naxes));
  at.reduce.keepdims = keepdims;
  return run1(op, x, &at, out);
}
ct_status ct_sum(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out) {
  return ct__reduce(CT_OP_SUM, x, axes, n_axes, keepdims, out);
}
ct_status ct_max(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out) {
  return ct__reduce(CT_OP_MAX, x, axes, n_axes, keepdims, out);
}
ct_status ct_min(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out) {
  return ct__reduce(CT_OP_MIN, x, axes, n_axes, keepdims, out);
}
ct_status ct_prod(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out) {
  return ct__reduce(CT_OP_PROD, x, axes, n_axes, keepdims, out);
}

ct_status ct_mean(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out) {
  OUT_CHECK("ct_mean");
  CT_TRY(ct__check(x, "ct_mean"));
  int ax[CT_MAX_RANK], na;
  CT_TRY(ct__normalize_axes(x, axes, n_axes, ax, &na));
  int64_t count = 1;
  for (int i = 0; i < na; ++i) count *= x->shape[ax[i]];
  ct_tensor *s;
  CT_TRY(ct_sum(x, ax, na, keepdims, &s));
  ct_status st = ct_div_scalar(s, (double)count, out);
  ct_tensor_free(s);
  return st;
}

ct_status ct_logsumexp(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out) {
  OUT_CHECK("ct_logsumexp");
  CT_TRY(ct__check(x, "ct_logsumexp"));
  if (!ct__is_floating(x->dtype)) return ct__error(x->ctx, CT_ERR_DTYPE, "ct_logsumexp needs a float tensor");
  int ax[CT_MAX_RANK], na;
  CT_TRY(ct__normalize_axes(x, axes, n_axes, ax, &na));
  ct_tensor *m = NULL, *ms = NULL, *mf = NULL, *zero = NULL, *d = NULL, *e = NULL, *s = NULL, *l = NULL, *r = NULL;
  ct_tensor *fin = NULL;
  int64_t count = 1, kshape[CT_MAX_RANK];
  memcpy(kshape, x->shape, sizeof kshape);
  for (int i = 0; i < na; ++i) {
    count *= x->shape[ax[i]];
    kshape[ax[i]] = 1;
  }
  /* over an empty axis the sum is 0 and the result -inf: shift by 0 (max has no identity) */
  ct_status st = count ? ct_max(x, ax, na, true, &m) : ct_zeros(x->ctx, x->dtype, x->rank, kshape, &m);
  /* a row of -inf would give nan: shift by 0 there instead */
  if (st == CT_OK) st = ct_stop_gradient(m, &ms);
  if (st == CT_OK) st = ct_abs(ms, &mf);
  if (st == CT_OK) st = ct_less_scalar(mf, INFINITY, &fin);
  if (st == CT_OK) st = ct_zeros_like(ms, &zero);
  ct_tensor *shift = NULL;
  if (st == CT_OK) st = ct_where(fin, ms, zero, &shift);
  if (st == CT_OK) st = ct_sub(x, shift, &d);
  if (st == CT_OK) st = ct_exp(d, &e);
  if (st == CT_OK) st = ct_sum(e, ax, na, true, &s);
  if (st == CT_OK) st = ct_log(s, &l);
  if (st == CT_OK) st = ct_add(l, shift, &r);
  if (st == CT_OK) {
    if (keepdims) {
      *out = r;
      r = NULL;
    } else {
      int64_t shape[CT_MAX_RANK];
      int k = 0;
      bool red[CT_MAX_RANK] = {0};
      for (int i = 0; i < na; ++i) red[ax[i]] = true;
      for (int i = 0; i < x->rank; ++i)
        if (!red[i]) shape[k++] = x->shape[i];
      st = ct_reshape(r, k, shape, out);
    }
  }
  ct_tensor *all[] = {m, ms, mf, zero, d, e, s, l, r, fin, shift};
  for (size_t i = 0; i < sizeof all / sizeof *all; ++i) ct_tensor_free(all[i]);
  return st;
}

static ct_status argreduce(ct_op_id op, const ct_tensor *x, int axis, ct_tensor **out, const char *fn) {
  OUT_CHECK("argmax/argmin");
  CT_TRY(ct__check(x, fn));
  ct_attrs at = ct__attrs(CT_AT_AXIS);
  if (x->rank == 0) return ct__error(x->ctx, CT_ERR_AXIS, "%s of a scalar has no axis", fn);
  CT_TRY(norm_axis(x, axis, 0, &at.axis.axis));
  return run1(op, x, &at, out);
}
ct_status ct_argmax(const ct_tensor *x, int axis, ct_tensor **out) {
  return argreduce(CT_OP_ARGMAX, x, axis, out, "ct_argmax");
}
ct_status ct_argmin(const ct_tensor *x, int axis, ct_tensor **out) {
  return argreduce(CT_OP_ARGMIN, x, axis, out, "ct_argmin");
}

ct_status ct_reshape(const ct_tensor *x, int rank, const int64_t *shape, ct_tensor **out) {
  OUT_CHECK("ct_reshape");
  CT_TRY(ct__check(x, "ct_reshape"));
  if (rank < 0 || rank > CT_MAX_RANK) return ct__error(x->ctx, CT_ERR_SHAPE, "ct_reshape: rank %d is outside 0..8", rank);
  if (rank > 0 && !shape) return ct__error(x->ctx, CT_ERR_NULL, "ct_reshape: shape is NULL");
  ct_attrs at = ct__attrs(CT_AT_SHAPE);
  at.shape.rank = rank;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < rank; ++i) {
    at.shape.shape[i] = shape[i];
    if (shape[i] == -1) {
      if (infer >= 0) return ct__error(x->ctx, CT_ERR_SHAPE, "ct_reshape: more than one -1 extent");
      infer = i;
    } else if (shape[i] < 0) {
      return ct__error(x->ctx, CT_ERR_SHAPE, "ct_reshape: negative extent %lld", (long long)shape[i]);
    } else if (!ct__mul_ok(known, shape[i], &known)) {
      return ct__error(x->ctx, CT_ERR_SHAPE, "ct_reshape: size overflows");
    }
  }
  if (infer >= 0) {
    if (known == 0 || x->size % known)
      return ct__error(x->ctx, CT_ERR_SHAPE, "ct_reshape: cannot infer -1 for %lld elements", (long long)x->size);
    at.shape.shape[infer] = x->size / known;
  } else if (known != x->size) {
    char s1[96], s2[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    ct__shape_str(rank, shape, s2, sizeof s2);
    return ct__error(x->ctx, CT_ERR_SHAPE, "ct_reshape: cannot reshape %s (%lld elements) to %s", s1,
                     (long long)x->size, s2);
  }
  /* an empty tensor takes any shape with a zero extent: its other extents must still be sane */
  int64_t n;
  CT_TRY(ct__check_shape(x->ctx, rank, at.shape.shape, &n));
  return run1(CT_OP_RESHAPE, x, &at, out);
}

ct_status ct_transpose(const ct_tensor *x, const int *perm, ct_tensor **out) {
  OUT_CHECK("ct_transpose");
  CT_TRY(ct__check(x, "ct_transpose"));
  ct_attrs at = ct__attrs(CT_AT_PERM);
  bool seen[CT_MAX_RANK] = {0};
  for (int i = 0; i < x->rank; ++i) {
    int p = perm ? perm[i] : x->rank - 1 - i;
    if (p < 0) p += x->rank;
    if (p < 0 || p >= x->rank || seen[p])
      return ct__error(x->ctx, CT_ERR_AXIS, "ct_transpose: perm is not a permutation of 0..%d", x->rank - 1);
    seen[p] = true;
    at.perm.perm[i] = p;
  }
  return run1(CT_OP_TRANSPOSE, x, &at, out);
}

ct_status ct_slice(const ct_tensor *x, const int64_t *begin, const int64_t *end, const int64_t *step, ct_tensor **out) {
  OUT_CHECK("ct_slice");
  CT_TRY(ct__check(x, "ct_slice"));
  ct_attrs at = ct__attrs(CT_AT_SLICE);
  at.slice.rank = x->rank;
  for (int i = 0; i < x->rank; ++i) {
    int64_t n = x->shape[i], st = step ? step[i] : 1;
    if (st == 0) return ct__error(x->ctx, CT_ERR_INVALID, "ct_slice: step 0 on axis %d", i);
    /* a step longer than the axis selects one element, as the axis' own length does: clamping
     * keeps the arithmetic below (and the strides) from overflowing */
    if (st > n) st = n > 0 ? n : 1;
    else if (st < -n) st = n > 0 ? -n : -1;
    int64_t b, e;
    if (st > 0) {
      b = begin ? begin[i] : 0;
      e = end ? end[i] : n;
      if (b < 0) b += n;
      if (e < 0) e += n;
      b = b < 0 ? 0 : (b > n ? n : b);
      e = e < 0 ? 0 : (e > n ? n : e);
    } else {
      b = begin ? begin[i] : n - 1;
      e = end ? end[i] : -n - 1;
      if (b < 0) b += n;
      if (e < 0 && end) e += n; /* Python: an end of -1 is the last element, not "before 0" */
      else if (!end) e = -1;
      b = b < -1 ? -1 : (b > n - 1 ? n - 1 : b);
      e = e < -1 ? -1 : (e > n - 1 ? n - 1 : e);
    }
    at.slice.begin[i] = b;
    at.slice.step[i] = st;
    at.slice.shape[i] = slice_len(b, e, st);
  }
  return run1(CT_OP_SLICE, x, &at, out);
}

ct_status ct_concat(ct_tensor *const *xs, int n, int axis, ct_tensor **out) {
  OUT_CHECK("ct_concat");
  if (n < 1) return ct__error(NULL, CT_ERR_INVALID, "ct_concat: needs at least one tensor (n = %d)", n);
  if (!xs) return ct__error(NULL, CT_ERR_NULL, "ct_concat: xs is NULL");
  for (int i = 0; i < n; ++i) CT_TRY(ct__check(xs[i], "ct_concat"));
  const ct_tensor *x0 = xs[0];
  ct_attrs at = ct__attrs(CT_AT_AXIS);
  if (x0->rank == 0) return ct__error(x0->ctx, CT_ERR_SHAPE, "ct_concat: cannot concatenate scalars (use ct_stack)");
  CT_TRY(norm_axis(x0, axis, 0, &at.axis.axis));
  int64_t total = x0->shape[at.axis.axis];
  for (int i = 1; i < n; ++i) {
    if (xs[i]->dtype != x0->dtype) return ct__error(x0->ctx, CT_ERR_DTYPE, "ct_concat: tensor %d has another dtype", i);
    if (xs[i]->rank != x0->rank) return ct__error(x0->ctx, CT_ERR_SHAPE, "ct_concat: tensor %d has another rank", i);
    for (int d = 0; d < x0->rank; ++d)
      if (d != at.axis.axis && xs[i]->shape[d] != x0->shape[d])
        return ct__error(x0->ctx, CT_ERR_SHAPE, "ct_concat: tensor %d differs on axis %d", i, d);
    if (!ct__add_ok(total, xs[i]->shape[at.axis.axis], &total))
      return ct__error(x0->ctx, CT_ERR_SHAPE, "ct_concat: the extent of axis %d overflows", at.axis.axis);
  }
  return ct__run(CT_OP_CONCAT, (const ct_tensor *const *)xs, n, &at, out);
}

ct_status ct_stack(ct_tensor *const *xs, int n, int axis, ct_tensor **out) {
  OUT_CHECK("ct_stack");
  if (n < 1) return ct__error(NULL, CT_ERR_INVALID, "ct_stack: needs at least one tensor (n = %d)", n);
  if (!xs) return ct__error(NULL, CT_ERR_NULL, "ct_stack: xs is NULL");
  for (int i = 0; i < n; ++i) CT_TRY(ct__check(xs[i], "ct_stack"));
  int a = 0;
  CT_TRY(norm_axis(xs[0], axis, 1, &a));
  if (xs[0]->rank + 1 > CT_MAX_RANK) return ct__error(xs[0]->ctx, CT_ERR_SHAPE, "ct_stack: result rank exceeds 8");
  ct_tensor **ex = calloc((size_t)n, sizeof *ex);
  if (!ex) return ct__error(xs[0]->ctx, CT_ERR_OUT_OF_MEMORY, "ct_stack");
  ct_status s = CT_OK;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    if (xs[i]->rank != xs[0]->rank || memcmp(xs[i]->shape, xs[0]->shape, sizeof(int64_t) * (size_t)xs[0]->rank)) {
      s = ct__error(xs[0]->ctx, CT_ERR_SHAPE, "ct_stack: tensor %d has another shape", i);
      break;
    }
    int64_t shape[CT_MAX_RANK];
    int k = 0;
    for (int d = 0; d <= xs[i]->rank; ++d) shape[d] = d == a ? 1 : xs[i]->shape[k++];
    s = ct_reshape(xs[i], xs[i]->rank + 1, shape, &ex[i]);
  }
  if (s == CT_OK) s = ct_concat(ex, n, a, out);
  ct_tensor_free_n(ex, n);
  free(ex);
  return s;
}

ct_status ct_broadcast_to(const ct_tensor *x, int rank, const int64_t *shape, ct_tensor **out) {
  OUT_CHECK("ct_broadcast_to");
  CT_TRY(ct__check(x, "ct_broadcast_to"));
  int64_t n;
  CT_TRY(ct__check_shape(x->ctx, rank, shape, &n));
  if (rank < x->rank) return ct__error(x->ctx, CT_ERR_SHAPE, "ct_broadcast_to: target rank %d < rank %d", rank, x->rank);
  for (int d = 0; d < x->rank; ++d) {
    int64_t e = x->shape[d], t = shape[rank - x->rank + d];
    if (e != t && e != 1) {
      char s1[96], s2[96];
      ct__shape_str(x->rank, x->shape, s1, sizeof s1);
      ct__shape_str(rank, shape, s2, sizeof s2);
      return ct__error(x->ctx, CT_ERR_SHAPE, "ct_broadcast_to: %s does not broadcast to %s", s1, s2);
    }
  }
  ct_attrs at = ct__attrs(CT_AT_SHAPE);
  at.shape.rank = rank;
  memcpy(at.shape.shape, shape, sizeof(int64_t) * (size_t)rank);
  return run1(CT_OP_BROADCAST, x, &at, out);
}

ct_status ct_gather(const ct_tensor *x, const ct_tensor *indices, int axis, ct_tensor **out) {
  OUT_CHECK("ct_gather");
  CT_TRY(ct__check(x, "ct_gather"));
  CT_TRY(ct__check(indices, "ct_gather"));
  if (indices->dtype != CT_INT32) return ct__error(x->ctx, CT_ERR_DTYPE, "ct_gather: indices must be int32");
  if (x->rank == 0) return ct__error(x->ctx, CT_ERR_AXIS, "ct_gather: cannot gather from a scalar");
  ct_attrs at = ct__attrs(CT_AT_GATHER);
  CT_TRY(norm_axis(x, axis, 0, &at.gather.axis));
  at.gather.rank = x->rank;
  memcpy(at.gather.shape, x->shape, sizeof at.gather.shape);
  return run2(CT_OP_GATHER, x, indices, &at, out);
}

ct_status ct_one_hot(const ct_tensor *indices, int depth, ct_dtype dtype, ct_tensor **out) {
  OUT_CHECK("ct_one_hot");
  CT_TRY(ct__check(indices, "ct_one_hot"));
  if (indices->dtype != CT_INT32) return ct__error(indices->ctx, CT_ERR_DTYPE, "ct_one_hot: indices must be int32");
  if (depth < 0) return ct__error(indices->ctx, CT_ERR_INVALID, "ct_one_hot: negative depth %d", depth);
  if (indices->rank >= CT_MAX_RANK) return ct__error(indices->ctx, CT_ERR_SHAPE, "ct_one_hot: result rank exceeds 8");
  CT_TRY(ct__check_dtype(indices->ctx, dtype));
  if (ct__is_half(dtype) || dtype == CT_BOOL) { /* made in float32 (int32 for bool), then cast: exact */
    ct_tensor *w = NULL;
    CT_TRY(ct_one_hot(indices, depth, dtype == CT_BOOL ? CT_INT32 : CT_FLOAT32, &w));
    ct_status s = ct_cast(w, dtype, out);
    ct_tensor_free(w);
    return s;
  }
  ct_attrs at = ct__attrs(CT_AT_ONE_HOT);
  at.one_hot.depth = depth;
  at.one_hot.dtype = dtype;
  return run1(CT_OP_ONE_HOT, indices, &at, out);
}

ct_status ct_matmul(const ct_tensor *a, const ct_tensor *b, bool transpose_a, bool transpose_b, ct_tensor **out) {
  OUT_CHECK("ct_matmul");
  ct_attrs at = ct__attrs(CT_AT_MATMUL);
  at.matmul.ta = transpose_a;
  at.matmul.tb = transpose_b;
  return run2(CT_OP_MATMUL, a, b, &at, out);
}

static ct_status softmax_impl(const ct_tensor *x, int axis, bool logsm, ct_tensor **out) {
  CT_TRY(ct__check(x, logsm ? "ct_log_softmax" : "ct_softmax"));
  if (!ct__is_floating(x->dtype)) return ct__error(x->ctx, CT_ERR_DTYPE, "softmax needs a float tensor");
  if (x->rank == 0) return ct__error(x->ctx, CT_ERR_AXIS, "softmax of a scalar has no axis");
  int a = 0;
  CT_TRY(norm_axis(x, axis, 0, &a));
  ct_tensor *m = NULL, *ms = NULL, *d = NULL, *e = NULL, *s = NULL, *l = NULL;
  ct_status st = ct_max(x, &a, 1, true, &m);
  if (st == CT_OK) st = ct_stop_gradient(m, &ms);
  if (st == CT_OK) st = ct_sub(x, ms, &d);
  if (st == CT_OK) st = ct_exp(d, &e);
  if (st == CT_OK) st = ct_sum(e, &a, 1, true, &s);
  if (st == CT_OK) {
    if (logsm) {
      st = ct_log(s, &l);
      if (st == CT_OK) st = ct_sub(d, l, out);
    } else {
      st = ct_div(e, s, out);
    }
  }
  ct_tensor *all[] = {m, ms, d, e, s, l};
  for (size_t i = 0; i < sizeof all / sizeof *all; ++i) ct_tensor_free(all[i]);
  return st;
}
ct_status ct_softmax(const ct_tensor *x, int axis, ct_tensor **out) {
  OUT_CHECK("ct_softmax");
  return softmax_impl(x, axis, false, out);
}
ct_status ct_log_softmax(const ct_tensor *x, int axis, ct_tensor **out) {
  OUT_CHECK("ct_log_softmax");
  return softmax_impl(x, axis, true, out);
}

/* ---- user-defined ops ---------------------------------------------------------------------- */
ct_status ct_custom_op_call(ct_context *ctx, const char *name, ct_tensor *const *inputs, int n_inputs, ct_tensor **out) {
  OUT_CHECK("ct_custom_op_call");
  if (ctx) CT_TRY(ct__check_context(ctx, "ct_custom_op_call"));
  if (!ctx || !name) return ct__error(ctx, CT_ERR_NULL, "ct_custom_op_call: ctx and name are required");
  const ct_custom_rec *c = ct__custom_find(name);
  if (!c) return ct__error(ctx, CT_ERR_NOT_FOUND, "no user-defined op named \"%s\"", name);
  if (n_inputs != c->n_inputs)
    return ct__error(ctx, CT_ERR_INVALID, "op %s takes %d inputs, %d given", name, c->n_inputs, n_inputs);
  if (!inputs) return ct__error(ctx, CT_ERR_NULL, "op %s: inputs is NULL", name);
  for (int i = 0; i < n_inputs; ++i) {
    CT_TRY(ct__check(inputs[i], name));
    if (inputs[i]->ctx != ctx) return ct__error(ctx, CT_ERR_CONTEXT, "op %s: input %d belongs to another context", name, i);
  }
  ct_attrs at = ct__attrs(CT_AT_CUSTOM);
  at.custom.rec = c;
  return ct__run(CT_OP_CUSTOM, (const ct_tensor *const *)inputs, n_inputs, &at, out);
}
