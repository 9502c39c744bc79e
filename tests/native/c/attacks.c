/* Attacks on a worker's VRAM limit, written as a tenant would: each command tries one route
 * past the limit and prints what it got.  Usage: attacks COMMAND MIB (see main).
 * Run under the shim with a region; the tests assert the limit holds. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver.h"

#define MIB (1ULL << 20)

FN(cuMemCreate, CUresult, (CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long));
FN(cuMemRelease, CUresult, (CUmemGenericAllocationHandle));
FN(cuMemAddressReserve, CUresult, (CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long));
FN(cuMemAddressFree, CUresult, (CUdeviceptr, size_t));
FN(cuMemMap, CUresult, (CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long));
FN(cuMemUnmap, CUresult, (CUdeviceptr, size_t));
FN(cuMemcpyHtoD, CUresult, (CUdeviceptr, const void *, size_t));
FN(cuCtxSetLimit, CUresult, (int, size_t));
FN(cuMemAllocAsync, CUresult, (CUdeviceptr *, size_t, CUstream));
FN(cuMemFreeAsync, CUresult, (CUdeviceptr, CUstream));
FN(cuDeviceGetMemPool, CUresult, (CUmemoryPool *, CUdevice));
FN(cuMemPoolSetAttribute, CUresult, (CUmemoryPool, int, void *));
FN(cuMemPoolTrimTo, CUresult, (CUmemoryPool, size_t));
FN(cuStreamSynchronize, CUresult, (CUstream));
FN(cuGraphCreate, CUresult, (CUgraph *, unsigned));
FN(cuIpcGetMemHandle, CUresult, (CUipcMemHandle *, CUdeviceptr));
FN(cuMemExportToShareableHandle, CUresult, (void *, CUmemGenericAllocationHandle, int, unsigned long long));
FN(cuMemImportFromShareableHandle, CUresult, (CUmemGenericAllocationHandle *, void *, int));
FN(cuIpcOpenMemHandle, CUresult, (CUdeviceptr *, CUipcMemHandle, unsigned int));
FN(cuIpcCloseMemHandle, CUresult, (CUdeviceptr));
FN(cuMemPoolCreate, CUresult, (CUmemoryPool *, const CUmemPoolProps *));
FN(cuMemAllocFromPoolAsync, CUresult, (CUdeviceptr *, size_t, CUmemoryPool, CUstream));
FN(cuMemPoolExportToShareableHandle, CUresult, (void *, CUmemoryPool, int, unsigned long long));
FN(cuMemPoolImportFromShareableHandle, CUresult, (CUmemoryPool *, void *, int, unsigned long long));
FN(cuMemPoolExportPointer, CUresult, (CUmemPoolPtrExportData *, CUdeviceptr));
FN(cuMemPoolImportPointer, CUresult, (CUdeviceptr *, CUmemoryPool, CUmemPoolPtrExportData *));
FN(cuGraphAddMemAllocNode, CUresult, (CUgraphNode *, CUgraph, const CUgraphNode *, size_t, CUDA_MEM_ALLOC_NODE_PARAMS *));
FN(cuGraphInstantiate, CUresult, (CUgraphExec *, CUgraph, unsigned long long));
FN(cuGraphLaunch, CUresult, (CUgraphExec, CUstream));
FN(cuGraphExecDestroy, CUresult, (CUgraphExec));
FN(cuStreamCreate, CUresult, (CUstream *, unsigned int));
FN(cuStreamBeginCapture, CUresult, (CUstream, int));
FN(cuStreamIsCapturing, CUresult, (CUstream, CUstreamCaptureStatus *));
FN(cuStreamEndCapture, CUresult, (CUstream, CUgraph *));
FN(cuMemsetD8Async, CUresult, (CUdeviceptr, unsigned char, size_t, CUstream));
FN(cuEventCreate, CUresult, (CUevent *, unsigned int));
FN(cuEventRecord, CUresult, (CUevent, CUstream));
FN(cuStreamWaitEvent, CUresult, (CUstream, CUevent, unsigned int));
FN(cuModuleLoadData, CUresult, (CUmodule *, const void *));
FN(cuModuleGetFunction, CUresult, (CUfunction *, CUmodule, const char *));
FN(cuLaunchKernel, CUresult, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                              void **, void **));

static void print_info(const char *key) {
    size_t free_bytes = 0, total = 0;
    CUresult rc = cuMemGetInfo(&free_bytes, &total);
    printf("%s=rc:%d,free:%zu,total:%zu\n", key, rc, free_bytes, total);
}

/* VMM as NCCL's allocator does it: create, reserve, map, release the handle (the mapping
 * keeps the memory), and go again.  Prints how many chunks stayed mapped. */
