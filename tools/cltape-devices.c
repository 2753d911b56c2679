/*
 * cltape-devices — lists the OpenCL devices cltape can use, with the properties that matter to
 * it, and marks the one a context would pick (CLTAPE_DEVICE, else the first GPU, else the first
 * CPU; --device tries another selector). --check runs every op of the op table on a device
 * against the host reference and the gradient checker; --dump-programs writes the source and
 * build options of every program the library can build (for offline compilers).
 *
 * It links the static library: the check runs the op table's rows directly (ct__run) and the
 * dump uses the library's own program assembly.
 */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include "ct_host.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *type_name(ct_device_type type) {
  switch (type) {
    case CT_DEVICE_CPU: return "cpu";
    case CT_DEVICE_GPU: return "gpu";
    case CT_DEVICE_ACCELERATOR: return "accelerator";
    default: return "other";
  }
}

/* "15.6 GiB", "512 KiB" */
static const char *bytes_text(uint64_t bytes, char *buf, size_t cap) {
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) snprintf(buf, cap, "%llu bytes", (unsigned long long)bytes);
  else snprintf(buf, cap, v < 10.0 && v != (double)(uint64_t)v ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

/* ---- --check: every row of the op table against the host reference and the gradient checker ---- */
/* A case: the inputs of one call of a row (shapes, int32 inputs listed) and its attributes. The
 * values come from the row's domain in the host reference (lib/reference.c), the expected results
 * from its float64 evaluation there. */
#define MAXIN 4
typedef struct {
  int n;
  int rank[MAXIN];
  int64_t shape[MAXIN][CT_MAX_RANK];
  bool is_int[MAXIN];         /* int32 whatever the dtype checked (indices, labels, masks) */
  const double *fixed[MAXIN]; /* given values (indices, labels) instead of generated ones */
  ct_attrs at;
  bool grad;                  /* also the gradient check (small cases only) */
} ck_case;

static ct_context *CK;
static bool CK_FP64;

/* Values from the row's test domain (its DOM column, ct__reference_input) with no two equal and
 * none on a simple fraction (kinks and ties of abs, relu, max and round lie on those); `grid`
 * puts them on multiples of 0.5 instead (ties for the comparisons); int32 takes them times 3,
 * rounded. */
static void ck_values(ct_op_id op, int input, int64_t n, ct_dtype dt, bool grid, double *v) {
  for (int64_t k = 0; k < n; ++k) {
    double f = fmod(0.1234 + 0.2345 * input + 0.6180339887 * (double)k, 1.0);
    double x = ct__reference_input(op, input, f);
    if (grid) x = round(x * 2) / 2;
    v[k] = dt == CT_INT32 ? round(x * 3) : x;
  }
}

typedef struct {
  bool wrong, unsupported;
  bool error; /* wrong because a call failed (status), not because of a wrong value */
  char what[400];
} ck_result;

static void ck_fail(ck_result *r, const char *fmt, ...) {
  if (r->wrong) return;
  r->wrong = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->what, sizeof r->what, fmt, ap);
  va_end(ap);
}

static void free_inputs(ct_tensor **t, ct_ref_tensor *h, int n) {
  for (int i = 0; i < n; ++i) {
    ct_tensor_free(t[i]);
    t[i] = NULL;
    ct__reference_free(&h[i]);
  }
}

/* Device tensors for a case in dtype dt, and the same values on the host as the device holds them. */
static ct_status ck_inputs(ct_op_id op, const ck_case *c, ct_dtype dt, bool grid, ct_tensor **t, ct_ref_tensor *h) {
  ct_status s = CT_OK;
  for (int i = 0; i < c->n && s == CT_OK; ++i) {
    int64_t n = 1;
    for (int d = 0; d < c->rank[i]; ++d) n *= c->shape[i][d];
    ct_dtype idt = c->is_int[i] ? CT_INT32 : dt;
    h[i].rank = c->rank[i];
    memcpy(h[i].shape, c->shape[i], sizeof h[i].shape);
    h[i].v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!h[i].v) return CT_ERR_OUT_OF_MEMORY;
    if (c->fixed[i]) memcpy(h[i].v, c->fixed[i], sizeof(double) * (size_t)n);
    else ck_values(op, i, n, idt, grid, h[i].v);
    void *raw = malloc(8 * (size_t)(n ? n : 1));
    if (!raw) return CT_ERR_OUT_OF_MEMORY;
    for (int64_t k = 0; k < n; ++k)
      if (idt == CT_INT32) ((int32_t *)raw)[k] = (int32_t)h[i].v[k];
      else if (idt == CT_FLOAT32) ((float *)raw)[k] = (float)h[i].v[k];
      else ((double *)raw)[k] = h[i].v[k];
    s = ct_tensor_from_data(CK, idt, c->rank[i], c->shape[i], raw, &t[i]);
    free(raw);
    if (s == CT_OK) s = ct_tensor_read_f64(t[i], h[i].v, n); /* exactly what the device holds */
  }
  return s;
}

