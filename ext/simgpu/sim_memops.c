/*
 * Pitched 2D and 3D copies, 2D memsets (cudaMemcpy2D/3D, cudaMemset2D, async forms), managed
 * memory hints (prefetch, advise) and host functions on streams.  SIMULATED like the 1D forms
 * in sim_mem.c: bytes move when called and complete in stream order on the timeline.
 *
 * A host function (cuLaunchHostFunc, cuStreamAddCallback) runs in the launching thread once the stream's earlier
 * work is complete, before the call returns: later work on the stream and any synchronize
 * then come after it, as the real driver orders them; the difference is only that the
 * launching thread waits (bounded by the launch queue, at most about 11 s).
 */
#define _GNU_SOURCE
#include <string.h>

#include "sim_cuda.h"

#define MEMORYTYPE_HOST 1
#define MEMORYTYPE_DEVICE 2
#define MEMORYTYPE_ARRAY 3
#define MEMORYTYPE_UNIFIED 4

typedef struct CUDA_MEMCPY2D_st {
    size_t srcXInBytes, srcY;
    int srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    CUarray srcArray;
    size_t srcPitch;
    size_t dstXInBytes, dstY;
    int dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    CUarray dstArray;
    size_t dstPitch;
    size_t WidthInBytes, Height;
} CUDA_MEMCPY2D;

/* The first byte of one side of a copy and whether it must lie in device memory; NULL for
 * a side the simulator cannot address (arrays are charged, not backed). */
static unsigned char *side(int type, const void *host, CUdeviceptr dev, size_t x, size_t y, size_t pitch,
                           int *device) {
    uintptr_t base;
    if (type == MEMORYTYPE_HOST) base = (uintptr_t)host;
    else if (type == MEMORYTYPE_DEVICE || type == MEMORYTYPE_UNIFIED) base = (uintptr_t)dev;
    else return NULL;
    *device = type == MEMORYTYPE_DEVICE;
    return base == 0 ? NULL : (unsigned char *)(base + y * pitch + x);
}

static CUresult copy_2d(const CUDA_MEMCPY2D *p, CUstream stream, int async) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (p->srcMemoryType == MEMORYTYPE_ARRAY || p->dstMemoryType == MEMORYTYPE_ARRAY) return CUDA_ERROR_NOT_SUPPORTED;
    if (p->WidthInBytes == 0 || p->Height == 0) return CUDA_SUCCESS;
    if ((p->Height > 1 && (p->srcPitch < p->WidthInBytes || p->dstPitch < p->WidthInBytes)))
        return CUDA_ERROR_INVALID_VALUE;
    int src_dev = 0, dst_dev = 0;
    const unsigned char *src =
        side(p->srcMemoryType, p->srcHost, p->srcDevice, p->srcXInBytes, p->srcY, p->srcPitch, &src_dev);
    unsigned char *dst = side(p->dstMemoryType, p->dstHost, p->dstDevice, p->dstXInBytes, p->dstY, p->dstPitch, &dst_dev);
    if (src == NULL || dst == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (async && tf_capture_maybe(stream)) {
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_MEMCPY, .dst = dst, .src = src, .width = p->WidthInBytes,
                          .height = p->Height, .dst_pitch = p->dstPitch, .src_pitch = p->srcPitch};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    if (!async && (rc = tf_capture_sync_guard(c)) != CUDA_SUCCESS) return rc;
    size_t src_span = (p->Height - 1) * p->srcPitch + p->WidthInBytes;
    size_t dst_span = (p->Height - 1) * p->dstPitch + p->WidthInBytes;
    if (tf_mem_unmapped((CUdeviceptr)(uintptr_t)src, src_span) || tf_mem_unmapped((CUdeviceptr)(uintptr_t)dst, dst_span))
        return CUDA_ERROR_ILLEGAL_ADDRESS;
    if ((src_dev && !tf_mem_contains((CUdeviceptr)(uintptr_t)src, src_span)) ||
        (dst_dev && !tf_mem_contains((CUdeviceptr)(uintptr_t)dst, dst_span)))
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(async ? stream : NULL, c, &rc);
    if (tail == NULL) return rc;
    if (!async) tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE));
    for (size_t row = 0; row < p->Height; row++)
        memmove(dst + row * p->dstPitch, src + row * p->srcPitch, p->WidthInBytes);
    tf_enqueue(c, tail, 0, 0);
    return CUDA_SUCCESS;
}

