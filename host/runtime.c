/* runtime.c — platforms, devices, contexts and interop with the caller's OpenCL objects. */
#define _POSIX_C_SOURCE 200809L
#include "ct_host.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *ctb_cl_error_name(cl_int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
    E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
    E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP) E(CL_IMAGE_FORMAT_MISMATCH)
    E(CL_IMAGE_FORMAT_NOT_SUPPORTED) E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE)
    E(CL_MISALIGNED_SUB_BUFFER_OFFSET) E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    E(CL_COMPILE_PROGRAM_FAILURE) E(CL_LINKER_NOT_AVAILABLE) E(CL_LINK_PROGRAM_FAILURE)
    E(CL_INVALID_VALUE) E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM) E(CL_INVALID_DEVICE)
    E(CL_INVALID_CONTEXT) E(CL_INVALID_QUEUE_PROPERTIES) E(CL_INVALID_COMMAND_QUEUE)
    E(CL_INVALID_HOST_PTR) E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS)
    E(CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME)
    E(CL_INVALID_KERNEL_DEFINITION) E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE)
    E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION)
    E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_OFFSET)
    E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_EVENT) E(CL_INVALID_OPERATION) E(CL_INVALID_BUFFER_SIZE)
    E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_INVALID_PROPERTY)
#undef E
    default: return "CL_UNKNOWN_ERROR";
  }
}

char *ctb_errbuf(const ct_context *ctx) { return ((ct_context *)ctx)->errmsg; }
bool ctb_has_fp64(const ct_context *ctx) { return ctx->info.fp64; }
bool ctb_context_alive(const ct_context *ctx) { return ctx && !ctx->user_freed; }
void ctb_context_retain(ct_context *ctx) { ctx->refs++; }

static void context_destroy(ct_context *ctx) {
  ctb_blas_free(ctx);
  if (ctx->queue) clFinish(ctx->queue);
  ctb_programs_free(ctx);
  ctb_pool_free(ctx);
  if (ctx->queue) clReleaseCommandQueue(ctx->queue);
  if (ctx->context) clReleaseContext(ctx->context);
  if (ctx->device) clReleaseDevice(ctx->device);
  free(ctx);
}

void ctb_context_release(ct_context *ctx) {
  if (ctx && --ctx->refs == 0) context_destroy(ctx);
}

/* ---- devices ------------------------------------------------------------------------------- */
static void str_info(cl_device_id d, cl_device_info what, char *buf, size_t cap) {
  buf[0] = 0;
  if (clGetDeviceInfo(d, what, cap, buf, NULL) != CL_SUCCESS) buf[0] = 0;
  buf[cap - 1] = 0;
  /* trim trailing spaces some drivers leave */
  size_t n = strlen(buf);
  while (n && isspace((unsigned char)buf[n - 1])) buf[--n] = 0;
}

static void fill_info(cl_platform_id p, cl_device_id d, int index, ct_device_info *o) {
  memset(o, 0, sizeof *o);
  o->index = index;
  cl_device_type t = 0;
  clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
  o->type = (t & CL_DEVICE_TYPE_GPU) ? CT_DEVICE_GPU
            : (t & CL_DEVICE_TYPE_CPU) ? CT_DEVICE_CPU
            : (t & CL_DEVICE_TYPE_ACCELERATOR) ? CT_DEVICE_ACCELERATOR
                                               : CT_DEVICE_OTHER;
  str_info(d, CL_DEVICE_NAME, o->name, sizeof o->name);
  str_info(d, CL_DEVICE_VENDOR, o->vendor, sizeof o->vendor);
  str_info(d, CL_DEVICE_VERSION, o->device_version, sizeof o->device_version);
  str_info(d, CL_DRIVER_VERSION, o->driver_version, sizeof o->driver_version);
  str_info(d, CL_DEVICE_OPENCL_C_VERSION, o->opencl_c_version, sizeof o->opencl_c_version);
  if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof o->platform, o->platform, NULL) != CL_SUCCESS) o->platform[0] = 0;
  o->platform[sizeof o->platform - 1] = 0;
  cl_uint cu = 0;
  clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
  o->compute_units = cu;
  cl_ulong v = 0;
  clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof v, &v, NULL);
  o->global_mem_bytes = v;
  v = 0;
  clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof v, &v, NULL);
  o->max_alloc_bytes = v;
  v = 0;
  clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof v, &v, NULL);
  o->local_mem_bytes = v;
  size_t wg = 0;
  clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
  o->max_work_group_size = wg;
  cl_device_fp_config fp = 0;
  clGetDeviceInfo(d, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp, &fp, NULL);
  o->fp64 = fp != 0;
}

