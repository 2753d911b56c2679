/* launch_sort.c — the launch of the argsort kernels (kernels/sort.cl): one work-group per row,
 * the row in local memory where it fits, else in a global scratch buffer; through ctb_enqueue
 * (enqueue.c). Nothing here waits. */
#include "ct_host.h"

/* work-items per row: half the padded row (one compare-exchange each), at least 64, at most 256,
 * then what the device allows */
#define SORT_MIN_GROUP 64
#define SORT_MAX_GROUP 256

ct_status ctb_argsort(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t n, int64_t inner, bool descending,
                      const ct_buffer *x, ct_buffer *y) {
  if (outer <= 0 || n <= 0 || inner <= 0) return CT_OK;
  if (n > INT32_MAX / 2)
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "argsort over an axis of %lld elements: the indices are int32",
                     (long long)n);
  int64_t P = 1;
  while (P < n) P *= 2;
  const int64_t rows = outer * inner;
  if (rows > INT64_MAX / 4 / P)
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "argsort: %lld rows of %lld slots", (long long)rows, (long long)P);
  bool w = ctb_wide(ctx, rows * P > outer * n * inner ? rows * P : outer * n * inner);
  size_t local = ctb_pow2_at_least(P / 2, SORT_MAX_GROUP);
  if (local < SORT_MIN_GROUP) local = SORT_MIN_GROUP;
  ctb_local_size(ctx, 1, &local);
  ctb_iarg an, ai, ap;
  cl_int desc = descending ? 1 : 0;
  size_t global = (size_t)rows * local;
  cl_kernel k;
  /* the row's keys and indices in local memory where they take at most half of it */
  const size_t esz = ct_dtype_size(dt), lbytes = (size_t)P * (esz + sizeof(cl_int));
  if (lbytes <= ctx->info.local_mem_bytes / 2) {
    ctb_arg args[] = {ctb_idx_arg(w, &an, n), ctb_idx_arg(w, &ai, inner), ctb_idx_arg(w, &ap, P), CTB_ARG(desc),
                      CTB_MEM(x), {(size_t)P * esz, NULL}, {(size_t)P * sizeof(cl_int), NULL}, CTB_MEM(y)};
    CT_TRY(ctb_kernel_opts(ctx, "sort", dt, CTB_IDX_DEFS(w), "argsort_rows_local", &k));
    return CTB_ENQUEUE(ctx, k, "argsort_rows_local", args, 1, &global, &local);
  }
  ct_buffer *scratch = NULL;
  CT_TRY(ctb_alloc(ctx, (size_t)(rows * P) * sizeof(cl_int), &scratch));
  ctb_arg args[] = {ctb_idx_arg(w, &an, n), ctb_idx_arg(w, &ai, inner), ctb_idx_arg(w, &ap, P), CTB_ARG(desc),
                    CTB_MEM(x), CTB_MEM(scratch), CTB_MEM(y)};
  ct_status s = ctb_kernel_opts(ctx, "sort", dt, CTB_IDX_DEFS(w), "argsort_rows", &k);
  if (s == CT_OK) s = CTB_ENQUEUE(ctx, k, "argsort_rows", args, 1, &global, &local);
  ctb_release(scratch); /* in-order queue: reuse waits for the kernel above */
  return s;
}
