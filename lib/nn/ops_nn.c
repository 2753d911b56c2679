/* ops_nn.c — the layer library's rows of the op table (lib/nn/ops_nn.def): their forward
 * functions (called by ct__run through the table), the public functional ops, activations, losses
 * and metrics. Gradients are in lib/nn/grad_nn.c, launches in host/launch_nn.c, kernels in
 * kernels/nn.cl. */
#include "nn_internal.h"
#include <math.h>
#include <string.h>

/* ---- window geometry ----------------------------------------------------------------------- */
/* Output extent and padding before for one spatial axis. */
static ct_status out_extent(const ct_context *ctx, int64_t in, int k, int s, bool same, const char *what,
                            int64_t *out, int *pad) {
  if (same) {
    *out = (in + s - 1) / s;
    int64_t total = (*out - 1) * s + k - in;
    *pad = total > 0 ? (int)(total / 2) : 0;
    return CT_OK;
  }
  *pad = 0;
  if (in < k)
    return ct__error(ctx, CT_ERR_SHAPE, "%s: window %d is larger than the input extent %lld with VALID padding", what, k,
                     (long long)in);
  *out = (in - k) / s + 1;
  return CT_OK;
}

/* The window of a convolution: the filter's spatial extents (an empty filter may have any). */
static ct_status filter_window(const ct_context *ctx, const int64_t *fs, ct_attrs *a, const char *what) {
  if (fs[0] > INT32_MAX || fs[1] > INT32_MAX)
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "%s: filter extent %lldx%lld too large", what, (long long)fs[0],
                     (long long)fs[1]);
  a->window.win[0] = (int)fs[0];
  a->window.win[1] = (int)fs[1];
  return CT_OK;
}

/* Geometry of a window op over x-shaped input (N, H, W, C) producing oc channels. */
static ct_status window_of(const ct_context *ctx, const int64_t *xs, int64_t oc, const ct_attrs *at, const char *what,
                           ctb_window *g) {
  memset(g, 0, sizeof *g);
  for (int i = 0; i < 4; ++i)
    if (xs[i] > INT32_MAX) return ct__error(ctx, CT_ERR_UNSUPPORTED, "%s: extent %lld too large", what, (long long)xs[i]);
  if (oc > INT32_MAX) return ct__error(ctx, CT_ERR_UNSUPPORTED, "%s: %lld channels is too many", what, (long long)oc);
  if (at->window.win[0] < 1 || at->window.win[1] < 1 || at->window.stride[0] < 1 || at->window.stride[1] < 1)
    return ct__error(ctx, CT_ERR_INVALID, "%s: window %dx%d and stride %dx%d must be positive", what, at->window.win[0],
                     at->window.win[1], at->window.stride[0], at->window.stride[1]);
  int64_t oh = 0, ow = 0;
  int pt = 0, pl = 0;
  CT_TRY(out_extent(ctx, xs[1], at->window.win[0], at->window.stride[0], at->window.same, what, &oh, &pt));
  CT_TRY(out_extent(ctx, xs[2], at->window.win[1], at->window.stride[1], at->window.same, what, &ow, &pl));
  g->n = (int32_t)xs[0];
  g->h = (int32_t)xs[1];
  g->w = (int32_t)xs[2];
  g->c = (int32_t)xs[3];
  g->oh = (int32_t)oh;
  g->ow = (int32_t)ow;
  g->oc = (int32_t)oc;
  g->kh = at->window.win[0];
  g->kw = at->window.win[1];
  g->sh = at->window.stride[0];
  g->sw = at->window.stride[1];
  g->pt = pt;
  g->pl = pl;
  return CT_OK;
}

static bool shape_is(const ct_tensor *t, int rank, const int64_t *shape) {
  return t->rank == rank && memcmp(t->shape, shape, sizeof(int64_t) * (size_t)rank) == 0;
}

static ct_status expect_shape(const ct_tensor *t, int rank, const int64_t *shape, const char *op, const char *what) {
  if (shape_is(t, rank, shape)) return CT_OK;
  char s1[96], s2[96];
  ct__shape_str(t->rank, t->shape, s1, sizeof s1);
  ct__shape_str(rank, shape, s2, sizeof s2);
  return ct__error(t->ctx, CT_ERR_SHAPE, "%s: %s has shape %s, expected %s", op, what, s1, s2);
}

static ct_status float_same(const char *op, const ct_tensor *a, const ct_tensor *b) {
  if (!ct__is_float(a->dtype))
    return ct__error(a->ctx, CT_ERR_DTYPE, "%s needs float32 or float64 tensors, got %s", op, ct_dtype_name(a->dtype));
  if (b && b->dtype != a->dtype)
    return ct__error(a->ctx, CT_ERR_DTYPE, "%s: operands have different dtypes (%s and %s)", op,
                     ct_dtype_name(a->dtype), ct_dtype_name(b->dtype));
  return CT_OK;
}

