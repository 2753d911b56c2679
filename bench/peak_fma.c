/* bench_peak_fma: the machine's float32 peak, measured — the rate of fused multiply-adds that
 * independent chains in registers sustain, one thread and one thread per CPU, with 256-bit (AVX2
 * FMA) and 512-bit (AVX-512F) vectors where the CPU has them. docs/performance.md compares the
 * matrix-product and convolution kernels with it ("the machine's peak").
 *
 *   build/bench/bench_peak_fma [--threads N] [--seconds S]
 *
 * One JSON line per measurement: {"vector_bits":512,"threads":2,"gflops":...}. x86-64 only (on
 * other CPUs it says so and exits 0). */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 12 independent chains: more than an FMA's latency (4 cycles) times the FMA pipes (2) */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

typedef struct {
  long steps;
  float sink;
} job;

/* A thread's run: `steps` steps of one FMA per chain, in vectors of type V (the target's intrinsics
 * named with prefix P) */
#define RUN(NAME, TARGET, V, P, LANES)                                                             \
  __attribute__((target(TARGET))) static void *NAME(void *arg) {                                \
    job *j = arg;                                                                               \
    const V m = P##_set1_ps(0.999999f), c = P##_set1_ps(1e-7f);                                 \
    CHAINS(DECL_##P)                                                                            \
    for (long k = 0; k < j->steps; ++k) { CHAINS(STEP_##P) }                                    \
    float lanes[LANES], s = 0;                                                                  \
    CHAINS(SUM_##P)                                                                             \
    j->sink = s;                                                                                \
    return NULL;                                                                                \
  }
#define DECL__mm256(i) __m256 a##i = _mm256_set1_ps((float)(i));
#define STEP__mm256(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define SUM__mm256(i) _mm256_storeu_ps(lanes, a##i); s += lanes[0];
#define DECL__mm512(i) __m512 a##i = _mm512_set1_ps((float)(i));
#define STEP__mm512(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define SUM__mm512(i) _mm512_storeu_ps(lanes, a##i); s += lanes[0];
RUN(run256, "avx2,fma", __m256, _mm256, 8)
RUN(run512, "avx512f", __m512, _mm512, 16)

/* GFLOP/s of `threads` threads running fn for `steps` steps each (12 FMAs of `lanes` per step) */
static double measure(void *(*fn)(void *), int lanes, int threads, long steps) {
  pthread_t t[256];
  job jobs[256];
  double t0 = now_s();
  int started = 0;
  for (int i = 0; i < threads; ++i) {
    jobs[i].steps = steps;
    if (pthread_create(&t[i], NULL, fn, &jobs[i]) != 0) break;
    started++;
  }
  for (int i = 0; i < started; ++i) pthread_join(t[i], NULL);
  double s = now_s() - t0;
  return started == threads && s > 0 ? (double)steps * 12 * lanes * 2 * threads / s / 1e9 : 0;
}

int main(int argc, char **argv) {
  int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  double seconds = 0.5;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--threads N] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || threads > 256 || !(seconds > 0)) {
    fprintf(stderr, "bench_peak_fma: --threads must be 1 to 256 and --seconds positive\n");
    return 2;
  }
  __builtin_cpu_init();
  struct {
    int bits;
    void *(*fn)(void *);
  } kinds[] = {{256, run256}, {512, run512}};
  for (int k = 0; k < 2; ++k) {
    bool has = k == 0 ? __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2") : __builtin_cpu_supports("avx512f");
    if (!has) {
      printf("{\"vector_bits\":%d,\"supported\":false}\n", kinds[k].bits);
      continue;
    }
    /* size the run from a short one: about `seconds` per measurement */
    long steps = 1 << 20;
    double probe = measure(kinds[k].fn, kinds[k].bits / 32, 1, steps);
    if (probe > 0) steps = (long)(seconds * probe * 1e9 / (12.0 * kinds[k].bits / 32 * 2));
    if (steps < 1 << 20) steps = 1 << 20;
    int counts[2] = {1, threads};
    for (int c = 0; c < (threads > 1 ? 2 : 1); ++c)
      printf("{\"vector_bits\":%d,\"threads\":%d,\"gflops\":%.1f}\n", kinds[k].bits, counts[c],
             measure(kinds[k].fn, kinds[k].bits / 32, counts[c], steps));
  }
  return 0;
}
#else
int main(void) {
  printf("{\"supported\":false,\"why\":\"bench_peak_fma measures x86-64 FMA units only\"}\n");
  return 0;
}
#endif
