/* Gradient checks of every op of the table (lib/ops.def), by central finite differences in
 * float64, and of second derivatives (the gradient of a gradient).
 *
 * The walker test goes through ct_ops[]. An elementwise row is checked from the row itself (its
 * public function on its test domain, every broadcasting combination), so a new elementwise row
 * needs no edit here. Every other row runs the case registered for its name in `cases` below; a
 * differentiable row without a case (or an elementwise row without a domain) fails the walker,
 * naming the row. Ops declared non-differentiable (NOGRAD) are checked to give NULL gradients
 * and to leave nothing on the tape. */
#include "support.h"
#include "ct_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ct_context *CTX;

#define SH(...) ((const int64_t[]){__VA_ARGS__})
/* The checking dtype: float64, float32 on a device without it (the checker then works in float32
 * with its float32 tolerances, and says so in its report). */
#define FDT ts_best_float(CTX)
#define NO_AXES -1

/* ---- inputs --------------------------------------------------------------------------------- */
/* A tensor (FDT) with v[k] = start + step * k. */
static ct_tensor *ramp(int rank, const int64_t *shape, double start, double step) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t k = 0; k < n; ++k) v[k] = start + step * (double)k;
  ct_tensor *t = ts_tensor(CTX, FDT, rank, shape, v);
  free(v);
  return t;
}

/* Distinct values in a shuffled order (no ties for max/min): v[k] = start + step * ((5k) mod n'),
 * n' the smallest number >= n prime to 5. */
static ct_tensor *shuffled(int rank, const int64_t *shape, double start, double step) {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  int64_t m = n % 5 ? n : n + 1;
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t k = 0; k < n; ++k) v[k] = start + step * (double)((5 * k) % m);
  ct_tensor *t = ts_tensor(CTX, FDT, rank, shape, v);
  free(v);
  return t;
}

static ct_tensor *values(int rank, const int64_t *shape, const double *v) {
  return ts_tensor(CTX, FDT, rank, shape, v);
}

static ct_tensor *ints(int rank, const int64_t *shape, const double *v) {
  return ts_tensor(CTX, CT_INT32, rank, shape, v);
}

/* ---- running a check ------------------------------------------------------------------------ */
static int n_checks;

/* Gradient check of f at the inputs (consumed: freed here). Failures are reported, not fatal,
 * so that one run lists every failing case. */
/* The batched-jacobian walk: instead of checking gradients, each case compares the jacobians of
 * f with respect to each floating input taken three ways: one backward pass per row, all rows in
 * one batched pass, and batches of one row each (the memory bound splitting the batch). */
static bool jacobian_mode;

static ct_tensor *jacobian_of(ct_fn f, void *user, ct_tensor **in, int n, int i, bool looped, uint64_t bytes,
                              const char *what) {
  ct_tape_options o = {true, true};
  ct_tape *t = NULL;
  ct_tensor *y = NULL, *j = NULL;
  OK(ct_tape_begin(CTX, &o, &t));
  for (int k = 0; k < n; ++k)
    if (ct_tensor_dtype(in[k]) != CT_INT32) OK(ct_tape_watch(t, in[k]));
  ct_status s = f(in, n, &y, user);
  OK(ct_tape_end(t));
  cr_expect_eq(s, CT_OK, "%s: %s", what, ct_errmsg());
  if (s == CT_OK && ct_tensor_dtype(y) != CT_INT32) {
    uint64_t saved_bytes = ct__jacobian_batch_bytes;
    ct__jacobian_looped = looped;
    ct__jacobian_batch_bytes = bytes;
    s = ct_tape_jacobian(t, y, in[i], CT_UNCONNECTED_NONE, &j);
    ct__jacobian_looped = false;
    ct__jacobian_batch_bytes = saved_bytes;
    cr_expect_eq(s, CT_OK, "%s: jacobian (%s): %s", what, looped ? "looped" : "batched", ct_errmsg());
  }
  ct_tensor_free(y);
  ct_tape_free(t);
  return j;
}

static void compare_jacobians(const char *what, ct_fn f, void *user, ct_tensor **in, int n) {
  for (int i = 0; i < n; ++i) {
    if (ct_tensor_dtype(in[i]) == CT_INT32) continue;
    ct_tensor *looped = jacobian_of(f, user, in, n, i, true, ct__jacobian_batch_bytes, what);
    ct_tensor *one = jacobian_of(f, user, in, n, i, false, ct__jacobian_batch_bytes, what);
    ct_tensor *split = jacobian_of(f, user, in, n, i, false, 1, what);
    ct_tensor *b[2] = {one, split};
    for (int k = 0; k < 2; ++k) {
      cr_expect_eq(b[k] == NULL, looped == NULL, "%s: input %d: the %s jacobian is %sNULL", what, i,
                   k ? "split batched" : "batched", b[k] ? "not " : "");
      if (!b[k] || !looped) continue;
      int r = ct_tensor_rank(looped);
      bool same = ct_tensor_rank(b[k]) == r && !memcmp(ct_tensor_shape(b[k]), ct_tensor_shape(looped), sizeof(int64_t) * (size_t)r);
      cr_expect(same, "%s: input %d: batched and looped jacobians differ in shape", what, i);
      if (!same) continue;
      double *want = ts_read(looped), *got = ts_read(b[k]);
      int64_t m = ct_tensor_size(looped);
      double scale = 0, worst = 0;
      for (int64_t e = 0; e < m; ++e) scale = fmax(scale, fabs(want[e]));
      for (int64_t e = 0; e < m; ++e) worst = fmax(worst, fabs(got[e] - want[e]));
      double tol = (ct_tensor_dtype(looped) == CT_FLOAT64 ? 1e-12 : 1e-5) * (scale > 1 ? scale : 1);
      cr_expect_leq(worst, tol, "%s: input %d: the %s jacobian differs from the looped one by %g", what, i,
                    k ? "split batched" : "batched", worst);
      free(want);
      free(got);
    }
    ct_tensor_free(looped);
    ct_tensor_free(one);
    ct_tensor_free(split);
  }
  n_checks++;
  ct_tensor_free_n(in, n);
}

/* The forward-mode walk: each case compares, for each floating input, the tangent a forward-mode
 * tape gives f's output for a random tangent v of that input with J v from the jacobian. */
static bool jvp_mode;

static void compare_jvps(const char *what, ct_fn f, void *user, ct_tensor **in, int n) {
  for (int i = 0; i < n; ++i) {
    if (ct_tensor_dtype(in[i]) == CT_INT32) continue;
    ct_tensor *v = NULL, *y = NULL, *jvp = NULL, *j = NULL;
    OK(ct_random_uniform(CTX, ct_tensor_dtype(in[i]), ct_tensor_rank(in[i]), ct_tensor_shape(in[i]), -1.0, 1.0,
                         (uint64_t)(7 + i), &v));
    ct_tape *fw = NULL;
    OK(ct_tape_begin_forward(CTX, &in[i], &v, 1, &fw));
    ct_status s = f(in, n, &y, user);
    OK(ct_tape_end(fw));
    cr_expect_eq(s, CT_OK, "%s: %s", what, ct_errmsg());
    if (s == CT_OK && ct_tensor_dtype(y) != CT_INT32) {
      OK(ct_tape_jvp(fw, y, CT_UNCONNECTED_ZERO, &jvp));
      ct_tensor_free(y);
      y = NULL;
      j = jacobian_of(f, user, in, n, i, false, ct__jacobian_batch_bytes, what);
      int64_t nx = ct_tensor_size(in[i]), ny = ct_tensor_size(jvp);
      double *jv = j ? ts_read(j) : NULL, *vv = ts_read(v), *got = ts_read(jvp), scale = 0, worst = 0;
      for (int64_t r = 0; r < ny; ++r) {
        double want = 0;
        for (int64_t c = 0; jv && c < nx; ++c) want += jv[r * nx + c] * vv[c];
        scale = fmax(scale, fabs(want));
        worst = fmax(worst, fabs(got[r] - want));
      }
      /* a cast to float32 and back rounds the tangent as it rounds the value: 1e-6, not 1e-10 */
      double tol = (ct_tensor_dtype(jvp) == CT_FLOAT64 ? 1e-6 : 1e-4) * (scale > 1 ? scale : 1);
      cr_expect_leq(worst, tol, "%s: input %d: the forward-mode tangent differs from J v by %g", what, i, worst);
      free(jv);
      free(vv);
      free(got);
    }
    ct_tensor *tmp[] = {v, y, jvp, j};
    ct_tensor_free_n(tmp, 4);
    ct_tape_free(fw);
  }
  n_checks++;
  ct_tensor_free_n(in, n);
}

static void check(const char *what, ct_fn f, void *user, ct_tensor **in, int n, const ct_gradcheck_options *o) {
  if (jvp_mode) {
    compare_jvps(what, f, user, in, n);
    return;
  }
  if (jacobian_mode) {
    compare_jacobians(what, f, user, in, n);
    return;
  }
  ct_gradcheck_report r;
  memset(&r, 0, sizeof r);
  ct_status s = ct_gradcheck(CTX, f, user, in, n, o, &r);
  cr_expect_eq(s, CT_OK, "%s: %s: %s", what, ct_status_name(s), ct_errmsg());
  if (s == CT_OK) {
    cr_expect(r.passed, "%s: %s", what, r.message);
    cr_expect_gt(r.checked, 0, "%s: no partial derivative was checked", what);
  }
  n_checks++;
  ct_tensor_free_n(in, n);
}

