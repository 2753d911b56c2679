/* Batch normalization (the ops and the layer with its moving statistics, saved in checkpoints),
 * residual blocks, and the losses with options (label smoothing, binary cross-entropy, Huber):
 * values against host references and hand-computed TensorFlow values, gradients by the checker
 * (float64, float32 on a device without it). */
#include "support.h"
#include "cltape_nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})
#define FDT ts_best_float(CTX)
/* results of a few rounded terms and builtins */
#define TOL (FDT == CT_FLOAT64 ? 1e-12 : 2e-6)

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
static ct_tensor *vec(int64_t n, const double *v) { return ts_tensor(CTX, FDT, 1, SH(n), v); }

/* ---- batch normalization: the ops ------------------------------------------------------------- */
/* mean and biased variance of each channel of x [rows, c] (every axis but the last, flattened) */
static void host_moments(const double *x, int64_t rows, int64_t c, double *mean, double *var) {
  for (int64_t j = 0; j < c; ++j) {
    double s = 0, q = 0;
    for (int64_t i = 0; i < rows; ++i) s += x[i * c + j];
    mean[j] = s / (double)rows;
    for (int64_t i = 0; i < rows; ++i) q += (x[i * c + j] - mean[j]) * (x[i * c + j] - mean[j]);
    var[j] = q / (double)rows;
  }
}
static void host_normalize(const double *x, int64_t rows, int64_t c, const double *mean, const double *var,
                           const double *gamma, const double *beta, double eps, double *y) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < c; ++j)
      y[i * c + j] = (x[i * c + j] - mean[j]) / sqrt(var[j] + eps) * (gamma ? gamma[j] : 1) + (beta ? beta[j] : 0);
}

Test(norm_loss, batch_norm_uses_the_batch_statistics_over_all_axes_but_the_last, .init = setup, .fini = teardown) {
  static const struct {
    int rank;
    int64_t shape[4];
  } cases[] = {{2, {5, 3}}, {4, {2, 3, 2, 4}}, {3, {4, 1, 2}}};
  for (int k = 0; k < 3; ++k) {
    int rank = cases[k].rank;
    const int64_t *shape = cases[k].shape;
    int64_t c = shape[rank - 1], n = ts_numel(rank, shape), rows = n / c;
    double *xv, *mean = malloc(sizeof(double) * (size_t)c), *var = malloc(sizeof(double) * (size_t)c);
    double *want = malloc(sizeof(double) * (size_t)n), *gv = host_values(c, 7 + k), *bv = host_values(c, 9 + k);
    ct_tensor *x = random_tensor(rank, shape, 3 + k, &xv), *g = vec(c, gv), *b = vec(c, bv);
    ct_tensor *y = NULL, *m = NULL, *v = NULL, *y0 = NULL;
    host_moments(xv, rows, c, mean, var);
    OK(ct_batch_norm(x, g, b, 1e-3, &y, &m, &v));
    ts_assert_shape(y, rank, shape, "batch_norm output");
    ts_assert_shape(m, 1, SH(c), "batch mean");
    ts_assert_close(m, mean, c, TOL, TOL, "batch mean");
    ts_assert_close(v, var, c, TOL, TOL, "batch variance (biased)");
    host_normalize(xv, rows, c, mean, var, gv, bv, 1e-3, want);
    ts_assert_close(y, want, n, 1e-5 * (FDT == CT_FLOAT64 ? 1e-6 : 1), 1e-5, "batch_norm with gamma and beta");
    /* without gamma and beta: zero mean, variance var / (var + eps) per channel */
    OK(ct_batch_norm(x, NULL, NULL, 0.0, &y0, NULL, NULL));
    host_normalize(xv, rows, c, mean, var, NULL, NULL, 0.0, want);
    ts_assert_close(y0, want, n, 1e-5 * (FDT == CT_FLOAT64 ? 1e-6 : 1), 1e-5, "batch_norm without gamma and beta");
    free(xv);
    free(mean);
    free(var);
    free(want);
    free(gv);
    free(bv);
    ct_tensor *tmp[] = {x, g, b, y, m, v, y0};
    ct_tensor_free_n(tmp, 7);
  }
}

