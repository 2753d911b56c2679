#define _POSIX_C_SOURCE 200809L
/* The programs of docs/guide.md's sections past the seed's cases (examples/guide, one .c each): each one
 * runs and reports "ok" (its own checks of the values it computes passed), each has a section
 * of the guide marked "<!-- program: examples/guide/NAME.c -->", the ```c blocks of that section
 * are its code (every line in order), and its ```text blocks are what it prints (lines starting
 * with "time:" are measurements and are not compared; the comparison runs on devices with
 * float64, where the guide's numbers were taken). */
#include "support.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *PROGRAMS[] = {"jacobians", "newton", "pinn", "gradient_penalty", "forward_mode",
                                 "custom_gradient", "recompute", "custom_op"};
#define N_PROGRAMS ((int)(sizeof PROGRAMS / sizeof *PROGRAMS))

static char *read_all(FILE *f) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  cr_assert(buf);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (cap - n < 2) {
      cap *= 2;
      buf = realloc(buf, cap);
      cr_assert(buf);
    }
  }
  buf[n] = 0;
  return buf;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *t = read_all(f);
  fclose(f);
  return t;
}

/* The lines of text, trimmed of trailing space, as an array (the buffer is modified). */
static int split(char *text, char ***out) {
  int cap = 64, n = 0;
  char **l = malloc(sizeof *l * (size_t)cap);
  cr_assert(l);
  for (char *p = text; p && *p;) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1])) p[--len] = 0;
    if (n == cap) {
      cap *= 2;
      l = realloc(l, sizeof *l * (size_t)cap);
      cr_assert(l);
    }
    l[n++] = p;
    p = nl ? nl + 1 : NULL;
  }
  *out = l;
  return n;
}

static const char *ltrim(const char *s) {
  while (isspace((unsigned char)*s)) ++s;
  return s;
}

static bool has_fp64(void) {
  ct_context *ctx = ts_ctx();
  bool r = ts_has_fp64(ctx);
  ct_context_free(ctx);
  return r;
}

static void check_program(const char *name, bool compare_output) {
  char path[512], cmd[600];
  snprintf(path, sizeof path, "%s/examples/guide/cltape-guide-%s", CLTAPE_BINARY_DIR, name);
  cr_assert(access(path, X_OK) == 0, "%s must be built first", path);
  snprintf(cmd, sizeof cmd, "'%s'", path);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  char *out = read_all(p);
  int status = pclose(p);
  cr_assert_eq(status, 0, "%s exited with %d:\n%s", name, status, out);
  char **ol;
  int on = split(out, &ol);
  cr_assert(on > 0 && strcmp(ol[on - 1], "ok") == 0, "%s did not end with ok", name);

  char src_path[512];
  snprintf(src_path, sizeof src_path, "%s/examples/guide/%s.c", CLTAPE_SOURCE_DIR, name);
  char *src = read_file(src_path), *doc = read_file(CLTAPE_SOURCE_DIR "/docs/guide.md");
  cr_assert(src && doc);
  char **sl, **dl;
  int sn = split(src, &sl), dn = split(doc, &dl);
  char marker[256];
  snprintf(marker, sizeof marker, "<!-- program: examples/guide/%s.c -->", name);
  int start = -1, end = dn;
  for (int i = 0; i < dn; ++i)
    if (!strcmp(dl[i], marker)) start = i;
  cr_assert_geq(start, 0, "docs/guide.md has no section marked %s", marker);
  for (int i = start + 1; i < dn; ++i)
    if (!strncmp(dl[i], "## ", 3)) {
      end = i;
      break;
    }
  int code_blocks = 0, text_lines = 0;
  for (int i = start; i < end; ++i) {
    bool code = !strcmp(dl[i], "```c"), text = !strcmp(dl[i], "```text");
    if (!code && !text) continue;
    code_blocks += code;
    int at = 0, o = 0;
    for (++i; i < end && strncmp(dl[i], "```", 3) != 0; ++i) {
      const char *want = ltrim(dl[i]);
      if (code) {
        if (!*want || !strcmp(want, "/* ... */")) continue;
        while (at < sn && strcmp(ltrim(sl[at]), want) != 0) ++at;
        cr_assert_lt(at, sn, "docs/guide.md line %d is not in examples/guide/%s.c (in that order):\n%s", i + 1, name,
                     want);
        ++at;
      } else if (compare_output && strncmp(want, "time:", 5) != 0) {
        while (o < on && strcmp(ol[o], dl[i]) != 0) ++o;
        cr_assert_lt(o, on, "docs/guide.md line %d is not what %s prints (in that order):\n%s\noutput:\n%s", i + 1,
                     name, dl[i], out);
        ++o;
        ++text_lines;
      }
    }
  }
  cr_assert_gt(code_blocks, 0, "the section of %s quotes no code", name);
  if (compare_output) cr_assert_gt(text_lines, 0, "the section of %s shows no output", name);
  free(ol);
  free(sl);
  free(dl);
  free(out);
  free(src);
  free(doc);
}

Test(guide, jacobians) { check_program("jacobians", has_fp64()); }
Test(guide, newton_with_the_hessian) { check_program("newton", has_fp64()); }
Test(guide, physics_informed_loss_with_second_derivatives) { check_program("pinn", has_fp64()); }
Test(guide, gradient_penalty_on_the_input_gradient) { check_program("gradient_penalty", has_fp64()); }
Test(guide, forward_mode) { check_program("forward_mode", has_fp64()); }
Test(guide, custom_gradient) { check_program("custom_gradient", has_fp64()); }
Test(guide, recompute_grad_on_a_deep_mlp) { check_program("recompute", has_fp64()); }
Test(guide, custom_op) { check_program("custom_op", has_fp64()); }

/* every program of examples/guide has a test above, and so a section */
Test(guide, every_program_is_in_the_guide) {
  FILE *p = popen("ls '" CLTAPE_SOURCE_DIR "/examples/guide'", "r");
  cr_assert(p);
  char *ls = read_all(p);
  pclose(p);
  char **l;
  int n = split(ls, &l), programs = 0;
  for (int i = 0; i < n; ++i) {
    size_t len = strlen(l[i]);
    if (len < 3 || strcmp(l[i] + len - 2, ".c") != 0) continue;
    programs++;
    bool listed = false;
    for (int k = 0; k < N_PROGRAMS; ++k) listed |= strlen(PROGRAMS[k]) == len - 2 && !strncmp(l[i], PROGRAMS[k], len - 2);
    cr_assert(listed, "examples/guide/%s has no test in tests/test_guide.c", l[i]);
  }
  cr_assert_eq(programs, N_PROGRAMS);
  free(l);
  free(ls);
}
