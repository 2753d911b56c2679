/* launch_nn.c — kernel launches of the layer library's ops (kernels/nn.cl): convolutions,
 * pooling, bias, dropout, softmax cross-entropy and the optimizer steps, through ctb_enqueue
 * (enqueue.c). Each launch takes the int or the long index build of the program (ctb_wide) from
 * the sizes it touches. Nothing here waits. */
#include "ct_host.h"
#include <stdio.h>
#include <string.h>

/* ---- neural-network kernels (kernels/nn.cl) --------------------------------------------------- */
/* A 2-D range: dimension 0 runs over channels or blocks of 8 channels (local size: their count
 * rounded up to a power of two, at most 64), dimension 1 over `rows`, `l1` of them per group. */
static ct_status run2d(ct_context *ctx, ct_dtype dt, bool w, const char *kname, const ctb_arg *args, int n,
                       int64_t channels, int64_t rows, size_t l1) {
  if (channels <= 0 || rows <= 0) return CT_OK;
  size_t local[2] = {ctb_pow2_at_least(channels, 64), l1 < 1 ? 1 : l1};
  ctb_local_size(ctx, 2, local);
  size_t global[2] = {((size_t)channels + local[0] - 1) / local[0] * local[0],
                      ((size_t)rows + local[1] - 1) / local[1] * local[1]};
  cl_kernel k;
  CT_TRY(ctb_kernel_opts(ctx, "nn", dt, CTB_IDX_DEFS(w), kname, &k));
  return ctb_enqueue(ctx, k, kname, args, n, 2, global, local);
}
#define RUN2D(ctx, dt, w, kname, args, channels, rows, l1) \
  run2d(ctx, dt, w, kname, args, CTB_NARGS(args), channels, rows, l1)
#define RUN1D(ctx, dt, w, kname, args, global) CTB_RUN(ctx, "nn", dt, CTB_IDX_DEFS(w), kname, args, global, ctx->group)

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Whether a window kernel needs the long build: the elements of its input, output and filter
 * (or pooling window), each with a tile of up to 8 columns or channels past the end (the tiles'
 * offsets), and `extra` (a launch's own buffers or counts). */
static bool window_wide(const ct_context *ctx, const ctb_window *g, int64_t extra) {
  int64_t x = (int64_t)g->n * g->h * (g->w + 8) * g->c, y = (int64_t)g->n * g->oh * (g->ow + 8) * g->oc;
  int64_t f = (int64_t)g->kh * g->kw * (g->c + 8) * (g->oc + 8);
  return ctb_wide(ctx, max64(max64(x, y), max64(f, extra)));
}

/* The kernels take a window as an int16: its fields in order, then zeros. */
static cl_int16 window_arg(const ctb_window *g) {
  _Static_assert(sizeof *g <= sizeof(cl_int16), "a window fits an int16");
  cl_int16 v;
  memset(&v, 0, sizeof v);
  memcpy(v.s, g, sizeof *g);
  return v;
}

#define CTB_TILE 4 /* CT_TILE in kernels/nn.cl: outputs per work-item of the scalar kernels */
#define CTB_VT 8   /* CT_VT: vectors per work-item of the *_vec kernels */
#define CTB_BPI_VT(dt) ((dt) == CT_FLOAT64 ? CTB_VT / 2 : CTB_VT) /* CT_BPI_VT: conv2d_bp_input_vec's */
#define CTB_GROUP 16 /* work-items per group wanted along dimension 1 of the *_vec kernels */

/* CT_VW: channels per work-item of the *_vec kernels (one 256-bit vector) */
static int vec_width(ct_dtype dt) { return dt == CT_FLOAT64 ? 4 : 8; }

/* Whether the convolutions run blocks of 16 float32 channels (the *_w16 kernels): on CPU devices
 * whose preferred vector holds 16 floats (512-bit vectors: one accumulator per register; the
 * kernels are in the programs only then), where the channels come in such blocks (measured in
 * docs/performance.md, "cnn_train_step"). */
bool ctb_conv_wide_vectors(const ct_context *ctx, ct_dtype dt, int64_t channels) {
  return dt == CT_FLOAT32 && ctx->info.type == CT_DEVICE_CPU && ctx->reduce_vw == 16 && channels % 16 == 0;
}

static size_t rows_per_group(int64_t blocks) {
  size_t l0 = ctb_pow2_at_least(blocks, 64);
  return l0 >= CTB_GROUP ? 1 : CTB_GROUP / l0;
}

/* x [n, h, w, c] with zeros around it, (need_h, need_w) in all with x at (pt, pl): a buffer from the
 * pool, *xp, and the window *gp that reads it (pt = pl = 0), for the vector kernels that read no
 * padding themselves */
static ct_status padded_input(ct_context *ctx, ct_dtype dt, const ctb_window *g, int64_t need_h, int64_t need_w,
                              const ct_buffer *x, ct_buffer **xp, ctb_window *gp) {
  int64_t bytes;
  if (need_h > INT32_MAX || need_w > INT32_MAX || __builtin_mul_overflow(g->n * need_h, need_w * g->c, &bytes) ||
      __builtin_mul_overflow(bytes, (int64_t)ct_dtype_size(dt), &bytes))
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "a convolution's zero-padded input of %lld x %lld x %lld x %lld is too large",
                     (long long)g->n, (long long)need_h, (long long)need_w, (long long)g->c);
  CT_TRY(ctb_alloc(ctx, (size_t)bytes, xp));
  *gp = *g;
  gp->h = (int32_t)need_h;
  gp->w = (int32_t)need_w;
  gp->pt = gp->pl = 0;
  ct_status s = ctb_pad_nhwc(ctx, dt, g->n, g->h, g->w, g->c, need_h, need_w, g->pt, g->pl, x, *xp);
  if (s != CT_OK) {
    ctb_release(*xp);
    *xp = NULL;
  }
  return s;
}

