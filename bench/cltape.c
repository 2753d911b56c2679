/* cltape.c — the cltape side of the benchmark comparison (bench/README.md defines the workloads).
 *
 * Prints one JSON line per result on stdout:
 *   {"system":"cltape","workload":"...","device":"...","median":x,"min":x,"max":x,"units":"ms",...}
 * plus, per workload, what the context counted: peak device bytes, programs built or loaded,
 * kernels launched per iteration; and "cpu_median", the median CPU time of the whole process per
 * iteration (every thread, in the workload's units: steadier than wall time on a shared machine). Progress and errors go to stderr. A workload that fails prints
 * its error on stderr and no line; the others still run.
 *
 *   bench_cltape [--device SEL] [--repeats N] [--warmup N] [--only NAME[,NAME...]] [--no-start]
 *
 * --no-start skips the cold/warm start measurements (they start child processes of this program
 * with empty or filled CLTAPE_CACHE_DIR and POCL_CACHE_DIR). `bench_cltape --start-child` is that
 * child: it runs the scalar chain once and prints what it built.
 */
#define _POSIX_C_SOURCE 200809L
#include <cltape.h>
#include <cltape_nn.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TRY(call)                                                                                  \
  do {                                                                                             \
    ct_status try_s_ = (call);                                                                     \
    if (try_s_ != CT_OK) {                                                                         \
      fprintf(stderr, "bench_cltape: %s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,             \
              ct_status_name(try_s_), ct_errmsg());                                                \
      return try_s_;                                                                               \
    }                                                                                              \
  } while (0)

/* CPU seconds of the whole process (every thread: the driver's workers too). On a machine shared
 * with other work, CPU time per iteration varies less than wall time: it counts only the time the
 * process ran. */
static double cpu_s(void) {
  struct rusage u;
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median_of(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Writes s as a JSON string body (quotes and backslashes escaped, control bytes dropped). */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; ++s) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s >= 0x20) fputc(*s, f);
  }
  fputc('"', f);
}

/* ---- small host-side data helpers ------------------------------------------------------- */
static uint64_t lcg_state = 0x2545F4914F6CDD1Dull;
static int lcg_below(int n) {
  lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
  return (int)((lcg_state >> 33) % (uint64_t)n);
}

static ct_status randn(ct_context *ctx, int rank, const int64_t *shape, double stddev, uint64_t seed, ct_tensor **out) {
  return ct_random_normal(ctx, CT_FLOAT32, rank, shape, 0.0, stddev, seed, out);
}

/* ---- the workloads ------------------------------------------------------------------------ */
typedef struct {
  ct_context *ctx;
  ct_tensor *t[16]; /* inputs and parameters, freed by workload_free */
  int nt;
  ct_module *model;      /* training steps: the network */
  ct_optimizer *opt;     /* and its Adam */
  ct_tensor *vars[16];   /* its trainable variables (borrowed from the model) */
  int nvars;
  int step;
  double check; /* a value the last iteration produced (printed, so nothing is optimised away) */
} workload;

static void workload_free(workload *w) {
  ct_tensor_free_n(w->t, w->nt);
  ct_optimizer_free(w->opt);
  ct_module_free(w->model);
  memset(w->t, 0, sizeof w->t);
  w->nt = 0;
  w->opt = NULL;
  w->model = NULL;
  w->nvars = 0;
}

/* 1. Eager overhead: x = 3.0 watched; y = x*x; z = y*y; dz/dx (= 108), read back. */
static ct_status setup_scalar(workload *w) {
  TRY(ct_scalar(w->ctx, CT_FLOAT32, 3.0, &w->t[0]));
  w->nt = 1;
  return CT_OK;
}
static ct_status iter_scalar(workload *w) {
  ct_tape *tape = NULL;
  ct_tensor *y = NULL, *z = NULL, *g = NULL;
  ct_status s = ct_tape_begin(w->ctx, NULL, &tape);
  if (s == CT_OK) s = ct_tape_watch(tape, w->t[0]);
  if (s == CT_OK) s = ct_mul(w->t[0], w->t[0], &y);
  if (s == CT_OK) s = ct_mul(y, y, &z);
  if (s == CT_OK) s = ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_gradient1(tape, z, w->t[0], &g);
  if (s == CT_OK) s = ct_tensor_item(g, &w->check);
  if (s != CT_OK) fprintf(stderr, "bench_cltape: scalar chain: %s\n", ct_errmsg());
  ct_tensor_free(g);
  ct_tensor_free(z);
  ct_tensor_free(y);
  ct_tape_free(tape);
  return s;
}

/* 2. Memory-bound chain on 4M elements: f = sum(sigmoid(sin(x)*x + exp(-x*x))), df/dx. */
#define CHAIN_N (4 * 1024 * 1024)
static ct_status setup_chain(workload *w) {
  int64_t n = CHAIN_N;
  TRY(randn(w->ctx, 1, &n, 1.0, 7, &w->t[0]));
  w->nt = 1;
  return CT_OK;
}
static ct_status iter_chain(workload *w) {
  ct_tensor *x = w->t[0];
  ct_tape *tape = NULL;
  ct_tensor *v[8] = {0}, *f = NULL, *g = NULL;
  ct_status s = ct_tape_begin(w->ctx, NULL, &tape);
  if (s == CT_OK) s = ct_tape_watch(tape, x);
  if (s == CT_OK) s = ct_sin(x, &v[0]);
  if (s == CT_OK) s = ct_mul(v[0], x, &v[1]);
  if (s == CT_OK) s = ct_mul(x, x, &v[2]);
  if (s == CT_OK) s = ct_neg(v[2], &v[3]);
  if (s == CT_OK) s = ct_exp(v[3], &v[4]);
  if (s == CT_OK) s = ct_add(v[1], v[4], &v[5]);
  if (s == CT_OK) s = ct_sigmoid(v[5], &v[6]);
  if (s == CT_OK) s = ct_sum(v[6], NULL, 0, false, &f);
  if (s == CT_OK) s = ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_gradient1(tape, f, x, &g);
  if (s == CT_OK) s = ct_tensor_item(f, &w->check); /* the in-order queue runs the gradient first */
  if (s != CT_OK) fprintf(stderr, "bench_cltape: memory chain: %s\n", ct_errmsg());
  ct_tensor_free_n(v, 8);
  ct_tensor_free(f);
  ct_tensor_free(g);
  ct_tape_free(tape);
  return s;
}

/* 3. C = A·B (1024x1024), then dA = dC·Bᵀ and dB = Aᵀ·dC for a given dC. */
#define MM_N 1024
static ct_status setup_matmul(workload *w) {
  int64_t sh[2] = {MM_N, MM_N};
  TRY(randn(w->ctx, 2, sh, 1.0, 11, &w->t[0]));
  TRY(randn(w->ctx, 2, sh, 1.0, 12, &w->t[1]));
  TRY(randn(w->ctx, 2, sh, 1.0, 13, &w->t[2]));
  w->nt = 3;
  return CT_OK;
}
static ct_status iter_matmul(workload *w) {
  ct_tensor *a = w->t[0], *b = w->t[1], *dc = w->t[2];
  ct_tape *tape = NULL;
  ct_tensor *c = NULL, *grads[2] = {0};
  ct_status s = ct_tape_begin(w->ctx, NULL, &tape);
  if (s == CT_OK) s = ct_tape_watch(tape, a);
  if (s == CT_OK) s = ct_tape_watch(tape, b);
  if (s == CT_OK) s = ct_matmul(a, b, false, false, &c);
  if (s == CT_OK) s = ct_tape_end(tape);
  ct_tensor *srcs[2] = {a, b};
  if (s == CT_OK) s = ct_tape_gradient(tape, &c, 1, srcs, 2, &dc, CT_UNCONNECTED_NONE, grads);
  if (s == CT_OK) s = ct_context_sync(w->ctx);
  if (s != CT_OK) fprintf(stderr, "bench_cltape: matmul: %s\n", ct_errmsg());
  ct_tensor_free_n(grads, 2);
  ct_tensor_free(c);
  ct_tape_free(tape);
  return s;
}

/* Random inputs in [0, 1) and random int32 labels in [0, 10). */
static ct_status batch_data(workload *w, int rank, const int64_t *xshape, int batch, ct_tensor **x, ct_tensor **labels) {
  TRY(ct_random_uniform(w->ctx, CT_FLOAT32, rank, xshape, 0.0, 1.0, 21, x));
  int32_t *lab = malloc(sizeof(int32_t) * (size_t)batch);
  if (!lab) return CT_ERR_OUT_OF_MEMORY;
  for (int i = 0; i < batch; ++i) lab[i] = lcg_below(10);
  int64_t n = batch;
  ct_status s = ct_tensor_from_data(w->ctx, CT_INT32, 1, &n, lab, labels);
  free(lab);
  return s;
}

/* Appends a freshly created layer to the model (the model keeps its own reference) and clears
 * *layer for the next one. */
static ct_status add_layer(workload *w, ct_status created, ct_module **layer) {
  ct_status s = created == CT_OK ? ct_sequential_add(w->model, *layer) : created;
  ct_module_free(*layer);
  *layer = NULL;
  return s;
}

/* The model's trainable variables and an Adam optimizer (learning rate 1e-3). */
static ct_status finish_model(workload *w) {
  TRY(ct_module_trainable_variables(w->model, w->vars, 16, &w->nvars));
  if (w->nvars > 16) return CT_ERR_INTERNAL;
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  o.learning_rate = 1e-3;
  TRY(ct_optimizer_create(w->ctx, &o, &w->opt));
  return CT_OK;
}

/* One step: forward, mean softmax cross-entropy, gradients, Adam; the loss read back. */
static ct_status train_step(workload *w, const char *what) {
  ct_tape *tape = NULL;
  ct_tensor *logits = NULL, *loss = NULL, *grads[16] = {0};
  ct_status s = ct_tape_begin(w->ctx, NULL, &tape); /* watches the trainable variables it sees */
  if (s == CT_OK) s = ct_module_call(w->model, w->t[0], true, &logits);
  if (s == CT_OK) s = ct_softmax_cross_entropy(logits, w->t[1], &loss);
  if (s == CT_OK) s = ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_gradient(tape, &loss, 1, w->vars, w->nvars, NULL, CT_UNCONNECTED_NONE, grads);
  if (s == CT_OK) s = ct_optimizer_apply(w->opt, grads, w->vars, w->nvars);
  if (s == CT_OK) s = ct_tensor_item(loss, &w->check);
  if (s != CT_OK) fprintf(stderr, "bench_cltape: %s: %s\n", what, ct_errmsg());
  ct_tensor_free_n(grads, w->nvars);
  ct_tensor_free(loss);
  ct_tensor_free(logits);
  ct_tape_free(tape);
  return s;
}

/* 4a. MLP: Dense 784->256 relu -> Dense 256->10, batch 256. t: 0 x [256, 784], 1 labels [256]. */
#define MLP_BATCH 256
static ct_status setup_mlp(workload *w) {
  int64_t xs[2] = {MLP_BATCH, 784};
  TRY(batch_data(w, 2, xs, MLP_BATCH, &w->t[0], &w->t[1]));
  w->nt = 2;
  ct_module *l = NULL;
  TRY(ct_sequential_create(w->ctx, NULL, &w->model));
  TRY(add_layer(w, ct_dense_create(w->ctx, 784, 256, CT_ACTIVATION_RELU, NULL, &l), &l));
  TRY(add_layer(w, ct_dense_create(w->ctx, 256, 10, CT_ACTIVATION_NONE, NULL, &l), &l));
  return finish_model(w);
}
static ct_status iter_mlp(workload *w) { return train_step(w, "mlp step"); }

/* 4b. CNN: Conv2D(32, 3x3, same, relu) -> MaxPool 2x2 -> Conv2D(64, 3x3, same, relu) -> MaxPool 2x2
 * -> Flatten -> Dense 10, NHWC. t: 0 x [64, 28, 28, 1], 1 labels [64]. */
#define CNN_BATCH 64
static ct_status setup_cnn(workload *w) {
  int64_t xs[4] = {CNN_BATCH, 28, 28, 1};
  const int k3[2] = {3, 3}, p2[2] = {2, 2};
  TRY(batch_data(w, 4, xs, CNN_BATCH, &w->t[0], &w->t[1]));
  w->nt = 2;
  ct_module *l = NULL;
  TRY(ct_sequential_create(w->ctx, NULL, &w->model));
  TRY(add_layer(w, ct_conv2d_create(w->ctx, 1, 32, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_RELU, NULL, &l), &l));
  TRY(add_layer(w, ct_max_pool2d_create(w->ctx, p2, NULL, CT_PADDING_VALID, NULL, &l), &l));
  TRY(add_layer(w, ct_conv2d_create(w->ctx, 32, 64, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_RELU, NULL, &l), &l));
  TRY(add_layer(w, ct_max_pool2d_create(w->ctx, p2, NULL, CT_PADDING_VALID, NULL, &l), &l));
  TRY(add_layer(w, ct_flatten_create(w->ctx, NULL, &l), &l));
  TRY(add_layer(w, ct_dense_create(w->ctx, 7 * 7 * 64, 10, CT_ACTIVATION_NONE, NULL, &l), &l));
  return finish_model(w);
}
static ct_status iter_cnn(workload *w) { return train_step(w, "cnn step"); }

/* 5. Jacobian of y = tanh(x·W) (x a 256-vector, W 256x256) with respect to x: [256, 256]. */
#define JAC_N 256
static ct_status setup_jacobian(workload *w) {
  int64_t xs = JAC_N, ws[2] = {JAC_N, JAC_N};
  TRY(randn(w->ctx, 1, &xs, 1.0, 41, &w->t[0]));
  TRY(randn(w->ctx, 2, ws, 1.0 / 16.0, 42, &w->t[1]));
  w->nt = 2;
  return CT_OK;
}
static ct_status iter_jacobian(workload *w) {
  ct_tensor *x = w->t[0], *wt = w->t[1];
  ct_tape *tape = NULL;
  ct_tensor *v[4] = {0}, *jac = NULL;
  int64_t row[2] = {1, JAC_N}, vec = JAC_N;
  ct_status s = ct_tape_begin(w->ctx, NULL, &tape);
  if (s == CT_OK) s = ct_tape_watch(tape, x);
  if (s == CT_OK) s = ct_reshape(x, 2, row, &v[0]);
  if (s == CT_OK) s = ct_matmul(v[0], wt, false, false, &v[1]);
  if (s == CT_OK) s = ct_reshape(v[1], 1, &vec, &v[2]);
  if (s == CT_OK) s = ct_tanh(v[2], &v[3]);
  if (s == CT_OK) s = ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_jacobian(tape, v[3], x, CT_UNCONNECTED_NONE, &jac);
  if (s == CT_OK) s = ct_context_sync(w->ctx);
  if (s != CT_OK) fprintf(stderr, "bench_cltape: jacobian: %s\n", ct_errmsg());
  ct_tensor_free(jac);
  ct_tensor_free_n(v, 4);
  ct_tape_free(tape);
  return s;
}

/* ---- diagnostics: single ops that show where the time of the workloads goes ---------------- */
/* One Add of two scalars, synchronised every 100 calls (inner = 100): launch overhead per op. */
static ct_status setup_launch(workload *w) {
  TRY(ct_scalar(w->ctx, CT_FLOAT32, 1.0, &w->t[0]));
  TRY(ct_scalar(w->ctx, CT_FLOAT32, 2.0, &w->t[1]));
  w->nt = 2;
  return CT_OK;
}
static ct_status iter_launch(workload *w) {
  ct_tensor *y = NULL;
  ct_status s = ct_add(w->t[0], w->t[1], &y);
  ct_tensor_free(y);
  if (s == CT_OK && ++w->step % 100 == 0) s = ct_context_sync(w->ctx);
  return s;
}
/* The same Add waited for every time: launch plus one round trip to the device. */
static ct_status iter_launch_sync(workload *w) {
  ct_tensor *y = NULL;
  ct_status s = ct_add(w->t[0], w->t[1], &y);
  if (s == CT_OK) s = ct_context_sync(w->ctx);
  ct_tensor_free(y);
  return s;
}
/* Add and Sin of 4M-element tensors (16 MiB each): bandwidth and transcendental throughput. */
static ct_status setup_big2(workload *w) {
  int64_t n = CHAIN_N;
  TRY(randn(w->ctx, 1, &n, 1.0, 51, &w->t[0]));
  TRY(randn(w->ctx, 1, &n, 1.0, 52, &w->t[1]));
  w->nt = 2;
  return CT_OK;
}
static ct_status iter_add4m(workload *w) {
  ct_tensor *y = NULL;
  ct_status s = ct_add(w->t[0], w->t[1], &y);
  if (s == CT_OK) s = ct_context_sync(w->ctx);
  ct_tensor_free(y);
  return s;
}
static ct_status iter_sin4m(workload *w) {
  ct_tensor *y = NULL;
  ct_status s = ct_sin(w->t[0], &y);
  if (s == CT_OK) s = ct_context_sync(w->ctx);
  ct_tensor_free(y);
  return s;
}
static ct_status iter_sum4m(workload *w) {
  ct_tensor *y = NULL;
  ct_status s = ct_sum(w->t[0], NULL, 0, false, &y);
  if (s == CT_OK) s = ct_tensor_item(y, &w->check);
  ct_tensor_free(y);
  return s;
}
/* [1, 256]·[256, 256] (the matmul of jacobian_256), synchronised every 100 calls: the fixed cost
 * of one small GEMM call. */
static ct_status setup_matvec(workload *w) {
  int64_t xs[2] = {1, JAC_N}, ws[2] = {JAC_N, JAC_N};
  TRY(randn(w->ctx, 2, xs, 1.0, 71, &w->t[0]));
  TRY(randn(w->ctx, 2, ws, 1.0, 72, &w->t[1]));
  w->nt = 2;
  return CT_OK;
}
static ct_status iter_matvec(workload *w) {
  ct_tensor *y = NULL;
  ct_status s = ct_matmul(w->t[0], w->t[1], false, true, &y);
  ct_tensor_free(y);
  if (s == CT_OK && ++w->step % 100 == 0) s = ct_context_sync(w->ctx);
  return s;
}

/* One 1024x1024 matmul (forward only): GEMM efficiency. */
static ct_status iter_gemm(workload *w) {
  ct_tensor *c = NULL;
  ct_status s = ct_matmul(w->t[0], w->t[1], false, false, &c);
  if (s == CT_OK) s = ct_context_sync(w->ctx);
  ct_tensor_free(c);
  return s;
}

typedef struct {
  const char *name;
  const char *units; /* "us" or "ms" */
  int inner;         /* iterations per timed repeat (the result is per iteration) */
  ct_status (*setup)(workload *);
  ct_status (*iter)(workload *);
  bool diag; /* a cltape-only diagnostic, not a compared workload */
} workload_def;

static const workload_def WORKLOADS[] = {
    {"eager_scalar_chain", "us", 100, setup_scalar, iter_scalar, false},
    {"memory_chain_4m", "ms", 1, setup_chain, iter_chain, false},
    {"matmul_1024", "ms", 1, setup_matmul, iter_matmul, false},
    {"mlp_train_step", "ms", 1, setup_mlp, iter_mlp, false},
    {"cnn_train_step", "ms", 1, setup_cnn, iter_cnn, false},
    {"jacobian_256", "ms", 1, setup_jacobian, iter_jacobian, false},
    {"diag_launch_add_scalar", "us", 100, setup_launch, iter_launch, true},
    {"diag_launch_add_scalar_sync", "us", 100, setup_launch, iter_launch_sync, true},
    {"diag_add_4m", "ms", 1, setup_big2, iter_add4m, true},
    {"diag_sin_4m", "ms", 1, setup_big2, iter_sin4m, true},
    {"diag_sum_4m", "ms", 1, setup_big2, iter_sum4m, true},
    {"diag_matvec_256", "us", 100, setup_matvec, iter_matvec, true},
    {"diag_gemm_1024", "ms", 1, setup_matmul, iter_gemm, true},
};
#define N_WORKLOADS ((int)(sizeof WORKLOADS / sizeof *WORKLOADS))

static bool selected(const char *only, const char *name) {
  if (!only) return true;
  size_t n = strlen(name);
  for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
    if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
  return false;
}

static ct_status run_workload(ct_context *ctx, const char *device, const workload_def *d, int warmup, int repeats) {
  workload w;
  memset(&w, 0, sizeof w);
  w.ctx = ctx;
  ct_context_trim(ctx);
  ct_context_reset_peak(ctx);
  ct_context_stats s0, s1, s2;
  TRY(ct_context_stats_get(ctx, &s0));
  ct_status s = d->setup(&w);
  for (int i = 0; i < warmup * d->inner && s == CT_OK; ++i) s = d->iter(&w);
  if (s == CT_OK) s = ct_context_stats_get(ctx, &s1);
  double *times = calloc((size_t)repeats * 2, sizeof *times), *cpu = times ? times + repeats : NULL;
  if (!times && s == CT_OK) s = CT_ERR_OUT_OF_MEMORY;
  for (int r = 0; r < repeats && s == CT_OK; ++r) {
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < d->inner && s == CT_OK; ++i) s = d->iter(&w);
    times[r] = (now_s() - t0) / d->inner;
    cpu[r] = (cpu_s() - c0) / d->inner;
  }
  if (s == CT_OK) s = ct_context_stats_get(ctx, &s2);
  if (s == CT_OK) {
    double scale = strcmp(d->units, "us") == 0 ? 1e6 : 1e3;
    double mn = times[0], mx = times[0];
    for (int r = 1; r < repeats; ++r) {
      if (times[r] < mn) mn = times[r];
      if (times[r] > mx) mx = times[r];
    }
    double med = median_of(times, repeats);
    double iters = (double)repeats * d->inner;
    printf("{\"system\":\"cltape\",\"workload\":\"%s\",\"device\":", d->name);
    json_str(stdout, device);
    printf(",\"median\":%.6g,\"min\":%.6g,\"max\":%.6g,\"units\":\"%s\",\"repeats\":%d,\"inner\":%d,"
           "\"peak_bytes\":%llu,\"programs_built\":%llu,\"programs_from_cache\":%llu,\"build_seconds\":%.4f,"
           "\"programs_built_timed\":%llu,\"kernels_per_iter\":%.2f,\"check\":%.6g,\"cpu_median\":%.6g%s}\n",
           med * scale, mn * scale, mx * scale, d->units, repeats, d->inner, (unsigned long long)s2.peak_bytes_in_use,
           (unsigned long long)(s2.programs_built - s0.programs_built),
           (unsigned long long)(s2.programs_from_cache - s0.programs_from_cache), s2.build_seconds - s0.build_seconds,
           (unsigned long long)(s2.programs_built - s1.programs_built),
           (double)(s2.kernels_launched - s1.kernels_launched) / iters, w.check, median_of(cpu, repeats) * scale,
           d->diag ? ",\"diag\":true" : "");
    fflush(stdout);
    fprintf(stderr, "bench_cltape: %-20s median %.4g %s\n", d->name, med * scale, d->units);
  } else {
    fprintf(stderr, "bench_cltape: %s failed: %s: %s\n", d->name, ct_status_name(s), ct_errmsg());
  }
  free(times);
  workload_free(&w);
  return s;
}

