/* env.c — the library's reading of its environment variables. Every CLTAPE_* variable (and the
 * cache directory's XDG_CACHE_HOME and HOME) is read through ct__getenv. Tests and benchmarks
 * that change a variable in a running process call ct__env_override, which keeps the value here:
 * setenv and unsetenv may move or free the process environment while another thread reads it
 * (PoCL's workers call getenv while they run kernels), so they never change it once OpenCL runs. */
#include "ct_base.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct env_entry {
  struct env_entry *next;
  const char *value; /* NULL: unset */
  char name[];
} env_entry;

/* Values are kept for the life of the process: a pointer ct__getenv returned stays valid after the
 * test sets the variable again. */
typedef struct env_value {
  struct env_value *next;
  char text[];
} env_value;

static pthread_mutex_t env_mu = PTHREAD_MUTEX_INITIALIZER;
static env_entry *env_overrides;
static env_value *env_values;
static atomic_bool env_any; /* any override yet: without one, no lock on the way to getenv */

const char *ct__getenv(const char *name) {
  if (!atomic_load_explicit(&env_any, memory_order_acquire)) return getenv(name);
  pthread_mutex_lock(&env_mu);
  for (const env_entry *e = env_overrides; e; e = e->next)
    if (strcmp(e->name, name) == 0) {
      const char *v = e->value;
      pthread_mutex_unlock(&env_mu);
      return v;
    }
  pthread_mutex_unlock(&env_mu);
  return getenv(name);
}

ct_status ct__env_override(const char *name, const char *value) {
  if (!name || !*name) return ct__error(NULL, CT_ERR_INVALID, "ct__env_override: no variable name");
  env_value *v = NULL;
  if (value) {
    size_t n = strlen(value) + 1;
    v = malloc(sizeof *v + n);
    if (!v) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct__env_override: out of host memory");
    memcpy(v->text, value, n);
  }
  pthread_mutex_lock(&env_mu);
  env_entry *e = env_overrides;
  while (e && strcmp(e->name, name) != 0) e = e->next;
  if (!e) {
    size_t n = strlen(name) + 1;
    e = malloc(sizeof *e + n);
    if (!e) {
      pthread_mutex_unlock(&env_mu);
      free(v);
      return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "ct__env_override: out of host memory");
    }
    memcpy(e->name, name, n);
    e->next = env_overrides;
    env_overrides = e;
  }
  if (v) {
    v->next = env_values;
    env_values = v;
  }
  e->value = v ? v->text : NULL;
  atomic_store_explicit(&env_any, true, memory_order_release);
  pthread_mutex_unlock(&env_mu);
  return CT_OK;
}
