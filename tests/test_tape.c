#define _POSIX_C_SOURCE 200809L
/* The rules of the gradient tape: variables, what is recorded and watched, nesting, stop/resume
 * and reset, the forms of gradient(), unconnected gradients, persistence and what the tape keeps
 * alive, the gradient registry and user ops, higher order, jacobians, threads and logging. */
#include "support.h"
#include "ct_internal.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SH(...) ((const int64_t[]){__VA_ARGS__})

static ct_tensor *f32(ct_context *ctx, int rank, const int64_t *shape, const double *v) {
  return ts_tensor(ctx, CT_FLOAT32, rank, shape, v);
}
/* float64; float32 on a device without it (the values used with it are exact in either) */
static ct_tensor *f64(ct_context *ctx, int rank, const int64_t *shape, const double *v) {
  return ts_tensor(ctx, ts_best_float(ctx), rank, shape, v);
}
/* A dtype other than float32 for mismatches: float64, int32 on a device without it. */
static ct_dtype other_dtype(ct_context *ctx) { return ts_has_fp64(ctx) ? CT_FLOAT64 : CT_INT32; }
static ct_tensor *scalar(ct_context *ctx, ct_dtype dt, double v) {
  ct_tensor *t = NULL;
  OK(ct_scalar(ctx, dt, v, &t));
  return t;
}
static ct_tensor *var(ct_context *ctx, double v, const char *name, bool trainable) {
  ct_tensor *t = NULL;
  OK(ct_variable_scalar(ctx, v, name, trainable, &t));
  return t;
}
static int watched_count(const ct_tape *t) {
  int n = -1;
  OK(ct_tape_watched_variables(t, NULL, 0, &n));
  return n;
}
static uint64_t saved(const ct_tape *t) {
  uint64_t b = 0;
  OK(ct_tape_saved_bytes(t, &b));
  return b;
}

/* ---- variables ------------------------------------------------------------------------------ */
Test(tape, variables_are_named_mutable_state) {
  ct_context *ctx = ts_ctx();
  ct_tensor *a = var(ctx, 1.0, "x0", true), *b = var(ctx, 1.0, "w:3", false), *c = var(ctx, 1.0, NULL, true);
  cr_assert_str_eq(ct_variable_name(a), "x0:0");
  cr_assert_str_eq(ct_variable_name(b), "w:3", "an explicit :N suffix is kept");
  cr_assert_str_eq(ct_variable_name(c), "Variable:0");
  cr_assert(ct_variable_trainable(a) && !ct_variable_trainable(b));
  OK(ct_variable_set_trainable(b, true));
  cr_assert(ct_variable_trainable(b));
  uint64_t id = ct_tensor_id(a);
  ct_tensor *two = scalar(ctx, CT_FLOAT32, 2.0), *five = scalar(ctx, CT_FLOAT32, 5.0);
  OK(ct_variable_assign(a, five));
  cr_assert_float_eq(ts_item(a), 5.0, 0);
  OK(ct_variable_assign_add(a, two));
  cr_assert_float_eq(ts_item(a), 7.0, 0);
  OK(ct_variable_assign_sub(a, five));
  cr_assert_float_eq(ts_item(a), 2.0, 0);
  cr_assert_eq(ct_tensor_id(a), id, "a variable keeps its id across assignments");
  /* assigning the value does not alias it: changing the variable leaves the value alone */
  OK(ct_variable_assign(a, five));
  OK(ct_variable_assign_add(a, two));
  cr_assert_float_eq(ts_item(five), 5.0, 0);
  /* broadcasting assignment; a snapshot of the value is unaffected by later assignments */
  const double z[3] = {0, 0, 0};
  ct_tensor *init = f32(ctx, 1, SH(3), z), *v = NULL, *snap = NULL;
  OK(ct_variable_create(init, "v", true, &v));
  OK(ct_variable_assign(v, two));
  OK(ct_variable_value(v, &snap));
  OK(ct_variable_assign_add(v, two));
  const double twos[3] = {2, 2, 2}, fours[3] = {4, 4, 4};
  ts_assert_close(snap, twos, 3, 0, 0, "snapshot");
  ts_assert_close(v, fours, 3, 0, 0, "variable");
  cr_assert(!ct_tensor_is_variable(snap));
  /* a variable plus a number is an ordinary tensor */
  ct_tensor *sum = NULL;
  OK(ct_add_scalar(a, 1.0, &sum));
  cr_assert(!ct_tensor_is_variable(sum));
  cr_assert_null(ct_variable_name(sum));
  /* user mistakes */
  ct_tensor *d64 = scalar(ctx, other_dtype(ctx), 1.0), *wrong = f32(ctx, 1, SH(2), z);
  EXPECT_STATUS(ct_variable_assign(a, d64), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_variable_assign(v, wrong), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_variable_assign(two, five), CT_ERR_INVALID);
  EXPECT_STATUS(ct_variable_assign(NULL, five), CT_ERR_NULL);
  ct_tensor *tmp[] = {a, b, c, two, five, init, v, snap, sum, d64, wrong};
  ct_tensor_free_n(tmp, 11);
  ct_context_free(ctx);
}

Test(tape, assignments_are_not_recorded_and_reads_see_the_value_of_their_time) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = var(ctx, 2.0, "x", true), *three = scalar(ctx, CT_FLOAT32, 3.0), *five = scalar(ctx, CT_FLOAT32, 5.0);
  ct_tape *t = ts_tape(ctx, true, true);
  ct_tensor *y1 = NULL, *y2 = NULL;
  OK(ct_mul(x, three, &y1)); /* read at x = 2 */
  int n = ct_tape_size(t);
  OK(ct_variable_assign(x, five));
  OK(ct_variable_assign_add(x, three));
  OK(ct_variable_assign_sub(x, three));
  cr_assert_eq(ct_tape_size(t), n, "assignments were recorded");
  OK(ct_mul(x, x, &y2)); /* read at x = 5 */
  /* assigning after the read: the record keeps the storage of its time */
  OK(ct_variable_assign(x, three));
  OK(ct_tape_end(t));
  ct_tensor *ys[2] = {y1, y2}, *g = NULL, *g2 = NULL;
  OK(ct_tape_gradient(t, ys, 2, &x, 1, NULL, CT_UNCONNECTED_NONE, &g));
  cr_assert_float_eq(ts_item(g), 3.0 + 2 * 5.0, 1e-5, "both reads of the same variable add up");
  g2 = ts_grad1(t, y2, x);
  cr_assert_float_eq(ts_item(g2), 10.0, 1e-5, "d(x*x)/dx uses x = 5, the value when it was read");
  ct_tensor *tmp[] = {x, three, five, y1, y2, g, g2};
  ct_tensor_free_n(tmp, 7);
  ct_tape_free(t);
  ct_context_free(ctx);
}

