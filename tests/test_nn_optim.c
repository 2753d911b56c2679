/* Optimizers (cltape_nn.h): SGD, momentum, Nesterov, Adam and AdamW against steps computed by
 * hand and by a host implementation of the documented formulas, gradient clipping by global
 * norm, updates in place or copy-on-write, nothing recorded on tapes, argument errors. */
#include "support.h"
#include "ct_internal.h"
#include "cltape_nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})

static void setup(void) { CTX = ts_ctx(); }
static void teardown(void) {
  ct_context_free(CTX);
  CTX = NULL;
}

static ct_tensor *var_of(ct_dtype dt, int n, const double *v, const char *name) {
  ct_tensor *t = ts_tensor(CTX, dt, 1, SH(n), v), *var = NULL;
  OK(ct_variable_create(t, name, true, &var));
  ct_tensor_free(t);
  return var;
}

/* Runs `steps` steps of opt on one variable with the constant gradient g; returns the values. */
static double *run_steps(ct_optimizer *opt, ct_dtype dt, int n, const double *p0, const double *g, int steps) {
  ct_tensor *v = var_of(dt, n, p0, "p"), *gt = ts_tensor(CTX, dt, 1, SH(n), g);
  for (int s = 0; s < steps; ++s) OK(ct_optimizer_apply(opt, &gt, &v, 1));
  double *r = ts_read(v);
  ct_tensor_free(v);
  ct_tensor_free(gt);
  return r;
}

static ct_optimizer *make(ct_optimizer_kind kind, double lr, double momentum, bool nesterov, double wd) {
  ct_optimizer_options o = ct_optimizer_default_options(kind);
  o.learning_rate = lr;
  o.momentum = momentum;
  o.nesterov = nesterov;
  o.weight_decay = wd;
  ct_optimizer *opt = NULL;
  OK(ct_optimizer_create(CTX, &o, &opt));
  return opt;
}

static void expect_values(const double *got, const double *want, int n, double tol, const char *what) {
  for (int i = 0; i < n; ++i)
    cr_assert(fabs(got[i] - want[i]) <= tol, "%s: element %d is %.12g, wanted %.12g", what, i, got[i], want[i]);
}

