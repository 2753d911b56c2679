/* matmul.c — matmul speed of both engines (CLBlast, the tiled kernels of kernels/matmul.cl) with
 * default and with tuned parameters (the store of cltape-tune, docs/performance.md), and of
 * OpenBLAS on the same machine, in one run.
 *
 *   bench_matmul [--device SEL] [--repeats N] [--no-default] [--only WORKLOAD[,WORKLOAD...]]
 *
 * Prints one JSON line per result on stdout:
 *   {"system":"cltape","params":"tuned","workload":"sgemm_1024_nn","device":"...","median":x,
 *    "min":x,"max":x,"units":"ms","gflops":x,"vs_openblas":x}
 * "params" is, in the order measured (CLBlast keeps parameters per process, so its defaults
 * come first): "clblast-default" (CLTAPE_MATMUL=clblast CLTAPE_TUNE=off: CLBlast with its generic
 * parameters), "default" (CLTAPE_TUNE=off: the device's default engine and tile), "clblast-tuned"
 * (CLTAPE_MATMUL=clblast with the store: CLBlast with the tuned parameters) and "tuned" (the store
 * applied as a context applies it; "default-untuned" when there is none). --no-default measures
 * the last one only.
 * "gflops" comes from the median; "vs_openblas" is gflops / OpenBLAS's gflops on the same workload,
 * whose samples are taken in turns with cltape's. OpenBLAS picks its kernels once, when it is
 * loaded (OPENBLAS_CORETYPE, else the CPU it detects): the run then starts itself again with
 * OPENBLAS_CORETYPE=SkylakeX (its AVX-512 kernels) and measures the tuned parameters once more
 * against that OpenBLAS, its lines marked "openblas_core":"SKYLAKEX" (the core OpenBLAS reports;
 * every OpenBLAS line names its core). On a CPU without AVX-512 OpenBLAS falls back to the
 * kernels it detects, and says so in that field. OpenBLAS's threads wait for the next call spinning
 * (for 2^28 cycles by default), which took both cores from PoCL's workers for the cltape sample
 * after each OpenBLAS one (1024^3: 22 ms against 11 alone): the run starts itself with
 * OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles, the least it takes) unless the variable is set. Workloads: square products 1024 and 2048, the GEMMs of a 784-256-256-10
 * MLP at batch 256 (forward, and the backward ones with their transpose flags), and the whole
 * forward+backward step of that MLP through ct_matmul, ct_relu and a tape. Progress goes to stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <cltape.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#if defined(CT_BENCH_OPENBLAS)
#include <cblas.h>
#endif

#define TRY(call)                                                                                  \
  do {                                                                                             \
    ct_status try_s_ = (call);                                                                     \
    if (try_s_ != CT_OK) {                                                                         \
      fprintf(stderr, "bench_matmul: %s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,             \
              ct_status_name(try_s_), ct_errmsg());                                                \
      return try_s_;                                                                               \
    }                                                                                              \
  } while (0)

typedef struct {
  const char *name;
  int m, n, k;
  bool ta, tb;
  ct_dtype dt;
} workload;

/* op(A) is m x k, op(B) is k x n. MLP: x[256,784] W1[784,256] W2[256,256] W3[256,10]; the
 * backward of y = x W is dW = x^T dy (ta) and dx = dy W^T (tb). */
static const workload WORKLOADS[] = {
    {"sgemm_1024_nn", 1024, 1024, 1024, false, false, CT_FLOAT32},
    {"sgemm_1024_tn", 1024, 1024, 1024, true, false, CT_FLOAT32},
    {"sgemm_1024_nt", 1024, 1024, 1024, false, true, CT_FLOAT32},
    {"sgemm_2048_nn", 2048, 2048, 2048, false, false, CT_FLOAT32},
    {"mlp_fwd_256x784x256", 256, 256, 784, false, false, CT_FLOAT32},
    {"mlp_fwd_256x256x256", 256, 256, 256, false, false, CT_FLOAT32},
    {"mlp_fwd_256x256x10", 256, 10, 256, false, false, CT_FLOAT32},
    {"mlp_bwd_dw1_784x256x256_tn", 784, 256, 256, true, false, CT_FLOAT32},
    {"mlp_bwd_dw2_256x256x256_tn", 256, 256, 256, true, false, CT_FLOAT32},
    {"mlp_bwd_dh1_256x256x256_nt", 256, 256, 256, false, true, CT_FLOAT32},
    {"mlp_bwd_dw3_256x10x256_tn", 256, 10, 256, true, false, CT_FLOAT32},
    {"mlp_bwd_dh2_256x256x10_nt", 256, 256, 10, false, true, CT_FLOAT32},
    {"dgemm_1024_nn", 1024, 1024, 1024, false, false, CT_FLOAT64},
};
#define NWORK ((int)(sizeof WORKLOADS / sizeof *WORKLOADS))
#define MLP_NAME "mlp_784_256_256_10_b256_step"