Test(norm_loss, batch_norm_inference_uses_the_given_statistics, .init = setup, .fini = teardown) {
  /* hand-computed: x = 3, mean 1, variance 3, epsilon 1: (3 - 1) / sqrt(4) = 1; * gamma 2 + beta -0.5 = 1.5 */
  ct_tensor *x1 = ts_tensor(CTX, FDT, 2, SH(1, 2), (const double[]){3, -1}), *m1 = vec(2, (const double[]){1, 0});
  ct_tensor *v1 = vec(2, (const double[]){3, 0}), *g1 = vec(2, (const double[]){2, 1}),
            *b1 = vec(2, (const double[]){-0.5, 0}), *y1 = NULL;
  OK(ct_batch_norm_inference(x1, m1, v1, g1, b1, 1.0, &y1));
  ts_assert_close(y1, (const double[]){1.5, -1}, 2, 0, 0, "(x - mean) / sqrt(var + eps) * gamma + beta");
  int64_t shape[4] = {2, 2, 3, 3};
  double *xv, *mv = host_values(3, 21), *vv = host_values(3, 22), *gv = host_values(3, 23), want[36];
  for (int j = 0; j < 3; ++j) vv[j] = ts_to_dtype(FDT, fabs(vv[j]) + 0.25);
  ct_tensor *x = random_tensor(4, shape, 20, &xv), *m = vec(3, mv), *v = vec(3, vv), *g = vec(3, gv), *y = NULL;
  OK(ct_batch_norm_inference(x, m, v, g, NULL, 1e-3, &y));
  host_normalize(xv, 12, 3, mv, vv, gv, NULL, 1e-3, want);
  ts_assert_close(y, want, 36, TOL, TOL * 10, "NHWC inference without beta");
  /* rank 1: one example without a batch axis */
  ct_tensor *xr = vec(3, xv), *yr = NULL;
  OK(ct_batch_norm_inference(xr, m, v, g, NULL, 1e-3, &yr));
  ts_assert_close(yr, want, 3, TOL, TOL * 10, "rank 1");
  free(xv);
  free(mv);
  free(vv);
  free(gv);
  ct_tensor *tmp[] = {x1, m1, v1, g1, b1, y1, x, m, v, g, y, xr, yr};
  ct_tensor_free_n(tmp, 13);
}

/* ---- the BatchNorm layer ---------------------------------------------------------------------- */
static ct_batch_norm_options bn_options(double momentum) {
  ct_batch_norm_options o = ct_batch_norm_default_options();
  o.dtype = FDT;
  o.momentum = momentum;
  return o;
}

