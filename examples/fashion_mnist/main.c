/*
 * cltape-fashion-mnist — trains a classifier on Fashion-MNIST with cltape and reports what it
 * measured: loss, accuracy, time per epoch, images per second.
 *
 *   cltape-fashion-mnist --model mlp
 *   cltape-fashion-mnist --model cnn --time-limit 900 --checkpoint cnn.safetensors --plot cnn.svg
 *   cltape-fashion-mnist --model cnn --epochs 17 --resume cnn.safetensors     (up to 17 epochs in all)
 *   mpirun -np 2 cltape-fashion-mnist --distributed      (data parallel, docs/distributed.md)
 *
 * Models: "mlp" (784-256-128-10, ReLU) and "cnn" (two 3x3 convolutions of 32 filters, each with
 * 2x2 max pooling and ReLU, a hidden dense layer of 128 with dropout, 10 outputs; --batch-norm
 * puts a BatchNorm after each convolution, which then has no bias: model "cnn-bn"). Adam, softmax
 * cross-entropy, batches shuffled by seed every epoch. Each epoch ends with an evaluation on the
 * 10,000 test images, a checkpoint (model, optimizer and history) and a plot (SVG and PNG) of
 * the training and test loss and accuracy.
 *
 * Training enqueues every step without waiting for the device; the running loss and accuracy
 * are summed on the device and read only when printed (every --print-every steps on a
 * terminal, at the end of each epoch otherwise). The images per second shown on a terminal are
 * measured over the last RATE_WINDOW updates, each taken once the device has finished its steps.
 */
#define _POSIX_C_SOURCE 200809L
#include <cltape_dist.h>
#include <cltape_nn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "plot.h"
#include "throughput.h"


#define MAX_EPOCHS 1000
#define MAX_VARS 64
#define RATE_WINDOW 8 /* progress updates that the img/s on a terminal spans */

typedef struct {
  const char *model, *data, *checkpoint, *resume, *plot, *device, *optimizer;
  const char *kind; /* the model as checkpoints and files name it: the model, "cnn-bn" with --batch-norm */
  int epochs, print_every;
  int64_t batch, limit;
  double lr, decay, time_limit;
  uint64_t seed;
  bool distributed, no_overlap, batch_norm;
} config;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: cltape-fashion-mnist [options]\n"
          "  --model mlp|cnn       model to train (default mlp)\n"
          "  --batch-norm          cnn: a BatchNorm after each convolution (model \"cnn-bn\"; with\n"
          "                        --distributed each rank keeps its own moving statistics)\n"
          "  --epochs N            total epochs, counting resumed ones (default 12 for mlp, 15 for cnn)\n"
          "  --batch N             batch size (default 128)\n"
          "  --lr X                initial learning rate (default 0.001, 0.05 with sgd)\n"
          "  --decay X             learning rate factor per epoch (default 0.85)\n"
          "  --optimizer adam|adamw|sgd   (default adam; sgd uses Nesterov momentum 0.9)\n"
          "  --data DIR            directory with the four *-ubyte.gz files (default %s,\n"
          "                        or $FASHION_MNIST_DIR)\n"
          "  --limit N             train on the first N training images only\n"
          "  --time-limit SEC      start no epoch that would end after SEC seconds of training\n"
          "                        (judged by the previous epoch's time)\n"
          "  --checkpoint PATH     checkpoint written after each epoch (default fashion-<model>.safetensors)\n"
          "  --resume PATH         continue from a checkpoint (model, optimizer, epochs, history)\n"
          "  --plot PATH           plot of loss and accuracy per epoch: SVG at PATH, PNG next to it\n"
          "                        (default fashion-<model>.svg and fashion-<model>.png)\n"
          "  --seed N              seed of shuffling and dropout (default 1)\n"
          "  --print-every N       steps between progress updates on a terminal (default 20)\n"
          "  --device SEL          OpenCL device (index, \"cpu\", \"gpu\" or a name substring)\n"
          "  --distributed         data parallel over the MPI ranks (run under mpirun): each rank\n"
          "                        trains on its shard of every global batch of --batch images;\n"
          "                        the gradients' all-reduce overlaps the backward pass\n"
          "  --no-overlap          with --distributed: all-reduce after the backward pass instead\n",
          CLTAPE_FASHION_MNIST_DIR);
}

