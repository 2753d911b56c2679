/* The examples' plots (examples/common/plot.h): the ticks, and SVG and PNG files read back with
 * expat and cairo. */
#define _POSIX_C_SOURCE 200809L
#include <cairo.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <expat.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plot.h"

/* ---- ticks --------------------------------------------------------------------------------- */
/* step is 1, 2 or 5 times a power of ten */
static int is_nice(double step) {
  double e = floor(log10(step)), f = step / pow(10, e);
  return fabs(f - 1) < 1e-9 || fabs(f - 2) < 1e-9 || fabs(f - 5) < 1e-9 || fabs(f - 10) < 1e-9;
}

/* the properties every tick set has, for data in [min, max] */
static void check_ticks(double min, double max, int target, int integer, const plot_ticks *t) {
  double eps = t->step * 1e-6;
  cr_assert(t->step > 0 && is_nice(t->step), "[%g, %g]: step %g", min, max, t->step);
  cr_assert(t->lo <= min + eps && t->hi >= max - eps, "[%g, %g]: axis [%g, %g]", min, max, t->lo, t->hi);
  cr_assert(min == max || (t->lo > min - t->step - eps && t->hi < max + t->step + eps), "[%g, %g]: axis [%g, %g] wider than a step",
            min, max, t->lo, t->hi);
  double q = t->lo / t->step;
  cr_assert(fabs(q - round(q)) <= 1e-6 * fmax(1, fabs(q)), "lo %g is no multiple of %g", t->lo, t->step);
  cr_assert_eq(t->count, (int)llround((t->hi - t->lo) / t->step) + 1);
  cr_assert(t->count >= 2 && t->count <= 2 * target + 1, "[%g, %g], target %d: %d ticks", min, max, target, t->count);
  char prev[64] = "", buf[64];
  for (int i = 0; i < t->count; ++i) {
    plot_tick_label(t, i, buf, sizeof buf);
    cr_assert(strlen(buf) < 24, "tick label %s", buf);
    cr_assert(strcmp(buf, prev) != 0, "two ticks labelled %s", buf);
    cr_assert(strncmp(buf, "-0", 2) != 0 || strspn(buf + 1, "0.") != strlen(buf + 1), "tick label %s", buf);
    double v = strtod(buf, NULL);
    cr_assert_float_eq(v, t->lo + i * t->step, t->step * 1e-3, "tick %d labelled %s", i, buf);
    if (integer) {
      cr_assert(!strchr(buf, '.'), "integer axis [%g, %g]: tick label %s", min, max, buf);
      cr_assert_eq(v, floor(v));
    }
    snprintf(prev, sizeof prev, "%s", buf);
  }
}

static void labels(const plot_ticks *t, char *out, size_t cap) {
  char buf[64];
  out[0] = 0;
  for (int i = 0; i < t->count; ++i) {
    plot_tick_label(t, i, buf, sizeof buf);
    snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", buf);
  }
}

Test(plot_ticks, integer_axes_get_integer_ticks) {
  /* epochs 1..n of a training run, every number of epochs and ticks */
  for (int n = 1; n <= 120; ++n)
    for (int target = 2; target <= 12; ++target) {
      plot_ticks t;
      cr_assert_eq(plot_nice_ticks(1, n, target, 1, &t), 0);
      cr_assert(t.step >= 1 && t.step == floor(t.step), "epochs 1..%d: step %g", n, t.step);
      cr_assert_eq(t.decimals, 0);
      check_ticks(1, n, target, 1, &t);
    }
  /* where a real axis would get 0.2 steps, an integer one gets whole ones */
  plot_ticks t;
  char got[256];
  cr_assert_eq(plot_nice_ticks(1, 3, 10, 0, &t), 0);
  cr_assert_lt(t.step, 1);
  cr_assert_eq(plot_nice_ticks(1, 3, 10, 1, &t), 0);
  labels(&t, got, sizeof got);
  cr_assert_str_eq(got, "1 2 3");
  cr_assert_eq(plot_nice_ticks(1, 12, 8, 1, &t), 0);
  labels(&t, got, sizeof got);
  cr_assert_str_eq(got, "0 2 4 6 8 10 12");
  /* a single epoch: an axis around it, still whole */
  cr_assert_eq(plot_nice_ticks(1, 1, 8, 1, &t), 0);
  labels(&t, got, sizeof got);
  cr_assert_str_eq(got, "0 1 2");
}

