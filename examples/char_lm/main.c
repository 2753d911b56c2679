/*
 * cltape-char-lm — a character-level decoder-only transformer trained on the text of Debian's
 * fortunes packages (fortunes, fortunes-min: /usr/share/games/fortunes), then asked for samples.
 *
 *   cltape-char-lm --minutes 10
 *   cltape-char-lm --steps 40 --context 32 --layers 1 --d-model 32 --check     (a quick test)
 *
 * The text: every regular file of the data folder whose name has no dot (the fortune files,
 * not their .dat indexes or .u8 links), in name order, joined; or one file given with --data.
 * Its bytes are the tokens (the vocabulary is the bytes that occur). The first 90% train, the
 * last 10% validate. Batches are windows of context + 1 bytes at offsets drawn by splitmix64
 * from --seed; the validation loss is the mean over --val-batches batches at fixed, evenly
 * spaced offsets. bench/peers/char_lm_torch.py trains the same model on the same data and
 * batches with PyTorch.
 *
 * The model: token embedding + learned position embedding, --layers pre-LN transformer blocks
 * (causal multi-head attention, MLP of 4 d_model with GELU), a final LayerNorm and a dense layer
 * to the vocabulary. Adam with a linear warmup, global-norm clipping at 1.
 *
 * The run ends after --steps steps or --minutes minutes (the first reached), then writes a
 * checkpoint, a plot of the training and validation loss (SVG and PNG), a CSV log and samples
 * of generated text. --check makes the exit status say whether the loss went down and the
 * samples hold only bytes of the vocabulary (the test char_lm_short).
 */
#define _POSIX_C_SOURCE 200809L
#include <cltape_nn.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "plot.h"


#define MAX_VARS 256
#define MAX_LAYERS 16

typedef struct {
  const char *data, *checkpoint, *plot, *log, *device, *prompt;
  int64_t steps, batch, context, layers, d_model, heads, warmup, eval_every, val_batches, sample_len;
  double minutes, lr, temperature;
  uint64_t seed;
  bool check;
} config;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: cltape-char-lm [options]\n"
          "  --data PATH           a folder of fortune files or one text file (default %s)\n"
          "  --steps N             stop after N steps (default 1000000)\n"
          "  --minutes M           stop after M minutes of training (default 10)\n"
          "  --batch N             sequences per batch (default 32)\n"
          "  --context N           positions per sequence (default 128)\n"
          "  --layers N            transformer blocks (default 2)\n"
          "  --d-model N           width (default 64)\n"
          "  --heads N             attention heads (default 4)\n"
          "  --lr X                Adam's learning rate (default 0.001)\n"
          "  --warmup N            steps of linear warmup (default 100)\n"
          "  --eval-every N        steps between validation losses (default 100)\n"
          "  --val-batches N       batches of the validation loss (default 16)\n"
          "  --seed N              batches and initial weights (default 1)\n"
          "  --sample N            bytes of each generated sample (default 300)\n"
          "  --prompt TEXT         start of the samples (default \"The \")\n"
          "  --temperature X       of the sampling (default 0.8)\n"
          "  --checkpoint PATH     (default char_lm.safetensors)\n"
          "  --plot PATH           SVG; a PNG is written next to it (default char_lm.svg)\n"
          "  --log PATH            CSV of step, seconds, training and validation loss (default char_lm.csv)\n"
          "  --device NAME         cltape device (default: CLTAPE_DEVICE or the first)\n"
          "  --check               exit status 1 unless the loss went down and sampling works\n",
          CLTAPE_FORTUNES_DIR);
}

