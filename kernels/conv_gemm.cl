/* conv_gemm.cl — the gathers that turn a convolution into a matrix product (host/conv_gemm.c):
 * the patch matrix of an NHWC input (im2col) and its transpose's scatter back to an input-shaped
 * gradient (col2im, written as a gather so that no two work-items write one element).
 *
 * The patch matrix col has one row per output position, row = (n * oh + i) * ow + j, and one
 * column per filter entry, (a * kw + b) * c + ch: the filter [KH, KW, C, OC] read as a
 * (KH * KW * C) x OC matrix. Then y = col f, df = col^T dy and dcol = dy f^T.
 *
 * The window comes as an int16, the fields of ctb_window in order (host/backend.h): n, h, w, c,
 * oh, ow, oc, kh, kw, sh, sw, pt, pl. Offsets are long; extents ct_idx (the host takes the long
 * build, -DCT_IDX64=1, where an extent product passes 2^31 - 1). */

/* col[r, (a * kw + b) * c + ch] for the output positions r of images [n0, n0 + images): one
 * work-item copies the c channels of one tap (dimension 0: a * kw + b) of one row (dimension 1);
 * taps outside the input are zeros (the padding). */
__kernel void conv_im2col(const int16 gw, const ct_idx n0, const ct_idx rows, __global const T *restrict x,
                          __global T *restrict col) {
  const ct_idx h = gw.s1, w = gw.s2, c = gw.s3, oh = gw.s4, ow = gw.s5;
  const int kh = gw.s7, kw = gw.s8, sh = gw.s9, sw = gw.sa, pt = gw.sb, pl = gw.sc;
  const int tap = (int)get_global_id(0);
  const ct_idx r = (ct_idx)get_global_id(1);
  if (tap >= kh * kw || r >= rows) return;
  const ct_idx j = r % ow, t = r / ow, i = t % oh, n = n0 + t / oh;
  const int a = tap / kw, b = tap - a * kw;
  const ct_idx ih = i * sh - pt + a, iw = j * sw - pl + b;
  __global T *o = col + ((long)r * (kh * kw) + tap) * c;
  if (ih < 0 || ih >= h || iw < 0 || iw >= w) {
    for (ct_idx ch = 0; ch < c; ++ch) o[ch] = (T)0;
    return;
  }
  __global const T *s = x + (((long)n * h + ih) * w + iw) * c;
  for (ct_idx ch = 0; ch < c; ++ch) o[ch] = s[ch];
}

/* dx[n, y, z, :] = the sum of the rows dcol[r, (a * kw + b) * c + :] over the output positions
 * r = (n, i, j) whose window covers (y, z) at tap (a, b), for images [n0, n0 + images): one
 * work-item per input position (dimension 1) adds the c channels of each such tap. */
__kernel void conv_col2im(const int16 gw, const ct_idx n0, const ct_idx pixels, __global const T *restrict dcol,
                          __global T *restrict dx) {
  const ct_idx h = gw.s1, w = gw.s2, c = gw.s3, oh = gw.s4, ow = gw.s5;
  const int kh = gw.s7, kw = gw.s8, sh = gw.s9, sw = gw.sa, pt = gw.sb, pl = gw.sc;
  const ct_idx p = (ct_idx)get_global_id(1);
  if (get_global_id(0) != 0 || p >= pixels) return;
  const ct_idx z = p % w, t = p / w, y = t % h, nl = t / h; /* nl: the image within the part */
  __global T *o = dx + (long)(n0 * h * w + p) * c;
  for (ct_idx ch = 0; ch < c; ++ch) o[ch] = (T)0;
  for (int a = 0; a < kh; ++a) {
    const ct_idx num = y + pt - a; /* i * sh */
    if (num < 0 || num % sh != 0 || num / sh >= oh) continue;
    const ct_idx i = num / sh;
    for (int b = 0; b < kw; ++b) {
      const ct_idx numw = z + pl - b;
      if (numw < 0 || numw % sw != 0 || numw / sw >= ow) continue;
      __global const T *s = dcol + (((long)(nl * oh + i) * ow + numw / sw) * kh * kw + (long)a * kw + b) * c;
      for (ct_idx ch = 0; ch < c; ++ch) o[ch] += s[ch];
    }
  }
}

