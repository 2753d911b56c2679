/* tape.c — gradient tapes: what is recorded, the backward pass, jacobians.
 *
 * Recording: every op goes through ct__run, which calls ct__tape_record. Each active tape on the
 * thread first watches the trainable variables the op reads (when it watches accessed variables),
 * then records the op when one of its floating inputs is tracked (watched, or produced by an op the
 * tape recorded) and its output is floating. Ops without a gradient by design are never recorded:
 * their results are constants. A record keeps the input ids, shapes and which inputs were tracked,
 * and holds only the tensors the op's gradient reads (the table's `saves`, narrowed below for ops
 * whose input gradients read different things).
 *
 * Backward: walk the records in reverse, from the targets, calling each op's gradient function
 * (built from ordinary ops, so outer tapes record it, and so does the tape itself when it is
 * persistent and recording), summing broadcast gradients back to each
 * input's shape in one place, and accumulating per id. */
#include "ct_internal.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CT_TAPE_MAGIC CT_HANDLE_TAG(CT_HANDLE_TAPE)

/* ---- id set / id -> tensor map (open addressing, key 0 = empty) ---------------------------- */
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

/* Inserts id; returns the slot index or -1 when out of memory. Indices change when the map
 * grows: find again after any other insertion. */
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
  const void *owner; /* the creating thread (address of its list head) */
  bool persistent, watch_accessed;
  bool active;       /* on the owner thread's list (between begin and end) */
  bool paused;       /* stop_recording */
  bool in_gradient;  /* computing its own gradient: records it only when persistent and recording */
  bool used;         /* a non-persistent tape after its gradient */
  idmap tracked;     /* ids that are watched or depend on a watched tensor */
  ct_tensor **watched;
  int nwatched, capwatched;
  void **blocks;      /* the records: ct_entry[ENTRY_BLOCK] each (never moved once written) */
  int n, nblocks, capblocks;
  void **slot_blocks; /* the records' input slots: ct_slot[SLOT_BLOCK] each */
  int nslot_blocks, capslot_blocks, slots_used;
  idmap saved_bufs;  /* device buffers the records hold (keys are buffer addresses) */
  bool forward;      /* a forward-mode tape (ct_tape_begin_forward): keeps tangents, no records */
  idmap tangents;    /* forward mode: id -> tangent */
  uint64_t saved_bytes;
  struct ct_tape *next_active;
};

/* Records and their input slots live in fixed-size blocks: appending never moves or copies
 * them. Freed blocks go to a small process-wide cache that the next tape takes them from, so a
 * training loop that begins a tape per step does not return its record memory to the system and
 * fault it in again every step. A record with more than SLOT_BLOCK inputs gets its own slots. */
#define ENTRY_BLOCK 128
#define SLOT_BLOCK 512
#define CACHED_BLOCKS 32 /* per kind: about 1.8 MB of records and 1.5 MB of slots */

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static void *cache[2][CACHED_BLOCKS]; /* [0] record blocks, [1] slot blocks */
static int n_cached[2];

static void *block_get(int kind, size_t bytes) {
  void *b = NULL;
  pthread_mutex_lock(&cache_mu);
  if (n_cached[kind]) b = cache[kind][--n_cached[kind]];
  pthread_mutex_unlock(&cache_mu);
  return b ? b : malloc(bytes);
}

static void block_put(int kind, void *b) {
  pthread_mutex_lock(&cache_mu);
  if (n_cached[kind] < CACHED_BLOCKS) {
    cache[kind][n_cached[kind]++] = b;
    b = NULL;
  }
  pthread_mutex_unlock(&cache_mu);
  free(b);
}

static ct_entry *entry_at(const ct_tape *t, int k) { return (ct_entry *)t->blocks[k / ENTRY_BLOCK] + k % ENTRY_BLOCK; }

/* The tapes of this thread, most recent first. */
static _Thread_local ct_tape *active_tapes;
static _Thread_local int suspended;

void ct__tapes_suspend(int delta) { suspended += delta; }

static ct_status check_tape(const ct_tape *t, const char *fn) {
  return CT_CHECK_HANDLE(t, CT_HANDLE_TAPE, fn);
}

static ct_status check_owner(const ct_tape *t, const char *fn) {
  if (t->owner != (const void *)&active_tapes)
    return ct__error(t->ctx, CT_ERR_INVALID, "%s: the tape belongs to another thread (tapes are per thread)", fn);
  return CT_OK;
}

ct_tape_options ct_tape_default_options(void) {
  ct_tape_options o = {false, true};
  return o;
}

ct_status ct_tape_begin(ct_context *ctx, const ct_tape_options *opts, ct_tape **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_tape_begin: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_tape_begin"));
  ct_tape *t = ct__handle_new(CT_HANDLE_TAPE, sizeof *t);
  if (!t) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a tape");
  ct_tape_options o = opts ? *opts : ct_tape_default_options();
  t->ctx = ctx;
  ctb_context_retain(ctx);
  t->owner = &active_tapes;
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
  if (tape->active) CT_TRY(check_owner(tape, "ct_tape_end"));
  unlink_active(tape);
  return CT_OK;
}

ct_status ct_tape_stop_recording(ct_tape *tape) {
  CT_TRY(check_tape(tape, "ct_tape_stop_recording"));
  if (!tape->active || tape->paused)
    return ct__error(tape->ctx, CT_ERR_INVALID, "ct_tape_stop_recording: the tape is not recording (%s)",
                     tape->active ? "already stopped" : "it was ended");
  CT_TRY(check_owner(tape, "ct_tape_stop_recording"));
  tape->paused = true;
  return CT_OK;
}

ct_status ct_tape_resume_recording(ct_tape *tape) {
  CT_TRY(check_tape(tape, "ct_tape_resume_recording"));
  if (!tape->paused)
    return ct__error(tape->ctx, CT_ERR_INVALID, "ct_tape_resume_recording: recording was not stopped");
  CT_TRY(check_owner(tape, "ct_tape_resume_recording"));
  tape->paused = false;
  return CT_OK;
}

/* The function behind a record of a custom-gradient function (lib/custom_gradient.c), or NULL. */
static ct_closure *closure_of(const ct_entry *e) {
  return e->op == CT_OP_CUSTOM && e->at->family == CT_AT_CUSTOM && e->at->custom.rec ? e->at->custom.rec->closure
                                                                                      : NULL;
}

static void drop_entry(ct_entry *e) {
  for (int i = 0; i < e->n_in; ++i) ct_tensor_free(e->in[i].saved);
  ct_tensor_free(e->out.saved);
  ct__closure_release(closure_of(e));
  if (e->n_slots > SLOT_BLOCK) free(e->in);
}

static void release_entries(ct_tape *t) {
  for (int i = 0; i < t->n; ++i) drop_entry(entry_at(t, i));
  for (int i = 0; i < t->nblocks; ++i) block_put(0, t->blocks[i]);
  for (int i = 0; i < t->nslot_blocks; ++i) block_put(1, t->slot_blocks[i]);
  free(t->blocks);
  free(t->slot_blocks);
  t->blocks = NULL;
  t->slot_blocks = NULL;
  t->n = t->nblocks = t->capblocks = 0;
  t->nslot_blocks = t->capslot_blocks = t->slots_used = 0;
  idmap_free(&t->saved_bufs);
  t->saved_bytes = 0;
}

static void release_all(ct_tape *t) {
  release_entries(t);
  idmap_free(&t->tracked);
  idmap_free(&t->tangents);
  for (int i = 0; i < t->nwatched; ++i) ct_tensor_free(t->watched[i]);
  free(t->watched);
  t->watched = NULL;
  t->nwatched = t->capwatched = 0;
}