static void parse(int argc, char **argv, config *c) {
  *c = (config){CLTAPE_FORTUNES_DIR, "char_lm.safetensors", "char_lm.svg", "char_lm.csv", NULL, "The ",
                1000000, 32, 128, 2, 64, 4, 100, 100, 16, 300, 10.0, 1e-3, 0.8, 1, false};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--check") == 0) c->check = true;
    else if (OPT("--data")) c->data = v;
    else if (OPT("--steps")) c->steps = atoll(v);
    else if (OPT("--minutes")) c->minutes = atof(v);
    else if (OPT("--batch")) c->batch = atoll(v);
    else if (OPT("--context")) c->context = atoll(v);
    else if (OPT("--layers")) c->layers = atoll(v);
    else if (OPT("--d-model")) c->d_model = atoll(v);
    else if (OPT("--heads")) c->heads = atoll(v);
    else if (OPT("--lr")) c->lr = atof(v);
    else if (OPT("--warmup")) c->warmup = atoll(v);
    else if (OPT("--eval-every")) c->eval_every = atoll(v);
    else if (OPT("--val-batches")) c->val_batches = atoll(v);
    else if (OPT("--seed")) c->seed = strtoull(v, NULL, 10);
    else if (OPT("--sample")) c->sample_len = atoll(v);
    else if (OPT("--prompt")) c->prompt = v;
    else if (OPT("--temperature")) c->temperature = atof(v);
    else if (OPT("--checkpoint")) c->checkpoint = v;
    else if (OPT("--plot")) c->plot = v;
    else if (OPT("--log")) c->log = v;
    else if (OPT("--device")) c->device = v;
    else {
      fprintf(stderr, "unknown or incomplete option %s\n", a);
      usage(stderr);
      exit(2);
    }
#undef OPT
  }
  if (c->steps < 1 || c->batch < 1 || c->context < 2 || c->layers < 1 || c->layers > MAX_LAYERS || c->d_model < 1 ||
      c->heads < 1 || c->d_model % c->heads || !(c->minutes > 0) || !(c->lr > 0) || c->warmup < 0 ||
      c->eval_every < 1 || c->val_batches < 1 || c->sample_len < 0 || !(c->temperature > 0)) {
    fprintf(stderr, "error: an option is out of range (d-model must be a multiple of heads)\n");
    exit(2);
  }
}

/* ---- the text ------------------------------------------------------------------------------- */
static void append_file(const char *path, unsigned char **text, size_t *len, size_t *cap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
    exit(1);
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (*len + n > *cap) {
      *cap = (*len + n) * 2;
      *text = realloc(*text, *cap);
      if (!*text) exit(1);
    }
    memcpy(*text + *len, buf, n);
    *len += n;
  }
  fclose(f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static unsigned char *read_text(const char *path, size_t *len) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "error: %s: %s (install Debian's fortunes package, or give --data)\n", path, strerror(errno));
    exit(1);
  }
  unsigned char *text = NULL;
  size_t cap = 0;
  *len = 0;
  if (!S_ISDIR(st.st_mode)) {
    append_file(path, &text, len, &cap);
    return text;
  }
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(errno));
    exit(1);
  }
  char **names = NULL;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strchr(e->d_name, '.')) continue; /* ., .., *.dat, *.u8 */
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", path, e->d_name);
    if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    names = realloc(names, sizeof *names * (size_t)(n + 1));
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  for (int i = 0; i < n; ++i) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", path, names[i]);
    append_file(full, &text, len, &cap);
    free(names[i]);
  }
  free(names);
  if (*len == 0) {
    fprintf(stderr, "error: no text in %s\n", path);
    exit(1);
  }
  return text;
}

/* ---- the model ------------------------------------------------------------------------------ */
typedef struct {
  int64_t context, vocab;
} lm_config;

/* ids [b, t] -> logits [b, t, vocab]: children 0 embedding, 1..L blocks, L+1 final LayerNorm,
 * L+2 head; own variable 0 the position embedding [context, d_model] */
static ct_status lm_forward(ct_module *self, const ct_tensor *x, bool training, ct_tensor **out, void *user) {
  (void)user;
  int n = ct_module_num_children(self);
  const int64_t *xs = ct_tensor_shape(x);
  ct_tensor *pos = ct_module_own_variable(self, 0), *h = NULL, *p = NULL, *next = NULL;
  int64_t begin[2] = {0, 0}, end[2] = {xs[1], ct_tensor_shape(pos)[1]};
  ct_status s = ct_module_call(ct_module_child(self, 0), x, training, &h);
  if (s == CT_OK) s = ct_slice(pos, begin, end, NULL, &p);
  if (s == CT_OK) s = ct_add(h, p, &next);
  ct_tensor_free(h);
  ct_tensor_free(p);
  h = next;
  for (int i = 1; i < n && s == CT_OK; ++i) {
    next = NULL;
    s = ct_module_call(ct_module_child(self, i), h, training, &next);
    ct_tensor_free(h);
    h = next;
  }
  if (s == CT_OK) *out = h;
  else ct_tensor_free(h);
  return s;
}

