/*
 * Hook bodies, one per hooks.def row, each named after the variant whose ABI it has.
 * Hot-path rules: no getenv, no logging at the default level, no locks; configuration
 * comes from init, limits and usage from the region (region.c).
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "shim.h"
#include "tf/compute.h"
#include "tf/ctx_limits.h"

#define REAL_OR_FAIL(symbol)                                     \
    tf_pfn_##symbol real = TF_REAL(symbol);                      \
    if (real == NULL) return CUDA_ERROR_NOT_INITIALIZED

/* ---- routing ---- */

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus) {
    REAL_OR_FAIL(cuGetProcAddress_v2);
    CUresult rc = real(symbol, pfn, cudaVersion, flags, symbolStatus);
    if (rc == CUDA_SUCCESS) tf_route(symbol, pfn, cudaVersion, flags);
    return rc;
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
    REAL_OR_FAIL(cuGetProcAddress);
    CUresult rc = real(symbol, pfn, cudaVersion, flags);
    if (rc == CUDA_SUCCESS) tf_route(symbol, pfn, cudaVersion, flags);
    return rc;
}

/* ---- memory reporting: min(limit, physical) and the worker's own usage ---- */

/* The limit that applies to a region device: ungranted devices have none to give. */
static uint64_t visible_total(int dev, uint64_t physical) {
    if (dev < 0) return 0;
    uint64_t limit = tf_region_limit(dev);
    return limit != 0 && limit < physical ? limit : physical;
}

/* `cached`: what this process's cache of freed movable allocations holds on dev.  It stays
 * charged (and NVML shows it used: it is on the device), but the program freed it and gets it
 * back on its next allocation (the cache is released when an allocation would not fit), so the
 * program's own view counts it as free, as after a plain cuMemFree. */
static void virtual_info(int dev, uint64_t *free_bytes, uint64_t *total, uint64_t cached) {
    uint64_t visible = visible_total(dev, *total);
    uint64_t used = dev < 0 ? 0 : tf_region_used(dev);
    used = used > cached ? used - cached : 0;
    uint64_t room = used >= visible ? 0 : visible - used;
    *total = visible;
    *free_bytes += cached;
    if (room < *free_bytes) *free_bytes = room; /* never more than the device really has */
}

/* The driver's figures for the current context's device, virtualized in place when a region
 * is in force (the caller narrows them back to its own integer width). */
static void virtualize_current(uint64_t *free_bytes, uint64_t *total) {
    int ok;
    if (tf_region_active() != TF_ADMIT_OK) return;
    int dev = tf_region_current_device(&ok);
    if (ok > 0) virtual_info(dev, free_bytes, total, tf_tier_cached(dev));
    if (ok < 0) *free_bytes = 0; /* device unknown: nothing to offer */
}

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
    REAL_OR_FAIL(cuMemGetInfo_v2);
    CUresult rc = real(free_bytes, total);
    if (rc != CUDA_SUCCESS) return rc;
    uint64_t f = *free_bytes, t = *total;
    virtualize_current(&f, &t);
    *free_bytes = (size_t)f;
    *total = (size_t)t;
    return rc;
}

/* The CUDA 2.x form: the driver's own 32-bit figures, virtualized the same way. */
CUresult cuMemGetInfo(unsigned int *free_bytes, unsigned int *total) {
    REAL_OR_FAIL(cuMemGetInfo);
    CUresult rc = real(free_bytes, total);
    if (rc != CUDA_SUCCESS) return rc;
    uint64_t f = *free_bytes, t = *total;
    virtualize_current(&f, &t);
    *free_bytes = (unsigned int)f; /* never above the 32-bit values the driver gave */
    *total = (unsigned int)t;
    return rc;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    REAL_OR_FAIL(cuDeviceTotalMem_v2);
    CUresult rc = real(bytes, dev);
    if (rc == CUDA_SUCCESS && tf_region_active() == TF_ADMIT_OK) *bytes = (size_t)visible_total(tf_region_device(dev), *bytes);
    return rc;
}

CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev) {
    REAL_OR_FAIL(cuDeviceTotalMem);
    CUresult rc = real(bytes, dev);
    if (rc == CUDA_SUCCESS && tf_region_active() == TF_ADMIT_OK)
        *bytes = (unsigned int)visible_total(tf_region_device(dev), *bytes);
    return rc;
}

/* NVML memory info, both versions: the worker's limit and usage in place of the device's. */
static void virtual_nvml_memory(nvmlDevice_t device, unsigned long long *total, unsigned long long *free,
                                unsigned long long *used) {
    uint64_t f = *free, t = *total;
    virtual_info(tf_region_nvml_device(device), &f, &t, 0); /* the device's view: cached memory is used */
    *total = t;
    *free = f;
    *used = t - f;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    tf_pfn_nvmlDeviceGetMemoryInfo real = TF_REAL(nvmlDeviceGetMemoryInfo);
    if (real == NULL) return NVML_ERROR_UNINITIALIZED;
    nvmlReturn_t rc = real(device, memory);
    if (rc == NVML_SUCCESS && tf_region_active() == TF_ADMIT_OK)
        virtual_nvml_memory(device, &memory->total, &memory->free, &memory->used);
    return rc;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    tf_pfn_nvmlDeviceGetMemoryInfo_v2 real = TF_REAL(nvmlDeviceGetMemoryInfo_v2);
    if (real == NULL) return NVML_ERROR_UNINITIALIZED;
    nvmlReturn_t rc = real(device, memory);
    if (rc == NVML_SUCCESS && tf_region_active() == TF_ADMIT_OK) {
        virtual_nvml_memory(device, &memory->total, &memory->free, &memory->used);
        memory->reserved = 0;
    }
    return rc;
}

/* ---- allocation families ---- */

/* Admits bytes on the current context's device; TF_ADMIT_* with *dev set. */
static int admit_current(uint64_t bytes, int *dev) {
    int active = tf_region_active(), ok;
    *dev = -1;
    if (active != TF_ADMIT_OK) return active;
    *dev = tf_region_current_device(&ok);
    if (ok < 0) return TF_ADMIT_DENY; /* helper missing: fail closed (logged once) */
    if (!ok) return TF_ADMIT_PASS; /* no context: the driver answers INVALID_CONTEXT itself */
    return tf_admit(*dev, bytes);
}

