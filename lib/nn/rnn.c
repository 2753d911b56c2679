/* rnn.c — the recurrent layers LSTM and GRU (Keras' gate conventions). Each time step is composed
 * of ops (matmul, add, split, sigmoid, tanh, mul), so the tape records the unrolled graph and the
 * gradient is backpropagation through time with no code of its own. The input projection of every
 * time step is one matrix product: x [B*T, F] @ kernel [F, G*H]; each step then adds one product
 * h [B, H] @ recurrent_kernel [H, G*H] and splits the sum into the G gates. */
#include "nn_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

ct_rnn_options ct_rnn_default_options(void) {
  ct_rnn_options o;
  memset(&o, 0, sizeof o);
  o.dtype = CT_FLOAT32;
  o.use_bias = true;
  o.unit_forget_bias = true;
  o.reset_after = true;
  o.kernel_initializer = CT_INIT_GLOROT_UNIFORM;
  o.recurrent_orthogonal = true;
  o.recurrent_initializer = CT_INIT_GLOROT_UNIFORM;
  o.bias_initializer = CT_INIT_ZEROS;
  return o;
}

typedef struct {
  bool gru;
  int64_t in, units;
  bool seq, bias, reset_after;
} rnn_state;

/* ---- initial values ---------------------------------------------------------------------------- */
static uint64_t var_seed(const ct_module *m, const ct_rnn_options *o, const char *local) {
  char full[1200];
  snprintf(full, sizeof full, "%s/%s:0", m->name, local);
  return o->seed ? ct__mix64(o->seed, ct__hash_str(local)) : ct__hash_str(full);
}

static ct_status add_var(ct_module *m, ct_tensor *t, const char *local) {
  ct_status s = t ? ct_module_add_variable(m, t, local, true, NULL) : CT_ERR_INTERNAL;
  ct_tensor_free(t);
  return s;
}

/* Keras' Orthogonal initializer for [rows, cols], rows <= cols: the rows of the result are
 * orthonormal. A standard normal [cols, rows] (Philox, host) is orthonormalised by modified
 * Gram-Schmidt (the QR factor Q with diag(R) > 0) and transposed. */
static ct_status orthogonal(ct_module *m, ct_dtype dt, int64_t rows, int64_t cols, uint64_t seed, ct_tensor **out) {
  *out = NULL;
  int64_t gshape[2] = {cols, rows};
  ct_tensor *g = NULL;
  CT_TRY(ct_random_normal(m->ctx, CT_FLOAT32, 2, gshape, 0.0, 1.0, seed, &g));
  size_t n = (size_t)(rows * cols);
  double *a = malloc(sizeof(double) * n), *q = malloc(sizeof(double) * n);
  ct_status s = a && q ? ct_tensor_read_f64(g, a, (int64_t)n) : ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "orthogonal");
  ct_tensor_free(g);
  if (s == CT_OK) {
    /* columns j of a [cols, rows] (cols >= rows): v_j -= (q_k . v_j) q_k, then normalised */
    for (int64_t j = 0; j < rows; ++j) {
      for (int64_t k = 0; k < j; ++k) {
        double d = 0;
        for (int64_t i = 0; i < cols; ++i) d += a[i * rows + k] * a[i * rows + j];
        for (int64_t i = 0; i < cols; ++i) a[i * rows + j] -= d * a[i * rows + k];
      }
      double nn = 0;
      for (int64_t i = 0; i < cols; ++i) nn += a[i * rows + j] * a[i * rows + j];
      nn = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
      for (int64_t i = 0; i < cols; ++i) a[i * rows + j] *= nn;
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) q[r * cols + c] = a[c * rows + r];
    int64_t shape[2] = {rows, cols};
    if (dt == CT_FLOAT64) {
      s = ct_tensor_from_data(m->ctx, CT_FLOAT64, 2, shape, q, out);
    } else {
      float *f = malloc(sizeof(float) * n);
      if (!f) s = ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "orthogonal");
      for (size_t i = 0; f && i < n; ++i) f[i] = (float)q[i];
      if (f) s = ct_tensor_from_data(m->ctx, CT_FLOAT32, 2, shape, f, out);
      free(f);
    }
  }
  free(a);
  free(q);
  return s;
}

