/* Reductions over the middle axis of an (outer, R, inner) view:
 *   y[o*inner + i] = reduce_r x[(o*R + r)*inner + i]
 * Each launch is one stage of at most two (host/launch.c, ctb_reduce):
 *  rows   (inner == 1, long rows): a (G * CT_LS, outer) range; the G work-groups of a row share
 *         it, each work-item reading vectors of CT_RVW elements into four accumulators (blocked:
 *         `per` consecutive vectors each, for CPUs; or strided by the whole range when per == 0,
 *         coalesced, for GPUs), then a tree in local memory; y[o*G + g] is group g's partial.
 *         A second launch (rows, or cols for few partials) over the (outer, G) partials
 *         finishes when G > 1.
 *  cols   (inner > 1, or short rows): a (outer*inner, P) range; work-item (o, i, p) loops over
 *         its part of R (`chunk` rows) with reads that neighbouring work-items make to
 *         neighbouring addresses, writing y[(o*P + p)*inner + i]; a second cols launch with
 *         (outer, P, inner) finishes when P > 1.
 *  colsv  the same with CT_RVW neighbouring columns per work-item (inner % CT_RVW == 0).
 *  rowv   short rows (inner == 1), one per work-item, read in vectors along the row.
 * Float sums add in a tree: several accumulators per vector lane, lanes and work-items pairwise.
 *
 * The loaded element is a hook: a program that defines CT_RED_ARGS (the kernel arguments that
 * replace `x`), CT_RED_LOAD1(o) (the element at offset o of the reduced view) and
 * CT_RED_LOADV(o) (the CT_RVW elements from offset o, as a TV vector) before this text reduces
 * any elementwise expression of its inputs without writing it out.
 *
 * float16 computing in half (-DCT_HALF=1): the elements are read as float (vload_half), summed and
 * compared in float accumulators (TA), and each kernel's result is rounded to half once when
 * stored; a two-stage reduction stores its partials in half. */

#ifndef CT_RVW /* elements per vector load: the host passes the device's preferred float width */
#define CT_RVW 4
#endif
#if CT_DT == 0 || CT_HALF
#define CT_TN float
#elif CT_DT == 1
#define CT_TN double
#elif CT_DT == 5
#define CT_TN long
#else
#define CT_TN int
#endif
#define CT_CAT_(a, b) a##b
#define CT_CAT(a, b) CT_CAT_(a, b)
#define CT_V2 CT_CAT(CT_TN, 2)
#define CT_V4 CT_CAT(CT_TN, 4)
#define CT_V8 CT_CAT(CT_TN, 8)
#if CT_HALF
typedef float TA; /* the accumulators' type */
#else
typedef T TA;
#endif
#if CT_RVW == 1
#define TV TA
#if CT_HALF
#define CT_VLOAD(p) vload_half(0, p)
#define CT_VSTORE(v, p) vstore_half((v), 0, p)
#else
#define CT_VLOAD(p) (*(p))
#define CT_VSTORE(v, p) (*(p) = (v))
#endif
#elif CT_HALF
#define TV CT_CAT(float, CT_RVW)
#define CT_VLOAD(p) CT_CAT(vload_half, CT_RVW)(0, p)
#define CT_VSTORE(v, p) CT_CAT(vstore_half, CT_RVW)(v, 0, p)
#else
#define TV CT_CAT(CT_TN, CT_RVW)
#define CT_VLOAD(p) CT_CAT(vload, CT_RVW)(0, p)
#define CT_VSTORE(v, p) CT_CAT(vstore, CT_RVW)(v, 0, p)
#endif

#ifndef CT_RED_ARGS
#define CT_RED_ARGS __global const T *x
#define CT_RED_LOAD1(o) ((TA)x[o])
#define CT_RED_LOADV(o) CT_VLOAD(x + (o))
#endif

/* a vector's lanes combined pairwise (VOP on vectors, OP on the last two scalars) */
#if CT_RVW == 16
#define CT_HBODY(VOP, OP) CT_V8 a8 = VOP(v.lo, v.hi); CT_V4 a4 = VOP(a8.lo, a8.hi); \
  CT_V2 a2 = VOP(a4.lo, a4.hi); return OP(a2.s0, a2.s1);
#elif CT_RVW == 8
#define CT_HBODY(VOP, OP) CT_V4 a4 = VOP(v.lo, v.hi); CT_V2 a2 = VOP(a4.lo, a4.hi); return OP(a2.s0, a2.s1);
#elif CT_RVW == 4
#define CT_HBODY(VOP, OP) CT_V2 a2 = VOP(v.lo, v.hi); return OP(a2.s0, a2.s1);
#elif CT_RVW == 2
#define CT_HBODY(VOP, OP) return OP(v.s0, v.s1);
#elif CT_RVW == 1
#define CT_HBODY(VOP, OP) return v;
#else
#error "CT_RVW must be 1, 2, 4, 8 or 16"
#endif

