/* grad_nn.c — the gradients of the layer library's rows of the op table (lib/nn/ops_nn.def),
 * built from ops as those of lib/grad.c are. */
#include "nn_internal.h"
#include <string.h>

/* Conv2D, Conv2DBackpropInput and Conv2DBackpropFilter are bilinear and close under gradients:
 * each one's gradient is made of the three. So are the pooling gradients (MaxPoolGrad and
 * MaxPoolGradGrad are adjoints; AvgPool and AvgPoolGrad too) and Dropout (its own adjoint). */
static ct_status run_nn(ct_op_id op, const ct_tensor *a, const ct_tensor *b, const ct_attrs *at, int rank,
                        const int64_t *shape, ct_tensor **out) {
  ct_attrs x = ct__attrs_copy(at);
  if (shape) {
    x.window.rank = rank;
    memcpy(x.window.shape, shape, sizeof(int64_t) * (size_t)rank);
  }
  const ct_tensor *in[2] = {a, b};
  return ct__run(op, in, b ? 2 : 1, &x, out);
}

CT_GRADIENT(ct__grad_conv2d) {
  const ct_slot *x = &g->e->in[0], *f = &g->e->in[1];
  if (NEED(0)) CT_TRY(run_nn(CT_OP_CONV2D_BP_INPUT, dy, IN(1), g->e->at, x->rank, x->shape, &dx[0]));
  if (NEED(1)) CT_TRY(run_nn(CT_OP_CONV2D_BP_FILTER, IN(0), dy, g->e->at, f->rank, f->shape, &dx[1]));
  return CT_OK;
}
/* df and db from one Conv2DBackpropFilterBias (no gradient of its own: only where no tape records
 * this gradient), sliced out of its [df flattened, db] */
static ct_status filter_and_bias(const ct_gctx *g, const ct_tensor *dz, const ct_attrs *at, ct_tensor **dx) {
  const ct_slot *f = &g->e->in[1];
  ct_tensor *packed = NULL;
  CT_TRY(run_nn(CT_OP_CONV2D_BP_FILTER_BIAS, IN(0), dz, at, 0, NULL, &packed));
  int64_t nf = packed->size - f->shape[3], ends[2] = {nf, packed->size}, begin = 0;
  ct_status s = CT_OK;
  for (int i = 0; i < 2 && s == CT_OK; ++i) {
    ct_tensor *part = NULL;
    s = ct_slice(packed, &begin, &ends[i], NULL, &part);
    if (s == CT_OK && i == 0) s = ct_reshape(part, f->rank, f->shape, &dx[1]);
    if (s == CT_OK && i == 1) dx[2] = part; /* [OC], the bias's shape */
    else ct_tensor_free(part);
    begin = ends[i];
  }
  ct_tensor_free(packed);
  return s;
}

/* out = [relu](conv2d(x, f) + b): Conv2D's gradients of dz (dy, times sign(out) after ReLU) and
 * db = BiasAddGrad(dz); df and db from one launch where the filter gradient's kernel sums the
 * bias's too (ct__conv2d_bp_filter_bias_fuses) and no tape records the gradient */
CT_GRADIENT(ct__grad_conv2d_bias) {
  const ct_slot *x = &g->e->in[0], *f = &g->e->in[1];
  ct_tensor *dz = NULL;
  CT_TRY(ct__bias_act_dz(g, dy, &dz));
  ct_status s = CT_OK;
  ct_attrs at = ct__attrs_copy(g->e->at);
  at.window.rank = f->rank;
  memcpy(at.window.shape, f->shape, sizeof(int64_t) * (size_t)f->rank);
  if (NEED(0)) s = run_nn(CT_OP_CONV2D_BP_INPUT, dz, IN(1), g->e->at, x->rank, x->shape, &dx[0]);
  if (s == CT_OK && NEED(1) && NEED(2) && !ct__tapes_recording() && ct__conv2d_bp_filter_bias_fuses(IN(0), dz, &at))
    s = filter_and_bias(g, dz, &at, dx);
  else {
    if (s == CT_OK && NEED(1)) s = run_nn(CT_OP_CONV2D_BP_FILTER, IN(0), dz, &at, 0, NULL, &dx[1]);
    if (s == CT_OK && NEED(2)) s = ct__bias_grad(dz, &dx[2]);
  }
  ct_tensor_free(dz);
  return s;
}
/* out = Conv2DBackpropInput(dy0, f): d(dy0) = conv2d(g, f), d(f) = Conv2DBackpropFilter(g, dy0) */
CT_GRADIENT(ct__grad_conv2d_bp_input) {
  const ct_slot *f = &g->e->in[1];
  if (NEED(0)) CT_TRY(run_nn(CT_OP_CONV2D, dy, IN(1), g->e->at, 0, NULL, &dx[0]));
  if (NEED(1)) CT_TRY(run_nn(CT_OP_CONV2D_BP_FILTER, dy, IN(0), g->e->at, f->rank, f->shape, &dx[1]));
  return CT_OK;
}
/* out = Conv2DBackpropFilter(x, dy0): d(x) = Conv2DBackpropInput(dy0, g), d(dy0) = conv2d(x, g) */
CT_GRADIENT(ct__grad_conv2d_bp_filter) {
  const ct_slot *x = &g->e->in[0];
  if (NEED(0)) CT_TRY(run_nn(CT_OP_CONV2D_BP_INPUT, IN(1), dy, g->e->at, x->rank, x->shape, &dx[0]));
  if (NEED(1)) CT_TRY(run_nn(CT_OP_CONV2D, IN(0), dy, g->e->at, 0, NULL, &dx[1]));
  return CT_OK;
}

