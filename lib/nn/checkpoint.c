/* checkpoint.c — a module's variables (and an optimizer's state) in a safetensors file, through
 * lib/formats/safetensors.h. Loading checks everything and stages every value on the device
 * before the first variable changes, so a failed load leaves the model as it was. */
#define _POSIX_C_SOURCE 200809L
#include "nn_internal.h"
#include "safetensors.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define META_FORMAT "cltape.format"
#define FORMAT_VERSION "1"
#define META_OPT "cltape.optimizer"
#define META_ITER "cltape.optimizer.iterations"
#define OPT_PREFIX "optimizer/"

static ct_status all_vars(const ct_module *m, ct_tensor ***vars, int *n) {
  *vars = NULL;
  CT_TRY(ct_module_variables(m, NULL, 0, n));
  *vars = calloc((size_t)(*n ? *n : 1), sizeof **vars);
  if (!*vars) return ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "checkpoint: listing variables");
  int k;
  return ct_module_variables(m, *vars, *n, &k);
}

/* A host copy of t as a safetensors entry (the name is borrowed or owned by the caller). */
static ct_status entry_of(const ct_tensor *t, char *name, ct_st_entry *e) {
  memset(e, 0, sizeof *e);
  e->name = name;
  e->dtype = t->dtype;
  e->rank = t->rank;
  memcpy(e->shape, t->shape, sizeof(int64_t) * (size_t)t->rank);
  e->nbytes = (size_t)t->size * ct_dtype_size(t->dtype);
  e->data = malloc(e->nbytes ? e->nbytes : 1);
  if (!e->data) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "checkpoint: staging %zu bytes", e->nbytes);
  return ct_tensor_read(t, e->data, e->nbytes);
}

static char *slot_name(const char *var, const char *slot) {
  size_t l = strlen(OPT_PREFIX) + strlen(var) + 1 + strlen(slot) + 1;
  char *s = malloc(l);
  if (s) snprintf(s, l, "%s%s/%s", OPT_PREFIX, var, slot);
  return s;
}

ct_status ct_checkpoint_save(const char *path, const ct_module *m, const ct_optimizer *opt,
                             const char *const *meta_keys, const char *const *meta_values, int n_meta) {
  if (!path) return ct__error(NULL, CT_ERR_NULL, "ct_checkpoint_save: path is NULL");
  CT_TRY(ct__module_check(m, "ct_checkpoint_save"));
  if (opt) CT_TRY(CT_CHECK_HANDLE(opt, CT_HANDLE_OPTIMIZER, "ct_checkpoint_save"));
  if (n_meta < 0) return ct__error(m->ctx, CT_ERR_INVALID, "ct_checkpoint_save: negative metadata count %d", n_meta);
  if (n_meta > 0 && (!meta_keys || !meta_values))
    return ct__error(m->ctx, CT_ERR_NULL, "ct_checkpoint_save: metadata arrays are required for %d pairs", n_meta);
  for (int i = 0; i < n_meta; ++i) {
    if (!meta_keys[i] || !meta_values[i])
      return ct__error(m->ctx, CT_ERR_NULL, "ct_checkpoint_save: metadata key or value %d is NULL", i);
    if (strncmp(meta_keys[i], "cltape.", 7) == 0)
      return ct__error(m->ctx, CT_ERR_INVALID, "ct_checkpoint_save: metadata key %d is reserved (\"cltape.\")", i);
  }
  ct_tensor **vars = NULL;
  int nv = 0;
  ct_status s = all_vars(m, &vars, &nv);
  const char *snames[2];
  int ns = opt ? ct__optimizer_slot_names(opt, snames) : 0;
  int cap = nv * (1 + ns);
  ct_st_entry *e = calloc((size_t)(cap ? cap : 1), sizeof *e);
  char **owned = calloc((size_t)(cap ? cap : 1), sizeof *owned);
  if (s == CT_OK && (!e || !owned)) s = ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "ct_checkpoint_save");
  int ne = 0;
  for (int i = 0; i < nv && s == CT_OK; ++i) s = entry_of(vars[i], vars[i]->name, &e[ne++]);
  for (int i = 0; i < nv && s == CT_OK && ns; ++i) {
    ct_tensor *sl[2];
    ct__optimizer_slots(opt, vars[i]->id, sl);
    for (int k = 0; k < ns && s == CT_OK; ++k) {
      if (!sl[k]) continue;
      owned[ne] = slot_name(vars[i]->name, snames[k]);
      if (!owned[ne]) s = ct__error(m->ctx, CT_ERR_OUT_OF_MEMORY, "ct_checkpoint_save");
      else s = entry_of(sl[k], owned[ne], &e[ne]);
      ne++;
    }
  }
  /* metadata: ours, then the caller's */
  int nm = 0;
  const char *keys[64 + 3], *vals[64 + 3];
  char iter[32];
  if (s == CT_OK && n_meta > 64) s = ct__error(m->ctx, CT_ERR_INVALID, "ct_checkpoint_save: at most 64 metadata pairs");
  if (s == CT_OK) {
    keys[nm] = META_FORMAT;
    vals[nm++] = FORMAT_VERSION;
    if (opt) {
      snprintf(iter, sizeof iter, "%lld", (long long)ct_optimizer_iterations(opt));
      keys[nm] = META_OPT;
      vals[nm++] = ct_optimizer_kind_name(ct_optimizer_options_get(opt).kind);
      keys[nm] = META_ITER;
      vals[nm++] = iter;
    }
    for (int i = 0; i < n_meta; ++i) {
      keys[nm] = meta_keys[i];
      vals[nm++] = meta_values[i];
    }
    ct_status ws = ct_st_write_meta(path, e, ne, keys, vals, nm);
    if (ws != CT_OK) s = ct__error(m->ctx, ws, "saving checkpoint %s: %s", path, ct__errmsg_copy());
  }
  for (int i = 0; i < ne; ++i) free(e ? e[i].data : NULL);
  for (int i = 0; owned && i < cap; ++i) free(owned[i]);
  free(owned);
  free(e);
  free(vars);
  return s;
}

