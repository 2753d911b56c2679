/* NumPy files and datasets (cltape_nn.h): tensors saved to and loaded from .npy files, arrays of
 * .npz archives (stored and deflated, written here with libzip and by NumPy), files written by
 * NumPy itself (tests/npy_numpy.py, with Debian's python3-numpy: skipped with the reason where it
 * is missing), every malformed file refused with a status and a message naming the file, and
 * datasets from arrays in memory (copied), device tensors (borrowed), .npy files and .npz arrays,
 * one of them feeding a few training steps. docs/training.md quotes two functions of this file. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"
#include "cltape_nn.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

static ct_context *CTX;
static char DIR_[64];

static void setup(void) {
  CTX = ts_ctx();
  ts_tmpdir(DIR_, sizeof DIR_, "npy");
}
static void teardown(void) {
  ts_rmdir(DIR_);
  ct_context_free(CTX);
  CTX = NULL;
}

/* A path in the test's folder (static storage: 8 in rotation). */
static const char *P(const char *name) {
  static char bufs[8][256];
  static int k;
  char *b = bufs[k++ % 8];
  snprintf(b, 256, "%s/%s", DIR_, name);
  return b;
}

static void write_file(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot write %s", path);
  cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

static unsigned char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot read %s", path);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return b;
}

/* A .npy file's bytes: the preamble of `version`, the header text as given (padded to 64 bytes
 * with spaces and '\n' unless raw), then n data bytes. Returns the length. */
static size_t npy_bytes(unsigned char *out, int version, const char *header, bool raw, const void *data, size_t n) {
  size_t pre = version == 1 ? 10 : 12, h = strlen(header);
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (unsigned char)version;
  out[7] = 0;
  memcpy(out + pre, header, h);
  if (!raw) {
    while ((pre + h + 1) % 64) out[pre + h++] = ' ';
    out[pre + h++] = '\n';
  }
  for (size_t i = 0; i < pre - 8; ++i) out[8 + i] = (unsigned char)(h >> (8 * i));
  if (n) memcpy(out + pre + h, data, n);
  return pre + h + n;
}

static void assert_values(const ct_tensor *t, int64_t n, double (*want)(int64_t), const char *what) {
  double *v = ts_read(t);
  for (int64_t i = 0; i < n; ++i) cr_assert_eq(v[i], want(i), "%s: element %lld is %g, not %g", what, (long long)i, v[i], want(i));
  free(v);
}
static double counting(int64_t i) { return (double)i; }

/* ---- tensors to .npy and back ------------------------------------------------------------------ */
Test(npy, round_trip_every_dtype_and_rank, .init = setup, .fini = teardown) {
  const int64_t shapes[][4] = {{0}, {5}, {2, 3, 4}, {0, 3}};
  const int ranks[] = {0, 1, 3, 2};
  for (int d = 0; d < 3; ++d) {
    ct_dtype dt = (ct_dtype)d;
    if (!ts_has_dtype(CTX, dt)) continue;
    for (int s = 0; s < 4; ++s) {
      int64_t n = ts_numel(ranks[s], shapes[s]);
      double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
      for (int64_t i = 0; i < n; ++i) v[i] = dt == CT_INT32 ? (double)(i * 7 - 20) : (double)i * 0.37 - 3.5;
      ct_tensor *t = ts_tensor(CTX, dt, ranks[s], shapes[s], v), *back = NULL;
      const char *path = P("t.npy");
      OK(ct_tensor_save_npy(t, path));
      OK(ct_tensor_load_npy(CTX, path, &back));
      cr_assert_eq(ct_tensor_dtype(back), dt);
      ts_assert_shape(back, ranks[s], shapes[s], "loaded");
      double *want = ts_read(t);
      ts_assert_close(back, want, n, 0, 0, "round trip");
      free(want);
      /* the file as NumPy writes it: version 1.0, the header padded to a multiple of 64 bytes */
      size_t len;
      unsigned char *b = read_file(path, &len);
      cr_assert(len >= 64 && memcmp(b, "\x93NUMPY\x01\x00", 8) == 0);
      size_t hlen = b[8] | (size_t)b[9] << 8;
      cr_assert_eq((10 + hlen) % 64, 0);
      cr_assert_eq(b[10 + hlen - 1], '\n');
      cr_assert_eq(len, 10 + hlen + (size_t)n * ct_dtype_size(dt));
      const char *descr[] = {"'<f4'", "'<f8'", "'<i4'"};
      b[10 + hlen - 1] = 0;
      cr_assert(strstr((char *)b + 10, descr[d]), "header %s", (char *)b + 10);
      free(b);
      ct_tensor_free(t), ct_tensor_free(back);
      free(v);
    }
  }
  /* replacing a file leaves no temporary file behind */
  DIR *dir = opendir(DIR_);
  int files = 0;
  for (struct dirent *e; (e = readdir(dir));) files += e->d_name[0] != '.';
  closedir(dir);
  cr_assert_eq(files, 1);
}

/* Hand-made files of the integer and bool dtypes: int64 and bool read as themselves, uint64 as
 * int64, the narrower integers as int32; each value checked. */
