/* custom_gradient.c — functions with a gradient of their own (ct_custom_gradient, TensorFlow's
 * tf.custom_gradient) and functions recomputed in the backward pass (ct_recompute_grad,
 * tf.recompute_grad).
 *
 * Both run the user's function, then record one Custom op on the active tapes (lib/tape.c,
 * ct__tape_record_closure): its inputs are the function's inputs, then the trainable variables
 * the function read that are not inputs (a variable watcher notes them while it runs), then the
 * residuals the forward kept for the gradient (held, never differentiated). The record's
 * ct_custom_rec belongs to a closure that says how to differentiate it: the user's gradient, or
 * the function to run again under a tape of its own. Its output is a new tensor (a fresh id
 * sharing the function's result), so the backward pass reaches the function only through the
 * record. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 64
#define MAX_RESIDUALS 8

struct ct_closure {
  ct_custom_rec rec;          /* rec.closure points back here; rec.name names the records */
  int refs;                   /* the records holding it, and the call while it runs */
  ct_custom_grad_fn gradient; /* ct_custom_gradient */
  ct_fn recompute;            /* ct_recompute_grad */
  void *user;
  int n_inputs, n_vars, n_residuals;
  unsigned residual_mask;     /* which residuals the forward gave (the record holds those only) */
  ct_tensor **vars;           /* the captured variables (references) */
};

void ct__closure_retain(ct_closure *c) {
  if (c) c->refs++;
}

void ct__closure_release(ct_closure *c) {
  if (!c || --c->refs > 0) return;
  ct_tensor_free_n(c->vars, c->n_vars);
  free(c->vars);
  free(c->rec.name);
  free(c);
}

static ct_status check_inputs(ct_tensor *const *inputs, int n, const char *fn) {
  if (n < 0 || n > MAX_INPUTS) return ct__error(NULL, CT_ERR_INVALID, "%s: %d inputs (0..%d allowed)", fn, n, MAX_INPUTS);
  if (n > 0 && !inputs) return ct__error(NULL, CT_ERR_NULL, "%s: inputs is NULL", fn);
  for (int i = 0; i < n; ++i) {
    CT_TRY(ct__check(inputs[i], fn));
    if (inputs[i]->ctx != inputs[0]->ctx)
      return ct__error(inputs[0]->ctx, CT_ERR_CONTEXT, "%s: input %d belongs to another context than input 0", fn, i);
  }
  return CT_OK;
}

/* The status of a user function, with a message when it gave none. */
static ct_status said(ct_status s, const char *what, const char *name) {
  if (s != CT_OK && !ct_errmsg()[0])
    ct__error(NULL, s, "the %s function of %s returned %s without a message", what, name, ct_status_name(s));
  return s;
}

/* After the function ran (its output y, the variables w noted, the residuals): *out and the record.
 * The closure c is the call's (its reference is dropped here). */
static ct_status finish(ct_closure *c, ct_tensor *const *inputs, int n, ct_var_watcher *w, ct_tensor **res,
                        const ct_tensor *y, bool keep_out, ct_tensor **out) {
  ct_status s = ct__tensor_alias(y, y->rank, y->shape, false, out);
  /* the captured variables: those read that are not inputs */
  c->vars = w->n ? calloc((size_t)w->n, sizeof *c->vars) : NULL;
  if (s == CT_OK && w->n && !c->vars) s = ct__error(y->ctx, CT_ERR_OUT_OF_MEMORY, "custom gradient: variables");
  for (int k = 0; k < w->n && s == CT_OK; ++k) {
    bool is_input = false;
    for (int i = 0; i < n && !is_input; ++i) is_input = inputs[i]->id == w->vars[k]->id;
    if (!is_input) c->vars[c->n_vars++] = ct_tensor_retain(w->vars[k]);
  }
  int n_in = n + c->n_vars;
  for (int r = 0; r < c->n_residuals; ++r)
    if (res[r]) c->residual_mask |= 1u << r, n_in++;
  const ct_tensor **in = calloc((size_t)(n_in ? n_in : 1), sizeof *in);
  bool *keep = calloc((size_t)(n_in ? n_in : 1), sizeof *keep);
  if (s == CT_OK && (!in || !keep)) s = ct__error(y->ctx, CT_ERR_OUT_OF_MEMORY, "custom gradient: record");
  if (s == CT_OK) {
    int k = 0;
    for (int i = 0; i < n; ++i, ++k) {
      in[k] = inputs[i];
      keep[k] = true;
    }
    for (int j = 0; j < c->n_vars; ++j, ++k) in[k] = c->vars[j]; /* read again by the gradient, not kept */
    for (int r = 0; r < c->n_residuals; ++r)
      if (res[r]) {
        in[k] = res[r];
        keep[k++] = true;
      }
    ct_attrs at = ct__attrs(CT_AT_CUSTOM);
    at.custom.rec = &c->rec;
    s = ct__tape_record_closure(in, n_in, n + c->n_vars, keep, keep_out, *out, &at);
  }
  free(in);
  free(keep);
  ct__closure_release(c);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
  }
  return s;
}