/* The direct kernels' forward (ctb_conv2d's other way being Winograd's, host/conv_gemm.c). */
static ct_status conv2d_direct(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                               const ct_buffer *f, const ct_buffer *bias, bool relu, ct_buffer *y) {
  int vw = vec_width(dt);
  bool w = window_wide(ctx, g, 0);
  cl_int16 gw = window_arg(g);
  const cl_int epi = bias ? (relu ? 2 : 1) : 0;
  if (ctb_conv_wide_vectors(ctx, dt, g->oc)) vw = 16;
  if (g->oc % vw != 0) {
    ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(x), CTB_MEM(f), CTB_MEM(y), CTB_ARG(epi), CTB_MEM(bias ? bias : y)};
    int64_t rows = (int64_t)g->n * g->oh * ((g->ow + CTB_TILE - 1) / CTB_TILE);
    return RUN2D(ctx, dt, w, "conv2d_fwd", args, g->oc, rows, 1);
  }
  /* tiles of 7 columns where they fit the width exactly and 8 do not (14, 28, ...) */
  int tile = g->ow % 8 != 0 && g->ow % 7 == 0 ? 7 : 8;
  int64_t rows = (int64_t)g->n * g->oh * ((g->ow + tile - 1) / tile);
  const char *k = vw == 16 ? (tile == 7 ? "conv2d_fwd_w16_7" : "conv2d_fwd_w16_8")
                           : (tile == 7 ? "conv2d_fwd_vec7" : "conv2d_fwd_vec8");
  /* the rows and columns every window of every tile reads (past the output's width too) */
  const int64_t tiles = (g->ow + tile - 1) / tile, need_h = (int64_t)(g->oh - 1) * g->sh + g->kh,
                need_w = (tiles * tile - 1) * g->sw + g->kw;
  bool inside = g->pt == 0 && g->pl == 0 && need_h <= g->h && need_w <= g->w;
  if (!inside && g->c < CTB_VT) {
    /* few channels: a tile's pointers would cost more than its loop over them, so x is padded
     * (zeros around it, every window of every tile inside it) */
    ct_buffer *xp = NULL;
    ctb_window gp;
    CT_TRY(padded_input(ctx, dt, g, need_h, need_w, x, &xp, &gp));
    ct_status s = conv2d_direct(ctx, dt, &gp, xp, f, bias, relu, y);
    ctb_release(xp); /* in-order queue: reuse waits for the kernel */
    return s;
  }
  /* otherwise the columns of a tile outside x read g->c zeros */
  ct_buffer *zeros = NULL;
  if (!inside) {
    CT_TRY(ctb_alloc(ctx, (size_t)(g->c > 0 ? g->c : 1) * ct_dtype_size(dt), &zeros));
    ct_status s = ctb_fill(ctx, dt, g->c > 0 ? g->c : 1, 0.0, zeros);
    if (s != CT_OK) {
      ctb_release(zeros);
      return s;
    }
  }
  ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(x), CTB_MEM(f), CTB_MEM(y), CTB_ARG(epi), CTB_MEM(bias ? bias : y),
                    CTB_MEM(zeros ? zeros : x)};
  ct_status s = RUN2D(ctx, dt, w, k, args, g->oc / vw, rows, 1);
  ctb_release(zeros); /* in-order queue: reuse waits for the kernel */
  return s;
}

