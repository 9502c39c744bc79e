/* Simulated-driver probe for tests/native/test_sim.py: prints key=value lines.
 * Usage: simdrv basics | simdrv kernel WAVES_A [launch only: "bg"] */
#include <string.h>
#include <unistd.h>

#include "driver.h"

FN(cuCtxGetCurrent, CUresult, (CUcontext *));
FN(cuCtxCreate, CUresult, (CUcontext *, CUctxCreateParams *, unsigned int, CUdevice));
FN(cuCtxDestroy, CUresult, (CUcontext));
FN(cuCtxPopCurrent, CUresult, (CUcontext *));
FN(cuCtxSynchronize, CUresult, (void));
FN(cuStreamCreate, CUresult, (CUstream *, unsigned int));
FN(cuStreamSynchronize, CUresult, (CUstream));
FN(cuStreamQuery, CUresult, (CUstream));
FN(cuMemcpyHtoD, CUresult, (CUdeviceptr, const void *, size_t));
FN(cuMemcpyDtoH, CUresult, (void *, CUdeviceptr, size_t));
FN(cuMemcpyDtoD, CUresult, (CUdeviceptr, CUdeviceptr, size_t));
FN(cuMemcpyHtoDAsync, CUresult, (CUdeviceptr, const void *, size_t, CUstream));
FN(cuMemcpyDtoHAsync, CUresult, (void *, CUdeviceptr, size_t, CUstream));
FN(cuMemsetD32, CUresult, (CUdeviceptr, unsigned int, size_t));
FN(cuMemsetD8Async, CUresult, (CUdeviceptr, unsigned char, size_t, CUstream));
FN(cuModuleLoadData, CUresult, (CUmodule *, const void *));
FN(cuModuleGetFunction, CUresult, (CUfunction *, CUmodule, const char *));
FN(cuLaunchKernel, CUresult, (CUfunction, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int,
                              unsigned int, unsigned int, CUstream, void **, void **));
FN(cuEventCreate, CUresult, (CUevent *, unsigned int));
FN(cuEventRecord, CUresult, (CUevent, CUstream));
FN(cuEventSynchronize, CUresult, (CUevent));
FN(cuEventElapsedTime, CUresult, (float *, CUevent, CUevent));
FN(cuMemCreate, CUresult, (CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long));
FN(cuMemRelease, CUresult, (CUmemGenericAllocationHandle));
FN(cuMemAddressReserve, CUresult, (CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long));
FN(cuMemAddressFree, CUresult, (CUdeviceptr, size_t));
FN(cuMemMap, CUresult, (CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long));
FN(cuMemUnmap, CUresult, (CUdeviceptr, size_t));
FN(cuMemSetAccess, CUresult, (CUdeviceptr, size_t, const CUmemAccessDesc *, size_t));

static void load_all(void) {
    LOAD(cuCtxGetCurrent); LOAD(cuCtxCreate); LOAD(cuCtxDestroy); LOAD(cuCtxPopCurrent); LOAD(cuCtxSynchronize);
    LOAD(cuStreamCreate); LOAD(cuStreamSynchronize); LOAD(cuStreamQuery); LOAD(cuMemcpyHtoD); LOAD(cuMemcpyDtoH);
    LOAD(cuMemcpyDtoD); LOAD(cuMemcpyHtoDAsync); LOAD(cuMemcpyDtoHAsync); LOAD(cuMemsetD32); LOAD(cuMemsetD8Async);
    LOAD(cuModuleLoadData); LOAD(cuModuleGetFunction); LOAD(cuLaunchKernel); LOAD(cuEventCreate);
    LOAD(cuEventRecord); LOAD(cuEventSynchronize); LOAD(cuEventElapsedTime); LOAD(cuMemCreate); LOAD(cuMemRelease);
    LOAD(cuMemAddressReserve); LOAD(cuMemAddressFree); LOAD(cuMemMap); LOAD(cuMemUnmap); LOAD(cuMemSetAccess);
}

static CUfunction kernel(void) {
    CUmodule mod;
    CUfunction f;
    cuModuleLoadData(&mod, BUSY_PTX);
    cuModuleGetFunction(&f, mod, "busy");
    return f;
}