static const char *ck_input_text(const ct_ref_tensor *h, int n, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < n && used + 40 < cap; ++i) {
    int64_t cnt = 1;
    for (int d = 0; d < h[i].rank; ++d) cnt *= h[i].shape[d];
    char shape[96];
    ct__shape_str(h[i].rank, h[i].shape, shape, sizeof shape);
    used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? " " : "", shape);
    if (cnt <= 4)
      for (int64_t k = 0; k < cnt && used + 20 < cap; ++k)
        used += (size_t)snprintf(buf + used, cap - used, "%s%.9g%s", k ? "," : "{", h[i].v[k], k + 1 == cnt ? "}" : "");
  }
  return buf;
}

/* The operands of result element k of an elementwise (broadcasting) op: "x = 0.5" or "a = 1, b = 2". */
static void elementwise_inputs(const ct_ref_tensor *h, int n, const ct_ref_tensor *y, int64_t k, char *buf, size_t cap) {
  int64_t c[CT_MAX_RANK], rem = k;
  for (int d = y->rank - 1; d >= 0; --d) {
    c[d] = rem % y->shape[d];
    rem /= y->shape[d];
  }
  static const char *const names[3][3] = {{"x"}, {"a", "b"}, {"condition", "a", "b"}};
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < n && i < 3; ++i) {
    int64_t idx = 0;
    for (int d = 0; d < h[i].rank; ++d) idx = idx * h[i].shape[d] + (h[i].shape[d] == 1 ? 0 : c[y->rank - h[i].rank + d]);
    used += (size_t)snprintf(buf + used, cap - used, "%s%s = %.9g", i ? ", " : "", names[n - 1][i], h[i].v[idx]);
    if (used >= cap) break;
  }
}

/* Forward of one case in dtype dt against the host reference. */
static void ck_forward(ct_op_id op, const ck_case *c, ct_dtype dt, bool grid, ck_result *r) {
  ct_tensor *t[MAXIN] = {0}, *y = NULL;
  ct_ref_tensor h[MAXIN] = {{0}}, ref = {0};
  ct_status s = ck_inputs(op, c, dt, grid, t, h);
  ct_attrs at = c->at;
  if (op == CT_OP_CAST) at.cast.dtype = CT_INT32;
  if (op == CT_OP_ONE_HOT) at.one_hot.dtype = dt;
  if (s == CT_OK) s = ct__run(op, (const ct_tensor *const *)t, c->n, &at, &y);
  if (s == CT_ERR_UNSUPPORTED) {
    r->unsupported = true;
    snprintf(r->what, sizeof r->what, "%s: %s", ct_dtype_name(dt), ct_errmsg());
  } else if (s != CT_OK) {
    ck_fail(r, "%s: %s: %s", ct_dtype_name(dt), ct_status_name(s), ct_errmsg());
    r->error = true;
  } else if ((s = ct__reference_forward(op, h, c->n, &at, &ref)) != CT_OK) {
    ck_fail(r, "host reference: %s", ct_errmsg());
  } else {
    int64_t n = ct_tensor_size(y), want = 1;
    for (int d = 0; d < ref.rank; ++d) want *= ref.shape[d];
    double *got = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (n != want || ct_tensor_rank(y) != ref.rank) {
      ck_fail(r, "%s: %lld results, wanted %lld", ct_dtype_name(dt), (long long)n, (long long)want);
    } else if (!got || ct_tensor_read_f64(y, got, n) != CT_OK) {
      ck_fail(r, "%s: reading the result failed: %s", ct_dtype_name(dt), ct_errmsg());
    } else {
      ct_dtype ody = ct_tensor_dtype(y);
      /* float results: relative to the value, at least 1; float32 allows the device's math
       * (native or libm) its rounding, float64 a few ulps of accumulated error */
      double tol = ody == CT_INT32 ? 0 : ody == CT_FLOAT32 ? 1e-4 : 1e-10, worst = -1;
      int64_t wi = 0;
      for (int64_t k = 0; k < n; ++k) {
        double want_k = ody == CT_INT32 ? trunc(ref.v[k]) : ref.v[k];
        double err = fabs(got[k] - want_k);
        if (isnan(want_k) && isnan(got[k])) err = 0;
        else if (isnan(err)) err = INFINITY;
        double ratio = tol > 0 ? err / (tol * fmax(1, fabs(want_k))) : err;
        if (ratio > worst) {
          worst = ratio;
          wi = k;
        }
      }
      if (worst > (tol > 0 ? 1 : 0)) {
        char in[200];
        if (ct_ops[op].kind != K_OTHER || op == CT_OP_SELECT) elementwise_inputs(h, c->n, &ref, wi, in, sizeof in);
        else ck_input_text(h, c->n, in, sizeof in);
        ck_fail(r, "%s: worst error %.3g at result %lld: got %.9g, wanted %.9g; input %s", ct_dtype_name(dt),
                fabs(got[wi] - (ody == CT_INT32 ? trunc(ref.v[wi]) : ref.v[wi])), (long long)wi, got[wi],
                ref.v[wi], in);
      }
    }
    free(got);
  }
  ct_tensor_free(y);
  ct__reference_free(&ref);
  free_inputs(t, h, c->n);
}

