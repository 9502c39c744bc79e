// A CUDA runtime program for tests/native and `make gpu-check`: nvcc-built, nothing
// tensor-fusion specific.  Prints key=value lines.  Usage: runtime_probe COMMAND [ARGS]
//   basic                      device query, copies, a launch, device globals
//   family NAME MIB            alloc, a second alloc, free, alloc again, free (as vram.c)
//   launch SECONDS GRID        <<<GRID, 256>>> launches for SECONDS ("ready=1" first)
//   graph SECONDS GRID         the same through a 3-kernel CUDA graph
#include <cuda.h>
#include <cudaProfiler.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1ULL << 20)

__device__ float scale_by[4] = {1.0f, 2.0f, 3.0f, 4.0f};

__global__ void scale(float *p, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] *= scale_by[1];
}

__global__ void spin(int *sink) {
    if (sink != NULL && threadIdx.x == 0 && blockIdx.x == 0) atomicAdd(sink, 1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_info(const char *key) {
    size_t free_b = 0, total = 0;
    cudaError_t rc = cudaMemGetInfo(&free_b, &total);
    printf("%s=rc:%d,free:%zu,total:%zu\n", key, (int)rc, free_b, total);
}

static int basic(void) {
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    printf("count=%d,%d\n", (int)rc, count);
    cudaDeviceProp prop;
    rc = cudaGetDeviceProperties(&prop, 0);
    printf("props=%d,%d.%d,%d\n", (int)rc, prop.major, prop.minor, prop.multiProcessorCount);
    float host[256], back[256];
    for (int i = 0; i < 256; i++) host[i] = (float)i;
    float *dev = NULL;
    printf("malloc=%d\n", (int)cudaMalloc(&dev, sizeof host));
    printf("h2d=%d\n", (int)cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice));
    scale<<<1, 256>>>(dev, 256);
    printf("launch=%d\n", (int)cudaGetLastError());
    printf("sync=%d\n", (int)cudaDeviceSynchronize());
    memset(back, 0, sizeof back);
    printf("d2h=%d\n", (int)cudaMemcpy(back, dev, sizeof back, cudaMemcpyDeviceToHost));
    printf("round_trip=%d\n", memcmp(host, back, sizeof host) == 0);  // kernels do not compute
    float globals[4] = {0};
    rc = cudaMemcpyFromSymbol(globals, scale_by, sizeof globals);
    printf("symbol=%d,%g,%g,%g,%g\n", (int)rc, globals[0], globals[1], globals[2], globals[3]);
    float seven = 7.0f;
    rc = cudaMemcpyToSymbol(scale_by, &seven, sizeof seven, 2 * sizeof(float));
    cudaMemcpyFromSymbol(globals, scale_by, sizeof globals);
    printf("symbol_write=%d,%g\n", (int)rc, globals[2]);
    cudaFuncAttributes attrs;
    rc = cudaFuncGetAttributes(&attrs, scale);
    printf("func_attrs=%d,%d\n", (int)rc, attrs.maxThreadsPerBlock);
    int blocks = 0;
    rc = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, scale, 256, 0);
    printf("occupancy=%d,%d\n", (int)rc, blocks);
    cudaStream_t stream;
    cudaEvent_t start, stop;
    cudaStreamCreate(&stream);
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    cudaEventRecord(start, stream);
    scale<<<1024, 256, 0, stream>>>(dev, 256);
    cudaEventRecord(stop, stream);
    printf("stream_sync=%d\n", (int)cudaStreamSynchronize(stream));
    float ms = -1;
    rc = cudaEventElapsedTime(&ms, start, stop);
    printf("elapsed=%d,%d\n", (int)rc, ms >= 0);
    cudaStreamDestroy(stream);
    static float pinned[1024];
    rc = cudaHostRegister(pinned, sizeof pinned, cudaHostRegisterMapped);
    void *mapped = NULL;
    cudaError_t got = cudaHostGetDevicePointer(&mapped, pinned, 0);
    cudaError_t again = cudaHostRegister(pinned, sizeof pinned, 0);
    cudaGetLastError();
    cudaError_t gone = cudaHostUnregister(pinned);
    cudaError_t twice = cudaHostUnregister(pinned);
    cudaGetLastError();
    printf("host_register=%d,%d,%d,%d,%d,%d\n", (int)rc, (int)got, mapped == (void *)pinned, (int)again, (int)gone,
           (int)twice);
    // pitched 2D: copy in, clear a sub-rectangle, copy back
    char *pitched = NULL;
    size_t pitch = 0;
    unsigned char grid_in[8][100], grid_out[8][100];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 100; x++) grid_in[y][x] = (unsigned char)(y * 100 + x);
    rc = cudaMallocPitch((void **)&pitched, &pitch, 100, 8);
    cudaError_t in = cudaMemcpy2D(pitched, pitch, grid_in, 100, 100, 8, cudaMemcpyHostToDevice);
    cudaError_t clear = cudaMemset2D(pitched + pitch * 2 + 10, pitch, 0xab, 5, 3);
    cudaError_t out = cudaMemcpy2D(grid_out, 100, pitched, pitch, 100, 8, cudaMemcpyDeviceToHost);
    grid_in[2][10] = grid_in[4][14] = grid_in[3][12] = 0xab;  // corners and middle of the cleared block
    int same = grid_out[2][10] == 0xab && grid_out[4][14] == 0xab && grid_out[3][12] == 0xab &&
               grid_out[5][14] == grid_in[5][14] && grid_out[0][0] == grid_in[0][0] && grid_out[7][99] == grid_in[7][99];
    printf("copy2d=%d,%d,%d,%d,%d,%d\n", (int)rc, pitch >= 100, (int)in, (int)clear, (int)out, same);
    cudaFree(pitched);
    // 3D: a 32 x 4 x 3 box into a cudaMalloc3D allocation and back
    unsigned char box_in[3][4][32], box_out[3][4][32];
    for (int i = 0; i < 3 * 4 * 32; i++) ((unsigned char *)box_in)[i] = (unsigned char)(i * 7);
    cudaPitchedPtr box;
    cudaExtent extent = make_cudaExtent(32, 4, 3);
    rc = cudaMalloc3D(&box, extent);
    cudaMemcpy3DParms up = {0}, down = {0};
    up.srcPtr = make_cudaPitchedPtr(box_in, 32, 32, 4);
    up.dstPtr = box;
    up.extent = extent;
    up.kind = cudaMemcpyHostToDevice;
    down.srcPtr = box;
    down.dstPtr = make_cudaPitchedPtr(box_out, 32, 32, 4);
    down.extent = extent;
    down.kind = cudaMemcpyDeviceToHost;
    in = cudaMemcpy3D(&up);
    out = cudaMemcpy3D(&down);
    printf("copy3d=%d,%d,%d,%d\n", (int)rc, (int)in, (int)out, memcmp(box_in, box_out, sizeof box_in) == 0);
    cudaFree(box.ptr);
    // managed memory hints and a host function ordered on a stream
    int *managed = NULL;
    cudaMallocManaged((void **)&managed, 4096);
    cudaMemLocation where = {cudaMemLocationTypeDevice, 0};
    rc = cudaMemPrefetchAsync(managed, 4096, where, 0, 0);
    cudaError_t advise = cudaMemAdvise(managed, 4096, cudaMemAdviseSetReadMostly, where);
    printf("managed_hints=%d,%d\n", (int)rc, (int)advise);
    cudaFree(managed);
    static int host_ran = 0;
    rc = cudaLaunchHostFunc(0, [](void *flag) { *(int *)flag = 1; }, &host_ran);
    cudaError_t synced = cudaDeviceSynchronize();
    cudaError_t added = cudaStreamAddCallback(0, [](cudaStream_t, cudaError_t, void *flag) { *(int *)flag += 1; },
                                              &host_ran, 0);
    printf("host_func=%d,%d,%d,%d\n", (int)rc, (int)synced, (int)added, host_ran);
    rc = cudaProfilerStart();
    printf("profiler=%d,%d\n", (int)rc, (int)cudaProfilerStop());
    // what kind of memory a pointer is: device, managed, pinned host, pageable host
    int *managed_p = NULL;
    void *pinned_p = NULL;
    int pageable = 0;
    cudaMallocManaged((void **)&managed_p, 4096);
    cudaMallocHost(&pinned_p, 4096);
    cudaPointerAttributes a_dev, a_man, a_pin, a_page;
    cudaError_t r1 = cudaPointerGetAttributes(&a_dev, dev + 3);
    cudaError_t r2 = cudaPointerGetAttributes(&a_man, managed_p);
    cudaError_t r3 = cudaPointerGetAttributes(&a_pin, pinned_p);
    cudaError_t r4 = cudaPointerGetAttributes(&a_page, &pageable);
    printf("pointers=%d:%d:%d:%d,%d:%d,%d:%d,%d:%d\n", (int)r1, (int)a_dev.type, a_dev.device,
           a_dev.devicePointer == (void *)(dev + 3), (int)r2, (int)a_man.type, (int)r3, (int)a_pin.type, (int)r4,
           (int)a_page.type);
    cudaFree(managed_p);
    cudaFreeHost(pinned_p);
    print_info("info");
    printf("free=%d\n", (int)cudaFree(dev));
    printf("reset=%d\n", (int)cudaDeviceReset());
    return 0;
}

