/* reference.c — the op table's host reference: every row's math evaluated in float64 on the
 * host. Elementwise rows evaluate one element from the table's reference column (R(...) in
 * lib/ops.def, x the unary operand, a and b the binary ones; ct_ops[op].reference, and over
 * whole tensors ct__ref_elementwise); the other rows name a function here in the same column
 * (RF(ct__ref_*), ct_ops[op].ref_forward) that takes whole host tensors and the attributes of the
 * call, as ct__run does on the device. The test inputs come from the DOM column. Used by
 * the generated forward tests (tests/test_op_table.c) and by `cltape-devices --check` to judge a
 * device's results. Gradient rows (StridedSliceGrad, Conv2DBackpropInput, ...) have no forward
 * reference of their own: their results are what the gradient checker compares with finite
 * differences of their forward row. */
#include "ct_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- one element: the reference column of each row ------------------------------------------ */
#define R(e) return (double)(e);
#define RF(fn) return 0;
#define NOREF return 0;
#define X(id, lname, name, kind, nin, dts, expr, ref, saves, attrs, fwd, dom, grad) \
  double ct__ref_##id(double a, double b) {                                         \
    double x = a;                                                                   \
    (void)x;                                                                        \
    (void)b;                                                                        \
    ref                                                                             \
  }
#include "ops.def"
#undef X
#undef R
#undef RF
#undef NOREF

/* The same by op id, for callers that hold values one at a time (NAN for a row without one). */
double ct__reference_unary(ct_op_id op, double x) {
  return op < CT_OP_COUNT && ct_ops[op].kind == K_UN && ct_ops[op].reference ? ct_ops[op].reference(x, 0) : NAN;
}
double ct__reference_binary(ct_op_id op, double a, double b) {
  return op < CT_OP_COUNT && ct_ops[op].kind != K_UN && ct_ops[op].reference ? ct_ops[op].reference(a, b) : NAN;
}

bool ct__reference_elementwise(ct_op_id op) {
  if (op < 0 || op >= CT_OP_COUNT) return false;
  switch (ct_ops[op].kind) {
    case K_UN: return !isnan(ct__reference_unary(op, 0.5));
    case K_BIN:
    case K_CMP: return !isnan(ct__reference_binary(op, 0.5, 1.5));
    default: return false;
  }
}

double ct__reference_input(ct_op_id op, int input, double f) {
  const ct_op_info *r = op >= 0 && op < CT_OP_COUNT ? &ct_ops[op] : NULL;
  if (!r || !r->has_domain) return -2.1 + 4.4 * f;
  bool b = input > 0;
  double steps = f * CT_DOM_STEPS, k = floor(steps), shift = 0.2 * (steps - k - 0.5);
  double v = b ? r->b0 + r->db * (k + shift) : r->a0 + r->da * (k + shift);
  return b && r->b_alternate && fmod(k, 2) == 1 ? -v : v;
}

/* ---- whole tensors ---------------------------------------------------------------------------- */
static int64_t count(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  return n;
}

static void strides_of(int rank, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    st[i] = s;
    s *= shape[i];
  }
}

static ct_status alloc_out(ct_ref_tensor *o, int rank, const int64_t *shape) {
  o->rank = rank;
  memcpy(o->shape, shape, sizeof(int64_t) * (size_t)rank);
  int64_t n = count(rank, shape);
  o->v = calloc((size_t)(n ? n : 1), sizeof(double));
  return o->v ? CT_OK : ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "host reference");
}

