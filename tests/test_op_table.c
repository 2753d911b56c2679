/*
 * test_op_table.c — tests generated from the op table (lib/ops.def): every elementwise row's
 * public function against the row's host reference (its reference column, evaluated in float64
 * by lib/reference.c) on the row's test domain, for float32, float64 and (rows marked DA) int32,
 * with same shapes, a scalar operand on either side and a broadcast pair. A new elementwise row
 * is tested here without a test edit; a row that lacks what its tests need fails, naming the row.
 *
 * Tolerances: float64 agrees to 1e-12 relative (1e-13 absolute); float32 within 4 ulp or 1e-6
 * absolute, the bound the library accepts for transcendental functions with native_ math
 * (test_ops_elementwise.c checks the tighter classes of its rows).
 */
#include "support.h"
#include "ct_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;
static void setup(void) { CTX = ts_ctx(); }
static void teardown(void) {
  ct_context_free(CTX);
  CTX = NULL;
}

static bool elementwise(const ct_op_info *r) { return r->kind == K_UN || r->kind == K_BIN || r->kind == K_CMP; }

/* The row's domain: a = a0 + da k, b = b0 + db k (b's sign alternating), scaled by 10 and
 * truncated for int32. */
static double dom_a(const ct_op_info *r, ct_dtype dt, int64_t k) {
  double v = r->a0 + r->da * (double)k;
  return dt == CT_INT32 ? trunc(10 * v) : v;
}
static double dom_b(const ct_op_info *r, ct_dtype dt, int64_t k) {
  double v = (r->b_alternate && k % 2 ? -1 : 1) * (r->b0 + r->db * (double)k);
  return dt == CT_INT32 ? trunc(10 * v) : v;
}

static bool close_enough(ct_dtype dt, double got, double want) {
  if (isnan(want)) return isnan(got);
  double err = fabs(got - want);
  if (dt == CT_INT32) return err == 0;
  if (dt == CT_FLOAT64) return err <= 1e-13 + 1e-12 * fabs(want);
  float wf = (float)want;
  if (isinf(wf)) return got == (double)wf;
  double ulp = (double)nextafterf(fabsf(wf), INFINITY) - fabsf(wf);
  return err <= 4 * ulp || err <= 1e-6;
}

/* The reference of the row on values as the dtype holds them; int32 division truncates. */
static double want_of(const ct_op_info *r, ct_dtype dt, double a, double b) {
  double w = r->reference(ts_to_dtype(dt, a), ts_to_dtype(dt, b));
  if (dt == CT_INT32 && r->kind != K_CMP) w = trunc(w);
  return r->kind == K_CMP ? w : ts_to_dtype(dt, w);
}

/* a (shape sa) op b (shape sb) -> result of shape so, compared element by element. */
static void check_case(const ct_op_info *r, ct_dtype dt, int ra, const int64_t *sa, int rb, const int64_t *sb,
                       const char *what) {
  int64_t na = ts_numel(ra, sa), nb = ts_numel(rb, sb);
  double av[16], bv[16];
  for (int64_t k = 0; k < na; ++k) av[k] = dom_a(r, dt, k);
  for (int64_t k = 0; k < nb; ++k) bv[k] = dom_b(r, dt, k);
  ct_tensor *a = ts_tensor(CTX, dt, ra, sa, av), *b = NULL, *y = NULL;
  ct_status s;
  if (r->kind == K_UN) {
    s = r->unary(a, &y);
  } else {
    b = ts_tensor(CTX, dt, rb, sb, bv);
    s = r->binary(a, b, &y);
  }
  cr_assert_eq(s, CT_OK, "%s %s [%s]: %s: %s", r->name, what, ct_dtype_name(dt), ct_status_name(s), ct_errmsg());
  cr_assert_eq(ct_tensor_dtype(y), r->kind == K_CMP ? CT_BOOL : dt, "%s %s: result dtype %s", r->name, what,
               ct_dtype_name(ct_tensor_dtype(y)));
  /* the broadcast result: both operands read through NumPy rules (shapes here are
   * right-aligned, extents 1 repeat) */
  int ro = ct_tensor_rank(y);
  const int64_t *so = ct_tensor_shape(y);
  int64_t n = ts_numel(ro, so);
  double *got = ts_read(y);
  for (int64_t i = 0; i < n; ++i) {
    int64_t ia = 0, ib = 0, rem = i, sta = 1, stb = 1;
    for (int d = ro - 1; d >= 0; --d) {
      int64_t c = rem % so[d];
      rem /= so[d];
      int da = d - (ro - ra), db = d - (ro - rb);
      if (da >= 0) {
        if (sa[da] != 1) ia += c * sta;
        sta *= sa[da];
      }
      if (db >= 0) {
        if (sb[db] != 1) ib += c * stb;
        stb *= sb[db];
      }
    }
    double want = want_of(r, dt, av[ia], r->kind == K_UN ? 0 : bv[ib]);
    cr_expect(close_enough(dt, got[i], want), "%s %s [%s]: element %lld of (%g, %g) = %.17g, the reference gives %.17g",
              r->name, what, ct_dtype_name(dt), (long long)i, av[ia], r->kind == K_UN ? 0.0 : bv[ib], got[i], want);
  }
  free(got);
  ct_tensor_free(a);
  ct_tensor_free(b);
  ct_tensor_free(y);
}