Test(norm_loss, batch_norm_layer_variables_and_moving_statistics, .init = setup, .fini = teardown) {
  ct_batch_norm_options o = bn_options(0.9);
  ct_module *bn = NULL;
  OK(ct_batch_norm_create(CTX, 3, &o, &bn));
  cr_assert_str_eq(ct_module_name(bn), "batch_normalization");
  cr_assert_str_eq(ct_module_kind(bn), "BatchNormalization");
  ct_tensor *vars[4];
  int n = 0;
  OK(ct_module_variables(bn, vars, 4, &n));
  cr_assert_eq(n, 4);
  static const char *names[4] = {"batch_normalization/gamma:0", "batch_normalization/beta:0",
                                 "batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0"};
  for (int i = 0; i < 4; ++i) {
    cr_assert_str_eq(ct_variable_name(vars[i]), names[i]);
    cr_assert_eq(ct_variable_trainable(vars[i]), i < 2, "%s trainable", names[i]);
  }
  OK(ct_module_trainable_variables(bn, NULL, 0, &n));
  cr_assert_eq(n, 2);
  cr_assert_eq(ct_module_num_params(bn, false), 12);
  cr_assert_eq(ct_module_num_params(bn, true), 6);
  ts_assert_close(vars[2], (const double[]){0, 0, 0}, 3, 0, 0, "moving mean starts at 0");
  ts_assert_close(vars[3], (const double[]){1, 1, 1}, 3, 0, 0, "moving variance starts at 1");

  /* a training call: the batch's statistics, then moving = 0.9 moving + 0.1 batch */
  double *xv, mean[3], var[3], want[12];
  ct_tensor *x = random_tensor(2, SH(4, 3), 31, &xv), *y = NULL, *m = NULL, *v = NULL, *ref = NULL;
  host_moments(xv, 4, 3, mean, var);
  ct_tape *tape = NULL;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_module_call(bn, x, true, &y));
  ct_tensor *loss = NULL, *sq = NULL;
  OK(ct_square(y, &sq));
  OK(ct_sum(sq, NULL, 0, false, &loss));
  OK(ct_tape_end(tape));
  host_normalize(xv, 4, 3, mean, var, NULL, NULL, 1e-3, want);
  ts_assert_close(y, want, 12, 1e-5 * (FDT == CT_FLOAT64 ? 1e-6 : 1), 1e-5, "training call normalizes by the batch");
  double mm[3], mv[3];
  for (int j = 0; j < 3; ++j) {
    mm[j] = 0.1 * mean[j];
    mv[j] = 0.9 + 0.1 * var[j];
  }
  ts_assert_close(vars[2], mm, 3, TOL, TOL, "moving mean after one training call");
  ts_assert_close(vars[3], mv, 3, TOL, TOL, "moving variance after one training call");
  /* gradients reach gamma and beta only; the moving statistics are not trainable */
  ct_tensor *g[4] = {0};
  OK(ct_tape_gradient(tape, &loss, 1, vars, 4, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert(g[0] && g[1], "gamma and beta have gradients");
  cr_assert(!g[2] && !g[3], "the moving statistics have none");
  /* d sum(y^2) / d beta = 2 sum(y) over the batch = 0 (each channel is centred) */
  ts_assert_close(g[1], (const double[]){0, 0, 0}, 3, FDT == CT_FLOAT64 ? 1e-12 : 1e-5, 0, "beta gradient");

  /* an inference call normalizes with the moving statistics */
  ct_tensor *yi = NULL;
  OK(ct_module_call(bn, x, false, &yi));
  host_normalize(xv, 4, 3, mm, mv, NULL, NULL, 1e-3, want);
  ts_assert_close(yi, want, 12, TOL, TOL * 10, "inference call uses the moving statistics");
  ts_assert_close(vars[2], mm, 3, TOL, TOL, "an inference call changes nothing");
  /* a functional call in training mode changes nothing either */
  ct_tensor *p[4] = {vars[0], vars[1], vars[2], vars[3]}, *yf = NULL;
  OK(ct_module_call_with(bn, x, p, 4, true, &yf));
  ts_assert_close(vars[2], mm, 3, TOL, TOL, "a functional call leaves the moving mean");
  ts_assert_close(vars[3], mv, 3, TOL, TOL, "a functional call leaves the moving variance");
  /* a second training call compounds: 0.9 (0.1 mean) + 0.1 mean */
  ct_tensor *y2 = NULL;
  OK(ct_module_call(bn, x, true, &y2));
  for (int j = 0; j < 3; ++j) mm[j] = 0.19 * mean[j];
  ts_assert_close(vars[2], mm, 3, TOL * 10, TOL * 10, "moving mean after two training calls");
  free(xv);
  ct_tensor *tmp[] = {x, y, m, v, ref, loss, sq, g[0], g[1], yi, yf, y2};
  ct_tensor_free_n(tmp, 12);
  ct_tape_free(tape);
  ct_module_free(bn);
}

Test(norm_loss, batch_norm_layer_options_and_bad_calls, .init = setup, .fini = teardown) {
  ct_batch_norm_options o = bn_options(0.99);
  o.center = false;
  o.name = "bn";
  ct_module *bn = NULL;
  OK(ct_batch_norm_create(CTX, 2, &o, &bn));
  ct_tensor *vars[4];
  int n = 0;
  OK(ct_module_variables(bn, vars, 4, &n));
  cr_assert_eq(n, 3);
  cr_assert_str_eq(ct_variable_name(vars[0]), "bn/gamma:0");
  cr_assert_str_eq(ct_variable_name(vars[1]), "bn/moving_mean:0");
  ct_tensor *x3 = random_tensor(2, SH(4, 3), 1, NULL), *x1 = random_tensor(1, SH(2), 2, NULL), *y = (ct_tensor *)1;
  EXPECT_STATUS(ct_module_call(bn, x3, true, &y), CT_ERR_SHAPE);
  cr_assert_null(y);
  cr_assert(strstr(ct_errmsg(), "bn"), "the message names the layer: %s", ct_errmsg());
  EXPECT_STATUS(ct_module_call(bn, x3, false, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_module_call(bn, x1, true, &y), CT_ERR_SHAPE); /* no batch axis to take statistics over */
  ts_assert_close(vars[1], (const double[]){0, 0}, 2, 0, 0, "a failed call changes nothing");
  OK(ct_module_call(bn, x1, false, &y)); /* inference on one example is fine */
  FILE *f = tmpfile();
  OK(ct_module_summary(bn, f));
  rewind(f);
  char text[1024] = "";
  cr_assert(fread(text, 1, sizeof text - 1, f) > 0);
  fclose(f);
  cr_assert(strstr(text, "BatchNormalization") && strstr(text, "momentum 0.99"), "%s", text);
  ct_tensor *tmp[] = {x3, x1, y};
  ct_tensor_free_n(tmp, 3);
  ct_module_free(bn);
}

/* gradient check of a module with respect to its input and every variable (FDT) */
typedef struct {
  ct_module *m;
  bool training;
} layer_fn;
static ct_status call_with(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  layer_fn *l = u;
  return ct_module_call_with(l->m, in[0], in + 1, n - 1, l->training, out);
}
static void gradcheck_layer(ct_module *m, ct_tensor *x, bool training, const char *what) {
  ct_tensor *v[12], *in[13];
  int n;
  OK(ct_module_variables(m, v, 12, &n));
  cr_assert_leq(n, 12);
  in[0] = x;
  for (int i = 0; i < n; ++i) {
    double *h = ts_read(v[i]);
    int64_t k = ct_tensor_size(v[i]);
    /* moved off the initial ones and zeros, so that gamma and beta matter */
    for (int64_t j = 0; j < k; ++j) h[j] = ts_to_dtype(FDT, h[j] + 0.1 * (double)((j + i) % 3));
    in[i + 1] = ts_tensor(CTX, FDT, ct_tensor_rank(v[i]), ct_tensor_shape(v[i]), h);
    free(h);
  }
  layer_fn l = {m, training};
  ct_gradcheck_report r;
  OK(ct_gradcheck(CTX, call_with, &l, in, n + 1, NULL, &r));
  cr_assert(r.passed, "%s: %s", what, r.message);
  cr_assert_gt(r.checked, 0);
  ct_tensor_free_n(in + 1, n);
}

Test(norm_loss, batch_norm_layer_gradients, .init = setup, .fini = teardown) {
  ct_batch_norm_options o = bn_options(0.99);
  ct_module *bn = NULL;
  OK(ct_batch_norm_create(CTX, 3, &o, &bn));
  ct_tensor *x = random_tensor(4, SH(2, 2, 2, 3), 41, NULL), *x2 = random_tensor(2, SH(5, 3), 42, NULL);
  gradcheck_layer(bn, x, true, "BatchNorm NHWC, training");
  gradcheck_layer(bn, x2, true, "BatchNorm [N, C], training");
  gradcheck_layer(bn, x, false, "BatchNorm NHWC, inference");
  ct_tensor *tmp[] = {x, x2};
  ct_tensor_free_n(tmp, 2);
  ct_module_free(bn);
}

/* conv 3x3 (1 -> 4) - BatchNorm - relu - flatten - dense (-> 3) */
static ct_module *bn_model(void) {
  ct_reset_module_names();
  ct_layer_options lo = ct_layer_default_options();
  lo.dtype = FDT;
  ct_batch_norm_options bo = bn_options(0.8);
  ct_module *seq = NULL, *l[5];
  OK(ct_sequential_create(CTX, NULL, &seq));
  OK(ct_conv2d_create(CTX, 1, 4, (const int[]){3, 3}, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, &lo, &l[0]));
  OK(ct_batch_norm_create(CTX, 4, &bo, &l[1]));
  OK(ct_activation_create(CTX, CT_ACTIVATION_RELU, NULL, &l[2]));
  OK(ct_flatten_create(CTX, NULL, &l[3]));
  OK(ct_dense_create(CTX, 4 * 4 * 4, 3, CT_ACTIVATION_NONE, &lo, &l[4]));
  for (int i = 0; i < 5; ++i) {
    OK(ct_sequential_add(seq, l[i]));
    ct_module_free(l[i]);
  }
  return seq;
}

Test(norm_loss, batch_norm_moving_statistics_survive_a_checkpoint, .init = setup, .fini = teardown) {
  ct_module *a = bn_model();
  ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  oo.learning_rate = 0.1;
  ct_optimizer *opt = NULL;
  OK(ct_optimizer_create(CTX, &oo, &opt));
  ct_tensor *x = random_tensor(4, SH(6, 4, 4, 1), 51, NULL);
  ct_tensor *labels = ts_tensor(CTX, CT_INT32, 1, SH(6), (const double[]){0, 1, 2, 2, 1, 0});
  ct_tensor *vars[16];
  int n = 0;
  OK(ct_module_trainable_variables(a, vars, 16, &n));
  cr_assert_eq(n, 6); /* conv kernel and bias, gamma, beta, dense kernel and bias */
  double losses[3];
  for (int step = 0; step < 3; ++step) {
    ct_tape *tape = NULL;
    ct_tensor *logits = NULL, *loss = NULL, *g[16] = {0};
    OK(ct_tape_begin(CTX, NULL, &tape));
    OK(ct_module_call(a, x, true, &logits));
    OK(ct_softmax_cross_entropy(logits, labels, &loss));
    OK(ct_tape_end(tape));
    OK(ct_tape_gradient(tape, &loss, 1, vars, n, NULL, CT_UNCONNECTED_NONE, g));
    OK(ct_optimizer_apply(opt, g, vars, n));
    losses[step] = ts_item(loss);
    ct_tensor_free_n(g, n);
    ct_tensor_free(logits);
    ct_tensor_free(loss);
    ct_tape_free(tape);
  }
  cr_assert_lt(losses[2], losses[0], "training lowers the loss: %g, %g, %g", losses[0], losses[1], losses[2]);
  ct_tensor *mm = ct_module_find_variable(a, "batch_normalization/moving_mean");
  cr_assert_not_null(mm);
  double *mmv = ts_read(mm);
  bool moved = false;
  for (int j = 0; j < 4; ++j) moved |= mmv[j] != 0;
  cr_assert(moved, "training calls moved the moving mean");
  free(mmv);
  ct_tensor *ya = NULL;
  OK(ct_module_call(a, x, false, &ya));

  char dir[128], path[256];
  ts_tmpdir(dir, sizeof dir, "norm_loss");
  snprintf(path, sizeof path, "%s/bn.safetensors", dir);
  OK(ct_checkpoint_save(path, a, NULL, NULL, NULL, 0));
  /* the file holds the moving statistics under their names */
  int count = 0;
  char **names = NULL;
  ct_tensor **ts = NULL;
  OK(ct_tensors_load(CTX, path, &count, &names, &ts));
  int found = 0;
  for (int i = 0; i < count; ++i)
    found += strcmp(names[i], "batch_normalization/moving_mean:0") == 0 ||
             strcmp(names[i], "batch_normalization/moving_variance:0") == 0;
  cr_assert_eq(found, 2, "the checkpoint holds both moving statistics");
  ct_tensors_load_free(count, names, ts);

  /* a fresh model gives other inference outputs until the checkpoint is loaded, then the same */
  ct_module *b = bn_model();
  ct_tensor *y0 = NULL, *yb = NULL;
  OK(ct_module_call(b, x, false, &y0));
  double *va = ts_read(ya), *v0 = ts_read(y0);
  bool differ = false;
  for (int i = 0; i < 18; ++i) differ |= va[i] != v0[i];
  cr_assert(differ, "a fresh model infers differently");
  OK(ct_checkpoint_load(path, b, NULL));
  OK(ct_module_call(b, x, false, &yb));
  ts_assert_close(yb, va, 18, 0, 0, "the restored model's inference outputs are identical");
  ct_tensor *mb = ct_module_find_variable(b, "batch_normalization/moving_variance");
  double *want = ts_read(ct_module_find_variable(a, "batch_normalization/moving_variance"));
  ts_assert_close(mb, want, 4, 0, 0, "moving variance restored");
  free(want);
  free(va);
  free(v0);
  ts_rmdir(dir);
  ct_tensor *tmp[] = {x, labels, ya, y0, yb};
  ct_tensor_free_n(tmp, 5);
  ct_optimizer_free(opt);
  ct_module_free(a);
  ct_module_free(b);
}

/* ---- residual blocks ------------------------------------------------------------------------- */
Test(norm_loss, residual_block_adds_its_input, .init = setup, .fini = teardown) {
  ct_layer_options lo = ct_layer_default_options();
  lo.dtype = FDT;
  lo.bias_initializer = CT_INIT_GLOROT_UNIFORM;
  ct_module *f = NULL, *res = NULL;
  OK(ct_dense_create(CTX, 3, 3, CT_ACTIVATION_TANH, &lo, &f));
  OK(ct_residual_create(CTX, f, NULL, NULL, &res));
  cr_assert_str_eq(ct_module_name(res), "residual");
  cr_assert_str_eq(ct_module_kind(res), "Residual");
  cr_assert_eq(ct_module_num_children(res), 1);
  cr_assert_eq(ct_module_child(res, 0), f);
  cr_assert_str_eq(ct_variable_name(ct_module_find_variable(res, "residual/dense/kernel")), "residual/dense/kernel:0");
  double *xv;
  ct_tensor *x = random_tensor(2, SH(4, 3), 61, &xv), *y = NULL, *fx = NULL;
  OK(ct_module_call(res, x, true, &y));
  OK(ct_module_call(f, x, true, &fx));
  double *fv = ts_read(fx), want[12];
  for (int i = 0; i < 12; ++i) want[i] = ts_to_dtype(FDT, xv[i] + fv[i]);
  ts_assert_close(y, want, 12, 0, 0, "x + f(x)");
  gradcheck_layer(res, x, true, "residual block");
  free(xv);
  free(fv);
  ct_tensor *tmp[] = {x, y, fx};
  ct_tensor_free_n(tmp, 3);
  ct_module_free(res);
  ct_module_free(f); /* the block keeps its own reference until here */
}

Test(norm_loss, residual_block_with_a_projection, .init = setup, .fini = teardown) {
  ct_layer_options lo = ct_layer_default_options();
  lo.dtype = FDT;
  ct_module *f = NULL, *p = NULL, *res = NULL, *bad = NULL, *f2 = NULL, *bn = NULL, *body = NULL;
  OK(ct_dense_create(CTX, 3, 5, CT_ACTIVATION_TANH, &lo, &f));
  lo.use_bias = false;
  OK(ct_dense_create(CTX, 3, 5, CT_ACTIVATION_NONE, &lo, &p));
  OK(ct_residual_create(CTX, f, p, "block", &res));
  ct_tensor *vars[4];
  int n = 0;
  OK(ct_module_variables(res, vars, 4, &n));
  cr_assert_eq(n, 3);
  cr_assert_str_eq(ct_variable_name(vars[2]), "block/dense_1/kernel:0");
  ct_tensor *x = random_tensor(2, SH(2, 3), 62, NULL), *y = NULL, *fx = NULL, *px = NULL;
  OK(ct_module_call(res, x, false, &y));
  ts_assert_shape(y, 2, SH(2, 5), "projected output");
  OK(ct_module_call(f, x, false, &fx));
  OK(ct_module_call(p, x, false, &px));
  double *fv = ts_read(fx), *pv = ts_read(px), want[10];
  for (int i = 0; i < 10; ++i) want[i] = ts_to_dtype(FDT, fv[i] + pv[i]);
  ts_assert_close(y, want, 10, 0, 0, "projection(x) + f(x)");
  gradcheck_layer(res, x, true, "residual block with a projection");
  /* without the projection the shapes differ: CT_ERR_SHAPE naming both and suggesting one */
  lo.use_bias = true;
  OK(ct_dense_create(CTX, 3, 5, CT_ACTIVATION_NONE, &lo, &f2));
  OK(ct_residual_create(CTX, f2, NULL, NULL, &bad));
  ct_tensor *yb = (ct_tensor *)1;
  EXPECT_STATUS(ct_module_call(bad, x, true, &yb), CT_ERR_SHAPE);
  cr_assert_null(yb);
  cr_assert(strstr(ct_errmsg(), "(2, 5)") && strstr(ct_errmsg(), "(2, 3)") && strstr(ct_errmsg(), "projection"),
            "%s", ct_errmsg());
  /* a block around a Sequential with BatchNorm: statistics updated through the block */
  ct_batch_norm_options bo = bn_options(0.5);
  OK(ct_sequential_create(CTX, NULL, &body));
  OK(ct_batch_norm_create(CTX, 3, &bo, &bn));
  OK(ct_sequential_add(body, bn));
  ct_module *outer = NULL;
  OK(ct_residual_create(CTX, body, NULL, NULL, &outer));
  ct_tensor *yo = NULL;
  OK(ct_module_call(outer, x, true, &yo));
  ct_tensor *mm = ct_module_find_variable(outer, "residual_1/batch_normalization/moving_mean");
  cr_assert_not_null(mm, "variables of a block's Sequential are named under the block");
  double *xv = ts_read(x), m[3];
  for (int j = 0; j < 3; ++j) m[j] = 0.5 * (xv[j] + xv[3 + j]) / 2;
  ts_assert_close(mm, m, 3, TOL, TOL, "moving mean updated inside the block");
  free(xv);
  free(fv);
  free(pv);
  ct_tensor *tmp[] = {x, y, fx, px, yo};
  ct_tensor_free_n(tmp, 5);
  ct_module *mods[] = {f, p, res, bad, f2, bn, body, outer};
  for (int i = 0; i < 8; ++i) ct_module_free(mods[i]);
}

/* ---- losses ---------------------------------------------------------------------------------- */
static double loss_of(ct_status (*fn)(const ct_tensor *, const ct_tensor *, const ct_loss_options *, ct_tensor **),
                      const ct_tensor *a, const ct_tensor *b, const ct_loss_options *o) {
  ct_tensor *l = NULL;
  OK(fn(a, b, o, &l));
  cr_assert_eq(ct_tensor_rank(l), 0, "a reduced loss is a scalar");
  double v = ts_item(l);
  ct_tensor_free(l);
  return v;
}
#define EXPECT_NEAR(got, want, what)                                                                     \
  cr_assert(fabs((got) - (want)) <= (FDT == CT_FLOAT64 ? 1e-12 : 2e-6) * fmax(1.0, fabs(want)),           \
            "%s: %.17g, wanted %.17g", what, (got), (want))

/* logits [[2, 1, 0.1], [0.5, 2.5, -1]], labels 0 and 1. With smoothing a the labels are
 * one_hot * (1 - a) + a / 3 (TensorFlow), and the loss -sum(labels * log_softmax(logits)):
 * log_softmax of row 0 = [-0.41703, -1.41703, -2.31703], of row 1 = [-2.15282, -0.15282, -3.65282].
 * a = 0: (0.41703 + 0.15282) / 2 = 0.28510;
 * a = 0.1: row 0: 0.93333 * 0.41703 + 0.03333 * (1.41703 + 2.31703) = 0.51370, row 1: 0.33651. */
Test(norm_loss, softmax_cross_entropy_with_label_smoothing, .init = setup, .fini = teardown) {
  ct_tensor *logits = ts_tensor(CTX, FDT, 2, SH(2, 3), (const double[]){2, 1, 0.1, 0.5, 2.5, -1});
  ct_tensor *labels = ts_tensor(CTX, CT_INT32, 1, SH(2), (const double[]){0, 1});
  ct_loss_options o = {0};
  EXPECT_NEAR(loss_of(ct_softmax_cross_entropy_ex, logits, labels, NULL), 0.2851041117000608, "no smoothing");
  EXPECT_NEAR(loss_of(ct_softmax_cross_entropy_ex, logits, labels, &o), 0.2851041117000608, "zero options");
  ct_tensor *plain = NULL;
  OK(ct_softmax_cross_entropy(logits, labels, &plain));
  EXPECT_NEAR(ts_item(plain), 0.2851041117000608, "ct_softmax_cross_entropy");
  o.label_smoothing = 0.1;
  EXPECT_NEAR(loss_of(ct_softmax_cross_entropy_ex, logits, labels, &o), 0.4251041117000608, "smoothing 0.1, mean");
  o.reduction = CT_REDUCTION_SUM;
  EXPECT_NEAR(loss_of(ct_softmax_cross_entropy_ex, logits, labels, &o), 0.8502082234001216, "smoothing 0.1, sum");
  o.reduction = CT_REDUCTION_NONE;
  ct_tensor *per = NULL;
  OK(ct_softmax_cross_entropy_ex(logits, labels, &o, &per));
  ts_assert_shape(per, 1, SH(2), "per example");
  ts_assert_close(per, (const double[]){0.5136966829445002, 0.3365115404556214}, 2, TOL, TOL, "per example");
  /* the same as one-hot float labels */
  ct_tensor *hot = ts_tensor(CTX, FDT, 2, SH(2, 3), (const double[]){1, 0, 0, 0, 1, 0});
  o.reduction = CT_REDUCTION_MEAN;
  EXPECT_NEAR(loss_of(ct_softmax_cross_entropy_ex, logits, hot, &o), 0.4251041117000608, "one-hot float labels");
  /* a distribution [[0.2, 0.7, 0.1], [0, 0, 1]] smoothed by 0.2 */
  ct_tensor *dist = ts_tensor(CTX, FDT, 2, SH(2, 3), (const double[]){0.2, 0.7, 0.1, 0, 0, 1});
  o.label_smoothing = 0.2;
  EXPECT_NEAR(loss_of(ct_softmax_cross_entropy_ex, logits, dist, &o), 2.321104111700061, "distribution, smoothing 0.2");
  /* gradient for class indices: (softmax - smoothed labels) / N, as TensorFlow's */
  ct_tape *t = ts_tape(CTX, false, false);
  OK(ct_tape_watch(t, logits));
  ct_tensor *l = NULL, *sm = NULL;
  o.label_smoothing = 0.1;
  OK(ct_softmax_cross_entropy_ex(logits, labels, &o, &l));
  OK(ct_tape_end(t));
  ct_tensor *g = ts_grad1(t, l, logits);
  OK(ct_softmax(logits, -1, &sm));
  double *s = ts_read(sm), want[6];
  for (int i = 0; i < 6; ++i) want[i] = (s[i] - ((i == 0 || i == 4) ? 0.9 : 0.0) - 0.1 / 3) / 2;
  ts_assert_close(g, want, 6, TOL, TOL * 10, "d loss / d logits");
  free(s);
  ct_tensor *tmp[] = {logits, labels, plain, per, hot, dist, l, sm, g};
  ct_tensor_free_n(tmp, 9);
  ct_tape_free(t);
}

/* p = [0.9, 0.2, 0, 1, 0, 0.6], z = [1, 0, 1, 1, 0, 0.3], p clipped to [1e-7, 1 - 1e-7]:
 * -log 0.9 = 0.10536, -log 0.8 = 0.22314, -log 1e-7 = 16.11810, -log(1 - 1e-7) = 1e-7 (twice),
 * -(0.3 log 0.6 + 0.7 log 0.4) = 0.79465; mean 2.87354. */
static double bce_reference(double a) {
  static const double p[6] = {0.9, 0.2, 0.0, 1.0, 0.0, 0.6}, z[6] = {1, 0, 1, 1, 0, 0.3};
  double lo = ts_to_dtype(FDT, 1e-7), hi = ts_to_dtype(FDT, 1 - 1e-7), sum = 0;
  for (int i = 0; i < 6; ++i) {
    double c = fmin(fmax(ts_to_dtype(FDT, p[i]), lo), hi), zs = z[i] * (1 - a) + a / 2;
    sum += -(zs * log(c) + (1 - zs) * log(1 - c));
  }
  return sum / 6;
}
Test(norm_loss, binary_cross_entropy_from_probabilities, .init = setup, .fini = teardown) {
  ct_tensor *p = ts_tensor(CTX, FDT, 2, SH(2, 3), (const double[]){0.9, 0.2, 0.0, 1.0, 0.0, 0.6});
  ct_tensor *z = ts_tensor(CTX, FDT, 2, SH(2, 3), (const double[]){1, 0, 1, 1, 0, 0.3});
  /* float32 holds the bound 1 - 1e-7 as 1 - 1.19e-7, which changes the clipped terms: there the
   * reference is the same formula with the bounds float32 holds */
  EXPECT_NEAR(loss_of(ct_binary_cross_entropy, p, z, NULL),
              FDT == CT_FLOAT64 ? 2.8735418528953454 : bce_reference(0), "mean");
  ct_loss_options o = {.label_smoothing = 0.2};
  EXPECT_NEAR(loss_of(ct_binary_cross_entropy, p, z, &o),
              FDT == CT_FLOAT64 ? 3.199198993673637 : bce_reference(0.2), "smoothed");
  o = (ct_loss_options){.reduction = CT_REDUCTION_NONE};
  ct_tensor *per = NULL;
  OK(ct_binary_cross_entropy(p, z, &o, &per));
  ts_assert_shape(per, 2, SH(2, 3), "per element");
  double *v = ts_read(per);
  cr_assert(fabs(v[2] - 16.11809565095832) < 1e-5, "p = 0 against z = 1 is clipped: %g", v[2]);
  for (int i = 0; i < 6; ++i) cr_assert(isfinite(v[i]));
  free(v);
  /* a larger epsilon clips more: p = 0 against z = 1 costs -log(0.01) */
  o = (ct_loss_options){.epsilon = 0.01, .reduction = CT_REDUCTION_SUM};
  ct_tensor *p1 = ts_tensor(CTX, FDT, 1, SH(1), (const double[]){0});
  ct_tensor *z1 = ts_tensor(CTX, FDT, 1, SH(1), (const double[]){1});
  EXPECT_NEAR(loss_of(ct_binary_cross_entropy, p1, z1, &o), -log(ts_to_dtype(FDT, 0.01)), "epsilon 0.01");
  ct_tensor *tmp[] = {p, z, per, p1, z1};
  ct_tensor_free_n(tmp, 5);
}

/* max(x, 0) - x z + log1p(exp(-|x|)) at x = [-100, -1.5, 0, 2, 100, 100], z = [0, 1, 0.5, 0, 1, 0]:
 * [3.7e-44, 1.5 + log1p(e^-1.5) = 1.70141, log 2 = 0.69315, 2 + log1p(e^-2) = 2.12693, 3.7e-44, 100];
 * mean 17.42025. No overflow at |x| = 100. */
Test(norm_loss, binary_cross_entropy_from_logits, .init = setup, .fini = teardown) {
  ct_tensor *x = ts_tensor(CTX, FDT, 1, SH(6), (const double[]){-100, -1.5, 0, 2, 100, 100});
  ct_tensor *z = ts_tensor(CTX, FDT, 1, SH(6), (const double[]){0, 1, 0.5, 0, 1, 0});
  ct_loss_options o = {.from_logits = true};
  EXPECT_NEAR(loss_of(ct_binary_cross_entropy, x, z, &o), 17.42024807826428, "mean");
  o.reduction = CT_REDUCTION_SUM;
  EXPECT_NEAR(loss_of(ct_binary_cross_entropy, x, z, &o), 104.52148846958568, "sum");
  /* the gradient is TensorFlow's: (sigmoid(x) - z) / n */
  o.reduction = CT_REDUCTION_MEAN;
  ct_tensor *x2 = ts_tensor(CTX, FDT, 1, SH(4), (const double[]){-3, -0.5, 1.25, 30});
  ct_tensor *z2 = ts_tensor(CTX, FDT, 1, SH(4), (const double[]){0, 1, 0.25, 1});
  ct_tape *t = ts_tape(CTX, false, false);
  OK(ct_tape_watch(t, x2));
  ct_tensor *l = NULL;
  OK(ct_binary_cross_entropy(x2, z2, &o, &l));
  OK(ct_tape_end(t));
  ct_tensor *g = ts_grad1(t, l, x2);
  const double xs[4] = {-3, -0.5, 1.25, 30}, zs[4] = {0, 1, 0.25, 1};
  double want[4];
  for (int i = 0; i < 4; ++i) want[i] = (1 / (1 + exp(-xs[i])) - zs[i]) / 4;
  ts_assert_close(g, want, 4, TOL, TOL * 10, "d loss / d logits");
  ct_tensor *tmp[] = {x, z, x2, z2, l, g};
  ct_tensor_free_n(tmp, 6);
  ct_tape_free(t);
}

/* e = pred - target = [0.5, 2, -3, -0.2]; delta 1: [0.125, 2 - 0.5, 3 - 0.5, 0.02], mean 1.03625;
 * delta 0.5: [0.125, 0.5 (2 - 0.25), 0.5 (3 - 0.25), 0.02] = [0.125, 0.875, 1.375, 0.02], sum 2.395 */
Test(norm_loss, huber_loss, .init = setup, .fini = teardown) {
  ct_tensor *p = ts_tensor(CTX, FDT, 2, SH(2, 2), (const double[]){0.5, 2.0, -3.0, 0.1});
  ct_tensor *t0 = ts_tensor(CTX, FDT, 2, SH(2, 2), (const double[]){0, 0, 0, 0.3});
  EXPECT_NEAR(loss_of(ct_huber_loss, p, t0, NULL), 1.03625, "delta 1, mean");
  ct_loss_options o = {.delta = 0.5, .reduction = CT_REDUCTION_SUM};
  EXPECT_NEAR(loss_of(ct_huber_loss, p, t0, &o), 2.395, "delta 0.5, sum");
  o.reduction = CT_REDUCTION_NONE;
  ct_tensor *per = NULL;
  OK(ct_huber_loss(p, t0, &o, &per));
  ts_assert_close(per, (const double[]){0.125, 0.875, 1.375, 0.02}, 4, TOL, TOL, "delta 0.5, per element");
  /* the gradient: clip(e, -delta, delta) / n */
  o = (ct_loss_options){0};
  ct_tape *t = ts_tape(CTX, false, false);
  OK(ct_tape_watch(t, p));
  ct_tensor *l = NULL;
  OK(ct_huber_loss(p, t0, &o, &l));
  OK(ct_tape_end(t));
  ct_tensor *g = ts_grad1(t, l, p);
  ts_assert_close(g, (const double[]){0.125, 0.25, -0.25, -0.05}, 4, TOL, TOL * 10, "d loss / d pred");
  ct_tensor *tmp[] = {p, t0, per, l, g};
  ct_tensor_free_n(tmp, 5);
  ct_tape_free(t);
}
