/* tape.c — gradient tapes: what is recorded, the backward pass, jacobians.
 *
 * Recording: every op goes through ct__run, which calls ct__tape_record. Each active tape on the
 * thread records the op when one of its inputs is tracked (watched, or produced by an op the tape
 * recorded). Trainable variables read by an op are watched on the spot when the tape watches
 * accessed variables. A record keeps the input ids and shapes, and holds only the tensors the
 * op's gradient reads (the table's `saves`).
 *
 * Backward: walk the records in reverse, from the targets, calling each op's gradient function
 * (built from ordinary ops, so outer tapes record it), summing broadcast gradients back to each
 * input's shape in one place, and accumulating per id. */
#include "ct_internal.h"
#include <stdlib.h>
#include <string.h>

#define CT_TAPE_MAGIC 0x54415045u

/* ---- id set / id -> tensor map (open addressing, id 0 = empty) ---------------------------- */
typedef struct {
  uint64_t *keys;
  ct_tensor **vals; /* NULL for a set */
  int cap, count;
} idmap;

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

static int idmap_find(const idmap *m, uint64_t id) {
  if (!m->cap) return -1;
  int mask = m->cap - 1;
  for (int i = (int)(mix(id) & (uint64_t)mask);; i = (i + 1) & mask) {
    if (m->keys[i] == id) return i;
    if (m->keys[i] == 0) return -1;
  }
}

static bool idmap_has(const idmap *m, uint64_t id) { return idmap_find(m, id) >= 0; }

static bool idmap_grow(idmap *m, bool with_vals) {
  int ncap = m->cap ? m->cap * 2 : 64;
  uint64_t *nk = calloc((size_t)ncap, sizeof *nk);
  ct_tensor **nv = with_vals ? calloc((size_t)ncap, sizeof *nv) : NULL;
  if (!nk || (with_vals && !nv)) {
    free(nk);
    free(nv);
    return false;
  }
  for (int i = 0; i < m->cap; ++i)
    if (m->keys[i]) {
      int j = (int)(mix(m->keys[i]) & (uint64_t)(ncap - 1));
      while (nk[j]) j = (j + 1) & (ncap - 1);
      nk[j] = m->keys[i];
      if (nv) nv[j] = m->vals[i];
    }
  free(m->keys);
  free(m->vals);
  m->keys = nk;
  m->vals = nv;
  m->cap = ncap;
  return true;
}

/* Inserts id; returns the slot index or -1 when out of memory. */
static int idmap_put(idmap *m, uint64_t id, bool with_vals) {
  int i = idmap_find(m, id);
  if (i >= 0) return i;
  if ((m->count + 1) * 2 > m->cap && !idmap_grow(m, with_vals)) return -1;
  int mask = m->cap - 1;
  for (i = (int)(mix(id) & (uint64_t)mask); m->keys[i]; i = (i + 1) & mask) {
  }
  m->keys[i] = id;
  if (m->vals) m->vals[i] = NULL;
  m->count++;
  return i;
}

