/* The neural-network ops (cltape_nn.h): forward results against host references in float32 and
 * float64, the backprop ops against their definitions, dropout against the host Philox
 * generator, argument errors, and the gradient checks of every new row of the op table
 * (tests/nn_gradcheck_cases.inc, also run by the table walker in tests/test_gradcheck.c). */
#include "support.h"
#include "ct_internal.h"
#include "cltape_nn.h"
#include "nn/nn_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})

static void setup(void) { CTX = ts_ctx(); }
static void teardown(void) {
  ct_context_free(CTX);
  CTX = NULL;
}

/* ---- helpers shared with nn_gradcheck_cases.inc ------------------------------------------------ */
static int64_t numel(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  return n;
}
/* ramp and shuffled: float64, float32 on a device without it (the gradient checker follows) */
static ct_tensor *ramp(int rank, const int64_t *shape, double start, double step) {
  int64_t n = numel(rank, shape);
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t k = 0; k < n; ++k) v[k] = start + step * (double)k;
  ct_tensor *t = ts_tensor(CTX, ts_best_float(CTX), rank, shape, v);
  free(v);
  return t;
}
static ct_tensor *shuffled(int rank, const int64_t *shape, double start, double step) {
  int64_t n = numel(rank, shape), m = n % 5 ? n : n + 1;
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t k = 0; k < n; ++k) v[k] = start + step * (double)((5 * k) % m);
  ct_tensor *t = ts_tensor(CTX, ts_best_float(CTX), rank, shape, v);
  free(v);
  return t;
}
static ct_tensor *ints(int rank, const int64_t *shape, const double *v) { return ts_tensor(CTX, CT_INT32, rank, shape, v); }

static void check(const char *what, ct_fn f, void *user, ct_tensor **in, int n, const ct_gradcheck_options *o) {
  ct_gradcheck_report r;
  memset(&r, 0, sizeof r);
  ct_status s = ct_gradcheck(CTX, f, user, in, n, o, &r);
  cr_expect_eq(s, CT_OK, "%s: %s: %s", what, ct_status_name(s), ct_errmsg());
  if (s == CT_OK) {
    cr_expect(r.passed, "%s: %s", what, r.message);
    cr_expect_gt(r.checked, 0, "%s: nothing checked", what);
  }
  ct_tensor_free_n(in, n);
}

#include "nn_gradcheck_cases.inc"

/* Pseudo-random host values in [-1, 1) (a fixed LCG, independent of the library). */
static void fill_values(double *v, int64_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    v[i] = (double)(s >> 8) / (double)(1u << 24) * 2.0 - 1.0;
  }
}

static ct_tensor *tensor_of(ct_dtype dt, int rank, const int64_t *shape, const double *v) {
  return ts_tensor(CTX, dt, rank, shape, v);
}

/* ---- host references ----------------------------------------------------------------------------- */
static int pad_before(int64_t in, int k, int s, bool same) {
  if (!same) return 0;
  int64_t out = (in + s - 1) / s, total = (out - 1) * s + k - in;
  return total > 0 ? (int)(total / 2) : 0;
}

static void host_conv(const nn_conv_case *k, const double *x, const double *f, double *y) {
  int64_t OH = nn_out_extent(k->h, k->kh, k->sh, k->same), OW = nn_out_extent(k->w, k->kw, k->sw, k->same);
  int pt = pad_before(k->h, k->kh, k->sh, k->same), pl = pad_before(k->w, k->kw, k->sw, k->same);
  for (int64_t n = 0; n < k->n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t o = 0; o < k->oc; ++o) {
          double acc = 0;
          for (int a = 0; a < k->kh; ++a)
            for (int b = 0; b < k->kw; ++b) {
              int64_t ih = oh * k->sh + a - pt, iw = ow * k->sw + b - pl;
              if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w) continue;
              for (int64_t c = 0; c < k->c; ++c)
                acc += x[((n * k->h + ih) * k->w + iw) * k->c + c] * f[((a * k->kw + b) * k->c + c) * k->oc + o];
            }
          y[((n * OH + oh) * OW + ow) * k->oc + o] = acc;
        }
}

/* dx[x position] += dy * f, df[filter position] += x * dy, over the same index set as host_conv */
static void host_conv_backprops(const nn_conv_case *k, const double *x, const double *f, const double *dy, double *dx,
                                double *df) {
  int64_t OH = nn_out_extent(k->h, k->kh, k->sh, k->same), OW = nn_out_extent(k->w, k->kw, k->sw, k->same);
  int pt = pad_before(k->h, k->kh, k->sh, k->same), pl = pad_before(k->w, k->kw, k->sw, k->same);
  memset(dx, 0, sizeof(double) * (size_t)(k->n * k->h * k->w * k->c));
  memset(df, 0, sizeof(double) * (size_t)(k->kh * k->kw * k->c * k->oc));
  for (int64_t n = 0; n < k->n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t o = 0; o < k->oc; ++o) {
          double d = dy[((n * OH + oh) * OW + ow) * k->oc + o];
          for (int a = 0; a < k->kh; ++a)
            for (int b = 0; b < k->kw; ++b) {
              int64_t ih = oh * k->sh + a - pt, iw = ow * k->sw + b - pl;
              if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w) continue;
              for (int64_t c = 0; c < k->c; ++c) {
                int64_t xi = ((n * k->h + ih) * k->w + iw) * k->c + c, fi = ((a * k->kw + b) * k->c + c) * k->oc + o;
                dx[xi] += d * f[fi];
                df[fi] += d * x[xi];
              }
            }
        }
}

/* Larger shapes than the gradient checks: several tiles, 16 and 24 channels, odd extents. */
static const nn_conv_case fwd_cases[] = {
    {3, 3, 1, 1, true, 3, 11, 19, 8, 16}, {5, 5, 2, 2, true, 2, 13, 12, 3, 24}, {3, 3, 1, 1, false, 2, 9, 17, 16, 8},
    {1, 1, 1, 1, true, 2, 5, 7, 5, 3},    {2, 4, 3, 2, false, 2, 10, 11, 1, 5},  {3, 3, 1, 1, true, 4, 28, 28, 1, 32},
    {3, 3, 2, 2, true, 2, 9, 10, 8, 16},  {3, 2, 2, 1, false, 1, 7, 19, 16, 8},  /* strided, vector input gradient */
    {3, 3, 1, 1, true, 2, 14, 14, 32, 32}, {5, 3, 1, 1, false, 1, 9, 30, 8, 8},  /* tiles of 7, VALID */
    {3, 3, 1, 1, true, 19, 6, 7, 16, 16}, /* a batch the CPUs' filter gradient sums in parts of 2 or more images */
    {3, 3, 2, 2, true, 2, 9, 10, 3, 16},  /* 3 channels: the filter gradient in tiles of 9 k */
};

