/*
 * test_tensor.c — tensors and variables: creation (from data, scalar, fill, zeros/ones, linspace,
 * range, random), read back, printing (the guide's strings and NumPy's layout), variables and
 * their assignments, reference counting.
 */
#include "support.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- creation ------------------------------------------------------------------------------ */
Test(tensor, from_data_every_dtype_round_trips) {
  ct_context *ctx = ts_ctx();
  int64_t shape[3] = {2, 3, 5};
  float f[30];
  double d[30];
  int32_t i[30];
  for (int k = 0; k < 30; ++k) {
    f[k] = (float)(k * 0.37 - 3);
    d[k] = k * 0.37 - 3;
    i[k] = k * 1000003 - 7;
  }
  const void *src[3] = {f, d, i};
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  for (int di = 0; di < 3; ++di) {
    if (dts[di] == CT_FLOAT64 && !ts_has_fp64(ctx)) continue; /* float64 is optional */
    ct_tensor *t = NULL;
    OK(ct_tensor_from_data(ctx, dts[di], 3, shape, src[di], &t));
    cr_assert_eq(ct_tensor_dtype(t), dts[di]);
    cr_assert_eq(ct_tensor_rank(t), 3);
    cr_assert_eq(ct_tensor_size(t), 30);
    cr_assert_eq(ct_tensor_context(t), ctx);
    ts_assert_shape(t, 3, shape, "from_data");
    unsigned char back[240];
    size_t bytes = 30 * ct_dtype_size(dts[di]);
    OK(ct_tensor_read(t, back, bytes));
    cr_assert(memcmp(back, src[di], bytes) == 0, "%s: bytes differ", ct_dtype_name(dts[di]));
    double v[30];
    OK(ct_tensor_read_f64(t, v, 30));
    for (int k = 0; k < 30; ++k) {
      double w = di == 0 ? f[k] : di == 1 ? d[k] : i[k];
      cr_assert_eq(v[k], w, "read_f64 element %d", k);
    }
    ct_tensor_free(t);
  }
  /* rank 0 with shape NULL, and an empty tensor with data NULL */
  ct_tensor *s = NULL, *e = NULL;
  double one = 2.5;
  float one_f = 2.5f;
  const bool fp64 = ts_has_fp64(ctx);
  OK(ct_tensor_from_data(ctx, ts_best_float(ctx), 0, NULL, fp64 ? (const void *)&one : &one_f, &s));
  cr_assert_eq(ct_tensor_rank(s), 0);
  cr_assert_eq(ct_tensor_size(s), 1);
  cr_assert_eq(ts_item(s), 2.5);
  OK(ct_tensor_from_data(ctx, CT_FLOAT32, 2, (int64_t[]){4, 0}, NULL, &e));
  cr_assert_eq(ct_tensor_size(e), 0);
  OK(ct_tensor_read(e, NULL, 0));
  cr_assert_neq(ct_tensor_id(s), ct_tensor_id(e));
  ct_tensor_free(s);
  ct_tensor_free(e);
  ct_context_free(ctx);
}

Test(tensor, scalar_fill_zeros_ones) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = NULL, *l = NULL;
  OK(ct_scalar(ctx, CT_INT32, 2.7, &t));
  cr_assert_eq(ct_tensor_dtype(t), CT_INT32);
  cr_assert_eq(ts_item(t), 2); /* converted to the dtype: truncated */
  ct_tensor_free(t);
  OK(ct_scalar(ctx, CT_FLOAT32, 0.1, &t));
  cr_assert_eq(ts_item(t), (double)0.1f);
  ct_tensor_free(t);
  const ct_dtype fdt = ts_best_float(ctx); /* float64; float32 on a device without it */
  OK(ct_scalar(ctx, fdt, 0.1, &t));
  cr_assert_eq(ts_item(t), ts_to_dtype(fdt, 0.1));
  ct_tensor_free(t);
  int64_t shape[2] = {3, 333};
  OK(ct_fill(ctx, fdt, 2, shape, -1.25, &t));
  double *v = ts_read(t);
  for (int k = 0; k < 999; ++k) cr_assert_eq(v[k], -1.25);
  free(v);
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  for (int di = 0; di < 3; ++di) {
    if (dts[di] == CT_FLOAT64 && fdt != CT_FLOAT64) continue; /* float64 is optional */
    ct_tensor *z = NULL, *o = NULL;
    OK(ct_zeros(ctx, dts[di], 2, shape, &z));
    OK(ct_ones(ctx, dts[di], 2, shape, &o));
    double *zv = ts_read(z), *ov = ts_read(o);
    for (int k = 0; k < 999; ++k) cr_assert(zv[k] == 0 && ov[k] == 1, "zeros/ones at %d", k);
    free(zv);
    free(ov);
    ct_tensor *zl = NULL, *ol = NULL;
    OK(ct_zeros_like(o, &zl));
    OK(ct_ones_like(z, &ol));
    cr_assert_eq(ct_tensor_dtype(zl), dts[di]);
    cr_assert_eq(ct_tensor_dtype(ol), dts[di]);
    ts_assert_shape(zl, 2, shape, "zeros_like");
    ts_assert_shape(ol, 2, shape, "ones_like");
    double *zlv = ts_read(zl), *olv = ts_read(ol);
    cr_assert(zlv[998] == 0 && olv[998] == 1, "zeros_like/ones_like values");
    free(zlv);
    free(olv);
    ct_tensor_free_n((ct_tensor *[]){z, o, zl, ol}, 4);
  }
  /* like of a 0-d and of an empty tensor */
  OK(ct_ones_like(t, &l));
  ct_tensor_free(l);
  ct_tensor_free(t);
  OK(ct_zeros(ctx, CT_FLOAT32, 0, NULL, &t));
  OK(ct_ones_like(t, &l));
  cr_assert_eq(ct_tensor_rank(l), 0);
  cr_assert_eq(ts_item(l), 1);
  ct_tensor_free_n((ct_tensor *[]){t, l}, 2);
  OK(ct_zeros(ctx, CT_FLOAT32, 1, (int64_t[]){0}, &t));
  OK(ct_ones_like(t, &l));
  cr_assert_eq(ct_tensor_size(l), 0);
  ct_tensor_free_n((ct_tensor *[]){t, l}, 2);
  ct_context_free(ctx);
}

