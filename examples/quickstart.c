/* quickstart.c — the smallest complete cltape program: y = x^2 at x = 3, dy/dx = 6. */
#include <cltape.h>
#include <stdio.h>

#define CHECK(call)                                                                        \
  do {                                                                                     \
    ct_status s_ = (call);                                                                 \
    if (s_ != CT_OK) {                                                                     \
      fprintf(stderr, "%s failed: %s: %s\n", #call, ct_status_str(s_), ct_errmsg());       \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

int main(int argc, char **argv) {
  ct_context *ctx;
  CHECK(ct_context_create(argc > 1 ? argv[1] : NULL, &ctx));
  ct_device_info dev;
  CHECK(ct_context_device(ctx, &dev));
  printf("device: %s (%s)\n", dev.name, dev.platform);

  ct_tensor *x, *y, *dy_dx;
  CHECK(ct_variable_scalar(ctx, 3.0, "x", true, &x));
  ct_tape *tape;
  CHECK(ct_tape_begin(ctx, NULL, &tape));
  CHECK(ct_square(x, &y));
  CHECK(ct_tape_end(tape));
  CHECK(ct_tape_gradient1(tape, y, x, &dy_dx));

  char buf[256];
  CHECK(ct_tensor_format(dy_dx, CT_FORMAT_REPR, buf, sizeof buf));
  printf("dy/dx = %s\n", buf);

  ct_tensor_free(dy_dx);
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_tape_free(tape);
  ct_context_free(ctx);
  return 0;
}
