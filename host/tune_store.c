/* tune_store.c — matmul tuning, what is kept: the parameter sets (CLBlast's seven and our Tile,
 * their validity and text form), the on-disk store of a device's winners (a header naming the
 * device and the library, a checksum), and applying the stored sets when a context is created.
 * The search that fills the store is in tune.c. */
#define _POSIX_C_SOURCE 200809L
#include "tune.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <clblast_c.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Names exactly as CLBlast's database lists them (CLBlastOverrideParameters wants all of them). */
const tk_desc KDESC[TK_COUNT] = {
    {"Xgemm", 16, {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA", "SB",
                   "STRM", "STRN", "VWM", "VWN"}},
    {"XgemmDirect", 10, {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND", "WGD"}},
    {"Copy", 4, {"COPY_DIMX", "COPY_DIMY", "COPY_VW", "COPY_WPT"}},
    {"Pad", 4, {"PAD_DIMX", "PAD_DIMY", "PAD_WPTX", "PAD_WPTY"}},
    {"Transpose", 4, {"TRA_DIM", "TRA_PAD", "TRA_SHUFFLE", "TRA_WPT"}},
    {"Padtranspose", 3, {"PADTRA_PAD", "PADTRA_TILE", "PADTRA_WPT"}},
    {"GemmRoutine", 1, {"XGEMM_MIN_INDIRECT_SIZE"}},
    /* ours: which engine runs products, and the tile of kernels/matmul.cl */
    {"Tile", 8, {"ENGINE", "MR", "NV", "VW", "PACKA", "WG", "BN", "SMALL"}},
};

/* What CLBlast 1.5 uses on a CPU it has no entry for, and our default tile: the starting point
 * when nothing is stored ([0] float32, [1] float64; the engine comes from generic_set). */
#define _POSIX_C_SOURCE 200809L
#include "ct_host.h"
#include <stdarg.h>
#include <clblast_c.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const tk_set GENERIC[2] = {
    {{{0, 1, 32, 2, 8, 8, 32, 16, 16, 32, 1, 1, 0, 0, 4, 2},
      {2, 8, 8, 8, 8, 1, 1, 1, 1, 16},
      {16, 16, 4, 2},
      {32, 8, 2, 1},
      {8, 0, 1, 4},
      {0, 8, 4},
      {896},
      {CTB_GEMM_CLBLAST, 6, 2, 8, 1, 1, 1, 16384}}},
    {{{0, 1, 32, 2, 16, 16, 32, 8, 8, 32, 1, 1, 0, 0, 2, 4},
      {2, 8, 8, 8, 8, 1, 1, 2, 2, 16},
      {16, 8, 2, 1},
      {32, 8, 1, 1},
      {8, 0, 1, 2},
      {0, 8, 4},
      {1152},
      {CTB_GEMM_CLBLAST, 6, 2, 4, 1, 1, 1, 16384}}},
};


/* The widest vector of a tile: the device's float vectors (CL_DEVICE_PREFERRED/NATIVE_VECTOR_WIDTH_FLOAT)
 * on a CPU, at least 32 bytes and at most 64 (AVX-512); 32 bytes on other devices, whose compilers
 * vectorise across work-items. */
unsigned tk_vector_bytes(const ct_device_info *info) {
  unsigned w = info->type == CT_DEVICE_CPU ? info->float_vector_width * 4u : 0;
  return w > 64 ? 64 : w > 32 ? w : 32;
}

static bool mult(uint64_t a, uint64_t b) { return b != 0 && a % b == 0; }
static bool pow2_le(uint32_t a, uint32_t max) { return a >= 1 && a <= max && (a & (a - 1)) == 0; }

/* The constraints of CLBlast's own tuner for each set, and the device's limits. */
bool tk_valid(int kid, const uint32_t *v, size_t esz, const ct_device_info *info) {
  uint64_t maxwg = info->max_work_group_size ? info->max_work_group_size : 256;
  uint64_t lmem = info->local_mem_bytes ? info->local_mem_bytes : 32768;
  switch (kid) {
    case TK_XGEMM: {
      uint32_t gk = v[XG_GEMMK], kreg = v[XG_KREG], kwg = v[XG_KWG], kwi = v[XG_KWI], mdima = v[XG_MDIMA],
               mdimc = v[XG_MDIMC], mwg = v[XG_MWG], ndimb = v[XG_NDIMB], ndimc = v[XG_NDIMC], nwg = v[XG_NWG],
               sa = v[XG_SA], sb = v[XG_SB], vwm = v[XG_VWM], vwn = v[XG_VWN];
      if (gk > 1 || sa > 1 || sb > 1 || v[XG_STRM] > 1 || v[XG_STRN] > 1) return false;
      if (!pow2_le(kreg, 16) || !pow2_le(kwg, 64) || !pow2_le(kwi, 16) || !pow2_le(mdima, 64) ||
          !pow2_le(mdimc, 64) || !pow2_le(mwg, 256) || !pow2_le(ndimb, 64) || !pow2_le(ndimc, 64) ||
          !pow2_le(nwg, 256) || !pow2_le(vwm, 16) || !pow2_le(vwn, 16))
        return false;
      if (!mult(kwg, kwi) || !mult(mwg, (uint64_t)mdimc * vwm) || !mult(nwg, (uint64_t)ndimc * vwn) ||
          !mult(mwg, (uint64_t)mdima * vwm) || !mult(nwg, (uint64_t)ndimb * vwn))
        return false;
      uint64_t wg = (uint64_t)mdimc * ndimc;
      if (wg > maxwg || !mult(wg, mdima) || !mult(wg, ndimb)) return false;
      if (gk == 0) {
        if (kreg != 1 || !mult(kwg, wg / mdima) || !mult(kwg, wg / ndimb)) return false;
      } else if (kwg != 1 || kwi != 1 || sa || sb || v[XG_STRM] || v[XG_STRN] || mdima != mdimc || ndimb != ndimc ||
                 !mult(kreg, vwn)) {
        return false;
      }
      /* more than 64 results per work-item only makes PoCL-style compilers crawl */
      if ((uint64_t)(mwg / mdimc) * (nwg / ndimc) > 64) return false;
      return esz * ((uint64_t)sa * kwg * mwg + (uint64_t)sb * kwg * nwg) <= lmem;
    }
    case TK_DIRECT: {
      uint32_t kwid = v[XD_KWID], mdimad = v[XD_MDIMAD], mdimcd = v[XD_MDIMCD], ndimbd = v[XD_NDIMBD],
               ndimcd = v[XD_NDIMCD], pada = v[XD_PADA], padb = v[XD_PADB], vwmd = v[XD_VWMD], vwnd = v[XD_VWND],
               wgd = v[XD_WGD];
      if (pada > 1 || padb > 1 || !pow2_le(kwid, 64) || !pow2_le(mdimad, 64) || !pow2_le(mdimcd, 64) ||
          !pow2_le(ndimbd, 64) || !pow2_le(ndimcd, 64) || !pow2_le(vwmd, 16) || !pow2_le(vwnd, 16) ||
          !pow2_le(wgd, 128))
        return false;
      uint64_t wg = (uint64_t)mdimcd * ndimcd;
      if (wg > maxwg || !mult(wg, mdimad) || !mult(wg, ndimbd)) return false;
      if (!mult(wgd, kwid) || !mult(wgd, (uint64_t)mdimcd * vwmd) || !mult(wgd, (uint64_t)ndimcd * vwnd) ||
          !mult(wgd, (uint64_t)mdimad * vwmd) || !mult(wgd, (uint64_t)ndimbd * vwnd) || !mult(wgd, wg / mdimad) ||
          !mult(wgd, wg / ndimbd))
        return false;
      /* the direct kernel builds very slowly beyond 32 results per work-item (minutes on PoCL) */
      if ((uint64_t)(wgd / mdimcd) * (wgd / ndimcd) > 32) return false;
      return esz * ((uint64_t)wgd * (wgd + pada) + (uint64_t)wgd * (wgd + padb)) <= lmem;
    }
    case TK_COPY:
      return pow2_le(v[CP_DIMX], 64) && pow2_le(v[CP_DIMY], 64) && pow2_le(v[CP_VW], 16) && pow2_le(v[CP_WPT], 16) &&
             (uint64_t)v[CP_DIMX] * v[CP_DIMY] <= maxwg;
    case TK_PAD:
      return pow2_le(v[PD_DIMX], 64) && pow2_le(v[PD_DIMY], 64) && pow2_le(v[PD_WPTX], 16) &&
             pow2_le(v[PD_WPTY], 16) && (uint64_t)v[PD_DIMX] * v[PD_DIMY] <= maxwg;
    case TK_TRANSPOSE: {
      uint64_t dim = v[TR_DIM], wpt = v[TR_WPT], pad = v[TR_PAD];
      return pow2_le(v[TR_DIM], 64) && pow2_le(v[TR_WPT], 16) && pad <= 1 && v[TR_SHUFFLE] <= 1 &&
             dim * dim <= maxwg && esz * wpt * (wpt * dim) * (dim + pad) <= lmem;
    }
    case TK_PADTRANSPOSE: {
      uint64_t tile = v[PT_TILE], wpt = v[PT_WPT], pad = v[PT_PAD];
      return pow2_le(v[PT_TILE], 64) && pow2_le(v[PT_WPT], 16) && pad <= 1 && tile * tile <= maxwg &&
             esz * (tile * wpt) * (tile * wpt + pad) <= lmem;
    }
    case TK_ROUTINE: return v[0] >= 1 && v[0] <= (1u << 20);
    case TK_TILE:
      /* accumulators: at most 2 KiB on a CPU (the vector registers of a 32-register AVX-512 core),
       * GPU_TILE_BYTES on a GPU (no spill, see tk_generic_set); vectors of at most 32 bytes, or
       * of the device's own width where that is more (64 bytes on AVX-512: tk_vector_bytes) */
      return v[TL_ENGINE] <= 1 && v[TL_MR] >= 1 && v[TL_MR] <= 16 && v[TL_NV] >= 1 && v[TL_NV] <= 4 &&
             (v[TL_VW] == 2 || v[TL_VW] == 4 || v[TL_VW] == 8 || v[TL_VW] == 16) &&
             esz * v[TL_VW] <= tk_vector_bytes(info) && v[TL_PACKA] <= 1 &&
             pow2_le(v[TL_WG], 256) && v[TL_WG] <= maxwg && v[TL_BN] >= 1 && v[TL_BN] <= 16 &&
             v[TL_SMALL] <= (1u << 20) &&
             esz * (uint64_t)v[TL_MR] * v[TL_NV] * v[TL_VW] <= (info->type == CT_DEVICE_CPU ? 2048 : GPU_TILE_BYTES);
  }
  return false;
}

static bool tk_set_valid(const tk_set *s, size_t esz, const ct_device_info *info) {
  for (int k = 0; k < TK_COUNT; ++k)
    if (!tk_valid(k, s->v[k], esz, info)) return false;
  return true;
}

/* "Xgemm GEMMK=0 KREG=1 ..." */
void tk_format(int kid, const uint32_t *v, char *buf, size_t cap) {
  size_t o = (size_t)snprintf(buf, cap, "%s", KDESC[kid].kernel);
  for (int i = 0; i < KDESC[kid].n && o < cap; ++i)
    o += (size_t)snprintf(buf + o, cap - o, " %s=%u", KDESC[kid].names[i], (unsigned)v[i]);
}

/* Parses "Kernel NAME=value ..." (every name of the kernel exactly once, nothing else). */
static bool tk_parse(const char *line, int *kid_out, uint32_t *v) {
  char buf[1024];
  if (strlen(line) >= sizeof buf) return false;
  strcpy(buf, line);
  char *save = NULL, *tok = strtok_r(buf, " ", &save);
  if (!tok) return false;
  int kid = -1;
  for (int k = 0; k < TK_COUNT; ++k)
    if (strcmp(tok, KDESC[k].kernel) == 0) kid = k;
  if (kid < 0) return false;
  bool seen[TK_MAXP] = {0};
  int count = 0;
  while ((tok = strtok_r(NULL, " ", &save))) {
    char *eq = strchr(tok, '=');
    if (!eq || eq == tok || !eq[1]) return false;
    *eq = 0;
    int idx = -1;
    for (int i = 0; i < KDESC[kid].n; ++i)
      if (strcmp(tok, KDESC[kid].names[i]) == 0) idx = i;
    if (idx < 0 || seen[idx]) return false;
    char *end = NULL;
    unsigned long val = strtoul(eq + 1, &end, 10);
    if (*end || eq[1] == '-' || val > (1ul << 20)) return false;
    seen[idx] = true;
    v[idx] = (uint32_t)val;
    count++;
  }
  if (count != KDESC[kid].n) return false;
  *kid_out = kid;
  return true;
}

/* ---- the store ----------------------------------------------------------------------------- */

const char *const DT_NAMES[2] = {"float32", "float64"};

void tk_store_path(const ct_context *ctx, char *out, size_t cap) {
  out[0] = 0;
  if (!ctx->cache_dir[0]) return;
  const ct_device_info *i = &ctx->info;
  const void *parts[] = {TUNE_FORMAT, i->name, i->driver_version, i->platform};
  size_t lens[4];
  for (int k = 0; k < 4; ++k) lens[k] = strlen(parts[k]);
  char hex[65];
  ctb_sha256_hex(parts, lens, 4, hex);
  char full[1200];
  int n = snprintf(full, sizeof full, "%s/matmul-%.32s.tune", ctx->cache_dir, hex);
  if (n > 0 && (size_t)n < cap) memcpy(out, full, (size_t)n + 1); /* else too long: no store */
}

/* Parses the data lines of a store ("<dtype> <Kernel> NAME=value ...", "<dtype> measured ...").
 * Every dtype that appears must be complete and valid for the device. */
static bool store_parse_body(const ct_context *ctx, const char *text, tk_store *st) {
  memset(st, 0, sizeof *st);
  bool seen[2][TK_COUNT] = {{0}};
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char line[1024];
    if (len >= sizeof line) return false;
    memcpy(line, p, len);
    line[len] = 0;
    p = nl ? nl + 1 : p + len;
    if (len == 0) continue;
    int d = -1;
    for (int k = 0; k < 2; ++k)
      if (strncmp(line, DT_NAMES[k], 7) == 0 && line[7] == ' ') d = k;
    if (d < 0) return false;
    const char *rest = line + 8;
    if (strncmp(rest, "measured ", 9) == 0) {
      if (sscanf(rest + 9, "size=%d before=%lf after=%lf", &st->size[d], &st->before[d], &st->after[d]) != 3)
        return false;
      continue;
    }
    int kid;
    uint32_t v[TK_MAXP] = {0};
    if (!tk_parse(rest, &kid, v) || seen[d][kid]) return false;
    seen[d][kid] = true;
    memcpy(st->set[d].v[kid], v, sizeof v);
  }
  for (int d = 0; d < 2; ++d) {
    int n = 0;
    for (int k = 0; k < TK_COUNT; ++k) n += seen[d][k];
    if (n == 0) continue;
    if (n != TK_COUNT || !tk_set_valid(&st->set[d], d ? 8 : 4, &ctx->info)) return false;
    st->have[d] = true;
  }
  return st->have[0] || st->have[1];
}

