/* Data parallelism over MPI ranks: host-staged, bucketed, non-blocking all-reduce with a deadline. */
#define _POSIX_C_SOURCE 200809L
#include "dist_internal.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ct_dist {
  MPI_Comm comm;
  int rank, size, local_rank;
  bool finalize; /* MPI was initialised here */
  ct_dist_options opts;
  double read_s, wait_s, write_s;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static ct_status mpi_error(int err, const char *what) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", err);
  return ctd_error(CT_ERR_IO, "%s: %s", what, text);
}

/* Completes every request of reqs[0..n) or fails once `deadline` (monotonic seconds) has passed.
 * Testing also drives the progress of the other requests that are in flight. */
static ct_status wait_all(ct_dist *d, MPI_Request *reqs, int n, double deadline, const char *what) {
  long nap = 2000;
  for (;;) {
    int done = 0;
    int err = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
    if (err != MPI_SUCCESS) return mpi_error(err, what);
    if (done) return CT_OK;
    if (now_s() > deadline)
      return ctd_error(CT_ERR_IO, "%s: rank %d of %d: no answer from the other ranks within %.1f s (a rank exited or stopped)",
                       what, d->rank, d->size, d->opts.timeout_s);
    /* yield the core to the device's threads and the other ranks: 2 us, doubling up to 128 us (the
     * non-blocking collective only progresses while it is tested) */
    struct timespec pause = {0, nap};
    nanosleep(&pause, NULL);
    if (nap < 100000) nap *= 2;
  }
}

ct_dist_options ct_dist_default_options(void) {
  ct_dist_options o = {120.0, (size_t)256 << 10};
  const char *t = getenv("CLTAPE_DIST_TIMEOUT");
  if (t && atof(t) > 0) o.timeout_s = atof(t);
  const char *b = getenv("CLTAPE_DIST_BUCKET_BYTES");
  if (b && atoll(b) > 0) o.bucket_bytes = (size_t)atoll(b);
  return o;
}

ct_status ct_dist_init(int *argc, char ***argv, const ct_dist_options *opts, ct_dist **out) {
  if (!out) return ctd_error(CT_ERR_NULL, "ct_dist_init: out is NULL");
  *out = NULL;
  ct_dist_options o = opts ? *opts : ct_dist_default_options();
  if (!(o.timeout_s > 0) || o.bucket_bytes == 0)
    return ctd_error(CT_ERR_INVALID, "ct_dist_init: timeout_s must be > 0 and bucket_bytes > 0");
  ct_dist *d = calloc(1, sizeof *d);
  if (!d) return ctd_error(CT_ERR_OUT_OF_MEMORY, "ct_dist_init");
  d->opts = o;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int err = MPI_Init(argc, argv);
    if (err != MPI_SUCCESS) {
      free(d);
      return ctd_error(CT_ERR_IO, "ct_dist_init: MPI_Init failed (%d)", err);
    }
    d->finalize = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int err = MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
  MPI_Comm local = MPI_COMM_NULL;
  if (err == MPI_SUCCESS) {
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    err = MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
  }
  if (err == MPI_SUCCESS) {
    MPI_Comm_rank(local, &d->local_rank);
    MPI_Comm_free(&local);
  }
  if (err != MPI_SUCCESS) {
    ct_status s = mpi_error(err, "ct_dist_init");
    ct_dist_free(d);
    return s;
  }
  *out = d;
  return CT_OK;
}

int ct_dist_rank(const ct_dist *d) { return d ? d->rank : -1; }
int ct_dist_size(const ct_dist *d) { return d ? d->size : -1; }
int ct_dist_local_rank(const ct_dist *d) { return d ? d->local_rank : -1; }

static MPI_Datatype mpi_type(ct_dtype dt) { return dt == CT_FLOAT32 ? MPI_FLOAT : MPI_DOUBLE; }

