/* fileio.c — opening the files the library reads (checkpoints, safetensors, IDX). */
#define _POSIX_C_SOURCE 200809L
#include "ct_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

int ct__open_regular(const char *path, int64_t *size, char *err, size_t errcap) {
  if (err && errcap) err[0] = 0;
  if (size) *size = 0;
  /* O_NONBLOCK: opening a FIFO without a writer (or a device) returns at once instead of waiting */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    if (err && errcap) snprintf(err, errcap, "cannot open: %s", strerror(e));
    errno = e;
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    if (err && errcap) snprintf(err, errcap, "cannot stat: %s", strerror(e));
    errno = e;
    return -1;
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    if (err && errcap) {
      if (S_ISDIR(sb.st_mode)) snprintf(err, errcap, "cannot read: %s (not a regular file)", strerror(EISDIR));
      else snprintf(err, errcap, "not a regular file (%s)", kind_of(sb.st_mode));
    }
    errno = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    if (err && errcap) snprintf(err, errcap, "cannot clear O_NONBLOCK: %s", strerror(e));
    errno = e;
    return -1;
  }
  if (size) *size = (int64_t)sb.st_size;
  return fd;
}
