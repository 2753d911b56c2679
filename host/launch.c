/* launch.c — kernel launches for the core's ops: argument setting and NDRange sizes. Nothing
 * here waits for the device. */
#include "ct_host.h"
#include <string.h>

/* 1-D launches: groups of ctx->group items (CT_LS in the programs), n rounded up to whole groups. */
static size_t round_up(const ct_context *ctx, int64_t n) {
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

ct_status ctb_launch(ct_context *ctx, cl_kernel k, size_t global, size_t local, const char *kname) {
  cl_int err = clEnqueueNDRangeKernel(ctx->queue, k, 1, NULL, &global, local ? &local : NULL, 0, NULL, NULL);
  if (err != CL_SUCCESS)
    return ct__error(ctx, err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ? CT_ERR_OUT_OF_MEMORY
                                                                                                  : CT_ERR_OPENCL,
                     "launching kernel %s (global %zu, local %zu): %s", kname, global, local, ctb_cl_error_name(err));
  ctx->stats.kernels_launched++;
  if (local > ctx->largest_group) ctx->largest_group = local;
  return CT_OK;
}

/* Sets arguments from a list; stops at the first failure. */
typedef struct {
  size_t size;
  const void *ptr;
} arg;
#define A(x) ((arg){sizeof(x), &(x)})
#define AM(b) ((arg){sizeof(cl_mem), &(b)->mem})

static ct_status set_args(ct_context *ctx, cl_kernel k, const char *kname, const arg *args, int n) {
  for (int i = 0; i < n; ++i) {
    cl_int err = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].ptr);
    if (err != CL_SUCCESS)
      return ct__error(ctx, CT_ERR_OPENCL, "setting argument %d of kernel %s: %s", i, kname, ctb_cl_error_name(err));
  }
  return CT_OK;
}

/* ---- index width ---------------------------------------------------------------------------- */
/* The elementwise, movement and reduce programs come in two builds: int index math, and long with
 * -DCT_IDX64=1 (ct_idx in kernels/prelude.cl). A launch takes the long build only when a count or
 * an offset it computes passes 2^31 - 1, so that the common case keeps the cheaper int math. */
static bool wide(const ct_context *ctx, int64_t largest) { return ctx->force_idx64 || largest > INT32_MAX; }

/* A ct_idx kernel argument: int or long as the build. */
typedef union {
  cl_int i;
  cl_long l;
} iarg;
static arg idx_of(bool w, iarg *slot, int64_t v) {
  if (w) {
    slot->l = (cl_long)v;
    return (arg){sizeof(cl_long), &slot->l};
  }
  slot->i = (cl_int)v;
  return (arg){sizeof(cl_int), &slot->i};
}

/* The largest count or offset (in elements) a geometry's kernel computes, with base offsets. */
static int64_t geom_extent(const ctb_geom *g, int64_t off0, int64_t off1) {
  int64_t m = g->n, o[3] = {off0 < 0 ? -off0 : off0, off1 < 0 ? -off1 : off1, 0};
  for (int k = 0; k < 3; ++k) {
    for (int d = 0; d < g->rank; ++d) {
      int64_t st = g->st[k][d] < 0 ? -g->st[k][d] : g->st[k][d];
      if (g->shape[d] > 0) o[k] += (g->shape[d] - 1) * st;
    }
    if (o[k] > m) m = o[k];
  }
  for (int d = 0; d < g->rank; ++d)
    if (g->shape[d] > m) m = g->shape[d];
  return m;
}

/* A geometry as the kernels take it (CT_GEOM_ARGS in kernels/prelude.cl): rank, count, then the
 * extents and each operand's strides as int8 or long8 vectors. `args` receives CT_GEOM_NARGS
 * entries pointing into `v`. */
typedef struct {
  cl_int rank;
  iarg n;
  union {
    cl_int8 i;
    cl_long8 l;
  } shape, st[3];
} geom_args;
#define CT_GEOM_NARGS 6
static void geom_arg_list(const ctb_geom *g, bool w, geom_args *v, arg *args) {
  memset(v, 0, sizeof *v);
  v->rank = g->rank;
  for (int d = 0; d < CT_MAX_RANK; ++d) {
    if (w) v->shape.l.s[d] = g->shape[d];
    else v->shape.i.s[d] = (cl_int)g->shape[d];
    for (int o = 0; o < 3; ++o) {
      if (w) v->st[o].l.s[d] = g->st[o][d];
      else v->st[o].i.s[d] = (cl_int)g->st[o][d];
    }
  }
  const size_t vsz = w ? sizeof(cl_long8) : sizeof(cl_int8);
  args[0] = A(v->rank);
  args[1] = idx_of(w, &v->n, g->n);
  args[2] = (arg){vsz, &v->shape};
  for (int o = 0; o < 3; ++o) args[3 + o] = (arg){vsz, &v->st[o]};
}

