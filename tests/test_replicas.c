/* Data parallelism over several contexts of one process (cltape_dist): a batch split over two
 * contexts — PoCL and rusticl when both are visible, else two contexts of one device — with the
 * gradients averaged on the host keeps the two models' parameters identical after every step. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cltape_dist.h"
#include "support.h"

#define NV 4 /* two Dense layers: kernel and bias each */

/* Device selectors of two contexts: the first PoCL and the first rusticl device when both are
 * listed, otherwise twice the default device. Must run before the devices are discovered. */
static void pick_devices(char sel[2][16]) {
  setenv("RUSTICL_ENABLE", "llvmpipe", 0);
  ct_device_info devs[32];
  int n = 0, pocl = -1, rusticl = -1;
  OK(ct_device_list(devs, 32, &n));
  for (int i = 0; i < n && i < 32; ++i) {
    if (pocl < 0 && strstr(devs[i].platform, "Portable")) pocl = i;
    if (rusticl < 0 && strstr(devs[i].platform, "rusticl")) rusticl = i;
  }
  if (pocl >= 0 && rusticl >= 0) {
    snprintf(sel[0], 16, "%d", pocl);
    snprintf(sel[1], 16, "%d", rusticl);
    cr_log_info("replicas on %s and %s", devs[pocl].platform, devs[rusticl].platform);
  } else {
    const char *env = getenv("CLTAPE_DEVICE");
    snprintf(sel[0], 16, "%s", env && *env ? env : "cpu");
    memcpy(sel[1], sel[0], 16);
    cr_log_info("one OpenCL implementation: two contexts of device \"%s\"", sel[0]);
  }
}

/* 6 -> 8 (tanh) -> 3, the same seeds on every context. */
static ct_module *make_model(ct_context *ctx) {
  ct_module *seq, *l1, *l2;
  ct_layer_options o = ct_layer_default_options();
  OK(ct_sequential_create(ctx, NULL, &seq));
  o.seed = 11;
  o.bias_initializer = CT_INIT_GLOROT_UNIFORM;
  OK(ct_dense_create(ctx, 6, 8, CT_ACTIVATION_TANH, &o, &l1));
  o.seed = 12;
  OK(ct_dense_create(ctx, 8, 3, CT_ACTIVATION_NONE, &o, &l2));
  OK(ct_sequential_add(seq, l1));
  OK(ct_sequential_add(seq, l2));
  ct_module_free(l1);
  ct_module_free(l2);
  return seq;
}

/* Loss gradients of the model on rows [row0, row0 + rows) of the batch. */
static void shard_grads(ct_context *ctx, ct_module *m, ct_tensor **vars, const float *x, const int32_t *y, int row0,
                        int rows, ct_tensor **grads) {
  int64_t xs[2] = {rows, 6}, ys[1] = {rows};
  ct_tensor *tx, *ty, *logits, *loss;
  ct_tape *tape;
  OK(ct_tensor_from_data(ctx, CT_FLOAT32, 2, xs, x + row0 * 6, &tx));
  OK(ct_tensor_from_data(ctx, CT_INT32, 1, ys, y + row0, &ty));
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_module_call(m, tx, true, &logits));
  OK(ct_softmax_cross_entropy(logits, ty, &loss));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient(tape, &loss, 1, vars, NV, NULL, CT_UNCONNECTED_NONE, grads));
  ct_tape_free(tape);
  ct_tensor *tmp[] = {tx, ty, logits, loss};
  ct_tensor_free_n(tmp, 4);
}

static void assert_same_params(ct_tensor **vars, int step) {
  for (int i = 0; i < NV; ++i) {
    size_t bytes = (size_t)ct_tensor_size(vars[i]) * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes);
    OK(ct_tensor_read(vars[i], a, bytes));
    OK(ct_tensor_read(vars[NV + i], b, bytes));
    cr_assert(memcmp(a, b, bytes) == 0, "step %d: variable %d differs between the replicas", step, i);
    free(a);
    free(b);
  }
}

