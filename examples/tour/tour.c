/*
 * tour.c — the automatic differentiation guide, reproduced case by case with the C API.
 *
 * Each case S1..S20 of CONFORMANCE.md is one function below. It runs the guide's example with
 * ct_ calls, prints what the guide prints (tensor values, shapes, None for a missing gradient,
 * the warning, the error message), and returns whether the values match the expected ones.
 * Every line a case prints starts with its id. The program ends with one summary line and exits
 * with 0 only when every case matched.
 *
 * docs/guide.md quotes the case functions; tests/test_tour.c checks that the quotes are still
 * found here, in order, and that the output the guide shows is what this program prints.
 */
#define _POSIX_C_SOURCE 200809L
#include <cltape.h>
#include <cltape_nn.h>
#include <plot.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- the tour's state and its printing helpers ------------------------------------------- */
typedef struct {
  ct_context *ctx;
  const char *out_dir; /* where S12 writes its plot */
  const char *id;      /* the case being run ("S1"), NULL outside the cases */
  bool failed;         /* the current case did not match */
  char why[1024];      /* the first reason it did not */
  int warnings;        /* warnings the library logged during the current case */
  char warning[512];   /* the last of them */
} tour;

static void vsay(const tour *t, const char *indent, const char *fmt, va_list ap) {
  char text[4096];
  vsnprintf(text, sizeof text, fmt, ap);
  /* a multi-line text (a matrix) gets the case id on every line */
  for (char *line = text, *next; line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    printf("%-4s%s%s\n", t->id, indent, line);
  }
}

/* Prints one line of a case's output: "S1      6.0". */
static void say(const tour *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void say(const tour *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(t, "    ", fmt, ap);
  va_end(ap);
}

/* Records that the current case does not match (the first reason is kept); returns false. */
static bool mismatch(tour *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static bool mismatch(tour *t, const char *fmt, ...) {
  if (!t->failed) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
  }
  t->failed = true;
  return false;
}

/* TRY(call): on an error, record the library's message and leave the case (goto done). */
#define TRY(call)                                                                                       \
  do {                                                                                                  \
    ct_status try_s_ = (call);                                                                          \
    if (try_s_ != CT_OK) {                                                                              \
      mismatch(t, "%s failed: %s: %s", #call, ct_status_name(try_s_), ct_errmsg());                     \
      goto done;                                                                                        \
    }                                                                                                   \
  } while (0)

/* Frees a list of tensors (NULL entries are fine). */
#define FREE(...)                                                    \
  do {                                                               \
    ct_tensor *free_[] = {__VA_ARGS__};                              \
    ct_tensor_free_n(free_, (int)(sizeof free_ / sizeof *free_));    \
  } while (0)

static void print_formatted(tour *t, const char *label, const ct_tensor *x, ct_format_style style) {
  char text[4096] = "None";
  if (x) {
    ct_status s = ct_tensor_format(x, style, text, sizeof text);
    if (s != CT_OK) {
      mismatch(t, "ct_tensor_format failed: %s: %s", ct_status_name(s), ct_errmsg());
      return;
    }
  }
  if (label) say(t, "%s %s", label, text);
  else say(t, "%s", text);
}
/* print(x.numpy()) in the guide: the values as NumPy prints them, or None. */
static void print_numpy(tour *t, const char *label, const ct_tensor *x) {
  print_formatted(t, label, x, CT_FORMAT_VALUES);
}
/* print(x) in the guide: tf.Tensor(6.0, shape=(), dtype=float32), or None. */
static void print_tensor(tour *t, const char *label, const ct_tensor *x) {
  print_formatted(t, label, x, CT_FORMAT_REPR);
}

/* ---- checks: float32 results against the expected values --------------------------------- */
static bool close_enough(double got, double want, double atol, double rtol) {
  return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Checks a gradient's presence, shape and values (want may be NULL to check the shape only). */
static bool check_values_tol(tour *t, const char *what, const ct_tensor *g, int rank, const int64_t *shape,
                             const double *want, double atol, double rtol) {
  if (!g) return mismatch(t, "%s is None", what);
  if (ct_tensor_dtype(g) != CT_FLOAT32)
    return mismatch(t, "%s has dtype %s, not float32", what, ct_dtype_name(ct_tensor_dtype(g)));
  char got_shape[96];
  ct_shape_format(g, got_shape, sizeof got_shape);
  bool same = ct_tensor_rank(g) == rank;
  for (int d = 0; same && d < rank; ++d) same = ct_tensor_shape(g)[d] == shape[d];
  if (!same) return mismatch(t, "%s has shape %s", what, got_shape);
  if (!want) return true;
  int64_t n = ct_tensor_size(g);
  double *got = malloc(sizeof *got * (size_t)(n ? n : 1));
  if (!got) return mismatch(t, "out of memory reading %s", what);
  ct_status s = ct_tensor_read_f64(g, got, n);
  bool ok = s == CT_OK;
  if (!ok) mismatch(t, "reading %s failed: %s", what, ct_errmsg());
  for (int64_t i = 0; ok && i < n; ++i)
    if (!close_enough(got[i], want[i], atol, rtol)) {
      if (rank == 0) ok = mismatch(t, "%s = %.9g, expected %.9g", what, got[i], want[i]);
      else ok = mismatch(t, "%s[%lld] = %.9g, expected %.9g", what, (long long)i, got[i], want[i]);
    }
  free(got);
  return ok;
}
static bool check_values(tour *t, const char *what, const ct_tensor *g, int rank, const int64_t *shape,
                         const double *want) {
  return check_values_tol(t, what, g, rank, shape, want, 1e-6, 1e-5);
}
static bool check_scalar(tour *t, const char *what, const ct_tensor *g, double want) {
  return check_values(t, what, g, 0, NULL, &want);
}
static bool check_none(tour *t, const char *what, const ct_tensor *g) {
  return g ? mismatch(t, "%s is a tensor, expected None", what) : true;
}

/* Reads a tensor into a new array of doubles (NULL on failure, recorded as a mismatch). */
static double *read_all(tour *t, const char *what, const ct_tensor *x) {
  int64_t n = ct_tensor_size(x);
  double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
  if (!v) {
    mismatch(t, "out of memory reading %s", what);
    return NULL;
  }
  if (ct_tensor_read_f64(x, v, n) != CT_OK) {
    mismatch(t, "reading %s failed: %s", what, ct_errmsg());
    free(v);
    return NULL;
  }
  return v;
}

/* ---- the cases ------------------------------------------------------------------------------ */

/* S1: x = Variable(3.0); y = x**2 under a tape; dy/dx = 6.0 */
static bool s1_gradient_tape(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *dy_dx = NULL;
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 3.0, "x", true, &x)); /* x = tf.Variable(3.0) */
  TRY(ct_tape_begin(ctx, NULL, &tape));             /* with tf.GradientTape() as tape: */
  TRY(ct_pow_scalar(x, 2.0, &y));                   /*     y = x**2 */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x, &dy_dx));       /* dy/dx = 2x */
  print_numpy(t, NULL, dy_dx);
  check_scalar(t, "dy_dx", dy_dx, 6.0);
