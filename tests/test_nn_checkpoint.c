/* Checkpoints (cltape_nn.h): a bit-exact round trip of a model and of an optimizer's state, and
 * every damaged or mismatching file rejected with a clear status while the model and the
 * optimizer stay exactly as they were. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_nn.h"
#include "nn/nn_internal.h"
#include "formats/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static ct_context *CTX;
static char DIR_[64];
#define SH(...) ((const int64_t[]){__VA_ARGS__})

static void setup(void) {
  CTX = ts_ctx();
  snprintf(DIR_, sizeof DIR_, "/tmp/cltape_ckpt_XXXXXX");
  cr_assert_not_null(mkdtemp(DIR_));
}
static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
  cr_assert_eq(system(cmd), 0);
  ct_context_free(CTX);
  CTX = NULL;
}

static const char *path_of(const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", DIR_, name);
  return buf[k];
}

/* conv (float32) -> flatten -> dense (float32), plus a float64 frozen variable of the container */
static ct_module *model(uint64_t seed) {
  ct_reset_module_names();
  ct_module *m, *l;
  ct_layer_options o = ct_layer_default_options();
  o.seed = seed;
  o.bias_initializer = CT_INIT_GLOROT_NORMAL;
  int k[2] = {3, 3};
  OK(ct_module_create(CTX, "net", NULL, NULL, &m));
  OK(ct_conv2d_create(CTX, 1, 8, k, NULL, CT_PADDING_SAME, CT_ACTIVATION_RELU, &o, &l));
  OK(ct_module_add(m, l));
  ct_module_free(l);
  OK(ct_dense_create(CTX, 8 * 4 * 4, 3, CT_ACTIVATION_NONE, &o, &l));
  OK(ct_module_add(m, l));
  ct_module_free(l);
  ct_tensor *s = NULL;
  /* a variable of a second dtype where the device has one: float64 */
  OK(ct_random_normal(CTX, ts_best_float(CTX), 1, SH(5), 0, 1, seed + 100, &s));
  OK(ct_module_add_variable(m, s, "scale", false, NULL));
  ct_tensor_free(s);
  return m;
}

typedef struct {
  int n;
  void *data[16];
  size_t bytes[16];
} snapshot;

static void take(const ct_module *m, snapshot *s) {
  ct_tensor *v[16];
  OK(ct_module_variables(m, v, 16, &s->n));
  for (int i = 0; i < s->n; ++i) {
    s->bytes[i] = (size_t)ct_tensor_size(v[i]) * ct_dtype_size(ct_tensor_dtype(v[i]));
    s->data[i] = malloc(s->bytes[i]);
    OK(ct_tensor_read(v[i], s->data[i], s->bytes[i]));
  }
}
static bool same(const snapshot *a, const snapshot *b) {
  if (a->n != b->n) return false;
  for (int i = 0; i < a->n; ++i)
    if (a->bytes[i] != b->bytes[i] || memcmp(a->data[i], b->data[i], a->bytes[i]) != 0) return false;
  return true;
}
static void drop(snapshot *s) {
  for (int i = 0; i < s->n; ++i) free(s->data[i]);
  s->n = 0;
}

static void assert_unchanged(const ct_module *m, const snapshot *before, const char *what) {
  snapshot now;
  take(m, &now);
  cr_assert(same(before, &now), "%s: the model changed", what);
  drop(&now);
}

Test(nn_checkpoint, round_trip_is_bit_exact, .init = setup, .fini = teardown) {
  ct_module *a = model(1), *b = model(2);
  snapshot sa, sb;
  take(a, &sa);
  take(b, &sb);
  cr_assert_eq(sa.n, 5);
  cr_assert(!same(&sa, &sb), "two seeds gave the same model");
  const char *keys[] = {"epoch", "note"}, *vals[] = {"3", "weights of net"};
  OK(ct_checkpoint_save(path_of("a.safetensors"), a, NULL, keys, vals, 2));
  OK(ct_checkpoint_load(path_of("a.safetensors"), b, NULL));
  drop(&sb);
  take(b, &sb);
  cr_assert(same(&sa, &sb), "the loaded model differs from the saved one");
  char buf[64];
  OK(ct_checkpoint_metadata(path_of("a.safetensors"), "epoch", buf, sizeof buf));
  cr_assert_str_eq(buf, "3");
  OK(ct_checkpoint_metadata(path_of("a.safetensors"), "note", buf, 5));
  cr_assert_str_eq(buf, "weig", "truncated to the buffer");
  EXPECT_STATUS(ct_checkpoint_metadata(path_of("a.safetensors"), "epochs", buf, sizeof buf), CT_ERR_NOT_FOUND);
  /* the file is plain safetensors with the variables' names */
  ct_st_file f;
  OK(ct_st_read(path_of("a.safetensors"), &f));
  cr_assert_eq(f.count, 5);
  const char *names[] = {"net/scale:0", "net/conv2d/kernel:0", "net/conv2d/bias:0", "net/dense/kernel:0", "net/dense/bias:0"};
  for (int i = 0; i < 5; ++i) cr_assert_not_null(ct_st_find(&f, names[i]), "%s", names[i]);
  cr_assert_eq(ct_st_find(&f, "net/scale:0")->dtype, ts_best_float(CTX));
  ct_st_file_free(&f);
  /* frozen state is not part of the file; loading does not change it */
  cr_assert(!ct_variable_trainable(ct_module_find_variable(b, "net/scale")));
  drop(&sa), drop(&sb);
  ct_module_free(a);
  ct_module_free(b);
}