static ct_status rank4(const ct_tensor *t, const char *op, const char *what) {
  if (t->rank == 4) return CT_OK;
  return ct__error(t->ctx, CT_ERR_SHAPE, "%s: %s must have rank 4 (NHWC), got rank %d", op, what, t->rank);
}

/* The direct kernels' way of one convolution kind: a = x or dy, b = f or dy, as ctb_conv2d_gemm's. */
typedef ct_status (*conv_direct_fn)(const ct_tensor *a, const ct_tensor *b, const ctb_window *g, ct_buffer *out,
                                    const char *opname);
typedef struct {
  conv_direct_fn fn;
  const ct_tensor *a, *b;
  const ctb_window *g;
  ct_buffer *out;
  const char *opname;
} conv_direct_call;
static ct_status conv_direct_run(void *u) {
  const conv_direct_call *c = u;
  return c->fn(c->a, c->b, c->g, c->out, c->opname);
}

/* One convolution kind on `path`, the one the backend chose for its shape (ctb_conv_path,
 * host/conv_gemm.c): the direct kernels, the matrix products, or both timed once and the faster
 * one kept. */
static ct_status conv_dispatch(ctb_conv_path_id path, ctb_conv_kind kind, conv_direct_fn direct, const ct_tensor *a,
                               const ct_tensor *b, const ctb_window *g, ct_buffer *out, const char *opname) {
  switch (path) {
  case CTB_CONV_PATH_GEMM: return ctb_conv2d_gemm(a->ctx, a->dtype, kind, g, a->buf, b->buf, out);
  case CTB_CONV_PATH_MEASURE: {
    conv_direct_call c = {direct, a, b, g, out, opname};
    return ctb_conv_measure(a->ctx, a->dtype, kind, g, a->buf, b->buf, out, conv_direct_run, &c);
  }
  case CTB_CONV_PATH_DIRECT:
  case CTB_CONV_PATH_WINOGRAD: break; /* the direct forward's own choice (ctb_conv2d) */
  }
  return direct(a, b, g, out, opname);
}

static ct_status bp_input_direct(const ct_tensor *dy, const ct_tensor *f, const ctb_window *g0, ct_buffer *dx,
                                 const char *opname);
static ct_status bp_filter_direct(const ct_tensor *x, const ct_tensor *dy, const ctb_window *g0, ct_buffer *df,
                                  const char *opname);
static ct_status forward_direct(const ct_tensor *x, const ct_tensor *f, const ctb_window *g, ct_buffer *y,
                                const char *opname) {
  (void)opname;
  return ctb_conv2d(x->ctx, x->dtype, g, x->buf, f->buf, NULL, false, y);
}

/* y = conv2d(x, f); Conv2DBiasAdd and Conv2DBiasRelu (in[2]: a bias [OC]) add the bias, and apply
 * ReLU, as the direct kernels store the sums; the products path adds them after (the same values). */
CT_FORWARD(ct__fwd_conv2d) {
  const ct_tensor *x = in[0], *f = in[1], *bias = n_in > 2 ? in[2] : NULL;
  const bool relu = op == CT_OP_CONV2D_BIAS_RELU;
  const char *opname = ct_ops[op].name;
  CT_TRY(float_same(opname, x, f));
  CT_TRY(rank4(x, opname, "the input"));
  if (f->rank != 4) return ct__error(x->ctx, CT_ERR_SHAPE, "%s: the filter must have rank 4 (HWIO)", opname);
  if (bias) {
    CT_TRY(float_same(opname, x, bias));
    if (bias->rank != 1 || bias->shape[0] != f->shape[3])
      return ct__error(x->ctx, CT_ERR_SHAPE, "%s: the bias must be [%lld], one per filter", opname,
                       (long long)f->shape[3]);
  }
  if (f->shape[2] != x->shape[3])
    return ct__error(x->ctx, CT_ERR_SHAPE, "%s: the input has %lld channels, the filter expects %lld", opname,
                     (long long)x->shape[3], (long long)f->shape[2]);
  ct_attrs a = ct__attrs_copy(at);
  CT_TRY(filter_window(x->ctx, f->shape, &a, opname));
  ctb_window g;
  CT_TRY(window_of(x->ctx, x->shape, f->shape[3], &a, opname, &g));
  int64_t os[4] = {g.n, g.oh, g.ow, g.oc};
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, 4, os, out));
  if ((*out)->size == 0) return CT_OK;
  ct_buffer *y = (*out)->buf;
  if (x->size == 0 || f->size == 0) CT_TRY(ctb_fill(x->ctx, x->dtype, (*out)->size, 0.0, y));
  else {
    const ctb_conv_path_id path = ctb_conv_path(x->ctx, x->dtype, CTB_CONV_FWD, &g);
    if (bias && path == CTB_CONV_PATH_DIRECT) return ctb_conv2d(x->ctx, x->dtype, &g, x->buf, f->buf, bias->buf, relu, y);
    CT_TRY(conv_dispatch(path, CTB_CONV_FWD, forward_direct, x, f, &g, y, opname));
  }
  if (!bias) return CT_OK;
  CT_TRY(ctb_bias_add(x->ctx, x->dtype, (*out)->size / g.oc, g.oc, y, bias->buf, y));
  return relu ? ctb_unary(x->ctx, "RELU", x->dtype, (*out)->size, y, y) : CT_OK;
}

