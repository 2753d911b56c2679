/* Runs under mpirun: times ct_dist_allreduce_mean on float32 gradients of a given total size
 * (default 235146 elements, the Fashion-MNIST MLP's parameters), after a barrier each time so that
 * no rank waits for another's compute. Prints the median of the repetitions on rank 0 and checks
 * the mean. Usage: test_dist_allreduce_time [elements] [repetitions] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cltape_dist.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  ct_dist *d;
  if (ct_dist_init(&argc, &argv, NULL, &d) != CT_OK) {
    fprintf(stderr, "%s\n", ct_dist_errmsg());
    return 1;
  }
  int64_t n = argc > 1 ? atoll(argv[1]) : 235146;
  int reps = argc > 2 ? atoi(argv[2]) : 30, rank = ct_dist_rank(d), size = ct_dist_size(d);
  if (n < 1 || reps < 1 || reps > 1000) ct_dist_abort(d, 2);
  ct_context *ctx;
  ct_tensor *g, *mean = NULL;
  if (ct_context_create(NULL, &ctx) != CT_OK || ct_fill(ctx, CT_FLOAT32, 1, &n, rank + 1, &g) != CT_OK) {
    fprintf(stderr, "%s\n", ct_errmsg());
    ct_dist_abort(d, 1);
  }
  double *t = malloc(sizeof(double) * (size_t)reps), *rd = malloc(sizeof(double) * (size_t)reps),
         *wt = malloc(sizeof(double) * (size_t)reps), *wr = malloc(sizeof(double) * (size_t)reps);
  int64_t bad = 0;
  for (int i = 0; i < reps; ++i) {
    ct_tensor_free(mean);
    if (ct_context_sync(ctx) != CT_OK || ct_dist_barrier(d) != CT_OK) ct_dist_abort(d, 1);
    double t0 = now_s();
    if (ct_dist_allreduce_mean(d, &g, 1, &mean) != CT_OK || ct_context_sync(ctx) != CT_OK) {
      fprintf(stderr, "rank %d: %s\n", rank, ct_dist_errmsg());
      ct_dist_abort(d, 1);
    }
    t[i] = now_s() - t0;
    ct_dist_last_timing(d, &rd[i], &wt[i], &wr[i]);
  }
  double *all = malloc(sizeof(double) * (size_t)n);
  if (!all || ct_tensor_read_f64(mean, all, n) != CT_OK) ct_dist_abort(d, 1);
  for (int64_t k = 0; k < n; ++k) bad += all[k] != (size + 1) / 2.0;
  free(all);
  qsort(t, (size_t)reps, sizeof *t, cmp);
  qsort(rd, (size_t)reps, sizeof *rd, cmp);
  qsort(wt, (size_t)reps, sizeof *wt, cmp);
  qsort(wr, (size_t)reps, sizeof *wr, cmp);
  double bytes = 4.0 * (double)n;
  if (rank == 0)
    printf("allreduce: %d ranks, %lld float32 (%.2f MB), median of %d: %.3f ms (read back %.3f, MPI %.3f, write "
           "%.3f), %.2f GB/s of gradient per rank, mean %s\n",
           size, (long long)n, bytes * 1e-6, reps, 1e3 * t[reps / 2], 1e3 * rd[reps / 2], 1e3 * wt[reps / 2],
           1e3 * wr[reps / 2], bytes / t[reps / 2] * 1e-9, bad ? "WRONG" : "right");
  free(t), free(rd), free(wt), free(wr);
  ct_tensor_free(mean);
  ct_tensor_free(g);
  ct_context_free(ctx);
  ct_dist_free(d);
  return bad != 0;
}