static void parse(int argc, char **argv, config *c) {
  memset(c, 0, sizeof *c);
  c->model = "mlp";
  c->batch = 128;
  c->lr = 0; /* by optimizer: 0.001 for Adam and AdamW, 0.05 for SGD */
  c->decay = 0.85;
  c->optimizer = "adam";
  c->seed = 1;
  c->print_every = 20;
  const char *env = getenv("FASHION_MNIST_DIR");
  c->data = env && *env ? env : CLTAPE_FASHION_MNIST_DIR;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    if (strcmp(a, "--distributed") == 0) { /* the two options without a value */
      c->distributed = true;
      continue;
    }
    if (strcmp(a, "--no-overlap") == 0) {
      c->no_overlap = true;
      continue;
    }
    if (strcmp(a, "--batch-norm") == 0) {
      c->batch_norm = true;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "error: %s needs a value (or is unknown)\n", a);
      usage(stderr);
      exit(2);
    }
    const char *v = argv[++i];
    char *end = NULL;
    errno = 0;
    if (strcmp(a, "--model") == 0) c->model = v;
    else if (strcmp(a, "--data") == 0) c->data = v;
    else if (strcmp(a, "--checkpoint") == 0) c->checkpoint = v;
    else if (strcmp(a, "--resume") == 0) c->resume = v;
    else if (strcmp(a, "--plot") == 0) c->plot = v;
    else if (strcmp(a, "--device") == 0) c->device = v;
    else if (strcmp(a, "--optimizer") == 0) c->optimizer = v;
    else if (strcmp(a, "--epochs") == 0) c->epochs = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--print-every") == 0) c->print_every = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--batch") == 0) c->batch = strtoll(v, &end, 10);
    else if (strcmp(a, "--limit") == 0) c->limit = strtoll(v, &end, 10);
    else if (strcmp(a, "--seed") == 0) c->seed = strtoull(v, &end, 10);
    else if (strcmp(a, "--lr") == 0) c->lr = strtod(v, &end);
    else if (strcmp(a, "--decay") == 0) c->decay = strtod(v, &end);
    else if (strcmp(a, "--time-limit") == 0) c->time_limit = strtod(v, &end);
    else {
      fprintf(stderr, "error: unknown option %s\n", a);
      usage(stderr);
      exit(2);
    }
    if (end && (*end || errno || end == v)) {
      fprintf(stderr, "error: bad value \"%s\" for %s\n", v, a);
      exit(2);
    }
  }
  if (strcmp(c->model, "mlp") != 0 && strcmp(c->model, "cnn") != 0) {
    fprintf(stderr, "error: --model must be mlp or cnn\n");
    exit(2);
  }
  if (c->batch_norm && strcmp(c->model, "cnn") != 0) {
    fprintf(stderr, "error: --batch-norm needs --model cnn\n");
    exit(2);
  }
  c->kind = c->batch_norm ? "cnn-bn" : c->model;
  if (c->epochs == 0) c->epochs = strcmp(c->model, "mlp") == 0 ? 12 : 15;
  if (c->lr == 0) c->lr = strcmp(c->optimizer, "sgd") == 0 ? 0.05 : 1e-3;
  if (c->epochs < 1 || c->epochs > MAX_EPOCHS || c->batch < 1 || c->print_every < 1 || c->limit < 0 || !(c->lr > 0) ||
      !(c->decay > 0)) {
    fprintf(stderr, "error: epochs, batch, print-every, lr and decay must be positive\n");
    exit(2);
  }
}

/* ---- models ----------------------------------------------------------------------------------- */
/* Appends a new layer (created by the caller) to a Sequential and drops the caller's reference. */
static void add(ct_module *seq, ct_module *layer) {
  CHECK(ct_sequential_add(seq, layer));
  ct_module_free(layer);
}

