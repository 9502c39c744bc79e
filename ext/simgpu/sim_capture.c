/*
 * Simulated stream capture (cuStreamBeginCapture ... cuStreamEndCapture).  A capturing stream
 * runs nothing: kernels, async copies and memsets, host functions, cuMemAllocAsync /
 * cuMemFreeAsync and graph launches issued to it become nodes of the capture's graph
 * (sim_graph.c), which the program instantiates and launches like any other.  A captured
 * cuMemAllocAsync returns the address its memory-allocation node will have and allocates
 * nothing until the graph runs; a captured free must name a graph allocation.
 *
 * The driver's rules that programs meet, as documented in cuda.h:
 * - capture starts on a created stream (not the legacy stream: CUDA_ERROR_INVALID_VALUE) that
 *   is not capturing, and ends on that stream (a stream that joined it: ..._UNMATCHED), from the
 *   same thread unless the mode is RELAXED (..._WRONG_THREAD);
 * - an event recorded in a capturing stream and waited for by another stream makes that
 *   stream join the capture (fork); the origin must wait for an event recorded after the
 *   joined stream's last work before the end (join), else the end answers ..._UNJOINED;
 *   waiting for an uncaptured event in a capturing stream is ..._ISOLATION, for one of
 *   another capture ..._MERGE; querying or synchronizing an event last recorded in a capture
 *   in progress is CUDA_ERROR_CAPTURED_EVENT;
 * - synchronizing a capturing stream (cuStreamSynchronize, cuStreamQuery) or its context
 *   answers ..._UNSUPPORTED; work on the legacy stream while a blocking stream of the context
 *   captures answers ..._IMPLICIT; calls unsafe during capture (cuMemAlloc, synchronous
 *   copies and memsets) answer ..._UNSUPPORTED when the calling thread's mode prohibits them
 *   (cuThreadExchangeStreamCaptureMode: GLOBAL, the default, is prohibited by its own
 *   non-relaxed captures and other threads' GLOBAL ones; THREAD_LOCAL by its own; RELAXED
 *   never).  Each of these errors invalidates the capture: its end answers
 *   ..._INVALIDATED with a NULL graph.
 * SIMULATED: node dependencies are not tracked (an executable runs its nodes in insertion
 * order); the per-thread default stream cannot be captured (the simulator gives every thread
 * the context's one default stream: CUDA_ERROR_NOT_SUPPORTED).
 *
 * State lives under one process-local mutex; the hot paths (every launch, copy and memset)
 * only load one counter while no capture is active.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cuda.h"

struct tf_capture {
    uint64_t id; /* unique over the process's life */
    int mode;
    int invalidated;
    pthread_t thread; /* that began it */
    CUgraph graph;
    int owns_graph; /* 0: cuStreamBeginCaptureToGraph's graph, the caller's */
    CUstream *streams; /* streams[0] is the origin; then the streams that joined */
    size_t stream_count, stream_cap;
};

static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;
static tf_capture **captures;
static size_t capture_count, capture_cap;
static int active; /* atomic: capture_count, for the lock-free fast path */
static uint64_t last_id;
static __thread int thread_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;

static int created(CUstream s) {
    return s != NULL && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD && s->magic == TF_STREAM_MAGIC;
}
static int legacy(CUstream s) { return s == NULL || s == CU_STREAM_LEGACY; }

static tf_capture *capture_of(CUstream s) {
    return created(s) ? __atomic_load_n(&s->capture, __ATOMIC_ACQUIRE) : NULL;
}

int tf_capture_maybe(CUstream stream) {
    if (__builtin_expect(__atomic_load_n(&active, __ATOMIC_ACQUIRE) == 0, 1)) return 0;
    return legacy(stream) || capture_of(stream) != NULL;
}

/* Whether a blocking stream of ctx captures (lock held); invalidates those captures when asked. */
static int blocking_capture(CUcontext ctx, int invalidate) {
    int found = 0;
    for (size_t i = 0; i < capture_count; i++) {
        tf_capture *c = captures[i];
        for (size_t j = 0; j < c->stream_count; j++) {
            if (c->streams[j]->ctx != ctx || (c->streams[j]->flags & CU_STREAM_NON_BLOCKING)) continue;
            found = 1;
            if (invalidate) c->invalidated = 1;
            break;
        }
    }
    return found;
}

static tf_capture *find_capture(uint64_t id) {
    for (size_t i = 0; i < capture_count; i++)
        if (captures[i]->id == id) return captures[i];
    return NULL;
}

