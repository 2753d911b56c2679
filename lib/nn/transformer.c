/* transformer.c — the pieces of a transformer: layer normalization, embedding lookup and scaled
 * dot-product attention (ops built from rows of the op table, so a tape records those rows and
 * their gradients are the rows' gradients), and the layers made of them: LayerNorm, Embedding,
 * MultiHeadAttention and a pre-LN decoder block. */
#include "nn_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CHECK(fn)                                                  \
  do {                                                                 \
    if (!out) return ct__error(NULL, CT_ERR_NULL, fn ": out is NULL"); \
    *out = NULL;                                                       \
  } while (0)

static ct_status check_float(const ct_tensor *t, const char *fn, const char *what) {
  if (!ct__is_float(t->dtype))
    return ct__error(t->ctx, CT_ERR_DTYPE, "%s: %s is %s, not a float dtype", fn, what, ct_dtype_name(t->dtype));
  return CT_OK;
}

/* ---- ops ------------------------------------------------------------------------------------ */
static ct_status check_affine(const ct_tensor *x, const ct_tensor *p, const char *what) {
  if (!p) return CT_OK;
  CT_TRY(ct__check(p, "ct_layer_norm"));
  if (p->ctx != x->ctx) return ct__error(x->ctx, CT_ERR_CONTEXT, "ct_layer_norm: %s belongs to another context", what);
  if (p->dtype != x->dtype)
    return ct__error(x->ctx, CT_ERR_DTYPE, "ct_layer_norm: %s is %s, x is %s", what, ct_dtype_name(p->dtype),
                     ct_dtype_name(x->dtype));
  if (p->rank != 1 || p->shape[0] != x->shape[x->rank - 1]) {
    char s1[96];
    ct__shape_str(p->rank, p->shape, s1, sizeof s1);
    return ct__error(x->ctx, CT_ERR_SHAPE, "ct_layer_norm: %s has shape %s, not [%lld] (the last axis of x)", what, s1,
                     (long long)x->shape[x->rank - 1]);
  }
  return CT_OK;
}

ct_status ct_layer_norm(const ct_tensor *x, const ct_tensor *gamma, const ct_tensor *beta, double epsilon,
                        ct_tensor **out) {
  OUT_CHECK("ct_layer_norm");
  CT_TRY(ct__check(x, "ct_layer_norm"));
  CT_TRY(check_float(x, "ct_layer_norm", "x"));
  if (x->rank < 1) return ct__error(x->ctx, CT_ERR_SHAPE, "ct_layer_norm: x is a scalar; it needs a last axis");
  if (!(epsilon >= 0) || isinf(epsilon))
    return ct__error(x->ctx, CT_ERR_INVALID, "ct_layer_norm: epsilon %g is not a finite value >= 0", epsilon);
  CT_TRY(check_affine(x, gamma, "gamma"));
  CT_TRY(check_affine(x, beta, "beta"));
  /* y = (x - mean) / sqrt(var + epsilon) * gamma + beta, the statistics over the last axis */
  int last = -1;
  ct_tensor *mean = NULL, *xc = NULL, *sq = NULL, *var = NULL, *ve = NULL, *r = NULL, *y = NULL, *g = NULL;
  ct_status s = ct_mean(x, &last, 1, true, &mean);
  if (s == CT_OK) s = ct_sub(x, mean, &xc);
  if (s == CT_OK) s = ct_square(xc, &sq);
  if (s == CT_OK) s = ct_mean(sq, &last, 1, true, &var);
  if (s == CT_OK) s = ct_add_scalar(var, epsilon, &ve);
  if (s == CT_OK) s = ct_rsqrt(ve, &r);
  if (s == CT_OK) s = ct_mul(xc, r, &y);
  if (s == CT_OK && gamma) {
    s = ct_mul(y, gamma, &g);
    ct_tensor_free(y);
    y = g;
    g = NULL;
  }
  if (s == CT_OK && beta) {
    s = ct_add(y, beta, &g);
    ct_tensor_free(y);
    y = g;
    g = NULL;
  }
  if (s == CT_OK) *out = y;
  else ct_tensor_free(y);
  DROP(mean, xc, sq, var, ve, r);
  return s;
}

