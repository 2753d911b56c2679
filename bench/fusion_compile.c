/* bench_fusion_compile: what a fused kernel's compilation costs against running its graph unfused
 * (docs/performance.md, "Fusion"). For 8 structures f(x) * x -> g -> + 1 -> sum, each built 4 times:
 * the first run is unfused, the second compiles the generated kernel (CLTAPE_FUSION_AFTER=1 here)
 * and runs it, the others run it. Point CLTAPE_CACHE_DIR and POCL_CACHE_DIR at empty folders to
 * see the compilations; the size is the first argument (default 4096 elements), the runs of each
 * structure the second (default 4, at most 64; all their times in runs_ms). */
#define _POSIX_C_SOURCE 200809L
#include "cltape.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef ct_status (*unary_fn)(const ct_tensor *, ct_tensor **);

int main(int argc, char **argv) {
  setenv("CLTAPE_FUSION_AFTER", "1", 0);
  int64_t n = argc > 1 ? atoll(argv[1]) : 4096;
  int runs = argc > 2 ? atoi(argv[2]) : 4;
  if (runs < 4) runs = 4;
  if (runs > 64) runs = 64;
  ct_context *ctx = NULL;
  ct_tensor *x = NULL;
  if (n < 1 || ct_context_create(NULL, &ctx) != CT_OK || ct_random_normal(ctx, CT_FLOAT32, 1, &n, 0, 1, 7, &x) != CT_OK) {
    fprintf(stderr, "bench_fusion_compile: %s\n", ct_errmsg());
    return 1;
  }
  const unary_fn fs[] = {ct_sin, ct_cos, ct_tanh, ct_sigmoid, ct_softplus, ct_elu, ct_abs, ct_neg};
  ct_status s = CT_OK;
  for (int k = 0; k < 8 && s == CT_OK; ++k) {
    double t[64] = {0}, built[64] = {0};
    for (int r = 0; r < runs && s == CT_OK; ++r) {
      ct_context_stats s0, s1;
      ct_context_stats_get(ctx, &s0);
      double t0 = now_s(), v = 0;
      ct_tensor *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;
      s = fs[k](x, &a);
      if (s == CT_OK) s = ct_mul(a, x, &b);
      if (s == CT_OK) s = fs[(k + 1) % 8](b, &c);
      if (s == CT_OK) s = ct_add_scalar(c, 1.0, &d);
      if (s == CT_OK) s = ct_sum(d, NULL, 0, false, &e);
      if (s == CT_OK) s = ct_tensor_item(e, &v);
      t[r] = now_s() - t0;
      ct_context_stats_get(ctx, &s1);
      built[r] = s1.build_seconds - s0.build_seconds;
      ct_tensor *all[] = {a, b, c, d, e};
      ct_tensor_free_n(all, 5);
    }
    printf("{\"structure\": %d, \"n\": %lld, \"unfused_ms\": %.3f, \"compile_and_run_ms\": %.1f, \"build_ms\": %.1f, "
           "\"fused_ms\": [%.3f, %.3f], \"runs_ms\": [",
           k, (long long)n, 1e3 * t[0], 1e3 * t[1], 1e3 * built[1], 1e3 * t[2], 1e3 * t[3]);
    for (int r = 0; r < runs; ++r) printf("%s%.3f", r ? ", " : "", 1e3 * t[r]);
    printf("]}\n");
  }
  if (s != CT_OK) fprintf(stderr, "bench_fusion_compile: %s\n", ct_errmsg());
  ct_tensor_free(x);
  ct_context_free(ctx);
  return s == CT_OK ? 0 : 1;
}
