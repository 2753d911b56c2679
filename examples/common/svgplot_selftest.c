/*
 * svgplot_selftest.c — checks for svgplot: renders sample charts, verifies that the SVG is
 * well-formed (with a small built-in checker, and with xmllint when it is installed), that the
 * expected text is present, that no non-finite number leaks into coordinates, and that PNG
 * conversion works when a converter is available.
 */
#define _POSIX_C_SOURCE 200809L

#include "svgplot.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int failures;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "svgplot selftest: FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

static char *read_all(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
        if (len_out)
            *len_out = len;
    }
    return buf;
}

static int count_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + nl, needle))
        n++;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Minimal XML well-formedness checker                                                          */

static int check_entity(const char **pp, char *err, size_t errlen)
{
    const char *p = *pp; /* at '&' */
    static const char *const named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (strncmp(p, named[i], strlen(named[i])) == 0) {
            *pp = p + strlen(named[i]);
            return 0;
        }
    if (p[1] == '#') {
        const char *q = p + 2;
        int hex = *q == 'x';
        if (hex)
            q++;
        const char *d = q;
        while (hex ? isxdigit((unsigned char)*q) : isdigit((unsigned char)*q))
            q++;
        if (q > d && *q == ';') {
            *pp = q + 1;
            return 0;
        }
    }
    snprintf(err, errlen, "bad entity near \"%.12s\"", p);
    return -1;
}

static int name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == ':' || c == '.' ||
           (unsigned char)c >= 0x80;
}

/* Numeric attributes must hold plain numbers; point lists only numbers, commas and spaces. */
static int check_attr_value(const char *name, size_t nl, const char *v, size_t vl)
{
    static const char *const numeric[] = {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r",
                                          "width", "height", "font-size"};
    const char *allowed = NULL;
    for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++)
        if (strlen(numeric[i]) == nl && strncmp(name, numeric[i], nl) == 0)
            allowed = "0123456789.-e";
    if (nl == 6 && strncmp(name, "points", 6) == 0)
        allowed = "0123456789.-, ";
    if (!allowed)
        return 0;
    if (vl == 0)
        return -1;
    for (size_t i = 0; i < vl; i++)
        if (!strchr(allowed, v[i]))
            return -1;
    return 0;
}