/* ---- recording and watching ------------------------------------------------------------------ */
Test(tape, records_only_what_concerns_it) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = scalar(ctx, CT_FLOAT32, 2.0), *c = scalar(ctx, CT_FLOAT32, 3.0);
  ct_tensor *v1 = var(ctx, 1.0, "v1", true), *v2 = var(ctx, 2.0, "v2", true), *frozen = var(ctx, 4.0, "f", false);
  ct_tensor *r[12] = {NULL};
  ct_tape *t = ts_tape(ctx, false, true);
  OK(ct_mul(c, c, &r[0]));
  cr_assert_eq(ct_tape_size(t), 0, "an op on constants was recorded");
  OK(ct_tape_watch(t, x));
  OK(ct_mul(x, c, &r[1]));
  OK(ct_exp(r[1], &r[2]));
  cr_assert_eq(ct_tape_size(t), 2, "an op on a watched tensor and its consequence");
  OK(ct_mul(frozen, c, &r[3]));
  cr_assert_eq(ct_tape_size(t), 2, "a non-trainable variable is not watched when read");
  cr_assert_eq(watched_count(t), 0);
  /* watch order: v2 explicitly, then v1 by reading it, then the frozen one explicitly */
  OK(ct_tape_watch(t, v2));
  OK(ct_add(v1, c, &r[4]));
  OK(ct_tape_watch(t, frozen));
  OK(ct_tape_watch(t, v2)); /* twice: listed once */
  ct_tensor *w[4];
  int n = 0;
  OK(ct_tape_watched_variables(t, w, 4, &n));
  cr_assert_eq(n, 3);
  cr_assert(w[0] == v2 && w[1] == v1 && w[2] == frozen);
  OK(ct_tape_watched_variables(t, w, 1, &n));
  cr_assert_eq(n, 3, "the count is the total, whatever the room");
  /* ops without a gradient are not recorded, but a variable they read is watched */
  ct_tensor *v3 = var(ctx, 5.0, "v3", true);
  int before = ct_tape_size(t);
  OK(ct_greater(v3, c, &r[5]));
  OK(ct_floor(r[2], &r[6]));
  OK(ct_stop_gradient(r[2], &r[7]));
  cr_assert_eq(ct_tape_size(t), before);
  OK(ct_tape_watched_variables(t, w, 4, &n));
  cr_assert_eq(n, 4);
  cr_assert(w[3] == v3);
  /* after the tape ends, nothing more is recorded */
  OK(ct_tape_end(t));
  before = ct_tape_size(t);
  OK(ct_mul(x, x, &r[8]));
  cr_assert_eq(ct_tape_size(t), before);
  ct_tensor *g = ts_grad1(t, r[2], x);
  cr_assert_float_eq(ts_item(g), 3.0 * exp(6.0), 1e-2);
  ct_tensor_free(g);
  ct_tensor_free_n(r, 12);
  ct_tensor *tmp[] = {x, c, v1, v2, v3, frozen};
  ct_tensor_free_n(tmp, 6);
  ct_tape_free(t);
  /* watch_accessed_variables = false: nothing watched unless asked */
  ct_tensor *v = var(ctx, 1.5, "v", true), *y = NULL, *y2 = NULL;
  t = ts_tape(ctx, false, false);
  OK(ct_square(v, &y));
  cr_assert_eq(ct_tape_size(t), 0);
  cr_assert_eq(watched_count(t), 0);
  OK(ct_tape_watch(t, v));
  OK(ct_square(v, &y2));
  cr_assert_eq(ct_tape_size(t), 1);
  OK(ct_tape_end(t));
  ct_tensor *ys[2] = {y, y2};
  OK(ct_tape_gradient(t, ys, 2, &v, 1, NULL, CT_UNCONNECTED_NONE, &g));
  cr_assert_float_eq(ts_item(g), 3.0, 1e-6, "only the read after the watch counts");
  ct_tensor *tmp2[] = {v, y, y2, g};
  ct_tensor_free_n(tmp2, 4);
  ct_tape_free(t);
  ct_context_free(ctx);
}

Test(tape, nested_tapes_each_record_what_concerns_them) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = scalar(ctx, CT_FLOAT32, 2.0), *y = scalar(ctx, CT_FLOAT32, 3.0), *r[4] = {NULL};
  ct_tape *outer = ts_tape(ctx, true, true), *inner = ts_tape(ctx, true, true);
  OK(ct_tape_watch(outer, x));
  OK(ct_tape_watch(inner, y));
  OK(ct_square(x, &r[0]));    /* outer only */
  OK(ct_square(y, &r[1]));    /* inner only */
  OK(ct_mul(r[0], r[1], &r[2])); /* both */
  cr_assert_eq(ct_tape_size(outer), 2);
  cr_assert_eq(ct_tape_size(inner), 2);
  /* ending the outer tape first leaves the inner one recording */
  OK(ct_tape_end(outer));
  OK(ct_exp(r[1], &r[3]));
  cr_assert_eq(ct_tape_size(outer), 2);
  cr_assert_eq(ct_tape_size(inner), 3);
  OK(ct_tape_end(inner));
  ct_tensor *gx = ts_grad1(outer, r[2], x), *gy = ts_grad1(inner, r[2], y), *gyo = ts_grad1(outer, r[2], y);
  cr_assert_float_eq(ts_item(gx), 2 * 2.0 * 9.0, 1e-4);
  cr_assert_float_eq(ts_item(gy), 4.0 * 2 * 3.0, 1e-4);
  cr_assert_null(gyo, "the outer tape never watched y");
  ct_tensor *tmp[] = {x, y, gx, gy};
  ct_tensor_free_n(tmp, 4);
  ct_tensor_free_n(r, 4);
  ct_tape_free(inner);
  ct_tape_free(outer);
  ct_context_free(ctx);
}

