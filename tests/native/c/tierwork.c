/* A workload for the tiering tests, driven line by line on stdin (answers on stdout):
 *   alloc N MIB   N buffers of MIB each (cuMemAlloc), filled with a pattern of their own
 *   check         launches a kernel and replays a graph made at alloc (its kernel node holds
 *                 the first buffer's pointer), then reads every buffer back (cuMemcpyDtoH):
 *                 same=1 when all bytes are as written; ptrs= the device pointers
 *   write SEED    rewrites every buffer with a new pattern (the next check expects it)
 *   replay        launches that graph only: replay=
 *   ipc           asks for a legacy IPC handle of the first buffer: ipc=
 *   fork          starts a child that never touches CUDA (a data loader): forked=1
 *   copyout       times a plain cuMemcpyDtoH of every buffer: copyout_ns= (wall clock)
 *   allocfree N MIB  times N cuMemAlloc+cuMemFree pairs of MIB: allocfree_ns= per pair
 *   allocmany N MIB  times N cuMemAlloc of MIB, then their N cuMemFree: alloc_ns= free_ns= per call
 *   launches N    times N launches: launch_ns= per launch
 *   one MIB       one more allocation of MIB (not a buffer of the check): one= ptr=
 *   free PTR      cuMemFree of a pointer (hex): free=
 *   meminfo       cuMemGetInfo: info= free_bytes= total_bytes=
 *   range PTR     cuMemGetAddressRange of a pointer (hex): range= base= size=
 *   route NAME    calls one driver route on the first buffers (copies 2D/3D/peer, memsets,
 *                 stream memory operations, host callbacks, graph upload, pointer queries,
 *                 prefetch): route=
 *   pitch W H     a pitched allocation of H rows of W bytes (cuMemAllocPitch, 4-byte elements),
 *                 rows filled with a pattern (cuMemcpy2D): pitch=, pitchalloc=
 *   pitchcheck    reads those rows back (cuMemcpy2D): pitchsame=1 when all are as written
 *   device N      makes device N's primary context current: device=
 *   more N        N more buffers of the same size in the current context, patterned: more=
 *   whoami        the current context's device: ctxdev=
 *   verify        whether that route did what it should (bytes read back): verify=1; it then
 *                 puts the buffers' pattern back
 *   quit
 * Device pointers are printed at alloc and at check so the test sees they never change. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

#define MIB (1ULL << 20)
#define MAX_BUFS 64

FN(cuMemcpyHtoD, CUresult, (CUdeviceptr, const void *, size_t));
FN(cuMemcpyDtoH, CUresult, (void *, CUdeviceptr, size_t));
FN(cuModuleLoadData, CUresult, (CUmodule *, const void *));
FN(cuModuleGetFunction, CUresult, (CUfunction *, CUmodule, const char *));
FN(cuGraphCreate, CUresult, (CUgraph *, unsigned));
FN(cuIpcGetMemHandle, CUresult, (CUipcMemHandle *, CUdeviceptr));
FN(cuGraphAddKernelNode, CUresult, (CUgraphNode *, CUgraph, const CUgraphNode *, size_t, const CUDA_KERNEL_NODE_PARAMS_v2 *));
FN(cuGraphInstantiate, CUresult, (CUgraphExec *, CUgraph, unsigned long long));
FN(cuGraphLaunch, CUresult, (CUgraphExec, CUstream));
FN(cuMemGetAddressRange, CUresult, (CUdeviceptr *, size_t *, CUdeviceptr));
FN(cuLaunchKernel, CUresult,
   (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **));

FN(cuMemcpy2D, CUresult, (const void *));
FN(cuMemcpy2DAsync, CUresult, (const void *, CUstream));
FN(cuMemcpy2DUnaligned, CUresult, (const void *));
FN(cuMemcpy3D, CUresult, (const void *));
FN(cuMemcpy3DAsync, CUresult, (const void *, CUstream));
FN(cuMemcpy3DPeer, CUresult, (const void *));
FN(cuMemcpyBatchAsync, CUresult, (CUdeviceptr *, CUdeviceptr *, size_t *, size_t, void *, size_t *, size_t, CUstream));
FN(cuMemsetD16, CUresult, (CUdeviceptr, unsigned short, size_t));
FN(cuMemsetD16Async, CUresult, (CUdeviceptr, unsigned short, size_t, CUstream));
FN(cuMemsetD2D8, CUresult, (CUdeviceptr, size_t, unsigned char, size_t, size_t));
FN(cuMemsetD2D16, CUresult, (CUdeviceptr, size_t, unsigned short, size_t, size_t));
FN(cuMemsetD2D32, CUresult, (CUdeviceptr, size_t, unsigned int, size_t, size_t));
FN(cuMemsetD2D8Async, CUresult, (CUdeviceptr, size_t, unsigned char, size_t, size_t, CUstream));
FN(cuMemsetD2D16Async, CUresult, (CUdeviceptr, size_t, unsigned short, size_t, size_t, CUstream));
FN(cuMemsetD2D32Async, CUresult, (CUdeviceptr, size_t, unsigned int, size_t, size_t, CUstream));
FN(cuMemcpyPeer, CUresult, (CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t));
FN(cuMemcpyPeerAsync, CUresult, (CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t, CUstream));
FN(cuStreamWriteValue32, CUresult, (CUstream, CUdeviceptr, unsigned int, unsigned int));
FN(cuStreamWaitValue32, CUresult, (CUstream, CUdeviceptr, unsigned int, unsigned int));
FN(cuLaunchHostFunc, CUresult, (CUstream, void (*)(void *), void *));
FN(cuStreamAddCallback, CUresult, (CUstream, void (*)(CUstream, CUresult, void *), void *, unsigned int));
FN(cuGraphUpload, CUresult, (CUgraphExec, CUstream));
FN(cuPointerGetAttribute, CUresult, (void *, int, CUdeviceptr));
FN(cuMemGetAddressRange, CUresult, (CUdeviceptr *, size_t *, CUdeviceptr));
FN(cuMemPrefetchAsync, CUresult, (CUdeviceptr, size_t, CUmemLocation, unsigned int, CUstream));
FN(cuMemAllocManaged, CUresult, (CUdeviceptr *, size_t, unsigned int));
FN(cuCtxGetCurrent, CUresult, (CUcontext *));
FN(cuMemAllocPitch, CUresult, (CUdeviceptr *, size_t *, size_t, size_t, unsigned int));
FN(cuCtxGetDevice, CUresult, (CUdevice *, CUcontext)); /* _v2 at 13.0: NULL is the current one */

