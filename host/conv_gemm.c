/* conv_gemm.c — convolutions as matrix products: the patch matrix of the input (im2col,
 * kernels/conv_gemm.cl) times the filter read as a (KH * KW * C) x OC matrix, through ctb_gemm
 * (the tuned engine of blas.c: the tiled kernels or CLBlast). The forward is y = col f, the
 * filter gradient df = col^T dy, the input gradient dcol = dy f^T scattered back by col2im. A
 * 1x1 window of stride 1 without padding needs no patch matrix: col is x itself.
 *
 * Which path runs a convolution (these products or the direct kernels of kernels/nn.cl) is
 * ctb_conv_path's choice: forced by CLTAPE_CONV=direct|gemm; else the choice measured for this
 * device, dtype and shape (both paths timed on first use, kept next to the device's matmul
 * store); else, on a device that was never tuned, the rule of conv_gemm_default. */
#define _POSIX_C_SOURCE 200809L
#include "tune.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

/* The rule for a device whose choices were never measured, from bench_conv on a 2-core AVX-512
 * CPU under PoCL (docs/performance.md, "Convolution paths"): the products win where each output
 * sums many terms (KH * KW * C of 576: the forward 16%, the filter gradient 43% less CPU time)
 * and lose where it sums few (288 and less: the patch matrix costs more traffic than the direct
 * kernels spend; 9, a first layer, 3x slower). The input gradient's scatter back (col2im) costs
 * more than the direct kernel saves at every window size measured: products for 1x1 windows
 * only, which need no patch matrix (forward and input gradient 30-40% less CPU time; their
 * filter gradient is as fast on either path and follows the rule of the others). Where the direct
 * kernels run blocks of 16 float32 channels (512-bit vectors) their forward outruns the products
 * at 576 terms too (189 against 156 GFLOP/s), so the forward stays direct there.
 *
 * Devices whose products run on CLBlast (GPUs, and llvmpipe, which makes work-items the lanes of
 * its vectors: the direct kernels' per-work-item vectors do not fit them) take the products: on
 * llvmpipe they took half the CPU time of the direct kernels or less, the first layer included. */
static bool conv_gemm_default(const ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g) {
  if (g->oc < 16) return false; /* fewer output channels than a register tile's vector */
  ctb_gemm_plan plan;
  ctb_tune_plan(ctx, dt, &plan);
  if (plan.engine != CTB_GEMM_TILE) return true;
  if (pointwise(g) && kind != CTB_CONV_BP_FILTER) return true;
  /* the direct forward in blocks of 16 channels outruns the products at 576 terms too */
  if (kind == CTB_CONV_FWD && ctb_conv_wide_vectors(ctx, dt, g->oc)) return false;
  return kind != CTB_CONV_BP_INPUT && kcols_of(g) >= 512;
}

/* ---- measured choices ----------------------------------------------------------------------- */
/* One measured choice: its key (the kind, the dtype, the window's 13 fields) and whether the
 * products won. A store per device (the path of its matmul store with "conv-" for "matmul-"),
 * loaded on first use, kept for the process, appended to as shapes are measured. Without an
 * on-disk cache the choices are kept for the process only, by device name. */
#define KEY_LEN 15
typedef struct {
  int32_t key[KEY_LEN];
  ctb_conv_path_id path; /* DIRECT, GEMM or WINOGRAD */
} conv_choice;
/* key[0] of the direct forward's choice between its kernels and Winograd's (after the kinds) */
#define WINOGRAD_KEY_KIND 3
static const char *const PATH_WORDS[] = {"direct", "gemm", "", "winograd"};
typedef struct {
  char path[CTB_CACHE_DIR_MAX + 128]; /* the file, or "@" and the device name */
  conv_choice *v;
  size_t n, cap;
} conv_store;
static pthread_mutex_t STORE_LOCK = PTHREAD_MUTEX_INITIALIZER;
static conv_store *STORES;
static size_t N_STORES;

static void choice_key(ct_dtype dt, int kind, const ctb_window *g, int32_t *key) {
  key[0] = (int32_t)kind;
  key[1] = (int32_t)dt;
  memcpy(key + 2, g, sizeof(int32_t) * 13);
}

