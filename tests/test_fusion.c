/*
 * test_fusion.c — lazy elementwise ops and their fused kernels (lib/fuse.c).
 *
 * Random elementwise graphs (unary and binary rows, scalar forms, broadcasting, compares, where,
 * casts) and their gradients run with fusion off, then with fusion on twice (the first run of a
 * structure is unfused, the second one runs its generated kernel), and the results are compared.
 * The launch counts: a fused graph is one kernel, a tensor read twice is computed once, a graph of
 * constants of a few elements is computed on the host without any kernel.
 *
 * CLTAPE_FUZZ_SEED=<n> CLTAPE_FUZZ_GRAPHS=<count> build/tests/test_fusion --filter 'fusion/random*'
 * runs other graphs.
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_internal.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng;
static uint64_t next_u64(void) { return ts_splitmix64(&rng); }
static int pick(int n) { return (int)(next_u64() % (uint64_t)n); }

static uint64_t kernels(ct_context *ctx) {
  ct_context_stats s;
  OK(ct_context_stats_get(ctx, &s));
  return s.kernels_launched;
}

/* ---- random graphs ---------------------------------------------------------------------------- */
#define MAX_POOL 24
typedef struct {
  ct_tensor *t[MAX_POOL];
  int n;
  char log[2048];
  size_t len;
} pool;

static void note(pool *p, const char *name, int a, int b) {
  if (p->len < sizeof p->log - 64)
    p->len += (size_t)snprintf(p->log + p->len, sizeof p->log - p->len, "%s(%d,%d) ", name, a, b);
}

/* Shapes that broadcast against (3, 5, 7). */
static const int64_t shapes[][3] = {{3, 5, 7}, {5, 7}, {1, 5, 1}, {7}, {3, 1, 7}, {1}};
static const int ranks[] = {3, 2, 3, 1, 3, 1};

/* The graph of a seed: the same ops on the same inputs every time it is built. The inputs are
 * watched by the tape; the result is the sum of the last tensor, its gradient that of each input. */
static void build(ct_context *ctx, uint64_t seed, ct_tape *tape, pool *p, int n_in) {
  rng = seed;
  p->n = 0;
  p->len = 0;
  for (int i = 0; i < n_in; ++i) {
    int s = i == 0 ? 0 : pick(6);
    OK(ct_random_normal(ctx, CT_FLOAT32, ranks[s], shapes[s], 0, 1, seed * 7 + (uint64_t)i, &p->t[p->n]));
    if (tape) OK(ct_tape_watch(tape, p->t[p->n]));
    note(p, "in", s, 0);
    p->n++;
  }
  typedef ct_status (*un_fn)(const ct_tensor *, ct_tensor **);
  typedef ct_status (*bin_fn)(const ct_tensor *, const ct_tensor *, ct_tensor **);
  static const struct {
    un_fn f;
    const char *name;
  } un[] = {{ct_neg, "neg"},   {ct_sin, "sin"},       {ct_cos, "cos"},   {ct_tanh, "tanh"}, {ct_sigmoid, "sigmoid"},
            {ct_exp, "exp"},   {ct_softplus, "softplus"}, {ct_square, "square"}, {ct_abs, "abs"}, {ct_elu, "elu"}};
  static const struct {
    bin_fn f;
    const char *name;
  } bin[] = {{ct_add, "add"}, {ct_sub, "sub"}, {ct_mul, "mul"}, {ct_maximum, "maximum"}, {ct_minimum, "minimum"}};
  int steps = 6 + pick(10);
  for (int k = 0; k < steps && p->n < MAX_POOL; ++k) {
    int a = p->n - 1 - pick(p->n < 3 ? p->n : 3), b = pick(p->n);
    ct_tensor *r = NULL;
    switch (pick(8)) {
    case 0:
    case 1: {
      int u = pick((int)(sizeof un / sizeof *un));
      /* exp and square of something bounded, so that chains stay finite */
      if (un[u].f == ct_exp || un[u].f == ct_square) {
        ct_tensor *th = NULL;
        OK(ct_tanh(p->t[a], &th));
        OK(un[u].f(th, &r));
        ct_tensor_free(th);
      } else {
        OK(un[u].f(p->t[a], &r));
      }
      note(p, un[u].name, a, 0);
      break;
    }
    case 2:
    case 3:
    case 4: {
      int f = pick((int)(sizeof bin / sizeof *bin));
      OK(bin[f].f(p->t[a], p->t[b], &r));
      note(p, bin[f].name, a, b);
      break;
    }
    case 5: /* scalar forms */
      if (pick(2)) OK(ct_mul_scalar(p->t[a], 0.75, &r));
      else OK(ct_rsub_scalar(1.5, p->t[a], &r));
      note(p, "scalar", a, 0);
      break;
    case 6: { /* a compare of two inputs, where */
      int i = pick(n_in), j = pick(n_in);
      ct_tensor *m = NULL;
      OK(ct_greater(p->t[i], p->t[j], &m));
      OK(ct_where(m, p->t[a], p->t[b], &r));
      ct_tensor_free(m);
      note(p, "where", a, b);
      break;
    }
    default: { /* a compare cast to float, times an operand */
      ct_tensor *m = NULL, *mf = NULL;
      OK(ct_less_scalar(p->t[pick(n_in)], 0.25, &m));
      OK(ct_cast(m, CT_FLOAT32, &mf));
      OK(ct_mul(mf, p->t[a], &r));
      ct_tensor_free(m);
      ct_tensor_free(mf);
      note(p, "mask*", a, 0);
      break;
    }
    }
    p->t[p->n++] = r;
  }
}

static void pool_free(pool *p) {
  for (int i = 0; i < p->n; ++i) ct_tensor_free(p->t[i]);
  p->n = 0;
}

typedef struct {
  double *value;
  int64_t n;
  double *grad[3];
  int64_t gn[3];
} result;

static void run(ct_context *ctx, uint64_t seed, result *out) {
  enum { N_IN = 3 };
  pool p;
  ct_tape *tape = NULL;
  ct_tape_options o = ct_tape_default_options();
  o.persistent = true;
  OK(ct_tape_begin(ctx, &o, &tape));
  build(ctx, seed, tape, &p, N_IN);
  ct_tensor *last = p.t[p.n - 1], *sum = NULL;
  OK(ct_sum(last, NULL, 0, false, &sum));
  OK(ct_tape_end(tape));
  out->value = ts_read(last);
  out->n = ct_tensor_size(last);
  for (int i = 0; i < N_IN; ++i) {
    ct_tensor *g = NULL;
    OK(ct_tape_gradient1(tape, sum, p.t[i], &g));
    if (g) {
      out->grad[i] = ts_read(g);
      out->gn[i] = ct_tensor_size(g);
    } else {
      out->grad[i] = NULL;
      out->gn[i] = 0;
    }
    ct_tensor_free(g);
  }
  ct_tensor_free(sum);
  ct_tape_free(tape);
  pool_free(&p);
  (void)p.log;
}

