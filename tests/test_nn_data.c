/* IDX datasets (cltape_nn.h; one source of ct_dataset): reading images and labels (plain and
 * gzip), conversion options, batches, shuffling by seed, damaged files, and the Fashion-MNIST
 * files of the Debian package dataset-fashion-mnist (scripts/setup.sh installs it). */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static ct_context *CTX;
static char DIR_[64];
#define FASHION "/usr/share/datasets/fashion-mnist"

static void setup(void) {
  CTX = ts_ctx();
  snprintf(DIR_, sizeof DIR_, "/tmp/cltape_idx_XXXXXX");
  cr_assert_not_null(mkdtemp(DIR_));
}
static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
  cr_assert_eq(system(cmd), 0);
  ct_context_free(CTX);
  CTX = NULL;
}

/* An IDX file of unsigned bytes (type 0x08), or of `type` with the given raw big-endian bytes. */
static size_t idx_bytes(unsigned char *out, int type, int ndims, const uint32_t *dims, const void *data, size_t n) {
  out[0] = out[1] = 0;
  out[2] = (unsigned char)type;
  out[3] = (unsigned char)ndims;
  size_t k = 4;
  for (int i = 0; i < ndims; ++i) {
    out[k++] = (unsigned char)(dims[i] >> 24);
    out[k++] = (unsigned char)(dims[i] >> 16);
    out[k++] = (unsigned char)(dims[i] >> 8);
    out[k++] = (unsigned char)dims[i];
  }
  memcpy(out + k, data, n);
  return k + n;
}

static char *write_file(const char *name, const void *b, size_t n, bool gz) {
  char *p = malloc(256);
  snprintf(p, 256, "%s/%s", DIR_, name);
  if (gz) {
    gzFile f = gzopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(gzwrite(f, b, (unsigned)n), (int)n);
    gzclose(f);
  } else {
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
  }
  return p;
}

/* 10 images of 3x4 with pixel (i, r, c) = 12 i + 4 r + c, labels i % 3 */
static unsigned char IMG[16 + 120], LAB[8 + 10];
static size_t img_n, lab_n;
static void make_data(void) {
  unsigned char px[120], lb[10];
  for (int i = 0; i < 120; ++i) px[i] = (unsigned char)i;
  for (int i = 0; i < 10; ++i) lb[i] = (unsigned char)(i % 3);
  img_n = idx_bytes(IMG, 0x08, 3, (const uint32_t[]){10, 3, 4}, px, 120);
  lab_n = idx_bytes(LAB, 0x08, 1, (const uint32_t[]){10}, lb, 10);
}

static ct_idx_dataset *open_ok(const char *im, const char *lb, const ct_idx_dataset_options *o) {
  ct_idx_dataset *ds = NULL;
  OK(ct_idx_dataset_open(CTX, im, lb, o, &ds));
  cr_assert_not_null(ds);
  return ds;
}

