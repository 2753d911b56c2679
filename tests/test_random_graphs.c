/*
 * test_random_graphs.c — randomized property test: random op graphs (random shapes up to rank 3
 * with odd extents, NumPy broadcasting between inputs of different shapes, reductions with and
 * without keepdims, transposes, reshapes, matrix products) are evaluated on the device and
 * compared with a float64 host reference, and their gradients are checked against central
 * finite differences with ct_gradcheck.
 *
 * CI runs a fixed seed. For a long run:
 *   CLTAPE_FUZZ_SEED=<n> CLTAPE_FUZZ_GRAPHS=<count> build/tests/test_random_graphs
 * A failure prints the seed and the graph (ops, inputs' shapes), which reproduce it.
 */
#include "support.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers (splitmix64) ------------------------------------------------------------ */
static uint64_t rng;
static uint64_t next_u64(void) { return ts_splitmix64(&rng); }
static int pick(int n) { return (int)(next_u64() % (uint64_t)n); }
static double uniform(double lo, double hi) { return lo + (hi - lo) * (double)(next_u64() >> 11) * 0x1p-53; }

/* ---- host tensors and the reference ops ----------------------------------------------------------- */
typedef struct {
  int rank;
  int64_t shape[CT_MAX_RANK];
  int64_t n;
  double *v;
} host;

static host h_new(int rank, const int64_t *shape) {
  host h = {rank, {0}, 1, NULL};
  for (int i = 0; i < rank; ++i) {
    h.shape[i] = shape[i];
    h.n *= shape[i];
  }
  h.v = calloc((size_t)(h.n ? h.n : 1), sizeof(double));
  cr_assert(h.v);
  return h;
}

static void strides(int rank, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    st[i] = s;
    s *= shape[i];
  }
}

/* Offset in t of the element at index `idx` of a broadcast shape of rank r. */
static int64_t bcast_offset(const host *t, int r, const int64_t *idx) {
  int64_t st[CT_MAX_RANK], off = 0;
  strides(t->rank, t->shape, st);
  for (int d = 0; d < t->rank; ++d) {
    int64_t i = idx[r - t->rank + d];
    off += (t->shape[d] == 1 ? 0 : i) * st[d];
  }
  return off;
}

static bool broadcastable(const host *a, const host *b, int *rank, int64_t *shape) {
  int r = a->rank > b->rank ? a->rank : b->rank;
  for (int d = 0; d < r; ++d) {
    int da = d - (r - a->rank), db = d - (r - b->rank);
    int64_t ea = da >= 0 ? a->shape[da] : 1, eb = db >= 0 ? b->shape[db] : 1;
    if (ea != eb && ea != 1 && eb != 1) return false;
    shape[d] = ea == 1 ? eb : ea;
  }
  *rank = r;
  return true;
}

static void unravel(int64_t i, int rank, const int64_t *shape, int64_t *idx) {
  for (int d = rank - 1; d >= 0; --d) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
}

/* ---- the op menu ------------------------------------------------------------------------------------ */
typedef enum {
  OP_ADD, OP_SUB, OP_MUL, OP_SAFE_DIV, OP_MAXIMUM,               /* binary, broadcasting */
  OP_TANH, OP_SIGMOID, OP_SIN, OP_SQUARE, OP_EXP_TANH, OP_SOFTPLUS, OP_LOG1P_SQ, OP_NEG, /* unary */
  OP_SUM, OP_MEAN, OP_MAX, OP_LOGSUMEXP,                         /* one axis, keepdims or not */
  OP_TRANSPOSE, OP_FLATTEN, OP_MATMUL, OP_SOFTMAX,
  OP_COUNT_
} op_kind;
static const char *const OP_NAMES[OP_COUNT_] = {"add", "sub", "mul", "safe_div", "maximum", "tanh", "sigmoid",
                                                "sin", "square", "exp(tanh)", "softplus", "log1p(x^2)", "neg",
                                                "sum", "mean", "max", "logsumexp", "transpose", "flatten",
                                                "matmul", "softmax"};

typedef struct {
  op_kind op;
  int a, b;      /* operand nodes */
  int axis;
  bool keepdims;
} node_op;