static void result_free(result *r) {
  free(r->value);
  for (int i = 0; i < 3; ++i) free(r->grad[i]);
}

static void compare(const double *got, const double *want, int64_t n, uint64_t seed, const char *what, const char *log) {
  /* the fused kernel may round a chain differently (contracted a*b+c, recomputed operands): the
   * difference stays within a few roundings of each intermediate */
  for (int64_t i = 0; i < n; ++i) {
    double tol = 1e-5 + 1e-4 * fabs(want[i]);
    cr_assert(fabs(got[i] - want[i]) <= tol || (isnan(got[i]) && isnan(want[i])),
              "seed %llu, %s[%lld]: fused %.9g, unfused %.9g; graph %s", (unsigned long long)seed, what, (long long)i,
              got[i], want[i], log);
  }
}

Test(fusion, random_graphs_fused_equal_unfused) {
  ct_context *ctx = ts_ctx();
  const char *se = getenv("CLTAPE_FUZZ_SEED"), *ge = getenv("CLTAPE_FUZZ_GRAPHS");
  uint64_t seed0 = se ? strtoull(se, NULL, 10) : 1234;
  int graphs = ge ? atoi(ge) : 12;
  for (int g = 0; g < graphs; ++g) {
    uint64_t seed = seed0 + (uint64_t)g;
    pool logp;
    build(ctx, seed, NULL, &logp, 3);
    pool_free(&logp);
    result off, first, fused;
    ct__fusion_set(false, -1);
    run(ctx, seed, &off);
    ct__fusion_set(true, 1);
    run(ctx, seed, &first); /* each structure's first run: unfused kernels from pending nodes */
    uint64_t k0 = kernels(ctx);
    run(ctx, seed, &fused); /* the same structures again: their generated kernels */
    uint64_t k1 = kernels(ctx);
    cr_assert_eq(off.n, fused.n);
    compare(first.value, off.value, off.n, seed, "value (first run)", logp.log);
    compare(fused.value, off.value, off.n, seed, "value", logp.log);
    for (int i = 0; i < 3; ++i) {
      cr_assert_eq(off.gn[i], fused.gn[i], "seed %llu: gradient %d", (unsigned long long)seed, i);
      if (off.grad[i]) compare(fused.grad[i], off.grad[i], off.gn[i], seed, "gradient", logp.log);
    }
    cr_assert_gt(k1, k0, "the fused run computed something");
    result_free(&off);
    result_free(&first);
    result_free(&fused);
  }
  ct_context_free(ctx);
}

/* sigmoid(sin(x) * x + exp(-x * x)) */
static ct_tensor *chain(const ct_tensor *x) {
  ct_tensor *v[7] = {0};
  OK(ct_sin(x, &v[0]));
  OK(ct_mul(v[0], x, &v[1]));
  OK(ct_mul(x, x, &v[2]));
  OK(ct_neg(v[2], &v[3]));
  OK(ct_exp(v[3], &v[4]));
  OK(ct_add(v[1], v[4], &v[5]));
  OK(ct_sigmoid(v[5], &v[6]));
  ct_tensor *y = v[6];
  v[6] = NULL;
  ct_tensor_free_n(v, 7);
  return y;
}

Test(fusion, a_fused_graph_is_one_kernel_and_a_read_twice_computes_once) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 1);
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 0, 1, 5, &x));
  double *xv = ts_read(x);
  double want[1000];
  for (int i = 0; i < 1000; ++i) want[i] = 1 / (1 + exp(-(sin(xv[i]) * xv[i] + exp(-xv[i] * xv[i]))));
  free(xv);
  ct_tensor *y = NULL;
  OK(ct_neg(x, &y)); /* the elementwise program, loaded or built before counting */
  OK(ct_context_sync(ctx));
  ct_tensor_free(y);
  ct_context_stats s0, s1;
  OK(ct_context_stats_get(ctx, &s0));
  y = chain(x);
  uint64_t k0 = kernels(ctx);
  ts_assert_close(y, want, 1000, 1e-6, 1e-5, "first run");
  uint64_t k1 = kernels(ctx);
  OK(ct_context_stats_get(ctx, &s1));
  /* the first time this context meets the structure: one kernel per op, unless an earlier process
   * left its generated program in the on-disk cache (then loading it is cheap, and it runs). Other
   * programs may come from the disk here too (the read's, stored a moment ago by a test running
   * beside this one), so the count of loaded programs does not tell which case this is. */
  if (k1 - k0 == 1)
    cr_assert_gt(s1.programs_from_cache, s0.programs_from_cache, "a fused kernel on the first run came from the disk");
  else
    cr_assert_eq(k1 - k0, 7, "the first run of a structure runs one kernel per op (%llu)", (unsigned long long)(k1 - k0));
  cr_assert_eq(s1.programs_built, s0.programs_built, "the first run compiles nothing");
  ct_tensor_free(y);
  y = chain(x);
  cr_assert_eq(kernels(ctx), k1, "building the graph launches nothing");
  ts_assert_close(y, want, 1000, 1e-6, 1e-5, "fused");
  uint64_t k2 = kernels(ctx);
  cr_assert_eq(k2 - k1, 1, "the fused graph is one kernel (%llu)", (unsigned long long)(k2 - k1));
  ts_assert_close(y, want, 1000, 1e-6, 1e-5, "read again");
  cr_assert_eq(kernels(ctx), k2, "a computed tensor read twice launches no second kernel");
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

Test(fusion, with_fusion_off_each_op_is_a_kernel) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(false, -1);
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 0, 1, 5, &x));
  for (int r = 0; r < 2; ++r) {
    uint64_t k0 = kernels(ctx);
    ct_tensor *y = chain(x);
    cr_assert_eq(kernels(ctx) - k0, 7);
    ct_tensor_free(y);
  }
  ct_tensor_free(x);
  ct_context_free(ctx);
}

