/* ops_sort.c — sorting along one axis and the cumulative product.
 *
 * ArgSort is a row of the op table (kernels/sort.cl, launched by host/launch_sort.c): int32
 * indices, not differentiable. ct_sort and ct_top_k take the values at those indices with a
 * gather over the flattened input (take_along), so their gradient is the gather's: the upstream
 * gradient added back at the indices (the GatherGrad row). ct_cumprod is a scan of products of
 * shifted slices (ct_slice, ct_pad with ones, ct_mul): its gradient is the one of those rows,
 * exact also where the input holds zeros (no division by the input). */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CHECK(fn)                                                  \
  do {                                                                 \
    if (!out) return ct__error(NULL, CT_ERR_NULL, fn ": out is NULL"); \
    *out = NULL;                                                       \
  } while (0)

/* the axis of x named by `axis` (negative from the end), or CT_ERR_AXIS */
static ct_status norm_axis(const ct_tensor *x, int axis, const char *fn, int *a) {
  if (x->rank == 0) return ct__error(x->ctx, CT_ERR_AXIS, "%s: a scalar has no axis", fn);
  if (axis < -x->rank || axis >= x->rank)
    return ct__error(x->ctx, CT_ERR_AXIS, "%s: axis %d is out of range for rank %d", fn, axis, x->rank);
  *a = axis < 0 ? axis + x->rank : axis;
  return CT_OK;
}

/* (outer, n, inner) of a shape around axis a */
static void split_axis(int rank, const int64_t *shape, int a, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < rank; ++d) {
    if (d < a) *outer *= shape[d];
    if (d > a) *inner *= shape[d];
  }
}

/* ---- ArgSort: the row ------------------------------------------------------------------------ */
CT_FORWARD(ct__fwd_argsort) {
  (void)n_in, (void)op;
  const ct_tensor *x = in[0];
  if (x->dtype != CT_FLOAT32 && x->dtype != CT_FLOAT64 && x->dtype != CT_INT32)
    return ct__error(x->ctx, CT_ERR_DTYPE, "ArgSort: dtype %s is not supported (float32, float64, int32)",
                     ct_dtype_name(x->dtype));
  int a = at->sort.axis;
  if (x->shape[a] > INT32_MAX / 2)
    return ct__error(x->ctx, CT_ERR_UNSUPPORTED, "ArgSort: axis %d has %lld elements, more than int32 indices hold", a,
                     (long long)x->shape[a]);
  int64_t outer, inner;
  split_axis(x->rank, x->shape, a, &outer, &inner);
  CT_TRY(ct__tensor_new(x->ctx, CT_INT32, x->rank, x->shape, out));
  if ((*out)->size == 0) return CT_OK;
  return ctb_argsort(x->ctx, x->dtype, outer, x->shape[a], inner, at->sort.descending, x->buf, (*out)->buf);
}

/* the host reference: the same order (stable, NaN larger than every number) by insertion */
static bool ref_before(double a, int64_t ia, double b, int64_t ib, bool desc) {
  bool an = isnan(a), bn = isnan(b);
  if (an || bn) return an && bn ? ia < ib : (desc ? an : bn);
  if (a != b) return desc ? a > b : a < b;
  return ia < ib;
}

CT_REFERENCE(ct__ref_argsort) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0];
  int a = at->sort.axis;
  int64_t outer, inner, n = x->shape[a], total = 1;
  split_axis(x->rank, x->shape, a, &outer, &inner);
  for (int d = 0; d < x->rank; ++d) total *= x->shape[d];
  out->rank = x->rank;
  memcpy(out->shape, x->shape, sizeof(int64_t) * (size_t)x->rank);
  out->v = calloc((size_t)(total ? total : 1), sizeof(double));
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!out->v || !idx) {
    free(idx);
    return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "host reference");
  }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const double *row = x->v + o * n * inner + i;
      for (int64_t k = 0; k < n; ++k) {
        int64_t j = k;
        while (j > 0 && ref_before(row[k * inner], k, row[idx[j - 1] * inner], idx[j - 1], at->sort.descending)) {
          idx[j] = idx[j - 1];
          --j;
        }
        idx[j] = k;
      }
      for (int64_t k = 0; k < n; ++k) out->v[(o * n + k) * inner + i] = (double)idx[k];
    }
  free(idx);
  return CT_OK;
}

ct_status ct_argsort(const ct_tensor *x, int axis, bool descending, ct_tensor **out) {
  OUT_CHECK("ct_argsort");
  CT_TRY(ct__check(x, "ct_argsort"));
  ct_attrs at = ct__attrs(CT_AT_SORT);
  CT_TRY(norm_axis(x, axis, "ct_argsort", &at.sort.axis));
  at.sort.descending = descending;
  const ct_tensor *in[1] = {x};
  return ct__run(CT_OP_ARGSORT, in, 1, &at, out);
}