/* Three Adam steps on a, save with the optimizer, load into b and a fresh optimizer: the next
 * step gives bit-identical variables. */
static void step(ct_module *m, ct_optimizer *opt, int k) {
  ct_tensor *v[16], *g[16];
  int n;
  OK(ct_module_trainable_variables(m, v, 16, &n));
  for (int i = 0; i < n; ++i) {
    OK(ct_random_normal(CTX, ct_tensor_dtype(v[i]), ct_tensor_rank(v[i]), ct_tensor_shape(v[i]), 0, 1,
                        (uint64_t)(k * 100 + i), &g[i]));
  }
  if (k == 0) { /* the dense bias gets no gradient at first: no slots for it yet */
    ct_tensor_free(g[n - 1]);
    g[n - 1] = NULL;
  }
  OK(ct_optimizer_apply(opt, g, v, n));
  ct_tensor_free_n(g, n);
}

Test(nn_checkpoint, optimizer_state_round_trip, .init = setup, .fini = teardown) {
  ct_optimizer_kind kinds[3] = {CT_OPTIMIZER_ADAM, CT_OPTIMIZER_SGD, CT_OPTIMIZER_ADAMW};
  for (int k = 0; k < 3; ++k) {
    ct_optimizer_options o = ct_optimizer_default_options(kinds[k]);
    o.momentum = kinds[k] == CT_OPTIMIZER_SGD ? 0.9 : 0;
    ct_module *a = model(1), *b = model(2);
    ct_optimizer *oa, *ob;
    OK(ct_optimizer_create(CTX, &o, &oa));
    OK(ct_optimizer_create(CTX, &o, &ob));
    for (int s = 0; s < 3; ++s) step(a, oa, s);
    step(b, ob, 0); /* b's optimizer has state of its own, replaced by the load */
    OK(ct_checkpoint_save(path_of("opt.safetensors"), a, oa, NULL, NULL, 0));
    OK(ct_checkpoint_load(path_of("opt.safetensors"), b, ob));
    cr_assert_eq(ct_optimizer_iterations(ob), 3);
    step(a, oa, 7);
    step(b, ob, 7);
    snapshot sa, sb;
    take(a, &sa);
    take(b, &sb);
    cr_assert(same(&sa, &sb), "%s: the step after loading differs", ct_optimizer_kind_name(kinds[k]));
    drop(&sa), drop(&sb);
    ct_optimizer_free(oa);
    ct_optimizer_free(ob);
    ct_module_free(a);
    ct_module_free(b);
  }
}