Test(fusion, a_tiny_graph_of_constants_runs_on_the_host) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 1);
  uint64_t k0 = kernels(ctx);
  ct_tape *tape = NULL;
  ct_tensor *x = NULL, *y = NULL, *z = NULL, *g = NULL, *s = NULL;
  OK(ct_scalar(ctx, CT_FLOAT32, 3.0, &x));
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  OK(ct_mul(x, x, &y));
  OK(ct_mul(y, y, &z));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, z, x, &g));
  OK(ct_sin(z, &s));
  double v;
  OK(ct_tensor_item(z, &v));
  cr_assert_eq(v, 81.0);
  OK(ct_tensor_item(g, &v));
  cr_assert_eq(v, 108.0, "d(x^4)/dx at 3: %g", v);
  OK(ct_tensor_item(s, &v));
  cr_assert_eq(v, (double)(float)sin(81.0));
  cr_assert_eq(kernels(ctx), k0, "computed on the host: no kernel");
  /* the same values on the device once a device op needs them */
  ct_tensor *r = NULL;
  OK(ct_reshape(g, 1, (int64_t[]){1}, &r));
  ct_tensor *c = NULL;
  OK(ct_concat((ct_tensor *[]){r, r}, 2, 0, &c));
  double want[2] = {108.0, 108.0};
  ts_assert_close(c, want, 2, 0, 0, "on the device");
  cr_assert_gt(kernels(ctx), k0);
  ct_tensor_free_n((ct_tensor *[]){x, y, z, g, s, r, c}, 7);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

Test(fusion, pending_tensors_through_every_way_out) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 0);
  ct_tensor *x = NULL, *y = NULL, *v = NULL, *w = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){4, 3}, 0, 1, 9, &x));
  double *xv = ts_read(x);
  OK(ct_mul_scalar(x, 2.0, &y));
  /* a variable takes a pending value; an assignment adds another */
  OK(ct_variable_create(y, "v", true, &v));
  OK(ct_variable_assign_add(v, y));
  double want[12];
  for (int i = 0; i < 12; ++i) want[i] = 4 * xv[i];
  ts_assert_close(v, want, 12, 0, 0, "variable");
  /* a non-elementwise op reads a pending input */
  OK(ct_transpose(y, NULL, &w));
  double wt[12];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) wt[j * 4 + i] = 2 * xv[i * 3 + j];
  ts_assert_close(w, wt, 12, 0, 0, "transpose of a pending tensor");
  free(xv);
  ct_tensor_free_n((ct_tensor *[]){x, y, v, w}, 4);
  ct_context_free(ctx);
}

/* sum / max / min / prod of chain(x) over the given axes of a (256, 384) x; the reduction's launches
 * with fusion off and on (structures compiled at once), their values (n of them) in out. */
static uint64_t reduce_chain(ct_context *ctx, const ct_tensor *x, int which, const int *axes, int n_axes, double *out) {
  uint64_t k0 = kernels(ctx);
  ct_tensor *c = chain(x), *r = NULL;
  switch (which) {
  case 0: OK(ct_sum(c, axes, n_axes, false, &r)); break;
  case 1: OK(ct_max(c, axes, n_axes, false, &r)); break;
  case 2: OK(ct_min(c, axes, n_axes, false, &r)); break;
  default: OK(ct_mean(c, axes, n_axes, false, &r)); break;
  }
  double *v = ts_read(r);
  memcpy(out, v, sizeof(double) * (size_t)r->size);
  free(v);
  uint64_t k = kernels(ctx) - k0;
  ct_tensor_free(r);
  ct_tensor_free(c);
  return k;
}

Test(fusion, a_producer_fuses_into_its_reduction) {
  ct_context *ctx = ts_ctx();
  ct__fusion_reduce_set(1); /* on every device (by default CPUs fuse only producers that read no storage) */
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){256, 384}, 0, 1, 9, &x));
  const int all[] = {0, 1}, rows[] = {1}, cols[] = {0};
  const struct {
    const int *axes;
    int n;
  } cases[] = {{all, 2}, {rows, 1}, {cols, 1}};
  for (int which = 0; which < 4; ++which)
    for (int c = 0; c < 3; ++c) {
      static double off[384], on[384];
      ct__fusion_set(false, -1);
      uint64_t k_off = reduce_chain(ctx, x, which, cases[c].axes, cases[c].n, off);
      ct__fusion_set(true, 0);
      uint64_t k_on = reduce_chain(ctx, x, which, cases[c].axes, cases[c].n, on);
      /* unfused: the chain's 7 kernels, then the reduction's stages; fused: the stages alone (the
       * mean's division by the count follows, pending, with fusion on) */
      if (which < 3) {
        cr_assert_eq(k_on + 7, k_off, "reduction %d over case %d: %llu kernels fused, %llu unfused", which, c,
                     (unsigned long long)k_on, (unsigned long long)k_off);
        cr_assert(k_on >= 1 && k_on <= 2, "a reduction is one or two stages (%llu)", (unsigned long long)k_on);
      } else {
        cr_assert(k_on + 7 <= k_off && k_on <= 3, "mean over case %d: %llu kernels fused, %llu unfused", c,
                  (unsigned long long)k_on, (unsigned long long)k_off);
      }
      int64_t n = c == 0 ? 1 : c == 1 ? 256 : 384;
      for (int64_t i = 0; i < n; ++i)
        cr_assert(fabs(on[i] - off[i]) <= 4 * FLT_EPSILON * fabs(off[i]) + 1e-30,
                  "reduction %d over case %d, element %lld: %.9g fused, %.9g unfused", which, c, (long long)i, on[i],
                  off[i]);
    }
  ct_tensor_free(x);
  ct__fusion_set(true, 16);
  ct__fusion_reduce_set(-1);
  ct_context_free(ctx);
}

/* By device (the default): a producer that reads storage fuses into its reduction; on a CPU only
 * in vector form and when nothing else keeps the operand: a tape that saved it (the sigmoid's
 * output, for its gradient) has it computed by its own kernel first (faster there,
 * docs/performance.md). */
