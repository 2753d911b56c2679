/* The tour (examples/tour) run end to end: every case S1-S20 matches the guide's values, the
 * key values appear as the guide prints them, the plot is a well-formed SVG, bad options are
 * refused; docs/guide.md quotes code that the tour really runs and output that it really prints.
 * Also the device lister and checker (tools/cltape-devices.c). */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "ct_internal.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOUR CLTAPE_BINARY_DIR "/examples/tour/cltape-tour"
#define DEVICES CLTAPE_BINARY_DIR "/tools/cltape-devices"
#define N_CASES 20

/* ---- running a program ------------------------------------------------------------------ */
typedef struct {
  char *text;  /* stdout (and stderr when asked) */
  int status;  /* exit status, -1 when it did not exit normally */
} run_result;

static run_result run(const char *command, bool with_stderr) {
  run_result r = {NULL, -1};
  cr_assert(access(TOUR, X_OK) == 0 && access(DEVICES, X_OK) == 0,
            "cltape-tour and cltape-devices must be built first (%s, %s)", TOUR, DEVICES);
  char full[2048];
  snprintf(full, sizeof full, "%s%s", command, with_stderr ? " 2>&1" : "");
  FILE *p = popen(full, "r");
  cr_assert(p, "popen(%s) failed", full);
  size_t cap = 1 << 16, n = 0;
  r.text = malloc(cap);
  cr_assert(r.text);
  size_t got;
  while ((got = fread(r.text + n, 1, cap - n - 1, p)) > 0) {
    n += got;
    if (cap - n < 4096) {
      cap *= 2;
      r.text = realloc(r.text, cap);
      cr_assert(r.text);
    }
  }
  r.text[n] = 0;
  int st = pclose(p);
  r.status = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)len + 1);
  cr_assert(s);
  size_t n = fread(s, 1, (size_t)len, f);
  s[n] = 0;
  fclose(f);
  return s;
}

/* ---- the tour's output, split into lines ---------------------------------------------------- */
#define MAX_LINES 2000
typedef struct {
  char *buf;
  char *line[MAX_LINES];
  int n;
} lines;

static void split(const char *text, lines *out) {
  out->buf = strdup(text);
  cr_assert(out->buf);
  out->n = 0;
  for (char *s = out->buf, *next; s && *s && out->n < MAX_LINES; s = next) {
    next = strchr(s, '\n');
    if (next) *next++ = 0;
    out->line[out->n++] = s;
  }
}

/* The case id a line starts with ("S12"), or 0. */
static int case_of(const char *line) {
  if (line[0] != 'S' || !isdigit((unsigned char)line[1])) return 0;
  int n = atoi(line + 1);
  const char *p = line + 1;
  while (isdigit((unsigned char)*p)) ++p;
  return *p == ' ' || *p == 0 ? n : 0;
}

/* The text of one of a case's output lines ("S1      6.0" -> "6.0"); NULL for its title and
 * verdict lines. The id takes 4 columns, output lines are indented 4 more. */
static const char *output_text(const char *line) {
  if (strlen(line) < 8 || strncmp(line + 4, "    ", 4) != 0) return NULL;
  return line + 8;
}

/* Whether case n printed the output line `text` exactly. */
static bool has_output(const lines *l, int n, const char *text) {
  for (int i = 0; i < l->n; ++i)
    if (case_of(l->line[i]) == n) {
      const char *o = output_text(l->line[i]);
      if (o && strcmp(o, text) == 0) return true;
    }
  return false;
}

/* The first output line of case n that starts with prefix, or NULL. */
static const char *output_starting(const lines *l, int n, const char *prefix) {
  for (int i = 0; i < l->n; ++i)
    if (case_of(l->line[i]) == n) {
      const char *o = output_text(l->line[i]);
      if (o && strncmp(o, prefix, strlen(prefix)) == 0) return o;
    }
  return NULL;
}

