/*
 * test_half.c — float16 compute (CLTAPE_FP16_COMPUTE, host/half.c): the three settings and the
 * refusal of `on` where the device cannot build half kernels; one launch per float16 elementwise op
 * where the context computes in half, three (cast, op, cast) where it widens; and float16 results
 * (elementwise, a fused chain, reductions, matmul, the gradients of a small MLP) against float32
 * computations within float16's rounding, on whichever path the device takes. Each test sets the
 * variable before it creates its context (Criterion runs every test in a fresh process).
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "backend.h"
#include "ct_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double h16(double v) { return ct__f16_to_double(ct__f16_from_double(v)); }

static ct_context *ctx_with(const char *mode) {
  if (mode) ct__env_override("CLTAPE_FP16_COMPUTE", mode);
  else ct__env_override("CLTAPE_FP16_COMPUTE", NULL);
  return ts_ctx();
}

static bool device_fp16(void) {
  ct_context *ctx = ctx_with("off");
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  ct_context_free(ctx);
  return info.fp16;
}

Test(half, the_three_settings_and_a_bad_one) {
  bool fp16 = device_fp16();
  ct_context *ctx = ctx_with("off");
  cr_assert(!ctb_half_compute(ctx), "off computes float16 in float32");
  ct_context_stats st;
  OK(ct_context_stats_get(ctx, &st));
  cr_assert(!st.fp16_compute, "the stats say so");
  ct_context_free(ctx);
  ctx = ctx_with("auto");
  cr_assert_eq(ctb_half_compute(ctx), fp16, "auto follows cl_khr_fp16");
  OK(ct_context_stats_get(ctx, &st));
  cr_assert_eq(st.fp16_compute, fp16);
  ct_context_free(ctx);
  ctx = ctx_with(NULL);
  cr_assert_eq(ctb_half_compute(ctx), fp16, "unset is auto");
  ct_context_free(ctx);
  ct__env_override("CLTAPE_FP16_COMPUTE", "yes");
  ct_context *bad = NULL;
  EXPECT_STATUS(ct_context_create(getenv("CLTAPE_DEVICE"), &bad), CT_ERR_INVALID);
  cr_assert(bad == NULL);
  cr_assert(strstr(ct_errmsg(), "CLTAPE_FP16_COMPUTE") && strstr(ct_errmsg(), "yes"), "%s", ct_errmsg());
}

/* `on` computes in half, or refuses the context where the device cannot build a half kernel */
Test(half, on_computes_in_half_or_refuses) {
  bool fp16 = device_fp16();
  ct__env_override("CLTAPE_FP16_COMPUTE", "on");
  ct_context *ctx = NULL;
  ct_status s = ct_context_create(getenv("CLTAPE_DEVICE"), &ctx);
  if (s == CT_OK) {
    cr_assert(ctb_half_compute(ctx));
    cr_log_info("device \"%s\" builds half kernels (cl_khr_fp16 %s)", ctb_device_name(ctx), fp16 ? "yes" : "no");
    ct_context_free(ctx);
    return;
  }
  cr_assert_eq(s, CT_ERR_UNSUPPORTED, "%s: %s", ct_status_name(s), ct_errmsg());
  cr_assert(ctx == NULL);
  cr_assert(!fp16, "a device with cl_khr_fp16 refused half kernels: %s", ct_errmsg());
  cr_assert(strstr(ct_errmsg(), "CLTAPE_FP16_COMPUTE=on") && strstr(ct_errmsg(), "no cl_khr_fp16"), "%s", ct_errmsg());
  cr_log_info("refused as it should be: %s", ct_errmsg());
}

static uint64_t launches(const ct_context *ctx) {
  ct_context_stats st;
  OK(ct_context_stats_get(ctx, &st));
  return st.kernels_launched;
}

/* The rows that compute in half take one kernel; widened ones three (cast, op, cast); bfloat16 is
 * always widened. Fusion off: one kernel per op. */