typedef struct {
  ct_op_id op;
  const ck_case *c;
  int order; /* 1: the row itself; 2: the gradient of the row (inputs: the row's, then dy) */
} ck_fn_args;

static ct_status ck_f(ct_tensor *const *in, int n, ct_tensor **out, void *u) {
  const ck_fn_args *a = u;
  ct_attrs at = a->c->at;
  if (a->op == CT_OP_CAST) at.cast.dtype = CK_FP64 ? CT_FLOAT64 : CT_FLOAT32;
  if (a->order == 1) return ct__run(a->op, (const ct_tensor *const *)in, n, &at, out);
  int no = n - 1;
  ct_tape *t = NULL;
  ct_tensor *y = NULL, *g[MAXIN] = {0}, *flat[MAXIN] = {0}, *src[MAXIN];
  int ns = 0;
  ct_status s = ct_tape_begin(CK, NULL, &t);
  for (int i = 0; i < no && s == CT_OK; ++i)
    if (!a->c->is_int[i]) {
      src[ns++] = in[i];
      s = ct_tape_watch(t, in[i]);
    }
  if (s == CT_OK) s = ct__run(a->op, (const ct_tensor *const *)in, no, &at, &y);
  if (t) ct_tape_end(t);
  if (s == CT_OK) s = ct_tape_gradient(t, &y, 1, src, ns, &in[no], CT_UNCONNECTED_ZERO, g);
  int64_t m1[1] = {-1};
  for (int i = 0; i < ns && s == CT_OK; ++i) s = ct_reshape(g[i], 1, m1, &flat[i]);
  if (s == CT_OK) s = ns == 1 ? ct_identity(flat[0], out) : ct_concat(flat, ns, 0, out);
  ct_tensor_free(y);
  ct_tensor_free_n(g, ns);
  ct_tensor_free_n(flat, ns);
  ct_tape_free(t);
  return s;
}

/* Gradient check of the row (order 1) or of its gradient (order 2: runs the gradient rows). */
static void ck_gradient(ct_op_id op, const ck_case *c, int order, ck_result *r, int *checked) {
  ct_dtype dt = CK_FP64 ? CT_FLOAT64 : CT_FLOAT32;
  ct_tensor *t[MAXIN + 1] = {0}, *y = NULL;
  ct_ref_tensor h[MAXIN] = {{0}};
  ct_status s = ck_inputs(op, c, dt, false, t, h);
  ck_fn_args a = {op, c, order};
  int n = c->n;
  if (s == CT_OK && order == 2) { /* dy: the shape of the row's result */
    ck_fn_args a1 = {op, c, 1};
    s = ck_f(t, n, &y, &a1);
    if (s == CT_OK) s = ct_ones_like(y, &t[n]);
    n++;
  }
  ct_gradcheck_report rep;
  memset(&rep, 0, sizeof rep);
  if (s == CT_OK) s = ct_gradcheck(CK, ck_f, &a, t, n, NULL, &rep);
  if (s == CT_ERR_UNSUPPORTED) {
    r->unsupported = true;
    snprintf(r->what, sizeof r->what, "%s", ct_errmsg());
  } else if (s != CT_OK) {
    ck_fail(r, "gradient%s: %s: %s", order == 2 ? " of the gradient" : "", ct_status_name(s), ct_errmsg());
    r->error = true;
  } else if (!rep.passed) {
    char in[200];
    ck_fail(r, "%s: worst error %.3g at input %d index %lld: analytic %.9g, numeric %.9g; input %s",
            order == 2 ? "second derivative" : "gradient", rep.max_abs_error, rep.worst_input,
            (long long)rep.worst_index, rep.worst_analytic, rep.worst_numeric, ck_input_text(h, c->n, in, sizeof in));
  } else {
    *checked += rep.checked;
  }
  ct_tensor_free(y);
  ct_tensor_free_n(t, c->n + 1);
  for (int i = 0; i < c->n; ++i) ct__reference_free(&h[i]);
}

#define SHAPE(c, i, ...)                                                     \
  do {                                                                       \
    const int64_t s_[] = {__VA_ARGS__};                                      \
    (c)->rank[i] = (int)(sizeof s_ / sizeof *s_);                            \
    memcpy((c)->shape[i], s_, sizeof s_);                                    \
    if ((c)->n < (i) + 1) (c)->n = (i) + 1;                                  \
  } while (0)

static const double GATHER_IDX[] = {3, 0, 2, 2, 1}, HOT_IDX[] = {0, 3, 1, 2, 3}, LABELS[] = {1, 4, 0, 2, 3};
static const double LABELS_SMALL[] = {2, 0};

static void axes(ct_attrs *at, int n, const int *ax, bool keep) {
  at->reduce.naxes = n;
  memcpy(at->reduce.axes, ax, sizeof(int) * (size_t)n);
  at->reduce.keepdims = keep;
}

static void window_attrs(ct_attrs *at, int kh, int kw, int sh, int sw, bool same) {
  at->window.win[0] = kh;
  at->window.win[1] = kw;
  at->window.stride[0] = sh;
  at->window.stride[1] = sw;
  at->window.same = same;
}