static int vmm_keep_mapped(uint64_t mib, int chunks) {
    LOAD(cuMemCreate);
    LOAD(cuMemRelease);
    LOAD(cuMemAddressReserve);
    LOAD(cuMemAddressFree);
    LOAD(cuMemMap);
    LOAD(cuMemUnmap);
    LOAD(cuMemcpyHtoD);
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    size_t bytes = mib * MIB;
    CUdeviceptr va[64];
    int mapped = 0, last_rc = 0;
    for (int i = 0; i < chunks && i < 64; i++) {
        CUmemGenericAllocationHandle h;
        last_rc = cuMemCreate(&h, bytes, &prop, 0);
        if (last_rc != CUDA_SUCCESS) break;
        if (cuMemAddressReserve(&va[i], bytes, 0, 0, 0) != CUDA_SUCCESS || cuMemMap(va[i], bytes, 0, h, 0) != CUDA_SUCCESS)
            return printf("error=map\n"), 1;
        cuMemRelease(h); /* the mapping keeps the memory alive */
        char probe = 'x';
        if (cuMemcpyHtoD(va[i] + bytes - 1, &probe, 1) != CUDA_SUCCESS) return printf("error=unreadable\n"), 1;
        mapped++;
    }
    printf("mapped=%d\nlast_rc=%d\n", mapped, last_rc);
    print_info("info_mapped");
    for (int i = 0; i < mapped; i++) {
        cuMemUnmap(va[i], bytes);
        cuMemAddressFree(va[i], bytes);
    }
    print_info("info_unmapped");
    return 0;
}

/* Allocates chunks of mib MiB until refused; prints how many it got. */
static int count_allocs(uint64_t mib, int limit) {
    int got = 0;
    CUdeviceptr p;
    while (got < limit && cuMemAlloc(&p, mib * MIB) == CUDA_SUCCESS) got++;
    return got;
}