Test(half, one_launch_per_op_in_half_three_when_widened) {
  ct__env_override("CLTAPE_FUSION", "off");
  ct_context *ctx = ctx_with(NULL);
  bool half = ctb_half_compute(ctx);
  double v[8] = {-2, -1, -0.5, 0, 0.25, 1, 1.5, 3};
  for (int k = 0; k < 2; ++k) {
    ct_dtype dt = k == 0 ? CT_FLOAT16 : CT_BFLOAT16;
    ct_tensor *x = ts_tensor(ctx, dt, 1, (int64_t[]){8}, v), *y = NULL, *z = NULL;
    OK(ct_tensor_read(x, (uint16_t[8]){0}, 16)); /* x's upload is done */
    uint64_t before = launches(ctx);
    OK(ct_sigmoid(x, &y));
    uint64_t one = launches(ctx) - before;
    cr_assert_eq(one, dt == CT_FLOAT16 && half ? 1u : 3u, "%s sigmoid: %llu launches (half %d)", ct_dtype_name(dt),
                 (unsigned long long)one, (int)half);
    before = launches(ctx);
    OK(ct_mul(x, y, &z));
    one = launches(ctx) - before;
    cr_assert_eq(one, dt == CT_FLOAT16 && half ? 1u : 4u, "%s mul: %llu launches", ct_dtype_name(dt), (unsigned long long)one);
    cr_assert_eq(ct_tensor_dtype(z), dt);
    ct_tensor_free(z);
    z = NULL;
    before = launches(ctx); /* a comparison: its mask without a cast back */
    OK(ct_greater(x, y, &z));
    one = launches(ctx) - before;
    if (dt == CT_FLOAT16 && half) cr_assert_eq(one, 1u, "float16 greater in half: %llu launches", (unsigned long long)one);
    else cr_assert_geq(one, 3u, "%s greater widened: %llu launches", ct_dtype_name(dt), (unsigned long long)one);
    ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(z);
  }
  ct_context_free(ctx);
}

/* |got - want| within `ulps` float16 ulps of want (plus float16's smallest normal, for values near 0) */
static void expect_f16(const ct_tensor *t, const double *want, int64_t n, double ulps, const char *what) {
  cr_assert_eq(ct_tensor_dtype(t), CT_FLOAT16, "%s: %s", what, ct_dtype_name(ct_tensor_dtype(t)));
  cr_assert_eq(ct_tensor_size(t), n, "%s: size", what);
  double *g = ts_read(t);
  for (int64_t i = 0; i < n; ++i)
    cr_assert(fabs(g[i] - want[i]) <= ulps * 0x1p-10 * fabs(want[i]) + 0x1p-14, "%s [%lld]: %.9g, wanted %.9g", what,
              (long long)i, g[i], want[i]);
  free(g);
}

static ct_tensor *cast(const ct_tensor *x, ct_dtype dt) {
  ct_tensor *y = NULL;
  OK(ct_cast(x, dt, &y));
  return y;
}

/* y = sigmoid(x * w + b) * x - 0.5: the float16 result against float32's, rounded to float16 */
static ct_status chain(const ct_tensor *x, const ct_tensor *w, const ct_tensor *b, ct_tensor **out) {
  ct_tensor *t0 = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL;
  ct_status s = ct_mul(x, w, &t0);
  if (s == CT_OK) s = ct_add(t0, b, &t1);
  if (s == CT_OK) s = ct_sigmoid(t1, &t2);
  if (s == CT_OK) s = ct_mul(t2, x, &t3);
  if (s == CT_OK) s = ct_add_scalar(t3, -0.5, out);
  ct_tensor_free(t0), ct_tensor_free(t1), ct_tensor_free(t2), ct_tensor_free(t3);
  return s;
}