/* The calls a row is checked with: forward cases, and `grad` on the small ones the gradient
 * checker walks. Returns how many (0: the row is checked through another, see ck_parent). */
static int ck_cases_of(ct_op_id op, ck_case *c, int cap);
static int ck_cases(ct_op_id op, ck_case *c, int cap) {
  int n = ck_cases_of(op, c, cap);
  for (int i = 0; i < n; ++i) c[i].at.family = ct_ops[op].attrs; /* the row's attribute family */
  return n;
}
static int ck_cases_of(ct_op_id op, ck_case *c, int cap) {
  memset(c, 0, sizeof *c * (size_t)cap);
  int n = 0;
  switch (ct_ops[op].kind) {
    case K_UN:
      SHAPE(&c[0], 0, 5, 7);
      SHAPE(&c[1], 0, 2, 3);
      c[1].grad = true;
      return 2;
    case K_BIN:
    case K_CMP:
      SHAPE(&c[0], 0, 5, 7);
      SHAPE(&c[0], 1, 5, 7);
      SHAPE(&c[1], 0, 4, 1, 6);
      SHAPE(&c[1], 1, 3, 1);
      SHAPE(&c[2], 0, 2, 3);
      SHAPE(&c[2], 1, 3);
      c[2].grad = true;
      return 3;
    default: break;
  }
  switch (op) {
    case CT_OP_SELECT:
      SHAPE(&c[0], 0, 3, 4);
      SHAPE(&c[0], 1, 3, 4);
      SHAPE(&c[0], 2, 4);
      c[0].is_int[0] = true;
      c[1] = c[0];
      SHAPE(&c[1], 0, 2, 3);
      SHAPE(&c[1], 1, 2, 3);
      SHAPE(&c[1], 2, 3);
      c[1].grad = true;
      return 2;
    case CT_OP_CAST:
    case CT_OP_IDENTITY:
    case CT_OP_STOP_GRAD:
      SHAPE(&c[0], 0, 3, 5);
      c[0].at.shape.rank = 2;
      memcpy(c[0].at.shape.shape, c[0].shape[0], sizeof c[0].at.shape.shape);
      c[0].grad = true;
      return 1;
    case CT_OP_RESHAPE:
      SHAPE(&c[0], 0, 2, 3, 2);
      c[0].at.shape.rank = 2;
      c[0].at.shape.shape[0] = 4;
      c[0].at.shape.shape[1] = 3;
      c[0].grad = true;
      return 1;
    case CT_OP_SUM:
    case CT_OP_MAX:
    case CT_OP_MIN:
    case CT_OP_PROD:
    case CT_OP_ARGMAX:
    case CT_OP_ARGMIN: {
      static const int a02[] = {0, 2}, a1[] = {1}, a012[] = {0, 1, 2};
      bool arg = op == CT_OP_ARGMAX || op == CT_OP_ARGMIN;
      SHAPE(&c[0], 0, 3, 4, 5);
      SHAPE(&c[1], 0, 3, 4, 5);
      SHAPE(&c[2], 0, 2, 3, 2);
      if (arg) {
        c[0].at.axis.axis = 2;
        c[1].at.axis.axis = 0;
        c[2].at.axis.axis = 1;
      } else {
        axes(&c[0].at, 2, a02, false);
        axes(&c[1].at, 3, a012, true);
        axes(&c[2].at, 1, a1, false);
      }
      c[2].grad = !arg;
      return 3;
    }
    case CT_OP_TRANSPOSE:
      SHAPE(&c[0], 0, 2, 3, 4);
      c[0].at.perm.perm[0] = 2, c[0].at.perm.perm[1] = 0, c[0].at.perm.perm[2] = 1;
      c[0].grad = true;
      return 1;
    case CT_OP_SLICE:
      SHAPE(&c[0], 0, 4, 5);
      c[0].at.slice.begin[0] = 1, c[0].at.slice.begin[1] = 4;
      c[0].at.slice.step[0] = 2, c[0].at.slice.step[1] = -2;
      c[0].at.slice.shape[0] = 2, c[0].at.slice.shape[1] = 3;
      c[0].grad = true;
      return 1;
    case CT_OP_CONCAT:
      SHAPE(&c[0], 0, 2, 3);
      SHAPE(&c[0], 1, 2, 1);
      SHAPE(&c[0], 2, 2, 2);
      c[0].at.axis.axis = 1;
      c[0].grad = true;
      return 1;
    case CT_OP_BROADCAST:
      SHAPE(&c[0], 0, 3, 1);
      c[0].at.shape.rank = 3;
      c[0].at.shape.shape[0] = 2, c[0].at.shape.shape[1] = 3, c[0].at.shape.shape[2] = 4;
      c[0].grad = true;
      return 1;
    case CT_OP_GATHER:
      SHAPE(&c[0], 0, 4, 3);
      SHAPE(&c[0], 1, 5);
      c[0].is_int[1] = true;
      c[0].fixed[1] = GATHER_IDX;
      c[0].grad = true;
      return 1;
    case CT_OP_ONE_HOT:
      SHAPE(&c[0], 0, 5);
      c[0].is_int[0] = true;
      c[0].fixed[0] = HOT_IDX;
      c[0].at.one_hot.depth = 4;
      return 1;
    case CT_OP_ARGSORT: /* rows longer than a work-group's pairs, a middle axis, one row */
      SHAPE(&c[0], 0, 3, 700);
      c[0].at.sort.axis = 1;
      SHAPE(&c[1], 0, 4, 5, 3);
      c[1].at.sort.axis = 1;
      c[1].at.sort.descending = true;
      SHAPE(&c[2], 0, 9);
      return 3;
    case CT_OP_MATMUL:
      SHAPE(&c[0], 0, 2, 3, 4);
      SHAPE(&c[0], 1, 4, 5);
      SHAPE(&c[1], 0, 9, 7);
      SHAPE(&c[1], 1, 11, 9);
      c[1].at.matmul.ta = c[1].at.matmul.tb = true;
      SHAPE(&c[2], 0, 20, 130); /* B past the size the tiled kernels read in place: packed */
      SHAPE(&c[2], 1, 130, 131);
      SHAPE(&c[3], 0, 2, 3);
      SHAPE(&c[3], 1, 3, 2);
      c[3].grad = true;
      return 4;
    case CT_OP_CONV2D:
      SHAPE(&c[0], 0, 2, 6, 7, 3);
      SHAPE(&c[0], 1, 3, 3, 3, 4);
      window_attrs(&c[0].at, 0, 0, 1, 1, true);
      SHAPE(&c[1], 0, 1, 7, 6, 8); /* channels for the vector kernels */
      SHAPE(&c[1], 1, 3, 3, 8, 8);
      window_attrs(&c[1].at, 0, 0, 2, 2, false);
      SHAPE(&c[2], 0, 1, 4, 4, 2);
      SHAPE(&c[2], 1, 2, 2, 2, 3);
      window_attrs(&c[2].at, 0, 0, 1, 1, true);
      c[2].grad = true;
      SHAPE(&c[3], 0, 1, 3, 4, 8); /* the gradients' vector kernels */
      SHAPE(&c[3], 1, 2, 2, 8, 8);
      window_attrs(&c[3].at, 0, 0, 1, 1, true);
      c[3].grad = true;
      return 4;
    case CT_OP_MAXPOOL:
    case CT_OP_AVGPOOL:
      SHAPE(&c[0], 0, 2, 6, 7, 3);
      window_attrs(&c[0].at, 2, 2, 2, 2, false);
      SHAPE(&c[1], 0, 1, 7, 6, 8);
      window_attrs(&c[1].at, 3, 3, 2, 2, true);
      SHAPE(&c[2], 0, 1, 4, 4, 2);
      window_attrs(&c[2].at, 2, 2, 2, 2, false);
      c[2].grad = true;
      SHAPE(&c[3], 0, 1, 4, 4, 8);
      window_attrs(&c[3].at, 3, 3, 2, 2, true);
      c[3].grad = true;
      return 4;
    case CT_OP_DROPOUT:
      SHAPE(&c[0], 0, 6, 50);
      c[0].at.dropout.rate = 0.3;
      c[0].at.dropout.seed = 7;
      SHAPE(&c[1], 0, 2, 5);
      c[1].at = c[0].at;
      c[1].grad = true;
      return 2;
    case CT_OP_SOFTMAX_XENT:
      SHAPE(&c[0], 0, 5, 7);
      SHAPE(&c[0], 1, 5);
      c[0].is_int[1] = true;
      c[0].fixed[1] = LABELS;
      SHAPE(&c[1], 0, 2, 3);
      SHAPE(&c[1], 1, 2);
      c[1].is_int[1] = true;
      c[1].fixed[1] = LABELS_SMALL;
      c[1].grad = true;
      return 2;
    case CT_OP_BIAS_ADD:
      SHAPE(&c[0], 0, 3, 4, 5);
      SHAPE(&c[0], 1, 5);
      SHAPE(&c[1], 0, 2, 3);
      SHAPE(&c[1], 1, 3);
      c[1].grad = true;
      return 2;
    default: return n;
  }
}

