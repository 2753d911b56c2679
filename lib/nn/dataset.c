/* dataset.c — datasets kept on the device: features [N, ...] and int32 labels [N]. Every source
 * (host arrays, device tensors, .npy files, .npz arrays, IDX files) ends in one constructor; a
 * batch is a slice of the current permutation and a gather of features and labels, all enqueued
 * on the device: iterating over an epoch does not wait for it. */
#include "nn_internal.h"
#include "idx.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ct_dataset {
  uint32_t magic; /* CT_HANDLE_TAG(CT_HANDLE_DATASET) (lib/handle.c) */
  ct_context *ctx;
  int64_t n;
  int rank;                    /* of one example */
  int64_t shape[CT_MAX_RANK];  /* of one example */
  int classes;
  ct_tensor *features;         /* [n, ...] */
  ct_tensor *labels;           /* [n] int32 */
  ct_tensor *order;            /* [n] int32: the permutation in use */
};

/* Labels are class indices: 0 .. 2^24. */
#define MAX_LABEL (1 << 24)

ct_dataset_options ct_dataset_default_options(void) {
  ct_dataset_options o;
  memset(&o, 0, sizeof o);
  o.dtype = CT_FLOAT32;
  o.scale = 1.0;
  o.offset = 0.0;
  return o;
}

ct_idx_dataset_options ct_idx_dataset_default_options(void) {
  ct_idx_dataset_options o;
  memset(&o, 0, sizeof o);
  o.dtype = CT_FLOAT32;
  o.scale = 1.0 / 255.0;
  o.offset = 0.0;
  o.channel_axis = true;
  return o;
}

static ct_status upload_order(ct_dataset *ds, const int32_t *perm) {
  ct_tensor *t = NULL;
  int64_t shape[1] = {ds->n};
  CT_TRY(ct_tensor_from_data(ds->ctx, CT_INT32, 1, shape, perm, &t));
  ct_tensor_free(ds->order);
  ds->order = t;
  return CT_OK;
}

static ct_status identity_order(ct_dataset *ds) {
  int32_t *p = malloc(sizeof *p * (size_t)(ds->n ? ds->n : 1));
  if (!p) return ct__error(ds->ctx, CT_ERR_OUT_OF_MEMORY, "dataset order");
  for (int64_t i = 0; i < ds->n; ++i) p[i] = (int32_t)i;
  ct_status s = upload_order(ds, p);
  free(p);
  return s;
}

static ct_status check_options(ct_context *ctx, const ct_dataset_options *o, const char *fn) {
  if (o->dtype != CT_FLOAT32 && o->dtype != CT_FLOAT64 && o->dtype != CT_INT32)
    return ct__error(ctx, CT_ERR_DTYPE, "%s: options.dtype %d is not a dtype", fn, (int)o->dtype);
  CT_TRY(ct__check_dtype(ctx, o->dtype));
  if (o->limit < 0) return ct__error(ctx, CT_ERR_INVALID, "%s: negative limit %lld", fn, (long long)o->limit);
  if (!isfinite(o->scale) || !isfinite(o->offset))
    return ct__error(ctx, CT_ERR_INVALID, "%s: scale and offset must be finite numbers", fn);
  return CT_OK;
}

/* A new dataset of ctx holding features and labels (references taken), in their order. */
static ct_status dataset_new(ct_context *ctx, ct_tensor *features, ct_tensor *labels, int classes, ct_dataset **out) {
  if (ct_tensor_shape(features)[0] > INT32_MAX) /* the permutation is int32 */
    return ct__error(ctx, CT_ERR_SHAPE, "dataset: %lld examples, more than %d", (long long)ct_tensor_shape(features)[0],
                     INT32_MAX);
  ct_dataset *ds = ct__handle_new(CT_HANDLE_DATASET, sizeof *ds);
  if (!ds) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "dataset");
  ds->ctx = ctx;
  ctb_context_retain(ctx);
  ds->n = ct_tensor_shape(features)[0];
  ds->rank = ct_tensor_rank(features) - 1;
  memcpy(ds->shape, ct_tensor_shape(features) + 1, sizeof(int64_t) * (size_t)ds->rank);
  ds->classes = classes;
  ds->features = ct_tensor_retain(features);
  ds->labels = ct_tensor_retain(labels);
  ct_status s = identity_order(ds);
  if (s != CT_OK) {
    ct_dataset_free(ds);
    return s;
  }
  *out = ds;
  return CT_OK;
}

