/* ct_internal.h — the device-agnostic core's private declarations (no OpenCL here). */
#ifndef CT_INTERNAL_H
#define CT_INTERNAL_H
#include "ct_base.h"
#include "backend.h"
#include <stdarg.h>
#include <string.h>

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
  bool in_place;  /* storage is a caller's buffer (ct_variable_from_cl_mem): updates write it in place */
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
/* A tensor struct (fresh id, refs 1, retains ctx) that takes over the reference to storage b; on
 * failure b is released. */
ct_status ct__tensor_struct(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, ct_buffer *b,
                            ct_tensor **out);
/* A tensor struct sharing t's storage (fresh id unless keep_id). */
ct_status ct__tensor_alias(const ct_tensor *t, int rank, const int64_t *shape, bool keep_id, ct_tensor **out);
/* Makes t a variable named after `name` (NULL or "": "Variable"; ":0" added unless it ends in
 * ":<digits>"). On failure t is unchanged. */
ct_status ct__variable_init(ct_tensor *t, const char *name, bool trainable);
/* Before an update writes a variable over a caller's buffer (in_place) in place: when snapshots
 * or tape records share its storage, they are moved to a copy of the current value in `spare` (a
 * fresh buffer of the variable's size, taken over; NULL: allocated here), so that they keep the
 * value they saw. Does nothing when the storage is not shared (spare is released). */
ct_status ct__variable_unshare(ct_tensor *var, ct_buffer *spare);
/* Gives a variable the value in buffer `value` (the variable's size): an in-place variable copies
 * it into its own storage (after ct__variable_unshare), any other takes a reference to it. */
ct_status ct__variable_store(ct_tensor *var, ct_buffer *value);
bool ct__is_float(ct_dtype dt);
/* float16 or bfloat16: stored in 16 bits, computed in float32 (ct__run widens them) */
bool ct__is_half(ct_dtype dt);
/* any of the four floating dtypes: what a tape differentiates */
bool ct__is_floating(ct_dtype dt);
ct_status ct__check_dtype(const ct_context *ctx, ct_dtype dt);
/* Element count of a shape that ct__check_shape accepted. */
int64_t ct__shape_size(int rank, const int64_t *shape);
/* Checks a shape: rank 0..8, no negative extent, the product of the non-zero extents (whatever
 * the zero ones) times 8 bytes fits in int64 (CT_ERR_SHAPE). Every tensor's shape passed here, so
 * that products of any of its extents (strides, outer / inner counts) cannot overflow. There is
 * no element limit: the device's largest allocation bounds a tensor (CT_ERR_OUT_OF_MEMORY from
 * the allocation), and launches past 2^31 - 1 elements take the long index build. */
ct_status ct__check_shape(const ct_context *ctx, int rank, const int64_t *shape, int64_t *size);
void ct__shape_str(int rank, const int64_t *shape, char *buf, size_t cap);

/* ---- the op table ---------------------------------------------------------------------- */
enum { S_IN0 = 1, S_IN1 = 2, S_IN2 = 4, S_OUT = 8, S_ALL = 15 };
/* Flags of the saves column's first field, beside what is saved: what the backward pass may know
 * of a row's gradient function (the ReLU mask, lib/tape.c relu_mask_of). G_MASK_OUT: the gradient
 * multiplies dy by sign(output) first, and passes dy on when ct_grad_ctx's dy_masked says dy
 * already carries that factor (Relu and the fused rows with ReLU). G_MASK_IN0: the gradient can
 * apply input 0's factor sign(input 0) itself (MaxPool's: free at each window's maximum). */
enum { G_MASK_OUT = 16, G_MASK_IN0 = 32 };
typedef enum { K_UN, K_BIN, K_CMP, K_OTHER } ct_op_kind;
typedef enum { DF, DA } ct_op_dtypes;