Test(tensor, linspace_and_range) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = NULL;
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = di ? CT_FLOAT64 : CT_FLOAT32;
    if (dt == CT_FLOAT64 && !ts_has_fp64(ctx)) continue;
    /* a device without float64 computes the float32 ramp in float32 (the step rounded, then each
     * product and sum): within 2 ulps of the bound's magnitude, 10, from the float64 value rounded */
    const bool in_f32 = !ts_has_fp64(ctx);
    const double f32_tol = 2 * ((double)nextafterf(10.0f, 11.0f) - 10.0);
    OK(ct_linspace(ctx, dt, -10, 10, 201, &t));
    ts_assert_shape(t, 1, (int64_t[]){201}, "linspace");
    double *v = ts_read(t);
    cr_assert_eq(v[0], -10);
    cr_assert_eq(v[100], 0);
    cr_assert_eq(v[200], 10);
    /* as NumPy: start + i * step, the product rounded before the sum, and stop exactly last */
    const double step = 20.0 / 200;
    for (int i = 0; i < 200; ++i) {
      volatile double prod = step * i;
      double w = -10 + prod;
      if (!di) w = (double)(float)w;
      if (in_f32) cr_assert_leq(fabs(v[i] - w), f32_tol, "linspace[%d] = %.17g, wanted %.17g", i, v[i], w);
      else cr_assert_eq(v[i], w, "linspace[%d] = %.17g, wanted %.17g", i, v[i], w);
    }
    free(v);
    ct_tensor_free(t);
    OK(ct_linspace(ctx, dt, 0, 1, 50, &t)); /* 49 * (1 / 49.) is 1 - 2^-53 in float64 */
    v = ts_read(t);
    cr_assert_eq(v[49], 1.0, "linspace(0, 1, 50) ends at %.17g", v[49]);
    free(v);
    ct_tensor_free(t);
    OK(ct_linspace(ctx, dt, 3, 7, 1, &t));
    ts_assert_close(t, (double[]){3}, 1, 0, 0, "linspace num 1");
    ct_tensor_free(t);
    OK(ct_linspace(ctx, dt, 1, 0, 5, &t));
    ts_assert_close(t, (double[]){1, 0.75, 0.5, 0.25, 0}, 5, 0, 0, "decreasing linspace");
    ct_tensor_free(t);
    /* range: positive and negative deltas, fractional steps, empty results */
    OK(ct_range(ctx, dt, 0, 5, 1, &t));
    ts_assert_close(t, (double[]){0, 1, 2, 3, 4}, 5, 0, 0, "range(0, 5)");
    ct_tensor_free(t);
    OK(ct_range(ctx, dt, 5, 0, -1, &t));
    ts_assert_close(t, (double[]){5, 4, 3, 2, 1}, 5, 0, 0, "range(5, 0, -1)");
    ct_tensor_free(t);
    OK(ct_range(ctx, dt, -1, -3.5, -0.5, &t));
    ts_assert_close(t, (double[]){-1, -1.5, -2, -2.5, -3}, 5, 0, 0, "range(-1, -3.5, -0.5)");
    ct_tensor_free(t);
    OK(ct_range(ctx, dt, 0, 1, 0.25, &t));
    ts_assert_close(t, (double[]){0, 0.25, 0.5, 0.75}, 4, 0, 0, "range(0, 1, 0.25)");
    ct_tensor_free(t);
    OK(ct_range(ctx, dt, 1, 0, 1, &t));
    ts_assert_shape(t, 1, (int64_t[]){0}, "empty range");
    ct_tensor_free(t);
    OK(ct_range(ctx, dt, 0, 5, -1, &t));
    ts_assert_shape(t, 1, (int64_t[]){0}, "empty range, negative delta");
    ct_tensor_free(t);
  }
  OK(ct_range(ctx, CT_INT32, 10, -10, -7, &t));
  cr_assert_eq(ct_tensor_dtype(t), CT_INT32);
  ts_assert_close(t, (double[]){10, 3, -4}, 3, 0, 0, "int32 range");
  ct_tensor_free(t);
  EXPECT_STATUS(ct_range(ctx, CT_FLOAT32, 0, 1, 0, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_linspace(ctx, CT_FLOAT32, 0, 1, 0, &t), CT_ERR_INVALID);
  cr_assert_null(t);
  ct_context_free(ctx);
}

