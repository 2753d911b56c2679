/* Runs under mpirun -np 2 (ctest registers it when MPI is found): data-parallel training over MPI
 * ranks with cltape_dist. Exits 0 when every check passed on this rank, 1 otherwise. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cltape_dist.h"
#include "cltape_nn.h"

static int failures = 0;
static int g_rank = -1;
#define EXPECT(cond, ...)                                            \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "rank %d: FAILED %s: ", g_rank, #cond);        \
      fprintf(stderr, __VA_ARGS__);                                  \
      fprintf(stderr, "\n");                                         \
      failures++;                                                    \
    }                                                                \
  } while (0)
#define MUST(call)                                                                                         \
  do {                                                                                                     \
    ct_status s_ = (call);                                                                                 \
    if (s_ != CT_OK) {                                                                                     \
      fprintf(stderr, "rank %d: %s -> %s: %s %s\n", g_rank, #call, ct_status_name(s_), ct_errmsg(),      \
              ct_dist_errmsg());                                                                           \
      exit(1);                                                                                             \
    }                                                                                                      \
  } while (0)

#define NV 4
enum { B = 24, IN = 5, HID = 7, OUT = 3 };

static ct_module *make_model(ct_context *ctx, uint64_t seed) {
  ct_module *seq, *l1, *l2;
  ct_layer_options o = ct_layer_default_options();
  MUST(ct_sequential_create(ctx, NULL, &seq));
  o.seed = seed;
  o.bias_initializer = CT_INIT_GLOROT_UNIFORM;
  MUST(ct_dense_create(ctx, IN, HID, CT_ACTIVATION_TANH, &o, &l1));
  o.seed = seed + 1;
  MUST(ct_dense_create(ctx, HID, OUT, CT_ACTIVATION_NONE, &o, &l2));
  MUST(ct_sequential_add(seq, l1));
  MUST(ct_sequential_add(seq, l2));
  ct_module_free(l1);
  ct_module_free(l2);
  return seq;
}

/* The loss gradients on rows [row0, row0 + rows); with d, averaged over the ranks by
 * ct_dist_gradient (overlapping the backward pass). */
static void grads_of(ct_context *ctx, ct_module *m, ct_tensor **vars, const float *x, const int32_t *y, int row0,
                     int rows, ct_tensor **grads, ct_dist *d) {
  int64_t xs[2] = {rows, IN}, ys[1] = {rows};
  ct_tensor *tx, *ty, *logits, *loss;
  ct_tape *tape;
  MUST(ct_tensor_from_data(ctx, CT_FLOAT32, 2, xs, x + row0 * IN, &tx));
  MUST(ct_tensor_from_data(ctx, CT_INT32, 1, ys, y + row0, &ty));
  MUST(ct_tape_begin(ctx, NULL, &tape));
  MUST(ct_module_call(m, tx, true, &logits));
  MUST(ct_softmax_cross_entropy(logits, ty, &loss));
  MUST(ct_tape_end(tape));
  if (d) MUST(ct_dist_gradient(d, tape, &loss, 1, vars, NV, grads));
  else MUST(ct_tape_gradient(tape, &loss, 1, vars, NV, NULL, CT_UNCONNECTED_NONE, grads));
  ct_tape_free(tape);
  ct_tensor *tmp[] = {tx, ty, logits, loss};
  ct_tensor_free_n(tmp, 4);
}

/* Every rank holds bit-identical values in vars: the sum over the ranks of each element equals
 * size times this rank's (exact in double for float32 values and a few ranks). */
static void expect_same_on_all_ranks(ct_dist *d, ct_tensor **vars, int n, const char *when) {
  for (int i = 0; i < n; ++i) {
    int64_t e = ct_tensor_size(vars[i]);
    double *mine = malloc(sizeof(double) * (size_t)e), *sum = malloc(sizeof(double) * (size_t)e);
    MUST(ct_tensor_read_f64(vars[i], mine, e));
    memcpy(sum, mine, sizeof(double) * (size_t)e);
    MUST(ct_dist_allreduce_sum(d, sum, (int)e));
    int bad = 0;
    for (int64_t k = 0; k < e; ++k) bad += sum[k] != ct_dist_size(d) * mine[k];
    EXPECT(bad == 0, "%s: variable %d differs between the ranks in %d elements", when, i, bad);
    free(mine);
    free(sum);
  }
}

