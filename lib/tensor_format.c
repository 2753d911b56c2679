/* tensor_format.c — tensors and shapes as text (ct_tensor_format, ct_shape_format). */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- printing (NumPy's style) -------------------------------------------------------------- */
/* What NumPy's str() does with its default print options: shortest digits that read back as the
 * same value at the tensor's precision, at most 8 fraction digits; scientific notation when the
 * magnitudes call for it; columns aligned on the decimal point; lines wrapped at 75 characters;
 * arrays of more than 1000 elements summarised with "..." around 3 items per edge. */
#define PRINT_PRECISION 8
#define PRINT_THRESHOLD 1000
#define PRINT_EDGE 3
#define PRINT_WIDTH 75
#define DIG 80 /* room for the digits of any value printed positionally (|v| < 1e16) or in scientific */

typedef struct {
  char *p;
  size_t n, cap;
  bool oom;
} dstr;

static void ds_putn(dstr *s, const char *t, size_t l) {
  if (s->oom) return;
  if (s->n + l + 1 > s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 256;
    while (nc < s->n + l + 1) nc *= 2;
    char *np = realloc(s->p, nc);
    if (!np) {
      s->oom = true;
      return;
    }
    s->p = np;
    s->cap = nc;
  }
  memcpy(s->p + s->n, t, l);
  s->n += l;
  s->p[s->n] = 0;
}
static void ds_put(dstr *s, const char *t) { ds_putn(s, t, strlen(t)); }
static void ds_spaces(dstr *s, int k) {
  for (int i = 0; i < k; ++i) ds_putn(s, " ", 1);
}

/* x rounded to dtype rd (a float dtype): what a value read back from decimal digits is compared as */
static double rounded_as(ct_dtype rd, double x) {
  if (rd == CT_FLOAT32) return (float)x;
  if (rd == CT_FLOAT16) return ct__f16_to_double(ct__f16_from_double(x));
  if (rd == CT_BFLOAT16) return ct__bf16_to_double(ct__bf16_from_double(x));
  return x;
}

/* Decimal digits of finite v != 0: the fewest significant digits that read back as v (in the
 * dtype rd), or exactly `sig` significant digits when sig > 0. digits gets them without trailing
 * zeros, *e10 the exponent of the first one. */
static int sig_digits(double v, ct_dtype rd, int sig, char *digits, int *e10) {
  char b[64];
  for (int p = sig > 0 ? sig - 1 : 0; p <= 16; ++p) {
    snprintf(b, sizeof b, "%.*e", p, fabs(v));
    double back = strtod(b, NULL);
    if (sig > 0 || rounded_as(rd, back) == rounded_as(rd, fabs(v))) break;
  }
  char *e = strchr(b, 'e');
  *e10 = atoi(e + 1);
  int k = 0;
  for (const char *c = b; c < e; ++c)
    if (*c >= '0' && *c <= '9') digits[k++] = *c;
  while (k > 1 && digits[k - 1] == '0') --k;
  digits[k] = 0;
  return k;
}

/* Positional digits of finite v: shortest, rounded to at most prec fraction digits (prec < 0: no
 * limit). Writes the integer part (with sign) to ip and the fraction digits to fp ("" for none). */
static void positional(double v, ct_dtype rd, int prec, char *ip, char *fp) {
  char d[40];
  int e10 = 0, k = v == 0 ? 0 : sig_digits(v, rd, 0, d, &e10);
  if (k && prec >= 0 && k - 1 - e10 > prec) { /* too many fraction digits: round at prec */
    char b[DIG - 2];
    snprintf(b, sizeof b, "%.*f", prec, fabs(v));
    char *dot = strchr(b, '.');
    if (dot) *dot = 0;
    snprintf(ip, DIG, "%s%s", signbit(v) ? "-" : "", b);
    size_t l = dot ? strlen(dot + 1) : 0;
    if (dot) memmove(fp, dot + 1, l + 1);
    else fp[0] = 0;
    while (l && fp[l - 1] == '0') fp[--l] = 0;
    return;
  }
  char *o = ip;
  if (signbit(v)) *o++ = '-';
  if (k == 0 || e10 < 0) *o++ = '0';
  else
    for (int i = 0; i <= e10 && i < DIG - 2; ++i) *o++ = i < k ? d[i] : '0';
  *o = 0;
  o = fp;
  if (k && e10 < 0)
    for (int i = 0; i < -e10 - 1 && i < DIG - 40; ++i) *o++ = '0';
  for (int i = e10 < 0 ? 0 : e10 + 1; i < k; ++i) *o++ = d[i];
  *o = 0;
}

/* Scientific digits of finite v: mantissa fraction digits (shortest, at most prec when prec >= 0)
 * and the exponent. */
static void scientific(double v, ct_dtype rd, int prec, char *lead, char *fp, int *e10) {
  char d[40];
  if (v == 0) {
    snprintf(lead, 4, "%s0", signbit(v) ? "-" : "");
    fp[0] = 0;
    *e10 = 0;
    return;
  }
  int k = sig_digits(v, rd, 0, d, e10);
  if (prec >= 0 && k - 1 > prec) k = sig_digits(v, rd, prec + 1, d, e10);
  snprintf(lead, 4, "%s%c", v < 0 ? "-" : "", d[0]);
  memcpy(fp, d + 1, (size_t)k);
}

/* One value as NumPy prints a float scalar: like Python's repr, positional from 1e-4 up to 1e16
 * (float64) or 1e6 (float32), scientific outside. */
static void scalar_repr(double v, ct_dtype rd, char *out, size_t cap) {
  char ip[DIG], fp[DIG];
  if (isnan(v)) snprintf(out, cap, "nan");
  else if (isinf(v)) snprintf(out, cap, v > 0 ? "inf" : "-inf");
  else if (v == 0 || (fabs(v) >= 1e-4 && fabs(v) < (rd != CT_FLOAT64 ? 1e6 : 1e16))) {
    positional(v, rd, -1, ip, fp);
    snprintf(out, cap, "%s.%s", ip, fp[0] ? fp : "0");
  } else {
    int e10;
    scientific(v, rd, -1, ip, fp, &e10);
    snprintf(out, cap, "%s%s%se%c%02d", ip, fp[0] ? "." : "", fp, e10 < 0 ? '-' : '+', abs(e10));
  }
}

/* The column layout of an array's elements (NumPy's FloatingFormat / IntegerFormat). */
typedef struct {
  bool is_int, exp;
  ct_dtype rd; /* the float dtype the values are printed in */
  int pad_left, pad_right, precision, exp_size, int_width;
} cellfmt;

static void cell(const cellfmt *f, double v, dstr *s) {
  char ip[DIG], fp[DIG], b[2 * DIG + 16];
  if (f->is_int) {
    snprintf(b, sizeof b, "%*lld", f->int_width, (long long)v);
    ds_put(s, b);
    return;
  }
  if (!isfinite(v)) {
    const char *w = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    ds_spaces(s, f->pad_left + f->pad_right + 1 - (int)strlen(w));
    ds_put(s, w);
    return;
  }
  if (f->exp) {
    /* every value gets the column's number of digits: the digits past its shortest form are its
     * own (correctly rounded), not zeros, as NumPy's min_digits gives */
    char m[DIG];
    snprintf(m, sizeof m, "%.*e", f->precision, fabs(v));
    char *e = strchr(m, 'e');
    int e10 = atoi(e + 1);
    *e = 0;
    snprintf(ip, sizeof ip, "%s%c", signbit(v) ? "-" : "", m[0]);
    ds_spaces(s, f->pad_left - (int)strlen(ip));
    snprintf(b, sizeof b, "%s.%se%c%0*d", ip, m[1] == '.' ? m + 2 : "", e10 < 0 ? '-' : '+', f->exp_size, abs(e10));
    ds_put(s, b);
    return;
  }
  positional(v, f->rd, f->precision, ip, fp);
  ds_spaces(s, f->pad_left - (int)strlen(ip));
  ds_put(s, ip);
  ds_put(s, ".");
  ds_put(s, fp);
  ds_spaces(s, f->pad_right - (int)strlen(fp));
}

/* Is element i shown? (all of them unless the array is summarised) */
static bool shown(const ct_tensor *t, int64_t i, bool summary) {
  if (!summary) return true;
  for (int d = t->rank - 1; d >= 0; --d) {
    int64_t n = t->shape[d], c = i % n;
    i /= n;
    if (n > 2 * PRINT_EDGE && c >= PRINT_EDGE && c < n - PRINT_EDGE) return false;
  }
  return true;
}

static void choose_format(const ct_tensor *t, const double *v, bool summary, cellfmt *f) {
  memset(f, 0, sizeof *f);
  f->rd = t->dtype;
  if (!ct__is_float(t->dtype) && !ct__is_half(t->dtype)) { /* int32, int64, bool (0 / 1) */
    f->is_int = true;
    for (int64_t i = 0; i < t->size; ++i)
      if (shown(t, i, summary)) {
        char b[32];
        int w = snprintf(b, sizeof b, "%lld", (long long)v[i]);
        if (w > f->int_width) f->int_width = w;
      }
    return;
  }
  double mx = 0, mn = INFINITY;
  bool any_finite = false, any_nonfinite = false, neg_inf = false;
  for (int64_t i = 0; i < t->size; ++i) {
    if (!shown(t, i, summary)) continue;
    if (!isfinite(v[i])) {
      any_nonfinite = true;
      neg_inf = neg_inf || (isinf(v[i]) && v[i] < 0);
      continue;
    }
    any_finite = true;
    double a = fabs(v[i]);
    if (a == 0) continue;
    if (a > mx) mx = a;
    if (a < mn) mn = a;
  }
  /* scientific from 1e8 (float64) or 1e6 (float32, as NumPy 2.3 and later), below 1e-4, or when
   * the magnitudes span more than three decades */
  f->exp = mn != INFINITY && (mx >= (f->rd != CT_FLOAT64 ? 1e6 : 1e8) || mn < 1e-4 || mx / mn > 1e3);
  f->precision = PRINT_PRECISION;
  if (any_finite) {
    int fmax = 0, emax = 0;
    for (int64_t i = 0; i < t->size; ++i) {
      if (!shown(t, i, summary) || !isfinite(v[i])) continue;
      char ip[DIG], fp[DIG];
      int e10 = 0;
      if (f->exp) scientific(v[i], f->rd, PRINT_PRECISION, ip, fp, &e10);
      else positional(v[i], f->rd, PRINT_PRECISION, ip, fp);
      int li = (int)strlen(ip), lf = (int)strlen(fp), le = abs(e10) >= 100 ? 3 : 2;
      if (li > f->pad_left) f->pad_left = li;
      if (lf > fmax) fmax = lf;
      if (le > emax) emax = le;
    }
    if (f->exp) {
      f->precision = fmax;
      f->exp_size = emax;
      f->pad_right = emax + 2 + fmax;
    } else {
      f->pad_right = fmax;
    }
  }
  if (any_nonfinite) { /* room for "nan" / "inf" / "-inf" right-aligned */
    int offset = f->pad_right + 1, inflen = 3 + (neg_inf ? 1 : 0);
    if (3 - offset > f->pad_left) f->pad_left = 3 - offset;
    if (inflen - offset > f->pad_left) f->pad_left = inflen - offset;
  }
}

/* NumPy's _extendLine: appends word to line, wrapping first when the line would grow too long. */
static void extend_line(dstr *s, dstr *line, const char *word, int width, int indent) {
  if ((int)(line->n + strlen(word)) > width && (int)line->n > indent) {
    size_t l = line->n;
    while (l && line->p[l - 1] == ' ') --l;
    ds_putn(s, line->p, l);
    ds_put(s, "\n");
    line->n = 0;
    ds_spaces(line, indent);
  }
  ds_put(line, word);
}

/* NumPy's _formatArray for the sub-array at `base` from `axis` on. */
static void format_rec(dstr *out, const ct_tensor *t, const double *v, const cellfmt *f, bool summary, int axis,
                       int64_t base, int indent, int width) {
  int64_t n = t->shape[axis], stride = 1;
  for (int d = axis + 1; d < t->rank; ++d) stride *= t->shape[d];
  bool summ = summary && n > 2 * PRINT_EDGE;
  int64_t lead = summ ? PRINT_EDGE : 0, trail = summ ? PRINT_EDGE : n;
  dstr s = {0};
  if (axis == t->rank - 1) {
    dstr line = {0}, word = {0};
    ds_spaces(&line, indent);
    for (int64_t k = 0; k < lead + trail; ++k) {
      int64_t i = k < lead ? k : n - (lead + trail - k);
      word.n = 0;
      cell(f, v[base + i], &word);
      extend_line(&s, &line, word.p ? word.p : "", width - 1, indent);
      if (k + 1 < lead + trail) ds_put(&line, " ");
      if (summ && k + 1 == lead) {
        extend_line(&s, &line, "...", width - 1, indent);
        ds_put(&line, " ");
      }
    }
    ds_putn(&s, line.p ? line.p : "", line.n);
    free(line.p);
    free(word.p);
    s.oom = s.oom || line.oom || word.oom;
  } else {
    int blank = t->rank - 1 - axis; /* newlines between rows: one more per extra axis */
    for (int64_t k = 0; k < lead + trail; ++k) {
      int64_t i = k < lead ? k : n - (lead + trail - k);
      ds_spaces(&s, indent);
      format_rec(&s, t, v, f, summary, axis + 1, base + i * stride, indent + 1, width - 1);
      if (k + 1 < lead + trail)
        for (int b = 0; b < blank; ++b) ds_put(&s, "\n");
      if (summ && k + 1 == lead) {
        ds_spaces(&s, indent);
        ds_put(&s, "...");
        for (int b = 0; b < blank; ++b) ds_put(&s, "\n");
      }
    }
  }
  ds_put(out, "[");
  if (s.p && (int)s.n >= indent) ds_putn(out, s.p + indent, s.n - (size_t)indent);
  ds_put(out, "]");
  out->oom = out->oom || s.oom;
  free(s.p);
}

ct_status ct_shape_format(const ct_tensor *t, char *buf, size_t cap) {
  CT_TRY(ct__check(t, "ct_shape_format"));
  if (!buf || cap == 0) return ct__error(t->ctx, CT_ERR_NULL, "ct_shape_format: empty buffer");
  ct__shape_str(t->rank, t->shape, buf, cap);
  return CT_OK;
}

ct_status ct_tensor_format(const ct_tensor *t, ct_format_style style, char *buf, size_t cap) {
  CT_TRY(ct__check(t, "ct_tensor_format"));
  if (!buf || cap == 0) return ct__error(t->ctx, CT_ERR_NULL, "ct_tensor_format: empty buffer");
  if (style != CT_FORMAT_REPR && style != CT_FORMAT_VALUES)
    return ct__error(t->ctx, CT_ERR_INVALID, "ct_tensor_format: unknown style %d", (int)style);
  buf[0] = 0;
  int64_t n = t->size;
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  if (!v) return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensor_format: staging %lld elements", (long long)n);
  ct_status s = ct_tensor_read_f64(t, v, n);
  if (s != CT_OK) {
    free(v);
    return s;
  }
  dstr o = {0};
  if (style == CT_FORMAT_REPR) ds_put(&o, "tf.Tensor(");
  if (t->rank == 0) {
    char c[2 * DIG + 16];
    if (!ct__is_float(t->dtype) && !ct__is_half(t->dtype)) snprintf(c, sizeof c, "%lld", (long long)v[0]);
    else scalar_repr(v[0], t->dtype, c, sizeof c);
    ds_put(&o, c);
  } else if (n == 0) {
    ds_put(&o, "[]");
  } else {
    bool summary = n > PRINT_THRESHOLD;
    cellfmt f;
    choose_format(t, v, summary, &f);
    format_rec(&o, t, v, &f, summary, 0, 0, 1, PRINT_WIDTH);
  }
  if (style == CT_FORMAT_REPR) {
    char tail[160], sh[96];
    ct__shape_str(t->rank, t->shape, sh, sizeof sh);
    snprintf(tail, sizeof tail, ", shape=%s, dtype=%s)", sh, ct_dtype_name(t->dtype));
    ds_put(&o, tail);
  }
  free(v);
  if (o.oom) {
    free(o.p);
    return ct__error(t->ctx, CT_ERR_OUT_OF_MEMORY, "ct_tensor_format: building the text");
  }
  /* copy, truncated with "..." when it does not fit */
  if (o.n < cap) memcpy(buf, o.p, o.n + 1);
  else if (cap >= 4) {
    memcpy(buf, o.p, cap - 4);
    memcpy(buf + cap - 4, "...", 4);
  } else {
    memcpy(buf, o.p, cap - 1);
    buf[cap - 1] = 0;
  }
  free(o.p);
  return CT_OK;
}
