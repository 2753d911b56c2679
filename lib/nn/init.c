/* init.c — weight initializers on top of the host-side Philox generator (ct_random_*), so that
 * a seed gives the same weights on every device. */
#include "nn_internal.h"
#include <math.h>

ct_status ct_initializer_fans(int rank, const int64_t *shape, double *fan_in, double *fan_out) {
  if (!fan_in || !fan_out) return ct__error(NULL, CT_ERR_NULL, "ct_initializer_fans: fan_in and fan_out are required");
  if (rank < 0 || rank > CT_MAX_RANK || (rank > 0 && !shape))
    return ct__error(NULL, CT_ERR_SHAPE, "ct_initializer_fans: bad rank %d or NULL shape", rank);
  for (int i = 0; i < rank; ++i)
    if (shape[i] < 0)
      return ct__error(NULL, CT_ERR_SHAPE, "ct_initializer_fans: negative extent %lld", (long long)shape[i]);
  if (rank == 0) {
    *fan_in = *fan_out = 1;
  } else if (rank == 1) {
    *fan_in = *fan_out = (double)shape[0];
  } else if (rank == 2) {
    *fan_in = (double)shape[0];
    *fan_out = (double)shape[1];
  } else {
    double receptive = 1;
    for (int i = 0; i < rank - 2; ++i) receptive *= (double)shape[i];
    *fan_in = (double)shape[rank - 2] * receptive;
    *fan_out = (double)shape[rank - 1] * receptive;
  }
  return CT_OK;
}

ct_status ct_initialize(ct_context *ctx, ct_initializer init, ct_dtype dtype, int rank, const int64_t *shape,
                        uint64_t seed, ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_initialize: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_initialize"));
  if (!ct__is_float(dtype)) return ct__error(ctx, CT_ERR_DTYPE, "ct_initialize: dtype must be float32 or float64");
  int64_t n;
  CT_TRY(ct__check_shape(ctx, rank, shape, &n));
  double fi, fo;
  CT_TRY(ct_initializer_fans(rank, shape, &fi, &fo));
  if (fi <= 0) fi = 1;
  if (fo <= 0) fo = 1;
  switch (init) {
    case CT_INIT_ZEROS: return ct_zeros(ctx, dtype, rank, shape, out);
    case CT_INIT_ONES: return ct_ones(ctx, dtype, rank, shape, out);
    case CT_INIT_GLOROT_UNIFORM: {
      double l = sqrt(6.0 / (fi + fo));
      return ct_random_uniform(ctx, dtype, rank, shape, -l, l, seed, out);
    }
    case CT_INIT_GLOROT_NORMAL: return ct_random_normal(ctx, dtype, rank, shape, 0.0, sqrt(2.0 / (fi + fo)), seed, out);
    case CT_INIT_HE_UNIFORM: {
      double l = sqrt(6.0 / fi);
      return ct_random_uniform(ctx, dtype, rank, shape, -l, l, seed, out);
    }
    case CT_INIT_HE_NORMAL: return ct_random_normal(ctx, dtype, rank, shape, 0.0, sqrt(2.0 / fi), seed, out);
  }
  return ct__error(ctx, CT_ERR_INVALID, "ct_initialize: unknown initializer %d", (int)init);
}
