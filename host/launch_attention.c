/* launch_attention.c — the launches of the fused attention kernels (kernels/attention.cl): one
 * work-group of AT_GROUP (64) work-items per (batch-head, block of 64 query or key rows), the
 * other operand 32 rows at a time (in local memory, except on CPU devices); the head sizes are
 * build options. Through
 * ctb_enqueue (enqueue.c). Nothing here waits. */
#include "ct_host.h"
#include <stdlib.h>
#include <string.h>

#define AT_GROUP 64
#define AT_BLOCK 32
#define AT_MAX_HEAD 256 /* the most features per head that the work-items hold in private rows */

/* the local memory of the largest kernel (attention_dkv) */
static size_t local_bytes(ct_dtype dt, int64_t d, int64_t dv) {
  return (size_t)(AT_BLOCK * (d + dv) + 2 * AT_BLOCK) * ct_dtype_size(dt);
}

bool ctb_attention_fits(const ct_context *ctx, ct_dtype dt, int64_t d, int64_t dv) {
  if (dt != CT_FLOAT32 && !(dt == CT_FLOAT64 && ctx->info.fp64)) return false;
  if (d < 1 || dv < 1 || d > AT_MAX_HEAD || dv > AT_MAX_HEAD) return false;
  if (ctx->info.max_work_group_size < AT_GROUP || ctx->max_items[0] < AT_GROUP) return false;
  return local_bytes(dt, d, dv) <= ctx->info.local_mem_bytes / 2;
}

static ct_status check_fits(ct_context *ctx, ct_dtype dt, int64_t d, int64_t dv) {
  if (!ctb_attention_fits(ctx, dt, d, dv))
    return ct__error(ctx, CT_ERR_UNSUPPORTED,
                     "fused attention: %s heads of %lld and %lld features do not fit the kernels on device \"%s\"",
                     ct_dtype_name(dt), (long long)d, (long long)dv, ctx->info.name);
  return CT_OK;
}

/* The blocks of the other operand go through local memory except on CPU devices (AT_LOCAL=0: read
 * in place; there local memory is ordinary memory and the barriers cost more than they save).
 * CLTAPE_TEST_ATTENTION_LOCAL=1 takes local memory on any device (a testing aid). */
static bool use_local(const ct_context *ctx) {
  const char *e = ct__getenv("CLTAPE_TEST_ATTENTION_LOCAL");
  return ctx->info.type != CT_DEVICE_CPU || (e && strcmp(e, "1") == 0);
}

/* the build options: the head sizes, local memory or not, and the index width */
static void defines(const ct_context *ctx, char *buf, size_t cap, bool w, int64_t d, int64_t dv) {
  snprintf(buf, cap, "-DAT_D=%lld -DAT_DV=%lld -DAT_LOCAL=%d%s%s", (long long)d, (long long)dv, use_local(ctx) ? 1 : 0,
           w ? " " : "", CTB_IDX_DEFS(w));
}

/* the largest index of a launch: every operand's elements, the saved rows after o */
static bool wide(const ct_context *ctx, int64_t bh, int64_t tq, int64_t tk, int64_t d, int64_t dv) {
  int64_t m = bh * tq * (dv + 1);
  if (bh * tq * d > m) m = bh * tq * d;
  if (bh * tk * (d + dv) > m) m = bh * tk * (d + dv);
  return ctb_wide(ctx, m + AT_GROUP * (d > dv ? d : dv));
}

/* the scale as a T argument */
typedef union {
  cl_float f;
  cl_double d;
} scale_arg;
static ctb_arg scale_of(ct_dtype dt, scale_arg *slot, double scale) {
  if (dt == CT_FLOAT64) {
    slot->d = scale;
    return (ctb_arg){sizeof(cl_double), &slot->d};
  }
  slot->f = (cl_float)scale;
  return (ctb_arg){sizeof(cl_float), &slot->f};
}

