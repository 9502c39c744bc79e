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

TF_SIM_API CUresult cuCtxSetLimit(int limit, size_t value) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (limit < 0 || limit > CU_LIMIT_MALLOC_HEAP_SIZE) return CUDA_SUCCESS; /* no memory behind the others */
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
    if (limit < 0 || limit > CU_LIMIT_MALLOC_HEAP_SIZE) return CUDA_ERROR_UNSUPPORTED_LIMIT;
    pthread_mutex_lock(&lock);
    int i = slot_of(c);
    *value = i >= 0 ? table[i].value[limit] : defaults[limit];
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}