static bool has_line(const lines *l, const char *text) {
  for (int i = 0; i < l->n; ++i)
    if (strcmp(l->line[i], text) == 0) return true;
  return false;
}

/* ---- a small XML well-formedness check (enough for SVG files) ---------------------------- */
static bool xml_name(const char **p, char *name, size_t cap) {
  size_t k = 0;
  if (!(isalpha((unsigned char)**p) || **p == '_' || **p == ':')) return false;
  while (isalnum((unsigned char)**p) || **p == '_' || **p == ':' || **p == '-' || **p == '.') {
    if (k + 1 < cap) name[k++] = **p;
    ++*p;
  }
  name[k] = 0;
  return true;
}

static bool xml_text_ok(const char *s, const char *end) {
  for (; s < end; ++s)
    if (*s == '&') {
      const char *semi = memchr(s, ';', (size_t)(end - s));
      if (!semi) return false;
      size_t len = (size_t)(semi - s - 1);
      const char *e = s + 1;
      bool ok = (len == 3 && !strncmp(e, "amp", 3)) || (len == 2 && !strncmp(e, "lt", 2)) ||
                (len == 2 && !strncmp(e, "gt", 2)) || (len == 4 && !strncmp(e, "quot", 4)) ||
                (len == 4 && !strncmp(e, "apos", 4)) || (len >= 2 && e[0] == '#');
      if (!ok) return false;
      s = semi;
    }
  return true;
}

/* Returns NULL when well formed, else what is wrong. */
static const char *xml_check(const char *s, int *elements) {
  static char why[160];
  char stack[64][64];
  int depth = 0, roots = 0;
  *elements = 0;
  const char *p = s;
  while (*p) {
    const char *lt = strchr(p, '<');
    const char *text_end = lt ? lt : p + strlen(p);
    if (!xml_text_ok(p, text_end)) return "bad character reference in text";
    if (depth == 0)
      for (const char *q = p; q < text_end; ++q)
        if (!isspace((unsigned char)*q)) return "text outside the root element";
    if (!lt) break;
    p = lt;
    if (!strncmp(p, "<?", 2)) {
      const char *e = strstr(p, "?>");
      if (!e) return "unterminated processing instruction";
      p = e + 2;
    } else if (!strncmp(p, "<!--", 4)) {
      const char *e = strstr(p + 4, "-->");
      if (!e) return "unterminated comment";
      p = e + 3;
    } else if (!strncmp(p, "<![CDATA[", 9)) {
      const char *e = strstr(p, "]]>");
      if (!e || depth == 0) return "bad CDATA section";
      p = e + 3;
    } else if (!strncmp(p, "<!", 2)) {
      const char *e = strchr(p, '>');
      if (!e || depth > 0) return "bad declaration";
      p = e + 1;
    } else if (p[1] == '/') {
      p += 2;
      char name[64];
      if (!xml_name(&p, name, sizeof name)) return "bad end tag";
      while (isspace((unsigned char)*p)) ++p;
      if (*p++ != '>') return "bad end tag";
      if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
        snprintf(why, sizeof why, "end tag </%s> does not match <%s>", name, depth ? stack[depth - 1] : "");
        return why;
      }
      --depth;
    } else {
      ++p;
      char name[64];
      if (!xml_name(&p, name, sizeof name)) return "bad start tag";
      if (depth == 0 && roots++ > 0) return "more than one root element";
      for (;;) {
        bool space = false;
        while (isspace((unsigned char)*p)) {
          ++p;
          space = true;
        }
        if (*p == '>' || !strncmp(p, "/>", 2)) break;
        char attr[64];
        if (!space || !xml_name(&p, attr, sizeof attr)) return "bad attribute";
        while (isspace((unsigned char)*p)) ++p;
        if (*p++ != '=') return "attribute without a value";
        while (isspace((unsigned char)*p)) ++p;
        char quote = *p++;
        if (quote != '"' && quote != '\'') return "unquoted attribute value";
        const char *e = strchr(p, quote);
        if (!e || memchr(p, '<', (size_t)(e - p)) || !xml_text_ok(p, e)) return "bad attribute value";
        p = e + 1;
      }
      ++*elements;
      if (*p == '/') {
        p += 2;
      } else {
        ++p;
        if (depth == 64) return "nested too deeply";
        snprintf(stack[depth++], 64, "%s", name);
      }
    }
  }
  if (depth) return "unclosed element";
  if (roots != 1) return "no root element";
  return NULL;
}

