/*
 * test_host_files.c — what the runtime reads from the environment and the disk, and how it
 * refuses what it must not use:
 *  - the program cache: an entry is valid only for its own key (a valid entry copied over another
 *    key's file is rebuilt, never run); the folder is created private (0700), and a folder or an
 *    entry that another user owns or that others may write to is not used; FIFOs, links and
 *    directories in place of entries never block and are never read; a cache folder name longer
 *    than the runtime keeps turns the cache off with a warning, never truncated;
 *  - ct__fopen_regular, the one opener of paths (base/fileio.c);
 *  - CLTAPE_DEVICE / device selectors: an index out of range is an error, never device 0;
 *  - allocations past the device's limits are refused with a message that names the sizes;
 *  - a user gradient that fails without a message gets one naming it.
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_internal.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------------------------------- */
static char *temp_dir(void) {
  char *d = strdup("/tmp/cltape-host-files-XXXXXX");
  cr_assert(d && mkdtemp(d), "mkdtemp");
  return d;
}

static void remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    chmod(path, 0700);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char p[2048];
      snprintf(p, sizeof p, "%s/%s", path, e->d_name);
      remove_tree(p);
    }
    if (d) closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* dir/prefix+name, asserted to fit */
static void join(char *out, size_t cap, const char *dir, const char *prefix, const char *name) {
  int n = snprintf(out, cap, "%s/%s%s", dir, prefix, name);
  cr_assert(n > 0 && (size_t)n < cap, "path too long");
}

/* Names in dir ending in suffix (at most cap, 256 characters each); returns the count. */
static int list_dir(const char *dir, const char *suffix, char (*names)[256], int cap) {
  DIR *d = opendir(dir);
  cr_assert(d, "opendir %s: %s", dir, strerror(errno));
  int n = 0;
  struct dirent *e;
  size_t sl = strlen(suffix);
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (e->d_name[0] == '.' || l < sl || strcmp(e->d_name + l - sl, suffix) != 0) continue;
    if (n < cap) snprintf(names[n], 256, "%s", e->d_name);
    n++;
  }
  closedir(d);
  return n;
}

static bool listed(char (*names)[256], int n, const char *name) {
  for (int k = 0; k < n; ++k)
    if (strcmp(names[k], name) == 0) return true;
  return false;
}

static void copy_file(const char *from, const char *to) {
  FILE *f = fopen(from, "rb"), *t = fopen(to, "wb");
  cr_assert(f && t, "copy %s -> %s", from, to);
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) cr_assert_eq(fwrite(buf, 1, n, t), n);
  fclose(f);
  cr_assert_eq(fclose(t), 0);
}

static ct_context_stats stats_of(ct_context *ctx) {
  ct_context_stats s;
  OK(ct_context_stats_get(ctx, &s));
  return s;
}

/* a + 1 on (0.5, 1.5, 2.5, 3.5) in dtype dt ((0, 1, 2, 3) in int32), checked; returns the
 * context's counters. */
static ct_context_stats add_one(ct_dtype dt) {
  ct_context *ctx = ts_ctx();
  const double h = dt == CT_INT32 ? 0 : 0.5;
  ct_tensor *a = ts_tensor(ctx, dt, 1, (int64_t[]){4}, (double[]){h, 1 + h, 2 + h, 3 + h}), *one = NULL, *y = NULL;
  OK(ct_scalar(ctx, dt, 1.0, &one));
  OK(ct_add(a, one, &y));
  ts_assert_close(y, (double[]){1 + h, 2 + h, 3 + h, 4 + h}, 4, 0, 0, "a + 1");
  ct_context_stats s = stats_of(ctx);
  ct_tensor_free_n((ct_tensor *[]){a, one, y}, 3);
  ct_context_free(ctx);
  return s;
}

/* Warnings logged while a context is created (the cache folder is judged then). */
static char logged[4096];
static void keep_log(ct_log_level level, const char *msg, void *user) {
  (void)user;
  if (level >= CT_LOG_WARNING) {
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", msg);
  }
}

/* The dtype whose elementwise program stands beside float32's in these tests: float64 where the
 * device has it, else int32 (another program, so another key). Creates and frees a context. */
