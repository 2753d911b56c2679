/* fuse.c — lazy elementwise ops. With fusion on (the default; CLTAPE_FUSION=off turns it off), the
 * elementwise rows of the op table (UN, BIN, CMP: their tensor and scalar forms, broadcasting),
 * where, casts between float32, float64, int32 and bool, and constants (ct_fill and what is built
 * on it) do not launch a kernel: their result is a tensor whose
 * storage is a pending buffer (host/pool.c) holding a node: the row, its operands and how it reads
 * them. Nothing is computed until the storage is used: a non-elementwise op's launch, a read, a
 * copy, the cl_mem of the tensor, ct_context_sync, a gradient returned by the tape; host/ then
 * calls fz_force() below.
 *
 * Forcing a buffer runs one generated kernel for the graph of pending nodes under it: pending
 * operands of the same element count are computed inside the kernel again (nothing is written but
 * the forced buffer; they stay pending), constants are kernel arguments, everything else is read
 * from storage (broadcast operands through strides; a pending broadcast_to, ct__lazy_broadcast, is
 * a node of no row that reads its operand through zero strides). The kernel text is the row's expression from
 * the table (the f_<ID> functions of kernels/elementwise.cl, generated from lib/ops.def) plus the
 * loads and the store written here. Compiling one costs about as much as thousands of small
 * launches (docs/performance.md, "Fusion"): a structure (rows, dtypes, how each leaf is read; not
 * sizes or constants' values) runs unfused, one kernel per node as without fusion, until this
 * context has met it with a weight of CLTAPE_FUSION_AFTER (default 16; each time weighs 1 plus 1 per
 * 2^18 elements), unless its program is built already, in this context or in the on-disk cache. A
 * graph met once never waits for a compilation; on a device other than a CPU one met again is
 * compiled on a thread meanwhile (host/program.c), and runs fused once that is done. The generated programs are cached by their text
 * in memory and on disk like every other program.
 *
 * One generated kernel computes in one dtype, T: its rows' operands and its constants. A
 * comparison's value is a uchar (0 or 1; bool), where and casts take and give any of float32,
 * float64, int32 and bool, so a graph like where(x > 0, f(x), g(x)) or cast(f(x)) is one kernel;
 * a pending operand whose rows compute in another dtype than its consumer's is computed first.
 *
 * Reading a pending tensor whose graph has no leaves but constants (a scalar chain started from
 * ct_scalar) and at most FZ_HOST_MAX elements computes it on the host with the table's references
 * rounded to the dtype after each op, and launches nothing. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits of one generated kernel: nodes, buffers read, broadcast operands (each a ct_idx8 argument)
 * and constants; at most 3 + 6 + 16 + 16 + 1 arguments, at most 7 * 64 + 35 * 8 bytes of them:
 * inside the 1024 bytes every device takes (CL_DEVICE_MAX_PARAMETER_SIZE). */
enum { FZ_MAX_NODES = 40, FZ_MAX_LEAVES = 16, FZ_MAX_STRIDED = 6, FZ_MAX_CONSTS = 16, FZ_HOST_MAX = 64 };

typedef enum { IN_CONTIG, IN_ONE, IN_STRIDED } in_mode;
/* what a node computes: a row's expression, where (condition, then, else), a cast, a broadcast
 * (its operand read through strides: no row) */
typedef enum { FZ_ROW, FZ_WHERE, FZ_CAST, FZ_BCAST } fz_form;
enum { FZ_ANY = -1 }; /* a node without rows or constants under it computes in any program dtype */
typedef struct {
  ct_buffer *buf; /* retained */
  ct_dtype dt;    /* its dtype */
  in_mode mode;   /* how the node reads it when it is a leaf */
  int64_t st[CT_MAX_RANK];
} fz_input;

typedef struct fz_node {
  ct_context *ctx;
  bool fill; /* a constant: value everywhere */
  double value;
  ct_op_id op;
  fz_form form;
  ct_dtype dt;  /* the operands' dtype (where's branches, a cast's source) */
  ct_dtype odt; /* the result's */
  int pd;       /* the dtype T of the kernel that computes it inline: its rows' and constants', or FZ_ANY */
  int rank;
  int64_t shape[CT_MAX_RANK];
  int64_t n;
  int nin;
  fz_input in[3];
  bool strided; /* some leaf under it is read through strides over its shape */
} fz_node;

/* ---- switches ------------------------------------------------------------------------------ */
static bool fusion_enabled = true;
static int fusion_after = 16;
/* a producer fused into its reduction: 1 always, 0 never, -1 by device (see ct__lazy_reduce) */
static int fusion_reduce = -1;
/* kernels in vector form: 1 on every device, 0 never, -1 on CPU devices (see vector_form) */
static int fusion_vector = -1;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static void fz_drop(void *node);
static ct_status fz_force(ct_buffer *b);
/* An on|off|auto switch from the environment: 1, 0, or -1 (auto, also when unset or not one of them). */
static int env_mode(const char *name) {
  const char *v = ct__getenv(name);
  if (!v || !*v || strcmp(v, "auto") == 0) return -1;
  if (strcmp(v, "on") == 0) return 1;
  if (strcmp(v, "off") == 0) return 0;
  ct__log(CT_LOG_WARNING, "%s=\"%s\" is not on, off or auto; using auto", name, v);
  return -1;
}
static void read_env(void) {
  const char *v = ct__getenv("CLTAPE_FUSION");
  fusion_enabled = !(v && (strcmp(v, "off") == 0 || strcmp(v, "0") == 0));
  const char *a = ct__getenv("CLTAPE_FUSION_AFTER");
  if (a && *a) {
    char *end;
    long k = strtol(a, &end, 10);
    if (*end == 0 && k >= 0 && k < 1000000) fusion_after = (int)k;
    else ct__log(CT_LOG_WARNING, "CLTAPE_FUSION_AFTER=\"%s\" is not a count; using %d", a, fusion_after);
  }
  fusion_reduce = env_mode("CLTAPE_FUSION_REDUCE");
  fusion_vector = env_mode("CLTAPE_FUSION_VECTOR");
  ctb_lazy_hooks(fz_force, fz_drop);
}
bool ct__fusion_on(void) {
  pthread_once(&env_once, read_env);
  return fusion_enabled;
}
void ct__fusion_set(bool on, int after) {
  pthread_once(&env_once, read_env);
  fusion_enabled = on;
  if (after >= 0) fusion_after = after;
}
void ct__fusion_reduce_set(int mode) {
  pthread_once(&env_once, read_env);
  fusion_reduce = mode;
}
void ct__fusion_vector_set(int mode) {
  pthread_once(&env_once, read_env);
  fusion_vector = mode;
}

