/* Data parallelism over several contexts of one process: gradients averaged on the host. */
#include "dist_internal.h"

#include <stdlib.h>
#include <string.h>

/* Adds the n elements of a float32 or float64 host buffer to acc (double). */
static void add_to(double *acc, const void *src, ct_dtype dt, int64_t n) {
  if (dt == CT_FLOAT32)
    for (int64_t k = 0; k < n; ++k) acc[k] += ((const float *)src)[k];
  else
    for (int64_t k = 0; k < n; ++k) acc[k] += ((const double *)src)[k];
}

/* Mean of gradient i over the replicas, written to out[r * n + i] on every replica. */
static ct_status reduce_one(ct_tensor *const *grads, int R, int n, int i, ct_tensor **out, void *host, double *acc) {
  const ct_tensor *g0 = grads[i];
  ct_dtype dt = ct_tensor_dtype(g0);
  int64_t size = ct_tensor_size(g0);
  memset(acc, 0, sizeof(double) * (size_t)size);
  for (int r = 0; r < R; ++r) {
    CTD_TRY(ct_tensor_read(grads[r * n + i], host, ctd_bytes(g0)), "ct_replicas_allreduce_mean: reading a gradient");
    add_to(acc, host, dt, size);
  }
  for (int64_t k = 0; k < size; ++k) {
    double v = acc[k] / R;
    if (dt == CT_FLOAT32) ((float *)host)[k] = (float)v;
    else ((double *)host)[k] = v;
  }
  for (int r = 0; r < R; ++r) {
    const ct_tensor *g = grads[r * n + i];
    CTD_TRY(ct_tensor_from_data(ct_tensor_context(g), dt, ct_tensor_rank(g), ct_tensor_shape(g), host, &out[r * n + i]),
            "ct_replicas_allreduce_mean: writing the mean");
  }
  return CT_OK;
}

ct_status ct_replicas_allreduce_mean(ct_tensor *const *grads, int n_replicas, int n, ct_tensor **out) {
  const char *fn = "ct_replicas_allreduce_mean";
  if (!grads || !out) return ctd_error(CT_ERR_NULL, "%s: grads or out is NULL", fn);
  if (n_replicas < 1 || n < 0) return ctd_error(CT_ERR_INVALID, "%s: %d replicas, %d gradients", fn, n_replicas, n);
  int R = n_replicas;
  memset(out, 0, sizeof(ct_tensor *) * (size_t)R * (size_t)n);
  size_t max_elems = 1;
  for (int i = 0; i < n; ++i) {
    for (int r = 0; r < R; ++r)
      if ((grads[r * n + i] == NULL) != (grads[i] == NULL))
        return ctd_error(CT_ERR_MISMATCH, "%s: gradient %d is NULL on some replicas only", fn, i);
    if (!grads[i]) continue;
    for (int r = 0; r < R; ++r) CTD_CHECK(ctd_check_like(grads[r * n + i], grads[i], fn, i));
    if ((size_t)ct_tensor_size(grads[i]) > max_elems) max_elems = (size_t)ct_tensor_size(grads[i]);
  }
  double *acc = malloc(sizeof(double) * max_elems);
  void *host = malloc(sizeof(double) * max_elems);
  ct_status s = acc && host ? CT_OK : ctd_error(CT_ERR_OUT_OF_MEMORY, "%s: host staging", fn);
  for (int i = 0; s == CT_OK && i < n; ++i)
    if (grads[i]) s = reduce_one(grads, R, n, i, out, host, acc);
  free(acc);
  free(host);
  if (s != CT_OK) {
    for (size_t k = 0; k < (size_t)R * (size_t)n; ++k) ct_tensor_free(out[k]);
    memset(out, 0, sizeof(ct_tensor *) * (size_t)R * (size_t)n);
  }
  return s;
}

ct_status ct_replicas_broadcast_variables(ct_tensor *const *vars, int n_replicas, int n) {
  const char *fn = "ct_replicas_broadcast_variables";
  if (!vars) return ctd_error(CT_ERR_NULL, "%s: vars is NULL", fn);
  if (n_replicas < 1 || n < 0) return ctd_error(CT_ERR_INVALID, "%s: %d replicas, %d variables", fn, n_replicas, n);
  for (int k = 0; k < n_replicas * n; ++k)
    if (!vars[k]) return ctd_error(CT_ERR_NULL, "%s: variable %d of replica %d is NULL", fn, k % n, k / n);
  for (int i = 0; i < n; ++i) {
    for (int r = 1; r < n_replicas; ++r) CTD_CHECK(ctd_check_like(vars[r * n + i], vars[i], fn, i));
    void *host = malloc(ctd_bytes(vars[i]) ? ctd_bytes(vars[i]) : 1);
    if (!host) return ctd_error(CT_ERR_OUT_OF_MEMORY, "%s: host staging", fn);
    ct_status s = ct_tensor_read(vars[i], host, ctd_bytes(vars[i]));
    for (int r = 1; s == CT_OK && r < n_replicas; ++r) {
      ct_tensor *v = vars[r * n + i], *t = NULL;
      s = ct_tensor_from_data(ct_tensor_context(v), ct_tensor_dtype(v), ct_tensor_rank(v), ct_tensor_shape(v), host, &t);
      if (s == CT_OK) s = ct_variable_assign(v, t);
      ct_tensor_free(t);
    }
    free(host);
    if (s != CT_OK) return ctd_lib_error(s, fn);
  }
  return CT_OK;
}
