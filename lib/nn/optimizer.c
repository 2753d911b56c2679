/* optimizer.c — SGD (momentum, Nesterov), Adam and AdamW with optional global-norm clipping. One
 * backend launch updates up to CTB_OPT_MULTI variables of a dtype in place on the device
 * (ctb_optimizer_step: a step of a small model is one launch); nothing is
 * recorded on tapes and nothing waits for the device. Storage still shared with a snapshot or a
 * tape record is never written: the new value goes to fresh storage (copy-on-write), except for a
 * variable over a caller's buffer, which is always written in place (its snapshots and tape
 * records move to a copy of the old value first, ct__variable_unshare). */
#include "nn_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CT_OPT_MAGIC CT_HANDLE_TAG(CT_HANDLE_OPTIMIZER)

typedef struct {
  uint64_t id;
  ct_tensor *s[2];
} slot_rec;

struct ct_optimizer {
  uint32_t magic;
  ct_context *ctx;
  ct_optimizer_options o;
  int64_t t;
  slot_rec *slots;
  int nslots, capslots;
  bool scheduled; /* o.learning_rate follows sched: always the rate of the next step */
  ct_lr_schedule sched;
};

ct_optimizer_options ct_optimizer_default_options(ct_optimizer_kind kind) {
  ct_optimizer_options o;
  memset(&o, 0, sizeof o);
  o.kind = kind;
  o.beta1 = 0.9;
  o.beta2 = 0.999;
  o.epsilon = 1e-7;
  if (kind == CT_OPTIMIZER_SGD) o.learning_rate = 0.01;
  else o.learning_rate = 0.001;
  if (kind == CT_OPTIMIZER_ADAMW) o.weight_decay = 0.004;
  return o;
}

const char *ct_optimizer_kind_name(ct_optimizer_kind kind) {
  switch (kind) {
    case CT_OPTIMIZER_SGD: return "SGD";
    case CT_OPTIMIZER_ADAM: return "Adam";
    case CT_OPTIMIZER_ADAMW: return "AdamW";
  }
  return "?";
}

static ct_status check_options(ct_context *ctx, const ct_optimizer_options *o) {
  if ((unsigned)o->kind > CT_OPTIMIZER_ADAMW)
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: unknown kind %d", (int)o->kind);
  if (!(o->learning_rate > 0) || !isfinite(o->learning_rate))
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: learning_rate must be > 0 (got %g)", o->learning_rate);
  if (!(o->momentum >= 0 && o->momentum < 1))
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: momentum must be in [0, 1) (got %g)", o->momentum);
  if (o->nesterov && o->kind == CT_OPTIMIZER_SGD && o->momentum == 0)
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: Nesterov needs a momentum > 0");
  if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: beta1 and beta2 must be in [0, 1) (got %g, %g)", o->beta1,
                     o->beta2);
  if (o->kind != CT_OPTIMIZER_SGD && !(o->epsilon > 0))
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: epsilon must be > 0 (got %g)", o->epsilon);
  if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: weight_decay must be >= 0 (got %g)", o->weight_decay);
  if (!(o->clip_global_norm >= 0) || !isfinite(o->clip_global_norm))
    return ct__error(ctx, CT_ERR_INVALID, "optimizer: clip_global_norm must be >= 0 (got %g)", o->clip_global_norm);
  return CT_OK;
}

static ct_status check_opt(const ct_optimizer *opt, const char *fn) {
  return CT_CHECK_HANDLE(opt, CT_HANDLE_OPTIMIZER, fn);
}

ct_status ct_optimizer_create(ct_context *ctx, const ct_optimizer_options *opts, ct_optimizer **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_optimizer_create: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_optimizer_create"));
  ct_optimizer_options o = opts ? *opts : ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  CT_TRY(check_options(ctx, &o));
  ct_optimizer *opt = ct__handle_new(CT_HANDLE_OPTIMIZER, sizeof *opt);
  if (!opt) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_optimizer_create");
  opt->ctx = ctx;
  ctb_context_retain(ctx);
  opt->o = o;
  *out = opt;
  return CT_OK;
}

