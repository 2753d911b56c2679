/* blas.c — the bridge to CLBlast: matrix products on the context's queue. The kernel parameters
 * CLBlast uses for them come from the tuning store (tune.c), applied when a context is created. */
#include "ct_host.h"
#include <clblast_c.h>
#include <stdlib.h>

void ctb_blas_init(ct_context *ctx) { ctb_tune_context_init(ctx); }

void ctb_blas_free(ct_context *ctx) {
  free(ctx->blas_state);
  ctx->blas_state = NULL;
}

/* Row-major C = op(A) op(B) is issued as the column-major C^T = op(B)^T op(A)^T: the same memory,
 * but CLBlast's indirect path then needs no transposed copy of C (it transposes a row-major C
 * before and after its kernel) and its direct path stores C contiguously. A plain GEMM gets its
 * temporary buffer (padded or transposed operands) from the context's pool instead of a fresh
 * allocation per call; the in-order queue makes reuse after this call safe. */
int ctb_gemm_cl(ct_context *ctx, ct_dtype dt, bool ta, bool tb, size_t m, size_t n, size_t k, double alpha,
                cl_mem a, size_t lda, size_t stride_a, cl_mem b, size_t ldb, size_t stride_b, double beta, cl_mem c,
                size_t ldc, size_t stride_c, size_t batch) {
  const CLBlastLayout L = CLBlastLayoutColMajor;
  CLBlastTranspose at = ta ? CLBlastTransposeYes : CLBlastTransposeNo;
  CLBlastTranspose bt = tb ? CLBlastTransposeYes : CLBlastTransposeNo;
  cl_command_queue q = ctx->queue;
  if (batch != 1) {
    if (dt == CT_FLOAT32)
      return CLBlastSgemmStridedBatched(L, bt, at, n, m, k, (float)alpha, b, 0, ldb, stride_b, a, 0, lda, stride_a,
                                        (float)beta, c, 0, ldc, stride_c, batch, &q, NULL);
    return CLBlastDgemmStridedBatched(L, bt, at, n, m, k, alpha, b, 0, ldb, stride_b, a, 0, lda, stride_a, beta, c, 0,
                                      ldc, stride_c, batch, &q, NULL);
  }
  size_t temp = 0;
  CLBlastStatusCode st = dt == CT_FLOAT32
                             ? CLBlastSGemmTempBufferSize(L, bt, at, n, m, k, 0, ldb, 0, lda, 0, ldc, &q, &temp)
                             : CLBlastDGemmTempBufferSize(L, bt, at, n, m, k, 0, ldb, 0, lda, 0, ldc, &q, &temp);
  ct_buffer *tb_buf = NULL;
  if (st == CLBlastSuccess && temp > 0 && ctb_alloc(ctx, temp, &tb_buf) != CT_OK) tb_buf = NULL;
  if (tb_buf) {
    st = dt == CT_FLOAT32 ? CLBlastSgemmWithTempBuffer(L, bt, at, n, m, k, (float)alpha, b, 0, ldb, a, 0, lda,
                                                       (float)beta, c, 0, ldc, &q, NULL, tb_buf->mem)
                          : CLBlastDgemmWithTempBuffer(L, bt, at, n, m, k, alpha, b, 0, ldb, a, 0, lda, beta, c, 0, ldc,
                                                       &q, NULL, tb_buf->mem);
    ctb_release(tb_buf);
    return st;
  }
  if (dt == CT_FLOAT32)
    return CLBlastSgemm(L, bt, at, n, m, k, (float)alpha, b, 0, ldb, a, 0, lda, (float)beta, c, 0, ldc, &q, NULL);
  return CLBlastDgemm(L, bt, at, n, m, k, alpha, b, 0, ldb, a, 0, lda, beta, c, 0, ldc, &q, NULL);
}

ct_status ctb_gemm(ct_context *ctx, ct_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                   const ct_buffer *a, int64_t lda, int64_t stride_a, const ct_buffer *b, int64_t ldb, int64_t stride_b,
                   double beta, ct_buffer *c, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0) return CT_OK;
  if (k == 0) return ctb_fill(ctx, dt, m * n * batch, 0.0, c);
  if (!ctb_tune_active(ctx, dt)) ctb_tune_hint_once(ctx, dt);
  int st = ctb_gemm_cl(ctx, dt, ta, tb, (size_t)m, (size_t)n, (size_t)k, alpha, a->mem, (size_t)lda, (size_t)stride_a,
                       b->mem, (size_t)ldb, (size_t)stride_b, beta, c->mem, (size_t)ldc, (size_t)stride_c, (size_t)batch);
  if (st != CLBlastSuccess)
    return ct__error(ctx, st == CLBlastOpenCLOutOfResources || st == CLBlastInsufficientMemoryTemp ? CT_ERR_OUT_OF_MEMORY
                                                                                              : CT_ERR_OPENCL,
                     "CLBlast %s gemm (%lld x %lld x %lld, batch %lld) failed with status %d",
                     dt == CT_FLOAT32 ? "S" : "D", (long long)m, (long long)n, (long long)k, (long long)batch, st);
  ctx->stats.kernels_launched++;
  return CT_OK;
}
