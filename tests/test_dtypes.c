/*
 * test_dtypes.c — float16, bfloat16, int64 and bool: round trips through the device, the cast
 * table with exact expected bits (rounding to nearest even, ties, subnormals, inf, NaN, overflow to
 * inf, saturation), ops in each dtype against a float32 / float64 reference within the dtype's
 * epsilon, gradients through casts and 16-bit activations, printing, files, and the refusals.
 */
#include "support.h"
#include "ct_internal.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_tensor *from(ct_context *ctx, ct_dtype dt, int64_t n, const void *data) {
  ct_tensor *t = NULL;
  OK(ct_tensor_from_data(ctx, dt, 1, (int64_t[]){n}, data, &t));
  return t;
}

/* cast x to dt and compare the raw bytes with want */
static void expect_cast_bytes(const ct_tensor *x, ct_dtype dt, const void *want, const char *what) {
  ct_tensor *y = NULL;
  OK(ct_cast(x, dt, &y));
  cr_assert_eq(ct_tensor_dtype(y), dt);
  size_t bytes = (size_t)ct_tensor_size(y) * ct_dtype_size(dt);
  unsigned char got[256];
  cr_assert(bytes <= sizeof got);
  OK(ct_tensor_read(y, got, bytes));
  for (size_t i = 0; i < bytes; i += ct_dtype_size(dt)) {
    uint64_t g = 0, w = 0;
    memcpy(&g, got + i, ct_dtype_size(dt));
    memcpy(&w, (const unsigned char *)want + i, ct_dtype_size(dt));
    cr_assert_eq(g, w, "%s: %s element %zu is 0x%llx, wanted 0x%llx", what, ct_dtype_name(dt), i / ct_dtype_size(dt),
                 (unsigned long long)g, (unsigned long long)w);
  }
  ct_tensor_free(y);
}

/* ---- names, sizes, round trips ------------------------------------------------------------------ */
Test(dtypes, names_sizes_and_stored_values) {
  /* the values are stored in files: never renumbered */
  cr_assert_eq(CT_FLOAT32, 0);
  cr_assert_eq(CT_FLOAT64, 1);
  cr_assert_eq(CT_INT32, 2);
  cr_assert_eq(CT_FLOAT16, 3);
  cr_assert_eq(CT_BFLOAT16, 4);
  cr_assert_eq(CT_INT64, 5);
  cr_assert_eq(CT_BOOL, 6);
  cr_assert_str_eq(ct_dtype_name(CT_FLOAT16), "float16");
  cr_assert_str_eq(ct_dtype_name(CT_BFLOAT16), "bfloat16");
  cr_assert_str_eq(ct_dtype_name(CT_INT64), "int64");
  cr_assert_str_eq(ct_dtype_name(CT_BOOL), "bool");
  cr_assert_str_eq(ct_dtype_name((ct_dtype)7), "invalid");
  cr_assert_eq(ct_dtype_size(CT_FLOAT16), 2);
  cr_assert_eq(ct_dtype_size(CT_BFLOAT16), 2);
  cr_assert_eq(ct_dtype_size(CT_INT64), 8);
  cr_assert_eq(ct_dtype_size(CT_BOOL), 1);
  cr_assert_eq(ct_dtype_size((ct_dtype)7), 0);
}

Test(dtypes, round_trips_through_the_device) {
  ct_context *ctx = ts_ctx();
  uint16_t h[6] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00, 0x7E00}; /* 1, -2, 2^-24, 65504, inf, NaN */
  uint16_t b[5] = {0x3F80, 0xC040, 0x0001, 0x7F7F, 0xFF80};         /* 1, -3, 2^-133, largest, -inf */
  int64_t l[4] = {INT64_C(1) << 40, -(INT64_C(1) << 52) - 3, INT64_MAX, INT64_MIN};
  uint8_t o[4] = {0, 1, 1, 0};
  struct { ct_dtype dt; const void *p; int n; double v[6]; } cases[] = {
    {CT_FLOAT16, h, 6, {1, -2, 0x1p-24, 65504, INFINITY, NAN}},
    {CT_BFLOAT16, b, 5, {1, -3, 0x1p-133, 0x1.fep127, -INFINITY}},
    {CT_INT64, l, 4, {0x1p40, -0x1p52 - 3, 0x1p63, -0x1p63}},
    {CT_BOOL, o, 4, {0, 1, 1, 0}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
    ct_tensor *t = from(ctx, cases[c].dt, cases[c].n, cases[c].p);
    cr_assert_eq(ct_tensor_dtype(t), cases[c].dt);
    unsigned char back[64];
    size_t bytes = (size_t)cases[c].n * ct_dtype_size(cases[c].dt);
    OK(ct_tensor_read(t, back, bytes));
    cr_assert(memcmp(back, cases[c].p, bytes) == 0, "%s: bytes differ", ct_dtype_name(cases[c].dt));
    EXPECT_STATUS(ct_tensor_read(t, back, bytes + 1), CT_ERR_INVALID);
    double v[6];
    OK(ct_tensor_read_f64(t, v, cases[c].n));
    for (int i = 0; i < cases[c].n; ++i)
      cr_assert(v[i] == cases[c].v[i] || (isnan(v[i]) && isnan(cases[c].v[i])), "%s[%d] reads %.17g, wanted %.17g",
                ct_dtype_name(cases[c].dt), i, v[i], cases[c].v[i]);
    /* a copy on the device (identity through a strided copy) keeps the bytes */
    ct_tensor *r = NULL, *tr = NULL;
    OK(ct_reshape(t, 2, (int64_t[]){1, cases[c].n}, &r));
    OK(ct_transpose(r, NULL, &tr));
    OK(ct_tensor_read(tr, back, bytes));
    cr_assert(memcmp(back, cases[c].p, bytes) == 0, "%s: transpose changed the bytes", ct_dtype_name(cases[c].dt));
    ct_tensor_free(tr);
    ct_tensor_free(r);
    ct_tensor_free(t);
  }
  ct_context_free(ctx);
}

Test(dtypes, fill_scalar_and_ranges) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = NULL;
  double v[4];
  OK(ct_fill(ctx, CT_FLOAT16, 1, (int64_t[]){3}, 0.1, &t)); /* 0.1 rounds once: 0x2E66 */
  uint16_t h[3];
  OK(ct_tensor_read(t, h, sizeof h));
  for (int i = 0; i < 3; ++i) cr_assert_eq(h[i], 0x2E66);
  ct_tensor_free(t);
  OK(ct_fill(ctx, CT_BFLOAT16, 1, (int64_t[]){2}, 1e39, &t)); /* past the largest: inf */
  OK(ct_tensor_read_f64(t, v, 2));
  cr_assert(isinf(v[0]) && v[0] > 0 && isinf(v[1]));
  ct_tensor_free(t);
  OK(ct_fill(ctx, CT_INT64, 1, (int64_t[]){2}, 0x1p50 + 7, &t));
  int64_t l[2];
  OK(ct_tensor_read(t, l, sizeof l));
  cr_assert(l[0] == (INT64_C(1) << 50) + 7 && l[1] == l[0]);
  ct_tensor_free(t);
  OK(ct_ones(ctx, CT_BOOL, 1, (int64_t[]){3}, &t));
  uint8_t o[3];
  OK(ct_tensor_read(t, o, sizeof o));
  cr_assert(o[0] == 1 && o[1] == 1 && o[2] == 1);
  ct_tensor_free(t);
  OK(ct_range(ctx, CT_INT64, 0, 4, 1, &t));
  int64_t r4[4];
  OK(ct_tensor_read(t, r4, sizeof r4));
  cr_assert(r4[0] == 0 && r4[1] == 1 && r4[3] == 3);
  ct_tensor_free(t);
  OK(ct_linspace(ctx, CT_FLOAT16, 0, 1, 3, &t));
  OK(ct_tensor_read_f64(t, v, 3));
  cr_assert(v[0] == 0 && v[1] == 0.5 && v[2] == 1);
  ct_tensor_free(t);
  EXPECT_STATUS(ct_range(ctx, CT_BOOL, 0, 2, 1, &t), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_fill(ctx, CT_INT64, 0, NULL, 0x1p63, &t), CT_ERR_INVALID);
  OK(ct_random_normal(ctx, CT_BFLOAT16, 1, (int64_t[]){4}, 0, 1, 7, &t));
  cr_assert_eq(ct_tensor_dtype(t), CT_BFLOAT16);
  ct_tensor_free(t);
  ct_context_free(ctx);
}

