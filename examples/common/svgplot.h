/*
 * svgplot.h — small dependency-free SVG line and bar charts for the example programs.
 *
 * Line plots:
 *
 *     svgplot *p = svgplot_create("Training", "epoch", "loss");
 *     svgplot_add_series(p, "train loss", epochs, loss, n, 0);
 *     svgplot_add_series(p, "accuracy", epochs, acc, n, 1);   // secondary (right) y axis
 *     svgplot_set_right_label(p, "accuracy");
 *     svgplot_write_svg(p, "training.svg");
 *     svgplot_write_png("training.svg", "training.png");         // optional, needs a converter
 *     svgplot_free(p);
 *
 * Conventions:
 *  - Strings are UTF-8. They are copied, so callers keep ownership. NULL or "" means "none"
 *    (no title, no axis label, no legend entry). Text is XML-escaped on output; bytes that are
 *    not valid UTF-8 are replaced with U+FFFD.
 *  - Data arrays are copied when a series is added. Points whose x or y is NaN or infinite are
 *    skipped and break the line (a gap is drawn); on a logarithmic axis, points with y <= 0 are
 *    skipped the same way.
 *  - Functions returning int return 0 on success and -1 on error with errno set (EINVAL for bad
 *    arguments, ENOMEM, or the error of the failing file operation).
 *  - Output is independent of the C locale (a decimal comma never reaches the SVG).
 */
#ifndef SVGPLOT_H
#define SVGPLOT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct svgplot svgplot;

/* New empty plot with an 800x500 canvas. Returns NULL (errno = ENOMEM) on allocation failure. */
svgplot *svgplot_create(const char *title, const char *xlabel, const char *ylabel);

/* Adds a series of n points (n >= 0). x may be NULL, meaning x[i] = i. right_axis = 1 puts
 * the series on a secondary y axis on the right with its own scale (for example loss on the
 * left and accuracy on the right); right_axis = 0 uses the left axis. When both axes are in
 * use, legend entries of right-axis series read "label (right axis)". Series are coloured in
 * the order they are added (ten colours, then the same colours dashed). */
int svgplot_add_series(svgplot *p, const char *label, const double *x, const double *y, int n,
                       int right_axis);

/* Label of the secondary (right) y axis. */
void svgplot_set_right_label(svgplot *p, const char *label);

/* Logarithmic scale for the left (right_axis = 0) or right (right_axis = 1) y axis. */
void svgplot_set_log_y(svgplot *p, int right_axis, int on);

/* Canvas size in pixels (default 800x500; each side is clamped to [200, 4000]). */
void svgplot_set_size(svgplot *p, int width, int height);

/* Writes the plot as a standalone SVG file. 0 on success, -1 on error (errno kept). */
int svgplot_write_svg(const svgplot *p, const char *path);

/* Name of the SVG-to-PNG converter svgplot_write_png would use ("rsvg-convert", "magick" or
 * "convert", searched in that order on PATH), or NULL when none is available. */
const char *svgplot_png_converter(void);

/* Converts an SVG file to PNG with the converter above (run directly, without a shell).
 * Returns 0 on success, 1 when no converter is available, -1 when the converter could not be
 * started or failed (errno set; EIO when it exited with an error). */
int svgplot_write_png(const char *svg_path, const char *png_path);

void svgplot_free(svgplot *p);

/* Grouped bar chart, for benchmark reports. values holds n_groups * n_series numbers, group
 * major: values[g * n_series + s] is series s in group g. NaN (or any non-finite value, or a
 * value <= 0 when log_scale is set) marks a missing measurement and is drawn as "n/a".
 * group_labels may be NULL (groups are numbered); series_labels may be NULL (no legend). */
int svgplot_write_bars(const char *path, const char *title, const char *ylabel,
                       const char *const *group_labels, int n_groups,
                       const char *const *series_labels, int n_series, const double *values,
                       int log_scale);

/* Self-test (svgplot_selftest.c): writes sample plots into dir (created if missing), checks
 * them and converts them to PNG when a converter exists. Returns the number of failed checks,
 * 0 when everything passed; details go to stderr. */
int svgplot_selftest(const char *dir);

#ifdef __cplusplus
}
#endif

#endif /* SVGPLOT_H */
