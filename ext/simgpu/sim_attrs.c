/*
 * Plausible answers to the queries the CUDA runtime and common libraries make at start-up:
 * device attributes (an H100 SXM's values), context limits, occupancy, and stream, event
 * and context properties.  SIMULATED: nothing here changes how simulated work runs.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "sim_cuda.h"

/* Device attributes simcuda.c's switch leaves open; 0 = feature absent. */
int tf_sim_attribute_default(int attribute, int physical);
int tf_sim_attribute_default(int attribute, int physical) {
    switch (attribute) {
    case 9: return 65536;                 /* TOTAL_CONSTANT_MEMORY */
    case 11: return INT_MAX;              /* MAX_PITCH */
    case 12: case 82: return 65536;       /* registers per block / per SM */
    case 13: return 1980000;              /* CLOCK_RATE, kHz */
    case 14: return 512;                  /* TEXTURE_ALIGNMENT */
    case 15: case 31: case 32: return 1;  /* GPU_OVERLAP, CONCURRENT_KERNELS, ECC_ENABLED */
    case 19: return 1;                    /* CAN_MAP_HOST_MEMORY */
    case 21: return 131072;               /* MAXIMUM_TEXTURE1D_WIDTH */
    case 22: case 23: return 131072;      /* MAXIMUM_TEXTURE2D_WIDTH/HEIGHT */
    case 24: case 25: case 26: return 16384;
    case 30: return 512;                  /* SURFACE_ALIGNMENT */
    case 34: return 0;                    /* PCI_DEVICE_ID */
    case 36: return 2619000;              /* MEMORY_CLOCK_RATE, kHz */
    case 37: return 5120;                 /* GLOBAL_MEMORY_BUS_WIDTH */
    case 38: return 50331648;             /* L2_CACHE_SIZE */
    case 40: return 5;                    /* ASYNC_ENGINE_COUNT */
    case 50: return 0;                    /* PCI_DOMAIN_ID */
    case 51: return 32;                   /* TEXTURE_PITCH_ALIGNMENT */
    case 78: case 79: case 80: return 1;  /* stream priorities, global/local L1 cache */
    case 81: return 233472;               /* MAX_SHARED_MEMORY_PER_MULTIPROCESSOR */
    case 86: return 0;                    /* HOST_NATIVE_ATOMIC_SUPPORTED */
    case 87: return 2;                    /* SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO */
    case 89: case 90: return 1;           /* CONCURRENT_MANAGED_ACCESS, COMPUTE_PREEMPTION */
    case 91: return 0;
    case 96: return 0;                    /* COOPERATIVE_MULTI_DEVICE_LAUNCH */
    case 97: return 232448;               /* MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
    case 99: return 1;                    /* HOST_REGISTER_SUPPORTED */
    case 103: return 1;                   /* HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED */
    case 106: return 32;                  /* MAX_BLOCKS_PER_MULTIPROCESSOR */
    case 108: return 31457280;            /* MAX_PERSISTING_L2_CACHE_SIZE */
    case 109: return 134213632;           /* MAX_ACCESS_POLICY_WINDOW_SIZE */
    case 111: return 1024;                /* RESERVED_SHARED_MEMORY_PER_BLOCK */
    case 112: case 113: case 114: return 1;
    case 119: return 1;                   /* MEMPOOL_SUPPORTED_HANDLE_TYPES: POSIX fd */
    case 120: return 1;                   /* CLUSTER_LAUNCH */
    case 121: case 122: case 123: return 1;
    case 126: return 4;                   /* MEM_SYNC_DOMAIN_COUNT */
    case 127: return 1;                   /* TENSOR_MAP_ACCESS_SUPPORTED */
    case 131: return -1;                  /* NUMA_ID: none */
    case 134: return 0;                   /* HOST_NUMA_ID */
    case 139: return 0x233010de;          /* GPU_PCI_DEVICE_ID: H100 SXM5 */
    default: (void)physical; return 0;
    }
}

TF_SIM_API CUresult cuCtxGetCacheConfig(int *config) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (config == NULL) return CUDA_ERROR_INVALID_VALUE;
    *config = 0; /* CU_FUNC_CACHE_PREFER_NONE */
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxSetCacheConfig(int config) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    return config < 0 || config > 3 ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxGetFlags(unsigned int *flags) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (flags == NULL) return CUDA_ERROR_INVALID_VALUE;
    *flags = 0;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxSetFlags(unsigned int flags) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    return flags > 0x3f ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (least != NULL) *least = 0;
    if (greatest != NULL) *greatest = -5;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxGetId(CUcontext ctx, unsigned long long *id) {
    CUresult rc;
    CUcontext c = ctx != NULL ? ctx : tf_current(&rc);
    if (c == NULL) return rc;
    if (id == NULL) return CUDA_ERROR_INVALID_VALUE;
    *id = (unsigned long long)(uintptr_t)c;
    return CUDA_SUCCESS;
}

/* ---- streams ---- */

/* A stream query's checks, in the order CUDA makes them: a current context, somewhere to
 * answer, a stream of that context. */
