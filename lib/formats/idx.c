/*
 * idx.c — see idx.h. One loader reads from a byte source that is either memory (plain, or gzip
 * inflated here) or a file opened by ct__open_regular (lib/fileio.c) and read through zlib's
 * gzdopen (which reads plain and gzip files alike).
 * The data buffer grows as bytes actually arrive, so a header promising 2^31 elements in a short
 * file costs no large allocation.
 */
#define _POSIX_C_SOURCE 200809L
#define ZLIB_CONST

#include "idx.h"
#include "ct_base.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define IDX_BIG_ENDIAN 1
#else
#define IDX_BIG_ENDIAN 0
#endif

#define IDX_FIRST_CHUNK ((size_t)1 << 20)
#define IDX_MAX_READ ((size_t)1 << 30)

size_t ct_idx_type_size(int type) {
  switch (type) {
    case CT_IDX_U8:
    case CT_IDX_I8: return 1;
    case CT_IDX_I16: return 2;
    case CT_IDX_I32:
    case CT_IDX_F32: return 4;
    case CT_IDX_F64: return 8;
    default: return 0;
  }
}

const char *ct_idx_type_name(int type) {
  switch (type) {
    case CT_IDX_U8: return "u8";
    case CT_IDX_I8: return "i8";
    case CT_IDX_I16: return "i16";
    case CT_IDX_I32: return "i32";
    case CT_IDX_F32: return "f32";
    case CT_IDX_F64: return "f64";
    default: return "?";
  }
}

void ct_idx_free(ct_idx *x) {
  if (x == NULL) return;
  free(x->data);
  memset(x, 0, sizeof *x);
}

/* ------------------------------------------------------------------------------------------- */
/* Byte sources                                                                                  */
/* ------------------------------------------------------------------------------------------- */

typedef enum { SRC_PLAIN, SRC_GZ_MEMORY, SRC_GZ_FILE } src_kind;

typedef struct {
  src_kind kind;
  const uint8_t *buf; /* memory sources */
  size_t len;
  size_t pos; /* SRC_PLAIN: next byte; SRC_GZ_MEMORY: first byte not yet given to zlib */
  z_stream zs;
  bool member_done; /* SRC_GZ_MEMORY: the current gzip member ended */
  gzFile gz;
  const char *path;
  char *err;
  size_t cap;
} src;

static ct_status gz_memory_read(src *s, uint8_t *dst, size_t n, size_t *got) {
  size_t done = 0;
  while (done < n) {
    if (s->member_done) {
      /* Another gzip member continues the data; anything else after a member is ignored. */
      size_t at = s->pos - s->zs.avail_in;
      if (s->len - at >= 2 && s->buf[at] == 0x1f && s->buf[at + 1] == 0x8b) {
        if (inflateReset(&s->zs) != Z_OK) return ct__fail(s->err, s->cap, CT_ERR_INTERNAL, "inflateReset failed");
        s->member_done = false;
        continue;
      }
      break;
    }
    if (s->zs.avail_in == 0) {
      if (s->pos == s->len)
        return ct__fail(s->err, s->cap, CT_ERR_FORMAT, "gzip stream is truncated (unexpected end of input)");
      size_t chunk = s->len - s->pos < UINT_MAX ? s->len - s->pos : UINT_MAX;
      s->zs.next_in = s->buf + s->pos;
      s->zs.avail_in = (uInt)chunk;
      s->pos += chunk;
    }
    size_t want = n - done < UINT_MAX ? n - done : UINT_MAX;
    s->zs.next_out = dst + done;
    s->zs.avail_out = (uInt)want;
    int r = inflate(&s->zs, Z_NO_FLUSH);
    done += want - s->zs.avail_out;
    if (r == Z_STREAM_END) {
      s->member_done = true;
    } else if (r == Z_MEM_ERROR) {
      return ct__fail(s->err, s->cap, CT_ERR_OUT_OF_MEMORY, "out of memory inflating the gzip stream");
    } else if (r != Z_OK && !(r == Z_BUF_ERROR && s->zs.avail_in == 0)) {
      /* Z_BUF_ERROR with input left cannot happen with room for output; treat it as corruption. */
      return ct__fail(s->err, s->cap, CT_ERR_FORMAT, "corrupt gzip stream: %s",
                  s->zs.msg != NULL ? s->zs.msg : "inflate failed");
    }
  }
  *got = done;
  return CT_OK;
}

