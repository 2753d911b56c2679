/* cl_tensor.c — tensors over the caller's OpenCL buffers (lib/cltape_cl.h's ct_tensor_cl_mem
 * and ct_tensor_from_cl_mem). host/ checks and wraps the cl_mem; this file makes the tensor. */
#include "ct_internal.h"
#include "cltape_cl.h"

ct_status ct_tensor_cl_mem(const ct_tensor *t, cl_mem *mem) {
  CT_TRY(ct__check(t, "ct_tensor_cl_mem"));
  if (!mem) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_cl_mem: mem is NULL");
  *mem = (cl_mem)ctb_handle(t->buf);
  return CT_OK;
}

ct_status ct_tensor_from_cl_mem(ct_context *ctx, cl_mem mem, ct_dtype dtype, int rank, const int64_t *shape,
                                ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_tensor_from_cl_mem: out is NULL");
  *out = NULL;
  if (!ctx || !mem) return ct__error(ctx, CT_ERR_NULL, "ct_tensor_from_cl_mem: ctx and mem are required");
  CT_TRY(ct__check_context(ctx, "ct_tensor_from_cl_mem"));
  CT_TRY(ct__check_dtype(ctx, dtype));
  int64_t n;
  CT_TRY(ct__check_shape(ctx, rank, shape, &n));
  ct_buffer *b = NULL;
  CT_TRY(ctb_wrap_handle(ctx, mem, (size_t)n * ct_dtype_size(dtype), &b));
  return ct__tensor_struct(ctx, dtype, rank, shape, b, out);
}
