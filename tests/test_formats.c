/*
 * test_formats.c — the host-side file formats: safetensors (read, write, validation) and IDX
 * (plain and gzip). Every corrupt input is built here byte by byte; each test works in its own
 * temporary directory.
 */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/idx.h"
#include "formats/safetensors.h"

/* ------------------------------------------------------------------------------------------- */
/* Temporary directory and byte buffers                                                          */
/* ------------------------------------------------------------------------------------------- */

static char g_dir[64];

static void dir_setup(void) {
  strcpy(g_dir, "/tmp/ct_formats_XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static void dir_teardown(void) {
  DIR *d = opendir(g_dir);
  if (d == NULL) return;
  struct dirent *de;
  char p[512];
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
    if (remove(p) != 0) { /* a directory made by a test holds nothing */
      (void)rmdir(p);
    }
  }
  closedir(d);
  rmdir(g_dir);
}

/* Path of `name` inside the test directory (a static buffer per slot). */
static const char *tpath(const char *name) {
  static char bufs[4][512];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 512, "%s/%s", g_dir, name);
  return b;
}

static int dir_entries(void) {
  DIR *d = opendir(g_dir);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

typedef struct {
  uint8_t *p;
  size_t n;
} bytes;

static void bytes_free(bytes *b) {
  free(b->p);
  b->p = NULL;
  b->n = 0;
}

static bytes slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  bytes b = {NULL, 0};
  size_t cap = 0;
  for (;;) {
    if (b.n == cap) {
      cap = cap ? cap * 2 : 4096;
      b.p = realloc(b.p, cap);
      cr_assert_not_null(b.p);
    }
    size_t r = fread(b.p + b.n, 1, cap - b.n, f);
    b.n += r;
    if (r == 0) break;
  }
  fclose(f);
  return b;
}

static void spit(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot create %s", path);
  cr_assert_eq(fwrite(p, 1, n, f), n);
  cr_assert_eq(fclose(f), 0);
}

/* 8-byte little-endian length, the header text as given, then the data bytes. */
static bytes st_image_len(uint64_t hlen, const char *header, const void *data, size_t dlen) {
  size_t h = strlen(header);
  bytes b;
  b.n = 8 + h + dlen;
  b.p = malloc(b.n + 1);
  cr_assert_not_null(b.p);
  for (int i = 0; i < 8; i++) b.p[i] = (uint8_t)(hlen >> (8 * i));
  memcpy(b.p + 8, header, h);
  if (dlen > 0) memcpy(b.p + 8 + h, data, dlen);
  return b;
}

static bytes st_image(const char *header, const void *data, size_t dlen) {
  return st_image_len(strlen(header), header, data, dlen);
}

/* ------------------------------------------------------------------------------------------- */
/* safetensors                                                                                   */
/* ------------------------------------------------------------------------------------------- */

TestSuite(safetensors, .init = dir_setup, .fini = dir_teardown);

static int g_case;

static const char *status_name(ct_status s) {
  switch (s) {
#define STATUS_CASE_(name, text) \
  case CT_##name: return "CT_" #name;
    CT_STATUS_MAP(STATUS_CASE_)
#undef STATUS_CASE_
    default: return "?";
  }
}

/* Parses the bytes from memory and from a file; both must fail with `want` and a message
 * containing `needle`, and leave the output zeroed. */
static void expect_st_error(const bytes *b, ct_status want, const char *needle) {
  ct_st_file f;
  memset(&f, 0xAB, sizeof f);
  ct_status st = ct_st_parse(b->p, b->n, &f);
  cr_assert_eq(st, want, "parse: status %s, wanted %s (%s)", status_name(st), status_name(want), ct_errmsg());
  cr_assert(strstr(ct_errmsg(), needle) != NULL, "parse: message \"%s\" lacks \"%s\"", ct_errmsg(), needle);
  cr_assert(f.entries == NULL && f.count == 0 && f.metadata_json == NULL && f.meta_count == 0,
            "output not zeroed after an error");

  char name[32];
  snprintf(name, sizeof name, "bad%d.safetensors", g_case++);
  const char *path = tpath(name);
  spit(path, b->p, b->n);
  memset(&f, 0xAB, sizeof f);
  st = ct_st_read(path, &f);
  cr_assert_eq(st, want, "read: status %d, wanted %d (%s)", (int)st, (int)want, ct_errmsg());
  cr_assert(strstr(ct_errmsg(), needle) != NULL, "read: message \"%s\" lacks \"%s\"", ct_errmsg(), needle);
  cr_assert(strstr(ct_errmsg(), path) != NULL, "read: message \"%s\" lacks the path", ct_errmsg());
  cr_assert(f.entries == NULL && f.count == 0, "output not zeroed after an error");
}

static void expect_header_error(const char *header, size_t dlen, ct_status want, const char *needle) {
  uint8_t zeros[256] = {0};
  cr_assert(dlen <= sizeof zeros);
  bytes b = st_image(header, zeros, dlen);
  expect_st_error(&b, want, needle);
  bytes_free(&b);
}

/* Values whose bits a lossy path would change: NaN payloads, signed zero, subnormals, limits. */
static void fill_samples(float *f32, double *f64, int32_t *i32) {
  uint32_t nan_bits = 0x7FC01234u;
  uint64_t nan64 = 0xFFF8000000ABCDEFull;
  float fvals[6] = {1.5f, -0.0f, INFINITY, 1e-45f, -3.4028235e38f, 0.1f};
  memcpy(f32, fvals, sizeof fvals);
  memcpy(&f32[2], &nan_bits, 4);
  double dvals[4] = {-0.0, 4.9e-324, 1.0 / 3.0, -1e308};
  memcpy(f64, dvals, sizeof dvals);
  memcpy(&f64[0], &nan64, 8);
  int32_t ivals[3] = {INT32_MIN, -1, INT32_MAX};
  memcpy(i32, ivals, sizeof ivals);
}