/* A copy of the filter f [KH, KW, C, OC] rearranged by (offset, strides) into `shape`. */
static ct_status filter_view(const ct_tensor *f, const int64_t *shape, int64_t off, const int64_t *st, ct_tensor **out) {
  CT_TRY(ct__tensor_new(f->ctx, f->dtype, 4, shape, out));
  ctb_geom g;
  memset(&g, 0, sizeof g);
  g.rank = 4;
  g.n = f->size;
  int64_t dst[4] = {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
  for (int d = 0; d < 4; ++d) {
    g.shape[d] = shape[d];
    g.st[0][d] = st[d];
    g.st[1][d] = dst[d];
  }
  ct_status s = ctb_copy_strided(f->ctx, f->dtype, &g, f->buf, off, (*out)->buf, 0);
  if (s != CT_OK) {
    ct_tensor_free(*out);
    *out = NULL;
  }
  return s;
}

/* dx (shape at->window.shape) from dy and f */
CT_FORWARD(ct__fwd_conv2d_bp_input) {
  (void)n_in;
  const ct_tensor *dy = in[0], *f = in[1];
  const char *opname = ct_ops[op].name;
  CT_TRY(float_same(opname, dy, f));
  if (at->window.rank != 4 || f->rank != 4 || f->shape[2] != at->window.shape[3])
    return ct__error(dy->ctx, CT_ERR_SHAPE, "%s: filter and input shape do not agree", opname);
  ct_attrs a = ct__attrs_copy(at);
  CT_TRY(filter_window(dy->ctx, f->shape, &a, opname));
  ctb_window g;
  CT_TRY(window_of(dy->ctx, at->window.shape, f->shape[3], &a, opname, &g));
  int64_t ys[4] = {g.n, g.oh, g.ow, g.oc};
  CT_TRY(expect_shape(dy, 4, ys, opname, "the output gradient"));
  CT_TRY(ct__tensor_new(dy->ctx, dy->dtype, 4, at->window.shape, out));
  if ((*out)->size == 0) return CT_OK;
  if (dy->size == 0 || f->size == 0) return ctb_fill(dy->ctx, dy->dtype, (*out)->size, 0.0, (*out)->buf);
  return conv_dispatch(ctb_conv_path(dy->ctx, dy->dtype, CTB_CONV_BP_INPUT, &g), CTB_CONV_BP_INPUT, bp_input_direct, dy,
                       f, &g, (*out)->buf, opname);
}

/* dx from dy and f on the direct kernels */
static ct_status bp_input_direct(const ct_tensor *dy, const ct_tensor *f, const ctb_window *g0, ct_buffer *dx,
                                 const char *opname) {
  (void)opname;
  const ctb_window g = *g0;
  int64_t KH = f->shape[0], KW = f->shape[1], C = f->shape[2], OC = f->shape[3];
  ct_tensor *ft = NULL;
  ct_status s;
  if (g.sh == 1 && g.sw == 1) {
    /* stride 1: dx is the forward convolution of dy, padded by (KH-1-pt, KW-1-pl), with the filter
     * flipped in space and its channel axes swapped: ft[a, b, o, c] = f[KH-1-a, KW-1-b, c, o] */
    int64_t fts[4] = {KH, KW, OC, C};
    int64_t st[4] = {-KW * C * OC, -C * OC, 1, OC};
    CT_TRY(filter_view(f, fts, ((KH - 1) * KW + (KW - 1)) * C * OC, st, &ft));
    ctb_window b = {g.n, g.oh, g.ow, g.oc, g.h, g.w, g.c, g.kh, g.kw, 1, 1, (int32_t)(KH - 1 - g.pt),
                    (int32_t)(KW - 1 - g.pl), 0};
    s = ctb_conv2d(dy->ctx, dy->dtype, &b, dy->buf, ft->buf, NULL, false, dx);
  } else {
    /* the kernel reads the filter as [KH, KW, OC, C] */
    int64_t fts[4] = {KH, KW, OC, C};
    int64_t st[4] = {KW * C * OC, C * OC, 1, OC};
    CT_TRY(filter_view(f, fts, 0, st, &ft));
    s = ctb_conv2d_bp_input(dy->ctx, dy->dtype, &g, dy->buf, ft->buf, dx);
  }
  ct_tensor_free(ft);
  return s;
}

/* The window of a filter gradient (at->window.shape: the filter's) from x and dy, checked. */
static ct_status bp_filter_window(const char *opname, const ct_tensor *x, const ct_tensor *dy, const ct_attrs *at,
                                  ctb_window *g) {
  CT_TRY(float_same(opname, x, dy));
  CT_TRY(rank4(x, opname, "the input"));
  if (at->window.rank != 4 || at->window.shape[2] != x->shape[3])
    return ct__error(x->ctx, CT_ERR_SHAPE, "%s: filter and input shape do not agree", opname);
  ct_attrs a = ct__attrs_copy(at);
  CT_TRY(filter_window(x->ctx, at->window.shape, &a, opname));
  CT_TRY(window_of(x->ctx, x->shape, at->window.shape[3], &a, opname, g));
  int64_t ys[4] = {g->n, g->oh, g->ow, g->oc};
  return expect_shape(dy, 4, ys, opname, "the output gradient");
}

/* df (shape at->window.shape) from x and dy */
CT_FORWARD(ct__fwd_conv2d_bp_filter) {
  (void)n_in;
  const ct_tensor *x = in[0], *dy = in[1];
  const char *opname = ct_ops[op].name;
  ctb_window g;
  CT_TRY(bp_filter_window(opname, x, dy, at, &g));
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, 4, at->window.shape, out));
  if ((*out)->size == 0) return CT_OK;
  if (x->size == 0 || dy->size == 0) return ctb_fill(x->ctx, x->dtype, (*out)->size, 0.0, (*out)->buf);
  return conv_dispatch(ctb_conv_path(x->ctx, x->dtype, CTB_CONV_BP_FILTER, &g), CTB_CONV_BP_FILTER, bp_filter_direct, x,
                       dy, &g, (*out)->buf, opname);
}