/* Calls fn for every device of every platform in a stable order; stops when fn returns true. */
typedef bool (*device_visit)(cl_platform_id p, cl_device_id d, int index, void *user);
static ct_status each_device(device_visit fn, void *user, int *count) {
  cl_uint np = 0;
  cl_int err = clGetPlatformIDs(0, NULL, &np);
  int index = 0;
  if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || np == 0) {
    if (count) *count = 0;
    return CT_OK;
  }
  if (err != CL_SUCCESS) return CTB_CL_FAIL(NULL, err, "clGetPlatformIDs");
  cl_platform_id *ps = calloc(np, sizeof *ps);
  if (!ps) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "listing platforms");
  clGetPlatformIDs(np, ps, NULL);
  bool stop = false;
  for (cl_uint i = 0; i < np && !stop; ++i) {
    cl_uint nd = 0;
    if (clGetDeviceIDs(ps[i], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0) continue;
    cl_device_id *ds = calloc(nd, sizeof *ds);
    if (!ds) break;
    clGetDeviceIDs(ps[i], CL_DEVICE_TYPE_ALL, nd, ds, NULL);
    for (cl_uint j = 0; j < nd && !stop; ++j) stop = fn(ps[i], ds[j], index++, user);
    free(ds);
  }
  free(ps);
  if (count) *count = index;
  return CT_OK;
}

typedef struct {
  ct_device_info *out;
  int cap;
} list_state;
static bool list_visit(cl_platform_id p, cl_device_id d, int index, void *user) {
  list_state *s = user;
  if (index < s->cap) fill_info(p, d, index, &s->out[index]);
  return false;
}

ct_status ct_device_list(ct_device_info *out, int cap, int *count) {
  if (!count) return ct__error(NULL, CT_ERR_NULL, "ct_device_list: count is NULL");
  if (cap < 0 || (cap > 0 && !out)) return ct__error(NULL, CT_ERR_INVALID, "ct_device_list: bad capacity/output");
  list_state s = {out, cap};
  return each_device(list_visit, &s, count);
}

typedef struct {
  const char *sel;
  int want_index;     /* >= 0: by index */
  int want_type;      /* CT_DEVICE_GPU / CPU, 0 = any */
  cl_platform_id p;
  cl_device_id d;
  int index;
  bool found;
} pick_state;

static bool contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; ++hay)
    if (strncasecmp(hay, needle, n) == 0) return true;
  return n == 0;
}

static bool pick_visit(cl_platform_id p, cl_device_id d, int index, void *user) {
  pick_state *s = user;
  ct_device_info info;
  fill_info(p, d, index, &info);
  bool ok;
  if (s->want_index >= 0) ok = index == s->want_index;
  else if (s->want_type) ok = info.type == (ct_device_type)s->want_type;
  else ok = contains_ci(info.name, s->sel) || contains_ci(info.platform, s->sel);
  if (ok) {
    s->p = p;
    s->d = d;
    s->index = index;
    s->found = true;
  }
  return ok;
}

static ct_status pick(const char *sel, cl_platform_id *p, cl_device_id *d, int *index) {
  pick_state s = {0};
  s.want_index = -1;
  int count = 0;
  if (sel && *sel) {
    char *end = NULL;
    long v = strtol(sel, &end, 10);
    s.sel = sel;
    if (end && *end == 0 && end != sel) s.want_index = v < 0 ? -2 : (int)v;
    else if (strcasecmp(sel, "gpu") == 0) s.want_type = CT_DEVICE_GPU;
    else if (strcasecmp(sel, "cpu") == 0) s.want_type = CT_DEVICE_CPU;
    CT_TRY(each_device(pick_visit, &s, &count));
    if (!s.found)
      return ct__error(NULL, CT_ERR_NO_DEVICE, "no OpenCL device matches \"%s\" (%d device%s found; see ct_device_list)",
                       sel, count, count == 1 ? "" : "s");
  } else {
    s.want_type = CT_DEVICE_GPU;
    CT_TRY(each_device(pick_visit, &s, &count));
    if (!s.found) {
      s.want_type = CT_DEVICE_CPU;
      CT_TRY(each_device(pick_visit, &s, &count));
    }
    if (!s.found && count > 0) {
      s.want_type = 0;
      s.want_index = 0;
      CT_TRY(each_device(pick_visit, &s, &count));
    }
    if (!s.found)
      return ct__error(NULL, CT_ERR_NO_DEVICE, "no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)");
  }
  *p = s.p;
  *d = s.d;
  *index = s.index;
  return CT_OK;
}

