/* Neural-network kernels: direct 2-D convolution and its two backprops, max/avg pooling and
 * their gradients, padding, bias, dropout from a counter-based generator, fused softmax
 * cross-entropy, and the optimizers' in-place updates. Images are NHWC, filters HWIO
 * ([KH, KW, C, OC]).
 *
 * A CPU driver such as PoCL vectorises across the work-items of a group only when the kernel body
 * has no loop of its own. The kernels that loop (convolutions, pooling, bias gradients) therefore
 * come in two families: *_vec kernels compute a vector of CT_VW channels per work-item with
 * OpenCL vector types (channel counts that are multiples of CT_VW) and keep a tile of outputs in
 * registers (fully unrolled loops over the tile), and scalar kernels for any channel count. The
 * host pads convolution inputs so that the vector kernels need no bounds checks. */

/* Window geometry; mirrors ctb_window on the host. For the convolutions: input (n, h, w, c),
 * output (n, oh, ow, oc), window (kh, kw), stride (sh, sw), padding before (pt, pl). Pooling
 * uses c == oc. */
typedef struct {
  ct_idx n, h, w, c, oh, ow, oc; /* extents: their products are offsets */
  int kh, kw, sh, sw, pt, pl; /* the window: its products stay within an extent */
  int mask; /* max-pool gradients: each window's gradient times the sign of its maximum */
} ct_window;

/* Kernels take the window as an int16 (its fields in order, then padding): how a struct argument
 * is laid out is up to each implementation, and some reject one. Every field fits an int (the
 * host checks), but the extents are ct_idx: in the long build (-DCT_IDX64=1, chosen by the host
 * for a launch whose tensors or counts pass 2^31 - 1) every product of extents and so every
 * offset is computed in long; in the int build the kernels are the cheaper int code. */
inline ct_window ct_window_of(const int16 v) {
  ct_window g;
  g.n = v.s0; g.h = v.s1; g.w = v.s2; g.c = v.s3; g.oh = v.s4; g.ow = v.s5; g.oc = v.s6;
  g.kh = v.s7; g.kw = v.s8; g.sh = v.s9; g.sw = v.sa; g.pt = v.sb; g.pl = v.sc; g.mask = v.sd;
  return g;
}

#define CT_TILE 4

/* First and last output row (or column) whose window covers input position p. */
#define CT_COVER(p, pad, k, s, nout, lo, hi)                 \
  do {                                                       \
    int num_ = (p) + (pad) - (k) + 1;                        \
    lo = num_ <= 0 ? 0 : (num_ + (s) - 1) / (s);             \
    hi = min((int)(((p) + (pad)) / (s)), (int)((nout) - 1)); \
  } while (0)

/* The forward convolutions' epilogue, applied as each output is stored: epi 0 stores the sum,
 * 1 adds bias[oc], 2 also applies ReLU (v < 0 ? 0 : v), the same operations as the BiasAdd and Relu
 * kernels, so the results are those of the three ops run apart. */
#define CT_CONV_EPI(v, b, epi) ((epi) == 0 ? (v) : (epi) == 1 || !((v) + (b) < 0) ? (v) + (b) : 0)

/* y[n, oh, ow, oc] = sum over (kh, kw, c) of x[n, oh*sh + kh - pt, ow*sw + kw - pl, c] * f[kh, kw, c, oc]
 * (then the epilogue epi with bias). dim 0: oc; dim 1: (n, oh, tile of CT_TILE output columns). */
__kernel void conv2d_fwd(const int16 gw, __global const T *x, __global const T *f, __global T *y, const int epi,
                         __global const T *bias) {
  const ct_window g = ct_window_of(gw);
  const int oc = get_global_id(0);
  const int tiles = (g.ow + CT_TILE - 1) / CT_TILE;
  const ct_idx r = get_global_id(1);
  const int tw = r % tiles;
  const ct_idx rest = r / tiles;
  const int oh = rest % g.oh, n = rest / g.oh;
  if (oc >= g.oc || n >= g.n) return;
  const int ow0 = tw * CT_TILE;
  T acc[CT_TILE];
  _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) acc[t] = (T)0;
  for (int kh = 0; kh < g.kh; ++kh) {
    const int ih = oh * g.sh + kh - g.pt;
    if (ih < 0 || ih >= g.h) continue;
    __global const T *xrow = x + (long)(n * g.h + ih) * g.w * g.c;
    for (int kw = 0; kw < g.kw; ++kw) {
      __global const T *fp = f + (long)(kh * g.kw + kw) * g.c * g.oc + oc;
      const int iw0 = ow0 * g.sw + kw - g.pl;
      const int iwl = (ow0 + CT_TILE - 1) * g.sw + kw - g.pl;
      if (iw0 >= 0 && iwl < g.w && ow0 + CT_TILE <= g.ow) {
        __global const T *xp = xrow + (long)iw0 * g.c;
        const ct_idx step = g.sw * g.c;
        for (int c = 0; c < g.c; ++c) {
          const T fv = fp[(long)c * g.oc];
          _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) acc[t] = fma(xp[t * step + c], fv, acc[t]);
        }
      } else {
        _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) {
          const int iw = (ow0 + t) * g.sw + kw - g.pl;
          if (ow0 + t >= g.ow || iw < 0 || iw >= g.w) continue;
          __global const T *xp = xrow + (long)iw * g.c;
          T a = acc[t];
          for (int c = 0; c < g.c; ++c) a = fma(xp[c], fp[(long)c * g.oc], a);
          acc[t] = a;
        }
      }
    }
  }
  __global T *yp = y + ((long)(n * g.oh + oh) * g.ow + ow0) * g.oc + oc;
  const T b = epi ? bias[oc] : (T)0;
  _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t)
    if (ow0 + t < g.ow) yp[(long)t * g.oc] = (T)CT_CONV_EPI(acc[t], b, epi);
}

/* dx[n, ih, iw, c] = sum over (kh, kw, oc) with ih = oh*sh + kh - pt, iw = ow*sw + kw - pl of
 * dy[n, oh, ow, oc] * ft[kh, kw, oc, c], where ft is the filter with its last two axes swapped.
 * dim 0: c; dim 1: (n, ih, tile of CT_TILE input columns). */