/* Whether Conv2DBackpropFilterBias takes the filter's and the bias's gradients from one launch: the
 * direct vector kernel is this device's path for the filter gradient (ct__grad_conv2d_bias asks). */
bool ct__conv2d_bp_filter_bias_fuses(const ct_tensor *x, const ct_tensor *dy, const ct_attrs *at) {
  ctb_window g;
  if (x->size == 0 || dy->size == 0) return false;
  ct_status s = bp_filter_window("Conv2DBackpropFilterBias", x, dy, at, &g);
  if (s != CT_OK) {
    ct__clear_error(); /* the op itself reports it */
    return false;
  }
  return ctb_conv2d_bp_filter_bias(x->dtype, &g) &&
         ctb_conv_path(x->ctx, x->dtype, CTB_CONV_BP_FILTER, &g) == CTB_CONV_PATH_DIRECT;
}

/* Conv2DBackpropFilterBias(x, dy) = [df flattened, db]: the filter gradient (at->window.shape)
 * and the gradient of a bias added to the convolution's output (the sum of dy over every
 * position), one launch where ct__conv2d_bp_filter_bias_fuses; elsewhere as
 * Conv2DBackpropFilter and BiasAddGrad compute them. No gradient of its own: only gradients that
 * no tape records use it (ct__grad_conv2d_bias). */
CT_FORWARD(ct__fwd_conv2d_bp_filter_bias) {
  (void)n_in;
  const ct_tensor *x = in[0], *dy = in[1];
  const char *opname = ct_ops[op].name;
  ctb_window g;
  CT_TRY(bp_filter_window(opname, x, dy, at, &g));
  int64_t nf = at->window.shape[0] * at->window.shape[1] * at->window.shape[2] * at->window.shape[3];
  int64_t n = nf + g.oc;
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, 1, &n, out));
  if (ct__conv2d_bp_filter_bias_fuses(x, dy, at))
    return ctb_conv2d_bp_filter(x->ctx, x->dtype, &g, x->buf, dy->buf, true, (*out)->buf);
  if (n == 0) return CT_OK;
  ct_context *ctx = x->ctx;
  size_t es = ct_dtype_size(x->dtype);
  if (x->size == 0 || dy->size == 0) CT_TRY(ctb_fill(ctx, x->dtype, n, 0.0, (*out)->buf));
  else if (nf > 0)
    CT_TRY(conv_dispatch(ctb_conv_path(ctx, x->dtype, CTB_CONV_BP_FILTER, &g), CTB_CONV_BP_FILTER, bp_filter_direct, x,
                         dy, &g, (*out)->buf, opname));
  if (dy->size == 0 || g.oc == 0) return CT_OK;
  ct_buffer *db = NULL;
  CT_TRY(ctb_alloc(ctx, (size_t)g.oc * es, &db));
  ct_status s = ctb_bias_add_grad(ctx, x->dtype, dy->size / g.oc, g.oc, dy->buf, db);
  if (s == CT_OK) s = ctb_copy(ctx, db, 0, (*out)->buf, (size_t)nf * es, (size_t)g.oc * es);
  ctb_release(db); /* in-order queue: reuse waits for the copy */
  return s;
}

