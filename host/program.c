/* program.c — building OpenCL programs: embedded sources, generated elementwise kernels, the
 * in-memory program/kernel cache of the context, the on-disk binary cache and the per-device
 * choice of native math. */
#define _POSIX_C_SOURCE 200809L
#include "ct_host.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  const char *name;
  const char *text;
  size_t len;
} ct_kernel_source;
extern const ct_kernel_source ct_kernel_sources[];

#define CT_CACHE_FORMAT "cltape-program-cache-2"
static const char CACHE_MAGIC[8] = {'C', 'T', 'P', 'B', '0', '0', '0', '2'};

/* seconds on a monotonic clock (host/ times builds, searches and measured choices with it) */
double ctb_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *embedded(const char *name) {
  for (const ct_kernel_source *k = ct_kernel_sources; k->name; ++k)
    if (strcmp(k->name, name) == 0) return k->text;
  return NULL;
}

static void gen_rows(ct_text *b, const char *rows);
static bool family_dtype(const ct_device_info *info, bool half, const char *family, ct_dtype dt);
/* The elementwise program: the template plus one instantiation per elementwise row of the op
 * table, generated at build time (cmake/gen_ops.c) and embedded with the kernels. */
static void gen_elementwise(ct_text *b, ct_dtype dt, const char *fused) {
  ct__text_add(b, embedded("elementwise"));
  const char *rows = embedded(dt == CT_INT32 || dt == CT_INT64 ? "elementwise_rows_int" : "elementwise_rows");
  if (fused) { /* a fused kernel's program: only the rows whose f_<ID> it calls (compiling is faster) */
    ct_text used = {0};
    for (const char *l = rows; *l;) {
      const char *e = strchr(l, '\n');
      size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
      const char *open = strstr(l, " CT_");
      const char *paren = open && open < l + n ? strchr(open, '(') : NULL;
      const char *comma = paren ? strchr(paren, ',') : NULL;
      char call[80];
      if (comma && comma < l + n && comma - paren < 60) {
        char line[600];
        snprintf(call, sizeof call, "f_%.*s(", (int)(comma - paren - 1), paren + 1);
        if (strstr(fused, call)) {
          snprintf(line, sizeof line, "%.*s", (int)n, l);
          ct__text_add(&used, line);
        }
        /* its vector form (a kernel in vector form calls fv_<ID>): CT_UNARY( becomes CT_VUNARY( */
        snprintf(call, sizeof call, "fv_%.*s(", (int)(comma - paren - 1), paren + 1);
        if (strstr(fused, call)) {
          snprintf(line, sizeof line, "%.*sCT_V%.*s", (int)(open + 1 - l), l, (int)(n - (size_t)(open + 4 - l)), open + 4);
          ct__text_add(&used, line);
        }
      }
      l += n;
    }
    rows = used.p ? used.p : "";
    if (used.oom) b->oom = true;
    gen_rows(b, rows);
    free(used.p);
    return;
  }
  gen_rows(b, rows);
}

/* The rows' lines; CLTAPE_TEST_WRONG_OP plants a wrong one. */
static void gen_rows(ct_text *b, const char *rows) {
  /* tests plant a wrong kernel for one row: CLTAPE_TEST_WRONG_OP=<op name> adds 1 to its result
   * (each generated line starts with its row's name: "/ * Name * / CT_UNARY(ID, expr)") */
  const char *wrong = ct__getenv("CLTAPE_TEST_WRONG_OP");
  if (!wrong || !wrong[0]) {
    ct__text_add(b, rows);
    return;
  }
  char mark[128];
  snprintf(mark, sizeof mark, "/* %s */ CT_", wrong);
  for (const char *l = rows; *l;) {
    const char *e = strchr(l, '\n');
    size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)n, l);
    /* CT_UNARY(ID, expr) or CT_BINARY(ID, T, expr): the expression follows the first or second ", " */
    char *expr = strncmp(line, mark, strlen(mark)) == 0 ? strstr(line, ", ") : NULL;
    if (expr && strstr(line, "BINARY(")) expr = strstr(expr + 2, ", "); /* CT_BINARY or CT_VBINARY */
    char *close = strrchr(line, ')');
    if (expr && close && close > expr) {
      char fixed[600];
      snprintf(fixed, sizeof fixed, "%.*s, (%.*s) + 1%s", (int)(expr - line), line, (int)(close - (expr + 2)), expr + 2,
               close);
      ct__text_add(b, fixed);
    } else {
      ct__text_add(b, line);
    }
    l += n;
  }
}