typedef enum {
#define X(id, lname, name, kind, nin, dts, expr, ref, saves, attrs, fwd, dom, grad) CT_OP_##id,
#include "ops.def"
#undef X
  CT_OP_COUNT
} ct_op_id;

/* Attributes an op call carries (what its forward and gradient need besides tensors): a tagged
 * union, one member per family named in the table's attrs column. */
typedef enum {
  CT_AT_NONE,
  CT_AT_REDUCE,  /* Sum, Max, Min, Prod */
  CT_AT_AXIS,    /* ArgMax, ArgMin, ConcatV2 */
  CT_AT_PERM,    /* Transpose */
  CT_AT_SHAPE,   /* a target shape: Reshape, BroadcastTo, Identity, StopGradient */
  CT_AT_SLICE,   /* StridedSlice and its gradient */
  CT_AT_GATHER,  /* GatherV2 and its gradient */
  CT_AT_ONE_HOT,
  CT_AT_CAST,
  CT_AT_MATMUL,
  CT_AT_CUSTOM,
  CT_AT_WINDOW,  /* sliding windows over NHWC tensors (lib/nn) */
  CT_AT_DROPOUT,
  CT_AT_SORT,    /* ArgSort (lib/ops_sort.c) */
  CT_AT_ATTENTION, /* the fused attention and its gradient (lib/nn/attention.c) */
  CT_AT_COUNT
} ct_attr_family;

typedef struct {
  ct_attr_family family;
  union {
    struct { int naxes; int axes[CT_MAX_RANK]; bool keepdims; } reduce; /* axes sorted, non-negative */
    struct { int axis; } axis;
    struct { int perm[CT_MAX_RANK]; } perm;
    struct { int rank; int64_t shape[CT_MAX_RANK]; } shape;
    struct { int rank; int64_t shape[CT_MAX_RANK], begin[CT_MAX_RANK], step[CT_MAX_RANK]; } slice; /* rank, shape: the
                                                                                               result's (slice) or the
                                                                                               sliced input's (grad) */
    struct { int axis; int rank; int64_t shape[CT_MAX_RANK]; } gather; /* the gathered-from input's shape */
    struct { int depth; ct_dtype dtype; } one_hot;
    struct { ct_dtype dtype; } cast;
    struct { bool ta, tb; } matmul;
    struct { const struct ct_custom_rec *rec; } custom;
    struct {
      int win[2], stride[2]; /* window extent and stride (height, width) */
      bool same;             /* padding "same" (else "valid") */
      bool relu_mask;        /* MaxPoolGrad, MaxPoolGradGrad: each window's gradient times the sign of
                              * its maximum (set by the backward pass: see ct_grad_ctx) */
      int rank;              /* the backprop ops' result shape */
      int64_t shape[CT_MAX_RANK];
    } window;
    struct { uint64_t seed; double rate; } dropout;
    struct { int axis; bool descending; } sort;
    struct { bool causal; double scale; } attention;
  };
} ct_attrs;
/* Bytes of a ct_attrs of the family: the tag and that family's member (what a tape keeps). */
size_t ct__attrs_size(ct_attr_family family);
/* Attributes of the family, zeroed. */
static inline ct_attrs ct__attrs(ct_attr_family family) {
  ct_attrs a;
  memset(&a, 0, sizeof a);
  a.family = family;
  return a;
}

/* A full ct_attrs from a stored one (which holds only its family's bytes). */
static inline ct_attrs ct__attrs_copy(const ct_attrs *stored) {
  ct_attrs a;
  memset(&a, 0, sizeof a);
  memcpy(&a, stored, ct__attrs_size(stored->family));
  return a;
}

typedef struct ct_grad_ctx ct_gctx;
typedef ct_status (*ct_builtin_grad)(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx);
/* The forward of a row: checks dtypes and shapes, allocates *out, enqueues the kernels. */
typedef ct_status (*ct_forward_fn)(ct_op_id op, const ct_tensor *const *in, int n_in, const ct_attrs *at,
                                   ct_tensor **out);
