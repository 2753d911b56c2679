/*
 * cltape-interop — cltape inside an application that owns its OpenCL objects (docs/embedding.md).
 *
 * The application creates its context, its own queue (out-of-order where the device offers one)
 * and its buffers: the data (features X and targets y, written by its own kernel) and the model's
 * parameters (the weights W at the start of one buffer and the bias b at the next offset the device
 * allows, zeroed by a write). It hands them to cltape with the events of those commands, trains a
 * linear model y = X W + b on them with Adam, the parameters updated in place in its buffer, and
 * reads them back on its own queue after waiting on cltape's event. It checks that the loss fell
 * and that its buffer holds the trained weights: the test suite runs it (exit status 0 or 1).
 *
 *   cltape-interop [steps]
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <cltape.h>
#include <cltape_cl.h>
#include <cltape_nn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 256 /* samples */
#define F 4   /* features */

static const float W_TRUE[F] = {1.5f, -2.0f, 0.5f, 3.0f};
static const float B_TRUE = 0.75f;

/* The application's own kernel: features in [-1, 1) from a hash of their index, and the targets
 * of the true model with a little noise. */
static const char *DATA_SOURCE =
    "uint mix(uint x) { x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; return x ^ (x >> 16); }\n"
    "float unit(uint x) { return (float)(mix(x) >> 8) * (1.0f / 8388608.0f) - 1.0f; }\n"
    "__kernel void make_data(__global float *x, __global float *y, int n, float4 w, float b, float noise) {\n"
    "  int i = get_global_id(0);\n"
    "  if (i >= n) return;\n"
    "  float4 xi = (float4)(unit(8u * i + 1u), unit(8u * i + 3u), unit(8u * i + 5u), unit(8u * i + 7u));\n"
    "  vstore4(xi, i, x);\n"
    "  y[i] = dot(xi, w) + b + noise * unit(8u * i + 2u);\n"
    "}\n";