/* ---- functions under test ------------------------------------------------------------------- */
typedef ct_status (*un_fn)(const ct_tensor *, ct_tensor **);
typedef ct_status (*bin_fn)(const ct_tensor *, const ct_tensor *, ct_tensor **);
typedef ct_status (*red_fn)(const ct_tensor *, const int *, int, bool, ct_tensor **);

/* The elementwise rows' cases come from the table: the public function and the row's domain
 * (inputs on (2, 3), away from kinks and inside the domain). */
typedef struct {
  const char *name;
  un_fn fn;
  double start, step;
} unary_case;

typedef struct {
  const char *name;
  bin_fn fn;
  double a0, da, b0, db; /* a = a0 + da k, b = b0 + db k */
  bool b_alternate;      /* b's sign alternates (division by values away from 0) */
} binary_case;

static unary_case unary_of(const ct_op_info *r) { return (unary_case){r->name, r->unary, r->a0, r->da}; }
static binary_case binary_of(const ct_op_info *r) {
  return (binary_case){r->name, r->binary, r->a0, r->da, r->b0, r->db, r->b_alternate};
}

static const ct_op_info *row_named(const char *name) {
  for (int i = 0; i < CT_OP_COUNT; ++i)
    if (strcmp(ct_ops[i].name, name) == 0) return &ct_ops[i];
  return NULL;
}
static bool elementwise(const ct_op_info *r) { return r->kind == K_UN || r->kind == K_BIN || r->kind == K_CMP; }

/* broadcasting combinations: rank and shape of a, then of b */
static const struct {
  int ra;
  int64_t sa[3];
  int rb;
  int64_t sb[3];
} bcast[] = {
    {2, {2, 3}, 2, {2, 3}}, {2, {2, 3}, 1, {3}},    {2, {2, 1}, 2, {1, 3}},
    {0, {0}, 2, {2, 3}},    {2, {2, 3}, 0, {0}},    {3, {4, 1, 3}, 2, {2, 1}},
};
#define N_BCAST ((int)(sizeof bcast / sizeof *bcast))

static ct_status f_unary(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  return ((const unary_case *)u)->fn(in[0], out);
}
static ct_status f_binary(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  return ((const binary_case *)u)->fn(in[0], in[1], out);
}

static ct_tensor *binary_b(const binary_case *c, int rank, const int64_t *shape) {
  if (!c->b_alternate) return ramp(rank, shape, c->b0, c->db);
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= shape[i];
  double v[32];
  for (int64_t k = 0; k < n; ++k) v[k] = (k % 2 ? -1 : 1) * (c->b0 + c->db * (double)k);
  return values(rank, shape, v);
}

static void case_unary(const ct_op_info *r) {
  const unary_case c = unary_of(r);
  ct_tensor *in[1] = {ramp(2, SH(2, 3), c.start, c.step)};
  check(r->name, f_unary, (void *)&c, in, 1, NULL);
}

static void case_binary(const ct_op_info *r) {
  const binary_case c = binary_of(r);
  for (int k = 0; k < N_BCAST; ++k) {
    char what[96];
    snprintf(what, sizeof what, "%s broadcast case %d", r->name, k);
    ct_tensor *in[2] = {ramp(bcast[k].ra, bcast[k].sa, c.a0, c.da), binary_b(&c, bcast[k].rb, bcast[k].sb)};
    check(what, f_binary, (void *)&c, in, 2, NULL);
  }
}

/* ---- reductions ----------------------------------------------------------------------------- */
typedef struct {
  red_fn fn;
  int axes[3];
  int n_axes; /* NO_AXES: every axis (axes = NULL) */
  bool keepdims;
} red_args;

static ct_status f_reduce(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const red_args *a = u;
  return a->fn(in[0], a->n_axes == NO_AXES ? NULL : a->axes, a->n_axes == NO_AXES ? 0 : a->n_axes, a->keepdims, out);
}

static const struct {
  int axes[3];
  int n;
} axis_sets[] = {{{0}, NO_AXES}, {{0}, 1}, {{1}, 1}, {{-1}, 1}, {{0, 2}, 2}, {{1, 2}, 2}, {{0, 1, 2}, 3}};

static void reduce_all_axes(const char *op, red_fn fn, double start, double step, bool distinct) {
  for (size_t k = 0; k < sizeof axis_sets / sizeof *axis_sets; ++k)
    for (int keep = 0; keep < 2; ++keep) {
      red_args a = {fn, {0}, axis_sets[k].n, keep != 0};
      memcpy(a.axes, axis_sets[k].axes, sizeof a.axes);
      char what[96];
      snprintf(what, sizeof what, "%s axis set %zu keepdims %d", op, k, keep);
      ct_tensor *in[1] = {distinct ? shuffled(3, SH(2, 3, 2), start, step) : ramp(3, SH(2, 3, 2), start, step)};
      check(what, f_reduce, &a, in, 1, NULL);
    }
}

static void case_sum(const char *op) {
  reduce_all_axes(op, ct_sum, -1.1, 0.3, false);
  reduce_all_axes("Mean", ct_mean, -1.1, 0.3, false); /* mean = sum / count */
}
static void case_max(const char *op) { reduce_all_axes(op, ct_max, -1.7, 0.3, true); }
static void case_min(const char *op) { reduce_all_axes(op, ct_min, -1.7, 0.3, true); }
static void case_prod(const char *op) {
  reduce_all_axes(op, ct_prod, 0.3, 0.15, true);
  /* zeros: one zero in a group (its partial is the product of the others), two in another */
  const double v[12] = {0.5, 0, 1.5, -0.7, 1.2, 0.9, 0, 0, 1.3, 0.8, -1.1, 0.6};
  for (size_t k = 0; k < sizeof axis_sets / sizeof *axis_sets; ++k) {
    red_args a = {ct_prod, {0}, axis_sets[k].n, k % 2 == 0};
    memcpy(a.axes, axis_sets[k].axes, sizeof a.axes);
    char what[96];
    snprintf(what, sizeof what, "%s with zeros, axis set %zu", op, k);
    ct_tensor *in[1] = {values(3, SH(2, 3, 2), v)};
    check(what, f_reduce, &a, in, 1, NULL);
  }
}

/* ---- shape and movement --------------------------------------------------------------------- */
typedef struct {
  int rank;
  int64_t shape[4];
  int perm[4];
  bool has_perm;
  int64_t begin[3], end[3], step[3];
  bool has_begin, has_end;
  int axis;
} move_args;

static ct_status f_reshape(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const move_args *a = u;
  return ct_reshape(in[0], a->rank, a->shape, out);
}
static ct_status f_transpose(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const move_args *a = u;
  return ct_transpose(in[0], a->has_perm ? a->perm : NULL, out);
}
static ct_status f_slice(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const move_args *a = u;
  return ct_slice(in[0], a->has_begin ? a->begin : NULL, a->has_end ? a->end : NULL, a->step, out);
}
static ct_status f_broadcast(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const move_args *a = u;
  return ct_broadcast_to(in[0], a->rank, a->shape, out);
}
static ct_status f_concat(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  return ct_concat(in, n, ((const move_args *)u)->axis, out);
}
static ct_status f_gather(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  return ct_gather(in[0], in[1], ((const move_args *)u)->axis, out);
}

static void case_reshape(const char *op) {
  move_args a[] = {{.rank = 2, .shape = {3, 2}}, {.rank = 1, .shape = {-1}}, {.rank = 4, .shape = {1, 2, 3, 1}}};
  for (int k = 0; k < 3; ++k) {
    ct_tensor *in[1] = {ramp(2, SH(2, 3), -0.5, 0.3)};
    check(op, f_reshape, &a[k], in, 1, NULL);
  }
}

static void case_transpose(const char *op) {
  move_args a2 = {.has_perm = false};
  ct_tensor *in[1] = {ramp(2, SH(2, 3), -0.5, 0.3)};
  check(op, f_transpose, &a2, in, 1, NULL);
  move_args a3[] = {{.perm = {2, 0, 1}, .has_perm = true}, {.perm = {1, 0, 2}, .has_perm = true}};
  for (int k = 0; k < 2; ++k) {
    ct_tensor *in3[1] = {ramp(3, SH(2, 3, 2), -0.5, 0.3)};
    check(op, f_transpose, &a3[k], in3, 1, NULL);
  }
}