Test(fusion, by_device_a_producer_fuses_into_its_reduction_where_it_pays) {
  ct_context *ctx = ts_ctx();
  ct__fusion_reduce_set(-1);
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){256, 384}, 0, 1, 9, &x));
  const int all[] = {0, 1};
  static double off[1], on[1];
  ct__fusion_set(false, -1);
  uint64_t k_off = reduce_chain(ctx, x, 0, all, 2, off);
  ct__fusion_set(true, 0);
  uint64_t k_on = reduce_chain(ctx, x, 0, all, 2, on);
  cr_assert_eq(k_on + 7, k_off, "the chain fuses into the sum (%llu fused, %llu unfused)", (unsigned long long)k_on,
               (unsigned long long)k_off);
  cr_assert(fabs(on[0] - off[0]) <= 4 * FLT_EPSILON * fabs(off[0]) + 1e-30, "%.9g fused, %.9g unfused", on[0], off[0]);
  /* recorded: the tape keeps the sigmoid's output */
  ct_tape *tape = ts_tape(ctx, false, false);
  OK(ct_tape_watch(tape, x));
  uint64_t k_taped = reduce_chain(ctx, x, 0, all, 2, on);
  OK(ct_tape_end(tape));
  ct_tape_free(tape);
  if (info.type == CT_DEVICE_CPU)
    cr_assert_eq(k_taped + 6, k_off, "on a CPU a kept chain is one kernel, then the sum (%llu fused, %llu unfused)",
                 (unsigned long long)k_taped, (unsigned long long)k_off);
  else
    cr_assert_eq(k_taped + 7, k_off, "the chain fuses into the sum (%llu fused, %llu unfused)", (unsigned long long)k_taped,
                 (unsigned long long)k_off);
  cr_assert(fabs(on[0] - off[0]) <= 4 * FLT_EPSILON * fabs(off[0]) + 1e-30, "%.9g taped, %.9g unfused", on[0], off[0]);
  ct_tensor_free(x);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}

/* A pending tensor may be as large as the device's largest allocation (it is checked as its storage
 * would be); this one is that large — 2^31 float elements on PoCL here, past int indexing — and its
 * sum, the first time it is met, reads no storage: nothing of its size is written. */
Test(fusion, a_sum_over_the_largest_broadcast_constant_reads_no_storage) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 16);
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  int64_t rows = (int64_t)(info.max_alloc_bytes / 4 / 32768);
  if (rows > 65537) rows = 65537;
  cr_assert(rows > 0);
  ct_tensor *c = NULL, *b = NULL, *h = NULL, *s = NULL;
  OK(ct_scalar(ctx, CT_FLOAT32, 0.5, &c));
  const int64_t shape[] = {rows, 32768};
  OK(ct_broadcast_to(c, 2, shape, &b));
  OK(ct_mul_scalar(b, 0.5, &h)); /* pending too: 0.25 everywhere */
  ct_context_stats s0, s1;
  OK(ct_context_stats_get(ctx, &s0));
  OK(ct_sum(h, NULL, 0, false, &s));
  double want = 0.25 * (double)rows * 32768.0;
  ts_assert_close(s, &want, 1, 0, 1e-6, "sum of a broadcast constant");
  OK(ct_context_stats_get(ctx, &s1));
  cr_assert_lt(s1.peak_bytes_in_use, (uint64_t)1 << 24, "nothing of its size was allocated (%llu bytes at the peak)",
               (unsigned long long)s1.peak_bytes_in_use);
  ct_tensor_free_n((ct_tensor *[]){s, h, b, c}, 4);
  ct_context_free(ctx);
}

/* where(x > 0, sin(x) * x, 0.5 x) + float(x < 0.5): the value (float32), and |round(4 x)| as int32
 * made by a where and a cast; the gradient of the first's sum with respect to x. */
typedef struct {
  ct_tensor *y, *yi, *g;
} where_cast_out;
static where_cast_out where_cast_graph(ct_context *ctx, const ct_tensor *x, uint64_t *launched) {
  where_cast_out o = {0};
  ct_tensor *v[12] = {0};
  ct_tape *tape = NULL;
  uint64_t k0 = kernels(ctx);
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  OK(ct_greater_scalar(x, 0, &v[0]));
  cr_assert_eq(ct_tensor_dtype(v[0]), CT_BOOL);
  OK(ct_sin(x, &v[1]));
  OK(ct_mul(v[1], x, &v[2]));
  OK(ct_mul_scalar(x, 0.5, &v[3]));
  OK(ct_where(v[0], v[2], v[3], &v[4]));
  OK(ct_less_scalar(x, 0.5, &v[5]));
  OK(ct_cast(v[5], CT_FLOAT32, &v[6]));
  OK(ct_add(v[4], v[6], &o.y));
  OK(ct_tape_end(tape));
  OK(ct_mul_scalar(x, 4, &v[7]));
  OK(ct_round(v[7], &v[8]));
  OK(ct_neg(v[8], &v[9]));
  OK(ct_where(v[0], v[8], v[9], &v[10]));
  OK(ct_cast(v[10], CT_INT32, &o.yi));
  OK(ct_tensor_read_f64(o.y, (double[1000]){0}, 1000)); /* computed here */
  OK(ct_tensor_read_f64(o.yi, (double[1000]){0}, 1000));
  *launched = kernels(ctx) - k0;
  OK(ct_tape_gradient1(tape, o.y, x, &o.g));
  ct_tape_free(tape);
  ct_tensor_free_n(v, 12);
  return o;
}

Test(fusion, where_and_casts_are_one_kernel_with_the_unfused_results) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 0, 1, 11, &x));
  OK(ct_tensor_read_f64(x, (double[1000]){0}, 1000));
  ct__fusion_set(false, -1);
  uint64_t k_off = 0, k_on = 0;
  where_cast_out off = where_cast_graph(ctx, x, &k_off);
  cr_assert_geq(k_off, 13, "without fusion one kernel per op (%llu)", (unsigned long long)k_off);
  ct__fusion_set(true, 0);
  where_cast_out on = where_cast_graph(ctx, x, &k_on);
  cr_assert_eq(k_on, 2, "each graph with where and casts is one kernel (%llu launched)", (unsigned long long)k_on);
  cr_assert_eq(ct_tensor_dtype(on.y), CT_FLOAT32);
  cr_assert_eq(ct_tensor_dtype(on.yi), CT_INT32);
  double *xv = ts_read(x), *yo = ts_read(off.y), *io = ts_read(off.yi), *go = ts_read(off.g);
  double want[1000], wi[1000], wg[1000];
  for (int i = 0; i < 1000; ++i) {
    double xi = xv[i];
    want[i] = (xi > 0 ? sin(xi) * xi : 0.5 * xi) + (xi < 0.5 ? 1 : 0);
    wi[i] = fabs(nearbyint(4 * xi));
    wg[i] = xi > 0 ? cos(xi) * xi + sin(xi) : 0.5;
  }
  ts_assert_close(off.y, want, 1000, 1e-6, 1e-5, "unfused where and cast");
  ts_assert_close(off.yi, wi, 1000, 0, 0, "unfused int32 cast of a where");
  ts_assert_close(off.g, wg, 1000, 1e-6, 1e-5, "unfused gradient");
  ts_assert_close(on.y, yo, 1000, 1e-6, 1e-6, "fused where and cast equal the unfused ones");
  ts_assert_close(on.yi, io, 1000, 0, 0, "fused int32 cast of a where equals the unfused one");
  ts_assert_close(on.g, go, 1000, 1e-6, 1e-6, "fused gradient equals the unfused one");
  free(xv), free(yo), free(io), free(go);
  ct_tensor_free_n((ct_tensor *[]){off.y, off.yi, off.g, on.y, on.yi, on.g, x}, 7);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}