/* ---- steps computed by hand -------------------------------------------------------------------- */
Test(nn_optim, hand_computed_steps, .init = setup, .fini = teardown) {
  const double p[2] = {1.0, 2.0}, g[2] = {0.5, -1.0};
  struct {
    const char *what;
    ct_optimizer_kind kind;
    double momentum;
    bool nesterov;
    double wd;
    int steps;
    double want[2];
  } cases[] = {
      /* p - 0.1 g, twice */
      {"SGD, 2 steps", CT_OPTIMIZER_SGD, 0, false, 0, 2, {0.9, 2.2}},
      /* v1 = g, p1 = p - 0.1 v1 = (0.95, 2.1); v2 = 0.9 v1 + g = (0.95, -1.9), p2 = p1 - 0.1 v2 */
      {"momentum, 2 steps", CT_OPTIMIZER_SGD, 0.9, false, 0, 2, {0.855, 2.29}},
      /* p1 = p - 0.1 (g + 0.9 g) = (0.905, 2.19); v2 = 1.9 g, p2 = p1 - 0.1 (g + 0.9 * 1.9 g) */
      {"Nesterov, 2 steps", CT_OPTIMIZER_SGD, 0.9, true, 0, 2, {0.7695, 2.461}},
      /* g' = g + 0.5 p = (1.0, 0.0): p1 = (0.9, 2.0) */
      {"SGD with weight decay, 1 step", CT_OPTIMIZER_SGD, 0, false, 0.5, 1, {0.9, 2.0}},
      /* m/(1-b1^t) = g and v/(1-b2^t) = g^2 at every step of a constant gradient: each step moves
       * 0.1 * |g| / (|g| + 1e-7) against the gradient's sign */
      {"Adam, 2 steps", CT_OPTIMIZER_ADAM, 0, false, 0, 2,
       {1.0 - 0.2 * 0.5 / (0.5 + 1e-7), 2.0 + 0.2 * 1.0 / (1.0 + 1e-7)}},
      /* decoupled decay first: p1 = 0.99 p - 0.1 sign(g) (1 - 1e-7 / (|g| + 1e-7)) */
      {"AdamW, 1 step", CT_OPTIMIZER_ADAMW, 0, false, 0.1, 1,
       {0.99 - 0.1 * 0.5 / (0.5 + 1e-7), 1.98 + 0.1 * 1.0 / (1.0 + 1e-7)}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
    for (int d = 0; d < 2; ++d) {
      if (!d && !ts_has_fp64(CTX)) continue; /* float64 is optional */
      ct_optimizer *opt = make(cases[c].kind, 0.1, cases[c].momentum, cases[c].nesterov, cases[c].wd);
      double *r = run_steps(opt, d ? CT_FLOAT32 : CT_FLOAT64, 2, p, g, cases[c].steps);
      expect_values(r, cases[c].want, 2, d ? 2e-6 : 1e-12, cases[c].what);
      cr_assert_eq(ct_optimizer_iterations(opt), cases[c].steps);
      free(r);
      ct_optimizer_free(opt);
    }
  }
}

/* ---- many steps against a host implementation of the documented formulas ---------------------- */
typedef struct {
  ct_optimizer_options o;
  double p[5], m[5], v[5];
  int t;
} host_opt;

static void host_step(host_opt *h, const double *g, int n) {
  const ct_optimizer_options *o = &h->o;
  h->t++;
  for (int i = 0; i < n; ++i) {
    double p = h->p[i], gi = g[i];
    if (o->kind == CT_OPTIMIZER_SGD) {
      gi += o->weight_decay * p;
      if (o->momentum == 0) {
        p -= o->learning_rate * gi;
      } else {
        h->m[i] = o->momentum * h->m[i] + gi;
        p -= o->learning_rate * (o->nesterov ? gi + o->momentum * h->m[i] : h->m[i]);
      }
    } else {
      if (o->kind == CT_OPTIMIZER_ADAMW) p -= o->learning_rate * o->weight_decay * p;
      else gi += o->weight_decay * p;
      h->m[i] = o->beta1 * h->m[i] + (1 - o->beta1) * gi;
      h->v[i] = o->beta2 * h->v[i] + (1 - o->beta2) * gi * gi;
      double mh = h->m[i] / (1 - pow(o->beta1, h->t)), vh = h->v[i] / (1 - pow(o->beta2, h->t));
      p -= o->learning_rate * mh / (sqrt(vh) + o->epsilon);
    }
    h->p[i] = p;
  }
}

Test(nn_optim, many_steps_match_the_formulas, .init = setup, .fini = teardown) {
  ct_optimizer_options opts[6];
  opts[0] = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  opts[1] = opts[0];
  opts[1].momentum = 0.8;
  opts[1].weight_decay = 0.01;
  opts[2] = opts[1];
  opts[2].nesterov = true;
  opts[3] = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  opts[3].learning_rate = 0.05;
  opts[4] = opts[3];
  opts[4].weight_decay = 0.02;
  opts[4].beta1 = 0.5;
  opts[4].epsilon = 1e-3;
  opts[5] = ct_optimizer_default_options(CT_OPTIMIZER_ADAMW);
  opts[5].learning_rate = 0.03;
  /* float64; float32 on a device without it, with float32's tolerance */
  const ct_dtype fdt = ts_best_float(CTX);
  for (int c = 0; c < 6; ++c) {
    host_opt h;
    memset(&h, 0, sizeof h);
    h.o = opts[c];
    const double p0[5] = {0.3, -1.2, 2.5, 0.0, 4.0};
    memcpy(h.p, p0, sizeof p0);
    ct_optimizer *opt = NULL;
    OK(ct_optimizer_create(CTX, &opts[c], &opt));
    ct_tensor *var = var_of(fdt, 5, p0, "w");
    for (int s = 0; s < 7; ++s) {
      double g[5];
      for (int i = 0; i < 5; ++i) g[i] = sin(1.3 * s + i) * (i + 1) - 0.2 * h.p[i];
      host_step(&h, g, 5);
      ct_tensor *gt = ts_tensor(CTX, fdt, 1, SH(5), g);
      OK(ct_optimizer_apply(opt, &gt, &var, 1));
      ct_tensor_free(gt);
    }
    double *r = ts_read(var);
    char what[64];
    snprintf(what, sizeof what, "%s case %d after 7 steps", ct_optimizer_kind_name(opts[c].kind), c);
    expect_values(r, h.p, 5, fdt == CT_FLOAT64 ? 1e-12 : 2e-5, what);
    free(r);
    ct_tensor_free(var);
    ct_optimizer_free(opt);
  }
}

/* ---- clipping ------------------------------------------------------------------------------------ */
Test(nn_optim, clipping_by_global_norm, .init = setup, .fini = teardown) {
  ct_tensor *a = var_of(CT_FLOAT32, 2, (const double[]){1, 1}, "a"), *b = var_of(CT_FLOAT32, 2, (const double[]){1, 1}, "b");
  ct_tensor *ga = ts_tensor(CTX, CT_FLOAT32, 1, SH(2), (const double[]){3, 0});
  ct_tensor *gb = ts_tensor(CTX, CT_FLOAT32, 1, SH(2), (const double[]){0, 4}); /* global norm 5 */
  ct_tensor *grads[2] = {ga, gb}, *vars[2] = {a, b}, *clipped[2] = {NULL, NULL}, *norm = NULL;
  OK(ct_clip_by_global_norm(grads, 2, 1.0, clipped, &norm));
  cr_assert_float_eq(ts_item(norm), 5.0, 1e-6);
  ts_assert_close(clipped[0], (const double[]){0.6, 0}, 2, 1e-7, 1e-6, "clipped a");
  ts_assert_close(clipped[1], (const double[]){0, 0.8}, 2, 1e-7, 1e-6, "clipped b");
  ct_tensor_free_n(clipped, 2);
  ct_tensor_free(norm);
  OK(ct_clip_by_global_norm(grads, 2, 10.0, clipped, NULL)); /* under the limit: unchanged */
  ts_assert_close(clipped[0], (const double[]){3, 0}, 2, 0, 1e-7, "not clipped");
  ct_tensor_free_n(clipped, 2);
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  o.learning_rate = 1.0;
  o.clip_global_norm = 1.0;
  ct_optimizer *opt;
  OK(ct_optimizer_create(CTX, &o, &opt));
  OK(ct_optimizer_apply(opt, grads, vars, 2));
  ts_assert_close(a, (const double[]){0.4, 1}, 2, 1e-6, 0, "a after a clipped step");
  ts_assert_close(b, (const double[]){1, 0.2}, 2, 1e-6, 0, "b after a clipped step");
  EXPECT_STATUS(ct_clip_by_global_norm(grads, 2, 0.0, clipped, NULL), CT_ERR_INVALID);
  ct_optimizer_free(opt);
  ct_tensor *all[] = {a, b, ga, gb};
  ct_tensor_free_n(all, 4);
}

/* ---- in place, copy-on-write, tapes ---------------------------------------------------------------- */
Test(nn_optim, updates_in_place_unless_the_storage_is_shared, .init = setup, .fini = teardown) {
  ct_optimizer *opt = make(CT_OPTIMIZER_SGD, 0.5, 0.9, false, 0);
  ct_tensor *w = var_of(CT_FLOAT32, 3, (const double[]){1, 2, 3}, "w");
  ct_tensor *g = ts_tensor(CTX, CT_FLOAT32, 1, SH(3), (const double[]){2, 2, 2});
  uint64_t id = ct_tensor_id(w);
  ct_buffer *before = w->buf;
  OK(ct_optimizer_apply(opt, &g, &w, 1));
  cr_assert_eq(w->buf, before, "an unshared variable was not updated in place");
  ts_assert_close(w, (const double[]){0, 1, 2}, 3, 1e-6, 0, "after step 1");
  /* a snapshot shares the storage: the step must leave it alone */
  ct_tensor *snap = NULL;
  OK(ct_variable_value(w, &snap));
  OK(ct_optimizer_apply(opt, &g, &w, 1));
  cr_assert_neq(w->buf, snap->buf, "the shared storage was written");
  ts_assert_close(snap, (const double[]){0, 1, 2}, 3, 1e-6, 0, "snapshot after step 2");
  ts_assert_close(w, (const double[]){-1.9, -0.9, 0.1}, 3, 1e-6, 0, "after step 2 (momentum)");
  cr_assert_eq(ct_tensor_id(w), id, "the variable changed identity");
  /* a persistent tape keeps the value it saved: d(w*w)/dw = 2 w at recording time */
  ct_tape_options to = {true, true};
  ct_tape *tape;
  ct_tensor *y = NULL, *d1 = NULL, *d2 = NULL;
  OK(ct_tape_begin(CTX, &to, &tape));
  OK(ct_mul(w, w, &y));
  int recorded = ct_tape_size(tape);
  OK(ct_optimizer_apply(opt, &g, &w, 1)); /* while recording: not recorded */
  cr_assert_eq(ct_tape_size(tape), recorded, "the optimizer step was recorded");
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, y, w, &d1));
  ts_assert_close(d1, (const double[]){-3.8, -1.8, 0.2}, 3, 1e-5, 0, "gradient from the saved value");
  ts_assert_close(w, (const double[]){-4.61, -3.61, -2.61}, 3, 1e-5, 0, "after step 3: v = 5.42");
  OK(ct_tape_gradient1(tape, y, w, &d2));
  ts_assert_close(d2, (const double[]){-3.8, -1.8, 0.2}, 3, 1e-5, 0, "again");
  ct_tensor *all[] = {w, g, snap, y, d1, d2};
  ct_tensor_free_n(all, 6);
  ct_tape_free(tape);
  ct_optimizer_free(opt);
}