static void store_header(const ct_context *ctx, char *buf, size_t cap) {
  snprintf(buf, cap, "%s\ndevice %s\ndriver %s\nplatform %s\n", TUNE_FORMAT, ctx->info.name, ctx->info.driver_version,
           ctx->info.platform);
}

static void checksum(const char *text, size_t len, char hex[65]) {
  const void *parts[] = {text};
  size_t lens[] = {len};
  ctb_sha256_hex(parts, lens, 1, hex);
}

/* Reads and validates the store: header of this device, checksum, complete valid sets. */
bool tk_store_load(const ct_context *ctx, const char *path, tk_store *st) {
  FILE *f = ct__fopen_regular(path, 'r', CT__OPEN_NOFOLLOW | CT__OPEN_PRIVATE, NULL);
  if (!f) {
    if (errno != ENOENT) ct__log(CT_LOG_DEBUG, "ignoring the matmul tuning store %s: %s", path, ct__open_error(errno));
    return false;
  }
  char *buf = malloc(TUNE_STORE_MAX + 1);
  size_t n = buf ? fread(buf, 1, TUNE_STORE_MAX + 1, f) : 0;
  fclose(f);
  bool ok = false;
  if (!buf || n == 0 || n > TUNE_STORE_MAX) goto done;
  buf[n] = 0;
  if (strlen(buf) != n) goto done; /* NUL bytes */
  char head[1024];
  store_header(ctx, head, sizeof head);
  size_t hl = strlen(head);
  if (n <= hl || memcmp(buf, head, hl) != 0) goto done;
  /* last line: "sha256 <hex>" over everything before it */
  if (buf[n - 1] != '\n') goto done;
  buf[n - 1] = 0;
  char *last = strrchr(buf, '\n');
  if (!last || strncmp(last + 1, "sha256 ", 7) != 0 || strlen(last + 1) != 7 + 64) goto done;
  char hex[65];
  checksum(buf, (size_t)(last + 1 - buf), hex);
  if (strcmp(last + 8, hex) != 0) goto done;
  *last = 0;
  ok = store_parse_body(ctx, buf + hl, st);
done:
  if (!ok) ct__log(CT_LOG_DEBUG, "ignoring an invalid matmul tuning store %s", path);
  free(buf);
  return ok;
}

