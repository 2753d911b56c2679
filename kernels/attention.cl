/* Fused scaled dot-product attention (host/launch_attention.c): o = softmax(q k^T * scale + mask) v
 * per (batch-head, query), with an online softmax over blocks of keys (held in local memory, or
 * read in place on CPU devices: AT_LOCAL), and its gradient recomputing the probabilities from q,
 * k and the saved per-row logsumexp.
 *
 * q [BH, TQ, D], k [BH, TK, D], v [BH, TK, DV], o [BH, TQ, DV] row-major; lse [BH, TQ] lies in o's
 * buffer from element `lo` on. With `causal`, query i sees the keys j <= i + TK - TQ only.
 * D and DV are build options (-DAT_D, -DAT_DV: the private rows of the work-items); a work-group
 * has AT_GROUP work-items, one query row (forward, dq) or one key row (dk, dv) each; the other
 * operand comes AT_BLOCK rows at a time. Every work-item runs the same loops (a key a query does
 * not see gets a zero weight), so that CPU implementations vectorize across work-items; those
 * past the last row load their share, meet the barriers, and write nothing. */
#ifndef AT_D
#define AT_D 1
#endif
#ifndef AT_DV
#define AT_DV 1
#endif
#define AT_GROUP 64
#define AT_BLOCK 32

#define AT_NEG_INF (-INFINITY)

/* The block of keys from j0 and their values, KS(j, c) and VS(j, c): in local memory, zeros past the
 * last key (so that a masked key's zero weight never meets a stale NaN); or, with -DAT_LOCAL=0 (CPU
 * devices, where local memory is ordinary memory and the barriers around it cost more than they
 * save), read in place, the rows past the last key reading the last one (masked). */
#ifndef AT_LOCAL
#define AT_LOCAL 1
#endif
#if AT_LOCAL
#define AT_LOAD_KV                                                                                  \
  const int nb = (int)min((ct_idx)AT_BLOCK, tk - j0);                                               \
  barrier(CLK_LOCAL_MEM_FENCE);                                                                     \
  for (int e = lid; e < AT_BLOCK * AT_D; e += AT_GROUP) ks[e] = e < nb * AT_D ? kb[j0 * AT_D + e] : 0; \
  for (int e = lid; e < AT_BLOCK * AT_DV; e += AT_GROUP) vs[e] = e < nb * AT_DV ? vb[j0 * AT_DV + e] : 0; \
  barrier(CLK_LOCAL_MEM_FENCE)
#define AT_KV_LOCALS __local T ks[AT_BLOCK * AT_D], vs[AT_BLOCK * AT_DV]
#define AT_ROW(j) (j)
#else
#define AT_LOAD_KV                                                                                  \
  const int nb = (int)min((ct_idx)AT_BLOCK, tk - j0);                                               \
  __global const T *ks = kb + j0 * AT_D, *vs = vb + j0 * AT_DV
#define AT_KV_LOCALS
#define AT_ROW(j) min((j), nb - 1)
#endif
#define KS(j, c) ks[AT_ROW(j) * AT_D + (c)]
#define VS(j, c) vs[AT_ROW(j) * AT_DV + (c)]

/* the last key that query i sees (TK - 1 without a mask) */
#define AT_LAST_KEY(i) (causal ? (i) + tk - tq : tk - 1)