/* ---- cold and warm start ------------------------------------------------------------------ */
/* The child: context, one scalar-chain gradient, then "built cached seconds" on stdout. */
static int start_child(void) {
  ct_context *ctx = NULL;
  workload w;
  memset(&w, 0, sizeof w);
  ct_status s = ct_context_create(NULL, &ctx);
  w.ctx = ctx;
  if (s == CT_OK) s = setup_scalar(&w);
  if (s == CT_OK) s = iter_scalar(&w);
  ct_context_stats st;
  memset(&st, 0, sizeof st);
  if (s == CT_OK) s = ct_context_stats_get(ctx, &st);
  workload_free(&w);
  ct_context_free(ctx);
  if (s != CT_OK || w.check != 108.0) {
    fprintf(stderr, "bench_cltape --start-child: %s (%s), result %g\n", ct_status_name(s), ct_errmsg(), w.check);
    return 1;
  }
  printf("%llu %llu %.4f\n", (unsigned long long)st.programs_built, (unsigned long long)st.programs_from_cache,
         st.build_seconds);
  return 0;
}

typedef struct {
  double seconds;
  unsigned long long built, cached;
  double build_seconds;
} start_result;

/* Runs `self --start-child` with both caches pointed at dir; wall time from spawn to exit. */
static int spawn_child(const char *self, const char *dir, start_result *r) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  if (setenv("CLTAPE_CACHE_DIR", dir, 1) != 0 || setenv("POCL_CACHE_DIR", dir, 1) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  char *argv[] = {(char *)self, "--start-child", NULL};
  pid_t pid;
  double t0 = now_s();
  int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return -1;
  }
  char buf[256] = {0};
  size_t got = 0;
  ssize_t k;
  while (got < sizeof buf - 1 && (k = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)k;
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r->seconds = now_s() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  if (sscanf(buf, "%llu %llu %lf", &r->built, &r->cached, &r->build_seconds) != 3) return -1;
  return 0;
}

