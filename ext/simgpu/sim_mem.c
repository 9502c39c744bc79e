/*
 * Simulated device memory.  SIMULATED: "device" memory is host memory (an mmap per
 * allocation, lazily backed), so bytes copied in come back out; device pointers are host
 * addresses, 256-byte aligned or better.  Physical use is charged to the machine-wide state
 * in 2 MiB granules (sim_state.c), so every process sees the same free memory.
 *
 * Async forms (copies, memsets, cuMemAllocAsync/cuMemFreeAsync) move the bytes when called
 * and order their completion on the stream: since simulated kernels never touch memory, no
 * program can observe the difference from executing them at their stream position.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sim_cuda.h"

enum kind { K_DEVICE = 1, K_MANAGED, K_HOST, K_PHYS, K_RESERVE, K_MAPPED, K_ARRAY, K_MIPMAP, K_IPC };

typedef struct record {
    uint64_t key;     /* device pointer, handle or array address */
    uint64_t size;    /* bytes asked for (mapping length for K_RESERVE/K_MAPPED) */
    int kind;
    int physical;     /* device charged, -1 for none */
    int fd;           /* K_PHYS: memfd backing it */
    uint64_t handle;  /* K_MAPPED: the physical allocation mapped there */
    int maps;         /* K_PHYS: live mappings of it */
    int released;     /* K_PHYS: cuMemRelease was called; it lives on while mapped */
    struct CUmemPoolHandle_st *pool; /* K_DEVICE from a stream-ordered pool: it goes back there */
    int host;         /* K_PHYS / K_MAPPED: host-located physical memory (not device VRAM) */
    uint64_t serial;  /* unique in this process, set by add_record: IPC handles name it, as a
                       * driver's name the allocation, so a freed one's handle never matches
                       * a later allocation at the same address */
} record;

/* Host-located VMM memory of this process: bytes, against TF_SIM_HOST_MEM, and the bytes of it
 * mapped (the kernel slowdown model reads the share of this process's memory on the host). */
static uint64_t host_created, host_mapped;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* process-local only */
static record *records;
static size_t count, capacity;

static uint64_t last_serial; /* atomic */

static int add_record(record r) {
    r.serial = __atomic_add_fetch(&last_serial, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&lock);
    if (count == capacity) {
        size_t cap = capacity ? capacity * 2 : 64;
        record *grown = realloc(records, cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&lock);
            return 0;
        }
        records = grown;
        capacity = cap;
    }
    records[count++] = r;
    pthread_mutex_unlock(&lock);
    return 1;
}

/* Removes the record of key and kind into *out; 0 when there is none. */
static int take_record(uint64_t key, int kind, record *out) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = count; i-- > 0;)
        if (records[i].key == key && records[i].kind == kind && !records[i].released) {
            *out = records[i];
            records[i] = records[--count];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

static int find_record(uint64_t key, int kind, record *out) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++)
        if (records[i].key == key && records[i].kind == kind && !records[i].released) {
            *out = records[i];
            found = 1;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

int tf_mem_contains(CUdeviceptr ptr, uint64_t bytes) {
    int ok = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !ok; i++) {
        const record *r = &records[i];
        if (r->kind != K_DEVICE && r->kind != K_MANAGED && r->kind != K_HOST && r->kind != K_MAPPED && r->kind != K_IPC)
            continue;
        ok = ptr >= r->key && bytes <= r->size && ptr - r->key <= r->size - bytes;
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

/* Reserved VA with nothing mapped there: a real GPU's copy engine or kernel faults on it and
 * the call reports CUDA_ERROR_ILLEGAL_ADDRESS; here the range is PROT_NONE, so the simulator
 * must refuse before touching it. */
int tf_mem_unmapped(CUdeviceptr ptr, uint64_t bytes) {
    int reserved = 0, mapped = 0;
    if (bytes == 0) return 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count; i++) {
        const record *r = &records[i];
        if (r->kind == K_RESERVE && ptr < r->key + r->size && r->key < ptr + bytes) reserved = 1;
        if (r->kind == K_MAPPED && ptr >= r->key && bytes <= r->size && ptr - r->key <= r->size - bytes) mapped = 1;
    }
    pthread_mutex_unlock(&lock);
    return reserved && !mapped;
}

int tf_mem_find(CUdeviceptr ptr, tf_mem_range *out) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++) {
        const record *r = &records[i];
        if (r->kind != K_DEVICE && r->kind != K_MANAGED && r->kind != K_HOST && r->kind != K_MAPPED) continue;
        if (ptr < r->key || ptr - r->key >= r->size) continue;
        *out = (tf_mem_range){r->key, r->size, r->kind == K_HOST || r->host, r->kind == K_MANAGED, r->physical};
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

/* A few freed mappings are kept for reuse, as a driver keeps its heap: it spares every
 * alloc/free pair two syscalls, so the simulator's call costs stay small and steady (the
 * shim benchmark measures against them).  Like cuMemAlloc, reused memory is not zeroed. */
#define SPARE_COUNT 16
#define SPARE_MAX_BYTES (64ULL << 20)
static struct {
    void *p;
    uint64_t size;
} spares[SPARE_COUNT];
static int spare_count;

static void *map_bytes(uint64_t size) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < spare_count; i++)
        if (spares[i].size == size) {
            void *p = spares[i].p;
            spares[i] = spares[--spare_count];
            pthread_mutex_unlock(&lock);
            return p;
        }
    pthread_mutex_unlock(&lock);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void unmap_bytes(void *p, uint64_t size) {
    pthread_mutex_lock(&lock);
    if (size <= SPARE_MAX_BYTES && spare_count < SPARE_COUNT) {
        spares[spare_count].p = p;
        spares[spare_count++].size = size;
        p = NULL;
    }
    pthread_mutex_unlock(&lock);
    if (p != NULL) munmap(p, size);
}