static void case_slice(const char *op) {
  struct {
    int rank;
    int64_t shape[3];
    move_args a;
  } cs[] = {
      {2, {4, 5}, {.begin = {1, 0}, .end = {4, 5}, .step = {1, 2}, .has_begin = true, .has_end = true}},
      {2, {4, 5}, {.step = {-1, -2}}},                                             /* reversed, every other */
      {2, {4, 5}, {.begin = {-1, 3}, .end = {0, -6}, .step = {-2, -1}, .has_begin = true, .has_end = true}},
      {3, {3, 4, 2}, {.begin = {0, 1, 0}, .end = {3, 4, 2}, .step = {2, 2, 1}, .has_begin = true, .has_end = true}},
      {3, {3, 4, 2}, {.begin = {1, -3, 1}, .end = {2, 100, 2}, .step = {1, 3, 1}, .has_begin = true, .has_end = true}},
  };
  for (size_t k = 0; k < sizeof cs / sizeof *cs; ++k) {
    char what[64];
    snprintf(what, sizeof what, "%s case %zu", op, k);
    ct_tensor *in[1] = {ramp(cs[k].rank, cs[k].shape, -1.0, 0.1)};
    check(what, f_slice, &cs[k].a, in, 1, NULL);
  }
}

static void case_concat(const char *op) {
  move_args ax1 = {.axis = 1}, ax0 = {.axis = 0}, axm = {.axis = -1};
  ct_tensor *a[3] = {ramp(2, SH(2, 3), -1, 0.2), ramp(2, SH(2, 1), 0.5, 0.3), ramp(2, SH(2, 2), 1.5, -0.4)};
  check("ConcatV2 axis 1, three inputs", f_concat, &ax1, a, 3, NULL);
  ct_tensor *b[2] = {ramp(2, SH(1, 3), -1, 0.2), ramp(2, SH(2, 3), 0.5, 0.3)};
  check("ConcatV2 axis 0", f_concat, &ax0, b, 2, NULL);
  ct_tensor *c[3] = {ramp(3, SH(2, 1, 2), -1, 0.2), ramp(3, SH(2, 1, 1), 0.5, 0.3), ramp(3, SH(2, 1, 3), 1, 0.1)};
  check("ConcatV2 axis -1", f_concat, &axm, c, 3, NULL);
  (void)op;
}

static void case_broadcast(const char *op) {
  struct {
    int rank;
    int64_t shape[3];
    move_args a;
  } cs[] = {
      {1, {3}, {.rank = 2, .shape = {2, 3}}},
      {2, {2, 1}, {.rank = 2, .shape = {2, 4}}},
      {0, {0}, {.rank = 2, .shape = {2, 2}}},
      {2, {1, 3}, {.rank = 3, .shape = {2, 2, 3}}},
  };
  for (size_t k = 0; k < sizeof cs / sizeof *cs; ++k) {
    ct_tensor *in[1] = {ramp(cs[k].rank, cs[k].shape, -0.4, 0.7)};
    check(op, f_broadcast, &cs[k].a, in, 1, NULL);
  }
}

static void case_gather(const char *op) {
  move_args a0 = {.axis = 0}, a1 = {.axis = 1};
  const double i0[3] = {2, 0, 2}; /* a repeated index: its gradients add up */
  ct_tensor *in[2] = {ramp(2, SH(4, 3), -1, 0.15), ints(1, SH(3), i0)};
  check("GatherV2 axis 0", f_gather, &a0, in, 2, NULL);
  const double i1[4] = {3, 1, 1, 0};
  ct_tensor *in1[2] = {ramp(2, SH(2, 4), -1, 0.15), ints(2, SH(2, 2), i1)};
  check("GatherV2 axis 1, 2-d indices", f_gather, &a1, in1, 2, NULL);
  const double i2[2] = {5, 1}; /* out of range: zeros, no gradient */
  ct_tensor *in2[2] = {ramp(2, SH(3, 2), -1, 0.15), ints(1, SH(2), i2)};
  check("GatherV2 out of range", f_gather, &a0, in2, 2, NULL);
  (void)op;
}

/* The gradient ops of slice and gather are produced by differentiating slice and gather: the
 * function computes that gradient with an inner tape, for the output gradient v = input 1. */
static ct_status f_inner_grad_slice(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const move_args *a = u;
  ct_tape *t = NULL;
  ct_tensor *y = NULL;
  ct_status s = ct_tape_begin(CTX, NULL, &t);
  if (s == CT_OK) s = ct_tape_watch(t, in[0]);
  if (s == CT_OK) s = ct_slice(in[0], a->has_begin ? a->begin : NULL, a->has_end ? a->end : NULL, a->step, &y);
  if (t) ct_tape_end(t);
  if (s == CT_OK) s = ct_tape_gradient(t, &y, 1, (ct_tensor *const *)&in[0], 1, &in[1], CT_UNCONNECTED_ZERO, out);
  ct_tensor_free(y);
  ct_tape_free(t);
  return s;
}

static ct_status f_inner_grad_gather(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const move_args *a = u;
  ct_tape *t = NULL;
  ct_tensor *y = NULL;
  ct_status s = ct_tape_begin(CTX, NULL, &t);
  if (s == CT_OK) s = ct_tape_watch(t, in[0]);
  if (s == CT_OK) s = ct_gather(in[0], in[1], a->axis, &y);
  if (t) ct_tape_end(t);
  if (s == CT_OK) s = ct_tape_gradient(t, &y, 1, (ct_tensor *const *)&in[0], 1, &in[2], CT_UNCONNECTED_ZERO, out);
  ct_tensor_free(y);
  ct_tape_free(t);
  return s;
}

static void case_slice_grad(const char *op) {
  move_args a = {.begin = {3, 0}, .end = {0, 5}, .step = {-2, 2}, .has_begin = true, .has_end = true};
  /* slice of (4, 5): rows 3, 1; columns 0, 2, 4 -> (2, 3) */
  ct_tensor *in[2] = {ramp(2, SH(4, 5), -1, 0.1), ramp(2, SH(2, 3), 0.3, 0.25)};
  check(op, f_inner_grad_slice, &a, in, 2, NULL);
}

static void case_gather_grad(const char *op) {
  move_args a = {.axis = 1};
  const double idx[3] = {2, 0, 2};
  ct_tensor *in[3] = {ramp(2, SH(2, 4), -1, 0.1), ints(1, SH(3), idx), ramp(2, SH(2, 3), 0.3, 0.25)};
  check(op, f_inner_grad_gather, &a, in, 3, NULL);
}

/* ---- where, cast, identity ------------------------------------------------------------------ */
static ct_status f_where(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  (void)u;
  return ct_where(in[0], in[1], in[2], out);
}
static ct_status f_cast_round_trip(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  (void)u;
  ct_tensor *f = NULL;
  ct_status s = ct_cast(in[0], CT_FLOAT32, &f);
  if (s == CT_OK) s = ct_cast(f, FDT, out);
  ct_tensor_free(f);
  return s;
}
static ct_status f_cast_same(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  (void)u;
  ct_tensor *sq = NULL;
  ct_status s = ct_square(in[0], &sq);
  if (s == CT_OK) s = ct_cast(sq, FDT, out);
  ct_tensor_free(sq);
  return s;
}
static ct_status f_identity(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  (void)u;
  return ct_identity(in[0], out);
}

static void case_select(const char *op) {
  const double m1[6] = {1, 0, 0, 1, 1, 0}, m2[2] = {0, 1};
  ct_tensor *a[3] = {ints(2, SH(2, 3), m1), ramp(2, SH(2, 3), -1, 0.3), ramp(1, SH(3), 0.7, -0.2)};
  check("SelectV2 int mask, b broadcast", f_where, NULL, a, 3, NULL);
  ct_tensor *b[3] = {ints(2, SH(2, 1), m2), ramp(0, NULL, 0.4, 0), ramp(2, SH(1, 3), -0.8, 0.5)};
  check("SelectV2 every operand broadcast", f_where, NULL, b, 3, NULL);
  const double fc[6] = {0.5, -1, 0, 2, 0, -0.3}; /* a float condition: nonzero is true, no gradient */
  ct_tensor *c[3] = {values(2, SH(2, 3), fc), ramp(2, SH(2, 3), -1, 0.3), ramp(2, SH(2, 3), 2, -0.3)};
  check("SelectV2 float condition", f_where, NULL, c, 3, NULL);
  (void)op;
}

static void case_cast(const char *op) {
  /* float32 rounding needs a wider step: the function is linear, so the difference is exact */
  ct_gradcheck_options o = {.eps = 1e-2};
  ct_tensor *a[1] = {ramp(2, SH(2, 3), -1.25, 0.5)};
  check("Cast float64 -> float32 -> float64", f_cast_round_trip, NULL, a, 1, &o);
  ct_tensor *b[1] = {ramp(2, SH(2, 3), -1.25, 0.5)};
  check("Cast to the same dtype", f_cast_same, NULL, b, 1, NULL);
  /* a cast to int32 is a constant: NULL gradient, nothing recorded */
  ct_tensor *x = ramp(1, SH(3), 0.5, 1), *i = NULL, *f = NULL, *g = NULL;
  ct_tape *t = NULL;
  OK(ct_tape_begin(CTX, NULL, &t));
  OK(ct_tape_watch(t, x));
  OK(ct_cast(x, CT_INT32, &i));
  OK(ct_cast(i, FDT, &f));
  OK(ct_tape_end(t));
  cr_expect_eq(ct_tape_size(t), 0, "%s to int32 recorded", op);
  OK(ct_tape_gradient1(t, f, x, &g));
  cr_expect_null(g, "%s to int32 has a gradient", op);
  ct_tensor *tmp[] = {x, i, f, g};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(t);
}

