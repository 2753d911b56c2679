/*
 * test_limits.c — device limits and index widths. Each limit a device may have (few work-items per
 * group, little local memory, a large sub-buffer alignment, OpenCL 1.2 only) is faked on the
 * device at hand through its CLTAPE_TEST_* variable (read once, when a context is created:
 * host/runtime.c). A workload touching every kind of launch then runs under the limit and must
 * give exactly what it gives without it (integer-valued data: no rounding differences), and no
 * launch may exceed the limit. 64-bit index math: the long build of every program against the int
 * build, and a launch of more than 2^31 work-items that writes a few elements.
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_host.h"
#include "ct_internal.h"
#include <stdlib.h>
#include <string.h>

#include "cltape_nn.h"

#define MAX_RESULTS 64
typedef struct {
  int n;
  int64_t size[MAX_RESULTS];
  double *v[MAX_RESULTS];
  char what[MAX_RESULTS][32];
} results;

static void keep(results *r, const char *what, ct_tensor *t) {
  cr_assert_lt(r->n, MAX_RESULTS);
  r->size[r->n] = ct_tensor_size(t);
  r->v[r->n] = ts_read(t);
  snprintf(r->what[r->n], sizeof r->what[r->n], "%s", what);
  r->n++;
  ct_tensor_free(t);
}

static void results_free(results *r) {
  for (int i = 0; i < r->n; ++i) free(r->v[i]);
  r->n = 0;
}

/* small integers, so that every sum and product below is exact in float32 whatever its order */
static ct_tensor *ints(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, int seed) {
  int64_t n = ts_numel(rank, shape);
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  cr_assert(v);
  for (int64_t i = 0; i < n; ++i) v[i] = (double)((i * 7 + seed) % 11 - 5);
  ct_tensor *t = ts_tensor(ctx, dt, rank, shape, v);
  free(v);
  return t;
}

/* Keeps the gradients of sum(y * w) with respect to the n sources, for w small integers shaped
 * like y; y is computed by `f` on a tape watching the sources. */
typedef ct_status (*fwd_fn)(ct_tensor *const *src, ct_tensor **y);
static void keep_grads(ct_context *ctx, results *r, const char *what, fwd_fn f, ct_tensor *const *src, int n) {
  ct_tape *tape;
  OK(ct_tape_begin(ctx, NULL, &tape));
  for (int i = 0; i < n; ++i) OK(ct_tape_watch(tape, src[i]));
  ct_tensor *y = NULL, *t = NULL;
  OK(f(src, &y));
  ct_tensor *w = ints(ctx, ct_tensor_dtype(y), ct_tensor_rank(y), ct_tensor_shape(y), 9);
  OK(ct_mul(y, w, &t));
  OK(ct_tape_end(tape));
  ct_tensor *g[4] = {NULL, NULL, NULL, NULL};
  OK(ct_tape_gradient(tape, &t, 1, src, n, NULL, CT_UNCONNECTED_NONE, g));
  for (int i = 0; i < n; ++i) {
    char name[32];
    snprintf(name, sizeof name, "%s d%d", what, i);
    keep(r, name, g[i]);
  }
  ct_tape_free(tape);
  ct_tensor_free_n((ct_tensor *[]){y, w, t}, 3);
}
static ct_status conv_same(ct_tensor *const *s, ct_tensor **y) { return ct_conv2d(s[0], s[1], (int[]){1, 2}, CT_PADDING_SAME, y); }
static ct_status conv_valid(ct_tensor *const *s, ct_tensor **y) { return ct_conv2d(s[0], s[1], NULL, CT_PADDING_VALID, y); }
static ct_status max_disjoint(ct_tensor *const *s, ct_tensor **y) {
  return ct_max_pool2d(s[0], (int[]){2, 2}, NULL, CT_PADDING_VALID, y);
}
static ct_status max_overlap(ct_tensor *const *s, ct_tensor **y) {
  return ct_max_pool2d(s[0], (int[]){3, 3}, (int[]){2, 1}, CT_PADDING_SAME, y);
}
static ct_status avg_same(ct_tensor *const *s, ct_tensor **y) {
  return ct_avg_pool2d(s[0], (int[]){3, 2}, (int[]){2, 2}, CT_PADDING_SAME, y);
}
static ct_status bias(ct_tensor *const *s, ct_tensor **y) { return ct_bias_add(s[0], s[1], y); }
static ct_status xent(ct_tensor *const *s, ct_tensor **y) { return ct_sparse_softmax_cross_entropy(s[0], s[1], y); }

