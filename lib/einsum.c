/* einsum.c — Einstein summation, parsed and then expressed with rows of the op table: sums over
 * the letters no later operand or the result needs, transposes and reshapes to (batch, m, k) and
 * (batch, k, n), batched matrix products, and a last transpose to the result's order. Every step
 * is a recorded op, so the gradient (and the ones above it) comes from those ops. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 32
#define KEEP_CAP (MAX_OPS * CT_MAX_RANK + 1) /* a set of letters as a string */

/* an operand: its tensor (owned) and the letter of each axis */
typedef struct {
  ct_tensor *t;
  int rank;
  char l[CT_MAX_RANK];
} term;

static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool has(const term *t, char c) { return memchr(t->l, c, (size_t)t->rank) != NULL; }

typedef struct {
  int n;                        /* operands */
  int len[MAX_OPS];             /* letters of each operand */
  char l[MAX_OPS][CT_MAX_RANK]; /* (at most CT_MAX_RANK: checked against the ranks) */
  int out_len;
  char out[64];
} equation;

/* Parses `eq` for n operands; spaces are ignored. */
static ct_status parse(ct_context *ctx, const char *eq, int n, equation *e) {
  memset(e, 0, sizeof *e);
  const char *arrow = strstr(eq, "->");
  if (arrow && strstr(arrow + 2, "->")) return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\" has two \"->\"", eq);
  if (strstr(eq, "...") || strchr(eq, '.'))
    return ct__error(ctx, CT_ERR_UNSUPPORTED, "ct_einsum: \"%s\": ellipsis (\"...\") is not supported", eq);
  const char *end = arrow ? arrow : eq + strlen(eq);
  int k = 0, count[128] = {0};
  for (const char *p = eq; p <= end; ++p) {
    if (p == end) {
      ++k;
      continue;
    }
    if (*p == ',') {
      if (++k >= n)
        return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\" names more operands than the %d given", eq, n);
      continue;
    }
    char c = *p;
    if (c == ' ') continue;
    if (!is_letter(c))
      return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\": '%c' at %d is not a letter, ',' or \"->\"", eq, c,
                       (int)(p - eq));
    int i = k;
    if (e->len[i] >= CT_MAX_RANK)
      return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\": operand %d has more than %d letters", eq, i, CT_MAX_RANK);
    if (memchr(e->l[i], c, (size_t)e->len[i]))
      return ct__error(ctx, CT_ERR_UNSUPPORTED,
                       "ct_einsum: \"%s\": letter '%c' repeats in operand %d (diagonals and traces are not supported)",
                       eq, c, i);
    e->l[i][e->len[i]++] = c;
    count[(int)c]++;
  }
  if (k != n) return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\" names %d operands, %d given", eq, k, n);
  e->n = n;
  if (arrow) {
    for (const char *p = arrow + 2; *p; ++p) {
      char c = *p;
      if (c == ' ') continue;
      if (!is_letter(c))
        return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\": '%c' in the result is not a letter", eq, c);
      if (memchr(e->out, c, (size_t)e->out_len))
        return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\": letter '%c' repeats in the result", eq, c);
      if (!count[(int)c])
        return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\": letter '%c' of the result is in no operand", eq, c);
      if (e->out_len >= CT_MAX_RANK)
        return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\": the result has more than %d letters", eq, CT_MAX_RANK);
      e->out[e->out_len++] = c;
    }
  } else { /* implicit: the letters used once, alphabetically (upper case first, as NumPy) */
    for (int c = 0; c < 128; ++c)
      if (count[c] == 1) {
        if (e->out_len >= CT_MAX_RANK)
          return ct__error(ctx, CT_ERR_INVALID, "ct_einsum: \"%s\": the result has more than %d letters", eq, CT_MAX_RANK);
        e->out[e->out_len++] = (char)c;
      }
  }
  return CT_OK;
}