/* Gradient rows: their results are the gradient the checker compares with finite differences of
 * the forward row, and their own gradients are checked as that row's second derivative. */
static ct_op_id ck_parent(ct_op_id op) {
  switch (op) {
    case CT_OP_SLICE_GRAD: return CT_OP_SLICE;
    case CT_OP_GATHER_GRAD: return CT_OP_GATHER;
    case CT_OP_CONV2D_BP_INPUT:
    case CT_OP_CONV2D_BP_FILTER: return CT_OP_CONV2D;
    case CT_OP_MAXPOOL_GRAD:
    case CT_OP_MAXPOOL_GRADGRAD: return CT_OP_MAXPOOL;
    case CT_OP_AVGPOOL_GRAD: return CT_OP_AVGPOOL;
    case CT_OP_SOFTMAX_XENT_GRAD: return CT_OP_SOFTMAX_XENT;
    case CT_OP_BIAS_ADD_GRAD: return CT_OP_BIAS_ADD;
    default: return CT_OP_COUNT;
  }
}

typedef struct {
  ck_result r;
  char note[200];
  bool done;
} ck_row;

static void ck_row_run(ct_op_id op, ck_row *row) {
  ck_case cs[6];
  int nc = ck_cases(op, cs, 6);
  const ct_op_info *info = &ct_ops[op];
  ct_dtype dts[3] = {CT_FLOAT32, CT_FLOAT64, CT_INT32};
  int ndt = info->dtypes == DA ? 3 : 2;
  bool any = false;
  char done[64] = "";
  for (int d = 0; d < ndt && !row->r.wrong; ++d) {
    if (dts[d] == CT_FLOAT64 && !CK_FP64) continue;
    ck_result r = {0};
    for (int k = 0; k < nc && !r.wrong && !r.unsupported; ++k) {
      ck_forward(op, &cs[k], dts[d], false, &r);
      if (info->kind == K_CMP && !r.wrong && !r.unsupported) ck_forward(op, &cs[k], dts[d], true, &r);
    }
    if (r.wrong) row->r = r;
    else if (!r.unsupported) {
      any = true;
      size_t l = strlen(done);
      snprintf(done + l, sizeof done - l, "%s%s", l ? " " : "", ct_dtype_name(dts[d]));
    }
  }
  if (!any && !row->r.wrong) {
    row->r.unsupported = true;
    snprintf(row->r.what, sizeof row->r.what, "no dtype runs on this device");
    return;
  }
  snprintf(row->note, sizeof row->note, "%s%s", done, CK_FP64 ? "" : " (float64 unsupported)");
  bool nograd = info->grad == ct__nograd;
  int first = 0, second = 0;
  ck_result gr = {0};
  bool has_grad_rows = false;
  for (int p = 0; p < CT_OP_COUNT; ++p)
    if (ck_parent((ct_op_id)p) == op) has_grad_rows = true;
  for (int k = 0; k < nc && !nograd && !row->r.wrong && !gr.wrong; ++k) {
    if (!cs[k].grad) continue;
    ck_gradient(op, &cs[k], 1, &gr, &first);
    if (!gr.wrong && has_grad_rows) ck_gradient(op, &cs[k], 2, &gr, &second);
  }
  if (gr.wrong && !row->r.wrong) row->r = gr;
  size_t l = strlen(row->note);
  if (nograd) snprintf(row->note + l, sizeof row->note - l, "; not differentiable");
  else if (gr.unsupported) snprintf(row->note + l, sizeof row->note - l, "; gradient unsupported: %s", gr.what);
  else {
    l += (size_t)snprintf(row->note + l, sizeof row->note - l, "; gradient (%s) %d partials",
                          CK_FP64 ? "float64" : "float32", first);
    if (has_grad_rows) snprintf(row->note + l, sizeof row->note - l, ", 2nd derivative %d", second);
  }
}