/* The layer library's launches: convolutions and their two backprops (vector and scalar kernels,
 * strided, padded), pooling and its gradients, bias and its gradient, softmax cross-entropy and
 * its gradient, dropout and an optimizer step. */
static void nn_workload(ct_context *ctx, results *r) {
  for (int k = 0; k < 2; ++k) {
    int64_t ch = k ? 3 : 8; /* 8: the vector kernels; 3: the scalar ones */
    ct_tensor *img = ints(ctx, CT_FLOAT32, 4, (int64_t[]){2, 9, 11, ch}, 7);
    ct_tensor *f = ints(ctx, CT_FLOAT32, 4, (int64_t[]){3, 3, ch, 8}, 8);
    ct_tensor *y = NULL;
    OK(ct_conv2d(img, f, (int[]){1, 2}, CT_PADDING_SAME, &y));
    keep(r, k ? "conv2d (scalar)" : "conv2d (vector)", y);
    OK(ct_max_pool2d(img, (int[]){2, 2}, NULL, CT_PADDING_VALID, &y));
    keep(r, k ? "max_pool2d (scalar)" : "max_pool2d (vector)", y);
    keep_grads(ctx, r, "conv2d same", conv_same, (ct_tensor *[]){img, f}, 2);
    keep_grads(ctx, r, "conv2d valid", conv_valid, (ct_tensor *[]){img, f}, 2);
    keep_grads(ctx, r, "max_pool disjoint", max_disjoint, &img, 1);
    keep_grads(ctx, r, "max_pool overlapping", max_overlap, &img, 1);
    keep_grads(ctx, r, "avg_pool", avg_same, &img, 1);
    ct_tensor *b = ints(ctx, CT_FLOAT32, 1, &ch, 3);
    keep_grads(ctx, r, "bias_add", bias, (ct_tensor *[]){img, b}, 2);
    ct_tensor_free_n((ct_tensor *[]){img, f, b}, 3);
  }
  ct_tensor *logits = ints(ctx, CT_FLOAT32, 2, (int64_t[]){6, 7}, 4);
  ct_tensor *labels = ts_tensor(ctx, CT_INT32, 1, (int64_t[]){6}, (double[]){0, 6, 3, 3, 1, 5});
  keep_grads(ctx, r, "softmax xent", xent, (ct_tensor *[]){logits, labels}, 1);
  ct_tensor *y = NULL;
  OK(ct_sparse_softmax_cross_entropy(logits, labels, &y));
  keep(r, "softmax xent", y);
  ct_tensor *x = ints(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 5);
  OK(ct_dropout(x, 0.5, 77, &y));
  keep(r, "dropout", y);
  ct_tensor *var = NULL;
  OK(ct_variable_create(x, "p", true, &var));
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  ct_optimizer *opt = NULL;
  OK(ct_optimizer_create(ctx, &o, &opt));
  OK(ct_optimizer_apply(opt, &x, &var, 1));
  OK(ct_identity(var, &y));
  keep(r, "adam step", y);
  ct_optimizer_free(opt);
  ct_tensor_free_n((ct_tensor *[]){logits, labels, x, var}, 4);
}

/* Every kind of launch: elementwise (same shape, scalar, broadcast), where, casts, fill, iota,
 * reductions by rows (one work-group per row, several and a second pass, or short rows one per
 * work-item) and by columns (one or a vector of them per work-item), arg-reductions, strided
 * copies (transpose, reversed slices at odd offsets), gather, one_hot, the tiled matmul (B in
 * place, packed panels, batched) and the layer library's kernels (2-D ranges). */
