/* ct_host.h — private to host/: the one place that talks to OpenCL. */
#ifndef CT_HOST_H
#define CT_HOST_H
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include "cltape_cl.h"
#include "ct_base.h"
#include "backend.h"

const char *ctb_cl_error_name(cl_int err);
#define CTB_CL_FAIL(ctx, err, what) \
  ct__error((ctx), CT_ERR_OPENCL, "%s failed: %s (%d)", (what), ctb_cl_error_name(err), (int)(err))

/* A string-keyed map of compiled kernels of one program. */
typedef struct {
  char *name;
  cl_kernel kernel;
} ctb_kslot;

typedef struct ctb_program {
  char *key;          /* program family + options, unique within the context */
  cl_program program;
  ctb_kslot *kernels; /* open addressing */
  int kcap, kcount;
  struct ctb_program *next;
} ctb_program;

struct ct_buffer {
  int32_t refs;
  size_t bytes;       /* requested */
  size_t cap;         /* allocated (pool bucket) */
  cl_mem mem;
  cl_mem held;        /* the caller's buffer of which mem is a sub-buffer (retained), or NULL */
  ct_context *ctx;
  bool external;      /* wraps a caller's cl_mem: never pooled */
  struct ct_buffer *next_free;
  struct ct_buffer *lazy_prev, *lazy_next; /* the context's pending buffers (ct_context_sync forces them) */
  void *lazy;         /* the core's pending computation of the values (lib/fuse.c): mem is NULL, or
                       * not yet written, until ctb_mem_ptr forces it */
};

#define CTB_POOL_BUCKETS 160
/* The longest cache folder accepted (a longer one turns the cache off, with a warning), and room
 * for any file name inside it: the longest is a temporary ".<64 hex digits>.XXXXXX". */
#define CTB_CACHE_DIR_MAX 900
#define CTB_CACHE_PATH_MAX (CTB_CACHE_DIR_MAX + 124)

struct ct_context {
  ct_context_base base; /* first: the handle tag and the message ct__error writes (base/ct_base.h) */
  int32_t refs;       /* the user's handle + one per live tensor/buffer */
  bool user_freed;
  cl_platform_id platform;
  cl_device_id device;
  cl_context context;
  cl_command_queue queue;
  ct_device_info info;
  char build_options[256];
  bool native_math;
  bool half;          /* float16 computes in half (host/half.c, CLTAPE_FP16_COMPUTE) */
  double math_ulps;   /* worst error of the float math builtins the kernels use, in ulps (ctb_math_ulps) */
  ctb_program *programs;
  struct { uint64_t key; int count, state; } *seen; /* structures of fused kernels met (ctb_fused_ready):
                                                      * state 0 unknown, 1 not on disk, 2 built,
                                                      * 3 compiling on a thread (compiles) */
  size_t seen_cap, seen_n;
  struct ctb_compile *compiles; /* fused programs compiled on threads, until taken (program.c) */
  struct ct_buffer *pool[CTB_POOL_BUCKETS];
  char cache_dir[CTB_CACHE_DIR_MAX + 1]; /* "" = on-disk cache off */
  ct_context_stats stats;
  struct ct_buffer *lazy_head; /* pending buffers */
  ct_status lazy_status;   /* the first failure to force a pending buffer (ctb_mem_ptr), until returned */
  void *blas_state;
  uint64_t alloc_calls;    /* ctb_alloc calls so far (pool.c) */
  uint64_t fault_alloc_at; /* testing aid: this allocation fails (0 = never), see ctb_pool_init */
  bool pool_exact;         /* testing aid: exact-size buffers, no reuse (CLTAPE_POOL_EXACT) */
  /* Device limits every launch honours (runtime.c, read once when the context is created;
   * tests fake lower ones through CLTAPE_TEST_* variables, see apply_test_limits): */
  size_t group;            /* the local size of 1-D launches (CT_LS of the programs): a power of two */
  int reduce_vw;           /* elements per vector load of the reductions (CT_RVW of kernels/reduce.cl) */
  bool reduce_strided;     /* the reductions' rows read strided by the whole range (GPUs), not in blocks */
  size_t max_items[3];     /* CL_DEVICE_MAX_WORK_ITEM_SIZES, at most info.max_work_group_size */
  int cl_version;          /* the device's OpenCL version, major * 100 + minor * 10 (120, 300) */
  uint32_t base_align;     /* CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: sub-buffer origins must be multiples */
  bool force_idx64;        /* testing aid: 64-bit index kernels for every launch (CLTAPE_TEST_INDEX64) */
  size_t largest_group;    /* testing aid: the most work-items of any group launched so far */
};

