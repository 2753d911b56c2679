/* recompute.c — recomputation (ct_recompute_grad, TensorFlow's tf.recompute_grad) on a deep MLP:
 * 8 hidden relu layers of width 256 on a batch of 512 inputs of 256 features, then a 10-way
 * linear layer and the mean squared output as the loss. The plain tape keeps every layer's
 * activations for the backward pass; with the 8 hidden layers in one recomputed function the tape
 * keeps that function's input only and runs the layers again in the backward pass. The program
 * prints the bytes each tape holds (ct_tape_saved_bytes) and the median time of a training step's
 * forward and backward pass, and checks that the gradients agree. */
#define _POSIX_C_SOURCE 200809L
#include "guide.h"
#include <string.h>
#include <time.h>

#define LAYERS 8
#define WIDTH 256
#define BATCH 512
#define REPEATS 5

typedef struct {
  ct_tensor *w[LAYERS], *b[LAYERS];
} hidden;

/* the 8 hidden layers: h = relu(h W + b) */
static ct_status hidden_layers(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)n;
  const hidden *m = user;
  ct_tensor *h = ct_tensor_retain(in[0]);
  for (int l = 0; l < LAYERS; ++l) {
    ct_tensor *a, *ab;
    TRY(ct_matmul(h, m->w[l], false, false, &a));
    TRY(ct_add(a, m->b[l], &ab));
    ct_tensor_free(h);
    TRY(ct_relu(ab, &h));
    ct_tensor_free(a);
    ct_tensor_free(ab);
  }
  *out = h;
  return CT_OK;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One step's forward and backward pass: the loss's gradients with respect to every weight (in
 * grads, 2 LAYERS + 1 of them), the bytes the tape held, the seconds it took. */
static void step(ct_context *ctx, hidden *m, ct_tensor *w_out, ct_tensor *x, int recompute, ct_tensor **grads,
                 uint64_t *held, double *seconds) {
  double t0 = now();
  ct_tape *tape;
  ct_tensor *h, *logits, *sq, *loss;
  TRY(ct_tape_begin(ctx, NULL, &tape));
  if (recompute) TRY(ct_recompute_grad(hidden_layers, m, &x, 1, &h));
  else TRY(hidden_layers(&x, 1, &h, m));
  TRY(ct_matmul(h, w_out, false, false, &logits));
  TRY(ct_square(logits, &sq));
  TRY(ct_mean(sq, NULL, 0, false, &loss));
  TRY(ct_tape_end(tape));
  TRY(ct_tape_saved_bytes(tape, held));
  ct_tensor *sources[2 * LAYERS + 1];
  for (int l = 0; l < LAYERS; ++l) {
    sources[2 * l] = m->w[l];
    sources[2 * l + 1] = m->b[l];
  }
  sources[2 * LAYERS] = w_out;
  TRY(ct_tape_gradient(tape, &loss, 1, sources, 2 * LAYERS + 1, NULL, CT_UNCONNECTED_NONE, grads));
  TRY(ct_context_sync(ctx));
  *seconds = now() - t0;
  ct_tensor *tmp[] = {h, logits, sq, loss};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(tape);
}

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);
  hidden m;
  ct_tensor *x, *w_out, *init;
  for (int l = 0; l < LAYERS; ++l) {
    TRY(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){WIDTH, WIDTH}, 0.0, 0.09, 100 + (uint64_t)l, &init));
    TRY(ct_variable_create(init, "w", true, &m.w[l]));
    ct_tensor_free(init);
    TRY(ct_zeros(ctx, CT_FLOAT32, 1, (int64_t[]){WIDTH}, &init));
    TRY(ct_variable_create(init, "b", true, &m.b[l]));
    ct_tensor_free(init);
  }
  TRY(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){WIDTH, 10}, 0.0, 0.06, 7, &init));
  TRY(ct_variable_create(init, "w_out", true, &w_out));
  ct_tensor_free(init);
  TRY(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){BATCH, WIDTH}, 0.0, 1.0, 8, &x));

  enum { NG = 2 * LAYERS + 1 };
  ct_tensor *grads[2][NG] = {{NULL}};
  uint64_t held[2] = {0, 0};
  double times[2][REPEATS];
  for (int r = 0; r < REPEATS; ++r)
    for (int k = 0; k < 2; ++k) {
      ct_tensor_free_n(grads[k], NG);
      step(ctx, &m, w_out, x, k, grads[k], &held[k], &times[k][r]);
    }
  const char *name[2] = {"plain tape", "recompute_grad"};
  for (int k = 0; k < 2; ++k) {
    qsort(times[k], REPEATS, sizeof(double), by_value);
    printf("%-15s holds %9llu bytes for the backward pass\n", name[k], (unsigned long long)held[k]);
  }
  double ratio = (double)held[0] / (double)held[1];
  printf("the recomputing tape holds %.1fx fewer bytes\n", ratio);
  printf("time: a step takes %.1f ms with the plain tape, %.1f ms with recompute_grad (median of %d)\n",
         times[0][REPEATS / 2] * 1e3, times[1][REPEATS / 2] * 1e3, REPEATS);
  expect(ratio >= 3.0, "at least 3x fewer saved bytes");
  /* the same gradients, up to float32 rounding */
  double worst = 0;
  for (int i = 0; i < NG; ++i) {
    int64_t n = ct_tensor_size(grads[0][i]);
    double *a = malloc(sizeof *a * (size_t)n), *b = malloc(sizeof *b * (size_t)n), scale = 0;
    TRY(ct_tensor_read_f64(grads[0][i], a, n));
    TRY(ct_tensor_read_f64(grads[1][i], b, n));
    for (int64_t j = 0; j < n; ++j) scale = fmax(scale, fabs(a[j]));
    for (int64_t j = 0; j < n; ++j) worst = fmax(worst, fabs(a[j] - b[j]) / (scale > 0 ? scale : 1));
    free(a);
    free(b);
  }
  expect(worst < 1e-5, "the recomputed gradients are the plain tape's");
  for (int k = 0; k < 2; ++k) ct_tensor_free_n(grads[k], NG);
  ct_tensor_free_n(m.w, LAYERS);
  ct_tensor_free_n(m.b, LAYERS);
  ct_tensor_free(w_out);
  ct_tensor_free(x);
  return finish(ctx);
}
