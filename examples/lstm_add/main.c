/*
 * cltape-lstm-add — an LSTM learns to add two numbers given as strings of digits ("12+45" ->
 * "57"), the sequence-to-sequence task of Keras' addition example.
 *
 * A query is the string "a+b" with both numbers zero-padded to D digits ("07+45"), read least
 * significant digit first ("54+70"); the answer is the sum zero-padded to D + 1 digits, also
 * least significant digit first ("250" for 052), one character per output position. Each
 * character is one of 12 ("0123456789+ "), given to the network one-hot (ct_one_hot). (Reading
 * digits in the order they are added is the usual trick of this task, Keras' REVERSE.)
 *
 * The model: an encoder LSTM reads the query and keeps its last state h; h is repeated for each
 * of the D + 1 answer positions and read by a decoder LSTM (return_sequences); a Dense layer maps
 * each decoder state to the 12 character logits. With --head dense the decoder is left out: one
 * Dense layer maps h to the logits of every answer position at once. Loss: softmax cross-entropy
 * of every answer character; optimizer: Adam, its rate falling along a cosine to a twentieth.
 *
 * Every pair of D-digit numbers (0 .. 10^D - 1 each) is a possible example; a seeded shuffle puts
 * --held-out of them aside. Training draws batches from the others; at the end the program
 * reports the exact-match accuracy (every character of the answer right) on the held-out pairs
 * and shows a few of them. With --min-accuracy A it exits with status 1 when the accuracy is
 * below A (the test suite runs it so).
 *
 *   cltape-lstm-add [--digits D] [--steps N] [--batch B] [--hidden H] [--lr R] [--seed S]
 *                   [--held-out N] [--head lstm|dense] [--print-every N] [--min-accuracy A]
 */
#define _POSIX_C_SOURCE 200809L
#include <cltape.h>
#include <cltape_nn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VOCAB 12
static const char CHARS[VOCAB + 1] = "0123456789+ ";

typedef struct {
  int digits, steps, batch, hidden, held_out, print_every;
  double lr, min_accuracy;
  uint64_t seed;
  bool lstm_head;
} config;

#define CT_CHECK(call)                                                  \
  do {                                                                  \
    if ((call) != CT_OK) {                                              \
      fprintf(stderr, "cltape-lstm-add: %s: %s\n", #call, ct_errmsg()); \
      exit(1);                                                          \
    }                                                                   \
  } while (0)

static void usage(void) {
  fprintf(stderr, "usage: cltape-lstm-add [--digits D] [--steps N] [--batch B] [--hidden H] [--lr R] [--seed S]\n"
                  "                       [--held-out N] [--head lstm|dense] [--print-every N] [--min-accuracy A]\n");
  exit(2);
}

static void parse(int argc, char **argv, config *c) {
  *c = (config){.digits = 2, .steps = 300, .batch = 128, .hidden = 128, .held_out = 1000, .print_every = 100,
                .lr = 0.02, .min_accuracy = -1, .seed = 1, .lstm_head = true};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || i + 1 >= argc) usage();
    const char *v = argv[++i];
    char *end = NULL;
    if (strcmp(a, "--digits") == 0) c->digits = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--steps") == 0) c->steps = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--batch") == 0) c->batch = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--hidden") == 0) c->hidden = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--held-out") == 0) c->held_out = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--print-every") == 0) c->print_every = (int)strtol(v, &end, 10);
    else if (strcmp(a, "--seed") == 0) c->seed = strtoull(v, &end, 10);
    else if (strcmp(a, "--lr") == 0) c->lr = strtod(v, &end);
    else if (strcmp(a, "--min-accuracy") == 0) c->min_accuracy = strtod(v, &end);
    else if (strcmp(a, "--head") == 0) {
      if (strcmp(v, "lstm") != 0 && strcmp(v, "dense") != 0) usage();
      c->lstm_head = strcmp(v, "lstm") == 0;
      end = (char *)v + strlen(v);
    } else usage();
    if (!end || *end) usage();
  }
  int64_t pairs = 1;
  for (int d = 0; d < 2 * c->digits; ++d) pairs *= 10;
  if (c->digits < 1 || c->digits > 3 || c->steps < 0 || c->batch < 1 || c->hidden < 1 || c->held_out < 1 ||
      c->held_out >= pairs || c->print_every < 1 || !(c->lr > 0)) {
    fprintf(stderr, "cltape-lstm-add: digits 1..3, steps >= 0, batch, hidden, print-every >= 1, lr > 0, and "
                    "held-out between 1 and the number of pairs - 1\n");
    exit(2);
  }
}

