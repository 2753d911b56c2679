/* launch.c — kernel launches for the core's ops: their arguments and NDRange sizes (through
 * ctb_enqueue, enqueue.c); the layer library's are in launch_nn.c. Nothing here waits. */
#include "ct_host.h"
#include <string.h>

/* A geometry as the kernels take it (CT_GEOM_ARGS in kernels/prelude.cl): rank, count, then the
 * extents and each operand's strides as int8 vectors. `args` receives CT_GEOM_NARGS entries
 * pointing into `v`. */
typedef struct {
  cl_int rank, n;
  cl_int8 shape, st[3];
} geom_args;
#define CT_GEOM_NARGS 6
static void geom_arg_list(const ctb_geom *g, geom_args *v, ctb_arg *args) {
  memset(v, 0, sizeof *v);
  v->rank = g->rank;
  v->n = g->n;
  for (int d = 0; d < CT_MAX_RANK; ++d) {
    v->shape.s[d] = g->shape[d];
    for (int o = 0; o < 3; ++o) v->st[o].s[d] = g->st[o][d];
  }
  args[0] = CTB_ARG(v->rank);
  args[1] = CTB_ARG(v->n);
  args[2] = CTB_ARG(v->shape);
  for (int o = 0; o < 3; ++o) args[3 + o] = CTB_ARG(v->st[o]);
}

/* A kernel that takes a geometry (CT_GEOM_ARGS) and then `tail`: one work-item per element. */
static ct_status run_geom(ct_context *ctx, const char *family, ct_dtype dt, const char *kname, const ctb_geom *g,
                          const ctb_arg *tail, int ntail) {
  geom_args v;
  ctb_arg args[CT_GEOM_NARGS + 4];
  geom_arg_list(g, &v, args);
  for (int i = 0; i < ntail && i < 4; ++i) args[CT_GEOM_NARGS + i] = tail[i];
  return ctb_run(ctx, family, dt, kname, args, CT_GEOM_NARGS + ntail, ctb_round_up(g->n), CTB_LS);
}
#define RUN_GEOM(ctx, family, dt, kname, g, tail) run_geom(ctx, family, dt, kname, g, tail, CTB_NARGS(tail))

ct_status ctb_unary(ct_context *ctx, const char *kname, ct_dtype dt, int64_t n, const ct_buffer *x, ct_buffer *y) {
  CT_TRY(ctb_check_n(ctx, n));
  char name[64];
  snprintf(name, sizeof name, "u_%s", kname);
  int nn = (int)n;
  ctb_arg args[] = {CTB_ARG(nn), CTB_MEM(x), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, name, args, ctb_round_up(n), CTB_LS);
}

ct_status ctb_binary(ct_context *ctx, const char *kname, ct_dtype dt, ctb_bmode mode, const ctb_geom *g, int64_t n,
                     const ct_buffer *a, const ct_buffer *b, ct_buffer *y) {
  CT_TRY(ctb_check_n(ctx, n));
  static const char suffix[] = {'c', 's', 'l', 'g'};
  char name[64];
  snprintf(name, sizeof name, "b_%s_%c", kname, suffix[mode]);
  int nn = (int)n;
  if (mode == CTB_GENERAL) {
    ctb_arg tail[] = {CTB_MEM(a), CTB_MEM(b), CTB_MEM(y)};
    return RUN_GEOM(ctx, "elementwise", dt, name, g, tail);
  }
  ctb_arg args[] = {CTB_ARG(nn), CTB_MEM(a), CTB_MEM(b), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, name, args, ctb_round_up(n), CTB_LS);
}

ct_status ctb_where(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *c, const ct_buffer *a,
                    const ct_buffer *b, ct_buffer *y) {
  ctb_arg tail[] = {CTB_MEM(c), CTB_MEM(a), CTB_MEM(b), CTB_MEM(y)};
  return RUN_GEOM(ctx, "elementwise", dt, "where_g", g, tail);
}

