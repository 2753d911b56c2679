/* contexts.h — the context stress of tests/stress/contexts.c. */
#ifndef CT_STRESS_CONTEXTS_H
#define CT_STRESS_CONTEXTS_H
#include <stddef.h>
#include "cltape.h"
/* `threads` threads (at most 64) start together; each runs `rounds` times: create a context on the
 * CPU device, record sin(x) * x summed on a tape, take the gradient, check the values, free it all.
 * Returns the number of threads that failed (the first one's message in `error`), -1 when the
 * threads could not be started. */
int ct_stress_contexts(int threads, int rounds, char *error, size_t cap);
#endif