done:
  ct_tape_free(tape);
  FREE(x, y, dy_dx);
  return !t->failed;
}

/* S2: y = x @ w + b, loss = mean(y**2); gradients w.r.t. [w, b] and {'w': w, 'b': b} */
static bool s2_any_shape(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *w0 = NULL, *b0 = NULL, *w = NULL, *b = NULL, *x = NULL, *xw = NULL, *y = NULL, *y2 = NULL,
            *loss = NULL;
  ct_tensor *grads[2] = {NULL, NULL};
  ct_named_tensor grad[2] = {{NULL, NULL}, {NULL, NULL}};
  ct_tape *tape = NULL;
  double *yv = NULL;
  const int64_t w_shape[2] = {3, 2}, b_shape[1] = {2}, x_shape[2] = {1, 3};
  const float x_data[3] = {1.0f, 2.0f, 3.0f};
  TRY(ct_random_normal(ctx, CT_FLOAT32, 2, w_shape, 0.0, 1.0, 2022, &w0));
  TRY(ct_variable_create(w0, "w", true, &w));            /* w = tf.Variable(tf.random.normal((3, 2))) */
  TRY(ct_zeros(ctx, CT_FLOAT32, 1, b_shape, &b0));
  TRY(ct_variable_create(b0, "b", true, &b));            /* b = tf.Variable(tf.zeros(2)) */
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 2, x_shape, x_data, &x)); /* x = [[1., 2., 3.]] */

  ct_tape_options opts = ct_tape_default_options();
  opts.persistent = true;
  TRY(ct_tape_begin(ctx, &opts, &tape));
  TRY(ct_matmul(x, w, false, false, &xw));
  TRY(ct_add(xw, b, &y));                                /* y = x @ w + b */
  TRY(ct_pow_scalar(y, 2.0, &y2));
  TRY(ct_mean(y2, NULL, 0, false, &loss));               /* loss = tf.reduce_mean(y**2) */
  TRY(ct_tape_end(tape));

  ct_tensor *sources[2] = {w, b};                        /* [dl_dw, dl_db] = tape.gradient(loss, [w, b]) */
  TRY(ct_tape_gradient(tape, &loss, 1, sources, 2, NULL, CT_UNCONNECTED_NONE, grads));
  char shape_w[32], shape_dw[32];
  TRY(ct_shape_format(w, shape_w, sizeof shape_w));
  TRY(ct_shape_format(grads[0], shape_dw, sizeof shape_dw));
  say(t, "%s %s", shape_w, shape_dw);                    /* print(w.shape); print(dl_dw.shape) */

  ct_named_tensor my_vars[2] = {{"w", w}, {"b", b}};     /* grad = tape.gradient(loss, my_vars) */
  TRY(ct_tape_gradient_named(tape, &loss, 1, my_vars, 2, CT_UNCONNECTED_NONE, grad));
  print_tensor(t, "grad['b']:", grad[1].tensor);

  /* check: loss = mean(y^2) over 2 outputs, so dl/dy = y, dl_db = y and dl_dw = x^T y */
  if (!(yv = read_all(t, "y", y))) goto done;
  double want_dw[6], want_db[2] = {yv[0], yv[1]};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) want_dw[i * 2 + j] = x_data[i] * yv[j];
  check_values(t, "dl_dw", grads[0], 2, w_shape, want_dw);
  check_values(t, "dl_db", grads[1], 1, b_shape, want_db);
  if (strcmp(grad[0].name, "w") != 0 || strcmp(grad[1].name, "b") != 0)
    mismatch(t, "the name-keyed gradients came back as %s and %s", grad[0].name, grad[1].name);
  check_values(t, "grad['w']", grad[0].tensor, 2, w_shape, want_dw);
  check_values(t, "grad['b']", grad[1].tensor, 1, b_shape, want_db);
done:
  free(yv);
  ct_tape_free(tape);
  FREE(w0, b0, w, b, x, xw, y, y2, loss, grads[0], grads[1], grad[0].tensor, grad[1].tensor);
  return !t->failed;
}

/* S3: gradients w.r.t. a layer's trainable variables */
static bool s3_model_gradients(tour *t) {
  ct_context *ctx = t->ctx;
  ct_module *layer = NULL;
  ct_tensor *x = NULL, *y = NULL, *y2 = NULL, *loss = NULL;
  ct_tensor *trainable[2] = {NULL, NULL};
  ct_tensor *grad[2] = {NULL, NULL};
  ct_tape *tape = NULL;
  double *yv = NULL;
  int n_vars = 0;
  const int64_t x_shape[2] = {1, 3};
  const float x_data[3] = {1.0f, 2.0f, 3.0f};
  TRY(ct_dense_create(ctx, 3, 2, CT_ACTIVATION_RELU, NULL, &layer)); /* layer = tf.keras.layers.Dense(2, activation='relu') */
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 2, x_shape, x_data, &x)); /* x = tf.constant([[1., 2., 3.]]) */
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_module_call(layer, x, false, &y));              /* y = layer(x) */
  TRY(ct_pow_scalar(y, 2.0, &y2));
  TRY(ct_mean(y2, NULL, 0, false, &loss));               /* loss = tf.reduce_mean(y**2) */
  TRY(ct_tape_end(tape));
  TRY(ct_module_trainable_variables(layer, trainable, 2, &n_vars)); /* layer.trainable_variables */
  TRY(ct_tape_gradient(tape, &loss, 1, trainable, 2, NULL, CT_UNCONNECTED_NONE, grad));
  for (int i = 0; i < 2; ++i) {
    char shape[32] = "None";
    if (grad[i]) TRY(ct_shape_format(grad[i], shape, sizeof shape));
    say(t, "%s, shape: %s", ct_variable_name(trainable[i]), shape);
  }

  /* check: as in S2, with relu'(z) y = y: dl_db = y and dl_dkernel = x^T y */
  if (n_vars != 2 || strcmp(ct_variable_name(trainable[0]), "dense/kernel:0") != 0 ||
      strcmp(ct_variable_name(trainable[1]), "dense/bias:0") != 0) {
    mismatch(t, "the layer has %d trainable variables, named %s and %s", n_vars,
             n_vars > 0 ? ct_variable_name(trainable[0]) : "-", n_vars > 1 ? ct_variable_name(trainable[1]) : "-");
    goto done;
  }
  if (!(yv = read_all(t, "y", y))) goto done;
  const int64_t k_shape[2] = {3, 2}, b_shape[1] = {2};
  double want_dk[6], want_db[2] = {yv[0], yv[1]};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) want_dk[i * 2 + j] = x_data[i] * yv[j];
  check_values(t, "dense/kernel:0 gradient", grad[0], 2, k_shape, want_dk);
  check_values(t, "dense/bias:0 gradient", grad[1], 1, b_shape, want_db);
