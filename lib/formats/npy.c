/*
 * npy.c — see npy.h. One loader reads a .npy stream from a byte source: memory, a file opened by
 * ct__open_regular (base/fileio.c), or a member of a zip archive opened by libzip. The header is
 * read first and checked completely; the data buffer then grows as bytes actually arrive, so a
 * header promising 2^40 elements in a short file costs no large allocation.
 */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64

#include "npy.h"
#include "ct_base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define NPY_BIG_ENDIAN 1
#else
#define NPY_BIG_ENDIAN 0
#endif

#define NPY_FIRST_CHUNK ((size_t)1 << 20)
#define NPY_MAGIC "\x93NUMPY"

/* ------------------------------------------------------------------------------------------- */
/* Types                                                                                         */
/* ------------------------------------------------------------------------------------------- */

static const struct {
  char kind;
  size_t size;
  const char *name;
} k_types[CT_NPY_TYPES] = {
    [CT_NPY_BOOL] = {'b', 1, "|b1"}, [CT_NPY_U8] = {'u', 1, "|u1"},  [CT_NPY_I8] = {'i', 1, "|i1"},
    [CT_NPY_U16] = {'u', 2, "<u2"},  [CT_NPY_I16] = {'i', 2, "<i2"}, [CT_NPY_U32] = {'u', 4, "<u4"},
    [CT_NPY_I32] = {'i', 4, "<i4"},  [CT_NPY_U64] = {'u', 8, "<u8"}, [CT_NPY_I64] = {'i', 8, "<i8"},
    [CT_NPY_F32] = {'f', 4, "<f4"},  [CT_NPY_F64] = {'f', 8, "<f8"}, [CT_NPY_F16] = {'f', 2, "<f2"},
};

size_t ct_npy_type_size(ct_npy_type type) { return (unsigned)type < CT_NPY_TYPES ? k_types[type].size : 0; }

const char *ct_npy_type_name(ct_npy_type type) { return (unsigned)type < CT_NPY_TYPES ? k_types[type].name : "?"; }

double ct_npy_value(ct_npy_type type, const void *data, size_t i) {
  switch (type) {
    case CT_NPY_BOOL: return ((const uint8_t *)data)[i] != 0;
    case CT_NPY_U8: return ((const uint8_t *)data)[i];
    case CT_NPY_I8: return ((const int8_t *)data)[i];
    case CT_NPY_U16: return ((const uint16_t *)data)[i];
    case CT_NPY_I16: return ((const int16_t *)data)[i];
    case CT_NPY_U32: return ((const uint32_t *)data)[i];
    case CT_NPY_I32: return ((const int32_t *)data)[i];
    case CT_NPY_U64: return (double)((const uint64_t *)data)[i];
    case CT_NPY_I64: return (double)((const int64_t *)data)[i];
    case CT_NPY_F32: return ((const float *)data)[i];
    case CT_NPY_F64: return ((const double *)data)[i];
    case CT_NPY_F16: return ct__f16_to_double(((const uint16_t *)data)[i]);
    default: return 0;
  }
}

#if NPY_BIG_ENDIAN
static void swap_elems(uint8_t *p, size_t nbytes, size_t esize) {
  for (size_t i = 0; esize > 1 && i + esize <= nbytes; i += esize)
    for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
      uint8_t t = p[i + a];
      p[i + a] = p[i + b];
      p[i + b] = t;
    }
}
#endif

void ct_npy_free(ct_npy *x) {
  if (x == NULL) return;
  free(x->data);
  memset(x, 0, sizeof *x);
}

/* ------------------------------------------------------------------------------------------- */
/* Byte sources                                                                                  */
/* ------------------------------------------------------------------------------------------- */

typedef enum { SRC_MEMORY, SRC_FILE, SRC_ZIP } src_kind;

typedef struct {
  src_kind kind;
  const uint8_t *buf; /* SRC_MEMORY */
  size_t len, pos;
  FILE *f;         /* SRC_FILE */
  zip_file_t *zf;  /* SRC_ZIP */
} src;