/* A test-only lower limit from the environment: the smaller of `real` and the variable's value. */
static uint64_t test_limit(const char *var, uint64_t real) {
  const char *e = getenv(var);
  if (!e || !*e) return real;
  char *end = NULL;
  unsigned long long v = strtoull(e, &end, 10);
  if (!end || *end || v == 0) {
    ct__log(CT_LOG_WARNING, "%s=%s is not a positive integer: ignored", var, e);
    return real;
  }
  return v < real ? v : real;
}

/* "OpenCL X.Y ..." as X * 100 + Y * 10; 120 where the string does not parse. */
static int parse_cl_version(const char *s) {
  int major = 0, minor = 0;
  if (sscanf(s, "OpenCL %d.%d", &major, &minor) != 2 || major < 1) return 120;
  return major * 100 + minor * 10;
}

/* The limits every launch honours. The CLTAPE_TEST_* variables fake lower ones on any device, for
 * the tests only (tests/test_limits.c); this is the one place that reads them:
 *   CLTAPE_TEST_MAX_WORK_GROUP=N  at most N work-items per group
 *   CLTAPE_TEST_LOCAL_MEM=B       B bytes of local memory
 *   CLTAPE_TEST_BASE_ALIGN=B      sub-buffer origins aligned to B bytes
 *   CLTAPE_TEST_CL_VERSION=X.Y    the device's OpenCL version, for ctb_cl_at_least (lower only)
 *   CLTAPE_TEST_INDEX64=1         64-bit index kernels for every launch, whatever the sizes */
static void device_limits(ct_context *ctx) {
  ct_device_info *i = &ctx->info;
  size_t items[3] = {0, 0, 0};
  if (clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof items, items, NULL) != CL_SUCCESS)
    items[0] = items[1] = items[2] = i->max_work_group_size;
  cl_uint align_bits = 0;
  clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
  if (i->max_work_group_size == 0) i->max_work_group_size = 1;
  i->max_work_group_size = (size_t)test_limit("CLTAPE_TEST_MAX_WORK_GROUP", i->max_work_group_size);
  i->local_mem_bytes = test_limit("CLTAPE_TEST_LOCAL_MEM", i->local_mem_bytes);
  ctx->base_align = (uint32_t)(align_bits / 8 ? align_bits / 8 : 1);
  const char *ba = getenv("CLTAPE_TEST_BASE_ALIGN");
  if (ba && *ba) ctx->base_align = (uint32_t)test_limit("CLTAPE_TEST_BASE_ALIGN", UINT32_MAX);
  ctx->cl_version = parse_cl_version(i->device_version);
  const char *v = getenv("CLTAPE_TEST_CL_VERSION");
  if (v && *v) {
    char spelled[32];
    snprintf(spelled, sizeof spelled, "OpenCL %s", v);
    int fake = parse_cl_version(spelled);
    if (fake < ctx->cl_version) ctx->cl_version = fake;
  }
  const char *w = getenv("CLTAPE_TEST_INDEX64");
  ctx->force_idx64 = w && strcmp(w, "1") == 0;
  for (int d = 0; d < 3; ++d) {
    if (items[d] == 0 || items[d] > i->max_work_group_size) items[d] = i->max_work_group_size;
    ctx->max_items[d] = items[d];
  }
  /* 1-D groups of up to 256 items, within the device's group and the local memory the work-group
   * reductions take (CT_LS elements of the widest type) */
  size_t g = 256;
  while (g > 1 && (g > i->max_work_group_size || g > ctx->max_items[0] || g * sizeof(double) > i->local_mem_bytes))
    g /= 2;
  ctx->group = g;
  if (g != 256) snprintf(ctx->build_options, sizeof ctx->build_options, "-DCT_LS=%zu", g); /* 256: the default */
}

static ct_status finish_init(ct_context *ctx, int index) {
  fill_info(ctx->platform, ctx->device, index, &ctx->info);
  device_limits(ctx);
  ctb_pool_init(ctx);
  ctb_cache_init(ctx);
  ctb_choose_math(ctx);
  ctb_blas_init(ctx);
  return CT_OK;
}

