/* custom_op.c — an op of your own: an OpenCL C kernel for swish(x) = x sigmoid(x), registered
 * with ct_custom_op_register, run with ct_custom_op_call (tapes record it like any op), given a
 * gradient built from ct_ ops with ct_register_gradient, and checked with ct_gradcheck. */
#include "guide.h"

static const char *swish_source =
    "__kernel void swish(int n, __global T *out, __global const T *x, int rank0, int8 shape0) {\n"
    "  int i = get_global_id(0);\n"
    "  if (i >= n) return;\n"
    "  out[i] = x[i] / ((T)1 + exp(-x[i]));\n"
    "}\n";

/* d swish = dy (s + x s (1 - s)), s = sigmoid(x) */
static ct_status swish_gradient(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)user;
  const ct_tensor *x = ct_grad_ctx_input(g, 0);
  ct_tensor *s, *oms, *xs, *t, *d;
  TRY(ct_sigmoid(x, &s));
  TRY(ct_rsub_scalar(1.0, s, &oms));
  TRY(ct_mul(x, s, &xs));
  TRY(ct_mul(xs, oms, &t));
  TRY(ct_add(s, t, &d));
  TRY(ct_mul(dy, d, &dx[0]));
  ct_tensor *tmp[] = {s, oms, xs, t, d};
  ct_tensor_free_n(tmp, 5);
  return CT_OK;
}

static ct_status swish(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)user;
  return ct_custom_op_call(ct_tensor_context(in[0]), "Swish", in, n, out);
}

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);
  ct_custom_op op = {.name = "Swish", .source = swish_source, .kernel = "swish", .n_inputs = 1};
  TRY(ct_custom_op_register(&op));

  ct_tensor *x, *y, *g = NULL;
  TRY(ct_linspace(ctx, dt, -2.0, 2.0, 5, &x));
  ct_tape *tape;
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));
  TRY(swish(&x, 1, &y, NULL));
  TRY(ct_tape_end(tape));
  ct_status s = ct_tape_gradient1(tape, y, x, &g); /* no gradient registered yet */
  printf("before registering: %s\n", ct_errmsg());
  expect(s == CT_ERR_NO_GRADIENT && g == NULL, "CT_ERR_NO_GRADIENT");
  TRY(ct_register_gradient("Swish", swish_gradient, NULL));
  TRY(ct_tape_gradient1(tape, y, x, &g)); /* the failed call left the tape as it was */
  char buf[160];
  TRY(ct_tensor_format(g, CT_FORMAT_VALUES, buf, sizeof buf));
  printf("d swish / dx at -2, -1, 0, 1, 2: %s\n", buf);
  ct_tape_free(tape);

  ct_gradcheck_report rep;
  ct_gradcheck_options opts = {0};
  opts.float32 = dt != CT_FLOAT64;
  TRY(ct_gradcheck(ctx, swish, NULL, &x, 1, &opts, &rep));
  printf("gradcheck: %s\n", rep.passed ? "passed" : rep.message);
  expect(rep.passed, "the registered gradient matches finite differences");
  ct_tensor *tmp[] = {x, y, g};
  ct_tensor_free_n(tmp, 3);
  return finish(ctx);
}
