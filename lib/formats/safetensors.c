/*
 * safetensors.c — see safetensors.h for the format and the rules a reader enforces.
 *
 * Reading: the header is validated completely (parse_header) before any tensor byte is touched;
 * ct_st_parse then copies from memory and ct_st_read reads each tensor straight into its own
 * buffer, so a file is never held twice. Writing: validate, build the header with cJSON, write a
 * temporary file next to the target, fsync, rename.
 */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64

#include "safetensors.h"
#include "ct_base.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define ST_MAX_INT 9007199254740992.0 /* 2^53: largest integer every JSON reader keeps exact */
#define ST_META_KEY "__metadata__"

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ST_BIG_ENDIAN 1
#else
#define ST_BIG_ENDIAN 0
#endif

/* ------------------------------------------------------------------------------------------- */
/* Messages                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static void clear_err(char *err, size_t cap) {
  if (err != NULL && cap > 0) err[0] = '\0';
}

/* ------------------------------------------------------------------------------------------- */
/* Dtypes                                                                                        */
/* ------------------------------------------------------------------------------------------- */

static const struct {
  const char *name;
  ct_dtype dtype;
  size_t size;
} k_dtypes[] = {{"F32", CT_FLOAT32, 4}, {"F64", CT_FLOAT64, 8},  {"I32", CT_INT32, 4}, {"F16", CT_FLOAT16, 2},
               {"BF16", CT_BFLOAT16, 2}, {"I64", CT_INT64, 8}, {"BOOL", CT_BOOL, 1}};
#define ST_NDTYPES ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

/* Dtypes of the safetensors format that this library does not load. */
static const char *const k_foreign_dtypes[] = {"U8", "I8", "I16", "U16", "U32", "U64", "C64", "F8_E5M2", "F8_E4M3"};

static int dtype_index(ct_dtype dt) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (k_dtypes[i].dtype == dt) return i;
  return -1;
}

static bool is_foreign_dtype(const char *s) {
  for (size_t i = 0; i < sizeof k_foreign_dtypes / sizeof k_foreign_dtypes[0]; i++)
    if (strcmp(s, k_foreign_dtypes[i]) == 0) return true;
  return false;
}

/* ------------------------------------------------------------------------------------------- */
/* Helpers                                                                                       */
/* ------------------------------------------------------------------------------------------- */

/* Returns true when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF) without NUL bytes; otherwise *bad is the offset of the first bad byte. */
static bool utf8_valid(const uint8_t *s, size_t n, size_t *bad) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint32_t cp, min;
    if (c == 0) {
      *bad = i;
      return false;
    } else if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      *bad = i;
      return false;
    }
    if (n - i < len) {
      *bad = i;
      return false;
    }
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) {
        *bad = i;
        return false;
      }
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      *bad = i;
      return false;
    }
    i += len;
  }
  return true;
}

static bool str_utf8_valid(const char *s) {
  size_t bad;
  return utf8_valid((const uint8_t *)s, strlen(s), &bad);
}

static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void store_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

#if ST_BIG_ENDIAN
static void swap_elems(void *data, size_t nbytes, size_t esize) {
  uint8_t *p = data;
  for (size_t i = 0; i + esize <= nbytes; i += esize)
    for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
      uint8_t t = p[i + a];
      p[i + a] = p[i + b];
      p[i + b] = t;
    }
}
#endif

/* A JSON number that is an integer in [0, 2^53]. */
static bool json_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return false;
  double d = item->valuedouble;
  if (!(d >= 0.0 && d <= ST_MAX_INT)) return false; /* also rejects NaN and infinities */
  uint64_t v = (uint64_t)d;
  if ((double)v != d) return false;
  *out = v;
  return true;
}

/* Element count of a shape, false on overflow of int64. A zero extent makes the count 0 whatever
 * the other extents are. */
static bool shape_elems(const int64_t *shape, int rank, uint64_t *out) {
  for (int i = 0; i < rank; i++)
    if (shape[i] == 0) {
      *out = 0;
      return true;
    }
  uint64_t n = 1;
  for (int i = 0; i < rank; i++) {
    uint64_t d = (uint64_t)shape[i];
    if (n > (uint64_t)INT64_MAX / d) return false;
    n *= d;
  }
  *out = n;
  return true;
}