static ct_module *build_model(ct_context *ctx, const config *c, int64_t vocab) {
  ct_reset_module_names();
  ct_module *m = NULL, *l = NULL;
  CHECK(ct_module_create(ctx, "char_lm", lm_forward, NULL, &m));
  ct_layer_options o = ct_layer_default_options();
  o.seed = c->seed;
  int64_t ps[2] = {c->context, c->d_model};
  ct_tensor *pos = NULL;
  CHECK(ct_initialize(ctx, CT_INIT_GLOROT_UNIFORM, CT_FLOAT32, 2, ps, c->seed * 7919 + 17, &pos));
  CHECK(ct_module_add_variable(m, pos, "position", true, NULL));
  ct_tensor_free(pos);
  o.name = "token_embedding";
  CHECK(ct_embedding_create(ctx, vocab, c->d_model, &o, &l));
  CHECK(ct_module_add(m, l));
  ct_module_free(l);
  for (int64_t i = 0; i < c->layers; ++i) {
    char name[32];
    snprintf(name, sizeof name, "block%lld", (long long)i);
    o.name = name;
    o.seed = c->seed * 1000 + (uint64_t)i + 1;
    CHECK(ct_transformer_block_create(ctx, c->d_model, c->heads, 4 * c->d_model, true, &o, &l));
    CHECK(ct_module_add(m, l));
    ct_module_free(l);
  }
  o.seed = c->seed;
  o.name = "final_norm";
  CHECK(ct_layer_norm_create(ctx, c->d_model, 1e-5, &o, &l));
  CHECK(ct_module_add(m, l));
  ct_module_free(l);
  o.name = "head";
  CHECK(ct_dense_create(ctx, c->d_model, vocab, CT_ACTIVATION_NONE, &o, &l));
  CHECK(ct_module_add(m, l));
  ct_module_free(l);
  return m;
}

/* ---- batches -------------------------------------------------------------------------------- */
/* windows of t + 1 tokens at the given offsets: inputs [b, t] and targets [b, t] */
static void make_batch(ct_context *ctx, const int32_t *tok, const int64_t *offs, int64_t b, int64_t t, ct_tensor **x,
                       ct_tensor **y) {
  int32_t *xi = malloc(sizeof *xi * (size_t)(b * t)), *yi = malloc(sizeof *yi * (size_t)(b * t));
  if (!xi || !yi) exit(1);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < t; ++j) {
      xi[i * t + j] = tok[offs[i] + j];
      yi[i * t + j] = tok[offs[i] + j + 1];
    }
  int64_t shape[2] = {b, t};
  CHECK(ct_tensor_from_data(ctx, CT_INT32, 2, shape, xi, x));
  CHECK(ct_tensor_from_data(ctx, CT_INT32, 2, shape, yi, y));
  free(xi);
  free(yi);
}

static double validation_loss(ct_module *model, const int32_t *tok, int64_t start, int64_t len, const config *c) {
  ct_context *ctx = ct_tensor_context(ct_module_own_variable(model, 0));
  int64_t span = len - c->context - 1, *offs = malloc(sizeof *offs * (size_t)c->batch);
  int64_t nb = c->val_batches, total = nb * c->batch;
  double sum = 0;
  for (int64_t k = 0; k < nb; ++k) {
    for (int64_t i = 0; i < c->batch; ++i) offs[i] = start + (k * c->batch + i) * span / total;
    ct_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
    make_batch(ctx, tok, offs, c->batch, c->context, &x, &y);
    CHECK(ct_module_call(model, x, false, &logits));
    CHECK(ct_softmax_cross_entropy(logits, y, &loss));
    double v;
    CHECK(ct_tensor_item(loss, &v));
    sum += v;
    ct_tensor *all[] = {x, y, logits, loss};
    ct_tensor_free_n(all, 4);
  }
  free(offs);
  return sum / (double)nb;
}