Test(xml_check, tells_good_from_bad) {
  int n;
  cr_assert_null(xml_check("<?xml version=\"1.0\"?>\n<svg a=\"1\"><g><text>a &amp; b</text></g><path d='M'/></svg>\n", &n));
  cr_assert_eq(n, 4);
  cr_assert_not_null(xml_check("<svg><g></svg>", &n));
  cr_assert_not_null(xml_check("<svg><text>a & b</text></svg>", &n));
  cr_assert_not_null(xml_check("<svg a=1></svg>", &n));
  cr_assert_not_null(xml_check("<svg></svg><svg></svg>", &n));
  cr_assert_not_null(xml_check("<svg>", &n));
}

/* ---- the tour ------------------------------------------------------------------------------ */
static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Every ```text block of docs/guide.md shows lines the tour prints: each line must be printed. */
static void check_guide_output(const lines *out) {
  char *doc = read_file(CLTAPE_SOURCE_DIR "/docs/guide.md");
  cr_assert(doc, "docs/guide.md is missing");
  lines d;
  split(doc, &d);
  int blocks = 0, checked = 0;
  bool in_text = false;
  for (int i = 0; i < d.n; ++i) {
    const char *l = d.line[i];
    if (!in_text && strcmp(l, "```text") == 0) {
      in_text = true;
      blocks++;
    } else if (in_text && strncmp(l, "```", 3) == 0) {
      in_text = false;
    } else if (in_text && case_of(l)) {
      cr_expect(has_line(out, l), "docs/guide.md line %d is not what the tour prints:\n%s", i + 1, l);
      checked++;
    }
  }
  cr_assert_gt(blocks, 0, "docs/guide.md shows no tour output");
  cr_assert_geq(checked, N_CASES, "docs/guide.md shows only %d lines of tour output", checked);
  free(d.buf);
  free(doc);
}