ct_status ct_embedding_lookup(const ct_tensor *table, const ct_tensor *ids, ct_tensor **out) {
  OUT_CHECK("ct_embedding_lookup");
  CT_TRY(ct__check(table, "ct_embedding_lookup"));
  CT_TRY(ct__check(ids, "ct_embedding_lookup"));
  if (ids->ctx != table->ctx)
    return ct__error(table->ctx, CT_ERR_CONTEXT, "ct_embedding_lookup: ids belong to another context");
  if (table->rank != 2) {
    char s1[96];
    ct__shape_str(table->rank, table->shape, s1, sizeof s1);
    return ct__error(table->ctx, CT_ERR_SHAPE, "ct_embedding_lookup: the table has shape %s, not [vocabulary, dim]", s1);
  }
  if (ids->dtype != CT_INT32)
    return ct__error(table->ctx, CT_ERR_DTYPE, "ct_embedding_lookup: ids are %s, not int32", ct_dtype_name(ids->dtype));
  return ct_gather(table, ids, 0, out);
}

static ct_status check_attention(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v, bool causal) {
  const char *fn = "ct_scaled_dot_product_attention";
  CT_TRY(ct__check(q, fn));
  CT_TRY(ct__check(k, fn));
  CT_TRY(ct__check(v, fn));
  if (k->ctx != q->ctx || v->ctx != q->ctx)
    return ct__error(q->ctx, CT_ERR_CONTEXT, "%s: q, k and v belong to different contexts", fn);
  CT_TRY(check_float(q, fn, "q"));
  if (k->dtype != q->dtype || v->dtype != q->dtype)
    return ct__error(q->ctx, CT_ERR_DTYPE, "%s: q, k and v are %s, %s and %s, not one dtype", fn,
                     ct_dtype_name(q->dtype), ct_dtype_name(k->dtype), ct_dtype_name(v->dtype));
  if (q->rank < 2 || k->rank < 2 || v->rank < 2)
    return ct__error(q->ctx, CT_ERR_SHAPE, "%s: q, k and v need rank >= 2 ([..., positions, features])", fn);
  int64_t tq = q->shape[q->rank - 2], dq = q->shape[q->rank - 1];
  int64_t tk = k->shape[k->rank - 2], dk = k->shape[k->rank - 1], tv = v->shape[v->rank - 2];
  if (dq != dk)
    return ct__error(q->ctx, CT_ERR_SHAPE, "%s: q has %lld features, k %lld", fn, (long long)dq, (long long)dk);
  if (tk != tv)
    return ct__error(q->ctx, CT_ERR_SHAPE, "%s: k has %lld positions, v %lld", fn, (long long)tk, (long long)tv);
  if (causal && tq > tk)
    return ct__error(q->ctx, CT_ERR_SHAPE, "%s: a causal mask needs no more queries (%lld) than keys (%lld)", fn,
                     (long long)tq, (long long)tk);
  if (dq < 1) return ct__error(q->ctx, CT_ERR_SHAPE, "%s: q and k have no features", fn);
  return CT_OK;
}