/* df from x and dy on the direct kernels */
static ct_status bp_filter_direct(const ct_tensor *x, const ct_tensor *dy, const ctb_window *g, ct_buffer *df,
                                  const char *opname) {
  (void)opname;
  return ctb_conv2d_bp_filter(x->ctx, x->dtype, g, x->buf, dy->buf, false, df);
}

static ct_status pool_forward(ct_op_id op, bool max, const ct_tensor *x, const ct_attrs *at, ct_tensor **out) {
  const char *name = ct_ops[op].name;
  CT_TRY(float_same(name, x, NULL));
  CT_TRY(rank4(x, name, "the input"));
  ctb_window g;
  CT_TRY(window_of(x->ctx, x->shape, x->shape[3], at, name, &g));
  int64_t os[4] = {g.n, g.oh, g.ow, g.c};
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, 4, os, out));
  if ((*out)->size == 0) return CT_OK;
  return ctb_pool(x->ctx, x->dtype, max, &g, x->buf, (*out)->buf);
}
CT_FORWARD(ct__fwd_max_pool) {
  (void)n_in;
  return pool_forward(op, true, in[0], at, out);
}
CT_FORWARD(ct__fwd_avg_pool) {
  (void)n_in;
  return pool_forward(op, false, in[0], at, out);
}

/* MaxPoolGrad(x, dy) -> x-shaped; MaxPoolGradGrad(x, gg) -> pooled shape: t is shaped like the
 * result of the other one. */
static ct_status max_pool_grads(ct_op_id op, bool grad, const ct_tensor *x, const ct_tensor *t, const ct_attrs *at,
                                ct_tensor **out) {
  const char *name = ct_ops[op].name;
  CT_TRY(float_same(name, x, t));
  CT_TRY(rank4(x, name, "the input"));
  ctb_window g;
  CT_TRY(window_of(x->ctx, x->shape, x->shape[3], at, name, &g));
  g.mask = at->window.relu_mask;
  int64_t ps[4] = {g.n, g.oh, g.ow, g.c};
  CT_TRY(expect_shape(t, 4, grad ? ps : x->shape, name, grad ? "the output gradient" : "the gradient"));
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, 4, grad ? x->shape : ps, out));
  if ((*out)->size == 0) return CT_OK;
  if (grad) return ctb_max_pool_grad(x->ctx, x->dtype, &g, x->buf, t->buf, (*out)->buf);
  return ctb_max_pool_gradgrad(x->ctx, x->dtype, &g, x->buf, t->buf, (*out)->buf);
}
CT_FORWARD(ct__fwd_max_pool_grad) {
  (void)n_in;
  return max_pool_grads(op, true, in[0], in[1], at, out);
}
CT_FORWARD(ct__fwd_max_pool_gradgrad) {
  (void)n_in;
  return max_pool_grads(op, false, in[0], in[1], at, out);
}

CT_FORWARD(ct__fwd_avg_pool_grad) {
  (void)op;
  (void)n_in;
  const ct_tensor *dy = in[0];
  const char *name = "AvgPoolGrad";
  CT_TRY(float_same(name, dy, NULL));
  if (at->window.rank != 4) return ct__error(dy->ctx, CT_ERR_SHAPE, "%s: the input shape must have rank 4", name);
  ctb_window g;
  CT_TRY(window_of(dy->ctx, at->window.shape, at->window.shape[3], at, name, &g));
  int64_t ps[4] = {g.n, g.oh, g.ow, g.c};
  CT_TRY(expect_shape(dy, 4, ps, name, "the output gradient"));
  CT_TRY(ct__tensor_new(dy->ctx, dy->dtype, 4, at->window.shape, out));
  if ((*out)->size == 0) return CT_OK;
  return ctb_avg_pool_grad(dy->ctx, dy->dtype, &g, dy->buf, (*out)->buf);
}

CT_FORWARD(ct__fwd_dropout) {
  (void)op;
  (void)n_in;
  const ct_tensor *x = in[0];
  CT_TRY(float_same("Dropout", x, NULL));
  if (!(at->dropout.rate >= 0 && at->dropout.rate < 1))
    return ct__error(x->ctx, CT_ERR_INVALID, "Dropout: rate %g is outside [0, 1)", at->dropout.rate);
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, x->rank, x->shape, out));
  if (x->size == 0) return CT_OK;
  return ctb_dropout(x->ctx, x->dtype, x->size, at->dropout.seed, at->dropout.rate, x->buf, (*out)->buf);
}

