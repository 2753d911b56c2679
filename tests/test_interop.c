/* test_interop.c — an application that owns its OpenCL objects (include/cltape_cl.h): events in
 * both directions between its queues and cltape's, byte offsets into its buffers (sub-buffers and
 * the device's base address alignment), variables whose storage is its buffer, written in place
 * by every optimizer and every assignment, and who holds which reference (cl_mem, cl_event,
 * cl_context, cl_command_queue) before, during and after. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_cl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the application's side ------------------------------------------------------------------ */
typedef struct {
  cl_context context;
  cl_device_id device;
  cl_command_queue queue;     /* the application's own queue: out-of-order where the device offers it */
  cl_command_queue ct_queue;  /* the in-order queue it gives cltape */
  bool out_of_order;
  size_t align;               /* CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes */
  ct_context *ctx;            /* cltape on the application's objects */
} app;

/* The application's objects on the device the tests run on (CLTAPE_DEVICE), and cltape on them. */
static app app_open(void) {
  app a;
  memset(&a, 0, sizeof a);
  ct_context *probe = ts_ctx();
  OK(ct_context_cl(probe, &a.context, &a.device, NULL));
  clRetainContext(a.context);
  ct_context_free(probe);
  cl_command_queue_properties qp = 0;
  cr_assert_eq(clGetDeviceInfo(a.device, CL_DEVICE_QUEUE_PROPERTIES, sizeof qp, &qp, NULL), CL_SUCCESS);
  a.out_of_order = (qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0;
  cl_int err;
  a.queue = clCreateCommandQueue(a.context, a.device, a.out_of_order ? CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE : 0,
                                 &err);
  cr_assert_eq(err, CL_SUCCESS);
  a.ct_queue = clCreateCommandQueue(a.context, a.device, 0, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_uint bits = 0;
  cr_assert_eq(clGetDeviceInfo(a.device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits, NULL), CL_SUCCESS);
  a.align = bits / 8 ? bits / 8 : 1;
  OK(ct_context_create_from_cl(a.context, a.device, a.ct_queue, &a.ctx));
  return a;
}

static void app_close(app *a) {
  ct_context_free(a->ctx);
  clReleaseCommandQueue(a->ct_queue);
  clReleaseCommandQueue(a->queue);
  clReleaseContext(a->context);
}

static cl_mem app_buffer(const app *a, size_t bytes, const float *init) {
  cl_int err;
  cl_mem m = clCreateBuffer(a->context, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0), bytes, (void *)init,
                            &err);
  cr_assert_eq(err, CL_SUCCESS);
  return m;
}

/* The application reads its buffer on its own queue once cltape's work so far is done (an event
 * from ct_context_cl_event, never a host-side wait on cltape). */
static void app_read_after_cltape(const app *a, cl_mem m, size_t offset, float *out, size_t n) {
  cl_event done = NULL;
  OK(ct_context_cl_event(a->ctx, &done));
  cr_assert_not_null(done);
  cr_assert_eq(clEnqueueReadBuffer(a->queue, m, CL_TRUE, offset, n * sizeof(float), out, 1, &done, NULL), CL_SUCCESS);
  cl_int st = 0;
  cr_assert_eq(clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL), CL_SUCCESS);
  cr_assert_eq(st, CL_COMPLETE, "the read waited for cltape's event, which must have completed");
  clReleaseEvent(done);
}

/* ---- events ----------------------------------------------------------------------------------- */
/* cltape's work waits for the application's command, the host never does: the application's
 * write waits on a user event it has not set yet; cltape's op and its event are enqueued behind
 * it and cannot complete until the application lets its write go. */
