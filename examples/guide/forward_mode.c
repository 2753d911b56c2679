/* forward_mode.c — forward-mode derivatives (ct_tape_begin_forward, TensorFlow's
 * ForwardAccumulator, JAX's jvp): the tangent of y = x sin(x) for a tangent v of x, and a
 * Hessian-vector product from a forward tape around a reverse tape's gradient. */
#include "guide.h"

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);
  const double xv[3] = {0.5, -1.0, 2.0}, vv[3] = {1.0, 0.0, 0.0};
  ct_tensor *x = tensor_of(ctx, dt, 1, (int64_t[]){3}, xv), *v = tensor_of(ctx, dt, 1, (int64_t[]){3}, vv);

  /* 1. the tangent of y = x sin(x) in the direction v: (sin x + x cos x) v */
  ct_tape *fw;
  ct_tensor *s, *y, *dy;
  TRY(ct_tape_begin_forward(ctx, &x, &v, 1, &fw)); /* with ForwardAccumulator(x, v) as acc: */
  TRY(ct_sin(x, &s));
  TRY(ct_mul(x, s, &y));
  TRY(ct_tape_end(fw));
  TRY(ct_tape_jvp(fw, y, CT_UNCONNECTED_NONE, &dy));  /* acc.jvp(y) */
  show("jvp of x sin(x) along (1, 0, 0):", " ", dy);
  double d[3];
  TRY(ct_tensor_read_f64(dy, d, 3));
  expect(fabs(d[0] - (sin(0.5) + 0.5 * cos(0.5))) < 1e-6 && d[1] == 0 && d[2] == 0, "(sin x + x cos x) v");
  ct_tape_free(fw);

  /* 2. a Hessian-vector product, forward over reverse: the tangent of the gradient is H v.
   *    f = sum(x^3): H = diag(6 x), so H v = (3, 0, 0) */
  ct_tape *tape;
  ct_tensor *c, *f, *g, *hv;
  TRY(ct_tape_begin_forward(ctx, &x, &v, 1, &fw));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));
  TRY(ct_pow_scalar(x, 3.0, &c));
  TRY(ct_sum(c, NULL, 0, false, &f));
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, f, x, &g)); /* 3 x^2; its ops run under the forward tape */
  TRY(ct_tape_end(fw));
  TRY(ct_tape_jvp(fw, g, CT_UNCONNECTED_NONE, &hv));
  show("H v of sum(x^3) along (1, 0, 0):", " ", hv);
  double h[3];
  TRY(ct_tensor_read_f64(hv, h, 3));
  expect(fabs(h[0] - 3.0) < 1e-6 && h[1] == 0 && h[2] == 0, "diag(6 x) v");
  ct_tape_free(tape);
  ct_tape_free(fw);

  ct_tensor *tmp[] = {x, v, s, y, dy, c, f, g, hv};
  ct_tensor_free_n(tmp, 9);
  return finish(ctx);
}
