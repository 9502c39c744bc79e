/* sim_cuda.h - internals shared by the simulated libcuda.so.1's translation units. */
#ifndef TF_SIM_CUDA_H
#define TF_SIM_CUDA_H

#include <stdint.h>

#include "sim_config.h"
#include "sim_state.h"
#include "tf/cuda_abi.h"

#define TF_CTX_MAGIC 0x43545846u
#define TF_STREAM_MAGIC 0x53545246u
#define TF_EVENT_MAGIC 0x45565446u

struct CUctx_st {
    uint32_t magic;
    int ordinal;        /* device as the process numbers it */
    int physical;       /* index into the shared state's devices */
    int primary;
    int retains;        /* atomic: primary context reference count */
    uint64_t tail_ns;   /* atomic: completion time of the last work on any of its streams */
};

struct CUstream_st {
    uint32_t magic;
    CUcontext ctx;
    uint64_t tail_ns; /* atomic: completion time of the stream's last work */
};

struct CUevent_st {
    uint32_t magic;
    int recorded;
    uint64_t time_ns; /* timeline point the event completes at */
};

/* CUDA_SUCCESS after cuInit, CUDA_ERROR_NOT_INITIALIZED before. */
CUresult tf_need_init(void);

/* Visible device count and ordinal -> physical device (CUDA_VISIBLE_DEVICES applied). */
int tf_visible_count(void);
int tf_physical(CUdevice ordinal); /* -1 when not visible */

/* The calling thread's current context after the init check; NULL sets *rc. */
CUcontext tf_current(CUresult *rc);

/* Resolves a stream argument (NULL, legacy, per-thread or created) of the current context
 * to the tail it orders by; NULL with *rc on a bad handle. */
uint64_t *tf_stream_tail(CUstream stream, CUcontext ctx, CUresult *rc);

/* Puts work of duration_ns on a stream: after the stream's previous work, and, when
 * busy is set, on the device's timeline (kernels occupy the device one after another). */
uint64_t tf_enqueue(CUcontext ctx, uint64_t *tail, uint64_t duration_ns, int busy);

/* Simulated duration of a kernel of `threads` on the context's device (time model above
 * launch() in sim_ctx.c). */
uint64_t tf_kernel_ns(CUcontext ctx, uint64_t threads);

/* Sleeps until CLOCK_MONOTONIC reaches t (bounded by the launch-queue cap). */
void tf_wait_until(uint64_t t);

/* Process-local allocation records (sim_mem.c). */
int tf_mem_contains(CUdeviceptr ptr, uint64_t bytes);
/* Whether the range touches reserved VA that has nothing mapped (an illegal address). */
int tf_mem_unmapped(CUdeviceptr ptr, uint64_t bytes);
/* The allocation holding ptr (device, managed, pinned host or VMM-mapped); 0 when none. */
typedef struct tf_mem_range {
    CUdeviceptr start;
    uint64_t size;
    int host, managed;
    int physical; /* -1 for host memory */
} tf_mem_range;
int tf_mem_find(CUdeviceptr ptr, tf_mem_range *out);
/* Simulated time of a copy of n bytes from src to dst (PCIe bandwidth when it crosses). */
uint64_t tf_copy_ns(const void *dst, const void *src, uint64_t n);
/* Bytes of host-located VMM memory this process has mapped. */
uint64_t tf_host_mapped_bytes(void);
/* The registered host range holding p (sim_host.c); 0 when none. */
int tf_host_registered(uintptr_t p, uintptr_t *start, size_t *size);
CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size);
CUresult cuDriverGetVersion(int *version);
CUresult cuDeviceGetCount(int *count);
CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev);
CUresult cuDeviceGetAttribute(int *value, CUdevice_attribute attribute, CUdevice dev);
CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev);
CUresult cuModuleLoadData(CUmodule *module, const void *image);
int tf_sim_attribute_default(int attribute, int physical); /* sim_attrs.c */
CUresult cuMemFree_v2(CUdeviceptr ptr);

/* Modules, libraries and kernels (sim_library.c); a CUkernel is its CUfunction. */
typedef struct CUlib_st *CUlibrary;
int tf_function_valid(CUfunction f);

/* The runtime's private tables (sim_export_tables.c): context-local storage destructors
 * run when a context is destroyed or a primary context reset; tracing of what programs
 * ask the driver for (TF_SIM_TRACE=1, read once). */
void tf_cls_context_gone(CUcontext ctx);
int tf_sim_trace(void);

#endif /* TF_SIM_CUDA_H */
