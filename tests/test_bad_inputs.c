/*
 * test_bad_inputs.c — the bad-input matrix: every public function of the public headers
 * (include/cltape.h, include/cltape_cl.h, include/cltape_dlpack.h and include/cltape_nn.h) called with each bad
 * argument that applies to it: NULL, a released handle (of every kind: contexts, tensors, tapes,
 * modules, optimizers, datasets), a handle of another kind, a tensor whose context was freed, a wrong
 * dtype, shapes that do not broadcast, axes out of range or repeated, negative extents, shape
 * products that overflow, allocations far larger than the device, tensors of two contexts.
 *
 * Each call must return the documented status with a fresh, non-empty message (BAD), set its
 * out-parameter to NULL, and crash nothing. After each row the context must still compute a
 * correct result, and the device bytes in use must be back where they were (no leaked tensor or
 * buffer); host leaks are the sanitizer build's job (scripts/reliability.sh).
 *
 * The table is checked against the headers themselves (Test coverage): a public function without
 * a row fails here, so a new function cannot be added without deciding what its bad inputs do.
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_cl.h"
#include "cltape_dlpack.h"
#include <ctype.h>
#include <dirent.h>
#include <unistd.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fixture ------------------------------------------------------------------------------ */
typedef struct {
  ct_context *ctx;     /* the context under test */
  ct_context *other;   /* a second context: tensors of two contexts */
  ct_tensor *a;        /* float32 (2, 3) */
  ct_tensor *b;        /* float32 (3, 2): does not broadcast with a */
  ct_tensor *d;        /* (2, 3) of another dtype than a: float64, int32 on a device without it */
  ct_tensor *i;        /* int32 (2, 3) */
  ct_tensor *s;        /* float32 scalar */
  ct_tensor *v;        /* float32 (3,) */
  ct_tensor *r8;       /* float32 of rank 8, all extents 1 */
  ct_tensor *col, *row;/* best float (side, 1) and (1, side): their broadcast, even as bool (a comparison's,
                          one byte), is more than the device's largest allocation (see too_big) */
  bool fp64;           /* the device has float64 */
  ct_tensor *var;      /* trainable float32 variable (2, 3) */
  ct_tensor *foreign;  /* float32 (2, 3) of `other` */
  ct_tensor *orphan;   /* float32 (2, 3) whose context was freed */
  ct_tensor *dead;     /* a released tensor (fresh for each row) */
  ct_context *dead_ctx;  /* a freed context that nothing held: its object is gone */
  ct_context *held_ctx;  /* the context of `orphan`: freed by the user, still held by the tensor */
  ct_tape *dead_tape;    /* a freed tape */
  ct_module *dead_mod;   /* a freed module */
  ct_optimizer *dead_opt;/* a freed optimizer */
  const char *row_name;
  int tried;           /* bad calls made in this process */
} fx;

static fx F;
/* Sizes "too big" for the device under test, from its own limit (CL_DEVICE_MAX_MEM_ALLOC_SIZE),
 * never from a guess about the machine's memory: a (SH_BIG[0], SH_BIG[1]) tensor of 4-byte
 * elements, N8_BIG float64 elements, and HOT_ROWS one-hot rows of HOT_DEPTH (an int) 4-byte
 * elements need more than the largest allocation. */
static int64_t SH_BIG[2], SIDE_BYTE, N8_BIG, HOT_ROWS;
static int HOT_DEPTH;
static void too_big(ct_context *ctx) {
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  uint64_t lim = info.max_alloc_bytes;
  cr_assert_gt(lim, 0);
  int64_t side = (int64_t)sqrt((double)lim / 4.0);
  while ((uint64_t)side * (uint64_t)side * 4u <= lim) side++;
  SH_BIG[0] = SH_BIG[1] = side;
  SIDE_BYTE = side; /* (SIDE_BYTE, SIDE_BYTE) of one-byte elements is too big too */
  while ((uint64_t)SIDE_BYTE * (uint64_t)SIDE_BYTE <= lim) SIDE_BYTE++;
  N8_BIG = (int64_t)(lim / 8 + 1);
  HOT_DEPTH = lim / 8 + 1 > (uint64_t)INT32_MAX ? INT32_MAX : (int)(lim / 8 + 1);
  HOT_ROWS = (int64_t)(lim / (4u * (uint64_t)HOT_DEPTH)) + 1; /* rows * depth * 4 > lim */
}
static char nn_dir[64]; /* files of the checkpoint and dataset rows */
#define MARK "bad-inputs-marker-7f3a"

/* Leaves a known message on the thread, so that BAD can tell a fresh message from a stale one. */
static void mark(void) { (void)ct_unregister_gradient(MARK); }

static bool fresh_message(void) { return ct_errmsg()[0] != 0 && strstr(ct_errmsg(), MARK) == NULL; }

/* A bad call: the wanted status and a fresh message. */
/* A dtype other than float32 for mismatches: float64, int32 on a device without float64. */
#define DT_OTHER (F.fp64 ? CT_FLOAT64 : CT_INT32)
/* What a float64 request returns: `want`, CT_ERR_UNSUPPORTED on a device without float64. */
#define W64(want) (F.fp64 ? (want) : CT_ERR_UNSUPPORTED)

#define BAD(call, want)                                                                                     \
  do {                                                                                                      \
    mark();                                                                                                 \
    ct_status bad_s_ = (call);                                                                              \
    F.tried++;                                                                                              \
    cr_assert_eq(bad_s_, (want), "[%s] %s -> %s, wanted %s (%s)", F.row_name, #call, ct_status_name(bad_s_), \
                 ct_status_name(want), ct_errmsg());                                                        \
    cr_assert(fresh_message(), "[%s] %s: no message of its own (\"%s\")", F.row_name, #call, ct_errmsg());   \
  } while (0)

/* A bad call with a tensor out-parameter: it must come back NULL. */
#define SENTINEL ((ct_tensor *)&F)
#define BADO(call, want)                                                                                    \
  do {                                                                                                      \
    o = SENTINEL;                                                                                           \
    BAD(call, want);                                                                                        \
    cr_assert_null(o, "[%s] %s: the out-parameter was not set to NULL", F.row_name, #call);                \
  } while (0)

/* A function without a status: the documented value for a bad argument. */
#define SENT(expr, want)                                                                                    \
  do {                                                                                                      \
    F.tried++;                                                                                              \
    cr_assert((expr) == (want), "[%s] %s is not %s", F.row_name, #expr, #want);                             \
  } while (0)

static ct_tensor *t_of(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, double start) {
  int64_t n = 1;
  for (int k = 0; k < rank; ++k) n *= shape[k];
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  cr_assert(v);
  for (int64_t k = 0; k < n; ++k) v[k] = start + (double)k;
  ct_tensor *t = ts_tensor(ctx, dt, rank, shape, v);
  free(v);
  return t;
}

static const int64_t S23[2] = {2, 3}, S32[2] = {3, 2}, S3[1] = {3};

static uint64_t bytes_in_use(void) {
  ct_context_stats st;
  OK(ct_context_stats_get(F.ctx, &st));
  return st.bytes_in_use;
}

static void setup(void) {
  memset(&F, 0, sizeof F);
  F.row_name = "setup";
  F.ctx = ts_ctx();
  F.other = ts_ctx();
  too_big(F.ctx);
  F.a = t_of(F.ctx, CT_FLOAT32, 2, S23, 1);
  F.b = t_of(F.ctx, CT_FLOAT32, 2, S32, 1);
  F.fp64 = ts_has_fp64(F.ctx);
  F.d = t_of(F.ctx, DT_OTHER, 2, S23, 1);
  F.i = t_of(F.ctx, CT_INT32, 2, S23, 0);
  F.s = t_of(F.ctx, CT_FLOAT32, 0, NULL, 2);
  F.v = t_of(F.ctx, CT_FLOAT32, 1, S3, 1);
  int64_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  F.r8 = t_of(F.ctx, CT_FLOAT32, 8, ones, 1);
  OK(ct_zeros(F.ctx, ts_best_float(F.ctx), 2, (int64_t[]){SIDE_BYTE, 1}, &F.col));
  OK(ct_zeros(F.ctx, ts_best_float(F.ctx), 2, (int64_t[]){1, SIDE_BYTE}, &F.row));
  OK(ct_variable_create(F.a, "w", true, &F.var));
  F.foreign = t_of(F.other, CT_FLOAT32, 2, S23, 1);
  ct_context *gone = ts_ctx();
  F.orphan = t_of(gone, CT_FLOAT32, 2, S23, 1);
  ct_context_free(gone); /* the tensor stays a valid handle of a freed context */
  F.held_ctx = gone;
  F.dead_ctx = ts_ctx();
  ct_context_free(F.dead_ctx);
  OK(ct_tape_begin(F.ctx, NULL, &F.dead_tape));
  ct_tape_free(F.dead_tape);
  OK(ct_module_create(F.ctx, NULL, NULL, NULL, &F.dead_mod));
  ct_module_free(F.dead_mod);
  OK(ct_optimizer_create(F.ctx, NULL, &F.dead_opt));
  ct_optimizer_free(F.dead_opt);
  /* fixtures that are pending (fusion) get their storage now, so that a row that synchronises
   * does not count the fixtures' storage as its own */
  OK(ct_context_sync(F.ctx));
  OK(ct_context_sync(F.other));
}

static void teardown(void) {
  ct_tensor *all[] = {F.a, F.b, F.d, F.i, F.s, F.v, F.r8, F.col, F.row, F.var, F.foreign, F.orphan};
  ct_tensor_free_n(all, (int)(sizeof all / sizeof *all));
  ct_context_free(F.other);
  ct_context_free(F.ctx);
  if (nn_dir[0]) { /* the files the checkpoint and dataset rows wrote */
    DIR *d = opendir(nn_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      char p[512];
      snprintf(p, sizeof p, "%s/%s", nn_dir, e->d_name);
      if (e->d_name[0] != '.') unlink(p);
    }
    if (d) closedir(d);
    rmdir(nn_dir);
    nn_dir[0] = 0;
  }
  fprintf(stderr, "bad inputs: %d calls\n", F.tried);
}

/* The context still computes after a row: a + a read back. */
static void assert_alive(void) {
  ct_tensor *y = NULL;
  ct_status s = ct_add(F.a, F.a, &y);
  cr_assert_eq(s, CT_OK, "[%s] the context no longer works: %s", F.row_name, ct_errmsg());
  double want[6] = {2, 4, 6, 8, 10, 12};
  ts_assert_close(y, want, 6, 0, 0, F.row_name);
  ct_tensor_free(y);
  double v[6];
  OK(ct_tensor_read_f64(F.var, v, 6));
  for (int k = 0; k < 6; ++k) cr_assert_eq(v[k], k + 1.0, "[%s] variable w changed: %g", F.row_name, v[k]);
}

/* ---- rows --------------------------------------------------------------------------------------- */
typedef struct row row;
typedef void (*row_fn)(const row *r);
struct row {
  const char *name;
  const char *family;
  row_fn fn;
  ct_status (*un)(const ct_tensor *, ct_tensor **);
  ct_status (*bin)(const ct_tensor *, const ct_tensor *, ct_tensor **);
  ct_status (*sc)(const ct_tensor *, double, ct_tensor **);
};

/* ---- status, version, logging, dtypes ---- */
static void r_version_number(const row *r) {
  (void)r;
  SENT(ct_version_number(), CLTAPE_VERSION_NUMBER); /* no arguments: nothing can be bad */
}
static void r_version_string(const row *r) {
  (void)r;
  SENT(strcmp(ct_version_string(), CLTAPE_VERSION_STRING), 0);
}
static void r_status_name(const row *r) {
  (void)r;
  SENT(strcmp(ct_status_name((ct_status)-1), "CT_UNKNOWN"), 0);
  SENT(strcmp(ct_status_name(CT_STATUS_COUNT_), "CT_UNKNOWN"), 0);
  SENT(strcmp(ct_status_name((ct_status)INT32_MAX), "CT_UNKNOWN"), 0);
}
static void r_status_str(const row *r) {
  (void)r;
  SENT(strcmp(ct_status_str((ct_status)-1), "unknown status"), 0);
  SENT(strcmp(ct_status_str(CT_STATUS_COUNT_), "unknown status"), 0);
}
static void r_errmsg(const row *r) {
  (void)r;
  mark();
  SENT(strstr(ct_errmsg(), MARK) != NULL, true);
}
static int log_calls;
static char log_last[256];
static void capture_log(ct_log_level level, const char *message, void *user) {
  (void)level;
  (void)user;
  log_calls++;
  snprintf(log_last, sizeof log_last, "%s", message);
}
/* Watching an int32 tensor logs a warning through the callback; NULL restores the default. */
static void watch_int_warning(void) {
  ct_tape *t = NULL;
  OK(ct_tape_begin(F.ctx, NULL, &t));
  OK(ct_tape_watch(t, F.i));
  ct_tape_free(t);
}
static void r_set_log(const row *r) {
  (void)r;
  log_calls = 0;
  ct_set_log(capture_log, NULL);
  watch_int_warning();
  SENT(log_calls, 1);
  SENT(strstr(log_last, "int32") != NULL, true);
  ct_set_log(NULL, NULL); /* back to stderr: the callback is no longer called */
  watch_int_warning();
  SENT(log_calls, 1);
}
static void r_dtype_name(const row *r) {
  (void)r;
  SENT(strcmp(ct_dtype_name((ct_dtype)77), "invalid"), 0);
  SENT(strcmp(ct_dtype_name((ct_dtype)-1), "invalid"), 0);
}
static void r_dtype_size(const row *r) {
  (void)r;
  SENT(ct_dtype_size((ct_dtype)77), (size_t)0);
  SENT(ct_dtype_size((ct_dtype)-1), (size_t)0);
}

/* ---- devices and contexts ---- */
static void r_device_list(const row *r) {
  (void)r;
  ct_device_info info[2];
  int n = -1;
  BAD(ct_device_list(info, 2, NULL), CT_ERR_NULL);
  BAD(ct_device_list(info, -1, &n), CT_ERR_INVALID);
  BAD(ct_device_list(NULL, 2, &n), CT_ERR_INVALID);
}
static void r_context_create(const row *r) {
  (void)r;
  ct_context *c = (ct_context *)&F;
  BAD(ct_context_create(NULL, NULL), CT_ERR_NULL);
  BAD(ct_context_create("no such device, surely", &c), CT_ERR_NO_DEVICE);
  cr_assert_null(c);
  c = (ct_context *)&F;
  BAD(ct_context_create("9999", &c), CT_ERR_NO_DEVICE);
  cr_assert_null(c);
}
static void r_context_free(const row *r) {
  (void)r;
  ct_context_free(NULL); /* nothing */
  ct_context_free(F.dead_ctx); /* freed already: nothing */
  ct_context_free(F.held_ctx);
  ct_context_free((ct_context *)F.a); /* not a context: nothing */
  F.tried += 4;
}
static void r_context_device(const row *r) {
  (void)r;
  ct_device_info info;
  BAD(ct_context_device(NULL, &info), CT_ERR_NULL);
  BAD(ct_context_device(F.ctx, NULL), CT_ERR_NULL);
  BAD(ct_context_device(F.dead_ctx, &info), CT_ERR_RELEASED);
  BAD(ct_context_device(F.held_ctx, &info), CT_ERR_RELEASED);
  BAD(ct_context_device((ct_context *)F.a, &info), CT_ERR_INVALID);
}
static void r_context_errmsg(const row *r) {
  (void)r;
  SENT(strcmp(ct_context_errmsg(NULL), ""), 0);
  SENT(strcmp(ct_context_errmsg(F.dead_ctx), ""), 0);
  ct_tensor *o;
  BADO(ct_reshape(F.a, 1, (int64_t[]){7}, &o), CT_ERR_SHAPE);
  SENT(strcmp(ct_context_errmsg(F.ctx), ct_errmsg()), 0); /* the context keeps the message too */
}
static void r_context_sync(const row *r) {
  (void)r;
  BAD(ct_context_sync(NULL), CT_ERR_NULL);
  BAD(ct_context_sync(F.dead_ctx), CT_ERR_RELEASED);
  BAD(ct_context_sync(F.held_ctx), CT_ERR_RELEASED);
  BAD(ct_context_sync((ct_context *)F.dead_tape), CT_ERR_RELEASED); /* a freed handle of any kind */
}
static void r_context_stats_get(const row *r) {
  (void)r;
  ct_context_stats st;
  BAD(ct_context_stats_get(NULL, &st), CT_ERR_NULL);
  BAD(ct_context_stats_get(F.ctx, NULL), CT_ERR_NULL);
  BAD(ct_context_stats_get(F.dead_ctx, &st), CT_ERR_RELEASED);
}
static void r_context_reset_peak(const row *r) {
  (void)r;
  ct_context_reset_peak(NULL);
  ct_context_reset_peak(F.dead_ctx); /* nothing */
  ct_context_reset_peak(F.held_ctx);
  F.tried += 3;
}
static void r_context_trim(const row *r) {
  (void)r;
  ct_context_trim(NULL);
  ct_context_trim(F.dead_ctx); /* nothing */
  ct_context_trim(F.held_ctx);
  F.tried += 3;
}
/* matmul tuning: only the refusals (a real run takes minutes; tests/test_tune.c runs a short one) */
static void r_tune_default_options(const row *r) {
  (void)r;
  ct_tune_options o = ct_tune_default_options();
  SENT(o.budget_seconds > 0 && o.size == 1024 && o.float32 && !o.no_store, true);
}
static void r_tune_matmul(const row *r) {
  (void)r;
  ct_tune_options o = ct_tune_default_options();
  ct_tune_report rep;
  BAD(ct_tune_matmul(NULL, &o, &rep), CT_ERR_NULL);
  BAD(ct_tune_matmul(F.dead_ctx, &o, &rep), CT_ERR_RELEASED);
  o.budget_seconds = -1;
  BAD(ct_tune_matmul(F.ctx, &o, &rep), CT_ERR_INVALID);
  o = ct_tune_default_options();
  o.size = 8;
  BAD(ct_tune_matmul(F.ctx, &o, &rep), CT_ERR_INVALID);
  o = ct_tune_default_options();
  o.float32 = o.float64 = false;
  BAD(ct_tune_matmul(F.ctx, &o, &rep), CT_ERR_UNSUPPORTED);
}
static void r_tune_status(const row *r) {
  (void)r;
  ct_tune_state st;
  BAD(ct_tune_status(NULL, &st), CT_ERR_NULL);
  BAD(ct_tune_status(F.dead_ctx, &st), CT_ERR_RELEASED);
  BAD(ct_tune_status(F.ctx, NULL), CT_ERR_NULL);
}

/* ---- creation ---- */
/* Shapes every creation function must refuse, with the status each gets. */
typedef struct {
  int rank;
  const int64_t *shape;
  ct_status want;
  const char *what;
} bad_shape;
static const int64_t SH_NEG[2] = {2, -3}, SH_OVF[3] = {INT64_MAX / 2, 4, 3}, SH_OVF2[2] = {INT64_MAX, INT64_MAX},
                     SH_ZOVF[3] = {0, INT64_MAX, INT64_MAX};
static const bad_shape BAD_SHAPES[] = {
    {-1, S23, CT_ERR_SHAPE, "negative rank"},
    {9, S23, CT_ERR_SHAPE, "rank 9"},
    {2, NULL, CT_ERR_NULL, "shape NULL"},
    {2, SH_NEG, CT_ERR_SHAPE, "negative extent"},
    {3, SH_OVF, CT_ERR_SHAPE, "element count overflows"},
    {2, SH_OVF2, CT_ERR_SHAPE, "extents INT64_MAX"},
    {3, SH_ZOVF, CT_ERR_SHAPE, "a zero extent, the others' product overflows"},
    {2, SH_BIG, CT_ERR_OUT_OF_MEMORY, "more 4-byte elements than the device's largest allocation holds"},
};
#define N_BAD_SHAPES ((int)(sizeof BAD_SHAPES / sizeof *BAD_SHAPES))
/* Over a caller's buffer nothing is allocated: a shape too large for the device is too large for
 * the buffer. */
#define WRAP_WANT(k) (BAD_SHAPES[k].want == CT_ERR_OUT_OF_MEMORY ? CT_ERR_SHAPE : BAD_SHAPES[k].want)

static void r_tensor_from_data(const row *r) {
  (void)r;
  float data[6] = {0};
  ct_tensor *o;
  BAD(ct_tensor_from_data(F.ctx, CT_FLOAT32, 2, S23, data, NULL), CT_ERR_NULL);
  BADO(ct_tensor_from_data(NULL, CT_FLOAT32, 2, S23, data, &o), CT_ERR_NULL);
  BADO(ct_tensor_from_data(F.dead_ctx, CT_FLOAT32, 2, S23, data, &o), CT_ERR_RELEASED);
  BADO(ct_tensor_from_data(F.held_ctx, CT_FLOAT32, 2, S23, data, &o), CT_ERR_RELEASED);
  BADO(ct_tensor_from_data(F.ctx, (ct_dtype)7, 2, S23, data, &o), CT_ERR_DTYPE);
  BADO(ct_tensor_from_data(F.ctx, (ct_dtype)-1, 2, S23, data, &o), CT_ERR_DTYPE);
  BADO(ct_tensor_from_data(F.ctx, CT_FLOAT32, 2, S23, NULL, &o), CT_ERR_NULL);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(ct_tensor_from_data(F.ctx, CT_FLOAT32, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, data, &o), BAD_SHAPES[k].want);
  /* more than the device's largest allocation; nothing is read from `data` */
  BADO(ct_tensor_from_data(F.ctx, CT_FLOAT64, 2, SH_BIG, data, &o), W64(CT_ERR_OUT_OF_MEMORY));
}
static void r_scalar(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_scalar(F.ctx, CT_FLOAT32, 1, NULL), CT_ERR_NULL);
  BADO(ct_scalar(NULL, CT_FLOAT32, 1, &o), CT_ERR_NULL);
  BADO(ct_scalar(F.dead_ctx, CT_FLOAT32, 1, &o), CT_ERR_RELEASED);
  BADO(ct_scalar((ct_context *)F.a, CT_FLOAT32, 1, &o), CT_ERR_INVALID);
  BADO(ct_scalar(F.ctx, (ct_dtype)9, 1, &o), CT_ERR_DTYPE);
  BADO(ct_scalar(F.ctx, CT_INT32, NAN, &o), CT_ERR_INVALID);
  BADO(ct_scalar(F.ctx, CT_INT32, 1e10, &o), CT_ERR_INVALID);
  BADO(ct_scalar(F.ctx, CT_INT32, -INFINITY, &o), CT_ERR_INVALID);
}
typedef ct_status (*shape_ctor)(ct_context *, ct_dtype, int, const int64_t *, ct_tensor **);
static void shape_ctor_row(shape_ctor fn) {
  ct_tensor *o;
  BAD(fn(F.ctx, CT_FLOAT32, 2, S23, NULL), CT_ERR_NULL);
  BADO(fn(NULL, CT_FLOAT32, 2, S23, &o), CT_ERR_NULL);
  BADO(fn(F.dead_ctx, CT_FLOAT32, 2, S23, &o), CT_ERR_RELEASED);
  BADO(fn(F.held_ctx, CT_FLOAT32, 2, S23, &o), CT_ERR_RELEASED);
  BADO(fn(F.ctx, (ct_dtype)13, 2, S23, &o), CT_ERR_DTYPE);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(fn(F.ctx, CT_FLOAT32, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, &o), BAD_SHAPES[k].want);
  BADO(fn(F.ctx, CT_FLOAT64, 2, SH_BIG, &o), W64(CT_ERR_OUT_OF_MEMORY));
}
static ct_status fill7(ct_context *c, ct_dtype dt, int rank, const int64_t *shape, ct_tensor **o) {
  return ct_fill(c, dt, rank, shape, 7.0, o);
}
static void r_fill(const row *r) {
  (void)r;
  shape_ctor_row(fill7);
  ct_tensor *o;
  BADO(ct_fill(F.ctx, CT_INT32, 2, S23, NAN, &o), CT_ERR_INVALID);
  BADO(ct_fill(F.ctx, CT_INT32, 2, S23, 3e9, &o), CT_ERR_INVALID);
}
static void r_zeros(const row *r) {
  (void)r;
  shape_ctor_row(ct_zeros);
}
static void r_ones(const row *r) {
  (void)r;
  shape_ctor_row(ct_ones);
}
static void like_row(ct_status (*fn)(const ct_tensor *, ct_tensor **)) {
  ct_tensor *o;
  BAD(fn(F.a, NULL), CT_ERR_NULL);
  BADO(fn(NULL, &o), CT_ERR_NULL);
  BADO(fn(F.dead, &o), CT_ERR_RELEASED);
  BADO(fn(F.orphan, &o), CT_ERR_RELEASED);
}
static void r_zeros_like(const row *r) {
  (void)r;
  like_row(ct_zeros_like);
}
static void r_ones_like(const row *r) {
  (void)r;
  like_row(ct_ones_like);
}
static void r_linspace(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_linspace(F.ctx, CT_FLOAT32, 0, 1, 5, NULL), CT_ERR_NULL);
  BADO(ct_linspace(NULL, CT_FLOAT32, 0, 1, 5, &o), CT_ERR_NULL);
  BADO(ct_linspace(F.dead_ctx, CT_FLOAT32, 0, 1, 5, &o), CT_ERR_RELEASED);
  BADO(ct_linspace(F.ctx, CT_FLOAT32, 0, 1, 0, &o), CT_ERR_INVALID);
  BADO(ct_linspace(F.ctx, CT_FLOAT32, 0, 1, -5, &o), CT_ERR_INVALID);
  BADO(ct_linspace(F.ctx, CT_FLOAT32, NAN, 1, 5, &o), CT_ERR_INVALID);
  BADO(ct_linspace(F.ctx, CT_FLOAT32, 0, INFINITY, 5, &o), CT_ERR_INVALID);
  BADO(ct_linspace(F.ctx, (ct_dtype)15, 0, 1, 5, &o), CT_ERR_DTYPE);
  BADO(ct_linspace(F.ctx, CT_FLOAT32, 0, 1, INT64_MAX, &o), CT_ERR_SHAPE); /* the byte count overflows */
  BADO(ct_linspace(F.ctx, CT_FLOAT32, 0, 1, (int64_t)1 << 40, &o), CT_ERR_OUT_OF_MEMORY);
  BADO(ct_linspace(F.ctx, CT_FLOAT64, 0, 1, N8_BIG, &o), W64(CT_ERR_OUT_OF_MEMORY)); /* past the device's limit */
}
static void r_range(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_range(F.ctx, CT_FLOAT32, 0, 5, 1, NULL), CT_ERR_NULL);
  BADO(ct_range(NULL, CT_FLOAT32, 0, 5, 1, &o), CT_ERR_NULL);
  BADO(ct_range(F.dead_ctx, CT_FLOAT32, 0, 5, 1, &o), CT_ERR_RELEASED);
  BADO(ct_range(F.ctx, CT_FLOAT32, 0, 5, 0, &o), CT_ERR_INVALID);
  BADO(ct_range(F.ctx, CT_FLOAT32, 0, 5, NAN, &o), CT_ERR_INVALID);
  BADO(ct_range(F.ctx, CT_FLOAT32, -INFINITY, 5, 1, &o), CT_ERR_INVALID);
  BADO(ct_range(F.ctx, (ct_dtype)15, 0, 5, 1, &o), CT_ERR_DTYPE);
  BADO(ct_range(F.ctx, CT_FLOAT32, 0, 1e300, 1e-300, &o), CT_ERR_OUT_OF_MEMORY);
  BADO(ct_range(F.ctx, CT_FLOAT64, 0, (double)N8_BIG, 1, &o), W64(CT_ERR_OUT_OF_MEMORY)); /* past the device's limit */
}
typedef ct_status (*random_fn)(ct_context *, ct_dtype, int, const int64_t *, double, double, uint64_t, ct_tensor **);
static void random_row(random_fn fn) {
  ct_tensor *o;
  BAD(fn(F.ctx, CT_FLOAT32, 2, S23, 0, 1, 1, NULL), CT_ERR_NULL);
  BADO(fn(NULL, CT_FLOAT32, 2, S23, 0, 1, 1, &o), CT_ERR_NULL);
  BADO(fn(F.dead_ctx, CT_FLOAT32, 2, S23, 0, 1, 1, &o), CT_ERR_RELEASED);
  BADO(fn(F.ctx, CT_INT32, 2, S23, 0, 1, 1, &o), CT_ERR_DTYPE);
  BADO(fn(F.ctx, (ct_dtype)8, 2, S23, 0, 1, 1, &o), CT_ERR_DTYPE);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(fn(F.ctx, CT_FLOAT32, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, 0, 1, 1, &o), BAD_SHAPES[k].want);
  /* fails on the device's limit before staging that many random numbers on the host */
  BADO(fn(F.ctx, CT_FLOAT64, 2, SH_BIG, 0, 1, 1, &o), W64(CT_ERR_OUT_OF_MEMORY));
}
static void r_random_normal(const row *r) {
  (void)r;
  random_row(ct_random_normal);
}
static void r_random_uniform(const row *r) {
  (void)r;
  random_row(ct_random_uniform);
}

