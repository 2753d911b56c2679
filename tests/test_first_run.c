/* First run: what a program says on stderr when it compiles kernels for a device the first time,
 * and the matmul tuning hint, given once per device and cache folder. Each case runs a child
 * process on a fresh cache folder and counts the log lines it gets. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  int compiling, hint;
} counts;

static void count_lines(ct_log_level level, const char *message, void *user) {
  counts *c = user;
  if (level != CT_LOG_INFO) return;
  if (strstr(message, "compiling OpenCL kernels for")) c->compiling++;
  if (strstr(message, "cltape-tune --budget 60")) c->hint++;
}

/* One matmul and one elementwise op in a child process with CLTAPE_CACHE_DIR=dir; returns
 * 10 * (lines announcing compilation) + (tuning hints), or -1 when the child failed. */
static int run_child(const char *dir, int contexts) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    counts c = {0, 0};
    ct_set_log(count_lines, &c);
    ct__env_override("CLTAPE_CACHE_DIR", dir);
    ct__env_override("CLTAPE_TUNE", NULL);
    ct__env_override("CLTAPE_MATMUL", NULL);
    for (int k = 0; k < contexts; ++k) {
      ct_context *ctx = NULL;
      ct_tensor *a = NULL, *p = NULL, *q = NULL;
      const int64_t shape[2] = {4, 4};
      if (ct_context_create(NULL, &ctx) != CT_OK || ct_ones(ctx, CT_FLOAT32, 2, shape, &a) != CT_OK ||
          ct_matmul(a, a, false, false, &p) != CT_OK || ct_square(p, &q) != CT_OK)
        _exit(255);
      ct_tensor_free(q);
      ct_tensor_free(p);
      ct_tensor_free(a);
      ct_context_free(ctx);
    }
    _exit(c.compiling > 9 || c.hint > 9 ? 254 : 10 * c.compiling + c.hint);
  }
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) && WEXITSTATUS(status) < 200 ? WEXITSTATUS(status) : -1;
}

Test(first_run, compile_notice_and_tuning_hint_once_per_cache_folder) {
  char dir[] = "/tmp/cltape-first-run-XXXXXX";
  cr_assert(mkdtemp(dir));
  /* a fresh folder: one line says kernels are being compiled, one hint (two contexts in the process) */
  cr_assert_eq(run_child(dir, 2), 11, "first run on an empty cache folder");
  /* the hint's marker is in the folder */
  char cmd[256];
  snprintf(cmd, sizeof cmd, "ls %s/*.hinted >/dev/null 2>&1", dir);
  cr_assert_eq(system(cmd), 0, "no marker file in %s", dir);
  /* again: kernels come from the cache and the hint was given for this folder */
  cr_assert_eq(run_child(dir, 1), 0, "second run on the same cache folder");
  /* another folder is another cache: compiled and hinted again */
  char other[] = "/tmp/cltape-first-run-XXXXXX";
  cr_assert(mkdtemp(other));
  cr_assert_eq(run_child(other, 1), 11, "first run on a second empty cache folder");
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, other);
  cr_assert_eq(system(cmd), 0);
}

Test(first_run, without_a_cache_folder_every_process_says_so_once) {
  /* CLTAPE_CACHE_DIR=off: nothing is cached, so each process compiles and says so, and gets the hint */
  cr_assert_eq(run_child("off", 2), 21, "two contexts, no cache: each compiles, one hint per process");
  cr_assert_eq(run_child("off", 1), 11, "a new process without a cache");
}
