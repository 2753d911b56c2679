/* ops_index.c — indexing ops built from rows of the table: gather_nd, scatter, scatter_add and
 * boolean_mask. Each views its tensor as rows (x.shape[:D] flattened) of `inner` elements
 * (x.shape[D:]) and moves whole rows with the GatherV2 row (a gather along axis 0) or its gradient
 * row GatherGrad (each output row sums the updates sent to it: deterministic, no atomics). So the
 * gradient of gather_nd and boolean_mask is the scatter-add that ct_scatter_add computes, and the
 * gradient of ct_scatter_add's updates is the gather_nd of the upstream gradient: one
 * implementation, the rows' own gradients.
 *
 * The indices (and a mask) are read on the host: each index is checked (an out-of-range one is
 * CT_ERR_INVALID naming it, as TensorFlow's InvalidArgumentError), turned into a row number, and
 * the row numbers are sent back as an int32 tensor. Reading waits for whatever computes them. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CHECK(fn)                                                  \
  do {                                                                 \
    if (!out) return ct__error(NULL, CT_ERR_NULL, fn ": out is NULL"); \
    *out = NULL;                                                       \
  } while (0)

/* x seen as (n_rows, inner): the first `lead` axes are the rows */
typedef struct {
  int lead;
  int64_t n_rows, inner;
} row_view;

static row_view view_of(const ct_tensor *x, int lead) {
  row_view v = {lead, 1, 1};
  for (int d = 0; d < x->rank; ++d) {
    if (d < lead) v.n_rows *= x->shape[d];
    else v.inner *= x->shape[d];
  }
  return v;
}

/* The indices' own checks: same context as x, int32, rank >= 1, and their depth D (the last
 * extent) at most x's rank. */
static ct_status index_depth(const char *fn, const ct_tensor *x, const ct_tensor *indices, int64_t *D) {
  if (indices->ctx != x->ctx) return ct__error(x->ctx, CT_ERR_CONTEXT, "%s: indices belong to another context", fn);
  if (indices->dtype != CT_INT32) return ct__error(x->ctx, CT_ERR_DTYPE, "%s: indices must be int32", fn);
  if (indices->rank < 1)
    return ct__error(x->ctx, CT_ERR_SHAPE, "%s: indices must have rank >= 1 (the last axis holds an index)", fn);
  *D = indices->shape[indices->rank - 1];
  if (*D > x->rank)
    return ct__error(x->ctx, CT_ERR_SHAPE, "%s: indices of depth %lld into a tensor of rank %d", fn, (long long)*D,
                     x->rank);
  return CT_OK;
}

/* The indices' checks (dtype, rank, context, the index depth D against x) and their row numbers:
 * rows[k] = the row of x that indices[k, :] names (K = indices.size / D rows). An index out of
 * range is CT_ERR_INVALID naming it. *rows is malloc'd (never NULL on success). */
static ct_status index_rows(const char *fn, const ct_tensor *x, const ct_tensor *indices, row_view *v, int64_t *K,
                            int32_t **rows) {
  *rows = NULL;
  int64_t D;
  CT_TRY(index_depth(fn, x, indices, &D));
  *v = view_of(x, (int)D);
  if (v->n_rows > INT32_MAX)
    return ct__error(x->ctx, CT_ERR_UNSUPPORTED, "%s: the indexed axes hold %lld rows; int32 row numbers reach 2^31-1",
                     fn, (long long)v->n_rows);
  int64_t k_count = D ? indices->size / D : 1;
  for (int d = 0; D == 0 && d < indices->rank - 1; ++d) k_count *= indices->shape[d];
  int32_t *idx = malloc(sizeof(int32_t) * (size_t)(indices->size ? indices->size : 1));
  int32_t *r = malloc(sizeof(int32_t) * (size_t)(k_count ? k_count : 1));
  if (!idx || !r) {
    free(idx);
    free(r);
    return ct__error(x->ctx, CT_ERR_OUT_OF_MEMORY, "%s: no host memory for %lld indices", fn, (long long)indices->size);
  }
  ct_status s = ct_tensor_read(indices, idx, sizeof(int32_t) * (size_t)indices->size);
  for (int64_t k = 0; k < k_count && s == CT_OK; ++k) {
    int64_t row = 0;
    for (int64_t d = 0; d < D; ++d) {
      int64_t i = idx[k * D + d], n = x->shape[d];
      if (i < 0 || i >= n) {
        char at[160], shp[160];
        size_t m = 0;
        for (int64_t e = 0; e < D && m < sizeof at; ++e)
          m += (size_t)snprintf(at + m, sizeof at - m, e ? ", %d" : "%d", (int)idx[k * D + e]);
        ct__shape_str(x->rank, x->shape, shp, sizeof shp);
        s = ct__error(x->ctx, CT_ERR_INVALID, "%s: index [%s] (entry %lld of indices) is out of range on axis %lld of shape %s",
                      fn, at, (long long)k, (long long)d, shp);
        break;
      }
      row = row * n + i;
    }
    r[k] = (int32_t)row;
  }
  free(idx);
  if (s != CT_OK) {
    free(r);
    return s;
  }
  *K = k_count;
  *rows = r;
  return CT_OK;
}