static void workload(ct_context *ctx, results *r) {
  ct_tensor *x = ints(ctx, CT_FLOAT32, 3, (int64_t[]){4, 3, 50}, 1);
  ct_tensor *b = ints(ctx, CT_FLOAT32, 2, (int64_t[]){3, 1}, 2);
  ct_tensor *s = ints(ctx, CT_FLOAT32, 0, NULL, 3);
  ct_tensor *y = NULL, *m = NULL;
  OK(ct_add(x, b, &y));
  keep(r, "broadcast add", y);
  OK(ct_mul(x, x, &y));
  keep(r, "same-shape mul", y);
  OK(ct_sub(x, s, &y));
  keep(r, "scalar sub", y);
  OK(ct_greater(x, b, &m));
  OK(ct_where(m, x, b, &y));
  keep(r, "where", y);
  ct_tensor_free(m);
  OK(ct_cast(x, CT_INT32, &m));
  OK(ct_add(m, m, &y));
  keep(r, "int32 add", y);
  ct_tensor_free(m);
  OK(ct_range(ctx, CT_FLOAT32, 0, 300, 1, &y));
  keep(r, "range", y);
  OK(ct_fill(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 2, &y));
  keep(r, "fill", y);
  ct_tensor *v = ints(ctx, CT_FLOAT32, 1, (int64_t[]){16384}, 4);
  OK(ct_sum(v, NULL, 0, false, &y));
  keep(r, "sum by rows", y);
  OK(ct_max(v, NULL, 0, false, &y));
  keep(r, "max by rows", y);
  ct_tensor_free(v);
  v = ints(ctx, CT_FLOAT32, 2, (int64_t[]){2, 140003}, 9);
  OK(ct_sum(v, (int[]){1}, 1, false, &y));
  keep(r, "sum by rows in parts", y);
  OK(ct_min(v, (int[]){1}, 1, false, &y));
  keep(r, "min by rows in parts", y);
  ct_tensor_free(v);
  v = ints(ctx, CT_FLOAT32, 2, (int64_t[]){300, 45}, 11);
  OK(ct_sum(v, (int[]){1}, 1, false, &y));
  keep(r, "sum by short rows", y);
  ct_tensor_free(v);
  v = ints(ctx, CT_FLOAT32, 2, (int64_t[]){600, 32}, 10);
  OK(ct_sum(v, (int[]){0}, 1, false, &y));
  keep(r, "sum by vectors of columns", y);
  ct_tensor_free(v);
  OK(ct_sum(x, (int[]){1}, 1, false, &y));
  keep(r, "sum by columns", y);
  OK(ct_argmax(x, 2, &y));
  keep(r, "argmax", y);
  OK(ct_argsort(x, 2, false, &y));
  keep(r, "argsort", y);
  OK(ct_argsort(x, 0, true, &y));
  keep(r, "argsort descending", y);
  OK(ct_transpose(x, (int[]){2, 0, 1}, &y));
  keep(r, "transpose", y);
  OK(ct_slice(x, (int64_t[]){3, 1, 47}, (int64_t[]){0, 3, 2}, (int64_t[]){-1, 1, -3}, &y));
  keep(r, "reversed slice", y);
  ct_tensor *idx = ts_tensor(ctx, CT_INT32, 1, (int64_t[]){5}, (double[]){2, 0, 49, 7, 7});
  OK(ct_gather(x, idx, 2, &y));
  keep(r, "gather", y);
  OK(ct_one_hot(idx, 50, CT_FLOAT32, &y));
  keep(r, "one_hot", y);
  ct_tensor_free(idx);
  ct_tensor *a = ints(ctx, CT_FLOAT32, 2, (int64_t[]){37, 29}, 5);
  ct_tensor *c = ints(ctx, CT_FLOAT32, 2, (int64_t[]){29, 45}, 6);
  OK(ct_matmul(a, c, false, false, &y));
  keep(r, "matmul", y);
  OK(ct_matmul(a, a, true, false, &y));
  keep(r, "matmul (a^T a)", y);
  ct_tensor_free(a);
  ct_tensor_free(c);
  /* B large enough to be packed into panels, transposed operands, a batch of three */
  a = ints(ctx, CT_FLOAT32, 3, (int64_t[]){3, 61, 150}, 6);
  c = ints(ctx, CT_FLOAT32, 3, (int64_t[]){3, 150, 83}, 7);
  OK(ct_matmul(a, c, false, false, &y));
  keep(r, "batched matmul (packed)", y);
  OK(ct_matmul(c, c, true, false, &y));
  keep(r, "batched matmul (b^T b)", y);
  OK(ct_matmul(a, a, false, true, &y));
  keep(r, "batched matmul (a a^T)", y);
  ct_tensor_free(a);
  ct_tensor_free(c);
  nn_workload(ctx, r);
  ct_tensor_free(x);
  ct_tensor_free(b);
  ct_tensor_free(s);
  OK(ct_context_sync(ctx));
}