ct_status ct_context_create(const char *device, ct_context **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_context_create: out is NULL");
  *out = NULL;
  const char *sel = (device && *device) ? device : getenv("CLTAPE_DEVICE");
  cl_platform_id p = NULL;
  cl_device_id d = NULL;
  int index = 0;
  CT_TRY(pick(sel, &p, &d, &index));
  ct_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "allocating a context");
  ctx->refs = 1;
  ctx->platform = p;
  ctx->device = d;
  cl_int err;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)p, 0};
  ctx->context = clCreateContext(props, 1, &d, NULL, NULL, &err);
  if (err != CL_SUCCESS) {
    ctx->context = NULL;
    ctx->device = NULL;
    context_destroy(ctx);
    return CTB_CL_FAIL(NULL, err, "clCreateContext");
  }
  clRetainDevice(d);
  ctx->queue = clCreateCommandQueue(ctx->context, d, 0, &err);
  if (err != CL_SUCCESS) {
    ctx->queue = NULL;
    context_destroy(ctx);
    return CTB_CL_FAIL(NULL, err, "clCreateCommandQueue");
  }
  ct_status s = finish_init(ctx, index);
  if (s != CT_OK) {
    context_destroy(ctx);
    return s;
  }
  *out = ctx;
  return CT_OK;
}

ct_status ct_context_create_from_cl(cl_context context, cl_device_id device, cl_command_queue queue,
                                    ct_context **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_context_create_from_cl: out is NULL");
  *out = NULL;
  if (!context || !device || !queue)
    return ct__error(NULL, CT_ERR_NULL, "ct_context_create_from_cl: context, device and queue are required");
  cl_context qctx = NULL;
  cl_device_id qdev = NULL;
  cl_command_queue_properties qp = 0;
  cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL);
  if (err == CL_SUCCESS) err = clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof qdev, &qdev, NULL);
  if (err == CL_SUCCESS) err = clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof qp, &qp, NULL);
  if (err != CL_SUCCESS) return CTB_CL_FAIL(NULL, err, "clGetCommandQueueInfo");
  if (qctx != context || qdev != device)
    return ct__error(NULL, CT_ERR_INVALID, "the queue does not belong to the given context and device");
  if (qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
    return ct__error(NULL, CT_ERR_INVALID, "the queue must be in-order");
  cl_platform_id p = NULL;
  err = clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof p, &p, NULL);
  if (err != CL_SUCCESS) return CTB_CL_FAIL(NULL, err, "clGetDeviceInfo(CL_DEVICE_PLATFORM)");
  ct_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "allocating a context");
  ctx->refs = 1;
  ctx->platform = p;
  clRetainContext(context);
  clRetainDevice(device);
  clRetainCommandQueue(queue);
  ctx->context = context;
  ctx->device = device;
  ctx->queue = queue;
  /* index of the device in ct_device_list, for information */
  int index = -1, count = 0;
  ct_device_info *all = NULL;
  if (ct_device_list(NULL, 0, &count) == CT_OK && count > 0 && (all = calloc((size_t)count, sizeof *all))) {
    ct_device_list(all, count, &count);
    char name[256] = {0};
    clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
    for (int i = 0; i < count; ++i)
      if (strcmp(all[i].name, name) == 0) { index = i; break; }
    free(all);
  }
  ct_status s = finish_init(ctx, index);
  if (s != CT_OK) {
    context_destroy(ctx);
    return s;
  }
  *out = ctx;
  return CT_OK;
}

ct_status ct_context_cl(const ct_context *ctx, cl_context *context, cl_device_id *device, cl_command_queue *queue) {
  if (!ctx) return ct__error(NULL, CT_ERR_NULL, "ct_context_cl: ctx is NULL");
  if (context) *context = ctx->context;
  if (device) *device = ctx->device;
  if (queue) *queue = ctx->queue;
  return CT_OK;
}

void ct_context_free(ct_context *ctx) {
  if (!ctx || ctx->user_freed) return;
  ctx->user_freed = true;
  ctb_context_release(ctx);
}

ct_status ct_context_device(const ct_context *ctx, ct_device_info *out) {
  if (!ctx || !out) return ct__error(NULL, CT_ERR_NULL, "ct_context_device: NULL argument");
  *out = ctx->info;
  return CT_OK;
}

const char *ct_context_errmsg(const ct_context *ctx) { return ctx ? ctx->errmsg : ""; }

ct_status ct_context_sync(ct_context *ctx) {
  if (!ctx) return ct__error(NULL, CT_ERR_NULL, "ct_context_sync: ctx is NULL");
  cl_int err = clFinish(ctx->queue);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clFinish");
}

ct_status ct_context_stats_get(const ct_context *ctx, ct_context_stats *out) {
  if (!ctx || !out) return ct__error(NULL, CT_ERR_NULL, "ct_context_stats_get: NULL argument");
  *out = ctx->stats;
  out->native_math = ctx->native_math;
  return CT_OK;
}

void ct_context_reset_peak(ct_context *ctx) {
  if (ctx) ctx->stats.peak_bytes_in_use = ctx->stats.bytes_in_use;
}
