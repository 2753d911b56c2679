/* Transformer pieces (cltape_nn.h): layer normalization, embedding lookup and scaled dot-product
 * attention against host references; the LayerNorm, Embedding, MultiHeadAttention and
 * TransformerBlock layers: shapes, names, causality (an output at position t does not move when
 * inputs after t do), and their gradients by the checker through ct_module_call_with. */
#include "support.h"
#include "cltape_nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})
/* float64 where the device has it, float32 otherwise (rusticl) */
#define FDT ts_best_float(CTX)
#define TOL (FDT == CT_FLOAT64 ? 1e-12 : 2e-5)

static void setup(void) {
  CTX = ts_ctx();
  ct_reset_module_names();
}
static void teardown(void) {
  ct_context_free(CTX);
  CTX = NULL;
}

#define host_values(n, seed) ts_lcg_values(FDT, (n), (seed))
#define random_tensor(rank, shape, seed, host) ts_lcg_tensor(CTX, FDT, (rank), (shape), (seed), (host))

/* ---- ops against host references ------------------------------------------------------------ */
Test(nn_transformer, layer_norm_matches_the_host, .init = setup, .fini = teardown) {
  double *xv, *gv, *bv;
  ct_tensor *x = random_tensor(3, SH(2, 3, 7), 1, &xv), *g = random_tensor(1, SH(7), 2, &gv),
            *b = random_tensor(1, SH(7), 3, &bv), *y = NULL, *y0 = NULL;
  const double eps = 1e-3;
  OK(ct_layer_norm(x, g, b, eps, &y));
  OK(ct_layer_norm(x, NULL, NULL, eps, &y0));
  ts_assert_shape(y, 3, SH(2, 3, 7), "layer_norm");
  double want[42], want0[42];
  for (int r = 0; r < 6; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < 7; ++c) m += xv[r * 7 + c] / 7;
    for (int c = 0; c < 7; ++c) v += (xv[r * 7 + c] - m) * (xv[r * 7 + c] - m) / 7;
    for (int c = 0; c < 7; ++c) {
      want0[r * 7 + c] = (xv[r * 7 + c] - m) / sqrt(v + eps);
      want[r * 7 + c] = want0[r * 7 + c] * gv[c] + bv[c];
    }
  }
  ts_assert_close(y, want, 42, TOL, TOL, "layer_norm with gamma and beta");
  ts_assert_close(y0, want0, 42, TOL, TOL, "layer_norm without gamma and beta");
  free(xv), free(gv), free(bv);
  ct_tensor *all[] = {x, g, b, y, y0};
  ct_tensor_free_n(all, 5);
}

Test(nn_transformer, embedding_lookup_takes_rows_and_adds_their_gradients, .init = setup, .fini = teardown) {
  double *tv;
  ct_tensor *table = random_tensor(2, SH(4, 3), 5, &tv);
  ct_tensor *ids = ts_tensor(CTX, CT_INT32, 2, SH(2, 2), (const double[]){2, 0, 2, 9});
  ct_tensor *y = NULL, *s = NULL, *g = NULL;
  ct_tape *tape = NULL;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_tape_watch(tape, table));
  OK(ct_embedding_lookup(table, ids, &y));
  OK(ct_sum(y, NULL, 0, false, &s));
  OK(ct_tape_end(tape));
  ts_assert_shape(y, 3, SH(2, 2, 3), "ids [2, 2] + [3]");
  double want[12];
  const int id[4] = {2, 0, 2, 9};
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 3; ++c) want[i * 3 + c] = id[i] < 4 ? tv[id[i] * 3 + c] : 0; /* 9: a row of zeros */
  ts_assert_close(y, want, 12, 0, 0, "rows of the table");
  OK(ct_tape_gradient(tape, &s, 1, &table, 1, NULL, CT_UNCONNECTED_NONE, &g));
  double gw[12] = {1, 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0}; /* row 0 once, row 2 twice */
  ts_assert_close(g, gw, 12, 0, 0, "gradient: each use of a row adds");
  free(tv);
  ct_tensor *all[] = {table, ids, y, s, g};
  ct_tensor_free_n(all, 5);
  ct_tape_free(tape);
}