static ct_dtype other_dtype(void) {
  ct_context *ctx = ts_ctx();
  ct_dtype dt = ts_has_fp64(ctx) ? CT_FLOAT64 : CT_INT32;
  ct_context_free(ctx);
  return dt;
}

/* ---- entries are bound to their key -------------------------------------------------------------- */
/* The float32 elementwise program's entry copied over the float64 one (int32 on a device without
 * float64), and every other float32 entry too: the a + 1 in that dtype is still right, because each
 * copy is refused and rebuilt. */
Test(program_cache, an_entry_copied_over_another_key_is_rebuilt) {
  char *dir = temp_dir();
  ct__env_override("CLTAPE_CACHE_DIR", dir);
  static char f32[64][256], all[64][256];
  const ct_dtype other = other_dtype();
  ct_context_stats s = add_one(CT_FLOAT32);
  cr_assert_gt(s.programs_built, 0);
  int n32 = list_dir(dir, ".bin", f32, 64);
  s = add_one(other);
  cr_assert_gt(s.programs_built, 0, "%s needs a program of its own", ct_dtype_name(other));
  int n = list_dir(dir, ".bin", all, 64);
  cr_assert(n32 >= 1 && n > n32 && n <= 64, "%d float32 entries, %d in all", n32, n);
  for (int src = 0; src < n32; ++src) {
    int copied = 0;
    for (int k = 0; k < n; ++k) {
      if (listed(f32, n32, all[k])) continue; /* an entry of the other dtype */
      char from[2048], to[2048];
      join(from, sizeof from, dir, "", f32[src]);
      join(to, sizeof to, dir, "", all[k]);
      copy_file(from, to);
      copied++;
    }
    cr_assert_gt(copied, 0);
    ct_context_stats after = add_one(other); /* asserts the values */
    cr_assert_eq(after.programs_built, (uint64_t)copied, "entry %s copied over %d %s entries: %llu rebuilt",
                 f32[src], copied, ct_dtype_name(other), (unsigned long long)after.programs_built);
  }
  /* the rebuilt entries were written back: now everything comes from the cache */
  s = add_one(other);
  cr_assert_eq(s.programs_built, 0);
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
  remove_tree(dir);
  free(dir);
}

/* ---- the cache folder is private ----------------------------------------------------------------- */
Test(program_cache, a_new_folder_is_private) {
  char *dir = temp_dir();
  char cache[1100];
  snprintf(cache, sizeof cache, "%s/a/b/cache", dir);
  ct__env_override("CLTAPE_CACHE_DIR", cache);
  ct_context_stats s = add_one(CT_FLOAT32);
  cr_assert_gt(s.programs_built, 0);
  const char *made[] = {"/a", "/a/b", "/a/b/cache"};
  for (int k = 0; k < 3; ++k) {
    char p[1200];
    snprintf(p, sizeof p, "%s%s", dir, made[k]);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "%s", p);
    cr_assert_eq(st.st_mode & 07777, 0700, "%s has mode %o", p, (unsigned)(st.st_mode & 07777));
  }
  cr_assert_gt(list_dir(cache, ".bin", NULL, 0), 0, "nothing stored");
  /* the entries too: nobody else may read or write them */
  static char bins[64][256];
  int n = list_dir(cache, ".bin", bins, 64);
  for (int k = 0; k < n && k < 64; ++k) {
    char p[2048];
    join(p, sizeof p, cache, "", bins[k]);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 077, 0, "%s has mode %o", p, (unsigned)(st.st_mode & 07777));
  }
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
  remove_tree(dir);
  free(dir);
}

/* A folder that group or others may write to, or of another user: the cache is off (with a warning
 * saying why), nothing is read from it or written to it. */
