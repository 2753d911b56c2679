/* runtime.c — platforms, devices, contexts and interop with the caller's OpenCL objects. */
#define _POSIX_C_SOURCE 200809L
#include "ct_host.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
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

bool ctb_has_fp64(const ct_context *ctx) { return ctx->info.fp64; }
const char *ctb_device_name(const ct_context *ctx) { return ctx->info.name; }
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
  ct__handle_free(ctx);
}

void ctb_context_release(ct_context *ctx) {
  if (ctx && --ctx->refs == 0) context_destroy(ctx);
}

/* ---- devices ------------------------------------------------------------------------------- */
/* A string property, trimmed of the trailing spaces some drivers leave; "" when the driver has none
 * (or reports no length), cut to the buffer when longer. buf is never left unterminated. */
static void str_info(cl_device_id d, cl_device_info what, char *buf, size_t cap) {
  buf[0] = 0;
  size_t need = 0;
  if (clGetDeviceInfo(d, what, 0, NULL, &need) != CL_SUCCESS || need == 0) return;
  if (need <= cap) {
    if (clGetDeviceInfo(d, what, cap, buf, NULL) != CL_SUCCESS) buf[0] = 0;
  } else {
    char *full = malloc(need);
    if (full && clGetDeviceInfo(d, what, need, full, NULL) == CL_SUCCESS) {
      memcpy(buf, full, cap - 1);
      buf[cap - 1] = 0;
    }
    free(full);
  }
  buf[cap - 1] = 0;
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
  size_t need = 0;
  if (p && clGetPlatformInfo(p, CL_PLATFORM_NAME, 0, NULL, &need) == CL_SUCCESS && need > 0 &&
      need <= sizeof o->platform) {
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof o->platform, o->platform, NULL) != CL_SUCCESS) o->platform[0] = 0;
  }
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
  cl_uint pw = 0, nw = 0;
  clGetDeviceInfo(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof pw, &pw, NULL);
  clGetDeviceInfo(d, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof nw, &nw, NULL);
  o->float_vector_width = pw > nw ? pw : nw;
  size_t elen = 0;
  o->fp16 = false;
  if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &elen) == CL_SUCCESS && elen) {
    char *ext = calloc(1, elen + 1);
    if (ext && clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, elen, ext, NULL) == CL_SUCCESS)
      o->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    free(ext);
  }
}

/* The platforms and devices, discovered once per process, under a lock: the first calls into an
 * OpenCL driver and the ICD loader (platform discovery, device initialisation) are not safe to make
 * from several threads at once, and every context created afterwards reads this list. A failed
 * discovery (no memory, an OpenCL error) is not remembered: the next call tries again. */
typedef struct {
  cl_platform_id p;
  cl_device_id d;
  ct_device_info info;
} known_device;
static pthread_mutex_t devices_mu = PTHREAD_MUTEX_INITIALIZER;
static known_device *devices; /* kept for the life of the process */
static int n_devices;
static bool discovered;

static ct_status discover_locked(void) {
  if (discovered) return CT_OK;
  cl_uint np = 0;
  cl_int err = clGetPlatformIDs(0, NULL, &np);
  if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (err == CL_SUCCESS && np == 0)) {
    discovered = true;
    return CT_OK;
  }
  if (err != CL_SUCCESS) return CTB_CL_FAIL(NULL, err, "clGetPlatformIDs");
  cl_platform_id *ps = calloc(np, sizeof *ps);
  if (!ps) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "listing platforms");
  err = clGetPlatformIDs(np, ps, NULL);
  if (err != CL_SUCCESS) {
    free(ps);
    return CTB_CL_FAIL(NULL, err, "clGetPlatformIDs");
  }
  known_device *all = NULL;
  int n = 0;
  ct_status s = CT_OK;
  for (cl_uint i = 0; i < np && s == CT_OK; ++i) {
    cl_uint nd = 0;
    if (clGetDeviceIDs(ps[i], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0) continue;
    cl_device_id *ds = calloc(nd, sizeof *ds);
    known_device *grown = ds ? realloc(all, ((size_t)n + nd) * sizeof *all) : NULL;
    if (!grown) {
      free(ds);
      s = ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "listing devices");
      break;
    }
    all = grown;
    if (clGetDeviceIDs(ps[i], CL_DEVICE_TYPE_ALL, nd, ds, NULL) == CL_SUCCESS)
      for (cl_uint j = 0; j < nd; ++j, ++n) {
        all[n].p = ps[i];
        all[n].d = ds[j];
        fill_info(ps[i], ds[j], n, &all[n].info);
      }
    free(ds);
  }
  free(ps);
  if (s != CT_OK) {
    free(all);
    return s;
  }
  devices = all;
  n_devices = n;
  discovered = true;
  return CT_OK;
}