/* ---- handles and inspection ---- */
static void r_tensor_retain(const row *r) {
  (void)r;
  SENT(ct_tensor_retain(NULL), (ct_tensor *)NULL);
  ct_tensor *dead = F.dead;
  SENT(ct_tensor_retain(dead), dead); /* no reference is added to a released tensor */
  SENT(ct_tensor_size(dead), -1);
}
static void r_tensor_free(const row *r) {
  (void)r;
  ct_tensor_free(NULL);
  ct_tensor_free(F.dead); /* a second release of a released tensor is detected and ignored */
  ct_tensor_free(F.dead);
  F.tried += 3;
}
static void r_tensor_free_n(const row *r) {
  (void)r;
  ct_tensor_free_n(NULL, 5);
  ct_tensor *arr[3] = {NULL, F.dead, NULL};
  ct_tensor_free_n(arr, 3);
  ct_tensor_free_n(arr, -1);
  F.tried += 3;
}
static void r_tensor_context(const row *r) {
  (void)r;
  SENT(ct_tensor_context(NULL), (ct_context *)NULL);
  SENT(ct_tensor_context(F.dead), (ct_context *)NULL);
}
static void r_tensor_dtype(const row *r) {
  (void)r;
  SENT(ct_tensor_dtype(NULL), CT_FLOAT32);
  SENT(ct_tensor_dtype(F.dead), CT_FLOAT32);
}
static void r_tensor_rank(const row *r) {
  (void)r;
  SENT(ct_tensor_rank(NULL), -1);
  SENT(ct_tensor_rank(F.dead), -1);
}
static void r_tensor_shape(const row *r) {
  (void)r;
  SENT(ct_tensor_shape(NULL), (const int64_t *)NULL);
  SENT(ct_tensor_shape(F.dead), (const int64_t *)NULL);
}
static void r_tensor_size(const row *r) {
  (void)r;
  SENT(ct_tensor_size(NULL), -1);
  SENT(ct_tensor_size(F.dead), -1);
}
static void r_tensor_id(const row *r) {
  (void)r;
  SENT(ct_tensor_id(NULL), (uint64_t)0);
  SENT(ct_tensor_id(F.dead), (uint64_t)0);
}
static void r_tensor_read(const row *r) {
  (void)r;
  float buf[6];
  BAD(ct_tensor_read(NULL, buf, sizeof buf), CT_ERR_NULL);
  BAD(ct_tensor_read(F.dead, buf, sizeof buf), CT_ERR_RELEASED);
  BAD(ct_tensor_read(F.orphan, buf, sizeof buf), CT_ERR_RELEASED);
  BAD(ct_tensor_read(F.a, NULL, sizeof buf), CT_ERR_NULL);
  BAD(ct_tensor_read(F.a, buf, sizeof buf - 1), CT_ERR_INVALID);
  BAD(ct_tensor_read(F.a, buf, sizeof buf + 4), CT_ERR_INVALID);
  BAD(ct_tensor_read(F.a, buf, SIZE_MAX), CT_ERR_INVALID);
}
static void r_tensor_read_f64(const row *r) {
  (void)r;
  double buf[6];
  BAD(ct_tensor_read_f64(NULL, buf, 6), CT_ERR_NULL);
  BAD(ct_tensor_read_f64(F.dead, buf, 6), CT_ERR_RELEASED);
  BAD(ct_tensor_read_f64(F.a, NULL, 6), CT_ERR_NULL);
  BAD(ct_tensor_read_f64(F.a, buf, 5), CT_ERR_INVALID);
  BAD(ct_tensor_read_f64(F.a, buf, -1), CT_ERR_INVALID);
}
static void r_tensor_item(const row *r) {
  (void)r;
  double v;
  BAD(ct_tensor_item(NULL, &v), CT_ERR_NULL);
  BAD(ct_tensor_item(F.dead, &v), CT_ERR_RELEASED);
  BAD(ct_tensor_item(F.s, NULL), CT_ERR_NULL);
  BAD(ct_tensor_item(F.a, &v), CT_ERR_SHAPE);
}
static void r_tensor_format(const row *r) {
  (void)r;
  char buf[64];
  BAD(ct_tensor_format(NULL, CT_FORMAT_REPR, buf, sizeof buf), CT_ERR_NULL);
  BAD(ct_tensor_format(F.dead, CT_FORMAT_REPR, buf, sizeof buf), CT_ERR_RELEASED);
  BAD(ct_tensor_format(F.a, CT_FORMAT_REPR, NULL, sizeof buf), CT_ERR_NULL);
  BAD(ct_tensor_format(F.a, CT_FORMAT_REPR, buf, 0), CT_ERR_NULL);
  BAD(ct_tensor_format(F.a, (ct_format_style)9, buf, sizeof buf), CT_ERR_INVALID);
  /* a buffer too small is not an error: the text is cut and ends in "..." */
  for (size_t cap = 1; cap < 12; ++cap) {
    memset(buf, 'x', sizeof buf);
    OK(ct_tensor_format(F.a, CT_FORMAT_REPR, buf, cap));
    cr_assert(strlen(buf) < cap, "cap %zu: \"%s\" overflows", cap, buf);
    cr_assert_eq(buf[cap], 'x', "cap %zu: wrote past the buffer", cap);
    F.tried++;
  }
}
static void r_shape_format(const row *r) {
  (void)r;
  char buf[64];
  BAD(ct_shape_format(NULL, buf, sizeof buf), CT_ERR_NULL);
  BAD(ct_shape_format(F.dead, buf, sizeof buf), CT_ERR_RELEASED);
  BAD(ct_shape_format(F.a, NULL, 8), CT_ERR_NULL);
  BAD(ct_shape_format(F.a, buf, 0), CT_ERR_NULL);
  for (size_t cap = 1; cap < 8; ++cap) {
    memset(buf, 'x', sizeof buf);
    OK(ct_shape_format(F.r8, buf, cap));
    cr_assert(strlen(buf) < cap && buf[cap] == 'x', "cap %zu: \"%s\"", cap, buf);
    F.tried++;
  }
}

/* ---- variables ---- */
static void r_variable_create(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_variable_create(F.a, "x", true, NULL), CT_ERR_NULL);
  BADO(ct_variable_create(NULL, "x", true, &o), CT_ERR_NULL);
  BADO(ct_variable_create(F.dead, "x", true, &o), CT_ERR_RELEASED);
  BADO(ct_variable_create(F.orphan, "x", true, &o), CT_ERR_RELEASED);
}
static void r_variable_scalar(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_variable_scalar(F.ctx, 1, "x", true, NULL), CT_ERR_NULL);
  BADO(ct_variable_scalar(NULL, 1, "x", true, &o), CT_ERR_NULL);
}
static void r_tensor_is_variable(const row *r) {
  (void)r;
  SENT(ct_tensor_is_variable(NULL), false);
  SENT(ct_tensor_is_variable(F.dead), false);
}
static void r_variable_name(const row *r) {
  (void)r;
  SENT(ct_variable_name(NULL), (const char *)NULL);
  SENT(ct_variable_name(F.a), (const char *)NULL);
  SENT(ct_variable_name(F.dead), (const char *)NULL);
}
static void r_variable_trainable(const row *r) {
  (void)r;
  SENT(ct_variable_trainable(NULL), false);
  SENT(ct_variable_trainable(F.a), false);
  SENT(ct_variable_trainable(F.dead), false);
}
static void r_variable_set_trainable(const row *r) {
  (void)r;
  BAD(ct_variable_set_trainable(NULL, true), CT_ERR_NULL);
  BAD(ct_variable_set_trainable(F.a, true), CT_ERR_INVALID);
  BAD(ct_variable_set_trainable(F.dead, true), CT_ERR_RELEASED);
  SENT(ct_variable_trainable(F.var), true);
}
static void assign_row(ct_status (*fn)(ct_tensor *, const ct_tensor *)) {
  BAD(fn(NULL, F.a), CT_ERR_NULL);
  BAD(fn(F.var, NULL), CT_ERR_NULL);
  BAD(fn(F.a, F.a), CT_ERR_INVALID); /* not a variable */
  BAD(fn(F.dead, F.a), CT_ERR_RELEASED);
  BAD(fn(F.var, F.dead), CT_ERR_RELEASED);
  BAD(fn(F.var, F.orphan), CT_ERR_RELEASED);
  BAD(fn(F.var, F.d), CT_ERR_DTYPE);
  BAD(fn(F.var, F.i), CT_ERR_DTYPE);
  BAD(fn(F.var, F.b), CT_ERR_SHAPE);
  BAD(fn(F.var, F.r8), CT_ERR_SHAPE); /* broadcasts, but to a larger rank */
  BAD(fn(F.var, F.foreign), CT_ERR_CONTEXT);
  /* assert_alive checks that the variable still holds 1..6 */
}
static void r_variable_assign(const row *r) {
  (void)r;
  assign_row(ct_variable_assign);
}
static void r_variable_assign_add(const row *r) {
  (void)r;
  assign_row(ct_variable_assign_add);
}
static void r_variable_assign_sub(const row *r) {
  (void)r;
  assign_row(ct_variable_assign_sub);
}
static void r_variable_value(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_variable_value(F.var, NULL), CT_ERR_NULL);
  BADO(ct_variable_value(NULL, &o), CT_ERR_NULL);
  BADO(ct_variable_value(F.dead, &o), CT_ERR_RELEASED);
}

/* ---- elementwise ops (one row per op, generated from the header's op lists) ---- */
static bool int_unary(const char *name) {
  return !strcmp(name, "ct_neg") || !strcmp(name, "ct_abs") || !strcmp(name, "ct_sign") || !strcmp(name, "ct_square");
}
static void r_unary(const row *r) {
  ct_tensor *o;
  BAD(r->un(F.a, NULL), CT_ERR_NULL);
  BADO(r->un(NULL, &o), CT_ERR_NULL);
  BADO(r->un(F.dead, &o), CT_ERR_RELEASED);
  BADO(r->un(F.orphan, &o), CT_ERR_RELEASED);
  if (!int_unary(r->name)) BADO(r->un(F.i, &o), CT_ERR_DTYPE);
}
static void r_binary(const row *r) {
  ct_tensor *o;
  BAD(r->bin(F.a, F.a, NULL), CT_ERR_NULL);
  BADO(r->bin(NULL, F.a, &o), CT_ERR_NULL);
  BADO(r->bin(F.a, NULL, &o), CT_ERR_NULL);
  BADO(r->bin(F.dead, F.a, &o), CT_ERR_RELEASED);
  BADO(r->bin(F.a, F.dead, &o), CT_ERR_RELEASED);
  BADO(r->bin(F.orphan, F.orphan, &o), CT_ERR_RELEASED);
  BADO(r->bin(F.a, F.d, &o), CT_ERR_DTYPE);
  BADO(r->bin(F.i, F.a, &o), CT_ERR_DTYPE);
  BADO(r->bin(F.a, F.b, &o), CT_ERR_SHAPE);
  BADO(r->bin(F.v, F.b, &o), CT_ERR_SHAPE);
  BADO(r->bin(F.a, F.foreign, &o), CT_ERR_CONTEXT);
  BADO(r->bin(F.foreign, F.a, &o), CT_ERR_CONTEXT);
  BADO(r->bin(F.col, F.row, &o), CT_ERR_OUT_OF_MEMORY); /* (side, side): past the device's limit */
  if (!strcmp(r->name, "ct_pow")) BADO(r->bin(F.i, F.i, &o), CT_ERR_DTYPE);
}
static void r_binary_scalar(const row *r) {
  ct_tensor *o;
  BAD(r->sc(F.a, 2, NULL), CT_ERR_NULL);
  BADO(r->sc(NULL, 2, &o), CT_ERR_NULL);
  BADO(r->sc(F.dead, 2, &o), CT_ERR_RELEASED);
  BADO(r->sc(F.orphan, 2, &o), CT_ERR_RELEASED);
  BADO(r->sc(F.i, NAN, &o), CT_ERR_INVALID);   /* not an int32 value */
  BADO(r->sc(F.i, 1e12, &o), CT_ERR_INVALID);
  if (!strcmp(r->name, "ct_pow_scalar")) BADO(r->sc(F.i, 2, &o), CT_ERR_DTYPE);
}
static void rscalar_row(ct_status (*fn)(double, const ct_tensor *, ct_tensor **)) {
  ct_tensor *o;
  BAD(fn(1, F.a, NULL), CT_ERR_NULL);
  BADO(fn(1, NULL, &o), CT_ERR_NULL);
  BADO(fn(1, F.dead, &o), CT_ERR_RELEASED);
  BADO(fn(1, F.orphan, &o), CT_ERR_RELEASED);
  BADO(fn(NAN, F.i, &o), CT_ERR_INVALID);
}
static void r_rsub_scalar(const row *r) {
  (void)r;
  rscalar_row(ct_rsub_scalar);
}
static void r_rdiv_scalar(const row *r) {
  (void)r;
  rscalar_row(ct_rdiv_scalar);
}
static void r_where(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_where(F.i, F.a, F.a, NULL), CT_ERR_NULL);
  BADO(ct_where(NULL, F.a, F.a, &o), CT_ERR_NULL);
  BADO(ct_where(F.i, NULL, F.a, &o), CT_ERR_NULL);
  BADO(ct_where(F.i, F.a, NULL, &o), CT_ERR_NULL);
  BADO(ct_where(F.dead, F.a, F.a, &o), CT_ERR_RELEASED);
  BADO(ct_where(F.i, F.a, F.orphan, &o), CT_ERR_RELEASED);
  BADO(ct_where(F.i, F.a, F.d, &o), CT_ERR_DTYPE);
  BADO(ct_where(F.i, F.a, F.b, &o), CT_ERR_SHAPE);
  BADO(ct_where(F.b, F.a, F.a, &o), CT_ERR_SHAPE);
  BADO(ct_where(F.i, F.a, F.foreign, &o), CT_ERR_CONTEXT);
  BADO(ct_where(F.col, F.row, F.row, &o), CT_ERR_OUT_OF_MEMORY);
}
static void r_cast(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_cast(F.a, CT_INT32, NULL), CT_ERR_NULL);
  BADO(ct_cast(NULL, CT_INT32, &o), CT_ERR_NULL);
  BADO(ct_cast(F.dead, CT_INT32, &o), CT_ERR_RELEASED);
  BADO(ct_cast(F.a, (ct_dtype)13, &o), CT_ERR_DTYPE);
  BADO(ct_cast(F.a, (ct_dtype)-2, &o), CT_ERR_DTYPE);
}
static void same_row(ct_status (*fn)(const ct_tensor *, ct_tensor **)) {
  ct_tensor *o;
  BAD(fn(F.a, NULL), CT_ERR_NULL);
  BADO(fn(NULL, &o), CT_ERR_NULL);
  BADO(fn(F.dead, &o), CT_ERR_RELEASED);
  BADO(fn(F.orphan, &o), CT_ERR_RELEASED);
}
static void r_stop_gradient(const row *r) {
  (void)r;
  same_row(ct_stop_gradient);
}
static void r_identity(const row *r) {
  (void)r;
  same_row(ct_identity);
}

/* ---- reductions ---- */
typedef ct_status (*reduce_fn)(const ct_tensor *, const int *, int, bool, ct_tensor **);
static void reduce_row(reduce_fn fn, bool float_only, bool needs_identity) {
  ct_tensor *o;
  int ax1[1] = {1}, out_of_range[1] = {2}, neg_out[1] = {-3}, rep[2] = {1, -1}, many[9] = {0};
  BAD(fn(F.a, ax1, 1, false, NULL), CT_ERR_NULL);
  BADO(fn(NULL, ax1, 1, false, &o), CT_ERR_NULL);
  BADO(fn(F.dead, ax1, 1, false, &o), CT_ERR_RELEASED);
  BADO(fn(F.orphan, NULL, 0, false, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, out_of_range, 1, false, &o), CT_ERR_AXIS);
  BADO(fn(F.a, neg_out, 1, true, &o), CT_ERR_AXIS);
  BADO(fn(F.a, rep, 2, false, &o), CT_ERR_AXIS);
  BADO(fn(F.a, many, 9, false, &o), CT_ERR_AXIS);
  BADO(fn(F.a, ax1, -1, false, &o), CT_ERR_AXIS);
  BADO(fn(F.s, ax1, 1, false, &o), CT_ERR_AXIS); /* a scalar has no axis 1 */
  if (float_only) BADO(fn(F.i, NULL, 0, false, &o), CT_ERR_DTYPE);
  if (needs_identity) {
    ct_tensor *empty;
    OK(ct_zeros(F.ctx, CT_FLOAT32, 2, (int64_t[]){0, 3}, &empty));
    int ax0[1] = {0};
    BADO(fn(empty, ax0, 1, false, &o), CT_ERR_SHAPE); /* max / min over an empty axis */
    ct_tensor_free(empty);
  }
}
static void r_sum(const row *r) {
  (void)r;
  reduce_row(ct_sum, false, false);
}
static void r_mean(const row *r) {
  (void)r;
  reduce_row(ct_mean, false, false);
}
static void r_max(const row *r) {
  (void)r;
  reduce_row(ct_max, false, true);
}
static void r_min(const row *r) {
  (void)r;
  reduce_row(ct_min, false, true);
}
static void r_prod(const row *r) {
  (void)r;
  reduce_row(ct_prod, false, false);
}
static void r_logsumexp(const row *r) {
  (void)r;
  reduce_row(ct_logsumexp, true, false);
}
static void arg_row(ct_status (*fn)(const ct_tensor *, int, ct_tensor **)) {
  ct_tensor *o, *empty;
  BAD(fn(F.a, 0, NULL), CT_ERR_NULL);
  BADO(fn(NULL, 0, &o), CT_ERR_NULL);
  BADO(fn(F.dead, 0, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, 2, &o), CT_ERR_AXIS);
  BADO(fn(F.a, -3, &o), CT_ERR_AXIS);
  BADO(fn(F.a, INT32_MIN, &o), CT_ERR_AXIS);
  BADO(fn(F.s, 0, &o), CT_ERR_AXIS);
  OK(ct_zeros(F.ctx, CT_FLOAT32, 2, (int64_t[]){0, 3}, &empty));
  BADO(fn(empty, 0, &o), CT_ERR_SHAPE);
  ct_tensor_free(empty);
}
static void r_argmax(const row *r) {
  (void)r;
  arg_row(ct_argmax);
}
static void r_argmin(const row *r) {
  (void)r;
  arg_row(ct_argmin);
}