/* Common tail of an allocation: commit (track) on success, undo on failure. */
static CUresult finish(CUresult rc, int admitted, int kind, uint64_t key, uint64_t bytes, int dev) {
    if (admitted != TF_ADMIT_OK) return rc;
    if (rc == CUDA_SUCCESS)
        tf_track(kind, key, bytes, dev);
    else
        tf_admit_undo(dev, bytes);
    return rc;
}

#define ADMIT(bytes_expr)                                              \
    int dev;                                                           \
    uint64_t charged = (bytes_expr);                                   \
    int admitted = admit_current(charged, &dev);                       \
    if (admitted == TF_ADMIT_DENY) return CUDA_ERROR_OUT_OF_MEMORY

/* Movable memory when the worker's limits enable tiering; plain memory otherwise (and when
 * the driver cannot do VMM).  Below the VMM granularity an allocation would take a whole
 * 2 MiB granule: small ones stay plain (pinned; frameworks' caching allocators ask for large
 * blocks). */
static CUresult alloc_movable_or_plain(tf_pfn_cuMemAlloc_v2 real, CUdeviceptr *dptr, size_t bytesize, int admitted,
                                       int dev) {
    CUresult rc = CUDA_ERROR_NOT_SUPPORTED;
    if (admitted == TF_ADMIT_OK && __builtin_expect(tf_tier_flag, 0) && bytesize >= TF_TIER_MIN_BYTES)
        rc = tf_tier_alloc(dptr, bytesize, dev);
    if (rc == CUDA_ERROR_NOT_SUPPORTED) rc = real(dptr, bytesize);
    return rc;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
    REAL_OR_FAIL(cuMemAlloc_v2);
    if (dptr == NULL || bytesize == 0) return real(dptr, bytesize);
    int dev;
    uint64_t charged = bytesize;
    if (__atomic_load_n(&tf_tier_on, __ATOMIC_RELAXED) && bytesize >= TF_TIER_MIN_BYTES &&
        tf_tier_reuse(dptr, bytesize, &dev) == CUDA_SUCCESS) {
        tf_track(TF_ALLOC_PTR, *dptr, charged, dev);
        return CUDA_SUCCESS;
    }
    int admitted = admit_current(charged, &dev);
    /* Memory the cache of freed movable allocations holds never costs the program capacity:
     * refused for want of room (the worker's limit), it is released and the request asked
     * again; the same when the device itself is full. */
    if (__builtin_expect(admitted == TF_ADMIT_DENY, 0) && tf_tier_cache_flush()) admitted = admit_current(charged, &dev);
    if (admitted == TF_ADMIT_DENY) return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = alloc_movable_or_plain(real, dptr, bytesize, admitted, dev);
    if (__builtin_expect(rc == CUDA_ERROR_OUT_OF_MEMORY, 0) && tf_tier_cache_flush())
        rc = alloc_movable_or_plain(real, dptr, bytesize, admitted, dev);
    return finish(rc, admitted, TF_ALLOC_PTR, rc == CUDA_SUCCESS ? *dptr : 0, charged, dev);
}

/* Pitched memory that can move: the driver's own pitch for this row (asked with a one-row
 * allocation, freed at once), times the height, as movable memory.  NOT_SUPPORTED: plain. */