/* ---- damaged and mismatching files ---------------------------------------------------------------- */
static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  rewind(f);
  unsigned char *b = malloc(*n + 1);
  cr_assert_eq(fread(b, 1, *n, f), *n);
  fclose(f);
  return b;
}
static const char *write_bytes(const char *name, const void *b, size_t n) {
  const char *p = path_of(name);
  FILE *f = fopen(p, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
  return p;
}

static void expect_rejected(ct_module *m, ct_optimizer *opt, const char *path, ct_status want, const char *what) {
  snapshot before;
  take(m, &before);
  int64_t it = opt ? ct_optimizer_iterations(opt) : 0;
  ct_status s = ct_checkpoint_load(path, m, opt);
  cr_assert_eq(s, want, "%s: %s (wanted %s): %s", what, ct_status_name(s), ct_status_name(want), ct_errmsg());
  cr_assert(ct_errmsg()[0], "%s: no message", what);
  assert_unchanged(m, &before, what);
  if (opt) cr_assert_eq(ct_optimizer_iterations(opt), it, "%s: the optimizer changed", what);
  drop(&before);
}

/* Writes the entries of a good file with one change applied by `edit`. */
typedef void (*edit_fn)(ct_st_entry *e, int *n);
static const char *rewrite(const char *src, const char *name, edit_fn edit) {
  ct_st_file f;
  OK(ct_st_read(src, &f));
  ct_st_entry e[24];
  int n = f.count;
  memcpy(e, f.entries, sizeof(ct_st_entry) * (size_t)n);
  edit(e, &n);
  const char *p = path_of(name);
  ct_status s = ct_st_write_meta(p, e, n, (const char *const *)f.meta_keys, (const char *const *)f.meta_values,
                                 f.meta_count);
  cr_assert_eq(s, CT_OK, "%s", ct_errmsg());
  ct_st_file_free(&f);
  return p;
}
static int find(ct_st_entry *e, int n, const char *name) {
  for (int i = 0; i < n; ++i)
    if (strcmp(e[i].name, name) == 0) return i;
  cr_assert_fail("no entry %s", name);
  return -1;
}
static void drop_bias(ct_st_entry *e, int *n) {
  int i = find(e, *n, "net/dense/bias:0");
  e[i] = e[--*n];
}
static float extra_data[3] = {1, 2, 3};
static void add_extra(ct_st_entry *e, int *n) {
  e[*n] = e[find(e, *n, "net/dense/bias:0")];
  e[*n].name = "net/extra:0";
  e[*n].data = extra_data;
  (*n)++;
}
static void reshape_kernel(ct_st_entry *e, int *n) {
  int i = find(e, *n, "net/dense/kernel:0");
  e[i].shape[0] = 3;
  e[i].shape[1] = e[i].nbytes / 4 / 3; /* same bytes, other shape */
}
static double bias64[3] = {0.5, 0.25, 0.125};
static void retype_bias(ct_st_entry *e, int *n) {
  int i = find(e, *n, "net/dense/bias:0");
  e[i].dtype = CT_FLOAT64;
  e[i].nbytes = sizeof bias64;
  e[i].data = bias64;
}
static void drop_one_slot(ct_st_entry *e, int *n) {
  int i = find(e, *n, "optimizer/net/dense/kernel:0/v");
  e[i] = e[--*n];
}
static void rename_slot(ct_st_entry *e, int *n) {
  int i = find(e, *n, "optimizer/net/dense/kernel:0/v");
  e[i].name = "optimizer/net/dense/kernel:0/w";
}

Test(nn_checkpoint, damaged_or_mismatching_files_leave_the_model_unchanged, .init = setup, .fini = teardown) {
  ct_module *a = model(1), *b = model(2);
  ct_optimizer *oa, *ob, *sgd;
  OK(ct_optimizer_create(CTX, NULL, &oa));
  OK(ct_optimizer_create(CTX, NULL, &ob));
  ct_optimizer_options so = ct_optimizer_default_options(CT_OPTIMIZER_SGD);
  so.momentum = 0.5;
  OK(ct_optimizer_create(CTX, &so, &sgd));
  step(a, oa, 1);
  step(b, ob, 2);
  step(b, sgd, 3);
  char good[256], plain[256];
  snprintf(good, sizeof good, "%s", path_of("good.safetensors"));
  snprintf(plain, sizeof plain, "%s", path_of("plain.safetensors"));
  OK(ct_checkpoint_save(good, a, oa, NULL, NULL, 0));
  OK(ct_checkpoint_save(plain, a, NULL, NULL, NULL, 0));
  size_t n;
  unsigned char *bytes = slurp(good, &n);
  uint64_t hlen = 0;
  memcpy(&hlen, bytes, 8); /* little-endian host */
  /* truncated anywhere */
  size_t cuts[] = {0, 5, 8, 8 + hlen / 2, 8 + hlen, 8 + hlen + 7, n - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; ++i) {
    char what[64];
    snprintf(what, sizeof what, "file cut at %zu of %zu bytes", cuts[i], n);
    expect_rejected(b, ob, write_bytes("cut.safetensors", bytes, cuts[i]), CT_ERR_FORMAT, what);
  }
  /* a bad header: length beyond the file, broken JSON, trailing garbage in the data */
  unsigned char *bad = malloc(n + 16);
  memcpy(bad, bytes, n);
  uint64_t huge = (uint64_t)n * 4;
  memcpy(bad, &huge, 8);
  expect_rejected(b, ob, write_bytes("len.safetensors", bad, n), CT_ERR_FORMAT, "header length beyond the file");
  memcpy(bad, bytes, n);
  bad[8] = '[';
  expect_rejected(b, ob, write_bytes("json.safetensors", bad, n), CT_ERR_FORMAT, "header is not a JSON object");
  memcpy(bad, bytes, n);
  memcpy(bad + n, "garbage!", 8);
  expect_rejected(b, ob, write_bytes("tail.safetensors", bad, n + 8), CT_ERR_FORMAT, "bytes after the last tensor");
  /* an unsupported dtype */
  memcpy(bad, bytes, n);
  char *hdr = (char *)bad + 8, *f32 = strstr(hdr, "\"F32\"");
  cr_assert_not_null(f32);
  memcpy(f32, "\"U32\"", 5);
  expect_rejected(b, ob, write_bytes("u32.safetensors", bad, n), CT_ERR_DTYPE, "a U32 tensor");
  free(bad);
  free(bytes);
  /* files that are not there or not files */
  expect_rejected(b, ob, path_of("missing.safetensors"), CT_ERR_IO, "no such file");
  expect_rejected(b, ob, DIR_, CT_ERR_IO, "a directory");
  /* valid files that do not match the model */
  expect_rejected(b, NULL, rewrite(plain, "m1.safetensors", drop_bias), CT_ERR_MISMATCH, "a variable missing");
  expect_rejected(b, NULL, rewrite(plain, "m2.safetensors", add_extra), CT_ERR_MISMATCH, "an extra tensor");
  expect_rejected(b, NULL, rewrite(plain, "m3.safetensors", reshape_kernel), CT_ERR_MISMATCH, "another shape");
  expect_rejected(b, NULL, rewrite(plain, "m4.safetensors", retype_bias), CT_ERR_MISMATCH, "another dtype");
  /* optimizer state that does not match */
  expect_rejected(b, ob, plain, CT_ERR_MISMATCH, "no optimizer state in the file");
  expect_rejected(b, sgd, good, CT_ERR_MISMATCH, "Adam state for an SGD optimizer");
  expect_rejected(b, ob, rewrite(good, "o1.safetensors", drop_one_slot), CT_ERR_MISMATCH, "a slot missing");
  expect_rejected(b, ob, rewrite(good, "o2.safetensors", rename_slot), CT_ERR_MISMATCH, "an unknown slot");
  /* a model of another architecture */
  ct_module *other = NULL;
  ct_reset_module_names();
  OK(ct_dense_create(CTX, 4, 4, CT_ACTIVATION_NONE, NULL, &other));
  expect_rejected(other, NULL, good, CT_ERR_MISMATCH, "another model");
  /* the optimizer's slots are unchanged too */
  ct_tensor *v[16], *before[2], *after[2];
  int nv;
  OK(ct_module_trainable_variables(b, v, 16, &nv));
  OK(ct__optimizer_slots(ob, v[0]->id, before));
  double *m0 = ts_read(before[0]);
  expect_rejected(b, ob, rewrite(good, "o3.safetensors", drop_one_slot), CT_ERR_MISMATCH, "a slot missing, again");
  OK(ct__optimizer_slots(ob, v[0]->id, after));
  cr_assert_eq(after[0], before[0]);
  double *m1 = ts_read(after[0]);
  cr_assert(memcmp(m0, m1, sizeof(double) * (size_t)ct_tensor_size(after[0])) == 0);
  free(m0), free(m1);
  /* and the good file still loads */
  OK(ct_checkpoint_load(good, b, ob));
  snapshot sa, sb;
  take(a, &sa);
  take(b, &sb);
  cr_assert(same(&sa, &sb));
  drop(&sa), drop(&sb);
  ct_module_free(other);
  ct_optimizer_free(oa);
  ct_optimizer_free(ob);
  ct_optimizer_free(sgd);
  ct_module_free(a);
  ct_module_free(b);
}

Test(nn_checkpoint, save_errors, .init = setup, .fini = teardown) {
  ct_module *a = model(1);
  const char *k[] = {"cltape.format"}, *v[] = {"2"};
  EXPECT_STATUS(ct_checkpoint_save(path_of("x.safetensors"), a, NULL, k, v, 1), CT_ERR_INVALID);
  EXPECT_STATUS(ct_checkpoint_save(path_of("no/such/dir/x.safetensors"), a, NULL, NULL, NULL, 0), CT_ERR_IO);
  EXPECT_STATUS(ct_checkpoint_save(NULL, a, NULL, NULL, NULL, 0), CT_ERR_NULL);
  EXPECT_STATUS(ct_checkpoint_save(path_of("x.safetensors"), NULL, NULL, NULL, NULL, 0), CT_ERR_NULL);
  EXPECT_STATUS(ct_checkpoint_load(path_of("x.safetensors"), NULL, NULL), CT_ERR_NULL);
  cr_assert_neq(access(path_of("x.safetensors"), F_OK), 0, "a failed save left a file");
  /* a failed save leaves an existing checkpoint as it was */
  OK(ct_checkpoint_save(path_of("x.safetensors"), a, NULL, NULL, NULL, 0));
  size_t n1, n2;
  unsigned char *b1 = slurp(path_of("x.safetensors"), &n1);
  EXPECT_STATUS(ct_checkpoint_save(path_of("x.safetensors"), a, NULL, k, v, 1), CT_ERR_INVALID);
  unsigned char *b2 = slurp(path_of("x.safetensors"), &n2);
  cr_assert(n1 == n2 && memcmp(b1, b2, n1) == 0);
  free(b1), free(b2);
  ct_module_free(a);
}

/* ---- hostile files ---------------------------------------------------------------------------------- */
/* A copy of src with metadata key set to value (added when absent). */
static const char *with_meta(const char *src, const char *name, const char *key, const char *value) {
  ct_st_file f;
  OK(ct_st_read(src, &f));
  const char *k[32], *v[32];
  int n = 0;
  bool set = false;
  for (int i = 0; i < f.meta_count; ++i) {
    k[n] = f.meta_keys[i];
    v[n++] = strcmp(f.meta_keys[i], key) == 0 ? (set = true, value) : f.meta_values[i];
  }
  if (!set) k[n] = key, v[n++] = value;
  const char *p = path_of(name);
  ct_status s = ct_st_write_meta(p, f.entries, f.count, k, v, n);
  cr_assert_eq(s, CT_OK, "%s", ct_errmsg());
  ct_st_file_free(&f);
  return p;
}

/* A FIFO (no writer) or a device given as a checkpoint fails at once instead of blocking. */
Test(nn_checkpoint, fifos_and_devices_fail_at_once, .init = setup, .fini = teardown, .timeout = 30) {
  const char *fifo = path_of("pipe.safetensors");
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  ct_module *b = model(2);
  const char *paths[] = {fifo, "/dev/null"};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; ++i) {
    char v[16] = "x";
    EXPECT_STATUS(ct_checkpoint_metadata(paths[i], "cltape.format", v, sizeof v), CT_ERR_IO);
    cr_assert(strstr(ct_errmsg(), "not a regular file") && strstr(ct_errmsg(), paths[i]), "%s", ct_errmsg());
    cr_assert_str_eq(v, "");
    expect_rejected(b, NULL, paths[i], CT_ERR_IO, paths[i]);
  }
  ct_module_free(b);
}