__kernel void conv2d_bp_input(const int16 gw, __global const T *dy, __global const T *ft, __global T *dx) {
  const ct_window g = ct_window_of(gw);
  const int c = get_global_id(0);
  const int tiles = (g.w + CT_TILE - 1) / CT_TILE;
  const ct_idx r = get_global_id(1);
  const int tw = r % tiles;
  const ct_idx rest = r / tiles;
  const int ih = rest % g.h, n = rest / g.h;
  if (c >= g.c || n >= g.n) return;
  const int iw0 = tw * CT_TILE;
  T acc[CT_TILE];
  _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) acc[t] = (T)0;
  for (int kh = 0; kh < g.kh; ++kh) {
    const int num_h = ih + g.pt - kh;
    if (num_h < 0 || num_h % g.sh) continue;
    const int oh = num_h / g.sh;
    if (oh >= g.oh) continue;
    __global const T *dyrow = dy + (long)(n * g.oh + oh) * g.ow * g.oc;
    for (int kw = 0; kw < g.kw; ++kw) {
      __global const T *fp = ft + (long)(kh * g.kw + kw) * g.oc * g.c + c;
      /* fast path: stride 1 and the whole tile maps inside dy */
      const int ow0 = iw0 + g.pl - kw;
      if (g.sw == 1 && ow0 >= 0 && ow0 + CT_TILE <= g.ow && iw0 + CT_TILE <= g.w) {
        __global const T *dp = dyrow + (long)ow0 * g.oc;
        for (int o = 0; o < g.oc; ++o) {
          const T fv = fp[(long)o * g.c];
          _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) acc[t] = fma(dp[t * g.oc + o], fv, acc[t]);
        }
      } else {
        _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) {
          const int iw = iw0 + t;
          const int num_w = iw + g.pl - kw;
          if (iw >= g.w || num_w < 0 || num_w % g.sw) continue;
          const int ow = num_w / g.sw;
          if (ow >= g.ow) continue;
          __global const T *dp = dyrow + (long)ow * g.oc;
          T a = acc[t];
          for (int o = 0; o < g.oc; ++o) a = fma(dp[o], fp[(long)o * g.c], a);
          acc[t] = a;
        }
      }
    }
  }
  __global T *xp = dx + ((long)(n * g.h + ih) * g.w + iw0) * g.c + c;
  _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t)
    if (iw0 + t < g.w) xp[(long)t * g.c] = acc[t];
}

/* df[kh, kw, c, oc] = sum over (n, oh, ow) of x[n, oh*sh + kh - pt, ow*sw + kw - pl, c] * dy[n, oh, ow, oc]
 * dim 0: oc; dim 1: (kh, kw, tile of CT_TILE input channels). */
__kernel void conv2d_bp_filter(const int16 gw, __global const T *x, __global const T *dy, __global T *df) {
  const ct_window g = ct_window_of(gw);
  const int oc = get_global_id(0);
  const int tiles = (g.c + CT_TILE - 1) / CT_TILE;
  const ct_idx r = get_global_id(1);
  const int tc = r % tiles, rest = r / tiles;
  const int kw = rest % g.kw, kh = rest / g.kw;
  if (oc >= g.oc || kh >= g.kh) return;
  const int c0 = tc * CT_TILE;
  const bool full = c0 + CT_TILE <= g.c;
  T acc[CT_TILE];
  _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) acc[t] = (T)0;
  /* output rows / columns whose window row / column kh / kw lies inside the image */
  int oh_lo = 0, ow_lo = 0;
  while (oh_lo < g.oh && oh_lo * g.sh + kh - g.pt < 0) ++oh_lo;
  while (ow_lo < g.ow && ow_lo * g.sw + kw - g.pl < 0) ++ow_lo;
  int oh_hi = g.oh, ow_hi = g.ow;
  while (oh_hi > oh_lo && (oh_hi - 1) * g.sh + kh - g.pt >= g.h) --oh_hi;
  while (ow_hi > ow_lo && (ow_hi - 1) * g.sw + kw - g.pl >= g.w) --ow_hi;
  for (int n = 0; n < g.n; ++n) {
    for (int oh = oh_lo; oh < oh_hi; ++oh) {
      const int ih = oh * g.sh + kh - g.pt;
      __global const T *xrow = x + (long)(n * g.h + ih) * g.w * g.c + c0;
      __global const T *dyrow = dy + (long)(n * g.oh + oh) * g.ow * g.oc + oc;
      if (full) {
        for (int ow = ow_lo; ow < ow_hi; ++ow) {
          const int iw = ow * g.sw + kw - g.pl;
          const T d = dyrow[(long)ow * g.oc];
          __global const T *xp = xrow + (long)iw * g.c;
          _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t) acc[t] = fma(xp[t], d, acc[t]);
        }
      } else {
        for (int ow = ow_lo; ow < ow_hi; ++ow) {
          const int iw = ow * g.sw + kw - g.pl;
          const T d = dyrow[(long)ow * g.oc];
          __global const T *xp = xrow + (long)iw * g.c;
          _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t)
            if (c0 + t < g.c) acc[t] = fma(xp[t], d, acc[t]);
        }
      }
    }
  }
  __global T *fp = df + ((long)(kh * g.kw + kw) * g.c + c0) * g.oc + oc;
  _Pragma("unroll") for (int t = 0; t < CT_TILE; ++t)
    if (c0 + t < g.c) fp[(long)t * g.oc] = acc[t];
}

/* ---- vectorised convolutions: CT_VW channels per work-item -------------------------------- *
 * Used when the channel count the kernel runs over is a multiple of CT_VW (8 floats or 4
 * doubles: one 256-bit vector); each work-item keeps CT_VT vectors of accumulators, loads one
 * filter (or gradient) vector per step and multiplies it by broadcast scalars. */
#if CT_DT == 1
typedef double4 TV;
typedef long4 IV;
#define CT_VW 4
#define CT_VLOAD(p) vload4(0, (p))
#define CT_VSTORE(v, p) vstore4((v), 0, (p))
#else
typedef float8 TV;
typedef int8 IV;
#define CT_VW 8
#define CT_VLOAD(p) vload8(0, (p))
#define CT_VSTORE(v, p) vstore8((v), 0, (p))
#endif
#define CT_VT 8

/* One (kh, kw) of a tile whose TW columns are inside x: xp its first column, fp the filter's
 * vectors of the tile's output channels */
#define CT_CONV_FWD_STEPS(TW, TV, VLOAD, XP, FP)                                                    \
  {                                                                                                 \
    __global const T *xp_ = (XP), *fp_ = (FP);                                                      \
    const ct_idx step_ = g.sw * g.c;                                                                \
    for (int c = 0; c < g.c; ++c) {                                                                 \
      const TV fv = VLOAD(fp_ + (long)c * g.oc);                                                    \
      _Pragma("unroll") for (int t = 0; t < TW; ++t) acc[t] = fma((TV)xp_[t * step_ + c], fv, acc[t]); \
    }                                                                                               \
  }
/* y: dim 0 = block of CT_VW output channels, dim 1 = (n, oh, tile of TW output columns); epi and
 * bias as conv2d_fwd's. A window's rows outside the input are skipped; where one of the tile's TW
 * columns is outside x (padding, or past the output's width), each column reads its input through
 * a pointer of its own, which points at `zeros` (g.c zeros, from the host) for those: the channel
 * loop has no bounds checks and keeps TW vectors of accumulators in registers. One kernel per tile width
 * (7 fits 14 and 28). */