/* ---- SHA-256 ------------------------------------------------------------------------- */
void ctb_sha256_hex(const void *const *parts, const size_t *lens, int n, char hex[65]) {
  struct sha256_ctx c;
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_init(&c);
  for (int i = 0; i < n; ++i) {
    uint64_t l = lens[i];
    sha256_update(&c, sizeof l, (const uint8_t *)&l); /* length-prefixed: no ambiguity */
    sha256_update(&c, lens[i], parts[i]);
  }
  sha256_digest(&c, sizeof d, d);
  for (int i = 0; i < SHA256_DIGEST_SIZE; ++i) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ---- on-disk cache ------------------------------------------------------------------- */
/* The folder holds native code that the process runs: it is the user's own and nobody else may
 * write to it. A folder the library creates gets 0700; an existing one of another user, or one that
 * group or others may write to, turns the cache off (with a warning that says why). Each entry is
 * opened with ct__fopen_regular (a regular file of the user, not writable by others, no link). */
static int mkdir_p(const char *path) {
  char tmp[CTB_CACHE_DIR_MAX + 1];
  size_t l = strlen(path);
  if (l == 0 || l >= sizeof tmp) return -1;
  memcpy(tmp, path, l + 1);
  for (char *p = tmp + 1; *p; ++p) {
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
  return 0;
}

/* NULL when dir is safe to keep native code in; otherwise why not. */
static const char *unsafe_dir(const char *dir) {
  struct stat st;
  if (lstat(dir, &st) != 0) return "it cannot be examined";
  if (S_ISLNK(st.st_mode) && stat(dir, &st) != 0) return "it is a broken symbolic link";
  if (!S_ISDIR(st.st_mode)) return "it is not a directory";
  if (st.st_uid != geteuid()) return "it belongs to another user";
  if (st.st_mode & (S_IWGRP | S_IWOTH)) return "group or others may write to it (chmod go-w, or 700)";
  return NULL;
}

void ctb_cache_init(ct_context *ctx) {
  const char *env = ct__getenv("CLTAPE_CACHE_DIR");
  ctx->cache_dir[0] = 0;
  if (env && (strcasecmp(env, "off") == 0 || strcmp(env, "0") == 0)) return;
  char dir[CTB_CACHE_DIR_MAX + 1];
  int n;
  const char *from = "CLTAPE_CACHE_DIR";
  if (env && *env) n = snprintf(dir, sizeof dir, "%s", env);
  else {
    const char *xdg = ct__getenv("XDG_CACHE_HOME"), *home = ct__getenv("HOME");
    if (xdg && *xdg) n = snprintf(dir, sizeof dir, "%s/cltape", xdg), from = "XDG_CACHE_HOME";
    else if (home && *home) n = snprintf(dir, sizeof dir, "%s/.cache/cltape", home), from = "HOME";
    else return;
  }
  if (n < 0 || (size_t)n >= sizeof dir) {
    ct__log(CT_LOG_WARNING, "program cache off: the folder named by %s is %d characters long, more than the %d "
            "allowed", from, n, CTB_CACHE_DIR_MAX);
    return;
  }
  if (mkdir_p(dir) != 0 || access(dir, W_OK | R_OK | X_OK) != 0) {
    ct__log(CT_LOG_DEBUG, "program cache disabled: cannot use %s", dir);
    return;
  }
  const char *why = unsafe_dir(dir);
  if (why) {
    ct__log(CT_LOG_WARNING, "program cache off: %s is not private to this user: %s", dir, why);
    return;
  }
  memcpy(ctx->cache_dir, dir, (size_t)n + 1);
}

static void cache_key(const ct_context *ctx, const char *source, const char *options, char hex[65]) {
  const ct_device_info *i = &ctx->info;
  const char *lib = CLTAPE_VERSION_STRING;
  const void *parts[] = {CT_CACHE_FORMAT, lib, source, options, i->name, i->device_version, i->driver_version,
                         i->platform, i->vendor};
  size_t lens[9];
  for (int k = 0; k < 9; ++k) lens[k] = strlen(parts[k]);
  ctb_sha256_hex(parts, lens, 9, hex);
}

/* The checksum of an entry: SHA-256 of the key (64 hex digits, which hash the format, the library
 * version, the source, the build options and the device, driver and platform) and the payload. An
 * entry copied over another key's file fails it. */
static void entry_sum(const char *key, const unsigned char *payload, size_t n, uint8_t out[32]) {
  struct sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, 64, (const uint8_t *)key);
  sha256_update(&c, n, payload);
  sha256_digest(&c, 32, out);
}

/* An entry: 8 magic bytes, the payload length (u64, host order), the checksum (entry_sum), the
 * payload (the driver's program binary), nothing after it. */
#define CACHE_HEAD (8 + 8 + 32)
#define CACHE_MAX_PAYLOAD ((uint64_t)1 << 31)

void ctb_cache_head(const char *key, const unsigned char *payload, size_t n, unsigned char head[48]) {
  _Static_assert(CACHE_HEAD == 48, "the head's size in ct_host.h");
  memcpy(head, CACHE_MAGIC, 8);
  uint64_t n64 = n;
  memcpy(head + 8, &n64, 8);
  entry_sum(key, payload, n, head + 16);
}

bool ctb_cache_parse(const unsigned char *buf, size_t len, const char *key, size_t *payload_off, size_t *payload_len) {
  *payload_off = 0;
  *payload_len = 0;
  if (!buf || !key || strlen(key) != 64 || len < CACHE_HEAD || memcmp(buf, CACHE_MAGIC, 8) != 0) return false;
  uint64_t n;
  memcpy(&n, buf + 8, 8);
  if (n == 0 || n > CACHE_MAX_PAYLOAD || n != (uint64_t)(len - CACHE_HEAD)) return false;
  uint8_t d[32];
  entry_sum(key, buf + CACHE_HEAD, (size_t)n, d);
  if (memcmp(d, buf + 16, 32) != 0) return false;
  *payload_off = CACHE_HEAD;
  *payload_len = (size_t)n;
  return true;
}

/* ---- driver binaries that would abort the driver ---------------------------------------
 * PoCL packs a built program into its binary from its own kernel cache folder, which several
 * processes share: one that rebuilds the same program removes `program.bc` before writing it again,
 * and a binary packed in that moment records an empty first entry. PoCL accepts such a binary in
 * clCreateProgramWithBinary and aborts the process on an assertion when it is built. A binary in
 * PoCL's format ("poclbin", format versions 9 to 11: PoCL 3.1 to 7) is walked here: the header, the
 * packed files of the program folder (at least one, none empty), each kernel's record and its packed
 * files, nothing after the last. Binaries of other drivers and other versions pass unchecked. */
#define POCLBIN_MAGIC "poclbin"
#define POCLBIN_HASH 41 /* a SHA-1 in hex and its terminating zero */

static bool rd_u32(const unsigned char *b, size_t n, size_t *at, uint32_t *v) {
  if (n - *at < 4) return false;
  *v = (uint32_t)b[*at] | (uint32_t)b[*at + 1] << 8 | (uint32_t)b[*at + 2] << 16 | (uint32_t)b[*at + 3] << 24;
  *at += 4;
  return true;
}

static bool rd_u64(const unsigned char *b, size_t n, size_t *at, uint64_t *v) {
  uint32_t lo, hi;
  if (!rd_u32(b, n, at, &lo) || !rd_u32(b, n, at, &hi)) return false;
  *v = (uint64_t)hi << 32 | lo;
  return true;
}

/* Packed files from *at to end: each a name (length > 0) and a content (length > 0). */
static bool poclbin_files(const unsigned char *b, size_t end, size_t *at) {
  while (*at < end) {
    uint32_t len;
    if (!rd_u32(b, end, at, &len) || len == 0 || end - *at < len) return false;
    *at += len;
    if (!rd_u32(b, end, at, &len) || len == 0 || end - *at < len) return false;
    *at += len;
  }
  return *at == end;
}

bool ctb_driver_binary_ok(const unsigned char *b, size_t n) {
  if (!b || n < sizeof POCLBIN_MAGIC || memcmp(b, POCLBIN_MAGIC, sizeof POCLBIN_MAGIC) != 0) return true;
  size_t at = 8;
  uint64_t device, flags;
  uint32_t version, kernels, roots;
  if (!rd_u64(b, n, &at, &device) || !rd_u32(b, n, &at, &version)) return false;
  if (version < 9 || version > 11) return true;
  if (!rd_u32(b, n, &at, &kernels) || !rd_u64(b, n, &at, &flags) || !rd_u32(b, n, &at, &roots)) return false;
  if (n - at < POCLBIN_HASH) return false;
  at += POCLBIN_HASH;
  if (version >= 10 && (flags & 2)) { /* the size of the program's global variables */
    uint64_t vars;
    if (!rd_u64(b, n, &at, &vars)) return false;
  }
  if (roots == 0 || roots > 16) return false;
  for (uint32_t r = 0; r < roots; ++r) {
    uint64_t len;
    if (!rd_u64(b, n, &at, &len) || len == 0 || len > n - at) return false;
    size_t end = at + (size_t)len;
    if (!poclbin_files(b, end, &at)) return false;
  }
  for (uint32_t k = 0; k < kernels; ++k) {
    size_t start = at;
    uint64_t size, packed;
    uint32_t arginfo, name;
    if (!rd_u64(b, n, &at, &size) || !rd_u64(b, n, &at, &packed) || !rd_u32(b, n, &at, &arginfo) ||
        !rd_u32(b, n, &at, &name))
      return false;
    if (name == 0 || size > n - start || size < 24 + (uint64_t)name || packed > size - 24 - name) return false;
    size_t end = start + (size_t)size, files = end - (size_t)packed;
    if (!poclbin_files(b, end, &files)) return false;
    at = end;
  }
  return at == n;
}

/* Reads a cache entry; returns a malloc'd payload or NULL when absent or invalid. */
static unsigned char *cache_load(const ct_context *ctx, const char *hex, size_t *len) {
  if (!ctx->cache_dir[0]) return NULL;
  char path[CTB_CACHE_PATH_MAX];
  snprintf(path, sizeof path, "%s/%s.bin", ctx->cache_dir, hex);
  uint64_t size = 0;
  FILE *f = ct__fopen_regular(path, 'r', CT__OPEN_NOFOLLOW | CT__OPEN_PRIVATE, &size);
  if (!f) {
    if (errno != ENOENT) ct__log(CT_LOG_DEBUG, "ignoring program cache entry %s: %s", path, ct__open_error(errno));
    return NULL;
  }
  unsigned char *buf = NULL;
  if (size < CACHE_HEAD || size > CACHE_HEAD + CACHE_MAX_PAYLOAD) goto bad;
  size_t flen = (size_t)size, off, n;
  buf = malloc(flen);
  /* a file that changed size since fstat is not the entry that was measured: ignore it */
  if (!buf || fread(buf, 1, flen, f) != flen || fgetc(f) != EOF) goto bad;
  if (!ctb_cache_parse(buf, flen, hex, &off, &n)) goto bad;
  fclose(f);
  memmove(buf, buf + off, n);
  *len = n;
  return buf;
bad:
  free(buf);
  fclose(f);
  ct__log(CT_LOG_DEBUG, "ignoring invalid program cache entry %s", path);
  return NULL;
}

static void cache_store(const ct_context *ctx, const char *hex, const unsigned char *payload, size_t n) {
  if (!ctx->cache_dir[0] || n == 0) return;
  char path[CTB_CACHE_PATH_MAX], tmp[CTB_CACHE_PATH_MAX];
  snprintf(path, sizeof path, "%s/%s.bin", ctx->cache_dir, hex);
  snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", ctx->cache_dir, hex);
  int fd = mkstemp(tmp);
  if (fd < 0) return;
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    close(fd);
    unlink(tmp);
    return;
  }
  unsigned char head[CACHE_HEAD];
  ctb_cache_head(hex, payload, n, head);
  bool ok = fwrite(head, 1, sizeof head, f) == sizeof head && fwrite(payload, 1, n, f) == n;
  ok = (fflush(f) == 0) && ok;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

/* ---- building ------------------------------------------------------------------------ */
/* True when a failed build left no message other than blanks. */
static bool build_log_blank(const ct_context *ctx, cl_program prog) {
  size_t n = 0;
  if (clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) != CL_SUCCESS) return true;
  char *log = malloc(n + 1);
  if (!log) return false;
  bool blank = clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, n, log, NULL) == CL_SUCCESS;
  for (size_t i = 0; blank && i < n && log[i]; ++i) blank = isspace((unsigned char)log[i]);
  free(log);
  return blank;
}