static void store_name(const ct_context *ctx, char *out, size_t cap) {
  char m[sizeof ((conv_store *)0)->path];
  tk_store_path(ctx, m, sizeof m);
  char *at = strrchr(m, '/');
  if (m[0] && at && strncmp(at + 1, "matmul-", 7) == 0) snprintf(out, cap, "%.*s/conv-%s", (int)(at - m), m, at + 8);
  else snprintf(out, cap, "@%s", ctx->info.name);
}

static bool store_add(conv_store *st, const int32_t *key, ctb_conv_path_id path) {
  for (size_t i = 0; i < st->n; ++i)
    if (memcmp(st->v[i].key, key, sizeof st->v[i].key) == 0) {
      st->v[i].path = path;
      return true;
    }
  if (st->n == st->cap) {
    size_t cap = st->cap ? 2 * st->cap : 16;
    conv_choice *v = realloc(st->v, cap * sizeof *v);
    if (!v) return false;
    st->v = v, st->cap = cap;
  }
  memcpy(st->v[st->n].key, key, sizeof st->v[st->n].key);
  st->v[st->n++].path = path;
  return true;
}

/* The store of this context's device, loaded from its file on first use (lines of KEY_LEN
 * integers and "direct", "gemm" or "winograd"; lines that do not parse are skipped). Under
 * STORE_LOCK. */
static conv_store *store_of(const ct_context *ctx) {
  char name[sizeof ((conv_store *)0)->path];
  store_name(ctx, name, sizeof name);
  for (size_t i = 0; i < N_STORES; ++i)
    if (strcmp(STORES[i].path, name) == 0) return &STORES[i];
  conv_store *more = realloc(STORES, (N_STORES + 1) * sizeof *more);
  if (!more) return NULL;
  STORES = more;
  conv_store *st = &STORES[N_STORES++];
  memset(st, 0, sizeof *st);
  snprintf(st->path, sizeof st->path, "%s", name);
  FILE *f = name[0] == '@' ? NULL : fopen(name, "r");
  char line[512];
  while (f && fgets(line, sizeof line, f)) {
    int32_t key[KEY_LEN];
    char *p = line, *end;
    int i = 0;
    for (; i < KEY_LEN; ++i, p = end) {
      long v = strtol(p, &end, 10);
      if (end == p) break;
      key[i] = (int32_t)v;
    }
    while (*p == ' ') ++p;
    for (int w = 0; i == KEY_LEN && w < (int)(sizeof PATH_WORDS / sizeof *PATH_WORDS); ++w)
      if (PATH_WORDS[w][0] && strncmp(p, PATH_WORDS[w], strlen(PATH_WORDS[w])) == 0) {
        store_add(st, key, (ctb_conv_path_id)w);
        break;
      }
  }
  if (f) fclose(f);
  return st;
}

/* the stored path, or -1 where none was measured */
static int stored_choice(const ct_context *ctx, ct_dtype dt, int kind, const ctb_window *g) {
  int32_t key[KEY_LEN];
  choice_key(dt, kind, g, key);
  int found = -1;
  pthread_mutex_lock(&STORE_LOCK);
  conv_store *st = store_of(ctx);
  for (size_t i = 0; st && i < st->n && found < 0; ++i)
    if (memcmp(st->v[i].key, key, sizeof key) == 0) found = (int)st->v[i].path;
  pthread_mutex_unlock(&STORE_LOCK);
  return found;
}

static ct_status choice_store(ct_context *ctx, ct_dtype dt, int kind, const ctb_window *g, ctb_conv_path_id path) {
  int32_t key[KEY_LEN];
  choice_key(dt, kind, g, key);
  pthread_mutex_lock(&STORE_LOCK);
  conv_store *st = store_of(ctx);
  bool ok = st && store_add(st, key, path);
  if (ok && st->path[0] != '@') {
    char line[512];
    int n = 0;
    for (int i = 0; i < KEY_LEN; ++i) n += snprintf(line + n, sizeof line - (size_t)n, "%d ", (int)key[i]);
    snprintf(line + n, sizeof line - (size_t)n, "%s\n", PATH_WORDS[path]);
    FILE *f = fopen(st->path, "a"); /* one short line per append: concurrent writers interleave whole lines */
    if (f) {
      fputs(line, f);
      fclose(f);
    } else ct__log(CT_LOG_DEBUG, "convolution choices: cannot write %s", st->path);
  }
  pthread_mutex_unlock(&STORE_LOCK);
  return ok ? CT_OK : ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "storing a convolution choice");
}

