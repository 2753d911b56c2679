/* pool.c — device buffers from a caching pool: a freed buffer is kept in a size class and
 * reused, so a training loop does not call clCreateBuffer per op. Size classes are four per
 * octave (at most 25% slack). */
#include "ct_host.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int size_class(size_t bytes, size_t *cap) {
  if (bytes <= 256) {
    *cap = 256;
    return 0;
  }
  int k = 63 - __builtin_clzll((unsigned long long)(bytes - 1)); /* 2^k < bytes <= 2^(k+1) */
  size_t base = (size_t)1 << k;
  size_t quarter = base / 4;
  int q = (int)((bytes - base + quarter - 1) / quarter); /* 1..4 */
  *cap = base + (size_t)q * quarter;
  int idx = (k - 8) * 4 + q;
  return idx < CTB_POOL_BUCKETS ? idx : -1;
}

static uint64_t pool_limit(const ct_context *ctx) {
  uint64_t lim = ctx->info.global_mem_bytes / 4;
  return lim < (256u << 20) ? (256u << 20) : lim;
}

static void trim(ct_context *ctx) {
  for (int i = 0; i < CTB_POOL_BUCKETS; ++i) {
    ct_buffer *b = ctx->pool[i];
    while (b) {
      ct_buffer *n = b->next_free;
      clReleaseMemObject(b->mem);
      ctx->stats.bytes_pooled -= b->cap;
      free(b);
      b = n;
    }
    ctx->pool[i] = NULL;
  }
}

void ct_context_trim(ct_context *ctx) {
  if (ct__handle_is(ctx, CT_HANDLE_CONTEXT) && ctb_context_alive(ctx)) trim(ctx);
}

void ctb_pool_free(ct_context *ctx) { trim(ctx); }

/* Testing aid: CLTAPE_FAULT_ALLOC_FAIL_AFTER=N, read once when a context is created, makes the
 * N-th device allocation of that context (counting every allocation, pooled or not, from its
 * creation on) fail with CT_ERR_OUT_OF_MEMORY as a full device would. Only that one fails. */
/* Testing aid: CLTAPE_POOL_EXACT=1 (read at context creation) gives every allocation a buffer of
 * exactly its size and never reuses one, so that a memory checker (oclgrind) sees an access past a
 * tensor's end instead of landing in a pool bucket's slack. */
void ctb_pool_init(ct_context *ctx) {
  const char *v = ct__getenv("CLTAPE_FAULT_ALLOC_FAIL_AFTER");
  ctx->alloc_calls = 0;
  ctx->fault_alloc_at = 0;
  if (v && *v) {
    /* decimal digits only (strtoull would take "-1" as 2^64 - 1), within 64 bits */
    bool digits = true;
    for (const char *c = v; *c; ++c) digits = digits && *c >= '0' && *c <= '9';
    errno = 0;
    unsigned long long n = digits ? strtoull(v, NULL, 10) : 0;
    if (digits && errno == 0) ctx->fault_alloc_at = n;
    else ct__log(CT_LOG_WARNING, "CLTAPE_FAULT_ALLOC_FAIL_AFTER=\"%s\" is not a count of allocations; ignored", v);
  }
  const char *exact = ct__getenv("CLTAPE_POOL_EXACT");
  ctx->pool_exact = exact && *exact && strcmp(exact, "0") != 0;
}

/* Could the device hold `bytes` more now? */
static ct_status fits(ct_context *ctx, size_t bytes) {
  if (bytes > ctx->info.max_alloc_bytes)
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY,
                     "allocation of %zu bytes exceeds the device's largest allocation (%llu bytes)", bytes,
                     (unsigned long long)ctx->info.max_alloc_bytes);
  if (ctx->stats.bytes_in_use + bytes > ctx->info.global_mem_bytes)
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocation of %zu bytes exceeds free device memory (%llu of %llu in use)",
                     bytes, (unsigned long long)ctx->stats.bytes_in_use,
                     (unsigned long long)ctx->info.global_mem_bytes);
  return CT_OK;
}