static int repeats = 7;
static const char *only = NULL;
static char device_name[300];
static const char *openblas_core = NULL; /* the OpenBLAS core, named in the lines */
/* Set in the run that measures against OPENBLAS_CORETYPE=SkylakeX (the tuned parameters only, no
 * MLP step: nothing to compare it with). */
#define CHILD_ENV "CT_BENCH_MATMUL_SKYLAKEX"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static bool selected(const char *name) {
  if (!only) return true;
  size_t n = strlen(name);
  for (const char *p = only; (p = strstr(p, name)); p += n)
    if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
  return false;
}

/* samples[] are seconds per call; prints the JSON line. */
static double report(const char *system, const char *params, const char *workload_name, const char *device,
                     double *samples, int n, double flops, double vs) {
  qsort(samples, (size_t)n, sizeof *samples, cmp_double);
  double med = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  double gf = flops / med * 1e-9;
  printf("{\"system\":\"%s\",", system);
  if (params) printf("\"params\":\"%s\",", params);
  if (openblas_core && (vs > 0 || strcmp(system, "openblas") == 0)) printf("\"openblas_core\":\"%s\",", openblas_core);
  printf("\"workload\":\"%s\",\"device\":\"%s\",\"median\":%.4f,\"min\":%.4f,\"max\":%.4f,\"units\":\"ms\","
         "\"gflops\":%.2f",
         workload_name, device, med * 1e3, samples[0] * 1e3, samples[n - 1] * 1e3, gf);
  if (vs > 0) printf(",\"vs_openblas\":%.3f", gf / vs);
  printf("}\n");
  fflush(stdout);
  return gf;
}

static double flops_of(const workload *w) { return 2.0 * w->m * w->n * (double)w->k; }

/* Calls per sample so that one sample lasts about 30 ms. */
static int calls_for(double secs_per_call) {
  int r = secs_per_call > 0 ? (int)(0.03 / secs_per_call) : 1;
  return r < 1 ? 1 : r > 2000 ? 2000 : r;
}

#if defined(CT_BENCH_OPENBLAS)
typedef struct {
  void *a, *b, *c;
  int lda, ldb;
  size_t es;
} host_gemm;

static bool host_setup(const workload *w, host_gemm *h) {
  size_t na = (size_t)w->m * w->k, nb = (size_t)w->k * w->n, nc = (size_t)w->m * w->n;
  h->es = w->dt == CT_FLOAT64 ? 8 : 4;
  h->a = malloc(na * h->es), h->b = malloc(nb * h->es), h->c = malloc(nc * h->es);
  if (!h->a || !h->b || !h->c) return false;
  uint64_t s = 7;
  for (size_t i = 0; i < na + nb; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double v = (double)(s >> 11) * 0x1.0p-53 * 2 - 1;
    void *dst = i < na ? h->a : h->b;
    size_t j = i < na ? i : i - na;
    if (h->es == 8) ((double *)dst)[j] = v;
    else ((float *)dst)[j] = (float)v;
  }
  h->lda = w->ta ? w->m : w->k;
  h->ldb = w->tb ? w->k : w->n;
  return true;
}

