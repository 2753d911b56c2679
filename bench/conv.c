/* conv.c — per-layer convolution speed of each path: the direct kernels of kernels/nn.cl
 * (CLTAPE_CONV=direct), the matrix-product path of host/conv_gemm.c (CLTAPE_CONV=gemm),
 * Winograd's transforms and products for 3x3 windows of stride 1 (CLTAPE_CONV=winograd; the
 * forward and the input gradient, which runs as a forward convolution; other kinds and windows
 * run direct) and the choice a context makes unforced ("auto"), for the forward, the input
 * gradient and the filter gradient, in turns within one process (the machine may be shared: the
 * paths see the same load).
 *
 *   bench_conv [--device SEL] [--repeats N] [--peak GFLOPS] [--cores N]
 *
 * One line per layer, kind and path: the median wall time and the median CPU time of the process
 * (PoCL's worker threads are in it) per call, GFLOP/s from the median wall time (2 * N*OH*OW *
 * KH*KW*C * OC flops) and that as a share of --peak (default 420, two AVX-512 cores at 3.3 GHz),
 * and GFLOP per CPU second as a share of one core's peak (--peak / --cores, default 2 cores): on
 * a loaded machine the wall time counts the other work too, the CPU time only this one's. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include "cltape_nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  const char *name;
  int kh, kw, s;
  bool same;
  int64_t n, h, w, c, oc;
} layer;

/* The two convolutions of bench_cltape's cnn_train_step (batch 64), and two of a deeper net. */
static const layer LAYERS[] = {
    {"cnn1 28x28x1->32 3x3", 3, 3, 1, true, 64, 28, 28, 1, 32},
    {"cnn2 14x14x32->64 3x3", 3, 3, 1, true, 64, 14, 14, 32, 64},
    {"deep 7x7x64->128 3x3", 3, 3, 1, true, 64, 7, 7, 64, 128},
    {"pointwise 14x14x64->64", 1, 1, 1, true, 64, 14, 14, 64, 64},
};
static const char *PATHS[] = {"direct", "gemm", "winograd", "auto"};
enum { N_PATHS = sizeof PATHS / sizeof *PATHS, AUTO = N_PATHS - 1 };
static const char *KINDS[] = {"forward", "input-grad", "filter-grad"};

static double now(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static ct_status run(const layer *L, int kind, ct_tensor *x, ct_tensor *f, ct_tensor *dy, ct_tensor **out) {
  ct_attrs at = ct__attrs(CT_AT_WINDOW);
  at.window.stride[0] = at.window.stride[1] = L->s;
  at.window.same = L->same;
  const ct_tensor *args[2] = {x, f};
  ct_op_id op = CT_OP_CONV2D;
  if (kind == 1) {
    op = CT_OP_CONV2D_BP_INPUT;
    args[0] = dy;
    at.window.rank = 4;
    memcpy(at.window.shape, x->shape, sizeof(int64_t) * 4);
  } else if (kind == 2) {
    op = CT_OP_CONV2D_BP_FILTER;
    args[1] = dy;
    at.window.rank = 4;
    memcpy(at.window.shape, f->shape, sizeof(int64_t) * 4);
  }
  ct_status s = ct__run(op, args, 2, &at, out);
  if (s == CT_OK) s = ct_context_sync(x->ctx);
  return s;
}

int main(int argc, char **argv) {
  const char *device = NULL;
  int repeats = 15;
  double peak = 420;
  int cores = 2;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
    else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--peak") && i + 1 < argc) peak = atof(argv[++i]);
    else if (!strcmp(argv[i], "--cores") && i + 1 < argc) cores = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_conv [--device SEL] [--repeats N] [--peak GFLOPS] [--cores N]\n");
      return 2;
    }
  }
  if (repeats < 1 || repeats > 1000) repeats = 15;
  if (cores < 1) cores = 2;
  ct_context *ctx = NULL;
  if (ct_context_create(device, &ctx) != CT_OK) {
    fprintf(stderr, "bench_conv: %s\n", ct_errmsg());
    return 1;
  }
  printf("%-24s %-11s %-8s %9s %9s %8s %6s %9s %6s\n", "layer", "kind", "path", "wall ms", "cpu ms", "GFLOP/s", "peak",
         "GF/cpu-s", "core");
  for (size_t l = 0; l < sizeof LAYERS / sizeof *LAYERS; ++l) {
    const layer *L = &LAYERS[l];
    int64_t oh = L->same ? (L->h + L->s - 1) / L->s : (L->h - L->kh) / L->s + 1;
    int64_t ow = L->same ? (L->w + L->s - 1) / L->s : (L->w - L->kw) / L->s + 1;
    int64_t xs[4] = {L->n, L->h, L->w, L->c}, fs[4] = {L->kh, L->kw, L->c, L->oc}, ys[4] = {L->n, oh, ow, L->oc};
    ct_tensor *x = NULL, *f = NULL, *dy = NULL;
    if (ct_random_normal(ctx, CT_FLOAT32, 4, xs, 0, 1, 1, &x) != CT_OK ||
        ct_random_normal(ctx, CT_FLOAT32, 4, fs, 0, 0.1, 2, &f) != CT_OK ||
        ct_random_normal(ctx, CT_FLOAT32, 4, ys, 0, 1, 3, &dy) != CT_OK) {
      fprintf(stderr, "bench_conv: %s\n", ct_errmsg());
      return 1;
    }
    const double flops = 2.0 * (double)(L->n * oh * ow) * (double)(L->kh * L->kw * L->c) * (double)L->oc;
    for (int kind = 0; kind < 3; ++kind) {
      if (kind == 1 && L->c == 1) continue; /* a first layer's input gradient is never asked for */
      double wall[N_PATHS][1000], cpu[N_PATHS][1000];
      for (int r = -2; r < repeats; ++r) /* two rounds of warm-up (compiling, the pool) */
        for (int p = 0; p < N_PATHS; ++p) {
          if (p == AUTO) ct__env_override("CLTAPE_CONV", NULL);
          else ct__env_override("CLTAPE_CONV", PATHS[p]);
          ct_tensor *out = NULL;
          double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
          ct_status s = run(L, kind, x, f, dy, &out);
          double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
          ct_tensor_free(out);
          if (s != CT_OK) {
            fprintf(stderr, "bench_conv: %s %s %s: %s\n", L->name, KINDS[kind], PATHS[p], ct_errmsg());
            return 1;
          }
          if (r >= 0) wall[p][r] = w1 - w0, cpu[p][r] = c1 - c0;
        }
      for (int p = 0; p < N_PATHS; ++p) {
        qsort(wall[p], (size_t)repeats, sizeof(double), cmp);
        qsort(cpu[p], (size_t)repeats, sizeof(double), cmp);
        double w = wall[p][repeats / 2], c = cpu[p][repeats / 2], gf = flops / w * 1e-9, gc = flops / c * 1e-9;
        printf("%-24s %-11s %-8s %9.3f %9.3f %8.1f %5.1f%% %9.1f %5.1f%%\n", L->name, KINDS[kind], PATHS[p], w * 1e3,
               c * 1e3, gf, 100 * gf / peak, gc, 100 * gc * cores / peak);
      }
      fflush(stdout);
    }
    ct_tensor_free(x);
    ct_tensor_free(f);
    ct_tensor_free(dy);
  }
  ct__env_override("CLTAPE_CONV", NULL);
  ct_context_free(ctx);
  return 0;
}