Test(tour, every_case_matches_the_guide) {
  const char *dir = CLTAPE_BINARY_DIR "/tour_test_out";
  char svg[600], png[600], cmd[1200];
  snprintf(svg, sizeof svg, "%s/s12-sigmoid.svg", dir);
  snprintf(png, sizeof png, "%s/s12-sigmoid.png", dir);
  unlink(svg);
  unlink(png);
  snprintf(cmd, sizeof cmd, "'%s' --out '%s'", TOUR, dir);
  run_result r = run(cmd, false); /* stdout only: library notes on stderr do not belong to a case */
  lines out;
  split(r.text, &out);
  cr_assert_eq(r.status, 0, "the tour exited with %d:\n%s", r.status, r.text);

  /* the device, then the cases in order, each with its verdict, then the time and the summary */
  cr_assert(out.n > 1 && !strncmp(out.line[1], "device: ", 8), "no device line:\n%s", r.text);
  cr_assert(strstr(out.line[1], "| type: ") && strstr(out.line[1], "| driver: "), "%s", out.line[1]);
  int last = 0;
  for (int i = 0; i < out.n; ++i) {
    int c = case_of(out.line[i]);
    if (!c) continue;
    cr_assert(c == last || c == last + 1, "case S%d printed after S%d", c, last);
    last = c;
  }
  cr_assert_eq(last, N_CASES, "the last case printed is S%d", last);
  for (int c = 1; c <= N_CASES; ++c) {
    char want[16];
    snprintf(want, sizeof want, "S%d", c);
    bool matched = false;
    for (int i = 0; i < out.n; ++i)
      if (case_of(out.line[i]) == c && !output_text(out.line[i])) {
        const char *v = out.line[i] + 4;
        cr_assert(strncmp(v, "MISMATCH", 8) != 0, "%s", out.line[i]);
        if (!strncmp(v, "matched: ", 9)) matched = true;
      }
    cr_assert(matched, "%s has no 'matched' line", want);
  }
  const char *summary = out.line[out.n - 1];
  cr_assert_str_eq(summary, "summary: 20 of 20 cases matched the guide's values");
  const char *time = out.line[out.n - 2];
  cr_assert(!strncmp(time, "time: ", 6) && strstr(time, "program build") && strstr(time, "compute"), "%s", time);

  /* key values, as the guide prints them */
  cr_assert(has_output(&out, 1, "6.0"));
  cr_assert(has_output(&out, 2, "(3, 2) (3, 2)"));
  cr_assert(output_starting(&out, 2, "grad['b']: tf.Tensor(["));
  cr_assert(has_output(&out, 3, "dense/kernel:0, shape: (3, 2)"));
  cr_assert(has_output(&out, 3, "dense/bias:0, shape: (2,)"));
  cr_assert(has_output(&out, 4, "tf.Tensor(6.0, shape=(), dtype=float32)"));
  cr_assert(has_output(&out, 4, "None"));
  cr_assert(has_output(&out, 4, "['x0:0']"));
  cr_assert(has_output(&out, 5, "6.0"));
  cr_assert(has_output(&out, 6, "dy/dx0: None"));
  cr_assert(has_output(&out, 6, "dy/dx1: 0.9999546"));
  cr_assert(has_output(&out, 7, "18.0"));
  cr_assert(has_output(&out, 8, "[  4. 108.]"));
  cr_assert(has_output(&out, 8, "[2. 6.]"));
  const char *again = output_starting(&out, 8, "second gradient(): ");
  cr_assert(again && strstr(again, "CT_ERR_TAPE_USED") && strstr(again, "persistent"), "%s", again);
  cr_assert(has_output(&out, 9, "4.0") && has_output(&out, 9, "-0.25"));
  cr_assert(has_output(&out, 10, "3.75"));
  cr_assert(has_output(&out, 11, "7.0"));
  cr_assert(has_output(&out, 12, "peak of dy/dx: 0.250000 at x = 0.0"));
  cr_assert(has_output(&out, 13, "tf.Tensor(1.0, shape=(), dtype=float32)") && has_output(&out, 13, "None"));
  cr_assert(has_output(&out, 14, "None"));
  cr_assert(has_output(&out, 15, "variable : tf.Tensor(1.0, shape=(), dtype=float32)"));
  cr_assert(has_output(&out, 15, "tensor : None"));
  cr_assert(has_output(&out, 16, "None"));
  const char *warning = output_starting(&out, 17, "WARNING: ");
  cr_assert(warning && strstr(warning, "floating") && strstr(warning, "int32"), "S17 warning: %s", warning);
  cr_assert(has_output(&out, 17, "None"));
  cr_assert(has_output(&out, 18, "None"));
  const char *error = output_starting(&out, 19, "CT_ERR_NO_GRADIENT: ");
  cr_assert(error, "S19 shows no error");
  cr_assert_str_eq(error + strlen("CT_ERR_NO_GRADIENT: "), "gradient registry has no entry for: AdjustContrastv2");
  cr_assert(has_output(&out, 19, "d/dimage: tf.Tensor([[[1. 1. 1.]]], shape=(1, 1, 3), dtype=float32)"));
  cr_assert(has_output(&out, 19, "d/ddelta: tf.Tensor(0.0, shape=(), dtype=float32)"));
  cr_assert(has_output(&out, 20, "tf.Tensor([0. 0.], shape=(2,), dtype=float32)"));

  /* S12's picture: the printed path, a well-formed SVG with both curves labelled */
  const char *plot = output_starting(&out, 12, "plot: ");
  cr_assert(plot, "S12 printed no plot path");
  cr_assert_str_eq(plot + 6, svg);
  cr_assert(file_exists(svg), "%s was not written", svg);
  char *doc = read_file(svg);
  cr_assert(doc);
  int elements = 0;
  const char *bad = xml_check(doc, &elements);
  cr_assert_null(bad, "%s is not well-formed XML: %s", svg, bad);
  cr_assert(strstr(doc, "<svg") && elements > 10, "%s: %d elements", svg, elements);
  /* cairo draws text as glyph outlines (<use xlink:href="#glyph..."/>), one per character drawn:
   * at least the title's, the x label's and both legend entries' (tests/test_plot.c checks each) */
  const char *labels = "y = sigmoid(x) and its gradient dy/dx" "x" "y" "dy/dx";
  int wanted = (int)strlen(labels), glyphs = 0;
  for (const char *g = doc; (g = strstr(g, "<use xlink:href=\"#glyph")); ++g) ++glyphs;
  cr_assert_geq(glyphs, wanted, "%s draws %d characters, fewer than its labels' %d", svg, glyphs, wanted);
  free(doc);
  /* and the PNG next to it (tests/test_plot.c reads such files back) */
  char png_line[700];
  snprintf(png_line, sizeof png_line, "plot: %s", png);
  cr_assert(has_output(&out, 12, png_line), "S12 printed no line \"%s\"", png_line);
  char *png_data = read_file(png);
  cr_assert(png_data && !strncmp(png_data, "\x89PNG\r\n\x1a\n", 8), "%s is not a PNG file", png);
  free(png_data);

  check_guide_output(&out);
  free(out.buf);
  free(r.text);
}

