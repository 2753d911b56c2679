/* text.c — a growable string for the kernel sources the library generates (host/program.c,
 * lib/fuse.c). */
#include "ct_base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Room for `more` bytes and the NUL after the text; false (and oom) when an allocation fails. */
static bool reserve(ct_text *t, size_t more) {
  if (t->oom) return false;
  if (t->p && t->n + more + 1 <= t->cap) return true;
  size_t nc = t->cap ? t->cap * 2 : 4096;
  while (nc < t->n + more + 1) nc *= 2;
  char *np = realloc(t->p, nc);
  if (!np) {
    t->oom = true;
    return false;
  }
  if (!t->p) np[0] = 0;
  t->p = np;
  t->cap = nc;
  return true;
}

void ct__text_add(ct_text *t, const char *s) {
  size_t l = strlen(s);
  if (!reserve(t, l)) return;
  memcpy(t->p + t->n, s, l + 1);
  t->n += l;
}

void ct__text_printf(ct_text *t, const char *fmt, ...) {
  if (t->oom) return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (k < 0) {
    t->oom = true;
    return;
  }
  if (!reserve(t, (size_t)k)) return;
  va_start(ap, fmt);
  vsnprintf(t->p + t->n, (size_t)k + 1, fmt, ap);
  va_end(ap);
  t->n += (size_t)k;
}