ct_status ct_tape_reset(ct_tape *tape) {
  CT_TRY(check_tape(tape, "ct_tape_reset"));
  if (tape->in_gradient)
    return ct__error(tape->ctx, CT_ERR_INVALID, "ct_tape_reset: the tape is computing a gradient");
  release_all(tape);
  tape->used = false;
  return CT_OK;
}

void ct_tape_free(ct_tape *tape) {
  if (!tape || tape->magic != CT_TAPE_MAGIC) return;
  if (tape->in_gradient) {
    ct__log(CT_LOG_ERROR, "ct_tape_free: the tape is computing a gradient; free it after gradient returns");
    return;
  }
  if (tape->active && tape->owner != (const void *)&active_tapes) {
    /* unlinking it from another thread's list would race with that thread: refuse loudly */
    ct__log(CT_LOG_ERROR, "ct_tape_free: the tape is still recording on another thread; end it on that thread first");
    return;
  }
  unlink_active(tape);
  release_all(tape);
  ct_context *ctx = tape->ctx;
  ct__handle_free(tape);
  ctb_context_release(ctx);
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
  if (t->ctx != tape->ctx)
    return ct__error(tape->ctx, CT_ERR_CONTEXT, "ct_tape_watch: the tensor belongs to another context than the tape");
  if (!ct__is_floating(t->dtype)) {
    ct__log(CT_LOG_WARNING, "The dtype of the watched tensor must be floating (e.g. float32), got %s",
            ct_dtype_name(t->dtype));
    return CT_OK;
  }
  return watch_one(tape, t);
}

ct_status ct_tape_watched_variables(const ct_tape *tape, ct_tensor **out, int cap, int *count) {
  CT_TRY(check_tape(tape, "ct_tape_watched_variables"));
  if (!count) return ct__error(NULL, CT_ERR_NULL, "ct_tape_watched_variables: count is NULL");
  if (cap < 0) return ct__error(NULL, CT_ERR_INVALID, "ct_tape_watched_variables: negative capacity %d", cap);
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
  return at->family == CT_AT_CUSTOM && at->custom.rec ? at->custom.rec->name : ct_ops[op].name;
}

/* Holds x for the backward pass. Each device buffer is counted once in saved_bytes, however many
 * records hold it (relu's output is also the next matmul's input). */
static bool count_saved(ct_tape *t, const ct_tensor *x) {
  if (!x || !x->buf) return true;
  uint64_t key = (uint64_t)(uintptr_t)x->buf;
  if (idmap_has(&t->saved_bufs, key)) return true;
  if (idmap_put(&t->saved_bufs, key, false) < 0) return false;
  t->saved_bytes += ctb_bytes(x->buf);
  return true;
}

static ct_status save(ct_tape *t, const ct_tensor *x, ct_tensor **slot) {
  /* a variable may be assigned later: keep its current storage under the same id */
  if (x->is_var) CT_TRY(ct__tensor_alias(x, x->rank, x->shape, true, slot));
  else *slot = ct_tensor_retain((ct_tensor *)x);
  if (!count_saved(t, x)) {
    ct_tensor_free(*slot);
    *slot = NULL;
    return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: saving a tensor");
  }
  return CT_OK;
}

/* Where the records end: what a failed gradient computation that recorded itself rolls back to. */
typedef struct {
  int n, nslot_blocks, slots_used;
} tape_mark;

static tape_mark mark_of(const ct_tape *t) {
  tape_mark m = {t->n, t->nslot_blocks, t->slots_used};
  return m;
}

static void truncate_to(ct_tape *t, tape_mark m) {
  if (t->n == m.n) return;
  for (int i = m.n; i < t->n; ++i) drop_entry(entry_at(t, i));
  t->n = m.n;
  while (t->nslot_blocks > m.nslot_blocks) block_put(1, t->slot_blocks[--t->nslot_blocks]);
  t->slots_used = m.slots_used;
  /* count the buffers the remaining records hold again */
  idmap_free(&t->saved_bufs);
  t->saved_bytes = 0;
  for (int k = 0; k < t->n; ++k) {
    const ct_entry *e = entry_at(t, k);
    for (int i = 0; i < e->n_in; ++i) (void)count_saved(t, e->in[i].saved);
    (void)count_saved(t, e->out.saved);
  }
}

/* What the record must hold: the table's `saves`, narrowed where each input's gradient reads
 * something different, so that an input nobody differentiates against keeps nothing alive
 * (x @ W with constant data x keeps x for dW, not W). */
static unsigned saves_for(ct_op_id op, const ct_slot *in, bool user_gradient) {
  if (user_gradient) return S_ALL; /* a registered gradient may read anything */
  const ct_op_info *info = &ct_ops[op];
  unsigned s = info->saves_always;
  for (int i = 0; i < 2; ++i)
    if (info->saves_if[i] && in[i].tracked) s |= info->saves_if[i];
  return s;
}

/* Grows a block list by one block of `bytes` (cache `kind`); false when out of memory. */
static bool add_block(void ***list, int *n, int *cap, int kind, size_t bytes) {
  if (*n == *cap) {
    int nc = *cap ? *cap * 2 : 8;
    void **nl = realloc(*list, sizeof *nl * (size_t)nc);
    if (!nl) return false;
    *list = nl;
    *cap = nc;
  }
  void *b = block_get(kind, bytes);
  if (!b) return false;
  (*list)[(*n)++] = b;
  return true;
}

/* Zeroed room for n slots. */
static ct_slot *alloc_slots(ct_tape *t, int n) {
  if (n > SLOT_BLOCK) return calloc((size_t)n, sizeof(ct_slot));
  if (!t->nslot_blocks || t->slots_used + n > SLOT_BLOCK) {
    if (!add_block(&t->slot_blocks, &t->nslot_blocks, &t->capslot_blocks, 1, sizeof(ct_slot) * SLOT_BLOCK))
      return NULL;
    t->slots_used = 0;
  }
  ct_slot *sl = (ct_slot *)t->slot_blocks[t->nslot_blocks - 1] + t->slots_used;
  t->slots_used += n;
  memset(sl, 0, sizeof *sl * (size_t)n);
  return sl;
}

/* What a record of a custom-gradient function keeps: inputs [0, n_diff) may be differentiated,
 * the others are kept for the gradient only; keep[i] says which inputs it holds. */
typedef struct {
  int n_diff;
  const bool *keep;
  bool keep_out;
} record_plan;

