/* random.c — random tensors (ct_random_normal, ct_random_uniform) from Philox-4x32-10 on the
 * host, the same numbers on every device. */
#include "ct_internal.h"
#include <math.h>
#include <stdlib.h>

static ct_status random_tensor(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double a, double b,
                               uint64_t seed, bool normal, ct_tensor **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "random: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "random"));
  if (!ct__is_float(dtype) && !ct__is_half(dtype))
    return ct__error(ctx, CT_ERR_DTYPE, "random tensors must be float32, float64, float16 or bfloat16");
  /* the device tensor first: a shape the device cannot hold fails before any host staging */
  ct_tensor *t;
  CT_TRY(ct__tensor_new(ctx, dtype, rank, shape, &t));
  int64_t n = t->size;
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  void *host = malloc(ct_dtype_size(dtype) * (size_t)(n ? n : 1));
  if (!v || !host) {
    free(v);
    free(host);
    ct_tensor_free(t);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "random: host staging of %lld elements", (long long)n);
  }
  if (normal) ct__philox_fill_normal(seed, n, v);
  else ct__philox_fill_uniform(seed, n, v);
  for (int64_t i = 0; i < n; ++i) {
    double x = normal ? a + b * v[i] : a + (b - a) * v[i];
    ct__elem_set(dtype, host, (size_t)i, x);
  }
  free(v);
  ct_status s = ctb_write(ctx, t->buf, 0, host, (size_t)n * ct_dtype_size(dtype));
  free(host);
  if (s != CT_OK) {
    ct_tensor_free(t);
    return s;
  }
  *out = t;
  return CT_OK;
}

ct_status ct_random_normal(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double mean, double stddev,
                           uint64_t seed, ct_tensor **out) {
  return random_tensor(ctx, dtype, rank, shape, mean, stddev, seed, true, out);
}
ct_status ct_random_uniform(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double low, double high,
                            uint64_t seed, ct_tensor **out) {
  return random_tensor(ctx, dtype, rank, shape, low, high, seed, false, out);
}

/* ---- Philox-4x32-10 ------------------------------------------------------------------------ */
static void philox(uint32_t ctr[4], uint32_t key[2]) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = (uint64_t)M0 * ctr[0], p1 = (uint64_t)M1 * ctr[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
    ctr[0] = n0;
    ctr[1] = (uint32_t)p1;
    ctr[2] = n2;
    ctr[3] = (uint32_t)p0;
    k0 += W0;
    k1 += W1;
  }
}

void ct__philox_block(uint64_t seed, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  philox(ctr, key);
  memcpy(out, ctr, sizeof ctr);
}

static double u01(uint32_t hi, uint32_t lo) { /* 53 random bits in [0, 1) */
  return (double)(((uint64_t)hi << 21) ^ (lo >> 11)) * (1.0 / 9007199254740992.0);
}

void ct__philox_fill_uniform(uint64_t seed, int64_t n, double *out) {
  for (int64_t i = 0; i < n; i += 2) {
    uint32_t r[4];
    ct__philox_block(seed, (uint64_t)i / 2, r);
    out[i] = u01(r[0], r[1]);
    if (i + 1 < n) out[i + 1] = u01(r[2], r[3]);
  }
}

void ct__philox_fill_normal(uint64_t seed, int64_t n, double *out) {
  for (int64_t i = 0; i < n; i += 2) {
    uint32_t r[4];
    ct__philox_block(seed ^ 0x6e6f726d616cULL, (uint64_t)i / 2, r);
    double u1 = 1.0 - u01(r[0], r[1]), u2 = u01(r[2], r[3]); /* u1 in (0, 1] */
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    out[i] = rad * cos(th);
    if (i + 1 < n) out[i + 1] = rad * sin(th);
  }
}