/* ---- the graph under a node ------------------------------------------------------------------ */
typedef struct {
  const fz_node *nodes[FZ_MAX_NODES]; /* post-order: operands first */
  int n_nodes;
  const fz_input *leaves[FZ_MAX_LEAVES];
  int n_leaves, n_strided, n_consts;
  int leaf_strided[FZ_MAX_LEAVES]; /* index among the strided leaves, or -1 */
  bool over;                       /* past a limit */
} fz_plan;

static bool same_leaf(const fz_input *a, const fz_input *b) {
  return a->buf == b->buf && a->dt == b->dt && a->mode == b->mode && (a->mode != IN_STRIDED || memcmp(a->st, b->st, sizeof a->st) == 0);
}

/* A pending operand computed inside the kernel (else it is a leaf read from storage). */
static const fz_node *inlined(const fz_input *in) { return ctb_lazy(in->buf); }

static void walk(fz_plan *p, const fz_node *nd) {
  for (int i = 0; i < p->n_nodes; ++i)
    if (p->nodes[i] == nd) return;
  for (int k = 0; k < nd->nin && !p->over; ++k) {
    const fz_input *in = &nd->in[k];
    const fz_node *sub = inlined(in);
    if (sub) {
      walk(p, sub);
      continue;
    }
    int j = 0;
    while (j < p->n_leaves && !same_leaf(p->leaves[j], in)) ++j;
    if (j < p->n_leaves) continue;
    if (p->n_leaves == FZ_MAX_LEAVES || (in->mode == IN_STRIDED && p->n_strided == FZ_MAX_STRIDED)) {
      p->over = true;
      return;
    }
    p->leaf_strided[p->n_leaves] = in->mode == IN_STRIDED ? p->n_strided++ : -1;
    p->leaves[p->n_leaves++] = in;
  }
  if (p->over) return;
  if (p->n_nodes == FZ_MAX_NODES || (nd->fill && p->n_consts == FZ_MAX_CONSTS)) {
    p->over = true;
    return;
  }
  if (nd->fill) p->n_consts++;
  p->nodes[p->n_nodes++] = nd;
}

static int node_index(const fz_plan *p, const fz_node *nd) {
  for (int i = 0; i < p->n_nodes; ++i)
    if (p->nodes[i] == nd) return i;
  return -1;
}
static int leaf_index(const fz_plan *p, const fz_input *in) {
  for (int j = 0; j < p->n_leaves; ++j)
    if (same_leaf(p->leaves[j], in)) return j;
  return -1;
}

/* ---- creating pending tensors ---------------------------------------------------------------- */
static void contiguous(int rank, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    st[i] = s;
    s *= shape[i];
  }
}

static ct_status make(ct_context *ctx, fz_node *nd, ct_tensor **out) {
  ct_buffer *b;
  ct_status s = ctb_alloc_lazy(ctx, (size_t)nd->n * ct_dtype_size(nd->odt), nd, &b);
  if (s != CT_OK) {
    fz_drop(nd);
    return s;
  }
  return ct__tensor_struct(ctx, nd->odt, nd->rank, nd->shape, b, out);
}

ct_status ct__lazy_fill(ct_context *ctx, ct_dtype dt, int rank, const int64_t *shape, double value, ct_tensor **out) {
  fz_node *nd = calloc(1, sizeof *nd);
  if (!nd) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a pending constant");
  nd->ctx = ctx;
  nd->fill = true;
  nd->value = value;
  nd->dt = nd->odt = dt;
  nd->pd = (int)dt;
  nd->rank = rank;
  for (int d = 0; d < rank; ++d) nd->shape[d] = shape[d];
  nd->n = ct__shape_size(rank, shape);
  return make(ctx, nd, out);
}

bool ct__lazy_fill_value(const ct_tensor *t, double *value) {
  const fz_node *nd = ctb_lazy(t->buf);
  if (!nd || !nd->fill) return false;
  *value = nd->value;
  return true;
}

/* A pending node computed from constants only: the same value at every index. */
static bool leafless(const fz_node *p) {
  fz_plan q;
  memset(&q, 0, sizeof q);
  walk(&q, p);
  return !q.over && q.n_leaves == 0;
}

/* Can a node of (n, pd, shape) compute pending operand p inside its kernel? */
static bool can_inline(const fz_node *p, const ct_tensor *t, const fz_node *nd) {
  if (p->pd != FZ_ANY && nd->pd != FZ_ANY && p->pd != nd->pd) return false; /* rows of two dtypes */
  if (p->fill) return true;
  /* one element (its leaves are read at index 0), or constants only: the same value at any index */
  if (p->n == 1 || leafless(p)) return true;
  return t->size == nd->n &&
         (!p->strided || (p->rank == nd->rank && memcmp(p->shape, nd->shape, sizeof(int64_t) * (size_t)nd->rank) == 0));
}