Test(interop, events_order_work_across_queues) {
  app a = app_open();
  const float old_x[4] = {1, 2, 3, 4}, new_x[4] = {10, 20, 30, 40};
  cl_mem xm = app_buffer(&a, sizeof old_x, old_x);
  ct_tensor *x = NULL, *y = NULL, *warm = NULL;
  OK(ct_tensor_from_cl_mem(a.ctx, xm, CT_FLOAT32, 1, (int64_t[]){4}, &x));
  OK(ct_add(x, x, &warm)); /* builds the program now: nothing below compiles or blocks */
  ts_assert_close(warm, (double[]){2, 4, 6, 8}, 4, 0, 0, "before");
  cl_int err;
  cl_event gate = clCreateUserEvent(a.context, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_event wrote = NULL;
  cr_assert_eq(clEnqueueWriteBuffer(a.queue, xm, CL_FALSE, 0, sizeof new_x, new_x, 1, &gate, &wrote), CL_SUCCESS);
  /* not flushed by the application: cltape flushes the event's queue itself */
  OK(ct_context_wait_cl_events(a.ctx, 1, &wrote));
  clReleaseEvent(wrote); /* borrowed for the call only */
  OK(ct_add(x, x, &y));
  cl_event done = NULL;
  OK(ct_context_cl_event(a.ctx, &done));
  nanosleep(&(struct timespec){0, 20000000}, NULL);
  cl_int st = 0;
  cr_assert_eq(clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL), CL_SUCCESS);
  cr_assert_neq(st, CL_COMPLETE, "cltape's work completed before the application's write it must wait for");
  cr_assert_eq(clSetUserEventStatus(gate, CL_COMPLETE), CL_SUCCESS);
  /* the application reads cltape's result on its own queue after cltape's event */
  cl_mem ym = NULL;
  OK(ct_tensor_cl_mem(y, &ym));
  float got[4];
  cr_assert_eq(clEnqueueReadBuffer(a.queue, ym, CL_TRUE, 0, sizeof got, got, 1, &done, NULL), CL_SUCCESS);
  for (int i = 0; i < 4; ++i) cr_assert_eq(got[i], 2 * new_x[i], "y[%d] = %g: the op read the buffer too early", i, got[i]);
  cr_assert_eq(clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL), CL_SUCCESS);
  cr_assert_eq(st, CL_COMPLETE);
  cr_assert_eq(TS_SETTLE(ts_event_refs(done), 1), 1, "the caller holds the only reference to cltape's event");
  clReleaseEvent(done);
  clReleaseEvent(gate);
  ct_tensor *all[] = {x, y, warm};
  ct_tensor_free_n(all, 3);
  clReleaseMemObject(xm);
  app_close(&a);
}

/* The application's queue and cltape's may also be the same in-order queue: the queue orders
 * them, and events still work. */
Test(interop, events_on_a_shared_in_order_queue) {
  ct_context *probe = ts_ctx();
  cl_context c;
  cl_device_id d;
  OK(ct_context_cl(probe, &c, &d, NULL));
  cl_int err;
  cl_command_queue q = clCreateCommandQueue(c, d, 0, &err);
  cr_assert_eq(err, CL_SUCCESS);
  ct_context *ctx = NULL;
  OK(ct_context_create_from_cl(c, d, q, &ctx));
  ct_context_free(probe);
  const float v[3] = {1, 2, 3}, w[3] = {5, 6, 7};
  cl_mem m = clCreateBuffer(c, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof v, (void *)v, &err);
  cr_assert_eq(err, CL_SUCCESS);
  cl_event wrote = NULL;
  cr_assert_eq(clEnqueueWriteBuffer(q, m, CL_FALSE, 0, sizeof w, w, 0, NULL, &wrote), CL_SUCCESS);
  OK(ct_context_wait_cl_events(ctx, 1, &wrote));
  clReleaseEvent(wrote);
  ct_tensor *t = NULL, *s = NULL;
  OK(ct_tensor_from_cl_mem(ctx, m, CT_FLOAT32, 1, (int64_t[]){3}, &t));
  OK(ct_sum(t, NULL, 0, false, &s));
  cl_event done = NULL;
  OK(ct_context_cl_event(ctx, &done));
  cr_assert_eq(clWaitForEvents(1, &done), CL_SUCCESS);
  clReleaseEvent(done);
  cr_assert_eq(ts_item(s), 18.0);
  ct_tensor_free(s);
  ct_tensor_free(t);
  clReleaseMemObject(m);
  ct_context_free(ctx);
  clReleaseCommandQueue(q);
}