Test(nn_data, reads_batches_plain_and_gzip, .init = setup, .fini = teardown) {
  make_data();
  for (int gz = 0; gz < 2; ++gz) {
    char *im = write_file(gz ? "im.gz" : "im", IMG, img_n, gz), *lb = write_file(gz ? "lb.gz" : "lb", LAB, lab_n, gz);
    ct_idx_dataset *ds = open_ok(im, lb, NULL);
    cr_assert_eq(ct_idx_dataset_size(ds), 10);
    cr_assert_eq(ct_idx_dataset_num_classes(ds), 3);
    int rank;
    int64_t shape[8];
    OK(ct_idx_dataset_example_shape(ds, &rank, shape));
    cr_assert(rank == 3 && shape[0] == 3 && shape[1] == 4 && shape[2] == 1);
    cr_assert_eq(ct_idx_dataset_num_batches(ds, 4, false), 3);
    cr_assert_eq(ct_idx_dataset_num_batches(ds, 4, true), 2);
    ct_tensor *x = NULL, *y = NULL;
    OK(ct_idx_dataset_batch(ds, 1, 4, &x, &y));
    ts_assert_shape(x, 4, (const int64_t[]){4, 3, 4, 1}, "batch 1 images");
    cr_assert_eq(ct_tensor_dtype(x), CT_FLOAT32);
    cr_assert_eq(ct_tensor_dtype(y), CT_INT32);
    double want[48];
    for (int i = 0; i < 48; ++i) want[i] = (48 + i) / 255.0;
    ts_assert_close(x, want, 48, 1e-7, 0, "batch 1 pixels");
    ts_assert_close(y, (const double[]){1, 2, 0, 1}, 4, 0, 0, "batch 1 labels");
    ct_tensor_free(x), ct_tensor_free(y);
    OK(ct_idx_dataset_batch(ds, 2, 4, &x, NULL)); /* the partial last batch */
    ts_assert_shape(x, 4, (const int64_t[]){2, 3, 4, 1}, "last batch");
    ct_tensor_free(x);
    EXPECT_STATUS(ct_idx_dataset_batch(ds, 3, 4, &x, &y), CT_ERR_INVALID);
    EXPECT_STATUS(ct_idx_dataset_batch(ds, 0, 0, &x, &y), CT_ERR_INVALID);
    cr_assert(x == NULL && y == NULL);
    /* an IDX dataset is a ct_dataset: the general functions take it */
    ct_dataset *general = ds;
    cr_assert_eq(ct_dataset_size(general), 10);
    cr_assert_eq(ct_dataset_num_classes(general), 3);
    OK(ct_dataset_batch(general, 1, 4, NULL, &y));
    ts_assert_close(y, (const double[]){1, 2, 0, 1}, 4, 0, 0, "batch 1 labels, ct_dataset_batch");
    ct_tensor_free(y);
    ct_idx_dataset_free(ds);
    /* options: float64 (where the device has it), another scale, no channel axis, a limit */
    ct_idx_dataset_options o = ct_idx_dataset_default_options();
    o.dtype = ts_best_float(CTX);
    o.scale = 2;
    o.offset = -1;
    o.channel_axis = false;
    o.limit = 7;
    ds = open_ok(im, lb, &o);
    cr_assert_eq(ct_idx_dataset_size(ds), 7);
    OK(ct_idx_dataset_example_shape(ds, &rank, shape));
    cr_assert(rank == 2 && shape[0] == 3 && shape[1] == 4);
    OK(ct_idx_dataset_batch(ds, 1, 5, &x, &y));
    ts_assert_shape(x, 3, (const int64_t[]){2, 3, 4}, "limited last batch");
    cr_assert_eq(ct_tensor_dtype(x), o.dtype);
    for (int i = 0; i < 24; ++i) want[i] = (60 + i) * 2.0 - 1;
    ts_assert_close(x, want, 24, 0, 0, "scaled pixels");
    ct_tensor_free(x), ct_tensor_free(y);
    ct_idx_dataset_free(ds);
    free(im), free(lb);
  }
}

/* The order of an epoch: the first pixel of each image identifies it (12 i). */
static void epoch_order(ct_idx_dataset *ds, int *order) {
  for (int b = 0; b < 3; ++b) {
    ct_tensor *x = NULL, *y = NULL;
    OK(ct_idx_dataset_batch(ds, b, 4, &x, &y));
    double *xv = ts_read(x), *yv = ts_read(y);
    int64_t k = ct_tensor_shape(x)[0];
    for (int64_t i = 0; i < k; ++i) {
      int id = (int)(xv[i * 12] * 255.0 / 12.0 + 0.5);
      order[b * 4 + i] = id;
      cr_assert_eq((int)yv[i], id % 3, "image %d came with another image's label", id);
    }
    free(xv), free(yv);
    ct_tensor_free(x), ct_tensor_free(y);
  }
}