void ct_optimizer_free(ct_optimizer *opt) {
  if (!opt || opt->magic != CT_OPT_MAGIC) return;
  for (int i = 0; i < opt->nslots; ++i) {
    ct_tensor_free(opt->slots[i].s[0]);
    ct_tensor_free(opt->slots[i].s[1]);
  }
  free(opt->slots);
  ct_context *ctx = opt->ctx;
  ct__handle_free(opt);
  ctb_context_release(ctx);
}

ct_status ct_optimizer_set_learning_rate(ct_optimizer *opt, double lr) {
  CT_TRY(check_opt(opt, "ct_optimizer_set_learning_rate"));
  if (!(lr > 0) || !isfinite(lr))
    return ct__error(opt->ctx, CT_ERR_INVALID, "ct_optimizer_set_learning_rate: %g is not > 0", lr);
  opt->o.learning_rate = lr;
  opt->scheduled = false;
  return CT_OK;
}
ct_status ct_optimizer_set_schedule(ct_optimizer *opt, const ct_lr_schedule *schedule) {
  CT_TRY(check_opt(opt, "ct_optimizer_set_schedule"));
  if (!schedule) {
    opt->scheduled = false;
    return CT_OK;
  }
  CT_TRY(ct__lr_schedule_check(opt->ctx, schedule, "ct_optimizer_set_schedule"));
  opt->sched = *schedule;
  opt->scheduled = true;
  opt->o.learning_rate = ct_lr_schedule_value(&opt->sched, opt->t);
  return CT_OK;
}
double ct_optimizer_learning_rate(const ct_optimizer *opt) {
  return opt && opt->magic == CT_OPT_MAGIC ? opt->o.learning_rate : 0.0;
}
int64_t ct_optimizer_iterations(const ct_optimizer *opt) { return opt && opt->magic == CT_OPT_MAGIC ? opt->t : -1; }
ct_optimizer_options ct_optimizer_options_get(const ct_optimizer *opt) {
  if (opt && opt->magic == CT_OPT_MAGIC) return opt->o;
  ct_optimizer_options z;
  memset(&z, 0, sizeof z);
  return z;
}

/* ---- slots (also used by checkpoints) -------------------------------------------------------- */
int ct__optimizer_slot_names(const ct_optimizer *opt, const char **names) {
  if (opt->o.kind == CT_OPTIMIZER_SGD) {
    if (opt->o.momentum == 0) return 0;
    names[0] = "momentum";
    return 1;
  }
  names[0] = "m";
  names[1] = "v";
  return 2;
}

static slot_rec *find_slot(const ct_optimizer *opt, uint64_t id) {
  for (int i = 0; i < opt->nslots; ++i)
    if (opt->slots[i].id == id) return &opt->slots[i];
  return NULL;
}

ct_status ct__optimizer_slots(const ct_optimizer *opt, uint64_t var_id, ct_tensor **slots) {
  slot_rec *r = find_slot(opt, var_id);
  slots[0] = r ? r->s[0] : NULL;
  slots[1] = r ? r->s[1] : NULL;
  return CT_OK;
}

static slot_rec *new_slot(ct_optimizer *opt, uint64_t id) {
  if (opt->nslots == opt->capslots) {
    int nc = opt->capslots ? opt->capslots * 2 : 16;
    slot_rec *n = realloc(opt->slots, sizeof *n * (size_t)nc);
    if (!n) return NULL;
    opt->slots = n;
    opt->capslots = nc;
  }
  slot_rec *r = &opt->slots[opt->nslots++];
  r->id = id;
  r->s[0] = r->s[1] = NULL;
  return r;
}

