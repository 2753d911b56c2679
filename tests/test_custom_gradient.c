/* Functions with a gradient of their own (ct_custom_gradient, TensorFlow's tf.custom_gradient) and
 * functions recomputed in the backward pass (ct_recompute_grad, tf.recompute_grad): the user's
 * gradient is the one used, it nests with tapes (higher derivatives through residuals and through
 * the gradient's own ops, one persistent tape), sees the variables the function captured, and
 * recomputation gives the plain tape's gradients while keeping less. */
#include "support.h"
#include <math.h>
#include <string.h>

#define SH(...) ((const int64_t[]){__VA_ARGS__})

static ct_tape *begin(ct_context *ctx, bool persistent) {
  ct_tape_options o = {persistent, true};
  ct_tape *t = NULL;
  OK(ct_tape_begin(ctx, &o, &t));
  return t;
}
static ct_tensor *scalar(ct_context *ctx, ct_dtype dt, double v) {
  ct_tensor *t = NULL;
  OK(ct_scalar(ctx, dt, v, &t));
  return t;
}

/* ---- log1pexp: TensorFlow's example of a numerically stable gradient --------------------------
 *   e = exp(x); y = log(1 + e); grad(dy) = dy * (1 - 1 / (1 + e))                               */
static ct_status log1pexp_fwd(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)n;
  (void)user;
  ct_tensor *e1 = NULL;
  ct_status s = ct_exp(in[0], &res[0]);
  if (s == CT_OK) s = ct_add_scalar(res[0], 1.0, &e1);
  if (s == CT_OK) s = ct_log(e1, out);
  ct_tensor_free(e1);
  return s;
}
static ct_status log1pexp_grad(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dv,
                               void *user) {
  (void)dv;
  int *calls = user;
  ++*calls;
  cr_assert_eq(a->n_inputs, 1);
  cr_assert_eq(a->n_variables, 0);
  cr_assert_eq(a->n_residuals, 1);
  cr_assert_not_null(a->output);
  cr_assert(a->needed[0]);
  ct_tensor *e1 = NULL, *r = NULL, *f = NULL;
  ct_status s = ct_add_scalar(a->residuals[0], 1.0, &e1);
  if (s == CT_OK) s = ct_rdiv_scalar(1.0, e1, &r);
  if (s == CT_OK) s = ct_rsub_scalar(1.0, r, &f);
  if (s == CT_OK) s = ct_mul(dy, f, &dx[0]);
  ct_tensor *tmp[] = {e1, r, f};
  ct_tensor_free_n(tmp, 3);
  return s;
}
static int log1pexp_calls;
static const ct_custom_function log1pexp = {"log1pexp", log1pexp_fwd, log1pexp_grad, 1, &log1pexp_calls};

Test(custom_gradient, the_users_gradient_replaces_the_ops_gradients) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *g = NULL, *e = NULL, *e1 = NULL, *plain = NULL;
  OK(ct_variable_scalar(ctx, 100.0, "x", true, &x));
  /* the ops' own gradient overflows in float32: exp(100) = inf, inf / inf = NaN */
  ct_tape *t = begin(ctx, false);
  OK(ct_exp(x, &e));
  OK(ct_add_scalar(e, 1.0, &e1));
  OK(ct_log(e1, &plain));
  OK(ct_tape_end(t));
  OK(ct_tape_gradient1(t, plain, x, &g));
  cr_assert(isnan(ts_item(g)), "the plain gradient is NaN, got %g", ts_item(g));
  ct_tensor_free(g);
  ct_tape_free(t);
  /* the function's own gradient is 1 */
  log1pexp_calls = 0;
  t = begin(ctx, false);
  OK(ct_custom_gradient(&log1pexp, &x, 1, &y));
  OK(ct_tape_end(t));
  cr_assert(isinf(ts_item(y)) || ts_item(y) > 99.0);
  OK(ct_tape_gradient1(t, y, x, &g));
  cr_assert_float_eq(ts_item(g), 1.0, 1e-6);
  cr_assert_eq(log1pexp_calls, 1, "the user's gradient ran once");
  ct_tensor *tmp[] = {g, y, e, e1, plain, x};
  ct_tensor_free_n(tmp, 6);
  ct_tape_free(t);
  ct_context_free(ctx);
}