static ct_status record_on(ct_tape *t, ct_op_id op, const ct_tensor *const *in, int n_in, ct_tensor *out,
                           const ct_attrs *at, bool differentiable, bool user_gradient, const record_plan *plan) {
  bool tracked = false;
  int n_diff = plan ? plan->n_diff : n_in;
  for (int i = 0; i < n_diff; ++i) {
    const ct_tensor *x = in[i];
    if (x->is_var && x->trainable && t->watch_accessed && ct__is_floating(x->dtype) && !idmap_has(&t->tracked, x->id))
      CT_TRY(watch_one(t, x));
    if (!tracked && ct__is_floating(x->dtype) && idmap_has(&t->tracked, x->id)) tracked = true;
  }
  if (!differentiable || !tracked || !ct__is_floating(out->dtype)) return CT_OK;
  if (t->n == t->nblocks * ENTRY_BLOCK &&
      !add_block(&t->blocks, &t->nblocks, &t->capblocks, 0, sizeof(ct_entry) * ENTRY_BLOCK))
    return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: growing the record");
  ct_entry *e = entry_at(t, t->n);
  memset(e, 0, sizeof *e);
  /* the attributes (only their family's bytes) go into slots after the inputs; ops without
   * attributes share one empty set */
  static const ct_attrs no_attrs = {.family = CT_AT_NONE};
  size_t at_bytes = at->family == CT_AT_NONE ? 0 : ct__attrs_size(at->family);
  int n_slots = n_in + (int)((at_bytes + sizeof(ct_slot) - 1) / sizeof(ct_slot));
  e->in = alloc_slots(t, n_slots);
  if (!e->in) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: record");
  e->op = op;
  e->n_in = n_in;
  e->n_slots = n_slots;
  if (at_bytes) memcpy(&e->in[n_in], at, at_bytes);
  e->at = at_bytes ? (const ct_attrs *)(void *)&e->in[n_in] : &no_attrs;
  for (int i = 0; i < n_in; ++i) {
    ct_slot *sl = &e->in[i];
    sl->id = in[i]->id;
    sl->dtype = in[i]->dtype;
    sl->rank = in[i]->rank;
    sl->is_var = in[i]->is_var;
    sl->tracked = i < n_diff && ct__is_floating(in[i]->dtype) && idmap_has(&t->tracked, in[i]->id);
    memcpy(sl->shape, in[i]->shape, sizeof sl->shape);
  }
  unsigned saves = plan ? (plan->keep_out ? S_OUT : 0) : saves_for(op, e->in, user_gradient);
  ct_status s = CT_OK;
  for (int i = 0; i < n_in && s == CT_OK; ++i)
    if (plan ? plan->keep[i] : (saves & S_ALL) == S_ALL || (i < 3 && (saves & (1u << i))))
      s = save(t, in[i], &e->in[i].saved);
  e->out.id = out->id;
  e->out.dtype = out->dtype;
  e->out.rank = out->rank;
  e->out.tracked = true;
  memcpy(e->out.shape, out->shape, sizeof e->out.shape);
  if (s == CT_OK && (saves & S_OUT)) s = save(t, out, &e->out.saved);
  if (s == CT_OK && idmap_put(&t->tracked, out->id, false) < 0)
    s = ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tape: record");
  if (s != CT_OK) {
    drop_entry(e);
    if (n_slots <= SLOT_BLOCK) t->slots_used -= n_slots; /* the last slots handed out */
    return s;
  }
  t->n++;
  ct__closure_retain(closure_of(e));
  return CT_OK;
}

/* ---- forward mode ----------------------------------------------------------------------------
 * A forward-mode tape records an op like any tape (the record says which inputs were tracked and
 * holds what the op's gradient reads), then turns the record into its output's tangent and drops
 * it. The tangent is the product of the op's jacobian with its inputs' tangents, taken from the
 * op's own gradient function (the gradient is linear in the output gradient u, so
 * J v = d/du sum_i <dx_i(u), v_i>): every differentiable op has a JVP, and the JVP's ops are
 * ordinary ops that other tapes record. */
static ct_status fit_to_input(const ct_tape *t, const ct_entry *e, int i, ct_tensor **g, bool batched);
static ct_status run_grad_fn(ct_tape *t, const ct_entry *e, const bool *need, const ct_tensor *dy, ct_tensor **dx,
                             bool *skip, bool batched, const ct_grad_ctx *mask);

static ct_tensor *tangent_of(const ct_tape *t, uint64_t id) {
  int i = idmap_find(&t->tangents, id);
  return i >= 0 ? t->tangents.vals[i] : NULL;
}

static ct_status forward_step(ct_tape *t, const ct_entry *e) {
  int n = e->n_in;
  bool *need = calloc((size_t)n, sizeof *need), any = false;
  ct_tensor **dx = calloc((size_t)n, sizeof *dx);
  if (!need || !dx) {
    free(need);
    free(dx);
    return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "forward mode");
  }
  for (int i = 0; i < n; ++i) any |= need[i] = e->in[i].tracked && tangent_of(t, e->in[i].id);
  ct_status s = CT_OK;
  ct_tape *inner = NULL;
  ct_tensor *u = NULL, *total = NULL, *jvp = NULL;
  if (any) {
    t->paused = true; /* its own JVP computation is not an op of the function */
    ct_tape_options o = {false, false};
    bool skip = false;
    s = ct_tape_begin(t->ctx, &o, &inner);
    if (s == CT_OK) s = ct_zeros(t->ctx, e->out.dtype, e->out.rank, e->out.shape, &u);
    if (s == CT_OK) s = ct_tape_watch(inner, u);
    if (s == CT_OK) s = run_grad_fn(t, e, need, u, dx, &skip, false, NULL);
    for (int i = 0; i < n && s == CT_OK && !skip; ++i) {
      if (!need[i] || !dx[i]) continue;
      ct_tensor *p = NULL, *sm = NULL, *acc = NULL;
      s = fit_to_input(t, e, i, &dx[i], false);
      if (s == CT_OK) s = ct_mul(dx[i], tangent_of(t, e->in[i].id), &p);
      if (s == CT_OK) s = ct_sum(p, NULL, 0, false, &sm);
      if (s == CT_OK && total) {
        s = ct_add(total, sm, &acc);
        ct_tensor_free(total);
        total = acc;
      } else if (s == CT_OK) total = ct_tensor_retain(sm);
      ct_tensor_free(p);
      ct_tensor_free(sm);
    }
    if (inner) ct_tape_end(inner);
    if (s == CT_OK && total) s = ct_tape_gradient1(inner, total, u, &jvp);
    if (s == CT_OK && !jvp && !skip) s = ct_zeros_like(u, &jvp); /* connected, with a zero derivative */
    t->paused = false;
  }
  if (s == CT_OK && jvp) {
    int k = idmap_put(&t->tangents, e->out.id, true);
    if (k < 0) s = ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "forward mode: a tangent");
    else {
      ct_tensor_free(t->tangents.vals[k]);
      t->tangents.vals[k] = jvp;
      jvp = NULL;
    }
  }
  ct_tensor_free_n(dx, n);
  free(dx);
  free(need);
  ct_tensor_free(u);
  ct_tensor_free(total);
  ct_tensor_free(jvp);
  ct_tape_free(inner);
  return s;
}

/* After an op was offered to every tape: the forward-mode tapes that recorded it compute its
 * tangent (after the others recorded it, so that they see the JVP's ops after the op). */
static ct_status forward_pending(void) {
  ct_status s = CT_OK;
  for (ct_tape *t = active_tapes; t; t = t->next_active) {
    if (!t->forward || t->paused || t->n == 0) continue;
    ct_status st = forward_step(t, entry_at(t, t->n - 1));
    release_entries(t);
    if (s == CT_OK) s = st;
  }
  return s;
}

/* ---- variable watchers: the trainable variables a custom-gradient function reads ------------- */
static _Thread_local ct_var_watcher *watchers;

void ct__watcher_push(ct_var_watcher *w) {
  memset(w, 0, sizeof *w);
  w->level = suspended;
  w->outer = watchers;
  watchers = w;
}

void ct__watcher_pop(ct_var_watcher *w) {
  if (watchers == w) watchers = w->outer;
}

void ct__watcher_free(ct_var_watcher *w) {
  ct_tensor_free_n(w->vars, w->n);
  free(w->vars);
  w->vars = NULL;
  w->n = w->cap = 0;
}

/* Every watcher of the current recording level notes the trainable floating variables among the
 * inputs, each once. */
static ct_status note_reads(const ct_tensor *const *in, int n_in) {
  for (ct_var_watcher *w = watchers; w; w = w->outer) {
    if (w->level != suspended) continue;
    for (int i = 0; i < n_in; ++i) {
      const ct_tensor *x = in[i];
      if (!x->is_var || !x->trainable || !ct__is_floating(x->dtype)) continue;
      bool seen = false;
      for (int k = 0; k < w->n && !seen; ++k) seen = w->vars[k]->id == x->id;
      if (seen) continue;
      if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 8;
        ct_tensor **nv = realloc(w->vars, sizeof *nv * (size_t)nc);
        if (!nv) return ct__error(x->ctx, CT_ERR_OUT_OF_MEMORY, "noting the variables a function reads");
        w->vars = nv;
        w->cap = nc;
      }
      w->vars[w->n++] = ct_tensor_retain((ct_tensor *)x);
    }
  }
  return CT_OK;
}

