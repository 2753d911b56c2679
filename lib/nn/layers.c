/* layers.c — the built-in layers: Dense, Conv2D, MaxPool2D, AvgPool2D, Flatten, Dropout. Each is
 * a module whose forward reads its variables from the params array it is given (the variables,
 * or their replacements in a functional call). */
#include "nn_internal.h"
#include <stdlib.h>
#include <string.h>

ct_layer_options ct_layer_default_options(void) {
  ct_layer_options o;
  memset(&o, 0, sizeof o);
  o.dtype = CT_FLOAT32;
  o.use_bias = true;
  o.kernel_initializer = CT_INIT_GLOROT_UNIFORM;
  o.bias_initializer = CT_INIT_ZEROS;
  return o;
}

static const char *padding_name(ct_padding p) { return p == CT_PADDING_SAME ? "same" : "valid"; }

/* Adds variable `local` initialised by `init`; the seed is derived from the variable's full name
 * (or from the user's seed and the local name). */
static ct_status add_initialized(ct_module *m, const ct_layer_options *o, const char *local, ct_initializer init,
                                 int rank, const int64_t *shape) {
  char full[1200];
  snprintf(full, sizeof full, "%s/%s:0", m->name, local);
  uint64_t seed = o->seed ? ct__mix64(o->seed, ct__hash_str(local)) : ct__hash_str(full);
  ct_tensor *t = NULL;
  CT_TRY(ct_initialize(m->ctx, init, o->dtype, rank, shape, seed, &t));
  ct_status s = ct_module_add_variable(m, t, local, true, NULL);
  ct_tensor_free(t);
  return s;
}

static ct_status check_options(ct_context *ctx, const ct_layer_options *o, const char *fn) {
  if (!ct__is_float(o->dtype)) return ct__error(ctx, CT_ERR_DTYPE, "%s: layers hold float32 or float64 variables", fn);
  CT_TRY(ct__check_dtype(ctx, o->dtype));
  if ((unsigned)o->kernel_initializer > CT_INIT_HE_NORMAL || (unsigned)o->bias_initializer > CT_INIT_HE_NORMAL)
    return ct__error(ctx, CT_ERR_INVALID, "%s: unknown initializer", fn);
  return CT_OK;
}

static ct_status check_activation(ct_context *ctx, ct_activation a, const char *fn) {
  if ((unsigned)a > CT_ACTIVATION_SOFTPLUS) return ct__error(ctx, CT_ERR_INVALID, "%s: unknown activation %d", fn, (int)a);
  return CT_OK;
}

/* y = activation(y + bias) consuming y */
static ct_status bias_activation(ct_tensor *y, const ct_tensor *bias, ct_activation act, ct_tensor **out) {
  ct_status s = CT_OK;
  if (bias) {
    ct_tensor *b = NULL;
    s = ct_bias_add(y, bias, &b);
    ct_tensor_free(y);
    if (s != CT_OK) return s;
    y = b;
  }
  s = ct_activate(y, act, out);
  ct_tensor_free(y);
  return s;
}

/* ---- Dense ---------------------------------------------------------------------------------- */
typedef struct {
  int64_t in, units;
  ct_activation act;
  bool bias;
} dense_state;

static ct_status dense_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)training;
  const dense_state *st = m->state;
  if (x->rank < 2 || x->shape[x->rank - 1] != st->in) {
    char s1[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    return ct__error(m->ctx, CT_ERR_SHAPE, "layer %s expects inputs [..., %lld], got %s", m->name, (long long)st->in, s1);
  }
  /* a matrix of inputs with a bias and no activation or ReLU: one op, the bias and ReLU applied as
   * the product is stored */
  if (x->rank == 2 && st->bias && (st->act == CT_ACTIVATION_NONE || st->act == CT_ACTIVATION_RELU))
    return ct__dense_bias_act(x, p[0], p[1], st->act == CT_ACTIVATION_RELU, out);
  ct_tensor *y = NULL;
  CT_TRY(ct_matmul(x, p[0], false, false, &y));
  return bias_activation(y, st->bias ? p[1] : NULL, st->act, out);
}