Test(tape, stop_resume_and_reset) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = var(ctx, 2.0, "x", true), *r[5] = {NULL};
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_square(x, &r[0]));
  OK(ct_tape_stop_recording(t));
  EXPECT_STATUS(ct_tape_stop_recording(t), CT_ERR_INVALID);
  OK(ct_mul(r[0], x, &r[1])); /* not recorded */
  cr_assert_eq(ct_tape_size(t), 1);
  OK(ct_tape_resume_recording(t));
  EXPECT_STATUS(ct_tape_resume_recording(t), CT_ERR_INVALID);
  OK(ct_mul(r[0], x, &r[2]));
  cr_assert_eq(ct_tape_size(t), 2);
  ct_tensor *g = ts_grad1(t, r[1], x);
  cr_assert_null(g, "computed while recording was stopped: a constant");
  g = ts_grad1(t, r[2], x);
  cr_assert_float_eq(ts_item(g), 12.0, 1e-5);
  ct_tensor_free(g);
  /* reset forgets records and watches; the tape keeps recording */
  OK(ct_tape_reset(t));
  cr_assert_eq(ct_tape_size(t), 0);
  cr_assert_eq(watched_count(t), 0);
  cr_assert_eq(saved(t), 0);
  g = ts_grad1(t, r[2], x);
  cr_assert_null(g);
  OK(ct_exp(x, &r[3]));
  cr_assert_eq(ct_tape_size(t), 1);
  cr_assert_eq(watched_count(t), 1);
  g = ts_grad1(t, r[3], x);
  cr_assert_float_eq(ts_item(g), exp(2.0), 1e-4);
  ct_tensor_free(g);
  OK(ct_tape_end(t));
  EXPECT_STATUS(ct_tape_stop_recording(t), CT_ERR_INVALID);
  ct_tape_free(t);
  /* reset also makes a used non-persistent tape usable again */
  t = ts_tape(ctx, false, true);
  OK(ct_square(x, &r[4]));
  g = ts_grad1(t, r[4], x);
  ct_tensor_free(g);
  EXPECT_STATUS(ct_tape_gradient1(t, r[4], x, &g), CT_ERR_TAPE_USED);
  OK(ct_tape_reset(t));
  ct_tensor_free(r[4]);
  OK(ct_square(x, &r[4]));
  g = ts_grad1(t, r[4], x);
  cr_assert_float_eq(ts_item(g), 4.0, 1e-6);
  ct_tensor_free(g);
  ct_tape_free(t);
  ct_tensor_free_n(r, 5);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- gradient() --------------------------------------------------------------------------- */
