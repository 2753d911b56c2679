/* The fused attention kernel (kernels/attention.cl, lib/nn/attention.c) against the attention made
 * of rows: values and the gradients of q, k and v, causal and not, with shapes that are not
 * multiples of the kernels' blocks (32 keys, 64 queries), fewer queries than keys, leading axes of
 * rank 1 and 2; second derivatives and forward-mode tangents through the fused op (its gradient is
 * made of rows when a tape records it); the finite-difference checker on the public function with
 * the fused kernel forced; and the choice CLTAPE_ATTENTION makes. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})
/* float64 where the device has it, float32 otherwise (rusticl) */
#define FDT ts_best_float(CTX)
#define TOL (FDT == CT_FLOAT64 ? 1e-10 : 2e-5)

static void setup(void) { CTX = ts_ctx(); }
static void teardown(void) {
  ct__env_override("CLTAPE_ATTENTION", NULL);
  ct_context_free(CTX);
  CTX = NULL;
}

typedef struct {
  int rank;
  int64_t lead[2];
  int64_t tq, tk, d, dv;
} att_case;

static const att_case cases[] = {
    {3, {2}, 5, 5, 3, 4},       /* less than one block */
    {3, {1}, 70, 70, 8, 8},     /* past one group of queries and two blocks of keys */
    {3, {3}, 37, 100, 5, 2},    /* fewer queries than keys: the causal diagonal moves */
    {4, {2, 3}, 33, 33, 16, 16}, /* batch and heads */
    {3, {1}, 1, 1, 1, 1},
    {3, {2}, 70, 20, 4, 3},     /* more queries than keys (not causal) */
    {3, {1}, 129, 129, 32, 32}, /* char_lm's head size, past two groups */
};

/* |got - want| <= TOL * max(1, max |want|), element by element */
static void expect_close(const ct_tensor *got, const ct_tensor *want, const char *what) {
  cr_assert_eq(ct_tensor_size(got), ct_tensor_size(want), "%s: sizes differ", what);
  int64_t n = ct_tensor_size(got);
  double *g = ts_read(got), *w = ts_read(want), scale = 1, worst = 0;
  for (int64_t i = 0; i < n; ++i) scale = fmax(scale, fabs(w[i]));
  for (int64_t i = 0; i < n; ++i) worst = fmax(worst, fabs(g[i] - w[i]));
  cr_expect_leq(worst, TOL * scale, "%s: differs by %g (scale %g)", what, worst, scale);
  free(g);
  free(w);
}

/* y = attention(q, k, v) on the path `mode`, and the gradients of sum(y * w) for q, k and v; the
 * tape's size tells which path ran (one record: the fused row) */
static void run(const char *mode, ct_tensor *const *qkv, const ct_tensor *w, bool causal, ct_tensor **y,
                ct_tensor **grads, size_t *records) {
  ct__env_override("CLTAPE_ATTENTION", mode);
  ct_tape *t = NULL;
  OK(ct_tape_begin(CTX, NULL, &t));
  for (int i = 0; i < 3; ++i) OK(ct_tape_watch(t, qkv[i]));
  OK(ct_scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], causal, y));
  OK(ct_tape_end(t));
  *records = ct_tape_size(t);
  ct_tensor *og[1] = {(ct_tensor *)w};
  OK(ct_tape_gradient(t, y, 1, qkv, 3, og, CT_UNCONNECTED_ZERO, grads));
  ct_tape_free(t);
  ct__env_override("CLTAPE_ATTENTION", NULL);
}

static void operands(const att_case *c, uint32_t seed, ct_tensor **qkv, ct_tensor **w) {
  int64_t sq[4], sk[4], sv[4], so[4];
  int r = c->rank;
  for (int i = 0; i < r - 2; ++i) sq[i] = sk[i] = sv[i] = so[i] = c->lead[i];
  sq[r - 2] = so[r - 2] = c->tq, sk[r - 2] = sv[r - 2] = c->tk;
  sq[r - 1] = sk[r - 1] = c->d, sv[r - 1] = so[r - 1] = c->dv;
  qkv[0] = ts_lcg_tensor(CTX, FDT, r, sq, seed, NULL);
  qkv[1] = ts_lcg_tensor(CTX, FDT, r, sk, seed + 1, NULL);
  qkv[2] = ts_lcg_tensor(CTX, FDT, r, sv, seed + 2, NULL);
  *w = ts_lcg_tensor(CTX, FDT, r, so, seed + 3, NULL);
}