/* The injected failure (CLTAPE_FAULT_ALLOC_FAIL_AFTER) of this allocation, if it is the one. */
static ct_status injected(ct_context *ctx, size_t bytes) {
  if (++ctx->alloc_calls == ctx->fault_alloc_at)
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "device allocation of %zu bytes failed (injected: allocation %llu, "
                     "CLTAPE_FAULT_ALLOC_FAIL_AFTER)", bytes, (unsigned long long)ctx->alloc_calls);
  return CT_OK;
}

static ct_status alloc(ct_context *ctx, size_t bytes, ct_buffer **out);
ct_status ctb_alloc(ct_context *ctx, size_t bytes, ct_buffer **out) {
  *out = NULL;
  CT_TRY(injected(ctx, bytes));
  return alloc(ctx, bytes, out);
}

static ct_status alloc(ct_context *ctx, size_t bytes, ct_buffer **out) {
  *out = NULL;
  CT_TRY(fits(ctx, bytes));
  size_t cap;
  int cls = size_class(bytes, &cap);
  if (ctx->pool_exact) {
    cls = -1;
    cap = bytes ? bytes : 1;
  }
  ct_buffer *b = NULL;
  if (cls >= 0 && ctx->pool[cls]) {
    b = ctx->pool[cls];
    ctx->pool[cls] = b->next_free;
    ctx->stats.bytes_pooled -= b->cap;
    ctx->stats.buffers_reused++;
  } else {
    if (cls < 0 && !ctx->pool_exact) cap = bytes;
    b = calloc(1, sizeof *b);
    if (!b) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a buffer record");
    cl_int err;
    b->mem = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, cap, NULL, &err);
    if (err != CL_SUCCESS) {
      trim(ctx); /* give the pooled memory back and try once more */
      b->mem = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, cap, NULL, &err);
    }
    if (err != CL_SUCCESS) {
      free(b);
      ct_status s = CTB_CL_FAIL(ctx, err, "clCreateBuffer");
      return (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_OUT_OF_HOST_MEMORY ||
              err == CL_INVALID_BUFFER_SIZE)
                 ? ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "device allocation of %zu bytes failed (%s)", cap,
                             ctb_cl_error_name(err))
                 : s;
    }
    b->cap = cap;
    ctx->stats.buffers_created++;
  }
  b->refs = 1;
  b->bytes = bytes;
  b->ctx = ctx;
  b->next_free = NULL;
  ctx->refs++;
  ctx->stats.bytes_in_use += b->cap;
  if (ctx->stats.bytes_in_use > ctx->stats.peak_bytes_in_use) ctx->stats.peak_bytes_in_use = ctx->stats.bytes_in_use;
  *out = b;
  return CT_OK;
}

ct_buffer *ctb_retain(ct_buffer *b) {
  if (b) b->refs++;
  return b;
}

int ctb_refcount(const ct_buffer *b) { return b ? b->refs : 0; }
size_t ctb_bytes(const ct_buffer *b) { return b->bytes; }

/* ---- pending buffers ------------------------------------------------------------------------ */
static ctb_force_fn lazy_force;
static ctb_drop_fn lazy_drop;
void ctb_lazy_hooks(ctb_force_fn force, ctb_drop_fn drop) {
  lazy_force = force;
  lazy_drop = drop;
}

ct_status ctb_alloc_lazy(ct_context *ctx, size_t bytes, void *node, ct_buffer **out) {
  *out = NULL;
  CT_TRY(fits(ctx, bytes)); /* the same refusals as the storage it gets later (which is what
                             * CLTAPE_FAULT_ALLOC_FAIL_AFTER counts) */
  ct_buffer *b = calloc(1, sizeof *b);
  if (!b) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a buffer record");
  b->refs = 1;
  b->bytes = bytes;
  b->ctx = ctx;
  ctb_lazy_put(b, node);
  ctx->refs++;
  *out = b;
  return CT_OK;
}

void *ctb_lazy(const ct_buffer *b) { return b ? b->lazy : NULL; }

void ctb_lazy_put(ct_buffer *b, void *node) {
  b->lazy = node;
  b->lazy_prev = NULL;
  b->lazy_next = b->ctx->lazy_head;
  if (b->ctx->lazy_head) b->ctx->lazy_head->lazy_prev = b;
  b->ctx->lazy_head = b;
}

