/* Four places where the tape follows TensorFlow's GradientTape exactly (docs/tape.md, "Where the
 * tape follows TensorFlow"): a variable's read is recorded; a persistent tape records the
 * gradients it computes while it records; jacobians of zero-size tensors are zero-size tensors;
 * batch_jacobian needs rank >= 2 and says which argument is wrong. */
#include "support.h"
#include <math.h>
#include <string.h>

#define SH(...) ((const int64_t[]){__VA_ARGS__})

static ct_tensor *var(ct_context *ctx, double v, const char *name) {
  ct_tensor *t = NULL;
  OK(ct_variable_scalar(ctx, v, name, true, &t));
  return t;
}

/* ---- 1. reading a variable inside a tape is recorded ----------------------------------------- */
Test(tf_semantics, a_variable_read_is_recorded) {
  ct_context *ctx = ts_ctx();
  ct_tensor *v = var(ctx, 3.0, "v");
  /* with tf.GradientTape() as t: r = v.read_value()  ->  t.gradient(r, v) == 1 */
  ct_tape *t = ts_tape(ctx, true, true);
  ct_tensor *r = NULL, *y = NULL;
  OK(ct_variable_value(v, &r));
  cr_assert(!ct_tensor_is_variable(r));
  cr_assert_neq(ct_tensor_id(r), ct_tensor_id(v), "the read is a new tensor");
  OK(ct_mul(r, r, &y));
  OK(ct_tape_end(t));
  cr_assert_eq(ct_tape_size(t), 2, "the read and the product are recorded");
  ct_tensor *w[1] = {NULL};
  int n = 0;
  OK(ct_tape_watched_variables(t, w, 1, &n));
  cr_assert_eq(n, 1, "reading a trainable variable watches it");
  cr_assert_str_eq(ct_variable_name(w[0]), "v:0");
  ct_tensor *g = ts_grad1(t, r, v);
  cr_assert_not_null(g, "d read / d v is 1, not None");
  cr_assert_float_eq(ts_item(g), 1.0, 0);
  ct_tensor_free(g);
  g = ts_grad1(t, y, v);
  cr_assert_float_eq(ts_item(g), 6.0, 1e-6, "d (read * read) / d v = 2 v");
  ct_tensor_free(g);
  ct_tape_free(t);
  ct_tensor_free(y);
  ct_tensor_free(r);
  /* a read made before the tape began is a constant to it */
  OK(ct_variable_value(v, &r));
  t = ts_tape(ctx, false, true);
  OK(ct_mul(r, r, &y));
  OK(ct_tape_end(t));
  OK(ct_tape_gradient1(t, y, v, &g));
  cr_assert_null(g, "an earlier read does not connect");
  ct_tape_free(t);
  ct_tensor_free(y);
  ct_tensor_free(r);
  /* without watching accessed variables, the read connects only when the variable is watched */
  for (int watch = 0; watch < 2; ++watch) {
    t = ts_tape(ctx, false, false);
    if (watch) OK(ct_tape_watch(t, v));
    OK(ct_variable_value(v, &r));
    OK(ct_tape_end(t));
    OK(ct_tape_gradient1(t, r, v, &g));
    if (watch) cr_assert_float_eq(ts_item(g), 1.0, 0);
    else cr_assert_null(g);
    ct_tensor_free(g);
    ct_tape_free(t);
    ct_tensor_free(r);
  }
  /* a non-trainable variable is watched only explicitly */
  ct_tensor *frozen = NULL;
  OK(ct_variable_scalar(ctx, 2.0, "frozen", false, &frozen));
  t = ts_tape(ctx, false, true);
  OK(ct_variable_value(frozen, &r));
  OK(ct_tape_end(t));
  OK(ct_tape_gradient1(t, r, frozen, &g));
  cr_assert_null(g);
  ct_tape_free(t);
  ct_tensor_free(r);
  ct_tensor_free(frozen);
  ct_tensor_free(v);
  ct_context_free(ctx);
}

