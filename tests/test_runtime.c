/*
 * test_runtime.c — the OpenCL runtime: device listing and selection (argument and CLTAPE_DEVICE),
 * contexts on the caller's OpenCL objects, buffers shared both ways with their reference counts,
 * the buffer pool, the on-disk program cache (cold, warm, corrupt, unusable, off) and the message
 * of a failed kernel build.
 */
#define _POSIX_C_SOURCE 200809L
#define CL_TARGET_OPENCL_VERSION 120
#include "support.h"
#include "ct_internal.h"
#include "cltape_cl.h"
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- devices and contexts ------------------------------------------------------------------- */
Test(runtime, device_list) {
  int count = -1;
  OK(ct_device_list(NULL, 0, &count));
  cr_assert_geq(count, 1, "no OpenCL device listed");
  ct_device_info *all = calloc((size_t)count, sizeof *all);
  int again = 0;
  OK(ct_device_list(all, count, &again));
  cr_assert_eq(again, count);
  for (int i = 0; i < count; ++i) {
    const ct_device_info *d = &all[i];
    cr_assert_eq(d->index, i);
    cr_assert(d->name[0] && d->vendor[0] && d->platform[0] && d->driver_version[0], "device %d: empty strings", i);
    cr_assert(strncmp(d->device_version, "OpenCL ", 7) == 0, "device %d version \"%s\"", i, d->device_version);
    cr_assert(strstr(d->opencl_c_version, "OpenCL C") != NULL, "device %d: C version \"%s\"", i, d->opencl_c_version);
    cr_assert(d->type == CT_DEVICE_CPU || d->type == CT_DEVICE_GPU || d->type == CT_DEVICE_ACCELERATOR ||
              d->type == CT_DEVICE_OTHER);
    cr_assert_geq(d->compute_units, 1);
    cr_assert_gt(d->global_mem_bytes, 0);
    cr_assert(d->max_alloc_bytes > 0 && d->max_alloc_bytes <= d->global_mem_bytes);
    cr_assert_gt(d->local_mem_bytes, 0);
    cr_assert_geq(d->max_work_group_size, 1);
    cr_log_info("device %d: %s (%s, %s), %u units, fp64 %d", i, d->name, d->platform, d->device_version,
                d->compute_units, d->fp64);
  }
  /* a short array gets the first entries and the full count */
  ct_device_info one;
  OK(ct_device_list(&one, 1, &again));
  cr_assert_eq(again, count);
  cr_assert_str_eq(one.name, all[0].name);
  EXPECT_STATUS(ct_device_list(NULL, 0, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_device_list(NULL, 2, &again), CT_ERR_INVALID);
  free(all);
}

static bool contains_ci(const char *hay, const char *needle) {
  for (; *hay; ++hay)
    if (strncasecmp(hay, needle, strlen(needle)) == 0) return true;
  return false;
}

/* A context on `sel` works and runs an op; returns its device. */
static ct_device_info context_on(const char *sel) {
  ct_context *ctx = NULL;
  ct_status s = ct_context_create(sel, &ctx);
  cr_assert_eq(s, CT_OK, "ct_context_create(\"%s\"): %s: %s", sel ? sel : "(null)", ct_status_name(s), ct_errmsg());
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_fill(ctx, CT_FLOAT32, 1, (int64_t[]){3}, 2.0, &x));
  OK(ct_square(x, &y));
  ts_assert_close(y, (double[]){4, 4, 4}, 3, 0, 0, "op on the selected device");
  ct_tensor_free_n((ct_tensor *[]){x, y}, 2);
  ct_context_free(ctx);
  return info;
}