static CUdeviceptr bufs[MAX_BUFS];
static size_t nbufs, bytes;
static unsigned seed = 1;
static CUfunction busy;
static CUgraphExec replay;
static pid_t loader;

/* A graph whose kernel node captured the first buffer's device pointer: it must stay valid. */
static CUresult make_graph(void) {
    static void *args[1];
    args[0] = &bufs[0];
    CUDA_KERNEL_NODE_PARAMS_v2 p = {.func = busy, .gridDimX = 1, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 32,
                                    .blockDimY = 1, .blockDimZ = 1, .kernelParams = args};
    CUgraph g;
    CUgraphNode node;
    CUresult rc = cuGraphCreate(&g, 0);
    if (rc == CUDA_SUCCESS) rc = cuGraphAddKernelNode(&node, g, NULL, 0, &p);
    if (rc == CUDA_SUCCESS) rc = cuGraphInstantiate(&replay, g, 0);
    return rc;
}

static void fill(unsigned char *p, size_t i) {
    for (size_t k = 0; k < bytes; k++) p[k] = (unsigned char)((k * 2654435761u) >> 13 ^ (i * 97 + seed));
}

static void print_ptrs(void) {
    printf("ptrs=");
    for (size_t i = 0; i < nbufs; i++) printf("%s%llx", i ? "," : "", (unsigned long long)bufs[i]);
    printf("\n");
}

static void write_all(unsigned char *want) {
    CUresult rc = CUDA_SUCCESS;
    for (size_t i = 0; i < nbufs && rc == CUDA_SUCCESS; i++) {
        fill(want, i);
        rc = cuMemcpyHtoD(bufs[i], want, bytes);
    }
    printf("write=%d\n", rc);
}

/* ---- routes: each touches the first buffer(s) the way its call does; verify checks ---- */