enum { MAX_IN = 3, MAX_OPS = 8, MAX_NODES = MAX_IN + MAX_OPS };
typedef struct {
  int n_in, n_ops;
  node_op ops[MAX_OPS];
  host shapes[MAX_NODES]; /* shapes (and, for the reference, values) of every node */
} graph;

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double softplus(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }

static double unary_ref(op_kind op, double x) {
  switch (op) {
    case OP_TANH: return tanh(x);
    case OP_SIGMOID: return sigmoid(x);
    case OP_SIN: return sin(x);
    case OP_SQUARE: return x * x;
    case OP_EXP_TANH: return exp(tanh(x));
    case OP_SOFTPLUS: return softplus(x);
    case OP_LOG1P_SQ: return log1p(x * x);
    case OP_NEG: return -x;
    default: return NAN;
  }
}
static double binary_ref(op_kind op, double a, double b) {
  switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_SAFE_DIV: return a / (1.5 + b * b);
    case OP_MAXIMUM: return a > b ? a : b;
    default: return NAN;
  }
}

/* Host evaluation of one op. */
static host ref_op(const node_op *o, const host *a, const host *b) {
  int64_t idx[CT_MAX_RANK], shape[CT_MAX_RANK];
  if (o->op <= OP_MAXIMUM) {
    int r;
    cr_assert(broadcastable(a, b, &r, shape));
    host y = h_new(r, shape);
    for (int64_t i = 0; i < y.n; ++i) {
      unravel(i, r, shape, idx);
      y.v[i] = binary_ref(o->op, a->v[bcast_offset(a, r, idx)], b->v[bcast_offset(b, r, idx)]);
    }
    return y;
  }
  if (o->op <= OP_NEG) {
    host y = h_new(a->rank, a->shape);
    for (int64_t i = 0; i < y.n; ++i) y.v[i] = unary_ref(o->op, a->v[i]);
    return y;
  }
  if (o->op <= OP_LOGSUMEXP || o->op == OP_SOFTMAX) {
    int ax = o->axis;
    int64_t outer = 1, R = a->shape[ax], inner = 1;
    for (int d = 0; d < ax; ++d) outer *= a->shape[d];
    for (int d = ax + 1; d < a->rank; ++d) inner *= a->shape[d];
    if (o->op == OP_SOFTMAX) {
      host y = h_new(a->rank, a->shape);
      for (int64_t p = 0; p < outer; ++p)
        for (int64_t q = 0; q < inner; ++q) {
          double m = -INFINITY, s = 0;
          for (int64_t r = 0; r < R; ++r) m = fmax(m, a->v[(p * R + r) * inner + q]);
          for (int64_t r = 0; r < R; ++r) s += exp(a->v[(p * R + r) * inner + q] - m);
          for (int64_t r = 0; r < R; ++r) y.v[(p * R + r) * inner + q] = exp(a->v[(p * R + r) * inner + q] - m) / s;
        }
      return y;
    }
    int k = 0;
    for (int d = 0; d < a->rank; ++d)
      if (d != ax) shape[k++] = a->shape[d];
      else if (o->keepdims) shape[k++] = 1;
    host y = h_new(k, shape);
    for (int64_t p = 0; p < outer; ++p)
      for (int64_t q = 0; q < inner; ++q) {
        double acc = o->op == OP_MAX || o->op == OP_LOGSUMEXP ? -INFINITY : 0;
        for (int64_t r = 0; r < R; ++r) {
          double v = a->v[(p * R + r) * inner + q];
          acc = o->op == OP_MAX || o->op == OP_LOGSUMEXP ? fmax(acc, v) : acc + v;
        }
        if (o->op == OP_LOGSUMEXP) {
          double s = 0;
          for (int64_t r = 0; r < R; ++r) s += exp(a->v[(p * R + r) * inner + q] - acc);
          acc += log(s);
        }
        if (o->op == OP_MEAN) acc /= (double)R;
        y.v[p * inner + q] = acc;
      }
    return y;
  }
  if (o->op == OP_TRANSPOSE) { /* reversed axes */
    for (int d = 0; d < a->rank; ++d) shape[d] = a->shape[a->rank - 1 - d];
    host y = h_new(a->rank, shape);
    int64_t ast[CT_MAX_RANK];
    strides(a->rank, a->shape, ast);
    for (int64_t i = 0; i < y.n; ++i) {
      unravel(i, y.rank, shape, idx);
      int64_t off = 0;
      for (int d = 0; d < a->rank; ++d) off += idx[d] * ast[a->rank - 1 - d];
      y.v[i] = a->v[off];
    }
    return y;
  }
  if (o->op == OP_FLATTEN) {
    shape[0] = a->n;
    host y = h_new(1, shape);
    memcpy(y.v, a->v, sizeof(double) * (size_t)a->n);
    return y;
  }
  /* matmul of rank-2 operands */
  int64_t m = a->shape[0], kk = a->shape[1], n = b->shape[1];
  shape[0] = m;
  shape[1] = n;
  host y = h_new(2, shape);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t l = 0; l < kk; ++l) acc += a->v[i * kk + l] * b->v[l * n + j];
      y.v[i * n + j] = acc;
    }
  return y;
}