Test(runtime, device_selection) {
  int count = 0;
  OK(ct_device_list(NULL, 0, &count));
  ct_device_info *all = calloc((size_t)count, sizeof *all);
  OK(ct_device_list(all, count, &count));
  bool has_gpu = false, has_cpu = false;
  int first_cpu = -1;
  for (int i = 0; i < count; ++i) {
    has_gpu = has_gpu || all[i].type == CT_DEVICE_GPU;
    if (all[i].type == CT_DEVICE_CPU && first_cpu < 0) first_cpu = i;
    has_cpu = has_cpu || all[i].type == CT_DEVICE_CPU;
  }
  ct__env_override("CLTAPE_DEVICE", NULL);
  /* by index */
  ct_device_info d = context_on("0");
  cr_assert_str_eq(d.name, all[0].name);
  cr_assert_eq(d.index, 0);
  /* by type */
  if (has_cpu) {
    d = context_on("cpu");
    cr_assert_eq(d.type, CT_DEVICE_CPU);
    cr_assert_eq(d.index, first_cpu);
    d = context_on("CPU");
    cr_assert_eq(d.type, CT_DEVICE_CPU);
  }
  ct_context *ctx = NULL;
  if (has_gpu) {
    d = context_on("gpu");
    cr_assert_eq(d.type, CT_DEVICE_GPU);
  } else {
    EXPECT_STATUS(ct_context_create("gpu", &ctx), CT_ERR_NO_DEVICE);
    cr_assert_null(ctx);
    cr_assert(strstr(ct_errmsg(), "gpu") != NULL, "message does not name the selector: %s", ct_errmsg());
  }
  /* by a case-insensitive substring of the name */
  char sub[8];
  size_t l = strlen(all[0].name);
  snprintf(sub, sizeof sub, "%.5s", all[0].name + (l > 8 ? 2 : 0));
  for (char *c = sub; *c; ++c) *c = (char)(islower((unsigned char)*c) ? toupper((unsigned char)*c) : tolower((unsigned char)*c));
  d = context_on(sub);
  cr_assert(contains_ci(d.name, sub) || contains_ci(d.platform, sub), "\"%s\" picked %s", sub, d.name);
  /* nothing matches */
  EXPECT_STATUS(ct_context_create("no-such-device-anywhere", &ctx), CT_ERR_NO_DEVICE);
  cr_assert(strstr(ct_errmsg(), "no-such-device-anywhere") != NULL, "%s", ct_errmsg());
  char idx[16];
  snprintf(idx, sizeof idx, "%d", count);
  EXPECT_STATUS(ct_context_create(idx, &ctx), CT_ERR_NO_DEVICE);
  EXPECT_STATUS(ct_context_create("-1", &ctx), CT_ERR_NO_DEVICE);
  EXPECT_STATUS(ct_context_create(NULL, NULL), CT_ERR_NULL);
  /* the environment variable, and the argument taking precedence over it */
  ct__env_override("CLTAPE_DEVICE", "no-such-device-anywhere");
  EXPECT_STATUS(ct_context_create(NULL, &ctx), CT_ERR_NO_DEVICE);
  EXPECT_STATUS(ct_context_create("", &ctx), CT_ERR_NO_DEVICE);
  d = context_on("0");
  cr_assert_eq(d.index, 0);
  char last[16];
  snprintf(last, sizeof last, "%d", count - 1);
  ct__env_override("CLTAPE_DEVICE", last);
  d = context_on(NULL);
  cr_assert_eq(d.index, count - 1);
  cr_assert_str_eq(d.name, all[count - 1].name);
  ct__env_override("CLTAPE_DEVICE", NULL);
  /* the default: the first GPU, else the first CPU */
  d = context_on(NULL);
  if (has_gpu) cr_assert_eq(d.type, CT_DEVICE_GPU);
  else if (has_cpu) cr_assert_eq(d.index, first_cpu);
  free(all);
}

/* ---- interop with the caller's OpenCL objects ------------------------------------------------ */

typedef struct {
  cl_platform_id platform;
  cl_device_id device;
  cl_context context;
  cl_command_queue queue;
} raw_cl;

static raw_cl raw_cl_create(cl_command_queue_properties props) {
  raw_cl r;
  memset(&r, 0, sizeof r);
  cl_uint np = 0;
  cr_assert_eq(clGetPlatformIDs(1, &r.platform, &np), CL_SUCCESS);
  cr_assert_geq(np, 1);
  cr_assert_eq(clGetDeviceIDs(r.platform, CL_DEVICE_TYPE_ALL, 1, &r.device, NULL), CL_SUCCESS);
  cl_int err;
  r.context = clCreateContext(NULL, 1, &r.device, NULL, NULL, &err);
  cr_assert_eq(err, CL_SUCCESS);
  r.queue = clCreateCommandQueue(r.context, r.device, props, &err);
  cr_assert_eq(err, CL_SUCCESS);
  return r;
}