typedef CUresult (*mem_create_fn)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                                  unsigned long long);
typedef CUresult (*mem_release_fn)(CUmemGenericAllocationHandle);

static int family_alloc(const char *family, unsigned long long mib, void **out, unsigned long long *handle) {
    size_t bytes = mib * MIB, pitch = 0;
    if (strcmp(family, "malloc") == 0) return cudaMalloc(out, bytes);
    if (strcmp(family, "managed") == 0) return cudaMallocManaged(out, bytes);
    if (strcmp(family, "pitch") == 0) return cudaMallocPitch(out, &pitch, 1024, bytes / 1024);
    if (strcmp(family, "3d") == 0) {
        cudaPitchedPtr p;
        int rc = cudaMalloc3D(&p, make_cudaExtent(1024, 1024, mib));
        *out = p.ptr;
        return rc;
    }
    if (strcmp(family, "async") == 0) {
        int rc = cudaMallocAsync(out, bytes, 0);
        return rc ? rc : cudaStreamSynchronize(0);
    }
    if (strcmp(family, "vmm") == 0) {
        mem_create_fn create = NULL;
        cudaDriverEntryPointQueryResult status;
        int rc = cudaGetDriverEntryPointByVersion("cuMemCreate", (void **)&create, 12000, cudaEnableDefault, &status);
        if (rc || create == NULL) return 1000 + rc;
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = 0;
        CUresult r = create(handle, bytes, &prop, 0);
        return r == CUDA_ERROR_OUT_OF_MEMORY ? (int)cudaErrorMemoryAllocation : (int)r;
    }
    return -1;
}