Test(custom_gradient, nests_with_tapes_for_higher_derivatives) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  ct_tensor *x = scalar(ctx, dt, 0.0), *y = NULL, *d1 = NULL, *d2 = NULL;
  /* nested tapes: d/dx = sigmoid(x) = 0.5, d2/dx2 = e/(1+e)^2 = 0.25 through the residual e */
  ct_tape *outer = begin(ctx, false), *inner = begin(ctx, false);
  OK(ct_tape_watch(outer, x));
  OK(ct_tape_watch(inner, x));
  OK(ct_custom_gradient(&log1pexp, &x, 1, &y));
  cr_assert_float_eq(ts_item(y), log(2.0), 1e-6);
  OK(ct_tape_end(inner));
  OK(ct_tape_gradient1(inner, y, x, &d1));
  OK(ct_tape_end(outer));
  OK(ct_tape_gradient1(outer, d1, x, &d2));
  cr_assert_float_eq(ts_item(d1), 0.5, 1e-6);
  cr_assert_not_null(d2, "the gradient's ops and the residual connect to x");
  cr_assert_float_eq(ts_item(d2), 0.25, 1e-6);
  ct_tensor *tmp[] = {y, d1, d2};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(inner);
  ct_tape_free(outer);
  /* one persistent tape, recording its own gradients */
  ct_tape *t = begin(ctx, true);
  OK(ct_tape_watch(t, x));
  OK(ct_custom_gradient(&log1pexp, &x, 1, &y));
  OK(ct_tape_gradient1(t, y, x, &d1));
  OK(ct_tape_gradient1(t, d1, x, &d2));
  OK(ct_tape_end(t));
  cr_assert_float_eq(ts_item(d2), 0.25, 1e-6);
  ct_tensor *tmp2[] = {y, d1, d2, x};
  ct_tensor_free_n(tmp2, 4);
  ct_tape_free(t);
  /* a jacobian through the function: its gradient runs once per row of the batch of seeds */
  const double xv[3] = {-1.0, 0.0, 2.0};
  ct_tensor *xs = ts_tensor(ctx, dt, 1, (const int64_t[]){3}, xv), *j = NULL;
  t = begin(ctx, true);
  OK(ct_tape_watch(t, xs));
  OK(ct_custom_gradient(&log1pexp, &xs, 1, &y));
  OK(ct_tape_end(t));
  log1pexp_calls = 0;
  OK(ct_tape_jacobian(t, y, xs, CT_UNCONNECTED_NONE, &j));
  cr_assert_eq(log1pexp_calls, 3, "once per row");
  double want[9] = {0};
  for (int i = 0; i < 3; ++i) want[4 * i] = 1 / (1 + exp(-xv[i]));
  ts_assert_close(j, want, 9, 1e-6, 1e-6, "diag(sigmoid(x))");
  ct_tensor *tmp3[] = {xs, y, j};
  ct_tensor_free_n(tmp3, 3);
  ct_tape_free(t);
  ct_context_free(ctx);
}

/* ---- a gradient that is not the function's: clipping (TensorFlow's clip_gradients example) --- */
static ct_status identity_fwd(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)n;
  (void)res;
  (void)user;
  return ct_identity(in[0], out);
}
static ct_status clip_grad(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dv, void *user) {
  (void)a;
  (void)dv;
  (void)user;
  ct_tensor *lo = NULL;
  ct_status s = ct_maximum_scalar(dy, -1.0, &lo);
  if (s == CT_OK) s = ct_minimum_scalar(lo, 1.0, &dx[0]);
  ct_tensor_free(lo);
  return s;
}