static ct_status discover(void) {
  pthread_mutex_lock(&devices_mu);
  ct_status s = discover_locked();
  pthread_mutex_unlock(&devices_mu);
  return s;
}

ct_status ct_device_list(ct_device_info *out, int cap, int *count) {
  if (!count) return ct__error(NULL, CT_ERR_NULL, "ct_device_list: count is NULL");
  if (cap < 0 || (cap > 0 && !out)) return ct__error(NULL, CT_ERR_INVALID, "ct_device_list: bad capacity/output");
  CT_TRY(discover());
  for (int i = 0; i < n_devices && i < cap; ++i) out[i] = devices[i].info;
  *count = n_devices;
  return CT_OK;
}

static bool contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; ++hay)
    if (strncasecmp(hay, needle, n) == 0) return true;
  return n == 0;
}

/* The first device of the type (CT_DEVICE_GPU, CT_DEVICE_CPU); -1 when none. */
static int first_of_type(ct_device_type type) {
  for (int i = 0; i < n_devices; ++i)
    if (devices[i].info.type == type) return i;
  return -1;
}

/* A selector made of an optional sign and decimal digits only is an index. */
static bool is_index(const char *sel) {
  const char *c = sel + (*sel == '+' || *sel == '-');
  if (!*c) return false;
  for (; *c; ++c)
    if (!isdigit((unsigned char)*c)) return false;
  return true;
}

static ct_status pick(const char *sel, int *index) {
  CT_TRY(discover());
  int found = -1;
  if (sel && *sel) {
    if (is_index(sel)) {
      errno = 0;
      unsigned long long v = *sel == '-' ? 0 : strtoull(sel, NULL, 10);
      if (*sel == '-' || errno == ERANGE || v >= (unsigned long long)n_devices)
        return ct__error(NULL, CT_ERR_NO_DEVICE, "device index %s is out of range: %d device%s found (0 to %d; see "
                         "ct_device_list)", sel, n_devices, n_devices == 1 ? "" : "s", n_devices - 1);
      found = (int)v;
    } else if (strcasecmp(sel, "gpu") == 0) found = first_of_type(CT_DEVICE_GPU);
    else if (strcasecmp(sel, "cpu") == 0) found = first_of_type(CT_DEVICE_CPU);
    else
      for (int i = 0; i < n_devices && found < 0; ++i)
        if (contains_ci(devices[i].info.name, sel) || contains_ci(devices[i].info.platform, sel)) found = i;
    if (found < 0)
      return ct__error(NULL, CT_ERR_NO_DEVICE, "no OpenCL device matches \"%s\" (%d device%s found; see ct_device_list)",
                       sel, n_devices, n_devices == 1 ? "" : "s");
  } else {
    found = first_of_type(CT_DEVICE_GPU);
    if (found < 0) found = first_of_type(CT_DEVICE_CPU);
    if (found < 0 && n_devices > 0) found = 0;
    if (found < 0)
      return ct__error(NULL, CT_ERR_NO_DEVICE, "no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)");
  }
  *index = found;
  return CT_OK;
}