static const char *meta_get(const ct_st_file *f, const char *key) {
  for (int i = 0; i < f->meta_count; ++i)
    if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
  return NULL;
}

static ct_status read_file(ct_context *ctx, const char *path, ct_st_file *f, bool with_data) {
  ct_status s = with_data ? ct_st_read(path, f) : ct_st_read_header(path, f);
  if (s != CT_OK) return ct__error(ctx, s, "checkpoint %s: %s", path, ct__errmsg_copy());
  return CT_OK;
}

/* Appended to a mismatch that names differing layers are the likely cause of. */
#define NAMING_HINT                                                                                               \
  ". Automatic layer names count the layers created in the process (\"dense\", \"dense_1\", ...): build the "  \
  "model exactly as when saving, call ct_reset_module_names() before building it, or give the layers explicit "  \
  "names (ct_layer_options.name)"

/* Whether another tensor of the file has v's dtype and shape (the names have shifted). */
static bool shifted(const ct_st_file *f, const ct_st_entry *e, const ct_tensor *v) {
  for (int k = 0; k < f->count; ++k) {
    const ct_st_entry *o = &f->entries[k];
    if (o != e && o->dtype == v->dtype && o->rank == v->rank &&
        memcmp(o->shape, v->shape, sizeof(int64_t) * (size_t)v->rank) == 0 &&
        strncmp(o->name, OPT_PREFIX, strlen(OPT_PREFIX)) != 0)
      return true;
  }
  return false;
}

static ct_status matches(ct_context *ctx, const char *path, const ct_st_file *f, const ct_st_entry *e,
                         const ct_tensor *v, const char *what) {
  if (e->dtype != v->dtype)
    return ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s: %s is %s in the file, %s in the model", path, what,
                     ct_dtype_name(e->dtype), ct_dtype_name(v->dtype));
  if (e->rank != v->rank || memcmp(e->shape, v->shape, sizeof(int64_t) * (size_t)v->rank)) {
    char s1[96], s2[96];
    ct__shape_str(e->rank, e->shape, s1, sizeof s1);
    ct__shape_str(v->rank, v->shape, s2, sizeof s2);
    return ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s: %s has shape %s in the file, %s in the model%s", path, what,
                     s1, s2, f && shifted(f, e, v) ? NAMING_HINT : "");
  }
  return CT_OK;
}

