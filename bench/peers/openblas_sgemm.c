/* openblas_sgemm.c — the BLAS baseline for the matmul_1024 workload of bench/README.md:
 * C = A·B, dA = dC·Bᵀ, dB = Aᵀ·dC (float32, row-major, 1024x1024) with OpenBLAS's cblas_sgemm.
 * Same JSON lines as bench_cltape. Built by bench/run_all.sh:
 *   cc -O2 -o openblas_sgemm bench/peers/openblas_sgemm.c -lopenblas
 * Usage: openblas_sgemm [--repeats N] [--warmup N] [--threads N] */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 1024

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void fill(float *p, size_t n, unsigned seed) {
  unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (float)((double)(s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
  }
}

static void step(const float *a, const float *b, const float *dc, float *c, float *da, float *db) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, N, 1.0f, dc, N, b, N, 0.0f, da, N);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, N, 1.0f, a, N, dc, N, 0.0f, db, N);
}

int main(int argc, char **argv) {
  int repeats = 20, warmup = 3, threads = 2;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = atoi(argv[++i]);
    else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: openblas_sgemm [--repeats N] [--warmup N] [--threads N]\n");
      return 2;
    }
  }
  if (repeats < 1 || warmup < 0 || threads < 1) return 2;
  openblas_set_num_threads(threads);
  size_t nn = (size_t)N * N;
  float *buf = malloc(sizeof(float) * nn * 6);
  double *times = malloc(sizeof(double) * (size_t)repeats);
  if (!buf || !times) return 1;
  float *a = buf, *b = a + nn, *dc = b + nn, *c = dc + nn, *da = c + nn, *db = da + nn;
  fill(a, nn, 1);
  fill(b, nn, 2);
  fill(dc, nn, 3);
  for (int i = 0; i < warmup; ++i) step(a, b, dc, c, da, db);
  for (int r = 0; r < repeats; ++r) {
    double t0 = now_s();
    step(a, b, dc, c, da, db);
    times[r] = (now_s() - t0) * 1e3;
  }
  qsort(times, (size_t)repeats, sizeof *times, cmp_double);
  double med = repeats % 2 ? times[repeats / 2] : 0.5 * (times[repeats / 2 - 1] + times[repeats / 2]);
  char cpu[256] = "cpu";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "model name", 10) == 0) {
        char *p = strchr(line, ':');
        if (p) {
          p += 1 + (p[1] == ' ');
          p[strcspn(p, "\n\"\\")] = 0;
          snprintf(cpu, sizeof cpu, "%s", p);
        }
        break;
      }
    fclose(f);
  }
  printf("{\"system\":\"openblas\",\"meta\":true,\"version\":\"%s\",\"threads\":%d}\n", openblas_get_config(),
         openblas_get_num_threads());
  printf("{\"system\":\"openblas\",\"workload\":\"matmul_1024\",\"device\":\"%s (%d threads)\",\"median\":%.6g,"
         "\"min\":%.6g,\"max\":%.6g,\"units\":\"ms\",\"repeats\":%d,\"inner\":1,\"check\":%.6g}\n",
         cpu, threads, med, times[0], times[repeats - 1], repeats, (double)(c[0] + da[1] + db[2]));
  fprintf(stderr, "openblas: matmul_1024          median %.4g ms\n", med);
  free(buf);
  free(times);
  return 0;
}