/* ---- reduction gradients: a broadcast read through zero strides by what consumes it ------------ */
/* The gradient of r = reduce(sin(x) * x) over axes, seeded with a stored dy shaped like r
 * (which: 0 sum, 1 mean, 2 logsumexp): its values (x->size of them) in out, and the kernels the
 * backward pass and the read of the gradient launched. */
static uint64_t reduce_gradient(ct_context *ctx, const ct_tensor *x, int which, const int *axes, int n_axes, double *out) {
  ct_tape *tape = NULL;
  ct_tensor *s = NULL, *f = NULL, *r = NULL, *dy = NULL, *g = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  OK(ct_sin(x, &s));
  OK(ct_mul(s, x, &f));
  switch (which) {
  case 0: OK(ct_sum(f, axes, n_axes, false, &r)); break;
  case 1: OK(ct_mean(f, axes, n_axes, false, &r)); break;
  default: OK(ct_logsumexp(f, axes, n_axes, false, &r)); break;
  }
  OK(ct_tape_end(tape));
  OK(ct_random_normal(ctx, CT_FLOAT32, r->rank, r->shape, 0, 1, 21, &dy));
  /* the forward pass and dy computed (not ct_context_sync: it would compute every pending tensor,
   * the constants the tape keeps too) */
  free(ts_read(r));
  free(ts_read(dy));
  uint64_t k0 = kernels(ctx);
  OK(ct_tape_gradient(tape, &r, 1, (ct_tensor *const[]){(ct_tensor *)x}, 1, &dy, CT_UNCONNECTED_NONE, &g));
  double *v = ts_read(g);
  uint64_t k = kernels(ctx) - k0;
  memcpy(out, v, sizeof(double) * (size_t)g->size);
  free(v);
  ct_tensor_free_n((ct_tensor *[]){s, f, r, dy, g}, 5);
  ct_tape_free(tape);
  return k;
}

Test(fusion, a_reduction_gradient_fuses_into_what_consumes_it) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){64, 96}, 0, 1, 9, &x));
  const int all[] = {0, 1}, rows[] = {1}, cols[] = {0};
  const struct {
    const int *axes;
    int n;
  } cases[] = {{all, 2}, {rows, 1}, {cols, 1}};
  for (int which = 0; which < 3; ++which)
    for (int c = 0; c < 3; ++c) {
      static double off[64 * 96], on[64 * 96];
      ct__fusion_set(false, -1);
      uint64_t k_off = reduce_gradient(ctx, x, which, cases[c].axes, cases[c].n, off);
      ct__fusion_set(true, 0);
      uint64_t k_on = reduce_gradient(ctx, x, which, cases[c].axes, cases[c].n, on);
      /* dy's broadcast (mean's division by the count, logsumexp's dy / sum(exp) too: their graphs
       * are computed again per element of the broadcast) and the gradients of the product and the
       * sine are one kernel that reads x and dy (and logsumexp's kept tensors) */
      cr_assert_eq(k_on, 1, "reduction %d over case %d: %llu kernels fused (%llu unfused)", which, c,
                   (unsigned long long)k_on, (unsigned long long)k_off);
      for (int64_t i = 0; i < x->size; ++i)
        cr_assert(fabs(on[i] - off[i]) <= 8 * FLT_EPSILON * fabs(off[i]) + 1e-6,
                  "reduction %d over case %d, element %lld: %.9g fused, %.9g unfused", which, c, (long long)i, on[i],
                  off[i]);
    }
  ct_tensor_free(x);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}

/* A comparison gives bool on every path: its own kernel, a fused one, a tiny graph on the host;
 * with broadcasting and in its scalar form; where and boolean_mask take it. */