/* ---- Winograd F(4x4, 3x3) ------------------------------------------------------------------
 * A 3x3 convolution of stride 1 as 36 matrix products (host/conv_gemm.c, ctb_conv2d_winograd):
 * each output tile of 4 x 4 positions is A^T [(G g G^T) . (B^T d B)] A, d the 6 x 6 input tile
 * under it and g the 3 x 3 filter of one input and one output channel. The 36 entries of the
 * transformed tiles are 36 independent products over the channels:
 *   U[t] (C x OC) = the filter's transforms, V[t] (P x C) = the input tiles' transforms (P tiles:
 *   n, then tile rows, then tile columns), M[t] (P x OC) = V[t] U[t] (ctb_gemm, batched),
 * and the output transform reads M's 36 entries of a tile and channel. V[t] starts at t times a
 * stride a little over P C (the host's; tiles.s3 to the kernels), M[t] likewise: strides that are
 * multiples of 4 KiB would put a work-item's 36 accesses in one set of a CPU's L1 cache. The tiles cover the output
 * in steps of 4; the input tile of output tile (ti, tj) starts at (4 ti - pt, 4 tj - pl), zeros
 * outside the input; output positions past the output are not stored.
 *
 * Each transform comes twice, from one macro: a channel per work-item (wino_*: GPUs, where
 * neighbouring work-items read neighbouring channels), and a vector of WINO_VW channels per
 * work-item (wino_*_vec: CPU devices with vectors of 8 or more floats, for channel counts that are
 * multiples of WINO_VW; PoCL runs such a kernel's vectors as the CPU's). V is the element (T or the vector), LD and ST load and
 * store one. Float types only. */
#if CT_DT == 0 || CT_DT == 1
#if CT_DT == 1
typedef double4 WV;
#define WINO_VW 4
#define WINO_LDV(p) vload4(0, (p))
#define WINO_STV(v, p) vstore4((v), 0, (p))
#elif CT_RVW >= 16
typedef float16 WV;
#define WINO_VW 16
#define WINO_LDV(p) vload16(0, (p))
#define WINO_STV(v, p) vstore16((v), 0, (p))
#else
typedef float8 WV;
#define WINO_VW 8
#define WINO_LDV(p) vload8(0, (p))
#define WINO_STV(v, p) vstore8((v), 0, (p))
#endif
#define WINO_LD1(p) (*(p))
#define WINO_ST1(v, p) (*(p) = (v))

/* B^T d (6 values: a column or a row of a tile) */
#define WINO_BT(V, d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
  do {                                                             \
    o0 = (V)4 * d0 - (V)5 * d2 + d4;                               \
    o1 = -(V)4 * (d1 + d2) + d3 + d4;                              \
    o2 = (V)4 * (d1 - d2) - d3 + d4;                               \
    o3 = (V)2 * (d3 - d1) - d2 + d4;                               \
    o4 = (V)2 * (d1 - d3) - d2 + d4;                               \
    o5 = (V)4 * d1 - (V)5 * d3 + d5;                               \
  } while (0)
/* G g (3 values to 6): G's rows 1/4 (1, 0, 0), -1/6 (1, 1, 1), -1/6 (1, -1, 1),
 * (1/24, 1/12, 1/6), (1/24, -1/12, 1/6), (0, 0, 1) */
#define WINO_G(V, p, q, s, o0, o1, o2, o3, o4, o5)  \
  do {                                              \
    o0 = p / (V)4;                                  \
    o1 = -(p + q + s) / (V)6;                       \
    o2 = -(p - q + s) / (V)6;                       \
    o3 = p / (V)24 + q / (V)12 + s / (V)6;          \
    o4 = p / (V)24 - q / (V)12 + s / (V)6;          \
    o5 = s;                                         \
  } while (0)
/* A^T m (6 values to 4): A^T's rows (1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0),
 * (0, 1, -1, 8, -8, 1) */
#define WINO_AT(V, m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)               \
  do {                                                                   \
    const V s12_ = m1 + m2, d12_ = m1 - m2, s34_ = m3 + m4, d34_ = m3 - m4; \
    o0 = m0 + s12_ + s34_;                                               \
    o1 = d12_ + (V)2 * d34_;                                             \
    o2 = s12_ + (V)4 * s34_;                                             \
    o3 = d12_ + (V)8 * d34_ + m5;                                        \
  } while (0)