static void remove_tree(const char *dir) {
  /* the caches hold plain files, PoCL's a few levels of directories */
  pid_t pid;
  char *argv[] = {"rm", "-rf", (char *)dir, NULL};
  if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) == 0) {
    int st;
    waitpid(pid, &st, 0);
  }
}

static void print_start(const char *name, const char *device, start_result *r, int n) {
  double t[16];
  double mn = 1e300, mx = 0;
  for (int i = 0; i < n; ++i) {
    t[i] = r[i].seconds * 1e3;
    if (t[i] < mn) mn = t[i];
    if (t[i] > mx) mx = t[i];
  }
  double med = median_of(t, n);
  printf("{\"system\":\"cltape\",\"workload\":\"%s\",\"device\":", name);
  json_str(stdout, device);
  printf(",\"median\":%.6g,\"min\":%.6g,\"max\":%.6g,\"units\":\"ms\",\"repeats\":%d,\"programs_built\":%llu,"
         "\"programs_from_cache\":%llu,\"build_seconds\":%.4f}\n",
         med, mn, mx, n, r[n - 1].built, r[n - 1].cached, r[n - 1].build_seconds);
  fflush(stdout);
  fprintf(stderr, "bench_cltape: %-20s median %.4g ms (%llu built, %llu from cache)\n", name, med, r[n - 1].built,
          r[n - 1].cached);
}

