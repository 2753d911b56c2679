/*
 * backend.h — what the device-agnostic core (lib/) asks of the OpenCL layer (host/).
 * No OpenCL types appear here: lib/ never includes CL/cl.h. Buffers are opaque, reference
 * counted and come from the context's pool. Every launch is enqueued on the context's in-order
 * queue and returns without waiting.
 */
#ifndef CT_BACKEND_H
#define CT_BACKEND_H
#include "ct_base.h"

typedef struct ct_buffer ct_buffer;

/* Context plumbing used by the core. */
void ctb_context_retain(ct_context *ctx);
void ctb_context_release(ct_context *ctx);
bool ctb_has_fp64(const ct_context *ctx);
const char *ctb_device_name(const ct_context *ctx); /* CL_DEVICE_NAME */
/* Worst error of the float math builtins the kernels call, in ulps: as the native-math probe
 * measured it where native math is on (at least 1), else the OpenCL C spec's bound (4). */
double ctb_math_ulps(const ct_context *ctx);
/* Does ctx compute float16 tensors in half (CLTAPE_FP16_COMPUTE, cl_khr_fp16; host/half.c)? Then
 * float16's elementwise and fused kernels exist; the core picks the rows that use them. */
bool ctb_half_compute(const ct_context *ctx);
bool ctb_context_alive(const ct_context *ctx);
/* A live context that the user has not freed: CT_OK, or the status and message for the argument. */
ct_status ct__check_context(const ct_context *ctx, const char *what);

/* Buffers. */
ct_status ctb_alloc(ct_context *ctx, size_t bytes, ct_buffer **out);
ct_buffer *ctb_retain(ct_buffer *b);
void ctb_release(ct_buffer *b);
int ctb_refcount(const ct_buffer *b);
size_t ctb_bytes(const ct_buffer *b);
ct_status ctb_write(ct_context *ctx, ct_buffer *b, size_t offset, const void *src, size_t bytes);
ct_status ctb_read(ct_context *ctx, const ct_buffer *b, size_t offset, void *dst, size_t bytes);
ct_status ctb_copy(ct_context *ctx, const ct_buffer *src, size_t src_off, ct_buffer *dst, size_t dst_off, size_t bytes);
/* The caller's OpenCL buffers (interop/): a handle is a cl_mem passed as void *. Wraps `need`
 * bytes from byte `offset` of a caller's buffer of ctx's OpenCL context (retained; never pooled):
 * the buffer itself where offset is 0, else a sub-buffer of it (the offset a multiple of the
 * device's base address alignment, CT_ERR_INVALID otherwise). `writable`: the storage is written
 * in place (a CL_MEM_READ_ONLY buffer is refused). */
ct_status ctb_wrap_handle(ct_context *ctx, void *handle, size_t offset, size_t need, bool writable, ct_buffer **out);
/* For a buffer shared by several holders of which one writes it in place from now on (a variable
 * over a caller's buffer): copies b's bytes into spare (a fresh buffer of b's size, taken over
 * even on failure) and exchanges the two buffers' memory, so that b's other holders keep the
 * copy and spare holds b's original memory. Enqueued, not waited for. */
ct_status ctb_split_off(ct_context *ctx, ct_buffer *b, ct_buffer *spare);
/* Pending buffers (lib/fuse.c): a record whose values the core computes later. It has no device
 * storage until they are needed: any use of its storage (a launch, a transfer, its cl_mem) first
 * calls the core's force hook, which gives it storage (ctb_storage) and writes it. When the last
 * reference goes while still pending, the drop hook frees the core's record. */
typedef ct_status (*ctb_force_fn)(ct_buffer *b);
typedef void (*ctb_drop_fn)(void *node);
void ctb_lazy_hooks(ctb_force_fn force, ctb_drop_fn drop);
ct_status ctb_alloc_lazy(ct_context *ctx, size_t bytes, void *node, ct_buffer **out);
void *ctb_lazy(const ct_buffer *b);
/* Detaches the pending record (the caller now owns it), so that the buffer's storage is usable. */
void *ctb_lazy_take(ct_buffer *b);
/* Makes the buffer pending again (after a failure to compute it). */
void ctb_lazy_put(ct_buffer *b, void *node);
/* Device storage for a buffer that has none yet (a no-op for one that has). */
ct_status ctb_storage(ct_buffer *b);
/* Computes a pending buffer's values now (CT_OK for one that is not pending). */
ct_status ctb_force(const ct_buffer *b);
/* The cl_mem of a buffer. */
void *ctb_handle(const ct_buffer *b);
/* dst[0, bytes) = the caller's buffer at offset; enqueued, not waited for. */
ct_status ctb_copy_from_handle(ct_context *ctx, void *handle, size_t offset, ct_buffer *dst, size_t bytes);