static ct_status conv2d_direct_run(void *u) {
  const ctb_conv2d_call *c = u;
  return conv2d_direct(c->ctx, c->dt, c->g, c->x, c->f, c->bias, c->relu, c->y);
}

ct_status ctb_conv2d(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x, const ct_buffer *f,
                     const ct_buffer *bias, bool relu, ct_buffer *y) {
  switch (ctb_conv_winograd_path(ctx, dt, g)) {
  case CTB_CONV_PATH_WINOGRAD: return ctb_conv2d_winograd(ctx, dt, g, x, f, bias, relu, y);
  case CTB_CONV_PATH_MEASURE: {
    const ctb_conv2d_call c = {ctx, dt, g, x, f, bias, relu, y};
    return ctb_conv_winograd_measure(&c, conv2d_direct_run);
  }
  default: return conv2d_direct(ctx, dt, g, x, f, bias, relu, y);
  }
}

ct_status ctb_conv2d_bp_input(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *dy,
                              const ct_buffer *ft, ct_buffer *dx) {
  int vw = vec_width(dt);
  bool w = window_wide(ctx, g, 0);
  cl_int16 gw = window_arg(g);
  ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(dy), CTB_MEM(ft), CTB_MEM(dx)};
  if (g->c % vw == 0) {
    const int64_t vt = CTB_BPI_VT(dt);
    int64_t rows = (int64_t)g->n * g->h * ((g->w + vt - 1) / vt);
    return RUN2D(ctx, dt, w, "conv2d_bp_input_vec", args, g->c / vw, rows, rows_per_group(g->c / vw));
  }
  int64_t rows = (int64_t)g->n * g->h * ((g->w + CTB_TILE - 1) / CTB_TILE);
  return RUN2D(ctx, dt, w, "conv2d_bp_input", args, g->c, rows, 1);
}

/* The vector kernel of the filter gradient: output channels in vectors, offsets within one image
 * in int (registers: 8 of them per lane). */
static bool bp_filter_vec(ct_dtype dt, const ctb_window *g) {
  return g->oc % vec_width(dt) == 0 && (int64_t)g->h * g->w * g->c <= INT32_MAX;
}

bool ctb_conv2d_bp_filter_bias(ct_dtype dt, const ctb_window *g) { return bp_filter_vec(dt, g); }

