/* module.c — modules: ownership of variables and children, hierarchical names, the stable
 * variable order, functional calls, freezing, the Sequential container and the summary. */
#define _POSIX_C_SOURCE 200809L
#include "nn_internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------- */
uint64_t ct__mix64(uint64_t a, uint64_t b) {
  uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t ct__hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  while (s && *s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
  return h;
}

/* ---- automatic names: "dense", "dense_1", ... (process wide, as Keras) ---------------------- */
typedef struct name_count {
  char *base;
  int count;
  struct name_count *next;
} name_count;
static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static name_count *names;

static char *unique_name(const char *base) {
  pthread_mutex_lock(&names_mu);
  name_count *n = names;
  while (n && strcmp(n->base, base) != 0) n = n->next;
  if (!n) {
    n = calloc(1, sizeof *n);
    if (n && !(n->base = strdup(base))) {
      free(n);
      n = NULL;
    }
    if (n) {
      n->next = names;
      names = n;
    }
  }
  char *r = NULL;
  if (n) {
    size_t cap = strlen(base) + 24;
    r = malloc(cap);
    if (r) {
      if (n->count == 0) snprintf(r, cap, "%s", base);
      else snprintf(r, cap, "%s_%d", base, n->count);
      n->count++;
    }
  }
  pthread_mutex_unlock(&names_mu);
  return r;
}

void ct_reset_module_names(void) {
  pthread_mutex_lock(&names_mu);
  while (names) {
    name_count *n = names->next;
    free(names->base);
    free(names);
    names = n;
  }
  pthread_mutex_unlock(&names_mu);
}

/* ---- creation, lifetime ---------------------------------------------------------------------- */
static const ct_module_vtable user_vt = {"Module", "module", NULL, NULL, NULL, NULL};

ct_status ct__module_check(const ct_module *m, const char *fn) {
  return CT_CHECK_HANDLE(m, CT_HANDLE_MODULE, fn);
}

ct_status ct__module_new(ct_context *ctx, const ct_module_vtable *vt, const char *name, void *state, ct_module **out) {
  *out = NULL;
  char what[64];
  snprintf(what, sizeof what, "creating a %s", vt->kind);
  ct_status cs = ct__check_context(ctx, what);
  if (cs != CT_OK) {
    if (vt->free_state) vt->free_state(state);
    return cs;
  }
  if (name && (!*name || strchr(name, '/') || strchr(name, ':'))) {
    if (vt->free_state) vt->free_state(state);
    return ct__error(ctx, CT_ERR_INVALID, "module name \"%s\" is empty or contains '/' or ':'", name);
  }
  ct_module *m = ct__handle_new(CT_HANDLE_MODULE, sizeof *m);
  char *nm = name ? strdup(name) : unique_name(vt->base);
  if (!m || !nm) {
    ct__handle_free(m);
    free(nm);
    if (vt->free_state) vt->free_state(state);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "creating a %s", vt->kind);
  }
  m->refs = 1;
  m->ctx = ctx;
  ctb_context_retain(ctx);
  m->name = nm;
  m->vt = vt;
  m->state = state;
  *out = m;
  return CT_OK;
}

ct_status ct_module_create(ct_context *ctx, const char *name, ct_module_forward_fn forward, void *user,
                           ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_module_create: out is NULL");
  CT_TRY(ct__module_new(ctx, &user_vt, name, NULL, out));
  (*out)->user_forward = forward;
  (*out)->user = user;
  return CT_OK;
}

ct_module *ct_module_retain(ct_module *m) {
  if (m && m->magic == CT_MODULE_MAGIC) m->refs++;
  return m;
}

