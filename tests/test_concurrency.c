/*
 * test_concurrency.c — threads and determinism. The rules (include/cltape.h): a context is used by one
 * thread at a time, different threads may use different contexts freely, and tapes are per
 * thread. Checked here:
 *  - two threads, each with its own context, train the same model from the same seed and end with
 *    weights bit-identical to a serial run (and the serial run is bit-identical run to run);
 *  - a tape begun on one thread records nothing another thread does, even on the same context and
 *    the same tensors, and another thread cannot stop, end or free it;
 *  - one context handed from thread to thread (one at a time) keeps working;
 *  - error messages are per thread; the gradient registry takes concurrent registrations;
 *  - many threads creating the process's first contexts at the same moment, then running a tape
 *    and freeing, in a loop (tests/stress/contexts.c; scripts/reliability.sh runs it under
 *    ThreadSanitizer too).
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "stress/contexts.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- one training run: a small MLP, every value from a seed ----------------------------------- */
enum { STEPS = 12, BATCH = 32, IN = 6, HID = 24, OUT = 3, MAXV = 8 };

typedef struct {
  uint64_t seed;
  int nv;
  size_t bytes[MAXV];
  unsigned char *w[MAXV]; /* final weights, raw bytes */
  double losses[STEPS];
  ct_status status;
  char error[256];
} run_result;