static void moments(const double *v, int64_t n, double *mean, double *sd) {
  double s = 0, q = 0;
  for (int64_t i = 0; i < n; ++i) s += v[i];
  *mean = s / (double)n;
  for (int64_t i = 0; i < n; ++i) q += (v[i] - *mean) * (v[i] - *mean);
  *sd = sqrt(q / (double)(n - 1));
}

Test(tensor, random_is_reproducible_and_distributed) {
  ct_context *c1 = ts_ctx(), *c2 = ts_ctx();
  const int64_t n = 100001;
  int64_t shape[2] = {1, n};
  for (int di = 0; di < 2; ++di) {
    ct_dtype dt = di ? CT_FLOAT64 : CT_FLOAT32;
    if (dt == CT_FLOAT64 && !ts_has_fp64(c1)) continue; /* float64 is optional */
    size_t bytes = (size_t)n * ct_dtype_size(dt);
    unsigned char *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    ct_tensor *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL;
    /* normal: the same seed gives the same bits, twice in one context and in another context */
    OK(ct_random_normal(c1, dt, 2, shape, 2.0, 3.0, 42, &t1));
    OK(ct_random_normal(c1, dt, 2, shape, 2.0, 3.0, 42, &t2));
    OK(ct_random_normal(c2, dt, 2, shape, 2.0, 3.0, 42, &t3));
    OK(ct_random_normal(c1, dt, 2, shape, 2.0, 3.0, 43, &t4));
    OK(ct_tensor_read(t1, a, bytes));
    OK(ct_tensor_read(t2, b, bytes));
    OK(ct_tensor_read(t3, c, bytes));
    cr_assert(memcmp(a, b, bytes) == 0, "same seed, same context: different bits");
    cr_assert(memcmp(a, c, bytes) == 0, "same seed, another context: different bits");
    OK(ct_tensor_read(t4, b, bytes));
    size_t same = 0;
    for (size_t k = 0; k < bytes; k += ct_dtype_size(dt)) same += memcmp(a + k, b + k, ct_dtype_size(dt)) == 0;
    cr_assert(same < 10, "seeds 42 and 43 share %zu values", same);
    double *v = ts_read(t1), mean, sd;
    moments(v, n, &mean, &sd);
    /* mean within 5 standard errors, sd within 2% */
    cr_assert(fabs(mean - 2.0) < 5 * 3.0 / sqrt((double)n), "normal mean %g", mean);
    cr_assert(fabs(sd - 3.0) < 0.06, "normal sd %g", sd);
    int64_t within1 = 0;
    for (int64_t i = 0; i < n; ++i) within1 += fabs(v[i] - 2.0) < 3.0;
    cr_assert(fabs((double)within1 / (double)n - 0.6827) < 0.01, "normal: %g within one sd", (double)within1 / (double)n);
    free(v);
    ct_tensor_free_n((ct_tensor *[]){t1, t2, t3, t4}, 4);
    /* uniform */
    OK(ct_random_uniform(c1, dt, 2, shape, -1.0, 3.0, 7, &t1));
    OK(ct_random_uniform(c2, dt, 2, shape, -1.0, 3.0, 7, &t2));
    OK(ct_random_uniform(c1, dt, 2, shape, -1.0, 3.0, 8, &t3));
    OK(ct_tensor_read(t1, a, bytes));
    OK(ct_tensor_read(t2, b, bytes));
    cr_assert(memcmp(a, b, bytes) == 0, "uniform: same seed, another context: different bits");
    OK(ct_tensor_read(t3, c, bytes));
    cr_assert(memcmp(a, c, bytes) != 0, "uniform: seeds 7 and 8 agree");
    v = ts_read(t1);
    for (int64_t i = 0; i < n; ++i) cr_assert(v[i] >= -1.0 && v[i] <= 3.0, "uniform value %g", v[i]);
    moments(v, n, &mean, &sd);
    cr_assert(fabs(mean - 1.0) < 5 * (4 / sqrt(12.0)) / sqrt((double)n), "uniform mean %g", mean);
    cr_assert(fabs(sd - 4 / sqrt(12.0)) < 0.02, "uniform sd %g", sd);
    free(v);
    ct_tensor_free_n((ct_tensor *[]){t1, t2, t3}, 3);
    free(a);
    free(b);
    free(c);
  }
  /* int32 random is refused; 0-d and empty shapes work */
  ct_tensor *t = NULL;
  EXPECT_STATUS(ct_random_normal(c1, CT_INT32, 1, (int64_t[]){3}, 0, 1, 1, &t), CT_ERR_DTYPE);
  OK(ct_random_uniform(c1, CT_FLOAT32, 0, NULL, 0, 1, 1, &t));
  cr_assert_eq(ct_tensor_rank(t), 0);
  ct_tensor_free(t);
  OK(ct_random_normal(c1, ts_best_float(c1), 1, (int64_t[]){0}, 0, 1, 1, &t));
  cr_assert_eq(ct_tensor_size(t), 0);
  ct_tensor_free(t);
  ct_context_free(c1);
  ct_context_free(c2);
}

