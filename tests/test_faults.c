/*
 * test_faults.c — faults from outside the caller's control, each of which must leave the library
 * usable and the data intact:
 *  - program-cache entries that are corrupt, truncated, padded, replaced by directories, in a
 *    directory that cannot be created, or written by two processes at the same time;
 *  - a kernel that does not build;
 *  - the device running out of memory at every allocation of a training step in turn
 *    (CLTAPE_FAULT_ALLOC_FAIL_AFTER, host/pool.c);
 *  - a checkpoint save that fails (file size limit, missing directory) and damaged checkpoints.
 */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_host.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------------------------- */
static char *temp_dir(void) {
  char *d = strdup("/tmp/cltape-faults-XXXXXX");
  cr_assert(d && mkdtemp(d), "mkdtemp: %s", strerror(errno));
  return d;
}

static void join(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s/%s", dir, name);
  cr_assert(n > 0 && (size_t)n < cap, "path too long");
}

static void remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[2048];
        join(sub, sizeof sub, path, e->d_name);
        remove_tree(sub);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* Names in dir ending in `suffix` (NULL: every name not starting with '.'), up to cap. */
static int list_dir(const char *dir, const char *suffix, char (*names)[256], int cap) {
  DIR *d = opendir(dir);
  cr_assert(d, "opendir %s: %s", dir, strerror(errno));
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (suffix && (l < sl || strcmp(e->d_name + l - sl, suffix) != 0)) continue;
    if (n < cap) snprintf(names[n], 256, "%s", e->d_name);
    n++;
  }
  closedir(d);
  return n;
}

/* Temporary files a writer left behind (".<hex>.XXXXXX", "*.tmp.*"). */
static int leftovers(const char *dir) {
  char names[256][256];
  int n = list_dir(dir, NULL, names, 256), bad = 0;
  for (int i = 0; i < n && i < 256; ++i)
    if (names[i][0] == '.' || strstr(names[i], ".tmp") || strstr(names[i], ".XXXXXX")) {
      fprintf(stderr, "left behind: %s/%s\n", dir, names[i]);
      bad++;
    }
  return bad;
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct stat st;
  cr_assert_eq(fstat(fileno(f), &st), 0);
  unsigned char *b = malloc((size_t)st.st_size + 1);
  cr_assert(b);
  *len = fread(b, 1, (size_t)st.st_size, f);
  fclose(f);
  return b;
}

/* The entry file `name` (the key's 64 hex digits and ".bin") checked as the entry of its key. */
static bool entry_ok(const char *name, const unsigned char *b, size_t len, size_t *off, size_t *plen) {
  char key[65];
  snprintf(key, sizeof key, "%.64s", name);
  return ctb_cache_parse(b, len, key, off, plen);
}

/* How many of the n entries named in bins are valid entries of their keys holding binaries the
 * driver check accepts. */
static int valid_entries(const char *dir, char (*bins)[256], int n) {
  int valid = 0;
  for (int k = 0; k < n; ++k) {
    char path[2048];
    join(path, sizeof path, dir, bins[k]);
    size_t len, off, plen;
    unsigned char *b = slurp(path, &len);
    valid += b && entry_ok(bins[k], b, len, &off, &plen) && ctb_driver_binary_ok(b + off, plen);
    free(b);
  }
  return valid;
}