static ct_closure *closure_new(const char *name, int n_inputs, int n_residuals, void *user) {
  ct_closure *c = calloc(1, sizeof *c);
  if (!c || !(c->rec.name = strdup(name))) {
    free(c);
    return NULL;
  }
  c->rec.closure = c;
  c->rec.n_inputs = n_inputs;
  c->refs = 1;
  c->user = user;
  c->n_inputs = n_inputs;
  c->n_residuals = n_residuals;
  return c;
}

ct_status ct_custom_gradient(const ct_custom_function *fn, ct_tensor *const *inputs, int n_inputs, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_custom_gradient: out is NULL");
  *out = NULL;
  if (!fn || !fn->forward || !fn->gradient)
    return ct__error(NULL, CT_ERR_NULL, "ct_custom_gradient: the function, its forward and its gradient are required");
  if (fn->n_residuals < 0 || fn->n_residuals > MAX_RESIDUALS)
    return ct__error(NULL, CT_ERR_INVALID, "ct_custom_gradient: %d residuals (0..%d allowed)", fn->n_residuals,
                     MAX_RESIDUALS);
  CT_TRY(check_inputs(inputs, n_inputs, "ct_custom_gradient"));
  const char *name = fn->name && *fn->name ? fn->name : "CustomGradient";
  ct_closure *c = closure_new(name, n_inputs, fn->n_residuals, fn->user);
  if (!c) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct_custom_gradient");
  c->gradient = fn->gradient;
  ct_tensor *res[MAX_RESIDUALS] = {NULL}, *y = NULL;
  ct_var_watcher w;
  ct__watcher_push(&w);
  ct__clear_error();
  ct_status s = said(fn->forward(inputs, n_inputs, res, &y, fn->user), "forward", name);
  ct__watcher_pop(&w);
  if (s == CT_OK && !y)
    s = ct__error(NULL, CT_ERR_INVALID, "ct_custom_gradient: the forward function of %s gave no output", name);
  if (s == CT_OK) s = ct__check(y, "ct_custom_gradient (the forward function's output)");
  for (int r = 0; r < fn->n_residuals && s == CT_OK; ++r)
    if (res[r]) s = ct__check(res[r], "ct_custom_gradient (a residual)");
  if (s == CT_OK) s = finish(c, inputs, n_inputs, &w, res, y, true, out);
  else ct__closure_release(c);
  ct_tensor_free_n(res, MAX_RESIDUALS);
  ct_tensor_free(y);
  ct__watcher_free(&w);
  return s;
}

ct_status ct_recompute_grad(ct_fn f, void *user, ct_tensor *const *inputs, int n_inputs, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_recompute_grad: out is NULL");
  *out = NULL;
  if (!f) return ct__error(NULL, CT_ERR_NULL, "ct_recompute_grad: f is NULL");
  CT_TRY(check_inputs(inputs, n_inputs, "ct_recompute_grad"));
  ct_closure *c = closure_new("RecomputeGrad", n_inputs, 0, user);
  if (!c) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct_recompute_grad");
  c->recompute = f;
  ct_tensor *y = NULL;
  ct_var_watcher w;
  /* the tapes do not record f (TensorFlow's stop_recording); the watcher still sees its reads */
  ct__tapes_suspend(+1);
  ct__watcher_push(&w);
  ct__clear_error();
  ct_status s = said(f(inputs, n_inputs, &y, user), "recomputed", "RecomputeGrad");
  ct__watcher_pop(&w);
  ct__tapes_suspend(-1);
  if (s == CT_OK && !y) s = ct__error(NULL, CT_ERR_INVALID, "ct_recompute_grad: f gave no output");
  if (s == CT_OK) s = ct__check(y, "ct_recompute_grad (f's output)");
  if (s == CT_OK) s = finish(c, inputs, n_inputs, &w, NULL, y, false, out);
  else ct__closure_release(c);
  ct_tensor_free(y);
  ct__watcher_free(&w);
  return s;
}

