/* fileio.c — opening a file named by a path, safely: never blocking on a FIFO or a device node,
 * and reading only regular files. Every reader (and writer) of a path in the library opens
 * through here. */
#define _POSIX_C_SOURCE 200809L
#include "ct_base.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mode 'r' reads, 'w' writes from the start (creating the file, 0600), 'a' appends (creating it).
 * O_NONBLOCK: opening a FIFO without a writer (or a device that waits for a carrier) returns at
 * once instead of blocking. The check is made on the opened descriptor (fstat), so nothing can swap
 * the file between the check and the read. The descriptor is made blocking again for the read.
 * Returns the descriptor, or -1 with errno set. */
static int open_regular_fd(const char *path, char mode, int flags, uint64_t *size) {
  if (size) *size = 0;
  if (!path || !*path) {
    errno = ENOENT;
    return -1;
  }
  int oflags = O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  if (mode == 'w') oflags |= O_WRONLY | O_CREAT;
  else if (mode == 'a') oflags |= O_WRONLY | O_CREAT | O_APPEND;
  else oflags |= O_RDONLY;
  if (flags & CT__OPEN_NOFOLLOW) oflags |= O_NOFOLLOW;
  int fd = open(path, oflags, 0600);
  if (fd < 0) {
    /* errno from open: ENOENT, EACCES, ELOOP (a link, with CT__OPEN_NOFOLLOW); ENXIO: a FIFO without
     * a reader opened for writing, or a device node without its device, never a regular file */
    if (errno == ENXIO) errno = CT__ENOTREG;
    return -1;
  }
  struct stat st;
  int err = 0;
  if (fstat(fd, &st) != 0) err = errno;
  else if (!S_ISREG(st.st_mode)) err = S_ISDIR(st.st_mode) ? EISDIR : CT__ENOTREG;
  else if ((flags & CT__OPEN_PRIVATE) && (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))))
    err = EPERM;
  if (!err) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) err = errno;
  }
  /* "w" truncates only now, once the file is known to be a regular file */
  if (!err && mode == 'w' && ftruncate(fd, 0) != 0) err = errno;
  if (err) {
    close(fd);
    errno = err;
    return -1;
  }
  if (size) *size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
  return fd;
}

FILE *ct__fopen_regular(const char *path, char mode, int flags, uint64_t *size) {
  int fd = open_regular_fd(path, mode, flags, size);
  if (fd < 0) return NULL;
  FILE *f = fdopen(fd, mode == 'w' ? "wb" : mode == 'a' ? "ab" : "rb");
  if (!f) {
    int e = errno;
    close(fd);
    errno = e;
  }
  return f;
}

int ct__open_regular(const char *path, int64_t *size, char *err, size_t errcap) {
  if (err && errcap) err[0] = 0;
  uint64_t n = 0;
  int fd = open_regular_fd(path, 'r', 0, &n);
  if (size) *size = (int64_t)n;
  if (fd < 0) {
    int e = errno;
    if (err && errcap) snprintf(err, errcap, "cannot open: %s", ct__open_error(e));
    errno = e;
  }
  return fd;
}

const char *ct__open_error(int err) {
  switch (err) {
    case CT__ENOTREG: return "not a regular file (a FIFO, socket or device node is never read)";
    case EISDIR: return "Is a directory (not a regular file)";
    case ELOOP: return "a symbolic link, which is not followed here";
    case EPERM: return "owned by another user or writable by others";
    default: return strerror(err);
  }
}

bool ct__write_all(int fd, const void *buf, size_t n) {
  const unsigned char *p = buf;
  while (n > 0) {
    size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    ssize_t w = write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (w == 0) {
      errno = EIO;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Makes the rename durable; failures are ignored (the data itself is already on disk). */
static void sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash == NULL ? strdup(".") : (slash == path ? strdup("/") : strndup(path, (size_t)(slash - path)));
  if (dir == NULL) return;
  int fd = open(dir, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

static atomic_uint g_tmp_counter;

ct_status ct__write_file_atomic(const char *path, bool (*fill)(int fd, void *user), void *user, char *err, size_t errcap) {
  if (err && errcap) err[0] = 0;
  size_t tmpcap = strlen(path) + 64;
  char *tmp = malloc(tmpcap);
  if (tmp == NULL) {
    if (err && errcap) snprintf(err, errcap, "%s: out of memory", path);
    return CT_ERR_OUT_OF_MEMORY;
  }
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
    snprintf(tmp, tmpcap, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&g_tmp_counter, 1u));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    if (err && errcap) snprintf(err, errcap, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
    free(tmp);
    return CT_ERR_IO;
  }
  const char *failed = NULL;
  int e = 0;
  if (!fill(fd, user)) failed = "write";
  else if (fsync(fd) != 0) failed = "fsync";
  if (failed) e = errno;
  if (close(fd) != 0 && !failed) {
    failed = "close";
    e = errno;
  }
  if (failed && err && errcap) snprintf(err, errcap, "%s: cannot %s %s: %s", path, failed, tmp, strerror(e));
  if (!failed && rename(tmp, path) != 0) {
    failed = "rename";
    if (err && errcap) snprintf(err, errcap, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
  }
  ct_status st = failed ? CT_ERR_IO : CT_OK;
  if (st != CT_OK) (void)unlink(tmp);
  else sync_parent_dir(path);
  free(tmp);
  return st;
}