static ct_module *build_mlp(ct_context *ctx, int64_t in, int classes) {
  ct_module *m, *l;
  ct_layer_options o = ct_layer_default_options();
  CHECK(ct_sequential_create(ctx, "mlp", &m));
  CHECK(ct_flatten_create(ctx, NULL, &l));
  add(m, l);
  CHECK(ct_dense_create(ctx, in, 256, CT_ACTIVATION_RELU, &o, &l));
  add(m, l);
  CHECK(ct_dense_create(ctx, 256, 128, CT_ACTIVATION_RELU, &o, &l));
  add(m, l);
  CHECK(ct_dense_create(ctx, 128, classes, CT_ACTIVATION_NONE, &o, &l));
  add(m, l);
  return m;
}

/* Two 3x3 convolutions, each followed by 2x2 max pooling and then its ReLU (pooling first is the
 * same function, since ReLU is monotonic, and activates a quarter of the values), a hidden dense
 * layer with dropout, and the 10 outputs. With batch_norm each convolution has no bias and a
 * BatchNorm after it. */
static ct_module *build_cnn(ct_context *ctx, const int64_t *shape, int classes, uint64_t seed, bool batch_norm) {
  ct_module *m, *l;
  ct_layer_options o = ct_layer_default_options();
  o.kernel_initializer = CT_INIT_HE_UNIFORM;
  int k3[2] = {3, 3}, p2[2] = {2, 2};
  CHECK(ct_sequential_create(ctx, "cnn", &m));
  for (int i = 0; i < 2; ++i) {
    o.use_bias = !batch_norm; /* BatchNorm's beta is the bias */
    CHECK(ct_conv2d_create(ctx, i ? 32 : shape[2], 32, k3, NULL, CT_PADDING_SAME, CT_ACTIVATION_NONE, &o, &l));
    add(m, l);
    if (batch_norm) { /* before the pooling: with a negative gamma it is not monotonic */
      CHECK(ct_batch_norm_create(ctx, 32, NULL, &l));
      add(m, l);
    }
    CHECK(ct_max_pool2d_create(ctx, p2, NULL, CT_PADDING_VALID, NULL, &l));
    add(m, l);
    CHECK(ct_activation_create(ctx, CT_ACTIVATION_RELU, NULL, &l));
    add(m, l);
  }
  o.use_bias = true;
  CHECK(ct_flatten_create(ctx, NULL, &l));
  add(m, l);
  CHECK(ct_dense_create(ctx, (shape[0] / 4) * (shape[1] / 4) * 32, 128, CT_ACTIVATION_RELU, &o, &l));
  add(m, l);
  CHECK(ct_dropout_create(ctx, 0.3, seed, NULL, &l));
  add(m, l);
  o.kernel_initializer = CT_INIT_GLOROT_UNIFORM;
  CHECK(ct_dense_create(ctx, 128, classes, CT_ACTIVATION_NONE, &o, &l));
  add(m, l);
  return m;
}

/* ---- history (kept in the checkpoint's metadata as "loss,train_acc,test_loss,test_acc,seconds;...") */
typedef struct {
  double loss, acc, test_loss, test_acc, seconds;
} epoch_rec;

static void history_format(const epoch_rec *h, int n, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < n && len < cap; ++i)
    len += (size_t)snprintf(buf + len, cap - len, "%s%.6f,%.6f,%.6f,%.6f,%.3f", i ? ";" : "", h[i].loss, h[i].acc,
                            h[i].test_loss, h[i].test_acc, h[i].seconds);
}

static int history_parse(const char *s, epoch_rec *h, int cap) {
  int n = 0;
  while (*s && n < cap) {
    epoch_rec r;
    int used = 0;
    if (sscanf(s, "%lf,%lf,%lf,%lf,%lf%n", &r.loss, &r.acc, &r.test_loss, &r.test_acc, &r.seconds, &used) != 5) break;
    h[n++] = r;
    s += used;
    if (*s == ';') ++s;
  }
  return n;
}

/* The plot of the history: losses on the left axis, accuracies (%) on the right, as an SVG file at
 * path and a PNG file next to it (path with .png for .svg). */