Test(tape, gradient_forms) {
  ct_context *ctx = ts_ctx();
  const double xv[2] = {1.0, 2.0}, cv[2] = {3.0, 4.0}, ogv[2] = {1.0, 2.0};
  ct_tensor *x = f32(ctx, 1, SH(2), xv), *c = f32(ctx, 1, SH(2), cv), *s = scalar(ctx, CT_FLOAT32, 0.5);
  ct_tensor *y = NULL, *z = NULL, *w = NULL, *u = NULL;
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, x));
  OK(ct_tape_watch(t, s));
  OK(ct_mul(x, c, &y));  /* [3, 8] */
  OK(ct_mul(y, s, &z));  /* broadcast scalar */
  OK(ct_sum(z, NULL, 0, false, &w));
  OK(ct_square(y, &u));
  OK(ct_tape_end(t));
  /* many targets, many sources */
  ct_tensor *tg[2] = {w, y}, *src[3] = {x, s, y}, *g[3];
  OK(ct_tape_gradient(t, tg, 2, src, 3, NULL, CT_UNCONNECTED_NONE, g));
  const double gx[2] = {3 * 1.5, 4 * 1.5}, gy[2] = {1.5, 1.5};
  ts_assert_close(g[0], gx, 2, 1e-6, 1e-6, "d(w + sum y)/dx");
  cr_assert_float_eq(ts_item(g[1]), 11.0, 1e-5, "a broadcast scalar's gradient is summed back");
  ts_assert_close(g[2], gy, 2, 1e-6, 1e-6, "gradient w.r.t. an intermediate");
  ts_assert_shape(g[1], 0, NULL, "shaped like the source");
  ct_tensor_free_n(g, 3);
  /* an output gradient per target (NULL entries mean ones) */
  ct_tensor *og = f32(ctx, 1, SH(2), ogv), *ogs[2] = {NULL, og};
  OK(ct_tape_gradient(t, tg, 2, &x, 1, ogs, CT_UNCONNECTED_NONE, g));
  const double gxo[2] = {3 * 0.5 + 3 * 1, 4 * 0.5 + 4 * 2};
  ts_assert_close(g[0], gxo, 2, 1e-6, 1e-6, "with output gradients");
  ct_tensor_free(g[0]);
  ct_tensor *bad = f32(ctx, 1, SH(1), ogv), *badd = ts_tensor(ctx, other_dtype(ctx), 1, SH(2), ogv), *ogb[2] = {NULL, bad};
  EXPECT_STATUS(ct_tape_gradient(t, tg, 2, &x, 1, ogb, CT_UNCONNECTED_NONE, g), CT_ERR_SHAPE);
  cr_assert_null(g[0]);
  ogb[1] = badd;
  EXPECT_STATUS(ct_tape_gradient(t, tg, 2, &x, 1, ogb, CT_UNCONNECTED_NONE, g), CT_ERR_DTYPE);
  /* a non-scalar target: the gradient of its sum; repeated sources and targets */
  g[0] = ts_grad1(t, u, x);
  const double gu[2] = {2 * 3 * 3, 2 * 8 * 4};
  ts_assert_close(g[0], gu, 2, 1e-5, 1e-6, "d sum(y^2)/dx");
  ct_tensor_free(g[0]);
  ct_tensor *tt[2] = {y, y}, *ss[2] = {x, x};
  OK(ct_tape_gradient(t, tt, 2, ss, 2, NULL, CT_UNCONNECTED_NONE, g));
  const double g2[2] = {6, 8};
  ts_assert_close(g[0], g2, 2, 1e-6, 0, "a target given twice counts twice");
  ts_assert_close(g[1], g2, 2, 1e-6, 0, "a source given twice gets the same gradient");
  ct_tensor_free_n(g, 2);
  /* a target that is itself a source: ones, watched or not */
  ct_tensor *k = scalar(ctx, CT_FLOAT32, 7.0);
  OK(ct_tape_gradient(t, &k, 1, &k, 1, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert_float_eq(ts_item(g[0]), 1.0, 0);
  ct_tensor_free(g[0]);
  /* no targets: nothing connected */
  OK(ct_tape_gradient(t, NULL, 0, &x, 1, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert_null(g[0]);
  ct_tensor *tmp[] = {x, c, s, y, z, w, u, og, bad, badd, k};
  ct_tensor_free_n(tmp, 11);
  ct_tape_free(t);
  ct_context_free(ctx);
}

Test(tape, unconnected_integer_and_unwatched_paths) {
  ct_context *ctx = ts_ctx();
  const double xv[2] = {1.5, 2.5};
  ct_tensor *x = f32(ctx, 1, SH(2), xv), *u = f32(ctx, 1, SH(2), xv), *n = scalar(ctx, CT_INT32, 3);
  ct_tensor *r[6] = {NULL};
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, x));
  OK(ct_tape_watch(t, n));
  /* an integer path: cast to int32 and back */
  OK(ct_cast(x, CT_INT32, &r[0]));
  OK(ct_cast(r[0], CT_FLOAT32, &r[1]));
  /* an unwatched path */
  OK(ct_square(u, &r[2]));
  /* an integer source */
  OK(ct_mul(n, n, &r[3]));
  OK(ct_cast(r[3], CT_FLOAT32, &r[4]));
  OK(ct_add(r[4], r[2], &r[5]));
  OK(ct_tape_end(t));
  ct_tensor *g[3];
  ct_tensor *src[3] = {x, u, n};
  OK(ct_tape_gradient(t, &r[1], 1, src, 3, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert(!g[0] && !g[1] && !g[2], "integer path: None");
  OK(ct_tape_gradient(t, &r[5], 1, src, 3, NULL, CT_UNCONNECTED_NONE, g));
  cr_assert(!g[0] && !g[1] && !g[2], "unwatched and integer sources: None");
  /* zeros on request, shaped and typed like the source */
  OK(ct_tape_gradient(t, &r[5], 1, src, 3, NULL, CT_UNCONNECTED_ZERO, g));
  const double z[2] = {0, 0};
  ts_assert_close(g[0], z, 2, 0, 0, "zeros for x");
  ts_assert_close(g[1], z, 2, 0, 0, "zeros for u");
  cr_assert_eq(ct_tensor_dtype(g[2]), CT_INT32);
  cr_assert_float_eq(ts_item(g[2]), 0, 0);
  ct_tensor_free_n(g, 3);
  EXPECT_STATUS(ct_tape_gradient(t, &r[5], 1, src, 3, NULL, (ct_unconnected)7, g), CT_ERR_INVALID);
  ct_tensor_free_n(r, 6);
  ct_tensor *tmp[] = {x, u, n};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(t);
  ct_context_free(ctx);
}

Test(tape, argument_errors) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = scalar(ctx, CT_FLOAT32, 1.0), *y = NULL, *g = NULL;
  ct_tape *t = NULL;
  EXPECT_STATUS(ct_tape_begin(NULL, NULL, &t), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_begin(ctx, NULL, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_end(NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_watch(NULL, x), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_reset(NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_stop_recording(NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_resume_recording(NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_gradient1(NULL, x, x, &g), CT_ERR_NULL);
  uint64_t b;
  int n;
  EXPECT_STATUS(ct_tape_saved_bytes(NULL, &b), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_watched_variables(NULL, NULL, 0, &n), CT_ERR_NULL);
  cr_assert_eq(ct_tape_size(NULL), -1);
  ct_tape_free(NULL);
  t = ts_tape(ctx, false, true);
  EXPECT_STATUS(ct_tape_watch(t, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_saved_bytes(t, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_watched_variables(t, NULL, 2, &n), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_watched_variables(t, NULL, 0, NULL), CT_ERR_NULL);
  OK(ct_tape_watch(t, x));
  OK(ct_square(x, &y));
  EXPECT_STATUS(ct_tape_gradient(t, &y, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_gradient(t, &y, -1, &x, 1, NULL, CT_UNCONNECTED_NONE, &g), CT_ERR_INVALID);
  EXPECT_STATUS(ct_tape_gradient(t, NULL, 1, &x, 1, NULL, CT_UNCONNECTED_NONE, &g), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_gradient1(t, y, x, NULL), CT_ERR_NULL);
  ct_named_tensor src = {"x", x}, res;
  EXPECT_STATUS(ct_tape_gradient_named(t, &y, 1, &src, 1, CT_UNCONNECTED_NONE, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tape_gradient_named(t, &y, 1, NULL, 1, CT_UNCONNECTED_NONE, &res), CT_ERR_NULL);
  /* a released tensor */
  ct_tensor *dead = scalar(ctx, CT_FLOAT32, 1.0);
  ct_tensor_free(dead);
  EXPECT_STATUS(ct_tape_gradient1(t, dead, x, &g), CT_ERR_RELEASED);
  EXPECT_STATUS(ct_tape_watch(t, dead), CT_ERR_RELEASED);
  /* none of these consumed the non-persistent tape */
  g = ts_grad1(t, y, x);
  cr_assert_float_eq(ts_item(g), 2.0, 1e-6);
  ct_tensor *tmp[] = {x, y, g};
  ct_tensor_free_n(tmp, 3);
  ct_tape_free(t);
  ct_context_free(ctx);
}

/* ---- persistence and memory ---------------------------------------------------------------- */
static uint64_t in_use(ct_context *ctx) {
  ct_context_stats st;
  OK(ct_context_sync(ctx));
  OK(ct_context_stats_get(ctx, &st));
  return st.bytes_in_use;
}

Test(tape, memory_is_released_when_promised) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, SH(64, 64), 0, 1, 3, &x));
  uint64_t base = in_use(ctx);
  for (int persistent = 0; persistent < 2; ++persistent) {
    ct_tape *t = ts_tape(ctx, persistent != 0, true);
    OK(ct_tape_watch(t, x));
    ct_tensor *a = NULL, *b = NULL, *c = NULL, *l = NULL;
    OK(ct_sigmoid(x, &a));  /* keeps a */
    OK(ct_mul(a, x, &b));   /* keeps a and x */
    OK(ct_tanh(b, &c));     /* keeps c */
    OK(ct_sum(c, NULL, 0, false, &l));
    OK(ct_tape_end(t));
    /* the caller drops its intermediates: only the tape keeps them alive now */
    ct_tensor_free(a);
    ct_tensor_free(b);
    ct_tensor_free(c);
    uint64_t held = saved(t);
    cr_assert_eq(held, 3 * 64 * 64 * 4, "sigmoid's output, x, tanh's output: %llu", (unsigned long long)held);
    cr_assert_geq(in_use(ctx), base + 2 * 64 * 64 * 4);
    ct_tensor *g = ts_grad1(t, l, x);
    ct_tensor_free(g);
    if (!persistent) {
      /* released when gradient returned: with the caller's tensors gone, nothing is left */
      cr_assert_eq(saved(t), 0);
      cr_assert_eq(ct_tape_size(t), 0);
      EXPECT_STATUS(ct_tape_gradient1(t, l, x, &g), CT_ERR_TAPE_USED);
      ct_tensor_free(l);
      cr_assert_eq(in_use(ctx), base, "%llu bytes still held", (unsigned long long)(in_use(ctx) - base));
    } else {
      cr_assert_eq(saved(t), held);
      for (int k = 0; k < 3; ++k) {
        g = ts_grad1(t, l, x);
        cr_assert(g);
        ct_tensor_free(g);
      }
      ct_tensor_free(l);
      cr_assert_geq(in_use(ctx), base + 2 * 64 * 64 * 4, "a persistent tape keeps its records");
    }
    ct_tape_free(t);
    cr_assert_eq(in_use(ctx), base, "everything is released with the tape");
  }
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* How many holders t's storage has: the caller's reference, plus one per record keeping it (a
 * record holds a tensor by reference, a variable through an alias of its current storage). A pending
 * result of an elementwise op holds its operands' storage until it is computed: the context's
 * pending results are computed first. */
static int holders(const ct_tensor *t) {
  OK(ct_context_sync(t->ctx));
  return t->refs + ctb_refcount(t->buf) - 1;
}

Test(tape, records_keep_only_what_their_gradient_reads) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *c = NULL, *w = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, SH(8, 8), 0, 1, 1, &x));
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, SH(8, 8), 0, 1, 2, &c));
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, SH(8, 8), 0, 1, 3, &w));
  const uint64_t B = 8 * 8 * 4;
  typedef ct_status (*un_fn)(const ct_tensor *, ct_tensor **);
  const struct {
    un_fn fn;
    const char *name;
  } keep_output[] = {{ct_relu, "relu"}, {ct_sigmoid, "sigmoid"}, {ct_tanh, "tanh"}, {ct_exp, "exp"}};
  for (int k = 0; k < 4; ++k) {
    ct_tape *t = ts_tape(ctx, true, true);
    OK(ct_tape_watch(t, x));
    ct_tensor *y = NULL;
    OK(keep_output[k].fn(x, &y));
    cr_assert_eq(holders(x), 1, "%s keeps its input", keep_output[k].name);
    cr_assert_eq(holders(y), 2, "%s does not keep its output (%d holders)", keep_output[k].name, holders(y));
    cr_assert_eq(saved(t), B, "%s", keep_output[k].name);
    ct_tape_free(t);
    cr_assert_eq(holders(y), 1);
    ct_tensor_free(y);
  }
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, x));
  ct_tensor *s = NULL, *d = NULL, *m1 = NULL, *m2 = NULL, *mm = NULL, *q = NULL;
  OK(ct_add(x, c, &s));
  OK(ct_sub(s, c, &d));
  cr_assert_eq(ct_tape_size(t), 2);
  cr_assert_eq(saved(t), 0, "add and sub keep nothing");
  cr_assert(holders(x) == 1 && holders(c) == 1 && holders(s) == 1);
  OK(ct_mul(x, c, &m1)); /* only x is differentiated: keeps c, not x */
  cr_assert(holders(c) == 2 && holders(x) == 1);
  OK(ct_matmul(c, w, false, false, &mm)); /* constant operands: not recorded at all */
  cr_assert_eq(ct_tape_size(t), 3);
  OK(ct_matmul(w, x, false, true, &q)); /* x @ ... with constant w: keeps w for dx, not x */
  cr_assert(holders(w) == 2 && holders(x) == 1);
  OK(ct_mul(x, d, &m2)); /* both differentiated: keeps both */
  cr_assert(holders(x) == 2 && holders(d) == 2);
  cr_assert_eq(saved(t), 4 * B, "c, w, x, d, each counted once");
  ct_tape_free(t);
  cr_assert(holders(x) == 1 && holders(c) == 1 && holders(w) == 1 && holders(d) == 1);
  ct_tensor *tmp[] = {x, c, w, s, d, m1, m2, mm, q};
  ct_tensor_free_n(tmp, 9);
  ct_context_free(ctx);
}

