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


/* A kernel that takes a geometry (CT_GEOM_ARGS) and then `tail` (up to CTB_GEOM_TAIL arguments):
 * `items` work-items (run_geom: one per element), the int or long build as w says. */
#define CTB_GEOM_TAIL 7
static ct_status run_geom_items(ct_context *ctx, const char *family, ct_dtype dt, const char *kname, const ctb_geom *g,
                                bool w, const ctb_arg *tail, int ntail, int64_t items) {
  geom_args v;
  ctb_arg args[CT_GEOM_NARGS + CTB_GEOM_TAIL];
  geom_arg_list(g, w, &v, args);
  for (int i = 0; i < ntail && i < CTB_GEOM_TAIL; ++i) args[CT_GEOM_NARGS + i] = tail[i];
  return ctb_run(ctx, family, dt, CTB_IDX_DEFS(w), kname, args, CT_GEOM_NARGS + ntail, ctb_round_up(ctx, items),
                 ctx->group);
}
static ct_status run_geom(ct_context *ctx, const char *family, ct_dtype dt, const char *kname, const ctb_geom *g,
                          bool w, const ctb_arg *tail, int ntail) {
  return run_geom_items(ctx, family, dt, kname, g, w, tail, ntail, g->n);
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

/* The arguments a fused expression takes after the launch's own: rank, shape, the strided leaves'
 * strides, the leaf buffers, the constants (kernels built by lib/fuse.c). */
typedef union {
  cl_int8 i;
  cl_long8 l;
} fused_vec;
typedef union {
  cl_float f;
  cl_double d;
  cl_int i;
  cl_half h; /* float16 programs that compute in half (host/half.c) */
} fused_const;
typedef struct {
  cl_int rank;
  fused_vec shape, st[FZ_ARGS_MAX];
  fused_const c[FZ_ARGS_MAX];
} fused_store;

static int fused_args(const ctb_fused_launch *l, ct_dtype dt, bool w, fused_store *fs, ctb_arg *args) {
  int na = 0;
  fs->rank = l->rank;
  memset(&fs->shape, 0, sizeof fs->shape);
  for (int d = 0; d < l->rank; ++d) {
    if (w) fs->shape.l.s[d] = l->shape[d];
    else fs->shape.i.s[d] = (cl_int)l->shape[d];
  }
  const size_t vsz = w ? sizeof(cl_long8) : sizeof(cl_int8);
  args[na++] = CTB_ARG(fs->rank);
  args[na++] = (ctb_arg){vsz, &fs->shape};
  for (int j = 0; j < l->n_strided; ++j) {
    memset(&fs->st[j], 0, sizeof fs->st[j]);
    for (int d = 0; d < l->rank; ++d) {
      if (w) fs->st[j].l.s[d] = l->st[j][d];
      else fs->st[j].i.s[d] = (cl_int)l->st[j][d];
    }
    args[na++] = (ctb_arg){vsz, &fs->st[j]};
  }
  for (int j = 0; j < l->n_leaves; ++j) args[na++] = CTB_MEM(l->leaves[j]);
  for (int j = 0; j < l->n_consts; ++j) {
    if (dt == CT_FLOAT32) {
      fs->c[j].f = (cl_float)l->consts[j];
      args[na++] = CTB_ARG(fs->c[j].f);
    } else if (dt == CT_FLOAT64) {
      fs->c[j].d = l->consts[j];
      args[na++] = CTB_ARG(fs->c[j].d);
    } else if (dt == CT_FLOAT16) {
      fs->c[j].h = ct__f16_from_double(l->consts[j]);
      args[na++] = CTB_ARG(fs->c[j].h);
    } else {
      fs->c[j].i = (cl_int)l->consts[j];
      args[na++] = CTB_ARG(fs->c[j].i);
    }
  }
  return na;
}

int ctb_fused_lanes(const ct_context *ctx) { return ctx->reduce_vw; }

ct_status ctb_fused(ct_context *ctx, const char *source, ct_dtype dt, const ctb_fused_launch *l, uint64_t key, int weight,
                    int after, bool *ran) {
  *ran = false;
  if (2 + l->n_strided + l->n_leaves + l->n_consts > FZ_ARGS_MAX)
    return ct__error(ctx, CT_ERR_INTERNAL, "a fused kernel of %d arguments", 4 + l->n_strided + l->n_leaves + l->n_consts);
  const int64_t lanes = l->vector ? ctb_fused_lanes(ctx) : 1;
  /* in vector form a work-item's first index is lanes times its id, up to a group past n */
  bool w = ctb_wide(ctx, lanes > 1 ? l->n + lanes * (int64_t)ctx->group : l->n);
  if (!ctb_fused_ready(ctx, source, dt, w, key, weight, after)) return CT_OK;
  cl_kernel k = NULL;
  CT_TRY(ctb_kernel_fused(ctx, source, "fused", dt, w, &k));
  ctb_arg args[FZ_ARGS_MAX + 2];
  fused_store fs;
  ctb_iarg nn;
  int na = 0;
  args[na++] = ctb_idx_arg(w, &nn, l->n);
  na += fused_args(l, dt, w, &fs, args + na);
  args[na++] = CTB_MEM(l->out);
  const size_t global = ctb_round_up(ctx, (l->n + lanes - 1) / lanes), local = ctx->group;
  CT_TRY(ctb_enqueue(ctx, k, "fused", args, na, 1, &global, &local));
  *ran = true;
  return CT_OK;
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
  return CTB_RUN(ctx, "cast", from, CTB_IDX_DEFS(w), name, args, ctb_round_up(ctx, n), ctx->group);
}

ct_status ctb_fill(ct_context *ctx, ct_dtype dt, int64_t n, double value, ct_buffer *y) {
  bool w = ctb_wide(ctx, n);
  ctb_iarg nn;
  float f = (float)value;
  double d = value;
  int32_t i = dt == CT_INT32 ? (int32_t)value : 0; /* in range: ct_fill checked it */
  int64_t l = dt == CT_INT64 ? (int64_t)value : 0;
  cl_half h = dt == CT_FLOAT16 ? ct__f16_from_double(value) : 0; /* the half build (host/half.c) */
  ctb_arg v = dt == CT_FLOAT32   ? CTB_ARG(f)
              : dt == CT_FLOAT64 ? CTB_ARG(d)
              : dt == CT_INT64   ? CTB_ARG(l)
              : dt == CT_FLOAT16 ? CTB_ARG(h)
                                 : CTB_ARG(i);
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

/* ---- reductions (kernels/reduce.cl) --------------------------------------------------------- */
static const char *const REDUCE_NAMES[] = {"sum", "max", "min", "prod", "argmax", "argmin"};

/* What a reduction stage reads: a buffer, or (the first stage of a fused reduction) an
 * elementwise expression of leaves, computed as it is loaded (kernels/reduce.cl's hook). */
typedef struct {
  const ct_buffer *x;
  const char *source; /* the fused program's text, or NULL */
  const ctb_fused_launch *l;
} red_in;

static ct_status red_kernel(ct_context *ctx, const red_in *in, ct_dtype dt, bool w, const char *name, cl_kernel *k) {
  if (in->source) return ctb_kernel_fused(ctx, in->source, name, dt, w, k);
  return ctb_kernel_opts(ctx, "reduce", dt, CTB_IDX_DEFS(w), name, k);
}

/* args[0, na) are the launch's own; the input's arguments and y follow */
static ct_status red_enqueue(ct_context *ctx, const red_in *in, ct_dtype dt, bool w, const char *name, ctb_arg *args,
                             int na, ct_buffer *y, cl_uint dims, const size_t *global, const size_t *local) {
  cl_kernel k;
  CT_TRY(red_kernel(ctx, in, dt, w, name, &k));
  fused_store fs;
  if (in->source) na += fused_args(in->l, dt, w, &fs, args + na);
  else args[na++] = CTB_MEM(in->x);
  args[na++] = CTB_MEM(y);
  return ctb_enqueue(ctx, k, name, args, na, dims, global, local);
}

/* One cols launch: y[(o*parts + p)*inner + i] reduces rows [p*chunk, (p+1)*chunk) of column
 * (o, i); vectors of CT_RVW columns per work-item where inner allows. */
static ct_status reduce_cols(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R,
                             int64_t inner, int64_t parts, const red_in *x, ct_buffer *y) {
  const int vw = ctx->reduce_vw;
  const bool vec = inner % vw == 0;
  const int64_t chunk = (R + parts - 1) / parts;
  bool w = ctb_wide(ctx, outer * R * inner + chunk * inner);
  char name[64];
  snprintf(name, sizeof name, "r_%s_%s", REDUCE_NAMES[kind], vec ? "colsv" : "cols");
  ctb_iarg o, r, in, ch;
  ctb_arg args[4 + FZ_ARGS_MAX + 1] = {ctb_idx_arg(w, &o, outer), ctb_idx_arg(w, &r, R), ctb_idx_arg(w, &in, inner),
                                       ctb_idx_arg(w, &ch, chunk)};
  const size_t global[2] = {ctb_round_up(ctx, outer * (vec ? inner / vw : inner)), (size_t)parts};
  const size_t local[2] = {ctx->group, 1};
  return red_enqueue(ctx, x, dt, w, name, args, 4, y, 2, global, local);
}

/* Short rows (inner == 1), one per work-item, read in vectors along the row. */
static ct_status reduce_rowv(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R,
                             const red_in *x, ct_buffer *y) {
  bool w = ctb_wide(ctx, outer * R + ctx->reduce_vw);
  char name[64];
  snprintf(name, sizeof name, "r_%s_rowv", REDUCE_NAMES[kind]);
  ctb_iarg o, r;
  ctb_arg args[2 + FZ_ARGS_MAX + 1] = {ctb_idx_arg(w, &o, outer), ctb_idx_arg(w, &r, R)};
  const size_t global = ctb_round_up(ctx, outer), local = ctx->group;
  return red_enqueue(ctx, x, dt, w, name, args, 2, y, 1, &global, &local);
}

/* One rows launch (inner == 1): `groups` work-groups per row, y[o*groups + g] their partials. */
static ct_status reduce_rows(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R,
                             int64_t groups, const red_in *x, ct_buffer *y) {
  const int64_t items = groups * (int64_t)ctx->group, nv = R / ctx->reduce_vw;
  /* CPUs read a block of consecutive vectors per work-item; GPUs stride by the whole range */
  const int64_t per = ctx->reduce_strided ? 0 : (nv + items - 1) / items;
  bool w = ctb_wide(ctx, outer * R + 4 * (items + per) * ctx->reduce_vw);
  char name[64];
  snprintf(name, sizeof name, "r_%s_rows", REDUCE_NAMES[kind]);
  ctb_iarg r, pp;
  ctb_arg args[2 + FZ_ARGS_MAX + 1] = {ctb_idx_arg(w, &r, R), ctb_idx_arg(w, &pp, per)};
  const size_t global[2] = {(size_t)items, (size_t)outer}, local[2] = {ctx->group, 1};
  return red_enqueue(ctx, x, dt, w, name, args, 2, y, 2, global, local);
}

/* Work-groups (or parts of a split launch) that keep every compute unit busy: 4 per unit. */
int64_t ctb_target_groups(const ct_context *ctx) {
  int64_t cu = ctx->info.compute_units ? (int64_t)ctx->info.compute_units : 1;
  return 4 * cu;
}

static ct_status reduce_two_stage(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R,
                                  int64_t inner, const red_in *x, ct_buffer *y);

ct_status ctb_reduce_fused(ct_context *ctx, ctb_reduce_kind kind, const char *source, ct_dtype dt, const ctb_fused_launch *l,
                           int64_t outer, int64_t R, int64_t inner, uint64_t key, int weight, int after, bool *ran) {
  *ran = false;
  if (kind >= CTB_RARGMAX) return CT_OK;
  if (2 + l->n_strided + l->n_leaves + l->n_consts > FZ_ARGS_MAX)
    return ct__error(ctx, CT_ERR_INTERNAL, "a fused reduction of %d arguments", 2 + l->n_strided + l->n_leaves + l->n_consts);
  /* the index width of the first stage's program: as reduce_rows asks for at most */
  bool w = ctb_wide(ctx, outer * R * inner + 8 * (int64_t)ctx->group * ctx->reduce_vw);
  if (!ctb_fused_ready(ctx, source, dt, w, key, weight, after)) return CT_OK;
  red_in in = {.source = source, .l = l};
  CT_TRY(reduce_two_stage(ctx, kind, dt, outer, R, inner, &in, l->out));
  *ran = true;
  return CT_OK;
}

ct_status ctb_reduce(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R, int64_t inner,
                     const ct_buffer *x, ct_buffer *y) {
  if (kind >= CTB_RARGMAX) {
    if (R > INT32_MAX)
      return ct__error(ctx, CT_ERR_UNSUPPORTED, "%s over an axis of %lld elements: the indices are int32",
                       REDUCE_NAMES[kind], (long long)R);
    char name[64];
    snprintf(name, sizeof name, "r_%s_cols", REDUCE_NAMES[kind]);
    bool w = ctb_wide(ctx, outer * R * inner);
    ctb_iarg o, r, in;
    ctb_arg args[] = {ctb_idx_arg(w, &o, outer), ctb_idx_arg(w, &r, R), ctb_idx_arg(w, &in, inner), CTB_MEM(x), CTB_MEM(y)};
    return CTB_RUN(ctx, "reduce", dt, CTB_IDX_DEFS(w), name, args, ctb_round_up(ctx, outer * inner), ctx->group);
  }
  red_in in = {.x = x};
  return reduce_two_stage(ctx, kind, dt, outer, R, inner, &in, y);
}

static ct_status reduce_two_stage(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R,
                                  int64_t inner, const red_in *x, ct_buffer *y) {
  const int64_t LS = (int64_t)ctx->group, target = ctb_target_groups(ctx);
  int64_t parts = 1;
  if (inner == 1 && R >= 4 * LS) {
    /* rows: split each row among groups while the rows alone leave compute units idle, each
     * work-item keeping at least 8 vectors to read */
    if (outer < target) {
      parts = (target + outer - 1) / outer;
      int64_t most = R / (8 * LS * ctx->reduce_vw);
      if (parts > most) parts = most > 1 ? most : 1;
    }
    if (parts == 1) return reduce_rows(ctx, kind, dt, outer, R, 1, x, y);
  } else {
    /* cols: split the reduced axis into parts while the columns fill few groups, each part
     * keeping at least 64 rows; a reduction of fewer than 2^16 elements stays one launch */
    const int64_t cols = outer * (inner % ctx->reduce_vw == 0 ? inner / ctx->reduce_vw : inner);
    const int64_t groups = (cols + LS - 1) / LS;
    if (groups < target && outer * R * inner >= 65536) {
      parts = (target + groups - 1) / groups;
      if (parts > R / 64) parts = R / 64 > 1 ? R / 64 : 1;
    }
    if (parts == 1 && inner == 1 && R >= 2 * ctx->reduce_vw) return reduce_rowv(ctx, kind, dt, outer, R, x, y);
    if (parts == 1) return reduce_cols(ctx, kind, dt, outer, R, inner, 1, x, y);
  }
  ct_buffer *part = NULL;
  CT_TRY(ctb_alloc(ctx, (size_t)(outer * parts * inner) * ct_dtype_size(dt), &part));
  ct_status s = inner == 1 && R >= 4 * LS ? reduce_rows(ctx, kind, dt, outer, R, parts, x, part)
                                          : reduce_cols(ctx, kind, dt, outer, R, inner, parts, x, part);
  /* the partials of each output: rows of `parts` (inner == 1) or columns of them */
  red_in pin = {.x = part};
  if (s == CT_OK) s = parts >= 4 * LS && inner == 1 ? reduce_rows(ctx, kind, dt, outer, parts, 1, &pin, y)
                                                    : reduce_cols(ctx, kind, dt, outer, parts, inner, 1, &pin, y);
  ctb_release(part); /* in-order queue: reuse waits for the kernels above */
  return s;
}

ct_status ctb_copy_strided(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *src, int64_t soff,
                           ct_buffer *dst, int64_t doff) {
  bool w = ctb_wide(ctx, geom_extent(g, soff, doff));
  /* CPUs: runs of up to 32 elements of the innermost axis per work-item, while the work-items fill
   * ctb_target_groups groups (one element where work-items side by side should read side by side:
   * GPUs) */
  const int64_t inner = g->rank > 0 ? g->shape[g->rank - 1] : 1;
  const int64_t enough = ctb_target_groups(ctx) * (int64_t)ctx->group;
  cl_int run = 1;
  if (ctx->info.type == CT_DEVICE_CPU)
    while (run < 32 && inner % (2 * run) == 0 && g->n / (2 * run) >= enough) run *= 2;
  ctb_iarg so, dof, si, di;
  ctb_arg tail[] = {CTB_MEM(src),  ctb_idx_arg(w, &so, soff), CTB_MEM(dst), ctb_idx_arg(w, &dof, doff), CTB_ARG(run),
                    ctb_idx_arg(w, &si, g->rank > 0 ? g->st[0][g->rank - 1] : 0),
                    ctb_idx_arg(w, &di, g->rank > 0 ? g->st[1][g->rank - 1] : 0)};
  return run_geom_items(ctx, "movement", dt, "copy_strided", g, w, tail, CTB_NARGS(tail), g->n / run);
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
  cl_mem m = *ctb_mem_ptr(b);
  CT_TRY(ctb_lazy_status(ctx));
  cl_int err = clEnqueueWriteBuffer(ctx->queue, m, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueWriteBuffer");
}

ct_status ctb_read(ct_context *ctx, const ct_buffer *b, size_t offset, void *dst, size_t bytes) {
  if (bytes == 0) return CT_OK;
  cl_mem m = *ctb_mem_ptr(b);
  CT_TRY(ctb_lazy_status(ctx));
  cl_int err = clEnqueueReadBuffer(ctx->queue, m, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueReadBuffer");
}

ct_status ctb_copy(ct_context *ctx, const ct_buffer *src, size_t src_off, ct_buffer *dst, size_t dst_off, size_t bytes) {
  if (bytes == 0) return CT_OK;
  cl_mem sm = *ctb_mem_ptr(src), dm = *ctb_mem_ptr(dst);
  CT_TRY(ctb_lazy_status(ctx));
  cl_int err = clEnqueueCopyBuffer(ctx->queue, sm, dm, src_off, dst_off, bytes, 0, NULL, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueCopyBuffer");
}
