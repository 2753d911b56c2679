/* ops_compose.c — tensor ops built from rows of the op table: squeeze, expand_dims, clip_by_value,
 * pad, tile, split and cumsum. They record the rows they are made of, so their gradients are those
 * rows' gradients (reshape, maximum/minimum, slice and its gradient, broadcast_to, add). */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <stdlib.h>
#include <string.h>

#define OUT_CHECK(fn)                                                  \
  do {                                                                 \
    if (!out) return ct__error(NULL, CT_ERR_NULL, fn ": out is NULL"); \
    *out = NULL;                                                       \
  } while (0)

ct_status ct_squeeze(const ct_tensor *x, const int *axes, int n_axes, ct_tensor **out) {
  OUT_CHECK("ct_squeeze");
  CT_TRY(ct__check(x, "ct_squeeze"));
  bool drop[CT_MAX_RANK] = {0};
  if (!axes) {
    if (n_axes != 0) return ct__error(x->ctx, CT_ERR_NULL, "ct_squeeze: axes is NULL and n_axes is %d", n_axes);
    for (int d = 0; d < x->rank; ++d) drop[d] = x->shape[d] == 1;
  } else {
    int ax[CT_MAX_RANK], na;
    CT_TRY(ct__normalize_axes(x, axes, n_axes, ax, &na));
    for (int i = 0; i < na; ++i) {
      if (x->shape[ax[i]] != 1)
        return ct__error(x->ctx, CT_ERR_SHAPE, "ct_squeeze: axis %d has extent %lld, not 1", ax[i],
                         (long long)x->shape[ax[i]]);
      drop[ax[i]] = true;
    }
  }
  int64_t shape[CT_MAX_RANK];
  int k = 0;
  for (int d = 0; d < x->rank; ++d)
    if (!drop[d]) shape[k++] = x->shape[d];
  return ct_reshape(x, k, shape, out);
}

ct_status ct_expand_dims(const ct_tensor *x, int axis, ct_tensor **out) {
  OUT_CHECK("ct_expand_dims");
  CT_TRY(ct__check(x, "ct_expand_dims"));
  int r = x->rank + 1;
  if (axis < -r || axis >= r) return ct__error(x->ctx, CT_ERR_AXIS, "ct_expand_dims: axis %d is out of range for rank %d", axis, r);
  if (r > CT_MAX_RANK) return ct__error(x->ctx, CT_ERR_SHAPE, "ct_expand_dims: result rank exceeds %d", CT_MAX_RANK);
  int a = axis < 0 ? axis + r : axis;
  int64_t shape[CT_MAX_RANK];
  for (int d = 0, k = 0; d < r; ++d) shape[d] = d == a ? 1 : x->shape[k++];
  return ct_reshape(x, r, shape, out);
}

ct_status ct_clip_by_value(const ct_tensor *x, double lo, double hi, ct_tensor **out) {
  OUT_CHECK("ct_clip_by_value");
  CT_TRY(ct__check(x, "ct_clip_by_value"));
  if (!(lo <= hi)) return ct__error(x->ctx, CT_ERR_INVALID, "ct_clip_by_value: lo %g is not <= hi %g", lo, hi);
  ct_tensor *m = NULL;
  ct_status s = ct_maximum_scalar(x, lo, &m);
  if (s == CT_OK) s = ct_minimum_scalar(m, hi, out);
  ct_tensor_free(m);
  return s;
}

/* zeros shaped `shape` with x placed at `begin` (the slice gradient row: its gradient is a slice) */
static ct_status place(const ct_tensor *x, int rank, const int64_t *shape, const int64_t *begin, ct_tensor **out) {
  ct_attrs at = ct__attrs(CT_AT_SLICE);
  at.slice.rank = rank;
  for (int d = 0; d < rank; ++d) {
    at.slice.shape[d] = shape[d];
    at.slice.begin[d] = begin[d];
    at.slice.step[d] = 1;
  }
  const ct_tensor *in[1] = {x};
  return ct__run(CT_OP_SLICE_GRAD, in, 1, &at, out);
}