Test(nn_optim, null_gradients_learning_rate_and_errors, .init = setup, .fini = teardown) {
  ct_optimizer *opt = make(CT_OPTIMIZER_ADAM, 0.1, 0, false, 0);
  ct_tensor *a = var_of(CT_FLOAT32, 2, (const double[]){1, 2}, "a"), *b = var_of(CT_FLOAT32, 2, (const double[]){3, 4}, "b");
  ct_tensor *g = ts_tensor(CTX, CT_FLOAT32, 1, SH(2), (const double[]){1, 1});
  ct_tensor *vars[2] = {a, b}, *grads[2] = {NULL, g}, *none[2] = {NULL, NULL};
  OK(ct_optimizer_apply(opt, none, vars, 2)); /* nothing to do: not a step */
  cr_assert_eq(ct_optimizer_iterations(opt), 0);
  OK(ct_optimizer_apply(opt, grads, vars, 2));
  cr_assert_eq(ct_optimizer_iterations(opt), 1);
  ts_assert_close(a, (const double[]){1, 2}, 2, 0, 0, "a without gradient");
  ts_assert_close(b, (const double[]){2.9, 3.9}, 2, 1e-5, 0, "b");
  OK(ct_optimizer_set_learning_rate(opt, 0.01));
  cr_assert_eq(ct_optimizer_learning_rate(opt), 0.01);
  EXPECT_STATUS(ct_optimizer_set_learning_rate(opt, -1), CT_ERR_INVALID);
  /* wrong gradients: nothing is updated */
  ct_tensor *g3 = ts_tensor(CTX, CT_FLOAT32, 1, SH(3), (const double[]){1, 1, 1});
  ct_tensor *g64 = ts_tensor(CTX, ts_has_fp64(CTX) ? CT_FLOAT64 : CT_INT32, 1, SH(2), (const double[]){1, 1});
  ct_tensor *bad_shape[2] = {g, g3}, *bad_dtype[2] = {g, g64}, *twice[2] = {b, b}, *plain[2] = {g, g};
  EXPECT_STATUS(ct_optimizer_apply(opt, bad_shape, vars, 2), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_optimizer_apply(opt, bad_dtype, vars, 2), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_optimizer_apply(opt, plain, twice, 2), CT_ERR_INVALID);
  EXPECT_STATUS(ct_optimizer_apply(opt, plain, plain, 2), CT_ERR_INVALID); /* not variables */
  EXPECT_STATUS(ct_optimizer_apply(opt, NULL, vars, 2), CT_ERR_NULL);
  ts_assert_close(a, (const double[]){1, 2}, 2, 0, 0, "a after rejected steps");
  ts_assert_close(b, (const double[]){2.9, 3.9}, 2, 1e-5, 0, "b after rejected steps");
  cr_assert_eq(ct_optimizer_iterations(opt), 1);
  /* bad options */
  ct_optimizer *bad = NULL;
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  o.learning_rate = 0;
  EXPECT_STATUS(ct_optimizer_create(CTX, &o, &bad), CT_ERR_INVALID);
  o = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  o.momentum = 1.0;
  EXPECT_STATUS(ct_optimizer_create(CTX, &o, &bad), CT_ERR_INVALID);
  o = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  o.nesterov = true;
  EXPECT_STATUS(ct_optimizer_create(CTX, &o, &bad), CT_ERR_INVALID);
  o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  o.beta2 = 1.0;
  EXPECT_STATUS(ct_optimizer_create(CTX, &o, &bad), CT_ERR_INVALID);
  o = ct_optimizer_default_options(CT_OPTIMIZER_ADAMW);
  o.weight_decay = -1;
  EXPECT_STATUS(ct_optimizer_create(CTX, &o, &bad), CT_ERR_INVALID);
  o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  o.epsilon = 0;
  EXPECT_STATUS(ct_optimizer_create(CTX, &o, &bad), CT_ERR_INVALID);
  o.kind = (ct_optimizer_kind)9;
  EXPECT_STATUS(ct_optimizer_create(CTX, &o, &bad), CT_ERR_INVALID);
  cr_assert_null(bad);
  cr_assert_str_eq(ct_optimizer_kind_name(CT_OPTIMIZER_ADAMW), "AdamW");
  ct_optimizer_options d = ct_optimizer_default_options(CT_OPTIMIZER_ADAMW);
  cr_assert(d.learning_rate == 0.001 && d.beta1 == 0.9 && d.beta2 == 0.999 && d.weight_decay > 0);
  ct_tensor *all[] = {a, b, g, g3, g64};
  ct_tensor_free_n(all, 5);
  ct_optimizer_free(opt);
  ct_optimizer_free(NULL);
}