/* Allocates size bytes of kind on the current context's device. */
static CUresult alloc(CUdeviceptr *dptr, uint64_t size, int kind) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (dptr == NULL || size == 0) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_sim_charge(c->physical, size)) return CUDA_ERROR_OUT_OF_MEMORY;
    void *p = map_bytes(size);
    if (p == NULL || !add_record((record){(uint64_t)(uintptr_t)p, size, kind, c->physical, -1, 0, 0, 0, NULL, 0, 0})) {
        if (p != NULL) unmap_bytes(p, size);
        tf_sim_uncharge(c->physical, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

static void pool_free(struct CUmemPoolHandle_st *pool, uint64_t size);

static CUresult release(uint64_t key, int kind) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    record r;
    if (!take_record(key, kind, &r)) return CUDA_ERROR_INVALID_VALUE;
    if (kind == K_DEVICE || kind == K_MANAGED || kind == K_HOST)
        unmap_bytes((void *)(uintptr_t)r.key, r.size);
    else if (kind == K_RESERVE)
        munmap((void *)(uintptr_t)r.key, r.size);
    if (r.pool != NULL) {
        pool_free(r.pool, r.size);
        return CUDA_SUCCESS;
    }
    if (r.physical >= 0) tf_sim_uncharge(r.physical, r.size);
    return CUDA_SUCCESS;
}

/* Unsafe during capture: a capture that prohibits it is invalidated (sim_capture.c). */
TF_SIM_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) {
    CUresult rc = tf_capture_sync_guard(NULL);
    return rc != CUDA_SUCCESS ? rc : alloc(dptr, size, K_DEVICE);
}

TF_SIM_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
                                       unsigned int element) {
    if (pitch == NULL || width == 0 || height == 0 || (element != 4 && element != 8 && element != 16))
        return CUDA_ERROR_INVALID_VALUE;
    size_t p = (width + 511) / 512 * 512; /* rows aligned to 512 bytes */
    if (height > SIZE_MAX / p) return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = alloc(dptr, (uint64_t)p * height, K_DEVICE);
    if (rc == CUDA_SUCCESS) *pitch = p;
    return rc;
}

TF_SIM_API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t size, unsigned int flags) {
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST) return CUDA_ERROR_INVALID_VALUE;
    return alloc(dptr, size, K_MANAGED);
}

TF_SIM_API CUresult cuMemFree_v2(CUdeviceptr ptr) {
    if (ptr == 0) return tf_need_init(); /* freeing NULL is a no-op */
    CUresult rc = release(ptr, K_DEVICE);
    return rc == CUDA_ERROR_INVALID_VALUE ? release(ptr, K_MANAGED) : rc;
}

/* Stream-ordered pools: the default pool of each device, and created ones.  A free returns
 * the bytes to the pool, which keeps them (still charged to the device, reused first by its
 * next allocations) up to its release threshold, like the driver's pools; the rest goes back
 * to the device.  cuMemPoolTrimTo gives back what is kept beyond what the caller wants kept.
 * SIMULATED: kept bytes are fungible (no fragmentation), and the excess goes back at the free
 * rather than at the next synchronization. */
#define CU_MEMPOOL_ATTR_RELEASE_THRESHOLD 4
#define CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT 5
#define CU_MEMPOOL_ATTR_USED_MEM_CURRENT 7
struct CUmemPoolHandle_st {
    int ordinal;
    int physical;       /* device its memory is charged to */
    uint64_t threshold; /* release threshold (bytes kept after frees) */
    uint64_t kept;      /* freed bytes it still holds (charged) */
    uint64_t used;      /* bytes allocated from it and not freed */
    int exportable, imported; /* created for POSIX descriptors; imported from one (no allocations) */
};
static struct CUmemPoolHandle_st default_pools[TF_SIM_MAX_DEVICES];

/* Freed pool memory: kept up to the threshold, the rest back to the device. */
static void pool_free(struct CUmemPoolHandle_st *pool, uint64_t size) {
    pthread_mutex_lock(&lock);
    pool->used = pool->used > size ? pool->used - size : 0;
    pool->kept += size;
    if (pool->kept > pool->threshold) {
        tf_sim_uncharge(pool->physical, pool->kept - pool->threshold);
        pool->kept = pool->threshold;
    }
    pthread_mutex_unlock(&lock);
}

/* Gives back what the pool keeps beyond `keep` (lock held). */
static void pool_trim(CUmemoryPool pool, uint64_t keep) {
    if (pool->kept <= keep) return;
    tf_sim_uncharge(pool->physical, pool->kept - keep);
    pool->kept = keep;
}

TF_SIM_API CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool, CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pool == NULL) return CUDA_ERROR_INVALID_VALUE;
    int physical = tf_physical(dev);
    if (physical < 0) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&lock);
    default_pools[dev].ordinal = dev;
    default_pools[dev].physical = physical;
    pthread_mutex_unlock(&lock);
    *pool = &default_pools[dev];
    return CUDA_SUCCESS;
}
TF_SIM_API CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev) { return cuDeviceGetDefaultMemPool(pool, dev); }

TF_SIM_API CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemAllocationProp *props) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pool == NULL || props == NULL || props->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    int physical = tf_physical(props->location.id);
    if (physical < 0) return CUDA_ERROR_INVALID_DEVICE;
    CUmemoryPool p = calloc(1, sizeof *p);
    if (p == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    p->ordinal = props->location.id;
    p->physical = physical;
    p->exportable = (props->requestedHandleTypes & 1) != 0; /* CUmemPoolProps.handleTypes */
    *pool = p;
    return CUDA_SUCCESS;
}

static int is_default_pool(CUmemoryPool pool) {
    return pool >= &default_pools[0] && pool < &default_pools[TF_SIM_MAX_DEVICES];
}