/* logits [..., C] and labels [...]: rows and classes */
static ct_status xent_geometry(const char *op, const ct_tensor *logits, const ct_tensor *labels, int64_t *rows,
                               int64_t *C) {
  CT_TRY(float_same(op, logits, NULL));
  if (labels->dtype != CT_INT32)
    return ct__error(logits->ctx, CT_ERR_DTYPE, "%s: labels must be int32, got %s", op, ct_dtype_name(labels->dtype));
  if (logits->rank < 1) return ct__error(logits->ctx, CT_ERR_SHAPE, "%s: logits must have rank >= 1", op);
  CT_TRY(expect_shape(labels, logits->rank - 1, logits->shape, op, "the labels"));
  *C = logits->shape[logits->rank - 1];
  *rows = labels->size;
  if (*C < 1 && *rows > 0) return ct__error(logits->ctx, CT_ERR_SHAPE, "%s: logits have no classes", op);
  return CT_OK;
}

CT_FORWARD(ct__fwd_softmax_xent) {
  (void)op;
  (void)n_in;
  (void)at;
  const ct_tensor *logits = in[0], *labels = in[1];
  int64_t rows = 0, C = 0;
  CT_TRY(xent_geometry("SparseSoftmaxCrossEntropyWithLogits", logits, labels, &rows, &C));
  CT_TRY(ct__tensor_new(logits->ctx, logits->dtype, labels->rank, labels->shape, out));
  if (rows == 0) return CT_OK;
  return ctb_softmax_xent(logits->ctx, logits->dtype, rows, C, logits->buf, labels->buf, (*out)->buf);
}

CT_FORWARD(ct__fwd_softmax_xent_grad) {
  (void)n_in;
  (void)at;
  const ct_tensor *logits = in[0], *labels = in[1], *dy = in[2];
  const char *opname = ct_ops[op].name;
  int64_t rows = 0, C = 0;
  CT_TRY(xent_geometry(opname, logits, labels, &rows, &C));
  CT_TRY(float_same(opname, logits, dy));
  CT_TRY(expect_shape(dy, labels->rank, labels->shape, opname, "the output gradient"));
  CT_TRY(ct__tensor_new(logits->ctx, logits->dtype, logits->rank, logits->shape, out));
  if ((*out)->size == 0) return CT_OK;
  return ctb_softmax_xent_grad(logits->ctx, logits->dtype, rows, C, logits->buf, labels->buf, dy->buf, (*out)->buf);
}

/* x [..., C] + b [C] */
CT_FORWARD(ct__fwd_bias_add) {
  (void)op;
  (void)n_in;
  (void)at;
  const ct_tensor *x = in[0], *b = in[1];
  CT_TRY(float_same("BiasAdd", x, b));
  if (x->rank < 1 || b->rank != 1 || b->shape[0] != x->shape[x->rank - 1]) {
    char s1[96], s2[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    ct__shape_str(b->rank, b->shape, s2, sizeof s2);
    return ct__error(x->ctx, CT_ERR_SHAPE, "BiasAdd: bias %s does not match the last axis of %s", s2, s1);
  }
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, x->rank, x->shape, out));
  if (x->size == 0) return CT_OK;
  int64_t C = b->shape[0];
  return ctb_bias_add(x->ctx, x->dtype, x->size / C, C, x->buf, b->buf, (*out)->buf);
}

/* dy [..., C] -> [C] */
CT_FORWARD(ct__fwd_bias_add_grad) {
  (void)op;
  (void)n_in;
  (void)at;
  const ct_tensor *dy = in[0];
  CT_TRY(float_same("BiasAddGrad", dy, NULL));
  if (dy->rank < 1) return ct__error(dy->ctx, CT_ERR_SHAPE, "BiasAddGrad: the gradient must have rank >= 1");
  int64_t C = dy->shape[dy->rank - 1];
  CT_TRY(ct__tensor_new(dy->ctx, dy->dtype, 1, &C, out));
  if (C == 0) return CT_OK;
  return ctb_bias_add_grad(dy->ctx, dy->dtype, dy->size / C, C, dy->buf, (*out)->buf);
}

/* ---- public ops ----------------------------------------------------------------------------- */
#define OUT_CHECK(fn)                                                  \
  do {                                                                 \
    if (!out) return ct__error(NULL, CT_ERR_NULL, fn ": out is NULL"); \
    *out = NULL;                                                       \
  } while (0)