ct_status ctb_conv2d_bp_filter(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                               const ct_buffer *dy, bool bias, ct_buffer *df) {
  int vw = vec_width(dt);
  /* with the bias: df holds the filter's gradient, then the bias's [OC] */
  int64_t nf = (int64_t)g->kh * g->kw * g->c * g->oc + (bias ? g->oc : 0);
  if (!bp_filter_vec(dt, g)) {
    if (bias) return ct__error(ctx, CT_ERR_INTERNAL, "the filter gradient's kernel adds the bias's only in vectors");
    bool w = window_wide(ctx, g, 0);
    cl_int16 gw = window_arg(g);
    ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(x), CTB_MEM(dy), CTB_MEM(df)};
    int64_t rows = (int64_t)g->kh * g->kw * ((g->c + CTB_TILE - 1) / CTB_TILE);
    return RUN2D(ctx, dt, w, "conv2d_bp_filter", args, g->oc, rows, 1);
  }
  /* the vector kernel reads the padding itself where the channels are in tiles of CTB_VT, and
   * otherwise needs x padded (every window inside it) */
  const int64_t need_h = (int64_t)(g->oh - 1) * g->sh + g->kh, need_w = (int64_t)(g->ow - 1) * g->sw + g->kw;
  if (g->c % CTB_VT != 0 && (g->pt != 0 || g->pl != 0 || need_h > g->h || need_w > g->w)) {
    ct_buffer *xp = NULL;
    ctb_window gp;
    CT_TRY(padded_input(ctx, dt, g, need_h, need_w, x, &xp, &gp));
    ct_status s = ctb_conv2d_bp_filter(ctx, dt, &gp, xp, dy, bias, df);
    ctb_release(xp); /* in-order queue: reuse waits for the kernel */
    return s;
  }
  /* enough work-items for every core: the batch is split in parts summed afterwards */
  /* One part per image (up to 4M partial sums), and a work-group for all the k tiles of a part:
   * the group reads its image from memory once and reuses it from cache. */
  /* CPUs with vectors of 8 or 16 floats (the _k9 kernels' CT_RVW >= 8): tiles of 9 k where they
   * are whole and tiles of CTB_VT are not (a 3 x 3 window over 1 or 3 channels: every lane of a
   * tile computes a k) */
  int64_t K = (int64_t)g->kh * g->kw * g->c;
  const bool k9 = ctx->info.type == CT_DEVICE_CPU && ctx->reduce_vw >= 8 && K % 9 == 0 && g->c % CTB_VT != 0;
  const int tk = k9 ? 9 : CTB_VT;
  int64_t rows = (K + tk - 1) / tk + (bias ? 1 : 0);
  int64_t splits = ((int64_t)1 << 22) / nf;
  if (splits > g->n) splits = g->n;
  /* CPUs: parts enough for every compute unit, and fewer parts are fewer partial sums to write
   * and add */
  if (ctx->info.type == CT_DEVICE_CPU && splits > ctb_target_groups(ctx)) splits = ctb_target_groups(ctx);
  if (splits < 1) splits = 1;
  bool w = window_wide(ctx, g, (nf + tk * (int64_t)g->oc) * splits);
  if (ctb_conv_wide_vectors(ctx, dt, g->oc)) vw = 16; /* as ctb_conv2d */
  size_t l0 = ctb_pow2_at_least(g->oc / vw, 64);
  size_t l1 = (size_t)rows < 256 / l0 ? (size_t)rows : 256 / l0;
  ct_buffer *part = df;
  if (splits > 1) CT_TRY(ctb_alloc(ctx, (size_t)(nf * splits) * ct_dtype_size(dt), &part));
  int sp = (int)splits, b = bias ? 1 : 0;
  cl_int16 gw = window_arg(g);
  ctb_arg args[] = {CTB_ARG(gw), CTB_ARG(sp), CTB_ARG(b), CTB_MEM(x), CTB_MEM(dy), CTB_MEM(part)};
  const char *k = vw == 16 ? (k9 ? "conv2d_bp_filter_w16_k9" : "conv2d_bp_filter_w16")
                           : (k9 ? "conv2d_bp_filter_vec_k9" : "conv2d_bp_filter_vec");
  ct_status s = RUN2D(ctx, dt, w, k, args, g->oc / vw, rows * splits, l1);
  if (s == CT_OK && splits > 1) s = ctb_reduce(ctx, CTB_RSUM, dt, 1, splits, nf, part, df);
  if (part != df) ctb_release(part); /* in-order queue: reuse waits for the kernels above */
  return s;
}

/* Disjoint windows inside the image: stride = window, no padding, every window whole. */
static bool max_pool_disjoint(const ctb_window *g) {
  return g->sh == g->kh && g->sw == g->kw && g->pt == 0 && g->pl == 0 && (int64_t)g->oh * g->kh <= g->h &&
         (int64_t)g->ow * g->kw <= g->w;
}

ct_status ctb_pool(ct_context *ctx, ct_dtype dt, bool max, const ctb_window *g, const ct_buffer *x, ct_buffer *y) {
  int vw = vec_width(dt);
  int64_t n = (int64_t)g->n * g->oh * g->ow * g->c;
  bool w = window_wide(ctx, g, 0);
  cl_int16 gw = window_arg(g);
  ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(x), CTB_MEM(y)};
  if (max && g->c % vw == 0 && max_pool_disjoint(g))
    return RUN1D(ctx, dt, w, "max_pool_disjoint_vec", args, ctb_round_up(ctx, n / g->c));
  if (max && g->c % vw == 0) return RUN1D(ctx, dt, w, "max_pool_vec", args, ctb_round_up(ctx, n / g->c));
  return RUN1D(ctx, dt, w, max ? "max_pool" : "avg_pool", args, ctb_round_up(ctx, n));
}

