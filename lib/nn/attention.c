/* attention.c — fused scaled dot-product attention: the rows FusedAttention and
 * FusedAttentionGrad (lib/nn/ops_nn.def; kernels/attention.cl through host/launch_attention.c),
 * the gradient of the first, and the choice ct_scaled_dot_product_attention makes between the
 * fused row and the composed ops (CLTAPE_ATTENTION; docs/performance.md, "Attention").
 *
 * FusedAttention: q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv] (the same leading axes) ->
 * [..., Tq, dv]. Its storage holds, after those elements, the logsumexp of each of the rows of the
 * softmax (the gradient reads them instead of Tq x Tk probabilities). FusedAttentionGrad takes q,
 * k, v, that output and dy and gives dq, dk and dv one after the other in a vector. It runs only
 * when no tape records the gradient computation; when one does (second derivatives, forward
 * mode), the gradient is made of rows, which have gradients of their own, so the gradient row
 * is not differentiable by design (NOGRAD). */
#include "nn_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t bh, tq, tk, d, dv;
} att_geom;

/* a failure: reported under fn's name, or (fn NULL: a question, not an error) only returned */
#define FAIL(code, ...) return fn ? ct__error(ctx, code, __VA_ARGS__) : code

/* q, k, v of one float dtype, rank >= 2 with the same leading axes, matching feature and position
 * counts, fused kernels that take the head sizes */
static ct_status geometry(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v, bool causal, const char *fn,
                          att_geom *gm) {
  ct_context *ctx = q->ctx;
  if (q->dtype != CT_FLOAT32 && q->dtype != CT_FLOAT64)
    FAIL(CT_ERR_DTYPE, "%s: the fused attention takes float32 or float64, not %s", fn,
                     ct_dtype_name(q->dtype));
  if (k->dtype != q->dtype || v->dtype != q->dtype)
    FAIL(CT_ERR_DTYPE, "%s: q, k and v are %s, %s and %s, not one dtype", fn, ct_dtype_name(q->dtype),
                     ct_dtype_name(k->dtype), ct_dtype_name(v->dtype));
  int r = q->rank;
  if (r < 2 || k->rank != r || v->rank != r)
    FAIL(CT_ERR_SHAPE, "%s: the fused attention needs q, k and v of one rank >= 2", fn);
  gm->bh = 1;
  for (int i = 0; i < r - 2; ++i) {
    if (k->shape[i] != q->shape[i] || v->shape[i] != q->shape[i])
      FAIL(CT_ERR_SHAPE, "%s: the fused attention does not broadcast: axis %d is %lld, %lld and %lld",
                       fn, i, (long long)q->shape[i], (long long)k->shape[i], (long long)v->shape[i]);
    gm->bh *= q->shape[i];
  }
  gm->tq = q->shape[r - 2], gm->d = q->shape[r - 1], gm->tk = k->shape[r - 2], gm->dv = v->shape[r - 1];
  if (k->shape[r - 1] != gm->d || v->shape[r - 2] != gm->tk)
    FAIL(CT_ERR_SHAPE, "%s: q has %lld features and k %lld; k has %lld positions and v %lld", fn,
                     (long long)gm->d, (long long)k->shape[r - 1], (long long)gm->tk, (long long)v->shape[r - 2]);
  if (causal && gm->tq > gm->tk)
    FAIL(CT_ERR_SHAPE, "%s: a causal mask needs no more queries (%lld) than keys (%lld)", fn,
                     (long long)gm->tq, (long long)gm->tk);
  if (gm->tk < 1 && gm->tq > 0)
    FAIL(CT_ERR_SHAPE, "%s: the fused attention needs at least one key", fn);
  if (!ctb_attention_fits(ctx, q->dtype, gm->d, gm->dv))
    FAIL(CT_ERR_UNSUPPORTED,
                     "%s: the fused attention kernels do not fit this device for %s heads of %lld and %lld features "
                     "(they need groups of 64 work-items, at most 256 features, and local memory for 32 rows of k "
                     "and v)",
                     fn, ct_dtype_name(q->dtype), (long long)gm->d, (long long)gm->dv);
  return CT_OK;
}