Test(program_cache, a_folder_others_may_write_is_not_used) {
  char *dir = temp_dir();
  ct__env_override("CLTAPE_CACHE_DIR", dir);
  ct_set_log(keep_log, NULL);
  const mode_t modes[] = {0777, 0770, 0702, 01777};
  for (int k = 0; k < 4; ++k) {
    cr_assert_eq(chmod(dir, modes[k]), 0);
    logged[0] = 0;
    ct_context_stats s = add_one(CT_FLOAT32);
    cr_assert_eq(s.programs_from_cache, 0);
    cr_assert_gt(s.programs_built, 0);
    cr_assert_eq(list_dir(dir, ".bin", NULL, 0), 0, "mode %o: an entry was written", (unsigned)modes[k]);
    cr_assert(strstr(logged, dir) && strstr(logged, "may write"), "mode %o: no warning: \"%s\"", (unsigned)modes[k],
              logged);
  }
  /* another user's folder (only root can make one here; a user cannot give a folder away) */
  if (geteuid() == 0) {
    cr_assert_eq(chmod(dir, 0700), 0);
    cr_assert_eq(chown(dir, 65534, 65534), 0);
    logged[0] = 0;
    ct_context_stats s = add_one(CT_FLOAT32);
    cr_assert_eq(s.programs_from_cache, 0);
    cr_assert_eq(list_dir(dir, ".bin", NULL, 0), 0);
    cr_assert(strstr(logged, "another user"), "no warning: \"%s\"", logged);
    cr_assert_eq(chown(dir, 0, 0), 0);
  }
  /* back to private: used again */
  cr_assert_eq(chmod(dir, 0700), 0);
  add_one(CT_FLOAT32);
  cr_assert_gt(list_dir(dir, ".bin", NULL, 0), 0);
  ct_context_stats s = add_one(CT_FLOAT32);
  cr_assert_eq(s.programs_built, 0);
  ct_set_log(NULL, NULL);
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
  remove_tree(dir);
  free(dir);
}

/* An entry that others may write to, or a link to a valid entry, is not loaded. */
Test(program_cache, entries_others_may_write_or_links_are_not_loaded) {
  char *dir = temp_dir();
  ct__env_override("CLTAPE_CACHE_DIR", dir);
  add_one(CT_FLOAT32);
  static char bins[64][256];
  int n = list_dir(dir, ".bin", bins, 64);
  cr_assert(n >= 1 && n <= 64);
  for (int round = 0; round < 2; ++round) {
    for (int k = 0; k < n; ++k) {
      char p[2048], moved[2100];
      join(p, sizeof p, dir, "", bins[k]);
      if (round == 0) {
        cr_assert_eq(chmod(p, 0666), 0);
      } else { /* the entry moved aside, a link to it in its place */
        join(moved, sizeof moved, dir, "kept-", bins[k]);
        cr_assert_eq(rename(p, moved), 0);
        cr_assert_eq(symlink(moved, p), 0);
      }
    }
    ct_context_stats s = add_one(CT_FLOAT32);
    cr_assert_eq(s.programs_from_cache, 0, "round %d: an entry was loaded", round);
    cr_assert_gt(s.programs_built, 0);
    /* each rebuilt entry replaced the bad one: a private regular file, loaded next time */
    s = add_one(CT_FLOAT32);
    cr_assert_eq(s.programs_built, 0, "round %d", round);
  }
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
  remove_tree(dir);
  free(dir);
}

/* Runs a + 1 in float32 and float64 (int32 without it) in a child process, under an alarm (a hang fails the test
 * instead of stopping the suite); OpenCL is never initialised in this process, which forks. With
 * from_cache_none, nothing may come from the cache. Returns the child's wait status. */
static int add_one_in_child(bool from_cache_none) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    alarm(120);
    ct_context_stats a = add_one(CT_FLOAT32), b = add_one(other_dtype());
    bool ok = !from_cache_none || (a.programs_from_cache == 0 && b.programs_from_cache == 0 && a.programs_built > 0);
    _exit(ok ? 0 : 3);
  }
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return st;
}

/* FIFOs named like entries (<key>.bin, <key>.math, the tuning store) never block: the process
 * builds what it needs and computes the right values. */
Test(program_cache, fifos_in_place_of_entries_do_not_block) {
  char *dir = temp_dir();
  ct__env_override("CLTAPE_CACHE_DIR", dir);
  cr_assert_eq(add_one_in_child(false), 0);
  static char names[3][64][256];
  const char *suffix[3] = {".bin", ".math", ".tune"};
  int count[3], fifos = 0;
  for (int s = 0; s < 3; ++s) {
    count[s] = list_dir(dir, suffix[s], names[s], 64);
    cr_assert_leq(count[s], 64);
    for (int k = 0; k < count[s]; ++k) {
      char p[2048];
      join(p, sizeof p, dir, "", names[s][k]);
      cr_assert_eq(unlink(p), 0);
      cr_assert_eq(mkfifo(p, 0600), 0, "mkfifo %s", p);
      fifos++;
    }
  }
  cr_assert_gt(count[0], 1);
  cr_assert_eq(count[1], 1, "the native-math verdict");
  int st = add_one_in_child(true);
  cr_assert(!WIFSIGNALED(st) || WTERMSIG(st) != SIGALRM, "blocked on a FIFO of the cache");
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d (3: something came from the cache)", st);
  cr_assert_gt(fifos, 2);
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
  remove_tree(dir);
  free(dir);
}