/* A model trained with the optimizer: the loss of a least-squares fit goes down step by step. */
Test(nn_optim, minimises_a_quadratic_through_a_layer, .init = setup, .fini = teardown) {
  double xv[24], yv[8];
  for (int i = 0; i < 8; ++i) {
    for (int k = 0; k < 3; ++k) xv[i * 3 + k] = sin(i * 1.7 + k);
    yv[i] = 2 * xv[i * 3] - xv[i * 3 + 1] + 0.5 * xv[i * 3 + 2] + 0.3;
  }
  ct_tensor *x = ts_tensor(CTX, CT_FLOAT32, 2, SH(8, 3), xv), *y = ts_tensor(CTX, CT_FLOAT32, 2, SH(8, 1), yv);
  for (int k = 0; k < 3; ++k) {
    ct_module *d = NULL;
    OK(ct_dense_create(CTX, 3, 1, CT_ACTIVATION_NONE, NULL, &d));
    ct_tensor *vars[2];
    int n;
    OK(ct_module_trainable_variables(d, vars, 2, &n));
    ct_optimizer *opt = make(k == 0 ? CT_OPTIMIZER_SGD : k == 1 ? CT_OPTIMIZER_ADAM : CT_OPTIMIZER_ADAMW,
                             k == 0 ? 0.1 : 0.05, k == 0 ? 0.9 : 0, k == 0, 0);
    double first = 0, last = 0;
    for (int s = 0; s < 150; ++s) {
      ct_tape *tape;
      ct_tensor *p = NULL, *loss = NULL, *g[2];
      OK(ct_tape_begin(CTX, NULL, &tape));
      OK(ct_module_call(d, x, true, &p));
      OK(ct_mean_squared_error(p, y, &loss));
      OK(ct_tape_end(tape));
      OK(ct_tape_gradient(tape, &loss, 1, vars, 2, NULL, CT_UNCONNECTED_NONE, g));
      OK(ct_optimizer_apply(opt, g, vars, 2));
      if (s == 0) first = ts_item(loss);
      if (s == 149) last = ts_item(loss);
      ct_tensor_free_n(g, 2);
      ct_tensor_free(p);
      ct_tensor_free(loss);
      ct_tape_free(tape);
    }
    cr_assert(last < 1e-3 && last < first / 100, "%s: loss %g -> %g", ct_optimizer_kind_name((ct_optimizer_kind)k), first,
              last);
    ct_optimizer_free(opt);
    ct_module_free(d);
  }
  ct_tensor_free(x);
  ct_tensor_free(y);
}