/* The MLP of docs/tape.md at a small size: what the tape holds, counted by hand. */
Test(tape, mlp_saved_bytes) {
  ct_context *ctx = ts_ctx();
  const int64_t B = 16, I = 12, H = 8, O = 4;
  ct_tensor *x = NULL, *w1i = NULL, *w2i = NULL, *w1 = NULL, *w2 = NULL, *b1 = NULL, *b2 = NULL, *z = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, SH(B, I), 0, 1, 1, &x));
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, SH(I, H), 0, 0.3, 2, &w1i));
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, SH(H, O), 0, 0.3, 3, &w2i));
  OK(ct_variable_create(w1i, "w1", true, &w1));
  OK(ct_variable_create(w2i, "w2", true, &w2));
  OK(ct_zeros(ctx, CT_FLOAT32, 1, SH(H), &z));
  OK(ct_variable_create(z, "b1", true, &b1));
  ct_tensor_free(z);
  OK(ct_zeros(ctx, CT_FLOAT32, 1, SH(O), &z));
  OK(ct_variable_create(z, "b2", true, &b2));
  ct_tensor_free(z);
  for (int persistent = 0; persistent < 2; ++persistent) {
    ct_tape *t = ts_tape(ctx, persistent != 0, true);
    ct_tensor *r[7] = {NULL};
    OK(ct_matmul(x, w1, false, false, &r[0]));
    OK(ct_add(r[0], b1, &r[1]));
    OK(ct_relu(r[1], &r[2]));
    OK(ct_matmul(r[2], w2, false, false, &r[3]));
    OK(ct_add(r[3], b2, &r[4]));
    OK(ct_square(r[4], &r[5]));
    OK(ct_mean(r[5], NULL, 0, false, &r[6]));
    OK(ct_tape_end(t));
    /* x for dW1; relu's output (also matmul 2's input) once; W2 for dh; the logits for square;
     * the mean's divisor (a float32 scalar) */
    uint64_t want = (uint64_t)(B * I + B * H + H * O + B * O + 1) * 4;
    cr_assert_eq(saved(t), want, "saved %llu, wanted %llu", (unsigned long long)saved(t), (unsigned long long)want);
    ct_tensor *src[4] = {w1, b1, w2, b2}, *g[4];
    OK(ct_tape_gradient(t, &r[6], 1, src, 4, NULL, CT_UNCONNECTED_NONE, g));
    for (int i = 0; i < 4; ++i) cr_assert(g[i]);
    cr_assert_eq(saved(t), persistent ? want : 0);
    ct_tensor_free_n(g, 4);
    ct_tensor_free_n(r, 7);
    ct_tape_free(t);
  }
  ct_tensor *tmp[] = {x, w1i, w2i, w1, w2, b1, b2};
  ct_tensor_free_n(tmp, 7);
  ct_context_free(ctx);
}