static int member(const tf_capture *c, CUstream s) {
    for (size_t i = 0; i < c->stream_count; i++)
        if (c->streams[i] == s) return 1;
    return 0;
}

static int add_stream(tf_capture *c, CUstream s) {
    if (c->stream_count == c->stream_cap) {
        size_t cap = c->stream_cap ? c->stream_cap * 2 : 4;
        CUstream *grown = realloc(c->streams, cap * sizeof *grown);
        if (grown == NULL) return 0;
        c->streams = grown;
        c->stream_cap = cap;
    }
    c->streams[c->stream_count++] = s;
    s->cap_work = s->cap_joined = 0;
    s->cap_last = NULL;
    __atomic_store_n(&s->capture, c, __ATOMIC_RELEASE);
    return 1;
}

/* Ends c for all its streams and forgets it (lock held). */
static void finish(tf_capture *c) {
    for (size_t i = 0; i < c->stream_count; i++) __atomic_store_n(&c->streams[i]->capture, NULL, __ATOMIC_RELEASE);
    for (size_t i = 0; i < capture_count; i++)
        if (captures[i] == c) {
            captures[i] = captures[--capture_count];
            break;
        }
    __atomic_store_n(&active, (int)capture_count, __ATOMIC_RELEASE);
    free(c->streams);
    free(c);
}

/* Work issued to `stream` while captures may run (capture_lock held): the live capture that
 * records it, with *handled = 1 and *rc = CUDA_SUCCESS; or NULL, with *handled = 1 and *rc
 * set when the call is answered here (legacy-stream work beside a blocking capture, a
 * capture already invalidated), *handled = 0 when the stream does not capture. */
static tf_capture *capture_for_work(CUstream stream, CUcontext ctx, CUresult *rc, int *handled) {
    tf_capture *c = capture_of(stream);
    *handled = 0;
    if (legacy(stream)) {
        if (blocking_capture(ctx, 1)) *rc = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, *handled = 1;
        return NULL;
    }
    if (c == NULL) return NULL;
    *handled = 1;
    *rc = c->invalidated ? CUDA_ERROR_STREAM_CAPTURE_INVALIDATED : CUDA_SUCCESS;
    return c->invalidated ? NULL : c;
}

int tf_capture_op(CUstream stream, const tf_graph_op *op, CUresult *rc) {
    CUresult ctx_rc;
    CUcontext ctx = tf_current(&ctx_rc);
    if (ctx == NULL) return 0; /* the caller reports it */
    int handled;
    pthread_mutex_lock(&capture_lock);
    tf_capture *c = capture_for_work(stream, ctx, rc, &handled);
    if (c != NULL) {
        CUgraphNode node = NULL;
        *rc = tf_graph_add_captured(c->graph, op, &node);
        if (*rc == CUDA_SUCCESS) stream->cap_work++, stream->cap_last = node;
    }
    pthread_mutex_unlock(&capture_lock);
    return handled;
}

/* Whether c prohibits the calling thread's unsafe calls (lock held). */
static int prohibits(const tf_capture *c) {
    if (thread_mode == CU_STREAM_CAPTURE_MODE_RELAXED) return 0;
    int mine = pthread_equal(c->thread, pthread_self());
    if (mine) return c->mode != CU_STREAM_CAPTURE_MODE_RELAXED;
    return thread_mode == CU_STREAM_CAPTURE_MODE_GLOBAL && c->mode == CU_STREAM_CAPTURE_MODE_GLOBAL;
}

CUresult tf_capture_sync_guard(CUcontext ctx) {
    if (__builtin_expect(__atomic_load_n(&active, __ATOMIC_ACQUIRE) == 0, 1)) return CUDA_SUCCESS;
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&capture_lock);
    for (size_t i = 0; i < capture_count; i++)
        if (prohibits(captures[i])) captures[i]->invalidated = 1, rc = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    if (rc == CUDA_SUCCESS && ctx != NULL && blocking_capture(ctx, 1)) rc = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    pthread_mutex_unlock(&capture_lock);
    return rc;
}

CUresult tf_capture_stream_sync(CUstream stream) {
    if (__builtin_expect(__atomic_load_n(&active, __ATOMIC_ACQUIRE) == 0, 1)) return CUDA_SUCCESS;
    CUresult rc = CUDA_SUCCESS, ctx_rc;
    CUcontext ctx = tf_current(&ctx_rc);
    pthread_mutex_lock(&capture_lock);
    tf_capture *c = capture_of(stream);
    if (c != NULL) {
        c->invalidated = 1;
        rc = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    } else if (legacy(stream) && ctx != NULL && blocking_capture(ctx, 1)) {
        rc = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    }
    pthread_mutex_unlock(&capture_lock);
    return rc;
}