/* Sums t over its letters that are not in `keep` (a string). */
static ct_status sum_out(term *t, const char *keep) {
  int axes[CT_MAX_RANK], na = 0, r = 0;
  char l[CT_MAX_RANK];
  for (int d = 0; d < t->rank; ++d) {
    if (strchr(keep, t->l[d])) l[r++] = t->l[d];
    else axes[na++] = d;
  }
  if (na == 0) return CT_OK;
  ct_tensor *s = NULL;
  CT_TRY(ct_sum(t->t, axes, na, false, &s));
  ct_tensor_free(t->t);
  t->t = s;
  t->rank = r;
  memcpy(t->l, l, sizeof l);
  return CT_OK;
}

/* t with its axes in the order of the letters `order` (a permutation of t's), as a new tensor */
static ct_status permute(const term *t, const char *order, ct_tensor **out) {
  int perm[CT_MAX_RANK];
  bool same = true;
  for (int d = 0; d < t->rank; ++d) {
    perm[d] = (int)((const char *)memchr(t->l, order[d], (size_t)t->rank) - t->l);
    same &= perm[d] == d;
  }
  if (same) return ct_identity(t->t, out);
  return ct_transpose(t->t, perm, out);
}

static int64_t extent(const term *t, char c) {
  return t->t->shape[(const char *)memchr(t->l, c, (size_t)t->rank) - t->l];
}

/* a = contraction of a and b over their shared letters not in `keep` (b is consumed) */
static ct_status contract(term *a, term *b, const char keep[KEEP_CAP]) {
  /* the letters each side needs: kept ones and shared ones */
  char need[KEEP_CAP + CT_MAX_RANK];
  snprintf(need, sizeof need, "%s%.*s", keep, b->rank, b->l);
  CT_TRY(sum_out(a, need));
  snprintf(need, sizeof need, "%s%.*s", keep, a->rank, a->l);
  CT_TRY(sum_out(b, need));
  char batch[CT_MAX_RANK], af[CT_MAX_RANK], con[CT_MAX_RANK], bf[CT_MAX_RANK];
  int nb = 0, na = 0, nc = 0, nf = 0;
  int64_t B = 1, M = 1, K = 1, N = 1, shape[3 * CT_MAX_RANK];
  for (int d = 0; d < a->rank; ++d) {
    char c = a->l[d];
    if (has(b, c) && strchr(keep, c)) batch[nb++] = c, B *= extent(a, c);
    else if (has(b, c)) con[nc++] = c, K *= extent(a, c);
    else af[na++] = c, M *= extent(a, c);
  }
  for (int d = 0; d < b->rank; ++d)
    if (!has(a, b->l[d])) bf[nf++] = b->l[d], N *= extent(b, b->l[d]);
  if (nb + na + nf > CT_MAX_RANK)
    return ct__error(a->t->ctx, CT_ERR_UNSUPPORTED, "ct_einsum: an intermediate result of rank %d (at most %d)",
                     nb + na + nf, CT_MAX_RANK);
  char ao[CT_MAX_RANK], bo[CT_MAX_RANK], res[CT_MAX_RANK];
  int r = 0;
  memcpy(ao, batch, (size_t)nb), memcpy(ao + nb, af, (size_t)na), memcpy(ao + nb + na, con, (size_t)nc);
  memcpy(bo, batch, (size_t)nb), memcpy(bo + nb, con, (size_t)nc), memcpy(bo + nb + nc, bf, (size_t)nf);
  for (int i = 0; i < nb; ++i) res[r] = batch[i], shape[r++] = extent(a, batch[i]);
  for (int i = 0; i < na; ++i) res[r] = af[i], shape[r++] = extent(a, af[i]);
  for (int i = 0; i < nf; ++i) res[r] = bf[i], shape[r++] = extent(b, bf[i]);
  ct_tensor *pa = NULL, *pb = NULL, *a3 = NULL, *b3 = NULL, *p = NULL, *y = NULL;
  const int64_t sa[3] = {B, M, K}, sb[3] = {B, K, N};
  ct_status s = permute(a, ao, &pa);
  if (s == CT_OK) s = permute(b, bo, &pb);
  if (s == CT_OK) s = ct_reshape(pa, 3, sa, &a3);
  if (s == CT_OK) s = ct_reshape(pb, 3, sb, &b3);
  if (s == CT_OK) s = ct_matmul(a3, b3, false, false, &p);
  if (s == CT_OK) s = ct_reshape(p, r, shape, &y);
  ct_tensor *all[] = {pa, pb, a3, b3, p};
  for (size_t i = 0; i < sizeof all / sizeof *all; ++i) ct_tensor_free(all[i]);
  if (s != CT_OK) return s;
  ct_tensor_free(a->t);
  a->t = y;
  a->rank = r;
  memcpy(a->l, res, (size_t)r);
  return CT_OK;
}

