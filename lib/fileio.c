/* fileio.c — opening a file named by a path for reading, safely: never blocking on a FIFO or a
 * device node, and reading only regular files. Every reader of a path in the library opens
 * through here. */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mode 'r' reads, 'w' writes from the start (creating the file, 0600), 'a' appends (creating it).
 * O_NONBLOCK: opening a FIFO without a writer (or a device that waits for a carrier) returns at
 * once instead of blocking. The check is made on the opened descriptor (fstat), so nothing can swap
 * the file between the check and the read. The descriptor is made blocking again for the read. */
FILE *ct__fopen_regular(const char *path, char mode, int flags, uint64_t *size) {
  if (size) *size = 0;
  if (!path || !*path) {
    errno = ENOENT;
    return NULL;
  }
  int oflags = O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  const char *fmode = "rb";
  if (mode == 'w') oflags |= O_WRONLY | O_CREAT, fmode = "wb";
  else if (mode == 'a') oflags |= O_WRONLY | O_CREAT | O_APPEND, fmode = "ab";
  else oflags |= O_RDONLY;
  if (flags & CT__OPEN_NOFOLLOW) oflags |= O_NOFOLLOW;
  int fd = open(path, oflags, 0600);
  if (fd < 0) {
    /* errno from open: ENOENT, EACCES, ELOOP (a link, with CT__OPEN_NOFOLLOW); ENXIO: a FIFO without
     * a reader opened for writing, or a device node without its device, never a regular file */
    if (errno == ENXIO) errno = CT__ENOTREG;
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    errno = S_ISDIR(st.st_mode) ? EISDIR : CT__ENOTREG;
    return NULL;
  }
  if ((flags & CT__OPEN_PRIVATE) && (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
    close(fd);
    errno = EPERM;
    return NULL;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  /* "w" truncates only now, once the file is known to be a regular file */
  if (mode == 'w' && ftruncate(fd, 0) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  FILE *f = fdopen(fd, fmode);
  if (!f) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  if (size) *size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
  return f;
}

const char *ct__open_error(int err) {
  switch (err) {
    case CT__ENOTREG: return "not a regular file (a FIFO, socket or device is never read)";
    case EISDIR: return "a directory, not a file";
    case ELOOP: return "a symbolic link, which is not followed here";
    case EPERM: return "owned by another user or writable by others";
    default: return strerror(err);
  }
}