/* ---- read back -------------------------------------------------------------------------------- */
Test(tensor, read_item_and_their_errors) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = ts_tensor(ctx, CT_FLOAT32, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4}), *o = NULL;
  float f[4];
  EXPECT_STATUS(ct_tensor_read(t, f, 8), CT_ERR_INVALID);
  EXPECT_STATUS(ct_tensor_read(t, NULL, 16), CT_ERR_NULL);
  OK(ct_tensor_read(t, f, 16));
  cr_assert(f[0] == 1 && f[3] == 4);
  double d[4];
  EXPECT_STATUS(ct_tensor_read_f64(t, d, 3), CT_ERR_INVALID);
  OK(ct_tensor_read_f64(t, d, 10)); /* more room is fine */
  double v;
  EXPECT_STATUS(ct_tensor_item(t, &v), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_tensor_item(t, NULL), CT_ERR_NULL);
  OK(ct_reshape(t, 2, (int64_t[]){1, -1}, &o));
  ct_tensor_free(o);
  OK(ct_sum(t, NULL, 0, true, &o));
  ts_assert_shape(o, 2, (int64_t[]){1, 1}, "keepdims sum");
  OK(ct_tensor_item(o, &v)); /* one element of any rank */
  cr_assert_eq(v, 10);
  ct_tensor_free(o);
  ct_tensor_free(t);
  ct_context_free(ctx);
}

/* ---- printing -------------------------------------------------------------------------------- */
static void expect_format(const ct_tensor *t, ct_format_style style, const char *want) {
  char buf[8192];
  OK(ct_tensor_format(t, style, buf, sizeof buf));
  cr_assert_str_eq(buf, want, "formatted as\n%s\nwanted\n%s", buf, want);
}

static void expect_values(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *v,
                          const char *want) {
  ct_tensor *t = ts_tensor(ctx, dt, rank, shape, v);
  expect_format(t, CT_FORMAT_VALUES, want);
  ct_tensor_free(t);
}

/* The strings the guide prints. (The guide's text shows "[ 4. 108.]" with its runs of spaces
 * collapsed; NumPy pads the column: "[  4. 108.]".) */
Test(format, the_guide_strings) {
  ct_context *ctx = ts_ctx();
  double six = 6;
  ct_tensor *t = ts_tensor(ctx, CT_FLOAT32, 0, NULL, &six);
  expect_format(t, CT_FORMAT_REPR, "tf.Tensor(6.0, shape=(), dtype=float32)");
  expect_format(t, CT_FORMAT_VALUES, "6.0");
  ct_tensor_free(t);
  int64_t two[1] = {2};
  expect_values(ctx, CT_FLOAT32, 1, two, (double[]){4, 108}, "[  4. 108.]");
  expect_values(ctx, CT_FLOAT32, 1, two, (double[]){2, 6}, "[2. 6.]");
  t = ts_tensor(ctx, CT_FLOAT32, 1, two, (double[]){0, 0});
  expect_format(t, CT_FORMAT_REPR, "tf.Tensor([0. 0.], shape=(2,), dtype=float32)");
  ct_tensor_free(t);
  double ten = 10;
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 0, NULL, &ten), *s = NULL;
  OK(ct_sigmoid(x, &s));
  expect_format(s, CT_FORMAT_VALUES, "0.9999546");
  expect_format(s, CT_FORMAT_REPR, "tf.Tensor(0.9999546, shape=(), dtype=float32)");
  ct_tensor_free(s);
  ct_tensor_free(x);
  double one = 1;
  t = ts_tensor(ctx, CT_FLOAT32, 0, NULL, &one);
  expect_format(t, CT_FORMAT_REPR, "tf.Tensor(1.0, shape=(), dtype=float32)");
  ct_tensor_free(t);
  ct_context_free(ctx);
}