int main(int argc, char **argv) {
  ct_dist_options o = ct_dist_default_options();
  o.bucket_bytes = 64; /* several buckets even for this small model */
  o.timeout_s = 50;
  ct_dist *d;
  MUST(ct_dist_init(&argc, &argv, &o, &d));
  int rank = ct_dist_rank(d), size = ct_dist_size(d);
  g_rank = rank;
  EXPECT(size == 2, "run with mpirun -np 2 (size %d)", size);
  EXPECT(ct_dist_local_rank(d) == rank, "one machine: local rank %d, rank %d", ct_dist_local_rank(d), rank);
  ct_context *ctx;
  MUST(ct_context_create(NULL, &ctx));

  /* 1. all-reduce of known values in two dtypes and with a NULL gradient: mean of rank + 1 */
  {
    int64_t s3[1] = {3}, s5[1] = {5};
    ct_tensor *g[3] = {NULL, NULL, NULL}, *mean[3];
    MUST(ct_fill(ctx, CT_FLOAT32, 1, s3, rank + 1, &g[0]));
    ct_device_info dev;
    MUST(ct_context_device(ctx, &dev));
    MUST(ct_fill(ctx, dev.fp64 ? CT_FLOAT64 : CT_FLOAT32, 1, s5, 10.0 * (rank + 1), &g[2]));
    MUST(ct_dist_allreduce_mean(d, g, 3, mean));
    double v3[3], v5[5];
    MUST(ct_tensor_read_f64(mean[0], v3, 3));
    MUST(ct_tensor_read_f64(mean[2], v5, 5));
    EXPECT(mean[1] == NULL, "a NULL gradient stays NULL");
    for (int k = 0; k < 3; ++k) EXPECT(v3[k] == 1.5, "float32 mean %g, want 1.5", v3[k]);
    for (int k = 0; k < 5; ++k) EXPECT(v5[k] == 15.0, "second mean %g, want 15", v5[k]);
    EXPECT(ct_tensor_dtype(mean[2]) == ct_tensor_dtype(g[2]), "dtype kept");
    ct_tensor_free_n(g, 3);
    ct_tensor_free_n(mean, 3);
  }

  /* 2. gradients that differ in number between the ranks: an error on every rank, no hang */
  {
    int64_t s2[1] = {2};
    ct_tensor *g[2], *mean[2];
    MUST(ct_ones(ctx, CT_FLOAT32, 1, s2, &g[0]));
    MUST(ct_ones(ctx, CT_FLOAT32, 1, s2, &g[1]));
    ct_status s = ct_dist_allreduce_mean(d, g, rank == 0 ? 1 : 2, mean);
    EXPECT(s == CT_ERR_MISMATCH, "got %s", ct_status_name(s));
    EXPECT(strstr(ct_dist_errmsg(), "differ") != NULL, "message: %s", ct_dist_errmsg());
    ct_tensor_free_n(g, 2);
    /* an integer gradient on rank 1 only: rank 1 says so, rank 0 learns of it at once */
    ct_tensor *gi;
    MUST(ct_ones(ctx, rank == 1 ? CT_INT32 : CT_FLOAT32, 1, s2, &gi));
    s = ct_dist_allreduce_mean(d, &gi, 1, mean);
    EXPECT(s == (rank == 1 ? CT_ERR_DTYPE : CT_ERR_MISMATCH), "rank %d got %s", rank, ct_status_name(s));
    ct_tensor_free(gi);
  }

  /* 3. training: each rank starts from other values, the broadcast makes them rank 0's; each step
   *    on half the batch with averaged gradients (ct_dist_allreduce_mean and ct_dist_gradient in
   *    turn) matches one process's whole-batch step */
  ct_module *m = make_model(ctx, 100 + (uint64_t)rank * 17), *ref = make_model(ctx, 100);
  ct_tensor *vars[NV], *rvars[NV], *all[NV];
  int n;
  MUST(ct_module_trainable_variables(m, vars, NV, &n));
  MUST(ct_module_trainable_variables(ref, rvars, NV, &n));
  MUST(ct_module_variables(m, all, NV, &n));
  MUST(ct_dist_broadcast_variables(d, all, n, 0));
  expect_same_on_all_ranks(d, vars, NV, "after the broadcast");
  ct_optimizer *opt, *ropt;
  MUST(ct_optimizer_create(ctx, NULL, &opt)); /* Adam */
  MUST(ct_optimizer_create(ctx, NULL, &ropt));

  float x[B * IN];
  int32_t y[B];
  uint64_t st = 7;
  for (int i = 0; i < B * IN; ++i) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = (float)((double)(st >> 11) / 9007199254740992.0 * 2 - 1);
  }
  for (int i = 0; i < B; ++i) y[i] = i % OUT;
  for (int step = 1; step <= 5; ++step) {
    ct_tensor *grads[NV], *mean[NV], *rgrads[NV];
    if (step % 2) { /* backward, then a bucketed all-reduce */
      grads_of(ctx, m, vars, x, y, rank * (B / size), B / size, grads, NULL);
      MUST(ct_dist_allreduce_mean(d, grads, NV, mean));
      ct_tensor_free_n(grads, NV);
    } else { /* the all-reduce overlapping the backward pass */
      grads_of(ctx, m, vars, x, y, rank * (B / size), B / size, mean, d);
    }
    MUST(ct_optimizer_apply(opt, mean, vars, NV));
    ct_tensor_free_n(mean, NV);
    char when[32];
    snprintf(when, sizeof when, "after step %d", step);
    expect_same_on_all_ranks(d, vars, NV, when);

    grads_of(ctx, ref, rvars, x, y, 0, B, rgrads, NULL);
    MUST(ct_optimizer_apply(ropt, rgrads, rvars, NV));
    ct_tensor_free_n(rgrads, NV);
    for (int i = 0; i < NV; ++i) {
      int64_t e = ct_tensor_size(vars[i]);
      double a[64], b[64];
      MUST(ct_tensor_read_f64(vars[i], a, e));
      MUST(ct_tensor_read_f64(rvars[i], b, e));
      double worst = 0;
      for (int64_t k = 0; k < e; ++k) worst = fmax(worst, fabs(a[k] - b[k]));
      EXPECT(worst < 1e-5, "%s: variable %d is %g away from one process's whole-batch training", when, i, worst);
    }
  }

  /* 4. checkpoints from rank 0 only; every rank can read it back */
  char path[256];
  snprintf(path, sizeof path, "%s/dist_train_%d.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (int)getppid());
  if (rank == 0) MUST(ct_checkpoint_save(path, m, opt, NULL, NULL, 0));
  MUST(ct_dist_barrier(d));
  double saved[NV][64];
  for (int i = 0; i < NV; ++i) {
    MUST(ct_tensor_read_f64(vars[i], saved[i], ct_tensor_size(vars[i])));
    ct_tensor *z;
    MUST(ct_zeros_like(vars[i], &z));
    MUST(ct_variable_assign(vars[i], z));
    ct_tensor_free(z);
  }
  MUST(ct_checkpoint_load(path, m, NULL));
  for (int i = 0; i < NV; ++i) {
    double a[64];
    int64_t e = ct_tensor_size(vars[i]);
    MUST(ct_tensor_read_f64(vars[i], a, e));
    EXPECT(memcmp(a, saved[i], sizeof(double) * (size_t)e) == 0, "checkpoint variable %d", i);
  }
  MUST(ct_dist_barrier(d));
  if (rank == 0) remove(path);

  ct_optimizer_free(opt);
  ct_optimizer_free(ropt);
  ct_module_free(m);
  ct_module_free(ref);
  ct_context_free(ctx);
  double f = failures;
  MUST(ct_dist_allreduce_sum(d, &f, 1));
  if (rank == 0) printf("dist_train: %s (%g failed checks over %d ranks)\n", f == 0 ? "PASS" : "FAIL", f, size);
  ct_dist_free(d);
  return failures ? 1 : 0;
}
