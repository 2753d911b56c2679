/* launch.c — kernel launches for the core's ops: their arguments and NDRange sizes (through
 * ctb_enqueue, enqueue.c); the layer library's are in launch_nn.c. Nothing here waits. */
#include "ct_host.h"
#include <string.h>

/* ---- index width: ctb_wide (ct_host.h) picks the int or long build of each launch --------------- */
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
  ctb_iarg n;
  union {
    cl_int8 i;
    cl_long8 l;
  } shape, st[3];
} geom_args;
#define CT_GEOM_NARGS 6
static void geom_arg_list(const ctb_geom *g, bool w, geom_args *v, ctb_arg *args) {
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
  args[0] = CTB_ARG(v->rank);
  args[1] = ctb_idx_arg(w, &v->n, g->n);
  args[2] = (ctb_arg){vsz, &v->shape};
  for (int o = 0; o < 3; ++o) args[3 + o] = (ctb_arg){vsz, &v->st[o]};
}


/* A kernel that takes a geometry (CT_GEOM_ARGS) and then `tail`: one work-item per element, the
 * int or long build as w says. */
static ct_status run_geom(ct_context *ctx, const char *family, ct_dtype dt, const char *kname, const ctb_geom *g,
                          bool w, const ctb_arg *tail, int ntail) {
  geom_args v;
  ctb_arg args[CT_GEOM_NARGS + 4];
  geom_arg_list(g, w, &v, args);
  for (int i = 0; i < ntail && i < 4; ++i) args[CT_GEOM_NARGS + i] = tail[i];
  return ctb_run(ctx, family, dt, CTB_IDX_DEFS(w), kname, args, CT_GEOM_NARGS + ntail, ctb_round_up(ctx, g->n), ctx->group);
}
#define RUN_GEOM(ctx, family, dt, kname, g, w, tail) run_geom(ctx, family, dt, kname, g, w, tail, CTB_NARGS(tail))

ct_status ctb_unary(ct_context *ctx, const char *kname, ct_dtype dt, int64_t n, const ct_buffer *x, ct_buffer *y) {
  char name[64];
  snprintf(name, sizeof name, "u_%s", kname);
  bool w = ctb_wide(ctx, n);
  ctb_iarg nn;
  ctb_arg args[] = {ctb_idx_arg(w, &nn, n), CTB_MEM(x), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, CTB_IDX_DEFS(w), name, args, ctb_round_up(ctx, n), ctx->group);
}

ct_status ctb_binary(ct_context *ctx, const char *kname, ct_dtype dt, ctb_bmode mode, const ctb_geom *g, int64_t n,
                     const ct_buffer *a, const ct_buffer *b, ct_buffer *y) {
  static const char suffix[] = {'c', 's', 'l', 'g'};
  char name[64];
  snprintf(name, sizeof name, "b_%s_%c", kname, suffix[mode]);
  if (mode == CTB_GENERAL) {
    bool w = ctb_wide(ctx, geom_extent(g, 0, 0));
    ctb_arg tail[] = {CTB_MEM(a), CTB_MEM(b), CTB_MEM(y)};
    return RUN_GEOM(ctx, "elementwise", dt, name, g, w, tail);
  }
  bool w = ctb_wide(ctx, n);
  ctb_iarg nn;
  ctb_arg args[] = {ctb_idx_arg(w, &nn, n), CTB_MEM(a), CTB_MEM(b), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, CTB_IDX_DEFS(w), name, args, ctb_round_up(ctx, n), ctx->group);
}

ct_status ctb_where(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *c, const ct_buffer *a,
                    const ct_buffer *b, ct_buffer *y) {
  bool w = ctb_wide(ctx, geom_extent(g, 0, 0));
  ctb_arg tail[] = {CTB_MEM(c), CTB_MEM(a), CTB_MEM(b), CTB_MEM(y)};
  return RUN_GEOM(ctx, "elementwise", dt, "where_g", g, w, tail);
}