typedef struct CUDA_MEMCPY3D_st {
    size_t srcXInBytes, srcY, srcZ, srcLOD;
    int srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    CUarray srcArray;
    void *reserved0;
    size_t srcPitch, srcHeight;
    size_t dstXInBytes, dstY, dstZ, dstLOD;
    int dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    CUarray dstArray;
    void *reserved1;
    size_t dstPitch, dstHeight;
    size_t WidthInBytes, Height, Depth;
} CUDA_MEMCPY3D;

/* A 3D copy is Depth 2D copies, slice z at (z * height + y) * pitch of each side. */
static CUresult copy_3d(const CUDA_MEMCPY3D *p, CUstream stream, int async) {
    if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (p->Depth > 1 && (p->srcHeight < p->Height || p->dstHeight < p->Height)) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = CUDA_SUCCESS;
    for (size_t z = 0; z < p->Depth && rc == CUDA_SUCCESS; z++) {
        CUDA_MEMCPY2D slice = {
            .srcXInBytes = p->srcXInBytes, .srcY = (p->srcZ + z) * p->srcHeight + p->srcY,
            .srcMemoryType = p->srcMemoryType, .srcHost = p->srcHost, .srcDevice = p->srcDevice,
            .srcArray = p->srcArray, .srcPitch = p->srcPitch,
            .dstXInBytes = p->dstXInBytes, .dstY = (p->dstZ + z) * p->dstHeight + p->dstY,
            .dstMemoryType = p->dstMemoryType, .dstHost = p->dstHost, .dstDevice = p->dstDevice,
            .dstArray = p->dstArray, .dstPitch = p->dstPitch,
            .WidthInBytes = p->WidthInBytes, .Height = p->Height,
        };
        rc = copy_2d(&slice, stream, async);
    }
    return rc;
}

TF_SIM_API CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *p) { return copy_3d(p, NULL, 0); }
TF_SIM_API CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *p, CUstream s) { return copy_3d(p, s, 1); }
/* CUDA_MEMCPY3D_PEER is CUDA_MEMCPY3D with the two reserved pointers as the contexts: every
 * simulated device's memory is in one address space, so the contexts change nothing. */
TF_SIM_API CUresult cuMemcpy3DPeer(const CUDA_MEMCPY3D *p) { return copy_3d(p, NULL, 0); }
TF_SIM_API CUresult cuMemcpy3DPeerAsync(const CUDA_MEMCPY3D *p, CUstream s) { return copy_3d(p, s, 1); }
TF_SIM_API CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *p) { return copy_2d(p, NULL, 0); }
TF_SIM_API CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *p) { return copy_2d(p, NULL, 0); }
TF_SIM_API CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *p, CUstream s) { return copy_2d(p, s, 1); }

