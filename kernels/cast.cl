/* Casts between every pair of dtypes: one program per source dtype (-DCT_DT), one kernel
 * cast_to_<name> per destination. float16 and bfloat16 are loaded into float and stored from it
 * (vload_half / vstore_half_rte are core OpenCL C: no cl_khr_fp16 needed); bfloat16 is the upper
 * half of a float32, rounded to nearest even on store. bool is one byte, 0 or 1.
 *
 * Every conversion rounds once: to float16 from double through vstore_half_rte's double form; to
 * bfloat16 from a wider value through a float rounded toward zero whose lowest bit records whether
 * anything was lost (a float keeps 16 bits more than a bfloat16, so rounding that float to nearest
 * even gives the correctly rounded result). To an integer: truncation toward zero, saturating out
 * of range, NaN gives 0. To bool: nonzero is true (NaN too). */

#if CT_DT == 0
typedef float ct_src;
typedef float ct_w;
#define CT_LD(i) xs[i]
#define CT_SRC_FLOAT 1
#elif CT_DT == 1
typedef double ct_src;
typedef double ct_w;
#define CT_LD(i) xs[i]
#define CT_SRC_FLOAT 1
#elif CT_DT == 2
typedef int ct_src;
typedef int ct_w;
#define CT_LD(i) xs[i]
#define CT_SRC_FLOAT 0
#elif CT_DT == 3
typedef half ct_src;
typedef float ct_w;
#define CT_LD(i) vload_half(i, xs)
#define CT_SRC_FLOAT 1
#elif CT_DT == 4
typedef ushort ct_src;
typedef float ct_w;
#define CT_LD(i) as_float((uint)xs[i] << 16)
#define CT_SRC_FLOAT 1
#elif CT_DT == 5
typedef long ct_src;
typedef long ct_w;
#define CT_LD(i) xs[i]
#define CT_SRC_FLOAT 0
#else /* 6: bool */
typedef uchar ct_src;
typedef int ct_w;
#define CT_LD(i) (xs[i] != 0)
#define CT_SRC_FLOAT 0
#endif

/* float -> bfloat16, round to nearest even; `sticky`: a nonzero part below the float was dropped */
inline ushort ct_bf16_from_float(float f, uint sticky) {
  uint u = as_uint(f);
  if (isnan(f)) return (ushort)((u >> 16) | 0x40u); /* quiet, sign kept */
  u |= sticky;
  return (ushort)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

#if CT_DT == 1
inline ushort ct_to_bf16(double v) {
  float f = convert_float_rtz(v);
  return ct_bf16_from_float(f, !isnan(v) && (double)f != v ? 1u : 0u);
}
#elif CT_SRC_FLOAT
inline ushort ct_to_bf16(float v) { return ct_bf16_from_float(v, 0u); }
#else
inline ushort ct_to_bf16(ct_w v) {
  float f = (float)0;
#if CT_DT == 5
  f = convert_float_rtz(v);
  return ct_bf16_from_float(f, (long)f != v ? 1u : 0u);
#else
  f = convert_float_rtz(v);
  return ct_bf16_from_float(f, (int)f != v ? 1u : 0u);
#endif
}
#endif

#if CT_SRC_FLOAT
#define CT_TO_INT32(v) (isnan(v) ? 0 : convert_int_sat_rtz(v))
#define CT_TO_INT64(v) (isnan(v) ? 0L : convert_long_sat_rtz(v))
#else
#define CT_TO_INT32(v) ((int)(v))
#define CT_TO_INT64(v) ((long)(v))
#endif

#define CT_CAST_KERNEL(NAME, D, STORE)                                                      \
  __kernel void cast_to_##NAME(const ct_idx n, __global const ct_src *xs, __global D *ys) { \
    ct_idx i = get_global_id(0);                                                           \
    if (i < n) {                                                                           \
      ct_w v = CT_LD(i);                                                                   \
      STORE;                                                                               \
    }                                                                                      \
  }

CT_CAST_KERNEL(float32, float, ys[i] = (float)v)
CT_CAST_KERNEL(int32, int, ys[i] = CT_TO_INT32(v))
CT_CAST_KERNEL(int64, long, ys[i] = CT_TO_INT64(v))
CT_CAST_KERNEL(bool, uchar, ys[i] = (uchar)(v != (ct_w)0))
CT_CAST_KERNEL(bfloat16, ushort, ys[i] = ct_to_bf16(v))
/* NaN keeps its sign and the top of its payload, quiet (vstore_half leaves a NaN's bits to the
 * implementation): float16 -> float32 -> float16 gives the same bits back */
#if CT_DT == 1
#define CT_F16_NAN(v) ((ushort)((as_ulong(v) >> 48 & 0x8000u) | 0x7E00u | (as_ulong(v) >> 42 & 0x3FFu)))
#else
#define CT_F16_NAN(v) ((ushort)((as_uint(v) >> 16 & 0x8000u) | 0x7E00u | (as_uint(v) >> 13 & 0x3FFu)))
#endif
#if CT_DT == 1
CT_CAST_KERNEL(float16, half, if (isnan(v)) ((__global ushort *)ys)[i] = CT_F16_NAN(v); else vstore_half_rte(v, i, ys))
#elif CT_SRC_FLOAT
CT_CAST_KERNEL(float16, half, if (isnan(v)) ((__global ushort *)ys)[i] = CT_F16_NAN(v); else vstore_half_rte(v, i, ys))
#else
/* an int32 or int64 past 2^24 rounds to a float first, but every such value is past float16's
 * largest (65504) and gives inf either way */
CT_CAST_KERNEL(float16, half, vstore_half_rte((float)v, i, ys))
#endif
#if CT_HAS_FP64
CT_CAST_KERNEL(float64, double, ys[i] = (double)v)
#endif