Test(plot_ticks, nice_ticks) {
  const struct {
    double min, max;
    int target;
    const char *want;
  } cases[] = {
      {0.1968, 0.5071, 8, "0.15 0.20 0.25 0.30 0.35 0.40 0.45 0.50 0.55"}, /* an MLP's training loss */
      {82.1, 92.87, 6, "82 84 86 88 90 92 94"},                         /* its accuracy in % */
      {-10, 10, 8, "-10 -8 -6 -4 -2 0 2 4 6 8 10"},
      {0, 0.3, 4, "0.0 0.1 0.2 0.3"}, /* 3 * 0.1 is 0.30000000000000004 */
      {-1, 1, 3, "-1 0 1"},
      {-0.3, -0.1, 3, "-0.3 -0.2 -0.1"},
      {1e6, 5e6, 5, "1000000 2000000 3000000 4000000 5000000"},
      {1.5e-7, 2.9e-7, 4, "0.00000015 0.00000020 0.00000025 0.00000030"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
    plot_ticks t;
    char got[512];
    cr_assert_eq(plot_nice_ticks(cases[i].min, cases[i].max, cases[i].target, 0, &t), 0);
    labels(&t, got, sizeof got);
    cr_assert_str_eq(got, cases[i].want, "[%g, %g]: %s", cases[i].min, cases[i].max, got);
    check_ticks(cases[i].min, cases[i].max, cases[i].target, 0, &t);
  }
  /* many ranges: the properties hold */
  uint64_t s = 12345;
  for (int i = 0; i < 20000; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double a = ((double)(s >> 11) / 9007199254740992.0 - 0.5) * pow(10, (int)(s % 13) - 6);
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    double b = a + (double)(s >> 11) / 9007199254740992.0 * pow(10, (int)(s % 11) - 5);
    int target = 2 + (int)(s % 11);
    plot_ticks t;
    cr_assert_eq(plot_nice_ticks(a, b, target, 0, &t), 0, "[%g, %g]", a, b);
    check_ticks(a, b, target, 0, &t);
  }
  /* a single value: an axis around it */
  plot_ticks t;
  cr_assert_eq(plot_nice_ticks(0.25, 0.25, 5, 0, &t), 0);
  cr_assert(t.lo < 0.25 && t.hi > 0.25);
  check_ticks(0.25, 0.25, 5, 0, &t);
  cr_assert_eq(plot_nice_ticks(0, 0, 5, 0, &t), 0);
  cr_assert(t.lo < 0 && t.hi > 0);
}

Test(plot_ticks, bad_input) {
  plot_ticks t;
  const double bad[][2] = {{NAN, 1}, {0, NAN}, {-INFINITY, 1}, {0, INFINITY}, {2, 1}, {-1e308, 1e308}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
    errno = 0;
    cr_assert_eq(plot_nice_ticks(bad[i][0], bad[i][1], 5, 0, &t), -1, "[%g, %g]", bad[i][0], bad[i][1]);
    cr_assert_eq(errno, EINVAL);
  }
  errno = 0;
  cr_assert_eq(plot_nice_ticks(0, 1, 1, 0, &t), -1);
  cr_assert_eq(errno, EINVAL);
  cr_assert_eq(plot_nice_ticks(0, 1, 5, 0, NULL), -1);
}

/* ---- files ----------------------------------------------------------------------------------- */
/* each test ends with cairo's and fontconfig's process-wide memory freed, for the leak checkers */
TestSuite(plot_files, .fini = plot_cleanup);

static char *out_path(const char *name) {
  static char path[4][600];
  static int k;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/plot_test_out", CLTAPE_BINARY_DIR);
  mkdir(dir, 0777);
  char *p = path[k++ % 4];
  snprintf(p, 600, "%s/%s", dir, name);
  remove(p);
  return p;
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "%s was not written", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *d = malloc((size_t)n + 1);
  cr_assert(d);
  *len = fread(d, 1, (size_t)n, f);
  d[*len] = 0;
  fclose(f);
  cr_assert_eq(*len, (size_t)n);
  return d;
}

typedef struct {
  int elements, depth, glyphs;
  char root[32], width[32], height[32];
} svg_info;

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs) {
  svg_info *s = data;
  if (s->depth++ == 0) {
    snprintf(s->root, sizeof s->root, "%s", name);
    for (int i = 0; attrs[i]; i += 2) {
      if (!strcmp(attrs[i], "width")) snprintf(s->width, sizeof s->width, "%s", attrs[i + 1]);
      if (!strcmp(attrs[i], "height")) snprintf(s->height, sizeof s->height, "%s", attrs[i + 1]);
    }
  }
  s->elements++;
  if (!strcmp(name, "use"))
    for (int i = 0; attrs[i]; i += 2)
      if (!strcmp(attrs[i], "xlink:href") && !strncmp(attrs[i + 1], "#glyph", 6)) s->glyphs++;
}

