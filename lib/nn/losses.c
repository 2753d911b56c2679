/* losses.c — losses with options: softmax cross-entropy with label smoothing (class indices or a
 * distribution), binary cross-entropy (from probabilities or logits) and Huber, each reduced by
 * mean, sum or not at all. Made of ops; the formulas are TensorFlow's (docs in cltape_nn.h). */
#include "nn_internal.h"
#include <math.h>
#include <string.h>

#define OUT_CHECK(fn)                                                  \
  do {                                                                 \
    if (!out) return ct__error(NULL, CT_ERR_NULL, fn ": out is NULL"); \
    *out = NULL;                                                       \
  } while (0)

/* The options with defaults in place of zero fields, checked. */
static ct_status loss_options(const ct_context *ctx, const ct_loss_options *opts, const char *fn, ct_loss_options *o) {
  if (opts) *o = *opts;
  else memset(o, 0, sizeof *o);
  if (o->epsilon == 0) o->epsilon = 1e-7;
  if (o->delta == 0) o->delta = 1.0;
  if ((unsigned)o->reduction > CT_REDUCTION_NONE)
    return ct__error(ctx, CT_ERR_INVALID, "%s: unknown reduction %d", fn, (int)o->reduction);
  if (!(o->label_smoothing >= 0 && o->label_smoothing <= 1))
    return ct__error(ctx, CT_ERR_INVALID, "%s: label_smoothing %g is outside [0, 1]", fn, o->label_smoothing);
  if (!(o->epsilon > 0 && o->epsilon < 0.5))
    return ct__error(ctx, CT_ERR_INVALID, "%s: epsilon %g is outside (0, 0.5)", fn, o->epsilon);
  if (!(o->delta > 0) || !isfinite(o->delta))
    return ct__error(ctx, CT_ERR_INVALID, "%s: delta %g must be finite and > 0", fn, o->delta);
  return CT_OK;
}

/* Reduces the per-example values (consumed) as asked. */
static ct_status reduce(ct_tensor *per, ct_reduction r, ct_tensor **out) {
  ct_status s;
  switch (r) {
  case CT_REDUCTION_SUM: s = ct_sum(per, NULL, 0, false, out); break;
  case CT_REDUCTION_NONE: *out = per; return CT_OK;
  default: s = ct_mean(per, NULL, 0, false, out); break;
  }
  ct_tensor_free(per);
  return s;
}

/* pred and target: tensors of one context, one float dtype and one shape */
static ct_status check_pair(const ct_tensor *pred, const ct_tensor *target, const char *fn) {
  CT_TRY(ct__check(pred, fn));
  CT_TRY(ct__check(target, fn));
  if (pred->ctx != target->ctx)
    return ct__error(pred->ctx, CT_ERR_CONTEXT, "%s: the target belongs to another context", fn);
  if (!ct__is_float(pred->dtype) || target->dtype != pred->dtype)
    return ct__error(pred->ctx, CT_ERR_DTYPE, "%s: prediction (%s) and target (%s) must have one float dtype", fn,
                     ct_dtype_name(pred->dtype), ct_dtype_name(target->dtype));
  if (target->rank != pred->rank || memcmp(target->shape, pred->shape, sizeof(int64_t) * (size_t)pred->rank) != 0) {
    char s1[96], s2[96];
    ct__shape_str(pred->rank, pred->shape, s1, sizeof s1);
    ct__shape_str(target->rank, target->shape, s2, sizeof s2);
    return ct__error(pred->ctx, CT_ERR_SHAPE, "%s: prediction %s and target %s differ", fn, s1, s2);
  }
  return CT_OK;
}

/* labels * (1 - a) + a * k (a new reference to labels when a is 0) */
static ct_status smooth(const ct_tensor *labels, double a, double k, ct_tensor **out) {
  if (a == 0) return ct_identity(labels, out);
  ct_tensor *t = NULL;
  ct_status s = ct_mul_scalar(labels, 1 - a, &t);
  if (s == CT_OK) s = ct_add_scalar(t, a * k, out);
  ct_tensor_free(t);
  return s;
}

/* ---- softmax cross-entropy ------------------------------------------------------------------------ */
/* class indices: (1 - a) * xent + a * (logsumexp(logits) - mean(logits)) over the last axis, which
 * is -sum(smoothed one-hot * log_softmax(logits)) */
