/* The recurrent layers (cltape_nn.h): LSTM and GRU against a host reference of Keras' equations
 * with fixed weights, their gradients through time by the finite-difference checker, the output
 * shapes with and without return_sequences, the initial values (orthogonal recurrent kernel,
 * forget bias) and bad inputs. */
#include "support.h"
#include "cltape_nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
#define SH(...) ((const int64_t[]){__VA_ARGS__})
/* checked in float64, float32 on a device without it */
#define FDT ts_best_float(CTX)
#define TOL (FDT == CT_FLOAT64 ? 1e-12 : 2e-6)

static void setup(void) {
  CTX = ts_ctx();
  ct_reset_module_names();
}
static void teardown(void) {
  ct_context_free(CTX);
  CTX = NULL;
}

/* deterministic values in [-scale, scale], rounded to the checking dtype */
static double *values(int64_t n, uint32_t seed, double scale) {
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    v[i] = ts_to_dtype(FDT, ((double)(s >> 8) / (double)(1u << 24) * 2.0 - 1.0) * scale);
  }
  return v;
}

static double sigm(double v) { return 1 / (1 + exp(-v)); }

/* Sets the layer's variables to host values (kernel, recurrent kernel, bias). */
static void set_weights(ct_module *m, double *const *w, int n) {
  ct_tensor *v[4];
  int got = 0;
  OK(ct_module_variables(m, v, 4, &got));
  cr_assert_eq(got, n);
  for (int i = 0; i < n; ++i) {
    ct_tensor *t = ts_tensor(CTX, FDT, ct_tensor_rank(v[i]), ct_tensor_shape(v[i]), w[i]);
    OK(ct_variable_assign(v[i], t));
    ct_tensor_free(t);
  }
}

/* Keras' LSTM on the host: x [B, T, F], W [F, 4H], U [H, 4H], b [4H] (NULL: none); every step's
 * h into hs [B, T, H]. */
static void lstm_host(const double *x, int64_t B, int64_t T, int64_t F, int64_t H, const double *W, const double *U,
                      const double *b, double *hs) {
  for (int64_t n = 0; n < B; ++n) {
    double h[16] = {0}, c[16] = {0}, z[64];
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < 4 * H; ++j) {
        z[j] = b ? b[j] : 0;
        for (int64_t k = 0; k < F; ++k) z[j] += x[(n * T + t) * F + k] * W[k * 4 * H + j];
        for (int64_t k = 0; k < H; ++k) z[j] += h[k] * U[k * 4 * H + j];
      }
      for (int64_t j = 0; j < H; ++j) {
        c[j] = sigm(z[H + j]) * c[j] + sigm(z[j]) * tanh(z[2 * H + j]);
        h[j] = sigm(z[3 * H + j]) * tanh(c[j]);
        hs[(n * T + t) * H + j] = h[j];
      }
    }
  }
}

/* Keras' GRU on the host: W [F, 3H], U [H, 3H]; reset_after: b [2, 3H], else b [3H]. */
static void gru_host(const double *x, int64_t B, int64_t T, int64_t F, int64_t H, const double *W, const double *U,
                     const double *b, bool reset_after, double *hs) {
  for (int64_t n = 0; n < B; ++n) {
    double h[16] = {0}, a[48], u[48], rh[16];
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < 3 * H; ++j) {
        a[j] = b ? b[j] : 0;
        u[j] = b && reset_after ? b[3 * H + j] : 0;
        for (int64_t k = 0; k < F; ++k) a[j] += x[(n * T + t) * F + k] * W[k * 3 * H + j];
        for (int64_t k = 0; k < H; ++k) u[j] += h[k] * U[k * 3 * H + j];
      }
      double z[16], r[16], nn[16];
      for (int64_t j = 0; j < H; ++j) {
        z[j] = sigm(a[j] + u[j]);
        r[j] = sigm(a[H + j] + u[H + j]);
        rh[j] = r[j] * h[j];
      }
      for (int64_t j = 0; j < H; ++j) {
        double rec = 0;
        if (reset_after) rec = r[j] * u[2 * H + j];
        else
          for (int64_t k = 0; k < H; ++k) rec += rh[k] * U[k * 3 * H + 2 * H + j];
        nn[j] = tanh(a[2 * H + j] + rec);
      }
      for (int64_t j = 0; j < H; ++j) {
        h[j] = z[j] * h[j] + (1 - z[j]) * nn[j];
        hs[(n * T + t) * H + j] = h[j];
      }
    }
  }
}

