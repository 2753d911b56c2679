/* conv_gemm.c — convolutions as matrix products: the patch matrix of the input (im2col,
 * kernels/conv_gemm.cl) times the filter read as a (KH * KW * C) x OC matrix, through ctb_gemm
 * (the tuned engine of blas.c: the tiled kernels or CLBlast). The forward is y = col f, the
 * filter gradient df = col^T dy, the input gradient dcol = dy f^T scattered back by col2im. A
 * 1x1 window of stride 1 without padding needs no patch matrix: col is x itself.
 *
 * Which path runs a convolution (these products or the direct kernels of kernels/nn.cl) is
 * ctb_conv_gemm_wanted's choice: forced by CLTAPE_CONV=direct|gemm, else by the rule of
 * conv_gemm_default. */
#include "ct_host.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The largest patch matrix (bytes) built for one convolution; larger ones run the direct kernels. */
#define CONV_GEMM_SCRATCH ((int64_t)256 << 20)

static bool pointwise(const ctb_window *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 && g->oh == g->h &&
         g->ow == g->w;
}

static int64_t rows_of(const ctb_window *g) { return (int64_t)g->n * g->oh * g->ow; }
static int64_t kcols_of(const ctb_window *g) { return (int64_t)g->kh * g->kw * g->c; }

/* Whether the product path can run g: its patch matrix within CONV_GEMM_SCRATCH and the device's
 * largest allocation. */
static bool gemm_fits(const ct_context *ctx, ct_dtype dt, const ctb_window *g) {
  if (pointwise(g)) return true;
  const int64_t bytes = rows_of(g) * kcols_of(g) * (int64_t)ct_dtype_size(dt);
  return bytes <= CONV_GEMM_SCRATCH && (uint64_t)bytes <= ctx->info.max_alloc_bytes;
}

/* The rule for a device and shape nobody forced: products where each output sums enough terms
 * (KH * KW * C) and there are enough output channels to fill a vector register tile; the direct
 * kernels for the shallow first layers (a handful of input channels), where the patch matrix
 * costs more memory traffic than the product saves (measured in docs/performance.md). */
static bool conv_gemm_default(const ct_context *ctx, ctb_conv_kind kind, const ctb_window *g) {
  (void)ctx;
  const int64_t k = kcols_of(g);
  switch (kind) {
  case CTB_CONV_FWD: return k >= 64 && g->oc >= 16;
  case CTB_CONV_BP_INPUT: return g->c >= 16 && g->oc >= 16;
  case CTB_CONV_BP_FILTER: return k >= 64 && g->oc >= 16;
  }
  return false;
}

bool ctb_conv_gemm_wanted(const ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g) {
  if (!gemm_fits(ctx, dt, g)) return false;
  const char *e = getenv("CLTAPE_CONV");
  if (e && strcasecmp(e, "gemm") == 0) return true;
  if (e && strcasecmp(e, "direct") == 0) return false;
  return conv_gemm_default(ctx, kind, g);
}

/* The kernels take the window as an int16: its fields in order, then zeros. */
static cl_int16 window_int16(const ctb_window *g) {
  cl_int16 v;
  memset(&v, 0, sizeof v);
  memcpy(v.s, g, sizeof *g);
  return v;
}

/* One kernel of conv_gemm.cl over (d0, d1) work-items. */
static ct_status run_gather(ct_context *ctx, ct_dtype dt, bool wide, const char *kname, const ctb_arg *args, int n,
                            int64_t d0, int64_t d1) {
  if (d0 <= 0 || d1 <= 0) return CT_OK;
  size_t local[2] = {ctb_pow2_at_least(d0, 64), 1};
  local[1] = 256 / local[0]; /* groups of 256: a CPU driver pays for every group it schedules */
  ctb_local_size(ctx, 2, local);
  const size_t global[2] = {((size_t)d0 + local[0] - 1) / local[0] * local[0],
                            ((size_t)d1 + local[1] - 1) / local[1] * local[1]};
  cl_kernel k;
  CT_TRY(ctb_kernel_opts(ctx, "conv_gemm", dt, CTB_IDX_DEFS(wide), kname, &k));
  return ctb_enqueue(ctx, k, kname, args, n, 2, global, local);
}