static void dense_describe(const ct_module *m, char *buf, size_t cap) {
  const dense_state *st = m->state;
  snprintf(buf, cap, "%lld -> %lld, %s%s", (long long)st->in, (long long)st->units, ct_activation_name(st->act),
           st->bias ? "" : ", no bias");
}

static const ct_module_vtable dense_vt = {"Dense", "dense", dense_forward, dense_describe, NULL, free};

ct_status ct_dense_create(ct_context *ctx, int64_t in_features, int64_t units, ct_activation activation,
                          const ct_layer_options *opts, ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_dense_create: out is NULL");
  *out = NULL;
  ct_layer_options o = opts ? *opts : ct_layer_default_options();
  CT_TRY(ct__check_context(ctx, "ct_dense_create"));
  CT_TRY(check_options(ctx, &o, "ct_dense_create"));
  CT_TRY(check_activation(ctx, activation, "ct_dense_create"));
  if (in_features < 1 || units < 1)
    return ct__error(ctx, CT_ERR_INVALID, "ct_dense_create: in_features (%lld) and units (%lld) must be >= 1",
                     (long long)in_features, (long long)units);
  dense_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_dense_create");
  *st = (dense_state){in_features, units, activation, o.use_bias};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &dense_vt, o.name, st, &m));
  int64_t ks[2] = {in_features, units}, bs[1] = {units};
  ct_status s = add_initialized(m, &o, "kernel", o.kernel_initializer, 2, ks);
  if (s == CT_OK && o.use_bias) s = add_initialized(m, &o, "bias", o.bias_initializer, 1, bs);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}

/* ---- Conv2D --------------------------------------------------------------------------------- */
typedef struct {
  int64_t in, filters;
  int k[2], s[2];
  ct_padding padding;
  ct_activation act;
  bool bias;
} conv_state;

static ct_status conv_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)training;
  const conv_state *st = m->state;
  if (x->rank != 4 || x->shape[3] != st->in) {
    char s1[96];
    ct__shape_str(x->rank, x->shape, s1, sizeof s1);
    return ct__error(m->ctx, CT_ERR_SHAPE, "layer %s expects NHWC inputs with %lld channels, got %s", m->name,
                     (long long)st->in, s1);
  }
  /* with a bias and no activation or ReLU: one op, the bias and ReLU applied as the sums are stored */
  if (st->bias && (st->act == CT_ACTIVATION_NONE || st->act == CT_ACTIVATION_RELU))
    return ct__conv2d_bias_act(x, p[0], p[1], st->s, st->padding, st->act == CT_ACTIVATION_RELU, out);
  ct_tensor *y = NULL;
  CT_TRY(ct_conv2d(x, p[0], st->s, st->padding, &y));
  return bias_activation(y, st->bias ? p[1] : NULL, st->act, out);
}

static void conv_describe(const ct_module *m, char *buf, size_t cap) {
  const conv_state *st = m->state;
  snprintf(buf, cap, "%dx%d/%d, %lld -> %lld, %s, %s", st->k[0], st->k[1], st->s[0], (long long)st->in,
           (long long)st->filters, padding_name(st->padding), ct_activation_name(st->act));
}

static const ct_module_vtable conv_vt = {"Conv2D", "conv2d", conv_forward, conv_describe, NULL, free};