/* ---- 2. a persistent tape records the gradients it computes while recording ------------------ */
Test(tf_semantics, one_persistent_tape_gives_higher_derivatives) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = var(ctx, 2.0, "x");
  /* with tf.GradientTape(persistent=True) as t:
   *   y = x**3; d1 = t.gradient(y, x); d2 = t.gradient(d1, x); d3 = t.gradient(d2, x) */
  ct_tape *t = ts_tape(ctx, true, true);
  ct_tensor *y = NULL;
  OK(ct_pow_scalar(x, 3.0, &y));
  int before = ct_tape_size(t);
  ct_tensor *d1 = ts_grad1(t, y, x);
  cr_assert_gt(ct_tape_size(t), before, "the gradient computation was recorded");
  ct_tensor *d2 = ts_grad1(t, d1, x);
  ct_tensor *d3 = ts_grad1(t, d2, x);
  ct_tensor *d4 = NULL;
  OK(ct_tape_gradient(t, &d3, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, &d4));
  OK(ct_tape_end(t));
  cr_assert_float_eq(ts_item(d1), 12.0, 1e-5, "3 x^2");
  cr_assert_float_eq(ts_item(d2), 12.0, 1e-5, "6 x");
  cr_assert_float_eq(ts_item(d3), 6.0, 1e-5, "6");
  cr_assert(d4 == NULL || ts_item(d4) == 0.0, "the fourth derivative of x^3 is 0 or unconnected");
  /* once ended, gradients are no longer recorded */
  int ended = ct_tape_size(t);
  ct_tensor *again = ts_grad1(t, y, x);
  cr_assert_eq(ct_tape_size(t), ended);
  cr_assert_float_eq(ts_item(again), 12.0, 1e-5);
  ct_tensor *tmp[] = {y, d1, d2, d3, d4, again};
  ct_tensor_free_n(tmp, 6);
  ct_tape_free(t);
  /* paused: not recorded either */
  t = ts_tape(ctx, true, true);
  OK(ct_pow_scalar(x, 3.0, &y));
  OK(ct_tape_stop_recording(t));
  before = ct_tape_size(t);
  d1 = ts_grad1(t, y, x);
  cr_assert_eq(ct_tape_size(t), before);
  OK(ct_tape_resume_recording(t));
  OK(ct_tape_gradient1(t, d1, x, &d2));
  cr_assert_null(d2, "a gradient computed while paused is a constant to the tape");
  ct_tensor_free(d1);
  ct_tensor_free(y);
  ct_tape_free(t);
  /* a non-persistent tape never records its own gradient: after it, it is used up */
  t = ts_tape(ctx, false, true);
  OK(ct_pow_scalar(x, 3.0, &y));
  d1 = ts_grad1(t, y, x);
  cr_assert_eq(ct_tape_size(t), 0, "released");
  EXPECT_STATUS(ct_tape_gradient1(t, d1, x, &d2), CT_ERR_TAPE_USED);
  ct_tensor_free(d1);
  ct_tensor_free(y);
  ct_tape_free(t);
  /* a jacobian on a recording persistent tape is recorded too: the Hessian from one tape */
  const double xv[2] = {1.0, 2.0};
  ct_tensor *xs = ts_tensor(ctx, ts_best_float(ctx), 1, SH(2), xv), *c = NULL, *s = NULL, *jac = NULL, *hes = NULL;
  t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, xs));
  OK(ct_pow_scalar(xs, 3.0, &c));
  OK(ct_sum(c, NULL, 0, false, &s));      /* s = x0^3 + x1^3 */
  OK(ct_tape_gradient1(t, s, xs, &jac));  /* 3 x^2 */
  OK(ct_tape_jacobian(t, jac, xs, CT_UNCONNECTED_NONE, &hes));
  OK(ct_tape_end(t));
  ts_assert_shape(hes, 2, SH(2, 2), "hessian");
  const double h[4] = {6, 0, 0, 12};
  ts_assert_close(hes, h, 4, 1e-5, 1e-5, "diag(6 x)");
  ct_tensor *tmp2[] = {xs, c, s, jac, hes};
  ct_tensor_free_n(tmp2, 5);
  ct_tape_free(t);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* A gradient for Cos that runs one op and then fails. */