static void case_identity(const char *op) {
  ct_tensor *a[1] = {ramp(2, SH(2, 3), -1, 0.3)};
  check(op, f_identity, NULL, a, 1, NULL);
}

/* ---- matmul --------------------------------------------------------------------------------- */
typedef struct {
  bool ta, tb;
} mm_args;

static ct_status f_matmul(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const mm_args *a = u;
  return ct_matmul(in[0], in[1], a->ta, a->tb, out);
}

/* a (.., m, k) or its transpose, b (.., k, n) or its transpose; m, k, n = 2, 3, 4 */
typedef struct {
  int ra;
  int64_t ba[2];
  int rb;
  int64_t bb[2];
} mm_batch;
static const mm_batch mm_batches[] = {
    {0, {0}, 0, {0}},       /* plain matrices */
    {1, {2}, 0, {0}},       /* a batch of a against one b */
    {2, {2, 1}, 1, {3}},    /* (2, 1) against (3): batch (2, 3) */
    {1, {1}, 1, {2}},       /* (1) against (2) */
};

static void mm_operands(const mm_batch *bt, bool ta, bool tb, ct_tensor **a, ct_tensor **b) {
  int64_t sa[4], sb[4];
  for (int i = 0; i < bt->ra; ++i) sa[i] = bt->ba[i];
  for (int i = 0; i < bt->rb; ++i) sb[i] = bt->bb[i];
  sa[bt->ra] = ta ? 3 : 2;
  sa[bt->ra + 1] = ta ? 2 : 3;
  sb[bt->rb] = tb ? 4 : 3;
  sb[bt->rb + 1] = tb ? 3 : 4;
  *a = ramp(bt->ra + 2, sa, -0.9, 0.13);
  *b = ramp(bt->rb + 2, sb, 0.8, -0.11);
}

static void case_matmul(const char *op) {
  for (size_t k = 0; k < sizeof mm_batches / sizeof *mm_batches; ++k)
    for (int f = 0; f < 4; ++f) {
      mm_args a = {f & 1, (f & 2) != 0};
      char what[96];
      snprintf(what, sizeof what, "%s batch case %zu ta %d tb %d", op, k, a.ta, a.tb);
      ct_tensor *in[2];
      mm_operands(&mm_batches[k], a.ta, a.tb, &in[0], &in[1]);
      check(what, f_matmul, &a, in, 2, NULL);
    }
}

/* ---- a user-defined op with a registered gradient (the Custom row) -------------------------- */
static ct_status f_contrast(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)u;
  return ct_custom_op_call(CTX, "TestContrast", in, n, out);
}

static void case_custom(const char *op) {
  OK(ts_contrast_register("TestContrast", true));
  ct_tensor *in[2] = {ramp(3, SH(2, 2, 2), -0.7, 0.3), ramp(0, NULL, 0.35, 0)};
  check(op, f_contrast, NULL, in, 2, NULL);
}

/* ---- ops without a gradient by design -------------------------------------------------------- */
/* Builds the op from a watched float64 x (shape (2, 3), no zeros, no halves) and asserts that
 * nothing is recorded and the gradient is NULL, without an error. */
/* x: six values, [2, 3], or [1, 2, 3, 1] (an image) where image4 is set */
static void expect_no_gradient(const char *op, ct_status (*build)(const ct_tensor *x, ct_tensor **y), bool image4) {
  const double xv[6] = {-1.3, 0.4, 2.2, -0.6, 1.7, 0.9};
  ct_tensor *x = image4 ? values(4, SH(1, 2, 3, 1), xv) : values(2, SH(2, 3), xv), *y = NULL, *yf = NULL, *g = NULL;
  ct_tape *t = NULL;
  OK(ct_tape_begin(CTX, NULL, &t));
  OK(ct_tape_watch(t, x));
  ct_status s = build(x, &y);
  cr_expect_eq(s, CT_OK, "%s: %s", op, ct_errmsg());
  if (s == CT_OK) {
    if (ct_tensor_dtype(y) == CT_INT32) OK(ct_cast(y, FDT, &yf));
    else yf = ct_tensor_retain(y);
    OK(ct_tape_end(t));
    cr_expect_eq(ct_tape_size(t), 0, "%s was recorded", op);
    ct_status gs = ct_tape_gradient1(t, yf, x, &g);
    cr_expect_eq(gs, CT_OK, "%s: gradient failed: %s", op, ct_errmsg());
    cr_expect_null(g, "%s has a gradient", op);
  }
  ct_tensor *tmp[] = {x, y, yf, g};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(t);
}

/* an elementwise row without a gradient: its public function on x (binary: x with itself) */
static const ct_op_info *nograd_row;
static ct_status b_elementwise(const ct_tensor *x, ct_tensor **y) {
  return nograd_row->kind == K_UN ? nograd_row->unary(x, y) : nograd_row->binary(x, x, y);
}
static ct_status b_stop(const ct_tensor *x, ct_tensor **y) { return ct_stop_gradient(x, y); }
static ct_status b_argmax(const ct_tensor *x, ct_tensor **y) { return ct_argmax(x, 1, y); }
static ct_status b_argmin(const ct_tensor *x, ct_tensor **y) { return ct_argmin(x, 0, y); }
static ct_status b_one_hot(const ct_tensor *x, ct_tensor **y) {
  ct_tensor *i = NULL;
  ct_status s = ct_argmax(x, 1, &i);
  if (s == CT_OK) s = ct_one_hot(i, 3, FDT, y);
  ct_tensor_free(i);
  return s;
}

static ct_status b_argsort(const ct_tensor *x, ct_tensor **y) { return ct_argsort(x, 1, true, y); }
/* the fused attention's gradient row on q = k = v = dy = x [2, 3], o from a constant copy of x */
static ct_status b_attention_grad(const ct_tensor *x, ct_tensor **y) {
  ct_attrs at = ct__attrs(CT_AT_ATTENTION);
  at.attention.causal = true;
  at.attention.scale = 0.5;
  ct_tensor *c = NULL, *o = NULL;
  ct_status s = ct_stop_gradient(x, &c);
  const ct_tensor *fwd[3] = {c, c, c};
  if (s == CT_OK) s = ct__run(CT_OP_ATTENTION, fwd, 3, &at, &o);
  const ct_tensor *args[5] = {x, x, x, o, x};
  if (s == CT_OK) s = ct__run(CT_OP_ATTENTION_GRAD, args, 5, &at, y);
  ct_tensor_free(c);
  ct_tensor_free(o);
  return s;
}

/* the filter's and the bias's gradients of a 1 x 1 convolution of the image x [1, 2, 3, 1], dy = x */
static ct_status b_conv_filter_bias(const ct_tensor *x, ct_tensor **y) {
  ct_attrs at = ct__attrs(CT_AT_WINDOW);
  at.window.rank = 4;
  for (int i = 0; i < 4; ++i) at.window.shape[i] = 1;
  at.window.stride[0] = at.window.stride[1] = 1;
  const ct_tensor *args[2] = {x, x};
  return ct__run(CT_OP_CONV2D_BP_FILTER_BIAS, args, 2, &at, y);
}

static const struct {
  const char *op;
  ct_status (*build)(const ct_tensor *, ct_tensor **);
  bool image4; /* x as an image [1, 2, 3, 1] */
} nograd_cases[] = {
    {"StopGradient", b_stop, false}, {"ArgMax", b_argmax, false}, {"ArgMin", b_argmin, false},
    {"OneHot", b_one_hot, false}, {"ArgSort", b_argsort, false}, {"FusedAttentionGrad", b_attention_grad, false},
    {"Conv2DBackpropFilterBias", b_conv_filter_bias, true},
};

static void case_nograd(const char *op) {
  const ct_op_info *r = row_named(op);
  if (r && elementwise(r)) {
    nograd_row = r;
    expect_no_gradient(op, b_elementwise, false);
    return;
  }
  for (size_t i = 0; i < sizeof nograd_cases / sizeof *nograd_cases; ++i)
    if (strcmp(nograd_cases[i].op, op) == 0) {
      expect_no_gradient(op, nograd_cases[i].build, nograd_cases[i].image4);
      return;
    }
  cr_expect_fail("no NULL-gradient case for %s", op);
}

/* ---- the neural-network rows (their cases live beside the nn tests) ------------------------- */
#include "nn_gradcheck_cases.inc"

/* ---- the table of cases: op name -> check ---------------------------------------------------- */
typedef void (*case_fn)(const char *op);
static const struct {
  const char *op;
  case_fn fn;
} cases[] = {
    {"SelectV2", case_select},   {"Cast", case_cast},           {"Identity", case_identity},
    {"Sum", case_sum},           {"Max", case_max},             {"Min", case_min},
    {"Prod", case_prod},         {"Reshape", case_reshape},     {"Transpose", case_transpose},
    {"StridedSlice", case_slice}, {"StridedSliceGrad", case_slice_grad}, {"ConcatV2", case_concat},
    {"BroadcastTo", case_broadcast}, {"GatherV2", case_gather}, {"GatherGrad", case_gather_grad},
    {"BatchMatMulV2", case_matmul}, {"Custom", case_custom},
    NN_GRADCHECK_CASES
    /* non-differentiable by design: NULL gradients (the elementwise rows' cases come from the table) */
    {"StopGradient", case_nograd}, {"ArgMax", case_nograd},
    {"ArgMin", case_nograd},     {"OneHot", case_nograd},
    {"ArgSort", case_nograd},
    {"FusedAttentionGrad", case_nograd}, {"Conv2DBackpropFilterBias", case_nograd},
};
#define N_CASES ((int)(sizeof cases / sizeof *cases))

