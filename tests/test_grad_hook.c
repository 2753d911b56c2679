/* ct_tape_gradient_with_hook: each source's gradient is handed to the hook once, as soon as it is
 * final during the backward walk (the last layer's first), with the value the call returns. */
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "backend.h"
#include "ct_internal.h"

typedef struct {
  int order[8], n;
  double first_value[8]; /* element 0 of the gradient when handed over */
  int fail_at;           /* call number that returns an error (-1: none) */
} calls;

static ct_status record(int index, const ct_tensor *grad, void *user) {
  calls *c = user;
  if (c->n == c->fail_at) return CT_ERR_IO;
  double v[64];
  cr_assert(ct_tensor_size(grad) <= 64);
  OK(ct_tensor_read_f64(grad, v, 64));
  c->order[c->n] = index;
  c->first_value[c->n] = v[0];
  c->n++;
  return CT_OK;
}

/* loss = sum(tanh(x @ w1) @ w2) + sum(w1 * w1): w1 is read by the first and by the last op */
static void model(ct_context *ctx, ct_tensor **vars, ct_tape **tape, ct_tensor **loss) {
  int64_t xs[2] = {3, 4}, w1s[2] = {4, 5}, w2s[2] = {5, 2}, bs[1] = {2};
  ct_tensor *x, *h, *a, *o, *sq, *s1, *s2, *init;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, xs, 0, 1, 1, &x));
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, w1s, 0, 1, 2, &init));
  OK(ct_variable_create(init, "w1", true, &vars[0]));
  ct_tensor_free(init);
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, w2s, 0, 1, 3, &init));
  OK(ct_variable_create(init, "w2", true, &vars[1]));
  ct_tensor_free(init);
  OK(ct_zeros(ctx, CT_FLOAT32, 1, bs, &init));
  OK(ct_variable_create(init, "unused", true, &vars[2]));
  ct_tensor_free(init);
  OK(ct_tape_begin(ctx, NULL, tape));
  OK(ct_matmul(x, vars[0], false, false, &h));
  OK(ct_tanh(h, &a));
  OK(ct_matmul(a, vars[1], false, false, &o));
  OK(ct_sum(o, NULL, 0, false, &s1));
  OK(ct_mul(vars[0], vars[0], &sq));
  OK(ct_sum(sq, NULL, 0, false, &s2));
  OK(ct_add(s1, s2, loss));
  OK(ct_tape_end(*tape));
  ct_tensor *tmp[] = {x, h, a, o, sq, s1, s2};
  ct_tensor_free_n(tmp, 7);
}

Test(grad_hook, each_source_once_when_final) {
  ct_context *ctx = ts_ctx();
  ct_tensor *vars[3], *loss, *grads[3], *want[3];
  ct_tape *tape;
  /* the plain call gives the reference values */
  model(ctx, vars, &tape, &loss);
  OK(ct_tape_gradient(tape, &loss, 1, vars, 3, NULL, CT_UNCONNECTED_NONE, want));
  ct_tape_free(tape);
  ct_tensor_free(loss);
  ct_tensor_free_n(vars, 3);

  model(ctx, vars, &tape, &loss);
  calls c = {.n = 0, .fail_at = -1};
  OK(ct_tape_gradient_with_hook(tape, &loss, 1, vars, 3, NULL, CT_UNCONNECTED_NONE, grads, record, &c));
  cr_assert_eq(c.n, 2, "two connected sources, %d calls", c.n);
  cr_assert_eq(c.order[0], 1, "w2 (the last layer) first");
  cr_assert_eq(c.order[1], 0, "then w1, after its last reader");
  cr_assert_null(grads[2]);
  for (int i = 0; i < 2; ++i) {
    double *w = ts_read(want[i]);
    ts_assert_close(grads[i], w, ct_tensor_size(want[i]), 0, 0, "the returned gradient");
    int call = c.order[0] == i ? 0 : 1;
    cr_assert_eq(c.first_value[call], w[0], "source %d: the hook saw %g, the final value is %g", i, c.first_value[call], w[0]);
    free(w);
  }
  ct_tensor_free_n(grads, 3);
  ct_tape_free(tape);
  ct_tensor_free(loss);
  ct_tensor_free_n(vars, 3);
  ct_tensor_free_n(want, 3);
  ct_context_free(ctx);
}