/* A host tensor: row-major float64 values (integer tensors hold their values exactly). */
typedef struct {
  int rank;
  int64_t shape[CT_MAX_RANK];
  double *v;
} ct_ref_tensor;
/* a whole-tensor host reference (lib/reference.c): the row's forward on host tensors, named by the
 * table's reference column (RF(fn) in lib/ops.def; the elementwise rows' R(...) gives
 * ct__ref_elementwise) */
#define CT_REFERENCE(fn) ct_status fn(ct_op_id op, const ct_ref_tensor *in, int n_in, const ct_attrs *at, ct_ref_tensor *out)
typedef CT_REFERENCE((*ct_reference_fn));
#define CT_FORWARD(fn) ct_status fn(ct_op_id op, const ct_tensor *const *in, int n_in, const ct_attrs *at, ct_tensor **out)
#define CT_GRADIENT(fn) ct_status fn(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx)

typedef struct {
  const char *name;
  const char *lname;   /* the public function's stem: ct_<lname> */
  const char *stem;    /* kernel stem: the row's id ("SIGMOID") */
  ct_op_kind kind;
  int n_inputs;
  ct_op_dtypes dtypes;
  const char *expr;
  unsigned saves;      /* every tensor the gradient may read */
  unsigned saves_always, saves_if[2]; /* narrowed: kept always / when input i is differentiated */
  unsigned gflags;     /* G_MASK_OUT, G_MASK_IN0 */
  ct_attr_family attrs;
  ct_forward_fn forward;
  ct_builtin_grad grad; /* ct__nograd = not differentiable by design */
  /* the generated tests: host reference in float64 of one element (elementwise rows, NULL: none),
   * of whole tensors (NULL: none, the gradient rows and the user op) and the input domain */
  double (*reference)(double a, double b);
  ct_reference_fn ref_forward;
  bool has_domain;
  double a0, da, b0, db;
  bool b_alternate;
  /* the public elementwise function (UN: unary; BIN and CMP: binary), NULL for other kinds */
  ct_status (*unary)(const ct_tensor *x, ct_tensor **out);
  ct_status (*binary)(const ct_tensor *a, const ct_tensor *b, ct_tensor **out);
} ct_op_info;
extern const ct_op_info ct_ops[CT_OP_COUNT];
CT_GRADIENT(ct__nograd);
/* every forward and gradient function named by the table, and the host references
 * (lib/reference.c) */
#define X(id, lname, name, kind, nin, dts, expr, ref, saves, attrs, fwd, dom, grad) \
  CT_FORWARD(fwd);                                                                  \
  CT_GRADIENT(grad);                                                                \
  double ct__ref_##id(double a, double b);                                          \
  CT_REF_DECL_##ref
#define CT_REF_DECL_R(e)
#define CT_REF_DECL_NOREF
#define CT_REF_DECL_RF(fn) CT_REFERENCE(fn);
#define NOGRAD ct__nograd
CT_REFERENCE(ct__ref_elementwise);
#include "ops.def"
#undef NOGRAD
#undef X
#undef CT_REF_DECL_R
#undef CT_REF_DECL_NOREF
#undef CT_REF_DECL_RF

/* Runs the forward of an op and records it on the active tapes. All ops go through here. */
ct_status ct__run(ct_op_id op, const ct_tensor *const *in, int n_in, const ct_attrs *at, ct_tensor **out);

/* ---- lazy elementwise ops (lib/fuse.c) ------------------------------------------------------ */
/* Fusion is on (CLTAPE_FUSION is not "off"). */
bool ct__fusion_on(void);
/* Tests: fusion on or off, and how many unfused runs a structure gets before it is compiled
 * (after < 0: unchanged); tensors already pending stay so. */