void *ctb_lazy_take(ct_buffer *b) {
  void *n = b->lazy;
  if (!n) return NULL;
  b->lazy = NULL;
  if (b->lazy_prev) b->lazy_prev->lazy_next = b->lazy_next;
  else b->ctx->lazy_head = b->lazy_next;
  if (b->lazy_next) b->lazy_next->lazy_prev = b->lazy_prev;
  b->lazy_prev = b->lazy_next = NULL;
  return n;
}

ct_status ctb_force_all(ct_context *ctx) {
  while (ctx->lazy_head) {
    ct_buffer *b = ctx->lazy_head;
    ctb_retain(b); /* forcing it may release the last other reference */
    ct_status s = lazy_force(b);
    if (s == CT_OK && b->lazy) s = ct__error(ctx, CT_ERR_INTERNAL, "a pending buffer stayed pending");
    ctb_release(b);
    if (s != CT_OK) return s;
  }
  return CT_OK;
}

ct_status ctb_storage(ct_buffer *b) {
  if (b->mem) return CT_OK;
  ct_buffer *t;
  CT_TRY(ctb_alloc(b->ctx, b->bytes, &t));
  b->mem = t->mem;
  b->cap = t->cap;
  b->ctx->refs--; /* t's reference to the context: b holds its own */
  free(t);
  return CT_OK;
}

ct_status ctb_force(const ct_buffer *b) {
  if (!b || !b->lazy) return CT_OK;
  return lazy_force((ct_buffer *)b);
}

cl_mem *ctb_mem_ptr(const ct_buffer *b) {
  ct_buffer *m = (ct_buffer *)b;
  if (m->lazy) {
    ct_status s = lazy_force(m);
    if (s != CT_OK && m->ctx->lazy_status == CT_OK) m->ctx->lazy_status = s;
  }
  return &m->mem;
}

ct_status ctb_lazy_status(ct_context *ctx) {
  ct_status s = ctx->lazy_status;
  ctx->lazy_status = CT_OK;
  return s;
}

void ctb_release(ct_buffer *b) {
  if (!b || --b->refs > 0) return;
  ct_context *ctx = b->ctx;
  if (b->lazy) lazy_drop(ctb_lazy_take(b));
  if (!b->mem) { /* never given storage */
    free(b);
    ctb_context_release(ctx);
    return;
  }
  ctx->stats.bytes_in_use -= b->cap;
  size_t cap;
  int cls = b->external || ctx->pool_exact ? -1 : size_class(b->cap, &cap);
  if (cls >= 0 && cap == b->cap && !ctx->user_freed && ctx->stats.bytes_pooled + b->cap <= pool_limit(ctx)) {
    b->next_free = ctx->pool[cls];
    ctx->pool[cls] = b;
    ctx->stats.bytes_pooled += b->cap;
  } else {
    clReleaseMemObject(b->mem);
    if (b->held) clReleaseMemObject(b->held);
    free(b);
  }
  ctb_context_release(ctx);
}

/* ---- the caller's buffers (interop/ turns them into tensors) ------------------------------ */
/* A buffer's flags that rule out the access wanted: kernels read every tensor, and write a
 * variable's storage in place. */
static const char *access_refused(cl_mem_flags flags, bool writable) {
  if (flags & CL_MEM_WRITE_ONLY) return "was created CL_MEM_WRITE_ONLY: kernels read it";
  if (writable && (flags & CL_MEM_READ_ONLY)) return "was created CL_MEM_READ_ONLY: updates write it in place";
  return NULL;
}