/* [tq, tk]: 0 where query i may see key j (j <= i + tk - tq), a large negative number elsewhere */
static ct_status causal_bias(ct_context *ctx, ct_dtype dtype, int64_t tq, int64_t tk, ct_tensor **out) {
  int64_t n;
  if (!ct__mul_ok(tq, tk, &n) || n > ((int64_t)1 << 31))
    return ct__error(ctx, CT_ERR_SHAPE, "ct_scaled_dot_product_attention: a %lld x %lld mask is too large",
                     (long long)tq, (long long)tk);
  float *m = malloc((size_t)(n ? n : 1) * sizeof *m);
  if (!m) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_scaled_dot_product_attention: the causal mask");
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) m[i * tk + j] = j <= i + tk - tq ? 0.0f : -1e9f;
  int64_t shape[2] = {tq, tk};
  ct_tensor *f = NULL;
  ct_status s = ct_tensor_from_data(ctx, CT_FLOAT32, 2, shape, m, &f);
  free(m);
  if (s != CT_OK) return s;
  if (dtype == CT_FLOAT32) {
    *out = f;
    return CT_OK;
  }
  s = ct_cast(f, dtype, out);
  ct_tensor_free(f);
  return s;
}

ct_status ct__attention_probs(const ct_tensor *q, const ct_tensor *k, bool causal, double scale, ct_tensor **out) {
  int64_t tq = q->shape[q->rank - 2], tk = k->shape[k->rank - 2];
  ct_tensor *sc = NULL, *scaled = NULL, *mask = NULL, *masked = NULL;
  ct_status s = ct_matmul(q, k, false, true, &sc);
  if (s == CT_OK) s = ct_mul_scalar(sc, scale, &scaled);
  if (s == CT_OK && causal) {
    s = causal_bias(q->ctx, q->dtype, tq, tk, &mask);
    if (s == CT_OK) s = ct_add(scaled, mask, &masked);
  }
  if (s == CT_OK) s = ct_softmax(masked ? masked : scaled, -1, out);
  DROP(sc, scaled, mask, masked);
  return s;
}

ct_status ct_scaled_dot_product_attention(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v, bool causal,
                                          ct_tensor **out) {
  OUT_CHECK("ct_scaled_dot_product_attention");
  CT_TRY(check_attention(q, k, v, causal));
  /* softmax(q k^T / sqrt(d) + mask) v: one fused row (lib/nn/attention.c) or made of rows */
  double scale = 1.0 / sqrt((double)q->shape[q->rank - 1]);
  bool fused = false;
  CT_TRY(ct__attention_choose(q, k, v, causal, &fused));
  if (fused) return ct__attention_fused(q, k, v, causal, scale, out);
  ct_tensor *p = NULL;
  ct_status s = ct__attention_probs(q, k, causal, scale, &p);
  if (s == CT_OK) s = ct_matmul(p, v, false, false, out);
  ct_tensor_free(p);
  return s;
}

/* ---- layers --------------------------------------------------------------------------------- */
static ct_status expect_last(const ct_module *m, const ct_tensor *x, int min_rank, int64_t features) {
  if (x->rank < min_rank || x->shape[x->rank - 1] != features) {
    char s1[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    return ct__error(m->ctx, CT_ERR_SHAPE, "layer %s expects inputs of rank >= %d with %lld features, got %s", m->name,
                     min_rank, (long long)features, s1);
  }
  return CT_OK;
}

/* x must be [batch, positions, d_model] */
static ct_status expect_sequence(const ct_module *m, const ct_tensor *x, int64_t d_model) {
  if (x->rank != 3 || x->shape[2] != d_model) {
    char s1[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    return ct__error(m->ctx, CT_ERR_SHAPE, "layer %s expects inputs [batch, positions, %lld], got %s", m->name,
                     (long long)d_model, s1);
  }
  return CT_OK;
}

/* ---- LayerNorm ---- */
typedef struct {
  int64_t features;
  double epsilon;
} ln_state;

static ct_status ln_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)training;
  const ln_state *st = m->state;
  CT_TRY(expect_last(m, x, 1, st->features));
  return ct_layer_norm(x, p[0], p[1], st->epsilon, out);
}

static void ln_describe(const ct_module *m, char *buf, size_t cap) {
  const ln_state *st = m->state;
  snprintf(buf, cap, "%lld, epsilon %g", (long long)st->features, st->epsilon);
}

