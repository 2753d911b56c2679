/* Data movement: strided copies (transpose, slice, broadcast_to, concat and their gradients),
 * gather and its gradient, one_hot. */

/* dst[doff + offset1(i)] = src[soff + offset0(i)]: each work-item copies `run` consecutive
 * elements of the innermost axis (run divides its extent; sin and din are its strides in src and
 * dst), so that the offsets' divisions are paid once per run. */
__kernel void copy_strided(CT_GEOM_ARGS, __global const T *src, const ct_idx soff, __global T *dst,
                           const ct_idx doff, const int run, const ct_idx sin, const ct_idx din) {
  const size_t r = get_global_id(0);
  if (r >= (size_t)(n / run)) return; /* n is a multiple of run */
  const ct_idx i = (ct_idx)r * run;
  ct_idx os, od, unused;
  CT_OFFSETS(i, os, od, unused);
  for (int j = 0; j < run; ++j) dst[doff + od + j * din] = src[soff + os + j * sin];
}

/* y[(o*K + k)*inner + i] = x[(o*N + idx[k])*inner + i], zero when idx[k] is out of range */
__kernel void gather(const ct_idx outer, const ct_idx N, const ct_idx K, const ct_idx inner, __global const T *x,
                     __global const int *idx, __global T *y) {
  ct_idx gid = get_global_id(0);
  if (gid >= outer * K * inner) return;
  ct_idx i = gid % inner;
  ct_idx k = (gid / inner) % K;
  ct_idx o = gid / (inner * K);
  int j = idx[k];
  y[gid] = (j >= 0 && j < N) ? x[((long)o * N + j) * inner + i] : (T)0;
}

/* dx[(o*N + j)*inner + i] = sum over k with idx[k] == j of g[(o*K + k)*inner + i] (deterministic) */
__kernel void gather_grad(const ct_idx outer, const ct_idx N, const ct_idx K, const ct_idx inner, __global const T *g,
                          __global const int *idx, __global T *dx) {
  ct_idx gid = get_global_id(0);
  if (gid >= outer * N * inner) return;
  ct_idx i = gid % inner;
  ct_idx j = (gid / inner) % N;
  ct_idx o = gid / (inner * N);
  T acc = (T)0;
  for (ct_idx k = 0; k < K; ++k)
    if (idx[k] == j) acc += g[((long)o * K + k) * inner + i];
  dx[gid] = acc;
}

__kernel void one_hot(const ct_idx n, const int depth, __global const int *idx, __global T *y) {
  ct_idx gid = get_global_id(0);
  if (gid >= n * depth) return;
  ct_idx i = gid / depth;
  int d = (int)(gid - i * depth);
  y[gid] = idx[i] == d ? (T)1 : (T)0;
}
