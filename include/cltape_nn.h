/*
 * cltape_nn.h — training neural networks with cltape: modules and layers, initializers, losses
 * and metrics, optimizers, checkpoints and an IDX data loader.
 *
 * The conventions of cltape.h hold here too: every fallible function returns a ct_status with
 * its message in ct_errmsg(); results come back through the last (out) parameters, set to NULL
 * on error; inputs are borrowed; handles are released with their *_free function, which accepts
 * NULL. In addition:
 *
 *  - Images are NHWC ([batch, height, width, channels]) and convolution filters HWIO
 *    ([kernel height, kernel width, input channels, output channels]), as in TensorFlow.
 *  - A module is a reference-counted handle that owns variables and child modules. Variables
 *    are named "<layer>/<variable>:0" ("dense/kernel:0"); automatic layer names are made unique
 *    process wide, the Keras way: the first Dense is "dense", the second "dense_1".
 *  - Everything runs on the device of the context. Nothing here waits for the device except
 *    what reads data back to the host (checkpoint saving, ct_tensor_item on a loss, ...), so a
 *    training step can be enqueued without synchronising.
 *  - Random numbers (initializers, dropout, shuffling) come from the counter-based Philox
 *    generator: the same seed gives the same values on every device.
 *
 * A training step:
 *
 *     ct_tape *tape;
 *     ct_tape_begin(ctx, NULL, &tape);
 *     ct_module_call(model, images, true, &logits);
 *     ct_softmax_cross_entropy(logits, labels, &loss);
 *     ct_tape_end(tape);
 *     int n; ct_module_trainable_variables(model, vars, 64, &n);
 *     ct_tape_gradient(tape, &loss, 1, vars, n, NULL, CT_UNCONNECTED_NONE, grads);
 *     ct_optimizer_apply(opt, grads, vars, n);
 */
/** \file cltape_nn.h
 *  \brief Training neural networks: modules and layers, initializers, losses and metrics, optimizers, checkpoints and an IDX data loader. */
#ifndef CLTAPE_NN_H
#define CLTAPE_NN_H

#include "cltape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Neural-network ops. Recorded by tapes like every op of cltape.h, with their own gradients.
 * ------------------------------------------------------------------------------------------- */
/** Padding of convolution and pooling windows. */
typedef enum {
  CT_PADDING_VALID = 0, /**< no padding: out = floor((in - window) / stride) + 1 */
  CT_PADDING_SAME = 1   /**< zero padding (ignored by pooling): out = ceil(in / stride), the
                             extra row/column of an odd total padding goes after (bottom/right) */
} ct_padding;

/** 2-D convolution (cross-correlation, as in every deep-learning library): x [N, H, W, C],
 *  filter [KH, KW, C, OC] -> [N, OH, OW, OC]. strides = {height, width}, each >= 1 (NULL: 1, 1).
 *  Both float32 or both float64. Errors: CT_ERR_SHAPE (ranks, channel counts, a VALID window
 *  larger than the image), CT_ERR_DTYPE, CT_ERR_INVALID (stride or padding). */
CT_API ct_status ct_conv2d(const ct_tensor *x, const ct_tensor *filter, const int *strides, ct_padding padding,
                           ct_tensor **out);
/** Max pooling of x [N, H, W, C] over windows pool = {height, width} moved by strides (NULL:
 *  the pool size). Padded positions never win. The gradient goes to the first maximum of each
 *  window (row-major order). */
CT_API ct_status ct_max_pool2d(const ct_tensor *x, const int *pool, const int *strides, ct_padding padding,
                               ct_tensor **out);
/** Average pooling; with CT_PADDING_SAME the mean is over the window's valid (unpadded) part. */
CT_API ct_status ct_avg_pool2d(const ct_tensor *x, const int *pool, const int *strides, ct_padding padding,
                               ct_tensor **out);
/** Inverted dropout: each element is zeroed with probability `rate` (0 <= rate < 1) and the kept
 *  ones are scaled by 1 / (1 - rate). The mask is a function of (seed, element index) only
 *  (Philox-4x32-10 with counter = index, key = seed, kept when the first word is >= rate * 2^32):
 *  the same seed gives the same mask on every device. The gradient applies the same mask. */
CT_API ct_status ct_dropout(const ct_tensor *x, double rate, uint64_t seed, ct_tensor **out);
/** Softmax cross-entropy from logits [..., C] and int32 labels [...] (the leading shape of the
 *  logits), per example: logsumexp(logits) - logits[label], computed stably in one kernel; its
 *  gradient with respect to the logits is dy * (softmax(logits) - one_hot(label)), also one
 *  kernel. A label outside [0, C) gives NaN for that example (labels are not read back to the
 *  host). Labels get no gradient. */
CT_API ct_status ct_sparse_softmax_cross_entropy(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out);

/** x [..., C] + bias [C], broadcast over every other axis (one kernel; its gradient for the bias
 *  is one reduction kernel). Same float dtype. */
CT_API ct_status ct_bias_add(const ct_tensor *x, const ct_tensor *bias, ct_tensor **out);