ct_status tk_store_save(ct_context *ctx, const char *path, const tk_store *st) {
  if (!path[0]) return ct__error(ctx, CT_ERR_IO, "the on-disk cache is off (CLTAPE_CACHE_DIR): nowhere to store");
  char *buf = malloc(TUNE_STORE_MAX);
  if (!buf) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "writing the tuning store");
  store_header(ctx, buf, TUNE_STORE_MAX);
  size_t o = strlen(buf);
  for (int d = 0; d < 2; ++d) {
    if (!st->have[d]) continue;
    for (int k = 0; k < TK_COUNT; ++k) {
      char line[1024];
      tk_format(k, st->set[d].v[k], line, sizeof line);
      o += (size_t)snprintf(buf + o, TUNE_STORE_MAX - o, "%s %s\n", DT_NAMES[d], line);
    }
    if (st->size[d] > 0)
      o += (size_t)snprintf(buf + o, TUNE_STORE_MAX - o, "%s measured size=%d before=%.2f after=%.2f\n", DT_NAMES[d],
                            st->size[d], st->before[d], st->after[d]);
  }
  char hex[65];
  checksum(buf, o, hex);
  o += (size_t)snprintf(buf + o, TUNE_STORE_MAX - o, "sha256 %s\n", hex);
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    free(buf);
    return ct__error(ctx, CT_ERR_IO, "cannot create a temporary file next to %s", path);
  }
  FILE *f = fdopen(fd, "wb");
  bool ok = f && fwrite(buf, 1, o, f) == o;
  if (f) ok = (fclose(f) == 0) && ok;
  else close(fd);
  free(buf);
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return ct__error(ctx, CT_ERR_IO, "cannot write the tuning store %s", path);
  }
  return CT_OK;
}

