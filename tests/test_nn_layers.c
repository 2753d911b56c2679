/* Modules and layers (cltape_nn.h): names (S3), the variable order, freezing (S4), each layer's
 * forward against a host reference and its gradient by the checker (float64, through
 * ct_module_call_with), initializers, losses and metrics. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})

static void setup(void) {
  CTX = ts_ctx();
  ct_reset_module_names();
}
static void teardown(void) {
  ct_context_free(CTX);
  CTX = NULL;
}

/* Layers are checked in float64, float32 on a device without it: TOL is the tolerance that
 * goes with it (float32 results of a few rounded terms and builtins) */
#define FDT ts_best_float(CTX)
#define TOL (FDT == CT_FLOAT64 ? 1e-12 : 1e-5)

#define random_tensor(dt, rank, shape, seed, host) ts_lcg_tensor(CTX, (dt), (rank), (shape), (seed), (host))

static ct_module *layer_in(ct_module *seq, ct_module *layer) {
  OK(ct_sequential_add(seq, layer));
  ct_module_free(layer);
  return layer;
}

/* ---- S3 and names ------------------------------------------------------------------------------ */
Test(nn_layers, s3_dense_gradients_are_named_like_keras, .init = setup, .fini = teardown) {
  ct_module *dense = NULL;
  OK(ct_dense_create(CTX, 3, 2, CT_ACTIVATION_RELU, NULL, &dense));
  cr_assert_str_eq(ct_module_name(dense), "dense");
  cr_assert_str_eq(ct_module_kind(dense), "Dense");
  ct_tensor *x = ts_tensor(CTX, CT_FLOAT32, 2, SH(1, 3), (const double[]){1, 2, 3});
  ct_tensor *vars[4];
  int n = 0;
  OK(ct_module_trainable_variables(dense, vars, 4, &n));
  cr_assert_eq(n, 2);
  ct_tape *tape;
  ct_tensor *y = NULL, *y2 = NULL, *loss = NULL;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_module_call(dense, x, true, &y));
  OK(ct_square(y, &y2));
  OK(ct_mean(y2, NULL, 0, false, &loss));
  OK(ct_tape_end(tape));
  ct_named_tensor src[2] = {{ct_variable_name(vars[0]), vars[0]}, {ct_variable_name(vars[1]), vars[1]}}, g[2];
  OK(ct_tape_gradient_named(tape, &loss, 1, src, 2, CT_UNCONNECTED_NONE, g));
  cr_assert_str_eq(g[0].name, "dense/kernel:0");
  cr_assert_str_eq(g[1].name, "dense/bias:0");
  ts_assert_shape(g[0].tensor, 2, SH(3, 2), "dense/kernel:0 gradient");
  ts_assert_shape(g[1].tensor, 1, SH(2), "dense/bias:0 gradient");
  /* values: loss = mean(y^2), y = relu(x W + b): dL/db = y (the mean over 2 outputs: 2 y / 2) */
  double *yv = ts_read(y), *gb = ts_read(g[1].tensor), *gw = ts_read(g[0].tensor);
  for (int j = 0; j < 2; ++j) {
    cr_assert_float_eq(gb[j], yv[j], 1e-6);
    for (int i = 0; i < 3; ++i) cr_assert_float_eq(gw[i * 2 + j], (i + 1) * yv[j], 1e-5);
  }
  free(yv), free(gb), free(gw);
  ct_tensor *all[] = {x, y, y2, loss, g[0].tensor, g[1].tensor};
  ct_tensor_free_n(all, 6);
  ct_tape_free(tape);
  ct_module_free(dense);
}

Test(nn_layers, automatic_names_and_hierarchy, .init = setup, .fini = teardown) {
  ct_module *seq = NULL, *d1, *d2, *c1, *block, *d3, *inner, *d4;
  OK(ct_sequential_create(CTX, NULL, &seq));
  cr_assert_str_eq(ct_module_name(seq), "sequential");
  OK(ct_dense_create(CTX, 4, 3, CT_ACTIVATION_NONE, NULL, &d1));
  OK(ct_dense_create(CTX, 3, 2, CT_ACTIVATION_NONE, NULL, &d2));
  int k[2] = {3, 3};
  OK(ct_conv2d_create(CTX, 1, 8, k, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &c1));
  layer_in(seq, d1);
  layer_in(seq, d2);
  cr_assert_str_eq(ct_module_name(d2), "dense_1");
  /* a named module prefixes what is added to it, a Sequential does not */
  OK(ct_module_create(CTX, "block", NULL, NULL, &block));
  OK(ct_dense_create(CTX, 2, 2, CT_ACTIVATION_NONE, NULL, &d3));
  OK(ct_module_add(block, d3));
  OK(ct_sequential_create(CTX, NULL, &inner));
  OK(ct_dense_create(CTX, 2, 2, CT_ACTIVATION_NONE, NULL, &d4));
  OK(ct_sequential_add(inner, d4));
  OK(ct_module_add(block, inner));
  OK(ct_module_add(block, c1));
  ct_tensor *own = NULL;
  ct_tensor *scale = ts_tensor(CTX, CT_FLOAT32, 0, NULL, (const double[]){2.0});
  OK(ct_module_add_variable(block, scale, "scale", false, &own));
  cr_assert_str_eq(ct_variable_name(own), "block/scale:0");
  const char *want[] = {"dense/kernel:0",           "dense/bias:0",          "dense_1/kernel:0",
                        "dense_1/bias:0",           "block/scale:0",         "block/dense_2/kernel:0",
                        "block/dense_2/bias:0",     "block/dense_3/kernel:0", "block/dense_3/bias:0",
                        "block/conv2d/kernel:0",    "block/conv2d/bias:0"};
  ct_tensor *v[16];
  int n = 0;
  /* the whole tree under a Sequential that holds the block */
  OK(ct_sequential_add(seq, block));
  OK(ct_module_variables(seq, v, 16, &n));
  cr_assert_eq(n, 11);
  for (int i = 0; i < n; ++i) cr_assert_str_eq(ct_variable_name(v[i]), want[i], "variable %d", i);
  OK(ct_module_trainable_variables(seq, v, 16, &n));
  cr_assert_eq(n, 10, "block/scale:0 is not trainable");
  cr_assert_eq(ct_module_find_variable(seq, "block/conv2d/kernel"), v[8]);
  cr_assert_eq(ct_module_find_variable(seq, "dense_1/bias:0"), v[3]);
  cr_assert_null(ct_module_find_variable(seq, "dense_1/bia"));
  cr_assert_eq(ct_module_num_params(seq, false), 4 * 3 + 3 + 3 * 2 + 2 + 1 + 6 + 6 + 72 + 8);
  cr_assert_eq(ct_module_num_params(seq, true), ct_module_num_params(seq, false) - 1);
  cr_assert_eq(ct_module_num_children(seq), 3);
  cr_assert_eq(ct_module_child(seq, 2), block);
  cr_assert_null(ct_module_child(seq, 3));
  /* rules of the tree */
  EXPECT_STATUS(ct_module_add(seq, d1), CT_ERR_INVALID);    /* already has a parent */
  EXPECT_STATUS(ct_module_add(block, seq), CT_ERR_INVALID); /* would contain itself */
  EXPECT_STATUS(ct_sequential_add(block, d1), CT_ERR_INVALID);
  EXPECT_STATUS(ct_module_add_variable(block, scale, "scale", true, NULL), CT_ERR_INVALID);
  EXPECT_STATUS(ct_module_add_variable(block, scale, "a:b", true, NULL), CT_ERR_INVALID);
  ct_module *bad = NULL;
  EXPECT_STATUS(ct_module_create(CTX, "a/b", NULL, NULL, &bad), CT_ERR_INVALID);
  cr_assert_null(bad);
  /* calling a container without forward is an error */
  ct_tensor *x = ts_tensor(CTX, CT_FLOAT32, 2, SH(1, 2), (const double[]){1, 2}), *y = NULL;
  EXPECT_STATUS(ct_module_call(block, x, false, &y), CT_ERR_INVALID);
  FILE *f = tmpfile();
  OK(ct_module_summary(seq, f));
  rewind(f);
  char buf[4096];
  size_t got = fread(buf, 1, sizeof buf - 1, f);
  buf[got] = 0;
  fclose(f);
  cr_assert(strstr(buf, "dense_1 (Dense)") && strstr(buf, "conv2d (Conv2D)") && strstr(buf, "Total params: 116"), "%s",
            buf);
  ct_module_free(block);
  ct_module_free(inner);
  ct_module_free(d3);
  ct_module_free(d4);
  ct_module_free(c1);
  ct_module_free(seq);
  ct_tensor_free(scale);
  ct_tensor_free(x);
  /* counters restart */
  ct_reset_module_names();
  ct_module *again;
  OK(ct_dense_create(CTX, 1, 1, CT_ACTIVATION_NONE, NULL, &again));
  cr_assert_str_eq(ct_module_name(again), "dense");
  ct_module_free(again);
}

