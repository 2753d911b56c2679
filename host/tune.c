/* tune.c — the matmul tuning search: which engine runs a device's products (CLBlast or the tiled
 * kernels of kernels/matmul.cl), the tiled kernels' tile, and CLBlast's GEMM kernel parameters.
 * What is kept and applied (the sets, the on-disk store) is in tune_store.c.
 *
 * CLBlast's GEMM routine reads seven parameter sets from its database ("kernels" there): Xgemm
 * (the fast kernel of the "indirect" path, which needs padded, pre-transposed operands), Copy,
 * Pad, Transpose and Padtranspose (the pre/post-processing of that path), XgemmDirect (the single
 * kernel of the "direct" path) and GemmRoutine (XGEMM_MIN_INDIRECT_SIZE: the indirect path runs
 * when m*n*k >= its cube). CLBlastOverrideParameters replaces one set for a device and precision
 * for the whole process; the next GEMM builds a program with them. An eighth set is ours: Tile
 * (ENGINE, and the tile: MR, NV, VW, PACKA, WG, BN, SMALL), read by ctb_tune_plan for every
 * product.
 *
 * The search times GEMMs through ctb_gemm_cl, exactly as ct_matmul issues them: the tile first
 * (the tiled kernels running), then CLBlast's sets with CLBlast running and one path forced at a
 * time through XGEMM_MIN_INDIRECT_SIZE: Xgemm (indirect forced), the transpose and pad kernels of
 * the indirect path, XgemmDirect (direct forced), then the switch size from a sweep of both paths,
 * and last the engine, from both engines' winners timed in turns. Each stage starts from the
 * values in force (the store's, else the defaults), tries a short list of sets that suit CPUs and
 * GPUs, then samples at random and around the best so far until its share of the budget is spent.
 * A candidate's time only counts after its results matched a host reference (sampled entries of
 * the timed product and a whole odd-shaped product); the final sets of both engines are checked
 * again on every transpose combination and on a batched product before they are kept.
 */
#define _POSIX_C_SOURCE 200809L
#include "tune.h"
#include <errno.h>
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

/* Sets tried after the values in force. Xgemm: large work per work-item with wide vectors and
 * local memory (CPUs), then the shapes that suit GPUs. */
static const uint32_t CUR_XGEMM[][TK_MAXP] = {
    /* GEMMK KREG KWG KWI MDIMA MDIMC MWG NDIMB NDIMC NWG SA SB STRM STRN VWM VWN */
    {0, 1, 32, 4, 8, 8, 64, 8, 8, 64, 1, 1, 0, 0, 8, 8},
    {0, 1, 32, 2, 8, 8, 64, 8, 8, 64, 1, 1, 0, 0, 8, 8},
    {0, 1, 16, 8, 8, 8, 64, 8, 8, 64, 1, 1, 0, 0, 8, 8},
    {0, 1, 32, 4, 8, 8, 64, 8, 8, 32, 1, 1, 0, 0, 8, 4},
    {0, 1, 32, 4, 8, 8, 32, 8, 8, 32, 1, 1, 0, 0, 4, 4},
    {0, 1, 32, 2, 8, 8, 128, 8, 8, 32, 1, 1, 0, 0, 16, 4},
    {0, 1, 32, 2, 16, 16, 128, 16, 16, 128, 1, 1, 0, 0, 8, 8},
    {1, 8, 1, 1, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 8, 8},
    {0, 1, 32, 2, 16, 16, 64, 16, 16, 64, 1, 1, 1, 1, 4, 4},
    {0, 1, 16, 2, 16, 16, 128, 8, 8, 128, 1, 1, 0, 0, 4, 4},
};
static const uint32_t CUR_DIRECT[][TK_MAXP] = {
    /* KWID MDIMAD MDIMCD NDIMBD NDIMCD PADA PADB VWMD VWND WGD */
    {2, 8, 8, 8, 8, 0, 0, 4, 4, 32},
    {2, 8, 8, 8, 8, 1, 1, 4, 4, 32},
    {2, 4, 4, 8, 8, 0, 0, 8, 4, 32},
    {2, 8, 8, 16, 16, 1, 1, 4, 4, 64},
    {2, 8, 8, 8, 8, 0, 0, 2, 2, 16},
    {2, 16, 16, 16, 16, 1, 1, 4, 4, 64},
    {2, 16, 16, 8, 8, 1, 1, 2, 4, 32},
};
static const uint32_t CUR_TRANSPOSE[][TK_MAXP] = {
    /* TRA_DIM TRA_PAD TRA_SHUFFLE TRA_WPT */
    {8, 0, 0, 8}, {16, 1, 0, 4}, {8, 1, 1, 8}, {16, 0, 1, 2},
};
static const uint32_t CUR_PADTRANSPOSE[][TK_MAXP] = {
    /* PADTRA_PAD PADTRA_TILE PADTRA_WPT */
    {1, 16, 4}, {0, 8, 8}, {0, 16, 2},
};
static const uint32_t CUR_PAD[][TK_MAXP] = {
    /* PAD_DIMX PAD_DIMY PAD_WPTX PAD_WPTY */
    {32, 8, 4, 2}, {16, 16, 2, 2}, {64, 4, 4, 4},
};
static const uint32_t CUR_TILE[][TK_MAXP] = {
    /* ENGINE MR NV VW PACKA WG BN SMALL: 12 or 16 vector accumulators for 16 registers, bands of
     * column panels, then wider tiles */
    {1, 6, 2, 8, 1, 1, 1, 16384}, {1, 6, 2, 8, 1, 1, 2, 16384}, {1, 6, 2, 8, 1, 1, 4, 16384},
    {1, 6, 2, 8, 0, 1, 2, 16384}, {1, 4, 3, 8, 1, 1, 2, 16384}, {1, 8, 2, 8, 1, 1, 2, 16384},
    {1, 6, 2, 8, 1, 8, 2, 16384}, {1, 6, 2, 8, 1, 64, 1, 16384}, {1, 6, 2, 8, 1, 1, 1, 65536},
    {1, 4, 2, 8, 1, 1, 1, 16384}, {1, 6, 2, 4, 1, 1, 2, 16384}, {1, 12, 2, 8, 1, 1, 1, 16384},
    {1, 8, 3, 8, 1, 1, 1, 16384}, {1, 4, 4, 4, 1, 1, 2, 16384}, {1, 6, 4, 4, 1, 1, 1, 4096},
    /* 64-byte vectors (AVX-512; skipped where the device's vectors are narrower): 24 to 28 of its
     * 32 registers as accumulators, bands, groups of tiles */
    {1, 12, 2, 16, 1, 1, 1, 16384}, {1, 12, 2, 16, 1, 1, 4, 16384}, {1, 14, 2, 16, 1, 1, 2, 16384},
    {1, 6, 4, 16, 1, 1, 2, 16384}, {1, 8, 3, 16, 1, 1, 2, 16384}, {1, 12, 2, 16, 1, 8, 2, 16384},
    {1, 12, 2, 16, 0, 1, 2, 16384}, {1, 8, 2, 16, 1, 1, 4, 16384},
};
#define NCUR(a) ((int)(sizeof(a) / sizeof *(a)))

