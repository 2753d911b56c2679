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