static ct_status failing_cos_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)user;
  ct_tensor *t = NULL;
  ct_status s = ct_mul(dy, ct_grad_ctx_input(g, 0), &t);
  ct_tensor_free(t);
  (void)dx;
  return s == CT_OK ? CT_ERR_UNSUPPORTED : s;
}

Test(tf_semantics, a_failed_gradient_leaves_a_recording_tape_as_it_was) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = var(ctx, 0.5, "x"), *y = NULL, *z = NULL, *g = NULL;
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_cos(x, &y));
  OK(ct_mul(y, x, &z));
  int n = ct_tape_size(t);
  uint64_t held = 0, held_after = 0;
  OK(ct_tape_saved_bytes(t, &held));
  OK(ct_register_gradient("Cos", failing_cos_grad, NULL));
  EXPECT_STATUS(ct_tape_gradient1(t, z, x, &g), CT_ERR_UNSUPPORTED);
  cr_assert_null(g);
  cr_assert_eq(ct_tape_size(t), n, "what the failed call recorded of itself is gone");
  OK(ct_tape_saved_bytes(t, &held_after));
  cr_assert_eq(held_after, held);
  OK(ct_unregister_gradient("Cos"));
  g = ts_grad1(t, z, x); /* cos x - x sin x */
  cr_assert_float_eq(ts_item(g), cos(0.5) - 0.5 * sin(0.5), 1e-5);
  OK(ct_tape_end(t));
  ct_tensor *tmp[] = {x, y, z, g};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(t);
  ct_context_free(ctx);
}

/* ---- 3. jacobians of zero-size tensors are zero-size tensors --------------------------------- */
Test(tf_semantics, jacobians_of_zero_size_tensors) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  ct_tensor *e = NULL, *eb = NULL, *eb2 = NULL, *w = NULL, *r[8] = {NULL}, *j = NULL;
  OK(ct_zeros(ctx, dt, 1, SH(0), &e));
  OK(ct_zeros(ctx, dt, 2, SH(0, 3), &eb));
  OK(ct_zeros(ctx, dt, 2, SH(2, 0), &eb2));
  const double wv[3] = {1, 2, 3};
  w = ts_tensor(ctx, dt, 1, SH(3), wv);
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, e));
  OK(ct_tape_watch(t, eb));
  OK(ct_tape_watch(t, eb2));
  OK(ct_tape_watch(t, w));
  OK(ct_mul_scalar(e, 2.0, &r[0]));          /* (0,) from (0,) */
  OK(ct_square(eb, &r[1]));                  /* (0, 3) from (0, 3) */
  OK(ct_mul_scalar(eb2, 3.0, &r[2]));        /* (2, 0) from (2, 0) */
  OK(ct_sum(e, NULL, 0, false, &r[3]));      /* () from (0,): 0 */
  OK(ct_add(w, r[3], &r[4]));                /* (3,) depends on e */
  OK(ct_tape_end(t));
  OK(ct_tape_jacobian(t, r[0], e, CT_UNCONNECTED_NONE, &j));
  cr_assert_not_null(j, "a zero-size result, not None");
  ts_assert_shape(j, 2, SH(0, 0), "jacobian of (0,) by (0,)");
  ct_tensor_free(j);
  OK(ct_tape_jacobian(t, r[0], w, CT_UNCONNECTED_NONE, &j));
  cr_assert_null(j, "an unconnected zero-size target stays None");
  OK(ct_tape_jacobian(t, r[0], w, CT_UNCONNECTED_ZERO, &j));
  ts_assert_shape(j, 2, SH(0, 3), "zeros when asked for");
  ct_tensor_free(j);
  OK(ct_tape_jacobian(t, r[4], e, CT_UNCONNECTED_NONE, &j));
  cr_assert_not_null(j, "a zero-size source of a connected target");
  ts_assert_shape(j, 2, SH(3, 0), "jacobian of (3,) by (0,)");
  ct_tensor_free(j);
  OK(ct_tape_batch_jacobian(t, r[1], eb, CT_UNCONNECTED_NONE, &j));
  cr_assert_not_null(j);
  ts_assert_shape(j, 3, SH(0, 3, 3), "batch of none");
  ct_tensor_free(j);
  OK(ct_tape_batch_jacobian(t, r[2], eb2, CT_UNCONNECTED_NONE, &j));
  cr_assert_not_null(j);
  ts_assert_shape(j, 3, SH(2, 0, 0), "examples without elements");
  ct_tensor_free(j);
  ct_tape_free(t);
  /* on a non-persistent tape the zero-size jacobian is its one gradient computation */
  t = ts_tape(ctx, false, true);
  OK(ct_tape_watch(t, e));
  ct_tensor_free(r[0]);
  OK(ct_mul_scalar(e, 2.0, &r[0]));
  OK(ct_tape_end(t));
  OK(ct_tape_jacobian(t, r[0], e, CT_UNCONNECTED_NONE, &j));
  ts_assert_shape(j, 2, SH(0, 0), "non-persistent");
  ct_tensor_free(j);
  EXPECT_STATUS(ct_tape_jacobian(t, r[0], e, CT_UNCONNECTED_NONE, &j), CT_ERR_TAPE_USED);
  cr_assert_null(j);
  ct_tape_free(t);
  ct_tensor_free_n(r, 8);
  ct_tensor *tmp[] = {e, eb, eb2, w};
  ct_tensor_free_n(tmp, 4);
  ct_context_free(ctx);
}