ct_status ctb_cast(ct_context *ctx, ct_dtype from, ct_dtype to, int64_t n, const ct_buffer *x, ct_buffer *y) {
  char name[64];
  snprintf(name, sizeof name, "cast_to_%s", ct_dtype_name(to));
  bool w = ctb_wide(ctx, n);
  ctb_iarg nn;
  ctb_arg args[] = {ctb_idx_arg(w, &nn, n), CTB_MEM(x), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", from, CTB_IDX_DEFS(w), name, args, ctb_round_up(ctx, n), ctx->group);
}

ct_status ctb_fill(ct_context *ctx, ct_dtype dt, int64_t n, double value, ct_buffer *y) {
  bool w = ctb_wide(ctx, n);
  ctb_iarg nn;
  float f = (float)value;
  double d = value;
  int32_t i = dt == CT_INT32 ? (int32_t)value : 0; /* in range: ct_fill checked it */
  ctb_arg v = dt == CT_FLOAT32 ? CTB_ARG(f) : dt == CT_FLOAT64 ? CTB_ARG(d) : CTB_ARG(i);
  ctb_arg args[] = {ctb_idx_arg(w, &nn, n), v, CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, CTB_IDX_DEFS(w), "fill", args, ctb_round_up(ctx, n), ctx->group);
}

ct_status ctb_iota(ct_context *ctx, ct_dtype dt, int64_t n, double start, double delta, ct_buffer *y) {
  bool w = ctb_wide(ctx, n);
  ctb_iarg nn;
  float fs = (float)start, fd = (float)delta; /* devices without fp64 take float bounds */
  ctb_arg args[] = {ctb_idx_arg(w, &nn, n), ctx->info.fp64 ? CTB_ARG(start) : CTB_ARG(fs), ctx->info.fp64 ? CTB_ARG(delta) : CTB_ARG(fd), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, CTB_IDX_DEFS(w), "iota", args, ctb_round_up(ctx, n), ctx->group);
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
  bool w = ctb_wide(ctx, outer * R * inner);
  ctb_iarg o, r, in;
  if (rows) {
    ctb_arg args[] = {ctb_idx_arg(w, &r, R), CTB_MEM(x), CTB_MEM(y)};
    return CTB_RUN(ctx, "reduce", dt, CTB_IDX_DEFS(w), name, args, (size_t)outer * ctx->group, ctx->group);
  }
  ctb_arg args[] = {ctb_idx_arg(w, &o, outer), ctb_idx_arg(w, &r, R), ctb_idx_arg(w, &in, inner), CTB_MEM(x), CTB_MEM(y)};
  return CTB_RUN(ctx, "reduce", dt, CTB_IDX_DEFS(w), name, args, ctb_round_up(ctx, outer * inner), ctx->group);
}

ct_status ctb_copy_strided(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *src, int64_t soff,
                           ct_buffer *dst, int64_t doff) {
  bool w = ctb_wide(ctx, geom_extent(g, soff, doff));
  ctb_iarg so, dof;
  ctb_arg tail[] = {CTB_MEM(src), ctb_idx_arg(w, &so, soff), CTB_MEM(dst), ctb_idx_arg(w, &dof, doff)};
  return RUN_GEOM(ctx, "movement", dt, "copy_strided", g, w, tail);
}

/* gather and its gradient: counts o, N, K, inner; the launch covers `items` outputs */
static ct_status gather_launch(ct_context *ctx, ct_dtype dt, const char *kname, int64_t outer, int64_t axis_n,
                               int64_t K, int64_t inner, int64_t items, const ct_buffer *src, const ct_buffer *idx,
                               ct_buffer *dst) {
  int64_t in_x = outer * axis_n * inner, in_y = outer * K * inner;
  bool w = ctb_wide(ctx, in_x > in_y ? in_x : in_y);
  ctb_iarg o, N, k, in;
  ctb_arg args[] = {ctb_idx_arg(w, &o, outer), ctb_idx_arg(w, &N, axis_n), ctb_idx_arg(w, &k, K), ctb_idx_arg(w, &in, inner),
                CTB_MEM(src),              CTB_MEM(idx),               CTB_MEM(dst)};
  return CTB_RUN(ctx, "movement", dt, CTB_IDX_DEFS(w), kname, args, ctb_round_up(ctx, items), ctx->group);
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
  bool w = ctb_wide(ctx, n * depth);
  ctb_iarg nn;
  ctb_arg args[] = {ctb_idx_arg(w, &nn, n), CTB_ARG(depth), CTB_MEM(idx), CTB_MEM(y)};
  return CTB_RUN(ctx, "movement", dt, CTB_IDX_DEFS(w), "one_hot", args, ctb_round_up(ctx, n * depth), ctx->group);
}

ct_status ctb_custom(ct_context *ctx, const char *source, const char *kernel, ct_dtype dt, int64_t n_out, ct_buffer *out,
                     int n_in, const ct_buffer *const *in, const int *ranks, const int64_t (*shapes)[CT_MAX_RANK]) {
  /* the kernel's arguments are the user's contract (int n_out, int8 shapes; cltape.h): it indexes
   * in int, so no operand may pass 2^31 - 1 elements */
  for (int i = -1; i < n_in; ++i) {
    int64_t n = i < 0 ? n_out : 1;
    for (int d = 0; i >= 0 && d < ranks[i]; ++d) n *= shapes[i][d];
    if (n > INT32_MAX)
      return ct__error(ctx, CT_ERR_UNSUPPORTED,
                       "custom op kernel %s: %s has %lld elements; custom kernels take int counts and shapes "
                       "(at most 2^31-1 elements)",
                       kernel, i < 0 ? "the output" : "an input", (long long)n);
  }
  cl_kernel k;
  CT_TRY(ctb_kernel_custom(ctx, source, kernel, dt, &k));
  int nn = (int)n_out;
  ctb_arg args[2 + 3 * 8];
  cl_int8 sh[8];
  int na = 0;
  args[na++] = CTB_ARG(nn);
  args[na++] = CTB_MEM(out);
  for (int i = 0; i < n_in; ++i) {
    memset(&sh[i], 0, sizeof sh[i]);
    for (int d = 0; d < ranks[i] && d < 8; ++d) sh[i].s[d] = (cl_int)shapes[i][d];
    args[na++] = CTB_MEM(in[i]);
    args[na++] = CTB_ARG(ranks[i]);
    args[na++] = CTB_ARG(sh[i]);
  }
  const size_t global = ctb_round_up(ctx, n_out), local = ctx->group;
  return ctb_enqueue(ctx, k, kernel, args, na, 1, &global, &local);
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