/* ---- byte offsets ----------------------------------------------------------------------------- */
Test(interop, offsets_are_sub_buffers_at_the_device_alignment) {
  app a = app_open();
  size_t al = a.align, nf = (3 * al) / sizeof(float);
  float *host = malloc(3 * al);
  cr_assert(host);
  for (size_t i = 0; i < nf; ++i) host[i] = (float)i;
  cl_mem m = app_buffer(&a, 3 * al, host);
  /* a tensor at offset al: elements al/4 .. al/4 + 5 */
  ct_tensor *t = NULL, *y = NULL;
  OK(ct_tensor_from_cl_mem_offset(a.ctx, m, al, CT_FLOAT32, 2, (int64_t[]){2, 3}, &t));
  double base = (double)(al / sizeof(float));
  double want[6];
  for (int i = 0; i < 6; ++i) want[i] = base + i;
  ts_assert_close(t, want, 6, 0, 0, "tensor at an offset");
  cl_mem sub = NULL, parent = NULL;
  size_t off = 0, size = 0;
  OK(ct_tensor_cl_mem(t, &sub));
  cr_assert_neq(sub, m, "an offset is cltape's sub-buffer");
  cr_assert_eq(clGetMemObjectInfo(sub, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL), CL_SUCCESS);
  cr_assert_eq(clGetMemObjectInfo(sub, CL_MEM_OFFSET, sizeof off, &off, NULL), CL_SUCCESS);
  cr_assert_eq(clGetMemObjectInfo(sub, CL_MEM_SIZE, sizeof size, &size, NULL), CL_SUCCESS);
  cr_assert(parent == m && off == al && size == 6 * sizeof(float), "sub-buffer %p at %zu, %zu bytes", (void *)parent,
            off, size);
  /* the application's later writes are seen: the data is shared, not copied */
  float nine = 9;
  cr_assert_eq(clEnqueueWriteBuffer(a.queue, m, CL_TRUE, al + sizeof(float), sizeof nine, &nine, 0, NULL, NULL),
               CL_SUCCESS);
  OK(ct_mul_scalar(t, 2, &y));
  want[1] = 9;
  for (int i = 0; i < 6; ++i) want[i] *= 2;
  ts_assert_close(y, want, 6, 0, 0, "op on the offset tensor after the application's write");
  ct_tensor_free(y);
  ct_tensor_free(t);
  /* a sub-buffer of the application's own, and an offset into it: the origin within the parent */
  cl_int err;
  cl_buffer_region region = {al, 2 * al};
  cl_mem theirs = clCreateSubBuffer(m, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
  cr_assert_eq(err, CL_SUCCESS);
  OK(ct_tensor_from_cl_mem_offset(a.ctx, theirs, al, CT_FLOAT32, 1, (int64_t[]){2}, &t));
  ts_assert_close(t, (double[]){2 * base, 2 * base + 1}, 2, 0, 0, "offset into a sub-buffer");
  ct_tensor_free(t);
  /* a misaligned offset names the alignment; nothing is retained */
  cl_uint held = ts_mem_refs(m);
  if (al > sizeof(float)) {
    EXPECT_STATUS(ct_tensor_from_cl_mem_offset(a.ctx, m, sizeof(float), CT_FLOAT32, 1, (int64_t[]){2}, &t),
                  CT_ERR_INVALID);
    char need[32];
    snprintf(need, sizeof need, "%zu", al);
    cr_assert(strstr(ct_errmsg(), need) && strstr(ct_errmsg(), "CL_DEVICE_MEM_BASE_ADDR_ALIGN"),
              "the message names the alignment %zu: %s", al, ct_errmsg());
    cr_assert_null(t);
  }
  EXPECT_STATUS(ct_tensor_from_cl_mem_offset(a.ctx, m, 3 * al, CT_FLOAT32, 1, (int64_t[]){1}, &t), CT_ERR_SHAPE);
  cr_assert_eq(ts_mem_refs(m), held, "a refused buffer is not retained");
  /* an empty tensor at the end of the buffer needs no sub-buffer */
  OK(ct_tensor_from_cl_mem_offset(a.ctx, m, 3 * al, CT_FLOAT32, 1, (int64_t[]){0}, &t));
  cr_assert_eq(ct_tensor_size(t), 0);
  ct_tensor_free(t);
  clReleaseMemObject(theirs);
  clReleaseMemObject(m);
  free(host);
  app_close(&a);
}

/* ---- variables in the application's buffer ------------------------------------------------------ */
#define NW 6
/* loss = sum((w * x - t)^2) and its gradient with respect to w */
static ct_tensor *loss_grad(ct_tensor *w, ct_tensor *x, ct_tensor *t, ct_tape **keep) {
  ct_tape *tape = NULL;
  ct_tape_options o = ct_tape_default_options();
  o.persistent = keep != NULL;
  OK(ct_tape_begin(ct_tensor_context(w), &o, &tape));
  ct_tensor *p = NULL, *d = NULL, *sq = NULL, *l = NULL, *g = NULL;
  OK(ct_mul(w, x, &p));
  OK(ct_sub(p, t, &d));
  OK(ct_square(d, &sq));
  OK(ct_sum(sq, NULL, 0, false, &l));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, l, w, &g));
  ct_tensor *all[] = {p, d, sq, l};
  ct_tensor_free_n(all, 4);
  if (keep) *keep = tape;
  else ct_tape_free(tape);
  return g;
}