TF_SIM_API CUresult cuMemPoolDestroy(CUmemoryPool pool) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pool == NULL || is_default_pool(pool)) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    pool_trim(pool, 0);
    pthread_mutex_unlock(&lock);
    free(pool); /* allocations still out of it: the simulator keeps them charged until freed */
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemPoolSetAttribute(CUmemoryPool pool, int attr, void *value) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pool == NULL || value == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (attr != CU_MEMPOOL_ATTR_RELEASE_THRESHOLD) return CUDA_SUCCESS; /* reuse policies: no memory */
    pthread_mutex_lock(&lock);
    pool->threshold = *(const uint64_t *)value;
    pool_trim(pool, pool->threshold);
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemPoolGetAttribute(CUmemoryPool pool, int attr, void *value) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pool == NULL || value == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    uint64_t v = attr == CU_MEMPOOL_ATTR_RELEASE_THRESHOLD      ? pool->threshold
                 : attr == CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT ? pool->used + pool->kept
                 : attr == CU_MEMPOOL_ATTR_USED_MEM_CURRENT     ? pool->used
                                                                : 0;
    pthread_mutex_unlock(&lock);
    *(uint64_t *)value = v;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pool == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&lock);
    pool_trim(pool, keep);
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}

/* Allocates from pool: its kept bytes first, the device for the rest. */
static CUresult pool_alloc(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (tf_stream_tail(stream, c, &rc) == NULL) return rc;
    if (dptr == NULL || size == 0 || pool->imported) return CUDA_ERROR_INVALID_VALUE;
    if (tf_capture_maybe(stream)) { /* captured: an allocation node, made when the graph runs */
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_MEM_ALLOC, .dptr_out = dptr};
        op.alloc.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
        op.alloc.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        op.alloc.poolProps.location.id = pool->ordinal;
        op.alloc.bytesize = size;
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    pthread_mutex_lock(&lock);
    uint64_t reuse = pool->kept < size ? pool->kept : size;
    pool->kept -= reuse;
    pthread_mutex_unlock(&lock);
    if (reuse < size && !tf_sim_charge(pool->physical, size - reuse)) {
        pthread_mutex_lock(&lock);
        pool->kept += reuse;
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    void *p = map_bytes(size);
    if (p == NULL || !add_record((record){(uint64_t)(uintptr_t)p, size, K_DEVICE, pool->physical, -1, 0, 0, 0, pool, 0, 0})) {
        if (p != NULL) unmap_bytes(p, size);
        tf_sim_uncharge(pool->physical, size - reuse);
        pthread_mutex_lock(&lock);
        pool->kept += reuse;
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_lock(&lock);
    pool->used += size;
    pthread_mutex_unlock(&lock);
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    CUmemoryPool pool;
    rc = cuDeviceGetMemPool(&pool, c->ordinal);
    return rc != CUDA_SUCCESS ? rc : pool_alloc(dptr, size, pool, stream);
}

TF_SIM_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream stream) {
    if (pool == NULL) return CUDA_ERROR_INVALID_VALUE;
    return pool_alloc(dptr, size, pool, stream);
}

TF_SIM_API CUresult cuMemFreeAsync(CUdeviceptr ptr, CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (tf_stream_tail(stream, c, &rc) == NULL) return rc;
    if (tf_capture_maybe(stream)) { /* captured: a free node, which must name a graph allocation */
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_MEM_FREE, .dptr = ptr};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    /* A graph's memory freed outside it stays in the graph pool until the executable goes. */
    if (ptr != 0 && tf_graph_allocation(ptr, 1)) return CUDA_SUCCESS;
    return cuMemFree_v2(ptr);
}

/* Host (pinned) memory: not device memory, never charged. */
TF_SIM_API CUresult cuMemHostAlloc(void **pp, size_t size, unsigned int flags) {
    CUresult rc = tf_need_init();
    (void)flags;
    if (rc != CUDA_SUCCESS) return rc;
    if (pp == NULL || size == 0) return CUDA_ERROR_INVALID_VALUE;
    void *p = map_bytes(size);
    if (p == NULL || !add_record((record){(uint64_t)(uintptr_t)p, size, K_HOST, -1, -1, 0, 0, 0, NULL, 0, 0})) {
        if (p != NULL) unmap_bytes(p, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *pp = p;
    return CUDA_SUCCESS;
}
TF_SIM_API CUresult cuMemAllocHost_v2(void **pp, size_t size) { return cuMemHostAlloc(pp, size, 0); }
TF_SIM_API CUresult cuMemFreeHost(void *p) { return release((uint64_t)(uintptr_t)p, K_HOST); }

TF_SIM_API CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (free_bytes == NULL || total == NULL) return CUDA_ERROR_INVALID_VALUE;
    tf_sim_sweep(); /* memory of processes that died is free again */
    uint64_t vram = tf_sim_state_get()->devices[c->physical].vram_bytes, used = tf_sim_used(c->physical);
    *total = vram;
    *free_bytes = used >= vram ? 0 : vram - used;
    return CUDA_SUCCESS;
}

/* ---- virtual memory management ---- */

TF_SIM_API CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop, int option) {
    CUresult rc = tf_need_init();
    (void)option;
    if (rc != CUDA_SUCCESS) return rc;
    if (granularity == NULL || prop == NULL) return CUDA_ERROR_INVALID_VALUE;
    *granularity = TF_SIM_GRANULARITY;
    return CUDA_SUCCESS;
}

/* Host-located physical memory (CUDA 12.2+: HOST, HOST_NUMA, HOST_NUMA_CURRENT) is charged
 * to no device, so NVML and cuMemGetInfo do not count it; this process's host budget
 * (TF_SIM_HOST_MEM) stands in for the machine's RAM, so tests can run it out. */
static int host_charge(uint64_t size) {
    uint64_t cap = tf_sim_config_get()->host_mem, old = __atomic_load_n(&host_created, __ATOMIC_ACQUIRE);
    do {
        if (old > cap || size > cap - old) return 0;
    } while (!__atomic_compare_exchange_n(&host_created, &old, old + size, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    return 1;
}

static void vram_or_host_uncharge(int physical, uint64_t size) {
    if (physical >= 0)
        tf_sim_uncharge(physical, size);
    else
        __atomic_sub_fetch(&host_created, size, __ATOMIC_ACQ_REL);
}

/* TF_SIM_TRACE=1: one stderr line per VMM call, so a test can count what a layer above made. */
static void trace_vmm(const char *call, uint64_t size) {
    if (tf_sim_trace()) fprintf(stderr, "tf-simgpu: %s %llu\n", call, (unsigned long long)size);
}

static int host_location(int type) {
    return type == CU_MEM_LOCATION_TYPE_HOST || type == CU_MEM_LOCATION_TYPE_HOST_NUMA ||
           type == CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT;
}

TF_SIM_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                                unsigned long long flags) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    trace_vmm("cuMemCreate", size);
    if (handle == NULL || prop == NULL || flags != 0 || size == 0 || size % TF_SIM_GRANULARITY != 0 ||
        prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
        (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE && !host_location(prop->location.type)))
        return CUDA_ERROR_INVALID_VALUE;
    int on_host = host_location(prop->location.type), physical = -1;
    if (on_host) {
        if (prop->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA && prop->location.id != 0)
            return CUDA_ERROR_INVALID_VALUE; /* one simulated NUMA node */
        if (!host_charge(size)) return CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        physical = tf_physical(prop->location.id);
        if (physical < 0) return CUDA_ERROR_INVALID_DEVICE;
        if (!tf_sim_charge(physical, size)) return CUDA_ERROR_OUT_OF_MEMORY;
    }
    char name[32];
    if (on_host)
        snprintf(name, sizeof name, "tf-sim-vmm-host");
    else
        snprintf(name, sizeof name, "tf-sim-vmm-%d", physical); /* an importer learns the device from it */
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
        if (fd >= 0) close(fd);
        vram_or_host_uncharge(physical, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    /* The handle is the memfd number plus one: unique while the handle lives, never 0. */
    uint64_t key = (uint64_t)fd + 1;
    if (!add_record((record){key, size, K_PHYS, physical, fd, 0, 0, 0, NULL, on_host, 0})) {
        close(fd);
        vram_or_host_uncharge(physical, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *handle = key;
    return CUDA_SUCCESS;
}

/* Physical memory lives until it is released AND its last mapping is gone, in either order,
 * as on the real driver: a released handle that is still mapped stays charged (and its memfd
 * open, so its handle number cannot be handed out again meanwhile). */
static void phys_free(const record *r) {
    close(r->fd);
    vram_or_host_uncharge(r->physical, r->size);
}

/* Adjusts the mapping count of physical allocation handle (delta +1/-1) or marks it released
 * (delta 0); frees it when both are done.  0 when there is no such live allocation. */
static int phys_update(uint64_t handle, int delta) {
    record gone;
    int found = 0, free_it = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++) {
        record *r = &records[i];
        if (r->key != handle || r->kind != K_PHYS) continue;
        if (delta == 0 && r->released) continue; /* released twice: not a live handle */
        found = 1;
        if (delta == 0) r->released = 1;
        r->maps += delta;
        if (r->released && r->maps <= 0) {
            gone = *r;
            records[i] = records[--count];
            free_it = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    if (free_it) phys_free(&gone);
    return found;
}

TF_SIM_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    trace_vmm("cuMemRelease", 0);
    return phys_update(handle, 0) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

TF_SIM_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                        unsigned long long flags) {
    CUresult rc = tf_need_init();
    (void)alignment;
    (void)flags;
    if (rc != CUDA_SUCCESS) return rc;
    trace_vmm("cuMemAddressReserve", size);
    if (ptr == NULL || size == 0 || size % TF_SIM_GRANULARITY != 0) return CUDA_ERROR_INVALID_VALUE;
    void *p = mmap((void *)(uintptr_t)addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    if (!add_record((record){(uint64_t)(uintptr_t)p, size, K_RESERVE, -1, -1, 0, 0, 0, NULL, 0, 0})) {
        munmap(p, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *ptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    trace_vmm("cuMemAddressFree", size);
    record r;
    if (!find_record(ptr, K_RESERVE, &r) || r.size != size) return CUDA_ERROR_INVALID_VALUE;
    return release(ptr, K_RESERVE);
}

TF_SIM_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                             unsigned long long flags) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    trace_vmm("cuMemMap", size);
    record phys;
    if (flags != 0 || size == 0 || !find_record(handle, K_PHYS, &phys) || offset > phys.size ||
        size > phys.size - offset)
        return CUDA_ERROR_INVALID_VALUE;
    void *p = mmap((void *)(uintptr_t)ptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, phys.fd, (off_t)offset);
    if (p == MAP_FAILED) return CUDA_ERROR_INVALID_VALUE;
    if (!add_record((record){ptr, size, K_MAPPED, -1, -1, handle, 0, 0, NULL, phys.host, 0})) return CUDA_ERROR_OUT_OF_MEMORY;
    if (phys.host) __atomic_add_fetch(&host_mapped, size, __ATOMIC_ACQ_REL);
    phys_update(handle, +1);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    trace_vmm("cuMemUnmap", size);
    record r;
    if (!take_record(ptr, K_MAPPED, &r) || r.size != size) return CUDA_ERROR_INVALID_VALUE;
    /* Back to a reserved, inaccessible range. */
    mmap((void *)(uintptr_t)ptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (r.host) __atomic_sub_fetch(&host_mapped, size, __ATOMIC_ACQ_REL);
    phys_update(r.handle, -1);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count_) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (desc == NULL || count_ == 0 || !tf_mem_contains(ptr, size)) return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

/* ---- arrays: charged, not backed (the simulator has no array copies) ---- */

static CUresult array_create(void **handle, uint64_t bytes, int kind) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (handle == NULL || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_sim_charge(c->physical, bytes)) return CUDA_ERROR_OUT_OF_MEMORY;
    void *h = malloc(16);
    if (h == NULL || !add_record((record){(uint64_t)(uintptr_t)h, bytes, kind, c->physical, -1, 0, 0, 0, NULL, 0, 0})) {
        free(h);
        tf_sim_uncharge(c->physical, bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *handle = h;
    return CUDA_SUCCESS;
}

static CUresult array_destroy(void *handle, int kind) {
    CUresult rc = release((uint64_t)(uintptr_t)handle, kind);
    if (rc == CUDA_SUCCESS) free(handle);
    return rc == CUDA_ERROR_INVALID_VALUE ? CUDA_ERROR_INVALID_HANDLE : rc;
}

TF_SIM_API CUresult cuArrayCreate_v2(CUarray *array, const CUDA_ARRAY_DESCRIPTOR *d) {
    if (d == NULL || d->Width == 0 || tf_array_format_bytes(d->Format) == 0 || d->NumChannels == 0 ||
        d->NumChannels > 4 || d->NumChannels == 3)
        return CUDA_ERROR_INVALID_VALUE;
    return array_create((void **)array, tf_array_bytes(d->Width, d->Height, 0, d->Format, d->NumChannels, 1), K_ARRAY);
}

TF_SIM_API CUresult cuArray3DCreate_v2(CUarray *array, const CUDA_ARRAY3D_DESCRIPTOR *d) {
    if (d == NULL || d->Width == 0 || tf_array_format_bytes(d->Format) == 0 || d->NumChannels == 0 ||
        d->NumChannels > 4 || d->NumChannels == 3)
        return CUDA_ERROR_INVALID_VALUE;
    return array_create((void **)array, tf_array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels, 1),
                        K_ARRAY);
}

TF_SIM_API CUresult cuArrayDestroy(CUarray array) { return array_destroy(array, K_ARRAY); }

TF_SIM_API CUresult cuMipmappedArrayCreate(CUmipmappedArray *array, const CUDA_ARRAY3D_DESCRIPTOR *d,
                                           unsigned int levels) {
    if (d == NULL || d->Width == 0 || levels == 0 || tf_array_format_bytes(d->Format) == 0 ||
        d->NumChannels == 0 || d->NumChannels > 4 || d->NumChannels == 3)
        return CUDA_ERROR_INVALID_VALUE;
    return array_create((void **)array,
                        tf_array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels, levels), K_MIPMAP);
}

TF_SIM_API CUresult cuMipmappedArrayDestroy(CUmipmappedArray array) { return array_destroy(array, K_MIPMAP); }

/* ---- copies and memsets ---- */

/* Whether p is host memory: pageable or pinned host memory, or host-located VMM memory. */
static int on_host(const void *p) {
    tf_mem_range r;
    return !tf_mem_find((CUdeviceptr)(uintptr_t)p, &r) || r.host;
}

/* Copies that cross PCIe (one side on the host, the other on the device) take n bytes at the
 * configured PCIe bandwidth on the stream's timeline; device-to-device and host-to-host copies
 * take no simulated time (HBM is ~50x faster than PCIe, below the model's resolution). */
uint64_t tf_copy_ns(const void *dst, const void *src, uint64_t n) {
    if (on_host(dst) == on_host(src)) return 0;
    return (uint64_t)((unsigned __int128)n * 1000u / tf_sim_config_get()->pcie_mbps);
}

/* Bytes of this process's mapped memory that are host-located (kernel slowdown model). */
uint64_t tf_host_mapped_bytes(void) { return __atomic_load_n(&host_mapped, __ATOMIC_ACQUIRE); }

static CUresult copy(void *dst, const void *src, size_t n, int dst_dev, int src_dev, CUstream stream, int async) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (n == 0) return CUDA_SUCCESS;
    if (dst == NULL || src == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (async && tf_capture_maybe(stream)) { /* captured: a copy node (graph allocations may not exist yet) */
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_MEMCPY, .dst = dst, .src = src, .width = n, .height = 1};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    if (!async && (rc = tf_capture_sync_guard(c)) != CUDA_SUCCESS) return rc;
    if (tf_mem_unmapped((CUdeviceptr)(uintptr_t)dst, n) || tf_mem_unmapped((CUdeviceptr)(uintptr_t)src, n))
        return CUDA_ERROR_ILLEGAL_ADDRESS;
    if ((dst_dev && !tf_mem_contains((CUdeviceptr)(uintptr_t)dst, n)) ||
        (src_dev && !tf_mem_contains((CUdeviceptr)(uintptr_t)src, n)))
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(async ? stream : NULL, c, &rc);
    if (tail == NULL) return rc;
    if (!async) tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE)); /* sync copies wait for prior work */
    /* On the timeline from now: the host's own memmove time is not the modelled copy's. */
    uint64_t end = tf_enqueue(c, tail, tf_copy_ns(dst, src, n), 0);
    memmove(dst, src, n);
    if (!async) tf_wait_until(end); /* a synchronous copy returns when the bytes have crossed */
    return CUDA_SUCCESS;
}

#define DP(x) ((void *)(uintptr_t)(x))
TF_SIM_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) { return copy(DP(dst), src, n, 1, 0, NULL, 0); }
TF_SIM_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) { return copy(dst, DP(src), n, 0, 1, NULL, 0); }
TF_SIM_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) { return copy(DP(dst), DP(src), n, 1, 1, NULL, 0); }
TF_SIM_API CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n) { return copy(DP(dst), DP(src), n, 0, 0, NULL, 0); }
TF_SIM_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s) {
    return copy(DP(dst), src, n, 1, 0, s, 1);
}
TF_SIM_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s) {
    return copy(dst, DP(src), n, 0, 1, s, 1);
}
TF_SIM_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
    return copy(DP(dst), DP(src), n, 1, 1, s, 1);
}
TF_SIM_API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
    return copy(DP(dst), DP(src), n, 0, 0, s, 1);
}