/* the local tree of a group's CT_LS values: scratch[0] ends with all of them */
#define CT_LOCAL_TREE(OP, scratch, l)                                                        \
  barrier(CLK_LOCAL_MEM_FENCE);                                                              \
  for (int s = CT_LS / 2; s > 0; s >>= 1) {                                                  \
    if ((l) < s) { TA v_ = scratch[(l) + s]; scratch[l] = OP(scratch[l], v_); }              \
    barrier(CLK_LOCAL_MEM_FENCE);                                                            \
  }

#define CT_REDUCE(NAME, INIT, OP, VOP)                                                       \
  TA ct_h_##NAME(TV v) { CT_HBODY(VOP, OP) }                                                 \
  __kernel void r_##NAME##_cols(const ct_idx outer, const ct_idx R, const ct_idx inner,      \
                                const ct_idx chunk, CT_RED_ARGS, __global T *y) {            \
    const ct_idx gid = get_global_id(0);                                                     \
    if (gid >= outer * inner) return;                                                        \
    const ct_idx part = get_global_id(1), parts = get_global_size(1);                        \
    const ct_idx o = gid / inner, i = gid - o * inner, base = o * R * inner + i;             \
    const ct_idx r0 = part * chunk, r1 = R - r0 < chunk ? R : r0 + chunk;                    \
    TA a0 = INIT, a1 = INIT;                                                                 \
    ct_idx r = r0;                                                                           \
    for (; r + 1 < r1; r += 2) {                                                             \
      TA v0 = CT_RED_LOAD1(base + r * inner), v1 = CT_RED_LOAD1(base + (r + 1) * inner);     \
      a0 = OP(a0, v0);                                                                       \
      a1 = OP(a1, v1);                                                                       \
    }                                                                                        \
    if (r < r1) { TA v0 = CT_RED_LOAD1(base + r * inner); a0 = OP(a0, v0); }                 \
    y[(o * parts + part) * inner + i] = (T)OP(a0, a1);                                       \
  }                                                                                          \
  __kernel void r_##NAME##_colsv(const ct_idx outer, const ct_idx R, const ct_idx inner,     \
                                 const ct_idx chunk, CT_RED_ARGS, __global T *y) {           \
    const ct_idx gid = get_global_id(0), vin = inner / CT_RVW;                               \
    if (gid >= outer * vin) return;                                                          \
    const ct_idx part = get_global_id(1), parts = get_global_size(1);                        \
    const ct_idx o = gid / vin, i = (gid - o * vin) * CT_RVW, base = o * R * inner + i;      \
    const ct_idx r0 = part * chunk, r1 = R - r0 < chunk ? R : r0 + chunk;                    \
    TV a0 = (TV)(INIT), a1 = (TV)(INIT);                                                     \
    ct_idx r = r0;                                                                           \
    for (; r + 1 < r1; r += 2) {                                                             \
      TV v0 = CT_RED_LOADV(base + r * inner), v1 = CT_RED_LOADV(base + (r + 1) * inner);     \
      a0 = VOP(a0, v0);                                                                      \
      a1 = VOP(a1, v1);                                                                      \
    }                                                                                        \
    if (r < r1) { TV v0 = CT_RED_LOADV(base + r * inner); a0 = VOP(a0, v0); }                \
    CT_VSTORE(VOP(a0, a1), y + (o * parts + part) * inner + i);                              \
  }                                                                                          \
  __kernel void r_##NAME##_rowv(const ct_idx outer, const ct_idx R, CT_RED_ARGS,             \
                                __global T *y) {                                             \
    const ct_idx gid = get_global_id(0);                                                     \
    if (gid >= outer) return;                                                                \
    const ct_idx row = gid * R, nv = R / CT_RVW;                                             \
    TV a0 = (TV)(INIT), a1 = a0;                                                             \
    ct_idx k = 0;                                                                            \
    for (; k + 1 < nv; k += 2) {                                                             \
      TV v0 = CT_RED_LOADV(row + k * CT_RVW), v1 = CT_RED_LOADV(row + (k + 1) * CT_RVW);     \
      a0 = VOP(a0, v0);                                                                      \
      a1 = VOP(a1, v1);                                                                      \
    }                                                                                        \
    if (k < nv) { TV v0 = CT_RED_LOADV(row + k * CT_RVW); a0 = VOP(a0, v0); }                \
    TA acc = ct_h_##NAME(VOP(a0, a1));                                                       \
    for (ct_idx r = nv * CT_RVW; r < R; ++r) {                                               \
      TA v0 = CT_RED_LOAD1(row + r);                                                         \
      acc = OP(acc, v0);                                                                     \
    }                                                                                        \
    y[gid] = (T)acc;                                                                         \
  }                                                                                          \
  __kernel __attribute__((reqd_work_group_size(CT_LS, 1, 1)))                                \
  void r_##NAME##_rows(const ct_idx R, const ct_idx per, CT_RED_ARGS, __global T *y) {       \
    __local TA scratch[CT_LS];                                                               \
    const ct_idx o = get_group_id(1), g = get_group_id(0), G = get_num_groups(0);            \
    const ct_idx t = get_global_id(0), row = o * R, nv = R / CT_RVW;                         \
    const int l = get_local_id(0);                                                           \
    ct_idx k = t, end = nv, step = G * CT_LS;                                                \
    if (per > 0) {                                                                           \
      k = t * per;                                                                           \
      end = nv - k < per ? nv : k + per;                                                     \
      step = 1;                                                                              \
    }                                                                                        \
    TV a0 = (TV)(INIT), a1 = a0, a2 = a0, a3 = a0;                                           \
    for (; k + 3 * step < end; k += 4 * step) {                                              \
      TV v0 = CT_RED_LOADV(row + k * CT_RVW), v1 = CT_RED_LOADV(row + (k + step) * CT_RVW);  \
      TV v2 = CT_RED_LOADV(row + (k + 2 * step) * CT_RVW);                                   \
      TV v3 = CT_RED_LOADV(row + (k + 3 * step) * CT_RVW);                                   \
      a0 = VOP(a0, v0);                                                                      \
      a1 = VOP(a1, v1);                                                                      \
      a2 = VOP(a2, v2);                                                                      \
      a3 = VOP(a3, v3);                                                                      \
    }                                                                                        \
    for (; k < end; k += step) { TV v0 = CT_RED_LOADV(row + k * CT_RVW); a0 = VOP(a0, v0); } \
    TA acc = ct_h_##NAME(VOP(VOP(a0, a1), VOP(a2, a3)));                                     \
    const ct_idx tail = nv * CT_RVW + t;                                                     \
    if (tail < R) { TA v0 = CT_RED_LOAD1(row + tail); acc = OP(acc, v0); }                   \
    scratch[l] = acc;                                                                        \
    CT_LOCAL_TREE(OP, scratch, l)                                                            \
    if (l == 0) y[o * G + g] = (T)scratch[0];                                                \
  }