/* Where the input is a ReLU's output whose gradient multiplies this one by sign(input) anyway
 * (g->mask_in0), the kernel applies that factor at each window's maximum, where it is free, and
 * the ReLU's gradient passes it on (saves a pass over the input's gradient). */
CT_GRADIENT(ct__grad_maxpool) {
  if (!g->mask_in0) return run_nn(CT_OP_MAXPOOL_GRAD, IN(0), dy, g->e->at, 0, NULL, &dx[0]);
  ct_attrs at = ct__attrs_copy(g->e->at);
  at.window.relu_mask = true;
  const ct_tensor *in[2] = {IN(0), dy};
  CT_TRY(ct__run(CT_OP_MAXPOOL_GRAD, in, 2, &at, &dx[0]));
  *g->masked = true;
  return CT_OK;
}
/* MaxPoolGrad(x, dy0) is linear in dy0 and piecewise constant in x (its x-gradient is zero
 * almost everywhere, so none is returned). */
CT_GRADIENT(ct__grad_maxpool_grad) {
  if (NEED(1)) CT_TRY(run_nn(CT_OP_MAXPOOL_GRADGRAD, IN(0), dy, g->e->at, 0, NULL, &dx[1]));
  return CT_OK;
}
CT_GRADIENT(ct__grad_maxpool_gradgrad) {
  if (NEED(1)) CT_TRY(run_nn(CT_OP_MAXPOOL_GRAD, IN(0), dy, g->e->at, 0, NULL, &dx[1]));
  return CT_OK;
}

CT_GRADIENT(ct__grad_avgpool) {
  const ct_slot *x = &g->e->in[0];
  return run_nn(CT_OP_AVGPOOL_GRAD, dy, NULL, g->e->at, x->rank, x->shape, &dx[0]);
}
CT_GRADIENT(ct__grad_avgpool_grad) {
  return run_nn(CT_OP_AVGPOOL, dy, NULL, g->e->at, 0, NULL, &dx[0]);
}

CT_GRADIENT(ct__grad_dropout) {
  return run_nn(CT_OP_DROPOUT, dy, NULL, g->e->at, 0, NULL, &dx[0]);
}

CT_GRADIENT(ct__grad_softmax_xent) {
  if (!NEED(0)) return CT_OK;
  const ct_tensor *in[3] = {IN(0), IN(1), dy};
  return ct__run(CT_OP_SOFTMAX_XENT_GRAD, in, 3, g->e->at, &dx[0]);
}
/* out = dy0 * (p - onehot), p = softmax(logits):
 *   d(dy0)    = sum over classes of g * (p - onehot)
 *   d(logits) = dy0 * p * (g - sum over classes of p * g)   (the softmax Jacobian applied to g) */
CT_GRADIENT(ct__grad_softmax_xent_grad) {
  const ct_tensor *logits = IN(0), *labels = IN(1), *dy0 = IN(2);
  int last = logits->rank - 1;
  ct_tensor *p = NULL, *oh = NULL, *d = NULL, *gd = NULL, *pg = NULL, *s = NULL, *t = NULL, *u = NULL, *dk = NULL;
  ct_status st = ct_softmax(logits, -1, &p);
  if (st == CT_OK && NEED(2)) {
    st = ct_one_hot(labels, (int)logits->shape[last], logits->dtype, &oh);
    if (st == CT_OK) st = ct_sub(p, oh, &d);
    if (st == CT_OK) st = ct_mul(dy, d, &gd);
    if (st == CT_OK) st = ct_sum(gd, &last, 1, false, &dx[2]);
  }
  if (st == CT_OK && NEED(0)) {
    int64_t ks[CT_MAX_RANK];
    memcpy(ks, dy0->shape, sizeof(int64_t) * (size_t)dy0->rank);
    ks[dy0->rank] = 1;
    st = ct_mul(p, dy, &pg);
    if (st == CT_OK) st = ct_sum(pg, &last, 1, true, &s);
    if (st == CT_OK) st = ct_sub(dy, s, &t);
    if (st == CT_OK) st = ct_mul(p, t, &u);
    if (st == CT_OK) st = ct_reshape(dy0, dy0->rank + 1, ks, &dk);
    if (st == CT_OK) st = ct_mul(u, dk, &dx[0]);
  }
  DROP(p, oh, d, gd, pg, s, t, u, dk);
  return st;
}

/* BiasAdd(x, b) = x + b over the last axis: d(x) = dy, d(b) = BiasAddGrad(dy) (the sum over every
 * other axis); BiasAddGrad's own gradient broadcasts back. */
CT_GRADIENT(ct__grad_bias_add) {
  if (NEED(0)) dx[0] = ct_tensor_retain((ct_tensor *)dy);
  if (NEED(1)) CT_TRY(run_nn(CT_OP_BIAS_ADD_GRAD, dy, NULL, g->e->at, 0, NULL, &dx[1]));
  return CT_OK;
}
CT_GRADIENT(ct__grad_bias_add_grad) {
  const ct_slot *in = &g->e->in[0];
  return ct_broadcast_to(dy, in->rank, in->shape, &dx[0]);
}
