/*
 * Simulated contexts, streams, events, modules and kernel launches.  SIMULATED: kernels do
 * not run; each takes time on a timeline shared by every process of the machine.
 *
 * Time-cost model of a launch (documented in docs/native.md):
 *   threads  = gridX*gridY*gridZ * blockX*blockY*blockZ   (= the shim's launch cost)
 *   waves    = threads / (sm_count * 2048)                (2048 resident threads per SM;
 *                                                          fractional: linear in threads)
 *   duration = waves * wave_ns * 100 / speed_percent      (capped at 10 s)
 * A kernel starts when both its stream's previous work and the device's previous kernel
 * (from any process) are done: the device runs one kernel at a time, like time slicing.
 * A launch waits (bounded) while its stream has more than 1 s of queued work, as a real
 * driver blocks when its launch queue is full.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_cuda.h"

#define TF_MAX_KERNEL_NS 10000000000ULL
#define TF_QUEUE_NS 1000000000ULL
#define TF_CTX_STACK 16

static struct CUctx_st primaries[TF_SIM_MAX_DEVICES];
static __thread CUcontext ctx_stack[TF_CTX_STACK];
static __thread int ctx_depth; /* ctx_stack[ctx_depth - 1] is current */

static CUcontext primary_of(CUdevice dev) {
    int physical = tf_physical(dev);
    if (physical < 0) return NULL;
    CUcontext c = &primaries[dev];
    if (c->magic != TF_CTX_MAGIC) {
        c->ordinal = dev;
        c->physical = physical;
        c->primary = 1;
        __atomic_store_n(&c->magic, TF_CTX_MAGIC, __ATOMIC_RELEASE);
    }
    return c;
}

static int valid_ctx(CUcontext c) { return c != NULL && c->magic == TF_CTX_MAGIC; }

CUcontext tf_current(CUresult *rc) {
    *rc = tf_need_init();
    if (*rc != CUDA_SUCCESS) return NULL;
    CUcontext c = ctx_depth > 0 ? ctx_stack[ctx_depth - 1] : NULL;
    if (!valid_ctx(c)) {
        *rc = CUDA_ERROR_INVALID_CONTEXT;
        return NULL;
    }
    return c;
}

void tf_wait_until(uint64_t t) {
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ULL), .tv_nsec = (long)(t % 1000000000ULL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void atomic_max(uint64_t *p, uint64_t v) {
    uint64_t old = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}

uint64_t *tf_stream_tail(CUstream stream, CUcontext ctx, CUresult *rc) {
    *rc = CUDA_SUCCESS;
    if (stream == NULL || stream == CU_STREAM_LEGACY || stream == CU_STREAM_PER_THREAD) return &ctx->tail_ns;
    if (stream->magic != TF_STREAM_MAGIC) {
        *rc = CUDA_ERROR_INVALID_HANDLE;
        return NULL;
    }
    return &stream->tail_ns;
}

uint64_t tf_enqueue(CUcontext ctx, uint64_t *tail, uint64_t duration_ns, int busy) {
    uint64_t now = tf_sim_now_ns(), prev = __atomic_load_n(tail, __ATOMIC_ACQUIRE);
    if (prev > now + TF_QUEUE_NS) {
        tf_wait_until(prev - TF_QUEUE_NS);
        now = tf_sim_now_ns();
    }
    uint64_t start = prev > now ? prev : now, end;
    if (busy) {
        tf_sim_device *d = &tf_sim_state_get()->devices[ctx->physical];
        uint64_t old = __atomic_load_n(&d->busy_until_ns, __ATOMIC_ACQUIRE), s;
        do {
            s = old > start ? old : start;
            end = s + duration_ns;
        } while (!__atomic_compare_exchange_n(&d->busy_until_ns, &old, end, 1, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE));
        if (duration_ns > 0) tf_sim_account_busy(ctx->physical, s, end);
    } else {
        end = start + duration_ns;
    }
    atomic_max(tail, end);
    if (tail != &ctx->tail_ns) atomic_max(&ctx->tail_ns, end);
    return end;
}

/* ---- primary contexts ---- */

TF_SIM_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUcontext c = primary_of(dev);
    if (c == NULL) return CUDA_ERROR_INVALID_DEVICE;
    __atomic_add_fetch(&c->retains, 1, __ATOMIC_ACQ_REL);
    *pctx = c;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    CUcontext c = primary_of(dev);
    if (c == NULL) return CUDA_ERROR_INVALID_DEVICE;
    int n = __atomic_load_n(&c->retains, __ATOMIC_ACQUIRE);
    do {
        if (n <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    } while (!__atomic_compare_exchange_n(&c->retains, &n, n - 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    return CUDA_SUCCESS;
}
TF_SIM_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev) { return cuDevicePrimaryCtxRelease_v2(dev); }

TF_SIM_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (flags == NULL || active == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUcontext c = primary_of(dev);
    if (c == NULL) return CUDA_ERROR_INVALID_DEVICE;
    *flags = 0;
    *active = __atomic_load_n(&c->retains, __ATOMIC_ACQUIRE) > 0;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags) {
    CUresult rc = tf_need_init();
    (void)flags;
    if (rc != CUDA_SUCCESS) return rc;
    return primary_of(dev) == NULL ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}
TF_SIM_API CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags) {
    return cuDevicePrimaryCtxSetFlags_v2(dev, flags);
}

TF_SIM_API CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    CUcontext c = primary_of(dev);
    if (c == NULL) return CUDA_ERROR_INVALID_DEVICE;
    tf_wait_until(__atomic_load_n(&c->tail_ns, __ATOMIC_ACQUIRE));
    tf_cls_context_gone(c);
    __atomic_store_n(&c->retains, 0, __ATOMIC_RELEASE);
    return CUDA_SUCCESS;
}
TF_SIM_API CUresult cuDevicePrimaryCtxReset(CUdevice dev) { return cuDevicePrimaryCtxReset_v2(dev); }