/* softmax(q k^T / sqrt(d) + mask) v on the host for one batch entry */
static void attention_host(const double *q, const double *k, const double *v, int tq, int tk, int d, int dv,
                           bool causal, double *out) {
  for (int i = 0; i < tq; ++i) {
    double sc[16], mx = -INFINITY, z = 0;
    for (int j = 0; j < tk; ++j) {
      double a = 0;
      for (int c = 0; c < d; ++c) a += q[i * d + c] * k[j * d + c];
      sc[j] = causal && j > i + tk - tq ? -INFINITY : a / sqrt((double)d);
      mx = fmax(mx, sc[j]);
    }
    for (int j = 0; j < tk; ++j) z += sc[j] = exp(sc[j] - mx);
    for (int c = 0; c < dv; ++c) {
      double a = 0;
      for (int j = 0; j < tk; ++j) a += sc[j] / z * v[j * dv + c];
      out[i * dv + c] = a;
    }
  }
}

Test(nn_transformer, attention_matches_the_host, .init = setup, .fini = teardown) {
  const int B = 2, TQ = 3, TK = 5, D = 4, DV = 2;
  double *qv, *kv, *vv;
  ct_tensor *q = random_tensor(3, SH(B, TQ, D), 7, &qv), *k = random_tensor(3, SH(B, TK, D), 8, &kv),
            *v = random_tensor(3, SH(B, TK, DV), 9, &vv);
  for (int causal = 0; causal < 2; ++causal) {
    ct_tensor *y = NULL;
    OK(ct_scaled_dot_product_attention(q, k, v, causal != 0, &y));
    ts_assert_shape(y, 3, SH(B, TQ, DV), "attention");
    double want[B * TQ * DV];
    for (int b = 0; b < B; ++b)
      attention_host(qv + b * TQ * D, kv + b * TK * D, vv + b * TK * DV, TQ, TK, D, DV, causal != 0,
                     want + b * TQ * DV);
    ts_assert_close(y, want, B * TQ * DV, TOL, TOL, causal ? "causal attention" : "attention");
    ct_tensor_free(y);
  }
  /* with as many queries as keys, the first query sees only the first key: its output is v[0] */
  ct_tensor *y = NULL;
  OK(ct_scaled_dot_product_attention(k, k, v, true, &y));
  double *yv = ts_read(y);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < DV; ++c)
      cr_expect_float_eq(yv[b * TK * DV + c], vv[b * TK * DV + c], TOL, "query 0 of batch %d sees key 0 only", b);
  free(yv), free(qv), free(kv), free(vv);
  ct_tensor *all[] = {q, k, v, y};
  ct_tensor_free_n(all, 4);
}

/* ---- layers --------------------------------------------------------------------------------- */
static ct_layer_options fopts(void) {
  ct_layer_options o = ct_layer_default_options();
  o.dtype = FDT;
  return o;
}