static CUresult tiered_pitch(tf_pfn_cuMemAllocPitch_v2 real, CUdeviceptr *dptr, size_t *pitch, size_t width,
                             size_t height, unsigned int element, int dev) {
    CUdeviceptr probe = 0;
    size_t row = 0;
    tf_pfn_cuMemFree_v2 free_fn = TF_REAL(cuMemFree_v2);
    CUresult rc = real(&probe, &row, width, 1, element);
    if (rc != CUDA_SUCCESS) return rc == CUDA_ERROR_INVALID_VALUE ? rc : CUDA_ERROR_NOT_SUPPORTED;
    if (free_fn != NULL) free_fn(probe);
    if (row < width || height > UINT64_MAX / row) return CUDA_ERROR_NOT_SUPPORTED;
    rc = tf_tier_alloc(dptr, (uint64_t)row * height, dev);
    if (rc == CUDA_SUCCESS) *pitch = row;
    return rc;
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int element) {
    REAL_OR_FAIL(cuMemAllocPitch_v2);
    if (dptr == NULL || pitch == NULL || width == 0 || height == 0) return real(dptr, pitch, width, height, element);
    /* The pitch is only known afterwards: admit the unpadded size, then settle the padding. */
    ADMIT((uint64_t)width * height);
    CUresult rc = CUDA_ERROR_NOT_SUPPORTED;
    if (admitted == TF_ADMIT_OK && __builtin_expect(tf_tier_flag, 0) && charged >= TF_TIER_MIN_BYTES)
        rc = tiered_pitch(real, dptr, pitch, width, height, element, dev);
    if (rc == CUDA_ERROR_NOT_SUPPORTED) rc = real(dptr, pitch, width, height, element);
    if (rc == CUDA_SUCCESS && admitted == TF_ADMIT_OK && *pitch > width) {
        uint64_t extra = (uint64_t)(*pitch - width) * height;
        if (tf_admit(dev, extra) != TF_ADMIT_OK) {
            tf_pfn_cuMemFree_v2 free_fn = TF_REAL(cuMemFree_v2);
            int handled = TF_TIER_NOT_OURS;
            tf_tier_free(*dptr, charged, dev, &handled);
            if (handled == TF_TIER_NOT_OURS && free_fn != NULL) free_fn(*dptr);
            /* the cache of freed allocations keeps what it takes together with its charge */
            if (handled != TF_TIER_CACHED) tf_admit_undo(dev, charged);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        charged += extra;
    }
    return finish(rc, admitted, TF_ALLOC_PTR, rc == CUDA_SUCCESS ? *dptr : 0, charged, dev);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags) {
    REAL_OR_FAIL(cuMemAllocManaged);
    if (dptr == NULL || bytesize == 0) return real(dptr, bytesize, flags);
    ADMIT(bytesize);
    CUresult rc = real(dptr, bytesize, flags);
    return finish(rc, admitted, TF_ALLOC_PTR, rc == CUDA_SUCCESS ? *dptr : 0, charged, dev);
}

/* Stream-ordered allocations: charged on the current context's device when requested, less
 * what their pool kept from earlier frees (already charged). */
static int pool_admit(CUmemoryPool pool, uint64_t size, int *dev, uint64_t *reused) {
    *reused = 0;
    int admitted = admit_current(0, dev);
    if (admitted != TF_ADMIT_OK) return admitted;
    *reused = tf_pool_take(pool, *dev, size);
    if (size > *reused && tf_admit(*dev, size - *reused) == TF_ADMIT_DENY) {
        tf_pool_untake(pool, *reused);
        return TF_ADMIT_DENY;
    }
    return TF_ADMIT_OK;
}

static CUresult pool_finish(CUresult rc, int admitted, CUmemoryPool pool, CUdeviceptr *dptr, uint64_t size, int dev,
                            uint64_t reused) {
    if (admitted != TF_ADMIT_OK) return rc;
    if (rc == CUDA_SUCCESS) {
        tf_track_aux(TF_ALLOC_PTR, *dptr, size, dev, (uint64_t)(uintptr_t)pool);
    } else {
        tf_admit_undo(dev, size - reused);
        tf_pool_untake(pool, reused);
    }
    return rc;
}

/* Captured into a graph (the stream captures): a memory-allocation node that allocates nothing
 * until the graph runs, charged with the graph at instantiation (capture.c); never here too. */
#define ASYNC_ALLOC(symbol, per_thread)                                                        \
    CUresult symbol(CUdeviceptr *dptr, size_t bytesize, CUstream stream) {                     \
        REAL_OR_FAIL(symbol);                                                                  \
        if (dptr == NULL || bytesize == 0 || tf_stream_maybe_capturing(stream, per_thread))    \
            return real(dptr, bytesize, stream);                                               \
        CUmemoryPool pool = tf_region_active() == TF_ADMIT_OK ? tf_pool_current() : NULL;      \
        int dev;                                                                               \
        uint64_t reused;                                                                       \
        int admitted = pool_admit(pool, bytesize, &dev, &reused);                              \
        if (admitted == TF_ADMIT_DENY) return CUDA_ERROR_OUT_OF_MEMORY;                        \
        return pool_finish(real(dptr, bytesize, stream), admitted, pool, dptr, bytesize, dev, reused); \
    }
ASYNC_ALLOC(cuMemAllocAsync, 0)
ASYNC_ALLOC(cuMemAllocAsync_ptsz, 1)

#define POOL_ALLOC(symbol, per_thread)                                                         \
    CUresult symbol(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool, CUstream stream) {  \
        REAL_OR_FAIL(symbol);                                                                  \
        if (dptr == NULL || bytesize == 0 || pool == NULL || tf_stream_maybe_capturing(stream, per_thread)) \
            return real(dptr, bytesize, pool, stream);                                         \
        int dev;                                                                               \
        uint64_t reused;                                                                       \
        int admitted = pool_admit(pool, bytesize, &dev, &reused);                              \
        if (admitted == TF_ADMIT_DENY) return CUDA_ERROR_OUT_OF_MEMORY;                        \
        return pool_finish(real(dptr, bytesize, pool, stream), admitted, pool, dptr, bytesize, dev, reused); \
    }
POOL_ALLOC(cuMemAllocFromPoolAsync, 0)
POOL_ALLOC(cuMemAllocFromPoolAsync_ptsz, 1)

CUresult cuMemPoolSetAttribute(CUmemoryPool pool, int attr, void *value) {
    REAL_OR_FAIL(cuMemPoolSetAttribute);
    CUresult rc = real(pool, attr, value);
    if (rc == CUDA_SUCCESS && attr == 4 /* RELEASE_THRESHOLD */ && value != NULL && tf_region_active() == TF_ADMIT_OK)
        tf_pool_set_threshold(pool, *(const uint64_t *)value);
    return rc;
}

CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep) {
    REAL_OR_FAIL(cuMemPoolTrimTo);
    CUresult rc = real(pool, keep);
    if (rc == CUDA_SUCCESS && tf_region_active() == TF_ADMIT_OK) tf_pool_trim(pool, keep);
    return rc;
}

CUresult cuMemPoolDestroy(CUmemoryPool pool) {
    REAL_OR_FAIL(cuMemPoolDestroy);
    CUresult rc = real(pool);
    if (rc == CUDA_SUCCESS && tf_region_active() == TF_ADMIT_OK) tf_pool_destroyed(pool);
    return rc;
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                     unsigned long long flags) {
    REAL_OR_FAIL(cuMemCreate);
    int active = tf_region_active();
    if (handle == NULL || prop == NULL || size == 0 || active == TF_ADMIT_PASS ||
        (active == TF_ADMIT_OK && prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE))
        return real(handle, size, prop, flags); /* host-located physical memory is not VRAM */
    int dev = active == TF_ADMIT_OK ? tf_region_device(prop->location.id) : -1;
    int admitted = active == TF_ADMIT_OK ? tf_admit(dev, size) : TF_ADMIT_DENY;
    if (admitted == TF_ADMIT_DENY) return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = real(handle, size, prop, flags);
    if (admitted != TF_ADMIT_OK) return rc;
    if (rc == CUDA_SUCCESS)
        tf_vmm_created(*handle, size, dev);
    else
        tf_admit_undo(dev, size);
    return rc;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                  unsigned long long flags) {
    REAL_OR_FAIL(cuMemMap);
    if (tf_region_active() != TF_ADMIT_OK) return real(ptr, size, offset, handle, flags);
    int dev = -1;
    uint64_t need = tf_vmm_growth(handle, (uint64_t)offset + size, &dev); /* imported: charged as mapped */
    if (need != 0 && tf_admit(dev, need) != TF_ADMIT_OK) return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = real(ptr, size, offset, handle, flags);
    if (rc != CUDA_SUCCESS) {
        if (need != 0) tf_admit_undo(dev, need);
        return rc;
    }
    if (need != 0) tf_vmm_grown(handle, need);
    tf_vmm_mapped(ptr, size, handle);
    return rc;
}

CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *os_handle, int type) {
    REAL_OR_FAIL(cuMemImportFromShareableHandle);
    CUresult rc = real(handle, os_handle, type);
    if (rc != CUDA_SUCCESS || handle == NULL) return rc;
    int dev, admitted = admit_current(0, &dev);
    if (admitted == TF_ADMIT_PASS) return rc;
    if (admitted == TF_ADMIT_DENY || !tf_vmm_imported(*handle, dev)) {
        tf_pfn_cuMemRelease release = TF_REAL(cuMemRelease);
        if (release != NULL) release(*handle);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    return rc;
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
    REAL_OR_FAIL(cuMemUnmap);
    CUresult rc = real(ptr, size);
    if (rc == CUDA_SUCCESS && tf_region_active() == TF_ADMIT_OK) tf_vmm_unmapped(ptr, size);
    return rc;
}

CUresult cuArrayCreate_v2(CUarray *array, const CUDA_ARRAY_DESCRIPTOR *d) {
    REAL_OR_FAIL(cuArrayCreate_v2);
    if (array == NULL || d == NULL) return real(array, d);
    ADMIT(tf_array_bytes(d->Width, d->Height, 0, d->Format, d->NumChannels, 1));
    CUresult rc = real(array, d);
    return finish(rc, admitted, TF_ALLOC_ARRAY, rc == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*array : 0, charged, dev);
}

CUresult cuArray3DCreate_v2(CUarray *array, const CUDA_ARRAY3D_DESCRIPTOR *d) {
    REAL_OR_FAIL(cuArray3DCreate_v2);
    if (array == NULL || d == NULL) return real(array, d);
    ADMIT(tf_array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels, 1));
    CUresult rc = real(array, d);
    return finish(rc, admitted, TF_ALLOC_ARRAY, rc == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*array : 0, charged, dev);
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray *array, const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned int levels) {
    REAL_OR_FAIL(cuMipmappedArrayCreate);
    if (array == NULL || d == NULL) return real(array, d, levels);
    ADMIT(tf_array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels, levels));
    CUresult rc = real(array, d, levels);
    return finish(rc, admitted, TF_ALLOC_MIPMAP, rc == CUDA_SUCCESS ? (uint64_t)(uintptr_t)*array : 0, charged, dev);
}

/* Threads the current context's device holds at once (what a stack limit is reserved for). */
static uint64_t resident_threads(void) {
    typedef CUresult (*ctx_dev_fn)(CUdevice *);
    typedef CUresult (*attr_fn)(int *, int, CUdevice);
    ctx_dev_fn get_dev = (ctx_dev_fn)tf_driver_helper("cuCtxGetDevice");
    attr_fn attr = (attr_fn)tf_driver_helper("cuDeviceGetAttribute");
    CUdevice dev;
    int sms = 0, per_sm = 0;
    if (get_dev == NULL || attr == NULL || get_dev(&dev) != CUDA_SUCCESS || attr(&sms, 16, dev) != CUDA_SUCCESS ||
        attr(&per_sm, 39, dev) != CUDA_SUCCESS || sms <= 0 || per_sm <= 0)
        return 2048u * 1024u; /* unknown: a large GPU's worth, never nothing */
    return (uint64_t)sms * (uint64_t)per_sm;
}

/* Raising a limit charges what it reserves (per context and limit) before the driver sees it;
 * lowering it returns the difference once the driver agreed.  A destroyed context's share
 * stays charged until the process ends (conservative). */
