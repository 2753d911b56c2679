/* bench_sum_floor: what the sum of 4M float32 (16 MiB) and the read of its value can take on this
 * machine, by ways that do not depend on cltape's kernels — the floor under `diag_sum_4m`
 * (docs/performance.md, "What a runtime with sleeping workers allows").
 *
 *   CLTAPE_DEVICE=cpu build/bench/bench_sum_floor [--repeats N] [--rounds R]
 *
 * In one process, each round measuring every way `repeats` times (median per call; cltape's and
 * the bare OpenCL way a call of each in turn, then the host ways one after another):
 *   cltape        ct_sum + ct_tensor_item, as diag_sum_4m
 *   opencl        the same device and queue without cltape: one kernel of 8 work-groups of 256
 *                 items, each item summing a block of consecutive 16-float vectors into four
 *                 accumulators, a one-item kernel adding the 8 partials, a blocking read (the
 *                 shape of cltape's two stages); `opencl_kernel` is the first kernel's run time
 *                 and `opencl_wait` the time from its enqueueing to its start, from the profiling
 *                 of the queue (a queue of its own; left out where the driver gives no times)
 *   host_spin     threads on the host, one per CPU, each summing its fixed part (the calling
 *                 thread part 0); the others spin between calls: OpenMP's way, PyTorch's
 *   host_swap     the same, the parts changing threads on every call (each thread then reads
 *                 what the other read last), as work-groups dealt to whichever worker comes first
 *   host_sleep    fixed parts, the other threads sleeping on a condition variable between calls
 *                 and waking the caller when done: PoCL's workers' way
 * One JSON line per way and round, as bench_cltape's ({"system":"floor:<way>","workload":
 * "diag_sum_4m","median":...,"min":...,"max":...,"units":"ms",...}: bench/run_all.sh gives them to
 * bench/report.py), then one per way with the median of the rounds. The host ways need x86-64 with
 * AVX-512F or AVX2 (elsewhere they are left out). */
#define _GNU_SOURCE
#define CL_TARGET_OPENCL_VERSION 120
#include "bench_clock.h"
#include "cltape.h"
#include "cltape_cl.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define N (4L << 20)
#define MAX_THREADS 64

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
/* a way's times in one round, ms per call */
typedef struct {
  double median, min, max;
} stats;
static stats summary(double *v, int n) {
  stats st;
  st.median = median(v, n); /* sorts v */
  st.min = v[0];
  st.max = v[n - 1];
  return st;
}

/* ---- host threads ---------------------------------------------------------------------------- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HOST_WAYS 1
/* NAME: the sum of m floats (m a multiple of 4 vectors) in four accumulators of type V, the
 * target's intrinsics named with prefix P, W lanes */
#define SUM_FN(NAME, TARGET, V, P, W)                                                              \
  __attribute__((target(TARGET))) static float NAME(const float *p, long m) {                      \
    V a0 = P##_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                            \
    for (long i = 0; i + 4 * W <= m; i += 4 * W) {                                                 \
      a0 = P##_add_ps(a0, P##_loadu_ps(p + i));                                                    \
      a1 = P##_add_ps(a1, P##_loadu_ps(p + i + W));                                                \
      a2 = P##_add_ps(a2, P##_loadu_ps(p + i + 2 * W));                                            \
      a3 = P##_add_ps(a3, P##_loadu_ps(p + i + 3 * W));                                            \
    }                                                                                              \
    float l[W], s = 0;                                                                             \
    P##_storeu_ps(l, P##_add_ps(P##_add_ps(a0, a1), P##_add_ps(a2, a3)));                          \
    for (int j = 0; j < W; ++j) s += l[j];                                                         \
    return s;                                                                                      \
  }
SUM_FN(sum512, "avx512f", __m512, _mm512, 16)
SUM_FN(sum256, "avx2", __m256, _mm256, 8)
static bool has512;
static float sum_part(const float *p, long m) { return has512 ? sum512(p, m) : sum256(p, m); }