/* NumPy's str() (numpy 2.x, default print options) of the same data. */
Test(format, numpy_layout) {
  ct_context *ctx = ts_ctx();
  ts_require_fp64(ctx); /* NumPy's float64 layouts */
  int64_t n2[1] = {2}, n3[1] = {3};
  /* shortest digits at the dtype's precision, aligned on the point, padded with spaces */
  expect_values(ctx, CT_FLOAT32, 1, n2, (double[]){0.10690100491046906, 1.5}, "[0.106901 1.5     ]");
  expect_values(ctx, CT_FLOAT64, 1, n2, (double[]){0.10690100491046906, 1.5}, "[0.106901 1.5     ]");
  expect_values(ctx, CT_FLOAT32, 1, n3, (double[]){-1.5, 2.25, 0.1}, "[-1.5   2.25  0.1 ]");
  expect_values(ctx, CT_FLOAT32, 1, n2, (double[]){1.0 / 3, 2.0 / 3}, "[0.33333334 0.6666667 ]");
  expect_values(ctx, CT_FLOAT64, 1, n2, (double[]){1.0 / 3, 2.0 / 3}, "[0.33333333 0.66666667]");
  expect_values(ctx, CT_FLOAT64, 1, (int64_t[]){1}, (double[]){0.1 + 0.2}, "[0.3]");
  /* scientific when magnitudes are far apart or small */
  expect_values(ctx, CT_FLOAT32, 1, n2, (double[]){1e-5, 1}, "[1.e-05 1.e+00]");
  expect_values(ctx, CT_FLOAT64, 1, n2, (double[]){1.5e-5, 1}, "[1.5e-05 1.0e+00]");
  expect_values(ctx, CT_FLOAT64, 1, n2, (double[]){1, 2000}, "[1.e+00 2.e+03]");
  /* float32 switches at 1e6 already; the extra digits of a column are the value's own */
  expect_values(ctx, CT_FLOAT32, 1, n2, (double[]){2e6, 5000.5}, "[2.0000e+06 5.0005e+03]");
  expect_values(ctx, CT_FLOAT64, 1, n2, (double[]){2e6, 5000.5}, "[2000000.     5000.5]");
  expect_values(ctx, CT_FLOAT32, 1, n2, (double[]){-6.500055e-08, 1.3887523e-06}, "[-6.5000549e-08  1.3887523e-06]");
  /* non-finite values */
  expect_values(ctx, CT_FLOAT32, 1, n2, (double[]){NAN, 1}, "[nan  1.]");
  expect_values(ctx, CT_FLOAT32, 1, n3, (double[]){-INFINITY, 1.5, NAN}, "[-inf  1.5  nan]");
  /* integers, nesting */
  expect_values(ctx, CT_INT32, 2, (int64_t[]){2, 2}, (double[]){1, -100, 7, 3}, "[[   1 -100]\n [   7    3]]");
  expect_values(ctx, CT_FLOAT64, 2, (int64_t[]){2, 3}, (double[]){0, 0.5, 1, 1.5, 2, 2.5},
                "[[0.  0.5 1. ]\n [1.5 2.  2.5]]");
  expect_values(ctx, CT_FLOAT32, 3, (int64_t[]){2, 2, 2}, (double[]){0, 1, 2, 3, 4, 5, 6, 7},
                "[[[0. 1.]\n  [2. 3.]]\n\n [[4. 5.]\n  [6. 7.]]]");
  /* lines wrap at 75 characters */
  double v[2000];
  for (int i = 0; i < 2000; ++i) v[i] = i * 1.25;
  expect_values(ctx, CT_FLOAT64, 1, (int64_t[]){30}, v,
                "[ 0.    1.25  2.5   3.75  5.    6.25  7.5   8.75 10.   11.25 12.5  13.75\n"
                " 15.   16.25 17.5  18.75 20.   21.25 22.5  23.75 25.   26.25 27.5  28.75\n"
                " 30.   31.25 32.5  33.75 35.   36.25]");
  /* more than 1000 elements are summarised */
  for (int i = 0; i < 2000; ++i) v[i] = i;
  expect_values(ctx, CT_FLOAT32, 1, (int64_t[]){2000}, v, "[0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03]");
  for (int i = 0; i < 1200; ++i) v[i] = i % 30;
  expect_values(ctx, CT_FLOAT64, 2, (int64_t[]){40, 30}, v,
                "[[ 0.  1.  2. ... 27. 28. 29.]\n [ 0.  1.  2. ... 27. 28. 29.]\n [ 0.  1.  2. ... 27. 28. 29.]\n"
                " ...\n [ 0.  1.  2. ... 27. 28. 29.]\n [ 0.  1.  2. ... 27. 28. 29.]\n [ 0.  1.  2. ... 27. 28. 29.]]");
  /* scalars print like Python floats (float32 switches to scientific from 1e6) */
  struct {
    ct_dtype dt;
    double v;
    const char *want;
  } sc[] = {{CT_FLOAT32, 0.1, "0.1"},     {CT_FLOAT64, 0.1, "0.1"},       {CT_FLOAT32, 1e6, "1e+06"},
            {CT_FLOAT64, 1e16, "1e+16"},  {CT_FLOAT64, 2.5e-300, "2.5e-300"}, {CT_FLOAT32, 100, "100.0"},
            {CT_FLOAT64, -0.0, "-0.0"},   {CT_FLOAT32, 1.0 / 3, "0.33333334"}, {CT_FLOAT64, 1.0 / 3, "0.3333333333333333"},
            {CT_FLOAT64, NAN, "nan"},     {CT_FLOAT32, -INFINITY, "-inf"},   {CT_INT32, -42, "-42"}};
  for (size_t i = 0; i < sizeof sc / sizeof *sc; ++i) {
    ct_tensor *t = ts_tensor(ctx, sc[i].dt, 0, NULL, &sc[i].v);
    expect_format(t, CT_FORMAT_VALUES, sc[i].want);
    ct_tensor_free(t);
  }
  /* empty tensors, and the shape formatter */
  ct_tensor *e = NULL;
  OK(ct_zeros(ctx, CT_FLOAT64, 2, (int64_t[]){2, 0}, &e));
  expect_format(e, CT_FORMAT_REPR, "tf.Tensor([], shape=(2, 0), dtype=float64)");
  char sh[32];
  OK(ct_shape_format(e, sh, sizeof sh));
  cr_assert_str_eq(sh, "(2, 0)");
  ct_tensor_free(e);
  ct_context_free(ctx);
}