/* ---- 4. batch_jacobian needs rank >= 2 for target and source --------------------------------- */
Test(tf_semantics, batch_jacobian_needs_rank_two_and_names_the_argument) {
  ct_context *ctx = ts_ctx();
  const double v[6] = {1, 2, 3, 4, 5, 6};
  ct_dtype dt = ts_best_float(ctx);
  ct_tensor *x1 = ts_tensor(ctx, dt, 1, SH(3), v), *x2 = ts_tensor(ctx, dt, 2, SH(3, 2), v), *r[4] = {NULL}, *j = NULL;
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, x1));
  OK(ct_tape_watch(t, x2));
  OK(ct_square(x1, &r[0]));                    /* rank 1 */
  OK(ct_square(x2, &r[1]));                    /* rank 2 */
  OK(ct_sum(x2, (const int[]){1}, 1, false, &r[2])); /* (3,) from (3, 2) */
  OK(ct_reshape(x1, 2, SH(3, 1), &r[3]));      /* (3, 1) from (3,) */
  OK(ct_tape_end(t));
  /* TF 2: "Shape (3,) must have rank at least 2"; here the message also names the argument */
  EXPECT_STATUS(ct_tape_batch_jacobian(t, r[0], x1, CT_UNCONNECTED_NONE, &j), CT_ERR_SHAPE);
  cr_assert_null(j);
  cr_assert(strstr(ct_errmsg(), "the target has shape (3,)"), "message: %s", ct_errmsg());
  cr_assert(strstr(ct_errmsg(), "rank >= 2"), "message: %s", ct_errmsg());
  EXPECT_STATUS(ct_tape_batch_jacobian(t, r[2], x2, CT_UNCONNECTED_NONE, &j), CT_ERR_SHAPE);
  cr_assert(strstr(ct_errmsg(), "the target has shape (3,)"), "message: %s", ct_errmsg());
  EXPECT_STATUS(ct_tape_batch_jacobian(t, r[3], x1, CT_UNCONNECTED_NONE, &j), CT_ERR_SHAPE);
  cr_assert(strstr(ct_errmsg(), "the source has shape (3,)"), "message: %s", ct_errmsg());
  /* rank 2 both: accepted */
  OK(ct_tape_batch_jacobian(t, r[1], x2, CT_UNCONNECTED_NONE, &j));
  ts_assert_shape(j, 3, SH(3, 2, 2), "per example");
  const double want[12] = {2, 0, 0, 4, 6, 0, 0, 8, 10, 0, 0, 12};
  ts_assert_close(j, want, 12, 1e-6, 1e-6, "diag(2 x[b])");
  ct_tensor_free(j);
  ct_tape_free(t);
  ct_tensor_free_n(r, 4);
  ct_tensor_free(x1);
  ct_tensor_free(x2);
  ct_context_free(ctx);
}