ct_status ct__tape_record_closure(const ct_tensor *const *in, int n_in, int n_diff, const bool *keep, bool keep_out,
                                  ct_tensor *out, const ct_attrs *at) {
  CT_TRY(note_reads(in, n_diff));
  if (!active_tapes || suspended) return CT_OK;
  record_plan plan = {n_diff, keep, keep_out};
  for (ct_tape *t = active_tapes; t; t = t->next_active) {
    if (t->paused || t->used || (t->in_gradient && !t->persistent)) continue;
    CT_TRY(record_on(t, CT_OP_CUSTOM, in, n_in, out, at, true, true, &plan));
  }
  return forward_pending();
}

bool ct__tapes_recording(void) {
  if (suspended) return false;
  for (ct_tape *t = active_tapes; t; t = t->next_active)
    if (!(t->paused || t->used || (t->in_gradient && !t->persistent))) return true;
  return false;
}

ct_status ct__tape_record(ct_op_id op, const ct_tensor *const *in, int n_in, ct_tensor *out, const ct_attrs *at) {
  if (watchers) CT_TRY(note_reads(in, n_in));
  if (!active_tapes || suspended) return CT_OK;
  /* an op without a gradient by design is never recorded (its result is a constant) unless the
   * user registered one; variables it reads are still watched */
  ct_grad_fn fn;
  void *user;
  int reg = ct__grad_lookup(op_name(op, at), &fn, &user);
  bool differentiable = reg == 1 || (reg == 0 && ct_ops[op].grad != ct__nograd);
  for (ct_tape *t = active_tapes; t; t = t->next_active) {
    /* a persistent tape that computes a gradient while it records records that computation too
     * (TensorFlow's rule: one persistent tape gives higher derivatives) */
    if (t->paused || t->used || (t->in_gradient && !t->persistent)) continue;
    CT_TRY(record_on(t, op, in, n_in, out, at, differentiable, reg == 1, NULL));
  }
  return forward_pending();
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

/* Whether a record's gradient is the table's own function (no registered gradient, no closure). */
static bool builtin_gradient(const ct_entry *e) {
  ct_grad_fn fn = NULL;
  void *user = NULL;
  return !closure_of(e) && ct__grad_lookup(op_name(e->op, e->at), &fn, &user) == 0;
}

/* mask: the backward pass's ReLU-mask flags for the op's own gradient function (NULL: none) */
static ct_status run_grad_fn(ct_tape *t, const ct_entry *e, const bool *need, const ct_tensor *dy, ct_tensor **dx,
                             bool *skip, bool batched, const ct_grad_ctx *mask) {
  const char *name = op_name(e->op, e->at);
  ct_grad_fn ufn = NULL;
  void *user = NULL;
  ct_grad_ctx g = {e, need, mask && mask->mask_in0, mask && mask->dy_masked, mask ? mask->masked : NULL};
  *skip = false;
  ct_closure *cl = closure_of(e);
  int r = cl ? 0 : ct__grad_lookup(name, &ufn, &user);
  if (r == 2 || (r == 0 && ct_ops[e->op].grad == ct__nograd)) {
    *skip = true;
    return CT_OK;
  }
  ct_status s;
  if (r == 1) {
    ct__clear_error();
    s = ufn(&g, dy, dx, user);
    if (s != CT_OK && !ct_errmsg()[0]) /* the user's function said nothing: say which function failed */
      ct__error(t->ctx, s, "the gradient function registered for %s (ct_register_gradient) returned %s without a "
                "message", name, ct_status_name(s));
  } else if (cl) {
    ct__clear_error();
    s = ct__closure_gradient(cl, e, need, dy, dx);
  } else if (!ct_ops[e->op].grad)
    return ct__error(t->ctx, CT_ERR_NO_GRADIENT, "gradient registry has no entry for: %s", name);
  else s = batched ? ct__grad_batched(&g, dy, dx) : ct_ops[e->op].grad(&g, dy, dx);
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

/* Brings an input gradient to the input's shape (summing broadcast axes) and dtype; a batch of
 * gradients (a jacobian's) to [K] + the input's shape. */
static ct_status fit_to_input(const ct_tape *t, const ct_entry *e, int i, ct_tensor **g, bool batched) {
  const ct_slot *sl = &e->in[i];
  ct_tensor *x = *g;
  int keep = batched ? 1 : 0;
  if (x->rank != sl->rank + keep || memcmp(x->shape + keep, sl->shape, sizeof(int64_t) * (size_t)sl->rank)) {
    bool reducible = x->rank >= sl->rank + keep;
    for (int d = 0; reducible && d < sl->rank; ++d) {
      int64_t ge = x->shape[x->rank - sl->rank + d];
      reducible = ge == sl->shape[d] || sl->shape[d] == 1;
    }
    if (!reducible) {
      char s1[96], s2[96];
      ct__shape_str(x->rank, x->shape, s1, sizeof s1);
      ct__shape_str(sl->rank, sl->shape, s2, sizeof s2);
      return ct__error(t->ctx, CT_ERR_SHAPE, "the gradient of %s for input %d has shape %s, which does not reduce to "
                       "the input's shape %s", op_name(e->op, e->at), i, s1, s2);
    }
    ct_tensor *r;
    CT_TRY(batched ? ct__sum_to_shape_batched(x, sl->rank, sl->shape, &r) : ct__sum_to_shape(x, sl->rank, sl->shape, &r));
    ct_tensor_free(x);
    *g = x = r;
  }
  if (x->dtype != sl->dtype) {
    ct_tensor *c;
    CT_TRY(ct_cast(x, sl->dtype, &c));
    ct_tensor_free(x);
    *g = c;
  }
  return CT_OK;
}

/* The ready hook of ct_tape_gradient_with_hook: after the backward step of record k, every source
 * whose first reader is record k has its final gradient. first[i]: that record (-1: none). */
typedef struct {
  ct_grad_ready_fn fn;
  void *user;
  int *first;
  bool *called;
} ready_hook;

static ct_status ready_after(ready_hook *h, int k, const idmap *grads, ct_tensor *const *sources, int ns) {
  if (!h || !h->fn) return CT_OK;
  for (int i = 0; i < ns; ++i) {
    if (h->called[i] || h->first[i] != k) continue;
    int gi = idmap_find(grads, sources[i]->id);
    if (gi < 0 || !grads->vals[gi]) continue;
    h->called[i] = true;
    CT_TRY(ct__lazy_compute(grads->vals[gi])); /* the hook gets a computed gradient, not a pending one */
    CT_TRY(h->fn(i, grads->vals[gi], h->user));
  }
  return CT_OK;
}

/* The gradient of a record for a batch of output gradients dy [K] + out.shape: the op's batching
 * rule when it has one, else its gradient once per element of the batch, stacked. Writes dx[i]
 * shaped [K] + input i's shape (fitted), or leaves it NULL for no gradient. */
static ct_status run_grad_batched(ct_tape *t, const ct_entry *e, const bool *need, const ct_tensor *dy, ct_tensor **dx,
                                  bool *skip) {
  if (builtin_gradient(e) && ct__grad_has_batching_rule(e->op)) return run_grad_fn(t, e, need, dy, dx, skip, true, NULL);
  int64_t K = dy->shape[0];
  int n = e->n_in;
  ct_tensor **parts = calloc((size_t)(n * K + n), sizeof *parts), **dxk = parts + n * K;
  if (!parts) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "jacobian: a batch of gradients");
  bool *got = calloc((size_t)n, sizeof *got);
  ct_status s = got ? CT_OK : ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "jacobian: a batch of gradients");
  int64_t begin[CT_MAX_RANK] = {0}, end[CT_MAX_RANK];
  memcpy(end, dy->shape, sizeof end);
  *skip = false;
  for (int64_t k = 0; k < K && s == CT_OK && !*skip; ++k) {
    ct_tensor *row = NULL, *dyk = NULL;
    begin[0] = k;
    end[0] = k + 1;
    s = ct_slice(dy, begin, end, NULL, &row);
    if (s == CT_OK) s = ct_reshape(row, e->out.rank, e->out.shape, &dyk);
    ct_tensor_free(row);
    if (s == CT_OK) s = run_grad_fn(t, e, need, dyk, dxk, skip, false, NULL);
    ct_tensor_free(dyk);
    for (int i = 0; i < n && s == CT_OK && !*skip; ++i) {
      if (!need[i] || !dxk[i]) continue;
      s = fit_to_input(t, e, i, &dxk[i], false);
      if (s == CT_OK) {
        parts[i * K + k] = dxk[i];
        dxk[i] = NULL;
        got[i] = true;
      }
    }
    for (int i = 0; i < n; ++i) {
      ct_tensor_free(dxk[i]);
      dxk[i] = NULL;
    }
  }
  /* a gradient given for some elements of the batch and not others: zeros for the others */
  for (int i = 0; i < n && s == CT_OK && !*skip; ++i) {
    if (!got[i]) continue;
    for (int64_t k = 0; k < K && s == CT_OK; ++k)
      if (!parts[i * K + k]) s = ct_zeros(t->ctx, e->in[i].dtype, e->in[i].rank, e->in[i].shape, &parts[i * K + k]);
    if (s == CT_OK) s = ct_stack(parts + i * K, (int)K, 0, &dx[i]);
  }
  ct_tensor_free_n(parts, (int)(n * K));
  free(parts);
  free(got);
  return s;
}