#define CT_CONV2D_FWD_VW(NAME, TW, TV, VW, VLOAD, VSTORE)                                           \
  __kernel void NAME(const int16 gw, __global const T *x, __global const T *f, __global T *y,       \
                     const int epi, __global const T *bias, __global const T *zeros) {              \
    const ct_window g = ct_window_of(gw);                                                           \
    const int ob = get_global_id(0);                                                                \
    const int tiles = (g.ow + TW - 1) / TW;                                                         \
    const ct_idx r = get_global_id(1);                                                              \
    const int tw = r % tiles;                                                                       \
    const ct_idx rest = r / tiles;                                                                  \
    const int oh = rest % g.oh, n = rest / g.oh;                                                    \
    if (ob * VW >= g.oc || n >= g.n) return;                                                        \
    const int ow0 = tw * TW;                                                                        \
    TV acc[TW];                                                                                     \
    _Pragma("unroll") for (int t = 0; t < TW; ++t) acc[t] = (TV)0;                                  \
    const int ih0 = oh * g.sh - g.pt, iw00 = ow0 * g.sw - g.pl;                                     \
    if (ih0 >= 0 && ih0 + g.kh <= g.h && iw00 >= 0 && iw00 + (TW - 1) * g.sw + g.kw <= g.w) {        \
      /* every window of the tile inside x (columns past the output's width too: not stored) */    \
      for (int kh = 0; kh < g.kh; ++kh) {                                                           \
        __global const T *xrow = x + (long)(n * g.h + ih0 + kh) * g.w * g.c;                        \
        for (int kw = 0; kw < g.kw; ++kw)                                                           \
          CT_CONV_FWD_STEPS(TW, TV, VLOAD, xrow + (long)(iw00 + kw) * g.c,                          \
                            f + (long)(kh * g.kw + kw) * g.c * g.oc + ob * VW)                      \
      }                                                                                             \
    } else                                                                                          \
      for (int kh = 0; kh < g.kh; ++kh) {                                                           \
        if (ih0 + kh < 0 || ih0 + kh >= g.h) continue;                                              \
        __global const T *xrow = x + (long)(n * g.h + ih0 + kh) * g.w * g.c;                        \
        for (int kw = 0; kw < g.kw; ++kw) {                                                         \
          __global const T *fp = f + (long)(kh * g.kw + kw) * g.c * g.oc + ob * VW;                 \
          const int iw0 = iw00 + kw;                                                                \
          if (iw0 >= 0 && iw0 + (TW - 1) * g.sw < g.w) {                                            \
            CT_CONV_FWD_STEPS(TW, TV, VLOAD, xrow + (long)iw0 * g.c, fp)                            \
          } else { /* a column of the tile is padding, or past x's width (then past the output) */ \
            __global const T *xp[TW];                                                               \
            _Pragma("unroll") for (int t = 0; t < TW; ++t) {                                        \
              const int iw = iw0 + t * g.sw;                                                        \
              xp[t] = iw >= 0 && iw < g.w ? xrow + (long)iw * g.c : zeros;                          \
            }                                                                                       \
            for (int c = 0; c < g.c; ++c) {                                                         \
              const TV fv = VLOAD(fp + (long)c * g.oc);                                             \
              _Pragma("unroll") for (int t = 0; t < TW; ++t) acc[t] = fma((TV)xp[t][c], fv, acc[t]); \
            }                                                                                       \
          }                                                                                         \
        }                                                                                           \
      }                                                                                             \
    __global T *yp = y + ((long)(n * g.oh + oh) * g.ow + ow0) * g.oc + ob * VW;                     \
    if (epi) {                                                                                      \
      const TV b = VLOAD(bias + ob * VW);                                                           \
      _Pragma("unroll") for (int t = 0; t < TW; ++t) {                                              \
        acc[t] += b;                                                                                \
        if (epi == 2) acc[t] = select(acc[t], (TV)(0), acc[t] < (TV)(0));                           \
      }                                                                                             \
    }                                                                                               \
    _Pragma("unroll") for (int t = 0; t < TW; ++t)                                                  \
      if (ow0 + t < g.ow) VSTORE(acc[t], yp + (long)t * g.oc);                                      \
  }
#define CT_CONV2D_FWD_VEC(NAME, TW) CT_CONV2D_FWD_VW(NAME, TW, TV, CT_VW, CT_VLOAD, CT_VSTORE)
CT_CONV2D_FWD_VEC(conv2d_fwd_vec8, 8)
CT_CONV2D_FWD_VEC(conv2d_fwd_vec7, 7)
/* float32 on devices whose preferred vector holds 16 floats (CPUs with 512-bit vectors; the host
 * passes CT_RVW): blocks of 16 output channels, one full vector per accumulator */
#if CT_DT == 0 && CT_RVW == 16
#define CT_VLOAD16(p) vload16(0, (p))
#define CT_VSTORE16(v, p) vstore16((v), 0, (p))
CT_CONV2D_FWD_VW(conv2d_fwd_w16_8, 8, float16, 16, CT_VLOAD16, CT_VSTORE16)
CT_CONV2D_FWD_VW(conv2d_fwd_w16_7, 7, float16, 16, CT_VLOAD16, CT_VSTORE16)
#endif

/* dx for strides > 1 (stride 1 runs as a forward convolution of the padded dy with the flipped
 * filter): dim 0 = block of CT_VW input channels, dim 1 = (n, ih, tile of CT_VT input columns);
 * ft is the filter as [KH, KW, OC, C] */
/* Input columns per work-item of conv2d_bp_input_vec: CT_VT, half as many for doubles (eight
 * double vectors and the masks of the strided path spill on GPUs with 128 registers, gfx1100);
 * CTB_BPI_VT in host/launch.c mirrors it. */
#if CT_DT == 1
#define CT_BPI_VT (CT_VT / 2)
#else
#define CT_BPI_VT CT_VT
#endif
__kernel void conv2d_bp_input_vec(const int16 gw, __global const T *dy, __global const T *ft, __global T *dx) {
  const ct_window g = ct_window_of(gw);
  const int cb = get_global_id(0);
  const int tiles = (g.w + CT_BPI_VT - 1) / CT_BPI_VT;
  const ct_idx r = get_global_id(1);
  const int tw = r % tiles;
  const ct_idx rest = r / tiles;
  const int ih = rest % g.h, n = rest / g.h;
  if (cb * CT_VW >= g.c || n >= g.n) return;
  const int iw0 = tw * CT_BPI_VT;
  TV acc[CT_BPI_VT];
  _Pragma("unroll") for (int t = 0; t < CT_BPI_VT; ++t) acc[t] = (TV)0;
  for (int kh = 0; kh < g.kh; ++kh) {
    const int num_h = ih + g.pt - kh;
    if (num_h < 0 || num_h % g.sh) continue;
    const int oh = num_h / g.sh;
    if (oh >= g.oh) continue;
    __global const T *dyrow = dy + (long)(n * g.oh + oh) * g.ow * g.oc;
    for (int kw = 0; kw < g.kw; ++kw) {
      __global const T *fp = ft + (long)(kh * g.kw + kw) * g.oc * g.c + cb * CT_VW;
      const int ow0 = iw0 + g.pl - kw;
      if (g.sw == 1 && ow0 >= 0 && ow0 + CT_BPI_VT <= g.ow && iw0 + CT_BPI_VT <= g.w) {
        __global const T *dp = dyrow + (long)ow0 * g.oc;
        for (int o = 0; o < g.oc; ++o) {
          const TV fv = CT_VLOAD(fp + (long)o * g.c);
          _Pragma("unroll") for (int t = 0; t < CT_BPI_VT; ++t) acc[t] = fma((TV)dp[t * g.oc + o], fv, acc[t]);
        }
      } else { /* strides, partial tiles, edges: masked columns */
        ct_idx off[CT_BPI_VT];
        T keep[CT_BPI_VT];
        _Pragma("unroll") for (int t = 0; t < CT_BPI_VT; ++t) {
          const int iw = iw0 + t, num_w = iw + g.pl - kw;
          const bool ok = iw < g.w && num_w >= 0 && num_w % g.sw == 0 && num_w / g.sw < g.ow;
          off[t] = ok ? (num_w / g.sw) * g.oc : 0;
          keep[t] = ok ? (T)1 : (T)0;
        }
        for (int o = 0; o < g.oc; ++o) {
          const TV fv = CT_VLOAD(fp + (long)o * g.c);
          _Pragma("unroll") for (int t = 0; t < CT_BPI_VT; ++t) acc[t] = fma((TV)(dyrow[off[t] + o] * keep[t]), fv, acc[t]);
        }
      }
    }
  }
  __global T *xp = dx + ((long)(n * g.h + ih) * g.w + iw0) * g.c + cb * CT_VW;
  _Pragma("unroll") for (int t = 0; t < CT_BPI_VT; ++t)
    if (iw0 + t < g.w) CT_VSTORE(acc[t], xp + (long)t * g.c);
}

