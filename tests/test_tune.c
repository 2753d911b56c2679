/* test_tune.c — matmul engines and tuning: the tiled kernels on edge shapes, alpha and beta,
 * CLTAPE_MATMUL, the store, applying it on context creation, CLTAPE_TUNE=off, a corrupt store,
 * results with tuned parameters of both engines, and a short run of the tuner itself. Each test
 * uses its own cache directory. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_host.h"
#include "ct_internal.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cache_dir[256];

static void remove_cache(void) {
  DIR *d = opendir(cache_dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", cache_dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(cache_dir);
}

static void fresh_cache(void) {
  snprintf(cache_dir, sizeof cache_dir, "/tmp/cltape-test-tune-XXXXXX");
  cr_assert(mkdtemp(cache_dir), "mkdtemp");
  ct__env_override("CLTAPE_CACHE_DIR", cache_dir);
  ct__env_override("CLTAPE_TUNE", NULL);
  ct__env_override("CLTAPE_MATMUL", NULL);
}

TestSuite(tune, .init = fresh_cache, .fini = remove_cache);

/* Non-default parameters (large tiles, wide vectors) and a small switch size, so that the small
 * products below run through both of CLBlast's paths; tiles that are not the defaults (an odd
 * number of rows, A read in place, several work-items per group). */
static const char *BODY_F32 =
    "float32 Xgemm GEMMK=0 KREG=1 KWG=16 KWI=2 MDIMA=8 MDIMC=8 MWG=64 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 "
    "STRN=0 VWM=8 VWN=8\n"
    "float32 XgemmDirect KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=4 VWND=4 WGD=32\n"
    "float32 Copy COPY_DIMX=16 COPY_DIMY=16 COPY_VW=4 COPY_WPT=2\n"
    "float32 Pad PAD_DIMX=32 PAD_DIMY=8 PAD_WPTX=2 PAD_WPTY=1\n"
    "float32 Transpose TRA_DIM=8 TRA_PAD=1 TRA_SHUFFLE=0 TRA_WPT=8\n"
    "float32 Padtranspose PADTRA_PAD=1 PADTRA_TILE=16 PADTRA_WPT=4\n"
    "float32 GemmRoutine XGEMM_MIN_INDIRECT_SIZE=48\n"
    "float32 Tile ENGINE=1 MR=5 NV=1 VW=8 PACKA=0 WG=4 BN=3 SMALL=0\n";
static const char *BODY_F64 =
    "float64 Xgemm GEMMK=0 KREG=1 KWG=16 KWI=2 MDIMA=8 MDIMC=8 MWG=32 NDIMB=8 NDIMC=8 NWG=32 SA=1 SB=1 STRM=0 "
    "STRN=0 VWM=4 VWN=4\n"
    "float64 XgemmDirect KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=2 VWND=2 WGD=16\n"
    "float64 Copy COPY_DIMX=16 COPY_DIMY=8 COPY_VW=2 COPY_WPT=1\n"
    "float64 Pad PAD_DIMX=32 PAD_DIMY=8 PAD_WPTX=1 PAD_WPTY=1\n"
    "float64 Transpose TRA_DIM=8 TRA_PAD=0 TRA_SHUFFLE=1 TRA_WPT=2\n"
    "float64 Padtranspose PADTRA_PAD=0 PADTRA_TILE=8 PADTRA_WPT=4\n"
    "float64 GemmRoutine XGEMM_MIN_INDIRECT_SIZE=48\n"
    "float64 Tile ENGINE=1 MR=3 NV=3 VW=2 PACKA=1 WG=2 BN=2 SMALL=200\n";

static bool has_fp64(ct_context *ctx) {
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  return info.fp64;
}