/* Geometry for broadcasting / strided kernels (CT_GEOM_ARGS in kernels/prelude.cl). */
typedef struct {
  int32_t rank;
  int64_t n;
  int64_t shape[CT_MAX_RANK];
  int64_t st[3][CT_MAX_RANK];
} ctb_geom;

typedef enum { CTB_SAME = 0, CTB_SCALAR_B = 1, CTB_SCALAR_A = 2, CTB_GENERAL = 3 } ctb_bmode;

/* Elementwise launches; `kname` is the op's kernel stem from the op table (e.g. "sigmoid"). */
ct_status ctb_unary(ct_context *ctx, const char *kname, ct_dtype dt, int64_t n, const ct_buffer *x, ct_buffer *y);
ct_status ctb_binary(ct_context *ctx, const char *kname, ct_dtype dt, ctb_bmode mode, const ctb_geom *g, int64_t n,
                     const ct_buffer *a, const ct_buffer *b, ct_buffer *y);
/* A fused elementwise kernel (lib/fuse.c): `source` defines kernel "fused" taking (n, rank, shape,
 * the strided leaves' strides as ct_idx8, the leaf buffers, the constants as T, the output), built
 * after the elementwise rows' functions of dtype dt (the leaves' and constants' type). `key` names
 * its structure: it runs when its program is built in this context or in the on-disk cache, or once
 * the context met the structure with a weight of `after` before (each call adds `weight`); else
 * nothing runs and *ran is false. */
typedef struct {
  int rank;
  int64_t n;
  int64_t shape[CT_MAX_RANK];
  int n_strided;
  const int64_t (*st)[CT_MAX_RANK];
  int n_leaves;
  const ct_buffer *const *leaves;
  int n_consts;
  const double *consts;
  ct_buffer *out;
  bool vector; /* a kernel in vector form: ctb_fused_lanes elements per work-item (ctb_fused only) */
} ctb_fused_launch;
/* The first line of a fused kernel's text in vector form (its program is built with the prelude's
 * vector types, -DCT_FV), and the elements each of its work-items computes (CT_FVW: the device's
 * preferred float vector width, 4 to 16). */
#define CTB_VECTOR_FORM "/* vector form */\n"
int ctb_fused_lanes(const ct_context *ctx);
ct_status ctb_fused(ct_context *ctx, const char *source, ct_dtype dt, const ctb_fused_launch *l, uint64_t key, int weight,
                    int after, bool *ran);
/* Arguments a fused expression may take (rank, shape, strides, leaves, constants). */
enum { FZ_ARGS_MAX = 60 };
ct_status ctb_where(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *c, const ct_buffer *a,
                    const ct_buffer *b, ct_buffer *y);
ct_status ctb_cast(ct_context *ctx, ct_dtype from, ct_dtype to, int64_t n, const ct_buffer *x, ct_buffer *y);
ct_status ctb_fill(ct_context *ctx, ct_dtype dt, int64_t n, double value, ct_buffer *y);
ct_status ctb_iota(ct_context *ctx, ct_dtype dt, int64_t n, double start, double delta, ct_buffer *y);

typedef enum { CTB_RSUM = 0, CTB_RMAX, CTB_RMIN, CTB_RPROD, CTB_RARGMAX, CTB_RARGMIN } ctb_reduce_kind;
/* y[o*inner + i] = reduce_r x[(o*R + r)*inner + i] */
ct_status ctb_reduce(ct_context *ctx, ctb_reduce_kind kind, ct_dtype dt, int64_t outer, int64_t R, int64_t inner,
                     const ct_buffer *x, ct_buffer *y);
/* How many fused programs are compiling on a thread for this context now (tests). */
int ctb_fused_compiling(const ct_context *ctx);
/* How many fused programs were started on a thread for this context and not yet taken up, running
 * or done (tests: a compilation may end before the test looks). */