/* The labels' checks: integers in 0..2^24; *classes = 1 + the largest. */
static ct_status check_labels(ct_context *ctx, ct_status bad, const int32_t *l, int64_t n, const char *what, int *classes) {
  int maxl = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (l[i] < 0 || l[i] > MAX_LABEL)
      return ct__error(ctx, bad, "%s: label %lld is %d (labels are class indices, 0 to %d)", what, (long long)i,
                       (int)l[i], MAX_LABEL);
    if (l[i] > maxl) maxl = l[i];
  }
  *classes = maxl + 1;
  return CT_OK;
}

/* The one constructor of host data: features x (rank >= 1) converted by o, integer labels y
 * (rank 1), checked, uploaded. `bad` is the status of a bad label value (CT_ERR_FORMAT for a
 * file's, CT_ERR_INVALID for the caller's array); xwhat / ywhat name them in messages. */
static ct_status from_host(ct_context *ctx, const ct_npy *x, const char *xwhat, const ct_npy *y, const char *ywhat,
                           ct_status bad, const ct_dataset_options *o, ct_dataset **out) {
  if (x->rank < 1)
    return ct__error(ctx, CT_ERR_SHAPE, "%s: the features are a scalar; their first axis must be the examples", xwhat);
  if (y->rank != 1)
    return ct__error(ctx, CT_ERR_FORMAT, "%s: labels must have one dimension, not %d (in NumPy: y.ravel())", ywhat,
                     y->rank);
  if (y->type == CT_NPY_F32 || y->type == CT_NPY_F64 || y->type == CT_NPY_F16)
    return ct__error(ctx, CT_ERR_FORMAT, "%s: labels must be integers, not %s", ywhat, ct_npy_type_name(y->type));
  if (x->shape[0] != y->shape[0])
    return ct__error(ctx, CT_ERR_MISMATCH, "%s holds %lld examples but %s holds %lld labels", xwhat,
                     (long long)x->shape[0], ywhat, (long long)y->shape[0]);
  int64_t n = o->limit && o->limit < x->shape[0] ? o->limit : x->shape[0];
  int64_t shape[CT_MAX_RANK];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->rank);
  shape[0] = n;
  size_t per = n ? x->count / (size_t)x->shape[0] : 0;
  void *host = NULL, *lab = NULL;
  ct_tensor *f = NULL, *l = NULL;
  int classes = 0;
  ct_status s = ct__npy_convert(ctx, CT_ERR_DTYPE, x, (size_t)n * per, o->dtype, o->scale, o->offset, xwhat, &host);
  if (s == CT_OK) s = ct__npy_convert(ctx, bad, y, (size_t)n, CT_INT32, 1.0, 0.0, ywhat, &lab);
  if (s == CT_OK) s = check_labels(ctx, bad, lab, n, ywhat, &classes);
  if (s == CT_OK) s = ct_tensor_from_data(ctx, o->dtype, x->rank, shape, host, &f);
  if (s == CT_OK) s = ct_tensor_from_data(ctx, CT_INT32, 1, shape, lab, &l);
  free(host);
  free(lab);
  if (s == CT_OK) s = dataset_new(ctx, f, l, classes, out);
  ct_tensor_free(f);
  ct_tensor_free(l);
  return s;
}

/* The checks every constructor starts with. */
static ct_status begin(ct_context *ctx, ct_dataset **out, const ct_dataset_options *opts, ct_dataset_options *o,
                       const char *fn) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(ct__check_context(ctx, fn));
  *o = opts ? *opts : ct_dataset_default_options();
  return check_options(ctx, o, fn);
}

