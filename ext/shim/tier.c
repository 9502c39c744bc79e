/*
 * tier.c - VRAM tiering: memory whose device pointer stays valid while its backing moves
 * between the device, host memory (warm tier) and a file (cold tier).
 *
 * When the worker's limits file enables it (TF_TIER_ENABLED; the workload's opt-out leaves it
 * clear, and then nothing here runs), cuMemAlloc_v2 is served with the VMM API: a reserved VA
 * range with device memory mapped at it.  A freeze, asked for by the hypervisor through the
 * limits file (never a signal), blocks new work at the gate, waits for calls in flight,
 * synchronizes the context, and for each allocation copies it into host-located memory
 * (CUDA 12.2+) which is then mapped at the same VA, and releases the device memory.  Kernels
 * can still use the warm tier (over PCIe).  A freeze to disk goes on from there: host memory
 * is copied to the tier file and released, leaving the VA reserved and unmapped.  The next
 * call that needs the GPU (a launch, copy, memset, allocation) resumes everything first.
 *
 * Failure never loses data: each step maps the new place before giving up the old one, so a
 * failed step (no host memory, disk full, no device memory) leaves that allocation where it
 * was, and the result code says why.  Only memory made here moves: the program's own VMM
 * allocations (which it may export as shareable handles), pools and arrays stay where they
 * are.  The driver refuses cuIpcGetMemHandle on VMM memory, so a workload that shares
 * cuMemAlloc memory through legacy IPC must opt out of tiering.
 *
 * Locks are process-local (a killed process takes them with it); every wait is bounded; the
 * books (tier bytes) live in the process's own slot, which the sweep zeroes when it dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define TIER_MAX 4096                    /* movable allocations per process */
#define TIER_POLL_NS 10000000ULL         /* the watcher looks at the request every 10 ms */
#define TIER_LOCK_S 30                   /* longest wait for a move in progress */
#define TIER_DRAIN_NS 2000000000ULL      /* longest wait for calls in flight before a freeze */

typedef struct tier_alloc {
    uint64_t va, size, asked; /* VA, bytes mapped (granularity), bytes charged */
    uint64_t handle;          /* physical allocation mapped at va; 0 while on disk */
    uint64_t disk_off;        /* offset in the tier file while on disk */
    int ordinal, dev, where, pinned;
    CUcontext ctx;            /* the context that made it: its moves run there */
} tier_alloc;