Test(fusion, comparisons_give_bool_on_every_path) {
  ct_context *ctx = ts_ctx();
  double av[3] = {-1, 0.5, 2}, bv[4] = {-2, 0, 0.5, 3};
  ct_tensor *a = ts_tensor(ctx, CT_FLOAT32, 2, (int64_t[]){3, 1}, av);
  ct_tensor *b = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){4}, bv);
  for (int mode = 0; mode < 2; ++mode) {
    ct__fusion_set(mode == 1, 0);
    ct_tensor *ge = NULL, *gs = NULL, *w = NULL, *wi = NULL, *bm = NULL, *ne = NULL, *bi = NULL;
    OK(ct_greater_equal(a, b, &ge));
    cr_assert_eq(ct_tensor_dtype(ge), CT_BOOL, "greater_equal broadcast [%s]", mode ? "fused" : "unfused");
    uint8_t m[12];
    OK(ct_tensor_read(ge, m, sizeof m));
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) cr_assert_eq(m[i * 4 + j], av[i] >= bv[j], "ge [%d,%d]", i, j);
    OK(ct_less_scalar(b, 0.5, &gs));
    cr_assert_eq(ct_tensor_dtype(gs), CT_BOOL);
    double want_s[4] = {1, 1, 0, 0};
    ts_assert_close(gs, want_s, 4, 0, 0, "less_scalar");
    /* where with a bool condition, and with an int32 one (nonzero is true) */
    OK(ct_where(gs, b, b, &w));
    ts_assert_close(w, bv, 4, 0, 0, "where(bool)");
    OK(ct_cast(gs, CT_INT32, &bi));
    OK(ct_mul_scalar(bi, 7, &ne));
    OK(ct_where(ne, b, a, &wi)); /* (3, 4): b where b < 0.5, else a's row */
    double want_w[12];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) want_w[i * 4 + j] = bv[j] < 0.5 ? bv[j] : av[i];
    ts_assert_close(wi, want_w, 12, 0, 0, "where(int32)");
    /* logical and / or of two bool masks (broadcast: (3, 1) with (4,)), and of an int32 one */
    ct_tensor *pa = NULL, *la = NULL, *lo = NULL, *li = NULL, *bad = NULL;
    OK(ct_greater_scalar(a, 0, &pa));
    OK(ct_logical_and(pa, gs, &la));
    OK(ct_logical_or(pa, gs, &lo));
    OK(ct_logical_and(bi, pa, &li)); /* int32 with bool: bool is moved as int32 */
    cr_assert_eq(ct_tensor_dtype(la), CT_BOOL);
    cr_assert_eq(ct_tensor_dtype(lo), CT_BOOL);
    cr_assert_eq(ct_tensor_dtype(li), CT_BOOL);
    double want_and[12], want_or[12];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) {
        want_and[i * 4 + j] = av[i] > 0 && bv[j] < 0.5;
        want_or[i * 4 + j] = av[i] > 0 || bv[j] < 0.5;
      }
    ts_assert_close(la, want_and, 12, 0, 0, "logical_and");
    ts_assert_close(lo, want_or, 12, 0, 0, "logical_or");
    ts_assert_close(li, want_and, 12, 0, 0, "logical_and of int32 and bool");
    EXPECT_STATUS(ct_add(pa, pa, &bad), CT_ERR_DTYPE); /* arithmetic on bool: cast first */
    cr_assert(strstr(ct_errmsg(), "bool"), "%s", ct_errmsg());
    ct_tensor_free_n((ct_tensor *[]){pa, la, lo, li}, 4);
    /* boolean_mask with a comparison's mask */
    OK(ct_boolean_mask(b, gs, &bm));
    double want_m[2] = {-2, 0};
    cr_assert_eq(ct_tensor_size(bm), 2);
    ts_assert_close(bm, want_m, 2, 0, 0, "boolean_mask(bool)");
    ct_tensor_free_n((ct_tensor *[]){ge, gs, w, wi, bm, ne, bi}, 7);
  }
  /* a tiny graph of constants: compare, where and cast on the host, no kernel */
  ct__fusion_set(true, 1);
  ct_tensor *s2 = NULL, *s1 = NULL, *c = NULL, *w = NULL, *wi = NULL, *eq = NULL;
  OK(ct_scalar(ctx, CT_FLOAT32, 2.0, &s2));
  OK(ct_scalar(ctx, CT_FLOAT32, -1.5, &s1));
  uint64_t k0 = kernels(ctx);
  OK(ct_greater(s2, s1, &c));
  OK(ct_where(c, s1, s2, &w));
  OK(ct_cast(w, CT_INT32, &wi));
  OK(ct_equal(s1, s2, &eq));
  cr_assert_eq(ct_tensor_dtype(c), CT_BOOL);
  cr_assert_eq(ct_tensor_dtype(eq), CT_BOOL);
  uint8_t cb = 9, eb = 9;
  int32_t iv = 0;
  double wv = 0;
  OK(ct_tensor_read(c, &cb, 1));
  OK(ct_tensor_read(eq, &eb, 1));
  OK(ct_tensor_read(wi, &iv, sizeof iv));
  OK(ct_tensor_item(w, &wv));
  cr_assert(cb == 1 && eb == 0, "greater %d, equal %d", cb, eb);
  cr_assert_eq(wv, -1.5);
  cr_assert_eq(iv, -1, "int32 cast of -1.5 truncates toward zero: %d", iv);
  cr_assert_eq(kernels(ctx), k0, "computed on the host: no kernel");
  ct_tensor_free_n((ct_tensor *[]){s2, s1, c, w, wi, eq, a, b}, 8);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}

/* mean(x * y): both gradients are the broadcast seed times the other operand, one kernel each. */
Test(fusion, the_gradients_of_a_mean_of_a_product_are_one_kernel_each) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){33, 65}, 0, 1, 3, &x));
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){33, 65}, 0, 1, 4, &y));
  double *xv = ts_read(x), *yv = ts_read(y);
  for (int round = 0; round < 2; ++round) {
    ct__fusion_set(round == 1, 0);
    ct_tape *tape = NULL;
    ct_tensor *p = NULL, *m = NULL, *g[2] = {NULL, NULL};
    OK(ct_tape_begin(ctx, NULL, &tape));
    OK(ct_tape_watch(tape, x));
    OK(ct_tape_watch(tape, y));
    OK(ct_mul(x, y, &p));
    OK(ct_mean(p, NULL, 0, false, &m));
    OK(ct_tape_end(tape));
    free(ts_read(m));
    uint64_t k0 = kernels(ctx);
    OK(ct_tape_gradient(tape, &m, 1, (ct_tensor *const[]){x, y}, 2, NULL, CT_UNCONNECTED_NONE, g));
    double *gx = ts_read(g[0]), *gy = ts_read(g[1]);
    uint64_t k = kernels(ctx) - k0;
    if (round == 1) cr_assert_eq(k, 2, "fused: one kernel per gradient (%llu)", (unsigned long long)k);
    else cr_assert_gt(k, 2, "unfused: the broadcast and the products are kernels of their own (%llu)", (unsigned long long)k);
    for (int i = 0; i < 33 * 65; ++i) {
      cr_assert(fabs(gx[i] - yv[i] / (33 * 65)) <= 1e-6 * fabs(yv[i]) + 1e-9, "d/dx at %d (round %d)", i, round);
      cr_assert(fabs(gy[i] - xv[i] / (33 * 65)) <= 1e-6 * fabs(xv[i]) + 1e-9, "d/dy at %d (round %d)", i, round);
    }
    free(gx);
    free(gy);
    ct_tensor_free_n((ct_tensor *[]){p, m, g[0], g[1]}, 4);
    ct_tape_free(tape);
  }
  free(xv);
  free(yv);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}

/* f(x, w) = reduce(sin(x) * x, axis 1) * w, then logsumexp over its rows: the reductions' gradients
 * (pending broadcasts) fused into their consumers agree with finite differences. */
static ct_status f_reduce_chain(ct_tensor *const *in, int n, ct_tensor **out, void *user) {
  (void)n;
  (void)user;
  ct_tensor *s = NULL, *f = NULL, *r = NULL, *b = NULL, *m = NULL, *l = NULL;
  ct_status st = ct_sin(in[0], &s);
  if (st == CT_OK) st = ct_mul(s, in[0], &f);
  if (st == CT_OK) st = ct_sum(f, (const int[]){1}, 1, true, &r);
  if (st == CT_OK) st = ct_mul(r, in[1], &b);
  if (st == CT_OK) st = ct_mean(b, (const int[]){0}, 1, true, &m);
  if (st == CT_OK) st = ct_sub(b, m, &l);
  if (st == CT_OK) st = ct_logsumexp(l, (const int[]){1}, 1, false, out);
  ct_tensor_free_n((ct_tensor *[]){s, f, r, b, m, l}, 6);
  return st;
}