typedef struct {
  const char *name;
  ct_optimizer_kind kind;
  double lr, momentum, weight_decay, clip;
  bool nesterov;
} opt_case;

static const opt_case OPT_CASES[] = {
    {"SGD", CT_OPTIMIZER_SGD, 0.05, 0, 0, 0, false},
    {"SGD momentum", CT_OPTIMIZER_SGD, 0.05, 0.9, 0, 0, false},
    {"SGD Nesterov", CT_OPTIMIZER_SGD, 0.05, 0.9, 0, 0, true},
    {"SGD weight decay", CT_OPTIMIZER_SGD, 0.05, 0, 0.1, 0, false},
    {"Adam", CT_OPTIMIZER_ADAM, 0.1, 0, 0, 0, false},
    {"AdamW", CT_OPTIMIZER_ADAMW, 0.1, 0, 0.01, 0, false},
    {"Adam clipped", CT_OPTIMIZER_ADAM, 0.1, 0, 0, 0.5, false},
    {"SGD momentum clipped", CT_OPTIMIZER_SGD, 0.05, 0.5, 0, 0.5, false},
};

static ct_optimizer *make_opt(ct_context *ctx, const opt_case *c) {
  ct_optimizer_options o = ct_optimizer_default_options(c->kind);
  o.learning_rate = c->lr;
  o.momentum = c->momentum;
  o.nesterov = c->nesterov;
  o.clip_global_norm = c->clip;
  if (c->weight_decay > 0) o.weight_decay = c->weight_decay;
  ct_optimizer *opt = NULL;
  OK(ct_optimizer_create(ctx, &o, &opt));
  return opt;
}

/* Every optimizer writes the variable into the application's buffer, at an offset, with the bytes
 * around it untouched, and computes exactly what it computes for a variable of cltape's own. */
Test(interop, every_optimizer_updates_the_application_buffer_in_place) {
  app a = app_open();
  const double w0[NW] = {0.5, -1.0, 1.5, 2.0, -0.5, 0.25};
  const double xs[NW] = {1, 2, -1, 0.5, 3, -2}, ts[NW] = {2, 1, 0, -1, 1.5, 0.5};
  size_t al = a.align, nf = (2 * al) / sizeof(float) + NW + 8;
  float *host = malloc(nf * sizeof(float));
  cr_assert(host);
  ct_tensor *x = ts_tensor(a.ctx, CT_FLOAT32, 1, (int64_t[]){NW}, xs);
  ct_tensor *t = ts_tensor(a.ctx, CT_FLOAT32, 1, (int64_t[]){NW}, ts);
  ct_tensor *init = ts_tensor(a.ctx, CT_FLOAT32, 1, (int64_t[]){NW}, w0);
  for (size_t c = 0; c < sizeof OPT_CASES / sizeof *OPT_CASES; ++c) {
    const opt_case *oc = &OPT_CASES[c];
    for (size_t i = 0; i < nf; ++i) host[i] = -7.0f; /* sentinels around the weights */
    for (int i = 0; i < NW; ++i) host[al / sizeof(float) + i] = (float)w0[i];
    cl_mem m = app_buffer(&a, nf * sizeof(float), host);
    ct_tensor *w = NULL, *ref = NULL;
    OK(ct_variable_from_cl_mem(a.ctx, m, al, CT_FLOAT32, 1, (int64_t[]){NW}, "w", true, &w));
    cr_assert(ct_tensor_is_variable(w) && ct_variable_trainable(w));
    cr_assert_str_eq(ct_variable_name(w), "w:0");
    OK(ct_variable_create(init, "ref", true, &ref));
    cl_mem storage = NULL, now = NULL;
    OK(ct_tensor_cl_mem(w, &storage));
    ct_optimizer *opt = make_opt(a.ctx, oc), *opt_ref = make_opt(a.ctx, oc);
    for (int step = 0; step < 3; ++step) {
      ct_tensor *g = loss_grad(w, x, t, NULL), *gr = loss_grad(ref, x, t, NULL);
      OK(ct_optimizer_apply(opt, &g, &w, 1));
      OK(ct_optimizer_apply(opt_ref, &gr, &ref, 1));
      ct_tensor_free(g);
      ct_tensor_free(gr);
      OK(ct_tensor_cl_mem(w, &now));
      cr_assert_eq(now, storage, "[%s] the variable's storage must stay the application's buffer", oc->name);
      float got[NW];
      app_read_after_cltape(&a, m, al, got, NW);
      double want[NW];
      OK(ct_tensor_read_f64(ref, want, NW));
      for (int i = 0; i < NW; ++i) {
        cr_assert_eq((double)got[i], want[i], "[%s] step %d: w[%d] = %.9g in the application's buffer, %.9g for "
                     "cltape's own variable", oc->name, step, i, got[i], want[i]);
        if (step == 0) cr_assert_neq((double)got[i], w0[i], "[%s] w[%d] did not move", oc->name, i);
      }
    }
    float *all = malloc(nf * sizeof(float));
    cr_assert(all);
    app_read_after_cltape(&a, m, 0, all, nf);
    for (size_t i = 0; i < nf; ++i)
      if (i < al / sizeof(float) || i >= al / sizeof(float) + NW)
        cr_assert_eq(all[i], -7.0f, "[%s] byte %zu outside the variable was written", oc->name, i * sizeof(float));
    free(all);
    ct_optimizer_free(opt);
    ct_optimizer_free(opt_ref);
    ct_tensor_free(w);
    ct_tensor_free(ref);
    clReleaseMemObject(m);
  }
  ct_tensor *rest[] = {x, t, init};
  ct_tensor_free_n(rest, 3);
  free(host);
  app_close(&a);
}