/* ---- the registry and user ops -------------------------------------------------------------- */
static ct_status double_exp_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  int *calls = user;
  ++*calls;
  cr_assert_eq(ct_grad_ctx_num_inputs(g), 1);
  cr_assert(ct_grad_ctx_input(g, 0), "a registered gradient can read every input");
  cr_assert(ct_grad_ctx_output(g));
  ct_tensor *t = NULL;
  ct_status s = ct_mul_scalar(ct_grad_ctx_output(g), 2.0, &t);
  if (s == CT_OK) s = ct_mul(dy, t, &dx[0]);
  ct_tensor_free(t);
  return s;
}
static ct_status wrong_shape_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)g;
  (void)dy;
  (void)user;
  const double v[3] = {1, 2, 3};
  dx[0] = ts_tensor(ct_tensor_context(dy), CT_FLOAT32, 1, SH(3), v);
  return CT_OK;
}
static ct_status failing_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)g;
  (void)user;
  return ct_reshape(dy, 1, SH(5), &dx[0]);
}

static const char *scale_src = "__kernel void scale3(int n, __global T *out, __global const T *x, int r, int8 s) {\n"
                               "  int i = get_global_id(0);\n"
                               "  if (i < n) out[i] = (T)3 * x[i];\n"
                               "}\n";