ct_status ct_pad(const ct_tensor *x, const int64_t *paddings, double value, ct_tensor **out) {
  OUT_CHECK("ct_pad");
  CT_TRY(ct__check(x, "ct_pad"));
  if (x->rank > 0 && !paddings) return ct__error(x->ctx, CT_ERR_NULL, "ct_pad: paddings is NULL");
  int64_t shape[CT_MAX_RANK], begin[CT_MAX_RANK];
  for (int d = 0; d < x->rank; ++d) {
    int64_t b = paddings[2 * d], e = paddings[2 * d + 1], n;
    if (b < 0 || e < 0)
      return ct__error(x->ctx, CT_ERR_INVALID, "ct_pad: negative padding (%lld, %lld) on axis %d", (long long)b,
                       (long long)e, d);
    if (!ct__add_ok(x->shape[d], b, &n) || !ct__add_ok(n, e, &n))
      return ct__error(x->ctx, CT_ERR_SHAPE, "ct_pad: the extent of axis %d overflows", d);
    shape[d] = n;
    begin[d] = b;
  }
  int64_t total;
  CT_TRY(ct__check_shape(x->ctx, x->rank, shape, &total));
  if (value == 0) return place(x, x->rank, shape, begin, out);
  /* out = placed + value * (1 - mask), mask = 1 where x was placed */
  ct_tensor *p = NULL, *one = NULL, *mask = NULL, *fillv = NULL;
  ct_status s = place(x, x->rank, shape, begin, &p);
  if (s == CT_OK) s = ct_ones_like(x, &one);
  if (s == CT_OK) s = place(one, x->rank, shape, begin, &mask);
  if (s == CT_OK) s = ct_rsub_scalar(1.0, mask, &fillv);
  ct_tensor_free(mask);
  mask = NULL;
  if (s == CT_OK) s = ct_mul_scalar(fillv, value, &mask);
  if (s == CT_OK) s = ct_add(p, mask, out);
  ct_tensor *all[] = {p, one, mask, fillv};
  for (size_t i = 0; i < sizeof all / sizeof *all; ++i) ct_tensor_free(all[i]);
  return s;
}

ct_status ct_tile(const ct_tensor *x, const int64_t *multiples, ct_tensor **out) {
  OUT_CHECK("ct_tile");
  CT_TRY(ct__check(x, "ct_tile"));
  if (x->rank > 0 && !multiples) return ct__error(x->ctx, CT_ERR_NULL, "ct_tile: multiples is NULL");
  int64_t shape[CT_MAX_RANK], total;
  for (int d = 0; d < x->rank; ++d) {
    if (multiples[d] < 0)
      return ct__error(x->ctx, CT_ERR_INVALID, "ct_tile: negative multiple %lld on axis %d", (long long)multiples[d], d);
    if (!ct__mul_ok(x->shape[d], multiples[d], &shape[d]))
      return ct__error(x->ctx, CT_ERR_SHAPE, "ct_tile: the extent of axis %d overflows", d);
  }
  CT_TRY(ct__check_shape(x->ctx, x->rank, shape, &total));
  /* one axis at a time: (pre, 1, n, post) broadcast to (pre, m, n, post), merged to (pre, m n, post) */
  ct_tensor *cur = ct_tensor_retain((ct_tensor *)x);
  ct_status s = CT_OK;
  for (int d = 0; d < x->rank && s == CT_OK; ++d) {
    if (multiples[d] == 1) continue;
    int64_t pre = 1, post = 1;
    for (int i = 0; i < d; ++i) pre *= shape[i];
    for (int i = d + 1; i < x->rank; ++i) post *= x->shape[i];
    int64_t four[4] = {pre, 1, x->shape[d], post}, big[4] = {pre, multiples[d], x->shape[d], post};
    ct_tensor *r = NULL, *b = NULL, *next = NULL;
    s = ct_reshape(cur, 4, four, &r);
    if (s == CT_OK) s = ct_broadcast_to(r, 4, big, &b);
    if (s == CT_OK) {
      int64_t sh[CT_MAX_RANK];
      for (int i = 0; i < x->rank; ++i) sh[i] = i <= d ? shape[i] : x->shape[i];
      s = ct_reshape(b, x->rank, sh, &next);
    }
    ct_tensor_free(r);
    ct_tensor_free(b);
    ct_tensor_free(cur);
    cur = next;
  }
  if (s == CT_OK) {
    if (cur == x) s = ct_identity(x, out); /* a new handle, recorded like every other result */
    else *out = ct_tensor_retain(cur);
  }
  ct_tensor_free(cur);
  return s;
}