static void expect_same(const results *got, const results *want, const char *limit) {
  cr_assert_eq(got->n, want->n);
  for (int i = 0; i < got->n; ++i) {
    cr_assert_eq(got->size[i], want->size[i], "%s: %s", limit, got->what[i]);
    for (int64_t k = 0; k < got->size[i]; ++k)
      cr_assert_eq(got->v[i][k], want->v[i][k], "%s: %s element %lld is %.9g, wanted %.9g", limit, got->what[i],
                   (long long)k, got->v[i][k], want->v[i][k]);
  }
}

/* The workload on a context created with `var`=`value` against a context created without it. */
static ct_context *under_limit(const char *var, const char *value) {
  ct__env_override("CLTAPE_MATMUL", "tiled"); /* the library's own kernels, whose launches it sizes */
  ct_context *ref_ctx = ts_ctx();
  results ref = {0}, got = {0};
  workload(ref_ctx, &ref);
  ct__env_override(var, value);
  ct_context *ctx = ts_ctx();
  ct__env_override(var, NULL);
  workload(ctx, &got);
  char limit[96];
  snprintf(limit, sizeof limit, "%s=%s", var, value);
  expect_same(&got, &ref, limit);
  results_free(&ref);
  results_free(&got);
  ct_context_free(ref_ctx);
  return ctx;
}

Test(limits, max_work_group) {
  ct_context *ctx = under_limit("CLTAPE_TEST_MAX_WORK_GROUP", "64");
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  cr_assert_eq(info.max_work_group_size, 64);
  cr_assert_eq(ctx->group, 64);
  cr_assert(ctx->largest_group > 0 && ctx->largest_group <= 64, "a group of %zu work-items", ctx->largest_group);
  ct_context_free(ctx);
}

Test(limits, max_work_group_not_a_power_of_two) {
  ct_context *ctx = under_limit("CLTAPE_TEST_MAX_WORK_GROUP", "96");
  cr_assert_eq(ctx->group, 64);
  cr_assert(ctx->largest_group > 0 && ctx->largest_group <= 96, "a group of %zu work-items", ctx->largest_group);
  ct_context_free(ctx);
}

Test(limits, local_memory) {
  /* the work-group reductions keep CT_LS elements of up to 8 bytes in local memory */
  ct_context *ctx = under_limit("CLTAPE_TEST_LOCAL_MEM", "512");
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  cr_assert_eq(info.local_mem_bytes, 512);
  cr_assert_eq(ctx->group, 64);
  cr_assert(ctx->largest_group <= info.max_work_group_size);
  ct_context_free(ctx);
}

Test(limits, reduce_strided_rows) {
  /* the rows of the reductions read as on a GPU: each work-item strided by the whole range */
  ct_context *ctx = under_limit("CLTAPE_TEST_REDUCE_STRIDED", "1");
  cr_assert(ctx->reduce_strided);
  ct_context_free(ctx);
}

Test(limits, vector_width) {
  /* the kernels built for vectors of 4 floats (CT_RVW), whatever the device prefers (PoCL on
   * AVX-512: 16): the same results; a width the kernels have no build for is ignored */
  ct_context *ctx = under_limit("CLTAPE_TEST_VECTOR_WIDTH", "4");
  cr_assert_eq(ctx->reduce_vw, 4);
  cr_assert_eq(ctb_fused_lanes(ctx), 4);
  ct_context *ref = ts_ctx();
  ct__env_override("CLTAPE_TEST_VECTOR_WIDTH", "12");
  ct_context *odd = ts_ctx();
  ct__env_override("CLTAPE_TEST_VECTOR_WIDTH", NULL);
  cr_assert_eq(odd->reduce_vw, ref->reduce_vw);
  ct_context_free(odd);
  ct_context_free(ref);
  ct_context_free(ctx);
}