/* A pending operand p read by nd through strides st (a broadcast), p's leaves read at p's own
 * index: a copy of p's graph in nd's shape that reads those leaves through st, so that the
 * broadcast is computed inside nd's kernel instead of p being written and read back (a few rows
 * recomputed per element of the broadcast). NULL where p is larger than FZ_REBROADCAST_MAX
 * nodes, strided, of another dtype, or out of memory: then p is computed first. */
enum { FZ_REBROADCAST_MAX = 8 };
/* A pending broadcast node in nd's shape reading `in` (retained); NULL out of memory. */
static ct_buffer *wrap_broadcast(const fz_node *nd, const fz_input *in) {
  fz_node *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->ctx = nd->ctx;
  w->op = CT_OP_BROADCAST;
  w->form = FZ_BCAST;
  w->dt = w->odt = in->dt;
  w->pd = FZ_ANY;
  w->rank = nd->rank;
  memcpy(w->shape, nd->shape, sizeof w->shape);
  w->n = nd->n;
  w->nin = 1;
  w->in[0] = *in;
  w->in[0].buf = ctb_retain(in->buf);
  const fz_node *sub = ctb_lazy(in->buf);
  w->strided = in->mode == IN_STRIDED || (sub && !sub->fill && sub->strided);
  ct_buffer *b = NULL;
  if (ctb_alloc_lazy(nd->ctx, (size_t)w->n * ct_dtype_size(w->odt), w, &b) == CT_OK) return b;
  fz_drop(w);
  return NULL;
}
static ct_buffer *rebroadcast(const fz_node *p, const fz_node *nd, const int64_t *st) {
  if (p->fill || p->strided || (p->pd != FZ_ANY && nd->pd != FZ_ANY && p->pd != nd->pd)) return NULL;
  fz_plan q;
  memset(&q, 0, sizeof q);
  walk(&q, p);
  if (q.over || q.n_nodes > FZ_REBROADCAST_MAX) return NULL;
  fz_node *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  *c = *p;
  c->rank = nd->rank;
  memcpy(c->shape, nd->shape, sizeof c->shape);
  c->n = nd->n;
  c->nin = 0;
  bool ok = true;
  for (int k = 0; k < p->nin && ok; ++k) {
    const fz_input *in = &p->in[k];
    fz_input *x = &c->in[k];
    const fz_node *sub = ctb_lazy(in->buf);
    *x = *in;
    if (sub && in->mode == IN_CONTIG && !sub->fill && sub->n > 1 && !leafless(sub)) {
      x->buf = rebroadcast(sub, nd, st); /* computed inside p's kernel: copied too */
      ok = x->buf != NULL;
    } else {
      if (sub || in->mode == IN_ONE) { /* a constant graph (the same value everywhere) or one element */
        if (in->mode == IN_CONTIG) x->mode = IN_ONE;
      } else { /* read from storage, element for element of p: through the broadcast's strides */
        x->mode = IN_STRIDED;
        memcpy(x->st, st, sizeof x->st);
        c->strided = true;
      }
      x->buf = ctb_retain(in->buf);
      if (p->form == FZ_CAST || (p->form == FZ_ROW && ct_ops[p->op].kind == K_UN)) {
        /* a unary row's or a cast's own kernel (run_unfused) reads its operand contiguously: a broadcast node
         * between them (computed inside the fused kernel, a strided copy without it) */
        ct_buffer *w = wrap_broadcast(nd, x);
        ctb_release(x->buf);
        x->buf = w;
        x->mode = IN_CONTIG;
        ok = w != NULL;
      }
    }
    if (!ok) break;
    c->nin = k + 1;
    const fz_node *xs = ctb_lazy(x->buf);
    if (xs && !xs->fill && xs->strided) c->strided = true;
  }
  ct_buffer *b = NULL;
  if (ok && ctb_alloc_lazy(nd->ctx, (size_t)c->n * ct_dtype_size(c->odt), c, &b) == CT_OK) return b;
  fz_drop(c); /* p is computed first instead (past the allocation limit, nd itself fails the same way) */
  return NULL;
}