/* ---- shape and data movement ---- */
static void r_reshape(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_reshape(F.a, 1, (int64_t[]){6}, NULL), CT_ERR_NULL);
  BADO(ct_reshape(NULL, 1, (int64_t[]){6}, &o), CT_ERR_NULL);
  BADO(ct_reshape(F.dead, 1, (int64_t[]){6}, &o), CT_ERR_RELEASED);
  BADO(ct_reshape(F.a, -1, (int64_t[]){6}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 9, (int64_t[]){6, 1, 1, 1, 1, 1, 1, 1, 1}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 1, NULL, &o), CT_ERR_NULL);
  BADO(ct_reshape(F.a, 2, (int64_t[]){-1, -1}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 2, (int64_t[]){-2, -3}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 2, (int64_t[]){4, -1}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 2, (int64_t[]){0, -1}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 1, (int64_t[]){7}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 3, (int64_t[]){INT64_MAX, 2, 3}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 3, (int64_t[]){INT64_MAX, -1, 3}, &o), CT_ERR_SHAPE);
  BADO(ct_reshape(F.a, 1, (int64_t[]){INT64_MIN}, &o), CT_ERR_SHAPE);
}
static void r_transpose(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_transpose(F.a, NULL, NULL), CT_ERR_NULL);
  BADO(ct_transpose(NULL, NULL, &o), CT_ERR_NULL);
  BADO(ct_transpose(F.dead, NULL, &o), CT_ERR_RELEASED);
  BADO(ct_transpose(F.a, (int[]){0, 0}, &o), CT_ERR_AXIS);
  BADO(ct_transpose(F.a, (int[]){0, 2}, &o), CT_ERR_AXIS);
  BADO(ct_transpose(F.a, (int[]){-3, 1}, &o), CT_ERR_AXIS);
  BADO(ct_transpose(F.a, (int[]){INT32_MIN, 0}, &o), CT_ERR_AXIS);
}
static void r_slice(const row *r) {
  (void)r;
  ct_tensor *o;
  int64_t b[2] = {0, 0}, e[2] = {2, 3}, st0[2] = {1, 0};
  BAD(ct_slice(F.a, b, e, NULL, NULL), CT_ERR_NULL);
  BADO(ct_slice(NULL, b, e, NULL, &o), CT_ERR_NULL);
  BADO(ct_slice(F.dead, b, e, NULL, &o), CT_ERR_RELEASED);
  BADO(ct_slice(F.a, b, e, st0, &o), CT_ERR_INVALID);
  /* extreme indices and steps are clamped, never an overflow: these are valid slices */
  int64_t xb[2] = {INT64_MIN, INT64_MAX}, xe[2] = {INT64_MAX, INT64_MIN}, xs[2] = {INT64_MAX, INT64_MIN};
  OK(ct_slice(F.a, xb, xe, xs, &o));
  ts_assert_shape(o, 2, (int64_t[]){1, 1}, "extreme slice");
  double want[1] = {3};
  ts_assert_close(o, want, 1, 0, 0, "extreme slice");
  ct_tensor_free(o);
  F.tried++;
}
static void r_concat(const row *r) {
  (void)r;
  ct_tensor *o;
  ct_tensor *ok2[2] = {F.a, F.a}, *with_null[2] = {F.a, NULL}, *with_dead[2] = {F.a, F.dead};
  ct_tensor *dt[2] = {F.a, F.d}, *rk[2] = {F.a, F.v}, *sh[2] = {F.a, F.b}, *sc[2] = {F.s, F.s};
  ct_tensor *fo[2] = {F.a, F.foreign}, *orph[2] = {F.orphan, F.a};
  BAD(ct_concat(ok2, 2, 0, NULL), CT_ERR_NULL);
  BADO(ct_concat(NULL, 2, 0, &o), CT_ERR_NULL);
  BADO(ct_concat(ok2, 0, 0, &o), CT_ERR_INVALID);
  BADO(ct_concat(ok2, -1, 0, &o), CT_ERR_INVALID);
  BADO(ct_concat(with_null, 2, 0, &o), CT_ERR_NULL);
  BADO(ct_concat(with_dead, 2, 0, &o), CT_ERR_RELEASED);
  BADO(ct_concat(orph, 2, 0, &o), CT_ERR_RELEASED);
  BADO(ct_concat(dt, 2, 0, &o), CT_ERR_DTYPE);
  BADO(ct_concat(rk, 2, 0, &o), CT_ERR_SHAPE);
  BADO(ct_concat(sh, 2, 0, &o), CT_ERR_SHAPE);
  BADO(ct_concat(sc, 2, 0, &o), CT_ERR_SHAPE);
  BADO(ct_concat(ok2, 2, 2, &o), CT_ERR_AXIS);
  BADO(ct_concat(ok2, 2, -3, &o), CT_ERR_AXIS);
  BADO(ct_concat(fo, 2, 0, &o), CT_ERR_CONTEXT);
}
static void r_stack(const row *r) {
  (void)r;
  ct_tensor *o;
  ct_tensor *ok2[2] = {F.a, F.a}, *with_null[2] = {F.a, NULL}, *dt[2] = {F.a, F.d}, *sh[2] = {F.a, F.b};
  ct_tensor *r8[2] = {F.r8, F.r8}, *fo[2] = {F.a, F.foreign}, *dead[2] = {F.dead, F.a};
  BAD(ct_stack(ok2, 2, 0, NULL), CT_ERR_NULL);
  BADO(ct_stack(NULL, 2, 0, &o), CT_ERR_NULL);
  BADO(ct_stack(ok2, 0, 0, &o), CT_ERR_INVALID);
  BADO(ct_stack(with_null, 2, 0, &o), CT_ERR_NULL);
  BADO(ct_stack(dead, 2, 0, &o), CT_ERR_RELEASED);
  BADO(ct_stack(dt, 2, 0, &o), CT_ERR_DTYPE);
  BADO(ct_stack(sh, 2, 0, &o), CT_ERR_SHAPE);
  BADO(ct_stack(r8, 2, 0, &o), CT_ERR_SHAPE);
  BADO(ct_stack(ok2, 2, 3, &o), CT_ERR_AXIS);
  BADO(ct_stack(ok2, 2, -4, &o), CT_ERR_AXIS);
  BADO(ct_stack(fo, 2, 0, &o), CT_ERR_CONTEXT);
}
static void r_squeeze(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_squeeze(F.r8, NULL, 0, NULL), CT_ERR_NULL);
  BADO(ct_squeeze(NULL, NULL, 0, &o), CT_ERR_NULL);
  BADO(ct_squeeze(F.dead, NULL, 0, &o), CT_ERR_RELEASED);
  BADO(ct_squeeze(F.orphan, NULL, 0, &o), CT_ERR_RELEASED);
  BADO(ct_squeeze(F.r8, NULL, 2, &o), CT_ERR_NULL);
  BADO(ct_squeeze(F.a, (int[]){0}, 1, &o), CT_ERR_SHAPE); /* extent 2 */
  BADO(ct_squeeze(F.r8, (int[]){8}, 1, &o), CT_ERR_AXIS);
  BADO(ct_squeeze(F.r8, (int[]){-9}, 1, &o), CT_ERR_AXIS);
  BADO(ct_squeeze(F.r8, (int[]){1, -7}, 2, &o), CT_ERR_AXIS); /* repeated */
  BADO(ct_squeeze(F.r8, (int[]){0}, -1, &o), CT_ERR_AXIS);
}
static void r_expand_dims(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_expand_dims(F.a, 0, NULL), CT_ERR_NULL);
  BADO(ct_expand_dims(NULL, 0, &o), CT_ERR_NULL);
  BADO(ct_expand_dims(F.dead, 0, &o), CT_ERR_RELEASED);
  BADO(ct_expand_dims(F.a, 3, &o), CT_ERR_AXIS);
  BADO(ct_expand_dims(F.a, -4, &o), CT_ERR_AXIS);
  BADO(ct_expand_dims(F.a, INT32_MIN, &o), CT_ERR_AXIS);
  BADO(ct_expand_dims(F.r8, 0, &o), CT_ERR_SHAPE); /* rank 9 */
}
static void r_pad(const row *r) {
  (void)r;
  ct_tensor *o;
  int64_t ok[4] = {1, 0, 0, 2}, neg[4] = {0, 0, -1, 0}, huge[4] = {0, 0, INT64_MAX, 0};
  BAD(ct_pad(F.a, ok, 0, NULL), CT_ERR_NULL);
  BADO(ct_pad(NULL, ok, 0, &o), CT_ERR_NULL);
  BADO(ct_pad(F.a, NULL, 0, &o), CT_ERR_NULL);
  BADO(ct_pad(F.dead, ok, 0, &o), CT_ERR_RELEASED);
  BADO(ct_pad(F.orphan, ok, 0, &o), CT_ERR_RELEASED);
  BADO(ct_pad(F.a, neg, 0, &o), CT_ERR_INVALID);
  BADO(ct_pad(F.a, huge, 0, &o), CT_ERR_SHAPE);
  const int64_t side = ct_tensor_shape(F.col)[0];
  BADO(ct_pad(F.col, ((const int64_t[]){0, 0, 0, side}), 1, &o), CT_ERR_OUT_OF_MEMORY);
}
static void r_tile(const row *r) {
  (void)r;
  ct_tensor *o;
  int64_t ok[2] = {2, 1}, neg[2] = {1, -2}, huge[2] = {INT64_MAX, 1};
  BAD(ct_tile(F.a, ok, NULL), CT_ERR_NULL);
  BADO(ct_tile(NULL, ok, &o), CT_ERR_NULL);
  BADO(ct_tile(F.a, NULL, &o), CT_ERR_NULL);
  BADO(ct_tile(F.dead, ok, &o), CT_ERR_RELEASED);
  BADO(ct_tile(F.orphan, ok, &o), CT_ERR_RELEASED);
  BADO(ct_tile(F.a, neg, &o), CT_ERR_INVALID);
  BADO(ct_tile(F.a, huge, &o), CT_ERR_SHAPE);
  const int64_t side = ct_tensor_shape(F.col)[0];
  BADO(ct_tile(F.col, ((const int64_t[]){1, side}), &o), CT_ERR_OUT_OF_MEMORY);
}
static void r_split(const row *r) {
  (void)r;
  ct_tensor *parts[3];
  int64_t ok[2] = {1, 2}, sum4[2] = {2, 2}, neg[3] = {4, -1, 0}, big[2] = {INT64_MAX, INT64_MAX};
  /* every one of the n parts asked for is set to NULL */
#define BADS(call, want)                                                                              \
  do {                                                                                                \
    parts[0] = parts[1] = parts[2] = SENTINEL;                                                        \
    BAD(call, want);                                                                                  \
    for (int k_ = 0; k_ < n_parts; ++k_)                                                              \
      cr_assert_null(parts[k_], "[%s] %s: part %d was not set to NULL", F.row_name, #call, k_);       \
  } while (0)
  int n_parts = 2;
  BAD(ct_split(F.a, ok, 2, 1, NULL), CT_ERR_NULL);
  BADS(ct_split(NULL, ok, 2, 1, parts), CT_ERR_NULL);
  BADS(ct_split(F.a, NULL, 2, 1, parts), CT_ERR_NULL);
  BADS(ct_split(F.dead, ok, 2, 1, parts), CT_ERR_RELEASED);
  BADS(ct_split(F.orphan, ok, 2, 1, parts), CT_ERR_RELEASED);
  BAD(ct_split(F.a, ok, 0, 1, parts), CT_ERR_INVALID);
  BADS(ct_split(F.a, ok, 2, 2, parts), CT_ERR_AXIS);
  BADS(ct_split(F.a, ok, 2, -3, parts), CT_ERR_AXIS);
  BADS(ct_split(F.s, ok, 2, 0, parts), CT_ERR_AXIS);
  BADS(ct_split(F.a, sum4, 2, 1, parts), CT_ERR_SHAPE);
  n_parts = 1;
  BADS(ct_split(F.a, ok, 1, 1, parts), CT_ERR_SHAPE); /* 1 of 3 */
  n_parts = 3;
  BADS(ct_split(F.a, neg, 3, 1, parts), CT_ERR_SHAPE);
  n_parts = 2;
  BADS(ct_split(F.a, big, 2, 1, parts), CT_ERR_SHAPE);
#undef BADS
}
/* sorting, the cumulative product and einsum (lib/ops_sort.c, lib/einsum.c) */
static void r_cumprod(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_cumprod(F.a, 0, NULL), CT_ERR_NULL);
  BADO(ct_cumprod(NULL, 0, &o), CT_ERR_NULL);
  BADO(ct_cumprod(F.dead, 0, &o), CT_ERR_RELEASED);
  BADO(ct_cumprod(F.orphan, 0, &o), CT_ERR_RELEASED);
  BADO(ct_cumprod(F.s, 0, &o), CT_ERR_AXIS);
  BADO(ct_cumprod(F.a, 2, &o), CT_ERR_AXIS);
  BADO(ct_cumprod(F.a, -3, &o), CT_ERR_AXIS);
  BADO(ct_cumprod(F.a, INT32_MIN, &o), CT_ERR_AXIS);
}
/* argsort and sort take the same arguments */
static void sort_like(ct_status (*fn)(const ct_tensor *, int, bool, ct_tensor **)) {
  ct_tensor *o;
  BAD(fn(F.a, 0, false, NULL), CT_ERR_NULL);
  BADO(fn(NULL, 0, false, &o), CT_ERR_NULL);
  BADO(fn(F.dead, 0, true, &o), CT_ERR_RELEASED);
  BADO(fn(F.orphan, 0, false, &o), CT_ERR_RELEASED);
  BADO(fn(F.s, 0, false, &o), CT_ERR_AXIS);
  BADO(fn(F.a, 2, false, &o), CT_ERR_AXIS);
  BADO(fn(F.a, -3, true, &o), CT_ERR_AXIS);
  BADO(fn(F.a, INT32_MIN, false, &o), CT_ERR_AXIS);
}
static void r_argsort(const row *r) {
  (void)r;
  sort_like(ct_argsort);
}
static void r_sort(const row *r) {
  (void)r;
  sort_like(ct_sort);
}
static void r_top_k(const row *r) {
  (void)r;
  ct_tensor *o, *i;
#define BADK(call, want)                                                                       \
  do {                                                                                         \
    i = SENTINEL;                                                                              \
    BADO(call, want);                                                                          \
    cr_assert_null(i, "[%s] %s: the indices were not set to NULL", F.row_name, #call);         \
  } while (0)
  BAD(ct_top_k(F.a, 1, 1, NULL, NULL), CT_ERR_NULL);
  BADK(ct_top_k(NULL, 1, 1, &o, &i), CT_ERR_NULL);
  BADK(ct_top_k(F.dead, 1, 1, &o, &i), CT_ERR_RELEASED);
  BADK(ct_top_k(F.orphan, 1, 1, &o, &i), CT_ERR_RELEASED);
  BADK(ct_top_k(F.s, 1, 0, &o, &i), CT_ERR_AXIS);
  BADK(ct_top_k(F.a, 1, 2, &o, &i), CT_ERR_AXIS);
  BADK(ct_top_k(F.a, 1, -3, &o, &i), CT_ERR_AXIS);
  BADK(ct_top_k(F.a, 4, 1, &o, &i), CT_ERR_INVALID); /* k > n */
  BADK(ct_top_k(F.a, -1, 1, &o, &i), CT_ERR_INVALID);
  BADK(ct_top_k(F.a, INT64_MAX, -1, &o, &i), CT_ERR_INVALID);
  BADO(ct_top_k(F.a, 4, 1, &o, NULL), CT_ERR_INVALID);
#undef BADK
}
static void r_einsum(const row *r) {
  (void)r;
  ct_tensor *o;
  ct_tensor *ab[2] = {F.a, F.b}, *nul[2] = {F.a, NULL}, *dead[2] = {F.a, F.dead}, *orphan[1] = {F.orphan};
  ct_tensor *mixed[2] = {F.a, F.foreign}, *dts[2] = {F.a, F.d}, *ints[2] = {F.i, F.i};
  BAD(ct_einsum("ij,jk->ik", ab, 2, NULL), CT_ERR_NULL);
  BADO(ct_einsum(NULL, ab, 2, &o), CT_ERR_NULL);
  BADO(ct_einsum("ij,jk->ik", NULL, 2, &o), CT_ERR_NULL);
  BADO(ct_einsum("ij,jk->ik", nul, 2, &o), CT_ERR_NULL);
  BADO(ct_einsum("ij,jk->ik", dead, 2, &o), CT_ERR_RELEASED);
  BADO(ct_einsum("ij->ji", orphan, 1, &o), CT_ERR_RELEASED);
  BADO(ct_einsum("ij,jk->ik", mixed, 2, &o), CT_ERR_CONTEXT);
  BADO(ct_einsum("ij,jk->ik", ab, 0, &o), CT_ERR_INVALID);
  BADO(ct_einsum("ij,jk->ik", ab, -1, &o), CT_ERR_INVALID);
  BADO(ct_einsum("ij,jk->ik", ab, 1, &o), CT_ERR_INVALID);   /* more operands named than given */
  BADO(ct_einsum("ij->ji", ab, 2, &o), CT_ERR_INVALID);      /* fewer */
  BADO(ct_einsum("ij,jk->iz", ab, 2, &o), CT_ERR_INVALID);   /* a result letter in no operand */
  BADO(ct_einsum("ij,jk->ikk", ab, 2, &o), CT_ERR_INVALID);  /* repeated in the result */
  BADO(ct_einsum("i#,jk->ik", ab, 2, &o), CT_ERR_INVALID);   /* not a letter */
  BADO(ct_einsum("ij,jk->i->k", ab, 2, &o), CT_ERR_INVALID); /* two arrows */
  BADO(ct_einsum("ii,jk->ik", ab, 2, &o), CT_ERR_UNSUPPORTED); /* a diagonal */
  BADO(ct_einsum("...j,jk->k", ab, 2, &o), CT_ERR_UNSUPPORTED);
  BADO(ct_einsum("ijk,jk->ik", ab, 2, &o), CT_ERR_SHAPE);    /* rank */
  BADO(ct_einsum("ij,ik->jk", ab, 2, &o), CT_ERR_SHAPE);     /* i: 2 and 3 */
  BADO(ct_einsum("ij,kj->ik", dts, 2, &o), CT_ERR_DTYPE);
  BADO(ct_einsum("ij,kj->ik", ints, 2, &o), CT_ERR_DTYPE);   /* products are float only */
}
static void r_cumsum(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_cumsum(F.a, 0, NULL), CT_ERR_NULL);
  BADO(ct_cumsum(NULL, 0, &o), CT_ERR_NULL);
  BADO(ct_cumsum(F.dead, 0, &o), CT_ERR_RELEASED);
  BADO(ct_cumsum(F.orphan, 0, &o), CT_ERR_RELEASED);
  BADO(ct_cumsum(F.s, 0, &o), CT_ERR_AXIS);
  BADO(ct_cumsum(F.a, 2, &o), CT_ERR_AXIS);
  BADO(ct_cumsum(F.a, -3, &o), CT_ERR_AXIS);
  BADO(ct_cumsum(F.a, INT32_MIN, &o), CT_ERR_AXIS);
}
static void r_clip_by_value(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_clip_by_value(F.a, 0, 1, NULL), CT_ERR_NULL);
  BADO(ct_clip_by_value(NULL, 0, 1, &o), CT_ERR_NULL);
  BADO(ct_clip_by_value(F.dead, 0, 1, &o), CT_ERR_RELEASED);
  BADO(ct_clip_by_value(F.orphan, 0, 1, &o), CT_ERR_RELEASED);
  BADO(ct_clip_by_value(F.a, 1, 0, &o), CT_ERR_INVALID);
  BADO(ct_clip_by_value(F.a, NAN, 0, &o), CT_ERR_INVALID);
  BADO(ct_clip_by_value(F.a, 0, NAN, &o), CT_ERR_INVALID);
}
static void r_broadcast_to(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_broadcast_to(F.v, 2, S23, NULL), CT_ERR_NULL);
  BADO(ct_broadcast_to(NULL, 2, S23, &o), CT_ERR_NULL);
  BADO(ct_broadcast_to(F.dead, 2, S23, &o), CT_ERR_RELEASED);
  BADO(ct_broadcast_to(F.v, 2, S32, &o), CT_ERR_SHAPE);
  BADO(ct_broadcast_to(F.a, 1, S3, &o), CT_ERR_SHAPE);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(ct_broadcast_to(F.s, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, &o), BAD_SHAPES[k].want);
  const int64_t side = ct_tensor_shape(F.col)[0];
  BADO(ct_broadcast_to(F.col, 2, ((const int64_t[]){side, side}), &o), CT_ERR_OUT_OF_MEMORY);
}
static void r_gather(const row *r) {
  (void)r;
  ct_tensor *o, *idx = t_of(F.ctx, CT_INT32, 1, (int64_t[]){2}, 0), *idx8;
  int64_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  idx8 = t_of(F.ctx, CT_INT32, 8, ones, 0);
  BAD(ct_gather(F.a, idx, 0, NULL), CT_ERR_NULL);
  BADO(ct_gather(NULL, idx, 0, &o), CT_ERR_NULL);
  BADO(ct_gather(F.a, NULL, 0, &o), CT_ERR_NULL);
  BADO(ct_gather(F.dead, idx, 0, &o), CT_ERR_RELEASED);
  BADO(ct_gather(F.a, F.dead, 0, &o), CT_ERR_RELEASED);
  BADO(ct_gather(F.a, F.v, 0, &o), CT_ERR_DTYPE); /* float indices */
  BADO(ct_gather(F.s, idx, 0, &o), CT_ERR_AXIS);
  BADO(ct_gather(F.a, idx, 2, &o), CT_ERR_AXIS);
  BADO(ct_gather(F.a, idx, -3, &o), CT_ERR_AXIS);
  BADO(ct_gather(F.r8, idx8, 0, &o), CT_ERR_SHAPE); /* rank 15 */
  ct_tensor *fidx = t_of(F.other, CT_INT32, 1, (int64_t[]){2}, 0);
  BADO(ct_gather(F.a, fidx, 0, &o), CT_ERR_CONTEXT);
  ct_tensor_free(fidx);
  ct_tensor_free(idx8);
  ct_tensor_free(idx);
}
/* gather_nd, scatter, scatter_add, boolean_mask (lib/ops_index.c) */
static void r_gather_nd(const row *r) {
  (void)r;
  ct_tensor *o, *idx = t_of(F.ctx, CT_INT32, 2, (int64_t[]){2, 2}, 0), *far = t_of(F.ctx, CT_INT32, 2, (int64_t[]){1, 2}, 2);
  ct_tensor *fidx = t_of(F.other, CT_INT32, 2, (int64_t[]){2, 2}, 0), *deep = t_of(F.ctx, CT_INT32, 2, (int64_t[]){1, 3}, 0);
  ct_tensor *sc = t_of(F.ctx, CT_INT32, 0, NULL, 0), *r8 = NULL, *wide = NULL;
  OK(ct_zeros(F.ctx, CT_INT32, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 0}, &r8));
  const int64_t side = ct_tensor_shape(F.col)[0];
  OK(ct_zeros(F.ctx, CT_INT32, 2, ((const int64_t[]){side, 0}), &wide));
  BAD(ct_gather_nd(F.a, idx, NULL), CT_ERR_NULL);
  BADO(ct_gather_nd(NULL, idx, &o), CT_ERR_NULL);
  BADO(ct_gather_nd(F.a, NULL, &o), CT_ERR_NULL);
  BADO(ct_gather_nd(F.dead, idx, &o), CT_ERR_RELEASED);
  BADO(ct_gather_nd(F.a, F.dead, &o), CT_ERR_RELEASED);
  BADO(ct_gather_nd(F.orphan, idx, &o), CT_ERR_RELEASED);
  BADO(ct_gather_nd(F.a, F.a, &o), CT_ERR_DTYPE);  /* float indices */
  BADO(ct_gather_nd(F.a, sc, &o), CT_ERR_SHAPE);   /* no index axis */
  BADO(ct_gather_nd(F.a, deep, &o), CT_ERR_SHAPE); /* depth 3 into rank 2 */
  BADO(ct_gather_nd(F.r8, r8, &o), CT_ERR_SHAPE);  /* result rank 15 */
  BADO(ct_gather_nd(F.a, far, &o), CT_ERR_INVALID); /* (2, 3): row 2 of 2 */
  BADO(ct_gather_nd(F.a, fidx, &o), CT_ERR_CONTEXT);
  BADO(ct_gather_nd(F.col, wide, &o), CT_ERR_OUT_OF_MEMORY); /* side copies of col */
  ct_tensor *all[] = {idx, far, fidx, deep, sc, r8, wide};
  ct_tensor_free_n(all, 7);
}
static void scatter_row(ct_status (*fn)(const ct_tensor *, const ct_tensor *, const ct_tensor *, ct_tensor **)) {
  ct_tensor *o, *idx = t_of(F.ctx, CT_INT32, 2, (int64_t[]){2, 1}, 0), *far = t_of(F.ctx, CT_INT32, 2, (int64_t[]){2, 1}, 1);
  ct_tensor *fidx = t_of(F.other, CT_INT32, 2, (int64_t[]){2, 1}, 0), *sc = t_of(F.ctx, CT_INT32, 0, NULL, 0);
  BAD(fn(F.a, idx, F.a, NULL), CT_ERR_NULL);
  BADO(fn(NULL, idx, F.a, &o), CT_ERR_NULL);
  BADO(fn(F.a, NULL, F.a, &o), CT_ERR_NULL);
  BADO(fn(F.a, idx, NULL, &o), CT_ERR_NULL);
  BADO(fn(F.dead, idx, F.a, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, F.dead, F.a, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, idx, F.dead, &o), CT_ERR_RELEASED);
  BADO(fn(F.orphan, idx, F.orphan, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, idx, F.d, &o), CT_ERR_DTYPE);   /* updates of another dtype */
  BADO(fn(F.a, F.a, F.a, &o), CT_ERR_DTYPE);   /* float indices */
  BADO(fn(F.a, idx, F.b, &o), CT_ERR_SHAPE);   /* updates (3, 2), not (2, 3) */
  BADO(fn(F.a, idx, F.v, &o), CT_ERR_SHAPE);   /* no broadcasting */
  BADO(fn(F.a, sc, F.a, &o), CT_ERR_SHAPE);    /* no index axis */
  BADO(fn(F.a, far, F.a, &o), CT_ERR_INVALID); /* row 2 of 2 */
  BADO(fn(F.a, fidx, F.a, &o), CT_ERR_CONTEXT);
  BADO(fn(F.a, idx, F.foreign, &o), CT_ERR_CONTEXT);
  ct_tensor *all[] = {idx, far, fidx, sc};
  ct_tensor_free_n(all, 4);
}
static void r_scatter(const row *r) {
  (void)r;
  scatter_row(ct_scatter);
}
static void r_scatter_add(const row *r) {
  (void)r;
  scatter_row(ct_scatter_add);
}
static void r_boolean_mask(const row *r) {
  (void)r;
  ct_tensor *o, *m = t_of(F.ctx, CT_INT32, 1, (int64_t[]){2}, 0), *fm = t_of(F.other, CT_INT32, 1, (int64_t[]){2}, 0);
  BAD(ct_boolean_mask(F.a, m, NULL), CT_ERR_NULL);
  BADO(ct_boolean_mask(NULL, m, &o), CT_ERR_NULL);
  BADO(ct_boolean_mask(F.a, NULL, &o), CT_ERR_NULL);
  BADO(ct_boolean_mask(F.dead, m, &o), CT_ERR_RELEASED);
  BADO(ct_boolean_mask(F.a, F.dead, &o), CT_ERR_RELEASED);
  BADO(ct_boolean_mask(F.orphan, m, &o), CT_ERR_RELEASED);
  BADO(ct_boolean_mask(F.a, F.v, &o), CT_ERR_SHAPE); /* (3,) against the leading (2,) */
  BADO(ct_boolean_mask(F.a, F.b, &o), CT_ERR_SHAPE);
  BADO(ct_boolean_mask(F.a, F.s, &o), CT_ERR_SHAPE); /* a scalar mask */
  BADO(ct_boolean_mask(F.v, F.a, &o), CT_ERR_SHAPE); /* mask of higher rank */
  BADO(ct_boolean_mask(F.a, fm, &o), CT_ERR_CONTEXT);
  ct_tensor_free(m);
  ct_tensor_free(fm);
}
static void r_one_hot(const row *r) {
  (void)r;
  ct_tensor *o, *idx = t_of(F.ctx, CT_INT32, 1, (int64_t[]){2}, 0), *idx8;
  int64_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  idx8 = t_of(F.ctx, CT_INT32, 8, ones, 0);
  BAD(ct_one_hot(idx, 3, CT_FLOAT32, NULL), CT_ERR_NULL);
  BADO(ct_one_hot(NULL, 3, CT_FLOAT32, &o), CT_ERR_NULL);
  BADO(ct_one_hot(F.dead, 3, CT_FLOAT32, &o), CT_ERR_RELEASED);
  BADO(ct_one_hot(F.a, 3, CT_FLOAT32, &o), CT_ERR_DTYPE);
  BADO(ct_one_hot(idx, -1, CT_FLOAT32, &o), CT_ERR_INVALID);
  BADO(ct_one_hot(idx, 3, (ct_dtype)14, &o), CT_ERR_DTYPE);
  BADO(ct_one_hot(idx8, 3, CT_FLOAT32, &o), CT_ERR_SHAPE);
  /* HOT_ROWS rows of HOT_DEPTH float32 or float64 each: past the device's limit */
  ct_tensor *rows = t_of(F.ctx, CT_INT32, 1, &HOT_ROWS, 0);
  BADO(ct_one_hot(rows, HOT_DEPTH, CT_FLOAT32, &o), CT_ERR_OUT_OF_MEMORY);
  BADO(ct_one_hot(rows, HOT_DEPTH, CT_FLOAT64, &o), W64(CT_ERR_OUT_OF_MEMORY));
  ct_tensor_free(rows);
  ct_tensor_free(idx8);
  ct_tensor_free(idx);
}
static void r_matmul(const row *r) {
  (void)r;
  ct_tensor *o, *b3, *a4, *i2;
  b3 = t_of(F.ctx, CT_FLOAT32, 3, (int64_t[]){3, 3, 2}, 0);
  a4 = t_of(F.ctx, CT_FLOAT32, 3, (int64_t[]){2, 2, 3}, 0);
  i2 = t_of(F.ctx, CT_INT32, 2, S32, 0);
  BAD(ct_matmul(F.a, F.b, false, false, NULL), CT_ERR_NULL);
  BADO(ct_matmul(NULL, F.b, false, false, &o), CT_ERR_NULL);
  BADO(ct_matmul(F.a, NULL, false, false, &o), CT_ERR_NULL);
  BADO(ct_matmul(F.dead, F.b, false, false, &o), CT_ERR_RELEASED);
  BADO(ct_matmul(F.a, F.dead, false, false, &o), CT_ERR_RELEASED);
  BADO(ct_matmul(F.orphan, F.orphan, false, true, &o), CT_ERR_RELEASED);
  BADO(ct_matmul(F.v, F.b, false, false, &o), CT_ERR_SHAPE);
  BADO(ct_matmul(F.a, F.a, false, false, &o), CT_ERR_SHAPE);
  BADO(ct_matmul(F.a, F.b, true, false, &o), CT_ERR_SHAPE);
  BADO(ct_matmul(a4, b3, false, false, &o), CT_ERR_SHAPE); /* batch 2 vs 3 */
  BADO(ct_matmul(F.a, F.d, false, true, &o), CT_ERR_DTYPE);
  BADO(ct_matmul(F.i, i2, false, false, &o), CT_ERR_DTYPE); /* no integer GEMM */
  BADO(ct_matmul(F.a, F.foreign, false, true, &o), CT_ERR_CONTEXT);
  BADO(ct_matmul(F.col, F.row, false, false, &o), CT_ERR_OUT_OF_MEMORY);
  ct_tensor_free(i2);
  ct_tensor_free(a4);
  ct_tensor_free(b3);
}
static void softmax_row(ct_status (*fn)(const ct_tensor *, int, ct_tensor **)) {
  ct_tensor *o;
  BAD(fn(F.a, 1, NULL), CT_ERR_NULL);
  BADO(fn(NULL, 1, &o), CT_ERR_NULL);
  BADO(fn(F.dead, 1, &o), CT_ERR_RELEASED);
  BADO(fn(F.orphan, 1, &o), CT_ERR_RELEASED);
  BADO(fn(F.i, 1, &o), CT_ERR_DTYPE);
  BADO(fn(F.s, 0, &o), CT_ERR_AXIS);
  BADO(fn(F.a, 2, &o), CT_ERR_AXIS);
  BADO(fn(F.a, -3, &o), CT_ERR_AXIS);
}
static void r_softmax(const row *r) {
  (void)r;
  softmax_row(ct_softmax);
}
static void r_log_softmax(const row *r) {
  (void)r;
  softmax_row(ct_log_softmax);
}