/* A test-only lower limit from the environment: the smaller of `real` and the variable's value. */
static uint64_t test_limit(const char *var, uint64_t real) {
  const char *e = ct__getenv(var);
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
 *   CLTAPE_TEST_INDEX64=1         64-bit index kernels for every launch, whatever the sizes
 *   CLTAPE_TEST_REDUCE_STRIDED=1  the reductions read rows as on a GPU, strided by the whole range
 *   CLTAPE_TEST_VECTOR_WIDTH=N    the kernels built for vectors of N floats (4, 8 or 16; CT_RVW),
 *                                 whatever the device prefers: the code CPU devices with wide
 *                                 vectors run, on any device (scripts/reliability.sh's oclgrind) */
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
  const char *ba = ct__getenv("CLTAPE_TEST_BASE_ALIGN");
  if (ba && *ba) ctx->base_align = (uint32_t)test_limit("CLTAPE_TEST_BASE_ALIGN", UINT32_MAX);
  ctx->cl_version = parse_cl_version(i->device_version);
  const char *v = ct__getenv("CLTAPE_TEST_CL_VERSION");
  if (v && *v) {
    char spelled[32];
    snprintf(spelled, sizeof spelled, "OpenCL %s", v);
    int fake = parse_cl_version(spelled);
    if (fake < ctx->cl_version) ctx->cl_version = fake;
  }
  const char *w = ct__getenv("CLTAPE_TEST_INDEX64");
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
  /* the reductions' vector loads: the device's preferred float width, 4 to 16 elements */
  cl_uint pvw = 0;
  clGetDeviceInfo(ctx->device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof pvw, &pvw, NULL);
  ctx->reduce_vw = pvw >= 16 ? 16 : pvw >= 8 ? 8 : 4;
  const char *tw = ct__getenv("CLTAPE_TEST_VECTOR_WIDTH");
  if (tw && (strcmp(tw, "4") == 0 || strcmp(tw, "8") == 0 || strcmp(tw, "16") == 0)) ctx->reduce_vw = atoi(tw);
  const char *rs = ct__getenv("CLTAPE_TEST_REDUCE_STRIDED");
  ctx->reduce_strided = i->type == CT_DEVICE_GPU || (rs && strcmp(rs, "1") == 0);
  /* the defaults of the programs: CT_LS 256, CT_RVW 4 */
  int on = 0;
  if (g != 256) on += snprintf(ctx->build_options, sizeof ctx->build_options, "-DCT_LS=%zu", g);
  if (ctx->reduce_vw != 4)
    snprintf(ctx->build_options + on, sizeof ctx->build_options - (size_t)on, "%s-DCT_RVW=%d", on ? " " : "",
             ctx->reduce_vw);
}

/* CLTAPE_QUEUE_PROFILING=1 creates the queue with event profiling, so that a driver's own tracing
 * (PoCL's POCL_TRACING=text) records each kernel's start and end; off by default. */
static cl_command_queue_properties queue_properties(void) {
  const char *e = ct__getenv("CLTAPE_QUEUE_PROFILING");
  return e && strcmp(e, "1") == 0 ? CL_QUEUE_PROFILING_ENABLE : 0;
}

static ct_status finish_init(ct_context *ctx) {
  CT_TRY(ctb_choose_half(ctx));
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
  const char *sel = (device && *device) ? device : ct__getenv("CLTAPE_DEVICE");
  int index = 0;
  CT_TRY(pick(sel, &index));
  cl_platform_id p = devices[index].p; /* the list never changes once discovered */
  cl_device_id d = devices[index].d;
  ct_context *ctx = ct__handle_new(CT_HANDLE_CONTEXT, sizeof *ctx);
  if (!ctx) return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "allocating a context");
  ctx->refs = 1;
  ctx->platform = p;
  ctx->device = d;
  ctx->info = devices[index].info;
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
  ctx->queue = clCreateCommandQueue(ctx->context, d, queue_properties(), &err);
  if (err != CL_SUCCESS) {
    ctx->queue = NULL;
    context_destroy(ctx);
    return CTB_CL_FAIL(NULL, err, "clCreateCommandQueue");
  }
  ct_status s = finish_init(ctx);
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
    return ct__error(NULL, CT_ERR_INVALID, "the queue must be in-order: give cltape an in-order queue of its own on "
                     "the context and order it with the out-of-order one through events (ct_context_wait_cl_events, "
                     "ct_context_cl_event)");
  cl_platform_id p = NULL;
  err = clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof p, &p, NULL);
  if (err != CL_SUCCESS) return CTB_CL_FAIL(NULL, err, "clGetDeviceInfo(CL_DEVICE_PLATFORM)");
  ct_context *ctx = ct__handle_new(CT_HANDLE_CONTEXT, sizeof *ctx);
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
  int index = -1;
  if (discover() == CT_OK)
    for (int i = 0; i < n_devices && index < 0; ++i)
      if (devices[i].d == device) index = i;
  fill_info(p, device, index, &ctx->info);
  for (int i = 0; i < n_devices && index < 0; ++i) /* a sub-device or another handle of a listed one */
    if (strcmp(devices[i].info.name, ctx->info.name) == 0) index = ctx->info.index = i;
  ct_status s = finish_init(ctx);
  if (s != CT_OK) {
    context_destroy(ctx);
    return s;
  }
  *out = ctx;
  return CT_OK;
}

ct_status ct_context_cl(const ct_context *ctx, cl_context *context, cl_device_id *device, cl_command_queue *queue) {
  CT_TRY(ct__check_context(ctx, "ct_context_cl"));
  if (context) *context = ctx->context;
  if (device) *device = ctx->device;
  if (queue) *queue = ctx->queue;
  return CT_OK;
}

void ct_context_free(ct_context *ctx) {
  if (!ct__handle_is(ctx, CT_HANDLE_CONTEXT) || ctx->user_freed) return; /* NULL, freed: nothing */
  ctx->user_freed = true;
  ctb_context_release(ctx);
}

ct_status ct_context_device(const ct_context *ctx, ct_device_info *out) {
  if (ctx) CT_TRY(ct__check_context(ctx, "ct_context_device"));
  if (!ctx || !out) return ct__error(NULL, CT_ERR_NULL, "ct_context_device: NULL argument");
  *out = ctx->info;
  return CT_OK;
}

const char *ct_context_errmsg(const ct_context *ctx) {
  return ct__handle_is(ctx, CT_HANDLE_CONTEXT) ? ctx->base.errmsg : "";
}

