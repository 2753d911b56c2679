/* Elementwise templates. The host appends one instantiation per op row of the op table
 * (lib/ops.def): CT_UNARY(name, expression in x) or CT_BINARY(name, out type, expression in a, b);
 * a comparison's out type is uchar (a bool tensor: one byte, 0 or 1).
 * Each row gives a function f_<name> of its expression, which the fused kernels (lib/fuse.c) call,
 * and kernels of its own; each binary op gets four: same shape (c), b a one-element
 * buffer (s), a a one-element buffer (l), and general broadcasting through strides (g). The
 * fused programs (-DCT_FUSED=1) take only the functions. */

#if CT_FUSED
#define CT_UNARY(NAME, ...) \
  inline T f_##NAME(T x) { return (T)(__VA_ARGS__); }
#define CT_BINARY(NAME, TO, ...) \
  inline TO f_##NAME(T a, T b) { return (TO)(__VA_ARGS__); }
#if CT_FV
/* The vector form of a row (the program's line says CT_VUNARY / CT_VBINARY), fv_<name>, on CT_FVW
 * lanes (kernels/prelude.cl's TV); a comparison's (out type uchar) gives T's 1 or 0 in each lane,
 * a bool in vector form, from the -1 / 0 lane masks of its expression. */
#define CT_VUNARY(NAME, ...) \
  static inline TV fv_##NAME(TV x) { return (TV)(__VA_ARGS__); }
#define CT_VBINARY(NAME, TO, ...) CT_VBINARY_##TO(NAME, __VA_ARGS__)
#define CT_VBINARY_T(NAME, ...) \
  static inline TV fv_##NAME(TV a, TV b) { return (TV)(__VA_ARGS__); }
#define CT_VBINARY_uchar(NAME, ...) \
  static inline TV fv_##NAME(TV a, TV b) { return select((TV)((T)0), (TV)((T)1), __VA_ARGS__); }
/* The CT_FVW elements from p of which m are in the tensor (the rest read as 0), and their store. */
static inline TV ct_fv_load(__global const T *p, const ct_idx m) {
  if (m >= CT_FVW) return ct_vload(0, p);
  T t[CT_FVW];
  for (int k = 0; k < CT_FVW; ++k) t[k] = k < m ? p[k] : (T)0;
  return ct_vload(0, t);
}
static inline TV ct_fv_load_b(__global const uchar *p, const ct_idx m) {
  if (m >= CT_FVW) return ct_vload_b(0, p);
  T t[CT_FVW];
  for (int k = 0; k < CT_FVW; ++k) t[k] = k < m ? (T)p[k] : (T)0;
  return ct_vload(0, t);
}
static inline void ct_fv_store_b(const TV v, __global uchar *p, const ct_idx m) {
  if (m >= CT_FVW) {
    ct_vstore_b(v, 0, p);
    return;
  }
  uchar t[CT_FVW];
  ct_vstore_b(v, 0, t);
  for (int k = 0; k < m; ++k) p[k] = t[k];
}
static inline void ct_fv_store(const TV v, __global T *p, const ct_idx m) {
  if (m >= CT_FVW) {
    ct_vstore(v, 0, p);
    return;
  }
  T t[CT_FVW];
  ct_vstore(v, 0, t);
  for (int k = 0; k < m; ++k) p[k] = t[k];
}
#endif

/* The offset of linear index i in an operand read through strides st (0 on broadcast axes). */
#define CT_FDIM_(D, S) if ((D) < rank) { c_ = rem_ % shape.S; rem_ /= shape.S; o += c_ * st.S; }
inline ct_idx ct_fused_offset(ct_idx i, const int rank, const ct_idx8 shape, const ct_idx8 st) {
  ct_idx o = 0, rem_ = i, c_;
  CT_FDIM_(7, s7) CT_FDIM_(6, s6) CT_FDIM_(5, s5) CT_FDIM_(4, s4)
  CT_FDIM_(3, s3) CT_FDIM_(2, s2) CT_FDIM_(1, s1) CT_FDIM_(0, s0)
  return o;
}
#else
#define CT_UNARY(NAME, ...)                                                              \
  __kernel void u_##NAME(const ct_idx n, __global const T *xs, __global T *ys) {            \
    ct_idx i = get_global_id(0);                                                            \
    if (i < n) { T x = xs[i]; ys[i] = (T)(__VA_ARGS__); }                                \
  }

#define CT_BINARY(NAME, TO, ...)                                                         \
  __kernel void b_##NAME##_c(const ct_idx n, __global const T *as, __global const T *bs,    \
                             __global TO *ys) {                                          \
    ct_idx i = get_global_id(0);                                                            \
    if (i < n) { T a = as[i]; T b = bs[i]; ys[i] = (TO)(__VA_ARGS__); }                  \
  }                                                                                      \
  __kernel void b_##NAME##_s(const ct_idx n, __global const T *as, __global const T *bs,    \
                             __global TO *ys) {                                          \
    ct_idx i = get_global_id(0);                                                            \
    T b = bs[0];                                                                         \
    if (i < n) { T a = as[i]; ys[i] = (TO)(__VA_ARGS__); }                               \
  }                                                                                      \
  __kernel void b_##NAME##_l(const ct_idx n, __global const T *as, __global const T *bs,    \
                             __global TO *ys) {                                          \
    ct_idx i = get_global_id(0);                                                            \
    T a = as[0];                                                                         \
    if (i < n) { T b = bs[i]; ys[i] = (TO)(__VA_ARGS__); }                               \
  }                                                                                      \
  __kernel void b_##NAME##_g(CT_GEOM_ARGS, __global const T *as, __global const T *bs,    \
                             __global TO *ys) {                                          \
    ct_idx i = get_global_id(0);                                                         \
    if (i < n) {                                                                         \
      ct_idx oa, ob, oc;                                                                 \
      CT_OFFSETS(i, oa, ob, oc);                                                         \
      T a = as[oa]; T b = bs[ob]; ys[i] = (TO)(__VA_ARGS__);                             \
    }                                                                                    \
  }

/* cond ? a : b with broadcasting; cond is a bool mask (one byte, 0 or 1). st0: cond, st1: a, st2: b. */
__kernel void where_g(CT_GEOM_ARGS, __global const uchar *cs, __global const T *as, __global const T *bs,
                      __global T *ys) {
  ct_idx i = get_global_id(0);
  if (i < n) {
    ct_idx oc, oa, ob;
    CT_OFFSETS(i, oc, oa, ob);
    ys[i] = cs[oc] ? as[oa] : bs[ob];
  }
}

__kernel void fill(const ct_idx n, const T v, __global T *ys) {
  ct_idx i = get_global_id(0);
  if (i < n) ys[i] = v;
}

/* start + delta * i as NumPy computes it: the product rounded before the sum (no fused
 * multiply-add, which would give linspace(-10, 10, 201)[100] = 5.6e-16 instead of 0). The bounds
 * come as double where the device has it, else as float (the host passes the matching type). */
#if CT_HAS_FP64
typedef double ct_hreal;
#else
typedef float ct_hreal;
#endif
__kernel void iota(const ct_idx n, const ct_hreal start, const ct_hreal delta, __global T *ys) {
#pragma OPENCL FP_CONTRACT OFF
  ct_idx i = get_global_id(0);
  if (i < n) {
    ct_hreal p = delta * (ct_hreal)i;
    ys[i] = (T)(start + p);
  }
}

/* casts: kernels/cast.cl */
#endif /* CT_FUSED */
