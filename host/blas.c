/* blas.c — matrix products on the context's queue, through one of two engines: CLBlast (its
 * kernel parameters come from the tuning store, applied when a context is created) or the
 * register-tiled kernels of kernels/matmul.cl (for devices that run work-items as loops: CPUs).
 * tune.c decides which engine and which tile a device uses (ctb_tune_plan). */
#include "ct_host.h"
#include <clblast_c.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

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
static int gemm_clblast(ct_context *ctx, ct_dtype dt, bool ta, bool tb, size_t m, size_t n, size_t k, double alpha,
                        cl_mem a, size_t lda, size_t stride_a, cl_mem b, size_t ldb, size_t stride_b, double beta,
                        cl_mem c, size_t ldc, size_t stride_c, size_t batch) {
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

/* ---- the tiled engine ---------------------------------------------------------------------- */
/* Mirrors ct_gemm_geom in kernels/matmul.cl; the kernels take it as an int16, or a long16 in the
 * long index build, its fields in order (a struct argument's layout is up to each implementation,
 * and some reject one). */
enum { G_M, G_N, G_K, G_AI, G_AK, G_BK, G_BJ, G_LDC, G_AOFF, G_BOFF, G_COFF, G_ABATCH, G_BBATCH, G_CBATCH, G_MP, G_NP };
typedef struct {
  bool wide; /* the long build: v.l, else v.i */
  union {
    cl_int16 i;
    cl_long16 l;
  } v;
} gemm_geom;
static ctb_arg geom_arg(const gemm_geom *g) {
  return g->wide ? (ctb_arg){sizeof(cl_long16), &g->v.l} : (ctb_arg){sizeof(cl_int16), &g->v.i};
}

/* One packing kernel (gemm_pack_a or gemm_pack_b): work-items over runs of CTB_PACK_RUN (the
 * kernels' CT_PK) steps of k, panels and the batch; `panels_first`: panels along dimension 0, else
 * the runs, where the operand's panels run along its stored rows (the kernels read the order from
 * the same strides, kernels/matmul.cl). */
#define CTB_PACK_RUN 16
static ct_status launch_pack(ct_context *ctx, cl_kernel k, const char *kname, const gemm_geom *g, size_t kdim,
                             cl_mem src, cl_mem dst, size_t panels, size_t batch, bool panels_first) {
  const ctb_arg args[] = {geom_arg(g), CTB_ARG(src), CTB_ARG(dst)};
  size_t local[3] = {64, 1, 1};
  ctb_local_size(ctx, 3, local);
  const size_t runs = (kdim + CTB_PACK_RUN - 1) / CTB_PACK_RUN, d0 = panels_first ? panels : runs;
  const size_t global[3] = {(d0 + local[0] - 1) / local[0] * local[0], panels_first ? runs : panels, batch};
  return CTB_ENQUEUE(ctx, k, kname, args, 3, global, local);
}

bool ctb_gemm_tile_fits(const ctb_gemm_plan *p, size_t m, size_t n, size_t k, size_t lda, size_t stride_a, size_t ldb,
                        size_t stride_b, size_t ldc, size_t stride_c, size_t batch) {
  (void)lda, (void)ldb, (void)ldc, (void)stride_a, (void)stride_b, (void)stride_c;
  /* the long build indexes any product the library can hold; the panels must be addressable */
  size_t nr = (size_t)p->nv * p->vw, mp = (m + p->mr - 1) / p->mr, np = (n + nr - 1) / nr;
  size_t kb = (k ? k : 1) * batch;
  if (kb / batch != (k ? k : 1) || mp > SIZE_MAX / 2 / np / (size_t)p->bn) return false;
  return np * nr <= SIZE_MAX / 8 / kb && mp * p->mr <= SIZE_MAX / 8 / kb;
}

/* The largest extent, stride, tile number or position within a row or column that the tiled
 * kernels compute in ct_idx (offsets of batches, panels and rows are long in both builds). */
static int64_t tile_extent(const ctb_gemm_plan *p, size_t m, size_t n, size_t k, size_t lda, size_t stride_a,
                           size_t ldb, size_t stride_b, size_t ldc, size_t stride_c, size_t batch) {
  const size_t nr = (size_t)p->nv * p->vw, mp = (m + p->mr - 1) / p->mr, np = (n + nr - 1) / nr;
  const size_t v[] = {m + p->mr + nr, n + p->mr + nr, k * (size_t)p->mr, lda, ldb, ldc, stride_a, stride_b, stride_c,
                      batch, mp * np * (size_t)p->bn + (size_t)p->wg};
  size_t largest = 0;
  for (size_t i = 0; i < sizeof v / sizeof *v; ++i)
    if (v[i] > largest) largest = v[i];
  return largest > (size_t)INT64_MAX ? INT64_MAX : (int64_t)largest;
}

/* CLBlast's kernels index in int (offsets within a matrix and of a batch's matrices): a product
 * whose operands pass 2^31 - 1 elements runs on the tiled kernels' long build instead. */
static bool clblast_indexes(bool ta, bool tb, size_t m, size_t n, size_t k, size_t lda, size_t stride_a, size_t ldb,
                            size_t stride_b, size_t ldc, size_t stride_c, size_t batch) {
  const size_t ar = ta ? k : m, br = tb ? n : k; /* rows of A and B as stored */
  const double more = batch ? (double)(batch - 1) : 0; /* matrices after the first */
  const double ext[] = {(double)ar * lda + more * stride_a, (double)br * ldb + more * stride_b,
                        (double)m * ldc + more * stride_c};
  for (int i = 0; i < 3; ++i)
    if (ext[i] > (double)INT32_MAX) return false;
  return true;
}

void ctb_gemm_defines(const ctb_gemm_plan *p, bool pack_a, bool pack_b, char *buf, size_t cap) {
  snprintf(buf, cap, "-DCT_MR=%d -DCT_NV=%d -DCT_VW=%d -DCT_PACK_A=%d -DCT_PACK_B=%d -DCT_BN=%d -DCT_PK=%d", p->mr, p->nv,
           p->vw, pack_a, pack_b, p->bn, CTB_PACK_RUN);
}

/* Whether packing A pays, where the plan packs it: a tile reads A's MR rows (A transposed: MR
 * adjacent elements) at each step of k, one row or column of A apart, and the band of the next
 * CT_BN column panels reads them all again. Packed, they are one forward stream; in place, rows a
 * multiple of 1 KiB apart fall into a few sets of the caches and evict each other (1024 x 1024
 * products: packing A took 9% (NN) and 30% (TN) off their CPU time on AVX-512), while other
 * strides stream well enough that the extra pass costs more than it saves (the MLP step of
 * bench_cltape, 784-wide rows: 10% less CPU time without it). A read by one band only (np <= bn)
 * is read once either way. */
static bool a_pays(const ctb_gemm_plan *p, size_t np, size_t lda, size_t esz) {
  return np > (size_t)p->bn && (lda * esz) % 1024 == 0;
}

/* B into column panels, A into row panels when the plan says so, then the tiled product. Products
 * whose B (not transposed) has at most p->small_b elements run the tiled product alone, on the
 * operands in place:
 * for them three launches cost more than reading the operands through their strides. The panels
 * come from the pool; the in-order queue makes their reuse after this call safe. */
static ct_status gemm_tile_epi(ct_context *ctx, ct_dtype dt, const ctb_gemm_plan *p, bool ta, bool tb, size_t m,
                               size_t n, size_t k, double alpha, cl_mem a, size_t lda, size_t stride_a, cl_mem b,
                               size_t ldb, size_t stride_b, double beta, cl_mem c, size_t ldc, size_t stride_c,
                               size_t batch, int epi, cl_mem bias) {
  const size_t esz = dt == CT_FLOAT64 ? 8 : 4, nr = (size_t)p->nv * p->vw;
  const size_t mp = (m + p->mr - 1) / p->mr, np = (n + nr - 1) / nr;
  gemm_geom g;
  memset(&g, 0, sizeof g);
  g.wide = ctb_wide(ctx, tile_extent(p, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c, batch));
  const size_t f[16] = {[G_M] = m,         [G_N] = n,         [G_K] = k,          [G_AI] = ta ? 1 : lda,
                        [G_AK] = ta ? lda : 1, [G_BK] = tb ? 1 : ldb, [G_BJ] = tb ? ldb : 1, [G_LDC] = ldc,
                        [G_ABATCH] = stride_a, [G_BBATCH] = stride_b, [G_CBATCH] = stride_c, [G_MP] = mp,
                        [G_NP] = np};
  for (int i = 0; i < 16; ++i) {
    if (g.wide) g.v.l.s[i] = (cl_long)f[i];
    else g.v.i.s[i] = (cl_int)f[i];
  }
  /* a transposed B is always packed: read in place, every row tile would gather it again */
  const bool pack_b = tb || k * n > (size_t)p->small_b, pack_a = pack_b && p->pack_a && a_pays(p, np, lda, esz);
  char defs[160];
  ctb_gemm_defines(p, pack_a, pack_b, defs, sizeof defs);
  if (g.wide) strcat(defs, " -DCT_IDX64=1");
  if (epi) snprintf(defs + strlen(defs), sizeof defs - strlen(defs), " -DCT_EPI=%d", epi);
  cl_kernel kb = NULL, ka = NULL, kt;
  if (pack_b) CT_TRY(ctb_kernel_opts(ctx, "matmul", dt, defs, "gemm_pack_b", &kb));
  if (pack_a) CT_TRY(ctb_kernel_opts(ctx, "matmul", dt, defs, "gemm_pack_a", &ka));
  CT_TRY(ctb_kernel_opts(ctx, "matmul", dt, defs, "gemm_tile", &kt));
  ct_buffer *bp = NULL, *ap = NULL;
  ct_status s = CT_OK;
  if (pack_b) s = ctb_alloc(ctx, np * nr * k * batch * esz, &bp);
  if (s == CT_OK && pack_a) s = ctb_alloc(ctx, mp * p->mr * k * batch * esz, &ap);
  if (s == CT_OK && pack_b) s = launch_pack(ctx, kb, "gemm_pack_b", &g, k, b, bp->mem, np, batch, f[G_BJ] == 1);
  if (s == CT_OK && pack_a) s = launch_pack(ctx, ka, "gemm_pack_a", &g, k, a, ap->mem, mp, batch, f[G_AI] == 1);
  if (s == CT_OK) {
    float af = (float)alpha, bf = (float)beta;
    const ctb_arg args[] = {geom_arg(&g),
                            {esz, dt == CT_FLOAT64 ? (const void *)&alpha : &af},
                            {esz, dt == CT_FLOAT64 ? (const void *)&beta : &bf},
                            {sizeof(cl_mem), pack_a ? &ap->mem : &a},
                            {sizeof(cl_mem), pack_b ? &bp->mem : &b},
                            CTB_ARG(c),
                            CTB_ARG(bias)};
    size_t local[3] = {(size_t)p->wg, 1, 1};
    ctb_local_size(ctx, 3, local);
    const size_t wg = local[0], global[3] = {(mp * np + wg - 1) / wg * wg, batch, 1};
    s = ctb_enqueue(ctx, kt, "gemm_tile", args, CTB_NARGS(args) - (epi ? 0 : 1), 3, global, local); /* bias: CT_EPI */
  }
  if (ap) ctb_release(ap);
  if (bp) ctb_release(bp);
  return s;
}

static ct_status gemm_tile(ct_context *ctx, ct_dtype dt, const ctb_gemm_plan *p, bool ta, bool tb, size_t m, size_t n,
                           size_t k, double alpha, cl_mem a, size_t lda, size_t stride_a, cl_mem b, size_t ldb,
                           size_t stride_b, double beta, cl_mem c, size_t ldc, size_t stride_c, size_t batch) {
  return gemm_tile_epi(ctx, dt, p, ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                       batch, 0, NULL);
}

ct_status ctb_gemm_cl(ct_context *ctx, ct_dtype dt, const ctb_gemm_plan *plan, bool ta, bool tb, size_t m, size_t n,
                      size_t k, double alpha, cl_mem a, size_t lda, size_t stride_a, cl_mem b, size_t ldb,
                      size_t stride_b, double beta, cl_mem c, size_t ldc, size_t stride_c, size_t batch) {
  const bool tiles = plan->engine == CTB_GEMM_TILE ||
                     !clblast_indexes(ta, tb, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c, batch);
  if (tiles && ctb_gemm_tile_fits(plan, m, n, k, lda, stride_a, ldb, stride_b, ldc, stride_c, batch))
    return gemm_tile(ctx, dt, plan, ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                     batch);
  int st = gemm_clblast(ctx, dt, ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                        batch);
  if (st != CLBlastSuccess)
    return ct__error(ctx, st == CLBlastOpenCLOutOfResources || st == CLBlastInsufficientMemoryTemp ? CT_ERR_OUT_OF_MEMORY
                                                                                              : CT_ERR_OPENCL,
                     "CLBlast %s gemm (%zu x %zu x %zu, batch %zu) failed with status %d", dt == CT_FLOAT32 ? "S" : "D",
                     m, n, k, batch, st);
  ctx->stats.kernels_launched++;
  return CT_OK;
}

ct_status ctb_gemm(ct_context *ctx, ct_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                   const ct_buffer *a, int64_t lda, int64_t stride_a, const ct_buffer *b, int64_t ldb, int64_t stride_b,
                   double beta, ct_buffer *c, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0) return CT_OK;
  if (k == 0) return ctb_fill(ctx, dt, m * n * batch, 0.0, c);
  if (!ctb_tune_active(ctx, dt)) ctb_tune_hint_once(ctx, dt);
  ctb_gemm_plan plan;
  ctb_tune_plan(ctx, dt, &plan);
  cl_mem am = *ctb_mem_ptr(a), bm = *ctb_mem_ptr(b), cm = *ctb_mem_ptr(c);
  CT_TRY(ctb_lazy_status(ctx));
  return ctb_gemm_cl(ctx, dt, &plan, ta, tb, (size_t)m, (size_t)n, (size_t)k, alpha, am, (size_t)lda,
                     (size_t)stride_a, bm, (size_t)ldb, (size_t)stride_b, beta, cm, (size_t)ldc,
                     (size_t)stride_c, (size_t)batch);
}