static ct_status window_attrs(const ct_tensor *x, const int *win, const int *strides, ct_padding padding,
                              const char *fn, ct_attrs *at) {
  *at = ct__attrs(CT_AT_WINDOW);
  if (padding != CT_PADDING_VALID && padding != CT_PADDING_SAME)
    return ct__error(x->ctx, CT_ERR_INVALID, "%s: unknown padding %d", fn, (int)padding);
  at->window.same = padding == CT_PADDING_SAME;
  if (win) {
    at->window.win[0] = win[0];
    at->window.win[1] = win[1];
  }
  at->window.stride[0] = strides ? strides[0] : (win ? win[0] : 1);
  at->window.stride[1] = strides ? strides[1] : (win ? win[1] : 1);
  if ((win && (win[0] < 1 || win[1] < 1)) || at->window.stride[0] < 1 || at->window.stride[1] < 1)
    return ct__error(x->ctx, CT_ERR_INVALID, "%s: window and strides must be >= 1", fn);
  return CT_OK;
}

/* A convolution row (in[0] the input, in[1] the filter, in[2] a bias for the fused rows) with
 * strides (1 by default) and padding. */
static ct_status conv_run(ct_op_id op, const ct_tensor *const *in, int n, const int *strides, ct_padding padding,
                          ct_tensor **out) {
  ct_attrs at;
  const int one[2] = {1, 1};
  CT_TRY(window_attrs(in[0], NULL, strides ? strides : one, padding, "ct_conv2d", &at));
  return ct__run(op, in, n, &at, out);
}

ct_status ct_conv2d(const ct_tensor *x, const ct_tensor *filter, const int *strides, ct_padding padding,
                    ct_tensor **out) {
  OUT_CHECK("ct_conv2d");
  CT_TRY(ct__check(x, "ct_conv2d"));
  CT_TRY(ct__check(filter, "ct_conv2d"));
  const ct_tensor *in[2] = {x, filter};
  return conv_run(CT_OP_CONV2D, in, 2, strides, padding, out);
}

ct_status ct__conv2d_bias_act(const ct_tensor *x, const ct_tensor *filter, const ct_tensor *bias, const int *strides,
                              ct_padding padding, bool relu, ct_tensor **out) {
  const ct_tensor *in[3] = {x, filter, bias};
  return conv_run(relu ? CT_OP_CONV2D_BIAS_RELU : CT_OP_CONV2D_BIAS, in, 3, strides, padding, out);
}

static ct_status pool(ct_op_id op, const ct_tensor *x, const int *pool, const int *strides, ct_padding padding,
                      ct_tensor **out, const char *fn) {
  CT_TRY(ct__check(x, fn));
  if (!pool) return ct__error(x->ctx, CT_ERR_NULL, "%s: pool size is NULL", fn);
  ct_attrs at;
  CT_TRY(window_attrs(x, pool, strides, padding, fn, &at));
  const ct_tensor *in[1] = {x};
  return ct__run(op, in, 1, &at, out);
}
ct_status ct_max_pool2d(const ct_tensor *x, const int *pool_size, const int *strides, ct_padding padding,
                        ct_tensor **out) {
  OUT_CHECK("ct_max_pool2d");
  return pool(CT_OP_MAXPOOL, x, pool_size, strides, padding, out, "ct_max_pool2d");
}
ct_status ct_avg_pool2d(const ct_tensor *x, const int *pool_size, const int *strides, ct_padding padding,
                        ct_tensor **out) {
  OUT_CHECK("ct_avg_pool2d");
  return pool(CT_OP_AVGPOOL, x, pool_size, strides, padding, out, "ct_avg_pool2d");
}

ct_status ct_dropout(const ct_tensor *x, double rate, uint64_t seed, ct_tensor **out) {
  OUT_CHECK("ct_dropout");
  CT_TRY(ct__check(x, "ct_dropout"));
  if (!(rate >= 0 && rate < 1)) return ct__error(x->ctx, CT_ERR_INVALID, "ct_dropout: rate %g is outside [0, 1)", rate);
  ct_attrs at = ct__attrs(CT_AT_DROPOUT);
  at.dropout.rate = rate;
  at.dropout.seed = seed;
  const ct_tensor *in[1] = {x};
  return ct__run(CT_OP_DROPOUT, in, 1, &at, out);
}

ct_status ct_sparse_softmax_cross_entropy(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out) {
  OUT_CHECK("ct_sparse_softmax_cross_entropy");
  CT_TRY(ct__check(logits, "ct_sparse_softmax_cross_entropy"));
  CT_TRY(ct__check(labels, "ct_sparse_softmax_cross_entropy"));
  ct_attrs at = ct__attrs(CT_AT_NONE);
  const ct_tensor *in[2] = {logits, labels};
  return ct__run(CT_OP_SOFTMAX_XENT, in, 2, &at, out);
}

ct_status ct_bias_add(const ct_tensor *x, const ct_tensor *bias, ct_tensor **out) {
  OUT_CHECK("ct_bias_add");
  CT_TRY(ct__check(x, "ct_bias_add"));
  CT_TRY(ct__check(bias, "ct_bias_add"));
  ct_attrs at = ct__attrs(CT_AT_NONE);
  const ct_tensor *in[2] = {x, bias};
  return ct__run(CT_OP_BIAS_ADD, in, 2, &at, out);
}

