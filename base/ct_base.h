/* ct_base.h — the base every layer shares: the public types (status, dtypes, the context
 * handle), the library's way of reporting errors and logging (base/status.c), and the part of a
 * context that error reporting writes. host/ includes this and its backend header, nothing of
 * lib/; lib/ includes this and host/backend.h. */
#ifndef CT_BASE_H
#define CT_BASE_H
#include "cltape.h"

#define CT_ERRMSG_CAP 2048
/* The first member of every context (struct ct_context in host/ct_host.h): its handle tag
 * (CT_HANDLE_TAG(CT_HANDLE_CONTEXT), see below) and its last error message, written by ct__error. */
typedef struct {
  uint32_t magic;
  char errmsg[CT_ERRMSG_CAP];
} ct_context_base;

/* ---- errors ---------------------------------------------------------------------------- */
/* Records "<detail>" as the thread's (and ctx's, when not NULL) last message; returns s. */
ct_status ct__error(const ct_context *ctx, ct_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void ct__log(ct_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Empties the thread's last message (before calling user code whose failure must be told apart). */
void ct__clear_error(void);
/* st, with msg as the thread's message when st is an error: for code that formats its messages
 * into a buffer of its own (lib/formats). */
ct_status ct__report(ct_status st, const char *msg);
/* For code that formats its messages into a buffer of its own (lib/formats): the message into err
 * (cap bytes; err may be NULL), and st returned. */
ct_status ct__fail(char *err, size_t cap, ct_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Prepends "<prefix>: " to the message already in err. */
void ct__prefix_err(char *err, size_t cap, const char *prefix);
/* A copy of the thread's last message, to wrap it in a new one:
 * ct__error(ctx, s, "reading %s: %s", path, ct__errmsg_copy()). */
const char *ct__errmsg_copy(void);
#define CT_TRY(expr)                      \
  do {                                    \
    ct_status ct_try_s_ = (expr);         \
    if (ct_try_s_ != CT_OK) return ct_try_s_; \
  } while (0)

/* ---- environment (base/env.c) ----------------------------------------------------------- */
/* The value of an environment variable the library reads (NULL when unset): the process
 * environment's, unless ct__env_override set it. */
const char *ct__getenv(const char *name);
/* For tests and benchmarks: the value ct__getenv gives `name` from now on in this process (NULL:
 * unset), without touching the process environment, which other threads read. */
ct_status ct__env_override(const char *name, const char *value);

/* ---- handles (base/handle.c) ------------------------------------------------------------ */
/* Every public handle is the address of an object whose first field is a uint32_t tag; the memory
 * comes from ct__handle_new and no address is ever reused for another object, so a freed handle is
 * detected however long ago it was freed. */
typedef enum {
  CT_HANDLE_CONTEXT = 1,
  CT_HANDLE_TENSOR,
  CT_HANDLE_TAPE,
  CT_HANDLE_MODULE,
  CT_HANDLE_OPTIMIZER,
  CT_HANDLE_DATASET,
  CT_HANDLE_KINDS
} ct_handle_kind;
#define CT_HANDLE_TAG(kind) (0x48540000u | (uint32_t)(kind)) /* live */
#define CT_HANDLE_FREED 0x44454144u                          /* freed */
/* A zeroed object of `size` bytes with its tag set, or NULL when out of memory. */
void *ct__handle_new(ct_handle_kind kind, size_t size);
/* Marks the object freed and gives its memory back (not its address). */
void ct__handle_free(void *obj);
/* Is h a live handle of this kind? (h may be NULL) */
bool ct__handle_is(const void *h, ct_handle_kind kind);
/* The status and message for h, which is not a live handle of this kind: CT_ERR_NULL,
 * CT_ERR_RELEASED ("the tensor handle was freed") or CT_ERR_INVALID (another kind, or no handle). */
ct_status ct__handle_fail(const void *h, ct_handle_kind kind, const char *what);
/* ct_status of a handle argument: CT_OK when it is a live handle of this kind. */
#define CT_CHECK_HANDLE(h, kind, what) (ct__handle_is((h), (kind)) ? CT_OK : ct__handle_fail((h), (kind), (what)))
/* What the handle memory holds now (tests): objects alive, chunks mapped, and what was given back. */
typedef struct {
  uint64_t live, chunks, chunks_released, pages_released;
} ct_handle_stats;
void ct__handle_stats(ct_handle_stats *out);

/* ---- a growable string (base/text.c): the kernel sources the library generates ------------ */
typedef struct {
  char *p;        /* NUL-terminated text, or NULL before the first append; the caller frees it */
  size_t n, cap;  /* length and allocated size */
  bool oom;       /* an allocation failed: later appends do nothing, p holds what came before */
} ct_text;
void ct__text_add(ct_text *t, const char *s);
void ct__text_printf(ct_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- files (base/fileio.c) -------------------------------------------------------------- */
#include <stdio.h>
enum {
  CT__OPEN_NOFOLLOW = 1, /* refuse a symbolic link as the last component (ELOOP) */
  CT__OPEN_PRIVATE = 2,  /* refuse a file of another user or writable by group or others (EPERM) */
};
#define CT__ENOTREG 0x7f01 /* errno of ct__fopen_regular for a FIFO, socket or device node */
/* Opens `path` if it is a regular file, without ever blocking: a FIFO, socket or device node is
 * refused (errno CT__ENOTREG), a directory too (EISDIR). mode: 'r' reads ("rb"), 'w' writes from
 * the start ("wb"; a new file gets 0600), 'a' appends ("ab"). The file type is checked on the opened
 * descriptor, before anything is read, written or truncated. *size (may be NULL) gets the file's
 * size. NULL with errno on failure; ct__open_error(errno) says why in words. Every reader (and
 * writer) of a path in the library opens through here. */
FILE *ct__fopen_regular(const char *path, char mode, int flags, uint64_t *size);
const char *ct__open_error(int err);
/* The same check for a reader that wants a descriptor (zlib, safetensors): a descriptor in blocking
 * mode, or -1 with errno set and "cannot open <why>" in err (may be NULL). */
int ct__open_regular(const char *path, int64_t *size, char *err, size_t errcap);
/* Writes all n bytes to fd (retrying short writes and EINTR); false with errno set on failure. */
bool ct__write_all(int fd, const void *buf, size_t n);
/* Writes a file atomically: fill(fd, user) writes the bytes into a new temporary file next to
 * `path` ("<path>.tmp.<pid>.<n>"), which is then fsync'ed and renamed over `path`. If anything fails
 * (fill returns false with errno set) the temporary file is removed and an existing `path` is left as
 * it was: CT_ERR_IO with "<path>: cannot ..." in err. A symbolic link at `path` is replaced by the
 * file, not followed. New files get the mode 0666 minus the umask. Every file writer of the library
 * that replaces a whole file writes through here. */
ct_status ct__write_file_atomic(const char *path, bool (*fill)(int fd, void *user), void *user, char *err, size_t errcap);

/* ---- elements on the host (dtype.c) ---- */
/* IEEE binary16 and bfloat16 bits from a double, rounded once to nearest even (overflow gives inf,
 * NaN stays NaN with its sign), and back (exact). */
uint16_t ct__f16_from_double(double v);
double ct__f16_to_double(uint16_t h);
uint16_t ct__bf16_from_double(double v);
double ct__bf16_to_double(uint16_t h);
/* Element i of an array of dtype dt, as a double; and set from a double with the dtype's
 * conversion (floats round to nearest even; integers truncate toward zero, saturating, NaN gives 0;
 * bool: nonzero, NaN included, is 1). */
double ct__elem_get(ct_dtype dt, const void *p, size_t i);
void ct__elem_set(ct_dtype dt, void *p, size_t i, double v);

#endif
