/* enqueue.c — the one way a kernel is launched: set its arguments, enqueue it on the context's
 * in-order queue, map "out of resources" to CT_ERR_OUT_OF_MEMORY, count the launch; and the one
 * local-size chooser. Every launch of host/ (launch.c, launch_nn.c, blas.c) goes through
 * ctb_enqueue; nothing here waits. */
#include "ct_host.h"
#include <stdio.h>

ct_status ctb_enqueue(ct_context *ctx, cl_kernel k, const char *kname, const ctb_arg *args, int nargs, cl_uint dims,
                      const size_t *global, const size_t *local) {
  CT_TRY(ctb_lazy_status(ctx)); /* an argument's pending values could not be computed */
  for (int i = 0; i < nargs; ++i) {
    cl_int err = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].ptr);
    if (err != CL_SUCCESS)
      return ct__error(ctx, CT_ERR_OPENCL, "setting argument %d of kernel %s: %s", i, kname, ctb_cl_error_name(err));
  }
  cl_int err = clEnqueueNDRangeKernel(ctx->queue, k, dims, NULL, global, local, 0, NULL, NULL);
  if (err != CL_SUCCESS) {
    char g[64], l[64];
    int gn = 0, ln = 0;
    for (cl_uint d = 0; d < dims; ++d) {
      gn += snprintf(g + gn, sizeof g - (size_t)gn, "%s%zu", d ? " x " : "", global[d]);
      ln += snprintf(l + ln, sizeof l - (size_t)ln, "%s%zu", d ? " x " : "", local ? local[d] : (size_t)0);
    }
    return ct__error(ctx, err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ? CT_ERR_OUT_OF_MEMORY
                                                                                                  : CT_ERR_OPENCL,
                     "launching kernel %s (global %s, local %s): %s", kname, g, l, ctb_cl_error_name(err));
  }
  ctx->stats.kernels_launched++;
  if (local) {
    size_t items = 1;
    for (cl_uint d = 0; d < dims; ++d) items *= local[d];
    if (items > ctx->largest_group) ctx->largest_group = items;
  }
  return CT_OK;
}

ct_status ctb_run(ct_context *ctx, const char *family, ct_dtype dt, const char *defines, const char *kname,
                  const ctb_arg *args, int nargs, size_t global, size_t local) {
  cl_kernel k;
  CT_TRY(ctb_kernel_opts(ctx, family, dt, defines, kname, &k));
  return ctb_enqueue(ctx, k, kname, args, nargs, 1, &global, local ? &local : NULL);
}

size_t ctb_round_up(const ct_context *ctx, int64_t n) {
  const size_t ls = ctx->group;
  if (n <= 0) n = 1;
  return ((size_t)n + ls - 1) / ls * ls;
}

void ctb_local_size(const ct_context *ctx, int dims, size_t *local) {
  for (int d = 0; d < dims; ++d)
    while (local[d] > 1 && local[d] > ctx->max_items[d]) local[d] /= 2;
  for (;;) {
    size_t total = 1;
    for (int d = 0; d < dims; ++d) total *= local[d];
    if (total <= ctx->info.max_work_group_size) return;
    int d = dims - 1;
    while (d > 0 && local[d] == 1) --d;
    if (local[d] == 1) return;
    local[d] /= 2;
  }
}

size_t ctb_pow2_at_least(int64_t n, size_t max) {
  size_t l = 1;
  while (l < max && (int64_t)l < n) l *= 2;
  return l;
}
