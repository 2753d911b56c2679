/* support.h — helpers shared by the Criterion tests. Each test creates its own context (Criterion
 * runs every test in a fresh process). */
#ifndef CT_TEST_SUPPORT_H
#define CT_TEST_SUPPORT_H
#include <criterion/criterion.h>
#include <time.h> /* nanosleep (TS_SETTLE) */
#include "cltape.h"
#include "cltape_nn.h"
#include "cltape_cl.h"
#include "ct_base.h" /* ct__env_override: tests change the library's variables through it, never with setenv */

/* Asserts that a call returns CT_OK, printing the library's message otherwise. */
#define OK(call)                                                                                         \
  do {                                                                                                   \
    ct_status ok_s_ = (call);                                                                            \
    cr_assert_eq(ok_s_, CT_OK, "%s -> %s: %s", #call, ct_status_name(ok_s_), ct_errmsg());               \
  } while (0)
/* Asserts a specific status and a non-empty message. */
#define EXPECT_STATUS(call, want)                                                                        \
  do {                                                                                                   \
    ct_status st_s_ = (call);                                                                            \
    cr_assert_eq(st_s_, (want), "%s -> %s (wanted %s): %s", #call, ct_status_name(st_s_),                \
                 ct_status_name(want), ct_errmsg());                                                     \
    cr_assert(ct_errmsg()[0] != 0, "%s: empty error message", #call);                                   \
  } while (0)

/* The context for this test (device from CLTAPE_DEVICE, default otherwise). */
ct_context *ts_ctx(void);
/* A tensor from doubles converted to dtype. */
ct_tensor *ts_tensor(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, const double *values);
/* Reads every element as double into a malloc'd array (free it). */
double *ts_read(const ct_tensor *t);
/* Asserts elementwise |got - want| <= atol + rtol*|want| (NaN equals NaN). With a tolerance
 * (atol or rtol > 0) a float element also passes within ts_ulps(device) ulps of want, since the
 * OpenCL spec lets implementations round differently (builtins within a few ulps, contracted
 * a*b+c). atol = rtol = 0 asks for the exact value: data movement, and results that every
 * implementation rounds alike (exact integers, +, -, * of exactly representable values). */
void ts_assert_close(const ct_tensor *t, const double *want, int64_t n, double atol, double rtol, const char *what);
/* Asserts elementwise that got lies within `ulps` ulps (of the tensor's dtype) of want. */
void ts_assert_ulps(const ct_tensor *t, const double *want, int64_t n, double ulps, const char *what);
/* Distance of got from want in ulps of dt (float32, float64; int32: the plain difference). */
double ts_ulp_diff(ct_dtype dt, double got, double want);
/* The next number of a splitmix64 stream (the random graph tests: the same graphs on every machine). */
uint64_t ts_splitmix64(uint64_t *state);
/* A tape begun with these options (asserted to succeed). */
ct_tape *ts_tape(ct_context *ctx, bool persistent, bool watch_accessed);
/* dy/dx from the tape (asserted to succeed; NULL for an unconnected x). */
ct_tensor *ts_grad1(ct_tape *t, const ct_tensor *y, const ct_tensor *x);
/* The reference counts OpenCL reports for an application's objects (asserted to be readable). */
cl_uint ts_mem_refs(cl_mem m);
cl_uint ts_ctx_refs(cl_context c);
cl_uint ts_queue_refs(cl_command_queue q);
cl_uint ts_event_refs(cl_event e);
/* Drivers drop the references of finished commands asynchronously: polls until the count is
 * `want` (at most a second), then returns the last count. */
#define TS_SETTLE(count_expr, want)                                                           \
  ({                                                                                          \
    cl_uint settle_v_ = (count_expr);                                                         \
    for (int settle_i_ = 0; settle_i_ < 200 && settle_v_ != (want); ++settle_i_) {            \
      nanosleep(&(struct timespec){0, 5000000}, NULL);                                        \
      settle_v_ = (count_expr);                                                               \
    }                                                                                         \
    settle_v_;                                                                                \
  })
/* The ulps by which a float result may differ on this device from the correctly rounded one: the
 * worst error of its math builtins as the native-math probe measured it (the OpenCL C spec's
 * bound, 4, where precise builtins are used), plus 1 for the rounding of the arithmetic around them. */
double ts_ulps(const ct_context *ctx);

/* ---- devices without float64 (float64 is optional in OpenCL) ------------------------------ */
/* Whether the device has float64. */
bool ts_has_fp64(const ct_context *ctx);
/* Whether the device supports dtype dt (float64 is the optional one). Tests that go through
 * several dtypes check those the device has. */
bool ts_has_dtype(const ct_context *ctx, ct_dtype dt);
/* The most precise float dtype of the device: float64 where it has it, else float32. Tests whose
 * check means the same in float32 run in this dtype, with tolerances that follow it. */
ct_dtype ts_best_float(const ct_context *ctx);
/* Where the device has no float64, skips the running test (cr_skip_test) with the reason
 * "needs float64: device "NAME" has none". Every run lists each skipped test with its reason
 * ("[SKIP] suite::test: ...") and ends with their count (report hooks in support.c). */
void ts_require_fp64(const ct_context *ctx);
/* Asserts the tensor's shape. */
void ts_assert_shape(const ct_tensor *t, int rank, const int64_t *shape, const char *what);
/* The single value of a one-element tensor. */
double ts_item(const ct_tensor *t);

/* A new folder /tmp/cltape_<name>_XXXXXX for the test's files (dir: at least 64 bytes), and its
 * removal with everything in it. */
void ts_tmpdir(char *dir, size_t cap, const char *name);
void ts_rmdir(const char *dir);

/* Deterministic uniform numbers in [0, 1) (no libc rand): set ts_rng_state to seed them. */
extern uint64_t ts_rng_state;
double ts_rnd01(void);
/* The value as a tensor of dtype dt holds it. */
double ts_to_dtype(ct_dtype dt, double v);
/* n values in [-1, 1) from a small LCG seeded by seed, rounded to dt (the caller frees them) */
double *ts_lcg_values(ct_dtype dt, int64_t n, uint32_t seed);
/* a tensor of those values; *host (when not NULL) receives them, for the caller to free */
ct_tensor *ts_lcg_tensor(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, uint32_t seed, double **host);
/* Element count of a shape. */
int64_t ts_numel(int rank, const int64_t *shape);

/* The user-defined op of S19, AdjustContrastv2 on an HWC image: out = (x - m) * delta + m with m
 * the per-channel mean over the spatial axes. Registers it as `name` (with its shape rule), and its
 * gradient (built from ct_ ops) when with_gradient. */
ct_status ts_contrast_register(const char *name, bool with_gradient);
/* The gradient alone, for tests that register it later. */
ct_status ts_contrast_grad(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user);
#endif
