/*
 * ctx_limits.h - device memory a context limit reserves (cuCtxSetLimit), shared by the shim
 * (which charges it to the worker) and the simulator (which charges it to the device).
 *
 * A context starts with the driver's defaults: 1 KiB of stack per thread, a 1 MiB printf
 * FIFO, an 8 MiB device malloc heap.  Raising one reserves what goes beyond: the FIFO and
 * heap byte for byte, the stack for every thread the device holds at once.
 */
#ifndef TF_CTX_LIMITS_H
#define TF_CTX_LIMITS_H

#include <stdint.h>

#include "tf/cuda_abi.h"

#define TF_LIMIT_DEFAULTS 1024ULL, 1ULL << 20, 8ULL << 20 /* stack, printf FIFO, heap */

/* Bytes of device memory `limit` at `value` reserves beyond the defaults; 0 for a limit with
 * no memory behind it.  resident_threads = SM count x threads per SM. */
static inline uint64_t tf_limit_reserved(int limit, uint64_t value, uint64_t resident_threads) {
    static const uint64_t defaults[3] = {TF_LIMIT_DEFAULTS};
    if (limit < CU_LIMIT_STACK_SIZE || limit > CU_LIMIT_MALLOC_HEAP_SIZE || value <= defaults[limit]) return 0;
    uint64_t extra = value - defaults[limit];
    if (limit != CU_LIMIT_STACK_SIZE) return extra;
    if (resident_threads == 0) resident_threads = 1;
    return extra > UINT64_MAX / resident_threads ? UINT64_MAX : extra * resident_threads;
}

#endif /* TF_CTX_LIMITS_H */
