/*
 * test_errors.c — every class of bad input returns its status with a message, sets the results to
 * NULL, and leaves the context working: NULL handles and out-pointers, released tensors, tensors
 * of two contexts, wrong dtypes, shapes that do not broadcast, bad axes, bad shapes (wrong size,
 * rank > 8, negative extents, overflowing element counts) and allocations beyond the device.
 */
#include "support.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The context still computes correctly. */
static void still_works(ct_context *ctx) {
  ct_tensor *a = NULL, *b = NULL, *c = NULL;
  OK(ct_fill(ctx, CT_FLOAT32, 1, (int64_t[]){3}, 1.5, &a));
  OK(ct_range(ctx, CT_FLOAT32, 0, 3, 1, &b));
  OK(ct_add(a, b, &c));
  ts_assert_close(c, (double[]){1.5, 2.5, 3.5}, 3, 0, 0, "the context after an error");
  ct_tensor_free_n((ct_tensor *[]){a, b, c}, 3);
}

/* Expects `status`, a message, and *out left NULL. */
#define EXPECT_FAIL(call, status, out)                                                                 \
  do {                                                                                                 \
    out = (ct_tensor *)(uintptr_t)1;                                                                  \
    EXPECT_STATUS(call, status);                                                                       \
    cr_assert_null(out, "%s: the result was not set to NULL", #call);                                  \
  } while (0)

static ct_tensor *vec(ct_context *ctx, ct_dtype dt, int64_t n) {
  ct_tensor *t = NULL;
  OK(ct_range(ctx, dt, 0, (double)n, 1, &t));
  return t;
}

static ct_tensor *mat(ct_context *ctx, ct_dtype dt, int64_t r, int64_t c) {
  ct_tensor *t = NULL, *v = vec(ctx, dt, r * c);
  OK(ct_reshape(v, 2, (int64_t[]){r, c}, &t));
  ct_tensor_free(v);
  return t;
}

static ct_status dummy_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)g;
  (void)dy;
  (void)dx;
  (void)user;
  return CT_OK;
}

static ct_status dummy_fn(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)n;
  (void)user;
  return ct_square(in[0], out);
}