/* last step of hs [B, T, H] */
static void last_step(const double *hs, int64_t B, int64_t T, int64_t H, double *last) {
  for (int64_t n = 0; n < B; ++n) memcpy(last + n * H, hs + (n * T + T - 1) * H, sizeof(double) * (size_t)H);
}

typedef struct {
  bool gru, reset_after, bias;
} cell_kind;

static const char *kind_name(cell_kind k) {
  return !k.gru ? (k.bias ? "lstm" : "lstm without bias")
                : k.reset_after ? (k.bias ? "gru reset_after" : "gru reset_after without bias")
                                : (k.bias ? "gru reset_before" : "gru reset_before without bias");
}

static ct_module *make(cell_kind k, int64_t F, int64_t H, bool seq) {
  ct_rnn_options o = ct_rnn_default_options();
  o.dtype = FDT;
  o.use_bias = k.bias;
  o.reset_after = k.reset_after;
  ct_module *m = NULL;
  if (k.gru) OK(ct_gru_create(CTX, F, H, seq, &o, &m));
  else OK(ct_lstm_create(CTX, F, H, seq, &o, &m));
  return m;
}

/* The layer with fixed weights against the host, for T = 1 (one step) and T = 3, with and
 * without return_sequences. */
static void check_values(cell_kind k) {
  const int64_t B = 2, F = 3, H = 4, G = k.gru ? 3 : 4;
  int64_t nb = k.gru && k.reset_after ? 2 * G * H : G * H;
  double *W = values(F * G * H, 11, 0.6), *U = values(H * G * H, 12, 0.5), *b = values(nb, 13, 0.4);
  double *w[3] = {W, U, b};
  for (int64_t T = 1; T <= 3; T += 2) {
    double *xv = values(B * T * F, 14 + (uint32_t)T, 1.0), hs[2 * 3 * 4], last[2 * 4];
    if (k.gru) gru_host(xv, B, T, F, H, W, U, k.bias ? b : NULL, k.reset_after, hs);
    else lstm_host(xv, B, T, F, H, W, U, k.bias ? b : NULL, hs);
    last_step(hs, B, T, H, last);
    ct_tensor *x = ts_tensor(CTX, FDT, 3, SH(B, T, F), xv);
    for (int seq = 0; seq < 2; ++seq) {
      ct_module *m = make(k, F, H, seq);
      set_weights(m, w, k.bias ? 3 : 2);
      ct_tensor *y = NULL;
      OK(ct_module_call(m, x, false, &y));
      char what[96];
      snprintf(what, sizeof what, "%s, %lld step(s)%s", kind_name(k), (long long)T, seq ? ", sequences" : "");
      if (seq) {
        ts_assert_shape(y, 3, SH(B, T, H), what);
        ts_assert_close(y, hs, B * T * H, TOL, TOL, what);
      } else {
        ts_assert_shape(y, 2, SH(B, H), what);
        ts_assert_close(y, last, B * H, TOL, TOL, what);
      }
      ct_tensor_free(y);
      ct_module_free(m);
    }
    ct_tensor_free(x);
    free(xv);
  }
  free(W), free(U), free(b);
}

Test(nn_rnn, lstm_matches_keras_equations, .init = setup, .fini = teardown) {
  check_values((cell_kind){false, false, true});
  check_values((cell_kind){false, false, false});
}

