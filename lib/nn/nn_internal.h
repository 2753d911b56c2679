/* nn_internal.h — private declarations shared by the files of lib/nn (modules, layers, optimizers,
 * checkpoints). No OpenCL here either. */
#ifndef CT_NN_INTERNAL_H
#define CT_NN_INTERNAL_H
#include "ct_internal.h"
#include "cltape_nn.h"
#include "formats/npy.h"

/* ---- modules ------------------------------------------------------------------------------ */
typedef struct {
  const char *kind;  /* "Dense", ... */
  const char *base;  /* automatic name: "dense", ... */
  /* forward with the module's variables taken from params (its own, in creation order) */
  ct_status (*forward)(ct_module *m, ct_tensor *const *params, const ct_tensor *x, bool training, ct_tensor **out);
  /* one line of configuration for the summary */
  void (*describe)(const ct_module *m, char *buf, size_t cap);
  void (*set_seed)(ct_module *m, uint64_t seed);
  void (*free_state)(void *state);
} ct_module_vtable;

#define CT_MODULE_MAGIC CT_HANDLE_TAG(CT_HANDLE_MODULE)

struct ct_module {
  uint32_t magic;
  int32_t refs;
  ct_context *ctx;
  char *name;
  const ct_module_vtable *vt;
  bool transparent; /* Sequential: does not prefix its children's variable names */
  ct_module *parent;
  ct_tensor **vars; /* own variables, creation order */
  int nvars, capvars;
  ct_module **children;
  int nchildren, capchildren;
  void *state; /* the layer's configuration */
  ct_module_forward_fn user_forward;
  void *user;
  /* set during ct_module_call_with: the replacement of each own variable */
  ct_tensor *const *override;
};

ct_status ct__module_new(ct_context *ctx, const ct_module_vtable *vt, const char *name, void *state, ct_module **out);
ct_status ct__module_check(const ct_module *m, const char *fn);
/* relu(x kernel + bias) (or without ReLU) as one op, MatMulBiasRelu / MatMulBiasAdd (dense_fused.c):
 * x [M, K], kernel [K, N], bias [N] */
ct_status ct__dense_bias_act(const ct_tensor *x, const ct_tensor *kernel, const ct_tensor *bias, bool relu,
                             ct_tensor **out);
/* relu(conv2d(x, filter) + bias) (or without ReLU) as one op, Conv2DBiasRelu / Conv2DBiasAdd
 * (ops_nn.c): strides and padding as ct_conv2d's, bias [OC] */
ct_status ct__conv2d_bias_act(const ct_tensor *x, const ct_tensor *filter, const ct_tensor *bias, const int *strides,
                              ct_padding padding, bool relu, ct_tensor **out);
/* The gradients of the fused bias rows (dense_fused.c): dz, the gradient before the bias (dy times
 * sign(y) after ReLU), and the bias's gradient from it. */
ct_status ct__bias_act_dz(const ct_gctx *g, const ct_tensor *dy, ct_tensor **dz);
ct_status ct__bias_grad(const ct_tensor *dz, ct_tensor **db);
/* Whether Conv2DBackpropFilterBias(x, dy) (attrs: the filter's window) runs as one launch here. */
bool ct__conv2d_bp_filter_bias_fuses(const ct_tensor *x, const ct_tensor *dy, const ct_attrs *at);
/* The tensors the forward must use for the module's own variables (overrides or variables). */
ct_tensor *const *ct__module_params(const ct_module *m);
/* Mixes two 64-bit values into a seed (splitmix64 finaliser). */
uint64_t ct__mix64(uint64_t a, uint64_t b);
/* FNV-1a of a string. */
uint64_t ct__hash_str(const char *s);

/* ---- layers (layers.c), for the layers of other files ------------------------------------------ */
/* CT_OK, or CT_ERR_DTYPE / CT_ERR_INVALID for a variable dtype or an initializer a layer cannot use. */
ct_status ct__layer_check_options(ct_context *ctx, const ct_layer_options *o, const char *fn);
/* Adds variable `local` to m, filled by `init`; its seed comes from o->seed and the local name, or
 * from the variable's full name when o->seed is 0. */
ct_status ct__layer_add_variable(ct_module *m, const ct_layer_options *o, const char *local, ct_initializer init,
                                 int rank, const int64_t *shape);

/* ---- .npy arrays (npy_io.c) ------------------------------------------------------------------ */
/* The first `count` elements of x as dtype, value * scale + offset, in a new host buffer (*out, to
 * free). A result that int32 cannot hold exactly is refused with status `bad` and a message naming
 * `what`, the element, its .npy dtype and its value. */
ct_status ct__npy_convert(ct_context *ctx, ct_status bad, const ct_npy *x, size_t count, ct_dtype dtype, double scale,
                          double offset, const char *what, void **out);
/* Reads n arrays of the .npz archive at path into arrays[0..n) (free each with ct_npy_free); on
 * error none is left and the message names the file and the array. */
ct_status ct__npz_read(ct_context *ctx, const char *path, int n, const char *const *names, ct_npy *arrays);

/* ---- optimizers (for checkpoints) ------------------------------------------------------------ */
/* Slot names of the optimizer kind ("m", "v" / "momentum"), count 0..2. */
int ct__optimizer_slot_names(const ct_optimizer *opt, const char **names);
/* The slot tensors of variable id (NULL when the variable was never updated). */
ct_status ct__optimizer_slots(const ct_optimizer *opt, uint64_t var_id, ct_tensor **slots);
/* Makes sure variable id has a slot record, so that ct__optimizer_set_slots cannot fail for it. */
ct_status ct__optimizer_reserve(ct_optimizer *opt, uint64_t var_id);
/* CT_OK, or CT_ERR_NULL / CT_ERR_INVALID naming what is wrong with the schedule. */
ct_status ct__lr_schedule_check(ct_context *ctx, const ct_lr_schedule *s, const char *fn);
/* Installs slot values for a variable (takes the references; NULL clears). */
ct_status ct__optimizer_set_slots(ct_optimizer *opt, uint64_t var_id, ct_tensor **slots);
void ct__optimizer_set_iterations(ct_optimizer *opt, int64_t t);
/* The variable takes over storage buf (same size); the old one is released. */
void ct__variable_swap_storage(ct_tensor *var, ct_tensor *value);

/* ---- attention (transformer.c, attention.c) ---------------------------------------------------- */
/* softmax(q k^T * scale (+ the causal bias)) over the last axis, made of rows */
ct_status ct__attention_probs(const ct_tensor *q, const ct_tensor *k, bool causal, double scale, ct_tensor **out);
/* Whether ct_scaled_dot_product_attention runs the fused row for these checked operands:
 * CLTAPE_ATTENTION=fused (an error where it cannot), =composed (never), else where it measured
 * faster. */
ct_status ct__attention_choose(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v, bool causal, bool *fused);
/* The fused row FusedAttention. */
ct_status ct__attention_fused(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v, bool causal, double scale,
                              ct_tensor **out);

#endif