static void XMLCALL on_end(void *data, const XML_Char *name) {
  (void)name;
  ((svg_info *)data)->depth--;
}

/* Parses an SVG file with expat: it must be well-formed XML with an <svg> root. */
static svg_info read_svg(const char *path) {
  size_t len;
  unsigned char *d = slurp(path, &len);
  svg_info s = {0};
  XML_Parser x = XML_ParserCreate(NULL);
  cr_assert(x);
  XML_SetUserData(x, &s);
  XML_SetElementHandler(x, on_start, on_end);
  enum XML_Status st = XML_Parse(x, (const char *)d, (int)len, 1);
  cr_assert_eq(st, XML_STATUS_OK, "%s is not well-formed XML: %s at line %lu", path,
               XML_ErrorString(XML_GetErrorCode(x)), (unsigned long)XML_GetCurrentLineNumber(x));
  XML_ParserFree(x);
  free(d);
  cr_assert_str_eq(s.root, "svg");
  return s;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks a PNG file: its signature and IHDR chunk, then reads it back with cairo. The caller
 * destroys the surface. */
static cairo_surface_t *read_png(const char *path, int width, int height) {
  size_t len;
  unsigned char *d = slurp(path, &len);
  cr_assert(len > 33 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8), "%s has no PNG signature", path);
  cr_assert(be32(d + 8) == 13 && !memcmp(d + 12, "IHDR", 4), "%s does not start with IHDR", path);
  cr_assert_eq(be32(d + 16), (uint32_t)width, "%s: IHDR width %u", path, be32(d + 16));
  cr_assert_eq(be32(d + 20), (uint32_t)height, "%s: IHDR height %u", path, be32(d + 20));
  free(d);
  cairo_surface_t *s = cairo_image_surface_create_from_png(path);
  cr_assert_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS, "cairo cannot read %s: %s", path,
               cairo_status_to_string(cairo_surface_status(s)));
  cr_assert_eq(cairo_image_surface_get_width(s), width);
  cr_assert_eq(cairo_image_surface_get_height(s), height);
  return s;
}

static uint32_t pixel(cairo_surface_t *s, int x, int y) {
  cairo_surface_flush(s);
  const unsigned char *row = cairo_image_surface_get_data(s) + (size_t)y * (size_t)cairo_image_surface_get_stride(s);
  return ((const uint32_t *)row)[x] & 0xffffff;
}

/* pixels whose colour is within 40 of rgb in every channel */
static int count_colour(cairo_surface_t *s, uint32_t rgb) {
  int n = 0, w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint32_t p = pixel(s, x, y);
      int close = 1;
      for (int c = 0; c < 24; c += 8) close &= abs((int)((p >> c) & 255) - (int)((rgb >> c) & 255)) <= 40;
      n += close;
    }
  return n;
}

