/* nn_step — where the time of a training step of the Fashion-MNIST example goes.
 *
 *   bench_nn_step [--batch N] [--repeats N] [--device SEL]
 *
 * Times each op of one step of the example's CNN and MLP (forward, then the ops the backward pass
 * runs, with the shapes of a batch of 128) in isolation: every op is run `repeats` times between
 * two synchronisations. Prints wall-clock and process CPU milliseconds per op (CPU time counts
 * every thread of the process, so on a machine shared with other work it is the steadier
 * number), then the time of whole steps. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include "cltape_nn.h"
#include "bench_clock.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static ct_context *C;
static int REPS = 10;
static double total_wall, total_cpu;

static ct_tensor *rnd(int rank, const int64_t *shape, uint64_t seed) {
  ct_tensor *t = NULL;
  check(ct_random_normal(C, CT_FLOAT32, rank, shape, 0, 1, seed, &t), "random");
  return t;
}

typedef struct {
  ct_op_id op;
  const ct_tensor *in[3];
  int n;
  ct_attrs at;
} op_call;

/* Runs the call once (compiling kernels), then REPS times between synchronisations. */
static void timed(const char *label, op_call k) {
  const op_call *c = &k;
  ct_tensor *y = NULL;
  check(ct__run(c->op, c->in, c->n, &c->at, &y), label);
  ct_tensor_free(y);
  check(ct_context_sync(C), "sync");
  double w0 = now(), c0 = cpu();
  for (int r = 0; r < REPS; ++r) {
    check(ct__run(c->op, c->in, c->n, &c->at, &y), label);
    ct_tensor_free(y);
  }
  check(ct_context_sync(C), "sync");
  double w = (now() - w0) / REPS * 1e3, cp = (cpu() - c0) / REPS * 1e3;
  total_wall += w;
  total_cpu += cp;
  printf("  %-40s %8.2f %8.2f\n", label, w, cp);
}

static op_call call(ct_op_id op, const ct_tensor *a, const ct_tensor *b, const ct_tensor *c) {
  op_call k;
  memset(&k, 0, sizeof k);
  k.op = op;
  k.in[0] = a;
  k.in[1] = b;
  k.in[2] = c;
  k.n = c ? 3 : b ? 2 : 1;
  return k;
}
static op_call conv(ct_op_id op, const ct_tensor *a, const ct_tensor *b, int rank, const int64_t *shape) {
  op_call k = call(op, a, b, NULL);
  k.at = ct__attrs(CT_AT_WINDOW);
  k.at.window.stride[0] = k.at.window.stride[1] = 1;
  k.at.window.same = true;
  k.at.window.rank = rank;
  if (shape) memcpy(k.at.window.shape, shape, sizeof(int64_t) * (size_t)rank);
  return k;
}
static op_call pool(ct_op_id op, const ct_tensor *a, const ct_tensor *b) {
  op_call k = call(op, a, b, NULL);
  k.at = ct__attrs(CT_AT_WINDOW);
  k.at.window.win[0] = k.at.window.win[1] = k.at.window.stride[0] = k.at.window.stride[1] = 2;
  return k;
}
static op_call mm(const ct_tensor *a, const ct_tensor *b, bool ta, bool tb) {
  op_call k = call(CT_OP_MATMUL, a, b, NULL);
  k.at = ct__attrs(CT_AT_MATMUL);
  k.at.matmul.ta = ta;
  k.at.matmul.tb = tb;
  return k;
}

static void section(const char *title) {
  total_wall = total_cpu = 0;
  printf("%s\n  %-40s %8s %8s\n", title, "op", "wall ms", "CPU ms");
}
static void subtotal(const char *what) { printf("  %-40s %8.2f %8.2f\n", what, total_wall, total_cpu); }

/* A whole training step of a model, `reps` times. */
static void steps(const char *name, ct_module *m, const ct_tensor *x, const ct_tensor *y) {
  ct_optimizer *opt = NULL;
  check(ct_optimizer_create(C, NULL, &opt), "optimizer");
  ct_tensor *vars[32], *grads[32];
  int n = 0;
  check(ct_module_trainable_variables(m, vars, 32, &n), "variables");
  double w0 = 0, c0 = 0;
  for (int r = 0; r <= REPS; ++r) {
    if (r == 1) {
      check(ct_context_sync(C), "sync");
      w0 = now();
      c0 = cpu();
    }
    ct_tape *tape = NULL;
    ct_tensor *logits = NULL, *loss = NULL;
    check(ct_tape_begin(C, NULL, &tape), "tape");
    check(ct_module_call(m, x, true, &logits), "forward");
    check(ct_softmax_cross_entropy(logits, y, &loss), "loss");
    check(ct_tape_end(tape), "tape");
    check(ct_tape_gradient(tape, &loss, 1, vars, n, NULL, CT_UNCONNECTED_NONE, grads), "gradient");
    check(ct_optimizer_apply(opt, grads, vars, n), "step");
    ct_tensor_free_n(grads, n);
    ct_tensor_free(logits);
    ct_tensor_free(loss);
    ct_tape_free(tape);
  }
  check(ct_context_sync(C), "sync");
  double w = (now() - w0) / REPS, cp = (cpu() - c0) / REPS;
  printf("%s: whole step %.1f ms wall, %.1f ms CPU, %.0f images/s\n", name, w * 1e3, cp * 1e3,
         (double)ct_tensor_shape(x)[0] / w);
  ct_optimizer_free(opt);
}