done:
  free(yv);
  ct_tape_free(tape);
  ct_module_free(layer);
  FREE(x, y, y2, loss, grad[0], grad[1]);
  return !t->failed;
}

/* S4: what the tape watches by default */
static bool s4_watched(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x0 = NULL, *x1 = NULL, *v2 = NULL, *x2 = NULL, *x3 = NULL;
  ct_tensor *a = NULL, *b = NULL, *c = NULL, *ab = NULL, *y = NULL;
  ct_tensor *grad[4] = {NULL, NULL, NULL, NULL};
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 3.0, "x0", true, &x0));  /* a trainable variable */
  TRY(ct_variable_scalar(ctx, 3.0, "x1", false, &x1)); /* not trainable */
  TRY(ct_variable_scalar(ctx, 2.0, "x2", true, &v2));
  TRY(ct_add_scalar(v2, 1.0, &x2));                    /* not a variable: a variable + tensor is a tensor */
  TRY(ct_scalar(ctx, CT_FLOAT32, 3.0, &x3));           /* not a variable */

  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_pow_scalar(x0, 2.0, &a));
  TRY(ct_pow_scalar(x1, 2.0, &b));
  TRY(ct_pow_scalar(x2, 2.0, &c));
  TRY(ct_add(a, b, &ab));
  TRY(ct_add(ab, c, &y));                              /* y = (x0**2) + (x1**2) + (x2**2) */
  TRY(ct_tape_end(tape));

  ct_tensor *sources[4] = {x0, x1, x2, x3};
  TRY(ct_tape_gradient(tape, &y, 1, sources, 4, NULL, CT_UNCONNECTED_NONE, grad));
  for (int i = 0; i < 4; ++i) print_tensor(t, NULL, grad[i]);

  ct_tensor *watched[8];                               /* [var.name for var in tape.watched_variables()] */
  int n_watched = 0;
  TRY(ct_tape_watched_variables(tape, watched, 8, &n_watched));
  char names[256] = "[";
  for (int i = 0; i < n_watched && i < 8; ++i) {
    size_t len = strlen(names);
    snprintf(names + len, sizeof names - len, "%s'%s'", i ? ", " : "", ct_variable_name(watched[i]));
  }
  strncat(names, "]", sizeof names - strlen(names) - 1);
  say(t, "%s", names);

  check_scalar(t, "gradient w.r.t. x0", grad[0], 6.0);
  check_none(t, "gradient w.r.t. x1", grad[1]);
  check_none(t, "gradient w.r.t. x2", grad[2]);
  check_none(t, "gradient w.r.t. x3", grad[3]);
  if (strcmp(names, "['x0:0']") != 0) mismatch(t, "the tape watches %s, expected ['x0:0']", names);
done:
  ct_tape_free(tape);
  FREE(x0, x1, v2, x2, x3, a, b, c, ab, y, grad[0], grad[1], grad[2], grad[3]);
  return !t->failed;
}

/* S5: tape.watch() on a constant */
static bool s5_watch_constant(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *dy_dx = NULL;
  ct_tape *tape = NULL;
  TRY(ct_scalar(ctx, CT_FLOAT32, 3.0, &x));  /* x = tf.constant(3.0) */
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));               /* tape.watch(x) */
  TRY(ct_pow_scalar(x, 2.0, &y));            /* y = x**2 */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x, &dy_dx)); /* dy/dx = 2x */
  print_numpy(t, NULL, dy_dx);
  check_scalar(t, "dy_dx", dy_dx, 6.0);
done:
  ct_tape_free(tape);
  FREE(x, y, dy_dx);
  return !t->failed;
}

/* S6: watch_accessed_variables = false, only x1 watched */
static bool s6_watch_only(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x0 = NULL, *x1 = NULL, *y0 = NULL, *y1 = NULL, *y = NULL, *ys = NULL;
  ct_named_tensor grad[2] = {{NULL, NULL}, {NULL, NULL}};
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 0.0, "x0", true, &x0));
  TRY(ct_variable_scalar(ctx, 10.0, "x1", true, &x1));
  ct_tape_options opts = ct_tape_default_options();
  opts.watch_accessed_variables = false;
  TRY(ct_tape_begin(ctx, &opts, &tape));  /* with tf.GradientTape(watch_accessed_variables=False) as tape: */
  TRY(ct_tape_watch(tape, x1));
  TRY(ct_sin(x0, &y0));                   /* y0 = tf.math.sin(x0) */
  TRY(ct_softplus(x1, &y1));              /* y1 = tf.nn.softplus(x1) */
  TRY(ct_add(y0, y1, &y));
  TRY(ct_sum(y, NULL, 0, false, &ys));    /* ys = tf.reduce_sum(y) */
  TRY(ct_tape_end(tape));
  ct_named_tensor sources[2] = {{"x0", x0}, {"x1", x1}}; /* the derivative of softplus is sigmoid */
  TRY(ct_tape_gradient_named(tape, &ys, 1, sources, 2, CT_UNCONNECTED_NONE, grad));
  print_numpy(t, "dy/dx0:", grad[0].tensor);
  print_numpy(t, "dy/dx1:", grad[1].tensor);
  check_none(t, "dy/dx0", grad[0].tensor);
  check_scalar(t, "dy/dx1", grad[1].tensor, 1.0 / (1.0 + exp(-10.0)));
done:
  ct_tape_free(tape);
  FREE(x0, x1, y0, y1, y, ys, grad[0].tensor, grad[1].tensor);
  return !t->failed;
}

/* S7: the gradient w.r.t. an intermediate value */
static bool s7_intermediate(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *z = NULL, *dz_dy = NULL;
  ct_tape *tape = NULL;
  TRY(ct_scalar(ctx, CT_FLOAT32, 3.0, &x));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));
  TRY(ct_mul(x, x, &y));                      /* y = x * x */
  TRY(ct_mul(y, y, &z));                      /* z = y * y */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, z, y, &dz_dy)); /* dz/dy = 2y, with y = 9 */
  print_numpy(t, NULL, dz_dy);
  check_scalar(t, "dz_dy", dz_dy, 18.0);
done:
  ct_tape_free(tape);
  FREE(x, y, z, dz_dy);
  return !t->failed;
}