#define CT_OP_SUM(a, b) ((a) + (b))
#define CT_OP_PROD(a, b) ((a) * (b))
/* max/min propagate NaN like NumPy; the vector forms select lane by lane */
#define CT_OP_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define CT_OP_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#if CT_FLOAT && CT_RVW > 1
#define CT_VOP_MAX(a, b) select((b), (a), ((a) > (b)) | isnan(a))
#define CT_VOP_MIN(a, b) select((b), (a), ((a) < (b)) | isnan(a))
#elif CT_FLOAT
#define CT_VOP_MAX CT_OP_MAX
#define CT_VOP_MIN CT_OP_MIN
#else
#define CT_VOP_MAX(a, b) max(a, b)
#define CT_VOP_MIN(a, b) min(a, b)
#endif
#if CT_FLOAT
#define CT_LOWEST (-INFINITY)
#define CT_HIGHEST (INFINITY)
#elif CT_DT == 5
#define CT_LOWEST LONG_MIN
#define CT_HIGHEST LONG_MAX
#else
#define CT_LOWEST INT_MIN
#define CT_HIGHEST INT_MAX
#endif
/* CT_RED_ONLY (0 sum, 1 max, 2 min, 3 prod): a program of that reduction's kernels alone */
#if !defined(CT_RED_ONLY) || CT_RED_ONLY == 0
CT_REDUCE(sum, (TA)0, CT_OP_SUM, CT_OP_SUM)
#endif
#if !defined(CT_RED_ONLY) || CT_RED_ONLY == 3
CT_REDUCE(prod, (TA)1, CT_OP_PROD, CT_OP_PROD)
#endif
#if !defined(CT_RED_ONLY) || CT_RED_ONLY == 1
CT_REDUCE(max, CT_LOWEST, CT_OP_MAX, CT_VOP_MAX)
#endif
#if !defined(CT_RED_ONLY) || CT_RED_ONLY == 2
CT_REDUCE(min, CT_HIGHEST, CT_OP_MIN, CT_VOP_MIN)
#endif

/* Index of the first max / min along R; NaN wins (as NumPy's argmax). */
#define CT_ARGREDUCE(NAME, CMP)                                                              \
  __kernel void r_##NAME##_cols(const ct_idx outer, const ct_idx R, const ct_idx inner,      \
                                __global const T *x, __global int *y) {                      \
    ct_idx gid = get_global_id(0);                                                           \
    if (gid >= outer * inner) return;                                                        \
    ct_idx o = gid / inner, i = gid - o * inner;                                             \
    __global const T *p = x + (long)o * R * inner + i;                                       \
    T best = p[0];                                                                           \
    int bi = 0;                                                                              \
    for (ct_idx r = 1; r < R; ++r) {                                                         \
      T v = p[(long)r * inner];                                                              \
      if (best == best && (v != v || CMP(v, best))) { best = v; bi = (int)r; }               \
    }                                                                                        \
    y[gid] = bi;                                                                             \
  }
#define CT_GT(a, b) ((a) > (b))
#define CT_LT(a, b) ((a) < (b))
#ifndef CT_RED_ONLY
CT_ARGREDUCE(argmax, CT_GT)
CT_ARGREDUCE(argmin, CT_LT)
#endif