Test(nn_data, shuffling_is_a_seeded_permutation, .init = setup, .fini = teardown) {
  make_data();
  char *im = write_file("im", IMG, img_n, false), *lb = write_file("lb", LAB, lab_n, false);
  ct_idx_dataset *ds = open_ok(im, lb, NULL);
  int o0[10], o1[10], o2[10], o3[10], o4[10];
  epoch_order(ds, o0);
  for (int i = 0; i < 10; ++i) cr_assert_eq(o0[i], i, "file order");
  OK(ct_idx_dataset_shuffle(ds, 7));
  epoch_order(ds, o1);
  OK(ct_idx_dataset_shuffle(ds, 8));
  epoch_order(ds, o2);
  OK(ct_idx_dataset_shuffle(ds, 7));
  epoch_order(ds, o3);
  cr_assert(memcmp(o1, o3, sizeof o1) == 0, "the same seed gave another order");
  cr_assert(memcmp(o1, o2, sizeof o1) != 0, "two seeds gave the same order");
  cr_assert(memcmp(o1, o0, sizeof o1) != 0, "shuffling kept the file order");
  int seen[10] = {0};
  for (int i = 0; i < 10; ++i) seen[o1[i]]++;
  for (int i = 0; i < 10; ++i) cr_assert_eq(seen[i], 1, "image %d appears %d times", i, seen[i]);
  OK(ct_idx_dataset_unshuffle(ds));
  epoch_order(ds, o4);
  cr_assert(memcmp(o0, o4, sizeof o0) == 0);
  ct_idx_dataset_free(ds);
  free(im), free(lb);
}

