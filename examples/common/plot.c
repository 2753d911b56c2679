/* plot.c — line charts drawn with cairo, written as SVG or PNG (plot.h). */
#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  char *label;
  double *x, *y;
  int n, right;
} series;

struct plot {
  char *title, *xlabel, *ylabel, *rlabel;
  series *s;
  int ns, cap;
  int width, height;
};

/* *dst = a copy of s, or NULL for NULL or "" */
static int set_text(char **dst, const char *s) {
  char *c = NULL;
  if (s && *s) {
    size_t n = strlen(s) + 1;
    if (!(c = malloc(n))) {
      errno = ENOMEM;
      return -1;
    }
    memcpy(c, s, n);
  }
  free(*dst);
  *dst = c;
  return 0;
}

plot *plot_create(const char *title, const char *xlabel, const char *ylabel) {
  plot *p = calloc(1, sizeof *p);
  if (!p) {
    errno = ENOMEM;
    return NULL;
  }
  p->width = 800;
  p->height = 500;
  if (set_text(&p->title, title) || set_text(&p->xlabel, xlabel) || set_text(&p->ylabel, ylabel)) {
    plot_free(p);
    errno = ENOMEM;
    return NULL;
  }
  return p;
}

void plot_free(plot *p) {
  if (!p) return;
  for (int i = 0; i < p->ns; ++i) {
    free(p->s[i].label);
    free(p->s[i].x);
    free(p->s[i].y);
  }
  free(p->s);
  free(p->title);
  free(p->xlabel);
  free(p->ylabel);
  free(p->rlabel);
  free(p);
}

int plot_add_series(plot *p, const char *label, const double *x, const double *y, int n, int right_axis) {
  if (!p || n < 0 || (n > 0 && !y)) {
    errno = EINVAL;
    return -1;
  }
  if (p->ns == p->cap) {
    int cap = p->cap ? 2 * p->cap : 4;
    series *s = realloc(p->s, (size_t)cap * sizeof *s);
    if (!s) {
      errno = ENOMEM;
      return -1;
    }
    p->s = s;
    p->cap = cap;
  }
  series s = {NULL, NULL, NULL, n, right_axis != 0};
  size_t bytes = (size_t)(n ? n : 1) * sizeof(double);
  if (set_text(&s.label, label) || !(s.x = malloc(bytes)) || !(s.y = malloc(bytes))) {
    free(s.label);
    free(s.x);
    errno = ENOMEM;
    return -1;
  }
  for (int i = 0; i < n; ++i) {
    s.x[i] = x ? x[i] : i + 1;
    s.y[i] = y[i];
  }
  p->s[p->ns++] = s;
  return 0;
}

int plot_set_right_label(plot *p, const char *label) {
  if (!p) {
    errno = EINVAL;
    return -1;
  }
  return set_text(&p->rlabel, label);
}

int plot_set_size(plot *p, int width, int height) {
  if (!p || width < 200 || height < 200 || width > 4000 || height > 4000) {
    errno = EINVAL;
    return -1;
  }
  p->width = width;
  p->height = height;
  return 0;
}

/* ---- ticks ---------------------------------------------------------------------------------- */
/* 1, 2 or 5 times a power of ten, near x (> 0) */
static double nice_step(double x) {
  double e = floor(log10(x)), f = x / pow(10, e);
  double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  return nf * pow(10, e);
}

int plot_nice_ticks(double min, double max, int target, int integer, plot_ticks *t) {
  if (!t || !isfinite(min) || !isfinite(max) || min > max || target < 2 || !isfinite(max - min)) {
    errno = EINVAL;
    return -1;
  }
  if (integer) {
    min = floor(min);
    max = ceil(max);
  }
  if (max == min) { /* a single value: an axis around it */
    double d = integer || min == 0 ? 1 : fabs(min) * 0.1;
    min -= d;
    max += d;
  }
  double step = nice_step((max - min) / (target - 1));
  if (integer && step < 1) step = 1;
  double lo = floor(min / step + 1e-9) * step, hi = ceil(max / step - 1e-9) * step;
  t->lo = lo;
  t->hi = hi;
  t->step = step;
  t->count = (int)llround((hi - lo) / step) + 1;
  t->decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  return 0;
}

void plot_tick_label(const plot_ticks *t, int i, char *buf, size_t cap) {
  double v = t->lo + i * t->step;
  if (fabs(v) < t->step * 1e-6) v = 0; /* no "-0" and no "1.2e-17" */
  snprintf(buf, cap, "%.*f", t->decimals, v);
  if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1)) memmove(buf, buf + 1, strlen(buf));
}