typedef struct {
  const float *x;
  int threads;
  bool sleep, swap;
  atomic_long go;   /* the call's number; -1: leave */
  atomic_int done;  /* threads that finished the call */
  pthread_mutex_t mu;
  pthread_cond_t wake, finished;
  float part[MAX_THREADS];
} pool;
typedef struct {
  pool *p;
  int id;
} worker_arg;

static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
/* thread `id`'s part on call `g`: its own, or (swap) its neighbour's on odd calls */
static int part_of(const pool *p, int id, long g) { return p->swap && (g & 1) ? (id + 1) % p->threads : id; }
static void run_part(pool *p, int id, long g) {
  const long m = N / p->threads;
  p->part[id] = sum_part(p->x + part_of(p, id, g) * m, m);
}
static void *worker(void *a) {
  worker_arg *w = a;
  pool *p = w->p;
  pin(w->id);
  long seen = 0;
  for (;;) {
    long g;
    if (p->sleep) {
      pthread_mutex_lock(&p->mu);
      while ((g = atomic_load(&p->go)) == seen) pthread_cond_wait(&p->wake, &p->mu);
      pthread_mutex_unlock(&p->mu);
    } else {
      while ((g = atomic_load_explicit(&p->go, memory_order_acquire)) == seen) {
      }
    }
    if (g < 0) return NULL;
    seen = g;
    run_part(p, w->id, g);
    if (p->sleep) {
      pthread_mutex_lock(&p->mu);
      if (atomic_fetch_add(&p->done, 1) + 1 == p->threads - 1) pthread_cond_signal(&p->finished);
      pthread_mutex_unlock(&p->mu);
    } else {
      atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
  }
}
/* one call: wake the others, sum part 0 here, wait for them, add the parts */
static float pool_call(pool *p, long g) {
  atomic_store(&p->done, 0);
  if (p->sleep) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->go, g);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
  } else {
    atomic_store_explicit(&p->go, g, memory_order_release);
  }
  run_part(p, 0, g);
  if (p->sleep) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->done) < p->threads - 1) pthread_cond_wait(&p->finished, &p->mu);
    pthread_mutex_unlock(&p->mu);
  } else {
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->threads - 1) {
    }
  }
  float s = 0;
  for (int i = 0; i < p->threads; ++i) s += p->part[i];
  return s;
}
/* `repeats` calls (3 first, untimed) of a pool of one thread per CPU */
static stats host_way(const float *x, bool sleep, bool swap, int repeats, double *check) {
  pool p = {.x = x, .sleep = sleep, .swap = swap};
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  p.threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
  pthread_mutex_init(&p.mu, NULL);
  pthread_cond_init(&p.wake, NULL);
  pthread_cond_init(&p.finished, NULL);
  cpu_set_t before;
  pthread_getaffinity_np(pthread_self(), sizeof before, &before);
  pin(0);
  pthread_t t[MAX_THREADS];
  worker_arg wa[MAX_THREADS];
  for (int i = 1; i < p.threads; ++i) {
    wa[i] = (worker_arg){&p, i};
    pthread_create(&t[i], NULL, worker, &wa[i]);
  }
  double *ms = malloc(sizeof(double) * (size_t)repeats);
  for (int i = -3; i < repeats; ++i) {
    double t0 = now();
    *check = pool_call(&p, i + 4);
    if (i >= 0) ms[i] = (now() - t0) * 1e3;
  }
  pthread_mutex_lock(&p.mu);
  atomic_store(&p.go, -1);
  pthread_cond_broadcast(&p.wake);
  pthread_mutex_unlock(&p.mu);
  for (int i = 1; i < p.threads; ++i) pthread_join(t[i], NULL);
  pthread_setaffinity_np(pthread_self(), sizeof before, &before);
  stats m = summary(ms, repeats);
  free(ms);
  return m;
}
#else
#define HOST_WAYS 0
#endif

