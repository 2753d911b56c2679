/*
 * test_handles.c — handles after free. Every kind of public handle (context, tensor, tape, module,
 * optimizer, IDX dataset), once freed, is refused with CT_ERR_RELEASED and a message of its own
 * however many handles were made and freed after it; a second free does nothing; a handle of
 * another kind cast in is refused with CT_ERR_INVALID; the memory of freed handles is given back.
 * The sanitizer build (scripts/reliability.sh asan) runs this file too: none of it may read freed
 * memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_internal.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MARK "handles-marker-51c2"
static void mark(void) { (void)ct_unregister_gradient(MARK); }

/* The call returns `want` with a message of its own that contains `text`. */
#define REFUSED(call, want, text)                                                                          \
  do {                                                                                                     \
    mark();                                                                                                \
    ct_status r_s_ = (call);                                                                               \
    cr_assert_eq(r_s_, (want), "%s -> %s, wanted %s (%s)", #call, ct_status_name(r_s_), ct_status_name(want), \
                 ct_errmsg());                                                                             \
    cr_assert(strstr(ct_errmsg(), MARK) == NULL, "%s: no message of its own", #call);                      \
    cr_assert(strstr(ct_errmsg(), (text)) != NULL, "%s: message \"%s\" lacks \"%s\"", #call, ct_errmsg(), \
              (text));                                                                                     \
  } while (0)
#define FREED(call, kind) REFUSED(call, CT_ERR_RELEASED, kind " handle was freed")

static const int64_t S2[1] = {2};

Test(handles, tensor_after_ten_thousand_frees) {
  ct_context *ctx = ts_ctx();
  ct_tensor *t = NULL, *o = NULL;
  OK(ct_ones(ctx, CT_FLOAT32, 1, S2, &t));
  ct_tensor_free(t);
  for (int i = 0; i < 10000; ++i) { /* their memory may be given back, their addresses never reused */
    ct_tensor *x = NULL;
    OK(ct_scalar(ctx, CT_FLOAT32, (double)i, &x));
    ct_tensor_free(x);
  }
  float buf[2];
  FREED(ct_tensor_read(t, buf, sizeof buf), "tensor");
  FREED(ct_add(t, t, &o), "tensor");
  cr_assert_null(o);
  FREED(ct_variable_create(t, "v", true, &o), "tensor");
  cr_assert_eq(ct_tensor_rank(t), -1);
  cr_assert_null(ct_tensor_context(t));
  cr_assert_eq(ct_tensor_retain(t), t); /* no reference is added */
  ct_tensor_free(t);                    /* a second free: nothing */
  FREED(ct_tensor_item(t, (double[1]){0}), "tensor");
  ct_context_free(ctx);
}

Test(handles, tensor_after_its_memory_is_given_back) {
  /* enough tensors to fill several chunks: the freed one's page and chunk are given back */
  ct_context *ctx = ts_ctx();
  ct_handle_stats before, after;
  ct__handle_stats(&before);
  ct_tensor *first = NULL, *o = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 1, S2, &first));
  ct_tensor_free(first);
  enum { N = 40000 };
  for (int i = 0; i < N; ++i) {
    ct_tensor *x = NULL;
    OK(ct_zeros(ctx, CT_FLOAT32, 1, S2, &x));
    ct_tensor_free(x);
  }
  ct__handle_stats(&after);
  cr_assert_eq(after.live, before.live, "live handles %llu -> %llu", (unsigned long long)before.live,
               (unsigned long long)after.live);
  cr_assert_gt(after.chunks, before.chunks, "%d tensors fit in the chunks there were", N);
  cr_assert_gt(after.chunks_released, before.chunks_released, "no chunk was given back");
  cr_assert_gt(after.pages_released, before.pages_released, "no page was given back");
  FREED(ct_neg(first, &o), "tensor");
  cr_assert_null(o);
  ct_tensor_free(first);
  ct_context_free(ctx);
}

