/*
 * oclgrind_slot_reuse.c — a standalone reproducer (plain OpenCL, no cltape) of how oclgrind 21.10's
 * uninitialized-value plugin (--uninitialized) sees buffers; it is why scripts/reliability.sh links
 * tests/kernels/oclgrind_keep_buffers.c into the kernel-family program (docs/reliability.md).
 *
 *   cc -std=c11 -Wall -Wextra tests/kernels/oclgrind_slot_reuse.c -lOpenCL -o slot_reuse
 *   for c in 1 2 3 4 5; do oclgrind --uninitialized --log log$c ./slot_reuse $c; grep -c '^Uninit' log$c; done
 *
 * Every kernel read in cases 1-3 is of a value written before (by a kernel or the host), and each
 * case prints a value that shows it; case 4 reads a buffer that nothing wrote. Measured on Debian
 * 12's oclgrind 21.10 (three runs, the same each time): case 1 gives 12 reports (elements 4..15),
 * case 2 10 (elements 8..15, and 0 and 1), case 3 12 (elements 4..15), all false; case 4 none (a
 * miss); case 5 (the control: case 4 in a slot never used before) 16, one per element.
 *
 * The plugin keeps a shadow (which bytes are written) per buffer slot: made at a kernel launch,
 * poisoned and of the buffer's size, only when the slot has no shadow yet; replaced at every host
 * store (write, copy) by a new one of the store's size, whatever the store's offset (a store at an
 * offset is then dropped, and the new shadow's bytes are left as the heap gave them); never dropped
 * when the buffer is released, while the simulator gives released slots to new buffers. Stores
 * past the shadow's size are dropped and loads past it read as uninitialized.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

static const char *src =
    "__kernel void fill(__global float *y, float v) { y[get_global_id(0)] = v; }\n"
    "__kernel void copy(__global const float *x, __global float *y) {\n"
    "  size_t i = get_global_id(0); y[i] = x[i]; }\n";

static cl_context ctx;
static cl_command_queue queue;
static cl_kernel kfill, kcopy;

#define CHECK(call)                                                          \
  do {                                                                       \
    cl_int e_ = (call);                                                      \
    if (e_ != CL_SUCCESS) {                                                  \
      fprintf(stderr, "%s:%d: %s -> %d\n", __FILE__, __LINE__, #call, e_);  \
      exit(2);                                                               \
    }                                                                        \
  } while (0)

static cl_mem floats(size_t n) {
  cl_int err;
  cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, n * sizeof(float), NULL, &err);
  CHECK(err);
  return m;
}
static void fill(cl_mem y, size_t n, float v) {
  CHECK(clSetKernelArg(kfill, 0, sizeof y, &y));
  CHECK(clSetKernelArg(kfill, 1, sizeof v, &v));
  CHECK(clEnqueueNDRangeKernel(queue, kfill, 1, NULL, &n, NULL, 0, NULL, NULL));
}
static void copy(cl_mem x, cl_mem y, size_t n) {
  CHECK(clSetKernelArg(kcopy, 0, sizeof x, &x));
  CHECK(clSetKernelArg(kcopy, 1, sizeof y, &y));
  CHECK(clEnqueueNDRangeKernel(queue, kcopy, 1, NULL, &n, NULL, 0, NULL, NULL));
}
static float last(cl_mem y) {
  float v;
  CHECK(clEnqueueReadBuffer(queue, y, CL_TRUE, 15 * sizeof v, sizeof v, &v, 0, NULL, NULL));
  return v;
}

int main(int argc, char **argv) {
  int which = argc > 1 ? atoi(argv[1]) : 0;
  cl_platform_id platform;
  cl_device_id device;
  cl_int err;
  CHECK(clGetPlatformIDs(1, &platform, NULL));
  CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
  ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
  CHECK(err);
  queue = clCreateCommandQueue(ctx, device, 0, &err);
  CHECK(err);
  cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
  CHECK(err);
  CHECK(clBuildProgram(prog, 1, &device, "", NULL, NULL));
  kfill = clCreateKernel(prog, "fill", &err);
  CHECK(err);
  kcopy = clCreateKernel(prog, "copy", &err);
  CHECK(err);
  float h[16];
  for (int i = 0; i < 16; ++i) h[i] = (float)i;

  if (which == 1) { /* a released 4-float buffer's slot goes to a 16-float buffer */
    cl_mem a = floats(4);
    fill(a, 4, 1);
    CHECK(clFinish(queue));
    CHECK(clReleaseMemObject(a));
    cl_mem b = floats(16), c = floats(16); /* b gets a's slot and its 16-byte shadow */
    fill(b, 16, 2);                        /* stores to elements 4..15 of b: shadow dropped */
    copy(b, c, 16);                        /* 12 reports: elements 4..15 */
    printf("case 1: c[15] = %g (2 wanted)\n", last(c));
  } else if (which == 2) { /* a buffer written by the host in two halves */
    cl_mem b = floats(16), c = floats(16);
    CHECK(clEnqueueWriteBuffer(queue, b, CL_TRUE, 0, 8 * sizeof(float), h, 0, NULL, NULL));
    CHECK(clEnqueueWriteBuffer(queue, b, CL_TRUE, 8 * sizeof(float), 8 * sizeof(float), h + 8, 0, NULL, NULL));
    copy(b, c, 16); /* reports: the second store left a 32-byte shadow, not written */
    printf("case 2: c[15] = %g (15 wanted)\n", last(c));
  } else if (which == 3) { /* the host writes 4 floats, then a kernel all 16 */
    cl_mem b = floats(16), c = floats(16);
    CHECK(clEnqueueWriteBuffer(queue, b, CL_TRUE, 0, 4 * sizeof(float), h, 0, NULL, NULL));
    fill(b, 16, 3);
    copy(b, c, 16); /* 12 reports: elements 4..15 */
    printf("case 3: c[15] = %g (3 wanted)\n", last(c));
  } else if (which == 4 || which == 5) { /* a buffer nothing writes, in a used (4) or a new (5) slot */
    if (which == 4) {
      cl_mem a = floats(16);
      CHECK(clEnqueueWriteBuffer(queue, a, CL_TRUE, 0, sizeof h, h, 0, NULL, NULL));
      CHECK(clReleaseMemObject(a));
    }
    cl_mem b = floats(16), c = floats(16);
    copy(b, c, 16); /* should give 16 reports */
    CHECK(clFinish(queue));
    printf("case %d: copied a buffer that nothing wrote\n", which);
  } else {
    fprintf(stderr, "usage: %s 1|2|3|4|5\n", argv[0]);
    return 2;
  }
  return 0;
}