/* Writes the store of the default device with the sets above (float64 where supported). */
static void write_store(void) {
  ct_context *ctx = ts_ctx();
  char body[4096];
  snprintf(body, sizeof body, "%s%s", BODY_F32, has_fp64(ctx) ? BODY_F64 : "");
  OK(ctb_tune_store_write(ctx, body));
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  cr_assert(access(st.store_path, R_OK) == 0, "store %s not written", st.store_path);
  ct_context_free(ctx);
}

static double val(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(*s >> 40) / (double)(1ull << 24) * 2.0 - 1.0;
}

/* ct_matmul against a host reference in double: op(A) is m x k, op(B) is k x n, batch of them. */
static void check_matmul(ct_context *ctx, ct_dtype dt, int batch, int m, int n, int k, bool ta, bool tb) {
  uint64_t seed = (uint64_t)(m * 131 + n * 17 + k * 7 + ta * 3 + tb + batch * 1000);
  int64_t sa[3] = {batch, ta ? k : m, ta ? m : k}, sb[3] = {batch, tb ? n : k, tb ? k : n};
  int64_t na = (int64_t)batch * m * k, nb = (int64_t)batch * k * n;
  double *ha = malloc(sizeof(double) * (size_t)na), *hb = malloc(sizeof(double) * (size_t)nb);
  double *want = malloc(sizeof(double) * (size_t)batch * m * n);
  cr_assert(ha && hb && want);
  for (int64_t i = 0; i < na; ++i) ha[i] = val(&seed);
  for (int64_t i = 0; i < nb; ++i) hb[i] = val(&seed);
  if (dt == CT_FLOAT32) { /* the reference sees the rounded inputs */
    for (int64_t i = 0; i < na; ++i) ha[i] = (float)ha[i];
    for (int64_t i = 0; i < nb; ++i) hb[i] = (float)hb[i];
  }
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int q = 0; q < k; ++q) {
          double x = ha[(int64_t)b * m * k + (ta ? (int64_t)q * m + i : (int64_t)i * k + q)];
          double y = hb[(int64_t)b * k * n + (tb ? (int64_t)j * k + q : (int64_t)q * n + j)];
          s += x * y;
        }
        want[((int64_t)b * m + i) * n + j] = s;
      }
  int rank = batch > 1 ? 3 : 2;
  ct_tensor *a = ts_tensor(ctx, dt, rank, batch > 1 ? sa : sa + 1, ha);
  ct_tensor *bt = ts_tensor(ctx, dt, rank, batch > 1 ? sb : sb + 1, hb);
  ct_tensor *c = NULL;
  OK(ct_matmul(a, bt, ta, tb, &c));
  char what[128];
  snprintf(what, sizeof what, "%s matmul batch %d, %dx%dx%d, ta=%d tb=%d", ct_dtype_name(dt), batch, m, n, k, ta, tb);
  double tol = dt == CT_FLOAT32 ? 2e-5 * k : 1e-13 * k;
  ts_assert_close(c, want, (int64_t)batch * m * n, tol, tol, what);
  ct_tensor_free(a);
  ct_tensor_free(bt);
  ct_tensor_free(c);
  free(ha);
  free(hb);
  free(want);
}

/* Shapes on both sides of the switch (48^3 in the store above), odd sizes, every transpose
 * combination, and a batch. */
static void check_all(ct_context *ctx) {
  for (int d = 0; d < 2; ++d) {
    ct_dtype dt = d ? CT_FLOAT64 : CT_FLOAT32;
    if (dt == CT_FLOAT64 && !has_fp64(ctx)) continue;
    for (int combo = 0; combo < 4; ++combo) {
      check_matmul(ctx, dt, 1, 5, 7, 3, combo & 1, combo >> 1);
      check_matmul(ctx, dt, 1, 67, 45, 37, combo & 1, combo >> 1);
      check_matmul(ctx, dt, 1, 130, 70, 90, combo & 1, combo >> 1);
    }
    check_matmul(ctx, dt, 1, 128, 128, 128, false, false);
    check_matmul(ctx, dt, 3, 50, 60, 40, false, true);
    check_matmul(ctx, dt, 2, 70, 66, 65, true, false);
  }
}