ct_status ct_dataset_from_arrays(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, const void *features,
                                 const int32_t *labels, const ct_dataset_options *opts, ct_dataset **out) {
  static const char fn[] = "ct_dataset_from_arrays";
  ct_dataset_options o;
  CT_TRY(begin(ctx, out, opts, &o, fn));
  if (dtype != CT_FLOAT32 && dtype != CT_FLOAT64 && dtype != CT_INT32)
    return ct__error(ctx, CT_ERR_DTYPE, "%s: dtype %d is not a dtype", fn, (int)dtype);
  if (rank < 1 || rank > CT_MAX_RANK)
    return ct__error(ctx, CT_ERR_SHAPE, "%s: rank %d (the features need 1 to %d axes, the first the examples)", fn,
                     rank, CT_MAX_RANK);
  if (!shape) return ct__error(ctx, CT_ERR_NULL, "%s: shape is NULL", fn);
  ct_npy x, y;
  memset(&x, 0, sizeof x);
  memset(&y, 0, sizeof y);
  x.rank = rank;
  x.count = 1;
  for (int i = 0; i < rank; ++i) {
    if (shape[i] < 0) return ct__error(ctx, CT_ERR_SHAPE, "%s: extent %d is negative (%lld)", fn, i, (long long)shape[i]);
    if (shape[i] > 0 && x.count > ((size_t)1 << 40) / (size_t)shape[i])
      return ct__error(ctx, CT_ERR_SHAPE, "%s: the shape holds too many elements", fn);
    x.shape[i] = shape[i];
    x.count *= (size_t)shape[i];
  }
  if ((!features && x.count) || (!labels && shape[0]))
    return ct__error(ctx, CT_ERR_NULL, "%s: the feature and label arrays are required", fn);
  x.type = dtype == CT_FLOAT32 ? CT_NPY_F32 : dtype == CT_FLOAT64 ? CT_NPY_F64 : CT_NPY_I32;
  x.data = (void *)features;
  y.type = CT_NPY_I32;
  y.rank = 1;
  y.shape[0] = shape[0];
  y.count = (size_t)shape[0];
  y.data = (void *)labels;
  return from_host(ctx, &x, "features", &y, "labels", CT_ERR_INVALID, &o, out);
}

ct_status ct_dataset_from_tensors(const ct_tensor *features, const ct_tensor *labels, ct_dataset **out) {
  static const char fn[] = "ct_dataset_from_tensors";
  if (!out) return ct__error(NULL, CT_ERR_NULL, "%s: out is NULL", fn);
  *out = NULL;
  CT_TRY(ct__check(features, fn));
  CT_TRY(ct__check(labels, fn));
  ct_context *ctx = features->ctx;
  if (labels->ctx != ctx) return ct__error(ctx, CT_ERR_CONTEXT, "%s: features and labels belong to different contexts", fn);
  if (features->rank < 1)
    return ct__error(ctx, CT_ERR_SHAPE, "%s: the features are a scalar; their first axis must be the examples", fn);
  if (labels->rank != 1) return ct__error(ctx, CT_ERR_SHAPE, "%s: labels must have rank 1, not %d", fn, labels->rank);
  if (labels->dtype != CT_INT32)
    return ct__error(ctx, CT_ERR_DTYPE, "%s: labels must be int32, not %s", fn, ct_dtype_name(labels->dtype));
  if (features->shape[0] != labels->shape[0])
    return ct__error(ctx, CT_ERR_MISMATCH, "%s: %lld examples but %lld labels", fn, (long long)features->shape[0],
                     (long long)labels->shape[0]);
  /* a variable is taken as its value now; an immutable tensor is shared */
  ct_tensor *f = NULL, *l = NULL;
  ct_status s = ct_tensor_is_variable(features) ? ct_variable_value(features, &f)
                                                : (f = ct_tensor_retain((ct_tensor *)features), CT_OK);
  if (s == CT_OK)
    s = ct_tensor_is_variable(labels) ? ct_variable_value(labels, &l) : (l = ct_tensor_retain((ct_tensor *)labels), CT_OK);
  int64_t n = labels->shape[0];
  int32_t *host = s == CT_OK ? malloc(sizeof *host * (size_t)(n ? n : 1)) : NULL;
  if (s == CT_OK && !host) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "%s: %lld labels", fn, (long long)n);
  if (s == CT_OK) s = ct_tensor_read(l, host, sizeof *host * (size_t)n);
  int classes = 0;
  if (s == CT_OK) s = check_labels(ctx, CT_ERR_INVALID, host, n, "labels", &classes);
  free(host);
  if (s == CT_OK) s = dataset_new(ctx, f, l, classes, out);
  ct_tensor_free(f);
  ct_tensor_free(l);
  return s;
}

