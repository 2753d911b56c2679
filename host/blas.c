/* blas.c — the bridge to CLBlast: matrix products on the context's queue. */
#include "ct_host.h"
#include <clblast_c.h>

void ctb_blas_free(ct_context *ctx) { (void)ctx; }

ct_status ctb_gemm(ct_context *ctx, ct_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                   const ct_buffer *a, int64_t lda, int64_t stride_a, const ct_buffer *b, int64_t ldb, int64_t stride_b,
                   double beta, ct_buffer *c, int64_t ldc, int64_t stride_c, int64_t batch) {
  CLBlastTranspose at = ta ? CLBlastTransposeYes : CLBlastTransposeNo;
  CLBlastTranspose bt = tb ? CLBlastTransposeYes : CLBlastTransposeNo;
  CLBlastStatusCode st;
  cl_command_queue q = ctx->queue;
  if (m == 0 || n == 0) return CT_OK;
  if (k == 0) return ctb_fill(ctx, dt, m * n * batch, 0.0, c);
  if (batch == 1) {
    if (dt == CT_FLOAT32)
      st = CLBlastSgemm(CLBlastLayoutRowMajor, at, bt, (size_t)m, (size_t)n, (size_t)k, (float)alpha, a->mem, 0,
                        (size_t)lda, b->mem, 0, (size_t)ldb, (float)beta, c->mem, 0, (size_t)ldc, &q, NULL);
    else
      st = CLBlastDgemm(CLBlastLayoutRowMajor, at, bt, (size_t)m, (size_t)n, (size_t)k, alpha, a->mem, 0, (size_t)lda,
                        b->mem, 0, (size_t)ldb, beta, c->mem, 0, (size_t)ldc, &q, NULL);
  } else {
    if (dt == CT_FLOAT32)
      st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, at, bt, (size_t)m, (size_t)n, (size_t)k, (float)alpha,
                                      a->mem, 0, (size_t)lda, (size_t)stride_a, b->mem, 0, (size_t)ldb,
                                      (size_t)stride_b, (float)beta, c->mem, 0, (size_t)ldc, (size_t)stride_c,
                                      (size_t)batch, &q, NULL);
    else
      st = CLBlastDgemmStridedBatched(CLBlastLayoutRowMajor, at, bt, (size_t)m, (size_t)n, (size_t)k, alpha, a->mem, 0,
                                      (size_t)lda, (size_t)stride_a, b->mem, 0, (size_t)ldb, (size_t)stride_b, beta,
                                      c->mem, 0, (size_t)ldc, (size_t)stride_c, (size_t)batch, &q, NULL);
  }
  if (st != CLBlastSuccess)
    return ct__error(ctx, st == CLBlastOpenCLOutOfResources || st == CLBlastInsufficientMemoryTemp ? CT_ERR_OUT_OF_MEMORY
                                                                                              : CT_ERR_OPENCL,
                     "CLBlast %s gemm (%lld x %lld x %lld, batch %lld) failed with status %d",
                     dt == CT_FLOAT32 ? "S" : "D", (long long)m, (long long)n, (long long)k, (long long)batch, (int)st);
  ctx->stats.kernels_launched++;
  return CT_OK;
}