/* ---- created contexts and the per-thread context stack ---- */

static CUresult create_ctx(CUcontext *pctx, CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    int physical = tf_physical(dev);
    if (physical < 0) return CUDA_ERROR_INVALID_DEVICE;
    if (ctx_depth >= TF_CTX_STACK) return CUDA_ERROR_INVALID_VALUE;
    CUcontext c = calloc(1, sizeof *c);
    if (c == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    c->ordinal = dev;
    c->physical = physical;
    c->magic = TF_CTX_MAGIC;
    ctx_stack[ctx_depth++] = c; /* a new context becomes current, pushed */
    *pctx = c;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev) {
    (void)flags;
    return create_ctx(pctx, dev);
}
TF_SIM_API CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params, int count, unsigned int flags,
                                   CUdevice dev) {
    (void)params;
    (void)count;
    (void)flags;
    return create_ctx(pctx, dev);
}
TF_SIM_API CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags, CUdevice dev) {
    (void)params;
    (void)flags;
    return create_ctx(pctx, dev);
}

TF_SIM_API CUresult cuCtxDestroy_v2(CUcontext ctx) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_ctx(ctx) || ctx->primary) return CUDA_ERROR_INVALID_CONTEXT;
    tf_wait_until(__atomic_load_n(&ctx->tail_ns, __ATOMIC_ACQUIRE));
    for (int i = 0; i < ctx_depth; i++)
        if (ctx_stack[i] == ctx) {
            memmove(&ctx_stack[i], &ctx_stack[i + 1], (size_t)(ctx_depth - i - 1) * sizeof ctx);
            ctx_depth--;
            i--;
        }
    tf_cls_context_gone(ctx);
    ctx->magic = 0; /* other threads that still hold it get INVALID_CONTEXT */
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxSetCurrent(CUcontext ctx) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (ctx == NULL) { /* unbinds: the thread has no current context until one is set */
        if (ctx_depth > 0) ctx_stack[ctx_depth - 1] = NULL;
        return CUDA_SUCCESS;
    }
    if (!valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth == 0) ctx_depth = 1;
    ctx_stack[ctx_depth - 1] = ctx;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxGetCurrent(CUcontext *pctx) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    *pctx = ctx_depth > 0 ? ctx_stack[ctx_depth - 1] : NULL;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth >= TF_CTX_STACK) return CUDA_ERROR_INVALID_VALUE;
    ctx_stack[ctx_depth++] = ctx;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxPopCurrent_v2(CUcontext *pctx) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (ctx_depth == 0) return CUDA_ERROR_INVALID_CONTEXT;
    CUcontext c = ctx_stack[--ctx_depth];
    if (pctx != NULL) *pctx = c;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxGetDevice(CUdevice *device) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    *device = c->ordinal;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx) {
    if (ctx == NULL) return cuCtxGetDevice(device);
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    *device = ctx->ordinal;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (version == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (ctx != NULL && !valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    *version = 12010; /* CUDA 12.1+ context ABI */
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxSynchronize(void) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if ((rc = tf_capture_ctx_sync(c)) != CUDA_SUCCESS) return rc;
    tf_wait_until(__atomic_load_n(&c->tail_ns, __ATOMIC_ACQUIRE));
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuCtxSynchronize_v2(CUcontext ctx) {
    if (ctx == NULL) return cuCtxSynchronize();
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    if ((rc = tf_capture_ctx_sync(ctx)) != CUDA_SUCCESS) return rc;
    tf_wait_until(__atomic_load_n(&ctx->tail_ns, __ATOMIC_ACQUIRE));
    return CUDA_SUCCESS;
}

/* ---- streams ---- */

TF_SIM_API CUresult cuStreamCreate(CUstream *phStream, unsigned int flags) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (phStream == NULL || (flags & ~(unsigned int)CU_STREAM_NON_BLOCKING) != 0) return CUDA_ERROR_INVALID_VALUE;
    CUstream s = calloc(1, sizeof *s);
    if (s == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    s->ctx = c;
    s->flags = flags;
    s->magic = TF_STREAM_MAGIC;
    *phStream = s;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority) {
    (void)priority;
    return cuStreamCreate(phStream, flags);
}

TF_SIM_API CUresult cuStreamDestroy_v2(CUstream stream) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (stream == NULL || stream->magic != TF_STREAM_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    tf_capture_stream_gone(stream);
    stream->magic = 0; /* pending work still completes: it lives on the context's tail */
    free(stream);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuStreamSynchronize(CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if ((rc = tf_capture_stream_sync(stream)) != CUDA_SUCCESS) return rc;
    tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE));
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuStreamQuery(CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if ((rc = tf_capture_stream_sync(stream)) != CUDA_SUCCESS) return rc;
    return tf_sim_now_ns() >= __atomic_load_n(tail, __ATOMIC_ACQUIRE) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

/* ---- events ---- */

TF_SIM_API CUresult cuEventCreate(CUevent *phEvent, unsigned int flags) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    (void)flags;
    if (c == NULL) return rc;
    if (phEvent == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUevent e = calloc(1, sizeof *e);
    if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    e->magic = TF_EVENT_MAGIC;
    *phEvent = e;
    return CUDA_SUCCESS;
}

static int valid_event(CUevent e) { return e != NULL && e->magic == TF_EVENT_MAGIC; }

TF_SIM_API CUresult cuEventDestroy_v2(CUevent e) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_event(e)) return CUDA_ERROR_INVALID_HANDLE;
    e->magic = 0;
    free(e);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuEventRecord(CUevent e, CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (!valid_event(e)) return CUDA_ERROR_INVALID_HANDLE;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if (tf_capture_event_record(e, stream, &rc)) return rc; /* recorded inside a capture */
    uint64_t now = tf_sim_now_ns(), t = __atomic_load_n(tail, __ATOMIC_ACQUIRE);
    e->capture_id = 0;
    e->time_ns = t > now ? t : now;
    __atomic_store_n(&e->recorded, 1, __ATOMIC_RELEASE);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuEventRecordWithFlags(CUevent e, CUstream stream, unsigned int flags) {
    (void)flags;
    return cuEventRecord(e, stream);
}

TF_SIM_API CUresult cuEventQuery(CUevent e) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_event(e)) return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = tf_capture_event_check(e)) != CUDA_SUCCESS) return rc;
    if (!__atomic_load_n(&e->recorded, __ATOMIC_ACQUIRE)) return CUDA_SUCCESS;
    return tf_sim_now_ns() >= e->time_ns ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

TF_SIM_API CUresult cuEventSynchronize(CUevent e) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (!valid_event(e)) return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = tf_capture_event_check(e)) != CUDA_SUCCESS) return rc;
    if (__atomic_load_n(&e->recorded, __ATOMIC_ACQUIRE)) tf_wait_until(e->time_ns);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuEventElapsedTime_v2(float *ms, CUevent start, CUevent end) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (ms == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_event(start) || !valid_event(end) || !start->recorded || !end->recorded)
        return CUDA_ERROR_INVALID_HANDLE;
    uint64_t now = tf_sim_now_ns();
    if (now < start->time_ns || now < end->time_ns) return CUDA_ERROR_NOT_READY;
    *ms = (float)((double)((int64_t)(end->time_ns - start->time_ns)) / 1e6);
    return CUDA_SUCCESS;
}
TF_SIM_API CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end) {
    return cuEventElapsedTime_v2(ms, start, end);
}