#define TRY(call)                                                                                   \
  do {                                                                                              \
    ct_status try_s_ = (call);                                                                      \
    if (try_s_ != CT_OK) {                                                                          \
      r->status = try_s_;                                                                           \
      snprintf(r->error, sizeof r->error, "%s: %s", #call, ct_errmsg());                            \
      goto done;                                                                                    \
    }                                                                                               \
  } while (0)

/* Dense(IN, HID, tanh) -> Dense(HID, OUT), softmax cross-entropy, Adam. */
static void train(run_result *r) {
  ct_context *ctx = NULL;
  ct_module *model = NULL, *d1 = NULL, *d2 = NULL;
  ct_optimizer *opt = NULL;
  ct_tensor *x = NULL, *u = NULL, *labels = NULL, *vars[MAXV];
  int nv = 0;
  r->status = CT_OK;
  TRY(ct_context_create(NULL, &ctx));
  ct_layer_options lo = ct_layer_default_options();
  TRY(ct_sequential_create(ctx, "mlp", &model));
  lo.seed = r->seed;
  TRY(ct_dense_create(ctx, IN, HID, CT_ACTIVATION_TANH, &lo, &d1));
  lo.seed = r->seed + 1;
  TRY(ct_dense_create(ctx, HID, OUT, CT_ACTIVATION_NONE, &lo, &d2));
  TRY(ct_sequential_add(model, d1));
  TRY(ct_sequential_add(model, d2));
  TRY(ct_optimizer_create(ctx, NULL, &opt));
  TRY(ct_random_normal(ctx, CT_FLOAT32, 2, (int64_t[]){BATCH, IN}, 0, 1, r->seed + 2, &x));
  TRY(ct_random_uniform(ctx, CT_FLOAT32, 1, (int64_t[]){BATCH}, 0, OUT, r->seed + 3, &u));
  TRY(ct_cast(u, CT_INT32, &labels));
  TRY(ct_module_trainable_variables(model, vars, MAXV, &nv));
  for (int step = 0; step < STEPS; ++step) {
    ct_tape *tape = NULL;
    ct_tensor *logits = NULL, *loss = NULL, *g[MAXV] = {NULL};
    ct_status s = ct_tape_begin(ctx, NULL, &tape);
    if (s == CT_OK) s = ct_module_call(model, x, true, &logits);
    if (s == CT_OK) s = ct_softmax_cross_entropy(logits, labels, &loss);
    if (tape) ct_tape_end(tape);
    if (s == CT_OK) s = ct_tape_gradient(tape, &loss, 1, vars, nv, NULL, CT_UNCONNECTED_NONE, g);
    if (s == CT_OK) s = ct_optimizer_apply(opt, g, vars, nv);
    if (s == CT_OK) s = ct_tensor_item(loss, &r->losses[step]);
    ct_tape_free(tape);
    ct_tensor_free(logits);
    ct_tensor_free(loss);
    ct_tensor_free_n(g, MAXV);
    TRY(s);
  }
  r->nv = nv;
  for (int i = 0; i < nv; ++i) {
    r->bytes[i] = (size_t)ct_tensor_size(vars[i]) * ct_dtype_size(ct_tensor_dtype(vars[i]));
    r->w[i] = malloc(r->bytes[i]);
    if (!r->w[i]) {
      r->status = CT_ERR_OUT_OF_MEMORY;
      goto done;
    }
    TRY(ct_tensor_read(vars[i], r->w[i], r->bytes[i]));
  }
done:;
  ct_optimizer_free(opt);
  ct_module_free(d1);
  ct_module_free(d2);
  ct_module_free(model);
  ct_tensor_free(u);
  ct_tensor_free(labels);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

static void *train_thread(void *arg) {
  train(arg);
  return NULL;
}

static void free_result(run_result *r) {
  for (int i = 0; i < r->nv; ++i) free(r->w[i]);
}

static void assert_identical(const run_result *a, const run_result *b, const char *what) {
  cr_assert_eq(a->status, CT_OK, "%s: %s", what, a->error);
  cr_assert_eq(b->status, CT_OK, "%s: %s", what, b->error);
  cr_assert_eq(a->nv, b->nv);
  for (int i = 0; i < a->nv; ++i) {
    cr_assert_eq(a->bytes[i], b->bytes[i]);
    cr_assert(memcmp(a->w[i], b->w[i], a->bytes[i]) == 0, "%s: variable %d differs", what, i);
  }
  cr_assert(memcmp(a->losses, b->losses, sizeof a->losses) == 0, "%s: the losses differ", what);
}

Test(concurrency, two_threads_two_contexts_train_like_a_serial_run) {
  run_result serial = {.seed = 42}, again = {.seed = 42}, t[2] = {{.seed = 42}, {.seed = 42}};
  train(&serial);
  cr_assert_eq(serial.status, CT_OK, "%s", serial.error);
  cr_assert(serial.losses[STEPS - 1] < serial.losses[0], "the model does not learn (%g -> %g)", serial.losses[0],
            serial.losses[STEPS - 1]);
  train(&again);
  assert_identical(&serial, &again, "the same seed twice, serially");
  pthread_t th[2];
  for (int k = 0; k < 2; ++k) cr_assert_eq(pthread_create(&th[k], NULL, train_thread, &t[k]), 0);
  for (int k = 0; k < 2; ++k) pthread_join(th[k], NULL);
  assert_identical(&serial, &t[0], "thread 1 vs serial");
  assert_identical(&serial, &t[1], "thread 2 vs serial");
  /* another seed gives other weights: the comparison can fail */
  run_result other = {.seed = 43};
  train(&other);
  cr_assert_eq(other.status, CT_OK, "%s", other.error);
  cr_assert(memcmp(other.w[0], serial.w[0], serial.bytes[0]) != 0);
  free_result(&serial);
  free_result(&again);
  free_result(&t[0]);
  free_result(&t[1]);
  free_result(&other);
}

/* Four threads, four contexts, at once, a few times over: no interference, no crash. */
Test(concurrency, many_contexts_at_once) {
  enum { THREADS = 4 };
  run_result ref = {.seed = 7};
  train(&ref);
  cr_assert_eq(ref.status, CT_OK, "%s", ref.error);
  for (int round = 0; round < 2; ++round) {
    run_result r[THREADS];
    pthread_t th[THREADS];
    for (int k = 0; k < THREADS; ++k) {
      memset(&r[k], 0, sizeof r[k]);
      r[k].seed = 7;
      cr_assert_eq(pthread_create(&th[k], NULL, train_thread, &r[k]), 0);
    }
    for (int k = 0; k < THREADS; ++k) pthread_join(th[k], NULL);
    for (int k = 0; k < THREADS; ++k) {
      assert_identical(&ref, &r[k], "a thread of four");
      free_result(&r[k]);
    }
  }
  free_result(&ref);
}

/* The first contexts of the process, created by eight threads at once (device discovery raced),
 * then tapes, gradients and frees in a loop: every thread computes the right values. */
Test(concurrency, first_contexts_created_at_once_then_a_loop) {
  char error[256] = "";
  int failed = ct_stress_contexts(8, 3, error, sizeof error);
  cr_assert_eq(failed, 0, "%d threads failed: %s", failed, error);
}

/* ---- tapes are per thread ----------------------------------------------------------------------- */
typedef struct {
  ct_context *ctx;
  ct_tape *tape;
  ct_tensor *x;
  int size_seen;
  ct_status stop, end, resume;
  int log_errors;
  ct_status op;
} other_thread;

static int log_errors;
static void count_errors(ct_log_level level, const char *msg, void *user) {
  (void)msg;
  (void)user;
  if (level == CT_LOG_ERROR) __atomic_add_fetch(&log_errors, 1, __ATOMIC_SEQ_CST);
}

/* Runs while the tape's thread waits in pthread_join: the context is used by one thread at a time. */
static void *meddle(void *arg) {
  other_thread *o = arg;
  ct_tensor *y = NULL, *z = NULL;
  o->op = ct_mul(o->x, o->x, &y); /* the watched tensor, on the tape's context */
  if (o->op == CT_OK) o->op = ct_sin(y, &z);
  o->size_seen = ct_tape_size(o->tape);
  o->stop = ct_tape_stop_recording(o->tape);
  o->resume = ct_tape_resume_recording(o->tape);
  o->end = ct_tape_end(o->tape);
  ct_tape_free(o->tape); /* refused with an error in the log: the tape records on another thread */
  /* the thread's own tape sees its own ops only */
  ct_tape *mine = NULL;
  if (ct_tape_begin(o->ctx, NULL, &mine) == CT_OK) {
    ct_tensor *w = NULL;
    ct_tape_watch(mine, o->x);
    if (ct_exp(o->x, &w) == CT_OK && ct_tape_size(mine) != 1) o->op = CT_ERR_INTERNAL;
    ct_tensor_free(w);
    ct_tape_free(mine);
  }
  ct_tensor_free(y);
  ct_tensor_free(z);
  return NULL;
}

Test(concurrency, a_tape_records_only_its_own_thread) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *y = NULL, *g = NULL;
  OK(ct_variable_scalar(ctx, 0.5, "x", true, &x));
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  ct_set_log(count_errors, NULL);
  other_thread o = {.ctx = ctx, .tape = tape, .x = x};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, meddle, &o), 0);
  pthread_join(th, NULL);
  ct_set_log(NULL, NULL);
  cr_assert_eq(o.op, CT_OK, "the other thread's ops failed: %s", ct_status_name(o.op));
  cr_assert_eq(o.size_seen, 0, "a tape recorded %d ops of another thread", o.size_seen);
  cr_assert_eq(ct_tape_size(tape), 0);
  cr_assert_eq(o.stop, CT_ERR_INVALID, "another thread stopped the tape: %s", ct_status_name(o.stop));
  cr_assert_eq(o.resume, CT_ERR_INVALID);
  cr_assert_eq(o.end, CT_ERR_INVALID, "another thread ended the tape: %s", ct_status_name(o.end));
  cr_assert_eq(log_errors, 1, "freeing another thread's recording tape must be refused with an error");
  /* the tape is intact and still records this thread */
  OK(ct_mul(x, x, &y));
  cr_assert_eq(ct_tape_size(tape), 1);
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, y, x, &g));
  cr_assert_float_eq(ts_item(g), 1.0, 1e-6);
  ct_tensor_free(g);
  ct_tensor_free(y);
  ct_tensor_free(x);
  ct_tape_free(tape);
  ct_context_free(ctx);
}