CUresult tf_capture_ctx_sync(CUcontext ctx) {
    if (__builtin_expect(__atomic_load_n(&active, __ATOMIC_ACQUIRE) == 0, 1)) return CUDA_SUCCESS;
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&capture_lock);
    for (size_t i = 0; i < capture_count; i++)
        for (size_t j = 0; j < captures[i]->stream_count; j++)
            if (captures[i]->streams[j]->ctx == ctx) captures[i]->invalidated = 1, rc = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    pthread_mutex_unlock(&capture_lock);
    return rc;
}

int tf_capture_event_record(CUevent e, CUstream stream, CUresult *rc) {
    if (!tf_capture_maybe(stream)) return 0;
    CUresult ctx_rc;
    CUcontext ctx = tf_current(&ctx_rc);
    if (ctx == NULL) return 0;
    int handled;
    pthread_mutex_lock(&capture_lock);
    tf_capture *c = capture_for_work(stream, ctx, rc, &handled);
    if (c != NULL) {
        e->capture_id = c->id;
        e->cap_stream = stream;
        e->cap_work = stream->cap_work;
    }
    pthread_mutex_unlock(&capture_lock);
    return handled;
}

int tf_capture_wait_event(CUstream stream, CUevent e, CUresult *rc) {
    if (__builtin_expect(__atomic_load_n(&active, __ATOMIC_ACQUIRE) == 0, 1)) return 0;
    CUresult ctx_rc;
    CUcontext ctx = tf_current(&ctx_rc);
    if (ctx == NULL) return 0;
    pthread_mutex_lock(&capture_lock);
    tf_capture *from = e->capture_id != 0 ? find_capture(e->capture_id) : NULL, *into = capture_of(stream);
    int handled = 1;
    if (from == NULL && into == NULL) {
        handled = legacy(stream) && blocking_capture(ctx, 1);
        if (handled) *rc = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    } else if (from == NULL) {
        *rc = CUDA_ERROR_STREAM_CAPTURE_ISOLATION; /* uncaptured work would cross into the capture */
        into->invalidated = 1;
    } else if (from->invalidated) {
        *rc = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    } else if (into == NULL) { /* fork: the stream joins the capture */
        if (legacy(stream)) *rc = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, from->invalidated = 1;
        else if (!created(stream)) *rc = CUDA_ERROR_NOT_SUPPORTED; /* SIMULATED: no per-thread stream */
        else *rc = add_stream(from, stream) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
        if (*rc == CUDA_SUCCESS) stream->cap_last = NULL;
    } else if (into != from) {
        *rc = CUDA_ERROR_STREAM_CAPTURE_MERGE;
        into->invalidated = from->invalidated = 1;
    } else { /* within one capture: the origin waiting for a joined stream joins it back */
        if (stream == from->streams[0] && e->cap_stream != stream && member(from, e->cap_stream) &&
            e->cap_stream->cap_joined < e->cap_work)
            e->cap_stream->cap_joined = e->cap_work;
        *rc = CUDA_SUCCESS;
    }
    pthread_mutex_unlock(&capture_lock);
    return handled;
}

CUresult tf_capture_event_check(CUevent e) {
    if (__builtin_expect(__atomic_load_n(&active, __ATOMIC_ACQUIRE) == 0, 1) || e->capture_id == 0) return CUDA_SUCCESS;
    pthread_mutex_lock(&capture_lock);
    int capturing = find_capture(e->capture_id) != NULL;
    pthread_mutex_unlock(&capture_lock);
    return capturing ? CUDA_ERROR_CAPTURED_EVENT : CUDA_SUCCESS;
}

void tf_capture_stream_gone(CUstream stream) {
    pthread_mutex_lock(&capture_lock);
    tf_capture *c = capture_of(stream);
    if (c != NULL) {
        for (size_t i = 0; i < c->stream_count; i++)
            if (c->streams[i] == stream) {
                if (i == 0) c->invalidated = 1; /* nobody can end it now */
                memmove(&c->streams[i], &c->streams[i + 1], (c->stream_count - i - 1) * sizeof *c->streams);
                c->stream_count--;
                break;
            }
        if (c->stream_count == 0) {
            if (c->owns_graph) cuGraphDestroy(c->graph);
            finish(c);
        }
    }
    pthread_mutex_unlock(&capture_lock);
}