ct_status ct_dataset_open_npy(ct_context *ctx, const char *features_path, const char *labels_path,
                              const ct_dataset_options *opts, ct_dataset **out) {
  static const char fn[] = "ct_dataset_open_npy";
  ct_dataset_options o;
  CT_TRY(begin(ctx, out, opts, &o, fn));
  if (!features_path || !labels_path) return ct__error(ctx, CT_ERR_NULL, "%s: both paths are required", fn);
  ct_npy x, y;
  memset(&y, 0, sizeof y);
  ct_status s = ct_npy_read(features_path, &x);
  if (s == CT_OK) s = ct_npy_read(labels_path, &y);
  if (s != CT_OK) s = ct__error(ctx, s, "%s: %s", fn, ct__errmsg_copy());
  char xw[1100], yw[1100];
  snprintf(xw, sizeof xw, "features file %.1024s", features_path);
  snprintf(yw, sizeof yw, "labels file %.1024s", labels_path);
  if (s == CT_OK) s = from_host(ctx, &x, xw, &y, yw, CT_ERR_FORMAT, &o, out);
  ct_npy_free(&x);
  ct_npy_free(&y);
  return s;
}

ct_status ct_dataset_open_npz(ct_context *ctx, const char *path, const char *features_name, const char *labels_name,
                              const ct_dataset_options *opts, ct_dataset **out) {
  static const char fn[] = "ct_dataset_open_npz";
  ct_dataset_options o;
  CT_TRY(begin(ctx, out, opts, &o, fn));
  if (!path || !features_name || !labels_name)
    return ct__error(ctx, CT_ERR_NULL, "%s: the path and both array names are required", fn);
  ct_npy a[2];
  const char *names[2] = {features_name, labels_name};
  ct_status s = ct__npz_read(ctx, path, 2, names, a);
  if (s != CT_OK) return ct__error(ctx, s, "%s: %s", fn, ct__errmsg_copy());
  char xw[1400], yw[1400];
  snprintf(xw, sizeof xw, "%.1024s: array '%.256s'", path, features_name);
  snprintf(yw, sizeof yw, "%.1024s: array '%.256s'", path, labels_name);
  s = from_host(ctx, &a[0], xw, &a[1], yw, CT_ERR_FORMAT, &o, out);
  ct_npy_free(&a[0]);
  ct_npy_free(&a[1]);
  return s;
}

/* ---- IDX files --------------------------------------------------------------------------------- */
static ct_status read_idx(ct_context *ctx, const char *path, const char *what, ct_idx *x) {
  ct_status s = ct_idx_read(path, x);
  if (s != CT_OK) return ct__error(ctx, s, "%s file %s: %s", what, path, ct__errmsg_copy());
  return CT_OK;
}

/* An IDX array seen as a .npy one (the same element types, the data shared). */
static void npy_view(const ct_idx *x, ct_npy *v) {
  memset(v, 0, sizeof *v);
  switch (x->type) {
    case CT_IDX_U8: v->type = CT_NPY_U8; break;
    case CT_IDX_I8: v->type = CT_NPY_I8; break;
    case CT_IDX_I16: v->type = CT_NPY_I16; break;
    case CT_IDX_I32: v->type = CT_NPY_I32; break;
    case CT_IDX_F32: v->type = CT_NPY_F32; break;
    case CT_IDX_F64: v->type = CT_NPY_F64; break;
  }
  v->rank = x->ndims;
  memcpy(v->shape, x->dims, sizeof(int64_t) * (size_t)x->ndims);
  v->count = x->count;
  v->nbytes = x->nbytes;
  v->data = x->data;
}