static int measure_start(const char *device, int cold_runs, int warm_runs) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return -1;
  self[n] = 0;
  const char *tmp = getenv("TMPDIR");
  char tmpl[4200];
  start_result cold[16], warm[16];
  char dir[4200] = "";
  for (int i = 0; i < cold_runs; ++i) {
    if (dir[0]) remove_tree(dir);
    snprintf(tmpl, sizeof tmpl, "%s/cltape-start-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpl)) return -1;
    snprintf(dir, sizeof dir, "%s", tmpl);
    if (spawn_child(self, dir, &cold[i]) != 0) {
      fprintf(stderr, "bench_cltape: cold start child failed\n");
      remove_tree(dir);
      return -1;
    }
  }
  int rc = 0;
  for (int i = 0; i < warm_runs && rc == 0; ++i) /* the last cold run filled dir */
    if (spawn_child(self, dir, &warm[i]) != 0) {
      fprintf(stderr, "bench_cltape: warm start child failed\n");
      rc = -1;
    }
  remove_tree(dir);
  unsetenv("CLTAPE_CACHE_DIR");
  unsetenv("POCL_CACHE_DIR");
  if (rc != 0) return rc;
  print_start("start_cold", device, cold, cold_runs);
  print_start("start_warm", device, warm, warm_runs);
  return 0;
}

