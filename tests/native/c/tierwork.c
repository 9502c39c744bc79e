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
    LOAD(cuMemGetAddressRange);
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
