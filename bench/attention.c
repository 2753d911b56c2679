/* attention — the fused attention kernel against the attention made of rows, forward and
 * backward, for the shapes given (default: the char_lm example's, and a few others).
 *
 *   bench_attention [--repeats N] [--device SEL] [BH,T,D[,causal] ...]
 *
 * For each shape (BH batch-heads, T queries and keys, D features per head, causal unless the
 * fourth field is 0) and each path (CLTAPE_ATTENTION=composed, =fused), one warm-up step, then
 * `repeats` steps of: y = attention(q, k, v) under a tape, the gradients of sum(y * w) for q, k and
 * v, then the host waits for the device. Prints the median wall-clock and process CPU milliseconds
 * of a step per path (CPU time counts every thread; on a shared machine it is the steadier number)
 * and the ratio composed / fused of the CPU times (above 1: the fused kernel is faster). */
#define _POSIX_C_SOURCE 200809L
#include "cltape_nn.h"
#include "ct_base.h" /* ct__env_override */
#include "bench_clock.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static ct_context *C;

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* one forward and backward step; the host waits for the gradients */
static void step(ct_tensor *const *qkv, const ct_tensor *w, bool causal) {
  ct_tape *t = NULL;
  ct_tensor *y = NULL, *g[3] = {0};
  check(ct_tape_begin(C, NULL, &t), "tape");
  for (int i = 0; i < 3; ++i) check(ct_tape_watch(t, qkv[i]), "watch");
  check(ct_scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], causal, &y), "attention");
  check(ct_tape_end(t), "tape end");
  ct_tensor *og[1] = {(ct_tensor *)w};
  check(ct_tape_gradient(t, &y, 1, qkv, 3, og, CT_UNCONNECTED_ZERO, g), "gradient");
  check(ct_context_sync(C), "sync");
  ct_tensor_free(y);
  ct_tensor_free_n(g, 3);
  ct_tape_free(t);
}

/* the median wall-clock and CPU milliseconds of a step */
static void median_ms(const char *mode, ct_tensor *const *qkv, const ct_tensor *w, bool causal, int reps, double *wall,
                      double *cpu_ms) {
  ct__env_override("CLTAPE_ATTENTION", mode);
  step(qkv, w, causal); /* compiles, fills the pool */
  double *ts = malloc(sizeof(double) * (size_t)reps * 2), *cs = ts + reps;
  for (int r = 0; r < reps; ++r) {
    double t0 = now(), c0 = cpu();
    step(qkv, w, causal);
    ts[r] = (now() - t0) * 1e3;
    cs[r] = (cpu() - c0) * 1e3;
  }
  qsort(ts, (size_t)reps, sizeof *ts, cmp);
  qsort(cs, (size_t)reps, sizeof *cs, cmp);
  *wall = ts[reps / 2];
  *cpu_ms = cs[reps / 2];
  free(ts);
}

int main(int argc, char **argv) {
  int reps = 5;
  const char *device = NULL;
  static const char *defaults[] = {"128,128,16", "16,32,16", "128,64,16", "32,256,32", "16,512,64", "128,128,16,0"};
  const char *shapes[64];
  int ns = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
    else if (ns < 64) shapes[ns++] = argv[i];
  }
  if (reps < 1) reps = 1;
  if (!ns)
    for (ns = 0; ns < (int)(sizeof defaults / sizeof *defaults); ++ns) shapes[ns] = defaults[ns];
  check(ct_context_create(device, &C), "context");
  printf("%-18s %14s %14s %14s %14s %10s\n", "BH,T,D,causal", "composed wall", "fused wall", "composed CPU",
         "fused CPU", "CPU ratio");
  for (int si = 0; si < ns; ++si) {
    long long bh = 0, tt = 0, d = 0, causal = 1;
    if (sscanf(shapes[si], "%lld,%lld,%lld,%lld", &bh, &tt, &d, &causal) < 3 || bh < 1 || tt < 1 || d < 1) {
      fprintf(stderr, "bad shape %s (BH,T,D[,causal])\n", shapes[si]);
      return 2;
    }
    int64_t sh[3] = {bh, tt, d};
    ct_tensor *qkv[3], *w = NULL;
    for (int i = 0; i < 3; ++i) check(ct_random_normal(C, CT_FLOAT32, 3, sh, 0, 1, (uint64_t)(i + 1), &qkv[i]), "rnd");
    check(ct_random_normal(C, CT_FLOAT32, 3, sh, 0, 1, 9, &w), "rnd");
    double cw, cc, fw, fc;
    median_ms("composed", qkv, w, causal != 0, reps, &cw, &cc);
    median_ms("fused", qkv, w, causal != 0, reps, &fw, &fc);
    char name[64];
    snprintf(name, sizeof name, "%lld,%lld,%lld,%lld", bh, tt, d, causal);
    printf("%-18s %14.2f %14.2f %14.2f %14.2f %10.2f\n", name, cw, fw, cc, fc, cc / fc);
    fflush(stdout);
    ct_tensor_free_n(qkv, 3);
    ct_tensor_free(w);
  }
  ct_context_free(C);
  return 0;
}