ct_status ct__check_context(const ct_context *ctx, const char *what) {
  if (!ct__handle_is(ctx, CT_HANDLE_CONTEXT)) return ct__handle_fail(ctx, CT_HANDLE_CONTEXT, what);
  if (!ctb_context_alive(ctx)) return ct__error(NULL, CT_ERR_RELEASED, "%s: the context handle was freed", what);
  return CT_OK;
}

ct_status ct_context_sync(ct_context *ctx) {
  CT_TRY(ct__check_context(ctx, "ct_context_sync"));
  CT_TRY(ctb_force_all(ctx)); /* pending results are computed: the queue then holds all the work */
  cl_int err = clFinish(ctx->queue);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clFinish");
}

/* ---- events shared with the caller ---------------------------------------------------------- */
ct_status ct_context_wait_cl_events(ct_context *ctx, int n, const cl_event *events) {
  CT_TRY(ct__check_context(ctx, "ct_context_wait_cl_events"));
  if (n < 0) return ct__error(ctx, CT_ERR_INVALID, "ct_context_wait_cl_events: negative count %d", n);
  if (n == 0) return CT_OK;
  if (!events) return ct__error(ctx, CT_ERR_NULL, "ct_context_wait_cl_events: events is NULL for %d events", n);
  for (int i = 0; i < n; ++i) {
    if (!events[i]) return ct__error(ctx, CT_ERR_NULL, "ct_context_wait_cl_events: events[%d] is NULL", i);
    cl_context ectx = NULL;
    cl_command_queue eq = NULL;
    cl_int err = clGetEventInfo(events[i], CL_EVENT_CONTEXT, sizeof ectx, &ectx, NULL);
    if (err == CL_SUCCESS) err = clGetEventInfo(events[i], CL_EVENT_COMMAND_QUEUE, sizeof eq, &eq, NULL);
    if (err != CL_SUCCESS)
      return ct__error(ctx, CT_ERR_OPENCL, "ct_context_wait_cl_events: events[%d]: clGetEventInfo failed: %s (%d)", i,
                       ctb_cl_error_name(err), (int)err);
    if (ectx != ctx->context)
      return ct__error(ctx, CT_ERR_CONTEXT, "ct_context_wait_cl_events: events[%d] belongs to another OpenCL context", i);
    /* a command of another queue must be submitted before this queue can wait for it (OpenCL
     * 1.2, 5.13): flushing that queue here spares the caller a hang when it forgot to */
    if (eq && eq != ctx->queue) {
      err = clFlush(eq);
      if (err != CL_SUCCESS) return CTB_CL_FAIL(ctx, err, "clFlush (the queue of an event to wait for)");
    }
  }
  /* results pending before this call are enqueued before the wait, as without fusion */
  CT_TRY(ctb_force_all(ctx));
  /* a barrier: the commands cltape enqueues after it start once the events completed; the host
   * does not wait */
  cl_int err = clEnqueueBarrierWithWaitList(ctx->queue, (cl_uint)n, events, NULL);
  return err == CL_SUCCESS ? CT_OK : CTB_CL_FAIL(ctx, err, "clEnqueueBarrierWithWaitList");
}

ct_status ct_context_cl_event(ct_context *ctx, cl_event *event) {
  if (event) *event = NULL;
  CT_TRY(ct__check_context(ctx, "ct_context_cl_event"));
  if (!event) return ct__error(ctx, CT_ERR_NULL, "ct_context_cl_event: event is NULL");
  CT_TRY(ctb_force_all(ctx)); /* pending results are computed first: the event covers them */
  cl_event ev = NULL;
  /* on the in-order queue, a marker completes when every command before it has completed */
  cl_int err = clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &ev);
  if (err != CL_SUCCESS) return CTB_CL_FAIL(ctx, err, "clEnqueueMarkerWithWaitList");
  /* submitted, so that other queues (and the host) can wait for it */
  err = clFlush(ctx->queue);
  if (err != CL_SUCCESS) {
    clReleaseEvent(ev);
    return CTB_CL_FAIL(ctx, err, "clFlush");
  }
  *event = ev;
  return CT_OK;
}

ct_status ct_context_stats_get(const ct_context *ctx, ct_context_stats *out) {
  if (ctx) CT_TRY(ct__check_context(ctx, "ct_context_stats_get"));
  if (!ctx || !out) return ct__error(NULL, CT_ERR_NULL, "ct_context_stats_get: NULL argument");
  *out = ctx->stats;
  out->native_math = ctx->native_math;
  out->fp16_compute = ctx->half;
  return CT_OK;
}

void ct_context_reset_peak(ct_context *ctx) {
  if (ct__handle_is(ctx, CT_HANDLE_CONTEXT) && !ctx->user_freed)
    ctx->stats.peak_bytes_in_use = ctx->stats.bytes_in_use;
}
