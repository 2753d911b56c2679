/* tape_overhead.c — what a gradient tape costs on the host, and what it keeps on the device.
 *
 * Prints one JSON line per result on stdout:
 *   {"workload":"...","median_us":x,"min_us":x,"max_us":x,"repeats":n,"inner":n,...}
 * Times are per recorded op (per iteration for s8_example). Workloads:
 *
 *   record_add, record_mul, record_relu   ct__tape_record called directly: the bookkeeping of one
 *                                          recorded op, no kernel launch (add keeps nothing, mul
 *                                          keeps both inputs, relu its output). Each repeat
 *                                          begins a tape, records --records ops, frees it.
 *   record_mul_3_tapes                    the same with three nested tapes recording each op
 *   tensor_handle                         a tensor handle made and freed (ct__tensor_struct and
 *                                          ct_tensor_free, no device storage): what every op's
 *                                          result costs in handle memory (lib/handle.c)
 *   op_loop_no_tape, op_loop_tape         a chain of ct_add on one-element tensors, without and
 *                                          with an active tape; the difference of the medians is
 *                                          printed as op_loop_tape_overhead (enqueue excluded)
 *   s8_example                            the guide's S8 case end to end: persistent tape, two
 *                                          products, two gradients, results read back
 *   mlp_tape_memory                       device bytes the tape keeps for an MLP forward pass
 *                                          (batch 256, 784-256-10, relu, softmax cross-entropy),
 *                                          persistent and not, before and after the gradient
 *
 *   bench_tape_overhead [--device SEL] [--repeats N] [--inner N] [--records N]
 *
 * --repeats: timed repeats of the op loops and S8 (x20); the record workloads use 20x as many
 * tapes. --inner: ops per op-loop repeat (default 2000). --records: records per tape (1000).
 */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include "cltape_nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRY(call)                                                                                  \
  do {                                                                                             \
    ct_status try_s_ = (call);                                                                     \
    if (try_s_ != CT_OK) {                                                                         \
      fprintf(stderr, "bench_tape_overhead: %s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,       \
              ct_status_name(try_s_), ct_errmsg());                                                \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct {
  double median, min, max;
} stats;

static stats summarize(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  stats s = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1]};
  return s;
}

static void print_times(const char *workload, stats s, int repeats, int inner, const char *extra) {
  printf("{\"workload\":\"%s\",\"median_us\":%.4f,\"min_us\":%.4f,\"max_us\":%.4f,\"repeats\":%d,\"inner\":%d%s%s}\n",
         workload, s.median, s.min, s.max, repeats, inner, extra ? "," : "", extra ? extra : "");
  fflush(stdout);
}

static int repeats = 15, inner = 2000, records = 1000;

/* ---- ct__tape_record directly ------------------------------------------------------------- */
static stats time_record(ct_context *ctx, ct_op_id op, int n_tapes) {
  int64_t shape[1] = {1};
  ct_tensor *x = NULL, *c = NULL, *y = NULL;
  TRY(ct_ones(ctx, CT_FLOAT32, 1, shape, &x));
  TRY(ct_ones(ctx, CT_FLOAT32, 1, shape, &c));
  TRY(ct_ones(ctx, CT_FLOAT32, 1, shape, &y));
  const ct_tensor *in[2] = {x, c};
  int n_in = ct_ops[op].n_inputs, n = 20 * repeats;
  ct_attrs at;
  memset(&at, 0, sizeof at);
  double *t = malloc(sizeof(double) * (size_t)n);
  for (int r = -3; r < n; ++r) { /* three untimed tapes first */
    ct_tape *tapes[3] = {NULL, NULL, NULL};
    for (int k = 0; k < n_tapes; ++k) {
      TRY(ct_tape_begin(ctx, NULL, &tapes[k]));
      TRY(ct_tape_watch(tapes[k], x));
    }
    double t0 = now_us();
    for (int i = 0; i < records; ++i) TRY(ct__tape_record(op, in, n_in, y, &at));
    if (r >= 0) t[r] = (now_us() - t0) / records;
    if (ct_tape_size(tapes[0]) != records) {
      fprintf(stderr, "bench_tape_overhead: %d records, expected %d\n", ct_tape_size(tapes[0]), records);
      exit(1);
    }
    for (int k = n_tapes - 1; k >= 0; --k) ct_tape_free(tapes[k]);
  }
  stats s = summarize(t, n);
  free(t);
  ct_tensor_free(x);
  ct_tensor_free(c);
  ct_tensor_free(y);
  return s;
}

/* ---- a tensor handle made and freed -------------------------------------------------------- */
static stats time_tensor_handle(ct_context *ctx) {
  int64_t shape[1] = {1};
  int n = 20 * repeats;
  double *t = malloc(sizeof(double) * (size_t)n);
  for (int r = -3; r < n; ++r) {
    double t0 = now_us();
    for (int i = 0; i < records; ++i) {
      ct_tensor *h = NULL;
      TRY(ct__tensor_struct(ctx, CT_FLOAT32, 1, shape, NULL, &h));
      ct_tensor_free(h);
    }
    if (r >= 0) t[r] = (now_us() - t0) / records;
  }
  stats s = summarize(t, n);
  free(t);
  return s;
}