/* Builds (or finds) the kernel of the int or long build, sets its arguments and launches it. */
static ct_status run_w(ct_context *ctx, const char *family, ct_dtype dt, bool w, const char *kname, const arg *args,
                       int n, size_t global, size_t local) {
  cl_kernel k;
  CT_TRY(ctb_kernel_opts(ctx, family, dt, w ? "-DCT_IDX64=1" : "", kname, &k));
  CT_TRY(set_args(ctx, k, kname, args, n));
  return ctb_launch(ctx, k, global, local, kname);
}

static ct_status run(ct_context *ctx, const char *family, ct_dtype dt, const char *kname, const arg *args, int n,
                     size_t global, size_t local) {
  return run_w(ctx, family, dt, false, kname, args, n, global, local);
}

/* Kernels with int index math only (nn.cl, custom ops) take at most 2^31 - 1 items. */
static ct_status check_n(ct_context *ctx, int64_t n) {
  if (n > INT32_MAX) return ct__error(ctx, CT_ERR_UNSUPPORTED, "tensors of more than 2^31-1 elements are not supported");
  return CT_OK;
}

ct_status ctb_unary(ct_context *ctx, const char *kname, ct_dtype dt, int64_t n, const ct_buffer *x, ct_buffer *y) {
  char name[64];
  snprintf(name, sizeof name, "u_%s", kname);
  bool w = wide(ctx, n);
  iarg nn;
  arg args[] = {idx_of(w, &nn, n), AM(x), AM(y)};
  return run_w(ctx, "elementwise", dt, w, name, args, 3, round_up(ctx, n), ctx->group);
}

ct_status ctb_binary(ct_context *ctx, const char *kname, ct_dtype dt, ctb_bmode mode, const ctb_geom *g, int64_t n,
                     const ct_buffer *a, const ct_buffer *b, ct_buffer *y) {
  static const char suffix[] = {'c', 's', 'l', 'g'};
  char name[64];
  snprintf(name, sizeof name, "b_%s_%c", kname, suffix[mode]);
  if (mode == CTB_GENERAL) {
    bool w = wide(ctx, geom_extent(g, 0, 0));
    geom_args v;
    arg args[CT_GEOM_NARGS + 3];
    geom_arg_list(g, w, &v, args);
    args[CT_GEOM_NARGS] = AM(a);
    args[CT_GEOM_NARGS + 1] = AM(b);
    args[CT_GEOM_NARGS + 2] = AM(y);
    return run_w(ctx, "elementwise", dt, w, name, args, CT_GEOM_NARGS + 3, round_up(ctx, n), ctx->group);
  }
  bool w = wide(ctx, n);
  iarg nn;
  arg args[] = {idx_of(w, &nn, n), AM(a), AM(b), AM(y)};
  return run_w(ctx, "elementwise", dt, w, name, args, 4, round_up(ctx, n), ctx->group);
}

ct_status ctb_where(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *c, const ct_buffer *a,
                    const ct_buffer *b, ct_buffer *y) {
  bool w = wide(ctx, geom_extent(g, 0, 0));
  geom_args v;
  arg args[CT_GEOM_NARGS + 4];
  geom_arg_list(g, w, &v, args);
  args[CT_GEOM_NARGS] = AM(c);
  args[CT_GEOM_NARGS + 1] = AM(a);
  args[CT_GEOM_NARGS + 2] = AM(b);
  args[CT_GEOM_NARGS + 3] = AM(y);
  return run_w(ctx, "elementwise", dt, w, "where_g", args, CT_GEOM_NARGS + 4, round_up(ctx, g->n), ctx->group);
}

ct_status ctb_cast(ct_context *ctx, ct_dtype from, ct_dtype to, int64_t n, const ct_buffer *x, ct_buffer *y) {
  char name[64];
  snprintf(name, sizeof name, "cast_to_%s", ct_dtype_name(to));
  bool w = wide(ctx, n);
  iarg nn;
  arg args[] = {idx_of(w, &nn, n), AM(x), AM(y)};
  return run_w(ctx, "elementwise", from, w, name, args, 3, round_up(ctx, n), ctx->group);
}