static int cmp_strptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice among names[0..n) (the array is sorted in place), or NULL. */
static const char *find_duplicate(const char **names, size_t n) {
  if (n < 2) return NULL;
  qsort(names, n, sizeof *names, cmp_strptr);
  for (size_t i = 1; i < n; i++)
    if (strcmp(names[i - 1], names[i]) == 0) return names[i];
  return NULL;
}

typedef struct {
  uint64_t begin, end;
  int index;
} st_span;

static int cmp_span(const void *a, const void *b) {
  const st_span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

/* ------------------------------------------------------------------------------------------- */
/* Reading                                                                                       */
/* ------------------------------------------------------------------------------------------- */

void ct_st_file_free(ct_st_file *f) {
  if (f == NULL) return;
  if (f->entries != NULL) {
    for (int i = 0; i < f->count; i++) {
      free(f->entries[i].name);
      free(f->entries[i].data);
    }
    free(f->entries);
  }
  for (int i = 0; i < f->meta_count; i++) {
    if (f->meta_keys != NULL) free(f->meta_keys[i]);
    if (f->meta_values != NULL) free(f->meta_values[i]);
  }
  free(f->meta_keys);
  free(f->meta_values);
  free(f->metadata_json);
  memset(f, 0, sizeof *f);
}

const ct_st_entry *ct_st_find(const ct_st_file *f, const char *name) {
  if (f == NULL || name == NULL || f->entries == NULL) return NULL;
  for (int i = 0; i < f->count; i++)
    if (f->entries[i].name != NULL && strcmp(f->entries[i].name, name) == 0) return &f->entries[i];
  return NULL;
}

#define ST_NAME_FMT "'%.80s'"

static ct_status parse_metadata(const cJSON *meta, ct_st_file *out, char *err, size_t cap) {
  if (!cJSON_IsObject(meta)) return ct__fail(err, cap, CT_ERR_FORMAT, "\"" ST_META_KEY "\" is not a JSON object");
  int n = 0;
  for (const cJSON *it = meta->child; it != NULL; it = it->next) {
    if (!cJSON_IsString(it))
      return ct__fail(err, cap, CT_ERR_FORMAT, "\"" ST_META_KEY "\" value of key " ST_NAME_FMT " is not a string",
                  it->string);
    if (n == INT32_MAX) return ct__fail(err, cap, CT_ERR_FORMAT, "too many metadata keys");
    n++;
  }
  size_t slots = n > 0 ? (size_t)n : 1;
  const char **names = malloc(slots * sizeof *names);
  out->meta_keys = calloc(slots, sizeof *out->meta_keys);
  out->meta_values = calloc(slots, sizeof *out->meta_values);
  char *json = cJSON_PrintUnformatted(meta);
  if (names == NULL || out->meta_keys == NULL || out->meta_values == NULL || json == NULL) {
    free(names);
    if (json != NULL) cJSON_free(json);
    return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory reading the metadata");
  }
  out->metadata_json = strdup(json);
  cJSON_free(json);
  if (out->metadata_json == NULL) {
    free(names);
    return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory reading the metadata");
  }
  int i = 0;
  for (const cJSON *it = meta->child; it != NULL; it = it->next, i++) {
    names[i] = it->string;
    out->meta_keys[i] = strdup(it->string);
    out->meta_values[i] = strdup(it->valuestring);
    out->meta_count = i + 1;
    if (out->meta_keys[i] == NULL || out->meta_values[i] == NULL) {
      free(names);
      return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory reading the metadata");
    }
  }
  const char *dup = find_duplicate(names, (size_t)n);
  ct_status st = CT_OK;
  if (dup != NULL)
    st = ct__fail(err, cap, CT_ERR_FORMAT, "\"" ST_META_KEY "\" has the key " ST_NAME_FMT " twice", dup);
  free(names);
  return st;
}

/* Validates one tensor description and fills *e (except name and data) and *span. */
static ct_status parse_tensor(const cJSON *item, uint64_t data_len, ct_st_entry *e, st_span *span, char *err,
                              size_t cap) {
  const char *name = item->string;
  if (!cJSON_IsObject(item))
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": description is not a JSON object", name);
  /* cJSON keeps a repeated key as two items and finds the first; other readers take the last:
   * a description with a key twice means different tensors to different readers */
  size_t nfields = 0;
  for (const cJSON *it = item->child; it != NULL; it = it->next) nfields++;
  if (nfields > 1) {
    const char **fields = malloc(nfields * sizeof *fields);
    if (fields == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for %zu fields", nfields);
    size_t k = 0;
    for (const cJSON *it = item->child; it != NULL; it = it->next) fields[k++] = it->string;
    const char *dup = find_duplicate(fields, nfields);
    ct_status st = dup ? ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": the key " ST_NAME_FMT " appears twice",
                              name, dup)
                       : CT_OK;
    free(fields);
    if (st != CT_OK) return st;
  }

  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  if (dt == NULL) return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": missing \"dtype\"", name);
  if (!cJSON_IsString(dt))
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": \"dtype\" is not a string", name);
  int di = -1;
  for (int i = 0; i < ST_NDTYPES; i++)
    if (strcmp(dt->valuestring, k_dtypes[i].name) == 0) di = i;
  if (di < 0) {
    if (is_foreign_dtype(dt->valuestring))
      return ct__fail(err, cap, CT_ERR_DTYPE,
                  "tensor " ST_NAME_FMT ": dtype \"%s\" is not supported (only F32, F64 and I32 are)", name,
                  dt->valuestring);
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": unknown dtype \"%.40s\"", name,
                dt->valuestring);
  }
  e->dtype = k_dtypes[di].dtype;

  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  if (shape == NULL) return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": missing \"shape\"", name);
  if (!cJSON_IsArray(shape))
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": \"shape\" is not a list", name);
  int rank = 0;
  for (const cJSON *d = shape->child; d != NULL; d = d->next) {
    if (rank == CT_MAX_RANK)
      return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": rank %d exceeds the maximum of %d", name,
                  cJSON_GetArraySize(shape), CT_MAX_RANK);
    uint64_t v;
    if (!json_uint(d, &v))
      return ct__fail(err, cap, CT_ERR_FORMAT,
                  "tensor " ST_NAME_FMT ": shape entry %d is not a non-negative integer (at most 2^53)", name,
                  rank);
    e->shape[rank++] = (int64_t)v;
  }
  e->rank = rank;
  uint64_t elems;
  if (!shape_elems(e->shape, rank, &elems))
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": element count of the shape overflows", name);
  uint64_t esize = k_dtypes[di].size;
  if (elems > (uint64_t)INT64_MAX / esize)
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": byte size of the shape overflows", name);
  uint64_t bytes = elems * esize;

  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (offs == NULL)
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": missing \"data_offsets\"", name);
  uint64_t begin, end;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &begin) ||
      !json_uint(offs->child->next, &end))
    return ct__fail(err, cap, CT_ERR_FORMAT,
                "tensor " ST_NAME_FMT ": \"data_offsets\" is not a list of two non-negative integers", name);
  if (begin > end)
    return ct__fail(err, cap, CT_ERR_FORMAT,
                "tensor " ST_NAME_FMT ": data_offsets begin %llu is greater than end %llu", name,
                (unsigned long long)begin, (unsigned long long)end);
  if (end > data_len)
    return ct__fail(err, cap, CT_ERR_FORMAT,
                "tensor " ST_NAME_FMT ": data_offsets end %llu is beyond the data block (%llu bytes)", name,
                (unsigned long long)end, (unsigned long long)data_len);
  if (end - begin != bytes)
    return ct__fail(err, cap, CT_ERR_FORMAT,
                "tensor " ST_NAME_FMT ": data_offsets span %llu bytes but %llu elements of %s need %llu", name,
                (unsigned long long)(end - begin), (unsigned long long)elems, k_dtypes[di].name,
                (unsigned long long)bytes);
  if (bytes > SIZE_MAX)
    return ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": too large for this machine", name);
  e->nbytes = (size_t)bytes;
  span->begin = begin;
  span->end = end;
  return CT_OK;
}