Test(nn_checkpoint, crafted_metadata_is_refused, .init = setup, .fini = teardown) {
  ct_module *a = model(1), *b = model(2);
  ct_optimizer *oa, *ob;
  OK(ct_optimizer_create(CTX, NULL, &oa));
  OK(ct_optimizer_create(CTX, NULL, &ob));
  step(a, oa, 1);
  char good[256];
  snprintf(good, sizeof good, "%s", path_of("good.safetensors"));
  OK(ct_checkpoint_save(good, a, oa, NULL, NULL, 0));
  /* iteration counts that are negative, too large, or would overflow at the next step */
  const char *bad_iters[] = {"-1", "9223372036854775807", "9223372036854775808", "1e3", "", " 5"};
  for (size_t i = 0; i < sizeof bad_iters / sizeof *bad_iters; ++i) {
    char what[64];
    snprintf(what, sizeof what, "iterations \"%s\"", bad_iters[i]);
    expect_rejected(b, ob, with_meta(good, "it.safetensors", "cltape.optimizer.iterations", bad_iters[i]),
                    CT_ERR_FORMAT, what);
    cr_assert(strstr(ct_errmsg(), "iteration count"), "%s", ct_errmsg());
  }
  /* the largest count that loads: one more step reaches INT64_MAX, the next one is refused */
  OK(ct_checkpoint_load(with_meta(good, "it.safetensors", "cltape.optimizer.iterations", "9223372036854775806"), b, ob));
  cr_assert_eq(ct_optimizer_iterations(ob), INT64_MAX - 1);
  step(b, ob, 2);
  cr_assert_eq(ct_optimizer_iterations(ob), INT64_MAX);
  snapshot before, after;
  take(b, &before);
  ct_tensor *v[16], *g[16];
  int n;
  OK(ct_module_trainable_variables(b, v, 16, &n));
  for (int i = 0; i < n; ++i) OK(ct_ones_like(v[i], &g[i]));
  EXPECT_STATUS(ct_optimizer_apply(ob, g, v, n), CT_ERR_INVALID);
  ct_tensor_free_n(g, n);
  take(b, &after);
  cr_assert(same(&before, &after), "a refused step changed the model");
  cr_assert_eq(ct_optimizer_iterations(ob), INT64_MAX);
  drop(&before), drop(&after);
  /* a format version this library does not know */
  ct_optimizer *oc;
  OK(ct_optimizer_create(CTX, NULL, &oc));
  const char *versions[] = {"2", "0", "1.0", ""};
  for (size_t i = 0; i < sizeof versions / sizeof *versions; ++i) {
    expect_rejected(b, oc, with_meta(good, "ver.safetensors", "cltape.format", versions[i]), CT_ERR_FORMAT,
                    versions[i]);
    char want[32];
    snprintf(want, sizeof want, "version \"%s\"", versions[i]);
    cr_assert(strstr(ct_errmsg(), want), "the message does not name the version: %s", ct_errmsg());
  }
  /* metadata reading does not judge the version: it only reads strings */
  char val[16];
  OK(ct_checkpoint_metadata(with_meta(good, "ver.safetensors", "cltape.format", "7"), "cltape.format", val, sizeof val));
  cr_assert_str_eq(val, "7");
  ct_optimizer_free(oa);
  ct_optimizer_free(ob);
  ct_optimizer_free(oc);
  ct_module_free(a);
  ct_module_free(b);
}