typedef CUresult (*pfn_create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
typedef CUresult (*pfn_release)(CUmemGenericAllocationHandle);
typedef CUresult (*pfn_reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
typedef CUresult (*pfn_addr_free)(CUdeviceptr, size_t);
typedef CUresult (*pfn_map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
typedef CUresult (*pfn_unmap)(CUdeviceptr, size_t);
typedef CUresult (*pfn_access)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
typedef CUresult (*pfn_dtod)(CUdeviceptr, CUdeviceptr, size_t);
typedef CUresult (*pfn_dtoh)(void *, CUdeviceptr, size_t);
typedef CUresult (*pfn_htod)(CUdeviceptr, const void *, size_t);
typedef CUresult (*pfn_sync)(void);
typedef CUresult (*pfn_ctx)(CUcontext *);
typedef CUresult (*pfn_set_ctx)(CUcontext);
typedef CUresult (*pfn_gran)(size_t *, const CUmemAllocationProp *, int);
typedef CUresult (*pfn_ctx_dev)(CUdevice *);

static struct {
    pfn_create create;
    pfn_release release;
    pfn_reserve reserve;
    pfn_addr_free addr_free;
    pfn_map map;
    pfn_unmap unmap;
    pfn_access access;
    pfn_dtod dtod;
    pfn_dtoh dtoh;
    pfn_htod htod;
    pfn_sync sync;
    pfn_ctx get_ctx;
    pfn_set_ctx set_ctx;
    pfn_gran gran;
    pfn_ctx_dev ctx_dev;
} drv;

static tier_alloc table[TIER_MAX];
static int table_n;

/* The cache of freed movable allocations (a caching allocator, like PyTorch's): cuMemFree
 * keeps the VA mapped to its device memory and the next cuMemAlloc that fits takes it back
 * without a VMM call.  Its memory is still on the device, so it stays charged to the worker
 * (entry.asked: the charge of the allocation freed into it); an allocation refused for want
 * of room (the worker's limit or the device) flushes it and asks again, and a freeze releases
 * it first.  Bounded by TIER_CACHE_MAX entries and 1/TIER_CACHE_SHARE of the worker's limit;
 * an entry serves a request at most 1/TIER_CACHE_SLACK larger than the request (rounded to
 * the granularity), like cudaMallocAsync's pools. */
#define TIER_CACHE_MAX 16
#define TIER_CACHE_SHARE 4
#define TIER_CACHE_SLACK 8
#define TIER_CACHE_NO_LIMIT (8ULL << 30) /* the cap when the worker has no limit */
static tier_alloc cache[TIER_CACHE_MAX]; /* oldest first */
static int cache_n;                      /* atomic for the unlocked "anything cached?" look */
static uint64_t cache_bytes;             /* mapped bytes the cache holds */
static pthread_mutex_t tier_lock = PTHREAD_MUTEX_INITIALIZER; /* process-local */
static pthread_once_t tier_once = PTHREAD_ONCE_INIT;
static int tier_ready;   /* the driver functions were found */
int tf_tier_on;          /* atomic: movable memory exists; launches/copies take the gate */
int tf_tier_frozen;      /* atomic: some memory is off the device by a freeze (read inline by the gate) */
static int inflight;     /* atomic: gated calls inside the driver */
#define TIER_CTXS 64
static CUcontext ctxs[TIER_CTXS]; /* every context that made movable memory: a freeze drains each */
static int ctx_n;
static uint64_t disk_end; /* bytes of the tier file in use (tier_disk.c) */
static uint64_t granularity = 2ULL << 20;
static uint64_t last_seq; /* request the watcher handled last */

/* Calls in flight, cheaply: each thread has a flag it sets around a gated call with plain
 * stores (no atomic read-modify-write, no fence on the hot path); a freeze sets `tf_tier_frozen`, then
 * membarrier(PRIVATE_EXPEDITED) makes every running thread pass a full barrier, after which a
 * thread either sees `tf_tier_frozen` or its flag is visible (the asymmetric Dekker pattern).  Without
 * membarrier (old kernel, seccomp), or past TIER_THREADS threads, the shared counter is used. */
#define TIER_THREADS 1024
static int thread_flags[TIER_THREADS];
static int thread_count;      /* atomic: flags handed out */
static int use_membarrier;    /* registered for PRIVATE_EXPEDITED in this process */
__thread int *tf_tier_my_flag __attribute__((tls_model("initial-exec"))); /* this thread's flag; NULL: not yet, or none left */
static __thread int no_flag __attribute__((tls_model("initial-exec")));  /* none left for this thread: use the counter */

static int *thread_flag(void) {
    if (tf_tier_my_flag != NULL || no_flag || !use_membarrier) return tf_tier_my_flag;
    int i = __atomic_fetch_add(&thread_count, 1, __ATOMIC_RELAXED);
    if (i >= TIER_THREADS) {
        no_flag = 1;
        return NULL;
    }
    tf_tier_my_flag = &thread_flags[i];
    return tf_tier_my_flag;
}

static int any_in_flight(void) {
    if (__atomic_load_n(&inflight, __ATOMIC_SEQ_CST) != 0) return 1;
    int n = __atomic_load_n(&thread_count, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n && i < TIER_THREADS; i++)
        if (__atomic_load_n(&thread_flags[i], __ATOMIC_ACQUIRE)) return 1;
    return 0;
}

static void *helper(const char *name) { return tf_driver_helper(name); }

static void tier_init(void) {
    drv.create = (pfn_create)helper("cuMemCreate");
    drv.release = (pfn_release)helper("cuMemRelease");
    drv.reserve = (pfn_reserve)helper("cuMemAddressReserve");
    drv.addr_free = (pfn_addr_free)helper("cuMemAddressFree");
    drv.map = (pfn_map)helper("cuMemMap");
    drv.unmap = (pfn_unmap)helper("cuMemUnmap");
    drv.access = (pfn_access)helper("cuMemSetAccess");
    drv.dtod = (pfn_dtod)helper("cuMemcpyDtoD");
    drv.dtoh = (pfn_dtoh)helper("cuMemcpyDtoH");
    drv.htod = (pfn_htod)helper("cuMemcpyHtoD");
    drv.sync = (pfn_sync)helper("cuCtxSynchronize");
    drv.get_ctx = (pfn_ctx)helper("cuCtxGetCurrent");
    drv.set_ctx = (pfn_set_ctx)helper("cuCtxSetCurrent");
    drv.gran = (pfn_gran)helper("cuMemGetAllocationGranularity");
    drv.ctx_dev = (pfn_ctx_dev)helper("cuCtxGetDevice");
    void **all = (void **)&drv;
    tier_ready = 1;
    for (size_t i = 0; i < sizeof drv / sizeof(void *); i++)
        if (all[i] == NULL) tier_ready = 0;
    if (!tier_ready) tf_log(TF_LOG_WARN, "VRAM tiering off: the driver lacks the VMM functions it needs");
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void nap(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
    nanosleep(&ts, NULL);
}

/* Bounded: a move in progress finishes well within TIER_LOCK_S or the caller gives up. */
static int lock_tier(void) {
    if (pthread_mutex_trylock(&tier_lock) == 0) return 1; /* uncontended: no clock read */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += TIER_LOCK_S;
    return pthread_mutex_timedlock(&tier_lock, &ts) == 0;
}

/* Remembers a context that makes movable memory (with tier_lock held); 0 when there are too many. */
static int note_ctx(CUcontext ctx) {
    for (int i = 0; i < ctx_n; i++)
        if (ctxs[i] == ctx) return 1;
    if (ctx_n == TIER_CTXS) return 0;
    ctxs[ctx_n++] = ctx;
    return 1;
}

/* Makes c current for the moves that follow (the mover puts its caller's context back when
 * done).  Transfer buffers belong to a context: they are dropped, the next move makes new
 * ones.  A context that is gone leaves the current one: same device, the moves still work. */
static void use_ctx(CUcontext c, CUcontext *current, tf_tier_xfer **xfer) {
    if (c == *current) return;
    if (xfer != NULL && *xfer != NULL) {
        tf_xfer_end(*xfer);
        *xfer = NULL;
    }
    if (drv.set_ctx(c) == CUDA_SUCCESS) *current = c;
}

static void book(uint64_t *field, int64_t delta) {
    if (delta >= 0)
        __atomic_add_fetch(field, (uint64_t)delta, __ATOMIC_SEQ_CST);
    else
        __atomic_sub_fetch(field, (uint64_t)-delta, __ATOMIC_SEQ_CST);
}

static void book_move(int from, int to, uint64_t bytes) {
    tf_shm_proc *p = tf_region_self();
    if (p == NULL || from == to) return;
    /* Add to the new place first: a kill between the two counts the bytes twice in the tiers
     * (never zero), and the sweep zeroes the slot anyway. */
    if (to == TF_TIER_AT_HOST) book(&p->tier_host_bytes, (int64_t)bytes);
    if (to == TF_TIER_AT_DISK) book(&p->tier_disk_bytes, (int64_t)bytes);
    if (from == TF_TIER_AT_HOST) book(&p->tier_host_bytes, -(int64_t)bytes);
    if (from == TF_TIER_AT_DISK) book(&p->tier_disk_bytes, -(int64_t)bytes);
}

static CUresult create_at(uint64_t *handle, uint64_t size, int where, int ordinal) {
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = where == TF_TIER_AT_DEVICE ? CU_MEM_LOCATION_TYPE_DEVICE : CU_MEM_LOCATION_TYPE_HOST_NUMA;
    prop.location.id = where == TF_TIER_AT_DEVICE ? ordinal : 0;
    return drv.create((CUmemGenericAllocationHandle *)handle, size, &prop, 0);
}

static CUresult map_at(uint64_t va, uint64_t size, uint64_t handle, int ordinal) {
    CUmemAccessDesc access;
    access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    access.location.id = ordinal;
    access.flags = 3; /* read-write */
    CUresult rc = drv.map(va, size, 0, handle, 0);
    if (rc != CUDA_SUCCESS) return rc;
    rc = drv.access(va, size, &access, 1);
    if (rc != CUDA_SUCCESS) drv.unmap(va, size);
    return rc;
}

/* Moves a mapped allocation to fresh memory at `to` (device or host), same VA: the new memory
 * is filled through a scratch VA before the old is unmapped.  On failure nothing changed. */
static CUresult move_mapped(tier_alloc *a, int to) {
    uint64_t fresh = 0;
    CUdeviceptr scratch = 0;
    CUresult rc = create_at(&fresh, a->size, to, a->ordinal);
    if (rc != CUDA_SUCCESS) return rc;
    rc = drv.reserve(&scratch, a->size, 0, 0, 0);
    if (rc == CUDA_SUCCESS) {
        rc = map_at(scratch, a->size, fresh, a->ordinal);
        if (rc == CUDA_SUCCESS) {
            rc = drv.dtod(scratch, a->va, a->size);
            drv.unmap(scratch, a->size);
        }
        drv.addr_free(scratch, a->size);
    }
    if (rc == CUDA_SUCCESS && (rc = drv.unmap(a->va, a->size)) == CUDA_SUCCESS) {
        rc = map_at(a->va, a->size, fresh, a->ordinal);
        if (rc != CUDA_SUCCESS) { /* put the old memory back: it still holds the data */
            map_at(a->va, a->size, a->handle, a->ordinal);
        } else {
            drv.release(a->handle);
            a->handle = fresh;
            book_move(a->where, to, a->size);
            a->where = to;
            return CUDA_SUCCESS;
        }
    }
    drv.release(fresh);
    return rc;
}

/* Device or host tier -> file (tier_disk.c); the VA stays reserved, unmapped.  The memory is
 * released only once the file holds the bytes (fdatasync); on failure it stays where it was. */
static int to_disk(tier_alloc *a, tf_tier_xfer *x) {
    uint64_t off = disk_end;
    if (!tf_disk_write(x, a->va, a->size, off)) {
        tf_disk_truncate(disk_end); /* give the blocks back */
        return 0;
    }
    if (drv.unmap(a->va, a->size) != CUDA_SUCCESS) return 0;
    drv.release(a->handle);
    a->handle = 0;
    a->disk_off = off;
    disk_end = off + tf_disk_span(a->size);
    book_move(a->where, TF_TIER_AT_DISK, a->size);
    a->where = TF_TIER_AT_DISK;
    return 1;
}

/* File -> fresh memory at `to` (device, or host when the device has no room) at the same VA.
 * On failure it stays on disk. */
static CUresult from_disk(tier_alloc *a, tf_tier_xfer *x, int to) {
    uint64_t fresh = 0;
    CUresult rc = create_at(&fresh, a->size, to, a->ordinal);
    if (rc != CUDA_SUCCESS) return rc;
    rc = map_at(a->va, a->size, fresh, a->ordinal);
    if (rc == CUDA_SUCCESS && !tf_disk_read(x, a->va, a->size, a->disk_off)) {
        drv.unmap(a->va, a->size);
        rc = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (rc != CUDA_SUCCESS) {
        drv.release(fresh);
        return rc;
    }
    a->handle = fresh;
    book_move(TF_TIER_AT_DISK, to, a->size);
    a->where = to;
    return CUDA_SUCCESS;
}

static void set_where(uint16_t result) {
    tf_shm_proc *p = tf_region_self();
    int worst = TF_TIER_AT_DEVICE;
    uint64_t movable = 0, charged = 0;
    for (int i = 0; i < table_n; i++) {
        if (table[i].where > worst) worst = table[i].where;
        movable += table[i].asked;
    }
    for (int i = 0; i < cache_n; i++) movable += cache[i].asked; /* charged, released at a freeze */
    __atomic_store_n(&tf_tier_frozen, worst != TF_TIER_AT_DEVICE, __ATOMIC_SEQ_CST);
    if (p == NULL) return;
    /* Pinned: what this process holds that never moves (its own VMM memory, which it may
     * export, pools, arrays, imports); a snapshot taken at every tier event. */
    for (int d = 0; d < TF_SHM_MAX_DEVICES; d++) charged += __atomic_load_n(&p->used_bytes[d], __ATOMIC_RELAXED);
    __atomic_store_n(&p->tier_pinned_bytes, charged > movable ? charged - movable : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->tier_where, (uint16_t)(worst | TF_TIER_WATCHING), __ATOMIC_RELEASE);
    __atomic_store_n(&p->tier_result, result, __ATOMIC_RELEASE);
}

/* Gives cache entry i back to the driver and its charge back to the worker; tier_lock held. */
static void cache_drop(int i) {
    tier_alloc e = cache[i];
    memmove(&cache[i], &cache[i + 1], (size_t)(cache_n - i - 1) * sizeof cache[0]);
    __atomic_store_n(&cache_n, cache_n - 1, __ATOMIC_RELAXED);
    cache_bytes -= e.size;
    drv.unmap(e.va, e.size);
    drv.release(e.handle);
    drv.addr_free(e.va, e.size);
    tf_release(e.dev, e.asked);
}

/* Releases everything cached; with tier_lock held.  Bytes of charge returned. */
static uint64_t cache_flush_locked(void) {
    uint64_t charged = 0;
    while (cache_n > 0) {
        charged += cache[0].asked;
        cache_drop(0);
    }
    return charged;
}

static uint64_t cache_cap(int dev) {
    uint64_t limit = tf_region_limit(dev);
    return limit == 0 ? TIER_CACHE_NO_LIMIT : limit / TIER_CACHE_SHARE;
}

/* Keeps a freed device-resident allocation (charge included), evicting the oldest entries to
 * stay within bounds; 0 when it is too large to keep (the caller frees it).  tier_lock held. */
static int cache_put(const tier_alloc *a) {
    uint64_t cap = a->dev < 0 ? 0 : cache_cap(a->dev);
    /* dev < 0: an allocation whose charge was not recorded has no charge to keep */
    if (a->dev < 0 || a->where != TF_TIER_AT_DEVICE || a->handle == 0 || a->size > cap) return 0;
    while (cache_n > 0 && (cache_n == TIER_CACHE_MAX || cache_bytes + a->size > cap)) cache_drop(0);
    cache[cache_n] = *a;
    cache_bytes += a->size;
    __atomic_store_n(&cache_n, cache_n + 1, __ATOMIC_RELAXED);
    return 1;
}

/* The smallest cached entry of context ctx that serves `size` mapped bytes, the newest of
 * equals (its memory is the most likely still warm, and taking the last entry moves nothing);
 * -1: none. */
static int cache_find(uint64_t size, CUcontext ctx) {
    int best = -1;
    for (int i = 0; i < cache_n; i++) {
        const tier_alloc *e = &cache[i];
        if (e->ctx != ctx || e->size < size || e->size - size > size / TIER_CACHE_SLACK) continue;
        if (best < 0 || e->size <= cache[best].size) best = i; /* ties: the newest, at the end */
    }
    return best;
}

int tf_tier_cache_flush(void) {
    if (__atomic_load_n(&cache_n, __ATOMIC_RELAXED) == 0 || !lock_tier()) return 0;
    int had = cache_n > 0;
    cache_flush_locked();
    set_where(TF_TIER_OK);
    pthread_mutex_unlock(&tier_lock);
    return had;
}

uint64_t tf_tier_cached(int dev) {
    if (__atomic_load_n(&cache_n, __ATOMIC_RELAXED) == 0 || !lock_tier()) return 0;
    uint64_t charged = 0;
    for (int i = 0; i < cache_n; i++)
        if (cache[i].dev == dev) charged += cache[i].asked;
    pthread_mutex_unlock(&tier_lock);
    return charged;
}

/* Everything back toward the device, as far as memory allows; with tier_lock held. */
static uint16_t resume_locked(void) {
    uint16_t result = TF_TIER_OK;
    int moved = 0;
    tf_tier_xfer *xfer = NULL;
    CUcontext caller = NULL, current;
    drv.get_ctx(&caller);
    current = caller;
    for (int i = 0; i < table_n; i++) {
        tier_alloc *a = &table[i];
        if (a->where != TF_TIER_AT_DEVICE) use_ctx(a->ctx, &current, &xfer);
        if (a->where == TF_TIER_AT_DISK) {
            if (xfer == NULL && (xfer = tf_xfer_begin()) == NULL) {
                result = TF_TIER_ERR_HOST;
                continue;
            }
            /* Straight back to the device; into host memory only when the device has no room. */
            if (from_disk(a, xfer, TF_TIER_AT_DEVICE) != CUDA_SUCCESS &&
                from_disk(a, xfer, TF_TIER_AT_HOST) != CUDA_SUCCESS) {
                result = TF_TIER_ERR_HOST;
                continue;
            }
            moved = 1;
        }
        if (a->where == TF_TIER_AT_HOST) {
            if (move_mapped(a, TF_TIER_AT_DEVICE) != CUDA_SUCCESS)
                result = TF_TIER_ERR_DEVICE; /* stays warm: kernels still reach it */
            else
                moved = 1;
        }
    }
    tf_xfer_end(xfer);
    if (current != caller) drv.set_ctx(caller);
    int still = 0;
    for (int i = 0; i < table_n; i++) still |= table[i].where == TF_TIER_AT_DISK;
    if (!still && disk_end != 0) {
        tf_disk_truncate(0);
        disk_end = 0;
    }
    tf_shm_proc *p = tf_region_self();
    if (moved && p != NULL) __atomic_add_fetch(&p->tier_resumes, 1, __ATOMIC_RELAXED);
    set_where(result);
    return result;
}

/* Blocks new work, drains it, moves out; with tier_lock held. */
static uint16_t freeze_locked(int to) {
    cache_flush_locked(); /* nothing to copy: the program freed it */
    __atomic_store_n(&tf_tier_frozen, 1, __ATOMIC_SEQ_CST);
    if (use_membarrier) syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    uint64_t deadline = now_ns() + TIER_DRAIN_NS;
    while (any_in_flight()) {
        if (now_ns() > deadline) {
            set_where(TF_TIER_ERR_BUSY);
            return TF_TIER_ERR_BUSY;
        }
        nap(100000);
    }
    CUcontext caller = NULL, current;
    drv.get_ctx(&caller);
    current = caller;
    for (int i = 0; i < ctx_n; i++) { /* work of every context that made movable memory */
        use_ctx(ctxs[i], &current, NULL);
        if (current == ctxs[i]) drv.sync();
    }
    uint16_t result = TF_TIER_OK;
    int moved = 0;
    /* To disk: each allocation goes straight from where it is to the file (no host memory
     * needed); once the disk refuses, the rest go to the host tier, as a host freeze would. */
    tf_tier_xfer *xfer = NULL;
    int disk_ok = to == TF_TIER_AT_DISK && tf_disk_open();
    if (to == TF_TIER_AT_DISK && !disk_ok) result = TF_TIER_ERR_DISK;
    for (int i = 0; i < table_n && (result == TF_TIER_OK || to == TF_TIER_AT_DISK); i++) {
        tier_alloc *a = &table[i];
        if (a->pinned || a->where == TF_TIER_AT_DISK) continue;
        use_ctx(a->ctx, &current, &xfer);
        if (disk_ok && xfer == NULL && (xfer = tf_xfer_begin()) == NULL) {
            disk_ok = 0;
            result = TF_TIER_ERR_HOST; /* no memory for the bounce buffers: host tier instead */
        }
        if (disk_ok) {
            if (to_disk(a, xfer)) {
                moved = 1;
                continue;
            }
            disk_ok = 0;
            result = TF_TIER_ERR_DISK;
        }
        if (a->where != TF_TIER_AT_DEVICE) continue;
        if (move_mapped(a, TF_TIER_AT_HOST) != CUDA_SUCCESS) {
            result = TF_TIER_ERR_HOST;
            break; /* no host memory: the rest stays on the device */
        }
        moved = 1;
    }
    tf_xfer_end(xfer);
    if (current != caller) drv.set_ctx(caller);
    tf_shm_proc *p = tf_region_self();
    if (moved && p != NULL) __atomic_add_fetch(&p->tier_freezes, 1, __ATOMIC_RELAXED);
    set_where(result);
    return result;
}

/* The watcher: the hypervisor's requests arrive in the limits file (read-only to us). */
static void *watch(void *arg) {
    (void)arg;
    for (;;) {
        nap(TIER_POLL_NS);
        uint64_t seq = __atomic_load_n(&tf_compute_limits->header.tier_request_seq, __ATOMIC_ACQUIRE);
        if (seq == last_seq) continue;
        uint32_t req = __atomic_load_n(&tf_compute_limits->header.tier_request, __ATOMIC_ACQUIRE);
        if (!lock_tier()) continue; /* try again at the next look */
        if (req == TF_TIER_REQ_RESUME)
            resume_locked();
        else if (req == TF_TIER_REQ_HOST || req == TF_TIER_REQ_DISK)
            freeze_locked(req == TF_TIER_REQ_DISK ? TF_TIER_AT_DISK : TF_TIER_AT_HOST);
        last_seq = seq;
        tf_shm_proc *p = tf_region_self();
        if (p != NULL) __atomic_store_n(&p->tier_ack_seq, (uint32_t)seq, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&tier_lock);
    }
    return NULL;
}

static void after_fork_child(void) {
    /* The child has no watcher and its own (new) slot; CUDA does not survive fork.  Its first
     * movable allocation starts a watcher of its own (the once-block runs again). */
    tier_once = (pthread_once_t)PTHREAD_ONCE_INIT;
    ctx_n = 0;
    use_membarrier = 0; /* registration is per address space: the child registers again */
    memset(thread_flags, 0, sizeof thread_flags);
    thread_count = 0;
    tf_tier_my_flag = NULL; /* the forking thread's flag belonged to the parent's table */
    no_flag = 0;
    table_n = 0;
    cache_n = 0; /* the child's CUDA and slot are new: nothing of the parent's is its own */
    cache_bytes = 0;
    disk_end = 0;
    tf_disk_forget();
    __atomic_store_n(&tf_tier_on, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&tf_tier_frozen, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&inflight, 0, __ATOMIC_RELAXED);
}

/* First movable allocation: find the driver functions, start the watcher. */
static void start_once(void) {
    tier_init();
    if (!tier_ready) return;
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    use_membarrier = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                     syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    last_seq = __atomic_load_n(&tf_compute_limits->header.tier_request_seq, __ATOMIC_ACQUIRE);
    tf_shm_proc *p = tf_region_self();
    if (p != NULL) __atomic_store_n(&p->tier_ack_seq, (uint32_t)last_seq, __ATOMIC_RELEASE);
    if (p != NULL) __atomic_store_n(&p->tier_where, (uint16_t)TF_TIER_WATCHING, __ATOMIC_RELEASE);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, watch, NULL) != 0) {
        tier_ready = 0;
        tf_log(TF_LOG_WARN, "VRAM tiering off: cannot start its watcher thread");
    }
    pthread_attr_destroy(&attr);
    pthread_atfork(NULL, NULL, after_fork_child);
}

int tf_tier_enter(void) {
    int *flag = thread_flag();
    for (;;) {
        if (flag != NULL) {
            __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
            __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the freeze's membarrier is the CPU fence */
            if (!__atomic_load_n(&tf_tier_frozen, __ATOMIC_RELAXED)) return 0;
            __atomic_store_n(flag, 0, __ATOMIC_RELEASE);
        } else {
            __atomic_add_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
            if (!__atomic_load_n(&tf_tier_frozen, __ATOMIC_SEQ_CST)) return 0;
            __atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
        }
        if (!lock_tier()) return 1;
        int on_disk = 0;
        if (__atomic_load_n(&tf_tier_frozen, __ATOMIC_SEQ_CST)) {
            resume_locked();
            for (int i = 0; i < table_n; i++) on_disk |= table[i].where == TF_TIER_AT_DISK;
            /* Memory left on the host is usable as it is (warm tier): run on it. */
            if (!on_disk) __atomic_store_n(&tf_tier_frozen, 0, __ATOMIC_SEQ_CST);
        }
        pthread_mutex_unlock(&tier_lock);
        if (on_disk) return 1; /* no host memory to bring it back into: the call fails */
    }
}

void tf_tier_leave(void) {
    if (tf_tier_my_flag != NULL)
        __atomic_store_n(tf_tier_my_flag, 0, __ATOMIC_RELEASE);
    else
        __atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
}

CUresult tf_tier_alloc(CUdeviceptr *dptr, uint64_t bytes, int dev) {
    pthread_once(&tier_once, start_once);
    if (!tier_ready) return CUDA_ERROR_NOT_SUPPORTED; /* the caller uses cuMemAlloc instead */
    CUdevice ordinal = 0;
    CUcontext ctx = NULL;
    if (drv.ctx_dev(&ordinal) != CUDA_SUCCESS || drv.get_ctx(&ctx) != CUDA_SUCCESS) return CUDA_ERROR_NOT_SUPPORTED;
    /* A new allocation needs the GPU: resume first.  Then leave the in-flight count before
     * taking the lock, which a freeze holds while it waits for that count to drain. */
    if (tf_tier_flag_up()) {
        tf_tier_flag_down();
    } else {
        if (tf_tier_enter() != 0) return CUDA_ERROR_OUT_OF_MEMORY;
        tf_tier_leave();
    }
    uint64_t size = (bytes + granularity - 1) / granularity * granularity, handle = 0;
    CUdeviceptr va = 0;
    CUresult rc = CUDA_ERROR_OUT_OF_MEMORY;
    int where = TF_TIER_AT_DEVICE;
    if (!lock_tier()) return rc;
    if (table_n == TIER_MAX) {
        rc = CUDA_ERROR_NOT_SUPPORTED; /* more than the table holds: plain, unmovable memory */
        goto unlock;
    }
    if (!note_ctx(ctx)) {
        rc = CUDA_ERROR_NOT_SUPPORTED; /* more contexts than a freeze drains: plain memory */
        goto unlock;
    }
    /* Past the device's free memory: what the cache of freed allocations holds goes back to
     * the driver first; then the node sells host memory (the warm tier): the new allocation is
     * made there, where kernels still reach it, and a later resume or the hypervisor's "room"
     * request brings it onto the device once there is room. */
    rc = create_at(&handle, size, where, ordinal);
    if (rc == CUDA_ERROR_OUT_OF_MEMORY && cache_n > 0) {
        cache_flush_locked();
        rc = create_at(&handle, size, where, ordinal);
    }
    if (rc == CUDA_ERROR_OUT_OF_MEMORY) {
        where = TF_TIER_AT_HOST;
        rc = create_at(&handle, size, where, ordinal);
    }
    if (rc != CUDA_SUCCESS) goto unlock;
    if ((rc = drv.reserve(&va, size, granularity, 0, 0)) != CUDA_SUCCESS) {
        drv.release(handle);
        goto unlock;
    }
    if ((rc = map_at(va, size, handle, ordinal)) != CUDA_SUCCESS) {
        drv.addr_free(va, size);
        drv.release(handle);
        goto unlock;
    }
    table[table_n++] = (tier_alloc){va, size, bytes, handle, 0, ordinal, dev, where, 0, ctx};
    book_move(TF_TIER_AT_DEVICE, where, size);
    __atomic_store_n(&tf_tier_on, 1, __ATOMIC_RELEASE);
    *dptr = va;
    set_where(TF_TIER_OK);
    /* The call resumed everything it could first, so nothing is on disk: memory on the host is
     * used where it is, not retried on every call. */
    if (where != TF_TIER_AT_DEVICE) __atomic_store_n(&tf_tier_frozen, 0, __ATOMIC_SEQ_CST);
unlock:
    pthread_mutex_unlock(&tier_lock);
    return rc;
}

CUresult tf_tier_reuse(CUdeviceptr *dptr, uint64_t bytes, int *dev) {
    CUcontext ctx = NULL;
    /* A reuse touches no device memory, so it needs no gate; a frozen process goes the way of
     * tf_tier_alloc, which resumes it first (an allocation means it is active again). */
    if (__atomic_load_n(&tf_tier_frozen, __ATOMIC_RELAXED)) return CUDA_ERROR_NOT_FOUND;
    if (__atomic_load_n(&cache_n, __ATOMIC_RELAXED) == 0) return CUDA_ERROR_NOT_FOUND; /* no driver call, no lock */
    if (drv.get_ctx == NULL || drv.get_ctx(&ctx) != CUDA_SUCCESS || ctx == NULL) return CUDA_ERROR_NOT_FOUND;
    if (!lock_tier()) return CUDA_ERROR_NOT_FOUND;
    uint64_t size = (bytes + granularity - 1) / granularity * granularity;
    int hit = table_n < TIER_MAX ? cache_find(size, ctx) : -1;
    if (hit < 0) {
        pthread_mutex_unlock(&tier_lock);
        return CUDA_ERROR_NOT_FOUND;
    }
    tier_alloc e = cache[hit];
    /* The entry carries the charge of the allocation freed into it: settle the difference. */
    if (bytes > e.asked && tf_admit(e.dev, bytes - e.asked) != TF_ADMIT_OK) {
        pthread_mutex_unlock(&tier_lock);
        return CUDA_ERROR_NOT_FOUND; /* the caller's admission flushes the cache and asks again */
    }
    if (bytes < e.asked) tf_release(e.dev, e.asked - bytes);
    memmove(&cache[hit], &cache[hit + 1], (size_t)(cache_n - hit - 1) * sizeof cache[0]);
    __atomic_store_n(&cache_n, cache_n - 1, __ATOMIC_RELAXED);
    cache_bytes -= e.size;
    e.asked = bytes;
    table[table_n++] = e; /* no set_where: the movable and the charged bytes changed alike */
    pthread_mutex_unlock(&tier_lock);
    *dptr = e.va;
    *dev = e.dev;
    return CUDA_SUCCESS;
}

static int find(CUdeviceptr ptr) {
    for (int i = 0; i < table_n; i++)
        if (ptr >= table[i].va && ptr - table[i].va < table[i].size) return i;
    return -1;
}

CUresult tf_tier_free(CUdeviceptr ptr, uint64_t charged, int dev, int *handled) {
    *handled = TF_TIER_NOT_OURS;
    if (!__atomic_load_n(&tf_tier_on, __ATOMIC_ACQUIRE)) return CUDA_SUCCESS;
    if (!lock_tier()) return CUDA_SUCCESS;
    int i = find(ptr);
    if (i < 0 || table[i].va != ptr) { /* not ours, or not the start of ours: the driver says */
        pthread_mutex_unlock(&tier_lock);
        return CUDA_SUCCESS;
    }
    tier_alloc a = table[i];
    table[i] = table[--table_n];
    a.asked = charged;
    a.dev = dev;
    if (cache_put(&a)) { /* no set_where: still charged, still movable, still on the device */
        *handled = TF_TIER_CACHED;
        pthread_mutex_unlock(&tier_lock);
        return CUDA_SUCCESS;
    }
    *handled = TF_TIER_FREED;
    if (a.handle != 0) {
        drv.unmap(a.va, a.size);
        drv.release(a.handle);
    }
    drv.addr_free(a.va, a.size);
    tf_shm_proc *p = tf_region_self();
    if (p != NULL && a.where == TF_TIER_AT_HOST) book(&p->tier_host_bytes, -(int64_t)a.size);
    if (p != NULL && a.where == TF_TIER_AT_DISK) book(&p->tier_disk_bytes, -(int64_t)a.size);
    set_where(TF_TIER_OK);
    pthread_mutex_unlock(&tier_lock);
    return CUDA_SUCCESS;
}

int tf_tier_is_movable(CUdeviceptr ptr) {
    if (!__atomic_load_n(&tf_tier_on, __ATOMIC_ACQUIRE) || !lock_tier()) return 0;
    int found = find(ptr) >= 0;
    pthread_mutex_unlock(&tier_lock);
    return found;
}