__kernel __attribute__((reqd_work_group_size(AT_GROUP, 1, 1))) void
attention_fwd(const ct_idx tq, const ct_idx tk, const int causal, const T scale, __global const T *q,
              __global const T *k, __global const T *v, __global T *o, const ct_idx lo) {
  AT_KV_LOCALS;
  const ct_idx nqb = (tq + AT_GROUP - 1) / AT_GROUP;
  const ct_idx grp = get_group_id(0), bh = grp / nqb, qb = grp - bh * nqb;
  const int lid = (int)get_local_id(0);
  const ct_idx i = qb * AT_GROUP + lid;
  const bool live = i < tq;
  T qr[AT_D], acc[AT_DV], s[AT_BLOCK];
  __global const T *qp = q + (bh * tq + (live ? i : 0)) * AT_D;
  for (int c = 0; c < AT_D; ++c) qr[c] = qp[c] * scale;
  for (int c = 0; c < AT_DV; ++c) acc[c] = 0;
  T m = AT_NEG_INF, l = 0;
  /* the keys the group's last query sees */
  const ct_idx last_row = min(tq - 1, qb * AT_GROUP + AT_GROUP - 1);
  const ct_idx kend = AT_LAST_KEY(last_row) + 1;
  const ct_idx mine = live ? AT_LAST_KEY(i) : (ct_idx)-1;
  __global const T *kb = k + bh * tk * AT_D, *vb = v + bh * tk * AT_DV;
  for (ct_idx j0 = 0; j0 < kend; j0 += AT_BLOCK) {
    AT_LOAD_KV;
    /* the keys this query sees get their score, the others -inf (every work-item runs the same
     * loop: the implicit vectorization of CPU implementations keeps it) */
    T bm = m;
    for (int j = 0; j < AT_BLOCK; ++j) {
      T dot = 0;
      for (int c = 0; c < AT_D; ++c) dot += qr[c] * KS(j, c);
      s[j] = j0 + j <= mine ? dot : AT_NEG_INF;
      bm = fmax(bm, s[j]);
    }
    const T corr = bm == AT_NEG_INF ? (T)1 : ct_exp(m - bm);
    l *= corr;
    for (int c = 0; c < AT_DV; ++c) acc[c] *= corr;
    for (int j = 0; j < AT_BLOCK; ++j) {
      const T p = s[j] == AT_NEG_INF ? (T)0 : ct_exp(s[j] - bm);
      l += p;
      for (int c = 0; c < AT_DV; ++c) acc[c] += p * VS(j, c);
    }
    m = bm;
  }
  if (!live) return;
  __global T *op = o + (bh * tq + i) * AT_DV;
  const T inv = 1 / l;
  for (int c = 0; c < AT_DV; ++c) op[c] = acc[c] * inv;
  o[lo + bh * tq + i] = m + ct_log(l);
}

/* delta[r] = sum_c dO[r, c] o[r, c], one work-item per row of the BH * TQ rows */
__kernel void attention_delta(const ct_idx rows, __global const T *o, __global const T *dout,
                              __global T *delta) {
  const ct_idx r = get_global_id(0);
  if (r >= rows) return;
  T acc = 0;
  for (int c = 0; c < AT_DV; ++c) acc += dout[r * AT_DV + c] * o[r * AT_DV + c];
  delta[r] = acc;
}

/* dK and dV: one work-item per key j, the queries that see it in blocks:
 * p = exp(q.k * scale - lse), dv += p dO, ds = p (dO.v - delta), dk += ds q * scale. dk is
 * written at g + gk, dv at g + gv. */
__kernel __attribute__((reqd_work_group_size(AT_GROUP, 1, 1))) void
attention_dkv(const ct_idx tq, const ct_idx tk, const int causal, const T scale, __global const T *q,
              __global const T *k, __global const T *v, __global const T *o, const ct_idx lo,
              __global const T *dout, __global const T *delta, __global T *g, const ct_idx gk,
              const ct_idx gv) {
#if AT_LOCAL
  __local T qs[AT_BLOCK * AT_D], ds_[AT_BLOCK * AT_DV], ls[AT_BLOCK], es[AT_BLOCK];
#endif
  const ct_idx nkb = (tk + AT_GROUP - 1) / AT_GROUP;
  const ct_idx grp = get_group_id(0), bh = grp / nkb, kbk = grp - bh * nkb;
  const int lid = (int)get_local_id(0);
  const ct_idx j = kbk * AT_GROUP + lid;
  const bool live = j < tk;
  T kr[AT_D], vr[AT_DV], dk[AT_D], dv[AT_DV];
  __global const T *kp = k + (bh * tk + (live ? j : 0)) * AT_D, *vp = v + (bh * tk + (live ? j : 0)) * AT_DV;
  for (int c = 0; c < AT_D; ++c) kr[c] = kp[c] * scale, dk[c] = 0;
  for (int c = 0; c < AT_DV; ++c) vr[c] = vp[c], dv[c] = 0;
  /* the first query that sees this group's first key (causal: i >= j - (TK - TQ)) */
  const ct_idx first_key = kbk * AT_GROUP;
  ct_idx i_start = causal ? max((ct_idx)0, first_key - (tk - tq)) : 0;
  i_start = (i_start / AT_BLOCK) * AT_BLOCK;
  __global const T *qb = q + bh * tq * AT_D, *db = dout + bh * tq * AT_DV;
  __global const T *lb = o + lo + bh * tq, *eb = delta + bh * tq;
  /* the last query that sees nothing of key j (causal), or -1 */
  const ct_idx blind = live ? (causal ? j - (tk - tq) - 1 : (ct_idx)-1) : tq;
  for (ct_idx i0 = i_start; i0 < tq; i0 += AT_BLOCK) {
    const int nb = (int)min((ct_idx)AT_BLOCK, tq - i0);
#if AT_LOCAL
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = lid; e < AT_BLOCK * AT_D; e += AT_GROUP) qs[e] = e < nb * AT_D ? qb[i0 * AT_D + e] : 0;
    for (int e = lid; e < AT_BLOCK * AT_DV; e += AT_GROUP) ds_[e] = e < nb * AT_DV ? db[i0 * AT_DV + e] : 0;
    for (int e = lid; e < AT_BLOCK; e += AT_GROUP) ls[e] = e < nb ? lb[i0 + e] : 0, es[e] = e < nb ? eb[i0 + e] : 0;
    barrier(CLK_LOCAL_MEM_FENCE);
#else
    __global const T *qs = qb + i0 * AT_D, *ds_ = db + i0 * AT_DV, *ls = lb + i0, *es = eb + i0;
#endif
    for (int ii = 0; ii < AT_BLOCK; ++ii) {
      T dot = 0, dp = 0;
      const int r = AT_ROW(ii);
      for (int c = 0; c < AT_D; ++c) dot += kr[c] * qs[r * AT_D + c];
      const T p = i0 + ii > blind && ii < nb ? ct_exp(dot - ls[r]) : (T)0;
      for (int c = 0; c < AT_DV; ++c) {
        dv[c] += p * ds_[r * AT_DV + c];
        dp += vr[c] * ds_[r * AT_DV + c];
      }
      const T dsc = p * (dp - es[r]) * scale;
      for (int c = 0; c < AT_D; ++c) dk[c] += dsc * qs[r * AT_D + c];
    }
  }
  if (!live) return;
  __global T *dkp = g + gk + (bh * tk + j) * AT_D, *dvp = g + gv + (bh * tk + j) * AT_DV;
  for (int c = 0; c < AT_D; ++c) dkp[c] = dk[c];
  for (int c = 0; c < AT_DV; ++c) dvp[c] = dv[c];
}