CT_FORWARD(ct__fwd_attention) {
  (void)op;
  (void)n_in;
  const ct_tensor *q = in[0], *k = in[1], *v = in[2];
  att_geom gm = {0};
  CT_TRY(geometry(q, k, v, at->attention.causal, "FusedAttention", &gm));
  int64_t shape[CT_MAX_RANK];
  memcpy(shape, q->shape, sizeof(int64_t) * (size_t)q->rank);
  shape[q->rank - 1] = gm.dv;
  /* the output, then the rows' logsumexp */
  int64_t n = gm.bh * gm.tq * (gm.dv + 1);
  ct_buffer *b = NULL;
  CT_TRY(ctb_alloc(q->ctx, (size_t)(n ? n : 1) * ct_dtype_size(q->dtype), &b));
  CT_TRY(ct__tensor_struct(q->ctx, q->dtype, q->rank, shape, b, out));
  return ctb_attention_forward(q->ctx, q->dtype, gm.bh, gm.tq, gm.tk, gm.d, gm.dv, at->attention.causal,
                               at->attention.scale, q->buf, k->buf, v->buf, (*out)->buf);
}

/* in: q, k, v, o (FusedAttention's output, with its logsumexp), dy -> [dq, dk, dv] flattened */
CT_FORWARD(ct__fwd_attention_grad) {
  (void)op;
  (void)n_in;
  const ct_tensor *q = in[0], *k = in[1], *v = in[2], *o = in[3], *dy = in[4];
  att_geom gm;
  CT_TRY(geometry(q, k, v, at->attention.causal, "FusedAttentionGrad", &gm));
  for (int i = 3; i < 5; ++i) {
    const ct_tensor *t = in[i];
    bool ok = t->dtype == q->dtype && t->rank == q->rank && t->shape[t->rank - 1] == gm.dv;
    for (int a = 0; ok && a < q->rank - 1; ++a) ok = t->shape[a] == q->shape[a];
    if (!ok)
      return ct__error(q->ctx, CT_ERR_SHAPE, "FusedAttentionGrad: input %d is not the output's shape and dtype", i);
  }
  int64_t n = gm.bh * ((gm.tq + gm.tk) * gm.d + gm.tk * gm.dv);
  CT_TRY(ct__tensor_new(q->ctx, q->dtype, 1, &n, out));
  return ctb_attention_backward(q->ctx, q->dtype, gm.bh, gm.tq, gm.tk, gm.d, gm.dv, at->attention.causal,
                                at->attention.scale, q->buf, k->buf, v->buf, o->buf, dy->buf, (*out)->buf);
}

/* The gradient made of rows: P recomputed, dP = dy v^T, dS = P (dP - rowsum(dP P)),
 * dq = dS k scale, dk = dS^T q scale, dv = P^T dy. */
static ct_status composed_gradient(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx) {
  const ct_attrs *at = g->e->at;
  double scale = at->attention.scale;
  int axis = -1;
  ct_tensor *p = NULL, *dp = NULL, *t = NULL, *delta = NULL, *u = NULL, *ds = NULL, *a = NULL, *b = NULL;
  ct_status s = ct__attention_probs(IN(0), IN(1), at->attention.causal, scale, &p);
  if (s == CT_OK && (NEED(0) || NEED(1))) {
    s = ct_matmul(dy, IN(2), false, true, &dp);
    if (s == CT_OK) s = ct_mul(dp, p, &t);
    if (s == CT_OK) s = ct_sum(t, &axis, 1, true, &delta);
    if (s == CT_OK) s = ct_sub(dp, delta, &u);
    if (s == CT_OK) s = ct_mul(p, u, &ds);
    if (s == CT_OK && NEED(0)) s = ct_matmul(ds, IN(1), false, false, &a);
    if (s == CT_OK && NEED(0)) s = ct_mul_scalar(a, scale, &dx[0]);
    if (s == CT_OK && NEED(1)) s = ct_matmul(ds, IN(0), true, false, &b);
    if (s == CT_OK && NEED(1)) s = ct_mul_scalar(b, scale, &dx[1]);
  }
  if (s == CT_OK && NEED(2)) s = ct_matmul(p, dy, true, false, &dx[2]);
  DROP(p, dp, t, delta, u, ds, a, b);
  return s;
}