/* coordinates of linear index i */
static void coords(int64_t i, int rank, const int64_t *shape, int64_t *c) {
  for (int d = rank - 1; d >= 0; --d) {
    c[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
}

/* index of t at the (right-aligned, broadcast) coordinates c of an output of rank r */
static int64_t bcast_index(const ct_ref_tensor *t, int r, const int64_t *c) {
  int64_t idx = 0;
  for (int d = 0; d < t->rank; ++d) {
    int64_t cd = c[r - t->rank + d];
    idx = idx * t->shape[d] + (t->shape[d] == 1 ? 0 : cd);
  }
  return idx;
}

static void bcast_shape(const ct_ref_tensor *in, int n, int *rank, int64_t *shape) {
  *rank = 0;
  for (int i = 0; i < n; ++i)
    if (in[i].rank > *rank) *rank = in[i].rank;
  for (int d = 0; d < *rank; ++d) {
    shape[d] = 1;
    for (int i = 0; i < n; ++i) {
      int k = d - (*rank - in[i].rank);
      if (k >= 0 && in[i].shape[k] != 1) shape[d] = in[i].shape[k];
    }
  }
}

/* out[i] = one(op, the inputs' elements at i) over the inputs' broadcast shape */
static ct_status bcast_map(ct_op_id op, const ct_ref_tensor *in, int n_in, ct_ref_tensor *out,
                           double (*one)(ct_op_id, const double *, int)) {
  int r;
  int64_t shape[CT_MAX_RANK] = {0}, c[CT_MAX_RANK];
  bcast_shape(in, n_in, &r, shape);
  CT_TRY(alloc_out(out, r, shape));
  for (int64_t i = 0, n = count(r, shape); i < n; ++i) {
    coords(i, r, shape, c);
    double v[3];
    for (int k = 0; k < n_in && k < 3; ++k) v[k] = in[k].v[bcast_index(&in[k], r, c)];
    out->v[i] = one(op, v, n_in);
  }
  return CT_OK;
}

static double elementwise_one(ct_op_id op, const double *v, int n) {
  return n == 1 ? ct__reference_unary(op, v[0]) : ct__reference_binary(op, v[0], v[1]);
}
static double select_one(ct_op_id op, const double *v, int n) {
  (void)op, (void)n;
  return v[0] != 0 ? v[1] : v[2];
}

/* the elementwise rows (R(...)): their one-element reference over the broadcast shape */
CT_REFERENCE(ct__ref_elementwise) {
  (void)at;
  return bcast_map(op, in, n_in, out, elementwise_one);
}

CT_REFERENCE(ct__ref_select) {
  (void)at;
  return bcast_map(op, in, n_in, out, select_one);
}

CT_REFERENCE(ct__ref_cast) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0];
  CT_TRY(alloc_out(out, x->rank, x->shape));
  for (int64_t i = 0, n = count(x->rank, x->shape); i < n; ++i)
    out->v[i] = at->cast.dtype == CT_INT32 || at->cast.dtype == CT_INT64 ? trunc(x->v[i])
                : at->cast.dtype == CT_FLOAT32 ? (double)(float)x->v[i]
                : at->cast.dtype == CT_FLOAT16 ? ct__f16_to_double(ct__f16_from_double(x->v[i]))
                : at->cast.dtype == CT_BFLOAT16 ? ct__bf16_to_double(ct__bf16_from_double(x->v[i]))
                : at->cast.dtype == CT_BOOL ? (double)(x->v[i] != 0)
                : x->v[i];
  return CT_OK;
}

/* the values of x in the given shape */
static ct_status copy_as(const ct_ref_tensor *x, int rank, const int64_t *shape, ct_ref_tensor *out) {
  CT_TRY(alloc_out(out, rank, shape));
  memcpy(out->v, x->v, sizeof(double) * (size_t)count(x->rank, x->shape));
  return CT_OK;
}
CT_REFERENCE(ct__ref_identity) {
  (void)op, (void)n_in, (void)at;
  return copy_as(&in[0], in[0].rank, in[0].shape, out);
}
CT_REFERENCE(ct__ref_reshape) {
  (void)op, (void)n_in;
  return copy_as(&in[0], at->shape.rank, at->shape.shape, out);
}

static double red_sum(double acc, double v) { return acc + v; }
static double red_prod(double acc, double v) { return acc * v; }

static ct_status reduce(double init, double (*combine)(double, double), const ct_ref_tensor *x, const ct_attrs *at,
                        ct_ref_tensor *out) {
  bool red[CT_MAX_RANK] = {0};
  for (int i = 0; i < at->reduce.naxes; ++i) red[at->reduce.axes[i]] = true;
  int64_t kshape[CT_MAX_RANK], oshape[CT_MAX_RANK] = {0}, c[CT_MAX_RANK];
  int orank = 0;
  for (int d = 0; d < x->rank; ++d) {
    kshape[d] = red[d] ? 1 : x->shape[d];
    if (!red[d] || at->reduce.keepdims) oshape[orank++] = kshape[d];
  }
  CT_TRY(alloc_out(out, orank, oshape));
  int64_t no = count(x->rank, kshape);
  for (int64_t i = 0; i < no; ++i) out->v[i] = init;
  for (int64_t i = 0, n = count(x->rank, x->shape); i < n; ++i) {
    coords(i, x->rank, x->shape, c);
    int64_t o = 0;
    for (int d = 0; d < x->rank; ++d) o = o * kshape[d] + (red[d] ? 0 : c[d]);
    out->v[o] = combine(out->v[o], x->v[i]);
  }
  return CT_OK;
}
#define REDUCTION(name, init, combine)             \
  CT_REFERENCE(ct__ref_##name) {                   \
    (void)op, (void)n_in;                          \
    return reduce(init, combine, &in[0], at, out); \
  }