ct_status ct__lazy_op(ct_op_id op, const ct_tensor *const *in, int n_in, ct_dtype odt, int rank, const int64_t *shape,
                      ct_tensor **out) {
  ct_context *ctx = in[0]->ctx;
  fz_node *nd = calloc(1, sizeof *nd);
  if (!nd) return ct__error(ctx, CT_ERR_OUT_OF_MEMORY, "allocating a pending op");
  nd->ctx = ctx;
  nd->op = op;
  nd->form = op == CT_OP_BROADCAST                 ? FZ_BCAST
             : ct_ops[op].forward == ct__fwd_select ? FZ_WHERE
             : ct_ops[op].forward == ct__fwd_cast   ? FZ_CAST
                                                    : FZ_ROW;
  nd->dt = in[n_in - 1]->dtype; /* a row's operands', where's branches' (its last inputs), a cast's source */
  nd->odt = odt;
  nd->pd = nd->form == FZ_ROW ? (int)nd->dt : FZ_ANY;
  nd->rank = rank;
  for (int d = 0; d < rank; ++d) nd->shape[d] = shape[d];
  nd->n = ct__shape_size(rank, shape);
  ct_status s = CT_OK;
  for (int k = 0; k < n_in; ++k) {
    const ct_tensor *t = in[k];
    fz_input *x = &nd->in[k];
    x->dt = t->dtype;
    if (t->size == nd->n && nd->n > 1) x->mode = IN_CONTIG; /* no broadcasting: the same elements in the same order */
    else if (t->size == 1) x->mode = IN_ONE;
    else {
      x->mode = IN_STRIDED;
      int64_t own[CT_MAX_RANK];
      contiguous(t->rank, t->shape, own);
      for (int d = 0; d < rank; ++d) {
        int td = d - (rank - t->rank);
        x->st[d] = td < 0 || t->shape[td] == 1 ? 0 : own[td];
      }
      nd->strided = true;
    }
    const fz_node *p = ctb_lazy(t->buf);
    ct_buffer *copy = p && x->mode == IN_STRIDED && !can_inline(p, t, nd) ? rebroadcast(p, nd, x->st) : NULL;
    if (copy) { /* p's graph again, in nd's shape */
      x->mode = IN_CONTIG;
      p = ctb_lazy(copy);
    } else if (p && !can_inline(p, t, nd) && s == CT_OK) {
      s = ctb_force(t->buf);
      p = ctb_lazy(t->buf); /* computed: its node is freed (still pending after a failure) */
    }
    if (p && p->pd != FZ_ANY) nd->pd = p->pd;
    if (p && !p->fill && p->strided) nd->strided = true;
    x->buf = copy ? copy : ctb_retain(t->buf);
    nd->nin = k + 1;
  }
  if (s == CT_OK) {
    /* past a kernel's limits: its pending operands get storage, and it reads them */
    fz_plan p;
    memset(&p, 0, sizeof p);
    walk(&p, nd);
    for (int k = 0; k < n_in && p.over && s == CT_OK; ++k) {
      const fz_node *q = ctb_lazy(nd->in[k].buf);
      if (q && !q->fill) s = ctb_force(nd->in[k].buf);
    }
    if (p.over) {
      nd->strided = false;
      for (int k = 0; k < n_in; ++k) nd->strided = nd->strided || nd->in[k].mode == IN_STRIDED;
    }
  }
  if (s != CT_OK) {
    fz_drop(nd);
    return s;
  }
  return make(ctx, nd, out);
}

ct_status ct__lazy_broadcast(const ct_tensor *x, int rank, const int64_t *shape, ct_tensor **out) {
  const ct_tensor *in[1] = {x};
  return ct__lazy_op(CT_OP_BROADCAST, in, 1, x->dtype, rank, shape, out);
}

static void fz_drop(void *node) {
  fz_node *nd = node;
  if (!nd) return;
  for (int k = 0; k < nd->nin; ++k) ctb_release(nd->in[k].buf);
  free(nd);
}

/* ---- the generated kernel ------------------------------------------------------------------- */
/* The OpenCL C type of a dtype a generated kernel handles. */
static const char *ctype(ct_dtype dt) {
  switch (dt) {
    case CT_FLOAT32: return "float";
    case CT_FLOAT64: return "double";
    case CT_BOOL: return "uchar";
    case CT_FLOAT16: return "half"; /* only on a device that computes in half */
    default: return "int";
  }
}

/* A cast's expression of value `v` as kernels/cast.cl computes it: to an integer truncated toward
 * zero, saturating, NaN giving 0; to bool nonzero (NaN too) is true. */
static void gen_cast(ct_text *b, ct_dtype from, ct_dtype to, const char *v, int k) {
  if (to == CT_BOOL) ct__text_printf(b, "(uchar)(%s%d != 0)", v, k);
  else if (to == CT_INT32 && ct__is_float(from)) ct__text_printf(b, "(isnan(%s%d) ? 0 : convert_int_sat_rtz(%s%d))", v, k, v, k);
  else ct__text_printf(b, "(%s)%s%d", ctype(to), v, k);
}

/* The loads of a plan's leaves at linear index i and its nodes' lines, v<k> the value of node k:
 * the body of every generated kernel. */
static void gen_body(const fz_plan *p, ct_text *b) {
  for (int j = 0; j < p->n_leaves; ++j) {
    const fz_input *in = p->leaves[j];
    const char *ty = ctype(in->dt);
    if (in->mode == IN_CONTIG) ct__text_printf(b, "  const %s r%d = l%d[i];\n", ty, j, j);
    else if (in->mode == IN_ONE) ct__text_printf(b, "  const %s r%d = l%d[0];\n", ty, j, j);
    else ct__text_printf(b, "  const %s r%d = l%d[ct_fused_offset(i, rank, shape, s%d)];\n", ty, j, j, p->leaf_strided[j]);
  }
  int c = 0;
  for (int i = 0; i < p->n_nodes; ++i) {
    const fz_node *nd = p->nodes[i];
    if (nd->fill) {
      ct__text_printf(b, "  const T v%d = c%d;\n", i, c++);
      continue;
    }
    /* operand k is v<x[k]> (a node) or r<x[k]> (a leaf) */
    const char *v[3];
    int x[3];
    for (int k = 0; k < nd->nin; ++k) {
      const fz_node *sub = inlined(&nd->in[k]);
      v[k] = sub ? "v" : "r";
      x[k] = sub ? node_index(p, sub) : leaf_index(p, &nd->in[k]);
    }
    ct__text_printf(b, "  const %s v%d = ", ctype(nd->odt), i);
    if (nd->form == FZ_BCAST) ct__text_printf(b, "%s%d", v[0], x[0]); /* its operand, read through strides */
    else if (nd->form == FZ_WHERE) ct__text_printf(b, "%s%d != 0 ? %s%d : %s%d", v[0], x[0], v[1], x[1], v[2], x[2]);
    else if (nd->form == FZ_CAST) gen_cast(b, nd->dt, nd->odt, v[0], x[0]);
    else {
      ct__text_printf(b, "f_%s(", ct_ops[nd->op].stem);
      for (int k = 0; k < nd->nin; ++k) ct__text_printf(b, "%s%s%d", k ? ", " : "", v[k], x[k]);
      ct__text_printf(b, ")");
    }
    ct__text_printf(b, ";\n");
  }
}