static CUresult memset_2d(CUdeviceptr dst, size_t pitch, uint32_t value, size_t width, size_t w, size_t h,
                          CUstream stream, int async) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (w == 0 || h == 0) return CUDA_SUCCESS;
    if (dst == 0 || dst % width != 0 || (h > 1 && pitch < w * width)) return CUDA_ERROR_INVALID_VALUE;
    if (async && tf_capture_maybe(stream)) {
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_MEMSET, .dst = (void *)(uintptr_t)dst, .width = w, .height = h,
                          .dst_pitch = pitch, .value = value, .element = (uint32_t)width};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    if (!async && (rc = tf_capture_sync_guard(c)) != CUDA_SUCCESS) return rc;
    if (tf_mem_unmapped(dst, (h - 1) * pitch + w * width)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    if (!tf_mem_contains(dst, (h - 1) * pitch + w * width)) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(async ? stream : NULL, c, &rc);
    if (tail == NULL) return rc;
    if (!async) tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE));
    for (size_t row = 0; row < h; row++) {
        unsigned char *p = (unsigned char *)(uintptr_t)(dst + row * pitch);
        for (size_t i = 0; i < w; i++) memcpy(p + i * width, &value, width); /* little-endian */
    }
    tf_enqueue(c, tail, 0, 0);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemsetD2D8_v2(CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h) {
    return memset_2d(d, pitch, v, 1, w, h, NULL, 0);
}
TF_SIM_API CUresult cuMemsetD2D16_v2(CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h) {
    return memset_2d(d, pitch, v, 2, w, h, NULL, 0);
}
TF_SIM_API CUresult cuMemsetD2D32_v2(CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h) {
    return memset_2d(d, pitch, v, 4, w, h, NULL, 0);
}
TF_SIM_API CUresult cuMemsetD2D8Async(CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h, CUstream s) {
    return memset_2d(d, pitch, v, 1, w, h, s, 1);
}
TF_SIM_API CUresult cuMemsetD2D16Async(CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h,
                                       CUstream s) {
    return memset_2d(d, pitch, v, 2, w, h, s, 1);
}
TF_SIM_API CUresult cuMemsetD2D32Async(CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h, CUstream s) {
    return memset_2d(d, pitch, v, 4, w, h, s, 1);
}

/* ---- managed memory hints: nothing migrates on the simulator; the range is checked ---- */

static CUresult managed_hint(CUdeviceptr ptr, size_t count, CUstream stream, int on_stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (ptr == 0 || count == 0 || !tf_mem_contains(ptr, count)) return CUDA_ERROR_INVALID_VALUE;
    if (on_stream) {
        uint64_t *tail = tf_stream_tail(stream, c, &rc);
        if (tail == NULL) return rc;
        tf_enqueue(c, tail, 0, 0);
    }
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemPrefetchAsync(CUdeviceptr ptr, size_t count, CUdevice dev, CUstream s) {
    (void)dev;
    return managed_hint(ptr, count, s, 1);
}
TF_SIM_API CUresult cuMemPrefetchAsync_v2(CUdeviceptr ptr, size_t count, CUmemLocation where, unsigned int flags,
                                          CUstream s) {
    (void)where;
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    return managed_hint(ptr, count, s, 1);
}
TF_SIM_API CUresult cuMemAdvise(CUdeviceptr ptr, size_t count, int advice, CUdevice dev) {
    (void)dev;
    if (advice < 1 || advice > 6) return CUDA_ERROR_INVALID_VALUE;
    return managed_hint(ptr, count, NULL, 0);
}
TF_SIM_API CUresult cuMemAdvise_v2(CUdeviceptr ptr, size_t count, int advice, CUmemLocation where) {
    (void)where;
    if (advice < 1 || advice > 6) return CUDA_ERROR_INVALID_VALUE;
    return managed_hint(ptr, count, NULL, 0);
}

/* ---- host functions ---- */

typedef void (*host_fn)(void *data);

TF_SIM_API CUresult cuLaunchHostFunc(CUstream stream, host_fn fn, void *data) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (fn == NULL) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if (tf_capture_maybe(stream)) {
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_HOST, .host_fn = fn, .host_data = data};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE));
    fn(data);
    tf_enqueue(c, tail, 0, 0);
    return CUDA_SUCCESS;
}

typedef void (*stream_callback)(CUstream stream, CUresult status, void *data);

/* The older form: the callback also gets the stream and the status of the work before it. */
TF_SIM_API CUresult cuStreamAddCallback(CUstream stream, stream_callback fn, void *data, unsigned int flags) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (fn == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE));
    fn(stream, CUDA_SUCCESS, data);
    tf_enqueue(c, tail, 0, 0);
    return CUDA_SUCCESS;
}