/* out[.., j, ..] = x[.., idx[.., j, ..], ..] along axis a (idx: x's shape but for axis a): a
 * gather over the flattened x at o*n*inner + idx*inner + i, so that the gradient is the gather's */
static ct_status take_along(const ct_tensor *x, const ct_tensor *idx, int a, const char *fn, ct_tensor **out) {
  int64_t outer, inner, n = x->shape[a], m = idx->shape[a];
  split_axis(x->rank, x->shape, a, &outer, &inner);
  int64_t total = outer * n * inner;
  if (total > INT32_MAX)
    return ct__error(x->ctx, CT_ERR_UNSUPPORTED, "%s: %lld elements, more than int32 indices hold", fn, (long long)total);
  if (total == 0 || outer * m * inner == 0) return ct_slice(x, NULL, idx->shape, NULL, out);
  ct_tensor *rows = NULL, *cols = NULL, *r3 = NULL, *c3 = NULL, *base = NULL, *i3 = NULL, *scaled = NULL, *flat = NULL,
            *fidx = NULL, *xf = NULL;
  const int64_t s_rows[3] = {outer, 1, 1}, s_cols[3] = {1, 1, inner}, s_idx[3] = {outer, m, inner};
  const int64_t s_flat[1] = {total};
  ct_status s = ct_range(x->ctx, CT_INT32, 0, (double)total, (double)(n * inner), &rows);
  if (s == CT_OK) s = ct_range(x->ctx, CT_INT32, 0, (double)inner, 1, &cols);
  if (s == CT_OK) s = ct_reshape(rows, 3, s_rows, &r3);
  if (s == CT_OK) s = ct_reshape(cols, 3, s_cols, &c3);
  if (s == CT_OK) s = ct_add(r3, c3, &base);
  if (s == CT_OK) s = ct_reshape(idx, 3, s_idx, &i3);
  if (s == CT_OK) s = ct_mul_scalar(i3, (double)inner, &scaled);
  if (s == CT_OK) s = ct_add(scaled, base, &flat);
  if (s == CT_OK) s = ct_reshape(flat, idx->rank, idx->shape, &fidx);
  if (s == CT_OK) s = ct_reshape(x, 1, s_flat, &xf);
  if (s == CT_OK) s = ct_gather(xf, fidx, 0, out);
  ct_tensor *all[] = {rows, cols, r3, c3, base, i3, scaled, flat, fidx, xf};
  for (size_t i = 0; i < sizeof all / sizeof *all; ++i) ct_tensor_free(all[i]);
  return s;
}

ct_status ct_sort(const ct_tensor *x, int axis, bool descending, ct_tensor **out) {
  OUT_CHECK("ct_sort");
  CT_TRY(ct__check(x, "ct_sort"));
  int a = 0;
  CT_TRY(norm_axis(x, axis, "ct_sort", &a));
  ct_tensor *idx = NULL;
  ct_status s = ct_argsort(x, a, descending, &idx);
  if (s == CT_OK) s = take_along(x, idx, a, "ct_sort", out);
  ct_tensor_free(idx);
  return s;
}

ct_status ct_top_k(const ct_tensor *x, int64_t k, int axis, ct_tensor **values, ct_tensor **indices) {
  if (values) *values = NULL;
  if (indices) *indices = NULL;
  if (!values && !indices) return ct__error(NULL, CT_ERR_NULL, "ct_top_k: values and indices are both NULL");
  CT_TRY(ct__check(x, "ct_top_k"));
  int a = 0;
  CT_TRY(norm_axis(x, axis, "ct_top_k", &a));
  if (k < 0 || k > x->shape[a])
    return ct__error(x->ctx, CT_ERR_INVALID, "ct_top_k: k = %lld, axis %d has %lld elements", (long long)k, a,
                     (long long)x->shape[a]);
  ct_tensor *idx = NULL, *top = NULL, *v = NULL;
  int64_t end[CT_MAX_RANK];
  memcpy(end, x->shape, sizeof(int64_t) * (size_t)x->rank);
  end[a] = k;
  ct_status s = ct_argsort(x, a, true, &idx);
  if (s == CT_OK) s = ct_slice(idx, NULL, end, NULL, &top);
  if (s == CT_OK && values) s = take_along(x, top, a, "ct_top_k", &v);
  if (s == CT_OK) {
    if (values) *values = v;
    if (indices) *indices = top;
    else ct_tensor_free(top);
  } else {
    ct_tensor_free(v);
    ct_tensor_free(top);
  }
  ct_tensor_free(idx);
  return s;
}

/* ---- cumulative product ---------------------------------------------------------------------- */
ct_status ct_cumprod(const ct_tensor *x, int axis, ct_tensor **out) {
  OUT_CHECK("ct_cumprod");
  CT_TRY(ct__check(x, "ct_cumprod"));
  int a = 0;
  CT_TRY(norm_axis(x, axis, "ct_cumprod", &a));
  return ct__scan(x, a, true, out);
}
