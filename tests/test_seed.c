/* The seed conformance cases S1-S20 (shared/seed/CONFORMANCE.md): one test per case, asserting the
 * values the guide prints. */
#include "support.h"
#ifdef CLTAPE_HAVE_PLOT
#include "plot.h"
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_tensor *var_f32(ct_context *ctx, int rank, const int64_t *shape, const double *v, const char *name,
                          bool trainable) {
  ct_tensor *init = ts_tensor(ctx, CT_FLOAT32, rank, shape, v), *var = NULL;
  OK(ct_variable_create(init, name, trainable, &var));
  ct_tensor_free(init);
  return var;
}

static ct_tensor *scalar_f32(ct_context *ctx, double v) {
  ct_tensor *t = NULL;
  OK(ct_scalar(ctx, CT_FLOAT32, v, &t));
  return t;
}

static ct_tensor *pow2(const ct_tensor *x) {
  ct_tensor *y = NULL;
  OK(ct_pow_scalar(x, 2.0, &y));
  return y;
}

Test(seed, S1_square_of_a_variable) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *g = NULL;
  OK(ct_variable_scalar(ctx, 3.0, "x", true, &x));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  ct_tensor *y = pow2(x);
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, y, x, &g));
  cr_assert_float_eq(ts_item(y), 9.0, 1e-6);
  cr_assert_float_eq(ts_item(g), 6.0, 1e-6);
  ct_tensor_free(g);
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

/* y = x @ w + b, loss = mean(y^2): dl/dy = y (two elements), dl/db = y, dl/dw = x^T y. */
static void check_linear_grads(const double *x, int k, const double *yv, const ct_tensor *dw, const ct_tensor *db,
                               const double *zmask) {
  double want_w[3 * 2], want_b[2];
  for (int j = 0; j < 2; ++j) want_b[j] = yv[j] * (zmask ? zmask[j] : 1.0);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < 2; ++j) want_w[i * 2 + j] = x[i] * want_b[j];
  ts_assert_close(dw, want_w, k * 2, 1e-5, 1e-5, "dl/dw");
  ts_assert_close(db, want_b, 2, 1e-5, 1e-5, "dl/db");
}

Test(seed, S2_linear_layer_list_and_named_sources) {
  ct_context *ctx = ts_ctx();
  int64_t ws[2] = {3, 2}, bs[1] = {2}, xs[2] = {1, 3};
  ct_tensor *w0 = NULL, *b0 = NULL, *w = NULL, *b = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, ws, 0.0, 1.0, 7, &w0));
  OK(ct_zeros(ctx, CT_FLOAT32, 1, bs, &b0));
  OK(ct_variable_create(w0, "w", true, &w));
  OK(ct_variable_create(b0, "b", true, &b));
  const double xv[3] = {1, 2, 3};
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 2, xs, xv);
  ct_tape_options o = ct_tape_default_options();
  o.persistent = true;
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, &o, &tape));
  ct_tensor *xw = NULL, *y = NULL, *loss = NULL;
  OK(ct_matmul(x, w, false, false, &xw));
  OK(ct_add(xw, b, &y));
  ct_tensor *y2 = pow2(y);
  OK(ct_mean(y2, NULL, 0, false, &loss));
  OK(ct_tape_end(tape));

  ct_tensor *src[2] = {w, b}, *gr[2] = {NULL, NULL};
  OK(ct_tape_gradient(tape, &loss, 1, src, 2, NULL, CT_UNCONNECTED_NONE, gr));
  ts_assert_shape(gr[0], 2, ws, "dl/dw");
  ts_assert_shape(gr[1], 1, bs, "dl/db");
  double *yv = ts_read(y);
  check_linear_grads(xv, 3, yv, gr[0], gr[1], NULL);

  /* the same sources as a name -> variable map */
  ct_named_tensor named[2] = {{"w", w}, {"b", b}}, out[2];
  OK(ct_tape_gradient_named(tape, &loss, 1, named, 2, CT_UNCONNECTED_NONE, out));
  cr_assert_eq(out[0].name, named[0].name);
  cr_assert_eq(out[1].name, named[1].name);
  ts_assert_shape(out[0].tensor, 2, ws, "named dl/dw");
  ts_assert_shape(out[1].tensor, 1, bs, "named dl/db");
  double *g0 = ts_read(gr[0]), *g1 = ts_read(gr[1]);
  ts_assert_close(out[0].tensor, g0, 6, 0, 0, "named dl/dw equals the list form");
  ts_assert_close(out[1].tensor, g1, 2, 0, 0, "named dl/db equals the list form");
  free(g0);
  free(g1);
  free(yv);
  ct_tensor_free(out[0].tensor);
  ct_tensor_free(out[1].tensor);
  ct_tensor_free_n(gr, 2);
  ct_tensor *tmp[] = {w0, b0, w, b, x, xw, y, y2, loss};
  ct_tensor_free_n(tmp, 9);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