Test(nn_transformer, layers_have_their_shapes_kinds_and_names, .init = setup, .fini = teardown) {
  ct_layer_options o = fopts();
  ct_module *ln = NULL, *emb = NULL, *mha = NULL, *blk = NULL;
  OK(ct_layer_norm_create(CTX, 8, 1e-5, &o, &ln));
  OK(ct_embedding_create(CTX, 11, 8, &o, &emb));
  OK(ct_multi_head_attention_create(CTX, 8, 2, true, &o, &mha));
  OK(ct_transformer_block_create(CTX, 8, 2, 16, true, &o, &blk));
  cr_assert_str_eq(ct_module_kind(ln), "LayerNorm");
  cr_assert_str_eq(ct_module_kind(emb), "Embedding");
  cr_assert_str_eq(ct_module_kind(mha), "MultiHeadAttention");
  cr_assert_str_eq(ct_module_kind(blk), "TransformerBlock");
  cr_assert_str_eq(ct_module_name(ln), "layer_normalization");
  cr_assert_str_eq(ct_module_name(emb), "embedding");
  cr_assert_str_eq(ct_module_name(mha), "multi_head_attention");
  cr_assert_str_eq(ct_module_name(blk), "transformer_block");
  cr_assert_eq(ct_module_num_params(ln, true), 16);
  cr_assert_eq(ct_module_num_params(emb, true), 88);
  cr_assert_eq(ct_module_num_params(mha, true), 8 * 24 + 24 + 8 * 8 + 8);
  /* ln1, attention, ln2, mlp_in, mlp_out */
  cr_assert_eq(ct_module_num_params(blk, true), 16 + 8 * 24 + 24 + 8 * 8 + 8 + 16 + 8 * 16 + 16 + 16 * 8 + 8);
  cr_assert_eq(ct_module_num_children(blk), 5);
  cr_assert_not_null(ct_module_find_variable(blk, "transformer_block/attention/qkv_kernel:0"));
  cr_assert_not_null(ct_module_find_variable(blk, "transformer_block/ln2/gamma"));
  cr_assert_not_null(ct_module_find_variable(blk, "transformer_block/mlp_out/bias"));
  cr_assert_not_null(ct_module_find_variable(emb, "embedding/embeddings"));

  ct_tensor *ids = ts_tensor(CTX, CT_INT32, 2, SH(2, 5), (const double[]){1, 2, 3, 4, 5, 10, 0, 0, 7, 7});
  ct_tensor *h = NULL, *a = NULL, *n = NULL, *out = NULL;
  OK(ct_module_call(emb, ids, true, &h));
  ts_assert_shape(h, 3, SH(2, 5, 8), "Embedding");
  OK(ct_module_call(mha, h, true, &a));
  ts_assert_shape(a, 3, SH(2, 5, 8), "MultiHeadAttention");
  OK(ct_module_call(ln, a, true, &n));
  ts_assert_shape(n, 3, SH(2, 5, 8), "LayerNorm");
  OK(ct_module_call(blk, n, true, &out));
  ts_assert_shape(out, 3, SH(2, 5, 8), "TransformerBlock");
  /* LayerNorm's fresh gamma 1, beta 0: every row has mean 0 and variance var / (var + eps) */
  double *nv = ts_read(n), *av = ts_read(a);
  for (int r = 0; r < 10; ++r) {
    double m = 0, v = 0, ma = 0, va = 0;
    for (int c = 0; c < 8; ++c) m += nv[r * 8 + c] / 8, ma += av[r * 8 + c] / 8;
    for (int c = 0; c < 8; ++c) {
      v += (nv[r * 8 + c] - m) * (nv[r * 8 + c] - m) / 8;
      va += (av[r * 8 + c] - ma) * (av[r * 8 + c] - ma) / 8;
    }
    cr_expect(fabs(m) < 1e-5, "row %d: mean %g", r, m);
    cr_expect(fabs(v - va / (va + 1e-5)) < 1e-4, "row %d: variance %g, not %g", r, v, va / (va + 1e-5));
  }
  free(nv), free(av);
  /* two blocks built alike start from different weights (their seeds come from their names) */
  ct_module *blk2 = NULL;
  OK(ct_transformer_block_create(CTX, 8, 2, 16, true, &o, &blk2));
  cr_assert_str_eq(ct_module_name(blk2), "transformer_block_1");
  double *w1 = ts_read(ct_module_find_variable(blk, "transformer_block/mlp_in/kernel"));
  double *w2 = ts_read(ct_module_find_variable(blk2, "transformer_block_1/mlp_in/kernel"));
  cr_expect(memcmp(w1, w2, sizeof(double) * 8 * 16) != 0, "two blocks with the same first weights");
  free(w1), free(w2);
  /* ids must be int32; inputs of the wrong width are refused */
  ct_tensor *bad = NULL;
  EXPECT_STATUS(ct_module_call(emb, h, true, &bad), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_module_call(ln, ids, true, &bad), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_module_call(mha, ids, true, &bad), CT_ERR_SHAPE);
  cr_assert_null(bad);
  ct_tensor *all[] = {ids, h, a, n, out};
  ct_tensor_free_n(all, 5);
  ct_module *mods[] = {ln, emb, mha, blk, blk2};
  for (int i = 0; i < 5; ++i) ct_module_free(mods[i]);
}

/* MultiHeadAttention against the host: the heads are columns h dh .. (h + 1) dh of q, k and v, the
 * thirds of x @ qkv_kernel + qkv_bias */