/* zlib's messages for a file start with "<path>: "; the caller adds the path itself. */
static const char *gz_message(src *s, int *errnum) {
  const char *m = gzerror(s->gz, errnum);
  size_t pl = strlen(s->path);
  if (m != NULL && strncmp(m, s->path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ') m += pl + 2;
  return m != NULL ? m : "unknown error";
}

static ct_status gz_file_read(src *s, uint8_t *dst, size_t n, size_t *got) {
  size_t done = 0;
  while (done < n) {
    size_t want = n - done < IDX_MAX_READ ? n - done : IDX_MAX_READ;
    int r = gzread(s->gz, dst + done, (unsigned)want);
    int errnum = Z_OK;
    if (r < 0) {
      const char *m = gz_message(s, &errnum);
      if (errnum == Z_ERRNO) return ct__fail(s->err, s->cap, CT_ERR_IO, "cannot read: %s", m);
      if (errnum == Z_MEM_ERROR)
        return ct__fail(s->err, s->cap, CT_ERR_OUT_OF_MEMORY, "out of memory reading: %s", m);
      return ct__fail(s->err, s->cap, CT_ERR_FORMAT, "corrupt gzip stream: %s", m);
    }
    done += (size_t)r;
    if ((size_t)r < want) {
      const char *m = gz_message(s, &errnum);
      if (errnum == Z_BUF_ERROR) return ct__fail(s->err, s->cap, CT_ERR_FORMAT, "gzip stream is truncated (%s)", m);
      if (errnum != Z_OK) return ct__fail(s->err, s->cap, CT_ERR_FORMAT, "corrupt gzip stream: %s", m);
      break;
    }
  }
  *got = done;
  return CT_OK;
}

/* Reads n bytes; *got < n only at the clean end of the input. */
static ct_status src_read(src *s, void *dst, size_t n, size_t *got) {
  *got = 0;
  if (n == 0) return CT_OK;
  switch (s->kind) {
    case SRC_PLAIN: {
      size_t k = s->len - s->pos < n ? s->len - s->pos : n;
      if (k > 0) memcpy(dst, s->buf + s->pos, k);
      s->pos += k;
      *got = k;
      return CT_OK;
    }
    case SRC_GZ_MEMORY: return gz_memory_read(s, dst, n, got);
    case SRC_GZ_FILE: return gz_file_read(s, dst, n, got);
  }
  return ct__fail(s->err, s->cap, CT_ERR_INTERNAL, "bad byte source");
}

/* ------------------------------------------------------------------------------------------- */
/* The loader                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static void from_big_endian(uint8_t *p, size_t nbytes, size_t esize) {
#if IDX_BIG_ENDIAN
  (void)p, (void)nbytes, (void)esize;
#else
  if (esize < 2) return;
  for (size_t i = 0; i + esize <= nbytes; i += esize)
    for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
      uint8_t t = p[i + a];
      p[i + a] = p[i + b];
      p[i + b] = t;
    }
#endif
}

static ct_status idx_load(src *s, ct_idx *out) {
  char *err = s->err;
  size_t cap = s->cap;
  uint8_t head[4 + 4 * CT_MAX_RANK];
  size_t got;
  ct_status st = src_read(s, head, 4, &got);
  if (st != CT_OK) return st;
  if (got < 4) return ct__fail(err, cap, CT_ERR_FORMAT, "input ends after %zu bytes, inside the 4-byte magic", got);
  if (head[0] != 0 || head[1] != 0)
    return ct__fail(err, cap, CT_ERR_FORMAT, "bad magic %02x %02x %02x %02x: an IDX file starts with two zero bytes",
                head[0], head[1], head[2], head[3]);
  int type = head[2];
  size_t esize = ct_idx_type_size(type);
  if (esize == 0) return ct__fail(err, cap, CT_ERR_FORMAT, "bad magic: unknown element type 0x%02x", type);
  int ndims = head[3];
  if (ndims < 1 || ndims > CT_MAX_RANK)
    return ct__fail(err, cap, CT_ERR_FORMAT, "bad magic: %d dimensions (1 to %d are supported)", ndims, CT_MAX_RANK);
  size_t dbytes = 4 * (size_t)ndims;
  st = src_read(s, head + 4, dbytes, &got);
  if (st != CT_OK) return st;
  if (got < dbytes)
    return ct__fail(err, cap, CT_ERR_FORMAT, "input ends inside the dimensions (%zu of %zu bytes)", got, dbytes);

  bool zero = false;
  for (int i = 0; i < ndims; i++) {
    const uint8_t *p = head + 4 + 4 * i;
    out->dims[i] = (int64_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
    if (out->dims[i] == 0) zero = true;
  }
  uint64_t count = 1;
  if (zero) {
    count = 0;
  } else {
    for (int i = 0; i < ndims; i++) {
      count *= (uint64_t)out->dims[i]; /* both factors < 2^32 and count <= 2^31: no overflow */
      if (count > CT_IDX_MAX_ELEMS)
        return ct__fail(err, cap, CT_ERR_FORMAT, "dimensions describe more than 2^31 elements (%d dimensions)",
                    ndims);
    }
  }
  size_t nbytes = (size_t)count * esize;

  /* Plain memory: the size is known, refuse a short input before allocating. */
  if (s->kind == SRC_PLAIN && s->len - s->pos < nbytes)
    return ct__fail(err, cap, CT_ERR_FORMAT, "data is truncated: %zu of %zu bytes present", s->len - s->pos, nbytes);

  size_t dcap = nbytes < IDX_FIRST_CHUNK ? nbytes : IDX_FIRST_CHUNK;
  uint8_t *data = malloc(dcap > 0 ? dcap : 1);
  if (data == NULL) return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for %zu bytes", dcap);
  size_t have = 0;
  while (have < nbytes) {
    if (have == dcap) {
      size_t ncap = dcap > nbytes / 2 ? nbytes : dcap * 2;
      uint8_t *grown = realloc(data, ncap);
      if (grown == NULL) {
        free(data);
        return ct__fail(err, cap, CT_ERR_OUT_OF_MEMORY, "out of memory for %zu bytes", ncap);
      }
      data = grown;
      dcap = ncap;
    }
    st = src_read(s, data + have, dcap - have, &got);
    if (st != CT_OK) {
      free(data);
      return st;
    }
    have += got;
    if (have < dcap) {
      free(data);
      return ct__fail(err, cap, CT_ERR_FORMAT, "data is truncated: %zu of %zu bytes present", have, nbytes);
    }
  }

  /* Trailing bytes are rejected; for gzip this read also makes zlib check the CRC. */
  uint8_t extra;
  st = src_read(s, &extra, 1, &got);
  if (st == CT_OK && got != 0)
    st = ct__fail(err, cap, CT_ERR_FORMAT, "trailing data after the %zu data bytes", nbytes);
  if (st != CT_OK) {
    free(data);
    return st;
  }

  from_big_endian(data, nbytes, esize);
  out->type = (ct_idx_type)type;
  out->ndims = ndims;
  out->count = (size_t)count;
  out->elem_size = esize;
  out->nbytes = nbytes;
  out->data = data;
  return CT_OK;
}