REDUCTION(sum, 0, red_sum)
REDUCTION(prod, 1, red_prod)
REDUCTION(max, -INFINITY, fmax)
REDUCTION(min, INFINITY, fmin)
#undef REDUCTION

static ct_status argreduce(bool largest, const ct_ref_tensor *x, int axis, ct_ref_tensor *out) {
  int64_t oshape[CT_MAX_RANK] = {0}, outer = 1, inner = 1, R = x->shape[axis];
  int orank = 0;
  for (int d = 0; d < x->rank; ++d) {
    if (d < axis) outer *= x->shape[d];
    if (d > axis) inner *= x->shape[d];
    if (d != axis) oshape[orank++] = x->shape[d];
  }
  CT_TRY(alloc_out(out, orank, oshape));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      int64_t best = 0;
      for (int64_t r = 1; r < R; ++r) {
        double v = x->v[(o * R + r) * inner + in], b = x->v[(o * R + best) * inner + in];
        if (largest ? v > b : v < b) best = r;
      }
      out->v[o * inner + in] = (double)best;
    }
  return CT_OK;
}

/* out (shape) <- x read at offset + sum(c[d] * st[d]) */
static ct_status strided(const ct_ref_tensor *x, int rank, const int64_t *shape, int64_t off, const int64_t *st,
                         ct_ref_tensor *out) {
  CT_TRY(alloc_out(out, rank, shape));
  int64_t c[CT_MAX_RANK];
  for (int64_t i = 0, n = count(rank, shape); i < n; ++i) {
    coords(i, rank, shape, c);
    int64_t k = off;
    for (int d = 0; d < rank; ++d) k += c[d] * st[d];
    out->v[i] = x->v[k];
  }
  return CT_OK;
}

CT_REFERENCE(ct__ref_argmax) {
  (void)op, (void)n_in;
  return argreduce(true, &in[0], at->axis.axis, out);
}
CT_REFERENCE(ct__ref_argmin) {
  (void)op, (void)n_in;
  return argreduce(false, &in[0], at->axis.axis, out);
}

CT_REFERENCE(ct__ref_matmul) {
  (void)op, (void)n_in;
  const ct_ref_tensor *a = &in[0], *b = &in[1];
  int ra = a->rank, rb = b->rank;
  int64_t m = at->matmul.ta ? a->shape[ra - 1] : a->shape[ra - 2], k = at->matmul.ta ? a->shape[ra - 2] : a->shape[ra - 1];
  int64_t n = at->matmul.tb ? b->shape[rb - 2] : b->shape[rb - 1];
  ct_ref_tensor ba = {ra - 2, {0}, NULL}, bb = {rb - 2, {0}, NULL};
  memcpy(ba.shape, a->shape, sizeof(int64_t) * (size_t)(ra - 2));
  memcpy(bb.shape, b->shape, sizeof(int64_t) * (size_t)(rb - 2));
  ct_ref_tensor both[2] = {ba, bb};
  int br;
  int64_t shape[CT_MAX_RANK] = {0}, c[CT_MAX_RANK];
  bcast_shape(both, 2, &br, shape);
  shape[br] = m;
  shape[br + 1] = n;
  CT_TRY(alloc_out(out, br + 2, shape));
  int64_t ma = a->shape[ra - 2] * a->shape[ra - 1], mb = b->shape[rb - 2] * b->shape[rb - 1];
  for (int64_t p = 0, batch = count(br, shape); p < batch; ++p) {
    coords(p, br, shape, c);
    const double *A = a->v + bcast_index(&both[0], br, c) * ma, *B = b->v + bcast_index(&both[1], br, c) * mb;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q)
          s += (at->matmul.ta ? A[q * m + i] : A[i * k + q]) * (at->matmul.tb ? B[j * k + q] : B[q * n + j]);
        out->v[(p * m + i) * n + j] = s;
      }
  }
  return CT_OK;
}

/* output extent and padding before of one spatial axis, as lib/nn/ops_nn.c */
static void extent(int64_t in, int k, int s, bool same, int64_t *out, int64_t *pad) {
  if (same) {
    *out = (in + s - 1) / s;
    int64_t total = (*out - 1) * s + k - in;
    *pad = total > 0 ? total / 2 : 0;
  } else {
    *out = (in - k) / s + 1;
    *pad = 0;
  }
}