static void setup(void) { CTX = ts_ctx(); }
static void teardown(void) {
  ct_context_free(CTX);
  CTX = NULL;
}

static void walk_table(void) {
  int missing = 0;
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    const char *name = ct_ops[i].name;
    const ct_op_info *r = &ct_ops[i];
    if (elementwise(r)) { /* generated from the row */
      if (r->grad == ct__nograd) {
        case_nograd(name);
      } else if (!r->has_domain || (r->kind == K_UN ? !r->unary : !r->binary)) {
        cr_expect_fail("op %s (row %s of lib/ops.def) has a gradient and no test domain: give its row DOM(...)", name,
                       r->stem);
        missing++;
      } else if (r->kind == K_UN) {
        case_unary(r);
      } else {
        case_binary(r);
      }
      continue;
    }
    int found = -1;
    for (int k = 0; k < N_CASES && found < 0; ++k)
      if (strcmp(cases[k].op, name) == 0) found = k;
    bool nograd = ct_ops[i].grad == ct__nograd;
    if (found < 0) {
      if (!nograd) {
        cr_expect_fail("op %s (row %d of lib/ops.def) has a gradient and no gradient check: add a case for it to "
                       "the table in tests/test_gradcheck.c",
                       name, i);
        missing++;
      }
      continue;
    }
    cr_expect_eq(cases[found].fn == case_nograd, nograd, "op %s: the table says %s, the case says %s", name,
                 nograd ? "NOGRAD" : "differentiable", cases[found].fn == case_nograd ? "NOGRAD" : "differentiable");
    cases[found].fn(name);
  }
  /* every case names a row of the table (a renamed op cannot leave its check behind) */
  for (int k = 0; k < N_CASES; ++k) {
    bool known = false;
    for (int i = 0; i < CT_OP_COUNT; ++i) known |= strcmp(cases[k].op, ct_ops[i].name) == 0;
    cr_expect(known, "case %s names no op of the table", cases[k].op);
  }
  cr_expect_eq(missing, 0);
  cr_expect_gt(n_checks, 100);
}

Test(gradcheck, every_op_of_the_table, .init = setup, .fini = teardown) { walk_table(); }

/* Jacobians push a batch of seeds through the backward pass (each op's batching rule, or its
 * gradient once per seed): for every case of every op, the batched jacobian is the looped one. */
Test(gradcheck, batched_jacobians_of_every_op, .init = setup, .fini = teardown) {
  jacobian_mode = true;
  walk_table();
}

/* A non-persistent tape lives through every batch of a split jacobian and is used up after it. */
Test(gradcheck, split_jacobian_on_a_non_persistent_tape, .init = setup, .fini = teardown) {
  ct_tensor *x = ramp(1, SH(5), -1.0, 0.5), *y = NULL, *j = NULL;
  ct_tape *t = NULL;
  OK(ct_tape_begin(CTX, NULL, &t));
  OK(ct_tape_watch(t, x));
  OK(ct_tanh(x, &y));
  OK(ct_tape_end(t));
  uint64_t saved_bytes = ct__jacobian_batch_bytes;
  ct__jacobian_batch_bytes = 1; /* one seed per batch: five backward passes */
  ct_status s = ct_tape_jacobian(t, y, x, CT_UNCONNECTED_NONE, &j);
  ct__jacobian_batch_bytes = saved_bytes;
  OK(s);
  double *yv = ts_read(y), want[25] = {0};
  for (int i = 0; i < 5; ++i) want[6 * i] = 1 - yv[i] * yv[i];
  ts_assert_close(j, want, 25, 1e-12, 1e-9, "diag(1 - tanh(x)^2)");
  cr_assert_eq(ct_tape_size(t), 0, "released after the last batch");
  ct_tensor *again = NULL;
  EXPECT_STATUS(ct_tape_jacobian(t, y, x, CT_UNCONNECTED_NONE, &again), CT_ERR_TAPE_USED);
  free(yv);
  ct_tensor *tmp[] = {x, y, j};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(t);
}

/* Forward mode: every differentiable op's tangent is J v (its JVP comes from its gradient). */
Test(gradcheck, jvps_of_every_op, .init = setup, .fini = teardown) {
  jvp_mode = true;
  walk_table();
}

/* ---- composites (not rows of the table, built from them) ------------------------------------- */
typedef struct {
  int axis;
  bool log;
} sm_args;
static ct_status f_softmax(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const sm_args *a = u;
  return a->log ? ct_log_softmax(in[0], a->axis, out) : ct_softmax(in[0], a->axis, out);
}

Test(gradcheck, composites, .init = setup, .fini = teardown) {
  for (size_t k = 0; k < sizeof axis_sets / sizeof *axis_sets; ++k) {
    red_args a = {ct_logsumexp, {0}, axis_sets[k].n, k % 2 == 1};
    memcpy(a.axes, axis_sets[k].axes, sizeof a.axes);
    ct_tensor *in[1] = {ramp(3, SH(2, 3, 2), -1.1, 0.3)};
    check("logsumexp", f_reduce, &a, in, 1, NULL);
  }
  for (int axis = -1; axis <= 1; ++axis)
    for (int lg = 0; lg < 2; ++lg) {
      sm_args a = {axis, lg != 0};
      ct_tensor *in[1] = {shuffled(2, SH(2, 3), -1.1, 0.4)};
      check(lg ? "log_softmax" : "softmax", f_softmax, &a, in, 1, NULL);
    }
}

/* squeeze, expand_dims, clip_by_value, pad, tile, split and cumsum: built from rows of the table;
 * their gradients are checked here as functions of their own */
typedef struct {
  int which, axis;
  int64_t v[8];
  double value;
} sc_args;
enum { SC_SQUEEZE, SC_EXPAND, SC_CLIP, SC_PAD, SC_TILE, SC_SPLIT, SC_CUMSUM };
static ct_status f_shape_composite(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const sc_args *a = u;
  switch (a->which) {
  case SC_SQUEEZE: return ct_squeeze(in[0], a->axis == NO_AXES ? NULL : &a->axis, a->axis == NO_AXES ? 0 : 1, out);
  case SC_EXPAND: return ct_expand_dims(in[0], a->axis, out);
  case SC_CLIP: return ct_clip_by_value(in[0], -0.40, a->value, out);
  case SC_PAD: return ct_pad(in[0], a->v, a->value, out);
  case SC_TILE: return ct_tile(in[0], a->v, out);
  case SC_CUMSUM: return ct_cumsum(in[0], a->axis, out);
  default: break;
  }
  /* split, then concatenate the parts in reverse order (and the middle one twice) */
  ct_tensor *p[3] = {0}, *q[4];
  ct_status s = ct_split(in[0], a->v, 3, a->axis, p);
  if (s != CT_OK) return s;
  q[0] = p[2], q[1] = p[1], q[2] = p[0], q[3] = p[1];
  s = ct_concat(q, 4, a->axis, out);
  ct_tensor_free_n(p, 3);
  return s;
}

static void shape_composites(void) {
  static const struct {
    const char *what;
    sc_args a;
    int rank;
    int64_t shape[3];
  } cases[] = {
      {"squeeze all", {SC_SQUEEZE, NO_AXES, {0}, 0}, 3, {2, 1, 3}},
      {"squeeze axis -2", {SC_SQUEEZE, -2, {0}, 0}, 3, {2, 1, 3}},
      {"expand_dims 0", {SC_EXPAND, 0, {0}, 0}, 2, {2, 3}},
      {"expand_dims -1", {SC_EXPAND, -1, {0}, 0}, 2, {2, 3}},
      /* the ramp's values -1.13 + 0.21 k stay 0.1 away from the bounds: lo -0.40, hi 0.45 */
      {"clip_by_value", {SC_CLIP, 0, {0}, 0.45}, 2, {3, 4}},
      {"pad 0", {SC_PAD, 0, {1, 0, 2, 1}, 0}, 2, {2, 3}},
      {"pad 2.5", {SC_PAD, 0, {0, 2, 1, 1, 0, 1}, 2.5}, 3, {2, 1, 3}},
      {"tile", {SC_TILE, 0, {2, 3}, 0}, 2, {2, 3}},
      {"tile rank 3", {SC_TILE, 0, {1, 3, 2}, 0}, 3, {2, 1, 3}},
      {"split axis 1", {SC_SPLIT, 1, {1, 3, 1}, 0}, 2, {2, 5}},
      {"split axis -2", {SC_SPLIT, -2, {2, 0, 1}, 0}, 2, {3, 2}},
      {"cumsum axis 0", {SC_CUMSUM, 0, {0}, 0}, 2, {5, 3}},
      {"cumsum axis -1", {SC_CUMSUM, -1, {0}, 0}, 3, {2, 2, 7}},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; ++k) {
    ct_tensor *in[1] = {ramp(cases[k].rank, cases[k].shape, -1.13, 0.21)};
    check(cases[k].what, f_shape_composite, (void *)&cases[k].a, in, 1, NULL);
  }
}
Test(gradcheck, shape_composites, .init = setup, .fini = teardown) { shape_composites(); }
/* forward mode through the same rows, and the batched jacobians against the looped ones */
Test(gradcheck, shape_composites_jvp, .init = setup, .fini = teardown) {
  jvp_mode = true;
  shape_composites();
}
Test(gradcheck, shape_composites_jacobian, .init = setup, .fini = teardown) {
  jacobian_mode = true;
  shape_composites();
}