static void raw_cl_free(raw_cl *r) {
  clReleaseCommandQueue(r->queue);
  clReleaseContext(r->context);
}

Test(runtime, interop_context_and_buffers) {
  raw_cl r = raw_cl_create(0);
  cl_uint ctx_refs = ts_ctx_refs(r.context), q_refs = ts_queue_refs(r.queue);
  ct_context *ctx = NULL;
  OK(ct_context_create_from_cl(r.context, r.device, r.queue, &ctx));
  cr_assert_gt(ts_ctx_refs(r.context), ctx_refs, "the context must retain the cl_context");
  cr_assert_eq(ts_queue_refs(r.queue), q_refs + 1, "the context must retain the queue");
  cl_context c2;
  cl_device_id d2;
  cl_command_queue q2;
  OK(ct_context_cl(ctx, &c2, &d2, &q2));
  cr_assert(c2 == r.context && d2 == r.device && q2 == r.queue);
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  char name[256] = {0};
  clGetDeviceInfo(r.device, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
  cr_assert(strncmp(info.name, name, strlen(info.name)) == 0, "device %s vs %s", info.name, name);

  /* the caller's buffer as a tensor: retained while the tensor lives, no copy */
  float host[6] = {1, 2, 3, 4, 5, 6};
  cl_int err;
  cl_mem mem = clCreateBuffer(r.context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof host, host, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_uint before = ts_mem_refs(mem);
  ct_tensor *t = NULL, *y = NULL;
  OK(ct_tensor_from_cl_mem(ctx, mem, CT_FLOAT32, 2, (int64_t[]){2, 3}, &t));
  cr_assert_eq(ts_mem_refs(mem), before + 1, "the tensor must retain the buffer");
  ts_assert_close(t, (double[]){1, 2, 3, 4, 5, 6}, 6, 0, 0, "wrapped buffer");
  cl_mem back = NULL;
  OK(ct_tensor_cl_mem(t, &back));
  cr_assert_eq(back, mem, "the wrapped tensor must hand back the same buffer");
  cr_assert_eq(ts_mem_refs(mem), before + 1, "ct_tensor_cl_mem lends, it does not retain");
  /* shared data: the caller's writes are seen by the next op */
  float seven[6] = {7, 7, 7, 7, 7, 7};
  cr_assert_eq(clEnqueueWriteBuffer(r.queue, mem, CL_TRUE, 0, sizeof seven, seven, 0, NULL, NULL), CL_SUCCESS);
  OK(ct_mul_scalar(t, 2, &y));
  ts_assert_close(y, (double[]){14, 14, 14, 14, 14, 14}, 6, 0, 0, "op on the wrapped buffer");
  /* a view of a prefix of a bigger buffer. Counted from here: an implementation may hold
   * references of its own once a kernel used the buffer (rusticl keeps a kernel's arguments) */
  const cl_uint base = ts_mem_refs(mem);
  cr_assert_geq(base, before + 1);
  ct_tensor *prefix = NULL;
  OK(ct_tensor_from_cl_mem(ctx, mem, CT_FLOAT32, 1, (int64_t[]){4}, &prefix));
  cr_assert_eq(ts_mem_refs(mem), base + 1, "refcount %u, wanted %u", ts_mem_refs(mem), base + 1);
  ts_assert_close(prefix, (double[]){7, 7, 7, 7}, 4, 0, 0, "prefix view");
  const cl_uint held = ts_mem_refs(mem); /* the read may have used a kernel too */
  ct_tensor_free(prefix);
  cr_assert_eq(ts_mem_refs(mem), held - 1, "freeing the view must release the buffer");
  ct_tensor_free(t);
  cr_assert_eq(ts_mem_refs(mem), held - 2, "freeing the tensor must release the buffer");

  /* a result's buffer, read with plain OpenCL after a sync */
  cl_mem ym = NULL;
  OK(ct_tensor_cl_mem(y, &ym));
  OK(ct_context_sync(ctx));
  float out[6];
  cr_assert_eq(clEnqueueReadBuffer(r.queue, ym, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL), CL_SUCCESS);
  for (int i = 0; i < 6; ++i) cr_assert_eq(out[i], 14.0f);
  cl_uint yr = ts_mem_refs(ym);
  clRetainMemObject(ym); /* kept past the tensor and the context */
  cr_assert_eq(ts_mem_refs(ym), yr + 1);
  ct_tensor_free(y);

  /* bad buffers */
  cl_mem small = clCreateBuffer(r.context, CL_MEM_READ_WRITE, 8, NULL, &err);
  EXPECT_STATUS(ct_tensor_from_cl_mem(ctx, small, CT_FLOAT32, 1, (int64_t[]){3}, &t), CT_ERR_SHAPE);
  cr_assert_null(t);
  cr_assert_eq(ts_mem_refs(small), 1, "a refused buffer must not be retained");
  EXPECT_STATUS(ct_tensor_from_cl_mem(ctx, NULL, CT_FLOAT32, 1, (int64_t[]){1}, &t), CT_ERR_NULL);
  raw_cl other = raw_cl_create(0);
  cl_mem foreign = clCreateBuffer(other.context, CL_MEM_READ_WRITE, 64, NULL, &err);
  EXPECT_STATUS(ct_tensor_from_cl_mem(ctx, foreign, CT_FLOAT32, 1, (int64_t[]){4}, &t), CT_ERR_CONTEXT);
  cr_assert_eq(ts_mem_refs(foreign), 1);
  clReleaseMemObject(foreign);
  clReleaseMemObject(small);

  /* a queue of another context, an out-of-order queue */
  ct_context *bad = NULL;
  EXPECT_STATUS(ct_context_create_from_cl(r.context, r.device, other.queue, &bad), CT_ERR_INVALID);
  EXPECT_STATUS(ct_context_create_from_cl(NULL, r.device, r.queue, &bad), CT_ERR_NULL);
  cl_command_queue ooo = clCreateCommandQueue(r.context, r.device, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
  if (err == CL_SUCCESS) {
    EXPECT_STATUS(ct_context_create_from_cl(r.context, r.device, ooo, &bad), CT_ERR_INVALID);
    clReleaseCommandQueue(ooo);
  }
  cr_assert_null(bad);
  raw_cl_free(&other);

  /* freeing the context gives the caller's objects back (PoCL's buffers also hold the cl_context
   * and the queue that last used them, so the counts are checked once they are gone) */
  ct_context_free(ctx);
  /* the driver may drop the references of finished commands asynchronously (rusticl) */
  clFinish(r.queue);
  cr_assert_eq(TS_SETTLE(ts_mem_refs(mem), before), before);
  clReleaseMemObject(mem);
  cl_uint ym_refs = TS_SETTLE(ts_mem_refs(ym), 1);
  cr_assert_eq(ym_refs, 1, "the context kept a reference to a result buffer (%u references)", ym_refs);
  memset(out, 0, sizeof out);
  cr_assert_eq(clEnqueueReadBuffer(r.queue, ym, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL), CL_SUCCESS);
  for (int i = 0; i < 6; ++i) cr_assert_eq(out[i], 14.0f, "retained buffer lost its data");
  clReleaseMemObject(ym);
  /* the driver drops the references of finished commands asynchronously: give it a moment */
  clFinish(r.queue);
  cl_uint cr = TS_SETTLE(ts_ctx_refs(r.context), ctx_refs), qr = TS_SETTLE(ts_queue_refs(r.queue), q_refs);
  cr_assert_eq(cr, ctx_refs, "the cl_context reference was not released (%u, was %u)", cr, ctx_refs);
  cr_assert_eq(qr, q_refs, "the queue reference was not released (%u, was %u)", qr, q_refs);
  raw_cl_free(&r);
}

/* ---- the buffer pool ----------------------------------------------------------------------------- */
Test(runtime, buffer_pool_reuses) {
  /* the pool itself: every result takes storage (with fusion on, pending intermediates never do) */
  ct__fusion_set(false, -1);
  ct_context *ctx = ts_ctx();
  ct_tensor *x = NULL;
  OK(ct_random_uniform(ctx, CT_FLOAT32, 1, (int64_t[]){10007}, -1, 1, 3, &x));
  ct_context_stats s0, s1, s2;
  OK(ct_context_stats_get(ctx, &s0));
  for (int i = 0; i < 200; ++i) {
    ct_tensor *a = NULL, *b = NULL, *c = NULL;
    OK(ct_exp(x, &a));
    OK(ct_mul(a, x, &b));
    OK(ct_sum(b, NULL, 0, false, &c));
    ct_tensor_free_n((ct_tensor *[]){a, b, c}, 3);
  }
  OK(ct_context_sync(ctx));
  OK(ct_context_stats_get(ctx, &s1));
  uint64_t created = s1.buffers_created - s0.buffers_created, reused = s1.buffers_reused - s0.buffers_reused;
  cr_log_info("600 results: %llu buffers created, %llu reused", (unsigned long long)created, (unsigned long long)reused);
  cr_assert_leq(created, 6, "the pool should serve a loop: %llu buffers created", (unsigned long long)created);
  cr_assert_geq(reused, 590, "only %llu allocations reused", (unsigned long long)reused);
  cr_assert_eq(s1.bytes_in_use, s0.bytes_in_use, "bytes in use grew from %llu to %llu", (unsigned long long)s0.bytes_in_use,
               (unsigned long long)s1.bytes_in_use);
  cr_assert_gt(s1.bytes_pooled, 0);
  cr_assert_geq(s1.peak_bytes_in_use, s1.bytes_in_use + 10007 * 4);
  cr_assert_gt(s1.kernels_launched, s0.kernels_launched + 500);
  ct_context_trim(ctx);
  OK(ct_context_stats_get(ctx, &s2));
  cr_assert_eq(s2.bytes_pooled, 0, "trim left %llu bytes pooled", (unsigned long long)s2.bytes_pooled);
  ct_context_reset_peak(ctx);
  OK(ct_context_stats_get(ctx, &s2));
  cr_assert_eq(s2.peak_bytes_in_use, s2.bytes_in_use);
  /* after a trim the next allocation creates a buffer again */
  ct_tensor *a = NULL;
  OK(ct_exp(x, &a));
  OK(ct_context_stats_get(ctx, &s1));
  cr_assert_eq(s1.buffers_created, s2.buffers_created + 1);
  ct_tensor_free(a);
  ct_tensor_free(x);
  EXPECT_STATUS(ct_context_stats_get(ctx, NULL), CT_ERR_NULL);
  ct_context_free(ctx);
}

/* ---- the on-disk program cache -------------------------------------------------------------------- */
/* A fixed workload touching three program families; checks the result. */
static void workload(ct_context *ctx) {
  ct_tensor *x = NULL, *y = NULL, *z = NULL, *w = NULL;
  OK(ct_fill(ctx, CT_FLOAT32, 2, (int64_t[]){4, 3}, 1.0, &x));
  OK(ct_exp(x, &y));
  OK(ct_sum(y, NULL, 0, false, &z));
  OK(ct_transpose(x, NULL, &w));
  cr_assert(fabs(ts_item(z) - 12 * exp(1.0)) < 1e-4, "workload result %g", ts_item(z));
  ts_assert_shape(w, 2, (int64_t[]){3, 4}, "workload transpose");
  ct_tensor_free_n((ct_tensor *[]){x, y, z, w}, 4);
}

static ct_context_stats run_workload(void) {
  ct_context *ctx = ts_ctx();
  workload(ctx);
  ct_context_stats s;
  OK(ct_context_stats_get(ctx, &s));
  ct_context_free(ctx);
  return s;
}

static int count_bins(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, ".bin") == 0) ++n;
  closedir(d);
  return n;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[1024];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  closedir(d);
  rmdir(dir);
}

/* Damages every .bin: mode 0 truncates to half, mode 1 flips bytes in the middle and at the end. */
static int damage_bins(const char *dir, int mode) {
  DIR *d = opendir(dir);
  cr_assert(d);
  int n = 0;
  struct dirent *e;
  char p[1024];
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l <= 4 || strcmp(e->d_name + l - 4, ".bin")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    if (mode == 0) {
      cr_assert_eq(truncate(p, st.st_size / 2), 0);
    } else {
      int fd = open(p, O_RDWR);
      cr_assert_geq(fd, 0);
      off_t at[2] = {st.st_size / 2, st.st_size - 1};
      for (int k = 0; k < 2; ++k) {
        unsigned char c;
        cr_assert_eq(pread(fd, &c, 1, at[k]), 1);
        c ^= 0x5a;
        cr_assert_eq(pwrite(fd, &c, 1, at[k]), 1);
      }
      close(fd);
    }
    ++n;
  }
  closedir(d);
  return n;
}