ct_status ctb_conv_choice_store(ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g, bool gemm) {
  return choice_store(ctx, dt, (int)kind, g, gemm ? CTB_CONV_PATH_GEMM : CTB_CONV_PATH_DIRECT);
}

ctb_conv_path_id ctb_conv_path(const ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g) {
  if (!gemm_fits(ctx, dt, g)) return CTB_CONV_PATH_DIRECT;
  const char *e = ct__getenv("CLTAPE_CONV");
  if (e && strcasecmp(e, "gemm") == 0) return CTB_CONV_PATH_GEMM;
  if (e && (strcasecmp(e, "direct") == 0 || strcasecmp(e, "winograd") == 0)) return CTB_CONV_PATH_DIRECT;
  const int stored = stored_choice(ctx, dt, (int)kind, g);
  if (stored >= 0) return stored == CTB_CONV_PATH_GEMM ? CTB_CONV_PATH_GEMM : CTB_CONV_PATH_DIRECT;
  /* measured where asked (CLTAPE_CONV=measure) or where the device was tuned */
  if ((e && strcasecmp(e, "measure") == 0) || ctb_tune_active(ctx, dt)) return CTB_CONV_PATH_MEASURE;
  return conv_gemm_default(ctx, dt, kind, g) ? CTB_CONV_PATH_GEMM : CTB_CONV_PATH_DIRECT;
}

/* The direct kernels (direct(user)) and another way (other(ou)) of one convolution timed in
 * turns, five rounds: the first compiles and fills the pool, the best of the others counts (the
 * best of four: a machine shared with other work slows some of them). best: direct, other. */
static ct_status time_in_turns(ct_context *ctx, ct_status (*direct)(void *), void *user, ct_status (*other)(void *),
                               void *ou, double best[2]) {
  best[0] = best[1] = INFINITY;
  for (int r = 0; r < 5; ++r)
    for (int p = 0; p < 2; ++p) {
      const double t0 = ctb_now_s();
      CT_TRY(p ? other(ou) : direct(user));
      CT_TRY(ct_context_sync(ctx));
      const double t = ctb_now_s() - t0;
      if (r > 0 && t < best[p]) best[p] = t;
    }
  return CT_OK;
}

typedef struct {
  ct_context *ctx;
  ct_dtype dt;
  ctb_conv_kind kind;
  const ctb_window *g;
  const ct_buffer *a, *b;
  ct_buffer *out;
} gemm_call;
static ct_status gemm_run(void *u) {
  const gemm_call *c = u;
  return ctb_conv2d_gemm(c->ctx, c->dt, c->kind, c->g, c->a, c->b, c->out);
}