int ctb_fused_started(const ct_context *ctx);
/* Fused programs compiled on a thread: 1 always, 0 never, -1 by device (CLTAPE_FUSION_ASYNC; tests). */
void ctb_fused_async_set(int mode);
/* The same reduction (sum, max, min or prod) of an elementwise expression that lib/fuse.c wrote:
 * `source` defines CT_RED_ARGS, CT_RED_LOAD1 and CT_RED_LOADV (kernels/reduce.cl's hook) over the
 * arguments of l (rank, shape, strides, leaves, constants; l->n and l->out are the element count
 * and y). The first stage computes the expression as it loads it; nothing else is read. Runs under
 * ctb_fused's policy: where the structure `key` is not ready, nothing runs and *ran is false. */
ct_status ctb_reduce_fused(ct_context *ctx, ctb_reduce_kind kind, const char *source, ct_dtype dt, const ctb_fused_launch *l,
                           int64_t outer, int64_t R, int64_t inner, uint64_t key, int weight, int after, bool *ran);
/* dst[doff + sum(i_d * dst_st[d])] = src[soff + sum(i_d * src_st[d])] over g->shape; st[0]=src, st[1]=dst */
ct_status ctb_copy_strided(ct_context *ctx, ct_dtype dt, const ctb_geom *g, const ct_buffer *src, int64_t soff,
                           ct_buffer *dst, int64_t doff);
ct_status ctb_gather(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t axis_n, int64_t K, int64_t inner,
                     const ct_buffer *x, const ct_buffer *idx, ct_buffer *y);
ct_status ctb_gather_grad(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t axis_n, int64_t K, int64_t inner,
                          const ct_buffer *g, const ct_buffer *idx, ct_buffer *dx);
ct_status ctb_one_hot(ct_context *ctx, ct_dtype dt, int64_t n, int depth, const ct_buffer *idx, ct_buffer *y);

/* C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b], row-major, through CLBlast. Strides in elements;
 * a stride of 0 repeats the same matrix for every batch. */
ct_status ctb_gemm(ct_context *ctx, ct_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                   const ct_buffer *a, int64_t lda, int64_t stride_a, const ct_buffer *b, int64_t ldb, int64_t stride_b,
                   double beta, ct_buffer *c, int64_t ldc, int64_t stride_c, int64_t batch);

/* C = act(A B + bias), row-major A (m x k), B (k x n), bias (n), act ReLU or none: where the tiled
 * kernels run products, one launch that adds the bias (and applies ReLU) as it stores C. */
ct_status ctb_gemm_bias_act(ct_context *ctx, ct_dtype dt, int64_t m, int64_t n, int64_t k, const ct_buffer *a,
                            const ct_buffer *b, const ct_buffer *bias, bool relu, ct_buffer *c);

/* User-defined op: kernel `kernel` from `source`, args (n_out, out, [in_i, rank_i, shape_i]...). */
ct_status ctb_custom(ct_context *ctx, const char *source, const char *kernel, ct_dtype dt, int64_t n_out, ct_buffer *out,
                     int n_in, const ct_buffer *const *in, const int *ranks, const int64_t (*shapes)[CT_MAX_RANK]);

/* ---- neural-network kernels (kernels/nn.cl) ---------------------------------------------- */
/* Window geometry (mirrors ct_window in kernels/nn.cl, which takes it as an int16): input (n, h,
 * w, c), output (n, oh, ow, oc), window (kh, kw), stride (sh, sw), padding before (pt, pl).
 * Pooling has c == oc. mask (max-pool gradients only, else 0): each window's gradient is
 * multiplied by the sign of its maximum (ct_attrs' window.relu_mask). */
typedef struct {
  int32_t n, h, w, c, oh, ow, oc, kh, kw, sh, sw, pt, pl, mask;
} ctb_window;
/* y = conv2d(x, f), NHWC with f HWIO, zero padding (g->pt, g->pl) read in place; with a bias [OC],
 * y = conv2d(x, f) + bias, and relu(that) with relu, added as the sums are stored (the values of the
 * separate ops). The direct kernels, or for a 3x3 window of stride 1 where ctb_conv_winograd_path
 * says so, Winograd's transforms and products (ctb_conv2d_winograd). */
ct_status ctb_conv2d(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x, const ct_buffer *f,
                     const ct_buffer *bias, bool relu, ct_buffer *y);
/* dx from dy and the filter with its last two axes swapped (ft: [KH, KW, OC, C]). */
ct_status ctb_conv2d_bp_input(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *dy,
                              const ct_buffer *ft, ct_buffer *dx);
/* df from x and dy, zero padding (g->pt, g->pl) read in place or, for the vector kernel over
 * channels not in tiles of 8, from a padded copy of x. With bias (where
 * ctb_conv2d_bp_filter_bias says so), df has OC more elements: the sum of dy over every position,
 * the gradient of a bias added to the convolution's output, from the same launch. */
