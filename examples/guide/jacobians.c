/* jacobians.c — Jacobians: the full jacobian of y = tanh(W x), the per-example jacobian of a
 * batch, the Hessian as the jacobian of a gradient recorded by the same persistent tape, and the
 * zero-size jacobian of a target without elements. */
#include "guide.h"

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);
  const double xv[3] = {0.5, -1.0, 2.0}, wv[6] = {0.1, 0.2, 0.3, -0.4, 0.5, -0.6};
  ct_tensor *x = tensor_of(ctx, dt, 1, (int64_t[]){3}, xv), *w = tensor_of(ctx, dt, 2, (int64_t[]){2, 3}, wv);
  ct_tensor *xc, *wx, *y, *j;

  /* 1. y = tanh(W x): J[i][k] = (1 - y_i^2) W[i][k] */
  ct_tape *tape;
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));
  TRY(ct_reshape(x, 2, (int64_t[]){3, 1}, &xc));
  TRY(ct_matmul(w, xc, false, false, &wx));
  TRY(ct_tanh(wx, &y)); /* [2, 1] */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_jacobian(tape, y, x, CT_UNCONNECTED_NONE, &j)); /* [2, 1, 3] */
  show("jacobian of tanh(W x), shape (2, 1, 3):", "\n", j);
  double jv[6], yv[2];
  TRY(ct_tensor_read_f64(j, jv, 6));
  TRY(ct_tensor_read_f64(y, yv, 2));
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 3; ++k) expect(fabs(jv[3 * i + k] - (1 - yv[i] * yv[i]) * wv[3 * i + k]) < 1e-5, "J = diag(1 - y^2) W");
  ct_tape_free(tape);

  /* 2. a batch: Y[b] = X[b]^2 elementwise, so example b's jacobian is diag(2 X[b]) */
  const double xb[6] = {1, 2, 3, -1, 0.5, 0};
  ct_tensor *X, *Y, *bj;
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 2, (int64_t[]){2, 3}, (float[]){1, 2, 3, -1, 0.5f, 0}, &X));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, X));
  TRY(ct_square(X, &Y));
  TRY(ct_tape_end(tape));
  TRY(ct_tape_batch_jacobian(tape, Y, X, CT_UNCONNECTED_NONE, &bj)); /* [2, 3, 3] */
  show("batch jacobian of X^2, shape (2, 3, 3):", "\n", bj);
  double bv[18];
  TRY(ct_tensor_read_f64(bj, bv, 18));
  for (int b = 0; b < 2; ++b)
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) expect(bv[9 * b + 3 * r + c] == (r == c ? 2 * xb[3 * b + r] : 0), "diag(2 X[b])");
  ct_tape_free(tape);

  /* 3. the Hessian of s = sum(x^3): the jacobian of the gradient, on one persistent tape */
  ct_tape_options persistent = {.persistent = true, .watch_accessed_variables = true};
  ct_tensor *c3, *s, *g, *hess;
  TRY(ct_tape_begin(ctx, &persistent, &tape));
  TRY(ct_tape_watch(tape, x));
  TRY(ct_pow_scalar(x, 3.0, &c3));
  TRY(ct_sum(c3, NULL, 0, false, &s));
  TRY(ct_tape_gradient1(tape, s, x, &g));                          /* 3 x^2, recorded */
  TRY(ct_tape_jacobian(tape, g, x, CT_UNCONNECTED_NONE, &hess));   /* diag(6 x) */
  TRY(ct_tape_end(tape));
  show("Hessian of sum(x^3):", "\n", hess);
  double hv[9];
  TRY(ct_tensor_read_f64(hess, hv, 9));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) expect(fabs(hv[3 * r + c] - (r == c ? 6 * xv[r] : 0)) < 1e-4, "diag(6 x)");
  ct_tape_free(tape);

  /* 4. a target without elements: a zero-size jacobian, not NULL */
  ct_tensor *e, *e2, *ej;
  TRY(ct_zeros(ctx, dt, 1, (int64_t[]){0}, &e));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, e));
  TRY(ct_mul_scalar(e, 2.0, &e2));
  TRY(ct_tape_end(tape));
  TRY(ct_tape_jacobian(tape, e2, e, CT_UNCONNECTED_NONE, &ej));
  char shape[32];
  TRY(ct_shape_format(ej, shape, sizeof shape));
  printf("jacobian of a (0,) target by a (0,) source: shape %s\n", shape);
  expect(ej != NULL && ct_tensor_size(ej) == 0, "zero-size jacobian");
  ct_tape_free(tape);

  ct_tensor *tmp[] = {x, w, xc, wx, y, j, X, Y, bj, c3, s, g, hess, e, e2, ej};
  ct_tensor_free_n(tmp, 16);
  return finish(ctx);
}