ct_status ctb_tune_store_write(ct_context *ctx, const char *body) {
  if (!ctx || !body) return ct__error(ctx, CT_ERR_NULL, "ctb_tune_store_write: NULL argument");
  tk_store st;
  if (!store_parse_body(ctx, body, &st)) return ct__error(ctx, CT_ERR_INVALID, "not a complete, valid parameter set");
  char path[1024];
  tk_store_path(ctx, path, sizeof path);
  return tk_store_save(ctx, path, &st);
}

/* ---- applying ------------------------------------------------------------------------------ */
static CLBlastPrecision precision_of(int d) { return d ? CLBlastPrecisionDouble : CLBlastPrecisionSingle; }

/* Overrides every set of one precision; returns CLBlast's first error (and the kernel) or 0. */
int tk_apply(const ct_context *ctx, int d, const tk_set *s, int *bad_kernel) {
  for (int k = 0; k < TK_CLBLAST; ++k) {
    size_t vals[TK_MAXP];
    for (int i = 0; i < KDESC[k].n; ++i) vals[i] = s->v[k][i];
    CLBlastStatusCode st = CLBlastOverrideParameters(ctx->device, KDESC[k].kernel, precision_of(d),
                                                     (size_t)KDESC[k].n, (const char **)KDESC[k].names, vals);
    if (st != CLBlastSuccess) {
      if (bad_kernel) *bad_kernel = k;
      return (int)st;
    }
  }
  return 0;
}