/* The same model built twice (names restarted) lists the same names in the same order with the
 * same initial values; another seed gives other values. */
static ct_module *small_model(uint64_t seed) {
  ct_module *m, *l;
  ct_layer_options o = ct_layer_default_options();
  o.seed = seed;
  int k[2] = {3, 3}, p[2] = {2, 2};
  OK(ct_sequential_create(CTX, NULL, &m));
  OK(ct_conv2d_create(CTX, 1, 8, k, NULL, CT_PADDING_SAME, CT_ACTIVATION_RELU, &o, &l));
  layer_in(m, l);
  OK(ct_max_pool2d_create(CTX, p, NULL, CT_PADDING_VALID, NULL, &l));
  layer_in(m, l);
  OK(ct_flatten_create(CTX, NULL, &l));
  layer_in(m, l);
  OK(ct_dense_create(CTX, 4 * 4 * 8, 10, CT_ACTIVATION_NONE, &o, &l));
  layer_in(m, l);
  return m;
}

Test(nn_layers, variable_order_and_initial_values_are_stable, .init = setup, .fini = teardown) {
  ct_module *a = small_model(0);
  ct_reset_module_names();
  ct_module *b = small_model(0);
  ct_module *c = small_model(99);
  ct_tensor *va[8], *vb[8], *vc[8];
  int na, nb, nc;
  OK(ct_module_variables(a, va, 8, &na));
  OK(ct_module_variables(b, vb, 8, &nb));
  OK(ct_module_variables(c, vc, 8, &nc));
  cr_assert(na == 4 && nb == 4 && nc == 4);
  for (int i = 0; i < 4; ++i) {
    cr_assert_str_eq(ct_variable_name(va[i]), ct_variable_name(vb[i]));
    double *x = ts_read(va[i]), *y = ts_read(vb[i]);
    cr_assert(memcmp(x, y, sizeof(double) * (size_t)ct_tensor_size(va[i])) == 0, "%s", ct_variable_name(va[i]));
    free(x), free(y);
  }
  double *x = ts_read(va[0]), *z = ts_read(vc[0]);
  cr_assert(memcmp(x, z, sizeof(double) * (size_t)ct_tensor_size(va[0])) != 0, "another seed, the same weights");
  free(x), free(z);
  cr_assert_str_eq(ct_variable_name(vc[0]), "conv2d_1/kernel:0"); /* names restarted before b */
  ct_module_free(a);
  ct_module_free(b);
  ct_module_free(c);
}