/* The long index build where the input, the output or the patch matrix passes 2^31 - 1. */
static bool gather_wide(const ct_context *ctx, const ctb_window *g) {
  const int64_t x = (int64_t)g->n * g->h * g->w * g->c, col = rows_of(g) * kcols_of(g);
  return ctb_wide(ctx, x > col ? x : col);
}

/* col = im2col(x) into a buffer from the pool (the caller releases it) */
static ct_status im2col(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x, ct_buffer **col) {
  const int64_t rows = rows_of(g);
  CT_TRY(ctb_alloc(ctx, (size_t)(rows * kcols_of(g)) * ct_dtype_size(dt), col));
  const bool wide = gather_wide(ctx, g);
  cl_int16 gw = window_int16(g);
  cl_long n0l = 0, rowsl = rows;
  cl_int n0i = 0, rowsi = (cl_int)(wide ? 0 : rows);
  const ctb_arg args[] = {CTB_ARG(gw), wide ? CTB_ARG(n0l) : CTB_ARG(n0i), wide ? CTB_ARG(rowsl) : CTB_ARG(rowsi),
                          CTB_MEM(x), CTB_MEM(*col)};
  ct_status s = run_gather(ctx, dt, wide, "conv_im2col", args, CTB_NARGS(args), (int64_t)g->kh * g->kw, rows);
  if (s != CT_OK) {
    ctb_release(*col);
    *col = NULL;
  }
  return s;
}

ct_status ctb_conv2d_gemm(ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g, const ct_buffer *a,
                          const ct_buffer *b, ct_buffer *out) {
  const int64_t m = rows_of(g), k = kcols_of(g), oc = g->oc;
  const bool direct = pointwise(g);
  ct_buffer *col = NULL;
  ct_status s = CT_OK;
  switch (kind) {
  case CTB_CONV_FWD: /* y (m x oc) = col (m x k) f (k x oc) */
    if (!direct) CT_TRY(im2col(ctx, dt, g, a, &col));
    s = ctb_gemm(ctx, dt, false, false, m, oc, k, 1.0, direct ? a : col, k, 0, b, oc, 0, 0.0, out, oc, 0, 1);
    break;
  case CTB_CONV_BP_FILTER: /* df (k x oc) = col^T (k x m) dy (m x oc) */
    if (!direct) CT_TRY(im2col(ctx, dt, g, a, &col));
    s = ctb_gemm(ctx, dt, true, false, k, oc, m, 1.0, direct ? a : col, k, 0, b, oc, 0, 0.0, out, oc, 0, 1);
    break;
  case CTB_CONV_BP_INPUT: /* dcol (m x k) = dy (m x oc) f^T (oc x k), then dx = col2im(dcol) */
    if (direct) return ctb_gemm(ctx, dt, false, true, m, k, oc, 1.0, a, oc, 0, b, oc, 0, 0.0, out, k, 0, 1);
    CT_TRY(ctb_alloc(ctx, (size_t)(m * k) * ct_dtype_size(dt), &col));
    s = ctb_gemm(ctx, dt, false, true, m, k, oc, 1.0, a, oc, 0, b, oc, 0, 0.0, col, k, 0, 1);
    if (s == CT_OK) {
      const bool wide = gather_wide(ctx, g);
      const int64_t pixels = (int64_t)g->n * g->h * g->w;
      cl_int16 gw = window_int16(g);
      cl_long n0l = 0, pl = pixels;
      cl_int n0i = 0, pi = (cl_int)(wide ? 0 : pixels);
      const ctb_arg args[] = {CTB_ARG(gw), wide ? CTB_ARG(n0l) : CTB_ARG(n0i), wide ? CTB_ARG(pl) : CTB_ARG(pi),
                              CTB_MEM(col), CTB_MEM(out)};
      s = run_gather(ctx, dt, wide, "conv_col2im", args, CTB_NARGS(args), 1, pixels);
    }
    break;
  }
  if (col) ctb_release(col); /* the in-order queue: reuse waits for the kernels above */
  return s;
}