/* Dense(2, activation=relu) built from ct_ ops: kernel (3, 2) and bias (2,) named as the layer
 * library will name them. */
Test(seed, S3_dense_layer_variables_by_name) {
  ct_context *ctx = ts_ctx();
  int64_t ks[2] = {3, 2}, bs[1] = {2}, xs[2] = {1, 3};
  ct_tensor *k0 = NULL, *b0 = NULL, *kernel = NULL, *bias = NULL;
  double lim = sqrt(6.0 / (3 + 2)); /* Glorot uniform */
  OK(ct_random_uniform(ctx, CT_FLOAT32, 2, ks, -lim, lim, 11, &k0));
  OK(ct_zeros(ctx, CT_FLOAT32, 1, bs, &b0));
  OK(ct_variable_create(k0, "dense/kernel", true, &kernel));
  OK(ct_variable_create(b0, "dense/bias", true, &bias));
  const double xv[3] = {1, 2, 3};
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 2, xs, xv);
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  ct_tensor *z0 = NULL, *z = NULL, *y = NULL, *loss = NULL;
  OK(ct_matmul(x, kernel, false, false, &z0));
  OK(ct_add(z0, bias, &z));
  OK(ct_relu(z, &y));
  ct_tensor *y2 = pow2(y);
  OK(ct_mean(y2, NULL, 0, false, &loss));
  OK(ct_tape_end(tape));

  /* the layer's trainable variables are what the tape watched, in creation order */
  ct_tensor *vars[4];
  int nv = 0;
  OK(ct_tape_watched_variables(tape, vars, 4, &nv));
  cr_assert_eq(nv, 2);
  ct_named_tensor src[2], out[2];
  for (int i = 0; i < 2; ++i) {
    src[i].name = ct_variable_name(vars[i]);
    src[i].tensor = vars[i];
  }
  OK(ct_tape_gradient_named(tape, &loss, 1, src, 2, CT_UNCONNECTED_NONE, out));
  cr_assert_str_eq(out[0].name, "dense/kernel:0");
  cr_assert_str_eq(out[1].name, "dense/bias:0");
  ts_assert_shape(out[0].tensor, 2, ks, "dense/kernel:0");
  ts_assert_shape(out[1].tensor, 1, bs, "dense/bias:0");
  double *yv = ts_read(y), *zv = ts_read(z);
  double mask[2] = {zv[0] > 0, zv[1] > 0};
  check_linear_grads(xv, 3, yv, out[0].tensor, out[1].tensor, mask);
  free(yv);
  free(zv);
  ct_tensor_free(out[0].tensor);
  ct_tensor_free(out[1].tensor);
  ct_tensor *tmp[] = {k0, b0, kernel, bias, x, z0, z, y, y2, loss};
  ct_tensor_free_n(tmp, 10);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S4_what_is_watched) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x0 = NULL, *x1 = NULL, *v2 = NULL, *x2 = NULL, *x3 = scalar_f32(ctx, 3.0);
  OK(ct_variable_scalar(ctx, 3.0, "x0", true, &x0));
  OK(ct_variable_scalar(ctx, 3.0, "x1", false, &x1));
  OK(ct_variable_scalar(ctx, 2.0, NULL, true, &v2));
  OK(ct_add_scalar(v2, 1.0, &x2)); /* a variable plus a number is a plain tensor */
  cr_assert(!ct_tensor_is_variable(x2));
  cr_assert_str_eq(ct_variable_name(x0), "x0:0");
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  ct_tensor *a = pow2(x0), *b = pow2(x1), *c = pow2(x2), *ab = NULL, *y = NULL;
  OK(ct_add(a, b, &ab));
  OK(ct_add(ab, c, &y));
  OK(ct_tape_end(tape));
  cr_assert_float_eq(ts_item(y), 27.0, 1e-5);
  ct_tensor *src[4] = {x0, x1, x2, x3}, *g[4];
  OK(ct_tape_gradient(tape, &y, 1, src, 4, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert_float_eq(ts_item(g[0]), 6.0, 1e-6);
  cr_assert_null(g[1], "non-trainable variable: None");
  cr_assert_null(g[2], "plain tensor: None");
  cr_assert_null(g[3], "constant: None");
  ct_tensor *vars[4];
  int nv = -1;
  OK(ct_tape_watched_variables(tape, vars, 4, &nv));
  cr_assert_eq(nv, 1);
  cr_assert_str_eq(ct_variable_name(vars[0]), "x0:0");
  ct_tensor_free_n(g, 4);
  ct_tensor *tmp[] = {x0, x1, v2, x2, x3, a, b, c, ab, y};
  ct_tensor_free_n(tmp, 10);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S5_watched_constant) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = scalar_f32(ctx, 3.0), *g = NULL;
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  ct_tensor *y = pow2(x);
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, y, x, &g));
  cr_assert_float_eq(ts_item(g), 6.0, 1e-6);
  ct_tensor *tmp[] = {x, y, g};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S6_no_automatic_watch) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x0 = NULL, *x1 = NULL;
  OK(ct_variable_scalar(ctx, 0.0, "x0", true, &x0));
  OK(ct_variable_scalar(ctx, 10.0, "x1", true, &x1));
  ct_tape_options o = {false, false};
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, &o, &tape));
  OK(ct_tape_watch(tape, x1));
  ct_tensor *y0 = NULL, *y1 = NULL, *s = NULL, *ys = NULL;
  OK(ct_sin(x0, &y0));
  OK(ct_softplus(x1, &y1));
  OK(ct_add(y0, y1, &s));
  OK(ct_sum(s, NULL, 0, false, &ys));
  OK(ct_tape_end(tape));
  ct_tensor *src[2] = {x0, x1}, *g[2];
  OK(ct_tape_gradient(tape, &ys, 1, src, 2, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert_null(g[0]);
  cr_assert_float_eq(ts_item(g[1]), 0.9999546, 1e-6);
  ct_tensor *vars[2];
  int nv = 0;
  OK(ct_tape_watched_variables(tape, vars, 2, &nv));
  cr_assert_eq(nv, 1);
  cr_assert_eq(vars[0], x1);
  ct_tensor_free_n(g, 2);
  ct_tensor *tmp[] = {x0, x1, y0, y1, s, ys};
  ct_tensor_free_n(tmp, 6);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S7_gradient_of_an_intermediate) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = scalar_f32(ctx, 3.0), *y = NULL, *z = NULL, *g = NULL;
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  OK(ct_mul(x, x, &y));
  OK(ct_mul(y, y, &z));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, z, y, &g));
  cr_assert_float_eq(ts_item(g), 18.0, 1e-5);
  ct_tensor *tmp[] = {x, y, z, g};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S8_persistent_and_non_persistent) {
  ct_context *ctx = ts_ctx();
  int64_t n2[1] = {2};
  const double xv[2] = {1, 3};
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, n2, xv);
  for (int persistent = 1; persistent >= 0; --persistent) {
    ct_tape_options o = {persistent != 0, true};
    ct_tape *tape = NULL;
    ct_tensor *y = NULL, *z = NULL, *dz = NULL, *dy = NULL;
    OK(ct_tape_begin(ctx, &o, &tape));
    OK(ct_tape_watch(tape, x));
    OK(ct_mul(x, x, &y));
    OK(ct_mul(y, y, &z));
    OK(ct_tape_end(tape));
    cr_assert_eq(ct_tape_size(tape), 2);
    uint64_t held = 0;
    OK(ct_tape_saved_bytes(tape, &held));
    cr_assert_gt(held, 0);
    OK(ct_tape_gradient1(tape, z, x, &dz));
    const double want_z[2] = {4, 108}, want_y[2] = {2, 6};
    ts_assert_close(dz, want_z, 2, 1e-5, 1e-6, "dz/dx");
    if (persistent) {
      OK(ct_tape_gradient1(tape, y, x, &dy));
      ts_assert_close(dy, want_y, 2, 1e-6, 1e-6, "dy/dx");
      OK(ct_tape_saved_bytes(tape, &held));
      cr_assert_gt(held, 0, "a persistent tape keeps its records until released");
    } else {
      /* released when the first gradient returned; a second call is refused */
      OK(ct_tape_saved_bytes(tape, &held));
      cr_assert_eq(held, 0);
      cr_assert_eq(ct_tape_size(tape), 0);
      EXPECT_STATUS(ct_tape_gradient1(tape, y, x, &dy), CT_ERR_TAPE_USED);
      cr_assert_null(dy);
      cr_assert(strstr(ct_errmsg(), "persistent"), "message: %s", ct_errmsg());
    }
    ct_tensor *tmp[] = {y, z, dz, dy};
    ct_tensor_free_n(tmp, 4);
    ct_tape_free(tape);
  }
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* y0 = x^2, y1 = 1/x at x = 2 on one persistent tape */
static ct_tape *two_targets(ct_context *ctx, ct_tensor **x, ct_tensor **y0, ct_tensor **y1) {
  OK(ct_variable_scalar(ctx, 2.0, "x", true, x));
  ct_tape_options o = {true, true};
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, &o, &tape));
  *y0 = pow2(*x);
  OK(ct_rdiv_scalar(1.0, *x, y1));
  OK(ct_tape_end(tape));
  return tape;
}