/* gather_nd, scatter, scatter_add and boolean_mask: GatherV2 and GatherGrad rows on a row view
 * (lib/ops_index.c); repeated indices in every case. Inputs: x, the int32 indices (or mask), and
 * the updates. */
enum { IX_GATHER_ND, IX_SCATTER, IX_SCATTER_ADD, IX_BOOLEAN_MASK };
static ct_status f_index_composite(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  switch (*(const int *)u) {
  case IX_GATHER_ND: return ct_gather_nd(in[0], in[1], out);
  case IX_SCATTER: return ct_scatter(in[0], in[1], in[2], out);
  case IX_SCATTER_ADD: return ct_scatter_add(in[0], in[1], in[2], out);
  default: return ct_boolean_mask(in[0], in[1], out);
  }
}

static void index_composites(void) {
  static const int g = IX_GATHER_ND, sc = IX_SCATTER, sa = IX_SCATTER_ADD, bm = IX_BOOLEAN_MASK;
  /* elements of a (3, 4) matrix, (1, 2) three times */
  const double e[8] = {1, 2, 0, 3, 1, 2, 2, 0};
  ct_tensor *in0[2] = {ramp(2, SH(3, 4), -1.13, 0.21), ints(2, SH(4, 2), e)};
  check("gather_nd elements", f_index_composite, (void *)&g, in0, 2, NULL);
  /* rows of a (3, 2, 2) tensor, row 2 twice, indices of shape (2, 2, 1) */
  const double r[4] = {2, 0, 2, 1};
  ct_tensor *in1[2] = {ramp(3, SH(3, 2, 2), -1.13, 0.21), ints(3, SH(2, 2, 1), r)};
  check("gather_nd rows", f_index_composite, (void *)&g, in1, 2, NULL);
  for (int k = 0; k < 2; ++k) {
    ct_tensor *in2[3] = {ramp(2, SH(3, 4), -1.13, 0.21), ints(2, SH(4, 2), e), ramp(1, SH(4), 0.7, -0.3)};
    check(k ? "scatter_add elements" : "scatter elements", f_index_composite, (void *)(k ? &sa : &sc), in2, 3, NULL);
    ct_tensor *in3[3] = {ramp(3, SH(3, 2, 2), -1.13, 0.21), ints(2, SH(3, 1), (const double[]){2, 0, 2}),
                         ramp(3, SH(3, 2, 2), 0.7, -0.15)};
    check(k ? "scatter_add rows" : "scatter rows", f_index_composite, (void *)(k ? &sa : &sc), in3, 3, NULL);
  }
  ct_tensor *in4[2] = {ramp(3, SH(3, 2, 2), -1.13, 0.21), ints(2, SH(3, 2), (const double[]){1, 0, 0, 1, 1, 1})};
  check("boolean_mask", f_index_composite, (void *)&bm, in4, 2, NULL);
}
Test(gradcheck, index_composites, .init = setup, .fini = teardown) { index_composites(); }
Test(gradcheck, index_composites_jvp, .init = setup, .fini = teardown) {
  jvp_mode = true;
  index_composites();
}
Test(gradcheck, index_composites_jacobian, .init = setup, .fini = teardown) {
  jacobian_mode = true;
  index_composites();
}

/* cumprod (inputs with zeros), sort, top_k and einsum: built from rows of the table (slices,
 * padding, products; ArgSort and a gather; transposes, sums and matrix products); their gradients
 * are checked here as functions of their own. Sorted inputs have distinct values (no tie within a
 * finite-difference step). */
typedef struct {
  int which, axis;
  bool descending;
  int64_t k;
  const char *eq;
} so_args;
enum { SO_CUMPROD, SO_SORT, SO_TOP_K, SO_EINSUM };
static ct_status f_sort_composite(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  const so_args *a = u;
  switch (a->which) {
  case SO_CUMPROD: return ct_cumprod(in[0], a->axis, out);
  case SO_SORT: return ct_sort(in[0], a->axis, a->descending, out);
  case SO_TOP_K: return ct_top_k(in[0], a->k, a->axis, out, NULL);
  default: return ct_einsum(a->eq, in, n, out);
  }
}

static void sort_composites(void) {
  /* zeros: one, two, first and last */
  const double z1[6] = {1.5, -2, 0, 3, 0.5, 2}, z2[6] = {0, 2, 0, -1.5, 0.5, 0}, z3[8] = {1.2, 0, -0.7, 1.1, 0, 0.9, 1.3, -1};
  static const so_args cp0 = {SO_CUMPROD, 0, false, 0, NULL}, cp1 = {SO_CUMPROD, -1, false, 0, NULL};
  check("cumprod, one zero", f_sort_composite, (void *)&cp0, (ct_tensor *[]){values(1, SH(6), z1)}, 1, NULL);
  check("cumprod, zeros first and last", f_sort_composite, (void *)&cp0, (ct_tensor *[]){values(1, SH(6), z2)}, 1, NULL);
  check("cumprod axis -1, two zeros a row", f_sort_composite, (void *)&cp1, (ct_tensor *[]){values(2, SH(2, 4), z3)}, 1,
        NULL);
  check("cumprod axis 0, two zeros a column", f_sort_composite, (void *)&cp0, (ct_tensor *[]){values(2, SH(4, 2), z3)},
        1, NULL);
  check("cumprod axis 1", f_sort_composite, (void *)&(so_args){SO_CUMPROD, 1, false, 0, NULL},
        (ct_tensor *[]){ramp(3, SH(2, 5, 2), -1.13, 0.21)}, 1, NULL);
  static const struct {
    const char *what;
    so_args a;
    int rank;
    int64_t shape[3];
  } cases[] = {
      {"sort ascending axis -1", {SO_SORT, -1, false, 0, NULL}, 2, {3, 5}},
      {"sort descending axis 0", {SO_SORT, 0, true, 0, NULL}, 2, {4, 3}},
      {"sort descending axis 1 of 3", {SO_SORT, 1, true, 0, NULL}, 3, {2, 3, 2}},
      {"top_k 2 axis -1", {SO_TOP_K, -1, false, 2, NULL}, 2, {3, 5}},
      {"top_k 3 axis 0", {SO_TOP_K, 0, false, 3, NULL}, 3, {4, 2, 2}},
      {"einsum ij->ji", {SO_EINSUM, 0, false, 0, "ij->ji"}, 2, {3, 4}},
      {"einsum ij->", {SO_EINSUM, 0, false, 0, "ij->"}, 2, {3, 4}},
      {"einsum bij->jb", {SO_EINSUM, 0, false, 0, "bij->jb"}, 3, {2, 3, 2}},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; ++k) {
    ct_tensor *in[1] = {shuffled(cases[k].rank, cases[k].shape, -1.13, 0.21)};
    check(cases[k].what, f_sort_composite, (void *)&cases[k].a, in, 1, NULL);
  }
  static const struct {
    const char *eq;
    int n, rank[3];
    int64_t shape[3][3];
  } eins[] = {
      {"ij,jk->ik", 2, {2, 2}, {{2, 3}, {3, 4}}},
      {"bij,bjk->bik", 2, {3, 3}, {{2, 2, 3}, {2, 3, 2}}},
      {"bij,bjk->kib", 2, {3, 3}, {{2, 2, 3}, {2, 3, 2}}},
      {"i,i->", 2, {1, 1}, {{4}, {4}}},
      {"i,j->ij", 2, {1, 1}, {{3}, {4}}},
      {"ij,jk,kl->il", 3, {2, 2, 2}, {{2, 3}, {3, 2}, {2, 2}}},
  };
  for (size_t k = 0; k < sizeof eins / sizeof *eins; ++k) {
    ct_tensor *in[3] = {NULL};
    for (int i = 0; i < eins[k].n; ++i) in[i] = ramp(eins[k].rank[i], eins[k].shape[i], -0.9 + 0.3 * i, 0.17);
    so_args a = {SO_EINSUM, 0, false, 0, eins[k].eq};
    char what[64];
    snprintf(what, sizeof what, "einsum %s", eins[k].eq);
    check(what, f_sort_composite, &a, in, eins[k].n, NULL);
  }
}
Test(gradcheck, sort_composites, .init = setup, .fini = teardown) { sort_composites(); }
Test(gradcheck, sort_composites_jvp, .init = setup, .fini = teardown) {
  jvp_mode = true;
  sort_composites();
}
Test(gradcheck, sort_composites_jacobian, .init = setup, .fini = teardown) {
  jacobian_mode = true;
  sort_composites();
}