/* A key twice inside one tensor's description: cJSON would take the first, Python's json the last. */
Test(nn_checkpoint, a_key_twice_in_a_tensor_entry_is_refused, .init = setup, .fini = teardown) {
  ct_module *a = model(1), *b = model(2);
  char good[256];
  snprintf(good, sizeof good, "%s", path_of("good.safetensors"));
  OK(ct_checkpoint_save(good, a, NULL, NULL, NULL, 0));
  size_t n;
  unsigned char *bytes = slurp(good, &n);
  /* "shape":[ -> "shape":[...],"shape":[ keeps the length if written over the padding: rebuild instead */
  uint64_t hlen;
  memcpy(&hlen, bytes, 8);
  char *hdr = malloc(hlen + 64);
  memcpy(hdr, bytes + 8, hlen);
  hdr[hlen] = 0;
  char *dt = strstr(hdr, "\"dtype\":\"F32\"");
  cr_assert_not_null(dt);
  char *nh = malloc(hlen + 64);
  size_t pre = (size_t)(dt - hdr);
  int len = snprintf(nh, hlen + 64, "%.*s\"dtype\":\"F64\",%s", (int)pre, hdr, dt);
  unsigned char *nb = malloc(8 + (size_t)len + (n - 8 - hlen));
  uint64_t nl = (uint64_t)len;
  memcpy(nb, &nl, 8);
  memcpy(nb + 8, nh, (size_t)len);
  memcpy(nb + 8 + len, bytes + 8 + hlen, n - 8 - hlen);
  const char *p = write_bytes("dup.safetensors", nb, 8 + (size_t)len + (n - 8 - hlen));
  expect_rejected(b, NULL, p, CT_ERR_FORMAT, "dtype twice");
  cr_assert(strstr(ct_errmsg(), "'dtype' appears twice"), "%s", ct_errmsg());
  char v[8];
  EXPECT_STATUS(ct_checkpoint_metadata(p, "cltape.format", v, sizeof v), CT_ERR_FORMAT);
  free(bytes), free(hdr), free(nh), free(nb);
  ct_module_free(a);
  ct_module_free(b);
}