static ct_status add_variables(ct_module *m, const ct_rnn_options *o, const rnn_state *st) {
  int64_t gh = (st->gru ? 3 : 4) * st->units;
  int64_t ks[2] = {st->in, gh}, rs[2] = {st->units, gh};
  ct_tensor *t = NULL;
  CT_TRY(ct_initialize(m->ctx, o->kernel_initializer, o->dtype, 2, ks, var_seed(m, o, "kernel"), &t));
  CT_TRY(add_var(m, t, "kernel"));
  if (o->recurrent_orthogonal)
    CT_TRY(orthogonal(m, o->dtype, st->units, gh, var_seed(m, o, "recurrent_kernel"), &t));
  else
    CT_TRY(ct_initialize(m->ctx, o->recurrent_initializer, o->dtype, 2, rs, var_seed(m, o, "recurrent_kernel"), &t));
  CT_TRY(add_var(m, t, "recurrent_kernel"));
  if (!st->bias) return CT_OK;
  /* LSTM [4H]; GRU [3H], or [2, 3H] with reset_after (the input bias, then the recurrent bias) */
  int64_t bs[2] = {2, gh};
  int brank = st->gru && st->reset_after ? 2 : 1;
  const int64_t *bshape = brank == 2 ? bs : bs + 1;
  CT_TRY(ct_initialize(m->ctx, o->bias_initializer, o->dtype, brank, bshape, var_seed(m, o, "bias"), &t));
  if (!st->gru && o->unit_forget_bias) {
    /* the forget gate's quarter [H, 2H) is 1 (Keras: unit_forget_bias adds ones to zeros) */
    ct_tensor *piece = NULL, *ones = NULL, *parts[3] = {NULL, NULL, NULL};
    int64_t sizes[3] = {st->units, st->units, 2 * st->units};
    ct_status s = ct_split(t, sizes, 3, 0, parts);
    if (s == CT_OK) s = ct_add_scalar(parts[1], 1.0, &ones);
    if (s == CT_OK) {
      ct_tensor *cat[3] = {parts[0], ones, parts[2]};
      s = ct_concat(cat, 3, 0, &piece);
    }
    ct_tensor_free_n(parts, 3);
    ct_tensor_free(ones);
    ct_tensor_free(t);
    if (s != CT_OK) return s;
    t = piece;
  }
  return add_var(m, t, "bias");
}

/* ---- the forward --------------------------------------------------------------------------------- */
static ct_status check_input(const ct_module *m, const rnn_state *st, const ct_tensor *x) {
  if (x->rank != 3 || x->shape[2] != st->in || x->shape[1] < 1) {
    char s1[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    return ct__error(m->ctx, CT_ERR_SHAPE, "layer %s expects inputs [batch, time >= 1, %lld], got %s", m->name,
                     (long long)st->in, s1);
  }
  return CT_OK;
}

/* the input projection of every time step: T tensors [B, G*H] (x @ kernel + input bias) */
static ct_status project_inputs(const ct_module *m, const rnn_state *st, const ct_tensor *x, const ct_tensor *kernel,
                                const ct_tensor *bias, ct_tensor **steps) {
  int64_t B = x->shape[0], T = x->shape[1], GH = kernel->shape[1];
  int64_t flat[2] = {B * T, st->in}, bt[3] = {B, T, GH}, one[2] = {B, GH};
  ct_tensor *x2 = NULL, *xw = NULL, *xb = NULL, *x3 = NULL;
  int64_t *sizes = malloc(sizeof(int64_t) * (size_t)T);
  ct_tensor **parts = calloc((size_t)T, sizeof *parts);
  ct_status s = sizes && parts ? CT_OK : ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "layer %s", m->name);
  if (s == CT_OK) s = ct_reshape(x, 2, flat, &x2);
  if (s == CT_OK) s = ct_matmul(x2, kernel, false, false, &xw);
  if (s == CT_OK && bias) s = ct_bias_add(xw, bias, &xb);
  if (s == CT_OK) s = ct_reshape(bias ? xb : xw, 3, bt, &x3);
  for (int64_t t = 0; s == CT_OK && t < T; ++t) sizes[t] = 1;
  if (s == CT_OK) s = ct_split(x3, sizes, (int)T, 1, parts);
  for (int64_t t = 0; s == CT_OK && t < T; ++t) s = ct_reshape(parts[t], 2, one, &steps[t]);
  if (parts) ct_tensor_free_n(parts, (int)T);
  DROP(x2, xw, xb, x3);
  free(sizes);
  free(parts);
  return s;
}

