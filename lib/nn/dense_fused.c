/* dense_fused.c — the Dense layer's product, bias and ReLU as one op: MatMulBiasAdd (x W + b) and
 * MatMulBiasRelu (relu(x W + b)), x [M, K], W [K, N], b [N]. Where the tiled kernels run products
 * the backend adds the bias and applies ReLU as the product is stored (ctb_gemm_bias_act): one
 * launch instead of three, and the sum is never written and read back. The result equals the
 * unfused ops' (the same product, then the same additions). Gradients are ops: dz = dy (times
 * sign(y) after ReLU), dx = dz W^T, dW = x^T dz, db = the column sums of dz. The first and last
 * steps are shared with Conv2DBiasAdd and Conv2DBiasRelu (their forward in ops_nn.c, gradient in
 * grad_nn.c). */
#include "nn_internal.h"
#include <string.h>

static ct_status shape_error(const ct_tensor *x, const ct_tensor *w, const ct_tensor *b, const char *op) {
  char s1[96], s2[96], s3[96];
  ct__shape_str(x->rank, x->shape, s1, sizeof s1);
  ct__shape_str(w->rank, w->shape, s2, sizeof s2);
  ct__shape_str(b->rank, b->shape, s3, sizeof s3);
  return ct__error(x->ctx, CT_ERR_SHAPE, "%s: x %s, kernel %s and bias %s do not make [M, K] x [K, N] + [N]", op, s1,
                   s2, s3);
}

CT_FORWARD(ct__fwd_dense_bias) {
  (void)n_in;
  (void)at;
  const ct_tensor *x = in[0], *w = in[1], *b = in[2];
  const char *name = ct_ops[op].name;
  if (!ct__is_float(x->dtype))
    return ct__error(x->ctx, CT_ERR_DTYPE, "%s needs float32 or float64 tensors, got %s", name, ct_dtype_name(x->dtype));
  if (w->dtype != x->dtype || b->dtype != x->dtype)
    return ct__error(x->ctx, CT_ERR_DTYPE, "%s: operands have different dtypes (%s, %s and %s)", name,
                     ct_dtype_name(x->dtype), ct_dtype_name(w->dtype), ct_dtype_name(b->dtype));
  if (x->rank != 2 || w->rank != 2 || b->rank != 1 || x->shape[1] != w->shape[0] || b->shape[0] != w->shape[1])
    return shape_error(x, w, b, name);
  const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[1], shape[2] = {M, N};
  CT_TRY(ct__tensor_new(x->ctx, x->dtype, 2, shape, out));
  return ctb_gemm_bias_act(x->ctx, x->dtype, M, N, K, x->buf, w->buf, b->buf, op == CT_OP_DENSE_BIAS_RELU,
                           (*out)->buf);
}

ct_status ct__bias_act_dz(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dz) {
  if ((g->e->op != CT_OP_DENSE_BIAS_RELU && g->e->op != CT_OP_CONV2D_BIAS_RELU) || g->dy_masked) {
    *dz = ct_tensor_retain((ct_tensor *)dy);
    return CT_OK;
  }
  ct_tensor *step = NULL; /* y >= 0, so sign(y) is the step function */
  CT_TRY(ct_sign(OUT, &step));
  ct_status s = ct_mul(dy, step, dz);
  ct_tensor_free(step);
  return s;
}

ct_status ct__bias_grad(const ct_tensor *dz, ct_tensor **db) {
  ct_attrs at = ct__attrs(CT_AT_NONE);
  const ct_tensor *args[1] = {dz};
  return ct__run(CT_OP_BIAS_ADD_GRAD, args, 1, &at, db);
}

CT_GRADIENT(ct__grad_dense_bias) {
  ct_tensor *dz = NULL;
  CT_TRY(ct__bias_act_dz(g, dy, &dz));
  ct_status s = CT_OK;
  if (NEED(0)) s = ct_matmul(dz, IN(1), false, true, &dx[0]);
  if (s == CT_OK && NEED(1)) s = ct_matmul(IN(0), dz, true, false, &dx[1]);
  if (s == CT_OK && NEED(2)) s = ct__bias_grad(dz, &dx[2]);
  ct_tensor_free(dz);
  return s;
}

ct_status ct__dense_bias_act(const ct_tensor *x, const ct_tensor *kernel, const ct_tensor *bias, bool relu,
                             ct_tensor **out) {
  ct_attrs at = ct__attrs(CT_AT_NONE);
  const ct_tensor *in[3] = {x, kernel, bias};
  return ct__run(relu ? CT_OP_DENSE_BIAS_RELU : CT_OP_DENSE_BIAS, in, 3, &at, out);
}