static uint64_t exit_mib;
static void allocate_at_exit(void) {
    int got = count_allocs(exit_mib, 64);
    printf("exit_allocs=%d\n", got);
    print_info("exit_info");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) return printf("usage: attacks COMMAND MIB\n"), 2;
    const char *cmd = argv[1];
    uint64_t mib = strtoull(argv[2], NULL, 10);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(cmd, "exit") == 0) {
        /* Registered before the shim loads its region (it does so on the first call). */
        exit_mib = mib;
        atexit(allocate_at_exit);
    }
    open_driver(0);
    if (strcmp(cmd, "vmm") == 0) return vmm_keep_mapped(mib, 16);
    if (strcmp(cmd, "exit") == 0) {
        CUdeviceptr p;
        printf("main_alloc=%d\n", cuMemAlloc(&p, MIB));
        return 0; /* allocate_at_exit runs during exit */
    }
    if (strcmp(cmd, "procs") == 0) {
        /* Many processes of one worker, each holding mib MiB, then all killed. */
        int n = argc > 3 ? atoi(argv[3]) : 70;
        int pipes[2];
        if (pipe(pipes) != 0) return 2;
        pid_t kids[256];
        for (int i = 0; i < n && i < 256; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                CUdeviceptr p;
                char r = cuMemAlloc(&p, mib * MIB) == CUDA_SUCCESS ? 'y' : 'n';
                if (write(pipes[1], &r, 1) != 1) _exit(1);
                pause();
                _exit(0);
            }
        }
        int yes = 0;
        for (int i = 0; i < n; i++) {
            char r;
            if (read(pipes[0], &r, 1) == 1 && r == 'y') yes++;
        }
        printf("children_allocated=%d\n", yes);
        for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
        for (int i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
        return 0;
    }
    if (strcmp(cmd, "pool") == 0) {
        /* The default pool keeps everything freed (threshold raised): then allocate elsewhere. */
        LOAD(cuMemAllocAsync);
        LOAD(cuMemFreeAsync);
        LOAD(cuDeviceGetMemPool);
        LOAD(cuMemPoolSetAttribute);
        LOAD(cuMemPoolTrimTo);
        LOAD(cuStreamSynchronize);
        CUmemoryPool pool;
        uint64_t keep_all = UINT64_MAX;
        CUdeviceptr a, b, c, d;
        if (cuDeviceGetMemPool(&pool, 0) || cuMemPoolSetAttribute(pool, 4, &keep_all)) return printf("error=pool\n"), 1;
        printf("async_rc=%d,%d\n", cuMemAllocAsync(&a, mib * MIB, NULL), cuMemAllocAsync(&b, mib * MIB, NULL));
        cuMemFreeAsync(a, NULL);
        cuMemFreeAsync(b, NULL);
        cuStreamSynchronize(NULL);
        print_info("info_kept");
        printf("plain_rc=%d\n", cuMemAlloc(&c, mib * MIB)); /* the pool still holds 2 x mib */
        printf("reuse_rc=%d\n", cuMemAllocAsync(&d, mib * MIB, NULL)); /* from what the pool kept */
        cuMemFreeAsync(d, NULL);
        cuStreamSynchronize(NULL);
        printf("trim_rc=%d\n", cuMemPoolTrimTo(pool, 0));
        print_info("info_trimmed");
        printf("after_trim_rc=%d\n", cuMemAlloc(&c, mib * MIB));
        return 0;
    }
    if (strcmp(cmd, "vmmexport") == 0 && argc == 4) {
        /* Creates mib MiB of VMM memory, exports it as a file descriptor, releases its own
         * handle (the descriptor keeps the memory), then becomes the importer of another
         * worker (argv[3]: its region) by exec, the descriptor inherited. */
        LOAD(cuMemCreate);
        LOAD(cuMemRelease);
        LOAD(cuMemExportToShareableHandle);
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.requestedHandleTypes = 1; /* CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR */
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        CUmemGenericAllocationHandle h;
        int fd = -1;
        if (cuMemCreate(&h, mib * MIB, &prop, 0) || cuMemExportToShareableHandle(&fd, h, 1, 0) || cuMemRelease(h))
            return printf("error=vmmexport\n"), 1;
        char fd_text[16];
        snprintf(fd_text, sizeof fd_text, "%d", fd);
        setenv("TF_SHM_PATH", argv[3], 1);
        execl("/proc/self/exe", argv[0], "vmmimport", argv[2], fd_text, (char *)NULL);
        return printf("error=exec\n"), 1;
    }
    if (strcmp(cmd, "vmmimport") == 0 && argc == 4) {
        LOAD(cuMemImportFromShareableHandle);
        LOAD(cuMemAddressReserve);
        LOAD(cuMemAddressFree);
        LOAD(cuMemMap);
        LOAD(cuMemUnmap);
        LOAD(cuMemRelease);
        CUmemGenericAllocationHandle h;
        CUdeviceptr va;
        size_t bytes = mib * MIB;
        printf("import_rc=%d\n", cuMemImportFromShareableHandle(&h, (void *)(intptr_t)atoi(argv[3]), 1));
        if (cuMemAddressReserve(&va, bytes, 0, 0, 0)) return printf("error=reserve\n"), 1;
        printf("map_rc=%d\n", cuMemMap(va, bytes, 0, h, 0));
        printf("allocs=%d\n", count_allocs(50, 64));
        print_info("info");
        cuMemUnmap(va, bytes);
        cuMemRelease(h);
        print_info("info_released");
        return 0;
    }
    if (strcmp(cmd, "poolexport") == 0 && argc == 4) {
        /* Allocates mib MiB from a pool made for POSIX descriptors, exports the pool and the
         * pointer, and starts the importer in another worker (argv[3]: its region): a child
         * that execs at once, the descriptor inherited; the exporter stays alive meanwhile. */
        LOAD(cuMemPoolCreate);
        LOAD(cuMemAllocFromPoolAsync);
        LOAD(cuStreamSynchronize);
        LOAD(cuMemPoolExportToShareableHandle);
        LOAD(cuMemPoolExportPointer);
        CUmemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
        props.handleTypes = 1; /* CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR */
        props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        CUmemoryPool pool;
        CUdeviceptr p;
        CUmemPoolPtrExportData data;
        int fd = -1;
        if (cuMemPoolCreate(&pool, &props) || cuMemAllocFromPoolAsync(&p, mib * MIB, pool, NULL) ||
            cuStreamSynchronize(NULL) || cuMemPoolExportToShareableHandle(&fd, pool, 1, 0) ||
            cuMemPoolExportPointer(&data, p))
            return printf("error=poolexport\n"), 1;
        char fd_text[16], hex[2 * sizeof data.reserved + 1];
        snprintf(fd_text, sizeof fd_text, "%d", fd);
        for (size_t i = 0; i < sizeof data.reserved; i++) snprintf(hex + 2 * i, 3, "%02x", data.reserved[i]);
        pid_t child = fork();
        if (child == 0) {
            setenv("TF_SHM_PATH", argv[3], 1);
            execl("/proc/self/exe", argv[0], "poolimport", fd_text, hex, (char *)NULL);
            _exit(printf("error=exec\n") < 0);
        }
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child) return printf("error=fork\n"), 1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (strcmp(cmd, "poolimport") == 0 && argc == 4) {
        LOAD(cuMemPoolImportFromShareableHandle);
        LOAD(cuMemPoolImportPointer);
        CUmemoryPool pool;
        CUmemPoolPtrExportData data;
        for (size_t i = 0; i < sizeof data.reserved; i++) {
            unsigned int byte;
            if (sscanf(argv[3] + 2 * i, "%2x", &byte) != 1) return printf("error=data\n"), 1;
            data.reserved[i] = (unsigned char)byte;
        }
        CUdeviceptr p = 0;
        if (cuMemPoolImportFromShareableHandle(&pool, (void *)(intptr_t)atoi(argv[2]), 1, 0))
            return printf("error=poolimport\n"), 1;
        printf("import_rc=%d\n", cuMemPoolImportPointer(&p, pool, &data));
        printf("allocs=%d\n", count_allocs(50, 64));
        print_info("info");
        printf("free_rc=%d\n", cuMemFree(p));
        print_info("info_freed");
        return 0;
    }
    if (strcmp(cmd, "export") == 0) {
        /* Allocates mib MiB, prints its IPC handle, frees it once told to (a line on stdin). */
        LOAD(cuIpcGetMemHandle);
        CUdeviceptr p;
        CUipcMemHandle h;
        if (cuMemAlloc(&p, mib * MIB) || cuIpcGetMemHandle(&h, p)) return printf("error=export\n"), 1;
        printf("handle=");
        for (size_t i = 0; i < sizeof h.reserved; i++) printf("%02x", (unsigned char)h.reserved[i]);
        printf("\n");
        char line[16];
        if (fgets(line, sizeof line, stdin) == NULL) return 1;
        printf("free_rc=%d\n", cuMemFree(p)); /* the importer keeps it alive */
        return 0;
    }
    if (strcmp(cmd, "import") == 0 && argc == 4) {
        /* Opens the exported allocation (hex handle), then allocates 50 MiB chunks on top. */
        LOAD(cuIpcOpenMemHandle);
        LOAD(cuIpcCloseMemHandle);
        CUipcMemHandle h;
        for (size_t i = 0; i < sizeof h.reserved; i++) {
            unsigned int byte;
            if (sscanf(argv[3] + 2 * i, "%2x", &byte) != 1) return printf("error=handle\n"), 1;
            h.reserved[i] = (char)byte;
        }
        CUdeviceptr p;
        printf("open_rc=%d\n", cuIpcOpenMemHandle(&p, h, 1));
        char line[16];
        if (fgets(line, sizeof line, stdin) == NULL) return 1; /* meanwhile the exporter frees */
        printf("allocs=%d\n", count_allocs(50, 64));
        print_info("info");
        printf("close_rc=%d\n", cuIpcCloseMemHandle(p));
        return 0;
    }
    if (strcmp(cmd, "graphmem") == 0) {
        /* A graph whose memory-allocation node makes mib MiB when it runs. */
        LOAD(cuGraphCreate);
        LOAD(cuGraphAddMemAllocNode);
        LOAD(cuGraphInstantiate);
        LOAD(cuGraphLaunch);
        LOAD(cuGraphExecDestroy);
        LOAD(cuStreamSynchronize);
        CUgraph g;
        CUgraphNode node;
        CUgraphExec exec = NULL;
        CUDA_MEM_ALLOC_NODE_PARAMS p;
        memset(&p, 0, sizeof p);
        p.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
        p.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        p.bytesize = mib * MIB;
        if (cuGraphCreate(&g, 0) || cuGraphAddMemAllocNode(&node, g, NULL, 0, &p)) return printf("error=graph\n"), 1;
        printf("instantiate_rc=%d\n", cuGraphInstantiate(&exec, g, 0));
        printf("launch_rc=%d\n", exec != NULL ? (int)cuGraphLaunch(exec, NULL) : -1);
        cuStreamSynchronize(NULL);
        printf("allocs=%d\n", count_allocs(50, 64));
        print_info("info");
        if (exec != NULL) cuGraphExecDestroy(exec);
        print_info("info_destroyed");
        return 0;
    }
    if (strcmp(cmd, "capture") == 0) {
        /* A cuMemAllocAsync of mib MiB captured from a stream into a graph, with a memset and a
         * kernel on it, then the graph instantiated and launched: the driver makes the memory
         * when the graph runs.  argv[3]: "free" captures its cuMemFreeAsync too; "forked" issues
         * all of it on a second stream forked into the capture by an event and joined back;
         * "graph" launches the kernel as a graph of its own, captured as a child graph. */
        LOAD(cuStreamCreate);
        LOAD(cuStreamBeginCapture);
        LOAD(cuStreamIsCapturing);
        LOAD(cuStreamEndCapture);
        LOAD(cuMemAllocAsync);
        LOAD(cuMemFreeAsync);
        LOAD(cuMemsetD8Async);
        LOAD(cuModuleLoadData);
        LOAD(cuModuleGetFunction);
        LOAD(cuLaunchKernel);
        LOAD(cuGraphInstantiate);
        LOAD(cuGraphLaunch);
        LOAD(cuGraphExecDestroy);
        LOAD(cuStreamSynchronize);
        LOAD(cuEventCreate);
        LOAD(cuEventRecord);
        LOAD(cuStreamWaitEvent);
        LOAD(cuGraphCreate);
        const char *variant = argc > 3 ? argv[3] : "";
        int free_too = strcmp(variant, "free") == 0, forked = strcmp(variant, "forked") == 0;
        int as_graph = strcmp(variant, "graph") == 0;
        CUstream s, t;
        CUevent fork_event, join_event;
        CUgraphExec inner = NULL;
        CUmodule module;
        CUfunction busy;
        CUdeviceptr p = 0;
        CUgraph g = NULL;
        CUgraphExec exec = NULL;
        CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
        if (cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) || cuStreamCreate(&t, CU_STREAM_NON_BLOCKING) ||
            cuModuleLoadData(&module, BUSY_PTX) || cuModuleGetFunction(&busy, module, "busy") ||
            cuEventCreate(&fork_event, 0) || cuEventCreate(&join_event, 0))
            return printf("error=setup\n"), 1;
        if (as_graph) { /* the kernel alone, captured and instantiated first (uncharged: not launched) */
            CUgraph kg = NULL;
            if (cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL) ||
                cuLaunchKernel(busy, 64, 1, 1, 256, 1, 1, 0, s, NULL, NULL) || cuStreamEndCapture(s, &kg) ||
                cuGraphInstantiate(&inner, kg, 0))
                return printf("error=inner graph\n"), 1;
        }
        printf("begin_rc=%d\n", cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
        cuStreamIsCapturing(s, &status);
        printf("status=%d\n", status);
        CUstream work = s;
        if (forked) { /* t joins the capture by waiting for an event recorded in it */
            work = t;
            if (cuEventRecord(fork_event, s) || cuStreamWaitEvent(t, fork_event, 0)) return printf("error=fork\n"), 1;
        }
        printf("alloc_rc=%d\n", cuMemAllocAsync(&p, mib * MIB, work));
        printf("memset_rc=%d\n", cuMemsetD8Async(p, 1, mib * MIB, work));
        CUresult kernel_rc = as_graph ? cuGraphLaunch(inner, work)
                                      : cuLaunchKernel(busy, 64, 1, 1, 256, 1, 1, 0, work, NULL, NULL);
        printf("kernel_rc=%d\ncost_each=%d\n", kernel_rc, 64 * 256);
        if (free_too) printf("free_rc=%d\n", cuMemFreeAsync(p, s));
        if (forked && (cuEventRecord(join_event, t) || cuStreamWaitEvent(s, join_event, 0)))
            return printf("error=join\n"), 1;
        print_info("info_capturing");
        printf("end_rc=%d\n", cuStreamEndCapture(s, &g));
        printf("instantiate_rc=%d\n", g != NULL ? (int)cuGraphInstantiate(&exec, g, 0) : -1);
        printf("launch_rc=%d\n", exec != NULL ? (int)cuGraphLaunch(exec, s) : -1);
        cuStreamSynchronize(s);
        printf("allocs=%d\n", count_allocs(50, 64));
        print_info("info");
        if (exec != NULL) cuGraphExecDestroy(exec);
        if (inner != NULL) cuGraphExecDestroy(inner);
        print_info("info_destroyed");
        return 0;
    }
    if (strcmp(cmd, "heap") == 0) {
        /* A device malloc heap (and a stack) as big as allowed, then allocations on top. */
        LOAD(cuCtxSetLimit);
        printf("heap_rc=%d\n", cuCtxSetLimit(0x02, (8 + mib) * MIB));
        printf("stack_rc=%d\n", cuCtxSetLimit(0x00, 1024 + 64 * 1024)); /* 64 KiB more per resident thread */
        printf("allocs=%d\n", count_allocs(50, 64));
        print_info("info");
        printf("lowered_rc=%d\n", cuCtxSetLimit(0x02, 8 * MIB));
        print_info("info_lowered");
        return 0;
    }
    if (strcmp(cmd, "alloc") == 0) {
        printf("allocs=%d\n", count_allocs(mib, 64));
        print_info("info");
        return 0;
    }
    printf("error=unknown command %s\n", cmd);
    return 2;
}