static ct_status build_log_error(ct_context *ctx, cl_program prog, const char *what, const char *options, cl_int err) {
  size_t n = 0;
  clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
  char *log = malloc(n + 1);
  if (log) {
    log[0] = 0;
    clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
    log[n] = 0;
  }
  ct_status s = ct__error(ctx, CT_ERR_BUILD, "building program \"%s\" with options \"%s\" on device \"%s\" failed (%s):\n%s",
                          what, options, ctx->info.name, ctb_cl_error_name(err), log ? log : "(no log)");
  free(log);
  return s;
}

/* The program of cache entry hex built from its binary, or NULL (no entry, or the driver refused it).
 * Reads the context only: callable from a compiling thread. */
static cl_program load_binary(const ct_context *ctx, const char *what, const char *hex, const char *options) {
  size_t blen = 0;
  unsigned char *bin = cache_load(ctx, hex, &blen);
  if (!bin) return NULL;
  if (!ctb_driver_binary_ok(bin, blen)) { /* stored by an earlier version: the driver would abort on it */
    free(bin);
    ct__log(CT_LOG_DEBUG, "cached binary for %s is malformed; compiling", what);
    return NULL;
  }
  const unsigned char *bins[1] = {bin};
  cl_int bstatus, err;
  cl_program p = clCreateProgramWithBinary(ctx->context, 1, &ctx->device, &blen, bins, &bstatus, &err);
  free(bin);
  if (err == CL_SUCCESS && bstatus == CL_SUCCESS && clBuildProgram(p, 1, &ctx->device, options, NULL, NULL) == CL_SUCCESS)
    return p;
  if (p) clReleaseProgram(p);
  ct__log(CT_LOG_DEBUG, "cached binary for %s rejected by the driver; compiling", what);
  return NULL;
}

/* A built program's binary into cache entry hex (nothing with the cache off). */
static void store_binary(const ct_context *ctx, const char *hex, cl_program p) {
  if (!ctx->cache_dir[0]) return;
  size_t bsize = 0;
  if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof bsize, &bsize, NULL) == CL_SUCCESS && bsize > 0) {
    unsigned char *b = malloc(bsize);
    if (b && clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof b, &b, NULL) == CL_SUCCESS) {
      if (ctb_driver_binary_ok(b, bsize)) cache_store(ctx, hex, b, bsize);
      else ct__log(CT_LOG_DEBUG, "the driver's binary of program %s is malformed (packed while another process "
                                 "rebuilt it): not cached", hex);
    }
    free(b);
  }
}