/* Partial filter gradients over a share of the batch: part[s, k, oc] for k = (kh, kw, c) flattened
 * ([KH, KW, C] is the filter's layout), over images n = s, s + splits, ... The host sums the parts.
 * With bias = 1, each part has one more row, k = K: the bias's gradient (the sum of dy over the
 * part's images), summed by a tile of work-items of its own.
 * Channels in multiples of TK read x as it is, padding included (each (kh, kw) over the output
 * rows and columns whose input is inside the image); otherwise the host pads x so that every
 * window is inside it (pt = pl = 0). dim 0 = block of CT_VW output channels, dim 1 = (split,
 * tile of TK consecutive k). TK is CT_VT, or 9 (the _k9 kernels, on CPUs) for filters whose K is a
 * multiple of 9 and C is not of CT_VT: a 3 x 3 window over 1 or 3 channels, whole tiles of k. */
#define CT_CONV2D_BP_FILTER_VW(NAME, TV, VW, VLOAD, VSTORE, TK)                                     \
__kernel void NAME(const int16 gw, const int splits, const int bias, __global const T *x,           \
                   __global const T *dy, __global T *part) {                                        \
  const ct_window g = ct_window_of(gw);                                                             \
  const int ob = get_global_id(0);                                                                  \
  const ct_idx K = g.kh * g.kw * g.c, tiles = (K + TK - 1) / TK;                                    \
  const ct_idx r = get_global_id(1);                                                                \
  const ct_idx tk = r % (tiles + bias);                                                             \
  const int sp = r / (tiles + bias);                                                                \
  if (ob * VW >= g.oc || sp >= splits) return;                                                      \
  const long pstride = (long)(K + bias) * g.oc;                                                     \
  if (tk == tiles) { /* the bias's row */                                                           \
    TV db = (TV)0;                                                                                  \
    for (int n = sp; n < g.n; n += splits) {                                                        \
      __global const T *dyimg = dy + (long)n * g.oh * g.ow * g.oc + ob * VW;                        \
      for (int p = 0; p < g.oh * g.ow; ++p) db += VLOAD(dyimg + (long)p * g.oc);                    \
    }                                                                                               \
    VSTORE(db, part + sp * pstride + K * g.oc + ob * VW);                                           \
    return;                                                                                         \
  }                                                                                                 \
  const ct_idx k0 = tk * TK;                                                                        \
  const int nk = min((ct_idx)TK, K - k0);                                                           \
  TV acc[TK];                                                                                       \
  _Pragma("unroll") for (int t = 0; t < TK; ++t) acc[t] = (TV)0;                                    \
  if (g.c % TK == 0) { /* the tile's k are TK consecutive channels of one (kh, kw): x may be        \
                            unpadded, its (kh, kw) then reads the outputs whose input is inside it */ \
    const int kw = (k0 / g.c) % g.kw, kh = k0 / (g.c * g.kw), ah = g.pt - kh, aw = g.pl - kw;       \
    const int bh = g.h + ah, bw = g.w + aw; /* rows oh * sh < bh, columns ow * sw < bw */           \
    const int oh0 = ah > 0 ? (ah + g.sh - 1) / g.sh : 0, oh1 = bh > 0 ? min((int)g.oh, (int)((bh + g.sh - 1) / g.sh)) : 0; \
    const int ow0 = aw > 0 ? (aw + g.sw - 1) / g.sw : 0, ow1 = bw > 0 ? min((int)g.ow, (int)((bw + g.sw - 1) / g.sw)) : 0; \
    for (int n = sp; n < g.n; n += splits)                                                          \
      for (int oh = oh0; oh < oh1; ++oh) {                                                          \
        __global const T *xrow = x + (long)(n * g.h + oh * g.sh - ah) * g.w * g.c + (k0 % g.c) - (long)aw * g.c; \
        __global const T *dyrow = dy + (long)(n * g.oh + oh) * g.ow * g.oc + ob * VW;               \
        for (int ow = ow0; ow < ow1; ++ow) {                                                        \
          const TV d = VLOAD(dyrow + (long)ow * g.oc);                                              \
          __global const T *xp = xrow + (long)ow * g.sw * g.c;                                      \
          _Pragma("unroll") for (int t = 0; t < TK; ++t) acc[t] = fma((TV)xp[t], d, acc[t]);        \
        }                                                                                           \
      }                                                                                             \
  } else {                                                                                          \
    /* offset of each k of the tile from the window's corner (a lane past K repeats the last k and  \
     * is not stored): within one image, which the host keeps below 2^31 elements for this kernel */ \
    int off[TK];                                                                                    \
    _Pragma("unroll") for (int t = 0; t < TK; ++t) {                                                \
      const ct_idx k = min(k0 + t, K - 1);                                                          \
      const int c = k % g.c, kw = (k / g.c) % g.kw, kh = k / (g.c * g.kw);                          \
      off[t] = (kh * g.w + kw) * g.c + c;                                                           \
    }                                                                                               \
    for (int n = sp; n < g.n; n += splits)                                                          \
      for (int oh = 0; oh < g.oh; ++oh) {                                                           \
        __global const T *xrow = x + (long)(n * g.h + oh * g.sh) * g.w * g.c;                       \
        __global const T *dyrow = dy + (long)(n * g.oh + oh) * g.ow * g.oc + ob * VW;               \
        for (int ow = 0; ow < g.ow; ++ow) {                                                         \
          const TV d = VLOAD(dyrow + (long)ow * g.oc);                                              \
          __global const T *xp = xrow + (long)ow * g.sw * g.c;                                      \
          _Pragma("unroll") for (int t = 0; t < TK; ++t) acc[t] = fma((TV)xp[off[t]], d, acc[t]);   \
        }                                                                                           \
      }                                                                                             \
  }                                                                                                 \
  __global T *pp = part + sp * pstride + (long)k0 * g.oc + ob * VW;                                 \
  _Pragma("unroll") for (int t = 0; t < TK; ++t)                                                    \
    if (t < nk) VSTORE(acc[t], pp + (long)t * g.oc);                                                \
}
CT_CONV2D_BP_FILTER_VW(conv2d_bp_filter_vec, TV, CT_VW, CT_VLOAD, CT_VSTORE, CT_VT)
#if CT_RVW >= 8 /* CPUs with vectors of 8 or 16 floats (ctb_conv2d_bp_filter): 9 vectors of
                    accumulators spill on GPUs of 128 registers (gfx1100) */