ct_status ctb_conv2d_bp_filter(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                               const ct_buffer *dy, bool bias, ct_buffer *df);
bool ctb_conv2d_bp_filter_bias(ct_dtype dt, const ctb_window *g);
/* Convolutions as matrix products (host/conv_gemm.c): the forward (a = x, b = f HWIO, out = y),
 * the input gradient (a = dy, b = f HWIO, out = dx) and the filter gradient (a = x, b = dy,
 * out = df), g unpadded (pt, pl as the op's). ctb_conv_path says which path runs such a
 * convolution on this device: CLTAPE_CONV=direct|gemm forces one; else the choice measured for
 * the shape; else measure it (CLTAPE_CONV=measure, or a tuned device: ctb_conv_measure runs both
 * paths, `direct(user)` the direct one, and stores the faster); else a rule of the shape. */
typedef enum { CTB_CONV_FWD, CTB_CONV_BP_INPUT, CTB_CONV_BP_FILTER } ctb_conv_kind;
typedef enum { CTB_CONV_PATH_DIRECT, CTB_CONV_PATH_GEMM, CTB_CONV_PATH_MEASURE, CTB_CONV_PATH_WINOGRAD } ctb_conv_path_id;
/* DIRECT, GEMM or MEASURE (never WINOGRAD: that is a way of the direct path's forward, below) */
ctb_conv_path_id ctb_conv_path(const ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g);
ct_status ctb_conv_measure(ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g, const ct_buffer *a,
                           const ct_buffer *b, ct_buffer *out, ct_status (*direct)(void *), void *user);
/* Records a choice for the device (the measured store; tests and the tuner): GEMM or DIRECT. */
ct_status ctb_conv_choice_store(ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g, bool gemm);
/* How ctb_conv2d runs a forward window g: WINOGRAD (a 3x3 window of stride 1 whose scratch fits,
 * forced by CLTAPE_CONV=winograd, or stored for the device and shape), DIRECT, or, on devices other
 * than CPUs, MEASURE (both timed now: ctb_conv_winograd_measure, which stores the faster). */
ctb_conv_path_id ctb_conv_winograd_path(const ct_context *ctx, ct_dtype dt, const ctb_window *g);
/* One forward convolution's arguments, as ctb_conv2d takes them: the record both ways of
 * ctb_conv_winograd_measure run on (`direct` takes it as its void *). */
typedef struct {
  ct_context *ctx;
  ct_dtype dt;
  const ctb_window *g;
  const ct_buffer *x, *f, *bias;
  bool relu;
  ct_buffer *y;
} ctb_conv2d_call;
ct_status ctb_conv_winograd_measure(const ctb_conv2d_call *c, ct_status (*direct)(void *));
/* y = conv2d(x, f) (+ bias, ReLU) by Winograd's F(4x4, 3x3): g a 3x3 window of stride 1 that
 * ctb_conv_winograd_path did not refuse (CT_ERR_INTERNAL otherwise). */
ct_status ctb_conv2d_winograd(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x, const ct_buffer *f,
                              const ct_buffer *bias, bool relu, ct_buffer *y);
ct_status ctb_conv2d_gemm(ct_context *ctx, ct_dtype dt, ctb_conv_kind kind, const ctb_window *g, const ct_buffer *a,
                          const ct_buffer *b, ct_buffer *out);
ct_status ctb_pool(ct_context *ctx, ct_dtype dt, bool max, const ctb_window *g, const ct_buffer *x, ct_buffer *y);
ct_status ctb_max_pool_grad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                            const ct_buffer *dy, ct_buffer *dx);
ct_status ctb_max_pool_gradgrad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *x,
                                const ct_buffer *gg, ct_buffer *out);
ct_status ctb_avg_pool_grad(ct_context *ctx, ct_dtype dt, const ctb_window *g, const ct_buffer *dy, ct_buffer *dx);
/* y [n, hp, wp, c] = x [n, h, w, c] placed at (top, left) with zeros around (rows and columns of x
 * outside y are dropped) */
ct_status ctb_pad_nhwc(ct_context *ctx, ct_dtype dt, int64_t n, int64_t h, int64_t w, int64_t c, int64_t hp,
                       int64_t wp, int64_t top, int64_t left, const ct_buffer *x, ct_buffer *y);