/* CLBlast keeps overrides per device for the process; remember which devices got some. */
static pthread_mutex_t applied_mu = PTHREAD_MUTEX_INITIALIZER;
static cl_device_id applied_devices[32];
static int applied_count;

void tk_mark_applied(cl_device_id d) {
  pthread_mutex_lock(&applied_mu);
  bool found = false;
  for (int i = 0; i < applied_count; ++i) found = found || applied_devices[i] == d;
  if (!found && applied_count < 32) applied_devices[applied_count++] = d;
  pthread_mutex_unlock(&applied_mu);
}

static bool was_applied(cl_device_id d) {
  pthread_mutex_lock(&applied_mu);
  bool found = false;
  for (int i = 0; i < applied_count; ++i) found = found || applied_devices[i] == d;
  pthread_mutex_unlock(&applied_mu);
  return found;
}


void tk_plan_of(const tk_set *s, ctb_gemm_plan *p) {
  const uint32_t *v = s->v[TK_TILE];
  *p = (ctb_gemm_plan){(int)v[TL_ENGINE], (int)v[TL_MR], (int)v[TL_NV], (int)v[TL_VW],
                       (int)v[TL_PACKA],  (int)v[TL_WG], (int)v[TL_BN], (int)v[TL_SMALL]};
}

/* Mesa's llvmpipe (behind rusticl) reports a CPU device but compiles a work-group the way a GPU
 * runs it: work-items are the lanes of its SIMD vectors (8 floats at 256 bits). A tiled kernel's
 * per-work-item vector tile then takes lanes x tile registers and spills, and its reads of A
 * become gathers: one 2048 x 784 x 64 product of the default tile took 35 s there, the whole
 * Fashion-MNIST MLP test over 700 s, against 24 s with CLBlast's kernels (docs/performance.md). */
