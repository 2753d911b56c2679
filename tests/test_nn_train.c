/* Short training runs: every part together (IDX loader, layers, loss, tape, optimizer,
 * checkpoint). Each must bring the loss under a fixed bound within a CI-friendly time (the
 * Criterion timeout of 60 s fails a run that is too slow). */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
static char DIR_[64];
#define FASHION "/usr/share/datasets/fashion-mnist"

static void setup(void) {
  CTX = ts_ctx();
  ct_reset_module_names();
  snprintf(DIR_, sizeof DIR_, "/tmp/cltape_train_XXXXXX");
  cr_assert_not_null(mkdtemp(DIR_));
}
static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
  cr_assert_eq(system(cmd), 0);
  ct_context_free(CTX);
  CTX = NULL;
}

/* 512 noisy 8x8 images of 4 classes: class k has its k-th 4x4 quadrant bright. Written as IDX. */
static void synthetic_files(char *images, char *labels) {
  enum { N = 512 };
  static unsigned char img[16 + N * 64], lab[8 + N];
  unsigned char hi[16] = {0, 0, 8, 3, 0, 0, N >> 8, N & 255, 0, 0, 0, 8, 0, 0, 0, 8};
  unsigned char hl[8] = {0, 0, 8, 1, 0, 0, N >> 8, N & 255};
  memcpy(img, hi, 16);
  memcpy(lab, hl, 8);
  uint32_t s = 1;
  for (int i = 0; i < N; ++i) {
    int k = i % 4;
    lab[8 + i] = (unsigned char)k;
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < 8; ++c) {
        s = s * 1664525u + 1013904223u;
        int noise = (int)(s >> 25); /* 0..127 */
        bool on = (r / 4) == k / 2 && (c / 4) == k % 2;
        img[16 + i * 64 + r * 8 + c] = (unsigned char)(on ? 128 + noise : noise);
      }
  }
  snprintf(images, 256, "%s/images.idx", DIR_);
  snprintf(labels, 256, "%s/labels.idx", DIR_);
  FILE *f = fopen(images, "wb");
  cr_assert_eq(fwrite(img, 1, sizeof img, f), sizeof img);
  fclose(f);
  f = fopen(labels, "wb");
  cr_assert_eq(fwrite(lab, 1, sizeof lab, f), sizeof lab);
  fclose(f);
}

static ct_module *small_cnn(uint64_t seed) {
  ct_reset_module_names();
  ct_module *m, *l;
  ct_layer_options o = ct_layer_default_options();
  o.seed = seed;
  int k[2] = {3, 3}, p[2] = {2, 2};
  OK(ct_sequential_create(CTX, NULL, &m));
  OK(ct_conv2d_create(CTX, 1, 8, k, NULL, CT_PADDING_SAME, CT_ACTIVATION_RELU, &o, &l));
  OK(ct_sequential_add(m, l));
  ct_module_free(l);
  OK(ct_max_pool2d_create(CTX, p, NULL, CT_PADDING_VALID, NULL, &l));
  OK(ct_sequential_add(m, l));
  ct_module_free(l);
  OK(ct_flatten_create(CTX, NULL, &l));
  OK(ct_sequential_add(m, l));
  ct_module_free(l);
  OK(ct_dense_create(CTX, 4 * 4 * 8, 4, CT_ACTIVATION_NONE, &o, &l));
  OK(ct_sequential_add(m, l));
  ct_module_free(l);
  return m;
}

/* One step on batch b of the current order; returns the loss tensor (not read). */
static ct_tensor *train_step(ct_module *m, ct_optimizer *opt, ct_idx_dataset *ds, int64_t b, int64_t bs) {
  ct_tensor *vars[16], *grads[16], *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
  int n;
  OK(ct_module_trainable_variables(m, vars, 16, &n));
  OK(ct_idx_dataset_batch(ds, b, bs, &x, &y));
  ct_tape *tape;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_module_call(m, x, true, &logits));
  OK(ct_softmax_cross_entropy(logits, y, &loss));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient(tape, &loss, 1, vars, n, NULL, CT_UNCONNECTED_NONE, grads));
  OK(ct_optimizer_apply(opt, grads, vars, n));
  ct_tensor_free_n(grads, n);
  ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(logits);
  ct_tape_free(tape);
  return loss;
}

static double mean_loss(ct_module *m, ct_idx_dataset *ds) {
  ct_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
  OK(ct_idx_dataset_batch(ds, 0, ct_idx_dataset_size(ds), &x, &y));
  OK(ct_module_call(m, x, false, &logits));
  OK(ct_softmax_cross_entropy(logits, y, &loss));
  double v = ts_item(loss);
  ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(logits), ct_tensor_free(loss);
  return v;
}

Test(nn_train, small_cnn_learns_synthetic_images, .init = setup, .fini = teardown, .timeout = 60) {
  char im[256], lb[256];
  synthetic_files(im, lb);
  ct_idx_dataset *ds = NULL;
  OK(ct_idx_dataset_open(CTX, im, lb, NULL, &ds));
  ct_module *m = small_cnn(0);
  ct_optimizer *opt = NULL;
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  o.learning_rate = 0.01;
  OK(ct_optimizer_create(CTX, &o, &opt));
  double before = mean_loss(m, ds);
  int64_t steps = 0;
  for (int epoch = 0; epoch < 8; ++epoch) { /* 8 epochs of 16 batches of 32: 128 steps */
    OK(ct_idx_dataset_shuffle(ds, (uint64_t)epoch));
    for (int64_t b = 0; b < ct_idx_dataset_num_batches(ds, 32, true); ++b, ++steps)
      ct_tensor_free(train_step(m, opt, ds, b, 32));
  }
  OK(ct_idx_dataset_unshuffle(ds));
  double after = mean_loss(m, ds);
  cr_log_info("synthetic CNN: loss %.4f -> %.4f in %lld steps", before, after, (long long)steps);
  cr_assert_eq(steps, 128);
  cr_assert_eq(ct_optimizer_iterations(opt), 128);
  cr_assert(before > 1.0, "initial loss %g", before);
  cr_assert(after < 0.05, "loss %g -> %g after %lld steps", before, after, (long long)steps);
  /* and it classifies */
  ct_tensor *x = NULL, *y = NULL, *logits = NULL, *acc = NULL;
  OK(ct_idx_dataset_batch(ds, 0, 512, &x, &y));
  OK(ct_module_call(m, x, false, &logits));
  OK(ct_accuracy(logits, y, &acc));
  cr_assert_geq(ts_item(acc), 0.99);
  ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(logits), ct_tensor_free(acc);
  ct_optimizer_free(opt);
  ct_module_free(m);
  ct_idx_dataset_free(ds);
}