Test(nn_layers, frozen_variables_get_no_gradient, .init = setup, .fini = teardown) {
  ct_module *m = small_model(0);
  ct_module *conv = ct_module_child(m, 0);
  OK(ct_module_set_trainable(conv, false));
  ct_tensor *v[8];
  int n;
  OK(ct_module_trainable_variables(m, v, 8, &n));
  cr_assert_eq(n, 2);
  cr_assert_str_eq(ct_variable_name(v[0]), "dense/kernel:0");
  ct_tensor *all[8];
  int na;
  OK(ct_module_variables(m, all, 8, &na));
  cr_assert_eq(na, 4);
  ct_tensor *x = random_tensor(CT_FLOAT32, 4, SH(2, 8, 8, 1), 3, NULL), *y = NULL, *loss = NULL, *lab = NULL;
  lab = ts_tensor(CTX, CT_INT32, 1, SH(2), (const double[]){1, 7});
  ct_tape *tape;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_module_call(m, x, true, &y));
  OK(ct_softmax_cross_entropy(y, lab, &loss));
  OK(ct_tape_end(tape));
  /* the tape watched exactly the trainable variables */
  ct_tensor *w[8];
  int nw;
  OK(ct_tape_watched_variables(tape, w, 8, &nw));
  cr_assert_eq(nw, 2);
  cr_assert_str_eq(ct_variable_name(w[0]), "dense/kernel:0");
  cr_assert_str_eq(ct_variable_name(w[1]), "dense/bias:0");
  ct_tensor *g[4];
  OK(ct_tape_gradient(tape, &loss, 1, all, 4, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert_null(g[0], "frozen conv2d/kernel:0 got a gradient");
  cr_assert_null(g[1]);
  cr_assert_not_null(g[2]);
  cr_assert_not_null(g[3]);
  ct_tensor_free_n(g, 4);
  OK(ct_module_set_trainable(m, true));
  OK(ct_module_trainable_variables(m, v, 8, &n));
  cr_assert_eq(n, 4);
  ct_tensor *t[] = {x, y, loss, lab};
  ct_tensor_free_n(t, 4);
  ct_tape_free(tape);
  ct_module_free(m);
}

/* ---- each layer: forward against a host reference, gradient by the checker --------------------- */
typedef struct {
  ct_module *m;
  bool training;
  uint64_t reseed; /* nonzero: ct_module_set_seed before each call (Dropout) */
} layer_fn;

static ct_status call_with(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  layer_fn *l = u;
  if (l->reseed) {
    ct_status s = ct_module_set_seed(l->m, l->reseed);
    if (s != CT_OK) return s;
  }
  return ct_module_call_with(l->m, in[0], in + 1, n - 1, l->training, out);
}

/* Gradient check of a layer with respect to its input and every variable (FDT). */
static void gradcheck_layer(ct_module *m, ct_tensor *x, bool training, uint64_t reseed, const char *what) {
  ct_tensor *v[8], *in[9];
  int n;
  OK(ct_module_variables(m, v, 8, &n));
  in[0] = x;
  for (int i = 0; i < n; ++i) {
    double *h = ts_read(v[i]);
    in[i + 1] = ts_tensor(CTX, FDT, ct_tensor_rank(v[i]), ct_tensor_shape(v[i]), h);
    free(h);
  }
  layer_fn l = {m, training, reseed};
  ct_gradcheck_report r;
  OK(ct_gradcheck(CTX, call_with, &l, in, n + 1, NULL, &r));
  cr_assert(r.passed, "%s: %s", what, r.message);
  cr_assert_gt(r.checked, 0);
  ct_tensor_free_n(in + 1, n);
}

static double act_host(double v, ct_activation a) {
  switch (a) {
    case CT_ACTIVATION_RELU: return v > 0 ? v : 0;
    case CT_ACTIVATION_SIGMOID: return 1 / (1 + exp(-v));
    case CT_ACTIVATION_TANH: return tanh(v);
    case CT_ACTIVATION_GELU: return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    case CT_ACTIVATION_ELU: return v > 0 ? v : expm1(v);
    case CT_ACTIVATION_SOFTPLUS: return log1p(exp(v));
    default: return v;
  }
}

Test(nn_layers, dense, .init = setup, .fini = teardown) {
  ct_activation acts[] = {CT_ACTIVATION_NONE, CT_ACTIVATION_RELU,    CT_ACTIVATION_SIGMOID, CT_ACTIVATION_TANH,
                          CT_ACTIVATION_GELU, CT_ACTIVATION_SOFTMAX, CT_ACTIVATION_ELU,     CT_ACTIVATION_SOFTPLUS};
  for (size_t a = 0; a < sizeof acts / sizeof *acts; ++a) {
    ct_layer_options o = ct_layer_default_options();
    o.dtype = FDT;
    o.bias_initializer = CT_INIT_GLOROT_UNIFORM; /* a non-zero bias, to see it */
    o.use_bias = a != 3;
    ct_module *d;
    OK(ct_dense_create(CTX, 5, 4, acts[a], &o, &d));
    double *xv;
    ct_tensor *x = random_tensor(FDT, 2, SH(3, 5), 7, &xv), *y = NULL;
    ct_tensor *vars[2];
    int n;
    OK(ct_module_variables(d, vars, 2, &n));
    cr_assert_eq(n, o.use_bias ? 2 : 1);
    double *w = ts_read(vars[0]), *b = o.use_bias ? ts_read(vars[1]) : calloc(4, sizeof(double)), want[12];
    for (int i = 0; i < 3; ++i) {
      double z[4], s = 0, m = -INFINITY;
      for (int j = 0; j < 4; ++j) {
        z[j] = b[j];
        for (int k = 0; k < 5; ++k) z[j] += xv[i * 5 + k] * w[k * 4 + j];
        m = fmax(m, z[j]);
      }
      for (int j = 0; j < 4; ++j) s += exp(z[j] - m);
      for (int j = 0; j < 4; ++j) want[i * 4 + j] = acts[a] == CT_ACTIVATION_SOFTMAX ? exp(z[j] - m) / s : act_host(z[j], acts[a]);
    }
    OK(ct_module_call(d, x, true, &y));
    char what[64];
    snprintf(what, sizeof what, "dense %s", ct_activation_name(acts[a]));
    ts_assert_close(y, want, 12, TOL, TOL, what);
    if (acts[a] != CT_ACTIVATION_RELU) gradcheck_layer(d, x, true, 0, what);
    free(w), free(b), free(xv);
    ct_tensor_free(y);
    ct_tensor_free(x);
    ct_module_free(d);
  }
  /* relu: inputs away from the kink */
  ct_layer_options o = ct_layer_default_options();
  o.dtype = FDT;
  ct_module *d;
  OK(ct_dense_create(CTX, 2, 3, CT_ACTIVATION_RELU, &o, &d));
  ct_tensor *x = ts_tensor(CTX, FDT, 2, SH(2, 2), (const double[]){1.0, -0.5, 0.25, 2.0});
  gradcheck_layer(d, x, true, 0, "dense relu");
  /* errors */
  ct_tensor *bad = ts_tensor(CTX, FDT, 2, SH(2, 3), (const double[]){1, 2, 3, 4, 5, 6}), *y = NULL;
  EXPECT_STATUS(ct_module_call(d, bad, false, &y), CT_ERR_SHAPE);
  ct_tensor *p[1] = {x};
  EXPECT_STATUS(ct_module_call_with(d, x, p, 1, false, &y), CT_ERR_INVALID);
  ct_tensor *wrong[2] = {bad, bad};
  EXPECT_STATUS(ct_module_call_with(d, x, wrong, 2, false, &y), CT_ERR_SHAPE);
  ct_module *e = NULL;
  EXPECT_STATUS(ct_dense_create(CTX, 0, 3, CT_ACTIVATION_NONE, NULL, &e), CT_ERR_INVALID);
  EXPECT_STATUS(ct_dense_create(CTX, 2, 3, (ct_activation)99, NULL, &e), CT_ERR_INVALID);
  o.dtype = CT_INT32;
  EXPECT_STATUS(ct_dense_create(CTX, 2, 3, CT_ACTIVATION_NONE, &o, &e), CT_ERR_DTYPE);
  cr_assert_null(e);
  ct_tensor_free(bad);
  ct_tensor_free(x);
  ct_module_free(d);
}

Test(nn_layers, conv2d_layer, .init = setup, .fini = teardown) {
  struct {
    int64_t cin, cout;
    int k[2], s[2];
    ct_padding p;
    ct_activation a;
  } cases[] = {
      {2, 3, {3, 3}, {1, 1}, CT_PADDING_SAME, CT_ACTIVATION_NONE},
      {3, 8, {2, 3}, {2, 1}, CT_PADDING_VALID, CT_ACTIVATION_TANH},
      {8, 4, {3, 3}, {2, 2}, CT_PADDING_SAME, CT_ACTIVATION_SIGMOID},
  };
  for (size_t c = 0; c < 3; ++c) {
    ct_layer_options o = ct_layer_default_options();
    o.dtype = FDT;
    o.bias_initializer = CT_INIT_HE_NORMAL;
    ct_module *conv;
    OK(ct_conv2d_create(CTX, cases[c].cin, cases[c].cout, cases[c].k, cases[c].s, cases[c].p, cases[c].a, &o, &conv));
    cr_assert_str_eq(ct_module_kind(conv), "Conv2D");
    ct_tensor *vars[2];
    int n;
    OK(ct_module_variables(conv, vars, 2, &n));
    ts_assert_shape(vars[0], 4, SH(cases[c].k[0], cases[c].k[1], cases[c].cin, cases[c].cout), "kernel");
    ts_assert_shape(vars[1], 1, SH(cases[c].cout), "bias");
    ct_tensor *x = random_tensor(FDT, 4, SH(2, 5, 6, cases[c].cin), 11 + (uint32_t)c, NULL);
    /* reference: the op plus bias and activation */
    ct_tensor *y = NULL, *r = NULL, *rb = NULL, *ra = NULL;
    OK(ct_module_call(conv, x, false, &y));
    OK(ct_conv2d(x, vars[0], cases[c].s, cases[c].p, &r));
    OK(ct_add(r, vars[1], &rb));
    OK(ct_activate(rb, cases[c].a, &ra));
    double *want = ts_read(ra);
    ts_assert_close(y, want, ct_tensor_size(ra), TOL, TOL, "conv2d layer");
    free(want);
    char what[32];
    snprintf(what, sizeof what, "conv2d layer case %zu", c);
    gradcheck_layer(conv, x, true, 0, what);
    ct_tensor *all[] = {x, y, r, rb, ra};
    ct_tensor_free_n(all, 5);
    ct_module_free(conv);
  }
  ct_module *conv = NULL;
  int k[2] = {3, 3}, zero[2] = {0, 1};
  EXPECT_STATUS(ct_conv2d_create(CTX, 1, 4, NULL, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &conv), CT_ERR_NULL);
  EXPECT_STATUS(ct_conv2d_create(CTX, 1, 4, k, zero, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &conv), CT_ERR_INVALID);
  EXPECT_STATUS(ct_conv2d_create(CTX, 1, 4, k, NULL, (ct_padding)3, CT_ACTIVATION_NONE, NULL, &conv), CT_ERR_INVALID);
  OK(ct_conv2d_create(CTX, 2, 4, k, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &conv));
  ct_tensor *x = random_tensor(CT_FLOAT32, 4, SH(1, 4, 4, 3), 1, NULL), *y = NULL;
  EXPECT_STATUS(ct_module_call(conv, x, false, &y), CT_ERR_SHAPE);
  ct_tensor_free(x);
  ct_module_free(conv);
}

Test(nn_layers, pooling_flatten_and_sequential, .init = setup, .fini = teardown) {
  int p2[2] = {2, 2}, p3[2] = {3, 3}, s2[2] = {2, 2};
  ct_module *mp, *ap, *fl;
  OK(ct_max_pool2d_create(CTX, p2, NULL, CT_PADDING_VALID, NULL, &mp));
  OK(ct_avg_pool2d_create(CTX, p3, s2, CT_PADDING_SAME, "avg", &ap));
  OK(ct_flatten_create(CTX, NULL, &fl));
  cr_assert_str_eq(ct_module_name(mp), "max_pooling2d");
  cr_assert_str_eq(ct_module_name(ap), "avg");
  cr_assert_str_eq(ct_module_kind(ap), "AvgPool2D");
  ct_tensor *x = NULL;
  {
    double v[2 * 4 * 4 * 3];
    for (int i = 0; i < 96; ++i) v[i] = (double)((i * 37) % 96) / 10.0; /* distinct */
    x = ts_tensor(CTX, FDT, 4, SH(2, 4, 4, 3), v);
  }
  ct_tensor *y = NULL, *r = NULL;
  OK(ct_module_call(mp, x, true, &y));
  OK(ct_max_pool2d(x, p2, NULL, CT_PADDING_VALID, &r));
  double *want = ts_read(r);
  ts_assert_close(y, want, ct_tensor_size(r), 0, 0, "MaxPool2D layer");
  /* the first window by hand: image 0, channel 0 */
  double *xv = ts_read(x);
  double m = fmax(fmax(xv[0], xv[3]), fmax(xv[12], xv[15]));
  cr_assert_eq(want[0], m);
  free(want), free(xv);
  ct_tensor_free(y), ct_tensor_free(r);
  OK(ct_module_call(ap, x, true, &y));
  ts_assert_shape(y, 4, SH(2, 2, 2, 3), "AvgPool2D 3x3/2 SAME of 4x4");
  ct_tensor_free(y);
  OK(ct_module_call(fl, x, true, &y));
  ts_assert_shape(y, 2, SH(2, 48), "Flatten");
  ct_tensor_free(y);
  gradcheck_layer(mp, x, true, 0, "MaxPool2D");
  gradcheck_layer(ap, x, true, 0, "AvgPool2D");
  gradcheck_layer(fl, x, true, 0, "Flatten");
  /* a Sequential of everything: forward equals calling the layers in turn; whole-model gradient */
  ct_module *seq, *conv, *dense, *drop;
  ct_layer_options o = ct_layer_default_options();
  o.dtype = FDT;
  OK(ct_sequential_create(CTX, "model", &seq));
  OK(ct_conv2d_create(CTX, 3, 8, p3, NULL, CT_PADDING_SAME, CT_ACTIVATION_TANH, &o, &conv));
  OK(ct_dense_create(CTX, 2 * 2 * 8, 3, CT_ACTIVATION_NONE, &o, &dense));
  OK(ct_dropout_create(CTX, 0.25, 5, NULL, &drop));
  ct_module *layers[] = {conv, mp, drop, fl, dense};
  for (int i = 0; i < 5; ++i) OK(ct_sequential_add(seq, layers[i]));
  ct_tensor *cur = ct_tensor_retain(x);
  OK(ct_module_set_seed(seq, 42));
  for (int i = 0; i < 5; ++i) {
    ct_tensor *nx = NULL;
    OK(ct_module_call(layers[i], cur, false, &nx));
    ct_tensor_free(cur);
    cur = nx;
  }
  OK(ct_module_call(seq, x, false, &y));
  want = ts_read(cur);
  ts_assert_close(y, want, ct_tensor_size(cur), 0, 0, "Sequential = its layers in turn");
  free(want);
  ct_tensor_free(y), ct_tensor_free(cur);
  gradcheck_layer(seq, x, true, 42, "Sequential (conv, pool, dropout, flatten, dense) in training mode");
  for (int i = 0; i < 5; ++i) ct_module_free(layers[i]);
  ct_module_free(ap);
  ct_module_free(seq);
  ct_tensor_free(x);
}

Test(nn_layers, dropout_layer_modes_and_seeds, .init = setup, .fini = teardown) {
  ct_module *d;
  OK(ct_dropout_create(CTX, 0.5, 123, NULL, &d));
  cr_assert_str_eq(ct_module_name(d), "dropout");
  double ones[1000];
  for (int i = 0; i < 1000; ++i) ones[i] = 1;
  ct_tensor *x = ts_tensor(CTX, CT_FLOAT32, 2, SH(10, 100), ones), *a = NULL, *b = NULL, *c = NULL, *e = NULL;
  OK(ct_module_call(d, x, false, &e)); /* inference: identity */
  ts_assert_close(e, ones, 1000, 0, 0, "dropout in inference");
  OK(ct_module_call(d, x, true, &a));
  OK(ct_module_call(d, x, true, &b)); /* the next call has another mask */
  double *av = ts_read(a), *bv = ts_read(b);
  int zeros = 0, same = 0;
  for (int i = 0; i < 1000; ++i) {
    cr_assert(av[i] == 0 || av[i] == 2, "element %d is %g", i, av[i]);
    zeros += av[i] == 0;
    same += av[i] == bv[i];
  }
  cr_assert(zeros > 420 && zeros < 580, "%d zeros", zeros);
  cr_assert(same < 600, "two training calls used nearly the same mask (%d equal)", same);
  /* restarting the sequence repeats the masks */
  OK(ct_module_set_seed(d, 123));
  OK(ct_module_call(d, x, true, &c));
  double *cv = ts_read(c);
  cr_assert(memcmp(av, cv, sizeof(double) * 1000) == 0, "set_seed did not restart the sequence");
  free(av), free(bv), free(cv);
  ct_tensor *t[] = {x, a, b, c, e};
  ct_tensor_free_n(t, 5);
  /* the layer's gradient (its mask) by the checker */
  ct_tensor *x64 = random_tensor(FDT, 2, SH(4, 6), 4, NULL);
  gradcheck_layer(d, x64, true, 9, "Dropout");
  ct_tensor_free(x64);
  ct_module *bad = NULL;
  EXPECT_STATUS(ct_dropout_create(CTX, 1.0, 1, NULL, &bad), CT_ERR_INVALID);
  ct_module_free(d);
}

/* ---- user-defined modules ------------------------------------------------------------------------ */
static ct_status residual_forward(ct_module *self, const ct_tensor *x, bool training, ct_tensor **out, void *user) {
  (void)user;
  ct_tensor *h = NULL, *s = NULL;
  ct_status st = ct_module_call(ct_module_child(self, 0), x, training, &h);
  if (st == CT_OK) st = ct_add(x, h, &s);
  if (st == CT_OK) st = ct_mul(s, ct_module_own_variable(self, 0), out);
  ct_tensor_free(h);
  ct_tensor_free(s);
  return st;
}

Test(nn_layers, user_defined_module, .init = setup, .fini = teardown) {
  ct_module *res, *d;
  OK(ct_module_create(CTX, "residual", residual_forward, NULL, &res));
  ct_layer_options o = ct_layer_default_options();
  o.dtype = FDT;
  OK(ct_dense_create(CTX, 3, 3, CT_ACTIVATION_TANH, &o, &d));
  OK(ct_module_add(res, d));
  ct_tensor *g = ts_tensor(CTX, FDT, 0, NULL, (const double[]){1.5});
  OK(ct_module_add_variable(res, g, "gain", true, NULL));
  ct_tensor *v[4];
  int n;
  OK(ct_module_variables(res, v, 4, &n));
  cr_assert_eq(n, 3);
  cr_assert_str_eq(ct_variable_name(v[0]), "residual/gain:0");
  cr_assert_str_eq(ct_variable_name(v[1]), "residual/dense/kernel:0");
  ct_tensor *x = random_tensor(FDT, 2, SH(2, 3), 8, NULL);
  gradcheck_layer(res, x, true, 0, "user-defined residual module");
  ct_tensor_free(x);
  ct_tensor_free(g);
  ct_module_free(d);
  ct_module_free(res);
}

/* ---- initializers --------------------------------------------------------------------------------- */
Test(nn_layers, initializers, .init = setup, .fini = teardown) {
  double fi, fo;
  OK(ct_initializer_fans(2, SH(300, 200), &fi, &fo));
  cr_assert(fi == 300 && fo == 200);
  OK(ct_initializer_fans(4, SH(3, 5, 16, 32), &fi, &fo));
  cr_assert(fi == 240 && fo == 480);
  OK(ct_initializer_fans(1, SH(7), &fi, &fo));
  cr_assert(fi == 7 && fo == 7);
  struct {
    ct_initializer init;
    double limit, stddev; /* limit 0: normal */
  } cases[] = {
      {CT_INIT_GLOROT_UNIFORM, sqrt(6.0 / 500), 0}, {CT_INIT_GLOROT_NORMAL, 0, sqrt(2.0 / 500)},
      {CT_INIT_HE_UNIFORM, sqrt(6.0 / 300), 0},     {CT_INIT_HE_NORMAL, 0, sqrt(2.0 / 300)},
  };
  for (int c = 0; c < 4; ++c) {
    ct_tensor *t = NULL, *t2 = NULL, *t3 = NULL;
    OK(ct_initialize(CTX, cases[c].init, CT_FLOAT32, 2, SH(300, 200), 77, &t));
    OK(ct_initialize(CTX, cases[c].init, CT_FLOAT32, 2, SH(300, 200), 77, &t2));
    OK(ct_initialize(CTX, cases[c].init, CT_FLOAT32, 2, SH(300, 200), 78, &t3));
    float *a = malloc(sizeof(float) * 60000), *b = malloc(sizeof(float) * 60000), *e = malloc(sizeof(float) * 60000);
    OK(ct_tensor_read(t, a, sizeof(float) * 60000));
    OK(ct_tensor_read(t2, b, sizeof(float) * 60000));
    OK(ct_tensor_read(t3, e, sizeof(float) * 60000));
    cr_assert(memcmp(a, b, sizeof(float) * 60000) == 0, "same seed, other values");
    cr_assert(memcmp(a, e, sizeof(float) * 60000) != 0, "other seed, same values");
    double sum = 0, sq = 0, mx = 0;
    for (int i = 0; i < 60000; ++i) {
      sum += a[i];
      sq += (double)a[i] * a[i];
      mx = fmax(mx, fabs(a[i]));
    }
    double mean = sum / 60000, sd = sqrt(sq / 60000 - mean * mean);
    double want_sd = cases[c].limit > 0 ? cases[c].limit / sqrt(3.0) : cases[c].stddev;
    cr_assert(fabs(mean) < 0.02 * want_sd * 10, "initializer %d: mean %g", c, mean);
    cr_assert(fabs(sd - want_sd) < 0.02 * want_sd, "initializer %d: stddev %g, wanted %g", c, sd, want_sd);
    if (cases[c].limit > 0) cr_assert(mx <= cases[c].limit && mx > 0.99 * cases[c].limit, "max %g", mx);
    free(a), free(b), free(e);
    ct_tensor_free(t), ct_tensor_free(t2), ct_tensor_free(t3);
  }
  ct_tensor *z = NULL, *o = NULL;
  OK(ct_initialize(CTX, CT_INIT_ZEROS, FDT, 1, SH(3), 1, &z));
  OK(ct_initialize(CTX, CT_INIT_ONES, FDT, 1, SH(3), 1, &o));
  ts_assert_close(z, (const double[]){0, 0, 0}, 3, 0, 0, "zeros");
  ts_assert_close(o, (const double[]){1, 1, 1}, 3, 0, 0, "ones");
  ct_tensor *bad = NULL;
  EXPECT_STATUS(ct_initialize(CTX, CT_INIT_ZEROS, CT_INT32, 1, SH(3), 1, &bad), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_initialize(CTX, (ct_initializer)42, CT_FLOAT32, 1, SH(3), 1, &bad), CT_ERR_INVALID);
  EXPECT_STATUS(ct_initializer_fans(1, NULL, &fi, &fo), CT_ERR_SHAPE);
  ct_tensor_free(z), ct_tensor_free(o);
}

/* ---- losses and metrics --------------------------------------------------------------------------- */
Test(nn_layers, losses_and_metrics, .init = setup, .fini = teardown) {
  const double z[12] = {2.0, 1.0, 0.1, 0.5, 2.5, 0.3, -1, -2, -0.5, 0, 0, 0}; /* 4 examples, 3 classes */
  const double lab[4] = {0, 1, 0, 2};
  ct_tensor *lg = ts_tensor(CTX, CT_FLOAT32, 2, SH(4, 3), z), *lb = ts_tensor(CTX, CT_INT32, 1, SH(4), lab);
  ct_tensor *loss = NULL, *acc = NULL, *cnt = NULL;
  OK(ct_softmax_cross_entropy(lg, lb, &loss));
  double want = 0;
  for (int r = 0; r < 4; ++r) {
    double s = 0;
    for (int k = 0; k < 3; ++k) s += exp(z[r * 3 + k]);
    want += (log(s) - z[r * 3 + (int)lab[r]]) / 4;
  }
  cr_assert_float_eq(ts_item(loss), want, 1e-6);
  OK(ct_count_correct(lg, lb, &cnt));
  cr_assert_eq(ct_tensor_dtype(cnt), CT_INT32);
  cr_assert_eq(ts_item(cnt), 2.0); /* rows 0 and 1; row 2 picks class 2, row 3 ties -> class 0 */
  OK(ct_accuracy(lg, lb, &acc));
  cr_assert_eq(ct_tensor_dtype(acc), CT_FLOAT32);
  cr_assert_float_eq(ts_item(acc), 0.5, 1e-7);
  ct_tensor *p = ts_tensor(CTX, FDT, 2, SH(2, 2), (const double[]){1, 2, 3, 4});
  ct_tensor *t = ts_tensor(CTX, FDT, 2, SH(2, 2), (const double[]){0, 2, 5, 3}), *mse = NULL;
  OK(ct_mean_squared_error(p, t, &mse));
  cr_assert_float_eq(ts_item(mse), (1 + 0 + 4 + 1) / 4.0, TOL);
  /* MSE's gradient */
  ct_tape *tape;
  ct_tensor *g = NULL, *mse2 = NULL;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_tape_watch(tape, p));
  OK(ct_mean_squared_error(p, t, &mse2));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, mse2, p, &g));
  ts_assert_close(g, (const double[]){0.5, 0, -1, 0.5}, 4, TOL, 0, "d mse / d pred = 2 (p - t) / n");
  ct_tensor *bad = ts_tensor(CTX, FDT, 1, SH(4), (const double[]){1, 2, 3, 4}), *r = NULL;
  EXPECT_STATUS(ct_mean_squared_error(p, bad, &r), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_count_correct(lg, t, &r), CT_ERR_DTYPE);
  ct_tensor *all[] = {lg, lb, loss, acc, cnt, p, t, mse, g, mse2, bad};
  ct_tensor_free_n(all, 11);
  ct_tape_free(tape);
}

