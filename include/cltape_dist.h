/*
 * cltape_dist.h — data-parallel training: several devices in one process (replicas), and several
 * processes through MPI.
 *
 * These functions live in the separate static library cltape_dist (link it together with cltape
 * or cltape_static); libcltape itself never needs MPI. The replica functions are always built; the
 * MPI ones (ct_dist_*) only when the build found MPI (CMake option CLTAPE_MPI, on by default when
 * Open MPI is installed), which defines CLTAPE_HAVE_MPI for the programs that link cltape_dist.
 *
 * Data-parallel training in both forms: every replica holds the same model, computes the gradients
 * of its shard of the batch, then the gradients are averaged over the replicas (on the host: they
 * are read back, summed in a fixed order, and written to each device), so every replica applies
 * the same update and the parameters stay identical. Errors are returned as ct_status values; the
 * message of the last failure of a function of this header is ct_dist_errmsg().
 */
/** \file cltape_dist.h
 *  \brief Data-parallel training: several devices in one process (replicas), and several processes through MPI. */
#ifndef CLTAPE_DIST_H
#define CLTAPE_DIST_H

#include "cltape.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Message of the last error returned by a function of this header on this thread ("" when none):
 *  its own message, or the library's ct_errmsg() when a cltape call failed inside it. */
const char *ct_dist_errmsg(void);

/* ---------------------------------------------------------------------------------------------
 * Several devices in one process. grads is an array of n_replicas * n tensors: replica r's
 * gradient i is grads[r * n + i], each on replica r's context. Gradient i must have the same
 * shape and float dtype on every replica, or be NULL on every replica (out is then NULL).
 * ------------------------------------------------------------------------------------------- */
/** out[r * n + i] = mean over the replicas of gradient i, a new tensor on replica r's context. The
 *  sum is taken on the host in replica order in double precision, then rounded to the dtype once,
 *  so every replica receives bit-identical values. Errors: CT_ERR_NULL, CT_ERR_INVALID (counts),
 *  CT_ERR_SHAPE, CT_ERR_DTYPE (gradients that differ between replicas), CT_ERR_MISMATCH (NULL on
 *  some replicas only). On error every out entry is NULL. */
ct_status ct_replicas_allreduce_mean(ct_tensor *const *grads, int n_replicas, int n, ct_tensor **out);
/** Copies the values of replica 0's variables vars[i] into every other replica's vars[r * n + i]
 *  (same shapes and dtypes), so that all replicas start from the same parameters. */
ct_status ct_replicas_broadcast_variables(ct_tensor *const *vars, int n_replicas, int n);

#ifdef CLTAPE_HAVE_MPI
/* ---------------------------------------------------------------------------------------------
 * Several processes (MPI ranks), one context each. Every collective below must be called by
 * every rank in the same order. A collective that does not complete within the timeout returns
 * CT_ERR_IO with a message naming the operation and the timeout: a rank that died or stopped
 * taking part is reported instead of waited for. After such an error the communication state is
 * undefined: report it and call ct_dist_abort.
 * ------------------------------------------------------------------------------------------- */
/** Handle of the MPI communication state (ct_dist_init). */
typedef struct ct_dist ct_dist;
/** Settings of ct_dist_init; ct_dist_default_options() fills them. */
typedef struct {
  double timeout_s;    /**< longest wait of one collective, > 0 (default 120 s, or CLTAPE_DIST_TIMEOUT) */
  size_t bucket_bytes; /**< gradients are all-reduced in buckets of about this size (default 256 KiB,
                            or CLTAPE_DIST_BUCKET_BYTES) */
} ct_dist_options;
/** The defaults above. */
ct_dist_options ct_dist_default_options(void);
/** Initialises MPI (unless the program already did) on a duplicate of MPI_COMM_WORLD whose errors
 *  are returned, not fatal. argc/argv may be NULL. opts may be NULL (defaults). */
ct_status ct_dist_init(int *argc, char ***argv, const ct_dist_options *opts, ct_dist **out);
/** This process's rank, the number of ranks, and the rank among the ranks of the same machine
 *  (to choose a device: one GPU per local rank). -1 for NULL. */
int ct_dist_rank(const ct_dist *d);
/** Number of ranks (-1 for NULL). */
int ct_dist_size(const ct_dist *d);
/** Rank among the ranks of the same machine (-1 for NULL). */
int ct_dist_local_rank(const ct_dist *d);
/** Copies root's values of vars[0..n) into every rank's variables (same shapes and dtypes on
 *  every rank; the names are not compared). */
ct_status ct_dist_broadcast_variables(ct_dist *d, ct_tensor *const *vars, int n, int root);
/** out[i] = mean over the ranks of grads[i] (a new tensor on grads[i]'s context; NULL for a NULL
 *  gradient, which must then be NULL on every rank). The gradients are taken in reverse order
 *  (the last layer's first, the order a backward pass produces them), packed into buckets of
 *  about bucket_bytes of one dtype, and each bucket's MPI_Iallreduce starts as soon as it is read
 *  back, while the next buckets are read; the results are written back bucket by bucket as they
 *  complete. */
ct_status ct_dist_allreduce_mean(ct_dist *d, ct_tensor *const *grads, int n, ct_tensor **out);
/** The gradients of the targets recorded on `tape` with respect to vars[0..n), averaged over the
 *  ranks, with the communication overlapping the backward pass as PyTorch's DDP does: the tape
 *  hands over each gradient as soon as the backward walk has finished it
 *  (ct_tape_gradient_with_hook), it is read back into its bucket (planned from the variables'
 *  shapes, the last ones first, as ct_dist_allreduce_mean), and each bucket's MPI_Iallreduce
 *  starts as soon as its gradients are all read, while the rest of the backward pass is enqueued
 *  and runs. out[i] = the mean gradient of vars[i] (a new tensor; zeros for a variable the targets
 *  do not depend on). The tape is used as by ct_tape_gradient (a non-persistent one is spent). */
ct_status ct_dist_gradient(ct_dist *d, ct_tape *tape, ct_tensor *const *targets, int n_targets,
                           ct_tensor *const *vars, int n, ct_tensor **out);
/** Sums n doubles over the ranks in place (metrics: losses, correct counts). */
ct_status ct_dist_allreduce_sum(ct_dist *d, double *values, int n);
/** Waits until every rank has reached it (with the timeout). */
ct_status ct_dist_barrier(ct_dist *d);
/** Seconds spent by the last ct_dist_allreduce_mean or ct_dist_gradient: reading gradients back
 *  (for ct_dist_gradient: the whole backward pass, which the reads wait for), waiting for MPI
 *  after the last read, writing the results (any pointer may be NULL). */
void ct_dist_last_timing(const ct_dist *d, double *read_s, double *wait_s, double *write_s);
/** Ends every rank of the job with this exit code (MPI_Abort). */
void ct_dist_abort(ct_dist *d, int code);
/** Frees d and finalises MPI if ct_dist_init initialised it. NULL does nothing. */
void ct_dist_free(ct_dist *d);
#endif /* CLTAPE_HAVE_MPI */

#ifdef __cplusplus
}
#endif
#endif /* CLTAPE_DIST_H */
