/*
 * Page-locked host memory registered by the program (cuMemHostRegister), and the profiler
 * switches.  SIMULATED: registering records the range (nothing is pinned; simulated copies
 * read host memory directly); the device address of registered memory is its host address,
 * as under unified addressing.  No profiler is ever attached, so starting and stopping it
 * succeed and do nothing, as on a driver with no profiler.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "sim_cuda.h"

#define TF_HOST_REGISTER_FLAGS 0xfu /* PORTABLE | DEVICEMAP | IOMEMORY | READ_ONLY */

typedef struct host_range {
    uintptr_t start;
    size_t size;
    unsigned int flags;
} host_range;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* process-local only */
static host_range *ranges;
static size_t count, capacity;

/* Index of the range containing p (or starting at p when exact), -1 when none. */
static long find(uintptr_t p, int exact) {
    for (size_t i = 0; i < count; i++)
        if (exact ? ranges[i].start == p : p - ranges[i].start < ranges[i].size) return (long)i;
    return -1;
}

int tf_host_registered(uintptr_t p, uintptr_t *start, size_t *size) {
    pthread_mutex_lock(&lock);
    long i = find(p, 0);
    if (i >= 0) {
        *start = ranges[i].start;
        *size = ranges[i].size;
    }
    pthread_mutex_unlock(&lock);
    return i >= 0;
}

TF_SIM_API CUresult cuMemHostRegister_v2(void *p, size_t size, unsigned int flags) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (p == NULL || size == 0 || (flags & ~TF_HOST_REGISTER_FLAGS) != 0) return CUDA_ERROR_INVALID_VALUE;
    uintptr_t start = (uintptr_t)p;
    if (start + size < start) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    rc = CUDA_SUCCESS;
    for (size_t i = 0; i < count && rc == CUDA_SUCCESS; i++)
        if (start < ranges[i].start + ranges[i].size && ranges[i].start < start + size)
            rc = CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    if (rc == CUDA_SUCCESS && count == capacity) {
        size_t cap = capacity ? capacity * 2 : 16;
        host_range *bigger = realloc(ranges, cap * sizeof *bigger);
        if (bigger == NULL) rc = CUDA_ERROR_OUT_OF_MEMORY;
        else {
            ranges = bigger;
            capacity = cap;
        }
    }
    if (rc == CUDA_SUCCESS) ranges[count++] = (host_range){start, size, flags};
    pthread_mutex_unlock(&lock);
    return rc;
}

TF_SIM_API CUresult cuMemHostRegister(void *p, size_t size, unsigned int flags) {
    return cuMemHostRegister_v2(p, size, flags);
}

TF_SIM_API CUresult cuMemHostUnregister(void *p) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    long i = find((uintptr_t)p, 1);
    if (i >= 0) ranges[i] = ranges[--count];
    pthread_mutex_unlock(&lock);
    return i >= 0 ? CUDA_SUCCESS : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

TF_SIM_API CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *dptr, void *p, unsigned int flags) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (dptr == NULL || p == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    long i = find((uintptr_t)p, 0);
    pthread_mutex_unlock(&lock);
    if (i < 0) return CUDA_ERROR_INVALID_VALUE;
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemHostGetFlags(unsigned int *flags, void *p) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (flags == NULL || p == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    long i = find((uintptr_t)p, 0);
    if (i >= 0) *flags = ranges[i].flags;
    pthread_mutex_unlock(&lock);
    return i >= 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

TF_SIM_API CUresult cuProfilerStart(void) {
    CUresult rc;
    return tf_current(&rc) == NULL ? rc : CUDA_SUCCESS;
}

TF_SIM_API CUresult cuProfilerStop(void) {
    CUresult rc;
    return tf_current(&rc) == NULL ? rc : CUDA_SUCCESS;
}