Test(tape, registry_and_user_ops) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = var(ctx, 0.5, "x", true), *r[8] = {NULL}, *g = NULL;
  /* override a built-in gradient; registered before recording, the record keeps every input */
  int calls = 0;
  OK(ct_register_gradient("Exp", double_exp_grad, &calls));
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_exp(x, &r[0]));
  OK(ct_sin(x, &r[1]));
  OK(ct_tape_end(t));
  g = ts_grad1(t, r[0], x);
  cr_assert_eq(calls, 1);
  cr_assert_float_eq(ts_item(g), 2 * exp(0.5), 1e-5);
  ct_tensor_free(g);
  /* declared non-differentiable: NULL, no error; then restored */
  OK(ct_register_no_gradient("Sin"));
  g = ts_grad1(t, r[1], x);
  cr_assert_null(g);
  OK(ct_unregister_gradient("Sin"));
  OK(ct_unregister_gradient("Exp"));
  g = ts_grad1(t, r[1], x);
  cr_assert_float_eq(ts_item(g), cos(0.5), 1e-6);
  ct_tensor_free(g);
  g = ts_grad1(t, r[0], x);
  cr_assert_float_eq(ts_item(g), exp(0.5), 1e-5);
  cr_assert_eq(calls, 1);
  ct_tensor_free(g);
  ct_tape_free(t);
  /* a user gradient of the wrong shape, or one that fails, is reported with the op's name */
  const double v2[2] = {0.1, 0.2};
  ct_tensor *xv = f32(ctx, 1, SH(2), v2);
  t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, xv));
  OK(ct_exp(xv, &r[4]));
  OK(ct_tape_end(t));
  OK(ct_register_gradient("Exp", wrong_shape_grad, NULL));
  EXPECT_STATUS(ct_tape_gradient1(t, r[4], xv, &g), CT_ERR_SHAPE);
  cr_assert(strstr(ct_errmsg(), "Exp") && strstr(ct_errmsg(), "(3,)"), "%s", ct_errmsg());
  OK(ct_register_gradient("Exp", failing_grad, NULL));
  EXPECT_STATUS(ct_tape_gradient1(t, r[4], xv, &g), CT_ERR_SHAPE);
  cr_assert(strstr(ct_errmsg(), "gradient of Exp failed"), "%s", ct_errmsg());
  OK(ct_unregister_gradient("Exp"));
  ct_tensor_free(xv);
  ct_tape_free(t);
  /* registry mistakes */
  EXPECT_STATUS(ct_register_gradient("Exp", NULL, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_register_gradient("", double_exp_grad, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_register_gradient(NULL, double_exp_grad, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_unregister_gradient("NoSuchOp"), CT_ERR_NOT_FOUND);
  EXPECT_STATUS(ct_unregister_gradient(NULL), CT_ERR_NULL);
  /* user ops */
  ct_custom_op op = {"Scale3", scale_src, "scale3", 1, NULL, NULL};
  OK(ct_custom_op_register(&op));
  EXPECT_STATUS(ct_custom_op_register(&op), CT_ERR_INVALID);
  ct_custom_op builtin = {"Relu", scale_src, "scale3", 1, NULL, NULL};
  EXPECT_STATUS(ct_custom_op_register(&builtin), CT_ERR_INVALID);
  ct_custom_op none = {"X", NULL, "scale3", 1, NULL, NULL}, many = {"Y", scale_src, "scale3", 9, NULL, NULL};
  EXPECT_STATUS(ct_custom_op_register(&none), CT_ERR_NULL);
  EXPECT_STATUS(ct_custom_op_register(&many), CT_ERR_INVALID);
  EXPECT_STATUS(ct_custom_op_register(NULL), CT_ERR_NULL);
  ct_custom_op unnamed = {"", scale_src, "scale3", 1, NULL, NULL};
  EXPECT_STATUS(ct_custom_op_register(&unnamed), CT_ERR_INVALID);
  EXPECT_STATUS(ct_custom_op_call(ctx, "NoSuchOp", &x, 1, &r[2]), CT_ERR_NOT_FOUND);
  EXPECT_STATUS(ct_custom_op_call(ctx, "Scale3", &x, 2, &r[2]), CT_ERR_INVALID);
  t = ts_tape(ctx, true, true);
  OK(ct_custom_op_call(ctx, "Scale3", &x, 1, &r[2]));
  OK(ct_square(r[2], &r[3]));
  OK(ct_tape_end(t));
  cr_assert_float_eq(ts_item(r[2]), 1.5, 1e-6);
  EXPECT_STATUS(ct_tape_gradient1(t, r[3], x, &g), CT_ERR_NO_GRADIENT);
  cr_assert_str_eq(ct_errmsg(), "gradient registry has no entry for: Scale3");
  /* a path that does not go through the op needs no gradient for it */
  ct_tensor *xx = NULL;
  OK(ct_tape_gradient1(t, r[3], r[2], &xx));
  cr_assert_float_eq(ts_item(xx), 3.0, 1e-6);
  ct_tensor_free(xx);
  /* declared non-differentiable: NULL instead of an error */
  OK(ct_register_no_gradient("Scale3"));
  g = ts_grad1(t, r[3], x);
  cr_assert_null(g);
  ct_tape_free(t);
  ct_tensor_free_n(r, 8);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- stop_gradient and higher order ---------------------------------------------------------- */
Test(tape, stop_gradient_and_higher_order) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = var(ctx, 2.0, "x", true), *y = var(ctx, 3.0, "y", true), *r[8] = {NULL};
  /* stop_gradient: x * stop(x) differentiates as a constant factor */
  ct_tape *t = ts_tape(ctx, false, true);
  OK(ct_stop_gradient(x, &r[0]));
  OK(ct_mul(x, r[0], &r[1]));
  OK(ct_tape_end(t));
  ct_tensor *g = ts_grad1(t, r[1], x);
  cr_assert_float_eq(ts_item(g), 2.0, 1e-6);
  ct_tensor_free(g);
  ct_tape_free(t);
  ct_tensor_free_n(r, 2);
  /* d2/dx2 x^3 at 2 = 12, through pow and through products; d3/dx3 = 6 with three tapes */
  for (int form = 0; form < 2; ++form) {
    ct_tape *t3 = ts_tape(ctx, false, true), *t2 = ts_tape(ctx, false, true), *t1 = ts_tape(ctx, false, true);
    ct_tensor *y3 = NULL, *sq = NULL;
    if (form == 0) OK(ct_pow_scalar(x, 3.0, &y3));
    else {
      OK(ct_mul(x, x, &sq));
      OK(ct_mul(sq, x, &y3));
    }
    OK(ct_tape_end(t1));
    ct_tensor *d1 = ts_grad1(t1, y3, x);
    OK(ct_tape_end(t2));
    ct_tensor *d2 = ts_grad1(t2, d1, x);
    OK(ct_tape_end(t3));
    ct_tensor *d3 = ts_grad1(t3, d2, x);
    cr_assert_float_eq(ts_item(d1), 12.0, 1e-5);
    cr_assert_float_eq(ts_item(d2), 12.0, 1e-5, "d2/dx2 x^3 at 2 (form %d)", form);
    cr_assert_float_eq(ts_item(d3), 6.0, 1e-5);
    ct_tensor *tmp[] = {y3, sq, d1, d2, d3};
    ct_tensor_free_n(tmp, 5);
    ct_tape_free(t1);
    ct_tape_free(t2);
    ct_tape_free(t3);
  }
  /* a mixed partial: d/dy (d/dx (x y^2)) = 2 y */
  ct_tape *outer = ts_tape(ctx, false, true), *inner = ts_tape(ctx, false, true);
  OK(ct_square(y, &r[0]));
  OK(ct_mul(x, r[0], &r[1]));
  OK(ct_tape_end(inner));
  ct_tensor *dx = ts_grad1(inner, r[1], x);
  OK(ct_tape_end(outer));
  ct_tensor *dxy = ts_grad1(outer, dx, y);
  cr_assert_float_eq(ts_item(dx), 9.0, 1e-5);
  cr_assert_float_eq(ts_item(dxy), 6.0, 1e-5);
  ct_tensor_free(dx);
  ct_tensor_free(dxy);
  ct_tape_free(inner);
  ct_tape_free(outer);
  ct_tensor_free_n(r, 8);
  ct_tensor_free(x);
  ct_tensor_free(y);
  ct_context_free(ctx);
}

/* ---- jacobians ------------------------------------------------------------------------------- */
Test(tape, jacobian_and_batch_jacobian) {
  ct_context *ctx = ts_ctx();
  const double xv[3] = {1, 2, 3}, wv[6] = {1, 2, 3, 4, 5, 6};
  ct_tensor *x = f64(ctx, 1, SH(3), xv), *w = f64(ctx, 2, SH(2, 3), wv), *r[6] = {NULL}, *j = NULL;
  ct_tape *t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, x));
  OK(ct_square(x, &r[0]));      /* (3,) */
  OK(ct_reshape(x, 2, SH(3, 1), &r[1]));
  OK(ct_matmul(w, r[1], false, false, &r[2])); /* (2, 1) = W x */
  OK(ct_tape_end(t));
  OK(ct_tape_jacobian(t, r[0], x, CT_UNCONNECTED_NONE, &j));
  ts_assert_shape(j, 2, SH(3, 3), "jacobian of x^2");
  const double diag[9] = {2, 0, 0, 0, 4, 0, 0, 0, 6};
  ts_assert_close(j, diag, 9, 0, 0, "diag(2x)");
  ct_tensor_free(j);
  OK(ct_tape_jacobian(t, r[2], x, CT_UNCONNECTED_NONE, &j));
  ts_assert_shape(j, 3, SH(2, 1, 3), "jacobian of W x");
  ts_assert_close(j, wv, 6, 0, 0, "W");
  ct_tensor_free(j);
  ct_tensor *other = f64(ctx, 1, SH(2), xv);
  OK(ct_tape_jacobian(t, r[0], other, CT_UNCONNECTED_NONE, &j));
  cr_assert_null(j);
  OK(ct_tape_jacobian(t, r[0], other, CT_UNCONNECTED_ZERO, &j));
  ts_assert_shape(j, 2, SH(3, 2), "zeros");
  const double z6[6] = {0};
  ts_assert_close(j, z6, 6, 0, 0, "zeros");
  ct_tensor_free(j);
  ct_tape_free(t);
  /* batch jacobian: y[b] = x[b] @ W^T, so each example's jacobian is W */
  const double xb[6] = {1, 2, 3, -1, 0.5, 2};
  ct_tensor *xbt = f64(ctx, 2, SH(2, 3), xb);
  t = ts_tape(ctx, false, true);
  OK(ct_tape_watch(t, xbt));
  OK(ct_matmul(xbt, w, false, true, &r[3])); /* (2, 2) */
  OK(ct_square(xbt, &r[4]));                  /* (2, 3) */
  OK(ct_tape_end(t));
  OK(ct_tape_batch_jacobian(t, r[3], xbt, CT_UNCONNECTED_NONE, &j));
  ts_assert_shape(j, 3, SH(2, 2, 3), "batch jacobian");
  const double ww[12] = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
  ts_assert_close(j, ww, 12, 0, 0, "W per example");
  ct_tensor_free(j);
  /* the non-persistent tape allowed that one computation only */
  EXPECT_STATUS(ct_tape_batch_jacobian(t, r[4], xbt, CT_UNCONNECTED_NONE, &j), CT_ERR_TAPE_USED);
  cr_assert_null(j);
  ct_tape_free(t);
  t = ts_tape(ctx, true, true);
  OK(ct_tape_watch(t, xbt));
  ct_tensor_free(r[4]);
  OK(ct_square(xbt, &r[4]));
  OK(ct_tape_end(t));
  OK(ct_tape_batch_jacobian(t, r[4], xbt, CT_UNCONNECTED_NONE, &j));
  ts_assert_shape(j, 3, SH(2, 3, 3), "batch jacobian of x^2");
  const double bd[18] = {2, 0, 0, 0, 4, 0, 0, 0, 6, -2, 0, 0, 0, 1, 0, 0, 0, 4};
  ts_assert_close(j, bd, 18, 0, 0, "diag(2 x[b])");
  ct_tensor_free(j);
  EXPECT_STATUS(ct_tape_batch_jacobian(t, r[4], x, CT_UNCONNECTED_NONE, &j), CT_ERR_SHAPE);
  ct_tensor *ri = NULL;
  OK(ct_cast(x, CT_INT32, &ri));
  EXPECT_STATUS(ct_tape_jacobian(t, ri, x, CT_UNCONNECTED_NONE, &j), CT_ERR_DTYPE);
  ct_tensor_free(ri);
  ct_tape_free(t);
  ct_tensor_free_n(r, 6);
  ct_tensor *tmp[] = {x, w, other, xbt};
  ct_tensor_free_n(tmp, 4);
  ct_context_free(ctx);
}

