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