/* A NaN in any gradient makes the global norm NaN, and every clipped gradient NaN (as
 * TensorFlow's clip_by_global_norm): fmax used to drop the NaN norm and leave the others as they were. */
Test(nn_optim, clipping_with_a_nan_gradient, .init = setup, .fini = teardown) {
  double a[] = {NAN, 1}, b[] = {2, 3};
  ct_tensor *g[2] = {ts_tensor(CTX, CT_FLOAT32, 1, (int64_t[]){2}, a), ts_tensor(CTX, CT_FLOAT32, 1, (int64_t[]){2}, b)};
  ct_tensor *c[2] = {NULL, NULL}, *norm = NULL;
  OK(ct_clip_by_global_norm(g, 2, 1.0, c, &norm));
  cr_assert(isnan(ts_item(norm)), "global norm %g", ts_item(norm));
  for (int i = 0; i < 2; ++i) {
    double *v = ts_read(c[i]);
    cr_assert(isnan(v[0]) && isnan(v[1]), "clipped gradient %d: %g %g", i, v[0], v[1]);
    free(v);
  }
  ct_tensor_free_n(c, 2);
  ct_tensor_free_n(g, 2);
  ct_tensor_free(norm);
}

/* ---- learning-rate schedules ------------------------------------------------------------------ */
static void expect_rate(const ct_lr_schedule *s, int64_t step, double want, const char *what) {
  double got = ct_lr_schedule_value(s, step);
  cr_assert(fabs(got - want) <= 1e-12 * fabs(want) + 1e-15, "%s: step %lld gives %.15g, wanted %.15g", what,
            (long long)step, got, want);
}