Test(npy, integer_and_bool_dtypes, .init = setup, .fini = teardown) {
  unsigned char buf[256];
  struct {
    const char *descr;
    ct_dtype dtype;
    unsigned char data[16];
    size_t n;
    double want[2];
  } cases[] = {
      {"|u1", CT_INT32, {200, 7}, 2, {200, 7}},
      {"<u1", CT_INT32, {255, 0}, 2, {255, 0}},
      {"|i1", CT_INT32, {0xff, 0x80}, 2, {-1, -128}},
      {"<i2", CT_INT32, {0xfe, 0xff, 0x00, 0x80}, 4, {-2, -32768}},
      {"<u2", CT_INT32, {0xff, 0xff, 1, 0}, 4, {65535, 1}},
      {"|b1", CT_BOOL, {1, 0}, 2, {1, 0}},
      {"<i8", CT_INT64, {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff}, 16, {2147483647, -2147483648.0}},
      {"<u4", CT_INT32, {1, 0, 0, 0, 0, 0, 0, 0x7f}, 8, {1, 2130706432}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
    char h[128];
    snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (2,), }", cases[c].descr);
    write_file(P("i.npy"), buf, npy_bytes(buf, 1, h, false, cases[c].data, cases[c].n));
    ct_tensor *t = NULL;
    OK(ct_tensor_load_npy(CTX, P("i.npy"), &t));
    cr_assert_eq(ct_tensor_dtype(t), cases[c].dtype, "%s", cases[c].descr);
    ts_assert_close(t, cases[c].want, 2, 0, 0, cases[c].descr);
    ct_tensor_free(t);
  }
  /* int64 past what int32 and a double hold, exactly: 2^62 + 1 and -2^63 */
  {
    const int64_t want[2] = {((int64_t)1 << 62) + 1, INT64_MIN};
    for (int k = 0; k < 2; ++k) {
      char h[128];
      snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }", k ? "<u8" : "<i8", k ? 1 : 2);
      write_file(P("l.npy"), buf, npy_bytes(buf, 1, h, false, want, k ? 8 : 16));
      ct_tensor *t = NULL;
      OK(ct_tensor_load_npy(CTX, P("l.npy"), &t));
      cr_assert_eq(ct_tensor_dtype(t), CT_INT64);
      int64_t got[2] = {0, 0};
      OK(ct_tensor_read(t, got, sizeof(int64_t) * (size_t)ct_tensor_size(t)));
      for (int i = 0; i < (k ? 1 : 2); ++i)
        cr_assert_eq(got[i], want[i], "%s element %d: %lld, not %lld", k ? "<u8" : "<i8", i, (long long)got[i], (long long)want[i]);
      ct_tensor_free(t);
    }
  }
  /* values that the dtype read cannot hold: refused, the message names the dtype and the value */
  const unsigned char big4[8] = {0, 0, 0, 0x80, 0, 0, 0, 0};   /* <u4: 2^31 */
  const unsigned char big8[8] = {0, 0, 0, 0, 0, 0, 0, 0x80};   /* <u8: 2^63 */
  const struct {
    const char *descr;
    const unsigned char *data;
    int n;
    const char *value;
  } refused[] = {{"<u4", big4, 2, "2147483648"}, {"<u8", big8, 1, "9223372036854775808"}};
  for (int k = 0; k < 2; ++k) {
    char h[128];
    snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }", refused[k].descr, refused[k].n);
    write_file(P("r.npy"), buf, npy_bytes(buf, 1, h, false, refused[k].data, 8));
    ct_tensor *t = (ct_tensor *)1;
    EXPECT_STATUS(ct_tensor_load_npy(CTX, P("r.npy"), &t), CT_ERR_DTYPE);
    cr_assert_null(t);
    cr_assert(strstr(ct_errmsg(), refused[k].descr) && strstr(ct_errmsg(), refused[k].value), "%s", ct_errmsg());
  }
}

/* Fortran order and the header forms: version 2.0 and 3.0, double quotes, keys in another
 * order, Python 2's long extents, no trailing comma. */
