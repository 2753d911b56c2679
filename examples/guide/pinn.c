/* pinn.c — a loss with second derivatives: a physics-informed network for
 *   u''(x) = f(x) on [0, 1], u(0) = u(1) = 0, with f(x) = -pi^2 sin(pi x)  (so u = sin(pi x)).
 * The network is u(x) = x (1 - x) N(x), N a one-hidden-layer tanh network, so the boundary
 * conditions hold by construction. The loss is the mean squared residual u'' - f at 32 points:
 * u'' comes from two nested tapes watching the points, and a third tape around them takes the
 * loss's gradient with respect to the weights. ct_gradcheck checks that gradient (third
 * derivatives of tanh are on its path), then Adam trains the network. */
#include "guide.h"
#include <cltape_nn.h>

#define N 32
#define H 16
static const double PI = 3.14159265358979323846;

/* u at the points x [N, 1] for the weights w = {W1 [1, H], b1 [H], W2 [H, 1]} */
static ct_tensor *network(ct_tensor *const *w, const ct_tensor *x) {
  ct_tensor *a, *ab, *h, *n, *omx, *env, *u;
  TRY(ct_matmul(x, w[0], false, false, &a));
  TRY(ct_add(a, w[1], &ab));
  TRY(ct_tanh(ab, &h));
  TRY(ct_matmul(h, w[2], false, false, &n));
  TRY(ct_rsub_scalar(1.0, x, &omx)); /* 1 - x */
  TRY(ct_mul(x, omx, &env));
  TRY(ct_mul(env, n, &u));
  ct_tensor *tmp[] = {a, ab, h, n, omx, env};
  ct_tensor_free_n(tmp, 6);
  return u;
}

typedef struct {
  ct_tensor *x, *f; /* the points and f there */
} problem;

/* mean((u'' - f)^2): the loss, a ct_fn of the weights */
static ct_status residual_loss(ct_tensor *const *w, int n_w, ct_tensor **loss, void *user) {
  (void)n_w;
  const problem *p = user;
  ct_tape *t2, *t1;
  ct_tensor *u, *du, *d2u, *r, *r2;
  TRY(ct_tape_begin(ct_tensor_context(p->x), NULL, &t2));
  TRY(ct_tape_begin(ct_tensor_context(p->x), NULL, &t1));
  TRY(ct_tape_watch(t2, p->x));
  TRY(ct_tape_watch(t1, p->x));
  u = network(w, p->x);
  TRY(ct_tape_end(t1));
  TRY(ct_tape_gradient1(t1, u, p->x, &du));  /* u'(x_i): u_i depends on x_i only */
  TRY(ct_tape_end(t2));
  TRY(ct_tape_gradient1(t2, du, p->x, &d2u)); /* u''(x_i) */
  TRY(ct_sub(d2u, p->f, &r));
  TRY(ct_square(r, &r2));
  TRY(ct_mean(r2, NULL, 0, false, loss));
  ct_tensor *tmp[] = {u, du, d2u, r, r2};
  ct_tensor_free_n(tmp, 5);
  ct_tape_free(t1);
  ct_tape_free(t2);
  return CT_OK;
}

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);
  double xs[N], fs[N];
  for (int i = 0; i < N; ++i) {
    xs[i] = (i + 0.5) / N;
    fs[i] = -PI * PI * sin(PI * xs[i]);
  }
  problem p = {tensor_of(ctx, dt, 2, (int64_t[]){N, 1}, xs), tensor_of(ctx, dt, 2, (int64_t[]){N, 1}, fs)};
  ct_tensor *w[3], *init[3];
  TRY(ct_random_normal(ctx, dt, 2, (int64_t[]){1, H}, 0.0, 2.0, 1, &init[0]));
  TRY(ct_random_normal(ctx, dt, 1, (int64_t[]){H}, 0.0, 1.0, 2, &init[1]));
  TRY(ct_random_normal(ctx, dt, 2, (int64_t[]){H, 1}, 0.0, 0.5, 3, &init[2]));
  const char *names[3] = {"W1", "b1", "W2"};
  for (int i = 0; i < 3; ++i) TRY(ct_variable_create(init[i], names[i], true, &w[i]));

  /* the gradient of the loss with respect to the weights, against finite differences */
  ct_gradcheck_report rep;
  ct_gradcheck_options gopts = {0};
  gopts.float32 = dt != CT_FLOAT64;
  TRY(ct_gradcheck(ctx, residual_loss, &p, init, 3, &gopts, &rep));
  printf("gradcheck of the residual loss: %s\n", rep.passed ? "passed" : rep.message);
  expect(rep.passed, "the loss's gradient matches finite differences");

  /* training: the weights are variables, watched by the outer tape when read */
  ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  oo.learning_rate = 0.02;
  ct_optimizer *opt;
  TRY(ct_optimizer_create(ctx, &oo, &opt));
  double first = 0, last = 0;
  for (int step = 0; step <= 400; ++step) {
    ct_tape *t0;
    ct_tensor *loss, *g[3];
    TRY(ct_tape_begin(ctx, NULL, &t0));
    TRY(residual_loss(w, 3, &loss, &p));
    TRY(ct_tape_end(t0));
    TRY(ct_tape_gradient(t0, &loss, 1, w, 3, NULL, CT_UNCONNECTED_NONE, g));
    TRY(ct_optimizer_apply(opt, g, w, 3));
    last = item(loss);
    if (step == 0) first = last;
    if (step % 100 == 0) printf("step %3d  residual loss %.4f\n", step, last);
    ct_tensor_free(loss);
    ct_tensor_free_n(g, 3);
    ct_tape_free(t0);
  }
  /* the solution against sin(pi x) */
  ct_tensor *u = network(w, p.x);
  double uv[N], err = 0;
  TRY(ct_tensor_read_f64(u, uv, N));
  for (int i = 0; i < N; ++i) err = fmax(err, fabs(uv[i] - sin(PI * xs[i])));
  printf("max |u - sin(pi x)| at the points: %.0e\n", err);
  expect(last < first / 100, "the residual loss falls a hundredfold");
  expect(err < 0.05, "u is close to sin(pi x)");
  ct_tensor *tmp[] = {p.x, p.f, u};
  ct_tensor_free_n(tmp, 3);
  ct_tensor_free_n(w, 3);
  ct_tensor_free_n(init, 3);
  ct_optimizer_free(opt);
  return finish(ctx);
}