static void write_plot(const char *path, const char *model, const epoch_rec *h, int n) {
  double x[MAX_EPOCHS], loss[MAX_EPOCHS], tloss[MAX_EPOCHS], acc[MAX_EPOCHS], tacc[MAX_EPOCHS];
  for (int i = 0; i < n; ++i) {
    x[i] = i + 1;
    loss[i] = h[i].loss;
    tloss[i] = h[i].test_loss;
    acc[i] = 100 * h[i].acc;
    tacc[i] = 100 * h[i].test_acc;
  }
  char title[128], png[1024];
  snprintf(title, sizeof title, "Fashion-MNIST, %s", model);
  size_t len = strlen(path);
  if (len > 4 && strcmp(path + len - 4, ".svg") == 0) snprintf(png, sizeof png, "%.*s.png", (int)(len - 4), path);
  else snprintf(png, sizeof png, "%s.png", path);
  plot *p = plot_create(title, "epoch", "loss");
  int r = p ? 0 : -1;
  if (r == 0) r = plot_add_series(p, "training loss", x, loss, n, 0);
  if (r == 0) r = plot_add_series(p, "test loss", x, tloss, n, 0);
  if (r == 0) r = plot_add_series(p, "training accuracy (%)", x, acc, n, 1);
  if (r == 0) r = plot_add_series(p, "test accuracy (%)", x, tacc, n, 1);
  if (r == 0) r = plot_set_right_label(p, "accuracy (%)");
  if (r != 0) fprintf(stderr, "warning: no plot: %s\n", strerror(errno));
  if (r == 0 && plot_write_svg(p, path) != 0) fprintf(stderr, "warning: cannot write %s: %s\n", path, strerror(errno));
  if (r == 0 && plot_write_png(p, png) != 0) fprintf(stderr, "warning: cannot write %s: %s\n", png, strerror(errno));
  plot_free(p);
}

/* ---- training ---------------------------------------------------------------------------------- */
static double read_scalar(const ct_tensor *t) {
  double v = NAN;
  CHECK(ct_tensor_item(t, &v));
  return v;
}

/* acc += value (device scalars; acc may start NULL) */
static void accumulate(ct_tensor **acc, ct_tensor *value) {
  if (!*acc) {
    *acc = value;
    return;
  }
  ct_tensor *s = NULL;
  CHECK(ct_add(*acc, value, &s));
  ct_tensor_free(*acc);
  ct_tensor_free(value);
  *acc = s;
}

static void progress(int epoch, int epochs, int64_t step, int64_t steps, double loss, double acc, double ips) {
  int width = 24, fill = (int)(width * step / (steps ? steps : 1));
  char bar[64];
  for (int i = 0; i < width; ++i) bar[i] = i < fill ? '#' : '-';
  bar[width] = 0;
  printf("\repoch %2d/%d [%s] %5lld/%lld  loss %.4f  acc %6.2f%%  %6.0f img/s ", epoch, epochs, bar, (long long)step,
         (long long)steps, loss, 100 * acc, ips);
  fflush(stdout);
}

/* Loss and accuracy of the model on a dataset, in batches of 1000, without a tape. */
static void evaluate(ct_module *model, ct_idx_dataset *ds, double *loss, double *acc) {
  ct_tensor *lsum = NULL, *csum = NULL;
  int64_t B = 1000, nb = ct_idx_dataset_num_batches(ds, B, false);
  for (int64_t i = 0; i < nb; ++i) {
    ct_tensor *x, *y, *logits, *l, *lb, *c;
    CHECK(ct_idx_dataset_batch(ds, i, B, &x, &y));
    CHECK(ct_module_call(model, x, false, &logits));
    CHECK(ct_sparse_softmax_cross_entropy(logits, y, &l));
    CHECK(ct_sum(l, NULL, 0, false, &lb));
    CHECK(ct_count_correct(logits, y, &c));
    accumulate(&lsum, lb);
    accumulate(&csum, c);
    ct_tensor *tmp[] = {x, y, logits, l};
    ct_tensor_free_n(tmp, 4);
  }
  double n = (double)ct_idx_dataset_size(ds);
  *loss = read_scalar(lsum) / n;
  *acc = read_scalar(csum) / n;
  ct_tensor_free(lsum);
  ct_tensor_free(csum);
}