ct_status ct__optimizer_set_slots(ct_optimizer *opt, uint64_t var_id, ct_tensor **slots) {
  slot_rec *r = find_slot(opt, var_id);
  if (!r && !(r = new_slot(opt, var_id))) {
    ct_tensor_free(slots[0]);
    ct_tensor_free(slots[1]);
    return ct__error(opt->ctx, CT_ERR_OUT_OF_MEMORY, "optimizer slots");
  }
  for (int k = 0; k < 2; ++k) {
    ct_tensor_free(r->s[k]);
    r->s[k] = slots[k];
  }
  return CT_OK;
}

ct_status ct__optimizer_reserve(ct_optimizer *opt, uint64_t var_id) {
  if (find_slot(opt, var_id) || new_slot(opt, var_id)) return CT_OK;
  return ct__error(opt->ctx, CT_ERR_OUT_OF_MEMORY, "optimizer slots");
}

void ct__optimizer_set_iterations(ct_optimizer *opt, int64_t t) {
  opt->t = t;
  if (opt->scheduled) opt->o.learning_rate = ct_lr_schedule_value(&opt->sched, t);
}

/* ---- the step ---------------------------------------------------------------------------------- */
/* scale = clip / max(norm, clip) with norm = sqrt(sum of squares of every gradient), in the dtype
 * of the first gradient. */
static ct_status clip_scale(ct_tensor *const *grads, int n, double clip, ct_tensor **scale, ct_tensor **norm_out) {
  ct_tensor *total = NULL;
  ct_status s = CT_OK;
  const ct_tensor *first = NULL;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    if (!grads[i]) continue;
    if (!first) first = grads[i];
    ct_tensor *sq = NULL, *sum = NULL, *c = NULL, *acc = NULL;
    s = ct_square(grads[i], &sq);
    if (s == CT_OK) s = ct_sum(sq, NULL, 0, false, &sum);
    if (s == CT_OK) s = ct_cast(sum, first->dtype, &c);
    if (s == CT_OK && total) s = ct_add(total, c, &acc);
    else if (s == CT_OK) acc = ct_tensor_retain(c);
    ct_tensor_free(sq);
    ct_tensor_free(sum);
    ct_tensor_free(c);
    if (s == CT_OK) {
      ct_tensor_free(total);
      total = acc;
    }
  }
  ct_tensor *norm = NULL, *den = NULL;
  if (s == CT_OK && total) s = ct_sqrt(total, &norm);
  if (s == CT_OK && norm) s = ct_maximum_scalar(norm, clip, &den);
  if (s == CT_OK && den) s = ct_rdiv_scalar(clip, den, scale);
  ct_tensor_free(total);
  ct_tensor_free(den);
  if (s == CT_OK && norm_out) *norm_out = norm;
  else ct_tensor_free(norm);
  return s;
}

ct_status ct_clip_by_global_norm(ct_tensor *const *grads, int n, double clip_norm, ct_tensor **clipped,
                                 ct_tensor **global_norm) {
  if (global_norm) *global_norm = NULL;
  if (!clipped || (n > 0 && !grads)) return ct__error(NULL, CT_ERR_NULL, "ct_clip_by_global_norm: NULL array");
  if (n < 0) return ct__error(NULL, CT_ERR_INVALID, "ct_clip_by_global_norm: n < 0");
  for (int i = 0; i < n; ++i) clipped[i] = NULL;
  if (!(clip_norm > 0) || !isfinite(clip_norm))
    return ct__error(NULL, CT_ERR_INVALID, "ct_clip_by_global_norm: clip_norm must be > 0 (got %g)", clip_norm);
  for (int i = 0; i < n; ++i) {
    if (!grads[i]) continue;
    CT_TRY(ct__check(grads[i], "ct_clip_by_global_norm"));
    if (!ct__is_float(grads[i]->dtype))
      return ct__error(grads[i]->ctx, CT_ERR_DTYPE, "ct_clip_by_global_norm: gradient %d is not floating", i);
  }
  ct_tensor *scale = NULL;
  CT_TRY(clip_scale(grads, n, clip_norm, &scale, global_norm));
  ct_status s = CT_OK;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    if (!grads[i]) continue;
    ct_tensor *sc = NULL;
    s = ct_cast(scale, grads[i]->dtype, &sc);
    if (s == CT_OK) s = ct_mul(grads[i], sc, &clipped[i]);
    ct_tensor_free(sc);
  }
  ct_tensor_free(scale);
  if (s != CT_OK) {
    ct_tensor_free_n(clipped, n);
    if (global_norm) {
      ct_tensor_free(*global_norm);
      *global_norm = NULL;
    }
  }
  return s;
}

