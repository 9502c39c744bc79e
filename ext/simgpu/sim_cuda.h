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

typedef struct tf_capture tf_capture; /* a stream-capture sequence (sim_capture.c) */

struct CUstream_st {
    uint32_t magic;
    CUcontext ctx;
    uint64_t tail_ns; /* atomic: completion time of the stream's last work */
    unsigned int flags;  /* CU_STREAM_NON_BLOCKING: no implicit sync with the legacy stream */
    tf_capture *capture; /* capture sequence it takes part in (capture lock) */
    uint64_t cap_work;   /* nodes it added to that capture */
    uint64_t cap_joined; /* of which the origin stream has waited for (joined back) */
    CUgraphNode cap_last; /* its last captured node: the next one's dependency */
};

struct CUevent_st {
    uint32_t magic;
    int recorded;
    uint64_t time_ns; /* timeline point the event completes at */
    uint64_t capture_id; /* last recorded inside this capture sequence (0: none) */
    CUstream cap_stream; /* in this stream of it, */
    uint64_t cap_work;   /* after this many of its nodes */
};

/* A captured operation, as a graph node records it and an executable performs it. */
typedef struct tf_graph_op {
    int type; /* CU_GRAPH_NODE_TYPE_* */
    CUDA_KERNEL_NODE_PARAMS_v2 kernel;    /* KERNEL */
    CUDA_MEM_ALLOC_NODE_PARAMS alloc;     /* MEM_ALLOC (dptr set by the graph) */
    CUdeviceptr *dptr_out;                /* MEM_ALLOC: where the caller wants the address */
    CUdeviceptr dptr;                     /* MEM_FREE: the graph allocation freed */
    void *dst;                            /* MEMCPY, MEMSET */
    const void *src;                      /* MEMCPY */
    uint64_t width, height, dst_pitch, src_pitch; /* MEMCPY, MEMSET: rows of width bytes (elements for memsets) */
    uint32_t value, element;              /* MEMSET: value, element size 1/2/4 */
    void (*host_fn)(void *);              /* HOST */
    void *host_data;
    const struct CUgraphExec_st *exec;    /* GRAPH: an executable launched into the capture */
} tf_graph_op;

/* ---- stream capture (sim_capture.c) ---- */

/* Cheap test whether an operation on stream may have to be captured or refused (some capture
 * is active and the stream is a capturing one or the legacy stream).  Then tf_capture_op
 * decides: 1 = handled (recorded, or refused), its result in *rc; 0 = run it as usual. */
int tf_capture_maybe(CUstream stream);
int tf_capture_op(CUstream stream, const tf_graph_op *op, CUresult *rc);
/* Synchronous work on the legacy stream, and calls unsafe during capture (cuMemAlloc): the
 * error to return (and the captures it invalidates), or CUDA_SUCCESS. */
CUresult tf_capture_sync_guard(CUcontext ctx);
/* Synchronizing a stream (cuStreamSynchronize, cuStreamQuery) or a whole context. */
CUresult tf_capture_stream_sync(CUstream stream);
CUresult tf_capture_ctx_sync(CUcontext ctx);
/* Events recorded in / waited for by capturing streams; 1 = handled, result in *rc. */
int tf_capture_event_record(CUevent e, CUstream stream, CUresult *rc);
int tf_capture_wait_event(CUstream stream, CUevent e, CUresult *rc);
/* CUDA_ERROR_CAPTURED_EVENT while e's last record is in a capture still in progress. */
CUresult tf_capture_event_check(CUevent e);
/* A stream being destroyed leaves its capture. */
void tf_capture_stream_gone(CUstream stream);

/* ---- graphs (sim_graph.c) ---- */
CUresult tf_graph_add_captured(CUgraph g, const tf_graph_op *op, CUgraphNode *out);
/* Whether ptr is an address a memory-allocation node handed out (exact), or lies in one. */
int tf_graph_allocation(CUdeviceptr ptr, int exact);
CUresult cuGraphGetNodes(CUgraph g, CUgraphNode *nodes, size_t *count);
void tf_graph_run_op(CUcontext ctx, uint64_t *tail, const tf_graph_op *op); /* sim_capture.c */
CUresult cuGraphCreate(CUgraph *graph, unsigned int flags);
CUresult cuGraphDestroy(CUgraph g);
CUresult cuGraphAddMemAllocNode(CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                                CUDA_MEM_ALLOC_NODE_PARAMS *p);
CUresult cuGraphAddChildGraphNode(CUgraphNode *node, CUgraph g, const CUgraphNode *deps, size_t ndeps, CUgraph child);

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