Test(fusion, fused_reduction_gradients_pass_the_gradient_check) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 0);
  ct_tensor *x = NULL, *w = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){4, 5}, 0, 1, 13, &x));
  OK(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){1, 3}, 0, 1, 14, &w));
  ct_gradcheck_report rep;
  OK(ct_gradcheck(ctx, f_reduce_chain, NULL, (ct_tensor *const[]){x, w}, 2, NULL, &rep));
  cr_assert(rep.passed, "%s", rep.message);
  ct_tensor_free_n((ct_tensor *[]){x, w}, 2);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}

/* ---- compiling on a thread ---------------------------------------------------------------------- */
/* chain(x) met again (and not on disk: the cache is off) starts its compilation on a thread while
 * it runs unfused; once that is done the next run is fused, long before the count of 16. */
Test(fusion, a_repeated_structure_compiles_on_a_thread_and_fuses_once_ready) {
  ct__env_override("CLTAPE_CACHE_DIR", "off");
  ctb_fused_async_set(1); /* on every device (by default not on CPUs) */
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 16);
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 0, 1, 5, &x));
  OK(ct_neg(x, &y)); /* the elementwise program built before counting */
  OK(ct_context_sync(ctx));
  ct_tensor_free(y);
  ct_context_stats s0, s1;
  OK(ct_context_stats_get(ctx, &s0));
  for (int r = 0; r < 2; ++r) {
    uint64_t k0 = kernels(ctx);
    y = chain(x);
    OK(ct_context_sync(ctx));
    cr_assert_eq(kernels(ctx) - k0, 7, "run %d is unfused", r);
    ct_tensor_free(y);
    cr_assert_eq(ctb_fused_started(ctx), r == 0 ? 0 : 1, "a compilation starts at the second meeting (run %d)", r);
  }
  OK(ct_context_stats_get(ctx, &s1));
  cr_assert_eq(s1.programs_built, s0.programs_built, "nothing compiled on the calling thread");
  for (int i = 0; i < 6000 && ctb_fused_compiling(ctx); ++i) nanosleep(&(struct timespec){0, 10000000}, NULL);
  cr_assert_eq(ctb_fused_compiling(ctx), 0, "compiled within a minute");
  uint64_t k0 = kernels(ctx);
  y = chain(x);
  OK(ct_context_sync(ctx));
  cr_assert_eq(kernels(ctx) - k0, 1, "fused at the third run");
  ct_tensor_free(y);
  OK(ct_context_stats_get(ctx, &s1));
  cr_assert_eq(s1.programs_built, s0.programs_built + 1, "one program built");
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* A context freed while a compilation runs waits for it and releases what it built. */
Test(fusion, a_context_freed_while_a_fused_program_compiles) {
  ct__env_override("CLTAPE_CACHE_DIR", "off");
  ctb_fused_async_set(1); /* on every device (by default not on CPUs) */
  for (int round = 0; round < 2; ++round) {
    ct_context *ctx = ts_ctx();
    ct__fusion_set(true, 16);
    ct_tensor *x = NULL;
    OK(ct_random_normal(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 0, 1, 5, &x));
    for (int r = 0; r < 2; ++r) {
      ct_tensor *y = chain(x);
      OK(ct_context_sync(ctx));
      ct_tensor_free(y);
    }
    cr_assert_eq(ctb_fused_started(ctx), 1, "a compilation started (running or done, not yet taken up)");
    ct_tensor_free(x);
    ct_context_free(ctx); /* while it compiles */
  }
  /* a context made afterwards works */
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL;
  OK(ct_scalar(ctx, CT_FLOAT32, 2.0, &x));
  double v;
  OK(ct_tensor_item(x, &v));
  cr_assert_eq(v, 2.0);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* By device (the default): no compilation thread on a CPU device (it would take the cores the
 * device computes on), one elsewhere. */
Test(fusion, by_device_a_repeated_structure_compiles_on_a_thread_except_on_a_cpu) {
  ct__env_override("CLTAPE_CACHE_DIR", "off");
  ctb_fused_async_set(-1);
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 16);
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  ct_tensor *x = NULL;
  OK(ct_random_normal(ctx, CT_FLOAT32, 1, (int64_t[]){1000}, 0, 1, 5, &x));
  for (int r = 0; r < 2; ++r) {
    ct_tensor *y = chain(x);
    OK(ct_context_sync(ctx));
    ct_tensor_free(y);
  }
  cr_assert_eq(ctb_fused_started(ctx), info.type == CT_DEVICE_CPU ? 0 : 1, "device type %d", (int)info.type);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* ---- kernels in vector form ------------------------------------------------------------------- */
/* Row r of the table over n values of its domain, the last 7 of them NaN, infinities, zeros of
 * both signs and +-20 (past tanh's saturation): for a unary row row(x) + row(x * s), for a binary
 * one row(a, b) + row(a, s) + row(c, b), s a stored one-element tensor (read at index 0), c a
 * constant (a kernel argument); for a comparison where(row(a, b), a, b) + cast(row(a, s)) +
 * cast(row(c, b)) + cast(cast(a, bool)), and (bool_out) row(a, b) itself, a bool. One generated
 * kernel; its values in out. */
static void row_graph(ct_context *ctx, const ct_op_info *r, ct_dtype dt, int64_t n, bool bool_out, double *out) {
  double *a = malloc(sizeof(double) * (size_t)n), *b = malloc(sizeof(double) * (size_t)n);
  static const double special[7] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 20.0, -20.0};
  for (int64_t i = 0; i < n; ++i) {
    double u = sin(0.7 * (double)i + 0.3); /* in [-1, 1] */
    a[i] = i >= n - 7 ? special[i - (n - 7)] : r->a0 + r->da * u;
    b[i] = i >= n - 7 ? special[(i + 3) % 7] : r->b0 + r->db * (r->b_alternate && i % 2 ? -u : u);
  }
  ct_tensor *x = ts_tensor(ctx, dt, 1, &n, a), *y = ts_tensor(ctx, dt, 1, &n, b);
  ct_tensor *s = ts_tensor(ctx, dt, 1, (int64_t[]){1}, (double[]){r->kind == K_UN ? 0.75 : r->b0 + 0.5 * r->db});
  ct_tensor *c = NULL, *t[6] = {0}, *res = NULL;
  OK(ct_scalar(ctx, dt, r->a0 + 0.25 * r->da, &c));
  if (r->kind == K_CMP) {
    ct_tensor *u[8] = {0};
    OK(r->binary(x, y, &t[0]));
    if (bool_out) {
      res = t[0];
      t[0] = NULL;
    } else {
      OK(r->binary(x, s, &t[1]));
      OK(r->binary(c, y, &t[2]));
      OK(ct_where(t[0], x, y, &u[0]));
      OK(ct_cast(t[1], dt, &u[1]));
      OK(ct_cast(t[2], dt, &u[2]));
      OK(ct_cast(x, CT_BOOL, &u[3]));
      OK(ct_cast(u[3], dt, &u[4]));
      OK(ct_add(u[0], u[1], &u[5]));
      OK(ct_add(u[5], u[2], &u[6]));
      OK(ct_add(u[6], u[4], &res));
    }
    ct_tensor_free_n(u, 8);
  } else if (r->kind == K_UN) {
    OK(r->unary(x, &t[0]));
    OK(ct_mul(x, s, &t[1]));
    OK(r->unary(t[1], &t[2]));
    OK(ct_add(t[0], t[2], &res));
  } else {
    OK(r->binary(x, y, &t[0]));
    OK(r->binary(x, s, &t[1]));
    OK(r->binary(c, y, &t[2]));
    OK(ct_add(t[0], t[1], &t[3]));
    OK(ct_add(t[3], t[2], &res));
  }
  double *v = ts_read(res);
  memcpy(out, v, sizeof(double) * (size_t)n);
  free(v);
  ct_tensor_free_n((ct_tensor *[]){x, y, s, c, t[0], t[1], t[2], t[3], res}, 9);
  free(a);
  free(b);
}