static void host_run(const workload *w, const host_gemm *h) {
  enum CBLAS_TRANSPOSE ta = w->ta ? CblasTrans : CblasNoTrans, tb = w->tb ? CblasTrans : CblasNoTrans;
  if (h->es == 8)
    cblas_dgemm(CblasRowMajor, ta, tb, w->m, w->n, w->k, 1.0, h->a, h->lda, h->b, h->ldb, 0.0, h->c, w->n);
  else
    cblas_sgemm(CblasRowMajor, ta, tb, w->m, w->n, w->k, 1.0f, h->a, h->lda, h->b, h->ldb, 0.0f, h->c, w->n);
}

static void host_free(host_gemm *h) {
  free(h->a);
  free(h->b);
  free(h->c);
}
#endif

static ct_status device_calls(ct_context *ctx, const workload *w, const ct_tensor *a, const ct_tensor *b, int calls) {
  for (int i = 0; i < calls; ++i) {
    ct_tensor *c = NULL;
    TRY(ct_matmul(a, b, w->ta, w->tb, &c));
    ct_tensor_free(c);
  }
  return ct_context_sync(ctx);
}

/* One workload: cltape samples and, with `with_openblas`, OpenBLAS samples taken in turns with
 * them, so that a change of the machine's load hits both alike. */
static ct_status bench_workload(ct_context *ctx, const char *params, const workload *w, bool with_openblas) {
  int64_t sa[2] = {w->ta ? w->k : w->m, w->ta ? w->m : w->k}, sb[2] = {w->tb ? w->n : w->k, w->tb ? w->k : w->n};
  ct_tensor *a = NULL, *b = NULL;
  TRY(ct_random_uniform(ctx, w->dt, 2, sa, -1, 1, 1, &a));
  TRY(ct_random_uniform(ctx, w->dt, 2, sb, -1, 1, 2, &b));
  TRY(device_calls(ctx, w, a, b, 2)); /* builds the kernels for this shape */
  double t0 = now_s();
  TRY(device_calls(ctx, w, a, b, 1));
  int calls = calls_for(now_s() - t0);
  double samples[64], host[64];
  (void)with_openblas;
  int hcalls = 0;
#if defined(CT_BENCH_OPENBLAS)
  host_gemm h = {0};
  if (with_openblas && !host_setup(w, &h)) {
    host_free(&h);
    with_openblas = false;
  }
  if (with_openblas) {
    host_run(w, &h);
    t0 = now_s();
    host_run(w, &h);
    hcalls = calls_for(now_s() - t0);
  }
#endif
  for (int r = 0; r < repeats; ++r) {
#if defined(CT_BENCH_OPENBLAS)
    if (with_openblas) {
      t0 = now_s();
      for (int i = 0; i < hcalls; ++i) host_run(w, &h);
      host[r] = (now_s() - t0) / hcalls;
    }
#endif
    t0 = now_s();
    TRY(device_calls(ctx, w, a, b, calls));
    samples[r] = (now_s() - t0) / calls;
  }
  double ref = 0;
#if defined(CT_BENCH_OPENBLAS)
  if (with_openblas) {
    ref = report("openblas", NULL, w->name, "host CPU (OpenBLAS)", host, repeats, flops_of(w), 0);
    host_free(&h);
  }
#endif
  (void)host;
  (void)hcalls;
  ct_tensor_free(a);
  ct_tensor_free(b);
  report("cltape", params, w->name, device_name, samples, repeats, flops_of(w), ref);
  return CT_OK;
}

/* ---- the MLP step -------------------------------------------------------------------------- */
typedef struct {
  ct_tensor *x, *onehot, *w[3], *bias[3];
} mlp;