/* ct_checkpoint_metadata reads the header only: a 1 GiB tensor in a sparse file is never read. */
Test(nn_checkpoint, metadata_reads_only_the_header, .init = setup, .fini = teardown) {
  const char *h = "{\"big\":{\"dtype\":\"F32\",\"shape\":[268435456],\"data_offsets\":[0,1073741824]},"
                  "\"__metadata__\":{\"cltape.format\":\"1\",\"note\":\"sparse\"}}";
  uint64_t hl = strlen(h);
  unsigned char head[256];
  memcpy(head, &hl, 8);
  memcpy(head + 8, h, hl);
  const char *p = write_bytes("sparse.safetensors", head, 8 + hl);
  cr_assert_eq(truncate(p, (off_t)(8 + hl + 1073741824ull)), 0);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  char v[32];
  OK(ct_checkpoint_metadata(p, "note", v, sizeof v));
  cr_assert_str_eq(v, "sparse");
  getrusage(RUSAGE_SELF, &r1);
  /* reading the tensor would take 1 GiB of memory: the peak grows by far less */
  cr_assert_lt(r1.ru_maxrss - r0.ru_maxrss, 256 * 1024, "the peak memory grew by %ld KiB",
               r1.ru_maxrss - r0.ru_maxrss);
  fprintf(stderr, "checkpoint: metadata of a 1 GiB sparse checkpoint read, peak memory grew by %ld KiB\n",
          r1.ru_maxrss - r0.ru_maxrss);
  /* the header is still checked against the file's size */
  cr_assert_eq(truncate(p, (off_t)(8 + hl + 1073741823ull)), 0);
  EXPECT_STATUS(ct_checkpoint_metadata(p, "note", v, sizeof v), CT_ERR_FORMAT);
}