/* ---- the cast table ------------------------------------------------------------------------------ */
Test(dtypes, float32_to_float16_rounds_to_nearest_even) {
  ct_context *ctx = ts_ctx();
  float x[] = {1.0f, 0.1f, 65504.0f, 65519.0f, 65520.0f, 1e-8f, 6e-8f, -0.0f, INFINITY, -INFINITY,
               1.0f + 0x1p-11f,          /* a tie: to even, 1 */
               1.0f + 3 * 0x1p-11f,      /* a tie: to even, 1 + 2^-9 */
               1.0f + 0x1p-11f + 0x1p-20f, /* past the tie: up */
               0x1p-25f,                 /* half the smallest subnormal: a tie, to 0 */
               0x1.8p-24f,               /* 1.5 smallest subnormals: a tie, to 2 */
               -70000.0f};
  uint16_t want[] = {0x3C00, 0x2E66, 0x7BFF, 0x7BFF, 0x7C00, 0x0000, 0x0001, 0x8000, 0x7C00, 0xFC00,
                     0x3C00, 0x3C02, 0x3C01, 0x0000, 0x0002, 0xFC00};
  int n = sizeof x / sizeof *x;
  ct_tensor *t = from(ctx, CT_FLOAT32, n, x);
  expect_cast_bytes(t, CT_FLOAT16, want, "float32 -> float16");
  ct_tensor_free(t);
  float nan = NAN;
  t = from(ctx, CT_FLOAT32, 1, &nan);
  ct_tensor *y = NULL;
  OK(ct_cast(t, CT_FLOAT16, &y));
  uint16_t hb;
  OK(ct_tensor_read(y, &hb, 2));
  cr_assert((hb & 0x7C00) == 0x7C00 && (hb & 0x3FF) != 0, "NaN became 0x%x", hb);
  ct_tensor_free(y);
  ct_tensor_free(t);
  ct_context_free(ctx);
}

Test(dtypes, float32_to_bfloat16_rounds_to_nearest_even) {
  ct_context *ctx = ts_ctx();
  float x[] = {1.0f, -3.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, FLT_MAX, 0x1.fep127f,
               INFINITY, -INFINITY, -0.0f, 0x1p-133f, 0.1f};
  uint16_t want[] = {0x3F80, 0xC040, 0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7F7F, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x3DCD};
  int n = sizeof x / sizeof *x;
  ct_tensor *t = from(ctx, CT_FLOAT32, n, x);
  expect_cast_bytes(t, CT_BFLOAT16, want, "float32 -> bfloat16");
  ct_tensor_free(t);
  float nan = -NAN;
  t = from(ctx, CT_FLOAT32, 1, &nan);
  ct_tensor *y = NULL;
  OK(ct_cast(t, CT_BFLOAT16, &y));
  uint16_t bb;
  OK(ct_tensor_read(y, &bb, 2));
  cr_assert((bb & 0x7F80) == 0x7F80 && (bb & 0x7F) != 0, "NaN became 0x%x", bb);
  ct_tensor_free(y);
  ct_tensor_free(t);
  ct_context_free(ctx);
}

Test(dtypes, sixteen_bit_to_every_dtype) {
  ct_context *ctx = ts_ctx();
  /* float16: 2.75, -2.75, 65504, -inf, 2^-24, NaN */
  uint16_t h[] = {0x4180, 0xC180, 0x7BFF, 0xFC00, 0x0001, 0x7E00};
  ct_tensor *t = from(ctx, CT_FLOAT16, 6, h);
  float wf[] = {2.75f, -2.75f, 65504.0f, -INFINITY, 0x1p-24f, NAN};
  ct_tensor *y = NULL;
  OK(ct_cast(t, CT_FLOAT32, &y));
  float gf[6];
  OK(ct_tensor_read(y, gf, sizeof gf));
  for (int i = 0; i < 5; ++i) cr_assert_eq(gf[i], wf[i], "float16 -> float32 [%d]: %g", i, gf[i]);
  cr_assert(isnan(gf[5]));
  ct_tensor_free(y);
  int32_t wi[] = {2, -2, 65504, INT32_MIN, 0, 0};
  expect_cast_bytes(t, CT_INT32, wi, "float16 -> int32");
  int64_t wl[] = {2, -2, 65504, INT64_MIN, 0, 0};
  expect_cast_bytes(t, CT_INT64, wl, "float16 -> int64");
  uint8_t wb[] = {1, 1, 1, 1, 1, 1};
  expect_cast_bytes(t, CT_BOOL, wb, "float16 -> bool");
  /* float16 -> bfloat16: 2.75 and 65504 round (65504 = 0x477FE0 -> a tie? no: 0x477FE0 rounds up to 0x4780) */
  uint16_t wbf[] = {0x4030, 0xC030, 0x4780, 0xFF80, 0x3380, 0x7FC0};
  expect_cast_bytes(t, CT_BFLOAT16, wbf, "float16 -> bfloat16");
  ct_tensor_free(t);
  /* bfloat16 -> float16: 1e5 (0x47C3, 99840) overflows to inf; 2^-30 underflows to 0 */
  uint16_t b[] = {0x47C3, 0x3080, 0x3F80, 0xBF80};
  t = from(ctx, CT_BFLOAT16, 4, b);
  uint16_t wh[] = {0x7C00, 0x0000, 0x3C00, 0xBC00};
  expect_cast_bytes(t, CT_FLOAT16, wh, "bfloat16 -> float16");
  int32_t wbi[] = {99840, 0, 1, -1};
  expect_cast_bytes(t, CT_INT32, wbi, "bfloat16 -> int32");
  ct_tensor_free(t);
  ct_context_free(ctx);
}

