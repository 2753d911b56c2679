/* float16 arithmetic: whether a context computes float16 tensors in half (CLTAPE_FP16_COMPUTE).
 *   auto (the default)  where the device reports cl_khr_fp16
 *   on                  always; a device that cannot build a half kernel refuses the context
 *                       (CT_ERR_UNSUPPORTED, the compiler's log in the message)
 *   off                 never: float16 is widened to float32 around every op (lib/ops.c)
 * Which rows then run in half is the core's choice (lib/ops.c, `half_row`); here only the
 * programs: float16's elementwise program and fused kernels are built with -DCT_HALF=1. */
#include "ct_host.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char probe_src[] =
    "#pragma OPENCL EXTENSION cl_khr_fp16 : enable\n"
    "__kernel void ct_half_probe(__global const half *x, __global half *y) {\n"
    "  size_t i = get_global_id(0); half v = x[i]; y[i] = v * v + (half)1; }\n";

/* Does the device build a kernel with half arithmetic? CT_OK, or CT_ERR_UNSUPPORTED with the log. */
static ct_status probe_half(ct_context *ctx) {
  const char *src = probe_src;
  cl_int err;
  cl_program p = clCreateProgramWithSource(ctx->context, 1, &src, NULL, &err);
  if (err != CL_SUCCESS) return CTB_CL_FAIL(ctx, err, "clCreateProgramWithSource");
  err = clBuildProgram(p, 1, &ctx->device, "", NULL, NULL);
  if (err == CL_SUCCESS) {
    clReleaseProgram(p);
    return CT_OK;
  }
  char log[1024] = "";
  clGetProgramBuildInfo(p, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
  clReleaseProgram(p);
  char *why = strstr(log, "error"); /* the first error says why (a warning may come first) */
  if (!why) why = log;
  while (why > log && why[-1] != '\n') --why;
  char *nl = strchr(why, '\n');
  if (nl) *nl = '\0';
  return ct__error(ctx, CT_ERR_UNSUPPORTED,
                   "CLTAPE_FP16_COMPUTE=on: device \"%s\" cannot build half arithmetic (%s%s%s); "
                   "unset it or use auto or off to compute float16 in float32",
                   ctx->info.name, ctx->info.fp16 ? "" : "no cl_khr_fp16", ctx->info.fp16 || !why[0] ? "" : ": ", why);
}

ct_status ctb_choose_half(ct_context *ctx) {
  const char *env = ct__getenv("CLTAPE_FP16_COMPUTE");
  ctx->half = false;
  if (!env || !*env || strcasecmp(env, "auto") == 0) {
    ctx->half = ctx->info.fp16;
    return CT_OK;
  }
  if (strcasecmp(env, "off") == 0) return CT_OK;
  if (strcasecmp(env, "on") != 0)
    return ct__error(ctx, CT_ERR_INVALID, "CLTAPE_FP16_COMPUTE=\"%s\": auto, on or off", env);
  CT_TRY(probe_half(ctx));
  ctx->half = true;
  return CT_OK;
}

bool ctb_half_compute(const ct_context *ctx) { return ctx->half; }