static ct_status check_pair(const ct_optimizer *opt, const ct_tensor *g, const ct_tensor *v, int i) {
  CT_TRY(ct__check(v, "ct_optimizer_apply"));
  if (!v->is_var) return ct__error(opt->ctx, CT_ERR_INVALID, "ct_optimizer_apply: vars[%d] is not a variable", i);
  if (v->ctx != opt->ctx)
    return ct__error(opt->ctx, CT_ERR_CONTEXT, "ct_optimizer_apply: variable %s belongs to another context", v->name);
  if (!ct__is_float(v->dtype))
    return ct__error(opt->ctx, CT_ERR_DTYPE, "ct_optimizer_apply: variable %s is %s", v->name, ct_dtype_name(v->dtype));
  if (!g) return CT_OK;
  CT_TRY(ct__check(g, "ct_optimizer_apply"));
  if (g->ctx != opt->ctx)
    return ct__error(opt->ctx, CT_ERR_CONTEXT, "ct_optimizer_apply: gradient %d belongs to another context", i);
  if (g->dtype != v->dtype)
    return ct__error(opt->ctx, CT_ERR_DTYPE, "ct_optimizer_apply: gradient of %s is %s, the variable is %s", v->name,
                     ct_dtype_name(g->dtype), ct_dtype_name(v->dtype));
  if (g->rank != v->rank || memcmp(g->shape, v->shape, sizeof(int64_t) * (size_t)v->rank)) {
    char s1[96], s2[96];
    ct__shape_str(g->rank, g->shape, s1, sizeof s1);
    ct__shape_str(v->rank, v->shape, s2, sizeof s2);
    return ct__error(opt->ctx, CT_ERR_SHAPE, "ct_optimizer_apply: gradient %s does not match variable %s %s", s1,
                     v->name, s2);
  }
  return CT_OK;
}

void ct__variable_swap_storage(ct_tensor *var, ct_tensor *value) {
  ct_buffer *old = var->buf;
  var->buf = ctb_retain(value->buf);
  ctb_release(old);
}

/* The backend's description of this step (the same for every variable). */
static ctb_opt_step step_of(const ct_optimizer *opt) {
  const ct_optimizer_options *o = &opt->o;
  ctb_opt_step st;
  memset(&st, 0, sizeof st);
  st.lr = o->learning_rate;
  st.weight_decay = o->weight_decay;
  if (o->kind == CT_OPTIMIZER_SGD) {
    st.kind = o->momentum > 0 ? CTB_OPT_MOMENTUM : CTB_OPT_SGD;
    st.momentum = o->momentum;
    st.nesterov = o->nesterov;
  } else {
    st.kind = CTB_OPT_ADAM;
    st.beta1 = o->beta1;
    st.beta2 = o->beta2;
    st.epsilon = o->epsilon;
    st.bc1 = 1.0 - pow(o->beta1, (double)opt->t);
    st.bc2 = 1.0 - pow(o->beta2, (double)opt->t);
    st.decoupled = o->kind == CT_OPTIMIZER_ADAMW;
  }
  return st;
}