/* splitmix64: the example's own deterministic random numbers */
static uint64_t next_u64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int char_index(char ch) { return (int)(strchr(CHARS, ch) - CHARS); }

/* The query "a+b" with both numbers zero-padded to D digits, reversed (least significant digit
 * first), and the answer a + b zero-padded to D + 1 digits, also least significant first, as
 * character indices. */
static void encode(int digits, int a, int b, int32_t *query, int32_t *answer) {
  int ql = 2 * digits + 1, al = digits + 1;
  char q[16], s[16];
  snprintf(q, sizeof q, "%0*d+%0*d", digits, a, digits, b);
  snprintf(s, sizeof s, "%0*d", al, a + b);
  for (int i = 0; i < ql; ++i) query[i] = char_index(q[ql - 1 - i]);
  for (int i = 0; i < al; ++i) answer[i] = char_index(s[al - 1 - i]);
}

typedef struct {
  ct_module *encoder, *decoder, *head;
  int digits;
  bool lstm_head;
} model;

/* queries: int32 [B, 2D + 1] -> logits [B, D + 1, 12] */
static ct_status forward(const model *md, const ct_tensor *queries, ct_tensor **logits) {
  int64_t B = ct_tensor_shape(queries)[0], A = md->digits + 1;
  ct_tensor *x = NULL, *h = NULL, *h1 = NULL, *rep = NULL, *dec = NULL, *flat = NULL;
  ct_status s = ct_one_hot(queries, VOCAB, CT_FLOAT32, &x);
  if (s == CT_OK) s = ct_module_call(md->encoder, x, true, &h);
  if (md->lstm_head) {
    int64_t H = ct_tensor_shape(h)[1], shape[3] = {B, A, H};
    if (s == CT_OK) s = ct_expand_dims(h, 1, &h1);
    if (s == CT_OK) s = ct_broadcast_to(h1, 3, shape, &rep);
    if (s == CT_OK) s = ct_module_call(md->decoder, rep, true, &dec);
    if (s == CT_OK) s = ct_module_call(md->head, dec, true, logits);
  } else {
    int64_t shape[3] = {B, A, VOCAB};
    if (s == CT_OK) s = ct_module_call(md->head, h, true, &flat);
    if (s == CT_OK) s = ct_reshape(flat, 3, shape, logits);
  }
  ct_tensor *t[] = {x, h, h1, rep, dec, flat};
  ct_tensor_free_n(t, 6);
  return s;
}

/* Exact-match accuracy over the pairs idx[0 .. n): every answer character right. Prints the first
 * `show` of them. */
