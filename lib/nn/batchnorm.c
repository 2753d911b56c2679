/* batchnorm.c — batch normalization: the training form (the batch's statistics over every axis but
 * the last), the inference form (given statistics), and the BatchNorm layer with its moving
 * statistics. Made of reductions and elementwise ops: their gradients are the rows'. */
#include "nn_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A per-channel vector: a tensor [C] of x's context and dtype. */
static ct_status check_channels(const ct_tensor *x, const ct_tensor *v, const char *what, const char *fn) {
  CT_TRY(ct__check(v, fn));
  if (v->ctx != x->ctx) return ct__error(x->ctx, CT_ERR_CONTEXT, "%s: %s belongs to another context", fn, what);
  if (v->dtype != x->dtype)
    return ct__error(x->ctx, CT_ERR_DTYPE, "%s: %s is %s, x is %s", fn, what, ct_dtype_name(v->dtype),
                     ct_dtype_name(x->dtype));
  int64_t c = x->shape[x->rank - 1];
  if (v->rank != 1 || v->shape[0] != c) {
    char s1[96];
    ct__shape_str(v->rank, v->shape, s1, sizeof s1);
    return ct__error(x->ctx, CT_ERR_SHAPE, "%s: %s must be [%lld] (the last extent of x), got %s", fn, what,
                     (long long)c, s1);
  }
  return CT_OK;
}