Test(tour, help_and_bad_options) {
  run_result r = run("'" TOUR "' --help", true);
  cr_assert_eq(r.status, 0);
  cr_assert(strstr(r.text, "usage: cltape-tour") && strstr(r.text, "--device") && strstr(r.text, "--out"), "%s", r.text);
  free(r.text);
  const char *bad[] = {"--bogus", "--device", "--out", "-d", "extra", "--out=", "--device no-such-device-0x5eed"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' %s", TOUR, bad[i]);
    r = run(cmd, true);
    cr_assert_eq(r.status, 2, "cltape-tour %s exited with %d:\n%s", bad[i], r.status, r.text);
    if (i + 1 < sizeof bad / sizeof *bad) cr_assert(strstr(r.text, "usage: cltape-tour"), "%s", r.text);
    else cr_assert(strstr(r.text, "no-such-device-0x5eed"), "%s", r.text);
    free(r.text);
  }
}

/* ---- docs/guide.md quotes the code the tour runs --------------------------------------------- */
static char *trim(char *s) {
  while (isspace((unsigned char)*s)) ++s;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
  return s;
}

/* Line range [*first, *end) of tour.c that belongs to case n: from the end of case n-1's function
 * (the helpers written for case n sit between) to the end of case n's function. */
static void case_region(const lines *src, int n, int *first, int *end) {
  char head[32];
  int prev_end = -1;
  *first = *end = -1;
  for (int c = 1; c <= n; ++c) {
    snprintf(head, sizeof head, "static bool s%d_", c);
    int start = -1;
    for (int i = prev_end + 1; i < src->n; ++i)
      if (!strncmp(src->line[i], head, strlen(head))) {
        start = i;
        break;
      }
    cr_assert_geq(start, 0, "tour.c has no function for S%d", c);
    int close = -1;
    for (int i = start; i < src->n; ++i)
      if (!strcmp(src->line[i], "}")) {
        close = i;
        break;
      }
    cr_assert_geq(close, 0);
    if (c == n) {
      *first = prev_end + 1;
      *end = close + 1;
    }
    prev_end = close;
  }
}