TF_SIM_API CUresult cuStreamWaitEvent(CUstream stream, CUevent e, unsigned int flags) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    (void)flags;
    if (c == NULL) return rc;
    if (!valid_event(e)) return CUDA_ERROR_INVALID_HANDLE;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if (tf_capture_wait_event(stream, e, &rc)) return rc; /* fork, join, or refused */
    if (e->recorded) atomic_max(tail, e->time_ns);
    return CUDA_SUCCESS;
}

/* ---- launches ---- */

/* Linear in threads, so launch cost per second maps to busy time per second exactly. */
uint64_t tf_kernel_ns(CUcontext ctx, uint64_t threads) {
    const tf_sim_device *d = &tf_sim_state_get()->devices[ctx->physical];
    unsigned __int128 per_wave = (unsigned __int128)(d->sm_count ? d->sm_count : 1) * 2048u;
    unsigned __int128 ns = (unsigned __int128)threads * d->wave_ns * 100u /
                           (per_wave * (d->speed_percent ? d->speed_percent : 100));
    /* Kernels do not touch memory on the simulator, so which one reads host-placed memory is
     * unknown: a process with a fraction f of its memory host-placed runs every kernel
     * (1 + (slowdown - 1) * f) times longer (reads over PCIe instead of HBM). */
    uint64_t host = tf_host_mapped_bytes();
    if (host > 0) {
        int slot = tf_sim_self_slot();
        uint64_t device = slot < 0 ? 0 : __atomic_load_n(&tf_sim_state_get()->procs[slot].used[ctx->physical],
                                                         __ATOMIC_ACQUIRE);
        uint64_t extra = tf_sim_config_get()->host_slowdown - 100;
        ns += ns * extra * host / (100u * (unsigned __int128)(host + device));
    }
    return ns > TF_MAX_KERNEL_NS ? TF_MAX_KERNEL_NS : (uint64_t)ns;
}