/* program.c */
ct_status ctb_kernel(ct_context *ctx, const char *family, ct_dtype dt, const char *kname, cl_kernel *out);
/* The same with extra build options ("-DNAME=value ..."): one program per distinct string. */
ct_status ctb_kernel_opts(ct_context *ctx, const char *family, ct_dtype dt, const char *defines, const char *kname,
                          cl_kernel *out);
ct_status ctb_kernel_custom(ct_context *ctx, const char *source, const char *kname, ct_dtype dt, cl_kernel *out);
/* The kernel of a fused elementwise program (lib/fuse.c), built or loaded on first use. */
ct_status ctb_kernel_fused(ct_context *ctx, const char *source, const char *kname, ct_dtype dt, bool idx64,
                           cl_kernel *out);
/* Whether a fused program is to run now: it was built, or the structure `key` was met with a weight
 * of `after` before (this meeting adds `weight`), or its program is in the on-disk cache, or it
 * finished compiling on a thread (started at the structure's second meeting). */
bool ctb_fused_ready(ct_context *ctx, const char *source, ct_dtype dt, bool idx64, uint64_t key, int weight, int after);
ct_status ctb_build_source(ct_context *ctx, const char *what, const char *source, const char *options,
                           cl_program *out);
void ctb_programs_free(ct_context *ctx);
void ctb_cache_init(ct_context *ctx);
void ctb_choose_math(ct_context *ctx);
/* Sets ctx->half from CLTAPE_FP16_COMPUTE and the device (host/half.c); `on` on a device that
 * cannot build half kernels, or a value other than auto/on/off, fails. */
ct_status ctb_choose_half(ct_context *ctx);
/* Checks a program-cache entry held in memory as the entry of `key` (the 64 hex digits of its file
 * name): magic, payload length, the SHA-256 of the key and the payload, no trailing bytes. Pure: no
 * I/O, no allocation. True with the payload's offset and length for a valid entry; false (and
 * zeros) otherwise, also for a valid entry of another key. */
bool ctb_cache_parse(const unsigned char *buf, size_t len, const char *key, size_t *payload_off, size_t *payload_len);
/* The 48 bytes that precede `payload` in the cache entry of `key`: magic, length, checksum. */
void ctb_cache_head(const char *key, const unsigned char *payload, size_t n, unsigned char head[48]);
/* False for a driver's program binary known to abort that driver when built: a PoCL binary packed
 * while another process was rewriting its kernel cache (host/program.c). Never stored, never loaded.
 * Pure; true for binaries of other drivers. */
bool ctb_driver_binary_ok(const unsigned char *b, size_t n);
/* launch_nn.c: whether the direct convolutions run blocks of 16 float32 channels (CPU devices
 * whose preferred vector holds 16 floats, channel counts that are multiples of 16) */
bool ctb_conv_wide_vectors(const ct_context *ctx, ct_dtype dt, int64_t channels);
/* pool.c */
void ctb_pool_init(ct_context *ctx);
void ctb_pool_free(ct_context *ctx);
/* enqueue.c: the one launch path. An argument is its size and where its value is; a list of
 * them is an array, whose length CTB_RUN and CTB_ENQUEUE take from its type. */
typedef struct {
  size_t size;
  const void *ptr;
} ctb_arg;
#define CTB_ARG(x) ((ctb_arg){sizeof(x), &(x)})
/* A buffer's cl_mem, its values computed first when they are still pending (lazy): every use of a
 * buffer's storage goes through here. A failure to compute them is kept in ctx->lazy_status, which
 * ctb_enqueue and the transfers return. */