/* S8: a persistent tape answers several gradient calls; a non-persistent one only the first */
static bool s8_persistent(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *z = NULL, *dz_dx = NULL, *dy_dx = NULL;
  ct_tensor *y_once = NULL, *first = NULL, *second = NULL;
  ct_tape *tape = NULL, *once = NULL;
  const int64_t shape[1] = {2};
  const float values[2] = {1.0f, 3.0f};
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 1, shape, values, &x)); /* x = tf.constant([1, 3.0]) */
  ct_tape_options opts = ct_tape_default_options();
  opts.persistent = true;
  TRY(ct_tape_begin(ctx, &opts, &tape));   /* with tf.GradientTape(persistent=True) as tape: */
  TRY(ct_tape_watch(tape, x));
  TRY(ct_mul(x, x, &y));                   /* y = x * x */
  TRY(ct_mul(y, y, &z));                   /* z = y * y */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, z, x, &dz_dx)); /* 4x^3 */
  TRY(ct_tape_gradient1(tape, y, x, &dy_dx)); /* 2x */
  print_numpy(t, NULL, dz_dx);
  print_numpy(t, NULL, dy_dx);
  ct_tape_free(tape);                      /* del tape */
  tape = NULL;

  /* without persistent = true, the first gradient call releases the recording */
  TRY(ct_tape_begin(ctx, NULL, &once));
  TRY(ct_tape_watch(once, x));
  TRY(ct_mul(x, x, &y_once));
  TRY(ct_tape_end(once));
  TRY(ct_tape_gradient1(once, y_once, x, &first));
  uint64_t held = 0;
  TRY(ct_tape_saved_bytes(once, &held));
  say(t, "non-persistent tape after gradient(): %d ops, %llu bytes held", ct_tape_size(once),
      (unsigned long long)held);
  ct_status again = ct_tape_gradient1(once, y_once, x, &second);
  say(t, "second gradient(): %s: %s", ct_status_name(again), ct_errmsg());

  const double want_z[2] = {4.0, 108.0}, want_y[2] = {2.0, 6.0};
  check_values(t, "dz_dx", dz_dx, 1, shape, want_z);
  check_values(t, "dy_dx", dy_dx, 1, shape, want_y);
  check_values(t, "the non-persistent tape's gradient", first, 1, shape, want_y);
  if (ct_tape_size(once) != 0 || held != 0)
    mismatch(t, "the non-persistent tape still holds %d ops and %llu bytes", ct_tape_size(once),
             (unsigned long long)held);
  if (again != CT_ERR_TAPE_USED || second)
    mismatch(t, "a second gradient() on a non-persistent tape returned %s", ct_status_name(again));
done:
  ct_tape_free(tape);
  ct_tape_free(once);
  FREE(x, y, z, dz_dx, dy_dx, y_once, first, second);
  return !t->failed;
}

/* S9: two targets, one gradient call each */
static bool s9_two_targets(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y0 = NULL, *y1 = NULL, *g0 = NULL, *g1 = NULL;
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  ct_tape_options opts = ct_tape_default_options();
  opts.persistent = true;
  TRY(ct_tape_begin(ctx, &opts, &tape));
  TRY(ct_pow_scalar(x, 2.0, &y0));       /* y0 = x**2 */
  TRY(ct_rdiv_scalar(1.0, x, &y1));      /* y1 = 1 / x */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y0, x, &g0));
  TRY(ct_tape_gradient1(tape, y1, x, &g1));
  print_numpy(t, NULL, g0);
  print_numpy(t, NULL, g1);
  check_scalar(t, "dy0/dx", g0, 4.0);
  check_scalar(t, "dy1/dx", g1, -0.25);
done:
  ct_tape_free(tape);
  FREE(x, y0, y1, g0, g1);
  return !t->failed;
}

/* S10: several targets in one call: the gradient of their sum */
static bool s10_sum_of_targets(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y0 = NULL, *y1 = NULL, *g = NULL;
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_pow_scalar(x, 2.0, &y0));       /* y0 = x**2 */
  TRY(ct_rdiv_scalar(1.0, x, &y1));      /* y1 = 1 / x */
  TRY(ct_tape_end(tape));
  ct_tensor *targets[2] = {y0, y1};      /* tape.gradient({'y0': y0, 'y1': y1}, x) */
  TRY(ct_tape_gradient(tape, targets, 2, &x, 1, NULL, CT_UNCONNECTED_NONE, &g));
  print_numpy(t, NULL, g);
  check_scalar(t, "d(y0 + y1)/dx", g, 3.75);
done:
  ct_tape_free(tape);
  FREE(x, y0, y1, g);
  return !t->failed;
}

/* S11: a non-scalar target: the gradient of its sum */
static bool s11_nonscalar_target(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *c = NULL, *y = NULL, *g = NULL;
  ct_tape *tape = NULL;
  const int64_t shape[1] = {2};
  const float values[2] = {3.0f, 4.0f};
  TRY(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 1, shape, values, &c));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_mul(x, c, &y));                 /* y = x * [3., 4.] */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x, &g));
  print_numpy(t, NULL, g);
  check_scalar(t, "dy/dx", g, 7.0);
done:
  ct_tape_free(tape);
  FREE(x, c, y, g);
  return !t->failed;
}

/* Creates a directory and its parents (like mkdir -p). */
static int make_dirs(const char *path) {
  char buf[1024];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; ++p)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(buf, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* Writes y and dy/dx against x as <out_dir>/s12-sigmoid.svg and .png. */
static bool plot_sigmoid(tour *t, const double *x, const double *y, const double *dy_dx, int n) {
  char svg[1200], png[1200];
  snprintf(svg, sizeof svg, "%s/s12-sigmoid.svg", t->out_dir);
  snprintf(png, sizeof png, "%s/s12-sigmoid.png", t->out_dir);
  plot *p = plot_create("y = sigmoid(x) and its gradient dy/dx", "x", NULL);
  if (!p) return mismatch(t, "out of memory creating the plot");
  int r = plot_add_series(p, "y", x, y, n, 0);
  if (r == 0) r = plot_add_series(p, "dy/dx", x, dy_dx, n, 0);
  const char *failed = svg;
  if (r == 0 && (r = plot_write_svg(p, svg)) == 0) {
    failed = png;
    r = plot_write_png(p, png);
  }
  int err = errno;
  plot_free(p);
  plot_cleanup(); /* the tour draws nothing else: cairo's fonts and caches go */
  if (r != 0) return mismatch(t, "writing the plot %s failed: %s", failed, strerror(err));
  say(t, "plot: %s", svg);
  say(t, "plot: %s", png);
  return true;
}

/* S12: an elementwise op's gradient over a range of inputs, plotted */
static bool s12_sigmoid(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *dy_dx = NULL;
  ct_tape *tape = NULL;
  double *xv = NULL, *yv = NULL, *gv = NULL;
  TRY(ct_linspace(ctx, CT_FLOAT32, -10.0, 10.0, 201, &x)); /* x = tf.linspace(-10.0, 10.0, 200+1) */
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));
  TRY(ct_sigmoid(x, &y));                                  /* y = tf.nn.sigmoid(x) */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x, &dy_dx));              /* dy_dx = tape.gradient(y, x) */
  if (!(xv = read_all(t, "x", x)) || !(yv = read_all(t, "y", y)) || !(gv = read_all(t, "dy_dx", dy_dx))) goto done;
  plot_sigmoid(t, xv, yv, gv, 201);                            /* plt.plot(x, y); plt.plot(x, dy_dx) */

  say(t, "%6s  %-10s %s", "x", "y", "dy/dx");
  const int samples[] = {0, 50, 80, 90, 100, 110, 120, 150, 200};
  for (int k = 0; k < (int)(sizeof samples / sizeof *samples); ++k) {
    int i = samples[k];
    say(t, "%6.1f  %-10.6f %.6f", xv[i], yv[i], gv[i]);
  }
  int peak = 0;
  for (int i = 1; i < 201; ++i)
    if (gv[i] > gv[peak]) peak = i;
  say(t, "peak of dy/dx: %.6f at x = %.1f", gv[peak], xv[peak]);

  /* check every point: dy/dx = sigmoid(x) (1 - sigmoid(x)) */
  for (int i = 0; i < 201; ++i) {
    double s = 1.0 / (1.0 + exp(-xv[i]));
    if (!close_enough(yv[i], s, 1e-6, 1e-5)) {
      mismatch(t, "y[%d] = %.9g at x = %g, expected %.9g", i, yv[i], xv[i], s);
      break;
    }
    if (!close_enough(gv[i], s * (1.0 - s), 1e-6, 1e-5)) {
      mismatch(t, "dy_dx[%d] = %.9g at x = %g, expected %.9g", i, gv[i], xv[i], s * (1.0 - s));
      break;
    }
  }
  if (fabs(xv[peak]) > 1e-6 || !close_enough(gv[peak], 0.25, 1e-7, 0))
    mismatch(t, "the peak of dy/dx is %.9g at x = %g, expected 0.25 at x = 0", gv[peak], xv[peak]);