void ct_module_free(ct_module *m) {
  if (!m || m->magic != CT_MODULE_MAGIC || --m->refs > 0) return;
  for (int i = 0; i < m->nvars; ++i) ct_tensor_free(m->vars[i]);
  free(m->vars);
  for (int i = 0; i < m->nchildren; ++i) {
    m->children[i]->parent = NULL;
    ct_module_free(m->children[i]);
  }
  free(m->children);
  if (m->vt->free_state) m->vt->free_state(m->state);
  free(m->name);
  ct_context *ctx = m->ctx;
  ct__handle_free(m);
  ctb_context_release(ctx);
}

/* ---- names of variables ---------------------------------------------------------------------- */
/* "a/b" for the module's path: its own name (unless skip_self) and those of its named
 * (not transparent) ancestors. Returns false when the buffer is too small. */
static bool module_path(const ct_module *m, bool include_self, char *buf, size_t cap) {
  const ct_module *chain[64];
  int n = 0;
  for (const ct_module *a = m; a && n < 64; a = a->parent)
    if ((a == m && include_self) || (a != m && !a->transparent)) chain[n++] = a;
  size_t len = 0;
  buf[0] = 0;
  for (int i = n - 1; i >= 0; --i) {
    int w = snprintf(buf + len, cap - len, "%s%s", len ? "/" : "", chain[i]->name);
    if (w < 0 || (size_t)w >= cap - len) return false;
    len += (size_t)w;
  }
  return true;
}

static ct_status prefix_names(ct_module *m, const char *prefix) {
  size_t pl = strlen(prefix);
  for (int i = 0; i < m->nvars; ++i) {
    ct_tensor *v = m->vars[i];
    size_t l = pl + 1 + strlen(v->name) + 1;
    char *nn = malloc(l);
    if (!nn) return ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "renaming variables");
    snprintf(nn, l, "%s/%s", prefix, v->name);
    free(v->name);
    v->name = nn;
  }
  for (int i = 0; i < m->nchildren; ++i) CT_TRY(prefix_names(m->children[i], prefix));
  return CT_OK;
}

ct_status ct_module_add_variable(ct_module *m, const ct_tensor *initial, const char *name, bool trainable,
                                 ct_tensor **var) {
  if (var) *var = NULL;
  CT_TRY(ct__module_check(m, "ct_module_add_variable"));
  CT_TRY(ct__check(initial, "ct_module_add_variable"));
  if (!name || !*name || strchr(name, ':'))
    return ct__error(m->ctx, CT_ERR_INVALID, "ct_module_add_variable: the name must be non-empty and without ':'");
  if (initial->ctx != m->ctx)
    return ct__error(m->ctx, CT_ERR_CONTEXT, "ct_module_add_variable: the value belongs to another context");
  char path[1024], full[1100];
  if (!module_path(m, true, path, sizeof path))
    return ct__error(m->ctx, CT_ERR_INVALID, "ct_module_add_variable: module path too long");
  snprintf(full, sizeof full, "%s/%s:0", path, name);
  for (int i = 0; i < m->nvars; ++i)
    if (strcmp(m->vars[i]->name, full) == 0)
      return ct__error(m->ctx, CT_ERR_INVALID, "ct_module_add_variable: module %s already has a variable %s", m->name,
                       name);
  if (m->nvars == m->capvars) {
    int nc = m->capvars ? m->capvars * 2 : 4;
    ct_tensor **nv = realloc(m->vars, sizeof *nv * (size_t)nc);
    if (!nv) return ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "ct_module_add_variable");
    m->vars = nv;
    m->capvars = nc;
  }
  ct_tensor *v;
  CT_TRY(ct_variable_create(initial, full, trainable, &v));
  m->vars[m->nvars++] = v;
  if (var) *var = v;
  return CT_OK;
}

