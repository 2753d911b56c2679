/*
 * plot.h — line charts for the example programs, drawn with cairo and written as SVG or PNG.
 *
 *     plot *p = plot_create("Training", "epoch", "loss");
 *     plot_add_series(p, "training loss", epochs, loss, n, 0);
 *     plot_add_series(p, "test accuracy (%)", epochs, acc, n, 1);   // right y axis
 *     plot_set_right_label(p, "accuracy (%)");
 *     plot_write_svg(p, "training.svg");
 *     plot_write_png(p, "training.png");
 *     plot_free(p);
 *
 * Conventions:
 *  - Strings (UTF-8) and data arrays are copied; callers keep ownership. NULL or "" means none
 *    (no title, no axis label, no legend entry).
 *  - Points whose x or y is not finite are skipped and break the line.
 *  - Ticks are "nice" (1, 2 or 5 times a power of ten apart). An axis whose values are all
 *    integers (the epochs of a training run) gets integer ticks only.
 *  - The legend sits below the x axis, so it never hides a curve.
 *  - Functions returning int return 0 on success and -1 on error with errno set (EINVAL for bad
 *    arguments, ENOMEM, the error of the failing file operation, or EIO when cairo fails).
 */
#ifndef CLTAPE_EXAMPLES_PLOT_H
#define CLTAPE_EXAMPLES_PLOT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plot plot;

/* A new empty plot of 800x500 pixels. NULL (errno = ENOMEM) when out of memory. */
plot *plot_create(const char *title, const char *xlabel, const char *ylabel);

/* Adds a line of n >= 0 points; x may be NULL, meaning x[i] = i + 1. right_axis = 1 puts it on a
 * second y axis on the right, with its own scale (loss left, accuracy in % right); such lines
 * are dashed. Lines are coloured in the order they are added. */
int plot_add_series(plot *p, const char *label, const double *x, const double *y, int n, int right_axis);

/* Label of the right y axis. */
int plot_set_right_label(plot *p, const char *label);

/* Size in pixels (default 800x500), each side within [200, 4000]. */
int plot_set_size(plot *p, int width, int height);

/* Writes the plot as an SVG file, or as a PNG file of the plot's size. */
int plot_write_svg(const plot *p, const char *path);
int plot_write_png(const plot *p, const char *path);

void plot_free(plot *p);

/* Frees what cairo and fontconfig keep for the whole process (fonts, caches), so that a leak
 * checker sees nothing left at exit. Call it at the end, when no plot is being written; a plot
 * written afterwards loads them again. */
void plot_cleanup(void);

/* ---- the axis ticks (exposed for the tests) ---------------------------------------------- */
typedef struct {
  double lo, hi, step; /* the axis runs from lo to hi; ticks at lo, lo + step, ..., hi */
  int count;           /* number of ticks: (hi - lo) / step + 1 */
  int decimals;        /* digits after the decimal point that the labels need */
} plot_ticks;

/* Ticks for data between min and max (finite, min <= max), about target (>= 2) of them, each
 * step 1, 2 or 5 times a power of ten. integer != 0: the step is a whole number (at least 1),
 * so every tick is an integer. A single value gets an axis around it. -1 (EINVAL) on bad input. */
int plot_nice_ticks(double min, double max, int target, int integer, plot_ticks *t);

/* The label of tick i ("0.25", "12"; never "-0" or "0.30000000000000004"). */
void plot_tick_label(const plot_ticks *t, int i, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* CLTAPE_EXAMPLES_PLOT_H */