done:
  free(xv);
  free(yv);
  free(gv);
  ct_tape_free(tape);
  FREE(x, y, dy_dx);
  return !t->failed;
}

/* S13: host control flow: only the branch taken is recorded */
static bool s13_control_flow(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *v0 = NULL, *v1 = NULL, *result = NULL, *dx = NULL;
  ct_tensor *dv[2] = {NULL, NULL};
  ct_tape *tape = NULL;
  TRY(ct_scalar(ctx, CT_FLOAT32, 1.0, &x));
  TRY(ct_variable_scalar(ctx, 2.0, "v0", true, &v0));
  TRY(ct_variable_scalar(ctx, 2.0, "v1", true, &v1));
  ct_tape_options opts = ct_tape_default_options();
  opts.persistent = true;
  TRY(ct_tape_begin(ctx, &opts, &tape));
  TRY(ct_tape_watch(tape, x));
  double x_value;
  TRY(ct_tensor_item(x, &x_value));
  if (x_value > 0.0)
    result = ct_tensor_retain(v0);       /* result = v0 */
  else
    TRY(ct_pow_scalar(v1, 2.0, &result)); /* result = v1**2 */
  TRY(ct_tape_end(tape));
  ct_tensor *vs[2] = {v0, v1};           /* dv0, dv1 = tape.gradient(result, [v0, v1]) */
  TRY(ct_tape_gradient(tape, &result, 1, vs, 2, NULL, CT_UNCONNECTED_NONE, dv));
  print_tensor(t, NULL, dv[0]);
  print_tensor(t, NULL, dv[1]);
  TRY(ct_tape_gradient1(tape, result, x, &dx)); /* dx = tape.gradient(result, x) */
  print_tensor(t, NULL, dx);
  check_scalar(t, "dv0", dv[0], 1.0);
  check_none(t, "dv1", dv[1]);
  check_none(t, "dx", dx);
done:
  ct_tape_free(tape);
  FREE(x, v0, v1, result, dx, dv[0], dv[1]);
  return !t->failed;
}

/* S14: a target that does not depend on the source */
static bool s14_unconnected(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *z = NULL, *g = NULL;
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  TRY(ct_variable_scalar(ctx, 3.0, "y", true, &y));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_mul(y, y, &z));                 /* z = y * y */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, z, x, &g));
  print_tensor(t, NULL, g);
  check_none(t, "dz/dx", g);
done:
  ct_tape_free(tape);
  FREE(x, y, z, g);
  return !t->failed;
}

/* S15: replacing a variable by a tensor (x = x + 1 instead of assign_add) */
static bool s15_replaced_variable(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *next = NULL;
  ct_tensor *dy_dx[2] = {NULL, NULL};
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 2.0, "x", true, &x));
  for (int epoch = 0; epoch < 2; ++epoch) {
    TRY(ct_tape_begin(ctx, NULL, &tape));
    TRY(ct_add_scalar(x, 1.0, &y));      /* y = x + 1 */
    TRY(ct_tape_end(tape));
    TRY(ct_tape_gradient1(tape, y, x, &dy_dx[epoch]));
    char text[128] = "None";
    if (dy_dx[epoch]) TRY(ct_tensor_format(dy_dx[epoch], CT_FORMAT_REPR, text, sizeof text));
    say(t, "%s : %s", ct_tensor_is_variable(x) ? "variable" : "tensor", text);
    ct_tape_free(tape);
    tape = NULL;
    ct_tensor_free(y);
    y = NULL;
    TRY(ct_add_scalar(x, 1.0, &next));   /* x = x + 1: a new tensor; ct_variable_assign_add would keep the variable */
    ct_tensor_free(x);
    x = next;
    next = NULL;
  }
  check_scalar(t, "the first gradient", dy_dx[0], 1.0);
  check_none(t, "the second gradient", dy_dx[1]);
done:
  ct_tape_free(tape);
  FREE(x, y, next, dy_dx[0], dy_dx[1]);
  return !t->failed;
}

/* S16: a step computed outside the library */
static bool s16_outside(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x0 = NULL, *x = NULL, *x2 = NULL, *back = NULL, *y = NULL, *g = NULL;
  ct_tape *tape = NULL;
  const int64_t shape[2] = {2, 2}, two = 2;
  const float init[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 2, shape, init, &x0));
  TRY(ct_variable_create(x0, "x", true, &x));  /* x = tf.Variable([[1.0, 2.0], [3.0, 4.0]]) */
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_pow_scalar(x, 2.0, &x2));             /* x2 = x**2 */
  double host[4];                              /* the mean is taken on the host */
  TRY(ct_tensor_read_f64(x2, host, 4));
  const float column_mean[2] = {(float)((host[0] + host[2]) / 2), (float)((host[1] + host[3]) / 2)};
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 1, &two, column_mean, &back)); /* a new, unrelated tensor */
  TRY(ct_mean(back, NULL, 0, false, &y));      /* y = tf.reduce_mean(y, axis=0) */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x, &g));
  print_tensor(t, NULL, g);
  check_none(t, "dy/dx", g);
done:
  ct_tape_free(tape);
  FREE(x0, x, x2, back, y, g);
  return !t->failed;
}

/* Library messages: warnings and errors are part of a case's output, in the guide's style;
 * notes (and debug messages, with CLTAPE_VERBOSE=1) go to stderr. */