/* The ids that depend on a source (reach) and the sources' ids (srcs): the tracked sources, and
 * sources that are themselves targets (d x / d x = 1 whether x was watched or not), then forward
 * through the records. */
static ct_status reach_of(const ct_tape *t, ct_tensor *const *targets, int nt, ct_tensor *const *sources, int ns,
                          idmap *reach, idmap *srcs) {
  ct_context *ctx = t->ctx;
  ct_status s = CT_OK;
  for (int i = 0; i < ns && s == CT_OK; ++i) {
    const ct_tensor *x = sources[i];
    if (idmap_put(srcs, x->id, false) < 0) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
    bool is_target = false;
    for (int k = 0; k < nt; ++k) is_target |= targets[k]->id == x->id;
    if (s == CT_OK && ct__is_floating(x->dtype) && (idmap_has(&t->tracked, x->id) || is_target) &&
        idmap_put(reach, x->id, false) < 0)
      s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
  }
  for (int k = 0; k < t->n && s == CT_OK; ++k) {
    const ct_entry *e = entry_at(t, k);
    for (int i = 0; i < e->n_in; ++i)
      if (e->in[i].tracked && idmap_has(reach, e->in[i].id)) {
        if (idmap_put(reach, e->out.id, false) < 0) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
        break;
      }
  }
  return s;
}

/* The ReLU mask: whether record k's gradient may multiply input 0's gradient by sign(input 0)
 * (ct_grad_ctx's mask_in0). So it may where record k's row can (G_MASK_IN0: MaxPool) and its
 * input is the output of an earlier record whose gradient multiplies every gradient of that
 * output by sign(output) anyway (G_MASK_OUT: Relu and the fused rows with ReLU), both with the
 * table's gradient functions: that factor is 0 or 1 (or NaN, as sign(NaN)) where the output is a
 * ReLU's, so applying it twice changes nothing. Not where that input's gradient is asked for (a
 * source), nor while a tape records the gradient's ops (higher orders). The ReLU's gradient then
 * skips the factor only when its output's gradient is that masked tensor alone (backward keeps
 * their ids). Saves a pass over the activations. */
static bool relu_mask_of(const ct_tape *t, int k, const ct_entry *e, const idmap *srcs) {
  if (!(ct_ops[e->op].gflags & G_MASK_IN0) || e->n_in < 1 || idmap_has(srcs, e->in[0].id) ||
      !builtin_gradient(e) || ct__tapes_recording())
    return false;
  for (int j = k - 1; j >= 0; --j) {
    const ct_entry *p = entry_at(t, j);
    if (p->out.id == e->in[0].id) return (ct_ops[p->op].gflags & G_MASK_OUT) && builtin_gradient(p);
  }
  return false;
}