Test(errors, null_arguments) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = vec(ctx, CT_FLOAT32, 4), *y = NULL, *i = vec(ctx, CT_INT32, 2);
  int64_t sh[1] = {4};
  float data[4] = {0};
  /* creation */
  EXPECT_FAIL(ct_tensor_from_data(NULL, CT_FLOAT32, 1, sh, data, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_tensor_from_data(ctx, CT_FLOAT32, 1, sh, data, NULL), CT_ERR_NULL);
  EXPECT_FAIL(ct_tensor_from_data(ctx, CT_FLOAT32, 1, sh, NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_tensor_from_data(ctx, CT_FLOAT32, 1, NULL, data, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_fill(NULL, CT_FLOAT32, 1, sh, 0, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_scalar(NULL, CT_FLOAT32, 0, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_zeros_like(NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_linspace(NULL, CT_FLOAT32, 0, 1, 3, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_random_normal(NULL, CT_FLOAT32, 1, sh, 0, 1, 1, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_random_uniform(ctx, CT_FLOAT32, 1, sh, 0, 1, 1, NULL), CT_ERR_NULL);
  /* read back */
  EXPECT_STATUS(ct_tensor_read(NULL, data, 16), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_read_f64(x, NULL, 4), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_item(NULL, &(double){0}), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_format(NULL, CT_FORMAT_REPR, (char[8]){0}, 8), CT_ERR_NULL);
  EXPECT_STATUS(ct_shape_format(x, NULL, 8), CT_ERR_NULL);
  /* ops of every kind */
  EXPECT_FAIL(ct_exp(NULL, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_exp(x, NULL), CT_ERR_NULL);
  EXPECT_FAIL(ct_add(x, NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_add(NULL, x, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_add(x, x, NULL), CT_ERR_NULL);
  EXPECT_FAIL(ct_mul_scalar(NULL, 2, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_rsub_scalar(2, NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_where(NULL, x, x, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_cast(NULL, CT_FLOAT64, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_sum(NULL, NULL, 0, false, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_mean(x, NULL, 0, false, NULL), CT_ERR_NULL);
  EXPECT_FAIL(ct_logsumexp(NULL, NULL, 0, false, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_argmax(NULL, 0, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_softmax(NULL, 0, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_log_softmax(x, 0, NULL), CT_ERR_NULL);
  EXPECT_FAIL(ct_reshape(x, 2, NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_transpose(NULL, NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_slice(NULL, NULL, NULL, NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_concat(NULL, 2, 0, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_concat((ct_tensor *[]){x, NULL}, 2, 0, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_stack((ct_tensor *[]){NULL, x}, 2, 0, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_broadcast_to(x, 1, NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_gather(x, NULL, 0, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_one_hot(NULL, 3, CT_FLOAT32, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_matmul(NULL, x, false, false, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_identity(NULL, &y), CT_ERR_NULL, y);
  EXPECT_FAIL(ct_stop_gradient(NULL, &y), CT_ERR_NULL, y);
  /* variables */
  EXPECT_FAIL(ct_variable_create(NULL, "v", true, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_variable_create(x, "v", true, NULL), CT_ERR_NULL);
  EXPECT_FAIL(ct_variable_scalar(NULL, 1, "v", true, &y), CT_ERR_NULL, y);
  EXPECT_STATUS(ct_variable_assign(NULL, x), CT_ERR_NULL);
  ct_tensor *v = NULL;
  OK(ct_variable_create(x, "v", true, &v));
  EXPECT_STATUS(ct_variable_assign_add(v, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_variable_value(v, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_variable_set_trainable(NULL, true), CT_ERR_NULL);
  /* tapes */
  ct_tape *tape = NULL;
  EXPECT_STATUS(ct_tape_begin(ctx, NULL, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_begin(NULL, NULL, &tape), CT_ERR_NULL);
  cr_assert_null(tape);
  EXPECT_STATUS(ct_tape_watch(NULL, x), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_end(NULL), CT_ERR_NULL);
  OK(ct_tape_begin(ctx, NULL, &tape));
  EXPECT_STATUS(ct_tape_watch(tape, NULL), CT_ERR_NULL);
  OK(ct_tape_watch(tape, x));
  OK(ct_square(x, &y));
  ct_tensor *g = (ct_tensor *)(uintptr_t)1;
  EXPECT_STATUS(ct_tape_gradient1(tape, NULL, x, &g), CT_ERR_NULL);
  cr_assert_null(g);
  EXPECT_STATUS(ct_tape_gradient1(tape, y, x, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_gradient(tape, &y, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, NULL), CT_ERR_NULL);
  /* the failed calls did not use the tape up */
  OK(ct_tape_gradient1(tape, y, x, &g));
  ts_assert_close(g, (double[]){0, 2, 4, 6}, 4, 0, 0, "gradient after failed calls");
  ct_tensor_free(g);
  ct_tensor_free(y);
  ct_tape_free(tape);
  /* contexts, registry, gradient check */
  EXPECT_STATUS(ct_context_create(NULL, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_context_device(NULL, &(ct_device_info){0}), CT_ERR_NULL);
  EXPECT_STATUS(ct_context_stats_get(ctx, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_context_sync(NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_register_gradient(NULL, dummy_grad, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_register_gradient("Anything", NULL, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_unregister_gradient(NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_custom_op_register(NULL), CT_ERR_NULL);
  EXPECT_FAIL(ct_custom_op_call(ctx, NULL, &x, 1, &y), CT_ERR_NULL, y);
  ct_gradcheck_report rep;
  EXPECT_STATUS(ct_gradcheck(ctx, NULL, NULL, &x, 1, NULL, &rep), CT_ERR_NULL);
  EXPECT_STATUS(ct_gradcheck(ctx, dummy_fn, NULL, &x, 1, NULL, NULL), CT_ERR_NULL);
  /* ct_errmsg() also reaches the context's own message */
  EXPECT_FAIL(ct_exp(i, &y), CT_ERR_DTYPE, y);
  cr_assert_str_eq(ct_context_errmsg(ctx), ct_errmsg());
  still_works(ctx);
  ct_tensor_free_n((ct_tensor *[]){x, i, v}, 3);
  ct_context_free(ctx);
}

Test(errors, released_tensors) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = vec(ctx, CT_FLOAT32, 4), *dead = vec(ctx, CT_FLOAT32, 4), *y = NULL, *v = NULL;
  OK(ct_variable_create(x, "v", true, &v));
  ct_tensor_free(dead);
  EXPECT_FAIL(ct_exp(dead, &y), CT_ERR_RELEASED, y);
  EXPECT_FAIL(ct_add(x, dead, &y), CT_ERR_RELEASED, y);
  EXPECT_FAIL(ct_add_scalar(dead, 1, &y), CT_ERR_RELEASED, y);
  EXPECT_FAIL(ct_sum(dead, NULL, 0, false, &y), CT_ERR_RELEASED, y);
  EXPECT_FAIL(ct_concat((ct_tensor *[]){x, dead}, 2, 0, &y), CT_ERR_RELEASED, y);
  EXPECT_FAIL(ct_reshape(dead, 1, (int64_t[]){4}, &y), CT_ERR_RELEASED, y);
  EXPECT_FAIL(ct_zeros_like(dead, &y), CT_ERR_RELEASED, y);
  EXPECT_FAIL(ct_variable_create(dead, "w", true, &y), CT_ERR_RELEASED, y);
  EXPECT_STATUS(ct_variable_assign(v, dead), CT_ERR_RELEASED);
  double d[4];
  EXPECT_STATUS(ct_tensor_read_f64(dead, d, 4), CT_ERR_RELEASED);
  char buf[64];
  EXPECT_STATUS(ct_tensor_format(dead, CT_FORMAT_VALUES, buf, sizeof buf), CT_ERR_RELEASED);
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  EXPECT_STATUS(ct_tape_watch(tape, dead), CT_ERR_RELEASED);
  ct_tape_free(tape);
  /* inspection of a released handle answers "nothing" */
  cr_assert_eq(ct_tensor_rank(dead), -1);
  cr_assert_null(ct_tensor_shape(dead));
  cr_assert_eq(ct_tensor_size(dead), -1);
  cr_assert_null(ct_tensor_context(dead));
  ct_tensor_free(dead); /* a second free is ignored */
  still_works(ctx);
  ts_assert_close(v, (double[]){0, 1, 2, 3}, 4, 0, 0, "variable after a failed assign");
  ct_tensor_free_n((ct_tensor *[]){x, v}, 2);
  ct_context_free(ctx);
}

Test(errors, mixed_contexts) {
  ct_context *c1 = ts_ctx(), *c2 = ts_ctx();
  ct_tensor *a = vec(c1, CT_FLOAT32, 4), *b = vec(c2, CT_FLOAT32, 4), *y = NULL;
  ct_tensor *m1 = mat(c1, CT_FLOAT32, 2, 2), *m2 = mat(c2, CT_FLOAT32, 2, 2), *i2 = vec(c2, CT_INT32, 2);
  ct_tensor *cond = vec(c2, CT_INT32, 4), *v = NULL;
  EXPECT_FAIL(ct_add(a, b, &y), CT_ERR_CONTEXT, y);
  EXPECT_FAIL(ct_less(a, b, &y), CT_ERR_CONTEXT, y);
  EXPECT_FAIL(ct_where(cond, a, a, &y), CT_ERR_CONTEXT, y);
  EXPECT_FAIL(ct_concat((ct_tensor *[]){a, b}, 2, 0, &y), CT_ERR_CONTEXT, y);
  EXPECT_FAIL(ct_stack((ct_tensor *[]){a, b}, 2, 0, &y), CT_ERR_CONTEXT, y);
  EXPECT_FAIL(ct_matmul(m1, m2, false, false, &y), CT_ERR_CONTEXT, y);
  EXPECT_FAIL(ct_gather(a, i2, 0, &y), CT_ERR_CONTEXT, y);
  OK(ct_variable_create(a, "v", true, &v));
  EXPECT_STATUS(ct_variable_assign(v, b), CT_ERR_CONTEXT);
  EXPECT_STATUS(ct_variable_assign_sub(v, b), CT_ERR_CONTEXT);
  ct_tape *tape = NULL;
  OK(ct_tape_begin(c1, NULL, &tape));
  EXPECT_STATUS(ct_tape_watch(tape, b), CT_ERR_CONTEXT);
  OK(ct_tape_watch(tape, a));
  OK(ct_square(a, &y));
  ct_tensor *g = NULL;
  EXPECT_STATUS(ct_tape_gradient1(tape, y, b, &g), CT_ERR_CONTEXT);
  EXPECT_STATUS(ct_tape_gradient1(tape, b, a, &g), CT_ERR_CONTEXT);
  cr_assert_null(g);
  OK(ct_tape_gradient1(tape, y, a, &g)); /* the tape was not used up by the failures */
  ts_assert_close(g, (double[]){0, 2, 4, 6}, 4, 0, 0, "gradient after mixed-context errors");
  ct_tensor_free_n((ct_tensor *[]){y, g}, 2);
  ct_tape_free(tape);
  still_works(c1);
  still_works(c2);
  ct_tensor_free_n((ct_tensor *[]){a, b, m1, m2, i2, cond, v}, 7);
  ct_context_free(c1);
  ct_context_free(c2);
}

Test(errors, wrong_dtypes) {
  ct_context *ctx = ts_ctx();
  /* d: float64, or a second int32 vector on a device without float64 */
  const bool fp64 = ts_has_fp64(ctx);
  ct_tensor *f = vec(ctx, CT_FLOAT32, 4), *d = vec(ctx, fp64 ? CT_FLOAT64 : CT_INT32, 4), *i = vec(ctx, CT_INT32, 4),
            *y = NULL;
  ct_tensor *fm = mat(ctx, CT_FLOAT32, 2, 2), *im = mat(ctx, CT_INT32, 2, 2);
  /* float-only ops on int32 */
  EXPECT_FAIL(ct_exp(i, &y), CT_ERR_DTYPE, y);
  cr_assert(strstr(ct_errmsg(), "int32"), "the message should name the dtype: %s", ct_errmsg());
  EXPECT_FAIL(ct_sqrt(i, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_sigmoid(i, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_floor(i, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_pow(i, i, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_logsumexp(i, NULL, 0, false, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_softmax(i, 0, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_matmul(im, im, false, false, &y), CT_ERR_DTYPE, y);
  /* operands of different dtypes */
  EXPECT_FAIL(ct_add(f, d, &y), CT_ERR_DTYPE, y);
  cr_assert(strstr(ct_errmsg(), "float32") && strstr(ct_errmsg(), ct_dtype_name(ct_tensor_dtype(d))), "%s", ct_errmsg());
  EXPECT_FAIL(ct_maximum(f, i, &y), CT_ERR_DTYPE, y);
  if (fp64) EXPECT_FAIL(ct_equal(d, i, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_where(i, f, d, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_concat((ct_tensor *[]){f, d}, 2, 0, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_matmul(fm, im, false, false, &y), CT_ERR_DTYPE, y);
  /* indices must be int32 */
  EXPECT_FAIL(ct_gather(f, f, 0, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_one_hot(fp64 ? d : f, 3, CT_FLOAT32, &y), CT_ERR_DTYPE, y);
  /* invalid dtype values */
  EXPECT_FAIL(ct_zeros(ctx, (ct_dtype)7, 1, (int64_t[]){2}, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_cast(f, (ct_dtype)-1, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_one_hot(i, 3, (ct_dtype)13, &y), CT_ERR_DTYPE, y);
  EXPECT_FAIL(ct_random_uniform(ctx, CT_INT32, 1, (int64_t[]){2}, 0, 1, 1, &y), CT_ERR_DTYPE, y);
  cr_assert_eq(ct_dtype_size((ct_dtype)9), 0);
  cr_assert_str_eq(ct_dtype_name((ct_dtype)9), "invalid");
  still_works(ctx);
  ct_tensor_free_n((ct_tensor *[]){f, d, i, fm, im}, 5);
  ct_context_free(ctx);
}

Test(errors, shapes_that_do_not_broadcast) {
  ct_context *ctx = ts_ctx();
  ct_tensor *a = mat(ctx, CT_FLOAT32, 2, 3), *b = mat(ctx, CT_FLOAT32, 3, 2), *c = vec(ctx, CT_FLOAT32, 2), *y = NULL;
  ct_tensor *m = vec(ctx, CT_INT32, 6), *mm = NULL;
  EXPECT_FAIL(ct_add(a, b, &y), CT_ERR_SHAPE, y);
  cr_assert(strstr(ct_errmsg(), "(2, 3)") && strstr(ct_errmsg(), "(3, 2)"), "the message should give both shapes: %s",
            ct_errmsg());
  EXPECT_FAIL(ct_mul(a, c, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_greater(c, a, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_where(m, a, a, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_broadcast_to(a, 2, (int64_t[]){4, 3}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_matmul(a, a, false, false, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_concat((ct_tensor *[]){a, b}, 2, 0, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_concat((ct_tensor *[]){a, c}, 2, 0, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_stack((ct_tensor *[]){a, b}, 2, 0, &y), CT_ERR_SHAPE, y);
  ct_tensor *v = NULL;
  OK(ct_variable_create(a, "v", true, &v));
  EXPECT_STATUS(ct_variable_assign(v, b), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_variable_assign_add(v, c), CT_ERR_SHAPE);
  ts_assert_close(v, (double[]){0, 1, 2, 3, 4, 5}, 6, 0, 0, "variable after failed assignments");
  OK(ct_reshape(m, 2, (int64_t[]){2, 3}, &mm));
  OK(ct_where(mm, a, a, &y)); /* matching shapes still work */
  ct_tensor_free(y);
  still_works(ctx);
  ct_tensor_free_n((ct_tensor *[]){a, b, c, m, mm, v}, 6);
  ct_context_free(ctx);
}

Test(errors, bad_axes) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *v = vec(ctx, CT_FLOAT32, 24), *idx = vec(ctx, CT_INT32, 2);
  OK(ct_reshape(v, 3, (int64_t[]){2, 3, 4}, &x));
  EXPECT_FAIL(ct_sum(x, (int[]){3}, 1, false, &y), CT_ERR_AXIS, y);
  cr_assert(strstr(ct_errmsg(), "3"), "%s", ct_errmsg());
  EXPECT_FAIL(ct_sum(x, (int[]){-4}, 1, false, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_max(x, (int[]){0, 0}, 2, false, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_mean(x, (int[]){1, -2}, 2, true, &y), CT_ERR_AXIS, y); /* the same axis twice */
  EXPECT_FAIL(ct_logsumexp(x, (int[]){2, 5}, 2, false, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_prod(x, (int[]){0, 1, 2, 0, 1, 2, 0, 1, 2}, 9, false, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_argmax(x, 3, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_argmin(x, -4, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_softmax(x, 3, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_log_softmax(x, -4, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_concat((ct_tensor *[]){x, x}, 2, 3, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_stack((ct_tensor *[]){x, x}, 2, 4, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_stack((ct_tensor *[]){x, x}, 2, -5, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_gather(x, idx, 3, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_transpose(x, (int[]){0, 0, 1}, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_transpose(x, (int[]){0, 1, 3}, &y), CT_ERR_AXIS, y);
  /* scalars have no axis */
  ct_tensor *s = NULL;
  OK(ct_scalar(ctx, CT_FLOAT32, 1, &s));
  EXPECT_FAIL(ct_argmax(s, 0, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_softmax(s, 0, &y), CT_ERR_AXIS, y);
  EXPECT_FAIL(ct_sum(s, (int[]){0}, 1, false, &y), CT_ERR_AXIS, y);
  /* valid negative axes still work */
  OK(ct_sum(x, (int[]){-1, 0}, 2, false, &y));
  ts_assert_close(y, (double[]){0 + 1 + 2 + 3 + 12 + 13 + 14 + 15, 4 + 5 + 6 + 7 + 16 + 17 + 18 + 19,
                                8 + 9 + 10 + 11 + 20 + 21 + 22 + 23},
                  3, 0, 0, "sum over (-1, 0)");
  ct_tensor_free(y);
  still_works(ctx);
  ct_tensor_free_n((ct_tensor *[]){x, v, idx, s}, 4);
  ct_context_free(ctx);
}

Test(errors, bad_shapes_and_sizes) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = vec(ctx, CT_FLOAT32, 12), *y = NULL;
  /* reshape to a wrong size, two -1, negative extents, rank > 8 */
  EXPECT_FAIL(ct_reshape(x, 2, (int64_t[]){5, 3}, &y), CT_ERR_SHAPE, y);
  cr_assert(strstr(ct_errmsg(), "(12,)") && strstr(ct_errmsg(), "(5, 3)"), "%s", ct_errmsg());
  EXPECT_FAIL(ct_reshape(x, 2, (int64_t[]){-1, -1}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_reshape(x, 2, (int64_t[]){-1, 5}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_reshape(x, 2, (int64_t[]){-3, -4}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_reshape(x, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 3, 4}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_reshape(x, -1, (int64_t[]){12}, &y), CT_ERR_SHAPE, y);
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_FAIL(ct_zeros(ctx, CT_FLOAT32, 9, nine, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_tensor_from_data(ctx, CT_FLOAT32, 9, nine, (float[1]){0}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_broadcast_to(x, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 12}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_fill(ctx, CT_FLOAT32, 2, (int64_t[]){3, -1}, 0, &y), CT_ERR_SHAPE, y);
  cr_assert(strstr(ct_errmsg(), "-1"), "%s", ct_errmsg());
  EXPECT_FAIL(ct_random_normal(ctx, CT_FLOAT32, 1, (int64_t[]){-5}, 0, 1, 1, &y), CT_ERR_SHAPE, y);
  ct_tensor *r8 = NULL;
  OK(ct_reshape(x, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 3, 4}, &r8));
  EXPECT_FAIL(ct_stack(&r8, 1, 0, &y), CT_ERR_SHAPE, y);        /* rank 9 */
  ct_tensor *i8 = NULL, *iv = vec(ctx, CT_INT32, 12);
  OK(ct_reshape(iv, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 3, 4}, &i8));
  EXPECT_FAIL(ct_one_hot(i8, 2, CT_FLOAT32, &y), CT_ERR_SHAPE, y); /* rank 9 */
  EXPECT_FAIL(ct_gather(r8, i8, 0, &y), CT_ERR_SHAPE, y);         /* rank 15 */
  /* element counts that overflow 64 bits, or exceed what a tensor may hold */
  int64_t huge[4] = {INT64_C(1) << 20, INT64_C(1) << 20, INT64_C(1) << 20, INT64_C(1) << 20};
  EXPECT_FAIL(ct_zeros(ctx, CT_FLOAT32, 4, huge, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_reshape(x, 4, huge, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_broadcast_to(x, 5, (int64_t[]){INT64_C(1) << 31, INT64_C(1) << 31, 1, 1, 12}, &y), CT_ERR_SHAPE, y);
  EXPECT_FAIL(ct_zeros(ctx, CT_FLOAT32, 2, (int64_t[]){INT64_MAX, 2}, &y), CT_ERR_SHAPE, y);
  /* allocations beyond the device's largest allocation */
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  int64_t big = (int64_t)(info.max_alloc_bytes / 4) + 1024;
  EXPECT_FAIL(ct_zeros(ctx, CT_FLOAT32, 1, &big, &y), CT_ERR_OUT_OF_MEMORY, y);
  cr_assert(strstr(ct_errmsg(), "bytes"), "%s", ct_errmsg());
  int64_t big8 = (int64_t)(info.max_alloc_bytes / 8) + 1024;
  const ct_status want64 = info.fp64 ? CT_ERR_OUT_OF_MEMORY : CT_ERR_UNSUPPORTED;
  EXPECT_FAIL(ct_fill(ctx, CT_FLOAT64, 1, &big8, 1, &y), want64, y);
  EXPECT_FAIL(ct_random_uniform(ctx, CT_FLOAT64, 1, &big8, 0, 1, 1, &y), want64, y);
  /* no element limit of the library's own: an int32 tensor one element past the device's largest
   * allocation is refused by the allocation, with the sizes named */
  int64_t too_many = (int64_t)(info.max_alloc_bytes / 4) + 1;
  EXPECT_FAIL(ct_zeros(ctx, CT_INT32, 1, &too_many, &y), CT_ERR_OUT_OF_MEMORY, y);
  char want_bytes[32];
  snprintf(want_bytes, sizeof want_bytes, "%llu", (unsigned long long)too_many * 4u);
  cr_assert(strstr(ct_errmsg(), want_bytes), "\"%s\" does not name %s bytes", ct_errmsg(), want_bytes);
  /* an op whose result would be too large */
  ct_tensor *tall = NULL, *wide = NULL;
  const ct_dtype fdt = ts_best_float(ctx);
  int64_t side = (int64_t)sqrt((double)(info.max_alloc_bytes / ct_dtype_size(fdt))) + 64;
  OK(ct_zeros(ctx, fdt, 2, (int64_t[]){side, 1}, &tall));
  OK(ct_zeros(ctx, fdt, 2, (int64_t[]){1, side}, &wide));
  EXPECT_FAIL(ct_add(tall, wide, &y), CT_ERR_OUT_OF_MEMORY, y);
  EXPECT_FAIL(ct_matmul(tall, wide, false, false, &y), CT_ERR_OUT_OF_MEMORY, y);
  /* slicing with step 0, bad counts */
  EXPECT_FAIL(ct_slice(x, NULL, NULL, (int64_t[]){0}, &y), CT_ERR_INVALID, y);
  EXPECT_FAIL(ct_concat(&x, 0, 0, &y), CT_ERR_INVALID, y);
  EXPECT_FAIL(ct_one_hot(iv, -1, CT_FLOAT32, &y), CT_ERR_INVALID, y);
  ct_context_stats st;
  OK(ct_context_stats_get(ctx, &st));
  cr_assert_lt(st.bytes_in_use, 64u << 20, "failed allocations left %llu bytes in use", (unsigned long long)st.bytes_in_use);
  still_works(ctx);
  ct_tensor_free_n((ct_tensor *[]){x, r8, i8, iv, tall, wide}, 6);
  ct_context_free(ctx);
}

static ct_status exp_fn(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)n;
  (void)user;
  return ct_exp(in[0], out);
}

/* A device without float64: every float64 request is CT_ERR_UNSUPPORTED, with a message that
 * names the device; float32 and int32 keep working. */
Test(errors, float64_requests_on_a_device_without_it) {
  ct_context *ctx = ts_ctx();
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  if (info.fp64) cr_skip_test("checks a device without float64; device \"%s\" has it", info.name);
  ct_tensor *f = vec(ctx, CT_FLOAT32, 4), *i = vec(ctx, CT_INT32, 4), *y = NULL;
  const int64_t sh[1] = {4};
  const double host[4] = {1, 2, 3, 4};
  /* each one fails with a message that names the device */
#define NO64(call)                                                                                    \
  do {                                                                                                \
    EXPECT_FAIL(call, CT_ERR_UNSUPPORTED, y);                                                         \
    cr_assert(strstr(ct_errmsg(), "float64") && strstr(ct_errmsg(), info.name), "%s: %s", #call, ct_errmsg()); \
  } while (0)
  NO64(ct_zeros(ctx, CT_FLOAT64, 1, sh, &y));
  NO64(ct_fill(ctx, CT_FLOAT64, 1, sh, 1, &y));
  NO64(ct_tensor_from_data(ctx, CT_FLOAT64, 1, sh, host, &y));
  NO64(ct_linspace(ctx, CT_FLOAT64, 0, 1, 4, &y));
  NO64(ct_range(ctx, CT_FLOAT64, 0, 4, 1, &y));
  NO64(ct_random_uniform(ctx, CT_FLOAT64, 1, sh, 0, 1, 1, &y));
  NO64(ct_random_normal(ctx, CT_FLOAT64, 1, sh, 0, 1, 1, &y));
  NO64(ct_cast(f, CT_FLOAT64, &y));
  NO64(ct_one_hot(i, 3, CT_FLOAT64, &y));
#undef NO64
  /* the gradient checker runs in float32 and says so */
  ct_gradcheck_report r;
  OK(ct_gradcheck(ctx, exp_fn, NULL, &f, 1, NULL, &r));
  cr_assert_eq(r.dtype, CT_FLOAT32);
  cr_assert(r.passed && strncmp(r.message, "float32: ", 9) == 0, "%s", r.message);
  still_works(ctx);
  ct_tensor_free_n((ct_tensor *[]){f, i}, 2);
  ct_context_free(ctx);
}