ct_status ctb_cast(ct_context *ctx, ct_dtype from, ct_dtype to, int64_t n, const ct_buffer *x, ct_buffer *y) {
  CT_TRY(ctb_check_n(ctx, n));
  char name[64];
  snprintf(name, sizeof name, "cast_to_%s", ct_dtype_name(to));
  int nn = (int)n;
  ctb_arg args[] = {CTB_ARG(nn), CTB_MEM(x), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", from, name, args, ctb_round_up(n), CTB_LS);
}

ct_status ctb_fill(ct_context *ctx, ct_dtype dt, int64_t n, double value, ct_buffer *y) {
  CT_TRY(ctb_check_n(ctx, n));
  int nn = (int)n;
  float f = (float)value;
  double d = value;
  int32_t i = dt == CT_INT32 ? (int32_t)value : 0; /* in range: ct_fill checked it */
  ctb_arg v = dt == CT_FLOAT32 ? CTB_ARG(f) : dt == CT_FLOAT64 ? CTB_ARG(d) : CTB_ARG(i);
  ctb_arg args[] = {CTB_ARG(nn), v, CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, "fill", args, ctb_round_up(n), CTB_LS);
}

ct_status ctb_iota(ct_context *ctx, ct_dtype dt, int64_t n, double start, double delta, ct_buffer *y) {
  CT_TRY(ctb_check_n(ctx, n));
  int nn = (int)n;
  float fs = (float)start, fd = (float)delta; /* devices without fp64 take float bounds */
  ctb_arg args[] = {CTB_ARG(nn), ctx->info.fp64 ? CTB_ARG(start) : CTB_ARG(fs), ctx->info.fp64 ? CTB_ARG(delta) : CTB_ARG(fd), CTB_MEM(y)};
  return CTB_RUN(ctx, "elementwise", dt, "iota", args, ctb_round_up(n), CTB_LS);
}

ct_status ctb_reduce(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R, int64_t inner,
                     const ct_buffer *x, ct_buffer *y) {
  static const char *names[] = {"sum", "max", "min", "prod", "argmax", "argmin"};
  CT_TRY(ctb_check_n(ctx, outer * R * inner));
  char name[64];
  int o = (int)outer, r = (int)R, in = (int)inner;
  bool rows = inner == 1 && R >= 4 * CTB_LS && kind < CTB_RARGMAX;
  snprintf(name, sizeof name, "r_%s_%s", names[kind], rows ? "rows" : "cols");
  if (rows && outer < 2 * (int64_t)ctx->info.compute_units) {
    /* one work-group per row would leave cores idle: each row is split into parts (a power of two
     * that divides it, each part still long), reduced part by part, then the parts of each row */
    int64_t parts = 1;
    for (int64_t c = 64; c >= 2 && parts == 1; c /= 2)
      if (R % c == 0 && R / c >= 16 * CTB_LS) parts = c;
    if (parts > 1) {
      ct_buffer *part = NULL;
      CT_TRY(ctb_alloc(ctx, (size_t)(outer * parts) * ct_dtype_size(dt), &part));
      ct_status s = ctb_reduce(ctx, kind, dt, outer * parts, R / parts, 1, x, part);
      if (s == CT_OK) s = ctb_reduce(ctx, kind, dt, outer, parts, 1, part, y);
      ctb_release(part); /* in-order queue: reuse waits for the kernels above */
      return s;
    }
  }
  if (rows) {
    ctb_arg args[] = {CTB_ARG(r), CTB_MEM(x), CTB_MEM(y)};
    return CTB_RUN(ctx, "reduce", dt, name, args, (size_t)outer * CTB_LS, CTB_LS);
  }
  ctb_arg args[] = {CTB_ARG(o), CTB_ARG(r), CTB_ARG(in), CTB_MEM(x), CTB_MEM(y)};
  return CTB_RUN(ctx, "reduce", dt, name, args, ctb_round_up(outer * inner), CTB_LS);
}

ct_status ctb_copy_strided(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *src, int64_t soff,
                           ct_buffer *dst, int64_t doff) {
  cl_int so = (cl_int)soff, dof = (cl_int)doff;
  ctb_arg tail[] = {CTB_MEM(src), CTB_ARG(so), CTB_MEM(dst), CTB_ARG(dof)};
  return RUN_GEOM(ctx, "movement", dt, "copy_strided", g, tail);
}

ct_status ctb_gather(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t axis_n, int64_t K, int64_t inner,
                     const ct_buffer *x, const ct_buffer *idx, ct_buffer *y) {
  CT_TRY(ctb_check_n(ctx, outer * K * inner));
  CT_TRY(ctb_check_n(ctx, outer * axis_n * inner));
  int o = (int)outer, N = (int)axis_n, k = (int)K, in = (int)inner;
  ctb_arg args[] = {CTB_ARG(o), CTB_ARG(N), CTB_ARG(k), CTB_ARG(in), CTB_MEM(x), CTB_MEM(idx), CTB_MEM(y)};
  return CTB_RUN(ctx, "movement", dt, "gather", args, ctb_round_up(outer * K * inner), CTB_LS);
}

ct_status ctb_gather_grad(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t axis_n, int64_t K, int64_t inner,
                          const ct_buffer *g, const ct_buffer *idx, ct_buffer *dx) {
  CT_TRY(ctb_check_n(ctx, outer * axis_n * inner));
  int o = (int)outer, N = (int)axis_n, k = (int)K, in = (int)inner;
  ctb_arg args[] = {CTB_ARG(o), CTB_ARG(N), CTB_ARG(k), CTB_ARG(in), CTB_MEM(g), CTB_MEM(idx), CTB_MEM(dx)};
  return CTB_RUN(ctx, "movement", dt, "gather_grad", args, ctb_round_up(outer * axis_n * inner), CTB_LS);
}

ct_status ctb_one_hot(ct_context *ctx, ct_dtype dt, int64_t n, int depth, const ct_buffer *idx, ct_buffer *y) {
  CT_TRY(ctb_check_n(ctx, n * depth));
  int nn = (int)n;
  ctb_arg args[] = {CTB_ARG(nn), CTB_ARG(depth), CTB_MEM(idx), CTB_MEM(y)};
  return CTB_RUN(ctx, "movement", dt, "one_hot", args, ctb_round_up(n * depth), CTB_LS);
}

ct_status ctb_custom(ct_context *ctx, const char *source, const char *kernel, ct_dtype dt, int64_t n_out, ct_buffer *out,
                     int n_in, const ct_buffer *const *in, const int *ranks, const int64_t (*shapes)[CT_MAX_RANK]) {
  CT_TRY(ctb_check_n(ctx, n_out));
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
  const size_t global = ctb_round_up(n_out), local = CTB_LS;
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