/* ---- OpenCL without cltape ------------------------------------------------------------------- */
/* the launch: --groups work-groups of --local items (cltape's shape for this sum: 8 of 256) */
static int cl_groups = 8, cl_ls = 256;
static const char *CL_SRC =
    "__kernel __attribute__((reqd_work_group_size(LS, 1, 1)))\n"
    "void part_sums(__global const float *x, const int per, __global float *y) {\n"
    "  __local float s[LS];\n"
    "  const int l = get_local_id(0);\n"
    "  int k = get_global_id(0) * per;\n"
    "  const int end = k + per;\n"
    "  float16 a0 = 0, a1 = 0, a2 = 0, a3 = 0;\n"
    "  for (; k + 3 < end; k += 4) {\n"
    "    a0 += vload16(k, x); a1 += vload16(k + 1, x); a2 += vload16(k + 2, x); a3 += vload16(k + 3, x);\n"
    "  }\n"
    "  float16 v = (a0 + a1) + (a2 + a3);\n"
    "  float8 b = v.lo + v.hi; float4 c = b.lo + b.hi; float2 d = c.lo + c.hi;\n"
    "  s[l] = d.s0 + d.s1;\n"
    "  barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  for (int h = LS / 2; h > 0; h >>= 1) { if (l < h) s[l] += s[l + h]; barrier(CLK_LOCAL_MEM_FENCE); }\n"
    "  if (l == 0) y[get_group_id(0)] = s[0];\n"
    "}\n"
    "__kernel void finish(__global const float *y, const int n, __global float *z) {\n"
    "  float t = 0;\n"
    "  for (int i = 0; i < n; ++i) t += y[i];\n"
    "  z[0] = t;\n"
    "}\n";

typedef struct {
  cl_command_queue q;
  cl_kernel part, fin;
  cl_mem x, y, z; /* x: cltape's, borrowed */
} cl_way;

/* the kernels read x's buffer: both device ways read the same 16 MiB */
static bool cl_setup(ct_context *ctx, const ct_tensor *x, cl_way *w) {
  cl_context c;
  cl_device_id d;
  cl_command_queue q;
  if (ct_context_cl(ctx, &c, &d, &q) != CT_OK) return false;
  cl_int err;
  w->q = clCreateCommandQueue(c, d, CL_QUEUE_PROFILING_ENABLE, &err);
  if (err != CL_SUCCESS) return false;
  cl_program pr = clCreateProgramWithSource(c, 1, &CL_SRC, NULL, &err);
  char opts[32];
  snprintf(opts, sizeof opts, "-DLS=%d", cl_ls);
  if (err != CL_SUCCESS || clBuildProgram(pr, 1, &d, opts, NULL, NULL) != CL_SUCCESS) return false;
  w->part = clCreateKernel(pr, "part_sums", &err);
  w->fin = clCreateKernel(pr, "finish", &err);
  clReleaseProgram(pr);
  if (ct_context_sync(ctx) != CT_OK || ct_tensor_cl_mem(x, &w->x) != CT_OK) return false;
  w->y = clCreateBuffer(c, CL_MEM_READ_WRITE, (size_t)cl_groups * sizeof(float), NULL, &err);
  w->z = clCreateBuffer(c, CL_MEM_READ_WRITE, sizeof(float), NULL, &err);
  if (err != CL_SUCCESS || !w->part || !w->fin) return false;
  const cl_int per = (cl_int)(N / 16 / ((long)cl_groups * cl_ls)), groups = cl_groups;
  clSetKernelArg(w->part, 0, sizeof w->x, &w->x);
  clSetKernelArg(w->part, 1, sizeof per, &per);
  clSetKernelArg(w->part, 2, sizeof w->y, &w->y);
  clSetKernelArg(w->fin, 0, sizeof w->y, &w->y);
  clSetKernelArg(w->fin, 1, sizeof groups, &groups);
  clSetKernelArg(w->fin, 2, sizeof w->z, &w->z);
  return true;
}
/* one call of the bare OpenCL way: its time in ms; *launch_ms the host's time in the two launches,
 * *kernel_ms the first kernel's run time and *wait_ms the time from its enqueueing to its start */