static ct_idx_dataset *open_split(ct_context *ctx, const char *dir, const char *split, int64_t limit) {
  char images[1024], labels[1024];
  snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, split);
  snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, split);
  ct_idx_dataset_options o = ct_idx_dataset_default_options();
  o.limit = limit;
  ct_idx_dataset *ds = NULL;
  CHECK(ct_idx_dataset_open(ctx, images, labels, &o, &ds));
  return ds;
}

/* ---- data parallelism over MPI ranks (--distributed) ------------------------------------------ */
/* Without --distributed: one rank of one, and every function below does nothing. */
typedef struct {
  int rank, size;
  double sync_s, read_s, wait_s, write_s; /* summed over the steps */
  int64_t steps;
#ifdef CLTAPE_HAVE_MPI
  ct_dist *d;
#endif
} dist_state;

#ifdef CLTAPE_HAVE_MPI
static void dist_fail(dist_state *ds, const char *what) {
  fprintf(stderr, "error: rank %d: %s: %s\n", ds->rank, what, ct_dist_errmsg());
  if (ds->d) ct_dist_abort(ds->d, 1);
  exit(1);
}
#endif

static void dist_start(dist_state *ds, const config *c, int *argc, char ***argv) {
  memset(ds, 0, sizeof *ds);
  ds->size = 1;
  if (!c->distributed) return;
#ifdef CLTAPE_HAVE_MPI
  if (ct_dist_init(argc, argv, NULL, &ds->d) != CT_OK) dist_fail(ds, "ct_dist_init");
  ds->rank = ct_dist_rank(ds->d);
  ds->size = ct_dist_size(ds->d);
  if (c->batch % ds->size != 0) {
    fprintf(stderr, "error: --batch %lld is not a multiple of the %d ranks\n", (long long)c->batch, ds->size);
    ct_dist_abort(ds->d, 2);
  }
  if (ds->rank != 0 && !freopen("/dev/null", "w", stdout)) dist_fail(ds, "silencing stdout");
  printf("distributed: %d ranks, %lld images per rank in each global batch of %lld\n", ds->size,
         (long long)(c->batch / ds->size), (long long)c->batch);
#else
  (void)argc, (void)argv;
  fprintf(stderr, "error: --distributed: this build has no MPI (configure with Open MPI installed)\n");
  exit(2);
#endif
}

/* Every rank starts from rank 0's parameters. */
static void dist_broadcast(dist_state *ds, ct_module *model) {
#ifdef CLTAPE_HAVE_MPI
  if (!ds->d) return;
  ct_tensor *all[MAX_VARS];
  int n;
  CHECK(ct_module_variables(model, all, MAX_VARS, &n));
  if (n > MAX_VARS || ct_dist_broadcast_variables(ds->d, all, n, 0) != CT_OK) dist_fail(ds, "broadcasting the parameters");
#else
  (void)ds, (void)model;
#endif
}

/* grads[i] := mean of grads[i] over the ranks. */
static void dist_average(dist_state *ds, ct_context *ctx, ct_tensor **grads, int n) {
#ifdef CLTAPE_HAVE_MPI
  if (!ds->d) return;
  ct_tensor *mean[MAX_VARS];
  double t = now_s(), r, w, wr;
  CHECK(ct_context_sync(ctx)); /* the backward pass: timed apart from the communication */
  ds->sync_s += now_s() - t;
  if (ct_dist_allreduce_mean(ds->d, grads, n, mean) != CT_OK) dist_fail(ds, "averaging the gradients");
  ct_dist_last_timing(ds->d, &r, &w, &wr);
  ds->read_s += r, ds->wait_s += w, ds->write_s += wr, ds->steps++;
  ct_tensor_free_n(grads, n);
  memcpy(grads, mean, sizeof(ct_tensor *) * (size_t)n);
#else
  (void)ds, (void)ctx, (void)grads, (void)n;
#endif
}

/* grads[i] := the gradient of target for vars[i] averaged over the ranks, the all-reduce
 * overlapping the backward pass (ct_dist_gradient). */