typedef struct {
    size_t srcXInBytes, srcY;
    int srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    void *srcArray;
    size_t srcPitch;
    size_t dstXInBytes, dstY;
    int dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    void *dstArray;
    size_t dstPitch;
    size_t WidthInBytes, Height;
} copy2d;

typedef struct {
    size_t srcXInBytes, srcY, srcZ, srcLOD;
    int srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    void *srcArray, *reserved0;
    size_t srcPitch, srcHeight;
    size_t dstXInBytes, dstY, dstZ, dstLOD;
    int dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    void *dstArray, *reserved1;
    size_t dstPitch, dstHeight;
    size_t WidthInBytes, Height, Depth;
} copy3d;

#define ROW 4096
enum { EXPECT_PATTERN_IN_GOT = 1, EXPECT_FILL, EXPECT_PEER, EXPECT_WORD, EXPECT_FLAG, EXPECT_ORDINAL, EXPECT_RANGE,
       EXPECT_RESUMED };
static int expect;            /* what verify checks, set by the last route */
static unsigned fill_width;   /* EXPECT_FILL: the value and its width */
static uint32_t fill_value;
static volatile int host_ran; /* EXPECT_FLAG: the host function ran */
static int ordinal_seen = -2;
static CUdeviceptr range_base;
static size_t range_size;
static CUdeviceptr managed;

static void host_fn(void *data) { *(volatile int *)data = 1; }
static void stream_cb(CUstream s, CUresult status, void *data) {
    (void)s;
    if (status == CUDA_SUCCESS) *(volatile int *)data = 1;
}

