/* matmul.cl — register-tiled matrix product for devices whose compiler runs a work-item as a
 * loop (CPU OpenCL drivers): C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b], row-major.
 *
 * Each work-item keeps a CT_MR x (CT_NV * CT_VW) tile of C in registers (CT_MR * CT_NV vector
 * accumulators) and walks the whole K dimension: per step it loads CT_NV vectors of B and
 * broadcasts CT_MR scalars of A, CT_MR * CT_NV fused multiply-adds. Nothing is shared between
 * work-items: no local memory, no barrier. The tile loops are unrolled so that the accumulators
 * stay in registers; the host picks the tile per device (tuned, see host/tune.c).
 *
 * B is first packed into column panels (gemm_pack_b): panel p holds columns [p*NR, p*NR+NR) as
 * K rows of NR contiguous elements, zeros past the last column. The product then reads B in one
 * forward stream whatever its layout (transposed or not, any leading dimension: power-of-two row
 * strides would otherwise make every step of K hit the same cache set); products too small for
 * that to matter read B in place instead (CT_PACK_B 0: one kernel in all). With CT_PACK_A, A is
 * packed the same way into row panels of CT_MR rows (gemm_pack_a); without it the product reads
 * A in place through its two strides, rows past the last read the last row again.
 *
 * Element (i, k) of A lies at a[i * a_i + k * a_k], element (k, j) of B at b[k * b_k + j * b_j]
 * (either layout of each). The packing kernels' work-items: dimension 0 over k, 1 over panels, 2
 * over the batch. The product's: dimension 0 over tiles (bands of CT_BN column panels, see
 * gemm_tile), 1 over the batch; stores outside C are skipped.
 */
#ifndef CT_MR
#define CT_MR 6
#endif
#ifndef CT_NV
#define CT_NV 2
#endif
#ifndef CT_VW
#define CT_VW 8
#endif
#ifndef CT_PACK_A
#define CT_PACK_A 0
#endif
#ifndef CT_BN
#define CT_BN 1
#endif
#ifndef CT_PACK_B
#define CT_PACK_B 1
#endif
/* The store's epilogue (gemm_tile): CT_EPI 1 adds bias[j] (an extra argument after C) to column j,
 * 2 also applies ReLU (x < 0 ? 0 : x); the host builds them with alpha 1 and beta 0 only. */
#ifndef CT_EPI
#define CT_EPI 0
#endif
#if CT_EPI
#define CT_EPI_PARAM , __global const T *restrict bias
#else
#define CT_EPI_PARAM
#endif
#define CT_CAT_(a, b) a##b
#define CT_CAT(a, b) CT_CAT_(a, b)
#if CT_DT == 0
#define CT_TNAME float
#else
#define CT_TNAME double
#endif
#define TV CT_CAT(CT_TNAME, CT_VW)
#define VLOAD CT_CAT(vload, CT_VW)
#define VSTORE CT_CAT(vstore, CT_VW)
#define CT_NR (CT_NV * CT_VW)

typedef struct {
  ct_idx m, n, k;
  ct_idx a_i, a_k, b_k, b_j, ldc;
  ct_idx a_off, b_off, c_off;
  ct_idx a_batch, b_batch, c_batch;
  ct_idx mp, np; /* row and column panels: ceil(m / CT_MR), ceil(n / CT_NR) */
} ct_gemm_geom;

/* Kernels take the geometry as an int16 (a long16 in the long index build, -DCT_IDX64=1), its
 * fields in order: how a struct argument is laid out is up to each implementation, and some
 * reject one. Offsets of batches, panels and rows are long in both builds; extents, tile numbers
 * and positions within a row or column are ct_idx: the host takes the long build for a product
 * whose extents, strides or tile count pass 2^31 - 1. */
inline ct_gemm_geom ct_gemm_geom_of(const ct_idx16 v) {
  ct_gemm_geom g;
  g.m = v.s0; g.n = v.s1; g.k = v.s2; g.a_i = v.s3; g.a_k = v.s4; g.b_k = v.s5; g.b_j = v.s6; g.ldc = v.s7;
  g.a_off = v.s8; g.b_off = v.s9; g.c_off = v.sa; g.a_batch = v.sb; g.b_batch = v.sc; g.c_batch = v.sd;
  g.mp = v.se; g.np = v.sf;
  return g;
}