Test(custom_gradient, clipped_gradient_and_unconnected_inputs) {
  ct_context *ctx = ts_ctx();
  const ct_custom_function clip = {"clip_gradient", identity_fwd, clip_grad, 0, NULL};
  const double xv[3] = {1, 2, 3};
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, SH(3), xv), *y = NULL, *z = NULL, *g = NULL;
  ct_tape *t = begin(ctx, false);
  OK(ct_tape_watch(t, x));
  OK(ct_custom_gradient(&clip, &x, 1, &y));
  ts_assert_close(y, xv, 3, 0, 0, "identity forward");
  cr_assert_neq(ct_tensor_id(y), ct_tensor_id(x), "the output is a new tensor");
  OK(ct_mul_scalar(y, 10.0, &z));
  OK(ct_tape_end(t));
  OK(ct_tape_gradient1(t, z, x, &g));
  const double ones[3] = {1, 1, 1};
  ts_assert_close(g, ones, 3, 0, 0, "10 clipped to 1");
  ct_tensor *tmp[] = {y, z, g};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(t);
  /* with no tape the function simply runs; with an unwatched input nothing is recorded */
  OK(ct_custom_gradient(&clip, &x, 1, &y));
  ts_assert_close(y, xv, 3, 0, 0, "no tape");
  ct_tensor_free(y);
  t = begin(ctx, false);
  OK(ct_custom_gradient(&clip, &x, 1, &y));
  cr_assert_eq(ct_tape_size(t), 0, "a constant input is not recorded");
  OK(ct_tape_gradient1(t, y, x, &g));
  cr_assert_null(g);
  ct_tensor_free(y);
  ct_tape_free(t);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- captured variables: y = x * w with w read inside, grad_fn(dy, variables=[w]) ----------- */
typedef struct {
  ct_tensor *w;
  int n_vars_seen;
} scale_ctx;
static ct_status scale_fwd(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)n;
  (void)res;
  scale_ctx *c = user;
  return ct_mul(in[0], c->w, out);
}
static ct_status scale_grad(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dv,
                            void *user) {
  scale_ctx *c = user;
  c->n_vars_seen = a->n_variables;
  cr_assert_eq(a->n_variables, 1);
  cr_assert_eq(ct_tensor_id(a->variables[0]), ct_tensor_id(c->w), "the captured variable is w");
  cr_assert_str_eq(ct_variable_name(a->variables[0]), "w:0");
  ct_status s = CT_OK;
  if (a->needed[0]) s = ct_mul(dy, a->variables[0], &dx[0]);
  if (s == CT_OK && a->needed[1]) {
    ct_tensor *p = NULL;
    s = ct_mul(dy, a->inputs[0], &p);
    if (s == CT_OK) s = ct_sum(p, NULL, 0, false, &dv[0]);
    ct_tensor_free(p);
  }
  return s;
}

Test(custom_gradient, sees_the_variables_it_captured) {
  ct_context *ctx = ts_ctx();
  const double xv[2] = {1.5, -2.0};
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, SH(2), xv), *w = NULL, *y = NULL, *grads[2] = {NULL};
  OK(ct_variable_scalar(ctx, 3.0, "w", true, &w));
  scale_ctx c = {w, -1};
  const ct_custom_function scale = {"scale", scale_fwd, scale_grad, 0, &c};
  ct_tape *t = begin(ctx, false);
  OK(ct_tape_watch(t, x));
  OK(ct_custom_gradient(&scale, &x, 1, &y));
  OK(ct_tape_end(t));
  ct_tensor *watched[2] = {NULL};
  int nw = 0;
  OK(ct_tape_watched_variables(t, watched, 2, &nw));
  cr_assert_eq(nw, 1, "the captured variable is watched");
  ct_tensor *src[2] = {x, w};
  OK(ct_tape_gradient(t, &y, 1, src, 2, NULL, CT_UNCONNECTED_NONE, grads));
  cr_assert_eq(c.n_vars_seen, 1);
  const double three[2] = {3, 3};
  ts_assert_close(grads[0], three, 2, 0, 0, "dy/dx = w");
  cr_assert_float_eq(ts_item(grads[1]), -0.5, 1e-6, "dy/dw = sum(x)");
  ct_tensor_free_n(grads, 2);
  ct_tensor_free(y);
  ct_tape_free(t);
  /* w given as an input is an input, not a captured variable: the gradient sees none */
  ct_tensor *ins[1] = {w};
  c.n_vars_seen = -1;
  const ct_custom_function square_w = {"scale", scale_fwd, clip_grad, 0, &c};
  t = begin(ctx, false);
  OK(ct_custom_gradient(&square_w, ins, 1, &y));
  OK(ct_tape_end(t));
  OK(ct_tape_gradient(t, &y, 1, ins, 1, NULL, CT_UNCONNECTED_NONE, grads));
  cr_assert_float_eq(ts_item(grads[0]), 1.0, 1e-6, "clip(1) through the only input");
  ct_tensor_free(grads[0]);
  ct_tensor_free(y);
  ct_tape_free(t);
  ct_tensor_free(x);
  ct_tensor_free(w);
  ct_context_free(ctx);
}