static void spit(const char *path, const unsigned char *b, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert(f, "%s: %s", path, strerror(errno));
  cr_assert_eq(fwrite(b, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

static ct_context_stats stats(ct_context *ctx) {
  ct_context_stats s;
  OK(ct_context_stats_get(ctx, &s));
  return s;
}

/* Ops that build several programs (elementwise float32 and int32, reductions, movement), checked
 * against their values. Returns the number of wrong results (0). Used in forked children too, so
 * it reports instead of asserting. */
static int workload(ct_context *ctx) {
  int64_t sh[2] = {3, 5};
  double v[15];
  for (int i = 0; i < 15; ++i) v[i] = i - 7;
  float fv[15];
  int32_t iv[15];
  for (int i = 0; i < 15; ++i) {
    fv[i] = (float)v[i];
    iv[i] = (int32_t)v[i];
  }
  ct_tensor *x = NULL, *xi = NULL, *y = NULL, *s = NULL, *t = NULL, *yi = NULL;
  int bad = 0;
  if (ct_tensor_from_data(ctx, CT_FLOAT32, 2, sh, fv, &x) != CT_OK) return 100;
  if (ct_tensor_from_data(ctx, CT_INT32, 2, sh, iv, &xi) != CT_OK) bad += 100;
  if (ct_mul(x, x, &y) != CT_OK || ct_sum(y, (int[]){1}, 1, false, &s) != CT_OK || ct_transpose(x, NULL, &t) != CT_OK ||
      ct_abs(xi, &yi) != CT_OK)
    bad += 100;
  if (!bad) {
    float out[3], tt[15];
    int32_t oi[15];
    if (ct_tensor_read(s, out, sizeof out) != CT_OK || ct_tensor_read(t, tt, sizeof tt) != CT_OK ||
        ct_tensor_read(yi, oi, sizeof oi) != CT_OK)
      bad += 100;
    for (int r = 0; r < 3 && !bad; ++r) {
      double want = 0;
      for (int c = 0; c < 5; ++c) want += v[r * 5 + c] * v[r * 5 + c];
      bad += out[r] != (float)want;
    }
    for (int i = 0; i < 15 && !bad; ++i) {
      bad += tt[(i % 5) * 3 + i / 5] != fv[i];
      bad += oi[i] != abs(iv[i]);
    }
  }
  ct_tensor *all[] = {x, xi, y, s, t, yi};
  ct_tensor_free_n(all, 6);
  return bad;
}

static ct_context *ctx_in(const char *cache_dir) {
  ct__env_override("CLTAPE_CACHE_DIR", cache_dir);
  return ts_ctx();
}

/* ---- the program cache ------------------------------------------------------------------------ */
/* Fills a fresh cache directory; returns it and the entries' names. */
static char *filled_cache(char (*bins)[256], int *n) {
  char *dir = temp_dir();
  ct_context *ctx = ctx_in(dir);
  cr_assert_eq(workload(ctx), 0);
  cr_assert(stats(ctx).programs_built > 0);
  ct_context_free(ctx);
  *n = list_dir(dir, ".bin", bins, 64);
  cr_assert(*n >= 3 && *n <= 64, "%d cache entries", *n);
  cr_assert_eq(leftovers(dir), 0);
  return dir;
}

/* Every entry damaged in one way or another is ignored (rebuilt and rewritten), never loaded. */
Test(faults, corrupt_and_truncated_cache_entries) {
  char bins[64][256];
  int n;
  char *dir = filled_cache(bins, &n);
  uint64_t programs = 0;
  {
    ct_context *ctx = ctx_in(dir);
    cr_assert_eq(workload(ctx), 0);
    ct_context_stats st = stats(ctx);
    cr_assert_eq(st.programs_built, 0, "a valid cache must be used");
    programs = st.programs_from_cache;
    ct_context_free(ctx);
  }
  /* damage every entry, each in one of eight ways */
  for (int k = 0; k < n; ++k) {
    char path[2048];
    join(path, sizeof path, dir, bins[k]);
    size_t len;
    unsigned char *b = slurp(path, &len);
    cr_assert(b && len > 64);
    switch (k % 8) {
      case 0: b[len / 2] ^= 0x40; spit(path, b, len); break;            /* payload bit flip */
      case 1: b[3] ^= 1; spit(path, b, len); break;                     /* magic */
      case 2: b[8] ^= 1; spit(path, b, len); break;                     /* length field */
      case 3: b[20] ^= 0x80; spit(path, b, len); break;                 /* checksum */
      case 4: spit(path, b, len / 2); break;                            /* truncated */
      case 5: spit(path, b, 10); break;                                 /* truncated header */
      case 6: spit(path, b, 0); break;                                  /* empty */
      case 7: {                                                         /* trailing garbage */
        unsigned char *c = malloc(len + 7);
        memcpy(c, b, len);
        memcpy(c + len, "garbage", 7);
        spit(path, c, len + 7);
        free(c);
      } break;
    }
    free(b);
  }
  {
    ct_context *ctx = ctx_in(dir);
    cr_assert_eq(workload(ctx), 0, "wrong results after the cache was damaged");
    ct_context_stats st = stats(ctx);
    cr_assert_eq(st.programs_from_cache, 0, "a damaged entry was loaded");
    cr_assert_eq(st.programs_built, programs);
    ct_context_free(ctx);
  }
  /* the rebuilt programs were written back, valid (the native-math probe is not rebuilt: its
   * verdict is cached apart, so its entry may stay damaged, unused) */
  int valid = valid_entries(dir, bins, n);
  cr_assert_geq(valid, (int)programs, "%d of %d rebuilt programs were written back", valid, (int)programs);
  ct_context *ctx = ctx_in(dir);
  cr_assert_eq(workload(ctx), 0);
  cr_assert_eq(stats(ctx).programs_built, 0);
  cr_assert_eq(stats(ctx).programs_from_cache, programs);
  ct_context_free(ctx);
  cr_assert_eq(leftovers(dir), 0);
  remove_tree(dir);
  free(dir);
}

/* The fuzzer's seed corpus (tests/fuzz/make_cache_corpus.sh) means what its names say: every seed
 * is checked as the entry of the key the script binds them to. */
#define CACHE_CORPUS_KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
Test(faults, cache_parser_on_the_seed_corpus) {
  char dir[1024], names[64][256];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/cache", CLTAPE_SOURCE_DIR);
  int n = list_dir(dir, ".bin", names, 64), valid = 0;
  cr_assert(n >= 10, "%d seeds", n);
  for (int k = 0; k < n; ++k) {
    char path[2048];
    join(path, sizeof path, dir, names[k]);
    size_t len = 0, off, plen;
    unsigned char *b = slurp(path, &len);
    cr_assert(b);
    bool want = strncmp(names[k], "valid_", 6) == 0;
    cr_assert_eq(ctb_cache_parse(b, len, CACHE_CORPUS_KEY, &off, &plen), want, "%s", names[k]);
    if (want) cr_assert(off == 48 && off + plen == len, "%s", names[k]);
    valid += want;
    free(b);
  }
  cr_assert_geq(valid, 3);
}

/* ---- PoCL binaries packed while another process rebuilt the program ----------------------------
 * PoCL packs a program's binary from its shared kernel cache; a process rebuilding the same program
 * removes program.bc before writing it again, and a binary packed in that moment has an empty first
 * entry, which PoCL later aborts on (an assertion in pocl_binary_get_kernels_metadata). Such a
 * binary must be neither stored nor loaded. */
static size_t put32(unsigned char *b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = (unsigned char)(v >> (8 * i));
  return at + 4;
}
static size_t put64(unsigned char *b, size_t at, uint64_t v) {
  at = put32(b, at, (uint32_t)v);
  return put32(b, at, (uint32_t)(v >> 32));
}
static size_t put_str(unsigned char *b, size_t at, const char *s) {
  at = put32(b, at, (uint32_t)strlen(s));
  memcpy(b + at, s, strlen(s));
  return at + strlen(s);
}
/* A small binary in PoCL 3.1's layout (format 9): the program folder holds program.bc (empty_root:
 * the entry packed while program.bc was missing), one kernel with one packed file. */
static size_t poclbin(unsigned char *b, bool empty_root, const char *so_content) {
  memset(b, 0, 512);
  memcpy(b, "poclbin", 8);
  size_t at = put64(b, 8, 0x1234);  /* device id */
  at = put32(b, at, 9);             /* format version */
  at = put32(b, at, 1);             /* kernels */
  at = put64(b, at, 0);             /* flags */
  at = put32(b, at, 1);             /* program folder entries */
  at += 41;                         /* build hash */
  if (empty_root) at = put64(b, at, 0);
  else {
    size_t len_at = at;
    at = put_str(b, at + 8, "/program.bc");
    at = put_str(b, at, "BC\xc0\xde");
    put64(b, len_at, at - len_at - 8);
  }
  size_t k = at;
  at = put64(b, at, 0);             /* record size, set below */
  at = put64(b, at, 0);             /* packed files' size, set below */
  at = put32(b, at, 0);             /* argument info size */
  at = put_str(b, at, "k");
  at = put32(b, at, 0);             /* arguments */
  at = put32(b, at, 0);             /* locals */
  size_t files = at;
  at = put_str(b, at, "/k/64-1-1/k.so");
  at = put_str(b, at, so_content);
  put64(b, k, at - k);
  put64(b, k + 8, at - files);
  return at;
}

Test(faults, pocl_binaries_with_an_empty_program_entry_are_refused) {
  unsigned char b[512], c[512];
  size_t n = poclbin(b, false, "\x7f" "ELF");
  cr_assert(ctb_driver_binary_ok(b, n), "a well-formed binary is refused");
  cr_assert_not(ctb_driver_binary_ok(b, poclbin(c, true, "\x7f" "ELF")), "the binary of the race is accepted");
  cr_assert_not(ctb_driver_binary_ok(c, poclbin(c, false, "")), "an empty packed file is accepted");
  for (size_t cut = 8; cut < n; ++cut) cr_assert_not(ctb_driver_binary_ok(b, cut), "a binary cut at %zu is accepted", cut);
  memcpy(c, b, n);
  c[n] = 0;
  cr_assert_not(ctb_driver_binary_ok(c, n + 1), "a trailing byte is accepted");
  cr_assert(ctb_driver_binary_ok((const unsigned char *)"\x7f" "ELF....", 8), "another driver's binary is refused");
  put32(c, 16, 12); /* a format this check does not know is the driver's to judge */
  cr_assert(ctb_driver_binary_ok(c, n + 1));
}

/* Writes `payload` as a valid cache entry named `name` (its key and ".bin"). */
static void write_entry(const char *path, const char *name, const unsigned char *payload, size_t n) {
  unsigned char *e = malloc(48 + n);
  cr_assert(e);
  ctb_cache_head(name, payload, n, e);
  memcpy(e + 48, payload, n);
  size_t off, plen;
  cr_assert(entry_ok(name, e, 48 + n, &off, &plen), "the test wrote an invalid entry");
  spit(path, e, 48 + n);
  free(e);
}

Test(faults, a_driver_binary_packed_during_a_rebuild_is_never_loaded) {
  char bins[64][256];
  int n;
  char *dir = filled_cache(bins, &n);
  int pocl = 0, replaced = 0;
  for (int k = 0; k < n; ++k) {
    char path[2048];
    join(path, sizeof path, dir, bins[k]);
    size_t len, off, plen;
    unsigned char *b = slurp(path, &len);
    cr_assert(b && entry_ok(bins[k], b, len, &off, &plen));
    const unsigned char *p = b + off;
    cr_assert(ctb_driver_binary_ok(p, plen), "the driver's own binary %s is refused", bins[k]);
    if (plen > 85 && memcmp(p, "poclbin", 8) == 0) {
      ++pocl;
      /* the same binary with its program folder's first entry empty, as packed during the race */
      uint32_t version;
      memcpy(&version, p + 16, 4);
      uint64_t flags;
      memcpy(&flags, p + 24, 8);
      size_t head = 77 + ((version >= 10 && (flags & 2)) ? 8 : 0);
      uint64_t first;
      memcpy(&first, p + head, 8);
      cr_assert(first > 0 && head + 8 + first <= plen);
      size_t rest = plen - head - 8 - (size_t)first;
      unsigned char *r = malloc(head + 8 + rest);
      memcpy(r, p, head);
      memset(r + head, 0, 8);
      memcpy(r + head + 8, p + head + 8 + first, rest);
      cr_assert_not(ctb_driver_binary_ok(r, head + 8 + rest));
      write_entry(path, bins[k], r, head + 8 + rest);
      free(r);
      ++replaced;
    }
    free(b);
  }
  if (!pocl) { /* another driver: its cache takes the synthetic binary of the race instead */
    unsigned char r[512];
    size_t rn = poclbin(r, true, "\x7f" "ELF");
    for (int k = 0; k < n; ++k, ++replaced) {
      char path[2048];
      join(path, sizeof path, dir, bins[k]);
      write_entry(path, bins[k], r, rn);
    }
  }
  /* loading those entries neither aborts nor uses them: they are rebuilt and written back valid */
  ct_context *ctx = ctx_in(dir);
  cr_assert_eq(workload(ctx), 0);
  ct_context_stats st = stats(ctx);
  cr_assert_geq(st.programs_built, 1);
  cr_assert_leq(st.programs_from_cache + st.programs_built, (uint64_t)n);
  ct_context_free(ctx);
  int fixed = valid_entries(dir, bins, n);
  cr_assert_geq(fixed, (int)st.programs_built, "%d of %d rebuilt programs were written back", fixed, (int)st.programs_built);
  ctx = ctx_in(dir);
  cr_assert_eq(workload(ctx), 0);
  cr_assert_eq(stats(ctx).programs_built, 0, "the rebuilt entries must load");
  ct_context_free(ctx);
  cr_assert_eq(leftovers(dir), 0);
  cr_assert_gt(replaced, 0);
  remove_tree(dir);
  free(dir);
}

/* An entry that cannot be written (its name is taken by a directory) costs a rebuild, nothing else. */
Test(faults, unwritable_cache_entries) {
  char bins[64][256];
  int n;
  char *dir = filled_cache(bins, &n);
  for (int k = 0; k < n; ++k) {
    char path[2048];
    join(path, sizeof path, dir, bins[k]);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(mkdir(path, 0755), 0);
  }
  for (int round = 0; round < 2; ++round) {
    ct_context *ctx = ctx_in(dir);
    cr_assert_eq(workload(ctx), 0);
    cr_assert(stats(ctx).programs_built > 0);
    cr_assert_eq(stats(ctx).programs_from_cache, 0);
    ct_context_free(ctx);
    cr_assert_eq(leftovers(dir), 0, "a failed store must remove its temporary file");
  }
  remove_tree(dir);
  free(dir);
}

/* A cache directory that cannot exist (a file is in the way) turns the cache off. */
Test(faults, cache_directory_cannot_be_created) {
  char *dir = temp_dir();
  char file[2048], sub[2100];
  snprintf(file, sizeof file, "%s/file", dir);
  spit(file, (const unsigned char *)"x", 1);
  snprintf(sub, sizeof sub, "%s/cache", file);
  for (int round = 0; round < 2; ++round) {
    ct_context *ctx = ctx_in(sub);
    cr_assert_eq(workload(ctx), 0);
    cr_assert(stats(ctx).programs_built > 0);
    cr_assert_eq(stats(ctx).programs_from_cache, 0);
    ct_context_free(ctx);
  }
  remove_tree(dir);
  free(dir);
}

/* Runs the workload in a child process (OpenCL must not be initialised in a process that forks
 * more children). want_cached: every program must come from the cache. Returns the exit status. */
static pid_t spawn_workload(const char *dir, const int *gate, bool want_cached) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid) return pid;
  char c;
  if (gate) {
    close(gate[1]);
    if (read(gate[0], &c, 1) < 0) _exit(3); /* returns (EOF) once the parent closes its end too */
  }
  ct__env_override("CLTAPE_CACHE_DIR", dir);
  ct_context *ctx = NULL;
  if (ct_context_create(NULL, &ctx) != CT_OK) _exit(2);
  int bad = workload(ctx);
  ct_context_stats st;
  ct_context_stats_get(ctx, &st);
  ct_context_free(ctx);
  if (want_cached && (st.programs_built != 0 || st.programs_from_cache == 0)) _exit(4);
  _exit(bad ? 1 : 0);
}

static void reap(pid_t pid, const char *what, int round) {
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s of round %d: exit status %d (4: not loaded from the cache)",
            what, round, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* Processes that build and store the same programs at the same moment: every entry ends up
 * valid and complete, and every process computes the right values. */
Test(faults, concurrent_cache_writers) {
  enum { ROUNDS = 3, WRITERS = 3 };
  for (int round = 0; round < ROUNDS; ++round) {
    char *dir = temp_dir();
    int gate[2];
    cr_assert_eq(pipe(gate), 0);
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; ++w) pids[w] = spawn_workload(dir, gate, false);
    close(gate[0]);
    close(gate[1]); /* all writers start now */
    for (int w = 0; w < WRITERS; ++w) reap(pids[w], "a writer", round);
    char bins[64][256];
    int n = list_dir(dir, ".bin", bins, 64);
    cr_assert(n >= 3, "round %d: %d entries", round, n);
    for (int k = 0; k < n; ++k) {
      char path[2048];
      join(path, sizeof path, dir, bins[k]);
      size_t len, off, plen;
      unsigned char *b = slurp(path, &len);
      cr_assert(b && entry_ok(bins[k], b, len, &off, &plen), "round %d: %s is damaged", round, bins[k]);
      free(b);
    }
    cr_assert_eq(leftovers(dir), 0);
    reap(spawn_workload(dir, NULL, true), "the reader", round);
    remove_tree(dir);
    free(dir);
  }
}

/* ---- kernel build failures ------------------------------------------------------------------------ */
Test(faults, kernel_build_failure) {
  char *dir = temp_dir();
  ct_context *ctx = ctx_in(dir);
  ct_custom_op broken = {"FaultsBroken", "__kernel void broken(int n, __global T *y, __global const T *x, int r,"
                                         " int8 s) { y[get_global_id(0)] = x[i] +; }",
                         "broken", 1, NULL, NULL};
  ct_custom_op misnamed = {"FaultsMisnamed", "__kernel void there(int n, __global T *y, __global const T *x, int r,"
                                             " int8 s) { int i = get_global_id(0); if (i < n) y[i] = x[i]; }",
                           "not_there", 1, NULL, NULL};
  OK(ct_custom_op_register(&broken));
  OK(ct_custom_op_register(&misnamed));
  ct_tensor *x = NULL, *y = (ct_tensor *)&ctx;
  OK(ct_ones(ctx, CT_FLOAT32, 1, (int64_t[]){5}, &x));
  cr_assert_eq(workload(ctx), 0);
  cr_assert_eq(workload(ctx), 0); /* again: a structure met often enough gets its fused kernel built and stored now */
  ct_context_stats before = stats(ctx);
  int bins_before = list_dir(dir, ".bin", NULL, 0);
  for (int round = 0; round < 2; ++round) { /* a failed build is not remembered as a program */
    EXPECT_STATUS(ct_custom_op_call(ctx, "FaultsBroken", &x, 1, &y), CT_ERR_BUILD);
    cr_assert_null(y);
    cr_assert(strstr(ct_errmsg(), "error"), "the build log is part of the message: %s", ct_errmsg());
    cr_assert(strstr(ct_context_errmsg(ctx), "FaultsBroken") || strstr(ct_context_errmsg(ctx), "custom:broken"),
              "%s", ct_context_errmsg(ctx));
    EXPECT_STATUS(ct_custom_op_call(ctx, "FaultsMisnamed", &x, 1, &y), CT_ERR_UNSUPPORTED);
    cr_assert_null(y);
  }
  cr_assert_eq(workload(ctx), 0, "the context no longer works after a failed build");
  cr_assert_eq(stats(ctx).bytes_in_use, before.bytes_in_use, "a failed build leaked device memory");
  /* a program that failed to build is never written to the cache (the misnamed one did build) */
  cr_assert_eq(list_dir(dir, ".bin", NULL, 0), bins_before + 1);
  ct_tensor_free(x);
  ct_context_free(ctx);
  cr_assert_eq(leftovers(dir), 0);
  remove_tree(dir);
  free(dir);
}

/* ---- running out of device memory in the middle of a training step ----------------------------- */
/* A two-layer perceptron trained with plain ops: loss = mean((relu(x W1 + b1) W2 + b2 - y)^2),
 * each variable updated by assign_sub(lr * gradient). */
enum { NV = 4 };
typedef struct {
  ct_tensor *v[NV]; /* W1 [4, 16], b1 [16], W2 [16, 2], b2 [2] */
  ct_tensor *x, *y; /* data [8, 4], targets [8, 2] */
} mlp;

static const int64_t MLP_SHAPES[NV][2] = {{4, 16}, {16, 0}, {16, 2}, {2, 0}};
static int mlp_rank(int i) { return MLP_SHAPES[i][1] ? 2 : 1; }

static void mlp_build(ct_context *ctx, mlp *m) {
  memset(m, 0, sizeof *m);
  for (int i = 0; i < NV; ++i) {
    ct_tensor *init;
    OK(ct_random_normal(ctx, CT_FLOAT32, mlp_rank(i), MLP_SHAPES[i], 0, 0.5, 100 + (uint64_t)i, &init));
    char name[8];
    snprintf(name, sizeof name, "v%d", i);
    OK(ct_variable_create(init, name, true, &m->v[i]));
    ct_tensor_free(init);
  }
  OK(ct_random_uniform(ctx, CT_FLOAT32, 2, (int64_t[]){8, 4}, -1, 1, 7, &m->x));
  OK(ct_random_uniform(ctx, CT_FLOAT32, 2, (int64_t[]){8, 2}, -1, 1, 8, &m->y));
}

static void mlp_free(mlp *m) {
  ct_tensor_free_n(m->v, NV);
  ct_tensor_free(m->x);
  ct_tensor_free(m->y);
}

/* One step; frees everything it made on every path and returns the first error. */
static ct_status mlp_step(mlp *m, double lr) {
  ct_tape *tape = NULL;
  ct_tensor *t[9] = {NULL}, *g[NV] = {NULL}, *u = NULL;
  ct_status s = ct_tape_begin(ct_tensor_context(m->x), NULL, &tape);
  if (s == CT_OK) s = ct_matmul(m->x, m->v[0], false, false, &t[0]);
  if (s == CT_OK) s = ct_add(t[0], m->v[1], &t[1]);
  if (s == CT_OK) s = ct_relu(t[1], &t[2]);
  if (s == CT_OK) s = ct_matmul(t[2], m->v[2], false, false, &t[3]);
  if (s == CT_OK) s = ct_add(t[3], m->v[3], &t[4]);
  if (s == CT_OK) s = ct_sub(t[4], m->y, &t[5]);
  if (s == CT_OK) s = ct_square(t[5], &t[6]);
  if (s == CT_OK) s = ct_mean(t[6], NULL, 0, false, &t[7]);
  if (tape) ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_gradient(tape, &t[7], 1, m->v, NV, NULL, CT_UNCONNECTED_NONE, g);
  for (int i = 0; i < NV && s == CT_OK; ++i) {
    s = ct_mul_scalar(g[i], lr, &u);
    if (s == CT_OK) s = ct_variable_assign_sub(m->v[i], u);
    ct_tensor_free(u);
    u = NULL;
  }
  ct_tape_free(tape);
  ct_tensor_free_n(t, 9);
  ct_tensor_free_n(g, NV);
  return s;
}

typedef struct {
  float *v[NV];
} snapshot;

static void snap(ct_tensor *const *vars, int n, snapshot *s) {
  for (int i = 0; i < n; ++i) {
    int64_t k = ct_tensor_size(vars[i]);
    s->v[i] = malloc(sizeof(float) * (size_t)k);
    cr_assert(s->v[i]);
    OK(ct_tensor_read(vars[i], s->v[i], sizeof(float) * (size_t)k));
  }
}
static bool same_var(ct_tensor *var, const float *want) {
  int64_t k = ct_tensor_size(var);
  float *got = malloc(sizeof(float) * (size_t)k);
  cr_assert(got);
  OK(ct_tensor_read(var, got, sizeof(float) * (size_t)k));
  bool same = memcmp(got, want, sizeof(float) * (size_t)k) == 0;
  free(got);
  return same;
}
static void snap_free(snapshot *s, int n) {
  for (int i = 0; i < n; ++i) free(s->v[i]);
}

static uint64_t allocations(ct_context *ctx) {
  ct_context_stats st = stats(ctx);
  return st.buffers_created + st.buffers_reused;
}

static ct_context *ctx_failing_at(uint64_t n) {
  char v[32];
  snprintf(v, sizeof v, "%llu", (unsigned long long)n);
  ct__env_override("CLTAPE_FAULT_ALLOC_FAIL_AFTER", v);
  ct_context *ctx = ts_ctx(); /* the variable is read here, once */
  ct__env_override("CLTAPE_FAULT_ALLOC_FAIL_AFTER", NULL);
  return ctx;
}

Test(faults, out_of_memory_at_every_allocation_of_a_training_step) {
  /* the reference: allocations before and after one step, the variables after one and two steps */
  ct_context *ctx = ts_ctx();
  mlp m;
  mlp_build(ctx, &m);
  uint64_t a0 = allocations(ctx), bytes0 = stats(ctx).bytes_in_use;
  snapshot v0, v1;
  snap(m.v, NV, &v0);
  OK(mlp_step(&m, 0.1));
  uint64_t a1 = allocations(ctx);
  snap(m.v, NV, &v1);
  cr_assert(!same_var(m.v[0], v0.v[0]), "the step must change the variables");
  mlp_free(&m);
  ct_context_free(ctx);
  cr_assert(a1 > a0 + 10, "a step allocates (%llu)", (unsigned long long)(a1 - a0));

  int partial = 0;
  for (uint64_t n = a0 + 1; n <= a1; ++n) {
    ctx = ctx_failing_at(n);
    mlp_build(ctx, &m);
    cr_assert_eq(allocations(ctx), a0, "the model's allocations are not reproducible");
    ct_status s = mlp_step(&m, 0.1);
    cr_assert_eq(s, CT_ERR_OUT_OF_MEMORY, "allocation %llu failed, the step returned %s: %s", (unsigned long long)n,
                 ct_status_name(s), ct_errmsg());
    cr_assert(strstr(ct_errmsg(), "injected"), "allocation %llu: the message lost the cause: %s", (unsigned long long)n,
              ct_errmsg());
    /* every variable holds its old or its new value, bit for bit; nothing leaked */
    int updated = 0;
    for (int i = 0; i < NV; ++i) {
      bool old = same_var(m.v[i], v0.v[i]), upd = same_var(m.v[i], v1.v[i]);
      cr_assert(old || upd, "allocation %llu: variable %d is neither its old nor its new value", (unsigned long long)n,
                i);
      updated += upd && !old;
    }
    partial += updated > 0;
    cr_assert_eq(stats(ctx).bytes_in_use, bytes0, "allocation %llu: the failed step leaked %lld bytes",
                 (unsigned long long)n, (long long)(stats(ctx).bytes_in_use - bytes0));
    /* the library goes on: a step from the untouched model reproduces the reference exactly */
    OK(mlp_step(&m, 0.1));
    if (updated == 0)
      for (int i = 0; i < NV; ++i)
        cr_assert(same_var(m.v[i], v1.v[i]), "allocation %llu: the retried step differs (variable %d)",
                  (unsigned long long)n, i);
    mlp_free(&m);
    cr_assert_eq(stats(ctx).bytes_in_use, 0);
    ct_context_free(ctx);
  }
  fprintf(stderr, "faults: %llu allocations of a step failed in turn; %d left some variables updated\n",
          (unsigned long long)(a1 - a0), partial);
  snap_free(&v0, NV);
  snap_free(&v1, NV);
}

/* ---- the same with layers, Adam and checkpoints ------------------------------------------------- */
typedef struct {
  ct_module *model;
  ct_optimizer *opt;
  ct_tensor *x, *y;
  ct_tensor *vars[8];
  int nv;
} net;

static void net_build(ct_context *ctx, net *m) {
  memset(m, 0, sizeof *m);
  ct_reset_module_names();
  ct_layer_options lo = ct_layer_default_options();
  ct_module *d1, *d2;
  OK(ct_sequential_create(ctx, NULL, &m->model));
  lo.seed = 11;
  OK(ct_dense_create(ctx, 4, 16, CT_ACTIVATION_RELU, &lo, &d1));
  lo.seed = 12;
  OK(ct_dense_create(ctx, 16, 2, CT_ACTIVATION_NONE, &lo, &d2));
  OK(ct_sequential_add(m->model, d1));
  OK(ct_sequential_add(m->model, d2));
  ct_module_free(d1);
  ct_module_free(d2);
  OK(ct_optimizer_create(ctx, NULL, &m->opt)); /* Adam: two slots per variable, made at the first step */
  OK(ct_module_trainable_variables(m->model, m->vars, 8, &m->nv));
  cr_assert_eq(m->nv, 4);
  OK(ct_random_uniform(ctx, CT_FLOAT32, 2, (int64_t[]){8, 4}, -1, 1, 7, &m->x));
  OK(ct_random_uniform(ctx, CT_FLOAT32, 2, (int64_t[]){8, 2}, -1, 1, 8, &m->y));
}

static void net_free(net *m) {
  ct_optimizer_free(m->opt);
  ct_module_free(m->model);
  ct_tensor_free(m->x);
  ct_tensor_free(m->y);
}

static ct_status net_step(net *m) {
  ct_tape *tape = NULL;
  ct_tensor *p = NULL, *loss = NULL, *g[8] = {NULL};
  ct_status s = ct_tape_begin(ct_tensor_context(m->x), NULL, &tape);
  if (s == CT_OK) s = ct_module_call(m->model, m->x, true, &p);
  if (s == CT_OK) s = ct_mean_squared_error(p, m->y, &loss);
  if (tape) ct_tape_end(tape);
  if (s == CT_OK) s = ct_tape_gradient(tape, &loss, 1, m->vars, m->nv, NULL, CT_UNCONNECTED_NONE, g);
  if (s == CT_OK) s = ct_optimizer_apply(m->opt, g, m->vars, m->nv);
  ct_tape_free(tape);
  ct_tensor_free(p);
  ct_tensor_free(loss);
  ct_tensor_free_n(g, 8);
  return s;
}

/* A failed step changes no variable and no optimizer state: retried, it gives the reference. */
Test(faults, out_of_memory_at_every_allocation_of_a_layers_and_adam_step) {
  ct_context *ctx = ts_ctx();
  net m;
  net_build(ctx, &m);
  uint64_t a0 = allocations(ctx);
  snapshot v0, v1;
  snap(m.vars, m.nv, &v0);
  OK(net_step(&m));
  uint64_t a1 = allocations(ctx);
  snap(m.vars, m.nv, &v1);
  net_free(&m);
  ct_context_free(ctx);
  for (uint64_t n = a0 + 1; n <= a1; ++n) {
    ctx = ctx_failing_at(n);
    net_build(ctx, &m);
    cr_assert_eq(allocations(ctx), a0);
    ct_status s = net_step(&m);
    cr_assert_eq(s, CT_ERR_OUT_OF_MEMORY, "allocation %llu: %s: %s", (unsigned long long)n, ct_status_name(s),
                 ct_errmsg());
    int updated = 0;
    for (int i = 0; i < m.nv; ++i) {
      bool old = same_var(m.vars[i], v0.v[i]), upd = same_var(m.vars[i], v1.v[i]);
      cr_assert(old || upd, "allocation %llu: variable %d is neither its old nor its new value", (unsigned long long)n,
                i);
      updated += !old;
    }
    cr_assert_eq(updated, 0, "allocation %llu: a failed optimizer step updated %d of %d variables",
                 (unsigned long long)n, updated, m.nv);
    cr_assert_eq(ct_optimizer_iterations(m.opt), 0, "allocation %llu: the failed step was counted",
                 (unsigned long long)n);
    OK(net_step(&m));
    for (int i = 0; i < m.nv; ++i)
      cr_assert(same_var(m.vars[i], v1.v[i]), "allocation %llu: the retried step differs (variable %d)",
                (unsigned long long)n, i);
    net_free(&m);
    cr_assert_eq(stats(ctx).bytes_in_use, 0, "allocation %llu: leaked device memory", (unsigned long long)n);
    ct_context_free(ctx);
  }
  fprintf(stderr, "faults: %llu allocations of a layers + Adam step failed in turn\n", (unsigned long long)(a1 - a0));
  snap_free(&v0, 4);
  snap_free(&v1, 4);
}

/* Loading a checkpoint stages everything first: running out of memory leaves the model as it was. */
Test(faults, out_of_memory_while_loading_a_checkpoint) {
  char *dir = temp_dir(), path[2048];
  join(path, sizeof path, dir, "model.safetensors");
  ct_context *ctx = ts_ctx();
  net m;
  net_build(ctx, &m);
  OK(net_step(&m));
  OK(ct_checkpoint_save(path, m.model, m.opt, NULL, NULL, 0));
  snapshot saved;
  snap(m.vars, m.nv, &saved);
  net_free(&m);
  ct_context_free(ctx);
  /* the reference load: how many allocations it makes */
  ctx = ts_ctx();
  net_build(ctx, &m);
  uint64_t a0 = allocations(ctx);
  OK(ct_checkpoint_load(path, m.model, m.opt));
  uint64_t a1 = allocations(ctx);
  for (int i = 0; i < m.nv; ++i) cr_assert(same_var(m.vars[i], saved.v[i]));
  snapshot fresh;
  net_free(&m);
  ct_context_free(ctx);
  cr_assert(a1 > a0);
  for (uint64_t n = a0 + 1; n <= a1; ++n) {
    ctx = ctx_failing_at(n);
    net_build(ctx, &m);
    snap(m.vars, m.nv, &fresh);
    EXPECT_STATUS(ct_checkpoint_load(path, m.model, m.opt), CT_ERR_OUT_OF_MEMORY);
    for (int i = 0; i < m.nv; ++i)
      cr_assert(same_var(m.vars[i], fresh.v[i]), "allocation %llu: a failed load changed variable %d",
                (unsigned long long)n, i);
    OK(ct_checkpoint_load(path, m.model, m.opt));
    for (int i = 0; i < m.nv; ++i) cr_assert(same_var(m.vars[i], saved.v[i]));
    snap_free(&fresh, m.nv);
    net_free(&m);
    cr_assert_eq(stats(ctx).bytes_in_use, 0);
    ct_context_free(ctx);
  }
  snap_free(&saved, 4);
  remove_tree(dir);
  free(dir);
}

/* A save that fails while writing (the file size limit of a full disk) never touches the
 * previous checkpoint and leaves no temporary file. The file size limit is set in a child
 * process of its own, which does the whole scenario (OpenCL cannot be shared over a fork) and
 * reports the first failed check in its exit status. */
static int limited_saves(const char *dir) {
  char path[2048], sub[2048];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  ct_context *ctx = NULL;
  if (ct_context_create(NULL, &ctx) != CT_OK) return 10;
  net m;
  net_build(ctx, &m);
  if (ct_checkpoint_save(path, m.model, m.opt, NULL, NULL, 0) != CT_OK) return 11;
  size_t n0;
  unsigned char *before = slurp(path, &n0);
  if (!before || n0 < 256) return 12;
  snapshot v0;
  snap(m.vars, m.nv, &v0);
  if (net_step(&m) != CT_OK) return 13; /* the model moves on; its next saves fail half way */
  /* run (and let the OpenCL driver compile) everything queued before the file size is limited:
   * the limit is for the checkpoint, not for the driver's own kernel cache */
  if (ct_context_sync(ctx) != CT_OK) return 17;
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, lim;
  if (getrlimit(RLIMIT_FSIZE, &old) != 0) return 14;
  static const rlim_t limits[] = {0, 8, 100, 1000};
  for (int k = 0; k < 4; ++k) {
    lim = old;
    lim.rlim_cur = limits[k];
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) return 15;
    ct_status s = ct_checkpoint_save(path, m.model, m.opt, NULL, NULL, 0);
    if (setrlimit(RLIMIT_FSIZE, &old) != 0) return 16;
    if (s != CT_ERR_IO) return 20 + k;
    size_t n1;
    unsigned char *after = slurp(path, &n1);
    bool same = after && n1 == n0 && memcmp(before, after, n0) == 0;
    free(after);
    if (!same) return 30 + k; /* the previous checkpoint was damaged */
  }
  /* a directory in the way, a missing directory */
  snprintf(sub, sizeof sub, "%s/a-directory", dir);
  if (mkdir(sub, 0755) != 0) return 40;
  if (ct_checkpoint_save(sub, m.model, m.opt, NULL, NULL, 0) != CT_ERR_IO) return 41;
  snprintf(sub, sizeof sub, "%s/missing/model.safetensors", dir);
  if (ct_checkpoint_save(sub, m.model, m.opt, NULL, NULL, 0) != CT_ERR_IO) return 42;
  /* the previous file still restores the model it was saved from */
  if (ct_checkpoint_load(path, m.model, NULL) != CT_OK) return 50;
  for (int i = 0; i < m.nv; ++i)
    if (!same_var(m.vars[i], v0.v[i])) return 51;
  snap_free(&v0, m.nv);
  free(before);
  net_free(&m);
  ct_context_free(ctx);
  return 0;
}

