/* DLPack exchange: OpenCL tensors shared without copies, host tensors copied. */
#include "support.h"
#include "cltape_cl.h"
#include "cltape_dlpack.h"
#include <stdlib.h>

static int deleter_calls;
static void count_deleter(DLManagedTensor *m) {
  deleter_calls++;
  free(m);
}

Test(dlpack, opencl_round_trip_shares_the_buffer) {
  ct_context *ctx = ts_ctx();
  int64_t shape[2] = {2, 3};
  double v[6] = {1, 2, 3, 4, 5, 6};
  ct_tensor *t = ts_tensor(ctx, CT_FLOAT32, 2, shape, v);
  DLManagedTensor *m = NULL;
  OK(ct_dlpack_export(t, &m));
  cr_assert_eq(m->dl_tensor.device.device_type, kDLOpenCL);
  cr_assert_eq(m->dl_tensor.ndim, 2);
  cr_assert_eq(m->dl_tensor.shape[1], 3);
  cr_assert_eq(m->dl_tensor.dtype.code, kDLFloat);
  cr_assert_eq(m->dl_tensor.dtype.bits, 32);
  cl_mem mem = NULL;
  OK(ct_tensor_cl_mem(t, &mem));
  cr_assert_eq(m->dl_tensor.data, (void *)mem, "export must share the buffer, not copy it");
  ct_tensor *back = NULL;
  OK(ct_dlpack_import(ctx, m, &back)); /* takes ownership of m */
  cl_mem mem2 = NULL;
  OK(ct_tensor_cl_mem(back, &mem2));
  cr_assert_eq(mem2, mem, "import of an OpenCL tensor must wrap the same buffer");
  ts_assert_close(back, v, 6, 0, 0, "round trip");
  ct_tensor_free(t);
  /* the buffer outlives the original tensor while the imported one holds it */
  ts_assert_close(back, v, 6, 0, 0, "after the exporter is freed");
  ct_tensor_free(back);
  ct_context_free(ctx);
}

Test(dlpack, host_round_trip_and_strides) {
  ct_context *ctx = ts_ctx();
  int64_t shape[2] = {2, 2};
  double v[4] = {1.5, -2, 3, 4};
  const ct_dtype fdt = ts_best_float(ctx); /* float64; float32 on a device without it */
  ct_tensor *t = ts_tensor(ctx, fdt, 2, shape, v);
  DLManagedTensor *m = NULL;
  OK(ct_dlpack_export_host(t, &m));
  cr_assert_eq(m->dl_tensor.device.device_type, kDLCPU);
  cr_assert_eq(m->dl_tensor.dtype.bits, 8 * ct_dtype_size(fdt));
  const void *hd = m->dl_tensor.data;
  cr_assert_float_eq(fdt == CT_FLOAT64 ? ((const double *)hd)[1] : ((const float *)hd)[1], -2.0, 0);
  ct_tensor *back = NULL;
  OK(ct_dlpack_import(ctx, m, &back));
  ts_assert_close(back, v, 4, 0, 0, "host round trip");

  /* a transposed (column-major) host view is read through its strides */
  static float data[6] = {1, 2, 3, 4, 5, 6}; /* 2x3 stored column-major */
  static int64_t sh[2] = {2, 3}, st[2] = {1, 2};
  DLManagedTensor *cm = calloc(1, sizeof *cm);
  cm->dl_tensor.data = data;
  cm->dl_tensor.device.device_type = kDLCPU;
  cm->dl_tensor.ndim = 2;
  cm->dl_tensor.dtype.code = kDLFloat;
  cm->dl_tensor.dtype.bits = 32;
  cm->dl_tensor.dtype.lanes = 1;
  cm->dl_tensor.shape = sh;
  cm->dl_tensor.strides = st;
  cm->deleter = count_deleter;
  deleter_calls = 0;
  DLTensor view = cm->dl_tensor; /* cm is freed by its deleter during the import */
  ct_tensor *ct = NULL;
  OK(ct_dlpack_import(ctx, cm, &ct));
  cr_assert_eq(deleter_calls, 1, "import must call the producer's deleter");
  double want[6] = {1, 3, 5, 2, 4, 6};
  ts_assert_close(ct, want, 6, 0, 0, "strided import");

  /* unsupported dtype: error, and the deleter still runs */
  DLManagedTensor *bad = calloc(1, sizeof *bad);
  bad->dl_tensor = view;
  bad->dl_tensor.dtype.code = kDLUInt;
  bad->dl_tensor.dtype.bits = 8;
  bad->deleter = count_deleter;
  ct_tensor *bt = (ct_tensor *)1;
  EXPECT_STATUS(ct_dlpack_import(ctx, bad, &bt), CT_ERR_DTYPE);
  cr_assert_null(bt);
  cr_assert_eq(deleter_calls, 2);
  ct_tensor_free(ct);
  ct_tensor_free(back);
  ct_tensor_free(t);
  ct_context_free(ctx);
}

/* Host strides whose farthest element (or byte offset) overflows: refused before anything is read,
 * and the producer's deleter still runs; a negative stride within range is read as it says. */
Test(dlpack, host_strides_that_overflow_are_refused) {
  ct_context *ctx = ts_ctx();
  static float data[6] = {1, 2, 3, 4, 5, 6};
  static int64_t sh[2] = {2, 3};
  static int64_t strides[][2] = {{INT64_MAX / 2, 1}, {1, INT64_MAX / 4}, {INT64_MIN / 2, 1}, {3, INT64_MAX}};
  for (int k = 0; k < 5; ++k) {
    DLManagedTensor *m = calloc(1, sizeof *m);
    m->dl_tensor.data = data;
    m->dl_tensor.device.device_type = kDLCPU;
    m->dl_tensor.ndim = 2;
    m->dl_tensor.dtype = (DLDataType){kDLFloat, 32, 1};
    m->dl_tensor.shape = sh;
    m->dl_tensor.strides = k < 4 ? strides[k] : (int64_t[]){3, 1};
    m->dl_tensor.byte_offset = k < 4 ? 0 : UINT64_MAX - 8; /* k = 4: the offset alone overflows */
    m->deleter = count_deleter;
    deleter_calls = 0;
    ct_tensor *t = (ct_tensor *)m;
    EXPECT_STATUS(ct_dlpack_import(ctx, m, &t), CT_ERR_SHAPE);
    cr_assert_null(t);
    cr_assert_eq(deleter_calls, 1, "case %d", k);
  }
  /* rows read backwards: data + 3 floats, row stride -3 */
  static int64_t back[2] = {-3, 1};
  DLManagedTensor *m = calloc(1, sizeof *m);
  m->dl_tensor.data = data;
  m->dl_tensor.byte_offset = 3 * sizeof(float);
  m->dl_tensor.device.device_type = kDLCPU;
  m->dl_tensor.ndim = 2;
  m->dl_tensor.dtype = (DLDataType){kDLFloat, 32, 1};
  m->dl_tensor.shape = sh;
  m->dl_tensor.strides = back;
  m->deleter = count_deleter;
  ct_tensor *t = NULL;
  OK(ct_dlpack_import(ctx, m, &t));
  ts_assert_close(t, (double[]){4, 5, 6, 1, 2, 3}, 6, 0, 0, "negative row stride");
  ct_tensor_free(t);
  ct_context_free(ctx);
}