/* six values, `stride` elements apart from p: one row of 6 of a transformed tile's 36 entries */
#define WINO_STORE6(ST, p, stride, e0, e1, e2, e3, e4, e5) \
  do {                                                       \
    __global T *q_ = (p);                                    \
    ST(e0, q_);                                              \
    ST(e1, q_ + (stride));                                   \
    ST(e2, q_ + 2 * (stride));                               \
    ST(e3, q_ + 3 * (stride));                               \
    ST(e4, q_ + 4 * (stride));                               \
    ST(e5, q_ + 5 * (stride));                               \
  } while (0)

/* U[t, c, o] = (G g G^T)[t] for g = f[:, :, c, o] (f as [3, 3, C, OC]); one work-item per (o, c)
 * (VW output channels from o = VW * dimension 0; dimension 1 the input channel). */
#define WINO_FILTER(NAME, V, VW, LD, ST)                                                              \
  __kernel void NAME(const int c, const int oc, __global const T *restrict f, __global T *restrict u) { \
    const int o = (int)get_global_id(0) * VW, ch = (int)get_global_id(1);                            \
    if (o >= oc || ch >= c) return;                                                                   \
    const long cs = (long)c * oc; /* one tap of f, one entry of U */                                 \
    __global const T *fp = f + (long)ch * oc + o;                                                     \
    V r[6][3];                                                                                        \
    for (int b = 0; b < 3; ++b)                                                                       \
      WINO_G(V, LD(fp + b * cs), LD(fp + (3 + b) * cs), LD(fp + (6 + b) * cs), r[0][b], r[1][b],     \
             r[2][b], r[3][b], r[4][b], r[5][b]);                                                     \
    __global T *w = u + (long)ch * oc + o;                                                            \
    for (int a = 0; a < 6; ++a) {                                                                     \
      V e0, e1, e2, e3, e4, e5;                                                                       \
      WINO_G(V, r[a][0], r[a][1], r[a][2], e0, e1, e2, e3, e4, e5);                                   \
      WINO_STORE6(ST, w + (long)(a * 6) * cs, cs, e0, e1, e2, e3, e4, e5);                            \
    }                                                                                                 \
  }

/* V[t, p, c] = (B^T d B)[t] for tile p of channel c; one work-item per (c, p) (VW channels from
 * c = VW * dimension 0; dimension 1 the tile). gw: the window (n, h, w, c, oh, ow, ...; pt, pl);
 * tiles: the tile rows and columns (s0, s1), P (s2) and V's stride from one t to the next (s3). */
#define WINO_INPUT(NAME, V, VW, LD, ST)                                                               \
  __kernel void NAME(const int16 gw, const int4 tiles, __global const T *restrict x, __global T *restrict v) { \
    const int h = gw.s1, w = gw.s2, c = gw.s3, pt = gw.sb, pl = gw.sc;                                \
    const int th = tiles.s0, tw = tiles.s1, np = tiles.s2;                                            \
    const int ch = (int)get_global_id(0) * VW, p = (int)get_global_id(1);                            \
    if (ch >= c || p >= np) return;                                                                   \
    const int tj = p % tw, rest = p / tw, ti = rest % th, n = rest / th;                              \
    const int y0 = ti * 4 - pt, x0 = tj * 4 - pl;                                                     \
    __global const T *img = x + (long)n * h * w * c + ch;                                             \
    V r[6][6]; /* B^T d, column by column */                                                          \
    for (int b = 0; b < 6; ++b) {                                                                     \
      const int z = x0 + b;                                                                           \
      const bool zin = z >= 0 && z < w;                                                               \
      V d[6];                                                                                         \
      for (int a = 0; a < 6; ++a) {                                                                   \
        const int yy = y0 + a;                                                                        \
        d[a] = zin && yy >= 0 && yy < h ? LD(img + ((long)yy * w + z) * c) : (V)0;                    \
      }                                                                                               \
      WINO_BT(V, d[0], d[1], d[2], d[3], d[4], d[5], r[0][b], r[1][b], r[2][b], r[3][b], r[4][b], r[5][b]); \
    }                                                                                                 \
    const long ps = tiles.s3; /* one entry of V */                                                    \
    __global T *o = v + (long)p * c + ch;                                                             \
    for (int a = 0; a < 6; ++a) {                                                                     \
      V e0, e1, e2, e3, e4, e5;                                                                       \
      WINO_BT(V, r[a][0], r[a][1], r[a][2], r[a][3], r[a][4], r[a][5], e0, e1, e2, e3, e4, e5);       \
      WINO_STORE6(ST, o + (long)(a * 6) * ps, ps, e0, e1, e2, e3, e4, e5);                            \
    }                                                                                                 \
  }