/** Activation function of a layer (ct_activate). */
typedef enum {
  CT_ACTIVATION_NONE = 0, /**< identity */
  CT_ACTIVATION_RELU,
  CT_ACTIVATION_SIGMOID,
  CT_ACTIVATION_TANH,
  CT_ACTIVATION_SOFTMAX, /**< over the last axis */
  CT_ACTIVATION_GELU,
  CT_ACTIVATION_ELU,
  CT_ACTIVATION_SOFTPLUS
} ct_activation;
/** "none", "relu", "sigmoid", ...; "?" for a value outside the enum. */
CT_API const char *ct_activation_name(ct_activation a);
/** Applies an activation. CT_ACTIVATION_NONE returns a new reference to x itself. */
CT_API ct_status ct_activate(const ct_tensor *x, ct_activation activation, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Initializers. Fans of a shape: rank 2 [in, out] -> (in, out); rank >= 3 (a filter
 * [KH, KW, ..., C, OC]) -> (C * receptive field, OC * receptive field); rank 1 -> (n, n);
 * rank 0 -> (1, 1).
 *   GLOROT_UNIFORM  U(-l, l), l = sqrt(6 / (fan_in + fan_out))
 *   GLOROT_NORMAL   N(0, s),  s = sqrt(2 / (fan_in + fan_out))
 *   HE_UNIFORM      U(-l, l), l = sqrt(6 / fan_in)
 *   HE_NORMAL       N(0, s),  s = sqrt(2 / fan_in)
 * (plain, not truncated, normal distributions). Values are computed on the host from the seed
 * and are bit-identical on every device.
 * ------------------------------------------------------------------------------------------- */
/** Initializer of a tensor (ct_initialize); the formulas are in the comment above it in cltape_nn.h. */
typedef enum {
  CT_INIT_ZEROS = 0,
  CT_INIT_ONES,
  CT_INIT_GLOROT_UNIFORM,
  CT_INIT_GLOROT_NORMAL,
  CT_INIT_HE_UNIFORM,
  CT_INIT_HE_NORMAL
} ct_initializer;
/** The fans of a shape as defined above. Errors: CT_ERR_NULL, CT_ERR_SHAPE. */
CT_API ct_status ct_initializer_fans(int rank, const int64_t *shape, double *fan_in, double *fan_out);
/** A new tensor of the given float dtype and shape filled by `init` from `seed`. */
CT_API ct_status ct_initialize(ct_context *ctx, ct_initializer init, ct_dtype dtype, int rank, const int64_t *shape,
                               uint64_t seed, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Modules: objects that own variables and child modules, and map one input tensor to one output.
 *
 * Names. A module has a name, unique among automatically named modules of the process ("dense",
 * "dense_1", ...; ct_reset_module_names() starts the counters again). A variable added to a
 * module is named "<module>/<name>:0". When a module is added as a child of a named module
 * (ct_module_create), the names of every variable below it get "<parent>/" in front
 * ("block/dense/kernel:0"); a Sequential container adds nothing, as in Keras, so the layers of a
 * Sequential keep "dense/kernel:0", "dense_1/kernel:0".
 *
 * Order. ct_module_variables lists a module's own variables in creation order, then each child's,
 * depth first, in the order the children were added. The order is stable: the same model built
 * the same way lists the same variables in the same order.
 *
 * Freezing. A variable that is not trainable is neither listed by
 * ct_module_trainable_variables nor watched automatically by tapes (its gradient is NULL).
 * ------------------------------------------------------------------------------------------- */
/** A module: owns variables and child modules, maps one input tensor to one output. */
typedef struct ct_module ct_module;

/** Forward function of a user-defined module: computes *out from x with ct_ ops, usually by
 *  calling its children with ct_module_call. `training` selects the training behaviour of
 *  layers such as Dropout. Returns a status like any library function. */
typedef ct_status (*ct_module_forward_fn)(ct_module *self, const ct_tensor *x, bool training, ct_tensor **out,
                                          void *user);

/** Creates a user-defined module named `name` (NULL: "module", made unique) whose forward is
 *  `forward` (may be NULL for a pure container; calling it is then CT_ERR_INVALID). `user` is
 *  passed to forward. The caller owns the returned reference. */
CT_API ct_status ct_module_create(ct_context *ctx, const char *name, ct_module_forward_fn forward, void *user,
                                  ct_module **out);
/** Adds a variable holding a copy of `initial`, named "<module path>/<name>:0", owned by the
 *  module. *var (may be NULL) receives a borrowed pointer, valid while the module lives.
 *  Errors: CT_ERR_INVALID for an empty name or one already used in this module. */
CT_API ct_status ct_module_add_variable(ct_module *m, const ct_tensor *initial, const char *name, bool trainable,
                                        ct_tensor **var);
/** The tensor a forward function must use for the module's own variable i (creation order,
 *  borrowed): the variable itself, or its replacement during ct_module_call_with. NULL when i is
 *  out of range. */
CT_API ct_tensor *ct_module_own_variable(const ct_module *m, int i);
/** Makes `child` the next child of `parent` (taking a reference; the caller keeps its own).
 *  A module has at most one parent and cannot contain itself (CT_ERR_INVALID). Both must belong
 *  to the same context (CT_ERR_CONTEXT). Renames the child's variables as described above. */
CT_API ct_status ct_module_add(ct_module *parent, ct_module *child);
/** Runs the module's forward on x. *out is a new tensor. */
CT_API ct_status ct_module_call(ct_module *m, const ct_tensor *x, bool training, ct_tensor **out);
/** Functional call: runs the forward with the module's variables replaced, for this call only,
 *  by `params` (one tensor per variable, in ct_module_variables order, same shapes and dtypes;
 *  plain tensors are fine). The gradient then flows to params, which lets ct_gradcheck check a
 *  whole layer or model. Errors: CT_ERR_INVALID (count), CT_ERR_SHAPE, CT_ERR_DTYPE. */
CT_API ct_status ct_module_call_with(ct_module *m, const ct_tensor *x, ct_tensor *const *params, int n_params,
                                     bool training, ct_tensor **out);
/** Every variable of the module and its children (order above). Writes at most cap borrowed
 *  pointers to out (NULL allowed when cap is 0) and the total to *count. */
CT_API ct_status ct_module_variables(const ct_module *m, ct_tensor **out, int cap, int *count);
/** The trainable ones, in the same order. */
CT_API ct_status ct_module_trainable_variables(const ct_module *m, ct_tensor **out, int cap, int *count);
/** The variable with this full name ("dense/kernel:0"; the ":0" may be left out), or NULL. */
CT_API ct_tensor *ct_module_find_variable(const ct_module *m, const char *name);
/** Makes every variable of the module and its children trainable or frozen. */
CT_API ct_status ct_module_set_trainable(ct_module *m, bool trainable);
/** Sets the seed of every random layer below m (Dropout) and restarts its sequence of masks. */
CT_API ct_status ct_module_set_seed(ct_module *m, uint64_t seed);
/** Number of parameters (elements of the variables), of the trainable ones only if asked. */
CT_API int64_t ct_module_num_params(const ct_module *m, bool trainable_only);
/** The module's name ("dense_1"; borrowed, valid while m lives), NULL for NULL or a freed module. */
CT_API const char *ct_module_name(const ct_module *m);
/** "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "Dropout", "Activation", "Sequential",
 *  "LayerNorm", "Embedding", "MultiHeadAttention", "TransformerBlock",
 *  "Module", "LSTM", "GRU". */
CT_API const char *ct_module_kind(const ct_module *m);
/** Number of direct children, -1 for NULL. */
CT_API int ct_module_num_children(const ct_module *m);
/** Child i (borrowed), NULL when out of range. */
CT_API ct_module *ct_module_child(const ct_module *m, int i);
/** Writes a table of the module's layers, their configuration and parameter counts to f. */
CT_API ct_status ct_module_summary(const ct_module *m, FILE *f);
/** Adds a reference and returns m. */
CT_API ct_module *ct_module_retain(ct_module *m);
/** Drops a reference; the last one frees the module, its variables and its references to its
 *  children. NULL does nothing. */
CT_API void ct_module_free(ct_module *m);
/** Restarts the process-wide counters of automatic module names (Keras' clear_session). */
CT_API void ct_reset_module_names(void);

/* ---------------------------------------------------------------------------------------------
 * Layers. Each is a module; ct_module_call runs it.
 * ------------------------------------------------------------------------------------------- */
/** Options of the layers with variables (Dense, Conv2D); ct_layer_default_options() fills them. */
typedef struct {
  const char *name;                   /**< NULL: automatic ("dense", "dense_1", ...) */
  ct_dtype dtype;                     /**< of the variables: CT_FLOAT32 (default) or CT_FLOAT64 */
  bool use_bias;                      /**< default true */
  ct_initializer kernel_initializer;  /**< default CT_INIT_GLOROT_UNIFORM */
  ct_initializer bias_initializer;    /**< default CT_INIT_ZEROS */
  uint64_t seed;                      /**< 0: derived from the variable's full name */
} ct_layer_options;
/** The defaults above. */
CT_API ct_layer_options ct_layer_default_options(void);

/** Dense: y = activation(x @ kernel + bias), x [..., in_features], kernel [in_features, units]
 *  ("kernel"), bias [units] ("bias"). opts may be NULL (defaults). */
CT_API ct_status ct_dense_create(ct_context *ctx, int64_t in_features, int64_t units, ct_activation activation,
                                 const ct_layer_options *opts, ct_module **out);
/** Conv2D: y = activation(conv2d(x, kernel) + bias), x [N, H, W, in_channels], kernel
 *  [KH, KW, in_channels, filters], bias [filters]. kernel_size = {KH, KW}; strides may be NULL
 *  (1, 1). */
CT_API ct_status ct_conv2d_create(ct_context *ctx, int64_t in_channels, int64_t filters, const int *kernel_size,
                                  const int *strides, ct_padding padding, ct_activation activation,
                                  const ct_layer_options *opts, ct_module **out);
/** MaxPool2D / AvgPool2D ("max_pooling2d", "average_pooling2d"): strides NULL = pool size. name
 *  may be NULL. No variables. */
CT_API ct_status ct_max_pool2d_create(ct_context *ctx, const int *pool_size, const int *strides, ct_padding padding,
                                      const char *name, ct_module **out);
/** AvgPool2D; arguments as ct_max_pool2d_create. */
CT_API ct_status ct_avg_pool2d_create(ct_context *ctx, const int *pool_size, const int *strides, ct_padding padding,
                                      const char *name, ct_module **out);
/** Flatten: [N, ...] -> [N, product of the rest]. */
CT_API ct_status ct_flatten_create(ct_context *ctx, const char *name, ct_module **out);
/** Dropout with rate in [0, 1). In training calls the k-th call (k = 0, 1, ...) uses the mask of
 *  ct_dropout with a seed mixed from (seed, k); in inference calls it is the identity. */
CT_API ct_status ct_dropout_create(ct_context *ctx, double rate, uint64_t seed, const char *name, ct_module **out);
/** Activation ("activation"): applies `activation` to its input. With ReLU after a max pooling
 *  instead of before it (the same function: ReLU is monotonic), a convolutional model applies it
 *  to a quarter of the values. No variables. */
CT_API ct_status ct_activation_create(ct_context *ctx, ct_activation activation, const char *name, ct_module **out);
/** Sequential container ("sequential"): calls its children in the order they were added. */
CT_API ct_status ct_sequential_create(ct_context *ctx, const char *name, ct_module **out);
/** Appends a layer to a Sequential (ct_module_add with the same rules). */
CT_API ct_status ct_sequential_add(ct_module *seq, ct_module *layer);

/* ---------------------------------------------------------------------------------------------
 * Recurrent layers: LSTM and GRU over inputs [batch, time, features], with Keras' conventions
 * (tf.keras.layers.LSTM / GRU, activation tanh, recurrent activation sigmoid, zero initial
 * states). Each time step is composed of ops (matmul, add, split, sigmoid, tanh, mul): the tape
 * records the unrolled steps, so gradients are backpropagation through time. The input
 * projection of all time steps is one matrix product.
 *
 * LSTM: kernel [F, 4H], recurrent_kernel [H, 4H], bias [4H], the gates in the order i, f, c, o:
 *   z = x_t kernel + h recurrent_kernel + bias;  i, f, c~, o = split(z)
 *   c' = sigmoid(f) * c + sigmoid(i) * tanh(c~);  h' = sigmoid(o) * tanh(c')
 * GRU: kernel [F, 3H], recurrent_kernel [H, 3H], the gates in the order z, r, h~.
 *   reset_after (Keras 2's default, cuDNN's form), bias [2, 3H] = (input bias, recurrent bias):
 *     a = x_t kernel + bias[0];  u = h recurrent_kernel + bias[1]
 *     z = sigmoid(a_z + u_z);  r = sigmoid(a_r + u_r);  n = tanh(a_h + r * u_h)
 *   not reset_after, bias [3H]: a = x_t kernel + bias, U = recurrent_kernel
 *     z = sigmoid(a_z + h U_z);  r = sigmoid(a_r + h U_r);  n = tanh(a_h + (r * h) U_h)
 *   h' = z * h + (1 - z) * n
 * Variables: "<layer>/kernel:0", "<layer>/recurrent_kernel:0", "<layer>/bias:0".
 * ------------------------------------------------------------------------------------------- */
/** Options of ct_lstm_create and ct_gru_create; ct_rnn_default_options() fills them. */
typedef struct {
  const char *name;                     /**< NULL: automatic ("lstm", "gru", "lstm_1", ...) */
  ct_dtype dtype;                       /**< of the variables: CT_FLOAT32 (default) or CT_FLOAT64 */
  bool use_bias;                        /**< default true */
  bool unit_forget_bias;                /**< LSTM: 1 is added to the forget gate's initial bias
                                             (default true, as Keras) */
  bool reset_after;                     /**< GRU: the reset gate multiplies h recurrent_kernel (true,
                                             default, Keras 2) or h before the product (false) */
  ct_initializer kernel_initializer;    /**< default CT_INIT_GLOROT_UNIFORM */
  bool recurrent_orthogonal;            /**< default true: the recurrent kernel starts orthogonal (its
                                             rows orthonormal, Keras' Orthogonal); false:
                                             recurrent_initializer */
  ct_initializer recurrent_initializer; /**< used when recurrent_orthogonal is false; default
                                             CT_INIT_GLOROT_UNIFORM */
  ct_initializer bias_initializer;      /**< default CT_INIT_ZEROS */
  uint64_t seed;                        /**< 0: derived from each variable's full name */
} ct_rnn_options;
/** The defaults above. */
CT_API ct_rnn_options ct_rnn_default_options(void);
/** LSTM ("lstm") of `units` (H) cells over inputs [batch, time, input_size]: the output is the last
 *  state h [batch, units], or every step's h [batch, time, units] when return_sequences. opts may
 *  be NULL (defaults). Calling it with an input of another rank, feature count or no time step
 *  is CT_ERR_SHAPE. Errors: CT_ERR_NULL, CT_ERR_RELEASED, CT_ERR_INVALID (sizes < 1, an unknown
 *  initializer), CT_ERR_DTYPE, CT_ERR_SHAPE (weights too large to count). */
CT_API ct_status ct_lstm_create(ct_context *ctx, int64_t input_size, int64_t units, bool return_sequences,
                                const ct_rnn_options *opts, ct_module **out);
/** GRU ("gru"); arguments, outputs and errors as ct_lstm_create. */
CT_API ct_status ct_gru_create(ct_context *ctx, int64_t input_size, int64_t units, bool return_sequences,
                               const ct_rnn_options *opts, ct_module **out);

/* ---------------------------------------------------------------------------------------------
 * Losses and metrics. All return scalar tensors on the device (no synchronisation); read them
 * with ct_tensor_item when needed.
 * ------------------------------------------------------------------------------------------- */
/** Mean over the examples of ct_sparse_softmax_cross_entropy. */
CT_API ct_status ct_softmax_cross_entropy(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out);
/** mean((pred - target)^2) over every element; shapes must be equal. */
CT_API ct_status ct_mean_squared_error(const ct_tensor *pred, const ct_tensor *target, ct_tensor **out);
/** Number of examples whose argmax over the last axis of logits equals the int32 label: an int32
 *  scalar (add these up over an epoch on the device, read once). */
CT_API ct_status ct_count_correct(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out);
/** Fraction of correct examples as a float32 scalar. */
CT_API ct_status ct_accuracy(const ct_tensor *logits, const ct_tensor *labels, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Optimizers. ct_optimizer_apply updates each variable in place on the device, one kernel per
 * variable, with no host round trip and without recording on tapes. If a variable's storage is
 * still shared (a ct_variable_value snapshot, a persistent tape's saved input), the new value goes
 * to fresh storage instead, so the shared old value stays intact.
 *
 *   SGD       g' = g + weight_decay * p
 *             momentum 0:  p -= lr * g'
 *             else:        v = momentum * v + g';  p -= lr * (nesterov ? g' + momentum * v : v)
 *   ADAM      g' = g + weight_decay * p;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
 *             p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + epsilon)
 *             with t = ct_optimizer_iterations() counting this step (the optimizer's steps, as
 *             Keras counts them: a variable first updated at step t starts its moments at t)
 *   ADAMW     as ADAM with g' = g, after the decoupled decay p -= lr * weight_decay * p
 * With clip_global_norm > 0 every gradient is first multiplied by
 * clip_global_norm / max(global_norm, clip_global_norm), global_norm = sqrt(sum of all g^2),
 * computed on the device.
 * ------------------------------------------------------------------------------------------- */
/** An optimizer: updates variables from their gradients, keeps its slots. */
typedef struct ct_optimizer ct_optimizer;
/** The update rule of an optimizer (SGD, Adam, AdamW); the formulas are in the comment above it in cltape_nn.h. */
typedef enum { CT_OPTIMIZER_SGD = 0, CT_OPTIMIZER_ADAM = 1, CT_OPTIMIZER_ADAMW = 2 } ct_optimizer_kind;
/** Optimizer settings; ct_optimizer_default_options() fills them for a kind. */
typedef struct {
  ct_optimizer_kind kind;  /**< the update rule */
  double learning_rate;    /**< > 0 */
  double momentum;         /**< SGD, in [0, 1) */
  bool nesterov;           /**< SGD with momentum */
  double beta1;            /**< Adam's first-moment decay, in [0, 1) */
  double beta2;            /**< Adam's second-moment decay, in [0, 1) */
  double epsilon;          /**< Adam, > 0 */
  double weight_decay;     /**< >= 0 */
  double clip_global_norm; /**< 0: no clipping */
} ct_optimizer_options;
/** Defaults: SGD lr 0.01, momentum 0; Adam lr 0.001, betas 0.9 / 0.999, epsilon 1e-7, no decay;
 *  AdamW as Adam with weight_decay 0.004; no clipping. */
CT_API ct_optimizer_options ct_optimizer_default_options(ct_optimizer_kind kind);
/** "SGD", "Adam", "AdamW". */
CT_API const char *ct_optimizer_kind_name(ct_optimizer_kind kind);
/** Creates an optimizer. opts may be NULL (Adam defaults). Errors: CT_ERR_INVALID for a value out
 *  of range (the message names it). */
CT_API ct_status ct_optimizer_create(ct_context *ctx, const ct_optimizer_options *opts, ct_optimizer **out);
/** One step: vars[i] -= update(grads[i]). grads[i] may be NULL (that variable is skipped, as a
 *  variable without gradient). Each gradient must have its variable's shape and dtype. Slots
 *  (momentum, m, v) are created at a variable's first update, keyed by the variable. Every
 *  argument is checked before anything is updated. */
CT_API ct_status ct_optimizer_apply(ct_optimizer *opt, ct_tensor *const *grads, ct_tensor *const *vars, int n);
/** Sets the learning rate of the next steps and removes a schedule (ct_optimizer_set_schedule).
 *  Errors: CT_ERR_INVALID unless learning_rate > 0. */
CT_API ct_status ct_optimizer_set_learning_rate(ct_optimizer *opt, double learning_rate);
/** The learning rate of the next step, 0 for NULL. */
CT_API double ct_optimizer_learning_rate(const ct_optimizer *opt);
/** Steps taken (ct_optimizer_apply calls that updated something). */
CT_API int64_t ct_optimizer_iterations(const ct_optimizer *opt);
/** The optimizer's settings (with the current learning rate); zeroes for NULL. */
CT_API ct_optimizer_options ct_optimizer_options_get(const ct_optimizer *opt);
/** Frees the optimizer and its slots (the variables are not touched). NULL does nothing. */
CT_API void ct_optimizer_free(ct_optimizer *opt);

/* Learning-rate schedules, for every optimizer. The rate of step k (k = 0, 1, ... counts the
 * optimizer's steps before it, ct_optimizer_iterations()) is, with lr = learning_rate,
 * W = warmup_steps, N = decay_steps, j = k - W:
 *   k < W         lr * (k + 1) / W                        (linear warmup, any kind)
 *   CONSTANT      lr
 *   STEP          lr * decay_rate^floor(j / N)
 *   EXPONENTIAL   lr * decay_rate^(j / N)
 *   COSINE        min + (lr - min) * (1 + cos(pi * min(j, N) / N)) / 2,  min = min_learning_rate
 * The schedule follows the step count, so a checkpoint restored into the optimizer resumes it. */
/** The formula of a learning-rate schedule after warmup; the formulas are in the comment above it in cltape_nn.h. */
typedef enum { CT_LR_CONSTANT = 0, CT_LR_STEP = 1, CT_LR_EXPONENTIAL = 2, CT_LR_COSINE = 3 } ct_lr_schedule_kind;
/** A learning-rate schedule; ct_lr_schedule_default() fills one. */
typedef struct {
  ct_lr_schedule_kind kind; /**< the formula after warmup */
  double learning_rate;     /**< > 0: the rate after warmup, before any decay */
  int64_t warmup_steps;     /**< >= 0; 0: no warmup */
  int64_t decay_steps;      /**< > 0 (STEP: steps per decay; EXPONENTIAL: steps per factor decay_rate;
                                 COSINE: steps from lr down to min_learning_rate) */
  double decay_rate;        /**< STEP, EXPONENTIAL: in (0, 1] */
  double min_learning_rate; /**< COSINE: in [0, learning_rate] */
} ct_lr_schedule;
/** kind and learning_rate as given, no warmup, decay_steps 1000, decay_rate 0.1 (STEP) or 0.96,
 *  min_learning_rate 0. */
CT_API ct_lr_schedule ct_lr_schedule_default(ct_lr_schedule_kind kind, double learning_rate);
/** The rate of step `step` (>= 0) by the formulas above; 0 for NULL, a negative step or an
 *  invalid schedule. */
CT_API double ct_lr_schedule_value(const ct_lr_schedule *schedule, int64_t step);
/** Makes the optimizer take each step's rate from the schedule (copied); NULL removes it, leaving
 *  the current rate. Errors: CT_ERR_INVALID for a value out of range (the message names it). */
CT_API ct_status ct_optimizer_set_schedule(ct_optimizer *opt, const ct_lr_schedule *schedule);

/** clipped[i] = grads[i] * clip_norm / max(global_norm, clip_norm) (NULL gradients stay NULL);
 *  *global_norm (may be NULL) receives the norm before clipping as a scalar tensor of grads[0]'s
 *  dtype. All on the device. */
CT_API ct_status ct_clip_by_global_norm(ct_tensor *const *grads, int n, double clip_norm, ct_tensor **clipped,
                                        ct_tensor **global_norm);

/* ---------------------------------------------------------------------------------------------
 * Checkpoints: a module's variables, under their names, in a safetensors file; optionally the
 * optimizer's state ("optimizer/<variable>/<slot>" tensors and the step count) and string
 * metadata of the caller's.
 * ------------------------------------------------------------------------------------------- */
/** Writes every variable of m (ct_module_variables) and, when opt is not NULL, its slots. The
 *  write is atomic (temporary file, then rename): an existing file is replaced only by a
 *  complete one. meta_keys / meta_values: n_meta caller pairs (keys must not start with
 *  "cltape."). Errors: CT_ERR_IO, CT_ERR_INVALID (duplicate variable names). */
CT_API ct_status ct_checkpoint_save(const char *path, const ct_module *m, const ct_optimizer *opt,
                                    const char *const *meta_keys, const char *const *meta_values, int n_meta);
/** Loads a checkpoint into m (and opt when not NULL). The file must hold exactly m's variables
 *  (plus optimizer entries, which are ignored when opt is NULL), each with the variable's shape
 *  and dtype; with opt, the optimizer state saved must be of the same kind. Everything is
 *  checked and staged on the device before any variable changes: on any error the module and
 *  the optimizer are left exactly as they were. Errors: CT_ERR_IO (cannot read; not a regular
 *  file: a FIFO or device fails at once), CT_ERR_FORMAT (truncated file, bad header, a key twice
 *  in one tensor's description, a "cltape.format" version other than 1, an optimizer iteration
 *  count outside 0..2^63-2), CT_ERR_MISMATCH (a missing, extra, differently shaped or typed
 *  tensor; the message names it). */
CT_API ct_status ct_checkpoint_load(const char *path, ct_module *m, ct_optimizer *opt);
/** Reads one metadata value of a checkpoint into value (NUL-terminated, truncated to cap).
 *  Reads and checks the header only, never the tensors' bytes. CT_ERR_NOT_FOUND when the key is
 *  absent; CT_ERR_IO and CT_ERR_FORMAT as ct_checkpoint_load. */
CT_API ct_status ct_checkpoint_metadata(const char *path, const char *key, char *value, size_t cap);

/* ---------------------------------------------------------------------------------------------
 * Plain named tensors in a safetensors file, outside any module (embeddings, statistics, data for
 * another program). The file is the same format as a checkpoint's, without cltape's metadata.
 * ------------------------------------------------------------------------------------------- */
/** Writes n tensors (any contexts) under names[i] (non-NULL, valid UTF-8, unique, not
 *  "__metadata__"), atomically as ct_checkpoint_save. n may be 0. Errors: CT_ERR_NULL,
 *  CT_ERR_INVALID (a name twice, a bad name, a negative n), CT_ERR_IO. */
CT_API ct_status ct_tensors_save(const char *path, const ct_tensor *const *tensors, const char *const *names, int n);
/** Reads every tensor of a safetensors file onto ctx's device, in the file's order: *count
 *  tensors, (*names)[i] the name of (*tensors)[i]. Both arrays and everything in them belong to
 *  the caller: free them with ct_tensors_load_free. On error nothing is returned and nothing
 *  leaks. Errors: CT_ERR_IO, CT_ERR_FORMAT and CT_ERR_DTYPE as ct_checkpoint_load,
 *  CT_ERR_UNSUPPORTED (float64 on a device without it). */
CT_API ct_status ct_tensors_load(ct_context *ctx, const char *path, int *count, char ***names, ct_tensor ***tensors);
/** Frees what ct_tensors_load returned (NULL arrays are fine). */
CT_API void ct_tensors_load_free(int count, char **names, ct_tensor **tensors);

/* ---------------------------------------------------------------------------------------------
 * Single tensors in NumPy's .npy files (and arrays of .npz archives), to exchange data with
 * NumPy: np.save / np.load read and write the same files.
 * ------------------------------------------------------------------------------------------- */
/** Writes t as a .npy file (version 1.0, C order, '<f4', '<f8', '<f2', '<i4', '<i8' or '|b1' for
 *  float32, float64, float16, int32, int64 and bool), atomically as ct_checkpoint_save: an existing
 *  file is replaced only by a complete one. Errors: CT_ERR_NULL, CT_ERR_RELEASED, CT_ERR_IO,
 *  CT_ERR_DTYPE (bfloat16, which NumPy lacks: cast to float32, which holds it exactly, or use a
 *  safetensors file). */
CT_API ct_status ct_tensor_save_npy(const ct_tensor *t, const char *path);
/** Reads a .npy file (versions 1.0, 2.0, 3.0) onto ctx's device. dtypes: '<f4' becomes float32,
 *  '<f8' float64, '<f2' float16, '<i4' int32, '<i8' int64, '|b1' bool; '<u8' becomes int64 and '|u1',
 *  '|i1', '<u2', '<i2', '<u4' int32, each value checked to fit (CT_ERR_DTYPE naming the dtype and
 *  the first value that does not). An array stored in Fortran order (fortran_order True) is transposed on reading: the
 *  tensor has the array's shape and values. Errors: CT_ERR_IO (cannot open or read; not a regular
 *  file), CT_ERR_FORMAT (damaged or truncated file, trailing bytes, more than 8 dimensions),
 *  CT_ERR_DTYPE (a big-endian, structured, complex, string or object dtype: the message names
 *  it), CT_ERR_UNSUPPORTED (float64 on a device without it). */
CT_API ct_status ct_tensor_load_npy(ct_context *ctx, const char *path, ct_tensor **out);
/** Reads the array `name` of a .npz archive (np.savez, np.savez_compressed: members stored or
 *  deflated) as ct_tensor_load_npy reads a file; "x" is the member "x.npy". Errors: those of
 *  ct_tensor_load_npy, CT_ERR_NOT_FOUND (no such array: the message lists the archive's arrays),
 *  CT_ERR_FORMAT also for a file that is not a zip archive, a bad CRC or an encrypted member. */
CT_API ct_status ct_tensor_load_npz(ct_context *ctx, const char *path, const char *name, ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Datasets: features [N, ...] and integer class labels [N], kept on the device; batches are
 * gathered on the device from a permutation (shuffled by seed), so iterating does not
 * synchronise. A dataset comes from arrays in memory (copied), from device tensors (borrowed),
 * from .npy files, from the arrays of an .npz archive, or from IDX files (below).
 * ------------------------------------------------------------------------------------------- */
/** A dataset: features and integer class labels kept on the device. */
typedef struct ct_dataset ct_dataset;
/** How the features are converted; ct_dataset_default_options() fills it. */
typedef struct {
  ct_dtype dtype; /**< of the features on the device: CT_FLOAT32 (default), CT_FLOAT64 or CT_INT32 */
  double scale;   /**< feature = raw * scale + offset; default 1 */
  double offset;  /**< default 0 */
  int64_t limit;  /**< use only the first `limit` examples; 0: all */
} ct_dataset_options;
/** float32, scale 1, offset 0, no limit. */
CT_API ct_dataset_options ct_dataset_default_options(void);
/** A dataset of n = shape[0] examples from host arrays: features of `dtype` (rank >= 1, C order)
 *  and n int32 labels >= 0. Both arrays are copied to the device before the call returns: the
 *  caller may free or reuse them at once. The features become opts->dtype (float32 when opts is
 *  NULL), value * scale + offset; for int32 each result must be an integer that int32 holds.
 *  Errors: CT_ERR_NULL, CT_ERR_RELEASED, CT_ERR_SHAPE (rank 0 or above 8, a negative extent),
 *  CT_ERR_INVALID (a negative label, a negative limit, a scale or offset that is not finite),
 *  CT_ERR_DTYPE (a bad dtype, a value int32 cannot hold), CT_ERR_UNSUPPORTED (float64 on a device
 *  without it). */
CT_API ct_status ct_dataset_from_arrays(ct_context *ctx, ct_dtype dtype, int rank, const int64_t *shape,
                                        const void *features, const int32_t *labels, const ct_dataset_options *opts,
                                        ct_dataset **out);
/** A dataset that borrows device tensors: features [n, ...] of any dtype and int32 labels [n] of
 *  one context. Nothing is copied: the dataset holds a reference to each (a variable is read as its
 *  value at this call, ct_variable_value), and both stay valid for the caller. The labels are read
 *  once, to check them and count the classes. Errors: CT_ERR_NULL, CT_ERR_RELEASED, CT_ERR_CONTEXT,
 *  CT_ERR_SHAPE (scalar features, labels not of rank 1), CT_ERR_DTYPE (labels not int32),
 *  CT_ERR_MISMATCH (counts differ), CT_ERR_INVALID (a negative label). */
CT_API ct_status ct_dataset_from_tensors(const ct_tensor *features, const ct_tensor *labels, ct_dataset **out);
/** A dataset from two .npy files: features of any dtype ct_tensor_load_npy reads (rank >= 1,
 *  converted as ct_dataset_from_arrays converts) and integer labels of rank 1 ('|u1' ... '<i8',
 *  '|b1'), >= 0. Errors: those of ct_tensor_load_npy (the message names the file), CT_ERR_FORMAT
 *  (float or negative labels, labels not of rank 1), CT_ERR_MISMATCH (counts differ),
 *  CT_ERR_SHAPE (scalar features), and the option errors of ct_dataset_from_arrays. */
CT_API ct_status ct_dataset_open_npy(ct_context *ctx, const char *features_path, const char *labels_path,
                                     const ct_dataset_options *opts, ct_dataset **out);
/** A dataset from two arrays of an .npz archive, for example Keras's mnist.npz with "x_train" and
 *  "y_train". The arrays are checked as ct_dataset_open_npy checks its files. Errors: those of
 *  ct_dataset_open_npy and ct_tensor_load_npz. */
CT_API ct_status ct_dataset_open_npz(ct_context *ctx, const char *path, const char *features_name,
                                     const char *labels_name, const ct_dataset_options *opts, ct_dataset **out);
/** Number of examples; -1 for a bad handle. */
CT_API int64_t ct_dataset_size(const ct_dataset *ds);
/** 1 + the largest label; -1 for a bad handle. */
CT_API int ct_dataset_num_classes(const ct_dataset *ds);
/** Shape of one example (without the example axis): writes the rank and up to 7 extents. */
CT_API ct_status ct_dataset_example_shape(const ct_dataset *ds, int *rank, int64_t *shape);
/** Sets the order of the examples to a permutation drawn from seed (Fisher-Yates over Philox
 *  numbers: the same seed gives the same order everywhere). Until called, the source's order. */
CT_API ct_status ct_dataset_shuffle(ct_dataset *ds, uint64_t seed);
/** Restores the source's order. */
CT_API ct_status ct_dataset_unshuffle(ct_dataset *ds);
/** Number of batches of batch_size in an epoch; the last one is partial unless drop_remainder.
 *  -1 for a bad handle or batch_size < 1. */
CT_API int64_t ct_dataset_num_batches(const ct_dataset *ds, int64_t batch_size, bool drop_remainder);
/** Batch `index` of the current order: features [b, ...] and int32 labels [b], b = batch_size
 *  except for a partial last batch. New tensors; either out pointer may be NULL. Errors:
 *  CT_ERR_INVALID (batch_size < 1, index out of range). */
CT_API ct_status ct_dataset_batch(ct_dataset *ds, int64_t index, int64_t batch_size, ct_tensor **features,
                                  ct_tensor **labels);
/** Frees the dataset and its device copies (batches already taken stay valid; borrowed tensors
 *  lose the dataset's reference only). NULL does nothing. */
CT_API void ct_dataset_free(ct_dataset *ds);

/* ---------------------------------------------------------------------------------------------
 * IDX datasets (MNIST, Fashion-MNIST): images and labels read from IDX files (plain or gzip).
 * An IDX dataset is a ct_dataset: every ct_dataset_* function takes it; the ct_idx_dataset_*
 * functions below are the same functions under the names they had first.
 * ------------------------------------------------------------------------------------------- */
/** An IDX dataset: a ct_dataset under its first name. */
typedef struct ct_dataset ct_idx_dataset;
/** How ct_idx_dataset_open converts the files; ct_idx_dataset_default_options() fills it. */
typedef struct {
  ct_dtype dtype;         /**< of the images: CT_FLOAT32 (default) or CT_FLOAT64 */
  double scale;           /**< image = raw * scale + offset; default 1/255 */
  double offset;          /**< default 0 */
  bool channel_axis;      /**< rank-3 image files [N, H, W] become [N, H, W, 1]; default true */
  int64_t limit;          /**< use only the first `limit` examples; 0: all */
} ct_idx_dataset_options;
/** float32, scale 1/255, offset 0, a channel axis, no limit. */
CT_API ct_idx_dataset_options ct_idx_dataset_default_options(void);
/** Reads the image file (any IDX element type, rank >= 1, first axis = examples) and the label
 *  file (integer type, rank 1, labels >= 0) and uploads them. The counts must agree. Errors:
 *  CT_ERR_IO (also for a path that is not a regular file: a FIFO fails at once), CT_ERR_FORMAT
 *  (corrupt or truncated file; the message names the file and the problem), CT_ERR_MISMATCH
 *  (counts differ), CT_ERR_INVALID. */
CT_API ct_status ct_idx_dataset_open(ct_context *ctx, const char *images_path, const char *labels_path,
                                     const ct_idx_dataset_options *opts, ct_idx_dataset **out);
/** ct_dataset_size. */
CT_API int64_t ct_idx_dataset_size(const ct_idx_dataset *ds);
/** ct_dataset_num_classes. */
CT_API int ct_idx_dataset_num_classes(const ct_idx_dataset *ds);
/** ct_dataset_example_shape: the shape of one image. */
CT_API ct_status ct_idx_dataset_example_shape(const ct_idx_dataset *ds, int *rank, int64_t *shape);
/** ct_dataset_shuffle. */
CT_API ct_status ct_idx_dataset_shuffle(ct_idx_dataset *ds, uint64_t seed);
/** ct_dataset_unshuffle: the file's order. */
CT_API ct_status ct_idx_dataset_unshuffle(ct_idx_dataset *ds);
/** ct_dataset_num_batches. */
CT_API int64_t ct_idx_dataset_num_batches(const ct_idx_dataset *ds, int64_t batch_size, bool drop_remainder);
/** ct_dataset_batch: images [b, ...] and int32 labels [b]. */
CT_API ct_status ct_idx_dataset_batch(ct_idx_dataset *ds, int64_t index, int64_t batch_size, ct_tensor **images,
                                      ct_tensor **labels);
/** ct_dataset_free. */
CT_API void ct_idx_dataset_free(ct_idx_dataset *ds);

/* ---------------------------------------------------------------------------------------------
 * Batch normalization, residual blocks and more losses. All are made of the ops above: tapes
 * record those ops, so the gradients (and higher derivatives) are theirs, and every float dtype
 * the ops take works here too.
 * ------------------------------------------------------------------------------------------- */
/** Batch normalization with the batch's own statistics (training): mean and variance of x over
 *  every axis but the last (x [N, C], NHWC images [N, H, W, C], any rank >= 2), the variance
 *  biased (divided by the count, as tf.nn.moments), then
 *  y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, gamma and beta [C] broadcast over the
 *  other axes (NULL: 1 and 0). *batch_mean and *batch_variance (each may be NULL) receive the
 *  statistics [C]; the gradient flows through them into y as in TensorFlow. Errors: CT_ERR_NULL,
 *  CT_ERR_RELEASED, CT_ERR_CONTEXT, CT_ERR_SHAPE (rank below 2, gamma or beta not [C]),
 *  CT_ERR_DTYPE (not a float dtype, dtypes differ), CT_ERR_INVALID (epsilon negative or not
 *  finite). */
CT_API ct_status ct_batch_norm(const ct_tensor *x, const ct_tensor *gamma, const ct_tensor *beta, double epsilon,
                               ct_tensor **out, ct_tensor **batch_mean, ct_tensor **batch_variance);
/** Batch normalization with given statistics (inference): y = (x - mean) / sqrt(variance + epsilon)
 *  * gamma + beta over the last axis of x (rank >= 1), mean, variance, gamma and beta all [C]
 *  (gamma, beta NULL: 1 and 0); tf.nn.batch_normalization. Differentiable in every input. Errors
 *  as ct_batch_norm (CT_ERR_NULL also for a NULL mean or variance; CT_ERR_SHAPE for a scalar x). */
CT_API ct_status ct_batch_norm_inference(const ct_tensor *x, const ct_tensor *mean, const ct_tensor *variance,
                                         const ct_tensor *gamma, const ct_tensor *beta, double epsilon,
                                         ct_tensor **out);

/** Options of a BatchNorm layer; ct_batch_norm_default_options() fills them (Keras' defaults). */
typedef struct {
  const char *name; /**< NULL: automatic ("batch_normalization", "batch_normalization_1", ...) */
  ct_dtype dtype;   /**< of the variables: CT_FLOAT32 (default) or CT_FLOAT64 */
  double momentum;  /**< moving statistics: moving = moving * momentum + batch * (1 - momentum); in [0, 1],
                         default 0.99 */
  double epsilon;   /**< added to the variance, >= 0; default 1e-3 */
  bool center;      /**< learn beta (default true; false: no offset) */
  bool scale;       /**< learn gamma (default true; false: no scale) */
} ct_batch_norm_options;
/** The defaults above. */
CT_API ct_batch_norm_options ct_batch_norm_default_options(void);
/** BatchNorm ("batch_normalization") over the last axis of inputs [..., channels]. Variables, in
 *  this order: "gamma" [channels] (ones, trainable; when scale), "beta" [channels] (zeros,
 *  trainable; when center), "moving_mean" [channels] (zeros) and "moving_variance" [channels]
 *  (ones), the last two not trainable. A training call normalizes with the batch's statistics
 *  (ct_batch_norm) and then updates the moving statistics with the momentum from the batch's mean
 *  and biased variance (as Keras 3; not recorded by tapes); an inference call normalizes with the
 *  moving statistics (ct_batch_norm_inference). The moving statistics are variables of the
 *  module: checkpoints save and restore them. A functional call (ct_module_call_with) leaves them
 *  as they are. Calls fail with CT_ERR_SHAPE for inputs whose last extent is not `channels`
 *  (training calls also for rank below 2). opts may be NULL. Errors: CT_ERR_INVALID (channels < 1,
 *  momentum or epsilon out of range), CT_ERR_DTYPE. */
CT_API ct_status ct_batch_norm_create(ct_context *ctx, int64_t channels, const ct_batch_norm_options *opts,
                                      ct_module **out);

/** Residual block ("residual"): y = x + f(x), or projection(x) + f(x) when projection is not NULL
 *  (a Dense or a 1x1 Conv2D that maps x to f's output shape). f (child 0) and projection (child 1)
 *  become children of the block, which takes a reference to each (the caller keeps its own); their
 *  variables are named "<block>/<layer>/...". A call whose two terms differ in shape fails with
 *  CT_ERR_SHAPE naming both shapes (no broadcasting). name may be NULL. Errors: CT_ERR_NULL (f),
 *  CT_ERR_INVALID (f or projection already has a parent, f == projection), CT_ERR_CONTEXT. */
CT_API ct_status ct_residual_create(ct_context *ctx, ct_module *f, ct_module *projection, const char *name,
                                    ct_module **out);

/** How a loss reduces its per-example (or per-element) values. */
typedef enum {
  CT_REDUCTION_MEAN = 0, /**< the mean over every value (Keras' "sum_over_batch_size"); a scalar */
  CT_REDUCTION_SUM = 1,  /**< the sum of every value; a scalar */
  CT_REDUCTION_NONE = 2  /**< no reduction: per example (softmax cross-entropy) or per element */
} ct_reduction;
/** Options of the losses below; zero fields (and opts NULL) take the defaults given. */
typedef struct {
  ct_reduction reduction; /**< default CT_REDUCTION_MEAN */
  double label_smoothing; /**< in [0, 1]: softmax: labels * (1 - a) + a / classes; binary: labels * (1 - a) + a / 2 */
  bool from_logits;       /**< binary cross-entropy: predictions are logits (default false: probabilities) */
  double epsilon;         /**< binary cross-entropy from probabilities: clipped to [epsilon, 1 - epsilon]; in
                               (0, 0.5), 0: 1e-7 (Keras' epsilon) */
  double delta;           /**< Huber: where the loss turns from quadratic to linear, > 0; 0: 1 */
} ct_loss_options;
/** Softmax cross-entropy of logits [..., C] against labels, either int32 class indices [...]
 *  (as ct_softmax_cross_entropy) or a float distribution [..., C] of the logits' dtype
 *  (tf.nn.softmax_cross_entropy_with_logits, labels differentiated too), with label smoothing
 *  (TensorFlow's: labels * (1 - a) + a / C; for class indices the one-hot labels are smoothed) and
 *  reduction over the examples from opts (NULL: no smoothing, mean). With int32 labels a label
 *  outside [0, C) gives NaN for its example. Errors: CT_ERR_NULL, CT_ERR_RELEASED, CT_ERR_CONTEXT,
 *  CT_ERR_SHAPE, CT_ERR_DTYPE, CT_ERR_INVALID (a field of opts out of its range, whichever loss it
 *  is for). */
CT_API ct_status ct_softmax_cross_entropy_ex(const ct_tensor *logits, const ct_tensor *labels,
                                             const ct_loss_options *opts, ct_tensor **out);
/** Binary cross-entropy between predictions and targets in [0, 1] of the same shape and float
 *  dtype, elementwise, then reduced (opts NULL: mean over every element). From probabilities p
 *  (Keras): p clipped to [epsilon, 1 - epsilon], -(z log p + (1 - z) log(1 - p)). From logits x
 *  (opts->from_logits), the stable form of tf.nn.sigmoid_cross_entropy_with_logits:
 *  max(x, 0) - x z + log1p(exp(-|x|)). Targets are smoothed first when label_smoothing > 0 and are
 *  differentiated too. Errors: CT_ERR_NULL, CT_ERR_RELEASED, CT_ERR_CONTEXT, CT_ERR_SHAPE (shapes
 *  differ), CT_ERR_DTYPE, CT_ERR_INVALID (a field of opts out of its range). */
CT_API ct_status ct_binary_cross_entropy(const ct_tensor *pred, const ct_tensor *target,
                                         const ct_loss_options *opts, ct_tensor **out);
/** Huber loss of pred against target (same shape and float dtype), elementwise with e = pred -
 *  target: e^2 / 2 where |e| <= delta, delta (|e| - delta / 2) beyond, then reduced (opts NULL:
 *  delta 1, mean over every element; tf.keras.losses.Huber). Errors as ct_binary_cross_entropy
 *  (CT_ERR_INVALID also for a negative or infinite delta). */
CT_API ct_status ct_huber_loss(const ct_tensor *pred, const ct_tensor *target, const ct_loss_options *opts,
                               ct_tensor **out);

/* ---------------------------------------------------------------------------------------------
 * Mixed precision: float16 or bfloat16 activations with float32 master weights, and dynamic loss
 * scaling. The variables stay float32; each step casts them (and the inputs) to the 16-bit dtype,
 * computes the forward pass there (every op computes in float32 and rounds to the dtype), and
 * computes the loss in float32. Small gradients would underflow in float16, so the loss is
 * multiplied by a scale before the gradient; the gradients are divided by it again and checked:
 * a step with an inf or NaN gradient is skipped and the scale backs off, and after a run of finite
 * steps it grows again (as TensorFlow's LossScaleOptimizer and PyTorch's GradScaler do).
 *
 *   ct_loss_scale ls = ct_loss_scale_default();
 *   ... ct_loss_scale_loss(&ls, loss, &scaled); gradients of `scaled` ...
 *   bool finite;
 *   ct_loss_scale_unscale(&ls, grads, n, unscaled, &finite);
 *   if (finite) ct_optimizer_apply(opt, unscaled, vars, n);
 * ------------------------------------------------------------------------------------------- */
/** The state of dynamic loss scaling: a value the caller keeps, between steps. */
typedef struct {
  double scale;          /**< what the loss is multiplied by: finite, > 0 */
  double growth_factor;  /**< the scale is multiplied by it after growth_interval finite steps: > 1 */
  double backoff_factor; /**< and by this after a step with an inf or NaN gradient: in (0, 1) */
  int growth_interval;   /**< finite steps between two growths: >= 1 */
  int good_steps;        /**< finite steps since the last growth or backoff */
  int64_t skipped;       /**< steps skipped so far (an inf or NaN gradient) */
} ct_loss_scale;
/** Defaults: scale 2^15, growth 2 every 2000 finite steps, backoff 0.5 (those of TensorFlow's
 *  dynamic loss scale, PyTorch's GradScaler starts at 2^16). */
CT_API ct_loss_scale ct_loss_scale_default(void);
/** *out = loss * ls->scale, in loss's dtype (recorded on the active tapes, so the gradients of
 *  *out are the gradients of loss times the scale). Errors: CT_ERR_NULL, CT_ERR_RELEASED,
 *  CT_ERR_INVALID (a state out of range: the message names the field), CT_ERR_DTYPE (an integer
 *  loss). */
CT_API ct_status ct_loss_scale_loss(const ct_loss_scale *ls, const ct_tensor *loss, ct_tensor **out);
/** Divides the n gradients by the scale (out[i] = grads[i] / scale, in grads[i]'s dtype; a NULL
 *  gradient gives NULL), reads whether every one is finite (one wait for the device), and updates
 *  the state: after a finite step good_steps grows and, at growth_interval, the scale grows; after
 *  a step with an inf or NaN the scale backs off, `skipped` counts it, and every out[i] is NULL, so
 *  that ct_optimizer_apply with them changes nothing. *finite tells which. Errors: CT_ERR_NULL,
 *  CT_ERR_RELEASED, CT_ERR_INVALID (a state out of range, a negative n), CT_ERR_DTYPE (an integer
 *  gradient); on error the state is unchanged and every out[i] is NULL. */
CT_API ct_status ct_loss_scale_unscale(ct_loss_scale *ls, ct_tensor *const *grads, int n, ct_tensor **out,
                                       bool *finite);

/* ---------------------------------------------------------------------------------------------
 * Transformers: layer normalization, embeddings and attention (ops made of rows of the op table:
 * a tape records those rows, so their gradients are the rows' gradients), and the layers built
 * from them.
 * ------------------------------------------------------------------------------------------- */
/** Layer normalization over the last axis of x [..., C]: (x - mean) / sqrt(var + epsilon) * gamma
 *  + beta, with the mean and the (biased) variance of each row of C values. gamma and beta are
 *  [C] of x's dtype, or NULL (no scale / no shift). Errors: CT_ERR_DTYPE (not a float dtype, or
 *  dtypes differ), CT_ERR_SHAPE (a scalar x, gamma or beta not [C]), CT_ERR_INVALID (epsilon
 *  negative or not finite), CT_ERR_CONTEXT. */
CT_API ct_status ct_layer_norm(const ct_tensor *x, const ct_tensor *gamma, const ct_tensor *beta, double epsilon,
                               ct_tensor **out);
/** Embedding lookup: rows of table [V, D] at int32 ids of any shape -> ids.shape + [D]
 *  (ct_gather along axis 0; the gradient adds each output row into the row it came from). An id
 *  outside [0, V) gives a row of zeros. Errors: CT_ERR_SHAPE (table not of rank 2), CT_ERR_DTYPE
 *  (ids not int32), CT_ERR_CONTEXT. */
CT_API ct_status ct_embedding_lookup(const ct_tensor *table, const ct_tensor *ids, ct_tensor **out);
/** Scaled dot-product attention: softmax(q k^T / sqrt(d) + mask) v over the last axis, with q
 *  [..., Tq, d], k [..., Tk, d], v [..., Tk, dv] (leading axes broadcast as in ct_matmul) ->
 *  [..., Tq, dv]. With `causal`, query i sees the keys j <= i + Tk - Tq only (the queries are the
 *  last Tq positions; with Tq == Tk, j <= i): the others get a bias of -1e9 before the softmax.
 *  It runs as matrix products and a softmax, or as one fused kernel (an online softmax over blocks
 *  of keys; its gradient recomputes the probabilities from the saved logsumexp), float32 and
 *  float64 with the same leading axes only: CLTAPE_ATTENTION=fused or =composed forces either,
 *  else the one measured faster on the device is taken (docs/performance.md, "Attention").
 *  Errors: CT_ERR_DTYPE (not one float dtype), CT_ERR_SHAPE (rank < 2, feature or position counts
 *  that differ, causal with Tq > Tk; fused forced with leading axes that broadcast),
 *  CT_ERR_UNSUPPORTED (fused forced with heads too large for the device), CT_ERR_CONTEXT. */
CT_API ct_status ct_scaled_dot_product_attention(const ct_tensor *q, const ct_tensor *k, const ct_tensor *v,
                                                 bool causal, ct_tensor **out);

/** LayerNorm ("layer_normalization"): ct_layer_norm over the last axis of inputs [..., features]
 *  with the variables "gamma" (ones) and "beta" (zeros), [features]. epsilon >= 0 (Keras: 1e-3,
 *  PyTorch: 1e-5). opts may be NULL; its name, dtype and seed are used. */
CT_API ct_status ct_layer_norm_create(ct_context *ctx, int64_t features, double epsilon, const ct_layer_options *opts,
                                      ct_module **out);
/** Embedding ("embedding"): int32 ids [...] -> [..., dim], the table "embeddings" [vocabulary, dim]
 *  initialized by opts->kernel_initializer (default Glorot uniform). */
CT_API ct_status ct_embedding_create(ct_context *ctx, int64_t vocabulary, int64_t dim, const ct_layer_options *opts,
                                     ct_module **out);
/** MultiHeadAttention ("multi_head_attention"), self-attention of x [batch, positions, d_model]:
 *  one product x @ qkv_kernel + qkv_bias ([d_model, 3 d_model], [3 d_model]) gives the queries,
 *  keys and values, split into `heads` heads of d_model / heads features; each head runs
 *  ct_scaled_dot_product_attention (causal: position t sees positions <= t only); the heads are
 *  joined and projected by output_kernel [d_model, d_model] and output_bias [d_model]. d_model must
 *  be a multiple of heads (CT_ERR_INVALID). */
CT_API ct_status ct_multi_head_attention_create(ct_context *ctx, int64_t d_model, int64_t heads, bool causal,
                                                const ct_layer_options *opts, ct_module **out);
/** TransformerBlock ("transformer_block"), a pre-LN decoder block on [batch, positions, d_model]:
 *  h = x + attention(ln1(x)); out = h + mlp_out(gelu(mlp_in(ln2(h)))), mlp_in [d_model, mlp_hidden],
 *  mlp_out [mlp_hidden, d_model]. Its children are named "ln1", "attention", "ln2", "mlp_in" and
 *  "mlp_out" (LayerNorms with epsilon 1e-5), their variables prefixed with the block's name; their
 *  initial values come from opts->seed, or from the block's name when it is 0. */
CT_API ct_status ct_transformer_block_create(ct_context *ctx, int64_t d_model, int64_t heads, int64_t mlp_hidden,
                                             bool causal, const ct_layer_options *opts, ct_module **out);

#ifdef __cplusplus
}
#endif
#endif /* CLTAPE_NN_H */