ct_status ct_dist_broadcast_variables(ct_dist *d, ct_tensor *const *vars, int n, int root) {
  const char *fn = "ct_dist_broadcast_variables";
  if (!d || (!vars && n)) return ctd_error(CT_ERR_NULL, "%s: NULL argument", fn);
  if (n < 0 || root < 0 || root >= d->size) return ctd_error(CT_ERR_INVALID, "%s: n %d, root %d", fn, n, root);
  for (int i = 0; i < n; ++i) {
    if (!vars[i]) return ctd_error(CT_ERR_NULL, "%s: variable %d is NULL", fn, i);
    CTD_CHECK(ctd_check_like(vars[i], vars[i], fn, i));
  }
  /* the sizes are compared first, so that a mismatch is an error on every rank, not a truncation */
  uint64_t sig[2] = {(uint64_t)n, 0}, sig_root[2];
  for (int i = 0; i < n; ++i) sig[1] = sig[1] * 1000003u + ctd_bytes(vars[i]);
  memcpy(sig_root, sig, sizeof sig);
  MPI_Request req;
  int err = MPI_Ibcast(sig_root, 2, MPI_UINT64_T, root, d->comm, &req);
  if (err != MPI_SUCCESS) return mpi_error(err, fn);
  CTD_CHECK(wait_all(d, &req, 1, now_s() + d->opts.timeout_s, fn));
  if (memcmp(sig, sig_root, sizeof sig) != 0)
    return ctd_error(CT_ERR_MISMATCH, "%s: rank %d's variables differ in number or size from rank %d's", fn, d->rank, root);
  for (int i = 0; i < n; ++i) {
    ct_tensor *v = vars[i], *t = NULL;
    size_t bytes = ctd_bytes(v);
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return ctd_error(CT_ERR_OUT_OF_MEMORY, "%s: host staging", fn);
    ct_status s = d->rank == root ? ct_tensor_read(v, host, bytes) : CT_OK;
    if (s != CT_OK) ctd_lib_error(s, fn);
    /* every rank takes part even after a local failure, so that the others are not left waiting */
    err = MPI_Ibcast(host, (int)ct_tensor_size(v), mpi_type(ct_tensor_dtype(v)), root, d->comm, &req);
    ct_status w = err == MPI_SUCCESS ? wait_all(d, &req, 1, now_s() + d->opts.timeout_s, fn) : mpi_error(err, fn);
    if (s == CT_OK) s = w;
    if (s == CT_OK && d->rank != root) {
      s = ct_tensor_from_data(ct_tensor_context(v), ct_tensor_dtype(v), ct_tensor_rank(v), ct_tensor_shape(v), host, &t);
      if (s == CT_OK) s = ct_variable_assign(v, t);
      if (s != CT_OK) ctd_lib_error(s, fn);
      ct_tensor_free(t);
    }
    free(host);
    if (s != CT_OK) return s;
  }
  return CT_OK;
}

typedef struct {
  int first, count; /* tensors order[first .. first + count) */
  ct_dtype dtype;
  int64_t elems;
  size_t offset; /* bytes into the staging buffer */
  int staged;    /* tensors of the bucket read back so far */
} bucket;

/* One averaging of n gradients: the buckets (planned from tensors shaped like the gradients, in
 * reverse order), the host staging buffer and the MPI requests. */
typedef struct {
  ct_dist *d;
  const char *fn;
  int n, m, nb, started;
  int *order;     /* order[k]: tensor index of the k-th tensor packed */
  int *bucket_of; /* bucket of tensor i, -1 for a NULL one */
  size_t *offset; /* bytes of tensor i into the staging buffer */
  bucket *bk;
  MPI_Request *reqs;
  unsigned char *stage;
  double deadline, t0;
  ct_status hook_status; /* a failure inside the tape's ready hook (its message recorded) */
} plan;

static void plan_free(plan *p) {
  free(p->order);
  free(p->bucket_of);
  free(p->offset);
  free(p->bk);
  free(p->reqs);
  free(p->stage);
}

/* Plans the buckets for tensors shaped like like[0..n) (NULL entries: no gradient) and checks
 * over the ranks that every rank planned the same. */