/* y[n, 4 ti + i, 4 tj + j, o] = (A^T m A)[i, j] for m = M[:, p, o]; epi 1 adds bias[o], 2 then
 * applies ReLU (v < 0 ? 0 : v, NaN kept), as the direct kernels' epilogue (kernels/nn.cl) and the
 * BiasAdd and Relu kernels do. One work-item per (o, p) (VW channels from o = VW * dimension 0;
 * dimension 1 the tile). */
#define WINO_OUTPUT(NAME, V, VW, LD, ST)                                                              \
  __kernel void NAME(const int16 gw, const int4 tiles, __global const T *restrict m, __global T *restrict y, \
                     const int epi, __global const T *restrict bias) {                                \
    const int oh = gw.s4, ow = gw.s5, oc = gw.s6;                                                     \
    const int th = tiles.s0, tw = tiles.s1, np = tiles.s2;                                            \
    const int o = (int)get_global_id(0) * VW, p = (int)get_global_id(1);                             \
    if (o >= oc || p >= np) return;                                                                   \
    const int tj = p % tw, rest = p / tw, ti = rest % th, n = rest / th;                              \
    const long ps = tiles.s3; /* one entry of M */                                                    \
    __global const T *src = m + (long)p * oc + o;                                                     \
    V r[4][6]; /* A^T m, column by column */                                                          \
    for (int b = 0; b < 6; ++b)                                                                       \
      WINO_AT(V, LD(src + (long)b * ps), LD(src + (long)(6 + b) * ps), LD(src + (long)(12 + b) * ps), \
              LD(src + (long)(18 + b) * ps), LD(src + (long)(24 + b) * ps), LD(src + (long)(30 + b) * ps), \
              r[0][b], r[1][b], r[2][b], r[3][b]);                                                    \
    const V bv = epi ? LD(bias + o) : (V)0;                                                           \
    __global T *out = y + (long)n * oh * ow * oc + o;                                                 \
    for (int i = 0; i < 4; ++i) {                                                                     \
      const int yy = ti * 4 + i;                                                                      \
      if (yy >= oh) break;                                                                            \
      V e[4];                                                                                         \
      WINO_AT(V, r[i][0], r[i][1], r[i][2], r[i][3], r[i][4], r[i][5], e[0], e[1], e[2], e[3]);       \
      for (int j = 0; j < 4; ++j) {                                                                   \
        const int xx = tj * 4 + j;                                                                    \
        if (xx >= ow) break;                                                                          \
        V s = e[j];                                                                                   \
        if (epi) s += bv;                                                                             \
        if (epi == 2) s = s < (V)0 ? (V)0 : s;                                                        \
        ST(s, out + ((long)yy * ow + xx) * oc);                                                       \
      }                                                                                               \
    }                                                                                                 \
  }

WINO_FILTER(wino_filter, T, 1, WINO_LD1, WINO_ST1)
WINO_INPUT(wino_input, T, 1, WINO_LD1, WINO_ST1)
WINO_OUTPUT(wino_output, T, 1, WINO_LD1, WINO_ST1)
#if CT_RVW >= 8 /* CPU devices with vectors of 8 or 16 floats (host/conv_gemm.c); their vectors of
                 * 36 values would spill on GPUs */
WINO_FILTER(wino_filter_vec, WV, WINO_VW, WINO_LDV, WINO_STV)
WINO_INPUT(wino_input_vec, WV, WINO_VW, WINO_LDV, WINO_STV)
WINO_OUTPUT(wino_output_vec, WV, WINO_VW, WINO_LDV, WINO_STV)
#endif
#endif /* CT_DT == 0 || CT_DT == 1 */