/* Validates the header hdr[0..n) describing a data block of data_len bytes. On success out has
 * every entry filled except data, and *begins_out (malloc'd, one per entry) gives where each
 * entry's bytes start in the data block. On failure out is freed. */
static ct_status parse_header(const uint8_t *hdr, size_t n, uint64_t data_len, ct_st_file *out,
                              uint64_t **begins_out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  *begins_out = NULL;

  size_t bad;
  if (!utf8_valid(hdr, n, &bad)) {
    if (hdr[bad] == 0) return ct__fail(err, cap, CT_ERR_FORMAT, "header has a NUL byte at offset %zu", bad);
    return ct__fail(err, cap, CT_ERR_FORMAT, "header is not valid UTF-8 (byte offset %zu)", bad);
  }
  /* cJSON gets a NUL-terminated copy, so that nothing it does can read past the header. */
  char *text = malloc(n + 1);
  if (text == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for a %zu-byte header", n);
  memcpy(text, hdr, n);
  text[n] = '\0';

  const char *stop = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, n, &stop, 0);
  ct_status st = CT_OK;
  st_span *spans = NULL;
  const char **names = NULL;
  uint64_t *begins = NULL;
  if (root == NULL) {
    size_t at = (stop != NULL && stop >= text && stop <= text + n) ? (size_t)(stop - text) : 0;
    st = ct__fail(err, cap, CT_ERR_FORMAT, "header is not valid JSON (error near byte %zu of %zu)", at, n);
    goto done;
  }
  for (const char *p = stop; p < text + n; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      st = ct__fail(err, cap, CT_ERR_FORMAT, "header has data after the JSON value (byte %zu of %zu)",
                (size_t)(p - text), n);
      goto done;
    }
  if (!cJSON_IsObject(root)) {
    st = ct__fail(err, cap, CT_ERR_FORMAT, "header is not a JSON object");
    goto done;
  }

  size_t nkeys = 0, ntensors = 0;
  for (const cJSON *it = root->child; it != NULL; it = it->next) {
    nkeys++;
    if (strcmp(it->string, ST_META_KEY) != 0) ntensors++;
  }
  if (ntensors > INT32_MAX) {
    st = ct__fail(err, cap, CT_ERR_FORMAT, "header describes too many tensors");
    goto done;
  }
  size_t slots = ntensors > 0 ? ntensors : 1;
  names = malloc((nkeys > 0 ? nkeys : 1) * sizeof *names);
  spans = malloc(slots * sizeof *spans);
  begins = malloc(slots * sizeof *begins);
  out->entries = calloc(slots, sizeof *out->entries);
  if (names == NULL || spans == NULL || begins == NULL || out->entries == NULL) {
    st = ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for %zu header entries", nkeys);
    goto done;
  }

  /* Duplicates first: with a repeated name the rest of the header is ambiguous. */
  size_t k = 0;
  for (const cJSON *it = root->child; it != NULL; it = it->next) names[k++] = it->string;
  const char *dup = find_duplicate(names, nkeys);
  if (dup != NULL) {
    st = ct__fail(err, cap, CT_ERR_FORMAT, "header has the name " ST_NAME_FMT " twice", dup);
    goto done;
  }

  int t = 0;
  for (const cJSON *it = root->child; it != NULL; it = it->next) {
    if (strcmp(it->string, ST_META_KEY) == 0) {
      st = parse_metadata(it, out, err, cap);
      if (st != CT_OK) goto done;
      continue;
    }
    ct_st_entry *e = &out->entries[t];
    st = parse_tensor(it, data_len, e, &spans[t], err, cap);
    if (st != CT_OK) goto done;
    e->name = strdup(it->string);
    if (e->name == NULL) {
      st = ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for tensor names");
      goto done;
    }
    spans[t].index = t;
    begins[t] = spans[t].begin;
    out->count = ++t;
  }

  /* The tensors must tile the data block: no overlap, no hole, nothing after the last one. */
  qsort(spans, ntensors, sizeof *spans, cmp_span);
  uint64_t cursor = 0;
  for (size_t i = 0; i < ntensors; i++) {
    const char *nm = out->entries[spans[i].index].name;
    if (spans[i].begin < cursor) {
      st = ct__fail(err, cap, CT_ERR_FORMAT, "tensor " ST_NAME_FMT ": data [%llu, %llu) overlaps another tensor", nm,
                (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
      goto done;
    }
    if (spans[i].begin > cursor) {
      st = ct__fail(err, cap, CT_ERR_FORMAT,
                "tensor " ST_NAME_FMT ": data starts at %llu, leaving bytes [%llu, %llu) unused", nm,
                (unsigned long long)spans[i].begin, (unsigned long long)cursor,
                (unsigned long long)spans[i].begin);
      goto done;
    }
    cursor = spans[i].end;
  }
  if (cursor != data_len) {
    st = ct__fail(err, cap, CT_ERR_FORMAT, "the data block has %llu bytes but the tensors cover only %llu",
              (unsigned long long)data_len, (unsigned long long)cursor);
    goto done;
  }

done:
  cJSON_Delete(root);
  free(text);
  free(names);
  free(spans);
  if (st != CT_OK) {
    free(begins);
    ct_st_file_free(out);
  } else {
    *begins_out = begins;
  }
  return st;
}

/* Gives every entry a buffer of max(nbytes, 1) bytes. */
static ct_status alloc_data(ct_st_file *f, char *err, size_t cap) {
  for (int i = 0; i < f->count; i++) {
    ct_st_entry *e = &f->entries[i];
    e->data = malloc(e->nbytes > 0 ? e->nbytes : 1);
    if (e->data == NULL)
      return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for tensor " ST_NAME_FMT " (%zu bytes)", e->name,
                  e->nbytes);
  }
  return CT_OK;
}

static void to_host_order(ct_st_file *f) {
#if ST_BIG_ENDIAN
  for (int i = 0; i < f->count; i++)
    swap_elems(f->entries[i].data, f->entries[i].nbytes, k_dtypes[dtype_index(f->entries[i].dtype)].size);
#else
  (void)f;
#endif
}

static ct_status st_parse_impl(const uint8_t *buf, size_t len, ct_st_file *out, char *err, size_t errcap) {
  clear_err(err, errcap);
  if (out == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_st_parse: out is NULL");
  memset(out, 0, sizeof *out);
  if (buf == NULL && len > 0) return ct__fail(err, errcap, CT_ERR_NULL, "ct_st_parse: buf is NULL");
  if (len < 8)
    return ct__fail(err, errcap, CT_ERR_FORMAT, "file is %zu bytes, shorter than the 8-byte header length", len);
  uint64_t n = load_le64(buf);
  if (n > CT_ST_MAX_HEADER)
    return ct__fail(err, errcap, CT_ERR_FORMAT, "header length %llu exceeds the limit of %u bytes",
                (unsigned long long)n, CT_ST_MAX_HEADER);
  if (n > len - 8)
    return ct__fail(err, errcap, CT_ERR_FORMAT, "header length %llu exceeds the %zu bytes that follow it",
                (unsigned long long)n, len - 8);
  uint64_t *begins;
  ct_status st = parse_header(buf + 8, (size_t)n, len - 8 - (size_t)n, out, &begins, err, errcap);
  if (st != CT_OK) return st;
  st = alloc_data(out, err, errcap);
  if (st == CT_OK) {
    const uint8_t *data = buf + 8 + (size_t)n;
    for (int i = 0; i < out->count; i++)
      if (out->entries[i].nbytes > 0) memcpy(out->entries[i].data, data + begins[i], out->entries[i].nbytes);
    to_host_order(out);
  }
  free(begins);
  if (st != CT_OK) ct_st_file_free(out);
  return st;
}

/* Reads exactly n bytes at offset off. */
static ct_status read_at(FILE *f, uint64_t off, void *dst, size_t n, const char *what, char *err, size_t cap) {
  if (n == 0) return CT_OK;
  if (off > (uint64_t)INT64_MAX || fseeko(f, (off_t)off, SEEK_SET) != 0)
    return ct__fail(err, cap, CT_ERR_IO, "cannot seek to %s: %s", what, strerror(errno));
  size_t got = fread(dst, 1, n, f);
  if (got != n) {
    if (ferror(f)) return ct__fail(err, cap, CT_ERR_IO, "cannot read %s: %s", what, strerror(errno));
    return ct__fail(err, cap, CT_ERR_IO, "unexpected end of file in %s (%zu of %zu bytes)", what, got, n);
  }
  return CT_OK;
}

static ct_status read_file(const char *path, bool with_data, ct_st_file *out, char *err, size_t cap) {
  int64_t fsize;
  int fd = ct__open_regular(path, &fsize, err, cap); /* a FIFO or device fails here, never blocks */
  if (fd < 0) return errno == ENOMEM ? CT_ERR_OUT_OF_MEMORY : CT_ERR_IO;
  FILE *f = fdopen(fd, "rb");
  if (f == NULL) {
    int e = errno;
    close(fd);
    return ct__fail(err, cap, e == ENOMEM ? CT_ERR_OUT_OF_MEMORY : CT_ERR_IO, "cannot open: %s", strerror(e));
  }
  ct_status st = CT_OK;
  uint8_t *hdr = NULL;
  uint64_t *begins = NULL;
  uint64_t size = (uint64_t)fsize;
  if (size < 8) {
    st = ct__fail(err, cap, CT_ERR_FORMAT, "file is %llu bytes, shorter than the 8-byte header length",
              (unsigned long long)size);
    goto done;
  }
  uint8_t lenbuf[8];
  st = read_at(f, 0, lenbuf, 8, "the header length", err, cap);
  if (st != CT_OK) goto done;
  uint64_t n = load_le64(lenbuf);
  if (n > CT_ST_MAX_HEADER) {
    st = ct__fail(err, cap, CT_ERR_FORMAT, "header length %llu exceeds the limit of %u bytes", (unsigned long long)n,
              CT_ST_MAX_HEADER);
    goto done;
  }
  if (n > size - 8) {
    st = ct__fail(err, cap, CT_ERR_FORMAT, "header length %llu exceeds the %llu bytes that follow it",
              (unsigned long long)n, (unsigned long long)(size - 8));
    goto done;
  }
  hdr = malloc(n > 0 ? (size_t)n : 1);
  if (hdr == NULL) {
    st = ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for a %llu-byte header", (unsigned long long)n);
    goto done;
  }
  st = read_at(f, 8, hdr, (size_t)n, "the header", err, cap);
  if (st != CT_OK) goto done;
  st = parse_header(hdr, (size_t)n, size - 8 - n, out, &begins, err, cap);
  if (st != CT_OK || !with_data) goto done;
  st = alloc_data(out, err, cap);
  for (int i = 0; st == CT_OK && i < out->count; i++) {
    char what[128];
    snprintf(what, sizeof what, "the data of tensor " ST_NAME_FMT, out->entries[i].name);
    st = read_at(f, 8 + n + begins[i], out->entries[i].data, out->entries[i].nbytes, what, err, cap);
  }
  if (st == CT_OK) to_host_order(out);

done:
  fclose(f);
  free(hdr);
  free(begins);
  if (st != CT_OK) ct_st_file_free(out);
  return st;
}

static ct_status st_read_impl(const char *path, ct_st_file *out, char *err, size_t errcap) {
  clear_err(err, errcap);
  if (out == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_st_read: out is NULL");
  memset(out, 0, sizeof *out);
  if (path == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_st_read: path is NULL");
  ct_status st = read_file(path, true, out, err, errcap);
  if (st != CT_OK) ct__prefix_err(err, errcap, path);
  return st;
}

static ct_status st_read_header_impl(const char *path, ct_st_file *out, char *err, size_t errcap) {
  clear_err(err, errcap);
  if (out == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_st_read_header: out is NULL");
  memset(out, 0, sizeof *out);
  if (path == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_st_read_header: path is NULL");
  ct_status st = read_file(path, false, out, err, errcap);
  if (st != CT_OK) ct__prefix_err(err, errcap, path);
  return st;
}

/* ------------------------------------------------------------------------------------------- */
/* Writing                                                                                       */
/* ------------------------------------------------------------------------------------------- */

static ct_status validate_entries(const ct_st_entry *entries, int count, const char *const *mkeys,
                                  const char *const *mvalues, int mcount, char *err, size_t cap) {
  if (count < 0) return ct__fail(err, cap, CT_ERR_INVALID, "negative entry count %d", count);
  if (mcount < 0) return ct__fail(err, cap, CT_ERR_INVALID, "negative metadata count %d", mcount);
  if (count > 0 && entries == NULL) return ct__fail(err, cap, CT_ERR_NULL, "entries is NULL");
  if (mcount > 0 && (mkeys == NULL || mvalues == NULL))
    return ct__fail(err, cap, CT_ERR_NULL, "metadata keys or values are NULL");
  for (int i = 0; i < count; i++) {
    const ct_st_entry *e = &entries[i];
    if (e->name == NULL) return ct__fail(err, cap, CT_ERR_NULL, "entry %d has no name", i);
    if (!str_utf8_valid(e->name)) return ct__fail(err, cap, CT_ERR_INVALID, "entry %d: name is not valid UTF-8", i);
    if (strcmp(e->name, ST_META_KEY) == 0)
      return ct__fail(err, cap, CT_ERR_INVALID, "entry %d: the name \"" ST_META_KEY "\" is reserved", i);
    int di = dtype_index(e->dtype);
    if (di < 0)
      return ct__fail(err, cap, CT_ERR_DTYPE, "entry " ST_NAME_FMT ": invalid dtype %d", e->name, (int)e->dtype);
    if (e->rank < 0 || e->rank > CT_MAX_RANK)
      return ct__fail(err, cap, CT_ERR_INVALID, "entry " ST_NAME_FMT ": rank %d is outside 0..%d", e->name, e->rank,
                  CT_MAX_RANK);
    for (int d = 0; d < e->rank; d++)
      if (e->shape[d] < 0 || (double)e->shape[d] > ST_MAX_INT)
        return ct__fail(err, cap, CT_ERR_INVALID, "entry " ST_NAME_FMT ": extent %lld of axis %d is out of range",
                    e->name, (long long)e->shape[d], d);
    uint64_t elems;
    if (!shape_elems(e->shape, e->rank, &elems) || elems > (uint64_t)INT64_MAX / k_dtypes[di].size)
      return ct__fail(err, cap, CT_ERR_INVALID, "entry " ST_NAME_FMT ": size of the shape overflows", e->name);
    uint64_t bytes = elems * k_dtypes[di].size;
    if ((uint64_t)e->nbytes != bytes)
      return ct__fail(err, cap, CT_ERR_INVALID, "entry " ST_NAME_FMT ": nbytes is %zu but the shape needs %llu",
                  e->name, e->nbytes, (unsigned long long)bytes);
    if (bytes > 0 && e->data == NULL)
      return ct__fail(err, cap, CT_ERR_NULL, "entry " ST_NAME_FMT ": data is NULL", e->name);
  }
  for (int i = 0; i < mcount; i++) {
    if (mkeys[i] == NULL || mvalues[i] == NULL)
      return ct__fail(err, cap, CT_ERR_NULL, "metadata pair %d has a NULL key or value", i);
    if (!str_utf8_valid(mkeys[i]) || !str_utf8_valid(mvalues[i]))
      return ct__fail(err, cap, CT_ERR_INVALID, "metadata pair %d is not valid UTF-8", i);
  }

  size_t most = (size_t)(count > mcount ? count : mcount);
  const char **names = malloc((most > 0 ? most : 1) * sizeof *names);
  if (names == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory");
  for (int i = 0; i < count; i++) names[i] = entries[i].name;
  const char *dup = find_duplicate(names, (size_t)count);
  ct_status st = CT_OK;
  if (dup != NULL) {
    st = ct__fail(err, cap, CT_ERR_INVALID, "the name " ST_NAME_FMT " is used by two entries", dup);
  } else {
    for (int i = 0; i < mcount; i++) names[i] = mkeys[i];
    dup = find_duplicate(names, (size_t)mcount);
    if (dup != NULL) st = ct__fail(err, cap, CT_ERR_INVALID, "the metadata key " ST_NAME_FMT " is given twice", dup);
  }
  free(names);
  return st;
}

/* Adds item to the array or object `to` (under key when not NULL); deletes it on failure. */
static bool add_item(cJSON *to, const char *key, cJSON *item) {
  if (item == NULL) return false;
  bool ok = key != NULL ? cJSON_AddItemToObject(to, key, item) : cJSON_AddItemToArray(to, item);
  if (!ok) cJSON_Delete(item);
  return ok;
}

/* An integer as a raw JSON token, so that it is printed exactly. */
static bool add_uint(cJSON *array, uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  return add_item(array, NULL, cJSON_CreateRaw(buf));
}

/* Builds the header text, padded with spaces so that its length is a multiple of 8. */
static ct_status build_header(const ct_st_entry *entries, int count, const char *const *mkeys,
                              const char *const *mvalues, int mcount, char **text_out, size_t *len_out, char *err,
                              size_t cap) {
  bool ok = true;
  cJSON *root = cJSON_CreateObject();
  if (root == NULL) ok = false;
  if (ok && mcount > 0) {
    cJSON *meta = cJSON_CreateObject();
    ok = add_item(root, ST_META_KEY, meta);
    for (int i = 0; ok && i < mcount; i++) ok = add_item(meta, mkeys[i], cJSON_CreateString(mvalues[i]));
  }
  uint64_t offset = 0;
  for (int i = 0; ok && i < count; i++) {
    const ct_st_entry *e = &entries[i];
    cJSON *obj = cJSON_CreateObject();
    ok = add_item(root, e->name, obj);
    ok = ok && add_item(obj, "dtype", cJSON_CreateString(k_dtypes[dtype_index(e->dtype)].name));
    cJSON *shape = cJSON_CreateArray();
    ok = ok ? add_item(obj, "shape", shape) : (cJSON_Delete(shape), false);
    for (int d = 0; ok && d < e->rank; d++) ok = add_uint(shape, (uint64_t)e->shape[d]);
    cJSON *offs = cJSON_CreateArray();
    ok = ok ? add_item(obj, "data_offsets", offs) : (cJSON_Delete(offs), false);
    ok = ok && add_uint(offs, offset) && add_uint(offs, offset + e->nbytes);
    offset += e->nbytes;
  }
  char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (json == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory building the header");
  size_t len = strlen(json);
  size_t padded = (len + 7) & ~(size_t)7;
  char *text = malloc(padded > 0 ? padded : 1);
  if (text == NULL) {
    cJSON_free(json);
    return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory building the header");
  }
  memcpy(text, json, len);
  memset(text + len, ' ', padded - len);
  cJSON_free(json);
  *text_out = text;
  *len_out = padded;
  return CT_OK;
}

static bool write_entry_data(int fd, const ct_st_entry *e) {
#if ST_BIG_ENDIAN
  size_t esize = k_dtypes[dtype_index(e->dtype)].size;
  uint8_t chunk[1 << 16];
  const uint8_t *p = e->data;
  for (size_t done = 0; done < e->nbytes;) {
    size_t n = e->nbytes - done < sizeof chunk ? e->nbytes - done : sizeof chunk;
    memcpy(chunk, p + done, n);
    swap_elems(chunk, n, esize);
    if (!ct__write_all(fd, chunk, n)) return false;
    done += n;
  }
  return true;
#else
  return ct__write_all(fd, e->data, e->nbytes);
#endif
}

typedef struct {
  const char *header;
  size_t hlen;
  const ct_st_entry *entries;
  int count;
} st_bytes;

static bool write_st_bytes(int fd, void *user) {
  const st_bytes *b = user;
  uint8_t lenbuf[8];
  store_le64(lenbuf, (uint64_t)b->hlen);
  bool ok = ct__write_all(fd, lenbuf, sizeof lenbuf) && ct__write_all(fd, b->header, b->hlen);
  for (int i = 0; ok && i < b->count; i++) ok = write_entry_data(fd, &b->entries[i]);
  return ok;
}

static ct_status st_write_meta_impl(const char *path, const ct_st_entry *entries, int count, const char *const *meta_keys,
                           const char *const *meta_values, int meta_count, char *err, size_t errcap) {
  clear_err(err, errcap);
  if (path == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_st_write: path is NULL");
  if (path[0] == '\0') return ct__fail(err, errcap, CT_ERR_INVALID, "ct_st_write: path is empty");
  ct_status st = validate_entries(entries, count, meta_keys, meta_values, meta_count, err, errcap);
  if (st != CT_OK) return st;
  char *header = NULL;
  size_t hlen = 0;
  st = build_header(entries, count, meta_keys, meta_values, meta_count, &header, &hlen, err, errcap);
  if (st != CT_OK) return st;

  st_bytes bytes = {header, hlen, entries, count};
  st = ct__write_file_atomic(path, write_st_bytes, &bytes, err, errcap);
  free(header);
  return st;
}

static ct_status st_write_impl(const char *path, const ct_st_entry *entries, int count, char *err, size_t errcap) {
  return st_write_meta_impl(path, entries, count, NULL, NULL, 0, err, errcap);
}

/* ---- the library's error style: the status returned, the message in ct_errmsg() ---------- */
ct_status ct_st_parse(const uint8_t *buf, size_t len, ct_st_file *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(st_parse_impl(buf, len, out, err, sizeof err), err);
}

ct_status ct_st_read(const char *path, ct_st_file *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(st_read_impl(path, out, err, sizeof err), err);
}

ct_status ct_st_read_header(const char *path, ct_st_file *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(st_read_header_impl(path, out, err, sizeof err), err);
}

ct_status ct_st_write(const char *path, const ct_st_entry *entries, int count) {
  char err[CT_ERRMSG_CAP];
  return ct__report(st_write_impl(path, entries, count, err, sizeof err), err);
}

ct_status ct_st_write_meta(const char *path, const ct_st_entry *entries, int count, const char *const *meta_keys,
                           const char *const *meta_values, int meta_count) {
  char err[CT_ERRMSG_CAP];
  return ct__report(st_write_meta_impl(path, entries, count, meta_keys, meta_values, meta_count, err, sizeof err), err);
}