/* a training history: losses left, accuracies right */
static plot *training_plot(int epochs, const char *title) {
  double x[64], loss[64], tloss[64], acc[64], tacc[64];
  for (int i = 0; i < epochs; ++i) {
    x[i] = i + 1;
    loss[i] = 0.5 / (1 + 0.25 * i);
    tloss[i] = 0.45 / (1 + 0.1 * i) + 0.02;
    acc[i] = 82 + 0.9 * i;
    tacc[i] = 83 + 0.5 * i;
  }
  plot *p = plot_create(title, "epoch", "loss");
  cr_assert(p);
  cr_assert_eq(plot_add_series(p, "training loss", x, loss, epochs, 0), 0);
  cr_assert_eq(plot_add_series(p, "test loss", x, tloss, epochs, 0), 0);
  cr_assert_eq(plot_add_series(p, "training accuracy (%)", x, acc, epochs, 1), 0);
  cr_assert_eq(plot_add_series(p, "test accuracy (%)", x, tacc, epochs, 1), 0);
  cr_assert_eq(plot_set_right_label(p, "accuracy (%)"), 0);
  return p;
}

Test(plot_files, svg_and_png_are_written_and_valid) {
  plot *p = training_plot(12, "Fashion-MNIST, mlp");
  const char *svg = out_path("training.svg"), *png = out_path("training.png");
  cr_assert_eq(plot_write_svg(p, svg), 0, "%s: %s", svg, strerror(errno));
  cr_assert_eq(plot_write_png(p, png), 0, "%s: %s", png, strerror(errno));
  svg_info s = read_svg(svg);
  cr_assert_str_eq(s.width, "800px");
  cr_assert_str_eq(s.height, "500px");
  cr_assert_gt(s.elements, 20);
  cr_assert_gt(s.glyphs, 100, "%d glyphs drawn", s.glyphs);
  cairo_surface_t *img = read_png(png, 800, 500);
  cr_assert_eq(pixel(img, 2, 2), 0xffffffu, "the background is %06x", pixel(img, 2, 2));
  /* each of the four lines is drawn in its colour (palette: blue, orange, green, red) */
  const uint32_t colours[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728};
  for (int i = 0; i < 4; ++i) {
    int n = count_colour(img, colours[i]);
    cr_assert_gt(n, 300, "line %d (%06x): %d pixels", i, colours[i], n);
  }
  cairo_surface_destroy(img);
  plot_free(p);

  /* another size */
  p = training_plot(3, NULL);
  cr_assert_eq(plot_set_size(p, 640, 480), 0);
  cr_assert_eq(plot_write_svg(p, svg), 0);
  cr_assert_eq(plot_write_png(p, png), 0);
  s = read_svg(svg);
  cr_assert_str_eq(s.width, "640px");
  cr_assert_str_eq(s.height, "480px");
  cairo_surface_destroy(read_png(png, 640, 480));
  plot_free(p);
}

/* Lines with gaps, a line with no finite point and an empty plot are drawn too. */
Test(plot_files, gaps_and_empty_plots) {
  double x[5] = {1, 2, 3, 4, 5}, y[5] = {1, NAN, 3, INFINITY, 5}, none[2] = {NAN, NAN};
  plot *p = plot_create("gaps", NULL, NULL);
  cr_assert(p);
  cr_assert_eq(plot_add_series(p, "gaps", x, y, 5, 0), 0);
  cr_assert_eq(plot_add_series(p, "nothing", x, none, 2, 1), 0);
  cr_assert_eq(plot_add_series(p, "no points", NULL, NULL, 0, 0), 0);
  const char *svg = out_path("gaps.svg"), *png = out_path("gaps.png");
  cr_assert_eq(plot_write_svg(p, svg), 0);
  cr_assert_eq(plot_write_png(p, png), 0);
  read_svg(svg);
  cairo_surface_destroy(read_png(png, 800, 500));
  plot_free(p);
  p = plot_create(NULL, NULL, NULL);
  cr_assert(p);
  cr_assert_eq(plot_write_svg(p, svg), 0);
  cr_assert_eq(plot_write_png(p, png), 0);
  read_svg(svg);
  cairo_surface_destroy(read_png(png, 800, 500));
  plot_free(p);
}

static int glyphs_of(plot *p) {
  const char *svg = out_path("text.svg");
  cr_assert_eq(plot_write_svg(p, svg), 0);
  int n = read_svg(svg).glyphs;
  plot_free(p);
  return n;
}

/* cairo draws text as one glyph per character (spaces included): the title, the axis labels and
 * the legend add as many glyphs as they have characters. */