Test(handles, context) {
  ct_context *ctx = ts_ctx(), *held = ts_ctx();
  ct_tensor *keep = NULL, *o = NULL;
  ct_tape *tape = NULL;
  ct_device_info info;
  OK(ct_ones(held, CT_FLOAT32, 1, S2, &keep));
  ct_context_free(ctx);  /* nothing holds it: its object is freed */
  ct_context_free(held); /* a tensor still holds it: freed for the user all the same */
  ct_context_free(ctx);  /* second frees: nothing */
  ct_context_free(held);
  for (int i = 0; i < 2; ++i) {
    ct_context *c = i ? held : ctx;
    FREED(ct_zeros(c, CT_FLOAT32, 1, S2, &o), "context");
    cr_assert_null(o);
    FREED(ct_tape_begin(c, NULL, &tape), "context");
    cr_assert_null(tape);
    FREED(ct_context_device(c, &info), "context");
    FREED(ct_context_sync(c), "context");
    FREED(ct_range(c, CT_INT32, 0, 4, 1, &o), "context");
    ct_context_reset_peak(c); /* nothing, no crash */
    ct_context_trim(c);
  }
  cr_assert_str_empty(ct_context_errmsg(ctx));
  REFUSED(ct_neg(keep, &o), CT_ERR_RELEASED, "context was already freed");
  ct_tensor_free(keep); /* the last reference: the context goes now */
  FREED(ct_fill(held, CT_FLOAT32, 0, NULL, 1, &o), "context");
}

Test(handles, tape) {
  ct_context *ctx = ts_ctx();
  ct_tape *t = NULL;
  ct_tensor *x = NULL, *g = NULL;
  OK(ct_ones(ctx, CT_FLOAT32, 1, S2, &x));
  OK(ct_tape_begin(ctx, NULL, &t));
  ct_tape_free(t);
  for (int i = 0; i < 10000; ++i) {
    ct_tape *u = NULL;
    OK(ct_tape_begin(ctx, NULL, &u));
    ct_tape_free(u);
  }
  FREED(ct_tape_watch(t, x), "tape");
  FREED(ct_tape_end(t), "tape");
  FREED(ct_tape_gradient1(t, x, x, &g), "tape");
  cr_assert_null(g);
  uint64_t bytes;
  FREED(ct_tape_saved_bytes(t, &bytes), "tape");
  cr_assert_eq(ct_tape_size(t), -1);
  ct_tape_free(t); /* a second free: nothing */
  FREED(ct_tape_reset(t), "tape");
  ct_tensor_free(x);
  ct_context_free(ctx);
}

#if HAVE_NN
Test(handles, module_and_layer) {
  ct_context *ctx = ts_ctx();
  ct_module *m = NULL, *d = NULL;
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_sequential_create(ctx, NULL, &m));
  OK(ct_dense_create(ctx, 2, 3, CT_ACTIVATION_NONE, NULL, &d));
  OK(ct_ones(ctx, CT_FLOAT32, 2, (int64_t[]){1, 2}, &x));
  ct_module_free(m);
  ct_module_free(d);
  for (int i = 0; i < 10000; ++i) {
    ct_module *u = NULL;
    OK(ct_module_create(ctx, NULL, NULL, NULL, &u));
    ct_module_free(u);
  }
  FREED(ct_module_call(d, x, false, &y), "module");
  cr_assert_null(y);
  FREED(ct_module_set_trainable(m, false), "module");
  FREED(ct_sequential_add(m, m), "module");
  cr_assert_null(ct_module_name(d));
  cr_assert_eq(ct_module_num_params(d, false), -1);
  cr_assert_eq(ct_module_retain(d), d);
  ct_module_free(d); /* second frees: nothing */
  ct_module_free(m);
  FREED(ct_module_set_seed(d, 1), "module");
  ct_tensor_free(x);
  ct_context_free(ctx);
}

