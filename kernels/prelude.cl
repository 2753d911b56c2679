/* Shared prelude, prepended on the host to every program.
 * Build options select the element type: -DCT_DT=0 float, 1 double, 2 int, 5 long (int64). The
 * storage-only types, 3 float16 and 4 bfloat16 (computed as float) and 6 bool (as int), are built
 * into the cast program (kernels/cast.cl), which loads and stores them itself; and float16, on a
 * device that computes in half (cl_khr_fp16, CLTAPE_FP16_COMPUTE), into the elementwise program
 * and the fused kernels with -DCT_DT=3 -DCT_HALF=1: T is half there, and the transcendental
 * functions compute in float and round once (as accurate as float16 holds).
 * -DCT_HAS_FP64=1 where the device supports doubles; -DCT_NATIVE=1 where the host measured
 * native_* math to be accurate enough on this device (float only). */
#if CT_HAS_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#if CT_HALF
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

#if CT_DT == 0
typedef float T;
#define CT_FLOAT 1
#elif CT_DT == 1
typedef double T;
#define CT_FLOAT 1
#elif CT_DT == 3 && CT_HALF
typedef half T;
#define CT_FLOAT 1
#elif CT_DT == 3 || CT_DT == 4
typedef float T;
#define CT_FLOAT 1
#elif CT_DT == 5
typedef long T;
#define CT_FLOAT 0
#else
typedef int T;
#define CT_FLOAT 0
#endif

/* the local size of 1-D launches: 256, or what the device allows (-DCT_LS from the host) */
#ifndef CT_LS
#define CT_LS 256
#endif

/* Index math: int, or long in the programs built with -DCT_IDX64=1, which the host picks per launch
 * for sizes or offsets past 2^31 - 1. Counts, offsets and extents in kernel arguments are ct_idx.
 * Macros, not typedefs: PoCL allocates a kernel argument's storage again at every clSetKernelArg
 * when the argument's type is a typedef (measured: 14% more host instructions per launch). */
#if CT_IDX64
#define ct_idx long
#define ct_idx8 long8
#define ct_idx16 long16
#define CT_HI32(i) ((uint)((ulong)(i) >> 32)) /* the high word of an index (0 in the int build) */
#else
#define ct_idx int
#define ct_idx8 int8
#define ct_idx16 int16
#define CT_HI32(i) 0u
#endif

/* Geometry for broadcasting / strided kernels, passed as scalars and vectors (how a struct
 * argument is laid out is up to each implementation, and some reject one): the rank, the element
 * count, the extents and the strides of up to three operands, dimension d in component d (ct_idx). */
#define CT_GEOM_ARGS \
  const int rank, const ct_idx n, const ct_idx8 shape, const ct_idx8 st0, const ct_idx8 st1, const ct_idx8 st2

/* Offsets of linear index i in up to three strided operands (kernels taking CT_GEOM_ARGS). */
#define CT_DIM_(D, S, o0, o1, o2)                             \
  if ((D) < rank) {                                           \
    ct_idx c_ = rem_ % shape.S;                               \
    rem_ /= shape.S;                                          \
    o0 += c_ * st0.S; o1 += c_ * st1.S; o2 += c_ * st2.S;     \
  }
#define CT_OFFSETS(i, o0, o1, o2)                                                                  \
  do {                                                                                             \
    ct_idx rem_ = (i);                                                                             \
    o0 = 0; o1 = 0; o2 = 0;                                                                        \
    CT_DIM_(7, s7, o0, o1, o2) CT_DIM_(6, s6, o0, o1, o2)                                          \
    CT_DIM_(5, s5, o0, o1, o2) CT_DIM_(4, s4, o0, o1, o2)                                          \
    CT_DIM_(3, s3, o0, o1, o2) CT_DIM_(2, s2, o0, o1, o2)                                          \
    CT_DIM_(1, s1, o0, o1, o2) CT_DIM_(0, s0, o0, o1, o2)                                          \
  } while (0)