/* adds s's tile unless the same kernel (rows, vectors, width, packing, band) is listed already */
static int add_tile(const tk_set *s, bool is_default, ctb_gemm_plan *out, bool *defaults, int n, int cap) {
  if (n >= cap) return n;
  tk_plan_of(s, &out[n]);
  for (int j = 0; j < n; ++j)
    if (out[j].mr == out[n].mr && out[j].nv == out[n].nv && out[j].vw == out[n].vw &&
        out[j].pack_a == out[n].pack_a && out[j].bn == out[n].bn)
      return n;
  defaults[n] = is_default;
  return n + 1;
}

int ctb_tune_tiles(const ct_device_info *info, ct_dtype dt, ctb_gemm_plan *out, bool *is_default, int cap) {
  int d = dt == CT_FLOAT64, n = 0;
  size_t esz = d ? 8 : 4;
  tk_set s = tk_generic_set(info, d);
  n = add_tile(&s, true, out, is_default, n, cap);
  /* the tuner's first candidates, then every rows x vectors x width its search can reach */
  for (int i = 0; i < NCUR(CUR_TILE); ++i) {
    memcpy(s.v[TK_TILE], CUR_TILE[i], sizeof s.v[TK_TILE]);
    if (tk_valid(TK_TILE, s.v[TK_TILE], esz, info)) n = add_tile(&s, false, out, is_default, n, cap);
  }
  static const uint32_t VWS[] = {2, 4, 8, 16};
  for (uint32_t mr = 1; mr <= 16; ++mr)
    for (uint32_t nv = 1; nv <= 4; ++nv)
      for (int w = 0; w < 4; ++w) {
        const uint32_t v[TK_MAXP] = {CTB_GEMM_TILE, mr, nv, VWS[w], 1, 1, 1, 16384};
        if (!tk_valid(TK_TILE, v, esz, info)) continue;
        memcpy(s.v[TK_TILE], v, sizeof v);
        n = add_tile(&s, false, out, is_default, n, cap);
      }
  return n;
}

/* ---- the search ---------------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint32_t pick(uint64_t *s, const uint32_t *vals, int n) { return vals[rnd(s) % (uint64_t)n]; }

typedef struct {
  int m, n, k;
  bool ta, tb;
} tk_problem;

#define VAL_M 67
#define VAL_N 45
#define VAL_K 37
#define FORCE_INDIRECT 1u
#define FORCE_DIRECT (1u << 20)

typedef struct {
  ct_context *ctx;
  const ct_tune_options *opt;
  int d;
  ct_dtype dt;
  size_t esz;
  int S;
  cl_mem a, b, c;      /* S*S elements each */
  void *ha, *hb, *hc;  /* host copies of a and b, read-back of c */
  tk_set cur;          /* every set, as in force once the search ends */
  ctb_gemm_plan run_plan; /* how run_problem issues products (from the set last evaluated) */
  ct_tune_result *res;
  uint64_t rng;
  bool fatal;          /* a failure outside any candidate: stop */
  ct_status fatal_status;
  const char *journal;   /* names the candidate being built and run ("" = none) */
  char *const *crashed;  /* "<dtype> <Kernel> NAME=value ..." of candidates that crashed a run */
  int ncrashed;
  /* candidates of the running stage */
  uint32_t (*tried)[TK_MAXP];
  double *score;       /* seconds of the stage's problems, < 0 when not usable */
  int ntried, cap;
} tuner;