/* A cache folder name longer than the runtime keeps: the cache is off, a warning says so, and no
 * folder of a truncated name is created. */
Test(program_cache, a_folder_name_too_long_turns_the_cache_off) {
  char *dir = temp_dir();
  char name[4200];
  int n = snprintf(name, sizeof name, "%s/", dir);
  while (n < 4000) name[n++] = 'x';
  name[n] = 0;
  ct__env_override("CLTAPE_CACHE_DIR", name);
  ct_set_log(keep_log, NULL);
  logged[0] = 0;
  ct_context_stats s = add_one(CT_FLOAT32);
  cr_assert_eq(s.programs_from_cache, 0);
  cr_assert(strstr(logged, "CLTAPE_CACHE_DIR") && strstr(logged, "characters"), "no warning: \"%s\"", logged);
  DIR *d = opendir(dir);
  cr_assert(d);
  struct dirent *e;
  int entries = 0;
  while ((e = readdir(d))) entries += e->d_name[0] != '.';
  closedir(d);
  cr_assert_eq(entries, 0, "a folder of a truncated name was created");
  ct_set_log(NULL, NULL);
  ct__env_override("CLTAPE_CACHE_DIR", NULL);
  remove_tree(dir);
  free(dir);
}

/* ---- ct__fopen_regular ----------------------------------------------------------------------------- */
Test(fileio, only_regular_files_open_and_nothing_blocks) {
  char *dir = temp_dir();
  char file[1100], fifo[1100], link[1100], sub[1100];
  snprintf(file, sizeof file, "%s/file", dir);
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  snprintf(link, sizeof link, "%s/link", dir);
  snprintf(sub, sizeof sub, "%s/sub", dir);
  FILE *f = fopen(file, "wb");
  cr_assert(f);
  fputs("hello", f);
  fclose(f);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(symlink(file, link), 0);
  cr_assert_eq(mkdir(sub, 0700), 0);
  alarm(60); /* a blocking open fails the test instead of hanging it */
  uint64_t size = 99;
  f = ct__fopen_regular(file, 'r', 0, &size);
  cr_assert(f);
  cr_assert_eq(size, 5);
  char buf[8] = {0};
  cr_assert_eq(fread(buf, 1, sizeof buf, f), 5);
  cr_assert_str_eq(buf, "hello");
  fclose(f);
  const char *bad[] = {fifo, sub, "/dev/null", "/dev/zero", "/nonexistent/file"};
  const int want[] = {CT__ENOTREG, EISDIR, CT__ENOTREG, CT__ENOTREG, ENOENT};
  for (int k = 0; k < 5; ++k) {
    for (int m = 0; m < 3; ++m) {
      const char mode = "rwa"[m];
      if (mode != 'r' && k >= 2) continue; /* never write to devices, nor create the missing path */
      errno = 0;
      f = ct__fopen_regular(bad[k], mode, 0, &size);
      cr_assert_null(f, "%s opened with '%c'", bad[k], mode);
      cr_assert_eq(errno, want[k], "%s '%c': errno %d (%s)", bad[k], mode, errno, ct__open_error(errno));
      cr_assert(ct__open_error(errno)[0]);
    }
  }
  /* a link: followed unless CT__OPEN_NOFOLLOW */
  f = ct__fopen_regular(link, 'r', 0, NULL);
  cr_assert(f);
  fclose(f);
  errno = 0;
  cr_assert_null(ct__fopen_regular(link, 'r', CT__OPEN_NOFOLLOW, NULL));
  cr_assert_eq(errno, ELOOP);
  /* CT__OPEN_PRIVATE: a file others may write is refused */
  cr_assert_eq(chmod(file, 0666), 0);
  errno = 0;
  cr_assert_null(ct__fopen_regular(file, 'r', CT__OPEN_PRIVATE, NULL));
  cr_assert_eq(errno, EPERM);
  cr_assert_eq(chmod(file, 0600), 0);
  f = ct__fopen_regular(file, 'r', CT__OPEN_PRIVATE, NULL);
  cr_assert(f);
  fclose(f);
  /* 'w' truncates a regular file, 'a' appends, a new file is private */
  f = ct__fopen_regular(file, 'a', 0, NULL);
  cr_assert(f);
  fputs("!", f);
  fclose(f);
  f = ct__fopen_regular(file, 'r', 0, &size);
  cr_assert(f);
  cr_assert_eq(size, 6);
  fclose(f);
  f = ct__fopen_regular(file, 'w', 0, NULL);
  cr_assert(f);
  fclose(f);
  f = ct__fopen_regular(file, 'r', 0, &size);
  cr_assert(f);
  cr_assert_eq(size, 0);
  fclose(f);
  char fresh[1100];
  snprintf(fresh, sizeof fresh, "%s/fresh", dir);
  f = ct__fopen_regular(fresh, 'w', 0, NULL);
  cr_assert(f);
  fclose(f);
  struct stat st;
  cr_assert_eq(stat(fresh, &st), 0);
  cr_assert_eq(st.st_mode & 077, 0);
  alarm(0);
  remove_tree(dir);
  free(dir);
}