Test(nn_transformer, multi_head_attention_matches_the_host, .init = setup, .fini = teardown) {
  enum { B = 2, T = 3, D = 6, H = 3, DH = 2 };
  ct_layer_options o = fopts();
  ct_module *mha = NULL;
  OK(ct_multi_head_attention_create(CTX, D, H, true, &o, &mha));
  ct_tensor *v[4];
  int n = 0;
  OK(ct_module_variables(mha, v, 4, &n));
  cr_assert_eq(n, 4);
  double *bias = host_values(3 * D, 31), *obias = host_values(D, 32); /* nonzero biases */
  ct_tensor *bt = ts_tensor(CTX, FDT, 1, SH(3 * D), bias), *obt = ts_tensor(CTX, FDT, 1, SH(D), obias);
  OK(ct_variable_assign(v[1], bt));
  OK(ct_variable_assign(v[3], obt));
  double *w = ts_read(v[0]), *wo = ts_read(v[2]), *xv;
  ct_tensor *x = random_tensor(3, SH(B, T, D), 33, &xv), *y = NULL;
  OK(ct_module_call(mha, x, false, &y));
  double want[B * T * D];
  for (int b = 0; b < B; ++b) {
    double qkv[T][3 * D], heads[T * D];
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < 3 * D; ++j) {
        qkv[t][j] = bias[j];
        for (int c = 0; c < D; ++c) qkv[t][j] += xv[(b * T + t) * D + c] * w[c * 3 * D + j];
      }
    for (int h = 0; h < H; ++h) {
      double q[T * DH], k[T * DH], vv[T * DH], out[T * DH];
      for (int t = 0; t < T; ++t)
        for (int c = 0; c < DH; ++c) {
          q[t * DH + c] = qkv[t][h * DH + c];
          k[t * DH + c] = qkv[t][D + h * DH + c];
          vv[t * DH + c] = qkv[t][2 * D + h * DH + c];
        }
      attention_host(q, k, vv, T, T, DH, DH, true, out);
      for (int t = 0; t < T; ++t)
        for (int c = 0; c < DH; ++c) heads[t * D + h * DH + c] = out[t * DH + c];
    }
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < D; ++j) {
        double a = obias[j];
        for (int c = 0; c < D; ++c) a += heads[t * D + c] * wo[c * D + j];
        want[(b * T + t) * D + j] = a;
      }
  }
  ts_assert_close(y, want, B * T * D, TOL, TOL, "MultiHeadAttention");
  free(bias), free(obias), free(w), free(wo), free(xv);
  ct_tensor *all[] = {bt, obt, x, y};
  ct_tensor_free_n(all, 4);
  ct_module_free(mha);
}

/* y = m(x) and y' = m(x with position t changed): rows before t equal, rows t.. differ */
static void check_causal(ct_module *m, int64_t b, int64_t t, int64_t d, int64_t at, bool causal, const char *what) {
  double *xv = host_values(b * t * d, 21);
  ct_tensor *x = ts_tensor(CTX, FDT, 3, SH(b, t, d), xv), *y = NULL, *y2 = NULL;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t c = 0; c < d; ++c) xv[(i * t + at) * d + c] += 0.5 + 0.1 * (double)c;
  ct_tensor *x2 = ts_tensor(CTX, FDT, 3, SH(b, t, d), xv);
  OK(ct_module_call(m, x, false, &y));
  OK(ct_module_call(m, x2, false, &y2));
  double *a = ts_read(y), *a2 = ts_read(y2);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t p = 0; p < t; ++p) {
      double diff = 0;
      for (int64_t c = 0; c < d; ++c) diff = fmax(diff, fabs(a[(i * t + p) * d + c] - a2[(i * t + p) * d + c]));
      if (p < at && causal) cr_expect(diff <= 1e-6, "%s: position %lld moved by %g when position %lld changed", what,
                                      (long long)p, diff, (long long)at);
      else cr_expect(diff > 1e-4, "%s: position %lld did not move (%g) when position %lld changed", what,
                     (long long)p, diff, (long long)at);
    }
  free(xv), free(a), free(a2);
  ct_tensor *all[] = {x, x2, y, y2};
  ct_tensor_free_n(all, 4);
}