static int check_device(const char *selector, const char *only) {
  bool known = !only;
  for (int i = 0; i < CT_OP_COUNT && !known; ++i) known = strcasecmp(only, ct_ops[i].name) == 0;
  if (!known) {
    fprintf(stderr, "cltape-devices: --op %s: the op table has no such op\n", only);
    return 2;
  }
  ct_status s = ct_context_create(selector, &CK);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-devices: no device for the check: %s: %s\n", ct_status_name(s), ct_errmsg());
    return 2;
  }
  ct_device_info info;
  ct_context_device(CK, &info);
  CK_FP64 = info.fp64;
  printf("checking every op of the op table on #%d %s (%s, %s)\n", info.index, info.name, info.platform,
         info.driver_version);
  ck_row rows[CT_OP_COUNT];
  memset(rows, 0, sizeof rows);
  int wrong = 0, errors = 0, ok = 0, unsupported = 0, skipped = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < CT_OP_COUNT; ++i) {
    ct_op_id op = (ct_op_id)i, parent = ck_parent(op);
    if (only && strcasecmp(only, ct_ops[op].name) != 0 && !(parent < CT_OP_COUNT && strcasecmp(only, ct_ops[parent].name) == 0))
      continue;
    const char *status;
    char detail[640];
    if (op == CT_OP_CUSTOM) {
      status = "skipped";
      snprintf(detail, sizeof detail, "runs the user's own kernel source");
      skipped++;
    } else {
      ct_op_id from = parent < CT_OP_COUNT ? parent : op;
      if (!rows[from].done) {
        ck_row_run(from, &rows[from]);
        rows[from].done = true;
      }
      const ck_row *r = &rows[from];
      status = r->r.error ? "ERROR" : r->r.wrong ? "WRONG" : r->r.unsupported ? "unsupported" : "ok";
      if (r->r.wrong || r->r.unsupported) snprintf(detail, sizeof detail, "%s%s%s", from != op ? "through " : "",
                                                   from != op ? ct_ops[from].name : "", from != op ? ": " : "");
      else detail[0] = 0;
      size_t l = strlen(detail);
      if (r->r.wrong || r->r.unsupported) snprintf(detail + l, sizeof detail - l, "%s", r->r.what);
      else if (from != op)
        snprintf(detail, sizeof detail, "the gradient of %s (%s)", ct_ops[from].name,
                 op == CT_OP_MAXPOOL_GRADGRAD ? "its second derivative" : "forward and second derivative");
      else snprintf(detail, sizeof detail, "%s", r->note);
      if (r->r.error) errors++;
      else if (r->r.wrong) wrong++;
      else if (r->r.unsupported) unsupported++;
      else ok++;
    }
    printf("%-40s %-11s %s\n", ct_ops[op].name, status, detail);
    fflush(stdout);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  printf("%d ok, %d wrong, %d failed with an error, %d unsupported, %d skipped (%.1f s)\n", ok, wrong, errors,
         unsupported, skipped, secs);
  ct_context_free(CK);
  return wrong || errors ? 1 : 0;
}