/* ---- tapes ---- */
static void r_tape_default_options(const row *r) {
  (void)r;
  ct_tape_options o = ct_tape_default_options();
  SENT(o.persistent, false);
  SENT(o.watch_accessed_variables, true);
}
static void r_tape_begin(const row *r) {
  (void)r;
  ct_tape *t = (ct_tape *)&F;
  BAD(ct_tape_begin(F.ctx, NULL, NULL), CT_ERR_NULL);
  BAD(ct_tape_begin(NULL, NULL, &t), CT_ERR_NULL);
  cr_assert_null(t);
  t = (ct_tape *)&F;
  BAD(ct_tape_begin(F.dead_ctx, NULL, &t), CT_ERR_RELEASED);
  cr_assert_null(t);
  BAD(ct_tape_begin(F.held_ctx, NULL, &t), CT_ERR_RELEASED);
  BAD(ct_tape_begin((ct_context *)F.a, NULL, &t), CT_ERR_INVALID);
}
static void r_tape_end(const row *r) {
  (void)r;
  BAD(ct_tape_end(NULL), CT_ERR_NULL);
  BAD(ct_tape_end(F.dead_tape), CT_ERR_RELEASED);
  BAD(ct_tape_end((ct_tape *)F.a), CT_ERR_INVALID);
}
static void r_tape_stop_recording(const row *r) {
  (void)r;
  ct_tape *t;
  BAD(ct_tape_stop_recording(NULL), CT_ERR_NULL);
  BAD(ct_tape_stop_recording(F.dead_tape), CT_ERR_RELEASED);
  OK(ct_tape_begin(F.ctx, NULL, &t));
  OK(ct_tape_stop_recording(t));
  BAD(ct_tape_stop_recording(t), CT_ERR_INVALID); /* already stopped */
  OK(ct_tape_end(t));
  BAD(ct_tape_stop_recording(t), CT_ERR_INVALID); /* ended */
  ct_tape_free(t);
}
static void r_tape_resume_recording(const row *r) {
  (void)r;
  ct_tape *t;
  BAD(ct_tape_resume_recording(NULL), CT_ERR_NULL);
  BAD(ct_tape_resume_recording(F.dead_tape), CT_ERR_RELEASED);
  OK(ct_tape_begin(F.ctx, NULL, &t));
  BAD(ct_tape_resume_recording(t), CT_ERR_INVALID); /* not stopped */
  ct_tape_free(t);
}
static void r_tape_reset(const row *r) {
  (void)r;
  BAD(ct_tape_reset(NULL), CT_ERR_NULL);
  BAD(ct_tape_reset(F.dead_tape), CT_ERR_RELEASED);
}
static void r_tape_free(const row *r) {
  (void)r;
  ct_tape_free(NULL);
  ct_tape_free(F.dead_tape); /* freed already: nothing */
  ct_tape_free((ct_tape *)F.a); /* not a tape: nothing */
  F.tried += 3;
}
static void r_tape_watch(const row *r) {
  (void)r;
  ct_tape *t;
  OK(ct_tape_begin(F.ctx, NULL, &t));
  BAD(ct_tape_watch(NULL, F.a), CT_ERR_NULL);
  BAD(ct_tape_watch(F.dead_tape, F.a), CT_ERR_RELEASED);
  BAD(ct_tape_watch(t, NULL), CT_ERR_NULL);
  BAD(ct_tape_watch(t, F.dead), CT_ERR_RELEASED);
  BAD(ct_tape_watch(t, F.orphan), CT_ERR_RELEASED);
  ct_tape_free(t);
}
static void r_tape_watched_variables(const row *r) {
  (void)r;
  ct_tape *t;
  ct_tensor *out[2];
  int n;
  OK(ct_tape_begin(F.ctx, NULL, &t));
  BAD(ct_tape_watched_variables(NULL, out, 2, &n), CT_ERR_NULL);
  BAD(ct_tape_watched_variables(F.dead_tape, out, 2, &n), CT_ERR_RELEASED);
  BAD(ct_tape_watched_variables(t, out, 2, NULL), CT_ERR_NULL);
  BAD(ct_tape_watched_variables(t, NULL, 2, &n), CT_ERR_NULL);
  BAD(ct_tape_watched_variables(t, out, -1, &n), CT_ERR_INVALID);
  ct_tape_free(t);
}
static void r_tape_saved_bytes(const row *r) {
  (void)r;
  ct_tape *t;
  uint64_t b;
  OK(ct_tape_begin(F.ctx, NULL, &t));
  BAD(ct_tape_saved_bytes(NULL, &b), CT_ERR_NULL);
  BAD(ct_tape_saved_bytes(F.dead_tape, &b), CT_ERR_RELEASED);
  BAD(ct_tape_saved_bytes(t, NULL), CT_ERR_NULL);
  ct_tape_free(t);
}
static void r_tape_size(const row *r) {
  (void)r;
  SENT(ct_tape_size(NULL), -1);
  SENT(ct_tape_size(F.dead_tape), -1);
}
/* A tape that recorded y = sum(a * a) for a watched a; *y is the target. */
static ct_tape *recorded(bool persistent, ct_tensor **y) {
  ct_tape *t;
  ct_tape_options o = {persistent, true};
  ct_tensor *sq;
  OK(ct_tape_begin(F.ctx, &o, &t));
  OK(ct_tape_watch(t, F.a));
  OK(ct_mul(F.a, F.a, &sq));
  OK(ct_sum(sq, NULL, 0, false, y));
  OK(ct_tape_end(t));
  ct_tensor_free(sq);
  return t;
}
static void r_tape_gradient(const row *r) {
  (void)r;
  ct_tensor *y, *g[2] = {SENTINEL, SENTINEL};
  ct_tape *t = recorded(false, &y);
  ct_tensor *tg[1] = {y}, *src[1] = {F.a}, *nul[1] = {NULL}, *dead[1] = {F.dead}, *bad_og[1] = {F.a};
  BAD(ct_tape_gradient(NULL, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  BAD(ct_tape_gradient(F.dead_tape, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_RELEASED);
  BAD(ct_tape_gradient(t, tg, -1, src, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_INVALID);
  BAD(ct_tape_gradient(t, tg, 1, src, -1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_INVALID);
  BAD(ct_tape_gradient(t, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, NULL), CT_ERR_NULL);
  BAD(ct_tape_gradient(t, NULL, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  cr_assert_null(g[0]);
  BAD(ct_tape_gradient(t, tg, 1, NULL, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  BAD(ct_tape_gradient(t, nul, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  BAD(ct_tape_gradient(t, tg, 1, nul, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  BAD(ct_tape_gradient(t, dead, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_RELEASED);
  BAD(ct_tape_gradient(t, tg, 1, dead, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_RELEASED);
  BAD(ct_tape_gradient(t, tg, 1, src, 1, dead, CT_UNCONNECTED_NONE, g), CT_ERR_RELEASED);
  BAD(ct_tape_gradient(t, tg, 1, src, 1, NULL, (ct_unconnected)7, g), CT_ERR_INVALID);
  BAD(ct_tape_gradient(t, tg, 1, src, 1, bad_og, CT_UNCONNECTED_NONE, g), CT_ERR_SHAPE);
  cr_assert_null(g[0]);
  /* the failures left the tape usable: one gradient, then it is used up */
  OK(ct_tape_gradient(t, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g));
  double want[6] = {2, 4, 6, 8, 10, 12};
  ts_assert_close(g[0], want, 6, 1e-6, 0, "gradient after bad calls");
  ct_tensor_free(g[0]);
  BAD(ct_tape_gradient(t, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g), CT_ERR_TAPE_USED);
  ct_tape_free(t);
  ct_tensor_free(y);
}
static ct_status hook_fails(int index, const ct_tensor *grad, void *user) {
  (void)index, (void)grad;
  ++*(int *)user;
  return CT_ERR_IO;
}
static void r_tape_gradient_with_hook(const row *r) {
  (void)r;
  ct_tensor *y, *g[1] = {SENTINEL};
  ct_tape *t = recorded(false, &y);
  ct_tensor *tg[1] = {y}, *src[1] = {F.a}, *dead[1] = {F.dead};
  int calls = 0;
  BAD(ct_tape_gradient_with_hook(NULL, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g, hook_fails, &calls), CT_ERR_NULL);
  BAD(ct_tape_gradient_with_hook(F.dead_tape, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g, hook_fails, &calls),
      CT_ERR_RELEASED);
  BAD(ct_tape_gradient_with_hook(t, tg, 1, src, -1, NULL, CT_UNCONNECTED_NONE, g, hook_fails, &calls), CT_ERR_INVALID);
  BAD(ct_tape_gradient_with_hook(t, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, NULL, hook_fails, &calls), CT_ERR_NULL);
  BAD(ct_tape_gradient_with_hook(t, tg, 1, dead, 1, NULL, CT_UNCONNECTED_NONE, g, hook_fails, &calls), CT_ERR_RELEASED);
  cr_assert_eq(calls, 0, "the hook ran for a refused call");
  cr_assert_null(g[0]);
  /* the hook's own failure is returned, and the tape stays usable */
  cr_assert_eq(ct_tape_gradient_with_hook(t, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g, hook_fails, &calls), CT_ERR_IO);
  cr_assert_eq(calls, 1);
  cr_assert_null(g[0]);
  OK(ct_tape_gradient_with_hook(t, tg, 1, src, 1, NULL, CT_UNCONNECTED_NONE, g, NULL, NULL));
  double want[6] = {2, 4, 6, 8, 10, 12};
  ts_assert_close(g[0], want, 6, 1e-6, 0, "gradient after bad calls");
  ct_tensor_free(g[0]);
  ct_tape_free(t);
  ct_tensor_free(y);
}
/* A bad call with a tape out-parameter: it must come back NULL. */
#define BADT(call, want)                                                                                    \
  do {                                                                                                      \
    t = (ct_tape *)&F;                                                                                      \
    BAD(call, want);                                                                                        \
    cr_assert_null(t, "[%s] %s: the out-parameter was not set to NULL", F.row_name, #call);                \
  } while (0)
static void r_tape_begin_forward(const row *r) {
  (void)r;
  ct_tape *t;
  ct_tensor *p[1] = {F.a}, *v[1] = {F.a}, *dead[1] = {F.dead}, *nul[1] = {NULL}, *ints[1] = {F.i}, *other[1] = {F.b},
            *fo[1] = {F.foreign};
  BAD(ct_tape_begin_forward(F.ctx, p, v, 1, NULL), CT_ERR_NULL);
  BADT(ct_tape_begin_forward(NULL, p, v, 1, &t), CT_ERR_NULL);
  BADT(ct_tape_begin_forward(F.dead_ctx, p, v, 1, &t), CT_ERR_RELEASED);
  BADT(ct_tape_begin_forward(F.ctx, NULL, v, 1, &t), CT_ERR_NULL);
  BADT(ct_tape_begin_forward(F.ctx, p, NULL, 1, &t), CT_ERR_NULL);
  BADT(ct_tape_begin_forward(F.ctx, p, v, 0, &t), CT_ERR_INVALID);
  BADT(ct_tape_begin_forward(F.ctx, nul, v, 1, &t), CT_ERR_NULL);
  BADT(ct_tape_begin_forward(F.ctx, dead, v, 1, &t), CT_ERR_RELEASED);
  BADT(ct_tape_begin_forward(F.ctx, p, dead, 1, &t), CT_ERR_RELEASED);
  BADT(ct_tape_begin_forward(F.ctx, ints, ints, 1, &t), CT_ERR_DTYPE);
  BADT(ct_tape_begin_forward(F.ctx, fo, fo, 1, &t), CT_ERR_CONTEXT);
  BADT(ct_tape_begin_forward(F.ctx, p, other, 1, &t), CT_ERR_SHAPE);
  OK(ct_tape_begin_forward(F.ctx, p, v, 1, &t));
  ct_tape_free(t);
}
static void r_tape_jvp(const row *r) {
  (void)r;
  ct_tape *t, *rev;
  ct_tensor *p[1] = {F.a}, *o, *y;
  OK(ct_tape_begin_forward(F.ctx, p, p, 1, &t));
  OK(ct_tape_end(t));
  rev = recorded(true, &y);
  BAD(ct_tape_jvp(t, F.a, CT_UNCONNECTED_NONE, NULL), CT_ERR_NULL);
  BADO(ct_tape_jvp(NULL, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_NULL);
  BADO(ct_tape_jvp(F.dead_tape, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_RELEASED);
  BADO(ct_tape_jvp(t, NULL, CT_UNCONNECTED_NONE, &o), CT_ERR_NULL);
  BADO(ct_tape_jvp(t, F.dead, CT_UNCONNECTED_NONE, &o), CT_ERR_RELEASED);
  BADO(ct_tape_jvp(t, F.foreign, CT_UNCONNECTED_NONE, &o), CT_ERR_CONTEXT);
  BADO(ct_tape_jvp(t, F.a, (ct_unconnected)5, &o), CT_ERR_INVALID);
  BADO(ct_tape_jvp(rev, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_INVALID);
  OK(ct_tape_jvp(t, F.a, CT_UNCONNECTED_NONE, &o));
  cr_assert_not_null(o);
  ct_tensor_free(o);
  ct_tape_free(t);
  ct_tape_free(rev);
  ct_tensor_free(y);
}
static void r_tape_gradient1(const row *r) {
  (void)r;
  ct_tensor *y, *o;
  ct_tape *t = recorded(true, &y);
  BAD(ct_tape_gradient1(t, y, F.a, NULL), CT_ERR_NULL);
  BADO(ct_tape_gradient1(NULL, y, F.a, &o), CT_ERR_NULL);
  BADO(ct_tape_gradient1(F.dead_tape, y, F.a, &o), CT_ERR_RELEASED);
  BADO(ct_tape_gradient1(t, NULL, F.a, &o), CT_ERR_NULL);
  BADO(ct_tape_gradient1(t, y, NULL, &o), CT_ERR_NULL);
  BADO(ct_tape_gradient1(t, F.dead, F.a, &o), CT_ERR_RELEASED);
  BADO(ct_tape_gradient1(t, y, F.orphan, &o), CT_ERR_RELEASED);
  ct_tape_free(t);
  ct_tensor_free(y);
}
static void r_tape_gradient_named(const row *r) {
  (void)r;
  ct_tensor *y;
  ct_tape *t = recorded(true, &y);
  ct_tensor *tg[1] = {y};
  ct_named_tensor src[1] = {{"a", F.a}}, nul[1] = {{"a", NULL}}, dead[1] = {{"a", F.dead}}, g[1];
  BAD(ct_tape_gradient_named(NULL, tg, 1, src, 1, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  BAD(ct_tape_gradient_named(F.dead_tape, tg, 1, src, 1, CT_UNCONNECTED_NONE, g), CT_ERR_RELEASED);
  BAD(ct_tape_gradient_named(t, tg, 1, src, -1, CT_UNCONNECTED_NONE, g), CT_ERR_INVALID);
  BAD(ct_tape_gradient_named(t, tg, 1, NULL, 1, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  BAD(ct_tape_gradient_named(t, tg, 1, src, 1, CT_UNCONNECTED_NONE, NULL), CT_ERR_NULL);
  BAD(ct_tape_gradient_named(t, NULL, 1, src, 1, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  BAD(ct_tape_gradient_named(t, tg, 1, nul, 1, CT_UNCONNECTED_NONE, g), CT_ERR_NULL);
  cr_assert_null(g[0].tensor);
  BAD(ct_tape_gradient_named(t, tg, 1, dead, 1, CT_UNCONNECTED_NONE, g), CT_ERR_RELEASED);
  BAD(ct_tape_gradient_named(t, tg, 1, src, 1, (ct_unconnected)-1, g), CT_ERR_INVALID);
  cr_assert_null(g[0].tensor);
  ct_tape_free(t);
  ct_tensor_free(y);
}
static void jacobian_row(ct_status (*fn)(ct_tape *, const ct_tensor *, const ct_tensor *, ct_unconnected, ct_tensor **),
                         bool batch) {
  ct_tensor *y, *o, *yi;
  ct_tape *t = recorded(true, &y);
  OK(ct_cast(F.a, CT_INT32, &yi));
  BAD(fn(t, y, F.a, CT_UNCONNECTED_NONE, NULL), CT_ERR_NULL);
  BADO(fn(NULL, y, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_NULL);
  BADO(fn(F.dead_tape, y, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_RELEASED);
  BADO(fn(t, NULL, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_NULL);
  BADO(fn(t, F.a, NULL, CT_UNCONNECTED_NONE, &o), CT_ERR_NULL);
  BADO(fn(t, F.dead, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_RELEASED);
  BADO(fn(t, F.a, F.orphan, CT_UNCONNECTED_NONE, &o), CT_ERR_RELEASED);
  BADO(fn(t, yi, F.a, CT_UNCONNECTED_NONE, &o), CT_ERR_DTYPE);
  BADO(fn(t, F.a, F.a, (ct_unconnected)5, &o), CT_ERR_INVALID);
  BADO(fn(t, F.r8, F.r8, CT_UNCONNECTED_NONE, &o), CT_ERR_SHAPE); /* result rank 16 (15) */
  if (batch) {
    BADO(fn(t, F.a, F.b, CT_UNCONNECTED_NONE, &o), CT_ERR_SHAPE); /* batch 2 vs 3 */
    BADO(fn(t, F.s, F.s, CT_UNCONNECTED_NONE, &o), CT_ERR_SHAPE); /* no batch axis */
  }
  ct_tensor_free(yi);
  ct_tape_free(t);
  ct_tensor_free(y);
}
static void r_tape_jacobian(const row *r) {
  (void)r;
  jacobian_row(ct_tape_jacobian, false);
}
static void r_tape_batch_jacobian(const row *r) {
  (void)r;
  jacobian_row(ct_tape_batch_jacobian, true);
}

/* ---- the gradient registry and user-defined ops ---- */
static void r_grad_ctx_num_inputs(const row *r) {
  (void)r;
  SENT(ct_grad_ctx_num_inputs(NULL), 0);
}
static void r_grad_ctx_input(const row *r) {
  (void)r;
  SENT(ct_grad_ctx_input(NULL, 0), (ct_tensor *)NULL);
}
static void r_grad_ctx_output(const row *r) {
  (void)r;
  SENT(ct_grad_ctx_output(NULL), (ct_tensor *)NULL);
}
static ct_status some_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)user;
  (void)g;
  return ct_identity(dy, &dx[0]);
}
static void r_register_gradient(const row *r) {
  (void)r;
  BAD(ct_register_gradient(NULL, some_grad, NULL), CT_ERR_NULL);
  BAD(ct_register_gradient("", some_grad, NULL), CT_ERR_NULL);
  BAD(ct_register_gradient("Sqrt", NULL, NULL), CT_ERR_NULL);
}
static void r_register_no_gradient(const row *r) {
  (void)r;
  BAD(ct_register_no_gradient(NULL), CT_ERR_NULL);
  BAD(ct_register_no_gradient(""), CT_ERR_NULL);
}
static void r_unregister_gradient(const row *r) {
  (void)r;
  BAD(ct_unregister_gradient(NULL), CT_ERR_NULL);
  BAD(ct_unregister_gradient("NoSuchOpEverRegistered"), CT_ERR_NOT_FOUND);
}

/* A user-defined op: out = in0 + in1 (float), and a shape rule that can be told to misbehave. */
static const char *ADD_SRC =
    "__kernel void bi_add(int n, __global T *y, __global const T *a, int ra, int8 sa,"
    "                     __global const T *b, int rb, int8 sb) {"
    "  int i = get_global_id(0); if (i < n) y[i] = a[i] + b[i]; }";
static int shape_mode; /* 0: like input 0; 1: rank 9; 2: negative extent; 3: bad dtype; 4: refuse */
static ct_status odd_shape(int n, const ct_tensor *const *in, int *rank, int64_t *shape, ct_dtype *dt, void *user) {
  (void)n;
  (void)user;
  *rank = ct_tensor_rank(in[0]);
  memcpy(shape, ct_tensor_shape(in[0]), sizeof(int64_t) * (size_t)*rank);
  *dt = ct_tensor_dtype(in[0]);
  switch (shape_mode) {
    case 1: *rank = 9; break;
    case 2: shape[0] = -4; break;
    case 3: *dt = (ct_dtype)11; break;
    case 4: return CT_ERR_SHAPE;
  }
  return CT_OK;
}
static void register_bi_add(void) {
  static bool done;
  if (done) return;
  ct_custom_op op = {"BadInputsAdd", ADD_SRC, "bi_add", 2, odd_shape, NULL};
  OK(ct_custom_op_register(&op));
  done = true;
}
static void r_custom_op_register(const row *r) {
  (void)r;
  register_bi_add();
  ct_custom_op op = {"BadInputsOther", ADD_SRC, "bi_add", 2, NULL, NULL};
  BAD(ct_custom_op_register(NULL), CT_ERR_NULL);
  op.name = NULL;
  BAD(ct_custom_op_register(&op), CT_ERR_NULL);
  op.name = "BadInputsOther";
  op.source = NULL;
  BAD(ct_custom_op_register(&op), CT_ERR_NULL);
  op.source = ADD_SRC;
  op.kernel = NULL;
  BAD(ct_custom_op_register(&op), CT_ERR_NULL);
  op.kernel = "bi_add";
  op.n_inputs = 0;
  BAD(ct_custom_op_register(&op), CT_ERR_INVALID);
  op.n_inputs = 9;
  BAD(ct_custom_op_register(&op), CT_ERR_INVALID);
  op.n_inputs = 2;
  op.name = "AddV2"; /* a built-in op */
  BAD(ct_custom_op_register(&op), CT_ERR_INVALID);
  op.name = "BadInputsAdd"; /* registered above */
  BAD(ct_custom_op_register(&op), CT_ERR_INVALID);
}
static void r_custom_op_call(const row *r) {
  (void)r;
  register_bi_add();
  ct_tensor *o, *in[2] = {F.a, F.a}, *one[1] = {F.a}, *dt[2] = {F.a, F.d}, *dead[2] = {F.a, F.dead};
  ct_tensor *fo[2] = {F.a, F.foreign}, *nul[2] = {F.a, NULL};
  BAD(ct_custom_op_call(F.ctx, "BadInputsAdd", in, 2, NULL), CT_ERR_NULL);
  BADO(ct_custom_op_call(NULL, "BadInputsAdd", in, 2, &o), CT_ERR_NULL);
  BADO(ct_custom_op_call(F.dead_ctx, "BadInputsAdd", in, 2, &o), CT_ERR_RELEASED);
  BADO(ct_custom_op_call(F.ctx, NULL, in, 2, &o), CT_ERR_NULL);
  BADO(ct_custom_op_call(F.ctx, "NoSuchUserOp", in, 2, &o), CT_ERR_NOT_FOUND);
  BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", one, 1, &o), CT_ERR_INVALID);
  BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", in, -2, &o), CT_ERR_INVALID);
  BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", NULL, 2, &o), CT_ERR_NULL);
  BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", nul, 2, &o), CT_ERR_NULL);
  BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", dead, 2, &o), CT_ERR_RELEASED);
  BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", fo, 2, &o), CT_ERR_CONTEXT);
  BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", dt, 2, &o), CT_ERR_DTYPE);
  /* what a misbehaving shape rule produces is checked like any shape */
  static const ct_status want[5] = {CT_OK, CT_ERR_SHAPE, CT_ERR_SHAPE, CT_ERR_DTYPE, CT_ERR_SHAPE};
  for (shape_mode = 1; shape_mode <= 4; ++shape_mode)
    BADO(ct_custom_op_call(F.ctx, "BadInputsAdd", in, 2, &o), want[shape_mode]);
  shape_mode = 0;
  OK(ct_custom_op_call(F.ctx, "BadInputsAdd", in, 2, &o));
  double w[6] = {2, 4, 6, 8, 10, 12};
  ts_assert_close(o, w, 6, 0, 0, "custom op after bad calls");
  ct_tensor_free(o);
}

/* ---- gradient checking ---- */
static ct_status f_square(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  (void)u;
  return ct_square(in[0], out);
}
static ct_status f_fails(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)n;
  (void)u;
  return ct_reshape(in[0], 1, (int64_t[]){7}, out); /* 6 elements */
}
static ct_status f_nothing(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  (void)in;
  (void)n;
  (void)u;
  *out = NULL;
  return CT_OK;
}
static ct_status cg_forward(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *u) {
  (void)res;
  return f_square(in, n, out, u);
}
static ct_status cg_forward_fails(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *u) {
  (void)res;
  return f_fails(in, n, out, u);
}
static ct_status cg_forward_nothing(ct_tensor *const *in, int n, ct_tensor **res, ct_tensor **out, void *u) {
  (void)res;
  return f_nothing(in, n, out, u);
}
static ct_status cg_gradient(const ct_custom_grad_args *a, const ct_tensor *dy, ct_tensor **dx, ct_tensor **dv,
                             void *u) {
  (void)a, (void)dv, (void)u;
  return ct_identity(dy, &dx[0]);
}
static void r_custom_gradient(const row *r) {
  (void)r;
  ct_tensor *o, *in[1] = {F.a}, *dead[1] = {F.dead}, *nul[1] = {NULL}, *fo[2] = {F.a, F.foreign}, *many[65];
  for (int k = 0; k < 65; ++k) many[k] = F.a;
  const ct_custom_function ok = {"bad_inputs", cg_forward, cg_gradient, 0, NULL};
  const ct_custom_function no_fwd = {"bad_inputs", NULL, cg_gradient, 0, NULL};
  const ct_custom_function no_grad = {"bad_inputs", cg_forward, NULL, 0, NULL};
  const ct_custom_function res_neg = {"bad_inputs", cg_forward, cg_gradient, -1, NULL};
  const ct_custom_function res_many = {"bad_inputs", cg_forward, cg_gradient, 9, NULL};
  const ct_custom_function fails = {"bad_inputs", cg_forward_fails, cg_gradient, 0, NULL};
  const ct_custom_function nothing = {"bad_inputs", cg_forward_nothing, cg_gradient, 0, NULL};
  BAD(ct_custom_gradient(&ok, in, 1, NULL), CT_ERR_NULL);
  BADO(ct_custom_gradient(NULL, in, 1, &o), CT_ERR_NULL);
  BADO(ct_custom_gradient(&no_fwd, in, 1, &o), CT_ERR_NULL);
  BADO(ct_custom_gradient(&no_grad, in, 1, &o), CT_ERR_NULL);
  BADO(ct_custom_gradient(&res_neg, in, 1, &o), CT_ERR_INVALID);
  BADO(ct_custom_gradient(&res_many, in, 1, &o), CT_ERR_INVALID);
  BADO(ct_custom_gradient(&ok, NULL, 1, &o), CT_ERR_NULL);
  BADO(ct_custom_gradient(&ok, in, -1, &o), CT_ERR_INVALID);
  BADO(ct_custom_gradient(&ok, many, 65, &o), CT_ERR_INVALID);
  BADO(ct_custom_gradient(&ok, nul, 1, &o), CT_ERR_NULL);
  BADO(ct_custom_gradient(&ok, dead, 1, &o), CT_ERR_RELEASED);
  BADO(ct_custom_gradient(&ok, fo, 2, &o), CT_ERR_CONTEXT);
  BADO(ct_custom_gradient(&fails, in, 1, &o), CT_ERR_SHAPE);
  BADO(ct_custom_gradient(&nothing, in, 1, &o), CT_ERR_INVALID);
  OK(ct_custom_gradient(&ok, in, 1, &o));
  ct_tensor_free(o);
}
static void r_recompute_grad(const row *r) {
  (void)r;
  ct_tensor *o, *in[1] = {F.a}, *dead[1] = {F.dead}, *nul[1] = {NULL}, *fo[2] = {F.a, F.foreign}, *many[65];
  for (int k = 0; k < 65; ++k) many[k] = F.a;
  BAD(ct_recompute_grad(f_square, NULL, in, 1, NULL), CT_ERR_NULL);
  BADO(ct_recompute_grad(NULL, NULL, in, 1, &o), CT_ERR_NULL);
  BADO(ct_recompute_grad(f_square, NULL, NULL, 1, &o), CT_ERR_NULL);
  BADO(ct_recompute_grad(f_square, NULL, in, -1, &o), CT_ERR_INVALID);
  BADO(ct_recompute_grad(f_square, NULL, many, 65, &o), CT_ERR_INVALID);
  BADO(ct_recompute_grad(f_square, NULL, nul, 1, &o), CT_ERR_NULL);
  BADO(ct_recompute_grad(f_square, NULL, dead, 1, &o), CT_ERR_RELEASED);
  BADO(ct_recompute_grad(f_square, NULL, fo, 2, &o), CT_ERR_CONTEXT);
  BADO(ct_recompute_grad(f_fails, NULL, in, 1, &o), CT_ERR_SHAPE);
  BADO(ct_recompute_grad(f_nothing, NULL, in, 1, &o), CT_ERR_INVALID);
  OK(ct_recompute_grad(f_square, NULL, in, 1, &o));
  ct_tensor_free(o);
}
static void r_gradcheck(const row *r) {
  (void)r;
  ct_gradcheck_report rep;
  ct_tensor *in[1] = {F.a}, *dead[1] = {F.dead}, *nul[1] = {NULL}, *many[17];
  for (int k = 0; k < 17; ++k) many[k] = F.a;
  BAD(ct_gradcheck(NULL, f_square, NULL, in, 1, NULL, &rep), CT_ERR_NULL);
  BAD(ct_gradcheck(F.dead_ctx, f_square, NULL, in, 1, NULL, &rep), CT_ERR_RELEASED);
  BAD(ct_gradcheck(F.ctx, NULL, NULL, in, 1, NULL, &rep), CT_ERR_NULL);
  BAD(ct_gradcheck(F.ctx, f_square, NULL, NULL, 1, NULL, &rep), CT_ERR_NULL);
  BAD(ct_gradcheck(F.ctx, f_square, NULL, in, 1, NULL, NULL), CT_ERR_NULL);
  BAD(ct_gradcheck(F.ctx, f_square, NULL, in, 0, NULL, &rep), CT_ERR_INVALID);
  BAD(ct_gradcheck(F.ctx, f_square, NULL, many, 17, NULL, &rep), CT_ERR_INVALID);
  BAD(ct_gradcheck(F.ctx, f_square, NULL, nul, 1, NULL, &rep), CT_ERR_NULL);
  BAD(ct_gradcheck(F.ctx, f_square, NULL, dead, 1, NULL, &rep), CT_ERR_RELEASED);
  BAD(ct_gradcheck(F.ctx, f_fails, NULL, in, 1, NULL, &rep), CT_ERR_SHAPE);
  cr_assert(!rep.passed);
  BAD(ct_gradcheck(F.ctx, f_nothing, NULL, in, 1, NULL, &rep), CT_ERR_INVALID);
  cr_assert(!rep.passed);
}

/* ---- cltape_cl.h ---- */
static void r_context_create_from_cl(const row *r) {
  (void)r;
  cl_context c, oc;
  cl_device_id d, od;
  cl_command_queue q, oq;
  OK(ct_context_cl(F.ctx, &c, &d, &q));
  OK(ct_context_cl(F.other, &oc, &od, &oq));
  ct_context *x = (ct_context *)&F;
  BAD(ct_context_create_from_cl(c, d, q, NULL), CT_ERR_NULL);
  BAD(ct_context_create_from_cl(NULL, d, q, &x), CT_ERR_NULL);
  cr_assert_null(x);
  BAD(ct_context_create_from_cl(c, NULL, q, &x), CT_ERR_NULL);
  BAD(ct_context_create_from_cl(c, d, NULL, &x), CT_ERR_NULL);
  BAD(ct_context_create_from_cl(c, d, oq, &x), CT_ERR_INVALID); /* a queue of another context */
  /* an out-of-order queue, where the device offers one (an optional property) */
  cl_command_queue_properties qp = 0;
  cr_assert_eq(clGetDeviceInfo(d, CL_DEVICE_QUEUE_PROPERTIES, sizeof qp, &qp, NULL), CL_SUCCESS);
  if (qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) {
    cl_int err;
    cl_command_queue ooo = clCreateCommandQueue(c, d, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    cr_assert_eq(err, CL_SUCCESS, "out-of-order queue: %d", err);
    BAD(ct_context_create_from_cl(c, d, ooo, &x), CT_ERR_INVALID);
    clReleaseCommandQueue(ooo);
    cr_assert_null(x);
  }
}
static void r_context_cl(const row *r) {
  (void)r;
  cl_context c;
  BAD(ct_context_cl(NULL, &c, NULL, NULL), CT_ERR_NULL);
  BAD(ct_context_cl(F.dead_ctx, &c, NULL, NULL), CT_ERR_RELEASED);
  BAD(ct_context_cl(F.held_ctx, &c, NULL, NULL), CT_ERR_RELEASED);
  OK(ct_context_cl(F.ctx, NULL, NULL, NULL)); /* every output is optional */
  F.tried++;
}
static void r_tensor_from_cl_mem(const row *r) {
  (void)r;
  cl_context c, oc;
  OK(ct_context_cl(F.ctx, &c, NULL, NULL));
  OK(ct_context_cl(F.other, &oc, NULL, NULL));
  cl_int err;
  cl_mem small = clCreateBuffer(c, CL_MEM_READ_WRITE, 8, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_mem fits = clCreateBuffer(c, CL_MEM_READ_WRITE, 24, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_mem theirs = clCreateBuffer(oc, CL_MEM_READ_WRITE, 24, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  ct_tensor *o;
  BAD(ct_tensor_from_cl_mem(F.ctx, fits, CT_FLOAT32, 2, S23, NULL), CT_ERR_NULL);
  BADO(ct_tensor_from_cl_mem(NULL, fits, CT_FLOAT32, 2, S23, &o), CT_ERR_NULL);
  BADO(ct_tensor_from_cl_mem(F.dead_ctx, fits, CT_FLOAT32, 2, S23, &o), CT_ERR_RELEASED);
  BADO(ct_tensor_from_cl_mem(F.ctx, NULL, CT_FLOAT32, 2, S23, &o), CT_ERR_NULL);
  BADO(ct_tensor_from_cl_mem(F.ctx, fits, (ct_dtype)16, 2, S23, &o), CT_ERR_DTYPE);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(ct_tensor_from_cl_mem(F.ctx, fits, CT_FLOAT32, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, &o), WRAP_WANT(k));
  BADO(ct_tensor_from_cl_mem(F.ctx, small, CT_FLOAT32, 2, S23, &o), CT_ERR_SHAPE);
  BADO(ct_tensor_from_cl_mem(F.ctx, fits, CT_FLOAT64, 2, S23, &o), W64(CT_ERR_SHAPE));
  BADO(ct_tensor_from_cl_mem(F.ctx, theirs, CT_FLOAT32, 2, S23, &o), CT_ERR_CONTEXT);
  clReleaseMemObject(small);
  clReleaseMemObject(fits);
  clReleaseMemObject(theirs);
}
static void r_tensor_from_cl_mem_offset(const row *r) {
  (void)r;
  cl_context c, oc;
  cl_device_id d;
  OK(ct_context_cl(F.ctx, &c, &d, NULL));
  OK(ct_context_cl(F.other, &oc, NULL, NULL));
  cl_uint align_bits = 0;
  cr_assert_eq(clGetDeviceInfo(d, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL), CL_SUCCESS);
  size_t al = align_bits / 8 ? align_bits / 8 : 1;
  cl_int err;
  cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE, 2 * al + 16, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_mem wo = clCreateBuffer(c, CL_MEM_WRITE_ONLY, 2 * al + 16, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_mem theirs = clCreateBuffer(oc, CL_MEM_READ_WRITE, 2 * al + 16, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  ct_tensor *o;
  BAD(ct_tensor_from_cl_mem_offset(F.ctx, m, al, CT_FLOAT32, 2, S23, NULL), CT_ERR_NULL);
  BADO(ct_tensor_from_cl_mem_offset(NULL, m, al, CT_FLOAT32, 2, S23, &o), CT_ERR_NULL);
  BADO(ct_tensor_from_cl_mem_offset(F.dead_ctx, m, al, CT_FLOAT32, 2, S23, &o), CT_ERR_RELEASED);
  BADO(ct_tensor_from_cl_mem_offset(F.held_ctx, m, al, CT_FLOAT32, 2, S23, &o), CT_ERR_RELEASED);
  BADO(ct_tensor_from_cl_mem_offset(F.ctx, NULL, al, CT_FLOAT32, 2, S23, &o), CT_ERR_NULL);
  BADO(ct_tensor_from_cl_mem_offset(F.ctx, m, al, (ct_dtype)16, 2, S23, &o), CT_ERR_DTYPE);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(ct_tensor_from_cl_mem_offset(F.ctx, m, al, CT_FLOAT32, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, &o),
         WRAP_WANT(k));
  BADO(ct_tensor_from_cl_mem_offset(F.ctx, m, 2 * al, CT_FLOAT32, 2, S23, &o), CT_ERR_SHAPE); /* past the end */
  BADO(ct_tensor_from_cl_mem_offset(F.ctx, m, SIZE_MAX - 3, CT_FLOAT32, 2, S23, &o), CT_ERR_SHAPE);
  BADO(ct_tensor_from_cl_mem_offset(F.ctx, m, 2, CT_FLOAT32, 2, S23, &o), CT_ERR_INVALID); /* inside an element */
  if (al > 4) BADO(ct_tensor_from_cl_mem_offset(F.ctx, m, 4, CT_FLOAT32, 2, S23, &o), CT_ERR_INVALID); /* misaligned */
  BADO(ct_tensor_from_cl_mem_offset(F.ctx, wo, al, CT_FLOAT32, 2, S23, &o), CT_ERR_INVALID);
  BADO(ct_tensor_from_cl_mem_offset(F.ctx, theirs, al, CT_FLOAT32, 2, S23, &o), CT_ERR_CONTEXT);
  clReleaseMemObject(m);
  clReleaseMemObject(wo);
  clReleaseMemObject(theirs);
}
static void r_variable_from_cl_mem(const row *r) {
  (void)r;
  cl_context c, oc;
  OK(ct_context_cl(F.ctx, &c, NULL, NULL));
  OK(ct_context_cl(F.other, &oc, NULL, NULL));
  cl_int err;
  cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE, 24, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_mem ro = clCreateBuffer(c, CL_MEM_READ_ONLY, 24, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_mem theirs = clCreateBuffer(oc, CL_MEM_READ_WRITE, 24, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  ct_tensor *o;
  BAD(ct_variable_from_cl_mem(F.ctx, m, 0, CT_FLOAT32, 2, S23, "w", true, NULL), CT_ERR_NULL);
  BADO(ct_variable_from_cl_mem(NULL, m, 0, CT_FLOAT32, 2, S23, "w", true, &o), CT_ERR_NULL);
  BADO(ct_variable_from_cl_mem(F.dead_ctx, m, 0, CT_FLOAT32, 2, S23, "w", true, &o), CT_ERR_RELEASED);
  BADO(ct_variable_from_cl_mem(F.held_ctx, m, 0, CT_FLOAT32, 2, S23, "w", true, &o), CT_ERR_RELEASED);
  BADO(ct_variable_from_cl_mem(F.ctx, NULL, 0, CT_FLOAT32, 2, S23, "w", true, &o), CT_ERR_NULL);
  BADO(ct_variable_from_cl_mem(F.ctx, m, 0, (ct_dtype)16, 2, S23, "w", true, &o), CT_ERR_DTYPE);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(ct_variable_from_cl_mem(F.ctx, m, 0, CT_FLOAT32, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, "w", true, &o),
         WRAP_WANT(k));
  BADO(ct_variable_from_cl_mem(F.ctx, m, 4, CT_FLOAT32, 2, S23, "w", true, &o), CT_ERR_SHAPE); /* past the end */
  BADO(ct_variable_from_cl_mem(F.ctx, m, 0, CT_FLOAT64, 2, S23, "w", true, &o), W64(CT_ERR_SHAPE));
  BADO(ct_variable_from_cl_mem(F.ctx, ro, 0, CT_FLOAT32, 2, S23, "w", true, &o), CT_ERR_INVALID);
  BADO(ct_variable_from_cl_mem(F.ctx, theirs, 0, CT_FLOAT32, 2, S23, "w", true, &o), CT_ERR_CONTEXT);
  clReleaseMemObject(m);
  clReleaseMemObject(ro);
  clReleaseMemObject(theirs);
}
static void r_context_wait_cl_events(const row *r) {
  (void)r;
  cl_context c, oc;
  OK(ct_context_cl(F.ctx, &c, NULL, NULL));
  OK(ct_context_cl(F.other, &oc, NULL, NULL));
  cl_int err;
  cl_event mine = clCreateUserEvent(c, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_event theirs = clCreateUserEvent(oc, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_event two[2] = {mine, NULL};
  BAD(ct_context_wait_cl_events(NULL, 1, &mine), CT_ERR_NULL);
  BAD(ct_context_wait_cl_events(F.dead_ctx, 1, &mine), CT_ERR_RELEASED);
  BAD(ct_context_wait_cl_events(F.held_ctx, 1, &mine), CT_ERR_RELEASED);
  BAD(ct_context_wait_cl_events(F.ctx, -1, &mine), CT_ERR_INVALID);
  BAD(ct_context_wait_cl_events(F.ctx, 1, NULL), CT_ERR_NULL);
  BAD(ct_context_wait_cl_events(F.ctx, 2, two), CT_ERR_NULL);
  BAD(ct_context_wait_cl_events(F.ctx, 1, &theirs), CT_ERR_CONTEXT);
  OK(ct_context_wait_cl_events(F.ctx, 0, NULL)); /* nothing to wait for */
  F.tried++;
  /* nothing was enqueued by the refused calls: the queue does not wait for the unset event */
  OK(ct_context_sync(F.ctx));
  clSetUserEventStatus(mine, CL_COMPLETE);
  clSetUserEventStatus(theirs, CL_COMPLETE);
  clReleaseEvent(mine);
  clReleaseEvent(theirs);
}
static void r_context_cl_event(const row *r) {
  (void)r;
  cl_event e = (cl_event)&F;
  BAD(ct_context_cl_event(NULL, &e), CT_ERR_NULL);
  cr_assert_null(e);
  e = (cl_event)&F;
  BAD(ct_context_cl_event(F.dead_ctx, &e), CT_ERR_RELEASED);
  cr_assert_null(e);
  BAD(ct_context_cl_event(F.held_ctx, &e), CT_ERR_RELEASED);
  BAD(ct_context_cl_event(F.ctx, NULL), CT_ERR_NULL);
}
static void r_tensor_cl_mem(const row *r) {
  (void)r;
  cl_mem m;
  BAD(ct_tensor_cl_mem(NULL, &m), CT_ERR_NULL);
  BAD(ct_tensor_cl_mem(F.dead, &m), CT_ERR_RELEASED);
  BAD(ct_tensor_cl_mem(F.orphan, &m), CT_ERR_RELEASED);
  BAD(ct_tensor_cl_mem(F.a, NULL), CT_ERR_NULL);
}

/* ---- cltape_dlpack.h ---- */
static void export_row(ct_status (*fn)(const ct_tensor *, DLManagedTensor **)) {
  DLManagedTensor *m = (DLManagedTensor *)&F;
  BAD(fn(F.a, NULL), CT_ERR_NULL);
  BAD(fn(NULL, &m), CT_ERR_NULL);
  cr_assert_null(m);
  BAD(fn(F.dead, &m), CT_ERR_RELEASED);
  BAD(fn(F.orphan, &m), CT_ERR_RELEASED);
  cr_assert_null(m);
}
static void r_dlpack_export(const row *r) {
  (void)r;
  export_row(ct_dlpack_export);
}
static void r_dlpack_export_host(const row *r) {
  (void)r;
  export_row(ct_dlpack_export_host);
}
/* Managed tensors for import, each owning its shape; the deleter counts its calls. */
static int dl_deleted;
typedef struct {
  DLManagedTensor m;
  int64_t shape[10], strides[10];
} dl_box;
static void dl_delete(DLManagedTensor *m) {
  dl_deleted++;
  free(m);
}
static float dl_data[6] = {1, 2, 3, 4, 5, 6};
static DLManagedTensor *dl_host(int ndim, const int64_t *shape) {
  dl_box *b = calloc(1, sizeof *b);
  cr_assert(b);
  b->m.deleter = dl_delete;
  b->m.dl_tensor.data = dl_data;
  b->m.dl_tensor.device.device_type = kDLCPU;
  b->m.dl_tensor.ndim = ndim;
  if (shape) memcpy(b->shape, shape, sizeof(int64_t) * (size_t)(ndim > 0 && ndim <= 10 ? ndim : 0));
  b->m.dl_tensor.shape = b->shape;
  b->m.dl_tensor.dtype.code = kDLFloat;
  b->m.dl_tensor.dtype.bits = 32;
  b->m.dl_tensor.dtype.lanes = 1;
  return &b->m;
}
/* The import must fail with `want` and call the deleter exactly once. */
#define BAD_IMPORT(ctx, m, want)                                                  \
  do {                                                                            \
    int before_ = dl_deleted;                                                     \
    o = SENTINEL;                                                                 \
    BAD(ct_dlpack_import((ctx), (m), &o), (want));                                \
    cr_assert_null(o);                                                            \
    cr_assert_eq(dl_deleted, before_ + 1, "[%s] deleter not called once", F.row_name); \
  } while (0)
static void r_dlpack_import(const row *r) {
  (void)r;
  ct_tensor *o;
  DLManagedTensor *m;
  int before = dl_deleted;
  BAD(ct_dlpack_import(F.ctx, dl_host(2, S23), NULL), CT_ERR_NULL);
  cr_assert_eq(dl_deleted, before + 1, "the deleter must run when out is NULL");
  BAD_IMPORT(NULL, dl_host(2, S23), CT_ERR_NULL);
  BAD_IMPORT(F.dead_ctx, dl_host(2, S23), CT_ERR_RELEASED);
  BAD(ct_dlpack_import(F.ctx, NULL, &o), CT_ERR_NULL);
  m = dl_host(2, S23);
  m->dl_tensor.dtype.lanes = 4;
  BAD_IMPORT(F.ctx, m, CT_ERR_UNSUPPORTED);
  m = dl_host(2, S23);
  m->dl_tensor.dtype.bits = 24;
  BAD_IMPORT(F.ctx, m, CT_ERR_DTYPE);
  m = dl_host(2, S23);
  m->dl_tensor.dtype.code = kDLUInt;
  BAD_IMPORT(F.ctx, m, CT_ERR_DTYPE);
  BAD_IMPORT(F.ctx, dl_host(9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}), CT_ERR_SHAPE);
  BAD_IMPORT(F.ctx, dl_host(-1, NULL), CT_ERR_SHAPE);
  m = dl_host(2, S23);
  m->dl_tensor.shape = NULL;
  BAD_IMPORT(F.ctx, m, CT_ERR_SHAPE);
  BAD_IMPORT(F.ctx, dl_host(2, SH_NEG), CT_ERR_SHAPE);
  BAD_IMPORT(F.ctx, dl_host(2, SH_OVF2), CT_ERR_SHAPE);
  m = dl_host(2, S23);
  m->dl_tensor.data = NULL;
  BAD_IMPORT(F.ctx, m, CT_ERR_NULL);
  m = dl_host(2, S23);
  m->dl_tensor.device.device_type = kDLCUDA;
  BAD_IMPORT(F.ctx, m, CT_ERR_UNSUPPORTED);
  /* OpenCL buffers: another context's, a strided view, a byte offset past the end */
  cl_mem mine, theirs;
  OK(ct_tensor_cl_mem(F.a, &mine));
  OK(ct_tensor_cl_mem(F.foreign, &theirs));
  m = dl_host(2, S23);
  m->dl_tensor.device.device_type = kDLOpenCL;
  m->dl_tensor.data = theirs;
  BAD_IMPORT(F.ctx, m, CT_ERR_CONTEXT);
  m = dl_host(2, S23);
  m->dl_tensor.device.device_type = kDLOpenCL;
  m->dl_tensor.data = mine;
  m->dl_tensor.strides = ((dl_box *)m)->strides;
  ((dl_box *)m)->strides[0] = 1;
  ((dl_box *)m)->strides[1] = 2;
  BAD_IMPORT(F.ctx, m, CT_ERR_UNSUPPORTED);
  m = dl_host(2, S23);
  m->dl_tensor.device.device_type = kDLOpenCL;
  m->dl_tensor.data = mine;
  m->dl_tensor.byte_offset = 1u << 20;
  BAD_IMPORT(F.ctx, m, CT_ERR_OPENCL);
}

/* ---- include/cltape_nn.h ---- */
/* NHWC images, HWIO filters, logits and labels of the fixture's context */
static ct_tensor *nn_img(ct_dtype dt) { return t_of(F.ctx, dt, 4, (int64_t[]){1, 5, 5, 2}, 0.5); }
static ct_tensor *nn_filter(void) { return t_of(F.ctx, CT_FLOAT32, 4, (int64_t[]){3, 3, 2, 3}, -1); }
static ct_tensor *nn_labels(int n) { return t_of(F.ctx, CT_INT32, 1, (int64_t[]){n}, 0); }

static void r_conv2d(const row *r) {
  (void)r;
  ct_tensor *o, *x = nn_img(CT_FLOAT32), *xd = nn_img(DT_OTHER), *xi = nn_img(CT_INT32), *f = nn_filter();
  ct_tensor *f4 = t_of(F.ctx, CT_FLOAT32, 4, (int64_t[]){3, 3, 4, 3}, 0),
            *big = t_of(F.ctx, CT_FLOAT32, 4, (int64_t[]){7, 7, 2, 3}, 0);
  ct_tensor *fo = t_of(F.other, CT_FLOAT32, 4, (int64_t[]){3, 3, 2, 3}, 0);
  BAD(ct_conv2d(x, f, NULL, CT_PADDING_SAME, NULL), CT_ERR_NULL);
  BADO(ct_conv2d(NULL, f, NULL, CT_PADDING_SAME, &o), CT_ERR_NULL);
  BADO(ct_conv2d(x, NULL, NULL, CT_PADDING_SAME, &o), CT_ERR_NULL);
  BADO(ct_conv2d(F.dead, f, NULL, CT_PADDING_SAME, &o), CT_ERR_RELEASED);
  BADO(ct_conv2d(x, F.orphan, NULL, CT_PADDING_SAME, &o), CT_ERR_RELEASED);
  BADO(ct_conv2d(F.a, f, NULL, CT_PADDING_SAME, &o), CT_ERR_SHAPE);   /* rank 2 image */
  BADO(ct_conv2d(x, F.a, NULL, CT_PADDING_SAME, &o), CT_ERR_SHAPE);   /* rank 2 filter */
  BADO(ct_conv2d(x, f4, NULL, CT_PADDING_SAME, &o), CT_ERR_SHAPE);    /* 4 input channels for 2 */
  BADO(ct_conv2d(x, big, NULL, CT_PADDING_VALID, &o), CT_ERR_SHAPE);  /* a 7x7 window on 5x5 */
  BADO(ct_conv2d(xd, f, NULL, CT_PADDING_SAME, &o), CT_ERR_DTYPE);
  BADO(ct_conv2d(xi, f, NULL, CT_PADDING_SAME, &o), CT_ERR_DTYPE);
  BADO(ct_conv2d(x, f, (int[]){0, 1}, CT_PADDING_SAME, &o), CT_ERR_INVALID);
  BADO(ct_conv2d(x, f, (int[]){1, -2}, CT_PADDING_SAME, &o), CT_ERR_INVALID);
  BADO(ct_conv2d(x, f, NULL, (ct_padding)7, &o), CT_ERR_INVALID);
  BADO(ct_conv2d(x, fo, NULL, CT_PADDING_SAME, &o), CT_ERR_CONTEXT);
  ct_tensor *all[] = {x, xd, xi, f, f4, big, fo};
  ct_tensor_free_n(all, 7);
}
static void pool_row(ct_status (*fn)(const ct_tensor *, const int *, const int *, ct_padding, ct_tensor **)) {
  ct_tensor *o, *x = nn_img(CT_FLOAT32), *xi = nn_img(CT_INT32);
  int p2[2] = {2, 2};
  BAD(fn(x, p2, NULL, CT_PADDING_SAME, NULL), CT_ERR_NULL);
  BADO(fn(NULL, p2, NULL, CT_PADDING_SAME, &o), CT_ERR_NULL);
  BADO(fn(x, NULL, NULL, CT_PADDING_SAME, &o), CT_ERR_NULL);
  BADO(fn(F.dead, p2, NULL, CT_PADDING_SAME, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, p2, NULL, CT_PADDING_SAME, &o), CT_ERR_SHAPE);
  BADO(fn(x, (int[]){7, 7}, NULL, CT_PADDING_VALID, &o), CT_ERR_SHAPE);
  BADO(fn(xi, p2, NULL, CT_PADDING_SAME, &o), CT_ERR_DTYPE);
  BADO(fn(x, (int[]){0, 2}, NULL, CT_PADDING_SAME, &o), CT_ERR_INVALID);
  BADO(fn(x, p2, (int[]){2, 0}, CT_PADDING_SAME, &o), CT_ERR_INVALID);
  BADO(fn(x, p2, NULL, (ct_padding)-1, &o), CT_ERR_INVALID);
  ct_tensor_free(x);
  ct_tensor_free(xi);
}
static void r_max_pool2d(const row *r) {
  (void)r;
  pool_row(ct_max_pool2d);
}
static void r_avg_pool2d(const row *r) {
  (void)r;
  pool_row(ct_avg_pool2d);
}
static void r_dropout(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_dropout(F.a, 0.5, 1, NULL), CT_ERR_NULL);
  BADO(ct_dropout(NULL, 0.5, 1, &o), CT_ERR_NULL);
  BADO(ct_dropout(F.dead, 0.5, 1, &o), CT_ERR_RELEASED);
  BADO(ct_dropout(F.i, 0.5, 1, &o), CT_ERR_DTYPE);
  BADO(ct_dropout(F.a, 1.0, 1, &o), CT_ERR_INVALID);
  BADO(ct_dropout(F.a, -0.1, 1, &o), CT_ERR_INVALID);
  BADO(ct_dropout(F.a, NAN, 1, &o), CT_ERR_INVALID);
}
typedef ct_status (*xent_fn)(const ct_tensor *, const ct_tensor *, ct_tensor **);
static void xent_row(xent_fn fn, bool int_logits_ok) {
  ct_tensor *o, *lab = nn_labels(2), *lab3 = nn_labels(3), *logi = t_of(F.ctx, CT_INT32, 2, S23, 0);
  ct_tensor *flab = t_of(F.ctx, CT_FLOAT32, 1, (int64_t[]){2}, 0), *fo = t_of(F.other, CT_INT32, 1, (int64_t[]){2}, 0);
  BAD(fn(F.a, lab, NULL), CT_ERR_NULL);
  BADO(fn(NULL, lab, &o), CT_ERR_NULL);
  BADO(fn(F.a, NULL, &o), CT_ERR_NULL);
  BADO(fn(F.dead, lab, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, F.dead, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, lab3, &o), CT_ERR_SHAPE);   /* 3 labels for 2 examples */
  BADO(fn(F.s, lab, &o), CT_ERR_SHAPE);    /* scalar logits */
  if (!int_logits_ok) BADO(fn(logi, lab, &o), CT_ERR_DTYPE); /* integer logits (argmax takes them) */
  BADO(fn(F.a, flab, &o), CT_ERR_DTYPE);   /* float labels */
  BADO(fn(F.a, fo, &o), CT_ERR_CONTEXT);
  ct_tensor *all[] = {lab, lab3, logi, flab, fo};
  ct_tensor_free_n(all, 5);
}
static void r_sparse_softmax_cross_entropy(const row *r) {
  (void)r;
  xent_row(ct_sparse_softmax_cross_entropy, false);
}
static void r_softmax_cross_entropy(const row *r) {
  (void)r;
  xent_row(ct_softmax_cross_entropy, false);
}
static void r_count_correct(const row *r) {
  (void)r;
  xent_row(ct_count_correct, true);
}
static void r_accuracy(const row *r) {
  (void)r;
  xent_row(ct_accuracy, true);
}
static void r_mean_squared_error(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_mean_squared_error(F.a, F.a, NULL), CT_ERR_NULL);
  BADO(ct_mean_squared_error(NULL, F.a, &o), CT_ERR_NULL);
  BADO(ct_mean_squared_error(F.a, NULL, &o), CT_ERR_NULL);
  BADO(ct_mean_squared_error(F.dead, F.a, &o), CT_ERR_RELEASED);
  BADO(ct_mean_squared_error(F.a, F.b, &o), CT_ERR_SHAPE);
  BADO(ct_mean_squared_error(F.a, F.v, &o), CT_ERR_SHAPE); /* broadcastable, but not equal */
  BADO(ct_mean_squared_error(F.a, F.d, &o), CT_ERR_DTYPE);
  BADO(ct_mean_squared_error(F.a, F.foreign, &o), CT_ERR_CONTEXT);
}
static void r_bias_add(const row *r) {
  (void)r;
  ct_tensor *o, *b2 = t_of(F.ctx, CT_FLOAT32, 1, (int64_t[]){2}, 0), *bd = t_of(F.ctx, DT_OTHER, 1, S3, 0);
  BAD(ct_bias_add(F.a, F.v, NULL), CT_ERR_NULL);
  BADO(ct_bias_add(NULL, F.v, &o), CT_ERR_NULL);
  BADO(ct_bias_add(F.a, NULL, &o), CT_ERR_NULL);
  BADO(ct_bias_add(F.dead, F.v, &o), CT_ERR_RELEASED);
  BADO(ct_bias_add(F.a, b2, &o), CT_ERR_SHAPE);
  BADO(ct_bias_add(F.a, F.a, &o), CT_ERR_SHAPE);
  BADO(ct_bias_add(F.s, F.v, &o), CT_ERR_SHAPE);
  BADO(ct_bias_add(F.a, bd, &o), CT_ERR_DTYPE);
  ct_tensor_free(b2);
  ct_tensor_free(bd);
}
static void r_activation_name(const row *r) {
  (void)r;
  SENT(strcmp(ct_activation_name((ct_activation)99), "?"), 0);
  SENT(strcmp(ct_activation_name((ct_activation)-1), "?"), 0);
}
static void r_activate(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_activate(F.a, CT_ACTIVATION_RELU, NULL), CT_ERR_NULL);
  BADO(ct_activate(NULL, CT_ACTIVATION_RELU, &o), CT_ERR_NULL);
  BADO(ct_activate(F.dead, CT_ACTIVATION_RELU, &o), CT_ERR_RELEASED);
  BADO(ct_activate(F.a, (ct_activation)99, &o), CT_ERR_INVALID);
  BADO(ct_activate(F.i, CT_ACTIVATION_SIGMOID, &o), CT_ERR_DTYPE);
}
static void r_initializer_fans(const row *r) {
  (void)r;
  double fi, fo;
  BAD(ct_initializer_fans(2, NULL, &fi, &fo), CT_ERR_SHAPE); /* documented with the rank: no shape */
  BAD(ct_initializer_fans(2, S23, NULL, &fo), CT_ERR_NULL);
  BAD(ct_initializer_fans(2, S23, &fi, NULL), CT_ERR_NULL);
  BAD(ct_initializer_fans(-1, S23, &fi, &fo), CT_ERR_SHAPE);
  BAD(ct_initializer_fans(9, S23, &fi, &fo), CT_ERR_SHAPE);
  BAD(ct_initializer_fans(2, SH_NEG, &fi, &fo), CT_ERR_SHAPE);
}
static void r_initialize(const row *r) {
  (void)r;
  ct_tensor *o;
  BAD(ct_initialize(F.ctx, CT_INIT_HE_NORMAL, CT_FLOAT32, 2, S23, 1, NULL), CT_ERR_NULL);
  BADO(ct_initialize(NULL, CT_INIT_HE_NORMAL, CT_FLOAT32, 2, S23, 1, &o), CT_ERR_NULL);
  BADO(ct_initialize(F.dead_ctx, CT_INIT_HE_NORMAL, CT_FLOAT32, 2, S23, 1, &o), CT_ERR_RELEASED);
  BADO(ct_initialize(F.ctx, (ct_initializer)42, CT_FLOAT32, 2, S23, 1, &o), CT_ERR_INVALID);
  BADO(ct_initialize(F.ctx, CT_INIT_HE_NORMAL, CT_INT32, 2, S23, 1, &o), CT_ERR_DTYPE);
  BADO(ct_initialize(F.ctx, CT_INIT_HE_NORMAL, (ct_dtype)5, 2, S23, 1, &o), CT_ERR_DTYPE);
  for (int k = 0; k < N_BAD_SHAPES; ++k)
    BADO(ct_initialize(F.ctx, CT_INIT_GLOROT_UNIFORM, CT_FLOAT32, BAD_SHAPES[k].rank, BAD_SHAPES[k].shape, 1, &o),
         BAD_SHAPES[k].want);
  BADO(ct_initialize(F.ctx, CT_INIT_GLOROT_UNIFORM, CT_FLOAT64, 2, SH_BIG, 1, &o), W64(CT_ERR_OUT_OF_MEMORY));
}

/* modules: a Dense(3 -> 2) to misuse */
static ct_module *nn_dense(void) {
  ct_module *m = NULL;
  OK(ct_dense_create(F.ctx, 3, 2, CT_ACTIVATION_NONE, NULL, &m));
  return m;
}
static ct_status fwd_id(ct_module *self, const ct_tensor *x, bool training, ct_tensor **out, void *user) {
  (void)self;
  (void)training;
  (void)user;
  return ct_identity(x, out);
}
#define BADM(call, want)                                                              \
  do {                                                                                \
    mo = (ct_module *)&F;                                                             \
    BAD(call, want);                                                                  \
    cr_assert_null(mo, "[%s] %s: the out-parameter was not set to NULL", F.row_name, #call); \
  } while (0)
static void r_module_create(const row *r) {
  (void)r;
  ct_module *mo;
  BAD(ct_module_create(F.ctx, "m", fwd_id, NULL, NULL), CT_ERR_NULL);
  BADM(ct_module_create(NULL, "m", fwd_id, NULL, &mo), CT_ERR_NULL);
  BADM(ct_module_create(F.dead_ctx, "m", fwd_id, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_module_create(F.held_ctx, "m", fwd_id, NULL, &mo), CT_ERR_RELEASED);
}
static void r_module_add_variable(const row *r) {
  (void)r;
  ct_module *m = NULL;
  ct_tensor *v = SENTINEL;
  OK(ct_module_create(F.ctx, "holder", NULL, NULL, &m));
  OK(ct_module_add_variable(m, F.a, "w", true, NULL));
  BAD(ct_module_add_variable(NULL, F.a, "x", true, &v), CT_ERR_NULL);
  BAD(ct_module_add_variable(F.dead_mod, F.a, "x", true, &v), CT_ERR_RELEASED);
  BAD(ct_module_add_variable(m, NULL, "x", true, &v), CT_ERR_NULL);
  BAD(ct_module_add_variable(m, F.dead, "x", true, &v), CT_ERR_RELEASED);
  BAD(ct_module_add_variable(m, F.a, "", true, &v), CT_ERR_INVALID);
  BAD(ct_module_add_variable(m, F.a, NULL, true, &v), CT_ERR_INVALID);
  BAD(ct_module_add_variable(m, F.a, "w", true, &v), CT_ERR_INVALID); /* the name is taken */
  BAD(ct_module_add_variable(m, F.foreign, "x", true, &v), CT_ERR_CONTEXT);
  cr_assert_null(v);
  ct_module_free(m);
}
static void r_module_own_variable(const row *r) {
  (void)r;
  ct_module *m = nn_dense();
  SENT(ct_module_own_variable(NULL, 0), (ct_tensor *)NULL);
  SENT(ct_module_own_variable(F.dead_mod, 0), (ct_tensor *)NULL);
  SENT(ct_module_own_variable(m, -1), (ct_tensor *)NULL);
  SENT(ct_module_own_variable(m, 2), (ct_tensor *)NULL);
  ct_module_free(m);
}
static void r_module_add(const row *r) {
  (void)r;
  ct_module *p = NULL, *q = NULL, *c = nn_dense(), *fo = NULL;
  OK(ct_module_create(F.ctx, "parent", NULL, NULL, &p));
  OK(ct_module_create(F.ctx, "other", NULL, NULL, &q));
  OK(ct_module_create(F.other, "foreign", NULL, NULL, &fo));
  OK(ct_module_add(p, c));
  BAD(ct_module_add(NULL, c), CT_ERR_NULL);
  BAD(ct_module_add(F.dead_mod, c), CT_ERR_RELEASED);
  BAD(ct_module_add(p, F.dead_mod), CT_ERR_RELEASED);
  BAD(ct_module_add(p, (ct_module *)F.a), CT_ERR_INVALID);
  BAD(ct_module_add(p, NULL), CT_ERR_NULL);
  BAD(ct_module_add(p, p), CT_ERR_INVALID);  /* itself */
  BAD(ct_module_add(q, c), CT_ERR_INVALID);  /* already has a parent */
  BAD(ct_module_add(c, p), CT_ERR_INVALID);  /* a cycle */
  BAD(ct_module_add(p, fo), CT_ERR_CONTEXT);
  ct_module_free(c);
  ct_module_free(p);
  ct_module_free(q);
  ct_module_free(fo);
}
static void r_module_call(const row *r) {
  (void)r;
  ct_tensor *o, *x4 = t_of(F.ctx, CT_FLOAT32, 2, (int64_t[]){2, 4}, 0), *xd = t_of(F.ctx, DT_OTHER, 2, S23, 0);
  ct_module *m = nn_dense(), *empty = NULL;
  OK(ct_module_create(F.ctx, "container", NULL, NULL, &empty));
  BAD(ct_module_call(m, F.a, false, NULL), CT_ERR_NULL);
  BADO(ct_module_call(NULL, F.a, false, &o), CT_ERR_NULL);
  BADO(ct_module_call(F.dead_mod, F.a, false, &o), CT_ERR_RELEASED);
  BADO(ct_module_call(m, NULL, false, &o), CT_ERR_NULL);
  BADO(ct_module_call(m, F.dead, false, &o), CT_ERR_RELEASED);
  BADO(ct_module_call(m, x4, false, &o), CT_ERR_SHAPE); /* 4 features for 3 */
  BADO(ct_module_call(m, xd, false, &o), CT_ERR_DTYPE);
  BADO(ct_module_call(m, F.foreign, false, &o), CT_ERR_CONTEXT);
  BADO(ct_module_call(empty, F.a, false, &o), CT_ERR_INVALID); /* no forward */
  ct_module_free(m);
  ct_module_free(empty);
  ct_tensor_free(x4);
  ct_tensor_free(xd);
}
static void r_module_call_with(const row *r) {
  (void)r;
  ct_module *m = nn_dense();
  ct_tensor *o, *k = t_of(F.ctx, CT_FLOAT32, 2, S32, 0), *b = t_of(F.ctx, CT_FLOAT32, 1, (int64_t[]){2}, 0);
  ct_tensor *kd = t_of(F.ctx, DT_OTHER, 2, S32, 0);
  ct_tensor *ok[2] = {k, b}, *sh[2] = {F.a, b}, *dt[2] = {kd, b}, *nul[2] = {k, NULL}, *dead[2] = {k, F.dead};
  BAD(ct_module_call_with(m, F.a, ok, 2, false, NULL), CT_ERR_NULL);
  BADO(ct_module_call_with(NULL, F.a, ok, 2, false, &o), CT_ERR_NULL);
  BADO(ct_module_call_with(F.dead_mod, F.a, ok, 2, false, &o), CT_ERR_RELEASED);
  BADO(ct_module_call_with(m, NULL, ok, 2, false, &o), CT_ERR_NULL);
  BADO(ct_module_call_with(m, F.a, NULL, 2, false, &o), CT_ERR_NULL);
  BADO(ct_module_call_with(m, F.a, ok, 1, false, &o), CT_ERR_INVALID);
  BADO(ct_module_call_with(m, F.a, ok, -1, false, &o), CT_ERR_INVALID);
  BADO(ct_module_call_with(m, F.a, nul, 2, false, &o), CT_ERR_NULL);
  BADO(ct_module_call_with(m, F.a, dead, 2, false, &o), CT_ERR_RELEASED);
  BADO(ct_module_call_with(m, F.a, sh, 2, false, &o), CT_ERR_SHAPE);
  BADO(ct_module_call_with(m, F.a, dt, 2, false, &o), CT_ERR_DTYPE);
  ct_module_free(m);
  ct_tensor *all[] = {k, b, kd};
  ct_tensor_free_n(all, 3);
}
typedef ct_status (*vars_fn)(const ct_module *, ct_tensor **, int, int *);
static void vars_row(vars_fn fn) {
  ct_module *m = nn_dense();
  ct_tensor *out[2];
  int n;
  BAD(fn(NULL, out, 2, &n), CT_ERR_NULL);
  BAD(fn(F.dead_mod, out, 2, &n), CT_ERR_RELEASED);
  BAD(fn(m, out, 2, NULL), CT_ERR_NULL);
  BAD(fn(m, NULL, 2, &n), CT_ERR_NULL);
  BAD(fn(m, out, -1, &n), CT_ERR_INVALID);
  ct_module_free(m);
}
static void r_module_variables(const row *r) {
  (void)r;
  vars_row(ct_module_variables);
}
static void r_module_trainable_variables(const row *r) {
  (void)r;
  vars_row(ct_module_trainable_variables);
}
static void r_module_find_variable(const row *r) {
  (void)r;
  ct_module *m = nn_dense();
  SENT(ct_module_find_variable(NULL, "dense/kernel"), (ct_tensor *)NULL);
  SENT(ct_module_find_variable(F.dead_mod, "dense/kernel"), (ct_tensor *)NULL);
  SENT(ct_module_find_variable(m, NULL), (ct_tensor *)NULL);
  SENT(ct_module_find_variable(m, "no/such/variable:0"), (ct_tensor *)NULL);
  ct_module_free(m);
}
static void r_module_set_trainable(const row *r) {
  (void)r;
  BAD(ct_module_set_trainable(NULL, true), CT_ERR_NULL);
  BAD(ct_module_set_trainable(F.dead_mod, true), CT_ERR_RELEASED);
}
static void r_module_set_seed(const row *r) {
  (void)r;
  BAD(ct_module_set_seed(NULL, 1), CT_ERR_NULL);
  BAD(ct_module_set_seed(F.dead_mod, 1), CT_ERR_RELEASED);
  BAD(ct_module_set_seed((ct_module *)F.a, 1), CT_ERR_INVALID);
}
static void r_module_num_params(const row *r) {
  (void)r;
  SENT(ct_module_num_params(NULL, false), (int64_t)-1);
  SENT(ct_module_num_params(F.dead_mod, false), (int64_t)-1);
}
static void r_module_name(const row *r) {
  (void)r;
  SENT(ct_module_name(NULL), (const char *)NULL);
  SENT(ct_module_name(F.dead_mod), (const char *)NULL);
}
static void r_module_kind(const row *r) {
  (void)r;
  SENT(ct_module_kind(NULL), (const char *)NULL);
  SENT(ct_module_kind(F.dead_mod), (const char *)NULL);
}
static void r_module_num_children(const row *r) {
  (void)r;
  SENT(ct_module_num_children(NULL), -1);
  SENT(ct_module_num_children(F.dead_mod), -1);
}
static void r_module_child(const row *r) {
  (void)r;
  ct_module *m = nn_dense();
  SENT(ct_module_child(NULL, 0), (ct_module *)NULL);
  SENT(ct_module_child(F.dead_mod, 0), (ct_module *)NULL);
  SENT(ct_module_child(m, 0), (ct_module *)NULL);
  SENT(ct_module_child(m, -1), (ct_module *)NULL);
  ct_module_free(m);
}
static void r_module_summary(const row *r) {
  (void)r;
  ct_module *m = nn_dense();
  BAD(ct_module_summary(NULL, stderr), CT_ERR_NULL);
  BAD(ct_module_summary(F.dead_mod, stderr), CT_ERR_RELEASED);
  BAD(ct_module_summary(m, NULL), CT_ERR_NULL);
  ct_module_free(m);
}
static void r_module_retain(const row *r) {
  (void)r;
  SENT(ct_module_retain(NULL), (ct_module *)NULL);
  SENT(ct_module_retain(F.dead_mod), F.dead_mod); /* no reference is added */
}
static void r_module_free(const row *r) {
  (void)r;
  ct_module_free(NULL);
  ct_module_free(F.dead_mod); /* freed already: nothing */
  ct_module_free((ct_module *)F.a); /* not a module: nothing */
  F.tried += 3;
}
static void r_reset_module_names(const row *r) {
  (void)r;
  ct_reset_module_names(); /* no arguments: nothing can be bad */
  F.tried++;
}
static void r_layer_default_options(const row *r) {
  (void)r;
  ct_layer_options o = ct_layer_default_options();
  SENT(o.dtype, CT_FLOAT32);
  SENT(o.use_bias, true);
}
static void r_dense_create(const row *r) {
  (void)r;
  ct_module *mo;
  ct_layer_options li = ct_layer_default_options(), lk = ct_layer_default_options();
  li.dtype = CT_INT32;
  lk.kernel_initializer = (ct_initializer)77;
  BAD(ct_dense_create(F.ctx, 3, 2, CT_ACTIVATION_NONE, NULL, NULL), CT_ERR_NULL);
  BADM(ct_dense_create(NULL, 3, 2, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_NULL);
  BADM(ct_dense_create(F.dead_ctx, 3, 2, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_dense_create(F.ctx, 0, 2, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_dense_create(F.ctx, 3, -2, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_dense_create(F.ctx, 3, 2, (ct_activation)50, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_dense_create(F.ctx, 3, 2, CT_ACTIVATION_NONE, &li, &mo), CT_ERR_DTYPE);
  BADM(ct_dense_create(F.ctx, 3, 2, CT_ACTIVATION_NONE, &lk, &mo), CT_ERR_INVALID);
  BADM(ct_dense_create(F.ctx, INT64_MAX, 2, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_SHAPE);
  BADM(ct_dense_create(F.ctx, 100000, 100000, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_OUT_OF_MEMORY);
}
static void r_conv2d_create(const row *r) {
  (void)r;
  ct_module *mo;
  int k3[2] = {3, 3};
  BAD(ct_conv2d_create(F.ctx, 2, 3, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, NULL), CT_ERR_NULL);
  BADM(ct_conv2d_create(NULL, 2, 3, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_NULL);
  BADM(ct_conv2d_create(F.dead_ctx, 2, 3, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_conv2d_create(F.ctx, 2, 3, NULL, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_NULL);
  BADM(ct_conv2d_create(F.ctx, 0, 3, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_conv2d_create(F.ctx, 2, 0, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_conv2d_create(F.ctx, 2, 3, (int[]){0, 3}, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &mo),
       CT_ERR_INVALID);
  BADM(ct_conv2d_create(F.ctx, 2, 3, k3, (int[]){1, 0}, CT_PADDING_SAME, CT_ACTIVATION_NONE, NULL, &mo),
       CT_ERR_INVALID);
  BADM(ct_conv2d_create(F.ctx, 2, 3, k3, NULL, (ct_padding)3, CT_ACTIVATION_NONE, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_conv2d_create(F.ctx, 2, 3, k3, NULL, CT_PADDING_SAME, (ct_activation)-5, NULL, &mo), CT_ERR_INVALID);
}
typedef ct_status (*pool_create_fn)(ct_context *, const int *, const int *, ct_padding, const char *, ct_module **);
static void pool_create_row(pool_create_fn fn) {
  ct_module *mo;
  int p2[2] = {2, 2};
  BAD(fn(F.ctx, p2, NULL, CT_PADDING_VALID, NULL, NULL), CT_ERR_NULL);
  BADM(fn(NULL, p2, NULL, CT_PADDING_VALID, NULL, &mo), CT_ERR_NULL);
  BADM(fn(F.dead_ctx, p2, NULL, CT_PADDING_VALID, NULL, &mo), CT_ERR_RELEASED);
  BADM(fn(F.ctx, NULL, NULL, CT_PADDING_VALID, NULL, &mo), CT_ERR_NULL);
  BADM(fn(F.ctx, (int[]){2, -1}, NULL, CT_PADDING_VALID, NULL, &mo), CT_ERR_INVALID);
  BADM(fn(F.ctx, p2, (int[]){0, 0}, CT_PADDING_VALID, NULL, &mo), CT_ERR_INVALID);
  BADM(fn(F.ctx, p2, NULL, (ct_padding)2, NULL, &mo), CT_ERR_INVALID);
}
static void r_max_pool2d_create(const row *r) {
  (void)r;
  pool_create_row(ct_max_pool2d_create);
}
static void r_avg_pool2d_create(const row *r) {
  (void)r;
  pool_create_row(ct_avg_pool2d_create);
}
static void r_flatten_create(const row *r) {
  (void)r;
  ct_module *mo;
  BAD(ct_flatten_create(F.ctx, NULL, NULL), CT_ERR_NULL);
  BADM(ct_flatten_create(NULL, NULL, &mo), CT_ERR_NULL);
  BADM(ct_flatten_create(F.dead_ctx, NULL, &mo), CT_ERR_RELEASED);
}
static void r_dropout_create(const row *r) {
  (void)r;
  ct_module *mo;
  BAD(ct_dropout_create(F.ctx, 0.5, 1, NULL, NULL), CT_ERR_NULL);
  BADM(ct_dropout_create(NULL, 0.5, 1, NULL, &mo), CT_ERR_NULL);
  BADM(ct_dropout_create(F.dead_ctx, 0.5, 1, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_dropout_create(F.ctx, 1.0, 1, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_dropout_create(F.ctx, -1e-9, 1, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_dropout_create(F.ctx, NAN, 1, NULL, &mo), CT_ERR_INVALID);
}
static void r_activation_create(const row *r) {
  (void)r;
  ct_module *mo;
  BAD(ct_activation_create(F.ctx, CT_ACTIVATION_RELU, NULL, NULL), CT_ERR_NULL);
  BADM(ct_activation_create(NULL, CT_ACTIVATION_RELU, NULL, &mo), CT_ERR_NULL);
  BADM(ct_activation_create(F.dead_ctx, CT_ACTIVATION_RELU, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_activation_create(F.ctx, (ct_activation)9, NULL, &mo), CT_ERR_INVALID);
}
static void r_sequential_create(const row *r) {
  (void)r;
  ct_module *mo;
  BAD(ct_sequential_create(F.ctx, NULL, NULL), CT_ERR_NULL);
  BADM(ct_sequential_create(NULL, NULL, &mo), CT_ERR_NULL);
  BADM(ct_sequential_create(F.dead_ctx, NULL, &mo), CT_ERR_RELEASED);
}
static void r_sequential_add(const row *r) {
  (void)r;
  ct_module *seq = NULL, *d = nn_dense(), *fo = NULL;
  OK(ct_sequential_create(F.ctx, NULL, &seq));
  OK(ct_flatten_create(F.other, NULL, &fo));
  BAD(ct_sequential_add(NULL, d), CT_ERR_NULL);
  BAD(ct_sequential_add(F.dead_mod, d), CT_ERR_RELEASED);
  BAD(ct_sequential_add(seq, F.dead_mod), CT_ERR_RELEASED);
  BAD(ct_sequential_add(seq, NULL), CT_ERR_NULL);
  BAD(ct_sequential_add(seq, seq), CT_ERR_INVALID);
  BAD(ct_sequential_add(d, seq), CT_ERR_INVALID); /* a Dense is not a Sequential */
  BAD(ct_sequential_add(seq, fo), CT_ERR_CONTEXT);
  ct_module_free(seq);
  ct_module_free(d);
  ct_module_free(fo);
}

/* optimizers */
static void r_optimizer_default_options(const row *r) {
  (void)r;
  ct_optimizer_options o = ct_optimizer_default_options((ct_optimizer_kind)9); /* kept: create refuses it */
  ct_optimizer *op = (ct_optimizer *)&F;
  BAD(ct_optimizer_create(F.ctx, &o, &op), CT_ERR_INVALID);
  cr_assert_null(op);
}
static void r_optimizer_kind_name(const row *r) {
  (void)r;
  SENT(strcmp(ct_optimizer_kind_name((ct_optimizer_kind)9), "?"), 0);
}
static void r_optimizer_create(const row *r) {
  (void)r;
  ct_optimizer *op = (ct_optimizer *)&F;
  ct_optimizer_options o;
  BAD(ct_optimizer_create(F.ctx, NULL, NULL), CT_ERR_NULL);
  BAD(ct_optimizer_create(NULL, NULL, &op), CT_ERR_NULL);
  cr_assert_null(op);
  op = (ct_optimizer *)&F;
  BAD(ct_optimizer_create(F.dead_ctx, NULL, &op), CT_ERR_RELEASED);
  cr_assert_null(op);
  static const struct {
    ct_optimizer_kind kind;
    int field;
    double value;
  } bad[] = {{CT_OPTIMIZER_SGD, 0, 0},   {CT_OPTIMIZER_SGD, 0, -1},  {CT_OPTIMIZER_SGD, 0, NAN},
             {CT_OPTIMIZER_SGD, 0, INFINITY}, {CT_OPTIMIZER_SGD, 1, 1}, {CT_OPTIMIZER_SGD, 1, -0.5},
             {CT_OPTIMIZER_ADAM, 2, 1},  {CT_OPTIMIZER_ADAM, 3, -0.1}, {CT_OPTIMIZER_ADAM, 4, 0},
             {CT_OPTIMIZER_ADAMW, 5, -1}, {CT_OPTIMIZER_ADAM, 6, -2}, {CT_OPTIMIZER_ADAM, 6, NAN}};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; ++k) {
    o = ct_optimizer_default_options(bad[k].kind);
    double *f[7] = {&o.learning_rate, &o.momentum,     &o.beta1,           &o.beta2,
                    &o.epsilon,       &o.weight_decay, &o.clip_global_norm};
    *f[bad[k].field] = bad[k].value;
    op = (ct_optimizer *)&F;
    BAD(ct_optimizer_create(F.ctx, &o, &op), CT_ERR_INVALID);
    cr_assert_null(op);
  }
}
static void r_optimizer_apply(const row *r) {
  (void)r;
  ct_optimizer *op = NULL;
  OK(ct_optimizer_create(F.ctx, NULL, &op));
  ct_tensor *var2 = NULL, *gd = t_of(F.ctx, DT_OTHER, 2, S23, 0);
  OK(ct_variable_create(F.b, "w2", true, &var2));
  ct_tensor *v1[1] = {F.var}, *g1[1] = {F.a}, *gs[1] = {F.b}, *gdt[1] = {gd}, *plain[1] = {F.a}, *dead[1] = {F.dead};
  ct_tensor *vv[2] = {F.var, F.var}, *gg[2] = {F.a, F.a}, *fo[1] = {F.foreign};
  BAD(ct_optimizer_apply(NULL, g1, v1, 1), CT_ERR_NULL);
  BAD(ct_optimizer_apply(F.dead_opt, g1, v1, 1), CT_ERR_RELEASED);
  BAD(ct_optimizer_apply((ct_optimizer *)F.a, g1, v1, 1), CT_ERR_INVALID);
  BAD(ct_optimizer_apply(op, NULL, v1, 1), CT_ERR_NULL);
  BAD(ct_optimizer_apply(op, g1, NULL, 1), CT_ERR_NULL);
  BAD(ct_optimizer_apply(op, g1, v1, -1), CT_ERR_INVALID);
  BAD(ct_optimizer_apply(op, g1, plain, 1), CT_ERR_INVALID);   /* not a variable */
  BAD(ct_optimizer_apply(op, gs, v1, 1), CT_ERR_SHAPE);
  BAD(ct_optimizer_apply(op, gdt, v1, 1), CT_ERR_DTYPE);
  BAD(ct_optimizer_apply(op, dead, v1, 1), CT_ERR_RELEASED);
  BAD(ct_optimizer_apply(op, gg, vv, 2), CT_ERR_INVALID);      /* a variable twice */
  BAD(ct_optimizer_apply(op, fo, v1, 1), CT_ERR_CONTEXT);
  SENT(ct_optimizer_iterations(op), (int64_t)0); /* nothing was applied; assert_alive checks the variable */
  ct_optimizer_free(op);
  ct_tensor_free(var2);
  ct_tensor_free(gd);
}
static void r_optimizer_set_schedule(const row *r) {
  (void)r;
  ct_optimizer *op = NULL;
  OK(ct_optimizer_create(F.ctx, NULL, &op));
  ct_lr_schedule good = ct_lr_schedule_default(CT_LR_COSINE, 0.1), bad = good;
  bad.decay_steps = -5;
  BAD(ct_optimizer_set_schedule(NULL, &good), CT_ERR_NULL);
  BAD(ct_optimizer_set_schedule(F.dead_opt, &good), CT_ERR_RELEASED);
  BAD(ct_optimizer_set_schedule(op, &bad), CT_ERR_INVALID);
  SENT(ct_optimizer_learning_rate(op), 0.001);
  OK(ct_optimizer_set_schedule(op, NULL));
  ct_optimizer_free(op);
}
static void r_lr_schedule_default(const row *r) {
  (void)r;
  ct_lr_schedule s = ct_lr_schedule_default((ct_lr_schedule_kind)99, -1);
  SENT(ct_lr_schedule_value(&s, 0), 0.0); /* invalid kind and rate: no rate */
}
static void r_lr_schedule_value(const row *r) {
  (void)r;
  ct_lr_schedule s = ct_lr_schedule_default(CT_LR_STEP, 0.1);
  SENT(ct_lr_schedule_value(NULL, 0), 0.0);
  SENT(ct_lr_schedule_value(&s, -1), 0.0);
  s.decay_rate = NAN;
  SENT(ct_lr_schedule_value(&s, 3), 0.0);
}
static void r_optimizer_set_learning_rate(const row *r) {
  (void)r;
  ct_optimizer *op = NULL;
  OK(ct_optimizer_create(F.ctx, NULL, &op));
  BAD(ct_optimizer_set_learning_rate(NULL, 0.1), CT_ERR_NULL);
  BAD(ct_optimizer_set_learning_rate(F.dead_opt, 0.1), CT_ERR_RELEASED);
  BAD(ct_optimizer_set_learning_rate(op, 0), CT_ERR_INVALID);
  BAD(ct_optimizer_set_learning_rate(op, -1), CT_ERR_INVALID);
  BAD(ct_optimizer_set_learning_rate(op, NAN), CT_ERR_INVALID);
  BAD(ct_optimizer_set_learning_rate(op, INFINITY), CT_ERR_INVALID);
  SENT(ct_optimizer_learning_rate(op), 0.001);
  ct_optimizer_free(op);
}
static void r_optimizer_learning_rate(const row *r) {
  (void)r;
  SENT(ct_optimizer_learning_rate(NULL), 0.0);
  SENT(ct_optimizer_learning_rate(F.dead_opt), 0.0);
}
static void r_optimizer_iterations(const row *r) {
  (void)r;
  SENT(ct_optimizer_iterations(NULL), (int64_t)-1);
  SENT(ct_optimizer_iterations(F.dead_opt), (int64_t)-1);
}
static void r_optimizer_options_get(const row *r) {
  (void)r;
  ct_optimizer_options o = ct_optimizer_options_get(NULL);
  SENT(o.learning_rate, 0.0);
  o = ct_optimizer_options_get(F.dead_opt);
  SENT(o.learning_rate, 0.0);
}
static void r_optimizer_free(const row *r) {
  (void)r;
  ct_optimizer_free(NULL);
  ct_optimizer_free(F.dead_opt); /* freed already: nothing */
  ct_optimizer_free((ct_optimizer *)F.a); /* not an optimizer: nothing */
  F.tried += 3;
}
static void r_clip_by_global_norm(const row *r) {
  (void)r;
  ct_tensor *g2[2] = {F.a, F.foreign}, *g1[1] = {F.a}, *dead[1] = {F.dead}, *c[2] = {SENTINEL, SENTINEL}, *n = SENTINEL;
  BAD(ct_clip_by_global_norm(NULL, 1, 1.0, c, &n), CT_ERR_NULL);
  BAD(ct_clip_by_global_norm(g1, 1, 1.0, NULL, &n), CT_ERR_NULL);
  BAD(ct_clip_by_global_norm(g1, -1, 1.0, c, &n), CT_ERR_INVALID);
  BAD(ct_clip_by_global_norm(g1, 1, 0.0, c, &n), CT_ERR_INVALID);
  BAD(ct_clip_by_global_norm(g1, 1, -1.0, c, &n), CT_ERR_INVALID);
  BAD(ct_clip_by_global_norm(g1, 1, NAN, c, &n), CT_ERR_INVALID);
  BAD(ct_clip_by_global_norm(dead, 1, 1.0, c, &n), CT_ERR_RELEASED);
  BAD(ct_clip_by_global_norm(g2, 2, 1.0, c, &n), CT_ERR_CONTEXT);
  cr_assert(c[0] == NULL && n == NULL);
}

/* checkpoints */
static const char *nn_path(const char *name) {
  static char p[256];
  if (!nn_dir[0]) {
    snprintf(nn_dir, sizeof nn_dir, "/tmp/cltape-bad-inputs-XXXXXX");
    cr_assert(mkdtemp(nn_dir));
  }
  snprintf(p, sizeof p, "%s/%s", nn_dir, name);
  return p;
}
static void r_checkpoint_save(const row *r) {
  (void)r;
  ct_module *m = nn_dense();
  const char *k[2] = {"cltape.step", "x"}, *v[2] = {"1", "2"}, *kn[1] = {NULL};
  char path[256];
  snprintf(path, sizeof path, "%s", nn_path("m.safetensors"));
  BAD(ct_checkpoint_save(NULL, m, NULL, NULL, NULL, 0), CT_ERR_NULL);
  BAD(ct_checkpoint_save(path, NULL, NULL, NULL, NULL, 0), CT_ERR_NULL);
  BAD(ct_checkpoint_save(path, F.dead_mod, NULL, NULL, NULL, 0), CT_ERR_RELEASED);
  BAD(ct_checkpoint_save(path, m, F.dead_opt, NULL, NULL, 0), CT_ERR_RELEASED);
  BAD(ct_checkpoint_save(path, m, NULL, NULL, v, 1), CT_ERR_NULL);
  BAD(ct_checkpoint_save(path, m, NULL, kn, v, 1), CT_ERR_NULL);
  BAD(ct_checkpoint_save(path, m, NULL, k, v, -1), CT_ERR_INVALID);
  BAD(ct_checkpoint_save(path, m, NULL, k, v, 1), CT_ERR_INVALID); /* "cltape." keys are the library's */
  BAD(ct_checkpoint_save(nn_path("no/such/dir/m.safetensors"), m, NULL, NULL, NULL, 0), CT_ERR_IO);
  BAD(ct_checkpoint_save(nn_dir, m, NULL, NULL, NULL, 0), CT_ERR_IO); /* a directory */
  ct_module_free(m);
}
static void r_checkpoint_load(const row *r) {
  (void)r;
  ct_module *m = nn_dense(), *other = NULL;
  OK(ct_dense_create(F.ctx, 4, 2, CT_ACTIVATION_NONE, NULL, &other));
  char path[256], junk[256];
  snprintf(path, sizeof path, "%s", nn_path("m.safetensors"));
  snprintf(junk, sizeof junk, "%s", nn_path("junk.safetensors"));
  OK(ct_checkpoint_save(path, m, NULL, NULL, NULL, 0));
  FILE *f = fopen(junk, "wb");
  cr_assert(f);
  fputs("not a checkpoint at all", f);
  fclose(f);
  BAD(ct_checkpoint_load(NULL, m, NULL), CT_ERR_NULL);
  BAD(ct_checkpoint_load(path, NULL, NULL), CT_ERR_NULL);
  BAD(ct_checkpoint_load(path, F.dead_mod, NULL), CT_ERR_RELEASED);
  BAD(ct_checkpoint_load(path, m, F.dead_opt), CT_ERR_RELEASED);
  BAD(ct_checkpoint_load(nn_path("missing.safetensors"), m, NULL), CT_ERR_IO);
  BAD(ct_checkpoint_load(junk, m, NULL), CT_ERR_FORMAT);
  BAD(ct_checkpoint_load(path, other, NULL), CT_ERR_MISMATCH);
  ct_module_free(m);
  ct_module_free(other);
}
static void r_checkpoint_metadata(const row *r) {
  (void)r;
  ct_module *m = nn_dense();
  char path[256], value[16];
  snprintf(path, sizeof path, "%s", nn_path("meta.safetensors"));
  const char *k[1] = {"note"}, *v[1] = {"a value longer than sixteen bytes"};
  OK(ct_checkpoint_save(path, m, NULL, k, v, 1));
  BAD(ct_checkpoint_metadata(NULL, "note", value, sizeof value), CT_ERR_NULL);
  BAD(ct_checkpoint_metadata(path, NULL, value, sizeof value), CT_ERR_NULL);
  BAD(ct_checkpoint_metadata(path, "note", NULL, sizeof value), CT_ERR_NULL);
  BAD(ct_checkpoint_metadata(path, "absent", value, sizeof value), CT_ERR_NOT_FOUND);
  BAD(ct_checkpoint_metadata(nn_path("missing.safetensors"), "note", value, sizeof value), CT_ERR_IO);
  OK(ct_checkpoint_metadata(path, "note", value, sizeof value)); /* truncated, terminated */
  cr_assert_eq(strlen(value), sizeof value - 1);
  F.tried++;
  ct_module_free(m);
}

static void r_tensors_save(const row *r) {
  (void)r;
  char path[256];
  snprintf(path, sizeof path, "%s", nn_path("t.safetensors"));
  const ct_tensor *ts[2] = {F.a, F.b}, *dead[1] = {F.dead}, *none[1] = {NULL};
  const char *names[2] = {"a", "b"}, *twice[2] = {"a", "a"}, *null_name[2] = {"a", NULL};
  BAD(ct_tensors_save(NULL, ts, names, 2), CT_ERR_NULL);
  BAD(ct_tensors_save(path, NULL, names, 2), CT_ERR_NULL);
  BAD(ct_tensors_save(path, ts, NULL, 2), CT_ERR_NULL);
  BAD(ct_tensors_save(path, ts, null_name, 2), CT_ERR_NULL);
  BAD(ct_tensors_save(path, none, names, 1), CT_ERR_NULL);
  BAD(ct_tensors_save(path, dead, names, 1), CT_ERR_RELEASED);
  BAD(ct_tensors_save(path, ts, twice, 2), CT_ERR_INVALID);
  BAD(ct_tensors_save(path, ts, names, -1), CT_ERR_INVALID);
  OK(ct_tensors_save(path, ts, names, 2));
  F.tried++;
}
static void r_tensors_load(const row *r) {
  (void)r;
  char path[256], junk[256];
  snprintf(path, sizeof path, "%s", nn_path("t.safetensors"));
  snprintf(junk, sizeof junk, "%s", nn_path("tjunk.safetensors"));
  const ct_tensor *ts[1] = {F.a};
  const char *names[1] = {"a"};
  OK(ct_tensors_save(path, ts, names, 1));
  FILE *f = fopen(junk, "wb");
  cr_assert(f);
  fputs("not a tensor file at all", f);
  fclose(f);
  int n;
  char **nm;
  ct_tensor **t;
  BAD(ct_tensors_load(NULL, path, &n, &nm, &t), CT_ERR_NULL);
  BAD(ct_tensors_load(F.dead_ctx, path, &n, &nm, &t), CT_ERR_RELEASED);
  BAD(ct_tensors_load(F.ctx, NULL, &n, &nm, &t), CT_ERR_NULL);
  BAD(ct_tensors_load(F.ctx, path, NULL, &nm, &t), CT_ERR_NULL);
  BAD(ct_tensors_load(F.ctx, path, &n, NULL, &t), CT_ERR_NULL);
  BAD(ct_tensors_load(F.ctx, path, &n, &nm, NULL), CT_ERR_NULL);
  BAD(ct_tensors_load(F.ctx, nn_path("missing.safetensors"), &n, &nm, &t), CT_ERR_IO);
  BAD(ct_tensors_load(F.ctx, junk, &n, &nm, &t), CT_ERR_FORMAT);
  OK(ct_tensors_load(F.ctx, path, &n, &nm, &t));
  cr_assert_eq(n, 1);
  ct_tensors_load_free(n, nm, t);
  F.tried++;
}
static void r_tensors_load_free(const row *r) {
  (void)r;
  ct_tensors_load_free(0, NULL, NULL);
  ct_tensors_load_free(3, NULL, NULL);
  F.tried += 2;
}

/* IDX datasets: four 3x3 images and their labels written here, and the fuzzer's near misses */
static void write_bytes(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}
static ct_idx_dataset *nn_dataset(char *img, char *lab) {
  unsigned char ib[4 + 12 + 36] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 3};
  unsigned char lb[4 + 4 + 4] = {0, 0, 8, 1, 0, 0, 0, 4, 1, 0, 2, 1};
  for (int i = 0; i < 36; ++i) ib[16 + i] = (unsigned char)(i * 7);
  snprintf(img, 256, "%s", nn_path("images.idx"));
  write_bytes(img, ib, sizeof ib);
  snprintf(lab, 256, "%s", nn_path("labels.idx"));
  write_bytes(lab, lb, sizeof lb);
  ct_idx_dataset *ds = NULL;
  OK(ct_idx_dataset_open(F.ctx, img, lab, NULL, &ds));
  return ds;
}
/* A freed dataset. */
static ct_idx_dataset *nn_dead_dataset(void) {
  char img[256], lab[256];
  ct_idx_dataset *ds = nn_dataset(img, lab);
  ct_idx_dataset_free(ds);
  return ds;
}
/* NumPy files and general datasets: files written here, the fuzzer's near misses */
static void r_tensor_save_npy(const row *r) {
  (void)r;
  BAD(ct_tensor_save_npy(NULL, nn_path("a.npy")), CT_ERR_NULL);
  BAD(ct_tensor_save_npy(F.dead, nn_path("a.npy")), CT_ERR_RELEASED);
  BAD(ct_tensor_save_npy(F.orphan, nn_path("a.npy")), CT_ERR_RELEASED);
  BAD(ct_tensor_save_npy(F.a, NULL), CT_ERR_NULL);
  BAD(ct_tensor_save_npy(F.a, nn_path("no/such/dir/a.npy")), CT_ERR_IO);
  OK(ct_tensor_save_npy(F.a, nn_path("a.npy")));
  F.tried++;
}
static void r_tensor_load_npy(const row *r) {
  (void)r;
  char path[256], be[1024], cut[1024];
  snprintf(path, sizeof path, "%s", nn_path("a.npy"));
  snprintf(be, sizeof be, "%s/tests/fuzz/corpus/npy/near_big_endian.npy", CLTAPE_SOURCE_DIR);
  snprintf(cut, sizeof cut, "%s/tests/fuzz/corpus/npy/near_truncated.npy", CLTAPE_SOURCE_DIR);
  OK(ct_tensor_save_npy(F.a, path));
  ct_tensor *o;
  BADO(ct_tensor_load_npy(NULL, path, &o), CT_ERR_NULL);
  BADO(ct_tensor_load_npy(F.dead_ctx, path, &o), CT_ERR_RELEASED);
  BADO(ct_tensor_load_npy(F.ctx, NULL, &o), CT_ERR_NULL);
  BAD(ct_tensor_load_npy(F.ctx, path, NULL), CT_ERR_NULL);
  BADO(ct_tensor_load_npy(F.ctx, nn_path("missing.npy"), &o), CT_ERR_IO);
  BADO(ct_tensor_load_npy(F.ctx, cut, &o), CT_ERR_FORMAT);
  BADO(ct_tensor_load_npy(F.ctx, be, &o), CT_ERR_DTYPE);
}
static void r_tensor_load_npz(const row *r) {
  (void)r;
  char npz[1024], npy[1024];
  snprintf(npz, sizeof npz, "%s/tests/fuzz/corpus/npy/valid_deflated.npz", CLTAPE_SOURCE_DIR);
  snprintf(npy, sizeof npy, "%s/tests/fuzz/corpus/npy/valid_f4.npy", CLTAPE_SOURCE_DIR);
  ct_tensor *o;
  BADO(ct_tensor_load_npz(NULL, npz, "x", &o), CT_ERR_NULL);
  BADO(ct_tensor_load_npz(F.dead_ctx, npz, "x", &o), CT_ERR_RELEASED);
  BADO(ct_tensor_load_npz(F.ctx, NULL, "x", &o), CT_ERR_NULL);
  BADO(ct_tensor_load_npz(F.ctx, npz, NULL, &o), CT_ERR_NULL);
  BAD(ct_tensor_load_npz(F.ctx, npz, "x", NULL), CT_ERR_NULL);
  BADO(ct_tensor_load_npz(F.ctx, npz, "z", &o), CT_ERR_NOT_FOUND);
  BADO(ct_tensor_load_npz(F.ctx, npy, "x", &o), CT_ERR_FORMAT);
  BADO(ct_tensor_load_npz(F.ctx, nn_path("missing.npz"), "x", &o), CT_ERR_IO);
}
/* A dataset of 4 examples of 3 float32 features, labels 1 0 2 1. */
static const float nn_feat[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const int32_t nn_lab[4] = {1, 0, 2, 1};
static const int64_t nn_shape[2] = {4, 3};
static ct_dataset *nn_any_dataset(void) {
  ct_dataset *ds = NULL;
  OK(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, nn_feat, nn_lab, NULL, &ds));
  return ds;
}
static ct_dataset *nn_dead_any_dataset(void) {
  ct_dataset *ds = nn_any_dataset();
  ct_dataset_free(ds);
  return ds;
}
static void r_dataset_default_options(const row *r) {
  (void)r;
  ct_dataset_options o = ct_dataset_default_options();
  SENT(o.dtype, CT_FLOAT32);
  SENT(o.scale, 1.0);
  SENT(o.limit, (int64_t)0);
}
static void r_dataset_from_arrays(const row *r) {
  (void)r;
  ct_dataset *o = (ct_dataset *)&F;
  ct_dataset_options bad = ct_dataset_default_options(), neg = bad, f64 = bad;
  bad.dtype = (ct_dtype)5;
  neg.limit = -1;
  f64.dtype = CT_FLOAT64;
  const int32_t negl[4] = {0, -1, 0, 0};
  const int64_t negs[2] = {4, -3};
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, nn_feat, nn_lab, NULL, NULL), CT_ERR_NULL);
  BAD(ct_dataset_from_arrays(NULL, CT_FLOAT32, 2, nn_shape, nn_feat, nn_lab, NULL, &o), CT_ERR_NULL);
  cr_assert_null(o);
  BAD(ct_dataset_from_arrays(F.dead_ctx, CT_FLOAT32, 2, nn_shape, nn_feat, nn_lab, NULL, &o), CT_ERR_RELEASED);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, NULL, nn_feat, nn_lab, NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, NULL, nn_lab, NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, nn_feat, NULL, NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 0, nn_shape, nn_feat, nn_lab, NULL, &o), CT_ERR_SHAPE);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 9, nn_shape, nn_feat, nn_lab, NULL, &o), CT_ERR_SHAPE);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, negs, nn_feat, nn_lab, NULL, &o), CT_ERR_SHAPE);
  BAD(ct_dataset_from_arrays(F.ctx, (ct_dtype)-1, 2, nn_shape, nn_feat, nn_lab, NULL, &o), CT_ERR_DTYPE);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, nn_feat, nn_lab, &bad, &o), CT_ERR_DTYPE);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, nn_feat, nn_lab, &neg, &o), CT_ERR_INVALID);
  BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, nn_feat, negl, NULL, &o), CT_ERR_INVALID);
  if (!F.fp64) BAD(ct_dataset_from_arrays(F.ctx, CT_FLOAT32, 2, nn_shape, nn_feat, nn_lab, &f64, &o), CT_ERR_UNSUPPORTED);
  cr_assert_null(o);
}
static void r_dataset_from_tensors(const row *r) {
  (void)r;
  ct_dataset *o = (ct_dataset *)&F;
  ct_tensor *lab = ts_tensor(F.ctx, CT_INT32, 1, (const int64_t[]){2}, (const double[]){0, 1});
  ct_tensor *lab3 = ts_tensor(F.ctx, CT_INT32, 1, (const int64_t[]){3}, (const double[]){0, 1, 0});
  ct_tensor *lab_other = ts_tensor(F.other, CT_INT32, 1, (const int64_t[]){2}, (const double[]){0, 1});
  BAD(ct_dataset_from_tensors(F.a, lab, NULL), CT_ERR_NULL);
  BAD(ct_dataset_from_tensors(NULL, lab, &o), CT_ERR_NULL);
  cr_assert_null(o);
  BAD(ct_dataset_from_tensors(F.a, NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_from_tensors(F.dead, lab, &o), CT_ERR_RELEASED);
  BAD(ct_dataset_from_tensors(F.orphan, lab, &o), CT_ERR_RELEASED);
  BAD(ct_dataset_from_tensors(F.a, lab_other, &o), CT_ERR_CONTEXT);
  BAD(ct_dataset_from_tensors(F.s, lab, &o), CT_ERR_SHAPE);
  BAD(ct_dataset_from_tensors(F.a, F.i, &o), CT_ERR_SHAPE);
  BAD(ct_dataset_from_tensors(F.a, F.v, &o), CT_ERR_DTYPE);
  BAD(ct_dataset_from_tensors(F.a, lab3, &o), CT_ERR_MISMATCH);
  cr_assert_null(o);
  ct_tensor_free(lab), ct_tensor_free(lab3), ct_tensor_free(lab_other);
}
static void r_dataset_open_npy(const row *r) {
  (void)r;
  char x[256], y[256], yf[256], cut[1024];
  snprintf(x, sizeof x, "%s", nn_path("dx.npy"));
  snprintf(y, sizeof y, "%s", nn_path("dy.npy"));
  snprintf(yf, sizeof yf, "%s", nn_path("dyf.npy"));
  snprintf(cut, sizeof cut, "%s/tests/fuzz/corpus/npy/near_truncated.npy", CLTAPE_SOURCE_DIR);
  ct_tensor *lab = ts_tensor(F.ctx, CT_INT32, 1, (const int64_t[]){2}, (const double[]){0, 1});
  OK(ct_tensor_save_npy(F.a, x));
  OK(ct_tensor_save_npy(lab, y));
  OK(ct_tensor_save_npy(F.v, yf));
  ct_tensor_free(lab);
  ct_dataset *o = (ct_dataset *)&F;
  ct_dataset_options neg = ct_dataset_default_options();
  neg.limit = -2;
  BAD(ct_dataset_open_npy(F.ctx, x, y, NULL, NULL), CT_ERR_NULL);
  BAD(ct_dataset_open_npy(NULL, x, y, NULL, &o), CT_ERR_NULL);
  cr_assert_null(o);
  BAD(ct_dataset_open_npy(F.dead_ctx, x, y, NULL, &o), CT_ERR_RELEASED);
  BAD(ct_dataset_open_npy(F.ctx, NULL, y, NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_open_npy(F.ctx, x, NULL, NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_open_npy(F.ctx, nn_path("missing.npy"), y, NULL, &o), CT_ERR_IO);
  BAD(ct_dataset_open_npy(F.ctx, cut, y, NULL, &o), CT_ERR_FORMAT);
  BAD(ct_dataset_open_npy(F.ctx, x, yf, NULL, &o), CT_ERR_FORMAT);
  BAD(ct_dataset_open_npy(F.ctx, x, x, NULL, &o), CT_ERR_FORMAT);
  BAD(ct_dataset_open_npy(F.ctx, x, y, &neg, &o), CT_ERR_INVALID);
  cr_assert_null(o);
}
static void r_dataset_open_npz(const row *r) {
  (void)r;
  char npz[1024];
  snprintf(npz, sizeof npz, "%s/tests/fuzz/corpus/npy/valid_stored.npz", CLTAPE_SOURCE_DIR); /* x (2, 3), y (2,) */
  ct_dataset *o = (ct_dataset *)&F;
  BAD(ct_dataset_open_npz(F.ctx, npz, "x", "y", NULL, NULL), CT_ERR_NULL);
  BAD(ct_dataset_open_npz(NULL, npz, "x", "y", NULL, &o), CT_ERR_NULL);
  cr_assert_null(o);
  BAD(ct_dataset_open_npz(F.dead_ctx, npz, "x", "y", NULL, &o), CT_ERR_RELEASED);
  BAD(ct_dataset_open_npz(F.ctx, NULL, "x", "y", NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_open_npz(F.ctx, npz, NULL, "y", NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_open_npz(F.ctx, npz, "x", NULL, NULL, &o), CT_ERR_NULL);
  BAD(ct_dataset_open_npz(F.ctx, npz, "x", "q", NULL, &o), CT_ERR_NOT_FOUND);
  BAD(ct_dataset_open_npz(F.ctx, npz, "x", "x", NULL, &o), CT_ERR_FORMAT);
  BAD(ct_dataset_open_npz(F.ctx, nn_path("missing.npz"), "x", "y", NULL, &o), CT_ERR_IO);
  cr_assert_null(o);
  OK(ct_dataset_open_npz(F.ctx, npz, "x", "y", NULL, &o));
  ct_dataset_free(o);
  F.tried++;
}
static void r_dataset_size(const row *r) {
  (void)r;
  SENT(ct_dataset_size(NULL), (int64_t)-1);
  SENT(ct_dataset_size(nn_dead_any_dataset()), (int64_t)-1);
  SENT(ct_dataset_size((const ct_dataset *)F.a), (int64_t)-1);
}
static void r_dataset_num_classes(const row *r) {
  (void)r;
  SENT(ct_dataset_num_classes(NULL), -1);
  SENT(ct_dataset_num_classes(nn_dead_any_dataset()), -1);
}
static void r_dataset_example_shape(const row *r) {
  (void)r;
  ct_dataset *ds = nn_any_dataset();
  int rank;
  int64_t shape[8];
  BAD(ct_dataset_example_shape(NULL, &rank, shape), CT_ERR_NULL);
  BAD(ct_dataset_example_shape(nn_dead_any_dataset(), &rank, shape), CT_ERR_RELEASED);
  BAD(ct_dataset_example_shape((const ct_dataset *)F.a, &rank, shape), CT_ERR_INVALID);
  BAD(ct_dataset_example_shape(ds, NULL, shape), CT_ERR_NULL);
  BAD(ct_dataset_example_shape(ds, &rank, NULL), CT_ERR_NULL);
  ct_dataset_free(ds);
}
static void r_dataset_shuffle(const row *r) {
  (void)r;
  BAD(ct_dataset_shuffle(NULL, 1), CT_ERR_NULL);
  BAD(ct_dataset_shuffle(nn_dead_any_dataset(), 1), CT_ERR_RELEASED);
  BAD(ct_dataset_shuffle((ct_dataset *)F.a, 1), CT_ERR_INVALID);
}
static void r_dataset_unshuffle(const row *r) {
  (void)r;
  BAD(ct_dataset_unshuffle(NULL), CT_ERR_NULL);
  BAD(ct_dataset_unshuffle(nn_dead_any_dataset()), CT_ERR_RELEASED);
}
static void r_dataset_num_batches(const row *r) {
  (void)r;
  ct_dataset *ds = nn_any_dataset();
  SENT(ct_dataset_num_batches(NULL, 2, false), (int64_t)-1);
  SENT(ct_dataset_num_batches(nn_dead_any_dataset(), 2, false), (int64_t)-1);
  SENT(ct_dataset_num_batches(ds, 0, false), (int64_t)-1);
  SENT(ct_dataset_num_batches(ds, INT64_MAX, false), (int64_t)1);
  SENT(ct_dataset_num_batches(ds, INT64_MAX, true), (int64_t)0);
  ct_dataset_free(ds);
}
static void r_dataset_batch(const row *r) {
  (void)r;
  ct_dataset *ds = nn_any_dataset();
  ct_tensor *x = SENTINEL, *y = SENTINEL;
  BAD(ct_dataset_batch(NULL, 0, 2, &x, &y), CT_ERR_NULL);
  cr_assert(x == NULL && y == NULL);
  BAD(ct_dataset_batch(nn_dead_any_dataset(), 0, 2, &x, &y), CT_ERR_RELEASED);
  BAD(ct_dataset_batch(ds, 0, 0, &x, &y), CT_ERR_INVALID);
  BAD(ct_dataset_batch(ds, -1, 2, &x, &y), CT_ERR_INVALID);
  BAD(ct_dataset_batch(ds, 2, 2, &x, &y), CT_ERR_INVALID); /* 4 examples: batches 0 and 1 */
  BAD(ct_dataset_batch(ds, INT64_MAX, INT64_MAX, &x, &y), CT_ERR_INVALID);
  cr_assert(x == NULL && y == NULL);
  ct_dataset_free(ds);
}
static void r_dataset_free(const row *r) {
  (void)r;
  ct_dataset_free(NULL);
  ct_dataset_free(nn_dead_any_dataset()); /* a second free: nothing */
  ct_dataset_free((ct_dataset *)F.a);     /* not a dataset: nothing */
  F.tried++;
}
static void r_idx_dataset_default_options(const row *r) {
  (void)r;
  ct_idx_dataset_options o = ct_idx_dataset_default_options();
  SENT(o.dtype, CT_FLOAT32);
  SENT(o.limit, (int64_t)0);
}
static void r_idx_dataset_open(const row *r) {
  (void)r;
  char img[256], lab[256], corrupt[1024], other[1024];
  ct_idx_dataset *ds = nn_dataset(img, lab), *o = (ct_idx_dataset *)&F;
  ct_idx_dataset_free(ds);
  snprintf(corrupt, sizeof corrupt, "%s/tests/fuzz/corpus/idx/near_truncated.idx", CLTAPE_SOURCE_DIR);
  snprintf(other, sizeof other, "%s/tests/fuzz/corpus/idx/labels_u8.idx", CLTAPE_SOURCE_DIR); /* 10 labels */
  ct_idx_dataset_options bad = ct_idx_dataset_default_options(), neg = bad;
  bad.dtype = CT_INT32;
  neg.limit = -3;
  BAD(ct_idx_dataset_open(F.ctx, img, lab, NULL, NULL), CT_ERR_NULL);
  BAD(ct_idx_dataset_open(NULL, img, lab, NULL, &o), CT_ERR_NULL);
  cr_assert_null(o);
  o = (ct_idx_dataset *)&F;
  BAD(ct_idx_dataset_open(F.dead_ctx, img, lab, NULL, &o), CT_ERR_RELEASED);
  cr_assert_null(o);
  BAD(ct_idx_dataset_open(F.ctx, NULL, lab, NULL, &o), CT_ERR_NULL);
  BAD(ct_idx_dataset_open(F.ctx, img, NULL, NULL, &o), CT_ERR_NULL);
  BAD(ct_idx_dataset_open(F.ctx, nn_path("missing.idx"), lab, NULL, &o), CT_ERR_IO);
  BAD(ct_idx_dataset_open(F.ctx, corrupt, lab, NULL, &o), CT_ERR_FORMAT);
  BAD(ct_idx_dataset_open(F.ctx, img, other, NULL, &o), CT_ERR_MISMATCH);
  BAD(ct_idx_dataset_open(F.ctx, img, lab, &bad, &o), CT_ERR_DTYPE);
  BAD(ct_idx_dataset_open(F.ctx, img, lab, &neg, &o), CT_ERR_INVALID);
  cr_assert_null(o);
}
static void r_idx_dataset_size(const row *r) {
  (void)r;
  SENT(ct_idx_dataset_size(NULL), (int64_t)-1);
  SENT(ct_idx_dataset_size(nn_dead_dataset()), (int64_t)-1);
}
static void r_idx_dataset_num_classes(const row *r) {
  (void)r;
  SENT(ct_idx_dataset_num_classes(NULL), -1);
  SENT(ct_idx_dataset_num_classes(nn_dead_dataset()), -1);
}
static void r_idx_dataset_example_shape(const row *r) {
  (void)r;
  char img[256], lab[256];
  ct_idx_dataset *ds = nn_dataset(img, lab);
  int rank;
  int64_t shape[8];
  BAD(ct_idx_dataset_example_shape(NULL, &rank, shape), CT_ERR_NULL);
  BAD(ct_idx_dataset_example_shape(nn_dead_dataset(), &rank, shape), CT_ERR_RELEASED);
  BAD(ct_idx_dataset_example_shape(ds, NULL, shape), CT_ERR_NULL);
  BAD(ct_idx_dataset_example_shape(ds, &rank, NULL), CT_ERR_NULL);
  ct_idx_dataset_free(ds);
}
static void r_idx_dataset_shuffle(const row *r) {
  (void)r;
  BAD(ct_idx_dataset_shuffle(NULL, 1), CT_ERR_NULL);
  BAD(ct_idx_dataset_shuffle(nn_dead_dataset(), 1), CT_ERR_RELEASED);
  BAD(ct_idx_dataset_shuffle((ct_idx_dataset *)F.a, 1), CT_ERR_INVALID);
}
static void r_idx_dataset_unshuffle(const row *r) {
  (void)r;
  BAD(ct_idx_dataset_unshuffle(NULL), CT_ERR_NULL);
  BAD(ct_idx_dataset_unshuffle(nn_dead_dataset()), CT_ERR_RELEASED);
}
static void r_idx_dataset_num_batches(const row *r) {
  (void)r;
  char img[256], lab[256];
  ct_idx_dataset *ds = nn_dataset(img, lab);
  SENT(ct_idx_dataset_num_batches(NULL, 2, false), (int64_t)-1);
  SENT(ct_idx_dataset_num_batches(nn_dead_dataset(), 2, false), (int64_t)-1);
  SENT(ct_idx_dataset_num_batches(ds, 0, false), (int64_t)-1);
  SENT(ct_idx_dataset_num_batches(ds, -3, true), (int64_t)-1);
  SENT(ct_idx_dataset_num_batches(ds, INT64_MAX, false), (int64_t)1); /* no overflow: one partial batch */
  SENT(ct_idx_dataset_num_batches(ds, INT64_MAX, true), (int64_t)0);
  ct_idx_dataset_free(ds);
}
static void r_idx_dataset_batch(const row *r) {
  (void)r;
  char img[256], lab[256];
  ct_idx_dataset *ds = nn_dataset(img, lab);
  ct_tensor *im = SENTINEL, *lb = SENTINEL;
  BAD(ct_idx_dataset_batch(NULL, 0, 2, &im, &lb), CT_ERR_NULL);
  BAD(ct_idx_dataset_batch(nn_dead_dataset(), 0, 2, &im, &lb), CT_ERR_RELEASED);
  BAD(ct_idx_dataset_batch(ds, 0, 0, &im, &lb), CT_ERR_INVALID);
  BAD(ct_idx_dataset_batch(ds, -1, 2, &im, &lb), CT_ERR_INVALID);
  BAD(ct_idx_dataset_batch(ds, 2, 2, &im, &lb), CT_ERR_INVALID); /* 4 examples: batches 0 and 1 */
  BAD(ct_idx_dataset_batch(ds, INT64_MAX, INT64_MAX, &im, &lb), CT_ERR_INVALID);
  cr_assert(im == NULL && lb == NULL);
  ct_idx_dataset_free(ds);
}
static void r_idx_dataset_free(const row *r) {
  (void)r;
  ct_idx_dataset_free(NULL);
  ct_idx_dataset_free(nn_dead_dataset()); /* a second free: nothing */
  ct_idx_dataset_free((ct_idx_dataset *)F.a); /* not a dataset: nothing */
  F.tried += 3;
}

/* ---- batch normalization, residual blocks, losses with options ------------------------------------ */
static void r_batch_norm(const row *r) {
  (void)r;
  ct_tensor *o, *g = t_of(F.ctx, CT_FLOAT32, 1, S3, 1), *gd = t_of(F.ctx, DT_OTHER, 1, S3, 1);
  ct_tensor *g2 = t_of(F.ctx, CT_FLOAT32, 1, (int64_t[]){2}, 1), *gf = t_of(F.other, CT_FLOAT32, 1, S3, 1);
  BAD(ct_batch_norm(F.a, g, g, 1e-3, NULL, NULL, NULL), CT_ERR_NULL);
  BADO(ct_batch_norm(NULL, g, g, 1e-3, &o, NULL, NULL), CT_ERR_NULL);
  BADO(ct_batch_norm(F.dead, g, g, 1e-3, &o, NULL, NULL), CT_ERR_RELEASED);
  BADO(ct_batch_norm(F.a, F.dead, g, 1e-3, &o, NULL, NULL), CT_ERR_RELEASED);
  BADO(ct_batch_norm(F.a, g, F.orphan, 1e-3, &o, NULL, NULL), CT_ERR_RELEASED);
  BADO(ct_batch_norm(F.i, NULL, NULL, 1e-3, &o, NULL, NULL), CT_ERR_DTYPE);
  BADO(ct_batch_norm(F.a, gd, NULL, 1e-3, &o, NULL, NULL), CT_ERR_DTYPE);
  BADO(ct_batch_norm(F.v, NULL, NULL, 1e-3, &o, NULL, NULL), CT_ERR_SHAPE); /* no batch axis */
  BADO(ct_batch_norm(F.s, NULL, NULL, 1e-3, &o, NULL, NULL), CT_ERR_SHAPE);
  BADO(ct_batch_norm(F.a, g2, NULL, 1e-3, &o, NULL, NULL), CT_ERR_SHAPE);  /* [2] for 3 channels */
  BADO(ct_batch_norm(F.a, NULL, F.a, 1e-3, &o, NULL, NULL), CT_ERR_SHAPE); /* not a vector */
  BADO(ct_batch_norm(F.a, gf, NULL, 1e-3, &o, NULL, NULL), CT_ERR_CONTEXT);
  BADO(ct_batch_norm(F.a, g, g, -1e-3, &o, NULL, NULL), CT_ERR_INVALID);
  BADO(ct_batch_norm(F.a, g, g, NAN, &o, NULL, NULL), CT_ERR_INVALID);
  BADO(ct_batch_norm(F.a, g, g, INFINITY, &o, NULL, NULL), CT_ERR_INVALID);
  ct_tensor *m = SENTINEL, *v = SENTINEL;
  BADO(ct_batch_norm(F.a, g2, g, 1e-3, &o, &m, &v), CT_ERR_SHAPE);
  cr_assert(m == NULL && v == NULL, "the statistics' out-parameters were not set to NULL");
  ct_tensor *all[] = {g, gd, g2, gf};
  ct_tensor_free_n(all, 4);
}
static void r_batch_norm_inference(const row *r) {
  (void)r;
  ct_tensor *o, *g = t_of(F.ctx, CT_FLOAT32, 1, S3, 1), *gd = t_of(F.ctx, DT_OTHER, 1, S3, 1);
  ct_tensor *g2 = t_of(F.ctx, CT_FLOAT32, 1, (int64_t[]){2}, 1), *gf = t_of(F.other, CT_FLOAT32, 1, S3, 1);
  BAD(ct_batch_norm_inference(F.a, g, g, g, g, 1e-3, NULL), CT_ERR_NULL);
  BADO(ct_batch_norm_inference(NULL, g, g, g, g, 1e-3, &o), CT_ERR_NULL);
  BADO(ct_batch_norm_inference(F.a, NULL, g, g, g, 1e-3, &o), CT_ERR_NULL);
  BADO(ct_batch_norm_inference(F.a, g, NULL, g, g, 1e-3, &o), CT_ERR_NULL);
  BADO(ct_batch_norm_inference(F.dead, g, g, g, g, 1e-3, &o), CT_ERR_RELEASED);
  BADO(ct_batch_norm_inference(F.a, g, F.dead, NULL, NULL, 1e-3, &o), CT_ERR_RELEASED);
  BADO(ct_batch_norm_inference(F.i, g, g, NULL, NULL, 1e-3, &o), CT_ERR_DTYPE);
  BADO(ct_batch_norm_inference(F.a, gd, g, NULL, NULL, 1e-3, &o), CT_ERR_DTYPE);
  BADO(ct_batch_norm_inference(F.s, g, g, NULL, NULL, 1e-3, &o), CT_ERR_SHAPE);
  BADO(ct_batch_norm_inference(F.a, g, g2, NULL, NULL, 1e-3, &o), CT_ERR_SHAPE);
  BADO(ct_batch_norm_inference(F.a, g, g, NULL, F.b, 1e-3, &o), CT_ERR_SHAPE);
  BADO(ct_batch_norm_inference(F.a, g, gf, NULL, NULL, 1e-3, &o), CT_ERR_CONTEXT);
  BADO(ct_batch_norm_inference(F.a, g, g, NULL, NULL, -1.0, &o), CT_ERR_INVALID);
  ct_tensor *all[] = {g, gd, g2, gf};
  ct_tensor_free_n(all, 4);
}
static void r_batch_norm_default_options(const row *r) {
  (void)r;
  ct_batch_norm_options o = ct_batch_norm_default_options();
  SENT(o.dtype, CT_FLOAT32);
  SENT(o.momentum, 0.99);
  SENT(o.epsilon, 1e-3);
  SENT(o.center && o.scale, true);
}
static void r_batch_norm_create(const row *r) {
  (void)r;
  ct_module *mo;
  ct_batch_norm_options bi = ct_batch_norm_default_options(), bm = bi, bn = bi, be = bi;
  bi.dtype = CT_INT32;
  bm.momentum = 1.5;
  bn.momentum = NAN;
  be.epsilon = -1;
  BAD(ct_batch_norm_create(F.ctx, 3, NULL, NULL), CT_ERR_NULL);
  BADM(ct_batch_norm_create(NULL, 3, NULL, &mo), CT_ERR_NULL);
  BADM(ct_batch_norm_create(F.dead_ctx, 3, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_batch_norm_create(F.ctx, 0, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_batch_norm_create(F.ctx, 3, &bi, &mo), CT_ERR_DTYPE);
  BADM(ct_batch_norm_create(F.ctx, 3, &bm, &mo), CT_ERR_INVALID);
  BADM(ct_batch_norm_create(F.ctx, 3, &bn, &mo), CT_ERR_INVALID);
  BADM(ct_batch_norm_create(F.ctx, 3, &be, &mo), CT_ERR_INVALID);
  BADM(ct_batch_norm_create(F.ctx, INT64_MAX, NULL, &mo), CT_ERR_SHAPE);
}
static void r_residual_create(const row *r) {
  (void)r;
  ct_module *mo, *d = nn_dense(), *p = nn_dense(), *fo = NULL, *seq = NULL, *in_seq = nn_dense();
  OK(ct_flatten_create(F.other, NULL, &fo));
  OK(ct_sequential_create(F.ctx, NULL, &seq));
  OK(ct_sequential_add(seq, in_seq));
  BAD(ct_residual_create(F.ctx, d, NULL, NULL, NULL), CT_ERR_NULL);
  BADM(ct_residual_create(NULL, d, NULL, NULL, &mo), CT_ERR_NULL);
  BADM(ct_residual_create(F.dead_ctx, d, NULL, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_residual_create(F.ctx, NULL, NULL, NULL, &mo), CT_ERR_NULL);
  BADM(ct_residual_create(F.ctx, F.dead_mod, NULL, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_residual_create(F.ctx, d, F.dead_mod, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_residual_create(F.ctx, (ct_module *)F.a, NULL, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_residual_create(F.ctx, fo, NULL, NULL, &mo), CT_ERR_CONTEXT);
  BADM(ct_residual_create(F.ctx, d, fo, NULL, &mo), CT_ERR_CONTEXT);
  BADM(ct_residual_create(F.ctx, d, d, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_residual_create(F.ctx, in_seq, NULL, NULL, &mo), CT_ERR_INVALID); /* already in a Sequential */
  BADM(ct_residual_create(F.ctx, d, in_seq, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_residual_create(F.ctx, d, p, "a/b", &mo), CT_ERR_INVALID);
  ct_module *all[] = {d, p, fo, seq, in_seq};
  for (int k = 0; k < 5; ++k) ct_module_free(all[k]);
}
/* the options every loss checks */
typedef ct_status (*loss_fn)(const ct_tensor *, const ct_tensor *, const ct_loss_options *, ct_tensor **);
static void loss_options_rows(loss_fn fn, const ct_tensor *pred, const ct_tensor *target) {
  ct_tensor *o;
  ct_loss_options bad[6] = {{.label_smoothing = 1.5}, {.label_smoothing = -0.1}, {.label_smoothing = NAN},
                            {.reduction = (ct_reduction)7}, {.epsilon = 0.5}, {.delta = -1}};
  for (int k = 0; k < 6; ++k) BADO(fn(pred, target, &bad[k], &o), CT_ERR_INVALID);
  ct_loss_options inf = {.delta = INFINITY}, neg = {.epsilon = -1e-3};
  BADO(fn(pred, target, &inf, &o), CT_ERR_INVALID);
  BADO(fn(pred, target, &neg, &o), CT_ERR_INVALID);
}
static void r_softmax_cross_entropy_ex(const row *r) {
  (void)r;
  ct_tensor *o, *lab = nn_labels(2), *lab3 = nn_labels(3), *logi = t_of(F.ctx, CT_INT32, 2, S23, 0);
  ct_tensor *flab = t_of(F.ctx, CT_FLOAT32, 1, (int64_t[]){2}, 0), *fo = t_of(F.other, CT_INT32, 1, (int64_t[]){2}, 0);
  BAD(ct_softmax_cross_entropy_ex(F.a, lab, NULL, NULL), CT_ERR_NULL);
  BADO(ct_softmax_cross_entropy_ex(NULL, lab, NULL, &o), CT_ERR_NULL);
  BADO(ct_softmax_cross_entropy_ex(F.a, NULL, NULL, &o), CT_ERR_NULL);
  BADO(ct_softmax_cross_entropy_ex(F.dead, lab, NULL, &o), CT_ERR_RELEASED);
  BADO(ct_softmax_cross_entropy_ex(F.a, F.dead, NULL, &o), CT_ERR_RELEASED);
  BADO(ct_softmax_cross_entropy_ex(F.a, lab3, NULL, &o), CT_ERR_SHAPE);  /* 3 labels for 2 examples */
  BADO(ct_softmax_cross_entropy_ex(F.s, lab, NULL, &o), CT_ERR_SHAPE);   /* scalar logits */
  BADO(ct_softmax_cross_entropy_ex(F.a, flab, NULL, &o), CT_ERR_SHAPE);  /* a distribution of the wrong shape */
  BADO(ct_softmax_cross_entropy_ex(F.a, F.b, NULL, &o), CT_ERR_SHAPE);
  BADO(ct_softmax_cross_entropy_ex(logi, lab, NULL, &o), CT_ERR_DTYPE);  /* integer logits */
  BADO(ct_softmax_cross_entropy_ex(logi, F.a, NULL, &o), CT_ERR_DTYPE);
  BADO(ct_softmax_cross_entropy_ex(F.a, fo, NULL, &o), CT_ERR_CONTEXT);
  BADO(ct_softmax_cross_entropy_ex(F.a, F.foreign, NULL, &o), CT_ERR_CONTEXT);
  loss_options_rows(ct_softmax_cross_entropy_ex, F.a, lab);
  ct_tensor *all[] = {lab, lab3, logi, flab, fo};
  ct_tensor_free_n(all, 5);
}
static void pair_loss_row(loss_fn fn) {
  ct_tensor *o, *ai = t_of(F.ctx, CT_INT32, 2, S23, 0);
  BAD(fn(F.a, F.a, NULL, NULL), CT_ERR_NULL);
  BADO(fn(NULL, F.a, NULL, &o), CT_ERR_NULL);
  BADO(fn(F.a, NULL, NULL, &o), CT_ERR_NULL);
  BADO(fn(F.dead, F.a, NULL, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, F.orphan, NULL, &o), CT_ERR_RELEASED);
  BADO(fn(F.a, F.b, NULL, &o), CT_ERR_SHAPE);
  BADO(fn(F.a, F.v, NULL, &o), CT_ERR_SHAPE); /* broadcastable, but not equal */
  BADO(fn(F.a, F.d, NULL, &o), CT_ERR_DTYPE);
  BADO(fn(ai, ai, NULL, &o), CT_ERR_DTYPE);
  BADO(fn(F.a, F.foreign, NULL, &o), CT_ERR_CONTEXT);
  loss_options_rows(fn, F.a, F.a);
  ct_tensor_free(ai);
}
static void r_binary_cross_entropy(const row *r) {
  (void)r;
  pair_loss_row(ct_binary_cross_entropy);
}
static void r_huber_loss(const row *r) {
  (void)r;
  pair_loss_row(ct_huber_loss);
}
#define NORM_LOSS_ROWS                                                                                     \
  NR(batch_norm) NR(batch_norm_inference) NR(batch_norm_default_options) NR(batch_norm_create)             \
  NR(residual_create) NR(softmax_cross_entropy_ex) NR(binary_cross_entropy) NR(huber_loss)
/* ---- recurrent layers ------------------------------------------------------------------------ */
static void r_rnn_default_options(const row *r) {
  (void)r;
  ct_rnn_options o = ct_rnn_default_options();
  SENT(o.dtype, CT_FLOAT32);
  SENT(o.use_bias, true);
  SENT(o.unit_forget_bias, true);
  SENT(o.reset_after, true);
  SENT(o.recurrent_orthogonal, true);
}
typedef ct_status (*rnn_create_fn)(ct_context *, int64_t, int64_t, bool, const ct_rnn_options *, ct_module **);
static void rnn_create_row(rnn_create_fn fn) {
  ct_module *mo;
  ct_rnn_options di = ct_rnn_default_options(), dk = ct_rnn_default_options(), dr = ct_rnn_default_options();
  di.dtype = CT_INT32;
  dk.bias_initializer = (ct_initializer)77;
  dr.recurrent_orthogonal = false;
  dr.recurrent_initializer = (ct_initializer)-2;
  BAD(fn(F.ctx, 3, 2, false, NULL, NULL), CT_ERR_NULL);
  BADM(fn(NULL, 3, 2, false, NULL, &mo), CT_ERR_NULL);
  BADM(fn(F.dead_ctx, 3, 2, true, NULL, &mo), CT_ERR_RELEASED);
  BADM(fn(F.ctx, 0, 2, false, NULL, &mo), CT_ERR_INVALID);
  BADM(fn(F.ctx, 3, -2, false, NULL, &mo), CT_ERR_INVALID);
  BADM(fn(F.ctx, 3, 2, false, &di, &mo), CT_ERR_DTYPE);
  BADM(fn(F.ctx, 3, 2, false, &dk, &mo), CT_ERR_INVALID);
  BADM(fn(F.ctx, 3, 2, false, &dr, &mo), CT_ERR_INVALID);
  BADM(fn(F.ctx, INT64_MAX, 2, false, NULL, &mo), CT_ERR_SHAPE);
  BADM(fn(F.ctx, 3, INT64_MAX / 2, false, NULL, &mo), CT_ERR_SHAPE);
  BADM(fn(F.ctx, 100000, 100000, false, NULL, &mo), CT_ERR_OUT_OF_MEMORY);
  /* inputs that are not [batch, time >= 1, features] */
  ct_module *m = NULL;
  OK(fn(F.ctx, 3, 2, true, NULL, &m));
  ct_tensor *o, *x2 = t_of(F.ctx, CT_FLOAT32, 2, (const int64_t[]){2, 3}, 0);
  ct_tensor *xf = t_of(F.ctx, CT_FLOAT32, 3, (const int64_t[]){2, 4, 2}, 0);
  BADO(ct_module_call(m, x2, false, &o), CT_ERR_SHAPE);
  BADO(ct_module_call(m, xf, false, &o), CT_ERR_SHAPE);
  BADO(ct_module_call(m, F.dead, false, &o), CT_ERR_RELEASED);
  BADO(ct_module_call(m, NULL, false, &o), CT_ERR_NULL);
  ct_tensor_free(x2);
  ct_tensor_free(xf);
  ct_module_free(m);
}
static void r_lstm_create(const row *r) {
  (void)r;
  rnn_create_row(ct_lstm_create);
}
static void r_gru_create(const row *r) {
  (void)r;
  rnn_create_row(ct_gru_create);
}
#define RNN_ROWS NR(rnn_default_options) NR(lstm_create) NR(gru_create)

#define NR(fn) R("nn", fn)
#define NN_ROWS                                                                                              \
  NR(conv2d) NR(max_pool2d) NR(avg_pool2d) NR(dropout) NR(sparse_softmax_cross_entropy) NR(bias_add)             \
  NR(activation_name) NR(activate) NR(initializer_fans) NR(initialize) NR(module_create) NR(module_add_variable)  \
  NR(module_own_variable) NR(module_add) NR(module_call) NR(module_call_with) NR(module_variables)                \
  NR(module_trainable_variables) NR(module_find_variable) NR(module_set_trainable) NR(module_set_seed)            \
  NR(module_num_params) NR(module_name) NR(module_kind) NR(module_num_children) NR(module_child)                  \
  NR(module_summary) NR(module_retain) NR(module_free) NR(reset_module_names) NR(layer_default_options)          \
  NR(dense_create) NR(conv2d_create) NR(max_pool2d_create) NR(avg_pool2d_create) NR(flatten_create)              \
  NR(dropout_create) NR(activation_create) NR(sequential_create) NR(sequential_add) NR(softmax_cross_entropy)    \
  NR(mean_squared_error) NR(count_correct) NR(accuracy) NR(optimizer_default_options) NR(optimizer_kind_name)   \
  NR(optimizer_create) NR(optimizer_apply) NR(optimizer_set_learning_rate) NR(optimizer_learning_rate)          \
  NR(optimizer_iterations) NR(optimizer_options_get) NR(optimizer_free) NR(clip_by_global_norm)                 \
  NR(optimizer_set_schedule) NR(lr_schedule_default) NR(lr_schedule_value)                                      \
  NR(checkpoint_save) NR(checkpoint_load) NR(checkpoint_metadata) NR(tensors_save) NR(tensors_load)                \
  NR(tensors_load_free) NR(tensor_save_npy) NR(tensor_load_npy) NR(tensor_load_npz) NR(dataset_default_options)    \
  NR(dataset_from_arrays) NR(dataset_from_tensors) NR(dataset_open_npy) NR(dataset_open_npz) NR(dataset_size)      \
  NR(dataset_num_classes) NR(dataset_example_shape) NR(dataset_shuffle) NR(dataset_unshuffle)                      \
  NR(dataset_num_batches) NR(dataset_batch) NR(dataset_free) NR(idx_dataset_default_options)                       \
  NR(idx_dataset_open) NR(idx_dataset_size) NR(idx_dataset_num_classes) NR(idx_dataset_example_shape)           \
  NR(idx_dataset_shuffle) NR(idx_dataset_unshuffle) NR(idx_dataset_num_batches) NR(idx_dataset_batch)           \
  NR(idx_dataset_free)

/* ---- mixed precision: dynamic loss scaling ----------------------------------------------------- */
static void r_loss_scale_default(const row *r) {
  (void)r;
  SENT(ct_loss_scale_default().growth_interval, 2000); /* no argument to get wrong */
}
static void r_loss_scale_loss(const row *r) {
  (void)r;
  ct_tensor *o;
  ct_loss_scale ls = ct_loss_scale_default();
  BAD(ct_loss_scale_loss(&ls, F.s, NULL), CT_ERR_NULL);
  BADO(ct_loss_scale_loss(NULL, F.s, &o), CT_ERR_NULL);
  BADO(ct_loss_scale_loss(&ls, NULL, &o), CT_ERR_NULL);
  BADO(ct_loss_scale_loss(&ls, F.dead, &o), CT_ERR_RELEASED);
  BADO(ct_loss_scale_loss(&ls, F.orphan, &o), CT_ERR_RELEASED);
  BADO(ct_loss_scale_loss(&ls, F.i, &o), CT_ERR_DTYPE);
  ls.scale = 0;
  BADO(ct_loss_scale_loss(&ls, F.s, &o), CT_ERR_INVALID);
  ls = ct_loss_scale_default();
  ls.backoff_factor = 1;
  BADO(ct_loss_scale_loss(&ls, F.s, &o), CT_ERR_INVALID);
}
static void r_loss_scale_unscale(const row *r) {
  (void)r;
  ct_tensor *o[2];
  bool fin;
  ct_loss_scale ls = ct_loss_scale_default(), before = ls;
  ct_tensor *const g[2] = {F.a, F.v};
#define BADU(call, want)                                                                                    \
  do {                                                                                                      \
    o[0] = o[1] = SENTINEL;                                                                                 \
    BAD(call, want);                                                                                        \
    cr_assert(!o[0] && !o[1], "[%s] %s: the outputs were not set to NULL", F.row_name, #call);              \
    cr_assert(memcmp(&ls, &before, sizeof ls) == 0, "[%s] %s: the state changed", F.row_name, #call);       \
  } while (0)
  BAD(ct_loss_scale_unscale(&ls, g, 2, NULL, &fin), CT_ERR_NULL);
  BADU(ct_loss_scale_unscale(&ls, g, 2, o, NULL), CT_ERR_NULL);
  BADU(ct_loss_scale_unscale(NULL, g, 2, o, &fin), CT_ERR_NULL);
  BADU(ct_loss_scale_unscale(&ls, NULL, 2, o, &fin), CT_ERR_NULL);
  BAD(ct_loss_scale_unscale(&ls, g, -1, o, &fin), CT_ERR_INVALID);
  BADU(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){F.a, F.dead}, 2, o, &fin), CT_ERR_RELEASED);
  BADU(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){F.a, F.foreign}, 2, o, &fin), CT_ERR_CONTEXT);
  BADU(ct_loss_scale_unscale(&ls, (ct_tensor *const[]){F.i, F.a}, 2, o, &fin), CT_ERR_DTYPE);
  ls.growth_interval = 0;
  before = ls;
  BADU(ct_loss_scale_unscale(&ls, g, 2, o, &fin), CT_ERR_INVALID);
#undef BADU
}
/* ---- transformers: layer normalization, embeddings, attention and their layers ---- */
static void r_layer_norm(const row *r) {
  (void)r;
  ct_tensor *o, *b2 = t_of(F.ctx, CT_FLOAT32, 1, (int64_t[]){2}, 0), *vd = t_of(F.ctx, DT_OTHER, 1, S3, 0),
                *vf = t_of(F.other, CT_FLOAT32, 1, S3, 0);
  BAD(ct_layer_norm(F.a, F.v, F.v, 1e-5, NULL), CT_ERR_NULL);
  BADO(ct_layer_norm(NULL, F.v, F.v, 1e-5, &o), CT_ERR_NULL);
  BADO(ct_layer_norm(F.dead, F.v, F.v, 1e-5, &o), CT_ERR_RELEASED);
  BADO(ct_layer_norm(F.orphan, NULL, NULL, 1e-5, &o), CT_ERR_RELEASED);
  BADO(ct_layer_norm(F.a, F.dead, NULL, 1e-5, &o), CT_ERR_RELEASED);
  BADO(ct_layer_norm(F.a, NULL, F.dead, 1e-5, &o), CT_ERR_RELEASED);
  BADO(ct_layer_norm(F.i, NULL, NULL, 1e-5, &o), CT_ERR_DTYPE);
  BADO(ct_layer_norm(F.s, NULL, NULL, 1e-5, &o), CT_ERR_SHAPE);
  BADO(ct_layer_norm(F.a, b2, NULL, 1e-5, &o), CT_ERR_SHAPE);
  BADO(ct_layer_norm(F.a, NULL, F.a, 1e-5, &o), CT_ERR_SHAPE);
  BADO(ct_layer_norm(F.a, vd, NULL, 1e-5, &o), CT_ERR_DTYPE);
  BADO(ct_layer_norm(F.a, F.v, vf, 1e-5, &o), CT_ERR_CONTEXT);
  BADO(ct_layer_norm(F.a, NULL, NULL, -1e-5, &o), CT_ERR_INVALID);
  BADO(ct_layer_norm(F.a, NULL, NULL, NAN, &o), CT_ERR_INVALID);
  BADO(ct_layer_norm(F.a, NULL, NULL, INFINITY, &o), CT_ERR_INVALID);
  ct_tensor *tmp[] = {b2, vd, vf};
  ct_tensor_free_n(tmp, 3);
}
static void r_embedding_lookup(const row *r) {
  (void)r;
  ct_tensor *o, *idf = t_of(F.other, CT_INT32, 2, S23, 0);
  BAD(ct_embedding_lookup(F.a, F.i, NULL), CT_ERR_NULL);
  BADO(ct_embedding_lookup(NULL, F.i, &o), CT_ERR_NULL);
  BADO(ct_embedding_lookup(F.a, NULL, &o), CT_ERR_NULL);
  BADO(ct_embedding_lookup(F.dead, F.i, &o), CT_ERR_RELEASED);
  BADO(ct_embedding_lookup(F.a, F.dead, &o), CT_ERR_RELEASED);
  BADO(ct_embedding_lookup(F.orphan, F.i, &o), CT_ERR_RELEASED);
  BADO(ct_embedding_lookup(F.v, F.i, &o), CT_ERR_SHAPE);
  BADO(ct_embedding_lookup(F.r8, F.i, &o), CT_ERR_SHAPE);
  BADO(ct_embedding_lookup(F.a, F.a, &o), CT_ERR_DTYPE);
  BADO(ct_embedding_lookup(F.a, idf, &o), CT_ERR_CONTEXT);
  ct_tensor_free(idf);
}
static void r_scaled_dot_product_attention(const row *r) {
  (void)r;
  ct_tensor *o, *q3 = t_of(F.ctx, CT_FLOAT32, 2, (int64_t[]){3, 3}, 0);
  BAD(ct_scaled_dot_product_attention(F.a, F.a, F.a, true, NULL), CT_ERR_NULL);
  BADO(ct_scaled_dot_product_attention(NULL, F.a, F.a, true, &o), CT_ERR_NULL);
  BADO(ct_scaled_dot_product_attention(F.a, NULL, F.a, true, &o), CT_ERR_NULL);
  BADO(ct_scaled_dot_product_attention(F.a, F.a, NULL, true, &o), CT_ERR_NULL);
  BADO(ct_scaled_dot_product_attention(F.dead, F.a, F.a, false, &o), CT_ERR_RELEASED);
  BADO(ct_scaled_dot_product_attention(F.a, F.dead, F.a, false, &o), CT_ERR_RELEASED);
  BADO(ct_scaled_dot_product_attention(F.a, F.a, F.orphan, false, &o), CT_ERR_RELEASED);
  BADO(ct_scaled_dot_product_attention(F.i, F.i, F.i, false, &o), CT_ERR_DTYPE);
  BADO(ct_scaled_dot_product_attention(F.a, F.d, F.a, false, &o), CT_ERR_DTYPE);
  BADO(ct_scaled_dot_product_attention(F.v, F.v, F.v, false, &o), CT_ERR_SHAPE);
  BADO(ct_scaled_dot_product_attention(F.a, F.b, F.b, false, &o), CT_ERR_SHAPE);  /* 3 features, 2 */
  BADO(ct_scaled_dot_product_attention(F.a, F.a, q3, false, &o), CT_ERR_SHAPE);   /* 2 keys, 3 values */
  BADO(ct_scaled_dot_product_attention(q3, F.a, F.a, true, &o), CT_ERR_SHAPE);    /* causal, 3 > 2 */
  BADO(ct_scaled_dot_product_attention(F.a, F.foreign, F.a, false, &o), CT_ERR_CONTEXT);
  ct_tensor_free(q3);
  /* the fused kernel forced (CLTAPE_ATTENTION=fused): operands it does not take are refused, never
   * computed the other way */
  ct_tensor *q2 = t_of(F.ctx, CT_FLOAT32, 3, (int64_t[]){2, 2, 3}, 0), *k1 = t_of(F.ctx, CT_FLOAT32, 3, (int64_t[]){1, 2, 3}, 0),
            *wide = t_of(F.ctx, CT_FLOAT32, 2, (int64_t[]){2, 300}, 0);
  ct__env_override("CLTAPE_ATTENTION", "fused");
  BADO(ct_scaled_dot_product_attention(q2, k1, k1, false, &o), CT_ERR_SHAPE);        /* broadcast batch */
  BADO(ct_scaled_dot_product_attention(wide, wide, wide, true, &o), CT_ERR_UNSUPPORTED); /* 300 features */
  ct__env_override("CLTAPE_ATTENTION", NULL);
  ct_tensor_free(q2);
  ct_tensor_free(k1);
  ct_tensor_free(wide);
}
static void transformer_layer_options(ct_layer_options *li, ct_layer_options *lk) {
  *li = ct_layer_default_options();
  *lk = ct_layer_default_options();
  li->dtype = CT_INT32;
  lk->kernel_initializer = (ct_initializer)77;
}
static void r_layer_norm_create(const row *r) {
  (void)r;
  ct_module *mo;
  ct_layer_options li, lk;
  transformer_layer_options(&li, &lk);
  BAD(ct_layer_norm_create(F.ctx, 3, 1e-5, NULL, NULL), CT_ERR_NULL);
  BADM(ct_layer_norm_create(NULL, 3, 1e-5, NULL, &mo), CT_ERR_NULL);
  BADM(ct_layer_norm_create(F.dead_ctx, 3, 1e-5, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_layer_norm_create(F.ctx, 0, 1e-5, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_layer_norm_create(F.ctx, 3, -1, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_layer_norm_create(F.ctx, 3, NAN, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_layer_norm_create(F.ctx, 3, 1e-5, &li, &mo), CT_ERR_DTYPE);
  BADM(ct_layer_norm_create(F.ctx, 3, 1e-5, &lk, &mo), CT_ERR_INVALID);
}
static void r_embedding_create(const row *r) {
  (void)r;
  ct_module *mo;
  ct_layer_options li, lk;
  transformer_layer_options(&li, &lk);
  BAD(ct_embedding_create(F.ctx, 5, 3, NULL, NULL), CT_ERR_NULL);
  BADM(ct_embedding_create(NULL, 5, 3, NULL, &mo), CT_ERR_NULL);
  BADM(ct_embedding_create(F.dead_ctx, 5, 3, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_embedding_create(F.ctx, 0, 3, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_embedding_create(F.ctx, 5, -3, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_embedding_create(F.ctx, 5, 3, &li, &mo), CT_ERR_DTYPE);
  BADM(ct_embedding_create(F.ctx, 5, 3, &lk, &mo), CT_ERR_INVALID);
  BADM(ct_embedding_create(F.ctx, 100000, 100000, NULL, &mo), CT_ERR_OUT_OF_MEMORY);
}
static void r_multi_head_attention_create(const row *r) {
  (void)r;
  ct_module *mo;
  ct_layer_options li, lk;
  transformer_layer_options(&li, &lk);
  BAD(ct_multi_head_attention_create(F.ctx, 4, 2, true, NULL, NULL), CT_ERR_NULL);
  BADM(ct_multi_head_attention_create(NULL, 4, 2, true, NULL, &mo), CT_ERR_NULL);
  BADM(ct_multi_head_attention_create(F.dead_ctx, 4, 2, true, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_multi_head_attention_create(F.ctx, 6, 4, true, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_multi_head_attention_create(F.ctx, 4, 0, true, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_multi_head_attention_create(F.ctx, 0, 1, true, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_multi_head_attention_create(F.ctx, 4, 2, true, &li, &mo), CT_ERR_DTYPE);
  BADM(ct_multi_head_attention_create(F.ctx, 4, 2, true, &lk, &mo), CT_ERR_INVALID);
}
static void r_transformer_block_create(const row *r) {
  (void)r;
  ct_module *mo;
  ct_layer_options li, lk;
  transformer_layer_options(&li, &lk);
  BAD(ct_transformer_block_create(F.ctx, 4, 2, 8, true, NULL, NULL), CT_ERR_NULL);
  BADM(ct_transformer_block_create(NULL, 4, 2, 8, true, NULL, &mo), CT_ERR_NULL);
  BADM(ct_transformer_block_create(F.dead_ctx, 4, 2, 8, true, NULL, &mo), CT_ERR_RELEASED);
  BADM(ct_transformer_block_create(F.ctx, 4, 3, 8, true, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_transformer_block_create(F.ctx, 4, 2, 0, true, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_transformer_block_create(F.ctx, -4, 2, 8, true, NULL, &mo), CT_ERR_INVALID);
  BADM(ct_transformer_block_create(F.ctx, 4, 2, 8, true, &li, &mo), CT_ERR_DTYPE);
  BADM(ct_transformer_block_create(F.ctx, 4, 2, 8, true, &lk, &mo), CT_ERR_INVALID);
  /* a block called with inputs of the wrong width or rank */
  ct_module *blk = NULL;
  ct_tensor *o, *x5 = t_of(F.ctx, CT_FLOAT32, 3, (int64_t[]){1, 2, 5}, 0);
  OK(ct_transformer_block_create(F.ctx, 4, 2, 8, true, NULL, &blk));
  BADO(ct_module_call(blk, x5, false, &o), CT_ERR_SHAPE);
  BADO(ct_module_call(blk, F.a, false, &o), CT_ERR_SHAPE);
  ct_module_free(blk);
  ct_tensor_free(x5);
}
#define TRANSFORMER_ROWS                                                                                     \
  NR(layer_norm) NR(embedding_lookup) NR(scaled_dot_product_attention) NR(layer_norm_create)                 \
  NR(embedding_create) NR(multi_head_attention_create) NR(transformer_block_create)

/* ---- the table -------------------------------------------------------------------------------- */
#define R(fam, fn) {"ct_" #fn, fam, r_##fn, NULL, NULL, NULL},
#define UROW_(fn) {"ct_" #fn, "unary", r_unary, ct_##fn, NULL, NULL},
#define BROW_(fn)                                                  \
  {"ct_" #fn, "binary", r_binary, NULL, ct_##fn, NULL},             \
  {"ct_" #fn "_scalar", "binary", r_binary_scalar, NULL, NULL, ct_##fn##_scalar},

static const row ROWS[] = {
    R("misc", version_number) R("misc", version_string) R("misc", status_name) R("misc", status_str)
    R("misc", errmsg) R("misc", set_log) R("misc", dtype_name) R("misc", dtype_size)
    R("context", device_list) R("context", context_create) R("context", context_free) R("context", context_device)
    R("context", context_errmsg) R("context", context_sync) R("context", context_stats_get)
    R("context", context_reset_peak) R("context", context_trim)
    R("context", tune_default_options) R("context", tune_matmul) R("context", tune_status)
    R("creation", tensor_from_data) R("creation", scalar) R("creation", fill) R("creation", zeros) R("creation", ones)
    R("creation", zeros_like) R("creation", ones_like) R("creation", linspace) R("creation", range)
    R("creation", random_normal) R("creation", random_uniform)
    R("handles", tensor_retain) R("handles", tensor_free) R("handles", tensor_free_n) R("handles", tensor_context)
    R("handles", tensor_dtype) R("handles", tensor_rank) R("handles", tensor_shape) R("handles", tensor_size)
    R("handles", tensor_id) R("handles", tensor_read) R("handles", tensor_read_f64) R("handles", tensor_item)
    R("handles", tensor_format) R("handles", shape_format)
    R("variables", variable_create) R("variables", variable_scalar) R("variables", tensor_is_variable)
    R("variables", variable_name) R("variables", variable_trainable) R("variables", variable_set_trainable)
    R("variables", variable_assign) R("variables", variable_assign_add) R("variables", variable_assign_sub)
    R("variables", variable_value)
    CT_UNARY_OPS(UROW_)
    CT_BINARY_OPS(BROW_)
    R("ops", rsub_scalar) R("ops", rdiv_scalar) R("ops", where) R("ops", cast) R("ops", stop_gradient)
    R("ops", identity) R("ops", matmul) R("ops", softmax) R("ops", log_softmax)
    R("reduce", sum) R("reduce", mean) R("reduce", max) R("reduce", min) R("reduce", prod) R("reduce", logsumexp)
    R("reduce", argmax) R("reduce", argmin)
    R("movement", reshape) R("movement", transpose) R("movement", slice) R("movement", concat) R("movement", stack)
    R("movement", broadcast_to) R("movement", gather) R("movement", one_hot)
    R("movement", squeeze) R("movement", expand_dims) R("movement", pad) R("movement", tile) R("movement", split)
    R("movement", cumsum) R("ops", clip_by_value)
    R("movement", gather_nd) R("movement", scatter) R("movement", scatter_add) R("movement", boolean_mask)
    R("sort", cumprod) R("sort", argsort) R("sort", sort) R("sort", top_k) R("sort", einsum)
    R("tapes", tape_default_options) R("tapes", tape_begin) R("tapes", tape_end) R("tapes", tape_stop_recording)
    R("tapes", tape_resume_recording) R("tapes", tape_reset) R("tapes", tape_free) R("tapes", tape_watch)
    R("tapes", tape_watched_variables) R("tapes", tape_saved_bytes) R("tapes", tape_size) R("tapes", tape_gradient)
    R("tapes", tape_gradient1) R("tapes", tape_gradient_with_hook) R("tapes", tape_gradient_named) R("tapes", tape_jacobian)
    R("tapes", tape_batch_jacobian) R("tapes", tape_begin_forward) R("tapes", tape_jvp)
    R("registry", grad_ctx_num_inputs) R("registry", grad_ctx_input) R("registry", grad_ctx_output)
    R("registry", register_gradient) R("registry", register_no_gradient) R("registry", unregister_gradient)
    R("registry", custom_op_register) R("registry", custom_op_call) R("registry", gradcheck)
    R("registry", custom_gradient) R("registry", recompute_grad)
    R("interop", context_create_from_cl) R("interop", context_cl) R("interop", tensor_from_cl_mem)
    R("interop", tensor_cl_mem) R("interop", tensor_from_cl_mem_offset) R("interop", variable_from_cl_mem)
    R("interop", context_wait_cl_events) R("interop", context_cl_event)
    R("interop", dlpack_export) R("interop", dlpack_export_host)
    R("interop", dlpack_import)
    NN_ROWS
    NORM_LOSS_ROWS
    R("nn", loss_scale_default) R("nn", loss_scale_loss) R("nn", loss_scale_unscale)
    TRANSFORMER_ROWS
    RNN_ROWS
};
#define N_ROWS ((int)(sizeof ROWS / sizeof *ROWS))

static void run_family(const char *family) {
  setup();
  int rows = 0;
  for (int k = 0; k < N_ROWS; ++k) {
    const row *r = &ROWS[k];
    if (strcmp(r->family, family) != 0) continue;
    rows++;
    F.row_name = r->name;
    uint64_t before = bytes_in_use();
    OK(ct_ones(F.ctx, CT_FLOAT32, 1, S3, &F.dead));
    ct_tensor_free(F.dead); /* released: every call must report it, none may touch its memory */
    r->fn(r);
    assert_alive();
    uint64_t after = bytes_in_use();
    cr_assert_eq(after, before, "[%s] device bytes in use went from %llu to %llu: a tensor or buffer leaked",
                 r->name, (unsigned long long)before, (unsigned long long)after);
  }
  cr_assert(rows > 0, "no rows in family %s", family);
  fprintf(stderr, "bad inputs: family %s: %d functions, ", family, rows);
  teardown();
}

Test(bad_inputs, misc) { run_family("misc"); }
Test(bad_inputs, context) { run_family("context"); }
Test(bad_inputs, creation) { run_family("creation"); }
Test(bad_inputs, handles) { run_family("handles"); }
Test(bad_inputs, variables) { run_family("variables"); }
Test(bad_inputs, unary) { run_family("unary"); }
Test(bad_inputs, binary) { run_family("binary"); }
Test(bad_inputs, ops) { run_family("ops"); }
Test(bad_inputs, reduce) { run_family("reduce"); }
Test(bad_inputs, movement) { run_family("movement"); }
Test(bad_inputs, tapes) { run_family("tapes"); }
Test(bad_inputs, registry) { run_family("registry"); }
Test(bad_inputs, interop) { run_family("interop"); }
Test(bad_inputs, nn) { run_family("nn"); }
Test(bad_inputs, sort) { run_family("sort"); }

/* ---- every public function has a row ------------------------------------------------------------ */
/* Removes C comments (keeping line breaks) so that only declarations are scanned. */
static void strip_comments(char *s) {
  for (char *p = s; *p; ++p) {
    if (p[0] == '/' && p[1] == '*') {
      char *e = strstr(p + 2, "*/");
      char *stop = e ? e + 2 : p + strlen(p);
      for (char *q = p; q < stop; ++q)
        if (*q != '\n') *q = ' ';
      p = stop - 1;
    } else if (p[0] == '/' && p[1] == '/') {
      for (; *p && *p != '\n'; ++p) *p = ' ';
      if (!*p) break;
    }
  }
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  cr_assert(s);
  cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = 0;
  fclose(f);
  return s;
}

/* Names of the functions the header declares with CT_API, plus the count of declarations that a
 * macro generates (ct_##name). */
static int scan_header(const char *text, char (*names)[64], int cap, int *n, int *generated) {
  int found = 0;
  for (const char *p = strstr(text, "CT_API"); p; p = strstr(p + 6, "CT_API")) {
    bool token = (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) && (p[6] == ' ' || p[6] == '\t');
    if (!token) continue;
    const char *line = p;
    while (line > text && line[-1] != '\n') --line;
    while (*line == ' ' || *line == '\t') ++line;
    if (strncmp(line, "#define CT_API", 14) == 0) continue; /* the definition of CT_API itself */
    const char *paren = strchr(p, '(');
    cr_assert(paren, "CT_API without a declaration");
    const char *q = paren;
    while (q > p && isspace((unsigned char)q[-1])) --q;
    const char *e = q;
    while (q > p && (isalnum((unsigned char)q[-1]) || q[-1] == '_' || q[-1] == '#')) --q;
    char name[64];
    size_t len = (size_t)(e - q);
    cr_assert(len > 0 && len < sizeof name);
    memcpy(name, q, len);
    name[len] = 0;
    if (strstr(name, "##")) {
      (*generated)++;
      continue;
    }
    cr_assert(strncmp(name, "ct_", 3) == 0, "public function %s does not start with ct_", name);
    cr_assert(*n < cap);
    snprintf(names[(*n)++], 64, "%s", name);
    found++;
  }
  return found;
}

Test(bad_inputs, coverage) {
  static const char *headers[] = {"include/cltape.h", "include/cltape_cl.h", "include/cltape_dlpack.h", "include/cltape_nn.h"};
  static char names[1024][64];
  int n = 0, generated = 0;
  for (int h = 0; h < 4; ++h) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CLTAPE_SOURCE_DIR, headers[h]);
    char *text = read_text(path);
    cr_assert(text, "cannot read %s", path);
    strip_comments(text);
    int found = scan_header(text, names, 1024, &n, &generated);
    cr_assert(found > 0 || h == 2 || h == 1, "no CT_API declaration found in %s", path);
    free(text);
  }
  /* the generated declarations are the unary ops, the binary ops and their _scalar forms: the
   * rows for them come from the same macro lists (CT_UNARY_OPS, CT_BINARY_OPS) */
  cr_assert_eq(generated, 3, "cltape.h generates %d kinds of declarations with ##; give the new one rows", generated);
#define ADD_NAME_(fn) snprintf(names[n++], 64, "ct_%s", #fn);
#define ADD_NAME2_(fn) snprintf(names[n++], 64, "ct_%s", #fn); snprintf(names[n++], 64, "ct_%s_scalar", #fn);
  CT_UNARY_OPS(ADD_NAME_)
  CT_BINARY_OPS(ADD_NAME2_)
  int missing = 0;
  for (int k = 0; k < n; ++k) {
    bool have = false;
    for (int j = 0; j < N_ROWS && !have; ++j) have = strcmp(ROWS[j].name, names[k]) == 0;
    if (!have) {
      fprintf(stderr, "no bad-input row for public function %s\n", names[k]);
      missing++;
    }
  }
  for (int j = 0; j < N_ROWS; ++j) {
    bool have = false;
    for (int k = 0; k < n && !have; ++k) have = strcmp(ROWS[j].name, names[k]) == 0;
    cr_assert(have, "row %s names no public function", ROWS[j].name);
    for (int k = j + 1; k < N_ROWS; ++k)
      cr_assert(strcmp(ROWS[j].name, ROWS[k].name) != 0, "row %s twice", ROWS[j].name);
  }
  cr_assert_eq(missing, 0, "%d public functions have no bad-input row (listed above)", missing);
  fprintf(stderr, "bad inputs: %d public functions, %d rows\n", n, N_ROWS);
}