/* Snapshots and tape records of the variable keep the value they saw, while the update goes to
 * the application's buffer; assignments write it in place too; the device memory of the copies
 * goes back when they do. */
Test(interop, in_place_updates_keep_snapshots_and_tape_records) {
  app a = app_open();
  const float w0[3] = {1, 2, 3};
  cl_mem m = app_buffer(&a, sizeof w0, w0);
  ct_context_stats st0, st1;
  OK(ct_context_stats_get(a.ctx, &st0));
  ct_tensor *w = NULL, *snap = NULL, *x = NULL;
  OK(ct_variable_from_cl_mem(a.ctx, m, 0, CT_FLOAT32, 1, (int64_t[]){3}, NULL, true, &w));
  cr_assert_str_eq(ct_variable_name(w), "Variable:0");
  OK(ct_variable_value(w, &snap));
  x = ts_tensor(a.ctx, CT_FLOAT32, 1, (int64_t[]){3}, (double[]){1, 1, 1});
  /* a persistent tape keeps its record of w (the value the gradient of w * w reads) */
  ct_tape *tape = NULL;
  ct_tape_options to = ct_tape_default_options();
  to.persistent = true;
  ct_tensor *sq = NULL, *l = NULL, *g = NULL, *g2 = NULL, *p = NULL;
  OK(ct_tape_begin(a.ctx, &to, &tape));
  OK(ct_square(w, &sq));
  OK(ct_sum(sq, NULL, 0, false, &l));
  OK(ct_tape_end(tape));
  OK(ct_tape_gradient1(tape, l, w, &g));
  ts_assert_close(g, (double[]){2, 4, 6}, 3, 0, 0, "gradient");
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  o.learning_rate = 0.25;
  ct_optimizer *opt = NULL;
  OK(ct_optimizer_create(a.ctx, &o, &opt));
  OK(ct_optimizer_apply(opt, &g, &w, 1));
  float got[3];
  app_read_after_cltape(&a, m, 0, got, 3);
  cr_assert(got[0] == 0.5f && got[1] == 1.0f && got[2] == 1.5f, "in place: %g %g %g", got[0], got[1], got[2]);
  cl_mem sm = NULL, wm = NULL;
  OK(ct_tensor_cl_mem(snap, &sm));
  OK(ct_tensor_cl_mem(w, &wm));
  cr_assert(wm == m && sm != m, "the variable keeps the application's buffer, the snapshot moved to a copy");
  ts_assert_close(snap, (double[]){1, 2, 3}, 3, 0, 0, "the snapshot keeps the value it saw");
  ts_assert_close(w, (double[]){0.5, 1, 1.5}, 3, 0, 0, "the variable reads its new value");
  /* the tape's record of w is the value it saw: the gradient it gives again is the first one */
  OK(ct_tape_gradient1(tape, l, w, &g2));
  ts_assert_close(g2, (double[]){2, 4, 6}, 3, 0, 0, "gradient from the tape after the update");
  ct_tape_free(tape);
  ct_tensor_free(g);
  /* assignments: into the buffer, never a new storage */
  ct_tensor *v = ts_tensor(a.ctx, CT_FLOAT32, 1, (int64_t[]){3}, (double[]){4, 5, 6});
  OK(ct_variable_assign(w, v));
  app_read_after_cltape(&a, m, 0, got, 3);
  cr_assert(got[0] == 4 && got[1] == 5 && got[2] == 6, "assign: %g %g %g", got[0], got[1], got[2]);
  ct_tensor *s2 = NULL;
  OK(ct_variable_value(w, &s2));
  OK(ct_variable_assign_add(w, v));
  app_read_after_cltape(&a, m, 0, got, 3);
  cr_assert(got[0] == 8 && got[1] == 10 && got[2] == 12, "assign_add: %g %g %g", got[0], got[1], got[2]);
  ts_assert_close(s2, (double[]){4, 5, 6}, 3, 0, 0, "a snapshot taken before assign_add");
  OK(ct_variable_assign_sub(w, x));
  ct_tensor *scalar = ts_tensor(a.ctx, CT_FLOAT32, 0, NULL, (double[]){-1});
  app_read_after_cltape(&a, m, 0, got, 3);
  cr_assert(got[0] == 7 && got[1] == 9 && got[2] == 11, "assign_sub: %g %g %g", got[0], got[1], got[2]);
  OK(ct_variable_assign(w, scalar)); /* broadcast */
  app_read_after_cltape(&a, m, 0, got, 3);
  cr_assert(got[0] == -1 && got[1] == -1 && got[2] == -1, "assign of a scalar: %g %g %g", got[0], got[1], got[2]);
  OK(ct_tensor_cl_mem(w, &wm));
  cr_assert_eq(wm, m);
  /* the application writes its buffer: the variable reads the new value */
  const float mine[3] = {3, 3, 3};
  cr_assert_eq(clEnqueueWriteBuffer(a.queue, m, CL_TRUE, 0, sizeof mine, mine, 0, NULL, NULL), CL_SUCCESS);
  OK(ct_mul(w, w, &p));
  ts_assert_close(p, (double[]){9, 9, 9}, 3, 0, 0, "after the application's write");
  ct_tensor *all[] = {snap, x, v, s2, scalar, p, sq, l, g2};
  ct_tensor_free_n(all, (int)(sizeof all / sizeof *all));
  ct_optimizer_free(opt);
  ct_tensor_free(w);
  OK(ct_context_stats_get(a.ctx, &st1));
  cr_assert_eq(st1.bytes_in_use, st0.bytes_in_use, "device bytes in use: %llu, were %llu",
               (unsigned long long)st1.bytes_in_use, (unsigned long long)st0.bytes_in_use);
  clReleaseMemObject(m);
  app_close(&a);
}

