/* dtype.c — elements on the host: float16 and bfloat16 bits to and from double, and reading or
 * writing one element of any dtype as a double (reading tensors back, printing, file formats,
 * constants). */
#include "ct_base.h"
#include <math.h>
#include <string.h>

/* |v| (finite, > 0) with `mant` stored mantissa bits, exponent bias `bias`: the bits, rounded to
 * nearest even (nearbyint in the default rounding mode); inf past the largest */
static uint16_t small_float_bits(double a, int mant, int bias, uint16_t inf) {
  int emin = 1 - bias;
  if (a < ldexp(1.0, emin)) /* subnormal: units of 2^(emin - mant); 1 << mant is the smallest normal */
    return (uint16_t)nearbyint(ldexp(a, mant - emin));
  int e;
  double m = frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
  double q = nearbyint(ldexp(m, mant + 1));
  int E = e - 1;
  if (q == ldexp(1.0, mant + 1)) {
    q = ldexp(1.0, mant);
    E++;
  }
  if (E > bias) return inf;
  return (uint16_t)(((unsigned)(E + bias) << mant) | ((unsigned)q - (1u << mant)));
}

static double small_float_value(uint16_t h, int mant, int bias, int ebits) {
  unsigned e = (h >> mant) & ((1u << ebits) - 1), f = h & ((1u << mant) - 1);
  double s = (h & 0x8000) ? -1.0 : 1.0;
  if (e == (1u << ebits) - 1) return f ? NAN * s : INFINITY * s;
  if (e == 0) return s * ldexp((double)f, 1 - bias - mant);
  return s * ldexp((double)(f | (1u << mant)), (int)e - bias - mant);
}

/* v as a 16-bit float of `mant` mantissa bits and exponent bias `bias` (inf and a quiet NaN given) */
static uint16_t from_double(double v, int mant, int bias, uint16_t inf, uint16_t qnan) {
  uint16_t sign = signbit(v) ? 0x8000 : 0;
  if (isnan(v)) return sign | qnan;
  if (isinf(v)) return sign | inf;
  return sign | small_float_bits(fabs(v), mant, bias, inf);
}

uint16_t ct__f16_from_double(double v) { return from_double(v, 10, 15, 0x7C00, 0x7E00); }
double ct__f16_to_double(uint16_t h) { return small_float_value(h, 10, 15, 5); }
uint16_t ct__bf16_from_double(double v) { return from_double(v, 7, 127, 0x7F80, 0x7FC0); }
double ct__bf16_to_double(uint16_t h) { return small_float_value(h, 7, 127, 8); }

double ct__elem_get(ct_dtype dt, const void *p, size_t i) {
  switch (dt) {
    case CT_FLOAT32: return ((const float *)p)[i];
    case CT_FLOAT64: return ((const double *)p)[i];
    case CT_INT32: return ((const int32_t *)p)[i];
    case CT_FLOAT16: return ct__f16_to_double(((const uint16_t *)p)[i]);
    case CT_BFLOAT16: return ct__bf16_to_double(((const uint16_t *)p)[i]);
    case CT_INT64: return (double)((const int64_t *)p)[i];
    case CT_BOOL: return ((const uint8_t *)p)[i] != 0;
  }
  return NAN;
}

void ct__elem_set(ct_dtype dt, void *p, size_t i, double v) {
  switch (dt) {
    case CT_FLOAT32: ((float *)p)[i] = (float)v; return;
    case CT_FLOAT64: ((double *)p)[i] = v; return;
    case CT_INT32:
      ((int32_t *)p)[i] = isnan(v) ? 0 : v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
      return;
    case CT_FLOAT16: ((uint16_t *)p)[i] = ct__f16_from_double(v); return;
    case CT_BFLOAT16: ((uint16_t *)p)[i] = ct__bf16_from_double(v); return;
    case CT_INT64:
      ((int64_t *)p)[i] = isnan(v) ? 0 : v <= -9223372036854775808.0 ? INT64_MIN : v >= 9223372036854775808.0 ? INT64_MAX : (int64_t)v;
      return;
    case CT_BOOL: ((uint8_t *)p)[i] = v != 0; return;
  }
}