Test(tour, guide_quotes_the_code_the_tour_runs) {
  char *src_text = read_file(CLTAPE_SOURCE_DIR "/examples/tour/tour.c");
  char *doc_text = read_file(CLTAPE_SOURCE_DIR "/docs/guide.md");
  cr_assert(src_text && doc_text);
  lines src, doc;
  split(src_text, &src);
  split(doc_text, &doc);
  /* src keeps the lines as they are (a function ends at a "}" in column 0); code holds them trimmed */
  static char *code[MAX_LINES];
  char *code_buf = strdup(src_text);
  cr_assert(code_buf);
  {
    lines tmp;
    split(code_buf, &tmp);
    for (int i = 0; i < tmp.n; ++i) code[i] = trim(tmp.line[i]);
    free(code_buf);
    code_buf = tmp.buf;
  }
  int total_blocks = 0;
  for (int c = 1; c <= N_CASES; ++c) {
    /* the section "## S<c> ..." */
    char head[16];
    int hl = snprintf(head, sizeof head, "## S%d ", c);
    int start = -1, end = doc.n;
    for (int i = 0; i < doc.n; ++i)
      if (!strncmp(doc.line[i], head, (size_t)hl)) {
        start = i;
        break;
      }
    cr_assert_geq(start, 0, "docs/guide.md has no section \"%s...\"", head);
    for (int i = start + 1; i < doc.n; ++i)
      if (!strncmp(doc.line[i], "## ", 3)) {
        end = i;
        break;
      }
    int first, stop;
    case_region(&src, c, &first, &stop);
    /* every ```c block's lines occur in that order in the case's code */
    int blocks = 0;
    for (int i = start; i < end; ++i) {
      if (strcmp(doc.line[i], "```c") != 0) continue;
      blocks++;
      int at = first;
      for (++i; i < end && strncmp(doc.line[i], "```", 3) != 0; ++i) {
        char copy[512];
        snprintf(copy, sizeof copy, "%s", doc.line[i]);
        const char *want = trim(copy);
        if (!*want || !strcmp(want, "/* ... */")) continue;
        while (at < stop && strcmp(code[at], want) != 0) ++at;
        cr_assert_lt(at, stop, "docs/guide.md line %d (S%d) is not in the tour's code for S%d (in that order):\n%s",
                     i + 1, c, c, want);
        ++at;
      }
    }
    cr_assert_gt(blocks, 0, "docs/guide.md section S%d shows no C code", c);
    total_blocks += blocks;
  }
  cr_assert_geq(total_blocks, N_CASES);
  free(code_buf);
  free(src.buf);
  free(doc.buf);
  free(src_text);
  free(doc_text);
}

/* ---- cltape-devices ----------------------------------------------------------------------- */
Test(cltape_devices, lists_the_device_a_context_uses) {
  ct_context *ctx = ts_ctx();
  ct_device_info dev;
  OK(ct_context_device(ctx, &dev));
  ct_context_free(ctx);
  run_result r = run("'" DEVICES "'", true);
  cr_assert_eq(r.status, 0, "cltape-devices exited with %d:\n%s", r.status, r.text);
  char head[300];
  snprintf(head, sizeof head, "#%d  %s  <- ", dev.index, dev.name);
  cr_assert(strstr(r.text, head), "the context's device is not marked (%s):\n%s", head, r.text);
  const char *fields[] = {"    type            ", "    compute units   ", "    global memory   ",
                          "    fp64            ", "    OpenCL C        ", "    driver          "};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; ++i) cr_assert(strstr(r.text, fields[i]), "%s", fields[i]);
  char cu[64];
  snprintf(cu, sizeof cu, "    compute units   %u\n", dev.compute_units);
  cr_assert(strstr(r.text, cu), "%s", r.text);
  cr_assert(strstr(r.text, dev.driver_version));
  free(r.text);

  r = run("'" DEVICES "' --brief", true);
  cr_assert_eq(r.status, 0);
  cr_assert(strstr(r.text, dev.name) && strstr(r.text, "\t*\n"), "%s", r.text);
  free(r.text);

  r = run("'" DEVICES "' --bogus", true);
  cr_assert_eq(r.status, 2);
  cr_assert(strstr(r.text, "usage: cltape-devices"));
  free(r.text);
  r = run("'" DEVICES "' --device no-such-device-0x5eed", true);
  cr_assert_eq(r.status, 2, "%s", r.text);
  free(r.text);
}

