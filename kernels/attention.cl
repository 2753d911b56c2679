/* Fused scaled dot-product attention (host/launch_attention.c): o = softmax(q k^T * scale + mask) v
 * per (batch-head, query), with an online softmax over blocks of keys held in local memory, and
 * its gradient recomputing the probabilities from q, k and the saved per-row logsumexp.
 *
 * q [BH, TQ, D], k [BH, TK, D], v [BH, TK, DV], o [BH, TQ, DV] row-major; lse [BH, TQ] lies in o's
 * buffer from element `lo` on. With `causal`, query i sees the keys j <= i + TK - TQ only.
 * D and DV are build options (-DAT_D, -DAT_DV: the private rows of the work-items); a work-group
 * has AT_GROUP work-items, one query row (forward, dq) or one key row (dk, dv) each; the other
 * operand comes through local memory AT_BLOCK rows at a time. Work-items past the last row load
 * their share and meet the barriers, and write nothing. */
#ifndef AT_D
#define AT_D 1
#endif
#ifndef AT_DV
#define AT_DV 1
#endif
#define AT_GROUP 64
#define AT_BLOCK 32

#define AT_NEG_INF (-INFINITY)

/* the last key that query i sees (TK - 1 without a mask) */
#define AT_LAST_KEY(i) (causal ? (i) + tk - tq : tk - 1)

__kernel __attribute__((reqd_work_group_size(AT_GROUP, 1, 1))) void
attention_fwd(const ct_idx tq, const ct_idx tk, const int causal, const T scale, __global const T *q,
              __global const T *k, __global const T *v, __global T *o, const ct_idx lo) {
  __local T ks[AT_BLOCK * AT_D], vs[AT_BLOCK * AT_DV];
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
    const int nb = (int)min((ct_idx)AT_BLOCK, tk - j0);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = lid; e < nb * AT_D; e += AT_GROUP) ks[e] = kb[j0 * AT_D + e];
    for (int e = lid; e < nb * AT_DV; e += AT_GROUP) vs[e] = vb[j0 * AT_DV + e];
    barrier(CLK_LOCAL_MEM_FENCE);
    const int n = (int)clamp(mine - j0 + 1, (ct_idx)0, (ct_idx)nb);
    if (n == 0) continue;
    T bm = m;
    for (int j = 0; j < n; ++j) {
      T dot = 0;
      for (int c = 0; c < AT_D; ++c) dot += qr[c] * ks[j * AT_D + c];
      s[j] = dot;
      bm = fmax(bm, dot);
    }
    const T corr = ct_exp(m - bm);
    l *= corr;
    for (int c = 0; c < AT_DV; ++c) acc[c] *= corr;
    for (int j = 0; j < n; ++j) {
      const T p = ct_exp(s[j] - bm);
      l += p;
      for (int c = 0; c < AT_DV; ++c) acc[c] += p * vs[j * AT_DV + c];
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

/* dK and dV: one work-item per key j, the queries that see it through local memory:
 * p = exp(q.k * scale - lse), dv += p dO, ds = p (dO.v - delta), dk += ds q * scale. dk is
 * written at g + gk, dv at g + gv. */
__kernel __attribute__((reqd_work_group_size(AT_GROUP, 1, 1))) void
attention_dkv(const ct_idx tq, const ct_idx tk, const int causal, const T scale, __global const T *q,
              __global const T *k, __global const T *v, __global const T *o, const ct_idx lo,
              __global const T *dout, __global const T *delta, __global T *g, const ct_idx gk,
              const ct_idx gv) {
  __local T qs[AT_BLOCK * AT_D], ds_[AT_BLOCK * AT_DV], ls[AT_BLOCK], es[AT_BLOCK];
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
  for (ct_idx i0 = i_start; i0 < tq; i0 += AT_BLOCK) {
    const int nb = (int)min((ct_idx)AT_BLOCK, tq - i0);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = lid; e < nb * AT_D; e += AT_GROUP) qs[e] = qb[i0 * AT_D + e];
    for (int e = lid; e < nb * AT_DV; e += AT_GROUP) ds_[e] = db[i0 * AT_DV + e];
    for (int e = lid; e < nb; e += AT_GROUP) ls[e] = lb[i0 + e], es[e] = eb[i0 + e];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!live) continue;
    /* causal: query i sees key j when i >= j - (TK - TQ) */
    const int from = causal ? (int)clamp(j - (tk - tq) - i0, (ct_idx)0, (ct_idx)nb) : 0;
    for (int ii = from; ii < nb; ++ii) {
      T dot = 0, dp = 0;
      for (int c = 0; c < AT_D; ++c) dot += kr[c] * qs[ii * AT_D + c];
      const T p = ct_exp(dot - ls[ii]);
      for (int c = 0; c < AT_DV; ++c) {
        dv[c] += p * ds_[ii * AT_DV + c];
        dp += vr[c] * ds_[ii * AT_DV + c];
      }
      const T dsc = p * (dp - es[ii]) * scale;
      for (int c = 0; c < AT_D; ++c) dk[c] += dsc * qs[ii * AT_D + c];
    }
  }
  if (!live) return;
  __global T *dkp = g + gk + (bh * tk + j) * AT_D, *dvp = g + gv + (bh * tk + j) * AT_DV;
  for (int c = 0; c < AT_D; ++c) dkp[c] = dk[c];
  for (int c = 0; c < AT_DV; ++c) dvp[c] = dv[c];
}

/* dQ: one work-item per query i, the keys it sees through local memory:
 * ds = p (dO.v - delta), dq += ds k * scale, written at g. */
__kernel __attribute__((reqd_work_group_size(AT_GROUP, 1, 1))) void
attention_dq(const ct_idx tq, const ct_idx tk, const int causal, const T scale, __global const T *q,
             __global const T *k, __global const T *v, __global const T *o, const ct_idx lo,
             __global const T *dout, __global const T *delta, __global T *g) {
  __local T ks[AT_BLOCK * AT_D], vs[AT_BLOCK * AT_DV];
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
    const int nb = (int)min((ct_idx)AT_BLOCK, tk - j0);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int e = lid; e < nb * AT_D; e += AT_GROUP) ks[e] = kb[j0 * AT_D + e];
    for (int e = lid; e < nb * AT_DV; e += AT_GROUP) vs[e] = vb[j0 * AT_DV + e];
    barrier(CLK_LOCAL_MEM_FENCE);
    const int n = (int)clamp(mine - j0 + 1, (ct_idx)0, (ct_idx)nb);
    for (int j = 0; j < n; ++j) {
      T dot = 0, dp = 0;
      for (int c = 0; c < AT_D; ++c) dot += qr[c] * ks[j * AT_D + c];
      for (int c = 0; c < AT_DV; ++c) dp += dor[c] * vs[j * AT_DV + c];
      const T ds = ct_exp(dot - lse) * (dp - dl) * scale;
      for (int c = 0; c < AT_D; ++c) acc[c] += ds * ks[j * AT_D + c];
    }
  }
  if (!live) return;
  for (int c = 0; c < AT_D; ++c) g[row * AT_D + c] = acc[c];
}