void ct__fusion_set(bool on, int after);
/* A producer fused into its reduction: 1 always, 0 never, -1 by device (CLTAPE_FUSION_REDUCE). */
void ct__fusion_reduce_set(int mode);
void ct__fusion_vector_set(int mode); /* kernels in vector form: 1 on, 0 off, -1 on CPU devices */
/* A pending result of an elementwise row over inputs of one dtype, of dtype odt and the broadcast
 * shape; computed when its storage is used. */
ct_status ct__lazy_op(ct_op_id op, const ct_tensor *const *in, int n_in, ct_dtype odt, int rank, const int64_t *shape,
                      ct_tensor **out);
/* A pending broadcast_to of x (any shape that broadcasts to (rank, shape)): read through zero
 * strides inside the kernel of what consumes it; computed when its storage is used. */
ct_status ct__lazy_broadcast(const ct_tensor *x, int rank, const int64_t *shape, ct_tensor **out);
/* Whether t is a pending constant, and its value. */
bool ct__lazy_fill_value(const ct_tensor *t, double *value);
/* Reduces pending x (as ctb_reduce, kind a ctb_reduce_kind) with its elementwise graph computed as
 * the reduction loads it, x left pending; *done false where it did not (not pending, fusion off,
 * the structure not met often enough yet): then the caller reduces x's storage. */
ct_status ct__lazy_reduce(const ct_tensor *x, int kind, int64_t outer, int64_t R, int64_t inner, ct_buffer *y, bool *done);
/* A pending constant. */
ct_status ct__lazy_fill(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, double value, ct_tensor **out);
/* A pending tensor of a few elements computed from constants only: its values, computed on the
 * host (true), or false when it is not one. */
bool ct__lazy_host_read(const ct_tensor *t, double *dst);
/* Computes a pending tensor now (NULL, or a tensor with values: nothing), unless reading it will be
 * computed on the host (ct__lazy_host_read). */
ct_status ct__lazy_compute(const ct_tensor *t);
/* The inclusive scan of x along axis a (normalized): cumulative sums, or products (lib/ops_compose.c). */
ct_status ct__scan(const ct_tensor *x, int a, bool product, ct_tensor **out);

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
  const ct_attrs *at; /* only its family's bytes, stored after the input slots */
  int n_slots;        /* slots handed out: the inputs and the attributes */
} ct_entry;

struct ct_grad_ctx {
  const ct_entry *e;
  const bool *need; /* need[i]: input i's gradient is wanted */
  /* The backward pass's ReLU mask (lib/tape.c, backward): mask_in0 says that input 0 is the output
   * of a ReLU whose gradient will multiply input 0's gradient by sign(input 0), so a gradient
   * function may apply that factor itself (MaxPool's does, where it is free) and then sets
   * *masked; dy_masked says that dy already carries the factor sign(output) (a ReLU's gradient
   * then passes dy on). */
  bool mask_in0, dy_masked;
  bool *masked;
};

/* For gradient functions (lib/grad.c, lib/nn/grad_nn.c): the saved input i and output, whether
 * input i's gradient is wanted, and freeing a list of temporaries at the end. */
#define IN(i) (g->e->in[i].saved)
#define OUT (g->e->out.saved)
#define NEED(i) (g->need[i])
#define DROP(...)                                                           \
  do {                                                                      \
    ct_tensor *drop_[] = {__VA_ARGS__};                                     \
    ct_tensor_free_n(drop_, (int)(sizeof drop_ / sizeof *drop_));           \
  } while (0)

/* Tapes stop (+1) and resume (-1) recording on this thread: assignments and optimizer steps. */
void ct__tapes_suspend(int delta);
/* Called by ct__run after a successful forward. */
ct_status ct__tape_record(ct_op_id op, const ct_tensor *const *in, int n_in, ct_tensor *out, const ct_attrs *at);

/* ---- registry (user gradients and user ops) -------------------------------------------- */
typedef struct ct_closure ct_closure;
typedef struct ct_custom_rec {
  char *name;
  char *source;
  char *kernel;
  int n_inputs;
  ct_shape_fn shape;
  void *user;
  ct_closure *closure; /* a custom-gradient function's record (lib/custom_gradient.c); NULL for a user op */
} ct_custom_rec;