static ctb_gemm_plan plan_now(ct_context *ctx, ct_dtype dt) {
  ctb_gemm_plan p;
  ctb_tune_plan(ctx, dt, &p);
  return p;
}

/* The tiled kernels on every kind of edge: fewer rows or columns than a tile, one column, a K of
 * one, rows and columns one past a tile, each transpose combination, a batch, both dtypes and
 * both the default tile and other ones (A packed or read in place). */
static void check_edges(ct_context *ctx, ct_dtype dt) {
  static const int SHAPES[][3] = {{1, 1, 1},  {1, 17, 1},  {6, 16, 5},   {7, 17, 300}, {13, 1, 9},
                                  {2, 100, 3}, {64, 64, 64}, {97, 33, 129}, {5, 40, 1}};
  for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; ++i)
    for (int combo = 0; combo < 4; ++combo)
      check_matmul(ctx, dt, 1, SHAPES[i][0], SHAPES[i][1], SHAPES[i][2], combo & 1, combo >> 1);
  check_matmul(ctx, dt, 4, 5, 33, 7, true, true);
  check_matmul(ctx, dt, 3, 19, 9, 12, false, true);
}

Test(tune, tiled_kernels_on_edge_shapes, .timeout = 600) {
  ct__env_override("CLTAPE_MATMUL", "tiled");
  ct_context *ctx = ts_ctx();
  cr_assert_eq(plan_now(ctx, CT_FLOAT32).engine, CTB_GEMM_TILE);
  check_edges(ctx, CT_FLOAT32);
  if (has_fp64(ctx)) check_edges(ctx, CT_FLOAT64);
  ct_context_free(ctx);
  /* other tiles, through a store */
  ct__env_override("CLTAPE_MATMUL", NULL);
  write_store();
  ctx = ts_ctx();
  ctb_gemm_plan p = plan_now(ctx, CT_FLOAT32);
  cr_assert(p.engine == CTB_GEMM_TILE && p.mr == 5 && p.nv == 1 && p.vw == 8 && !p.pack_a && p.wg == 4 && p.bn == 3 &&
                p.small_b == 0,
            "the stored tile is not in force");
  check_edges(ctx, CT_FLOAT32);
  if (has_fp64(ctx)) {
    p = plan_now(ctx, CT_FLOAT64);
    cr_assert(p.engine == CTB_GEMM_TILE && p.mr == 3 && p.nv == 3 && p.vw == 2 && p.pack_a && p.wg == 2 && p.bn == 2 &&
              p.small_b == 200);
    check_edges(ctx, CT_FLOAT64);
  }
  ct_context_free(ctx);
}

/* C = alpha A B + beta C through each engine (the core only asks for alpha 1, beta 0). */
Test(tune, alpha_and_beta) {
  for (int e = 0; e < 2; ++e) {
    ct__env_override("CLTAPE_MATMUL", e ? "tiled" : "clblast");
    ct_context *ctx = ts_ctx();
    cr_assert_eq(plan_now(ctx, CT_FLOAT32).engine, e ? CTB_GEMM_TILE : CTB_GEMM_CLBLAST);
    const int m = 9, n = 21, k = 5;
    double ha[9 * 5], hb[5 * 21], hc[9 * 21], want[9 * 21];
    uint64_t seed = 7;
    for (int i = 0; i < m * k; ++i) ha[i] = (float)val(&seed);
    for (int i = 0; i < k * n; ++i) hb[i] = (float)val(&seed);
    for (int i = 0; i < m * n; ++i) hc[i] = (float)val(&seed);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int q = 0; q < k; ++q) s += ha[i * k + q] * hb[q * n + j];
        want[i * n + j] = 0.5 * s + 2.0 * hc[i * n + j];
      }
    int64_t sa[2] = {m, k}, sb[2] = {k, n}, sc[2] = {m, n};
    ct_tensor *a = ts_tensor(ctx, CT_FLOAT32, 2, sa, ha), *b = ts_tensor(ctx, CT_FLOAT32, 2, sb, hb),
              *c = ts_tensor(ctx, CT_FLOAT32, 2, sc, hc);
    OK(ctb_gemm(ctx, CT_FLOAT32, false, false, m, n, k, 0.5, a->buf, k, 0, b->buf, n, 0, 2.0, c->buf, n, 0, 1));
    ts_assert_close(c, want, m * n, 1e-5, 1e-5, e ? "tiled alpha/beta" : "CLBlast alpha/beta");
    ct_tensor_free(a);
    ct_tensor_free(b);
    ct_tensor_free(c);
    ct_context_free(ctx);
  }
}