/* ---- device selection ------------------------------------------------------------------------------ */
Test(devices, an_index_out_of_range_is_an_error) {
  int count = 0;
  OK(ct_device_list(NULL, 0, &count));
  cr_assert_geq(count, 1);
  char past[32];
  snprintf(past, sizeof past, "%d", count);
  const char *bad[] = {"4294967296", "18446744073709551616", "99999999999999999999999", "-1", "+4294967296", past};
  for (int k = 0; k < 6; ++k) {
    ct_context *ctx = (ct_context *)&count;
    EXPECT_STATUS(ct_context_create(bad[k], &ctx), CT_ERR_NO_DEVICE);
    cr_assert_null(ctx);
    cr_assert(strstr(ct_errmsg(), "out of range"), "%s: %s", bad[k], ct_errmsg());
    ct__env_override("CLTAPE_DEVICE", bad[k]);
    ctx = (ct_context *)&count;
    EXPECT_STATUS(ct_context_create(NULL, &ctx), CT_ERR_NO_DEVICE);
    cr_assert_null(ctx);
    ct__env_override("CLTAPE_DEVICE", NULL);
  }
  /* the last index and "+0" are devices */
  char last[32];
  snprintf(last, sizeof last, "%d", count - 1);
  const char *good[] = {last, "0", "+0", "00"};
  for (int k = 0; k < 4; ++k) {
    ct_context *ctx = NULL;
    OK(ct_context_create(good[k], &ctx));
    ct_device_info info;
    OK(ct_context_device(ctx, &info));
    cr_assert_eq(info.index, k == 0 ? count - 1 : 0, "%s", good[k]);
    ct_context_free(ctx);
  }
}

/* ---- allocation limits come from the device ------------------------------------------------------- */
Test(devices, allocations_past_the_device_limit_name_the_sizes) {
  ct_context *ctx = ts_ctx();
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  cr_assert(info.max_alloc_bytes > 0 && info.max_alloc_bytes <= info.global_mem_bytes);
  char lim[32];
  snprintf(lim, sizeof lim, "%llu", (unsigned long long)info.max_alloc_bytes);
  /* one byte-count past the largest allocation, in the smallest number of elements that does it */
  const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  int device_checked = 0;
  for (int k = 0; k < 3; ++k) {
    if (!ts_has_dtype(ctx, dts[k])) continue; /* refused as unsupported (test_errors checks that) */
    size_t es = ct_dtype_size(dts[k]);
    int64_t n = (int64_t)(info.max_alloc_bytes / es + 1);
    ct_tensor *t = (ct_tensor *)&info;
    EXPECT_STATUS(ct_zeros(ctx, dts[k], 1, &n, &t), CT_ERR_OUT_OF_MEMORY);
    cr_assert_null(t);
    char bytes[32];
    snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)n * es);
    cr_assert(strstr(ct_errmsg(), bytes) && strstr(ct_errmsg(), lim), "%s: \"%s\" names neither %s nor %s",
              ct_dtype_name(dts[k]), ct_errmsg(), bytes, lim);
    device_checked++;
  }
  cr_assert_gt(device_checked, 0, "no dtype reached the device limit");
  /* exactly the largest allocation is allowed to be tried (the driver may still refuse it) */
  ct_context_free(ctx);
}