static bool simd_work_items(const ct_device_info *info) { return strncmp(info->name, "llvmpipe", 8) == 0; }

/* CPU drivers run a work-item as a loop, where the tiled kernels keep their tile in registers;
 * on GPUs (and on llvmpipe, above) CLBlast's kernels (and its own database of tuned devices) fit. */
static int default_engine(const ct_device_info *info) {
  return info->type == CT_DEVICE_CPU && !simd_work_items(info) ? CTB_GEMM_TILE : CTB_GEMM_CLBLAST;
}

/* GPUs keep a work-item's accumulators in registers shared by the work-items of a compute unit:
 * at most GPU_TILE_BYTES of them (64 32-bit registers), so that a tile neither spills nor starves
 * the unit of threads. Measured offline (scripts/gpu_compile.sh): the CPU default tile (6 x 2 x 8
 * floats), reading the operands in place, took 206 registers on sm_90 and spilled on gfx1100. */
static const uint32_t GPU_TILE[2][3] = {{4, 2, 4}, {4, 2, 2}}; /* MR NV VW: 32 floats, 16 doubles */

/* Bands of column panels (BN) on a CPU: as many panels as keep the band's B (k = 1024 rows, the
 * size the tuner times) within half the local memory, at most 4. CPU drivers report as local memory
 * the cache a core keeps its working set in (PoCL: the L2 of a core), and the band's panels are
 * what stays there while the row panels of A stream through (kernels/matmul.cl, gemm_tile). */