static ct_status backward(ct_tape *t, ct_tensor *const *targets, int nt, ct_tensor *const *sources, int ns,
                          ct_tensor *const *out_grads, ct_unconnected unconnected, ct_tensor **result, bool batched,
                          ready_hook *hook) {
  ct_context *ctx = t->ctx;
  idmap reach = {0}, grads = {0}, srcs = {0}, masked = {0}; /* masked: ids of gradients with the ReLU mask */
  for (int i = 0; i < ns; ++i) result[i] = NULL;
  if (hook && hook->fn)
    for (int i = 0; i < ns; ++i) {
      hook->first[i] = -1;
      for (int k = 0; k < t->n && hook->first[i] < 0; ++k) {
        const ct_entry *e = entry_at(t, k);
        for (int j = 0; j < e->n_in; ++j)
          if (e->in[j].id == sources[i]->id) hook->first[i] = k;
      }
    }
  ct_status s = reach_of(t, targets, nt, sources, ns, &reach, &srcs);
  /* seeds */
  for (int i = 0; i < nt && s == CT_OK; ++i) {
    const ct_tensor *y = targets[i];
    if (!ct__is_floating(y->dtype) || !idmap_has(&reach, y->id)) continue;
    ct_tensor *seed = NULL;
    if (out_grads && out_grads[i]) {
      const ct_tensor *og = out_grads[i];
      bool same_shape = og->rank == y->rank && !memcmp(og->shape, y->shape, sizeof(int64_t) * (size_t)y->rank);
      if (!batched && (og->dtype != y->dtype || !same_shape)) {
        char s1[96], s2[96];
        ct__shape_str(og->rank, og->shape, s1, sizeof s1);
        ct__shape_str(y->rank, y->shape, s2, sizeof s2);
        s = ct__error(ctx, same_shape ? CT_ERR_DTYPE : CT_ERR_SHAPE, "output gradient %d is %s %s, its target is %s %s",
                      i, ct_dtype_name(og->dtype), s1, ct_dtype_name(y->dtype), s2);
        break;
      }
      seed = ct_tensor_retain((ct_tensor *)og);
    } else {
      s = ct_ones_like(y, &seed);
      if (s != CT_OK) break;
    }
    s = accumulate(&grads, y->id, seed, ctx);
  }
  bool need_small[16];
  ct_tensor *dx_small[16];
  bool *needv = need_small;
  ct_tensor **dx = dx_small;
  int room = 16;
  for (int k = t->n - 1; k >= 0 && s == CT_OK; --k) {
    const ct_entry *e = entry_at(t, k);
    int gi = idmap_find(&grads, e->out.id);
    if (gi < 0 || !grads.vals[gi]) continue;
    if (e->n_in > room) {
      if (needv != need_small) free(needv);
      if (dx != dx_small) free(dx);
      needv = calloc((size_t)e->n_in, sizeof *needv);
      dx = calloc((size_t)e->n_in, sizeof *dx);
      room = e->n_in;
      if (!needv || !dx) {
        s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
        break;
      }
    }
    bool any = false;
    for (int i = 0; i < e->n_in; ++i) {
      needv[i] = e->in[i].tracked && ct__is_floating(e->in[i].dtype) && idmap_has(&reach, e->in[i].id);
      any |= needv[i];
      dx[i] = NULL;
    }
    if (any) {
      ct_tensor *dy = ct_tensor_retain(grads.vals[gi]);
      bool skip, did_mask = false;
      ct_grad_ctx mask = {NULL, NULL, false, false, &did_mask};
      if (!batched) {
        mask.mask_in0 = needv[0] && relu_mask_of(t, k, e, &srcs);
        mask.dy_masked = masked.count > 0 && idmap_has(&masked, dy->id);
      }
      s = batched ? run_grad_batched(t, e, needv, dy, dx, &skip) : run_grad_fn(t, e, needv, dy, dx, &skip, false, &mask);
      ct_tensor_free(dy);
      for (int i = 0; i < e->n_in && s == CT_OK && !skip; ++i) {
        if (!dx[i] || !needv[i]) continue;
        ct_tensor *g = dx[i];
        dx[i] = NULL;
        s = fit_to_input(t, e, i, &g, batched);
        uint64_t gid = s == CT_OK ? g->id : 0;
        if (s == CT_OK) s = accumulate(&grads, e->in[i].id, g, ctx);
        else ct_tensor_free(g);
        /* the masked gradient is the input's whole gradient so far: its producer may skip the mask */
        if (s == CT_OK && i == 0 && did_mask) {
          int xi = idmap_find(&grads, e->in[0].id);
          if (xi >= 0 && grads.vals[xi] && grads.vals[xi]->id == gid && idmap_put(&masked, gid, false) < 0)
            s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "gradient");
        }
      }
      for (int i = 0; i < e->n_in; ++i) {
        ct_tensor_free(dx[i]);
        dx[i] = NULL;
      }
    }
    /* an intermediate's gradient is complete once its producer is processed: drop it unless it
     * is asked for (the map may have grown above, so look it up again) */
    if (!idmap_has(&srcs, e->out.id)) {
      gi = idmap_find(&grads, e->out.id);
      if (gi >= 0) {
        ct_tensor_free(grads.vals[gi]);
        grads.vals[gi] = NULL;
      }
    }
    if (s == CT_OK) s = ready_after(hook, k, &grads, sources, ns);
  }
  if (needv != need_small) free(needv);
  if (dx != dx_small) free(dx);
  for (int i = 0; i < ns && s == CT_OK; ++i) {
    int gi = idmap_find(&grads, sources[i]->id);
    if (gi >= 0 && grads.vals[gi]) result[i] = ct_tensor_retain(grads.vals[gi]);
    else if (unconnected == CT_UNCONNECTED_ZERO && !batched) s = ct_zeros_like(sources[i], &result[i]);
  }
  for (int i = 0; hook && hook->fn && i < ns && s == CT_OK; ++i)
    if (!hook->called[i] && result[i]) {
      hook->called[i] = true;
      s = ct__lazy_compute(result[i]);
      if (s == CT_OK) s = hook->fn(i, result[i], hook->user);
    }
  if (s != CT_OK)
    for (int i = 0; i < ns; ++i) {
      ct_tensor_free(result[i]);
      result[i] = NULL;
    }
  idmap_free(&reach);
  idmap_free(&grads);
  idmap_free(&srcs);
  idmap_free(&masked);
  return s;
}

/* A used non-persistent tape, or one inside its own gradient computation, computes nothing. */
static ct_status check_can_differentiate(const ct_tape *tape, const char *fn) {
  if (tape->forward)
    return ct__error(tape->ctx, CT_ERR_INVALID, "%s: a forward-mode tape gives tangents (ct_tape_jvp), not gradients",
                     fn);
  if (tape->used)
    return ct__error(tape->ctx, CT_ERR_TAPE_USED,
                     "%s: a non-persistent tape can compute gradients only once and has released what it held; "
                     "create it with persistent = true to call gradient again", fn);
  if (tape->in_gradient)
    return ct__error(tape->ctx, CT_ERR_INVALID, "%s: the tape is already computing a gradient", fn);
  return CT_OK;
}

static ct_status gradient_common(ct_tape *tape, ct_tensor *const *targets, int nt, ct_tensor *const *sources, int ns,
                                 ct_tensor *const *out_grads, ct_unconnected unconnected, ct_tensor **grads, bool last,
                                 const char *fn, bool batched, ready_hook *hook) {
  if (grads)
    for (int i = 0; i < ns; ++i) grads[i] = NULL; /* on every error, the tape's included */
  CT_TRY(check_tape(tape, fn));
  if (nt < 0 || ns < 0) return ct__error(tape->ctx, CT_ERR_INVALID, "%s: negative count of targets or sources", fn);
  if (!grads && ns > 0) return ct__error(tape->ctx, CT_ERR_NULL, "%s: grads is NULL", fn);
  if ((nt > 0 && !targets) || (ns > 0 && !sources))
    return ct__error(tape->ctx, CT_ERR_NULL, "%s: targets/sources missing", fn);
  if (unconnected != CT_UNCONNECTED_NONE && unconnected != CT_UNCONNECTED_ZERO)
    return ct__error(tape->ctx, CT_ERR_INVALID, "%s: bad unconnected mode %d", fn, (int)unconnected);
  for (int i = 0; i < nt; ++i) {
    CT_TRY(ct__check(targets[i], fn));
    if (out_grads && out_grads[i]) CT_TRY(ct__check(out_grads[i], fn));
    if (targets[i]->ctx != tape->ctx || (out_grads && out_grads[i] && out_grads[i]->ctx != tape->ctx))
      return ct__error(tape->ctx, CT_ERR_CONTEXT, "%s: target %d belongs to another context than the tape", fn, i);
  }
  for (int i = 0; i < ns; ++i) {
    CT_TRY(ct__check(sources[i], fn));
    if (sources[i]->ctx != tape->ctx)
      return ct__error(tape->ctx, CT_ERR_CONTEXT, "%s: source %d belongs to another context than the tape", fn, i);
  }
  CT_TRY(check_can_differentiate(tape, fn));
  tape->in_gradient = true;
  tape_mark m = mark_of(tape);
  ct_status s = backward(tape, targets, nt, sources, ns, out_grads, unconnected, grads, batched, hook);
  for (int i = 0; i < ns && s == CT_OK; ++i) s = ct__lazy_compute(grads[i]); /* gradients are computed, not pending */
  tape->in_gradient = false;
  /* a failed call leaves the tape as it was (without what it recorded of itself), so that it can
   * be retried (after registering a missing gradient, say); a successful last call of a
   * non-persistent tape releases it */
  if (s != CT_OK) truncate_to(tape, m);
  if (s == CT_OK && last && !tape->persistent) {
    tape->used = true;
    release_entries(tape);
    idmap_free(&tape->tracked);
  }
  return s;
}

ct_status ct_tape_gradient(ct_tape *tape, ct_tensor *const *targets, int n_targets, ct_tensor *const *sources,
                           int n_sources, ct_tensor *const *output_grads, ct_unconnected unconnected, ct_tensor **grads) {
  return gradient_common(tape, targets, n_targets, sources, n_sources, output_grads, unconnected, grads, true,
                         "ct_tape_gradient", false, NULL);
}