/* Two Dense layers (in -> 4 -> 3) in a Sequential, after `extra` unrelated Dense layers were created. */
static ct_module *dense_pair(int extra, int64_t in) {
  ct_reset_module_names();
  ct_module *seq, *l;
  ct_layer_options o = ct_layer_default_options();
  for (int i = 0; i < extra; ++i) {
    OK(ct_dense_create(CTX, 2, 2, CT_ACTIVATION_NONE, &o, &l));
    ct_module_free(l);
  }
  OK(ct_sequential_create(CTX, NULL, &seq));
  OK(ct_dense_create(CTX, in, 4, CT_ACTIVATION_RELU, &o, &l));
  OK(ct_sequential_add(seq, l));
  ct_module_free(l);
  OK(ct_dense_create(CTX, 4, 3, CT_ACTIVATION_NONE, &o, &l));
  OK(ct_sequential_add(seq, l));
  ct_module_free(l);
  return seq;
}

Test(nn_checkpoint, a_load_failing_on_shifted_layer_names_says_how_to_fix_it, .init = setup, .fini = teardown) {
  ct_module *a = dense_pair(0, 6);
  const char *p = path_of("two.safetensors");
  OK(ct_checkpoint_save(p, a, NULL, NULL, NULL, 0));
  /* one Dense more before the model: its layers are dense_1 and dense_2 */
  ct_module *b = dense_pair(1, 6);
  EXPECT_STATUS(ct_checkpoint_load(p, b, NULL), CT_ERR_MISMATCH);
  cr_assert(strstr(ct_errmsg(), "dense_1/kernel:0 has shape (4, 3) in the file, (6, 4) in the model"), "%s",
            ct_errmsg());
  cr_assert(strstr(ct_errmsg(), "ct_reset_module_names()") && strstr(ct_errmsg(), "explicit names"), "no hint: %s",
            ct_errmsg());
  /* the hint's remedy: names counted from a reset load */
  ct_module *c = dense_pair(0, 6);
  OK(ct_checkpoint_load(p, c, NULL));
  /* a shape that differs without any shift gets no naming hint */
  ct_module *d = dense_pair(0, 5);
  EXPECT_STATUS(ct_checkpoint_load(p, d, NULL), CT_ERR_MISMATCH);
  cr_assert(strstr(ct_errmsg(), "dense/kernel:0 has shape (6, 4) in the file, (5, 4) in the model"), "%s", ct_errmsg());
  cr_assert_null(strstr(ct_errmsg(), "ct_reset_module_names"), "hint without a shift: %s", ct_errmsg());
  ct_module_free(a);
  ct_module_free(b);
  ct_module_free(c);
  ct_module_free(d);
}