static uint32_t band_of(const ct_device_info *info, const uint32_t *tile, uint32_t esz) {
  const uint64_t panel = 1024ull * tile[TL_NV] * tile[TL_VW] * esz;
  uint32_t bn = 1;
  while (bn < 4 && 2 * bn * panel <= info->local_mem_bytes / 2) bn *= 2;
  return bn;
}

tk_set tk_generic_set(const ct_device_info *info, int d) {
  tk_set s = GENERIC[d];
  s.v[TK_TILE][TL_ENGINE] = (uint32_t)default_engine(info);
  const uint32_t esz = d ? 8 : 4;
  if (info->type == CT_DEVICE_CPU && tk_vector_bytes(info) >= 64) {
    /* 32 vector registers of 64 bytes (AVX-512): 12 rows x 2 vectors, 24 accumulators, with room
     * for the two vectors of B and the broadcast of A (the 6 x 2 default of 16-register targets
     * leaves half the registers and half of each vector unused) */
    s.v[TK_TILE][TL_MR] = 12;
    s.v[TK_TILE][TL_NV] = 2;
    s.v[TK_TILE][TL_VW] = 64 / esz;
  }
  if (info->type == CT_DEVICE_CPU) s.v[TK_TILE][TL_BN] = band_of(info, &s.v[TK_TILE][0], esz);
  if (info->type != CT_DEVICE_CPU) {
    s.v[TK_TILE][TL_MR] = GPU_TILE[d][0];
    s.v[TK_TILE][TL_NV] = GPU_TILE[d][1];
    s.v[TK_TILE][TL_VW] = GPU_TILE[d][2];
  }
  return s;
}

void ctb_tune_default_plan(const ct_device_info *info, ct_dtype dt, ctb_gemm_plan *out) {
  tk_set s = tk_generic_set(info, dt == CT_FLOAT64);
  tk_plan_of(&s, out);
}

/* CLTAPE_MATMUL=clblast|tiled picks the engine whatever is stored (for comparisons); read when a
 * context is created */
static int engine_override(void) {
  const char *e = ct__getenv("CLTAPE_MATMUL");
  if (!e || !*e) return -1;
  if (strcasecmp(e, "clblast") == 0) return CTB_GEMM_CLBLAST;
  if (strcasecmp(e, "tiled") == 0) return CTB_GEMM_TILE;
  return -1;
}

void ctb_tune_plan(const ct_context *ctx, ct_dtype dt, ctb_gemm_plan *out) {
  const tk_state *s = ctx->blas_state;
  int d = dt == CT_FLOAT64;
  if (s && s->active[d]) *out = s->plan[d];
  else ctb_tune_default_plan(&ctx->info, dt, out);
  int e = s ? s->engine_override : engine_override();
  if (e >= 0) out->engine = e;
}

