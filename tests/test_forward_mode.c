/* Forward mode (ct_tape_begin_forward, ct_tape_jvp; TensorFlow's ForwardAccumulator): tangents
 * of elementwise, broadcasting and matrix functions, Hessian-vector products from a forward tape
 * around a reverse tape's gradient, unconnected tensors, and mistakes. Every op's tangent is
 * checked against J v by tests/test_gradcheck.c (jvps_of_every_op). */
#include "support.h"
#include <math.h>
#include <string.h>

#define SH(...) ((const int64_t[]){__VA_ARGS__})

Test(forward_mode, tangents_of_a_function) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  const double xv[3] = {0.5, -1.0, 2.0}, vv[3] = {1.0, 2.0, -0.5};
  ct_tensor *x = ts_tensor(ctx, dt, 1, SH(3), xv), *v = ts_tensor(ctx, dt, 1, SH(3), vv), *s = NULL, *y = NULL,
            *t = NULL;
  ct_tape *fw = NULL;
  OK(ct_tape_begin_forward(ctx, &x, &v, 1, &fw));
  OK(ct_sin(x, &s));
  OK(ct_mul(s, x, &y)); /* y = x sin x, y' = (sin x + x cos x) v */
  OK(ct_tape_end(fw));
  cr_assert_eq(ct_tape_size(fw), 0, "a forward tape keeps tangents, not records");
  OK(ct_tape_jvp(fw, y, CT_UNCONNECTED_NONE, &t));
  double want[3];
  for (int i = 0; i < 3; ++i) want[i] = (sin(xv[i]) + xv[i] * cos(xv[i])) * vv[i];
  ts_assert_close(t, want, 3, 1e-6, 1e-6, "(sin x + x cos x) v");
  ct_tensor_free(t);
  OK(ct_tape_jvp(fw, x, CT_UNCONNECTED_NONE, &t));
  ts_assert_close(t, vv, 3, 0, 0, "a primal's tangent is the one given");
  ct_tensor_free(t);
  /* a tensor that does not depend on the primals */
  OK(ct_tape_jvp(fw, v, CT_UNCONNECTED_NONE, &t));
  cr_assert_null(t);
  OK(ct_tape_jvp(fw, v, CT_UNCONNECTED_ZERO, &t));
  const double z[3] = {0, 0, 0};
  ts_assert_close(t, z, 3, 0, 0, "zeros when asked for");
  ct_tensor_free(t);
  /* mistakes */
  ct_tensor *g = NULL;
  EXPECT_STATUS(ct_tape_gradient1(fw, y, x, &g), CT_ERR_INVALID);
  cr_assert_null(g);
  EXPECT_STATUS(ct_tape_jacobian(fw, y, x, CT_UNCONNECTED_NONE, &g), CT_ERR_INVALID);
  ct_tape *rev = NULL;
  OK(ct_tape_begin(ctx, NULL, &rev));
  EXPECT_STATUS(ct_tape_jvp(rev, y, CT_UNCONNECTED_NONE, &t), CT_ERR_INVALID);
  ct_tape_free(rev);
  ct_tensor *wrong = ts_tensor(ctx, dt, 1, SH(2), xv), *ints = NULL;
  EXPECT_STATUS(ct_tape_begin_forward(ctx, &x, &wrong, 1, &rev), CT_ERR_SHAPE);
  cr_assert_null(rev);
  OK(ct_cast(x, CT_INT32, &ints));
  EXPECT_STATUS(ct_tape_begin_forward(ctx, &ints, &ints, 1, &rev), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_tape_begin_forward(ctx, &x, &v, 0, &rev), CT_ERR_INVALID);
  ct_tensor *tmp[] = {x, v, s, y, wrong, ints};
  ct_tensor_free_n(tmp, 6);
  ct_tape_free(fw);
  ct_context_free(ctx);
}