/* a + b, or a new reference to a when b is NULL */
static ct_status add_opt(const ct_tensor *a, const ct_tensor *b, ct_tensor **out) {
  return b ? ct_add(a, b, out) : ct_identity(a, out);
}

/* One LSTM step (Keras): z = xw_t + h U; i, f, c~, o = split(z);
 * c' = sigmoid(f) c + sigmoid(i) tanh(c~); h' = sigmoid(o) tanh(c'). h and c are NULL at t = 0
 * (zero states). Replaces *h and *c. */
static ct_status lstm_step(const ct_tensor *xw, const ct_tensor *U, int64_t H, ct_tensor **h, ct_tensor **c) {
  ct_tensor *hu = NULL, *z = NULL, *g[4] = {NULL, NULL, NULL, NULL}, *i = NULL, *f = NULL, *cc = NULL, *o = NULL;
  ct_tensor *ig = NULL, *fc = NULL, *c2 = NULL, *tc = NULL, *h2 = NULL;
  int64_t sizes[4] = {H, H, H, H};
  ct_status s = CT_OK;
  if (*h) s = ct_matmul(*h, U, false, false, &hu);
  if (s == CT_OK) s = add_opt(xw, hu, &z);
  if (s == CT_OK) s = ct_split(z, sizes, 4, 1, g);
  if (s == CT_OK) s = ct_sigmoid(g[0], &i);
  if (s == CT_OK) s = ct_tanh(g[2], &cc);
  if (s == CT_OK) s = ct_sigmoid(g[3], &o);
  if (s == CT_OK) s = ct_mul(i, cc, &ig);
  if (s == CT_OK && *c) s = ct_sigmoid(g[1], &f);
  if (s == CT_OK && *c) s = ct_mul(f, *c, &fc);
  if (s == CT_OK) s = add_opt(ig, fc, &c2);
  if (s == CT_OK) s = ct_tanh(c2, &tc);
  if (s == CT_OK) s = ct_mul(o, tc, &h2);
  ct_tensor_free_n(g, 4);
  DROP(hu, z, i, f, cc, o, ig, fc, tc);
  if (s != CT_OK) {
    DROP(c2, h2);
    return s;
  }
  ct_tensor_free(*h);
  ct_tensor_free(*c);
  *h = h2;
  *c = c2;
  return CT_OK;
}

/* One GRU step (Keras, gates z, r, h~). reset_after: hu = h U + b_rec,
 *   z = sigmoid(xz + hu_z), r = sigmoid(xr + hu_r), n = tanh(xh + r * hu_h);
 * otherwise: z = sigmoid(xz + h U_z), r = sigmoid(xr + h U_r), n = tanh(xh + (r * h) U_h).
 * h' = z h + (1 - z) n = n + z (h - n). h is NULL at t = 0 (zero state). Replaces *h. */