Test(seed, S9_two_targets_separately) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x, *y0, *y1, *g0 = NULL, *g1 = NULL;
  ct_tape *tape = two_targets(ctx, &x, &y0, &y1);
  OK(ct_tape_gradient1(tape, y0, x, &g0));
  OK(ct_tape_gradient1(tape, y1, x, &g1));
  cr_assert_float_eq(ts_item(g0), 4.0, 1e-6);
  cr_assert_float_eq(ts_item(g1), -0.25, 1e-7);
  ct_tensor *tmp[] = {x, y0, y1, g0, g1};
  ct_tensor_free_n(tmp, 5);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S10_two_targets_in_one_call) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x, *y0, *y1, *gs = NULL;
  ct_tape *tape = two_targets(ctx, &x, &y0, &y1);
  ct_tensor *ys[2] = {y0, y1};
  OK(ct_tape_gradient(tape, ys, 2, &x, 1, NULL, CT_UNCONNECTED_NONE, &gs));
  cr_assert_float_eq(ts_item(gs), 3.75, 1e-6);
  ct_tensor *tmp[] = {x, y0, y1, gs};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S11_non_scalar_target) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *g = NULL;
  OK(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  int64_t n2[1] = {2};
  const double cv[2] = {3, 4};
  ct_tensor *c = ts_tensor(ctx, CT_FLOAT32, 1, n2, cv);
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_mul(x, c, &y));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, y, x, &g));
  cr_assert_float_eq(ts_item(g), 7.0, 1e-6);
  ct_tensor *tmp[] = {x, y, g, c};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S12_sigmoid_curve_and_plot) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *g = NULL;
  OK(ct_linspace(ctx, CT_FLOAT32, -10.0, 10.0, 201, &x));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  OK(ct_sigmoid(x, &y));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, y, x, &g));
  double *xv = ts_read(x), *yv = ts_read(y), *gv = ts_read(g);
  int peak = 0;
  for (int i = 0; i < 201; ++i) {
    double s = 1.0 / (1.0 + exp(-xv[i]));
    cr_assert(fabs(yv[i] - s) <= 1e-6, "sigmoid(%g) = %.9g, wanted %.9g", xv[i], yv[i], s);
    cr_assert(fabs(gv[i] - s * (1 - s)) <= 1e-6, "dy/dx at %g = %.9g, wanted %.9g", xv[i], gv[i], s * (1 - s));
    if (gv[i] > gv[peak]) peak = i;
  }
  cr_assert_eq(peak, 100);
  cr_assert_float_eq(xv[peak], 0.0, 1e-6);
  cr_assert_float_eq(gv[peak], 0.25, 1e-7);