/* ---- drawing -------------------------------------------------------------------------------- */
static const double palette[][3] = {
    {0x1f / 255.0, 0x77 / 255.0, 0xb4 / 255.0}, {0xff / 255.0, 0x7f / 255.0, 0x0e / 255.0},
    {0x2c / 255.0, 0xa0 / 255.0, 0x2c / 255.0}, {0xd6 / 255.0, 0x27 / 255.0, 0x28 / 255.0},
    {0x94 / 255.0, 0x67 / 255.0, 0xbd / 255.0}, {0x8c / 255.0, 0x56 / 255.0, 0x4b / 255.0},
    {0xe3 / 255.0, 0x77 / 255.0, 0xc2 / 255.0}, {0x7f / 255.0, 0x7f / 255.0, 0x7f / 255.0},
    {0xbc / 255.0, 0xbd / 255.0, 0x22 / 255.0}, {0x17 / 255.0, 0xbe / 255.0, 0xcf / 255.0}};
static const double PI = 3.14159265358979323846;
enum { N_COLOURS = sizeof palette / sizeof *palette, MARKERS_UP_TO = 40 };

typedef struct {
  double min, max;
  int points, integer;
} extent;

/* the range of the finite points of the x values (axis < 0) or of one y axis (0 left, 1 right) */
static extent data_extent(const plot *p, int axis) {
  extent e = {INFINITY, -INFINITY, 0, 1};
  for (int k = 0; k < p->ns; ++k) {
    const series *s = &p->s[k];
    if (axis >= 0 && s->right != axis) continue;
    for (int i = 0; i < s->n; ++i) {
      if (!isfinite(s->x[i]) || !isfinite(s->y[i])) continue;
      double v = axis < 0 ? s->x[i] : s->y[i];
      e.min = fmin(e.min, v);
      e.max = fmax(e.max, v);
      e.points++;
      if (v != floor(v) || fabs(v) > 9007199254740992.0) e.integer = 0;
    }
  }
  if (!e.points) e = (extent){0, 1, 0, 0};
  return e;
}

static double text_width(cairo_t *cr, const char *s) {
  cairo_text_extents_t te;
  cairo_text_extents(cr, s, &te);
  return te.x_advance;
}

/* text with its anchor at (x, y): ax 0 left, 0.5 centre, 1 right; y is the vertical centre */
static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double angle) {
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -ax * text_width(cr, s), (fe.ascent - fe.descent) / 2);
  cairo_show_text(cr, s);
  cairo_restore(cr);
}

static void font(cairo_t *cr, double size, int bold) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

static double widest_label(cairo_t *cr, const plot_ticks *t) {
  double w = 0;
  char buf[64];
  for (int i = 0; i < t->count; ++i) {
    plot_tick_label(t, i, buf, sizeof buf);
    w = fmax(w, text_width(cr, buf));
  }
  return w;
}

static void legend_sample(cairo_t *cr, const series *s, int k, double x, double y) {
  const double *c = palette[k % N_COLOURS];
  cairo_set_source_rgb(cr, c[0], c[1], c[2]);
  cairo_set_line_width(cr, 2);
  double dash[] = {6, 3};
  cairo_set_dash(cr, dash, s->right ? 2 : 0, 0);
  cairo_move_to(cr, x, y);
  cairo_line_to(cr, x + 28, y);
  cairo_stroke(cr);
  cairo_set_dash(cr, NULL, 0, 0);
  if (s->n <= MARKERS_UP_TO) {
    cairo_arc(cr, x + 14, y, 3, 0, 2 * PI);
    cairo_fill(cr);
  }
}

static void legend_text(const series *s, int both, char *buf, size_t cap) {
  snprintf(buf, cap, "%s%s", s->label, both && s->right ? " (right axis)" : "");
}