#define SH(...) ((const int64_t[]){__VA_ARGS__})

Test(op_table, every_elementwise_row_has_what_its_tests_need, .init = setup, .fini = teardown) {
  int rows = 0;
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    const ct_op_info *r = &ct_ops[i];
    if (!elementwise(r)) continue;
    rows++;
    cr_expect(r->reference != NULL, "op %s (row %s of lib/ops.def) has no host reference: give it R(expression)",
              r->name, r->stem);
    cr_expect(r->has_domain, "op %s (row %s of lib/ops.def) has no test domain: give it DOM(a0, da, b0, db, alt)",
              r->name, r->stem);
    cr_expect(r->kind == K_UN ? r->unary != NULL : r->binary != NULL, "op %s (row %s): no public function",
              r->name, r->stem);
    cr_expect(r->expr && r->expr[0], "op %s (row %s of lib/ops.def) has no kernel expression", r->name, r->stem);
  }
  cr_expect_gt(rows, 30);
}

Test(op_table, every_elementwise_row_against_its_reference, .init = setup, .fini = teardown) {
  ct_device_info info;
  OK(ct_context_device(CTX, &info));
  const ct_dtype dts[3] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  int checked = 0, rows = 0;
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    const ct_op_info *r = &ct_ops[i];
    if (!elementwise(r) || !r->reference || !r->has_domain) continue; /* reported by the test above */
    rows++;
    for (int d = 0; d < 3; ++d) {
      ct_dtype dt = dts[d];
      if (dt == CT_FLOAT64 && !info.fp64) continue;
      if (dt == CT_INT32 && r->dtypes != DA) continue;
      check_case(r, dt, 2, SH(2, 3), 2, SH(2, 3), "on (2, 3)");
      if (r->kind != K_UN) {
        check_case(r, dt, 2, SH(2, 3), 0, NULL, "with a scalar b");
        check_case(r, dt, 0, NULL, 2, SH(2, 3), "with a scalar a");
        check_case(r, dt, 3, SH(2, 1, 3), 2, SH(2, 1), "broadcast (2, 1, 3) with (2, 1)");
      }
      checked++;
    }
  }
  /* every row in float32, and in float64 where the device has it */
  cr_expect_gt(rows, 30);
  cr_expect_geq(checked, info.fp64 ? 2 * rows : rows);
}

/* An elementwise row rejects an int32 tensor exactly when the table says float only (DF). */
Test(op_table, dtypes_column_is_enforced, .init = setup, .fini = teardown) {
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    const ct_op_info *r = &ct_ops[i];
    if (!elementwise(r)) continue;
    double v[2] = {1, 2};
    ct_tensor *a = ts_tensor(CTX, CT_INT32, 1, SH(2), v), *y = NULL;
    ct_status s = r->kind == K_UN ? r->unary(a, &y) : r->binary(a, a, &y);
    if (r->dtypes == DA) cr_expect_eq(s, CT_OK, "%s on int32: %s", r->name, ct_errmsg());
    else cr_expect_eq(s, CT_ERR_DTYPE, "%s on int32 gave %s", r->name, ct_status_name(s));
    ct_tensor_free(a);
    ct_tensor_free(y);
  }
}
