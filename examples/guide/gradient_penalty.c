/* gradient_penalty.c — a gradient penalty on a critic's input gradient (WGAN-GP):
 *   loss = mean(D(fake)) - mean(D(real)) + 10 mean((|grad_x D(x_hat)| - 1)^2)
 * with x_hat a random mix of real and fake examples and D(x) = tanh(x W1 + b1) W2. The input
 * gradient comes from an inner tape that watches x_hat; the outer tape differentiates the loss,
 * penalty included, with respect to the critic's weights (second derivatives of D). ct_gradcheck
 * checks that gradient, then a few steps of Adam train the critic. */
#include "guide.h"
#include <cltape_nn.h>

#define B 16
#define D 4
#define H 8

typedef struct {
  ct_tensor *real, *fake, *x_hat;
} batch;

static ct_tensor *critic(ct_tensor *const *w, const ct_tensor *x) {
  ct_tensor *a, *ab, *h, *out;
  TRY(ct_matmul(x, w[0], false, false, &a));
  TRY(ct_add(a, w[1], &ab));
  TRY(ct_tanh(ab, &h));
  TRY(ct_matmul(h, w[2], false, false, &out)); /* [B, 1] */
  ct_tensor *tmp[] = {a, ab, h};
  ct_tensor_free_n(tmp, 3);
  return out;
}

static ct_tensor *mean_of(ct_tensor *t) {
  ct_tensor *m;
  TRY(ct_mean(t, NULL, 0, false, &m));
  ct_tensor_free(t);
  return m;
}

/* 10 mean((|grad_x D(x_hat)| - 1)^2) */
static ct_tensor *penalty(ct_tensor *const *w, const ct_tensor *x_hat) {
  ct_tape *inner;
  ct_tensor *d, *gx, *g2, *ss, *norm, *dev, *dev2, *gp;
  TRY(ct_tape_begin(ct_tensor_context(x_hat), NULL, &inner));
  TRY(ct_tape_watch(inner, x_hat));
  d = critic(w, x_hat);
  TRY(ct_tape_end(inner));
  TRY(ct_tape_gradient1(inner, d, x_hat, &gx)); /* [B, D]: row b is grad D(x_hat[b]) */
  TRY(ct_square(gx, &g2));
  TRY(ct_sum(g2, (int[]){1}, 1, false, &ss));
  TRY(ct_sqrt(ss, &norm));
  TRY(ct_sub_scalar(norm, 1.0, &dev));
  TRY(ct_square(dev, &dev2));
  TRY(ct_mul_scalar(dev2, 10.0, &gp));
  ct_tensor *tmp[] = {d, gx, g2, ss, norm, dev, dev2};
  ct_tensor_free_n(tmp, 7);
  ct_tape_free(inner);
  return mean_of(gp);
}

/* the critic's loss, a ct_fn of the weights */
static ct_status critic_loss(ct_tensor *const *w, int n_w, ct_tensor **loss, void *user) {
  (void)n_w;
  const batch *b = user;
  ct_tensor *df = mean_of(critic(w, b->fake)), *dr = mean_of(critic(w, b->real)), *gp = penalty(w, b->x_hat);
  ct_tensor *wd;
  TRY(ct_sub(df, dr, &wd));
  TRY(ct_add(wd, gp, loss));
  ct_tensor *tmp[] = {df, dr, gp, wd};
  ct_tensor_free_n(tmp, 4);
  return CT_OK;
}

int main(int argc, char **argv) {
  ct_dtype dt;
  ct_context *ctx = open_device(argc, argv, &dt);
  batch b;
  ct_tensor *eps, *a, *one_m, *c, *init[3], *w[3];
  TRY(ct_random_normal(ctx, dt, 2, (int64_t[]){B, D}, 1.0, 0.5, 11, &b.real));
  TRY(ct_random_normal(ctx, dt, 2, (int64_t[]){B, D}, -1.0, 1.0, 12, &b.fake));
  TRY(ct_random_uniform(ctx, dt, 2, (int64_t[]){B, 1}, 0.0, 1.0, 13, &eps));
  TRY(ct_mul(eps, b.real, &a));
  TRY(ct_rsub_scalar(1.0, eps, &one_m));
  TRY(ct_mul(one_m, b.fake, &c));
  TRY(ct_add(a, c, &b.x_hat)); /* eps real + (1 - eps) fake */
  TRY(ct_random_normal(ctx, dt, 2, (int64_t[]){D, H}, 0.0, 0.5, 1, &init[0]));
  TRY(ct_random_normal(ctx, dt, 1, (int64_t[]){H}, 0.0, 0.5, 2, &init[1]));
  TRY(ct_random_normal(ctx, dt, 2, (int64_t[]){H, 1}, 0.0, 0.5, 3, &init[2]));
  const char *names[3] = {"critic/W1", "critic/b1", "critic/W2"};
  for (int i = 0; i < 3; ++i) TRY(ct_variable_create(init[i], names[i], true, &w[i]));

  ct_gradcheck_report rep;
  ct_gradcheck_options gopts = {0};
  gopts.float32 = dt != CT_FLOAT64;
  TRY(ct_gradcheck(ctx, critic_loss, &b, init, 3, &gopts, &rep));
  printf("gradcheck of the critic's loss: %s\n", rep.passed ? "passed" : rep.message);
  expect(rep.passed, "the gradient through the penalty matches finite differences");

  ct_optimizer *opt;
  ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  oo.learning_rate = 0.01;
  TRY(ct_optimizer_create(ctx, &oo, &opt));
  double first_gp = 0, gp_v = 0;
  for (int step = 0; step <= 200; ++step) {
    ct_tape *tape;
    ct_tensor *loss, *g[3], *gp;
    TRY(ct_tape_begin(ctx, NULL, &tape));
    TRY(critic_loss(w, 3, &loss, &b));
    TRY(ct_tape_end(tape));
    TRY(ct_tape_gradient(tape, &loss, 1, w, 3, NULL, CT_UNCONNECTED_NONE, g));
    for (int i = 0; i < 3; ++i) expect(g[i] != NULL, "every weight gets a gradient");
    if (step % 100 == 0) {
      gp = penalty(w, b.x_hat);
      gp_v = item(gp);
      if (step == 0) first_gp = gp_v;
      printf("step %3d  critic loss % .3f  penalty %.3f\n", step, item(loss), gp_v);
      ct_tensor_free(gp);
    }
    TRY(ct_optimizer_apply(opt, g, w, 3));
    ct_tensor_free(loss);
    ct_tensor_free_n(g, 3);
    ct_tape_free(tape);
  }
  expect(gp_v < first_gp, "the penalty pulls the input gradient's norm towards 1");
  ct_tensor *tmp[] = {b.real, b.fake, b.x_hat, eps, a, one_m, c};
  ct_tensor_free_n(tmp, 7);
  ct_tensor_free_n(init, 3);
  ct_tensor_free_n(w, 3);
  ct_optimizer_free(opt);
  return finish(ctx);
}