static void conv_against_host(const nn_conv_case *k, ct_dtype dt, double tol) {
  if (dt == CT_FLOAT64 && !ts_has_fp64(CTX)) return; /* float64 is optional: float32 is checked */
  int64_t xs[4], fs[4], ys[4];
  nn_conv_shapes(k, xs, fs, ys);
  int64_t nx = numel(4, xs), nf = numel(4, fs), ny = numel(4, ys);
  double *x = malloc(sizeof(double) * (size_t)nx), *f = malloc(sizeof(double) * (size_t)nf);
  double *y = malloc(sizeof(double) * (size_t)ny), *dy = malloc(sizeof(double) * (size_t)ny);
  double *dx = malloc(sizeof(double) * (size_t)nx), *df = malloc(sizeof(double) * (size_t)nf);
  fill_values(x, nx, 1);
  fill_values(f, nf, 2);
  fill_values(dy, ny, 3);
  if (dt == CT_FLOAT32) { /* the references see the values the device sees */
    for (int64_t i = 0; i < nx; ++i) x[i] = (float)x[i];
    for (int64_t i = 0; i < nf; ++i) f[i] = (float)f[i];
    for (int64_t i = 0; i < ny; ++i) dy[i] = (float)dy[i];
  }
  host_conv(k, x, f, y);
  host_conv_backprops(k, x, f, dy, dx, df);
  ct_tensor *tx = tensor_of(dt, 4, xs, x), *tf = tensor_of(dt, 4, fs, f), *tdy = tensor_of(dt, 4, ys, dy);
  ct_tensor *ty = NULL, *tdx = NULL, *tdf = NULL;
  int st[2] = {k->sh, k->sw};
  OK(ct_conv2d(tx, tf, st, k->same ? CT_PADDING_SAME : CT_PADDING_VALID, &ty));
  char what[128];
  snprintf(what, sizeof what, "conv2d %lldx%lldx%lldx%lld * %dx%dx%lld %s", (long long)k->n, (long long)k->h,
           (long long)k->w, (long long)k->c, k->kh, k->kw, (long long)k->oc, ct_dtype_name(dt));
  ts_assert_shape(ty, 4, ys, what);
  ts_assert_close(ty, y, ny, tol, tol, what);
  /* the backprops through the tape */
  ct_tape *tape;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_tape_watch(tape, tx));
  OK(ct_tape_watch(tape, tf));
  ct_tensor *y2 = NULL;
  OK(ct_conv2d(tx, tf, st, k->same ? CT_PADDING_SAME : CT_PADDING_VALID, &y2));
  OK(ct_tape_end(tape));
  ct_tensor *src[2] = {tx, tf}, *g[2] = {NULL, NULL};
  OK(ct_tape_gradient(tape, &y2, 1, src, 2, &tdy, CT_UNCONNECTED_NONE, g));
  tdx = g[0];
  tdf = g[1];
  char w2[160];
  snprintf(w2, sizeof w2, "%s: input gradient", what);
  ts_assert_close(tdx, dx, nx, tol, tol, w2);
  snprintf(w2, sizeof w2, "%s: filter gradient", what);
  ts_assert_close(tdf, df, nf, tol * 4, tol, w2);
  ct_tensor *all[] = {tx, tf, tdy, ty, tdx, tdf, y2};
  ct_tensor_free_n(all, 7);
  ct_tape_free(tape);
  free(x), free(f), free(y), free(dy), free(dx), free(df);
}

Test(nn_ops, conv2d_matches_host, .init = setup, .fini = teardown, .timeout = 300) {
  for (size_t i = 0; i < sizeof fwd_cases / sizeof *fwd_cases; ++i) {
    conv_against_host(&fwd_cases[i], CT_FLOAT32, 2e-4);
    conv_against_host(&fwd_cases[i], CT_FLOAT64, 1e-10);
  }
  for (int i = 0; i < NN_N_CONV; ++i)
    conv_against_host(&nn_conv_cases[i], ts_best_float(CTX), ts_has_fp64(CTX) ? 1e-10 : 2e-4);
}

/* ---- pooling --------------------------------------------------------------------------------- */
static void host_pool(const nn_pool_case *k, const double *x, bool max, double *y, int64_t *arg) {
  int64_t OH = nn_out_extent(k->h, k->kh, k->sh, k->same), OW = nn_out_extent(k->w, k->kw, k->sw, k->same);
  int pt = pad_before(k->h, k->kh, k->sh, k->same), pl = pad_before(k->w, k->kw, k->sw, k->same);
  for (int64_t n = 0; n < k->n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < k->c; ++c) {
          double best = 0, sum = 0;
          int64_t bi = -1, cnt = 0;
          for (int a = 0; a < k->kh; ++a)
            for (int b = 0; b < k->kw; ++b) {
              int64_t ih = oh * k->sh + a - pt, iw = ow * k->sw + b - pl;
              if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w) continue;
              int64_t xi = ((n * k->h + ih) * k->w + iw) * k->c + c;
              if (bi < 0 || x[xi] > best) {
                best = x[xi];
                bi = xi;
              }
              sum += x[xi];
              cnt++;
            }
          int64_t yi = ((n * OH + oh) * OW + ow) * k->c + c;
          y[yi] = max ? best : sum / (double)cnt;
          if (arg) arg[yi] = bi;
        }
}