static void dist_gradient(dist_state *ds, ct_tape *tape, ct_tensor *target, ct_tensor **vars, int n, ct_tensor **grads) {
#ifdef CLTAPE_HAVE_MPI
  double r, w, wr;
  if (ct_dist_gradient(ds->d, tape, &target, 1, vars, n, grads) != CT_OK) dist_fail(ds, "averaging the gradients");
  ct_dist_last_timing(ds->d, &r, &w, &wr);
  ds->read_s += r, ds->wait_s += w, ds->write_s += wr, ds->steps++;
#else
  (void)ds, (void)tape, (void)target, (void)vars, (void)n, (void)grads;
#endif
}

/* values[i] := sum over the ranks. */
static void dist_sum(dist_state *ds, double *values, int n) {
#ifdef CLTAPE_HAVE_MPI
  if (ds->d && ct_dist_allreduce_sum(ds->d, values, n) != CT_OK) dist_fail(ds, "summing the metrics");
#else
  (void)ds, (void)values, (void)n;
#endif
}

static void dist_end(dist_state *ds, int64_t params) {
#ifdef CLTAPE_HAVE_MPI
  if (!ds->d) return;
  if (ds->steps)
    printf("distributed: per step on rank 0: backward wait %.2f ms, gradients read back %.2f ms%s, all-reduce wait "
           "%.2f ms, written back %.2f ms; %lld parameters (%.2f MB of float32 gradients) per step\n",
           1e3 * ds->sync_s / ds->steps, 1e3 * ds->read_s / ds->steps,
           ds->sync_s > 0 ? "" : " (during the backward pass)", 1e3 * ds->wait_s / ds->steps,
           1e3 * ds->write_s / ds->steps, (long long)params, params * 4e-6);
  fflush(stdout);
  ct_dist_free(ds->d);
  ds->d = NULL;
#else
  (void)ds, (void)params;
#endif
}