/* Room for `extra` more slot records, so that installing them afterwards cannot fail. */
static ct_status reserve_slots(ct_optimizer *opt, int extra) {
  if (opt->capslots - opt->nslots >= extra) return CT_OK;
  int nc = opt->capslots ? opt->capslots : 16;
  while (nc - opt->nslots < extra) {
    if (nc > INT32_MAX / 2) return ct__error(opt->ctx, CT_ERR_OUT_OF_MEMORY, "optimizer slots");
    nc *= 2;
  }
  slot_rec *nr = realloc(opt->slots, sizeof *nr * (size_t)nc);
  if (!nr) return ct__error(opt->ctx, CT_ERR_OUT_OF_MEMORY, "optimizer slots");
  opt->slots = nr;
  opt->capslots = nc;
  return CT_OK;
}

/* What one step needs besides the variables, gradients and existing slots; all of it is allocated
 * before the first variable, slot or count changes. */
typedef struct {
  ct_tensor *(*zero)[2]; /* new (zero) slots of a variable that has none yet */
  ct_buffer **fresh;     /* new storage of a variable whose storage is shared */
  ct_tensor **scale;     /* the clipping scale in the variable's dtype */
  ctb_opt_var *upd;      /* the backend's list of updates */
} staged_step;

static void staged_free(staged_step *p, int n) {
  for (int i = 0; i < n; ++i) {
    if (p->zero) ct_tensor_free_n(p->zero[i], 2);
    if (p->fresh && p->fresh[i]) ctb_release(p->fresh[i]);
    if (p->scale) ct_tensor_free(p->scale[i]);
  }
  free(p->zero);
  free(p->fresh);
  free(p->scale);
  free(p->upd);
}

