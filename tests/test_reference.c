/* The host reference of the op table (lib/reference.c): every elementwise row has its math there,
 * the values are the rows' math, and the whole-tensor forward follows the device's conventions. */
#include "support.h"
#include "ct_internal.h"
#include <math.h>
#include <string.h>

Test(reference, every_elementwise_row_has_a_host_reference) {
  int n = 0;
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    if (ct_ops[i].kind == K_OTHER) continue;
    cr_expect(ct__reference_elementwise((ct_op_id)i),
              "row %s of lib/ops.def (\"%s\") has no host reference in lib/reference.c", ct_ops[i].name, ct_ops[i].expr);
    /* the row's test inputs (its DOM column) lie where its math is finite, and spread out */
    cr_expect(ct_ops[i].has_domain, "row %s of lib/ops.def has no test domain (NODOM)", ct_ops[i].name);
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < 64; ++k) {
      double f = (k + 0.5) / 64, a = ct__reference_input((ct_op_id)i, 0, f), b = ct__reference_input((ct_op_id)i, 1, f);
      cr_expect(isfinite(ct_ops[i].reference(a, b)), "%s: not finite at the test inputs %g, %g", ct_ops[i].name, a, b);
      lo = fmin(lo, a), hi = fmax(hi, a);
    }
    cr_expect_lt(lo, hi, "%s: empty domain", ct_ops[i].name);
    n++;
  }
  cr_expect_gt(n, 30);
  cr_expect(!ct__reference_elementwise(CT_OP_MATMUL));
  cr_expect(isnan(ct__reference_unary(CT_OP_MATMUL, 1.0)));
}

Test(reference, elementwise_values) {
  cr_expect_float_eq(ct__reference_unary(CT_OP_SIGMOID, 0.0), 0.5, 1e-15);
  cr_expect_float_eq(ct__reference_unary(CT_OP_SIGMOID, -800.0), 0.0, 1e-300);
  cr_expect_float_eq(ct__reference_unary(CT_OP_SOFTPLUS, 0.0), log(2.0), 1e-15);
  cr_expect_float_eq(ct__reference_unary(CT_OP_GELU, 1.0), 0.8413447460685429, 1e-15);
  cr_expect_float_eq(ct__reference_unary(CT_OP_ELU, -1.0), expm1(-1.0), 1e-15);
  cr_expect_eq(ct__reference_unary(CT_OP_ROUND, 2.5), 2.0); /* rint: ties to even */
  cr_expect_eq(ct__reference_unary(CT_OP_SIGN, -0.25), -1.0);
  cr_expect_eq(ct__reference_binary(CT_OP_GREATER_EQ, 1.0, 1.0), 1.0);
  cr_expect_eq(ct__reference_binary(CT_OP_NOT_EQUAL, 1.0, 1.0), 0.0);
  cr_expect_float_eq(ct__reference_binary(CT_OP_POW, 2.0, 0.5), sqrt(2.0), 1e-15);
  cr_expect_eq(ct__reference_binary(CT_OP_MINIMUM, -3.0, 2.0), -3.0);
}

static ct_ref_tensor host(int rank, const int64_t *shape, double *v) {
  ct_ref_tensor t = {rank, {0}, v};
  memcpy(t.shape, shape, sizeof(int64_t) * (size_t)rank);
  return t;
}

Test(reference, whole_tensor_rows) {
  /* matmul with a broadcast batch and transposed operands */
  double a[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 1, 0}, b[3 * 2] = {1, 0, 0, 1, 1, 1};
  ct_ref_tensor in[3] = {host(3, (const int64_t[]){2, 2, 3}, a), host(2, (const int64_t[]){3, 2}, b)}, out;
  ct_attrs at = ct__attrs(CT_AT_MATMUL);
  cr_assert_eq(ct__reference_forward(CT_OP_MATMUL, in, 2, &at, &out), CT_OK);
  cr_expect_eq(out.rank, 3);
  const double mm[8] = {4, 5, 10, 11, 0, 1, 2, 1};
  for (int i = 0; i < 8; ++i) cr_expect_eq(out.v[i], mm[i], "matmul[%d] = %g", i, out.v[i]);
  ct__reference_free(&out);
  /* sum over axes 0 and 2 of the (2, 2, 3) tensor, kept */
  at = ct__attrs(CT_AT_REDUCE);
  at.reduce.naxes = 2;
  at.reduce.axes[0] = 0;
  at.reduce.axes[1] = 2;
  at.reduce.keepdims = true;
  cr_assert_eq(ct__reference_forward(CT_OP_SUM, in, 1, &at, &out), CT_OK);
  cr_expect_eq(out.rank, 3);
  cr_expect_eq(out.shape[0], 1);
  cr_expect_eq(out.v[0], 1 + 2 + 3 - 1 + 0 + 1);
  cr_expect_eq(out.v[1], 4 + 5 + 6 + 2 + 1 + 0);
  ct__reference_free(&out);
  /* average pooling with SAME padding divides by the elements inside the input */
  double x[3] = {1, 2, 4};
  in[0] = host(4, (const int64_t[]){1, 1, 3, 1}, x);
  at = ct__attrs(CT_AT_WINDOW);
  at.window.win[0] = 1, at.window.win[1] = 2, at.window.stride[0] = 1, at.window.stride[1] = 2, at.window.same = true;
  cr_assert_eq(ct__reference_forward(CT_OP_AVGPOOL, in, 1, &at, &out), CT_OK);
  cr_expect_eq(out.shape[2], 2);
  cr_expect_eq(out.v[0], 1.5);
  cr_expect_eq(out.v[1], 4);
  ct__reference_free(&out);
  /* gradient rows have no forward of their own */
  cr_expect_eq(ct__reference_forward(CT_OP_CONV2D_BP_INPUT, in, 2, &at, &out), CT_ERR_UNSUPPORTED);
  cr_expect_null(out.v);
}

Test(reference, every_row_with_a_function_has_a_whole_tensor_reference) {
  /* the table's reference column: rows with a public function name theirs; the gradient rows
   * (function "_") and the user op have none */
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    bool want = strcmp(ct_ops[i].lname, "_") != 0 && i != CT_OP_CUSTOM;
    cr_expect_eq(ct_ops[i].ref_forward != NULL, want, "row %s of the op table: whole-tensor reference %s", ct_ops[i].name,
                 want ? "missing (RF(...) in its reference column)" : "where none was expected");
  }
}