static int basics(void) {
    /* Memory needs a context: none is current on a fresh thread's stack after a pop. */
    CUcontext ctx, popped;
    cuCtxGetCurrent(&ctx);
    cuCtxPopCurrent(&popped);
    CUdeviceptr p = 0;
    printf("no_context=%d\n", cuMemAlloc(&p, 1024));
    cuCtxSetCurrent(ctx);
    printf("zero_size=%d\n", cuMemAlloc(&p, 0));
    printf("free_unknown=%d\n", cuMemFree((CUdeviceptr)0x1234000));
    CUdeviceptr a, b;
    cuMemAlloc(&a, 1 << 20);
    cuMemAlloc(&b, 1 << 20);
    printf("aligned=%d\n", a % 256 == 0 && b % 256 == 0);
    char in[4096], out[4096];
    for (int i = 0; i < 4096; i++) in[i] = (char)(i * 7);
    CUresult r1 = cuMemcpyHtoD(a, in, sizeof in), r2 = cuMemcpyDtoD(b, a, sizeof in), r3 = cuMemcpyDtoH(out, b, sizeof out);
    printf("copy=%d,%d,%d,%d\n", r1, r2, r3, memcmp(in, out, sizeof in) == 0);
    printf("copy_out_of_bounds=%d\n", cuMemcpyHtoD(a + (1 << 20) - 16, in, 32));
    unsigned int words[4];
    cuMemsetD32(a, 0xdeadbeef, 4);
    cuMemcpyDtoH(words, a, sizeof words);
    printf("memset32=%d\n", words[0] == 0xdeadbeef && words[3] == 0xdeadbeef);
    CUstream s;
    cuStreamCreate(&s, 0);
    CUfunction f = kernel();
    cuLaunchKernel(f, 264, 1, 1, 1024, 1, 1, 0, s, NULL, NULL); /* one full wave of 132 SMs x 2048 */
    cuMemsetD8Async(b, 0x5a, 4096, s);
    cuMemcpyDtoHAsync(out, b, 4096, s);
    CUresult q = cuStreamQuery(s);
    cuStreamSynchronize(s);
    printf("async=%d,%d,%d\n", q, cuStreamQuery(s), out[0] == 0x5a && out[4095] == 0x5a);
    CUresult big_block = cuLaunchKernel(f, 1, 1, 1, 2048, 1, 1, 0, s, NULL, NULL);
    CUresult no_function = cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
    printf("bad_launch=%d,%d\n", big_block, no_function);
    /* VMM: physical memory mapped into a reserved range moves real bytes too. */
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    CUmemGenericAllocationHandle h;
    CUdeviceptr va;
    size_t two = 2 << 20;
    CUmemAccessDesc access = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, 3};
    CUresult v1 = cuMemCreate(&h, two, &prop, 0), v2 = cuMemAddressReserve(&va, two, 0, 0, 0),
             v3 = cuMemMap(va, two, 0, h, 0), v4 = cuMemSetAccess(va, two, &access, 1),
             v5 = cuMemcpyHtoD(va, in, sizeof in);
    cuMemcpyDtoH(out, va, sizeof out);
    int same = memcmp(in, out, sizeof in) == 0;
    CUresult v6 = cuMemUnmap(va, two), v7 = cuMemRelease(h), v8 = cuMemAddressFree(va, two);
    printf("vmm=%d,%d,%d,%d,%d,%d,%d,%d,%d\n", v1, v2, v3, v4, v5, same, v6, v7, v8);
    printf("vmm_unaligned=%d\n", cuMemCreate(&h, 4096, &prop, 0));
    CUresult f1 = cuMemFree(a), f2 = cuMemFree(b), f3 = cuMemFree(a);
    printf("frees=%d,%d,%d\n", f1, f2, f3); /* the second free of a is INVALID_VALUE */
    /* A created context is current until popped or destroyed. */
    CUcontext mine, cur;
    CUresult c1 = cuCtxCreate(&mine, NULL, 0, 0);
    cuCtxGetCurrent(&cur);
    CUresult c2 = cuCtxDestroy(mine);
    printf("ctx=%d,%d,%d\n", c1, cur == mine, c2);
    size_t free_bytes, total;
    printf("oom=%d\n", cuMemAlloc(&p, (size_t)1 << 50));
    cuMemGetInfo(&free_bytes, &total);
    printf("meminfo=%zu,%zu\n", free_bytes, total);
    return 0;
}

static int timeline(int waves, int background) {
    /* Time a kernel of `waves` full waves with events on the shared device timeline. */
    CUfunction f = kernel();
    CUstream s;
    cuStreamCreate(&s, 0);
    CUevent e0, e1;
    cuEventCreate(&e0, 0);
    cuEventCreate(&e1, 0);
    cuEventRecord(e0, s);
    cuLaunchKernel(f, 132 * 2 * (unsigned int)waves, 1, 1, 1024, 1, 1, 0, s, NULL, NULL);
    cuEventRecord(e1, s);
    printf("launched=1\n");
    if (background) {
        sleep(30);
        return 0;
    }
    float ms = -1;
    CUresult early = cuEventElapsedTime(&ms, e0, e1);
    cuEventSynchronize(e1);
    CUresult rc = cuEventElapsedTime(&ms, e0, e1);
    printf("elapsed=%d,%d,%.1f\n", early, rc, ms);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    gpa = lib ? (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2") : NULL;
    if (gpa == NULL) return 2;
    LOAD(cuMemAlloc);
    CUdeviceptr p;
    printf("before_init=%d\n", cuMemAlloc(&p, 1024));
    open_driver(0);
    load_all();
    if (argc >= 2 && strcmp(argv[1], "basics") == 0) return basics();
    if (argc >= 3 && strcmp(argv[1], "kernel") == 0) return timeline(atoi(argv[2]), argc == 4);
    return 64;
}