static ct_status plan_make(plan *p, ct_dist *d, ct_tensor *const *like, int n, const char *fn) {
  memset(p, 0, sizeof *p);
  p->d = d, p->fn = fn, p->n = n;
  size_t cnt = (size_t)(n ? n : 1);
  p->order = malloc(sizeof(int) * cnt);
  p->bucket_of = malloc(sizeof(int) * cnt);
  p->offset = malloc(sizeof(size_t) * cnt);
  p->bk = malloc(sizeof(bucket) * cnt);
  p->reqs = malloc(sizeof(MPI_Request) * cnt);
  if (!p->order || !p->bucket_of || !p->offset || !p->bk || !p->reqs)
    return ctd_error(CT_ERR_OUT_OF_MEMORY, "%s: buckets", fn);
  size_t total = 0;
  ct_status local = CT_OK;
  for (int i = 0; i < n; ++i) p->bucket_of[i] = -1;
  for (int i = n - 1; i >= 0 && local == CT_OK; --i) { /* the last layer's first: a backward pass's order */
    if (!like[i]) continue;
    local = ctd_check_like(like[i], like[i], fn, i);
    if (local != CT_OK) break;
    ct_dtype dt = ct_tensor_dtype(like[i]);
    size_t bytes = ctd_bytes(like[i]);
    bucket *last = p->nb ? &p->bk[p->nb - 1] : NULL;
    if (!last || last->dtype != dt || (size_t)last->elems * ct_dtype_size(dt) + bytes > d->opts.bucket_bytes) {
      total = (total + 7) & ~(size_t)7;
      p->bk[p->nb++] = (bucket){p->m, 0, dt, 0, total, 0};
      last = &p->bk[p->nb - 1];
    }
    last->count++;
    last->elems += ct_tensor_size(like[i]);
    p->bucket_of[i] = p->nb - 1;
    p->offset[i] = total;
    p->order[p->m++] = i;
    total += bytes;
  }
  if (local == CT_OK) {
    p->stage = malloc(total ? total : 1);
    if (!p->stage) local = ctd_error(CT_ERR_OUT_OF_MEMORY, "%s: %zu bytes of host staging", fn, total);
  }
  /* the layout is compared over the ranks before any data moves (the max of x and of ~x); a rank
   * that failed its own checks takes part with a layout no other rank has, so that every rank
   * fails at once instead of waiting for it */
  uint64_t m64 = local == CT_OK ? (uint64_t)p->m : UINT64_MAX;
  uint64_t sig[4] = {m64, (uint64_t)total, ~m64, ~(uint64_t)total}, red[4];
  MPI_Request req;
  int err = MPI_Iallreduce(sig, red, 4, MPI_UINT64_T, MPI_MAX, d->comm, &req);
  if (err != MPI_SUCCESS) return mpi_error(err, fn);
  CTD_CHECK(wait_all(d, &req, 1, now_s() + d->opts.timeout_s, fn));
  if (local != CT_OK) return local;
  if (red[0] != ~red[2] || red[1] != ~red[3])
    return ctd_error(CT_ERR_MISMATCH, "%s: the ranks' gradients differ in number or size (rank %d: %d tensors, %zu bytes)",
                     fn, d->rank, p->m, total);
  p->deadline = now_s() + d->opts.timeout_s;
  p->t0 = now_s();
  return CT_OK;
}

/* Reads gradient i back into its place; starts the all-reduce of every complete bucket, in
 * bucket order (the same order on every rank), and drives the ones in flight. */
static ct_status plan_stage(plan *p, int i, const ct_tensor *g) {
  int b = p->bucket_of[i];
  if (b < 0) return CT_OK;
  ct_status s = ct_tensor_read(g, p->stage + p->offset[i], ctd_bytes(g));
  if (s != CT_OK) return ctd_lib_error(s, p->fn);
  p->bk[b].staged++;
  while (p->started < p->nb && p->bk[p->started].staged == p->bk[p->started].count) {
    bucket *k = &p->bk[p->started];
    int err = MPI_Iallreduce(MPI_IN_PLACE, p->stage + k->offset, (int)k->elems, mpi_type(k->dtype), MPI_SUM,
                             p->d->comm, &p->reqs[p->started]);
    if (err != MPI_SUCCESS) return mpi_error(err, p->fn);
    p->started++;
  }
  int flag;
  if (p->started) MPI_Testall(p->started, p->reqs, &flag, MPI_STATUSES_IGNORE);
  return CT_OK;
}

/* Completes the buckets in order and writes each one's means to out (shaped like `like`). */
static ct_status plan_finish(plan *p, ct_tensor *const *like, ct_tensor **out) {
  ct_dist *d = p->d;
  d->read_s = now_s() - p->t0;
  if (p->started < p->nb) return ctd_error(CT_ERR_INTERNAL, "%s: a gradient was never read back", p->fn);
  for (int b = 0; b < p->nb; ++b) {
    double w0 = now_s();
    CTD_CHECK(wait_all(d, &p->reqs[b], 1, p->deadline, p->fn));
    double w1 = now_s();
    d->wait_s += w1 - w0;
    double scale = 1.0 / d->size;
    for (int k = p->bk[b].first; k < p->bk[b].first + p->bk[b].count; ++k) {
      int i = p->order[k];
      const ct_tensor *g = like[i];
      unsigned char *at = p->stage + p->offset[i];
      int64_t e = ct_tensor_size(g);
      if (p->bk[b].dtype == CT_FLOAT32)
        for (int64_t j = 0; j < e; ++j) ((float *)at)[j] = (float)(((float *)at)[j] * scale);
      else
        for (int64_t j = 0; j < e; ++j) ((double *)at)[j] *= scale;
      ct_status s = ct_tensor_from_data(ct_tensor_context(g), p->bk[b].dtype, ct_tensor_rank(g), ct_tensor_shape(g), at,
                                        &out[i]);
      if (s != CT_OK) return ctd_lib_error(s, p->fn);
    }
    d->write_s += now_s() - w1;
  }
  return CT_OK;
}

static void clear_out(ct_tensor **out, int n) {
  for (int i = 0; i < n; ++i) ct_tensor_free(out[i]);
  memset(out, 0, sizeof(ct_tensor *) * (size_t)n);
}

