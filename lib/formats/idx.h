/*
 * idx.h — reading IDX files (the format of MNIST and Fashion-MNIST), plain or gzip-compressed.
 *
 * Layout: 4 magic bytes 0x00 0x00 <type> <ndims>, then ndims big-endian u32 extents, then the
 * elements, big-endian, row-major. A file starting with the gzip magic 0x1f 0x8b is decompressed
 * first (the ".gz" files as distributed can be read directly).
 *
 * What a reader accepts (anything else is CT_ERR_FORMAT with a message naming the problem):
 *  - type 0x08 (unsigned byte), 0x09 (signed byte), 0x0B (i16), 0x0C (i32), 0x0D (f32), 0x0E (f64);
 *  - 1 <= ndims <= 8, at most 2^31 elements in all (an extent may be 0);
 *  - exactly as many data bytes as the extents say. Trailing bytes after the data are rejected
 *    (the MNIST files have none, and extra bytes mean the extents are wrong). For gzip input this
 *    applies to the decompressed bytes; bytes after the last gzip member that are not another gzip
 *    member are ignored, as zlib does;
 *  - for gzip input, an intact stream: corrupt data, a bad CRC or a stream cut short are errors.
 *
 * The functions are thread safe. They report errors as the rest of the library does: the status
 * is returned and the message is the thread's ct_errmsg().
 */
#ifndef CT_FORMATS_IDX_H
#define CT_FORMATS_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "cltape.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Element types; the values are the type byte of the magic. */
typedef enum {
  CT_IDX_U8 = 0x08,  /**< uint8_t */
  CT_IDX_I8 = 0x09,  /**< int8_t */
  CT_IDX_I16 = 0x0B, /**< int16_t */
  CT_IDX_I32 = 0x0C, /**< int32_t */
  CT_IDX_F32 = 0x0D, /**< float */
  CT_IDX_F64 = 0x0E  /**< double */
} ct_idx_type;

/** Most elements a reader accepts. */
#define CT_IDX_MAX_ELEMS ((uint64_t)1 << 31)

typedef struct {
  ct_idx_type type;
  int ndims;                 /**< 1..CT_MAX_RANK */
  int64_t dims[CT_MAX_RANK]; /**< the first ndims entries are used */
  size_t count;              /**< number of elements, the product of dims */
  size_t elem_size;          /**< bytes per element: 1, 2, 4 or 8 */
  size_t nbytes;             /**< count * elem_size */
  void *data;                /**< host-endian values of `type`; never NULL after a successful read */
} ct_idx;

/** Reads a file (plain or gzip). On error *out is zeroed and nothing leaks.
 *  CT_ERR_IO: the file cannot be opened or read. CT_ERR_FORMAT: see above, including a corrupt
 *  gzip stream. CT_ERR_OUT_OF_MEMORY. */
ct_status ct_idx_read(const char *path, ct_idx *out);

/** Same as ct_idx_read on a file's bytes held in memory (plain or gzip; buf may be NULL when len
 *  is 0). */
ct_status ct_idx_parse(const uint8_t *buf, size_t len, ct_idx *out);

/** Frees the data and zeroes *x. NULL or a zeroed struct is fine. */
void ct_idx_free(ct_idx *x);

/** Bytes per element of a type byte, 0 for a type that IDX does not define. */
size_t ct_idx_type_size(int type);

/** "u8", "i8", "i16", "i32", "f32", "f64"; "?" for anything else. */
const char *ct_idx_type_name(int type);

#ifdef __cplusplus
}
#endif
#endif /* CT_FORMATS_IDX_H */