Test(faults, failed_checkpoint_save_keeps_the_previous_file) {
  char *dir = temp_dir();
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) _exit(limited_saves(dir));
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st), "the saving process died (signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  cr_assert_eq(WEXITSTATUS(st), 0, "failed check %d (20+k: a limited save did not return CT_ERR_IO; 30+k: it "
               "damaged the previous file; see limited_saves)", WEXITSTATUS(st));
  cr_assert_eq(leftovers(dir), 0, "a failed save left a temporary file");
  remove_tree(dir);
  free(dir);
}

/* ---- an optimizer step over variables whose storage is shared with snapshots ----------------- */
ct_status ct__optimizer_slots(const ct_optimizer *opt, uint64_t var_id, ct_tensor **slots);

#define OPT_NV 3
#define OPT_N 6
typedef struct {
  float v[OPT_NV][OPT_N];
  float slot[OPT_NV][2][OPT_N];
  bool has[OPT_NV][2];
  int64_t t;
} opt_state;

typedef struct {
  ct_optimizer *opt;
  ct_tensor *v[OPT_NV], *g[OPT_NV];
} opt_case;

static void opt_case_build(ct_context *ctx, const ct_optimizer_options *o, opt_case *c) {
  static const int64_t shapes[OPT_NV][2] = {{2, 3}, {6, 0}, {3, 2}};
  for (int i = 0; i < OPT_NV; ++i) {
    float init[OPT_N], grad[OPT_N];
    for (int k = 0; k < OPT_N; ++k) {
      init[k] = 0.25f * (float)(k + 1) - 0.5f * (float)i;
      grad[k] = 0.75f - 0.125f * (float)(k * (i + 1));
    }
    int rank = shapes[i][1] ? 2 : 1;
    ct_tensor *t = NULL;
    OK(ct_tensor_from_data(ctx, CT_FLOAT32, rank, shapes[i], init, &t));
    OK(ct_variable_create(t, NULL, true, &c->v[i]));
    ct_tensor_free(t);
    OK(ct_tensor_from_data(ctx, CT_FLOAT32, rank, shapes[i], grad, &c->g[i]));
  }
  OK(ct_optimizer_create(ctx, o, &c->opt));
}