Test(safetensors, round_trip_is_bit_exact) {
  float f32[6];
  double f64[4];
  int32_t i32[3];
  fill_samples(f32, f64, i32);
  float scalar = -7.25f;
  float none[1];
  ct_st_entry in[5] = {
      {"weight", CT_FLOAT32, 2, {2, 3}, sizeof f32, f32},  {"bias.f64", CT_FLOAT64, 1, {4}, sizeof f64, f64},
      {"labels", CT_INT32, 3, {1, 3, 1}, sizeof i32, i32}, {"step", CT_FLOAT32, 0, {0}, 4, &scalar},
      {"empty", CT_FLOAT32, 2, {0, 5}, 0, none},
  };
  const char *path = tpath("m.safetensors");
  /* a success leaves the thread's message as it was */
  ct_st_file unread;
  cr_assert_eq(ct_st_read(NULL, &unread), CT_ERR_NULL);
  char before[2048];
  snprintf(before, sizeof before, "%s", ct_errmsg());
  cr_assert_eq(ct_st_write(path, in, 5), CT_OK, "%s", ct_errmsg());
  cr_assert_str_eq(ct_errmsg(), before);

  ct_st_file f;
  cr_assert_eq(ct_st_read(path, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 5);
  cr_assert_null(f.metadata_json);
  cr_assert_eq(f.meta_count, 0);
  for (int i = 0; i < 5; i++) {
    const ct_st_entry *a = &in[i], *b = &f.entries[i];
    cr_assert_str_eq(b->name, a->name, "entry %d out of order", i);
    cr_assert_eq(b->dtype, a->dtype, "%s dtype", a->name);
    cr_assert_eq(b->rank, a->rank, "%s rank", a->name);
    for (int d = 0; d < a->rank; d++) cr_assert_eq(b->shape[d], a->shape[d], "%s shape[%d]", a->name, d);
    cr_assert_eq(b->nbytes, a->nbytes, "%s nbytes", a->name);
    cr_assert_not_null(b->data, "%s data must never be NULL", a->name);
    cr_assert(memcmp(b->data, a->data, a->nbytes) == 0, "%s bits differ", a->name);
    cr_assert_eq(ct_st_find(&f, a->name), b);
  }
  cr_assert_null(ct_st_find(&f, "missing"));

  /* The same bytes parsed from memory give the same result. */
  bytes raw = slurp(path);
  ct_st_file g;
  cr_assert_eq(ct_st_parse(raw.p, raw.n, &g), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(g.count, 5);
  for (int i = 0; i < 5; i++) {
    cr_assert_str_eq(g.entries[i].name, f.entries[i].name);
    cr_assert(memcmp(g.entries[i].data, f.entries[i].data, f.entries[i].nbytes) == 0);
  }
  ct_st_file_free(&g);
  ct_st_file_free(&f);
  cr_assert_null(f.entries);
  cr_assert_eq(f.count, 0);
  ct_st_file_free(&f); /* a second free of a zeroed struct is harmless */
  ct_st_file_free(NULL);
  bytes_free(&raw);
}

Test(safetensors, written_header_has_exactly_the_expected_fields) {
  float a[6] = {1, 2, 3, 4, 5, 6};
  int32_t b[2] = {7, 8};
  double s = 2.5;
  ct_st_entry in[3] = {
      {"layer \"1\"/w\xc3\xa9", CT_FLOAT32, 2, {3, 2}, sizeof a, a},
      {"b", CT_INT32, 1, {2}, sizeof b, b},
      {"s", CT_FLOAT64, 0, {0}, sizeof s, &s},
  };
  const char *path = tpath("h.safetensors");
  cr_assert_eq(ct_st_write(path, in, 3), CT_OK, "%s", ct_errmsg());
  bytes raw = slurp(path);
  cr_assert_geq(raw.n, 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | raw.p[i];
  cr_assert_eq(n % 8, 0, "header length %llu is not a multiple of 8", (unsigned long long)n);
  cr_assert_eq(8 + n + sizeof a + sizeof b + sizeof s, raw.n, "file size");
  /* Padding is spaces only, after the closing brace. */
  size_t end = (size_t)n;
  while (end > 0 && raw.p[8 + end - 1] == ' ') end--;
  cr_assert(end > 0 && raw.p[8 + end - 1] == '}');
  cr_assert_lt(n - end, 8, "more padding than needed");

  cJSON *root = cJSON_ParseWithLength((const char *)raw.p + 8, (size_t)n);
  cr_assert_not_null(root, "header is not JSON");
  cr_assert(cJSON_IsObject(root));
  cr_assert_eq(cJSON_GetArraySize(root), 3, "no other keys (no __metadata__)");
  const char *names[3] = {in[0].name, "b", "s"};
  const char *dtypes[3] = {"F32", "I32", "F64"};
  int ranks[3] = {2, 1, 0};
  long long begins[3] = {0, 24, 32}, ends[3] = {24, 32, 40};
  int i = 0;
  for (cJSON *t = root->child; t != NULL; t = t->next, i++) {
    cr_assert_str_eq(t->string, names[i], "key %d (header order must be the given order)", i);
    cr_assert_eq(cJSON_GetArraySize(t), 3, "%s has exactly dtype, shape, data_offsets", names[i]);
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
    cJSON *of = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    cr_assert(cJSON_IsString(dt) && cJSON_IsArray(sh) && cJSON_IsArray(of));
    cr_assert_str_eq(dt->valuestring, dtypes[i]);
    cr_assert_eq(cJSON_GetArraySize(sh), ranks[i]);
    for (int d = 0; d < ranks[i]; d++)
      cr_assert_eq((long long)cJSON_GetArrayItem(sh, d)->valuedouble, (long long)in[i].shape[d]);
    cr_assert_eq(cJSON_GetArraySize(of), 2);
    cr_assert_eq((long long)cJSON_GetArrayItem(of, 0)->valuedouble, begins[i], "%s begin", names[i]);
    cr_assert_eq((long long)cJSON_GetArrayItem(of, 1)->valuedouble, ends[i], "%s end", names[i]);
  }
  cr_assert_eq(i, 3);
  cJSON_Delete(root);
  /* The data block is the tensors back to back. */
  cr_assert(memcmp(raw.p + 8 + n, a, sizeof a) == 0);
  cr_assert(memcmp(raw.p + 8 + n + 24, b, sizeof b) == 0);
  cr_assert(memcmp(raw.p + 8 + n + 32, &s, sizeof s) == 0);
  bytes_free(&raw);
}

Test(safetensors, metadata_round_trip) {
  int32_t v[1] = {42};
  ct_st_entry in[1] = {{"v", CT_INT32, 1, {1}, 4, v}};
  const char *keys[2] = {"format", "note"};
  const char *vals[2] = {"pt", "quote \" and \\ and \xe2\x82\xac"};
  const char *path = tpath("meta.safetensors");
  cr_assert_eq(ct_st_write_meta(path, in, 1, keys, vals, 2), CT_OK, "%s", ct_errmsg());
  ct_st_file f;
  cr_assert_eq(ct_st_read(path, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 1);
  cr_assert_eq(f.meta_count, 2);
  for (int i = 0; i < 2; i++) {
    cr_assert_str_eq(f.meta_keys[i], keys[i]);
    cr_assert_str_eq(f.meta_values[i], vals[i]);
  }
  cr_assert_not_null(f.metadata_json);
  cJSON *m = cJSON_Parse(f.metadata_json);
  cr_assert(cJSON_IsObject(m));
  cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(m, "note")->valuestring, vals[1]);
  cJSON_Delete(m);
  ct_st_file_free(&f);

  /* Metadata written by hand, with an empty tensor list. */
  bytes b = st_image("{\"__metadata__\":{\"a\":\"1\"}}", NULL, 0);
  cr_assert_eq(ct_st_parse(b.p, b.n, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 0);
  cr_assert_eq(f.meta_count, 1);
  cr_assert_str_eq(f.metadata_json, "{\"a\":\"1\"}");
  ct_st_file_free(&f);
  bytes_free(&b);
}

Test(safetensors, reads_a_hand_written_file) {
  /* Shape as written by other tools: whitespace, fields in another order, an extra field. */
  float data[3] = {1.0f, 2.0f, 3.0f};
  int32_t k = -5;
  uint8_t block[16];
  memcpy(block, &k, 4);
  memcpy(block + 4, data, 12);
  bytes b = st_image(
      "{ \"x\" : {\"data_offsets\":[4,16], \"shape\":[3], \"dtype\":\"F32\", \"extra\": null},\n"
      "  \"k\": {\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]} }   ",
      block, sizeof block);
  ct_st_file f;
  cr_assert_eq(ct_st_parse(b.p, b.n, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 2);
  cr_assert_str_eq(f.entries[0].name, "x");
  cr_assert_eq(f.entries[0].rank, 1);
  cr_assert(memcmp(f.entries[0].data, data, 12) == 0);
  cr_assert_str_eq(f.entries[1].name, "k");
  cr_assert_eq(f.entries[1].rank, 0);
  cr_assert_eq(*(int32_t *)f.entries[1].data, -5);
  ct_st_file_free(&f);
  bytes_free(&b);

  /* No tensors at all. */
  b = st_image("{}", NULL, 0);
  cr_assert_eq(ct_st_parse(b.p, b.n, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 0);
  ct_st_file_free(&f);
  bytes_free(&b);
}

Test(safetensors, short_and_truncated_files) {
  uint8_t tiny[8] = {2, 0, 0, 0, 0, 0, 0, 0};
  for (size_t n = 0; n < 8; n++) {
    bytes b = {malloc(8), n};
    memcpy(b.p, tiny, 8);
    expect_st_error(&b, CT_ERR_FORMAT, "shorter than the 8-byte header length");
    bytes_free(&b);
  }

  /* A valid file cut at every length: never accepted. */
  float v[4] = {1, 2, 3, 4};
  ct_st_entry in[2] = {{"a", CT_FLOAT32, 1, {2}, 8, v}, {"b", CT_FLOAT32, 1, {2}, 8, v + 2}};
  const char *path = tpath("ok.safetensors");
  cr_assert_eq(ct_st_write(path, in, 2), CT_OK, "%s", ct_errmsg());
  bytes full = slurp(path);
  uint64_t n = full.p[0] | ((uint64_t)full.p[1] << 8);
  for (size_t cut = 0; cut < full.n; cut++) {
    ct_st_file f;
    ct_status st = ct_st_parse(full.p, cut, &f);
    cr_assert_eq(st, CT_ERR_FORMAT, "cut at %zu accepted", cut);
    cr_assert_neq(ct_errmsg()[0], '\0');
  }
  /* The precise reasons at the interesting cuts. */
  bytes b = {malloc(full.n), 0};
  memcpy(b.p, full.p, full.n);
  b.n = 8 + (size_t)n / 2;
  expect_st_error(&b, CT_ERR_FORMAT, "exceeds the");
  b.n = 8 + (size_t)n;
  expect_st_error(&b, CT_ERR_FORMAT, "beyond the data block (0 bytes)");
  b.n = full.n - 1;
  expect_st_error(&b, CT_ERR_FORMAT, "beyond the data block (15 bytes)");
  /* One byte too many is as wrong as one too few. */
  uint8_t *longer = malloc(full.n + 1);
  memcpy(longer, full.p, full.n);
  longer[full.n] = 0;
  bytes lb = {longer, full.n + 1};
  expect_st_error(&lb, CT_ERR_FORMAT, "cover only 16");
  bytes_free(&lb);
  bytes_free(&b);
  bytes_free(&full);
}

Test(safetensors, header_length_absurd_or_beyond_the_file) {
  bytes b = st_image_len((uint64_t)1 << 40, "{}", NULL, 0);
  expect_st_error(&b, CT_ERR_FORMAT, "exceeds the limit of 100000000 bytes");
  bytes_free(&b);
  b = st_image_len(100000001u, "{}", NULL, 0);
  expect_st_error(&b, CT_ERR_FORMAT, "exceeds the limit");
  bytes_free(&b);
  b = st_image_len(UINT64_MAX, "{}", NULL, 0);
  expect_st_error(&b, CT_ERR_FORMAT, "exceeds the limit");
  bytes_free(&b);
  b = st_image_len(3, "{}", NULL, 0);
  expect_st_error(&b, CT_ERR_FORMAT, "exceeds the 2 bytes that follow it");
  bytes_free(&b);
  b = st_image_len(0, "", NULL, 0);
  expect_st_error(&b, CT_ERR_FORMAT, "not valid JSON");
  bytes_free(&b);
}

Test(safetensors, header_not_json_or_not_an_object) {
  expect_header_error("{\"a\": ", 0, CT_ERR_FORMAT, "not valid JSON");
  expect_header_error("{'a': 1}", 0, CT_ERR_FORMAT, "not valid JSON");
  expect_header_error("nul", 0, CT_ERR_FORMAT, "not valid JSON");
  expect_header_error("[1, 2]", 0, CT_ERR_FORMAT, "not a JSON object");
  expect_header_error("\"text\"", 0, CT_ERR_FORMAT, "not a JSON object");
  expect_header_error("42      ", 0, CT_ERR_FORMAT, "not a JSON object");
  expect_header_error("{} {}", 0, CT_ERR_FORMAT, "data after the JSON value (byte 3");
  expect_header_error("{}\x01", 0, CT_ERR_FORMAT, "data after the JSON value");
  expect_header_error("{\"a\xff\": 1}", 0, CT_ERR_FORMAT, "not valid UTF-8 (byte offset 3)");
  expect_header_error("{\"\xc0\xaf\": 1}", 0, CT_ERR_FORMAT, "not valid UTF-8");     /* overlong */
  expect_header_error("{\"\xed\xa0\x80\": 1}", 0, CT_ERR_FORMAT, "not valid UTF-8"); /* surrogate */
  /* A NUL byte inside the header. */
  uint8_t raw[8 + 4] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 0, ' ', '}'};
  bytes b = {malloc(sizeof raw), sizeof raw};
  memcpy(b.p, raw, sizeof raw);
  expect_st_error(&b, CT_ERR_FORMAT, "NUL byte at offset 1");
  bytes_free(&b);
}

Test(safetensors, bad_tensor_descriptions) {
  expect_header_error("{\"a\": 5}", 0, CT_ERR_FORMAT, "tensor 'a': description is not a JSON object");
  expect_header_error("{\"a\": {\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT, "missing \"dtype\"");
  expect_header_error("{\"a\": {\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "\"dtype\" is not a string");
  expect_header_error("{\"a\": {\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "unknown dtype \"F17\"");
  expect_header_error("{\"a\": {\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "unknown dtype");
  /* Valid safetensors dtypes that this library does not load are told apart. */
  expect_header_error("{\"a\": {\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, CT_ERR_DTYPE,
                      "dtype \"U16\" is not supported");
  expect_header_error("{\"a\": {\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, CT_ERR_DTYPE,
                      "\"U64\"");
}

Test(safetensors, bad_shapes) {
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "missing \"shape\"");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "\"shape\" is not a list");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "\"shape\" is not a list");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "shape entry 0 is not a non-negative integer");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1, 1.5],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "shape entry 1 is not a non-negative integer");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "shape entry 0");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "shape entry 0");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "at most 2^53");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                      CT_ERR_FORMAT, "rank 9 exceeds the maximum of 8");
  /* 2^21 cubed = 2^63 elements: overflows int64. */
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[2097152,2097152,2097152],\"data_offsets\":[0,4]}}",
                      4, CT_ERR_FORMAT, "element count of the shape overflows");
  /* 2^62 elements fit, their bytes do not. */
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,4]}}", 4,
                      CT_ERR_FORMAT, "byte size of the shape overflows");
  /* A zero extent makes the element count 0 whatever the others are. */
  bytes b = st_image(
      "{\"a\": {\"dtype\":\"F64\",\"shape\":[9007199254740992,0,9007199254740992],"
      "\"data_offsets\":[0,0]}}",
      NULL, 0);
  ct_st_file f;
  cr_assert_eq(ct_st_parse(b.p, b.n, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.entries[0].nbytes, 0);
  cr_assert_eq(f.entries[0].shape[0], (int64_t)1 << 53);
  ct_st_file_free(&f);
  bytes_free(&b);
}