static void add(ct_module *seq, ct_status s, ct_module **l) {
  check(s, "layer");
  check(ct_sequential_add(seq, *l), "add");
  ct_module_free(*l);
}

int main(int argc, char **argv) {
  int64_t B = 128;
  const char *device = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--batch") == 0) B = atoll(argv[i + 1]);
    else if (strcmp(argv[i], "--repeats") == 0) REPS = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--device") == 0) device = argv[i + 1];
    else {
      fprintf(stderr, "usage: bench_nn_step [--batch N] [--repeats N] [--device SEL]\n");
      return 2;
    }
  }
  if (B < 1 || REPS < 1) return 2;
  check(ct_context_create(device, &C), "context");
  ct_device_info dev;
  check(ct_context_device(C, &dev), "device");
  printf("device: %s, batch %lld, %d repeats\n", dev.name, (long long)B, REPS);

  /* the CNN: conv 3x3 1->32, pool, relu, conv 3x3 32->32, pool, relu, dense 1568->128 relu, 128->10 */
  const int64_t xs[4] = {B, 28, 28, 1}, f1s[4] = {3, 3, 1, 32}, h1s[4] = {B, 28, 28, 32}, p1s[4] = {B, 14, 14, 32};
  const int64_t f2s[4] = {3, 3, 32, 32}, h2s[4] = {B, 14, 14, 32}, p2s[4] = {B, 7, 7, 32}, bs[1] = {32};
  const int64_t as[2] = {B, 1568}, ws[2] = {1568, 128}, hs[2] = {B, 128}, w2s[2] = {128, 10}, ls[2] = {B, 10};
  ct_tensor *x = rnd(4, xs, 1), *f1 = rnd(4, f1s, 2), *h1 = rnd(4, h1s, 3), *p1 = rnd(4, p1s, 4), *f2 = rnd(4, f2s, 5);
  ct_tensor *h2 = rnd(4, h2s, 6), *p2 = rnd(4, p2s, 7), *b = rnd(1, bs, 8), *a = rnd(2, as, 9), *w = rnd(2, ws, 10);
  ct_tensor *hh = rnd(2, hs, 11), *w2 = rnd(2, w2s, 12), *lg = rnd(2, ls, 13), *dl = NULL, *lab = NULL;
  int32_t *labels = malloc(sizeof(int32_t) * (size_t)B);
  for (int64_t i = 0; i < B; ++i) labels[i] = (int32_t)(i % 10);
  check(ct_tensor_from_data(C, CT_INT32, 1, &B, labels, &lab), "labels");
  check(ct_ones(C, CT_FLOAT32, 1, &B, &dl), "ones");
  free(labels);

  const int64_t b128s[1] = {128}, b10s[1] = {10};
  ct_tensor *b128 = rnd(1, b128s, 14), *b10 = rnd(1, b10s, 15);

  section("CNN forward (per op)");
  timed("conv1 3x3 1->32 on 28x28", conv(CT_OP_CONV2D, x, f1, 0, NULL));
  timed("bias add 28x28x32", call(CT_OP_BIAS_ADD, h1, b, NULL));
  timed("max pool 2x2 28x28x32", pool(CT_OP_MAXPOOL, h1, NULL));
  timed("relu 14x14x32", call(CT_OP_RELU, p1, NULL, NULL));
  timed("conv2 3x3 32->32 on 14x14", conv(CT_OP_CONV2D, p1, f2, 0, NULL));
  timed("bias add 14x14x32", call(CT_OP_BIAS_ADD, h2, b, NULL));
  timed("max pool 2x2 14x14x32", pool(CT_OP_MAXPOOL, h2, NULL));
  timed("relu 7x7x32", call(CT_OP_RELU, p2, NULL, NULL));
  timed("matmul 1568->128", mm(a, w, false, false));
  timed("bias add 128", call(CT_OP_BIAS_ADD, hh, b128, NULL));
  timed("matmul 128->10", mm(hh, w2, false, false));
  timed("softmax cross-entropy", call(CT_OP_SOFTMAX_XENT, lg, lab, NULL));
  subtotal("forward total");
  section("CNN backward (per op)");
  timed("softmax cross-entropy gradient", call(CT_OP_SOFTMAX_XENT_GRAD, lg, lab, dl));
  timed("matmul 128->10: dW", mm(hh, lg, true, false));
  timed("matmul 128->10: dx", mm(lg, w2, false, true));
  timed("matmul 1568->128: dW", mm(a, hh, true, false));
  timed("matmul 1568->128: dx", mm(hh, w, false, true));
  timed("bias gradient 128", call(CT_OP_BIAS_ADD_GRAD, hh, NULL, NULL));
  timed("relu gradient 7x7x32: sign", call(CT_OP_SIGN, p2, NULL, NULL));
  timed("relu gradient 7x7x32: mul", call(CT_OP_MUL, p2, p2, NULL));
  timed("max pool gradient 14x14x32", pool(CT_OP_MAXPOOL_GRAD, h2, p2));
  timed("bias gradient 14x14x32", call(CT_OP_BIAS_ADD_GRAD, h2, NULL, NULL));
  timed("conv2 input gradient", conv(CT_OP_CONV2D_BP_INPUT, h2, f2, 4, p1s));
  timed("conv2 filter gradient", conv(CT_OP_CONV2D_BP_FILTER, p1, h2, 4, f2s));
  timed("relu gradient 14x14x32: sign", call(CT_OP_SIGN, p1, NULL, NULL));
  timed("relu gradient 14x14x32: mul", call(CT_OP_MUL, p1, p1, NULL));
  timed("max pool gradient 28x28x32", pool(CT_OP_MAXPOOL_GRAD, h1, p1));
  timed("bias gradient 28x28x32", call(CT_OP_BIAS_ADD_GRAD, h1, NULL, NULL));
  timed("conv1 filter gradient", conv(CT_OP_CONV2D_BP_FILTER, x, h1, 4, f1s));
  subtotal("backward total");

  /* the MLP: 784 -> 256 -> 128 -> 10 */
  const int64_t ms[2] = {B, 784}, m1s[2] = {784, 256}, o1s[2] = {B, 256}, m2s[2] = {256, 128};
  ct_tensor *mx = rnd(2, ms, 20), *m1 = rnd(2, m1s, 21), *o1 = rnd(2, o1s, 22), *m2 = rnd(2, m2s, 23);
  section("MLP forward and backward (per op)");
  timed("matmul 784->256", mm(mx, m1, false, false));
  timed("matmul 256->128", mm(o1, m2, false, false));
  timed("matmul 784->256: dW", mm(mx, o1, true, false));
  timed("matmul 256->128: dW", mm(o1, hh, true, false));
  timed("matmul 256->128: dx", mm(hh, m2, false, true));
  subtotal("total of these");

  /* whole steps through the public API, as the example runs them */
  ct_module *cnn = NULL, *mlp = NULL, *l = NULL;
  int k3[2] = {3, 3}, p2d[2] = {2, 2};
  check(ct_sequential_create(C, NULL, &cnn), "model");
  for (int i = 0; i < 2; ++i) {
    add(cnn, ct_conv2d_create(C, i ? 32 : 1, 32, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &l), &l);
    add(cnn, ct_max_pool2d_create(C, p2d, NULL, CT_PADDING_VALID, NULL, &l), &l);
    add(cnn, ct_activation_create(C, CT_ACTIVATION_RELU, NULL, &l), &l);
  }
  add(cnn, ct_flatten_create(C, NULL, &l), &l);
  add(cnn, ct_dense_create(C, 1568, 128, CT_ACTIVATION_RELU, NULL, &l), &l);
  add(cnn, ct_dropout_create(C, 0.3, 1, NULL, &l), &l);
  add(cnn, ct_dense_create(C, 128, 10, CT_ACTIVATION_NONE, NULL, &l), &l);
  check(ct_sequential_create(C, NULL, &mlp), "model");
  add(mlp, ct_flatten_create(C, NULL, &l), &l);
  add(mlp, ct_dense_create(C, 784, 256, CT_ACTIVATION_RELU, NULL, &l), &l);
  add(mlp, ct_dense_create(C, 256, 128, CT_ACTIVATION_RELU, NULL, &l), &l);
  add(mlp, ct_dense_create(C, 128, 10, CT_ACTIVATION_NONE, NULL, &l), &l);
  steps("CNN", cnn, x, lab);
  steps("MLP", mlp, x, lab);

  ct_module_free(cnn);
  ct_module_free(mlp);
  ct_tensor *all[] = {x, f1, h1, p1, f2, h2, p2, b, a, w, hh, w2, lg, dl, lab, b128, b10, mx, m1, o1, m2};
  ct_tensor_free_n(all, (int)(sizeof all / sizeof *all));
  ct_context_free(C);
  return 0;
}