ct_status ctb_conv_measure(ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g, const ct_buffer *a,
                           const ct_buffer *b, ct_buffer *out, ct_status (*direct)(void *), void *user) {
  gemm_call c = {ctx, dt, kind, g, a, b, out};
  double best[2];
  CT_TRY(time_in_turns(ctx, direct, user, gemm_run, &c, best));
  ct__log(CT_LOG_DEBUG, "convolution kind %d %dx%dx%dx%d * %dx%d -> %d: direct %.3f ms, products %.3f ms", (int)kind,
          g->n, g->h, g->w, g->c, g->kh, g->kw, g->oc, best[0] * 1e3, best[1] * 1e3);
  return ctb_conv_choice_store(ctx, dt, kind, g, best[1] < best[0]);
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

/* ---- Winograd's F(4x4, 3x3) ---------------------------------------------------------------- */
/* The transforms are kernels/conv_gemm.cl's wino_*; the 36 products one batched ctb_gemm. */
#define WINO_T 36

typedef struct {
  int64_t tiles_h, tiles_w, p; /* tile rows and columns per image, tiles in all */
  int64_t sv, sm;              /* V[t] and M[t] apart: P C and P OC, and 64 bytes or more */
  int64_t v, m, u;             /* elements of V (36 sv), M (36 sm) and U (36 C OC) */
} wino_shape;
/* The strides of V and M over t: 16 elements (a CPU cache line of floats) past P C (P OC), so
 * that a work-item's 36 accesses, one per t, fall in different sets of the cache */
#define WINO_SKEW 16

/* Whether Winograd can run g: a 3x3 window of stride 1, its three scratch buffers within
 * CONV_GEMM_SCRATCH together and each within the device's largest allocation. */
static bool wino_fits(const ct_context *ctx, ct_dtype dt, const ctb_window *g, wino_shape *w) {
  if (g->kh != 3 || g->kw != 3 || g->sh != 1 || g->sw != 1 || g->n < 1 || g->oh < 1 || g->ow < 1 || g->c < 1 ||
      g->oc < 1)
    return false;
  w->tiles_h = (g->oh + 3) / 4;
  w->tiles_w = (g->ow + 3) / 4;
  w->p = (int64_t)g->n * w->tiles_h * w->tiles_w;
  const int64_t es = (int64_t)ct_dtype_size(dt), lim = CONV_GEMM_SCRATCH / es / WINO_T;
  if (w->p > lim / g->c - WINO_SKEW || w->p > lim / g->oc - WINO_SKEW || (int64_t)g->c * g->oc > lim) return false;
  w->sv = w->p * g->c + WINO_SKEW;
  w->sm = w->p * g->oc + WINO_SKEW;
  w->v = WINO_T * w->sv;
  w->m = WINO_T * w->sm;
  w->u = WINO_T * (int64_t)g->c * g->oc;
  const uint64_t big = (uint64_t)((w->v > w->m ? w->v : w->m) * es);
  return (w->v + w->m + w->u) * es <= CONV_GEMM_SCRATCH && big <= ctx->info.max_alloc_bytes;
}

ctb_conv_path_id ctb_conv_winograd_path(const ct_context *ctx, ct_dtype dt, const ctb_window *g) {
  wino_shape w;
  if (!wino_fits(ctx, dt, g, &w)) return CTB_CONV_PATH_DIRECT;
  const char *e = ct__getenv("CLTAPE_CONV");
  if (e && strcasecmp(e, "winograd") == 0) return CTB_CONV_PATH_WINOGRAD;
  if (e && (strcasecmp(e, "direct") == 0 || strcasecmp(e, "gemm") == 0)) return CTB_CONV_PATH_DIRECT;
  const int stored = stored_choice(ctx, dt, WINOGRAD_KEY_KIND, g);
  if (stored >= 0) return stored == CTB_CONV_PATH_WINOGRAD ? CTB_CONV_PATH_WINOGRAD : CTB_CONV_PATH_DIRECT;
  /* CPU devices are not measured: timed alone (as a measurement times it), Winograd ran
   * cnn_train_step's second layer 22% faster than the direct kernels on the 2-core AVX-512 CPU of
   * docs/performance.md ("Winograd"), and inside the step it made the step 10% slower: its
   * transforms pass 14 MB through memory that the step's other kernels compete for. */
  if (ctx->info.type == CT_DEVICE_CPU) return CTB_CONV_PATH_DIRECT;
  if ((e && strcasecmp(e, "measure") == 0) || ctb_tune_active(ctx, dt)) return CTB_CONV_PATH_MEASURE;
  return CTB_CONV_PATH_DIRECT; /* never measured */
}

static ct_status winograd_run(void *u) {
  const ctb_conv2d_call *c = u;
  return ctb_conv2d_winograd(c->ctx, c->dt, c->g, c->x, c->f, c->bias, c->relu, c->y);
}

ct_status ctb_conv_winograd_measure(const ctb_conv2d_call *c, ct_status (*direct)(void *)) {
  ct_context *ctx = c->ctx;
  const ctb_window *g = c->g;
  double best[2];
  CT_TRY(time_in_turns(ctx, direct, (void *)c, winograd_run, (void *)c, best));
  ct__log(CT_LOG_DEBUG, "convolution %dx%dx%dx%d * 3x3 -> %d: direct %.3f ms, Winograd %.3f ms", g->n, g->h, g->w,
          g->c, g->oc, best[0] * 1e3, best[1] * 1e3);
  return choice_store(ctx, c->dt, WINOGRAD_KEY_KIND, g, best[1] < best[0] ? CTB_CONV_PATH_WINOGRAD : CTB_CONV_PATH_DIRECT);
}

ct_status ctb_conv2d_winograd(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x, const ct_buffer *f,
                              const ct_buffer *bias, bool relu, ct_buffer *y) {
  wino_shape w;
  if (!wino_fits(ctx, dt, g, &w))
    return ct__error(ctx, CT_ERR_INTERNAL, "Winograd's convolution asked for a window it cannot run");
  const size_t es = ct_dtype_size(dt);
  ct_buffer *u = NULL, *v = NULL, *m = NULL;
  ct_status s = ctb_alloc(ctx, (size_t)w.u * es, &u);
  if (s == CT_OK) s = ctb_alloc(ctx, (size_t)w.v * es, &v);
  if (s == CT_OK) s = ctb_alloc(ctx, (size_t)w.m * es, &m);
  const cl_int c = g->c, oc = g->oc, epi = bias ? (relu ? 2 : 1) : 0;
  const cl_int16 gw = window_int16(g);
  const cl_int4 tiles_v = {{(cl_int)w.tiles_h, (cl_int)w.tiles_w, (cl_int)w.p, (cl_int)w.sv}},
                tiles_m = {{(cl_int)w.tiles_h, (cl_int)w.tiles_w, (cl_int)w.p, (cl_int)w.sm}};
  /* CPU devices with vectors of 8 or 16 floats: vectors of channels per work-item where the
   * channels fill them (the _vec kernels, WINO_VW in kernels/conv_gemm.cl); a channel per
   * work-item otherwise */
  const int vw = dt == CT_FLOAT64 ? 4 : ctx->reduce_vw >= 16 ? 16 : 8;
  const bool cpu = ctx->info.type == CT_DEVICE_CPU && ctx->reduce_vw >= 8, vin = cpu && c % vw == 0,
             vout = cpu && oc % vw == 0;
  if (s == CT_OK) {
    const ctb_arg args[] = {CTB_ARG(c), CTB_ARG(oc), CTB_MEM(f), CTB_MEM(u)};
    s = run_gather(ctx, dt, false, vout ? "wino_filter_vec" : "wino_filter", args, CTB_NARGS(args),
                   vout ? oc / vw : oc, c);
  }
  if (s == CT_OK) {
    const ctb_arg args[] = {CTB_ARG(gw), CTB_ARG(tiles_v), CTB_MEM(x), CTB_MEM(v)};
    s = run_gather(ctx, dt, false, vin ? "wino_input_vec" : "wino_input", args, CTB_NARGS(args), vin ? c / vw : c,
                   w.p);
  }
  /* M[t] (P x OC) = V[t] (P x C) U[t] (C x OC), t = 0 .. 35 */
  if (s == CT_OK)
    s = ctb_gemm(ctx, dt, false, false, w.p, oc, c, 1.0, v, c, w.sv, u, oc, (int64_t)c * oc, 0.0, m, oc, w.sm, WINO_T);
  if (s == CT_OK) {
    const ctb_arg args[] = {CTB_ARG(gw), CTB_ARG(tiles_m), CTB_MEM(m), CTB_MEM(y), CTB_ARG(epi), CTB_MEM(bias ? bias : m)};
    s = run_gather(ctx, dt, false, vout ? "wino_output_vec" : "wino_output", args, CTB_NARGS(args),
                   vout ? oc / vw : oc, w.p);
  }
  /* the in-order queue: reuse of the scratch waits for the kernels above */
  if (m) ctb_release(m);
  if (v) ctb_release(v);
  if (u) ctb_release(u);
  return s;
}