CUresult cuCtxSetLimit(int limit, size_t value) {
    REAL_OR_FAIL(cuCtxSetLimit);
    if (limit < CU_LIMIT_STACK_SIZE || limit > CU_LIMIT_MALLOC_HEAP_SIZE || tf_region_active() != TF_ADMIT_OK)
        return real(limit, value);
    typedef CUresult (*ctx_fn)(CUcontext *);
    ctx_fn get_ctx = (ctx_fn)tf_driver_helper("cuCtxGetCurrent");
    CUcontext ctx = NULL;
    int ok;
    int dev = tf_region_current_device(&ok);
    if (ok < 0 || get_ctx == NULL) return CUDA_ERROR_OUT_OF_MEMORY; /* cannot tell whose: fail closed */
    if (!ok || get_ctx(&ctx) != CUDA_SUCCESS || ctx == NULL) return real(limit, value);
    uint64_t key = (uint64_t)(uintptr_t)ctx + (uint64_t)limit, before = 0, after;
    int tracked = tf_untrack(TF_CTX_LIMIT, key, &before, &dev) ? 1 : 0;
    if (!tracked) dev = tf_region_current_device(&ok);
    after = tf_limit_reserved(limit, value, resident_threads());
    if (after > before && tf_admit(dev, after - before) == TF_ADMIT_DENY) {
        if (tracked) tf_track(TF_CTX_LIMIT, key, before, dev);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CUresult rc = real(limit, value);
    uint64_t kept = rc == CUDA_SUCCESS ? after : before;
    if (after > before && rc != CUDA_SUCCESS) tf_admit_undo(dev, after - before);
    if (after < before && rc == CUDA_SUCCESS) tf_release(dev, before - after);
    if (kept != 0) tf_track(TF_CTX_LIMIT, key, kept, dev);
    return rc;
}

/* The CUDA 2.x forms with 32-bit pointers and sizes: no modern program uses them, and their
 * frees cannot be told apart from the current ones, so under a region they are refused
 * rather than left as a way around the limit. */
CUresult cuMemAlloc(unsigned int *dptr, unsigned int bytesize) {
    REAL_OR_FAIL(cuMemAlloc);
    return tf_region_active() == TF_ADMIT_PASS ? real(dptr, bytesize) : CUDA_ERROR_NOT_SUPPORTED;
}
CUresult cuMemAllocPitch(unsigned int *dptr, unsigned int *pitch, unsigned int width, unsigned int height,
                         unsigned int element) {
    REAL_OR_FAIL(cuMemAllocPitch);
    return tf_region_active() == TF_ADMIT_PASS ? real(dptr, pitch, width, height, element) : CUDA_ERROR_NOT_SUPPORTED;
}
CUresult cuArrayCreate(CUarray *array, const void *desc) {
    REAL_OR_FAIL(cuArrayCreate);
    return tf_region_active() == TF_ADMIT_PASS ? real(array, desc) : CUDA_ERROR_NOT_SUPPORTED;
}
CUresult cuArray3DCreate(CUarray *array, const void *desc) {
    REAL_OR_FAIL(cuArray3DCreate);
    return tf_region_active() == TF_ADMIT_PASS ? real(array, desc) : CUDA_ERROR_NOT_SUPPORTED;
}

/* Frees of 32-bit pointers: nothing under a region was allocated that way (see above). */
CUresult cuMemFree(unsigned int dptr) {
    REAL_OR_FAIL(cuMemFree);
    return real(dptr);
}

/* ---- free paths: the record is taken before the driver frees (so the address cannot be
 * handed out and tracked again in between) and put back if the driver refuses ---- */

/* Memory from a stream-ordered pool goes back to the pool (pools.c), the rest to the worker. */
#define FREE_BODY(kind, key, call)                                     \
    uint64_t bytes = 0, pool = 0;                                      \
    int dev = -1;                                                      \
    int tracked = tf_untrack_aux(kind, key, &bytes, &dev, &pool);      \
    CUresult rc = call;                                                \
    if (tracked) {                                                     \
        if (rc != CUDA_SUCCESS)                                        \
            tf_track_aux(kind, key, bytes, dev, pool);                 \
        else if (pool != 0)                                            \
            tf_freed_aux(pool, dev, bytes);                            \
        else                                                           \
            tf_release(dev, bytes);                                    \
    }                                                                  \
    return rc

/* FREE_BODY for a process with movable memory: a movable allocation may go to the cache of
 * freed allocations, which then keeps its charge (tier.c). */
static CUresult tiered_free(tf_pfn_cuMemFree_v2 real, CUdeviceptr dptr) {
    uint64_t bytes = 0, pool = 0;
    int dev = -1, handled;
    int tracked = tf_untrack_aux(TF_ALLOC_PTR, dptr, &bytes, &dev, &pool);
    CUresult rc = tf_tier_free(dptr, tracked ? bytes : 0, dev, &handled);
    if (handled == TF_TIER_NOT_OURS) rc = real(dptr);
    if (tracked) {
        if (rc != CUDA_SUCCESS)
            tf_track_aux(TF_ALLOC_PTR, dptr, bytes, dev, pool);
        else if (pool != 0)
            tf_freed_aux(pool, dev, bytes);
        else if (handled != TF_TIER_CACHED)
            tf_release(dev, bytes);
    }
    return rc;
}

CUresult cuMemFree_v2(CUdeviceptr dptr) {
    REAL_OR_FAIL(cuMemFree_v2);
    if (__builtin_expect(__atomic_load_n(&tf_tier_on, __ATOMIC_RELAXED), 0)) return tiered_free(real, dptr);
    FREE_BODY(TF_ALLOC_PTR, dptr, real(dptr));
}

/* Returned to the worker when the free is issued, not when the stream reaches it. */
CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream) {
    REAL_OR_FAIL(cuMemFreeAsync);
    FREE_BODY(TF_ALLOC_PTR, dptr, real(dptr, stream));
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream) {
    REAL_OR_FAIL(cuMemFreeAsync_ptsz);
    FREE_BODY(TF_ALLOC_PTR, dptr, real(dptr, stream));
}

/* Returned at release only when nothing maps it any more; else at the last unmap. */
CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
    REAL_OR_FAIL(cuMemRelease);
    int ours = __atomic_load_n(tf_region_loaded_flag, __ATOMIC_ACQUIRE) && tf_vmm_release_mark(handle);
    CUresult rc = real(handle);
    if (ours) tf_vmm_release_done(handle, rc == CUDA_SUCCESS);
    return rc;
}

CUresult cuArrayDestroy(CUarray array) {
    REAL_OR_FAIL(cuArrayDestroy);
    FREE_BODY(TF_ALLOC_ARRAY, (uint64_t)(uintptr_t)array, real(array));
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray array) {
    REAL_OR_FAIL(cuMipmappedArrayDestroy);
    FREE_BODY(TF_ALLOC_MIPMAP, (uint64_t)(uintptr_t)array, real(array));
}

/* Imported memory is charged to the importer from open to close: the exporter's free does not
 * end it.  Its size is known only once open (cuMemGetAddressRange): admitted then, and closed
 * (close_fn: cuIpcCloseMemHandle, or cuMemFree for a pool import) again when it does not fit.
 * Memory a process of the same worker exported (ident: the handle's bytes) is already
 * charged to the worker: the import joins its shared entry instead, whatever the limit. */