ct_status ct_checkpoint_load(const char *path, ct_module *m, ct_optimizer *opt) {
  if (!path) return ct__error(NULL, CT_ERR_NULL, "ct_checkpoint_load: path is NULL");
  CT_TRY(ct__module_check(m, "ct_checkpoint_load"));
  if (opt) CT_TRY(CT_CHECK_HANDLE(opt, CT_HANDLE_OPTIMIZER, "ct_checkpoint_load"));
  ct_context *ctx = m->ctx;
  ct_st_file f;
  CT_TRY(read_file(ctx, path, &f, true));
  ct_tensor **vars = NULL;
  int nv = 0;
  /* a later version may mean something else by the same tensors: refuse rather than guess */
  const char *version = meta_get(&f, META_FORMAT);
  ct_status s = CT_OK;
  if (version && strcmp(version, FORMAT_VERSION) != 0)
    s = ct__error(ctx, CT_ERR_FORMAT, "checkpoint %s: format version \"%.40s\" is not supported (this library reads "
                  "version " FORMAT_VERSION ")", path, version);
  if (s == CT_OK) s = all_vars(m, &vars, &nv);
  const char *snames[2];
  int ns = opt ? ct__optimizer_slot_names(opt, snames) : 0;
  /* staged[i * 3 + 0]: the variable's value, + 1, + 2: its slots */
  ct_tensor **staged = calloc((size_t)(nv ? nv : 1) * 3, sizeof *staged);
  if (s == CT_OK && !staged) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_checkpoint_load");
  /* 1. names, shapes, dtypes */
  for (int i = 0; i < nv && s == CT_OK; ++i) {
    const ct_st_entry *e = ct_st_find(&f, vars[i]->name);
    if (!e) s = ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s has no tensor %s" NAMING_HINT, path, vars[i]->name);
    else s = matches(ctx, path, &f, e, vars[i], vars[i]->name);
  }
  for (int k = 0; k < f.count && s == CT_OK; ++k) {
    const char *name = f.entries[k].name;
    if (strncmp(name, OPT_PREFIX, strlen(OPT_PREFIX)) == 0) continue;
    bool known = false;
    for (int i = 0; i < nv && !known; ++i) known = strcmp(vars[i]->name, name) == 0;
    if (!known) s = ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s: tensor %s is not a variable of %s" NAMING_HINT, path, name,
                              m->name);
  }
  int64_t iters = 0;
  if (s == CT_OK && opt) {
    const char *kind = meta_get(&f, META_OPT), *it = meta_get(&f, META_ITER);
    const char *want = ct_optimizer_kind_name(ct_optimizer_options_get(opt).kind);
    if (!kind || !it) s = ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s holds no optimizer state", path);
    else if (strcmp(kind, want) != 0)
      s = ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s holds %s state, the optimizer is %s", path, kind, want);
    else {
      char *end;
      errno = 0;
      long long v = strtoll(it, &end, 10);
      /* digits only (strtoll would skip blanks and take a sign); INT64_MAX would overflow at the next step */
      if (errno || *end || end == it || !(*it >= '0' && *it <= '9') || v < 0 || v == INT64_MAX)
        s = ct__error(ctx, CT_ERR_FORMAT, "checkpoint %s: bad optimizer iteration count \"%.40s\" (0 to %lld)", path,
                      it, (long long)INT64_MAX - 1);
      iters = v;
    }
    /* every optimizer entry must be a slot of a variable of the model */
    for (int k = 0; k < f.count && s == CT_OK; ++k) {
      const char *name = f.entries[k].name;
      if (strncmp(name, OPT_PREFIX, strlen(OPT_PREFIX)) != 0) continue;
      bool known = false;
      for (int i = 0; i < nv && !known; ++i)
        for (int j = 0; j < ns && !known; ++j) {
          char *sn = slot_name(vars[i]->name, snames[j]);
          if (!sn) {
            s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_checkpoint_load");
            break;
          }
          known = strcmp(sn, name) == 0;
          free(sn);
        }
      if (s == CT_OK && !known)
        s = ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s: %s is not a slot of this optimizer and model", path, name);
    }
  }
  /* 2. stage every value on the device */
  for (int i = 0; i < nv && s == CT_OK; ++i) {
    const ct_st_entry *e = ct_st_find(&f, vars[i]->name);
    s = ct_tensor_from_data(ctx, e->dtype, e->rank, e->shape, e->data, &staged[i * 3]);
    int found = 0;
    for (int j = 0; j < ns && s == CT_OK; ++j) {
      char *sn = slot_name(vars[i]->name, snames[j]);
      if (!sn) {
        s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_checkpoint_load");
        break;
      }
      const ct_st_entry *se = ct_st_find(&f, sn);
      if (se) {
        s = matches(ctx, path, NULL, se, vars[i], sn);
        if (s == CT_OK) s = ct_tensor_from_data(ctx, se->dtype, se->rank, se->shape, se->data, &staged[i * 3 + 1 + j]);
        found++;
      }
      free(sn);
    }
    if (s == CT_OK && found && found != ns)
      s = ct__error(ctx, CT_ERR_MISMATCH, "checkpoint %s: the optimizer state of %s is incomplete", path, vars[i]->name);
    if (s == CT_OK && opt) s = ct__optimizer_reserve(opt, vars[i]->id);
  }
  /* 3. commit (nothing below can fail) */
  if (s == CT_OK) {
    for (int i = 0; i < nv; ++i) ct__variable_swap_storage(vars[i], staged[i * 3]);
    if (opt) {
      for (int i = 0; i < nv; ++i) {
        ct_tensor *sl[2] = {staged[i * 3 + 1], staged[i * 3 + 2]};
        staged[i * 3 + 1] = staged[i * 3 + 2] = NULL;
        ct__optimizer_set_slots(opt, vars[i]->id, sl);
      }
      ct__optimizer_set_iterations(opt, iters);
    }
  }
  if (staged) ct_tensor_free_n(staged, nv * 3);
  free(staged);
  free(vars);
  ct_st_file_free(&f);
  return s;
}