/* A context created with CLTAPE_MATMUL=engine uses that engine, with correct results. */
static void check_all_on(const char *engine, int want) {
  ct__env_override("CLTAPE_MATMUL", engine);
  ct_context *ctx = ts_ctx();
  cr_assert_eq(plan_now(ctx, CT_FLOAT32).engine, want, "CLTAPE_MATMUL=%s not in force", engine);
  check_all(ctx);
  ct_context_free(ctx);
}

/* CLTAPE_MATMUL picks the engine; anything else is ignored (with a warning). */
Test(tune, engine_override) {
  ct_context *ctx = ts_ctx();
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  int def = info.type == CT_DEVICE_CPU ? CTB_GEMM_TILE : CTB_GEMM_CLBLAST;
  cr_assert_eq(plan_now(ctx, CT_FLOAT32).engine, def, "CPUs default to the tiled kernels, others to CLBlast");
  ct_context_free(ctx);
  check_all_on("clblast", CTB_GEMM_CLBLAST);
  check_all_on("tiled", CTB_GEMM_TILE);
  ct__env_override("CLTAPE_MATMUL", "bogus");
  ctx = ts_ctx();
  cr_assert_eq(plan_now(ctx, CT_FLOAT32).engine, def);
  ct_context_free(ctx);
}

Test(tune, nothing_stored) {
  ct_context *ctx = ts_ctx();
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  cr_assert(st.enabled);
  cr_assert(!st.stored);
  cr_assert(!st.active_float32 && !st.active_float64);
  cr_assert(strncmp(st.store_path, cache_dir, strlen(cache_dir)) == 0, "store path %s", st.store_path);
  check_matmul(ctx, CT_FLOAT32, 1, 67, 45, 37, false, true);
  ct_context_free(ctx);
}

Test(tune, stored_parameters_are_applied_and_correct) {
  write_store();
  ct_context *ctx = ts_ctx();
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  cr_assert(st.enabled && st.stored);
  cr_assert(st.active_float32, "float32 parameters not in force");
  cr_assert_eq(st.active_float64, has_fp64(ctx));
  check_all(ctx);
  ct_context_free(ctx);
  /* the stored CLBlast parameters, with CLBlast running the products */
  check_all_on("clblast", CTB_GEMM_CLBLAST);
}

Test(tune, off_ignores_the_store) {
  write_store();
  ct__env_override("CLTAPE_TUNE", "off");
  ct_context *ctx = ts_ctx();
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  cr_assert(!st.enabled);
  cr_assert(st.stored, "the store is still reported");
  cr_assert(!st.active_float32 && !st.active_float64, "CLTAPE_TUNE=off must not apply the store");
  check_matmul(ctx, CT_FLOAT32, 1, 67, 45, 37, true, false);
  ct_context_free(ctx);
}