ct_status ctb_fill(ct_context *ctx, ct_dtype dt, int64_t n, double value, ct_buffer *y) {
  bool w = wide(ctx, n);
  iarg nn;
  float f = (float)value;
  double d = value;
  int32_t i = dt == CT_INT32 ? (int32_t)value : 0; /* in range: ct_fill checked it */
  arg v = dt == CT_FLOAT32 ? A(f) : dt == CT_FLOAT64 ? A(d) : A(i);
  arg args[] = {idx_of(w, &nn, n), v, AM(y)};
  return run_w(ctx, "elementwise", dt, w, "fill", args, 3, round_up(ctx, n), ctx->group);
}

ct_status ctb_iota(ct_context *ctx, ct_dtype dt, int64_t n, double start, double delta, ct_buffer *y) {
  bool w = wide(ctx, n);
  iarg nn;
  float fs = (float)start, fd = (float)delta; /* devices without fp64 take float bounds */
  arg args[] = {idx_of(w, &nn, n), ctx->info.fp64 ? A(start) : A(fs), ctx->info.fp64 ? A(delta) : A(fd), AM(y)};
  return run_w(ctx, "elementwise", dt, w, "iota", args, 4, round_up(ctx, n), ctx->group);
}

ct_status ctb_reduce(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R, int64_t inner,
                     const ct_buffer *x, ct_buffer *y) {
  static const char *names[] = {"sum", "max", "min", "prod", "argmax", "argmin"};
  if (kind >= CTB_RARGMAX && R > INT32_MAX)
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "%s over an axis of %lld elements: the indices are int32", names[kind],
                     (long long)R);
  char name[64];
  const int64_t LS = (int64_t)ctx->group;
  bool rows = inner == 1 && R >= 4 * LS && kind < CTB_RARGMAX;
  snprintf(name, sizeof name, "r_%s_%s", names[kind], rows ? "rows" : "cols");
  if (rows && outer < 2 * (int64_t)ctx->info.compute_units) {
    /* one work-group per row would leave cores idle: each row is split into parts (a power of two
     * that divides it, each part still long), reduced part by part, then the parts of each row */
    int64_t parts = 1;
    for (int64_t c = 64; c >= 2 && parts == 1; c /= 2)
      if (R % c == 0 && R / c >= 16 * LS) parts = c;
    if (parts > 1) {
      ct_buffer *part = NULL;
      CT_TRY(ctb_alloc(ctx, (size_t)(outer * parts) * ct_dtype_size(dt), &part));
      ct_status s = ctb_reduce(ctx, kind, dt, outer * parts, R / parts, 1, x, part);
      if (s == CT_OK) s = ctb_reduce(ctx, kind, dt, outer, parts, 1, part, y);
      ctb_release(part); /* in-order queue: reuse waits for the kernels above */
      return s;
    }
  }
  bool w = wide(ctx, outer * R * inner);
  iarg o, r, in;
  if (rows) {
    arg args[] = {idx_of(w, &r, R), AM(x), AM(y)};
    return run_w(ctx, "reduce", dt, w, name, args, 3, (size_t)outer * ctx->group, ctx->group);
  }
  arg args[] = {idx_of(w, &o, outer), idx_of(w, &r, R), idx_of(w, &in, inner), AM(x), AM(y)};
  return run_w(ctx, "reduce", dt, w, name, args, 5, round_up(ctx, outer * inner), ctx->group);
}

ct_status ctb_copy_strided(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *src, int64_t soff,
                           ct_buffer *dst, int64_t doff) {
  bool w = wide(ctx, geom_extent(g, soff, doff));
  iarg so, dof;
  geom_args v;
  arg args[CT_GEOM_NARGS + 4];
  geom_arg_list(g, w, &v, args);
  args[CT_GEOM_NARGS] = AM(src);
  args[CT_GEOM_NARGS + 1] = idx_of(w, &so, soff);
  args[CT_GEOM_NARGS + 2] = AM(dst);
  args[CT_GEOM_NARGS + 3] = idx_of(w, &dof, doff);
  return run_w(ctx, "movement", dt, w, "copy_strided", args, CT_GEOM_NARGS + 4, round_up(ctx, g->n), ctx->group);
}