/* ---- Activation, and ReLU commuting with max pooling -------------------------------------------- */
Test(nn_layers, activation_layer, .init = setup, .fini = teardown) {
  ct_module *a = NULL, *t = NULL;
  OK(ct_activation_create(CTX, CT_ACTIVATION_RELU, NULL, &a));
  OK(ct_activation_create(CTX, CT_ACTIVATION_TANH, "squash", &t));
  cr_assert_str_eq(ct_module_name(a), "activation");
  cr_assert_str_eq(ct_module_kind(t), "Activation");
  cr_assert_eq(ct_module_num_params(a, false), 0);
  double *xv;
  ct_tensor *x = random_tensor(FDT, 4, SH(2, 6, 6, 8), 31, &xv), *y = NULL;
  OK(ct_module_call(t, x, true, &y));
  double want[576];
  for (int i = 0; i < 576; ++i) want[i] = tanh(xv[i]);
  ts_assert_close(y, want, 576, TOL, TOL, "tanh layer");
  ct_tensor_free(y);
  gradcheck_layer(t, x, true, 0, "Activation tanh");
  /* max_pool(relu(x)) == relu(max_pool(x)), values and gradients */
  int p2[2] = {2, 2};
  ct_module *before, *after, *l;
  OK(ct_sequential_create(CTX, NULL, &before));
  OK(ct_sequential_create(CTX, NULL, &after));
  OK(ct_sequential_add(before, a));
  OK(ct_max_pool2d_create(CTX, p2, NULL, CT_PADDING_VALID, NULL, &l));
  OK(ct_sequential_add(before, l));
  ct_module_free(l);
  OK(ct_max_pool2d_create(CTX, p2, NULL, CT_PADDING_VALID, NULL, &l));
  OK(ct_sequential_add(after, l));
  ct_module_free(l);
  OK(ct_activation_create(CTX, CT_ACTIVATION_RELU, NULL, &l));
  OK(ct_sequential_add(after, l));
  ct_module_free(l);
  ct_tensor *y1 = NULL, *y2 = NULL, *g1 = NULL, *g2 = NULL, *w = random_tensor(FDT, 4, SH(2, 3, 3, 8), 32, NULL);
  ct_tape *t1, *t2;
  OK(ct_tape_begin(CTX, NULL, &t1));
  OK(ct_tape_watch(t1, x));
  OK(ct_module_call(before, x, true, &y1));
  OK(ct_tape_end(t1));
  OK(ct_tape_begin(CTX, NULL, &t2));
  OK(ct_tape_watch(t2, x));
  OK(ct_module_call(after, x, true, &y2));
  OK(ct_tape_end(t2));
  double *v1 = ts_read(y1);
  ts_assert_close(y2, v1, 144, 0, 0, "relu then pool = pool then relu");
  OK(ct_tape_gradient(t1, &y1, 1, &x, 1, &w, CT_UNCONNECTED_NONE, &g1));
  OK(ct_tape_gradient(t2, &y2, 1, &x, 1, &w, CT_UNCONNECTED_NONE, &g2));
  double *gv = ts_read(g1);
  ts_assert_close(g2, gv, 576, 0, 0, "and their gradients");
  free(v1), free(gv), free(xv);
  ct_module *bad = NULL;
  EXPECT_STATUS(ct_activation_create(CTX, (ct_activation)40, NULL, &bad), CT_ERR_INVALID);
  ct_tensor *all[] = {x, y1, y2, g1, g2, w};
  ct_tensor_free_n(all, 6);
  ct_tape_free(t1), ct_tape_free(t2);
  ct_module_free(a), ct_module_free(t), ct_module_free(before), ct_module_free(after);
}