Test(dtypes, integers_and_bool) {
  ct_context *ctx = ts_ctx();
  int64_t l[] = {(INT64_C(1) << 40) + 1, -3, (INT64_C(1) << 32) + 5, 0, 70000};
  ct_tensor *t = from(ctx, CT_INT64, 5, l);
  int32_t wi[] = {1, -3, 5, 0, 70000}; /* int64 -> int32 keeps the low 32 bits */
  expect_cast_bytes(t, CT_INT32, wi, "int64 -> int32");
  float wf[] = {0x1p40f, -3.0f, 0x1p32f, 0.0f, 70000.0f};
  expect_cast_bytes(t, CT_FLOAT32, wf, "int64 -> float32");
  uint16_t wh[] = {0x7C00, 0xC200, 0x7C00, 0x0000, 0x7C00};
  expect_cast_bytes(t, CT_FLOAT16, wh, "int64 -> float16");
  uint8_t wb[] = {1, 1, 1, 0, 1};
  expect_cast_bytes(t, CT_BOOL, wb, "int64 -> bool");
  ct_tensor_free(t);
  /* int32 -> bfloat16 rounds once: 2^24 + 2^16 + 1 is past the tie (through a float32 it would
   * land on the tie 2^24 + 2^16 and round to even, 2^24) */
  int32_t i[] = {(1 << 24) + (1 << 16) + 1, -7, INT32_MAX};
  t = from(ctx, CT_INT32, 3, i);
  uint16_t wbf[] = {0x4B81, 0xC0E0, 0x4F00};
  expect_cast_bytes(t, CT_BFLOAT16, wbf, "int32 -> bfloat16");
  int64_t wl[] = {(1 << 24) + (1 << 16) + 1, -7, INT32_MAX};
  expect_cast_bytes(t, CT_INT64, wl, "int32 -> int64");
  ct_tensor_free(t);
  float f[] = {3e9f, -1e30f, 1e30f, -2.9f, NAN, INFINITY};
  t = from(ctx, CT_FLOAT32, 6, f);
  int64_t wfl[] = {3000000000LL, INT64_MIN, INT64_MAX, -2, 0, INT64_MAX};
  expect_cast_bytes(t, CT_INT64, wfl, "float32 -> int64 (truncating, saturating, NaN 0)");
  uint8_t wfb[] = {1, 1, 1, 1, 1, 1};
  expect_cast_bytes(t, CT_BOOL, wfb, "float32 -> bool");
  ct_tensor_free(t);
  float z[] = {0.0f, -0.0f, 0.5f};
  t = from(ctx, CT_FLOAT32, 3, z);
  uint8_t wz[] = {0, 0, 1};
  expect_cast_bytes(t, CT_BOOL, wz, "float32 zeros -> bool");
  ct_tensor_free(t);
  uint8_t o[] = {1, 0, 1};
  t = from(ctx, CT_BOOL, 3, o);
  float wof[] = {1, 0, 1};
  expect_cast_bytes(t, CT_FLOAT32, wof, "bool -> float32");
  uint16_t woh[] = {0x3C00, 0, 0x3C00};
  expect_cast_bytes(t, CT_FLOAT16, woh, "bool -> float16");
  uint16_t wob[] = {0x3F80, 0, 0x3F80};
  expect_cast_bytes(t, CT_BFLOAT16, wob, "bool -> bfloat16");
  int64_t wol[] = {1, 0, 1};
  expect_cast_bytes(t, CT_INT64, wol, "bool -> int64");
  int32_t woi[] = {1, 0, 1};
  expect_cast_bytes(t, CT_INT32, woi, "bool -> int32");
  ct_tensor_free(t);
  ct_context_free(ctx);
}

Test(dtypes, float64_rounds_once_to_sixteen_bits) {
  ct_context *ctx = ts_ctx();
  ts_require_fp64(ctx);
  /* just past a tie of each 16-bit type by 2^-40: through a float32 both would land on the tie and
   * round to even */
  double x[] = {1.0 + 0x1p-11 + 0x1p-40, 1.0 + 0x1p-8 + 0x1p-40, 65520.0, 1e-300};
  ct_tensor *t = from(ctx, CT_FLOAT64, 4, x);
  uint16_t wh[] = {0x3C01, 0x3C04, 0x7C00, 0x0000};
  expect_cast_bytes(t, CT_FLOAT16, wh, "float64 -> float16");
  uint16_t wb[] = {0x3F80, 0x3F81, 0x477F + 1, 0x0000};
  expect_cast_bytes(t, CT_BFLOAT16, wb, "float64 -> bfloat16");
  ct_tensor *h = NULL, *back = NULL;
  OK(ct_cast(t, CT_FLOAT16, &h));
  OK(ct_cast(h, CT_FLOAT64, &back));
  double v[4];
  OK(ct_tensor_read(back, v, sizeof v));
  cr_assert(v[0] == 1.0 + 0x1p-10 && v[1] == 1.0 + 0x1p-8 && isinf(v[2]) && v[3] == 0);
  ct_tensor_free(back);
  ct_tensor_free(h);
  ct_tensor_free(t);
  ct_context_free(ctx);
}

Test(dtypes, host_conversions_match_the_device) {
  /* the host's rounding (constants, files, fills) against every float32 bit pattern's neighbourhood */
  ct_context *ctx = ts_ctx();
  enum { N = 4096 };
  float *x = malloc(N * sizeof *x);
  uint16_t *wh = malloc(N * 2), *wb = malloc(N * 2), *gh = malloc(N * 2), *gb = malloc(N * 2);
  cr_assert(x && wh && wb && gh && gb);
  uint64_t st = 12345;
  for (int i = 0; i < N; ++i) {
    uint32_t u = (uint32_t)ts_splitmix64(&st);
    if (i % 4 == 0) u = (u & 0x80000000u) | (0x33000000u + (u % 0x0C000000u)); /* 2^-25 .. 2^17: float16's range */
    memcpy(&x[i], &u, 4);
    if (isnan(x[i])) x[i] = 1.5f;
    wh[i] = ct__f16_from_double(x[i]);
    wb[i] = ct__bf16_from_double(x[i]);
  }
  ct_tensor *t = from(ctx, CT_FLOAT32, N, x), *h = NULL, *b = NULL;
  OK(ct_cast(t, CT_FLOAT16, &h));
  OK(ct_cast(t, CT_BFLOAT16, &b));
  OK(ct_tensor_read(h, gh, N * 2));
  OK(ct_tensor_read(b, gb, N * 2));
  for (int i = 0; i < N; ++i) {
    cr_assert_eq(gh[i], wh[i], "float16 of %a: device 0x%x, host 0x%x", (double)x[i], gh[i], wh[i]);
    cr_assert_eq(gb[i], wb[i], "bfloat16 of %a: device 0x%x, host 0x%x", (double)x[i], gb[i], wb[i]);
  }
  ct_tensor_free(h);
  ct_tensor_free(b);
  ct_tensor_free(t);
  free(x), free(wh), free(wb), free(gh), free(gb);
  ct_context_free(ctx);
}

/* ---- ops in the 16-bit dtypes: computed in float32, rounded to the dtype ----------------------- */
static double eps_of(ct_dtype dt) { return dt == CT_FLOAT16 ? 0x1p-10 : 0x1p-7; }
static double round_to(ct_dtype dt, double v) {
  return dt == CT_FLOAT16 ? ct__f16_to_double(ct__f16_from_double(v)) : ct__bf16_to_double(ct__bf16_from_double(v));
}

/* got (dtype dt) against the float64 reference: within one unit of the dtype's epsilon relative,
 * and the smallest normal's worth absolute */
static void expect_near(const ct_tensor *t, ct_dtype dt, const double *want, int64_t n, double ulps, const char *what) {
  cr_assert_eq(ct_tensor_dtype(t), dt, "%s: dtype %s", what, ct_dtype_name(ct_tensor_dtype(t)));
  cr_assert_eq(ct_tensor_size(t), n, "%s: size", what);
  double *v = ts_read(t);
  for (int64_t i = 0; i < n; ++i)
    cr_assert(fabs(v[i] - want[i]) <= ulps * eps_of(dt) * fabs(want[i]) + 0x1p-14, "%s (%s) [%lld]: %.9g, wanted %.9g",
              what, ct_dtype_name(dt), (long long)i, v[i], want[i]);
  free(v);
}