Test(safetensors, bad_data_offsets) {
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1]}}", 4, CT_ERR_FORMAT, "missing \"data_offsets\"");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":4}}", 4, CT_ERR_FORMAT,
                      "not a list of two non-negative integers");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, CT_ERR_FORMAT,
                      "not a list of two");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, CT_ERR_FORMAT,
                      "not a list of two");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, CT_ERR_FORMAT,
                      "not a list of two");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 4, CT_ERR_FORMAT,
                      "not a list of two");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, CT_ERR_FORMAT,
                      "begin 8 is greater than end 4");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, CT_ERR_FORMAT,
                      "end 8 is beyond the data block (4 bytes)");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "span 4 bytes but 2 elements of F32 need 8");
  expect_header_error("{\"a\": {\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, CT_ERR_FORMAT,
                      "need 8");
}

Test(safetensors, overlaps_gaps_and_uncovered_bytes) {
  expect_header_error(
      "{\"a\": {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      " \"b\": {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
      12, CT_ERR_FORMAT, "tensor 'b': data [4, 12) overlaps another tensor");
  expect_header_error(
      "{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      " \"b\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      4, CT_ERR_FORMAT, "overlaps");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, CT_ERR_FORMAT,
                      "leaving bytes [0, 4) unused");
  expect_header_error(
      "{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      " \"b\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
      12, CT_ERR_FORMAT, "tensor 'b': data starts at 8, leaving bytes [4, 8) unused");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9, CT_ERR_FORMAT,
                      "the data block has 9 bytes but the tensors cover only 4");
  expect_header_error("{}", 1, CT_ERR_FORMAT, "has 1 bytes but the tensors cover only 0");
  /* Zero-byte tensors may sit anywhere inside the covered range, in any header order. */
  uint8_t block[8] = {0};
  bytes b = st_image(
      "{\"z\": {\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[4,4]},"
      " \"q\": {\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]},"
      " \"p\": {\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      block, sizeof block);
  ct_st_file f;
  cr_assert_eq(ct_st_parse(b.p, b.n, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 3);
  cr_assert_str_eq(f.entries[0].name, "z");
  ct_st_file_free(&f);
  bytes_free(&b);
}

Test(safetensors, duplicate_names_and_bad_metadata) {
  expect_header_error(
      "{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      " \"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
      8, CT_ERR_FORMAT, "has the name 'a' twice");
  expect_header_error("{\"__metadata__\": {}, \"__metadata__\": {}}", 0, CT_ERR_FORMAT,
                      "has the name '__metadata__' twice");
  expect_header_error("{\"__metadata__\": [\"x\"]}", 0, CT_ERR_FORMAT, "\"__metadata__\" is not a JSON object");
  expect_header_error("{\"__metadata__\": {\"k\": 1}}", 0, CT_ERR_FORMAT, "value of key 'k' is not a string");
  expect_header_error("{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", 0, CT_ERR_FORMAT, "the key 'k' twice");
}

Test(safetensors, every_header_byte_flip_is_handled) {
  float v[3] = {1, 2, 3};
  int32_t w[2] = {4, 5};
  ct_st_entry in[2] = {{"v", CT_FLOAT32, 1, {3}, 12, v}, {"w", CT_INT32, 2, {1, 2}, 8, w}};
  const char *path = tpath("flip.safetensors");
  cr_assert_eq(ct_st_write(path, in, 2), CT_OK, "%s", ct_errmsg());
  bytes raw = slurp(path);
  uint64_t n = raw.p[0];
  int accepted = 0, rejected = 0;
  for (size_t i = 0; i < 8 + n; i++) {
    for (int bit = 0; bit < 8; bit++) {
      raw.p[i] ^= (uint8_t)(1u << bit);
      ct_st_file f;
      ct_status st = ct_st_parse(raw.p, raw.n, &f);
      if (st == CT_OK) {
        accepted++;
        /* Whatever was accepted is self-consistent. */
        uint64_t hn = 0;
        for (int k = 7; k >= 0; k--) hn = (hn << 8) | raw.p[k];
        size_t total = 0;
        for (int k = 0; k < f.count; k++) total += f.entries[k].nbytes;
        cr_assert_eq(8 + hn + total, raw.n, "accepted a file whose tensors do not cover the data");
      } else {
        rejected++;
        cr_assert_neq(ct_errmsg()[0], '\0', "error without a message at byte %zu bit %d", i, bit);
        cr_assert_null(f.entries);
      }
      ct_st_file_free(&f);
      raw.p[i] ^= (uint8_t)(1u << bit);
    }
  }
  cr_assert_gt(rejected, accepted, "most single-bit corruptions must be caught");
  bytes_free(&raw);
}

Test(safetensors, missing_or_unreadable_files_are_io_errors) {
  ct_st_file f;
  const char *path = tpath("nope.safetensors");
  cr_assert_eq(ct_st_read(path, &f), CT_ERR_IO);
  cr_assert(strstr(ct_errmsg(), path) != NULL && strstr(ct_errmsg(), "No such file") != NULL, "%s", ct_errmsg());
  cr_assert_null(f.entries);
  cr_assert_eq(ct_st_read(g_dir, &f), CT_ERR_IO, "a directory: %s", ct_errmsg());
  cr_assert(strstr(ct_errmsg(), "not a regular file") != NULL, "%s", ct_errmsg());
  cr_assert_eq(ct_st_read(NULL, &f), CT_ERR_NULL);
  cr_assert_eq(ct_st_read(path, NULL), CT_ERR_NULL);
  cr_assert_eq(ct_st_read(path, &f), CT_ERR_IO, "a second read of a missing file");
}

static void write_original(const char *path, bytes *orig) {
  int32_t v[4] = {1, 2, 3, 4};
  ct_st_entry e = {"orig", CT_INT32, 1, {4}, sizeof v, v};
  cr_assert_eq(ct_st_write(path, &e, 1), CT_OK, "%s", ct_errmsg());
  *orig = slurp(path);
}

static void assert_unchanged(const char *path, const bytes *orig) {
  bytes now = slurp(path);
  cr_assert_eq(now.n, orig->n, "target size changed");
  cr_assert(memcmp(now.p, orig->p, now.n) == 0, "target bytes changed");
  bytes_free(&now);
  ct_st_file f;
  cr_assert_eq(ct_st_read(path, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_str_eq(f.entries[0].name, "orig");
  ct_st_file_free(&f);
}

Test(safetensors, failed_write_into_missing_directory) {
  float v = 1;
  ct_st_entry e = {"v", CT_FLOAT32, 0, {0}, 4, &v};
  const char *path = tpath("no/such/dir/m.safetensors");
  cr_assert_eq(ct_st_write(path, &e, 1), CT_ERR_IO);
  cr_assert(strstr(ct_errmsg(), path) != NULL && strstr(ct_errmsg(), "No such file") != NULL, "%s", ct_errmsg());
  cr_assert_eq(dir_entries(), 0, "nothing left behind");
}

Test(safetensors, failed_write_midway_keeps_the_old_file) {
  const char *path = tpath("keep.safetensors");
  bytes orig;
  write_original(path, &orig);
  cr_assert_eq(dir_entries(), 1);

  /* Each test runs in its own process: cap the file size so that write() fails with EFBIG. */
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {4096, 4096};
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  size_t n = 1 << 16;
  float *big = calloc(n, sizeof *big);
  ct_st_entry e = {"big", CT_FLOAT32, 1, {(int64_t)n}, n * sizeof *big, big};
  cr_assert_eq(ct_st_write(path, &e, 1), CT_ERR_IO);
  cr_assert(strstr(ct_errmsg(), "cannot write") != NULL, "%s", ct_errmsg());
  free(big);
  cr_assert_eq(dir_entries(), 1, "the temporary file was not removed");
  assert_unchanged(path, &orig);
  bytes_free(&orig);
}

Test(safetensors, failed_rename_keeps_the_old_file) {
  /* The target is a directory: everything succeeds except the rename. */
  const char *path = tpath("adir");
  cr_assert_eq(mkdir(path, 0755), 0);
  const char *inner = tpath("adir/keep.safetensors");
  bytes orig;
  write_original(inner, &orig);
  float v = 1;
  ct_st_entry e = {"v", CT_FLOAT32, 0, {0}, 4, &v};
  cr_assert_eq(ct_st_write(path, &e, 1), CT_ERR_IO);
  cr_assert(strstr(ct_errmsg(), "cannot rename") != NULL, "%s", ct_errmsg());
  cr_assert_eq(dir_entries(), 1, "the temporary file was not removed");
  assert_unchanged(inner, &orig);
  cr_assert_eq(remove(inner), 0);
  bytes_free(&orig);
}

Test(safetensors, overwrite_replaces_the_file) {
  const char *path = tpath("over.safetensors");
  bytes orig;
  write_original(path, &orig);
  double d[2] = {1.25, -2.5};
  ct_st_entry e = {"new", CT_FLOAT64, 1, {2}, sizeof d, d};
  cr_assert_eq(ct_st_write(path, &e, 1), CT_OK, "%s", ct_errmsg());
  ct_st_file f;
  cr_assert_eq(ct_st_read(path, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 1);
  cr_assert_str_eq(f.entries[0].name, "new");
  cr_assert(memcmp(f.entries[0].data, d, sizeof d) == 0);
  ct_st_file_free(&f);
  cr_assert_eq(dir_entries(), 1);
  /* Zero entries make a valid, empty file. */
  cr_assert_eq(ct_st_write(path, NULL, 0), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(ct_st_read(path, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 0);
  ct_st_file_free(&f);
  bytes_free(&orig);
}

Test(safetensors, invalid_entries_are_refused_before_writing) {
  const char *path = tpath("inv.safetensors");
  bytes orig;
  write_original(path, &orig);
  float v[2] = {1, 2};
  struct {
    ct_st_entry e[2];
    int count;
    ct_status want;
    const char *needle;
  } cases[] = {
      {{{"a", CT_FLOAT32, 1, {2}, 8, v}, {"a", CT_FLOAT32, 1, {2}, 8, v}}, 2, CT_ERR_INVALID, "used by two"},
      {{{"a", CT_FLOAT32, 1, {2}, 4, v}}, 1, CT_ERR_INVALID, "nbytes is 4 but the shape needs 8"},
      {{{"a", CT_FLOAT32, 1, {-2}, 8, v}}, 1, CT_ERR_INVALID, "out of range"},
      {{{"a", CT_FLOAT32, 9, {1}, 4, v}}, 1, CT_ERR_INVALID, "rank 9"},
      {{{"a", (ct_dtype)7, 1, {2}, 8, v}}, 1, CT_ERR_DTYPE, "invalid dtype 7"},
      {{{"__metadata__", CT_FLOAT32, 1, {2}, 8, v}}, 1, CT_ERR_INVALID, "reserved"},
      {{{NULL, CT_FLOAT32, 1, {2}, 8, v}}, 1, CT_ERR_NULL, "no name"},
      {{{"a", CT_FLOAT32, 1, {2}, 8, NULL}}, 1, CT_ERR_NULL, "data is NULL"},
      {{{"bad\xff", CT_FLOAT32, 1, {2}, 8, v}}, 1, CT_ERR_INVALID, "UTF-8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ct_status st = ct_st_write(path, cases[i].e, cases[i].count);
    cr_assert_eq(st, cases[i].want, "case %zu: status %d (%s)", i, (int)st, ct_errmsg());
    cr_assert(strstr(ct_errmsg(), cases[i].needle) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, ct_errmsg(), cases[i].needle);
  }
  const char *k[2] = {"x", "x"}, *vals[2] = {"1", "2"};
  ct_st_entry ok = {"a", CT_FLOAT32, 1, {2}, 8, v};
  cr_assert_eq(ct_st_write_meta(path, &ok, 1, k, vals, 2), CT_ERR_INVALID);
  cr_assert(strstr(ct_errmsg(), "metadata key 'x' is given twice") != NULL, "%s", ct_errmsg());
  cr_assert_eq(dir_entries(), 1);
  assert_unchanged(path, &orig);
  bytes_free(&orig);
}

/* ------------------------------------------------------------------------------------------- */
/* IDX                                                                                           */
/* ------------------------------------------------------------------------------------------- */

TestSuite(idx, .init = dir_setup, .fini = dir_teardown);

/* An IDX image: magic, big-endian dims, then `data` as given (already big-endian). */
static bytes idx_image(int type, int ndims, const uint32_t *dims, const void *data, size_t dlen) {
  bytes b;
  b.n = 4 + 4 * (size_t)ndims + dlen;
  b.p = malloc(b.n + 1);
  cr_assert_not_null(b.p);
  b.p[0] = 0;
  b.p[1] = 0;
  b.p[2] = (uint8_t)type;
  b.p[3] = (uint8_t)ndims;
  for (int i = 0; i < ndims; i++) {
    b.p[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
    b.p[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
    b.p[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
    b.p[7 + 4 * i] = (uint8_t)dims[i];
  }
  if (dlen > 0) memcpy(b.p + 4 + 4 * ndims, data, dlen);
  return b;
}

/* Writes the bytes with zlib (a real gzip file) and returns the compressed file's contents. */
static bytes gzip_file(const char *path, const bytes *plain) {
  gzFile gz = gzopen(path, "wb");
  cr_assert_not_null(gz);
  if (plain->n > 0) cr_assert_eq(gzwrite(gz, plain->p, (unsigned)plain->n), (int)plain->n);
  cr_assert_eq(gzclose(gz), Z_OK);
  return slurp(path);
}

/* Reads the bytes from memory, from a plain file and from a gzip file; all three must agree with
 * `want`. On success the memory result is left in *out (else zeroed). */
static void idx_all_ways(const bytes *b, ct_status want, const char *needle, ct_idx *out) {
  static int n;
  char name[32];
  ct_idx got[3];
  snprintf(name, sizeof name, "p%d.idx", n);
  const char *plain = tpath(name);
  spit(plain, b->p, b->n);
  snprintf(name, sizeof name, "z%d.idx.gz", n++);
  const char *gzpath = tpath(name);
  bytes gz = gzip_file(gzpath, b);

  ct_status st[4];
  st[0] = ct_idx_parse(b->p, b->n, &got[0]);
  cr_assert_eq(st[0], want, "memory: status %d (%s)", (int)st[0], ct_errmsg());
  if (needle) cr_assert(strstr(ct_errmsg(), needle) != NULL, "memory: \"%s\" lacks \"%s\"", ct_errmsg(), needle);
  st[1] = ct_idx_read(plain, &got[1]);
  cr_assert_eq(st[1], want, "plain file: status %d (%s)", (int)st[1], ct_errmsg());
  if (needle) cr_assert(strstr(ct_errmsg(), needle) != NULL, "plain file: \"%s\" lacks \"%s\"", ct_errmsg(), needle);
  if (want != CT_OK) cr_assert(strstr(ct_errmsg(), plain) != NULL, "no path in \"%s\"", ct_errmsg());
  st[2] = ct_idx_read(gzpath, &got[2]);
  cr_assert_eq(st[2], want, "gzip file: status %d (%s)", (int)st[2], ct_errmsg());
  if (needle) cr_assert(strstr(ct_errmsg(), needle) != NULL, "gzip file: \"%s\" lacks \"%s\"", ct_errmsg(), needle);
  ct_idx gm;
  st[3] = ct_idx_parse(gz.p, gz.n, &gm);
  cr_assert_eq(st[3], want, "gzip memory: status %d (%s)", (int)st[3], ct_errmsg());
  if (needle) cr_assert(strstr(ct_errmsg(), needle) != NULL, "gzip memory: \"%s\" lacks \"%s\"", ct_errmsg(), needle);

  ct_idx *all[4] = {&got[0], &got[1], &got[2], &gm};
  for (int i = 1; i < 4; i++) {
    cr_assert_eq(all[i]->type, all[0]->type);
    cr_assert_eq(all[i]->ndims, all[0]->ndims);
    cr_assert_eq(all[i]->nbytes, all[0]->nbytes);
    for (int d = 0; d < all[0]->ndims; d++) cr_assert_eq(all[i]->dims[d], all[0]->dims[d]);
    if (want == CT_OK) {
      cr_assert(memcmp(all[i]->data, all[0]->data, all[0]->nbytes) == 0, "way %d differs", i);
    } else {
      cr_assert_null(all[i]->data);
    }
  }
  for (int i = 1; i < 4; i++) ct_idx_free(all[i]);
  *out = got[0];
  bytes_free(&gz);
}

Test(idx, mnist_like_u8_images_and_labels) {
  uint8_t pix[2 * 3 * 2];
  for (int i = 0; i < 12; i++) pix[i] = (uint8_t)(i * 21 + 3);
  uint32_t dims[3] = {2, 3, 2};
  bytes b = idx_image(CT_IDX_U8, 3, dims, pix, sizeof pix);
  ct_idx x;
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(x.type, CT_IDX_U8);
  cr_assert_eq(x.ndims, 3);
  cr_assert_eq(x.dims[0], 2);
  cr_assert_eq(x.dims[1], 3);
  cr_assert_eq(x.dims[2], 2);
  cr_assert_eq(x.count, 12);
  cr_assert_eq(x.elem_size, 1);
  cr_assert_eq(x.nbytes, 12);
  cr_assert(memcmp(x.data, pix, 12) == 0);
  ct_idx_free(&x);
  cr_assert_null(x.data);
  ct_idx_free(&x);
  ct_idx_free(NULL);
  bytes_free(&b);

  uint8_t labels[10] = {5, 0, 4, 1, 9, 2, 1, 3, 1, 4};
  uint32_t n = 10;
  b = idx_image(CT_IDX_U8, 1, &n, labels, sizeof labels);
  cr_assert_eq(b.p[2], 0x08);
  cr_assert_eq(b.p[3], 0x01);
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(x.count, 10);
  cr_assert(memcmp(x.data, labels, 10) == 0);
  ct_idx_free(&x);
  bytes_free(&b);
}

Test(idx, every_element_type_is_converted_from_big_endian) {
  uint32_t three = 3;
  ct_idx x;
  /* i8 */
  uint8_t s8[3] = {0x80, 0xFF, 0x7F};
  bytes b = idx_image(CT_IDX_I8, 1, &three, s8, 3);
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(((int8_t *)x.data)[0], -128);
  cr_assert_eq(((int8_t *)x.data)[1], -1);
  cr_assert_eq(((int8_t *)x.data)[2], 127);
  ct_idx_free(&x);
  bytes_free(&b);
  /* i16 */
  uint8_t s16[6] = {0x80, 0x00, 0xFF, 0xFE, 0x01, 0x02};
  b = idx_image(CT_IDX_I16, 1, &three, s16, 6);
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(x.elem_size, 2);
  cr_assert_eq(((int16_t *)x.data)[0], -32768);
  cr_assert_eq(((int16_t *)x.data)[1], -2);
  cr_assert_eq(((int16_t *)x.data)[2], 0x0102);
  ct_idx_free(&x);
  bytes_free(&b);
  /* i32 */
  uint8_t s32[12] = {0x80, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFD, 0x01, 0x02, 0x03, 0x04};
  b = idx_image(CT_IDX_I32, 1, &three, s32, 12);
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(((int32_t *)x.data)[0], INT32_MIN);
  cr_assert_eq(((int32_t *)x.data)[1], -3);
  cr_assert_eq(((int32_t *)x.data)[2], 0x01020304);
  ct_idx_free(&x);
  bytes_free(&b);
  /* f32: 1.5, -0.0, NaN with payload */
  uint8_t f32[12] = {0x3F, 0xC0, 0, 0, 0x80, 0, 0, 0, 0x7F, 0xC0, 0x12, 0x34};
  b = idx_image(CT_IDX_F32, 1, &three, f32, 12);
  idx_all_ways(&b, CT_OK, NULL, &x);
  uint32_t bits[3];
  memcpy(bits, x.data, 12);
  cr_assert_eq(bits[0], 0x3FC00000u);
  cr_assert_eq(bits[1], 0x80000000u);
  cr_assert_eq(bits[2], 0x7FC01234u);
  cr_assert_eq(((float *)x.data)[0], 1.5f);
  ct_idx_free(&x);
  bytes_free(&b);
  /* f64: 2.0, -1/3 */
  uint32_t two = 2;
  uint8_t f64[16] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0xBF, 0xD5, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55};
  b = idx_image(CT_IDX_F64, 1, &two, f64, 16);
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(((double *)x.data)[0], 2.0);
  cr_assert_eq(((double *)x.data)[1], -1.0 / 3.0);
  ct_idx_free(&x);
  bytes_free(&b);
  /* A zero extent: no elements, data still allocated. */
  uint32_t zd[2] = {0, 28};
  b = idx_image(CT_IDX_F32, 2, zd, NULL, 0);
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(x.count, 0);
  cr_assert_eq(x.dims[1], 28);
  cr_assert_not_null(x.data);
  ct_idx_free(&x);
  bytes_free(&b);
}

Test(idx, bad_magic) {
  uint32_t one = 1;
  uint8_t v = 7;
  ct_idx x;
  bytes b = idx_image(CT_IDX_U8, 1, &one, &v, 1);
  b.p[0] = 1;
  idx_all_ways(&b, CT_ERR_FORMAT, "bad magic 01 00 08 01", &x);
  b.p[0] = 0;
  b.p[1] = 0x8b;
  idx_all_ways(&b, CT_ERR_FORMAT, "two zero bytes", &x);
  b.p[1] = 0;
  b.p[2] = 0x0A;
  idx_all_ways(&b, CT_ERR_FORMAT, "unknown element type 0x0a", &x);
  b.p[2] = 0x08;
  b.p[3] = 0;
  idx_all_ways(&b, CT_ERR_FORMAT, "0 dimensions", &x);
  b.p[3] = 9;
  idx_all_ways(&b, CT_ERR_FORMAT, "9 dimensions", &x);
  bytes_free(&b);
  /* A text file. */
  bytes t = {(uint8_t *)strdup("P5\n28 28\n255\n"), 13};
  idx_all_ways(&t, CT_ERR_FORMAT, "bad magic", &x);
  bytes_free(&t);
}

Test(idx, truncated_inputs) {
  uint8_t pix[6] = {1, 2, 3, 4, 5, 6};
  uint32_t dims[2] = {2, 3};
  bytes full = idx_image(CT_IDX_U8, 2, dims, pix, sizeof pix);
  ct_idx x;
  for (size_t cut = 0; cut < full.n; cut++) {
    bytes b = {full.p, cut};
    const char *needle = cut < 4    ? "inside the 4-byte magic"
                         : cut < 12 ? "inside the dimensions"
                                    : "data is truncated";
    idx_all_ways(&b, CT_ERR_FORMAT, needle, &x);
  }
  bytes b = {full.p, full.n - 2};
  idx_all_ways(&b, CT_ERR_FORMAT, "data is truncated: 4 of 6 bytes present", &x);
  bytes_free(&full);
  /* i32 data cut inside an element. */
  uint32_t two = 2;
  uint8_t i32[7] = {0, 0, 0, 1, 0, 0, 0};
  b = idx_image(CT_IDX_I32, 1, &two, i32, 7);
  idx_all_ways(&b, CT_ERR_FORMAT, "7 of 8 bytes", &x);
  bytes_free(&b);
}

Test(idx, trailing_data_is_rejected) {
  uint8_t pix[4] = {1, 2, 3, 4};
  uint32_t three = 3;
  bytes b = idx_image(CT_IDX_U8, 1, &three, pix, 4);
  ct_idx x;
  idx_all_ways(&b, CT_ERR_FORMAT, "trailing data after the 3 data bytes", &x);
  bytes_free(&b);
}

Test(idx, absurd_sizes) {
  uint32_t dims[2] = {65536, 65537};
  bytes b = idx_image(CT_IDX_U8, 2, dims, NULL, 0);
  ct_idx x;
  idx_all_ways(&b, CT_ERR_FORMAT, "more than 2^31 elements", &x);
  bytes_free(&b);
  uint32_t big[8] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu,
                     0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 2};
  b = idx_image(CT_IDX_F64, 8, big, NULL, 0);
  idx_all_ways(&b, CT_ERR_FORMAT, "more than 2^31 elements", &x);
  bytes_free(&b);
  /* Exactly 2^31 elements is allowed by the header; the data is simply missing. */
  uint32_t edge[2] = {32768, 65536};
  b = idx_image(CT_IDX_U8, 2, edge, NULL, 0);
  idx_all_ways(&b, CT_ERR_FORMAT, "data is truncated: 0 of 2147483648 bytes", &x);
  bytes_free(&b);
  /* Huge extents times a zero extent: no elements at all. */
  uint32_t zero[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0};
  b = idx_image(CT_IDX_U8, 3, zero, NULL, 0);
  idx_all_ways(&b, CT_OK, NULL, &x);
  cr_assert_eq(x.count, 0);
  ct_idx_free(&x);
  bytes_free(&b);
}

static bytes gz_of(const bytes *plain) {
  bytes gz = gzip_file(tpath("tmp.gz"), plain);
  cr_assert_eq(remove(tpath("tmp.gz")), 0);
  return gz;
}

/* Feeds gzip bytes to ct_idx_parse and ct_idx_read; both must fail with `needle`. */
static void expect_gz_error(const bytes *gz, const char *needle) {
  ct_idx x;
  ct_status st = ct_idx_parse(gz->p, gz->n, &x);
  cr_assert_eq(st, CT_ERR_FORMAT, "memory: status %d (%s)", (int)st, ct_errmsg());
  cr_assert(strstr(ct_errmsg(), needle) != NULL, "memory: \"%s\" lacks \"%s\"", ct_errmsg(), needle);
  cr_assert_null(x.data);
  const char *path = tpath("bad.gz");
  spit(path, gz->p, gz->n);
  st = ct_idx_read(path, &x);
  cr_assert_eq(st, CT_ERR_FORMAT, "file: status %d (%s)", (int)st, ct_errmsg());
  cr_assert(strstr(ct_errmsg(), needle) != NULL, "file: \"%s\" lacks \"%s\"", ct_errmsg(), needle);
  cr_assert_null(x.data);
}

Test(idx, corrupt_gzip_streams) {
  uint8_t pix[600];
  for (int i = 0; i < 600; i++) pix[i] = (uint8_t)((i * 7919) >> 3);
  uint32_t dims[2] = {20, 30};
  bytes plain = idx_image(CT_IDX_U8, 2, dims, pix, sizeof pix);
  bytes gz = gz_of(&plain);
  cr_assert_gt(gz.n, 30);

  /* Cut anywhere inside the compressed stream (the 10-byte gzip header excluded). */
  size_t cuts[] = {12, gz.n / 2, gz.n - 9, gz.n - 4, gz.n - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    bytes b = {gz.p, cuts[i]};
    expect_gz_error(&b, "truncated");
  }
  /* A wrong CRC-32 in the trailer. */
  gz.p[gz.n - 8] ^= 0x55;
  expect_gz_error(&gz, "incorrect data check");
  gz.p[gz.n - 8] ^= 0x55;
  /* A wrong length in the trailer. */
  gz.p[gz.n - 4] ^= 0x01;
  expect_gz_error(&gz, "incorrect length check");
  gz.p[gz.n - 4] ^= 0x01;
  /* Damage in the deflate data: a bad block type. */
  uint8_t first = gz.p[10];
  gz.p[10] |= 0x06;
  expect_gz_error(&gz, "invalid block type");
  gz.p[10] = first;
  bytes_free(&gz);

  /* Gzip magic with a bad compression method. */
  uint8_t junk[20] = {0x1f, 0x8b, 0x07, 0};
  bytes j = {junk, sizeof junk};
  expect_gz_error(&j, "corrupt gzip stream");
  /* Just the magic. */
  bytes m = {junk, 2};
  expect_gz_error(&m, "truncated");
  bytes_free(&plain);
}

Test(idx, gzip_members_and_trailing_garbage) {
  uint8_t pix[8] = {9, 8, 7, 6, 5, 4, 3, 2};
  uint32_t dims[2] = {2, 4};
  bytes plain = idx_image(CT_IDX_U8, 2, dims, pix, sizeof pix);
  /* Header in one member, data in a second, as `cat a.gz b.gz` makes. */
  bytes head = {plain.p, 12}, body = {plain.p + 12, 8};
  bytes g1 = gz_of(&head), g2 = gz_of(&body);
  bytes cat = {malloc(g1.n + g2.n + 5), g1.n + g2.n};
  memcpy(cat.p, g1.p, g1.n);
  memcpy(cat.p + g1.n, g2.p, g2.n);
  ct_idx x;
  cr_assert_eq(ct_idx_parse(cat.p, cat.n, &x), CT_OK, "%s", ct_errmsg());
  cr_assert(memcmp(x.data, pix, 8) == 0);
  ct_idx_free(&x);
  spit(tpath("cat.gz"), cat.p, cat.n);
  cr_assert_eq(ct_idx_read(tpath("cat.gz"), &x), CT_OK, "%s", ct_errmsg());
  cr_assert(memcmp(x.data, pix, 8) == 0);
  ct_idx_free(&x);
  /* Bytes after the last member that are not gzip are ignored, as zlib does. */
  memcpy(cat.p + cat.n, "JUNK!", 5);
  cat.n += 5;
  cr_assert_eq(ct_idx_parse(cat.p, cat.n, &x), CT_OK, "%s", ct_errmsg());
  ct_idx_free(&x);
  spit(tpath("cat2.gz"), cat.p, cat.n);
  cr_assert_eq(ct_idx_read(tpath("cat2.gz"), &x), CT_OK, "%s", ct_errmsg());
  cr_assert(memcmp(x.data, pix, 8) == 0);
  ct_idx_free(&x);
  bytes_free(&cat);
  bytes_free(&g1);
  bytes_free(&g2);
  bytes_free(&plain);
}

Test(idx, missing_or_unreadable_files_are_io_errors) {
  ct_idx x;
  const char *path = tpath("train-images-idx3-ubyte.gz");
  cr_assert_eq(ct_idx_read(path, &x), CT_ERR_IO);
  cr_assert(strstr(ct_errmsg(), path) != NULL && strstr(ct_errmsg(), "No such file") != NULL, "%s", ct_errmsg());
  cr_assert_null(x.data);
  cr_assert_eq(ct_idx_read(g_dir, &x), CT_ERR_IO, "a directory: %s", ct_errmsg());
  cr_assert(strstr(ct_errmsg(), "Is a directory") != NULL, "%s", ct_errmsg());
  cr_assert_eq(ct_idx_read(NULL, &x), CT_ERR_NULL);
  cr_assert_eq(ct_idx_parse(NULL, 0, &x), CT_ERR_FORMAT, "empty input");
  cr_assert_eq(ct_idx_parse(NULL, 5, &x), CT_ERR_NULL);
  cr_assert_eq(ct_idx_type_size(CT_IDX_F64), 8);
  cr_assert_eq(ct_idx_type_size(0x0A), 0);
  cr_assert_str_eq(ct_idx_type_name(CT_IDX_I16), "i16");
}

/* ---- paths that are not regular files: a FIFO without a writer must fail at once, not block ---- */
Test(safetensors, fifos_and_devices_fail_at_once, .timeout = 20) {
  const char *fifo = tpath("pipe.safetensors");
  cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
  const char *paths[] = {fifo, "/dev/null", g_dir};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
    ct_st_file f;
    cr_assert_eq(ct_st_read(paths[i], &f), CT_ERR_IO, "%s: %s", paths[i], ct_errmsg());
    cr_assert(strstr(ct_errmsg(), "not a regular file") != NULL && strstr(ct_errmsg(), paths[i]) != NULL, "%s", ct_errmsg());
    cr_assert_null(f.entries);
    cr_assert_eq(ct_st_read_header(paths[i], &f), CT_ERR_IO, "%s: %s", paths[i], ct_errmsg());
    cr_assert(strstr(ct_errmsg(), "not a regular file") != NULL, "%s", ct_errmsg());
  }
  ct_st_file f;
  ct_st_read(fifo, &f);
  cr_assert(strstr(ct_errmsg(), "FIFO") != NULL, "the message names the kind of file: %s", ct_errmsg());
}

/* Two readers of JSON disagree about a key given twice (cJSON keeps the first, Python the last). */
Test(safetensors, a_key_twice_inside_a_tensor_description) {
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      CT_ERR_FORMAT, "tensor 'a': the key 'dtype' appears twice");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      CT_ERR_FORMAT, "the key 'shape' appears twice");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"data_offsets\":[0,4]}}", 4,
                      CT_ERR_FORMAT, "the key 'data_offsets' appears twice");
  expect_header_error("{\"a\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1,\"x\":2}}", 4,
                      CT_ERR_FORMAT, "the key 'x' appears twice");
}

/* The header alone: a 1 GiB tensor in a sparse file is described, never read (data stays NULL). */
Test(safetensors, header_only_read_leaves_the_data_alone) {
  const char *h = "{\"big\":{\"dtype\":\"F32\",\"shape\":[268435456],\"data_offsets\":[0,1073741824]},"
                  "\"__metadata__\":{\"k\":\"v\"}}";
  bytes b = st_image(h, NULL, 0);
  const char *path = tpath("sparse.safetensors");
  spit(path, b.p, b.n);
  cr_assert_eq(truncate(path, (off_t)b.n + 1073741824), 0, "truncate: %s", strerror(errno));
  ct_st_file f;
  cr_assert_eq(ct_st_read_header(path, &f), CT_OK, "%s", ct_errmsg());
  cr_assert_eq(f.count, 1);
  cr_assert_null(f.entries[0].data, "a header-only read gave tensor data");
  cr_assert_eq(f.entries[0].nbytes, (size_t)1073741824);
  cr_assert_eq(f.meta_count, 1);
  cr_assert_str_eq(f.meta_values[0], "v");
  ct_st_file_free(&f);
  /* the header is still checked against the file: one byte short is refused */
  cr_assert_eq(truncate(path, (off_t)b.n + 1073741823), 0);
  cr_assert_eq(ct_st_read_header(path, &f), CT_ERR_FORMAT, "%s", ct_errmsg());
  bytes_free(&b);
}

Test(idx, fifos_and_devices_fail_at_once, .timeout = 20) {
  const char *fifo = tpath("pipe-idx3-ubyte");
  cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
  const char *paths[] = {fifo, "/dev/null"};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
    ct_idx x;
    cr_assert_eq(ct_idx_read(paths[i], &x), CT_ERR_IO, "%s: %s", paths[i], ct_errmsg());
    cr_assert(strstr(ct_errmsg(), "not a regular file") != NULL && strstr(ct_errmsg(), paths[i]) != NULL, "%s", ct_errmsg());
    cr_assert_null(x.data);
  }
}
