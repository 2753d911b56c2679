/* ct_base.h — the base every layer shares: the public types (status, dtypes, the context
 * handle), the library's way of reporting errors and logging (base/status.c), and the part of a
 * context that error reporting writes. host/ includes this and its backend header, nothing of
 * lib/; lib/ includes this and host/backend.h. */
#ifndef CT_BASE_H
#define CT_BASE_H
#include "cltape.h"

#define CT_ERRMSG_CAP 2048
/* The first member of every context (struct ct_context in host/ct_host.h): the context's last
 * error message, written by ct__error. */
typedef struct {
  char errmsg[CT_ERRMSG_CAP];
} ct_context_base;

/* ---- errors ---------------------------------------------------------------------------- */
/* Records "<detail>" as the thread's (and ctx's, when not NULL) last message; returns s. */
ct_status ct__error(const ct_context *ctx, ct_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void ct__log(ct_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A copy of the thread's last message, to wrap it in a new one:
 * ct__error(ctx, s, "reading %s: %s", path, ct__errmsg_copy()). */
const char *ct__errmsg_copy(void);
#define CT_TRY(expr)                      \
  do {                                    \
    ct_status ct_try_s_ = (expr);         \
    if (ct_try_s_ != CT_OK) return ct_try_s_; \
  } while (0)

#endif