Test(program_cache, cold_warm_corrupt) {
  char dir[] = "/tmp/cltape-cache-test-XXXXXX";
  cr_assert(mkdtemp(dir));
  ct__env_override("CLTAPE_CACHE_DIR", dir);
  /* cold: in a child process, so that the warm run below is a process of its own too */
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    ct_context *ctx = NULL;
    ct_context_stats s;
    memset(&s, 0, sizeof s);
    if (ct_context_create(NULL, &ctx) == CT_OK) {
      ct_tensor *x = NULL, *y = NULL, *z = NULL, *w = NULL;
      ct_fill(ctx, CT_FLOAT32, 2, (int64_t[]){4, 3}, 1.0, &x);
      ct_exp(x, &y);
      ct_sum(y, NULL, 0, false, &z);
      ct_transpose(x, NULL, &w);
      double v = 0;
      if (ct_tensor_item(z, &v) != CT_OK || fabs(v - 12 * exp(1.0)) > 1e-4) s.kernels_launched = 0;
      else ct_context_stats_get(ctx, &s);
      ct_tensor_free_n((ct_tensor *[]){x, y, z, w}, 4);
      ct_context_free(ctx);
    }
    ssize_t wr = write(fds[1], &s, sizeof s);
    _exit(wr == (ssize_t)sizeof s ? 0 : 1);
  }
  close(fds[1]);
  ct_context_stats cold;
  cr_assert_eq(read(fds[0], &cold, sizeof cold), (ssize_t)sizeof cold);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "cold child failed");
  cr_assert_gt(cold.kernels_launched, 0, "the cold run did not compute the workload");
  cr_assert_gt(cold.programs_built, 0, "cold: nothing built");
  cr_assert_eq(cold.programs_from_cache, 0, "cold: %llu loaded from an empty cache", (unsigned long long)cold.programs_from_cache);
  int bins = count_bins(dir);
  cr_assert_geq(bins, 3, "cold run stored %d programs", bins);

  /* warm: this process loads what the child stored */
  ct_context_stats warm = run_workload();
  cr_assert_eq(warm.programs_built, 0, "warm: %llu programs built", (unsigned long long)warm.programs_built);
  cr_assert_geq(warm.programs_from_cache, 3);
  /* and a second context of the same process */
  ct_context_stats again = run_workload();
  cr_assert_eq(again.programs_built, 0);
  cr_assert_eq(again.programs_from_cache, warm.programs_from_cache);
  printf("program build time (cltape cache %s): cold %.3f s (%llu programs built), warm %.3f s (%llu loaded)\n", dir,
         cold.build_seconds, (unsigned long long)cold.programs_built, warm.build_seconds,
         (unsigned long long)warm.programs_from_cache);
  cr_log_info("program build time: cold %.3f s, warm %.3f s", cold.build_seconds, warm.build_seconds);

  /* damaged entries are compiled again, without an error, and replaced */
  for (int mode = 0; mode < 2; ++mode) {
    cr_assert_eq(damage_bins(dir, mode), bins);
    ct_context_stats dmg = run_workload();
    cr_assert_eq(dmg.programs_from_cache, 0, "mode %d: a damaged entry was loaded", mode);
    cr_assert_geq(dmg.programs_built, 3, "mode %d: %llu built", mode, (unsigned long long)dmg.programs_built);
    ct_context_stats fixed = run_workload();
    cr_assert_eq(fixed.programs_built, 0, "mode %d: entries were not rewritten", mode);
    cr_assert_geq(fixed.programs_from_cache, 3);
  }
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
  remove_dir(dir);
}