static void opt_case_free(opt_case *c) {
  ct_optimizer_free(c->opt);
  ct_tensor_free_n(c->v, OPT_NV);
  ct_tensor_free_n(c->g, OPT_NV);
}

static void opt_state_read(const opt_case *c, opt_state *st) {
  memset(st, 0, sizeof *st);
  st->t = ct_optimizer_iterations(c->opt);
  for (int i = 0; i < OPT_NV; ++i) {
    OK(ct_tensor_read(c->v[i], st->v[i], sizeof st->v[i]));
    ct_tensor *sl[2];
    OK(ct__optimizer_slots(c->opt, ct_tensor_id(c->v[i]), sl));
    for (int k = 0; k < 2; ++k) {
      st->has[i][k] = sl[k] != NULL;
      if (sl[k]) OK(ct_tensor_read(sl[k], st->slot[i][k], sizeof st->slot[i][k]));
    }
  }
}

static bool opt_state_same(const opt_state *a, const opt_state *b) { return memcmp(a, b, sizeof *a) == 0; }

/* The third variable has no gradient: the step leaves it alone. */
static ct_status opt_case_apply(opt_case *c) {
  ct_tensor *g[OPT_NV] = {c->g[0], c->g[1], NULL};
  return ct_optimizer_apply(c->opt, g, c->v, OPT_NV);
}