ct_status ct_module_add(ct_module *parent, ct_module *child) {
  CT_TRY(ct__module_check(parent, "ct_module_add"));
  CT_TRY(ct__module_check(child, "ct_module_add"));
  if (parent->ctx != child->ctx)
    return ct__error(parent->ctx, CT_ERR_CONTEXT, "ct_module_add: %s and %s belong to different contexts", parent->name,
                     child->name);
  if (child->parent)
    return ct__error(parent->ctx, CT_ERR_INVALID, "ct_module_add: %s already belongs to %s", child->name,
                     child->parent->name);
  for (const ct_module *a = parent; a; a = a->parent)
    if (a == child) return ct__error(parent->ctx, CT_ERR_INVALID, "ct_module_add: %s cannot contain itself", child->name);
  if (parent->nchildren == parent->capchildren) {
    int nc = parent->capchildren ? parent->capchildren * 2 : 4;
    ct_module **n = realloc(parent->children, sizeof *n * (size_t)nc);
    if (!n) return ct__error(parent->ctx, CT_ERR_OUT_OF_MEMORY, "ct_module_add");
    parent->children = n;
    parent->capchildren = nc;
  }
  char prefix[1024];
  if (!module_path(parent, !parent->transparent, prefix, sizeof prefix))
    return ct__error(parent->ctx, CT_ERR_INVALID, "ct_module_add: module path too long");
  if (prefix[0]) CT_TRY(prefix_names(child, prefix));
  parent->children[parent->nchildren++] = ct_module_retain(child);
  child->parent = parent;
  return CT_OK;
}

/* ---- listing ----------------------------------------------------------------------------------- */
static void collect(const ct_module *m, bool trainable_only, ct_tensor **out, int cap, int *n) {
  for (int i = 0; i < m->nvars; ++i) {
    if (trainable_only && !m->vars[i]->trainable) continue;
    if (*n < cap) out[*n] = m->vars[i];
    (*n)++;
  }
  for (int i = 0; i < m->nchildren; ++i) collect(m->children[i], trainable_only, out, cap, n);
}