Test(npy, fortran_order_and_header_forms, .init = setup, .fini = teardown) {
  unsigned char buf[512];
  float f[6] = {0, 3, 1, 4, 2, 5}; /* [[0,1,2],[3,4,5]] in Fortran order */
  write_file(P("f.npy"), buf, npy_bytes(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", false, f, 24));
  ct_tensor *t = NULL;
  OK(ct_tensor_load_npy(CTX, P("f.npy"), &t));
  ts_assert_shape(t, 2, (const int64_t[]){2, 3}, "fortran");
  assert_values(t, 6, counting, "fortran order read as C order");
  ct_tensor_free(t);
  float c[6] = {0, 1, 2, 3, 4, 5};
  const char *forms[] = {
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
      "{'shape': (2L, 3L), 'fortran_order': False, 'descr': '<f4'}",
      "{ 'descr' : '<f4' ,'fortran_order':False,'shape':(2,3,) , }",
  };
  for (int v = 1; v <= 3; ++v)
    for (int k = 0; k < 3; ++k) {
      write_file(P("h.npy"), buf, npy_bytes(buf, v, forms[k], false, c, 24));
      OK(ct_tensor_load_npy(CTX, P("h.npy"), &t));
      ts_assert_shape(t, 2, (const int64_t[]){2, 3}, forms[k]);
      assert_values(t, 6, counting, forms[k]);
      ct_tensor_free(t);
    }
}

/* Every malformed file: a status, a message naming the file, no tensor. */
Test(npy, malformed_files_are_refused, .init = setup, .fini = teardown) {
  static unsigned char buf[4096];
  float four[4] = {1, 2, 3, 4};
  const char *H = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
  struct {
    const char *why;
    int version;
    const char *header;
    size_t data;     /* bytes of `four` after the header */
    ct_status want;
    const char *says; /* a part of the message */
  } cases[] = {
      {"unsupported version", 4, H, 16, CT_ERR_FORMAT, "version 4.0"},
      {"not a dict", 1, "('descr', '<f4')", 16, CT_ERR_FORMAT, "dict"},
      {"missing key", 1, "{'descr': '<f4', 'shape': (4,), }", 16, CT_ERR_FORMAT, "'fortran_order' is missing"},
      {"unknown key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", 16, CT_ERR_FORMAT, "'x'"},
      {"key twice", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", 16, CT_ERR_FORMAT, "twice"},
      {"bad bool", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (4,)}", 16, CT_ERR_FORMAT, "True nor False"},
      {"shape not a tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [4]}", 16, CT_ERR_FORMAT, "tuple"},
      {"(n) is no tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4)}", 16, CT_ERR_FORMAT, "tuple"},
      {"negative extent", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,)}", 16, CT_ERR_FORMAT, "non-negative"},
      {"extent overflows", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 16, CT_ERR_FORMAT, "overflows"},
      {"product overflows", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", 16, CT_ERR_FORMAT, "more bytes"},
      {"nine dimensions", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,4)}", 16, CT_ERR_FORMAT, "8 dimensions"},
      {"no closing quote", 1, "{'descr: '<f4', 'fortran_order': False, 'shape': (4,)}", 16, CT_ERR_FORMAT, "bad header"},
      {"escape in a string", 1, "{'des\\cr': '<f4', 'fortran_order': False, 'shape': (4,)}", 16, CT_ERR_FORMAT, "escape"},
      {"junk after the dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} x", 16, CT_ERR_FORMAT, "follows the dict"},
      {"no comma", 1, "{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}", 16, CT_ERR_FORMAT, "no ','"},
      {"truncated data", 1, H, 12, CT_ERR_FORMAT, "truncated"},
      {"trailing data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 16, CT_ERR_FORMAT, "follow"},
      {"big-endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", 16, CT_ERR_DTYPE, "'>f4' is big-endian"},
      {"structured", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", 16, CT_ERR_DTYPE, "structured"},
      {"float128", 1, "{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }", 16, CT_ERR_DTYPE, "'<f16'"},
      {"object", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, CT_ERR_DTYPE, "'|O'"},
      {"no byte order", 1, "{'descr': '|f4', 'fortran_order': False, 'shape': (4,), }", 16, CT_ERR_DTYPE, "'|f4'"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; ++c) {
    const char *path = P("bad.npy");
    write_file(path, buf, npy_bytes(buf, cases[c].version, cases[c].header, false, four, cases[c].data));
    ct_tensor *t = (ct_tensor *)1;
    ct_status s = ct_tensor_load_npy(CTX, path, &t);
    cr_assert_eq(s, cases[c].want, "%s: %s: %s", cases[c].why, ct_status_name(s), ct_errmsg());
    cr_assert_null(t, "%s", cases[c].why);
    cr_assert(strstr(ct_errmsg(), path), "%s: the message does not name the file: %s", cases[c].why, ct_errmsg());
    cr_assert(strstr(ct_errmsg(), cases[c].says), "%s: the message does not say '%s': %s", cases[c].why, cases[c].says,
              ct_errmsg());
  }
  /* cut short at every length: the preamble, the header length, the header, the data */
  size_t whole = npy_bytes(buf, 1, H, false, four, 16);
  for (size_t len = 0; len < whole; ++len) {
    write_file(P("cut.npy"), buf, len);
    ct_tensor *t = (ct_tensor *)1;
    EXPECT_STATUS(ct_tensor_load_npy(CTX, P("cut.npy"), &t), CT_ERR_FORMAT);
    cr_assert_null(t);
  }
  /* a header length beyond the file, and beyond what a reader accepts */
  size_t n = npy_bytes(buf, 2, H, false, four, 16);
  buf[10] = 0x01, buf[11] = 0x10; /* 2^28 + ... */
  write_file(P("long.npy"), buf, n);
  EXPECT_STATUS(ct_tensor_load_npy(CTX, P("long.npy"), &(ct_tensor *){NULL}), CT_ERR_FORMAT);
  cr_assert(strstr(ct_errmsg(), "header length"), "%s", ct_errmsg());
  write_file(P("magic.npy"), "\x93NUMPZ\x01\x00\x10\x00{}", 12);
  EXPECT_STATUS(ct_tensor_load_npy(CTX, P("magic.npy"), &(ct_tensor *){NULL}), CT_ERR_FORMAT);
  /* paths that are no file to read */
  ct_tensor *t = NULL;
  EXPECT_STATUS(ct_tensor_load_npy(CTX, P("missing.npy"), &t), CT_ERR_IO);
  cr_assert(strstr(ct_errmsg(), "missing.npy"));
  EXPECT_STATUS(ct_tensor_load_npy(CTX, DIR_, &t), CT_ERR_IO);
  cr_assert_eq(mkfifo(P("fifo"), 0600), 0);
  EXPECT_STATUS(ct_tensor_load_npy(CTX, P("fifo"), &t), CT_ERR_IO); /* at once: no writer is waited for */
  EXPECT_STATUS(ct_tensor_load_npy(CTX, NULL, &t), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_load_npy(NULL, P("x"), &t), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_load_npy(CTX, P("x"), NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_save_npy(NULL, P("x")), CT_ERR_NULL);
  ct_tensor *one = NULL;
  OK(ct_scalar(CTX, CT_FLOAT32, 1, &one));
  EXPECT_STATUS(ct_tensor_save_npy(one, NULL), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_save_npy(one, P("no/such/dir/x.npy")), CT_ERR_IO);
  ct_tensor_free(one);
}

/* The fuzzer's seeds (tests/fuzz/corpus/npy): those named valid_* are read, the near_* refused. */
Test(npy, fuzz_seeds_valid_read_near_refused, .init = setup, .fini = teardown) {
  const char *dir = CLTAPE_SOURCE_DIR "/tests/fuzz/corpus/npy";
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  int valid = 0, near = 0;
  for (struct dirent *e; (e = readdir(d));) {
    const char *n = e->d_name;
    bool is_valid = strncmp(n, "valid_", 6) == 0, is_near = strncmp(n, "near_", 5) == 0;
    if (!is_valid && !is_near) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, n);
    bool ok = true;
    ct_tensor *t = NULL;
    if (strstr(n, ".npz")) {
      const char *arrays[] = {"x", "y"};
      for (int a = 0; a < 2; ++a) {
        ct_status s = ct_tensor_load_npz(CTX, path, arrays[a], &t);
        ok = ok && s == CT_OK;
        cr_assert(s == CT_OK || ct_errmsg()[0], "%s: no message", n);
        ct_tensor_free(t);
      }
    } else {
      ct_status s = ct_tensor_load_npy(CTX, path, &t);
      ok = s == CT_OK || (s == CT_ERR_UNSUPPORTED && !ts_has_fp64(CTX));
      ct_tensor_free(t);
    }
    cr_assert_eq(ok, is_valid, "%s: %s", n, ok ? "read" : ct_errmsg());
    valid += is_valid, near += is_near;
  }
  closedir(d);
  cr_assert(valid >= 10 && near >= 10, "%d valid and %d near seeds", valid, near);
}

/* ---- .npz archives written here with libzip ---------------------------------------------------- */
/* An archive of the given members (name, file to take the bytes from), stored or deflated;
 * `encrypt` encrypts the first member. */
static void make_zip(const char *path, int n, const char *const *names, const char *const *files, bool deflate,
                     bool encrypt) {
  int err = 0;
  zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
  cr_assert_not_null(za, "zip_open %d", err);
  unsigned char *bufs[8];
  for (int i = 0; i < n; ++i) {
    size_t len;
    bufs[i] = read_file(files[i], &len);
    zip_source_t *src = zip_source_buffer(za, bufs[i], len, 0);
    zip_int64_t idx = zip_file_add(za, names[i], src, ZIP_FL_OVERWRITE);
    cr_assert_geq(idx, 0, "%s", zip_strerror(za));
    cr_assert_eq(zip_set_file_compression(za, (zip_uint64_t)idx, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0), 0);
    if (encrypt && i == 0) cr_assert_eq(zip_file_set_encryption(za, (zip_uint64_t)idx, ZIP_EM_AES_256, "secret"), 0);
  }
  cr_assert_eq(zip_close(za), 0, "%s", zip_strerror(za));
  for (int i = 0; i < n; ++i) free(bufs[i]);
}

Test(npz, stored_and_deflated_archives, .init = setup, .fini = teardown) {
  int64_t xs[2] = {4, 3}, ys[1] = {4};
  double xv[12], yv[4] = {2, 0, 1, 2};
  for (int i = 0; i < 12; ++i) xv[i] = i;
  ct_tensor *x = ts_tensor(CTX, CT_FLOAT32, 2, xs, xv), *y = ts_tensor(CTX, CT_INT32, 1, ys, yv);
  char xp[256], yp[256];
  snprintf(xp, sizeof xp, "%s", P("x.npy"));
  snprintf(yp, sizeof yp, "%s", P("y.npy"));
  OK(ct_tensor_save_npy(x, xp));
  OK(ct_tensor_save_npy(y, yp));
  const char *names[] = {"x.npy", "y.npy", "notes.txt"};
  const char *files[] = {xp, yp, xp};
  write_file(P("notes"), "hello", 5);
  files[2] = P("notes");
  for (int deflate = 0; deflate < 2; ++deflate) {
    const char *path = P(deflate ? "d.npz" : "s.npz");
    make_zip(path, 3, names, files, deflate, false);
    ct_tensor *t = NULL;
    OK(ct_tensor_load_npz(CTX, path, "x", &t));
    ts_assert_shape(t, 2, xs, "x");
    assert_values(t, 12, counting, "x");
    ct_tensor_free(t);
    OK(ct_tensor_load_npz(CTX, path, "y.npy", &t)); /* the member's own name finds it too */
    ts_assert_close(t, yv, 4, 0, 0, "y");
    ct_tensor_free(t);
    t = (ct_tensor *)1;
    EXPECT_STATUS(ct_tensor_load_npz(CTX, path, "z", &t), CT_ERR_NOT_FOUND);
    cr_assert_null(t);
    cr_assert(strstr(ct_errmsg(), "'x', 'y'") && strstr(ct_errmsg(), path), "%s", ct_errmsg());
    EXPECT_STATUS(ct_tensor_load_npz(CTX, path, "notes.txt", &t), CT_ERR_FORMAT); /* a member that is no array */
    cr_assert(strstr(ct_errmsg(), "notes.txt") && strstr(ct_errmsg(), "not a .npy file"), "%s", ct_errmsg());
    ct_dataset *ds = NULL;
    OK(ct_dataset_open_npz(CTX, path, "x", "y", NULL, &ds));
    cr_assert_eq(ct_dataset_size(ds), 4);
    cr_assert_eq(ct_dataset_num_classes(ds), 3);
    ct_dataset_free(ds);
  }
  /* damaged archives */
  size_t len;
  unsigned char *whole = read_file(P("s.npz"), &len);
  write_file(P("cut.npz"), whole, len / 2);
  ct_tensor *t = NULL;
  EXPECT_STATUS(ct_tensor_load_npz(CTX, P("cut.npz"), "x", &t), CT_ERR_FORMAT);
  const char *named = strstr(ct_errmsg(), "cut.npz");
  cr_assert(named && !strstr(named + 1, "cut.npz"), "the message names the file once: %s", ct_errmsg());
  whole[30 + 5 + 128 + 8] ^= 0x55; /* an element of x (stored): the CRC no longer matches */
  write_file(P("crc.npz"), whole, len);
  EXPECT_STATUS(ct_tensor_load_npz(CTX, P("crc.npz"), "x", &t), CT_ERR_FORMAT);
  cr_assert(strstr(ct_errmsg(), "CRC"), "%s", ct_errmsg());
  OK(ct_tensor_load_npz(CTX, P("crc.npz"), "y", &t)); /* the other member is intact */
  ct_tensor_free(t);
  free(whole);
  EXPECT_STATUS(ct_tensor_load_npz(CTX, xp, "x", &t), CT_ERR_FORMAT); /* a .npy file is no archive */
  cr_assert(strstr(ct_errmsg(), "zip"), "%s", ct_errmsg());
  EXPECT_STATUS(ct_tensor_load_npz(CTX, P("none.npz"), "x", &t), CT_ERR_IO);
  EXPECT_STATUS(ct_tensor_load_npz(CTX, DIR_, "x", &t), CT_ERR_IO);
  EXPECT_STATUS(ct_tensor_load_npz(CTX, P("s.npz"), NULL, &t), CT_ERR_NULL);
  EXPECT_STATUS(ct_tensor_load_npz(CTX, P("s.npz"), "x", NULL), CT_ERR_NULL);
  /* an encrypted member is refused (where this libzip can write one) */
  int err = 0;
  zip_t *probe = zip_open(P("probe.zip"), ZIP_CREATE | ZIP_TRUNCATE, &err);
  bool aes = zip_encryption_method_supported(ZIP_EM_AES_256, 1);
  zip_discard(probe);
  if (aes) {
    make_zip(P("enc.npz"), 2, names, files, true, true);
    EXPECT_STATUS(ct_tensor_load_npz(CTX, P("enc.npz"), "x", &t), CT_ERR_FORMAT);
    cr_assert(strstr(ct_errmsg(), "password"), "%s", ct_errmsg());
  }
  ct_tensor_free(x), ct_tensor_free(y);
}

/* ---- files written by NumPy ------------------------------------------------------------------ */
/* Runs tests/npy_numpy.py into the test's folder; skips the test where NumPy is missing. */
static void numpy_files(void) {
  const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s %s/tests/npy_numpy.py %s", py, CLTAPE_SOURCE_DIR, DIR_);
  int rc = system(cmd);
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) == 127)
    cr_skip_test("needs python3 with NumPy (Debian: python3-numpy): no python3 found");
  if (WEXITSTATUS(rc) == 77) cr_skip_test("needs NumPy (Debian: python3-numpy): %s has none", py);
  cr_assert_eq(WEXITSTATUS(rc), 0, "%s failed", cmd);
}

static double u8_counting(int64_t i) { return (double)(i % 256); }
static double even(int64_t i) { return i % 2 == 0; }

Test(npy, files_written_by_numpy, .init = setup, .fini = teardown) {
  numpy_files();
  struct {
    const char *file;
    ct_dtype dtype;
  } dts[] = {{"dtype_le_f4", CT_FLOAT32}, {"dtype_le_f8", CT_FLOAT64}, {"dtype_le_f2", CT_FLOAT16}, {"dtype_le_i4", CT_INT32},
             {"dtype_le_i8", CT_INT64},   {"dtype_le_u1", CT_INT32},   {"dtype_na_u1", CT_INT32},
             {"dtype_na_i1", CT_INT32},   {"dtype_le_i2", CT_INT32},   {"dtype_le_u2", CT_INT32},
             {"dtype_le_u4", CT_INT32},   {"dtype_le_u8", CT_INT64},   {"dtype_na_b1", CT_BOOL}};
  for (size_t k = 0; k < sizeof dts / sizeof *dts; ++k) {
    char name[64];
    snprintf(name, sizeof name, "%s.npy", dts[k].file);
    ct_tensor *t = NULL;
    if (!ts_has_dtype(CTX, dts[k].dtype)) {
      EXPECT_STATUS(ct_tensor_load_npy(CTX, P(name), &t), CT_ERR_UNSUPPORTED);
      continue;
    }
    OK(ct_tensor_load_npy(CTX, P(name), &t));
    cr_assert_eq(ct_tensor_dtype(t), dts[k].dtype, "%s", name);
    ts_assert_shape(t, 2, (const int64_t[]){3, 4}, name);
    assert_values(t, 12, strstr(name, "b1") ? even : counting, name);
    ct_tensor_free(t);
  }
  struct {
    const char *file;
    int rank;
    int64_t shape[5];
  } shapes[] = {{"scalar.npy", 0, {0}},         {"empty.npy", 2, {0, 3}},   {"rank5.npy", 5, {2, 1, 3, 1, 2}},
                {"fortran.npy", 3, {2, 3, 4}}, {"version_2.npy", 2, {2, 3}}, {"version_3.npy", 2, {2, 3}}};
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; ++k) {
    ct_tensor *t = NULL;
    OK(ct_tensor_load_npy(CTX, P(shapes[k].file), &t));
    ts_assert_shape(t, shapes[k].rank, shapes[k].shape, shapes[k].file);
    assert_values(t, ts_numel(shapes[k].rank, shapes[k].shape), counting, shapes[k].file);
    ct_tensor_free(t);
  }
  struct {
    const char *file, *says;
  } refused[] = {{"refused_big_endian.npy", "'>f4' is big-endian"},
                 {"refused_structured.npy", "structured"},
                 {"refused_c8.npy", "'<c8'"},
                 {"refused_unicode.npy", "'<U2'"},
                 {"refused_u8_range.npy", "'<u8'"}};
  for (size_t k = 0; k < sizeof refused / sizeof *refused; ++k) {
    ct_tensor *t = (ct_tensor *)1;
    EXPECT_STATUS(ct_tensor_load_npy(CTX, P(refused[k].file), &t), CT_ERR_DTYPE);
    cr_assert_null(t);
    cr_assert(strstr(ct_errmsg(), refused[k].says), "%s: %s", refused[k].file, ct_errmsg());
  }
  /* np.savez and np.savez_compressed */
  const char *archives[] = {"data.npz", "data_compressed.npz"};
  for (int a = 0; a < 2; ++a) {
    ct_tensor *t = NULL;
    OK(ct_tensor_load_npz(CTX, P(archives[a]), "x_train", &t));
    ts_assert_shape(t, 3, (const int64_t[]){20, 4, 4}, archives[a]);
    assert_values(t, 320, u8_counting, archives[a]);
    ct_tensor_free(t);
    ct_dataset_options o = ct_dataset_default_options();
    o.scale = 1.0 / 255;
    ct_dataset *ds = NULL;
    OK(ct_dataset_open_npz(CTX, P(archives[a]), "x_train", "y_train", &o, &ds));
    cr_assert_eq(ct_dataset_size(ds), 20);
    cr_assert_eq(ct_dataset_num_classes(ds), 4);
    int rank;
    int64_t shape[8];
    OK(ct_dataset_example_shape(ds, &rank, shape));
    cr_assert(rank == 2 && shape[0] == 4 && shape[1] == 4);
    ct_tensor *x = NULL, *y = NULL;
    OK(ct_dataset_batch(ds, 1, 8, &x, &y)); /* examples 8..15 */
    double *xv = ts_read(x), *yv = ts_read(y);
    for (int i = 0; i < 8; ++i) {
      cr_assert_eq(yv[i], (8 + i) % 4);
      cr_assert_float_eq(xv[16 * i + 5], (float)(((8 + i) * 16 + 5) % 256 / 255.0), 1e-6);
    }
    free(xv), free(yv);
    ct_tensor_free(x), ct_tensor_free(y);
    ct_dataset_free(ds);
  }
  ct_dataset *ds = NULL;
  OK(ct_dataset_open_npy(CTX, P("x.npy"), P("y.npy"), NULL, &ds));
  cr_assert_eq(ct_dataset_size(ds), 20);
  ct_dataset_free(ds);
  EXPECT_STATUS(ct_dataset_open_npz(CTX, P("data.npz"), "x_train", "y_float", NULL, &ds), CT_ERR_FORMAT);
  cr_assert(strstr(ct_errmsg(), "integers"), "%s", ct_errmsg());
  cr_assert_null(ds);
}

/* ---- datasets ------------------------------------------------------------------------------- */
/* 10 examples of 3x2 with feature (i, r, c) = 6 i + 2 r + c, labels i % 3. */
static float FX[60];
static int32_t FY[10];
static void make_arrays(void) {
  for (int i = 0; i < 60; ++i) FX[i] = (float)i;
  for (int i = 0; i < 10; ++i) FY[i] = i % 3;
}

/* The examples of one epoch in batches of 4, from their first feature. */
static void epoch_order(ct_dataset *ds, int *order) {
  for (int64_t b = 0, k = 0; b < ct_dataset_num_batches(ds, 4, false); ++b) {
    ct_tensor *x = NULL, *y = NULL;
    OK(ct_dataset_batch(ds, b, 4, &x, &y));
    double *xv = ts_read(x), *yv = ts_read(y);
    for (int64_t i = 0; i < ct_tensor_shape(x)[0]; ++i, ++k) {
      order[k] = (int)xv[6 * i] / 6;
      cr_assert_eq(yv[i], order[k] % 3, "a label travels with its example");
    }
    free(xv), free(yv);
    ct_tensor_free(x), ct_tensor_free(y);
  }
}

Test(dataset, from_arrays_copies, .init = setup, .fini = teardown) {
  make_arrays();
  ct_dataset *ds = NULL;
  OK(ct_dataset_from_arrays(CTX, CT_FLOAT32, 3, (const int64_t[]){10, 3, 2}, FX, FY, NULL, &ds));
  FX[6] = -1, FY[1] = 2; /* the arrays were copied: changing them now changes nothing */
  cr_assert_eq(ct_dataset_size(ds), 10);
  cr_assert_eq(ct_dataset_num_classes(ds), 3);
  int rank;
  int64_t shape[8];
  OK(ct_dataset_example_shape(ds, &rank, shape));
  cr_assert(rank == 2 && shape[0] == 3 && shape[1] == 2);
  cr_assert_eq(ct_dataset_num_batches(ds, 4, false), 3);
  cr_assert_eq(ct_dataset_num_batches(ds, 4, true), 2);
  int order[10], again[10], other[10];
  epoch_order(ds, order);
  for (int i = 0; i < 10; ++i) cr_assert_eq(order[i], i, "the arrays' order until shuffled");
  OK(ct_dataset_shuffle(ds, 7));
  epoch_order(ds, order);
  OK(ct_dataset_shuffle(ds, 8));
  epoch_order(ds, other);
  OK(ct_dataset_shuffle(ds, 7));
  epoch_order(ds, again);
  cr_assert_arr_eq(order, again, sizeof order, "the same seed, the same order");
  cr_assert(memcmp(order, other, sizeof order) != 0, "another seed, another order");
  int seen[10] = {0};
  for (int i = 0; i < 10; ++i) seen[order[i]]++;
  for (int i = 0; i < 10; ++i) cr_assert_eq(seen[i], 1, "a permutation");
  OK(ct_dataset_unshuffle(ds));
  epoch_order(ds, order);
  for (int i = 0; i < 10; ++i) cr_assert_eq(order[i], i);
  ct_tensor *x = NULL;
  OK(ct_dataset_batch(ds, 2, 4, &x, NULL)); /* the partial last batch */
  ts_assert_shape(x, 3, (const int64_t[]){2, 3, 2}, "last batch");
  ct_tensor_free(x);
  EXPECT_STATUS(ct_dataset_batch(ds, 3, 4, &x, NULL), CT_ERR_INVALID);
  ct_dataset_free(ds);

  /* conversions: int32 features kept as int32; float features scaled into float64; a limit */
  int32_t ix[6] = {1, 2, 3, 4, 5, 6};
  int32_t iy[3] = {0, 1, 0};
  ct_dataset_options o = ct_dataset_default_options();
  o.dtype = CT_INT32;
  OK(ct_dataset_from_arrays(CTX, CT_INT32, 2, (const int64_t[]){3, 2}, ix, iy, &o, &ds));
  OK(ct_dataset_batch(ds, 0, 3, &x, NULL));
  cr_assert_eq(ct_tensor_dtype(x), CT_INT32);
  ts_assert_close(x, (const double[]){1, 2, 3, 4, 5, 6}, 6, 0, 0, "int32 features");
  ct_tensor_free(x);
  ct_dataset_free(ds);
  o = ct_dataset_default_options();
  o.dtype = ts_best_float(CTX);
  o.scale = 0.5, o.offset = -1, o.limit = 2;
  OK(ct_dataset_from_arrays(CTX, CT_INT32, 2, (const int64_t[]){3, 2}, ix, iy, &o, &ds));
  cr_assert_eq(ct_dataset_size(ds), 2);
  cr_assert_eq(ct_dataset_num_classes(ds), 2);
  OK(ct_dataset_batch(ds, 0, 8, &x, NULL));
  cr_assert_eq(ct_tensor_dtype(x), o.dtype);
  ts_assert_close(x, (const double[]){-0.5, 0, 0.5, 1}, 4, 0, 0, "scaled features");
  ct_tensor_free(x);
  ct_dataset_free(ds);

  /* bad arguments: a status, a message, no dataset */
  float half[2] = {0.5f, 1};
  int32_t neg[3] = {0, -1, 0};
  ds = (ct_dataset *)1;
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 3, (const int64_t[]){10, 3, 2}, FX, NULL, NULL, &ds), CT_ERR_NULL);
  cr_assert_null(ds);
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 3, NULL, FX, FY, NULL, &ds), CT_ERR_NULL);
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 0, (const int64_t[]){1}, FX, FY, NULL, &ds), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, FX, FY, NULL, &ds),
                CT_ERR_SHAPE);
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 2, (const int64_t[]){3, -2}, FX, FY, NULL, &ds), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, (ct_dtype)7, 2, (const int64_t[]){3, 2}, FX, FY, NULL, &ds), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_INT32, 2, (const int64_t[]){3, 2}, ix, neg, NULL, &ds), CT_ERR_INVALID);
  cr_assert(strstr(ct_errmsg(), "label 1 is -1"), "%s", ct_errmsg());
  o = ct_dataset_default_options();
  o.dtype = CT_INT32;
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 1, (const int64_t[]){2}, half, iy, &o, &ds), CT_ERR_DTYPE);
  cr_assert(strstr(ct_errmsg(), "element 0") && strstr(ct_errmsg(), "0.5"), "%s", ct_errmsg());
  o = ct_dataset_default_options();
  o.limit = -1;
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 1, (const int64_t[]){2}, half, iy, &o, &ds), CT_ERR_INVALID);
  o = ct_dataset_default_options();
  o.scale = 0.0 / 0.0;
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 1, (const int64_t[]){2}, half, iy, &o, &ds), CT_ERR_INVALID);
  o = ct_dataset_default_options();
  o.dtype = (ct_dtype)9;
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 1, (const int64_t[]){2}, half, iy, &o, &ds), CT_ERR_DTYPE);
  EXPECT_STATUS(ct_dataset_from_arrays(NULL, CT_FLOAT32, 1, (const int64_t[]){2}, half, iy, NULL, &ds), CT_ERR_NULL);
  EXPECT_STATUS(ct_dataset_from_arrays(CTX, CT_FLOAT32, 1, (const int64_t[]){2}, half, iy, NULL, NULL), CT_ERR_NULL);
  cr_assert_null(ds);
}