/* ---- one context handed from thread to thread ----------------------------------------------------- */
typedef struct {
  ct_context *ctx;
  ct_tensor *acc;
  int index;
  ct_status s;
} relay;

static void *relay_step(void *arg) {
  relay *r = arg;
  ct_tensor *one = NULL, *next = NULL;
  r->s = ct_scalar(r->ctx, ct_tensor_dtype(r->acc), (double)r->index, &one);
  if (r->s == CT_OK) r->s = ct_add(r->acc, one, &next);
  if (r->s == CT_OK) {
    ct_tensor_free(r->acc);
    r->acc = next;
  }
  ct_tensor_free(one);
  return NULL;
}

Test(concurrency, one_context_used_by_one_thread_at_a_time) {
  relay r = {.ctx = ts_ctx()};
  OK(ct_zeros(r.ctx, ts_best_float(r.ctx), 1, (int64_t[]){5}, &r.acc)); /* sums of integers: exact in either */
  for (int k = 1; k <= 20; ++k) {
    pthread_t th;
    r.index = k;
    cr_assert_eq(pthread_create(&th, NULL, relay_step, &r), 0);
    pthread_join(th, NULL); /* the hand-over: the next thread starts after this one ended */
    cr_assert_eq(r.s, CT_OK, "step %d: %s", k, ct_status_name(r.s));
  }
  double want[5] = {210, 210, 210, 210, 210};
  ts_assert_close(r.acc, want, 5, 0, 0, "sum of 1..20 over 20 threads");
  ct_tensor_free(r.acc);
  ct_context_free(r.ctx);
}