static ct_status list_vars(const ct_module *m, bool trainable_only, ct_tensor **out, int cap, int *count,
                           const char *fn) {
  CT_TRY(ct__module_check(m, fn));
  if (!count) return ct__error(m->ctx, CT_ERR_NULL, "%s: count is NULL", fn);
  if (cap < 0) return ct__error(m->ctx, CT_ERR_INVALID, "%s: negative capacity %d", fn, cap);
  if (cap > 0 && !out) return ct__error(m->ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *count = 0;
  collect(m, trainable_only, out, cap, count);
  return CT_OK;
}

ct_status ct_module_variables(const ct_module *m, ct_tensor **out, int cap, int *count) {
  return list_vars(m, false, out, cap, count, "ct_module_variables");
}
ct_status ct_module_trainable_variables(const ct_module *m, ct_tensor **out, int cap, int *count) {
  return list_vars(m, true, out, cap, count, "ct_module_trainable_variables");
}

static ct_tensor *find_var(const ct_module *m, const char *name, size_t len) {
  for (int i = 0; i < m->nvars; ++i) {
    const char *vn = m->vars[i]->name;
    if (strncmp(vn, name, len) == 0 && (vn[len] == 0 || strcmp(vn + len, ":0") == 0)) return m->vars[i];
  }
  for (int i = 0; i < m->nchildren; ++i) {
    ct_tensor *v = find_var(m->children[i], name, len);
    if (v) return v;
  }
  return NULL;
}

ct_tensor *ct_module_find_variable(const ct_module *m, const char *name) {
  if (!m || m->magic != CT_MODULE_MAGIC || !name) return NULL;
  return find_var(m, name, strlen(name));
}

ct_tensor *ct_module_own_variable(const ct_module *m, int i) {
  if (!m || m->magic != CT_MODULE_MAGIC || i < 0 || i >= m->nvars) return NULL;
  return m->override ? m->override[i] : m->vars[i];
}

ct_tensor *const *ct__module_params(const ct_module *m) { return m->override ? m->override : m->vars; }

static void set_trainable(ct_module *m, bool t) {
  for (int i = 0; i < m->nvars; ++i) m->vars[i]->trainable = t;
  for (int i = 0; i < m->nchildren; ++i) set_trainable(m->children[i], t);
}
ct_status ct_module_set_trainable(ct_module *m, bool trainable) {
  CT_TRY(ct__module_check(m, "ct_module_set_trainable"));
  set_trainable(m, trainable);
  return CT_OK;
}

static void set_seed(ct_module *m, uint64_t seed) {
  if (m->vt->set_seed) m->vt->set_seed(m, seed);
  for (int i = 0; i < m->nchildren; ++i) set_seed(m->children[i], ct__mix64(seed, (uint64_t)i + 1));
}
ct_status ct_module_set_seed(ct_module *m, uint64_t seed) {
  CT_TRY(ct__module_check(m, "ct_module_set_seed"));
  set_seed(m, seed);
  return CT_OK;
}

static int64_t count_params(const ct_module *m, bool trainable_only) {
  int64_t n = 0;
  for (int i = 0; i < m->nvars; ++i)
    if (!trainable_only || m->vars[i]->trainable) n += m->vars[i]->size;
  for (int i = 0; i < m->nchildren; ++i) n += count_params(m->children[i], trainable_only);
  return n;
}
int64_t ct_module_num_params(const ct_module *m, bool trainable_only) {
  return m && m->magic == CT_MODULE_MAGIC ? count_params(m, trainable_only) : -1;
}

const char *ct_module_name(const ct_module *m) { return m && m->magic == CT_MODULE_MAGIC ? m->name : NULL; }
const char *ct_module_kind(const ct_module *m) { return m && m->magic == CT_MODULE_MAGIC ? m->vt->kind : NULL; }
int ct_module_num_children(const ct_module *m) { return m && m->magic == CT_MODULE_MAGIC ? m->nchildren : -1; }
ct_module *ct_module_child(const ct_module *m, int i) {
  return m && m->magic == CT_MODULE_MAGIC && i >= 0 && i < m->nchildren ? m->children[i] : NULL;
}

/* ---- calls ------------------------------------------------------------------------------------ */
ct_status ct_module_call(ct_module *m, const ct_tensor *x, bool training, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_module_call: out is NULL");
  *out = NULL;
  CT_TRY(ct__module_check(m, "ct_module_call"));
  CT_TRY(ct__check(x, "ct_module_call"));
  if (x->ctx != m->ctx) return ct__error(m->ctx, CT_ERR_CONTEXT, "ct_module_call: the input belongs to another context");
  ct_status s;
  if (m->vt->forward) s = m->vt->forward(m, ct__module_params(m), x, training, out);
  else if (m->user_forward) s = m->user_forward(m, x, training, out, m->user);
  else return ct__error(m->ctx, CT_ERR_INVALID, "module %s has no forward function", m->name);
  if (s == CT_OK && !*out) s = ct__error(m->ctx, CT_ERR_INVALID, "the forward of module %s returned no tensor", m->name);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
  }
  return s;
}

static void set_overrides(ct_module *m, ct_tensor *const *params, int *off) {
  m->override = params ? params + *off : NULL;
  *off += m->nvars;
  for (int i = 0; i < m->nchildren; ++i) set_overrides(m->children[i], params, off);
}