/* The line of op `name` in the check's output ("" when absent), up to its newline. */
static const char *check_line(const char *text, const char *name, char *buf, size_t cap) {
  buf[0] = 0;
  size_t l = strlen(name);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, name, l) == 0 && p[l] == ' ') {
      const char *e = strchr(p, '\n');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
      break;
    }
  return buf;
}

Test(cltape_devices, check_reports_every_op_of_the_table_ok) {
  run_result r = run("'" DEVICES "' --check", true);
  cr_expect_eq(r.status, 0, "cltape-devices --check exited with %d:\n%s", r.status, r.text);
  char line[1024];
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    check_line(r.text, ct_ops[i].name, line, sizeof line);
    cr_expect(line[0], "no line for %s:\n%s", ct_ops[i].name, r.text);
    const char *status = line + strlen(ct_ops[i].name) + strspn(line + strlen(ct_ops[i].name), " ");
    if (i == CT_OP_CUSTOM) cr_expect(strncmp(status, "skipped ", 8) == 0, "%s", line);
    else cr_expect(strncmp(status, "ok ", 3) == 0, "%s", line);
  }
  cr_expect(strstr(r.text, " 0 wrong, 0 failed with an error, 0 unsupported, 1 skipped"), "%s", r.text);
  free(r.text);
}

/* A kernel planted wrong (its result + 1) must be reported with the worst error and its input, and
 * make the check fail; a correct op beside it stays ok. */
Test(cltape_devices, check_catches_a_planted_wrong_kernel) {
  static const char *const planted[][2] = {{"Sqrt", "input x = "}, {"Maximum", "input a = "}, {"Less", "input a = "}};
  for (size_t k = 0; k < sizeof planted / sizeof *planted; ++k) {
    char cmd[512], line[1024];
    snprintf(cmd, sizeof cmd, "CLTAPE_TEST_WRONG_OP=%s '" DEVICES "' --check --op %s", planted[k][0], planted[k][0]);
    run_result r = run(cmd, true);
    cr_expect_eq(r.status, 1, "%s exited with %d:\n%s", cmd, r.status, r.text);
    check_line(r.text, planted[k][0], line, sizeof line);
    cr_expect(strstr(line, " WRONG ") && strstr(line, "float32: worst error 1 at result ") &&
                  strstr(line, planted[k][1]),
              "%s:\n%s", cmd, r.text);
    cr_expect(strstr(r.text, "0 ok, 1 wrong,"), "%s", r.text);
    free(r.text);
    snprintf(cmd, sizeof cmd, "CLTAPE_TEST_WRONG_OP=%s '" DEVICES "' --check --op Exp", planted[k][0]);
    r = run(cmd, true);
    cr_expect_eq(r.status, 0, "%s exited with %d:\n%s", cmd, r.status, r.text);
    cr_expect(strstr(check_line(r.text, "Exp", line, sizeof line), " ok "), "%s", r.text);
    free(r.text);
  }
  run_result r = run("'" DEVICES "' --check --op NoSuchOp", true);
  cr_expect_eq(r.status, 2, "%s", r.text);
  cr_expect(strstr(r.text, "no such op"), "%s", r.text);
  free(r.text);
}

/* --dump-programs: every kernel file in each dtype it is built for, the generated kernels of every
 * elementwise row, the GPU default tile marked, and build options the library's own format. */
