/*
 * Stream capture: work issued to a capturing stream is recorded into a graph, not run.  A
 * captured cuMemAllocAsync allocates nothing until the graph runs (it becomes a memory-
 * allocation node, charged with the graph at instantiation, compute.c), and a captured launch
 * runs only as part of a graph launch (charged then).  So neither is charged when issued.
 *
 * Asking the driver whether a stream captures costs a call; the hooks ask only while some
 * capture this process began is in progress: a process-wide count kept by the begin and end
 * hooks.  A capture the shim did not see begin leaves the count at 0, which charges at issue
 * (the over-charge of before, never an escape); one that ends unseen (its stream destroyed)
 * leaves it high, which costs only the query.
 */
#include "shim.h"

int tf_capture_count;

typedef CUresult (*is_capturing_fn)(CUstream, CUstreamCaptureStatus *);

static is_capturing_fn is_capturing(void) {
    static is_capturing_fn fn; /* atomic: racing first calls store the same value */
    is_capturing_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        f = (is_capturing_fn)tf_driver_helper("cuStreamIsCapturing");
        __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    }
    return f;
}

int tf_stream_capturing(CUstream stream, int per_thread) {
    if (stream == NULL && per_thread) stream = CU_STREAM_PER_THREAD;
    if (stream == NULL || stream == CU_STREAM_LEGACY) return 0; /* the legacy stream never captures */
    is_capturing_fn f = is_capturing();
    CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
    /* Unknown (no helper, an error): not capturing, so charged at issue. */
    return f != NULL && f(stream, &status) == CUDA_SUCCESS && status != CU_STREAM_CAPTURE_STATUS_NONE;
}

void tf_capture_begun(CUresult rc) {
    if (rc == CUDA_SUCCESS) __atomic_add_fetch(&tf_capture_count, 1, __ATOMIC_RELEASE);
}

void tf_capture_ended(int was_capturing, CUstream stream, int per_thread) {
    if (!was_capturing || tf_stream_capturing(stream, per_thread)) return; /* not ended (wrong thread...) */
    int n = __atomic_load_n(&tf_capture_count, __ATOMIC_ACQUIRE);
    while (n > 0 && !__atomic_compare_exchange_n(&tf_capture_count, &n, n - 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}