int main(int argc, char **argv) {
  config c;
  parse(argc, argv, &c);
  dist_state ds;
  dist_start(&ds, &c, &argc, &argv);
  bool tty = isatty(STDOUT_FILENO) && !c.distributed; /* the running figures are one rank's */
  char ckpt_default[256], plot_default[256];
  snprintf(ckpt_default, sizeof ckpt_default, "fashion-%s.safetensors", c.kind);
  snprintf(plot_default, sizeof plot_default, "fashion-%s.svg", c.kind);
  const char *ckpt = c.checkpoint ? c.checkpoint : ckpt_default;
  const char *plot = c.plot ? c.plot : plot_default;

  ct_context *ctx;
  CHECK(ct_context_create(c.device, &ctx));
  ct_device_info dev;
  CHECK(ct_context_device(ctx, &dev));
  printf("device: %s (%s, %u compute units)\n", dev.name, dev.platform, dev.compute_units);

  double t0 = now_s();
  ct_idx_dataset *train = open_split(ctx, c.data, "train", c.limit);
  ct_idx_dataset *test = open_split(ctx, c.data, "t10k", 0);
  int rank;
  int64_t shape[CT_MAX_RANK];
  CHECK(ct_idx_dataset_example_shape(train, &rank, shape));
  int classes = ct_idx_dataset_num_classes(train);
  printf("data: %lld training and %lld test images of %lldx%lldx%lld, %d classes (%s, loaded in %.1f s)\n",
         (long long)ct_idx_dataset_size(train), (long long)ct_idx_dataset_size(test), (long long)shape[0],
         (long long)shape[1], (long long)shape[2], classes, c.data, now_s() - t0);

  ct_module *model = strcmp(c.model, "mlp") == 0 ? build_mlp(ctx, shape[0] * shape[1] * shape[2], classes)
                                                 : build_cnn(ctx, shape, classes, c.seed, c.batch_norm);
  ct_optimizer_options oo;
  if (strcmp(c.optimizer, "sgd") == 0) {
    oo = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
    oo.momentum = 0.9;
    oo.nesterov = true;
  } else if (strcmp(c.optimizer, "adamw") == 0) {
    oo = ct_optimizer_default_options(CT_OPTIMIZER_ADAMW);
  } else if (strcmp(c.optimizer, "adam") == 0) {
    oo = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  } else {
    fprintf(stderr, "error: --optimizer must be adam, adamw or sgd\n");
    return 2;
  }
  oo.learning_rate = c.lr;
  ct_optimizer *opt;
  CHECK(ct_optimizer_create(ctx, &oo, &opt));

  epoch_rec hist[MAX_EPOCHS];
  int done = 0;
  if (c.resume) {
    CHECK(ct_checkpoint_load(c.resume, model, opt));
    char buf[65536], kind[16];
    CHECK(ct_checkpoint_metadata(c.resume, "model", kind, sizeof kind));
    if (strcmp(kind, c.kind) != 0) {
      fprintf(stderr, "error: %s holds a %s model, not %s\n", c.resume, kind, c.kind);
      return 1;
    }
    if (ct_checkpoint_metadata(c.resume, "history", buf, sizeof buf) == CT_OK) done = history_parse(buf, hist, MAX_EPOCHS);
    printf("resumed from %s: %d epochs done, optimizer step %lld\n", c.resume, done,
           (long long)ct_optimizer_iterations(opt));
    CHECK(ct_module_set_seed(model, c.seed + (uint64_t)done * 7919));
  }
  dist_broadcast(&ds, model);
  CHECK(ct_module_summary(model, stdout));

  ct_tensor *vars[MAX_VARS], *grads[MAX_VARS];
  int nv;
  CHECK(ct_module_trainable_variables(model, vars, MAX_VARS, &nv));
  if (nv > MAX_VARS) {
    fprintf(stderr, "error: too many variables\n");
    return 1;
  }
  int64_t B = c.batch, steps = ct_idx_dataset_num_batches(train, B, false), n_train = ct_idx_dataset_size(train);
  double train_time = 0;
  for (int i = 0; i < done; ++i) train_time += hist[i].seconds;
  printf("training %s with %s, lr %g (x%g per epoch), batch %lld, %lld steps per epoch\n", c.kind,
         ct_optimizer_kind_name(oo.kind), c.lr, c.decay, (long long)B, (long long)steps);

  for (int epoch = done + 1; epoch <= c.epochs; ++epoch) {
    /* stop before an epoch that would end past the limit (judged by the last epoch's time) */
    double expect = done ? hist[done - 1].seconds : 0, stop = c.time_limit > 0 && train_time + expect > c.time_limit;
    dist_sum(&ds, &stop, 1); /* every rank stops at the same epoch */
    if (stop > 0) {
      printf("time limit: %.1f s of training done, epoch %d would end past %.0f s; stopping\n", train_time, epoch,
             c.time_limit);
      break;
    }
    CHECK(ct_optimizer_set_learning_rate(opt, c.lr * pow(c.decay, epoch - 1)));
    CHECK(ct_idx_dataset_shuffle(train, c.seed * 1000003u + (uint64_t)epoch));
    ct_tensor *lsum = NULL, *csum = NULL;
    double te = now_s();
    throughput_window rate;
    throughput_reset(&rate, RATE_WINDOW, te, 0);
    for (int64_t i = 0; i < steps; ++i) {
      /* this rank's shard of global batch i: B / ranks images (all of it in one process) */
      ct_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL, *lb, *cc;
      int64_t shard = B / ds.size, idx = i * ds.size + ds.rank;
      int64_t global_n = n_train - i * B < B ? n_train - i * B : B;
      if (idx < ct_idx_dataset_num_batches(train, shard, false)) {
        CHECK(ct_idx_dataset_batch(train, idx, shard, &x, &y));
        double n_here = (double)ct_tensor_shape(y)[0];
        ct_tape *tape;
        CHECK(ct_tape_begin(ctx, NULL, &tape));
        CHECK(ct_module_call(model, x, true, &logits));
        CHECK(ct_softmax_cross_entropy(logits, y, &loss));
        ct_tensor *target = loss; /* weighted so that the mean over the ranks is the global batch's mean */
        if (ds.size > 1) CHECK(ct_mul_scalar(loss, n_here * ds.size / (double)global_n, &target));
        CHECK(ct_tape_end(tape));
        if (ds.size > 1 && !c.no_overlap) dist_gradient(&ds, tape, target, vars, nv, grads);
        else CHECK(ct_tape_gradient(tape, &target, 1, vars, nv, NULL, CT_UNCONNECTED_NONE, grads));
        ct_tape_free(tape);
        if (ds.size > 1 && c.no_overlap) dist_average(&ds, ctx, grads, nv);
        if (target != loss) ct_tensor_free(target);
        CHECK(ct_mul_scalar(loss, n_here, &lb));
        CHECK(ct_count_correct(logits, y, &cc));
      } else { /* a short last batch left nothing for this rank */
        for (int k = 0; k < nv; ++k) CHECK(ct_zeros_like(vars[k], &grads[k]));
        CHECK(ct_scalar(ctx, CT_FLOAT32, 0, &lb));
        CHECK(ct_scalar(ctx, CT_INT32, 0, &cc));
        dist_average(&ds, ctx, grads, nv);
      }
      CHECK(ct_optimizer_apply(opt, grads, vars, nv));
      accumulate(&lsum, lb);
      accumulate(&csum, cc);
      ct_tensor_free_n(grads, nv);
      ct_tensor *tmp[] = {x, y, logits, loss}; /* NULL where this rank had no data */
      ct_tensor_free_n(tmp, 4);
      if (tty && ((i + 1) % c.print_every == 0 || i + 1 == steps)) {
        double seen = (double)((i + 1) * B < n_train ? (i + 1) * B : n_train);
        double run_loss = read_scalar(lsum) / seen; /* waits for step i */
        double run_acc = read_scalar(csum) / seen;
        throughput_add(&rate, now_s(), seen);
        progress(epoch, c.epochs, i + 1, steps, run_loss, run_acc, throughput_rate(&rate));
      }
    }
    epoch_rec r;
    double sums[2] = {read_scalar(lsum), read_scalar(csum)}; /* waits for the epoch's last step */
    dist_sum(&ds, sums, 2);
    r.loss = sums[0] / (double)n_train;
    r.acc = sums[1] / (double)n_train;
    r.seconds = now_s() - te;
    ct_tensor_free(lsum);
    ct_tensor_free(csum);
    train_time += r.seconds;
    double tv = now_s();
    r.test_loss = r.test_acc = 0;
    if (ds.rank == 0) evaluate(model, test, &r.test_loss, &r.test_acc); /* the ranks' models are equal */
    tv = now_s() - tv;
    hist[done++] = r;
    if (tty) printf("\n");
    printf("epoch %2d/%d: loss %.4f  acc %.2f%%  | test loss %.4f  acc %.2f%%  | %.1f s, %.0f img/s (eval %.1f s)\n",
           epoch, c.epochs, r.loss, 100 * r.acc, r.test_loss, 100 * r.test_acc, r.seconds, n_train / r.seconds, tv);
    fflush(stdout);

    char hbuf[65536], ebuf[16];
    history_format(hist, done, hbuf, sizeof hbuf);
    snprintf(ebuf, sizeof ebuf, "%d", done);
    const char *keys[] = {"model", "epochs", "history"}, *vals[] = {c.kind, ebuf, hbuf};
    if (ds.rank == 0) { /* one checkpoint and one plot for the job */
      CHECK(ct_checkpoint_save(ckpt, model, opt, keys, vals, 3));
      write_plot(plot, c.kind, hist, done);
    }
  }
  if (done == 0) {
    printf("nothing to do: %d epochs already done\n", done);
  } else {
    const epoch_rec *last = &hist[done - 1];
    printf("result: %s, %d epochs, test accuracy %.2f%%, training time %.1f s (%.1f s per epoch, %.0f images/s)\n",
           c.kind, done, 100 * last->test_acc, train_time, train_time / done, n_train * done / train_time);
    printf("checkpoint: %s\nplot: %s (and .png)\n", ckpt, plot);
  }
  dist_end(&ds, ct_module_num_params(model, true));
  ct_optimizer_free(opt);
  ct_module_free(model);
  ct_idx_dataset_free(train);
  ct_idx_dataset_free(test);
  ct_context_free(ctx);
  plot_cleanup();
  return 0;
}