ct_status ct_optimizer_apply(ct_optimizer *opt, ct_tensor *const *grads, ct_tensor *const *vars, int n) {
  CT_TRY(check_opt(opt, "ct_optimizer_apply"));
  if (n < 0) return ct__error(opt->ctx, CT_ERR_INVALID, "ct_optimizer_apply: negative count %d", n);
  if (n > 0 && (!grads || !vars))
    return ct__error(opt->ctx, CT_ERR_NULL, "ct_optimizer_apply: grads and vars are required");
  bool any = false;
  for (int i = 0; i < n; ++i) {
    CT_TRY(check_pair(opt, grads[i], vars[i], i));
    for (int j = 0; j < i; ++j)
      if (vars[j] == vars[i])
        return ct__error(opt->ctx, CT_ERR_INVALID, "ct_optimizer_apply: variable %s is listed twice", vars[i]->name);
    any |= grads[i] != NULL;
  }
  if (!any) return CT_OK;
  if (opt->t == INT64_MAX)
    return ct__error(opt->ctx, CT_ERR_INVALID, "ct_optimizer_apply: the iteration count %lld cannot grow",
                     (long long)opt->t);
  const char *names[2];
  int nslots = ct__optimizer_slot_names(opt, names);
  ct__tapes_suspend(+1);
  /* 1. allocate: zero slots, copy-on-write storage, the clipping scale, slot records */
  staged_step p;
  p.zero = calloc((size_t)n, sizeof *p.zero);
  p.fresh = calloc((size_t)n, sizeof *p.fresh);
  p.scale = calloc((size_t)n, sizeof *p.scale);
  p.upd = calloc((size_t)n, sizeof *p.upd);
  ct_status s = CT_OK;
  if (!p.zero || !p.fresh || !p.scale || !p.upd) s = ct__error(opt->ctx, CT_ERR_OUT_OF_MEMORY, "ct_optimizer_apply");
  int new_records = 0;
  /* pending values (lazy elementwise results, lib/fuse.c) are computed here, where a failure
   * changes nothing, not while the step writes */
  for (int i = 0; i < n && s == CT_OK; ++i) {
    if (!grads[i]) continue;
    slot_rec *r = nslots ? find_slot(opt, vars[i]->id) : NULL;
    s = ctb_force(vars[i]->buf);
    if (s == CT_OK) s = ctb_force(grads[i]->buf);
    for (int k = 0; k < nslots && r && s == CT_OK; ++k)
      if (r->s[k]) s = ctb_force(r->s[k]->buf);
  }
  for (int i = 0; i < n && s == CT_OK; ++i) {
    if (!grads[i]) continue;
    slot_rec *r = nslots ? find_slot(opt, vars[i]->id) : NULL;
    if (nslots && !(r && r->s[0] && (nslots < 2 || r->s[1]))) {
      for (int k = 0; k < nslots && s == CT_OK; ++k) s = ct_zeros_like(vars[i], &p.zero[i][k]);
      for (int k = 0; k < nslots && s == CT_OK; ++k) s = ctb_force(p.zero[i][k]->buf);
      if (!r) new_records++;
    }
    if (s == CT_OK && ctb_refcount(vars[i]->buf) > 1) s = ctb_alloc(opt->ctx, ctb_bytes(vars[i]->buf), &p.fresh[i]);
  }
  if (s == CT_OK) s = reserve_slots(opt, new_records);
  ct_tensor *scale = NULL;
  if (s == CT_OK && opt->o.clip_global_norm > 0) s = clip_scale(grads, n, opt->o.clip_global_norm, &scale, NULL);
  for (int i = 0; i < n && s == CT_OK && scale; ++i)
    if (grads[i] && scale->dtype != vars[i]->dtype) s = ct_cast(scale, vars[i]->dtype, &p.scale[i]);
  if (s == CT_OK && scale) s = ctb_force(scale->buf);
  for (int i = 0; i < n && s == CT_OK; ++i)
    if (p.scale[i]) s = ctb_force(p.scale[i]->buf);
  /* 2. commit: from here on nothing allocates */
  if (s == CT_OK) {
    for (int i = 0; i < n; ++i)
      if (p.zero[i][0]) {
        ct__optimizer_set_slots(opt, vars[i]->id, p.zero[i]); /* takes the references; cannot fail (reserved) */
        p.zero[i][0] = p.zero[i][1] = NULL;
      }
    opt->t++;
    const ctb_opt_step st = step_of(opt);
    /* the updates in order, one backend call per run of variables with the same dtype (and so
     * the same clipping scale): a few launches for all of them */
    int nu = 0;
    const ct_tensor *run_scale = NULL;
    ct_dtype run_dt = CT_FLOAT32;
    for (int i = 0; i <= n && s == CT_OK; ++i) {
      if (i < n && !grads[i]) continue;
      const ct_tensor *sc = i < n ? (p.scale[i] ? p.scale[i] : scale) : NULL;
      if (nu > 0 && (i == n || vars[i]->dtype != run_dt)) {
        s = ctb_optimizer_step(opt->ctx, run_dt, &st, run_scale ? run_scale->buf : NULL, p.upd, nu);
        nu = 0;
      }
      if (i == n || s != CT_OK) break;
      if (vars[i]->in_place && p.fresh[i]) {
        /* a caller's buffer is written in place: the storage's other holders move to the copy */
        s = ct__variable_unshare(vars[i], p.fresh[i]);
        p.fresh[i] = NULL;
        if (s != CT_OK) break;
      }
      slot_rec *r = nslots ? find_slot(opt, vars[i]->id) : NULL;
      run_dt = vars[i]->dtype;
      run_scale = sc;
      p.upd[nu++] = (ctb_opt_var){vars[i]->size,
                                  vars[i]->buf,
                                  grads[i]->buf,
                                  p.fresh[i] ? p.fresh[i] : vars[i]->buf,
                                  r && r->s[0] ? r->s[0]->buf : NULL,
                                  r && r->s[1] ? r->s[1]->buf : NULL};
    }
    for (int i = 0; i < n && s == CT_OK; ++i)
      if (grads[i] && p.fresh[i]) {
        ctb_release(vars[i]->buf);
        vars[i]->buf = p.fresh[i];
        p.fresh[i] = NULL;
      }
  }
  if (s == CT_OK && opt->scheduled) opt->o.learning_rate = ct_lr_schedule_value(&opt->sched, opt->t);
  ct_tensor_free(scale);
  staged_free(&p, n);
  ct__tapes_suspend(-1);
  return s;
}
