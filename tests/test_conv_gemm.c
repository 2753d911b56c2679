/* Convolutions through matrix products (host/conv_gemm.c) against the direct kernels
 * (kernels/nn.cl): the forward, the input gradient and the filter gradient of each path, forced by
 * CLTAPE_CONV, over strides, both paddings, odd extents, channel counts on and off the vector
 * width, 1x1 windows (no patch matrix) and batch sizes. The gradient checks and the host
 * references of the convolution rows run on the product path too (test_gradcheck_conv_gemm and
 * test_nn_ops_conv_gemm in tests/CMakeLists.txt). */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_internal.h"
#include "cltape_nn.h"
#include "backend.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})

static void setup(void) { CTX = ts_ctx(); }
static void teardown(void) {
  ct__env_override("CLTAPE_CONV", NULL);
  ct_context_free(CTX);
  CTX = NULL;
}

typedef struct {
  int kh, kw, sh, sw;
  bool same;
  int64_t n, h, w, c, oc;
} conv_case;

static int64_t out_extent(int64_t in, int k, int s, bool same) { return same ? (in + s - 1) / s : (in - k) / s + 1; }

static void shapes(const conv_case *k, int64_t *xs, int64_t *fs, int64_t *ys) {
  int64_t x[4] = {k->n, k->h, k->w, k->c}, f[4] = {k->kh, k->kw, k->c, k->oc};
  int64_t y[4] = {k->n, out_extent(k->h, k->kh, k->sh, k->same), out_extent(k->w, k->kw, k->sw, k->same), k->oc};
  memcpy(xs, x, sizeof x);
  memcpy(fs, f, sizeof f);
  memcpy(ys, y, sizeof y);
}

/* The convolution rows run as the tape runs them: the forward, and the two gradient rows with
 * the shape of the tensor they give. */
static ct_tensor *run_row(ct_op_id op, const conv_case *k, const ct_tensor *a, const ct_tensor *b, const int64_t *shape) {
  ct_attrs at = ct__attrs(CT_AT_WINDOW);
  at.window.stride[0] = k->sh;
  at.window.stride[1] = k->sw;
  at.window.same = k->same;
  if (shape) {
    at.window.rank = 4;
    memcpy(at.window.shape, shape, sizeof(int64_t) * 4);
  }
  const ct_tensor *args[2] = {a, b};
  ct_tensor *out = NULL;
  ct_status s = ct__run(op, args, 2, &at, &out);
  cr_assert_eq(s, CT_OK, "%s: %s", ct_ops[op].name, ct_errmsg());
  return out;
}

/* kh, kw, sh, sw, same, n, h, w, c, oc */
static const conv_case CASES[] = {
    {3, 3, 1, 1, true, 2, 7, 9, 3, 5},     /* odd extents, channels off the vector width */
    {3, 3, 1, 1, true, 4, 14, 14, 32, 64}, /* the CNN's second layer, a smaller batch */
    {3, 3, 1, 1, true, 3, 28, 28, 1, 32},  /* the CNN's first layer: one input channel */
    {3, 3, 2, 2, true, 2, 9, 8, 8, 16},    /* stride 2, SAME with uneven padding */
    {5, 3, 2, 1, false, 1, 11, 7, 4, 9},   /* VALID, stride 2 x 1, a 5 x 3 window */
    {1, 1, 1, 1, true, 5, 6, 5, 24, 40},   /* pointwise: no patch matrix */
    {1, 1, 2, 2, false, 2, 7, 7, 8, 8},    /* 1 x 1 with a stride: a patch matrix */
    {2, 2, 3, 3, false, 1, 8, 11, 17, 3},  /* stride past the window: inputs no window reads */
    {4, 4, 1, 1, true, 1, 5, 6, 2, 16},    /* an even window, padding after larger than before */
};

static int pad_before(int64_t in, int k, int s, bool same) {
  if (!same) return 0;
  int64_t out = (in + s - 1) / s, total = (out - 1) * s + k - in;
  return total > 0 ? (int)(total / 2) : 0;
}

