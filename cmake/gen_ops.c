/* gen_ops.c — a build-time program that expands the op table (lib/ops.def) into what is not C
 * inside the library:
 *
 *   gen_ops header            cltape_ops.h: the lists of public elementwise functions that
 *                             include/cltape.h declares (CT_UNARY_OPS, CT_BINARY_OPS)
 *   gen_ops doc               the op list of docs/tape.md (Markdown)
 *   gen_ops check <tape.md>   exits 1 when the op list in <tape.md> is not the generated one
 *   gen_ops update <tape.md>  rewrites the op list in <tape.md> from the table
 *   gen_ops kernels <dir>     <dir>/elementwise_rows.cl and elementwise_rows_int.cl: one
 *                             CT_UNARY / CT_BINARY line per elementwise row (for int32, the rows
 *                             marked DA), embedded with kernels/ and appended by host/program.c
 *                             to kernels/elementwise.cl
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_IN0 = 1, S_IN1 = 2, S_IN2 = 4, S_OUT = 8, S_ALL = 15 };
enum { G_MASK_OUT = 16, G_MASK_IN0 = 32 }; /* flags beside what is saved (ct_internal.h): not listed */

typedef struct {
  const char *id, *lname, *name, *kind;
  int n_inputs;
  const char *dtypes, *expr, *attrs, *grad;
  unsigned always, if0, if1;
} row;

#define SV(a, b, c) a, b, c
#define X(id, lname, name, kind, nin, dts, expr, ref, saves, attrs, fwd, dom, grad) \
  {#id, #lname, name, #kind, nin, #dts, expr, #attrs, #grad, saves},
static const row rows[] = {
#include "ops.def"
};
#undef X
static const int n_rows = (int)(sizeof rows / sizeof *rows);

static void header(FILE *f) {
  fputs("/** \\file cltape_ops.h\n"
        " * Generated from the op table (lib/ops.def) at build time; do not edit. Included by cltape.h:\n"
        " * the public elementwise functions, one per elementwise row. */\n"
        "#ifndef CLTAPE_OPS_H\n#define CLTAPE_OPS_H\n",
        f);
  const char *lists[2][3] = {{"CT_UNARY_OPS", "UN", NULL}, {"CT_BINARY_OPS", "BIN", "CMP"}};
  const char *what[2] = {"unary ops: ct_<name>(x, &out)",
                         "binary ops: ct_<name>(a, b, &out) and ct_<name>_scalar(a, s, &out)"};
  for (int l = 0; l < 2; ++l) {
    fprintf(f, "/** The %s. */\n#define %s(X)", what[l], lists[l][0]);
    for (int i = 0; i < n_rows; ++i)
      if (strcmp(rows[i].kind, lists[l][1]) == 0 || (lists[l][2] && strcmp(rows[i].kind, lists[l][2]) == 0))
        fprintf(f, " \\\n  X(%s)", rows[i].lname);
    fputs("\n", f);
  }
  fputs("#endif\n", f);
}

static void saves_text(unsigned s, char *buf, size_t cap) {
  buf[0] = 0;
  if (s == S_ALL) {
    snprintf(buf, cap, "everything");
    return;
  }
  const char *names[4] = {"input 0", "input 1", "input 2", "output"};
  for (int b = 0; b < 4; ++b)
    if (s & (1u << b)) {
      size_t n = strlen(buf);
      snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", names[b]);
    }
  if (!buf[0]) snprintf(buf, cap, "nothing");
}

static void doc(FILE *f) {
  fputs("<!-- op list: generated from lib/ops.def by cmake/gen_ops.c (`gen_ops doc`); checked by the "
        "test op_list_in_docs -->\n",
        f);
  fputs("| op | function | kind | inputs | dtypes | attributes | keeps | gradient |\n"
        "|---|---|---|---|---|---|---|---|\n",
        f);
  static const char *kinds[][2] = {{"UN", "unary"}, {"BIN", "binary"}, {"CMP", "comparison"}, {"OTHER", "own code"}};
  for (int i = 0; i < n_rows; ++i) {
    const row *r = &rows[i];
    const char *kind = r->kind;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; ++k)
      if (strcmp(kinds[k][0], r->kind) == 0) kind = kinds[k][1];
    char keeps[160], a[64], b[64], c[64];
    saves_text(r->always & S_ALL, a, sizeof a);
    snprintf(keeps, sizeof keeps, "%s", a);
    if (r->if0) {
      saves_text(r->if0, b, sizeof b);
      size_t n = strlen(keeps);
      snprintf(keeps + n, sizeof keeps - n, "; %s when input 0 is differentiated", b);
    }
    if (r->if1) {
      saves_text(r->if1, c, sizeof c);
      size_t n = strlen(keeps);
      snprintf(keeps + n, sizeof keeps - n, "; %s when input 1 is differentiated", c);
    }
    char inputs[16];
    if (r->n_inputs < 0) snprintf(inputs, sizeof inputs, "any");
    else snprintf(inputs, sizeof inputs, "%d", r->n_inputs);
    const char *grad = strcmp(r->grad, "NOGRAD") == 0 ? "none by design" : r->grad;
    char fn[64];
    if (strcmp(r->lname, "_") == 0) snprintf(fn, sizeof fn, "(gradients only)");
    else snprintf(fn, sizeof fn, "`ct_%s`", r->lname);
    fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r->name, fn, kind, inputs,
            strcmp(r->dtypes, "DA") == 0 ? "float, int32" : "float", r->attrs, keeps, grad);
  }
}

