/* Built against an installed cltape: checks the version macros and one gradient. */
#include <cltape.h>
#include <stdio.h>

int main(void) {
  if (ct_version_number() != CLTAPE_VERSION_NUMBER) {
    fprintf(stderr, "header %d, library %d\n", CLTAPE_VERSION_NUMBER, ct_version_number());
    return 1;
  }
  ct_context *ctx;
  if (ct_context_create(NULL, &ctx) != CT_OK) {
    fprintf(stderr, "%s\n", ct_errmsg());
    return 1;
  }
  ct_tensor *x = NULL, *y = NULL, *g = NULL;
  ct_tape *tape = NULL;
  double v = 0;
  int ok = ct_variable_scalar(ctx, 3.0, "x", true, &x) == CT_OK && ct_tape_begin(ctx, NULL, &tape) == CT_OK &&
           ct_square(x, &y) == CT_OK && ct_tape_gradient1(tape, y, x, &g) == CT_OK && ct_tensor_item(g, &v) == CT_OK;
  printf("consumer: cltape %s, d(x^2)/dx at 3 = %g\n", ct_version_string(), v);
  ct_tensor_free(g);
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_tape_free(tape);
  ct_context_free(ctx);
  return ok && v == 6.0 ? 0 : 1;
}