Test(dataset, from_tensors_borrows, .init = setup, .fini = teardown) {
  int64_t xs[2] = {1000, 64}, ys[1] = {1000};
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_random_uniform(CTX, CT_FLOAT32, 2, xs, 0, 1, 3, &x));
  double yv[1000];
  for (int i = 0; i < 1000; ++i) yv[i] = i % 10;
  y = ts_tensor(CTX, CT_INT32, 1, ys, yv);
  ct_context_stats before, after;
  OK(ct_context_sync(CTX));
  OK(ct_context_stats_get(CTX, &before));
  ct_dataset *ds = NULL;
  OK(ct_dataset_from_tensors(x, y, &ds));
  OK(ct_context_stats_get(CTX, &after));
  /* nothing was copied: only the permutation (1000 int32) is new on the device */
  cr_assert_lt(after.bytes_in_use - before.bytes_in_use, 1000 * 64 * 4 / 4, "%llu bytes more",
               (unsigned long long)(after.bytes_in_use - before.bytes_in_use));
  cr_assert_eq(ct_dataset_size(ds), 1000);
  cr_assert_eq(ct_dataset_num_classes(ds), 10);
  double *want = ts_read(x);
  ct_tensor_free(x), ct_tensor_free(y); /* the caller's references: the dataset keeps its own */
  ct_tensor *bx = NULL, *by = NULL;
  OK(ct_dataset_batch(ds, 3, 100, &bx, &by));
  ts_assert_close(bx, want + 300 * 64, 100 * 64, 0, 0, "borrowed features");
  double *lv = ts_read(by);
  for (int i = 0; i < 100; ++i) cr_assert_eq(lv[i], (300 + i) % 10);
  free(lv), free(want);
  ct_tensor_free(bx), ct_tensor_free(by);
  ct_dataset_free(ds);

  /* bad tensors */
  ct_tensor *f = ts_tensor(CTX, CT_FLOAT32, 2, (const int64_t[]){3, 2}, (const double[]){1, 2, 3, 4, 5, 6});
  ct_tensor *l = ts_tensor(CTX, CT_INT32, 1, (const int64_t[]){3}, (const double[]){0, 1, 2});
  ct_tensor *lf = ts_tensor(CTX, CT_FLOAT32, 1, (const int64_t[]){3}, (const double[]){0, 1, 2});
  ct_tensor *l2 = ts_tensor(CTX, CT_INT32, 2, (const int64_t[]){3, 1}, (const double[]){0, 1, 2});
  ct_tensor *l4 = ts_tensor(CTX, CT_INT32, 1, (const int64_t[]){4}, (const double[]){0, 1, 2, 3});
  ct_tensor *ln = ts_tensor(CTX, CT_INT32, 1, (const int64_t[]){3}, (const double[]){0, -5, 2});
  ct_tensor *s = ts_tensor(CTX, CT_FLOAT32, 0, NULL, (const double[]){1});
  ds = (ct_dataset *)1;
  EXPECT_STATUS(ct_dataset_from_tensors(f, lf, &ds), CT_ERR_DTYPE);
  cr_assert_null(ds);
  EXPECT_STATUS(ct_dataset_from_tensors(f, l2, &ds), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_dataset_from_tensors(f, l4, &ds), CT_ERR_MISMATCH);
  EXPECT_STATUS(ct_dataset_from_tensors(f, ln, &ds), CT_ERR_INVALID);
  EXPECT_STATUS(ct_dataset_from_tensors(s, l, &ds), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_dataset_from_tensors(NULL, l, &ds), CT_ERR_NULL);
  EXPECT_STATUS(ct_dataset_from_tensors(f, l, NULL), CT_ERR_NULL);
  ct_context *other = ts_ctx();
  ct_tensor *lo = ts_tensor(other, CT_INT32, 1, (const int64_t[]){3}, (const double[]){0, 1, 2});
  EXPECT_STATUS(ct_dataset_from_tensors(f, lo, &ds), CT_ERR_CONTEXT);
  ct_tensor_free(lo);
  ct_context_free(other);
  /* a variable is taken as its value when the dataset is made */
  ct_tensor *v = NULL;
  OK(ct_variable_create(f, "features", false, &v));
  OK(ct_dataset_from_tensors(v, l, &ds));
  ct_tensor *zeros = NULL, *b = NULL;
  OK(ct_zeros_like(f, &zeros));
  OK(ct_variable_assign(v, zeros));
  OK(ct_dataset_batch(ds, 0, 3, &b, NULL));
  ts_assert_close(b, (const double[]){1, 2, 3, 4, 5, 6}, 6, 0, 0, "the variable's value at creation");
  ct_tensor_free(b), ct_tensor_free(zeros), ct_tensor_free(v);
  ct_dataset_free(ds);
  ct_tensor *all[] = {f, l, lf, l2, l4, ln, s};
  ct_tensor_free_n(all, 7);
}

