/* reference.c — the op table's host references: each elementwise row's expression evaluated on
 * the host in float64 (the reference column of lib/ops.def; x is the unary operand, a and b the
 * binary ones). The generated forward tests compare every device result with these. Rows
 * without a reference (NOREF) get a function that is never called: ct_ops[op].reference is NULL
 * for them. */
#include "ct_internal.h"
#include <math.h>

#define R(e) return (double)(e);
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

/* The same by op id, for callers that hold values one at a time (NAN for a row without one). */
double ct__reference_unary(ct_op_id op, double x) {
  return op < CT_OP_COUNT && ct_ops[op].kind == K_UN && ct_ops[op].reference ? ct_ops[op].reference(x, 0) : NAN;
}
double ct__reference_binary(ct_op_id op, double a, double b) {
  return op < CT_OP_COUNT && ct_ops[op].kind != K_UN && ct_ops[op].reference ? ct_ops[op].reference(a, b) : NAN;
}