static int xml_check(const char *s, const char *root, char *err, size_t errlen)
{
    enum { MAXD = 64 };
    const char *stack[MAXD];
    size_t stack_len[MAXD];
    int depth = 0, root_seen = 0, root_closed = 0;
    const char *p = s;
    while (*p) {
        if (*p != '<') {
            if (depth == 0 && !isspace((unsigned char)*p)) {
                snprintf(err, errlen, "text outside the root element near \"%.12s\"", p);
                return -1;
            }
            if (*p == '&') {
                if (check_entity(&p, err, errlen))
                    return -1;
            } else {
                p++;
            }
            continue;
        }
        if (strncmp(p, "<?", 2) == 0) {
            const char *e = strstr(p, "?>");
            if (!e || root_seen) {
                snprintf(err, errlen, "bad processing instruction");
                return -1;
            }
            p = e + 2;
            continue;
        }
        if (strncmp(p, "<!--", 4) == 0) {
            const char *e = strstr(p + 4, "-->");
            if (!e) {
                snprintf(err, errlen, "unterminated comment");
                return -1;
            }
            p = e + 3;
            continue;
        }
        if (p[1] == '/') {
            const char *n = p + 2, *q = n;
            while (name_char(*q))
                q++;
            size_t nl = (size_t)(q - n);
            while (isspace((unsigned char)*q))
                q++;
            if (*q != '>' || depth == 0 || stack_len[depth - 1] != nl ||
                strncmp(stack[depth - 1], n, nl) != 0) {
                snprintf(err, errlen, "mismatched end tag near \"%.20s\"", p);
                return -1;
            }
            depth--;
            if (depth == 0)
                root_closed = 1;
            p = q + 1;
            continue;
        }
        /* start tag */
        const char *n = p + 1, *q = n;
        if (!isalpha((unsigned char)*n) && *n != '_') {
            snprintf(err, errlen, "bad tag near \"%.20s\"", p);
            return -1;
        }
        while (name_char(*q))
            q++;
        size_t nl = (size_t)(q - n);
        if (depth == 0) {
            if (root_seen || strlen(root) != nl || strncmp(n, root, nl) != 0) {
                snprintf(err, errlen, "unexpected root element near \"%.20s\"", p);
                return -1;
            }
            root_seen = 1;
        }
        int self_close = 0;
        while (1) {
            int ws = 0;
            while (isspace((unsigned char)*q))
                q++, ws = 1;
            if (q[0] == '/' && q[1] == '>') {
                self_close = 1;
                q += 2;
                break;
            }
            if (*q == '>') {
                q++;
                break;
            }
            const char *an = q;
            while (name_char(*q))
                q++;
            size_t anl = (size_t)(q - an);
            if (!ws || anl == 0) {
                snprintf(err, errlen, "bad attribute near \"%.20s\"", an);
                return -1;
            }
            while (isspace((unsigned char)*q))
                q++;
            if (*q != '=') {
                snprintf(err, errlen, "attribute without value near \"%.20s\"", an);
                return -1;
            }
            q++;
            while (isspace((unsigned char)*q))
                q++;
            char quote = *q;
            if (quote != '"' && quote != '\'') {
                snprintf(err, errlen, "unquoted attribute near \"%.20s\"", an);
                return -1;
            }
            const char *v = ++q;
            while (*q && *q != quote) {
                if (*q == '<') {
                    snprintf(err, errlen, "'<' in attribute value near \"%.20s\"", an);
                    return -1;
                }
                if (*q == '&') {
                    if (check_entity(&q, err, errlen))
                        return -1;
                } else {
                    q++;
                }
            }
            if (!*q) {
                snprintf(err, errlen, "unterminated attribute value");
                return -1;
            }
            if (check_attr_value(an, anl, v, (size_t)(q - v))) {
                snprintf(err, errlen, "bad numeric value in %.*s=\"%.*s\"", (int)anl, an,
                         (int)((q - v) < 40 ? (q - v) : 40), v);
                return -1;
            }
            q++;
        }
        if (!self_close) {
            if (depth == MAXD) {
                snprintf(err, errlen, "nesting too deep");
                return -1;
            }
            stack[depth] = n;
            stack_len[depth] = nl;
            depth++;
        } else if (depth == 0) {
            root_closed = 1;
        }
        p = q;
    }
    if (!root_seen || !root_closed || depth != 0) {
        snprintf(err, errlen, "document not closed (depth %d)", depth);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* External tools                                                                               */

static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char buf[4096];
    while (1) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        if (len && snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, name) < (int)sizeof buf &&
            access(buf, X_OK) == 0)
            return 1;
        if (!end)
            return 0;
        path = end + 1;
    }
}