static const ct_module_vtable ln_vt = {"LayerNorm", "layer_normalization", ln_forward, ln_describe, NULL, free};

ct_status ct_layer_norm_create(ct_context *ctx, int64_t features, double epsilon, const ct_layer_options *opts,
                               ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_layer_norm_create: out is NULL");
  *out = NULL;
  ct_layer_options o = opts ? *opts : ct_layer_default_options();
  CT_TRY(ct__check_context(ctx, "ct_layer_norm_create"));
  CT_TRY(ct__layer_check_options(ctx, &o, "ct_layer_norm_create"));
  if (features < 1)
    return ct__error(ctx, CT_ERR_INVALID, "ct_layer_norm_create: features (%lld) must be >= 1", (long long)features);
  if (!(epsilon >= 0) || isinf(epsilon))
    return ct__error(ctx, CT_ERR_INVALID, "ct_layer_norm_create: epsilon %g is not a finite value >= 0", epsilon);
  ln_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_layer_norm_create");
  *st = (ln_state){features, epsilon};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &ln_vt, o.name, st, &m));
  int64_t shape[1] = {features};
  ct_status s = ct__layer_add_variable(m, &o, "gamma", CT_INIT_ONES, 1, shape);
  if (s == CT_OK) s = ct__layer_add_variable(m, &o, "beta", CT_INIT_ZEROS, 1, shape);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}

/* ---- Embedding ---- */
typedef struct {
  int64_t vocab, dim;
} emb_state;

static ct_status emb_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)training;
  if (x->dtype != CT_INT32)
    return ct__error(m->ctx, CT_ERR_DTYPE, "layer %s takes int32 ids, got %s", m->name, ct_dtype_name(x->dtype));
  return ct_embedding_lookup(p[0], x, out);
}

static void emb_describe(const ct_module *m, char *buf, size_t cap) {
  const emb_state *st = m->state;
  snprintf(buf, cap, "%lld ids -> %lld", (long long)st->vocab, (long long)st->dim);
}

static const ct_module_vtable emb_vt = {"Embedding", "embedding", emb_forward, emb_describe, NULL, free};

ct_status ct_embedding_create(ct_context *ctx, int64_t vocabulary, int64_t dim, const ct_layer_options *opts,
                              ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_embedding_create: out is NULL");
  *out = NULL;
  ct_layer_options o = opts ? *opts : ct_layer_default_options();
  CT_TRY(ct__check_context(ctx, "ct_embedding_create"));
  CT_TRY(ct__layer_check_options(ctx, &o, "ct_embedding_create"));
  if (vocabulary < 1 || dim < 1)
    return ct__error(ctx, CT_ERR_INVALID, "ct_embedding_create: vocabulary (%lld) and dim (%lld) must be >= 1",
                     (long long)vocabulary, (long long)dim);
  emb_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_embedding_create");
  *st = (emb_state){vocabulary, dim};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &emb_vt, o.name, st, &m));
  int64_t shape[2] = {vocabulary, dim};
  ct_status s = ct__layer_add_variable(m, &o, "embeddings", o.kernel_initializer, 2, shape);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}

/* ---- MultiHeadAttention ---- */
typedef struct {
  int64_t d_model, heads;
  bool causal;
} mha_state;