ct_status ct_tape_gradient_with_hook(ct_tape *tape, ct_tensor *const *targets, int n_targets,
                                     ct_tensor *const *sources, int n_sources, ct_tensor *const *output_grads,
                                     ct_unconnected unconnected, ct_tensor **grads, ct_grad_ready_fn ready, void *user) {
  ready_hook h = {ready, user, NULL, NULL};
  if (ready && n_sources > 0) {
    h.first = malloc(sizeof(int) * (size_t)n_sources);
    h.called = calloc((size_t)n_sources, sizeof(bool));
    if (!h.first || !h.called) {
      free(h.first);
      free(h.called);
      if (grads)
        for (int i = 0; i < n_sources; ++i) grads[i] = NULL;
      return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct_tape_gradient_with_hook");
    }
  }
  ct_status s = gradient_common(tape, targets, n_targets, sources, n_sources, output_grads, unconnected, grads, true,
                                "ct_tape_gradient_with_hook", false, ready ? &h : NULL);
  free(h.first);
  free(h.called);
  return s;
}

ct_status ct_tape_gradient1(ct_tape *tape, const ct_tensor *target, const ct_tensor *source, ct_tensor **grad) {
  if (!grad) return ct__error(NULL, CT_ERR_NULL, "ct_tape_gradient1: grad is NULL");
  ct_tensor *t = (ct_tensor *)target, *s = (ct_tensor *)source;
  return gradient_common(tape, &t, 1, &s, 1, NULL, CT_UNCONNECTED_NONE, grad, true, "ct_tape_gradient1", false, NULL);
}