ct_status ct_module_call_with(ct_module *m, const ct_tensor *x, ct_tensor *const *params, int n_params, bool training,
                              ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_module_call_with: out is NULL");
  *out = NULL;
  CT_TRY(ct__module_check(m, "ct_module_call_with"));
  int n = 0;
  collect(m, false, NULL, 0, &n);
  if (n_params != n)
    return ct__error(m->ctx, CT_ERR_INVALID, "ct_module_call_with: module %s has %d variables, %d parameters given",
                     m->name, n, n_params);
  if (n > 0 && !params) return ct__error(m->ctx, CT_ERR_NULL, "ct_module_call_with: params is NULL");
  ct_tensor **vars = calloc((size_t)(n ? n : 1), sizeof *vars);
  if (!vars) return ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "ct_module_call_with");
  int k = 0;
  collect(m, false, vars, n, &k);
  ct_status s = CT_OK;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    s = ct__check(params[i], "ct_module_call_with");
    if (s != CT_OK) break;
    const ct_tensor *p = params[i], *v = vars[i];
    if (p->dtype != v->dtype)
      s = ct__error(m->ctx, CT_ERR_DTYPE, "ct_module_call_with: parameter %d is %s, variable %s is %s", i,
                    ct_dtype_name(p->dtype), v->name, ct_dtype_name(v->dtype));
    else if (p->rank != v->rank || memcmp(p->shape, v->shape, sizeof(int64_t) * (size_t)v->rank))
      s = ct__error(m->ctx, CT_ERR_SHAPE, "ct_module_call_with: parameter %d does not have the shape of %s", i, v->name);
  }
  free(vars);
  if (s != CT_OK) return s;
  int off = 0;
  set_overrides(m, params, &off);
  s = ct_module_call(m, x, training, out);
  off = 0;
  set_overrides(m, NULL, &off);
  return s;
}

/* ---- Sequential ------------------------------------------------------------------------------- */
static ct_status sequential_forward(ct_module *m, ct_tensor *const *params, const ct_tensor *x, bool training,
                                    ct_tensor **out) {
  (void)params;
  ct_tensor *cur = ct_tensor_retain((ct_tensor *)x);
  for (int i = 0; i < m->nchildren; ++i) {
    ct_tensor *next = NULL;
    ct_status s = ct_module_call(m->children[i], cur, training, &next);
    ct_tensor_free(cur);
    if (s != CT_OK) return s;
    cur = next;
  }
  *out = cur;
  return CT_OK;
}

static const ct_module_vtable sequential_vt = {"Sequential", "sequential", sequential_forward, NULL, NULL, NULL};

ct_status ct_sequential_create(ct_context *ctx, const char *name, ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_sequential_create: out is NULL");
  CT_TRY(ct__module_new(ctx, &sequential_vt, name, NULL, out));
  (*out)->transparent = true;
  return CT_OK;
}

ct_status ct_sequential_add(ct_module *seq, ct_module *layer) {
  CT_TRY(ct__module_check(seq, "ct_sequential_add"));
  if (seq->vt != &sequential_vt)
    return ct__error(seq->ctx, CT_ERR_INVALID, "ct_sequential_add: %s is a %s, not a Sequential", seq->name,
                     seq->vt->kind);
  return ct_module_add(seq, layer);
}

/* ---- summary ---------------------------------------------------------------------------------- */
static void summary_rows(const ct_module *m, FILE *f, int depth) {
  char cfg[160] = "";
  if (m->vt->describe) m->vt->describe(m, cfg, sizeof cfg);
  char label[160];
  snprintf(label, sizeof label, "%*s%s (%s)", depth * 2, "", m->name, m->vt->kind);
  fprintf(f, " %-32s %-40s %10lld\n", label, cfg, (long long)count_params(m, false));
  for (int i = 0; i < m->nchildren; ++i) summary_rows(m->children[i], f, depth + 1);
}

ct_status ct_module_summary(const ct_module *m, FILE *f) {
  CT_TRY(ct__module_check(m, "ct_module_summary"));
  if (!f) return ct__error(m->ctx, CT_ERR_NULL, "ct_module_summary: file is NULL");
  fprintf(f, "Model: \"%s\"\n %-32s %-40s %10s\n", m->name, "Layer (type)", "Configuration", "Params");
  if (m->nchildren && m->transparent)
    for (int i = 0; i < m->nchildren; ++i) summary_rows(m->children[i], f, 0);
  else summary_rows(m, f, 0);
  long long total = (long long)count_params(m, false), train = (long long)count_params(m, true);
  fprintf(f, " Total params: %lld (trainable: %lld, frozen: %lld)\n", total, train, total - train);
  return CT_OK;
}
