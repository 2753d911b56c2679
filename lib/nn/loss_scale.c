/* loss_scale.c — dynamic loss scaling for mixed-precision training (include/cltape_nn.h): the loss
 * multiplied by the scale, the gradients divided by it and checked for inf and NaN, the scale
 * backed off or grown. Built from public ops. */
#include "nn_internal.h"
#include <math.h>
#include <string.h>

ct_loss_scale ct_loss_scale_default(void) {
  ct_loss_scale ls;
  memset(&ls, 0, sizeof ls);
  ls.scale = 32768.0;
  ls.growth_factor = 2.0;
  ls.backoff_factor = 0.5;
  ls.growth_interval = 2000;
  return ls;
}

static ct_status check_state(const ct_context *ctx, const ct_loss_scale *ls, const char *fn) {
  if (!ls) return ct__error(ctx, CT_ERR_NULL, "%s: the loss scale state is NULL", fn);
  if (!(ls->scale > 0) || !isfinite(ls->scale))
    return ct__error(ctx, CT_ERR_INVALID, "%s: scale %g must be finite and > 0", fn, ls->scale);
  if (!(ls->growth_factor > 1) || !isfinite(ls->growth_factor))
    return ct__error(ctx, CT_ERR_INVALID, "%s: growth_factor %g must be finite and > 1", fn, ls->growth_factor);
  if (!(ls->backoff_factor > 0 && ls->backoff_factor < 1))
    return ct__error(ctx, CT_ERR_INVALID, "%s: backoff_factor %g must be in (0, 1)", fn, ls->backoff_factor);
  if (ls->growth_interval < 1)
    return ct__error(ctx, CT_ERR_INVALID, "%s: growth_interval %d must be >= 1", fn, ls->growth_interval);
  if (ls->good_steps < 0) return ct__error(ctx, CT_ERR_INVALID, "%s: good_steps %d is negative", fn, ls->good_steps);
  return CT_OK;
}

static ct_status check_floating(const ct_tensor *t, const char *fn, const char *what) {
  ct_dtype dt = ct_tensor_dtype(t);
  if (dt == CT_INT32 || dt == CT_INT64 || dt == CT_BOOL)
    return ct__error(ct_tensor_context(t), CT_ERR_DTYPE, "%s: %s is %s, not floating", fn, what, ct_dtype_name(dt));
  return CT_OK;
}

ct_status ct_loss_scale_loss(const ct_loss_scale *ls, const ct_tensor *loss, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_loss_scale_loss: out is NULL");
  *out = NULL;
  CT_TRY(ct__check(loss, "ct_loss_scale_loss"));
  CT_TRY(check_state(loss->ctx, ls, "ct_loss_scale_loss"));
  CT_TRY(check_floating(loss, "ct_loss_scale_loss", "the loss"));
  return ct_mul_scalar(loss, ls->scale, out);
}

ct_status ct_loss_scale_unscale(ct_loss_scale *ls, ct_tensor *const *grads, int n, ct_tensor **out, bool *finite) {
  const char *fn = "ct_loss_scale_unscale";
  if (n < 0) return ct__error(NULL, CT_ERR_INVALID, "%s: n is %d", fn, n);
  if (!out) return ct__error(NULL, CT_ERR_NULL, "%s: out is NULL", fn);
  for (int i = 0; i < n; ++i) out[i] = NULL;
  if (!finite) return ct__error(NULL, CT_ERR_NULL, "%s: finite is NULL", fn);
  *finite = false;
  if (n > 0 && !grads) return ct__error(NULL, CT_ERR_NULL, "%s: grads is NULL", fn);
  ct_context *ctx = NULL;
  for (int i = 0; i < n; ++i) {
    if (!grads[i]) continue;
    CT_TRY(ct__check(grads[i], fn));
    if (ctx && grads[i]->ctx != ctx) return ct__error(ctx, CT_ERR_CONTEXT, "%s: gradient %d belongs to another context", fn, i);
    ctx = grads[i]->ctx;
    CT_TRY(check_floating(grads[i], fn, "a gradient"));
  }
  CT_TRY(check_state(ctx, ls, fn));
  /* every gradient divided by the scale; sum(g * 0) of each is 0 when g is finite, NaN otherwise:
   * summed in float32 into one number, read once */
  ct_status s = CT_OK;
  ct_tensor *bad = NULL;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    if (!grads[i]) continue;
    ct_tensor *z = NULL, *sz = NULL, *sf = NULL, *acc = NULL;
    s = ct_mul_scalar(grads[i], 1.0 / ls->scale, &out[i]);
    if (s == CT_OK) s = ct_mul_scalar(grads[i], 0.0, &z);
    if (s == CT_OK) s = ct_sum(z, NULL, 0, false, &sz);
    if (s == CT_OK) s = ct_cast(sz, CT_FLOAT32, &sf);
    if (s == CT_OK && bad) s = ct_add(bad, sf, &acc);
    if (s == CT_OK) {
      ct_tensor_free(bad);
      bad = acc ? acc : ct_tensor_retain(sf);
    }
    ct_tensor_free(z), ct_tensor_free(sz), ct_tensor_free(sf);
  }
  double v = 0;
  if (s == CT_OK && bad) s = ct_tensor_item(bad, &v);
  ct_tensor_free(bad);
  if (s != CT_OK) {
    for (int i = 0; i < n; ++i) {
      ct_tensor_free(out[i]);
      out[i] = NULL;
    }
    return s;
  }
  *finite = v == 0;
  if (*finite) {
    if (++ls->good_steps >= ls->growth_interval) {
      double grown = ls->scale * ls->growth_factor;
      if (isfinite(grown)) ls->scale = grown;
      ls->good_steps = 0;
    }
    return CT_OK;
  }
  for (int i = 0; i < n; ++i) {
    ct_tensor_free(out[i]);
    out[i] = NULL;
  }
  double shrunk = ls->scale * ls->backoff_factor;
  if (shrunk > 0) ls->scale = shrunk;
  ls->good_steps = 0;
  ls->skipped++;
  return CT_OK;
}
