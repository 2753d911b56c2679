/* Reductions over the middle axis of an (outer, R, inner) view:
 *   y[o*inner + i] = reduce_r x[(o*R + r)*inner + i]
 * rows: inner == 1 and R large, one work-group of CT_LS items per output.
 * cols: one work-item per output (o, i), looping over r. */

#define CT_REDUCE(NAME, INIT, OP)                                                            \
  __kernel void r_##NAME##_cols(const ct_idx outer, const ct_idx R, const ct_idx inner,      \
                                __global const T *x, __global T *y) {                        \
    ct_idx gid = get_global_id(0);                                                           \
    if (gid >= outer * inner) return;                                                        \
    ct_idx o = gid / inner, i = gid - o * inner;                                             \
    __global const T *p = x + (long)o * R * inner + i;                                       \
    T acc = INIT;                                                                            \
    for (ct_idx r = 0; r < R; ++r) { T v = p[(long)r * inner]; acc = OP(acc, v); }           \
    y[gid] = acc;                                                                            \
  }                                                                                          \
  __kernel __attribute__((reqd_work_group_size(CT_LS, 1, 1)))                                \
  void r_##NAME##_rows(const ct_idx R, __global const T *x, __global T *y) {                 \
    __local T scratch[CT_LS];                                                                \
    ct_idx o = get_group_id(0);                                                              \
    int l = get_local_id(0);                                                                 \
    __global const T *p = x + (long)o * R;                                                   \
    T acc = INIT;                                                                            \
    for (ct_idx r = l; r < R; r += CT_LS) { T v = p[r]; acc = OP(acc, v); }                  \
    scratch[l] = acc;                                                                        \
    barrier(CLK_LOCAL_MEM_FENCE);                                                            \
    for (int s = CT_LS / 2; s > 0; s >>= 1) {                                                \
      if (l < s) { T v = scratch[l + s]; scratch[l] = OP(scratch[l], v); }                   \
      barrier(CLK_LOCAL_MEM_FENCE);                                                          \
    }                                                                                        \
    if (l == 0) y[o] = scratch[0];                                                           \
  }

#define CT_OP_SUM(a, b) ((a) + (b))
#define CT_OP_PROD(a, b) ((a) * (b))
/* max/min propagate NaN like NumPy */
#define CT_OP_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define CT_OP_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#if CT_FLOAT
#define CT_LOWEST (-INFINITY)
#define CT_HIGHEST (INFINITY)
#else
#define CT_LOWEST INT_MIN
#define CT_HIGHEST INT_MAX
#endif
CT_REDUCE(sum, (T)0, CT_OP_SUM)
CT_REDUCE(prod, (T)1, CT_OP_PROD)
CT_REDUCE(max, CT_LOWEST, CT_OP_MAX)
CT_REDUCE(min, CT_HIGHEST, CT_OP_MIN)

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
CT_ARGREDUCE(argmax, CT_GT)
CT_ARGREDUCE(argmin, CT_LT)