ct_status ct_idx_dataset_open(ct_context *ctx, const char *images_path, const char *labels_path,
                              const ct_idx_dataset_options *opts, ct_idx_dataset **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_idx_dataset_open: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_idx_dataset_open"));
  if (!images_path || !labels_path)
    return ct__error(ctx, CT_ERR_NULL, "ct_idx_dataset_open: ctx and both paths are required");
  ct_idx_dataset_options io = opts ? *opts : ct_idx_dataset_default_options();
  if (!ct__is_float(io.dtype)) return ct__error(ctx, CT_ERR_DTYPE, "ct_idx_dataset_open: images must be float32 or float64");
  ct_dataset_options o = {.dtype = io.dtype, .scale = io.scale, .offset = io.offset, .limit = io.limit};
  CT_TRY(check_options(ctx, &o, "ct_idx_dataset_open"));
  ct_idx im, lb;
  memset(&lb, 0, sizeof lb);
  CT_TRY(read_idx(ctx, images_path, "image", &im));
  ct_status s = read_idx(ctx, labels_path, "label", &lb);
  if (s == CT_OK) {
    ct_npy x, y;
    npy_view(&im, &x);
    npy_view(&lb, &y);
    if (io.channel_axis && x.rank == 3) x.shape[x.rank++] = 1;
    char xw[1100], yw[1100];
    snprintf(xw, sizeof xw, "image file %.1024s", images_path);
    snprintf(yw, sizeof yw, "label file %.1024s", labels_path);
    s = from_host(ctx, &x, xw, &y, yw, CT_ERR_FORMAT, &o, out);
  }
  ct_idx_free(&im);
  ct_idx_free(&lb);
  return s;
}

#define CHECK_DS(ds, fn) CT_CHECK_HANDLE(ds, CT_HANDLE_DATASET, fn)

void ct_dataset_free(ct_dataset *ds) {
  if (!ct__handle_is(ds, CT_HANDLE_DATASET)) return;
  ct_tensor_free(ds->features);
  ct_tensor_free(ds->labels);
  ct_tensor_free(ds->order);
  ct_context *ctx = ds->ctx;
  ct__handle_free(ds);
  if (ctx) ctb_context_release(ctx);
}

int64_t ct_dataset_size(const ct_dataset *ds) { return ct__handle_is(ds, CT_HANDLE_DATASET) ? ds->n : -1; }
int ct_dataset_num_classes(const ct_dataset *ds) {
  return ct__handle_is(ds, CT_HANDLE_DATASET) ? ds->classes : -1;
}

ct_status ct_dataset_example_shape(const ct_dataset *ds, int *rank, int64_t *shape) {
  CT_TRY(CHECK_DS(ds, "ct_dataset_example_shape"));
  if (!rank || !shape) return ct__error(NULL, CT_ERR_NULL, "ct_dataset_example_shape: NULL argument");
  *rank = ds->rank;
  memcpy(shape, ds->shape, sizeof(int64_t) * (size_t)ds->rank);
  return CT_OK;
}