static double evaluate(const model *md, ct_context *ctx, const int32_t *pairs, int n, int show) {
  int D = md->digits, QL = 2 * D + 1, A = D + 1, chunk = 500, right = 0, mod = 1;
  for (int d = 0; d < D; ++d) mod *= 10;
  int32_t *q = malloc(sizeof(int32_t) * (size_t)chunk * (size_t)QL), *ans = malloc(sizeof(int32_t) * (size_t)chunk * (size_t)A);
  int32_t *pred = malloc(sizeof(int32_t) * (size_t)chunk * (size_t)A);
  if (!q || !ans || !pred) exit(1);
  for (int at = 0; at < n; at += chunk) {
    int b = n - at < chunk ? n - at : chunk;
    for (int i = 0; i < b; ++i) encode(D, pairs[at + i] / mod, pairs[at + i] % mod, q + i * QL, ans + i * A);
    ct_tensor *qt = NULL, *logits = NULL, *am = NULL;
    CT_CHECK(ct_tensor_from_data(ctx, CT_INT32, 2, (const int64_t[]){b, QL}, q, &qt));
    CT_CHECK(forward(md, qt, &logits));
    CT_CHECK(ct_argmax(logits, 2, &am));
    CT_CHECK(ct_tensor_read(am, pred, sizeof(int32_t) * (size_t)b * (size_t)A));
    for (int i = 0; i < b; ++i) {
      bool ok = memcmp(pred + i * A, ans + i * A, sizeof(int32_t) * (size_t)A) == 0;
      right += ok;
      if (at + i < show) {
        char qs[16] = {0}, ps[16] = {0}, as[16] = {0};
        for (int k = 0; k < QL; ++k) qs[k] = CHARS[q[i * QL + QL - 1 - k]];
        for (int k = 0; k < A; ++k) ps[A - 1 - k] = CHARS[pred[i * A + k]], as[A - 1 - k] = CHARS[ans[i * A + k]];
        printf("  %s = %s %s %s\n", qs, ps, ok ? "right" : "wrong, want", ok ? "" : as);
      }
    }
    ct_tensor *t[] = {qt, logits, am};
    ct_tensor_free_n(t, 3);
  }
  free(q), free(ans), free(pred);
  return (double)right / n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  config c;
  parse(argc, argv, &c);
  ct_context *ctx = NULL;
  CT_CHECK(ct_context_create(NULL, &ctx));
  const int D = c.digits, QL = 2 * D + 1, A = D + 1;
  int mod = 1;
  for (int d = 0; d < D; ++d) mod *= 10;
  /* every pair a * mod + b, shuffled: the first held_out are never trained on */
  int npairs = mod * mod;
  int32_t *pairs = malloc(sizeof(int32_t) * (size_t)npairs);
  if (!pairs) return 1;
  uint64_t rng = c.seed;
  for (int i = 0; i < npairs; ++i) pairs[i] = i;
  for (int i = npairs - 1; i > 0; --i) {
    int j = (int)(next_u64(&rng) % (uint64_t)(i + 1));
    int32_t t = pairs[i];
    pairs[i] = pairs[j];
    pairs[j] = t;
  }
  const int32_t *held = pairs, *train = pairs + c.held_out;
  int ntrain = npairs - c.held_out;

  /* the model; its weights are seeded from c.seed */
  model md = {NULL, NULL, NULL, D, c.lstm_head};
  ct_rnn_options ro = ct_rnn_default_options();
  ct_layer_options lo = ct_layer_default_options();
  ro.seed = c.seed;
  ro.name = "encoder";
  CT_CHECK(ct_lstm_create(ctx, VOCAB, c.hidden, false, &ro, &md.encoder));
  lo.seed = c.seed;
  if (c.lstm_head) {
    ro.name = "decoder";
    ro.seed = c.seed + 1;
    CT_CHECK(ct_lstm_create(ctx, c.hidden, c.hidden, true, &ro, &md.decoder));
    CT_CHECK(ct_dense_create(ctx, c.hidden, VOCAB, CT_ACTIVATION_NONE, &lo, &md.head));
  } else {
    CT_CHECK(ct_dense_create(ctx, c.hidden, (int64_t)A * VOCAB, CT_ACTIVATION_NONE, &lo, &md.head));
  }
  ct_module *parts[3] = {md.encoder, md.decoder, md.head};
  ct_tensor *vars[16];
  int nvars = 0;
  for (int i = 0; i < 3; ++i) {
    if (!parts[i]) continue;
    int n = 0;
    CT_CHECK(ct_module_trainable_variables(parts[i], vars + nvars, 16 - nvars, &n));
    nvars += n;
  }
  ct_optimizer_options oo = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  oo.learning_rate = c.lr;
  ct_optimizer *opt = NULL;
  CT_CHECK(ct_optimizer_create(ctx, &oo, &opt));
  /* the rate falls from lr to lr / 20 along a cosine over the run: large steps first, then calm */
  ct_lr_schedule sched = ct_lr_schedule_default(CT_LR_COSINE, c.lr);
  sched.decay_steps = c.steps > 0 ? c.steps : 1;
  sched.min_learning_rate = c.lr / 20;
  CT_CHECK(ct_optimizer_set_schedule(opt, &sched));
  printf("cltape-lstm-add: %d-digit numbers, %d training pairs, %d held out; %s head, hidden %d, batch %d, "
         "Adam lr %g (cosine decay), seed %llu\n",
         D, ntrain, c.held_out, c.lstm_head ? "LSTM" : "Dense", c.hidden, c.batch, c.lr, (unsigned long long)c.seed);

  int32_t *q = malloc(sizeof(int32_t) * (size_t)c.batch * (size_t)QL), *ans = malloc(sizeof(int32_t) * (size_t)c.batch * (size_t)A);
  if (!q || !ans) return 1;
  double t0 = now();
  for (int step = 1; step <= c.steps; ++step) {
    for (int i = 0; i < c.batch; ++i) {
      int p = train[next_u64(&rng) % (uint64_t)ntrain];
      encode(D, p / mod, p % mod, q + i * QL, ans + i * A);
    }
    ct_tensor *qt = NULL, *at = NULL, *logits = NULL, *loss = NULL, *grads[16];
    ct_tape *tape = NULL;
    CT_CHECK(ct_tensor_from_data(ctx, CT_INT32, 2, (const int64_t[]){c.batch, QL}, q, &qt));
    CT_CHECK(ct_tensor_from_data(ctx, CT_INT32, 2, (const int64_t[]){c.batch, A}, ans, &at));
    CT_CHECK(ct_tape_begin(ctx, NULL, &tape));
    CT_CHECK(forward(&md, qt, &logits));
    CT_CHECK(ct_softmax_cross_entropy(logits, at, &loss));
    CT_CHECK(ct_tape_end(tape));
    CT_CHECK(ct_tape_gradient(tape, &loss, 1, vars, nvars, NULL, CT_UNCONNECTED_NONE, grads));
    CT_CHECK(ct_optimizer_apply(opt, grads, vars, nvars));
    if (step % c.print_every == 0 || step == c.steps) {
      double l;
      CT_CHECK(ct_tensor_item(loss, &l));
      printf("step %5d  loss %.4f  %.1f s\n", step, l, now() - t0);
      fflush(stdout);
    }
    ct_tensor_free_n(grads, nvars);
    ct_tensor *t[] = {qt, at, logits, loss};
    ct_tensor_free_n(t, 4);
    ct_tape_free(tape);
  }
  double train_s = now() - t0;
  ct_context_stats st;
  CT_CHECK(ct_context_stats_get(ctx, &st));
  printf("held-out pairs (a few of them):\n");
  double acc = evaluate(&md, ctx, held, c.held_out, 8);
  printf("exact-match accuracy on %d held-out pairs: %.4f (%d steps in %.1f s, %.0f kernels a step)\n", c.held_out,
         acc, c.steps, train_s, c.steps ? (double)st.kernels_launched / c.steps : 0.0);
  free(q), free(ans), free(pairs);
  ct_optimizer_free(opt);
  for (int i = 0; i < 3; ++i) ct_module_free(parts[i]);
  ct_context_free(ctx);
  if (c.min_accuracy >= 0 && acc < c.min_accuracy) {
    fprintf(stderr, "cltape-lstm-add: accuracy %.4f is below %.4f\n", acc, c.min_accuracy);
    return 1;
  }
  return 0;
}