/* layer_norm, embedding_lookup and scaled_dot_product_attention (cltape_nn.h): built from rows of
 * the table; their gradients are checked here as functions of their own, at small shapes */
typedef struct {
  int which;
  bool causal, affine;
} tc_args;
enum { TC_LAYER_NORM, TC_EMBEDDING, TC_ATTENTION };
static ct_status f_transformer_composite(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const tc_args *a = u;
  switch (a->which) {
  case TC_LAYER_NORM: return ct_layer_norm(in[0], a->affine ? in[1] : NULL, a->affine ? in[2] : NULL, 1e-3, out);
  case TC_EMBEDDING: return ct_embedding_lookup(in[0], in[1], out);
  default: return ct_scaled_dot_product_attention(in[0], in[1], in[2], a->causal, out);
  }
}

static void transformer_composites(void) {
  tc_args ln = {TC_LAYER_NORM, false, true}, ln0 = {TC_LAYER_NORM, false, false};
  ct_tensor *in[3] = {shuffled(3, SH(2, 2, 5), -1.1, 0.37), ramp(1, SH(5), 0.6, 0.2), ramp(1, SH(5), -0.3, 0.15)};
  check("layer_norm", f_transformer_composite, &ln, in, 3, NULL);
  ct_tensor *in0[1] = {shuffled(2, SH(3, 4), -0.9, 0.41)};
  check("layer_norm without gamma and beta", f_transformer_composite, &ln0, in0, 1, NULL);
  /* ids repeat (their gradients add up) and one is out of range (a row of zeros, no gradient) */
  tc_args emb = {TC_EMBEDDING, false, false};
  ct_tensor *ine[2] = {ramp(2, SH(4, 3), -0.7, 0.13), ints(2, SH(2, 3), (const double[]){1, 3, 1, 0, 7, 1})};
  check("embedding_lookup", f_transformer_composite, &emb, ine, 2, NULL);
  for (int causal = 0; causal < 2; ++causal) {
    tc_args at = {TC_ATTENTION, causal != 0, false};
    /* q [2, 3, 4], k [2, 5, 4], v [2, 5, 2]: causal with fewer queries than keys */
    ct_tensor *ina[3] = {shuffled(3, SH(2, 3, 4), -0.8, 0.07), shuffled(3, SH(2, 5, 4), -0.9, 0.05),
                         ramp(3, SH(2, 5, 2), -1.0, 0.1)};
    check(causal ? "scaled_dot_product_attention causal" : "scaled_dot_product_attention", f_transformer_composite, &at,
          ina, 3, NULL);
    /* heads: q and k [1, 2, 3, 2], v broadcast over the heads [1, 1, 3, 2] */
    ct_tensor *inb[3] = {shuffled(4, SH(1, 2, 3, 2), -0.6, 0.11), shuffled(4, SH(1, 2, 3, 2), 0.5, -0.09),
                         ramp(4, SH(1, 1, 3, 2), 0.2, 0.3)};
    check(causal ? "scaled_dot_product_attention causal, broadcast v" : "scaled_dot_product_attention, broadcast v",
          f_transformer_composite, &at, inb, 3, NULL);
  }
}
Test(gradcheck, transformer_composites, .init = setup, .fini = teardown) { transformer_composites(); }
Test(gradcheck, transformer_composites_jvp, .init = setup, .fini = teardown) {
  jvp_mode = true;
  transformer_composites();
}
Test(gradcheck, transformer_composites_jacobian, .init = setup, .fini = teardown) {
  jacobian_mode = true;
  transformer_composites();
}

/* ---- second derivatives: gradcheck of a function that computes a gradient -------------------- */
/* inputs: the op's operands, then v, the output gradient; result: the operands' gradients,
 * flattened and concatenated */
typedef struct {
  int n_operands;
  const unary_case *un;
  const binary_case *bin;
  const mm_args *mm;
} inner_args;

static ct_status f_inner_gradient(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const inner_args *a = u;
  int no = a->n_operands;
  ct_tape *t = NULL;
  ct_tensor *y = NULL, *g[2] = {NULL, NULL}, *flat[2] = {NULL, NULL};
  ct_status s = ct_tape_begin(CTX, NULL, &t);
  for (int i = 0; i < no && s == CT_OK; ++i) s = ct_tape_watch(t, in[i]);
  if (s == CT_OK) {
    if (a->un) s = a->un->fn(in[0], &y);
    else if (a->bin) s = a->bin->fn(in[0], in[1], &y);
    else s = ct_matmul(in[0], in[1], a->mm->ta, a->mm->tb, &y);
  }
  if (t) ct_tape_end(t);
  if (s == CT_OK) s = ct_tape_gradient(t, &y, 1, in, no, &in[no], CT_UNCONNECTED_ZERO, g);
  int64_t m1[1] = {-1};
  for (int i = 0; i < no && s == CT_OK; ++i) s = ct_reshape(g[i], 1, m1, &flat[i]);
  if (s == CT_OK) s = no == 1 ? ct_identity(flat[0], out) : ct_concat(flat, 2, 0, out);
  ct_tensor *tmp[] = {y, g[0], g[1], flat[0], flat[1]};
  ct_tensor_free_n(tmp, 5);
  ct_tape_free(t);
  return s;
}

Test(gradcheck, second_derivatives_unary, .init = setup, .fini = teardown) {
  for (int k = 0; k < CT_OP_COUNT; ++k) {
    if (ct_ops[k].kind != K_UN || ct_ops[k].grad == ct__nograd) continue;
    const unary_case cu = unary_of(&ct_ops[k]), *c = &cu;
    inner_args a = {1, c, NULL, NULL};
    char what[64];
    snprintf(what, sizeof what, "second derivative of %s", c->name);
    ct_tensor *in[2] = {ramp(2, SH(2, 3), c->start, c->step), ramp(2, SH(2, 3), 0.7, -0.2)};
    check(what, f_inner_gradient, &a, in, 2, NULL);
  }
}

Test(gradcheck, second_derivatives_binary, .init = setup, .fini = teardown) {
  for (int k = 0; k < CT_OP_COUNT; ++k) {
    if (ct_ops[k].kind != K_BIN || ct_ops[k].grad == ct__nograd) continue;
    const binary_case cb = binary_of(&ct_ops[k]), *c = &cb;
    inner_args a = {2, NULL, c, NULL};
    const int combos[2] = {0, 2}; /* same shapes; (2, 1) with (1, 3) */
    for (int j = 0; j < 2; ++j) {
      int b = combos[j];
      char what[96];
      snprintf(what, sizeof what, "second derivative of %s, broadcast case %d", c->name, b);
      ct_tensor *in[3] = {ramp(bcast[b].ra, bcast[b].sa, c->a0, c->da), binary_b(c, bcast[b].rb, bcast[b].sb),
                          ramp(2, SH(2, 3), 0.7, -0.2)};
      check(what, f_inner_gradient, &a, in, 3, NULL);
    }
  }
}

Test(gradcheck, second_derivatives_matmul, .init = setup, .fini = teardown) {
  for (size_t k = 0; k < 3; ++k)
    for (int f = 0; f < 4; ++f) {
      mm_args m = {f & 1, (f & 2) != 0};
      inner_args a = {2, NULL, NULL, &m};
      char what[96];
      snprintf(what, sizeof what, "second derivative of matmul, batch case %zu ta %d tb %d", k, m.ta, m.tb);
      ct_tensor *in[3];
      mm_operands(&mm_batches[k], m.ta, m.tb, &in[0], &in[1]);
      /* v is shaped like the product */
      ct_tensor *y = NULL;
      OK(ct_matmul(in[0], in[1], m.ta, m.tb, &y));
      in[2] = ramp(ct_tensor_rank(y), ct_tensor_shape(y), 0.6, -0.07);
      ct_tensor_free(y);
      check(what, f_inner_gradient, &a, in, 3, NULL);
    }
}

/* ---- the checker itself ---------------------------------------------------------------------- */
/* A deliberately wrong gradient for sin (cos(x) + 0.01) must be caught, and reported where. */
static ct_status wrong_sin_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)user;
  ct_tensor *c = NULL, *c2 = NULL;
  ct_status s = ct_cos(ct_grad_ctx_input(g, 0), &c);
  if (s == CT_OK) s = ct_add_scalar(c, 0.01, &c2);
  if (s == CT_OK) s = ct_mul(dy, c2, &dx[0]);
  ct_tensor_free(c);
  ct_tensor_free(c2);
  return s;
}