cl_mem *ctb_mem_ptr(const ct_buffer *b);
#define CTB_MEM(b) ((ctb_arg){sizeof(cl_mem), ctb_mem_ptr(b)}) /* a ct_buffer's cl_mem */
/* Computes every pending buffer of the context (pool.c). */
ct_status ctb_force_all(ct_context *ctx);
/* The status of forcing pending buffers since the last call (CT_OK, or the first failure), reset. */
ct_status ctb_lazy_status(ct_context *ctx);
/* the length of an array of ctb_arg (a pointer does not compile) */
#define CTB_NARGS(args)                                                                             \
  ((int)(sizeof(args) / sizeof(ctb_arg)) +                                                          \
   0 * (int)sizeof(char[__builtin_types_compatible_p(__typeof__(args), __typeof__(&(args)[0])) ? -1 : 1]) + \
   0 * (int)sizeof((args)[0].ptr))
/* Sets the arguments, enqueues k over a `dims`-dimensional range (local NULL: the
 * implementation's choice), maps out-of-resources to CT_ERR_OUT_OF_MEMORY, counts the launch
 * (and the largest group, a testing aid). */
ct_status ctb_enqueue(ct_context *ctx, cl_kernel k, const char *kname, const ctb_arg *args, int nargs, cl_uint dims,
                      const size_t *global, const size_t *local);
#define CTB_ENQUEUE(ctx, k, kname, args, dims, global, local) \
  ctb_enqueue(ctx, k, kname, args, CTB_NARGS(args), dims, global, local)
/* A 1-D launch of kernel kname of the program family/dt built with `defines` ("" for none). */
ct_status ctb_run(ct_context *ctx, const char *family, ct_dtype dt, const char *defines, const char *kname,
                  const ctb_arg *args, int nargs, size_t global, size_t local);
#define CTB_RUN(ctx, family, dt, defines, kname, args, global, local) \
  ctb_run(ctx, family, dt, defines, kname, args, CTB_NARGS(args), global, local)
/* 1-D launches: groups of ctx->group items (CT_LS in the programs), n rounded up to whole groups. */
size_t ctb_round_up(const ct_context *ctx, int64_t n);
/* Work-groups (or parts of a split launch) that keep every compute unit busy: 4 per unit. */
int64_t ctb_target_groups(const ct_context *ctx);
/* The one local-size chooser: halves the wanted local sizes of a `dims`-dimensional launch until
 * the device takes them: the group at most info.max_work_group_size items,
 * each dimension at most max_items[d]. Dimension dims-1 gives way first. */
void ctb_local_size(const ct_context *ctx, int dims, size_t *local);
/* The local size wanted for n items: the smallest power of two >= n, at most max. */
size_t ctb_pow2_at_least(int64_t n, size_t max);
/* Index width. The programs of kernels/ come in two builds: int index math (ct_idx in
 * kernels/prelude.cl), and long with -DCT_IDX64=1. A launch takes the long build only when a count,
 * extent or offset it computes passes 2^31 - 1 (or under CLTAPE_TEST_INDEX64), so that the common
 * case keeps the cheaper int math (on GPUs 64-bit integer multiplies and divisions cost several
 * instructions each). `largest` is the largest such value of the launch, in elements. */