/* The parameters (decl) or arguments (!decl) after the launch's own: rank, shape, strides, leaves,
 * constants (the order of ctb_fused_launch). */
static void gen_params(const fz_plan *p, ct_text *b, bool decl) {
  ct__text_printf(b, decl ? "const int rank, const ct_idx8 shape" : "rank, shape");
  for (int j = 0; j < p->n_strided; ++j) ct__text_printf(b, decl ? ", const ct_idx8 s%d" : ", s%d", j);
  for (int j = 0; j < p->n_leaves; ++j) {
    if (decl) ct__text_printf(b, ", __global const %s *l%d", ctype(p->leaves[j]->dt), j);
    else ct__text_printf(b, ", l%d", j);
  }
  for (int j = 0; j < p->n_consts; ++j) ct__text_printf(b, decl ? ", const T c%d" : ", c%d", j);
}

/* The kernel text of a plan: a function of its structure only (rows, dtypes, how each leaf is
 * read), so that it is the key of the program caches. */
static void gen_source(const fz_plan *p, ct_text *b) {
  const fz_node *root = p->nodes[p->n_nodes - 1];
  ct__text_printf(b, "__kernel void fused(const ct_idx n, ");
  gen_params(p, b, true);
  ct__text_printf(b, ", __global %s *y) {\n  const ct_idx i = get_global_id(0);\n  if (i >= n) return;\n", ctype(root->odt));
  gen_body(p, b);
  ct__text_printf(b, "  y[i] = v%d;\n}\n", p->n_nodes - 1);
}

/* The dtype of the program a plan's kernel is built in (its T): int32 where nothing computes in T. */
static ct_dtype program_dtype(const fz_node *root) { return root->pd == FZ_ANY ? CT_INT32 : (ct_dtype)root->pd; }

/* Kernels in vector form. On a CPU device (PoCL), one work-item per element leaves the rows' math
 * scalar: PoCL does not turn the work-items of these kernels into vector lanes well. Written with
 * vector types, CT_FVW elements per work-item (the device's preferred float vector width: 16 floats
 * with AVX-512; the rows' fv_<ID> forms and the prelude's vector helpers), the same kernel ran 2.3x
 * faster there (docs/performance.md, "Fusion in vector form"). A plan takes that form where every
 * value is of dtype T (float32 or float64) or bool, a bool being T's 1 or 0 in vector form: unary,
 * binary and comparison rows computing in T, where, casts between T and bool, constants of dtype T
 * and broadcasts, every leaf read contiguously or at index 0 (no strides: a vector's lanes are
 * consecutive elements of every operand). */
static bool vector_dtype(ct_dtype dt, ct_dtype t) { return dt == t || dt == CT_BOOL; }
static bool vector_form(const fz_plan *p, const fz_node *root) {
  const ct_dtype t = program_dtype(root);
  if (fusion_vector == 0 || (t != CT_FLOAT32 && t != CT_FLOAT64) || p->n_strided) return false;
  if (fusion_vector < 0) {
    ct_device_info info;
    if (ct_context_device(root->ctx, &info) != CT_OK || info.type != CT_DEVICE_CPU) return false;
  }
  for (int j = 0; j < p->n_leaves; ++j)
    if (!vector_dtype(p->leaves[j]->dt, t)) return false;
  for (int i = 0; i < p->n_nodes; ++i) {
    const fz_node *nd = p->nodes[i];
    if (!vector_dtype(nd->odt, t) || !vector_dtype(nd->dt, t)) return false;
    if (nd->fill) {
      if (nd->odt != t) return false; /* a constant is a kernel argument of type T */
    } else if (nd->form == FZ_ROW) {
      if (nd->dt != t || ct_ops[nd->op].kind == K_OTHER) return false;
    }
  }
  return true;
}

/* The loads of a plan's leaves as vectors (r<j>): `how` 0 the CT_FVW elements from index i of a
 * fused kernel (m of them inside), 1 the CT_FVW elements from index o (all inside), 2 element o
 * splatted; a one-element leaf splatted; then its nodes' lines on vectors, v<k> the value of node k. */
static void gen_vlines(const fz_plan *p, ct_text *b, int how) {
  for (int j = 0; j < p->n_leaves; ++j) {
    const bool bl = p->leaves[j]->dt == CT_BOOL;
    ct__text_printf(b, "  const TV r%d = ", j);
    if (p->leaves[j]->mode != IN_CONTIG) ct__text_printf(b, "(TV)((T)l%d[0])", j);
    else if (how == 0) ct__text_printf(b, "%s(l%d + i, m)", bl ? "ct_fv_load_b" : "ct_fv_load", j);
    else if (how == 1) ct__text_printf(b, "%s(0, l%d + o)", bl ? "ct_vload_b" : "ct_vload", j);
    else ct__text_printf(b, "(TV)((T)l%d[o])", j);
    ct__text_printf(b, ";\n");
  }
  int c = 0;
  for (int i = 0; i < p->n_nodes; ++i) {
    const fz_node *nd = p->nodes[i];
    if (nd->fill) {
      ct__text_printf(b, "  const TV v%d = (TV)(c%d);\n", i, c++);
      continue;
    }
    char x[3][16];
    for (int k = 0; k < nd->nin; ++k) {
      const fz_node *sub = inlined(&nd->in[k]);
      snprintf(x[k], sizeof x[k], "%s%d", sub ? "v" : "r", sub ? node_index(p, sub) : leaf_index(p, &nd->in[k]));
    }
    ct__text_printf(b, "  const TV v%d = ", i);
    if (nd->form == FZ_WHERE) ct__text_printf(b, "select(%s, %s, %s != (TV)((T)0))", x[2], x[1], x[0]);
    else if (nd->form == FZ_CAST && nd->odt == CT_BOOL && nd->dt != CT_BOOL)
      ct__text_printf(b, "select((TV)((T)0), (TV)((T)1), %s != (TV)((T)0))", x[0]); /* NaN too is true */
    else if (nd->form != FZ_ROW) ct__text_printf(b, "%s", x[0]); /* a broadcast, a cast to T or of bool to bool */
    else if (nd->nin == 1) ct__text_printf(b, "fv_%s(%s)", ct_ops[nd->op].stem, x[0]);
    else ct__text_printf(b, "fv_%s(%s, %s)", ct_ops[nd->op].stem, x[0], x[1]);
    ct__text_printf(b, ";\n");
  }
}

