/* A driver library that exports its entry points but not cuCtxGetDevice (nor
 * cuGetProcAddress): the shim cannot tell which device an allocation is for.  Built as
 * libcuda.so.1 for test_a_missing_helper_fails_closed_with_one_line. */
#include <stdint.h>
#include <stdlib.h>

#include "tf/cuda_abi.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT CUresult cuInit(unsigned int flags) { return flags == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE; }
EXPORT CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
    *dev = ordinal;
    return ordinal == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}
EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev) {
    (void)dev;
    *ctx = (CUcontext)(uintptr_t)0x1000;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) { return ctx != NULL ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT; }
EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes) {
    static CUdeviceptr next = 1 << 20;
    *dptr = next;
    next += bytes;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
    *free_bytes = *total = (size_t)1 << 34;
    return CUDA_SUCCESS;
}