/* ---- sampling ------------------------------------------------------------------------------- */
static int sample(ct_module *model, const config *c, const int *id_of, const unsigned char *byte_of, int64_t vocab,
                  uint64_t seed, FILE *f) {
  ct_context *ctx = ct_tensor_context(ct_module_own_variable(model, 0));
  int64_t cap = (int64_t)strlen(c->prompt) + c->sample_len + 1, n = 0;
  int32_t *ids = malloc(sizeof *ids * (size_t)cap);
  float *logits = malloc(sizeof *logits * (size_t)(c->context * vocab));
  double *prob = malloc(sizeof *prob * (size_t)vocab);
  int bad = 0;
  for (const char *p = c->prompt; *p; ++p)
    if (id_of[(unsigned char)*p] >= 0) ids[n++] = id_of[(unsigned char)*p];
  if (n == 0) ids[n++] = 0;
  fwrite(c->prompt, 1, strlen(c->prompt), f);
  uint64_t rng = seed;
  for (int64_t k = 0; k < c->sample_len; ++k) {
    int64_t t = n < c->context ? n : c->context, shape[2] = {1, t};
    ct_tensor *x = NULL, *y = NULL;
    CHECK(ct_tensor_from_data(ctx, CT_INT32, 2, shape, ids + n - t, &x));
    CHECK(ct_module_call(model, x, false, &y));
    CHECK(ct_tensor_read(y, logits, sizeof *logits * (size_t)(t * vocab)));
    ct_tensor_free(x);
    ct_tensor_free(y);
    const float *last = logits + (t - 1) * vocab;
    double mx = -INFINITY, z = 0;
    for (int64_t v = 0; v < vocab; ++v) mx = fmax(mx, last[v] / c->temperature);
    for (int64_t v = 0; v < vocab; ++v) z += prob[v] = exp(last[v] / c->temperature - mx);
    double u = (double)(splitmix64(&rng) >> 11) * 0x1.0p-53 * z;
    int64_t pick = vocab - 1;
    for (int64_t v = 0; v < vocab; ++v) {
      if (u < prob[v]) {
        pick = v;
        break;
      }
      u -= prob[v];
    }
    if (pick < 0 || pick >= vocab) bad++;
    ids[n++] = (int32_t)pick;
    fputc(byte_of[pick], f);
  }
  fputc('\n', f);
  free(ids);
  free(logits);
  free(prob);
  return bad;
}

static void write_plot(const char *path, const double *steps, const double *train, const double *val, int n) {
  plot *p = plot_create("Character-level transformer on fortunes", "step", "loss (nats per byte)");
  int r = p ? 0 : -1;
  if (r == 0) r = plot_add_series(p, "training loss (mean since the last point)", steps, train, n, 0);
  if (r == 0) r = plot_add_series(p, "validation loss", steps, val, n, 0);
  char png[4096];
  snprintf(png, sizeof png, "%.*s.png", (int)(strlen(path) > 4 ? strlen(path) - 4 : strlen(path)), path);
  if (r == 0 && plot_write_svg(p, path) != 0) fprintf(stderr, "warning: cannot write %s: %s\n", path, strerror(errno));
  if (r == 0 && plot_write_png(p, png) != 0) fprintf(stderr, "warning: cannot write %s: %s\n", png, strerror(errno));
  plot_free(p);
}

static void progress(double frac, int64_t step, double loss, double val, double elapsed) {
  int width = 24, fill = (int)(width * (frac > 1 ? 1 : frac));
  char bar[64];
  for (int i = 0; i < width; ++i) bar[i] = i < fill ? '#' : '-';
  bar[width] = 0;
  printf("\r[%s] step %6lld  loss %.4f  val %.4f  %5.0f s ", bar, (long long)step, loss, val, elapsed);
  fflush(stdout);
}