Test(dtypes, sixteen_bit_ops_against_float64) {
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT16, CT_BFLOAT16};
  enum { M = 3, K = 16, N = 4 };
  for (int d = 0; d < 2; ++d) {
    ct_dtype dt = dts[d];
    double a[M * K], b[K * N], c[M * K];
    uint64_t st = 99 + (uint64_t)d;
    for (int i = 0; i < M * K; ++i) a[i] = round_to(dt, 4 * ts_rnd01() - 2), c[i] = round_to(dt, 3 * ts_rnd01() + 0.25);
    for (int i = 0; i < K * N; ++i) b[i] = round_to(dt, (double)(ts_splitmix64(&st) % 2001) / 1000.0 - 1);
    ct_tensor *ta = ts_tensor(ctx, dt, 2, (int64_t[]){M, K}, a), *tb = ts_tensor(ctx, dt, 2, (int64_t[]){K, N}, b),
              *tc = ts_tensor(ctx, dt, 2, (int64_t[]){M, K}, c);
    double w[M * K], s[M];
    ct_tensor *y = NULL;
    /* elementwise: one rounding of the exact result (plus float32's error, far below) */
    OK(ct_add(ta, tc, &y));
    for (int i = 0; i < M * K; ++i) w[i] = a[i] + c[i];
    expect_near(y, dt, w, M * K, 1, "add");
    ct_tensor_free(y);
    OK(ct_mul(ta, tc, &y));
    for (int i = 0; i < M * K; ++i) w[i] = a[i] * c[i];
    expect_near(y, dt, w, M * K, 1, "mul");
    ct_tensor_free(y);
    OK(ct_div(ta, tc, &y));
    for (int i = 0; i < M * K; ++i) w[i] = a[i] / c[i];
    expect_near(y, dt, w, M * K, 1, "div");
    ct_tensor_free(y);
    OK(ct_exp(ta, &y));
    for (int i = 0; i < M * K; ++i) w[i] = exp(a[i]);
    expect_near(y, dt, w, M * K, 1, "exp");
    ct_tensor_free(y);
    OK(ct_tanh(ta, &y));
    for (int i = 0; i < M * K; ++i) w[i] = tanh(a[i]);
    expect_near(y, dt, w, M * K, 1, "tanh");
    ct_tensor_free(y);
    OK(ct_mul_scalar(ta, 0.5, &y));
    for (int i = 0; i < M * K; ++i) w[i] = a[i] * 0.5;
    expect_near(y, dt, w, M * K, 0, "mul_scalar (exact)");
    ct_tensor_free(y);
    /* a comparison gives a bool tensor */
    OK(ct_greater(ta, tc, &y));
    cr_assert_eq(ct_tensor_dtype(y), CT_BOOL);
    double *m = ts_read(y);
    for (int i = 0; i < M * K; ++i) cr_assert_eq(m[i], a[i] > c[i] ? 1.0 : 0.0);
    free(m);
    ct_tensor_free(y);
    /* reductions: summed in float32, rounded once */
    OK(ct_sum(ta, (int[]){1}, 1, false, &y));
    for (int r = 0; r < M; ++r) {
      s[r] = 0;
      for (int k = 0; k < K; ++k) s[r] += a[r * K + k];
    }
    expect_near(y, dt, s, M, 1, "sum");
    ct_tensor_free(y);
    OK(ct_max(ta, (int[]){1}, 1, false, &y));
    for (int r = 0; r < M; ++r) {
      s[r] = -INFINITY;
      for (int k = 0; k < K; ++k) s[r] = fmax(s[r], a[r * K + k]);
    }
    expect_near(y, dt, s, M, 0, "max (exact)");
    ct_tensor_free(y);
    OK(ct_argmax(ta, 1, &y));
    cr_assert_eq(ct_tensor_dtype(y), CT_INT32);
    ct_tensor_free(y);
    /* matmul: float32 products and sums, rounded once */
    OK(ct_matmul(ta, tb, false, false, &y));
    double mm[M * N];
    for (int r = 0; r < M; ++r)
      for (int j = 0; j < N; ++j) {
        mm[r * N + j] = 0;
        for (int k = 0; k < K; ++k) mm[r * N + j] += a[r * K + k] * b[k * N + j];
      }
    /* the absolute part covers cancellation: float32's error on sums of 16 products of size <= 2 */
    double *g = NULL;
    cr_assert_eq(ct_tensor_dtype(y), dt);
    g = ts_read(y);
    for (int i = 0; i < M * N; ++i)
      cr_assert(fabs(g[i] - mm[i]) <= eps_of(dt) * fabs(mm[i]) + 1e-5, "matmul (%s) [%d]: %.9g, wanted %.9g",
                ct_dtype_name(dt), i, g[i], mm[i]);
    free(g);
    ct_tensor_free(y);
    /* softmax along the rows, a composite */
    OK(ct_softmax(ta, 1, &y));
    for (int r = 0; r < M; ++r) {
      double mx = -INFINITY, z = 0;
      for (int k = 0; k < K; ++k) mx = fmax(mx, a[r * K + k]);
      for (int k = 0; k < K; ++k) z += exp(a[r * K + k] - mx);
      for (int k = 0; k < K; ++k) w[r * K + k] = exp(a[r * K + k] - mx) / z;
    }
    expect_near(y, dt, w, M * K, 4, "softmax");
    ct_tensor_free(y);
    /* a row of the layer library: softmax cross-entropy of 16-bit logits, per example */
    ct_tensor *lab = NULL;
    OK(ct_tensor_from_data(ctx, CT_INT32, 1, (int64_t[]){M}, (int32_t[]){0, 5, 15}, &lab));
    OK(ct_sparse_softmax_cross_entropy(ta, lab, &y));
    for (int r = 0; r < M; ++r) {
      double mx = -INFINITY, z = 0;
      for (int k = 0; k < K; ++k) mx = fmax(mx, a[r * K + k]);
      for (int k = 0; k < K; ++k) z += exp(a[r * K + k] - mx);
      s[r] = mx + log(z) - a[r * K + (r == 0 ? 0 : r == 1 ? 5 : 15)];
    }
    expect_near(y, dt, s, M, 2, "sparse_softmax_cross_entropy");
    ct_tensor_free(y);
    ct_tensor_free(lab);
    ct_tensor_free(ta), ct_tensor_free(tb), ct_tensor_free(tc);
  }
  ct_context_free(ctx);
}