/* y[m, c] = x[m, c] + b[c] for x viewed as (M, C); db[c] = sum over m of dy[m, c] */
ct_status ctb_bias_add(ct_context *ctx, ct_dtype dt, int64_t M, int64_t C, const ct_buffer *x, const ct_buffer *b,
                       ct_buffer *y);
ct_status ctb_bias_add_grad(ct_context *ctx, ct_dtype dt, int64_t M, int64_t C, const ct_buffer *dy, ct_buffer *db);
/* y = x * mask / (1 - rate), mask[i] from Philox(counter i, key seed) */
ct_status ctb_dropout(ct_context *ctx, ct_dtype dt, int64_t n, uint64_t seed, double rate, const ct_buffer *x,
                      ct_buffer *y);
/* loss[r] for logits (rows, C) and int32 labels (rows) */
ct_status ctb_softmax_xent(ct_context *ctx, ct_dtype dt, int64_t rows, int64_t C, const ct_buffer *logits,
                           const ct_buffer *labels, ct_buffer *loss);
ct_status ctb_softmax_xent_grad(ct_context *ctx, ct_dtype dt, int64_t rows, int64_t C, const ct_buffer *logits,
                                const ct_buffer *labels, const ct_buffer *dy, ct_buffer *dx);

/* Optimizer step on variables of one dtype, up to CTB_OPT_MULTI of them per launch: variable j
 * reads p_in, writes p_out (the same buffer for an update in place), updates its slots s1
 * (momentum / Adam m) and s2 (Adam v; both unused: NULL). scale: NULL, or a one-element buffer
 * multiplying every gradient (global-norm clipping). Never recorded by tapes. */
typedef enum { CTB_OPT_SGD = 0, CTB_OPT_MOMENTUM = 1, CTB_OPT_ADAM = 2 } ctb_opt_kind;
typedef struct {
  ctb_opt_kind kind;
  double lr, weight_decay, momentum, beta1, beta2, epsilon;
  double bc1, bc2; /* Adam's bias corrections 1 - beta^t */
  bool nesterov, decoupled;
} ctb_opt_step;
typedef struct {
  int64_t n; /* elements */
  const ct_buffer *p_in, *g;
  ct_buffer *p_out, *s1, *s2;
} ctb_opt_var;
#define CTB_OPT_MULTI 4 /* variables per launch (CT_OPT_MULTI in kernels/nn.cl) */
ct_status ctb_optimizer_step(ct_context *ctx, ct_dtype dt, const ctb_opt_step *o, const ct_buffer *scale,
                             const ctb_opt_var *vars, int nvars);

/* Argsort along one axis (kernels/sort.cl): x is (outer, n, inner) row-major, y (int32, the same
 * shape) gets, for every (o, i), the indices 0 .. n-1 ordered by x[o, :, i]: ascending, or
 * descending; ties in index order (stable); NaN counts as larger than every number (last when
 * ascending, first when descending). n must fit in int32. */
ct_status ctb_argsort(ct_context *ctx, ct_dtype dt, int64_t outer, int64_t n, int64_t inner, bool descending,
                      const ct_buffer *x, ct_buffer *y);

/* Fused scaled dot-product attention (kernels/attention.cl): q [bh, tq, d], k [bh, tk, d],
 * v [bh, tk, dv]; o gets softmax(q k^T * scale (+ the causal mask: query i sees keys
 * j <= i + tk - tq)) v, [bh, tq, dv], and after those elements the logsumexp of each of the
 * bh * tq rows (o holds bh * tq * (dv + 1) elements). The backward reads that o and dout
 * [bh, tq, dv] and writes g: dq [bh, tq, d], then dk [bh, tk, d], then dv [bh, tk, dv].
 * ctb_attention_fits: whether the kernels take this dtype and these head sizes on the device
 * (else the launches fail with CT_ERR_UNSUPPORTED). */
bool ctb_attention_fits(const ct_context *ctx, ct_dtype dt, int64_t d, int64_t dv);
ct_status ctb_attention_forward(ct_context *ctx, ct_dtype dt, int64_t bh, int64_t tq, int64_t tk, int64_t d, int64_t dv,
                                bool causal, double scale, const ct_buffer *q, const ct_buffer *k, const ct_buffer *v,
                                ct_buffer *o);
ct_status ctb_attention_backward(ct_context *ctx, ct_dtype dt, int64_t bh, int64_t tq, int64_t tk, int64_t d,
                                 int64_t dv, bool causal, double scale, const ct_buffer *q, const ct_buffer *k,
                                 const ct_buffer *v, const ct_buffer *o, const ct_buffer *dout, ct_buffer *g);

#endif