static ct_status mha_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)training;
  const mha_state *st = m->state;
  CT_TRY(expect_sequence(m, x, st->d_model));
  int64_t b = x->shape[0], t = x->shape[1], h = st->heads, dh = st->d_model / st->heads;
  /* one product gives q, k and v: [b, t, 3 d] -> [b, t, 3, h, dh] -> [3, b, h, t, dh] */
  ct_tensor *qkv = NULL, *qkvb = NULL, *r5 = NULL, *tr = NULL, *parts[3] = {0}, *qkvh[3] = {0}, *att = NULL,
            *att_t = NULL, *merged = NULL, *proj = NULL;
  int64_t s5[5] = {b, t, 3, h, dh}, s4[4] = {b, h, t, dh}, s3[3] = {b, t, st->d_model}, ones[3] = {1, 1, 1};
  int perm5[5] = {2, 0, 3, 1, 4}, perm4[4] = {0, 2, 1, 3};
  ct_status s = ct_matmul(x, p[0], false, false, &qkv);
  if (s == CT_OK) s = ct_bias_add(qkv, p[1], &qkvb);
  if (s == CT_OK) s = ct_reshape(qkvb, 5, s5, &r5);
  if (s == CT_OK) s = ct_transpose(r5, perm5, &tr);
  if (s == CT_OK) s = ct_split(tr, ones, 3, 0, parts);
  for (int i = 0; i < 3 && s == CT_OK; ++i) s = ct_reshape(parts[i], 4, s4, &qkvh[i]);
  if (s == CT_OK) s = ct_scaled_dot_product_attention(qkvh[0], qkvh[1], qkvh[2], st->causal, &att);
  if (s == CT_OK) s = ct_transpose(att, perm4, &att_t);
  if (s == CT_OK) s = ct_reshape(att_t, 3, s3, &merged);
  if (s == CT_OK) s = ct_matmul(merged, p[2], false, false, &proj);
  if (s == CT_OK) s = ct_bias_add(proj, p[3], out);
  DROP(qkv, qkvb, r5, tr, parts[0], parts[1], parts[2], qkvh[0], qkvh[1], qkvh[2], att, att_t, merged, proj);
  return s;
}

static void mha_describe(const ct_module *m, char *buf, size_t cap) {
  const mha_state *st = m->state;
  snprintf(buf, cap, "d_model %lld, %lld heads%s", (long long)st->d_model, (long long)st->heads,
           st->causal ? ", causal" : "");
}

static const ct_module_vtable mha_vt = {"MultiHeadAttention", "multi_head_attention", mha_forward, mha_describe, NULL,
                                        free};

ct_status ct_multi_head_attention_create(ct_context *ctx, int64_t d_model, int64_t heads, bool causal,
                                         const ct_layer_options *opts, ct_module **out) {
  const char *fn = "ct_multi_head_attention_create";
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  ct_layer_options o = opts ? *opts : ct_layer_default_options();
  CT_TRY(ct__check_context(ctx, fn));
  CT_TRY(ct__layer_check_options(ctx, &o, fn));
  if (d_model < 1 || heads < 1 || d_model % heads != 0)
    return ct__error(ctx, CT_ERR_INVALID, "%s: d_model (%lld) must be a positive multiple of heads (%lld)", fn,
                     (long long)d_model, (long long)heads);
  mha_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "%s", fn);
  *st = (mha_state){d_model, heads, causal};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &mha_vt, o.name, st, &m));
  int64_t kq[2] = {d_model, 3 * d_model}, bq[1] = {3 * d_model}, ko[2] = {d_model, d_model}, bo[1] = {d_model};
  ct_status s = ct__layer_add_variable(m, &o, "qkv_kernel", o.kernel_initializer, 2, kq);
  if (s == CT_OK) s = ct__layer_add_variable(m, &o, "qkv_bias", o.bias_initializer, 1, bq);
  if (s == CT_OK) s = ct__layer_add_variable(m, &o, "output_kernel", o.kernel_initializer, 2, ko);
  if (s == CT_OK) s = ct__layer_add_variable(m, &o, "output_bias", o.bias_initializer, 1, bo);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}

/* ---- TransformerBlock: x + attention(ln1(x)), then + mlp(ln2(.)) ---- */
typedef struct {
  int64_t d_model, heads, hidden;
  bool causal;
} block_state;

