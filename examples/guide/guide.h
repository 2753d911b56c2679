/* guide.h — what the guide's programs share: TRY stops the program with the library's message
 * when a call fails, expect() counts the results that are not what they should be, and
 * finish() turns the count into the exit status. */
#ifndef CLTAPE_GUIDE_H
#define CLTAPE_GUIDE_H
#include <cltape.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TRY(call)                                                                            \
  do {                                                                                       \
    ct_status s_ = (call);                                                                   \
    if (s_ != CT_OK) {                                                                       \
      fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call, ct_status_name(s_), \
              ct_errmsg());                                                                  \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

static int guide_failures;

/* Prints "MISMATCH: what" and counts it when ok is false. */
static inline void expect(int ok, const char *what) {
  if (!ok) {
    printf("MISMATCH: %s\n", what);
    guide_failures++;
  }
}

/* The one value of a one-element tensor. */
static inline double item(const ct_tensor *t) {
  double v = NAN;
  TRY(ct_tensor_item(t, &v));
  return v;
}

/* Prints label, sep and the tensor's values as NumPy prints them. */
static inline void show(const char *label, const char *sep, const ct_tensor *t) {
  char buf[512];
  TRY(ct_tensor_format(t, CT_FORMAT_VALUES, buf, sizeof buf));
  printf("%s%s%s\n", label, sep, buf);
}

/* A tensor of dtype dt holding the doubles v (converted on the host: a device may lack float64). */
static inline ct_tensor *tensor_of(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *v) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  ct_tensor *t = NULL;
  if (dt == CT_FLOAT64) {
    TRY(ct_tensor_from_data(ctx, dt, rank, shape, v, &t));
    return t;
  }
  float *f = malloc(sizeof *f * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; ++i) f[i] = (float)v[i];
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, rank, shape, f, &t));
  free(f);
  return t;
}

/* The context of the device named by the first argument (or CLTAPE_DEVICE), and the most
 * precise float dtype it has. */
static inline ct_context *open_device(int argc, char **argv, ct_dtype *dt) {
  ct_context *ctx = NULL;
  TRY(ct_context_create(argc > 1 ? argv[1] : NULL, &ctx));
  ct_device_info dev;
  TRY(ct_context_device(ctx, &dev));
  *dt = dev.fp64 ? CT_FLOAT64 : CT_FLOAT32;
  return ctx;
}

static inline int finish(ct_context *ctx) {
  ct_context_free(ctx);
  printf("%s\n", guide_failures ? "FAILED" : "ok");
  return guide_failures ? 1 : 0;
}
#endif
