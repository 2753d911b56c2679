/*
 * cltape_cl.h — interop with an application's own OpenCL objects.
 * Include after cltape.h in code that already uses OpenCL.
 */
#ifndef CLTAPE_CL_H
#define CLTAPE_CL_H
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include "cltape.h"
#ifdef __cplusplus
extern "C" {
#endif

/** Creates a context on the caller's objects. The context retains all three (and releases them
 *  when freed); the queue must be in-order and belong to `context` and `device`. */
CT_API ct_status ct_context_create_from_cl(cl_context context, cl_device_id device, cl_command_queue queue,
                                           ct_context **out);
/** The context's OpenCL objects (borrowed: retain them to keep them past ct_context_free). */
CT_API ct_status ct_context_cl(const ct_context *ctx, cl_context *context, cl_device_id *device,
                               cl_command_queue *queue);
/** Wraps the caller's buffer as a tensor without copying. The tensor retains `mem`; the buffer
 *  must hold at least size(shape) elements of dtype. The data is shared: the caller must not
 *  write to it while cltape may read it. */
CT_API ct_status ct_tensor_from_cl_mem(ct_context *ctx, cl_mem mem, ct_dtype dtype, int rank, const int64_t *shape,
                                       ct_tensor **out);
/** The tensor's buffer (borrowed; retain it to keep it). Its first size*dtype_size bytes hold
 *  the elements in row-major order. Commands that produce it may still be queued: use the
 *  context's queue or ct_context_sync before reading it from elsewhere. */
CT_API ct_status ct_tensor_cl_mem(const ct_tensor *t, cl_mem *mem);

#ifdef __cplusplus
}
#endif
#endif