ct_status ctb_build_source(ct_context *ctx, const char *what, const char *source, const char *options,
                           cl_program *out) {
  *out = NULL;
  double t0 = ctb_now_s();
  char hex[65];
  cache_key(ctx, source, options, hex);
  cl_int err;
  cl_program cached = load_binary(ctx, what, hex, options);
  if (cached) {
    ctx->stats.programs_from_cache++;
    ctx->stats.build_seconds += ctb_now_s() - t0;
    *out = cached;
    return CT_OK;
  }
  if (ctx->stats.programs_built == 0) /* the first compilation in this context: say why it waits */
    ct__log(CT_LOG_INFO, "compiling OpenCL kernels for \"%s\" on first use (once per device and driver: a training "
                         "run's kernels take about 20 s of CPU time on a CPU device); %s%s",
            ctx->info.name, ctx->cache_dir[0] ? "they are cached in " : "not cached (CLTAPE_CACHE_DIR=off)",
            ctx->cache_dir);
  size_t slen = strlen(source);
  cl_program p = NULL;
  /* a failure without a compiler message is tried once more: the driver failed to read its own
   * kernel cache while another process rewrote the same program there (PoCL removes a file
   * before writing it again) */
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (p) {
      ct__log(CT_LOG_DEBUG, "building %s failed without a message (%s); building it again", what, ctb_cl_error_name(err));
      clReleaseProgram(p);
    }
    p = clCreateProgramWithSource(ctx->context, 1, &source, &slen, &err);
    if (err != CL_SUCCESS) return CTB_CL_FAIL(ctx, err, "clCreateProgramWithSource");
    err = clBuildProgram(p, 1, &ctx->device, options, NULL, NULL);
    if (err == CL_SUCCESS || !build_log_blank(ctx, p)) break;
  }
  if (err != CL_SUCCESS) {
    ct_status s = build_log_error(ctx, p, what, options, err);
    clReleaseProgram(p);
    return s;
  }
  ctx->stats.programs_built++;
  store_binary(ctx, hex, p);
  double before = ctx->stats.build_seconds;
  ctx->stats.build_seconds += ctb_now_s() - t0;
  /* a progress line when kernel preparation passes 5 s, then every 20 s */
  if (floor((ctx->stats.build_seconds - 5) / 20) > floor((before - 5) / 20))
    ct__log(CT_LOG_INFO, "still compiling kernels for \"%s\": %llu programs in %.0f s so far (once: later runs load them%s%s)",
            ctx->info.name, (unsigned long long)ctx->stats.programs_built, ctx->stats.build_seconds,
            ctx->cache_dir[0] ? " from " : " only with a cache folder", ctx->cache_dir);
  *out = p;
  return CT_OK;
}

/* ---- in-memory caches ------------------------------------------------------------------ */
static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
  return h;
}

/* A whole program as it is built: the prelude, then the user's source, the generated
 * elementwise kernels or a kernel file. */
static void program_source(ct_text *src, const char *family, const char *custom_source, ct_dtype dt) {
  /* a fused kernel in vector form (lib/fuse.c: its text starts with CTB_VECTOR_FORM): the prelude's
   * vector types and helpers */
  if (family && strcmp(family, "fused") == 0 && strncmp(custom_source, CTB_VECTOR_FORM, strlen(CTB_VECTOR_FORM)) == 0)
    ct__text_add(src, "#define CT_FV 1\n");
  ct__text_add(src, embedded("prelude"));
  ct__text_add(src, "\n");
  if (family && strcmp(family, "fused") == 0) {
    gen_elementwise(src, dt, custom_source); /* the rows' functions it calls (-DCT_FUSED=1), the kernel */
    ct__text_add(src, "\n");
    ct__text_add(src, custom_source);
    /* a fused reduction: the expression defines the hook of the reduction kernels that follow */
    if (strstr(custom_source, "#define CT_RED_ARGS")) {
      ct__text_add(src, "\n");
      ct__text_add(src, embedded("reduce"));
    }
  } else if (custom_source) ct__text_add(src, custom_source);
  else if (strcmp(family, "elementwise") == 0) gen_elementwise(src, dt, NULL);
  else ct__text_add(src, embedded(family));
}

/* -DCT_HALF=1: a float16 program that computes in half (every family but cast, which loads and
 * stores float16 itself) */
static void program_options(char *buf, size_t cap, const char *family, ct_dtype dt, bool fp64, bool native,
                            const char *extra, const char *build_options) {
  bool half = dt == CT_FLOAT16 && strcmp(family, "cast") != 0;
  snprintf(buf, cap, "-DCT_DT=%d -DCT_HAS_FP64=%d -DCT_NATIVE=%d%s %s%s%s", (int)dt, fp64 ? 1 : 0, native ? 1 : 0,
           half ? " -DCT_HALF=1" : "", extra, extra[0] ? " " : "", build_options);
}

static ct_status program_get(ct_context *ctx, const char *key, const char *source_family, const char *custom_source,
                             ct_dtype dt, const char *extra_options, ctb_program **out) {
  for (ctb_program *p = ctx->programs; p; p = p->next)
    if (strcmp(p->key, key) == 0) {
      *out = p;
      return CT_OK;
    }
  if (dt == CT_FLOAT64 && !ctx->info.fp64)
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "float64 is not supported by device \"%s\"", ctx->info.name);
  /* float16, bfloat16 and bool have the cast kernels only (the core widens them first), but for
   * float16's elementwise, reduction and fused kernels where the context computes in half; an
   * int64 fused kernel is never generated */
  bool fused = source_family && strcmp(source_family, "fused") == 0;
  if (source_family && !custom_source ? !family_dtype(&ctx->info, ctx->half, source_family, dt)
                                      : (dt != CT_FLOAT32 && dt != CT_FLOAT64 && dt != CT_INT32 &&
                                         !(fused && dt == CT_FLOAT16 && ctx->half)))
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "the %s kernels have no %s build (device \"%s\")",
                     source_family ? source_family : "custom", ct_dtype_name(dt), ctx->info.name);
  ct_text src = {0};
  program_source(&src, source_family, custom_source, dt);
  if (src.oom) {
    free(src.p);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "generating program source");
  }
  char options[512];
  program_options(options, sizeof options, source_family ? source_family : "custom", dt, ctx->info.fp64,
                  ctx->native_math, extra_options, ctx->build_options);
  ctb_program *p = calloc(1, sizeof *p);
  if (!p || !(p->key = strdup(key))) {
    free(p);
    free(src.p);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a program record");
  }
  ct_status s = ctb_build_source(ctx, key, src.p, options, &p->program);
  free(src.p);
  if (s != CT_OK) {
    free(p->key);
    free(p);
    return s;
  }
  p->next = ctx->programs;
  ctx->programs = p;
  *out = p;
  return CT_OK;
}

static ct_status kernel_get(ct_context *ctx, ctb_program *p, const char *kname, cl_kernel *out) {
  if (p->kcap == 0 || (p->kcount + 1) * 2 > p->kcap) {
    int ncap = p->kcap ? p->kcap * 2 : 64;
    ctb_kslot *ns = calloc((size_t)ncap, sizeof *ns);
    if (!ns) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "growing the kernel cache");
    for (int i = 0; i < p->kcap; ++i)
      if (p->kernels[i].name) {
        uint64_t h = hash_str(p->kernels[i].name) & (uint64_t)(ncap - 1);
        while (ns[h].name) h = (h + 1) & (uint64_t)(ncap - 1);
        ns[h] = p->kernels[i];
      }
    free(p->kernels);
    p->kernels = ns;
    p->kcap = ncap;
  }
  uint64_t h = hash_str(kname) & (uint64_t)(p->kcap - 1);
  while (p->kernels[h].name) {
    if (strcmp(p->kernels[h].name, kname) == 0) {
      *out = p->kernels[h].kernel;
      return CT_OK;
    }
    h = (h + 1) & (uint64_t)(p->kcap - 1);
  }
  cl_int err;
  cl_kernel k = clCreateKernel(p->program, kname, &err);
  if (err != CL_SUCCESS)
    return ct__error(ctx, err == CL_INVALID_KERNEL_NAME ? CT_ERR_UNSUPPORTED : CT_ERR_OPENCL,
                     "kernel \"%s\" of program \"%s\": %s", kname, p->key, ctb_cl_error_name(err));
  char *name = strdup(kname);
  if (!name) {
    clReleaseKernel(k);
    return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "kernel cache");
  }
  p->kernels[h].name = name;
  p->kernels[h].kernel = k;
  p->kcount++;
  *out = k;
  return CT_OK;
}