ct_status ct_dist_allreduce_mean(ct_dist *d, ct_tensor *const *grads, int n, ct_tensor **out) {
  const char *fn = "ct_dist_allreduce_mean";
  if (!d || !out || (!grads && n)) return ctd_error(CT_ERR_NULL, "%s: NULL argument", fn);
  if (n < 0) return ctd_error(CT_ERR_INVALID, "%s: n is %d", fn, n);
  memset(out, 0, sizeof(ct_tensor *) * (size_t)n);
  d->read_s = d->wait_s = d->write_s = 0;
  plan p;
  ct_status s = plan_make(&p, d, grads, n, fn);
  for (int k = 0; s == CT_OK && k < p.m; ++k) s = plan_stage(&p, p.order[k], grads[p.order[k]]);
  if (s == CT_OK) s = plan_finish(&p, grads, out);
  plan_free(&p);
  if (s != CT_OK) clear_out(out, n);
  return s;
}

static ct_status gradient_ready(int index, const ct_tensor *grad, void *user) {
  plan *p = user;
  p->hook_status = plan_stage(p, index, grad);
  return p->hook_status;
}

ct_status ct_dist_gradient(ct_dist *d, ct_tape *tape, ct_tensor *const *targets, int n_targets,
                           ct_tensor *const *vars, int n, ct_tensor **out) {
  const char *fn = "ct_dist_gradient";
  if (!d || !out || (!vars && n)) return ctd_error(CT_ERR_NULL, "%s: NULL argument", fn);
  if (n < 0) return ctd_error(CT_ERR_INVALID, "%s: n is %d", fn, n);
  memset(out, 0, sizeof(ct_tensor *) * (size_t)n);
  for (int i = 0; i < n; ++i)
    if (!vars[i]) return ctd_error(CT_ERR_NULL, "%s: variable %d is NULL", fn, i);
  d->read_s = d->wait_s = d->write_s = 0;
  ct_tensor **grads = calloc((size_t)(n ? n : 1), sizeof *grads);
  if (!grads) return ctd_error(CT_ERR_OUT_OF_MEMORY, "%s", fn);
  plan p;
  ct_status s = plan_make(&p, d, vars, n, fn);
  if (s == CT_OK) {
    /* every variable gets a gradient (zeros when unconnected), so every bucket completes */
    s = ct_tape_gradient_with_hook(tape, targets, n_targets, vars, n, NULL, CT_UNCONNECTED_ZERO, grads, gradient_ready,
                                   &p);
    /* a failure of the hook has its message already; one of the tape's is the library's */
    if (s != CT_OK && p.hook_status == CT_OK) ctd_lib_error(s, fn);
  }
  if (s == CT_OK) s = plan_finish(&p, vars, out);
  plan_free(&p);
  ct_tensor_free_n(grads, n);
  free(grads);
  if (s != CT_OK) clear_out(out, n);
  return s;
}

ct_status ct_dist_allreduce_sum(ct_dist *d, double *values, int n) {
  if (!d || (!values && n)) return ctd_error(CT_ERR_NULL, "ct_dist_allreduce_sum: NULL argument");
  if (n < 0) return ctd_error(CT_ERR_INVALID, "ct_dist_allreduce_sum: n is %d", n);
  MPI_Request req;
  int err = MPI_Iallreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, d->comm, &req);
  if (err != MPI_SUCCESS) return mpi_error(err, "ct_dist_allreduce_sum");
  return wait_all(d, &req, 1, now_s() + d->opts.timeout_s, "ct_dist_allreduce_sum");
}

ct_status ct_dist_barrier(ct_dist *d) {
  if (!d) return ctd_error(CT_ERR_NULL, "ct_dist_barrier: d is NULL");
  MPI_Request req;
  int err = MPI_Ibarrier(d->comm, &req);
  if (err != MPI_SUCCESS) return mpi_error(err, "ct_dist_barrier");
  return wait_all(d, &req, 1, now_s() + d->opts.timeout_s, "ct_dist_barrier");
}

void ct_dist_last_timing(const ct_dist *d, double *read_s, double *wait_s, double *write_s) {
  if (read_s) *read_s = d ? d->read_s : 0;
  if (wait_s) *wait_s = d ? d->wait_s : 0;
  if (write_s) *write_s = d ? d->write_s : 0;
}

void ct_dist_abort(ct_dist *d, int code) { MPI_Abort(d ? d->comm : MPI_COMM_WORLD, code); }

void ct_dist_free(ct_dist *d) {
  if (!d) return;
  if (d->comm != MPI_COMM_NULL && d->comm != 0) MPI_Comm_free(&d->comm);
  if (d->finalize) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
  }
  free(d);
}