typedef enum { W_CONV, W_MAX, W_AVG } window_kind;

/* conv2d (x NHWC, f HWIO) and the pools (win from the attributes) */
static ct_status window(window_kind op, const ct_ref_tensor *x, const ct_ref_tensor *f, const ct_attrs *at,
                        ct_ref_tensor *out) {
  int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  int kh = f ? (int)f->shape[0] : at->window.win[0], kw = f ? (int)f->shape[1] : at->window.win[1];
  int64_t OC = f ? f->shape[3] : C, oh, ow, pt, pl;
  extent(H, kh, at->window.stride[0], at->window.same, &oh, &pt);
  extent(W, kw, at->window.stride[1], at->window.same, &ow, &pl);
  int64_t shape[4] = {N, oh, ow, OC};
  CT_TRY(alloc_out(out, 4, shape));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j)
        for (int64_t o = 0; o < OC; ++o) {
          double acc = op == W_MAX ? -INFINITY : 0;
          int cnt = 0;
          for (int u = 0; u < kh; ++u)
            for (int v = 0; v < kw; ++v) {
              int64_t ih = i * at->window.stride[0] + u - pt, iw = j * at->window.stride[1] + v - pl;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const double *px = x->v + ((n * H + ih) * W + iw) * C;
              ++cnt;
              if (op == W_CONV)
                for (int64_t c = 0; c < C; ++c) acc += px[c] * f->v[((u * kw + v) * C + c) * OC + o];
              else if (op == W_MAX) acc = fmax(acc, px[o]);
              else acc += px[o];
            }
          if (op == W_AVG) acc = cnt ? acc / cnt : 0;
          out->v[((n * oh + i) * ow + j) * OC + o] = acc;
        }
  return CT_OK;
}

CT_REFERENCE(ct__ref_conv2d) {
  (void)op, (void)n_in;
  return window(W_CONV, &in[0], &in[1], at, out);
}
CT_REFERENCE(ct__ref_max_pool) {
  (void)op, (void)n_in;
  return window(W_MAX, &in[0], NULL, at, out);
}
CT_REFERENCE(ct__ref_avg_pool) {
  (void)op, (void)n_in;
  return window(W_AVG, &in[0], NULL, at, out);
}

CT_REFERENCE(ct__ref_transpose) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0];
  int64_t st[CT_MAX_RANK], sst[CT_MAX_RANK], shape[CT_MAX_RANK];
  strides_of(x->rank, x->shape, st);
  for (int d = 0; d < x->rank; ++d) {
    shape[d] = x->shape[at->perm.perm[d]];
    sst[d] = st[at->perm.perm[d]];
  }
  return strided(x, x->rank, shape, 0, sst, out);
}

CT_REFERENCE(ct__ref_slice) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0];
  int64_t st[CT_MAX_RANK], sst[CT_MAX_RANK];
  strides_of(x->rank, x->shape, st);
  int64_t off = 0;
  for (int d = 0; d < x->rank; ++d) {
    sst[d] = st[d] * at->slice.step[d];
    if (at->slice.shape[d] > 0) off += at->slice.begin[d] * st[d];
  }
  return strided(x, x->rank, at->slice.shape, off, sst, out);
}

CT_REFERENCE(ct__ref_broadcast) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0];
  int64_t st[CT_MAX_RANK], sst[CT_MAX_RANK];
  int r = at->shape.rank;
  strides_of(x->rank, x->shape, st);
  for (int d = 0; d < r; ++d) {
    int k = d - (r - x->rank);
    sst[d] = k < 0 || x->shape[k] == 1 ? 0 : st[k];
  }
  return strided(x, r, at->shape.shape, 0, sst, out);
}

CT_REFERENCE(ct__ref_concat) {
  (void)op;
  const ct_ref_tensor *x = &in[0];
  int64_t shape[CT_MAX_RANK] = {0}, c[CT_MAX_RANK];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->rank);
  shape[at->axis.axis] = 0;
  for (int i = 0; i < n_in; ++i) shape[at->axis.axis] += in[i].shape[at->axis.axis];
  CT_TRY(alloc_out(out, x->rank, shape));
  for (int64_t i = 0, n = count(x->rank, shape); i < n; ++i) {
    coords(i, x->rank, shape, c);
    int t = 0;
    while (c[at->axis.axis] >= in[t].shape[at->axis.axis]) c[at->axis.axis] -= in[t++].shape[at->axis.axis];
    int64_t k = 0;
    for (int d = 0; d < x->rank; ++d) k = k * in[t].shape[d] + c[d];
    out->v[i] = in[t].v[k];
  }
  return CT_OK;
}