/* Up to n bytes into dst; *got < n only at the end of the input. */
static ct_status src_read(src *s, void *dst, size_t n, size_t *got, char *err, size_t cap) {
  *got = 0;
  if (s->kind == SRC_MEMORY) {
    size_t k = s->len - s->pos < n ? s->len - s->pos : n;
    if (k) memcpy(dst, s->buf + s->pos, k);
    s->pos += k;
    *got = k;
    return CT_OK;
  }
  uint8_t *p = dst;
  while (*got < n) {
    size_t want = n - *got < ((size_t)1 << 30) ? n - *got : ((size_t)1 << 30);
    if (s->kind == SRC_FILE) {
      size_t r = fread(p + *got, 1, want, s->f);
      if (r == 0) {
        if (ferror(s->f)) return ct__fail(err, cap, CT_ERR_IO, "read failed: %s", strerror(errno));
        return CT_OK;
      }
      *got += r;
    } else {
      zip_int64_t r = zip_fread(s->zf, p + *got, want);
      if (r < 0) return ct__fail(err, cap, CT_ERR_FORMAT, "damaged zip member: %s", zip_file_strerror(s->zf));
      if (r == 0) return CT_OK;
      *got += (size_t)r;
    }
  }
  return CT_OK;
}

static ct_status read_exact(src *s, void *dst, size_t n, const char *what, char *err, size_t cap) {
  size_t got = 0;
  ct_status st = src_read(s, dst, n, &got, err, cap);
  if (st != CT_OK) return st;
  if (got < n) return ct__fail(err, cap, CT_ERR_FORMAT, "truncated: the %s ends after %zu of %zu bytes", what, got, n);
  return CT_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* The header: a Python dict literal                                                             */
/* ------------------------------------------------------------------------------------------- */

typedef struct {
  const char *p, *end;
} cur;

static void skip_ws(cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool take(cur *c, char ch) {
  skip_ws(c);
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return true;
  }
  return false;
}

static bool take_word(cur *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
    c->p += n;
    return true;
  }
  return false;
}

/* A quoted string without escapes, of at most cap - 1 bytes. */
static ct_status parse_string(cur *c, char *out, size_t outcap, const char *what, char *err, size_t cap) {
  skip_ws(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: %s is not a quoted string", what);
  char q = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != q) {
    unsigned char ch = (unsigned char)*c->p;
    if (ch == '\\' || ch == '\n' || ch < 0x20)
      return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: %s holds an escape or a control character", what);
    if (n + 1 >= outcap) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: %s is too long", what);
    out[n++] = (char)ch;
    c->p++;
  }
  if (c->p >= c->end) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: %s has no closing quote", what);
  c->p++;
  out[n] = 0;
  return CT_OK;
}

static ct_status parse_descr(const char *d, ct_npy_type *type, char *err, size_t cap) {
  static const char supported[] = "supported: b1 u1 i1 u2 i2 u4 i4 u8 i8 f2 f4 f8, little-endian";
  size_t n = strlen(d);
  if (n == 3 && strchr("<>|=", d[0]) != NULL && d[2] >= '1' && d[2] <= '8') {
    for (int t = 0; t < CT_NPY_TYPES; t++) {
      if (k_types[t].kind != d[1] || k_types[t].size != (size_t)(d[2] - '0')) continue;
      if (k_types[t].size > 1 && d[0] == '>')
        return ct__fail(err, cap, CT_ERR_DTYPE,
                    "dtype '%s' is big-endian; only little-endian files are read (in NumPy: "
                    "a.astype(a.dtype.newbyteorder('<')))",
                    d);
      if (k_types[t].size > 1 && d[0] == '|')
        return ct__fail(err, cap, CT_ERR_DTYPE, "dtype '%s' has no byte order; %s", d, supported);
      if (NPY_BIG_ENDIAN && k_types[t].size > 1 && d[0] == '<')
        return ct__fail(err, cap, CT_ERR_DTYPE, "dtype '%s' is little-endian; this host is big-endian", d);
      *type = (ct_npy_type)t;
      return CT_OK;
    }
  }
  return ct__fail(err, cap, CT_ERR_DTYPE, "dtype '%s' is not supported (%s)", d, supported);
}