/* Every allocation of a step failing in turn, with every variable's storage shared with a snapshot
 * (ct_variable_value) so that the step must copy on write: either every variable, slot and the
 * iteration count move, or nothing does. Both the first step (slots created) and a later one. */
Test(faults, optimizer_step_is_all_or_nothing_with_shared_storage) {
  struct {
    const char *what;
    ct_optimizer_kind kind;
    double momentum, clip;
    bool nesterov;
  } cases[] = {{"SGD", CT_OPTIMIZER_SGD, 0, 0, false},        {"SGD + momentum", CT_OPTIMIZER_SGD, 0.9, 0, false},
               {"SGD + Nesterov", CT_OPTIMIZER_SGD, 0.9, 0, true}, {"Adam", CT_OPTIMIZER_ADAM, 0, 0, false},
               {"AdamW", CT_OPTIMIZER_ADAMW, 0, 0, false},     {"Adam + clipping", CT_OPTIMIZER_ADAM, 0, 0.5, false},
               {"SGD + momentum + clipping", CT_OPTIMIZER_SGD, 0.5, 0.5, false}};
  int tried = 0;
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ++ci) {
    ct_optimizer_options o = ct_optimizer_default_options(cases[ci].kind);
    o.momentum = cases[ci].momentum;
    o.nesterov = cases[ci].nesterov;
    o.clip_global_norm = cases[ci].clip;
    for (int warm = 0; warm < 2; ++warm) {
      /* the reference: state and allocations before and after the step */
      ct_context *ctx = ts_ctx();
      opt_case c;
      opt_case_build(ctx, &o, &c);
      for (int w = 0; w < warm; ++w) OK(opt_case_apply(&c));
      ct_tensor *snaps[OPT_NV];
      for (int i = 0; i < OPT_NV; ++i) OK(ct_variable_value(c.v[i], &snaps[i]));
      opt_state s0, s1;
      opt_state_read(&c, &s0);
      uint64_t a0 = allocations(ctx);
      OK(opt_case_apply(&c));
      uint64_t a1 = allocations(ctx);
      opt_state_read(&c, &s1);
      cr_assert(!opt_state_same(&s0, &s1), "%s: the step changes nothing", cases[ci].what);
      cr_assert_geq(a1 - a0, 2, "%s: the step copies the two shared variables", cases[ci].what);
      ct_tensor_free_n(snaps, OPT_NV);
      opt_case_free(&c);
      ct_context_free(ctx);
      for (uint64_t n = a0 + 1; n <= a1; ++n, ++tried) {
        ctx = ctx_failing_at(n);
        opt_case_build(ctx, &o, &c);
        for (int w = 0; w < warm; ++w) OK(opt_case_apply(&c));
        for (int i = 0; i < OPT_NV; ++i) OK(ct_variable_value(c.v[i], &snaps[i]));
        cr_assert_eq(allocations(ctx), a0, "%s: the set-up's allocations are not reproducible", cases[ci].what);
        uint64_t bytes0 = stats(ctx).bytes_in_use;
        ct_status st = opt_case_apply(&c);
        cr_assert_eq(st, CT_ERR_OUT_OF_MEMORY, "%s, step %d, allocation %llu: %s: %s", cases[ci].what, warm + 1,
                     (unsigned long long)n, ct_status_name(st), ct_errmsg());
        opt_state got;
        opt_state_read(&c, &got);
        cr_assert(opt_state_same(&got, &s0),
                  "%s, step %d, allocation %llu failed: variables, slots or count changed (iterations %lld)",
                  cases[ci].what, warm + 1, (unsigned long long)n, (long long)got.t);
        for (int i = 0; i < OPT_NV; ++i) {
          float v[OPT_N];
          OK(ct_tensor_read(snaps[i], v, sizeof v));
          cr_assert(memcmp(v, s0.v[i], sizeof v) == 0, "%s: snapshot %d changed", cases[ci].what, i);
        }
        cr_assert_eq(stats(ctx).bytes_in_use, bytes0, "%s, allocation %llu: the failed step leaked", cases[ci].what,
                     (unsigned long long)n);
        /* retried, the step gives the reference exactly */
        OK(opt_case_apply(&c));
        opt_state_read(&c, &got);
        cr_assert(opt_state_same(&got, &s1), "%s, step %d, allocation %llu: the retried step differs", cases[ci].what,
                  warm + 1, (unsigned long long)n);
        ct_tensor_free_n(snaps, OPT_NV);
        opt_case_free(&c);
        cr_assert_eq(stats(ctx).bytes_in_use, 0);
        ct_context_free(ctx);
      }
    }
  }
  fprintf(stderr, "faults: %d allocations of optimizer steps over shared variables failed in turn\n", tried);
}


/* The testing aid of the oclgrind run: exact-size buffers, never reused, same results. */
Test(faults, exact_size_buffers_for_memory_checkers) {
  ct__env_override("CLTAPE_POOL_EXACT", "1");
  ct_context *ctx = ts_ctx();
  ct__env_override("CLTAPE_POOL_EXACT", NULL);
  cr_assert_eq(workload(ctx), 0);
  cr_assert_eq(workload(ctx), 0);
  ct_context_stats st = stats(ctx);
  cr_assert_eq(st.buffers_reused, 0, "a buffer was reused");
  cr_assert_eq(st.bytes_pooled, 0);
  cr_assert_eq(st.bytes_in_use, 0, "%llu bytes still in use", (unsigned long long)st.bytes_in_use);
  ct_context_free(ctx);
}