Test(dataset, npy_files_and_their_errors, .init = setup, .fini = teardown) {
  make_arrays();
  ct_tensor *x = NULL, *y = NULL;
  OK(ct_tensor_from_data(CTX, CT_FLOAT32, 3, (const int64_t[]){10, 3, 2}, FX, &x));
  OK(ct_tensor_from_data(CTX, CT_INT32, 1, (const int64_t[]){10}, FY, &y));
  char xp[256], yp[256];
  snprintf(xp, sizeof xp, "%s", P("x.npy"));
  snprintf(yp, sizeof yp, "%s", P("y.npy"));
  OK(ct_tensor_save_npy(x, xp));
  OK(ct_tensor_save_npy(y, yp));
  ct_dataset *ds = NULL;
  OK(ct_dataset_open_npy(CTX, xp, yp, NULL, &ds));
  int order[10];
  epoch_order(ds, order);
  for (int i = 0; i < 10; ++i) cr_assert_eq(order[i], i);
  ct_dataset_free(ds);
  /* labels that are no class indices, counts that differ, scalar features */
  struct {
    const char *name;
    ct_dtype dt;
    int rank;
    int64_t shape[2];
    double v[4];
    ct_status want;
    const char *says;
  } bad[] = {
      {"float.npy", CT_FLOAT32, 1, {10}, {0}, CT_ERR_FORMAT, "integers"},
      {"rank2.npy", CT_INT32, 2, {10, 1}, {0}, CT_ERR_FORMAT, "one dimension"},
      {"nine.npy", CT_INT32, 1, {9}, {0}, CT_ERR_MISMATCH, "9 labels"},
      {"negative.npy", CT_INT32, 1, {10}, {0, 1, -3}, CT_ERR_FORMAT, "label 2 is -3"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; ++k) {
    double v[10] = {0};
    memcpy(v, bad[k].v, sizeof bad[k].v);
    ct_tensor *t = ts_tensor(CTX, bad[k].dt, bad[k].rank, bad[k].shape, v);
    const char *p = P(bad[k].name);
    OK(ct_tensor_save_npy(t, p));
    ct_tensor_free(t);
    ds = (ct_dataset *)1;
    EXPECT_STATUS(ct_dataset_open_npy(CTX, xp, p, NULL, &ds), bad[k].want);
    cr_assert_null(ds);
    cr_assert(strstr(ct_errmsg(), p) && strstr(ct_errmsg(), bad[k].says), "%s: %s", bad[k].name, ct_errmsg());
  }
  ct_tensor *s = ts_tensor(CTX, CT_FLOAT32, 0, NULL, (const double[]){1});
  OK(ct_tensor_save_npy(s, P("scalar.npy")));
  ct_tensor_free(s);
  EXPECT_STATUS(ct_dataset_open_npy(CTX, P("scalar.npy"), yp, NULL, &ds), CT_ERR_SHAPE);
  EXPECT_STATUS(ct_dataset_open_npy(CTX, P("missing.npy"), yp, NULL, &ds), CT_ERR_IO);
  cr_assert(strstr(ct_errmsg(), "missing.npy"), "%s", ct_errmsg());
  EXPECT_STATUS(ct_dataset_open_npy(CTX, xp, NULL, NULL, &ds), CT_ERR_NULL);
  EXPECT_STATUS(ct_dataset_open_npz(CTX, xp, "x", "y", NULL, &ds), CT_ERR_FORMAT);
  EXPECT_STATUS(ct_dataset_open_npz(CTX, P("s.npz"), NULL, "y", NULL, &ds), CT_ERR_NULL);
  cr_assert_null(ds);
  ct_tensor_free(x), ct_tensor_free(y);
}

/* ---- docs/training.md, "Datasets", quotes the two functions between the markers ---------------- */
/* doc:datasets */
/* A dataset from arrays in memory: n points (x0, x1), class 1 when x0 + x1 > 1. */
static ct_dataset *points_dataset(ct_context *ctx, const float *xy, const int32_t *labels, int64_t n) {
  int64_t shape[2] = {n, 2};
  ct_dataset *ds = NULL;
  if (ct_dataset_from_arrays(ctx, CT_FLOAT32, 2, shape, xy, labels, NULL, &ds) != CT_OK) {
    fprintf(stderr, "dataset: %s\n", ct_errmsg());
    return NULL;
  }
  return ds; /* xy and labels were copied: the caller may free them now */
}

/* Some epochs of Adam on a linear classifier; returns the loss of the last batch. */
static double fit(ct_context *ctx, ct_module *model, ct_dataset *ds, int epochs, int64_t batch) {
  ct_optimizer *opt = NULL;
  ct_optimizer_options o = ct_optimizer_default_options(CT_OPTIMIZER_ADAM);
  o.learning_rate = 0.1;
  ct_optimizer_create(ctx, &o, &opt);
  ct_tensor *vars[2], *grads[2];
  int nv = 0;
  ct_module_trainable_variables(model, vars, 2, &nv);
  double last = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    ct_dataset_shuffle(ds, (uint64_t)epoch); /* a new order each epoch, the same on every run */
    for (int64_t b = 0; b < ct_dataset_num_batches(ds, batch, true); ++b) {
      ct_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
      ct_tape *tape = NULL;
      ct_dataset_batch(ds, b, batch, &x, &y);
      ct_tape_begin(ctx, NULL, &tape);
      ct_module_call(model, x, true, &logits);
      ct_softmax_cross_entropy(logits, y, &loss);
      ct_tape_end(tape);
      ct_tape_gradient(tape, &loss, 1, vars, nv, NULL, CT_UNCONNECTED_NONE, grads);
      ct_optimizer_apply(opt, grads, vars, nv);
      ct_tensor_item(loss, &last);
      ct_tensor_free_n(grads, nv);
      ct_tensor *done[] = {x, y, logits, loss};
      ct_tensor_free_n(done, 4);
      ct_tape_free(tape);
    }
  }
  ct_optimizer_free(opt);
  return last;
}
/* doc:end */