static void pool_against_host(const nn_pool_case *k, ct_dtype dt, bool with_ties) {
  if (dt == CT_FLOAT64 && !ts_has_fp64(CTX)) return; /* float64 is optional: float32 is checked */
  int64_t xs[4], ys[4];
  nn_pool_shapes(k, xs, ys);
  int64_t nx = numel(4, xs), ny = numel(4, ys);
  double *x = malloc(sizeof(double) * (size_t)nx), *y = malloc(sizeof(double) * (size_t)ny);
  double *dy = malloc(sizeof(double) * (size_t)ny), *dx = calloc((size_t)nx, sizeof(double));
  int64_t *arg = malloc(sizeof(int64_t) * (size_t)ny);
  fill_values(x, nx, 5);
  if (with_ties)
    for (int64_t i = 0; i < nx; ++i) x[i] = floor(x[i] * 2); /* many equal values: first maximum wins */
  fill_values(dy, ny, 6);
  for (int64_t i = 0; i < nx; ++i) x[i] = (float)x[i];
  for (int64_t i = 0; i < ny; ++i) dy[i] = (float)dy[i];
  char what[128];
  for (int max = 0; max < 2; ++max) {
    host_pool(k, x, max, y, arg);
    ct_tensor *tx = tensor_of(dt, 4, xs, x), *tdy = tensor_of(dt, 4, ys, dy), *ty = NULL;
    int win[2] = {k->kh, k->kw}, st[2] = {k->sh, k->sw};
    ct_padding p = k->same ? CT_PADDING_SAME : CT_PADDING_VALID;
    ct_tape *tape;
    OK(ct_tape_begin(CTX, NULL, &tape));
    OK(ct_tape_watch(tape, tx));
    OK(max ? ct_max_pool2d(tx, win, st, p, &ty) : ct_avg_pool2d(tx, win, st, p, &ty));
    OK(ct_tape_end(tape));
    snprintf(what, sizeof what, "%s pool %dx%d/%dx%d %s c=%lld %s%s", max ? "max" : "avg", k->kh, k->kw, k->sh, k->sw,
             k->same ? "same" : "valid", (long long)k->c, ct_dtype_name(dt), with_ties ? " with ties" : "");
    ts_assert_shape(ty, 4, ys, what);
    ts_assert_close(ty, y, ny, 1e-6, 1e-6, what);
    ct_tensor *g = NULL;
    OK(ct_tape_gradient(tape, &ty, 1, &tx, 1, &tdy, CT_UNCONNECTED_NONE, &g));
    /* reference gradient: to the first maximum, or spread over the valid part of the window */
    memset(dx, 0, sizeof(double) * (size_t)nx);
    int64_t OH = ys[1], OW = ys[2];
    int pt = pad_before(k->h, k->kh, k->sh, k->same), pl = pad_before(k->w, k->kw, k->sw, k->same);
    for (int64_t n = 0; n < k->n; ++n)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t c = 0; c < k->c; ++c) {
            int64_t yi = ((n * OH + oh) * OW + ow) * k->c + c;
            if (max) {
              dx[arg[yi]] += dy[yi];
              continue;
            }
            int cnt = 0;
            for (int pass = 0; pass < 2; ++pass)
              for (int a = 0; a < k->kh; ++a)
                for (int b = 0; b < k->kw; ++b) {
                  int64_t ih = oh * k->sh + a - pt, iw = ow * k->sw + b - pl;
                  if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w) continue;
                  if (pass == 0) cnt++;
                  else dx[((n * k->h + ih) * k->w + iw) * k->c + c] += dy[yi] / cnt;
                }
          }
    strncat(what, ": gradient", sizeof what - strlen(what) - 1);
    ts_assert_close(g, dx, nx, 1e-6, 1e-6, what);
    ct_tensor *all[] = {tx, tdy, ty, g};
    ct_tensor_free_n(all, 4);
    ct_tape_free(tape);
  }
  free(x), free(y), free(dy), free(dx), free(arg);
}

Test(nn_ops, pooling_matches_host, .init = setup, .fini = teardown) {
  static const nn_pool_case more[] = {
      {2, 2, 2, 2, false, 2, 28, 28, 16}, {3, 3, 1, 1, true, 1, 7, 9, 8}, {2, 3, 3, 2, false, 2, 8, 9, 5},
      {3, 3, 2, 2, false, 1, 7, 7, 24},
      {2, 2, 2, 2, false, 2, 5, 7, 8},  /* disjoint windows with a row and a column left over */
      {3, 3, 3, 3, false, 1, 7, 6, 16}, /* disjoint 3x3 windows, a row left over */
  };
  for (int i = 0; i < NN_N_POOL; ++i)
    for (int ties = 0; ties < 2; ++ties) {
      pool_against_host(&nn_pool_cases[i], CT_FLOAT32, ties);
      pool_against_host(&nn_pool_cases[i], CT_FLOAT64, ties);
    }
  for (size_t i = 0; i < sizeof more / sizeof *more; ++i) {
    pool_against_host(&more[i], CT_FLOAT32, false);
    pool_against_host(&more[i], CT_FLOAT32, true);
  }
}

/* ---- dropout ------------------------------------------------------------------------------------ */
/* Philox-4x32-10 as documented in cltape_nn.h (counter = element index, key = seed). */
static uint32_t philox_word0(uint64_t seed, uint32_t index) {
  uint32_t c0 = index, c1 = 0, c2 = 0, c3 = 0, k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = (uint32_t)p1;
    c2 = n2;
    c3 = (uint32_t)p0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c0;
}