/* ---- the fused Dense op ---------------------------------------------------------------------- */
/* A Dense layer with a bias and no activation or ReLU runs as one op (MatMulBiasAdd or
 * MatMulBiasRelu: the bias and ReLU applied as the product is stored). Its output and the
 * gradients of x, the kernel and the bias equal, bit for bit, those of matmul, bias_add and relu
 * as separate ops, for shapes that fill whole register tiles and shapes that do not. */
static void expect_same_bits(const ct_tensor *a, const ct_tensor *b, const char *what) {
  cr_assert_eq(ct_tensor_size(a), ct_tensor_size(b), "%s: sizes differ", what);
  double *x = ts_read(a), *y = ts_read(b);
  for (int64_t i = 0; i < ct_tensor_size(a); ++i)
    cr_assert(memcmp(&x[i], &y[i], sizeof x[i]) == 0, "%s: element %lld is %.9g fused, %.9g unfused", what,
              (long long)i, x[i], y[i]);
  free(x);
  free(y);
}

/* The layer (which runs its fused op) against `separate` (the same computation op by op) on x: the
 * output and the gradients of x and the layer's two variables, bit for bit. */
typedef ct_status (*separate_fn)(const ct_tensor *x, ct_tensor *const *v, const void *u, ct_tensor **t, ct_tensor **y);
static void fused_equals_separate(ct_module *layer, ct_tensor *x, separate_fn separate, const void *u, const char *what) {
  ct_tensor *v[2] = {0};
  int nv = 0;
  OK(ct_module_variables(layer, v, 2, &nv));
  cr_assert_eq(nv, 2);
  ct_tensor *src[3] = {x, v[0], v[1]};
  ct_tape *t1 = NULL, *t2 = NULL;
  ct_tensor *y1 = NULL, *g1[3] = {0}, *y2 = NULL, *g2[3] = {0}, *mid[2] = {0};
  OK(ct_tape_begin(CTX, NULL, &t1));
  OK(ct_tape_watch(t1, x));
  OK(ct_module_call(layer, x, true, &y1));
  OK(ct_tape_end(t1));
  OK(ct_tape_gradient(t1, &y1, 1, src, 3, NULL, CT_UNCONNECTED_NONE, g1));
  OK(ct_tape_begin(CTX, NULL, &t2));
  OK(ct_tape_watch(t2, x));
  OK(separate(x, v, u, mid, &y2));
  OK(ct_tape_end(t2));
  OK(ct_tape_gradient(t2, &y2, 1, src, 3, NULL, CT_UNCONNECTED_NONE, g2));
  expect_same_bits(y1, y2, what);
  for (int i = 0; i < 3; ++i) {
    cr_assert(g1[i] && g2[i], "%s: gradient %d missing", what, i);
    expect_same_bits(g1[i], g2[i], what);
  }
  ct_tensor *all[] = {y1, y2, mid[0], mid[1], g1[0], g1[1], g1[2], g2[0], g2[1], g2[2]};
  ct_tensor_free_n(all, 10);
  ct_tape_free(t1);
  ct_tape_free(t2);
}

