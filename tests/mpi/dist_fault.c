/* Runs under mpirun -np 2: rank 1 leaves the job early, rank 0 must report an error within its
 * timeout instead of waiting for ever. Mode "stall": rank 1 stops taking part (it sleeps past
 * the timeout); mode "exit": rank 1 exits without MPI_Finalize. Rank 0 prints
 * "dist_fault: reported: <message>" and ends the job (ct_dist_abort). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cltape_dist.h"

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "stall";
  ct_dist_options o = ct_dist_default_options();
  o.timeout_s = 5;
  ct_dist *d;
  if (ct_dist_init(&argc, &argv, &o, &d) != CT_OK) {
    fprintf(stderr, "dist_fault: %s\n", ct_dist_errmsg());
    return 1;
  }
  int rank = ct_dist_rank(d);
  ct_context *ctx;
  if (ct_context_create(NULL, &ctx) != CT_OK) {
    fprintf(stderr, "dist_fault: %s\n", ct_errmsg());
    ct_dist_abort(d, 1);
  }
  int64_t shape[1] = {1000};
  ct_tensor *g, *mean;
  ct_fill(ctx, CT_FLOAT32, 1, shape, rank, &g);
  /* one good step together */
  if (ct_dist_allreduce_mean(d, &g, 1, &mean) != CT_OK) {
    fprintf(stderr, "dist_fault: first step failed: %s\n", ct_dist_errmsg());
    ct_dist_abort(d, 1);
  }
  ct_tensor_free(mean);
  fflush(stdout);
  if (rank == 1) {
    if (strcmp(mode, "exit") == 0) _exit(0); /* no MPI_Finalize: mpirun sees an improper exit */
    sleep(40); /* past rank 0's timeout: the job is ended before this returns */
    return 0;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ct_status s = ct_dist_allreduce_mean(d, &g, 1, &mean);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double waited = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  if (s == CT_OK) {
    printf("dist_fault: the step completed without rank 1\n");
    return 1;
  }
  printf("dist_fault: reported after %.1f s: %s: %s\n", waited, ct_status_name(s), ct_dist_errmsg());
  fflush(stdout);
  ct_dist_abort(d, 4);
  return 4;
}