static void on_log(ct_log_level level, const char *message, void *user) {
  tour *t = user;
  static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
  if (level == CT_LOG_DEBUG) {
    const char *v = getenv("CLTAPE_VERBOSE");
    if (!v || !*v || strcmp(v, "0") == 0) return;
  }
  if (level == CT_LOG_WARNING) {
    t->warnings++;
    snprintf(t->warning, sizeof t->warning, "%s", message);
  }
  if (t->id && level >= CT_LOG_WARNING) {
    say(t, "%s: %s", names[level], message);
  } else {
    fflush(stdout);
    fprintf(stderr, "cltape-tour: %s: %s\n", names[level & 3], message);
  }
}

/* S17: integer tensors are not differentiable */
static bool s17_integers(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x = NULL, *y = NULL, *g = NULL;
  ct_tape *tape = NULL;
  TRY(ct_scalar(ctx, CT_INT32, 10.0, &x)); /* x = tf.constant(10) */
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_tape_watch(tape, x));             /* logs a warning through ct_set_log's callback */
  TRY(ct_mul(x, x, &y));                   /* y = x * x */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x, &g));
  print_tensor(t, NULL, g);
  check_none(t, "dy/dx", g);
  if (t->warnings != 1 || !strstr(t->warning, "int32"))
    mismatch(t, "expected one warning naming int32, got %d (\"%s\")", t->warnings, t->warning);
done:
  ct_tape_free(tape);
  FREE(x, y, g);
  return !t->failed;
}

/* S18: state stops gradients */
static bool s18_state(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x0 = NULL, *x1 = NULL, *y = NULL, *g = NULL;
  ct_tape *tape = NULL;
  TRY(ct_variable_scalar(ctx, 3.0, "x0", true, &x0));
  TRY(ct_variable_scalar(ctx, 0.0, "x1", true, &x1));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_variable_assign_add(x1, x0));    /* x1 += x0, not recorded */
  TRY(ct_pow_scalar(x1, 2.0, &y));        /* the tape sees x1 only as it is now */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient1(tape, y, x0, &g)); /* the path through the assignment is lost */
  print_tensor(t, NULL, g);
  check_none(t, "dy/dx0", g);
  double y_value = 0;
  TRY(ct_tensor_item(y, &y_value));
  if (!close_enough(y_value, 9.0, 1e-6, 1e-6)) mismatch(t, "y = %g after x1.assign_add(x0), expected 9", y_value);
done:
  ct_tape_free(tape);
  FREE(x0, x1, y, g);
  return !t->failed;
}

/* AdjustContrastv2 as a user-defined op: for an image (height, width, channels),
 * out = (image - mean) * delta + mean, the mean taken per channel over height and width.
 * One work-item per output element (see ct_custom_op in cltape.h for the argument list). */
static const char adjust_contrast_source[] =
    "__kernel void adjust_contrast(int n_out, __global T *out,\n"
    "                              __global const T *image, int image_rank, int8 image_shape,\n"
    "                              __global const T *delta, int delta_rank, int8 delta_shape) {\n"
    "  int i = get_global_id(0);\n"
    "  if (i >= n_out) return;\n"
    "  int channels = image_shape.s2, pixels = image_shape.s0 * image_shape.s1, c = i % channels;\n"
    "  T mean = 0;\n"
    "  for (int p = 0; p < pixels; ++p) mean += image[p * channels + c];\n"
    "  mean /= (T)pixels;\n"
    "  out[i] = (image[i] - mean) * delta[0] + mean;\n"
    "}\n";

/* The output is shaped like the image; the image must be (height, width, channels) and delta
 * hold one number. */
static ct_status adjust_contrast_shape(int n_inputs, const ct_tensor *const *inputs, int *out_rank,
                                       int64_t *out_shape, ct_dtype *out_dtype, void *user) {
  (void)user;
  if (n_inputs != 2 || ct_tensor_rank(inputs[0]) != 3 || ct_tensor_size(inputs[1]) != 1) return CT_ERR_SHAPE;
  *out_rank = 3;
  memcpy(out_shape, ct_tensor_shape(inputs[0]), 3 * sizeof *out_shape);
  *out_dtype = ct_tensor_dtype(inputs[0]);
  return CT_OK;
}

/* The gradient of AdjustContrastv2, built from ct_ ops. With m = mean(dy) per channel:
 *   d/dimage = delta * (dy - m) + m,   d/ddelta = sum((image - mean(image)) * dy). */
static ct_status adjust_contrast_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)user;
  const ct_tensor *image = ct_grad_ctx_input(g, 0), *delta = ct_grad_ctx_input(g, 1);
  const int hw[2] = {0, 1};
  ct_tensor *dy_mean = NULL, *dy_centered = NULL, *scaled = NULL, *mean = NULL, *centered = NULL, *prod = NULL,
            *total = NULL;
  ct_status s = ct_mean(dy, hw, 2, true, &dy_mean);
  if (s == CT_OK) s = ct_sub(dy, dy_mean, &dy_centered);
  if (s == CT_OK) s = ct_mul(dy_centered, delta, &scaled);
  if (s == CT_OK) s = ct_add(scaled, dy_mean, &dx[0]);
  if (s == CT_OK) s = ct_mean(image, hw, 2, true, &mean);
  if (s == CT_OK) s = ct_sub(image, mean, &centered);
  if (s == CT_OK) s = ct_mul(centered, dy, &prod);
  if (s == CT_OK) s = ct_sum(prod, NULL, 0, false, &total);
  if (s == CT_OK) s = ct_reshape(total, ct_tensor_rank(delta), ct_tensor_shape(delta), &dx[1]);
  FREE(dy_mean, dy_centered, scaled, mean, centered, prod, total);
  return s;
}

/* new_image = adjust_contrast(image, delta) under a tape, then its gradient w.r.t. [image, delta]
 * (out_grad NULL: the gradient of the sum of new_image). The error message, if any, is copied to
 * msg. */
static ct_status adjust_contrast_gradient(ct_context *ctx, ct_tensor *image, ct_tensor *delta, ct_tensor *out_grad,
                                          ct_tensor **grads, char *msg, size_t cap) {
  ct_tape *tape = NULL;
  ct_tensor *new_image = NULL;
  ct_tensor *inputs[2] = {image, delta};
  ct_status s = ct_tape_begin(ctx, NULL, &tape);
  if (s == CT_OK) s = ct_custom_op_call(ctx, "AdjustContrastv2", inputs, 2, &new_image);
  if (s == CT_OK) s = ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_gradient(tape, &new_image, 1, inputs, 2, out_grad ? &out_grad : NULL,
                                       CT_UNCONNECTED_NONE, grads);
  snprintf(msg, cap, "%s", s == CT_OK ? "" : ct_errmsg());
  ct_tensor_free(new_image);
  ct_tape_free(tape);
  return s;
}

