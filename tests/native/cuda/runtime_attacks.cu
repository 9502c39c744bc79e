// The isolation attacks of tests/native/c/attacks.c written as a CUDA runtime user would:
// nvcc-built, cudart only (driver entry points through cudaGetDriverEntryPointByVersion).
// Prints key=value lines.  Usage: runtime_attacks COMMAND MIB [ARGS]
//   pool MIB          the device's default pool keeps what is freed (threshold raised)
//   graphmem MIB      a graph with a cudaGraphAddMemAllocNode of MIB MiB, instantiated, run
//   vmm MIB           cuMemCreate + cuMemMap, then cuMemRelease while mapped, until refused
//   heap MIB          cudaDeviceSetLimit(cudaLimitMallocHeapSize) to 8 + MIB MiB
//   export MIB        cudaMalloc + cudaIpcGetMemHandle, prints the handle, frees on a line
//   import 0 HANDLE   cudaIpcOpenMemHandle; after a line on stdin, allocates on top
//   capture MIB       cudaMallocAsync of MIB MiB (a memset and a kernel on it) captured from a
//                     stream (cudaStreamBeginCapture) into a graph, instantiated and launched
// After each attack, 50 MiB cudaMallocs until refused ("allocs=N") and cudaMemGetInfo.
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1ULL << 20)

static void print_info(const char *key) {
    size_t free_b = 0, total = 0;
    cudaError_t rc = cudaMemGetInfo(&free_b, &total);
    printf("%s=rc:%d,free:%zu,total:%zu\n", key, (int)rc, free_b, total);
}

static int count_allocs(void) {
    int got = 0;
    void *p;
    while (got < 64 && cudaMalloc(&p, 50 * MIB) == cudaSuccess) got++;
    cudaGetLastError();  // the refusal stays the "last error"
    printf("allocs=%d\n", got);
    return got;
}

static void *driver(const char *name) {
    void *fn = NULL;
    cudaDriverEntryPointQueryResult status;
    if (cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &status) != cudaSuccess) return NULL;
    return fn;
}

static int pool(size_t bytes) {
    cudaMemPool_t pool;
    uint64_t keep_all = UINT64_MAX;
    void *a, *b, *c;
    if (cudaDeviceGetDefaultMemPool(&pool, 0) || cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all))
        return printf("error=pool\n"), 1;
    int ra = cudaMallocAsync(&a, bytes, 0), rb = cudaMallocAsync(&b, bytes, 0);
    printf("async_rc=%d,%d\n", ra, rb);
    cudaFreeAsync(a, 0);
    cudaFreeAsync(b, 0);
    cudaStreamSynchronize(0);
    print_info("info_kept");
    count_allocs();  // the pool still holds 2 x bytes
    printf("reuse_rc=%d\n", (int)cudaMallocAsync(&c, bytes, 0));  // from what the pool kept
    cudaFreeAsync(c, 0);
    cudaStreamSynchronize(0);
    printf("trim_rc=%d\n", (int)cudaMemPoolTrimTo(pool, 0));
    print_info("info_trimmed");
    return 0;
}

static int graphmem(size_t bytes) {
    cudaGraph_t g;
    cudaGraphNode_t node;
    cudaGraphExec_t exec = NULL;
    cudaMemAllocNodeParams p;
    memset(&p, 0, sizeof p);
    p.poolProps.allocType = cudaMemAllocationTypePinned;
    p.poolProps.location.type = cudaMemLocationTypeDevice;
    p.poolProps.location.id = 0;
    p.bytesize = bytes;
    if (cudaGraphCreate(&g, 0) || cudaGraphAddMemAllocNode(&node, g, NULL, 0, &p)) return printf("error=graph\n"), 1;
    printf("instantiate_rc=%d\n", (int)cudaGraphInstantiate(&exec, g, 0));
    cudaGetLastError();
    printf("launch_rc=%d\n", exec != NULL ? (int)cudaGraphLaunch(exec, 0) : -1);
    cudaStreamSynchronize(0);
    count_allocs();
    print_info("info");
    if (exec != NULL) cudaGraphExecDestroy(exec);
    print_info("info_destroyed");
    return 0;
}

typedef CUresult (*create_fn)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
typedef CUresult (*reserve_fn)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
typedef CUresult (*map_fn)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
typedef CUresult (*release_fn)(CUmemGenericAllocationHandle);
typedef CUresult (*unmap_fn)(CUdeviceptr, size_t);