ct_status ctb_kernel(ct_context *ctx, const char *family, ct_dtype dt, const char *kname, cl_kernel *out) {
  return ctb_kernel_opts(ctx, family, dt, "", kname, out);
}

ct_status ctb_kernel_opts(ct_context *ctx, const char *family, ct_dtype dt, const char *defines, const char *kname,
                          cl_kernel *out) {
  char key[256];
  snprintf(key, sizeof key, "%s/%s%s%s", family, ct_dtype_name(dt), defines[0] ? "/" : "", defines);
  ctb_program *p;
  CT_TRY(program_get(ctx, key, family, NULL, dt, defines, &p));
  return kernel_get(ctx, p, kname, out);
}

ct_status ctb_kernel_custom(ct_context *ctx, const char *source, const char *kname, ct_dtype dt, cl_kernel *out) {
  char hex[65];
  const void *parts[] = {source};
  size_t lens[] = {strlen(source)};
  ctb_sha256_hex(parts, lens, 1, hex);
  char key[192];
  snprintf(key, sizeof key, "custom:%.64s:%.16s/%s", kname, hex, ct_dtype_name(dt));
  ctb_program *p;
  CT_TRY(program_get(ctx, key, NULL, source, dt, "", &p));
  return kernel_get(ctx, p, kname, out);
}

static void fused_key(const char *source, ct_dtype dt, bool idx64, char key[192]) {
  char hex[65];
  const void *parts[] = {source};
  size_t lens[] = {strlen(source)};
  ctb_sha256_hex(parts, lens, 1, hex);
  snprintf(key, 192, "fused:%.32s/%s%s", hex, ct_dtype_name(dt), idx64 ? "/idx64" : "");
}
#define FUSED_DEFINES(idx64) ((idx64) ? "-DCT_FUSED=1 -DCT_IDX64=1" : "-DCT_FUSED=1")

/* Is the fused program in the on-disk cache (then loading it is cheap)? */
static bool fused_on_disk(ct_context *ctx, const char *source, ct_dtype dt, bool idx64) {
  if (!ctx->cache_dir[0]) return false;
  ct_text src = {0};
  program_source(&src, "fused", source, dt);
  char options[512], disk[65], path[CTB_CACHE_PATH_MAX];
  program_options(options, sizeof options, "fused", dt, ctx->info.fp64, ctx->native_math, FUSED_DEFINES(idx64),
                  ctx->build_options);
  bool found = false;
  if (!src.oom) {
    cache_key(ctx, src.p, options, disk);
    snprintf(path, sizeof path, "%s/%s.bin", ctx->cache_dir, disk);
    found = access(path, R_OK) == 0;
  }
  free(src.p);
  return found;
}

ct_status ctb_kernel_fused(ct_context *ctx, const char *source, const char *kname, ct_dtype dt, bool idx64,
                           cl_kernel *out) {
  char key[192];
  fused_key(source, dt, idx64, key);
  ctb_program *p;
  CT_TRY(program_get(ctx, key, "fused", source, dt, FUSED_DEFINES(idx64), &p));
  return kernel_get(ctx, p, kname, out);
}

/* The record of structure `key` (count 0 and state unknown when new), NULL without memory. */
static __typeof__(((ct_context *)0)->seen) seen_entry(ct_context *ctx, uint64_t key) {
  if (!key) key = 1;
  if ((ctx->seen_n + 1) * 2 > ctx->seen_cap) {
    size_t nc = ctx->seen_cap ? ctx->seen_cap * 2 : 256;
    __typeof__(ctx->seen) ns = calloc(nc, sizeof *ns);
    if (!ns) return NULL;
    for (size_t i = 0; i < ctx->seen_cap; ++i)
      if (ctx->seen[i].key) {
        size_t h = ctx->seen[i].key & (nc - 1);
        while (ns[h].key) h = (h + 1) & (nc - 1);
        ns[h] = ctx->seen[i];
      }
    free(ctx->seen);
    ctx->seen = ns;
    ctx->seen_cap = nc;
  }
  size_t h = key & (ctx->seen_cap - 1);
  while (ctx->seen[h].key && ctx->seen[h].key != key) h = (h + 1) & (ctx->seen_cap - 1);
  if (!ctx->seen[h].key) {
    ctx->seen[h].key = key;
    ctx->seen_n++;
  }
  return &ctx->seen[h];
}

/* ---- fused programs compiled on a thread ----------------------------------------------------
 * A structure met a second time, not built yet and not on disk, is compiled on a thread of its
 * own while its runs go on unfused (one such thread per context at a time); the first run after
 * the thread finished takes the program and runs fused from then on; no run waits for it (the
 * compile policy's count applies to structures whose compilation could not start). The thread
 * reads the context's device, OpenCL context and cache folder and writes nothing but its record
 * and the on-disk cache; the context's program list, counters and structure table are touched only
 * by the thread that uses the context. Releasing the context waits for a running compilation and
 * releases what it built (and what finished for a structure not met again since).
 * By device (CLTAPE_FUSION_ASYNC=auto, the default): off on a CPU device, where the compilation
 * competes with the device's own threads for the same cores (docs/performance.md, "Compiling on a
 * thread"), on elsewhere; CLTAPE_FUSION_ASYNC=on or off forces either way. Off, a structure
 * compiles at the policy's count only, on the calling thread. */
struct ctb_compile {
  pthread_t thread;
  const ct_context *ctx;
  uint64_t skey;         /* the structure */
  char key[192];         /* its program's key (fused_key) */
  char *source;          /* the whole program text */
  char options[512];
  cl_program program;    /* the result; NULL: failed (building it on the calling thread says why) */
  bool from_cache;
  double seconds;
  atomic_bool done;
  struct ctb_compile *next;
};

static int async_mode = -1; /* 1 on, 0 off, -1 by device */
static pthread_once_t async_once = PTHREAD_ONCE_INIT;
static void read_async(void) {
  const char *v = ct__getenv("CLTAPE_FUSION_ASYNC");
  if (!v || !*v || strcmp(v, "auto") == 0) return;
  if (strcmp(v, "on") == 0) async_mode = 1;
  else if (strcmp(v, "off") == 0) async_mode = 0;
  else ct__log(CT_LOG_WARNING, "CLTAPE_FUSION_ASYNC=\"%s\" is not on, off or auto; using auto", v);
}
void ctb_fused_async_set(int mode) {
  pthread_once(&async_once, read_async);
  async_mode = mode;
}

