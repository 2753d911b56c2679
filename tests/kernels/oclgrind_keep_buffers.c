/*
 * oclgrind_keep_buffers.c — linked into the oclgrind build of kernel_families.c only
 * (scripts/reliability.sh): every buffer the program creates keeps one extra reference until the
 * process exits, so the simulator never gives a released buffer's slot to a later buffer.
 *
 * Why: oclgrind 21.10's uninitialized-value plugin (--uninitialized) keeps its shadow memory (which
 * bytes were written) per buffer slot and never drops it when a buffer is released. A new buffer
 * in a reused slot inherits the old buffer's shadow, sized for the old buffer: stores past that
 * size are dropped, loads past it read as uninitialized (false reports on values that were
 * written), and loads inside it read the old buffer's state (missed reports on values never
 * written). With every slot used once, the plugin allocates the shadow of each buffer at its first
 * use with the buffer's own size. docs/reliability.md, "oclgrind", has the measurements and the
 * standalone reproducer.
 *
 * The program's calls (and the library's, linked statically) reach this definition first; it calls
 * the next clCreateBuffer in the lookup order: oclgrind's runtime under oclgrind, else the ICD
 * loader. Nothing else changes: sizes, contents, kernels and every access check are the same.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

typedef cl_mem(CL_API_CALL *kf_create_buffer_fn)(cl_context, cl_mem_flags, size_t, void *, cl_int *);
static kf_create_buffer_fn kf_next_create_buffer;

/* resolved once before main, so that no thread races on it */
__attribute__((constructor)) static void kf_keep_buffers_init(void) {
  kf_next_create_buffer = (kf_create_buffer_fn)dlsym(RTLD_NEXT, "clCreateBuffer");
  if (!kf_next_create_buffer) {
    fprintf(stderr, "oclgrind_keep_buffers: no clCreateBuffer after this program: %s\n", dlerror());
    abort();
  }
}

CL_API_ENTRY cl_mem CL_API_CALL clCreateBuffer(cl_context context, cl_mem_flags flags, size_t size, void *host_ptr,
                                               cl_int *errcode_ret) CL_API_SUFFIX__VERSION_1_0 {
  cl_mem mem = kf_next_create_buffer(context, flags, size, host_ptr, errcode_ret);
  if (mem && clRetainMemObject(mem) != CL_SUCCESS) {
    fprintf(stderr, "oclgrind_keep_buffers: clRetainMemObject failed\n");
    abort();
  }
  return mem;
}