static uint64_t programs(ct_context *ctx) {
  ct_context_stats s;
  OK(ct_context_stats_get(ctx, &s));
  return s.programs_built + s.programs_from_cache;
}

/* Every unary, binary and comparison row (with where and casts to and from bool) gives in vector
 * form (CT_FVW elements per work-item: 37 elements are whole vectors and a partial one) what its
 * kernel of one element per work-item gives, in float32 and float64; both forms forced on this
 * device whatever it is (by default only CPUs take the vector form), so the vector text compiles on
 * every driver the suite runs on. */
Test(fusion, every_row_in_vector_form_equals_its_scalar_form) {
  ct_context *ctx = ts_ctx();
  ct__fusion_set(true, 0);
  enum { N = 37 };
  const ct_dtype dts[2] = {CT_FLOAT32, CT_FLOAT64};
  int rows = 0;
  for (int d = 0; d < 2; ++d) {
    if (!ts_has_dtype(ctx, dts[d])) continue;
    for (int i = 0; i < CT_OP_COUNT; ++i) {
      const ct_op_info *r = &ct_ops[i];
      if (r->kind == K_OTHER || !r->has_domain) continue;
      for (int bo = 0; bo < (r->kind == K_CMP ? 2 : 1); ++bo) {
        double vec[N], one[N];
        ct__fusion_vector_set(1);
        uint64_t p0 = programs(ctx);
        row_graph(ctx, r, dts[d], N, bo, vec);
        ct__fusion_vector_set(0);
        uint64_t p1 = programs(ctx);
        row_graph(ctx, r, dts[d], N, bo, one);
        uint64_t p2 = programs(ctx);
        cr_assert(p1 > p0 && p2 > p1, "%s %s: each form has a program of its own", r->name, ct_dtype_name(dts[d]));
        const double tol = dts[d] == CT_FLOAT32 ? 2e-6 : 1e-13;
        for (int k = 0; k < N; ++k)
          cr_assert((isnan(vec[k]) && isnan(one[k])) || vec[k] == one[k] || fabs(vec[k] - one[k]) <= tol * (1 + fabs(one[k])),
                    "%s %s [%d]: vector form %.17g, one element per work-item %.17g", r->name, ct_dtype_name(dts[d]), k, vec[k],
                    one[k]);
      }
      rows++;
    }
  }
  int table = 0;
  for (int i = 0; i < CT_OP_COUNT; ++i) table += ct_ops[i].kind != K_OTHER && ct_ops[i].has_domain;
  cr_assert_geq(table, 39, "elementwise rows in the table: %d", table);
  cr_assert_eq(rows, table * (ts_has_dtype(ctx, CT_FLOAT64) ? 2 : 1), "rows checked: %d", rows);
  ct__fusion_vector_set(-1);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}

/* A producer fused into its reduction in vector form (forced on every device): sums, maxima and
 * means of chain(x) along rows whose length leaves a partial vector (65541), along columns in
 * vectors (inner 16 and 32) and over everything, float32 and float64, equal the unfused ones. */
Test(fusion, reductions_of_a_producer_in_vector_form_equal_the_unfused_ones) {
  ct_context *ctx = ts_ctx();
  ct__fusion_reduce_set(1);
  ct__fusion_vector_set(1);
  const int64_t shapes2[][2] = {{3, 65541}, {4099, 16}, {2053, 32}};
  const int all[] = {0, 1}, rows[] = {1}, cols[] = {0};
  for (int d = 0; d < 2; ++d) {
    const ct_dtype dt = d ? CT_FLOAT64 : CT_FLOAT32;
    if (!ts_has_dtype(ctx, dt)) continue;
    for (int sh = 0; sh < 3; ++sh) {
      ct_tensor *x = NULL;
      OK(ct_random_normal(ctx, dt, 2, shapes2[sh], 0, 1, 11 + (uint64_t)sh, &x));
      for (int which = 0; which < 4; ++which)
        for (int c = 0; c < 3; ++c) {
          const int *axes = c == 0 ? all : c == 1 ? rows : cols;
          static double off[65541], on[65541];
          ct__fusion_set(false, -1);
          uint64_t k_off = reduce_chain(ctx, x, which, axes, c == 0 ? 2 : 1, off);
          ct__fusion_set(true, 0);
          uint64_t k_on = reduce_chain(ctx, x, which, axes, c == 0 ? 2 : 1, on);
          cr_assert_lt(k_on + 6, k_off, "%s shape %d reduction %d case %d: the chain fused into it (%llu, %llu unfused)",
                       ct_dtype_name(dt), sh, which, c, (unsigned long long)k_on, (unsigned long long)k_off);
          const int64_t n = c == 0 ? 1 : c == 1 ? shapes2[sh][0] : shapes2[sh][1];
          const double eps = d ? 64 * DBL_EPSILON : 64 * FLT_EPSILON;
          for (int64_t i = 0; i < n; ++i)
            cr_assert(fabs(on[i] - off[i]) <= eps * fabs(off[i]) + 1e-30, "%s shape %d reduction %d case %d [%lld]: %.17g fused, %.17g unfused",
                      ct_dtype_name(dt), sh, which, c, (long long)i, on[i], off[i]);
        }
      ct_tensor_free(x);
    }
  }
  ct__fusion_vector_set(-1);
  ct__fusion_reduce_set(-1);
  ct__fusion_set(true, 16);
  ct_context_free(ctx);
}