static void say(const tuner *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void say(const tuner *t, const char *fmt, ...) {
  char line[1400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (t->opt->progress) t->opt->progress(line, t->opt->progress_user);
  else ct__log(CT_LOG_DEBUG, "tune: %s", line);
}

static double getv(const tuner *t, const void *p, size_t i) {
  return t->d ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

/* |got - exact| within the rounding a k-term dot product may accumulate. */
static bool entry_ok(const tuner *t, const tk_problem *p, const void *hc, int ldc, int i, int j, int64_t batch_off) {
  double s = 0, sa = 0;
  const int m = p->m, n = p->n, k = p->k;
  for (int q = 0; q < k; ++q) {
    double x = getv(t, t->ha, (size_t)(batch_off * m * k + (p->ta ? (int64_t)q * m + i : (int64_t)i * k + q)));
    double y = getv(t, t->hb, (size_t)(batch_off * k * n + (p->tb ? (int64_t)j * k + q : (int64_t)q * n + j)));
    s += x * y;
    sa += fabs(x * y);
  }
  double got = getv(t, hc, (size_t)(batch_off * m * n + (int64_t)i * ldc + j));
  double eps = t->d ? 2.220446e-16 : 1.1920929e-7;
  return isfinite(got) && fabs(got - s) <= (2.0 * k + 16) * eps * sa + 1e-300;
}

static void fail_cl(tuner *t, cl_int err, const char *what) {
  if (!t->fatal) t->fatal_status = CTB_CL_FAIL(t->ctx, err, what);
  t->fatal = true;
}

/* Runs one product into t->c (poisoned with NaN first when `poison`) with t->run_plan. Returns
 * CT_OK or the failure's status (its message in ct_errmsg()). */
static int run_problem(tuner *t, const tk_problem *p, int batch, bool poison) {
  if (poison) {
    double nan64 = NAN;
    float nan32 = NAN;
    cl_int err = clEnqueueFillBuffer(t->ctx->queue, t->c, t->d ? (void *)&nan64 : (void *)&nan32, t->esz, 0,
                                     (size_t)t->S * t->S * t->esz, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
      fail_cl(t, err, "clEnqueueFillBuffer");
      return CT_ERR_OPENCL;
    }
  }
  size_t lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
  return (int)ctb_gemm_cl(t->ctx, t->dt, &t->run_plan, p->ta, p->tb, p->m, p->n, p->k, 1.0, t->a, lda,
                          (size_t)p->m * p->k, t->b, ldb, (size_t)p->k * p->n, 0.0, t->c, p->n, (size_t)p->m * p->n,
                          (size_t)batch);
}

static bool read_c(tuner *t, size_t elems) {
  cl_int err = clEnqueueReadBuffer(t->ctx->queue, t->c, CL_TRUE, 0, elems * t->esz, t->hc, 0, NULL, NULL);
  if (err != CL_SUCCESS) fail_cl(t, err, "clEnqueueReadBuffer");
  return err == CL_SUCCESS;
}

/* Checks a product already in t->c: every entry (full) or a sample plus the last row and column. */
static bool check_problem(tuner *t, const tk_problem *p, int batch, bool full) {
  if (!read_c(t, (size_t)p->m * p->n * batch)) return false;
  for (int b = 0; b < batch; ++b) {
    if (full) {
      for (int i = 0; i < p->m; ++i)
        for (int j = 0; j < p->n; ++j)
          if (!entry_ok(t, p, t->hc, p->n, i, j, b)) return false;
      continue;
    }
    for (int s = 0; s < 48; ++s) {
      int i = (int)(rnd(&t->rng) % (uint64_t)p->m), j = (int)(rnd(&t->rng) % (uint64_t)p->n);
      if (!entry_ok(t, p, t->hc, p->n, i, j, b)) return false;
    }
    for (int i = 0; i < p->m; i += (p->m + 15) / 16)
      if (!entry_ok(t, p, t->hc, p->n, i, p->n - 1, b)) return false;
    for (int j = 0; j < p->n; j += (p->n + 15) / 16)
      if (!entry_ok(t, p, t->hc, p->n, p->m - 1, j, b)) return false;
    if (!entry_ok(t, p, t->hc, p->n, p->m - 1, p->n - 1, b)) return false;
  }
  return true;
}

/* Minimum seconds of one product over several runs (the first run is not timed). */
static double time_problem(tuner *t, const tk_problem *p, double min_total, int *status) {
  *status = run_problem(t, p, 1, false);
  if (*status != 0) return -1;
  cl_int err = clFinish(t->ctx->queue);
  if (err != CL_SUCCESS) {
    fail_cl(t, err, "clFinish");
    return -1;
  }
  double best = INFINITY, total = 0;
  for (int r = 0; r < 200 && (r < 3 || total < min_total); ++r) {
    double t0 = ctb_now_s();
    *status = run_problem(t, p, 1, false);
    if (*status != 0) return -1;
    err = clFinish(t->ctx->queue);
    if (err != CL_SUCCESS) {
      fail_cl(t, err, "clFinish");
      return -1;
    }
    double dt = ctb_now_s() - t0;
    total += dt;
    if (dt < best) best = dt;
  }
  return best;
}

static double gflops(const tk_problem *p, double secs) { return 2.0 * p->m * p->n * (double)p->k / secs * 1e-9; }

typedef enum { EV_OK, EV_FAILED, EV_WRONG } ev_result;

/* Applies `s`, checks its results and times the problems. *secs: the sum of the minimum times. */
static ev_result evaluate(tuner *t, const tk_set *s, const tk_problem *probs, int nprobs, bool check, double *secs,
                          double *build_s, int *status) {
  int bad = 0;
  *status = tk_apply(t->ctx, t->d, s, &bad);
  if (*status != 0) {
    ct__error(t->ctx, CT_ERR_OPENCL, "CLBlast refused the %s parameters (status %d)", KDESC[bad].kernel, *status);
    return EV_FAILED;
  }
  tk_plan_of(s, &t->run_plan);
  *build_s = 0;
  if (check) {
    /* the first run builds the program: time it to tell the build cost */
    double t0 = ctb_now_s();
    *status = run_problem(t, &probs[0], 1, true);
    if (*status != 0) return EV_FAILED;
    cl_int err = clFinish(t->ctx->queue);
    if (err != CL_SUCCESS) {
      fail_cl(t, err, "clFinish");
      return EV_FAILED;
    }
    *build_s = ctb_now_s() - t0;
    if (!check_problem(t, &probs[0], 1, false)) return EV_WRONG;
    tk_problem odd = {VAL_M, VAL_N, VAL_K, false, false};
    *status = run_problem(t, &odd, 1, true);
    if (*status != 0) return EV_FAILED;
    if (!check_problem(t, &odd, 1, true)) return EV_WRONG;
  }
  double total = 0;
  for (int i = 0; i < nprobs; ++i) {
    double sec = time_problem(t, &probs[i], check ? 0.25 : 0.6, status);
    if (sec < 0) return EV_FAILED;
    total += sec;
  }
  *secs = total;
  return EV_OK;
}

/* ---- the crash journal ----
 * A candidate can crash the process: a kernel that compiles and passes every constraint known
 * here may still write out of bounds on some driver. Before a candidate first runs, its line goes
 * to "<store>.trying"; a run that ends removes the file. The next run that finds it moves the line
 * to "<store>.crashed", and candidates listed there are never tried again. */
static void journal_path(const char *store, const char *ext, char *out, size_t cap) {
  out[0] = 0;
  size_t n = strlen(store);
  size_t e = strlen(ext);
  if (n < 5 || n - 5 + e + 1 > cap) return;
  memcpy(out, store, n - 5); /* store ends in ".tune" */
  memcpy(out + n - 5, ext, e + 1);
}

static void candidate_line(const tuner *t, int kid, const uint32_t *v, char *buf, size_t cap) {
  char desc[1024];
  tk_format(kid, v, desc, sizeof desc);
  snprintf(buf, cap, "%s %s", DT_NAMES[t->d], desc);
}

static void journal_write(const tuner *t, int kid, const uint32_t *v) {
  if (!t->journal[0]) return;
  char line[1100];
  candidate_line(t, kid, v, line, sizeof line);
  FILE *f = ct__fopen_regular(t->journal, 'w', CT__OPEN_NOFOLLOW | CT__OPEN_PRIVATE, NULL);
  if (!f) return;
  fprintf(f, "%s\n", line);
  fclose(f);
}

/* Moves a left-over journal line to the crash list; returns the list's lines (free with
 * free_lines). */
static char **crash_list(const char *store, int *count) {
  char jpath[1100], cpath[1100];
  *count = 0;
  journal_path(store, ".trying", jpath, sizeof jpath);
  journal_path(store, ".crashed", cpath, sizeof cpath);
  if (!jpath[0] || !cpath[0]) return NULL;
  FILE *j = ct__fopen_regular(jpath, 'r', CT__OPEN_NOFOLLOW | CT__OPEN_PRIVATE, NULL);
  if (j) {
    char line[1100];
    if (fgets(line, sizeof line, j) && strchr(line, '\n')) {
      FILE *c = ct__fopen_regular(cpath, 'a', CT__OPEN_NOFOLLOW | CT__OPEN_PRIVATE, NULL);
      if (c) {
        fputs(line, c);
        fclose(c);
      }
      line[strcspn(line, "\n")] = 0;
      ct__log(CT_LOG_WARNING, "an earlier tuning run stopped while running \"%s\"; it will not be tried again", line);
    }
    fclose(j);
    unlink(jpath);
  }
  FILE *c = ct__fopen_regular(cpath, 'r', CT__OPEN_NOFOLLOW | CT__OPEN_PRIVATE, NULL);
  if (!c) return NULL;
  char **lines = NULL, line[1100];
  int n = 0, cap = 0;
  while (fgets(line, sizeof line, c) && n < 4096) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0]) continue;
    if (n == cap) {
      int nc = cap ? cap * 2 : 16;
      char **nl = realloc(lines, sizeof *nl * (size_t)nc);
      if (!nl) break;
      lines = nl;
      cap = nc;
    }
    if (!(lines[n] = strdup(line))) break;
    n++;
  }
  fclose(c);
  *count = n;
  return lines;
}

static void free_lines(char **lines, int n) {
  for (int i = 0; i < n; ++i) free(lines[i]);
  free(lines);
}