ct_status ct_dataset_shuffle(ct_dataset *ds, uint64_t seed) {
  CT_TRY(CHECK_DS(ds, "ct_dataset_shuffle"));
  size_t n = (size_t)ds->n;
  int32_t *p = malloc(sizeof *p * (n ? n : 1));
  double *u = malloc(sizeof *u * (n ? n : 1));
  ct_status s = CT_OK;
  if (!p || !u) s = ct__error(ds->ctx, CT_ERR_OUT_OF_MEMORY, "ct_dataset_shuffle");
  if (s == CT_OK) {
    for (size_t i = 0; i < n; ++i) p[i] = (int32_t)i;
    ct__philox_fill_uniform(ct__mix64(seed, 0x73687566666c65ULL), (int64_t)n, u);
    for (size_t i = n; i > 1; --i) { /* Fisher-Yates */
      size_t j = (size_t)(u[i - 1] * (double)i);
      if (j >= i) j = i - 1;
      int32_t t = p[i - 1];
      p[i - 1] = p[j];
      p[j] = t;
    }
    s = upload_order(ds, p);
  }
  free(p);
  free(u);
  return s;
}

ct_status ct_dataset_unshuffle(ct_dataset *ds) {
  CT_TRY(CHECK_DS(ds, "ct_dataset_unshuffle"));
  return identity_order(ds);
}

int64_t ct_dataset_num_batches(const ct_dataset *ds, int64_t batch_size, bool drop_remainder) {
  if (!ct__handle_is(ds, CT_HANDLE_DATASET) || batch_size < 1) return -1;
  /* no n + batch_size - 1: it overflows for a batch size near INT64_MAX */
  return ds->n / batch_size + (!drop_remainder && ds->n % batch_size != 0);
}

ct_status ct_dataset_batch(ct_dataset *ds, int64_t index, int64_t batch_size, ct_tensor **features,
                               ct_tensor **labels) {
  if (features) *features = NULL;
  if (labels) *labels = NULL;
  CT_TRY(CHECK_DS(ds, "ct_dataset_batch"));
  if (batch_size < 1) return ct__error(ds->ctx, CT_ERR_INVALID, "ct_dataset_batch: batch_size %lld < 1", (long long)batch_size);
  int64_t nb = ct_dataset_num_batches(ds, batch_size, false);
  if (index < 0 || index >= nb)
    return ct__error(ds->ctx, CT_ERR_INVALID, "ct_dataset_batch: batch %lld of %lld", (long long)index, (long long)nb);
  int64_t b = index * batch_size, e = b + batch_size < ds->n ? b + batch_size : ds->n;
  ct_tensor *idx = NULL;
  ct_status s = ct_slice(ds->order, &b, &e, NULL, &idx);
  if (s == CT_OK && features) s = ct_gather(ds->features, idx, 0, features);
  if (s == CT_OK && labels) s = ct_gather(ds->labels, idx, 0, labels);
  ct_tensor_free(idx);
  if (s != CT_OK) {
    if (features) {
      ct_tensor_free(*features);
      *features = NULL;
    }
    if (labels) {
      ct_tensor_free(*labels);
      *labels = NULL;
    }
  }
  return s;
}

/* ---- the IDX dataset's first names ------------------------------------------------------------- */
int64_t ct_idx_dataset_size(const ct_idx_dataset *ds) { return ct_dataset_size(ds); }
int ct_idx_dataset_num_classes(const ct_idx_dataset *ds) { return ct_dataset_num_classes(ds); }
ct_status ct_idx_dataset_example_shape(const ct_idx_dataset *ds, int *rank, int64_t *shape) {
  return ct_dataset_example_shape(ds, rank, shape);
}
ct_status ct_idx_dataset_shuffle(ct_idx_dataset *ds, uint64_t seed) { return ct_dataset_shuffle(ds, seed); }
ct_status ct_idx_dataset_unshuffle(ct_idx_dataset *ds) { return ct_dataset_unshuffle(ds); }
int64_t ct_idx_dataset_num_batches(const ct_idx_dataset *ds, int64_t batch_size, bool drop_remainder) {
  return ct_dataset_num_batches(ds, batch_size, drop_remainder);
}
ct_status ct_idx_dataset_batch(ct_idx_dataset *ds, int64_t index, int64_t batch_size, ct_tensor **images,
                               ct_tensor **labels) {
  return ct_dataset_batch(ds, index, batch_size, images, labels);
}
void ct_idx_dataset_free(ct_idx_dataset *ds) { ct_dataset_free(ds); }