Test(dtypes, int64_ops) {
  ct_context *ctx = ts_ctx();
  int64_t a[6] = {(INT64_C(1) << 40) + 3, -(INT64_C(1) << 35), 7, -9, INT64_C(1) << 33, 0};
  int64_t b[6] = {5, 3, -2, 4, (INT64_C(1) << 29) + 1, 1}; /* products within int64, past int32 */
  ct_tensor *ta = NULL, *tb = NULL, *y = NULL;
  OK(ct_tensor_from_data(ctx, CT_INT64, 2, (int64_t[]){2, 3}, a, &ta));
  OK(ct_tensor_from_data(ctx, CT_INT64, 2, (int64_t[]){2, 3}, b, &tb));
  int64_t g[6];
  OK(ct_add(ta, tb, &y));
  OK(ct_tensor_read(y, g, sizeof g));
  for (int i = 0; i < 6; ++i) cr_assert_eq(g[i], a[i] + b[i], "add [%d]", i);
  ct_tensor_free(y);
  OK(ct_mul(ta, tb, &y));
  OK(ct_tensor_read(y, g, sizeof g));
  for (int i = 0; i < 6; ++i) cr_assert_eq(g[i], a[i] * b[i], "mul [%d]", i);
  ct_tensor_free(y);
  OK(ct_sub(ta, tb, &y));
  OK(ct_tensor_read(y, g, sizeof g));
  for (int i = 0; i < 6; ++i) cr_assert_eq(g[i], a[i] - b[i], "sub [%d]", i);
  ct_tensor_free(y);
  OK(ct_div(ta, tb, &y)); /* truncating, as int32 */
  OK(ct_tensor_read(y, g, sizeof g));
  for (int i = 0; i < 6; ++i) cr_assert_eq(g[i], a[i] / b[i], "div [%d]", i);
  ct_tensor_free(y);
  OK(ct_neg(ta, &y));
  OK(ct_tensor_read(y, g, sizeof g));
  for (int i = 0; i < 6; ++i) cr_assert_eq(g[i], -a[i], "neg [%d]", i);
  ct_tensor_free(y);
  OK(ct_maximum(ta, tb, &y));
  OK(ct_tensor_read(y, g, sizeof g));
  for (int i = 0; i < 6; ++i) cr_assert_eq(g[i], a[i] > b[i] ? a[i] : b[i], "maximum [%d]", i);
  ct_tensor_free(y);
  OK(ct_add_scalar(ta, 1, &y));
  OK(ct_tensor_read(y, g, sizeof g));
  for (int i = 0; i < 6; ++i) cr_assert_eq(g[i], a[i] + 1, "add_scalar [%d]", i);
  ct_tensor_free(y);
  OK(ct_less(ta, tb, &y));
  cr_assert_eq(ct_tensor_dtype(y), CT_BOOL);
  uint8_t m[6];
  OK(ct_tensor_read(y, m, sizeof m));
  for (int i = 0; i < 6; ++i) cr_assert_eq(m[i], a[i] < b[i], "less [%d]", i);
  ct_tensor_free(y);
  /* sums past int32 */
  OK(ct_sum(ta, (int[]){1}, 1, false, &y));
  OK(ct_tensor_read(y, g, 2 * sizeof *g));
  cr_assert_eq(g[0], a[0] + a[1] + a[2]);
  cr_assert_eq(g[1], a[3] + a[4] + a[5]);
  ct_tensor_free(y);
  OK(ct_sum(ta, NULL, 0, false, &y));
  OK(ct_tensor_read(y, g, sizeof *g));
  cr_assert_eq(g[0], a[0] + a[1] + a[2] + a[3] + a[4] + a[5]);
  ct_tensor_free(y);
  OK(ct_max(ta, (int[]){0}, 1, false, &y));
  OK(ct_tensor_read(y, g, 3 * sizeof *g));
  cr_assert(g[0] == a[0] && g[1] == a[4] && g[2] == a[2]);
  ct_tensor_free(y);
  OK(ct_prod(tb, (int[]){1}, 1, false, &y));
  OK(ct_tensor_read(y, g, 2 * sizeof *g));
  cr_assert(g[0] == b[0] * b[1] * b[2] && g[1] == b[3] * b[4] * b[5]);
  ct_tensor_free(y);
  OK(ct_argmax(ta, 1, &y));
  int32_t am[2];
  OK(ct_tensor_read(y, am, sizeof am));
  cr_assert(am[0] == 0 && am[1] == 1, "argmax %d %d", am[0], am[1]);
  ct_tensor_free(y);
  /* movement */
  OK(ct_transpose(ta, NULL, &y));
  OK(ct_tensor_read(y, g, sizeof g));
  cr_assert(g[0] == a[0] && g[1] == a[3] && g[2] == a[1]);
  ct_tensor_free(y);
  /* float ops refuse integers, as for int32 */
  EXPECT_STATUS(ct_exp(ta, &y), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_matmul(ta, tb, false, true, &y), CT_ERR_DTYPE);
  ct_tensor_free(ta), ct_tensor_free(tb);
  ct_context_free(ctx);
}

Test(dtypes, bool_tensors) {
  ct_context *ctx = ts_ctx();
  uint8_t c[4] = {1, 0, 0, 1}, d[4] = {1, 1, 0, 0};
  ct_tensor *tc = from(ctx, CT_BOOL, 4, c), *td = from(ctx, CT_BOOL, 4, d), *y = NULL;
  double av[4] = {1, 2, 3, 4}, bv[4] = {-1, -2, -3, -4};
  ct_tensor *a = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){4}, av), *b = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){4}, bv);
  OK(ct_where(tc, a, b, &y));
  double want[4] = {1, -2, -3, 4};
  ts_assert_close(y, want, 4, 0, 0, "where with a bool condition");
  ct_tensor_free(y);
  OK(ct_equal(tc, td, &y));
  cr_assert_eq(ct_tensor_dtype(y), CT_BOOL);
  double eq[4] = {1, 0, 1, 0};
  ts_assert_close(y, eq, 4, 0, 0, "equal of bools");
  ct_tensor_free(y);
  OK(ct_where(tc, tc, td, &y)); /* bool branches stay bool */
  cr_assert_eq(ct_tensor_dtype(y), CT_BOOL);
  uint8_t g[4];
  OK(ct_tensor_read(y, g, 4));
  cr_assert(g[0] == 1 && g[1] == 1 && g[2] == 0 && g[3] == 1);
  ct_tensor_free(y);
  OK(ct_concat((ct_tensor *const[]){tc, td}, 2, 0, &y));
  cr_assert_eq(ct_tensor_dtype(y), CT_BOOL);
  uint8_t g8[8];
  OK(ct_tensor_read(y, g8, 8));
  cr_assert(memcmp(g8, c, 4) == 0 && memcmp(g8 + 4, d, 4) == 0);
  ct_tensor_free(y);
  ct_tensor *idx = NULL;
  OK(ct_tensor_from_data(ctx, CT_INT32, 1, (int64_t[]){3}, (int32_t[]){3, 1, 0}, &idx));
  OK(ct_gather(tc, idx, 0, &y));
  cr_assert_eq(ct_tensor_dtype(y), CT_BOOL);
  OK(ct_tensor_read(y, g, 3));
  cr_assert(g[0] == 1 && g[1] == 0 && g[2] == 1);
  ct_tensor_free(y);
  ct_tensor_free(idx);
  /* a comparison gives bool, as TensorFlow's: its bytes are 0 or 1 */
  ct_tensor *mask = NULL;
  OK(ct_greater(a, b, &mask));
  cr_assert_eq(ct_tensor_dtype(mask), CT_BOOL);
  OK(ct_tensor_read(mask, g, 4));
  cr_assert(g[0] == 1 && g[1] == 1 && g[2] == 1 && g[3] == 1);
  OK(ct_cast(mask, CT_BOOL, &y)); /* a cast to its own dtype */
  OK(ct_tensor_read(y, g, 4));
  cr_assert(g[0] == 1 && g[3] == 1);
  ct_tensor_free(y);
  ct_tensor_free(mask);
  /* arithmetic and reductions refuse bool */
  EXPECT_STATUS(ct_add(tc, td, &y), CT_ERR_DTYPE);
  cr_assert(strstr(ct_errmsg(), "bool"), "%s", ct_errmsg());
  EXPECT_STATUS(ct_neg(tc, &y), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_sum(tc, NULL, 0, false, &y), CT_ERR_DTYPE);
  ct_tensor_free(tc), ct_tensor_free(td), ct_tensor_free(a), ct_tensor_free(b);
  ct_context_free(ctx);
}

Test(dtypes, refusals) {
  ct_context *ctx = ts_ctx();
  double v[2] = {1, 2};
  ct_tensor *h = ts_tensor(ctx, CT_FLOAT16, 1, (int64_t[]){2}, v), *bf = ts_tensor(ctx, CT_BFLOAT16, 1, (int64_t[]){2}, v),
            *f = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){2}, v), *y = NULL;
  EXPECT_STATUS(ct_add(h, f, &y), CT_ERR_DTYPE);
  cr_assert(strstr(ct_errmsg(), "float16"), "%s", ct_errmsg());
  EXPECT_STATUS(ct_add(h, bf, &y), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_cast(h, (ct_dtype)7, &y), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_tensor_from_data(ctx, (ct_dtype)7, 1, (int64_t[]){1}, v, &y), CT_ERR_DTYPE);
  if (!ts_has_fp64(ctx)) {
    /* a device without float64 says so, naming itself and the dtype */
    EXPECT_STATUS(ct_cast(h, CT_FLOAT64, &y), CT_ERR_UNSUPPORTED);
    cr_assert(strstr(ct_errmsg(), "float64") && strstr(ct_errmsg(), ctb_device_name(ctx)), "%s", ct_errmsg());
  }
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  cr_log_info("device \"%s\": cl_khr_fp16 %s, cl_khr_fp64 %s", info.name, info.fp16 ? "yes" : "no", info.fp64 ? "yes" : "no");
  ct_tensor_free(h), ct_tensor_free(bf), ct_tensor_free(f);
  ct_context_free(ctx);
}