static CUresult ipc_opened(CUresult rc, CUdeviceptr *dptr, tf_pfn_cuIpcCloseMemHandle close_fn, int kind,
                           const void *ident, size_t ident_len) {
    int active = rc == CUDA_SUCCESS ? tf_region_active() : TF_ADMIT_PASS, ok = 0;
    if (active == TF_ADMIT_PASS) return rc;
    int dev = active == TF_ADMIT_OK ? tf_region_current_device(&ok) : -1;
    if (active == TF_ADMIT_OK && ok == 0) return rc; /* no context: nothing was mapped here */
    typedef CUresult (*range_fn)(CUdeviceptr *, size_t *, CUdeviceptr);
    range_fn range = (range_fn)tf_driver_helper("cuMemGetAddressRange");
    CUdeviceptr base;
    size_t size = 0;
    if (dev >= 0 && range != NULL && range(&base, &size, *dptr) == CUDA_SUCCESS) {
        int entry = tf_shared_import(ident, ident_len, dev, size);
        if (entry >= 0) {
            tf_track_aux(kind, *dptr, size, dev, TF_SHARED_MARK | (uint64_t)entry);
            return rc;
        }
        if (tf_admit(dev, size) == TF_ADMIT_OK) {
            tf_track(kind, *dptr, size, dev);
            return rc;
        }
    }
    if (close_fn != NULL) close_fn(*dptr); /* unknown size or over the limit: never free */
    return CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuIpcOpenMemHandle(CUdeviceptr *dptr, CUipcMemHandle handle, unsigned int flags) {
    REAL_OR_FAIL(cuIpcOpenMemHandle);
    return ipc_opened(real(dptr, handle, flags), dptr, TF_REAL(cuIpcCloseMemHandle), TF_ALLOC_IPC, handle.reserved,
                      sizeof handle.reserved);
}

CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *dptr, CUipcMemHandle handle, unsigned int flags) {
    REAL_OR_FAIL(cuIpcOpenMemHandle_v2);
    return ipc_opened(real(dptr, handle, flags), dptr, TF_REAL(cuIpcCloseMemHandle), TF_ALLOC_IPC, handle.reserved,
                      sizeof handle.reserved);
}

CUresult cuIpcCloseMemHandle(CUdeviceptr dptr) {
    REAL_OR_FAIL(cuIpcCloseMemHandle);
    FREE_BODY(TF_ALLOC_IPC, dptr, real(dptr));
}

/* Freed like any device pointer (cuMemFree, cuMemFreeAsync): tracked as one, and undone so. */
CUresult cuMemPoolImportPointer(CUdeviceptr *dptr, CUmemoryPool pool, CUmemPoolPtrExportData *data) {
    REAL_OR_FAIL(cuMemPoolImportPointer);
    CUmemPoolPtrExportData ident; /* read before the call: the driver may not keep it */
    if (data != NULL) memcpy(&ident, data, sizeof ident);
    else memset(&ident, 0, sizeof ident);
    return ipc_opened(real(dptr, pool, data), dptr, TF_REAL(cuMemFree_v2), TF_ALLOC_PTR, ident.reserved,
                      sizeof ident.reserved);
}

/* The exporter's side of a pool pointer: its charge moves into the worker's shared table. */
CUresult cuMemPoolExportPointer(CUmemPoolPtrExportData *data, CUdeviceptr ptr) {
    REAL_OR_FAIL(cuMemPoolExportPointer);
    CUresult rc = real(data, ptr);
    if (rc == CUDA_SUCCESS && data != NULL) tf_shared_export(ptr, data->reserved, sizeof data->reserved);
    return rc;
}

/* ---- launches: compute admission, then the driver ----
 * Without a rate the hot path is the real pointer's load, a few loads of the region's rate
 * (inline) and a tail jump to the driver.  Under a rate, and on the first call (before the
 * real pointer is known), an out-of-line function admits the launch (one fetch-add on the
 * bucket) and then calls the driver.  Both paths are tail calls, so the hook spills nothing.  The cost is charged before the driver sees the
 * launch: a launch the driver then rejects has still spent its tokens (it was asked for).
 * A launch into a capturing stream only records a graph node: the graph's launch pays for it
 * (the admission path asks the driver only while a capture is in progress, capture.c). */

/* The tiering gate's functions around a driver call (tf_tier_flag_up): inline fast path; the first call
 * of a thread, a frozen process and an unknown real pointer go to symbol##_gate_slow. */
#define TF_GATE_FNS(symbol, params, args)                                                        \
    static __attribute__((noinline)) CUresult symbol##_gate_slow params {                     \
        tf_pfn_##symbol real = TF_REAL(symbol);                                               \
        if (real == NULL) return CUDA_ERROR_NOT_INITIALIZED;                                  \
        if (tf_tier_enter() != 0) return CUDA_ERROR_OUT_OF_MEMORY;                            \
        CUresult rc = real args;                                                              \
        tf_tier_leave();                                                                      \
        return rc;                                                                            \
    }                                                                                         \
    /* Called with this thread's flag up: the driver, then the flag's clearing store. */       \
    static __attribute__((noinline)) CUresult symbol##_flagged params {                       \
        tf_pfn_##symbol real =                                                                \
            (tf_pfn_##symbol)__atomic_load_n(&tf_hooks[TF_HOOK_IDX_##symbol].real, __ATOMIC_RELAXED); \
        CUresult rc = real args;                                                              \
        tf_tier_flag_down();                                                                  \
        return rc;                                                                            \
    }                                                                                         \
    /* Inline in the hook, whose real pointer is known: only tail calls, so it saves nothing. */ \
    static inline CUresult symbol##_gate params {                                             \
        if (__builtin_expect(tf_tier_flag_up(), 1)) return symbol##_flagged args;             \
        return symbol##_gate_slow args;                                                       \
    }