static double cl_call(cl_way *w, double *launch_ms, double *kernel_ms, double *wait_ms, double *check) {
  const size_t global = (size_t)cl_groups * (size_t)cl_ls, local = (size_t)cl_ls, one = 1;
  cl_event ev;
  float r = 0;
  double t0 = now();
  clEnqueueNDRangeKernel(w->q, w->part, 1, NULL, &global, &local, 0, NULL, &ev);
  clEnqueueNDRangeKernel(w->q, w->fin, 1, NULL, &one, &one, 0, NULL, NULL);
  *launch_ms = (now() - t0) * 1e3;
  clEnqueueReadBuffer(w->q, w->z, CL_TRUE, 0, sizeof r, &r, 0, NULL, NULL);
  double t1 = now();
  cl_ulong q = 0, a = 0, b = 0;
  clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_QUEUED, sizeof q, &q, NULL);
  clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof a, &a, NULL);
  clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof b, &b, NULL);
  clReleaseEvent(ev);
  *kernel_ms = (double)(b - a) * 1e-6;
  *wait_ms = (double)(a - q) * 1e-6;
  *check = r;
  return (t1 - t0) * 1e3;
}
/* one call of cltape's way, in ms; *launch_ms the host's time in ct_sum (its launches) */
static double cltape_call(ct_tensor *x, double *launch_ms, double *value) {
  ct_tensor *y = NULL;
  double t0 = now();
  check(ct_sum(x, NULL, 0, false, &y), "ct_sum");
  *launch_ms = (now() - t0) * 1e3;
  check(ct_tensor_item(y, value), "ct_tensor_item");
  double t = (now() - t0) * 1e3;
  ct_tensor_free(y);
  return t;
}
/* cltape's and the bare OpenCL way, a call of each in turn (neither gains from going first):
 * out[] in the order of W_CLTAPE .. W_OPENCL_WAIT */
#define DEVICE_WAYS 6
static void device_ways(ct_tensor *x, cl_way *w, int repeats, stats *out, double *ct_value, double *cl_value) {
  double *t[DEVICE_WAYS], v[DEVICE_WAYS];
  for (int k = 0; k < DEVICE_WAYS; ++k) t[k] = malloc(sizeof(double) * (size_t)repeats);
  for (int i = -3; i < repeats; ++i) {
    v[0] = cltape_call(x, &v[1], ct_value);
    v[2] = cl_call(w, &v[3], &v[4], &v[5], cl_value);
    if (i >= 0)
      for (int k = 0; k < DEVICE_WAYS; ++k) t[k][i] = v[k];
  }
  for (int k = 0; k < DEVICE_WAYS; ++k) {
    out[k] = summary(t[k], repeats);
    free(t[k]);
  }
}

enum {
  W_CLTAPE, W_CLTAPE_LAUNCH, W_OPENCL, W_OPENCL_LAUNCH, W_OPENCL_KERNEL, W_OPENCL_WAIT, /* device_ways' */
  W_SPIN, W_SWAP, W_SLEEP, N_WAYS
};
static const char *const WAY_NAMES[N_WAYS] = {"cltape",      "cltape_launch", "opencl",    "opencl_launch", "opencl_kernel",
                                              "opencl_wait", "host_spin",     "host_swap", "host_sleep"};

/* the profiling rows need a driver that gives kernel times */
static bool shown(int way, bool profiled) { return profiled || (way != W_OPENCL_KERNEL && way != W_OPENCL_WAIT); }