Test(nn_transformer, causal_outputs_do_not_depend_on_later_inputs, .init = setup, .fini = teardown) {
  ct_layer_options o = fopts();
  ct_module *mha = NULL, *blk = NULL, *open = NULL, *seq = NULL, *b1 = NULL, *b2 = NULL;
  OK(ct_multi_head_attention_create(CTX, 8, 2, true, &o, &mha));
  OK(ct_transformer_block_create(CTX, 8, 4, 12, true, &o, &blk));
  OK(ct_multi_head_attention_create(CTX, 8, 2, false, &o, &open));
  for (int64_t at = 0; at < 6; at += 2) {
    check_causal(mha, 2, 6, 8, at, true, "causal MultiHeadAttention");
    check_causal(blk, 2, 6, 8, at, true, "causal TransformerBlock");
  }
  check_causal(open, 2, 6, 8, 4, false, "MultiHeadAttention without the mask"); /* every position moves */
  /* two blocks in a row */
  OK(ct_sequential_create(CTX, NULL, &seq));
  OK(ct_transformer_block_create(CTX, 8, 2, 12, true, &o, &b1));
  OK(ct_transformer_block_create(CTX, 8, 2, 12, true, &o, &b2));
  OK(ct_sequential_add(seq, b1));
  OK(ct_sequential_add(seq, b2));
  check_causal(seq, 1, 7, 8, 3, true, "two causal blocks");
  ct_module *mods[] = {mha, blk, open, seq, b1, b2};
  for (int i = 0; i < 6; ++i) ct_module_free(mods[i]);
}

/* ---- gradients of the layers, with respect to the input and every variable ------------------- */
static ct_status call_with(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  return ct_module_call_with(u, in[0], in + 1, n - 1, true, out);
}

/* x is consumed */
static void gradcheck_layer(ct_module *m, ct_tensor *x, const char *what) {
  ct_tensor *v[16], *in[17];
  int n;
  OK(ct_module_variables(m, v, 16, &n));
  cr_assert_leq(n, 16);
  in[0] = x;
  for (int i = 0; i < n; ++i) { /* perturbed away from the initial values (gamma 1, beta 0, biases 0) */
    double *h = ts_read(v[i]);
    int64_t k = ct_tensor_size(v[i]);
    double *r = host_values(k, 40 + (uint32_t)i);
    for (int64_t j = 0; j < k; ++j) h[j] += 0.2 * r[j];
    in[i + 1] = ts_tensor(CTX, FDT, ct_tensor_rank(v[i]), ct_tensor_shape(v[i]), h);
    free(h), free(r);
  }
  ct_gradcheck_report r;
  OK(ct_gradcheck(CTX, call_with, m, in, n + 1, NULL, &r));
  cr_expect(r.passed, "%s: %s", what, r.message);
  cr_expect_gt(r.checked, 0);
  ct_tensor_free_n(in, n + 1);
}

Test(nn_transformer, layer_gradients_pass_the_checker, .init = setup, .fini = teardown) {
  ct_layer_options o = fopts();
  ct_module *ln = NULL, *emb = NULL, *mha = NULL, *blk = NULL;
  OK(ct_layer_norm_create(CTX, 5, 1e-3, &o, &ln));
  gradcheck_layer(ln, random_tensor(2, SH(3, 5), 11, NULL), "LayerNorm");
  OK(ct_embedding_create(CTX, 6, 3, &o, &emb));
  gradcheck_layer(emb, ts_tensor(CTX, CT_INT32, 2, SH(2, 3), (const double[]){5, 0, 5, 2, 1, 0}), "Embedding");
  OK(ct_multi_head_attention_create(CTX, 4, 2, true, &o, &mha));
  gradcheck_layer(mha, random_tensor(3, SH(2, 3, 4), 12, NULL), "causal MultiHeadAttention");
  OK(ct_transformer_block_create(CTX, 4, 2, 6, true, &o, &blk));
  gradcheck_layer(blk, random_tensor(3, SH(1, 3, 4), 13, NULL), "causal TransformerBlock");
  ct_module *mods[] = {ln, emb, mha, blk};
  for (int i = 0; i < 4; ++i) ct_module_free(mods[i]);
}