ct_status ct_tape_gradient_named(ct_tape *tape, ct_tensor *const *targets, int n_targets, const ct_named_tensor *sources,
                                 int n_sources, ct_unconnected unconnected, ct_named_tensor *grads) {
  if (n_sources < 0) return ct__error(NULL, CT_ERR_INVALID, "ct_tape_gradient_named: negative count of sources");
  if (!grads && n_sources > 0) return ct__error(NULL, CT_ERR_NULL, "ct_tape_gradient_named: grads is NULL");
  if (!sources && n_sources > 0) return ct__error(NULL, CT_ERR_NULL, "ct_tape_gradient_named: sources is NULL");
  for (int i = 0; i < n_sources; ++i) {
    grads[i].name = sources[i].name;
    grads[i].tensor = NULL;
  }
  ct_tensor **src = calloc((size_t)(n_sources > 0 ? n_sources : 1), sizeof *src);
  ct_tensor **res = calloc((size_t)(n_sources > 0 ? n_sources : 1), sizeof *res);
  if (!src || !res) {
    free(src);
    free(res);
    return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct_tape_gradient_named");
  }
  for (int i = 0; i < n_sources; ++i) src[i] = sources[i].tensor;
  ct_status s = gradient_common(tape, targets, n_targets, src, n_sources, NULL, unconnected, res, true,
                                "ct_tape_gradient_named", false, NULL);
  for (int i = 0; i < n_sources; ++i) grads[i].tensor = s == CT_OK ? res[i] : NULL;
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

/* target.shape + source.shape (jacobian) or [B] + target.shape[1:] + source.shape[1:] (batch) */
static int jacobian_shape(const ct_tensor *y, const ct_tensor *x, bool batch, int64_t *shape) {
  int r = 0;
  if (batch) shape[r++] = y->shape[0];
  for (int i = batch ? 1 : 0; i < y->rank; ++i) shape[r++] = y->shape[i];
  for (int i = batch ? 1 : 0; i < x->rank; ++i) shape[r++] = x->shape[i];
  return r;
}

/* A target without elements (or a batch of none): there is no backward pass to run, and the
 * result has no elements either. As in TensorFlow it is a zero-size tensor of the jacobian's shape
 * when the target is connected to the source (or unconnected = ZERO), NULL otherwise. The call
 * counts as the tape's gradient computation. */
static ct_status empty_jacobian(ct_tape *tape, const ct_tensor *y, const ct_tensor *x, ct_unconnected unconnected,
                                bool batch, ct_tensor **out, const char *fn) {
  CT_TRY(check_can_differentiate(tape, fn));
  idmap reach = {0}, srcs = {0};
  ct_tensor *yy = (ct_tensor *)y, *xx = (ct_tensor *)x;
  ct_status s = reach_of(tape, &yy, 1, &xx, 1, &reach, &srcs);
  bool connected = s == CT_OK && ct__is_floating(x->dtype) && idmap_has(&reach, y->id);
  idmap_free(&reach);
  idmap_free(&srcs);
  if (s == CT_OK && (connected || unconnected == CT_UNCONNECTED_ZERO)) {
    int64_t shape[CT_MAX_RANK];
    int r = jacobian_shape(y, x, batch, shape);
    s = ct_zeros(tape->ctx, ct__is_floating(x->dtype) ? x->dtype : y->dtype, r, shape, out);
  }
  if (s == CT_OK && !tape->persistent) {
    tape->used = true;
    release_entries(tape);
    idmap_free(&tape->tracked);
  }
  return s;
}

uint64_t ct__jacobian_batch_bytes = 256u << 20;
bool ct__jacobian_looped = false;

/* Seeds c of a jacobian's rows from row r0: [c] + y.shape, seed k one at position r0 + k of every
 * row of length row_len. */
static ct_status onehot_seeds(const ct_tensor *y, int64_t row_len, int64_t r0, int64_t c, ct_tensor **out) {
  size_t es = ct_dtype_size(y->dtype);
  unsigned char *h = calloc((size_t)(c * y->size), es);
  if (!h) return ct__error(y->ctx, CT_ERR_OUT_OF_MEMORY, "jacobian: seeds");
  for (int64_t k = 0; k < c; ++k)
    for (int64_t r = 0; r * row_len + r0 + k < y->size; ++r) {
      int64_t at = k * y->size + r * row_len + r0 + k;
      if (y->dtype == CT_FLOAT32) ((float *)h)[at] = 1.0f;
      else ((double *)h)[at] = 1.0;
    }
  int64_t shape[CT_MAX_RANK];
  shape[0] = c;
  memcpy(shape + 1, y->shape, sizeof(int64_t) * (size_t)y->rank);
  ct_status s = ct_tensor_from_data(y->ctx, y->dtype, y->rank + 1, shape, h, out);
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
  if (!ct__is_floating(y->dtype)) return ct__error(tape->ctx, CT_ERR_DTYPE, "%s: target must be floating", fn);
  if (unconnected != CT_UNCONNECTED_NONE && unconnected != CT_UNCONNECTED_ZERO)
    return ct__error(tape->ctx, CT_ERR_INVALID, "%s: bad unconnected mode %d", fn, (int)unconnected);
  if (batch && (y->rank < 2 || x->rank < 2)) {
    /* TensorFlow's rule: an example of a batch is at least a vector */
    const ct_tensor *bad = y->rank < 2 ? y : x;
    char sh[96];
    ct__shape_str(bad->rank, bad->shape, sh, sizeof sh);
    return ct__error(tape->ctx, CT_ERR_SHAPE, "%s: the %s has shape %s (rank %d); batch_jacobian needs rank >= 2 for "
                     "the target and the source ([batch, ...])", fn, bad == y ? "target" : "source", sh, bad->rank);
  }
  if (batch && y->shape[0] != x->shape[0])
    return ct__error(tape->ctx, CT_ERR_SHAPE, "%s: target and source need the same leading batch extent (%lld and "
                     "%lld)", fn, (long long)y->shape[0], (long long)x->shape[0]);
  if (y->rank + x->rank - (batch ? 1 : 0) > CT_MAX_RANK)
    return ct__error(tape->ctx, CT_ERR_SHAPE, "%s: result rank exceeds 8", fn);
  int64_t B = batch ? y->shape[0] : 1;
  int64_t rows = batch ? (B ? y->size / B : 0) : y->size;
  if (rows == 0 || B == 0) return empty_jacobian(tape, y, x, unconnected, batch, out, fn);
  /* Seeds go through the backward pass in batches (a leading axis on every gradient), as many
   * per batch as the memory bound allows; a tape whose tensors leave no room for that axis (rank
   * 8) takes one pass per row. */
  int max_rank = y->rank > x->rank ? y->rank : x->rank;
  int64_t max_elems = y->size > x->size ? y->size : x->size;
  for (int k = 0; k < tape->n; ++k) {
    const ct_entry *e = entry_at(tape, k);
    if (e->out.rank > max_rank) max_rank = e->out.rank;
    int64_t n_out = ct__shape_size(e->out.rank, e->out.shape);
    if (n_out > max_elems) max_elems = n_out;
    for (int i = 0; i < e->n_in; ++i) {
      if (e->in[i].rank > max_rank) max_rank = e->in[i].rank;
      int64_t n_in = ct__shape_size(e->in[i].rank, e->in[i].shape);
      if (n_in > max_elems) max_elems = n_in;
    }
  }
  bool batched = !ct__jacobian_looped && max_rank < CT_MAX_RANK;
  uint64_t per_seed = (uint64_t)(max_elems ? max_elems : 1) * ct_dtype_size(y->dtype) * 4;
  int64_t chunk = batched ? (int64_t)(ct__jacobian_batch_bytes / per_seed) : 1;
  if (chunk < 1) chunk = 1;
  if (chunk > rows) chunk = rows;
  int64_t n_parts = (rows + chunk - 1) / chunk;
  ct_tensor **parts = calloc((size_t)n_parts, sizeof *parts);
  if (!parts) return ct__error(tape->ctx, CT_ERR_OUT_OF_MEMORY, "%s", fn);
  ct_status s = CT_OK;
  bool any = false;
  tape_mark m = mark_of(tape);
  for (int64_t p = 0; p < n_parts && s == CT_OK; ++p) {
    int64_t r0 = p * chunk, c = rows - r0 < chunk ? rows - r0 : chunk;
    ct_tensor *og = NULL, *g = NULL, *yy = (ct_tensor *)y, *xx = (ct_tensor *)x;
    s = batched ? onehot_seeds(y, batch ? rows : y->size, r0, c, &og) : onehot_grad(y, batch ? rows : y->size, r0, &og);
    if (s == CT_OK)
      s = gradient_common(tape, &yy, 1, &xx, 1, &og, CT_UNCONNECTED_NONE, &g, p == n_parts - 1, fn, batched, NULL);
    ct_tensor_free(og);
    int64_t shape[CT_MAX_RANK];
    shape[0] = c;
    memcpy(shape + 1, x->shape, sizeof(int64_t) * (size_t)x->rank);
    if (s == CT_OK && !g) s = ct_zeros(tape->ctx, x->dtype, x->rank + 1, shape, &parts[p]);
    else if (s == CT_OK) {
      any = true;
      s = ct_reshape(g, x->rank + 1, shape, &parts[p]); /* one row: [1] + x.shape */
    }
    ct_tensor_free(g);
  }
  if (s == CT_OK && !any && unconnected == CT_UNCONNECTED_NONE) {
    ct_tensor_free_n(parts, (int)n_parts);
    free(parts);
    return CT_OK; /* NULL: unconnected */
  }
  int64_t shape[CT_MAX_RANK];
  int r = jacobian_shape(y, x, batch, shape);
  if (s == CT_OK) {
    ct_tensor *all = NULL, *moved = NULL; /* [rows] + x.shape; batch: [rows, B, ...] -> [B, rows, ...] */
    s = n_parts == 1 ? ((all = ct_tensor_retain(parts[0])), CT_OK) : ct_concat(parts, (int)n_parts, 0, &all);
    if (s == CT_OK && batch) {
      int perm[CT_MAX_RANK];
      for (int i = 0; i <= x->rank; ++i) perm[i] = i;
      perm[0] = 1;
      perm[1] = 0;
      s = ct_transpose(all, perm, &moved);
    } else if (s == CT_OK) moved = ct_tensor_retain(all);
    if (s == CT_OK) s = ct_reshape(moved, r, shape, out);
    ct_tensor_free(all);
    ct_tensor_free(moved);
  }
  ct_tensor_free_n(parts, (int)n_parts);
  free(parts);
  if (s != CT_OK && !tape->used) truncate_to(tape, m);
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

/* ---- forward mode: the public functions ----------------------------------------------------- */
ct_status ct_tape_begin_forward(ct_context *ctx, ct_tensor *const *primals, ct_tensor *const *tangents, int n,
                                ct_tape **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_tape_begin_forward: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_tape_begin_forward"));
  if (n < 1) return ct__error(ctx, CT_ERR_INVALID, "ct_tape_begin_forward: %d primals (at least 1)", n);
  if (!primals || !tangents) return ct__error(ctx, CT_ERR_NULL, "ct_tape_begin_forward: primals/tangents missing");
  for (int i = 0; i < n; ++i) {
    CT_TRY(ct__check(primals[i], "ct_tape_begin_forward"));
    CT_TRY(ct__check(tangents[i], "ct_tape_begin_forward"));
    const ct_tensor *p = primals[i], *v = tangents[i];
    if (p->ctx != ctx || v->ctx != ctx)
      return ct__error(ctx, CT_ERR_CONTEXT, "ct_tape_begin_forward: primal %d or its tangent belongs to another context", i);
    if (!ct__is_floating(p->dtype) || v->dtype != p->dtype)
      return ct__error(ctx, CT_ERR_DTYPE, "ct_tape_begin_forward: primal %d is %s, its tangent %s (floating, the same)",
                       i, ct_dtype_name(p->dtype), ct_dtype_name(v->dtype));
    if (v->rank != p->rank || memcmp(v->shape, p->shape, sizeof(int64_t) * (size_t)p->rank)) {
      char s1[96], s2[96];
      ct__shape_str(p->rank, p->shape, s1, sizeof s1);
      ct__shape_str(v->rank, v->shape, s2, sizeof s2);
      return ct__error(ctx, CT_ERR_SHAPE, "ct_tape_begin_forward: primal %d has shape %s, its tangent %s", i, s1, s2);
    }
  }
  ct_tape_options o = {true, false};
  ct_tape *t;
  CT_TRY(ct_tape_begin(ctx, &o, &t));
  t->forward = true;
  ct_status s = CT_OK;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    s = watch_one(t, primals[i]);
    int k = s == CT_OK ? idmap_put(&t->tangents, primals[i]->id, true) : 0;
    if (s == CT_OK && k < 0) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_tape_begin_forward");
    if (s == CT_OK) {
      ct_tensor_free(t->tangents.vals[k]);
      t->tangents.vals[k] = ct_tensor_retain(tangents[i]);
    }
  }
  if (s != CT_OK) {
    ct_tape_free(t);
    return s;
  }
  *out = t;
  return CT_OK;
}

ct_status ct_tape_jvp(const ct_tape *tape, const ct_tensor *t, ct_unconnected unconnected, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_tape_jvp: out is NULL");
  *out = NULL;
  CT_TRY(check_tape(tape, "ct_tape_jvp"));
  CT_TRY(ct__check(t, "ct_tape_jvp"));
  if (!tape->forward)
    return ct__error(tape->ctx, CT_ERR_INVALID, "ct_tape_jvp: the tape is not a forward-mode tape (ct_tape_begin_forward)");
  if (unconnected != CT_UNCONNECTED_NONE && unconnected != CT_UNCONNECTED_ZERO)
    return ct__error(tape->ctx, CT_ERR_INVALID, "ct_tape_jvp: bad unconnected mode %d", (int)unconnected);
  if (t->ctx != tape->ctx) return ct__error(tape->ctx, CT_ERR_CONTEXT, "ct_tape_jvp: the tensor belongs to another context");
  ct_tensor *v = tangent_of(tape, t->id);
  if (v) *out = ct_tensor_retain(v);
  else if (unconnected == CT_UNCONNECTED_ZERO) return ct_zeros_like(t, out);
  return CT_OK;
}
