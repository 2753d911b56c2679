/*
 * cltape_cl.h — interop with an application's own OpenCL objects.
 * Include after cltape.h in code that already uses OpenCL.
 */
/** \file cltape_cl.h
 *  \brief Interop with an application's own OpenCL objects (contexts, queues, buffers, events). */
#ifndef CLTAPE_CL_H
#define CLTAPE_CL_H
#ifndef CL_TARGET_OPENCL_VERSION
/** OpenCL version the OpenCL headers target unless the includer chose one. */
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include "cltape.h"
#ifdef __cplusplus
extern "C" {
#endif

/*
 * Ownership and lifetime (docs/embedding.md says the same with examples):
 *  - cl_context, cl_device_id, cl_command_queue: ct_context_create_from_cl retains each once; the
 *    references go when the context is destroyed, that is when ct_context_free was called and the
 *    last tensor, tape, module or optimizer of it is gone. The caller keeps its own references and
 *    may release them at any time after the call.
 *  - cl_mem given to cltape (ct_tensor_from_cl_mem*, ct_variable_from_cl_mem): each tensor made
 *    from it retains it once and releases it when the tensor (and every snapshot or tape record
 *    sharing its storage) is gone. The caller may release its own reference at any time: the
 *    buffer stays alive for cltape. With an offset, the tensor also holds a sub-buffer of it that
 *    cltape creates and releases.
 *  - cl_mem lent by cltape (ct_tensor_cl_mem): borrowed, valid while the tensor lives; retain it to
 *    keep it longer.
 *  - cl_event given to cltape (ct_context_wait_cl_events): borrowed for the call; the caller may
 *    release it right after (OpenCL keeps it while cltape's queue waits for it).
 *  - cl_event made by cltape (ct_context_cl_event): the caller owns it and releases it.
 *
 * Ordering: cltape enqueues all its work on the context's in-order queue and returns without
 * waiting (reads into host memory, ct_tensor_read and the like, are the exceptions: they wait).
 * Work of the caller on the same queue is ordered with cltape's by the queue. Work on any other
 * queue (in-order or out-of-order, of the same cl_context) is ordered through events:
 * ct_context_wait_cl_events before cltape uses what that work wrote, ct_context_cl_event before
 * that work uses what cltape wrote.
 *
 * Threads: a context is used by one thread at a time (cltape.h). The caller's other queues may be
 * used by other threads meanwhile; synchronise with cltape through events, as above.
 */

/** Creates a context on the caller's objects. The context retains all three (and releases them
 *  when destroyed); the queue must be in-order (CT_ERR_INVALID otherwise: an application whose
 *  own queue is out-of-order gives cltape a second, in-order queue on the same context) and
 *  belong to `context` and `device`. */
CT_API ct_status ct_context_create_from_cl(cl_context context, cl_device_id device, cl_command_queue queue,
                                           ct_context **out);
/** The context's OpenCL objects (borrowed: retain them to keep them past ct_context_free). */
CT_API ct_status ct_context_cl(const ct_context *ctx, cl_context *context, cl_device_id *device,
                               cl_command_queue *queue);

/** Makes cltape's next work wait for the caller's events (n >= 0 events of the context's
 *  cl_context, e.g. of the caller's kernels writing a buffer cltape reads): enqueues a barrier
 *  with them as its wait list on the context's queue and returns without waiting. Every command
 *  cltape enqueues afterwards starts after they completed. The queue of each event (another
 *  than cltape's) is flushed so that cltape's queue cannot wait for a command never submitted.
 *  The events are borrowed. An event that never completes (an unset user event) stalls every
 *  later command of the context, and host reads then wait forever. Needs OpenCL 1.2.
 *  Errors: CT_ERR_NULL, CT_ERR_INVALID (n < 0), CT_ERR_CONTEXT (an event of another
 *  cl_context), CT_ERR_OPENCL (not an event). */
CT_API ct_status ct_context_wait_cl_events(ct_context *ctx, int n, const cl_event *events);
/** An event that completes when every command cltape enqueued on the context so far has
 *  completed (a marker on its in-order queue, flushed). The caller owns *event and releases it
 *  with clReleaseEvent; it may wait on it from any queue of the same cl_context or the host. */
CT_API ct_status ct_context_cl_event(ct_context *ctx, cl_event *event);

/** Wraps the caller's buffer as a tensor without copying. The tensor retains `mem`; the buffer
 *  must hold at least size(shape) elements of dtype. The data is shared: the caller must not
 *  write to it while cltape may read it. Same as ct_tensor_from_cl_mem_offset with offset 0. */
CT_API ct_status ct_tensor_from_cl_mem(ct_context *ctx, cl_mem mem, ct_dtype dtype, int rank, const int64_t *shape,
                                       ct_tensor **out);
/** The same for the elements that start `offset` bytes into `mem`: the tensor holds a sub-buffer
 *  of mem (and a reference to mem). The offset must be a multiple of the device's base address
 *  alignment, CL_DEVICE_MEM_BASE_ADDR_ALIGN (in bytes: 128 on PoCL's CPU device); any other is
 *  CT_ERR_INVALID, with the alignment in the message. A sub-buffer of the caller's is taken at its
 *  offset within its parent, which must be aligned the same way. Errors besides those of
 *  ct_tensor_from_cl_mem: CT_ERR_SHAPE when offset + the shape's bytes pass the buffer's end,
 *  CT_ERR_INVALID for a CL_MEM_WRITE_ONLY buffer. */
CT_API ct_status ct_tensor_from_cl_mem_offset(ct_context *ctx, cl_mem mem, size_t offset, ct_dtype dtype, int rank,
                                              const int64_t *shape, ct_tensor **out);
/** A variable whose storage is the caller's buffer, from byte `offset`
 *  (aligned as for ct_tensor_from_cl_mem_offset): no copy is made, the buffer's current bytes are
 *  its value, and every update writes that buffer in place: ct_variable_assign, _add and _sub, and
 *  the step of every optimizer (ct_optimizer_apply: SGD with or without momentum or Nesterov,
 *  Adam, AdamW, with or without clipping; its slots are cltape's own). The caller sees the new
 *  value in its buffer once the update's commands completed (ct_context_cl_event). Snapshots
 *  (ct_variable_value) and tape records keep the value they saw: before an update writes the
 *  buffer, they are moved to a copy. name and trainable as ct_variable_create. The variable
 *  retains `mem` as a tensor does. Errors as ct_tensor_from_cl_mem_offset, and CT_ERR_INVALID for
 *  a CL_MEM_READ_ONLY buffer. */
CT_API ct_status ct_variable_from_cl_mem(ct_context *ctx, cl_mem mem, size_t offset, ct_dtype dtype, int rank,
                                         const int64_t *shape, const char *name, bool trainable, ct_tensor **out);
/** The tensor's buffer (borrowed; retain it to keep it). Its first size*dtype_size bytes hold
 *  the elements in row-major order. Commands that produce it may still be queued: use the
 *  context's queue, an event (ct_context_cl_event) or ct_context_sync before reading it from
 *  elsewhere. For a tensor made with an offset it is cltape's sub-buffer of the caller's buffer;
 *  for a variable over a caller's buffer it stays that buffer across updates. */
CT_API ct_status ct_tensor_cl_mem(const ct_tensor *t, cl_mem *mem);

#ifdef __cplusplus
}
#endif
#endif
