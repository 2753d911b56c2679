/*
 * npy.h — reading and writing NumPy's .npy files, and reading the arrays of .npz archives (zip
 * files of .npy members, stored or deflated, read through libzip).
 *
 * Layout of a .npy file:
 *   6 bytes   "\x93NUMPY"
 *   2 bytes   major, minor version: 1.0, 2.0 or 3.0
 *   2 bytes   (1.0) or 4 bytes (2.0, 3.0): N, little-endian, the length of the header
 *   N bytes   a Python dict literal, padded with spaces and ended by '\n':
 *               {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *   the rest  the elements, in C order (or Fortran order when fortran_order is True).
 *
 * What a reader accepts (anything else is CT_ERR_FORMAT with a message naming the problem):
 *  - versions 1.0, 2.0 and 3.0; a header of at most CT_NPY_MAX_HEADER bytes holding exactly the keys
 *    'descr' (a string), 'fortran_order' (True or False) and 'shape' (a tuple of at most 8
 *    non-negative integers, an old "3L" included), in any order, each once, quoted with ' or ";
 *    after the closing brace only whitespace;
 *  - exactly as many data bytes as the shape and dtype say (trailing bytes are rejected: they mean
 *    the header is wrong);
 *  - fortran_order True: the elements are transposed on reading, so that `data` is always in C order.
 * dtypes: b1 u1 i1 u2 i2 u4 i4 u8 i8 f4 f8, little-endian ('<'; '|' or any order for one-byte
 * types). A big-endian dtype ('>f4'), and any other dtype (a structured one, '<f2', '<c8', '|O',
 * '<U5', ...) is CT_ERR_DTYPE instead, with a message naming it, so that a caller can tell an
 * unsupported file from a damaged one.
 *
 * An .npz archive must be a valid zip file (libzip checks its consistency and each member's CRC);
 * an array called "x" is the member "x.npy" (or "x"). Encrypted members are refused.
 *
 * The functions are thread safe. They report errors as the rest of the library does: the status
 * is returned and the message is the thread's ct_errmsg().
 */
#ifndef CT_FORMATS_NPY_H
#define CT_FORMATS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "cltape.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Element types of .npy files that the library reads. */
typedef enum {
  CT_NPY_BOOL, /**< '|b1': one byte, 0 or 1 */
  CT_NPY_U8,   /**< '|u1' */
  CT_NPY_I8,   /**< '|i1' */
  CT_NPY_U16,  /**< '<u2' */
  CT_NPY_I16,  /**< '<i2' */
  CT_NPY_U32,  /**< '<u4' */
  CT_NPY_I32,  /**< '<i4' */
  CT_NPY_U64,  /**< '<u8' */
  CT_NPY_I64,  /**< '<i8' */
  CT_NPY_F32,  /**< '<f4' */
  CT_NPY_F64,  /**< '<f8' */
  CT_NPY_F16,  /**< '<f2' (IEEE binary16) */
  CT_NPY_TYPES
} ct_npy_type;

/** Largest header a reader accepts, in bytes. */
#define CT_NPY_MAX_HEADER ((size_t)1 << 20)

typedef struct {
  ct_npy_type type;
  int rank;                   /**< 0..CT_MAX_RANK; 0 is a scalar (one element) */
  int64_t shape[CT_MAX_RANK]; /**< the first rank entries are used */
  size_t count;               /**< number of elements, the product of shape */
  size_t nbytes;              /**< count * ct_npy_type_size(type) */
  void *data;                 /**< host-endian values in C order; never NULL after a successful read */
} ct_npy;

/** Reads a .npy file. On error *out is zeroed and nothing leaks. CT_ERR_IO: the file cannot be
 *  opened or read, or is not a regular file. CT_ERR_FORMAT, CT_ERR_DTYPE: see above.
 *  CT_ERR_OUT_OF_MEMORY. */
ct_status ct_npy_read(const char *path, ct_npy *out);

/** Same as ct_npy_read on a file's bytes held in memory (buf may be NULL when len is 0). */
ct_status ct_npy_parse(const uint8_t *buf, size_t len, ct_npy *out);

/** Frees the data and zeroes *x. NULL or a zeroed struct is fine. */
void ct_npy_free(ct_npy *x);

/** Writes `data` (rank 0..8, host-endian, C order) as a version 1.0 file (a header of at
 *  most 8 extents always fits its 16-bit length), atomically as the library writes every file (a
 *  temporary file renamed over path).
 *  CT_ERR_INVALID: a bad rank, a negative extent, data NULL with elements. CT_ERR_IO. */
ct_status ct_npy_write(const char *path, ct_npy_type type, int rank, const int64_t *shape, const void *data);

/** Bytes per element: 1, 2, 4 or 8; 0 for a value outside the enum. */
size_t ct_npy_type_size(ct_npy_type type);

/** The dtype as NumPy writes it: "|b1", "<f4", ...; "?" for a value outside the enum. */
const char *ct_npy_type_name(ct_npy_type type);

/** Element i of data, of the given type, as a double (exact for every integer up to 2^53). */
double ct_npy_value(ct_npy_type type, const void *data, size_t i);

/** An opened .npz archive. */
typedef struct ct_npz ct_npz;

/** Opens an archive for reading (the path must be a regular file). CT_ERR_IO, CT_ERR_FORMAT (not a
 *  zip archive, or an inconsistent one), CT_ERR_OUT_OF_MEMORY. */
ct_status ct_npz_open(const char *path, ct_npz **out);

/** Same on an archive's bytes in memory; buf must stay valid until ct_npz_close. */
ct_status ct_npz_open_memory(const uint8_t *buf, size_t len, ct_npz **out);

/** Number of members of the archive. */
int ct_npz_count(const ct_npz *z);

/** Name of member i as the archive spells it ("x.npy"); NULL out of range. */
const char *ct_npz_member(const ct_npz *z, int i);

/** Reads the array `name` ("x" finds the member "x.npy", or else "x"). CT_ERR_NOT_FOUND (the
 *  message lists the arrays the archive holds), CT_ERR_FORMAT (a damaged member, a bad CRC, an
 *  encrypted member, or what ct_npy_read refuses), CT_ERR_DTYPE, CT_ERR_OUT_OF_MEMORY. On error
 *  *out is zeroed. */
ct_status ct_npz_read(ct_npz *z, const char *name, ct_npy *out);

/** Closes the archive. NULL is fine. */
void ct_npz_close(ct_npz *z);

#ifdef __cplusplus
}
#endif
#endif /* CT_FORMATS_NPY_H */