/* ---- nesting: a custom function inside another one's forward; gradcheck ---------------------- */
static ct_status outer_fwd(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)n;
  (void)res;
  (void)user;
  ct_tensor *a = NULL;
  ct_status s = ct_custom_gradient(&log1pexp, in, 1, &a);
  if (s == CT_OK) s = ct_mul(a, in[1], out);
  ct_tensor_free(a);
  return s;
}
/* d(softplus(x) * v): dx = sigmoid(x) v, dv = softplus(x) */
static ct_status outer_grad(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dv, void *user) {
  (void)dv;
  (void)user;
  ct_tensor *sg = NULL, *sp = NULL, *t = NULL;
  ct_status s = CT_OK;
  if (a->needed[0]) {
    s = ct_sigmoid(a->inputs[0], &sg);
    if (s == CT_OK) s = ct_mul(sg, a->inputs[1], &t);
    if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  }
  if (s == CT_OK && a->needed[1]) {
    s = ct_softplus(a->inputs[0], &sp);
    if (s == CT_OK) s = ct_mul(dy, sp, &dx[1]);
  }
  ct_tensor *tmp[] = {sg, sp, t};
  ct_tensor_free_n(tmp, 3);
  return s;
}
static const ct_custom_function outer_fn = {"softplus_times", outer_fwd, outer_grad, 0, NULL};
static ct_status call_outer(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)user;
  return ct_custom_gradient(&outer_fn, in, n, out);
}
static ct_status call_log1pexp(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)user;
  return ct_custom_gradient(&log1pexp, in, n, out);
}

Test(custom_gradient, nested_functions_pass_gradcheck) {
  ct_context *ctx = ts_ctx();
  ts_require_fp64(ctx);
  const double xv[4] = {-1.2, -0.3, 0.4, 1.7}, vv[4] = {0.5, -1.5, 2.0, 0.25};
  ct_tensor *in[2] = {ts_tensor(ctx, CT_FLOAT64, 1, SH(4), xv), ts_tensor(ctx, CT_FLOAT64, 1, SH(4), vv)};
  ct_gradcheck_report rep;
  OK(ct_gradcheck(ctx, call_outer, NULL, in, 2, NULL, &rep));
  cr_assert(rep.passed, "%s", rep.message);
  OK(ct_gradcheck(ctx, call_log1pexp, NULL, in, 1, NULL, &rep));
  cr_assert(rep.passed, "%s", rep.message);
  ct_tensor_free_n(in, 2);
  ct_context_free(ctx);
}

/* ---- mistakes ---------------------------------------------------------------------------------- */
static ct_status failing_fwd(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)in, (void)n, (void)res, (void)out, (void)user;
  return CT_ERR_UNSUPPORTED;
}
static ct_status no_output_fwd(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *user) {
  (void)in, (void)n, (void)res, (void)out, (void)user;
  return CT_OK;
}
static ct_status failing_grad(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dv,
                              void *user) {
  (void)a, (void)dy, (void)dx, (void)dv, (void)user;
  return CT_ERR_UNSUPPORTED;
}
static ct_status wrong_shape_grad(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dv,
                                  void *user) {
  (void)a, (void)dy, (void)dv, (void)user;
  return ct_zeros(ct_tensor_context(dy), CT_FLOAT32, 1, SH(5), &dx[0]);
}