static void draw(const plot *p, cairo_t *cr) {
  const double W = p->width, H = p->height, tick_size = 11, label_size = 13, legend_size = 12;
  extent ex = data_extent(p, -1), el = data_extent(p, 0), er = data_extent(p, 1);
  int has_left = 0, has_right = 0;
  for (int k = 0; k < p->ns; ++k) {
    if (p->s[k].right) has_right = 1;
    else has_left = 1;
  }
  if (!has_left && !has_right) has_left = 1;
  int both = has_left && has_right;

  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);

  /* the margins: title above; tick labels, axis labels and the legend around the plot area */
  double top = p->title ? 42 : 16;
  plot_ticks tl = {0}, tr = {0}, tx;
  /* about a tick per 45 pixels of height and 70 of width (from the size alone, so that labels and
   * the legend never change the ticks) */
  int ytarget = (int)fmax(3, fmin(10, (H - 160) / 45));
  plot_nice_ticks(ex.min, ex.max, (int)fmax(3, fmin(12, (W - 160) / 70)), ex.integer, &tx);
  if (has_left) plot_nice_ticks(el.min, el.max, ytarget, el.integer, &tl);
  if (has_right) plot_nice_ticks(er.min, er.max, ytarget, er.integer, &tr);
  font(cr, tick_size, 0);
  double left = 14 + (has_left ? widest_label(cr, &tl) + 8 : 0) + (has_left && p->ylabel ? label_size + 10 : 0);
  double right = has_right ? 14 + widest_label(cr, &tr) + 8 + (p->rlabel ? label_size + 10 : 0) : 24;
  if (!has_left) left = 30;

  /* legend rows, laid out left to right within the width */
  font(cr, legend_size, 0);
  double row_h = legend_size + 8, x_room = W - 40;
  int rows = 0;
  double lx = x_room; /* forces a first row */
  char buf[512];
  for (int k = 0; k < p->ns; ++k) {
    if (!p->s[k].label) continue;
    legend_text(&p->s[k], both, buf, sizeof buf);
    double w = 28 + 6 + text_width(cr, buf) + 22;
    if (lx + w > x_room && lx > 0) {
      rows++;
      lx = 0;
    }
    lx += w;
  }
  double bottom = 10 + tick_size + 8 + (p->xlabel ? label_size + 10 : 0) + rows * row_h + (rows ? 8 : 0);
  double x0 = left, x1 = W - right, y0 = top, y1 = H - bottom;
  if (x1 - x0 < 40) x1 = x0 + 40;
  if (y1 - y0 < 40) y1 = y0 + 40;
#define PX(v) (x0 + ((v) - tx.lo) / (tx.hi - tx.lo) * (x1 - x0))
#define PY(t, v) (y1 - ((v) - (t).lo) / ((t).hi - (t).lo) * (y1 - y0))

  /* grid of the x ticks and of the main y axis's ticks */
  const plot_ticks *grid_y = has_left ? &tl : &tr;
  cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
  cairo_set_line_width(cr, 1);
  for (int i = 0; i < tx.count; ++i) {
    double x = floor(PX(tx.lo + i * tx.step)) + 0.5;
    cairo_move_to(cr, x, y0);
    cairo_line_to(cr, x, y1);
  }
  for (int i = 0; i < grid_y->count; ++i) {
    double y = floor(PY(*grid_y, grid_y->lo + i * grid_y->step)) + 0.5;
    cairo_move_to(cr, x0, y);
    cairo_line_to(cr, x1, y);
  }
  cairo_stroke(cr);

  /* the lines, clipped to the plot area */
  cairo_save(cr);
  cairo_rectangle(cr, x0, y0, x1 - x0, y1 - y0);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  for (int k = 0; k < p->ns; ++k) {
    const series *s = &p->s[k];
    const plot_ticks *ty = s->right ? &tr : &tl;
    const double *c = palette[k % N_COLOURS];
    double dash[] = {6, 3};
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, 2);
    cairo_set_dash(cr, dash, s->right ? 2 : 0, 0);
    int pen = 0;
    for (int i = 0; i < s->n; ++i) {
      if (!isfinite(s->x[i]) || !isfinite(s->y[i])) {
        pen = 0;
        continue;
      }
      double x = PX(s->x[i]), y = PY(*ty, s->y[i]);
      if (pen) cairo_line_to(cr, x, y);
      else cairo_move_to(cr, x, y);
      pen = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    if (s->n <= MARKERS_UP_TO)
      for (int i = 0; i < s->n; ++i) {
        if (!isfinite(s->x[i]) || !isfinite(s->y[i])) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, PX(s->x[i]), PY(*ty, s->y[i]), 3, 0, 2 * PI);
        cairo_fill(cr);
      }
  }
  cairo_restore(cr);

  /* frame, ticks and their labels */
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, floor(x0) + 0.5, floor(y0) + 0.5, floor(x1) - floor(x0), floor(y1) - floor(y0));
  cairo_stroke(cr);
  font(cr, tick_size, 0);
  for (int i = 0; i < tx.count; ++i) {
    double x = floor(PX(tx.lo + i * tx.step)) + 0.5;
    cairo_move_to(cr, x, y1);
    cairo_line_to(cr, x, y1 + 5);
    cairo_stroke(cr);
    plot_tick_label(&tx, i, buf, sizeof buf);
    text_at(cr, buf, x, y1 + 8 + tick_size / 2, 0.5, 0);
  }
  for (int side = 0; side < 2; ++side) {
    if (!(side ? has_right : has_left)) continue;
    const plot_ticks *t = side ? &tr : &tl;
    double x = side ? floor(x1) + 0.5 : floor(x0) + 0.5, dir = side ? 1 : -1;
    for (int i = 0; i < t->count; ++i) {
      double y = floor(PY(*t, t->lo + i * t->step)) + 0.5;
      cairo_move_to(cr, x, y);
      cairo_line_to(cr, x + 5 * dir, y);
      cairo_stroke(cr);
      plot_tick_label(t, i, buf, sizeof buf);
      text_at(cr, buf, x + 8 * dir, y, side ? 0 : 1, 0);
    }
  }

  /* axis labels and title */
  cairo_set_source_rgb(cr, 0, 0, 0);
  font(cr, label_size, 0);
  double xlabel_y = y1 + 8 + tick_size + 8 + label_size / 2;
  if (p->xlabel) text_at(cr, p->xlabel, (x0 + x1) / 2, xlabel_y, 0.5, 0);
  if (has_left && p->ylabel) text_at(cr, p->ylabel, 10 + label_size / 2, (y0 + y1) / 2, 0.5, -PI / 2);
  if (has_right && p->rlabel) text_at(cr, p->rlabel, W - 10 - label_size / 2, (y0 + y1) / 2, 0.5, -PI / 2);
  if (p->title) {
    font(cr, 16, 1);
    text_at(cr, p->title, W / 2, 22, 0.5, 0);
  }

  /* legend */
  font(cr, legend_size, 0);
  double ly = (p->xlabel ? xlabel_y + label_size / 2 : y1 + 8 + tick_size) + 8 + row_h / 2;
  lx = x_room;
  int row = -1;
  for (int k = 0; k < p->ns; ++k) {
    const series *s = &p->s[k];
    if (!s->label) continue;
    legend_text(s, both, buf, sizeof buf);
    double w = 28 + 6 + text_width(cr, buf) + 22;
    if (lx + w > x_room && lx > 0) {
      row++;
      lx = 0;
    }
    double x = 20 + lx, y = ly + row * row_h;
    legend_sample(cr, s, k, x, y);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, buf, x + 34, y, 0, 0);
    lx += w;
  }