ct_status ct_einsum(const char *equation_text, ct_tensor *const *xs, int n, ct_tensor **out) {
  if (!out) return ct__error(NULL, CT_ERR_NULL, "ct_einsum: out is NULL");
  *out = NULL;
  if (!equation_text) return ct__error(NULL, CT_ERR_NULL, "ct_einsum: equation is NULL");
  if (!xs) return ct__error(NULL, CT_ERR_NULL, "ct_einsum: xs is NULL");
  if (n < 1 || n > MAX_OPS)
    return ct__error(NULL, CT_ERR_INVALID, "ct_einsum: %d operands (1 to %d)", n, MAX_OPS);
  for (int i = 0; i < n; ++i) {
    CT_TRY(ct__check(xs[i], "ct_einsum"));
    if (xs[i]->ctx != xs[0]->ctx)
      return ct__error(xs[0]->ctx, CT_ERR_CONTEXT, "ct_einsum: operand %d belongs to another context", i);
  }
  ct_context *ctx = xs[0]->ctx;
  equation e;
  CT_TRY(parse(ctx, equation_text, n, &e));
  /* ranks and extents */
  int64_t ext[128];
  for (int c = 0; c < 128; ++c) ext[c] = -1;
  for (int i = 0; i < n; ++i) {
    if (e.len[i] != xs[i]->rank)
      return ct__error(ctx, CT_ERR_SHAPE, "ct_einsum: \"%s\": operand %d has rank %d, the equation gives it %d letters",
                       equation_text, i, xs[i]->rank, e.len[i]);
    for (int d = 0; d < e.len[i]; ++d) {
      int c = e.l[i][d];
      if (ext[c] >= 0 && ext[c] != xs[i]->shape[d])
        return ct__error(ctx, CT_ERR_SHAPE, "ct_einsum: \"%s\": letter '%c' has extent %lld in operand %d, %lld before",
                         equation_text, c, (long long)xs[i]->shape[d], i, (long long)ext[c]);
      ext[c] = xs[i]->shape[d];
    }
  }
  term t[MAX_OPS];
  memset(t, 0, sizeof t);
  ct_status s = CT_OK;
  for (int i = 0; i < n && s == CT_OK; ++i) {
    t[i].rank = e.len[i];
    memcpy(t[i].l, e.l[i], (size_t)e.len[i]);
    s = ct_identity(xs[i], &t[i].t);
  }
  /* fold from the left; each step keeps the result's letters and those of the operands after it */
  for (int i = 1; i < n && s == CT_OK; ++i) {
    char keep[KEEP_CAP];
    int k = snprintf(keep, sizeof keep, "%.*s", e.out_len, e.out);
    for (int j = i + 1; j < n; ++j) k += snprintf(keep + k, sizeof keep - (size_t)k, "%.*s", t[j].rank, t[j].l);
    s = contract(&t[0], &t[i], keep);
  }
  if (s == CT_OK) {
    char keep[CT_MAX_RANK + 1];
    snprintf(keep, sizeof keep, "%.*s", e.out_len, e.out);
    s = sum_out(&t[0], keep);
  }
  if (s == CT_OK) s = permute(&t[0], e.out, out);
  for (int i = 0; i < n; ++i) ct_tensor_free(t[i].t);
  return s;
}