Test(dataset, arrays_in_memory_feed_training, .init = setup, .fini = teardown, .timeout = 120) {
  enum { N = 256 };
  float *xy = malloc(sizeof(float) * 2 * N);
  int32_t *labels = malloc(sizeof(int32_t) * N);
  ts_rng_state = 11;
  for (int i = 0; i < N; ++i) {
    xy[2 * i] = (float)ts_rnd01(), xy[2 * i + 1] = (float)ts_rnd01();
    labels[i] = xy[2 * i] + xy[2 * i + 1] > 1;
  }
  ct_dataset *ds = points_dataset(CTX, xy, labels, N);
  cr_assert_not_null(ds, "%s", ct_errmsg());
  free(xy), free(labels);
  cr_assert_eq(ct_dataset_num_classes(ds), 2);
  ct_module *model = NULL;
  OK(ct_dense_create(CTX, 2, 2, CT_ACTIVATION_NONE, NULL, &model));
  double first = fit(CTX, model, ds, 1, 256); /* one step: the loss before training, about log 2 */
  double last = fit(CTX, model, ds, 20, 32);  /* 160 steps */
  cr_log_info("points: loss %.4f -> %.4f", first, last);
  cr_assert_gt(first, 0.5, "loss %g at the start", first);
  cr_assert_lt(last, 0.5 * first, "loss %g -> %g", first, last);
  ct_module_free(model);
  ct_dataset_free(ds);
}

/* The block between the markers appears in docs/training.md line for line. */
Test(dataset, docs_quote_the_tested_code) {
  size_t n, dn;
  unsigned char *src = read_file(CLTAPE_SOURCE_DIR "/tests/test_nn_npy.c", &n);
  unsigned char *doc = read_file(CLTAPE_SOURCE_DIR "/docs/training.md", &dn);
  src[n] = 0, doc[dn] = 0;
  char *b = strstr((char *)src, "/* doc:datasets */\n"), *e = b ? strstr(b, "/* doc:end */") : NULL;
  cr_assert(b && e, "the markers are missing");
  b += strlen("/* doc:datasets */\n");
  *e = 0;
  int lines = 0;
  for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n"), ++lines)
    cr_assert(strstr((char *)doc, line), "docs/training.md does not quote this line of the tested code:\n%s", line);
  cr_assert_gt(lines, 30);
  free(src), free(doc);
}