/* Peer copies: every simulated device's memory is in this address space, so a copy between
 * contexts is a device-to-device copy ordered on the current context's stream. */
TF_SIM_API CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n) {
    if (dc == NULL || sc == NULL || dc->magic != TF_CTX_MAGIC || sc->magic != TF_CTX_MAGIC) return CUDA_ERROR_INVALID_CONTEXT;
    return copy(DP(dst), DP(src), n, 1, 1, NULL, 0);
}
TF_SIM_API CUresult cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n,
                                      CUstream s) {
    if (dc == NULL || sc == NULL || dc->magic != TF_CTX_MAGIC || sc->magic != TF_CTX_MAGIC) return CUDA_ERROR_INVALID_CONTEXT;
    return copy(DP(dst), DP(src), n, 1, 1, s, 1);
}

static CUresult memset_n(CUdeviceptr dst, uint32_t value, size_t width, size_t n, CUstream stream, int async) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (n == 0) return CUDA_SUCCESS;
    if (n > SIZE_MAX / width || dst % width != 0) return CUDA_ERROR_INVALID_VALUE;
    if (async && tf_capture_maybe(stream)) {
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_MEMSET, .dst = DP(dst), .width = n, .height = 1,
                          .value = value, .element = (uint32_t)width};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    if (!async && (rc = tf_capture_sync_guard(c)) != CUDA_SUCCESS) return rc;
    if (tf_mem_unmapped(dst, n * width)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    if (!tf_mem_contains(dst, n * width)) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(async ? stream : NULL, c, &rc);
    if (tail == NULL) return rc;
    if (!async) tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE));
    if (width == 1) {
        memset(DP(dst), (int)(value & 0xff), n);
    } else if (width == 2) {
        uint16_t *p = DP(dst);
        for (size_t i = 0; i < n; i++) p[i] = (uint16_t)value;
    } else {
        uint32_t *p = DP(dst);
        for (size_t i = 0; i < n; i++) p[i] = value;
    }
    tf_enqueue(c, tail, 0, 0);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { return memset_n(d, v, 1, n, NULL, 0); }
