/* Preloaded beside the shim: a filesystem that refuses O_DIRECT, as tmpfs did before Linux 6.6
 * and some FUSE filesystems still do.  NO_ODIRECT=open: open(O_DIRECT) fails with EINVAL;
 * NO_ODIRECT=io: open succeeds and every read or write of an O_DIRECT descriptor fails so. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int refuse(const char *when) {
    const char *mode = getenv("NO_ODIRECT");
    return mode != NULL && strcmp(mode, when) == 0;
}

static int opened(const char *path, int flags, mode_t mode, const char *name) {
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, name);
    if ((flags & O_DIRECT) && refuse("open")) {
        errno = EINVAL;
        return -1;
    }
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return opened(path, flags, mode, "open");
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return opened(path, flags, mode, "open64");
}

static int direct_io_refused(int fd) { return refuse("io") && (fcntl(fd, F_GETFL) & O_DIRECT); }

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    ssize_t (*real)(int, const void *, size_t, off_t) = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    if (direct_io_refused(fd)) {
        errno = EINVAL;
        return -1;
    }
    return real(fd, buf, n, off);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    ssize_t (*real)(int, void *, size_t, off_t) = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    if (direct_io_refused(fd)) {
        errno = EINVAL;
        return -1;
    }
    return real(fd, buf, n, off);
}