static ct_status sparse_per_example(const ct_tensor *logits, const ct_tensor *labels, double a, ct_tensor **out) {
  ct_tensor *x = NULL;
  CT_TRY(ct_sparse_softmax_cross_entropy(logits, labels, &x));
  if (a == 0) {
    *out = x;
    return CT_OK;
  }
  int last = -1;
  ct_tensor *lse = NULL, *mean = NULL, *u = NULL, *xs = NULL, *us = NULL;
  ct_status s = ct_logsumexp(logits, &last, 1, false, &lse);
  if (s == CT_OK) s = ct_mean(logits, &last, 1, false, &mean);
  if (s == CT_OK) s = ct_sub(lse, mean, &u);
  if (s == CT_OK) s = ct_mul_scalar(x, 1 - a, &xs);
  if (s == CT_OK) s = ct_mul_scalar(u, a, &us);
  if (s == CT_OK) s = ct_add(xs, us, out);
  ct_tensor *tmp[] = {x, lse, mean, u, xs, us};
  ct_tensor_free_n(tmp, 6);
  return s;
}

/* a distribution: -sum(smoothed labels * log_softmax(logits)) over the last axis */
static ct_status dense_per_example(const ct_tensor *logits, const ct_tensor *labels, double a, ct_tensor **out) {
  static const char fn[] = "ct_softmax_cross_entropy_ex";
  if (!ct__is_float(logits->dtype) || labels->dtype != logits->dtype)
    return ct__error(logits->ctx, CT_ERR_DTYPE,
                     "%s: logits (%s) and labels (%s) must have one float dtype (or int32 labels)", fn,
                     ct_dtype_name(logits->dtype), ct_dtype_name(labels->dtype));
  if (labels->rank != logits->rank ||
      memcmp(labels->shape, logits->shape, sizeof(int64_t) * (size_t)logits->rank) != 0) {
    char s1[96], s2[96];
    ct__shape_str(logits->rank, logits->shape, s1, sizeof s1);
    ct__shape_str(labels->rank, labels->shape, s2, sizeof s2);
    return ct__error(logits->ctx, CT_ERR_SHAPE, "%s: float labels %s must have the shape of the logits %s", fn, s2, s1);
  }
  int last = -1;
  ct_tensor *z = NULL, *lp = NULL, *p = NULL, *sum = NULL;
  ct_status s = smooth(labels, a, 1.0 / (double)logits->shape[logits->rank - 1], &z);
  if (s == CT_OK) s = ct_log_softmax(logits, -1, &lp);
  if (s == CT_OK) s = ct_mul(z, lp, &p);
  if (s == CT_OK) s = ct_sum(p, &last, 1, false, &sum);
  if (s == CT_OK) s = ct_neg(sum, out);
  ct_tensor *tmp[] = {z, lp, p, sum};
  ct_tensor_free_n(tmp, 4);
  return s;
}

ct_status ct_softmax_cross_entropy_ex(const ct_tensor *logits, const ct_tensor *labels, const ct_loss_options *opts,
                                      ct_tensor **out) {
  static const char fn[] = "ct_softmax_cross_entropy_ex";
  OUT_CHECK("ct_softmax_cross_entropy_ex");
  CT_TRY(ct__check(logits, fn));
  CT_TRY(ct__check(labels, fn));
  if (labels->ctx != logits->ctx)
    return ct__error(logits->ctx, CT_ERR_CONTEXT, "%s: the labels belong to another context", fn);
  if (logits->rank < 1) return ct__error(logits->ctx, CT_ERR_SHAPE, "%s: logits must have rank >= 1", fn);
  ct_loss_options o;
  CT_TRY(loss_options(logits->ctx, opts, fn, &o));
  ct_tensor *per = NULL;
  if (labels->dtype == CT_INT32) CT_TRY(sparse_per_example(logits, labels, o.label_smoothing, &per));
  else CT_TRY(dense_per_example(logits, labels, o.label_smoothing, &per));
  return reduce(per, o.reduction, out);
}

