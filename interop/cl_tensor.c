/* cl_tensor.c — tensors and variables over the caller's OpenCL buffers (cltape_cl.h's
 * ct_tensor_cl_mem, ct_tensor_from_cl_mem[_offset], ct_variable_from_cl_mem). host/ checks and
 * wraps the cl_mem (a sub-buffer for an offset); this file makes the tensor. */
#include "ct_internal.h"
#include "cltape_cl.h"

ct_status ct_tensor_cl_mem(const ct_tensor *t, cl_mem *mem) {
  CT_TRY(ct__check(t, "ct_tensor_cl_mem"));
  if (!mem) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_cl_mem: mem is NULL");
  *mem = (cl_mem)ctb_handle(t->buf);
  return CT_OK;
}

/* A tensor over the bytes of mem from offset; `writable`: a variable's storage. */
static ct_status wrap(ct_context *ctx, cl_mem mem, size_t offset, ct_dtype dtype, int rank, const int64_t *shape,
                      bool writable, const char *what, ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", what);
  *out = NULL;
  if (!ctx || !mem) return ct__error(ctx, CT_ERR_NULL, "%s: ctx and mem are required", what);
  CT_TRY(ct__check_context(ctx, what));
  CT_TRY(ct__check_dtype(ctx, dtype));
  int64_t n;
  CT_TRY(ct__check_shape(ctx, rank, shape, &n));
  size_t es = ct_dtype_size(dtype);
  if (offset % es)
    return ct__error(ctx, CT_ERR_INVALID, "%s: byte offset %zu is not a multiple of the %s element size (%zu)", what,
                     offset, ct_dtype_name(dtype), es);
  ct_buffer *b = NULL;
  ct_status s = ctb_wrap_handle(ctx, mem, offset, (size_t)n * es, writable, &b);
  if (s != CT_OK) return ct__error(ctx, s, "%s: %s", what, ct__errmsg_copy());
  return ct__tensor_struct(ctx, dtype, rank, shape, b, out);
}

ct_status ct_tensor_from_cl_mem(ct_context *ctx, cl_mem mem, ct_dtype dtype, int rank, const int64_t *shape,
                                ct_tensor **out) {
  return wrap(ctx, mem, 0, dtype, rank, shape, false, "ct_tensor_from_cl_mem", out);
}

ct_status ct_tensor_from_cl_mem_offset(ct_context *ctx, cl_mem mem, size_t offset, ct_dtype dtype, int rank,
                                       const int64_t *shape, ct_tensor **out) {
  return wrap(ctx, mem, offset, dtype, rank, shape, false, "ct_tensor_from_cl_mem_offset", out);
}

ct_status ct_variable_from_cl_mem(ct_context *ctx, cl_mem mem, size_t offset, ct_dtype dtype, int rank,
                                  const int64_t *shape, const char *name, bool trainable, ct_tensor **out) {
  CT_TRY(wrap(ctx, mem, offset, dtype, rank, shape, true, "ct_variable_from_cl_mem", out));
  ct_status s = ct__variable_init(*out, name, trainable);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
    return s;
  }
  (*out)->in_place = true;
  return CT_OK;
}