#define CL_CHECK(call)                                                              \
  do {                                                                              \
    cl_int e_ = (call);                                                             \
    if (e_ != CL_SUCCESS) {                                                         \
      fprintf(stderr, "cltape-interop: %s failed: %d\n", #call, (int)e_);            \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)
#define CT_CHECK(call)                                                              \
  do {                                                                              \
    if ((call) != CT_OK) {                                                          \
      fprintf(stderr, "cltape-interop: %s: %s\n", #call, ct_errmsg());              \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)

/* The first device of the first platform that has one. */
static void pick_device(cl_platform_id *platform, cl_device_id *device) {
  cl_platform_id ps[16];
  cl_uint np = 0;
  CL_CHECK(clGetPlatformIDs(16, ps, &np));
  for (cl_uint i = 0; i < np && i < 16; ++i)
    if (clGetDeviceIDs(ps[i], CL_DEVICE_TYPE_ALL, 1, device, NULL) == CL_SUCCESS) {
      *platform = ps[i];
      return;
    }
  fprintf(stderr, "cltape-interop: no OpenCL device\n");
  exit(1);
}

/* loss = mean((X W + b - y)^2), recorded by the active tape */
static ct_tensor *mse(ct_tensor *x, ct_tensor *y, ct_tensor *w, ct_tensor *b) {
  ct_tensor *xw = NULL, *pred = NULL, *d = NULL, *sq = NULL, *loss = NULL;
  CT_CHECK(ct_matmul(x, w, false, false, &xw));
  CT_CHECK(ct_add(xw, b, &pred));
  CT_CHECK(ct_sub(pred, y, &d));
  CT_CHECK(ct_square(d, &sq));
  CT_CHECK(ct_mean(sq, NULL, 0, false, &loss));
  ct_tensor *tmp[] = {xw, pred, d, sq};
  ct_tensor_free_n(tmp, 4);
  return loss;
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 300;
  if (steps < 1) steps = 300;

  /* ---- the application's OpenCL: context, its own queue, cltape's in-order queue ---- */
  cl_platform_id platform;
  cl_device_id device;
  pick_device(&platform, &device);
  cl_int err;
  cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
  CL_CHECK(err);
  cl_command_queue_properties qp = 0;
  CL_CHECK(clGetDeviceInfo(device, CL_DEVICE_QUEUE_PROPERTIES, sizeof qp, &qp, NULL));
  cl_command_queue app_queue =
      clCreateCommandQueue(context, device, qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
  CL_CHECK(err);
  cl_command_queue ct_queue = clCreateCommandQueue(context, device, 0, &err); /* cltape's: in-order */
  CL_CHECK(err);
  cl_uint align_bits = 0;
  CL_CHECK(clGetDeviceInfo(device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL));
  size_t align = align_bits / 8; /* the bias sits at the first offset after W that the device allows */
  size_t b_offset = (F * sizeof(float) + align - 1) / align * align;
  char name[256] = "";
  clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
  printf("device: %s (its own queue %s; sub-buffer alignment %zu bytes)\n", name,
         qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE ? "out-of-order" : "in-order", align);

  /* ---- the application's buffers, filled by its own commands ---- */
  cl_mem x_mem = clCreateBuffer(context, CL_MEM_READ_WRITE, N * F * sizeof(float), NULL, &err);
  CL_CHECK(err);
  cl_mem y_mem = clCreateBuffer(context, CL_MEM_READ_WRITE, N * sizeof(float), NULL, &err);
  CL_CHECK(err);
  cl_mem params = clCreateBuffer(context, CL_MEM_READ_WRITE, b_offset + sizeof(float), NULL, &err);
  CL_CHECK(err);
  cl_program prog = clCreateProgramWithSource(context, 1, &DATA_SOURCE, NULL, &err);
  CL_CHECK(err);
  CL_CHECK(clBuildProgram(prog, 1, &device, "", NULL, NULL));
  cl_kernel make_data = clCreateKernel(prog, "make_data", &err);
  CL_CHECK(err);
  cl_int n = N;
  cl_float4 w_true = {{W_TRUE[0], W_TRUE[1], W_TRUE[2], W_TRUE[3]}};
  cl_float b_true = B_TRUE, noise = 0.01f;
  CL_CHECK(clSetKernelArg(make_data, 0, sizeof x_mem, &x_mem));
  CL_CHECK(clSetKernelArg(make_data, 1, sizeof y_mem, &y_mem));
  CL_CHECK(clSetKernelArg(make_data, 2, sizeof n, &n));
  CL_CHECK(clSetKernelArg(make_data, 3, sizeof w_true, &w_true));
  CL_CHECK(clSetKernelArg(make_data, 4, sizeof b_true, &b_true));
  CL_CHECK(clSetKernelArg(make_data, 5, sizeof noise, &noise));
  size_t global = N;
  cl_event ready[2];
  CL_CHECK(clEnqueueNDRangeKernel(app_queue, make_data, 1, NULL, &global, NULL, 0, NULL, &ready[0]));
  static float zeros[1024]; /* W and b start at 0 */
  if (b_offset + sizeof(float) > sizeof zeros) {
    fprintf(stderr, "cltape-interop: alignment %zu is larger than this example expects\n", align);
    return 1;
  }
  CL_CHECK(clEnqueueWriteBuffer(app_queue, params, CL_FALSE, 0, b_offset + sizeof(float), zeros, 0, NULL, &ready[1]));

  /* ---- cltape on the application's objects ---- */
  ct_context *ctx = NULL;
  CT_CHECK(ct_context_create_from_cl(context, device, ct_queue, &ctx));
  /* cltape's work starts after the application's kernel and write; nothing waits on the host */
  CT_CHECK(ct_context_wait_cl_events(ctx, 2, ready));
  clReleaseEvent(ready[0]);
  clReleaseEvent(ready[1]);
  ct_tensor *x = NULL, *y = NULL, *w = NULL, *b = NULL;
  CT_CHECK(ct_tensor_from_cl_mem(ctx, x_mem, CT_FLOAT32, 2, (int64_t[]){N, F}, &x)); /* shared, no copy */
  CT_CHECK(ct_tensor_from_cl_mem(ctx, y_mem, CT_FLOAT32, 2, (int64_t[]){N, 1}, &y));
  /* the parameters ARE the application's buffer: W at offset 0, b at b_offset */
  CT_CHECK(ct_variable_from_cl_mem(ctx, params, 0, CT_FLOAT32, 2, (int64_t[]){F, 1}, "W", true, &w));
  CT_CHECK(ct_variable_from_cl_mem(ctx, params, b_offset, CT_FLOAT32, 1, (int64_t[]){1}, "b", true, &b));

  /* ---- training ---- */
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  o.learning_rate = 0.05;
  ct_optimizer *opt = NULL;
  CT_CHECK(ct_optimizer_create(ctx, &o, &opt));
  double first = NAN, last = NAN;
  for (int step = 0; step < steps; ++step) {
    ct_tape *tape = NULL;
    CT_CHECK(ct_tape_begin(ctx, NULL, &tape));
    ct_tensor *loss = mse(x, y, w, b);
    CT_CHECK(ct_tape_end(tape));
    ct_tensor *vars[2] = {w, b}, *grads[2] = {NULL, NULL};
    CT_CHECK(ct_tape_gradient(tape, &loss, 1, vars, 2, NULL, CT_UNCONNECTED_NONE, grads));
    ct_tape_free(tape);
    CT_CHECK(ct_optimizer_apply(opt, grads, vars, 2)); /* writes W and b into `params` */
    if (step == 0 || step == steps - 1 || (step + 1) % 100 == 0) {
      double v;
      CT_CHECK(ct_tensor_item(loss, &v)); /* the one host wait of a step, now and then */
      if (step == 0) first = v;
      last = v;
      printf("step %4d  loss %.6f\n", step + 1, v);
    }
    ct_tensor_free_n(grads, 2);
    ct_tensor_free(loss);
  }

  /* ---- the application reads its own buffer after cltape's last work ---- */
  cl_event done = NULL;
  CT_CHECK(ct_context_cl_event(ctx, &done));
  float got[1024 / sizeof(float)];
  CL_CHECK(clEnqueueReadBuffer(app_queue, params, CL_TRUE, 0, b_offset + sizeof(float), got, 1, &done, NULL));
  clReleaseEvent(done);
  const float *w_got = got, b_got = got[b_offset / sizeof(float)];
  printf("W = [%.4f %.4f %.4f %.4f] (true [%.2f %.2f %.2f %.2f]), b = %.4f (true %.2f)\n", w_got[0], w_got[1],
         w_got[2], w_got[3], W_TRUE[0], W_TRUE[1], W_TRUE[2], W_TRUE[3], b_got, B_TRUE);

  /* ---- checks: the loss fell; the application's buffer holds the trained parameters ---- */
  int failed = 0;
  if (!(last < first * 1e-3)) {
    fprintf(stderr, "cltape-interop: the loss went from %g to %g\n", first, last);
    failed = 1;
  }
  for (int j = 0; j < F; ++j)
    if (fabsf(w_got[j] - W_TRUE[j]) > 0.02f) {
      fprintf(stderr, "cltape-interop: W[%d] = %g in the application's buffer, %g wanted\n", j, w_got[j], W_TRUE[j]);
      failed = 1;
    }
  if (fabsf(b_got - B_TRUE) > 0.02f) {
    fprintf(stderr, "cltape-interop: b = %g in the application's buffer, %g wanted\n", b_got, B_TRUE);
    failed = 1;
  }
  float w_ct[F], b_ct;
  CT_CHECK(ct_tensor_read(w, w_ct, sizeof w_ct));
  CT_CHECK(ct_tensor_read(b, &b_ct, sizeof b_ct));
  if (memcmp(w_ct, w_got, sizeof w_ct) != 0 || b_ct != b_got) {
    fprintf(stderr, "cltape-interop: cltape's variables and the application's buffer differ\n");
    failed = 1;
  }

  /* ---- teardown: cltape's references first, then the application's own ---- */
  ct_optimizer_free(opt);
  ct_tensor *all[] = {x, y, w, b};
  ct_tensor_free_n(all, 4);
  ct_context_free(ctx);
  clReleaseKernel(make_data);
  clReleaseProgram(prog);
  clReleaseMemObject(x_mem);
  clReleaseMemObject(y_mem);
  clReleaseMemObject(params);
  clReleaseCommandQueue(ct_queue);
  clReleaseCommandQueue(app_queue);
  clReleaseContext(context);
  printf(failed ? "FAILED\n" : "ok: the loss fell and the application's buffer holds the trained weights\n");
  return failed;
}