/* S19: an op without a registered gradient is an error that names the op, until one is registered */
static bool s19_no_gradient(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *image0 = NULL, *image = NULL, *delta = NULL;
  ct_tensor *image0_2 = NULL, *image2 = NULL, *delta2 = NULL, *weights = NULL, *flat = NULL;
  ct_tensor *grads[2] = {NULL, NULL}, *grads2[2] = {NULL, NULL};
  char msg[512];
  const int64_t shape[3] = {1, 1, 3};
  const float pixels[3] = {0.5f, 0.0f, 0.0f};
  ct_custom_op op = {.name = "AdjustContrastv2", .source = adjust_contrast_source, .kernel = "adjust_contrast",
                     .n_inputs = 2, .shape = adjust_contrast_shape, .user = NULL};
  TRY(ct_custom_op_register(&op));
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 3, shape, pixels, &image0));
  TRY(ct_variable_create(image0, "image", true, &image)); /* image = tf.Variable([[[0.5, 0.0, 0.0]]]) */
  TRY(ct_variable_scalar(ctx, 0.1, "delta", true, &delta)); /* delta = tf.Variable(0.1) */

  ct_status st = adjust_contrast_gradient(ctx, image, delta, NULL, grads, msg, sizeof msg);
  say(t, "%s: %s", ct_status_name(st), msg);
  if (st != CT_ERR_NO_GRADIENT || strcmp(msg, "gradient registry has no entry for: AdjustContrastv2") != 0)
    mismatch(t, "the gradient without a registration returned %s: %s", ct_status_name(st), msg);

  TRY(ct_register_gradient("AdjustContrastv2", adjust_contrast_grad, NULL)); /* tf.RegisterGradient */
  TRY(adjust_contrast_gradient(ctx, image, delta, NULL, grads, msg, sizeof msg));
  print_tensor(t, "d/dimage:", grads[0]);
  print_tensor(t, "d/ddelta:", grads[1]);
  const double ones[3] = {1.0, 1.0, 1.0};
  check_values(t, "d/dimage", grads[0], 3, shape, ones);
  check_scalar(t, "d/ddelta", grads[1], 0.0);

  /* a 2x2 image with an output gradient w exercises both terms of the gradient */
  const int64_t shape2[3] = {2, 2, 1};
  const float pixels2[4] = {0.1f, 0.2f, 0.3f, 0.8f}, w[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 3, shape2, pixels2, &image0_2));
  TRY(ct_variable_create(image0_2, "image2", true, &image2));
  TRY(ct_variable_scalar(ctx, 0.5, "delta2", true, &delta2));
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 3, shape2, w, &weights));
  TRY(adjust_contrast_gradient(ctx, image2, delta2, weights, grads2, msg, sizeof msg));
  const int64_t four = 4;
  TRY(ct_reshape(grads2[0], 1, &four, &flat));
  say(t, "a 2x2x1 image [0.1 0.2 0.3 0.8], delta 0.5, output gradient [1 2 3 4]:");
  print_numpy(t, "d/dimage (flattened):", flat);
  print_numpy(t, "d/ddelta:", grads2[1]);
  double mean_x = 0, mean_w = 0, want_image[4], want_delta = 0;
  for (int i = 0; i < 4; ++i) {
    mean_x += pixels2[i] / 4.0;
    mean_w += w[i] / 4.0;
  }
  for (int i = 0; i < 4; ++i) {
    want_image[i] = 0.5 * (w[i] - mean_w) + mean_w;
    want_delta += (pixels2[i] - mean_x) * w[i];
  }
  check_values_tol(t, "d/dimage (2x2)", grads2[0], 3, shape2, want_image, 1e-5, 1e-5);
  check_values_tol(t, "d/ddelta (2x2)", grads2[1], 0, NULL, &want_delta, 1e-5, 1e-5);
done:
  FREE(image0, image, delta, image0_2, image2, delta2, weights, flat, grads[0], grads[1], grads2[0], grads2[1]);
  return !t->failed;
}

/* S20: zeros instead of None for an unconnected source */
static bool s20_zeros(tour *t) {
  ct_context *ctx = t->ctx;
  ct_tensor *x0 = NULL, *x = NULL, *y = NULL, *z = NULL, *g = NULL;
  ct_tape *tape = NULL;
  const int64_t shape[1] = {2};
  const float values[2] = {2.0f, 2.0f};
  TRY(ct_tensor_from_data(ctx, CT_FLOAT32, 1, shape, values, &x0));
  TRY(ct_variable_create(x0, "x", true, &x)); /* x = tf.Variable([2., 2.]) */
  TRY(ct_variable_scalar(ctx, 3.0, "y", true, &y));
  TRY(ct_tape_begin(ctx, NULL, &tape));
  TRY(ct_pow_scalar(y, 2.0, &z));             /* z = y**2 */
  TRY(ct_tape_end(tape));
  TRY(ct_tape_gradient(tape, &z, 1, &x, 1, NULL, CT_UNCONNECTED_ZERO, &g));
  print_tensor(t, NULL, g);
  const double zeros[2] = {0.0, 0.0};
  check_values(t, "dz/dx", g, 1, shape, zeros);
done:
  ct_tape_free(tape);
  FREE(x0, x, y, z, g);
  return !t->failed;
}

/* ---- the program ---------------------------------------------------------------------------- */
typedef struct {
  const char *id;
  const char *title;
  const char *expected; /* what the guide shows, as CONFORMANCE.md states it */
  bool (*run)(tour *t);
} tour_case;