#if CT_FLOAT
#if CT_HALF
/* half: each function in float, rounded once to half (half builtins may be less accurate) */
#define ct_exp(x) ((T)exp((float)(x)))
#define ct_log(x) ((T)log((float)(x)))
#define ct_sin(x) ((T)sin((float)(x)))
#define ct_cos(x) ((T)cos((float)(x)))
#define ct_tan(x) ((T)tan((float)(x)))
#define ct_sqrt(x) ((T)sqrt((float)(x)))
#define ct_rsqrt(x) ((T)rsqrt((float)(x)))
#define ct_fexpm1(x) ((T)expm1((float)(x)))
#define ct_flog1p(x) ((T)log1p((float)(x)))
#define ct_ferf(x) ((T)erf((float)(x)))
#define ct_ftanh(x) ((T)tanh((float)(x)))
#define ct_pow(a, b) ((T)pow((float)(a), (float)(b)))
/* the other builtins the rows call, on half scalars: through float too (exact for these; some
 * OpenCL C libraries, libclc among them, lack their half forms) */
#define fabs(x) ((T)fabs((float)(x)))
#define floor(x) ((T)floor((float)(x)))
#define ceil(x) ((T)ceil((float)(x)))
#define rint(x) ((T)rint((float)(x)))
#define expm1(x) ((T)expm1((float)(x)))
#define log1p(x) ((T)log1p((float)(x)))
#define erf(x) ((T)erf((float)(x)))
#define fmax(a, b) ((T)fmax((float)(a), (float)(b)))
#define fmin(a, b) ((T)fmin((float)(a), (float)(b)))
#define copysign(a, b) ((T)copysign((float)(a), (float)(b)))
#define ct_isnan(x) isnan((float)(x))
#elif CT_NATIVE && CT_DT == 0
#define ct_exp(x) native_exp(x)
#define ct_log(x) native_log(x)
#define ct_sin(x) native_sin(x)
#define ct_cos(x) native_cos(x)
#define ct_tan(x) native_tan(x)
#define ct_sqrt(x) native_sqrt(x)
#define ct_rsqrt(x) native_rsqrt(x)
#else
#define ct_exp(x) exp(x)
#define ct_log(x) log(x)
#define ct_sin(x) sin(x)
#define ct_cos(x) cos(x)
#define ct_tan(x) tan(x)
#define ct_sqrt(x) sqrt(x)
#define ct_rsqrt(x) rsqrt(x)
#endif
#if !CT_HALF
#define ct_isnan(x) isnan(x)
#define ct_fexpm1(x) expm1(x)
#define ct_flog1p(x) log1p(x)
#define ct_ferf(x) erf(x)
#define ct_ftanh(x) tanh(x)
#define ct_pow(a, b) pow(a, b)
#endif
#define ct_abs(x) fabs(x)
#define ct_div(a, b) ((a) / (b))
/* beyond CT_TANH_SAT the exact tanh rounds to +-1; some libms stop one ulp short of it */
#if CT_DT == 1
#define CT_TANH_SAT 19.1
#elif CT_HALF
#define CT_TANH_SAT 4.6f
#else
#define CT_TANH_SAT 9.1f
#endif
/* sign per lane of a floating vector x of type VT as ct_sign: 1, -1, 0 for +-0, NaN for NaN
 * (comparisons give -1 lane masks, which select() takes); x is read several times */
#define CT_VSIGN(VT, x) select(select(copysign((VT)1, (x)), (VT)0, (x) == (VT)0), (x), isnan(x))
#if CT_FV
/* A fused kernel in vector form (lib/fuse.c; CPU devices, float and double): its rows compute on
 * TV, CT_FVW elements at a time (the device's preferred float vector width, 4 to 16), and the
 * helpers they call are these, each lane what the scalar helper below computes for it
 * (comparisons give -1 lane masks, which select() takes). Static: a compiler that does not
 * inline one (clang for NVPTX, a vector pow) emits it, where a plain inline function would stay an
 * unresolved external. */
#ifndef CT_RVW
#define CT_RVW 4
#endif
#define CT_FVW CT_RVW /* the device's preferred float vector (host/runtime.c), as the reductions' */
#define CT_FV_CAT_(a, b) a##b
#define CT_FV_CAT(a, b) CT_FV_CAT_(a, b)
#if CT_DT == 0
#define CT_FV_TYPE CT_FV_CAT(float, CT_FVW)
#else
#define CT_FV_TYPE CT_FV_CAT(double, CT_FVW)
#endif
typedef CT_FV_TYPE TV;
#define ct_vload(o, p) CT_FV_CAT(vload, CT_FVW)(o, p)
#define ct_vstore(v, o, p) CT_FV_CAT(vstore, CT_FVW)(v, o, p)
/* bools (uchar 0 or 1 in storage) are T's 0 or 1 in vector form */
#define ct_vload_b(o, p) CT_FV_CAT(convert_, CT_FV_TYPE)(CT_FV_CAT(vload, CT_FVW)(o, p))
#define ct_vstore_b(v, o, p) CT_FV_CAT(vstore, CT_FVW)(CT_FV_CAT(convert_uchar, CT_FVW)(v), o, p)
#if CT_DT == 1
/* pow on double8 in PoCL 3.1 gives wrong lanes beside lanes whose result is infinite or NaN
 * (fusion/every_row_in_vector_form_equals_its_scalar_form): lane by lane */