/* Device evaluation of one op (with ct_ ops; the composite ones as the user would write them). */
static ct_status dev_op(const node_op *o, const ct_tensor *a, const ct_tensor *b, ct_tensor **out) {
  ct_tensor *t = NULL, *u = NULL;
  ct_status s;
  switch (o->op) {
    case OP_ADD: return ct_add(a, b, out);
    case OP_SUB: return ct_sub(a, b, out);
    case OP_MUL: return ct_mul(a, b, out);
    case OP_MAXIMUM: return ct_maximum(a, b, out);
    case OP_SAFE_DIV:
      s = ct_square(b, &t);
      if (s == CT_OK) s = ct_add_scalar(t, 1.5, &u);
      if (s == CT_OK) s = ct_div(a, u, out);
      break;
    case OP_TANH: return ct_tanh(a, out);
    case OP_SIGMOID: return ct_sigmoid(a, out);
    case OP_SIN: return ct_sin(a, out);
    case OP_SQUARE: return ct_square(a, out);
    case OP_EXP_TANH:
      s = ct_tanh(a, &t);
      if (s == CT_OK) s = ct_exp(t, out);
      break;
    case OP_SOFTPLUS: return ct_softplus(a, out);
    case OP_LOG1P_SQ:
      s = ct_square(a, &t);
      if (s == CT_OK) s = ct_log1p(t, out);
      break;
    case OP_NEG: return ct_neg(a, out);
    case OP_SUM: return ct_sum(a, &o->axis, 1, o->keepdims, out);
    case OP_MEAN: return ct_mean(a, &o->axis, 1, o->keepdims, out);
    case OP_MAX: return ct_max(a, &o->axis, 1, o->keepdims, out);
    case OP_LOGSUMEXP: return ct_logsumexp(a, &o->axis, 1, o->keepdims, out);
    case OP_TRANSPOSE: return ct_transpose(a, NULL, out);
    case OP_FLATTEN: return ct_reshape(a, 1, (int64_t[]){-1}, out);
    case OP_MATMUL: return ct_matmul(a, b, false, false, out);
    case OP_SOFTMAX: return ct_softmax(a, o->axis, out);
    default: return CT_ERR_INTERNAL;
  }
  ct_tensor_free(t);
  ct_tensor_free(u);
  return s;
}

/* The graph as a ct_fn: evaluates every op, returns the last node. */
static ct_status run_graph(ct_tensor *const *in, int n_in, ct_tensor **out, void *user) {
  const graph *g = user;
  ct_tensor *nodes[MAX_NODES] = {NULL};
  for (int i = 0; i < n_in; ++i) nodes[i] = ct_tensor_retain(in[i]);
  ct_status s = CT_OK;
  for (int k = 0; k < g->n_ops && s == CT_OK; ++k) {
    const node_op *o = &g->ops[k];
    s = dev_op(o, nodes[o->a], o->b >= 0 ? nodes[o->b] : NULL, &nodes[n_in + k]);
  }
  if (s == CT_OK) {
    *out = nodes[n_in + g->n_ops - 1];
    nodes[n_in + g->n_ops - 1] = NULL;
  }
  ct_tensor_free_n(nodes, MAX_NODES);
  return s;
}

