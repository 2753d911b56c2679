/* The first thing that must work: a context, a tensor, one op, one gradient. */
#include "support.h"

Test(smoke, square_and_gradient) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *g = NULL;
  OK(ct_variable_scalar(ctx, 3.0, "x", true, &x));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_square(x, &y));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, y, x, &g));
  cr_assert_float_eq(ts_item(y), 9.0, 1e-6);
  cr_assert_float_eq(ts_item(g), 6.0, 1e-6);
  ct_tensor_free(g);
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_tape_free(tape);
  ct_context_free(ctx);
}
