/*
 * cltape.h — reverse-mode automatic differentiation on OpenCL devices.
 *
 * This header is the manual. Conventions that hold for every function below:
 *
 *  - Every fallible function returns a ct_status. CT_OK (0) means success; anything else is an
 *    error whose short text is ct_status_str(status) and whose detailed message (what failed,
 *    where, the OpenCL error name) is ct_errmsg() on the calling thread, and also
 *    ct_context_errmsg(ctx) when a context was known.
 *  - Results come back through out-parameters (the last ones). On error an out-parameter is set
 *    to NULL (or left zero) and nothing is leaked.
 *  - Handles are reference counted. A function that returns a new ct_tensor* gives the caller one
 *    reference, released with ct_tensor_free(). Passing NULL to any *_free function does nothing,
 *    and so does passing a handle that was already freed. A freed handle (of any kind) passed to
 *    any other function is refused with CT_ERR_RELEASED, however long ago it was freed; a handle
 *    of another kind cast in is refused with CT_ERR_INVALID.
 *  - Inputs are borrowed: an op never takes ownership of its arguments.
 *  - One context per thread. A context, and everything made from it (tensors, tapes, variables,
 *    modules, optimizers), is used by one thread at a time; handing it to another thread needs
 *    synchronisation between the two (a mutex, a join). Different threads may create, use and
 *    free contexts of their own at the same time, the process's first contexts included (devices
 *    are discovered once, under a lock). Tapes are per thread: a tape records the ops of the
 *    thread that created it.
 *  - Execution is asynchronous: ops enqueue kernels and return; reading data back
 *    (ct_tensor_read, ct_tensor_item, ct_tensor_format) waits for the results it needs.
 */
/** \file cltape.h
 *  \brief Core API: contexts, tensors, ops, gradient tapes, variables, custom ops and gradients, gradient checking and matmul tuning. */
#ifndef CLTAPE_H
#define CLTAPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the library's exported functions (default symbol visibility when building it). */
#if defined(_WIN32)
#define CT_API
#elif defined(CLTAPE_BUILDING) && defined(__GNUC__)
#define CT_API __attribute__((visibility("default")))
#else
#define CT_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Version. Same major version = source and binary compatible.
 * ------------------------------------------------------------------------------------------- */
/** Major version of these headers. */
#define CLTAPE_VERSION_MAJOR 0
/** Minor version of these headers. */
#define CLTAPE_VERSION_MINOR 1
/** Patch version of these headers. */
#define CLTAPE_VERSION_PATCH 0
/** Version of these headers as MAJOR * 10000 + MINOR * 100 + PATCH. */
#define CLTAPE_VERSION_NUMBER (CLTAPE_VERSION_MAJOR * 10000 + CLTAPE_VERSION_MINOR * 100 + CLTAPE_VERSION_PATCH)
/** Version of these headers as "MAJOR.MINOR.PATCH". */
#define CLTAPE_VERSION_STRING "0.1.0"
/** Version of the library actually linked, as CLTAPE_VERSION_NUMBER. */
CT_API int ct_version_number(void);
/** Version of the library actually linked, as "MAJOR.MINOR.PATCH". */
CT_API const char *ct_version_string(void);

/* ---------------------------------------------------------------------------------------------
 * Status codes: one table, expanded into the enum, the names and the texts.
 * ------------------------------------------------------------------------------------------- */
/** The status table: X(name, text) for every status, expanded into the enum, the names and the texts. */
#define CT_STATUS_MAP(X)                                                         \
  X(OK, "ok")                                                                    \
  X(ERR_NULL, "a required argument is NULL")                                     \
  X(ERR_RELEASED, "the handle was already released")                            \
  X(ERR_INVALID, "invalid argument")                                             \
  X(ERR_DTYPE, "unsupported or mismatched dtype")                                \
  X(ERR_SHAPE, "incompatible shapes")                                            \
  X(ERR_AXIS, "axis out of range or repeated")                                   \
  X(ERR_OUT_OF_MEMORY, "out of memory")                                          \
  X(ERR_OPENCL, "OpenCL call failed")                                            \
  X(ERR_BUILD, "kernel program build failed")                                    \
  X(ERR_NO_DEVICE, "no usable OpenCL device")                                    \
  X(ERR_UNSUPPORTED, "unsupported on this device")                               \
  X(ERR_CONTEXT, "tensors belong to different contexts")                         \
  X(ERR_NO_GRADIENT, "gradient registry has no entry for an op")                 \
  X(ERR_TAPE_USED, "a non-persistent tape can compute gradients only once")      \
  X(ERR_NOT_FOUND, "not found")                                                  \
  X(ERR_IO, "file input/output failed")                                          \
  X(ERR_FORMAT, "malformed or truncated file")                                   \
  X(ERR_MISMATCH, "names, shapes or dtypes do not match")                        \
  X(ERR_INTERNAL, "internal error")

/** Status returned by every fallible function: CT_OK (0) or one of the errors of CT_STATUS_MAP. */
typedef enum {
#define CT_STATUS_ENUM_(name, text) CT_##name,
  CT_STATUS_MAP(CT_STATUS_ENUM_)
#undef CT_STATUS_ENUM_
  CT_STATUS_COUNT_
} ct_status;

/** "CT_ERR_SHAPE" style name of a status; "CT_UNKNOWN" for values outside the table. */
CT_API const char *ct_status_name(ct_status s);
/** Short English text of a status. */
CT_API const char *ct_status_str(ct_status s);
/** Detailed message of the last error on this thread ("" when none). Valid until the next call
 *  into the library on this thread. */
CT_API const char *ct_errmsg(void);

/* ---------------------------------------------------------------------------------------------
 * Logging. Warnings (for example watching an integer tensor) go through one callback, process
 * wide. The default writes "cltape: <level>: <message>\n" to stderr. Passing NULL restores it.
 * ------------------------------------------------------------------------------------------- */
/** Severity of a log message. */
typedef enum { CT_LOG_DEBUG = 0, CT_LOG_INFO = 1, CT_LOG_WARNING = 2, CT_LOG_ERROR = 3 } ct_log_level;
/** The log callback: receives every message at its level, with the user pointer given to ct_set_log. */
typedef void (*ct_log_fn)(ct_log_level level, const char *message, void *user);
/** Sets the process-wide log callback; NULL restores the default (stderr). */
CT_API void ct_set_log(ct_log_fn fn, void *user);

/* ---------------------------------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------------------------------- */
/** Element type of a tensor. The values are stored in files (checkpoints): new types are appended.
 *  CT_FLOAT16 (IEEE binary16) and CT_BFLOAT16 (the upper half of a float32) are stored in 16 bits
 *  and computed in float32: an op on them reads float32, computes in float32 and rounds its result
 *  to the dtype (round to nearest even; overflow gives inf); float16's elementwise ops and sums,
 *  maxima, minima and products compute in half instead where the device has cl_khr_fp16
 *  (ct_device_info.fp16, CLTAPE_FP16_COMPUTE, docs/dtypes.md). CT_INT64 has the
 *  integer ops (arithmetic, comparisons, sums, data movement) and casts. CT_BOOL is one byte, 0 or 1:
 *  made by ct_cast (nonzero is true, NaN too), a condition of ct_where, and moved, compared and cast;
 *  arithmetic and reductions refuse it (CT_ERR_DTYPE: cast to int32 or float32 first). Comparisons
 *  return CT_BOOL, as TensorFlow's do: to count or average a mask, cast it first. */