/* ---- candidate generation ---- */
static bool tried_before(const tuner *t, int kid, const uint32_t *v) {
  for (int i = 0; i < t->ntried; ++i)
    if (memcmp(t->tried[i], v, sizeof(uint32_t) * TK_MAXP) == 0) return true;
  if (t->ncrashed) {
    char line[1100];
    candidate_line(t, kid, v, line, sizeof line);
    for (int i = 0; i < t->ncrashed; ++i)
      if (strcmp(t->crashed[i], line) == 0) return true;
  }
  return false;
}

static void random_set(tuner *t, int kid, uint32_t *v) {
  static const uint32_t WG[] = {16, 32, 64, 128}, KW[] = {16, 32}, DIMC[] = {4, 8, 16, 32}, KWI[] = {2, 4, 8},
                        VW[] = {2, 4, 8, 16}, BIT[] = {0, 1}, KREG[] = {1, 2, 4, 8, 16}, WGD[] = {16, 32, 64},
                        KWID[] = {2, 4, 8, 16}, VWD[] = {1, 2, 4, 8, 16};
  uint64_t *r = &t->rng;
  memset(v, 0, sizeof(uint32_t) * TK_MAXP);
  if (kid == TK_XGEMM) {
    bool k1 = rnd(r) % 5 == 0;
    v[XG_GEMMK] = k1;
    v[XG_MWG] = pick(r, WG, 4);
    v[XG_NWG] = pick(r, WG, 4);
    v[XG_MDIMC] = pick(r, DIMC, 4);
    v[XG_NDIMC] = pick(r, DIMC, 4);
    v[XG_VWM] = pick(r, VW, 4);
    v[XG_VWN] = pick(r, VW, 4);
    if (k1) {
      v[XG_KWG] = v[XG_KWI] = 1;
      v[XG_MDIMA] = v[XG_MDIMC];
      v[XG_NDIMB] = v[XG_NDIMC];
      v[XG_KREG] = pick(r, KREG, 5);
    } else {
      v[XG_KREG] = 1;
      v[XG_KWG] = pick(r, KW, 2);
      v[XG_KWI] = pick(r, KWI, 3);
      v[XG_MDIMA] = rnd(r) % 2 ? v[XG_MDIMC] : pick(r, DIMC, 4);
      v[XG_NDIMB] = rnd(r) % 2 ? v[XG_NDIMC] : pick(r, DIMC, 4);
      v[XG_SA] = pick(r, BIT, 2);
      v[XG_SB] = pick(r, BIT, 2);
      v[XG_STRM] = pick(r, BIT, 2);
      v[XG_STRN] = pick(r, BIT, 2);
    }
  } else if (kid == TK_DIRECT) {
    v[XD_WGD] = pick(r, WGD, 3);
    v[XD_MDIMCD] = pick(r, DIMC, 4);
    v[XD_NDIMCD] = pick(r, DIMC, 4);
    v[XD_MDIMAD] = rnd(r) % 2 ? v[XD_MDIMCD] : pick(r, DIMC, 4);
    v[XD_NDIMBD] = rnd(r) % 2 ? v[XD_NDIMCD] : pick(r, DIMC, 4);
    v[XD_KWID] = pick(r, KWID, 4);
    v[XD_VWMD] = pick(r, VWD, 5);
    v[XD_VWND] = pick(r, VWD, 5);
    v[XD_PADA] = pick(r, BIT, 2);
    v[XD_PADB] = pick(r, BIT, 2);
  } else if (kid == TK_TILE) {
    static const uint32_t MR[] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16}, NV[] = {1, 2, 3, 4}, TVW[] = {2, 4, 8, 16},
                          TWG[] = {1, 2, 4, 8, 16, 32, 64},
                          TBN[] = {1, 2, 4, 8};
    v[TL_ENGINE] = CTB_GEMM_TILE;
    v[TL_MR] = pick(r, MR, 12);
    v[TL_NV] = pick(r, NV, 4);
    v[TL_VW] = pick(r, TVW, 4);
    v[TL_PACKA] = pick(r, BIT, 2);
    v[TL_WG] = pick(r, TWG, 7);
    v[TL_BN] = pick(r, TBN, 4);
    v[TL_SMALL] = t->cur.v[TK_TILE][TL_SMALL]; /* choose_small sets it */
  }
}

/* One step away from `from`: one parameter doubled, halved or flipped (a work-group extent may
 * drag its loading twin along). */
static void neighbour(tuner *t, int kid, const uint32_t *from, uint32_t *v) {
  memcpy(v, from, sizeof(uint32_t) * TK_MAXP);
  int n = KDESC[kid].n;
  if (kid == TK_TILE) { /* the engine and SMALL stay; rows and vectors move by one, the rest double or halve */
    int i = 1 + (int)(rnd(&t->rng) % (uint64_t)(n - 2));
    bool up = rnd(&t->rng) % 2;
    if (i == TL_PACKA) v[i] ^= 1u;
    else if (i == TL_MR || i == TL_NV) v[i] = up ? v[i] + 1 : (v[i] > 1 ? v[i] - 1 : 1);
    else v[i] = up ? v[i] * 2 : (v[i] > 1 ? v[i] / 2 : 1);
    return;
  }
  int i = (int)(rnd(&t->rng) % (uint64_t)n);
  bool flag = (kid == TK_XGEMM && (i == XG_SA || i == XG_SB || i == XG_STRM || i == XG_STRN || i == XG_GEMMK)) ||
              (kid == TK_DIRECT && (i == XD_PADA || i == XD_PADB));
  if (flag) v[i] ^= 1u;
  else if (rnd(&t->rng) % 2) v[i] *= 2;
  else v[i] = v[i] > 1 ? v[i] / 2 : 1;
  if (kid == TK_XGEMM && rnd(&t->rng) % 2) {
    if (i == XG_MDIMC) v[XG_MDIMA] = v[XG_MDIMC];
    if (i == XG_NDIMC) v[XG_NDIMB] = v[XG_NDIMC];
  }
  if (kid == TK_XGEMM && i == XG_GEMMK) { /* the two kernels have different fixed fields */
    if (v[XG_GEMMK]) {
      v[XG_KWG] = v[XG_KWI] = 1;
      v[XG_SA] = v[XG_SB] = v[XG_STRM] = v[XG_STRN] = 0;
      v[XG_MDIMA] = v[XG_MDIMC];
      v[XG_NDIMB] = v[XG_NDIMC];
      v[XG_KREG] = v[XG_VWN] > 4 ? v[XG_VWN] : 4;
    } else {
      v[XG_KWG] = 32;
      v[XG_KWI] = 2;
      v[XG_KREG] = 1;
    }
  }
}

typedef struct {
  const char *label;
  int kid;
  const uint32_t (*curated)[TK_MAXP];
  int ncurated;
  bool explore;          /* go on with random and neighbouring sets */
  uint32_t force;        /* XGEMM_MIN_INDIRECT_SIZE while searching a CLBlast set (0: the tile's stage) */
  tk_problem probs[3];   /* timed for every candidate */
  int nprobs;
  tk_problem rerank[3];  /* timed again for the best few (none: probs) */
  int nrerank;
} tk_stage;

