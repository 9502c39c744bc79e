/* Stream capture as the driver documents it, for tests/native/test_capture.py: each step
 * prints key=value (return codes are CUresult numbers).  Usage: capture */
#include <pthread.h>
#include <string.h>

#include "driver.h"

#define MIB (1ULL << 20)

FN(cuStreamCreate, CUresult, (CUstream *, unsigned int));
FN(cuStreamSynchronize, CUresult, (CUstream));
FN(cuStreamBeginCapture, CUresult, (CUstream, int));
FN(cuStreamEndCapture, CUresult, (CUstream, CUgraph *));
FN(cuStreamIsCapturing, CUresult, (CUstream, CUstreamCaptureStatus *));
FN(cuStreamGetCaptureInfo, CUresult, (CUstream, CUstreamCaptureStatus *, cuuint64_t *, CUgraph *,
                                      const CUgraphNode **, const CUgraphEdgeData **, size_t *));
FN(cuThreadExchangeStreamCaptureMode, CUresult, (int *));
FN(cuStreamWaitEvent, CUresult, (CUstream, CUevent, unsigned int));
FN(cuEventCreate, CUresult, (CUevent *, unsigned int));
FN(cuEventRecord, CUresult, (CUevent, CUstream));
FN(cuEventQuery, CUresult, (CUevent));
FN(cuMemcpyHtoDAsync, CUresult, (CUdeviceptr, const void *, size_t, CUstream));
FN(cuMemcpyDtoH, CUresult, (void *, CUdeviceptr, size_t));
FN(cuMemsetD8, CUresult, (CUdeviceptr, unsigned char, size_t));
FN(cuMemAllocAsync, CUresult, (CUdeviceptr *, size_t, CUstream));
FN(cuMemFreeAsync, CUresult, (CUdeviceptr, CUstream));
FN(cuLaunchHostFunc, CUresult, (CUstream, void (*)(void *), void *));
FN(cuModuleLoadData, CUresult, (CUmodule *, const void *));
FN(cuModuleGetFunction, CUresult, (CUfunction *, CUmodule, const char *));
FN(cuLaunchKernel, CUresult, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                              void **, void **));
FN(cuGraphGetNodes, CUresult, (CUgraph, CUgraphNode *, size_t *));
FN(cuGraphInstantiate, CUresult, (CUgraphExec *, CUgraph, unsigned long long));
FN(cuGraphLaunch, CUresult, (CUgraphExec, CUstream));
FN(cuGraphExecDestroy, CUresult, (CUgraphExec));
FN(cuCtxGetCurrent, CUresult, (CUcontext *));
FN(cuMemAllocHost, CUresult, (void **, size_t));

static CUfunction busy;
static CUcontext ctx;
static CUstream s, t;

static CUresult launch(CUstream stream) { return cuLaunchKernel(busy, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL); }

static size_t node_count(CUgraph g) {
    size_t n = 0;
    return g != NULL && cuGraphGetNodes(g, NULL, &n) == CUDA_SUCCESS ? n : (size_t)-1;
}

static int host_runs;
static void count_run(void *arg) { (void)arg, host_runs++; }

static size_t free_now(void) {
    size_t f = 0, total = 0;
    cuMemGetInfo(&f, &total);
    return f;
}

/* Another thread's call while this one captures: its mode, then a cuMemAlloc (unsafe). */
static int other_mode;
static CUresult other_rc;
static void *other_thread(void *arg) {
    (void)arg;
    cuCtxSetCurrent(ctx);
    int mode = other_mode;
    cuThreadExchangeStreamCaptureMode(&mode);
    CUdeviceptr p;
    other_rc = cuMemAlloc(&p, MIB);
    if (other_rc == CUDA_SUCCESS) cuMemFree(p);
    return NULL;
}
static void *other_end(void *arg) {
    CUgraph g = NULL;
    other_rc = cuStreamEndCapture(s, &g);
    (void)arg;
    return NULL;
}
static CUresult from_other_thread(void *(*fn)(void *), int mode) {
    pthread_t th;
    other_mode = mode;
    pthread_create(&th, NULL, fn, NULL);
    pthread_join(th, NULL);
    return other_rc;
}