int main(int argc, char **argv) {
  int repeats = 60, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--groups") && i + 1 < argc) cl_groups = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--local") && i + 1 < argc) cl_ls = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--repeats N] [--rounds R] [--groups G] [--local L]\n", argv[0]);
      return 2;
    }
  }
  /* every item sums a whole number of 4-vector steps: G * L divides 2^16 */
  if (cl_groups < 1 || cl_ls < 2 || (cl_ls & (cl_ls - 1)) || (cl_groups & (cl_groups - 1)) ||
      (long)cl_groups * cl_ls > N / 64) {
    fprintf(stderr, "bench_sum_floor: --groups and --local must be powers of two (local at least 2), their "
                    "product at most %ld\n", N / 64);
    return 2;
  }
  if (repeats < 1 || rounds < 1 || rounds > 100) {
    fprintf(stderr, "bench_sum_floor: --repeats and --rounds must be positive (rounds at most 100)\n");
    return 2;
  }
  float *host = malloc(N * sizeof(float));
  if (!host) return 1;
  double exact = 0;
  for (long i = 0; i < N; ++i) {
    host[i] = (float)(i % 7) * 0.25f;
    exact += host[i];
  }
  ct_context *ctx;
  check(ct_context_create(NULL, &ctx), "ct_context_create");
  int64_t shape[1] = {N};
  ct_tensor *x;
  check(ct_tensor_from_data(ctx, CT_FLOAT32, 1, shape, host, &x), "ct_tensor_from_data");
  cl_way w;
  if (!cl_setup(ctx, x, &w)) {
    fprintf(stderr, "bench_sum_floor: the OpenCL way could not be set up\n");
    return 1;
  }
  ct_device_info info;
  check(ct_context_device(ctx, &info), "ct_context_device");
  const char *dev = info.name;
#if HOST_WAYS
  __builtin_cpu_init();
  has512 = __builtin_cpu_supports("avx512f");
  const bool host_ok = has512 || __builtin_cpu_supports("avx2");
#else
  const bool host_ok = false;
#endif
  const int ways = host_ok ? N_WAYS : W_SPIN; /* the host ways last */
  stats res[100][N_WAYS];                       /* [round][way] */
  bool profiled = true;
  for (int r = 0; r < rounds; ++r) {
    double c = 0, c2 = 0;
    device_ways(x, &w, repeats, res[r], &c, &c2);
    profiled = profiled && res[r][W_OPENCL_KERNEL].max > 1e-3; /* under a microsecond: no real times */
    if (c != exact) fprintf(stderr, "bench_sum_floor: cltape's sum %.9g, expected %.9g\n", c, exact);
    if (c2 != exact) fprintf(stderr, "bench_sum_floor: the OpenCL sum %.9g, expected %.9g\n", c2, exact);
#if HOST_WAYS
    if (host_ok) {
      for (int k = W_SPIN; k <= W_SLEEP; ++k) {
        res[r][k] = host_way(host, k == W_SLEEP, k == W_SWAP, repeats, &c);
        if (c != exact) fprintf(stderr, "bench_sum_floor: %s's sum %.9g, expected %.9g\n", WAY_NAMES[k], c, exact);
      }
    }
#endif
    for (int k = 0; k < ways; ++k) {
      if (!shown(k, profiled)) continue;
      printf("{\"system\":\"floor:%s\",\"workload\":\"diag_sum_4m\",\"round\":%d,\"median\":%.6f,\"min\":%.6f,"
             "\"max\":%.6f,\"units\":\"ms\",\"repeats\":%d,\"device\":\"%s\"}\n",
             WAY_NAMES[k], r + 1, res[r][k].median, res[r][k].min, res[r][k].max, repeats, dev);
    }
    fflush(stdout);
  }
  for (int k = 0; k < ways; ++k) {
    if (!shown(k, profiled)) continue;
    double v[100];
    for (int r = 0; r < rounds; ++r) v[r] = res[r][k].median;
    printf("{\"way\":\"%s\",\"median_of_rounds_ms\":%.4f,\"rounds\":%d}\n", WAY_NAMES[k], median(v, rounds), rounds);
  }
  clReleaseKernel(w.part);
  clReleaseKernel(w.fin);
  clReleaseMemObject(w.y);
  clReleaseMemObject(w.z);
  clReleaseCommandQueue(w.q);
  ct_tensor_free(x);
  ct_context_free(ctx);
  free(host);
  return 0;
}