ct_status ct_conv2d_create(ct_context *ctx, int64_t in_channels, int64_t filters, const int *kernel_size,
                           const int *strides, ct_padding padding, ct_activation activation,
                           const ct_layer_options *opts, ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_conv2d_create: out is NULL");
  *out = NULL;
  ct_layer_options o = opts ? *opts : ct_layer_default_options();
  CT_TRY(ct__check_context(ctx, "ct_conv2d_create"));
  if (!kernel_size) return ct__error(ctx, CT_ERR_NULL, "ct_conv2d_create: kernel_size is NULL");
  CT_TRY(check_options(ctx, &o, "ct_conv2d_create"));
  CT_TRY(check_activation(ctx, activation, "ct_conv2d_create"));
  int s0 = strides ? strides[0] : 1, s1 = strides ? strides[1] : 1;
  if (in_channels < 1 || filters < 1 || kernel_size[0] < 1 || kernel_size[1] < 1 || s0 < 1 || s1 < 1)
    return ct__error(ctx, CT_ERR_INVALID, "ct_conv2d_create: channels, filters, kernel size and strides must be >= 1");
  if (padding != CT_PADDING_SAME && padding != CT_PADDING_VALID)
    return ct__error(ctx, CT_ERR_INVALID, "ct_conv2d_create: unknown padding %d", (int)padding);
  conv_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_conv2d_create");
  *st = (conv_state){in_channels, filters, {kernel_size[0], kernel_size[1]}, {s0, s1}, padding, activation, o.use_bias};
  ct_module *m;
  CT_TRY(ct__module_new(ctx, &conv_vt, o.name, st, &m));
  int64_t ks[4] = {kernel_size[0], kernel_size[1], in_channels, filters}, bs[1] = {filters};
  ct_status s = add_initialized(m, &o, "kernel", o.kernel_initializer, 4, ks);
  if (s == CT_OK && o.use_bias) s = add_initialized(m, &o, "bias", o.bias_initializer, 1, bs);
  if (s != CT_OK) {
    ct_module_free(m);
    return s;
  }
  *out = m;
  return CT_OK;
}

/* ---- pooling -------------------------------------------------------------------------------- */
typedef struct {
  int pool[2], s[2];
  ct_padding padding;
  bool max;
} pool_state;

static ct_status pool_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training, ct_tensor **out) {
  (void)p;
  (void)training;
  const pool_state *st = m->state;
  return st->max ? ct_max_pool2d(x, st->pool, st->s, st->padding, out)
                 : ct_avg_pool2d(x, st->pool, st->s, st->padding, out);
}

static void pool_describe(const ct_module *m, char *buf, size_t cap) {
  const pool_state *st = m->state;
  snprintf(buf, cap, "%dx%d/%d, %s", st->pool[0], st->pool[1], st->s[0], padding_name(st->padding));
}

static const ct_module_vtable maxpool_vt = {"MaxPool2D", "max_pooling2d", pool_forward, pool_describe, NULL, free};
static const ct_module_vtable avgpool_vt = {"AvgPool2D", "average_pooling2d", pool_forward, pool_describe, NULL, free};

static ct_status pool_create(ct_context *ctx, bool max, const int *pool, const int *strides, ct_padding padding,
                             const char *name, ct_module **out, const char *fn) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(ct__check_context(ctx, fn));
  if (!pool) return ct__error(ctx, CT_ERR_NULL, "%s: pool_size is NULL", fn);
  int s0 = strides ? strides[0] : pool[0], s1 = strides ? strides[1] : pool[1];
  if (pool[0] < 1 || pool[1] < 1 || s0 < 1 || s1 < 1)
    return ct__error(ctx, CT_ERR_INVALID, "%s: pool size and strides must be >= 1", fn);
  if (padding != CT_PADDING_SAME && padding != CT_PADDING_VALID)
    return ct__error(ctx, CT_ERR_INVALID, "%s: unknown padding %d", fn, (int)padding);
  pool_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "%s", fn);
  *st = (pool_state){{pool[0], pool[1]}, {s0, s1}, padding, max};
  return ct__module_new(ctx, max ? &maxpool_vt : &avgpool_vt, name, st, out);
}

ct_status ct_max_pool2d_create(ct_context *ctx, const int *pool_size, const int *strides, ct_padding padding,
                               const char *name, ct_module **out) {
  return pool_create(ctx, true, pool_size, strides, padding, name, out, "ct_max_pool2d_create");
}
ct_status ct_avg_pool2d_create(ct_context *ctx, const int *pool_size, const int *strides, ct_padding padding,
                               const char *name, ct_module **out) {
  return pool_create(ctx, false, pool_size, strides, padding, name, out, "ct_avg_pool2d_create");
}