/* The packing kernels' work-items each copy a run of CT_PK steps of k of one panel, a loop of
 * vector copies (one work-item per step of k left PoCL's vectorizer gathering and scattering across
 * work-items: the panels of a 1024 x 1024 B took 0.72 ms, A's 0.50). Where the operand's panel runs
 * along its stored rows (B, A transposed), neighbouring work-items take neighbouring panels
 * (dimension 0; runs of k along dimension 1), so that together they read whole rows; otherwise
 * (A, B transposed) they take the next run of k down the same panel, reading on along the same
 * rows and writing on where the last one stopped. Each order measured faster for its layout
 * (1024 x 1024 on AVX-512: B 0.27 against 0.33 ms, A 0.22 against 0.50). CPU devices with wide
 * vectors (CT_RVW >= 8) copy whole runs of whole panels as vectors of 16, transposed through
 * private memory where the run lies along the operand's rows (A, B transposed); GPUs, where that
 * array spills, copy element by element, as every device does at the edges. */
#ifndef CT_PK
#define CT_PK 16
#endif
/* dst[e * W + l] = src[l * stride + e] for l < W, e < 16: W lines of 16 contiguous elements, read
 * as one vector each, written out as 16 rows of W (whole vectors of 16) through private memory */
#define CT_TRANSPOSE16(W, src, stride, dst)                                          \
  {                                                                                \
    T t_[16 * (W)];                                                                \
    _Pragma("unroll") for (int l_ = 0; l_ < (W); ++l_) {                           \
      T v_[16];                                                                    \
      vstore16(vload16(0, (src) + (long)l_ * (stride)), 0, v_);                    \
      _Pragma("unroll") for (int e_ = 0; e_ < 16; ++e_) t_[e_ * (W) + l_] = v_[e_]; \
    }                                                                              \
    _Pragma("unroll") for (int v_ = 0; v_ < (W); ++v_) vstore16(vload16(v_, t_), v_, (dst)); \
  }

/* Bp[((bt * np + p) * k + kk) * NR + l] = B(kk, p * NR + l), 0 past the last column */
__kernel void gemm_pack_b(const ct_idx16 gv, __global const T *restrict B, __global T *restrict Bp) {
  const ct_gemm_geom g = ct_gemm_geom_of(gv);
  const int across = g.b_j == 1; /* the panels along dimension 0 (host/blas.c, launch_pack) */
  const ct_idx id0 = (ct_idx)get_global_id(0), id1 = (ct_idx)get_global_id(1), bt = (ct_idx)get_global_id(2);
  const ct_idx k0 = (across ? id1 : id0) * CT_PK, p = across ? id0 : id1;
  if (k0 >= g.k || p >= g.np) return;
  const ct_idx k1 = min(k0 + (ct_idx)CT_PK, g.k), j0 = p * CT_NR;
  __global const T *b = B + g.b_off + (long)bt * g.b_batch;
  __global T *o = Bp + ((long)bt * g.np + p) * g.k * CT_NR;
  if (g.b_j == 1 && j0 + CT_NR <= g.n) {
    for (ct_idx kk = k0; kk < k1; ++kk) {
#pragma unroll
      for (int v = 0; v < CT_NV; ++v) VSTORE(VLOAD(v, b + (long)kk * g.b_k + j0), v, o + (long)kk * CT_NR);
    }
    return;
  }
#if CT_PK == 16 && CT_RVW >= 8
  if (g.b_k == 1 && k1 - k0 == CT_PK && j0 + CT_NR <= g.n) {
    CT_TRANSPOSE16(CT_NR, b + (long)j0 * g.b_j + k0, g.b_j, o + (long)k0 * CT_NR); /* B transposed */
    return;
  }
#endif
  for (ct_idx kk = k0; kk < k1; ++kk) {
    T lane[CT_NR];
#pragma unroll
    for (int l = 0; l < CT_NR; ++l) lane[l] = j0 + l < g.n ? b[(long)kk * g.b_k + (long)(j0 + l) * g.b_j] : (T)0;
#pragma unroll
    for (int v = 0; v < CT_NV; ++v) VSTORE(VLOAD(v, lane), v, o + (long)kk * CT_NR);
  }
}

