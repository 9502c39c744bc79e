/*
 * tier_disk.c - the cold tier's file: frozen memory written to and read back from disk.
 *
 * The file is unnamed (O_TMPFILE in TF_TIER_DIR: nothing is left when the process dies) and
 * opened with O_DIRECT, so frozen memory does not sit a second time in the page cache (the
 * disk tier exists to give RAM back).  A filesystem that refuses O_DIRECT (tmpfs, some FUSE)
 * answers EINVAL, at open or at the first transfer; the file then falls back to buffered I/O,
 * said once in the log.  Transfers go through two page-aligned bounce buffers (pinned when
 * the driver allows) on a stream of their own: the copy of the next block overlaps the write
 * (or read) of the other one.  Offsets and lengths are kept multiples of TF_DISK_ALIGN (a
 * partial last block is padded), as O_DIRECT requires.  A write is complete only after
 * fdatasync: the caller releases the memory only then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

#define XFER_BLOCK (4ULL << 20) /* bytes per bounce buffer */

typedef CUresult (*pfn_copy_out)(void *, CUdeviceptr, size_t);
typedef CUresult (*pfn_copy_in)(CUdeviceptr, const void *, size_t);
typedef CUresult (*pfn_copy_out_async)(void *, CUdeviceptr, size_t, CUstream);
typedef CUresult (*pfn_copy_in_async)(CUdeviceptr, const void *, size_t, CUstream);
typedef CUresult (*pfn_stream_create)(CUstream *, unsigned int);
typedef CUresult (*pfn_stream)(CUstream);
typedef CUresult (*pfn_host_alloc)(void **, size_t, unsigned int);
typedef CUresult (*pfn_host_free)(void *);

static struct {
    pfn_copy_out copy_out;
    pfn_copy_in copy_in;
    pfn_copy_out_async copy_out_async; /* the rest may be missing: then copies are synchronous */
    pfn_copy_in_async copy_in_async;
    pfn_stream_create stream_create;
    pfn_stream stream_sync, stream_destroy;
    pfn_host_alloc host_alloc;
    pfn_host_free host_free;
} drv;
static pthread_once_t drv_once = PTHREAD_ONCE_INIT;

static int disk_fd = -1;
static int direct; /* disk_fd is O_DIRECT */

struct tf_tier_xfer {
    unsigned char *buf[2];
    int pinned;      /* buf came from cuMemHostAlloc (one block of 2 x XFER_BLOCK) */
    CUstream stream; /* NULL: synchronous copies */
};

static void find_driver(void) {
    drv.copy_out = (pfn_copy_out)tf_driver_helper("cuMemcpyDtoH");
    drv.copy_in = (pfn_copy_in)tf_driver_helper("cuMemcpyHtoD");
    drv.copy_out_async = (pfn_copy_out_async)tf_driver_helper("cuMemcpyDtoHAsync");
    drv.copy_in_async = (pfn_copy_in_async)tf_driver_helper("cuMemcpyHtoDAsync");
    drv.stream_create = (pfn_stream_create)tf_driver_helper("cuStreamCreate");
    drv.stream_sync = (pfn_stream)tf_driver_helper("cuStreamSynchronize");
    drv.stream_destroy = (pfn_stream)tf_driver_helper("cuStreamDestroy");
    drv.host_alloc = (pfn_host_alloc)tf_driver_helper("cuMemHostAlloc");
    drv.host_free = (pfn_host_free)tf_driver_helper("cuMemFreeHost");
}

static void say_buffered(const char *dir) {
    static int told;
    if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
        tf_log(TF_LOG_WARN, "tier directory %s refuses O_DIRECT: frozen memory goes to disk through the page cache "
                            "(host memory until written back); put TF_TIER_DIR on a disk filesystem", dir);
}

int tf_disk_open(void) {
    if (disk_fd >= 0) return 1;
    const char *dir = tf_shim_config_get()->tier_dir;
    if (dir[0] == '\0') return 0;
    disk_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC | O_DIRECT, 0600);
    direct = disk_fd >= 0;
    if (disk_fd < 0 && errno == EINVAL) {
        disk_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (disk_fd >= 0) say_buffered(dir);
    }
    return disk_fd >= 0;
}

/* O_DIRECT accepted at open but refused at the first transfer: go on buffered (once). */
static int drop_direct(void) {
    if (!direct || errno != EINVAL) return 0;
    int flags = fcntl(disk_fd, F_GETFL);
    if (flags < 0 || fcntl(disk_fd, F_SETFL, flags & ~O_DIRECT) != 0) return 0;
    direct = 0;
    say_buffered(tf_shim_config_get()->tier_dir);
    return 1;
}

static int write_all(uint64_t off, const unsigned char *buf, uint64_t n) {
    while (n > 0) {
        ssize_t w = pwrite(disk_fd, buf, n, (off_t)off);
        if (w < 0 && (errno == EINTR || drop_direct())) continue;
        if (w <= 0) return 0; /* disk full, I/O error: the caller keeps the memory where it was */
        buf += w, off += (uint64_t)w, n -= (uint64_t)w;
    }
    return 1;
}