static ct_status dense_separate(const ct_tensor *x, ct_tensor *const *v, const void *u, ct_tensor **t, ct_tensor **y) {
  ct_status s = ct_matmul(x, v[0], false, false, &t[0]);
  if (s == CT_OK) s = ct_bias_add(t[0], v[1], &t[1]);
  return s == CT_OK ? ct_activate(t[1], *(const ct_activation *)u, y) : s;
}

static void dense_fused_case(ct_dtype dt, int64_t M, int64_t K, int64_t N, ct_activation act) {
  ct_layer_options o = ct_layer_default_options();
  o.dtype = dt;
  o.bias_initializer = CT_INIT_GLOROT_UNIFORM; /* a bias of both signs, not zeros */
  ct_module *dense = NULL;
  OK(ct_dense_create(CTX, K, N, act, &o, &dense));
  ct_tensor *x = random_tensor(dt, 2, SH(M, K), (uint32_t)(M * 131 + N), NULL);
  char what[96];
  snprintf(what, sizeof what, "%s %lldx%lldx%lld %s", ct_dtype_name(dt), (long long)M, (long long)K, (long long)N,
           ct_activation_name(act));
  fused_equals_separate(dense, x, dense_separate, &act, what);
  ct_tensor_free(x);
  ct_module_free(dense);
}

