/* gradcheck.c — central finite differences against the tape's gradient. The function's output
 * is projected on fixed random weights w, so one backward pass checks every output element:
 * L(x) = sum(f(x) * w), dL/dx_i analytic vs (L(x + eps e_i) - L(x - eps e_i)) / (2 eps). */
#include "ct_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_status projected(ct_fn f, void *user, ct_tensor *const *in, int n, const double *w, ct_dtype dt,
                           double *value, ct_tensor **out_y) {
  ct_tensor *y = NULL;
  CT_TRY(f(in, n, &y, user));
  if (!y) return ct__error(NULL, CT_ERR_INVALID, "gradcheck: the function returned no tensor");
  ct_status s = CT_OK;
  if (y->dtype != dt) {
    ct_tensor *c;
    s = ct_cast(y, dt, &c);
    ct_tensor_free(y);
    if (s != CT_OK) return s;
    y = c;
  }
  double *h = malloc(sizeof(double) * (size_t)(y->size ? y->size : 1));
  if (!h) s = ct__error(y->ctx, CT_ERR_OUT_OF_MEMORY, "gradcheck");
  if (s == CT_OK) s = ct_tensor_read_f64(y, h, y->size);
  if (s == CT_OK && value) {
    double acc = 0;
    for (int64_t i = 0; i < y->size; ++i) acc += h[i] * w[i % 1024];
    *value = acc;
  }
  free(h);
  if (out_y && s == CT_OK) *out_y = y;
  else ct_tensor_free(y);
  return s;
}

static ct_status host_tensor(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *v, ct_tensor **out) {
  int64_t n = ct__shape_size(rank, shape);
  void *h = malloc(ct_dtype_size(dt) * (size_t)(n ? n : 1));
  if (!h) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradcheck");
  for (int64_t i = 0; i < n; ++i)
    if (dt == CT_FLOAT32) ((float *)h)[i] = (float)v[i];
    else ((double *)h)[i] = v[i];
  ct_status s = ct_tensor_from_data(ctx, dt, rank, shape, h, out);
  free(h);
  return s;
}