/* Ap[((bt * mp + p) * k + kk) * MR + r] = A(p * MR + r, kk), 0 past the last row */
__kernel void gemm_pack_a(const ct_idx16 gv, __global const T *restrict A, __global T *restrict Ap) {
  const ct_gemm_geom g = ct_gemm_geom_of(gv);
  const int across = g.a_i == 1; /* the panels along dimension 0 (host/blas.c, launch_pack) */
  const ct_idx id0 = (ct_idx)get_global_id(0), id1 = (ct_idx)get_global_id(1), bt = (ct_idx)get_global_id(2);
  const ct_idx k0 = (across ? id1 : id0) * CT_PK, p = across ? id0 : id1;
  if (k0 >= g.k || p >= g.mp) return;
  const ct_idx k1 = min(k0 + (ct_idx)CT_PK, g.k), i0 = p * CT_MR;
  __global const T *a = A + g.a_off + (long)bt * g.a_batch;
  __global T *o = Ap + ((long)bt * g.mp + p) * g.k * CT_MR;
#if CT_PK == 16 && CT_RVW >= 8
  if (g.a_k == 1 && k1 - k0 == CT_PK && i0 + CT_MR <= g.m) {
    CT_TRANSPOSE16(CT_MR, a + (long)i0 * g.a_i + k0, g.a_i, o + (long)k0 * CT_MR); /* A's rows along k */
    return;
  }
#endif
#if CT_PK == 16 && CT_RVW >= 8 && CT_MR <= 16
  if (g.a_i == 1 && k1 - k0 == CT_PK && i0 + 16 <= g.m) {
    /* A transposed: a vector of 16 from each of the run's rows, its first MR elements kept
     * (explicit vectors: element copies were vectorized across work-items into gathers and
     * scatters, 1.4 ms for a 1024 x 1024 A) */
    T t[CT_PK * CT_MR];
#pragma unroll
    for (int e = 0; e < CT_PK; ++e) {
      T row[16];
      vstore16(vload16(0, a + (long)(k0 + e) * g.a_k + i0), 0, row);
#pragma unroll
      for (int r = 0; r < CT_MR; ++r) t[e * CT_MR + r] = row[r];
    }
#pragma unroll
    for (int v = 0; v < CT_MR; ++v) vstore16(vload16(v, t), v, o + (long)k0 * CT_MR);
    return;
  }
#endif
  for (ct_idx kk = k0; kk < k1; ++kk) {
#pragma unroll
    for (int r = 0; r < CT_MR; ++r)
      o[(long)kk * CT_MR + r] = i0 + r < g.m ? a[(long)(i0 + r) * g.a_i + (long)kk * g.a_k] : (T)0;
  }
}

#if !CT_PACK_B
/* CT_VW elements of one row of B from column `from` of the tile on, clamped at column `last` */
inline TV ct_gather_b(__global const T *b, long row, ct_idx b_j, int from, ct_idx last) {
  T lane[CT_VW];
#pragma unroll
  for (int l = 0; l < CT_VW; ++l) lane[l] = b[row + (long)min((ct_idx)(from + l), last) * b_j];
  return VLOAD(0, lane);
}
#endif

/* A: the operand itself, or its packed panels with CT_PACK_A; Bp: B's packed panels, or B itself
 * without CT_PACK_B */