static void expect_ignored(const char *what) {
  ct_context *ctx = NULL;
  ct_status s = ct_context_create(NULL, &ctx);
  cr_assert_eq(s, CT_OK, "%s: a bad store must not fail context creation: %s", what, ct_errmsg());
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  cr_assert(!st.stored, "%s: reported as a valid store", what);
  cr_assert(!st.active_float32 && !st.active_float64, "%s: parameters applied", what);
  check_matmul(ctx, CT_FLOAT32, 1, 67, 45, 37, false, false);
  ct_context_free(ctx);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "open %s", path);
  char *buf = calloc(1, 65536);
  *len = fread(buf, 1, 65535, f);
  fclose(f);
  return buf;
}

static void spit(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  fclose(f);
}

Test(tune, corrupt_store_is_ignored) {
  write_store();
  ct_context *ctx = ts_ctx();
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  ct_context_free(ctx);
  size_t len;
  char *good = slurp(st.store_path, &len);
  cr_assert(len > 100);

  char *bad = malloc(len + 1);
  memcpy(bad, good, len);
  char *p = strstr(bad, "MWG=64");
  cr_assert(p);
  p[4] = '3'; /* MWG=34: a changed digit breaks the checksum */
  spit(st.store_path, bad, len);
  expect_ignored("one changed digit");

  spit(st.store_path, good, len / 2);
  expect_ignored("truncated");

  spit(st.store_path, "\x01\x02garbage\n\0\xff", 12);
  expect_ignored("garbage");

  spit(st.store_path, "", 0);
  expect_ignored("empty");

  spit(st.store_path, good, len); /* and the intact one is still taken */
  ctx = ts_ctx();
  OK(ct_tune_status(ctx, &st));
  cr_assert(st.stored && st.active_float32);
  ct_context_free(ctx);
  free(bad);
  free(good);
}

Test(tune, invalid_parameter_sets_are_refused) {
  ct_context *ctx = ts_ctx();
  /* VWM=3 is not a vector width; an incomplete set; an unknown kernel; a wrong name */
  char body[4096];
  snprintf(body, sizeof body, "%s", BODY_F32);
  char *p = strstr(body, "VWM=8");
  p[4] = '3';
  EXPECT_STATUS(ctb_tune_store_write(ctx, body), CT_ERR_INVALID);
  EXPECT_STATUS(ctb_tune_store_write(ctx, "float32 GemmRoutine XGEMM_MIN_INDIRECT_SIZE=48\n"), CT_ERR_INVALID);
  EXPECT_STATUS(ctb_tune_store_write(ctx, "float32 Xgemv WGS1=64\n"), CT_ERR_INVALID);
  snprintf(body, sizeof body, "%s", BODY_F32);
  p = strstr(body, "KWID");
  p[0] = 'Q';
  EXPECT_STATUS(ctb_tune_store_write(ctx, body), CT_ERR_INVALID);
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  cr_assert(access(st.store_path, F_OK) != 0, "nothing may be written");
  ct_context_free(ctx);
}