/* Runs argv (looked up on PATH) and returns its exit status, or -1. */
static int run_tool(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int have_xmllint = -1;

/* ------------------------------------------------------------------------------------------ */

static void check_svg(const char *path, const char *const *must_contain, int min_xticks,
                      int min_yticks, int min_y2ticks)
{
    size_t len = 0;
    char *s = read_all(path, &len);
    CHECK(s != NULL, "cannot read %s: %s", path, strerror(errno));
    if (!s)
        return;
    CHECK(strncmp(s, "<?xml", 5) == 0, "%s: no XML declaration", path);
    CHECK(count_occurrences(s, "<svg ") == 1, "%s: expected exactly one <svg> element", path);
    const char *end = s + len;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    CHECK(end - s >= 6 && strncmp(end - 6, "</svg>", 6) == 0, "%s: does not end with </svg>",
          path);
    char err[160];
    int rc = xml_check(s, "svg", err, sizeof err);
    CHECK(rc == 0, "%s: not well-formed: %s", path, err);
    for (int i = 0; must_contain && must_contain[i]; i++)
        CHECK(strstr(s, must_contain[i]) != NULL, "%s: missing text \"%s\"", path,
              must_contain[i]);
    int nx = count_occurrences(s, "class=\"xtick\"");
    int ny = count_occurrences(s, "class=\"ytick\"");
    int ny2 = count_occurrences(s, "class=\"y2tick\"");
    CHECK(nx >= min_xticks, "%s: %d x tick labels, expected >= %d", path, nx, min_xticks);
    CHECK(ny >= min_yticks, "%s: %d y tick labels, expected >= %d", path, ny, min_yticks);
    CHECK(ny2 >= min_y2ticks, "%s: %d right y tick labels, expected >= %d", path, ny2,
          min_y2ticks);
    CHECK(strstr(s, "nan<") == NULL && strstr(s, "nan\"") == NULL && strstr(s, "inf<") == NULL &&
              strstr(s, "inf\"") == NULL && strstr(s, "NaN") == NULL,
          "%s: non-finite number in output", path);
    free(s);

    if (have_xmllint < 0)
        have_xmllint = on_path("xmllint");
    if (have_xmllint) {
        char *argv[] = {(char *)"xmllint", (char *)"--noout", (char *)path, NULL};
        CHECK(run_tool(argv) == 0, "xmllint rejects %s", path);
    }
}

static void check_png(const char *svg, const char *png)
{
    const char *conv = svgplot_png_converter();
    int rc = svgplot_write_png(svg, png);
    if (!conv) {
        CHECK(rc == 1, "svgplot_write_png without converter returned %d, expected 1", rc);
        return;
    }
    if (rc != 0 && strcmp(conv, "rsvg-convert") != 0) {
        /* ImageMagick builds differ in SVG support; only rsvg-convert is held to it */
        fprintf(stderr, "svgplot selftest: note: %s could not convert %s; PNG not checked\n",
                conv, svg);
        return;
    }
    CHECK(rc == 0, "svgplot_write_png(%s) with %s returned %d (%s)", svg, conv, rc,
          strerror(errno));
    if (rc != 0)
        return;
    size_t len = 0;
    unsigned char *d = (unsigned char *)read_all(png, &len);
    CHECK(d && len > 24 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(d + 12, "IHDR", 4) == 0,
          "%s is not a PNG file", png);
    if (d && len > 24) {
        unsigned w = (unsigned)d[16] << 24 | (unsigned)d[17] << 16 | (unsigned)d[18] << 8 | d[19];
        unsigned h = (unsigned)d[20] << 24 | (unsigned)d[21] << 16 | (unsigned)d[22] << 8 | d[23];
        CHECK(w == 800 && h == 500, "%s is %ux%u, expected 800x500", png, w, h);
    }
    free(d);
}

static char *join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s/%s", dir, name);
    return s;
}

static void test_sigmoid(const char *dir)
{
    enum { N = 201 };
    double x[N], s[N], ds[N];
    for (int i = 0; i < N; i++) {
        x[i] = -10.0 + 0.1 * i;
        s[i] = 1.0 / (1.0 + exp(-x[i]));
        ds[i] = s[i] * (1.0 - s[i]);
    }
    svgplot *p = svgplot_create("Logistic sigmoid & its derivative", "x", "value");
    CHECK(p != NULL, "svgplot_create failed");
    if (!p)
        return;
    CHECK(svgplot_add_series(p, "sigmoid(x) = 1 / (1 + exp(-x))", x, s, N, 0) == 0,
          "add_series failed");
    CHECK(svgplot_add_series(p, "sigmoid'(x) = sigmoid(x) (1 - sigmoid(x))", x, ds, N, 0) == 0,
          "add_series failed");
    char *svg = join(dir, "svgplot_sigmoid.svg"), *png = join(dir, "svgplot_sigmoid.png");
    int rc = svgplot_write_svg(p, svg);
    CHECK(rc == 0, "svgplot_write_svg(%s): %s", svg, strerror(errno));
    const char *texts[] = {"sigmoid(x) = 1 / (1 + exp(-x))",
                           "sigmoid&apos;(x) = sigmoid(x) (1 - sigmoid(x))",
                           "Logistic sigmoid &amp; its derivative", ">x</text>",
                           ">value</text>", "<polyline", NULL};
    if (rc == 0) {
        check_svg(svg, texts, 5, 5, 0);
        check_png(svg, png);
    }
    free(svg);
    free(png);
    svgplot_free(p);
}

