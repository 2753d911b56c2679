/* idx_dataset.c — IDX image/label datasets (lib/formats/idx.h) kept on the device. A batch is a
 * slice of the current permutation and a gather of images and labels, all enqueued on the
 * device: iterating over an epoch does not wait for it. */
#include "nn_internal.h"
#include "idx.h"
#include <stdlib.h>
#include <string.h>

struct ct_idx_dataset {
  uint32_t magic; /* CT_HANDLE_TAG(CT_HANDLE_DATASET) (lib/handle.c) */
  ct_context *ctx;
  int64_t n;
  int rank;                    /* of one example */
  int64_t shape[CT_MAX_RANK];  /* of one example */
  int classes;
  ct_tensor *images;           /* [n, ...] */
  ct_tensor *labels;           /* [n] int32 */
  ct_tensor *order;            /* [n] int32: the permutation in use */
};

ct_idx_dataset_options ct_idx_dataset_default_options(void) {
  ct_idx_dataset_options o;
  memset(&o, 0, sizeof o);
  o.dtype = CT_FLOAT32;
  o.scale = 1.0 / 255.0;
  o.offset = 0.0;
  o.channel_axis = true;
  return o;
}

static double idx_value(const ct_idx *x, size_t i) {
  switch (x->type) {
    case CT_IDX_U8: return ((const uint8_t *)x->data)[i];
    case CT_IDX_I8: return ((const int8_t *)x->data)[i];
    case CT_IDX_I16: return ((const int16_t *)x->data)[i];
    case CT_IDX_I32: return ((const int32_t *)x->data)[i];
    case CT_IDX_F32: return ((const float *)x->data)[i];
    case CT_IDX_F64: return ((const double *)x->data)[i];
  }
  return 0;
}

static ct_status read_idx(ct_context *ctx, const char *path, const char *what, ct_idx *x) {
  ct_status s = ct_idx_read(path, x);
  if (s != CT_OK) return ct__error(ctx, s, "%s file %s: %s", what, path, ct__errmsg_copy());
  return CT_OK;
}

static ct_status upload_order(ct_idx_dataset *ds, const int32_t *perm) {
  ct_tensor *t = NULL;
  int64_t shape[1] = {ds->n};
  CT_TRY(ct_tensor_from_data(ds->ctx, CT_INT32, 1, shape, perm, &t));
  ct_tensor_free(ds->order);
  ds->order = t;
  return CT_OK;
}

static ct_status identity_order(ct_idx_dataset *ds) {
  int32_t *p = malloc(sizeof *p * (size_t)(ds->n ? ds->n : 1));
  if (!p) return ct__error(ds->ctx, CT_ERR_OUT_OF_MEMORY, "dataset order");
  for (int64_t i = 0; i < ds->n; ++i) p[i] = (int32_t)i;
  ct_status s = upload_order(ds, p);
  free(p);
  return s;
}

