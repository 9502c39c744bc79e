/*
 * Stream-ordered pools: a free gives the bytes back to the pool, which keeps them (still
 * device memory, reused first by its next allocations) up to its release threshold; only
 * what goes beyond returns to the worker.  The threshold follows cuMemPoolSetAttribute, and
 * cuMemPoolTrimTo / cuMemPoolDestroy return what they release.  Kept bytes stay in this
 * process's slot, so a killed process's pools are swept with it.
 *
 * Process-local book under one mutex (a process-local lock dies with its process).
 */
#include <pthread.h>
#include <stdlib.h>

#include "shim.h"

#define CU_MEMPOOL_ATTR_RELEASE_THRESHOLD 4
#define TF_POOLS 256

typedef struct pool_state {
    CUmemoryPool pool;
    uint64_t threshold, kept;
    int dev;
} pool_state;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_state pools[TF_POOLS];

/* The book of pool (lock held); NULL when the book is full (then nothing is kept: the bytes go
 * back at each free, as before pools were followed). */
static pool_state *book(CUmemoryPool pool, int dev) {
    pool_state *free_slot = NULL;
    for (int i = 0; i < TF_POOLS; i++) {
        if (pools[i].pool == pool) {
            if (pools[i].dev < 0) pools[i].dev = dev; /* its threshold came before its first alloc */
            return &pools[i];
        }
        if (pools[i].pool == NULL && free_slot == NULL) free_slot = &pools[i];
    }
    if (free_slot != NULL && dev >= 0) *free_slot = (pool_state){pool, 0, 0, dev};
    return dev >= 0 ? free_slot : NULL;
}

uint64_t tf_pool_take(CUmemoryPool pool, int dev, uint64_t size) {
    if (pool == NULL) return 0;
    pthread_mutex_lock(&pool_lock);
    pool_state *p = book(pool, dev);
    uint64_t reuse = p == NULL || p->dev != dev ? 0 : (p->kept < size ? p->kept : size);
    if (reuse != 0) p->kept -= reuse;
    pthread_mutex_unlock(&pool_lock);
    return reuse;
}

void tf_pool_untake(CUmemoryPool pool, uint64_t bytes) {
    if (pool == NULL || bytes == 0) return;
    pthread_mutex_lock(&pool_lock);
    pool_state *p = book(pool, -1);
    if (p != NULL) p->kept += bytes;
    pthread_mutex_unlock(&pool_lock);
}

/* Keeps up to `keep` of p's bytes; returns what it let go (lock held). */
static uint64_t trim(pool_state *p, uint64_t keep) {
    if (p->kept <= keep) return 0;
    uint64_t excess = p->kept - keep;
    p->kept = keep;
    return excess;
}

void tf_pool_freed(CUmemoryPool pool, int dev, uint64_t bytes) {
    pthread_mutex_lock(&pool_lock);
    pool_state *p = book(pool, dev);
    uint64_t back = bytes;
    if (p != NULL && p->dev == dev) {
        p->kept += bytes;
        back = trim(p, p->threshold);
    }
    pthread_mutex_unlock(&pool_lock);
    if (back != 0) tf_release(dev, back);
}

static void trim_to(CUmemoryPool pool, uint64_t keep, int forget) {
    pthread_mutex_lock(&pool_lock);
    pool_state *p = book(pool, -1);
    uint64_t back = 0;
    int dev = -1;
    if (p != NULL) {
        back = trim(p, keep);
        dev = p->dev;
        if (forget) p->pool = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    if (back != 0) tf_release(dev, back);
}

void tf_pool_set_threshold(CUmemoryPool pool, uint64_t threshold) {
    pthread_mutex_lock(&pool_lock);
    pool_state *p = book(pool, -1);
    if (p == NULL) {
        /* First seen here: its device is the one it allocates on, learned at its first alloc. */
        for (int i = 0; i < TF_POOLS && p == NULL; i++)
            if (pools[i].pool == NULL) p = &pools[i], *p = (pool_state){pool, 0, 0, -1};
    }
    uint64_t back = 0;
    int dev = -1;
    if (p != NULL) {
        p->threshold = threshold;
        back = trim(p, threshold);
        dev = p->dev;
    }
    pthread_mutex_unlock(&pool_lock);
    if (back != 0 && dev >= 0) tf_release(dev, back);
}

void tf_pool_trim(CUmemoryPool pool, uint64_t keep) { trim_to(pool, keep, 0); }
void tf_pool_destroyed(CUmemoryPool pool) { trim_to(pool, 0, 1); }

CUmemoryPool tf_pool_current(void) {
    typedef CUresult (*ctx_dev_fn)(CUdevice *);
    typedef CUresult (*get_pool_fn)(CUmemoryPool *, CUdevice);
    static ctx_dev_fn get_dev;    /* atomic */
    static get_pool_fn get_pool;  /* atomic */
    ctx_dev_fn d = __atomic_load_n(&get_dev, __ATOMIC_ACQUIRE);
    get_pool_fn g = __atomic_load_n(&get_pool, __ATOMIC_ACQUIRE);
    if (d == NULL || g == NULL) {
        d = (ctx_dev_fn)tf_driver_helper("cuCtxGetDevice");
        g = (get_pool_fn)tf_driver_helper("cuDeviceGetMemPool");
        __atomic_store_n(&get_dev, d, __ATOMIC_RELEASE);
        __atomic_store_n(&get_pool, g, __ATOMIC_RELEASE);
    }
    CUdevice dev;
    CUmemoryPool pool = NULL;
    if (d == NULL || g == NULL || d(&dev) != CUDA_SUCCESS || g(&pool, dev) != CUDA_SUCCESS) return NULL;
    return pool;
}

/* A lock a parent's thread held at fork() would never be released in the child. */
void tf_pools_after_fork(void) { pthread_mutex_init(&pool_lock, NULL); }
