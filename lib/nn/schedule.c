/* schedule.c — learning-rate schedules: a pure function of the optimizer's step count. */
#include "nn_internal.h"
#include <math.h>

ct_lr_schedule ct_lr_schedule_default(ct_lr_schedule_kind kind, double learning_rate) {
  ct_lr_schedule s = {0};
  s.kind = kind;
  s.learning_rate = learning_rate;
  s.decay_steps = 1000;
  s.decay_rate = kind == CT_LR_STEP ? 0.1 : 0.96;
  return s;
}

/* What is wrong with s (a message), or NULL. */
static const char *invalid(const ct_lr_schedule *s) {
  if (s->kind < CT_LR_CONSTANT || s->kind > CT_LR_COSINE) return "unknown schedule kind";
  if (!(s->learning_rate > 0) || !isfinite(s->learning_rate)) return "learning_rate must be > 0";
  if (s->warmup_steps < 0) return "warmup_steps must be >= 0";
  if (s->kind != CT_LR_CONSTANT && s->decay_steps <= 0) return "decay_steps must be > 0";
  if ((s->kind == CT_LR_STEP || s->kind == CT_LR_EXPONENTIAL) && !(s->decay_rate > 0 && s->decay_rate <= 1))
    return "decay_rate must be in (0, 1]";
  if (s->kind == CT_LR_COSINE && !(s->min_learning_rate >= 0 && s->min_learning_rate <= s->learning_rate))
    return "min_learning_rate must be in [0, learning_rate]";
  return NULL;
}

ct_status ct__lr_schedule_check(ct_context *ctx, const ct_lr_schedule *s, const char *fn) {
  if (!s) return ct__error(ctx, CT_ERR_NULL, "%s: schedule is NULL", fn);
  const char *why = invalid(s);
  if (why)
    return ct__error(ctx, CT_ERR_INVALID, "%s: %s (kind %d, learning_rate %g, warmup_steps %lld, decay_steps %lld, "
                     "decay_rate %g, min_learning_rate %g)", fn, why, (int)s->kind, s->learning_rate,
                     (long long)s->warmup_steps, (long long)s->decay_steps, s->decay_rate, s->min_learning_rate);
  return CT_OK;
}

double ct_lr_schedule_value(const ct_lr_schedule *s, int64_t step) {
  if (!s || step < 0 || invalid(s)) return 0.0;
  const double lr = s->learning_rate;
  if (step < s->warmup_steps) return lr * (double)(step + 1) / (double)s->warmup_steps;
  const double k = (double)(step - s->warmup_steps), n = (double)s->decay_steps;
  switch (s->kind) {
  case CT_LR_STEP: return lr * pow(s->decay_rate, floor(k / n));
  case CT_LR_EXPONENTIAL: return lr * pow(s->decay_rate, k / n);
  case CT_LR_COSINE:
    if (k >= n) return s->min_learning_rate;
    return s->min_learning_rate + (lr - s->min_learning_rate) * 0.5 * (1 + cos(3.14159265358979323846 * k / n));
  default: return lr;
  }
}