ct_status ct_split(const ct_tensor *x, const int64_t *sizes, int n, int axis, ct_tensor **outs) {
  if (!outs) return ct__error(NULL, CT_ERR_NULL, "ct_split: outs is NULL");
  if (n < 1) return ct__error(NULL, CT_ERR_INVALID, "ct_split: needs at least one part (n = %d)", n);
  for (int i = 0; i < n; ++i) outs[i] = NULL;
  CT_TRY(ct__check(x, "ct_split"));
  if (!sizes) return ct__error(x->ctx, CT_ERR_NULL, "ct_split: sizes is NULL");
  if (x->rank == 0) return ct__error(x->ctx, CT_ERR_AXIS, "ct_split: a scalar has no axis");
  if (axis < -x->rank || axis >= x->rank)
    return ct__error(x->ctx, CT_ERR_AXIS, "ct_split: axis %d is out of range for rank %d", axis, x->rank);
  int a = axis < 0 ? axis + x->rank : axis;
  int64_t total = 0;
  for (int i = 0; i < n; ++i) {
    if (sizes[i] < 0 || !ct__add_ok(total, sizes[i], &total) || total > x->shape[a])
      return ct__error(x->ctx, CT_ERR_SHAPE, "ct_split: sizes do not add up to the extent %lld of axis %d",
                       (long long)x->shape[a], a);
  }
  if (total != x->shape[a])
    return ct__error(x->ctx, CT_ERR_SHAPE, "ct_split: sizes add up to %lld, axis %d has %lld", (long long)total, a,
                     (long long)x->shape[a]);
  int64_t begin[CT_MAX_RANK] = {0}, end[CT_MAX_RANK];
  memcpy(end, x->shape, sizeof(int64_t) * (size_t)x->rank);
  ct_status s = CT_OK;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    end[a] = begin[a] + sizes[i];
    s = ct_slice(x, begin, end, NULL, &outs[i]);
    begin[a] = end[a];
  }
  if (s != CT_OK)
    for (int i = 0; i < n; ++i) {
      ct_tensor_free(outs[i]);
      outs[i] = NULL;
    }
  return s;
}

ct_status ct_cumsum(const ct_tensor *x, int axis, ct_tensor **out) {
  OUT_CHECK("ct_cumsum");
  CT_TRY(ct__check(x, "ct_cumsum"));
  if (x->rank == 0) return ct__error(x->ctx, CT_ERR_AXIS, "ct_cumsum: a scalar has no axis");
  if (axis < -x->rank || axis >= x->rank)
    return ct__error(x->ctx, CT_ERR_AXIS, "ct_cumsum: axis %d is out of range for rank %d", axis, x->rank);
  int a = axis < 0 ? axis + x->rank : axis;
  return ct__scan(x, a, false, out);
}

/* log2(n) steps of y = y (+ or *) y shifted by `shift` along axis a (Hillis-Steele); the shift is a
 * slice padded with the identity of the step (ct_pad: zeros are the slice placed by
 * StridedSliceGrad), so the gradient of a sum is the same scan run backwards, and nothing divides
 * by the input in a product's. */
ct_status ct__scan(const ct_tensor *x, int a, bool product, ct_tensor **out) {
  int64_t n = x->shape[a];
  ct_tensor *y = NULL;
  ct_status s = ct_identity(x, &y);
  int64_t end[CT_MAX_RANK], pads[2 * CT_MAX_RANK] = {0};
  memcpy(end, x->shape, sizeof(int64_t) * (size_t)x->rank);
  for (int64_t shift = 1; shift < n && s == CT_OK; shift *= 2) {
    ct_tensor *part = NULL, *moved = NULL, *next = NULL;
    end[a] = n - shift;
    pads[2 * a] = shift;
    s = ct_slice(y, NULL, end, NULL, &part);
    if (s == CT_OK) s = ct_pad(part, pads, product ? 1.0 : 0.0, &moved);
    if (s == CT_OK) s = product ? ct_mul(y, moved, &next) : ct_add(y, moved, &next);
    ct_tensor_free(part);
    ct_tensor_free(moved);
    ct_tensor_free(y);
    y = next;
  }
  if (s == CT_OK) *out = y;
  else ct_tensor_free(y);
  return s;
}
