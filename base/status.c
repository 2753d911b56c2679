/* status.c — status table, error messages, logging, version. */
#include "ct_base.h"
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
#define N_(name, text) "CT_" #name,
    CT_STATUS_MAP(N_)
#undef N_
};
static const char *const status_texts[] = {
#define T_(name, text) text,
    CT_STATUS_MAP(T_)
#undef T_
};
_Static_assert(sizeof status_names / sizeof *status_names == CT_STATUS_COUNT_, "status table");

const char *ct_status_name(ct_status s) {
  return (unsigned)s < CT_STATUS_COUNT_ ? status_names[s] : "CT_UNKNOWN";
}
const char *ct_status_str(ct_status s) {
  return (unsigned)s < CT_STATUS_COUNT_ ? status_texts[s] : "unknown status";
}

static _Thread_local char tls_msg[CT_ERRMSG_CAP];

const char *ct_errmsg(void) { return tls_msg; }
void ct__clear_error(void) { tls_msg[0] = 0; }

ct_status ct__report(ct_status st, const char *msg) { return st == CT_OK ? CT_OK : ct__error(NULL, st, "%s", msg); }

ct_status ct__fail(char *err, size_t cap, ct_status st, const char *fmt, ...) {
  if (err != NULL && cap > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
  }
  return st;
}

void ct__prefix_err(char *err, size_t cap, const char *prefix) {
  if (err == NULL || cap == 0) return;
  char copy[CT_ERRMSG_CAP];
  snprintf(copy, sizeof copy, "%s", err);
  snprintf(err, cap, "%s: %s", prefix, copy);
}

static _Thread_local char tls_copy[CT_ERRMSG_CAP];
const char *ct__errmsg_copy(void) {
  memcpy(tls_copy, tls_msg, sizeof tls_copy);
  return tls_copy;
}

ct_status ct__error(const ct_context *ctx, ct_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
  va_end(ap);
  if (ct__handle_is(ctx, CT_HANDLE_CONTEXT)) /* not a freed one */
    memcpy(((ct_context_base *)(void *)(uintptr_t)ctx)->errmsg, tls_msg, sizeof tls_msg);
  return s;
}

/* ---- logging ---------------------------------------------------------------------------- */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static ct_log_fn log_fn;
static void *log_user;

void ct_set_log(ct_log_fn fn, void *user) {
  pthread_mutex_lock(&log_mu);
  log_fn = fn;
  log_user = user;
  pthread_mutex_unlock(&log_mu);
}

void ct__log(ct_log_level level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&log_mu);
  ct_log_fn fn = log_fn;
  void *user = log_user;
  pthread_mutex_unlock(&log_mu);
  if (fn) {
    fn(level, msg, user);
    return;
  }
  static const char *names[] = {"debug", "info", "warning", "error"};
  if (level == CT_LOG_DEBUG) {
    static atomic_int verbose = -1; /* read once; any thread may log */
    int v = atomic_load(&verbose);
    if (v < 0) {
      const char *e = ct__getenv("CLTAPE_VERBOSE");
      v = e && *e && strcmp(e, "0") != 0;
      atomic_store(&verbose, v);
    }
    if (!v) return;
  }
  fprintf(stderr, "cltape: %s: %s\n", names[level & 3], msg);
}

int ct_version_number(void) { return CLTAPE_VERSION_NUMBER; }
const char *ct_version_string(void) { return CLTAPE_VERSION_STRING; }

const char *ct_dtype_name(ct_dtype dt) {
  switch (dt) {
    case CT_FLOAT32: return "float32";
    case CT_FLOAT64: return "float64";
    case CT_INT32: return "int32";
    case CT_FLOAT16: return "float16";
    case CT_BFLOAT16: return "bfloat16";
    case CT_INT64: return "int64";
    case CT_BOOL: return "bool";
  }
  return "invalid";
}
size_t ct_dtype_size(ct_dtype dt) {
  switch (dt) {
    case CT_FLOAT32: return 4;
    case CT_FLOAT64: return 8;
    case CT_INT32: return 4;
    case CT_FLOAT16: return 2;
    case CT_BFLOAT16: return 2;
    case CT_INT64: return 8;
    case CT_BOOL: return 1;
  }
  return 0;
}