static CUresult launch(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                       unsigned int by, unsigned int bz, CUstream stream) {
    CUresult rc;
    CUcontext c = tf_current(&rc);
    if (c == NULL) return rc;
    if (!tf_function_valid(f)) return CUDA_ERROR_INVALID_HANDLE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0) return CUDA_ERROR_INVALID_VALUE;
    uint64_t block = (uint64_t)bx * by * bz;
    if (block > 1024 || bz > 64 || gy > 65535 || gz > 65535) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *tail = tf_stream_tail(stream, c, &rc);
    if (tail == NULL) return rc;
    if (tf_capture_maybe(stream)) {
        tf_graph_op op = {.type = CU_GRAPH_NODE_TYPE_KERNEL,
                          .kernel = {.func = f, .gridDimX = gx, .gridDimY = gy, .gridDimZ = gz,
                                     .blockDimX = bx, .blockDimY = by, .blockDimZ = bz}};
        if (tf_capture_op(stream, &op, &rc)) return rc;
    }
    uint64_t threads = (uint64_t)gx * gy * gz * block;
    tf_enqueue(c, tail, tf_kernel_ns(c, threads), 1);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                   unsigned int by, unsigned int bz, unsigned int shmem, CUstream stream,
                                   void **params, void **extra) {
    (void)shmem;
    (void)params;
    (void)extra;
    return launch(f, gx, gy, gz, bx, by, bz, stream);
}

TF_SIM_API CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
                                              unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem,
                                              CUstream stream, void **params) {
    (void)shmem;
    (void)params;
    return launch(f, gx, gy, gz, bx, by, bz, stream);
}

TF_SIM_API CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **params, void **extra) {
    (void)params;
    (void)extra;
    if (config == NULL) return CUDA_ERROR_INVALID_VALUE;
    return launch(f, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY,
                  config->blockDimZ, config->hStream);
}
