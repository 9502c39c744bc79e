/*
 * Hook bodies, one per hooks.def row, each named after the variant whose ABI it has.
 * Hot-path rules: no getenv, no logging, no locks; configuration comes from init.
 */
#include <limits.h>
#include <stddef.h>

#include "shim.h"

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus) {
    tf_pfn_cuGetProcAddress_v2 real = TF_REAL(cuGetProcAddress_v2);
    if (real == NULL) return CUDA_ERROR_NOT_INITIALIZED;
    CUresult rc = real(symbol, pfn, cudaVersion, flags, symbolStatus);
    if (rc == CUDA_SUCCESS) tf_route(symbol, pfn, cudaVersion, flags);
    return rc;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
    tf_pfn_cuGetProcAddress real = TF_REAL(cuGetProcAddress);
    if (real == NULL) return CUDA_ERROR_NOT_INITIALIZED;
    CUresult rc = real(symbol, pfn, cudaVersion, flags);
    if (rc == CUDA_SUCCESS) tf_route(symbol, pfn, cudaVersion, flags);
    return rc;
}

/* Device memory reporting is clamped to min(physical, TF_VRAM_LIMIT). */
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    tf_pfn_cuDeviceTotalMem_v2 real = TF_REAL(cuDeviceTotalMem_v2);
    if (real == NULL) return CUDA_ERROR_NOT_INITIALIZED;
    CUresult rc = real(bytes, dev);
    uint64_t limit = tf_shim_config_get()->vram_limit;
    if (rc == CUDA_SUCCESS && limit != 0 && *bytes > limit) *bytes = (size_t)limit;
    return rc;
}

CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev) {
    tf_pfn_cuDeviceTotalMem real = TF_REAL(cuDeviceTotalMem);
    if (real == NULL) return CUDA_ERROR_NOT_INITIALIZED;
    CUresult rc = real(bytes, dev);
    uint64_t limit = tf_shim_config_get()->vram_limit;
    if (rc == CUDA_SUCCESS && limit != 0 && *bytes > limit) *bytes = (unsigned int)limit;
    return rc;
}