typedef enum {
  CT_FLOAT32 = 0,  /**< IEEE binary32 */
  CT_FLOAT64 = 1,  /**< IEEE binary64, on devices with cl_khr_fp64 */
  CT_INT32 = 2,    /**< 32-bit signed integer */
  CT_FLOAT16 = 3,  /**< IEEE binary16 storage, float32 compute (some ops in half with cl_khr_fp16) */
  CT_BFLOAT16 = 4, /**< bfloat16 storage (8 exponent bits, 7 mantissa bits), float32 compute */
  CT_INT64 = 5,    /**< 64-bit signed integer */
  CT_BOOL = 6      /**< one byte, 0 or 1 */
} ct_dtype;
/** The largest rank of a tensor. */
#define CT_MAX_RANK 8

typedef struct ct_context ct_context; /**< device, queue, program caches, buffer pool */
typedef struct ct_tensor ct_tensor;   /**< immutable device tensor, or a mutable variable */
typedef struct ct_tape ct_tape;       /**< gradient tape */

/** "float32", "float64", "int32", "float16", "bfloat16", "int64", "bool"; "invalid" otherwise. */
CT_API const char *ct_dtype_name(ct_dtype dt);
/** Bytes per element (1, 2, 4 or 8), 0 for an invalid dtype. */
CT_API size_t ct_dtype_size(ct_dtype dt);

/* ---------------------------------------------------------------------------------------------
 * Devices and contexts.
 * ------------------------------------------------------------------------------------------- */
/** Kind of an OpenCL device. */
typedef enum { CT_DEVICE_CPU = 1, CT_DEVICE_GPU = 2, CT_DEVICE_ACCELERATOR = 4, CT_DEVICE_OTHER = 8 } ct_device_type;

/** What the library knows of an OpenCL device (ct_device_list, ct_context_device). */
typedef struct {
  int index;                 /**< position in the list, as accepted by CLTAPE_DEVICE */
  ct_device_type type;       /**< CPU, GPU, accelerator or other */
  char name[256];            /**< CL_DEVICE_NAME */
  char vendor[128];          /**< CL_DEVICE_VENDOR */
  char platform[128];        /**< CL_PLATFORM_NAME of its platform */
  char device_version[128];  /**< "OpenCL 3.0 PoCL ..." */
  char driver_version[128];  /**< CL_DRIVER_VERSION */
  char opencl_c_version[128];/**< CL_DEVICE_OPENCL_C_VERSION */
  unsigned compute_units;    /**< CL_DEVICE_MAX_COMPUTE_UNITS */
  uint64_t global_mem_bytes; /**< CL_DEVICE_GLOBAL_MEM_SIZE */
  uint64_t max_alloc_bytes;  /**< CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest single tensor */
  uint64_t local_mem_bytes;  /**< CL_DEVICE_LOCAL_MEM_SIZE */
  size_t max_work_group_size;/**< CL_DEVICE_MAX_WORK_GROUP_SIZE */
  bool fp64;                 /**< float64 tensors are supported */
  unsigned float_vector_width; /**< float32 lanes of the device's vectors: the larger of
                                    CL_DEVICE_PREFERRED_ and CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT
                                    (16 on AVX-512 CPUs, 8 on AVX2; 1 or 0 where the driver
                                    vectorises across work-items, as GPUs do) */
  bool fp16;                 /**< the device has cl_khr_fp16: float16 elementwise ops (fused or
                                  not) and sum/max/min/prod compute in half there, unless
                                  CLTAPE_FP16_COMPUTE=off; the other ops, and every op on other
                                  devices, compute float16 in float32 (docs/dtypes.md) */
} ct_device_info;

/** Lists the OpenCL devices of every platform. Writes at most `cap` entries to `out` (which may
 *  be NULL when cap is 0) and the total count to `*count`. The platforms and devices are
 *  discovered once per process (the first call here or to ct_context_create) and the same list
 *  is returned afterwards. Thread safe. */
CT_API ct_status ct_device_list(ct_device_info *out, int cap, int *count);

/** Creates a context. `device` selects the device: NULL or "" uses the environment variable
 *  CLTAPE_DEVICE, else the first GPU, else the first CPU. A selector is an index into
 *  ct_device_list (decimal digits; an index past the list is an error), "gpu", "cpu", or a
 *  case-insensitive substring of the device name. Thread safe (see "One context per thread").
 *  Errors: CT_ERR_NO_DEVICE when nothing matches, CT_ERR_OPENCL. */
CT_API ct_status ct_context_create(const char *device, ct_context **out);
/** Releases the context and everything it pooled. Tensors of the context must be freed first;
 *  freeing the context with tensors alive is allowed (they become unusable, freeing them is
 *  still safe). NULL does nothing. */
CT_API void ct_context_free(ct_context *ctx);
/** Describes the context's device. */
CT_API ct_status ct_context_device(const ct_context *ctx, ct_device_info *out);
/** Last detailed error message recorded on this context ("" when none). */
CT_API const char *ct_context_errmsg(const ct_context *ctx);
/** Waits until every enqueued command of the context has finished. */
CT_API ct_status ct_context_sync(ct_context *ctx);

/** Counters of a context (ct_context_stats_get). */
typedef struct {
  uint64_t programs_built;       /**< programs compiled from source */
  uint64_t programs_from_cache;  /**< programs loaded from the on-disk cache */
  double build_seconds;          /**< wall time spent building or loading programs */
  uint64_t kernels_launched;     /**< kernels (and CLBlast calls) enqueued */
  uint64_t buffers_created;      /**< clCreateBuffer calls */
  uint64_t buffers_reused;       /**< allocations served by the pool */
  uint64_t bytes_in_use;         /**< device bytes held by live storage */
  uint64_t peak_bytes_in_use;    /**< highest bytes_in_use since creation or ct_context_reset_peak */
  uint64_t bytes_pooled;         /**< device bytes kept free for reuse */
  bool native_math;              /**< fast native_* math chosen for this device (float32) */
  bool fp16_compute;             /**< float16 elementwise ops and reductions compute in half
                                      (cl_khr_fp16 and CLTAPE_FP16_COMPUTE; docs/dtypes.md) */
} ct_context_stats;
/** Reads the counters of the context. */
CT_API ct_status ct_context_stats_get(const ct_context *ctx, ct_context_stats *out);
/** Resets the peak counter to the current use. */
CT_API void ct_context_reset_peak(ct_context *ctx);
/** Releases every pooled (free) device buffer. */
CT_API void ct_context_trim(ct_context *ctx);