/* A plan's kernel in vector form: each work-item computes the CT_FVW elements from CT_FVW * id
 * (those of them below n). */
static void gen_vsource(const fz_plan *p, ct_text *b) {
  const bool bl = p->nodes[p->n_nodes - 1]->odt == CT_BOOL;
  ct__text_printf(b, "%s__kernel void fused(const ct_idx n, ", CTB_VECTOR_FORM);
  gen_params(p, b, true);
  ct__text_printf(b, ", __global %s *y) {\n  const ct_idx i = (ct_idx)get_global_id(0) * CT_FVW;\n  if (i >= n) return;\n"
                     "  const ct_idx m = n - i;\n", bl ? "uchar" : "T");
  gen_vlines(p, b, 0);
  ct__text_printf(b, "  %s(v%d, y + i, m);\n}\n", bl ? "ct_fv_store_b" : "ct_fv_store", p->n_nodes - 1);
}

/* The text that plugs a plan into kernels/reduce.cl's hook (the program appends reduce.cl):
 * ct_red_el(i, ...) is the element at linear index i, ct_red_elv the CT_RVW elements from i; the
 * program holds the kernels of reduction `kind` (a ctb_reduce_kind) alone. */
static void gen_reduce_source(const fz_plan *p, ct_dtype dt, int kind, ct_text *b) {
  const char *tn = dt == CT_FLOAT32 ? "float" : dt == CT_FLOAT64 ? "double" : "int";
  ct__text_printf(b, "#define CT_RED_ONLY %d\ninline T ct_red_el(const ct_idx i, ", kind);
  gen_params(p, b, true);
  ct__text_printf(b, ") {\n");
  gen_body(p, b);
  ct__text_printf(b, "  return v%d;\n}\n#define CT_RED_ARGS ", p->n_nodes - 1);
  gen_params(p, b, true);
  ct__text_printf(b, "\n#define CT_RED_LOAD1(o) ct_red_el((o), ");
  gen_params(p, b, false);
  ct__text_printf(b, ")\n#ifndef CT_RVW\n#define CT_RVW 4\n#endif\n#if CT_RVW == 1\n#define CT_RED_LOADV(o) CT_RED_LOAD1(o)\n#else\n"
               "#define CT_RED_VT_(a, b) a##b\n#define CT_RED_VT(a, b) CT_RED_VT_(a, b)\n"
               "inline CT_RED_VT(%s, CT_RVW) ct_red_elv(const ct_idx o, ", tn);
  gen_params(p, b, true);
  ct__text_printf(b, ") {\n  T t[CT_RVW];\n  for (int k = 0; k < CT_RVW; ++k) t[k] = ct_red_el(o + k, ");
  gen_params(p, b, false);
  ct__text_printf(b, ");\n  return CT_RED_VT(vload, CT_RVW)(0, t);\n}\n#define CT_RED_LOADV(o) ct_red_elv((o), ");
  gen_params(p, b, false);
  ct__text_printf(b, ")\n#endif\n");
}

/* The hook of gen_reduce_source in vector form: ct_red_elv computes the CT_FVW (= CT_RVW) elements
 * from o as one vector, ct_red_el one element (the plan on its value splatted: the tails and the
 * column kernels of one column per work-item). */
static void gen_reduce_vsource(const fz_plan *p, int kind, ct_text *b) {
  ct__text_printf(b, "%s#define CT_RED_ONLY %d\nstatic inline TV ct_red_elv(const ct_idx o, ", CTB_VECTOR_FORM, kind);
  gen_params(p, b, true);
  ct__text_printf(b, ") {\n");
  gen_vlines(p, b, 1);
  ct__text_printf(b, "  return v%d;\n}\nstatic inline T ct_red_el(const ct_idx o, ", p->n_nodes - 1);
  gen_params(p, b, true);
  ct__text_printf(b, ") {\n");
  gen_vlines(p, b, 2);
  ct__text_printf(b, "  return v%d.s0;\n}\n#define CT_RED_ARGS ", p->n_nodes - 1);
  gen_params(p, b, true);
  ct__text_printf(b, "\n#define CT_RED_LOAD1(o) ct_red_el((o), ");
  gen_params(p, b, false);
  ct__text_printf(b, ")\n#define CT_RED_LOADV(o) ct_red_elv((o), ");
  gen_params(p, b, false);
  ct__text_printf(b, ")\n");
}

static uint64_t key_of(const char *s, ct_dtype dt) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)dt;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
  return h ? h : 1;
}