Test(custom_gradient, mistakes_are_statuses_with_messages) {
  ct_context *ctx = ts_ctx();
  const double xv[3] = {1, 2, 3};
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, SH(3), xv), *y = NULL, *g = NULL;
  const ct_custom_function fails = {"fails", failing_fwd, clip_grad, 0, NULL};
  const ct_custom_function none = {"none", no_output_fwd, clip_grad, 0, NULL};
  const ct_custom_function bad_grad = {"bad_grad", identity_fwd, failing_grad, 0, NULL};
  const ct_custom_function bad_shape = {"bad_shape", identity_fwd, wrong_shape_grad, 0, NULL};
  const ct_custom_function no_grad = {"x", identity_fwd, NULL, 0, NULL};
  const ct_custom_function many = {"x", identity_fwd, clip_grad, 9, NULL};
  EXPECT_STATUS(ct_custom_gradient(&fails, &x, 1, &y), CT_ERR_UNSUPPORTED);
  cr_assert(strstr(ct_errmsg(), "forward function of fails"), "%s", ct_errmsg());
  cr_assert_null(y);
  EXPECT_STATUS(ct_custom_gradient(&none, &x, 1, &y), CT_ERR_INVALID);
  EXPECT_STATUS(ct_custom_gradient(&no_grad, &x, 1, &y), CT_ERR_NULL);
  EXPECT_STATUS(ct_custom_gradient(NULL, &x, 1, &y), CT_ERR_NULL);
  EXPECT_STATUS(ct_custom_gradient(&many, &x, 1, &y), CT_ERR_INVALID);
  EXPECT_STATUS(ct_custom_gradient(&bad_grad, &x, 1, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_custom_gradient(&bad_grad, NULL, 1, &y), CT_ERR_NULL);
  EXPECT_STATUS(ct_custom_gradient(&bad_grad, &x, -1, &y), CT_ERR_INVALID);
  EXPECT_STATUS(ct_recompute_grad(NULL, NULL, &x, 1, &y), CT_ERR_NULL);
  cr_assert_null(y);
  /* a gradient that fails, or gives the wrong shape, fails the tape's call naming the function;
   * the tape is left as it was and can be asked again */
  for (int k = 0; k < 2; ++k) {
    ct_tape *t = begin(ctx, false);
    OK(ct_tape_watch(t, x));
    OK(ct_custom_gradient(k ? &bad_shape : &bad_grad, &x, 1, &y));
    OK(ct_tape_end(t));
    int n = ct_tape_size(t);
    cr_assert_eq(n, 2, "the forward's identity and the function");
    EXPECT_STATUS(ct_tape_gradient1(t, y, x, &g), k ? CT_ERR_SHAPE : CT_ERR_UNSUPPORTED);
    cr_assert(strstr(ct_errmsg(), k ? "bad_shape" : "bad_grad"), "%s", ct_errmsg());
    cr_assert_null(g);
    EXPECT_STATUS(ct_tape_gradient1(t, y, x, &g), k ? CT_ERR_SHAPE : CT_ERR_UNSUPPORTED);
    cr_assert_eq(ct_tape_size(t), n, "the failed calls left the tape as it was");
    ct_tensor_free(y);
    ct_tape_free(t);
  }
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- recompute_grad ---------------------------------------------------------------------------- */
typedef struct {
  ct_tensor *w[3];
  int runs;
} mlp;
/* three tanh layers of width 16 */
static ct_status mlp_fwd(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)n;
  mlp *m = user;
  m->runs++;
  ct_tensor *h = ct_tensor_retain(in[0]);
  ct_status s = CT_OK;
  for (int l = 0; l < 3 && s == CT_OK; ++l) {
    ct_tensor *a = NULL, *b = NULL;
    s = ct_matmul(h, m->w[l], false, false, &a);
    if (s == CT_OK) s = ct_tanh(a, &b);
    ct_tensor_free(a);
    ct_tensor_free(h);
    h = b;
  }
  if (s == CT_OK) *out = h;
  else ct_tensor_free(h);
  return s;
}