static const tour_case cases[] = {
    {"S1", "gradient tape: x = Variable(3.0), y = x**2, gradient(y, x)", "6.0", s1_gradient_tape},
    {"S2", "any shape: y = x @ w + b, loss = reduce_mean(y**2), gradient w.r.t. [w, b] and {'w': w, 'b': b}",
     "shapes (3, 2) and (2,), dl_db = y, dl_dw = x^T y, the same by name", s2_any_shape},
    {"S3", "a model: Dense(2, relu) on [[1, 2, 3]], gradient w.r.t. its trainable variables",
     "dense/kernel:0 (3, 2), dense/bias:0 (2,)", s3_model_gradients},
    {"S4", "what is watched: trainable and non-trainable variables, a tensor, a constant",
     "6.0, None, None, None; watched ['x0:0']", s4_watched},
    {"S5", "tape.watch(x) on a constant x = 3.0, y = x**2", "6.0", s5_watch_constant},
    {"S6", "watch_accessed_variables = false, only x1 watched: ys = sum(sin(x0) + softplus(x1))",
     "None and 0.9999546", s6_watch_only},
    {"S7", "gradient w.r.t. an intermediate: y = x*x, z = y*y, dz/dy at x = 3", "18.0", s7_intermediate},
    {"S8", "persistent tape: z = (x*x)**2, then y = x*x, at x = [1, 3]",
     "[4. 108.] then [2. 6.]; a non-persistent tape refuses a second call", s8_persistent},
    {"S9", "two targets, one call each: y0 = x**2, y1 = 1/x at x = 2", "4.0 and -0.25", s9_two_targets},
    {"S10", "both targets in one call: the gradient of y0 + y1", "3.75", s10_sum_of_targets},
    {"S11", "a non-scalar target: y = x * [3., 4.] at x = 2", "7.0", s11_nonscalar_target},
    {"S12", "elementwise: y = sigmoid(x) over linspace(-10, 10, 201), plotted",
     "dy/dx = sigmoid(x) (1 - sigmoid(x)), peak 0.25 at x = 0", s12_sigmoid},
    {"S13", "control flow: result = v0 if x > 0 else v1**2", "dv0 = 1.0, dv1 = None, dx = None", s13_control_flow},
    {"S14", "unconnected: z = y*y, gradient w.r.t. x", "None", s14_unconnected},
    {"S15", "a variable replaced by a tensor: x = x + 1 between two tapes", "1.0, then None", s15_replaced_variable},
    {"S16", "a step computed on the host: the mean of x**2 taken outside the library", "None", s16_outside},
    {"S17", "integers: x = constant(10) watched, y = x*x", "a warning naming int32, then None", s17_integers},
    {"S18", "state: x1.assign_add(x0) inside the tape, y = x1**2", "None", s18_state},
    {"S19", "no registered gradient: AdjustContrastv2 on [[[0.5, 0, 0]]], delta 0.1",
     "the error names AdjustContrastv2; after registering, the gradients", s19_no_gradient},
    {"S20", "unconnected = ZERO: z = y**2, gradient w.r.t. x = [2., 2.]", "[0. 0.]", s20_zeros},
};
#define N_CASES ((int)(sizeof cases / sizeof *cases))

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *device_type_name(ct_device_type type) {
  switch (type) {
    case CT_DEVICE_CPU: return "cpu";
    case CT_DEVICE_GPU: return "gpu";
    case CT_DEVICE_ACCELERATOR: return "accelerator";
    default: return "other";
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: cltape-tour [--device SELECTOR] [--out DIR] [--help]\n"
          "\n"
          "Walks through the automatic differentiation guide, cases S1-S20, with the C calls that\n"
          "do each step, and checks every result against the guide's values. Exit status: 0 when\n"
          "every case matched, 1 when one did not (or the device failed), 2 for bad options.\n"
          "\n"
          "  -d, --device SELECTOR  the OpenCL device: an index as listed by cltape-devices, gpu,\n"
          "                         cpu, or part of the device's or platform's name (default:\n"
          "                         $CLTAPE_DEVICE, else the first GPU, else the first CPU)\n"
          "  -o, --out DIR          where S12 writes its plot, s12-sigmoid.svg and .png (default: .)\n"
          "  -h, --help             this text\n");
}

/* Returns the value of option `name` at argv[*i] ("--out DIR", "--out=DIR", "-o DIR"), advancing
 * *i past it; NULL with *matched set when the value is missing. */
static const char *option_value(int argc, char **argv, int *i, const char *shortname, const char *longname,
                                bool *matched) {
  const char *a = argv[*i];
  size_t ll = strlen(longname);
  *matched = false;
  if (strcmp(a, shortname) == 0 || strcmp(a, longname) == 0) {
    *matched = true;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
  }
  if (strncmp(a, longname, ll) == 0 && a[ll] == '=') {
    *matched = true;
    return a + ll + 1;
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *device = NULL, *out_dir = ".";
  for (int i = 1; i < argc; ++i) {
    bool matched;
    const char *v;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if ((v = option_value(argc, argv, &i, "-d", "--device", &matched)) || matched) {
      if (!v || !*v) {
        fprintf(stderr, "cltape-tour: --device needs a selector\n");
        usage(stderr);
        return 2;
      }
      device = v;
      continue;
    }
    if ((v = option_value(argc, argv, &i, "-o", "--out", &matched)) || matched) {
      if (!v || !*v) {
        fprintf(stderr, "cltape-tour: --out needs a directory\n");
        usage(stderr);
        return 2;
      }
      out_dir = v;
      continue;
    }
    fprintf(stderr, "cltape-tour: unknown argument \"%s\"\n", argv[i]);
    usage(stderr);
    return 2;
  }

  if (make_dirs(out_dir) != 0) {
    fprintf(stderr, "cltape-tour: cannot create the output directory %s: %s\n", out_dir, strerror(errno));
    return 1;
  }
  tour t;
  memset(&t, 0, sizeof t);
  t.out_dir = out_dir;
  ct_set_log(on_log, &t);

  double start = now_seconds();
  ct_status s = ct_context_create(device, &t.ctx);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-tour: no device: %s: %s\n", ct_status_name(s), ct_errmsg());
    if (s == CT_ERR_NO_DEVICE) fprintf(stderr, "cltape-tour: cltape-devices lists the devices it can use\n");
    ct_set_log(NULL, NULL);
    return s == CT_ERR_NO_DEVICE && device ? 2 : 1;
  }
  double setup = now_seconds() - start;
  ct_device_info dev;
  ct_context_device(t.ctx, &dev);
  printf("cltape %s: a tour of the automatic differentiation guide, cases S1-S%d\n", ct_version_string(), N_CASES);
  printf("device: %s | type: %s | driver: %s | platform: %s | %s\n", dev.name, device_type_name(dev.type),
         dev.driver_version, dev.platform, dev.device_version);

  int matched = 0;
  char missed[256] = "";
  for (int i = 0; i < N_CASES; ++i) {
    const tour_case *c = &cases[i];
    t.id = c->id;
    t.failed = false;
    t.why[0] = 0;
    t.warnings = 0;
    t.warning[0] = 0;
    printf("\n%-4s%s\n", c->id, c->title);
    bool ok = c->run(&t) && !t.failed;
    if (ok) {
      matched++;
      printf("%-4smatched: %s\n", c->id, c->expected);
    } else {
      printf("%-4sMISMATCH: %s\n", c->id, t.why[0] ? t.why : "(no reason recorded)");
      size_t len = strlen(missed);
      snprintf(missed + len, sizeof missed - len, "%s%s", len ? ", " : "", c->id);
    }
    fflush(stdout);
  }
  t.id = NULL;
  ct_context_sync(t.ctx);
  double total = now_seconds() - start;
  ct_context_stats stats;
  memset(&stats, 0, sizeof stats);
  ct_context_stats_get(t.ctx, &stats);
  double compute = total - setup - stats.build_seconds;
  printf("\ntime: %.3f s in all: program build %.3f s (%llu built, %llu from the cache), compute %.3f s, "
         "device setup %.3f s\n",
         total, stats.build_seconds, (unsigned long long)stats.programs_built,
         (unsigned long long)stats.programs_from_cache, compute > 0 ? compute : 0.0, setup);
  if (missed[0]) printf("summary: %d of %d cases matched the guide's values (mismatched: %s)\n", matched, N_CASES, missed);
  else printf("summary: %d of %d cases matched the guide's values\n", matched, N_CASES);
  fflush(stdout);
  ct_context_free(t.ctx);
  ct_set_log(NULL, NULL);
  return matched == N_CASES ? 0 : 1;
}