Test(handles, optimizer) {
  ct_context *ctx = ts_ctx();
  ct_optimizer *op = NULL;
  ct_tensor *v = NULL, *g = NULL;
  OK(ct_variable_scalar(ctx, 1.0, "w", true, &v));
  OK(ct_scalar(ctx, CT_FLOAT32, 0.5, &g));
  OK(ct_optimizer_create(ctx, NULL, &op));
  ct_optimizer_free(op);
  for (int i = 0; i < 10000; ++i) {
    ct_optimizer *u = NULL;
    OK(ct_optimizer_create(ctx, NULL, &u));
    ct_optimizer_free(u);
  }
  FREED(ct_optimizer_apply(op, &g, &v, 1), "optimizer");
  FREED(ct_optimizer_set_learning_rate(op, 0.1), "optimizer");
  cr_assert_eq(ct_optimizer_iterations(op), -1);
  cr_assert_eq(ct_optimizer_learning_rate(op), 0.0);
  ct_optimizer_free(op); /* a second free: nothing */
  FREED(ct_optimizer_apply(op, &g, &v, 1), "optimizer");
  double w;
  OK(ct_tensor_item(v, &w));
  cr_assert_eq(w, 1.0, "the variable changed: %g", w);
  ct_tensor_free(v);
  ct_tensor_free(g);
  ct_context_free(ctx);
}