ct_status ct_idx_dataset_open(ct_context *ctx, const char *images_path, const char *labels_path,
                              const ct_idx_dataset_options *opts, ct_idx_dataset **out) {
  if (!out) return ct__error(ctx, CT_ERR_NULL, "ct_idx_dataset_open: out is NULL");
  *out = NULL;
  CT_TRY(ct__check_context(ctx, "ct_idx_dataset_open"));
  if (!images_path || !labels_path)
    return ct__error(ctx, CT_ERR_NULL, "ct_idx_dataset_open: ctx and both paths are required");
  ct_idx_dataset_options o = opts ? *opts : ct_idx_dataset_default_options();
  if (!ct__is_float(o.dtype)) return ct__error(ctx, CT_ERR_DTYPE, "ct_idx_dataset_open: images must be float32 or float64");
  CT_TRY(ct__check_dtype(ctx, o.dtype));
  if (o.limit < 0) return ct__error(ctx, CT_ERR_INVALID, "ct_idx_dataset_open: negative limit");
  ct_idx im, lb;
  memset(&lb, 0, sizeof lb);
  CT_TRY(read_idx(ctx, images_path, "image", &im));
  ct_status s = read_idx(ctx, labels_path, "label", &lb);
  ct_idx_dataset *ds = NULL;
  void *host = NULL;
  int32_t *labels = NULL;
  if (s == CT_OK && lb.ndims != 1)
    s = ct__error(ctx, CT_ERR_FORMAT, "label file %s: labels must have one dimension, not %d", labels_path, lb.ndims);
  if (s == CT_OK && (lb.type == CT_IDX_F32 || lb.type == CT_IDX_F64))
    s = ct__error(ctx, CT_ERR_FORMAT, "label file %s: labels must be integers, not %s", labels_path,
                  ct_idx_type_name(lb.type));
  if (s == CT_OK && im.dims[0] != lb.dims[0])
    s = ct__error(ctx, CT_ERR_MISMATCH, "%s holds %lld images but %s holds %lld labels", images_path,
                  (long long)im.dims[0], labels_path, (long long)lb.dims[0]);
  int ex_rank = im.ndims - 1 + (o.channel_axis && im.ndims == 3 ? 1 : 0);
  if (s == CT_OK && ex_rank + 1 > CT_MAX_RANK)
    s = ct__error(ctx, CT_ERR_SHAPE, "image file %s: too many dimensions", images_path);
  if (s == CT_OK) {
    ds = ct__handle_new(CT_HANDLE_DATASET, sizeof *ds);
    if (!ds) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_idx_dataset_open");
  }
  if (s == CT_OK) {
    ds->ctx = ctx;
    ctb_context_retain(ctx);
    ds->n = o.limit && o.limit < im.dims[0] ? o.limit : im.dims[0];
    ds->rank = ex_rank;
    for (int i = 1; i < im.ndims; ++i) ds->shape[i - 1] = im.dims[i];
    if (ex_rank == im.ndims) ds->shape[ex_rank - 1] = 1;
    int64_t per = 1;
    for (int i = 0; i < ds->rank; ++i) per *= ds->shape[i];
    size_t count = (size_t)(ds->n * per), es = ct_dtype_size(o.dtype);
    host = malloc(es * (count ? count : 1));
    labels = malloc(sizeof *labels * (size_t)(ds->n ? ds->n : 1));
    if (!host || !labels) s = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_idx_dataset_open: %zu elements", count);
    for (size_t i = 0; s == CT_OK && i < count; ++i) {
      double v = idx_value(&im, i) * o.scale + o.offset;
      if (o.dtype == CT_FLOAT32) ((float *)host)[i] = (float)v;
      else ((double *)host)[i] = v;
    }
    int maxl = -1;
    for (int64_t i = 0; s == CT_OK && i < ds->n; ++i) {
      double v = idx_value(&lb, (size_t)i);
      if (v < 0 || v > 1 << 24) {
        s = ct__error(ctx, CT_ERR_FORMAT, "label file %s: label %lld is %g (must be >= 0)", labels_path, (long long)i, v);
        break;
      }
      labels[i] = (int32_t)v;
      if (labels[i] > maxl) maxl = labels[i];
    }
    ds->classes = maxl + 1;
    int64_t ishape[CT_MAX_RANK], lshape[1] = {ds->n};
    ishape[0] = ds->n;
    memcpy(ishape + 1, ds->shape, sizeof(int64_t) * (size_t)ds->rank);
    if (s == CT_OK) s = ct_tensor_from_data(ctx, o.dtype, ds->rank + 1, ishape, host, &ds->images);
    if (s == CT_OK) s = ct_tensor_from_data(ctx, CT_INT32, 1, lshape, labels, &ds->labels);
    if (s == CT_OK) s = identity_order(ds);
  }
  free(host);
  free(labels);
  ct_idx_free(&im);
  ct_idx_free(&lb);
  if (s != CT_OK) {
    ct_idx_dataset_free(ds);
    return s;
  }
  *out = ds;
  return CT_OK;
}

#define CHECK_DS(ds, fn) CT_CHECK_HANDLE(ds, CT_HANDLE_DATASET, fn)

