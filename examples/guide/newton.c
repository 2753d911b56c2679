/* newton.c — Newton's method with the Hessian. Minimizes Rosenbrock's function
 *   f(x, y) = (1 - x)^2 + 100 (y - x^2)^2
 * from (-1.2, 1). Each step takes the gradient and the Hessian (the jacobian of the gradient)
 * from one persistent tape, solves H d = g on the host and moves to p - d. */
#include "guide.h"

/* f at p = (x, y) */
static ct_tensor *rosenbrock(const ct_tensor *p) {
  ct_tensor *x, *y, *a, *a2, *x2, *b, *b2, *b100, *s, *f;
  TRY(ct_slice(p, (int64_t[]){0}, (int64_t[]){1}, NULL, &x));
  TRY(ct_slice(p, (int64_t[]){1}, (int64_t[]){2}, NULL, &y));
  TRY(ct_rsub_scalar(1.0, x, &a)); /* 1 - x */
  TRY(ct_square(a, &a2));
  TRY(ct_square(x, &x2));
  TRY(ct_sub(y, x2, &b)); /* y - x^2 */
  TRY(ct_square(b, &b2));
  TRY(ct_mul_scalar(b2, 100.0, &b100));
  TRY(ct_add(a2, b100, &s));
  TRY(ct_sum(s, NULL, 0, false, &f));
  ct_tensor *tmp[] = {x, y, a, a2, x2, b, b2, b100, s};
  ct_tensor_free_n(tmp, 9);
  return f;
}

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);
  double p[2] = {-1.2, 1.0}, g[2], h[4], fv = 0;
  int step;
  for (step = 0; step < 30; ++step) {
    ct_tensor *pt = tensor_of(ctx, dt, 1, (int64_t[]){2}, p), *f, *grad, *hess;
    ct_tape_options opts = {.persistent = true, .watch_accessed_variables = true};
    ct_tape *tape;
    TRY(ct_tape_begin(ctx, &opts, &tape));
    TRY(ct_tape_watch(tape, pt));
    f = rosenbrock(pt);
    TRY(ct_tape_gradient1(tape, f, pt, &grad));                      /* recorded by the tape itself */
    TRY(ct_tape_jacobian(tape, grad, pt, CT_UNCONNECTED_NONE, &hess)); /* d grad / d p: the Hessian */
    TRY(ct_tape_end(tape));
    TRY(ct_tensor_item(f, &fv));
    TRY(ct_tensor_read_f64(grad, g, 2));
    TRY(ct_tensor_read_f64(hess, h, 4));
    printf("step %2d  p = (%8.5f, %8.5f)  f = %.2e\n", step, p[0], p[1], fv);
    ct_tensor *tmp[] = {pt, f, grad, hess};
    ct_tensor_free_n(tmp, 4);
    ct_tape_free(tape);
    if (fabs(g[0]) + fabs(g[1]) < (dt == CT_FLOAT64 ? 1e-9 : 1e-3)) break;
    double det = h[0] * h[3] - h[1] * h[2];
    p[0] -= (h[3] * g[0] - h[1] * g[1]) / det;
    p[1] -= (h[0] * g[1] - h[2] * g[0]) / det;
  }
  printf("minimum at (%.5f, %.5f) after %d Newton steps\n", p[0], p[1], step);
  double tol = dt == CT_FLOAT64 ? 1e-8 : 1e-2;
  expect(fabs(p[0] - 1) < tol && fabs(p[1] - 1) < tol, "Newton's method reaches (1, 1)");
  expect(step < 10, "in fewer than 10 steps");
  return finish(ctx);
}