/* ---- the API ---- */

static CUresult begin(CUstream stream, CUgraph into, int mode) {
    CUresult rc;
    if (tf_current(&rc) == NULL) return rc;
    if (mode < CU_STREAM_CAPTURE_MODE_GLOBAL || mode > CU_STREAM_CAPTURE_MODE_RELAXED || legacy(stream))
        return CUDA_ERROR_INVALID_VALUE;
    if (stream == CU_STREAM_PER_THREAD) return CUDA_ERROR_NOT_SUPPORTED; /* SIMULATED, see above */
    if (!created(stream)) return CUDA_ERROR_INVALID_HANDLE;
    tf_capture *c = calloc(1, sizeof *c);
    if (c == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    c->mode = mode;
    c->thread = pthread_self();
    c->graph = into;
    if (into == NULL && (rc = cuGraphCreate(&c->graph, 0)) != CUDA_SUCCESS) {
        free(c);
        return rc;
    }
    c->owns_graph = into == NULL;
    pthread_mutex_lock(&capture_lock);
    rc = CUDA_SUCCESS;
    if (capture_of(stream) != NULL) {
        rc = CUDA_ERROR_INVALID_VALUE; /* already capturing */
    } else if (capture_count == capture_cap) {
        size_t cap = capture_cap ? capture_cap * 2 : 8;
        tf_capture **grown = realloc(captures, cap * sizeof *grown);
        if (grown == NULL) rc = CUDA_ERROR_OUT_OF_MEMORY;
        else captures = grown, capture_cap = cap;
    }
    if (rc == CUDA_SUCCESS && !add_stream(c, stream)) rc = CUDA_ERROR_OUT_OF_MEMORY;
    if (rc == CUDA_SUCCESS) {
        c->id = ++last_id;
        captures[capture_count++] = c;
        __atomic_store_n(&active, (int)capture_count, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&capture_lock);
    if (rc != CUDA_SUCCESS) {
        if (c->owns_graph) cuGraphDestroy(c->graph);
        free(c->streams);
        free(c);
    }
    return rc;
}

TF_SIM_API CUresult cuStreamBeginCapture(CUstream stream) { return begin(stream, NULL, CU_STREAM_CAPTURE_MODE_GLOBAL); }
TF_SIM_API CUresult cuStreamBeginCapture_v2(CUstream stream, int mode) { return begin(stream, NULL, mode); }

TF_SIM_API CUresult cuStreamBeginCaptureToGraph(CUstream stream, CUgraph graph, const CUgraphNode *deps,
                                                const CUgraphEdgeData *edges, size_t ndeps, int mode) {
    (void)deps;
    (void)edges;
    (void)ndeps;
    CUgraphNode probe;
    size_t none = 0;
    if (graph == NULL || cuGraphGetNodes(graph, &probe, &none) != CUDA_SUCCESS) return CUDA_ERROR_INVALID_VALUE;
    return begin(stream, graph, mode);
}

TF_SIM_API CUresult cuStreamEndCapture(CUstream stream, CUgraph *graph) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (graph == NULL || !created(stream)) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&capture_lock);
    tf_capture *c = capture_of(stream);
    if (c == NULL) {
        rc = CUDA_ERROR_INVALID_VALUE;
    } else if (c->streams[0] != stream) {
        rc = CUDA_ERROR_STREAM_CAPTURE_UNMATCHED; /* the capture goes on */
    } else if (c->mode != CU_STREAM_CAPTURE_MODE_RELAXED && !pthread_equal(c->thread, pthread_self())) {
        rc = CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD;
    } else {
        int unjoined = 0;
        for (size_t i = 1; i < c->stream_count; i++) unjoined |= c->streams[i]->cap_work > c->streams[i]->cap_joined;
        rc = c->invalidated ? CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
             : unjoined     ? CUDA_ERROR_STREAM_CAPTURE_UNJOINED
                            : CUDA_SUCCESS;
        *graph = rc == CUDA_SUCCESS ? c->graph : NULL;
        if (rc != CUDA_SUCCESS && c->owns_graph) cuGraphDestroy(c->graph);
        finish(c);
    }
    pthread_mutex_unlock(&capture_lock);
    return rc;
}