/* C = act(A B + bias) for row-major A (m x k), B (k x n), bias (n): on the tiled engine one launch
 * of gemm_tile stores the sum (and ReLU) instead of the bare product (its packing launches as for
 * the plain product: the same tile, so the same sums); elsewhere the product, then the bias and
 * ReLU kernels over C in place. */
ct_status ctb_gemm_bias_act(ct_context *ctx, ct_dtype dt, int64_t m, int64_t n, int64_t k, const ct_buffer *a,
                            const ct_buffer *b, const ct_buffer *bias, bool relu, ct_buffer *c) {
  if (m == 0 || n == 0) return CT_OK;
  if (!ctb_tune_active(ctx, dt)) ctb_tune_hint_once(ctx, dt);
  ctb_gemm_plan plan;
  ctb_tune_plan(ctx, dt, &plan);
  const size_t M = (size_t)m, N = (size_t)n, K = (size_t)k;
  if (k > 0 && plan.engine == CTB_GEMM_TILE && ctb_gemm_tile_fits(&plan, M, N, K, K, M * K, N, K * N, N, M * N, 1)) {
    cl_mem am = *ctb_mem_ptr(a), bm = *ctb_mem_ptr(b), cm = *ctb_mem_ptr(c), vm = *ctb_mem_ptr(bias);
    CT_TRY(ctb_lazy_status(ctx));
    return gemm_tile_epi(ctx, dt, &plan, false, false, M, N, K, 1.0, am, K, M * K, bm, N, K * N, 0.0, cm, N, M * N, 1,
                         relu ? 2 : 1, vm);
  }
  CT_TRY(ctb_gemm(ctx, dt, false, false, m, n, k, 1.0, a, k, m * k, b, n, k * n, 0.0, c, n, m * n, 1));
  CT_TRY(ctb_bias_add(ctx, dt, m, n, c, bias, c));
  return relu ? ctb_unary(ctx, "RELU", dt, m * n, c, c) : CT_OK;
}