static ct_status gru_step(const ct_tensor *xw, const ct_tensor *U, const ct_tensor *Uzr, const ct_tensor *Uh,
                          const ct_tensor *brec, bool reset_after, int64_t H, ct_tensor **h) {
  ct_tensor *x3[3] = {NULL, NULL, NULL}, *h3[3] = {NULL, NULL, NULL}, *hu = NULL, *hb = NULL;
  ct_tensor *az = NULL, *ar = NULL, *z = NULL, *r = NULL, *rh = NULL, *rhu = NULL, *an = NULL, *n = NULL;
  ct_tensor *d = NULL, *zd = NULL, *h2 = NULL;
  int64_t s3[3] = {H, H, H}, s2[2] = {H, H};
  ct_status s = ct_split(xw, s3, 3, 1, x3);
  if (reset_after) {
    if (s == CT_OK && *h) s = ct_matmul(*h, U, false, false, &hu);
    if (s == CT_OK && brec) s = hu ? ct_add(hu, brec, &hb) : ct_identity(brec, &hb);
    const ct_tensor *rec = brec ? hb : hu;
    if (s == CT_OK && rec) s = ct_split(rec, s3, 3, rec->rank - 1, h3);
    if (s == CT_OK) s = add_opt(x3[0], h3[0], &az);
    if (s == CT_OK) s = add_opt(x3[1], h3[1], &ar);
    if (s == CT_OK) s = ct_sigmoid(az, &z);
    if (s == CT_OK && h3[2]) s = ct_sigmoid(ar, &r);
    if (s == CT_OK && h3[2]) s = ct_mul(r, h3[2], &rhu);
  } else {
    if (s == CT_OK && *h) s = ct_matmul(*h, Uzr, false, false, &hu);
    if (s == CT_OK && hu) s = ct_split(hu, s2, 2, 1, h3);
    if (s == CT_OK) s = add_opt(x3[0], h3[0], &az);
    if (s == CT_OK) s = add_opt(x3[1], h3[1], &ar);
    if (s == CT_OK) s = ct_sigmoid(az, &z);
    if (s == CT_OK && *h) s = ct_sigmoid(ar, &r);
    if (s == CT_OK && *h) s = ct_mul(r, *h, &rh);
    if (s == CT_OK && *h) s = ct_matmul(rh, Uh, false, false, &rhu);
  }
  if (s == CT_OK) s = add_opt(x3[2], rhu, &an);
  if (s == CT_OK) s = ct_tanh(an, &n);
  if (*h) {
    if (s == CT_OK) s = ct_sub(*h, n, &d);
  } else if (s == CT_OK) {
    s = ct_neg(n, &d);
  }
  if (s == CT_OK) s = ct_mul(z, d, &zd);
  if (s == CT_OK) s = ct_add(n, zd, &h2);
  ct_tensor_free_n(x3, 3);
  ct_tensor_free_n(h3, 3);
  DROP(hu, hb, az, ar, z, r, rh, rhu, an, n, d, zd);
  if (s != CT_OK) {
    ct_tensor_free(h2);
    return s;
  }
  ct_tensor_free(*h);
  *h = h2;
  return CT_OK;
}

static ct_status rnn_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)training;
  const rnn_state *st = m->state;
  CT_TRY(check_input(m, st, x));
  int64_t T = x->shape[1], H = st->units;
  const ct_tensor *kernel = p[0], *U = p[1], *bias = st->bias ? p[2] : NULL;
  ct_tensor **steps = calloc((size_t)T, sizeof *steps), **hs = calloc((size_t)T, sizeof *hs);
  ct_tensor *bparts[2] = {NULL, NULL}, *bin = NULL, *brec = NULL, *Uparts[2] = {NULL, NULL};
  ct_tensor *h = NULL, *c = NULL;
  ct_status s = steps && hs ? CT_OK : ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "layer %s", m->name);
  if (s == CT_OK && st->gru && st->reset_after && bias) {
    /* bias [2, 3H]: row 0 joins the input projection, row 1 the recurrent product */
    int64_t ones[2] = {1, 1}, row[1] = {3 * H};
    s = ct_split(bias, ones, 2, 0, bparts);
    if (s == CT_OK) s = ct_reshape(bparts[0], 1, row, &bin);
    if (s == CT_OK) s = ct_reshape(bparts[1], 1, row, &brec);
  }
  if (s == CT_OK && st->gru && !st->reset_after) {
    int64_t cols[2] = {2 * H, H};
    s = ct_split(U, cols, 2, 1, Uparts);
  }
  if (s == CT_OK) s = project_inputs(m, st, x, kernel, st->gru && st->reset_after ? bin : bias, steps);
  for (int64_t t = 0; s == CT_OK && t < T; ++t) {
    if (st->gru) s = gru_step(steps[t], U, Uparts[0], Uparts[1], brec, st->reset_after, H, &h);
    else s = lstm_step(steps[t], U, H, &h, &c);
    if (s == CT_OK && st->seq) hs[t] = ct_tensor_retain(h);
  }
  if (s == CT_OK) {
    if (st->seq) s = ct_stack(hs, (int)T, 1, out);
    else s = ct_identity(h, out);
  }
  if (steps) ct_tensor_free_n(steps, (int)T);
  if (hs) ct_tensor_free_n(hs, (int)T);
  free(steps);
  free(hs);
  ct_tensor_free_n(bparts, 2);
  ct_tensor_free_n(Uparts, 2);
  DROP(bin, brec, h, c);
  return s;
}