static void *compile_main(void *arg) {
  struct ctb_compile *c = arg;
  const ct_context *ctx = c->ctx;
  double t0 = ctb_now_s();
  char hex[65];
  cache_key(ctx, c->source, c->options, hex);
  c->program = load_binary(ctx, c->key, hex, c->options);
  c->from_cache = c->program != NULL;
  if (!c->program) {
    cl_int err;
    const char *src = c->source;
    size_t slen = strlen(src);
    cl_program p = clCreateProgramWithSource(ctx->context, 1, &src, &slen, &err);
    if (err == CL_SUCCESS && clBuildProgram(p, 1, &ctx->device, c->options, NULL, NULL) == CL_SUCCESS) {
      store_binary(ctx, hex, p);
      c->program = p;
    } else if (err == CL_SUCCESS) clReleaseProgram(p);
  }
  c->seconds = ctb_now_s() - t0;
  atomic_store(&c->done, true);
  return NULL;
}

/* Starts compiling structure skey's program on a thread: false where one is running already, or
 * without memory or a thread. */
static bool compile_start(ct_context *ctx, const char *source, ct_dtype dt, bool idx64, uint64_t skey) {
  for (struct ctb_compile *c = ctx->compiles; c; c = c->next)
    if (!atomic_load(&c->done)) return false;
  struct ctb_compile *c = calloc(1, sizeof *c);
  if (!c) return false;
  ct_text src = {0};
  program_source(&src, "fused", source, dt);
  if (src.oom) {
    free(src.p);
    free(c);
    return false;
  }
  c->ctx = ctx;
  c->skey = skey;
  c->source = src.p;
  fused_key(source, dt, idx64, c->key);
  program_options(c->options, sizeof c->options, "fused", dt, ctx->info.fp64, ctx->native_math, FUSED_DEFINES(idx64),
                  ctx->build_options);
  atomic_init(&c->done, false);
  if (pthread_create(&c->thread, NULL, compile_main, c) != 0) {
    free(c->source);
    free(c);
    return false;
  }
  c->next = ctx->compiles;
  ctx->compiles = c;
  return true;
}

/* Waits for compilation c, unlinks it and frees it; its program goes into the context's list
 * (adopt) or is released. */
static void compile_finish(ct_context *ctx, struct ctb_compile *c, bool adopt) {
  pthread_join(c->thread, NULL);
  struct ctb_compile **pp = &ctx->compiles;
  while (*pp != c) pp = &(*pp)->next;
  *pp = c->next;
  ctb_program *p = adopt && c->program ? calloc(1, sizeof *p) : NULL;
  if (p && (p->key = strdup(c->key)) != NULL) {
    p->program = c->program;
    p->next = ctx->programs;
    ctx->programs = p;
    if (c->from_cache) ctx->stats.programs_from_cache++;
    else ctx->stats.programs_built++;
    ctx->stats.build_seconds += c->seconds;
  } else {
    free(p);
    if (c->program) clReleaseProgram(c->program);
  }
  free(c->source);
  free(c);
}

int ctb_fused_compiling(const ct_context *ctx) {
  int n = 0;
  for (const struct ctb_compile *c = ctx->compiles; c; c = c->next) n += !atomic_load(&c->done);
  return n;
}

int ctb_fused_started(const ct_context *ctx) {
  int n = 0;
  for (const struct ctb_compile *c = ctx->compiles; c; c = c->next) ++n;
  return n;
}

bool ctb_fused_ready(ct_context *ctx, const char *source, ct_dtype dt, bool idx64, uint64_t key, int weight, int after) {
  __typeof__(ctx->seen) e = seen_entry(ctx, key);
  if (!e) return false;
  if (e->state == 2) return true;
  bool build = e->count >= after, again = e->count > 0;
  e->count = e->count > INT32_MAX - weight ? INT32_MAX : e->count + weight;
  if (e->state == 3) { /* compiling on a thread: unfused until it is done (never waited for) */
    struct ctb_compile *c = ctx->compiles;
    while (c && c->skey != (key ? key : 1)) c = c->next;
    if (c && !atomic_load(&c->done)) return false;
    if (c) compile_finish(ctx, c, true);
    e->state = 2; /* built, or fails again when built here (which says why) */
    return true;
  }
  if (!build && e->state == 0) {
    build = fused_on_disk(ctx, source, dt, idx64); /* looked up once per structure and context */
    if (!build) e->state = 1;
  }
  if (build) e->state = 2;
  else if (again) {
    pthread_once(&async_once, read_async);
    bool on = async_mode > 0 || (async_mode < 0 && ctx->info.type != CT_DEVICE_CPU);
    if (on && compile_start(ctx, source, dt, idx64, key ? key : 1)) e->state = 3;
  }
  return build;
}

void ctb_programs_free(ct_context *ctx) {
  while (ctx->compiles) compile_finish(ctx, ctx->compiles, false);
  free(ctx->seen);
  ctx->seen = NULL;
  ctx->seen_cap = ctx->seen_n = 0;
  ctb_program *p = ctx->programs;
  while (p) {
    ctb_program *n = p->next;
    for (int i = 0; i < p->kcap; ++i)
      if (p->kernels[i].name) {
        clReleaseKernel(p->kernels[i].kernel);
        free(p->kernels[i].name);
      }
    free(p->kernels);
    clReleaseProgram(p->program);
    free(p->key);
    free(p);
    p = n;
  }
  ctx->programs = NULL;
}

/* ---- native math: measured per device --------------------------------------------------- */
static const char *PROBE_SRC =
    "__kernel void probe(__global const float *x, __global float *y, const int n) {\n"
    "  int i = get_global_id(0);\n"
    "  if (i >= n) return;\n"
    "  float v = x[i];\n"
    "  y[i] = native_exp(v * 0.02f);\n"            /* [-20, 20] */
    "  y[n + i] = native_log(fabs(v) * 1000.0f + 1e-3f);\n"
    "  y[2 * n + i] = native_sin(v * 0.01f);\n"     /* [-10, 10] */
    "  y[3 * n + i] = native_cos(v * 0.01f);\n"
    "  y[4 * n + i] = native_sqrt(fabs(v) * 1000.0f + 1e-3f);\n"
    "  y[5 * n + i] = native_rsqrt(fabs(v) * 1000.0f + 1e-3f);\n"
    "  y[6 * n + i] = native_tan(v * 0.0015f);\n"   /* [-1.5, 1.5] */
    "}\n";

static double ulp_err(double ref, float got) {
  float r = (float)ref;
  if (isnan(got) || isinf(got) != isinf(r)) return 1e30;
  double ulp = nextafterf(fabsf(r), INFINITY) - fabsf(r);
  return fabs((double)got - ref) / ulp;
}