Test(tune, bad_options) {
  ct_context *ctx = ts_ctx();
  ct_tune_options o = ct_tune_default_options();
  o.budget_seconds = -1;
  EXPECT_STATUS(ct_tune_matmul(ctx, &o, NULL), CT_ERR_INVALID);
  o = ct_tune_default_options();
  o.size = 10;
  EXPECT_STATUS(ct_tune_matmul(ctx, &o, NULL), CT_ERR_INVALID);
  o = ct_tune_default_options();
  o.float32 = o.float64 = false;
  EXPECT_STATUS(ct_tune_matmul(ctx, &o, NULL), CT_ERR_UNSUPPORTED);
  EXPECT_STATUS(ct_tune_matmul(NULL, NULL, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tune_status(NULL, NULL), CT_ERR_NULL);
  ct_context_free(ctx);
}

static int progress_lines;
static void count_progress(const char *line, void *user) {
  (void)user;
  cr_assert(line && line[0]);
  progress_lines++;
}

/* The tuner itself with a tiny budget on small sizes: it must still measure, check, store and
 * apply a complete set, and a new context must pick it up. */
Test(tune, short_tuning_run_stores_and_applies, .timeout = 600) {
  ct_context *ctx = ts_ctx();
  ct_tune_options o = ct_tune_default_options();
  o.budget_seconds = 1;
  o.size = 64;
  o.float64 = false;
  o.progress = count_progress;
  ct_tune_report r;
  OK(ct_tune_matmul(ctx, &o, &r));
  cr_assert(r.float32.tuned, "nothing tuned");
  cr_assert(!r.float64.tuned && r.float64.candidates == 0);
  cr_assert_geq(r.float32.candidates, 1);
  cr_assert_eq(r.float32.rejected, 0, "a candidate gave wrong results");
  cr_assert_gt(r.float32.gflops_before, 0);
  cr_assert_gt(r.float32.gflops_after, 0);
  cr_assert_geq(r.float32.min_indirect_size, 1);
  cr_assert(strstr(r.float32.parameters, "Xgemm GEMMK=") && strstr(r.float32.parameters, "GemmRoutine") &&
            strstr(r.float32.parameters, "Tile ENGINE="));
  cr_assert_gt(progress_lines, 3);
  cr_assert(r.stored, "not stored");
  cr_assert(access(r.store_path, R_OK) == 0);
  ct_tune_state st;
  OK(ct_tune_status(ctx, &st));
  cr_assert(st.stored && st.active_float32);
  ct_context_free(ctx);

  ctx = ts_ctx();
  OK(ct_tune_status(ctx, &st));
  cr_assert(st.stored && st.active_float32, "a new context must apply the store");
  cr_assert(!st.active_float64);
  for (int combo = 0; combo < 4; ++combo) check_matmul(ctx, CT_FLOAT32, 1, 67, 45, 37, combo & 1, combo >> 1);
  check_matmul(ctx, CT_FLOAT32, 1, 96, 100, 80, false, false);
  ct_context_free(ctx);
}

/* Convolution paths (host/conv_gemm.c), chosen per device and shape: choices stored beside the
 * matmul store are what a context answers (even against the rule for untuned devices); a shape
 * measured once (CLTAPE_CONV=measure) runs both paths, is stored and is not measured again; an
 * untuned device's unknown shape gets the rule, not a measurement. */
#include "tune.h"
static void conv_line(FILE *f, const ctb_window *g, ctb_conv_kind kind, const char *path) {
  fprintf(f, "%d %d", (int)kind, (int)CT_FLOAT32);
  const int32_t *v = (const int32_t *)g;
  for (int i = 0; i < 13; ++i) fprintf(f, " %d", (int)v[i]);
  fprintf(f, " %s\n", path);
}
/* the direct kernels' run that ctb_conv_winograd_measure times against Winograd's */
static ct_status direct_mid(void *u) {
  const ctb_conv2d_call *c = u;
  ct__env_override("CLTAPE_CONV", "direct");
  ct_status s = ctb_conv2d(c->ctx, c->dt, c->g, c->x, c->f, c->bias, c->relu, c->y);
  ct__env_override("CLTAPE_CONV", "measure");
  return s;
}
Test(tune, convolution_choices_are_stored_and_measured, .timeout = 600) {
  ct__env_override("CLTAPE_CONV", NULL);
  ct_context *ctx = ts_ctx();
  char store[1200];
  tk_store_path(ctx, store, sizeof store);
  char *slash = strrchr(store, '/');
  cr_assert(slash && strncmp(slash + 1, "matmul-", 7) == 0, "the matmul store: %s", store);
  char conv[1300];
  snprintf(conv, sizeof conv, "%.*s/conv-%s", (int)(slash - store), store, slash + 8);
  /* a shallow first layer (the rule: direct) and a deep one (the rule: products) */
  const ctb_window shallow = {8, 28, 28, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 0};
  const ctb_window deep = {8, 7, 7, 64, 7, 7, 128, 3, 3, 1, 1, 1, 1, 0};
  /* the rule: a shallow layer on the direct kernels where the products run on the tiled kernels
   * (CPU drivers that run work-items as loops), on the products elsewhere */
  ctb_gemm_plan plan;
  ctb_tune_plan(ctx, CT_FLOAT32, &plan);
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_FWD, &shallow),
               plan.engine == CTB_GEMM_TILE ? CTB_CONV_PATH_DIRECT : CTB_CONV_PATH_GEMM, "the rule, untuned");
  /* the deep forward stays direct where those kernels run blocks of 16 channels (512-bit vectors) */
  const bool wide = plan.engine == CTB_GEMM_TILE && ctb_conv_wide_vectors(ctx, CT_FLOAT32, deep.oc);
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_FWD, &deep), wide ? CTB_CONV_PATH_DIRECT : CTB_CONV_PATH_GEMM,
               "the rule, untuned");
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_BP_FILTER, &deep), CTB_CONV_PATH_GEMM, "the rule, untuned");
  /* the direct forward's own choice: Winograd for 3x3 windows of stride 1 only where forced or
   * measured; never for other windows */
  const ctb_window strided = {8, 14, 14, 64, 7, 7, 128, 3, 3, 2, 2, 0, 0, 0};
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &deep), CTB_CONV_PATH_DIRECT, "Winograd's rule, untuned");
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &shallow), CTB_CONV_PATH_DIRECT, "Winograd's rule, 1 channel");
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &strided), CTB_CONV_PATH_DIRECT, "Winograd: stride 2");
  ct__env_override("CLTAPE_CONV", "winograd");
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &shallow), CTB_CONV_PATH_WINOGRAD, "CLTAPE_CONV=winograd");
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT64, &deep), CTB_CONV_PATH_WINOGRAD, "CLTAPE_CONV=winograd");
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &strided), CTB_CONV_PATH_DIRECT, "CLTAPE_CONV=winograd, stride 2");
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_BP_FILTER, &deep), CTB_CONV_PATH_DIRECT, "CLTAPE_CONV=winograd");
  ct__env_override("CLTAPE_CONV", "direct");
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &deep), CTB_CONV_PATH_DIRECT, "CLTAPE_CONV=direct");
  ct__env_override("CLTAPE_CONV", NULL);
  ct_context_free(ctx);
  /* a new cache directory: its store is read on first use */
  remove_cache();
  fresh_cache();
  ctx = ts_ctx();
  tk_store_path(ctx, store, sizeof store);
  slash = strrchr(store, '/');
  cr_assert(slash);
  snprintf(conv, sizeof conv, "%.*s/conv-%s", (int)(slash - store), store, slash + 8);
  FILE *f = fopen(conv, "w");
  cr_assert(f, "writing %s", conv);
  conv_line(f, &shallow, CTB_CONV_FWD, "gemm");
  fputs("not a choice\n", f);
  conv_line(f, &deep, CTB_CONV_FWD, "direct");
  conv_line(f, &shallow, 3, "winograd"); /* 3: the direct forward's choice of Winograd */
  conv_line(f, &deep, 3, "direct");
  fclose(f);
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &shallow), CTB_CONV_PATH_WINOGRAD, "stored: Winograd");
  cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &deep), CTB_CONV_PATH_DIRECT, "stored: direct");
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_FWD, &shallow), CTB_CONV_PATH_GEMM, "stored: products");
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_FWD, &deep), CTB_CONV_PATH_DIRECT, "stored: direct");
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_BP_FILTER, &deep), CTB_CONV_PATH_GEMM, "another kind: the rule");
  /* measured on first use, then stored */
  ct__env_override("CLTAPE_CONV", "measure");
  const ctb_window mid = {2, 9, 9, 16, 9, 9, 24, 3, 3, 1, 1, 1, 1, 0};
  cr_expect_eq(ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_FWD, &mid), CTB_CONV_PATH_MEASURE);
  ct_tensor *x = ts_lcg_tensor(ctx, CT_FLOAT32, 4, (const int64_t[]){2, 9, 9, 16}, 1, NULL);
  ct_tensor *w = ts_lcg_tensor(ctx, CT_FLOAT32, 4, (const int64_t[]){3, 3, 16, 24}, 2, NULL);
  ct_tensor *y = NULL, *y2 = NULL;
  cr_assert_eq(ct_conv2d(x, w, NULL, CT_PADDING_SAME, &y), CT_OK, "%s", ct_errmsg());
  const ctb_conv_path_id chosen = ctb_conv_path(ctx, CT_FLOAT32, CTB_CONV_FWD, &mid);
  cr_expect(chosen == CTB_CONV_PATH_DIRECT || chosen == CTB_CONV_PATH_GEMM, "measured once: %d", (int)chosen);
  /* Winograd against the direct kernels: measured on GPUs (the direct path's run measures it),
   * never on CPU devices; then measured here, and stored */
  ct_device_info info;
  OK(ct_context_device(ctx, &info));
  if (info.type == CT_DEVICE_CPU)
    cr_expect_eq(ctb_conv_winograd_path(ctx, CT_FLOAT32, &mid), CTB_CONV_PATH_DIRECT, "a CPU device: not measured");
  ct_tensor *yw = NULL;
  OK(ct_zeros(ctx, CT_FLOAT32, 4, (const int64_t[]){2, 9, 9, 24}, &yw));
  const ctb_conv2d_call mid_call = {ctx, CT_FLOAT32, &mid, x->buf, w->buf, NULL, false, yw->buf};
  OK(ctb_conv_winograd_measure(&mid_call, direct_mid));
  const ctb_conv_path_id wchosen = ctb_conv_winograd_path(ctx, CT_FLOAT32, &mid);
  cr_expect(wchosen == CTB_CONV_PATH_DIRECT || wchosen == CTB_CONV_PATH_WINOGRAD, "measured: %d", (int)wchosen);
  /* the measured result is the convolution (against the direct kernels) */
  ct__env_override("CLTAPE_CONV", "direct");
  cr_assert_eq(ct_conv2d(x, w, NULL, CT_PADDING_SAME, &y2), CT_OK, "%s", ct_errmsg());
  double *a = ts_read(y), *b = ts_read(y2), *c = ts_read(yw);
  for (int64_t i = 0; i < y->size; ++i) {
    cr_expect(fabs(a[i] - b[i]) <= 1e-4, "element %lld", (long long)i);
    cr_expect(fabs(c[i] - b[i]) <= 1e-4, "Winograd's measurement: element %lld", (long long)i);
  }
  free(a), free(b), free(c);
  f = fopen(conv, "r");
  cr_assert(f);
  char line[512], want[128];
  snprintf(want, sizeof want, "%d %d 2 9 9 16 9 9 24 3 3 1 1 1 1 ", (int)CTB_CONV_FWD, (int)CT_FLOAT32);
  char wwant[128];
  snprintf(wwant, sizeof wwant, "3 %d 2 9 9 16 9 9 24 3 3 1 1 1 1 ", (int)CT_FLOAT32);
  bool found = false, wfound = false;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, want, strlen(want)) == 0) found = true;
    if (strncmp(line, wwant, strlen(wwant)) == 0)
      wfound = strstr(line, wchosen == CTB_CONV_PATH_WINOGRAD ? " winograd" : " direct") != NULL;
  }
  fclose(f);
  cr_expect(found, "the measured choice is in %s", conv);
  cr_expect(wfound, "the measured Winograd choice is in %s", conv);
  ct__env_override("CLTAPE_CONV", NULL);
  ct_tensor *all[] = {x, w, y, y2, yw};
  ct_tensor_free_n(all, 5);
  ct_context_free(ctx);
}