static void compare_paths(size_t first, size_t last) {
  for (size_t ci = first; ci < last; ++ci) {
    const att_case *c = &cases[ci];
    for (int causal = 0; causal < 2; ++causal) {
      if (causal && c->tq > c->tk) continue;
      ct_tensor *qkv[3], *w, *yf = NULL, *yc = NULL, *gf[3] = {0}, *gc[3] = {0};
      operands(c, (uint32_t)(10 * ci + 1), qkv, &w);
      size_t nf, nc;
      run("fused", qkv, w, causal != 0, &yf, gf, &nf);
      run("composed", qkv, w, causal != 0, &yc, gc, &nc);
      cr_expect_eq(nf, 1, "case %zu: the fused path records %zu ops, not one", ci, nf);
      cr_expect_gt(nc, 1, "case %zu: the composed path records one op", ci);
      char what[96];
      snprintf(what, sizeof what, "case %zu%s: output", ci, causal ? " causal" : "");
      expect_close(yf, yc, what);
      static const char *names[3] = {"dq", "dk", "dv"};
      for (int i = 0; i < 3; ++i) {
        snprintf(what, sizeof what, "case %zu%s: %s", ci, causal ? " causal" : "", names[i]);
        cr_assert_not_null(gf[i], "%s: no gradient", what);
        ts_assert_shape(gf[i], ct_tensor_rank(qkv[i]), ct_tensor_shape(qkv[i]), what);
        expect_close(gf[i], gc[i], what);
      }
      ct_tensor *tmp[] = {qkv[0], qkv[1], qkv[2], w, yf, yc, gf[0], gf[1], gf[2], gc[0], gc[1], gc[2]};
      ct_tensor_free_n(tmp, 12);
    }
  }
}

Test(nn_attention, fused_equals_composed_in_values_and_gradients, .init = setup, .fini = teardown) {
  compare_paths(0, sizeof cases / sizeof *cases);
}

/* the kernels' other build: the blocks through local memory (what devices other than CPUs run) */
Test(nn_attention, fused_equals_composed_through_local_memory, .init = setup, .fini = teardown) {
  ct__env_override("CLTAPE_TEST_ATTENTION_LOCAL", "1");
  ct_context_free(CTX);
  CTX = ts_ctx();
  compare_paths(0, 3);
  ct__env_override("CLTAPE_TEST_ATTENTION_LOCAL", NULL);
}

/* d/dq of sum(d(sum(y w))/dq * w2): the gradient of the gradient, through a persistent tape */
static ct_tensor *second_derivative(const char *mode, ct_tensor *const *qkv, const ct_tensor *w, const ct_tensor *w2) {
  ct__env_override("CLTAPE_ATTENTION", mode);
  ct_tape_options o = ct_tape_default_options();
  o.persistent = true;
  ct_tape *t = NULL;
  ct_tensor *y = NULL, *yw = NULL, *l = NULL, *g = NULL, *gw = NULL, *l2 = NULL, *h = NULL;
  OK(ct_tape_begin(CTX, &o, &t));
  OK(ct_tape_watch(t, qkv[0]));
  OK(ct_scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], true, &y));
  OK(ct_mul(y, w, &yw));
  OK(ct_sum(yw, NULL, 0, false, &l));
  OK(ct_tape_gradient1(t, l, qkv[0], &g)); /* recorded: the persistent tape is recording */
  OK(ct_mul(g, w2, &gw));
  OK(ct_sum(gw, NULL, 0, false, &l2));
  OK(ct_tape_end(t));
  OK(ct_tape_gradient1(t, l2, qkv[0], &h));
  ct_tensor *tmp[] = {y, yw, l, g, gw, l2};
  ct_tensor_free_n(tmp, 6);
  ct_tape_free(t);
  ct__env_override("CLTAPE_ATTENTION", NULL);
  return h;
}