#define TF_ADMITTED(symbol, params, args, cost, stream, per_thread)               \
    TF_GATE_FNS(symbol, params, args)                                              \
    static __attribute__((noinline)) CUresult symbol##_admit params {              \
        tf_pfn_##symbol real = TF_REAL(symbol);                                    \
        if (real == NULL) return CUDA_ERROR_NOT_INITIALIZED;                       \
        if (!tf_stream_maybe_capturing(stream, per_thread)) tf_launch_admit(cost); \
        if (__atomic_load_n(&tf_tier_on, __ATOMIC_RELAXED)) return symbol##_gate args; \
        return real args;                                                          \
    }                                                                              \
    /* No rate: the driver by a tail jump, through the gate with movable memory. */ \
    CUresult symbol params {                                                       \
        tf_pfn_##symbol real =                                                     \
            (tf_pfn_##symbol)__atomic_load_n(&tf_hooks[TF_HOOK_IDX_##symbol].real, __ATOMIC_ACQUIRE); \
        if (__builtin_expect(real == NULL || tf_launch_maybe_limited(), 0)) return symbol##_admit args; \
        if (__builtin_expect(__atomic_load_n(&tf_tier_on, __ATOMIC_RELAXED), 0)) return symbol##_gate args; \
        return real args;                                                          \
    }

#define LAUNCH_PARAMS                                                                                  \
    (CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, \
     unsigned int bz, unsigned int shmem, CUstream stream, void **params, void **extra)
#define LAUNCH_ARGS (f, gx, gy, gz, bx, by, bz, shmem, stream, params, extra)
#define COOP_PARAMS                                                                                    \
    (CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, \
     unsigned int bz, unsigned int shmem, CUstream stream, void **params)
#define COOP_ARGS (f, gx, gy, gz, bx, by, bz, shmem, stream, params)
#define EX_PARAMS (const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
#define EX_ARGS (config, f, params, extra)
#define GRID_COST tf_launch_cost(gx, gy, gz, bx, by, bz)
#define EX_COST                                                                                         \
    (config == NULL ? 0                                                                                 \
                    : tf_launch_cost(config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX, \
                                     config->blockDimY, config->blockDimZ))

#define EX_STREAM (config == NULL ? CU_STREAM_LEGACY : config->hStream)

TF_ADMITTED(cuLaunchKernel, LAUNCH_PARAMS, LAUNCH_ARGS, GRID_COST, stream, 0)
TF_ADMITTED(cuLaunchKernel_ptsz, LAUNCH_PARAMS, LAUNCH_ARGS, GRID_COST, stream, 1)
TF_ADMITTED(cuLaunchCooperativeKernel, COOP_PARAMS, COOP_ARGS, GRID_COST, stream, 0)
TF_ADMITTED(cuLaunchCooperativeKernel_ptsz, COOP_PARAMS, COOP_ARGS, GRID_COST, stream, 1)
TF_ADMITTED(cuLaunchKernelEx, EX_PARAMS, EX_ARGS, EX_COST, EX_STREAM, 0)
TF_ADMITTED(cuLaunchKernelEx_ptsz, EX_PARAMS, EX_ARGS, EX_COST, EX_STREAM, 1)
/* A graph launched into a capturing stream becomes a child-graph node of the captured graph,
 * whose cost walk includes it. */
TF_ADMITTED(cuGraphLaunch, (CUgraphExec exec, CUstream stream), (exec, stream), tf_graph_cost(exec), stream, 0)

/* ---- the CUDA 2.x launch calls: grid from the call, block shape from cuFuncSetBlockShape ---- */

CUresult cuFuncSetBlockShape(CUfunction f, int x, int y, int z) {
    REAL_OR_FAIL(cuFuncSetBlockShape);
    CUresult rc = real(f, x, y, z);
    if (rc == CUDA_SUCCESS && tf_region_active() == TF_ADMIT_OK) {
        uint64_t old;
        int dev;
        (void)tf_untrack(TF_BLOCK_SHAPE, (uint64_t)(uintptr_t)f, &old, &dev);
        /* the driver accepted it: each side is at most 1024, so 21 bits hold it */
        tf_track(TF_BLOCK_SHAPE, (uint64_t)(uintptr_t)f,
                 (uint64_t)(unsigned)x | (uint64_t)(unsigned)y << 21 | (uint64_t)(unsigned)z << 42, -1);
    }
    return rc;
}

static uint64_t legacy_cost(CUfunction f, int gw, int gh) {
    uint64_t shape = 0x200001ULL | 1ULL << 42; /* unknown shape: at least one thread a block */
    (void)tf_lookup(TF_BLOCK_SHAPE, (uint64_t)(uintptr_t)f, &shape);
    unsigned int mask = (1u << 21) - 1;
    return tf_launch_cost(gw > 0 ? (unsigned)gw : 0, gh > 0 ? (unsigned)gh : 0, 1, (unsigned)shape & mask,
                          (unsigned)(shape >> 21) & mask, (unsigned)(shape >> 42) & mask);
}

/* Every device's part charged where the call is made: never free, if not per device. */
static uint64_t multi_device_cost(const CUDA_LAUNCH_PARAMS *list, unsigned int count) {
    uint64_t total = 0;
    for (unsigned int i = 0; list != NULL && i < count; i++) {
        const CUDA_LAUNCH_PARAMS *p = &list[i];
        uint64_t c = tf_launch_cost(p->gridDimX, p->gridDimY, p->gridDimZ, p->blockDimX, p->blockDimY, p->blockDimZ);
        total = total + c > TF_COMPUTE_COST_MAX ? TF_COMPUTE_COST_MAX : total + c;
    }
    return total;
}

TF_ADMITTED(cuLaunch, (CUfunction f), (f), legacy_cost(f, 1, 1), CU_STREAM_LEGACY, 0)
TF_ADMITTED(cuLaunchGrid, (CUfunction f, int gw, int gh), (f, gw, gh), legacy_cost(f, gw, gh), CU_STREAM_LEGACY, 0)
TF_ADMITTED(cuLaunchGridAsync, (CUfunction f, int gw, int gh, CUstream stream), (f, gw, gh, stream),
            legacy_cost(f, gw, gh), stream, 0)
/* Per-device streams in the list: a capture of one of them is rare; charged (never free). */
TF_ADMITTED(cuLaunchCooperativeKernelMultiDevice, (CUDA_LAUNCH_PARAMS * list, unsigned int count, unsigned int flags),
            (list, count, flags), multi_device_cost(list, count), CU_STREAM_LEGACY, 0)
TF_ADMITTED(cuGraphLaunch_ptsz, (CUgraphExec exec, CUstream stream), (exec, stream), tf_graph_cost(exec), stream, 1)

/* ---- stream capture: the count of captures in progress gates the hooks' capture checks ---- */

#define BEGIN_CAPTURE(symbol, params, args)                                        \
    CUresult symbol params {                                                       \
        REAL_OR_FAIL(symbol);                                                      \
        CUresult rc = real args;                                                   \
        tf_capture_begun(rc);                                                      \
        return rc;                                                                 \
    }
BEGIN_CAPTURE(cuStreamBeginCapture, (CUstream stream), (stream))
BEGIN_CAPTURE(cuStreamBeginCapture_ptsz, (CUstream stream), (stream))
BEGIN_CAPTURE(cuStreamBeginCapture_v2, (CUstream stream, int mode), (stream, mode))
BEGIN_CAPTURE(cuStreamBeginCapture_v2_ptsz, (CUstream stream, int mode), (stream, mode))
#define TO_GRAPH_PARAMS \
    (CUstream stream, CUgraph graph, const CUgraphNode *deps, const CUgraphEdgeData *edges, size_t ndeps, int mode)
BEGIN_CAPTURE(cuStreamBeginCaptureToGraph, TO_GRAPH_PARAMS, (stream, graph, deps, edges, ndeps, mode))
BEGIN_CAPTURE(cuStreamBeginCaptureToGraph_ptsz, TO_GRAPH_PARAMS, (stream, graph, deps, edges, ndeps, mode))

/* Ended when the stream captured before the call and does not after it (a refused end, from
 * the wrong thread say, leaves the capture going). */
#define END_CAPTURE(symbol, per_thread)                                            \
    CUresult symbol(CUstream stream, CUgraph *graph) {                             \
        REAL_OR_FAIL(symbol);                                                      \
        int was = tf_stream_maybe_capturing(stream, per_thread);                   \
        CUresult rc = real(stream, graph);                                         \
        tf_capture_ended(was, stream, per_thread);                                 \
        return rc;                                                                 \
    }
END_CAPTURE(cuStreamEndCapture, 0)
END_CAPTURE(cuStreamEndCapture_ptsz, 1)

/* ---- graph executables: their launch cost is computed once, when instantiated, and the
 * memory their allocation nodes make is charged then (worst case, until destroyed) ---- */

static CUresult graph_instantiated(CUresult rc, CUgraphExec *exec, CUgraph graph) {
    if (rc != CUDA_SUCCESS || exec == NULL || tf_graph_instantiated(*exec, graph) != TF_ADMIT_DENY) return rc;
    tf_pfn_cuGraphExecDestroy destroy = TF_REAL(cuGraphExecDestroy);
    if (destroy != NULL) destroy(*exec);
    *exec = NULL;
    return CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuGraphInstantiate(CUgraphExec *exec, CUgraph graph, CUgraphNode *error_node, char *log, size_t log_size) {
    REAL_OR_FAIL(cuGraphInstantiate);
    CUresult rc = real(exec, graph, error_node, log, log_size);
    return graph_instantiated(rc, exec, graph);
}

CUresult cuGraphInstantiate_v2(CUgraphExec *exec, CUgraph graph, CUgraphNode *error_node, char *log,
                               size_t log_size) {
    REAL_OR_FAIL(cuGraphInstantiate_v2);
    CUresult rc = real(exec, graph, error_node, log, log_size);
    return graph_instantiated(rc, exec, graph);
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph graph, unsigned long long flags) {
    REAL_OR_FAIL(cuGraphInstantiateWithFlags);
    CUresult rc = real(exec, graph, flags);
    return graph_instantiated(rc, exec, graph);
}

CUresult cuGraphInstantiateWithParams(CUgraphExec *exec, CUgraph graph, CUDA_GRAPH_INSTANTIATE_PARAMS *params) {
    REAL_OR_FAIL(cuGraphInstantiateWithParams);
    CUresult rc = real(exec, graph, params);
    return graph_instantiated(rc, exec, graph);
}

CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *exec, CUgraph graph, CUDA_GRAPH_INSTANTIATE_PARAMS *params) {
    REAL_OR_FAIL(cuGraphInstantiateWithParams_ptsz);
    CUresult rc = real(exec, graph, params);
    return graph_instantiated(rc, exec, graph);
}

/* The record goes first: the handle may be reused by the next instantiation. */
CUresult cuGraphExecDestroy(CUgraphExec exec) {
    REAL_OR_FAIL(cuGraphExecDestroy);
    tf_graph_destroyed(exec);
    return real(exec);
}

/* Legacy IPC: the exported allocation's charge moves into the worker's shared table, so that
 * an import by another process of the worker is not charged again.  The driver refuses it
 * for movable (VMM) memory: say once what to do about it. */
CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr dptr) {
    REAL_OR_FAIL(cuIpcGetMemHandle);
    CUresult rc = real(handle, dptr);
    if (rc == CUDA_SUCCESS && handle != NULL) tf_shared_export(dptr, handle->reserved, sizeof handle->reserved);
    static int told;
    if (rc != CUDA_SUCCESS && tf_tier_is_movable(dptr) && !__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
        tf_log(TF_LOG_WARN, "cuIpcGetMemHandle: this worker's memory can move (VRAM tiering), which legacy IPC "
                            "cannot share; annotate the workload tensor-fusion.ai/vram-tiering: \"false\"");
    return rc;
}

/* ---- VRAM tiering: calls that touch device memory resume a frozen process first ----
 * Without movable memory: one load and a tail call.  The calls are the TF_GATE rows of
 * hooks.def (launches pass the same gate in TF_ADMITTED). */
#define TF_GATED(symbol, params, args)                                                        \
    TF_GATE_FNS(symbol, params, args)                                                        \
    CUresult symbol params {                                                                 \
        tf_pfn_##symbol real =                                                               \
            (tf_pfn_##symbol)__atomic_load_n(&tf_hooks[TF_HOOK_IDX_##symbol].real, __ATOMIC_ACQUIRE); \
        if (__builtin_expect(real == NULL, 0)) return symbol##_gate_slow args;                \
        if (__builtin_expect(__atomic_load_n(&tf_tier_on, __ATOMIC_RELAXED), 0))              \
            return symbol##_gate args;                                                       \
        return real args;                                                                    \
    }
/* One gated hook per TF_GATE row of hooks.def. */
#define TF_HOOK(base, symbol, ret, params, args)
#define TF_GATE(base, symbol, ret, params, args) TF_GATED(symbol, params, args)
#include "tf/hooks.def"
#undef TF_GATE
#undef TF_HOOK