/* dQ: one work-item per query i, the keys it sees in blocks:
 * ds = p (dO.v - delta), dq += ds k * scale, written at g. */
__kernel __attribute__((reqd_work_group_size(AT_GROUP, 1, 1))) void
attention_dq(const ct_idx tq, const ct_idx tk, const int causal, const T scale, __global const T *q,
             __global const T *k, __global const T *v, __global const T *o, const ct_idx lo,
             __global const T *dout, __global const T *delta, __global T *g) {
  AT_KV_LOCALS;
  const ct_idx nqb = (tq + AT_GROUP - 1) / AT_GROUP;
  const ct_idx grp = get_group_id(0), bh = grp / nqb, qb = grp - bh * nqb;
  const int lid = (int)get_local_id(0);
  const ct_idx i = qb * AT_GROUP + lid;
  const bool live = i < tq;
  const ct_idx row = bh * tq + (live ? i : 0);
  T qr[AT_D], dor[AT_DV], acc[AT_D];
  for (int c = 0; c < AT_D; ++c) qr[c] = q[row * AT_D + c] * scale, acc[c] = 0;
  for (int c = 0; c < AT_DV; ++c) dor[c] = dout[row * AT_DV + c];
  const T lse = o[lo + row], dl = delta[row];
  const ct_idx last_row = min(tq - 1, qb * AT_GROUP + AT_GROUP - 1);
  const ct_idx kend = AT_LAST_KEY(last_row) + 1;
  const ct_idx mine = live ? AT_LAST_KEY(i) : (ct_idx)-1;
  __global const T *kb = k + bh * tk * AT_D, *vb = v + bh * tk * AT_DV;
  for (ct_idx j0 = 0; j0 < kend; j0 += AT_BLOCK) {
    AT_LOAD_KV;
    for (int j = 0; j < AT_BLOCK; ++j) {
      T dot = 0, dp = 0;
      for (int c = 0; c < AT_D; ++c) dot += qr[c] * KS(j, c);
      for (int c = 0; c < AT_DV; ++c) dp += dor[c] * VS(j, c);
      const T ds = j0 + j <= mine ? ct_exp(dot - lse) * (dp - dl) * scale : (T)0;
      for (int c = 0; c < AT_D; ++c) acc[c] += ds * KS(j, c);
    }
  }
  if (!live) return;
  for (int c = 0; c < AT_D; ++c) g[row * AT_D + c] = acc[c];
}