static void write_file(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

Test(handles, dataset) {
  ct_context *ctx = ts_ctx();
  char dir[] = "/tmp/cltape-handles-XXXXXX", img[64], lab[64];
  cr_assert(mkdtemp(dir));
  snprintf(img, sizeof img, "%s/images.idx", dir);
  snprintf(lab, sizeof lab, "%s/labels.idx", dir);
  unsigned char ib[16 + 8] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
  unsigned char lb[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 0, 1};
  write_file(img, ib, sizeof ib);
  write_file(lab, lb, sizeof lb);
  ct_idx_dataset *ds = NULL;
  OK(ct_idx_dataset_open(ctx, img, lab, NULL, &ds));
  ct_idx_dataset_free(ds);
  for (int i = 0; i < 100; ++i) {
    ct_idx_dataset *u = NULL;
    OK(ct_idx_dataset_open(ctx, img, lab, NULL, &u));
    ct_idx_dataset_free(u);
  }
  ct_tensor *im = NULL, *lbt = NULL;
  FREED(ct_idx_dataset_batch(ds, 0, 1, &im, &lbt), "dataset");
  cr_assert_null(im);
  FREED(ct_idx_dataset_shuffle(ds, 3), "dataset");
  FREED(ct_idx_dataset_unshuffle(ds), "dataset");
  int rank;
  int64_t shape[8];
  FREED(ct_idx_dataset_example_shape(ds, &rank, shape), "dataset");
  cr_assert_eq(ct_idx_dataset_size(ds), -1);
  cr_assert_eq(ct_idx_dataset_num_batches(ds, 1, false), -1);
  ct_idx_dataset_free(ds); /* a second free: nothing */
  unlink(img);
  unlink(lab);
  rmdir(dir);
  ct_context_free(ctx);
}
#endif

Test(handles, wrong_kind) {
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL, *o = NULL;
  ct_tape *t = NULL;
  OK(ct_ones(ctx, CT_FLOAT32, 1, S2, &x));
  OK(ct_tape_begin(ctx, NULL, &t));
  REFUSED(ct_neg((ct_tensor *)t, &o), CT_ERR_INVALID, "is a tape handle, not a tensor");
  cr_assert_null(o);
  REFUSED(ct_neg((ct_tensor *)ctx, &o), CT_ERR_INVALID, "is a context handle, not a tensor");
  REFUSED(ct_zeros((ct_context *)x, CT_FLOAT32, 1, S2, &o), CT_ERR_INVALID, "is a tensor handle, not a context");
  REFUSED(ct_tape_end((ct_tape *)x), CT_ERR_INVALID, "is a tensor handle, not a tape");
  REFUSED(ct_context_sync((ct_context *)t), CT_ERR_INVALID, "is a tape handle, not a context");
  ct_tensor_free((ct_tensor *)t);  /* frees of the wrong kind: nothing */
  ct_tape_free((ct_tape *)x);
  ct_context_free((ct_context *)x);
  float xv[2] = {0, 0};
  OK(ct_tensor_read(x, xv, sizeof xv)); /* x and t are intact */
  cr_assert(xv[0] == 1.0f && xv[1] == 1.0f);
  OK(ct_tape_watch(t, x));
#if HAVE_NN
  ct_module *m = NULL;
  ct_optimizer *op = NULL;
  OK(ct_module_create(ctx, NULL, NULL, NULL, &m));
  OK(ct_optimizer_create(ctx, NULL, &op));
  REFUSED(ct_module_set_seed((ct_module *)op, 1), CT_ERR_INVALID, "is an optimizer handle, not a module");
  REFUSED(ct_optimizer_set_learning_rate((ct_optimizer *)m, 0.1), CT_ERR_INVALID,
          "is a module handle, not an optimizer");
  REFUSED(ct_idx_dataset_shuffle((ct_idx_dataset *)x, 1), CT_ERR_INVALID, "is a tensor handle, not a dataset");
  ct_module_free((ct_module *)op);
  ct_optimizer_free((ct_optimizer *)m);
  ct_idx_dataset_free((ct_idx_dataset *)m);
  OK(ct_module_set_seed(m, 1));
  OK(ct_optimizer_set_learning_rate(op, 0.1));
  ct_module_free(m);
  ct_optimizer_free(op);
#endif
  /* memory that is no handle at all */
  uint64_t junk[32] = {0};
  REFUSED(ct_neg((ct_tensor *)junk, &o), CT_ERR_INVALID, "not a tensor handle");
  ct_tape_free(t);
  ct_tensor_free(x);
  ct_context_free(ctx);
}

/* Threads make and free handles at the same time, each in its own context; each then finds the
 * handles it freed refused. */
typedef struct {
  ct_context *ctx;
  int failures;
} worker_arg;

static void *worker(void *p) {
  worker_arg *w = p;
  ct_tensor *first = NULL, *o = NULL;
  if (ct_scalar(w->ctx, CT_FLOAT32, 1, &first) != CT_OK) {
    w->failures++;
    return NULL;
  }
  ct_tensor_free(first);
  for (int i = 0; i < 3000; ++i) {
    ct_tape *t = NULL;
    ct_tensor *x = NULL, *y = NULL;
    if (ct_tape_begin(w->ctx, NULL, &t) != CT_OK || ct_scalar(w->ctx, CT_FLOAT32, i, &x) != CT_OK ||
        ct_tape_watch(t, x) != CT_OK || ct_mul(x, x, &y) != CT_OK)
      w->failures++;
    ct_tensor_free(y);
    ct_tensor_free(x);
    ct_tape_free(t);
    if (ct_tape_end(t) != CT_ERR_RELEASED) w->failures++;
    if (ct_neg(x, &o) != CT_ERR_RELEASED) w->failures++;
  }
  if (ct_neg(first, &o) != CT_ERR_RELEASED) w->failures++;
  return NULL;
}

Test(handles, threads) {
  enum { T = 4 };
  pthread_t th[T];
  worker_arg args[T];
  for (int i = 0; i < T; ++i) args[i] = (worker_arg){ts_ctx(), 0};
  for (int i = 0; i < T; ++i) cr_assert_eq(pthread_create(&th[i], NULL, worker, &args[i]), 0);
  for (int i = 0; i < T; ++i) pthread_join(th[i], NULL);
  for (int i = 0; i < T; ++i) {
    cr_assert_eq(args[i].failures, 0, "thread %d: %d failures", i, args[i].failures);
    ct_context_free(args[i].ctx);
  }
}