Test(nn_rnn, gru_matches_keras_equations, .init = setup, .fini = teardown) {
  check_values((cell_kind){true, true, true});
  check_values((cell_kind){true, false, true});
  check_values((cell_kind){true, true, false});
  check_values((cell_kind){true, false, false});
}

/* ---- gradients through time ----------------------------------------------------------------------- */
typedef struct {
  ct_module *m;
} layer_fn;

static ct_status call_with(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  layer_fn *l = u;
  return ct_module_call_with(l->m, in[0], in + 1, n - 1, true, out);
}

/* gradient check with respect to the input and every variable over 3 time steps */
static void check_gradients(cell_kind k, bool seq) {
  const int64_t B = 2, T = 3, F = 2, H = 3;
  ct_module *m = make(k, F, H, seq);
  ct_tensor *v[4], *in[5];
  int n = 0;
  OK(ct_module_variables(m, v, 4, &n));
  double *xv = values(B * T * F, 21, 1.0);
  in[0] = ts_tensor(CTX, FDT, 3, SH(B, T, F), xv);
  free(xv);
  for (int i = 0; i < n; ++i) {
    /* random weights (the initial bias is zeros or ones: too special) */
    int64_t cnt = ct_tensor_size(v[i]);
    double *h = values(cnt, 30 + (uint32_t)i, 0.7);
    in[i + 1] = ts_tensor(CTX, FDT, ct_tensor_rank(v[i]), ct_tensor_shape(v[i]), h);
    free(h);
  }
  layer_fn l = {m};
  ct_gradcheck_report r;
  OK(ct_gradcheck(CTX, call_with, &l, in, n + 1, NULL, &r));
  cr_assert(r.passed, "%s%s: %s", kind_name(k), seq ? ", sequences" : "", r.message);
  int64_t want = 0;
  for (int i = 0; i <= n; ++i) want += ct_tensor_size(in[i]);
  cr_assert_eq(r.checked, (int)want, "%s: %d partials checked, %lld inputs", kind_name(k), r.checked, (long long)want);
  ct_tensor_free_n(in, n + 1);
  ct_module_free(m);
}

Test(nn_rnn, lstm_gradient_through_three_steps, .init = setup, .fini = teardown) {
  check_gradients((cell_kind){false, false, true}, false);
  check_gradients((cell_kind){false, false, true}, true);
}

Test(nn_rnn, gru_gradient_through_three_steps, .init = setup, .fini = teardown) {
  check_gradients((cell_kind){true, true, true}, false);
  check_gradients((cell_kind){true, true, true}, true);
  check_gradients((cell_kind){true, false, true}, true);
}

/* The tape's gradient of a trainable layer reaches every variable (a training step). */
Test(nn_rnn, tape_gradient_reaches_every_variable, .init = setup, .fini = teardown) {
  cell_kind kinds[2] = {{false, false, true}, {true, true, true}};
  for (int i = 0; i < 2; ++i) {
    ct_module *m = make(kinds[i], 3, 4, true);
    double *xv = values(2 * 5 * 3, 41, 1.0);
    ct_tensor *x = ts_tensor(CTX, FDT, 3, SH(2, 5, 3), xv), *y = NULL, *y2 = NULL, *loss = NULL, *vars[3], *g[3];
    free(xv);
    int n = 0;
    OK(ct_module_trainable_variables(m, vars, 3, &n));
    cr_assert_eq(n, 3);
    ct_tape *tape;
    OK(ct_tape_begin(CTX, NULL, &tape));
    OK(ct_module_call(m, x, true, &y));
    OK(ct_square(y, &y2));
    OK(ct_sum(y2, NULL, 0, false, &loss));
    OK(ct_tape_end(tape));
    OK(ct_tape_gradient(tape, &loss, 1, vars, n, NULL, CT_UNCONNECTED_NONE, g));
    for (int j = 0; j < n; ++j) {
      cr_assert_not_null(g[j], "%s: no gradient for %s", kind_name(kinds[i]), ct_variable_name(vars[j]));
      cr_assert_eq(ct_tensor_rank(g[j]), ct_tensor_rank(vars[j]));
      double *gv = ts_read(g[j]), norm = 0;
      for (int64_t e = 0; e < ct_tensor_size(g[j]); ++e) norm += fabs(gv[e]);
      free(gv);
      cr_assert_gt(norm, 0, "%s: zero gradient for %s", kind_name(kinds[i]), ct_variable_name(vars[j]));
    }
    ct_tensor_free_n(g, n);
    ct_tensor *t[] = {x, y, y2, loss};
    ct_tensor_free_n(t, 4);
    ct_tape_free(tape);
    ct_module_free(m);
  }
}