/* The launch of a plan whose root is nd, writing out. */
typedef struct {
  const ct_buffer *leaves[FZ_MAX_LEAVES];
  int64_t st[FZ_MAX_STRIDED][CT_MAX_RANK];
  double consts[FZ_MAX_CONSTS];
} fz_args;
static void launch_of(const fz_plan *p, const fz_node *nd, fz_args *a, ct_buffer *out, ctb_fused_launch *l) {
  for (int j = 0; j < p->n_leaves; ++j) {
    a->leaves[j] = p->leaves[j]->buf;
    if (p->leaf_strided[j] >= 0) memcpy(a->st[p->leaf_strided[j]], p->leaves[j]->st, sizeof a->st[0]);
  }
  int c = 0;
  for (int i = 0; i < p->n_nodes; ++i)
    if (p->nodes[i]->fill) a->consts[c++] = p->nodes[i]->value;
  *l = (ctb_fused_launch){.rank = nd->rank, .n = nd->n, .n_strided = p->n_strided, .st = (const int64_t(*)[CT_MAX_RANK])a->st,
                          .n_leaves = p->n_leaves, .leaves = a->leaves, .n_consts = p->n_consts, .consts = a->consts, .out = out};
  for (int d = 0; d < nd->rank; ++d) l->shape[d] = nd->shape[d];
}

/* ---- forcing -------------------------------------------------------------------------------- */
static _Thread_local int unfused_depth; /* inside an unfused run: operands run unfused too */

/* The broadcasting geometry of a node's operands. */
static void geom_of(const fz_node *nd, ctb_geom *g) {
  memset(g, 0, sizeof *g);
  g->rank = nd->rank;
  g->n = nd->n;
  int64_t own[CT_MAX_RANK];
  contiguous(nd->rank, nd->shape, own);
  for (int d = 0; d < nd->rank; ++d) {
    g->shape[d] = nd->shape[d];
    for (int k = 0; k < nd->nin; ++k)
      g->st[k][d] = nd->in[k].mode == IN_CONTIG ? own[d] : nd->in[k].mode == IN_ONE ? 0 : nd->in[k].st[d];
  }
}

/* One node's own kernel (the path without fusion), its operands forced as they are read. */
static ct_status run_unfused(fz_node *nd, ct_buffer *b) {
  ct_context *ctx = nd->ctx;
  if (nd->fill) return ctb_fill(ctx, nd->dt, nd->n, nd->value, b);
  unfused_depth++;
  ct_status s;
  ctb_geom g;
  if (nd->form == FZ_BCAST) { /* a strided copy, as broadcast_to without fusion */
    memset(&g, 0, sizeof g);
    g.rank = nd->rank;
    g.n = nd->n;
    int64_t own[CT_MAX_RANK];
    contiguous(nd->rank, nd->shape, own);
    for (int d = 0; d < nd->rank; ++d) {
      g.shape[d] = nd->shape[d];
      g.st[0][d] = nd->in[0].mode == IN_CONTIG ? own[d] : nd->in[0].mode == IN_ONE ? 0 : nd->in[0].st[d];
      g.st[1][d] = own[d];
    }
    s = ctb_copy_strided(ctx, nd->dt, &g, nd->in[0].buf, 0, b, 0);
  } else if (nd->form == FZ_CAST) {
    s = ctb_cast(ctx, nd->dt, nd->odt, nd->n, nd->in[0].buf, b);
  } else if (nd->form == FZ_WHERE) {
    geom_of(nd, &g);
    s = ctb_where(ctx, nd->dt, &g, nd->in[0].buf, nd->in[1].buf, nd->in[2].buf, b);
  } else if (ct_ops[nd->op].kind == K_UN) {
    s = ctb_unary(ctx, ct_ops[nd->op].stem, nd->dt, nd->n, nd->in[0].buf, b);
  } else {
    const fz_input *a = &nd->in[0], *c = &nd->in[1];
    ctb_bmode mode;
    memset(&g, 0, sizeof g);
    if (nd->n == 1 || (a->mode == IN_CONTIG && c->mode == IN_CONTIG)) mode = CTB_SAME;
    else if (a->mode == IN_CONTIG && c->mode == IN_ONE) mode = CTB_SCALAR_B;
    else if (a->mode == IN_ONE && c->mode == IN_CONTIG) mode = CTB_SCALAR_A;
    else {
      mode = CTB_GENERAL;
      geom_of(nd, &g);
    }
    s = ctb_binary(ctx, ct_ops[nd->op].stem, nd->dt, mode, &g, nd->n, a->buf, c->buf, b);
  }
  unfused_depth--;
  return s;
}

static ct_status fz_force(ct_buffer *b) {
  fz_node *nd = ctb_lazy(b);
  if (!nd) return CT_OK;
  CT_TRY(ctb_storage(b)); /* a failure leaves it pending, to be computed later */
  ct_status s = CT_OK;
  bool ran = false;
  if (!nd->fill && !unfused_depth) {
    fz_plan p;
    memset(&p, 0, sizeof p);
    walk(&p, nd);
    ct_text src = {0};
    const bool vector = !p.over && vector_form(&p, nd);
    if (!p.over) {
      if (vector) gen_vsource(&p, &src);
      else gen_source(&p, &src);
    }
    if (!p.over && !src.oom) {
      /* each run weighs 1 plus one per 2^18 elements: large graphs compile sooner */
      int weight = 1 + (int)(nd->n >> 18);
      fz_args a;
      ctb_fused_launch l;
      launch_of(&p, nd, &a, b, &l);
      l.vector = vector;
      /* detached first: the launch takes the buffer's storage, which must not force it again */
      (void)ctb_lazy_take(b);
      ct_dtype pdt = program_dtype(nd);
      s = ctb_fused(nd->ctx, src.p, pdt, &l, key_of(src.p, pdt), weight, fusion_after, &ran);
    }
    free(src.p);
  }
  if (s == CT_OK && !ran) {
    (void)ctb_lazy_take(b);
    s = run_unfused(nd, b);
  }
  if (s != CT_OK) {
    ctb_lazy_put(b, nd); /* still pending: a later use tries again */
    return s;
  }
  fz_drop(nd);
  return s;
}

