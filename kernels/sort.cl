/* Argsort along one axis: a bitonic sort of each row by one work-group (host/launch_sort.c).
 *
 * x is (outer, n, inner) row-major; a row is x[o, :, i]. The row's indices are sorted in the
 * row's slice of `scratch` (P ints, P the power of two >= n; the indices n .. P-1 are padding
 * that sorts after every real element), then copied to y[o, :, i]. The order is total (ties go
 * by index), so the bitonic network, which is not stable by itself, gives the stable order.
 * NaN is larger than every number (as argmax has it): last when ascending, first when
 * descending, NaNs among themselves by index. */

/* whether element (a, ia) goes before element (b, ib) */
inline bool ct_sort_before(const T a, const int ia, const T b, const int ib, const int n, const int desc) {
  if (ib >= n) return ia < n || ia < ib; /* padding: after every element, by index among itself */
  if (ia >= n) return false;
  const bool an = a != a, bn = b != b; /* NaN (never for int32) */
  if (an || bn) return an && bn ? ia < ib : (desc ? an : bn);
  if (a != b) return desc ? a > b : a < b;
  return ia < ib;
}

__kernel void argsort_rows(const ct_idx n, const ct_idx inner, const ct_idx P, const int desc,
                           __global const T *x, __global int *scratch, __global int *y) {
  const ct_idx row = get_group_id(0); /* o * inner + i */
  const ct_idx o = row / inner, i = row - o * inner;
  __global const T *p = x + o * n * inner + i;
  __global int *s = scratch + row * P;
  const ct_idx lid = get_local_id(0), ls = get_local_size(0);
  const int ni = (int)n;
  for (ct_idx k = lid; k < P; k += ls) s[k] = (int)k;
  barrier(CLK_GLOBAL_MEM_FENCE);
  for (ct_idx size = 2; size <= P; size <<= 1)
    for (ct_idx stride = size >> 1; stride > 0; stride >>= 1) {
      for (ct_idx t = lid; t < P / 2; t += ls) {
        const ct_idx lo = 2 * t - (t & (stride - 1)), hi = lo + stride;
        const int a = s[lo], b = s[hi];
        const T va = a < ni ? p[(ct_idx)a * inner] : (T)0, vb = b < ni ? p[(ct_idx)b * inner] : (T)0;
        /* ascending blocks want (lo, hi) in order, descending blocks the reverse */
        const bool swap = (lo & size) == 0 ? ct_sort_before(vb, b, va, a, ni, desc) : ct_sort_before(va, a, vb, b, ni, desc);
        if (swap) {
          s[lo] = b;
          s[hi] = a;
        }
      }
      barrier(CLK_GLOBAL_MEM_FENCE);
    }
  __global int *q = y + o * n * inner + i;
  for (ct_idx k = lid; k < n; k += ls) q[k * inner] = s[k];
}