/* Training resumed from a checkpoint continues exactly as if it had not stopped. */
Test(nn_train, resuming_from_a_checkpoint_is_exact, .init = setup, .fini = teardown, .timeout = 60) {
  char im[256], lb[256], ck[256];
  synthetic_files(im, lb);
  snprintf(ck, sizeof ck, "%s/resume.safetensors", DIR_);
  ct_idx_dataset *ds = NULL;
  OK(ct_idx_dataset_open(CTX, im, lb, NULL, &ds));
  ct_module *a = small_cnn(0);
  ct_optimizer *oa = NULL, *ob = NULL;
  OK(ct_optimizer_create(CTX, NULL, &oa));
  OK(ct_idx_dataset_shuffle(ds, 1));
  for (int b = 0; b < 10; ++b) ct_tensor_free(train_step(a, oa, ds, b, 16));
  OK(ct_checkpoint_save(ck, a, oa, NULL, NULL, 0));
  for (int b = 10; b < 20; ++b) ct_tensor_free(train_step(a, oa, ds, b, 16));
  ct_module *b_ = small_cnn(12345); /* other initial values, same names */
  OK(ct_optimizer_create(CTX, NULL, &ob));
  OK(ct_checkpoint_load(ck, b_, ob));
  for (int b = 10; b < 20; ++b) ct_tensor_free(train_step(b_, ob, ds, b, 16));
  ct_tensor *va[8], *vb[8];
  int na, nb;
  OK(ct_module_variables(a, va, 8, &na));
  OK(ct_module_variables(b_, vb, 8, &nb));
  cr_assert_eq(na, nb);
  for (int i = 0; i < na; ++i) {
    size_t bytes = (size_t)ct_tensor_size(va[i]) * 4;
    float *x = malloc(bytes), *y = malloc(bytes);
    OK(ct_tensor_read(va[i], x, bytes));
    OK(ct_tensor_read(vb[i], y, bytes));
    cr_assert(memcmp(x, y, bytes) == 0, "%s differs after resuming", ct_variable_name(va[i]));
    free(x), free(y);
  }
  ct_optimizer_free(oa), ct_optimizer_free(ob);
  ct_module_free(a), ct_module_free(b_);
  ct_idx_dataset_free(ds);
}

/* A few hundred steps of an MLP on the first 2048 Fashion-MNIST training images. */
/* 3 s on PoCL, about 25 s on rusticl with llvmpipe; the timeout leaves room for a loaded machine */
Test(nn_train, mlp_on_a_fashion_mnist_subset, .init = setup, .fini = teardown, .timeout = 400) {
  ct_idx_dataset_options o = ct_idx_dataset_default_options();
  o.limit = 2048;
  ct_idx_dataset *train = NULL, *test = NULL;
  OK(ct_idx_dataset_open(CTX, FASHION "/train-images-idx3-ubyte.gz", FASHION "/train-labels-idx1-ubyte.gz", &o, &train));
  o.limit = 1000;
  OK(ct_idx_dataset_open(CTX, FASHION "/t10k-images-idx3-ubyte.gz", FASHION "/t10k-labels-idx1-ubyte.gz", &o, &test));
  ct_module *m, *l;
  OK(ct_sequential_create(CTX, NULL, &m));
  OK(ct_flatten_create(CTX, NULL, &l));
  OK(ct_sequential_add(m, l));
  ct_module_free(l);
  OK(ct_dense_create(CTX, 784, 64, CT_ACTIVATION_RELU, NULL, &l));
  OK(ct_sequential_add(m, l));
  ct_module_free(l);
  OK(ct_dense_create(CTX, 64, 10, CT_ACTIVATION_NONE, NULL, &l));
  OK(ct_sequential_add(m, l));
  ct_module_free(l);
  ct_optimizer *opt = NULL;
  OK(ct_optimizer_create(CTX, NULL, &opt));
  double first = mean_loss(m, train);
  for (int epoch = 0; epoch < 10; ++epoch) { /* 10 x 32 = 320 steps of 64 images */
    OK(ct_idx_dataset_shuffle(train, (uint64_t)epoch + 1));
    for (int b = 0; b < 32; ++b) ct_tensor_free(train_step(m, opt, train, b, 64));
  }
  OK(ct_idx_dataset_unshuffle(train));
  double last = mean_loss(m, train), test_loss = mean_loss(m, test);
  cr_log_info("Fashion-MNIST MLP: training loss %.4f -> %.4f, test loss %.4f", first, last, test_loss);
  cr_assert(first > 2.0 && last < 0.45, "training loss %g -> %g after 320 steps", first, last);
  cr_assert(test_loss < 0.75, "test loss %g", test_loss);
  ct_optimizer_free(opt);
  ct_module_free(m);
  ct_idx_dataset_free(train);
  ct_idx_dataset_free(test);
}
