/*
 * Per-call cost of driver calls as a program sees them, for bench/bench_shim.py: run once
 * plain and once under LD_PRELOAD=libtfshim.so.  Reaches the driver the way cuda-python does
 * (dlopen, dlsym cuGetProcAddress_v2, then cuGetProcAddress for the rest), so under the shim
 * every call below goes through its hook.  Prints one JSON line per figure: the median over
 * batches of the per-call time, and the spread.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tf/cuda_abi.h"

#define BATCHES 41

static PFN_cuGetProcAddress_v12000 gpa;

static void *sym(const char *name) {
    void *p = NULL;
    CUdriverProcAddressQueryResult status;
    if (gpa(name, &p, 13000, 0, &status) != CUDA_SUCCESS || p == NULL) {
        fprintf(stderr, "missing %s\n", name);
        exit(3);
    }
    return p;
}

static CUresult (*cuLaunchKernel)(CUfunction, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int,
                                  unsigned int, unsigned int, CUstream, void **, void **);
static CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
static CUresult (*cuMemFree)(CUdeviceptr);
static CUfunction fn;
static CUstream stream;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int launch_batch(long n) {
    for (long i = 0; i < n; i++)
        if (cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL) != CUDA_SUCCESS) return 1;
    return 0;
}

static int alloc_batch(long n) {
    for (long i = 0; i < n; i++) {
        CUdeviceptr p;
        if (cuMemAlloc(&p, 1 << 20) != CUDA_SUCCESS || cuMemFree(p) != CUDA_SUCCESS) return 1;
    }
    return 0;
}

static int measure(const char *figure, int (*batch)(long), long per_batch) {
    double samples[BATCHES];
    if (batch(per_batch / 4) != 0) return 1; /* warm up */
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now_ns();
        if (batch(per_batch) != 0) return 1;
        samples[b] = (now_ns() - t0) / (double)per_batch;
    }
    qsort(samples, BATCHES, sizeof samples[0], compare);
    printf("{\"figure\": \"%s\", \"median_ns\": %.1f, \"p10_ns\": %.1f, \"p90_ns\": %.1f, \"calls\": %ld}\n", figure,
           samples[BATCHES / 2], samples[BATCHES / 10], samples[BATCHES * 9 / 10], per_batch * BATCHES);
    return 0;
}

int main(int argc, char **argv) {
    long launches = argc > 1 ? atol(argv[1]) : 20000, allocs = argc > 2 ? atol(argv[2]) : 2000;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) return 2;
    gpa = (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2");
    CUresult (*init)(unsigned int) = sym("cuInit");
    CUresult (*retain)(CUcontext *, CUdevice) = sym("cuDevicePrimaryCtxRetain");
    CUresult (*set_current)(CUcontext) = sym("cuCtxSetCurrent");
    CUresult (*load)(CUmodule *, const void *) = sym("cuModuleLoadData");
    CUresult (*get_fn)(CUfunction *, CUmodule, const char *) = sym("cuModuleGetFunction");
    CUresult (*stream_create)(CUstream *, unsigned int) = sym("cuStreamCreate");
    *(void **)&cuLaunchKernel = sym("cuLaunchKernel");
    *(void **)&cuMemAlloc = sym("cuMemAlloc");
    *(void **)&cuMemFree = sym("cuMemFree");
    CUcontext ctx;
    CUmodule mod;
    if (init(0) || retain(&ctx, 0) || set_current(ctx) || load(&mod, "// bench") || get_fn(&fn, mod, "k") ||
        stream_create(&stream, 0))
        return 4;
    if (measure("cuLaunchKernel", launch_batch, launches) || measure("cuMemAlloc+cuMemFree", alloc_batch, allocs))
        return 5;
    return 0;
}