#ifdef CLTAPE_HAVE_PLOT /* the picture, where the examples' plots are built (with cairo) */
  char path[512];
  snprintf(path, sizeof path, "%s/seed_S12_sigmoid.svg", CLTAPE_BINARY_DIR);
  plot *p = plot_create("sigmoid and its derivative", "x", "");
  cr_assert(p);
  cr_assert_eq(plot_add_series(p, "y", xv, yv, 201, 0), 0);
  cr_assert_eq(plot_add_series(p, "dy/dx", xv, gv, 201, 0), 0);
  cr_assert_eq(plot_write_svg(p, path), 0);
  plot_free(p);
  plot_cleanup();
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s was not written", path);
  char head[256] = {0};
  size_t got = fread(head, 1, sizeof head - 1, f);
  fclose(f);
  cr_assert(got > 0 && strstr(head, "<svg"), "%s is not an SVG file", path);
#endif
  free(xv);
  free(yv);
  free(gv);
  ct_tensor *tmp[] = {x, y, g};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S13_host_control_flow) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = scalar_f32(ctx, 1.0), *v0 = NULL, *v1 = NULL, *result = NULL, *positive = NULL;
  OK(ct_variable_scalar(ctx, 2.0, "v0", true, &v0));
  OK(ct_variable_scalar(ctx, 2.0, "v1", true, &v1));
  ct_tape_options o = {true, true};
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, &o, &tape));
  OK(ct_tape_watch(tape, x));
  OK(ct_greater_scalar(x, 0.0, &positive));
  if (ts_item(positive) != 0) result = ct_tensor_retain(v0);
  else result = pow2(v1);
  OK(ct_tape_end(tape));
  ct_tensor *src[2] = {v0, v1}, *g[2], *dx = NULL;
  OK(ct_tape_gradient(tape, &result, 1, src, 2, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert_float_eq(ts_item(g[0]), 1.0, 1e-7);
  cr_assert_null(g[1]);
  OK(ct_tape_gradient1(tape, result, x, &dx));
  cr_assert_null(dx);
  ct_tensor_free_n(g, 2);
  ct_tensor *tmp[] = {x, v0, v1, result, positive};
  ct_tensor_free_n(tmp, 5);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S14_unconnected_is_null) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *z = NULL, *g = NULL;
  OK(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  OK(ct_variable_scalar(ctx, 3.0, "y", true, &y));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_mul(y, y, &z));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, z, x, &g));
  cr_assert_null(g);
  ct_tensor *tmp[] = {x, y, z};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S15_variable_replaced_by_a_tensor) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL;
  OK(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  for (int epoch = 0; epoch < 2; ++epoch) {
    ct_tape *tape = NULL;
    ct_tensor *y = NULL, *g = NULL;
    OK(ct_tape_begin(ctx, NULL, &tape));
    OK(ct_add_scalar(x, 1.0, &y));
    OK(ct_tape_end(tape));
    OK(ct_tape_gradient1(tape, y, x, &g));
    if (epoch == 0) cr_assert_float_eq(ts_item(g), 1.0, 1e-7);
    else cr_assert_null(g, "x is a plain tensor now: None");
    ct_tensor_free(g);
    ct_tensor_free(y);
    ct_tape_free(tape);
    ct_tensor *next = NULL; /* x = x + 1 */
    OK(ct_add_scalar(x, 1.0, &next));
    ct_tensor_free(x);
    x = next;
  }
  cr_assert(!ct_tensor_is_variable(x));
  cr_assert_float_eq(ts_item(x), 4.0, 1e-6);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

Test(seed, S16_host_round_trip_breaks_the_chain) {
  ct_context *ctx = ts_ctx();
  int64_t s22[2] = {2, 2};
  const double xv[4] = {1, 2, 3, 4};
  ct_tensor *x = var_f32(ctx, 2, s22, xv, "x", true);
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  ct_tensor *x2 = pow2(x);
  double *h = ts_read(x2);
  double mean = (h[0] + h[1] + h[2] + h[3]) / 4;
  free(h);
  ct_tensor *y = scalar_f32(ctx, mean), *g = NULL;
  OK(ct_tape_end(tape));
  cr_assert_float_eq(ts_item(y), 7.5, 1e-6);
  OK(ct_tape_gradient1(tape, y, x, &g));
  cr_assert_null(g);
  ct_tensor *tmp[] = {x, x2, y};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

static char log_text[1024];
static ct_log_level log_level = CT_LOG_DEBUG;
static int log_count;
static void capture_log(ct_log_level level, const char *message, void *user) {
  (void)user;
  log_level = level;
  log_count++;
  snprintf(log_text, sizeof log_text, "%s", message);
}

Test(seed, S17_watching_an_integer_warns) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *g = NULL;
  OK(ct_scalar(ctx, CT_INT32, 10.0, &x));
  ct_set_log(capture_log, NULL);
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  ct_set_log(NULL, NULL);
  cr_assert_eq(log_count, 1);
  cr_assert_eq(log_level, CT_LOG_WARNING);
  cr_assert(strstr(log_text, "floating") && strstr(log_text, "int32"), "warning: %s", log_text);
  OK(ct_mul(x, x, &y));
  OK(ct_tape_end(tape));
  cr_assert_float_eq(ts_item(y), 100.0, 0);
  cr_assert_eq(ct_tape_size(tape), 0, "integer ops are not recorded");
  OK(ct_tape_gradient1(tape, y, x, &g));
  cr_assert_null(g);
  ct_tensor *tmp[] = {x, y};
  ct_tensor_free_n(tmp, 2);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S18_assignment_stops_gradients) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x0 = NULL, *x1 = NULL, *y = NULL;
  OK(ct_variable_scalar(ctx, 3.0, "x0", true, &x0));
  OK(ct_variable_scalar(ctx, 0.0, "x1", true, &x1));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_variable_assign_add(x1, x0));
  y = pow2(x1);
  OK(ct_tape_end(tape));
  cr_assert_float_eq(ts_item(y), 9.0, 1e-6);
  ct_tensor *src[2] = {x0, x1}, *g[2];
  OK(ct_tape_gradient(tape, &y, 1, src, 2, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert_null(g[0], "state stops gradients");
  cr_assert_float_eq(ts_item(g[1]), 6.0, 1e-6);
  ct_tensor_free_n(g, 2);
  ct_tensor *tmp[] = {x0, x1, y};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

/* ---- S19: a user-defined op without, then with, a gradient ------------------------------ */
Test(seed, S19_missing_gradient_then_registered) {
  ct_context *ctx = ts_ctx();
  OK(ts_contrast_register("AdjustContrastv2", false));
  int64_t is[3] = {1, 1, 3};
  const double iv[3] = {0.5, 0, 0};
  ct_tensor *image = var_f32(ctx, 3, is, iv, "image", true), *delta = NULL, *out = NULL;
  OK(ct_variable_scalar(ctx, 0.1, "delta", true, &delta));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  ct_tensor *in[2] = {image, delta};
  OK(ct_custom_op_call(ctx, "AdjustContrastv2", in, 2, &out));
  OK(ct_tape_end(tape));
  ts_assert_close(out, iv, 3, 1e-7, 0, "a 1x1 image is its own mean");
  ct_tensor *g[2] = {NULL, NULL};
  EXPECT_STATUS(ct_tape_gradient(tape, &out, 1, in, 2, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_NO_GRADIENT);
  cr_assert_str_eq(ct_errmsg(), "gradient registry has no entry for: AdjustContrastv2");
  cr_assert_null(g[0]);
  cr_assert_null(g[1]);
  /* register it: the same call succeeds (a failed call does not consume the tape) */
  OK(ct_register_gradient("AdjustContrastv2", ts_contrast_grad, NULL));
  OK(ct_tape_gradient(tape, &out, 1, in, 2, NULL, CT_UNCONNECTED_NONE, g));
  const double ones[3] = {1, 1, 1};
  ts_assert_close(g[0], ones, 3, 1e-6, 0, "d sum(out) / d image");
  ts_assert_shape(g[0], 3, is, "d image");
  cr_assert_eq(ct_tensor_rank(g[1]), 0);
  cr_assert_float_eq(ts_item(g[1]), 0.0, 1e-7);
  ct_tensor_free_n(g, 2);
  ct_tensor *tmp[] = {image, delta, out};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(seed, S20_unconnected_zero) {
  ct_context *ctx = ts_ctx();
  int64_t n2[1] = {2};
  const double xv[2] = {2, 2};
  ct_tensor *x = var_f32(ctx, 1, n2, xv, "x", true), *y = NULL, *z = NULL, *g = NULL;
  OK(ct_variable_scalar(ctx, 3.0, "y", true, &y));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  z = pow2(y);
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient(tape, &z, 1, &x, 1, NULL, CT_UNCONNECTED_ZERO, &g));
  const double zeros[2] = {0, 0};
  ts_assert_shape(g, 1, n2, "zeros shaped like x");
  ts_assert_close(g, zeros, 2, 0, 0, "zeros");
  cr_assert_eq(ct_tensor_dtype(g), CT_FLOAT32);
  ct_tensor *tmp[] = {x, y, z, g};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(tape);
  ct_context_free(ctx);
}