/* ---- gradients through casts and 16-bit activations ------------------------------------------------- */
Test(dtypes, gradient_of_cast_is_the_cast_back) {
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT16, CT_BFLOAT16};
  double xv[5] = {0.3, -1.7, 2.5, 0.01, -0.2}, wv[5] = {0.1, 1.0 / 3, -7.25, 1e-3, 3.0};
  for (int d = 0; d < 2; ++d) {
    ct_dtype dt = dts[d];
    ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){5}, xv), *w = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){5}, wv);
    ct_tape *tape = ts_tape(ctx, false, false);
    OK(ct_tape_watch(tape, x));
    ct_tensor *h = NULL, *back = NULL, *p = NULL, *y = NULL;
    OK(ct_cast(x, dt, &h));
    OK(ct_cast(h, CT_FLOAT32, &back));
    OK(ct_mul(back, w, &p));
    OK(ct_sum(p, NULL, 0, false, &y));
    ct_tensor *gx = ts_grad1(tape, y, x);
    cr_assert_eq(ct_tensor_dtype(gx), CT_FLOAT32);
    /* dy/dx = w, through a cast to the 16-bit dtype and back: w rounded to it */
    double want[5];
    for (int i = 0; i < 5; ++i) want[i] = round_to(dt, (float)wv[i]);
    ts_assert_close(gx, want, 5, 0, 0, "gradient through a cast");
    ct_tensor_free(gx), ct_tensor_free(y), ct_tensor_free(p), ct_tensor_free(back), ct_tensor_free(h);
    /* a 16-bit activation: y = sum(tanh(h) * h), the gradient in float32 within the dtype's epsilon */
    ct_tape_free(tape);
    tape = ts_tape(ctx, false, false);
    OK(ct_tape_watch(tape, x));
    ct_tensor *t = NULL;
    OK(ct_cast(x, dt, &h));
    OK(ct_tanh(h, &t));
    OK(ct_mul(t, h, &p));
    OK(ct_sum(p, NULL, 0, false, &y));
    cr_assert_eq(ct_tensor_dtype(y), dt);
    gx = ts_grad1(tape, y, x);
    cr_assert_eq(ct_tensor_dtype(gx), CT_FLOAT32);
    double *g = ts_read(gx);
    for (int i = 0; i < 5; ++i) {
      double hx = round_to(dt, (float)xv[i]), th = tanh(hx), ref = th + hx * (1 - th * th);
      cr_assert(fabs(g[i] - ref) <= 8 * eps_of(dt) * (fabs(ref) + 1), "%s: d/dx [%d] = %.9g, wanted %.9g",
                ct_dtype_name(dt), i, g[i], ref);
    }
    free(g);
    ct_tensor_free(gx), ct_tensor_free(y), ct_tensor_free(p), ct_tensor_free(t), ct_tensor_free(h);
    ct_tape_free(tape);
    ct_tensor_free(x), ct_tensor_free(w);
  }
  ct_context_free(ctx);
}

/* x -> cast(cast(x, *dt), x's dtype) */
static ct_status gc_cast_round_trip(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)n;
  ct_tensor *h = NULL;
  ct_status s = ct_cast(in[0], *(const ct_dtype *)user, &h);
  if (s == CT_OK) s = ct_cast(h, ct_tensor_dtype(in[0]), out);
  ct_tensor_free(h);
  return s;
}

Test(dtypes, gradcheck_of_casts) {
  /* the finite-difference checker through a 16-bit cast: inputs and steps on the dtype's grid
   * (multiples of 2^-4 below 4), so the cast is the identity where the checker evaluates it; the
   * tape's gradient carries the projection weights through the 16-bit dtype, hence the dtype's
   * epsilon as the relative tolerance */
  ct_context *ctx = ts_ctx();
  static const ct_dtype dts[] = {CT_FLOAT16, CT_BFLOAT16};
  double xv[4] = {0.5, -1.25, 2.0, 0.75};
  for (int d = 0; d < 2; ++d) {
    ct_tensor *x = ts_tensor(ctx, ts_best_float(ctx), 1, (int64_t[]){4}, xv);
    ct_gradcheck_report rep;
    ct_gradcheck_options o;
    memset(&o, 0, sizeof o);
    o.eps = 0x1p-4;
    o.rtol = eps_of(dts[d]);
    o.atol = 1e-6;
    OK(ct_gradcheck(ctx, gc_cast_round_trip, (void *)&dts[d], (ct_tensor *const[]){x}, 1, &o, &rep));
    cr_assert(rep.passed, "%s: %s", ct_dtype_name(dts[d]), rep.message);
    cr_assert_eq(rep.checked, 4);
    ct_tensor_free(x);
  }
  ct_context_free(ctx);
}

/* ---- printing and files ------------------------------------------------------------------------------ */
Test(dtypes, printing) {
  ct_context *ctx = ts_ctx();
  double v[3] = {1.5, -2, 0.25};
  struct { ct_dtype dt; const char *values, *tail; } cases[] = {
    {CT_FLOAT16, "[ 1.5  -2.    0.25]", "dtype=float16)"},
    {CT_BFLOAT16, "[ 1.5  -2.    0.25]", "dtype=bfloat16)"},
  };
  char buf[256];
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
    ct_tensor *t = ts_tensor(ctx, cases[c].dt, 1, (int64_t[]){3}, v);
    OK(ct_tensor_format(t, CT_FORMAT_VALUES, buf, sizeof buf));
    cr_assert_str_eq(buf, cases[c].values);
    OK(ct_tensor_format(t, CT_FORMAT_REPR, buf, sizeof buf));
    cr_assert(strstr(buf, cases[c].tail), "%s", buf);
    ct_tensor_free(t);
  }
  /* the fewest digits that read back as the value in its own dtype, as NumPy prints float16 */
  ct_tensor *t = NULL;
  OK(ct_scalar(ctx, CT_FLOAT16, 0.1, &t));
  OK(ct_tensor_format(t, CT_FORMAT_REPR, buf, sizeof buf));
  cr_assert_str_eq(buf, "tf.Tensor(0.1, shape=(), dtype=float16)");
  ct_tensor_free(t);
  OK(ct_fill(ctx, CT_BFLOAT16, 1, (int64_t[]){2}, 3.14159, &t));
  OK(ct_tensor_format(t, CT_FORMAT_VALUES, buf, sizeof buf));
  cr_assert_str_eq(buf, "[3.14 3.14]");
  ct_tensor_free(t);
  int64_t l[2] = {INT64_C(1) << 40, -5};
  t = from(ctx, CT_INT64, 2, l);
  OK(ct_tensor_format(t, CT_FORMAT_REPR, buf, sizeof buf));
  cr_assert_str_eq(buf, "tf.Tensor([1099511627776            -5], shape=(2,), dtype=int64)");
  ct_tensor_free(t);
  uint8_t o[2] = {1, 0};
  t = from(ctx, CT_BOOL, 2, o);
  OK(ct_tensor_format(t, CT_FORMAT_REPR, buf, sizeof buf));
  cr_assert_str_eq(buf, "tf.Tensor([1 0], shape=(2,), dtype=bool)");
  ct_tensor_free(t);
  ct_context_free(ctx);
}