int main(int argc, char **argv) {
  config c;
  parse(argc, argv, &c);
  size_t len;
  unsigned char *text = read_text(c.data, &len);
  int id_of[256];
  unsigned char byte_of[256];
  int64_t vocab = 0;
  bool seen[256] = {0};
  for (size_t i = 0; i < len; ++i) seen[text[i]] = true;
  for (int b = 0; b < 256; ++b) {
    id_of[b] = seen[b] ? (int)vocab : -1;
    if (seen[b]) byte_of[vocab++] = (unsigned char)b;
  }
  int32_t *tok = malloc(sizeof *tok * len);
  if (!tok) return 1;
  for (size_t i = 0; i < len; ++i) tok[i] = id_of[text[i]];
  free(text);
  int64_t n_train = (int64_t)len * 9 / 10, n_val = (int64_t)len - n_train;
  if (n_train < c.context + 2 || n_val < c.context + 2) {
    fprintf(stderr, "error: %zu bytes of text are too few for a context of %lld\n", len, (long long)c.context);
    return 1;
  }

  ct_context *ctx = NULL;
  CHECK(ct_context_create(c.device, &ctx));
  ct_device_info dev;
  CHECK(ct_context_device(ctx, &dev));
  ct_module *model = build_model(ctx, &c, vocab);
  printf("text: %zu bytes from %s, vocabulary %lld, %lld training and %lld validation bytes\n", len, c.data,
         (long long)vocab, (long long)n_train, (long long)n_val);
  printf("device: %s\n", dev.name);
  printf("model: %lld layers, d_model %lld, %lld heads, context %lld, %lld parameters; batch %lld, Adam lr %g\n",
         (long long)c.layers, (long long)c.d_model, (long long)c.heads, (long long)c.context,
         (long long)ct_module_num_params(model, true), (long long)c.batch, c.lr);

  ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  oo.learning_rate = c.lr;
  oo.epsilon = 1e-8;
  oo.clip_global_norm = 1.0;
  ct_optimizer *opt = NULL;
  CHECK(ct_optimizer_create(ctx, &oo, &opt));
  if (c.warmup > 0) {
    ct_lr_schedule sch = ct_lr_schedule_default(CT_LR_CONSTANT, c.lr);
    sch.warmup_steps = c.warmup;
    CHECK(ct_optimizer_set_schedule(opt, &sch));
  }
  ct_tensor *vars[MAX_VARS], *grads[MAX_VARS];
  int nv = 0;
  CHECK(ct_module_trainable_variables(model, vars, MAX_VARS, &nv));
  if (nv > MAX_VARS) return 1;

  FILE *log = fopen(c.log, "w");
  if (log) fprintf(log, "step,seconds,train_loss,val_loss\n");
  bool tty = isatty(STDOUT_FILENO);
  int cap_pts = 1024, npts = 0;
  double *pstep = malloc(sizeof(double) * (size_t)cap_pts), *ptrain = malloc(sizeof(double) * (size_t)cap_pts),
         *pval = malloc(sizeof(double) * (size_t)cap_pts);
  int64_t *offs = malloc(sizeof *offs * (size_t)c.batch);
  uint64_t rng = c.seed;
  double first_losses = 0, run_sum = 0, last_val = NAN, budget = c.minutes * 60;
  int64_t run_n = 0, step = 0, n_first = 5;
  double t0 = now_s(), elapsed = 0;
  while (step < c.steps && elapsed < budget) {
    for (int64_t i = 0; i < c.batch; ++i) offs[i] = (int64_t)(splitmix64(&rng) % (uint64_t)(n_train - c.context - 1));
    ct_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
    make_batch(ctx, tok, offs, c.batch, c.context, &x, &y);
    ct_tape *tape = NULL;
    CHECK(ct_tape_begin(ctx, NULL, &tape));
    CHECK(ct_module_call(model, x, true, &logits));
    CHECK(ct_softmax_cross_entropy(logits, y, &loss));
    CHECK(ct_tape_end(tape));
    CHECK(ct_tape_gradient(tape, &loss, 1, vars, nv, NULL, CT_UNCONNECTED_NONE, grads));
    CHECK(ct_optimizer_apply(opt, grads, vars, nv));
    double lv;
    CHECK(ct_tensor_item(loss, &lv));
    ct_tensor_free_n(grads, nv);
    ct_tensor *all[] = {x, y, logits, loss};
    ct_tensor_free_n(all, 4);
    ct_tape_free(tape);
    if (!isfinite(lv)) {
      fprintf(stderr, "\nerror: the loss is %g at step %lld\n", lv, (long long)step);
      return 1;
    }
    step++;
    if (step <= n_first) first_losses += lv;
    run_sum += lv;
    run_n++;
    elapsed = now_s() - t0;
    bool last = step >= c.steps || elapsed >= budget;
    if (step % c.eval_every == 0 || last) {
      last_val = validation_loss(model, tok, n_train, n_val, &c);
      elapsed = now_s() - t0;
      if (npts == cap_pts) {
        cap_pts *= 2;
        pstep = realloc(pstep, sizeof(double) * (size_t)cap_pts);
        ptrain = realloc(ptrain, sizeof(double) * (size_t)cap_pts);
        pval = realloc(pval, sizeof(double) * (size_t)cap_pts);
      }
      pstep[npts] = (double)step, ptrain[npts] = run_sum / (double)run_n, pval[npts] = last_val;
      npts++;
      if (log) {
        fprintf(log, "%lld,%.1f,%.4f,%.4f\n", (long long)step, elapsed, run_sum / (double)run_n, last_val);
        fflush(log);
      }
      if (!tty) printf("step %lld  %.0f s  loss %.4f  val %.4f\n", (long long)step, elapsed, run_sum / (double)run_n, last_val);
      run_sum = 0, run_n = 0;
    }
    if (tty) {
      double frac = fmax((double)step / (double)c.steps, elapsed / budget);
      progress(frac, step, lv, last_val, elapsed);
    }
  }
  if (tty) printf("\n");
  /* the first batches once more, without training: has the model learned them? */
  int64_t n_last = step < n_first ? step : n_first;
  first_losses /= (double)(step < n_first ? step : n_first);
  double final_train = 0;
  {
    uint64_t r2 = c.seed;
    for (int64_t k = 0; k < n_last; ++k) {
      for (int64_t i = 0; i < c.batch; ++i)
        offs[i] = (int64_t)(splitmix64(&r2) % (uint64_t)(n_train - c.context - 1));
      ct_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
      make_batch(ctx, tok, offs, c.batch, c.context, &x, &y);
      CHECK(ct_module_call(model, x, false, &logits));
      CHECK(ct_softmax_cross_entropy(logits, y, &loss));
      double v;
      CHECK(ct_tensor_item(loss, &v));
      final_train += v / (double)n_last;
      ct_tensor *all[] = {x, y, logits, loss};
      ct_tensor_free_n(all, 4);
    }
  }
  printf("trained %lld steps in %.1f s (%.2f s per step, validation included)\n", (long long)step, elapsed,
         elapsed / (double)step);
  printf("loss on the first %lld batches: %.4f while training them, %.4f now\n", (long long)n_last, first_losses,
         final_train);
  printf("validation loss: %.4f nats per byte\n", last_val);
  if (log) fclose(log);

  char vocab_hex[513];
  for (int64_t v = 0; v < vocab; ++v) snprintf(vocab_hex + 2 * v, 3, "%02x", byte_of[v]);
  char cfg[256];
  snprintf(cfg, sizeof cfg, "layers=%lld d_model=%lld heads=%lld context=%lld", (long long)c.layers,
           (long long)c.d_model, (long long)c.heads, (long long)c.context);
  const char *keys[2] = {"char_lm.vocabulary", "char_lm.config"}, *vals[2] = {vocab_hex, cfg};
  CHECK(ct_checkpoint_save(c.checkpoint, model, opt, keys, vals, 2));
  printf("checkpoint: %s\n", c.checkpoint);
  write_plot(c.plot, pstep, ptrain, pval, npts);
  printf("plot: %s\n", c.plot);

  int bad = 0;
  for (int k = 0; k < 3; ++k) {
    printf("--- sample %d ---\n", k + 1);
    bad += sample(model, &c, id_of, byte_of, vocab, c.seed * 31 + (uint64_t)k, stdout);
  }
  int rc = 0;
  if (c.check) {
    bool down = final_train < first_losses - 0.05 && isfinite(last_val);
    printf("check: loss %s (%.4f -> %.4f), samples %s\n", down ? "went down" : "did NOT go down", first_losses,
           final_train, bad ? "hold ids outside the vocabulary" : "are made of the vocabulary");
    rc = down && !bad ? 0 : 1;
  }
  free(pstep);
  free(ptrain);
  free(pval);
  free(offs);
  free(tok);
  ct_optimizer_free(opt);
  ct_module_free(model);
  ct_context_free(ctx);
  plot_cleanup();
  return rc;
}