CT_CONV2D_BP_FILTER_VW(conv2d_bp_filter_vec_k9, TV, CT_VW, CT_VLOAD, CT_VSTORE, 9)
#endif
#if CT_DT == 0 && CT_RVW == 16 /* blocks of 16 output channels, as conv2d_fwd_w16_* */
CT_CONV2D_BP_FILTER_VW(conv2d_bp_filter_w16, float16, 16, CT_VLOAD16, CT_VSTORE16, CT_VT)
CT_CONV2D_BP_FILTER_VW(conv2d_bp_filter_w16_k9, float16, 16, CT_VLOAD16, CT_VSTORE16, 9)
#endif

/* ---- vectorised pooling: CT_VW channels per work-item (C a multiple of CT_VW) ----------------------- */
/* One step of a window's running maximum: v at position k replaces the best where it is larger;
 * a NaN wins and stays (as the max reduction): the pool of a window with a NaN is NaN. */
inline void ct_pool_max_step(TV *best, IV *bi, const TV v, const IV k) {
  /* v > best, or v NaN where best is not: two compares (not v <= best: greater or unordered) */
  const IV gt = ~(v <= *best) & (*best == *best);
  *best = select(*best, v, gt);
  *bi = select(*bi, k, gt);
}

/* The window's largest vector and, per lane, the position (kh * kw) of its first maximum. */
inline TV ct_pool_argmax_vec(const ct_window g, __global const T *x, int n, int oh, int ow, int cb, IV *pos) {
  TV best = (TV)0;
  IV bi = (IV)(-1);
  bool first = true;
  for (int kh = 0; kh < g.kh; ++kh) {
    const int ih = oh * g.sh + kh - g.pt;
    if (ih < 0 || ih >= g.h) continue;
    for (int kw = 0; kw < g.kw; ++kw) {
      const int iw = ow * g.sw + kw - g.pl;
      if (iw < 0 || iw >= g.w) continue;
      const TV v = CT_VLOAD(x + ((long)(n * g.h + ih) * g.w + iw) * g.c + cb * CT_VW);
      const IV k = (IV)(kh * g.kw + kw);
      if (first) {
        best = v;
        bi = k;
        first = false;
      } else {
        ct_pool_max_step(&best, &bi, v, k);
      }
    }
  }
  *pos = bi;
  return best;
}

/* One work-item per output position, looping over its blocks of CT_VW channels. */
__kernel void max_pool_vec(const int16 gw, __global const T *x, __global T *y) {
  const ct_window g = ct_window_of(gw);
  const int cbs = g.c / CT_VW;
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.oh * g.ow) return;
  const int ow = i % g.ow, oh = (i / g.ow) % g.oh, n = i / (g.ow * g.oh);
  for (int cb = 0; cb < cbs; ++cb) {
    IV pos;
    const TV best = ct_pool_argmax_vec(g, x, n, oh, ow, cb, &pos);
    CT_VSTORE(best, y + ((long)i * cbs + cb) * CT_VW);
  }
}

/* Disjoint windows inside the image (stride = window, no padding): the kh x kw window whose first
 * element is at x + o (rows `row` apart, columns c apart) without bounds checks, its largest vector
 * and per lane the position of its first maximum (as ct_pool_argmax_vec's). The kernels below call
 * it with kh = kw = 2 written out where the window is 2 x 2 (constant loop bounds: faster on PoCL,
 * docs/performance.md, "Max pooling"). */
inline TV ct_pool_disjoint_argmax_vec(const int kh_, const int kw_, const int c, __global const T *x, const long o,
                                      const long row, IV *pos) {
  TV best = CT_VLOAD(x + o);
  IV bi = (IV)0;
  for (int kh = 0; kh < kh_; ++kh)
    for (int kw = kh == 0 ? 1 : 0; kw < kw_; ++kw)
      ct_pool_max_step(&best, &bi, CT_VLOAD(x + o + kh * row + (long)kw * c), (IV)(kh * kw_ + kw));
  *pos = bi;
  return best;
}

/* The first element of disjoint window i (n, oh, ow) and the step between its rows. */
#define CT_DISJOINT_WINDOW(g, i, win, row)                                                        \
  const ct_idx q_ = (i) / (g).ow, n_ = q_ / (g).oh;                                               \
  const int ow_ = (i) - q_ * (g).ow, oh_ = q_ - n_ * (g).oh;                                      \
  const long win = ((long)(n_ * (g).h + oh_ * (g).sh) * (g).w + ow_ * (g).sw) * (g).c, row = (long)(g).w * (g).c

/* Disjoint windows inside the image: one work-item per window position. */
#define CT_MAX_POOL_DISJOINT(KH, KW)                                                                  \
  for (int cb = 0; cb < cbs; ++cb) {                                                                  \
    IV pos;                                                                                           \
    CT_VSTORE(ct_pool_disjoint_argmax_vec(KH, KW, g.c, x, win + cb * CT_VW, row, &pos),               \
              y + ((long)i * cbs + cb) * CT_VW);                                                      \
  }
__kernel void max_pool_disjoint_vec(const int16 gw, __global const T *x, __global T *y) {
  const ct_window g = ct_window_of(gw);
  const int cbs = g.c / CT_VW;
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.oh * g.ow) return;
  CT_DISJOINT_WINDOW(g, i, win, row);
  if (g.kh == 2 && g.kw == 2) CT_MAX_POOL_DISJOINT(2, 2)
  else CT_MAX_POOL_DISJOINT(g.kh, g.kw)
}

/* int build only: the host runs max_pool_grad in the long build, where the window's long extents
 * in these loops need more scalar registers than some GPUs have (gfx90a spills). ReLU's mask
 * (each window's gradient times the sign of its maximum) is a second kernel,
 * max_pool_grad_vec_mask: the flag read at run time costs a scalar register gfx90a lacks. */
#if !CT_IDX64
#define CT_MAX_POOL_GRAD_VEC(name, MASK)                                                              \
  __kernel void name(const int16 gw, __global const T *x, __global const T *dy, __global T *dx) {     \
    const ct_window g = ct_window_of(gw);                                                             \
    const int cbs = g.c / CT_VW;                                                                      \
    const ct_idx i = get_global_id(0);                                                                \
    if (i >= g.n * g.h * g.w * cbs) return;                                                           \
    const int cb = i % cbs, iw = (i / cbs) % g.w, ih = (i / (cbs * g.w)) % g.h, n = i / (cbs * g.w * g.h); \
    int oh_lo, oh_hi, ow_lo, ow_hi;                                                                   \
    CT_COVER(ih, g.pt, g.kh, g.sh, g.oh, oh_lo, oh_hi);                                               \
    CT_COVER(iw, g.pl, g.kw, g.sw, g.ow, ow_lo, ow_hi);                                               \
    TV acc = (TV)0;                                                                                   \
    for (int oh = oh_lo; oh <= oh_hi; ++oh)                                                           \
      for (int ow = ow_lo; ow <= ow_hi; ++ow) {                                                       \
        IV pos;                                                                                       \
        const TV best = ct_pool_argmax_vec(g, x, n, oh, ow, cb, &pos);                                \
        const IV mine = (IV)((ih - oh * g.sh + g.pt) * g.kw + (iw - ow * g.sw + g.pl));               \
        TV d = CT_VLOAD(dy + ((long)(n * g.oh + oh) * g.ow + ow) * g.c + cb * CT_VW);                 \
        if (MASK) d *= CT_VSIGN(TV, best);                                                        \
        acc += select((TV)0, d, pos == mine);                                                         \
      }                                                                                               \
    CT_VSTORE(acc, dx + (long)i * CT_VW);                                                             \
  }