static void idmap_free(idmap *m) {
  if (m->vals)
    for (int i = 0; i < m->cap; ++i) ct_tensor_free(m->vals[i]);
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

/* ---- tapes ---------------------------------------------------------------------------------- */
struct ct_tape {
  uint32_t magic;
  ct_context *ctx;
  bool persistent, watch_accessed;
  bool active;      /* on this thread's list */
  bool paused;      /* stop_recording */
  bool in_gradient; /* computing its own gradient: does not record */
  bool used;        /* a non-persistent tape after its gradient */
  idmap tracked;
  ct_tensor **watched;
  int nwatched, capwatched;
  ct_entry *entries;
  int n, cap;
  uint64_t saved_bytes;
  struct ct_tape *next_active;
};

static _Thread_local ct_tape *active_tapes;
static _Thread_local int suspended;

void ct__tapes_suspend(int delta) { suspended += delta; }
bool ct__tapes_active(void) { return active_tapes && !suspended; }

static ct_status check_tape(const ct_tape *t, const char *fn) {
  if (!t) return ct__error(NULL, CT_ERR_NULL, "%s: tape is NULL", fn);
  if (t->magic != CT_TAPE_MAGIC) return ct__error(NULL, CT_ERR_RELEASED, "%s: the tape was released", fn);
  return CT_OK;
}

ct_tape_options ct_tape_default_options(void) {
  ct_tape_options o = {false, true};
  return o;
}

ct_status ct_tape_begin(ct_context *ctx, const ct_tape_options *opts, ct_tape **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_tape_begin: out is NULL");
  *out = NULL;
  if (!ctx) return ct__error(NULL, CT_ERR_NULL, "ct_tape_begin: ctx is NULL");
  ct_tape *t = calloc(1, sizeof *t);
  if (!t) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a tape");
  ct_tape_options o = opts ? *opts : ct_tape_default_options();
  t->magic = CT_TAPE_MAGIC;
  t->ctx = ctx;
  ctb_context_retain(ctx);
  t->persistent = o.persistent;
  t->watch_accessed = o.watch_accessed_variables;
  t->active = true;
  t->next_active = active_tapes;
  active_tapes = t;
  *out = t;
  return CT_OK;
}

static void unlink_active(ct_tape *t) {
  if (!t->active) return;
  for (ct_tape **p = &active_tapes; *p; p = &(*p)->next_active)
    if (*p == t) {
      *p = t->next_active;
      break;
    }
  t->active = false;
}

ct_status ct_tape_end(ct_tape *tape) {
  CT_TRY(check_tape(tape, "ct_tape_end"));
  unlink_active(tape);
  return CT_OK;
}
ct_status ct_tape_stop_recording(ct_tape *tape) {
  CT_TRY(check_tape(tape, "ct_tape_stop_recording"));
  tape->paused = true;
  return CT_OK;
}
ct_status ct_tape_resume_recording(ct_tape *tape) {
  CT_TRY(check_tape(tape, "ct_tape_resume_recording"));
  tape->paused = false;
  return CT_OK;
}

static void release_entries(ct_tape *t) {
  for (int i = 0; i < t->n; ++i) {
    ct_entry *e = &t->entries[i];
    for (int k = 0; k < e->n_in; ++k) ct_tensor_free(e->in[k].saved);
    free(e->in);
    ct_tensor_free(e->out.saved);
  }
  free(t->entries);
  t->entries = NULL;
  t->n = t->cap = 0;
  t->saved_bytes = 0;
}

static void release_all(ct_tape *t) {
  release_entries(t);
  idmap_free(&t->tracked);
  for (int i = 0; i < t->nwatched; ++i) ct_tensor_free(t->watched[i]);
  free(t->watched);
  t->watched = NULL;
  t->nwatched = t->capwatched = 0;
}

ct_status ct_tape_reset(ct_tape *tape) {
  CT_TRY(check_tape(tape, "ct_tape_reset"));
  release_all(tape);
  tape->used = false;
  return CT_OK;
}

void ct_tape_free(ct_tape *tape) {
  if (!tape || tape->magic != CT_TAPE_MAGIC) return;
  unlink_active(tape);
  release_all(tape);
  tape->magic = 0;
  ctb_context_release(tape->ctx);
  free(tape);
}

static ct_status watch_one(ct_tape *t, const ct_tensor *x) {
  if (idmap_put(&t->tracked, x->id, false) < 0) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: watch");
  if (!x->is_var) return CT_OK;
  for (int i = 0; i < t->nwatched; ++i)
    if (t->watched[i]->id == x->id) return CT_OK;
  if (t->nwatched == t->capwatched) {
    int nc = t->capwatched ? t->capwatched * 2 : 8;
    ct_tensor **nw = realloc(t->watched, sizeof *nw * (size_t)nc);
    if (!nw) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: watch");
    t->watched = nw;
    t->capwatched = nc;
  }
  t->watched[t->nwatched++] = ct_tensor_retain((ct_tensor *)x);
  return CT_OK;
}

ct_status ct_tape_watch(ct_tape *tape, const ct_tensor *t) {
  CT_TRY(check_tape(tape, "ct_tape_watch"));
  CT_TRY(ct__check(t, "ct_tape_watch"));
  if (!ct__is_float(t->dtype)) {
    ct__log(CT_LOG_WARNING, "The dtype of the watched tensor must be floating (e.g. float32), got %s",
            ct_dtype_name(t->dtype));
    return CT_OK;
  }
  return watch_one(tape, t);
}

ct_status ct_tape_watched_variables(const ct_tape *tape, ct_tensor **out, int cap, int *count) {
  CT_TRY(check_tape(tape, "ct_tape_watched_variables"));
  if (!count) return ct__error(NULL, CT_ERR_NULL, "ct_tape_watched_variables: count is NULL");
  if (cap > 0 && !out) return ct__error(NULL, CT_ERR_NULL, "ct_tape_watched_variables: out is NULL");
  for (int i = 0; i < tape->nwatched && i < cap; ++i) out[i] = tape->watched[i];
  *count = tape->nwatched;
  return CT_OK;
}

ct_status ct_tape_saved_bytes(const ct_tape *tape, uint64_t *bytes) {
  CT_TRY(check_tape(tape, "ct_tape_saved_bytes"));
  if (!bytes) return ct__error(NULL, CT_ERR_NULL, "ct_tape_saved_bytes: bytes is NULL");
  *bytes = tape->saved_bytes;
  return CT_OK;
}

int ct_tape_size(const ct_tape *tape) { return tape && tape->magic == CT_TAPE_MAGIC ? tape->n : -1; }

/* ---- recording -------------------------------------------------------------------------------- */
static const char *op_name(ct_op_id op, const ct_attrs *at) {
  return op == CT_OP_CUSTOM && at->custom ? at->custom->name : ct_ops[op].name;
}

static uint64_t tensor_bytes(const ct_tensor *t) { return (uint64_t)t->size * ct_dtype_size(t->dtype); }

static ct_status save(ct_tape *t, const ct_tensor *x, ct_tensor **slot) {
  /* a variable may be assigned later: keep its current storage under the same id */
  if (x->is_var) CT_TRY(ct__tensor_alias(x, x->rank, x->shape, true, slot));
  else *slot = ct_tensor_retain((ct_tensor *)x);
  t->saved_bytes += tensor_bytes(x);
  return CT_OK;
}

static ct_status record_on(ct_tape *t, ct_op_id op, const ct_tensor *const *in, int n_in, ct_tensor *out,
                           const ct_attrs *at) {
  bool tracked = false;
  for (int i = 0; i < n_in; ++i) {
    const ct_tensor *x = in[i];
    if (x->is_var && x->trainable && t->watch_accessed && ct__is_float(x->dtype) && !idmap_has(&t->tracked, x->id))
      CT_TRY(watch_one(t, x));
    if (ct__is_float(x->dtype) && idmap_has(&t->tracked, x->id)) tracked = true;
  }
  if (!tracked || !ct__is_float(out->dtype)) return CT_OK;
  if (t->n == t->cap) {
    int nc = t->cap ? t->cap * 2 : 64;
    ct_entry *ne = realloc(t->entries, sizeof *ne * (size_t)nc);
    if (!ne) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: growing the record");
    t->entries = ne;
    t->cap = nc;
  }
  ct_entry *e = &t->entries[t->n];
  memset(e, 0, sizeof *e);
  e->in = calloc((size_t)n_in, sizeof *e->in);
  if (!e->in) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: record");
  e->op = op;
  e->n_in = n_in;
  e->at = *at;
  unsigned saves = ct_ops[op].saves;
  ct_status s = CT_OK;
  for (int i = 0; i < n_in && s == CT_OK; ++i) {
    ct_slot *sl = &e->in[i];
    sl->id = in[i]->id;
    sl->dtype = in[i]->dtype;
    sl->rank = in[i]->rank;
    sl->is_var = in[i]->is_var;
    memcpy(sl->shape, in[i]->shape, sizeof sl->shape);
    if ((saves & S_ALL) == S_ALL || (i < 3 && (saves & (1u << i)))) s = save(t, in[i], &sl->saved);
  }
  e->out.id = out->id;
  e->out.dtype = out->dtype;
  e->out.rank = out->rank;
  memcpy(e->out.shape, out->shape, sizeof e->out.shape);
  if (s == CT_OK && (saves & S_OUT)) s = save(t, out, &e->out.saved);
  if (s == CT_OK && idmap_put(&t->tracked, out->id, false) < 0)
    s = ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: record");
  if (s != CT_OK) {
    for (int i = 0; i < n_in; ++i) ct_tensor_free(e->in[i].saved);
    ct_tensor_free(e->out.saved);
    free(e->in);
    return s;
  }
  t->n++;
  return CT_OK;
}

ct_status ct__tape_record(ct_op_id op, const ct_tensor *const *in, int n_in, ct_tensor *out, const ct_attrs *at) {
  if (!active_tapes || suspended) return CT_OK;
  /* ops without a gradient by design are never recorded: their results are constants */
  if (ct_ops[op].grad == ct__nograd) {
    ct_grad_fn fn;
    void *user;
    if (ct__grad_lookup(op_name(op, at), &fn, &user) != 1) return CT_OK;
  }
  for (ct_tape *t = active_tapes; t; t = t->next_active) {
    if (t->paused || t->in_gradient || t->used) continue;
    CT_TRY(record_on(t, op, in, n_in, out, at));
  }
  return CT_OK;
}

/* ---- the gradient context for gradient functions ------------------------------------------- */
int ct_grad_ctx_num_inputs(const ct_grad_ctx *g) { return g ? g->e->n_in : 0; }
ct_tensor *ct_grad_ctx_input(const ct_grad_ctx *g, int i) {
  return g && i >= 0 && i < g->e->n_in ? g->e->in[i].saved : NULL;
}
ct_tensor *ct_grad_ctx_output(const ct_grad_ctx *g) { return g ? g->e->out.saved : NULL; }

/* ---- backward ------------------------------------------------------------------------------- */
static ct_status accumulate(idmap *grads, uint64_t id, ct_tensor *g, ct_context *ctx) {
  int i = idmap_put(grads, id, true);
  if (i < 0) {
    ct_tensor_free(g);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient accumulation");
  }
  if (!grads->vals[i]) {
    grads->vals[i] = g;
    return CT_OK;
  }
  ct_tensor *sum;
  ct_status s = ct_add(grads->vals[i], g, &sum);
  ct_tensor_free(g);
  if (s != CT_OK) return s;
  ct_tensor_free(grads->vals[i]);
  grads->vals[i] = sum;
  return CT_OK;
}

static ct_status run_grad_fn(ct_tape *t, const ct_entry *e, const bool *need, const ct_tensor *dy, ct_tensor **dx,
                             bool *skip) {
  const char *name = op_name(e->op, &e->at);
  ct_grad_fn ufn;
  void *user;
  int r = ct__grad_lookup(name, &ufn, &user);
  ct_grad_ctx g = {e, need};
  *skip = false;
  if (r == 2 || (r == 0 && ct_ops[e->op].grad == ct__nograd)) {
    *skip = true;
    return CT_OK;
  }
  ct_status s;
  if (r == 1) s = ufn(&g, dy, dx, user);
  else if (e->op == CT_OP_CUSTOM || !ct_ops[e->op].grad)
    return ct__error(t->ctx, CT_ERR_NO_GRADIENT, "gradient registry has no entry for: %s", name);
  else s = ct_ops[e->op].grad(&g, dy, dx);
  if (s != CT_OK) {
    for (int i = 0; i < e->n_in; ++i) {
      ct_tensor_free(dx[i]);
      dx[i] = NULL;
    }
    if (s != CT_ERR_NO_GRADIENT) {
      /* keep the inner message, say which op's gradient failed */
      char inner[512];
      snprintf(inner, sizeof inner, "%s", ct_errmsg());
      return ct__error(t->ctx, s, "gradient of %s failed: %s", name, inner);
    }
  }
  return s;
}

static ct_status backward(ct_tape *t, ct_tensor *const *targets, int nt, ct_tensor *const *sources, int ns,
                          ct_tensor *const *out_grads, ct_unconnected unconnected, ct_tensor **result) {
  ct_context *ctx = t->ctx;
  idmap reach = {0}, grads = {0};
  ct_status s = CT_OK;
  for (int i = 0; i < ns; ++i) result[i] = NULL;
  /* ids that depend on a source */
  for (int i = 0; i < ns; ++i)
    if (ct__is_float(sources[i]->dtype) && idmap_has(&t->tracked, sources[i]->id) &&
        idmap_put(&reach, sources[i]->id, false) < 0)
      s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
  for (int k = 0; k < t->n && s == CT_OK; ++k) {
    const ct_entry *e = &t->entries[k];
    for (int i = 0; i < e->n_in; ++i)
      if (idmap_has(&reach, e->in[i].id)) {
        if (idmap_put(&reach, e->out.id, false) < 0) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
        break;
      }
  }
  /* seeds */
  for (int i = 0; i < nt && s == CT_OK; ++i) {
    const ct_tensor *y = targets[i];
    if (!ct__is_float(y->dtype) || !idmap_has(&reach, y->id)) continue;
    ct_tensor *seed = NULL;
    if (out_grads && out_grads[i]) {
      const ct_tensor *og = out_grads[i];
      if (og->dtype != y->dtype || og->rank != y->rank || memcmp(og->shape, y->shape, sizeof(int64_t) * (size_t)y->rank)) {
        s = ct__error(ctx, CT_ERR_SHAPE, "output gradient %d does not match its target's shape and dtype", i);
        break;
      }
      seed = ct_tensor_retain((ct_tensor *)og);
    } else {
      s = ct_ones_like(y, &seed);
      if (s != CT_OK) break;
    }
    s = accumulate(&grads, y->id, seed, ctx);
  }
  bool need[64];
  bool *needv = need;
  ct_tensor *dx_small[64];
  ct_tensor **dx = dx_small;
  for (int k = t->n - 1; k >= 0 && s == CT_OK; --k) {
    const ct_entry *e = &t->entries[k];
    int gi = idmap_find(&grads, e->out.id);
    if (gi < 0 || !grads.vals[gi] || !idmap_has(&reach, e->out.id)) continue;
    if (e->n_in > 64) {
      if (needv != need) free(needv);
      if (dx != dx_small) free(dx);
      needv = calloc((size_t)e->n_in, sizeof *needv);
      dx = calloc((size_t)e->n_in, sizeof *dx);
      if (!needv || !dx) {
        s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
        break;
      }
    }
    bool any = false;
    for (int i = 0; i < e->n_in; ++i) {
      needv[i] = ct__is_float(e->in[i].dtype) && idmap_has(&reach, e->in[i].id);
      any |= needv[i];
      dx[i] = NULL;
    }
    if (!any) continue;
    ct_tensor *dy = ct_tensor_retain(grads.vals[gi]);
    bool skip;
    s = run_grad_fn(t, e, needv, dy, dx, &skip);
    ct_tensor_free(dy);
    if (s != CT_OK || skip) continue;
    for (int i = 0; i < e->n_in && s == CT_OK; ++i) {
      if (!dx[i]) continue;
      if (!needv[i]) {
        ct_tensor_free(dx[i]);
        dx[i] = NULL;
        continue;
      }
      const ct_slot *sl = &e->in[i];
      ct_tensor *g = dx[i];
      dx[i] = NULL;
      if (g->rank != sl->rank || memcmp(g->shape, sl->shape, sizeof(int64_t) * (size_t)sl->rank)) {
        ct_tensor *r;
        s = ct__sum_to_shape(g, sl->rank, sl->shape, &r);
        ct_tensor_free(g);
        if (s != CT_OK) break;
        g = r;
      }
      if (g->dtype != sl->dtype) {
        ct_tensor *c;
        s = ct_cast(g, sl->dtype, &c);
        ct_tensor_free(g);
        if (s != CT_OK) break;
        g = c;
      }
      s = accumulate(&grads, sl->id, g, ctx);
    }
    for (int i = 0; i < e->n_in; ++i) ct_tensor_free(dx[i]);
    /* an intermediate's gradient is complete once its producer is processed */
    bool is_source = false;
    for (int i = 0; i < ns; ++i) is_source |= sources[i]->id == e->out.id;
    if (!is_source) {
      ct_tensor_free(grads.vals[gi]);
      grads.vals[gi] = NULL;
    }
  }
  if (needv != need) free(needv);
  if (dx != dx_small) free(dx);
  for (int i = 0; i < ns && s == CT_OK; ++i) {
    int gi = idmap_find(&grads, sources[i]->id);
    if (gi >= 0 && grads.vals[gi]) result[i] = ct_tensor_retain(grads.vals[gi]);
    else if (unconnected == CT_UNCONNECTED_ZERO) s = ct_zeros_like(sources[i], &result[i]);
  }
  if (s != CT_OK)
    for (int i = 0; i < ns; ++i) {
      ct_tensor_free(result[i]);
      result[i] = NULL;
    }
  idmap_free(&reach);
  idmap_free(&grads);
  return s;
}

static ct_status gradient_common(ct_tape *tape, ct_tensor *const *targets, int nt, ct_tensor *const *sources, int ns,
                                 ct_tensor *const *out_grads, ct_unconnected unconnected, ct_tensor **grads, bool last,
                                 const char *fn) {
  CT_TRY(check_tape(tape, fn));
  if (!grads && ns > 0) return ct__error(tape->ctx, CT_ERR_NULL, "%s: grads is NULL", fn);
  for (int i = 0; i < ns; ++i) grads[i] = NULL;
  if (nt < 0 || ns < 0 || (nt > 0 && !targets) || (ns > 0 && !sources))
    return ct__error(tape->ctx, CT_ERR_NULL, "%s: targets/sources missing", fn);
  if (unconnected != CT_UNCONNECTED_NONE && unconnected != CT_UNCONNECTED_ZERO)
    return ct__error(tape->ctx, CT_ERR_INVALID, "%s: bad unconnected mode %d", fn, (int)unconnected);
  for (int i = 0; i < nt; ++i) {
    CT_TRY(ct__check(targets[i], fn));
    if (out_grads && out_grads[i]) CT_TRY(ct__check(out_grads[i], fn));
  }
  for (int i = 0; i < ns; ++i) CT_TRY(ct__check(sources[i], fn));
  if (tape->used)
    return ct__error(tape->ctx, CT_ERR_TAPE_USED,
                     "a non-persistent tape can compute gradients only once; create it with persistent = true to "
                     "call gradient again");
  tape->in_gradient = true;
  ct_status s = backward(tape, targets, nt, sources, ns, out_grads, unconnected, grads);
  tape->in_gradient = false;
  if (last && !tape->persistent) {
    tape->used = true;
    release_entries(tape);
    idmap_free(&tape->tracked);
  }
  return s;
}

ct_status ct_tape_gradient(ct_tape *tape, ct_tensor *const *targets, int n_targets, ct_tensor *const *sources,
                           int n_sources, ct_tensor *const *output_grads, ct_unconnected unconnected, ct_tensor **grads) {
  return gradient_common(tape, targets, n_targets, sources, n_sources, output_grads, unconnected, grads, true,
                         "ct_tape_gradient");
}

ct_status ct_tape_gradient1(ct_tape *tape, const ct_tensor *target, const ct_tensor *source, ct_tensor **grad) {
  if (!grad) return ct__error(NULL, CT_ERR_NULL, "ct_tape_gradient1: grad is NULL");
  ct_tensor *t = (ct_tensor *)target, *s = (ct_tensor *)source;
  return ct_tape_gradient(tape, &t, 1, &s, 1, NULL, CT_UNCONNECTED_NONE, grad);
}

ct_status ct_tape_gradient_named(ct_tape *tape, ct_tensor *const *targets, int n_targets, const ct_named_tensor *sources,
                                 int n_sources, ct_unconnected unconnected, ct_named_tensor *grads) {
  if (!grads && n_sources > 0) return ct__error(NULL, CT_ERR_NULL, "ct_tape_gradient_named: grads is NULL");
  if (!sources && n_sources > 0) return ct__error(NULL, CT_ERR_NULL, "ct_tape_gradient_named: sources is NULL");
  ct_tensor **src = calloc((size_t)(n_sources > 0 ? n_sources : 1), sizeof *src);
  ct_tensor **res = calloc((size_t)(n_sources > 0 ? n_sources : 1), sizeof *res);
  if (!src || !res) {
    free(src);
    free(res);
    return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct_tape_gradient_named");
  }
  for (int i = 0; i < n_sources; ++i) src[i] = sources[i].tensor;
  ct_status s = ct_tape_gradient(tape, targets, n_targets, src, n_sources, NULL, unconnected, res);
  for (int i = 0; i < n_sources; ++i) {
    grads[i].name = sources[i].name;
    grads[i].tensor = s == CT_OK ? res[i] : NULL;
  }
  free(src);
  free(res);
  return s;
}

/* ---- jacobians ------------------------------------------------------------------------------ */
static ct_status onehot_grad(const ct_tensor *y, int64_t row_len, int64_t j, ct_tensor **out) {
  /* ones at position j of every row of length row_len */
  size_t es = ct_dtype_size(y->dtype);
  unsigned char *h = calloc((size_t)(y->size ? y->size : 1), es);
  if (!h) return ct__error(y->ctx, CT_ERR_OUT_OF_MEMORY, "jacobian");
  for (int64_t r = 0; r * row_len + j < y->size; ++r) {
    int64_t k = r * row_len + j;
    if (y->dtype == CT_FLOAT32) ((float *)h)[k] = 1.0f;
    else ((double *)h)[k] = 1.0;
  }
  ct_status s = ct_tensor_from_data(y->ctx, y->dtype, y->rank, y->shape, h, out);
  free(h);
  return s;
}

static ct_status jacobian_impl(ct_tape *tape, const ct_tensor *y, const ct_tensor *x, ct_unconnected unconnected,
                               bool batch, ct_tensor **out, const char *fn) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(check_tape(tape, fn));
  CT_TRY(ct__check(y, fn));
  CT_TRY(ct__check(x, fn));
  if (!ct__is_float(y->dtype)) return ct__error(tape->ctx, CT_ERR_DTYPE, "%s: target must be floating", fn);
  if (batch && (y->rank < 1 || x->rank < 1 || y->shape[0] != x->shape[0]))
    return ct__error(tape->ctx, CT_ERR_SHAPE, "%s: target and source need the same leading batch extent", fn);
  int64_t B = batch ? y->shape[0] : 1;
  int64_t rows = batch ? (B ? y->size / B : 0) : y->size;
  if (y->rank + x->rank - (batch ? 1 : 0) > CT_MAX_RANK)
    return ct__error(tape->ctx, CT_ERR_SHAPE, "%s: result rank exceeds 8", fn);
  ct_tensor **parts = calloc((size_t)(rows ? rows : 1), sizeof *parts);
  if (!parts) return ct__error(tape->ctx, CT_ERR_OUT_OF_MEMORY, "%s", fn);
  ct_status s = CT_OK;
  bool any = false;
  for (int64_t j = 0; j < rows && s == CT_OK; ++j) {
    ct_tensor *og = NULL, *g = NULL;
    s = onehot_grad(y, batch ? rows : y->size, j, &og);
    ct_tensor *yy = (ct_tensor *)y, *xx = (ct_tensor *)x;
    if (s == CT_OK)
      s = gradient_common(tape, &yy, 1, &xx, 1, &og, CT_UNCONNECTED_NONE, &g, j == rows - 1, fn);
    ct_tensor_free(og);
    if (s == CT_OK && !g) s = ct_zeros_like(x, &g);
    else if (s == CT_OK) any = true;
    parts[j] = g;
  }
  if (s == CT_OK && !any && unconnected == CT_UNCONNECTED_NONE) {
    ct_tensor_free_n(parts, (int)rows);
    free(parts);
    return CT_OK; /* NULL: unconnected */
  }
  int64_t shape[CT_MAX_RANK];
  int r = 0;
  if (batch) {
    shape[r++] = B;
    for (int i = 1; i < y->rank; ++i) shape[r++] = y->shape[i];
    for (int i = 1; i < x->rank; ++i) shape[r++] = x->shape[i];
  } else {
    for (int i = 0; i < y->rank; ++i) shape[r++] = y->shape[i];
    for (int i = 0; i < x->rank; ++i) shape[r++] = x->shape[i];
  }
  if (s == CT_OK) {
    ct_tensor *st = NULL;
    if (rows == 0) s = ct_zeros(tape->ctx, x->dtype, r, shape, out);
    else {
      s = ct_stack(parts, (int)rows, batch ? 1 : 0, &st);
      if (s == CT_OK) s = ct_reshape(st, r, shape, out);
    }
    ct_tensor_free(st);
  }
  ct_tensor_free_n(parts, (int)rows);
  free(parts);
  return s;
}

ct_status ct_tape_jacobian(ct_tape *tape, const ct_tensor *target, const ct_tensor *source, ct_unconnected unconnected,
                           ct_tensor **out) {
  return jacobian_impl(tape, target, source, unconnected, false, out, "ct_tape_jacobian");
}

ct_status ct_tape_batch_jacobian(ct_tape *tape, const ct_tensor *target, const ct_tensor *source,
                                 ct_unconnected unconnected, ct_tensor **out) {
  return jacobian_impl(tape, target, source, unconnected, true, out, "ct_tape_batch_jacobian");
}
