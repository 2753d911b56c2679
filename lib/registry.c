/* registry.c — the process-wide gradient registry (user registrations by op name) and the
 * user-defined ops. Lookups take a mutex; registration is rare, lookups happen per recorded op. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct greg {
  char *name;
  ct_grad_fn fn; /* NULL: declared non-differentiable */
  void *user;
  struct greg *next;
} greg;

typedef struct crec {
  ct_custom_rec rec;
  struct crec *next;
} crec;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static greg *grads;
static crec *customs;
static int n_grads; /* fast path: no registrations at all */

int ct__grad_lookup(const char *name, ct_grad_fn *fn, void **user) {
  if (!__atomic_load_n(&n_grads, __ATOMIC_ACQUIRE)) return 0;
  int r = 0;
  pthread_mutex_lock(&mu);
  for (greg *g = grads; g; g = g->next)
    if (strcmp(g->name, name) == 0) {
      *fn = g->fn;
      *user = g->user;
      r = g->fn ? 1 : 2;
      break;
    }
  pthread_mutex_unlock(&mu);
  return r;
}

static ct_status put(const char *name, ct_grad_fn fn, void *user) {
  if (!name || !*name) return ct__error(NULL, CT_ERR_NULL, "gradient registry: op name is empty");
  pthread_mutex_lock(&mu);
  for (greg *g = grads; g; g = g->next)
    if (strcmp(g->name, name) == 0) {
      g->fn = fn;
      g->user = user;
      pthread_mutex_unlock(&mu);
      return CT_OK;
    }
  greg *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name))) {
    free(g);
    pthread_mutex_unlock(&mu);
    return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "gradient registry");
  }
  g->fn = fn;
  g->user = user;
  g->next = grads;
  grads = g;
  __atomic_add_fetch(&n_grads, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&mu);
  return CT_OK;
}

ct_status ct_register_gradient(const char *op_name, ct_grad_fn fn, void *user) {
  if (!fn) return ct__error(NULL, CT_ERR_NULL, "ct_register_gradient: fn is NULL (use ct_register_no_gradient)");
  return put(op_name, fn, user);
}

ct_status ct_register_no_gradient(const char *op_name) { return put(op_name, NULL, NULL); }

ct_status ct_unregister_gradient(const char *op_name) {
  if (!op_name) return ct__error(NULL, CT_ERR_NULL, "ct_unregister_gradient: op name is NULL");
  pthread_mutex_lock(&mu);
  for (greg **p = &grads; *p; p = &(*p)->next)
    if (strcmp((*p)->name, op_name) == 0) {
      greg *g = *p;
      *p = g->next;
      free(g->name);
      free(g);
      __atomic_sub_fetch(&n_grads, 1, __ATOMIC_RELEASE);
      pthread_mutex_unlock(&mu);
      return CT_OK;
    }
  pthread_mutex_unlock(&mu);
  return ct__error(NULL, CT_ERR_NOT_FOUND, "no gradient registered for \"%s\"", op_name);
}

const ct_custom_rec *ct__custom_find(const char *name) {
  const ct_custom_rec *r = NULL;
  pthread_mutex_lock(&mu);
  for (crec *c = customs; c; c = c->next)
    if (strcmp(c->rec.name, name) == 0) {
      r = &c->rec;
      break;
    }
  pthread_mutex_unlock(&mu);
  return r;
}

ct_status ct_custom_op_register(const ct_custom_op *op) {
  if (!op || !op->name || !op->source || !op->kernel)
    return ct__error(NULL, CT_ERR_NULL, "ct_custom_op_register: name, source and kernel are required");
  if (!*op->name || !*op->kernel)
    return ct__error(NULL, CT_ERR_INVALID, "ct_custom_op_register: the op name and the kernel name must not be empty");
  if (op->n_inputs < 1 || op->n_inputs > 8)
    return ct__error(NULL, CT_ERR_INVALID, "ct_custom_op_register: %d inputs (1..8 allowed)", op->n_inputs);
  for (int i = 0; i < CT_OP_COUNT; ++i)
    if (strcmp(ct_ops[i].name, op->name) == 0)
      return ct__error(NULL, CT_ERR_INVALID, "ct_custom_op_register: \"%s\" is a built-in op", op->name);
  crec *c = calloc(1, sizeof *c);
  if (!c) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct_custom_op_register");
  c->rec.name = strdup(op->name);
  c->rec.source = strdup(op->source);
  c->rec.kernel = strdup(op->kernel);
  c->rec.n_inputs = op->n_inputs;
  c->rec.shape = op->shape;
  c->rec.user = op->user;
  if (!c->rec.name || !c->rec.source || !c->rec.kernel) {
    free(c->rec.name);
    free(c->rec.source);
    free(c->rec.kernel);
    free(c);
    return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct_custom_op_register");
  }
  pthread_mutex_lock(&mu);
  for (crec *o = customs; o; o = o->next)
    if (strcmp(o->rec.name, op->name) == 0) {
      pthread_mutex_unlock(&mu);
      free(c->rec.name);
      free(c->rec.source);
      free(c->rec.kernel);
      free(c);
      return ct__error(NULL, CT_ERR_INVALID, "ct_custom_op_register: an op named \"%s\" exists", op->name);
    }
  c->next = customs;
  customs = c;
  pthread_mutex_unlock(&mu);
  return CT_OK;
}