ct_status ct_checkpoint_metadata(const char *path, const char *key, char *value, size_t cap) {
  if (!path || !key || (!value && cap)) return ct__error(NULL, CT_ERR_NULL, "ct_checkpoint_metadata: NULL argument");
  if (value && cap) value[0] = 0;
  ct_st_file f;
  CT_TRY(read_file(NULL, path, &f, false)); /* the header alone: no tensor byte is read */
  const char *v = meta_get(&f, key);
  ct_status s = CT_OK;
  if (!v) s = ct__error(NULL, CT_ERR_NOT_FOUND, "checkpoint %s has no metadata \"%s\"", path, key);
  else if (cap) snprintf(value, cap, "%s", v);
  ct_st_file_free(&f);
  return s;
}

/* ---- plain named tensors ------------------------------------------------------------------ */
ct_status ct_tensors_save(const char *path, const ct_tensor *const *tensors, const char *const *names, int n) {
  if (!path) return ct__error(NULL, CT_ERR_NULL, "ct_tensors_save: path is NULL");
  if (n < 0) return ct__error(NULL, CT_ERR_INVALID, "ct_tensors_save: negative count %d", n);
  if (n > 0 && (!tensors || !names))
    return ct__error(NULL, CT_ERR_NULL, "ct_tensors_save: the tensor and name arrays are required for %d tensors", n);
  for (int i = 0; i < n; ++i) {
    CT_TRY(CT_CHECK_HANDLE(tensors[i], CT_HANDLE_TENSOR, "ct_tensors_save"));
    if (!names[i]) return ct__error(tensors[i]->ctx, CT_ERR_NULL, "ct_tensors_save: name %d is NULL", i);
  }
  ct_context *ctx = n ? tensors[0]->ctx : NULL;
  ct_st_entry *e = calloc((size_t)(n ? n : 1), sizeof *e);
  ct_status s = e ? CT_OK : ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensors_save");
  for (int i = 0; i < n && s == CT_OK; ++i) s = entry_of(tensors[i], (char *)names[i], &e[i]);
  if (s == CT_OK) {
    ct_status ws = ct_st_write(path, e, n);
    if (ws != CT_OK) s = ct__error(ctx, ws, "ct_tensors_save %s: %s", path, ct__errmsg_copy());
  }
  for (int i = 0; e && i < n; ++i) free(e[i].data);
  free(e);
  return s;
}

ct_status ct_tensors_load(ct_context *ctx, const char *path, int *count, char ***names, ct_tensor ***tensors) {
  if (count) *count = 0;
  if (names) *names = NULL;
  if (tensors) *tensors = NULL;
  if (!path || !count || !names || !tensors) return ct__error(NULL, CT_ERR_NULL, "ct_tensors_load: NULL argument");
  CT_TRY(ct__check_context(ctx, "ct_tensors_load"));
  ct_st_file f;
  ct_status s = ct_st_read(path, &f);
  if (s != CT_OK) return ct__error(ctx, s, "ct_tensors_load %s: %s", path, ct__errmsg_copy());
  char **nm = calloc((size_t)(f.count ? f.count : 1), sizeof *nm);
  ct_tensor **ts = calloc((size_t)(f.count ? f.count : 1), sizeof *ts);
  if (!nm || !ts) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensors_load");
  for (int i = 0; i < f.count && s == CT_OK; ++i) {
    const ct_st_entry *e = &f.entries[i];
    if (!(nm[i] = strdup(e->name))) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensors_load");
    else s = ct_tensor_from_data(ctx, e->dtype, e->rank, e->shape, e->data, &ts[i]);
  }
  int n = f.count;
  ct_st_file_free(&f);
  if (s != CT_OK) {
    ct_tensors_load_free(n, nm, ts);
    return s;
  }
  *count = n;
  *names = nm;
  *tensors = ts;
  return CT_OK;
}

void ct_tensors_load_free(int count, char **names, ct_tensor **tensors) {
  for (int i = 0; i < count; ++i) {
    if (names) free(names[i]);
    if (tensors) ct_tensor_free(tensors[i]);
  }
  free(names);
  free(tensors);
}