static inline TV ct_vpow(TV a, TV b) {
  T x[CT_FVW], y[CT_FVW];
  ct_vstore(a, 0, x);
  ct_vstore(b, 0, y);
  for (int k = 0; k < CT_FVW; ++k) x[k] = pow(x[k], y[k]);
  return ct_vload(0, x);
}
#undef ct_pow
#define ct_pow(a, b) ct_vpow(a, b)
#endif
static inline TV ct_max(TV a, TV b) { return select(select(fmax(a, b), b, ct_isnan(b)), a, ct_isnan(a)); }
static inline TV ct_min(TV a, TV b) { return select(select(fmin(a, b), b, ct_isnan(b)), a, ct_isnan(a)); }
static inline TV ct_relu(TV x) { return select(x, (TV)((T)0), x < (TV)((T)0)); }
static inline TV ct_sigmoid(TV x) {
  /* exp(-|x|) is the scalar helper's exp(-x) for x >= 0 and its exp(x) below */
  const TV e = ct_exp(-fabs(x)), one = (TV)((T)1);
  return select(e / (one + e), one / (one + e), x >= (TV)((T)0));
}
static inline TV ct_softplus(TV x) { return fmax(x, (TV)((T)0)) + ct_flog1p(ct_exp(-fabs(x))); }
static inline TV ct_tanh(TV x) { return select(ct_ftanh(x), copysign((TV)((T)1), x), fabs(x) > (TV)((T)CT_TANH_SAT)); }
static inline TV ct_gelu(TV x) {
  return (TV)((T)0.5) * x * ((TV)((T)1) + ct_ferf(x * (TV)((T)0.70710678118654752440)));
}
static inline TV ct_elu(TV x) { return select(ct_fexpm1(x), x, x > (TV)((T)0)); }
static inline TV ct_sign(TV x) { return CT_VSIGN(TV, x); }
#else
/* maximum / minimum propagate NaN, as NumPy and TensorFlow do (fmax / fmin would drop it) */
inline T ct_max(T a, T b) { return ct_isnan(a) ? a : (ct_isnan(b) ? b : fmax(a, b)); }
inline T ct_min(T a, T b) { return ct_isnan(a) ? a : (ct_isnan(b) ? b : fmin(a, b)); }
/* relu(NaN) is NaN: x < 0 is false for NaN */
inline T ct_relu(T x) { return x < (T)0 ? (T)0 : x; }
inline T ct_sigmoid(T x) {
  /* stable for large |x| */
  if (x >= (T)0) { T e = ct_exp(-x); return (T)1 / ((T)1 + e); }
  T e = ct_exp(x);
  return e / ((T)1 + e);
}
inline T ct_softplus(T x) { return fmax(x, (T)0) + ct_flog1p(ct_exp(-fabs(x))); }
inline T ct_tanh(T x) { return fabs(x) > CT_TANH_SAT ? copysign((T)1, x) : ct_ftanh(x); }
inline T ct_gelu(T x) { return (T)0.5 * x * ((T)1 + ct_ferf(x * (T)0.70710678118654752440)); }
inline T ct_elu(T x) { return x > (T)0 ? x : ct_fexpm1(x); }
/* sign(NaN) is NaN; sign(+-0) is 0 */
inline T ct_sign(T x) { return x > (T)0 ? (T)1 : (x < (T)0 ? (T)-1 : (x == (T)0 ? (T)0 : x)); }
#endif /* CT_FV */
#else
#define ct_abs(x) ((x) < 0 ? -(x) : (x))
/* integer division never traps: x/0 gives 0, INT_MIN/-1 wraps */
#define ct_div(a, b) ((b) == 0 ? 0 : ((b) == -1 ? -(a) : (a) / (b)))
#define ct_max(a, b) max(a, b)
#define ct_min(a, b) min(a, b)
inline T ct_sign(T x) { return x > 0 ? 1 : (x < 0 ? -1 : 0); }
#endif