/* ---- --dump-programs DIR: every program the library can build, for offline compilers ---------- */
/* DIR/<name>.cl holds the whole source, DIR/programs.tsv one line per program: name, "default" or
 * "tuner" (the device defaults use it, or not: a tile only the tuner may choose, the fused
 * attention that CLTAPE_ATTENTION=fused asks for, the fused kernels of every row), build options. The
 * programs are those of a GPU with float64 (both math variants of float32 where they differ). */
typedef struct {
  const char *dir;
  FILE *index;
  int count, failed;
  const char *suffix;
} dump_state;

static void dump_one(const char *name, const char *source, const char *options, bool in_defaults, void *user) {
  dump_state *d = user;
  /* native math changes only the float32 programs that call the math built-ins */
  if (d->suffix[0] && (!strstr(name, "-float32") || strncmp(name, "matmul", 6) == 0)) return;
  char path[1200];
  snprintf(path, sizeof path, "%s/%s%s.cl", d->dir, name, d->suffix);
  FILE *f = fopen(path, "w");
  if (!f || fputs(source, f) < 0) d->failed++;
  if (f && fclose(f) != 0) d->failed++;
  fprintf(d->index, "%s%s\t%s\t%s\n", name, d->suffix, in_defaults ? "default" : "tuner", options);
  d->count++;
}

static int dump_programs(const char *dir) {
  char path[1200];
  snprintf(path, sizeof path, "%s/programs.tsv", dir);
  dump_state d = {dir, fopen(path, "w"), 0, 0, ""};
  if (!d.index) {
    fprintf(stderr, "cltape-devices: cannot write %s (does the folder exist?)\n", path);
    return 1;
  }
  ct_device_info gpu;
  memset(&gpu, 0, sizeof gpu);
  gpu.type = CT_DEVICE_GPU;
  gpu.fp64 = true;
  gpu.fp16 = true; /* the half builds too (host/half.c) */
  gpu.max_work_group_size = 1024;
  gpu.local_mem_bytes = 49152;
  ct_status s = ctb_programs_each(&gpu, true, dump_one, &d);
  d.suffix = "-libm"; /* CT_NATIVE=0: where the native-math probe rejects the device's native_* */
  if (s == CT_OK) s = ctb_programs_each(&gpu, false, dump_one, &d);
  fclose(d.index);
  if (s != CT_OK || d.failed) {
    fprintf(stderr, "cltape-devices: writing the programs failed: %s\n", s != CT_OK ? ct_errmsg() : "I/O error");
    return 1;
  }
  printf("%d programs written to %s\n", d.count, dir);
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: cltape-devices [--brief] [--device SELECTOR] [--help]\n"
          "       cltape-devices --check [SELECTOR] [--op NAME]\n"
          "\n"
          "Lists the OpenCL devices cltape can use and marks the one a context picks.\n"
          "\n"
          "  -b, --brief            one line per device\n"
          "  -c, --check [SELECTOR] run every op of the op table on the device (the default one, or\n"
          "                         SELECTOR's) against the host reference, and its gradient through\n"
          "                         the gradient checker; one line per op: ok, WRONG (with the worst\n"
          "                         error and the input), ERROR (a call failed, with the message) or\n"
          "                         unsupported. Exit status 1 if an op is wrong or failed\n"
          "      --op NAME          with --check: only this op (and the gradient ops it checks)\n"
          "      --dump-programs DIR  write every program the library can build for a GPU (source\n"
          "                         and build options, DIR/programs.tsv) for offline compilers\n"
          "  -d, --device SELECTOR  mark the device this selector picks instead of the default: an\n"
          "                         index, gpu, cpu, or part of the device's or platform's name\n"
          "                         (the default is $CLTAPE_DEVICE, else the first GPU, else the\n"
          "                         first CPU)\n"
          "  -h, --help             this text\n");
}