/* The backward of a recomputed function: f again, under a tape that watches fresh identities of
 * the inputs (so that an input given twice gets a gradient per position) and the variables. */
static ct_status recompute_gradient(const ct_closure *c, const ct_entry *e, ct_tensor *const *ins, const bool *need,
                                    const ct_tensor *dy, ct_tensor **dx) {
  int n = c->n_inputs, ns = n + c->n_vars;
  ct_tensor **src = calloc((size_t)(ns ? ns : 1), sizeof *src), **grads = calloc((size_t)(ns ? ns : 1), sizeof *grads);
  ct_tensor *y = NULL, *og = (ct_tensor *)dy;
  ct_tape *t = NULL;
  ct_tape_options o = {false, false};
  ct_status s = !src || !grads ? ct__error(dy->ctx, CT_ERR_OUT_OF_MEMORY, "recompute_grad") : CT_OK;
  if (s == CT_OK) s = ct_tape_begin(dy->ctx, &o, &t);
  for (int i = 0; i < n && s == CT_OK; ++i) {
    s = ct_identity(ins[i], &src[i]);
    if (s == CT_OK && ct__is_floating(src[i]->dtype)) s = ct_tape_watch(t, src[i]);
  }
  for (int j = 0; j < c->n_vars && s == CT_OK; ++j) {
    src[n + j] = ct_tensor_retain(c->vars[j]);
    s = ct_tape_watch(t, src[n + j]);
  }
  if (s == CT_OK) s = said(c->recompute(src, n, &y, c->user), "recomputed", c->rec.name);
  if (t) ct_tape_end(t);
  if (s == CT_OK && !y) s = ct__error(dy->ctx, CT_ERR_INVALID, "recompute_grad: f gave no output when run again");
  if (s == CT_OK) s = ct__check(y, "recompute_grad (f's output)");
  if (s == CT_OK && (y->dtype != e->out.dtype || y->rank != e->out.rank ||
                     memcmp(y->shape, e->out.shape, sizeof(int64_t) * (size_t)y->rank))) {
    char s1[96], s2[96];
    ct__shape_str(y->rank, y->shape, s1, sizeof s1);
    ct__shape_str(e->out.rank, e->out.shape, s2, sizeof s2);
    s = ct__error(dy->ctx, CT_ERR_MISMATCH, "recompute_grad: f gave %s %s when run again, %s %s the first time",
                  ct_dtype_name(y->dtype), s1, ct_dtype_name(e->out.dtype), s2);
  }
  if (s == CT_OK) s = ct_tape_gradient(t, &y, 1, src, ns, &og, CT_UNCONNECTED_NONE, grads);
  for (int i = 0; i < ns && s == CT_OK; ++i)
    if (need[i]) {
      dx[i] = grads[i];
      grads[i] = NULL;
    }
  if (grads) ct_tensor_free_n(grads, ns);
  if (src) ct_tensor_free_n(src, ns);
  free(grads);
  free(src);
  ct_tensor_free(y);
  ct_tape_free(t);
  return s;
}

ct_status ct__closure_gradient(ct_closure *c, const ct_entry *e, const bool *need, const ct_tensor *dy,
                               ct_tensor **dx) {
  ct_tensor *ins[MAX_INPUTS] = {NULL}, *res[MAX_RESIDUALS] = {NULL};
  int n = c->n_inputs;
  for (int i = 0; i < n; ++i) ins[i] = e->in[i].saved;
  if (c->recompute) return recompute_gradient(c, e, ins, need, dy, dx);
  for (int r = 0, k = n + c->n_vars; r < c->n_residuals; ++r)
    if (c->residual_mask & (1u << r)) res[r] = e->in[k++].saved;
  ct_custom_grad_args a = {n, ins, e->out.saved, c->n_vars, c->vars, c->n_residuals, res, need};
  return said(c->gradient(&a, dy, dx, dx + n, c->user), "gradient", c->rec.name);
}
