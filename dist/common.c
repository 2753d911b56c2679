/* Error messages and argument checks shared by the replica and MPI parts of cltape_dist. */
#include "dist_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char ctd_msg[1024];

const char *ct_dist_errmsg(void) { return ctd_msg; }

ct_status ctd_error(ct_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctd_msg, sizeof ctd_msg, fmt, ap);
  va_end(ap);
  return s;
}

ct_status ctd_lib_error(ct_status s, const char *what) {
  return ctd_error(s, "%s: %s", what, ct_errmsg());
}

size_t ctd_bytes(const ct_tensor *t) { return (size_t)ct_tensor_size(t) * ct_dtype_size(ct_tensor_dtype(t)); }

ct_status ctd_check_like(const ct_tensor *t, const ct_tensor *ref, const char *fn, int index) {
  ct_dtype dt = ct_tensor_dtype(t);
  if (dt != CT_FLOAT32 && dt != CT_FLOAT64)
    return ctd_error(CT_ERR_DTYPE, "%s: tensor %d is not float32 or float64", fn, index);
  if (dt != ct_tensor_dtype(ref)) return ctd_error(CT_ERR_DTYPE, "%s: tensor %d: dtypes differ between replicas", fn, index);
  int rank = ct_tensor_rank(t);
  if (rank != ct_tensor_rank(ref) ||
      (rank > 0 && memcmp(ct_tensor_shape(t), ct_tensor_shape(ref), sizeof(int64_t) * (size_t)rank) != 0))
    return ctd_error(CT_ERR_SHAPE, "%s: tensor %d: shapes differ between replicas", fn, index);
  return CT_OK;
}