/* A non-negative integer, Python 2's "3L" included. */
static ct_status parse_extent(cur *c, int64_t *v, char *err, size_t cap) {
  skip_ws(c);
  if (c->p >= c->end || *c->p < '0' || *c->p > '9')
    return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: 'shape' holds something other than non-negative integers");
  int64_t x = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    int d = *c->p++ - '0';
    if (x > (INT64_MAX - d) / 10) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: an extent of 'shape' overflows");
    x = x * 10 + d;
  }
  if (c->p < c->end && *c->p == 'L') c->p++;
  *v = x;
  return CT_OK;
}

static ct_status parse_shape(cur *c, int *rank, int64_t *shape, char *err, size_t cap) {
  if (!take(c, '(')) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: 'shape' is not a tuple");
  *rank = 0;
  if (take(c, ')')) return CT_OK;
  for (;;) {
    int64_t v = 0;
    ct_status st = parse_extent(c, &v, err, cap);
    if (st != CT_OK) return st;
    if (*rank == CT_MAX_RANK)
      return ct__fail(err, cap, CT_ERR_FORMAT, "the array has more than %d dimensions, the most the library supports",
                  CT_MAX_RANK);
    shape[(*rank)++] = v;
    bool comma = take(c, ',');
    if (take(c, ')')) {
      if (*rank == 1 && !comma) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: 'shape' (n) is not a tuple (n,)");
      return CT_OK;
    }
    if (!comma) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: 'shape' is not a tuple of integers");
  }
}

typedef struct {
  ct_npy_type type;
  bool fortran;
  int rank;
  int64_t shape[CT_MAX_RANK];
} header;