/* gather and its gradient: counts o, N, K, inner; the launch covers `items` outputs */
static ct_status gather_launch(ct_context *ctx, ct_dtype dt, const char *kname, int64_t outer, int64_t axis_n,
                               int64_t K, int64_t inner, int64_t items, const ct_buffer *src, const ct_buffer *idx,
                               ct_buffer *dst) {
  int64_t in_x = outer * axis_n * inner, in_y = outer * K * inner;
  bool w = wide(ctx, in_x > in_y ? in_x : in_y);
  iarg o, N, k, in;
  arg args[] = {idx_of(w, &o, outer), idx_of(w, &N, axis_n), idx_of(w, &k, K), idx_of(w, &in, inner),
                AM(src),              AM(idx),               AM(dst)};
  return run_w(ctx, "movement", dt, w, kname, args, 7, round_up(ctx, items), ctx->group);
}

ct_status ctb_gather(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t axis_n, int64_t K, int64_t inner,
                     const ct_buffer *x, const ct_buffer *idx, ct_buffer *y) {
  return gather_launch(ctx, dt, "gather", outer, axis_n, K, inner, outer * K * inner, x, idx, y);
}

ct_status ctb_gather_grad(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t axis_n, int64_t K, int64_t inner,
                          const ct_buffer *g, const ct_buffer *idx, ct_buffer *dx) {
  return gather_launch(ctx, dt, "gather_grad", outer, axis_n, K, inner, outer * axis_n * inner, g, idx, dx);
}

ct_status ctb_one_hot(ct_context *ctx, ct_dtype dt, int64_t n, int depth, const ct_buffer *idx, ct_buffer *y) {
  bool w = wide(ctx, n * depth);
  iarg nn;
  arg args[] = {idx_of(w, &nn, n), A(depth), AM(idx), AM(y)};
  return run_w(ctx, "movement", dt, w, "one_hot", args, 4, round_up(ctx, n * depth), ctx->group);
}

ct_status ctb_custom(ct_context *ctx, const char *source, const char *kernel, ct_dtype dt, int64_t n_out, ct_buffer *out,
                     int n_in, const ct_buffer *const *in, const int *ranks, const int64_t (*shapes)[CT_MAX_RANK]) {
  CT_TRY(check_n(ctx, n_out));
  cl_kernel k;
  CT_TRY(ctb_kernel_custom(ctx, source, kernel, dt, &k));
  int nn = (int)n_out;
  arg args[2 + 3 * 8];
  cl_int8 sh[8];
  int na = 0;
  args[na++] = A(nn);
  args[na++] = AM(out);
  for (int i = 0; i < n_in; ++i) {
    memset(&sh[i], 0, sizeof sh[i]);
    for (int d = 0; d < ranks[i] && d < 8; ++d) sh[i].s[d] = (cl_int)shapes[i][d];
    args[na++] = AM(in[i]);
    args[na++] = A(ranks[i]);
    args[na++] = A(sh[i]);
  }
  CT_TRY(set_args(ctx, k, kernel, args, na));
  return ctb_launch(ctx, k, round_up(ctx, n_out), ctx->group, kernel);
}