static CUresult stream_query(CUstream stream, const void *out, CUcontext *ctx) {
    CUresult rc;
    *ctx = tf_current(&rc);
    if (*ctx == NULL) return rc;
    if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (tf_stream_tail(stream, *ctx, &rc) == NULL) return rc;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuStreamGetPriority(CUstream stream, int *priority) {
    CUcontext c;
    CUresult rc = stream_query(stream, priority, &c);
    if (rc == CUDA_SUCCESS) *priority = 0;
    return rc;
}

TF_SIM_API CUresult cuStreamGetFlags(CUstream stream, unsigned int *flags) {
    CUcontext c;
    CUresult rc = stream_query(stream, flags, &c);
    if (rc == CUDA_SUCCESS) *flags = 0;
    return rc;
}

TF_SIM_API CUresult cuStreamGetCtx(CUstream stream, CUcontext *pctx) {
    CUcontext c;
    CUresult rc = stream_query(stream, pctx, &c);
    if (rc == CUDA_SUCCESS)
        *pctx = stream == NULL || stream == CU_STREAM_LEGACY || stream == CU_STREAM_PER_THREAD ? c : stream->ctx;
    return rc;
}

TF_SIM_API CUresult cuStreamGetId(CUstream stream, unsigned long long *id) {
    CUcontext c;
    CUresult rc = stream_query(stream, id, &c);
    if (rc == CUDA_SUCCESS) *id = (unsigned long long)(uintptr_t)stream;
    return rc;
}

/* ---- occupancy: 2048 resident threads and 32 blocks per SM, 228 KiB shared memory ---- */

static int blocks_per_sm(int block_size, size_t dynamic_shmem) {
    if (block_size <= 0 || block_size > 1024) return 0;
    int warps = (block_size + 31) / 32;
    int by_threads = 64 / warps, by_shmem = 32;
    if (dynamic_shmem > 0) by_shmem = (int)(233472 / (dynamic_shmem + 1024));
    int n = by_threads < 32 ? by_threads : 32;
    return n < by_shmem ? n : by_shmem;
}

TF_SIM_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *blocks, CUfunction f, int block_size,
                                                                         size_t dynamic_shmem, unsigned int flags) {
    CUresult rc;
    (void)flags;
    if (tf_current(&rc) == NULL) return rc;
    if (blocks == NULL || block_size <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    *blocks = blocks_per_sm(block_size, dynamic_shmem);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, CUfunction f, int block_size,
                                                                size_t dynamic_shmem) {
    return cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(blocks, f, block_size, dynamic_shmem, 0);
}

typedef size_t (*block_to_shmem)(int block_size);

TF_SIM_API CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(int *min_grid, int *block_size, CUfunction f,
                                                              block_to_shmem shmem_of, size_t dynamic_shmem,
                                                              int limit, unsigned int flags) {
    CUresult rc;
    (void)flags;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (min_grid == NULL || block_size == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    int best = 0, best_blocks = 0, top = limit > 0 && limit < 1024 ? limit : 1024;
    for (int size = top - top % 32 ? top - top % 32 : top; size > 0; size -= 32) {
        size_t shmem = shmem_of != NULL ? shmem_of(size) : dynamic_shmem;
        int blocks = blocks_per_sm(size, shmem);
        if (blocks * size > best_blocks * best) {
            best = size;
            best_blocks = blocks;
        }
    }
    int sm_count = 0;
    cuDeviceGetAttribute(&sm_count, 16, c->ordinal);
    *block_size = best;
    *min_grid = best_blocks * sm_count;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuOccupancyMaxPotentialBlockSize(int *min_grid, int *block_size, CUfunction f,
                                                     block_to_shmem shmem_of, size_t dynamic_shmem, int limit) {
    return cuOccupancyMaxPotentialBlockSizeWithFlags(min_grid, block_size, f, shmem_of, dynamic_shmem, limit, 0);
}

TF_SIM_API CUresult cuOccupancyAvailableDynamicSMemPerBlock(size_t *bytes, CUfunction f, int blocks, int block_size) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (bytes == NULL || blocks <= 0 || block_size <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    size_t per_block = 233472 / (size_t)blocks;
    *bytes = per_block > 1024 ? per_block - 1024 : 0;
    if (*bytes > 232448) *bytes = 232448;
    return CUDA_SUCCESS;
}

/* ---- devices: PCI identity (one bus per simulated device, as nvidia-smi would list) ---- */

TF_SIM_API CUresult cuDeviceGetPCIBusId(char *bus_id, int len, CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (bus_id == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (tf_physical(dev) < 0) return CUDA_ERROR_INVALID_DEVICE;
    int bus = 0;
    cuDeviceGetAttribute(&bus, 33, dev);
    snprintf(bus_id, (size_t)len, "0000:%02x:00.0", bus);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (can == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (tf_physical(dev) < 0 || tf_physical(peer) < 0) return CUDA_ERROR_INVALID_DEVICE;
    *can = 0; /* no peer access between simulated devices */
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceGetP2PAttribute(int *value, int attribute, CUdevice src, CUdevice dst) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (value == NULL || attribute < 1 || attribute > 5) return CUDA_ERROR_INVALID_VALUE;
    if (tf_physical(src) < 0 || tf_physical(dst) < 0 || src == dst) return CUDA_ERROR_INVALID_DEVICE;
    *value = 0;
    return CUDA_SUCCESS;
}