/* ---- ownership -------------------------------------------------------------------------------- */
/* Who holds which reference: the counts the application sees before, during and after. */
Test(interop, ownership_of_buffers_events_context_and_queue) {
  app a = app_open();
  ct_context_free(a.ctx); /* counted from before cltape's context */
  a.ctx = NULL;
  cl_uint c0 = ts_ctx_refs(a.context), q0 = ts_queue_refs(a.ct_queue), aq0 = ts_queue_refs(a.queue);
  OK(ct_context_create_from_cl(a.context, a.device, a.ct_queue, &a.ctx));
  cr_assert_gt(ts_ctx_refs(a.context), c0, "the context retains the cl_context");
  cr_assert_eq(ts_queue_refs(a.ct_queue), q0 + 1, "the context retains its queue once");
  cr_assert_eq(ts_queue_refs(a.queue), aq0, "the application's other queue is not cltape's");
  size_t al = a.align;
  float *host = calloc(2 * al / sizeof(float) + 4, sizeof(float));
  cr_assert(host);
  cl_mem m = app_buffer(&a, 2 * al + 4 * sizeof(float), host);
  cr_assert_eq(ts_mem_refs(m), 1);
  /* a tensor at offset 0 holds one reference to the buffer; ct_tensor_cl_mem lends it */
  ct_tensor *t = NULL, *tv = NULL, *w = NULL;
  OK(ct_tensor_from_cl_mem(a.ctx, m, CT_FLOAT32, 1, (int64_t[]){4}, &t));
  cr_assert_eq(ts_mem_refs(m), 2);
  cl_mem lent = NULL;
  OK(ct_tensor_cl_mem(t, &lent));
  cr_assert_eq(ts_mem_refs(m), 2, "ct_tensor_cl_mem lends, it does not retain");
  /* at an offset: a reference to the buffer, and cltape's sub-buffer (which an implementation may
   * count against its parent too) */
  OK(ct_tensor_from_cl_mem_offset(a.ctx, m, al, CT_FLOAT32, 1, (int64_t[]){4}, &tv));
  cr_assert_geq(ts_mem_refs(m), 3);
  cl_mem sub = NULL;
  OK(ct_tensor_cl_mem(tv, &sub));
  cr_assert_eq(ts_mem_refs(sub), 1, "cltape holds the only reference to its sub-buffer");
  /* a variable in the buffer: the same */
  OK(ct_variable_from_cl_mem(a.ctx, m, 2 * al, CT_FLOAT32, 1, (int64_t[]){4}, "w", true, &w));
  const cl_uint during = ts_mem_refs(m);
  cr_assert_geq(during, 4);
  /* the application lets its own reference go: cltape's keep the buffer alive and usable */
  clReleaseMemObject(m);
  ct_tensor *y = NULL;
  OK(ct_add(t, tv, &y));
  ts_assert_close(y, (double[]){0, 0, 0, 0}, 4, 0, 0, "through a buffer the application released");
  OK(ct_variable_assign(w, y));
  ts_assert_close(w, (double[]){0, 0, 0, 0}, 4, 0, 0, "assigned");
  /* events: the application owns cltape's, with one reference; it lends its own for the call */
  cl_event mine = NULL, theirs = NULL;
  cl_int err;
  float one = 1;
  cl_mem other = app_buffer(&a, sizeof one, &one);
  cr_assert_eq(clEnqueueWriteBuffer(a.queue, other, CL_FALSE, 0, sizeof one, &one, 0, NULL, &mine), CL_SUCCESS);
  cr_assert_eq(clWaitForEvents(1, &mine), CL_SUCCESS);
  const cl_uint mine0 = TS_SETTLE(ts_event_refs(mine), 1u);
  OK(ct_context_wait_cl_events(a.ctx, 1, &mine));
  OK(ct_context_cl_event(a.ctx, &theirs));
  cr_assert_eq(clWaitForEvents(1, &theirs), CL_SUCCESS);
  OK(ct_context_sync(a.ctx));
  cr_assert_eq(TS_SETTLE(ts_event_refs(theirs), 1u), 1, "the application holds the only reference to cltape's event");
  cr_assert_eq(TS_SETTLE(ts_event_refs(mine), mine0), mine0, "cltape holds no reference to the application's event");
  clReleaseEvent(theirs);
  clReleaseEvent(mine);
  clReleaseMemObject(other);
  (void)err;
  /* the tensors go: so do their references (the sub-buffer's included) */
  clRetainMemObject(m); /* to count it: the application's reference again */
  ct_tensor *all[] = {t, tv, w, y};
  ct_tensor_free_n(all, 4);
  /* the context goes: so do its references to the cl_context and the queue, once the driver
   * dropped those of finished commands (and rusticl those of the kernels' arguments) */
  ct_context_free(a.ctx);
  a.ctx = NULL;
  clFinish(a.ct_queue);
  clFinish(a.queue);
  cr_assert_eq(TS_SETTLE(ts_mem_refs(m), 1u), 1, "every reference cltape took to the buffer was released (%u left)",
               ts_mem_refs(m));
  /* (PoCL's buffers hold the cl_context and the queue that last used them: counted once gone) */
  clReleaseMemObject(m);
  cr_assert_eq(TS_SETTLE(ts_queue_refs(a.ct_queue), q0), q0, "the queue reference was released (%u, was %u)",
               ts_queue_refs(a.ct_queue), q0);
  cr_assert_eq(TS_SETTLE(ts_ctx_refs(a.context), c0), c0, "the cl_context references were released (%u, was %u)",
               ts_ctx_refs(a.context), c0);
  free(host);
  clReleaseCommandQueue(a.ct_queue);
  clReleaseCommandQueue(a.queue);
  clReleaseContext(a.context);
}
