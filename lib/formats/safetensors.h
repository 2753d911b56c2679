/*
 * safetensors.h — reading and writing the safetensors format on plain host arrays.
 *
 * Layout of a file:
 *   8 bytes   N, little-endian unsigned 64-bit: length of the header
 *   N bytes   UTF-8 JSON object, padded at the end with spaces:
 *               {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *                "__metadata__": {"key": "value", ...}}            (metadata optional)
 *   the rest  the data block; offsets are relative to its start, values little-endian, row-major.
 *
 * Supported dtypes: "F32", "F64", "I32", "F16", "BF16", "I64", "BOOL" (CT_FLOAT32, CT_FLOAT64, CT_INT32,
 * CT_FLOAT16, CT_BFLOAT16, CT_INT64, CT_BOOL).
 *
 * What a reader accepts (anything else is CT_ERR_FORMAT with a message naming the problem):
 *  - N <= 100,000,000 and 8 + N <= file size;
 *  - the header is valid UTF-8, one JSON object, followed by nothing but whitespace;
 *  - every key other than "__metadata__" maps to an object with "dtype" (a string), "shape" (a list
 *    of at most 8 non-negative integers whose product fits in 64 bits) and "data_offsets" (a list of
 *    two integers begin <= end <= size of the data block, end - begin = elements * dtype size);
 *    other fields of that object are ignored;
 *  - "__metadata__", when present, is an object whose values are all strings;
 *  - no name appears twice, and no key appears twice inside one tensor's description;
 *  - the tensors cover the data block exactly: sorted by offset they neither overlap nor leave a
 *    gap, and the last one ends where the file ends.
 * A dtype that the safetensors format defines but this library does not use ("F16", "BF16",
 * "I64", "U8", "BOOL", ...) is CT_ERR_DTYPE instead, so that callers can tell an unsupported
 * file from a damaged one. Integers are read through JSON numbers: they must be integral and at
 * most 2^53 (a header writing "2.0" for 2 is accepted).
 *
 * The functions are thread safe (no global state). They report errors as the rest of the library
 * does: the status is returned and the message is the thread's ct_errmsg().
 */
#ifndef CT_FORMATS_SAFETENSORS_H
#define CT_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "cltape.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest header a reader accepts, in bytes. */
#define CT_ST_MAX_HEADER 100000000u

typedef struct {
  char *name; /**< NUL-terminated UTF-8 */
  ct_dtype dtype;
  int rank;                   /**< 0..CT_MAX_RANK; 0 is a scalar (one element) */
  int64_t shape[CT_MAX_RANK]; /**< the first `rank` entries are used */
  size_t nbytes;              /**< elements * dtype size */
  void *data;                 /**< host-endian values, row-major */
} ct_st_entry;

typedef struct {
  ct_st_entry *entries; /**< in the order of the JSON header */
  int count;
  char *metadata_json; /**< the "__metadata__" object as compact JSON, NULL when absent */
  int meta_count;      /**< metadata pairs, in header order */
  char **meta_keys;
  char **meta_values;
} ct_st_file;

/** Reads and validates a whole file. On success every entry owns its data (never NULL, even for
 *  zero bytes); free everything with ct_st_file_free. On error *out is zeroed and nothing leaks.
 *  CT_ERR_IO: the file cannot be opened or read, or is not a regular file (a FIFO, device or
 *  directory fails at once, without waiting for a writer). CT_ERR_FORMAT: see
 *  above. CT_ERR_DTYPE: a valid but unsupported dtype. CT_ERR_OUT_OF_MEMORY. */
ct_status ct_st_read(const char *path, ct_st_file *out);

/** Reads and validates the header only (the same checks as ct_st_read, the file's size standing
 *  for the data block): every entry is filled in except data, which stays NULL; no tensor byte is
 *  read, whatever the tensors' size. Free with ct_st_file_free. */
ct_status ct_st_read_header(const char *path, ct_st_file *out);

/** Same as ct_st_read on a file's bytes held in memory (buf may be NULL when len is 0). */
ct_status ct_st_parse(const uint8_t *buf, size_t len, ct_st_file *out);

/** Frees what ct_st_read / ct_st_parse filled in and zeroes *f. NULL or a zeroed struct is fine. */
void ct_st_file_free(ct_st_file *f);

/** The entry called `name`, or NULL. */
const ct_st_entry *ct_st_find(const ct_st_file *f, const char *name);

/** Writes `count` entries (count may be 0) in the given order, their data back to back, the
 *  header padded with spaces to a multiple of 8 bytes. Each entry needs a non-NULL, valid UTF-8
 *  name other than "__metadata__" and unique among the entries, a supported dtype, rank 0..8,
 *  non-negative extents, nbytes equal to elements * dtype size, and data non-NULL when nbytes > 0
 *  (CT_ERR_INVALID / CT_ERR_DTYPE otherwise, before anything is written).
 *
 *  The write is atomic: the bytes go to a new file next to `path` ("<path>.tmp.<pid>.<n>"),
 *  which is flushed, fsync'ed and then renamed over `path`. If anything fails the temporary file
 *  is removed and an existing `path` is left as it was (CT_ERR_IO). A symbolic link at `path` is
 *  replaced by the file, not followed. New files get the mode 0666 minus the umask. */
ct_status ct_st_write(const char *path, const ct_st_entry *entries, int count);

/** ct_st_write with a "__metadata__" object of `meta_count` string pairs (keys unique, all valid
 *  UTF-8; meta_keys / meta_values may be NULL when meta_count is 0). meta_count 0 writes no
 *  "__metadata__" key. */
ct_status ct_st_write_meta(const char *path, const ct_st_entry *entries, int count, const char *const *meta_keys,
                           const char *const *meta_values, int meta_count);

#ifdef __cplusplus
}
#endif
#endif /* CT_FORMATS_SAFETENSORS_H */