static ct_status mlp_make(ct_context *ctx, mlp *m) {
  memset(m, 0, sizeof *m);
  const int64_t dims[4] = {784, 256, 256, 10};
  int64_t xs[2] = {256, 784}, ls[1] = {256};
  TRY(ct_random_uniform(ctx, CT_FLOAT32, 2, xs, 0, 1, 11, &m->x));
  ct_tensor *labels = NULL, *lf = NULL;
  TRY(ct_random_uniform(ctx, CT_FLOAT32, 1, ls, 0, 10, 12, &lf));
  TRY(ct_cast(lf, CT_INT32, &labels));
  TRY(ct_one_hot(labels, 10, CT_FLOAT32, &m->onehot));
  ct_tensor_free(lf);
  ct_tensor_free(labels);
  for (int l = 0; l < 3; ++l) {
    int64_t ws[2] = {dims[l], dims[l + 1]}, bs[1] = {dims[l + 1]};
    ct_tensor *init = NULL;
    TRY(ct_random_normal(ctx, CT_FLOAT32, 2, ws, 0, sqrt(2.0 / (double)dims[l]), 20 + (uint64_t)l, &init));
    TRY(ct_variable_create(init, "w", true, &m->w[l]));
    ct_tensor_free(init);
    TRY(ct_zeros(ctx, CT_FLOAT32, 1, bs, &init));
    TRY(ct_variable_create(init, "b", true, &m->bias[l]));
    ct_tensor_free(init);
  }
  return CT_OK;
}

static void mlp_free(mlp *m) {
  ct_tensor_free(m->x);
  ct_tensor_free(m->onehot);
  for (int l = 0; l < 3; ++l) {
    ct_tensor_free(m->w[l]);
    ct_tensor_free(m->bias[l]);
  }
}

/* loss = -mean(sum(onehot * log_softmax(relu(relu(x W1 + b1) W2 + b2) W3 + b3), 1)); gradients
 * of the six parameters. */
static ct_status mlp_step(ct_context *ctx, mlp *m) {
  ct_tape *tape = NULL;
  TRY(ct_tape_begin(ctx, NULL, &tape));
  ct_tensor *h = ct_tensor_retain(m->x), *t[8] = {0};
  for (int l = 0; l < 3; ++l) {
    ct_tensor *z = NULL, *zb = NULL;
    TRY(ct_matmul(h, m->w[l], false, false, &z));
    TRY(ct_add(z, m->bias[l], &zb));
    ct_tensor_free(z);
    ct_tensor_free(h);
    if (l < 2) {
      TRY(ct_relu(zb, &h));
      ct_tensor_free(zb);
    } else {
      h = zb;
    }
  }
  int axis1 = 1;
  TRY(ct_log_softmax(h, 1, &t[0]));
  TRY(ct_mul(t[0], m->onehot, &t[1]));
  TRY(ct_sum(t[1], &axis1, 1, false, &t[2]));
  TRY(ct_mean(t[2], NULL, 0, false, &t[3]));
  TRY(ct_neg(t[3], &t[4]));
  TRY(ct_tape_end(tape));
  ct_tensor *sources[6] = {m->w[0], m->bias[0], m->w[1], m->bias[1], m->w[2], m->bias[2]}, *grads[6] = {0};
  TRY(ct_tape_gradient(tape, &t[4], 1, sources, 6, NULL, CT_UNCONNECTED_NONE, grads));
  double loss = 0;
  TRY(ct_tensor_item(t[4], &loss)); /* waits for the forward; the sync below for the rest */
  TRY(ct_context_sync(ctx));
  ct_tensor_free_n(grads, 6);
  ct_tensor_free_n(t, 8);
  ct_tensor_free(h);
  ct_tape_free(tape);
  return isfinite(loss) ? CT_OK : CT_ERR_INTERNAL;
}

static ct_status bench_mlp(ct_context *ctx, const char *params) {
  mlp m;
  TRY(mlp_make(ctx, &m));
  for (int i = 0; i < 2; ++i) TRY(mlp_step(ctx, &m));
  double samples[64];
  for (int r = 0; r < repeats; ++r) {
    double t0 = now_s();
    TRY(mlp_step(ctx, &m));
    samples[r] = now_s() - t0;
  }
  mlp_free(&m);
  /* the eight products a step needs (no gradient for the input x) */
  double flops = 2.0 * (256.0 * 784 * 256 + 256.0 * 256 * 256 + 256.0 * 256 * 10) +
                 2.0 * (784.0 * 256 * 256 + 2 * 256.0 * 256 * 256 + 2 * 256.0 * 10 * 256);
  report("cltape", params, MLP_NAME, device_name, samples, repeats, flops, 0);
  return CT_OK;
}

