/* dlpack.c — DLPack export and import (OpenCL buffers shared, host data copied): tensors made
 * from and handed out as DLPack tensors; host/ reaches the buffers. */
#include "ct_internal.h"
#include "cltape_cl.h"
#include "cltape_dlpack.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  ct_tensor *tensor; /* kept alive for kDLOpenCL exports */
  void *host;        /* owned data for kDLCPU exports */
  int64_t shape[CT_MAX_RANK];
} export_state;

static void export_deleter(DLManagedTensor *m) {
  if (!m) return;
  export_state *s = m->manager_ctx;
  if (s) {
    ct_tensor_free(s->tensor);
    free(s->host);
    free(s);
  }
  free(m);
}

static ct_status dl_dtype(const ct_context *ctx, ct_dtype dt, DLDataType *o) {
  o->lanes = 1;
  switch (dt) {
    case CT_FLOAT32: o->code = kDLFloat; o->bits = 32; return CT_OK;
    case CT_FLOAT64: o->code = kDLFloat; o->bits = 64; return CT_OK;
    case CT_INT32: o->code = kDLInt; o->bits = 32; return CT_OK;
    case CT_FLOAT16: o->code = kDLFloat; o->bits = 16; return CT_OK;
    case CT_BFLOAT16: o->code = kDLBfloat; o->bits = 16; return CT_OK;
    case CT_INT64: o->code = kDLInt; o->bits = 64; return CT_OK;
    case CT_BOOL: o->code = kDLUInt; o->bits = 8; return CT_OK; /* DLPack 0.6 has no bool code: uint8 0 / 1 */
  }
  return ct__error(ctx, CT_ERR_DTYPE, "DLPack: invalid dtype");
}

static ct_status export_common(const ct_tensor *t, bool host, DLManagedTensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_dlpack_export: out is NULL");
  *out = NULL;
  CT_TRY(ct__check(t, "ct_dlpack_export"));
  ct_context *ctx = t->ctx;
  DLManagedTensor *m = calloc(1, sizeof *m);
  export_state *s = calloc(1, sizeof *s);
  if (!m || !s) {
    free(m);
    free(s);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_dlpack_export");
  }
  m->manager_ctx = s;
  m->deleter = export_deleter;
  memcpy(s->shape, t->shape, sizeof s->shape);
  DLTensor *d = &m->dl_tensor;
  d->ndim = t->rank;
  d->shape = s->shape;
  d->strides = NULL;
  d->byte_offset = 0;
  ct_status st = dl_dtype(ctx, t->dtype, &d->dtype);
  if (st == CT_OK && host) {
    size_t bytes = (size_t)t->size * ct_dtype_size(t->dtype);
    s->host = malloc(bytes ? bytes : 1);
    if (!s->host) st = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "ct_dlpack_export_host: %zu bytes", bytes);
    else st = ct_tensor_read(t, s->host, bytes);
    d->data = s->host;
    d->device.device_type = kDLCPU;
    d->device.device_id = 0;
  } else if (st == CT_OK) {
    st = ct_context_sync(ctx);
    s->tensor = ct_tensor_retain((ct_tensor *)t);
    d->data = ctb_handle(t->buf);
    d->device.device_type = kDLOpenCL;
    ct_device_info info;
    memset(&info, 0, sizeof info);
    if (st == CT_OK) st = ct_context_device(ctx, &info);
    d->device.device_id = info.index;
  }
  if (st != CT_OK) {
    export_deleter(m);
    return st;
  }
  *out = m;
  return CT_OK;
}

ct_status ct_dlpack_export(const ct_tensor *t, DLManagedTensor **out) { return export_common(t, false, out); }
ct_status ct_dlpack_export_host(const ct_tensor *t, DLManagedTensor **out) { return export_common(t, true, out); }

static void release(DLManagedTensor *m) {
  if (m && m->deleter) m->deleter(m);
}