static int family_free(const char *family, void *p, unsigned long long handle) {
    if (strcmp(family, "async") == 0) {
        int rc = cudaFreeAsync(p, 0);
        return rc ? rc : cudaStreamSynchronize(0);
    }
    if (strcmp(family, "vmm") == 0) {
        mem_release_fn release = NULL;
        cudaDriverEntryPointQueryResult status;
        cudaGetDriverEntryPointByVersion("cuMemRelease", (void **)&release, 12000, cudaEnableDefault, &status);
        return release == NULL ? -1 : (int)release(handle);
    }
    return cudaFree(p);
}

static int family(const char *name, unsigned long long mib) {
    void *a = NULL, *b = NULL;
    unsigned long long ha = 0, hb = 0;
    int r1 = family_alloc(name, mib, &a, &ha);
    print_info("info_held");
    int r2 = family_alloc(name, mib, &b, &hb);
    if (r2 == 0) family_free(name, b, hb);
    cudaGetLastError();  // a failed allocation stays the "last error"
    int r3 = r1 == 0 ? family_free(name, a, ha) : -1;
    int r4 = family_alloc(name, mib, &a, &ha);
    int r5 = r4 == 0 ? family_free(name, a, ha) : -1;
    print_info("info_after");
    printf("result=%d,%d,%d,%d,%d\n", r1, r2, r3, r4, r5);
    return 0;
}

static int launches(const char *how, double seconds, unsigned grid) {
    cudaGraphExec_t exec = NULL;
    int per = 1;
    if (strcmp(how, "graph") == 0) {
        cudaGraph_t graph;
        cudaGraphCreate(&graph, 0);
        int *sink = NULL;
        void *args[] = {&sink};
        cudaKernelNodeParams p;
        memset(&p, 0, sizeof p);
        p.func = (void *)spin;
        p.gridDim = dim3(grid);
        p.blockDim = dim3(256);
        p.kernelParams = args;
        cudaGraphNode_t prev = NULL, node;
        for (int i = 0; i < 3; i++) {
            int rc = cudaGraphAddKernelNode(&node, graph, prev ? &prev : NULL, prev ? 1 : 0, &p);
            if (rc) {
                printf("graph_add=%d\n", rc);
                return 1;
            }
            prev = node;
        }
        int rc = cudaGraphInstantiate(&exec, graph, 0);
        if (rc) {
            printf("graph_instantiate=%d\n", rc);
            return 1;
        }
        per = 3;
    }
    printf("ready=1\n");
    fflush(stdout);
    long n = 0;
    int rc = 0;
    for (double end = now() + seconds; now() < end && rc == 0; n++) {
        if (exec != NULL) {
            rc = cudaGraphLaunch(exec, 0);
        } else {
            spin<<<grid, 256>>>(NULL);
            rc = cudaGetLastError();
        }
    }
    int sync = cudaDeviceSynchronize();
    printf("rc=%d,%d\nlaunches=%ld\ncost_each=%u\n", rc, sync, n * per, grid * 256 * per);
    return rc != 0 || sync != 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "basic") == 0) return basic();
    if (argc >= 4 && strcmp(argv[1], "family") == 0) return family(argv[2], strtoull(argv[3], NULL, 10));
    if (argc >= 4 && (strcmp(argv[1], "launch") == 0 || strcmp(argv[1], "graph") == 0))
        return launches(argv[1], atof(argv[2]), (unsigned)atoi(argv[3]));
    fprintf(stderr, "usage: runtime_probe basic | family NAME MIB | launch|graph SECONDS GRID\n");
    return 2;
}