/* ---- a chain of adds, with and without a tape ---------------------------------------------- */
/* One repeat of the chain; returns microseconds per op. */
static double op_loop_once(ct_context *ctx, const ct_tensor *x, const ct_tensor *c, bool with_tape) {
  ct_tape *tape = NULL;
  if (with_tape) {
    TRY(ct_tape_begin(ctx, NULL, &tape));
    TRY(ct_tape_watch(tape, x));
  }
  TRY(ct_context_sync(ctx));
  ct_tensor *y = ct_tensor_retain((ct_tensor *)x);
  double t0 = now_us();
  for (int i = 0; i < inner; ++i) {
    ct_tensor *n = NULL;
    TRY(ct_add(y, c, &n));
    ct_tensor_free(y);
    y = n;
  }
  TRY(ct_context_sync(ctx));
  double dt = (now_us() - t0) / inner;
  if (with_tape && ct_tape_size(tape) != inner) {
    fprintf(stderr, "bench_tape_overhead: the loop recorded %d ops\n", ct_tape_size(tape));
    exit(1);
  }
  ct_tensor_free(y);
  ct_tape_free(tape);
  return dt;
}

/* Both variants, alternating repeat by repeat so that a change of machine load hits both. */
static void time_op_loops(ct_context *ctx, stats *without, stats *with) {
  ct_tensor *x = NULL, *c = NULL;
  TRY(ct_scalar(ctx, CT_FLOAT32, 1.0, &x));
  TRY(ct_scalar(ctx, CT_FLOAT32, 1e-6, &c));
  double *t0 = malloc(sizeof(double) * (size_t)repeats), *t1 = malloc(sizeof(double) * (size_t)repeats);
  for (int r = -2; r < repeats; ++r) { /* two untimed warm-up rounds */
    double a = op_loop_once(ctx, x, c, false), b = op_loop_once(ctx, x, c, true);
    if (r >= 0) {
      t0[r] = a;
      t1[r] = b;
    }
  }
  *without = summarize(t0, repeats);
  *with = summarize(t1, repeats);
  free(t0);
  free(t1);
  ct_tensor_free(x);
  ct_tensor_free(c);
}

/* ---- S8 end to end ------------------------------------------------------------------------- */
static stats time_s8(ct_context *ctx, int n) {
  const float xv[2] = {1, 3};
  int64_t shape[1] = {2};
  double *t = malloc(sizeof(double) * (size_t)n);
  for (int r = -3; r < n; ++r) {
    double t0 = now_us();
    ct_tensor *x = NULL, *y = NULL, *z = NULL, *dz = NULL, *dy = NULL;
    ct_tape *tape = NULL;
    ct_tape_options o = {true, true};
    TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 1, shape, xv, &x));
    TRY(ct_tape_begin(ctx, &o, &tape));
    TRY(ct_tape_watch(tape, x));
    TRY(ct_mul(x, x, &y));
    TRY(ct_mul(y, y, &z));
    TRY(ct_tape_end(tape));
    TRY(ct_tape_gradient1(tape, z, x, &dz));
    TRY(ct_tape_gradient1(tape, y, x, &dy));
    float a[2], b[2];
    TRY(ct_tensor_read(dz, a, sizeof a));
    TRY(ct_tensor_read(dy, b, sizeof b));
    ct_tape_free(tape);
    ct_tensor *all[] = {x, y, z, dz, dy};
    ct_tensor_free_n(all, 5);
    double dt = now_us() - t0;
    if (a[0] != 4 || a[1] != 108 || b[0] != 2 || b[1] != 6) {
      fprintf(stderr, "bench_tape_overhead: S8 gave [%g, %g] and [%g, %g]\n", a[0], a[1], b[0], b[1]);
      exit(1);
    }
    if (r >= 0) t[r] = dt;
  }
  stats s = summarize(t, n);
  free(t);
  return s;
}