static void test_dual_axis(const char *dir)
{
    enum { N = 60 };
    double epoch[N], loss[N], val[N], acc[N];
    for (int i = 0; i < N; i++) {
        epoch[i] = i + 1;
        loss[i] = 2.3 * exp(-i / 9.0) + 0.02 + 0.01 * sin(i * 1.7);
        val[i] = 2.3 * exp(-i / 10.0) + 0.06 + 0.02 * cos(i * 1.3);
        acc[i] = 0.1 + 0.88 * (1 - exp(-i / 7.0));
    }
    svgplot *p = svgplot_create("Training (log-scale loss, accuracy on the right)", "epoch",
                                "cross-entropy loss");
    CHECK(p != NULL, "svgplot_create failed");
    if (!p)
        return;
    svgplot_set_log_y(p, 0, 1);
    svgplot_add_series(p, "train loss", epoch, loss, N, 0);
    svgplot_add_series(p, "validation loss", epoch, val, N, 0);
    svgplot_add_series(p, "accuracy", epoch, acc, N, 1);
    svgplot_set_right_label(p, "accuracy");
    char *svg = join(dir, "svgplot_training.svg"), *png = join(dir, "svgplot_training.png");
    int rc = svgplot_write_svg(p, svg);
    CHECK(rc == 0, "svgplot_write_svg(%s): %s", svg, strerror(errno));
    const char *texts[] = {"train loss", "validation loss", "accuracy (right axis)",
                           ">accuracy</text>", NULL};
    if (rc == 0) {
        check_svg(svg, texts, 5, 3, 5);
        check_png(svg, png);
    }
    free(svg);
    free(png);
    svgplot_free(p);
}

static void test_edge_cases(const char *dir)
{
    double nan = NAN, inf = INFINITY;
    double xs[] = {0, 1, 2, 3, 4, 5, 6, 7};
    double ys[] = {1, 2, nan, 3, inf, 2, -inf, 1};
    double flat[] = {3, 3, 3, 3, 3, 3, 3, 3};
    double one_x = 2.5, one_y = 3.5;
    svgplot *p = svgplot_create(
        "Edge cases: <gaps> & \"quotes\" & a title that is far too long to fit on one line of "
        "an eight hundred pixel wide canvas, so it has to be shrunk and then shortened",
        "x <axis> & 'label'", NULL);
    CHECK(p != NULL, "svgplot_create failed");
    if (!p)
        return;
    CHECK(svgplot_add_series(p, "a <b> & \"c\"", xs, ys, 8, 0) == 0, "add_series failed");
    CHECK(svgplot_add_series(p, "constant", NULL, flat, 8, 0) == 0, "add_series failed");
    CHECK(svgplot_add_series(p, "single point", &one_x, &one_y, 1, 0) == 0, "add_series failed");
    CHECK(svgplot_add_series(p, "empty", NULL, NULL, 0, 0) == 0, "add_series(n = 0) failed");
    CHECK(svgplot_add_series(p, "a legend label that goes on and on and on well past any "
                                "sensible length for a legend entry",
                             xs, flat, 8, 0) == 0,
          "add_series failed");
    CHECK(svgplot_add_series(p, "bad", xs, ys, -1, 0) == -1 && errno == EINVAL,
          "add_series(n = -1) should fail with EINVAL");
    CHECK(svgplot_add_series(p, "bad", xs, NULL, 3, 0) == -1 && errno == EINVAL,
          "add_series(y = NULL) should fail with EINVAL");
    char *svg = join(dir, "svgplot_edge.svg"), *png = join(dir, "svgplot_edge.png");
    int rc = svgplot_write_svg(p, svg);
    CHECK(rc == 0, "svgplot_write_svg(%s): %s", svg, strerror(errno));
    const char *texts[] = {"a &lt;b&gt; &amp; &quot;c&quot;", "x &lt;axis&gt; &amp; &apos;label&apos;",
                           "<circle", "\xE2\x80\xA6", NULL};
    if (rc == 0) {
        check_svg(svg, texts, 5, 5, 0);
        check_png(svg, png);
    }

    /* degenerate: one point only, and a plot without any data */
    svgplot *q = svgplot_create(NULL, NULL, NULL);
    CHECK(q != NULL, "svgplot_create failed");
    if (q) {
        char *s1 = join(dir, "svgplot_single.svg"), *s2 = join(dir, "svgplot_empty.svg");
        svgplot_add_series(q, NULL, &one_x, &one_y, 1, 0);
        CHECK(svgplot_write_svg(q, s1) == 0, "single-point plot failed");
        check_svg(s1, NULL, 3, 3, 0);
        svgplot_free(q);
        q = svgplot_create("empty", NULL, NULL);
        CHECK(q && svgplot_write_svg(q, s2) == 0, "empty plot failed");
        check_svg(s2, NULL, 3, 3, 0);
        svgplot_free(q);
        free(s1);
        free(s2);
    }

    /* errors are reported with errno */
    char *bad = join(dir, "no/such/directory/plot.svg");
    errno = 0;
    CHECK(svgplot_write_svg(p, bad) == -1 && errno == ENOENT,
          "writing into a missing directory should fail with ENOENT (errno %d)", errno);
    CHECK(svgplot_write_svg(NULL, svg) == -1 && errno == EINVAL, "NULL plot should be EINVAL");
    if (svgplot_png_converter() && strcmp(svgplot_png_converter(), "rsvg-convert") == 0) {
        fprintf(stderr, "svgplot selftest: converting a missing file; an error from "
                        "rsvg-convert is expected next\n");
        CHECK(svgplot_write_png(bad, png) == -1, "converting a missing file should fail");
    }
    free(bad);
    free(svg);
    free(png);
    svgplot_free(p);
}