Test(nn_attention, second_derivatives_match_the_composed_ones, .init = setup, .fini = teardown) {
  const att_case c = {3, {2}, 6, 9, 3, 4};
  ct_tensor *qkv[3], *w, *w2 = ts_lcg_tensor(CTX, FDT, 3, SH(2, 6, 3), 99, NULL);
  operands(&c, 41, qkv, &w);
  ct_tensor *hf = second_derivative("fused", qkv, w, w2), *hc = second_derivative("composed", qkv, w, w2);
  cr_assert_not_null(hf);
  cr_assert_not_null(hc);
  expect_close(hf, hc, "second derivative");
  ct_tensor *tmp[] = {qkv[0], qkv[1], qkv[2], w, w2, hf, hc};
  ct_tensor_free_n(tmp, 7);
}

Test(nn_attention, forward_mode_tangents_match_the_composed_ones, .init = setup, .fini = teardown) {
  const att_case c = {3, {2}, 7, 7, 3, 2};
  ct_tensor *qkv[3], *w, *v = ts_lcg_tensor(CTX, FDT, 3, SH(2, 7, 3), 77, NULL), *tan[2] = {0};
  operands(&c, 51, qkv, &w);
  for (int m = 0; m < 2; ++m) {
    ct__env_override("CLTAPE_ATTENTION", m ? "composed" : "fused");
    ct_tape *fw = NULL;
    ct_tensor *y = NULL;
    OK(ct_tape_begin_forward(CTX, &qkv[1], &v, 1, &fw));
    OK(ct_scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], true, &y));
    OK(ct_tape_end(fw));
    OK(ct_tape_jvp(fw, y, CT_UNCONNECTED_ZERO, &tan[m]));
    ct_tensor_free(y);
    ct_tape_free(fw);
  }
  expect_close(tan[0], tan[1], "tangent");
  ct_tensor *tmp[] = {qkv[0], qkv[1], qkv[2], w, v, tan[0], tan[1]};
  ct_tensor_free_n(tmp, 7);
}

static ct_status f_sdpa(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  return ct_scaled_dot_product_attention(in[0], in[1], in[2], *(const bool *)u, out);
}

Test(nn_attention, fused_gradients_pass_the_checker, .init = setup, .fini = teardown) {
  ct__env_override("CLTAPE_ATTENTION", "fused");
  static const bool causal[2] = {false, true};
  for (int c = 0; c < 2; ++c) {
    ct_tensor *in[3] = {ts_lcg_tensor(CTX, FDT, 4, SH(1, 2, 4, 3), 5, NULL),
                        ts_lcg_tensor(CTX, FDT, 4, SH(1, 2, 6, 3), 6, NULL),
                        ts_lcg_tensor(CTX, FDT, 4, SH(1, 2, 6, 2), 7, NULL)};
    ct_gradcheck_report r;
    memset(&r, 0, sizeof r);
    OK(ct_gradcheck(CTX, f_sdpa, (void *)&causal[c], in, 3, NULL, &r));
    cr_expect(r.passed, "%s: %s", causal[c] ? "causal" : "open", r.message);
    cr_expect_gt(r.checked, 0);
    ct_tensor_free_n(in, 3);
  }
}

/* The default picks a path by itself and gives the same values; a forced path that cannot run
 * says why. */
Test(nn_attention, the_default_path_gives_the_same_values, .init = setup, .fini = teardown) {
  const att_case *c = &cases[3];
  ct_tensor *qkv[3], *w, *y0 = NULL, *y1 = NULL, *g0[3] = {0}, *g1[3] = {0};
  operands(c, 61, qkv, &w);
  size_t n0, n1;
  run("auto", qkv, w, true, &y0, g0, &n0);
  run("composed", qkv, w, true, &y1, g1, &n1);
  expect_close(y0, y1, "default path");
  for (int i = 0; i < 3; ++i) expect_close(g0[i], g1[i], "default path gradient");
  ct_tensor *tmp[] = {qkv[0], qkv[1], qkv[2], w, y0, y1, g0[0], g0[1], g0[2], g1[0], g1[1], g1[2]};
  ct_tensor_free_n(tmp, 12);
}