/* ---- a producer fused into its reduction ---------------------------------------------------- */
ct_status ct__lazy_reduce(const ct_tensor *x, int kind, int64_t outer, int64_t R, int64_t inner, ct_buffer *y, bool *done) {
  *done = false;
  const fz_node *nd = ctb_lazy(x->buf);
  /* under 2^16 elements the operand's own kernel costs microseconds and one more program to build
   * and load costs far more (measured: a test of 200 small random graphs took 2.4 s, 107 s with
   * their reductions fused) */
  if (!nd || !ct__fusion_on() || unfused_depth || nd->pd != (int)nd->odt || outer * R * inner != nd->n || nd->n < 65536)
    return CT_OK;
  if (nd->dt == CT_FLOAT16) return CT_OK; /* half: the producer's kernel first (no fused half reduction) */
  fz_plan p;
  memset(&p, 0, sizeof p);
  walk(&p, nd);
  if (p.over) return CT_OK;
  if (fusion_reduce == 0) return CT_OK;
  /* in vector form where the reduction reads vectors of consecutive elements: along rows (inner 1)
   * or CT_FVW neighbouring columns at a time */
  const int64_t lanes = ctb_fused_lanes(nd->ctx);
  const bool vector = vector_form(&p, nd) && (inner == 1 || inner % lanes == 0);
  /* kept: something besides the caller holds the operand (a tape saved it for a gradient, a view
   * or a pending op reads its storage), so its values will be needed again; reduce_forward
   * (lib/ops.c) holds it twice while it reduces */
  const bool kept = x->refs > 2 || ctb_refcount(x->buf) > 1;
  if (fusion_reduce < 0 && (!vector || kept) && p.n_leaves > 0 && nd->n < ((int64_t)1 << 28)) {
    /* by device: on a CPU (PoCL) the producer's math inside the reduction's loop is not
     * vectorized unless written in vector form, so memory_chain_4m took 44 ms fused into its Sum
     * against 32 ms with the operand computed by its own kernel first; in vector form its forward
     * took 2.5 ms fused against 3.8 ms, but the whole step 6.6 ms against 6.1 ms, the gradient's
     * kernel computing again the sigmoid that the tape had kept (docs/performance.md, Fusion).
     * There a producer fuses into its reduction in vector form when nothing keeps it, or when it
     * reads no storage (a broadcast constant), or is too large to write out. Other devices fuse
     * it always. */
    ct_device_info info;
    if (ct_context_device(nd->ctx, &info) != CT_OK || info.type == CT_DEVICE_CPU) return CT_OK;
  }
  ct_text src = {0};
  if (vector) gen_reduce_vsource(&p, kind, &src);
  else gen_reduce_source(&p, nd->odt, kind, &src);
  ct_status s = CT_OK;
  if (!src.oom) {
    fz_args a;
    ctb_fused_launch l;
    launch_of(&p, nd, &a, y, &l);
    int weight = 1 + (int)(nd->n >> 18 > 1000000 ? 1000000 : nd->n >> 18);
    /* from 2^28 elements, writing the operand unfused and reading it back costs about what a
     * compilation does (and may not fit the device at all): fused at once */
    int after = nd->n >= ((int64_t)1 << 28) ? 0 : fusion_after;
    s = ctb_reduce_fused(nd->ctx, (ctb_reduce_kind)kind, src.p, nd->odt, &l, outer, R, inner, key_of(src.p, nd->odt), weight,
                         after, done);
  }
  free(src.p);
  return s;
}

/* ---- tiny graphs on the host ------------------------------------------------------------------ */
/* v rounded to dtype dt as a cast to it does (kernels/cast.cl) */
static double round_to(ct_dtype dt, double v) {
  if (dt == CT_FLOAT32) return (double)(float)v;
  if (dt == CT_BOOL) return v != 0;
  if (dt == CT_INT32) return isnan(v) ? 0 : v <= INT32_MIN ? INT32_MIN : v >= INT32_MAX ? INT32_MAX : trunc(v);
  return v;
}

/* Is a pending tensor's graph made of constants only, small, its rows in floats: computed on the
 * host? */
static bool host_able(const ct_tensor *t, fz_plan *p) {
  const fz_node *nd = ctb_lazy(t->buf);
  if (!nd || t->size > FZ_HOST_MAX) return false;
  memset(p, 0, sizeof *p);
  walk(p, nd);
  if (p->over || p->n_leaves) return false;
  for (int i = 0; i < p->n_nodes; ++i)
    if (p->nodes[i]->form == FZ_ROW && !p->nodes[i]->fill && !ct__is_float(p->nodes[i]->dt)) return false;
  return true;
}

ct_status ct__lazy_compute(const ct_tensor *t) {
  fz_plan p;
  if (!t || !ctb_lazy(t->buf) || host_able(t, &p)) return CT_OK;
  return ctb_force(t->buf);
}

bool ct__lazy_host_read(const ct_tensor *t, double *dst) {
  fz_plan p;
  if (!host_able(t, &p)) return false;
  double v[FZ_MAX_NODES];
  for (int i = 0; i < p.n_nodes; ++i) {
    const fz_node *q = p.nodes[i];
    if (q->fill) {
      v[i] = round_to(q->dt, q->value);
      continue;
    }
    double a = v[node_index(&p, inlined(&q->in[0]))];
    double r = q->form == FZ_CAST || q->form == FZ_BCAST ? a
               : q->form == FZ_WHERE
                   ? v[node_index(&p, inlined(&q->in[a != 0 ? 1 : 2]))]
                   : q->nin == 1 ? ct__reference_unary(q->op, a)
                                 : ct__reference_binary(q->op, a, v[node_index(&p, inlined(&q->in[1]))]);
    v[i] = round_to(q->odt, r);
  }
  /* no leaves: every node is constant over its elements */
  for (int64_t i = 0; i < t->size; ++i) dst[i] = v[p.n_nodes - 1];
  return true;
}