CT_MAX_POOL_GRAD_VEC(max_pool_grad_vec, 0)
CT_MAX_POOL_GRAD_VEC(max_pool_grad_vec_mask, 1)
#endif

/* Disjoint windows (stride = window, VALID): one work-item per window position writes, for each
 * vector of channels, the gradient of every element of its window; elements outside every window
 * (the last rows/columns when the extent is not a multiple of the window) are zeroed beforehand. */
#define CT_MAX_POOL_GRAD_DISJOINT(KH, KW)                                                             \
  for (int cb = 0; cb < cbs; ++cb) {                                                                  \
    const long o = win + cb * CT_VW;                                                                  \
    IV pos;                                                                                           \
    const TV best = ct_pool_disjoint_argmax_vec(KH, KW, g.c, x, o, row, &pos);                        \
    TV d = CT_VLOAD(dy + ((long)i * cbs + cb) * CT_VW);                                               \
    if (g.mask) d *= CT_VSIGN(TV, best);                                                              \
    for (int kh = 0; kh < (KH); ++kh)                                                                 \
      for (int kw = 0; kw < (KW); ++kw)                                                               \
        CT_VSTORE(select((TV)0, d, pos == (IV)(kh * (KW) + kw)), dx + o + kh * row + (long)kw * g.c); \
  }
__kernel void max_pool_grad_disjoint_vec(const int16 gw, __global const T *x, __global const T *dy,
                                         __global T *dx) {
  const ct_window g = ct_window_of(gw);
  const int cbs = g.c / CT_VW;
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.oh * g.ow) return;
  CT_DISJOINT_WINDOW(g, i, win, row); /* every window is inside the image */
  if (g.kh == 2 && g.kw == 2) CT_MAX_POOL_GRAD_DISJOINT(2, 2)
  else CT_MAX_POOL_GRAD_DISJOINT(g.kh, g.kw)
}

/* ---- padding ---------------------------------------------------------------------------------- */
/* y [n, hp, wp, c] = x [n, h, w, c] placed at (top, left), zeros around. One work-item per output
 * row; its loops run over contiguous memory (vectorised within the work-item). */
__kernel void pad_nhwc(const ct_idx n, const ct_idx h, const ct_idx w, const ct_idx c, const ct_idx hp, const ct_idx wp,
                       const ct_idx top, const ct_idx left, __global const T *x, __global T *y) {
  const ct_idx r = get_global_id(0);
  if (r >= n * hp) return;
  const ct_idx row = r % hp, img = r / hp, ih = row - top;
  __global T *yr = y + (long)r * wp * c;
  const ct_idx lead = min(max(left, (ct_idx)0), wp) * c;
  const ct_idx cols = ih >= 0 && ih < h ? max((ct_idx)0, min(w, wp - left)) : 0;
  for (ct_idx k = 0; k < lead; ++k) yr[k] = (T)0;
  if (cols > 0) {
    __global const T *xr = x + (long)(img * h + ih) * w * c;
    for (ct_idx k = 0; k < cols * c; ++k) yr[lead + k] = xr[k];
  }
  for (ct_idx k = lead + cols * c; k < wp * c; ++k) yr[k] = (T)0;
}

/* ---- bias ------------------------------------------------------------------------------------- */
/* y[m, c] = x[m, c] + b[c]; dim 0 = c, dim 1 = m */
__kernel void bias_add(const ct_idx M, const ct_idx C, __global const T *x, __global const T *b, __global T *y) {
  const ct_idx c = get_global_id(0), m = get_global_id(1);
  if (c >= C || m >= M) return;
  const long i = (long)m * C + c;
  y[i] = x[i] + b[c];
}

/* part[p, c] = sum of dy[m, c] over the rows m of part p (contiguous blocks of rows). The _vec
 * form sums CT_VW channels per work-item (C a multiple of CT_VW); dim 0 = c or its block, dim 1 = p. */
__kernel void bias_add_grad_vec(const ct_idx M, const ct_idx C, const int parts, __global const T *dy, __global T *part) {
  const int cb = get_global_id(0), p = get_global_id(1);
  if (cb * CT_VW >= C || p >= parts) return;
  const ct_idx per = (M + parts - 1) / parts, m0 = p * per, m1 = min(M, m0 + per);
  TV acc = (TV)0;
  for (ct_idx m = m0; m < m1; ++m) acc += CT_VLOAD(dy + (long)m * C + cb * CT_VW);
  CT_VSTORE(acc, part + (long)p * C + cb * CT_VW);
}

__kernel void bias_add_grad(const ct_idx M, const ct_idx C, const int parts, __global const T *dy, __global T *part) {
  const int c = get_global_id(0), p = get_global_id(1);
  if (c >= C || p >= parts) return;
  const ct_idx per = (M + parts - 1) / parts, m0 = p * per, m1 = min(M, m0 + per);
  T acc = (T)0;
  for (ct_idx m = m0; m < m1; ++m) acc += dy[(long)m * C + c];
  part[(long)p * C + c] = acc;
}

/* ---- pooling (any channel count) ---------------------------------------------------------- */
/* Position (row-major index kh*kw) of the largest valid element of the window of output (oh, ow)
 * at channel c of image n; the first one on ties, the first NaN where there is one, -1 for a
 * window without valid elements. */
inline int ct_pool_argmax(const ct_window g, __global const T *x, int n, int oh, int ow, int c) {
  int best = -1;
  T bv = (T)0;
  for (int kh = 0; kh < g.kh; ++kh) {
    const int ih = oh * g.sh + kh - g.pt;
    if (ih < 0 || ih >= g.h) continue;
    for (int kw = 0; kw < g.kw; ++kw) {
      const int iw = ow * g.sw + kw - g.pl;
      if (iw < 0 || iw >= g.w) continue;
      const T v = x[((long)(n * g.h + ih) * g.w + iw) * g.c + c];
      if (best < 0 || v > bv || (v != v && bv == bv)) { /* a NaN wins and stays */
        best = kh * g.kw + kw;
        bv = v;
      }
    }
  }
  return best;
}

/* Number of valid (not padded) elements of the window of output (oh, ow). */
inline int ct_pool_count(const ct_window g, int oh, int ow) {
  const int h0 = max(oh * g.sh - g.pt, 0), h1 = min((ct_idx)(oh * g.sh - g.pt + g.kh), g.h);
  const int w0 = max(ow * g.sw - g.pl, 0), w1 = min((ct_idx)(ow * g.sw - g.pl + g.kw), g.w);
  return max(h1 - h0, 0) * max(w1 - w0, 0);
}