void ct_idx_dataset_free(ct_idx_dataset *ds) {
  if (!ct__handle_is(ds, CT_HANDLE_DATASET)) return;
  ct_tensor_free(ds->images);
  ct_tensor_free(ds->labels);
  ct_tensor_free(ds->order);
  ct_context *ctx = ds->ctx;
  ct__handle_free(ds);
  if (ctx) ctb_context_release(ctx);
}

int64_t ct_idx_dataset_size(const ct_idx_dataset *ds) { return ct__handle_is(ds, CT_HANDLE_DATASET) ? ds->n : -1; }
int ct_idx_dataset_num_classes(const ct_idx_dataset *ds) {
  return ct__handle_is(ds, CT_HANDLE_DATASET) ? ds->classes : -1;
}

ct_status ct_idx_dataset_example_shape(const ct_idx_dataset *ds, int *rank, int64_t *shape) {
  CT_TRY(CHECK_DS(ds, "ct_idx_dataset_example_shape"));
  if (!rank || !shape) return ct__error(NULL, CT_ERR_NULL, "ct_idx_dataset_example_shape: NULL argument");
  *rank = ds->rank;
  memcpy(shape, ds->shape, sizeof(int64_t) * (size_t)ds->rank);
  return CT_OK;
}

ct_status ct_idx_dataset_shuffle(ct_idx_dataset *ds, uint64_t seed) {
  CT_TRY(CHECK_DS(ds, "ct_idx_dataset_shuffle"));
  size_t n = (size_t)ds->n;
  int32_t *p = malloc(sizeof *p * (n ? n : 1));
  double *u = malloc(sizeof *u * (n ? n : 1));
  ct_status s = CT_OK;
  if (!p || !u) s = ct__error(ds->ctx, CT_ERR_OUT_OF_MEMORY, "ct_idx_dataset_shuffle");
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

ct_status ct_idx_dataset_unshuffle(ct_idx_dataset *ds) {
  CT_TRY(CHECK_DS(ds, "ct_idx_dataset_unshuffle"));
  return identity_order(ds);
}

int64_t ct_idx_dataset_num_batches(const ct_idx_dataset *ds, int64_t batch_size, bool drop_remainder) {
  if (!ct__handle_is(ds, CT_HANDLE_DATASET) || batch_size < 1) return -1;
  /* no n + batch_size - 1: it overflows for a batch size near INT64_MAX */
  return ds->n / batch_size + (!drop_remainder && ds->n % batch_size != 0);
}

ct_status ct_idx_dataset_batch(ct_idx_dataset *ds, int64_t index, int64_t batch_size, ct_tensor **images,
                               ct_tensor **labels) {
  if (images) *images = NULL;
  if (labels) *labels = NULL;
  CT_TRY(CHECK_DS(ds, "ct_idx_dataset_batch"));
  if (batch_size < 1) return ct__error(ds->ctx, CT_ERR_INVALID, "ct_idx_dataset_batch: batch_size %lld < 1", (long long)batch_size);
  int64_t nb = ct_idx_dataset_num_batches(ds, batch_size, false);
  if (index < 0 || index >= nb)
    return ct__error(ds->ctx, CT_ERR_INVALID, "ct_idx_dataset_batch: batch %lld of %lld", (long long)index, (long long)nb);
  int64_t b = index * batch_size, e = b + batch_size < ds->n ? b + batch_size : ds->n;
  ct_tensor *idx = NULL;
  ct_status s = ct_slice(ds->order, &b, &e, NULL, &idx);
  if (s == CT_OK && images) s = ct_gather(ds->images, idx, 0, images);
  if (s == CT_OK && labels) s = ct_gather(ds->labels, idx, 0, labels);
  ct_tensor_free(idx);
  if (s != CT_OK) {
    if (images) {
      ct_tensor_free(*images);
      *images = NULL;
    }
    if (labels) {
      ct_tensor_free(*labels);
      *labels = NULL;
    }
  }
  return s;
}