Test(half, float16_against_float32_within_float16_rounding) {
  ct_context *ctx = ctx_with(NULL);
  cr_log_info("float16 computes in %s on \"%s\"", ctb_half_compute(ctx) ? "half" : "float32", ctb_device_name(ctx));
  enum { M = 5, K = 24, N = 7 };
  double a[M * K], b[K * N], w[M * K];
  uint64_t st = 2026;
  for (int i = 0; i < M * K; ++i) a[i] = h16((double)(ts_splitmix64(&st) % 4001) / 1000.0 - 2);
  for (int i = 0; i < K * N; ++i) b[i] = h16((double)(ts_splitmix64(&st) % 2001) / 1000.0 - 1);
  ct_tensor *ha = ts_tensor(ctx, CT_FLOAT16, 2, (int64_t[]){M, K}, a), *hb = ts_tensor(ctx, CT_FLOAT16, 2, (int64_t[]){K, N}, b);
  ct_tensor *fa = cast(ha, CT_FLOAT32), *fb = cast(hb, CT_FLOAT32);
  ct_tensor *hrow = NULL, *frow = NULL, *hy = NULL, *fy = NULL;
  OK(ct_slice(ha, (int64_t[]){0, 0}, (int64_t[]){1, K}, NULL, &hrow)); /* broadcast along the rows */
  OK(ct_slice(fa, (int64_t[]){0, 0}, (int64_t[]){1, K}, NULL, &frow));

  /* elementwise rows: within 2 ulps of float32's result rounded (in half, sigmoid and gelu round
   * a few times inside: the builtin in float, the arithmetic around it in half) */
  static ct_status (*const un[])(const ct_tensor *, ct_tensor **) = {ct_exp, ct_tanh, ct_sigmoid, ct_relu, ct_square,
                                                                    ct_abs, ct_gelu};
  for (size_t u = 0; u < sizeof un / sizeof *un; ++u) {
    OK(un[u](ha, &hy));
    OK(un[u](fa, &fy));
    double *f = ts_read(fy);
    for (int i = 0; i < M * K; ++i) w[i] = h16(f[i]);
    free(f);
    expect_f16(hy, w, M * K, 2, "unary row");
    ct_tensor_free(hy), ct_tensor_free(fy);
  }
  static ct_status (*const bin[])(const ct_tensor *, const ct_tensor *, ct_tensor **) = {ct_add, ct_sub, ct_mul,
                                                                                        ct_maximum, ct_div};
  for (size_t o = 0; o < sizeof bin / sizeof *bin; ++o) {
    OK(bin[o](ha, hrow, &hy));
    OK(bin[o](fa, frow, &fy));
    double *f = ts_read(fy);
    for (int i = 0; i < M * K; ++i) w[i] = h16(f[i]);
    free(f);
    expect_f16(hy, w, M * K, 1, "binary row (broadcast): one rounding each");
    ct_tensor_free(hy), ct_tensor_free(fy);
  }
  /* a comparison: the same mask as float32's (the operands are float16 values in both) */
  OK(ct_less(ha, hrow, &hy));
  OK(ct_less(fa, frow, &fy));
  double *mh = ts_read(hy), *mf = ts_read(fy);
  for (int i = 0; i < M * K; ++i) cr_assert_eq(mh[i], mf[i], "less [%d]", i);
  free(mh), free(mf);
  ct_tensor_free(hy), ct_tensor_free(fy);
  /* a fused chain: a rounding per op in half, so a few ulps */
  OK(chain(ha, hrow, hrow, &hy));
  OK(chain(fa, frow, frow, &fy));
  double *f = ts_read(fy);
  for (int i = 0; i < M * K; ++i) w[i] = h16(f[i]);
  free(f);
  expect_f16(hy, w, M * K, 4, "fused chain");
  ct_tensor_free(hy), ct_tensor_free(fy);

  /* reductions: summed in float, rounded once */
  OK(ct_sum(ha, (int[]){1}, 1, false, &hy));
  OK(ct_sum(fa, (int[]){1}, 1, false, &fy));
  f = ts_read(fy);
  for (int i = 0; i < M; ++i) w[i] = h16(f[i]);
  free(f);
  expect_f16(hy, w, M, 1, "sum");
  ct_tensor_free(hy), ct_tensor_free(fy);
  OK(ct_max(ha, (int[]){0}, 1, false, &hy));
  OK(ct_max(fa, (int[]){0}, 1, false, &fy));
  f = ts_read(fy);
  expect_f16(hy, f, K, 0, "max (exact)");
  free(f);
  ct_tensor_free(hy), ct_tensor_free(fy);

  /* matmul: products summed in float; the absolute part covers cancellation in 24 terms */
  OK(ct_matmul(ha, hb, false, false, &hy));
  OK(ct_matmul(fa, fb, false, false, &fy));
  f = ts_read(fy);
  double *g = ts_read(hy);
  cr_assert_eq(ct_tensor_dtype(hy), CT_FLOAT16);
  for (int i = 0; i < M * N; ++i)
    cr_assert(fabs(g[i] - f[i]) <= 0x1p-10 * fabs(f[i]) + 1e-3, "matmul [%d]: %.9g, wanted %.9g", i, g[i], f[i]);
  free(f), free(g);
  ct_tensor_free(hy), ct_tensor_free(fy);
  ct_tensor_free(hrow), ct_tensor_free(frow), ct_tensor_free(ha), ct_tensor_free(hb), ct_tensor_free(fa),
      ct_tensor_free(fb);
  ct_context_free(ctx);
}

/* The mixed-precision MLP's step: float32 master weights cast to float16, a float16 forward pass
 * (matmul, bias, relu, matmul), the loss in float32, a scaled loss; its gradients (float32, through
 * the casts) against the same model computed in float32, within what float16 activations allow. */