TF_SIM_API CUresult cuMemsetD16_v2(CUdeviceptr d, unsigned short v, size_t n) { return memset_n(d, v, 2, n, NULL, 0); }
TF_SIM_API CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int v, size_t n) { return memset_n(d, v, 4, n, NULL, 0); }
TF_SIM_API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream s) {
    return memset_n(d, v, 1, n, s, 1);
}
TF_SIM_API CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short v, size_t n, CUstream s) {
    return memset_n(d, v, 2, n, s, 1);
}
TF_SIM_API CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream s) {
    return memset_n(d, v, 4, n, s, 1);
}

/* ---- IPC: an allocation opened by another process ----
 * SIMULATED: the importer gets memory of the same size at an address of its own (contents
 * are not shared between processes), charged to it from cuIpcOpenMemHandle to
 * cuIpcCloseMemHandle: on the driver, imported memory stays alive while any process has it
 * open, whatever the exporter frees meanwhile. */
#define TF_IPC_MAGIC 0x43504954u

typedef struct ipc_payload {
    uint32_t magic;
    int32_t pid;
    uint64_t base, size;
    int32_t physical;
    uint64_t serial; /* the allocation's, so every allocation has handles of its own */
} ipc_payload;

/* The allocation containing ptr (device or managed memory): its base and size. */
static int allocation_of(CUdeviceptr ptr, record *out) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++) {
        const record *r = &records[i];
        if ((r->kind == K_DEVICE || r->kind == K_MANAGED || r->kind == K_IPC) && ptr >= r->key && ptr - r->key < r->size) {
            *out = *r;
            found = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

static int mapping_of(CUdeviceptr ptr, record *out) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++)
        if (records[i].kind == K_MAPPED && ptr >= records[i].key && ptr - records[i].key < records[i].size) {
            *out = records[i];
            found = 1;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

TF_SIM_API CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr ptr) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    record r;
    /* VMM mappings have a range too (the mapping), though IPC refuses them as on the driver. */
    if (!allocation_of(ptr, &r) && !mapping_of(ptr, &r)) return CUDA_ERROR_NOT_FOUND;
    if (base != NULL) *base = r.key;
    if (size != NULL) *size = r.size;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr ptr) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    record r;
    if (handle == NULL || !allocation_of(ptr, &r) || r.kind != K_DEVICE) return CUDA_ERROR_INVALID_VALUE;
    ipc_payload p = {TF_IPC_MAGIC, (int32_t)getpid(), r.key, r.size, r.physical, r.serial};
    memset(handle, 0, sizeof *handle);
    memcpy(handle->reserved, &p, sizeof p);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *dptr, CUipcMemHandle handle, unsigned int flags) {
    CUresult rc;
    (void)flags;
    if (tf_current(&rc) == NULL) return rc;
    ipc_payload p;
    memcpy(&p, handle.reserved, sizeof p);
    if (dptr == NULL || p.magic != TF_IPC_MAGIC || p.size == 0) return CUDA_ERROR_INVALID_VALUE;
    if (p.pid == (int32_t)getpid()) return CUDA_ERROR_INVALID_CONTEXT; /* a process cannot open its own */
    if (p.physical < 0 || p.physical >= (int32_t)tf_sim_state_get()->device_count) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_sim_charge(p.physical, p.size)) return CUDA_ERROR_OUT_OF_MEMORY;
    void *mem = map_bytes(p.size);
    if (mem == NULL || !add_record((record){(uint64_t)(uintptr_t)mem, p.size, K_IPC, p.physical, -1, 0, 0, 0, NULL, 0, 0})) {
        if (mem != NULL) unmap_bytes(mem, p.size);
        tf_sim_uncharge(p.physical, p.size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *dptr = (CUdeviceptr)(uintptr_t)mem;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuIpcOpenMemHandle(CUdeviceptr *dptr, CUipcMemHandle handle, unsigned int flags) {
    return cuIpcOpenMemHandle_v2(dptr, handle, flags);
}

TF_SIM_API CUresult cuIpcCloseMemHandle(CUdeviceptr ptr) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    record r;
    if (!take_record(ptr, K_IPC, &r)) return CUDA_ERROR_INVALID_VALUE;
    unmap_bytes((void *)(uintptr_t)r.key, r.size);
    tf_sim_uncharge(r.physical, r.size);
    return CUDA_SUCCESS;
}

/* ---- Pools shared between processes: cuMemPoolExportToShareableHandle (a POSIX descriptor),
 * cuMemPoolImportFromShareableHandle, cuMemPoolExportPointer / cuMemPoolImportPointer.
 * SIMULATED, as IPC above: the imported pointer is memory of the same size at an address of the
 * importer's own, charged to the device from import to its cuMemFree/cuMemFreeAsync there; on
 * the driver the importer's mapping keeps the exporter's pool memory alive likewise. */
typedef struct pool_ptr_payload {
    uint32_t magic;
    int32_t pid;
    uint64_t base, size;
    int32_t physical;
    uint64_t serial; /* as in ipc_payload */
} pool_ptr_payload;
#define TF_POOL_PTR_MAGIC 0x50505054u

TF_SIM_API CUresult cuMemPoolExportToShareableHandle(void *shareable, CUmemoryPool pool, int type,
                                                     unsigned long long flags) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (shareable == NULL || pool == NULL || flags != 0 || type != 1 || !pool->exportable || pool->imported)
        return CUDA_ERROR_INVALID_VALUE;
    char name[32];
    snprintf(name, sizeof name, "tf-sim-pool-%d", pool->physical);
    int fd = memfd_create(name, 0); /* without CLOEXEC: the caller passes it on */
    if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
    *(int *)shareable = fd;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemPoolImportFromShareableHandle(CUmemoryPool *pool, void *os_handle, int type,
                                                       unsigned long long flags) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pool == NULL || type != 1 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    char link[64], target[128];
    int physical = -1;
    snprintf(link, sizeof link, "/proc/self/fd/%d", (int)(intptr_t)os_handle);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return CUDA_ERROR_INVALID_VALUE;
    target[n] = '\0';
    if (sscanf(target, "/memfd:tf-sim-pool-%d", &physical) != 1 || physical < 0 ||
        physical >= (int)tf_sim_state_get()->device_count)
        return CUDA_ERROR_INVALID_VALUE; /* not a pool this simulator exported */
    CUmemoryPool p = calloc(1, sizeof *p);
    if (p == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    p->ordinal = -1;
    p->physical = physical;
    p->imported = 1;
    *pool = p;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemPoolExportPointer(CUmemPoolPtrExportData *data, CUdeviceptr ptr) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    record r;
    if (data == NULL || !find_record(ptr, K_DEVICE, &r) || r.pool == NULL || !r.pool->exportable)
        return CUDA_ERROR_INVALID_VALUE;
    pool_ptr_payload p = {TF_POOL_PTR_MAGIC, (int32_t)getpid(), r.key, r.size, r.physical, r.serial};
    memset(data, 0, sizeof *data);
    memcpy(data->reserved, &p, sizeof p);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemPoolImportPointer(CUdeviceptr *dptr, CUmemoryPool pool, CUmemPoolPtrExportData *data) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    pool_ptr_payload p;
    if (dptr == NULL || pool == NULL || data == NULL || !pool->imported) return CUDA_ERROR_INVALID_VALUE;
    memcpy(&p, data->reserved, sizeof p);
    if (p.magic != TF_POOL_PTR_MAGIC || p.size == 0 || p.physical != pool->physical) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_sim_charge(p.physical, p.size)) return CUDA_ERROR_OUT_OF_MEMORY;
    void *mem = map_bytes(p.size);
    if (mem == NULL || !add_record((record){(uint64_t)(uintptr_t)mem, p.size, K_DEVICE, p.physical, -1, 0, 0, 0, NULL, 0, 0})) {
        if (mem != NULL) unmap_bytes(mem, p.size);
        tf_sim_uncharge(p.physical, p.size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *dptr = (CUdeviceptr)(uintptr_t)mem;
    return CUDA_SUCCESS;
}

/* ---- VMM shareable handles (POSIX file descriptors) ----
 * The exporter hands out a descriptor of the physical memory; an importer makes a handle of
 * its own from it, which keeps the memory alive after the exporter releases it.  SIMULATED:
 * the importer is charged for the memory from import to release and last unmap (while both
 * hold it the device counts it twice). */
#define CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR 1

TF_SIM_API CUresult cuMemExportToShareableHandle(void *shareable, CUmemGenericAllocationHandle handle, int type,
                                                 unsigned long long flags) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    record r;
    if (shareable == NULL || flags != 0 || type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR ||
        !find_record(handle, K_PHYS, &r))
        return CUDA_ERROR_INVALID_VALUE;
    int fd = dup(r.fd); /* without CLOEXEC: the caller passes it on */
    if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
    *(int *)shareable = fd;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *os_handle, int type) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (handle == NULL || type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_INVALID_VALUE;
    int source = (int)(intptr_t)os_handle, physical = -1;
    char link[64], target[128];
    snprintf(link, sizeof link, "/proc/self/fd/%d", source);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return CUDA_ERROR_INVALID_VALUE;
    target[n] = '\0';
    if (sscanf(target, "/memfd:tf-sim-vmm-%d", &physical) != 1 || physical < 0 ||
        physical >= (int)tf_sim_state_get()->device_count)
        return CUDA_ERROR_INVALID_VALUE; /* not memory this simulator exported */
    off_t size = lseek(source, 0, SEEK_END);
    if (size <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (!tf_sim_charge(physical, (uint64_t)size)) return CUDA_ERROR_OUT_OF_MEMORY;
    int fd = fcntl(source, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 || !add_record((record){(uint64_t)fd + 1, (uint64_t)size, K_PHYS, physical, fd, 0, 0, 0, NULL, 0, 0})) {
        if (fd >= 0) close(fd);
        tf_sim_uncharge(physical, (uint64_t)size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *handle = (uint64_t)fd + 1;
    return CUDA_SUCCESS;
}

/* Batched copies (CUDA 12.8 with a failure index, 13.0 without): each pair as cuMemcpyAsync;
 * the attributes (source access order, location hints) change nothing on the simulator. */
static CUresult copy_batch(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count, size_t num_attrs,
                           size_t *fail, CUstream s) {
    if (fail != NULL) *fail = SIZE_MAX;
    if (dsts == NULL || srcs == NULL || sizes == NULL || count == 0 || num_attrs == 0) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count; i++) {
        CUresult rc = copy(DP(dsts[i]), DP(srcs[i]), sizes[i], 0, 0, s, 1);
        if (rc != CUDA_SUCCESS) {
            if (fail != NULL) *fail = i;
            return rc;
        }
    }
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuMemcpyBatchAsync(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count, void *attrs,
                                       size_t *attr_idxs, size_t num_attrs, size_t *fail, CUstream s) {
    if (attrs == NULL || attr_idxs == NULL) return CUDA_ERROR_INVALID_VALUE;
    return copy_batch(dsts, srcs, sizes, count, num_attrs, fail, s);
}
TF_SIM_API CUresult cuMemcpyBatchAsync_v2(CUdeviceptr *dsts, CUdeviceptr *srcs, size_t *sizes, size_t count,
                                          void *attrs, size_t *attr_idxs, size_t num_attrs, CUstream s) {
    if (attrs == NULL || attr_idxs == NULL) return CUDA_ERROR_INVALID_VALUE;
    return copy_batch(dsts, srcs, sizes, count, num_attrs, NULL, s);
}

/* ---- stream memory operations on device words ----
 * SIMULATED: a write lands when enqueued; a wait must already hold when enqueued (nothing in
 * the simulator changes device memory later on the timeline, so it would never be released):
 * one that does not is refused with CUDA_ERROR_NOT_SUPPORTED rather than hang the stream. */
static CUresult stream_value(CUstream stream, CUdeviceptr addr, uint64_t value, size_t width, unsigned int flags,
                             int write) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (addr % width != 0) return CUDA_ERROR_INVALID_VALUE;
    if (tf_mem_unmapped(addr, width)) return CUDA_ERROR_ILLEGAL_ADDRESS;
    if (!tf_mem_contains(addr, width)) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    uint64_t now = 0;
    if (write) {
        memcpy(DP(addr), &value, width); /* little-endian: the low bytes for 32 bits */
    } else {
        memcpy(&now, DP(addr), width);
        unsigned int op = flags & 0x3u; /* GEQ, EQ, AND, NOR */
        uint64_t mask = width == 4 ? 0xffffffffULL : ~0ULL;
        int holds = op == 0   ? (width == 4 ? (int32_t)((uint32_t)now - (uint32_t)value) >= 0 : (int64_t)(now - value) >= 0)
                    : op == 1 ? now == (value & mask)
                    : op == 2 ? (now & value) != 0
                              : (~(now | value) & mask) != 0;
        if (!holds) return CUDA_ERROR_NOT_SUPPORTED;
    }
    tf_enqueue(c, tail, 0, 0);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuStreamWriteValue32(CUstream s, CUdeviceptr addr, uint32_t v, unsigned int flags) {
    return stream_value(s, addr, v, 4, flags, 1);
}
TF_SIM_API CUresult cuStreamWriteValue64(CUstream s, CUdeviceptr addr, uint64_t v, unsigned int flags) {
    return stream_value(s, addr, v, 8, flags, 1);
}
TF_SIM_API CUresult cuStreamWaitValue32(CUstream s, CUdeviceptr addr, uint32_t v, unsigned int flags) {
    return stream_value(s, addr, v, 4, flags, 0);
}
TF_SIM_API CUresult cuStreamWaitValue64(CUstream s, CUdeviceptr addr, uint64_t v, unsigned int flags) {
    return stream_value(s, addr, v, 8, flags, 0);
}
TF_SIM_API CUresult cuStreamWriteValue32_v2(CUstream s, CUdeviceptr addr, uint32_t v, unsigned int flags) {
    return stream_value(s, addr, v, 4, flags, 1);
}
TF_SIM_API CUresult cuStreamWriteValue64_v2(CUstream s, CUdeviceptr addr, uint64_t v, unsigned int flags) {
    return stream_value(s, addr, v, 8, flags, 1);
}
TF_SIM_API CUresult cuStreamWaitValue32_v2(CUstream s, CUdeviceptr addr, uint32_t v, unsigned int flags) {
    return stream_value(s, addr, v, 4, flags, 0);
}
TF_SIM_API CUresult cuStreamWaitValue64_v2(CUstream s, CUdeviceptr addr, uint64_t v, unsigned int flags) {
    return stream_value(s, addr, v, 8, flags, 0);
}