ct_status ctb_attention_forward(ct_context *ctx, ct_dtype dt, int64_t bh, int64_t tq, int64_t tk, int64_t d, int64_t dv,
                                bool causal, double scale, const ct_buffer *q, const ct_buffer *k, const ct_buffer *v,
                                ct_buffer *o) {
  CT_TRY(check_fits(ctx, dt, d, dv));
  if (bh <= 0 || tq <= 0 || tk <= 0) return CT_OK;
  bool w = wide(ctx, bh, tq, tk, d, dv);
  char defs[96];
  defines(ctx, defs, sizeof defs, w, d, dv);
  ctb_iarg atq, atk, alo;
  scale_arg sc;
  cl_int c = causal ? 1 : 0;
  ctb_arg args[] = {ctb_idx_arg(w, &atq, tq), ctb_idx_arg(w, &atk, tk), CTB_ARG(c), scale_of(dt, &sc, scale),
                    CTB_MEM(q), CTB_MEM(k), CTB_MEM(v), CTB_MEM(o), ctb_idx_arg(w, &alo, bh * tq * dv)};
  size_t local = AT_GROUP, global = (size_t)(bh * ((tq + AT_GROUP - 1) / AT_GROUP)) * AT_GROUP;
  cl_kernel kn;
  CT_TRY(ctb_kernel_opts(ctx, "attention", dt, defs, "attention_fwd", &kn));
  return CTB_ENQUEUE(ctx, kn, "attention_fwd", args, 1, &global, &local);
}

ct_status ctb_attention_backward(ct_context *ctx, ct_dtype dt, int64_t bh, int64_t tq, int64_t tk, int64_t d,
                                 int64_t dv, bool causal, double scale, const ct_buffer *q, const ct_buffer *k,
                                 const ct_buffer *v, const ct_buffer *o, const ct_buffer *dout, ct_buffer *g) {
  CT_TRY(check_fits(ctx, dt, d, dv));
  if (bh <= 0 || tq <= 0 || tk <= 0) return CT_OK;
  bool w = wide(ctx, bh, tq, tk, d, dv);
  char defs[96];
  defines(ctx, defs, sizeof defs, w, d, dv);
  ct_buffer *delta = NULL;
  CT_TRY(ctb_alloc(ctx, (size_t)(bh * tq) * ct_dtype_size(dt), &delta));
  ctb_iarg arows, atq, atk, alo, agk, agv;
  scale_arg sc;
  cl_int c = causal ? 1 : 0;
  cl_kernel kn;
  /* delta = rowsum(dO o) */
  ctb_arg dargs[] = {ctb_idx_arg(w, &arows, bh * tq), CTB_MEM(o), CTB_MEM(dout), CTB_MEM(delta)};
  ct_status s = CTB_RUN(ctx, "attention", dt, defs, "attention_delta", dargs, ctb_round_up(ctx, bh * tq), ctx->group);
  ctb_arg args[] = {ctb_idx_arg(w, &atq, tq), ctb_idx_arg(w, &atk, tk), CTB_ARG(c), scale_of(dt, &sc, scale),
                    CTB_MEM(q), CTB_MEM(k), CTB_MEM(v), CTB_MEM(o), ctb_idx_arg(w, &alo, bh * tq * dv),
                    CTB_MEM(dout), CTB_MEM(delta), CTB_MEM(g), ctb_idx_arg(w, &agk, bh * tq * d),
                    ctb_idx_arg(w, &agv, bh * (tq + tk) * d)};
  size_t local = AT_GROUP, global = (size_t)(bh * ((tk + AT_GROUP - 1) / AT_GROUP)) * AT_GROUP;
  if (s == CT_OK) s = ctb_kernel_opts(ctx, "attention", dt, defs, "attention_dkv", &kn);
  if (s == CT_OK) s = CTB_ENQUEUE(ctx, kn, "attention_dkv", args, 1, &global, &local);
  ctb_arg qargs[12];
  memcpy(qargs, args, sizeof qargs); /* the same but the offsets: dq at g */
  global = (size_t)(bh * ((tq + AT_GROUP - 1) / AT_GROUP)) * AT_GROUP;
  if (s == CT_OK) s = ctb_kernel_opts(ctx, "attention", dt, defs, "attention_dq", &kn);
  if (s == CT_OK) s = CTB_ENQUEUE(ctx, kn, "attention_dq", qargs, 1, &global, &local);
  ctb_release(delta); /* in-order queue: reuse waits for the kernels above */
  return s;
}
