/*
 * contexts.c — the context stress: many threads at once, each creating its own context (the first
 * ones in the process, so device discovery itself is raced), running a small tape (forward and
 * gradient), checking the values and freeing everything, in a loop. One context per thread, as
 * lib/cltape.h requires.
 *
 * Used two ways: by tests/test_concurrency.c (ct_stress_contexts), and as a program of its own
 * under ThreadSanitizer (scripts/reliability.sh tsan) when built with -DCT_STRESS_MAIN:
 *   contexts [threads] [rounds]      exit status 0 when every thread computed the right values
 */
#define _POSIX_C_SOURCE 200809L
#include "stress/contexts.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  pthread_barrier_t *start;
  int rounds, index;
  ct_status status;
  char error[256];
} worker;

#define TRY(call)                                                                                 \
  do {                                                                                            \
    ct_status try_s_ = (call);                                                                    \
    if (try_s_ != CT_OK) {                                                                        \
      w->status = try_s_;                                                                         \
      snprintf(w->error, sizeof w->error, "thread %d: %s: %s", w->index, #call, ct_errmsg());     \
      goto done;                                                                                  \
    }                                                                                             \
  } while (0)

/* y = sum(sin(x) * x); dy/dx = cos(x) * x + sin(x), on x = (0.1, 0.2, ..., 0.8) */
static int one_round(worker *w) {
  enum { N = 8 };
  ct_context *ctx = NULL;
  ct_tape *tape = NULL;
  ct_tensor *x = NULL, *s = NULL, *p = NULL, *y = NULL, *g = NULL;
  float xs[N], gs[N];
  for (int i = 0; i < N; ++i) xs[i] = 0.1f * (float)(i + 1);
  w->status = CT_OK;
  TRY(ct_context_create("cpu", &ctx));
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 1, (int64_t[]){N}, xs, &x));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));
  TRY(ct_sin(x, &s));
  TRY(ct_mul(s, x, &p));
  TRY(ct_sum(p, NULL, 0, false, &y));
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient(tape, &y, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, &g));
  TRY(ct_tensor_read(g, gs, sizeof gs));
  double yv = 0, want_y = 0;
  TRY(ct_tensor_item(y, &yv));
  for (int i = 0; i < N; ++i) {
    double v = xs[i], want = cos(v) * v + sin(v);
    want_y += sin(v) * v;
    if (fabs(gs[i] - want) > 1e-5) {
      w->status = CT_ERR_INTERNAL;
      snprintf(w->error, sizeof w->error, "thread %d: gradient %d is %g, wanted %g", w->index, i, gs[i], want);
      goto done;
    }
  }
  if (fabs(yv - want_y) > 1e-5) {
    w->status = CT_ERR_INTERNAL;
    snprintf(w->error, sizeof w->error, "thread %d: sum is %g, wanted %g", w->index, yv, want_y);
  }
done:
  ct_tensor_free(g);
  ct_tensor_free(y);
  ct_tensor_free(p);
  ct_tensor_free(s);
  ct_tensor_free(x);
  ct_tape_free(tape);
  ct_context_free(ctx);
  return w->status == CT_OK ? 0 : 1;
}

static void *run(void *arg) {
  worker *w = arg;
  pthread_barrier_wait(w->start); /* every thread's first context is created at the same moment */
  for (int r = 0; r < w->rounds; ++r)
    if (one_round(w)) break;
  return NULL;
}

int ct_stress_contexts(int threads, int rounds, char *error, size_t cap) {
  if (threads < 1 || threads > 64 || rounds < 1) return -1;
  worker ws[64];
  pthread_t th[64];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  int started = 0, failed = 0;
  for (int k = 0; k < threads; ++k) {
    ws[k] = (worker){.start = &start, .rounds = rounds, .index = k};
    if (pthread_create(&th[k], NULL, run, &ws[k]) != 0) break;
    started++;
  }
  if (started < threads) { /* the barrier would never open: nothing ran, nothing to join but waiters */
    snprintf(error, cap, "could start only %d of %d threads", started, threads);
    for (int k = started; k < threads; ++k) pthread_barrier_wait(&start);
  }
  for (int k = 0; k < started; ++k) pthread_join(th[k], NULL);
  pthread_barrier_destroy(&start);
  if (started < threads) return -1;
  for (int k = 0; k < threads; ++k)
    if (ws[k].status != CT_OK && failed++ == 0) snprintf(error, cap, "%s", ws[k].error);
  return failed;
}

#ifdef CT_STRESS_MAIN
int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 8, rounds = argc > 2 ? atoi(argv[2]) : 4;
  char error[256] = "";
  int failed = ct_stress_contexts(threads, rounds, error, sizeof error);
  if (failed != 0) {
    fprintf(stderr, "context stress: %d of %d threads failed: %s\n", failed, threads, error);
    return 1;
  }
  printf("context stress: %d threads x %d rounds of create, tape, gradient, free: all correct\n", threads, rounds);
  return 0;
}
#endif