Test(forward_mode, matrices_broadcasting_and_two_primals) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  const double xv[6] = {1, 2, 3, 4, 5, 6}, wv[6] = {0.5, -1, 2, 0, 1, 1}, bv[2] = {0.1, 0.2};
  const double dxv[6] = {1, 0, 0, 0, 0, 1}, dbv[2] = {1, -1};
  ct_tensor *x = ts_tensor(ctx, dt, 2, SH(2, 3), xv), *w = ts_tensor(ctx, dt, 2, SH(3, 2), wv),
            *b = ts_tensor(ctx, dt, 1, SH(2), bv), *dx = ts_tensor(ctx, dt, 2, SH(2, 3), dxv),
            *db = ts_tensor(ctx, dt, 1, SH(2), dbv), *xw = NULL, *y = NULL, *t = NULL;
  ct_tensor *primals[2] = {x, b}, *tangents[2] = {dx, db};
  ct_tape *fw = NULL;
  OK(ct_tape_begin_forward(ctx, primals, tangents, 2, &fw));
  OK(ct_matmul(x, w, false, false, &xw));
  OK(ct_add(xw, b, &y)); /* y' = dx W + db (broadcast over rows) */
  OK(ct_tape_end(fw));
  OK(ct_tape_jvp(fw, y, CT_UNCONNECTED_NONE, &t));
  double want[4];
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) {
      want[2 * r + c] = dbv[c];
      for (int k = 0; k < 3; ++k) want[2 * r + c] += dxv[3 * r + k] * wv[2 * k + c];
    }
  ts_assert_close(t, want, 4, 1e-9, 1e-9, "dx W + db");
  ct_tensor *tmp[] = {x, w, b, dx, db, xw, y, t};
  ct_tensor_free_n(tmp, 8);
  ct_tape_free(fw);
  ct_context_free(ctx);
}

Test(forward_mode, hessian_vector_products_forward_over_reverse) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  /* f = sum(x^3) + x0 x1: H = diag(6 x) + [[0, 1, 0], [1, 0, 0], [0, 0, 0]] */
  const double xv[3] = {0.5, -1.0, 2.0}, vv[3] = {1.0, 2.0, -0.5};
  ct_tensor *x = ts_tensor(ctx, dt, 1, SH(3), xv), *v = ts_tensor(ctx, dt, 1, SH(3), vv);
  ct_tensor *c = NULL, *s = NULL, *x0 = NULL, *x1 = NULL, *p = NULL, *f = NULL, *g = NULL, *hv = NULL;
  ct_tape *fw = NULL, *rev = NULL;
  OK(ct_tape_begin_forward(ctx, &x, &v, 1, &fw));
  OK(ct_tape_begin(ctx, NULL, &rev));
  OK(ct_tape_watch(rev, x));
  OK(ct_pow_scalar(x, 3.0, &c));
  OK(ct_sum(c, NULL, 0, false, &s));
  OK(ct_slice(x, (const int64_t[]){0}, (const int64_t[]){1}, NULL, &x0));
  OK(ct_slice(x, (const int64_t[]){1}, (const int64_t[]){2}, NULL, &x1));
  OK(ct_mul(x0, x1, &p));
  OK(ct_add(s, p, &f));
  OK(ct_tape_end(rev));
  OK(ct_tape_gradient1(rev, f, x, &g)); /* the forward tape records the gradient's ops */
  OK(ct_tape_end(fw));
  OK(ct_tape_jvp(fw, g, CT_UNCONNECTED_NONE, &hv));
  const double want[3] = {6 * xv[0] * vv[0] + vv[1], 6 * xv[1] * vv[1] + vv[0], 6 * xv[2] * vv[2]};
  ts_assert_close(hv, want, 3, 1e-6, 1e-6, "H v");
  ct_tensor *tmp[] = {x, v, c, s, x0, x1, p, f, g, hv};
  ct_tensor_free_n(tmp, 10);
  ct_tape_free(rev);
  ct_tape_free(fw);
  ct_context_free(ctx);
}