Test(nn_optim, schedules_follow_their_formulas, .init = setup, .fini = teardown) {
  ct_lr_schedule s = ct_lr_schedule_default(CT_LR_CONSTANT, 1.0);
  s.warmup_steps = 4;
  expect_rate(&s, 0, 0.25, "constant with warmup");
  expect_rate(&s, 2, 0.75, "constant with warmup");
  expect_rate(&s, 3, 1.0, "constant with warmup");
  expect_rate(&s, 1000, 1.0, "constant with warmup");
  s = ct_lr_schedule_default(CT_LR_STEP, 1.0);
  cr_assert_eq(s.decay_rate, 0.1);
  s.warmup_steps = 2;
  s.decay_steps = 3;
  s.decay_rate = 0.5;
  const double step_want[] = {0.5, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25};
  for (int k = 0; k < 9; ++k) expect_rate(&s, k, step_want[k], "step");
  s = ct_lr_schedule_default(CT_LR_EXPONENTIAL, 2.0);
  s.decay_steps = 2;
  s.decay_rate = 0.25;
  expect_rate(&s, 0, 2.0, "exponential");
  expect_rate(&s, 1, 1.0, "exponential");
  expect_rate(&s, 2, 0.5, "exponential");
  expect_rate(&s, 4, 0.125, "exponential");
  s = ct_lr_schedule_default(CT_LR_COSINE, 1.0);
  s.decay_steps = 4;
  s.min_learning_rate = 0.1;
  expect_rate(&s, 0, 1.0, "cosine");
  expect_rate(&s, 1, 0.1 + 0.45 * (1 + cos(3.14159265358979323846 / 4)), "cosine");
  expect_rate(&s, 2, 0.55, "cosine");
  expect_rate(&s, 4, 0.1, "cosine");
  expect_rate(&s, 50, 0.1, "cosine");
  s.warmup_steps = 10;
  expect_rate(&s, 4, 0.5, "cosine in warmup");
  expect_rate(&s, 12, 0.55, "cosine after warmup");
  /* no rate from a bad schedule or step */
  expect_rate(&s, -1, 0, "negative step");
  cr_assert_eq(ct_lr_schedule_value(NULL, 0), 0.0);
  s.min_learning_rate = 2.0;
  expect_rate(&s, 0, 0, "min above the rate");
}