ct_status ctb_wrap_handle(ct_context *ctx, void *handle, size_t offset, size_t need, bool writable, ct_buffer **out) {
  *out = NULL;
  cl_mem mem = (cl_mem)handle, parent = NULL;
  size_t have = 0, parent_off = 0;
  cl_context mctx = NULL;
  cl_mem_flags flags = 0;
  cl_int err = clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof have, &have, NULL);
  if (err == CL_SUCCESS) err = clGetMemObjectInfo(mem, CL_MEM_CONTEXT, sizeof mctx, &mctx, NULL);
  if (err == CL_SUCCESS) err = clGetMemObjectInfo(mem, CL_MEM_FLAGS, sizeof flags, &flags, NULL);
  if (err == CL_SUCCESS) err = clGetMemObjectInfo(mem, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL);
  if (err == CL_SUCCESS && parent) err = clGetMemObjectInfo(mem, CL_MEM_OFFSET, sizeof parent_off, &parent_off, NULL);
  if (err != CL_SUCCESS) return CTB_CL_FAIL(ctx, err, "clGetMemObjectInfo");
  if (mctx != ctx->context) return ct__error(ctx, CT_ERR_CONTEXT, "the buffer belongs to another OpenCL context");
  const char *refused = access_refused(flags, writable);
  if (refused) return ct__error(ctx, CT_ERR_INVALID, "the buffer %s", refused);
  if (offset > have || have - offset < need) {
    if (offset)
      return ct__error(ctx, CT_ERR_SHAPE, "the buffer holds %zu bytes, the shape needs %zu from byte offset %zu", have,
                       need, offset);
    return ct__error(ctx, CT_ERR_SHAPE, "the buffer holds %zu bytes, the shape needs %zu", have, need);
  }
  /* an offset (within the caller's buffer, or of the caller's sub-buffer within its parent) is a
   * sub-buffer of the parent: kernels take whole buffers, and a sub-buffer's origin must be a
   * multiple of the device's base address alignment */
  cl_mem sub = NULL;
  if (offset && need) {
    size_t origin = parent_off + offset;
    if (origin % ctx->base_align)
      return ct__error(ctx, CT_ERR_INVALID, "byte offset %zu%s is not a multiple of %u, the base address alignment of "
                       "device \"%s\" (CL_DEVICE_MEM_BASE_ADDR_ALIGN)", origin,
                       parent_off ? " (within the sub-buffer's parent)" : "", (unsigned)ctx->base_align,
                       ctx->info.name);
    cl_buffer_region region = {origin, need};
    sub = clCreateSubBuffer(parent ? parent : mem, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err != CL_SUCCESS)
      return err == CL_MISALIGNED_SUB_BUFFER_OFFSET
                 ? ct__error(ctx, CT_ERR_INVALID, "byte offset %zu is not aligned as device \"%s\" requires "
                             "(clCreateSubBuffer: CL_MISALIGNED_SUB_BUFFER_OFFSET)", origin, ctx->info.name)
                 : CTB_CL_FAIL(ctx, err, "clCreateSubBuffer");
  }
  ct_buffer *b = calloc(1, sizeof *b);
  if (!b) {
    if (sub) clReleaseMemObject(sub);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a buffer record");
  }
  clRetainMemObject(mem);
  b->mem = sub ? sub : mem;
  b->held = sub ? mem : NULL;
  b->refs = 1;
  b->bytes = need;
  b->cap = 0;
  b->external = true;
  b->ctx = ctx;
  ctx->refs++;
  *out = b;
  return CT_OK;
}

ct_status ctb_split_off(ct_context *ctx, ct_buffer *b, ct_buffer *spare) {
  ct_status s = ctb_copy(ctx, b, 0, spare, 0, b->bytes);
  if (s != CT_OK) {
    ctb_release(spare);
    return s;
  }
  ct_buffer t = *b;
  b->mem = spare->mem;
  b->held = spare->held;
  b->cap = spare->cap;
  b->external = spare->external;
  spare->mem = t.mem;
  spare->held = t.held;
  spare->cap = t.cap;
  spare->external = t.external;
  spare->bytes = t.bytes;
  return CT_OK;
}

void *ctb_handle(const ct_buffer *b) { return *ctb_mem_ptr(b); }

ct_status ctb_copy_from_handle(ct_context *ctx, void *handle, size_t offset, ct_buffer *dst, size_t bytes) {
  cl_mem d = *ctb_mem_ptr(dst);
  CT_TRY(ctb_lazy_status(ctx));
  cl_int err = clEnqueueCopyBuffer(ctx->queue, (cl_mem)handle, d, offset, 0, bytes, 0, NULL, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueCopyBuffer (DLPack import)");
}