Test(nn_layers, dense_bias_relu_fused_equals_the_separate_ops, .init = setup, .fini = teardown) {
  const int64_t shapes[][3] = {{256, 784, 256}, {37, 29, 23}, {1, 3, 1}, {64, 16, 32}, {5, 300, 10}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; ++s) {
    dense_fused_case(CT_FLOAT32, shapes[s][0], shapes[s][1], shapes[s][2], CT_ACTIVATION_RELU);
    dense_fused_case(CT_FLOAT32, shapes[s][0], shapes[s][1], shapes[s][2], CT_ACTIVATION_NONE);
  }
  if (FDT == CT_FLOAT64) dense_fused_case(CT_FLOAT64, 37, 29, 23, CT_ACTIVATION_RELU);
}

/* A Conv2D layer with a bias and no activation or ReLU runs as one op (Conv2DBiasAdd or
 * Conv2DBiasRelu: the direct kernels add the bias and apply ReLU as they store the sums). Its output
 * and the gradients of x, the filter and the bias equal, bit for bit, those of conv2d, bias_add and
 * relu as separate ops, on the direct kernels (vector ones with tiles of 8 and 7 columns, the scalar
 * one) and through matrix products. */
typedef struct {
  const int *strides;
  ct_padding pad;
  ct_activation act;
} conv_separate_args;
static ct_status conv_separate(const ct_tensor *x, ct_tensor *const *v, const void *u, ct_tensor **t, ct_tensor **y) {
  const conv_separate_args *a = u;
  ct_status s = ct_conv2d(x, v[0], a->strides, a->pad, &t[0]);
  if (s == CT_OK) s = ct_bias_add(t[0], v[1], &t[1]);
  return s == CT_OK ? ct_activate(t[1], a->act, y) : s;
}