Test(nn_data, damaged_files_are_reported, .init = setup, .fini = teardown) {
  make_data();
  char *im = write_file("im", IMG, img_n, false), *lb = write_file("lb", LAB, lab_n, false);
  ct_idx_dataset *ds = NULL;
  struct {
    const char *name;
    bool images; /* which file is damaged */
    size_t len;
    bool gz;
    ct_status want;
    const char *why;
  } cases[] = {
      {"cut_im", true, 16 + 100, false, CT_ERR_FORMAT, "truncated image data"},
      {"cut_im.gz", true, 16 + 100, true, CT_ERR_FORMAT, "truncated image data, gzip"},
      {"cut_hdr", true, 10, false, CT_ERR_FORMAT, "truncated header"},
      {"cut_lb", false, 8 + 9, false, CT_ERR_FORMAT, "truncated labels"},
      {"empty", false, 0, false, CT_ERR_FORMAT, "empty label file"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
    char *p = write_file(cases[c].name, cases[c].images ? IMG : LAB, cases[c].len, cases[c].gz);
    ct_status s = cases[c].images ? ct_idx_dataset_open(CTX, p, lb, NULL, &ds) : ct_idx_dataset_open(CTX, im, p, NULL, &ds);
    cr_assert_eq(s, cases[c].want, "%s: %s: %s", cases[c].why, ct_status_name(s), ct_errmsg());
    cr_assert_null(ds);
    cr_assert(strstr(ct_errmsg(), p), "%s: the message does not name the file: %s", cases[c].why, ct_errmsg());
    free(p);
  }
  /* a gzip stream cut short */
  char *gz = write_file("im.gz", IMG, img_n, true);
  FILE *f = fopen(gz, "rb");
  unsigned char buf[512];
  size_t gn = fread(buf, 1, sizeof buf, f);
  fclose(f);
  char *cut = write_file("gzcut", buf, gn - 6, false);
  EXPECT_STATUS(ct_idx_dataset_open(CTX, cut, lb, NULL, &ds), CT_ERR_FORMAT);
  /* a bad magic */
  unsigned char bad[sizeof IMG];
  memcpy(bad, IMG, img_n);
  bad[2] = 0x42;
  char *bm = write_file("magic", bad, img_n, false);
  EXPECT_STATUS(ct_idx_dataset_open(CTX, bm, lb, NULL, &ds), CT_ERR_FORMAT);
  /* counts that differ, labels with two dimensions, float labels */
  unsigned char other[64];
  unsigned char lb9[9] = {0};
  size_t on = idx_bytes(other, 0x08, 1, (const uint32_t[]){9}, lb9, 9);
  char *l9 = write_file("l9", other, on, false);
  EXPECT_STATUS(ct_idx_dataset_open(CTX, im, l9, NULL, &ds), CT_ERR_MISMATCH);
  on = idx_bytes(other, 0x08, 2, (const uint32_t[]){10, 1}, LAB + 8, 10);
  char *l2 = write_file("l2", other, on, false);
  EXPECT_STATUS(ct_idx_dataset_open(CTX, im, l2, NULL, &ds), CT_ERR_FORMAT);
  unsigned char fl[40] = {0};
  on = idx_bytes(other, 0x0D, 1, (const uint32_t[]){10}, fl, 40);
  char *lf = write_file("lf", other, on, false);
  EXPECT_STATUS(ct_idx_dataset_open(CTX, im, lf, NULL, &ds), CT_ERR_FORMAT);
  /* missing files, bad arguments */
  char missing[128];
  snprintf(missing, sizeof missing, "%s/none", DIR_);
  EXPECT_STATUS(ct_idx_dataset_open(CTX, missing, lb, NULL, &ds), CT_ERR_IO);
  EXPECT_STATUS(ct_idx_dataset_open(CTX, im, NULL, NULL, &ds), CT_ERR_NULL);
  ct_idx_dataset_options o = ct_idx_dataset_default_options();
  o.dtype = CT_INT32;
  EXPECT_STATUS(ct_idx_dataset_open(CTX, im, lb, &o, &ds), CT_ERR_DTYPE);
  cr_assert_null(ds);
  char *all[] = {im, lb, gz, cut, bm, l9, l2, lf};
  for (int i = 0; i < 8; ++i) free(all[i]);
}

Test(nn_data, fashion_mnist_files, .init = setup, .fini = teardown) {
  ct_idx_dataset *ds = open_ok(FASHION "/t10k-images-idx3-ubyte.gz", FASHION "/t10k-labels-idx1-ubyte.gz", NULL);
  cr_assert_eq(ct_idx_dataset_size(ds), 10000);
  cr_assert_eq(ct_idx_dataset_num_classes(ds), 10);
  int rank;
  int64_t shape[8];
  OK(ct_idx_dataset_example_shape(ds, &rank, shape));
  cr_assert(rank == 3 && shape[0] == 28 && shape[1] == 28 && shape[2] == 1);
  ct_tensor *x = NULL, *y = NULL, *s = NULL;
  OK(ct_idx_dataset_batch(ds, 0, 10, &x, &y));
  ts_assert_close(y, (const double[]){9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, 10, 0, 0, "the first ten test labels");
  ct_tensor *first = NULL;
  int64_t b0[4] = {0, 0, 0, 0}, e0[4] = {1, 28, 28, 1};
  OK(ct_slice(x, b0, e0, NULL, &first));
  OK(ct_sum(first, NULL, 0, false, &s));
  cr_assert_float_eq(ts_item(s) * 255.0, 33456.0, 0.05); /* the first image's pixels add up to 33456 */
  ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(s), ct_tensor_free(first);
  ct_idx_dataset_free(ds);
}

/* A FIFO (no writer) or a device as either file fails at once instead of blocking. */
Test(nn_data, fifos_and_devices_fail_at_once, .init = setup, .fini = teardown, .timeout = 30) {
  make_data();
  char *im = write_file("im", IMG, img_n, false), *lb = write_file("lb", LAB, lab_n, false);
  char fifo[256];
  snprintf(fifo, sizeof fifo, "%s/pipe", DIR_);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  const char *bad[] = {fifo, "/dev/null"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i)
    for (int which = 0; which < 2; ++which) {
      ct_idx_dataset *ds = NULL;
      ct_status s = which ? ct_idx_dataset_open(CTX, im, bad[i], NULL, &ds) : ct_idx_dataset_open(CTX, bad[i], lb, NULL, &ds);
      cr_assert_eq(s, CT_ERR_IO, "%s: %s: %s", bad[i], ct_status_name(s), ct_errmsg());
      cr_assert_null(ds);
      cr_assert(strstr(ct_errmsg(), bad[i]) && strstr(ct_errmsg(), "not a regular file"), "%s", ct_errmsg());
    }
  free(im);
  free(lb);
}