Test(format, truncation) {
  ct_context *ctx = ts_ctx();
  double v[6] = {1, 2, 3, 4, 5, 6};
  ct_tensor *t = ts_tensor(ctx, CT_INT32, 1, (int64_t[]){6}, v);
  char buf[10];
  memset(buf, 'x', sizeof buf);
  OK(ct_tensor_format(t, CT_FORMAT_REPR, buf, sizeof buf));
  cr_assert_eq(strlen(buf), 9);
  cr_assert_str_eq(buf, "tf.Ten...");
  char one[1] = {'x'};
  OK(ct_tensor_format(t, CT_FORMAT_VALUES, one, 1));
  cr_assert_eq(one[0], 0);
  EXPECT_STATUS(ct_tensor_format(t, CT_FORMAT_VALUES, NULL, 10), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_format(t, (ct_format_style)7, buf, sizeof buf), CT_ERR_INVALID);
  char sh[4];
  OK(ct_shape_format(t, sh, sizeof sh));
  cr_assert_str_eq(sh, "(6,");
  ct_tensor_free(t);
  ct_context_free(ctx);
}

/* ---- variables -------------------------------------------------------------------------------- */
Test(variable, names_flags_and_assignments) {
  ct_context *ctx = ts_ctx();
  ct_tensor *v = NULL, *w = NULL, *u = NULL, *init = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){2}, (double[]){1, 2});
  OK(ct_variable_create(init, "x0", true, &v));
  cr_assert_str_eq(ct_variable_name(v), "x0:0");
  cr_assert(ct_tensor_is_variable(v));
  cr_assert(ct_variable_trainable(v));
  cr_assert(!ct_tensor_is_variable(init));
  cr_assert_null(ct_variable_name(init));
  OK(ct_variable_create(init, NULL, false, &w));
  cr_assert_str_eq(ct_variable_name(w), "Variable:0");
  cr_assert(!ct_variable_trainable(w));
  OK(ct_variable_set_trainable(w, true));
  cr_assert(ct_variable_trainable(w));
  OK(ct_variable_scalar(ctx, 3.0, "dense/kernel:0", false, &u));
  cr_assert_str_eq(ct_variable_name(u), "dense/kernel:0");
  cr_assert_eq(ct_tensor_dtype(u), CT_FLOAT32);
  cr_assert_eq(ts_item(u), 3.0);
  EXPECT_STATUS(ct_variable_set_trainable(init, true), CT_ERR_INVALID);
  /* the variable holds a copy of its initial value */
  ct_tensor *snap = NULL, *plain = NULL;
  OK(ct_variable_value(v, &snap));
  cr_assert(!ct_tensor_is_variable(snap));
  uint64_t vid = ct_tensor_id(v);
  /* assign, assign_add, assign_sub (a scalar broadcasts to the variable's shape) */
  ct_tensor *a = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){2}, (double[]){10, 20}), *s = NULL;
  OK(ct_variable_assign(v, a));
  ts_assert_close(v, (double[]){10, 20}, 2, 0, 0, "assign");
  OK(ct_variable_assign_add(v, a));
  ts_assert_close(v, (double[]){20, 40}, 2, 0, 0, "assign_add");
  double half = 0.5;
  s = ts_tensor(ctx, CT_FLOAT32, 0, NULL, &half);
  OK(ct_variable_assign_sub(v, s));
  ts_assert_close(v, (double[]){19.5, 39.5}, 2, 0, 0, "assign_sub of a scalar");
  OK(ct_variable_assign(v, s));
  ts_assert_close(v, (double[]){0.5, 0.5}, 2, 0, 0, "assign of a scalar");
  cr_assert_eq(ct_tensor_id(v), vid, "a variable keeps its id across assignments");
  /* the snapshot and the initial tensor did not change */
  ts_assert_close(snap, (double[]){1, 2}, 2, 0, 0, "snapshot after assignments");
  ts_assert_close(init, (double[]){1, 2}, 2, 0, 0, "initial value after assignments");
  /* assigning a tensor and then changing the variable leaves the tensor alone */
  OK(ct_variable_assign(v, a));
  OK(ct_variable_assign_add(v, a));
  ts_assert_close(a, (double[]){10, 20}, 2, 0, 0, "assigned tensor after assign_add");
  /* ops read the current value */
  ct_tensor *y = NULL;
  OK(ct_mul(v, a, &y));
  ts_assert_close(y, (double[]){200, 800}, 2, 0, 0, "op on a variable");
  ct_tensor_free(y);
  /* a plain tensor's value is itself */
  OK(ct_variable_value(init, &plain));
  cr_assert_eq(plain, init);
  ct_tensor_free(plain);
  /* bad assignments */
  ct_tensor *d = ts_tensor(ctx, ts_has_fp64(ctx) ? CT_FLOAT64 : CT_INT32, 1, (int64_t[]){2}, (double[]){1, 2}),
            *b3 = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){3}, (double[]){1, 2, 3});
  EXPECT_STATUS(ct_variable_assign(v, d), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_variable_assign(v, b3), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_variable_assign_add(v, b3), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_variable_assign(init, a), CT_ERR_INVALID);
  ts_assert_close(v, (double[]){20, 40}, 2, 0, 0, "unchanged after failed assignments");
  ct_tensor_free_n((ct_tensor *[]){v, w, u, init, snap, a, s, d, b3}, 9);
  ct_context_free(ctx);
}