ct_status ct_dlpack_import(ct_context *ctx, DLManagedTensor *m, ct_tensor **out) {
  if (!out) {
    release(m);
    return ct__error(ctx, CT_ERR_NULL, "ct_dlpack_import: out is NULL");
  }
  *out = NULL;
  if (!ctx || !m) {
    release(m);
    return ct__error(ctx, CT_ERR_NULL, "ct_dlpack_import: ctx and the managed tensor are required");
  }
  ct_status cs = ct__check_context(ctx, "ct_dlpack_import");
  if (cs != CT_OK) {
    release(m);
    return cs;
  }
  const DLTensor *d = &m->dl_tensor;
  ct_dtype dt = CT_FLOAT32;
  ct_status st = CT_OK;
  if (d->dtype.lanes != 1) st = ct__error(ctx, CT_ERR_UNSUPPORTED, "DLPack: vector lanes (%u) are not supported", d->dtype.lanes);
  else if (d->dtype.code == kDLFloat && d->dtype.bits == 32) dt = CT_FLOAT32;
  else if (d->dtype.code == kDLFloat && d->dtype.bits == 64) dt = CT_FLOAT64;
  else if (d->dtype.code == kDLInt && d->dtype.bits == 32) dt = CT_INT32;
  else if (d->dtype.code == kDLFloat && d->dtype.bits == 16) dt = CT_FLOAT16;
  else if (d->dtype.code == kDLBfloat && d->dtype.bits == 16) dt = CT_BFLOAT16;
  else if (d->dtype.code == kDLInt && d->dtype.bits == 64) dt = CT_INT64;
  else st = ct__error(ctx, CT_ERR_DTYPE, "DLPack: dtype code %u with %u bits is not supported", d->dtype.code, d->dtype.bits);
  if (st == CT_OK && (d->ndim < 0 || d->ndim > CT_MAX_RANK || (d->ndim > 0 && !d->shape)))
    st = ct__error(ctx, CT_ERR_SHAPE, "DLPack: rank %d is not supported", d->ndim);
  int64_t n = 0;
  if (st == CT_OK) st = ct__check_shape(ctx, d->ndim, d->shape, &n);
  if (st == CT_OK && n > 0 && !d->data) st = ct__error(ctx, CT_ERR_NULL, "DLPack: data is NULL");
  if (st != CT_OK) {
    release(m);
    return st;
  }
  size_t es = ct_dtype_size(dt);
  /* compact row-major? (an empty tensor is: it has nothing to copy) */
  bool compact = true;
  if (d->strides && n > 0) {
    int64_t expect = 1; /* at most n: every extent is at least 1 here */
    for (int i = d->ndim - 1; i >= 0; --i) {
      if (d->shape[i] != 1 && d->strides[i] != expect) compact = false;
      expect *= d->shape[i];
    }
  }
  if (d->device.device_type == kDLOpenCL) {
    cl_mem mem = (cl_mem)d->data;
    if (compact && d->byte_offset == 0) {
      st = ct_tensor_from_cl_mem(ctx, mem, dt, d->ndim, d->shape, out); /* retains mem */
    } else if (compact) {
      ct_tensor *t = NULL;
      st = ct__tensor_new(ctx, dt, d->ndim, d->shape, &t);
      if (st == CT_OK && n) {
        st = ctb_copy_from_handle(ctx, mem, (size_t)d->byte_offset, t->buf, (size_t)n * es);
        if (st == CT_OK) st = ct_context_sync(ctx); /* the producer may free its buffer once we return */
      }
      if (st == CT_OK) *out = t;
      else ct_tensor_free(t);
    } else {
      st = ct__error(ctx, CT_ERR_UNSUPPORTED, "DLPack: strided OpenCL tensors are not supported; pass a compact one");
    }
  } else if (d->device.device_type == kDLCPU || d->device.device_type == kDLCUDAHost) {
    unsigned char *h = malloc((size_t)(n ? n : 1) * es);
    if (!h) st = ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "DLPack import staging");
    /* the nearest and farthest elements from data + byte_offset, in bytes, may not overflow: strides
     * come from the producer and are checked before any of them is used to read */
    if (st == CT_OK && n > 0 && d->strides) {
      int64_t lo = 0, hi = 0, blo, bhi;
      bool bad = d->byte_offset > (uint64_t)INT64_MAX;
      for (int k = 0; k < d->ndim && !bad; ++k) {
        int64_t step;
        bad = __builtin_mul_overflow(d->strides[k], d->shape[k] - 1, &step) ||
              __builtin_add_overflow(step < 0 ? lo : hi, step, step < 0 ? &lo : &hi);
      }
      bad = bad || __builtin_mul_overflow(lo, (int64_t)es, &blo) || __builtin_mul_overflow(hi, (int64_t)es, &bhi) ||
            __builtin_add_overflow(bhi, (int64_t)d->byte_offset, &bhi) ||
            __builtin_add_overflow(blo, (int64_t)d->byte_offset, &blo);
      if (bad) st = ct__error(ctx, CT_ERR_SHAPE, "DLPack: the strides and byte offset reach past any addressable byte");
    }
    for (int64_t i = 0; st == CT_OK && i < n; ++i) {
      int64_t off = 0, rem = i, cst = 1;
      for (int k = d->ndim - 1; k >= 0; --k) {
        int64_t c = rem % d->shape[k];
        rem /= d->shape[k];
        off += c * (d->strides ? d->strides[k] : cst);
        cst *= d->shape[k];
      }
      memcpy(h + (size_t)i * es, (const unsigned char *)d->data + (ptrdiff_t)d->byte_offset + (ptrdiff_t)off * (ptrdiff_t)es,
             es);
    }
    if (st == CT_OK) st = ct_tensor_from_data(ctx, dt, d->ndim, d->shape, h, out);
    free(h);
  } else {
    st = ct__error(ctx, CT_ERR_UNSUPPORTED, "DLPack: device type %d is not supported (OpenCL and CPU are)",
                   (int)d->device.device_type);
  }
  release(m);
  return st;
}