/* The forward and both gradients of case k on the path `path`, read back. */
static void run_path(const conv_case *k, ct_dtype dt, const char *path, double **y, double **dx, double **df) {
  ct__env_override("CLTAPE_CONV", path);
  int64_t xs[4], fs[4], ys[4];
  shapes(k, xs, fs, ys);
  /* the path is the one asked for on every kind (the product path fits these small cases) */
  ctb_window g = {(int32_t)k->n, (int32_t)k->h, (int32_t)k->w, (int32_t)k->c, (int32_t)ys[1], (int32_t)ys[2],
                  (int32_t)k->oc, k->kh, k->kw, k->sh, k->sw, pad_before(k->h, k->kh, k->sh, k->same),
                  pad_before(k->w, k->kw, k->sw, k->same), 0};
  const bool gemm = strcmp(path, "gemm") == 0;
  for (int kind = CTB_CONV_FWD; kind <= CTB_CONV_BP_FILTER; ++kind)
    cr_assert_eq(ctb_conv_path(CTX, dt, (ctb_conv_kind)kind, &g), gemm ? CTB_CONV_PATH_GEMM : CTB_CONV_PATH_DIRECT,
                 "CLTAPE_CONV=%s, kind %d", path, kind);
  ct_tensor *x = ts_lcg_tensor(CTX, dt, 4, xs, 11, NULL), *f = ts_lcg_tensor(CTX, dt, 4, fs, 12, NULL);
  ct_tensor *dy = ts_lcg_tensor(CTX, dt, 4, ys, 13, NULL);
  ct_tensor *ty, *tdx, *tdf;
  ty = run_row(CT_OP_CONV2D, k, x, f, NULL);
  tdx = run_row(CT_OP_CONV2D_BP_INPUT, k, dy, f, xs);
  tdf = run_row(CT_OP_CONV2D_BP_FILTER, k, x, dy, fs);
  ts_assert_shape(ty, 4, ys, "y");
  ts_assert_shape(tdx, 4, xs, "dx");
  ts_assert_shape(tdf, 4, fs, "df");
  *y = ts_read(ty);
  *dx = ts_read(tdx);
  *df = ts_read(tdf);
  ct_tensor *all[] = {x, f, dy, ty, tdx, tdf};
  ct_tensor_free_n(all, 6);
}

static void compare(const conv_case *k, ct_dtype dt) {
  int64_t xs[4], fs[4], ys[4];
  shapes(k, xs, fs, ys);
  double *y[2], *dx[2], *df[2];
  run_path(k, dt, "direct", &y[0], &dx[0], &df[0]);
  run_path(k, dt, "gemm", &y[1], &dx[1], &df[1]);
  /* sums of up to KH * KW * C (forward), KH * KW * OC (input gradient) or N * OH * OW (filter
   * gradient) products of values in [-1, 1), in another order */
  const double eps = dt == CT_FLOAT64 ? 1e-12 : 2e-6;
  const double tol[3] = {eps * (double)(k->kh * k->kw * k->c), eps * (double)(k->kh * k->kw * k->oc),
                         eps * (double)(ys[0] * ys[1] * ys[2])};
  const int64_t n[3] = {ts_numel(4, ys), ts_numel(4, xs), ts_numel(4, fs)};
  double **got[3] = {y, dx, df};
  static const char *what[3] = {"forward", "input gradient", "filter gradient"};
  for (int p = 0; p < 3; ++p) {
    for (int64_t i = 0; i < n[p]; ++i) {
      const double a = got[p][0][i], b = got[p][1][i];
      cr_expect(fabs(a - b) <= tol[p] + 1e-6 * fabs(a),
                "%s of %lldx%lldx%lldx%lld * %dx%d/%dx%d %s -> %lld, %s: element %lld: direct %.9g, gemm %.9g",
                what[p], (long long)k->n, (long long)k->h, (long long)k->w, (long long)k->c, k->kh, k->kw, k->sh, k->sw,
                k->same ? "SAME" : "VALID", (long long)k->oc, ct_dtype_name(dt), (long long)i, a, b);
      if (fabs(a - b) > tol[p] + 1e-6 * fabs(a)) break;
    }
    free(got[p][0]);
    free(got[p][1]);
  }
}

Test(conv_gemm, matches_the_direct_kernels, .init = setup, .fini = teardown, .timeout = 600) {
  for (size_t i = 0; i < sizeof CASES / sizeof *CASES; ++i) {
    compare(&CASES[i], CT_FLOAT32);
    if (ts_has_fp64(CTX)) compare(&CASES[i], CT_FLOAT64);
  }
}

/* A window whose patch matrix would pass the path's scratch limit runs the direct kernels even
 * when the product path is forced; an empty convolution is a fill on either path. */
Test(conv_gemm, large_patch_matrices_run_the_direct_kernels, .init = setup, .fini = teardown) {
  ct__env_override("CLTAPE_CONV", "gemm");
  ctb_window big = {64, 224, 224, 64, 224, 224, 64, 3, 3, 1, 1, 1, 1, 0};
  cr_expect_eq(ctb_conv_path(CTX, CT_FLOAT32, CTB_CONV_FWD, &big), CTB_CONV_PATH_DIRECT, "a 3.7 GB patch matrix");
  ctb_window pw = big;
  pw.kh = pw.kw = 1;
  pw.pt = pw.pl = 0;
  cr_expect_eq(ctb_conv_path(CTX, CT_FLOAT32, CTB_CONV_FWD, &pw), CTB_CONV_PATH_GEMM,
               "a pointwise convolution needs no patch matrix");
  ct_tensor *x = ts_lcg_tensor(CTX, CT_FLOAT32, 4, SH(0, 5, 5, 3), 1, NULL), *f = ts_lcg_tensor(CTX, CT_FLOAT32, 4, SH(3, 3, 3, 4), 2, NULL);
  ct_tensor *y = NULL;
  cr_assert_eq(ct_conv2d(x, f, NULL, CT_PADDING_SAME, &y), CT_OK, "%s", ct_errmsg());
  ts_assert_shape(y, 4, SH(0, 5, 5, 4), "empty batch");
  ct_tensor *all[] = {x, f, y};
  ct_tensor_free_n(all, 3);
}