/* ---------------------------------------------------------------------------------------------
 * Tensors: creation, inspection, read back.
 * ------------------------------------------------------------------------------------------- */
/** Copies `data` (row-major, ct_dtype_size(dtype) bytes per element) into a new tensor of the
 *  given shape. rank may be 0 (a scalar; shape may be NULL). */
CT_API ct_status ct_tensor_from_data(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape,
                                     const void *data, ct_tensor **out);
/** A 0-d tensor holding `value` converted to dtype. */
CT_API ct_status ct_scalar(ct_context *ctx, ct_dtype dtype, double value, ct_tensor **out);
/** A tensor of the shape holding `value` converted to dtype (int32: truncated toward zero; a
 *  value that does not fit, NaN or infinite is CT_ERR_INVALID). */
CT_API ct_status ct_fill(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, double value, ct_tensor **out);
/** A tensor of the shape filled with zeros. */
CT_API ct_status ct_zeros(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, ct_tensor **out);
/** A tensor of the shape filled with ones. */
CT_API ct_status ct_ones(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape, ct_tensor **out);
/** Zeros of t's shape and dtype. */
CT_API ct_status ct_zeros_like(const ct_tensor *t, ct_tensor **out);
/** Ones of t's shape and dtype. */
CT_API ct_status ct_ones_like(const ct_tensor *t, ct_tensor **out);
/** `num` evenly spaced values from start to stop inclusive (num >= 1). int32: values truncate
 *  toward zero; start and stop must fit in int32 (CT_ERR_INVALID otherwise). */
CT_API ct_status ct_linspace(ct_context *ctx, ct_dtype dtype, double start, double stop, int64_t num, ct_tensor **out);
/** start, start+delta, ... while < limit (or > limit for negative delta). int32: every value
 *  must fit in int32 (CT_ERR_INVALID otherwise, never a wrapped value). */
CT_API ct_status ct_range(ct_context *ctx, ct_dtype dtype, double start, double limit, double delta, ct_tensor **out);
/** Random numbers from a counter-based generator (Philox-4x32-10) evaluated on the host: the same
 *  seed gives bit-identical tensors on every device. */
CT_API ct_status ct_random_normal(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape,
                                  double mean, double stddev, uint64_t seed, ct_tensor **out);
/** Uniformly distributed values between low and high, from the same generator as ct_random_normal. */
CT_API ct_status ct_random_uniform(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape,
                                   double low, double high, uint64_t seed, ct_tensor **out);

/** Adds a reference and returns t (NULL stays NULL). */
CT_API ct_tensor *ct_tensor_retain(ct_tensor *t);
/** Drops a reference. NULL does nothing. */
CT_API void ct_tensor_free(ct_tensor *t);
/** Frees `n` tensors of an array (entries may be NULL). */
CT_API void ct_tensor_free_n(ct_tensor **ts, int n);

/** The context the tensor belongs to. */
CT_API ct_context *ct_tensor_context(const ct_tensor *t);
/** The tensor's element type. */
CT_API ct_dtype ct_tensor_dtype(const ct_tensor *t);
/** The tensor's number of axes (0 for a scalar). */
CT_API int ct_tensor_rank(const ct_tensor *t);
/** Pointer to rank extents, valid while t lives. */
CT_API const int64_t *ct_tensor_shape(const ct_tensor *t);
/** Number of elements (1 for a scalar). */
CT_API int64_t ct_tensor_size(const ct_tensor *t);
/** Node id used by tapes; a variable keeps its id across assignments. */
CT_API uint64_t ct_tensor_id(const ct_tensor *t);

/** Copies the whole tensor to `dst` (bytes must be size*dtype size). Waits for the data. */
CT_API ct_status ct_tensor_read(const ct_tensor *t, void *dst, size_t bytes);
/** Reads and converts every element to double (`n` = capacity of dst in elements). */
CT_API ct_status ct_tensor_read_f64(const ct_tensor *t, double *dst, int64_t n);
/** The value of a one-element tensor as a double. */
CT_API ct_status ct_tensor_item(const ct_tensor *t, double *value);

/** Output style of ct_tensor_format. */
typedef enum {
  CT_FORMAT_REPR = 0,  /**< tf.Tensor(6.0, shape=(), dtype=float32) */
  CT_FORMAT_VALUES = 1 /**< [  4. 108.] as NumPy prints */
} ct_format_style;
/** Formats the tensor into buf (always NUL-terminated when cap > 0; truncated with "..."). */
CT_API ct_status ct_tensor_format(const ct_tensor *t, ct_format_style style, char *buf, size_t cap);
/** Formats the shape as "(3, 2)" / "()" into buf. */
CT_API ct_status ct_shape_format(const ct_tensor *t, char *buf, size_t cap);

/* ---------------------------------------------------------------------------------------------
 * Variables: named, mutable, optionally trainable. A variable is a ct_tensor and can be passed to
 * any op; the op reads its current value. Assignments are not recorded by tapes.
 * ------------------------------------------------------------------------------------------- */
/** Creates a variable holding a copy of `initial`. name may be NULL ("Variable"); the variable's
 *  full name gets the ":0" suffix (name "x0" -> "x0:0"). */
CT_API ct_status ct_variable_create(const ct_tensor *initial, const char *name, bool trainable, ct_tensor **out);
/** Convenience: a float32 scalar variable. */
CT_API ct_status ct_variable_scalar(ct_context *ctx, double value, const char *name, bool trainable, ct_tensor **out);
/** Whether t is a variable. */
CT_API bool ct_tensor_is_variable(const ct_tensor *t);
/** Full name ("x0:0") of a variable, NULL for a plain tensor. */
CT_API const char *ct_variable_name(const ct_tensor *t);
/** Whether the variable is trainable. */
CT_API bool ct_variable_trainable(const ct_tensor *t);
/** Makes the variable trainable or not. */
CT_API ct_status ct_variable_set_trainable(ct_tensor *var, bool trainable);
/** var := value (same dtype; shape equal or broadcastable to the variable's). */
CT_API ct_status ct_variable_assign(ct_tensor *var, const ct_tensor *value);
/** var := var + value (same rules as ct_variable_assign). */
CT_API ct_status ct_variable_assign_add(ct_tensor *var, const ct_tensor *value);
/** var := var - value (same rules as ct_variable_assign). */
CT_API ct_status ct_variable_assign_sub(ct_tensor *var, const ct_tensor *value);
/** A plain tensor holding the variable's current value (no copy; later assignments do not change
 *  it). For a plain tensor, a new reference to it. A read is an op (Identity): active tapes record
 *  it and watch a trainable variable read this way, so d(value)/d(var) = 1 as in TensorFlow. */
