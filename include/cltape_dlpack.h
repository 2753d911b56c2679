/*
 * cltape_dlpack.h — tensor exchange with other libraries through DLPack (dlpack/dlpack.h).
 * OpenCL-resident tensors are exchanged without copying (DLPack device type kDLOpenCL, `data`
 * holds the cl_mem); host tensors (kDLCPU) are copied to or from the device.
 */
/** \file cltape_dlpack.h
 *  \brief Tensor exchange with other libraries through DLPack. */
#ifndef CLTAPE_DLPACK_H
#define CLTAPE_DLPACK_H
#include <dlpack/dlpack.h>
#include "cltape.h"
#ifdef __cplusplus
extern "C" {
#endif

/** Exports `t` without a copy: device kDLOpenCL with device_id = the context's device index,
 *  `data` = the tensor's cl_mem, byte_offset 0, compact row-major (strides NULL). The managed
 *  tensor keeps `t`'s storage alive until its deleter is called (the consumer calls it). Waits
 *  for queued work so that the consumer may use the buffer at once. */
CT_API ct_status ct_dlpack_export(const ct_tensor *t, DLManagedTensor **out);

/** Copies `t` to host memory and exports it as a kDLCPU tensor owned by the managed tensor. */
CT_API ct_status ct_dlpack_export_host(const ct_tensor *t, DLManagedTensor **out);

/** Imports a DLPack tensor into `ctx` and takes ownership of `m` (its deleter is called, now or
 *  when the tensor no longer needs it, also on error). kDLOpenCL: `data` must be a cl_mem of
 *  the context's OpenCL context; a compact tensor at byte_offset 0 is wrapped without a copy,
 *  anything else is copied. kDLCPU: the data is copied to the device (strides honoured).
 *  Supported dtypes: float32, float64, int32, float16, bfloat16 (kDLBfloat), int64 (a bool tensor
 *  is exported as uint8 0 / 1: this DLPack has no bool code, and uint8 is not imported). Errors: CT_ERR_DTYPE, CT_ERR_UNSUPPORTED (other
 *  device types, lanes != 1), CT_ERR_CONTEXT (a buffer of another context). */
CT_API ct_status ct_dlpack_import(ct_context *ctx, DLManagedTensor *m, ct_tensor **out);

#ifdef __cplusplus
}
#endif
#endif