/* ---- names, initial values, shapes ------------------------------------------------------------------ */
Test(nn_rnn, names_shapes_and_initial_values, .init = setup, .fini = teardown) {
  ct_module *l = NULL, *l1 = NULL, *g = NULL, *g2 = NULL;
  OK(ct_lstm_create(CTX, 5, 3, false, NULL, &l));
  OK(ct_lstm_create(CTX, 5, 3, true, NULL, &l1));
  OK(ct_gru_create(CTX, 5, 3, false, NULL, &g));
  ct_rnn_options o = ct_rnn_default_options();
  o.reset_after = false;
  OK(ct_gru_create(CTX, 5, 3, true, &o, &g2));
  cr_assert_str_eq(ct_module_name(l), "lstm");
  cr_assert_str_eq(ct_module_name(l1), "lstm_1");
  cr_assert_str_eq(ct_module_name(g), "gru");
  cr_assert_str_eq(ct_module_kind(l), "LSTM");
  cr_assert_str_eq(ct_module_kind(g), "GRU");
  cr_assert_not_null(ct_module_find_variable(l, "lstm/kernel:0"));
  cr_assert_not_null(ct_module_find_variable(l, "lstm/recurrent_kernel:0"));
  ct_tensor *bias = ct_module_find_variable(l, "lstm/bias:0");
  cr_assert_not_null(bias);
  ts_assert_shape(ct_module_find_variable(l, "lstm/kernel:0"), 2, SH(5, 12), "lstm kernel");
  ts_assert_shape(ct_module_find_variable(l, "lstm/recurrent_kernel:0"), 2, SH(3, 12), "lstm recurrent kernel");
  ts_assert_shape(bias, 1, SH(12), "lstm bias");
  ts_assert_shape(ct_module_find_variable(g, "gru/kernel:0"), 2, SH(5, 9), "gru kernel");
  ts_assert_shape(ct_module_find_variable(g, "gru/bias:0"), 2, SH(2, 9), "gru bias (reset_after)");
  ts_assert_shape(ct_module_find_variable(g2, "gru_1/bias:0"), 1, SH(9), "gru bias (reset before)");
  cr_assert_eq(ct_module_num_params(l, false), 5 * 12 + 3 * 12 + 12);
  cr_assert_eq(ct_module_num_params(g, false), 5 * 9 + 3 * 9 + 18);
  /* unit_forget_bias: zeros, ones for the forget gate */
  double want[12] = {0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0};
  ts_assert_close(bias, want, 12, 0, 0, "lstm initial bias");
  /* orthogonal recurrent kernel: U U^T = I */
  ct_tensor *rk = ct_module_find_variable(g, "gru/recurrent_kernel:0"), *uut = NULL;
  OK(ct_matmul(rk, rk, false, true, &uut));
  double eye[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  ts_assert_close(uut, eye, 9, 1e-5, 0, "recurrent kernel U U^T");
  ct_tensor_free(uut);
  /* the same build gives the same values (seeds from the names) */
  ct_reset_module_names();
  ct_module *again = NULL;
  OK(ct_lstm_create(CTX, 5, 3, false, NULL, &again));
  double *a = ts_read(ct_module_find_variable(again, "lstm/recurrent_kernel:0"));
  ts_assert_close(ct_module_find_variable(l, "lstm/recurrent_kernel:0"), a, 36, 0, 0, "same seed, same values");
  free(a);
  /* outputs: [B, H] and [B, T, H] */
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_ones(CTX, CT_FLOAT32, 3, SH(4, 6, 5), &x));
  ct_module *all[4] = {l, l1, g, g2};
  for (int i = 0; i < 4; ++i) {
    OK(ct_module_call(all[i], x, false, &y));
    if (i % 2) ts_assert_shape(y, 3, SH(4, 6, 3), ct_module_name(all[i]));
    else ts_assert_shape(y, 2, SH(4, 3), ct_module_name(all[i]));
    ct_tensor_free(y);
  }
  /* a summary line each */
  FILE *f = tmpfile();
  cr_assert_not_null(f);
  ct_module *seq = NULL;
  OK(ct_sequential_create(CTX, NULL, &seq));
  OK(ct_sequential_add(seq, l1));
  OK(ct_module_summary(seq, f));
  fclose(f);
  ct_module_free(seq);
  ct_tensor_free(x);
  for (int i = 0; i < 4; ++i) ct_module_free(all[i]);
  ct_module_free(again);
}