static int read_all(uint64_t off, unsigned char *buf, uint64_t n) {
    while (n > 0) {
        ssize_t r = pread(disk_fd, buf, n, (off_t)off);
        if (r < 0 && (errno == EINTR || drop_direct())) continue;
        if (r <= 0) return 0;
        buf += r, off += (uint64_t)r, n -= (uint64_t)r;
    }
    return 1;
}

uint64_t tf_disk_span(uint64_t bytes) { return (bytes + TF_DISK_ALIGN - 1) / TF_DISK_ALIGN * TF_DISK_ALIGN; }

tf_tier_xfer *tf_xfer_begin(void) {
    pthread_once(&drv_once, find_driver);
    if (drv.copy_out == NULL || drv.copy_in == NULL) return NULL;
    tf_tier_xfer *x = calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    void *block = NULL;
    /* Pinned memory lets the copies run while the file is written; page-aligned either way. */
    if (drv.host_alloc != NULL && drv.host_free != NULL && drv.host_alloc(&block, 2 * XFER_BLOCK, 0) == CUDA_SUCCESS &&
        ((uintptr_t)block % TF_DISK_ALIGN) == 0) {
        x->pinned = 1;
    } else {
        if (block != NULL) drv.host_free(block);
        if (posix_memalign(&block, TF_DISK_ALIGN, 2 * XFER_BLOCK) != 0) {
            free(x);
            return NULL;
        }
    }
    x->buf[0] = block;
    x->buf[1] = (unsigned char *)block + XFER_BLOCK;
    if (drv.copy_out_async == NULL || drv.copy_in_async == NULL || drv.stream_create == NULL ||
        drv.stream_sync == NULL || drv.stream_destroy == NULL || drv.stream_create(&x->stream, 1) != CUDA_SUCCESS)
        x->stream = NULL; /* CU_STREAM_NON_BLOCKING above; without one, copies wait in line */
    return x;
}

void tf_xfer_end(tf_tier_xfer *x) {
    if (x == NULL) return;
    if (x->stream != NULL) drv.stream_destroy(x->stream);
    if (x->pinned)
        drv.host_free(x->buf[0]);
    else
        free(x->buf[0]);
    free(x);
}

static uint64_t block_at(uint64_t size, uint64_t done) { return size - done < XFER_BLOCK ? size - done : XFER_BLOCK; }

static CUresult copy_out(tf_tier_xfer *x, unsigned char *dst, CUdeviceptr src, uint64_t n) {
    return x->stream != NULL ? drv.copy_out_async(dst, src, n, x->stream) : drv.copy_out(dst, src, n);
}

static CUresult copy_in(tf_tier_xfer *x, CUdeviceptr dst, const unsigned char *src, uint64_t n) {
    return x->stream != NULL ? drv.copy_in_async(dst, src, n, x->stream) : drv.copy_in(dst, src, n);
}

static CUresult settle(tf_tier_xfer *x) { return x->stream != NULL ? drv.stream_sync(x->stream) : CUDA_SUCCESS; }

int tf_disk_write(tf_tier_xfer *x, CUdeviceptr va, uint64_t size, uint64_t off) {
    if (x == NULL || !tf_disk_open()) return 0;
    int ok = copy_out(x, x->buf[0], va, block_at(size, 0)) == CUDA_SUCCESS;
    for (uint64_t done = 0, i = 0; ok && done < size; done += XFER_BLOCK, i++) {
        uint64_t n = block_at(size, done);
        unsigned char *ready = x->buf[i & 1];
        ok = settle(x) == CUDA_SUCCESS; /* block i is in its buffer */
        if (ok && done + n < size) /* the next block's copy runs while this one is written */
            ok = copy_out(x, x->buf[(i + 1) & 1], va + done + n, block_at(size, done + n)) == CUDA_SUCCESS;
        if (ok && n % TF_DISK_ALIGN) memset(ready + n, 0, tf_disk_span(n) - n); /* the padded tail */
        if (ok) ok = write_all(off + done, ready, tf_disk_span(n));
    }
    settle(x); /* never leave a copy running into a buffer the caller may free */
    return ok && fdatasync(disk_fd) == 0;
}

int tf_disk_read(tf_tier_xfer *x, CUdeviceptr va, uint64_t size, uint64_t off) {
    if (x == NULL || disk_fd < 0) return 0;
    int ok = 1;
    for (uint64_t done = 0, i = 0; ok && done < size; done += XFER_BLOCK, i++) {
        uint64_t n = block_at(size, done);
        unsigned char *buf = x->buf[i & 1];
        /* The copy that last used this buffer (block i-2) finished at the previous settle. */
        ok = read_all(off + done, buf, tf_disk_span(n)) && settle(x) == CUDA_SUCCESS;
        if (ok) ok = copy_in(x, va + done, buf, n) == CUDA_SUCCESS; /* runs while the next block is read */
    }
    return settle(x) == CUDA_SUCCESS && ok;
}

void tf_disk_truncate(uint64_t length) {
    if (disk_fd >= 0 && ftruncate(disk_fd, (off_t)length) != 0) { /* best effort: blocks go back later */
    }
}

void tf_disk_forget(void) {
    disk_fd = -1; /* a forked child: the parent's file is the parent's */
    drv_once = (pthread_once_t)PTHREAD_ONCE_INIT;
}