/* ---- transfers --------------------------------------------------------------------------- */
ct_status ctb_write(ct_context *ctx, ct_buffer *b, size_t offset, const void *src, size_t bytes) {
  if (bytes == 0) return CT_OK;
  cl_int err = clEnqueueWriteBuffer(ctx->queue, b->mem, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueWriteBuffer");
}

ct_status ctb_read(ct_context *ctx, const ct_buffer *b, size_t offset, void *dst, size_t bytes) {
  if (bytes == 0) return CT_OK;
  cl_int err = clEnqueueReadBuffer(ctx->queue, b->mem, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueReadBuffer");
}

ct_status ctb_copy(ct_context *ctx, const ct_buffer *src, size_t src_off, ct_buffer *dst, size_t dst_off, size_t bytes) {
  if (bytes == 0) return CT_OK;
  cl_int err = clEnqueueCopyBuffer(ctx->queue, src->mem, dst->mem, src_off, dst_off, bytes, 0, NULL, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueCopyBuffer");
}

/* ---- neural-network kernels (kernels/nn.cl) --------------------------------------------------- */
/* A 2-D range: dimension 0 runs over channels or blocks of 8 channels (local size: their count
 * rounded up to a power of two, at most 64), dimension 1 over `rows`, `l1` of them per group. */
static ct_status run2d(ct_context *ctx, ct_dtype dt, const char *kname, const arg *args, int n, int64_t channels,
                       int64_t rows, size_t l1) {
  if (channels <= 0 || rows <= 0) return CT_OK;
  if (channels > INT32_MAX || rows > INT32_MAX) return check_n(ctx, (int64_t)INT32_MAX + 1);
  size_t l0 = 1;
  while (l0 < (size_t)channels && l0 < 64) l0 *= 2;
  if (l1 < 1) l1 = 1;
  size_t local[2] = {l0, l1};
  ctb_local_size(ctx, 2, local);
  size_t global[2] = {((size_t)channels + local[0] - 1) / local[0] * local[0],
                      ((size_t)rows + local[1] - 1) / local[1] * local[1]};
  cl_kernel k;
  CT_TRY(ctb_kernel(ctx, "nn", dt, kname, &k));
  CT_TRY(set_args(ctx, k, kname, args, n));
  cl_int err = clEnqueueNDRangeKernel(ctx->queue, k, 2, NULL, global, local, 0, NULL, NULL);
  if (err != CL_SUCCESS)
    return ct__error(ctx, err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ? CT_ERR_OUT_OF_MEMORY
                                                                                                  : CT_ERR_OPENCL,
                     "launching kernel %s (global %zu x %zu, local %zu x %zu): %s", kname, global[0], global[1],
                     local[0], local[1], ctb_cl_error_name(err));
  ctx->stats.kernels_launched++;
  if (local[0] * local[1] > ctx->largest_group) ctx->largest_group = local[0] * local[1];
  return CT_OK;
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
_Static_assert(CTB_CONV_TILE == CTB_VT, "the core pads for tiles of CTB_VT columns");
#define CTB_GROUP 16 /* work-items per group wanted along dimension 1 of the *_vec kernels */

/* CT_VW: channels per work-item of the *_vec kernels (one 256-bit vector) */
static int vec_width(ct_dtype dt) { return dt == CT_FLOAT64 ? 4 : 8; }

static size_t rows_per_group(int64_t blocks) {
  size_t l0 = 1;
  while (l0 < (size_t)blocks && l0 < 64) l0 *= 2;
  return l0 >= CTB_GROUP ? 1 : CTB_GROUP / l0;
}

ct_status ctb_conv2d(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x, const ct_buffer *f,
                     ct_buffer *y) {
  int vw = vec_width(dt);
  CT_TRY(check_n(ctx, (int64_t)g->n * g->oh * g->ow * g->oc));
  cl_int16 gw = window_arg(g);
  arg args[] = {A(gw), AM(x), AM(f), AM(y)};
  if (g->oc % vw == 0) {
    /* tiles of 7 columns where they fit the width exactly and 8 do not (14, 28, ...) */
    int tile = g->ow % 8 != 0 && g->ow % 7 == 0 ? 7 : 8;
    int64_t rows = (int64_t)g->n * g->oh * ((g->ow + tile - 1) / tile);
    return run2d(ctx, dt, tile == 7 ? "conv2d_fwd_vec7" : "conv2d_fwd_vec8", args, 4, g->oc / vw, rows, 1);
  }
  int64_t rows = (int64_t)g->n * g->oh * ((g->ow + CTB_TILE - 1) / CTB_TILE);
  return run2d(ctx, dt, "conv2d_fwd", args, 4, g->oc, rows, 1);
}

ct_status ctb_conv2d_bp_input(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *dy,
                              const ct_buffer *ft, ct_buffer *dx) {
  int vw = vec_width(dt);
  CT_TRY(check_n(ctx, (int64_t)g->n * g->h * g->w * g->c));
  cl_int16 gw = window_arg(g);
  arg args[] = {A(gw), AM(dy), AM(ft), AM(dx)};
  if (g->c % vw == 0) {
    const int64_t vt = CTB_BPI_VT(dt);
    int64_t rows = (int64_t)g->n * g->h * ((g->w + vt - 1) / vt);
    return run2d(ctx, dt, "conv2d_bp_input_vec", args, 4, g->c / vw, rows, rows_per_group(g->c / vw));
  }
  int64_t rows = (int64_t)g->n * g->h * ((g->w + CTB_TILE - 1) / CTB_TILE);
  return run2d(ctx, dt, "conv2d_bp_input", args, 4, g->c, rows, 1);
}

ct_status ctb_conv2d_bp_filter(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                               const ct_buffer *dy, ct_buffer *df) {
  int vw = vec_width(dt);
  int64_t nf = (int64_t)g->kh * g->kw * g->c * g->oc;
  CT_TRY(check_n(ctx, nf));
  if (g->oc % vw != 0) {
    cl_int16 gw = window_arg(g);
    arg args[] = {A(gw), AM(x), AM(dy), AM(df)};
    int64_t rows = (int64_t)g->kh * g->kw * ((g->c + CTB_TILE - 1) / CTB_TILE);
    return run2d(ctx, dt, "conv2d_bp_filter", args, 4, g->oc, rows, 1);
  }
  /* the vector kernel needs x padded (every window inside it); enough work-items for every core:
   * the batch is split in parts summed afterwards */
  if (g->pt != 0 || g->pl != 0 || (int64_t)(g->oh - 1) * g->sh + g->kh > g->h ||
      (int64_t)(g->ow - 1) * g->sw + g->kw > g->w)
    return ct__error(ctx, CT_ERR_INTERNAL, "conv2d_bp_filter_vec needs a padded input");
  /* One part per image (up to 4M partial sums), and a work-group for all the k tiles of a part:
   * the group reads its image from memory once and reuses it from cache. */
  int64_t K = (int64_t)g->kh * g->kw * g->c, rows = (K + CTB_VT - 1) / CTB_VT;
  int64_t splits = ((int64_t)1 << 22) / nf;
  if (splits > g->n) splits = g->n;
  if (splits < 1) splits = 1;
  CT_TRY(check_n(ctx, nf * splits));
  size_t l0 = 1;
  while (l0 < (size_t)(g->oc / vw) && l0 < 64) l0 *= 2;
  size_t l1 = (size_t)rows < 256 / l0 ? (size_t)rows : 256 / l0;
  ct_buffer *part = df;
  if (splits > 1) CT_TRY(ctb_alloc(ctx, (size_t)(nf * splits) * ct_dtype_size(dt), &part));
  int sp = (int)splits;
  cl_int16 gw = window_arg(g);
  arg args[] = {A(gw), A(sp), AM(x), AM(dy), AM(part)};
  ct_status s = run2d(ctx, dt, "conv2d_bp_filter_vec", args, 5, g->oc / vw, rows * splits, l1);
  if (s == CT_OK && splits > 1) s = ctb_reduce(ctx, CTB_RSUM, dt, 1, splits, nf, part, df);
  if (part != df) ctb_release(part); /* in-order queue: reuse waits for the kernels above */
  return s;
}

ct_status ctb_pool(ct_context *ctx, ct_dtype dt, bool max, const ctb_window *g, const ct_buffer *x, ct_buffer *y) {
  int vw = vec_width(dt);
  int64_t n = (int64_t)g->n * g->oh * g->ow * g->c;
  CT_TRY(check_n(ctx, n));
  cl_int16 gw = window_arg(g);
  arg args[] = {A(gw), AM(x), AM(y)};
  if (max && g->c % vw == 0) return run(ctx, "nn", dt, "max_pool_vec", args, 3, round_up(ctx, n / vw), ctx->group);
  return run(ctx, "nn", dt, max ? "max_pool" : "avg_pool", args, 3, round_up(ctx, n), ctx->group);
}

ct_status ctb_max_pool_grad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                            const ct_buffer *dy, ct_buffer *dx) {
  int vw = vec_width(dt);
  int64_t n = (int64_t)g->n * g->h * g->w * g->c;
  CT_TRY(check_n(ctx, n));
  cl_int16 gw = window_arg(g);
  arg args[] = {A(gw), AM(x), AM(dy), AM(dx)};
  if (g->c % vw == 0 && g->sh == g->kh && g->sw == g->kw && g->pt == 0 && g->pl == 0 &&
      (int64_t)g->oh * g->kh <= g->h && (int64_t)g->ow * g->kw <= g->w) {
    /* disjoint windows: one work-item per window */
    if ((int64_t)g->oh * g->kh < g->h || (int64_t)g->ow * g->kw < g->w) CT_TRY(ctb_fill(ctx, dt, n, 0.0, dx));
    int64_t windows = (int64_t)g->n * g->oh * g->ow * (g->c / vw);
    return run(ctx, "nn", dt, "max_pool_grad_disjoint_vec", args, 4, round_up(ctx, windows), ctx->group);
  }
  if (g->c % vw == 0) return run(ctx, "nn", dt, "max_pool_grad_vec", args, 4, round_up(ctx, n / vw), ctx->group);
  return run(ctx, "nn", dt, "max_pool_grad", args, 4, round_up(ctx, n), ctx->group);
}

ct_status ctb_max_pool_gradgrad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                                const ct_buffer *gg, ct_buffer *out) {
  int64_t n = (int64_t)g->n * g->oh * g->ow * g->c;
  CT_TRY(check_n(ctx, n));
  cl_int16 gw = window_arg(g);
  arg args[] = {A(gw), AM(x), AM(gg), AM(out)};
  return run(ctx, "nn", dt, "max_pool_gradgrad", args, 4, round_up(ctx, n), ctx->group);
}

ct_status ctb_avg_pool_grad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *dy, ct_buffer *dx) {
  int64_t n = (int64_t)g->n * g->h * g->w * g->c;
  CT_TRY(check_n(ctx, n));
  cl_int16 gw = window_arg(g);
  arg args[] = {A(gw), AM(dy), AM(dx)};
  return run(ctx, "nn", dt, "avg_pool_grad", args, 3, round_up(ctx, n), ctx->group);
}

ct_status ctb_pad_nhwc(ct_context *ctx, ct_dtype dt, int64_t n, int64_t h, int64_t w, int64_t c, int64_t hp,
                       int64_t wp, int64_t top, int64_t left, const ct_buffer *x, ct_buffer *y) {
  int64_t total = n * hp * wp * c;
  CT_TRY(check_n(ctx, total));
  if (total == 0) return CT_OK;
  int a[8] = {(int)n, (int)h, (int)w, (int)c, (int)hp, (int)wp, (int)top, (int)left};
  arg args[] = {A(a[0]), A(a[1]), A(a[2]), A(a[3]), A(a[4]), A(a[5]), A(a[6]), A(a[7]), AM(x), AM(y)};
  size_t local = 64; /* a row per item */
  ctb_local_size(ctx, 1, &local);
  return run(ctx, "nn", dt, "pad_nhwc", args, 10, ((size_t)(n * hp) + local - 1) / local * local, local);
}

ct_status ctb_bias_add(ct_context *ctx, ct_dtype dt, int64_t M, int64_t C, const ct_buffer *x, const ct_buffer *b,
                       ct_buffer *y) {
  CT_TRY(check_n(ctx, M * C));
  int m = (int)M, c = (int)C;
  arg args[] = {A(m), A(c), AM(x), AM(b), AM(y)};
  size_t l0 = 1;
  while (l0 < (size_t)C && l0 < 64) l0 *= 2;
  return run2d(ctx, dt, "bias_add", args, 5, C, M, l0 >= 64 ? 1 : 64 / l0);
}

ct_status ctb_bias_add_grad(ct_context *ctx, ct_dtype dt, int64_t M, int64_t C, const ct_buffer *dy, ct_buffer *db) {
  CT_TRY(check_n(ctx, M * C));
  int parts = M < 64 ? (int)M : 64;
  if (parts < 1) return ctb_fill(ctx, dt, C, 0.0, db);
  int m = (int)M, c = (int)C;
  ct_buffer *part = db;
  if (parts > 1) CT_TRY(ctb_alloc(ctx, (size_t)(parts * C) * ct_dtype_size(dt), &part));
  arg args[] = {A(m), A(c), A(parts), AM(dy), AM(part)};
  int vw = vec_width(dt);
  ct_status s = C % vw == 0 ? run2d(ctx, dt, "bias_add_grad_vec", args, 5, C / vw, parts, 1)
                            : run2d(ctx, dt, "bias_add_grad", args, 5, C, parts, 1);
  if (s == CT_OK && parts > 1) s = ctb_reduce(ctx, CTB_RSUM, dt, 1, parts, C, part, db);
  if (part != db) ctb_release(part);
  return s;
}

/* A kernel argument of the element type T of a float program. */
typedef union {
  float f;
  double d;
} targ;
static arg targ_of(ct_dtype dt, targ *slot, double v) {
  if (dt == CT_FLOAT64) {
    slot->d = v;
    return (arg){sizeof(double), &slot->d};
  }
  slot->f = (float)v;
  return (arg){sizeof(float), &slot->f};
}

ct_status ctb_dropout(ct_context *ctx, ct_dtype dt, int64_t n, uint64_t seed, double rate, const ct_buffer *x,
                      ct_buffer *y) {
  CT_TRY(check_n(ctx, n));
  int nn = (int)n;
  cl_uint lo = (cl_uint)seed, hi = (cl_uint)(seed >> 32);
  double th = rate * 4294967296.0;
  cl_uint thr = th >= 4294967295.0 ? 4294967295u : (cl_uint)th;
  targ sc;
  arg args[] = {A(nn), A(lo), A(hi), A(thr), targ_of(dt, &sc, rate < 1 ? 1.0 / (1.0 - rate) : 0.0), AM(x), AM(y)};
  return run(ctx, "nn", dt, "dropout", args, 7, round_up(ctx, n), ctx->group);
}

ct_status ctb_softmax_xent(ct_context *ctx, ct_dtype dt, int64_t rows, int64_t C, const ct_buffer *logits,
                           const ct_buffer *labels, ct_buffer *loss) {
  CT_TRY(check_n(ctx, rows * C));
  int r = (int)rows, c = (int)C;
  arg args[] = {A(r), A(c), AM(logits), AM(labels), AM(loss)};
  return run(ctx, "nn", dt, "softmax_xent", args, 5, round_up(ctx, rows), ctx->group);
}

ct_status ctb_softmax_xent_grad(ct_context *ctx, ct_dtype dt, int64_t rows, int64_t C, const ct_buffer *logits,
                                const ct_buffer *labels, const ct_buffer *dy, ct_buffer *dx) {
  CT_TRY(check_n(ctx, rows * C));
  int r = (int)rows, c = (int)C;
  arg args[] = {A(r), A(c), AM(logits), AM(labels), AM(dy), AM(dx)};
  return run(ctx, "nn", dt, "softmax_xent_grad", args, 6, round_up(ctx, rows), ctx->group);
}

ct_status ctb_optimizer_step(ct_context *ctx, ct_dtype dt, const ctb_opt_step *o, int64_t n, const ct_buffer *scale,
                             const ct_buffer *p_in, ct_buffer *p_out, const ct_buffer *g, ct_buffer *s1,
                             ct_buffer *s2) {
  CT_TRY(check_n(ctx, n));
  if (n == 0) return CT_OK;
  int nn = (int)n, has_scale = scale != NULL, nesterov = o->nesterov, decoupled = o->decoupled;
  const ct_buffer *sc = scale ? scale : g; /* any valid buffer when unused */
  targ t[8];
  switch (o->kind) {
    case CTB_OPT_SGD: {
      arg args[] = {A(nn), targ_of(dt, &t[0], o->lr), targ_of(dt, &t[1], o->weight_decay), A(has_scale), AM(sc),
                    AM(p_in), AM(p_out), AM(g)};
      return run(ctx, "nn", dt, "opt_sgd", args, 8, round_up(ctx, n), ctx->group);
    }
    case CTB_OPT_MOMENTUM: {
      arg args[] = {A(nn),        targ_of(dt, &t[0], o->lr), targ_of(dt, &t[1], o->weight_decay),
                    targ_of(dt, &t[2], o->momentum), A(nesterov), A(has_scale), AM(sc), AM(p_in), AM(p_out), AM(g),
                    AM(s1)};
      return run(ctx, "nn", dt, "opt_momentum", args, 11, round_up(ctx, n), ctx->group);
    }
    case CTB_OPT_ADAM: {
      arg args[] = {A(nn),
                    targ_of(dt, &t[0], o->lr),
                    targ_of(dt, &t[1], o->weight_decay),
                    targ_of(dt, &t[2], o->beta1),
                    targ_of(dt, &t[3], o->beta2),
                    targ_of(dt, &t[4], o->epsilon),
                    targ_of(dt, &t[5], o->bc1),
                    targ_of(dt, &t[6], o->bc2),
                    A(decoupled),
                    A(has_scale),
                    AM(sc),
                    AM(p_in),
                    AM(p_out),
                    AM(g),
                    AM(s1),
                    AM(s2)};
      return run(ctx, "nn", dt, "opt_adam", args, 16, round_up(ctx, n), ctx->group);
    }
  }
  return ct__error(ctx, CT_ERR_INTERNAL, "unknown optimizer kind %d", (int)o->kind);
}