Test(limits, opencl_1_2) {
  ct_context *ctx = under_limit("CLTAPE_TEST_CL_VERSION", "1.2");
  cr_assert_eq(ctx->cl_version, 120);
  cr_assert(!ctb_cl_at_least(ctx, 200));
  cr_assert(ctb_cl_at_least(ctx, 120));
  ct_context_free(ctx);
}

Test(limits, sub_buffer_alignment) {
  /* views at any element offset (the reversed slice, the gathers) work on a device that aligns
   * sub-buffers to 4096 bytes: offsets travel as kernel arguments, never as sub-buffer origins */
  ct_context *ctx = under_limit("CLTAPE_TEST_BASE_ALIGN", "4096");
  cr_assert_eq(ctx->base_align, 4096);
  /* a caller's buffer at an offset is a sub-buffer: the offset must meet the device's alignment,
   * and the refusal names it */
  cl_int err;
  cl_mem m = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, 8192 + 64, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  ct_tensor *t = NULL;
  EXPECT_STATUS(ct_tensor_from_cl_mem_offset(ctx, m, 2048, CT_FLOAT32, 1, (int64_t[]){4}, &t), CT_ERR_INVALID);
  cr_assert(strstr(ct_errmsg(), "4096"), "the message names the alignment: %s", ct_errmsg());
  cr_assert_null(t);
  OK(ct_tensor_from_cl_mem_offset(ctx, m, 8192, CT_FLOAT32, 1, (int64_t[]){4}, &t));
  cr_assert_eq(ct_tensor_size(t), 4);
  ct_tensor_free(t);
  clReleaseMemObject(m);
  ct_context_free(ctx);
}

Test(limits, a_bad_override_is_ignored) {
  ct_context *ref = ts_ctx();
  ct__env_override("CLTAPE_TEST_MAX_WORK_GROUP", "lots");
  ct_context *ctx = ts_ctx();
  ct__env_override("CLTAPE_TEST_MAX_WORK_GROUP", NULL);
  cr_assert_eq(ctx->info.max_work_group_size, ref->info.max_work_group_size);
  cr_assert_eq(ctx->group, ref->group);
  ct_context_free(ctx);
  ct_context_free(ref);
}

/* Whether ctx built the program of this key (family/dtype[/options]), or with `part` any program
 * whose key contains it. */
static bool has_program(const ct_context *ctx, const char *key, bool part) {
  for (const ctb_program *p = ctx->programs; p; p = p->next)
    if (part ? strstr(p->key, key) != NULL : strcmp(p->key, key) == 0) return true;
  return false;
}

/* Whether ctx built a program of family/dtype `stem` (with any options) whose options do, or do
 * not, hold the long index build. */
static bool has_build(const ct_context *ctx, const char *stem, bool idx64) {
  for (const ctb_program *p = ctx->programs; p; p = p->next)
    if (strncmp(p->key, stem, strlen(stem)) == 0 && (strstr(p->key, "-DCT_IDX64=1") != NULL) == idx64) return true;
  return false;
}

/* Every program family, the layer library's and the matrix product's tiles included, in its long
 * build gives exactly what its int build gives (the workload compares every result). */
Test(index64, every_program_with_long_indices) {
  ct__fusion_set(false, -1); /* every op through its own program (fused ones: test_fusion.c) */
  ct_context *ctx = under_limit("CLTAPE_TEST_INDEX64", "1");
  static const char *const keys[] = {"elementwise/float32", "elementwise/int32", "reduce/float32",
                                     "movement/float32",    "nn/float32",        "matmul/float32",
                                     "sort/float32"};
  for (int i = 0; i < (int)(sizeof keys / sizeof *keys); ++i) {
    cr_assert(has_build(ctx, keys[i], true), "%s was not built with long indices", keys[i]);
    cr_assert(!has_build(ctx, keys[i], false), "%s (int indices) built under CLTAPE_TEST_INDEX64", keys[i]);
  }
  ct_context_free(ctx);
}