/* Returns 1 when every native_ function stays within the error the library accepts. */
static int probe_native(ct_context *ctx, double *worst) {
  enum { N = 4096, F = 7 };
  cl_program prog;
  if (ctb_build_source(ctx, "native-math-probe", PROBE_SRC, "", &prog) != CT_OK) return -1;
  cl_int err;
  cl_kernel k = clCreateKernel(prog, "probe", &err);
  if (err != CL_SUCCESS) {
    clReleaseProgram(prog);
    return -1;
  }
  float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N * F);
  cl_mem bx = NULL, by = NULL;
  int result = -1;
  if (!x || !y) goto done;
  for (int i = 0; i < N; ++i) x[i] = -1000.0f + 2000.0f * (float)i / (N - 1);
  bx = clCreateBuffer(ctx->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof(float) * N, x, &err);
  if (err != CL_SUCCESS) goto done;
  by = clCreateBuffer(ctx->context, CL_MEM_WRITE_ONLY, sizeof(float) * N * F, NULL, &err);
  if (err != CL_SUCCESS) goto done;
  int n = N;
  clSetKernelArg(k, 0, sizeof bx, &bx);
  clSetKernelArg(k, 1, sizeof by, &by);
  clSetKernelArg(k, 2, sizeof n, &n);
  size_t g = N;
  if (clEnqueueNDRangeKernel(ctx->queue, k, 1, NULL, &g, NULL, 0, NULL, NULL) != CL_SUCCESS) goto done;
  if (clEnqueueReadBuffer(ctx->queue, by, CL_TRUE, 0, sizeof(float) * N * F, y, 0, NULL, NULL) != CL_SUCCESS) goto done;
  double w = 0;
  for (int i = 0; i < N; ++i) {
    float v = x[i];
    double a = fabs((double)v) * 1000.0 + 1e-3;
    float af = fabsf(v) * 1000.0f + 1e-3f;
    a = af;
    double e[F];
    e[0] = ulp_err(exp((double)(v * 0.02f)), y[i]);
    e[1] = ulp_err(log(a), y[N + i]);
    /* sin/cos/tan near their zeros: absolute error in units of 2^-24 */
    e[2] = fmin(ulp_err(sin((double)(v * 0.01f)), y[2 * N + i]), fabs(sin((double)(v * 0.01f)) - y[2 * N + i]) / 5.96e-8);
    e[3] = fmin(ulp_err(cos((double)(v * 0.01f)), y[3 * N + i]), fabs(cos((double)(v * 0.01f)) - y[3 * N + i]) / 5.96e-8);
    e[4] = ulp_err(sqrt(a), y[4 * N + i]);
    e[5] = ulp_err(1.0 / sqrt(a), y[5 * N + i]);
    e[6] = fmin(ulp_err(tan((double)(v * 0.0015f)), y[6 * N + i]), fabs(tan((double)(v * 0.0015f)) - y[6 * N + i]) / 5.96e-8);
    for (int f = 0; f < F; ++f) w = fmax(w, e[f]);
  }
  *worst = w;
  result = w <= 4.0 ? 1 : 0;
done:
  if (bx) clReleaseMemObject(bx);
  if (by) clReleaseMemObject(by);
  free(x);
  free(y);
  clReleaseKernel(k);
  clReleaseProgram(prog);
  return result;
}

/* The OpenCL C spec's bound for the precise float builtins the kernels call (sin and cos: 4 ulp;
 * exp, log, sqrt: 3), which is also the most the probe accepts of the native ones. */
#define CTB_SPEC_MATH_ULPS 4.0

double ctb_math_ulps(const ct_context *ctx) { return ctx->math_ulps; }

void ctb_choose_math(ct_context *ctx) {
  const char *env = ct__getenv("CLTAPE_NATIVE_MATH");
  ctx->math_ulps = CTB_SPEC_MATH_ULPS;
  if (env && *env) {
    ctx->native_math = strcasecmp(env, "on") == 0 || strcmp(env, "1") == 0;
    return;
  }
  /* the verdict is cached per device/driver next to the programs, with its key: "<v> <worst> <key>" */
  char hex[65], path[CTB_CACHE_PATH_MAX];
  cache_key(ctx, "native-math-verdict", "", hex);
  if (ctx->cache_dir[0]) {
    snprintf(path, sizeof path, "%s/%s.math", ctx->cache_dir, hex);
    FILE *f = ct__fopen_regular(path, 'r', CT__OPEN_NOFOLLOW | CT__OPEN_PRIVATE, NULL);
    if (f) {
      int v = -1;
      double w;
      char key[65];
      bool ok = fscanf(f, "%d %lf %64s", &v, &w, key) == 3 && (v == 0 || v == 1) && strcmp(key, hex) == 0;
      fclose(f);
      if (ok) {
        ctx->native_math = v == 1;
        if (v == 1) ctx->math_ulps = fmax(w, 1.0);
        return;
      }
      ct__log(CT_LOG_DEBUG, "ignoring invalid native-math verdict %s", path);
    } else if (errno != ENOENT) {
      ct__log(CT_LOG_DEBUG, "ignoring native-math verdict %s: %s", path, ct__open_error(errno));
    }
  }
  double worst = 0;
  int v = probe_native(ctx, &worst);
  ctx->native_math = v == 1;
  if (v == 1) ctx->math_ulps = fmax(worst, 1.0);
  ct__log(CT_LOG_DEBUG, "native math on \"%s\": worst error %.2f ulp -> %s", ctx->info.name, worst,
          v == 1 ? "native" : "precise");
  if (v >= 0 && ctx->cache_dir[0]) {
    char tmp[CTB_CACHE_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd >= 0) {
      FILE *f = fdopen(fd, "w");
      if (f) {
        fprintf(f, "%d %.3f %s\n", v, worst, hex);
        if (fclose(f) == 0 && rename(tmp, path) == 0) return;
      } else close(fd);
      unlink(tmp);
    }
  }
}

/* ---- every program the library can build ----------------------------------------------------- */
/* Families whose kernels exist for float types only (no int32 build). */
static bool float_only(const char *family) {
  return strcmp(family, "matmul") == 0 || strcmp(family, "nn") == 0 || strcmp(family, "attention") == 0;
}

/* Is `family` built for dt? The cast program for every dtype; the storage-only dtypes (float16,
 * bfloat16, bool: computed in float32 or int32) for nothing else, but float16's elementwise and
 * reduction programs where the device computes in half (`half`); int64 as int32. */
static bool family_dtype(const ct_device_info *info, bool half, const char *family, ct_dtype dt) {
  if (dt == CT_FLOAT64 && !info->fp64) return false;
  if (strcmp(family, "cast") == 0) return true;
  if (dt == CT_FLOAT16 && half) return strcmp(family, "elementwise") == 0 || strcmp(family, "reduce") == 0;
  if (dt == CT_FLOAT16 || dt == CT_BFLOAT16 || dt == CT_BOOL) return false;
  return !((dt == CT_INT32 || dt == CT_INT64) && float_only(family));
}