ct_status ct_gradcheck(ct_context *ctx, ct_fn f, void *user, ct_tensor *const *inputs, int n_inputs,
                       const ct_gradcheck_options *opts, ct_gradcheck_report *report) {
  if (ctx) CT_TRY(ct__check_context(ctx, "ct_gradcheck"));
  if (!ctx || !f || !report || (n_inputs > 0 && !inputs))
    return ct__error(ctx, CT_ERR_NULL, "ct_gradcheck: ctx, f, inputs and report are required");
  if (n_inputs < 1 || n_inputs > 16) return ct__error(ctx, CT_ERR_INVALID, "ct_gradcheck: 1..16 inputs");
  for (int i = 0; i < n_inputs; ++i) CT_TRY(ct__check(inputs[i], "ct_gradcheck"));
  memset(report, 0, sizeof *report);
  ct_gradcheck_options o = {0};
  if (opts) o = *opts;
  bool f32 = o.float32 || !ctb_has_fp64(ctx);
  ct_dtype dt = f32 ? CT_FLOAT32 : CT_FLOAT64;
  report->dtype = dt;
  double eps = o.eps > 0 ? o.eps : (f32 ? 1e-2 : 1e-6);
  double atol = o.atol > 0 ? o.atol : (f32 ? 2e-2 : 1e-5);
  double rtol = o.rtol > 0 ? o.rtol : (f32 ? 2e-2 : 1e-4);
  double w[1024];
  ct__philox_fill_uniform(o.seed ? o.seed : 12345, 1024, w);
  for (int i = 0; i < 1024; ++i) w[i] = 0.5 + w[i]; /* in [0.5, 1.5): no cancellation */

  ct_tensor *x[16] = {0};
  double *xv[16] = {0};
  ct_status s = CT_OK;
  for (int i = 0; i < n_inputs && s == CT_OK; ++i) {
    const ct_tensor *in = inputs[i];
    if (!ct__is_float(in->dtype)) {
      x[i] = ct_tensor_retain((ct_tensor *)in);
      continue;
    }
    xv[i] = malloc(sizeof(double) * (size_t)(in->size ? in->size : 1));
    if (!xv[i]) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradcheck");
    if (s == CT_OK) s = ct_tensor_read_f64(in, xv[i], in->size);
    if (s == CT_OK) s = host_tensor(ctx, dt, in->rank, in->shape, xv[i], &x[i]);
  }
  /* analytic: gradient of sum(f(x) * w) */
  ct_tensor *grads[16] = {0};
  if (s == CT_OK) {
    ct_tape *tape = NULL;
    ct_tape_options to = {false, false};
    ct_tensor *y = NULL, *wt = NULL, *prod = NULL, *loss = NULL;
    s = ct_tape_begin(ctx, &to, &tape);
    for (int i = 0; i < n_inputs && s == CT_OK; ++i)
      if (xv[i]) s = ct_tape_watch(tape, x[i]);
    if (s == CT_OK) s = projected(f, user, x, n_inputs, w, dt, NULL, &y);
    if (s == CT_OK) {
      double *wv = malloc(sizeof(double) * (size_t)(y->size ? y->size : 1));
      if (!wv) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradcheck");
      for (int64_t i = 0; wv && i < y->size; ++i) wv[i] = w[i % 1024];
      if (s == CT_OK) s = host_tensor(ctx, dt, y->rank, y->shape, wv, &wt);
      free(wv);
    }
    if (s == CT_OK) s = ct_mul(y, wt, &prod);
    if (s == CT_OK) s = ct_sum(prod, NULL, 0, false, &loss);
    if (tape) ct_tape_end(tape);
    if (s == CT_OK) s = ct_tape_gradient(tape, &loss, 1, x, n_inputs, NULL, CT_UNCONNECTED_ZERO, grads);
    ct_tape_free(tape);
    ct_tensor *tmp[] = {y, wt, prod, loss};
    ct_tensor_free_n(tmp, 4);
  }
  /* numeric, element by element */
  report->passed = s == CT_OK;
  double worst_ratio = -1;
  for (int i = 0; i < n_inputs && s == CT_OK; ++i) {
    if (!xv[i]) continue;
    const ct_tensor *in = x[i];
    int64_t n = in->size;
    double *ga = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!ga) {
      s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradcheck");
      break;
    }
    s = ct_tensor_read_f64(grads[i], ga, n);
    for (int64_t k = 0; k < n && s == CT_OK; ++k) {
      double orig = xv[i][k], lp = 0, lm = 0;
      ct_tensor *saved = x[i];
      for (int sign = 0; sign < 2 && s == CT_OK; ++sign) {
        xv[i][k] = orig + (sign ? -eps : eps);
        ct_tensor *px = NULL;
        s = host_tensor(ctx, dt, in->rank, in->shape, xv[i], &px);
        if (s == CT_OK) {
          x[i] = px;
          s = projected(f, user, x, n_inputs, w, dt, sign ? &lm : &lp, NULL);
          x[i] = saved;
        }
        ct_tensor_free(px);
      }
      xv[i][k] = orig;
      if (s != CT_OK) break;
      double num = (lp - lm) / (2 * eps), ana = ga[k];
      double err = fabs(num - ana), tol = atol + rtol * fabs(num);
      report->checked++;
      if (err > report->max_abs_error || isnan(err)) report->max_abs_error = isnan(err) ? INFINITY : err;
      double ratio = isnan(err) ? INFINITY : err / tol;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        report->worst_input = i;
        report->worst_index = k;
        report->worst_analytic = ana;
        report->worst_numeric = num;
      }
      if (!(err <= tol)) report->passed = false;
    }
    free(ga);
  }
  if (s == CT_OK)
    snprintf(report->message, sizeof report->message,
             "%s: %s: %d partials, worst input %d index %lld: analytic %.9g numeric %.9g (max abs error %.3g)",
             ct_dtype_name(dt), report->passed ? "passed" : "FAILED", report->checked, report->worst_input, (long long)report->worst_index,
             report->worst_analytic, report->worst_numeric, report->max_abs_error);
  else report->passed = false;
  ct__log(CT_LOG_DEBUG, "gradcheck in %s on \"%s\"%s", ct_dtype_name(dt), ctb_device_name(ctx),
          f32 && !o.float32 ? " (the device has no float64)" : "");
  for (int i = 0; i < n_inputs; ++i) {
    ct_tensor_free(x[i]);
    ct_tensor_free(grads[i]);
    free(xv[i]);
  }
  return s;
}
