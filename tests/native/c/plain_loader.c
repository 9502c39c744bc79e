/* A plain C loader: dlopen("libcuda.so.1") with the default RTLD_LOCAL, then dlsym of each
 * entry point by its exported name (no cuGetProcAddress anywhere), then allocates chunks of
 * MIB MiB until refused.  Usage: plain_loader MIB */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "tf/cuda_abi.h"

#define MIB (1ULL << 20)

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    uint64_t mib = strtoull(argv[1], NULL, 10);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW); /* RTLD_LOCAL is the default */
    if (lib == NULL) return printf("error=%s\n", dlerror()), 2;
    CUresult (*init)(unsigned int) = (CUresult(*)(unsigned int))dlsym(lib, "cuInit");
    CUresult (*get)(CUdevice *, int) = (CUresult(*)(CUdevice *, int))dlsym(lib, "cuDeviceGet");
    CUresult (*retain)(CUcontext *, CUdevice) = (CUresult(*)(CUcontext *, CUdevice))dlsym(lib, "cuDevicePrimaryCtxRetain");
    CUresult (*set)(CUcontext) = (CUresult(*)(CUcontext))dlsym(lib, "cuCtxSetCurrent");
    CUresult (*alloc)(CUdeviceptr *, size_t) = (CUresult(*)(CUdeviceptr *, size_t))dlsym(lib, "cuMemAlloc_v2");
    CUresult (*info)(size_t *, size_t *) = (CUresult(*)(size_t *, size_t *))dlsym(lib, "cuMemGetInfo_v2");
    if (!init || !get || !retain || !set || !alloc || !info) return printf("error=missing symbol\n"), 2;
    CUdevice dev;
    CUcontext ctx;
    if (init(0) || get(&dev, 0) || retain(&ctx, dev) || set(ctx)) return printf("error=init\n"), 2;
    int got = 0;
    CUdeviceptr p;
    while (got < 64 && alloc(&p, mib * MIB) == CUDA_SUCCESS) got++;
    size_t free_bytes = 0, total = 0;
    CUresult rc = info(&free_bytes, &total);
    printf("allocs=%d\ninfo=rc:%d,free:%zu,total:%zu\n", got, rc, free_bytes, total);
    return 0;
}