static CUresult route(const char *name, unsigned char *got) {
    CUcontext ctx = NULL;
    cuCtxGetCurrent(&ctx);
    size_t rows = bytes / ROW;
    copy2d c2 = {.srcMemoryType = 2, .srcDevice = bufs[0], .srcPitch = ROW, .dstMemoryType = 1, .dstHost = got,
                 .dstPitch = ROW, .WidthInBytes = ROW, .Height = rows};
    copy3d c3 = {.srcMemoryType = 2, .srcDevice = bufs[0], .srcPitch = ROW, .srcHeight = rows / 2, .dstMemoryType = 1,
                 .dstHost = got, .dstPitch = ROW, .dstHeight = rows / 2, .WidthInBytes = ROW, .Height = rows / 2,
                 .Depth = 2};
    expect = EXPECT_PATTERN_IN_GOT;
    memset(got, 0, bytes);
    if (strcmp(name, "memcpy2d") == 0) return cuMemcpy2D(&c2);
    if (strcmp(name, "memcpy2dasync") == 0) return cuMemcpy2DAsync(&c2, NULL);
    if (strcmp(name, "memcpy2dunaligned") == 0) return cuMemcpy2DUnaligned(&c2);
    if (strcmp(name, "memcpy3d") == 0) return cuMemcpy3D(&c3);
    if (strcmp(name, "memcpy3dasync") == 0) return cuMemcpy3DAsync(&c3, NULL);
    c3.reserved0 = ctx, c3.reserved1 = ctx; /* CUDA_MEMCPY3D_PEER: the contexts in these slots */
    if (strcmp(name, "memcpy3dpeer") == 0) return cuMemcpy3DPeer(&c3);
    if (strcmp(name, "batch") == 0) { /* two halves, one batch (CUDA 13.0 form) */
        CUdeviceptr dsts[2] = {(CUdeviceptr)(uintptr_t)got, (CUdeviceptr)(uintptr_t)(got + bytes / 2)};
        CUdeviceptr srcs[2] = {bufs[0], bufs[0] + bytes / 2};
        size_t sizes[2] = {bytes / 2, bytes / 2}, idx = 0;
        unsigned char attrs[64] = {0}; /* CUmemcpyAttributes: default order and hints */
        return cuMemcpyBatchAsync(dsts, srcs, sizes, 2, attrs, &idx, 1, NULL);
    }
    expect = EXPECT_FILL;
    fill_width = 2, fill_value = 0xbeef;
    if (strcmp(name, "memsetd16") == 0) return cuMemsetD16(bufs[0], 0xbeef, bytes / 2);
    if (strcmp(name, "memsetd16async") == 0) return cuMemsetD16Async(bufs[0], 0xbeef, bytes / 2, NULL);
    if (strcmp(name, "memsetd2d16") == 0) return cuMemsetD2D16(bufs[0], ROW, 0xbeef, ROW / 2, rows);
    if (strcmp(name, "memsetd2d16async") == 0) return cuMemsetD2D16Async(bufs[0], ROW, 0xbeef, ROW / 2, rows, NULL);
    fill_width = 1, fill_value = 0x5a;
    if (strcmp(name, "memsetd2d8") == 0) return cuMemsetD2D8(bufs[0], ROW, 0x5a, ROW, rows);
    if (strcmp(name, "memsetd2d8async") == 0) return cuMemsetD2D8Async(bufs[0], ROW, 0x5a, ROW, rows, NULL);
    fill_width = 4, fill_value = 0xc0ffee11;
    if (strcmp(name, "memsetd2d32") == 0) return cuMemsetD2D32(bufs[0], ROW, 0xc0ffee11, ROW / 4, rows);
    if (strcmp(name, "memsetd2d32async") == 0)
        return cuMemsetD2D32Async(bufs[0], ROW, 0xc0ffee11, ROW / 4, rows, NULL);
    expect = EXPECT_PEER;
    if (strcmp(name, "peer") == 0) return cuMemcpyPeer(bufs[1], ctx, bufs[0], ctx, bytes);
    if (strcmp(name, "peerasync") == 0) return cuMemcpyPeerAsync(bufs[1], ctx, bufs[0], ctx, bytes, NULL);
    expect = EXPECT_WORD;
    if (strcmp(name, "writevalue32") == 0) return cuStreamWriteValue32(NULL, bufs[0], 0xfeedf00d, 0);
    expect = EXPECT_PATTERN_IN_GOT;
    if (strcmp(name, "waitvalue32") == 0) {
        fill(got, 0);
        uint32_t first;
        memcpy(&first, got, 4);
        CUresult rc = cuStreamWaitValue32(NULL, bufs[0], first, 1 /* EQ */);
        return rc == CUDA_SUCCESS ? cuMemcpyDtoH(got, bufs[0], bytes) : rc;
    }
    expect = EXPECT_FLAG;
    host_ran = 0;
    if (strcmp(name, "hostfunc") == 0) return cuLaunchHostFunc(NULL, host_fn, (void *)&host_ran);
    if (strcmp(name, "callback") == 0) return cuStreamAddCallback(NULL, stream_cb, (void *)&host_ran, 0);
    expect = EXPECT_RESUMED;
    if (strcmp(name, "upload") == 0) return cuGraphUpload(replay, NULL);
    if (strcmp(name, "prefetch") == 0) {
        CUmemLocation where = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
        return cuMemPrefetchAsync(managed, 2 * MIB, where, 0, NULL);
    }
    expect = EXPECT_ORDINAL;
    if (strcmp(name, "pointer") == 0) return cuPointerGetAttribute(&ordinal_seen, 9 /* DEVICE_ORDINAL */, bufs[0]);
    expect = EXPECT_RANGE;
    if (strcmp(name, "range") == 0) return cuMemGetAddressRange(&range_base, &range_size, bufs[0]);
    expect = 0;
    return CUDA_ERROR_INVALID_VALUE;
}

/* Whether the last route did its work; then the pattern goes back into the buffers. */
static int verify(unsigned char *want, unsigned char *got) {
    int ok = 0;
    fill(want, 0);
    if (expect == EXPECT_PATTERN_IN_GOT) ok = memcmp(want, got, bytes) == 0;
    if (expect == EXPECT_FILL && cuMemcpyDtoH(got, bufs[0], bytes) == CUDA_SUCCESS) {
        ok = 1;
        for (size_t k = 0; k < bytes; k += fill_width) ok &= memcmp(got + k, &fill_value, fill_width) == 0;
    }
    if (expect == EXPECT_PEER) ok = cuMemcpyDtoH(got, bufs[1], bytes) == CUDA_SUCCESS && memcmp(want, got, bytes) == 0;
    if (expect == EXPECT_WORD && cuMemcpyDtoH(got, bufs[0], bytes) == CUDA_SUCCESS) {
        uint32_t word = 0xfeedf00d;
        ok = memcmp(got, &word, 4) == 0 && memcmp(got + 4, want + 4, bytes - 4) == 0;
    }
    if (expect == EXPECT_FLAG || expect == EXPECT_RESUMED || expect == EXPECT_ORDINAL || expect == EXPECT_RANGE)
        ok = cuMemcpyDtoH(got, bufs[0], bytes) == CUDA_SUCCESS && memcmp(want, got, bytes) == 0;
    if (expect == EXPECT_FLAG) ok &= host_ran == 1;
    if (expect == EXPECT_ORDINAL) ok &= ordinal_seen == 0;
    if (expect == EXPECT_RANGE) ok &= range_base == bufs[0] && range_size >= bytes;
    write_all(want);
    return ok && expect != 0;
}