static bool add_tried(tuner *t, const uint32_t *v, double score) {
  if (t->ntried == t->cap) {
    int nc = t->cap ? t->cap * 2 : 64;
    uint32_t(*nt)[TK_MAXP] = realloc(t->tried, sizeof *nt * (size_t)nc);
    if (!nt) return false;
    t->tried = nt;
    double *ns = realloc(t->score, sizeof *ns * (size_t)nc);
    if (!ns) return false;
    t->score = ns;
    t->cap = nc;
  }
  memcpy(t->tried[t->ntried], v, sizeof(uint32_t) * TK_MAXP);
  t->score[t->ntried++] = score;
  return true;
}

static double stage_flops(const tk_stage *sg) {
  double f = 0;
  for (int i = 0; i < sg->nprobs; ++i) f += 2.0 * sg->probs[i].m * sg->probs[i].n * (double)sg->probs[i].k;
  return f;
}

/* A CLBlast set is searched with CLBlast running the products and one of its paths forced. */
static void stage_force(const tk_stage *sg, tk_set *s) {
  if (!sg->force) { /* the tile's stage: the tiled kernels run the products */
    s->v[TK_TILE][TL_ENGINE] = CTB_GEMM_TILE;
    return;
  }
  s->v[TK_ROUTINE][0] = sg->force;
  s->v[TK_TILE][TL_ENGINE] = CTB_GEMM_CLBLAST;
}

/* Times the stage's problems (or `probs`) with `v` as the stage's set; no check. */
static double retime(tuner *t, const tk_stage *sg, const uint32_t *v, const tk_problem *probs, int nprobs) {
  tk_set s = t->cur;
  memcpy(s.v[sg->kid], v, sizeof(uint32_t) * TK_MAXP);
  stage_force(sg, &s);
  double secs = 0, build = 0;
  int status = 0;
  return evaluate(t, &s, probs, nprobs, false, &secs, &build, &status) == EV_OK ? secs : -1;
}

/* Searches one set. The machine may be busy and its load drift, so a candidate is compared with
 * the best so far timed right after it: its score is (its time / the best's time, both now) times
 * the best's score, which keeps every score in the units of the first measurement. The best three
 * are then timed again in turns before one is kept. */
static void run_stage(tuner *t, const tk_stage *sg, double deadline) {
  const int kid = sg->kid;
  t->ntried = 0;
  int best = -1;
  for (int step = 0; !t->fatal; ++step) {
    if (step > 0 && ctb_now_s() >= deadline) break;
    uint32_t v[TK_MAXP];
    bool found = false;
    if (step == 0) { /* the values in force */
      memcpy(v, t->cur.v[kid], sizeof v);
    } else if (step - 1 < sg->ncurated) {
      memcpy(v, sg->curated[step - 1], sizeof v);
      if (!tk_valid(kid, v, t->esz, &t->ctx->info) || tried_before(t, kid, v)) continue;
    } else if (sg->explore) {
      for (int attempt = 0; attempt < 2000 && !found; ++attempt) {
        if (best >= 0 && rnd(&t->rng) % 3 != 0) neighbour(t, kid, t->tried[best], v);
        else random_set(t, kid, v);
        found = tk_valid(kid, v, t->esz, &t->ctx->info) && !tried_before(t, kid, v);
      }
      if (!found) break;
    } else {
      break;
    }
    tk_set s = t->cur;
    memcpy(s.v[kid], v, sizeof v);
    stage_force(sg, &s);
    double secs = 0, build = 0, score = -1;
    int status = 0;
    journal_write(t, kid, v);
    ev_result r = evaluate(t, &s, sg->probs, sg->nprobs, true, &secs, &build, &status);
    char desc[1024];
    tk_format(kid, v, desc, sizeof desc);
    t->res->candidates++;
    if (r == EV_OK) {
      score = secs;
      /* candidate, best, candidate, best: the minimum of each pair of runs */
      double now_best = -1;
      if (best >= 0) {
        now_best = retime(t, sg, t->tried[best], sg->probs, sg->nprobs);
        double again = retime(t, sg, v, sg->probs, sg->nprobs);
        if (again > 0 && again < secs) secs = again;
        double b2 = retime(t, sg, t->tried[best], sg->probs, sg->nprobs);
        if (b2 > 0 && (now_best < 0 || b2 < now_best)) now_best = b2;
      }
      if (now_best > 0) score = secs / now_best * t->score[best];
      say(t, "%s %-6s %3d  %7.2f GFLOP/s  %5.2fx best  (first run %.1f s)  %s", DT_NAMES[t->d], sg->label, step,
          stage_flops(sg) / secs * 1e-9, now_best > 0 ? now_best / secs : 1.0, build, desc);
    } else if (r == EV_WRONG) {
      t->res->rejected++;
      say(t, "%s %-6s %3d  rejected: wrong results  %s", DT_NAMES[t->d], sg->label, step, desc);
    } else {
      t->res->failed++;
      say(t, "%s %-6s %3d  failed: %s  %s", DT_NAMES[t->d], sg->label, step, ct_errmsg(), desc);
    }
    if (!add_tried(t, v, score)) {
      t->fatal = true;
      t->fatal_status = ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tuning: candidate list");
      break;
    }
    if (score > 0 && (best < 0 || score < t->score[best])) best = t->ntried - 1;
  }
  if (best < 0 || t->fatal) return; /* nothing usable: the values in force stay */
  enum { TOP = 4 };
  int top[TOP], ntop = 0;
  for (int pass = 0; pass < TOP; ++pass) {
    int bi = -1;
    for (int i = 0; i < t->ntried; ++i) {
      bool taken = false;
      for (int j = 0; j < ntop; ++j) taken = taken || top[j] == i;
      if (!taken && t->score[i] > 0 && (bi < 0 || t->score[i] < t->score[bi])) bi = i;
    }
    if (bi >= 0) top[ntop++] = bi;
  }
  const tk_problem *rp = sg->nrerank ? sg->rerank : sg->probs;
  int nrp = sg->nrerank ? sg->nrerank : sg->nprobs;
  double best_secs = INFINITY;
  if (ntop > 1) {
    double mins[TOP] = {INFINITY, INFINITY, INFINITY, INFINITY};
    for (int round = 0; round < 4 && !t->fatal; ++round)
      for (int j = 0; j < ntop && !t->fatal; ++j) {
        double secs = retime(t, sg, t->tried[top[j]], rp, nrp);
        if (secs > 0 && secs < mins[j]) mins[j] = secs;
      }
    for (int j = 0; j < ntop; ++j)
      if (mins[j] < best_secs) {
        best_secs = mins[j];
        best = top[j];
      }
  }
  memcpy(t->cur.v[kid], t->tried[best], sizeof(uint32_t) * TK_MAXP);
  char desc[1024];
  tk_format(kid, t->cur.v[kid], desc, sizeof desc);
  double flops = 0;
  for (int i = 0; i < nrp; ++i) flops += 2.0 * rp[i].m * rp[i].n * (double)rp[i].k;
  say(t, "%s %-6s best %7.2f GFLOP/s  %s", DT_NAMES[t->d], sg->label,
      isfinite(best_secs) ? flops / best_secs * 1e-9 : stage_flops(sg) / t->score[best] * 1e-9, desc);
}