/* ---- per-thread messages, concurrent registrations ------------------------------------------------ */
static void *fail_here(void *arg) {
  (void)arg;
  ct_tensor *o;
  ct_reshape(NULL, 0, NULL, &o);
  return strstr(ct_errmsg(), "ct_reshape") ? (void *)1 : NULL;
}

Test(concurrency, error_messages_are_per_thread) {
  ct_context *ctx = ts_ctx();
  ct_tensor *o;
  EXPECT_STATUS(ct_ones(ctx, CT_FLOAT32, -1, NULL, &o), CT_ERR_SHAPE);
  char mine[256];
  snprintf(mine, sizeof mine, "%s", ct_errmsg());
  pthread_t th;
  void *ok = NULL;
  cr_assert_eq(pthread_create(&th, NULL, fail_here, NULL), 0);
  pthread_join(th, &ok);
  cr_assert(ok, "the other thread did not see its own message");
  cr_assert_str_eq(ct_errmsg(), mine, "another thread's error replaced this thread's message");
  ct_context_free(ctx);
}

static ct_status twice_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)g;
  (void)user;
  return ct_mul_scalar(dy, 2.0, &dx[0]);
}

static void *register_many(void *arg) {
  long id = (long)arg;
  char name[64];
  for (int k = 0; k < 2000; ++k) {
    snprintf(name, sizeof name, "ConcurrentOp%ld_%d", id, k % 17);
    if (ct_register_gradient(name, twice_grad, NULL) != CT_OK) return NULL;
    if (ct_unregister_gradient(name) != CT_OK) return NULL;
  }
  return (void *)1;
}

/* Registrations on three threads while a fourth differentiates through a registered gradient. */
Test(concurrency, gradient_registry_under_concurrent_registration) {
  ct_context *ctx = ts_ctx();
  OK(ct_register_gradient("Sin", twice_grad, NULL));
  pthread_t th[3];
  for (long k = 0; k < 3; ++k) cr_assert_eq(pthread_create(&th[k], NULL, register_many, (void *)k), 0);
  ct_tensor *x = NULL;
  OK(ct_variable_scalar(ctx, 0.3, "x", true, &x));
  for (int k = 0; k < 50; ++k) {
    ct_tape *t = NULL;
    ct_tensor *y = NULL, *g = NULL;
    OK(ct_tape_begin(ctx, NULL, &t));
    OK(ct_sin(x, &y));
    OK(ct_tape_end(t));
    OK(ct_tape_gradient1(t, y, x, &g));
    cr_assert_float_eq(ts_item(g), 2.0, 0, "the registered gradient was not used");
    ct_tensor_free(g);
    ct_tensor_free(y);
    ct_tape_free(t);
  }
  for (int k = 0; k < 3; ++k) {
    void *ok = NULL;
    pthread_join(th[k], &ok);
    cr_assert(ok, "registration thread %d failed: %s", k, ct_errmsg());
  }
  OK(ct_unregister_gradient("Sin"));
  ct_tensor_free(x);
  ct_context_free(ctx);
}