int main(int argc, char **argv) {
  bool brief = false, check = false;
  const char *selector = NULL, *only = NULL, *dump = NULL;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "-c") == 0 || strcmp(a, "--check") == 0) {
      check = true;
      if (i + 1 < argc && argv[i + 1][0] != '-') selector = argv[++i];
    } else if (strcmp(a, "--op") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else if (strcmp(a, "--dump-programs") == 0 && i + 1 < argc) {
      dump = argv[++i];
    } else if (strcmp(a, "-b") == 0 || strcmp(a, "--brief") == 0) {
      brief = true;
    } else if (strcmp(a, "-d") == 0 || strcmp(a, "--device") == 0) {
      if (i + 1 >= argc || !argv[i + 1][0]) {
        fprintf(stderr, "cltape-devices: %s needs a selector\n", a);
        usage(stderr);
        return 2;
      }
      selector = argv[++i];
    } else if (strncmp(a, "--device=", 9) == 0 && a[9]) {
      selector = a + 9;
    } else {
      fprintf(stderr, "cltape-devices: unknown argument \"%s\"\n", a);
      usage(stderr);
      return 2;
    }
  }

  if (dump) return dump_programs(dump);
  if (check) return check_device(selector, only);
  int count = 0;
  ct_status s = ct_device_list(NULL, 0, &count);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-devices: listing the devices failed: %s: %s\n", ct_status_name(s), ct_errmsg());
    return 1;
  }
  if (count == 0) {
    fprintf(stderr, "cltape-devices: no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)\n");
    return 1;
  }
  ct_device_info *devs = calloc((size_t)count, sizeof *devs);
  if (!devs) {
    fprintf(stderr, "cltape-devices: out of memory\n");
    return 1;
  }
  s = ct_device_list(devs, count, &count);
  if (s != CT_OK) {
    fprintf(stderr, "cltape-devices: listing the devices failed: %s: %s\n", ct_status_name(s), ct_errmsg());
    free(devs);
    return 1;
  }

  /* the device a context picks: ask the library rather than repeat its rules */
  int picked = -1;
  char pick_error[512] = "";
  ct_context *ctx = NULL;
  s = ct_context_create(selector, &ctx);
  if (s == CT_OK) {
    ct_device_info info;
    if (ct_context_device(ctx, &info) == CT_OK) picked = info.index;
    ct_context_free(ctx);
  } else {
    snprintf(pick_error, sizeof pick_error, "%s: %s", ct_status_name(s), ct_errmsg());
  }
  const char *env = getenv("CLTAPE_DEVICE");
  char why[300];
  if (selector) snprintf(why, sizeof why, "selected by --device %s", selector);
  else if (env && *env) snprintf(why, sizeof why, "selected by CLTAPE_DEVICE=%s", env);
  else snprintf(why, sizeof why, "the default");

  if (!brief) printf("cltape %s: %d OpenCL device%s\n", ct_version_string(), count, count == 1 ? "" : "s");
  for (int i = 0; i < count; ++i) {
    const ct_device_info *d = &devs[i];
    char mem[32], alloc[32], local[32];
    bytes_text(d->global_mem_bytes, mem, sizeof mem);
    bytes_text(d->max_alloc_bytes, alloc, sizeof alloc);
    bytes_text(d->local_mem_bytes, local, sizeof local);
    if (brief) {
      printf("%d\t%s\t%s\t%u CU\t%s\tfp64 %s\t%s\t%s%s\n", d->index, type_name(d->type), d->name, d->compute_units,
             mem, d->fp64 ? "yes" : "no", d->platform, d->driver_version, d->index == picked ? "\t*" : "");
      continue;
    }
    bool mark = d->index == picked;
    printf("\n#%d  %s%s%s\n", d->index, d->name, mark ? "  <- " : "", mark ? why : "");
    printf("    type            %s\n", type_name(d->type));
    printf("    platform        %s\n", d->platform);
    printf("    vendor          %s\n", d->vendor);
    printf("    compute units   %u\n", d->compute_units);
    printf("    global memory   %s (largest buffer %s)\n", mem, alloc);
    printf("    local memory    %s\n", local);
    printf("    work-group      up to %zu work-items\n", d->max_work_group_size);
    printf("    float vectors   %u lanes\n", d->float_vector_width);
    printf("    fp64            %s\n", d->fp64 ? "yes (float64 tensors supported)" : "no (no float64 tensors)");
    const char *hc = getenv("CLTAPE_FP16_COMPUTE");
    bool half_off = hc && strcasecmp(hc, "off") == 0, half_on = hc && strcasecmp(hc, "on") == 0;
    printf("    fp16            %s\n",
           !d->fp16 && half_on ? "no cl_khr_fp16 (CLTAPE_FP16_COMPUTE=on: a context is refused unless the "
                                 "compiler builds half kernels all the same)"
           : !d->fp16 ? "no cl_khr_fp16 (float16 tensors are computed in float32)"
           : half_off ? "cl_khr_fp16 (CLTAPE_FP16_COMPUTE=off: float16 tensors are computed in float32)"
                      : "cl_khr_fp16 (float16 elementwise ops, fused or not, and sum/max/min/prod compute in half; "
                        "the other ops in float32)");
    printf("    OpenCL C        %s\n", d->opencl_c_version);
    printf("    device version  %s\n", d->device_version);
    printf("    driver          %s\n", d->driver_version);
  }
  if (picked < 0) {
    fprintf(stderr, "cltape-devices: no device is %s: %s\n", why, pick_error);
    free(devs);
    return selector ? 2 : 1;
  }
  free(devs);
  return 0;
}