/* the int32 tensor of K row numbers */
static ct_status rows_tensor(ct_context *ctx, const int32_t *rows, int64_t K, ct_tensor **out) {
  return ct_tensor_from_data(ctx, CT_INT32, 1, &K, rows, out);
}

/* out = the rows of x (seen as v) that idx names, shaped (rank, shape) */
static ct_status take_rows(const ct_tensor *x, row_view v, const ct_tensor *idx, int rank, const int64_t *shape,
                           ct_tensor **out) {
  ct_tensor *x2 = NULL, *g = NULL;
  ct_status s = ct_reshape(x, 2, (int64_t[]){v.n_rows, v.inner}, &x2);
  if (s == CT_OK) s = ct_gather(x2, idx, 0, &g);
  if (s == CT_OK) s = ct_reshape(g, rank, shape, out);
  ct_tensor_free(x2);
  ct_tensor_free(g);
  return s;
}

/* rows of u (K, inner) summed into the rows that idx names of a (n_rows, inner) tensor of zeros:
 * the GatherGrad row, whose gradient is the gather of the upstream gradient */
static ct_status add_rows(const ct_tensor *u, row_view v, const ct_tensor *idx, ct_tensor **out) {
  ct_attrs at = ct__attrs(CT_AT_GATHER);
  at.gather.axis = 0;
  at.gather.rank = 2;
  at.gather.shape[0] = v.n_rows;
  at.gather.shape[1] = v.inner;
  const ct_tensor *in[2] = {u, idx};
  return ct__run(CT_OP_GATHER_GRAD, in, 2, &at, out);
}

/* The result shape of gather_nd (and the shape scatter's updates must have): indices.shape[:-1] +
 * x.shape[D:] */
static ct_status nd_shape(const char *fn, const ct_tensor *x, const ct_tensor *indices, int lead, int *rank,
                          int64_t *shape) {
  int r = indices->rank - 1 + x->rank - lead;
  if (r > CT_MAX_RANK) return ct__error(x->ctx, CT_ERR_SHAPE, "%s: the result's rank %d exceeds %d", fn, r, CT_MAX_RANK);
  int k = 0;
  for (int d = 0; d < indices->rank - 1; ++d) shape[k++] = indices->shape[d];
  for (int d = lead; d < x->rank; ++d) shape[k++] = x->shape[d];
  int64_t total;
  CT_TRY(ct__check_shape(x->ctx, r, shape, &total));
  *rank = r;
  return CT_OK;
}