ct_status ctb_max_pool_grad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                            const ct_buffer *dy, ct_buffer *dx) {
  int vw = vec_width(dt);
  int64_t n = (int64_t)g->n * g->h * g->w * g->c;
  bool w = window_wide(ctx, g, 0);
  cl_int16 gw = window_arg(g);
  ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(x), CTB_MEM(dy), CTB_MEM(dx)};
  if (g->c % vw == 0 && max_pool_disjoint(g)) {
    /* disjoint windows: one work-item per window */
    if ((int64_t)g->oh * g->kh < g->h || (int64_t)g->ow * g->kw < g->w) CT_TRY(ctb_fill(ctx, dt, n, 0.0, dx));
    int64_t windows = (int64_t)g->n * g->oh * g->ow;
    return RUN1D(ctx, dt, w, "max_pool_grad_disjoint_vec", args, ctb_round_up(ctx, windows));
  }
  if (g->c % vw == 0 && !w) /* int build only (kernels/nn.cl) */
    return RUN1D(ctx, dt, w, g->mask ? "max_pool_grad_vec_mask" : "max_pool_grad_vec", args, ctb_round_up(ctx, n / vw));
  return RUN1D(ctx, dt, w, "max_pool_grad", args, ctb_round_up(ctx, n));
}

ct_status ctb_max_pool_gradgrad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                                const ct_buffer *gg, ct_buffer *out) {
  int64_t n = (int64_t)g->n * g->oh * g->ow * g->c;
  bool w = window_wide(ctx, g, 0);
  cl_int16 gw = window_arg(g);
  ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(x), CTB_MEM(gg), CTB_MEM(out)};
  return RUN1D(ctx, dt, w, "max_pool_gradgrad", args, ctb_round_up(ctx, n));
}

ct_status ctb_avg_pool_grad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *dy, ct_buffer *dx) {
  int64_t n = (int64_t)g->n * g->h * g->w * g->c;
  bool w = window_wide(ctx, g, 0);
  cl_int16 gw = window_arg(g);
  ctb_arg args[] = {CTB_ARG(gw), CTB_MEM(dy), CTB_MEM(dx)};
  return RUN1D(ctx, dt, w, "avg_pool_grad", args, ctb_round_up(ctx, n));
}

ct_status ctb_pad_nhwc(ct_context *ctx, ct_dtype dt, int64_t n, int64_t h, int64_t w, int64_t c, int64_t hp,
                       int64_t wp, int64_t top, int64_t left, const ct_buffer *x, ct_buffer *y) {
  int64_t total = n * hp * wp * c;
  if (total == 0) return CT_OK;
  bool wd = ctb_wide(ctx, max64(total, n * h * w * c));
  ctb_iarg a[8];
  const int64_t v[8] = {n, h, w, c, hp, wp, top, left};
  ctb_arg args[10];
  for (int i = 0; i < 8; ++i) args[i] = ctb_idx_arg(wd, &a[i], v[i]);
  args[8] = CTB_MEM(x);
  args[9] = CTB_MEM(y);
  size_t local = 64; /* a row per item */
  ctb_local_size(ctx, 1, &local);
  return CTB_RUN(ctx, "nn", dt, CTB_IDX_DEFS(wd), "pad_nhwc", args, ((size_t)(n * hp) + local - 1) / local * local, local);
}

ct_status ctb_bias_add(ct_context *ctx, ct_dtype dt, int64_t M, int64_t C, const ct_buffer *x, const ct_buffer *b,
                       ct_buffer *y) {
  bool w = ctb_wide(ctx, M * C);
  ctb_iarg m, c;
  ctb_arg args[] = {ctb_idx_arg(w, &m, M), ctb_idx_arg(w, &c, C), CTB_MEM(x), CTB_MEM(b), CTB_MEM(y)};
  size_t l0 = ctb_pow2_at_least(C, 64);
  return RUN2D(ctx, dt, w, "bias_add", args, C, M, l0 >= 64 ? 1 : 64 / l0);
}