#undef PX
#undef PY
}

/* ---- output --------------------------------------------------------------------------------- */
typedef struct {
  FILE *f;
  int err; /* errno of the first failed write */
} sink;

static cairo_status_t sink_write(void *closure, const unsigned char *data, unsigned int len) {
  sink *k = closure;
  if (k->err) return CAIRO_STATUS_WRITE_ERROR;
  if (fwrite(data, 1, len, k->f) != len) {
    k->err = errno ? errno : EIO;
    return CAIRO_STATUS_WRITE_ERROR;
  }
  return CAIRO_STATUS_SUCCESS;
}

/* draws p on s (created to write into k) and finishes it; 0 or -1 with errno */
static int finish(const plot *p, cairo_surface_t *s, sink *k, int png) {
  cairo_status_t st = cairo_surface_status(s);
  if (st == CAIRO_STATUS_SUCCESS) {
    cairo_t *cr = cairo_create(s);
    draw(p, cr);
    st = cairo_status(cr);
    cairo_destroy(cr);
  }
  if (st == CAIRO_STATUS_SUCCESS && png) st = cairo_surface_write_to_png_stream(s, sink_write, k);
  cairo_surface_finish(s);
  if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(s);
  cairo_surface_destroy(s);
  if (st == CAIRO_STATUS_SUCCESS) return 0;
  errno = st == CAIRO_STATUS_NO_MEMORY ? ENOMEM : k->err ? k->err : EIO;
  return -1;
}

static int write_plot(const plot *p, const char *path, int png) {
  if (!p || !path) {
    errno = EINVAL;
    return -1;
  }
  sink k = {fopen(path, "wb"), 0};
  if (!k.f) return -1;
  cairo_surface_t *s;
  if (png) {
    s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, p->width, p->height);
  } else {
    s = cairo_svg_surface_create_for_stream(sink_write, &k, p->width, p->height);
    cairo_svg_surface_restrict_to_version(s, CAIRO_SVG_VERSION_1_1);
    cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX);
  }
  int r = finish(p, s, &k, png);
  int err = errno;
  struct stat st;
  int regular = fstat(fileno(k.f), &st) == 0 && S_ISREG(st.st_mode);
  if (fclose(k.f) != 0 && r == 0) {
    r = -1;
    err = errno;
  }
  if (r != 0) {
    if (regular) remove(path); /* no half-written picture (and never a device) */
    errno = err;
  }
  return r;
}

int plot_write_svg(const plot *p, const char *path) { return write_plot(p, path, 0); }

int plot_write_png(const plot *p, const char *path) { return write_plot(p, path, 1); }

void plot_cleanup(void) {
  cairo_debug_reset_static_data();
  FcFini();
}