/* Sweeps cubes with either path forced and returns the switch size: the smallest size from which
 * the indirect path wins at every larger size measured. */
static uint32_t choose_switch(tuner *t) {
  static const int SIZES[] = {32, 48, 64, 96, 128, 192, 256, 320, 384, 512, 640, 768, 1024, 1536, 2048, 3072, 4096};
  enum { NS = (int)(sizeof SIZES / sizeof *SIZES) };
  double dir[NS], ind[NS];
  int ns = 0;
  while (ns < NS && SIZES[ns] <= t->S) ns++;
  tk_set sets[2] = {t->cur, t->cur};
  sets[0].v[TK_ROUTINE][0] = FORCE_DIRECT;
  sets[1].v[TK_ROUTINE][0] = FORCE_INDIRECT;
  sets[0].v[TK_TILE][TL_ENGINE] = sets[1].v[TK_TILE][TL_ENGINE] = CTB_GEMM_CLBLAST;
  /* both paths in turns at each size, twice, so that a change of load hits both alike */
  for (int i = 0; i < ns; ++i) {
    tk_problem p = {SIZES[i], SIZES[i], SIZES[i], false, false};
    dir[i] = ind[i] = INFINITY;
    for (int round = 0; round < 2; ++round)
      for (int path = 0; path < 2; ++path) {
        double secs = 0, build = 0;
        int status = 0;
        ev_result r = evaluate(t, &sets[path], &p, 1, i == 0 && round == 0, &secs, &build, &status);
        if (t->fatal) return t->cur.v[TK_ROUTINE][0];
        if (r == EV_WRONG)
          say(t, "%s switch: the %s path gives wrong results", DT_NAMES[t->d], path ? "indirect" : "direct");
        double *slot = path ? &ind[i] : &dir[i];
        if (r == EV_OK && secs < *slot) *slot = secs;
      }
  }
  int from = ns; /* indirect wins from here on */
  for (int i = ns - 1; i >= 0 && ind[i] <= dir[i]; --i) from = i;
  for (int i = 0; i < ns; ++i) {
    tk_problem p = {SIZES[i], SIZES[i], SIZES[i], false, false};
    say(t, "%s switch %5d^3  direct %7.2f  indirect %7.2f GFLOP/s", DT_NAMES[t->d], SIZES[i], gflops(&p, dir[i]),
        gflops(&p, ind[i]));
  }
  if (from == ns) return (uint32_t)(2 * t->S); /* direct won everywhere measured */
  return (uint32_t)SIZES[from];
}

/* Seconds per product of `reps` products enqueued back to back and waited for once, as a training
 * step issues them (the best of three such runs); < 0 on failure. */
static double time_pipelined(tuner *t, const tk_problem *p, int reps) {
  double best = INFINITY;
  for (int round = 0; round < 3; ++round) {
    double t0 = ctb_now_s();
    for (int i = 0; i < reps; ++i)
      if (run_problem(t, p, 1, false) != 0) return -1;
    cl_int err = clFinish(t->ctx->queue);
    if (err != CL_SUCCESS) {
      fail_cl(t, err, "clFinish");
      return -1;
    }
    double dt = (ctb_now_s() - t0) / reps;
    if (dt < best) best = dt;
  }
  return best;
}

/* Sweeps products of 256 x n by 256 x 256 (n from 16 to 256; smaller with a smaller timing size)
 * with the tile in force, B read in place and B packed, in turns, and returns SMALL: the largest
 * B (k * n elements) up to which reading in place was faster at every size measured. The products
 * are timed enqueued back to back: a launch's fixed cost then overlaps the previous product. */
static uint32_t choose_small(tuner *t) {
  static const int NS[] = {16, 32, 64, 128, 256};
  enum { NN = (int)(sizeof NS / sizeof *NS) };
  const int mk = t->S < 256 ? t->S : 256;
  tk_set sets[2] = {t->cur, t->cur};
  sets[0].v[TK_TILE][TL_ENGINE] = sets[1].v[TK_TILE][TL_ENGINE] = CTB_GEMM_TILE;
  sets[0].v[TK_TILE][TL_SMALL] = 1u << 20; /* in place */
  sets[1].v[TK_TILE][TL_SMALL] = 0;        /* packed */
  double secs[NN][2];
  int nn = 0;
  while (nn < NN && NS[nn] <= t->S) nn++;
  for (int i = 0; i < nn; ++i) {
    tk_problem p = {mk, NS[i], mk, false, false};
    secs[i][0] = secs[i][1] = INFINITY;
    for (int round = 0; round < 2; ++round)
      for (int way = 0; way < 2; ++way) {
        double s = 0, build = 0;
        int status = 0;
        /* applies the set, checks its results (first round) and builds its programs */
        ev_result r = evaluate(t, &sets[way], &p, 1, round == 0, &s, &build, &status);
        if (t->fatal) return t->cur.v[TK_TILE][TL_SMALL];
        if (r == EV_OK) s = time_pipelined(t, &p, 20);
        if (t->fatal) return t->cur.v[TK_TILE][TL_SMALL];
        if (r == EV_OK && s > 0 && s < secs[i][way]) secs[i][way] = s;
      }
  }
  uint32_t small = 0;
  for (int i = 0; i < nn && secs[i][0] <= secs[i][1]; ++i) small = (uint32_t)(mk * NS[i]);
  for (int i = 0; i < nn; ++i)
    say(t, "%s small %dx%dx%d  in place %7.1f us  packed %7.1f us", DT_NAMES[t->d], mk, NS[i], mk,
        secs[i][0] * 1e6, secs[i][1] * 1e6);
  say(t, "%s small  B read in place up to %u elements", DT_NAMES[t->d], (unsigned)small);
  return small;
}

/* Times the best tile against the best CLBlast sets on a square product and two of the shapes
 * of a layer's gradients, in turns, and returns the faster engine. */
static uint32_t choose_engine(tuner *t) {
  const int S = t->S;
  const tk_problem probs[3] = {{S, S, S, false, false}, {S / 4, S / 4, S, false, true}, {S, S / 4, S / 4, true, false}};
  tk_set sets[2] = {t->cur, t->cur};
  sets[0].v[TK_TILE][TL_ENGINE] = CTB_GEMM_CLBLAST;
  sets[1].v[TK_TILE][TL_ENGINE] = CTB_GEMM_TILE;
  double best[2] = {INFINITY, INFINITY};
  for (int round = 0; round < 2; ++round)
    for (int e = 0; e < 2; ++e) {
      double secs = 0, build = 0;
      int status = 0;
      ev_result r = evaluate(t, &sets[e], probs, 3, round == 0, &secs, &build, &status);
      if (t->fatal) return t->cur.v[TK_TILE][TL_ENGINE];
      if (r == EV_OK && secs < best[e]) best[e] = secs;
    }
  double flops = 0;
  for (int i = 0; i < 3; ++i) flops += 2.0 * probs[i].m * probs[i].n * (double)probs[i].k;
  say(t, "%s engine  CLBlast %7.2f  tiled %7.2f GFLOP/s", DT_NAMES[t->d], flops / best[0] * 1e-9,
      flops / best[1] * 1e-9);
  if (!isfinite(best[0]) && !isfinite(best[1])) return t->cur.v[TK_TILE][TL_ENGINE];
  return best[1] <= best[0] ? CTB_GEMM_TILE : CTB_GEMM_CLBLAST;
}