/* ---- Flatten -------------------------------------------------------------------------------- */
static ct_status flatten_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training,
                                 ct_tensor **out) {
  (void)p;
  (void)training;
  if (x->rank < 1) return ct__error(m->ctx, CT_ERR_SHAPE, "layer %s: cannot flatten a scalar", m->name);
  int64_t rest = 1;
  for (int i = 1; i < x->rank; ++i) rest *= x->shape[i];
  int64_t shape[2] = {x->shape[0], rest};
  return ct_reshape(x, 2, shape, out);
}

static const ct_module_vtable flatten_vt = {"Flatten", "flatten", flatten_forward, NULL, NULL, NULL};

ct_status ct_flatten_create(ct_context *ctx, const char *name, ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_flatten_create: out is NULL");
  return ct__module_new(ctx, &flatten_vt, name, NULL, out);
}

/* ---- Dropout -------------------------------------------------------------------------------- */
typedef struct {
  double rate;
  uint64_t seed, calls;
} dropout_state;

static ct_status dropout_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training,
                                 ct_tensor **out) {
  (void)p;
  dropout_state *st = m->state;
  if (!training || st->rate == 0) return ct_identity(x, out);
  uint64_t seed = ct__mix64(st->seed, st->calls);
  ct_status s = ct_dropout(x, st->rate, seed, out);
  if (s == CT_OK) st->calls++;
  return s;
}

static void dropout_describe(const ct_module *m, char *buf, size_t cap) {
  const dropout_state *st = m->state;
  snprintf(buf, cap, "rate %g", st->rate);
}

static void dropout_set_seed(ct_module *m, uint64_t seed) {
  dropout_state *st = m->state;
  st->seed = seed;
  st->calls = 0;
}

static const ct_module_vtable dropout_vt = {"Dropout", "dropout", dropout_forward, dropout_describe, dropout_set_seed,
                                            free};

ct_status ct_dropout_create(ct_context *ctx, double rate, uint64_t seed, const char *name, ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_dropout_create: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_dropout_create"));
  if (!(rate >= 0 && rate < 1)) return ct__error(ctx, CT_ERR_INVALID, "ct_dropout_create: rate %g is outside [0, 1)", rate);
  dropout_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_dropout_create");
  st->rate = rate;
  st->seed = seed;
  return ct__module_new(ctx, &dropout_vt, name, st, out);
}

/* ---- Activation -------------------------------------------------------------------------------- */
typedef struct {
  ct_activation act;
} activation_state;

static ct_status activation_forward(ct_module *m, ct_tensor *const *p, const ct_tensor *x, bool training,
                                    ct_tensor **out) {
  (void)p;
  (void)training;
  const activation_state *st = m->state;
  return ct_activate(x, st->act, out);
}

static void activation_describe(const ct_module *m, char *buf, size_t cap) {
  const activation_state *st = m->state;
  snprintf(buf, cap, "%s", ct_activation_name(st->act));
}

static const ct_module_vtable activation_vt = {"Activation", "activation", activation_forward, activation_describe,
                                               NULL, free};

ct_status ct_activation_create(ct_context *ctx, ct_activation activation, const char *name, ct_module **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_activation_create: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_activation_create"));
  CT_TRY(check_activation(ctx, activation, "ct_activation_create"));
  activation_state *st = calloc(1, sizeof *st);
  if (!st) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_activation_create");
  st->act = activation;
  return ct__module_new(ctx, &activation_vt, name, st, out);
}

/* ---- for the layers of other files (transformer.c) ---------------------------------------------- */
ct_status ct__layer_check_options(ct_context *ctx, const ct_layer_options *o, const char *fn) {
  return check_options(ctx, o, fn);
}
ct_status ct__layer_add_variable(ct_module *m, const ct_layer_options *o, const char *local, ct_initializer init,
                                 int rank, const int64_t *shape) {
  return add_initialized(m, o, local, init, rank, shape);
}