/* ---- reference counting ------------------------------------------------------------------------ */
Test(tensor, reference_counting) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){3}, (double[]){1, 2, 3});
  cr_assert_eq(ct_tensor_retain(t), t);
  cr_assert_null(ct_tensor_retain(NULL));
  ct_tensor_free(t); /* one reference left */
  ts_assert_close(t, (double[]){1, 2, 3}, 3, 0, 0, "after one free of two references");
  ct_tensor *y = NULL;
  OK(ct_neg(t, &y));
  ct_tensor_free(t); /* released */
  ct_tensor *z = NULL;
  EXPECT_STATUS(ct_neg(t, &z), CT_ERR_RELEASED);
  cr_assert_null(z);
  ct_tensor_free(t); /* freeing a released handle again does nothing */
  /* results do not depend on their inputs staying alive */
  ts_assert_close(y, (double[]){-1, -2, -3}, 3, 0, 0, "result outlives its input");
  ct_tensor_free(y);
  /* NULL is accepted by every free function */
  ct_tensor_free(NULL);
  ct_tensor_free_n(NULL, 3);
  ct_tensor *arr[3] = {NULL, NULL, NULL};
  OK(ct_ones(ctx, CT_FLOAT32, 0, NULL, &arr[1]));
  ct_tensor_free_n(arr, 3);
  cr_assert_null(arr[1]);
  ct_tape_free(NULL);
  ct_context_free(NULL);
  /* tensors alive when their context is freed become unusable, and freeing them stays safe */
  ct_tensor *keep = NULL;
  OK(ct_ones(ctx, CT_FLOAT32, 1, (int64_t[]){4}, &keep));
  ct_context_free(ctx);
  EXPECT_STATUS(ct_neg(keep, &z), CT_ERR_RELEASED);
  double v[4];
  EXPECT_STATUS(ct_tensor_read_f64(keep, v, 4), CT_ERR_RELEASED);
  ct_tensor_free(keep);
}