/* ---- activations ------------------------------------------------------------------------------ */
const char *ct_activation_name(ct_activation a) {
  static const char *names[] = {"none", "relu", "sigmoid", "tanh", "softmax", "gelu", "elu", "softplus"};
  return (unsigned)a < sizeof names / sizeof *names ? names[a] : "?";
}

ct_status ct_activate(const ct_tensor *x, ct_activation activation, ct_tensor **out) {
  OUT_CHECK("ct_activate");
  CT_TRY(ct__check(x, "ct_activate"));
  switch (activation) {
    case CT_ACTIVATION_NONE: *out = ct_tensor_retain((ct_tensor *)x); return CT_OK;
    case CT_ACTIVATION_RELU: return ct_relu(x, out);
    case CT_ACTIVATION_SIGMOID: return ct_sigmoid(x, out);
    case CT_ACTIVATION_TANH: return ct_tanh(x, out);
    case CT_ACTIVATION_SOFTMAX: return ct_softmax(x, -1, out);
    case CT_ACTIVATION_GELU: return ct_gelu(x, out);
    case CT_ACTIVATION_ELU: return ct_elu(x, out);
    case CT_ACTIVATION_SOFTPLUS: return ct_softplus(x, out);
  }
  return ct__error(x->ctx, CT_ERR_INVALID, "ct_activate: unknown activation %d", (int)activation);
}

/* ---- losses and metrics ------------------------------------------------------------------------ */
ct_status ct_softmax_cross_entropy(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out) {
  OUT_CHECK("ct_softmax_cross_entropy");
  ct_tensor *per = NULL;
  CT_TRY(ct_sparse_softmax_cross_entropy(logits, labels, &per));
  ct_status s = ct_mean(per, NULL, 0, false, out);
  ct_tensor_free(per);
  return s;
}

ct_status ct_mean_squared_error(const ct_tensor *pred, const ct_tensor *target, ct_tensor **out) {
  OUT_CHECK("ct_mean_squared_error");
  CT_TRY(ct__check(pred, "ct_mean_squared_error"));
  CT_TRY(ct__check(target, "ct_mean_squared_error"));
  if (!shape_is(target, pred->rank, pred->shape)) {
    char s1[96], s2[96];
    ct__shape_str(pred->rank, pred->shape, s1, sizeof s1);
    ct__shape_str(target->rank, target->shape, s2, sizeof s2);
    return ct__error(pred->ctx, CT_ERR_SHAPE, "ct_mean_squared_error: prediction %s and target %s differ", s1, s2);
  }
  ct_tensor *d = NULL, *sq = NULL;
  ct_status s = ct_sub(pred, target, &d);
  if (s == CT_OK) s = ct_square(d, &sq);
  if (s == CT_OK) s = ct_mean(sq, NULL, 0, false, out);
  ct_tensor_free(d);
  ct_tensor_free(sq);
  return s;
}

ct_status ct_count_correct(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out) {
  OUT_CHECK("ct_count_correct");
  CT_TRY(ct__check(logits, "ct_count_correct"));
  CT_TRY(ct__check(labels, "ct_count_correct"));
  if (labels->dtype != CT_INT32) return ct__error(logits->ctx, CT_ERR_DTYPE, "ct_count_correct: labels must be int32");
  if (logits->rank < 1) return ct__error(logits->ctx, CT_ERR_SHAPE, "ct_count_correct: logits must have rank >= 1");
  CT_TRY(expect_shape(labels, logits->rank - 1, logits->shape, "ct_count_correct", "the labels"));
  ct_tensor *am = NULL, *eq = NULL, *ei = NULL;
  ct_status s = ct_argmax(logits, -1, &am);
  if (s == CT_OK) s = ct_equal(am, labels, &eq);
  if (s == CT_OK) s = ct_cast(eq, CT_INT32, &ei); /* a bool tensor is not summed: counted as int32 */
  if (s == CT_OK) s = ct_sum(ei, NULL, 0, false, out);
  ct_tensor_free(am);
  ct_tensor_free(eq);
  ct_tensor_free(ei);
  return s;
}

ct_status ct_accuracy(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out) {
  OUT_CHECK("ct_accuracy");
  ct_tensor *c = NULL, *f = NULL;
  CT_TRY(ct_count_correct(logits, labels, &c));
  ct_status s = ct_cast(c, CT_FLOAT32, &f);
  if (s == CT_OK) s = ct_div_scalar(f, labels->size ? (double)labels->size : 1.0, out);
  ct_tensor_free(c);
  ct_tensor_free(f);
  return s;
}