/* The checks both forms share: x a float tensor of rank >= min_rank, the optional vectors [C]. */
static ct_status check_inputs(const ct_tensor *x, int min_rank, const ct_tensor *const *vecs, const char *const *names,
                              int n, double epsilon, const char *fn) {
  CT_TRY(ct__check(x, fn));
  if (!ct__is_float(x->dtype))
    return ct__error(x->ctx, CT_ERR_DTYPE, "%s: x is %s, not a float dtype", fn, ct_dtype_name(x->dtype));
  if (x->rank < min_rank) {
    char s1[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    return ct__error(x->ctx, CT_ERR_SHAPE, "%s: x %s must have rank %d or more (statistics over all axes but the last)",
                     fn, s1, min_rank);
  }
  for (int i = 0; i < n; ++i)
    if (vecs[i]) CT_TRY(check_channels(x, vecs[i], names[i], fn));
  if (!(epsilon >= 0) || !isfinite(epsilon))
    return ct__error(x->ctx, CT_ERR_INVALID, "%s: epsilon %g must be finite and >= 0", fn, epsilon);
  return CT_OK;
}

/* y = xc * scale + beta with scale = rsqrt(variance + epsilon) * gamma (gamma, beta optional) */
static ct_status normalize(const ct_tensor *xc, const ct_tensor *variance, const ct_tensor *gamma,
                           const ct_tensor *beta, double epsilon, ct_tensor **out) {
  ct_tensor *ve = NULL, *inv = NULL, *scale = NULL, *y = NULL;
  ct_status s = ct_add_scalar(variance, epsilon, &ve);
  if (s == CT_OK) s = ct_rsqrt(ve, &inv);
  if (s == CT_OK) s = gamma ? ct_mul(inv, gamma, &scale) : ct_identity(inv, &scale);
  if (s == CT_OK) s = beta ? ct_mul(xc, scale, &y) : ct_mul(xc, scale, out);
  if (s == CT_OK && beta) s = ct_add(y, beta, out);
  ct_tensor *tmp[] = {ve, inv, scale, y};
  ct_tensor_free_n(tmp, 4);
  return s;
}

ct_status ct_batch_norm(const ct_tensor *x, const ct_tensor *gamma, const ct_tensor *beta, double epsilon,
                        ct_tensor **out, ct_tensor **batch_mean, ct_tensor **batch_variance) {
  static const char fn[] = "ct_batch_norm";
  if (batch_mean) *batch_mean = NULL;
  if (batch_variance) *batch_variance = NULL;
  if (!out) return ct__error(NULL, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  const ct_tensor *vecs[2] = {gamma, beta};
  static const char *const names[2] = {"gamma", "beta"};
  CT_TRY(check_inputs(x, 2, vecs, names, 2, epsilon, fn));
  int axes[CT_MAX_RANK], na = x->rank - 1;
  for (int i = 0; i < na; ++i) axes[i] = i;
  ct_tensor *mean = NULL, *xc = NULL, *sq = NULL, *var = NULL;
  ct_status s = ct_mean(x, axes, na, false, &mean);
  if (s == CT_OK) s = ct_sub(x, mean, &xc);
  if (s == CT_OK) s = ct_square(xc, &sq);
  if (s == CT_OK) s = ct_mean(sq, axes, na, false, &var);
  if (s == CT_OK) s = normalize(xc, var, gamma, beta, epsilon, out);
  if (s == CT_OK && batch_mean) *batch_mean = ct_tensor_retain(mean);
  if (s == CT_OK && batch_variance) *batch_variance = ct_tensor_retain(var);
  ct_tensor *tmp[] = {mean, xc, sq, var};
  ct_tensor_free_n(tmp, 4);
  return s;
}

ct_status ct_batch_norm_inference(const ct_tensor *x, const ct_tensor *mean, const ct_tensor *variance,
                                  const ct_tensor *gamma, const ct_tensor *beta, double epsilon, ct_tensor **out) {
  static const char fn[] = "ct_batch_norm_inference";
  if (!out) return ct__error(NULL, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(ct__check(x, fn));
  if (!mean || !variance)
    return ct__error(x->ctx, CT_ERR_NULL, "%s: %s is NULL", fn, mean ? "variance" : "mean");
  const ct_tensor *vecs[4] = {mean, variance, gamma, beta};
  static const char *const names[4] = {"mean", "variance", "gamma", "beta"};
  CT_TRY(check_inputs(x, 1, vecs, names, 4, epsilon, fn));
  ct_tensor *xc = NULL;
  ct_status s = ct_sub(x, mean, &xc);
  if (s == CT_OK) s = normalize(xc, variance, gamma, beta, epsilon, out);
  ct_tensor_free(xc);
  return s;
}

/* ---- the BatchNorm layer ------------------------------------------------------------------------- */
typedef struct {
  int64_t channels;
  double momentum, epsilon;
  bool center, scale;
} bn_state;

ct_batch_norm_options ct_batch_norm_default_options(void) {
  ct_batch_norm_options o;
  memset(&o, 0, sizeof o);
  o.dtype = CT_FLOAT32;
  o.momentum = 0.99;
  o.epsilon = 1e-3;
  o.center = true;
  o.scale = true;
  return o;
}

/* moving := moving * momentum + batch * (1 - momentum), from values no tape tracks */
static ct_status update_moving(ct_tensor *moving, const ct_tensor *batch, double momentum) {
  ct_tensor *b = NULL, *a = NULL, *c = NULL, *n = NULL;
  ct_status s = ct_stop_gradient(batch, &b);
  if (s == CT_OK) s = ct_mul_scalar(moving, momentum, &a);
  if (s == CT_OK) s = ct_mul_scalar(b, 1.0 - momentum, &c);
  if (s == CT_OK) s = ct_add(a, c, &n);
  if (s == CT_OK) s = ct_variable_assign(moving, n);
  ct_tensor *tmp[] = {b, a, c, n};
  ct_tensor_free_n(tmp, 4);
  return s;
}

static ct_status bn_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  const bn_state *st = m->state;
  if (x->rank < 1 || x->shape[x->rank - 1] != st->channels) {
    char s1[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    return ct__error(m->ctx, CT_ERR_SHAPE, "layer %s expects inputs [..., %lld], got %s", m->name,
                     (long long)st->channels, s1);
  }
  int k = 0;
  const ct_tensor *gamma = st->scale ? p[k++] : NULL, *beta = st->center ? p[k++] : NULL;
  if (!training) return ct_batch_norm_inference(x, p[k], p[k + 1], gamma, beta, st->epsilon, out);
  ct_tensor *mean = NULL, *var = NULL;
  ct_status s = ct_batch_norm(x, gamma, beta, st->epsilon, out, &mean, &var);
  /* a functional call (overrides set) changes no variable */
  if (s == CT_OK && !m->override) s = update_moving(m->vars[k], mean, st->momentum);
  if (s == CT_OK && !m->override) s = update_moving(m->vars[k + 1], var, st->momentum);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
  }
  ct_tensor_free(mean);
  ct_tensor_free(var);
  return s;
}

static void bn_describe(const ct_module *m, char *buf, size_t cap) {
  const bn_state *st = m->state;
  snprintf(buf, cap, "%lld, momentum %g, epsilon %g%s%s", (long long)st->channels, st->momentum, st->epsilon,
           st->scale ? "" : ", no scale", st->center ? "" : ", no center");
}

static const ct_module_vtable bn_vt = {"BatchNormalization", "batch_normalization", bn_forward, bn_describe, NULL,
                                       free};

static ct_status add_filled(ct_module *m, ct_dtype dt, int64_t c, bool ones, const char *name, bool trainable) {
  ct_tensor *t = NULL;
  int64_t shape[1] = {c};
  CT_TRY(ones ? ct_ones(m->ctx, dt, 1, shape, &t) : ct_zeros(m->ctx, dt, 1, shape, &t));
  ct_status s = ct_module_add_variable(m, t, name, trainable, NULL);
  ct_tensor_free(t);
  return s;
}

ct_status ct_batch_norm_create(ct_context *ctx, int64_t channels, const ct_batch_norm_options *opts, ct_module **out) {
  static const char fn[] = "ct_batch_norm_create";
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(ct__check_context(ctx, fn));
  ct_batch_norm_options o = opts ? *opts : ct_batch_norm_default_options();
  if (!ct__is_float(o.dtype)) return ct__error(ctx, CT_ERR_DTYPE, "%s: layers hold float variables", fn);
  CT_TRY(ct__check_dtype(ctx, o.dtype));
  if (channels < 1) return ct__error(ctx, CT_ERR_INVALID, "%s: channels (%lld) must be >= 1", fn, (long long)channels);
  if (!(o.momentum >= 0 && o.momentum <= 1))
    return ct__error(ctx, CT_ERR_INVALID, "%s: momentum %g is outside [0, 1]", fn, o.momentum);
  if (!(o.epsilon >= 0) || !isfinite(o.epsilon))
    return ct__error(ctx, CT_ERR_INVALID, "%s: epsilon %g must be finite and >= 0", fn, o.epsilon);
  bn_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "%s", fn);
  *st = (bn_state){channels, o.momentum, o.epsilon, o.center, o.scale};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &bn_vt, o.name, st, &m));
  ct_status s = CT_OK;
  if (o.scale) s = add_filled(m, o.dtype, channels, true, "gamma", true);
  if (s == CT_OK && o.center) s = add_filled(m, o.dtype, channels, false, "beta", true);
  if (s == CT_OK) s = add_filled(m, o.dtype, channels, false, "moving_mean", false);
  if (s == CT_OK) s = add_filled(m, o.dtype, channels, true, "moving_variance", false);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}