/* int32 creation never wraps: a range or linspace that leaves int32 is refused with a message; the
 * values right at the limits are exact. Casts to int32 saturate; NaN casts to 0. */
static bool has_fp64(ct_context *ctx) {
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  return info.fp64;
}

Test(tensor, int32_creation_never_wraps) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = NULL;
  EXPECT_STATUS(ct_range(ctx, CT_INT32, 2147483640, 2147483657, 3, &t), CT_ERR_INVALID);
  cr_assert_null(t);
  cr_assert(strstr(ct_errmsg(), "int32"), "%s", ct_errmsg());
  EXPECT_STATUS(ct_range(ctx, CT_INT32, -2147483640, -2147483657, -3, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_range(ctx, CT_INT32, 3e9, 3e9 + 2, 1, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_range(ctx, CT_INT32, -1e300, 1e300, 1e299, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_range(ctx, CT_FLOAT32, -1.7e308, 1.7e308, 1e307, &t), CT_ERR_INVALID); /* the span overflows */
  /* start out of range, stop in range, and the reverse */
  EXPECT_STATUS(ct_linspace(ctx, CT_INT32, 3e9, 0, 4, &t), CT_ERR_INVALID);
  cr_assert(strstr(ct_errmsg(), "int32"), "%s", ct_errmsg());
  EXPECT_STATUS(ct_linspace(ctx, CT_INT32, -3e9, 0, 4, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_linspace(ctx, CT_INT32, 0, 3e9, 4, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_linspace(ctx, CT_INT32, 3e9, 3e9, 1, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_linspace(ctx, CT_FLOAT64, -1.7e308, 1.7e308, 3, &t), CT_ERR_INVALID); /* the step overflows */
  EXPECT_STATUS(ct_fill(ctx, CT_INT32, 0, NULL, 2147483648.0, &t), CT_ERR_INVALID);
  EXPECT_STATUS(ct_fill(ctx, CT_INT32, 0, NULL, NAN, &t), CT_ERR_INVALID);
  /* an int32 tensor op a scalar that int32 cannot hold */
  ct_tensor *one = NULL;
  OK(ct_scalar(ctx, CT_INT32, 1, &one));
  EXPECT_STATUS(ct_add_scalar(one, 1e10, &t), CT_ERR_INVALID);
  cr_assert_null(t);
  ct_tensor_free(one);
  /* right at the limits: exact */
  int32_t got[3];
  if (!has_fp64(ctx)) {
    /* without float64 the device computes iota in float, where 2147483640 rounds to 2^31 */
    EXPECT_STATUS(ct_range(ctx, CT_INT32, 2147483640, 2147483647, 3, &t), CT_ERR_INVALID);
  } else {
    OK(ct_range(ctx, CT_INT32, 2147483640, 2147483647, 3, &t));
    cr_assert_eq(ct_tensor_size(t), 3);
    OK(ct_tensor_read(t, got, sizeof got));
    cr_assert(got[0] == 2147483640 && got[1] == 2147483643 && got[2] == 2147483646, "%d %d %d", got[0], got[1],
              got[2]);
    ct_tensor_free(t);
    OK(ct_linspace(ctx, CT_INT32, -2147483648.0, 2147483647.0, 3, &t));
    OK(ct_tensor_read(t, got, sizeof got));
    cr_assert(got[0] == INT32_MIN && got[1] == 0 && got[2] == INT32_MAX, "%d %d %d", got[0], got[1], got[2]);
    ct_tensor_free(t);
  }
  /* casts to int32 saturate, NaN gives 0 */
  double in[] = {NAN, 1e10, -1e10, INFINITY, -INFINITY, 2.7, -2.7, 2147483647.0, -2147483648.0};
  int32_t want[] = {0, INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 2, -2, INT32_MAX, INT32_MIN};
  int n = (int)(sizeof in / sizeof *in);
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64};
  for (int di = 0; di < 2; ++di) {
    if (dts[di] == CT_FLOAT64 && !has_fp64(ctx)) continue;
    ct_tensor *x = ts_tensor(ctx, dts[di], 1, (int64_t[]){n}, in), *y = NULL;
    OK(ct_cast(x, CT_INT32, &y));
    int32_t v[16];
    OK(ct_tensor_read(y, v, sizeof(int32_t) * (size_t)n));
    for (int i = 0; i < n; ++i)
      cr_assert_eq(v[i], want[i], "%s cast of %g to int32 gave %d, wanted %d", ct_dtype_name(dts[di]), in[i], v[i],
                   want[i]);
    ct_tensor_free(x);
    ct_tensor_free(y);
  }
  ct_context_free(ctx);
}