/* x + child_b(child_a(x)) (child_c after child_b when given) */
static ct_status residual(ct_module *m, int a, int b, int c, const ct_tensor *x, bool training, ct_tensor **out) {
  ct_tensor *h1 = NULL, *h2 = NULL, *h3 = NULL;
  ct_status s = ct_module_call(m->children[a], x, training, &h1);
  if (s == CT_OK) s = ct_module_call(m->children[b], h1, training, &h2);
  if (s == CT_OK && c >= 0) s = ct_module_call(m->children[c], h2, training, &h3);
  if (s == CT_OK) s = ct_add(x, h3 ? h3 : h2, out);
  DROP(h1, h2, h3);
  return s;
}

static ct_status block_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)p;
  const block_state *st = m->state;
  CT_TRY(expect_sequence(m, x, st->d_model));
  ct_tensor *h = NULL;
  ct_status s = residual(m, 0, 1, -1, x, training, &h); /* ln1, attention */
  if (s == CT_OK) s = residual(m, 2, 3, 4, h, training, out); /* ln2, mlp_in (gelu), mlp_out */
  ct_tensor_free(h);
  return s;
}

static void block_describe(const ct_module *m, char *buf, size_t cap) {
  const block_state *st = m->state;
  snprintf(buf, cap, "d_model %lld, %lld heads, mlp %lld%s", (long long)st->d_model, (long long)st->heads,
           (long long)st->hidden, st->causal ? ", causal" : "");
}

static const ct_module_vtable block_vt = {"TransformerBlock", "transformer_block", block_forward, block_describe, NULL,
                                          free};

ct_status ct_transformer_block_create(ct_context *ctx, int64_t d_model, int64_t heads, int64_t mlp_hidden, bool causal,
                                      const ct_layer_options *opts, ct_module **out) {
  const char *fn = "ct_transformer_block_create";
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  ct_layer_options o = opts ? *opts : ct_layer_default_options();
  CT_TRY(ct__check_context(ctx, fn));
  CT_TRY(ct__layer_check_options(ctx, &o, fn));
  if (d_model < 1 || heads < 1 || d_model % heads != 0 || mlp_hidden < 1)
    return ct__error(ctx, CT_ERR_INVALID,
                     "%s: d_model (%lld) must be a positive multiple of heads (%lld), mlp_hidden (%lld) >= 1", fn,
                     (long long)d_model, (long long)heads, (long long)mlp_hidden);
  block_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "%s", fn);
  *st = (block_state){d_model, heads, mlp_hidden, causal};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &block_vt, o.name, st, &m));
  /* the children's names are fixed ("ln1", ...) and prefixed with the block's; their seeds come
   * from the block's seed (or name), so that two blocks start from different weights */
  uint64_t base = o.seed ? o.seed : ct__hash_str(m->name);
  ct_layer_options c = o;
  ct_module *kids[5] = {0};
  ct_status s = CT_OK;
  c.name = "ln1", c.seed = ct__mix64(base, 1);
  s = ct_layer_norm_create(ctx, d_model, 1e-5, &c, &kids[0]);
  c.name = "attention", c.seed = ct__mix64(base, 2);
  if (s == CT_OK) s = ct_multi_head_attention_create(ctx, d_model, heads, causal, &c, &kids[1]);
  c.name = "ln2", c.seed = ct__mix64(base, 3);
  if (s == CT_OK) s = ct_layer_norm_create(ctx, d_model, 1e-5, &c, &kids[2]);
  c.name = "mlp_in", c.seed = ct__mix64(base, 4);
  if (s == CT_OK) s = ct_dense_create(ctx, d_model, mlp_hidden, CT_ACTIVATION_GELU, &c, &kids[3]);
  c.name = "mlp_out", c.seed = ct__mix64(base, 5);
  if (s == CT_OK) s = ct_dense_create(ctx, mlp_hidden, d_model, CT_ACTIVATION_NONE, &c, &kids[4]);
  for (int i = 0; i < 5 && s == CT_OK; ++i) s = ct_module_add(m, kids[i]);
  for (int i = 0; i < 5; ++i) ct_module_free(kids[i]);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}