Test(nn_ops, dropout_is_seeded_and_matches_the_host_generator, .init = setup, .fini = teardown) {
  const int64_t n = 4096;
  double *v = malloc(sizeof(double) * n), *want = malloc(sizeof(double) * n);
  fill_values(v, n, 9);
  ct_dtype dts[2] = {CT_FLOAT32, CT_FLOAT64};
  for (int d = 0; d < (ts_has_fp64(CTX) ? 2 : 1); ++d) { /* float64 where the device has it */
    ct_tensor *x = tensor_of(dts[d], 2, SH(64, 64), v);
    const double rates[] = {0.0, 0.25, 0.5, 0.8};
    for (int r = 0; r < 4; ++r) {
      double rate = rates[r];
      uint64_t seed = 0x123456789abcdefULL + (uint64_t)r;
      uint32_t thr = (uint32_t)(rate * 4294967296.0);
      int64_t kept = 0;
      for (int64_t i = 0; i < n; ++i) {
        bool keep = philox_word0(seed, (uint32_t)i) >= thr;
        kept += keep;
        double xi = dts[d] == CT_FLOAT32 ? (double)(float)v[i] : v[i];
        want[i] = keep ? xi / (1 - rate) : 0;
      }
      ct_tensor *y = NULL, *y2 = NULL, *y3 = NULL;
      OK(ct_dropout(x, rate, seed, &y));
      ts_assert_close(y, want, n, 1e-6, 1e-6, "dropout against the host generator");
      /* the fraction kept is close to 1 - rate */
      cr_assert(fabs((double)kept / n - (1 - rate)) < 0.03, "rate %g: kept %lld of %lld", rate, (long long)kept,
                (long long)n);
      /* same seed, same mask; another seed, another mask */
      OK(ct_dropout(x, rate, seed, &y2));
      double *a = ts_read(y), *b = ts_read(y2);
      cr_assert(memcmp(a, b, sizeof(double) * n) == 0, "same seed gave another mask");
      free(b);
      OK(ct_dropout(x, rate, seed + 1000, &y3));
      b = ts_read(y3);
      int64_t differ = 0;
      for (int64_t i = 0; i < n; ++i) differ += a[i] != b[i];
      if (rate > 0) cr_assert_gt(differ, n / 10, "another seed gave nearly the same mask");
      else cr_assert_eq(differ, 0);
      free(a), free(b);
      ct_tensor_free(y), ct_tensor_free(y2), ct_tensor_free(y3);
    }
    /* the gradient applies the same mask */
    ct_tape *tape;
    ct_tensor *y = NULL, *g = NULL;
    OK(ct_tape_begin(CTX, NULL, &tape));
    OK(ct_tape_watch(tape, x));
    OK(ct_dropout(x, 0.5, 77, &y));
    OK(ct_tape_end(tape));
    OK(ct_tape_gradient1(tape, y, x, &g));
    double *yv = ts_read(y), *gv = ts_read(g);
    for (int64_t i = 0; i < n; ++i) {
      bool keep = philox_word0(77, (uint32_t)i) >= 2147483648u;
      cr_assert_eq(gv[i], keep ? 2.0 : 0.0, "gradient element %lld", (long long)i);
      if (!keep) cr_assert_eq(yv[i], 0.0);
    }
    free(yv), free(gv);
    ct_tensor_free(y), ct_tensor_free(g), ct_tensor_free(x);
    ct_tape_free(tape);
  }
  ct_tensor *x = tensor_of(CT_FLOAT32, 1, SH(4), v), *y = NULL;
  EXPECT_STATUS(ct_dropout(x, 1.0, 1, &y), CT_ERR_INVALID);
  EXPECT_STATUS(ct_dropout(x, -0.1, 1, &y), CT_ERR_INVALID);
  EXPECT_STATUS(ct_dropout(x, NAN, 1, &y), CT_ERR_INVALID);
  ct_tensor_free(x);
  free(v), free(want);
}

/* ---- softmax cross-entropy, bias ---------------------------------------------------------------- */
Test(nn_ops, softmax_cross_entropy_matches_host_and_is_stable, .init = setup, .fini = teardown) {
  const int R = 6, C = 7;
  double z[42], lab[6] = {0, 6, 3, 3, 1, 5}, want[6], gwant[42], dy[6] = {1, -0.5, 2, 0.25, 1, 3};
  fill_values(z, R * C, 11);
  for (int i = 0; i < R * C; ++i) z[i] = (float)(z[i] * 5);
  z[5 * C + 2] = 80.0; /* large logits must not overflow */
  z[5 * C + 3] = -90.0;
  for (int r = 0; r < R; ++r) {
    double m = -INFINITY, s = 0;
    for (int k = 0; k < C; ++k) m = fmax(m, z[r * C + k]);
    for (int k = 0; k < C; ++k) s += exp(z[r * C + k] - m);
    want[r] = m + log(s) - z[r * C + (int)lab[r]];
    for (int k = 0; k < C; ++k) gwant[r * C + k] = dy[r] * (exp(z[r * C + k] - m) / s - (k == (int)lab[r]));
  }
  ct_dtype dts[2] = {CT_FLOAT32, CT_FLOAT64};
  for (int d = 0; d < (ts_has_fp64(CTX) ? 2 : 1); ++d) { /* float64 where the device has it */
    double tol = dts[d] == CT_FLOAT32 ? 2e-5 : 1e-12;
    ct_tensor *lg = tensor_of(dts[d], 2, SH(6, 7), z), *lb = ints(1, SH(6), lab), *tdy = tensor_of(dts[d], 1, SH(6), dy);
    ct_tensor *l = NULL, *mean = NULL, *g = NULL;
    ct_tape *tape;
    OK(ct_tape_begin(CTX, NULL, &tape));
    OK(ct_tape_watch(tape, lg));
    OK(ct_sparse_softmax_cross_entropy(lg, lb, &l));
    OK(ct_tape_end(tape));
    ts_assert_shape(l, 1, SH(6), "per-example loss");
    ts_assert_close(l, want, R, tol, tol, "softmax cross-entropy");
    OK(ct_tape_gradient(tape, &l, 1, &lg, 1, &tdy, CT_UNCONNECTED_NONE, &g));
    ts_assert_close(g, gwant, R * C, tol, tol, "softmax cross-entropy gradient");
    OK(ct_softmax_cross_entropy(lg, lb, &mean));
    double mw = 0;
    for (int r = 0; r < R; ++r) mw += want[r] / R;
    cr_assert_float_eq(ts_item(mean), mw, tol * 10);
    ct_tensor *all[] = {lg, lb, tdy, l, mean, g};
    ct_tensor_free_n(all, 6);
    ct_tape_free(tape);
  }
  /* a label outside [0, C) gives NaN for its example only */
  ct_tensor *lg = tensor_of(CT_FLOAT32, 2, SH(2, 3), z), *bad = ints(1, SH(2), (const double[]){3, 1}), *l = NULL;
  OK(ct_sparse_softmax_cross_entropy(lg, bad, &l));
  double *lv = ts_read(l);
  cr_assert(isnan(lv[0]) && isfinite(lv[1]), "%g %g", lv[0], lv[1]);
  free(lv);
  ct_tensor_free(l);
  /* argument errors */
  ct_tensor *fl = tensor_of(CT_FLOAT32, 1, SH(2), lab), *wrong = ints(1, SH(3), lab);
  EXPECT_STATUS(ct_sparse_softmax_cross_entropy(lg, fl, &l), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_sparse_softmax_cross_entropy(lg, wrong, &l), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_sparse_softmax_cross_entropy(bad, bad, &l), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_sparse_softmax_cross_entropy(lg, NULL, &l), CT_ERR_NULL);
  ct_tensor *all[] = {lg, bad, fl, wrong};
  ct_tensor_free_n(all, 4);
}