Test(nn_optim, every_optimizer_follows_a_schedule, .init = setup, .fini = teardown) {
  const ct_optimizer_kind kinds[3] = {CT_OPTIMIZER_SGD, CT_OPTIMIZER_ADAM, CT_OPTIMIZER_ADAMW};
  ct_lr_schedule sched = ct_lr_schedule_default(CT_LR_COSINE, 0.1);
  sched.warmup_steps = 2;
  sched.decay_steps = 5;
  sched.min_learning_rate = 0.01;
  const ct_dtype fdt = ts_best_float(CTX);
  for (int c = 0; c < 3; ++c) {
    host_opt h;
    memset(&h, 0, sizeof h);
    h.o = ct_optimizer_default_options(kinds[c]);
    const double p0[5] = {0.3, -1.2, 2.5, 0.0, 4.0};
    memcpy(h.p, p0, sizeof p0);
    ct_optimizer *opt = NULL;
    OK(ct_optimizer_create(CTX, &h.o, &opt));
    OK(ct_optimizer_set_schedule(opt, &sched));
    ct_tensor *var = var_of(fdt, 5, p0, "w");
    for (int k = 0; k < 9; ++k) {
      double want = ct_lr_schedule_value(&sched, k);
      cr_assert_eq(ct_optimizer_learning_rate(opt), want, "%s step %d: rate %g, wanted %g",
                   ct_optimizer_kind_name(kinds[c]), k, ct_optimizer_learning_rate(opt), want);
      double g[5];
      for (int i = 0; i < 5; ++i) g[i] = sin(0.7 * k + i) - 0.1 * h.p[i];
      h.o.learning_rate = want;
      host_step(&h, g, 5);
      ct_tensor *gt = ts_tensor(CTX, fdt, 1, SH(5), g);
      OK(ct_optimizer_apply(opt, &gt, &var, 1));
      ct_tensor_free(gt);
    }
    double *r = ts_read(var);
    char what[64];
    snprintf(what, sizeof what, "%s with a cosine schedule", ct_optimizer_kind_name(kinds[c]));
    expect_values(r, h.p, 5, fdt == CT_FLOAT64 ? 1e-12 : 2e-5, what);
    free(r);
    /* a set rate replaces the schedule; NULL keeps the current rate */
    OK(ct_optimizer_set_learning_rate(opt, 0.5));
    ct_tensor *gt = ts_tensor(CTX, fdt, 1, SH(5), p0);
    OK(ct_optimizer_apply(opt, &gt, &var, 1));
    cr_assert_eq(ct_optimizer_learning_rate(opt), 0.5, "the schedule outlived set_learning_rate");
    OK(ct_optimizer_set_schedule(opt, &sched));
    cr_assert_eq(ct_optimizer_learning_rate(opt), ct_lr_schedule_value(&sched, 10));
    OK(ct_optimizer_set_schedule(opt, NULL));
    OK(ct_optimizer_apply(opt, &gt, &var, 1));
    cr_assert_eq(ct_optimizer_learning_rate(opt), ct_lr_schedule_value(&sched, 10));
    ct_tensor_free(gt);
    ct_tensor_free(var);
    ct_optimizer_free(opt);
  }
}

Test(nn_optim, bad_schedules_are_refused, .init = setup, .fini = teardown) {
  ct_optimizer *opt = make(CT_OPTIMIZER_SGD, 0.1, 0, false, 0);
  ct_lr_schedule ok_s = ct_lr_schedule_default(CT_LR_STEP, 0.1), s;
  s = ok_s;
  s.learning_rate = 0;
  EXPECT_STATUS(ct_optimizer_set_schedule(opt, &s), CT_ERR_INVALID);
  s = ok_s;
  s.learning_rate = NAN;
  EXPECT_STATUS(ct_optimizer_set_schedule(opt, &s), CT_ERR_INVALID);
  s = ok_s;
  s.warmup_steps = -1;
  EXPECT_STATUS(ct_optimizer_set_schedule(opt, &s), CT_ERR_INVALID);
  s = ok_s;
  s.decay_steps = 0;
  EXPECT_STATUS(ct_optimizer_set_schedule(opt, &s), CT_ERR_INVALID);
  s = ok_s;
  s.decay_rate = 1.5;
  EXPECT_STATUS(ct_optimizer_set_schedule(opt, &s), CT_ERR_INVALID);
  s = ok_s;
  s.kind = (ct_lr_schedule_kind)7;
  EXPECT_STATUS(ct_optimizer_set_schedule(opt, &s), CT_ERR_INVALID);
  s = ct_lr_schedule_default(CT_LR_COSINE, 0.1);
  s.min_learning_rate = -0.1;
  EXPECT_STATUS(ct_optimizer_set_schedule(opt, &s), CT_ERR_INVALID);
  cr_assert_eq(ct_optimizer_learning_rate(opt), 0.1, "a refused schedule changed the rate");
  ct_optimizer_free(opt);
}

/* ---- one launch for many variables ------------------------------------------------------------- */
/* Eleven variables (more than one launch takes) of several sizes, some without a gradient, one
 * whose storage a snapshot shares (its update goes to fresh storage): three steps of one optimizer
 * over all of them give, bit for bit, what one optimizer per variable gives. */