static ct_status run_all(const char *device, const char *params_wanted) {
  ct_context *ctx = NULL;
  TRY(ct_context_create(device, &ctx));
  ct_device_info info;
  ct_context_device(ctx, &info);
  snprintf(device_name, sizeof device_name, "%s", info.name);
  ct_tune_state st;
  ct_tune_status(ctx, &st);
  bool untuned_wanted = strstr(params_wanted, "default") != NULL;
  if (!untuned_wanted && !st.active_float32 && strcmp(params_wanted, "clblast-tuned") == 0) {
    ct_context_free(ctx); /* nothing stored: "clblast-default" measured it already */
    return CT_OK;
  }
  const char *params = untuned_wanted || st.active_float32 ? params_wanted : "default-untuned";
  fprintf(stderr, "bench_matmul: %s parameters on %s\n", params, info.name);
  for (int i = 0; i < NWORK; ++i) {
    const workload *w = &WORKLOADS[i];
    if (!selected(w->name) || (w->dt == CT_FLOAT64 && !info.fp64)) continue;
    if (bench_workload(ctx, params, w, strcmp(params_wanted, "tuned") == 0 || strcmp(params_wanted, "default") == 0) != CT_OK)
      fprintf(stderr, "bench_matmul: %s failed\n", w->name);
  }
  if (selected(MLP_NAME) && !getenv(CHILD_ENV) && bench_mlp(ctx, params) != CT_OK) fprintf(stderr, "bench_matmul: %s failed\n", MLP_NAME);
  ct_context_free(ctx);
  return CT_OK;
}

/* The same command once more with OPENBLAS_CORETYPE=SkylakeX: OpenBLAS reads it when it is loaded. */
static int run_skylakex(char **argv) {
#if defined(CT_BENCH_OPENBLAS)
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv(CHILD_ENV, "1", 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "bench_matmul: cannot start again with OPENBLAS_CORETYPE=SkylakeX\n");
    _exit(127);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) < 0) return 1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
#else
  (void)argv;
  return 0;
#endif
}

int main(int argc, char **argv) {
#if defined(CT_BENCH_OPENBLAS)
  if (!getenv("OPENBLAS_THREAD_TIMEOUT")) { /* read when OpenBLAS is loaded: before main */
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "bench_matmul: cannot start again with OPENBLAS_THREAD_TIMEOUT=4; OpenBLAS's spinning threads will slow cltape's samples\n");
  }
#endif
  const char *device = NULL;
  bool with_default = true;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
    else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = atoi(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else if (strcmp(argv[i], "--no-default") == 0) with_default = false;
    else {
      fprintf(stderr, "usage: bench_matmul [--device SEL] [--repeats N] [--no-default] [--only W[,W...]]\n");
      return 2;
    }
  }
  if (repeats < 1) repeats = 1;
  if (repeats > 64) repeats = 64;
#if !defined(CT_BENCH_OPENBLAS)
  fprintf(stderr, "bench_matmul: built without OpenBLAS (install libopenblas-dev): no comparison\n");
#else
  static char core[64];
  const char *cn = openblas_get_corename();
  for (int i = 0; cn && cn[i] && i < (int)sizeof core - 1; ++i)
    core[i] = (char)(cn[i] >= 'a' && cn[i] <= 'z' ? cn[i] - 32 : cn[i] == '"' || cn[i] == '\\' ? '_' : cn[i]);
  openblas_core = core;
#endif
  if (getenv(CHILD_ENV)) return run_all(device, "tuned") == CT_OK ? 0 : 1;
  /* CLBlast keeps kernel parameters per process: its defaults first, then the store */
  if (with_default) {
    setenv("CLTAPE_TUNE", "off", 1);
    setenv("CLTAPE_MATMUL", "clblast", 1);
    if (run_all(device, "clblast-default") != CT_OK) return 1;
    unsetenv("CLTAPE_MATMUL");
    if (run_all(device, "default") != CT_OK) return 1;
    unsetenv("CLTAPE_TUNE");
    setenv("CLTAPE_MATMUL", "clblast", 1);
    if (run_all(device, "clblast-tuned") != CT_OK) return 1;
    unsetenv("CLTAPE_MATMUL");
  }
  if (run_all(device, "tuned") != CT_OK) return 1;
  return run_skylakex(argv);
}