static void test_bars(const char *dir)
{
    const char *groups[] = {"matmul 256", "matmul 1024", "conv2d 3x3", "softmax", "layernorm",
                            "attention"};
    const char *series[] = {"CPU reference", "OpenCL (fused)", "OpenCL (unfused)"};
    double v[] = {
        12.5, 0.81, 1.30, /**/ 790.0, 9.6, 14.2, /**/ 210.0, 3.1, NAN,
        4.2,  0.12, 0.35, /**/ 6.8,   0.2, 0.44, /**/ 330.0, 5.5, 11.0,
    };
    char *svg = join(dir, "svgplot_bars.svg"), *png = join(dir, "svgplot_bars.png");
    int rc = svgplot_write_bars(svg, "Kernel time by operation (lower is better)", "time [ms]",
                                groups, 6, series, 3, v, 0);
    CHECK(rc == 0, "svgplot_write_bars(%s): %s", svg, strerror(errno));
    const char *texts[] = {"matmul 1024", "OpenCL (fused)", "n/a", "<rect", NULL};
    if (rc == 0) {
        check_svg(svg, texts, 6, 4, 0);
        check_png(svg, png);
    }
    free(svg);
    free(png);

    svg = join(dir, "svgplot_bars_log.svg");
    png = join(dir, "svgplot_bars_log.png");
    rc = svgplot_write_bars(svg, "Kernel time by operation (log scale)", "time [ms]", groups, 6,
                            series, 3, v, 1);
    CHECK(rc == 0, "svgplot_write_bars(%s): %s", svg, strerror(errno));
    if (rc == 0) {
        check_svg(svg, texts, 6, 3, 0);
        check_png(svg, png);
    }
    free(svg);
    free(png);

    /* negative values, long group labels that must be slanted, no legend */
    const char *long_groups[] = {"reduce_sum over rows", "reduce_sum over columns",
                                 "elementwise add (broadcast)", "elementwise mul", "transpose 2d",
                                 "gather", "scatter_add", "argmax"};
    double delta[] = {12.0, -4.5, 30.2, 8.8, -15.0, 2.2, 0.5, -0.7};
    svg = join(dir, "svgplot_bars_neg.svg");
    png = join(dir, "svgplot_bars_neg.png");
    rc = svgplot_write_bars(svg, "Speed-up vs. previous release", "change [%]", long_groups, 8,
                            NULL, 1, delta, 0);
    CHECK(rc == 0, "svgplot_write_bars(%s): %s", svg, strerror(errno));
    const char *texts2[] = {"elementwise add (broadcast)", ">\xE2\x88\x92" "15</text>", NULL};
    if (rc == 0) {
        check_svg(svg, texts2, 8, 4, 0);
        check_png(svg, png);
    }
    CHECK(svgplot_write_bars(svg, "x", "y", NULL, 0, NULL, 1, delta, 0) == -1 && errno == EINVAL,
          "n_groups = 0 should fail with EINVAL");
    free(svg);
    free(png);
}

int svgplot_selftest(const char *dir)
{
    failures = 0;
    if (!dir || !dir[0])
        dir = ".";
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "svgplot selftest: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    test_sigmoid(dir);
    test_dual_axis(dir);
    test_edge_cases(dir);
    test_bars(dir);
    return failures;
}