Test(dtypes, safetensors_and_npy_files) {
  ct_context *ctx = ts_ctx();
  char dir[256], path[300];
  ts_tmpdir(dir, sizeof dir, "dtypes");
  uint16_t h[3] = {0x3C00, 0x7C00, 0x0001}, b[2] = {0x3F80, 0xFF80};
  int64_t l[2] = {(INT64_C(1) << 40) + 1, -1};
  uint8_t o[3] = {1, 0, 1};
  ct_tensor *ts[4] = {from(ctx, CT_FLOAT16, 3, h), from(ctx, CT_BFLOAT16, 2, b), from(ctx, CT_INT64, 2, l),
                      from(ctx, CT_BOOL, 3, o)};
  const char *names[4] = {"h", "b", "l", "o"};
  snprintf(path, sizeof path, "%s/all.safetensors", dir);
  OK(ct_tensors_save(path, (const ct_tensor *const *)ts, names, 4));
  int count = 0;
  char **got_names = NULL;
  ct_tensor **got = NULL;
  OK(ct_tensors_load(ctx, path, &count, &got_names, &got));
  cr_assert_eq(count, 4);
  const void *want[4] = {h, b, l, o};
  for (int i = 0; i < 4; ++i) {
    cr_assert_str_eq(got_names[i], names[i]);
    cr_assert_eq(ct_tensor_dtype(got[i]), ct_tensor_dtype(ts[i]));
    unsigned char back[32];
    size_t bytes = (size_t)ct_tensor_size(got[i]) * ct_dtype_size(ct_tensor_dtype(got[i]));
    OK(ct_tensor_read(got[i], back, bytes));
    cr_assert(memcmp(back, want[i], bytes) == 0, "%s: bytes differ", names[i]);
  }
  ct_tensors_load_free(count, got_names, got);
  /* the header names the safetensors dtypes */
  FILE *f = fopen(path, "rb");
  cr_assert(f);
  char hdr[512] = {0};
  size_t nr = fread(hdr, 1, sizeof hdr - 1, f);
  fclose(f);
  cr_assert(nr > 8);
  const char *k = hdr + 8; /* after the header's length */
  cr_assert(strstr(k, "\"F16\"") && strstr(k, "\"BF16\"") && strstr(k, "\"I64\"") && strstr(k, "\"BOOL\""), "%s", k);
  /* .npy: int64, bool and float16 as '<i8', '|b1' and '<f2'; bfloat16 is refused with the way out */
  snprintf(path, sizeof path, "%s/l.npy", dir);
  OK(ct_tensor_save_npy(ts[2], path));
  f = fopen(path, "rb");
  cr_assert(f);
  nr = fread(hdr, 1, 128, f);
  fclose(f);
  hdr[nr < 128 ? nr : 127] = 0;
  cr_assert(nr > 10 && strstr(hdr + 10, "'<i8'"), "int64 .npy header"); /* after the magic and lengths */
  ct_tensor *back = NULL;
  OK(ct_tensor_load_npy(ctx, path, &back)); /* int64 back as int64, bit for bit */
  cr_assert_eq(ct_tensor_dtype(back), CT_INT64);
  int64_t lw[8], lb[8];
  size_t ln = sizeof(int64_t) * (size_t)ct_tensor_size(ts[2]);
  cr_assert(ln <= sizeof lw && ct_tensor_size(back) == ct_tensor_size(ts[2]));
  OK(ct_tensor_read(ts[2], lw, ln));
  OK(ct_tensor_read(back, lb, ln));
  cr_assert(memcmp(lw, lb, ln) == 0);
  ct_tensor_free(back);
  snprintf(path, sizeof path, "%s/o.npy", dir);
  OK(ct_tensor_save_npy(ts[3], path));
  OK(ct_tensor_load_npy(ctx, path, &back)); /* bool back as bool */
  cr_assert_eq(ct_tensor_dtype(back), CT_BOOL);
  double bv[3];
  OK(ct_tensor_read_f64(back, bv, 3));
  cr_assert(bv[0] == 1 && bv[1] == 0 && bv[2] == 1);
  ct_tensor_free(back);
  snprintf(path, sizeof path, "%s/h.npy", dir);
  OK(ct_tensor_save_npy(ts[0], path)); /* '<f2', read back as float16, bit for bit */
  OK(ct_tensor_load_npy(ctx, path, &back));
  cr_assert_eq(ct_tensor_dtype(back), CT_FLOAT16);
  uint16_t hb[3];
  OK(ct_tensor_read(back, hb, sizeof hb));
  cr_assert(memcmp(hb, h, sizeof hb) == 0);
  ct_tensor_free(back);
  snprintf(path, sizeof path, "%s/b.npy", dir);
  EXPECT_STATUS(ct_tensor_save_npy(ts[1], path), CT_ERR_DTYPE); /* NumPy has no bfloat16 */
  cr_assert(strstr(ct_errmsg(), "bfloat16"), "%s", ct_errmsg());
  for (int i = 0; i < 4; ++i) ct_tensor_free(ts[i]);
  ts_rmdir(dir);
  ct_context_free(ctx);
}

/* ---- mixed precision: dynamic loss scaling ------------------------------------------------------------ */
Test(dtypes, loss_scale_grows_backs_off_and_skips) {
  ct_context *ctx = ts_ctx();
  ct_loss_scale ls = ct_loss_scale_default();
  cr_assert(ls.scale == 32768 && ls.growth_factor == 2 && ls.backoff_factor == 0.5 && ls.growth_interval == 2000);
  ls.scale = 4;
  ls.growth_interval = 2;
  ct_tensor *loss = NULL, *scaled = NULL;
  OK(ct_scalar(ctx, CT_FLOAT32, 2.0, &loss));
  OK(ct_loss_scale_loss(&ls, loss, &scaled));
  cr_assert_eq(ts_item(scaled), 8.0);
  double gv[2] = {2, 4};
  ct_tensor *g = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){2}, gv), *out[2] = {NULL, NULL};
  bool finite = false;
  OK(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){g, NULL}, 2, out, &finite));
  cr_assert(finite && out[1] == NULL);
  ts_assert_close(out[0], (double[]){0.5, 1}, 2, 0, 0, "unscaled");
  cr_assert(ls.scale == 4 && ls.good_steps == 1);
  ct_tensor_free(out[0]);
  OK(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){g}, 1, out, &finite));
  cr_assert(finite && ls.scale == 8 && ls.good_steps == 0, "grows after growth_interval finite steps: %g", ls.scale);
  ct_tensor_free(out[0]);
  /* an inf (a float16 overflow) or a NaN anywhere: skipped, backed off, no gradients */
  ct_tensor *h = NULL, *nan = NULL;
  OK(ct_fill(ctx, CT_FLOAT16, 1, (int64_t[]){3}, 70000, &h));
  OK(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){g, h}, 2, out, &finite));
  cr_assert(!finite && !out[0] && !out[1]);
  cr_assert(ls.scale == 4 && ls.good_steps == 0 && ls.skipped == 1);
  OK(ct_fill(ctx, CT_FLOAT32, 1, (int64_t[]){2}, NAN, &nan));
  OK(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){nan, g}, 2, out, &finite));
  cr_assert(!finite && ls.scale == 2 && ls.skipped == 2);
  ct_tensor_free(h), ct_tensor_free(nan), ct_tensor_free(g), ct_tensor_free(loss), ct_tensor_free(scaled);
  ct_context_free(ctx);
}

Test(dtypes, loss_scaling_keeps_float16_gradients_from_underflowing) {
  /* loss = 1e-9 * sum(cast(x, float16)) in float32: its gradient reaching the float16 activation is
   * 1e-9, below float16's smallest subnormal (6e-8): it rounds to 0. Scaled by 2^15 it is 3.3e-5,
   * which float16 holds; divided back in float32 it is 1e-9 again */
  ct_context *ctx = ts_ctx();
  double xv[3] = {0.5, 1, -2};
  for (int scaled = 0; scaled <= 1; ++scaled) {
    ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){3}, xv), *h = NULL, *s = NULL, *s32 = NULL, *loss = NULL,
              *target = NULL;
    ct_loss_scale ls = ct_loss_scale_default();
    ct_tape *tape = ts_tape(ctx, false, false);
    OK(ct_tape_watch(tape, x));
    OK(ct_cast(x, CT_FLOAT16, &h));
    OK(ct_sum(h, NULL, 0, false, &s));
    OK(ct_cast(s, CT_FLOAT32, &s32));
    OK(ct_mul_scalar(s32, 1e-9, &loss));
    if (scaled) OK(ct_loss_scale_loss(&ls, loss, &target));
    else target = ct_tensor_retain(loss);
    ct_tensor *gx = ts_grad1(tape, target, x), *un[1] = {NULL};
    bool finite = false;
    if (scaled) {
      OK(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){gx}, 1, un, &finite));
      cr_assert(finite);
    } else un[0] = ct_tensor_retain(gx);
    double *g = ts_read(un[0]);
    for (int i = 0; i < 3; ++i) {
      if (scaled) cr_assert(fabs(g[i] - 1e-9) <= 2e-3 * 1e-9, "scaled: %g", g[i]);
      else cr_assert_eq(g[i], 0.0, "unscaled: the float16 gradient underflows (%g)", g[i]);
    }
    free(g);
    ct_tensor_free(un[0]), ct_tensor_free(gx), ct_tensor_free(target), ct_tensor_free(loss), ct_tensor_free(s32),
        ct_tensor_free(s), ct_tensor_free(h), ct_tensor_free(x);
    ct_tape_free(tape);
  }
  ct_context_free(ctx);
}