static int vmm(size_t bytes) {
    cudaFree(0);  // the runtime makes its context
    create_fn create = (create_fn)driver("cuMemCreate");
    reserve_fn reserve = (reserve_fn)driver("cuMemAddressReserve");
    map_fn map = (map_fn)driver("cuMemMap");
    release_fn release = (release_fn)driver("cuMemRelease");
    unmap_fn unmap = (unmap_fn)driver("cuMemUnmap");
    if (!create || !reserve || !map || !release || !unmap) return printf("error=entry points\n"), 1;
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    CUdeviceptr va[16];
    int mapped = 0, last_rc = 0;
    for (int i = 0; i < 16; i++) {
        CUmemGenericAllocationHandle h;
        last_rc = create(&h, bytes, &prop, 0);
        if (last_rc != CUDA_SUCCESS) break;
        if (reserve(&va[i], bytes, 0, 0, 0) || map(va[i], bytes, 0, h, 0)) return printf("error=map\n"), 1;
        release(h);  // the mapping keeps the memory alive
        mapped++;
    }
    printf("mapped=%d\nlast_rc=%d\n", mapped, last_rc);
    print_info("info_mapped");
    for (int i = 0; i < mapped; i++) unmap(va[i], bytes);
    print_info("info_unmapped");
    return 0;
}

__global__ void busy() {}

static int capture(size_t bytes) {
    cudaStream_t s;
    void *p = NULL;
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)) return printf("error=stream\n"), 1;
    printf("begin_rc=%d\n", (int)cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    cudaStreamIsCapturing(s, &status);
    printf("status=%d\n", (int)status);
    printf("alloc_rc=%d\n", (int)cudaMallocAsync(&p, bytes, s));
    printf("memset_rc=%d\n", (int)cudaMemsetAsync(p, 1, bytes, s));
    busy<<<64, 256, 0, s>>>();
    printf("kernel_rc=%d\n", (int)cudaGetLastError());
    print_info("info_capturing");
    printf("end_rc=%d\n", (int)cudaStreamEndCapture(s, &g));
    printf("instantiate_rc=%d\n", g != NULL ? (int)cudaGraphInstantiate(&exec, g, 0) : -1);
    cudaGetLastError();
    printf("launch_rc=%d\n", exec != NULL ? (int)cudaGraphLaunch(exec, s) : -1);
    cudaStreamSynchronize(s);
    count_allocs();
    print_info("info");
    if (exec != NULL) cudaGraphExecDestroy(exec);
    print_info("info_destroyed");
    return 0;
}

static int heap(size_t bytes) {
    cudaFree(0);
    printf("heap_rc=%d\n", (int)cudaDeviceSetLimit(cudaLimitMallocHeapSize, 8 * MIB + bytes));
    count_allocs();
    print_info("info");
    printf("lowered_rc=%d\n", (int)cudaDeviceSetLimit(cudaLimitMallocHeapSize, 8 * MIB));
    print_info("info_lowered");
    return 0;
}

static int ipc_export(size_t bytes) {
    void *p;
    cudaIpcMemHandle_t h;
    if (cudaMalloc(&p, bytes) || cudaIpcGetMemHandle(&h, p)) return printf("error=export\n"), 1;
    printf("handle=");
    for (size_t i = 0; i < sizeof h.reserved; i++) printf("%02x", (unsigned char)h.reserved[i]);
    printf("\n");
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) return 1;
    printf("free_rc=%d\n", (int)cudaFree(p));  // the importer keeps it alive
    return 0;
}

static int ipc_import(const char *hex) {
    cudaIpcMemHandle_t h;
    for (size_t i = 0; i < sizeof h.reserved; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return printf("error=handle\n"), 1;
        h.reserved[i] = (char)byte;
    }
    void *p = NULL;
    printf("open_rc=%d\n", (int)cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess));
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) return 1;  // meanwhile the exporter frees
    count_allocs();
    print_info("info");
    printf("close_rc=%d\n", (int)cudaIpcCloseMemHandle(p));
    print_info("info_closed");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return printf("usage: runtime_attacks COMMAND MIB [ARGS]\n"), 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *cmd = argv[1];
    size_t bytes = strtoull(argv[2], NULL, 10) * MIB;
    if (strcmp(cmd, "pool") == 0) return pool(bytes);
    if (strcmp(cmd, "graphmem") == 0) return graphmem(bytes);
    if (strcmp(cmd, "vmm") == 0) return vmm(bytes);
    if (strcmp(cmd, "heap") == 0) return heap(bytes);
    if (strcmp(cmd, "capture") == 0) return capture(bytes);
    if (strcmp(cmd, "export") == 0) return ipc_export(bytes);
    if (strcmp(cmd, "import") == 0 && argc == 4) return ipc_import(argv[3]);
    printf("error=unknown command %s\n", cmd);
    return 2;
}