ct_status ct_gather_nd(const ct_tensor *x, const ct_tensor *indices, ct_tensor **out) {
  OUT_CHECK("ct_gather_nd");
  CT_TRY(ct__check(x, "ct_gather_nd"));
  CT_TRY(ct__check(indices, "ct_gather_nd"));
  row_view v;
  int64_t D, K, shape[CT_MAX_RANK];
  int32_t *rows;
  int rank;
  CT_TRY(index_depth("ct_gather_nd", x, indices, &D));
  CT_TRY(nd_shape("ct_gather_nd", x, indices, (int)D, &rank, shape));
  CT_TRY(index_rows("ct_gather_nd", x, indices, &v, &K, &rows));
  ct_tensor *idx = NULL;
  ct_status s = rows_tensor(x->ctx, rows, K, &idx);
  free(rows);
  if (s == CT_OK) s = take_rows(x, v, idx, rank, shape, out);
  ct_tensor_free(idx);
  return s;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Among entries that name the same row the last one wins: the others become -1 (GatherV2 gives
 * them zeros, GatherGrad skips them), so a losing update neither writes nor gets a gradient. */
static ct_status keep_last(const ct_context *ctx, int32_t *rows, int64_t K) {
  if (K < 2) return CT_OK;
  if (K > UINT32_MAX) return ct__error(ctx, CT_ERR_UNSUPPORTED, "ct_scatter: %lld indices; at most 2^32", (long long)K);
  uint64_t *key = malloc(sizeof(uint64_t) * (size_t)K);
  if (!key) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_scatter: no host memory for %lld indices", (long long)K);
  for (int64_t k = 0; k < K; ++k) key[k] = (uint64_t)(uint32_t)rows[k] << 32 | (uint64_t)k;
  qsort(key, (size_t)K, sizeof *key, cmp_u64);
  for (int64_t k = 0; k + 1 < K; ++k)
    if (key[k] >> 32 == key[k + 1] >> 32) rows[key[k] & 0xffffffffu] = -1;
  free(key);
  return CT_OK;
}

/* What scatter and scatter_add share: the checks (updates of x's dtype and of shape
 * indices.shape[:-1] + x.shape[D:], no broadcasting), the row numbers as an int32 tensor (with
 * only the last of repeated rows kept when last_wins), and the updates as (K, inner) rows. */
static ct_status scatter_prep(const char *fn, const ct_tensor *x, const ct_tensor *indices, const ct_tensor *updates,
                              bool last_wins, row_view *v, ct_tensor **idx, ct_tensor **u2) {
  *idx = *u2 = NULL;
  CT_TRY(ct__check(x, fn));
  CT_TRY(ct__check(indices, fn));
  CT_TRY(ct__check(updates, fn));
  if (updates->ctx != x->ctx) return ct__error(x->ctx, CT_ERR_CONTEXT, "%s: updates belong to another context", fn);
  if (updates->dtype != x->dtype)
    return ct__error(x->ctx, CT_ERR_DTYPE, "%s: updates are %s, the tensor is %s", fn, ct_dtype_name(updates->dtype),
                     ct_dtype_name(x->dtype));
  int64_t D, want[CT_MAX_RANK], K;
  int wr;
  CT_TRY(index_depth(fn, x, indices, &D));
  CT_TRY(nd_shape(fn, x, indices, (int)D, &wr, want));
  if (updates->rank != wr || memcmp(updates->shape, want, sizeof(int64_t) * (size_t)wr) != 0) {
    char a[160], b[160];
    ct__shape_str(updates->rank, updates->shape, a, sizeof a);
    ct__shape_str(wr, want, b, sizeof b);
    return ct__error(x->ctx, CT_ERR_SHAPE, "%s: updates have shape %s; these indices and tensor need %s", fn, a, b);
  }
  int32_t *rows;
  CT_TRY(index_rows(fn, x, indices, v, &K, &rows));
  ct_status s = last_wins ? keep_last(x->ctx, rows, K) : CT_OK;
  if (s == CT_OK) s = rows_tensor(x->ctx, rows, K, idx);
  free(rows);
  if (s == CT_OK) s = ct_reshape(updates, 2, (int64_t[]){K, v->inner}, u2);
  if (s != CT_OK) {
    ct_tensor_free(*idx);
    *idx = NULL;
  }
  return s;
}

ct_status ct_scatter_add(const ct_tensor *x, const ct_tensor *indices, const ct_tensor *updates, ct_tensor **out) {
  OUT_CHECK("ct_scatter_add");
  row_view v;
  ct_tensor *idx, *u2, *placed = NULL, *p = NULL;
  CT_TRY(scatter_prep("ct_scatter_add", x, indices, updates, false, &v, &idx, &u2));
  ct_status s = add_rows(u2, v, idx, &placed);
  if (s == CT_OK) s = ct_reshape(placed, x->rank, x->shape, &p);
  if (s == CT_OK) s = ct_add(x, p, out);
  ct_tensor *all[] = {idx, u2, placed, p};
  ct_tensor_free_n(all, 4);
  return s;
}

ct_status ct_scatter(const ct_tensor *x, const ct_tensor *indices, const ct_tensor *updates, ct_tensor **out) {
  OUT_CHECK("ct_scatter");
  row_view v;
  ct_tensor *idx, *u2, *one = NULL, *written = NULL, *placed = NULL, *x2 = NULL, *o2 = NULL;
  CT_TRY(scatter_prep("ct_scatter", x, indices, updates, true, &v, &idx, &u2));
  /* written: 1 on the rows an update replaces (a constant: no tape records it) */
  ct_status s = ct_ones(x->ctx, CT_INT32, 2, (int64_t[]){ct_tensor_size(idx), 1}, &one);
  if (s == CT_OK) s = add_rows(one, (row_view){v.lead, v.n_rows, 1}, idx, &written);
  if (s == CT_OK) s = add_rows(u2, v, idx, &placed);
  if (s == CT_OK) s = ct_reshape(x, 2, (int64_t[]){v.n_rows, v.inner}, &x2);
  /* a select, not x * (1 - written): an infinite or NaN element that is replaced leaves no trace */
  if (s == CT_OK) s = ct_where(written, placed, x2, &o2);
  if (s == CT_OK) s = ct_reshape(o2, x->rank, x->shape, out);
  ct_tensor *all[] = {idx, one, written, u2, placed, x2, o2};
  ct_tensor_free_n(all, 7);
  return s;
}

ct_status ct_boolean_mask(const ct_tensor *x, const ct_tensor *mask, ct_tensor **out) {
  OUT_CHECK("ct_boolean_mask");
  CT_TRY(ct__check(x, "ct_boolean_mask"));
  CT_TRY(ct__check(mask, "ct_boolean_mask"));
  if (mask->ctx != x->ctx) return ct__error(x->ctx, CT_ERR_CONTEXT, "ct_boolean_mask: the mask belongs to another context");
  char a[160], b[160];
  bool fits = mask->rank >= 1 && mask->rank <= x->rank;
  for (int d = 0; fits && d < mask->rank; ++d) fits = mask->shape[d] == x->shape[d];
  if (!fits) {
    ct__shape_str(mask->rank, mask->shape, a, sizeof a);
    ct__shape_str(x->rank, x->shape, b, sizeof b);
    return ct__error(x->ctx, CT_ERR_SHAPE,
                     "ct_boolean_mask: a mask of shape %s does not match the leading axes of shape %s (rank >= 1)", a, b);
  }
  row_view v = view_of(x, mask->rank);
  if (v.n_rows > INT32_MAX)
    return ct__error(x->ctx, CT_ERR_UNSUPPORTED, "ct_boolean_mask: a mask of %lld elements; int32 row numbers reach 2^31-1",
                     (long long)v.n_rows);
  int64_t n = mask->size;
  double *m = malloc(sizeof(double) * (size_t)(n ? n : 1));
  int32_t *rows = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  if (!m || !rows) {
    free(m);
    free(rows);
    return ct__error(x->ctx, CT_ERR_OUT_OF_MEMORY, "ct_boolean_mask: no host memory for a mask of %lld elements",
                     (long long)n);
  }
  ct_status s = ct_tensor_read_f64(mask, m, n);
  int64_t K = 0;
  for (int64_t i = 0; i < n && s == CT_OK; ++i)
    if (m[i] != 0) rows[K++] = (int32_t)i;
  free(m);
  int64_t shape[CT_MAX_RANK];
  shape[0] = K;
  for (int d = mask->rank; d < x->rank; ++d) shape[1 + d - mask->rank] = x->shape[d];
  ct_tensor *idx = NULL;
  if (s == CT_OK) s = rows_tensor(x->ctx, rows, K, &idx);
  free(rows);
  if (s == CT_OK) s = take_rows(x, v, idx, 1 + x->rank - mask->rank, shape, out);
  ct_tensor_free(idx);
  return s;
}