/* ---- custom-gradient functions and recomputation (lib/custom_gradient.c) ------------------- */
/* A record of a custom-gradient function is a Custom record whose ct_custom_rec belongs to a
 * closure: the user's gradient (or the function to recompute) and the variables it read. Each
 * record holds a reference; the last one frees it. */
void ct__closure_retain(ct_closure *c);
void ct__closure_release(ct_closure *c);
/* The input gradients of a record of the closure (the tape's run_grad_fn). */
ct_status ct__closure_gradient(ct_closure *c, const ct_entry *e, const bool *need, const ct_tensor *dy,
                               ct_tensor **dx);
/* Records a closure's call on the active tapes (lib/tape.c): inputs [0, n_diff) may be
 * differentiated, the rest are kept for the gradient only; keep[i]: the record holds input i. */
ct_status ct__tape_record_closure(const ct_tensor *const *in, int n_in, int n_diff, const bool *keep, bool keep_out,
                                  ct_tensor *out, const ct_attrs *at);
/* Whether some tape of this thread would record an op now. */
bool ct__tapes_recording(void);
/* Notes the trainable variables read while it is pushed, at the recording level of its push
 * (TensorFlow's VariableWatcher). Pushed and popped on one thread, in order. */
typedef struct ct_var_watcher {
  ct_tensor **vars; /* retained, first read first */
  int n, cap;
  int level;
  struct ct_var_watcher *outer;
} ct_var_watcher;
void ct__watcher_push(ct_var_watcher *w);
void ct__watcher_pop(ct_var_watcher *w);
void ct__watcher_free(ct_var_watcher *w);
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
/* A generated test value of input `input` of the row for a sample f in [0, 1), from the row's
 * DOM column: a point of its ramp (a = a0 + da k, b = b0 + db k with b's sign alternating when
 * marked, k < CT_DOM_STEPS) moved by at most a tenth of a step, so values stay inside the domain
 * and away from kinks yet no two are equal. NODOM rows: spread over [-2.1, 2.3]. */
#define CT_DOM_STEPS 6
double ct__reference_input(ct_op_id op, int input, double f);
/* The forward of any row on host tensors, with the attributes ct__run receives (out->v is
 * allocated; release with ct__reference_free): the row's ref_forward. CT_ERR_UNSUPPORTED for the
 * gradient rows and the user op, which have no forward reference of their own. */
ct_status ct__reference_forward(ct_op_id op, const ct_ref_tensor *in, int n_in, const ct_attrs *at, ct_ref_tensor *out);
void ct__reference_free(ct_ref_tensor *t);

/* Composite helpers used by gradients and composite ops (all recorded). */
ct_status ct__sum_to_shape(const ct_tensor *g, int rank, const int64_t *shape, ct_tensor **out);
/* The same for a batch of gradients: g's axis 0 is kept, out is [g.shape[0]] + shape. */
ct_status ct__sum_to_shape_batched(const ct_tensor *g, int rank, const int64_t *shape, ct_tensor **out);
/* Batching rules (lib/grad.c): whether the built-in gradient of op takes a batch of output
 * gradients dy [K] + out.shape, and that gradient (input gradients [K] + broadcast shape). */
bool ct__grad_has_batching_rule(ct_op_id op);
ct_status ct__grad_batched(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dx);
/* Jacobians (lib/tape.c): the bytes one batch of seeds may take before it is split, and whether
 * to run one backward pass per row instead (both for tests). */
extern uint64_t ct__jacobian_batch_bytes;
extern bool ct__jacobian_looped;
ct_status ct__reduce(ct_op_id op, const ct_tensor *x, const int *axes, int n_axes, bool keepdims, ct_tensor **out);
ct_status ct__normalize_axes(const ct_tensor *x, const int *axes, int n_axes, int *out, int *n_out);
#endif