/* The text of a fused kernel that calls every row's function in a chain: f_<ID> (vector false;
 * rows of dtype dt) or their vector forms fv_<ID>, CT_FVW elements per work-item (lib/fuse.c's
 * two kinds of fused kernels, every row in one program). */
static void fused_every_row(ct_text *b, ct_dtype dt, bool vector) {
  ct__text_printf(b, "%s__kernel void fused(const ct_idx n, __global const T *x, __global T *y) {\n", vector ? CTB_VECTOR_FORM : "");
  if (vector)
    ct__text_printf(b, "  const ct_idx i = (ct_idx)get_global_id(0) * CT_FVW;\n  if (i >= n) return;\n"
                       "  const ct_idx m = n - i;\n  const TV x0 = ct_fv_load(x + i, m);\n  TV v = x0;\n");
  else
    ct__text_printf(b, "  const ct_idx i = get_global_id(0);\n  if (i >= n) return;\n  const T x0 = x[i];\n  T v = x0;\n");
  const char *rows = embedded(dt == CT_INT32 ? "elementwise_rows_int" : "elementwise_rows");
  for (const char *l = rows; (l = strstr(l, " CT_")) != NULL; ++l) {
    const bool un = strncmp(l, " CT_UNARY(", 10) == 0, bin = strncmp(l, " CT_BINARY(", 11) == 0;
    if (!un && !bin) continue;
    const char *id = l + (un ? 10 : 11), *comma = strchr(id, ',');
    if (!comma || comma - id > 40) continue;
    const bool cmp = bin && strncmp(comma, ", uchar,", 8) == 0;
    const int len = (int)(comma - id);
    if (un) ct__text_printf(b, "  v = f%s_%.*s(v);\n", vector ? "v" : "", len, id);
    else if (cmp && vector) ct__text_printf(b, "  v = v + fv_%.*s(v, x0);\n", len, id);
    else if (cmp) ct__text_printf(b, "  v = v + (T)f_%.*s(v, x0);\n", len, id);
    else ct__text_printf(b, "  v = f%s_%.*s(v, x0);\n", vector ? "v" : "", len, id);
  }
  ct__text_printf(b, vector ? "  ct_fv_store(v, y + i, m);\n}\n" : "  y[i] = v;\n}\n");
}

ct_status ctb_programs_each(const ct_device_info *info, bool native, ctb_program_visit fn, void *user) {
  static const ct_dtype dts[] = {CT_FLOAT32, CT_FLOAT64, CT_INT32, CT_FLOAT16, CT_BFLOAT16, CT_INT64, CT_BOOL};
  ctb_gemm_plan plans[CTB_MAX_TILES];
  bool defaults[CTB_MAX_TILES];
  for (const ct_kernel_source *k = ct_kernel_sources; k->name; ++k) {
    /* the prelude and the generated elementwise rows are parts of programs, not families */
    if (strcmp(k->name, "prelude") == 0 || strncmp(k->name, "elementwise_rows", 16) == 0) continue;
    for (size_t d = 0; d < sizeof dts / sizeof *dts; ++d) {
      ct_dtype dt = dts[d];
      if (!family_dtype(info, info->fp16, k->name, dt)) continue;
      ct_text src = {0};
      program_source(&src, k->name, NULL, dt);
      if (src.oom) {
        free(src.p);
        return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "generating program source");
      }
      char name[256], options[512];
      /* every program in its int and its long index build (-DCT_IDX64=1: launches past 2^31 - 1) */
      for (int wide = 0; wide <= 1; ++wide) {
        const char *idx = wide ? "-idx64" : "";
        if (strcmp(k->name, "matmul") != 0) {
          snprintf(name, sizeof name, "%s-%s%s", k->name, ct_dtype_name(dt), idx);
          program_options(options, sizeof options, k->name, dt, info->fp64, native, CTB_IDX_DEFS(wide), "");
          /* the fused attention is in no device's defaults (the composed rows are, everywhere:
           * lib/nn/attention.c fused_pays); CLTAPE_ATTENTION=fused asks for it */
          fn(name, src.p, options, strcmp(k->name, "attention") != 0, user);
          continue;
        }
        /* one program per tile: the default first, then every tile the tuner can choose (the
         * long build: the tiles of the defaults, which run the products past 2^31 - 1) */
        int n = ctb_tune_tiles(info, dt, plans, defaults, CTB_MAX_TILES);
        for (int t = 0; t < n; ++t)
          for (int way = 0; way < 3; ++way) {
            /* B packed with A as the plan says; B packed and A in place (a plan that packs A leaves
             * it where packing does not pay, blas.c); both in place (small products) */
            const int pack_b = way < 2, pack_a = way == 0 && plans[t].pack_a;
            if (way == 1 && !plans[t].pack_a) continue;
            if ((way > 0 || wide) && !defaults[t]) continue; /* the other ways: the default's */
            char defs[160];
            ctb_gemm_defines(&plans[t], pack_a, pack_b, defs, sizeof defs);
            if (wide) strcat(defs, " -DCT_IDX64=1");
            snprintf(name, sizeof name, "matmul-%s-mr%d-nv%d-vw%d-pa%d-pb%d-bn%d%s", ct_dtype_name(dt), plans[t].mr,
                     plans[t].nv, plans[t].vw, pack_a, pack_b, plans[t].bn, idx);
            program_options(options, sizeof options, k->name, dt, info->fp64, native, defs, "");
            fn(name, src.p, options, defaults[t], user);
          }
      }
      free(src.p);
    }
  }
  /* fused kernels (lib/fuse.c): every row's function in one program, in float32, float64 and
   * int32, and their vector form (CPU devices by default, any device with CLTAPE_FUSION_VECTOR=on)
   * in float32 and float64; compile errors count, spills are reported only: a chain of every row
   * is longer than any kernel fusion makes (at most 40 nodes) */
  for (int vector = 0; vector <= 1; ++vector)
    for (size_t d = 0; d < 3; ++d) {
      const ct_dtype dt = dts[d];
      if ((dt == CT_FLOAT64 && !info->fp64) || (vector && dt == CT_INT32)) continue;
      ct_text body = {0}, src = {0};
      fused_every_row(&body, dt, vector);
      if (!body.oom) program_source(&src, "fused", body.p, dt);
      if (body.oom || src.oom) {
        free(body.p);
        free(src.p);
        return ct__error(NULL, CT_ERR_OUT_OF_MEMORY, "generating program source");
      }
      char name[256], options[512];
      snprintf(name, sizeof name, "fused%s-%s", vector ? "-vector" : "", ct_dtype_name(dt));
      program_options(options, sizeof options, "fused", dt, info->fp64, native, FUSED_DEFINES(0), "");
      fn(name, src.p, options, false, user);
      free(body.p);
      free(src.p);
    }
  return CT_OK;
}