static ct_status idx_parse(const uint8_t *buf, size_t len, ct_idx *out, char *err, size_t errcap) {
  if (err != NULL && errcap > 0) err[0] = '\0';
  if (out == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_idx_parse: out is NULL");
  memset(out, 0, sizeof *out);
  if (buf == NULL && len > 0) return ct__fail(err, errcap, CT_ERR_NULL, "ct_idx_parse: buf is NULL");
  src s;
  memset(&s, 0, sizeof s);
  s.buf = buf;
  s.len = len;
  s.err = err;
  s.cap = errcap;
  s.kind = (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) ? SRC_GZ_MEMORY : SRC_PLAIN;
  if (s.kind == SRC_GZ_MEMORY) {
    int r = inflateInit2(&s.zs, 16 + MAX_WBITS); /* gzip wrapper only */
    if (r != Z_OK)
      return ct__fail(err, errcap, r == Z_MEM_ERROR ? CT_ERR_OUT_OF_MEMORY : CT_ERR_INTERNAL,
                  "inflateInit2 failed (%d)", r);
  }
  ct_status st = idx_load(&s, out);
  if (s.kind == SRC_GZ_MEMORY) inflateEnd(&s.zs);
  if (st != CT_OK) ct_idx_free(out);
  return st;
}

static ct_status idx_read(const char *path, ct_idx *out, char *err, size_t errcap) {
  if (err != NULL && errcap > 0) err[0] = '\0';
  if (out == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_idx_read: out is NULL");
  memset(out, 0, sizeof *out);
  if (path == NULL) return ct__fail(err, errcap, CT_ERR_NULL, "ct_idx_read: path is NULL");
  src s;
  memset(&s, 0, sizeof s);
  s.kind = SRC_GZ_FILE;
  s.err = err;
  s.cap = errcap;
  char why[160];
  int fd = ct__open_regular(path, NULL, why, sizeof why); /* a FIFO or device fails here, never blocks */
  if (fd < 0) return ct__fail(err, errcap, errno == ENOMEM ? CT_ERR_OUT_OF_MEMORY : CT_ERR_IO, "%s: %s", path, why);
  /* zlib names a descriptor "<fd:N>" in its messages: gz_message strips that prefix */
  char fdname[32];
  snprintf(fdname, sizeof fdname, "<fd:%d>", fd);
  s.path = fdname;
  errno = 0;
  s.gz = gzdopen(fd, "rb");
  if (s.gz == NULL) {
    int e = errno;
    close(fd);
    return ct__fail(err, errcap, e == ENOMEM ? CT_ERR_OUT_OF_MEMORY : CT_ERR_IO, "%s: cannot open: %s", path,
                e != 0 ? strerror(e) : "gzdopen failed");
  }
  (void)gzbuffer(s.gz, 1u << 17);
  ct_status st = idx_load(&s, out);
  gzclose(s.gz);
  if (st != CT_OK) {
    ct_idx_free(out);
    if (err != NULL && errcap > 0) {
      char *copy = strdup(err);
      if (copy != NULL) {
        snprintf(err, errcap, "%s: %s", path, copy);
        free(copy);
      }
    }
  }
  return st;
}

/* ---- the library's error style: the status returned, the message in ct_errmsg() ---------- */
ct_status ct_idx_parse(const uint8_t *buf, size_t len, ct_idx *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(idx_parse(buf, len, out, err, sizeof err), err);
}

ct_status ct_idx_read(const char *path, ct_idx *out) {
  char err[CT_ERRMSG_CAP];
  return ct__report(idx_read(path, out, err, sizeof err), err);
}