Test(grad_hook, unconnected_zero_and_errors) {
  ct_context *ctx = ts_ctx();
  ct_tensor *vars[3], *loss, *grads[3];
  ct_tape *tape;
  model(ctx, vars, &tape, &loss);
  calls c = {.n = 0, .fail_at = 1};
  cr_assert_eq(ct_tape_gradient_with_hook(tape, &loss, 1, vars, 3, NULL, CT_UNCONNECTED_NONE, grads, record, &c),
               CT_ERR_IO);
  for (int i = 0; i < 3; ++i) cr_assert_null(grads[i]);
  /* the failed call left the tape usable: zeros for the unconnected source, handed over last */
  c = (calls){.n = 0, .fail_at = -1};
  OK(ct_tape_gradient_with_hook(tape, &loss, 1, vars, 3, NULL, CT_UNCONNECTED_ZERO, grads, record, &c));
  cr_assert_eq(c.n, 3);
  cr_assert_eq(c.order[2], 2, "the unconnected source last");
  cr_assert_eq(c.first_value[2], 0.0);
  ct_tensor_free_n(grads, 3);
  ct_tape_free(tape);
  ct_tensor_free(loss);
  ct_tensor_free_n(vars, 3);
  ct_context_free(ctx);
}

/* With fusion on, a gradient built of elementwise ops would be pending until used: the hook gets it
 * computed, so that whatever it hands the storage to sees the values. */
static ct_status not_pending(int index, const ct_tensor *grad, void *user) {
  (void)index;
  cr_assert_null(ctb_lazy(grad->buf), "the hook got a pending gradient");
  ++*(int *)user;
  return CT_OK;
}

Test(grad_hook, gradients_computed_when_handed_over) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 0);
  ct_tensor *init, *w, *sq, *w3, *s1, *s2, *loss, *g = NULL;
  ct_tape *tape;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){8, 16}, 0, 1, 4, &init));
  OK(ct_variable_create(init, "w", true, &w));
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_mul(w, w, &sq));
  OK(ct_mul_scalar(w, 3.0, &w3));
  OK(ct_sum(sq, NULL, 0, false, &s1));
  OK(ct_sum(w3, NULL, 0, false, &s2));
  OK(ct_add(s1, s2, &loss));
  OK(ct_tape_end(tape));
  int n = 0;
  OK(ct_tape_gradient_with_hook(tape, &loss, 1, &w, 1, NULL, CT_UNCONNECTED_NONE, &g, not_pending, &n));
  cr_assert_eq(n, 1);
  double *x = ts_read(init), want[128];
  for (int i = 0; i < 128; ++i) want[i] = 2 * x[i] + 3;
  ts_assert_close(g, want, 128, 1e-6, 0, "d/dw (sum(w*w) + sum(3w))");
  free(x);
  ct_tensor_free_n((ct_tensor *[]){init, w, sq, w3, s1, s2, loss, g}, 8);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

/* A persistent tape that is recording records its own gradient computation, the hooked one too: the
 * gradient handed over (and returned) is differentiated again. */
static ct_status count(int index, const ct_tensor *grad, void *user) {
  (void)index, (void)grad;
  ++*(int *)user;
  return CT_OK;
}

Test(grad_hook, persistent_tape_records_the_hooked_gradient) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *d1 = NULL, *d2 = NULL;
  OK(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  ct_tape_options o = {true, true};
  ct_tape *t = NULL;
  OK(ct_tape_begin(ctx, &o, &t));
  OK(ct_pow_scalar(x, 3.0, &y));
  int before = ct_tape_size(t), n = 0;
  OK(ct_tape_gradient_with_hook(t, &y, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, &d1, count, &n));
  cr_assert_eq(n, 1);
  cr_assert_gt(ct_tape_size(t), before, "the hooked gradient computation was recorded");
  OK(ct_tape_gradient_with_hook(t, &d1, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, &d2, count, &n));
  cr_assert_eq(n, 2);
  OK(ct_tape_end(t));
  cr_assert_float_eq(ts_item(d1), 12.0, 1e-5, "3 x^2");
  cr_assert_float_eq(ts_item(d2), 12.0, 1e-5, "6 x");
  ct_tensor_free_n((ct_tensor *[]){x, y, d1, d2}, 4);
  ct_tape_free(t);
  ct_context_free(ctx);
}