/* Reads `path` and splits it around the generated block: the block starts at the line that
 * begins with "<!-- op list:" and runs to the first line after it that does not start with "|". */
static int read_doc(const char *path, char **before, char **block, char **after) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "gen_ops: cannot open %s\n", path);
    return 1;
  }
  char *parts[3] = {NULL, NULL, NULL};
  size_t lens[3] = {0, 0, 0};
  FILE *out[3];
  for (int i = 0; i < 3; ++i) out[i] = open_memstream(&parts[i], &lens[i]);
  char line[4096];
  int part = 0;
  while (fgets(line, sizeof line, f)) {
    if (part == 0 && strncmp(line, "<!-- op list:", 13) == 0) part = 1;
    else if (part == 1 && line[0] != '|') part = 2;
    fputs(line, out[part]);
  }
  fclose(f);
  for (int i = 0; i < 3; ++i) fclose(out[i]);
  *before = parts[0];
  *block = parts[1];
  *after = parts[2];
  return 0;
}

static int check_or_update(const char *path, int update) {
  char *before, *block, *after, *want = NULL;
  if (read_doc(path, &before, &block, &after)) return 1;
  size_t wlen = 0;
  FILE *m = open_memstream(&want, &wlen);
  doc(m);
  fclose(m);
  int ok = block[0] && strcmp(block, want) == 0, rc = 0;
  if (update && !ok) {
    if (!block[0]) fprintf(stderr, "gen_ops: %s has no \"<!-- op list:\" block to update\n", path), rc = 1;
    FILE *f = rc ? NULL : fopen(path, "w");
    if (f) {
      fputs(before, f);
      fputs(want, f);
      fputs(after, f);
      rc = fclose(f) != 0;
    }
  } else if (!ok) {
    fprintf(stderr,
            "%s: the op list is not the one the op table gives. Run `build/cmake/gen_ops update %s`; the "
            "table gives:\n%s",
            path, path, want);
    rc = 1;
  }
  free(before);
  free(block);
  free(after);
  free(want);
  return rc;
}

/* The generated part of the elementwise program (host/program.c appends it to
 * kernels/elementwise.cl): every elementwise row for the float dtypes, the DA rows for int32. */
static int kernels(const char *dir) {
  for (int ints = 0; ints < 2; ++ints) {
    char path[4096];
    snprintf(path, sizeof path, "%s/elementwise_rows%s.cl", dir, ints ? "_int" : "");
    FILE *f = fopen(path, "w");
    if (!f) {
      fprintf(stderr, "gen_ops: cannot write %s\n", path);
      return 1;
    }
    fputs("\n/* generated from lib/ops.def */\n", f);
    for (int i = 0; i < n_rows; ++i) {
      const row *r = &rows[i];
      if (strcmp(r->kind, "OTHER") == 0) continue;
      if (ints && strcmp(r->dtypes, "DA") != 0) continue;
      /* each line starts with the row's name (host/program.c's CLTAPE_TEST_WRONG_OP finds it there) */
      if (strcmp(r->kind, "UN") == 0) fprintf(f, "/* %s */ CT_UNARY(%s, %s)\n", r->name, r->id, r->expr);
      else
        fprintf(f, "/* %s */ CT_BINARY(%s, %s, %s)\n", r->name, r->id, strcmp(r->kind, "CMP") == 0 ? "uchar" : "T",
                r->expr);
    }
    if (fclose(f) != 0) return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "header") == 0) header(stdout);
  else if (argc >= 2 && strcmp(argv[1], "doc") == 0) doc(stdout);
  else if (argc >= 3 && strcmp(argv[1], "check") == 0) return check_or_update(argv[2], 0);
  else if (argc >= 3 && strcmp(argv[1], "update") == 0) return check_or_update(argv[2], 1);
  else if (argc >= 3 && strcmp(argv[1], "kernels") == 0) return kernels(argv[2]);
  else {
    fprintf(stderr, "usage: gen_ops header | doc | check <docs/tape.md> | update <docs/tape.md> | kernels <dir>\n");
    return 2;
  }
  return 0;
}