__kernel void gemm_tile(const ct_idx16 gv, const T alpha, const T beta, __global const T *restrict A,
                        __global const T *restrict Bp, __global T *restrict C CT_EPI_PARAM) {
  const ct_gemm_geom g = ct_gemm_geom_of(gv);
  /* tiles in bands of CT_BN column panels, each band row tile by row tile: the band's panels of
   * B stay in cache while A's panels stream through once per band */
  const ct_idx t = (ct_idx)get_global_id(0), bt = (ct_idx)get_global_id(1);
  const ct_idx band = t / (g.mp * CT_BN), in_band = t - band * (g.mp * CT_BN);
  const int width = min((ct_idx)CT_BN, g.np - band * CT_BN); /* the last band may be narrower */
  if (band * CT_BN >= g.np) return;
  const ct_idx ti = in_band / width, tj = band * CT_BN + in_band % width;
  const ct_idx i0 = ti * CT_MR, j0 = tj * CT_NR;
  if (i0 >= g.m || j0 >= g.n) return;
#if CT_PACK_B
  __global const T *b = Bp + (((long)bt * g.np + tj) * g.k) * CT_NR;
#else
  __global const T *b = Bp + g.b_off + (long)bt * g.b_batch + (long)j0 * g.b_j; /* Bp is B itself */
  const ct_idx last = g.n - 1 - j0;
#define ct_b_lanes(v, kk) ct_gather_b(b, (long)(kk) * g.b_k, g.b_j, (v) * CT_VW, last)
#endif
#if CT_PACK_A
  __global const T *a = A + (((long)bt * g.mp + ti) * g.k) * CT_MR;
#define CT_A(r, kk) a[(kk) * CT_MR + (r)]
#else
  __global const T *a0 = A + g.a_off + (long)bt * g.a_batch;
  __global const T *arow[CT_MR];
#pragma unroll
  for (int r = 0; r < CT_MR; ++r) arow[r] = a0 + (long)min(i0 + r, g.m - 1) * g.a_i;
#define CT_A(r, kk) arow[r][(long)(kk) * g.a_k]
#endif
  TV acc[CT_MR][CT_NV];
#pragma unroll
  for (int r = 0; r < CT_MR; ++r)
#pragma unroll
    for (int v = 0; v < CT_NV; ++v) acc[r][v] = (TV)(0);
  /* one step of K: CT_NV vectors of B (LOAD_B(v, kk)), CT_MR broadcasts of A */
#define CT_KLOOP(K0, K1, LOAD_B)                                                   \
  for (ct_idx kk = (K0); kk < (K1); ++kk) {                                        \
    TV bv[CT_NV];                                                                  \
    _Pragma("unroll") for (int v = 0; v < CT_NV; ++v) bv[v] = LOAD_B(v, kk);      \
    _Pragma("unroll") for (int r = 0; r < CT_MR; ++r) {                            \
      const TV av = (TV)(CT_A(r, kk));                                             \
      _Pragma("unroll") for (int v = 0; v < CT_NV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]); \
    }                                                                              \
  }
#if CT_PACK_B
#define CT_B_PANEL(v, kk) VLOAD(v, b + (long)(kk) * CT_NR)
  CT_KLOOP(0, g.k, CT_B_PANEL)
#else
  /* B in place. With its columns contiguous, vector loads of CT_NR elements from column j0 for
   * every row where they lie inside B's storage (in the last column tile the lanes past the last
   * column read the start of the next row; their results are never stored), one element per
   * lane for the rows after (columns past the last read the last again) */
  ct_idx kfast = 0;
  if (g.b_j == 1) {
    const long span = (long)(g.k - 1) * g.b_k + (g.n - j0) - CT_NR; /* the last row offset that fits */
    kfast = span < 0 ? 0 : (ct_idx)min((long)g.k, span / g.b_k + 1);
  }
#define CT_B_ROW(v, kk) VLOAD(v, b + (long)(kk) * g.b_k)
  CT_KLOOP(0, kfast, CT_B_ROW)
  CT_KLOOP(kfast, g.k, ct_b_lanes)
#endif
#undef CT_A
  const int rows = min((ct_idx)CT_MR, g.m - i0);
  const ct_idx cols = g.n - j0;
  __global T *c = C + g.c_off + (long)bt * g.c_batch + j0;
#pragma unroll
  for (int r = 0; r < CT_MR; ++r) {
    if (r >= rows) continue;
    __global T *cr = c + (long)(i0 + r) * g.ldc;
#pragma unroll
    for (int v = 0; v < CT_NV; ++v) {
      TV out = acc[r][v] * alpha;
      if (cols >= CT_NR) {
        if (beta != (T)0) out = fma((TV)(beta), VLOAD(v, cr), out);
#if CT_EPI
        out += VLOAD(v, bias + j0);
#endif
#if CT_EPI == 2
        out = select(out, (TV)(0), out < (TV)(0));
#endif
        VSTORE(out, v, cr);
      } else {
        T lane[CT_VW];
        VSTORE(out, 0, lane);
#pragma unroll
        for (int l = 0; l < CT_VW; ++l) {
          const int j = v * CT_VW + l;
#if CT_EPI
          if (j < cols) {
            const T o = lane[l] + bias[j0 + j];
            cr[j] = CT_EPI == 2 && o < (T)0 ? (T)0 : o;
          }
#else
          if (j < cols) cr[j] = beta != (T)0 ? beta * cr[j] + lane[l] : lane[l];
#endif
        }
      }
    }
  }
}
