/* ct_internal.h — the device-agnostic core's private declarations (no OpenCL here). */
#ifndef CT_INTERNAL_H
#define CT_INTERNAL_H
#include "cltape.h"
#include "backend.h"
#include <stdarg.h>

/* ---- errors ---------------------------------------------------------------------------- */
/* Records "<detail>" as the thread's (and ctx's, when not NULL) last message; returns s. */
ct_status ct__error(const ct_context *ctx, ct_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Empties the thread's last message (before calling user code whose failure must be told apart). */
void ct__clear_error(void);
void ct__log(ct_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
#define CT_TRY(expr)                      \
  do {                                    \
    ct_status ct_try_s_ = (expr);         \
    if (ct_try_s_ != CT_OK) return ct_try_s_; \
  } while (0)

/* ---- handles (lib/handle.c) ------------------------------------------------------------ */
/* Every public handle is the address of an object whose first field is a uint32_t tag; the memory
 * comes from ct__handle_new and no address is ever reused for another object, so a freed handle is
 * detected however long ago it was freed. */
typedef enum {
  CT_HANDLE_CONTEXT = 1,
  CT_HANDLE_TENSOR,
  CT_HANDLE_TAPE,
  CT_HANDLE_MODULE,
  CT_HANDLE_OPTIMIZER,
  CT_HANDLE_DATASET,
  CT_HANDLE_KINDS
} ct_handle_kind;
#define CT_HANDLE_TAG(kind) (0x48540000u | (uint32_t)(kind)) /* live */
#define CT_HANDLE_FREED 0x44454144u                          /* freed */
/* A zeroed object of `size` bytes with its tag set, or NULL when out of memory. */
void *ct__handle_new(ct_handle_kind kind, size_t size);
/* Marks the object freed and gives its memory back (not its address). */
void ct__handle_free(void *obj);
/* Is h a live handle of this kind? (h may be NULL) */
bool ct__handle_is(const void *h, ct_handle_kind kind);
/* The status and message for h, which is not a live handle of this kind: CT_ERR_NULL,
 * CT_ERR_RELEASED ("the tensor handle was freed") or CT_ERR_INVALID (another kind, or no handle). */
ct_status ct__handle_fail(const void *h, ct_handle_kind kind, const char *what);
/* ct_status of a handle argument: CT_OK when it is a live handle of this kind. */
#define CT_CHECK_HANDLE(h, kind, what) (ct__handle_is((h), (kind)) ? CT_OK : ct__handle_fail((h), (kind), (what)))
/* What the handle memory holds now (tests): objects alive, chunks mapped, and what was given back. */
typedef struct {
  uint64_t live, chunks, chunks_released, pages_released;
} ct_handle_stats;
void ct__handle_stats(ct_handle_stats *out);
/* A live context that the user has not freed. */
ct_status ct__check_context(const ct_context *ctx, const char *what);

/* ---- files (lib/fileio.c) -------------------------------------------------------------- */
#include <stdio.h>
enum {
  CT__OPEN_NOFOLLOW = 1, /* refuse a symbolic link as the last component (ELOOP) */
  CT__OPEN_PRIVATE = 2,  /* refuse a file of another user or writable by group or others (EPERM) */
};
#define CT__ENOTREG 0x7f01 /* errno of ct__fopen_regular for a FIFO, socket or device node */
/* Opens `path` if it is a regular file, without ever blocking: a FIFO, socket or device node is
 * refused (errno CT__ENOTREG), a directory too (EISDIR). mode: 'r' reads ("rb"), 'w' writes from
 * the start ("wb"; a new file gets 0600), 'a' appends ("ab"). The file type is checked on the opened
 * descriptor, before anything is read, written or truncated. *size (may be NULL) gets the file's
 * size. NULL with errno on failure; ct__open_error(errno) says why in words. Every reader (and
 * writer) of a path in the library opens through here. */
FILE *ct__fopen_regular(const char *path, char mode, int flags, uint64_t *size);
const char *ct__open_error(int err);
/* The same check for a reader that wants a descriptor (zlib, safetensors): a descriptor in blocking
 * mode, or -1 with errno set and "cannot open <why>" in err (may be NULL). */
int ct__open_regular(const char *path, int64_t *size, char *err, size_t errcap);

/* ---- tensors --------------------------------------------------------------------------- */
#define CT_TENSOR_MAGIC CT_HANDLE_TAG(CT_HANDLE_TENSOR)

struct ct_tensor {
  uint32_t magic;
  int32_t refs;
  ct_context *ctx;
  ct_dtype dtype;
  int rank;
  int64_t shape[CT_MAX_RANK];
  int64_t size;
  ct_buffer *buf;
  uint64_t id;
  /* variables */
  bool is_var;
  bool trainable;
  char *name;
};

/* Checked size arithmetic: every size, stride or count that the library computes from extents it
 * did not validate goes through these (false, *out untouched, when the result overflows int64). */
static inline bool ct__mul_ok(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return false;
  *out = r;
  return true;
}
static inline bool ct__add_ok(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return false;
  *out = r;
  return true;
}

uint64_t ct__next_id(void);
/* Checks a tensor argument: not NULL, not released. */
ct_status ct__check(const ct_tensor *t, const char *what);
/* Allocates an uninitialised tensor (fresh id, refs 1) with device storage. */
ct_status ct__tensor_new(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, ct_tensor **out);
/* A tensor struct sharing t's storage (fresh id unless keep_id). */
/* A bare tensor struct (fresh id, refs 1, retains ctx) without storage. */
ct_status ct__tensor_struct(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, ct_tensor **out);
ct_status ct__tensor_alias(const ct_tensor *t, int rank, const int64_t *shape, bool keep_id, ct_tensor **out);
bool ct__is_float(ct_dtype dt);
ct_status ct__check_dtype(const ct_context *ctx, ct_dtype dt);
/* Element count of a shape that ct__check_shape accepted. */
int64_t ct__shape_size(int rank, const int64_t *shape);
/* Checks a shape: rank 0..8, no negative extent, the product of the non-zero extents (whatever
 * the zero ones) times 8 bytes fits in int64 (CT_ERR_SHAPE), at most 2^31-1 elements
 * (CT_ERR_OUT_OF_MEMORY). Every tensor's shape passed here, so that products of any of its
 * extents (strides, outer / inner counts) cannot overflow. */
ct_status ct__check_shape(const ct_context *ctx, int rank, const int64_t *shape, int64_t *size);
void ct__shape_str(int rank, const int64_t *shape, char *buf, size_t cap);

/* ---- the op table ---------------------------------------------------------------------- */
enum { S_IN0 = 1, S_IN1 = 2, S_IN2 = 4, S_OUT = 8, S_ALL = 15 };
typedef enum { K_UN, K_BIN, K_CMP, K_OTHER } ct_op_kind;
typedef enum { DF, DA } ct_op_dtypes;

typedef enum {
#define X(id, name, kind, nin, dts, expr, saves, grad) CT_OP_##id,
#include "ops.def"
#undef X
  CT_OP_COUNT
} ct_op_id;

/* Attributes an op call carries (what its gradient needs besides tensors). */
typedef struct {
  int naxes;
  int axes[CT_MAX_RANK]; /* sorted, non-negative */
  bool keepdims;
  int perm[CT_MAX_RANK];
  int64_t begin[CT_MAX_RANK], step[CT_MAX_RANK];
  int rank;              /* a target shape (reshape, broadcast, slice-grad's input shape) */
  int64_t shape[CT_MAX_RANK];
  int axis;
  int depth;
  bool ta, tb;
  ct_dtype dtype;
  const struct ct_custom_rec *custom;
  /* neural-network ops (lib/nn/ops_nn.c): sliding windows over NHWC tensors, dropout */
  int win[2], stride[2]; /* window extent and stride (height, width) */
  bool same;             /* padding "same" (else "valid") */
  uint64_t seed;         /* dropout mask */
  double rate;           /* dropout rate */
} ct_attrs;

typedef struct ct_grad_ctx ct_gctx;
typedef ct_status (*ct_builtin_grad)(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx);

typedef struct {
  const char *name;
  ct_op_kind kind;
  int n_inputs;
  ct_op_dtypes dtypes;
  const char *expr;
  unsigned saves;
  ct_builtin_grad grad; /* ct__nograd = not differentiable by design */
  const char *stem;     /* kernel stem, lower-case id */
} ct_op_info;
extern const ct_op_info ct_ops[CT_OP_COUNT];
ct_status ct__nograd(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx);

/* Runs the forward of an op and records it on the active tapes. All ops go through here. */
ct_status ct__run(ct_op_id op, const ct_tensor *const *in, int n_in, const ct_attrs *at, ct_tensor **out);

/* ---- tapes ----------------------------------------------------------------------------- */
typedef struct {
  uint64_t id;
  ct_dtype dtype;
  int rank;
  int64_t shape[CT_MAX_RANK];
  ct_tensor *saved; /* kept only when the gradient reads it */
  bool is_var;
  bool tracked;     /* the input depended on a watched tensor when the op was recorded */
} ct_slot;

typedef struct {
  ct_op_id op;
  int n_in;
  ct_slot *in;
  ct_slot out;
  ct_attrs at;
} ct_entry;

struct ct_grad_ctx {
  const ct_entry *e;
  const bool *need; /* need[i]: input i's gradient is wanted */
};

/* Called by ct__run after a successful forward. */
ct_status ct__tape_record(ct_op_id op, const ct_tensor *const *in, int n_in, ct_tensor *out, const ct_attrs *at);
/* Any tape on this thread recording right now? */
bool ct__tapes_active(void);
/* Called when a variable is read by an op (auto-watch). */

/* ---- registry (user gradients and user ops) -------------------------------------------- */
typedef struct ct_custom_rec {
  char *name;
  char *source;
  char *kernel;
  int n_inputs;
  ct_shape_fn shape;
  void *user;
} ct_custom_rec;
const ct_custom_rec *ct__custom_find(const char *name);
/* Looks up a user registration for op `name`. Returns 1 with fn/user set, 2 for declared
 * non-differentiable, 0 for none. */
int ct__grad_lookup(const char *name, ct_grad_fn *fn, void **user);

/* ---- random ---------------------------------------------------------------------------- */
void ct__philox_fill_uniform(uint64_t seed, int64_t n, double *out);  /* in [0, 1) */
void ct__philox_fill_normal(uint64_t seed, int64_t n, double *out);
/* Philox-4x32-10 of counter (block, 0) and key seed: the words the device's dropout reads */
void ct__philox_block(uint64_t seed, uint64_t block, uint32_t out[4]);

/* ---- host reference (lib/reference.c): every row's math in float64 on the host ------------- */
/* One element of an elementwise row (UN: x; BIN and CMP: a, b; CMP gives 1 or 0); NAN for a row
 * without a host reference. Integer tensors: the float64 result truncated toward zero. */
double ct__reference_unary(ct_op_id op, double x);
double ct__reference_binary(ct_op_id op, double a, double b);
/* An elementwise row whose math the host reference has. */
bool ct__reference_elementwise(ct_op_id op);
/* The interval [lo, hi] where input `input` of the row is inside its domain (for generated inputs). */
void ct__reference_domain(ct_op_id op, int input, double *lo, double *hi);
/* A host tensor: row-major float64 values (integer tensors hold their values exactly). */
typedef struct {
  int rank;
  int64_t shape[CT_MAX_RANK];
  double *v;
} ct_ref_tensor;
/* The forward of any row on host tensors, with the attributes ct__run receives (out->v is
 * allocated; release with ct__reference_free). CT_ERR_UNSUPPORTED for the gradient rows and the
 * user op, which have no forward reference of their own. */
ct_status ct__reference_forward(ct_op_id op, const ct_ref_tensor *in, int n_in, const ct_attrs *at, ct_ref_tensor *out);
void ct__reference_free(ct_ref_tensor *t);

/* Composite helpers used by gradients and composite ops (all recorded). */
ct_status ct__sum_to_shape(const ct_tensor *g, int rank, const int64_t *shape, ct_tensor **out);
ct_status ct__reduce(ct_op_id op, const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
ct_status ct__normalize_axes(const ct_tensor *x, const int *axes, int n_axes, int *out, int *n_out);
#endif