static ct_status cube(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)n;
  (void)user;
  return ct_pow_scalar(in[0], 3.0, out);
}

static void mlp_grads(ct_context *ctx, mlp *m, ct_tensor *x, bool recompute, ct_tensor **g, uint64_t *held) {
  ct_tape *t = begin(ctx, false);
  OK(ct_tape_watch(t, x));
  ct_tensor *y = NULL, *l = NULL;
  if (recompute) OK(ct_recompute_grad(mlp_fwd, m, &x, 1, &y));
  else OK(mlp_fwd(&x, 1, &y, m));
  OK(ct_square(y, &l));
  OK(ct_tape_end(t));
  OK(ct_tape_saved_bytes(t, held));
  ct_tensor *src[4] = {x, m->w[0], m->w[1], m->w[2]};
  OK(ct_tape_gradient(t, &l, 1, src, 4, NULL, CT_UNCONNECTED_NONE, g));
  ct_tensor_free(y);
  ct_tensor_free(l);
  ct_tape_free(t);
}

Test(custom_gradient, recompute_grad_gives_the_same_gradients_and_keeps_less) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_best_float(ctx);
  mlp m = {{NULL}, 0};
  for (int l = 0; l < 3; ++l) {
    ct_tensor *init = NULL;
    OK(ct_random_normal(ctx, dt, 2, SH(16, 16), 0.0, 0.3, 10 + (uint64_t)l, &init));
    OK(ct_variable_create(init, "w", true, &m.w[l]));
    ct_tensor_free(init);
  }
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, dt, 2, SH(64, 16), 0.0, 1.0, 3, &x));
  ct_tensor *plain[4] = {NULL}, *rec[4] = {NULL};
  uint64_t held_plain = 0, held_rec = 0;
  mlp_grads(ctx, &m, x, false, plain, &held_plain);
  cr_assert_eq(m.runs, 1);
  mlp_grads(ctx, &m, x, true, rec, &held_rec);
  cr_assert_eq(m.runs, 3, "run once forward and once again in the backward pass");
  for (int i = 0; i < 4; ++i) {
    cr_assert_not_null(rec[i], "gradient %d", i);
    double *want = ts_read(plain[i]);
    ts_assert_close(rec[i], want, ct_tensor_size(plain[i]), 1e-5, 1e-4, "recomputed gradient");
    free(want);
  }
  /* the plain tape keeps each layer's input and output; the recomputed one the input x (and the
   * square's input, which both keep) */
  cr_assert_lt(held_rec * 2, held_plain, "kept %llu bytes, plain %llu", (unsigned long long)held_rec,
               (unsigned long long)held_plain);
  ct_tensor_free_n(plain, 4);
  ct_tensor_free_n(rec, 4);
  /* higher order through a recomputed function: d/dx x^3 = 3x^2 = 12, d2/dx2 = 6x = 12 at 2 */
  ct_tensor *xs = scalar(ctx, dt, 2.0), *y = NULL, *d1 = NULL, *d2 = NULL;
  ct_tape *outer = begin(ctx, false), *inner = begin(ctx, false);
  OK(ct_tape_watch(outer, xs));
  OK(ct_tape_watch(inner, xs));
  OK(ct_recompute_grad(cube, NULL, &xs, 1, &y));
  cr_assert_eq(ct_tape_size(inner), 1, "one record, not the function's ops");
  OK(ct_tape_end(inner));
  OK(ct_tape_gradient1(inner, y, xs, &d1));
  OK(ct_tape_end(outer));
  OK(ct_tape_gradient1(outer, d1, xs, &d2));
  cr_assert_float_eq(ts_item(d1), 12.0, 1e-5);
  cr_assert_not_null(d2);
  cr_assert_float_eq(ts_item(d2), 12.0, 1e-5);
  ct_tensor *tmp[] = {y, d1, d2};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(inner);
  ct_tape_free(outer);
  ct_tensor_free(xs);
  ct_tensor_free(x);
  ct_tensor_free_n(m.w, 3);
  ct_context_free(ctx);
}