CT_REFERENCE(ct__ref_gather) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0], *idx = &in[1];
  int64_t shape[CT_MAX_RANK], outer = 1, inner = 1, R = x->shape[at->gather.axis], ni = count(idx->rank, idx->shape);
  int r = 0;
  for (int d = 0; d < at->gather.axis; ++d) shape[r++] = x->shape[d], outer *= x->shape[d];
  for (int d = 0; d < idx->rank; ++d) shape[r++] = idx->shape[d];
  for (int d = at->gather.axis + 1; d < x->rank; ++d) shape[r++] = x->shape[d], inner *= x->shape[d];
  CT_TRY(alloc_out(out, r, shape));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < ni; ++j)
      for (int64_t q = 0; q < inner; ++q) {
        int64_t k = (int64_t)idx->v[j];
        out->v[(o * ni + j) * inner + q] = k >= 0 && k < R ? x->v[(o * R + k) * inner + q] : 0;
      }
  return CT_OK;
}

CT_REFERENCE(ct__ref_one_hot) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0];
  int64_t shape[CT_MAX_RANK];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->rank);
  shape[x->rank] = at->one_hot.depth;
  CT_TRY(alloc_out(out, x->rank + 1, shape));
  for (int64_t i = 0, n = count(x->rank, x->shape); i < n; ++i)
    if (x->v[i] >= 0 && x->v[i] < at->one_hot.depth) out->v[i * at->one_hot.depth + (int64_t)x->v[i]] = 1;
  return CT_OK;
}

/* the device's rule (kernels/nn.cl): keep i when Philox(i, seed)[0] >= rate * 2^32 */
CT_REFERENCE(ct__ref_dropout) {
  (void)op, (void)n_in;
  const ct_ref_tensor *x = &in[0];
  CT_TRY(alloc_out(out, x->rank, x->shape));
  double th = at->dropout.rate * 4294967296.0;
  uint32_t thr = th >= 4294967295.0 ? 4294967295u : (uint32_t)th;
  for (int64_t i = 0, n = count(x->rank, x->shape); i < n; ++i) {
    uint32_t r[4];
    ct__philox_block(at->dropout.seed, (uint64_t)i, r);
    out->v[i] = r[0] >= thr ? x->v[i] / (1 - at->dropout.rate) : 0;
  }
  return CT_OK;
}

CT_REFERENCE(ct__ref_softmax_xent) {
  (void)op, (void)n_in, (void)at;
  const ct_ref_tensor *x = &in[0], *lab = &in[1];
  int64_t C = x->shape[x->rank - 1], rows = count(lab->rank, lab->shape);
  CT_TRY(alloc_out(out, lab->rank, lab->shape));
  for (int64_t r = 0; r < rows; ++r) {
    const double *z = x->v + r * C;
    double mx = -INFINITY, s = 0;
    for (int64_t c = 0; c < C; ++c) mx = fmax(mx, z[c]);
    for (int64_t c = 0; c < C; ++c) s += exp(z[c] - mx);
    int64_t l = (int64_t)lab->v[r];
    out->v[r] = l >= 0 && l < C ? mx + log(s) - z[l] : NAN;
  }
  return CT_OK;
}

CT_REFERENCE(ct__ref_bias_add) {
  (void)op, (void)n_in, (void)at;
  const ct_ref_tensor *x = &in[0];
  int64_t C = in[1].shape[0];
  CT_TRY(alloc_out(out, x->rank, x->shape));
  for (int64_t i = 0, n = count(x->rank, x->shape); i < n; ++i) out->v[i] = x->v[i] + in[1].v[i % C];
  return CT_OK;
}

ct_status ct__reference_forward(ct_op_id op, const ct_ref_tensor *in, int n_in, const ct_attrs *at,
                                ct_ref_tensor *out) {
  memset(out, 0, sizeof *out);
  if (op < 0 || op >= CT_OP_COUNT) return ct__error(NULL, CT_ERR_INVALID, "host reference: no op %d", (int)op);
  if (!ct_ops[op].ref_forward)
    return ct__error(NULL, CT_ERR_UNSUPPORTED, "the host reference has no forward for %s", ct_ops[op].name);
  return ct_ops[op].ref_forward(op, in, n_in, at, out);
}

void ct__reference_free(ct_ref_tensor *t) {
  if (!t) return;
  free(t->v);
  t->v = NULL;
}
