/*
 * Context limits that reserve device memory (cuCtxSetLimit): the device-side malloc heap,
 * the printf FIFO and the per-thread stack, which the driver reserves for every thread the
 * device can hold at once.  SIMULATED: what goes beyond the defaults a context starts with is
 * charged to the device when set (and given back when lowered); a context's reservation is
 * not returned at cuCtxDestroy, only when its process ends, like any of its memory.
 */
#include <pthread.h>

#include "sim_cuda.h"
#include "tf/ctx_limits.h"

#define CONTEXTS 64

static const uint64_t defaults[3] = {TF_LIMIT_DEFAULTS};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* process-local */
static struct {
    CUcontext ctx;
    uint64_t value[3];
} table[CONTEXTS];

/* Device bytes a limit of `value` reserves beyond the context's defaults. */
static uint64_t reserved(int limit, uint64_t value, int physical) {
    return tf_limit_reserved(limit, value, (uint64_t)tf_sim_state_get()->devices[physical].sm_count * 2048u);
}

static int slot_of(CUcontext c) {
    for (int i = 0; i < CONTEXTS; i++)
        if (table[i].ctx == c) return i;
    for (int i = 0; i < CONTEXTS; i++)
        if (table[i].ctx == NULL) {
            table[i].ctx = c;
            for (int l = 0; l < 3; l++) table[i].value[l] = defaults[l];
            return i;
        }
    return -1;
}

/* The limits with no memory behind them (3..9: sync depth, pending launches, L2 fetch
 * granularity, persisting L2, SHMEM_SIZE, CIG, CIG_SHMEM_FALLBACK), per process: their
 * defaults as an H100 reports them. */
static size_t other_limits[10] = {0, 0, 0, 2, 2048, 64, 0, 232448, 0, 0};

static CUresult set_other_limit(int limit, size_t value) {
    if (limit > 9 || limit == 7 || limit == 8) return CUDA_ERROR_INVALID_VALUE; /* 7, 8: query only */
    if (limit == 5 && value > 128) return CUDA_ERROR_INVALID_VALUE;
    if (limit == 6 && value > 31457280) value = 31457280; /* clamped to MAX_PERSISTING_L2_CACHE_SIZE */
    __atomic_store_n(&other_limits[limit], value, __ATOMIC_RELAXED);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxSetLimit(int limit, size_t value) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (limit < 0) return CUDA_ERROR_INVALID_VALUE;
    if (limit > CU_LIMIT_MALLOC_HEAP_SIZE) return set_other_limit(limit, value);
    pthread_mutex_lock(&lock);
    int i = slot_of(c);
    rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (i >= 0) {
        uint64_t before = reserved(limit, table[i].value[limit], c->physical), after = reserved(limit, value, c->physical);
        if (after <= before || tf_sim_charge(c->physical, after - before)) {
            if (after < before) tf_sim_uncharge(c->physical, before - after);
            table[i].value[limit] = value;
            rc = CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

TF_SIM_API CUresult cuCtxGetLimit(size_t *value, int limit) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (limit < 0 || limit > 9) return CUDA_ERROR_INVALID_VALUE;
    if (limit > CU_LIMIT_MALLOC_HEAP_SIZE) {
        *value = __atomic_load_n(&other_limits[limit], __ATOMIC_RELAXED);
        return CUDA_SUCCESS;
    }
    pthread_mutex_lock(&lock);
    int i = slot_of(c);
    *value = i >= 0 ? table[i].value[limit] : defaults[limit];
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}