Test(plot_files, every_label_is_drawn) {
  double x[3] = {1, 2, 3}, y[3] = {0.5, 0.4, 0.3}, r[3] = {80, 85, 90};
  plot *p = plot_create(NULL, NULL, NULL);
  plot_add_series(p, NULL, x, y, 3, 0);
  int base = glyphs_of(p);
  cr_assert_gt(base, 0, "no tick labels");
  p = plot_create("Fashion-MNIST, cnn", NULL, NULL);
  plot_add_series(p, NULL, x, y, 3, 0);
  int title = glyphs_of(p) - base;
  cr_assert_eq(title, 18, "the title drew %d glyphs", title);
  p = plot_create(NULL, "epoch", "loss");
  plot_add_series(p, NULL, x, y, 3, 0);
  cr_assert_eq(glyphs_of(p) - base, 9);
  p = plot_create(NULL, NULL, NULL);
  plot_add_series(p, "training loss", x, y, 3, 0);
  cr_assert_eq(glyphs_of(p) - base, 13);

  /* with both axes: the right axis's labels, and legend entries that say which axis */
  p = plot_create(NULL, NULL, NULL);
  plot_add_series(p, NULL, x, y, 3, 0);
  plot_add_series(p, NULL, x, r, 3, 1);
  int both = glyphs_of(p);
  cr_assert_gt(both, base, "no tick labels on the right axis");
  p = plot_create(NULL, NULL, NULL);
  plot_add_series(p, "loss", x, y, 3, 0);
  plot_add_series(p, "accuracy", x, r, 3, 1);
  plot_set_right_label(p, "accuracy (%)");
  cr_assert_eq(glyphs_of(p) - both, 4 + 8 + 13 + 12); /* " (right axis)" is 13 */
}

/* writing p to path fails with errno err, as SVG and as PNG */
static void expect_write_error(const plot *p, const char *path, int err) {
  errno = 0;
  cr_assert_eq(plot_write_svg(p, path), -1, "wrote an SVG to %s", path);
  cr_assert_eq(errno, err, "%s: errno %d (%s)", path, errno, strerror(errno));
  errno = 0;
  cr_assert_eq(plot_write_png(p, path), -1, "wrote a PNG to %s", path);
  cr_assert_eq(errno, err, "%s: errno %d (%s)", path, errno, strerror(errno));
}

Test(plot_files, errors_are_reported) {
  plot *p = training_plot(4, "t");
  expect_write_error(p, "/nonexistent-dir/plot", ENOENT);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/plot_test_out", CLTAPE_BINARY_DIR);
  out_path("x"); /* creates the directory */
  expect_write_error(p, dir, EISDIR);
  struct stat st;
  if (stat("/dev/full", &st) == 0) expect_write_error(p, "/dev/full", ENOSPC); /* a full disk */
  cr_assert(stat("/dev/full", &st) != 0 || S_ISCHR(st.st_mode), "/dev/full was removed");
  plot_free(p);
}

Test(plot_files, bad_arguments) {
  double y[2] = {1, 2};
  errno = 0;
  cr_assert_eq(plot_add_series(NULL, "a", NULL, y, 2, 0), -1);
  cr_assert_eq(errno, EINVAL);
  plot *p = plot_create("t", "x", "y");
  cr_assert(p);
  errno = 0;
  cr_assert_eq(plot_add_series(p, "a", NULL, y, -1, 0), -1);
  cr_assert_eq(errno, EINVAL);
  errno = 0;
  cr_assert_eq(plot_add_series(p, "a", NULL, NULL, 2, 0), -1);
  cr_assert_eq(errno, EINVAL);
  errno = 0;
  cr_assert_eq(plot_set_size(p, 100, 500), -1);
  cr_assert_eq(errno, EINVAL);
  cr_assert_eq(plot_set_size(p, 800, 5000), -1);
  cr_assert_eq(plot_set_right_label(NULL, "r"), -1);
  errno = 0;
  cr_assert_eq(plot_write_svg(NULL, "x.svg"), -1);
  cr_assert_eq(errno, EINVAL);
  cr_assert_eq(plot_write_png(p, NULL), -1);
  plot_free(p);
  plot_free(NULL);
}