static ct_status parse_header(const char *text, size_t len, header *h, char *err, size_t cap) {
  cur c = {text, text + len};
  bool have[3] = {false, false, false};
  static const char *const keys[3] = {"descr", "fortran_order", "shape"};
  if (!take(&c, '{')) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: not a Python dict ('{' missing)");
  ct_status dtype_st = CT_OK; /* an unsupported dtype is reported once the header is known to be well formed */
  char dtype_msg[256] = "";
  while (!take(&c, '}')) {
    char key[32];
    ct_status st = parse_string(&c, key, sizeof key, "a key", err, cap);
    if (st != CT_OK) return st;
    int k = 0;
    while (k < 3 && strcmp(key, keys[k]) != 0) k++;
    if (k == 3) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: unknown key '%s' (descr, fortran_order and shape are read)", key);
    if (have[k]) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: the key '%s' appears twice", key);
    have[k] = true;
    if (!take(&c, ':')) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: no ':' after '%s'", key);
    skip_ws(&c);
    if (k == 0) {
      if (c.p < c.end && *c.p == '[')
        return ct__fail(err, cap, CT_ERR_DTYPE, "structured dtypes (a list in 'descr') are not supported");
      char d[32];
      st = parse_string(&c, d, sizeof d, "'descr'", err, cap);
      if (st != CT_OK) return st;
      dtype_st = parse_descr(d, &h->type, dtype_msg, sizeof dtype_msg);
    } else if (k == 1) {
      if (take_word(&c, "True")) h->fortran = true;
      else if (take_word(&c, "False")) h->fortran = false;
      else return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: 'fortran_order' is neither True nor False");
    } else {
      st = parse_shape(&c, &h->rank, h->shape, err, cap);
      if (st != CT_OK) return st;
    }
    if (take(&c, '}')) break;
    if (!take(&c, ',')) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: no ',' or '}' after the value of '%s'", key);
  }
  skip_ws(&c);
  if (c.p != c.end) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: something other than spaces follows the dict");
  for (int k = 0; k < 3; k++)
    if (!have[k]) return ct__fail(err, cap, CT_ERR_FORMAT, "bad header: the key '%s' is missing", keys[k]);
  if (dtype_st != CT_OK) return ct__fail(err, cap, dtype_st, "%s", dtype_msg);
  return CT_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* Loading                                                                                       */
/* ------------------------------------------------------------------------------------------- */

/* Fortran order (first index fastest) to C order (last index fastest). */
static ct_status to_c_order(ct_npy *x, char *err, size_t cap) {
  if (x->rank < 2 || x->count < 2) return CT_OK;
  size_t es = ct_npy_type_size(x->type);
  uint8_t *dst = malloc(x->nbytes);
  if (dst == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory (%zu bytes)", x->nbytes);
  size_t stride[CT_MAX_RANK], idx[CT_MAX_RANK] = {0}, off = 0;
  stride[0] = 1;
  for (int d = 1; d < x->rank; d++) stride[d] = stride[d - 1] * (size_t)x->shape[d - 1];
  const uint8_t *src = x->data;
  for (size_t i = 0; i < x->count; i++) {
    memcpy(dst + i * es, src + off * es, es);
    for (int d = x->rank - 1; d >= 0; d--) { /* the next C-order index */
      off += stride[d];
      if (++idx[d] < (size_t)x->shape[d]) break;
      off -= stride[d] * idx[d];
      idx[d] = 0;
    }
  }
  free(x->data);
  x->data = dst;
  return CT_OK;
}

static ct_status load(src *s, ct_npy *out, char *err, size_t cap) {
  uint8_t pre[12];
  size_t got = 0;
  ct_status st = src_read(s, pre, 8, &got, err, cap);
  if (st != CT_OK) return st;
  if (got < 6 || memcmp(pre, NPY_MAGIC, 6) != 0)
    return ct__fail(err, cap, CT_ERR_FORMAT, "not a .npy file (it does not start with \\x93NUMPY)");
  if (got < 8) return ct__fail(err, cap, CT_ERR_FORMAT, "truncated: the file ends inside the version bytes");
  unsigned major = pre[6], minor = pre[7];
  if (major < 1 || major > 3 || minor != 0)
    return ct__fail(err, cap, CT_ERR_FORMAT, "format version %u.%u is not supported (1.0, 2.0 and 3.0 are)", major, minor);
  size_t lenbytes = major == 1 ? 2 : 4;
  st = read_exact(s, pre + 8, lenbytes, "header length", err, cap);
  if (st != CT_OK) return st;
  size_t hlen = pre[8] | (size_t)pre[9] << 8;
  if (lenbytes == 4) hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  if (hlen > CT_NPY_MAX_HEADER)
    return ct__fail(err, cap, CT_ERR_FORMAT, "the header length %zu is more than %zu bytes", hlen, CT_NPY_MAX_HEADER);
  char *text = malloc(hlen + 1);
  if (text == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory");
  header h;
  memset(&h, 0, sizeof h);
  st = read_exact(s, text, hlen, "header", err, cap);
  if (st == CT_OK) st = parse_header(text, hlen, &h, err, cap);
  free(text);
  if (st != CT_OK) return st;

  size_t es = ct_npy_type_size(h.type), count = 1;
  for (int d = 0; d < h.rank; d++) {
    if (h.shape[d] != 0 && count > (SIZE_MAX / es) / (uint64_t)h.shape[d])
      return ct__fail(err, cap, CT_ERR_FORMAT, "the shape in the header describes more bytes than memory can address");
    count *= (size_t)h.shape[d];
  }
  size_t nbytes = count * es;
  size_t have = 0, bufcap = nbytes < NPY_FIRST_CHUNK ? nbytes : NPY_FIRST_CHUNK;
  uint8_t *data = malloc(bufcap ? bufcap : 1);
  if (data == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory");
  while (st == CT_OK && have < nbytes) {
    if (have == bufcap) {
      size_t nc = bufcap > nbytes / 2 ? nbytes : bufcap * 2;
      uint8_t *p = realloc(data, nc);
      if (p == NULL) {
        st = ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory (%zu bytes)", nc);
        break;
      }
      data = p;
      bufcap = nc;
    }
    st = src_read(s, data + have, bufcap - have, &got, err, cap);
    if (st == CT_OK && got == 0)
      st = ct__fail(err, cap, CT_ERR_FORMAT, "truncated: %zu bytes of data, the header's shape and dtype '%s' need %zu",
                have, ct_npy_type_name(h.type), nbytes);
    have += got;
  }
  if (st == CT_OK) {
    uint8_t extra;
    st = src_read(s, &extra, 1, &got, err, cap);
    if (st == CT_OK && got != 0)
      st = ct__fail(err, cap, CT_ERR_FORMAT, "bytes follow the %zu bytes of data that the header describes", nbytes);
  }
  if (st != CT_OK) {
    free(data);
    return st;
  }
#if NPY_BIG_ENDIAN
  swap_elems(data, nbytes, es);
#endif
  out->type = h.type;
  out->rank = h.rank;
  memcpy(out->shape, h.shape, sizeof h.shape);
  out->count = count;
  out->nbytes = nbytes;
  out->data = data;
  if (h.fortran) st = to_c_order(out, err, cap);
  if (st != CT_OK) ct_npy_free(out);
  return st;
}

static ct_status npy_parse_impl(const uint8_t *buf, size_t len, ct_npy *out, char *err, size_t cap) {
  if (out == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npy_parse: out is NULL");
  memset(out, 0, sizeof *out);
  if (buf == NULL && len > 0) return ct__fail(err, cap, CT_ERR_NULL, "ct_npy_parse: buf is NULL");
  src s = {.kind = SRC_MEMORY, .buf = buf, .len = len};
  return load(&s, out, err, cap);
}

static ct_status npy_read_impl(const char *path, ct_npy *out, char *err, size_t cap) {
  if (out == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npy_read: out is NULL");
  memset(out, 0, sizeof *out);
  if (path == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npy_read: path is NULL");
  FILE *f = ct__fopen_regular(path, 'r', 0, NULL);
  if (f == NULL) return ct__fail(err, cap, CT_ERR_IO, "%s: cannot open: %s", path, ct__open_error(errno));
  src s = {.kind = SRC_FILE, .f = f};
  ct_status st = load(&s, out, err, cap);
  fclose(f);
  if (st != CT_OK) ct__prefix_err(err, cap, path);
  return st;
}

/* ------------------------------------------------------------------------------------------- */
/* Writing                                                                                       */
/* ------------------------------------------------------------------------------------------- */

typedef struct {
  const char *header;
  size_t hlen;
  const void *data;
  size_t nbytes, es;
} npy_bytes;

static bool write_npy_bytes(int fd, void *user) {
  const npy_bytes *b = user;
  if (!ct__write_all(fd, b->header, b->hlen)) return false;
#if NPY_BIG_ENDIAN
  uint8_t chunk[1 << 16];
  for (size_t done = 0; done < b->nbytes;) {
    size_t n = b->nbytes - done < sizeof chunk ? b->nbytes - done : sizeof chunk;
    memcpy(chunk, (const uint8_t *)b->data + done, n);
    swap_elems(chunk, n, b->es);
    if (!ct__write_all(fd, chunk, n)) return false;
    done += n;
  }
  return true;
#else
  return b->nbytes == 0 || ct__write_all(fd, b->data, b->nbytes);
#endif
}

static ct_status npy_write_impl(const char *path, ct_npy_type type, int rank, const int64_t *shape, const void *data,
                                char *err, size_t cap) {
  if (err && cap) err[0] = 0;
  if (path == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npy_write: path is NULL");
  if ((unsigned)type >= CT_NPY_TYPES) return ct__fail(err, cap, CT_ERR_INVALID, "ct_npy_write: bad element type %d", (int)type);
  if (rank < 0 || rank > CT_MAX_RANK || (rank > 0 && shape == NULL))
    return ct__fail(err, cap, CT_ERR_INVALID, "ct_npy_write: bad rank %d", rank);
  size_t es = ct_npy_type_size(type), count = 1;
  /* 10 bytes of preamble, the dict, spaces, '\n': a multiple of 64 bytes, as NumPy writes */
  char text[64 + 32 * CT_MAX_RANK + 64];
  int n = snprintf(text, sizeof text, NPY_MAGIC "%c%c%c%c{'descr': '%s', 'fortran_order': False, 'shape': (", 1, 0, 0, 0,
                   ct_npy_type_name(type));
  for (int d = 0; d < rank; d++) {
    if (shape[d] < 0) return ct__fail(err, cap, CT_ERR_INVALID, "ct_npy_write: extent %d is negative", d);
    if (shape[d] != 0 && count > (SIZE_MAX / es) / (uint64_t)shape[d])
      return ct__fail(err, cap, CT_ERR_INVALID, "ct_npy_write: the shape overflows");
    count *= (size_t)shape[d];
    n += snprintf(text + n, sizeof text - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
  }
  n += snprintf(text + n, sizeof text - (size_t)n, "%s), }", rank == 1 ? "," : "");
  if (count > 0 && data == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npy_write: data is NULL");
  size_t len = (size_t)n;
  while ((len + 1) % 64 != 0) text[len++] = ' ';
  text[len++] = '\n';
  size_t hlen = len - 10;
  text[8] = (char)(hlen & 0xff);
  text[9] = (char)(hlen >> 8);
  npy_bytes b = {text, len, data, count * es, es};
  return ct__write_file_atomic(path, write_npy_bytes, &b, err, cap);
}

/* ------------------------------------------------------------------------------------------- */
/* .npz archives                                                                                 */
/* ------------------------------------------------------------------------------------------- */

struct ct_npz {
  zip_t *za;
  int count;
};

static ct_status zip_fail(char *err, size_t cap, int code, const char *what) {
  zip_error_t ze;
  zip_error_init_with_code(&ze, code);
  ct_status st = ct__fail(err, cap, code == ZIP_ER_MEMORY ? CT_ERR_OUT_OF_MEMORY : CT_ERR_FORMAT, "%s%s", what,
                      zip_error_strerror(&ze));
  zip_error_fini(&ze);
  return st;
}

static ct_status npz_finish_open(zip_t *za, ct_npz **out, char *err, size_t cap) {
  zip_int64_t n = zip_get_num_entries(za, 0);
  ct_npz *z = calloc(1, sizeof *z);
  if (z == NULL || n < 0 || n > INT32_MAX) {
    free(z);
    zip_discard(za);
    return z == NULL ? ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory")
                     : ct__fail(err, cap, CT_ERR_FORMAT, "not a zip archive of arrays (%lld members)", (long long)n);
  }
  z->za = za;
  z->count = (int)n;
  *out = z;
  return CT_OK;
}

static ct_status npz_open_impl(const char *path, ct_npz **out, char *err, size_t cap) {
  if (out == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npz_open: out is NULL");
  *out = NULL;
  if (path == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npz_open: path is NULL");
  char why[256];
  int fd = ct__open_regular(path, NULL, why, sizeof why);
  if (fd < 0) return ct__fail(err, cap, CT_ERR_IO, "%s: %s", path, why);
  int code = 0;
  zip_t *za = zip_fdopen(fd, ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (za == NULL) {
    close(fd);
    ct_status st = zip_fail(err, cap, code, "not a readable .npz (zip) archive: ");
    ct__prefix_err(err, cap, path);
    return st;
  }
  ct_status st = npz_finish_open(za, out, err, cap);
  if (st != CT_OK) ct__prefix_err(err, cap, path);
  return st;
}

static ct_status npz_open_memory_impl(const uint8_t *buf, size_t len, ct_npz **out, char *err, size_t cap) {
  if (out == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npz_open_memory: out is NULL");
  *out = NULL;
  if (buf == NULL && len > 0) return ct__fail(err, cap, CT_ERR_NULL, "ct_npz_open_memory: buf is NULL");
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *zs = zip_source_buffer_create(buf, len, 0, &ze);
  if (zs == NULL) {
    ct_status st = zip_fail(err, cap, zip_error_code_zip(&ze), "cannot read the archive: ");
    zip_error_fini(&ze);
    return st;
  }
  zip_t *za = zip_open_from_source(zs, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
  if (za == NULL) {
    zip_source_free(zs);
    ct_status st = zip_fail(err, cap, zip_error_code_zip(&ze), "not a readable .npz (zip) archive: ");
    zip_error_fini(&ze);
    return st;
  }
  zip_error_fini(&ze);
  return npz_finish_open(za, out, err, cap);
}

int ct_npz_count(const ct_npz *z) { return z ? z->count : 0; }

const char *ct_npz_member(const ct_npz *z, int i) {
  if (z == NULL || i < 0 || i >= z->count) return NULL;
  return zip_get_name(z->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
}

/* "a, b, c" (the arrays of the archive, ".npy" left off), cut to cap. */
static void list_arrays(const ct_npz *z, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < z->count && n + 1 < cap; i++) {
    const char *m = ct_npz_member(z, i);
    if (m == NULL) continue;
    size_t len = strlen(m);
    if (len > 4 && strcmp(m + len - 4, ".npy") == 0) len -= 4;
    int w = snprintf(buf + n, cap - n, "%s'%.*s'", n ? ", " : "", (int)(len < 200 ? len : 200), m);
    if (w < 0) break;
    n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
  }
  if (n == 0) snprintf(buf, cap, "no arrays");
}

static ct_status npz_read_impl(ct_npz *z, const char *name, ct_npy *out, char *err, size_t cap) {
  if (out == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npz_read: out is NULL");
  memset(out, 0, sizeof *out);
  if (z == NULL || name == NULL) return ct__fail(err, cap, CT_ERR_NULL, "ct_npz_read: the archive and the name are required");
  size_t nl = strlen(name);
  char *member = malloc(nl + 5);
  if (member == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory");
  memcpy(member, name, nl);
  memcpy(member + nl, ".npy", 5);
  zip_int64_t idx = zip_name_locate(z->za, member, ZIP_FL_ENC_RAW);
  if (idx < 0) idx = zip_name_locate(z->za, name, ZIP_FL_ENC_RAW);
  free(member);
  if (idx < 0) {
    char names[512];
    list_arrays(z, names, sizeof names);
    return ct__fail(err, cap, CT_ERR_NOT_FOUND, "no array '%s' in the archive (it holds %s)", name, names);
  }
  zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)idx, 0);
  if (zf == NULL)
    return ct__fail(err, cap, CT_ERR_FORMAT, "array '%s': cannot read its member: %s", name, zip_strerror(z->za));
  src s = {.kind = SRC_ZIP, .zf = zf};
  ct_status st = load(&s, out, err, cap);
  zip_fclose(zf);
  if (st != CT_OK) {
    char what[300];
    snprintf(what, sizeof what, "array '%.256s'", name);
    ct__prefix_err(err, cap, what);
  }
  return st;
}

void ct_npz_close(ct_npz *z) {
  if (z == NULL) return;
  zip_discard(z->za);
  free(z);
}

/* ---- the library's error style: the status returned, the message in ct_errmsg() ---------- */
ct_status ct_npy_parse(const uint8_t *buf, size_t len, ct_npy *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(npy_parse_impl(buf, len, out, err, sizeof err), err);
}

ct_status ct_npy_read(const char *path, ct_npy *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(npy_read_impl(path, out, err, sizeof err), err);
}

ct_status ct_npy_write(const char *path, ct_npy_type type, int rank, const int64_t *shape, const void *data) {
  char err[CT_ERRMSG_CAP];
  return ct__report(npy_write_impl(path, type, rank, shape, data, err, sizeof err), err);
}

ct_status ct_npz_open(const char *path, ct_npz **out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(npz_open_impl(path, out, err, sizeof err), err);
}

ct_status ct_npz_open_memory(const uint8_t *buf, size_t len, ct_npz **out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(npz_open_memory_impl(buf, len, out, err, sizeof err), err);
}

ct_status ct_npz_read(ct_npz *z, const char *name, ct_npy *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(npz_read_impl(z, name, out, err, sizeof err), err);
}
