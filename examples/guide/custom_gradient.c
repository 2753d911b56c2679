/* custom_gradient.c — a gradient written for a whole function (ct_custom_gradient, TensorFlow's
 * tf.custom_gradient): log(1 + e^x) with a gradient that stays finite where the ops' own
 * gradient overflows, its second derivative through the kept e^x, and a function that reads a
 * variable it was not given, whose gradient returns the variable's gradient too. */
#include "guide.h"

/* forward: e = exp(x), kept for the gradient (residual 0); y = log(1 + e) */
static ct_status log1pexp_forward(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)n, (void)user;
  ct_tensor *e1;
  TRY(ct_exp(in[0], &res[0]));
  TRY(ct_add_scalar(res[0], 1.0, &e1));
  TRY(ct_log(e1, out));
  ct_tensor_free(e1);
  return CT_OK;
}
/* gradient: dy * (1 - 1 / (1 + e)) */
static ct_status log1pexp_gradient(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx,
                                   ct_tensor **dvars, void *user) {
  (void)dvars, (void)user;
  ct_tensor *e1, *r, *f;
  TRY(ct_add_scalar(a->residuals[0], 1.0, &e1));
  TRY(ct_rdiv_scalar(1.0, e1, &r));
  TRY(ct_rsub_scalar(1.0, r, &f));
  TRY(ct_mul(dy, f, &dx[0]));
  ct_tensor *tmp[] = {e1, r, f};
  ct_tensor_free_n(tmp, 3);
  return CT_OK;
}
static const ct_custom_function log1pexp = {"log1pexp", log1pexp_forward, log1pexp_gradient, 1, NULL};

/* y = x * w, with w a variable the function reads (captured) */
static ct_status scale_forward(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)n, (void)res;
  return ct_mul(in[0], (ct_tensor *)user, out);
}
/* dx = dy w; dw = sum(dy x): the gradient of the captured variable goes to dvars */
static ct_status scale_gradient(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dvars,
                                void *user) {
  (void)user;
  if (a->needed[0]) TRY(ct_mul(dy, a->variables[0], &dx[0]));
  if (a->needed[1]) {
    ct_tensor *p;
    TRY(ct_mul(dy, a->inputs[0], &p));
    TRY(ct_sum(p, NULL, 0, false, &dvars[0]));
    ct_tensor_free(p);
  }
  return CT_OK;
}

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);

  /* at x = 100 in float32, exp(x) is inf: the ops' gradient is inf / inf = NaN, the custom one 1 */
  ct_tensor *x, *y, *g;
  TRY(ct_variable_scalar(ctx, 100.0, "x", true, &x));
  ct_tape *tape;
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_custom_gradient(&log1pexp, &x, 1, &y));
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x, &g));
  printf("d log1pexp / dx at 100: %g\n", item(g));
  expect(item(g) == 1.0, "the custom gradient is 1");
  ct_tape_free(tape);
  ct_tensor_free(y);
  ct_tensor_free(g);

  /* second derivative at 0 with one persistent tape: e / (1 + e)^2 = 0.25 through the residual */
  ct_tensor *x0, *d1, *d2;
  TRY(ct_scalar(ctx, dt, 0.0, &x0));
  ct_tape_options persistent = {.persistent = true, .watch_accessed_variables = true};
  TRY(ct_tape_begin(ctx, &persistent, &tape));
  TRY(ct_tape_watch(tape, x0));
  TRY(ct_custom_gradient(&log1pexp, &x0, 1, &y));
  TRY(ct_tape_gradient1(tape, y, x0, &d1));
  TRY(ct_tape_gradient1(tape, d1, x0, &d2));
  TRY(ct_tape_end(tape));
  printf("at 0: first derivative %g, second derivative %g\n", item(d1), item(d2));
  expect(fabs(item(d1) - 0.5) < 1e-6 && fabs(item(d2) - 0.25) < 1e-6, "0.5 and 0.25");
  ct_tape_free(tape);

  /* a captured variable: TensorFlow's grad_fn(dy, variables=[w]) */
  ct_tensor *w, *xs, *z, *grads[2];
  TRY(ct_variable_scalar(ctx, 3.0, "w", true, &w));
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 1, (int64_t[]){2}, (float[]){1.5f, -2.0f}, &xs));
  const ct_custom_function scale = {"scale", scale_forward, scale_gradient, 0, w};
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, xs));
  TRY(ct_custom_gradient(&scale, &xs, 1, &z));
  TRY(ct_tape_end(tape));
  ct_tensor *sources[2] = {xs, w};
  TRY(ct_tape_gradient(tape, &z, 1, sources, 2, NULL, CT_UNCONNECTED_NONE, grads));
  char buf[128];
  TRY(ct_tensor_format(grads[0], CT_FORMAT_VALUES, buf, sizeof buf));
  printf("dz/dx = %s, dz/dw = %g\n", buf, item(grads[1]));
  expect(item(grads[1]) == -0.5, "dz/dw = sum(x)");
  ct_tape_free(tape);

  ct_tensor *tmp[] = {x, x0, y, d1, d2, w, xs, z, grads[0], grads[1]};
  ct_tensor_free_n(tmp, 10);
  return finish(ctx);
}