/* ---- binary cross-entropy ------------------------------------------------------------------------- */
/* max(x, 0) - x z + log1p(exp(-|x|)) */
static ct_status bce_logits(const ct_tensor *x, const ct_tensor *z, ct_tensor **out) {
  ct_tensor *r = NULL, *xz = NULL, *d = NULL, *ab = NULL, *na = NULL, *e = NULL, *l = NULL;
  ct_status s = ct_relu(x, &r);
  if (s == CT_OK) s = ct_mul(x, z, &xz);
  if (s == CT_OK) s = ct_sub(r, xz, &d);
  if (s == CT_OK) s = ct_abs(x, &ab);
  if (s == CT_OK) s = ct_neg(ab, &na);
  if (s == CT_OK) s = ct_exp(na, &e);
  if (s == CT_OK) s = ct_log1p(e, &l);
  if (s == CT_OK) s = ct_add(d, l, out);
  ct_tensor *tmp[] = {r, xz, d, ab, na, e, l};
  ct_tensor_free_n(tmp, 7);
  return s;
}

/* p clipped to [eps, 1 - eps]: -(z log p + (1 - z) log(1 - p)) = -(log(1 - p) + z (log p - log(1 - p))) */
static ct_status bce_probabilities(const ct_tensor *p, const ct_tensor *z, double eps, ct_tensor **out) {
  ct_tensor *c = NULL, *lp = NULL, *q = NULL, *lq = NULL, *d = NULL, *zd = NULL, *sum = NULL;
  ct_status s = ct_clip_by_value(p, eps, 1 - eps, &c);
  if (s == CT_OK) s = ct_log(c, &lp);
  if (s == CT_OK) s = ct_rsub_scalar(1.0, c, &q);
  if (s == CT_OK) s = ct_log(q, &lq);
  if (s == CT_OK) s = ct_sub(lp, lq, &d);
  if (s == CT_OK) s = ct_mul(z, d, &zd);
  if (s == CT_OK) s = ct_add(lq, zd, &sum);
  if (s == CT_OK) s = ct_neg(sum, out);
  ct_tensor *tmp[] = {c, lp, q, lq, d, zd, sum};
  ct_tensor_free_n(tmp, 7);
  return s;
}

ct_status ct_binary_cross_entropy(const ct_tensor *pred, const ct_tensor *target, const ct_loss_options *opts,
                                  ct_tensor **out) {
  static const char fn[] = "ct_binary_cross_entropy";
  OUT_CHECK("ct_binary_cross_entropy");
  CT_TRY(check_pair(pred, target, fn));
  ct_loss_options o;
  CT_TRY(loss_options(pred->ctx, opts, fn, &o));
  ct_tensor *z = NULL, *per = NULL;
  ct_status s = smooth(target, o.label_smoothing, 0.5, &z);
  if (s == CT_OK) s = o.from_logits ? bce_logits(pred, z, &per) : bce_probabilities(pred, z, o.epsilon, &per);
  ct_tensor_free(z);
  if (s != CT_OK) {
    ct_tensor_free(per);
    return s;
  }
  return reduce(per, o.reduction, out);
}

/* ---- Huber ------------------------------------------------------------------------------------------ */
/* with q = min(|e|, delta): q^2 / 2 + delta (|e| - q) */
ct_status ct_huber_loss(const ct_tensor *pred, const ct_tensor *target, const ct_loss_options *opts, ct_tensor **out) {
  static const char fn[] = "ct_huber_loss";
  OUT_CHECK("ct_huber_loss");
  CT_TRY(check_pair(pred, target, fn));
  ct_loss_options o;
  CT_TRY(loss_options(pred->ctx, opts, fn, &o));
  ct_tensor *e = NULL, *ab = NULL, *q = NULL, *q2 = NULL, *h = NULL, *lin = NULL, *dl = NULL, *per = NULL;
  ct_status s = ct_sub(pred, target, &e);
  if (s == CT_OK) s = ct_abs(e, &ab);
  if (s == CT_OK) s = ct_minimum_scalar(ab, o.delta, &q);
  if (s == CT_OK) s = ct_square(q, &q2);
  if (s == CT_OK) s = ct_mul_scalar(q2, 0.5, &h);
  if (s == CT_OK) s = ct_sub(ab, q, &lin);
  if (s == CT_OK) s = ct_mul_scalar(lin, o.delta, &dl);
  if (s == CT_OK) s = ct_add(h, dl, &per);
  ct_tensor *tmp[] = {e, ab, q, q2, h, lin, dl};
  ct_tensor_free_n(tmp, 7);
  if (s != CT_OK) {
    ct_tensor_free(per);
    return s;
  }
  return reduce(per, o.reduction, out);
}