/* y[n, oh, ow, c] = max or mean of the valid elements of the window. One work-item per output. */
__kernel void max_pool(const int16 gw, __global const T *x, __global T *y) {
  const ct_window g = ct_window_of(gw);
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.oh * g.ow * g.c) return;
  const int c = i % g.c, ow = (i / g.c) % g.ow, oh = (i / (g.c * g.ow)) % g.oh, n = i / (g.c * g.ow * g.oh);
  const int a = ct_pool_argmax(g, x, n, oh, ow, c);
  if (a < 0) {
    y[i] = (T)0;
    return;
  }
  const int ih = oh * g.sh + a / g.kw - g.pt, iw = ow * g.sw + a % g.kw - g.pl;
  y[i] = x[((long)(n * g.h + ih) * g.w + iw) * g.c + c];
}

__kernel void avg_pool(const int16 gw, __global const T *x, __global T *y) {
  const ct_window g = ct_window_of(gw);
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.oh * g.ow * g.c) return;
  const int c = i % g.c, ow = (i / g.c) % g.ow, oh = (i / (g.c * g.ow)) % g.oh, n = i / (g.c * g.ow * g.oh);
  T acc = (T)0;
  for (int kh = 0; kh < g.kh; ++kh) {
    const int ih = oh * g.sh + kh - g.pt;
    if (ih < 0 || ih >= g.h) continue;
    for (int kw = 0; kw < g.kw; ++kw) {
      const int iw = ow * g.sw + kw - g.pl;
      if (iw < 0 || iw >= g.w) continue;
      acc += x[((long)(n * g.h + ih) * g.w + iw) * g.c + c];
    }
  }
  const int cnt = ct_pool_count(g, oh, ow);
  y[i] = cnt ? acc / (T)cnt : (T)0;
}


/* dx[n, ih, iw, c] = sum of dy over the windows whose argmax is (ih, iw). One work-item per
 * input element; argmaxes are recomputed, so nothing is written twice (no atomics). */
__kernel void max_pool_grad(const int16 gw, __global const T *x, __global const T *dy, __global T *dx) {
  const ct_window g = ct_window_of(gw);
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.h * g.w * g.c) return;
  const int c = i % g.c, iw = (i / g.c) % g.w, ih = (i / (g.c * g.w)) % g.h, n = i / (g.c * g.w * g.h);
  int oh_lo, oh_hi, ow_lo, ow_hi;
  CT_COVER(ih, g.pt, g.kh, g.sh, g.oh, oh_lo, oh_hi);
  CT_COVER(iw, g.pl, g.kw, g.sw, g.ow, ow_lo, ow_hi);
  T acc = (T)0;
  for (int oh = oh_lo; oh <= oh_hi; ++oh)
    for (int ow = ow_lo; ow <= ow_hi; ++ow) {
      const int a = ct_pool_argmax(g, x, n, oh, ow, c);
      if (a == (ih - oh * g.sh + g.pt) * g.kw + (iw - ow * g.sw + g.pl))
        acc += dy[((long)(n * g.oh + oh) * g.ow + ow) * g.c + c];
    }
  dx[i] = g.mask ? acc * ct_sign(x[i]) : acc;
}

/* out[n, oh, ow, c] = gg[n, ih, iw, c] at the window's argmax (ih, iw): the adjoint of max_pool_grad. */
__kernel void max_pool_gradgrad(const int16 gw, __global const T *x, __global const T *gg, __global T *out) {
  const ct_window g = ct_window_of(gw);
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.oh * g.ow * g.c) return;
  const int c = i % g.c, ow = (i / g.c) % g.ow, oh = (i / (g.c * g.ow)) % g.oh, n = i / (g.c * g.ow * g.oh);
  const int a = ct_pool_argmax(g, x, n, oh, ow, c);
  if (a < 0) {
    out[i] = (T)0;
    return;
  }
  const int ih = oh * g.sh + a / g.kw - g.pt, iw = ow * g.sw + a % g.kw - g.pl;
  const long at = ((long)(n * g.h + ih) * g.w + iw) * g.c + c;
  out[i] = g.mask ? gg[at] * ct_sign(x[at]) : gg[at];
}

/* dx[n, ih, iw, c] = sum over the windows covering (ih, iw) of dy / (valid elements of the window). */
__kernel void avg_pool_grad(const int16 gw, __global const T *dy, __global T *dx) {
  const ct_window g = ct_window_of(gw);
  const ct_idx i = get_global_id(0);
  if (i >= g.n * g.h * g.w * g.c) return;
  const int c = i % g.c, iw = (i / g.c) % g.w, ih = (i / (g.c * g.w)) % g.h, n = i / (g.c * g.w * g.h);
  int oh_lo, oh_hi, ow_lo, ow_hi;
  CT_COVER(ih, g.pt, g.kh, g.sh, g.oh, oh_lo, oh_hi);
  CT_COVER(iw, g.pl, g.kw, g.sw, g.ow, ow_lo, ow_hi);
  T acc = (T)0;
  for (int oh = oh_lo; oh <= oh_hi; ++oh)
    for (int ow = ow_lo; ow <= ow_hi; ++ow)
      acc += dy[((long)(n * g.oh + oh) * g.ow + ow) * g.c + c] / (T)ct_pool_count(g, oh, ow);
  dx[i] = acc;
}

/* ---- dropout ------------------------------------------------------------------------------ */
/* Philox-4x32-10, the generator of the host's ct_random_* (lib/tensor.c): the same counter and
 * key give the same bits on every device. */
