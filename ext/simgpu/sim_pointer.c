/*
 * Pointer attributes (cudaPointerGetAttributes and libraries that ask what memory a pointer
 * is): from the simulator's allocation records and registered host ranges.  Device, managed
 * and host addresses are the same numbers (unified addressing); every allocation is a
 * buffer of its own id.
 */
#define _GNU_SOURCE
#include <string.h>

#include "sim_cuda.h"

enum {
    ATTR_CONTEXT = 1,
    ATTR_MEMORY_TYPE,
    ATTR_DEVICE_POINTER,
    ATTR_HOST_POINTER,
    ATTR_P2P_TOKENS,
    ATTR_SYNC_MEMOPS,
    ATTR_BUFFER_ID,
    ATTR_IS_MANAGED,
    ATTR_DEVICE_ORDINAL,
    ATTR_IS_LEGACY_CUDA_IPC_CAPABLE,
    ATTR_RANGE_START_ADDR,
    ATTR_RANGE_SIZE,
    ATTR_MAPPED,
    ATTR_ALLOWED_HANDLE_TYPES,
    ATTR_IS_GPU_DIRECT_RDMA_CAPABLE,
    ATTR_ACCESS_FLAGS,
    ATTR_MEMPOOL_HANDLE,
    ATTR_MAPPING_SIZE,
    ATTR_MAPPING_BASE_ADDR,
    ATTR_MEMORY_BLOCK_ID,
    ATTR_IS_HW_DECOMPRESS_CAPABLE,
};
#define MEMORYTYPE_HOST 1u
#define MEMORYTYPE_DEVICE 2u

typedef struct pointer_info {
    int known, host, managed, ordinal;
    uintptr_t start;
    size_t size;
} pointer_info;

static pointer_info lookup(CUdeviceptr ptr) {
    pointer_info info = {0};
    tf_mem_range r;
    uintptr_t start = 0;
    size_t size = 0;
    if (tf_mem_find(ptr, &r)) {
        info = (pointer_info){1, r.host, r.managed, 0, (uintptr_t)r.start, (size_t)r.size};
        for (int o = 0; o < tf_visible_count(); o++)
            if (tf_physical(o) == r.physical) info.ordinal = o;
    } else if (tf_host_registered((uintptr_t)ptr, &start, &size)) {
        info = (pointer_info){1, 1, 0, 0, start, size};
    }
    return info;
}

/* Writes one attribute; INVALID_VALUE for one the simulator does not know. */
static CUresult attribute(void *data, int attr, CUdeviceptr ptr, const pointer_info *info, CUcontext ctx) {
    switch (attr) {
    case ATTR_CONTEXT: *(CUcontext *)data = info->known && !info->host ? ctx : NULL; break;
    case ATTR_MEMORY_TYPE:
        *(unsigned int *)data = !info->known ? 0 : info->host ? MEMORYTYPE_HOST : MEMORYTYPE_DEVICE;
        break;
    case ATTR_DEVICE_POINTER: *(CUdeviceptr *)data = info->known ? ptr : 0; break;
    case ATTR_HOST_POINTER: *(void **)data = info->known && (info->host || info->managed) ? (void *)(uintptr_t)ptr : NULL; break;
    case ATTR_SYNC_MEMOPS: *(int *)data = info->known; break;
    case ATTR_BUFFER_ID: *(unsigned long long *)data = info->known ? (unsigned long long)info->start : 0; break;
    case ATTR_IS_MANAGED: *(int *)data = info->managed; break;
    case ATTR_DEVICE_ORDINAL: *(int *)data = info->known ? info->ordinal : -2; break;
    case ATTR_IS_LEGACY_CUDA_IPC_CAPABLE: *(int *)data = 0; break;
    case ATTR_RANGE_START_ADDR: *(void **)data = (void *)info->start; break;
    case ATTR_RANGE_SIZE: *(size_t *)data = info->size; break;
    case ATTR_MAPPED: *(int *)data = info->known; break;
    case ATTR_ALLOWED_HANDLE_TYPES: *(unsigned long long *)data = 0; break;
    case ATTR_IS_GPU_DIRECT_RDMA_CAPABLE: *(int *)data = 0; break;
    case ATTR_ACCESS_FLAGS: *(unsigned int *)data = info->known ? 3u : 0u; break; /* read-write */
    case ATTR_MEMPOOL_HANDLE: *(void **)data = NULL; break;
    case ATTR_MAPPING_SIZE: *(size_t *)data = info->size; break;
    case ATTR_MAPPING_BASE_ADDR: *(void **)data = (void *)info->start; break;
    case ATTR_MEMORY_BLOCK_ID: *(unsigned long long *)data = info->known ? (unsigned long long)info->start : 0; break;
    case ATTR_IS_HW_DECOMPRESS_CAPABLE: *(int *)data = 0; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuPointerGetAttribute(void *data, int attr, CUdeviceptr ptr) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (data == NULL || ptr == 0) return CUDA_ERROR_INVALID_VALUE;
    pointer_info info = lookup(ptr);
    if (!info.known) return CUDA_ERROR_INVALID_VALUE; /* not memory the driver knows */
    CUcontext ctx = tf_current(&rc);
    return attribute(data, attr, ptr, &info, ctx);
}

/* Unlike the single form, an unknown pointer is not an error: its attributes read as zeros. */
TF_SIM_API CUresult cuPointerGetAttributes(unsigned int count, int *attrs, void **data, CUdeviceptr ptr) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (count == 0 || attrs == NULL || data == NULL) return CUDA_ERROR_INVALID_VALUE;
    pointer_info info = lookup(ptr);
    CUcontext ctx = tf_current(&rc);
    for (unsigned int i = 0; i < count; i++) {
        if (data[i] == NULL) continue;
        rc = attribute(data[i], attrs[i], ptr, &info, ctx);
        if (rc != CUDA_SUCCESS) return rc;
    }
    return CUDA_SUCCESS;
}