static CUresult capture_info(CUstream stream, CUstreamCaptureStatus *status, cuuint64_t *id, CUgraph *graph,
                             const CUgraphNode **deps, const CUgraphEdgeData **edges, size_t *ndeps) {
    static const CUgraphEdgeData full_completion[1];
    CUresult rc;
    CUcontext ctx = tf_current(&rc);
    if (ctx == NULL) return rc;
    if (status == NULL || (edges != NULL && deps == NULL)) return CUDA_ERROR_INVALID_VALUE;
    if (!legacy(stream) && stream != CU_STREAM_PER_THREAD && !created(stream)) return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&capture_lock);
    tf_capture *c = capture_of(stream);
    *status = c == NULL ? CU_STREAM_CAPTURE_STATUS_NONE
              : c->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                               : CU_STREAM_CAPTURE_STATUS_ACTIVE;
    if (legacy(stream) && blocking_capture(ctx, 0)) rc = CUDA_ERROR_STREAM_CAPTURE_IMPLICIT; /* not invalidated */
    if (rc == CUDA_SUCCESS && *status == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
        if (id != NULL) *id = c->id;
        if (graph != NULL) *graph = c->graph;
        size_t n = stream->cap_last != NULL;
        if (deps != NULL) *deps = n ? &stream->cap_last : NULL;
        if (edges != NULL) *edges = n ? full_completion : NULL;
        if (ndeps != NULL) *ndeps = n;
    }
    pthread_mutex_unlock(&capture_lock);
    return rc;
}

TF_SIM_API CUresult cuStreamIsCapturing(CUstream stream, CUstreamCaptureStatus *status) {
    return capture_info(stream, status, NULL, NULL, NULL, NULL, NULL);
}
TF_SIM_API CUresult cuStreamGetCaptureInfo(CUstream stream, CUstreamCaptureStatus *status, cuuint64_t *id) {
    return capture_info(stream, status, id, NULL, NULL, NULL, NULL);
}
TF_SIM_API CUresult cuStreamGetCaptureInfo_v2(CUstream stream, CUstreamCaptureStatus *status, cuuint64_t *id,
                                              CUgraph *graph, const CUgraphNode **deps, size_t *ndeps) {
    return capture_info(stream, status, id, graph, deps, NULL, ndeps);
}
TF_SIM_API CUresult cuStreamGetCaptureInfo_v3(CUstream stream, CUstreamCaptureStatus *status, cuuint64_t *id,
                                              CUgraph *graph, const CUgraphNode **deps,
                                              const CUgraphEdgeData **edges, size_t *ndeps) {
    return capture_info(stream, status, id, graph, deps, edges, ndeps);
}

TF_SIM_API CUresult cuThreadExchangeStreamCaptureMode(int *mode) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (mode == NULL || *mode < CU_STREAM_CAPTURE_MODE_GLOBAL || *mode > CU_STREAM_CAPTURE_MODE_RELAXED)
        return CUDA_ERROR_INVALID_VALUE;
    int old = thread_mode;
    thread_mode = *mode;
    *mode = old;
    return CUDA_SUCCESS;
}

/* ---- executing captured operations (a graph launch) ---- */

/* Bytes move only where both sides are addressable: a graph allocation is reserved, not
 * backed (see sim_graph.c), so a copy or memset touching one moves nothing. */
void tf_graph_run_op(CUcontext ctx, uint64_t *tail, const tf_graph_op *op) {
    uint64_t duration = 0;
    if (op->type == CU_GRAPH_NODE_TYPE_HOST) {
        tf_wait_until(__atomic_load_n(tail, __ATOMIC_ACQUIRE));
        op->host_fn(op->host_data);
    } else if (op->type == CU_GRAPH_NODE_TYPE_MEMCPY) {
        unsigned char *dst = op->dst;
        const unsigned char *src = op->src;
        if (!tf_graph_allocation((CUdeviceptr)(uintptr_t)dst, 0) && !tf_graph_allocation((CUdeviceptr)(uintptr_t)src, 0))
            for (uint64_t row = 0; row < op->height; row++)
                memmove(dst + row * op->dst_pitch, src + row * op->src_pitch, op->width);
        duration = tf_copy_ns(dst, src, op->width * op->height);
    } else if (op->type == CU_GRAPH_NODE_TYPE_MEMSET && !tf_graph_allocation((CUdeviceptr)(uintptr_t)op->dst, 0)) {
        for (uint64_t row = 0; row < op->height; row++) {
            unsigned char *p = (unsigned char *)op->dst + row * op->dst_pitch;
            for (uint64_t i = 0; i < op->width; i++) memcpy(p + i * op->element, &op->value, op->element);
        }
    }
    tf_enqueue(ctx, tail, duration, 0);
}