/* ---- the user op of S19 on a real image ---------------------------------------------------- */
Test(tape, user_op_with_gradient_on_an_image) {
  ct_context *ctx = ts_ctx();
  OK(ts_contrast_register("AdjustContrastv2", true));
  /* 2x2 image, 2 channels; channel means 0.25 and 1.0 */
  const double iv[8] = {0, 1, 0.5, 2, 0, 0, 0.5, 1};
  ct_tensor *img = f32(ctx, 3, SH(2, 2, 2), iv), *delta = NULL, *out = NULL;
  OK(ct_variable_scalar(ctx, 2.0, "delta", true, &delta));
  ct_tape *t = ts_tape(ctx, false, true);
  OK(ct_tape_watch(t, img));
  ct_tensor *in[2] = {img, delta};
  OK(ct_custom_op_call(ctx, "AdjustContrastv2", in, 2, &out));
  OK(ct_tape_end(t));
  const double want[8] = {-0.25, 1, 0.75, 3, -0.25, -1, 0.75, 1};
  ts_assert_close(out, want, 8, 1e-6, 0, "(x - m) * 2 + m");
  const double ogv[8] = {1, 0, 0, 0, 0, 0, 0, 0};
  ct_tensor *og = f32(ctx, 3, SH(2, 2, 2), ogv), *g[2];
  OK(ct_tape_gradient(t, &out, 1, in, 2, &og, CT_UNCONNECTED_NONE, g));
  /* d out[0,0,0] / d x: 2 at (0,0,0), (1 - 2)/4 at every pixel of channel 0 */
  const double dimg[8] = {2 - 0.25, 0, -0.25, 0, -0.25, 0, -0.25, 0};
  ts_assert_close(g[0], dimg, 8, 1e-6, 0, "d image");
  cr_assert_float_eq(ts_item(g[1]), 0 - 0.25, 1e-6, "d delta = x - m at (0,0,0)");
  ct_tensor_free_n(g, 2);
  ct_tensor *tmp[] = {img, delta, out, og};
  ct_tensor_free_n(tmp, 4);
  ct_tape_free(t);
  ct_context_free(ctx);
}

/* ---- threads ------------------------------------------------------------------------------- */
typedef struct {
  ct_tape *foreign;
  ct_status end_status;
  int recorded;
} thread_job;

static void *other_thread(void *p) {
  thread_job *job = p;
  ct_context *ctx = NULL;
  if (ct_context_create(NULL, &ctx) != CT_OK) return NULL;
  ct_tensor *v = NULL, *y = NULL;
  ct_variable_scalar(ctx, 2.0, "v", true, &v);
  ct_square(v, &y); /* the main thread's tape is not this thread's */
  job->end_status = ct_tape_end(job->foreign);
  ct_tape *mine = NULL;
  ct_tape_begin(ctx, NULL, &mine);
  ct_tensor *y2 = NULL;
  ct_square(v, &y2);
  job->recorded = ct_tape_size(mine);
  ct_tape_free(mine);
  ct_tensor_free(y2);
  ct_tensor_free(y);
  ct_tensor_free(v);
  ct_context_free(ctx);
  return NULL;
}

Test(tape, tapes_are_per_thread) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = var(ctx, 1.0, "x", true), *y = NULL;
  ct_tape *t = ts_tape(ctx, false, true);
  thread_job job = {t, CT_OK, -1};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, other_thread, &job), 0);
  pthread_join(th, NULL);
  cr_assert_eq(ct_tape_size(t), 0, "another thread's op was recorded");
  cr_assert_eq(watched_count(t), 0);
  cr_assert_eq(job.end_status, CT_ERR_INVALID, "ending a tape from another thread");
  cr_assert_eq(job.recorded, 1, "a tape on the other thread records that thread's ops");
  OK(ct_square(x, &y));
  cr_assert_eq(ct_tape_size(t), 1, "still recording on its own thread");
  ct_tape_free(t);
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- logging ------------------------------------------------------------------------------- */
static int warnings;
static char last[512];
static void collect(ct_log_level level, const char *msg, void *user) {
  if (level == CT_LOG_WARNING) ++*(int *)user;
  snprintf(last, sizeof last, "%s", msg);
}

Test(tape, warnings_go_through_the_log_callback_or_stderr) {
  ct_context *ctx = ts_ctx();
  ct_tensor *i = NULL;
  OK(ct_scalar(ctx, CT_INT32, 10, &i));
  ct_tape *t = ts_tape(ctx, false, true);
  ct_set_log(collect, &warnings);
  OK(ct_tape_watch(t, i));
  cr_assert_eq(warnings, 1);
  cr_assert_str_eq(last, "The dtype of the watched tensor must be floating (e.g. float32), got int32");
  /* NULL restores the default: a line on stderr */
  ct_set_log(NULL, NULL);
  char path[] = "/tmp/cltape_log_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  fflush(stderr);
  int saved_fd = dup(2);
  dup2(fd, 2);
  OK(ct_tape_watch(t, i));
  fflush(stderr);
  dup2(saved_fd, 2);
  close(saved_fd);
  char buf[512] = {0};
  lseek(fd, 0, SEEK_SET);
  ssize_t got = read(fd, buf, sizeof buf - 1);
  close(fd);
  unlink(path);
  cr_assert_gt(got, 0);
  cr_assert(strstr(buf, "cltape: warning: The dtype of the watched tensor must be floating (e.g. float32), got int32\n"),
            "stderr: %s", buf);
  cr_assert_eq(warnings, 1, "the callback was replaced");
  ct_tape_free(t);
  ct_tensor_free(i);
  ct_context_free(ctx);
}