Test(index64, small_sizes_keep_int_indices) {
  ct_context *ctx = ts_ctx();
  results r = {0};
  workload(ctx, &r);
  results_free(&r);
  cr_assert(!has_program(ctx, "CT_IDX64", true), "a launch of small sizes took the long index build");
  ct_context_free(ctx);
}

/* A strided copy over 2 x (2^30 + 64) positions, past 2^31, that reads and writes only a few
 * elements: both operands step along the first axis only (stride 0 along the second). Each row
 * copies one element; int index math would wrap before the second row ends. */
Test(index64, a_launch_past_2_31_items) {
  ct_context *ctx = ts_ctx();
  ct_buffer *src = NULL, *dst = NULL;
  OK(ctb_alloc(ctx, 4 * sizeof(float), &src));
  OK(ctb_alloc(ctx, 4 * sizeof(float), &dst));
  float s[4] = {10, 20, 30, 40}, d[4] = {-1, -1, -1, -1};
  OK(ctb_write(ctx, src, 0, s, sizeof s));
  OK(ctb_write(ctx, dst, 0, d, sizeof d));
  ctb_geom g;
  memset(&g, 0, sizeof g);
  g.rank = 2;
  g.shape[0] = 2;
  g.shape[1] = (INT64_C(1) << 30) + 64;
  g.n = g.shape[0] * g.shape[1];
  cr_assert_gt(g.n, INT32_MAX);
  g.st[0][0] = 1; /* src[1 + row] */
  g.st[1][0] = 2; /* dst[0 + 2 * row] */
  OK(ctb_copy_strided(ctx, CT_FLOAT32, &g, src, 1, dst, 0));
  OK(ctb_read(ctx, dst, 0, d, sizeof d));
  cr_assert(d[0] == 20 && d[1] == -1 && d[2] == 30 && d[3] == -1, "dst = %g %g %g %g, wanted 20 -1 30 -1", d[0], d[1],
            d[2], d[3]);
  cr_assert(has_program(ctx, "movement/float32/-DCT_IDX64=1", false));
  ctb_release(src);
  ctb_release(dst);
  ct_context_free(ctx);
}

static int programs(const ct_context *ctx) {
  int n = 0;
  for (const ctb_program *p = ctx->programs; p; p = p->next) n++;
  return n;
}

/* Custom kernels take int counts and shapes (their documented arguments): an operand past 2^31 - 1
 * elements is refused before anything is built or launched, naming the kernel and the count. */
Test(index64, custom_kernels_refuse_operands_past_2_31) {
  ct_context *ctx = ts_ctx();
  ct_buffer *b = NULL;
  OK(ctb_alloc(ctx, 4 * sizeof(float), &b));
  const int before = programs(ctx);
  const char *src = "__kernel void k(int n, __global T *y, __global const T *x, int r, int8 s) {}";
  const ct_buffer *in[1] = {b};
  int ranks[1] = {2};
  int64_t shapes[1][CT_MAX_RANK] = {{2, (INT64_C(1) << 30) + 1}};
  EXPECT_STATUS(ctb_custom(ctx, src, "k", CT_FLOAT32, 4, b, 1, in, ranks, (const int64_t(*)[CT_MAX_RANK])shapes),
                CT_ERR_UNSUPPORTED);
  cr_assert(strstr(ct_errmsg(), "kernel k") && strstr(ct_errmsg(), "2147483650"), "%s", ct_errmsg());
  shapes[0][1] = 2;
  EXPECT_STATUS(ctb_custom(ctx, src, "k", CT_FLOAT32, (int64_t)INT32_MAX + 1, b, 1, in, ranks,
                           (const int64_t(*)[CT_MAX_RANK])shapes),
                CT_ERR_UNSUPPORTED);
  cr_assert(strstr(ct_errmsg(), "the output") && strstr(ct_errmsg(), "2147483648"), "%s", ct_errmsg());
  cr_assert_eq(programs(ctx), before, "a refused custom kernel was built");
  ctb_release(b);
  ct_context_free(ctx);
}
