/* Internal helpers of the cltape_dist library (replicas and MPI). */
#ifndef CLTAPE_DIST_INTERNAL_H
#define CLTAPE_DIST_INTERNAL_H
#include "cltape_dist.h"

/* Records a message of this library (printf style) and returns s. */
ct_status ctd_error(ct_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records the library's ct_errmsg() for a failed cltape call and returns s. */
ct_status ctd_lib_error(ct_status s, const char *what);
/* Returns a status of this library's own checks (its message already recorded). */
#define CTD_CHECK(call)              \
  do {                               \
    ct_status c_ = (call);           \
    if (c_ != CT_OK) return c_;      \
  } while (0)
#define CTD_TRY(call, what)                       \
  do {                                            \
    ct_status s_ = (call);                        \
    if (s_ != CT_OK) return ctd_lib_error(s_, what); \
  } while (0)
/* Checks that t is a float32 or float64 tensor shaped and typed like ref (ref may be t). */
ct_status ctd_check_like(const ct_tensor *t, const ct_tensor *ref, const char *fn, int index);
/* Bytes of a tensor's data. */
size_t ctd_bytes(const ct_tensor *t);
#endif