/* db = the column sums of dy (M x C): each of `parts` bands of rows summed by its own work-items,
 * then the bands' sums added. A small dy (up to 512 rows, 16384 elements: the gradient of a
 * classifier's bias) is one band whose sums go straight to db, one launch instead of two; larger
 * ones get up to 64 bands, enough work-groups for every core (one band of a 256 x 256 dy ran 2
 * to 3 times longer on two cores than the two launches). */
ct_status ctb_bias_add_grad(ct_context *ctx, ct_dtype dt, int64_t M, int64_t C, const ct_buffer *dy, ct_buffer *db) {
  int parts = M <= 512 && M * C <= 16384 && M > 0 ? 1 : M < 64 ? (int)M : 64;
  if (parts < 1) return ctb_fill(ctx, dt, C, 0.0, db);
  bool w = ctb_wide(ctx, M * C);
  ctb_iarg m, c;
  ct_buffer *part = db;
  if (parts > 1) CT_TRY(ctb_alloc(ctx, (size_t)(parts * C) * ct_dtype_size(dt), &part));
  ctb_arg args[] = {ctb_idx_arg(w, &m, M), ctb_idx_arg(w, &c, C), CTB_ARG(parts), CTB_MEM(dy), CTB_MEM(part)};
  int vw = vec_width(dt);
  ct_status s = C % vw == 0 ? RUN2D(ctx, dt, w, "bias_add_grad_vec", args, C / vw, parts, 1)
                            : RUN2D(ctx, dt, w, "bias_add_grad", args, C, parts, 1);
  if (s == CT_OK && parts > 1) s = ctb_reduce(ctx, CTB_RSUM, dt, 1, parts, C, part, db);
  if (part != db) ctb_release(part);
  return s;
}

/* A kernel argument of the element type T of a float program. */
typedef union {
  float f;
  double d;
} targ;
static ctb_arg targ_of(ct_dtype dt, targ *slot, double v) {
  if (dt == CT_FLOAT64) {
    slot->d = v;
    return (ctb_arg){sizeof(double), &slot->d};
  }
  slot->f = (float)v;
  return (ctb_arg){sizeof(float), &slot->f};
}

ct_status ctb_dropout(ct_context *ctx, ct_dtype dt, int64_t n, uint64_t seed, double rate, const ct_buffer *x,
                      ct_buffer *y) {
  bool w = ctb_wide(ctx, n);
  ctb_iarg nn;
  cl_uint lo = (cl_uint)seed, hi = (cl_uint)(seed >> 32);
  double th = rate * 4294967296.0;
  cl_uint thr = th >= 4294967295.0 ? 4294967295u : (cl_uint)th;
  targ sc;
  ctb_arg args[] = {ctb_idx_arg(w, &nn, n), CTB_ARG(lo), CTB_ARG(hi), CTB_ARG(thr), targ_of(dt, &sc, rate < 1 ? 1.0 / (1.0 - rate) : 0.0), CTB_MEM(x), CTB_MEM(y)};
  return RUN1D(ctx, dt, w, "dropout", args, ctb_round_up(ctx, n));
}

ct_status ctb_softmax_xent(ct_context *ctx, ct_dtype dt, int64_t rows, int64_t C, const ct_buffer *logits,
                           const ct_buffer *labels, ct_buffer *loss) {
  bool w = ctb_wide(ctx, rows * C);
  ctb_iarg r, c;
  ctb_arg args[] = {ctb_idx_arg(w, &r, rows), ctb_idx_arg(w, &c, C), CTB_MEM(logits), CTB_MEM(labels), CTB_MEM(loss)};
  return RUN1D(ctx, dt, w, "softmax_xent", args, ctb_round_up(ctx, rows));
}

ct_status ctb_softmax_xent_grad(ct_context *ctx, ct_dtype dt, int64_t rows, int64_t C, const ct_buffer *logits,
                                const ct_buffer *labels, const ct_buffer *dy, ct_buffer *dx) {
  bool w = ctb_wide(ctx, rows * C);
  ctb_iarg r, c;
  ctb_arg args[] = {ctb_idx_arg(w, &r, rows), ctb_idx_arg(w, &c, C), CTB_MEM(logits), CTB_MEM(labels), CTB_MEM(dy), CTB_MEM(dx)};
  return RUN1D(ctx, dt, w, "softmax_xent_grad", args, ctb_round_up(ctx, rows));
}