/* ---- a user gradient that fails without a message -------------------------------------------------- */
static ct_status silent_failure(const ct_grad_ctx *g, const ct_tensor *dy, ct_tensor **dx, void *user) {
  (void)g;
  (void)dy;
  (void)dx;
  (void)user;
  return CT_ERR_INVALID;
}

Test(gradients, a_user_gradient_failing_silently_gets_a_message) {
  ct_context *ctx = ts_ctx();
  OK(ct_register_gradient("Sin", silent_failure, NULL));
  ct_tensor *x = ts_tensor(ctx, CT_FLOAT32, 1, (int64_t[]){3}, (double[]){1, 2, 3}), *y = NULL, *g = NULL;
  ct_tape *tape = NULL;
  OK(ct_tape_begin(ctx, NULL, &tape));
  OK(ct_tape_watch(tape, x));
  OK(ct_sin(x, &y));
  OK(ct_tape_end(tape));
  /* an unrelated earlier message on the thread */
  EXPECT_STATUS(ct_unregister_gradient("no-such-op-stale-message"), CT_ERR_NOT_FOUND);
  cr_assert(strstr(ct_errmsg(), "no-such-op-stale-message"));
  EXPECT_STATUS(ct_tape_gradient1(tape, y, x, &g), CT_ERR_INVALID);
  cr_assert_null(g);
  cr_assert(!strstr(ct_errmsg(), "stale"), "the earlier message was left: %s", ct_errmsg());
  cr_assert(strstr(ct_errmsg(), "Sin") && strstr(ct_errmsg(), "ct_register_gradient"), "%s", ct_errmsg());
  cr_assert(!strstr(ct_context_errmsg(ctx), "stale"), "%s", ct_context_errmsg(ctx));
  OK(ct_unregister_gradient("Sin"));
  ct_tape_free(tape);
  ct_tensor_free_n((ct_tensor *[]){x, y}, 2);
  ct_context_free(ctx);
}

/* ---- the fault-injection variable takes only a count ----------------------------------------------- */
Test(devices, a_fault_injection_count_that_is_not_one_is_ignored_with_a_warning) {
  const char *bad[] = {"-1", "18446744073709551616", "3x", " 3"};
  ct_set_log(keep_log, NULL);
  for (int k = 0; k < 4; ++k) {
    ct__env_override("CLTAPE_FAULT_ALLOC_FAIL_AFTER", bad[k]);
    logged[0] = 0;
    ct_context *ctx = ts_ctx();
    cr_assert(strstr(logged, "CLTAPE_FAULT_ALLOC_FAIL_AFTER"), "%s: no warning", bad[k]);
    ct_tensor *t[6] = {NULL};
    for (int i = 0; i < 6; ++i) OK(ct_zeros(ctx, CT_FLOAT32, 1, (int64_t[]){4}, &t[i])); /* none injected */
    ct_tensor_free_n(t, 6);
    ct_context_free(ctx);
  }
  ct__env_override("CLTAPE_FAULT_ALLOC_FAIL_AFTER", "3");
  ct_context *ctx = ts_ctx();
  ct_tensor *t[3] = {NULL};
  /* tensors from data: each one device allocation at once (a constant such as ct_zeros is pending,
   * lib/fuse.c, and takes storage only when used) */
  const float four[4] = {0};
  OK(ct_tensor_from_data(ctx, CT_FLOAT32, 1, (int64_t[]){4}, four, &t[0]));
  OK(ct_tensor_from_data(ctx, CT_FLOAT32, 1, (int64_t[]){4}, four, &t[1]));
  EXPECT_STATUS(ct_tensor_from_data(ctx, CT_FLOAT32, 1, (int64_t[]){4}, four, &t[2]), CT_ERR_OUT_OF_MEMORY);
  ct_tensor_free_n(t, 3);
  ct_context_free(ctx);
  ct__env_override("CLTAPE_FAULT_ALLOC_FAIL_AFTER", NULL);
  ct_set_log(NULL, NULL);
}