Test(gradcheck, detects_a_wrong_gradient_and_float32_mode, .init = setup, .fini = teardown) {
  ts_require_fp64(CTX); /* an error of 0.01 is caught at float64's tolerances */
  const unary_case sin_c = unary_of(row_named("Sin")), *sin_case = &sin_c;
  ct_gradcheck_report r;
  ct_tensor *x = ramp(1, SH(4), -1, 0.6);
  OK(ct_gradcheck(CTX, f_unary, (void *)sin_case, &x, 1, NULL, &r));
  cr_assert(r.passed, "%s", r.message);
  cr_assert_eq(r.checked, 4);
  cr_assert_eq(r.dtype, CT_FLOAT64);
  cr_assert(strncmp(r.message, "float64: passed: ", 17) == 0, "the report names its precision: %s", r.message);
  OK(ct_register_gradient("Sin", wrong_sin_grad, NULL));
  OK(ct_gradcheck(CTX, f_unary, (void *)sin_case, &x, 1, NULL, &r));
  cr_assert(!r.passed, "a wrong gradient passed: %s", r.message);
  /* the error is 0.01 times a projection weight, which lies in [0.5, 1.5) */
  cr_assert(r.max_abs_error >= 0.005 && r.max_abs_error < 0.015, "max abs error %g", r.max_abs_error);
  cr_assert(strstr(r.message, "FAILED"), "%s", r.message);
  cr_assert_eq(r.worst_input, 0);
  double d = r.worst_analytic - r.worst_numeric;
  cr_assert(d >= 0.005 && d < 0.015, "worst: analytic %g numeric %g", r.worst_analytic, r.worst_numeric);
  /* float32 mode: same check at float32 precision, with its own tolerances (0.01 is inside) */
  ct_gradcheck_options o = {.float32 = true};
  OK(ct_gradcheck(CTX, f_unary, (void *)sin_case, &x, 1, &o, &r));
  cr_assert(r.passed, "float32 mode uses atol 2e-2: %s", r.message);
  cr_assert_eq(r.dtype, CT_FLOAT32);
  cr_assert(strncmp(r.message, "float32: ", 9) == 0, "%s", r.message);
  OK(ct_unregister_gradient("Sin"));
  const unary_case tanh_c = unary_of(row_named("Tanh")), *tanh_case = &tanh_c;
  OK(ct_gradcheck(CTX, f_unary, (void *)tanh_case, &x, 1, &o, &r));
  cr_assert(r.passed, "%s", r.message);
  mm_args mm = {false, true};
  ct_tensor *ab[2];
  mm_operands(&mm_batches[1], mm.ta, mm.tb, &ab[0], &ab[1]);
  OK(ct_gradcheck(CTX, f_matmul, &mm, ab, 2, &o, &r));
  cr_assert(r.passed, "%s", r.message);
  /* errors: the function failing is reported as an error, as is a missing argument */
  EXPECT_STATUS(ct_gradcheck(CTX, f_unary, (void *)sin_case, NULL, 1, NULL, &r), CT_ERR_NULL);
  EXPECT_STATUS(ct_gradcheck(CTX, f_unary, (void *)sin_case, &x, 0, NULL, &r), CT_ERR_INVALID);
  const unary_case bad = {"Log", ct_log, 0, 0};
  ct_tensor *xi = ts_tensor(CTX, CT_INT32, 1, SH(2), (const double[]){1, 2});
  ct_status s = ct_gradcheck(CTX, f_unary, (void *)&bad, &xi, 1, NULL, &r); /* log of int32 */
  cr_assert_eq(s, CT_ERR_DTYPE, "%s", ct_status_name(s));
  cr_assert(!r.passed);
  ct_tensor_free_n(ab, 2);
  ct_tensor_free(x);
  ct_tensor_free(xi);
}

/* ---- batch normalization and the losses with options (lib/nn/batchnorm.c, losses.c): built from
 * rows of the table, checked here as functions of their own ---------------------------------- */
typedef struct {
  int which;
  ct_loss_options o;
} nl_args;
enum { NL_BN, NL_BN_STATS, NL_BN_INFER, NL_XENT, NL_BCE, NL_HUBER };
static ct_status f_norm_loss(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  const nl_args *a = u;
  switch (a->which) {
  case NL_BN: return ct_batch_norm(in[0], in[1], in[2], 1e-3, out, NULL, NULL);
  case NL_BN_INFER: return ct_batch_norm_inference(in[0], in[1], in[2], in[3], in[4], 1e-3, out);
  case NL_XENT: return ct_softmax_cross_entropy_ex(in[0], in[1], &a->o, out);
  case NL_BCE: return ct_binary_cross_entropy(in[0], in[1], &a->o, out);
  case NL_HUBER: return ct_huber_loss(in[0], in[1], &a->o, out);
  default: break;
  }
  /* the statistics: mean + 2 variance, through the normalized output's function */
  ct_tensor *y = NULL, *m = NULL, *v = NULL, *v2 = NULL;
  ct_status s = ct_batch_norm(in[0], NULL, NULL, 1e-3, &y, &m, &v);
  if (s == CT_OK) s = ct_mul_scalar(v, 2.0, &v2);
  if (s == CT_OK) s = ct_add(m, v2, out);
  ct_tensor *tmp[] = {y, m, v, v2};
  ct_tensor_free_n(tmp, 4);
  return s;
}

static void norm_loss_composites(void) {
  nl_args bn = {NL_BN, {0}}, stats = {NL_BN_STATS, {0}}, inf = {NL_BN_INFER, {0}};
  {
    ct_tensor *in[3] = {shuffled(2, SH(4, 3), -1.1, 0.23), ramp(1, SH(3), 0.8, 0.3), ramp(1, SH(3), -0.2, 0.25)};
    check("batch_norm [N, C]", f_norm_loss, &bn, in, 3, NULL);
  }
  {
    ct_tensor *in[3] = {shuffled(4, SH(2, 2, 3, 2), 0.9, -0.07), ramp(1, SH(2), 1.2, -0.5), ramp(1, SH(2), 0.1, 0.3)};
    check("batch_norm NHWC", f_norm_loss, &bn, in, 3, NULL);
  }
  {
    ct_tensor *in[1] = {shuffled(3, SH(3, 2, 2), -0.6, 0.11)};
    check("batch_norm statistics", f_norm_loss, &stats, in, 1, NULL);
  }
  {
    ct_tensor *in[5] = {shuffled(3, SH(2, 3, 4), -1.0, 0.09), ramp(1, SH(4), 0.2, -0.1), ramp(1, SH(4), 0.5, 0.4),
                        ramp(1, SH(4), 1.1, -0.2), ramp(1, SH(4), -0.3, 0.2)};
    check("batch_norm_inference", f_norm_loss, &inf, in, 5, NULL);
  }
  nl_args xs = {NL_XENT, {.label_smoothing = 0.1}};
  nl_args xd = {NL_XENT, {.label_smoothing = 0.2, .reduction = CT_REDUCTION_SUM}};
  {
    ct_tensor *in[2] = {shuffled(2, SH(4, 5), -2.0, 0.23), ints(1, SH(4), (const double[]){0, 4, 2, 4})};
    check("softmax_cross_entropy_ex, class indices, smoothing 0.1", f_norm_loss, &xs, in, 2, NULL);
  }
  {
    ct_tensor *in[2] = {shuffled(2, SH(3, 4), 1.5, -0.27), ramp(2, SH(3, 4), 0.05, 0.02)};
    check("softmax_cross_entropy_ex, distribution, smoothing 0.2, sum", f_norm_loss, &xd, in, 2, NULL);
  }
  nl_args bp = {NL_BCE, {.label_smoothing = 0.1}}, bl = {NL_BCE, {.from_logits = true, .reduction = CT_REDUCTION_NONE}};
  {
    ct_tensor *in[2] = {shuffled(2, SH(2, 5), 0.12, 0.08), ramp(2, SH(2, 5), 0.0, 0.1)};
    check("binary_cross_entropy, probabilities", f_norm_loss, &bp, in, 2, NULL);
  }
  {
    /* logits away from 0, where max(x, 0) and |x| have their kinks */
    ct_tensor *in[2] = {values(2, SH(2, 3), (const double[]){-2.5, -0.7, 0.3, 1.9, 4.2, -0.2}),
                        ramp(2, SH(2, 3), 1.0, -0.17)};
    check("binary_cross_entropy, logits", f_norm_loss, &bl, in, 2, NULL);
  }
  nl_args h1 = {NL_HUBER, {0}}, h2 = {NL_HUBER, {.delta = 0.5, .reduction = CT_REDUCTION_SUM}};
  {
    /* errors -1.9 .. 1.84 in steps of 0.34: none within 0.1 of 0 or +-1 */
    ct_tensor *in[2] = {ramp(2, SH(3, 4), -1.6, 0.17), ramp(2, SH(3, 4), 0.3, -0.17)};
    check("huber_loss, delta 1", f_norm_loss, &h1, in, 2, NULL);
  }
  {
    ct_tensor *in[2] = {values(2, SH(2, 3), (const double[]){0.9, -0.4, 0.1, 2.0, -1.3, 0.35}),
                        values(2, SH(2, 3), (const double[]){0.2, 0.0, 0.3, 1.0, -0.5, 0.6})};
    check("huber_loss, delta 0.5, sum", f_norm_loss, &h2, in, 2, NULL);
  }
}
Test(gradcheck, norm_loss_composites, .init = setup, .fini = teardown) { norm_loss_composites(); }
Test(gradcheck, norm_loss_composites_jvp, .init = setup, .fini = teardown) {
  jvp_mode = true;
  norm_loss_composites();
}
Test(gradcheck, norm_loss_composites_jacobian, .init = setup, .fini = teardown) {
  jacobian_mode = true;
  norm_loss_composites();
}