Test(replicas, two_contexts_stay_identical, .timeout = 300) {
  char sel[2][16];
  pick_devices(sel);
  ct_context *ctx[2];
  ct_module *m[2];
  ct_optimizer *opt[2];
  ct_tensor *vars[2 * NV];
  for (int r = 0; r < 2; ++r) {
    OK(ct_context_create(sel[r], &ctx[r]));
    m[r] = make_model(ctx[r]);
    int n;
    OK(ct_module_trainable_variables(m[r], vars + r * NV, NV, &n));
    cr_assert_eq(n, NV);
    ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
    oo.learning_rate = 0.25;
    OK(ct_optimizer_create(ctx[r], &oo, &opt[r]));
  }
  /* replica 1 starts from other values; the broadcast makes it replica 0's */
  ct_tensor *noise;
  OK(ct_random_normal(ctx[1], CT_FLOAT32, 2, ct_tensor_shape(vars[NV]), 0, 1, 99, &noise));
  OK(ct_variable_assign(vars[NV], noise));
  ct_tensor_free(noise);
  cr_assert(ct_replicas_broadcast_variables(vars, 2, NV) == CT_OK, "%s", ct_dist_errmsg());
  assert_same_params(vars, 0);

  enum { B = 16 };
  float x[B * 6];
  int32_t y[B];
  ts_rng_state = 5;
  for (int i = 0; i < B * 6; ++i) x[i] = (float)(2 * ts_rnd01() - 1);
  for (int i = 0; i < B; ++i) y[i] = (int32_t)(3 * ts_rnd01());

  /* the same steps on one context with the whole batch: the reference */
  ct_module *ref = make_model(ctx[0]);
  ct_tensor *rvars[NV], *rgrads[NV];
  int n;
  OK(ct_module_trainable_variables(ref, rvars, NV, &n));
  ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  oo.learning_rate = 0.25;
  ct_optimizer *ropt;
  OK(ct_optimizer_create(ctx[0], &oo, &ropt));

  double first_loss = 0;
  for (int step = 1; step <= 4; ++step) {
    ct_tensor *grads[2 * NV], *mean[2 * NV];
    for (int r = 0; r < 2; ++r) shard_grads(ctx[r], m[r], vars + r * NV, x, y, r * (B / 2), B / 2, grads + r * NV);
    cr_assert(ct_replicas_allreduce_mean(grads, 2, NV, mean) == CT_OK, "%s", ct_dist_errmsg());
    for (int r = 0; r < 2; ++r) OK(ct_optimizer_apply(opt[r], mean + r * NV, vars + r * NV, NV));
    ct_tensor_free_n(grads, 2 * NV);
    ct_tensor_free_n(mean, 2 * NV);
    assert_same_params(vars, step);

    shard_grads(ctx[0], ref, rvars, x, y, 0, B, rgrads);
    OK(ct_optimizer_apply(ropt, rgrads, rvars, NV));
    ct_tensor_free_n(rgrads, NV);
    for (int i = 0; i < NV; ++i) {
      double *want = ts_read(rvars[i]);
      ts_assert_close(vars[i], want, ct_tensor_size(rvars[i]), 1e-5, 1e-4, "replica 0 against the whole batch");
      free(want);
    }
    (void)first_loss;
  }
  ct_optimizer_free(ropt);
  ct_module_free(ref);
  for (int r = 0; r < 2; ++r) {
    ct_optimizer_free(opt[r]);
    ct_module_free(m[r]);
    ct_context_free(ctx[r]);
  }
}

Test(replicas, mismatches_are_errors) {
  ct_context *ctx = ts_ctx();
  int64_t s2[1] = {2}, s3[1] = {3};
  ct_tensor *a, *b, *i32, *out[4];
  OK(ct_zeros(ctx, CT_FLOAT32, 1, s2, &a));
  OK(ct_zeros(ctx, CT_FLOAT32, 1, s3, &b));
  OK(ct_zeros(ctx, CT_INT32, 1, s2, &i32));
  ct_tensor *shapes[2] = {a, b}, *nulls[2] = {a, NULL}, *ints[2] = {i32, i32};
  cr_assert_eq(ct_replicas_allreduce_mean(shapes, 2, 1, out), CT_ERR_SHAPE);
  cr_assert(strstr(ct_dist_errmsg(), "shapes differ"), "%s", ct_dist_errmsg());
  cr_assert_null(out[0]);
  cr_assert_eq(ct_replicas_allreduce_mean(nulls, 2, 1, out), CT_ERR_MISMATCH);
  cr_assert_eq(ct_replicas_allreduce_mean(ints, 2, 1, out), CT_ERR_DTYPE);
  cr_assert_eq(ct_replicas_allreduce_mean(shapes, 0, 1, out), CT_ERR_INVALID);
  cr_assert_eq(ct_replicas_allreduce_mean(NULL, 2, 1, out), CT_ERR_NULL);
  cr_assert_eq(ct_replicas_broadcast_variables(shapes, 2, 1), CT_ERR_SHAPE);
  /* two NULL gradients of one variable: NULL out, no error */
  ct_tensor *both_null[2] = {NULL, NULL};
  cr_assert_eq(ct_replicas_allreduce_mean(both_null, 2, 1, out), CT_OK);
  cr_assert_null(out[0]);
  cr_assert_null(out[1]);
  ct_tensor *tmp[] = {a, b, i32};
  ct_tensor_free_n(tmp, 3);
  ct_context_free(ctx);
}