static void run_graph(CUgraph g, const char *key) {
    CUgraphExec exec = NULL;
    CUresult a = cuGraphInstantiate(&exec, g, 0), b = exec ? cuGraphLaunch(exec, s) : CUDA_ERROR_INVALID_VALUE;
    cuStreamSynchronize(s);
    printf("%s=%d,%d\n", key, a, b);
    if (exec != NULL) cuGraphExecDestroy(exec);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    open_driver(0);
    LOAD(cuStreamCreate); LOAD(cuStreamSynchronize); LOAD(cuStreamBeginCapture); LOAD(cuStreamEndCapture);
    LOAD(cuStreamIsCapturing); LOAD(cuStreamGetCaptureInfo); LOAD(cuThreadExchangeStreamCaptureMode);
    LOAD(cuStreamWaitEvent); LOAD(cuEventCreate); LOAD(cuEventRecord); LOAD(cuEventQuery); LOAD(cuMemcpyHtoDAsync);
    LOAD(cuMemcpyDtoH); LOAD(cuMemsetD8); LOAD(cuMemAllocAsync); LOAD(cuMemFreeAsync); LOAD(cuLaunchHostFunc);
    LOAD(cuModuleLoadData); LOAD(cuModuleGetFunction); LOAD(cuLaunchKernel); LOAD(cuGraphGetNodes);
    LOAD(cuGraphInstantiate); LOAD(cuGraphLaunch); LOAD(cuGraphExecDestroy); LOAD(cuCtxGetCurrent); LOAD(cuMemAllocHost);
    CUmodule module;
    CUdeviceptr buf;
    CUevent e1, e2;
    char *pinned = NULL; /* a captured copy's host side: pinned, as stream-ordered copies want */
    cuCtxGetCurrent(&ctx);
    if (cuStreamCreate(&s, 0) || cuStreamCreate(&t, CU_STREAM_NON_BLOCKING) || cuModuleLoadData(&module, BUSY_PTX) ||
        cuModuleGetFunction(&busy, module, "busy") || cuMemAlloc(&buf, 4096) || cuMemsetD8(buf, 0, 4096) ||
        cuEventCreate(&e1, 0) || cuEventCreate(&e2, 0) || cuMemAllocHost((void **)&pinned, 4096))
        return printf("error=setup\n"), 1;
    CUstreamCaptureStatus st;
    cuuint64_t id = 0, id2 = 0;
    CUgraph g = NULL, peek = NULL;
    const CUgraphNode *deps = NULL;
    size_t ndeps = 99;
    char back[4] = {0};

    /* Where capture may begin, and what it reports. */
    printf("legacy_begin=%d\n", cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL));
    printf("begin=%d\n", cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    printf("begin_again=%d\n", cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    cuStreamIsCapturing(s, &st);
    printf("status=%d\n", st);
    cuStreamIsCapturing(t, &st);
    printf("other_status=%d\n", st);
    printf("legacy_query=%d\n", cuStreamIsCapturing(NULL, &st)); /* s is a blocking stream */
    cuStreamGetCaptureInfo(s, &st, &id, &peek, &deps, NULL, &ndeps);
    printf("info=%d,%d,%zu\n", id != 0, peek != NULL, ndeps);
    /* Captured work does not run. */
    printf("kernel=%d\n", launch(s));
    cuStreamGetCaptureInfo(s, &st, &id2, NULL, &deps, NULL, &ndeps);
    printf("info_after_kernel=%d,%zu\n", id2 == id, ndeps);
    memcpy(pinned, "xyz", 4);
    printf("copy=%d\n", cuMemcpyHtoDAsync(buf, pinned, 3, s));
    printf("host=%d\n", cuLaunchHostFunc(s, count_run, NULL));
    size_t before = free_now();
    CUdeviceptr p = 0;
    CUresult rc = cuMemAllocAsync(&p, 64 * MIB, s); /* (arguments are evaluated in no set order) */
    printf("alloc=%d,%d\n", rc, p != 0);
    printf("alloc_free_unchanged=%d\n", free_now() == before);
    printf("free=%d\n", cuMemFreeAsync(p, s));
    printf("free_plain=%d\n", cuMemFreeAsync(buf, s)); /* not a graph allocation */
    rc = cuStreamEndCapture(s, &g);
    printf("end=%d,%d\n", rc, g == peek && g != NULL);
    printf("nodes=%zu\n", node_count(g));
    cuMemcpyDtoH(back, buf, 3);
    printf("ran_while_captured=%d,%d\n", back[0] != 0, host_runs);
    run_graph(g, "graph");
    cuMemcpyDtoH(back, buf, 3);
    printf("ran_at_launch=%s,%d\n", back, host_runs);
    printf("end_not_capturing=%d\n", cuStreamEndCapture(s, &g));

    /* Synchronizing a capturing stream is refused and invalidates the capture. */
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    printf("sync=%d\n", cuStreamSynchronize(s));
    cuStreamIsCapturing(s, &st);
    printf("sync_status=%d\n", st);
    printf("after_sync_kernel=%d\n", launch(s));
    g = peek;
    rc = cuStreamEndCapture(s, &g);
    printf("sync_end=%d,%d\n", rc, g == NULL);

    /* Unsafe calls: a global capture prohibits this thread and other default-mode threads,
     * not relaxed ones; a thread-local capture only this thread. */
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
    printf("threadlocal_other=%d\n", from_other_thread(other_thread, CU_STREAM_CAPTURE_MODE_GLOBAL));
    printf("threadlocal_end=%d\n", cuStreamEndCapture(s, &g));
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    printf("global_other_relaxed=%d\n", from_other_thread(other_thread, CU_STREAM_CAPTURE_MODE_RELAXED));
    printf("global_other=%d\n", from_other_thread(other_thread, CU_STREAM_CAPTURE_MODE_GLOBAL));
    printf("global_end=%d\n", cuStreamEndCapture(s, &g));
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    CUdeviceptr q;
    printf("own_alloc=%d\n", cuMemAlloc(&q, MIB));
    printf("own_end=%d\n", cuStreamEndCapture(s, &g));
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    printf("sync_copy=%d\n", cuMemcpyDtoH(back, buf, 3));
    printf("sync_copy_end=%d\n", cuStreamEndCapture(s, &g));

    /* The legacy stream would depend on a capturing blocking stream. */
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED);
    printf("legacy_kernel=%d\n", launch(NULL));
    printf("legacy_end=%d\n", cuStreamEndCapture(s, &g));

    /* Ending: from the wrong thread (refused, the capture goes on), then from this one. */
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    printf("wrong_thread_end=%d\n", from_other_thread(other_end, 0));
    printf("right_thread_end=%d\n", cuStreamEndCapture(s, &g));

    /* Fork and join through events; a fork left unjoined fails the end. */
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    cuEventRecord(e1, s);
    printf("event_query=%d\n", cuEventQuery(e1));
    printf("fork=%d\n", cuStreamWaitEvent(t, e1, 0));
    cuStreamIsCapturing(t, &st);
    printf("forked_status=%d\n", st);
    launch(t);
    printf("forked_end=%d\n", cuStreamEndCapture(t, &g));
    printf("unjoined_end=%d\n", cuStreamEndCapture(s, &g));
    cuStreamIsCapturing(t, &st);
    printf("after_end_status=%d\n", st);
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    launch(s);
    cuEventRecord(e1, s);
    cuStreamWaitEvent(t, e1, 0);
    launch(t);
    cuEventRecord(e2, t);
    printf("join=%d\n", cuStreamWaitEvent(s, e2, 0));
    rc = cuStreamEndCapture(s, &g);
    printf("joined_end=%d,%zu\n", rc, node_count(g));
    run_graph(g, "joined_graph");
    cuEventRecord(e2, t); /* recorded outside capture: waiting for it inside crosses the boundary */
    cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
    printf("isolation=%d\n", cuStreamWaitEvent(s, e2, 0));
    printf("isolation_end=%d\n", cuStreamEndCapture(s, &g));
    return 0;
}
