/* Argsort along one axis: a bitonic sort of each row by one work-group (host/launch_sort.c).
 *
 * x is (outer, n, inner) row-major; a row is x[o, :, i]. The row's indices are sorted in P slots
 * (P the power of two >= n; the indices n .. P-1 are padding that sorts after every real
 * element), then copied to y[o, :, i]: in local memory with their keys beside them where the row
 * fits (argsort_rows_local), else in the row's slice of a global `scratch`, reading the keys from
 * x (argsort_rows). The order is total (ties go by index), so the bitonic network, which is not
 * stable by itself, gives the stable order. NaN is larger than every number (as argmax has it):
 * last when ascending, first when descending, NaNs among themselves by index. */

/* whether element (a, ia) goes before element (b, ib) */
inline bool ct_sort_before(const T a, const int ia, const T b, const int ib, const int n, const int desc) {
  if (ib >= n) return ia < n || ia < ib; /* padding: after every element, by index among itself */
  if (ia >= n) return false;
#if CT_FLOAT
  const bool an = a != a, bn = b != b; /* NaN */
#else
  const bool an = false, bn = false;
#endif
  if (an || bn) return an && bn ? ia < ib : (desc ? an : bn);
  if (a != b) return desc ? a > b : a < b;
  return ia < ib;
}

/* The bitonic network over the P slots of a row, each work-item taking pairs lid, lid + ls, ...:
 * IDX(j) is the index in slot j, KEY(j, ix) its key, SWAP(lo, hi, ia, ib, va, vb) exchanges two
 * slots; a barrier with FENCE after each step. */
#define CT_BITONIC(IDX, KEY, SWAP, FENCE)                                                           \
  for (ct_idx size = 2; size <= P; size <<= 1)                                                      \
    for (ct_idx stride = size >> 1; stride > 0; stride >>= 1) {                                     \
      for (ct_idx t = lid; t < P / 2; t += ls) {                                                    \
        const ct_idx lo = 2 * t - (t & (stride - 1)), hi = lo + stride;                             \
        const int a = IDX(lo), b = IDX(hi);                                                         \
        const T va = KEY(lo, a), vb = KEY(hi, b);                                                   \
        /* ascending blocks want (lo, hi) in order, descending blocks the reverse */                \
        if ((lo & size) == 0 ? ct_sort_before(vb, b, va, a, ni, desc) : ct_sort_before(va, a, vb, b, ni, desc)) { \
          SWAP(lo, hi, a, b, va, vb);                                                               \
        }                                                                                           \
      }                                                                                             \
      barrier(FENCE);                                                                               \
    }

#define CT_ROW_SETUP                                                    \
  const ct_idx row = get_group_id(0); /* o * inner + i */              \
  const ct_idx o = row / inner, i = row - o * inner;                   \
  __global const T *p = x + o * n * inner + i;                         \
  __global int *q = y + o * n * inner + i;                             \
  const ct_idx lid = get_local_id(0), ls = get_local_size(0);          \
  const int ni = (int)n

#define CT_G_IDX(j) s[j]
#define CT_G_KEY(j, ix) ((ix) < ni ? p[(ct_idx)(ix) * inner] : (T)0)
#define CT_G_SWAP(lo, hi, ia, ib, va, vb) \
  s[lo] = ib;                             \
  s[hi] = ia
__kernel void argsort_rows(const ct_idx n, const ct_idx inner, const ct_idx P, const int desc,
                           __global const T *x, __global int *scratch, __global int *y) {
  CT_ROW_SETUP;
  __global int *s = scratch + row * P;
  for (ct_idx k = lid; k < P; k += ls) s[k] = (int)k;
  barrier(CLK_GLOBAL_MEM_FENCE);
  CT_BITONIC(CT_G_IDX, CT_G_KEY, CT_G_SWAP, CLK_GLOBAL_MEM_FENCE)
  for (ct_idx k = lid; k < n; k += ls) q[k * inner] = s[k];
}

#define CT_L_IDX(j) ki[j]
#define CT_L_KEY(j, ix) kv[j]
#define CT_L_SWAP(lo, hi, ia, ib, va, vb) \
  ki[lo] = ib;                            \
  ki[hi] = ia;                            \
  kv[lo] = vb;                            \
  kv[hi] = va
__kernel void argsort_rows_local(const ct_idx n, const ct_idx inner, const ct_idx P, const int desc,
                                 __global const T *x, __local T *kv, __local int *ki, __global int *y) {
  CT_ROW_SETUP;
  for (ct_idx k = lid; k < P; k += ls) {
    ki[k] = (int)k;
    kv[k] = k < n ? p[k * inner] : (T)0;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  CT_BITONIC(CT_L_IDX, CT_L_KEY, CT_L_SWAP, CLK_LOCAL_MEM_FENCE)
  for (ct_idx k = lid; k < n; k += ls) q[k * inner] = ki[k];
}