inline uint4 ct_philox(uint4 ctr, uint2 key) {
  for (int r = 0; r < 10; ++r) {
    const uint lo0 = 0xD2511F53u * ctr.x, hi0 = mul_hi(0xD2511F53u, ctr.x);
    const uint lo1 = 0xCD9E8D57u * ctr.z, hi1 = mul_hi(0xCD9E8D57u, ctr.z);
    ctr = (uint4)(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    key += (uint2)(0x9E3779B9u, 0xBB67AE85u);
  }
  return ctr;
}

/* Element i is kept when the first word of Philox(counter i, key seed) is >= threshold, and then
 * scaled by 1 / (1 - rate). The mask is a function of (seed, i) only. */
__kernel void dropout(const ct_idx n, const uint seed_lo, const uint seed_hi, const uint threshold, const T scale,
                      __global const T *x, __global T *y) {
  const ct_idx i = get_global_id(0);
  if (i >= n) return;
  const uint4 r = ct_philox((uint4)((uint)i, CT_HI32(i), 0u, 0u), (uint2)(seed_lo, seed_hi));
  y[i] = r.x >= threshold ? x[i] * scale : (T)0;
}

/* ---- softmax cross-entropy ------------------------------------------------------------------ */
/* loss[r] = logsumexp(logits[r, :]) - logits[r, labels[r]]; NaN for a label outside [0, C). */
__kernel void softmax_xent(const ct_idx rows, const ct_idx C, __global const T *logits, __global const int *labels,
                           __global T *loss) {
  const ct_idx r = get_global_id(0);
  if (r >= rows) return;
  __global const T *z = logits + (long)r * C;
  T m = z[0];
  for (ct_idx k = 1; k < C; ++k) m = fmax(m, z[k]);
  T s = (T)0;
  for (ct_idx k = 0; k < C; ++k) s += ct_exp(z[k] - m);
  const int l = labels[r];
  loss[r] = (l >= 0 && l < C) ? m + ct_log(s) - z[l] : (T)NAN;
}

/* dx[r, k] = dy[r] * (softmax(logits[r, :])[k] - (k == labels[r])) */
__kernel void softmax_xent_grad(const ct_idx rows, const ct_idx C, __global const T *logits, __global const int *labels,
                                __global const T *dy, __global T *dx) {
  const ct_idx r = get_global_id(0);
  if (r >= rows) return;
  __global const T *z = logits + (long)r * C;
  __global T *d = dx + (long)r * C;
  T m = z[0];
  for (ct_idx k = 1; k < C; ++k) m = fmax(m, z[k]);
  T s = (T)0;
  for (ct_idx k = 0; k < C; ++k) s += ct_exp(z[k] - m);
  const int l = labels[r];
  const T g = dy[r], inv = (T)1 / s;
  const bool ok = l >= 0 && l < C;
  for (ct_idx k = 0; k < C; ++k) d[k] = ok ? g * (ct_exp(z[k] - m) * inv - (k == l ? (T)1 : (T)0)) : (T)NAN;
}

/* ---- optimizers: one launch for up to CT_OPT_MULTI variables ----------------------------------- */
/* One step on p (its gradient g, slots s1 and s2; the new value to out), the program built for one
 * kind (-DCT_OPT_KIND): 0 SGD, p -= lr * g; 1 momentum, v = mom * v + g, p -= lr * (nesterov ? g +
 * mom * v : v); 2 Adam, m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m / bc1) /
 * (sqrt(v / bc2) + eps) with bc1 = 1 - b1^t, bc2 = 1 - b2^t. Weight decay is added to g (L2), or
 * with decoupled (AdamW) applied to p first as p -= lr * wd * p. The gradient is first multiplied
 * by sc (global-norm clipping; 1 without). TT: T, or TV for CT_VW elements at once. */
#ifndef CT_OPT_KIND
#define CT_OPT_KIND 2
#endif
#if CT_OPT_KIND == 2
#define CT_OPT_STEP(TT, p, g, s1, s2, out)               \
  {                                                      \
    TT gi = (g) * sc;                                    \
    if (decoupled) p -= lr * wd * p;                     \
    else gi += wd * p;                                   \
    const TT mi = b1 * s1 + ((T)1 - b1) * gi;            \
    const TT vi = b2 * s2 + ((T)1 - b2) * gi * gi;       \
    s1 = mi;                                             \
    s2 = vi;                                             \
    out = p - lr * (mi / bc1) / (sqrt(vi / bc2) + eps);  \
  }
#elif CT_OPT_KIND == 1
#define CT_OPT_STEP(TT, p, g, s1, s2, out)               \
  {                                                      \
    const TT gi = (g) * sc + wd * p;                     \
    const TT vi = mom * s1 + gi;                         \
    s1 = vi;                                             \
    out = p - lr * (nesterov ? gi + mom * vi : vi);      \
  }
#else
#define CT_OPT_STEP(TT, p, g, s1, s2, out)               \
  {                                                      \
    const TT gi = (g) * sc + wd * p;                     \
    out = p - lr * gi;                                   \
  }
#endif

/* Variable j of a launch (j < CT_OPT_MULTI, n.sj elements) is updated by the work-groups
 * [gends[j-1], gends[j]) (gends[-1] = 0; an unused variable has none, its buffers any valid ones),
 * CT_VW elements per work-item (the variable's last work-item: the rest, one at a time): every
 * group works on one variable, and the choice of its buffers is made once per vector. p_out may be
 * p_in (an update in place) or a fresh buffer (copy-on-write when the old value is still shared).
 * flags: 1 nesterov, 2 decoupled, 4 the gradients are multiplied by scale[0]. */
/* four: every variable's five pointers are kernel arguments, and eight variables' took more
 * scalar registers than AMD GPUs have (spilled, scripts/gpu_compile.sh) */
#define CT_OPT_MULTI 4
#define CT_OPT_VAR(j) __global const T *pi##j, __global T *po##j, __global const T *g##j, __global T *sa##j, __global T *sb##j
#define CT_OPT_SLOT(j, lo, hi)                                                                \
  else if (grp < (hi)) {                                                                      \
    first = (lo), nj = n.s##j, pi = pi##j, po = po##j, gg = g##j, sa = sa##j, sb = sb##j;    \
  }
__kernel void opt_multi(const ct_idx8 gends, const ct_idx8 n, const T lr, const T wd, const T mom, const T b1,
                        const T b2, const T eps, const T bc1, const T bc2, const int flags, __global const T *scale,
                        CT_OPT_VAR(0), CT_OPT_VAR(1), CT_OPT_VAR(2), CT_OPT_VAR(3)) {
  const ct_idx grp = (ct_idx)get_group_id(0);
  ct_idx first = 0, nj = n.s0;
  __global const T *pi = pi0, *gg = g0;
  __global T *po = po0, *sa = sa0, *sb = sb0;
  if (grp < gends.s0) { /* variable 0: the values above */
  }
  CT_OPT_SLOT(1, gends.s0, gends.s1)
  CT_OPT_SLOT(2, gends.s1, gends.s2)
  CT_OPT_SLOT(3, gends.s2, gends.s3)
  const ct_idx e0 = ((grp - first) * (ct_idx)get_local_size(0) + (ct_idx)get_local_id(0)) * CT_VW;
  if (e0 >= nj) return;
  const T sc = (flags & 4) ? scale[0] : (T)1;
  const int nesterov = flags & 1, decoupled = flags & 2;
  (void)nesterov;
  (void)decoupled;
  if (e0 + CT_VW <= nj) {
    TV p = CT_VLOAD(pi + e0), out;
#if CT_OPT_KIND >= 1
    TV s1 = CT_VLOAD(sa + e0);
#else
    TV s1 = (TV)(0);
#endif
#if CT_OPT_KIND == 2
    TV s2 = CT_VLOAD(sb + e0);
#else
    TV s2 = (TV)(0);
#endif
    CT_OPT_STEP(TV, p, CT_VLOAD(gg + e0), s1, s2, out)
    CT_VSTORE(out, po + e0);
#if CT_OPT_KIND >= 1
    CT_VSTORE(s1, sa + e0);
#endif
#if CT_OPT_KIND == 2
    CT_VSTORE(s2, sb + e0);
#endif
    return;
  }
  for (ct_idx e = e0; e < nj; ++e) {
    T p = pi[e], out;
#if CT_OPT_KIND >= 1
    T s1 = sa[e];
#else
    T s1 = 0;
#endif
#if CT_OPT_KIND == 2
    T s2 = sb[e];
#else
    T s2 = 0;
#endif
    CT_OPT_STEP(T, p, gg[e], s1, s2, out)
    po[e] = out;
#if CT_OPT_KIND >= 1
    sa[e] = s1;
#endif
#if CT_OPT_KIND == 2
    sb[e] = s2;
#endif
  }
}
#undef CT_OPT_SLOT
#undef CT_OPT_VAR
#undef CT_OPT_STEP