static void conv_fused_case(ct_dtype dt, const int64_t *xs, int64_t oc, const int *k, int stride, ct_padding pad,
                            ct_activation act, const char *path) {
  ct__env_override("CLTAPE_CONV", path);
  ct_layer_options o = ct_layer_default_options();
  o.dtype = dt;
  o.bias_initializer = CT_INIT_GLOROT_UNIFORM; /* a bias of both signs, not zeros */
  ct_module *conv = NULL;
  const int st[2] = {stride, stride};
  OK(ct_conv2d_create(CTX, xs[3], oc, k, st, pad, act, &o, &conv));
  ct_tensor *x = random_tensor(dt, 4, xs, (uint32_t)(xs[1] * 131 + oc), NULL);
  char what[128];
  snprintf(what, sizeof what, "%s [%lld %lld %lld %lld] -> %lld, %dx%d/%d, %s, %s", ct_dtype_name(dt), (long long)xs[0],
           (long long)xs[1], (long long)xs[2], (long long)xs[3], (long long)oc, k[0], k[1], stride,
           ct_activation_name(act), path);
  const conv_separate_args a = {st, pad, act};
  fused_equals_separate(conv, x, conv_separate, &a, what);
  ct__env_override("CLTAPE_CONV", NULL);
  ct_tensor_free(x);
  ct_module_free(conv);
}

Test(nn_layers, conv_bias_relu_fused_equals_the_separate_ops, .init = setup, .fini = teardown) {
  static const struct {
    int64_t x[4], oc;
    int k[2], stride;
    ct_padding pad;
  } cases[] = {
      {{2, 9, 11, 3}, 8, {3, 3}, 1, CT_PADDING_SAME},    /* vector kernel, tiles of 8, a partial one */
      {{2, 14, 14, 8}, 16, {3, 3}, 1, CT_PADDING_SAME},  /* tiles of 7 */
      {{1, 7, 9, 2}, 5, {2, 3}, 2, CT_PADDING_VALID},    /* the scalar kernel, stride 2 */
      {{3, 6, 6, 16}, 24, {1, 1}, 1, CT_PADDING_VALID},  /* a 1x1 window */
  };
  const char *paths[] = {"direct", "gemm"};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c)
    for (int p = 0; p < 2; ++p) {
      conv_fused_case(CT_FLOAT32, cases[c].x, cases[c].oc, cases[c].k, cases[c].stride, cases[c].pad,
                      CT_ACTIVATION_RELU, paths[p]);
      conv_fused_case(CT_FLOAT32, cases[c].x, cases[c].oc, cases[c].k, cases[c].stride, cases[c].pad,
                      CT_ACTIVATION_NONE, paths[p]);
    }
  if (FDT == CT_FLOAT64)
    for (int p = 0; p < 2; ++p)
      conv_fused_case(CT_FLOAT64, cases[0].x, cases[0].oc, cases[0].k, 1, CT_PADDING_SAME, CT_ACTIVATION_RELU, paths[p]);
}

/* The fused ops check what the layers' functional calls may hand them: a bias of units - 1
 * elements, and an int32 kernel (cast 0) or bias (cast 1) with the right shapes. */
static void refuses_mismatched(ct_module *layer, ct_tensor *x, ct_tensor *kernel, int64_t units, int cast) {
  ct_tensor *y = NULL, *bad_bias = random_tensor(CT_FLOAT32, 1, SH(units - 1), 9, NULL);
  ct_tensor *bias = random_tensor(CT_FLOAT32, 1, SH(units), 10, NULL);
  ct_tensor *p[2] = {kernel, bad_bias};
  cr_assert_neq(ct_module_call_with(layer, x, p, 2, false, &y), CT_OK, "a bias of %lld for %lld units was taken",
                (long long)(units - 1), (long long)units);
  cr_assert_null(y);
  p[1] = bias;
  OK(ct_module_call_with(layer, x, p, 2, false, &y)); /* the right shapes and dtypes are taken */
  ct_tensor *ints = NULL;
  OK(ct_cast(p[cast], CT_INT32, &ints));
  p[cast] = ints;
  ct_tensor *y2 = NULL;
  cr_assert_neq(ct_module_call_with(layer, x, p, 2, false, &y2), CT_OK, "an int32 %s was taken",
                cast ? "bias" : "kernel");
  cr_assert_null(y2);
  ct_tensor *all[] = {x, kernel, bad_bias, bias, ints, y};
  ct_tensor_free_n(all, 6);
  ct_module_free(layer);
}

Test(nn_layers, fused_layers_refuse_mismatched_parameters, .init = setup, .fini = teardown) {
  ct_module *dense = NULL, *conv = NULL;
  OK(ct_dense_create(CTX, 4, 3, CT_ACTIVATION_RELU, NULL, &dense));
  refuses_mismatched(dense, random_tensor(CT_FLOAT32, 2, SH(2, 4), 7, NULL),
                     random_tensor(CT_FLOAT32, 2, SH(4, 3), 8, NULL), 3, 0);
  const int k[2] = {3, 3};
  OK(ct_conv2d_create(CTX, 2, 4, k, NULL, CT_PADDING_SAME, CT_ACTIVATION_RELU, NULL, &conv));
  refuses_mismatched(conv, random_tensor(CT_FLOAT32, 4, SH(1, 5, 5, 2), 7, NULL),
                     random_tensor(CT_FLOAT32, 4, SH(3, 3, 2, 4), 8, NULL), 4, 1);
}

/* The bias gradient (column sums of dy) in one band of rows (up to 512) and in several. */
Test(nn_layers, bias_gradient_column_sums_for_short_and_long_columns, .init = setup, .fini = teardown) {
  const int64_t rows[] = {1, 256, 512, 513, 1100, 40000};
  const int64_t cols[] = {10, 16};
  for (size_t r = 0; r < sizeof rows / sizeof *rows; ++r)
    for (size_t c = 0; c < 2; ++c) {
      const int64_t M = rows[r], C = cols[c];
      double *hdy = NULL;
      ct_tensor *x = random_tensor(CT_FLOAT32, 2, SH(M, C), 3, NULL);
      ct_tensor *b = random_tensor(CT_FLOAT32, 1, SH(C), 4, NULL);
      ct_tensor *dy = random_tensor(CT_FLOAT32, 2, SH(M, C), (uint32_t)(5 + M), &hdy);
      ct_tape *t = NULL;
      ct_tensor *y = NULL, *db = NULL;
      OK(ct_tape_begin(CTX, NULL, &t));
      OK(ct_tape_watch(t, b));
      OK(ct_bias_add(x, b, &y));
      OK(ct_tape_end(t));
      OK(ct_tape_gradient(t, &y, 1, &b, 1, &dy, CT_UNCONNECTED_NONE, &db));
      double *got = ts_read(db);
      for (int64_t j = 0; j < C; ++j) {
        double want = 0, mag = 0;
        for (int64_t i = 0; i < M; ++i) {
          want += (float)hdy[i * C + j];
          mag += fabs((float)hdy[i * C + j]);
        }
        cr_assert(fabs(got[j] - want) <= 1e-6 * mag + 1e-6, "%lld x %lld: column %lld sums to %.9g, wanted %.9g",
                  (long long)M, (long long)C, (long long)j, got[j], want);
      }
      free(got);
      free(hdy);
      ct_tensor *all[] = {x, b, dy, y, db};
      ct_tensor_free_n(all, 5);
      ct_tape_free(t);
    }
}