static inline bool ctb_wide(const ct_context *ctx, int64_t largest) { return ctx->force_idx64 || largest > INT32_MAX; }
#define CTB_IDX_DEFS(w) ((w) ? "-DCT_IDX64=1" : "") /* the build options of that build */
/* A ct_idx kernel argument: int or long as the build; `slot` holds the value. */
typedef union {
  cl_int i;
  cl_long l;
} ctb_iarg;
static inline ctb_arg ctb_idx_arg(bool w, ctb_iarg *slot, int64_t v) {
  if (w) {
    slot->l = (cl_long)v;
    return (ctb_arg){sizeof(cl_long), &slot->l};
  }
  slot->i = (cl_int)v;
  return (ctb_arg){sizeof(cl_int), &slot->i};
}
/* OpenCL API calls of versions after 1.2 need the device's version checked first. */
static inline bool ctb_cl_at_least(const ct_context *ctx, int version) { return ctx->cl_version >= version; }
/* blas.c */
void ctb_blas_init(ct_context *ctx);
void ctb_blas_free(ct_context *ctx);
/* How a context runs matrix products of one dtype: through CLBlast (with the CLBlast parameters
 * in force) or through the tiled kernels of kernels/matmul.cl with this tile: mr rows x
 * (nv * vw) columns per work-item, A packed or read in place, wg work-items per group, tiles in
 * bands of bn column panels; products whose B has at most small_b elements per matrix read both
 * operands in place (one kernel instead of three). */
enum { CTB_GEMM_CLBLAST = 0, CTB_GEMM_TILE = 1 };
typedef struct {
  int engine;
  int mr, nv, vw, pack_a, wg, bn, small_b;
} ctb_gemm_plan;
/* One GEMM on the context's queue exactly as ctb_gemm issues it (row-major, strides in elements,
 * batch 1 = a plain GEMM) with the given plan. CLBlast indexes in int: a product whose operands
 * (with their batches) pass 2^31 - 1 elements runs on the plan's tile instead, in the tiled
 * kernels' long index build. The tuner times this. */
ct_status ctb_gemm_cl(ct_context *ctx, ct_dtype dt, const ctb_gemm_plan *plan, bool ta, bool tb, size_t m, size_t n,
                      size_t k, double alpha, cl_mem a, size_t lda, size_t stride_a, cl_mem b, size_t ldb,
                      size_t stride_b, double beta, cl_mem c, size_t ldc, size_t stride_c, size_t batch);
bool ctb_gemm_tile_fits(const ctb_gemm_plan *p, size_t m, size_t n, size_t k, size_t lda, size_t stride_a, size_t ldb,
                        size_t stride_b, size_t ldc, size_t stride_c, size_t batch);
/* tune.c: stored GEMM parameters (ctx->blas_state) */
void ctb_tune_context_init(ct_context *ctx);
bool ctb_tune_active(const ct_context *ctx, ct_dtype dt);
void ctb_tune_hint_once(const ct_context *ctx, ct_dtype dt);
/* The plan in force for dt: the stored one, else the device's default (ctb_tune_default_plan). */
void ctb_tune_plan(const ct_context *ctx, ct_dtype dt, ctb_gemm_plan *out);
void ctb_tune_default_plan(const ct_device_info *info, ct_dtype dt, ctb_gemm_plan *out);
/* Every tile the tuner can choose on such a device for dt, the default first (is_default[i] marks
 * the tiles of the device's defaults); returns how many were written (at most cap). */
#define CTB_MAX_TILES 256
int ctb_tune_tiles(const ct_device_info *info, ct_dtype dt, ctb_gemm_plan *out, bool *is_default, int cap);
/* The build options of kernels/matmul.cl for a tile (blas.c). */
void ctb_gemm_defines(const ctb_gemm_plan *p, bool pack_a, bool pack_b, char *buf, size_t cap);
/* Visits every program the library can build for a device like info, with native math or not:
 * its name, whole source and build options, and whether the device's defaults use it. */
typedef void (*ctb_program_visit)(const char *name, const char *source, const char *options, bool in_defaults,
                                  void *user);
ct_status ctb_programs_each(const ct_device_info *info, bool native, ctb_program_visit fn, void *user);
/* Writes the store of ctx's device from body lines "<dtype> <Kernel> NAME=value ..." (each dtype
 * complete: the seven CLBlast sets and the Tile line), adding the header and checksum. For tests and
 * tools. */
ct_status ctb_tune_store_write(ct_context *ctx, const char *body);
/* sha256 of a list of byte strings */
void ctb_sha256_hex(const void *const *parts, const size_t *lens, int n, char hex[65]);
/* seconds on a monotonic clock (program.c) */
double ctb_now_s(void);
#endif