/* ---- MLP tape memory ----------------------------------------------------------------------- */
static void mlp_memory(ct_context *ctx) {
  const int64_t B = 256, I = 784, H = 256, O = 10;
  int64_t xs[2] = {B, I}, w1s[2] = {I, H}, b1s[1] = {H}, w2s[2] = {H, O}, b2s[1] = {O}, ls[1] = {B};
  ct_tensor *x = NULL, *labels = NULL, *init = NULL, *w1 = NULL, *b1 = NULL, *w2 = NULL, *b2 = NULL;
  TRY(ct_random_uniform(ctx, CT_FLOAT32, 2, xs, 0, 1, 1, &x));
  int32_t *lab = malloc(sizeof(int32_t) * (size_t)B);
  for (int64_t i = 0; i < B; ++i) lab[i] = (int32_t)(i % O);
  TRY(ct_tensor_from_data(ctx, CT_INT32, 1, ls, lab, &labels));
  free(lab);
  TRY(ct_initialize(ctx, CT_INIT_GLOROT_UNIFORM, CT_FLOAT32, 2, w1s, 2, &init));
  TRY(ct_variable_create(init, "dense/kernel", true, &w1));
  ct_tensor_free(init);
  TRY(ct_zeros(ctx, CT_FLOAT32, 1, b1s, &init));
  TRY(ct_variable_create(init, "dense/bias", true, &b1));
  ct_tensor_free(init);
  TRY(ct_initialize(ctx, CT_INIT_GLOROT_UNIFORM, CT_FLOAT32, 2, w2s, 3, &init));
  TRY(ct_variable_create(init, "dense_1/kernel", true, &w2));
  ct_tensor_free(init);
  TRY(ct_zeros(ctx, CT_FLOAT32, 1, b2s, &init));
  TRY(ct_variable_create(init, "dense_1/bias", true, &b2));
  ct_tensor_free(init);
  for (int persistent = 1; persistent >= 0; --persistent) {
    ct_tape *tape = NULL;
    ct_tape_options o = {persistent != 0, true};
    ct_tensor *r[7] = {NULL};
    TRY(ct_tape_begin(ctx, &o, &tape));
    TRY(ct_matmul(x, w1, false, false, &r[0]));
    TRY(ct_add(r[0], b1, &r[1]));
    TRY(ct_relu(r[1], &r[2]));
    TRY(ct_matmul(r[2], w2, false, false, &r[3]));
    TRY(ct_add(r[3], b2, &r[4]));
    TRY(ct_sparse_softmax_cross_entropy(r[4], labels, &r[5]));
    TRY(ct_mean(r[5], NULL, 0, false, &r[6]));
    TRY(ct_tape_end(tape));
    uint64_t before = 0, after = 0, activations = 0;
    TRY(ct_tape_saved_bytes(tape, &before));
    for (int i = 0; i < 6; ++i) activations += (uint64_t)ct_tensor_size(r[i]) * 4;
    ct_tensor *src[4] = {w1, b1, w2, b2}, *g[4] = {NULL};
    TRY(ct_tape_gradient(tape, &r[6], 1, src, 4, NULL, CT_UNCONNECTED_NONE, g));
    TRY(ct_tape_saved_bytes(tape, &after));
    printf("{\"workload\":\"mlp_tape_memory\",\"batch\":%lld,\"layers\":\"784-256-10\",\"persistent\":%s,"
           "\"records\":%d,\"saved_bytes\":%llu,\"saved_bytes_after_gradient\":%llu,"
           "\"forward_outputs_bytes\":%llu,\"input_bytes\":%llu,\"parameter_bytes\":%llu}\n",
           (long long)B, persistent ? "true" : "false", ct_tape_size(tape), (unsigned long long)before,
           (unsigned long long)after, (unsigned long long)activations, (unsigned long long)(B * I * 4),
           (unsigned long long)((I * H + H + H * O + O) * 4));
    fflush(stdout);
    ct_tensor_free_n(g, 4);
    ct_tensor_free_n(r, 7);
    ct_tape_free(tape);
  }
  ct_tensor *all[] = {x, labels, w1, b1, w2, b2};
  ct_tensor_free_n(all, 6);
}

int main(int argc, char **argv) {
  const char *device = NULL;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
    else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = atoi(argv[++i]);
    else if (strcmp(argv[i], "--inner") == 0 && i + 1 < argc) inner = atoi(argv[++i]);
    else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc) records = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--device SEL] [--repeats N] [--inner N] [--records N]\n", argv[0]);
      return 2;
    }
  }
  if (repeats < 1 || inner < 1 || records < 1) {
    fprintf(stderr, "bench_tape_overhead: --repeats, --inner and --records must be >= 1\n");
    return 2;
  }
  ct_context *ctx = NULL;
  TRY(ct_context_create(device, &ctx));
  ct_device_info dev;
  TRY(ct_context_device(ctx, &dev));
  fprintf(stderr, "bench_tape_overhead: device %s\n", dev.name);

  print_times("record_add", time_record(ctx, CT_OP_ADD, 1), 20 * repeats, records, NULL);
  print_times("record_mul", time_record(ctx, CT_OP_MUL, 1), 20 * repeats, records, NULL);
  print_times("record_relu", time_record(ctx, CT_OP_RELU, 1), 20 * repeats, records, NULL);
  print_times("record_mul_3_tapes", time_record(ctx, CT_OP_MUL, 3), 20 * repeats, records, NULL);
  print_times("tensor_handle", time_tensor_handle(ctx), 20 * repeats, records, NULL);

  stats without, with;
  time_op_loops(ctx, &without, &with);
  print_times("op_loop_no_tape", without, repeats, inner, NULL);
  print_times("op_loop_tape", with, repeats, inner, NULL);
  printf("{\"workload\":\"op_loop_tape_overhead\",\"median_us\":%.4f,\"repeats\":%d,\"inner\":%d}\n",
         with.median - without.median, repeats, inner);
  fflush(stdout);

  int n8 = repeats * 20;
  print_times("s8_example", time_s8(ctx, n8), n8, 1, NULL);
  mlp_memory(ctx);
  ct_context_free(ctx);
  return 0;
}