Test(nn_rnn, bad_inputs, .init = setup, .fini = teardown) {
  ct_module *l = NULL, *g = NULL, *e = NULL;
  OK(ct_lstm_create(CTX, 3, 2, false, NULL, &l));
  OK(ct_gru_create(CTX, 3, 2, true, NULL, &g));
  ct_tensor *r2 = NULL, *wrong_f = NULL, *no_time = NULL, *ints = NULL, *y = NULL;
  OK(ct_ones(CTX, CT_FLOAT32, 2, SH(4, 3), &r2));
  OK(ct_ones(CTX, CT_FLOAT32, 3, SH(4, 5, 2), &wrong_f));
  OK(ct_ones(CTX, CT_FLOAT32, 3, SH(4, 0, 3), &no_time));
  OK(ct_ones(CTX, CT_INT32, 3, SH(4, 5, 3), &ints));
  ct_module *both[2] = {l, g};
  for (int i = 0; i < 2; ++i) {
    EXPECT_STATUS(ct_module_call(both[i], r2, false, &y), CT_ERR_SHAPE);
    cr_assert(strstr(ct_errmsg(), "[batch, time >= 1, 3]"), "message: %s", ct_errmsg());
    EXPECT_STATUS(ct_module_call(both[i], wrong_f, false, &y), CT_ERR_SHAPE);
    EXPECT_STATUS(ct_module_call(both[i], no_time, false, &y), CT_ERR_SHAPE);
    EXPECT_STATUS(ct_module_call(both[i], ints, false, &y), CT_ERR_DTYPE);
    cr_assert_null(y);
  }
  ct_rnn_options bad = ct_rnn_default_options();
  bad.dtype = CT_INT32;
  EXPECT_STATUS(ct_lstm_create(CTX, 3, 2, false, &bad, &e), CT_ERR_DTYPE);
  bad = ct_rnn_default_options();
  bad.kernel_initializer = (ct_initializer)40;
  EXPECT_STATUS(ct_gru_create(CTX, 3, 2, false, &bad, &e), CT_ERR_INVALID);
  EXPECT_STATUS(ct_lstm_create(CTX, 0, 2, false, NULL, &e), CT_ERR_INVALID);
  EXPECT_STATUS(ct_gru_create(CTX, 3, -1, false, NULL, &e), CT_ERR_INVALID);
  EXPECT_STATUS(ct_lstm_create(CTX, INT64_MAX / 2, 2, false, NULL, &e), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_lstm_create(CTX, 3, 2, false, NULL, NULL), CT_ERR_NULL);
  cr_assert_null(e);
  ct_tensor *t[] = {r2, wrong_f, no_time, ints};
  ct_tensor_free_n(t, 4);
  ct_module_free(l);
  ct_module_free(g);
}