/* ---- main --------------------------------------------------------------------------------- */
static int usage(void) {
  fprintf(stderr, "usage: bench_cltape [--device SEL] [--repeats N] [--warmup N] [--only NAME[,NAME...]] "
                  "[--no-start]\nworkloads:");
  for (int i = 0; i < N_WORKLOADS; ++i) fprintf(stderr, " %s", WORKLOADS[i].name);
  fprintf(stderr, " start\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *device = NULL, *only = NULL;
  int repeats = 20, warmup = 3;
  bool start = true;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--start-child") == 0) return start_child();
    else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
    else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = atoi(argv[++i]);
    else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = atoi(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else if (strcmp(argv[i], "--no-start") == 0) start = false;
    else return usage();
  }
  if (repeats < 1 || repeats > 100000 || warmup < 0) return usage();

  ct_context *ctx = NULL;
  ct_status s = ct_context_create(device, &ctx);
  if (s != CT_OK) {
    fprintf(stderr, "bench_cltape: no context: %s: %s\n", ct_status_name(s), ct_errmsg());
    return 1;
  }
  ct_device_info info;
  if (ct_context_device(ctx, &info) != CT_OK) snprintf(info.name, sizeof info.name, "unknown");
  char devname[512];
  snprintf(devname, sizeof devname, "%s", info.name);
  fprintf(stderr, "bench_cltape: cltape %s on %s (%s, %s)\n", ct_version_string(), info.name, info.platform,
          info.device_version);
  ct_context_stats st0;
  bool native = ct_context_stats_get(ctx, &st0) == CT_OK && st0.native_math;
  printf("{\"system\":\"cltape\",\"meta\":true,\"version\":\"%s\",\"device\":", ct_version_string());
  json_str(stdout, info.name);
  printf(",\"platform\":");
  json_str(stdout, info.platform);
  printf(",\"device_version\":");
  json_str(stdout, info.device_version);
  printf(",\"driver_version\":");
  json_str(stdout, info.driver_version);
  printf(",\"compute_units\":%u,\"global_mem_bytes\":%llu,\"native_math\":%s}\n", info.compute_units,
         (unsigned long long)info.global_mem_bytes, native ? "true" : "false");
  fflush(stdout);

  int failed = 0;
  for (int i = 0; i < N_WORKLOADS; ++i)
    if (selected(only, WORKLOADS[i].name) && run_workload(ctx, devname, &WORKLOADS[i], warmup, repeats) != CT_OK)
      ++failed;
  ct_context_free(ctx);
  if (start && selected(only, "start")) {
    if (device) setenv("CLTAPE_DEVICE", device, 1); /* the children pick the same device */
    if (measure_start(devname, 3, 5) != 0) ++failed;
  }
  return failed ? 1 : 0;
}