static void mlp_grads(ct_context *ctx, ct_dtype act, const ct_tensor *x32, ct_tensor *const *vars, double scale,
                      double **out) {
  ct_tape *tape = ts_tape(ctx, false, false);
  for (int i = 0; i < 3; ++i) OK(ct_tape_watch(tape, vars[i]));
  ct_tensor *x = cast(x32, act), *w1 = cast(vars[0], act), *b1 = cast(vars[1], act), *w2 = cast(vars[2], act);
  ct_tensor *h0 = NULL, *h1 = NULL, *h2 = NULL, *o = NULL, *o32 = NULL, *sq = NULL, *loss = NULL, *scaled = NULL;
  OK(ct_matmul(x, w1, false, false, &h0));
  OK(ct_add(h0, b1, &h1));
  OK(ct_relu(h1, &h2));
  OK(ct_matmul(h2, w2, false, false, &o));
  o32 = cast(o, CT_FLOAT32);
  OK(ct_square(o32, &sq));
  OK(ct_mean(sq, NULL, 0, false, &loss));
  OK(ct_mul_scalar(loss, scale, &scaled));
  ct_tensor *grads[3] = {NULL};
  OK(ct_tape_gradient(tape, &scaled, 1, vars, 3, NULL, CT_UNCONNECTED_NONE, grads));
  for (int i = 0; i < 3; ++i) {
    cr_assert_eq(ct_tensor_dtype(grads[i]), CT_FLOAT32, "the gradient of a float32 variable is float32");
    out[i] = ts_read(grads[i]);
    ct_tensor_free(grads[i]);
  }
  ct_tensor *drop[] = {x, w1, b1, w2, h0, h1, h2, o, o32, sq, loss, scaled};
  for (size_t i = 0; i < sizeof drop / sizeof *drop; ++i) ct_tensor_free(drop[i]);
  ct_tape_free(tape);
}

Test(half, mixed_precision_mlp_gradients_match_float32) {
  ct_context *ctx = ctx_with(NULL);
  enum { B = 6, I = 5, H = 8, O = 3 };
  uint64_t st = 7;
  double xv[B * I], w1v[I * H], b1v[H], w2v[H * O];
  for (int i = 0; i < B * I; ++i) xv[i] = h16((double)(ts_splitmix64(&st) % 2001) / 1000.0 - 1);
  for (int i = 0; i < I * H; ++i) w1v[i] = h16((double)(ts_splitmix64(&st) % 2001) / 2000.0 - 0.5);
  for (int i = 0; i < H; ++i) b1v[i] = h16((double)(ts_splitmix64(&st) % 2001) / 10000.0 + 0.05);
  for (int i = 0; i < H * O; ++i) w2v[i] = h16((double)(ts_splitmix64(&st) % 2001) / 2000.0 - 0.5);
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 2, (int64_t[]){B, I}, xv);
  ct_tensor *vars[3] = {ts_tensor(ctx, CT_FLOAT32, 2, (int64_t[]){I, H}, w1v), ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){H}, b1v),
                        ts_tensor(ctx, CT_FLOAT32, 2, (int64_t[]){H, O}, w2v)};
  const int64_t n[3] = {I * H, H, H * O};
  double *g32[3], *g16[3];
  /* float16 is scaled as the loss scaler would (2^10), float32 is not; the gradients compared unscaled */
  mlp_grads(ctx, CT_FLOAT32, x, vars, 1.0, g32);
  mlp_grads(ctx, CT_FLOAT16, x, vars, 1024.0, g16);
  for (int v = 0; v < 3; ++v) {
    double big = 0;
    for (int64_t i = 0; i < n[v]; ++i) big = fmax(big, fabs(g32[v][i]));
    cr_assert(big > 1e-3, "variable %d has a gradient worth comparing", v);
    for (int64_t i = 0; i < n[v]; ++i) {
      double got = g16[v][i] / 1024.0;
      /* a few float16 roundings of the activations and of the backward pass's products */
      cr_assert(fabs(got - g32[v][i]) <= 0x1p-7 * big, "variable %d [%lld]: %.9g, float32 %.9g", v, (long long)i, got,
                g32[v][i]);
    }
    free(g32[v]), free(g16[v]);
  }
  ct_tensor_free(x);
  for (int i = 0; i < 3; ++i) ct_tensor_free(vars[i]);
  ct_context_free(ctx);
}