Test(cltape_devices, dump_programs_writes_every_program) {
  char dir[] = "/tmp/cltape-dump-XXXXXX";
  cr_assert(mkdtemp(dir));
  char cmd[512], path[600];
  snprintf(cmd, sizeof cmd, "'" DEVICES "' --dump-programs '%s'", dir);
  run_result r = run(cmd, true);
  cr_assert_eq(r.status, 0, "%s", r.text);
  free(r.text);
  snprintf(path, sizeof path, "%s/programs.tsv", dir);
  char *index = read_file(path);
  cr_assert(index, "no %s", path);
  const char *want[] = {"elementwise-float32\tdefault\t-DCT_DT=0 -DCT_HAS_FP64=1 -DCT_NATIVE=1",
                        "elementwise-float64\tdefault\t-DCT_DT=1", "elementwise-int32\tdefault\t-DCT_DT=2",
                        "elementwise-float32-libm\tdefault\t-DCT_DT=0 -DCT_HAS_FP64=1 -DCT_NATIVE=0",
                        "movement-int32\tdefault", "reduce-float64\tdefault", "nn-float32\tdefault",
                        "matmul-float32-mr4-nv2-vw4-pa1-pb1-bn1\tdefault\t-DCT_DT=0 -DCT_HAS_FP64=1 -DCT_NATIVE=1 -DCT_MR=4",
                        "matmul-float64-mr4-nv2-vw2-pa0-pb0-bn1\tdefault", "matmul-float32-mr8-nv2-vw4-pa1-pb1-bn1\ttuner"};
  for (size_t i = 0; i < sizeof want / sizeof *want; ++i) cr_expect(strstr(index, want[i]), "no \"%s\" in\n%s", want[i], index);
  cr_expect(!strstr(index, "nn-int32") && !strstr(index, "matmul-int32"), "int32 programs of float-only files");
  cr_expect(!strstr(index, "mr6-nv2-vw8"), "a tile of more than 256 bytes of accumulators for a GPU");
  snprintf(path, sizeof path, "%s/elementwise-float32.cl", dir);
  char *src = read_file(path);
  cr_assert(src, "no %s", path);
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    if (ct_ops[i].kind == K_OTHER) continue;
    char line[300];
    const char *type = ct_ops[i].kind == K_UN ? "" : ct_ops[i].kind == K_CMP ? "uchar, " : "T, ";
    snprintf(line, sizeof line, "(%s, %s%s)\n", ct_ops[i].stem, type, ct_ops[i].expr);
    cr_expect(strstr(src, line), "elementwise-float32.cl lacks %s", line);
  }
  free(src);
  /* the fused kernels calling every row, scalar and in vector form */
  cr_expect(strstr(index, "fused-float32\ttuner\t-DCT_DT=0") && strstr(index, "fused-int32\ttuner") &&
                strstr(index, "fused-vector-float64\ttuner\t-DCT_DT=1") && !strstr(index, "fused-vector-int32"),
            "fused programs in\n%s", index);
  snprintf(path, sizeof path, "%s/fused-vector-float32.cl", dir);
  src = read_file(path);
  cr_assert(src, "no %s", path);
  snprintf(path, sizeof path, "%s/fused-float32.cl", dir);
  char *scalar = read_file(path);
  cr_assert(scalar, "no %s", path);
  cr_expect(strncmp(src, "#define CT_FV 1\n", 16) == 0 && strstr(src, "/* vector form */\n__kernel void fused("),
            "the vector form's program defines CT_FV first");
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    if (ct_ops[i].kind == K_OTHER) continue;
    char call[80];
    snprintf(call, sizeof call, "f_%s(", ct_ops[i].stem);
    cr_expect(strstr(scalar, call), "fused-float32.cl does not call f_%s", ct_ops[i].stem);
    snprintf(call, sizeof call, "fv_%s(", ct_ops[i].stem);
    cr_expect(strstr(src, call), "fused-vector-float32.cl does not call fv_%s", ct_ops[i].stem);
  }
  free(scalar);
  free(src);
  free(index);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}