void ctb_tune_context_init(ct_context *ctx) {
  tk_state *s = calloc(1, sizeof *s);
  if (!s) return; /* reported as "nothing tuned in force" */
  ctx->blas_state = s;
  const char *env = ct__getenv("CLTAPE_TUNE");
  s->enabled = !(env && (strcasecmp(env, "off") == 0 || strcmp(env, "0") == 0));
  const char *me = ct__getenv("CLTAPE_MATMUL");
  s->engine_override = engine_override();
  if (me && *me && s->engine_override < 0)
    ct__log(CT_LOG_WARNING, "CLTAPE_MATMUL=%s is neither \"clblast\" nor \"tiled\": ignored", me);
  tk_store_path(ctx, s->path, sizeof s->path);
  tk_store st;
  s->stored = s->path[0] && access(s->path, F_OK) == 0 && tk_store_load(ctx, s->path, &st);
  if (!s->enabled) {
    if (was_applied(ctx->device))
      ct__log(CT_LOG_WARNING, "CLTAPE_TUNE=off, but tuned matmul parameters applied earlier in this process stay in "
                              "force on \"%s\"", ctx->info.name);
    return;
  }
  if (!s->stored) return;
  for (int d = 0; d < 2; ++d) {
    if (!st.have[d] || (d == 1 && !ctx->info.fp64)) continue;
    int bad = 0, rc = tk_apply(ctx, d, &st.set[d], &bad);
    tk_mark_applied(ctx->device);
    if (rc != 0) {
      ct__log(CT_LOG_WARNING, "CLBlast refused the stored %s %s parameters of %s (status %d); run cltape-tune again",
              DT_NAMES[d], KDESC[bad].kernel, s->path, rc);
      continue;
    }
    s->active[d] = true;
    tk_plan_of(&st.set[d], &s->plan[d]);
  }
}

bool ctb_tune_active(const ct_context *ctx, ct_dtype dt) {
  const tk_state *s = ctx->blas_state;
  return s && s->active[dt == CT_FLOAT64];
}

/* The hint is given once per device and cache folder: a marker file next to the device's store
 * remembers it (without a cache folder, or when the marker cannot be written, once per process). */
void ctb_tune_hint_once(const ct_context *ctx, ct_dtype dt) {
  static atomic_bool said;
  const tk_state *s = ctx->blas_state;
  if (s && !s->enabled) return;
  if (atomic_exchange(&said, true)) return;
  char marker[1100];
  tk_store_path(ctx, marker, sizeof marker - 8);
  if (marker[0]) {
    strcat(marker, ".hinted");
    int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) return;
    if (fd >= 0) close(fd);
  }
  ctb_gemm_plan plan;
  ctb_tune_plan(ctx, dt, &plan);
  ct__log(CT_LOG_INFO, "%s matmul on \"%s\" runs with default parameters (%s); a short tuning run stores "
                       "better ones for this device: cltape-tune --budget 60 --device \"%s\" (or ct_tune_matmul; "
                       "docs/performance.md). This hint is given once per device and cache folder",
          ct_dtype_name(dt), ctx->info.name, plan.engine == CTB_GEMM_TILE ? "the tiled kernels' default tile" : "CLBlast's generic ones",
          ctx->info.name);
}

ct_status ct_tune_status(const ct_context *ctx, ct_tune_state *out) {
  if (ctx) CT_TRY(ct__check_context(ctx, "ct_tune_status"));
  if (!ctx || !out) return ct__error(NULL, CT_ERR_NULL, "ct_tune_status: NULL argument");
  memset(out, 0, sizeof *out);
  const tk_state *s = ctx->blas_state;
  if (!s) {
    tk_store_path(ctx, out->store_path, sizeof out->store_path);
    return CT_OK;
  }
  out->enabled = s->enabled;
  out->stored = s->stored;
  out->active_float32 = s->active[0];
  out->active_float64 = s->active[1];
  snprintf(out->store_path, sizeof out->store_path, "%s", s->path);
  return CT_OK;
}

ct_tune_options ct_tune_default_options(void) {
  ct_tune_options o;
  memset(&o, 0, sizeof o);
  o.budget_seconds = 600;
  o.float32 = true;
  o.float64 = true;
  o.size = 1024;
  o.seed = 1;
  return o;
}