CT_API ct_status ct_variable_value(const ct_tensor *var, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Ops. Each returns a new tensor in *out. Elementwise binary ops broadcast as NumPy does; both
 * operands must have the same dtype. The *_scalar forms take a number converted to the tensor's
 * dtype. Comparisons, logical_and and logical_or (nonzero is true) return a CT_BOOL tensor (1 or
 * 0). Integer tensors support neg, abs, sign,
 * square, add, sub, mul, div (truncating), maximum, minimum, comparisons, where and cast.
 * ------------------------------------------------------------------------------------------- */
/* CT_UNARY_OPS and CT_BINARY_OPS, generated from the op table at build time */
#include "cltape_ops.h"

#define CT_DECLARE_UNARY_(name) CT_API ct_status ct_##name(const ct_tensor *x, ct_tensor **out);
#define CT_DECLARE_BINARY_(name)                                                                 \
  CT_API ct_status ct_##name(const ct_tensor *a, const ct_tensor *b, ct_tensor **out);           \
  CT_API ct_status ct_##name##_scalar(const ct_tensor *a, double b, ct_tensor **out);
CT_UNARY_OPS(CT_DECLARE_UNARY_)
CT_BINARY_OPS(CT_DECLARE_BINARY_)
#undef CT_DECLARE_UNARY_
#undef CT_DECLARE_BINARY_
/** s - a */
CT_API ct_status ct_rsub_scalar(double s, const ct_tensor *a, ct_tensor **out);
/** s / a */
CT_API ct_status ct_rdiv_scalar(double s, const ct_tensor *a, ct_tensor **out);
/** cond ? a : b elementwise, broadcasting all three; cond of any dtype, a comparison's CT_BOOL
 *  or another (nonzero = true, NaN too). */
CT_API ct_status ct_where(const ct_tensor *cond, const ct_tensor *a, const ct_tensor *b, ct_tensor **out);
/** Converts between dtypes (float to int truncates toward zero; out of int32's range it
 *  saturates to INT32_MIN / INT32_MAX, and NaN gives 0). */
CT_API ct_status ct_cast(const ct_tensor *x, ct_dtype dtype, ct_tensor **out);
/** Identity whose result the tapes treat as a constant. */
CT_API ct_status ct_stop_gradient(const ct_tensor *x, ct_tensor **out);
/** A new tensor with the same value (recorded, gradient passes through). */
CT_API ct_status ct_identity(const ct_tensor *x, ct_tensor **out);

/** \name Reductions
 *  axes == NULL reduces every axis; otherwise n_axes axes, negative counting from the
 *  end, each at most once. keepdims keeps reduced axes with extent 1. */
/** @{ */
/** Sum over the axes. */
CT_API ct_status ct_sum(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
/** Mean over the axes. */
CT_API ct_status ct_mean(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
/** Largest element over the axes. */
CT_API ct_status ct_max(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
/** Smallest element over the axes. */
CT_API ct_status ct_min(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
/** Product over the axes. */
CT_API ct_status ct_prod(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
/** log(sum(exp(x))) over the axes. */
CT_API ct_status ct_logsumexp(const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
/** @} */
/** Index (int32) of the largest / smallest element along one axis; first one on ties. */
CT_API ct_status ct_argmax(const ct_tensor *x, int axis, ct_tensor **out);
/** Index (int32) of the smallest element along one axis; first one on ties. */
CT_API ct_status ct_argmin(const ct_tensor *x, int axis, ct_tensor **out);

/* Shape and data movement. */
/** New shape with the same element count; one extent may be -1 (inferred). Shares storage. */
CT_API ct_status ct_reshape(const ct_tensor *x, int rank, const int64_t *shape, ct_tensor **out);
/** out.shape[i] = x.shape[perm[i]]. perm == NULL reverses the axes. */
CT_API ct_status ct_transpose(const ct_tensor *x, const int *perm, ct_tensor **out);
/** Per axis: begin, end (exclusive), step (> 0 or < 0, never 0), Python-style negative indices
 *  and clamping. NULL arrays mean begin 0 / end extent / step 1. */
CT_API ct_status ct_slice(const ct_tensor *x, const int64_t *begin, const int64_t *end, const int64_t *step,
                          ct_tensor **out);
/** Joins n tensors of one dtype along an existing axis. */
CT_API ct_status ct_concat(ct_tensor *const *xs, int n, int axis, ct_tensor **out);
/** Stacks n tensors of one shape along a new axis. */
CT_API ct_status ct_stack(ct_tensor *const *xs, int n, int axis, ct_tensor **out);
/** x broadcast to the shape, as NumPy broadcasts. */
CT_API ct_status ct_broadcast_to(const ct_tensor *x, int rank, const int64_t *shape, ct_tensor **out);
/** out = x taken at int32 `indices` along axis: out.shape = x.shape[:axis] + indices.shape +
 *  x.shape[axis+1:]. Out-of-range indices give zeros. */
CT_API ct_status ct_gather(const ct_tensor *x, const ct_tensor *indices, int axis, ct_tensor **out);
/** indices (int32, any shape) -> indices.shape + [depth], 1 at the index, 0 elsewhere. */
CT_API ct_status ct_one_hot(const ct_tensor *indices, int depth, ct_dtype dtype, ct_tensor **out);
/** x without extent-1 axes: the n_axes listed ones (negative from the end, each of extent 1), or
 *  every extent-1 axis when axes is NULL (n_axes 0). Shares storage, like ct_reshape. */
CT_API ct_status ct_squeeze(const ct_tensor *x, const int *axes, int n_axes, ct_tensor **out);
/** x with a new axis of extent 1 inserted at `axis` (-rank-1 .. rank). Shares storage. */
CT_API ct_status ct_expand_dims(const ct_tensor *x, int axis, ct_tensor **out);
/** min(max(x, lo), hi), lo <= hi. The gradient passes where lo <= x <= hi, and is 0 outside. */
CT_API ct_status ct_clip_by_value(const ct_tensor *x, double lo, double hi, ct_tensor **out);
/** Constant padding: paddings holds (before, after) for each axis (2 * rank values, >= 0); the new
 *  elements are `value`. The gradient is the slice where x was placed. */
CT_API ct_status ct_pad(const ct_tensor *x, const int64_t *paddings, double value, ct_tensor **out);
/** x repeated multiples[i] (>= 0) times along each axis i: out.shape[i] = x.shape[i] * multiples[i].
 *  The gradient sums the copies. */
CT_API ct_status ct_tile(const ct_tensor *x, const int64_t *multiples, ct_tensor **out);
/** The inverse of ct_concat: n parts of x along axis, part i with extent sizes[i] (they add up to the
 *  axis' extent), written to outs[0 .. n-1] (all NULL on an error). The gradient concatenates. */
CT_API ct_status ct_split(const ct_tensor *x, const int64_t *sizes, int n, int axis, ct_tensor **outs);
/** Inclusive cumulative sum along axis: out[.., i, ..] = sum of x[.., j, ..] for j <= i. The
 *  gradient is the reverse cumulative sum. */
CT_API ct_status ct_cumsum(const ct_tensor *x, int axis, ct_tensor **out);
/** Inclusive cumulative product along axis: out[.., i, ..] = product of x[.., j, ..] for j <= i.
 *  Built from slices, padding with ones and products, so the gradient is exact also where x holds
 *  zeros (no division by x). */
CT_API ct_status ct_cumprod(const ct_tensor *x, int axis, ct_tensor **out);
/** \name Sorting along one axis
 *  The order is stable (equal elements keep their order by index, also when descending) and NaN
 *  counts as larger than every number: NaNs come last in ascending order and first in descending
 *  order (and in ct_top_k), among themselves by index. float32, float64 and int32; the axis may
 *  hold fewer than 2^30 elements (CT_ERR_UNSUPPORTED beyond). */
/** @{ */
/** int32 indices that sort x along axis: out[.., j, ..] is the index of the j-th element of its
 *  row. Not differentiable. */
CT_API ct_status ct_argsort(const ct_tensor *x, int axis, bool descending, ct_tensor **out);
/** x sorted along axis. The gradient adds the upstream gradient back at the sorted positions. */
CT_API ct_status ct_sort(const ct_tensor *x, int axis, bool descending, ct_tensor **out);
/** The k largest elements along axis, largest first (ties: lower index first), as values (x's
 *  shape with k on the axis; differentiable like ct_sort) and int32 indices into the axis. Either
 *  of values and indices may be NULL, not both. 0 <= k <= extent of the axis (CT_ERR_INVALID
 *  otherwise). */
CT_API ct_status ct_top_k(const ct_tensor *x, int64_t k, int axis, ct_tensor **values, ct_tensor **indices);
/** @} */
/** Einstein summation over n (1 or more) tensors: an equation such as "ij,jk->ik", "bij,bjk->bik",
 *  "ij->ji", "ij->" (sum of all), "i,i->" (dot) or "i,j->ij" (outer); without "->" the result
 *  keeps the letters used once, in alphabetical order (NumPy's rule). Letters are a-z and A-Z; a
 *  letter's extents must agree (CT_ERR_SHAPE). Computed with transposes, reshapes, sums and
 *  batched matrix products (float32 and float64), so gradients follow from those ops. A letter
 *  repeated within one operand (diagonals, traces) and "..." are CT_ERR_UNSUPPORTED; a malformed
 *  equation is CT_ERR_INVALID; both with a message naming the problem. */
CT_API ct_status ct_einsum(const char *equation, ct_tensor *const *xs, int n, ct_tensor **out);

/** \name Indexing (TensorFlow's gather_nd, tensor_scatter_nd_update / _add, boolean_mask)
 *  `indices` is int32 of shape [..., D] (rank >= 1, D <= x's rank): each last-axis vector
 *  indices[i, :] names the slice x[indices[i, 0], ..., indices[i, D-1]] of shape x.shape[D:].
 *  These functions read the indices (or the mask) on the host, waiting for whatever computes them:
 *  every index is checked, one out of range (or negative) is CT_ERR_INVALID naming it. The
 *  scatters (and the gradients of gather_nd and boolean_mask) are deterministic sums without
 *  atomics: each element of the result looks at every index, so they cost (rows of x) x (indices)
 *  x (elements per row). */
/** @{ */
/** out.shape = indices.shape[:-1] + x.shape[D:], out[i] = the slice indices[i] names. The gradient
 *  adds each slice's gradient back at its index (ct_scatter_add into zeros; repeated indices add up). */
CT_API ct_status ct_gather_nd(const ct_tensor *x, const ct_tensor *indices, ct_tensor **out);
/** A copy of x with updates[i] added to the slice indices[i] names; repeated indices add up, in a
 *  fixed order (deterministic, no atomics). updates has x's dtype and the shape
 *  indices.shape[:-1] + x.shape[D:] (no broadcasting). Gradients: x gets the upstream gradient,
 *  updates the ct_gather_nd of it. */
CT_API ct_status ct_scatter_add(const ct_tensor *x, const ct_tensor *indices, const ct_tensor *updates,
                                ct_tensor **out);
/** A copy of x with the slice indices[i] replaced by updates[i] (shapes and dtype as for
 *  ct_scatter_add); of repeated indices the last one wins. Gradients: x gets the upstream gradient
 *  with the replaced slices zeroed, updates[i] the ct_gather_nd of it (zero for an update that a
 *  later one overwrote). */
CT_API ct_status ct_scatter(const ct_tensor *x, const ct_tensor *indices, const ct_tensor *updates, ct_tensor **out);
/** The slices of x where `mask` is nonzero, in row-major order: mask (any dtype: a comparison's
 *  CT_BOOL, an int32 or a float one) has the shape of
 *  x's first M axes (1 <= M <= rank); out.shape = [count] + x.shape[M:]. The count depends on the
 *  mask's values, so the mask is read on the host (waiting for it). The gradient puts each slice's
 *  gradient back in place, zeros elsewhere. */
CT_API ct_status ct_boolean_mask(const ct_tensor *x, const ct_tensor *mask, ct_tensor **out);
/** @} */

/** Matrix product through CLBlast. Rank >= 2; leading (batch) dimensions broadcast. Transposes
 *  of the last two axes are flags, not copies. float32 and float64. */
CT_API ct_status ct_matmul(const ct_tensor *a, const ct_tensor *b, bool transpose_a, bool transpose_b, ct_tensor **out);

/** Numerically stable softmax / log-softmax along one axis. */
CT_API ct_status ct_softmax(const ct_tensor *x, int axis, ct_tensor **out);
/** Numerically stable log-softmax along one axis. */
CT_API ct_status ct_log_softmax(const ct_tensor *x, int axis, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Gradient tapes (TensorFlow's GradientTape).
 * ------------------------------------------------------------------------------------------- */
/** How a tape behaves (ct_tape_begin). */
typedef struct {
  bool persistent;               /**< allow many gradient() calls; memory kept until ct_tape_free */
  bool watch_accessed_variables; /**< watch trainable variables when an op reads them */
} ct_tape_options;
/** persistent = false, watch_accessed_variables = true. */
CT_API ct_tape_options ct_tape_default_options(void);

/** Creates a tape and starts recording on the calling thread (the "with" block begins).
 *  opts may be NULL for the defaults. Tapes nest: every active tape records what concerns it. */
CT_API ct_status ct_tape_begin(ct_context *ctx, const ct_tape_options *opts, ct_tape **out);
/** Stops recording for good (the "with" block ends). Gradients can still be taken. */
CT_API ct_status ct_tape_end(ct_tape *tape);
/** Pauses / resumes recording (tf's stop_recording()). CT_ERR_INVALID when the tape is not
 *  recording (ended, or already paused) / was not paused. A tape is used by the thread that
 *  created it: ending or pausing it from another thread is CT_ERR_INVALID. */
CT_API ct_status ct_tape_stop_recording(ct_tape *tape);
/** Resumes recording of a paused tape (CT_ERR_INVALID when it was not paused). */
CT_API ct_status ct_tape_resume_recording(ct_tape *tape);
/** Forgets everything recorded and watched (the tape stays as active as it was). */
CT_API ct_status ct_tape_reset(ct_tape *tape);
/** Ends the tape if needed and frees it with everything it holds. NULL does nothing. */
CT_API void ct_tape_free(ct_tape *tape);
/** Watches a tensor or variable. Watching a non-floating tensor logs a warning naming its dtype
 *  and has no effect (its gradient is NULL). */
CT_API ct_status ct_tape_watch(ct_tape *tape, const ct_tensor *t);
/** The variables the tape watches, in watch order. Writes at most cap (borrowed) pointers. */
CT_API ct_status ct_tape_watched_variables(const ct_tape *tape, ct_tensor **out, int cap, int *count);
/** Device bytes the records hold for the backward pass (the saved inputs/outputs, each device
 *  buffer counted once however many records hold it). 0 after a non-persistent tape's gradient. */
CT_API ct_status ct_tape_saved_bytes(const ct_tape *tape, uint64_t *bytes);
/** Number of recorded ops. */
CT_API int ct_tape_size(const ct_tape *tape);

/** What ct_tape_gradient gives a source that the targets do not depend on. */
typedef enum {
  CT_UNCONNECTED_NONE = 0, /**< a source that the targets do not depend on gets NULL */
  CT_UNCONNECTED_ZERO = 1  /**< it gets zeros shaped like the source */
} ct_unconnected;

/** d(sum of targets)/d(source) for each source, written to grads[i] (new references, or NULL for
 *  an unconnected, integer or unwatched source; a source that is itself a target gets ones).
 *  A persistent tape that is recording (begun, not ended or paused) records this computation
 *  itself, as TensorFlow's does, so its result can be differentiated again with the same tape.
 *  output_grads may be NULL (ones) or give one tensor per target (NULL entries: ones), shaped and
 *  typed like it. A non-persistent tape frees what it holds before returning and refuses a second
 *  call with CT_ERR_TAPE_USED. An op on the path without a gradient fails with
 *  CT_ERR_NO_GRADIENT and the message "gradient registry has no entry for: <OpName>". A call that
 *  fails leaves the tape as it was (register the missing gradient and call again). */
CT_API ct_status ct_tape_gradient(ct_tape *tape, ct_tensor *const *targets, int n_targets,
                                  ct_tensor *const *sources, int n_sources,
                                  ct_tensor *const *output_grads, ct_unconnected unconnected,
                                  ct_tensor **grads);
/** Called by ct_tape_gradient_with_hook once the gradient of source `index` is final: every
 *  recorded op that reads the source has had its gradient enqueued, and `grad` itself is computed,
 *  not pending (its kernels may still be running; reading `grad` waits for them). `grad` is borrowed for the call. A status other than
 *  CT_OK stops the computation, which then fails with that status. */
typedef ct_status (*ct_grad_ready_fn)(int index, const ct_tensor *grad, void *user);
/** ct_tape_gradient that also calls ready(i, grads[i], user) for each source with a gradient as
 *  soon as that gradient is final during the backward walk — the last layers' first — so that the
 *  caller can read it back or communicate it while the rest of the backward pass is enqueued and
 *  runs. Each source with a non-NULL gradient gets exactly one call, at the latest just before
 *  the function returns (a source no recorded op reads, an unconnected one under
 *  CT_UNCONNECTED_ZERO). ready may be NULL (plain ct_tape_gradient). */
CT_API ct_status ct_tape_gradient_with_hook(ct_tape *tape, ct_tensor *const *targets, int n_targets,
                                            ct_tensor *const *sources, int n_sources,
                                            ct_tensor *const *output_grads, ct_unconnected unconnected,
                                            ct_tensor **grads, ct_grad_ready_fn ready, void *user);
/** Convenience: one target, one source. */
CT_API ct_status ct_tape_gradient1(ct_tape *tape, const ct_tensor *target, const ct_tensor *source, ct_tensor **grad);

/** A tensor with a name: sources and results of ct_tape_gradient_named. */
typedef struct {
  const char *name;   /**< the key (borrowed) */
  ct_tensor *tensor;  /**< the tensor; in results a new reference or NULL */
} ct_named_tensor;
/** Name-keyed form: grads[i].name = sources[i].name (the same pointer), grads[i].tensor the
 *  gradient as in ct_tape_gradient. */
CT_API ct_status ct_tape_gradient_named(ct_tape *tape, ct_tensor *const *targets, int n_targets,
                                        const ct_named_tensor *sources, int n_sources, ct_unconnected unconnected,
                                        ct_named_tensor *grads);
/** Jacobian: out.shape = target.shape + source.shape. Its rows (one per target element) go through
 *  the backward pass together, as a batch of one-hot output gradients (split when large). The
 *  tape must be persistent unless this is its only gradient computation. NULL (or zeros) when unconnected. A zero-size target (or source)
 *  connected to the source gives a zero-size tensor of that shape, as TensorFlow does. */
CT_API ct_status ct_tape_jacobian(ct_tape *tape, const ct_tensor *target, const ct_tensor *source,
                                  ct_unconnected unconnected, ct_tensor **out);
/** Per-example jacobian: target [B, ...], source [B, ...] where example b of the target depends
 *  only on example b of the source. out.shape = [B] + target.shape[1:] + source.shape[1:]. Both
 *  need rank >= 2 (CT_ERR_SHAPE naming the one that has not, as TensorFlow requires). */
CT_API ct_status ct_tape_batch_jacobian(ct_tape *tape, const ct_tensor *target, const ct_tensor *source,
                                        ct_unconnected unconnected, ct_tensor **out);

/** Forward mode (TensorFlow's ForwardAccumulator, JAX's jvp): begins a tape that gives tangents.
 *  primals[i] (floating tensors or variables) gets the tangent tangents[i] (same shape and dtype);
 *  every op run on this thread while it records computes its output's tangent, the product of the
 *  op's jacobian with its inputs' tangents (taken from the op's gradient function, so every
 *  differentiable op has one). The tape keeps the tangents (not the ops) until it is freed; it
 *  ends with ct_tape_end and is freed with ct_tape_free; gradient calls on it are CT_ERR_INVALID.
 *  The tangent computations are ordinary ops that other tapes record: a forward tape around a
 *  reverse tape's gradient gives Hessian-vector products. */
CT_API ct_status ct_tape_begin_forward(ct_context *ctx, ct_tensor *const *primals, ct_tensor *const *tangents, int n,
                                       ct_tape **out);
/** The tangent of t (a new reference), or NULL (zeros with CT_UNCONNECTED_ZERO) when t does not
 *  depend on the primals. CT_ERR_INVALID on a reverse-mode tape. */
CT_API ct_status ct_tape_jvp(const ct_tape *tape, const ct_tensor *t, ct_unconnected unconnected, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * The gradient registry and user-defined ops.
 * ------------------------------------------------------------------------------------------- */
typedef struct ct_grad_ctx ct_grad_ctx; /**< what a gradient function may look at */
/** Number of inputs of the recorded op. */
CT_API int ct_grad_ctx_num_inputs(const ct_grad_ctx *g);
/** Input i as the op saw it (borrowed). A record keeps every input and the output of an op whose
 *  gradient was registered before the op ran (and of user-defined ops); a built-in op recorded
 *  earlier keeps only what its own gradient reads, and the others are NULL. */
CT_API ct_tensor *ct_grad_ctx_input(const ct_grad_ctx *g, int i);
/** The op's output (borrowed; NULL under the same rule). */
CT_API ct_tensor *ct_grad_ctx_output(const ct_grad_ctx *g);
/** Computes input gradients from dy. Writes one new tensor (or NULL for "no gradient") per input
 *  to dx. Built from ct_ ops, so an outer tape can differentiate it again. Gradients may have the
 *  broadcast shape; the tape sums them back to each input's shape. */
typedef ct_status (*ct_grad_fn)(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user);
/** Registers (or replaces) the gradient of the op called `op_name`, built-in or user-defined.
 *  Process wide and thread safe. */
CT_API ct_status ct_register_gradient(const char *op_name, ct_grad_fn fn, void *user);
/** Declares an op non-differentiable: its gradients are NULL, never an error. */
CT_API ct_status ct_register_no_gradient(const char *op_name);
/** Removes a registration made by the two functions above. */
CT_API ct_status ct_unregister_gradient(const char *op_name);

/** Shape rule of a user-defined op: fills the output rank, shape and dtype from the inputs. */
typedef ct_status (*ct_shape_fn)(int n_inputs, const ct_tensor *const *inputs, int *out_rank, int64_t *out_shape,
                                 ct_dtype *out_dtype, void *user);
/** A user-defined op (ct_custom_op_register). */
typedef struct {
  const char *name;   /**< op name as the gradient registry knows it, e.g. "AdjustContrastv2" */
  const char *source; /**< OpenCL C source. The type T is defined as the output's element type. */
  const char *kernel; /**< kernel name. Arguments: (int n_out, __global T *out, then per input
                           __global const T *in_i, int rank_i, int8 shape_i). One work-item per
                           output element; global size is n_out rounded up, so check bounds.
                           The kernel indexes in int: an output or input of more than 2^31-1
                           elements is refused (CT_ERR_UNSUPPORTED). */
  int n_inputs;       /**< 1..8 */
  ct_shape_fn shape;  /**< NULL: output shaped like input 0 */
  void *user;         /**< passed to `shape` */
} ct_custom_op;
/** Registers a user-defined op (process wide). The op has no gradient until one is registered. */
CT_API ct_status ct_custom_op_register(const ct_custom_op *op);
/** Runs a registered user-defined op; recorded on active tapes like any op. */
CT_API ct_status ct_custom_op_call(ct_context *ctx, const char *name, ct_tensor *const *inputs, int n_inputs,
                                   ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Gradient checking: central finite differences in float64 (or float32 where the device has no
 * fp64) against the tape's gradient of sum(f(inputs) * w) for a fixed random w.
 * ------------------------------------------------------------------------------------------- */
/** The function under test: builds *out from the inputs with ct_ ops. */
typedef ct_status (*ct_fn)(ct_tensor *const *inputs, int n_inputs, ct_tensor **out, void *user);
/** Options of ct_gradcheck; zero fields take the defaults given. */
typedef struct {
  double eps;   /**< finite-difference step (0: 1e-6 in float64, 1e-2 in float32) */
  double atol;  /**< absolute tolerance (0: 1e-5 in float64, 2e-2 in float32) */
  double rtol;  /**< relative tolerance (0: 1e-4 in float64, 2e-2 in float32) */
  uint64_t seed;/**< for the projection weights w */
  bool float32; /**< check in float32 (devices without fp64) */
} ct_gradcheck_options;
/** Outcome of ct_gradcheck. */
typedef struct {
  bool passed;           /**< every partial derivative within atol + rtol * |numeric| */
  int checked;           /**< number of partial derivatives compared */
  int worst_input;       /**< input holding the partial closest to (or furthest past) its tolerance */
  int64_t worst_index;   /**< its element index */
  double worst_analytic; /**< the tape's value there */
  double worst_numeric;  /**< the finite-difference value there */
  double max_abs_error;  /**< largest |analytic - numeric| */
  char message[256];     /**< one-line summary; it names the precision ("float64: passed: ...") */
  ct_dtype dtype;        /**< the precision the check ran at: float64, or float32 when the device has
                              no fp64 or options->float32 asks for it */
} ct_gradcheck_report;
/** Inputs are converted to the checking dtype (float inputs only; int inputs are passed through
 *  unchanged and not checked). Returns CT_OK with report->passed telling the outcome; an error
 *  status when f itself fails or the tape cannot differentiate it (CT_ERR_NO_GRADIENT, ...).
 *  A partial passes when |analytic - numeric| <= atol + rtol * |numeric|. */
CT_API ct_status ct_gradcheck(ct_context *ctx, ct_fn f, void *user, ct_tensor *const *inputs, int n_inputs,
                              const ct_gradcheck_options *opts, ct_gradcheck_report *report);

/* ---------------------------------------------------------------------------------------------
 * Custom gradients and recomputation: TensorFlow's tf.custom_gradient and tf.recompute_grad.
 *
 * ct_custom_gradient runs a function built from ct_ ops and records it on the active tapes as one
 * op whose gradient is the one the caller gives for the whole function. The function's own ops
 * are recorded as usual (as in TensorFlow's eager mode), so tensors it keeps for the gradient
 * (residuals) stay connected to its inputs for higher derivatives; the gradient function is built
 * from ct_ ops too, so outer tapes differentiate it. Trainable variables the function reads that
 * are not among its inputs are captured (TensorFlow's grad_fn(*dy, variables=...)): the record
 * treats them as extra inputs, and the gradient function returns their gradients as well.
 *
 * ct_recompute_grad runs a function without recording its ops and keeps only its inputs; the
 * backward pass runs it again under a tape of its own to differentiate it. Intermediates are not
 * kept: memory for time.
 * ------------------------------------------------------------------------------------------- */
/** What the gradient of a custom-gradient function sees. */
typedef struct {
  int n_inputs;                /**< the number of inputs */
  ct_tensor *const *inputs;    /**< the function's inputs, as it received them (borrowed) */
  const ct_tensor *output;     /**< the function's output (borrowed) */
  int n_variables;             /**< the trainable variables it read that are not inputs, first read first */
  ct_tensor *const *variables; /**< the variables themselves: reading one gives its current value */
  int n_residuals;             /**< the number of residual slots (ct_custom_function.n_residuals) */
  ct_tensor *const *residuals; /**< what the forward function kept for the gradient (entries may be NULL) */
  const bool *needed;          /**< needed[i], i < n_inputs + n_variables: that gradient is wanted */
} ct_custom_grad_args;
/** The forward of a custom-gradient function: builds *out from the inputs with ct_ ops, and may
 *  put new references to tensors its gradient reads in residuals[0 .. n_residuals). */
typedef ct_status (*ct_custom_forward_fn)(ct_tensor *const *inputs, int n_inputs, ct_tensor **residuals,
                                          ct_tensor **out, void *user);
/** The gradient of the whole function: from dy (shaped like the output) writes one new tensor (or
 *  NULL for none) per input to dx and per captured variable to dvars, built from ct_ ops.
 *  Gradients may have the broadcast shape; the tape sums them back. */
typedef ct_status (*ct_custom_grad_fn)(const ct_custom_grad_args *args, const ct_tensor *dy, ct_tensor **dx,
                                       ct_tensor **dvars, void *user);
/** A custom-gradient function. */
typedef struct {
  const char *name;             /**< names its records in messages (NULL: "CustomGradient"); copied */
  ct_custom_forward_fn forward; /**< required */
  ct_custom_grad_fn gradient;   /**< required */
  int n_residuals;              /**< 0..8 */
  void *user;                   /**< passed to both; must stay valid while a tape holds a record */
} ct_custom_function;
/** Runs fn->forward on the inputs (0..64, one context) and returns its output as a new tensor
 *  that active tapes differentiate with fn->gradient. A failing forward returns its status and
 *  message; a failing gradient fails the tape's gradient call with a message naming fn->name. */
CT_API ct_status ct_custom_gradient(const ct_custom_function *fn, ct_tensor *const *inputs, int n_inputs,
                                    ct_tensor **out);
/** Runs f on the inputs (0..64, one context) without recording its ops, and records one op that
 *  keeps only the inputs; its gradient runs f again under a tape of its own. Variables f reads
 *  are captured: as in TensorFlow, the recomputation reads their values at the time of the
 *  backward pass, so assign them only after the gradient. f must compute the same function
 *  each time (a dropout inside it needs a fixed seed). */
CT_API ct_status ct_recompute_grad(ct_fn f, void *user, ct_tensor *const *inputs, int n_inputs, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Matmul tuning. ct_matmul runs on one of two engines: CLBlast's GEMM kernels, or the library's
 * register-tiled kernels (kernels/matmul.cl, written for devices that run work-items as loops:
 * CPUs). The speed of each depends on parameters: CLBlast's tile sizes, vector widths,
 * work-group shapes and the size from which its padded "indirect" kernel replaces the single
 * "direct" one; the tiled kernels' tile (rows, vectors and their width per work-item), packing
 * and work-group size. CLBlast ships values only for devices in its database and falls back to
 * generic ones elsewhere. Without tuning, CPU devices use the tiled kernels with a default tile,
 * other devices CLBlast with its own values. ct_tune_matmul searches both for the context's
 * device, checks every candidate against a host reference before accepting it, times the two
 * engines with their winners and keeps the faster, and stores the result in the on-disk cache
 * directory (CLTAPE_CACHE_DIR, else $XDG_CACHE_HOME/cltape, else ~/.cache/cltape) in a file named
 * after a hash of the device name, driver version and platform. Every context created later on
 * that device applies it; without a store the first matmul of the process logs (CT_LOG_INFO) how
 * to tune. CLTAPE_TUNE=off makes new contexts ignore the store; CLTAPE_MATMUL=clblast or
 * CLTAPE_MATMUL=tiled makes them use that engine whatever is stored. The tool cltape-tune runs the
 * tuner from the command line (docs/performance.md).
 *
 * CLBlast keeps kernel parameters per device for the whole process: parameters applied by one
 * context (or by the tuner) stay in force for every context of the process on that device, also
 * for a context created later with CLTAPE_TUNE=off; set it before the first context.
 * ------------------------------------------------------------------------------------------- */
/** Receives one line of progress text (a candidate and its speed, a stage's result). */
typedef void (*ct_tune_progress_fn)(const char *line, void *user);
/** What ct_tune_matmul searches and for how long (ct_tune_default_options gives the defaults). */
typedef struct {
  double budget_seconds;  /**< wall time for the whole search, all dtypes (0: 600). Checked before each
                               candidate: compiling one candidate can take tens of seconds on a CPU */
  bool float32;           /**< tune float32 */
  bool float64;           /**< tune float64 (skipped, without error, on devices without fp64) */
  int size;               /**< m = n = k of the timing problem, 64..4096 (0: 1024) */
  uint64_t seed;          /**< seeds the random part of the search */
  bool no_store;          /**< keep the winners for this process only, do not write the store */
  ct_tune_progress_fn progress; /**< NULL: progress goes to the log at CT_LOG_DEBUG */
  void *progress_user;    /**< passed to progress */
} ct_tune_options;
/** budget 600 s, float32 and float64, size 1024, seed 1, store, no callback. */
CT_API ct_tune_options ct_tune_default_options(void);

/** The outcome of tuning one dtype. */
typedef struct {
  bool tuned;            /**< this dtype was searched and the winners are in force */
  double gflops_before;  /**< size^3 matmul with the parameters in force when the call started */
  double gflops_after;   /**< the same matmul with the winners */
  int candidates;        /**< parameter sets timed */
  int rejected;          /**< sets that ran but gave wrong results (never kept) */
  int failed;            /**< sets that CLBlast or the driver refused (build or launch errors) */
  int min_indirect_size; /**< CLBlast's chosen switch: its indirect kernel runs when m*n*k >= this cubed */
  double seconds;        /**< time spent on this dtype */
  char parameters[1024]; /**< the winners, one "Kernel NAME=value ..." line per CLBlast kernel and a
                              "Tile ENGINE=..." line (ENGINE=1: the tiled kernels run products) */
} ct_tune_result;
/** The outcome of ct_tune_matmul. */
typedef struct {
  ct_tune_result float32; /**< float32 GEMM */
  ct_tune_result float64; /**< float64 GEMM */
  bool stored;           /**< the store was written */
  char store_path[1024]; /**< its file name ("" when the on-disk cache is off) */
} ct_tune_report;
/** Searches both engines' GEMM parameters for the context's device within opts->budget_seconds (opts
 *  NULL: ct_tune_default_options()), then writes the store unless opts->no_store. When the call
 *  returns, the winners are in force for the rest of the process (also when the store could not be
 *  written: report->stored tells). report may be NULL. Errors: CT_ERR_INVALID for bad options,
 *  CT_ERR_UNSUPPORTED when no dtype is left to tune, CT_ERR_OPENCL/CT_ERR_OUT_OF_MEMORY for device
 *  failures outside the candidates themselves (a candidate that fails is only counted). */
CT_API ct_status ct_tune_matmul(ct_context *ctx, const ct_tune_options *opts, ct_tune_report *report);

/** Whether tuned parameters are in force (ct_tune_status). */
typedef struct {
  bool enabled;          /**< false when the context was created with CLTAPE_TUNE=off */
  bool stored;           /**< a valid store exists for this device */
  bool active_float32;   /**< this context's float32 matmul runs with tuned parameters */
  bool active_float64;   /**< the same for float64 */
  char store_path[1024]; /**< the store's file name ("" when the on-disk cache is off) */
} ct_tune_state;
/** Tells whether tuned matmul parameters are in force on the context and where the store lives. */
CT_API ct_status ct_tune_status(const ct_context *ctx, ct_tune_state *out);

#ifdef __cplusplus
}
#endif
#endif /* CLTAPE_H */