Test(nn_ops, bias_add_matches_host, .init = setup, .fini = teardown) {
  const int64_t M = 300, C = 5;
  double *x = malloc(sizeof(double) * M * C), *want = malloc(sizeof(double) * M * C), b[5], gb[5] = {0};
  fill_values(x, M * C, 21);
  fill_values(b, C, 22);
  for (int64_t i = 0; i < M * C; ++i) {
    x[i] = (float)x[i];
    want[i] = x[i] + (double)(float)b[i % C];
    gb[i % C] += x[i];
  }
  ct_tensor *tx = tensor_of(CT_FLOAT32, 3, SH(3, 100, 5), x), *tb = tensor_of(CT_FLOAT32, 1, SH(5), b), *y = NULL;
  ct_tape *tape;
  OK(ct_tape_begin(CTX, NULL, &tape));
  OK(ct_tape_watch(tape, tb));
  OK(ct_bias_add(tx, tb, &y));
  OK(ct_tape_end(tape));
  ts_assert_close(y, want, M * C, 1e-6, 1e-6, "bias_add");
  ct_tensor *g = NULL;
  OK(ct_tape_gradient(tape, &y, 1, &tb, 1, &tx, CT_UNCONNECTED_NONE, &g)); /* output gradient = x */
  ts_assert_close(g, gb, C, 1e-4, 1e-5, "bias gradient: sum over the other axes");
  ct_tensor *b4 = tensor_of(CT_FLOAT32, 1, SH(4), b), *bi = ints(1, SH(5), b), *y2 = NULL;
  EXPECT_STATUS(ct_bias_add(tx, b4, &y2), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_bias_add(tx, bi, &y2), CT_ERR_DTYPE);
  ct_tensor *all[] = {tx, tb, y, g, b4, bi};
  ct_tensor_free_n(all, 6);
  ct_tape_free(tape);
  free(x), free(want);
}