/* The final check: both paths, every transpose combination, a batched product. */
static bool final_check(tuner *t, const tk_set *s) {
  int bad = 0;
  if (tk_apply(t->ctx, t->d, s, &bad) != 0) return false;
  tk_plan_of(s, &t->run_plan);
  uint32_t sw = s->v[TK_ROUTINE][0];
  for (int combo = 0; combo < 4; ++combo) {
    tk_problem p = {VAL_M, VAL_N, VAL_K, combo & 1, (combo >> 1) & 1};
    if (run_problem(t, &p, 1, true) != 0 || !check_problem(t, &p, 1, true)) return false;
    int big = (int)sw + 3; /* the indirect path, where it fits in the buffers */
    if (big <= t->S) {
      tk_problem q = {big, big - 2, big + 1 <= t->S ? big + 1 : big, combo & 1, (combo >> 1) & 1};
      if (run_problem(t, &q, 1, true) != 0 || !check_problem(t, &q, 1, false)) return false;
    }
  }
  tk_problem p = {VAL_M - 20, VAL_N, VAL_K, false, true};
  if ((int64_t)3 * VAL_M * VAL_K > (int64_t)t->S * t->S) return true;
  return run_problem(t, &p, 3, true) == 0 && check_problem(t, &p, 3, true);
}

static void tuner_free(tuner *t) {
  if (t->a) clReleaseMemObject(t->a);
  if (t->b) clReleaseMemObject(t->b);
  if (t->c) clReleaseMemObject(t->c);
  free(t->ha);
  free(t->hb);
  free(t->hc);
  free(t->tried);
  free(t->score);
}

static ct_status tuner_setup(tuner *t) {
  size_t elems = (size_t)t->S * t->S, bytes = elems * t->esz;
  t->ha = malloc(bytes);
  t->hb = malloc(bytes);
  t->hc = malloc(bytes);
  if (!t->ha || !t->hb || !t->hc) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "tuning: host operands");
  for (size_t i = 0; i < elems; ++i) {
    double x = (double)(rnd(&t->rng) >> 11) * 0x1.0p-53 * 2 - 1, y = (double)(rnd(&t->rng) >> 11) * 0x1.0p-53 * 2 - 1;
    if (t->d) {
      ((double *)t->ha)[i] = x;
      ((double *)t->hb)[i] = y;
    } else {
      ((float *)t->ha)[i] = (float)x;
      ((float *)t->hb)[i] = (float)y;
    }
  }
  cl_int err;
  t->a = clCreateBuffer(t->ctx->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, t->ha, &err);
  if (err != CL_SUCCESS) return t->a = NULL, CTB_CL_FAIL(t->ctx, err, "clCreateBuffer (tuning)");
  t->b = clCreateBuffer(t->ctx->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, t->hb, &err);
  if (err != CL_SUCCESS) return t->b = NULL, CTB_CL_FAIL(t->ctx, err, "clCreateBuffer (tuning)");
  t->c = clCreateBuffer(t->ctx->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
  if (err != CL_SUCCESS) return t->c = NULL, CTB_CL_FAIL(t->ctx, err, "clCreateBuffer (tuning)");
  return CT_OK;
}

static void describe(const tk_set *s, char *buf, size_t cap) {
  size_t o = 0;
  buf[0] = 0;
  for (int k = 0; k < TK_COUNT && o < cap; ++k) {
    char line[1024];
    tk_format(k, s->v[k], line, sizeof line);
    o += (size_t)snprintf(buf + o, cap - o, "%s\n", line);
  }
}

/* Tunes one dtype until `deadline`; fills t->res and leaves the winners in force. */
static ct_status tune_dtype(tuner *t, const tk_set *start, double deadline, tk_store *out) {
  double t0 = ctb_now_s();
  ct_status s = tuner_setup(t);
  if (s != CT_OK) return s;
  t->cur = *start;
  const int S = t->S;
  tk_problem big = {S, S, S, false, false};
  int status = 0;
  int bad = 0;
  tk_apply(t->ctx, t->d, &t->cur, &bad);
  tk_plan_of(&t->cur, &t->run_plan);
  double before = time_problem(t, &big, 0.5, &status);
  if (t->fatal) return t->fatal_status;
  if (before < 0)
    return ct__error(t->ctx, (ct_status)status, "tuning: the %s matmul with the parameters in force failed: %s",
                     DT_NAMES[t->d], ct_errmsg());
  t->res->gflops_before = gflops(&big, before);
  say(t, "%s before  %7.2f GFLOP/s at %d^3 (%s)", DT_NAMES[t->d], t->res->gflops_before, S,
      t->run_plan.engine == CTB_GEMM_TILE ? "tiled kernels" : "CLBlast");

  int odd = S * 3 / 4 + 5;
  int dsz = S * 3 / 8 > 32 ? (S * 3 / 8) / 32 * 32 : 32;
#define NONE {0, 0, 0, false, false}
  const tk_stage stages[] = {
      {"Tile", TK_TILE, CUR_TILE, NCUR(CUR_TILE), true, 0, {{S, S, S, false, false}, {S / 4, S / 4, S, false, true}},
       2, {{S, S, S, false, false}, {S / 4, S / 4, S, false, true}, {S, S / 4, S / 4, true, false}}, 3},
      {"Xgemm", TK_XGEMM, CUR_XGEMM, NCUR(CUR_XGEMM), true, FORCE_INDIRECT, {{S, S, S, false, false}}, 1, {NONE}, 0},
      {"Transp", TK_TRANSPOSE, CUR_TRANSPOSE, NCUR(CUR_TRANSPOSE), false, FORCE_INDIRECT, {{S, S, S, false, false}}, 1,
       {NONE}, 0},
      {"PadTr", TK_PADTRANSPOSE, CUR_PADTRANSPOSE, NCUR(CUR_PADTRANSPOSE), false, FORCE_INDIRECT,
       {{odd, odd, odd, true, false}}, 1, {NONE}, 0},
      {"Pad", TK_PAD, CUR_PAD, NCUR(CUR_PAD), false, FORCE_INDIRECT, {{odd, odd, odd, false, false}}, 1, {NONE}, 0},
      {"Direct", TK_DIRECT, CUR_DIRECT, NCUR(CUR_DIRECT), true, FORCE_DIRECT, {{dsz, dsz, dsz, false, false}}, 1,
       {{dsz, dsz, dsz, false, false}, {dsz, dsz, dsz, false, true}, {dsz, dsz, dsz, true, false}}, 3},
  };
#undef NONE
  /* shares of the time left when a stage starts; the rest goes to the switch sweep */
  static const double SHARE[] = {0.25, 0.40, 0.03, 0.03, 0.03, 0.18};
  double share_left = 1.0;
  for (int i = 0; i < (int)(sizeof stages / sizeof *stages) && !t->fatal; ++i) {
    double now = ctb_now_s(), left = deadline - now;
    double stage_deadline = now + (left > 0 ? left * SHARE[i] / share_left : 0);
    share_left -= SHARE[i];
    run_stage(t, &stages[i], stage_deadline);
  }
  if (t->fatal) return t->fatal_status;
  t->cur.v[TK_ROUTINE][0] = choose_switch(t);
  if (t->fatal) return t->fatal_status;
  t->cur.v[TK_TILE][TL_SMALL] = choose_small(t);
  if (t->fatal) return t->fatal_status;
  t->cur.v[TK_TILE][TL_ENGINE] = choose_engine(t);
  if (t->fatal) return t->fatal_status;

  /* the winners, checked once more as they will run: both engines (CLBlast also runs the
   * products too large for the tiled kernels' int indexing) */
  tk_set other = t->cur;
  other.v[TK_TILE][TL_ENGINE] ^= 1u;
  if (!final_check(t, &other) || !final_check(t, &t->cur)) {
    if (t->fatal) return t->fatal_status;
    say(t, "%s: the final parameters failed the check; going back to the ones in force before", DT_NAMES[t->d]);
    t->cur = *start;
    tk_apply(t->ctx, t->d, &t->cur, &bad);
    t->res->seconds = ctb_now_s() - t0;
    return CT_OK;
  }
  double after = time_problem(t, &big, 0.5, &status);
  if (t->fatal) return t->fatal_status;
  t->res->gflops_after = after > 0 ? gflops(&big, after) : 0;
  t->res->tuned = true;
  t->res->min_indirect_size = (int)t->cur.v[TK_ROUTINE][0];
  t->res->seconds = ctb_now_s() - t0;
  describe(&t->cur, t->res->parameters, sizeof t->res->parameters);
  say(t, "%s after   %7.2f GFLOP/s at %d^3 (before %.2f) with %s; CLBlast switches to indirect at %d^3",
      DT_NAMES[t->d], t->res->gflops_after, S, t->res->gflops_before,
      t->cur.v[TK_TILE][TL_ENGINE] == CTB_GEMM_TILE ? "the tiled kernels" : "CLBlast", t->res->min_indirect_size);
  out->have[t->d] = true;
  out->set[t->d] = t->cur;
  out->size[t->d] = S;
  out->before[t->d] = t->res->gflops_before;
  out->after[t->d] = t->res->gflops_after;
  return CT_OK;
}