CT_GRADIENT(ct__grad_attention) {
  const ct_tensor *q = IN(0);
  /* a recording tape differentiates the gradient again: rows that have gradients; float16 and
   * bfloat16 calls (widened by ct__run) keep no logsumexp in their narrowed output */
  if (ct__tapes_recording() || q->dtype != OUT->dtype || dy->dtype != q->dtype ||
      (q->dtype != CT_FLOAT32 && q->dtype != CT_FLOAT64))
    return composed_gradient(g, dy, dx);
  const ct_tensor *args[5] = {IN(0), IN(1), IN(2), OUT, dy};
  ct_attrs at = ct__attrs_copy(g->e->at);
  ct_tensor *packed = NULL;
  CT_TRY(ct__run(CT_OP_ATTENTION_GRAD, args, 5, &at, &packed));
  ct_status s = CT_OK;
  int64_t off = 0;
  for (int i = 0; i < 3 && s == CT_OK; ++i) {
    const ct_tensor *x = IN(i);
    int64_t begin = off, end = off + x->size;
    off = end;
    if (!NEED(i)) continue;
    ct_tensor *part = NULL;
    s = ct_slice(packed, &begin, &end, NULL, &part);
    if (s == CT_OK) s = ct_reshape(part, x->rank, x->shape, &dx[i]);
    ct_tensor_free(part);
  }
  ct_tensor_free(packed);
  return s;
}

/* ---- the choice ------------------------------------------------------------------------------ */
/* CLTAPE_ATTENTION: "fused", "composed", or anything else (unset): by the rule measured in
 * docs/performance.md */
static int forced_path(void) {
  const char *e = ct__getenv("CLTAPE_ATTENTION");
  if (!e) return 0;
  if (strcmp(e, "fused") == 0) return 1;
  if (strcmp(e, "composed") == 0) return -1;
  return 0;
}

/* Where the fused row measured faster than the composed ops (docs/performance.md, "Attention"):
 * nowhere yet. On PoCL (CPU) the composed path's tuned products win at every shape measured,
 * char_lm's included; no other device has been measured, so the composed path stays the default
 * there too until one is. CLTAPE_ATTENTION=fused runs the fused row anywhere it fits. */
static bool fused_pays(const ct_context *ctx, int64_t tq, int64_t tk, int64_t d, int64_t dv, bool causal) {
  (void)ctx, (void)tq, (void)tk, (void)d, (void)dv, (void)causal;
  return false;
}

ct_status ct__attention_choose(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v, bool causal, bool *fused) {
  *fused = false;
  int forced = forced_path();
  if (forced < 0) return CT_OK;
  att_geom gm;
  if (forced > 0) { /* fused, or an error that says why not */
    CT_TRY(geometry(q, k, v, causal, "ct_scaled_dot_product_attention (CLTAPE_ATTENTION=fused)", &gm));
    *fused = true;
    return CT_OK;
  }
  if (q->dtype != CT_FLOAT32 && q->dtype != CT_FLOAT64) return CT_OK;
  if (geometry(q, k, v, causal, NULL, &gm) != CT_OK) return CT_OK;
  *fused = fused_pays(q->ctx, gm.tq, gm.tk, gm.d, gm.dv, causal);
  return CT_OK;
}

ct_status ct__attention_fused(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v, bool causal, double scale,
                              ct_tensor **out) {
  ct_attrs at = ct__attrs(CT_AT_ATTENTION);
  at.attention.causal = causal;
  at.attention.scale = scale;
  const ct_tensor *in[3] = {q, k, v};
  return ct__run(CT_OP_ATTENTION, in, 3, &at, out);
}
