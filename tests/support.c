#include "support.h"
#include <math.h>
#include <stdlib.h>

ct_context *ts_ctx(void) {
  ct_context *ctx = NULL;
  ct_status s = ct_context_create(NULL, &ctx);
  cr_assert_eq(s, CT_OK, "ct_context_create: %s", ct_errmsg());
  return ctx;
}

ct_tensor *ts_tensor(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *values) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  size_t es = ct_dtype_size(dt);
  unsigned char *h = calloc((size_t)(n ? n : 1), es);
  cr_assert(h);
  for (int64_t i = 0; i < n; ++i) {
    if (dt == CT_FLOAT32) ((float *)h)[i] = (float)values[i];
    else if (dt == CT_FLOAT64) ((double *)h)[i] = values[i];
    else ((int32_t *)h)[i] = (int32_t)values[i];
  }
  ct_tensor *t = NULL;
  ct_status s = ct_tensor_from_data(ctx, dt, rank, shape, h, &t);
  free(h);
  cr_assert_eq(s, CT_OK, "ct_tensor_from_data: %s", ct_errmsg());
  return t;
}

double *ts_read(const ct_tensor *t) {
  cr_assert(t, "tensor is NULL");
  int64_t n = ct_tensor_size(t);
  double *v = calloc((size_t)(n ? n : 1), sizeof *v);
  cr_assert(v);
  ct_status s = ct_tensor_read_f64(t, v, n);
  cr_assert_eq(s, CT_OK, "ct_tensor_read_f64: %s", ct_errmsg());
  return v;
}

void ts_assert_close(const ct_tensor *t, const double *want, int64_t n, double atol, double rtol, const char *what) {
  cr_assert(t, "%s: tensor is NULL", what);
  cr_assert_eq(ct_tensor_size(t), n, "%s: %lld elements, wanted %lld", what, (long long)ct_tensor_size(t), (long long)n);
  double *v = ts_read(t);
  for (int64_t i = 0; i < n; ++i) {
    bool ok = (isnan(v[i]) && isnan(want[i])) || v[i] == want[i] || fabs(v[i] - want[i]) <= atol + rtol * fabs(want[i]);
    cr_assert(ok, "%s: element %lld is %.9g, wanted %.9g", what, (long long)i, v[i], want[i]);
  }
  free(v);
}

void ts_assert_shape(const ct_tensor *t, int rank, const int64_t *shape, const char *what) {
  cr_assert(t, "%s: tensor is NULL", what);
  cr_assert_eq(ct_tensor_rank(t), rank, "%s: rank %d, wanted %d", what, ct_tensor_rank(t), rank);
  for (int i = 0; i < rank; ++i)
    cr_assert_eq(ct_tensor_shape(t)[i], shape[i], "%s: axis %d is %lld, wanted %lld", what, i,
                 (long long)ct_tensor_shape(t)[i], (long long)shape[i]);
}

double ts_item(const ct_tensor *t) {
  double v = NAN;
  cr_assert(t, "tensor is NULL");
  ct_status s = ct_tensor_item(t, &v);
  cr_assert_eq(s, CT_OK, "ct_tensor_item: %s", ct_errmsg());
  return v;
}
