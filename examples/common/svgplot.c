/*
 * svgplot.c — small dependency-free SVG line and bar charts. See svgplot.h.
 *
 * Layout is computed from estimated text widths (DejaVu Sans metrics, which are on the wide
 * side of common sans-serif fonts, so labels do not collide when another font is used).
 */
#define _POSIX_C_SOURCE 200809L

#include "svgplot.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define FONT_FAMILY "DejaVu Sans, Helvetica, Arial, sans-serif"
#define FS_TITLE 16.0
#define FS_LABEL 13.0
#define FS_TICK 12.0
#define FS_LEGEND 12.0
#define FS_VALUE 10.0
#define TICK_LEN 5.0
#define MAX_TICKS 160

static const char *const palette[] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};
#define N_COLORS ((int)(sizeof palette / sizeof palette[0]))
static const char *const dashes[] = {NULL, "7 4", "2 3"};

/* ------------------------------------------------------------------------------------------ */
/* Growable output buffer                                                                       */

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

static int sb_reserve(sbuf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (sb_reserve(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

/* printf-style append. Only used with %s, %d and pre-formatted numbers, never %f/%g. */
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (sb_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Replaces the locale's decimal separator by '.', in place. */
static void fix_decimal_point(char *buf)
{
    const char *dp = localeconv()->decimal_point;
    if (!dp || !dp[0] || (dp[0] == '.' && dp[1] == '\0'))
        return;
    size_t dl = strlen(dp);
    char *hit;
    while ((hit = strstr(buf, dp)) != NULL) {
        *hit = '.';
        memmove(hit + 1, hit + dl, strlen(hit + dl) + 1);
    }
}

/* Coordinate with at most two decimals, trailing zeros removed. */
static void fmt_coord(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        v = 0;
    if (fabs(v) < 0.005)
        v = 0;
    snprintf(buf, n, "%.2f", v);
    fix_decimal_point(buf);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + strlen(buf) - 1;
        while (e > dot && *e == '0')
            *e-- = '\0';
        if (e == dot)
            *e = '\0';
    }
}

static void sb_num(sbuf *b, double v)
{
    char buf[64];
    fmt_coord(buf, sizeof buf, v);
    sb_puts(b, buf);
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 text: decoding, XML escaping, width estimates                                          */

/* Decodes one code point at s; returns its length in bytes (>= 1) and sets *cp, or sets *cp
 * to -1 for an invalid sequence (consuming one byte). */
static int utf8_next(const unsigned char *s, long *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (long)c;
        return 1;
    }
    int len;
    long v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = -1;
        return 1;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || v == 0xFFFE || v == 0xFFFF) {
        *cp = -1;
        return 1;
    }
    *cp = v;
    return len;
}

/* Appends text as XML character data / attribute value. */
static void sb_text(sbuf *b, const char *text)
{
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    while (*s) {
        long cp;
        int len = utf8_next(s, &cp);
        if (cp < 0) {
            sb_puts(b, "\xEF\xBF\xBD");
        } else if (cp == '&') {
            sb_puts(b, "&amp;");
        } else if (cp == '<') {
            sb_puts(b, "&lt;");
        } else if (cp == '>') {
            sb_puts(b, "&gt;");
        } else if (cp == '"') {
            sb_puts(b, "&quot;");
        } else if (cp == '\'') {
            sb_puts(b, "&apos;");
        } else if (cp < 0x20) {
            sb_puts(b, " "); /* control characters are not allowed in XML 1.0 */
        } else {
            sb_putn(b, (const char *)s, (size_t)len);
        }
        s += len;
    }
}

/* Advance width of one code point in em (DejaVu Sans). */
static double glyph_em(long cp)
{
    if (cp < 0)
        return 1.0;
    if (cp < 0x80) {
        char c = (char)cp;
        if (c == ' ')
            return 0.318;
        if (c >= '0' && c <= '9')
            return 0.636;
        if (strchr("il.,:;'!|`", c))
            return 0.278;
        if (strchr("jI", c))
            return 0.295;
        if (strchr("ftr", c))
            return 0.41;
        if (strchr("()[]{}-", c))
            return 0.39;
        if (strchr("mM", c))
            return c == 'm' ? 0.974 : 0.863;
        if (strchr("wW", c))
            return c == 'w' ? 0.818 : 0.989;
        if (strchr("sz", c))
            return 0.53;
        if (c >= 'a' && c <= 'z')
            return 0.615;
        if (c >= 'A' && c <= 'Z')
            return 0.72;
        if (strchr("=+<>~^#*", c))
            return 0.838;
        if (c == '%')
            return 0.95;
        if (c == '@')
            return 1.0;
        return 0.6;
    }
    if (cp == 0xB9 || cp == 0xB2 || cp == 0xB3 || (cp >= 0x2070 && cp <= 0x207F))
        return 0.4;
    if (cp == 0xD7 || cp == 0x2212)
        return 0.838;
    if (cp == 0x2026 || cp == 0x2014)
        return 1.0;
    if (cp >= 0x2E80) /* CJK and other wide scripts */
        return 1.0;
    return 0.65;
}

static double text_width(const char *text, double size)
{
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    double w = 0;
    while (*s) {
        long cp;
        s += utf8_next(s, &cp);
        w += glyph_em(cp);
    }
    return w * size;
}

static int is_empty(const char *s) { return !s || !s[0]; }

/* Copy of text shortened with an ellipsis so that it is at most maxw pixels wide. */
static char *fit_text(const char *text, double size, double maxw)
{
    if (!text)
        text = "";
    if (text_width(text, size) <= maxw)
        return strdup(text);
    const double ell = glyph_em(0x2026) * size;
    const unsigned char *s = (const unsigned char *)text;
    size_t keep = 0;
    double w = 0;
    while (s[keep]) {
        long cp;
        int len = utf8_next(s + keep, &cp);
        if (w + glyph_em(cp) * size + ell > maxw)
            break;
        w += glyph_em(cp) * size;
        keep += (size_t)len;
    }
    while (keep > 0 && text[keep - 1] == ' ')
        keep--;
    char *out = malloc(keep + 4);
    if (!out)
        return NULL;
    memcpy(out, text, keep);
    memcpy(out + keep, "\xE2\x80\xA6", 4);
    return out;
}

/* <text> element. anchor: "start", "middle" or "end". rotate: degrees about (x, y). */
static void sb_text_elem(sbuf *b, double x, double y, double size, const char *anchor,
                         double rotate, const char *extra, const char *text)
{
    sb_puts(b, "<text x=\"");
    sb_num(b, x);
    sb_puts(b, "\" y=\"");
    sb_num(b, y);
    sb_puts(b, "\"");
    if (size > 0) {
        sb_puts(b, " font-size=\"");
        sb_num(b, size);
        sb_puts(b, "\"");
    }
    if (anchor && strcmp(anchor, "start") != 0)
        sb_printf(b, " text-anchor=\"%s\"", anchor);
    if (rotate != 0) {
        sb_puts(b, " transform=\"rotate(");
        sb_num(b, rotate);
        sb_puts(b, " ");
        sb_num(b, x);
        sb_puts(b, " ");
        sb_num(b, y);
        sb_puts(b, ")\"");
    }
    if (extra)
        sb_printf(b, " %s", extra);
    sb_puts(b, ">");
    sb_text(b, text);
    sb_puts(b, "</text>\n");
}

static void sb_line(sbuf *b, double x1, double y1, double x2, double y2)
{
    sb_puts(b, "<line x1=\"");
    sb_num(b, x1);
    sb_puts(b, "\" y1=\"");
    sb_num(b, y1);
    sb_puts(b, "\" x2=\"");
    sb_num(b, x2);
    sb_puts(b, "\" y2=\"");
    sb_num(b, y2);
    sb_puts(b, "\"/>\n");
}

static void sb_rect(sbuf *b, double x, double y, double w, double h, const char *attrs)
{
    sb_puts(b, "<rect x=\"");
    sb_num(b, x);
    sb_puts(b, "\" y=\"");
    sb_num(b, y);
    sb_puts(b, "\" width=\"");
    sb_num(b, w > 0 ? w : 0);
    sb_puts(b, "\" height=\"");
    sb_num(b, h > 0 ? h : 0);
    sb_printf(b, "\" %s/>\n", attrs ? attrs : "");
}

/* Pixel-snapped position for crisp 1px lines. */
static double crisp(double v) { return floor(v) + 0.5; }

/* ------------------------------------------------------------------------------------------ */
/* Number formatting                                                                            */

/* "e+06" -> "e6", "e-05" -> "e-5" */
static void compact_exponent(char *buf)
{
    char *e = strchr(buf, 'e');
    if (!e)
        return;
    char *src = e + 1, *dst = e + 1;
    if (*src == '+')
        src++;
    else if (*src == '-')
        *dst++ = *src++;
    while (*src == '0' && src[1])
        src++;
    memmove(dst, src, strlen(src) + 1);
}

static void append_superscript(char *buf, size_t n, int k)
{
    static const char *const sup[] = {
        "\xE2\x81\xB0", "\xC2\xB9", "\xC2\xB2", "\xC2\xB3", "\xE2\x81\xB4",
        "\xE2\x81\xB5", "\xE2\x81\xB6", "\xE2\x81\xB7", "\xE2\x81\xB8", "\xE2\x81\xB9",
    };
    char digits[16];
    snprintf(digits, sizeof digits, "%d", k < 0 ? -k : k);
    if (k < 0)
        strncat(buf, "\xE2\x81\xBB", n - strlen(buf) - 1);
    for (const char *d = digits; *d; d++)
        strncat(buf, sup[*d - '0'], n - strlen(buf) - 1);
}

/* Replaces a leading '-' (and one after an exponent 'e') by the typographic minus U+2212. */
static void typographic_minus(char *buf, size_t n)
{
    for (char *c = buf; *c; c++) {
        if (*c != '-' || (c != buf && c[-1] != 'e'))
            continue;
        size_t rest = strlen(c + 1);
        if ((size_t)(c - buf) + 3 + rest + 1 > n)
            return;
        memmove(c + 3, c + 1, rest + 1);
        memcpy(c, "\xE2\x88\x92", 3);
        c += 2;
    }
}

/* Tick label for value v on a linear scale with tick spacing step (both already divided by
 * the axis multiplier): as many decimals as the step needs, typographic minus. */
static void fmt_linear_label(char *buf, size_t n, double v, double step)
{
    int es = (int)floor(log10(step) + 1e-9);
    int dec = es < 0 ? -es : 0;
    if (dec > 15)
        dec = 15;
    if (fabs(v) < step * 1e-9)
        v = 0;
    snprintf(buf, n, "%.*f", dec, v);
    fix_decimal_point(buf);
    typographic_minus(buf, n);
}

/* Tick label for m * 10^k on a logarithmic scale (m in 1..9): plain decimals, or powers of
 * ten when pow_form is set (used for the whole axis once it reaches very large or small
 * values, so that all labels look alike). */
static void fmt_log_label(char *buf, size_t n, int m, int k, int pow_form)
{
    if (!pow_form) {
        snprintf(buf, n, "%.*f", k < 0 ? -k : 0, m * pow(10.0, k));
        fix_decimal_point(buf);
        return;
    }
    if (m == 1)
        snprintf(buf, n, "10");
    else
        snprintf(buf, n, "%d\xC3\x97" "10", m);
    append_superscript(buf, n, k);
}

/* Value printed above a bar: three significant digits. */
static void fmt_value(char *buf, size_t n, double v)
{
    double a = fabs(v);
    if (a != 0 && (a >= 1e6 || a < 1e-3)) {
        snprintf(buf, n, "%.2e", v);
        fix_decimal_point(buf);
        /* 3.00e-07 -> 3e-07, 1.50e+06 -> 1.5e+06 */
        char *e = strchr(buf, 'e'), *dot = strchr(buf, '.');
        if (e && dot && dot < e) {
            char *z = e;
            while (z > dot + 1 && z[-1] == '0')
                z--;
            if (z == dot + 1)
                z = dot;
            memmove(z, e, strlen(e) + 1);
        }
        compact_exponent(buf);
        typographic_minus(buf, n);
        return;
    }
    int mag = a == 0 ? 0 : (int)floor(log10(a));
    int dec = 2 - mag;
    if (dec < 0)
        dec = 0;
    snprintf(buf, n, "%.*f", dec, v);
    fix_decimal_point(buf);
    /* drop trailing zeros: 0.810 -> 0.81, 12.0 -> 12 */
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + strlen(buf) - 1;
        while (e > dot && *e == '0')
            *e-- = '\0';
        if (e == dot)
            *e = '\0';
    }
    typographic_minus(buf, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Axes and ticks                                                                               */

typedef struct {
    double v;      /* data value */
    int major;     /* labelled tick (minor ticks are short, unlabelled, without grid line) */
    char lab[48];
} tick;

typedef struct {
    double lo, hi; /* range, in log10 units on a logarithmic axis */
    int log;
    int used;
    int mult;     /* linear labels are value / 10^mult; shown as "(x10^mult)" in the axis title */
    int pow_form; /* logarithmic labels written as 10^k */
    tick t[MAX_TICKS];
    int nt;
} axis;

static double axis_tr(const axis *a, double v) { return a->log ? log10(v) : v; }

static double axis_frac(const axis *a, double v)
{
    /* halves keep the arithmetic finite even for ranges near DBL_MAX */
    double d = a->hi / 2 - a->lo / 2;
    return d > 0 ? (axis_tr(a, v) / 2 - a->lo / 2) / d : 0.5;
}

static double max_label_width(const axis *a, double size)
{
    double w = 0;
    for (int i = 0; i < a->nt; i++)
        if (a->t[i].major) {
            double tw = text_width(a->t[i].lab, size);
            if (tw > w)
                w = tw;
        }
    return w;
}

static int n_major(const axis *a)
{
    int n = 0;
    for (int i = 0; i < a->nt; i++)
        n += a->t[i].major;
    return n;
}

/* 1, 2, 5 x 10^e */
static double nice_value(int idx, int e)
{
    static const double m[] = {1, 2, 5};
    return m[idx] * pow(10.0, e);
}

/* Linear ticks at multiples of step inside [lo, hi] (data units). Returns -1 if too many. */
static int gen_linear(axis *a, double lo, double hi, double step)
{
    double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
    if (!(k1 - k0 < MAX_TICKS))
        return -1;
    double maxabs = fmax(fabs(k0 * step), fabs(k1 * step));
    int e = maxabs > 0 ? (int)floor(log10(maxabs) + 1e-9) : 0;
    /* very large or small values: factor out a power of ten that is a multiple of three */
    a->mult = e >= 6 || e <= -4 ? 3 * (int)floor(e / 3.0) : 0;
    double scale = pow(10.0, -a->mult);
    a->nt = 0;
    for (double k = k0; k <= k1; k++) {
        tick *t = &a->t[a->nt++];
        t->v = k * step;
        if (fabs(t->v) < step * 1e-9)
            t->v = 0;
        t->major = 1;
        fmt_linear_label(t->lab, sizeof t->lab, t->v * scale, step * scale);
    }
    return 0;
}

/* Smallest pixel distance between neighbouring major ticks. */
static double min_spacing(const axis *a, double pixlen)
{
    double best = INFINITY, prev = NAN;
    for (int i = 0; i < a->nt; i++) {
        if (!a->t[i].major)
            continue;
        double px = axis_frac(a, a->t[i].v) * pixlen;
        if (!isnan(prev) && fabs(px - prev) < best)
            best = fabs(px - prev);
        prev = px;
    }
    return best;
}

/* Do the labelled ticks fit? Horizontal axes also need room for the label text. */
static int ticks_fit(const axis *a, double pixlen, double min_space, int horizontal)
{
    double need = min_space;
    if (horizontal) {
        double w = max_label_width(a, FS_TICK) + 14;
        if (w > need)
            need = w;
    }
    return min_spacing(a, pixlen) >= need;
}

static void choose_linear_ticks(axis *a, double pixlen, double min_space, int horizontal)
{
    double lo = a->log ? pow(10.0, a->lo) : a->lo;
    double hi = a->log ? pow(10.0, a->hi) : a->hi;
    double half_range = hi / 2 - lo / 2;
    if (!(half_range > 0)) {
        a->nt = 0;
        return;
    }
    double raw = half_range / 20;
    int e = (int)floor(log10(raw));
    int idx = 0;
    while (nice_value(idx, e) < raw * (1 - 1e-12)) {
        if (++idx == 3)
            idx = 0, e++;
    }
    axis best = *a;
    int have = 0;
    for (int iter = 0; iter < 60; iter++) {
        double step = nice_value(idx, e);
        if (gen_linear(a, lo, hi, step) == 0) {
            if (n_major(a) <= 2 || ticks_fit(a, pixlen, min_space, horizontal))
                return;
            best = *a;
            have = 1;
        }
        if (++idx == 3)
            idx = 0, e++;
    }
    if (have)
        *a = best;
}

static void add_tick(axis *a, double v, int major, int m, int k)
{
    if (a->nt >= MAX_TICKS)
        return;
    tick *t = &a->t[a->nt++];
    t->v = v;
    t->major = major;
    t->lab[0] = '\0';
    if (major)
        fmt_log_label(t->lab, sizeof t->lab, m, k, a->pow_form);
}

static void choose_log_ticks(axis *a, double pixlen, double min_space, int horizontal)
{
    const double eps = 1e-9;
    int d0 = (int)ceil(a->lo - eps), d1 = (int)floor(a->hi + eps);
    int ndec = d1 - d0 + 1;
    double per_decade = pixlen / (a->hi - a->lo);
    a->mult = 0;
    a->pow_form = floor(a->lo + eps) < -4 || ceil(a->hi - eps) > 5;

    if (ndec >= 3) {
        static const int steps[] = {1, 2, 3, 5, 10, 20, 50, 100};
        int s = 1;
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            s = steps[i];
            if (s * per_decade >= min_space && (!horizontal || s * per_decade >= 60))
                break;
        }
        a->nt = 0;
        for (int k = (int)floor(a->lo) - 1; k <= d1 + 1; k++) {
            if (k >= d0 && k <= d1 && ((k % s) + s) % s == 0)
                add_tick(a, pow(10.0, k), 1, 1, k);
            if (s == 1 && per_decade >= 40)
                for (int m = 2; m <= 9; m++) {
                    double lv = k + log10((double)m);
                    if (lv >= a->lo - eps && lv <= a->hi + eps)
                        add_tick(a, m * pow(10.0, k), 0, m, k);
                }
        }
        return;
    }
    /* Less than three decades: label 1, 2, 5 x 10^k, or decades only. */
    for (int variant = 0; variant < 2; variant++) {
        a->nt = 0;
        for (int k = (int)floor(a->lo) - 1; k <= (int)ceil(a->hi) + 1; k++)
            for (int m = 1; m <= 9; m++) {
                double lv = k + log10((double)m);
                if (lv < a->lo - eps || lv > a->hi + eps)
                    continue;
                int major = variant == 0 ? (m == 1 || m == 2 || m == 5) : m == 1;
                add_tick(a, m * pow(10.0, k), major, m, k);
            }
        if (n_major(a) >= 3 && ticks_fit(a, pixlen, min_space, horizontal))
            return;
        if (variant == 1 && n_major(a) >= 2)
            return;
    }
    /* Narrow range: ordinary nice ticks, placed logarithmically. */
    choose_linear_ticks(a, pixlen, min_space, horizontal);
}

static void choose_ticks(axis *a, double pixlen, double min_space, int horizontal)
{
    if (a->log)
        choose_log_ticks(a, pixlen, min_space, horizontal);
    else
        choose_linear_ticks(a, pixlen, min_space, horizontal);
}

/* Sets the range of an axis from data bounds (in data units), with relative padding. */
static void set_range(axis *a, double dmin, double dmax, double pad)
{
    if (!(dmin <= dmax)) { /* no data */
        dmin = a->log ? 1 : 0;
        dmax = a->log ? 10 : 1;
    }
    if (a->log) {
        dmin = log10(dmin);
        dmax = log10(dmax);
    }
    if (dmax - dmin <= fabs(dmax) * 1e-12 || dmax == dmin) {
        double d = a->log ? 0.5 : (dmin != 0 ? fabs(dmin) * 0.1 : 1.0);
        dmin -= d;
        dmax += d;
        pad = 0;
    }
    double half = dmax / 2 - dmin / 2;
    a->lo = fmax(dmin - 2 * half * pad, -DBL_MAX);
    a->hi = fmin(dmax + 2 * half * pad, DBL_MAX);
}

/* ------------------------------------------------------------------------------------------ */
/* Plot object                                                                                  */

typedef struct {
    char *label;
    double *x, *y;
    int n;
    int right;
} series;

struct svgplot {
    char *title, *xlabel, *ylabel, *y2label;
    series *s;
    int ns, cap;
    int width, height;
    int log_y[2];
};

static char *dup_or_null(const char *s) { return is_empty(s) ? NULL : strdup(s); }

svgplot *svgplot_create(const char *title, const char *xlabel, const char *ylabel)
{
    svgplot *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->width = 800;
    p->height = 500;
    p->title = dup_or_null(title);
    p->xlabel = dup_or_null(xlabel);
    p->ylabel = dup_or_null(ylabel);
    if ((!is_empty(title) && !p->title) || (!is_empty(xlabel) && !p->xlabel) ||
        (!is_empty(ylabel) && !p->ylabel)) {
        svgplot_free(p);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

void svgplot_free(svgplot *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->ns; i++) {
        free(p->s[i].label);
        free(p->s[i].x);
        free(p->s[i].y);
    }
    free(p->s);
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    free(p->y2label);
    free(p);
}

int svgplot_add_series(svgplot *p, const char *label, const double *x, const double *y, int n,
                       int right_axis)
{
    if (!p || n < 0 || (n > 0 && !y)) {
        errno = EINVAL;
        return -1;
    }
    if (p->ns == p->cap) {
        int cap = p->cap ? p->cap * 2 : 8;
        series *s = realloc(p->s, (size_t)cap * sizeof *s);
        if (!s) {
            errno = ENOMEM;
            return -1;
        }
        p->s = s;
        p->cap = cap;
    }
    series *s = &p->s[p->ns];
    memset(s, 0, sizeof *s);
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(double);
    s->x = malloc(bytes);
    s->y = malloc(bytes);
    s->label = dup_or_null(label);
    if (!s->x || !s->y || (!is_empty(label) && !s->label)) {
        free(s->x);
        free(s->y);
        free(s->label);
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        s->x[i] = x ? x[i] : (double)i;
        s->y[i] = y[i];
    }
    s->n = n;
    s->right = right_axis ? 1 : 0;
    p->ns++;
    return 0;
}

void svgplot_set_right_label(svgplot *p, const char *label)
{
    if (!p)
        return;
    char *l = dup_or_null(label);
    free(p->y2label);
    p->y2label = l;
}

void svgplot_set_log_y(svgplot *p, int right_axis, int on)
{
    if (p)
        p->log_y[right_axis ? 1 : 0] = on ? 1 : 0;
}

void svgplot_set_size(svgplot *p, int width, int height)
{
    if (!p)
        return;
    p->width = width < 200 ? 200 : width > 4000 ? 4000 : width;
    p->height = height < 200 ? 200 : height > 4000 ? 4000 : height;
}

/* ------------------------------------------------------------------------------------------ */
/* Shared pieces of both chart kinds                                                            */

static void svg_begin(sbuf *b, int w, int h, const char *title)
{
    sb_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    sb_printf(b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
              "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"%s\">\n",
              w, h, w, h, FONT_FAMILY);
    if (!is_empty(title)) {
        sb_puts(b, "<title>");
        sb_text(b, title);
        sb_puts(b, "</title>\n");
    }
    sb_printf(b, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
}

/* Title centred on cx, shrunk and then shortened to fit maxw. */
static void svg_title(sbuf *b, const char *title, double cx, double y, double maxw)
{
    if (is_empty(title))
        return;
    double size = FS_TITLE;
    const double bold = 1.16; /* bold glyphs are wider */
    while (size > 11 && text_width(title, size) * bold > maxw)
        size -= 0.5;
    char *t = fit_text(title, size * bold, maxw);
    if (!t) {
        b->failed = 1;
        return;
    }
    sb_text_elem(b, cx, y, size, "middle", 0, "font-weight=\"bold\" fill=\"#222222\"", t);
    free(t);
}

/* Axis label centred on (cx, cy), optionally rotated, shortened to fit maxw. */
static void svg_axis_label(sbuf *b, const char *label, double cx, double cy, double rotate,
                           double maxw)
{
    if (is_empty(label))
        return;
    char *t = fit_text(label, FS_LABEL, maxw);
    if (!t) {
        b->failed = 1;
        return;
    }
    sb_text_elem(b, cx, cy, FS_LABEL, "middle", rotate, "fill=\"#222222\"", t);
    free(t);
}

static int write_file(const char *path, const sbuf *b)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    if (fwrite(b->s, 1, b->len, f) != b->len) {
        int e = errno ? errno : EIO;
        fclose(f);
        errno = e;
        return -1;
    }
    if (fclose(f) != 0)
        return -1;
    return 0;
}

static int finish(sbuf *b, const char *path)
{
    sb_puts(b, "</svg>\n");
    if (b->failed) {
        free(b->s);
        errno = ENOMEM;
        return -1;
    }
    int rc = write_file(path, b);
    int e = errno;
    free(b->s);
    errno = e;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Line plot                                                                                    */

typedef struct {
    double x, y, w, h;
} box;

typedef struct {
    double *x, *y; /* pixel positions of all drawn samples, for legend placement */
    size_t n, cap;
} samples;

static void samples_add(samples *sm, double x, double y)
{
    if (sm->n == sm->cap) {
        size_t cap = sm->cap ? sm->cap * 2 : 1024;
        double *nx = realloc(sm->x, cap * sizeof *nx);
        if (!nx)
            return;
        sm->x = nx;
        double *ny = realloc(sm->y, cap * sizeof *ny);
        if (!ny)
            return;
        sm->y = ny;
        sm->cap = cap;
    }
    sm->x[sm->n] = x;
    sm->y[sm->n] = y;
    sm->n++;
}

static int point_ok(const axis *ya, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!ya->log || y > 0);
}

typedef struct {
    sbuf *b;
    samples *sm;
    double px, py; /* last emitted point */
    int count;
} polyline_out;

static void emit_point(polyline_out *o, double px, double py)
{
    if (o->count > 0) {
        sb_puts(o->b, " ");
        /* sample long segments so that the legend avoids them too */
        double dx = px - o->px, dy = py - o->py;
        int steps = (int)(sqrt(dx * dx + dy * dy) / 4);
        if (steps > 400)
            steps = 400;
        for (int k = 1; k < steps; k++)
            samples_add(o->sm, o->px + dx * k / steps, o->py + dy * k / steps);
    }
    sb_num(o->b, px);
    sb_puts(o->b, ",");
    sb_num(o->b, py);
    samples_add(o->sm, px, py);
    o->px = px;
    o->py = py;
    o->count++;
}

/* Emits points [j0, j1) of a series. When x is monotonic and there are many more points than
 * pixels, each half-pixel column keeps only its first, lowest, highest and last point, which
 * draws the same picture with far fewer coordinates. */
static void emit_run(polyline_out *o, const series *s, int j0, int j1, const axis *ax,
                     const axis *ya, box pl)
{
    int up = 1, down = 1;
    for (int j = j0 + 1; j < j1 && (up || down); j++) {
        up &= s->x[j] >= s->x[j - 1];
        down &= s->x[j] <= s->x[j - 1];
    }
    int decimate = (up || down) && (double)(j1 - j0) > 4 * pl.w;
    long col = 0;
    int first = -1, lo = -1, hi = -1, last = -1;
    for (int j = j0; j <= j1; j++) {
        double px = 0, py = 0;
        if (j < j1) {
            px = pl.x + axis_frac(ax, s->x[j]) * pl.w;
            py = pl.y + pl.h - axis_frac(ya, s->y[j]) * pl.h;
            if (!decimate) {
                emit_point(o, px, py);
                continue;
            }
        } else if (!decimate) {
            break;
        }
        long c = (long)floor(px * 2);
        if (j < j1 && first >= 0 && c == col) {
            if (s->y[j] < s->y[lo])
                lo = j;
            if (s->y[j] > s->y[hi])
                hi = j;
            last = j;
            continue;
        }
        if (first >= 0) { /* flush the finished column in index order */
            int keep[4] = {first, lo < hi ? lo : hi, lo < hi ? hi : lo, last};
            for (int k = 0; k < 4; k++) {
                if (k > 0 && keep[k] == keep[k - 1])
                    continue;
                emit_point(o, pl.x + axis_frac(ax, s->x[keep[k]]) * pl.w,
                           pl.y + pl.h - axis_frac(ya, s->y[keep[k]]) * pl.h);
            }
        }
        col = c;
        first = lo = hi = last = j;
    }
}

/* markers = 0 draws the lines of runs of two or more points, markers = 1 the isolated points */
static void draw_series(sbuf *b, const series *s, int idx, const axis *ax, const axis *ya,
                        box pl, samples *sm, int markers)
{
    const char *color = palette[idx % N_COLORS];
    const char *dash = dashes[(idx / N_COLORS) % 3];
    int run_start = -1, valid = 0;
    for (int i = 0; i < s->n; i++)
        valid += point_ok(ya, s->x[i], s->y[i]);
    for (int i = 0; i <= s->n; i++) {
        int ok = i < s->n && point_ok(ya, s->x[i], s->y[i]);
        if (ok && run_start < 0)
            run_start = i;
        if (ok || run_start < 0)
            continue;
        /* run [run_start, i) ended */
        int len = i - run_start;
        if ((len == 1) != (markers != 0)) {
            /* drawn in the other pass */
        } else if (len == 1) {
            double px = pl.x + axis_frac(ax, s->x[run_start]) * pl.w;
            double py = pl.y + pl.h - axis_frac(ya, s->y[run_start]) * pl.h;
            sb_puts(b, "<circle cx=\"");
            sb_num(b, px);
            sb_puts(b, "\" cy=\"");
            sb_num(b, py);
            sb_printf(b, "\" r=\"%s\" fill=\"%s\" stroke=\"none\"/>\n", valid == 1 ? "4" : "2.5",
                      color);
            samples_add(sm, px, py);
        } else {
            sb_printf(b, "<polyline stroke=\"%s\"", color);
            if (dash)
                sb_printf(b, " stroke-dasharray=\"%s\"", dash);
            sb_puts(b, " points=\"");
            polyline_out o = {b, sm, 0, 0, 0};
            emit_run(&o, s, run_start, i, ax, ya, pl);
            sb_puts(b, "\"/>\n");
        }
        run_start = -1;
    }
}

static void draw_y_ticks(sbuf *b, const axis *a, box pl, int right, const char *cls)
{
    double x0 = right ? pl.x + pl.w : pl.x;
    double dir = right ? 1 : -1;
    sb_puts(b, "<g stroke=\"#444444\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n");
    for (int i = 0; i < a->nt; i++) {
        double y = crisp(pl.y + pl.h - axis_frac(a, a->t[i].v) * pl.h);
        double len = a->t[i].major ? TICK_LEN : 3;
        sb_line(b, x0, y, x0 + dir * len, y);
    }
    sb_puts(b, "</g>\n");
    char attrs[64];
    snprintf(attrs, sizeof attrs, "class=\"%s\"", cls);
    sb_printf(b, "<g font-size=\"%d\" fill=\"#333333\">\n", (int)FS_TICK);
    for (int i = 0; i < a->nt; i++) {
        if (!a->t[i].major)
            continue;
        double y = pl.y + pl.h - axis_frac(a, a->t[i].v) * pl.h + FS_TICK * 0.36;
        sb_text_elem(b, x0 + dir * (TICK_LEN + 4), y, 0, right ? "start" : "end", 0, attrs,
                     a->t[i].lab);
    }
    sb_puts(b, "</g>\n");
}

static double overlap_cost(const samples *sm, box bx)
{
    double cost = 0;
    for (size_t i = 0; i < sm->n; i++)
        if (sm->x[i] >= bx.x - 3 && sm->x[i] <= bx.x + bx.w + 3 && sm->y[i] >= bx.y - 3 &&
            sm->y[i] <= bx.y + bx.h + 3)
            cost += 1;
    return cost;
}

static void draw_legend(sbuf *b, const svgplot *p, const int *axis_used, box pl,
                        const samples *sm)
{
    const double row = 19, pad = 8, sample = 24, gap = 7;
    int n = 0;
    for (int i = 0; i < p->ns; i++)
        n += !is_empty(p->s[i].label);
    if (n == 0)
        return;
    char **labels = calloc((size_t)p->ns, sizeof *labels);
    if (!labels) {
        b->failed = 1;
        return;
    }
    double maxlab = pl.w * 0.5 - sample - gap - 2 * pad;
    if (maxlab < 40)
        maxlab = 40;
    double tw = 0;
    int both = axis_used[0] && axis_used[1];
    for (int i = 0; i < p->ns; i++) {
        if (is_empty(p->s[i].label))
            continue;
        const char *suffix = both && p->s[i].right ? " (right axis)" : "";
        size_t len = strlen(p->s[i].label) + strlen(suffix) + 1;
        char *full = malloc(len);
        if (!full) {
            b->failed = 1;
            break;
        }
        snprintf(full, len, "%s%s", p->s[i].label, suffix);
        labels[i] = fit_text(full, FS_LEGEND, maxlab);
        free(full);
        if (!labels[i]) {
            b->failed = 1;
            break;
        }
        double w = text_width(labels[i], FS_LEGEND);
        if (w > tw)
            tw = w;
    }
    box lb = {0, 0, pad + sample + gap + tw + pad, 2 * pad + n * row - (row - FS_LEGEND) + 2};
    /* Place the legend where it covers the fewest drawn samples, preferring positions near
     * a corner (upper right first) among equally good ones. */
    const double inset = 10;
    const double corner_fx[] = {1, 0, 1, 0}, corner_fy[] = {0, 0, 1, 1};
    double best = INFINITY, best_dist = INFINITY;
    for (int c = 0; c < 4; c++) {
        for (int gy = 0; gy <= 8; gy++) {
            for (int gx = 0; gx <= 8; gx++) {
                /* walk the grid starting from this corner so ties favour it */
                double fx = corner_fx[c] ? 1 - gx / 8.0 : gx / 8.0;
                double fy = corner_fy[c] ? 1 - gy / 8.0 : gy / 8.0;
                double dist = 0;
                for (int k = 0; k < 4; k++) {
                    double d = fabs(fx - corner_fx[k]) + fabs(fy - corner_fy[k]);
                    dist = k == 0 || d < dist ? d : dist;
                }
                box cand = lb;
                cand.x = pl.x + inset + fx * (pl.w - 2 * inset - lb.w);
                cand.y = pl.y + inset + fy * (pl.h - 2 * inset - lb.h);
                double cost = overlap_cost(sm, cand);
                if (cost < best - 0.5 || (cost < best + 0.5 && dist < best_dist - 1e-9)) {
                    best = cost;
                    best_dist = dist;
                    lb.x = cand.x;
                    lb.y = cand.y;
                }
            }
        }
    }
    sb_puts(b, "<g class=\"legend\">\n");
    sb_rect(b, crisp(lb.x), crisp(lb.y), floor(lb.w), floor(lb.h),
            "rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#cccccc\"");
    int r = 0;
    for (int i = 0; i < p->ns; i++) {
        if (!labels[i])
            continue;
        double cy = lb.y + pad + 1 + FS_LEGEND / 2 + r * row;
        const char *dash = dashes[(i / N_COLORS) % 3];
        sb_printf(b, "<line stroke=\"%s\" stroke-width=\"2.5\"", palette[i % N_COLORS]);
        if (dash)
            sb_printf(b, " stroke-dasharray=\"%s\"", dash);
        sb_puts(b, " x1=\"");
        sb_num(b, lb.x + pad);
        sb_puts(b, "\" y1=\"");
        sb_num(b, cy);
        sb_puts(b, "\" x2=\"");
        sb_num(b, lb.x + pad + sample);
        sb_puts(b, "\" y2=\"");
        sb_num(b, cy);
        sb_puts(b, "\"/>\n");
        sb_text_elem(b, lb.x + pad + sample + gap, cy + FS_LEGEND * 0.36, FS_LEGEND, "start", 0,
                     "fill=\"#222222\"", labels[i]);
        r++;
    }
    sb_puts(b, "</g>\n");
    for (int i = 0; i < p->ns; i++)
        free(labels[i]);
    free(labels);
}

/* Axis title with the multiplier of its tick labels appended, as in "bytes (×10⁶)";
 * NULL when there is nothing to show. Sets b->failed when out of memory. */
static char *axis_title(sbuf *b, const char *label, int mult)
{
    char *s = NULL;
    if (mult == 0) {
        if (is_empty(label))
            return NULL;
        s = strdup(label);
    } else {
        char m[32] = "\xC3\x97" "10";
        append_superscript(m, sizeof m, mult);
        size_t len = (label ? strlen(label) : 0) + strlen(m) + 4;
        s = malloc(len);
        if (s && is_empty(label))
            snprintf(s, len, "%s", m);
        else if (s)
            snprintf(s, len, "%s (%s)", label, m);
    }
    if (!s)
        b->failed = 1;
    return s;
}

/* Would linear ticks over [lo, hi] carry a multiplier (see gen_linear)? */
static int needs_mult(const axis *a)
{
    double m = fmax(fabs(a->lo), fabs(a->hi));
    if (a->log || !(m > 0))
        return 0;
    int e = (int)floor(log10(m) + 1e-9);
    return e >= 6 || e <= -4;
}

static void render_plot(const svgplot *p, sbuf *b)
{
    const double W = p->width, H = p->height;
    /* axis structs are large (tick tables); keep them off the stack */
    axis *ax = calloc(3, sizeof *ax);
    if (!ax) {
        b->failed = 1;
        return;
    }
    axis *ay = ax + 1; /* ay[0] left, ay[1] right */
    ay[0].log = p->log_y[0];
    ay[1].log = p->log_y[1];

    double xmin = INFINITY, xmax = -INFINITY;
    double ymin[2] = {INFINITY, INFINITY}, ymax[2] = {-INFINITY, -INFINITY};
    for (int i = 0; i < p->ns; i++) {
        const series *s = &p->s[i];
        for (int j = 0; j < s->n; j++) {
            if (!point_ok(&ay[s->right], s->x[j], s->y[j]))
                continue;
            xmin = fmin(xmin, s->x[j]);
            xmax = fmax(xmax, s->x[j]);
            ymin[s->right] = fmin(ymin[s->right], s->y[j]);
            ymax[s->right] = fmax(ymax[s->right], s->y[j]);
            ay[s->right].used = 1;
        }
    }
    int used[2] = {ay[0].used, ay[1].used};
    set_range(ax, xmin, xmax, 0);
    set_range(&ay[0], ymin[0], ymax[0], 0.05);
    set_range(&ay[1], ymin[1], ymax[1], 0.05);
    int show_left = used[0] || !used[1];

    /* vertical layout */
    double top = is_empty(p->title) ? 18 : 46;
    double bottom = is_empty(p->xlabel) && !needs_mult(ax) ? 32 : 54;
    double plot_h = H - top - bottom;
    char *ytitle = NULL, *y2title = NULL, *xtitle = NULL;
    if (show_left) {
        choose_ticks(&ay[0], plot_h, 40, 0);
        ytitle = axis_title(b, p->ylabel, ay[0].mult);
    }
    if (used[1]) {
        choose_ticks(&ay[1], plot_h, 40, 0);
        y2title = axis_title(b, p->y2label, ay[1].mult);
    }

    /* horizontal layout */
    double left = 14 + (ytitle ? FS_LABEL + 12 : 0) +
                  (show_left ? max_label_width(&ay[0], FS_TICK) + TICK_LEN + 4 : 0);
    if (left < 44)
        left = 44;
    double right = 24;
    if (used[1]) {
        right = TICK_LEN + 4 + max_label_width(&ay[1], FS_TICK) + 14 + (y2title ? FS_LABEL + 12 : 0);
        if (right < 44)
            right = 44;
    }
    double plot_w = W - left - right;
    choose_ticks(ax, plot_w, 50, 1);
    /* make room for the half of an x tick label that may hang past either end */
    if (ax->nt > 0) {
        double need_r = text_width(ax->t[ax->nt - 1].lab, FS_TICK) / 2 + 6 -
                        (1 - axis_frac(ax, ax->t[ax->nt - 1].v)) * plot_w;
        double need_l = text_width(ax->t[0].lab, FS_TICK) / 2 + 6 - axis_frac(ax, ax->t[0].v) * plot_w;
        if (need_r > right || need_l > left) {
            right = fmax(right, need_r);
            left = fmax(left, need_l);
            plot_w = W - left - right;
            choose_ticks(ax, plot_w, 50, 1);
        }
    }
    box pl = {left, top, plot_w, plot_h};
    xtitle = axis_title(b, p->xlabel, ax->mult);

    svg_begin(b, p->width, p->height, p->title);
    sb_puts(b, "<defs><clipPath id=\"svgplot-area\">");
    sb_rect(b, pl.x, pl.y, pl.w, pl.h, "");
    sb_puts(b, "</clipPath></defs>\n");

    /* grid */
    const axis *gy = show_left ? &ay[0] : &ay[1];
    sb_puts(b, "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\" "
               "shape-rendering=\"crispEdges\">\n");
    for (int i = 0; i < ax->nt; i++) {
        double x = crisp(pl.x + axis_frac(ax, ax->t[i].v) * pl.w);
        if (ax->t[i].major)
            sb_line(b, x, pl.y, x, pl.y + pl.h);
    }
    for (int i = 0; i < gy->nt; i++) {
        double y = crisp(pl.y + pl.h - axis_frac(gy, gy->t[i].v) * pl.h);
        if (gy->t[i].major)
            sb_line(b, pl.x, y, pl.x + pl.w, y);
    }
    sb_puts(b, "</g>\n");

    /* data */
    samples sm = {0};
    sb_puts(b, "<g class=\"series\" clip-path=\"url(#svgplot-area)\" fill=\"none\" "
               "stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n");
    for (int i = 0; i < p->ns; i++)
        draw_series(b, &p->s[i], i, ax, &ay[p->s[i].right], pl, &sm, 0);
    sb_puts(b, "</g>\n");

    /* frame, isolated points (unclipped, so a point on the edge stays whole), ticks */
    sb_rect(b, crisp(pl.x), crisp(pl.y), floor(pl.x + pl.w) - floor(pl.x),
            floor(pl.y + pl.h) - floor(pl.y),
            "fill=\"none\" stroke=\"#444444\" stroke-width=\"1\" shape-rendering=\"crispEdges\"");
    sb_puts(b, "<g class=\"markers\">\n");
    for (int i = 0; i < p->ns; i++)
        draw_series(b, &p->s[i], i, ax, &ay[p->s[i].right], pl, &sm, 1);
    sb_puts(b, "</g>\n");
    sb_puts(b, "<g stroke=\"#444444\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n");
    for (int i = 0; i < ax->nt; i++) {
        double x = crisp(pl.x + axis_frac(ax, ax->t[i].v) * pl.w);
        sb_line(b, x, crisp(pl.y + pl.h), x, crisp(pl.y + pl.h) + TICK_LEN);
    }
    sb_puts(b, "</g>\n");
    sb_printf(b, "<g font-size=\"%d\" fill=\"#333333\" text-anchor=\"middle\">\n", (int)FS_TICK);
    for (int i = 0; i < ax->nt; i++) {
        double x = pl.x + axis_frac(ax, ax->t[i].v) * pl.w;
        sb_text_elem(b, x, pl.y + pl.h + TICK_LEN + 4 + FS_TICK * 0.76, 0, NULL, 0,
                     "class=\"xtick\"", ax->t[i].lab);
    }
    sb_puts(b, "</g>\n");
    if (show_left)
        draw_y_ticks(b, &ay[0], pl, 0, "ytick");
    if (used[1])
        draw_y_ticks(b, &ay[1], pl, 1, "y2tick");

    /* labels */
    {
        double cx = pl.x + pl.w / 2;
        svg_title(b, p->title, cx, 30, 2 * fmin(cx - 10, W - 10 - cx));
    }
    svg_axis_label(b, xtitle, pl.x + pl.w / 2, pl.y + pl.h + 44, 0, pl.w);
    /* y axis titles sit 12 px outside their tick labels */
    svg_axis_label(b, ytitle, pl.x - TICK_LEN - 4 - max_label_width(&ay[0], FS_TICK) - 12,
                   pl.y + pl.h / 2, -90, pl.h);
    svg_axis_label(b, y2title,
                   pl.x + pl.w + TICK_LEN + 4 + max_label_width(&ay[1], FS_TICK) + 12,
                   pl.y + pl.h / 2, 90, pl.h);
    free(xtitle);
    free(ytitle);
    free(y2title);

    draw_legend(b, p, used, pl, &sm);
    free(sm.x);
    free(sm.y);
    free(ax);
}

int svgplot_write_svg(const svgplot *p, const char *path)
{
    if (!p || !path) {
        errno = EINVAL;
        return -1;
    }
    sbuf b = {0};
    render_plot(p, &b);
    return finish(&b, path);
}

/* ------------------------------------------------------------------------------------------ */
/* Bar chart                                                                                    */

int svgplot_write_bars(const char *path, const char *title, const char *ylabel,
                       const char *const *group_labels, int n_groups,
                       const char *const *series_labels, int n_series, const double *values,
                       int log_scale)
{
    if (!path || n_groups < 1 || n_series < 1 || !values) {
        errno = EINVAL;
        return -1;
    }
    const double W = 800, H = 500;
    axis *ya = calloc(1, sizeof *ya);
    char **glab = calloc((size_t)n_groups, sizeof *glab);
    if (!ya || !glab) {
        free(ya);
        free(glab);
        errno = ENOMEM;
        return -1;
    }
    sbuf b = {0};
    ya->log = log_scale ? 1 : 0;
#define BAR_OK(v) (isfinite(v) && (!log_scale || (v) > 0))

    double vmin = INFINITY, vmax = -INFINITY;
    for (int i = 0; i < n_groups * n_series; i++)
        if (BAR_OK(values[i])) {
            vmin = fmin(vmin, values[i]);
            vmax = fmax(vmax, values[i]);
        }
    if (log_scale) {
        if (!(vmin <= vmax))
            vmin = 1, vmax = 10;
        /* bars grow from a whole decade below the smallest value; headroom above the largest */
        ya->lo = floor(log10(vmin) - 0.05);
        ya->hi = log10(vmax) + 0.2;
        if (ya->hi - ya->lo < 1)
            ya->hi = ya->lo + 1;
    } else {
        if (!(vmin <= vmax))
            vmin = 0, vmax = 1;
        double lo = fmin(0, vmin), hi = fmax(0, vmax);
        if (hi == lo)
            hi = lo + 1;
        double half = hi / 2 - lo / 2;
        ya->lo = lo < 0 ? fmax(lo - 0.16 * half, -DBL_MAX) : 0;
        ya->hi = hi > 0 ? fmin(hi + 0.16 * half, DBL_MAX) : 0;
    }

    /* legend rows under the title */
    int has_legend = 0;
    for (int s = 0; s < n_series && series_labels; s++)
        has_legend |= !is_empty(series_labels[s]);
    double top = is_empty(title) ? 18 : 46;
    const double sw = 12, sgap = 6, igap = 20, lrow = 20;
    int legend_rows = 0;
    double leg_w_limit = W - 60;
    if (has_legend) {
        double x = 0;
        legend_rows = 1;
        for (int s = 0; s < n_series; s++) {
            const char *l = is_empty(series_labels[s]) ? "" : series_labels[s];
            double w = sw + sgap + fmin(text_width(l, FS_LEGEND), 300) + igap;
            if (x > 0 && x + w - igap > leg_w_limit) {
                legend_rows++;
                x = 0;
            }
            x += w;
        }
        top += legend_rows * lrow + 4;
    }

    char numbuf[32];
    for (int g = 0; g < n_groups; g++) {
        const char *l = group_labels && group_labels[g] ? group_labels[g] : NULL;
        if (!l) {
            snprintf(numbuf, sizeof numbuf, "%d", g + 1);
            l = numbuf;
        }
        glab[g] = fit_text(l, FS_TICK, 220);
        if (!glab[g])
            b.failed = 1;
    }

    /* first pass with horizontal group labels, then decide whether they must be slanted */
    double bottom = 34, plot_h = H - top - bottom, left = 0, plot_w = 0;
    /* slanted labels: angle (radians) chosen so that neighbours stay 16 px apart; when even
     * vertical labels are too close, only every label_stride-th group is labelled */
    int slant = 0, label_stride = 1;
    double angle = 0;
    for (int pass = 0; pass < 2; pass++) {
        plot_h = H - top - bottom;
        if (log_scale)
            choose_log_ticks(ya, plot_h, 40, 0);
        else {
            choose_linear_ticks(ya, plot_h, 40, 0);
            /* extend the range to the next tick so the frame ends on a labelled value */
            if (ya->nt >= 2) {
                double step = ya->t[1].v - ya->t[0].v;
                double nhi = ceil(ya->hi / step - 1e-9) * step;
                double nlo = floor(ya->lo / step + 1e-9) * step;
                ya->hi = nhi;
                ya->lo = nlo;
                gen_linear(ya, ya->lo, ya->hi, step);
            }
        }
        left = 14 + (is_empty(ylabel) && ya->mult == 0 ? 0 : FS_LABEL + 12) +
               max_label_width(ya, FS_TICK) + TICK_LEN + 4;
        if (left < 44)
            left = 44;
        plot_w = W - left - 24;
        if (pass == 1) {
            /* the first slanted label must not run off the left edge */
            double w0 = glab[0] ? text_width(glab[0], FS_TICK) : 0;
            double overhang = w0 * cos(angle) + 6;
            if (overhang > left + plot_w / n_groups / 2) {
                /* left + (W - left - 24) / n / 2 >= overhang */
                double nl = (overhang - (W - 24) / (2.0 * n_groups)) / (1 - 1 / (2.0 * n_groups));
                if (nl > left) {
                    left = nl;
                    plot_w = W - left - 24;
                }
            }
            break;
        }
        double gw = plot_w / n_groups, maxw = 0;
        for (int g = 0; g < n_groups; g++)
            if (glab[g])
                maxw = fmax(maxw, text_width(glab[g], FS_TICK));
        if (maxw > gw - 6) {
            const double pi = 3.14159265358979;
            slant = 1;
            angle = 35 * pi / 180;
            if (gw * sin(angle) < 16)
                angle = gw > 16 ? asin(16 / gw) : pi / 2;
            if (gw < 16)
                label_stride = (int)ceil(16 / gw);
            bottom = TICK_LEN + 8 + maxw * sin(angle) + FS_TICK * cos(angle) + 10;
        } else {
            break;
        }
    }
    box pl = {left, top, plot_w, plot_h};
    double gw = pl.w / n_groups;
    double slot = gw * 0.8 / n_series;
    double bar_gap = fmin(2, slot * 0.15);
    double bw = slot - bar_gap;

    svg_begin(&b, (int)W, (int)H, title);
    /* grid */
    sb_puts(&b, "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\" "
                "shape-rendering=\"crispEdges\">\n");
    for (int i = 0; i < ya->nt; i++)
        if (ya->t[i].major) {
            double y = crisp(pl.y + pl.h - axis_frac(ya, ya->t[i].v) * pl.h);
            sb_line(&b, pl.x, y, pl.x + pl.w, y);
        }
    sb_puts(&b, "</g>\n");

    /* bars */
    double base_frac = log_scale ? 0 : axis_frac(ya, 0);
    double base_y = pl.y + pl.h - base_frac * pl.h;
    sb_puts(&b, "<g class=\"bars\" stroke=\"none\">\n");
    for (int g = 0; g < n_groups; g++) {
        for (int s = 0; s < n_series; s++) {
            double v = values[g * n_series + s];
            double x = pl.x + g * gw + gw * 0.1 + s * slot + bar_gap / 2;
            double cx = x + bw / 2;
            if (!BAR_OK(v)) {
                double tw = text_width("n/a", 9);
                if (bw >= tw + 2)
                    sb_text_elem(&b, cx, base_y - 4, 9, "middle", 0,
                                 "fill=\"#888888\" class=\"missing\"", "n/a");
                else if (bw >= 9)
                    sb_text_elem(&b, cx + 3, base_y - 4, 9, "start", -90,
                                 "fill=\"#888888\" class=\"missing\"", "n/a");
                continue;
            }
            double vy = pl.y + pl.h - axis_frac(ya, v) * pl.h;
            double y0 = fmin(vy, base_y), y1 = fmax(vy, base_y);
            char attrs[64];
            snprintf(attrs, sizeof attrs, "fill=\"%s\"", palette[s % N_COLORS]);
            sb_rect(&b, x, y0, bw, y1 - y0, attrs);
            fmt_value(numbuf, sizeof numbuf, v);
            if (text_width(numbuf, FS_VALUE) <= slot - 1) {
                double ty = v >= 0 || log_scale ? vy - 4 : vy + FS_VALUE * 0.76 + 4;
                sb_text_elem(&b, cx, ty, FS_VALUE, "middle", 0, "fill=\"#333333\" class=\"value\"",
                             numbuf);
            }
        }
    }
    sb_puts(&b, "</g>\n");

    /* frame, zero line, ticks */
    sb_rect(&b, crisp(pl.x), crisp(pl.y), floor(pl.x + pl.w) - floor(pl.x),
            floor(pl.y + pl.h) - floor(pl.y),
            "fill=\"none\" stroke=\"#444444\" stroke-width=\"1\" shape-rendering=\"crispEdges\"");
    if (!log_scale && ya->lo < 0) {
        sb_puts(&b, "<g stroke=\"#444444\" shape-rendering=\"crispEdges\">");
        sb_line(&b, pl.x, crisp(base_y), pl.x + pl.w, crisp(base_y));
        sb_puts(&b, "</g>\n");
    }
    draw_y_ticks(&b, ya, pl, 0, "ytick");
    sb_puts(&b, "<g stroke=\"#444444\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n");
    for (int g = 0; g < n_groups; g++) {
        double x = crisp(pl.x + (g + 0.5) * gw);
        sb_line(&b, x, crisp(pl.y + pl.h), x, crisp(pl.y + pl.h) + TICK_LEN);
    }
    sb_puts(&b, "</g>\n");
    sb_printf(&b, "<g font-size=\"%d\" fill=\"#333333\">\n", (int)FS_TICK);
    for (int g = 0; g < n_groups; g++) {
        double x = pl.x + (g + 0.5) * gw;
        double y = pl.y + pl.h + TICK_LEN + 4 + FS_TICK * 0.76;
        if (g % label_stride != 0)
            continue;
        if (slant)
            sb_text_elem(&b, x + FS_TICK * 0.36 * sin(angle),
                         pl.y + pl.h + TICK_LEN + 4 + FS_TICK * 0.76 * cos(angle), 0, "end",
                         -angle * 180 / 3.14159265358979, "class=\"xtick\"",
                         glab[g] ? glab[g] : "");
        else
            sb_text_elem(&b, x, y, 0, "middle", 0, "class=\"xtick\"", glab[g] ? glab[g] : "");
    }
    sb_puts(&b, "</g>\n");

    svg_title(&b, title, W / 2, 30, W - 20);
    {
        char *yt = axis_title(&b, ylabel, ya->mult);
        svg_axis_label(&b, yt, pl.x - TICK_LEN - 4 - max_label_width(ya, FS_TICK) - 12,
                       pl.y + pl.h / 2, -90, pl.h);
        free(yt);
    }

    if (has_legend) {
        /* centred rows of swatches */
        int s0 = 0;
        double y = (is_empty(title) ? 18 : 46) + lrow / 2 - 2;
        while (s0 < n_series) {
            double x = 0;
            int s1 = s0;
            while (s1 < n_series) {
                const char *l = is_empty(series_labels[s1]) ? "" : series_labels[s1];
                double w = sw + sgap + fmin(text_width(l, FS_LEGEND), 300) + igap;
                if (s1 > s0 && x + w - igap > leg_w_limit)
                    break;
                x += w;
                s1++;
            }
            double cx = W / 2 - (x - igap) / 2;
            sb_puts(&b, "<g class=\"legend\">\n");
            for (int s = s0; s < s1; s++) {
                const char *l = is_empty(series_labels[s]) ? "" : series_labels[s];
                char attrs[64];
                snprintf(attrs, sizeof attrs, "rx=\"2\" fill=\"%s\"", palette[s % N_COLORS]);
                sb_rect(&b, cx, y - sw / 2, sw, sw, attrs);
                char *t = fit_text(l, FS_LEGEND, 300);
                if (!t) {
                    b.failed = 1;
                    break;
                }
                sb_text_elem(&b, cx + sw + sgap, y + FS_LEGEND * 0.36, FS_LEGEND, "start", 0,
                             "fill=\"#222222\"", t);
                free(t);
                cx += sw + sgap + fmin(text_width(l, FS_LEGEND), 300) + igap;
            }
            sb_puts(&b, "</g>\n");
            y += lrow;
            s0 = s1;
        }
    }
#undef BAR_OK
    for (int g = 0; g < n_groups; g++)
        free(glab[g]);
    free(glab);
    free(ya);
    return finish(&b, path);
}

/* ------------------------------------------------------------------------------------------ */
/* PNG conversion                                                                               */

/* Full path of an executable found on PATH, in buf; 0 if found. */
static int find_in_path(const char *name, char *buf, size_t n)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (1) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        int w = len ? snprintf(buf, n, "%.*s/%s", (int)len, path, name)
                    : snprintf(buf, n, "./%s", name);
        struct stat st;
        if (w > 0 && (size_t)w < n && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
            access(buf, X_OK) == 0)
            return 0;
        if (!end)
            return -1;
        path = end + 1;
    }
}

static const char *const converters[] = {"rsvg-convert", "magick", "convert"};

const char *svgplot_png_converter(void)
{
    char buf[4096];
    for (size_t i = 0; i < sizeof converters / sizeof converters[0]; i++)
        if (find_in_path(converters[i], buf, sizeof buf) == 0)
            return converters[i];
    return NULL;
}

/* Argument for a file name, so that a name starting with '-' is not read as an option. */
static char *file_arg(const char *prefix, const char *path)
{
    int dash = path[0] == '-';
    size_t len = strlen(prefix) + strlen(path) + 3;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s%s%s", prefix, dash ? "./" : "", path);
    return s;
}

int svgplot_write_png(const char *svg_path, const char *png_path)
{
    if (is_empty(svg_path) || is_empty(png_path)) {
        errno = EINVAL;
        return -1;
    }
    char exe[4096];
    size_t which;
    for (which = 0; which < sizeof converters / sizeof converters[0]; which++)
        if (find_in_path(converters[which], exe, sizeof exe) == 0)
            break;
    if (which == sizeof converters / sizeof converters[0])
        return 1;

    int rsvg = which == 0;
    char *in = file_arg(rsvg ? "" : "svg:", svg_path);
    char *out = file_arg(rsvg ? "" : "png:", png_path);
    if (!in || !out) {
        free(in);
        free(out);
        errno = ENOMEM;
        return -1;
    }
    char *argv_rsvg[] = {(char *)"rsvg-convert", (char *)"-f", (char *)"png", (char *)"-o", out,
                         in, NULL};
    char *argv_im[] = {(char *)converters[which], in, out, NULL};
    pid_t pid;
    int err = posix_spawn(&pid, exe, NULL, NULL, rsvg ? argv_rsvg : argv_im, environ);
    free(in);
    free(out);
    if (err != 0) {
        errno = err;
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = EIO;
        return -1;
    }
    struct stat st;
    if (stat(png_path, &st) != 0 || st.st_size == 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}