ct_status ct_tune_matmul(ct_context *ctx, const ct_tune_options *opts, ct_tune_report *report) {
  CT_TRY(ct__check_context(ctx, "ct_tune_matmul"));
  ct_tune_options o = opts ? *opts : ct_tune_default_options();
  if (report) memset(report, 0, sizeof *report);
  if (o.budget_seconds == 0) o.budget_seconds = 600;
  if (o.size == 0) o.size = 1024;
  if (!(o.budget_seconds > 0) || !isfinite(o.budget_seconds))
    return ct__error(ctx, CT_ERR_INVALID, "ct_tune_matmul: budget_seconds must be positive (got %g)", o.budget_seconds);
  if (o.size < 64 || o.size > 4096)
    return ct__error(ctx, CT_ERR_INVALID, "ct_tune_matmul: size must be within 64..4096 (got %d)", o.size);
  bool want[2] = {o.float32, o.float64 && ctx->info.fp64};
  if (!want[0] && !want[1])
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "ct_tune_matmul: nothing to tune (float32 off%s)",
                     o.float64 ? ", and the device has no float64" : ", float64 off");
  ct_tune_report local;
  ct_tune_report *rep = report ? report : &local;
  memset(rep, 0, sizeof *rep);
  tk_store_path(ctx, rep->store_path, sizeof rep->store_path);

  /* start from what is stored (so tuning again goes on from the last winners), else generic */
  tk_store old;
  bool have_old = rep->store_path[0] && access(rep->store_path, F_OK) == 0 && tk_store_load(ctx, rep->store_path, &old);
  if (!have_old) memset(&old, 0, sizeof old);
  tk_store fresh = old;

  char journal[1100] = "";
  int ncrashed = 0;
  char **crashed = NULL;
  if (rep->store_path[0]) {
    journal_path(rep->store_path, ".trying", journal, sizeof journal);
    crashed = crash_list(rep->store_path, &ncrashed);
  }

  double start = ctb_now_s(), end = start + o.budget_seconds;
  ct_status s = CT_OK;
  for (int d = 0; d < 2 && s == CT_OK; ++d) {
    if (!want[d]) continue;
    double left = end - ctb_now_s();
    double dl = ctb_now_s() + (d == 0 && want[1] ? left * 0.7 : left);
    tuner t;
    memset(&t, 0, sizeof t);
    t.ctx = ctx;
    t.opt = &o;
    t.d = d;
    t.dt = d ? CT_FLOAT64 : CT_FLOAT32;
    t.esz = d ? 8 : 4;
    t.S = o.size;
    t.rng = o.seed * 0x2545f4914f6cdd1dull + (uint64_t)d + 1;
    t.res = d ? &rep->float64 : &rep->float32;
    t.journal = journal;
    t.crashed = crashed;
    t.ncrashed = ncrashed;
    const tk_set generic = tk_generic_set(&ctx->info, d);
    const tk_set *from = have_old && old.have[d] ? &old.set[d] : &generic;
    s = tune_dtype(&t, from, dl, &fresh);
    if (s == CT_OK && t.res->tuned) {
      tk_mark_applied(ctx->device);
      tk_state *st = ctx->blas_state;
      if (st) {
        st->active[d] = true;
        tk_plan_of(&fresh.set[d], &st->plan[d]);
      }
    }
    tuner_free(&t);
  }
  if (journal[0]) unlink(journal);
  free_lines(crashed, ncrashed);
  /* what was tuned is kept even when a later dtype failed */
  bool fresh_any = (fresh.have[0] && rep->float32.tuned) || (fresh.have[1] && rep->float64.tuned);
  if (!o.no_store && fresh_any && rep->store_path[0]) {
    char keep[CT_ERRMSG_CAP];
    snprintf(keep, sizeof keep, "%s", ct_errmsg());
    ct_status ws = tk_store_save(ctx, rep->store_path, &fresh);
    rep->stored = ws == CT_OK;
    if (ws != CT_OK) ct__log(CT_LOG_WARNING, "%s", ct_errmsg());
    tk_state *st = ctx->blas_state;
    if (st && rep->stored) st->stored = true;
    if (s != CT_OK) ct__error(ctx, s, "%s", keep);
  }
  return s;
}
