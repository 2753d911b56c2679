/* bench_clock.h — what the benchmark programs share: wall and process CPU clocks, and a check that
 * ends the program with the library's message on a failed call. */
#ifndef CLTAPE_BENCH_CLOCK_H
#define CLTAPE_BENCH_CLOCK_H
#include "cltape.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

/* seconds on a monotonic clock */
static inline double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}
/* the process's CPU seconds, every thread (the steadier number on a shared machine) */
static inline double cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}
static inline void check(ct_status s, const char *what) {
  if (s == CT_OK) return;
  fprintf(stderr, "%s: %s: %s\n", what, ct_status_str(s), ct_errmsg());
  exit(1);
}
#endif
