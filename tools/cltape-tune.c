/* cltape-tune — tunes matmul (the tiled kernels and CLBlast's) for one OpenCL device, picks the
 * faster engine, and stores the winners where every later cltape context on that device finds
 * them (see docs/performance.md).
 *
 *   cltape-tune [--device SEL] [--budget SECONDS] [--size N] [--float32|--float64] [--seed N]
 *               [--no-store] [--quiet]
 *   cltape-tune --status [--device SEL]
 */
#include "cltape.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
          "usage: cltape-tune [--device SEL] [--budget SECONDS] [--size N] [--float32|--float64] [--seed N]\n"
          "                   [--no-store] [--quiet]\n"
          "       cltape-tune --status [--device SEL]\n"
          "Searches the GEMM parameters of the tiled kernels and of CLBlast for the device (SEL as\n"
          "CLTAPE_DEVICE: index, \"cpu\", \"gpu\" or part of the name), checks every candidate against a host\n"
          "reference, keeps the faster engine, and stores the winners in the cltape cache directory.\n"
          "Defaults: --budget 600 --size 1024, float32 and float64.\n");
}

static void progress(const char *line, void *user) {
  (void)user;
  printf("%s\n", line);
  fflush(stdout);
}

static void print_result(const char *dt, const ct_tune_result *r) {
  if (!r->tuned && r->candidates == 0) return;
  printf("\n%s: %s, %d candidates (%d wrong, %d refused) in %.0f s\n", dt, r->tuned ? "tuned" : "not tuned",
         r->candidates, r->rejected, r->failed, r->seconds);
  if (!r->tuned) return;
  printf("  %s at size^3: %.2f GFLOP/s before, %.2f after (x%.2f); CLBlast indirect from %d^3\n", dt, r->gflops_before,
         r->gflops_after, r->gflops_before > 0 ? r->gflops_after / r->gflops_before : 0.0, r->min_indirect_size);
  printf("%s", r->parameters);
}

static bool number_arg(int argc, char **argv, int *i, double *out) {
  if (*i + 1 >= argc) return false;
  char *end = NULL;
  *out = strtod(argv[++*i], &end);
  return end && *end == 0;
}

int main(int argc, char **argv) {
  ct_tune_options o = ct_tune_default_options();
  const char *device = NULL;
  bool status_only = false, quiet = false;
  for (int i = 1; i < argc; ++i) {
    double v = 0;
    if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
    else if (strcmp(argv[i], "--budget") == 0 && number_arg(argc, argv, &i, &v)) o.budget_seconds = v;
    else if (strcmp(argv[i], "--size") == 0 && number_arg(argc, argv, &i, &v)) o.size = (int)v;
    else if (strcmp(argv[i], "--seed") == 0 && number_arg(argc, argv, &i, &v)) o.seed = (uint64_t)v;
    else if (strcmp(argv[i], "--float32") == 0) o.float64 = false;
    else if (strcmp(argv[i], "--float64") == 0) o.float32 = false;
    else if (strcmp(argv[i], "--no-store") == 0) o.no_store = true;
    else if (strcmp(argv[i], "--quiet") == 0) quiet = true;
    else if (strcmp(argv[i], "--status") == 0) status_only = true;
    else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "cltape-tune: unknown or incomplete argument \"%s\"\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  ct_context *ctx = NULL;
  ct_status s = ct_context_create(device, &ctx);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-tune: %s: %s\n", ct_status_str(s), ct_errmsg());
    return 1;
  }
  ct_device_info info;
  ct_context_device(ctx, &info);
  ct_tune_state st;
  ct_tune_status(ctx, &st);
  printf("device: %s (%s, driver %s)\n", info.name, info.platform, info.driver_version);
  printf("store: %s (%s)\n", st.store_path[0] ? st.store_path : "none: the on-disk cache is off",
         st.stored ? "present" : "absent");
  if (status_only) {
    printf("tuned parameters in force: float32 %s, float64 %s%s\n", st.active_float32 ? "yes" : "no",
           st.active_float64 ? "yes" : "no", st.enabled ? "" : " (CLTAPE_TUNE=off)");
    ct_context_free(ctx);
    return 0;
  }
  if (!quiet) o.progress = progress;
  printf("tuning for up to %.0f s at size %d\n", o.budget_seconds, o.size);
  fflush(stdout);
  ct_tune_report r;
  s = ct_tune_matmul(ctx, &o, &r);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-tune: %s: %s\n", ct_status_str(s), ct_errmsg());
    ct_context_free(ctx);
    return 1;
  }
  print_result("float32", &r.float32);
  print_result("float64", &r.float64);
  if (r.stored) printf("\nstored in %s\n", r.store_path);
  else if (!o.no_store) printf("\nnot stored%s\n", r.store_path[0] ? "" : " (the on-disk cache is off)");
  ct_context_free(ctx);
  return 0;
}