static void describe(const graph *g, char *buf, size_t cap) {
  size_t n = 0;
  for (int i = 0; i < g->n_in && n < cap; ++i) {
    n += (size_t)snprintf(buf + n, cap - n, "in%d(", i);
    for (int d = 0; d < g->shapes[i].rank && n < cap; ++d)
      n += (size_t)snprintf(buf + n, cap - n, d ? ",%lld" : "%lld", (long long)g->shapes[i].shape[d]);
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, ") ");
  }
  for (int k = 0; k < g->n_ops && n < cap; ++k) {
    const node_op *o = &g->ops[k];
    n += (size_t)snprintf(buf + n, cap - n, "n%d=%s(n%d", g->n_in + k, OP_NAMES[o->op], o->a);
    if (o->b >= 0 && n < cap) n += (size_t)snprintf(buf + n, cap - n, ",n%d", o->b);
    if ((o->op >= OP_SUM && o->op <= OP_LOGSUMEXP) || o->op == OP_SOFTMAX)
      if (n < cap) n += (size_t)snprintf(buf + n, cap - n, ",axis %d%s", o->axis, o->keepdims ? ",keep" : "");
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, ") ");
  }
}

/* Draws a graph: inputs whose shapes are the base shape with some axes set to 1 or dropped in
 * front (so that they broadcast), then ops that apply to what exists. */
static void draw(graph *g) {
  memset(g, 0, sizeof *g);
  int rank = 1 + pick(3);
  int64_t base[3];
  static const int64_t ext[] = {1, 2, 3, 3, 5};
  for (int d = 0; d < rank; ++d) base[d] = ext[pick(5)];
  g->n_in = 1 + pick(MAX_IN);
  for (int i = 0; i < g->n_in; ++i) {
    int drop = i ? pick(rank + 1) : 0; /* the first input has the full shape */
    int64_t sh[3];
    int r = rank - drop;
    for (int d = 0; d < r; ++d) sh[d] = (i && pick(3) == 0) ? 1 : base[drop + d];
    host h = h_new(r, sh);
    free(h.v);
    h.v = NULL;
    g->shapes[i] = h;
  }
  int tries = 0, want_ops = 2 + pick(MAX_OPS - 1);
  while (g->n_ops < want_ops && tries++ < 200) {
    int nn = g->n_in + g->n_ops;
    node_op o = {(op_kind)pick(OP_COUNT_), pick(nn), -1, 0, pick(2) == 0};
    /* later ops prefer recent nodes, so that the graph is deep rather than wide */
    if (pick(2)) o.a = nn - 1;
    const host *a = &g->shapes[o.a];
    host y = {0};
    int64_t shape[CT_MAX_RANK];
    int r;
    if (o.op <= OP_MAXIMUM) {
      o.b = pick(nn);
      if (!broadcastable(a, &g->shapes[o.b], &r, shape)) continue;
      y.rank = r;
      memcpy(y.shape, shape, sizeof shape);
    } else if (o.op <= OP_NEG) {
      y = *a;
    } else if (o.op <= OP_LOGSUMEXP || o.op == OP_SOFTMAX) {
      if (a->rank == 0) continue;
      o.axis = pick(a->rank);
      if (a->shape[o.axis] == 1 && o.op == OP_MAX) continue; /* no information, fine, but dull */
      y = *a;
      if (o.op != OP_SOFTMAX) {
        int k = 0;
        for (int d = 0; d < a->rank; ++d)
          if (d != o.axis) y.shape[k++] = a->shape[d];
          else if (o.keepdims) y.shape[k++] = 1;
        y.rank = k;
      }
      if (pick(2)) o.axis -= a->rank; /* negative axes too */
    } else if (o.op == OP_TRANSPOSE) {
      y.rank = a->rank;
      for (int d = 0; d < a->rank; ++d) y.shape[d] = a->shape[a->rank - 1 - d];
    } else if (o.op == OP_FLATTEN) {
      y.rank = 1;
      y.shape[0] = 1;
      for (int d = 0; d < a->rank; ++d) y.shape[0] *= a->shape[d];
    } else { /* matmul: find a partner of rank 2 whose rows match */
      if (a->rank != 2) continue;
      o.b = pick(nn);
      const host *b = &g->shapes[o.b];
      if (b->rank != 2 || b->shape[0] != a->shape[1]) continue;
      y.rank = 2;
      y.shape[0] = a->shape[0];
      y.shape[1] = b->shape[1];
    }
    y.n = 1;
    for (int d = 0; d < y.rank; ++d) y.n *= y.shape[d];
    y.v = NULL;
    g->shapes[nn] = y;
    g->ops[g->n_ops++] = o;
  }
}