/* ---- argument errors ------------------------------------------------------------------------------ */
Test(nn_ops, bad_arguments_are_reported, .init = setup, .fini = teardown) {
  ct_tensor *x = ramp(4, SH(1, 4, 4, 2), 0, 0.1), *f = ramp(4, SH(3, 3, 2, 4), 0, 0.1), *y = NULL;
  ct_tensor *f3 = ramp(4, SH(3, 3, 3, 4), 0, 0.1), *x3 = ramp(3, SH(4, 4, 2), 0, 0.1), *big = ramp(4, SH(5, 5, 2, 1), 0, 1);
  ct_tensor *x32 = NULL, *xi = NULL;
  OK(ct_cast(x, CT_FLOAT32, &x32));
  OK(ct_cast(x, CT_INT32, &xi));
  int bad_stride[2] = {0, 1}, win[2] = {2, 2}, bad_win[2] = {2, 0};
  EXPECT_STATUS(ct_conv2d(x, f3, NULL, CT_PADDING_SAME, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_conv2d(x3, f, NULL, CT_PADDING_SAME, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_conv2d(x, x3, NULL, CT_PADDING_SAME, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_conv2d(x, big, NULL, CT_PADDING_VALID, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_conv2d(x, f, bad_stride, CT_PADDING_SAME, &y), CT_ERR_INVALID);
  EXPECT_STATUS(ct_conv2d(x, f, NULL, (ct_padding)7, &y), CT_ERR_INVALID);
  if (ts_has_fp64(CTX)) EXPECT_STATUS(ct_conv2d(x32, f, NULL, CT_PADDING_SAME, &y), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_conv2d(xi, xi, NULL, CT_PADDING_SAME, &y), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_conv2d(NULL, f, NULL, CT_PADDING_SAME, &y), CT_ERR_NULL);
  EXPECT_STATUS(ct_conv2d(x, f, NULL, CT_PADDING_SAME, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_max_pool2d(x, bad_win, NULL, CT_PADDING_VALID, &y), CT_ERR_INVALID);
  EXPECT_STATUS(ct_max_pool2d(x, NULL, NULL, CT_PADDING_VALID, &y), CT_ERR_NULL);
  EXPECT_STATUS(ct_max_pool2d(x3, win, NULL, CT_PADDING_VALID, &y), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_avg_pool2d(xi, win, NULL, CT_PADDING_VALID, &y), CT_ERR_DTYPE);
  int huge[2] = {5, 5};
  EXPECT_STATUS(ct_avg_pool2d(x, huge, NULL, CT_PADDING_VALID, &y), CT_ERR_SHAPE);
  cr_assert_null(y);
  /* SAME with a window larger than the image is fine */
  OK(ct_avg_pool2d(x, huge, NULL, CT_PADDING_SAME, &y));
  ts_assert_shape(y, 4, SH(1, 1, 1, 2), "5x5 SAME pool of 4x4");
  ct_tensor *all[] = {x, f, y, f3, x3, big, x32, xi};
  ct_tensor_free_n(all, 8);
}

/* ---- gradient checks (float64) ------------------------------------------------------------------- */
/* Conv2DBackpropFilterBias (no gradient by design: ct__grad_conv2d_bias runs it where no tape
 * records the gradient; tests/test_gradcheck.c checks it has none): [df flattened, db] is
 * Conv2DBackpropFilter's df followed by BiasAddGrad's db, for every convolution case of the
 * gradient checks (the vector ones from one launch, the others as the two ops), in the best float
 * and in float32 with 16 and 32 output channels (the 16-channel blocks of CPUs with 512-bit
 * vectors); the op is not recorded. */
static void nn_filter_bias_matches(const char *what, const nn_conv_case *k, ct_dtype dt) {
  int64_t xs[4], fs[4], ys[4];
  nn_conv_shapes(k, xs, fs, ys);
  ct_tensor *x64 = ramp(4, xs, 0.3, 0.009), *dy64 = ramp(4, ys, -0.6, 0.019), *x = NULL, *dy = NULL;
  ct_tensor *packed = NULL, *df = NULL, *db = NULL;
  ct_tape *t = NULL;
  OK(ct_cast(x64, dt, &x));
  OK(ct_cast(dy64, dt, &dy));
  ct_attrs at = nn_conv_attrs(k), none = ct__attrs(CT_AT_NONE);
  at.window.rank = 4;
  memcpy(at.window.shape, fs, sizeof fs);
  const ct_tensor *args[2] = {x, dy}, *d1[1] = {dy};
  OK(ct_tape_begin(CTX, NULL, &t));
  OK(ct_tape_watch(t, x));
  OK(ct__run(CT_OP_CONV2D_BP_FILTER_BIAS, args, 2, &at, &packed));
  OK(ct_tape_end(t));
  cr_expect_eq(ct_tape_size(t), 0, "%s was recorded", what);
  OK(ct__run(CT_OP_CONV2D_BP_FILTER, args, 2, &at, &df));
  OK(ct__run(CT_OP_BIAS_ADD_GRAD, d1, 1, &none, &db));
  int64_t nf = ct_tensor_size(df), oc = ct_tensor_size(db);
  cr_assert_eq(ct_tensor_size(packed), nf + oc, "%s: %lld elements", what, (long long)ct_tensor_size(packed));
  double *got = malloc(sizeof(double) * (size_t)(nf + oc)), *want = malloc(sizeof(double) * (size_t)(nf + oc));
  cr_assert(got && want);
  OK(ct_tensor_read_f64(packed, got, nf + oc));
  OK(ct_tensor_read_f64(df, want, nf));
  OK(ct_tensor_read_f64(db, want + nf, oc));
  double tol = dt == CT_FLOAT32 ? 2e-5 : 1e-12; /* the same sums in another order */
  for (int64_t i = 0; i < nf + oc; ++i)
    cr_expect_leq(fabs(got[i] - want[i]), tol * (1 + fabs(want[i])), "%s: %s %lld: %.17g, want %.17g", what,
                  i < nf ? "df" : "db", (long long)(i < nf ? i : i - nf), got[i], want[i]);
  free(got);
  free(want);
  ct_tape_free(t);
  ct_tensor *all[] = {x64, dy64, x, dy, packed, df, db};
  ct_tensor_free_n(all, 7);
}
Test(nn_ops, filter_and_bias_gradients_from_one_launch, .init = setup, .fini = teardown) {
  const char *op = "Conv2DBackpropFilterBias";
  static const nn_conv_case wide[] = {
      {3, 3, 1, 1, true, 3, 5, 6, 8, 16},   /* SAME: the filter gradient reads the padding itself */
      {3, 3, 2, 2, false, 2, 7, 9, 3, 32}, /* VALID, stride 2, the input padded by the host */
  };
  char what[80];
  for (int i = 0; i < NN_N_CONV; ++i) {
    snprintf(what, sizeof what, "%s case %d", op, i);
    nn_filter_bias_matches(what, &nn_conv_cases[i], ts_best_float(CTX));
  }
  for (size_t i = 0; i < sizeof wide / sizeof *wide; ++i) {
    snprintf(what, sizeof what, "%s float32 case %zu", op, i);
    nn_filter_bias_matches(what, &wide[i], CT_FLOAT32);
  }
}

static const struct {
  const char *op;
  void (*fn)(const char *op);
} nn_cases[] = {NN_GRADCHECK_CASES};

Test(nn_ops, gradient_checks_of_every_new_op, .init = setup, .fini = teardown, .timeout = 600) {
  size_t n = sizeof nn_cases / sizeof *nn_cases;
  /* every row from Conv2D to BiasAddGrad (the neural-network rows) has a case here */
  int first = -1, last = -1;
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    if (strcmp(ct_ops[i].name, "Conv2D") == 0) first = i;
    if (strcmp(ct_ops[i].name, "BiasAddGrad") == 0) last = i;
  }
  cr_assert(first >= 0 && last > first);
  for (int i = first; i <= last; ++i) {
    bool found = false;
    for (size_t k = 0; k < n; ++k) found |= strcmp(nn_cases[k].op, ct_ops[i].name) == 0;
    cr_expect(found, "op %s has no gradient check", ct_ops[i].name);
  }
  for (size_t k = 0; k < n; ++k) nn_cases[k].fn(nn_cases[k].op);
}

/* ---- the ReLU mask in MaxPool's gradient (lib/tape.c, relu_mask_of) ----------------------------- */
static uint64_t kernels_so_far(void) {
  ct_context_stats st;
  OK(ct_context_stats_get(CTX, &st));
  return st.kernels_launched;
}

/* The gradient of maxpool(relu(x)) (relu as Relu, or as Conv2DBiasRelu with a 1x1 identity filter
 * and a zero bias): with x alone asked for, MaxPool's gradient applies ReLU's mask and ReLU's
 * gradient passes it on (one kernel fewer); with the ReLU's output asked for as well, that output
 * gets the unmasked gradient. Both against the host, on values with many windows whose maximum
 * is 0 (where the two differ). */
static void relu_pool_case(const nn_pool_case *k, bool conv) {
  int64_t xs[4], ys[4];
  nn_pool_shapes(k, xs, ys);
  int64_t nx = numel(4, xs), ny = numel(4, ys), C = k->c;
  double *x = malloc(sizeof(double) * (size_t)nx), *r = calloc((size_t)nx, sizeof(double));
  double *dy = malloc(sizeof(double) * (size_t)ny), *y = malloc(sizeof(double) * (size_t)ny);
  double *dr = calloc((size_t)nx, sizeof(double)), *dz = malloc(sizeof(double) * (size_t)nx);
  double *db = calloc((size_t)C, sizeof(double)), *fv = calloc((size_t)(C * C), sizeof(double));
  double *zero = calloc((size_t)C, sizeof(double));
  int64_t *arg = malloc(sizeof(int64_t) * (size_t)ny);
  fill_values(x, nx, 11);
  for (int64_t i = 0; i < nx; ++i) x[i] = floor(x[i] * 2); /* -2, -1, 0, 1: many windows of zeros after ReLU */
  fill_values(dy, ny, 12);
  for (int64_t i = 0; i < ny; ++i) dy[i] = (float)dy[i];
  for (int64_t i = 0; i < nx; ++i) r[i] = x[i] > 0 ? x[i] : 0;
  host_pool(k, r, true, y, arg);
  for (int64_t i = 0; i < ny; ++i) dr[arg[i]] += dy[i];
  int64_t differ = 0;
  for (int64_t i = 0; i < nx; ++i) {
    dz[i] = x[i] > 0 ? dr[i] : 0;
    db[i % C] += dz[i];
    differ += dr[i] != 0 && dz[i] == 0;
  }
  cr_assert_gt(differ, 0, "the case has windows whose maximum is 0");
  for (int64_t c = 0; c < C; ++c) fv[c * C + c] = 1;
  char what[160];
  snprintf(what, sizeof what, "relu (%s) then max pool %dx%d/%dx%d %s c=%lld", conv ? "Conv2DBiasRelu" : "Relu", k->kh,
           k->kw, k->sh, k->sw, k->same ? "same" : "valid", (long long)C);
  int64_t fs[4] = {1, 1, C, C}, bs = C;
  uint64_t launched[2];
  for (int both = 0; both < 2; ++both) {
    ct_tensor *tx = ts_tensor(CTX, CT_FLOAT32, 4, xs, x), *tdy = ts_tensor(CTX, CT_FLOAT32, 4, ys, dy);
    ct_tensor *tf = ts_tensor(CTX, CT_FLOAT32, 4, fs, fv), *tb = ts_tensor(CTX, CT_FLOAT32, 1, &bs, zero);
    ct_tensor *tr = NULL, *ty = NULL, *g[3] = {0};
    int win[2] = {k->kh, k->kw}, st[2] = {k->sh, k->sw}, one[2] = {1, 1};
    ct_tape *tape;
    OK(ct_tape_begin(CTX, NULL, &tape));
    OK(ct_tape_watch(tape, tx));
    OK(ct_tape_watch(tape, tb));
    OK(conv ? ct__conv2d_bias_act(tx, tf, tb, one, CT_PADDING_VALID, true, &tr) : ct_relu(tx, &tr));
    OK(ct_max_pool2d(tr, win, st, k->same ? CT_PADDING_SAME : CT_PADDING_VALID, &ty));
    OK(ct_tape_end(tape));
    OK(ct_context_sync(CTX));
    ct_tensor *src[3] = {tx, conv ? tb : tr, tr};
    int ns = conv ? 2 + both : 1 + both;
    uint64_t before = kernels_so_far();
    OK(ct_tape_gradient(tape, &ty, 1, src, ns, &tdy, CT_UNCONNECTED_NONE, g));
    for (int i = 0; i < ns; ++i) OK(ct__lazy_compute(g[i]));
    launched[both] = kernels_so_far() - before;
    char w2[320];
    snprintf(w2, sizeof w2, "%s%s: gradient of x", what, both ? " (and of relu's output)" : "");
    ts_assert_close(g[0], dz, nx, 1e-6, 1e-6, w2);
    if (conv) {
      snprintf(w2, sizeof w2, "%s%s: gradient of the bias", what, both ? " (and of relu's output)" : "");
      ts_assert_close(g[1], db, C, 1e-5, 1e-5, w2);
    }
    if (both) {
      snprintf(w2, sizeof w2, "%s: gradient of relu's output", what);
      ts_assert_close(g[ns - 1], dr, nx, 1e-6, 1e-6, w2);
    }
    ct_tensor *all[] = {tx, tdy, tf, tb, tr, ty, g[0], g[1], g[2]};
    ct_tensor_free_n(all, 9);
    ct_tape_free(tape);
  }
  cr_expect_lt(launched[0], launched[1], "%s: %llu kernels with the mask in MaxPool's gradient, %llu without", what,
               (unsigned long long)launched[0], (unsigned long long)launched[1]);
  free(x), free(r), free(dy), free(y), free(dr), free(dz), free(db), free(fv), free(zero), free(arg);
}

/* MaxPoolGrad and MaxPoolGradGrad with the mask stay each other's adjoints:
 * <MaxPoolGrad(x, dy), gx> = <dy, MaxPoolGradGrad(x, gx)>, both masked, against the host. */
static void masked_adjoint_case(const nn_pool_case *k) {
  int64_t xs[4], ys[4];
  nn_pool_shapes(k, xs, ys);
  int64_t nx = numel(4, xs), ny = numel(4, ys);
  double *x = malloc(sizeof(double) * (size_t)nx), *gx = malloc(sizeof(double) * (size_t)nx);
  double *dy = malloc(sizeof(double) * (size_t)ny), *y = malloc(sizeof(double) * (size_t)ny);
  double *want_dx = calloc((size_t)nx, sizeof(double)), *want_gg = malloc(sizeof(double) * (size_t)ny);
  int64_t *arg = malloc(sizeof(int64_t) * (size_t)ny);
  fill_values(x, nx, 21);
  for (int64_t i = 0; i < nx; ++i) x[i] = x[i] > 0 ? floor(x[i] * 3) : 0; /* 0, 1, 2: ReLU-like */
  fill_values(gx, nx, 22);
  fill_values(dy, ny, 23);
  for (int64_t i = 0; i < nx; ++i) gx[i] = (float)gx[i];
  for (int64_t i = 0; i < ny; ++i) dy[i] = (float)dy[i];
  host_pool(k, x, true, y, arg);
  for (int64_t i = 0; i < ny; ++i) {
    double sgn = x[arg[i]] > 0 ? 1 : 0;
    want_dx[arg[i]] += dy[i] * sgn;
    want_gg[i] = gx[arg[i]] * sgn;
  }
  ct_tensor *tx = ts_tensor(CTX, CT_FLOAT32, 4, xs, x), *tdy = ts_tensor(CTX, CT_FLOAT32, 4, ys, dy);
  ct_tensor *tgx = ts_tensor(CTX, CT_FLOAT32, 4, xs, gx), *dx = NULL, *gg = NULL;
  ct_attrs at = nn_pool_attrs(k);
  at.window.relu_mask = true;
  const ct_tensor *a1[2] = {tx, tdy}, *a2[2] = {tx, tgx};
  OK(ct__run(CT_OP_MAXPOOL_GRAD, a1, 2, &at, &dx));
  OK(ct__run(CT_OP_MAXPOOL_GRADGRAD, a2, 2, &at, &gg));
  char what[128];
  snprintf(what, sizeof what, "masked max-pool gradients %dx%d/%dx%d %s c=%lld", k->kh, k->kw, k->sh, k->sw,
           k->same ? "same" : "valid", (long long)k->c);
  ts_assert_close(dx, want_dx, nx, 1e-6, 1e-6, what);
  ts_assert_close(gg, want_gg, ny, 1e-6, 1e-6, what);
  ct_tensor *all[] = {tx, tdy, tgx, dx, gg};
  ct_tensor_free_n(all, 5);
  free(x), free(gx), free(dy), free(y), free(want_dx), free(want_gg), free(arg);
}

Test(nn_ops, relu_mask_in_max_pool_gradient, .init = setup, .fini = teardown, .timeout = 300) {
  static const nn_pool_case cases[] = {
      {2, 2, 2, 2, false, 2, 6, 6, 16}, /* disjoint windows, vector kernel */
      {2, 2, 2, 2, false, 1, 5, 7, 8},  /* disjoint, a row and a column left over */
      {3, 3, 1, 1, true, 1, 7, 9, 8},   /* overlapping windows, vector kernel */
      {3, 3, 2, 2, false, 2, 7, 7, 5},  /* scalar kernel */
      {3, 3, 2, 2, true, 1, 6, 5, 6},   /* scalar kernel, padded */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
    relu_pool_case(&cases[i], false);
    relu_pool_case(&cases[i], true);
    masked_adjoint_case(&cases[i]);
  }
}

/* A window with a NaN pools to NaN wherever the NaN sits in it (as the max reduction), on the
 * per-channel kernels (C = 3) and the vectorised ones (C = 8); its gradient goes to the NaN. */
Test(nn_ops, max_pool_propagates_nan, .init = setup, .fini = teardown) {
  const int64_t cs[] = {3, 8};
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64};
  ct_device_info info;
  OK(ct_context_device(CTX, &info));
  for (int di = 0; di < (info.fp64 ? 2 : 1); ++di)
    for (int ci = 0; ci < 2; ++ci) {
      int64_t C = cs[ci];
      double v[4 * 8], want[8], gwant[4 * 8];
      for (int64_t c = 0; c < C; ++c) {
        for (int p = 0; p < 4; ++p) v[p * C + c] = (double)(p + 1) * (c % 2 ? 1 : -1) + 0.5 * (double)c;
        int at = (int)(c % 5); /* 0..3: the NaN's position in the 2x2 window; 4: no NaN */
        if (at < 4) v[at * C + c] = NAN;
        double m = -INFINITY;
        int arg = 0;
        for (int p = 0; p < 4; ++p)
          if (v[p * C + c] > m) m = v[p * C + c], arg = p;
        want[c] = at < 4 ? NAN : m;
        for (int p = 0; p < 4; ++p) gwant[p * C + c] = p == (at < 4 ? at : arg) ? 1 : 0;
      }
      ct_tensor *x = ts_tensor(CTX, dts[di], 4, SH(1, 2, 2, C), v), *y = NULL, *g = NULL;
      ct_tape *tape = NULL;
      OK(ct_tape_begin(CTX, NULL, &tape));
      OK(ct_tape_watch(tape, x));
      OK(ct_max_pool2d(x, (const int[]){2, 2}, NULL, CT_PADDING_VALID, &y));
      OK(ct_tape_end(tape));
      char what[64];
      snprintf(what, sizeof what, "%s max pool, C = %lld", ct_dtype_name(dts[di]), (long long)C);
      ts_assert_close(y, want, C, 0, 0, what);
      OK(ct_tape_gradient(tape, &y, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, &g));
      ts_assert_close(g, gwant, 4 * C, 0, 0, what);
      ct_tape_free(tape);
      ct_tensor_free_n((ct_tensor *[]){y, g}, 2);
      /* average pooling: NaN where the window holds one */
      OK(ct_avg_pool2d(x, (const int[]){2, 2}, NULL, CT_PADDING_VALID, &y));
      double *av = ts_read(y);
      for (int64_t c = 0; c < C; ++c)
        cr_assert_eq(isnan(av[c]), isnan(want[c]), "%s: avg pool of channel %lld = %g", what, (long long)c, av[c]);
      free(av);
      ct_tensor_free(y);
      ct_tensor_free(x);
    }
}

/* Empty tensors with huge extents through the window ops: a filter extent beyond int is refused
 * (never truncated), an empty batch of huge images pools to an empty result, gradients too. */
Test(nn_ops, empty_tensors_with_huge_extents, .init = setup, .fini = teardown) {
  const int64_t big = (int64_t)1 << 28;
  ct_tensor *x = NULL, *f = NULL, *y = NULL;
  OK(ct_zeros(CTX, CT_FLOAT32, 4, SH(1, 4, 4, 2), &x));
  OK(ct_zeros(CTX, CT_FLOAT32, 4, SH((int64_t)1 << 40, 1, 2, 0), &f));
  EXPECT_STATUS(ct_conv2d(x, f, NULL, CT_PADDING_SAME, &y), CT_ERR_UNSUPPORTED);
  cr_assert_null(y);
  ct_tensor_free(f);
  ct_tensor_free(x);
  OK(ct_zeros(CTX, CT_FLOAT32, 4, SH(0, big, big, 1), &x));
  OK(ct_zeros(CTX, CT_FLOAT32, 4, SH(3, 3, 1, 4), &f));
  ct_tape *tape = NULL;
  ct_tape_options to = ct_tape_default_options();
  to.persistent = true;
  OK(ct_tape_begin(CTX, &to, &tape));
  OK(ct_tape_watch(tape, x));
  ct_tensor *r[3] = {NULL};
  OK(ct_max_pool2d(x, (const int[]){2, 2}, NULL, CT_PADDING_VALID, &r[0]));
  OK(ct_avg_pool2d(x, (const int[]){3, 3}, (const int[]){2, 2}, CT_PADDING_SAME, &r[1]));
  OK(ct_conv2d(x, f, (const int[]){1, 1}, CT_PADDING_SAME, &r[2]));
  OK(ct_tape_end(tape));
  ts_assert_shape(r[0], 4, SH(0, big / 2, big / 2, 1), "max pool");
  ts_assert_shape(r[1], 4, SH(0, big / 2, big / 2, 1), "avg pool");
  ts_assert_shape(r[2], 4, SH(0, big, big, 4), "conv2d");
  for (int i = 0; i < 3; ++i) {
    ct_tensor *g = NULL;
    OK(ct_tape_gradient(tape, &r[i], 1, &x, 1, NULL, CT_UNCONNECTED_ZERO, &g));
    ts_assert_shape(g, 4, SH(0, big, big, 1), "gradient");
    ct_tensor_free(g);
  }
  ct_tape_free(tape);
  ct_tensor_free_n(r, 3);
  ct_tensor_free(x);
  ct_tensor_free(f);
}