static void rnn_describe(const ct_module *m, char *buf, size_t cap) {
  const rnn_state *st = m->state;
  snprintf(buf, cap, "%lld -> %lld, %s%s%s", (long long)st->in, (long long)st->units,
           st->seq ? "sequences" : "last state", st->bias ? "" : ", no bias",
           st->gru ? (st->reset_after ? ", reset after" : ", reset before") : "");
}

static const ct_module_vtable lstm_vt = {"LSTM", "lstm", rnn_forward, rnn_describe, NULL, free};
static const ct_module_vtable gru_vt = {"GRU", "gru", rnn_forward, rnn_describe, NULL, free};

static ct_status rnn_create(ct_context *ctx, bool gru, int64_t input_size, int64_t units, bool return_sequences,
                            const ct_rnn_options *opts, ct_module **out, const char *fn) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  ct_rnn_options o = opts ? *opts : ct_rnn_default_options();
  CT_TRY(ct__check_context(ctx, fn));
  if (!ct__is_float(o.dtype)) return ct__error(ctx, CT_ERR_DTYPE, "%s: layers hold float32 or float64 variables", fn);
  CT_TRY(ct__check_dtype(ctx, o.dtype));
  if ((unsigned)o.kernel_initializer > CT_INIT_HE_NORMAL || (unsigned)o.bias_initializer > CT_INIT_HE_NORMAL ||
      (unsigned)o.recurrent_initializer > CT_INIT_HE_NORMAL)
    return ct__error(ctx, CT_ERR_INVALID, "%s: unknown initializer", fn);
  if (input_size < 1 || units < 1)
    return ct__error(ctx, CT_ERR_INVALID, "%s: input_size (%lld) and units (%lld) must be >= 1", fn,
                     (long long)input_size, (long long)units);
  if (units > INT64_MAX / 4 || input_size > INT64_MAX / (4 * units) || units > INT64_MAX / (4 * units))
    return ct__error(ctx, CT_ERR_SHAPE, "%s: input_size %lld and units %lld give too many weights", fn,
                     (long long)input_size, (long long)units);
  rnn_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "%s", fn);
  *st = (rnn_state){gru, input_size, units, return_sequences, o.use_bias, gru && o.reset_after};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, gru ? &gru_vt : &lstm_vt, o.name, st, &m));
  ct_status s = add_variables(m, &o, st);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}

ct_status ct_lstm_create(ct_context *ctx, int64_t input_size, int64_t units, bool return_sequences,
                         const ct_rnn_options *opts, ct_module **out) {
  return rnn_create(ctx, false, input_size, units, return_sequences, opts, out, "ct_lstm_create");
}

ct_status ct_gru_create(ct_context *ctx, int64_t input_size, int64_t units, bool return_sequences,
                        const ct_rnn_options *opts, ct_module **out) {
  return rnn_create(ctx, true, input_size, units, return_sequences, opts, out, "ct_gru_create");
}