static int axis_of(const node_op *o, int rank) { return o->axis < 0 ? o->axis + rank : o->axis; }

Test(random_graphs, forward_and_gradients) {
  const char *e = getenv("CLTAPE_FUZZ_SEED");
  uint64_t seed = e && *e ? strtoull(e, NULL, 0) : 20240611;
  e = getenv("CLTAPE_FUZZ_GRAPHS");
  int count = e && *e ? atoi(e) : 200;
  ct_context *ctx = ts_ctx();
  const ct_dtype fdt = ts_best_float(ctx);
  rng = seed;
  int64_t partials = 0, ops = 0, elements = 0;
  for (int gi = 0; gi < count; ++gi) {
    uint64_t gseed = rng; /* CLTAPE_FUZZ_SEED=<this> CLTAPE_FUZZ_GRAPHS=1 replays graph gi */
    graph g;
    draw(&g);
    char desc[1024];
    describe(&g, desc, sizeof desc);
    /* inputs: values in [-1.5, 1.5], float64 (float32 on a device without it, compared with
     * float32's tolerances; the gradient checker then works in float32 too) */
    ct_tensor *in[MAX_IN] = {NULL};
    host hv[MAX_NODES];
    memset(hv, 0, sizeof hv);
    for (int i = 0; i < g.n_in; ++i) {
      hv[i] = h_new(g.shapes[i].rank, g.shapes[i].shape);
      for (int64_t k = 0; k < hv[i].n; ++k) hv[i].v[k] = uniform(-1.5, 1.5);
      in[i] = ts_tensor(ctx, fdt, hv[i].rank, hv[i].shape, hv[i].v);
      elements += hv[i].n;
    }
    for (int k = 0; k < g.n_ops; ++k) {
      node_op o = g.ops[k];
      const host *a = &hv[o.a];
      o.axis = axis_of(&o, a->rank);
      hv[g.n_in + k] = ref_op(&o, a, o.b >= 0 ? &hv[o.b] : NULL);
    }
    ops += g.n_ops;
    /* forward against the reference */
    ct_tensor *y = NULL;
    ct_status s = run_graph(in, g.n_in, &y, &g);
    cr_assert_eq(s, CT_OK, "graph %d (seed %llu): %s: %s", gi, (unsigned long long)gseed, desc, ct_errmsg());
    const host *want = &hv[g.n_in + g.n_ops - 1];
    char what[1200];
    snprintf(what, sizeof what, "graph %d (seed %llu) forward: %s", gi, (unsigned long long)gseed, desc);
    ts_assert_shape(y, want->rank, want->shape, what);
    if (fdt == CT_FLOAT64) ts_assert_close(y, want->v, want->n, 1e-12, 1e-9, what);
    else ts_assert_close(y, want->v, want->n, 2e-5, 2e-5, what);
    ct_tensor_free(y);
    /* gradients against finite differences */
    ct_gradcheck_report rep;
    ct_gradcheck_options opt = {0};
    opt.seed = gseed | 1;
    s = ct_gradcheck(ctx, run_graph, &g, in, g.n_in, &opt, &rep);
    cr_assert_eq(s, CT_OK, "graph %d (seed %llu) gradcheck: %s: %s", gi, (unsigned long long)gseed, desc, ct_errmsg());
    cr_assert(rep.passed, "graph %d (seed %llu) gradient: %s\n  %s", gi, (unsigned long long)gseed, desc, rep.message);
    partials += rep.checked;
    for (int i = 0; i < g.n_in + g.n_ops; ++i) free(hv[i].v);
    ct_tensor_free_n(in, MAX_IN);
  }
  fprintf(stderr,
          "random graphs: seed %llu, %d graphs, %lld ops, %lld input elements, %lld partial derivatives checked\n",
          (unsigned long long)seed, count, (long long)ops, (long long)elements, (long long)partials);
  ct_context_free(ctx);
}