Test(nn_checkpoint, plain_named_tensors_round_trip, .init = setup, .fini = teardown) {
  ct_tensor *t[3];
  const double v0[] = {1.5, -2, 3.25, 1e-30, 7, -0.0};
  const double v1[] = {1, -2, 2147483647, -2147483647};
  const double v2[] = {42};
  t[0] = ts_tensor(CTX, CT_FLOAT32, 2, SH(2, 3), v0);
  t[1] = ts_tensor(CTX, CT_INT32, 1, SH(4), v1);
  t[2] = ts_tensor(CTX, ts_best_float(CTX), 0, NULL, v2);
  const char *names[] = {"embedding/table", "counts", "scale"};
  const char *p = path_of("plain.safetensors");
  OK(ct_tensors_save(p, (const ct_tensor *const *)t, names, 3));
  int n = -1;
  char **got_names = NULL;
  ct_tensor **got = NULL;
  OK(ct_tensors_load(CTX, p, &n, &got_names, &got));
  cr_assert_eq(n, 3);
  for (int i = 0; i < 3; ++i) {
    cr_assert_str_eq(got_names[i], names[i]);
    cr_assert_eq(ct_tensor_dtype(got[i]), ct_tensor_dtype(t[i]));
    cr_assert_eq(ct_tensor_rank(got[i]), ct_tensor_rank(t[i]));
    size_t bytes = (size_t)ct_tensor_size(t[i]) * ct_dtype_size(ct_tensor_dtype(t[i]));
    cr_assert_eq(ct_tensor_size(got[i]), ct_tensor_size(t[i]));
    unsigned char a[64], b[64];
    OK(ct_tensor_read(t[i], a, bytes));
    OK(ct_tensor_read(got[i], b, bytes));
    cr_assert_eq(memcmp(a, b, bytes), 0, "%s differs", names[i]);
  }
  ct_tensors_load_free(n, got_names, got);
  /* no tensors at all */
  OK(ct_tensors_save(path_of("empty.safetensors"), NULL, NULL, 0));
  OK(ct_tensors_load(CTX, path_of("empty.safetensors"), &n, &got_names, &got));
  cr_assert_eq(n, 0);
  ct_tensors_load_free(n, got_names, got);
  /* a checkpoint is a file of named tensors too */
  ct_module *m = dense_pair(0, 6);
  OK(ct_checkpoint_save(path_of("ckpt.safetensors"), m, NULL, NULL, NULL, 0));
  OK(ct_tensors_load(CTX, path_of("ckpt.safetensors"), &n, &got_names, &got));
  cr_assert_eq(n, 4);
  cr_assert_str_eq(got_names[0], "dense/kernel:0");
  ct_tensors_load_free(n, got_names, got);
  ct_module_free(m);
  for (int i = 0; i < 3; ++i) ct_tensor_free(t[i]);
}

Test(nn_checkpoint, plain_named_tensor_errors, .init = setup, .fini = teardown) {
  ct_tensor *t[2];
  const double v[] = {1, 2};
  t[0] = ts_tensor(CTX, CT_FLOAT32, 1, SH(2), v);
  t[1] = ts_tensor(CTX, CT_FLOAT32, 1, SH(2), v);
  const char *same[] = {"a", "a"}, *null_name[] = {"a", NULL};
  const char *p = path_of("x.safetensors");
  EXPECT_STATUS(ct_tensors_save(p, (const ct_tensor *const *)t, same, 2), CT_ERR_INVALID);
  EXPECT_STATUS(ct_tensors_save(p, (const ct_tensor *const *)t, null_name, 2), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensors_save(p, NULL, same, 2), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensors_save(NULL, (const ct_tensor *const *)t, same, 1), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensors_save(p, (const ct_tensor *const *)t, same, -1), CT_ERR_INVALID);
  cr_assert_neq(access(p, F_OK), 0, "a failed save wrote %s", p);
  int n = 5;
  char **names = (char **)1;
  ct_tensor **ts = (ct_tensor **)1;
  EXPECT_STATUS(ct_tensors_load(CTX, path_of("missing.safetensors"), &n, &names, &ts), CT_ERR_IO);
  cr_assert(n == 0 && names == NULL && ts == NULL, "outputs not cleared on error");
  FILE *f = fopen(path_of("junk.safetensors"), "wb");
  cr_assert(f);
  fputs("not a safetensors file at all", f);
  fclose(f);
  EXPECT_STATUS(ct_tensors_load(CTX, path_of("junk.safetensors"), &n, &names, &ts), CT_ERR_FORMAT);
  EXPECT_STATUS(ct_tensors_load(NULL, p, &n, &names, &ts), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensors_load(CTX, p, NULL, &names, &ts), CT_ERR_NULL);
  ct_tensor_free(t[0]);
  ct_tensor_free(t[1]);
}