/* Up to CTB_OPT_MULTI variables in one launch of opt_multi: variable j gets whole work-groups of
 * ctx->group items, the groups gends[j-1] .. gends[j] - 1, each item a vector of vw elements. */
static ct_status opt_launch(ct_context *ctx, ct_dtype dt, const ctb_opt_step *o, const ct_buffer *scale,
                            const ctb_opt_var *vars, int nvars) {
  const int64_t grp = (int64_t)ctx->group, vw = vec_width(dt);
  /* the ranges travel as 8-vectors (ct_idx8), past CTB_OPT_MULTI empty */
  int64_t gends[8], n[8], groups = 0, largest = 0;
  for (int j = 0; j < 8; ++j) {
    n[j] = j < nvars ? vars[j].n : 0;
    gends[j] = groups += ((n[j] + vw - 1) / vw + grp - 1) / grp;
    if (n[j] > largest) largest = n[j];
  }
  if (groups == 0) return CT_OK;
  const bool w = ctb_wide(ctx, groups * grp * vw > largest ? groups * grp * vw : largest);
  cl_int8 gi, ni;
  cl_long8 gl, nl;
  for (int j = 0; j < 8; ++j) {
    gi.s[j] = (cl_int)gends[j];
    gl.s[j] = (cl_long)gends[j];
    ni.s[j] = (cl_int)n[j];
    nl.s[j] = (cl_long)n[j];
  }
  int flags = (o->nesterov ? 1 : 0) | (o->decoupled ? 2 : 0) | (scale ? 4 : 0);
  targ t[9];
  ctb_arg args[12 + 5 * CTB_OPT_MULTI] = {w ? (ctb_arg){sizeof gl, &gl} : (ctb_arg){sizeof gi, &gi},
                                          w ? (ctb_arg){sizeof nl, &nl} : (ctb_arg){sizeof ni, &ni},
                                          targ_of(dt, &t[0], o->lr),
                                          targ_of(dt, &t[1], o->weight_decay),
                                          targ_of(dt, &t[2], o->momentum),
                                          targ_of(dt, &t[3], o->beta1),
                                          targ_of(dt, &t[4], o->beta2),
                                          targ_of(dt, &t[5], o->epsilon),
                                          targ_of(dt, &t[6], o->bc1),
                                          targ_of(dt, &t[7], o->bc2),
                                          CTB_ARG(flags),
                                          CTB_MEM(scale ? scale : vars[0].g)}; /* any valid buffer when unused */
  for (int j = 0; j < CTB_OPT_MULTI; ++j) {
    const ctb_opt_var *v = &vars[j < nvars ? j : 0]; /* an unused variable: an empty range */
    ctb_arg *a = &args[12 + 5 * j];
    a[0] = CTB_MEM(v->p_in);
    a[1] = CTB_MEM(v->p_out);
    a[2] = CTB_MEM(v->g);
    a[3] = CTB_MEM(v->s1 ? v->s1 : v->p_out);
    a[4] = CTB_MEM(v->s2 ? v->s2 : v->p_out);
  }
  char defs[64];
  snprintf(defs, sizeof defs, "%s -DCT_OPT_KIND=%d", CTB_IDX_DEFS(w), (int)o->kind);
  return CTB_RUN(ctx, "nn", dt, defs, "opt_multi", args, (size_t)(groups * grp), ctx->group);
}

ct_status ctb_optimizer_step(ct_context *ctx, ct_dtype dt, const ctb_opt_step *o, const ct_buffer *scale,
                             const ctb_opt_var *vars, int nvars) {
  if ((unsigned)o->kind > CTB_OPT_ADAM) return ct__error(ctx, CT_ERR_INTERNAL, "unknown optimizer kind %d", (int)o->kind);
  for (int j = 0; j < nvars; j += CTB_OPT_MULTI)
    CT_TRY(opt_launch(ctx, dt, o, scale, vars + j, nvars - j < CTB_OPT_MULTI ? nvars - j : CTB_OPT_MULTI));
  return CT_OK;
}