static void expect_multi_equals_single(ct_optimizer_options o, const char *what) {
  enum { NV = 11 };
  const int sizes[NV] = {1, 7, 64, 3, 1000, 5, 16, 2, 33, 9, 130};
  ct_tensor *va[NV], *vb[NV], *g[NV], *snap = NULL;
  ct_optimizer *all = NULL, *one[NV];
  OK(ct_optimizer_create(CTX, &o, &all));
  for (int i = 0; i < NV; ++i) {
    double *p = malloc(sizeof(double) * (size_t)sizes[i]), *gv = malloc(sizeof(double) * (size_t)sizes[i]);
    for (int j = 0; j < sizes[i]; ++j) {
      p[j] = sin(0.7 * j + i) * 2;
      gv[j] = cos(1.3 * j - i) * 0.9;
    }
    va[i] = var_of(CT_FLOAT32, sizes[i], p, "a");
    vb[i] = var_of(CT_FLOAT32, sizes[i], p, "b");
    g[i] = i == 3 || i == 8 ? NULL : ts_tensor(CTX, CT_FLOAT32, 1, SH(sizes[i]), gv);
    OK(ct_optimizer_create(CTX, &o, &one[i]));
    free(p);
    free(gv);
  }
  OK(ct_variable_value(va[5], &snap));
  for (int s = 0; s < 3; ++s) {
    OK(ct_optimizer_apply(all, g, va, NV));
    for (int i = 0; i < NV; ++i) OK(ct_optimizer_apply(one[i], &g[i], &vb[i], 1));
  }
  for (int i = 0; i < NV; ++i) {
    double *a = ts_read(va[i]), *b = ts_read(vb[i]);
    for (int j = 0; j < sizes[i]; ++j)
      cr_assert(memcmp(&a[j], &b[j], sizeof a[j]) == 0, "%s: variable %d element %d: %.9g together, %.9g alone", what,
                i, j, a[j], b[j]);
    if (!g[i]) cr_assert_float_eq(a[0], (float)(sin((double)i) * 2), 0, "%s: variable %d has no gradient", what, i);
    free(a);
    free(b);
  }
  double *sn = ts_read(snap);
  cr_assert_float_eq(sn[0], (float)(sin(5.0) * 2), 0, "%s: the snapshot's storage was written", what);
  free(sn);
  for (int i = 0; i < NV; ++i) {
    ct_tensor_free(va[i]);
    ct_tensor_free(vb[i]);
    ct_tensor_free(g[i]);
    ct_optimizer_free(one[i]);
  }
  ct_tensor_free(snap);
  ct_optimizer_free(all);
}

Test(nn_optim, one_launch_for_many_variables_equals_one_per_variable, .init = setup, .fini = teardown) {
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  o.learning_rate = 0.1;
  o.weight_decay = 0.01;
  expect_multi_equals_single(o, "SGD");
  o.momentum = 0.9;
  expect_multi_equals_single(o, "momentum");
  o.nesterov = true;
  expect_multi_equals_single(o, "Nesterov");
  o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  o.learning_rate = 0.05;
  expect_multi_equals_single(o, "Adam");
  o.weight_decay = 0.02;
  expect_multi_equals_single(o, "Adam, L2");
  o = ct_optimizer_default_options(CT_OPTIMIZER_ADAMW);
  expect_multi_equals_single(o, "AdamW");
}

/* A variable without a gradient keeps its value while the others of its launch move. */
Test(nn_optim, a_variable_without_gradient_in_a_shared_launch_is_unchanged, .init = setup, .fini = teardown) {
  ct_optimizer *opt = make(CT_OPTIMIZER_ADAM, 0.1, 0, false, 0);
  ct_tensor *v[3] = {var_of(CT_FLOAT32, 2, (const double[]){1, 2}, "a"),
                     var_of(CT_FLOAT32, 3, (const double[]){3, 4, 5}, "b"),
                     var_of(CT_FLOAT32, 1, (const double[]){6}, "c")};
  ct_tensor *g[3] = {ts_tensor(CTX, CT_FLOAT32, 1, SH(2), (const double[]){1, -1}), NULL,
                     ts_tensor(CTX, CT_FLOAT32, 1, SH(1), (const double[]){2})};
  OK(ct_optimizer_apply(opt, g, v, 3));
  /* Adam's first step moves every element by lr * sign(g) (up to epsilon) */
  ts_assert_close(v[0], (const double[]){0.9, 2.1}, 2, 1e-5, 0, "a");
  ts_assert_close(v[1], (const double[]){3, 4, 5}, 3, 0, 0, "b (no gradient)");
  ts_assert_close(v[2], (const double[]){5.9}, 1, 1e-5, 0, "c");
  ct_tensor_free_n(v, 3);
  ct_tensor_free_n(g, 3);
  ct_optimizer_free(opt);
}