/* A two-layer MLP (8 -> 32 -> 3) on Gaussian blobs: float32 master weights, activations in `act`
 * (float32: plain training), the loss in float32, Adam; returns the held-out accuracy. */
enum { MP_IN = 8, MP_HID = 32, MP_CLS = 3, MP_N = 240 };
typedef struct {
  ct_tensor *x[2], *y[2]; /* train, test */
} mp_data;

static void mp_make(ct_context *ctx, mp_data *d) {
  uint64_t st = 2024;
  double centers[MP_CLS][MP_IN];
  for (int c = 0; c < MP_CLS; ++c)
    for (int k = 0; k < MP_IN; ++k) centers[c][k] = 2.0 * ((double)(ts_splitmix64(&st) % 2001) / 1000.0 - 1);
  for (int part = 0; part < 2; ++part) {
    double *x = malloc(sizeof(double) * MP_N * MP_IN);
    int32_t lab[MP_N];
    cr_assert(x);
    for (int i = 0; i < MP_N; ++i) {
      int c = (int)(ts_splitmix64(&st) % MP_CLS);
      lab[i] = c;
      for (int k = 0; k < MP_IN; ++k) {
        /* Box-Muller from two uniforms */
        double u1 = ((double)(ts_splitmix64(&st) >> 11) + 1) / 9007199254740993.0;
        double u2 = (double)(ts_splitmix64(&st) >> 11) / 9007199254740992.0;
        x[i * MP_IN + k] = centers[c][k] + 0.7 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
      }
    }
    d->x[part] = ts_tensor(ctx, CT_FLOAT32, 2, (int64_t[]){MP_N, MP_IN}, x);
    OK(ct_tensor_from_data(ctx, CT_INT32, 1, (int64_t[]){MP_N}, lab, &d->y[part]));
    free(x);
  }
}

static ct_status mp_logits(ct_tensor *const *w, const ct_tensor *x, ct_dtype act, ct_tensor **out) {
  ct_tensor *c[5] = {NULL}, *m1 = NULL, *a1 = NULL, *h = NULL, *m2 = NULL, *l = NULL;
  ct_status s = ct_cast(x, act, &c[4]);
  for (int i = 0; i < 4 && s == CT_OK; ++i) s = ct_cast(w[i], act, &c[i]);
  if (s == CT_OK) s = ct_matmul(c[4], c[0], false, false, &m1);
  if (s == CT_OK) s = ct_add(m1, c[1], &a1);
  if (s == CT_OK) s = ct_relu(a1, &h);
  if (s == CT_OK) s = ct_matmul(h, c[2], false, false, &m2);
  if (s == CT_OK) s = ct_add(m2, c[3], &l);
  if (s == CT_OK) s = ct_cast(l, CT_FLOAT32, out); /* the loss in float32 */
  for (int i = 0; i < 5; ++i) ct_tensor_free(c[i]);
  ct_tensor_free(m1), ct_tensor_free(a1), ct_tensor_free(h), ct_tensor_free(m2), ct_tensor_free(l);
  return s;
}

static double mp_train(ct_context *ctx, const mp_data *d, ct_dtype act, int steps, int64_t *skipped) {
  ct_tensor *w[4], *init = NULL;
  const int64_t shapes[4][2] = {{MP_IN, MP_HID}, {1, MP_HID}, {MP_HID, MP_CLS}, {1, MP_CLS}};
  for (int i = 0; i < 4; ++i) {
    OK(ct_random_normal(ctx, CT_FLOAT32, 2, shapes[i], 0, i % 2 ? 0.0 : 0.3, 11 + (uint64_t)i, &init));
    OK(ct_variable_create(init, NULL, true, &w[i]));
    ct_tensor_free(init);
  }
  ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  oo.learning_rate = 0.02;
  ct_optimizer *opt = NULL;
  OK(ct_optimizer_create(ctx, &oo, &opt));
  ct_loss_scale ls = ct_loss_scale_default();
  ls.growth_interval = 10;
  for (int step = 0; step < steps; ++step) {
    ct_tape *tape = ts_tape(ctx, false, false);
    for (int i = 0; i < 4; ++i) OK(ct_tape_watch(tape, w[i]));
    ct_tensor *logits = NULL, *loss = NULL, *scaled = NULL, *g[4] = {NULL}, *u[4] = {NULL};
    OK(mp_logits(w, d->x[0], act, &logits));
    OK(ct_softmax_cross_entropy(logits, d->y[0], &loss));
    OK(ct_loss_scale_loss(&ls, loss, &scaled));
    OK(ct_tape_gradient(tape, (ct_tensor *const[]){scaled}, 1, w, 4, NULL, CT_UNCONNECTED_NONE, g));
    bool finite = false;
    OK(ct_loss_scale_unscale(&ls, g, 4, u, &finite));
    if (finite) OK(ct_optimizer_apply(opt, u, w, 4));
    for (int i = 0; i < 4; ++i) ct_tensor_free(g[i]), ct_tensor_free(u[i]);
    ct_tensor_free(logits), ct_tensor_free(loss), ct_tensor_free(scaled);
    ct_tape_free(tape);
  }
  ct_tensor *logits = NULL, *acc = NULL;
  OK(mp_logits(w, d->x[1], act, &logits));
  OK(ct_accuracy(logits, d->y[1], &acc));
  double a = ts_item(acc);
  *skipped = ls.skipped;
  ct_tensor_free(acc), ct_tensor_free(logits);
  for (int i = 0; i < 4; ++i) ct_tensor_free(w[i]);
  ct_optimizer_free(opt);
  return a;
}

Test(dtypes, mixed_precision_mlp_trains_like_float32, .timeout = 300) {
  ct_context *ctx = ts_ctx();
  mp_data d;
  mp_make(ctx, &d);
  int64_t sk32 = 0, sk16 = 0, skb = 0;
  double a32 = mp_train(ctx, &d, CT_FLOAT32, 60, &sk32);
  double a16 = mp_train(ctx, &d, CT_FLOAT16, 60, &sk16);
  double ab = mp_train(ctx, &d, CT_BFLOAT16, 60, &skb);
  cr_log_info("held-out accuracy after 60 steps: float32 %.4f, float16 %.4f (%lld skipped), bfloat16 %.4f (%lld skipped)",
              a32, a16, (long long)sk16, ab, (long long)skb);
  cr_assert(a32 >= 0.9, "float32 reached %.3f", a32);
  cr_assert(fabs(a16 - a32) <= 0.03, "float16 reached %.3f, float32 %.3f", a16, a32);
  cr_assert(fabs(ab - a32) <= 0.03, "bfloat16 reached %.3f, float32 %.3f", ab, a32);
  cr_assert_eq(sk32, 0);
  for (int p = 0; p < 2; ++p) ct_tensor_free(d.x[p]), ct_tensor_free(d.y[p]);
  ct_context_free(ctx);
}