static CUdeviceptr pitched;
static size_t pitch_bytes, pitch_width, pitch_height;

/* Rows of the pitched allocation to or from host memory (dense rows of pitch_width). */
static CUresult pitch_copy(unsigned char *host, int to_device) {
    copy2d c = {.WidthInBytes = pitch_width, .Height = pitch_height};
    if (to_device) {
        c.srcMemoryType = 1, c.srcHost = host, c.srcPitch = pitch_width;
        c.dstMemoryType = 2, c.dstDevice = pitched, c.dstPitch = pitch_bytes;
    } else {
        c.srcMemoryType = 2, c.srcDevice = pitched, c.srcPitch = pitch_bytes;
        c.dstMemoryType = 1, c.dstHost = host, c.dstPitch = pitch_width;
    }
    return cuMemcpy2D(&c);
}

static void pitch_fill(unsigned char *p) {
    for (size_t k = 0; k < pitch_width * pitch_height; k++) p[k] = (unsigned char)(k * 2654435761u >> 11);
}

int main(void) {
    open_driver(0);
    LOAD(cuMemcpyHtoD);
    LOAD(cuMemcpyDtoH);
    LOAD(cuModuleLoadData);
    LOAD(cuModuleGetFunction);
    LOAD(cuLaunchKernel);
    LOAD(cuGraphCreate);
    LOAD(cuIpcGetMemHandle);
    LOAD(cuGraphAddKernelNode);
    LOAD(cuGraphInstantiate);
    LOAD(cuGraphLaunch);
    LOAD(cuMemcpy2D);
    LOAD(cuMemcpy2DAsync);
    LOAD(cuMemcpy2DUnaligned);
    LOAD(cuMemcpy3D);
    LOAD(cuMemcpy3DAsync);
    LOAD(cuMemcpy3DPeer);
    LOAD(cuMemcpyBatchAsync);
    LOAD(cuMemsetD16);
    LOAD(cuMemsetD16Async);
    LOAD(cuMemsetD2D8);
    LOAD(cuMemsetD2D16);
    LOAD(cuMemsetD2D32);
    LOAD(cuMemsetD2D8Async);
    LOAD(cuMemsetD2D16Async);
    LOAD(cuMemsetD2D32Async);
    LOAD(cuMemcpyPeer);
    LOAD(cuMemcpyPeerAsync);
    LOAD(cuStreamWriteValue32);
    LOAD(cuStreamWaitValue32);
    LOAD(cuLaunchHostFunc);
    LOAD(cuStreamAddCallback);
    LOAD(cuGraphUpload);
    LOAD(cuPointerGetAttribute);
    LOAD(cuMemGetAddressRange);
    LOAD(cuMemPrefetchAsync);
    LOAD(cuMemAllocManaged);
    LOAD(cuCtxGetCurrent);
    LOAD(cuMemAllocPitch);
    LOAD(cuCtxGetDevice);
    CUmodule mod;
    if (cuModuleLoadData(&mod, BUSY_PTX) != CUDA_SUCCESS || cuModuleGetFunction(&busy, mod, "busy") != CUDA_SUCCESS) {
        printf("error=module\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char line[128];
    unsigned char *want = NULL, *got = NULL;
    while (fgets(line, sizeof line, stdin) != NULL) {
        unsigned long a = 0, b = 0;
        if (sscanf(line, "alloc %lu %lu", &a, &b) == 2 && a <= MAX_BUFS) {
            bytes = b * MIB;
            want = realloc(want, bytes);
            got = realloc(got, bytes);
            CUresult rc = CUDA_SUCCESS;
            for (nbufs = 0; nbufs < a && rc == CUDA_SUCCESS; nbufs++) rc = cuMemAlloc(&bufs[nbufs], bytes);
            if (rc != CUDA_SUCCESS) nbufs--;
            if (rc == CUDA_SUCCESS && nbufs > 0) rc = make_graph();
            printf("alloc=%d\n", rc);
            write_all(want);
            print_ptrs();
        } else if (sscanf(line, "write %lu", &a) == 1) {
            seed = (unsigned)a;
            write_all(want);
        } else if (strncmp(line, "check", 5) == 0) {
            int same = 1;
            CUresult rc = cuLaunchKernel(busy, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL);
            if (rc == CUDA_SUCCESS && replay != NULL) rc = cuGraphLaunch(replay, NULL);
            for (size_t i = 0; i < nbufs && rc == CUDA_SUCCESS; i++) {
                fill(want, i);
                rc = cuMemcpyDtoH(got, bufs[i], bytes);
                same &= rc == CUDA_SUCCESS && memcmp(want, got, bytes) == 0;
            }
            printf("check=%d\nsame=%d\n", rc, same);
            print_ptrs();
        } else if (strncmp(line, "fork", 4) == 0) {
            loader = fork();
            if (loader == 0) {
                sleep(60);
                _exit(0);
            }
            printf("forked=%d\n", loader > 0);
        } else if (strncmp(line, "ipc", 3) == 0) {
            CUipcMemHandle h;
            printf("ipc=%d\n", nbufs == 0 ? -1 : (int)cuIpcGetMemHandle(&h, bufs[0]));
        } else if (strncmp(line, "replay", 6) == 0) {
            printf("replay=%d\n", replay == NULL ? -1 : (int)cuGraphLaunch(replay, NULL));
        } else if (strncmp(line, "copyout", 7) == 0) {
            struct timespec a, b;
            CUresult rc = CUDA_SUCCESS;
            clock_gettime(CLOCK_MONOTONIC, &a);
            for (size_t i = 0; i < nbufs && rc == CUDA_SUCCESS; i++) rc = cuMemcpyDtoH(got, bufs[i], bytes);
            clock_gettime(CLOCK_MONOTONIC, &b);
            printf("copyout=%d\ncopyout_ns=%lld\n", rc,
                   (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
        } else if (sscanf(line, "allocfree %lu %lu", &a, &b) == 2 && a > 0) {
            struct timespec t0, t1;
            CUresult rc = CUDA_SUCCESS;
            CUdeviceptr p;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (unsigned long i = 0; i < a && rc == CUDA_SUCCESS; i++)
                if ((rc = cuMemAlloc(&p, b * MIB)) == CUDA_SUCCESS) rc = cuMemFree(p);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            printf("allocfree=%d\nallocfree_ns=%lld\n", rc,
                   ((long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)) / (long long)a);
        } else if (sscanf(line, "allocmany %lu %lu", &a, &b) == 2 && a > 0 && a <= 4096) {
            static CUdeviceptr many[4096];
            struct timespec t0, t1, t2;
            CUresult rc = CUDA_SUCCESS;
            unsigned long made = 0;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (; made < a && rc == CUDA_SUCCESS; made++) rc = cuMemAlloc(&many[made], b * MIB);
            if (rc != CUDA_SUCCESS) made--;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            for (unsigned long i = 0; i < made; i++) cuMemFree(many[i]);
            clock_gettime(CLOCK_MONOTONIC, &t2);
            printf("allocmany=%d\nalloc_ns=%lld\nfree_ns=%lld\n", rc,
                   ((long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)) / (long long)a,
                   ((long long)(t2.tv_sec - t1.tv_sec) * 1000000000LL + (t2.tv_nsec - t1.tv_nsec)) / (long long)a);
        } else if (sscanf(line, "launches %lu", &a) == 1 && a > 0) {
            struct timespec t0, t1;
            CUresult rc = CUDA_SUCCESS;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (unsigned long i = 0; i < a && rc == CUDA_SUCCESS; i++)
                rc = cuLaunchKernel(busy, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            printf("launches=%d\nlaunch_ns=%lld\n", rc,
                   ((long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)) / (long long)a);
        } else if (sscanf(line, "one %lu", &a) == 1) {
            CUdeviceptr p = 0;
            CUresult rc = cuMemAlloc(&p, a * MIB);
            printf("one=%d\nptr=%llx\n", rc, (unsigned long long)p);
        } else if (sscanf(line, "free %lx", &a) == 1) {
            printf("free=%d\n", cuMemFree((CUdeviceptr)a));
        } else if (strncmp(line, "meminfo", 7) == 0) {
            size_t free_bytes = 0, total = 0;
            CUresult rc = cuMemGetInfo(&free_bytes, &total);
            printf("info=%d\nfree_bytes=%zu\ntotal_bytes=%zu\n", rc, free_bytes, total);
        } else if (sscanf(line, "range %lx", &a) == 1) {
            CUdeviceptr base = 0;
            size_t size = 0;
            CUresult rc = cuMemGetAddressRange(&base, &size, (CUdeviceptr)a);
            printf("range=%d\nbase=%llx\nsize=%zu\n", rc, (unsigned long long)base, size);
        } else if (strncmp(line, "route ", 6) == 0 && nbufs >= 2) {
            line[strcspn(line, "\n")] = '\0';
            if (managed == 0 && cuMemAllocManaged(&managed, 2 * MIB, 1) != CUDA_SUCCESS) managed = 0;
            printf("route=%d\n", (int)route(line + 6, got));
        } else if (strncmp(line, "verify", 6) == 0 && nbufs >= 2) {
            printf("verify=%d\n", verify(want, got));
        } else if (sscanf(line, "pitch %lu %lu", &a, &b) == 2) {
            pitch_width = a, pitch_height = b;
            unsigned char *rows = malloc(a * b);
            CUresult rc = cuMemAllocPitch(&pitched, &pitch_bytes, a, b, 4);
            if (rc == CUDA_SUCCESS) {
                pitch_fill(rows);
                rc = pitch_copy(rows, 1);
            }
            free(rows);
            printf("pitchalloc=%d\npitch=%zu\n", rc, pitch_bytes);
        } else if (strncmp(line, "pitchcheck", 10) == 0) {
            unsigned char *rows = malloc(pitch_width * pitch_height), *expect_rows = malloc(pitch_width * pitch_height);
            pitch_fill(expect_rows);
            CUresult rc = pitch_copy(rows, 0);
            printf("pitchsame=%d\n", rc == CUDA_SUCCESS && memcmp(rows, expect_rows, pitch_width * pitch_height) == 0);
            free(rows);
            free(expect_rows);
        } else if (sscanf(line, "device %lu", &a) == 1) {
            CUdevice d;
            CUcontext c;
            CUresult rc = cuDeviceGet(&d, (int)a);
            if (rc == CUDA_SUCCESS) rc = cuDevicePrimaryCtxRetain(&c, d);
            if (rc == CUDA_SUCCESS) rc = cuCtxSetCurrent(c);
            printf("device=%d\n", rc);
        } else if (sscanf(line, "more %lu", &a) == 1 && nbufs + a <= MAX_BUFS && bytes > 0) {
            CUresult rc = CUDA_SUCCESS;
            size_t from = nbufs;
            for (; nbufs < from + a && rc == CUDA_SUCCESS; nbufs++) rc = cuMemAlloc(&bufs[nbufs], bytes);
            if (rc != CUDA_SUCCESS) nbufs--;
            for (size_t i = from; i < nbufs && rc == CUDA_SUCCESS; i++) {
                fill(want, i);
                rc = cuMemcpyHtoD(bufs[i], want, bytes);
            }
            printf("more=%d\n", rc);
        } else if (strncmp(line, "whoami", 6) == 0) {
            CUdevice d = -1;
            printf("ctxdev=%d\n", cuCtxGetDevice(&d, NULL) == CUDA_SUCCESS ? d : -1);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
    }
    if (loader > 0) {
        kill(loader, SIGKILL);
        waitpid(loader, NULL, 0);
    }
    return 0;
}