Test(program_cache, unusable_or_off) {
  /* a path below a regular file cannot be created, even by root: the cache turns itself off */
  ct__env_override("CLTAPE_CACHE_DIR", "/dev/null/cltape-cache");
  ct_context_stats s = run_workload();
  cr_assert_eq(s.programs_from_cache, 0);
  cr_assert_gt(s.programs_built, 0);
  /* "off": even a second context builds everything again */
  ct__env_override("CLTAPE_CACHE_DIR", "off");
  s = run_workload();
  ct_context_stats s2 = run_workload();
  cr_assert_eq(s.programs_from_cache + s2.programs_from_cache, 0);
  cr_assert_geq(s2.programs_built, 3, "with the cache off every context builds");
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
}

/* ---- a failed kernel build ---------------------------------------------------------------------- */
static ct_status same_shape(int n, const ct_tensor *const *in, int *rank, int64_t *shape, ct_dtype *dt, void *user) {
  (void)n;
  (void)user;
  *rank = ct_tensor_rank(in[0]);
  memcpy(shape, ct_tensor_shape(in[0]), sizeof(int64_t) * (size_t)*rank);
  *dt = ct_tensor_dtype(in[0]);
  return CT_OK;
}

Test(runtime, failed_build_reports_everything) {
  ct_context *ctx = ts_ctx();
  ct_custom_op bad = {
      .name = "BrokenTwice",
      .source = "__kernel void broken_twice(int n, __global T *out, __global const T *x, int r, int8 s) {\n"
                "  int i = get_global_id(0)\n" /* missing ';' */
                "  if (i < n) out[i] = 2 * x[i];\n"
                "}\n",
      .kernel = "broken_twice",
      .n_inputs = 1,
      .shape = same_shape,
  };
  OK(ct_custom_op_register(&bad));
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_fill(ctx, CT_FLOAT32, 1, (int64_t[]){5}, 1.5, &x));
  EXPECT_STATUS(ct_custom_op_call(ctx, "BrokenTwice", &x, 1, &y), CT_ERR_BUILD);
  cr_assert_null(y);
  const char *msg = ct_errmsg();
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  cr_assert(strstr(msg, "broken_twice"), "no kernel name in: %s", msg);
  cr_assert(strstr(msg, "-DCT_DT="), "no build options in: %s", msg);
  cr_assert(strstr(msg, info.name), "no device name in: %s", msg);
  cr_assert(strstr(msg, "error"), "no compiler log in: %s", msg);
  cr_assert(strstr(msg, "expected ';'") || strstr(msg, "';'"), "the log does not show the error: %s", msg);
  cr_assert_str_eq(ct_context_errmsg(ctx), msg, "the context keeps the same message");
  /* the context still works, and a correct op of the same shape runs */
  ct_custom_op good = bad;
  good.name = "GoodTwice";
  good.kernel = "good_twice";
  good.source = "__kernel void good_twice(int n, __global T *out, __global const T *x, int r, int8 s) {\n"
                "  int i = get_global_id(0);\n"
                "  if (i < n) out[i] = 2 * x[i];\n"
                "}\n";
  OK(ct_custom_op_register(&good));
  OK(ct_custom_op_call(ctx, "GoodTwice", &x, 1, &y));
  ts_assert_close(y, (double[]){3, 3, 3, 3, 3}, 5, 0, 0, "custom op after a failed build");
  ct_tensor_free(y);
  /* the broken op fails the same way again (nothing half-built was kept) */
  EXPECT_STATUS(ct_custom_op_call(ctx, "BrokenTwice", &x, 1, &y), CT_ERR_BUILD);
  ct_tensor_free(x);
  ct_context_free(ctx);
}
