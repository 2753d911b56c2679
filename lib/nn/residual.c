/* residual.c — the residual block: y = x + f(x), or projection(x) + f(x). f and the projection
 * are its children; the sum is an AddV2, so the gradient reaches x through both terms. */
#include "nn_internal.h"
#include <string.h>

static ct_status residual_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training,
                                  ct_tensor **out) {
  (void)p;
  ct_tensor *h = NULL, *sc = NULL;
  ct_status s = ct_module_call(m->children[0], x, training, &h);
  if (s == CT_OK)
    s = m->nchildren > 1 ? ct_module_call(m->children[1], x, training, &sc) : ct_identity(x, &sc);
  if (s == CT_OK && (sc->rank != h->rank || memcmp(sc->shape, h->shape, sizeof(int64_t) * (size_t)h->rank) != 0)) {
    char s1[96], s2[96];
    ct__shape_str(h->rank, h->shape, s1, sizeof s1);
    ct__shape_str(sc->rank, sc->shape, s2, sizeof s2);
    s = ct__error(m->ctx, CT_ERR_SHAPE,
                  "residual block %s: %s gives %s, its shortcut (%s) gives %s; the two must have one shape%s", m->name,
                  m->children[0]->name, s1, m->nchildren > 1 ? m->children[1]->name : "the input", s2,
                  m->nchildren > 1 ? "" : " (give the block a projection)");
  }
  if (s == CT_OK) s = ct_add(sc, h, out);
  ct_tensor_free(h);
  ct_tensor_free(sc);
  return s;
}

static void residual_describe(const ct_module *m, char *buf, size_t cap) {
  snprintf(buf, cap, "x -> %s(x) + %s", m->children[0]->name, m->nchildren > 1 ? m->children[1]->name : "x");
}

static const ct_module_vtable residual_vt = {"Residual", "residual", residual_forward, residual_describe, NULL, NULL};

ct_status ct_residual_create(ct_context *ctx, ct_module *f, ct_module *projection, const char *name,
                             ct_module **out) {
  static const char fn[] = "ct_residual_create";
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(ct__check_context(ctx, fn));
  CT_TRY(ct__module_check(f, fn));
  if (projection) CT_TRY(ct__module_check(projection, fn));
  if (f->ctx != ctx || (projection && projection->ctx != ctx))
    return ct__error(ctx, CT_ERR_CONTEXT, "%s: the modules belong to another context", fn);
  if (projection == f) return ct__error(ctx, CT_ERR_INVALID, "%s: f and the projection are one module", fn);
  for (int i = 0; i < 2; ++i) {
    const ct_module *c = i ? projection : f;
    if (c && c->parent)
      return ct__error(ctx, CT_ERR_INVALID, "%s: %s already belongs to %s", fn, c->name, c->parent->name);
  }
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &residual_vt, name, NULL, &m));
  ct_status s = ct_module_add(m, f);
  if (s == CT_OK && projection) s = ct_module_add(m, projection);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}
