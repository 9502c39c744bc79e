/*
 * Per-call cost of driver calls as a program sees them, for bench/bench_shim.py: run once
 * plain and once under LD_PRELOAD=libtfshim.so.  Reaches the driver the way cuda-python does
 * (dlopen, dlsym cuGetProcAddress_v2, then cuGetProcAddress for the rest), so under the shim
 * every call below goes through its hook.  Prints one JSON line per figure: the median over
 * batches of the per-call time, and the spread.
 *
 *   shim_calls [LAUNCHES [ALLOCS [ASYNCS]]]   per-call times (ASYNCS: stream-ordered pairs, default ALLOCS)
 *   shim_calls wake N REGION           futex wake latency: a launch waits on an empty bucket
 *                                      of REGION (run under the shim); another thread sets
 *                                      the rate to unlimited with the hypervisor's call
 *                                      (tf_compute_set_rate) and the time until the launch
 *                                      returns is taken, N times
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tf/compute.h"
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
static CUresult (*cuMemAllocAsync)(CUdeviceptr *, size_t, CUstream);
static CUresult (*cuMemFreeAsync)(CUdeviceptr, CUstream);
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

/* ---- futex wake latency ---- */

static tf_shm_limits *wake_limits;
static tf_shm_state *wake_state;
static int wake_turn;        /* atomic: 1 = the launcher may launch, 2 = it returned */
static uint64_t wake_sent;   /* atomic: when the rate change was made */
static uint64_t wake_back;   /* atomic: when the launch returned */

static void *map_rw(const char *path) {
    int fd = open(path, O_RDWR);
    if (fd < 0) return NULL;
    void *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static void *setter(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        tf_compute_set_rate(&wake_limits->devices[0], &wake_state->usage[0], 1, 1); /* empty bucket */
        __atomic_store_n(&wake_turn, 1, __ATOMIC_RELEASE);
        struct timespec pause = {0, 2000000}; /* the launch is asleep in the futex by then */
        nanosleep(&pause, NULL);
        __atomic_store_n(&wake_sent, tf_compute_now_ns(), __ATOMIC_RELEASE);
        tf_compute_set_rate(&wake_limits->devices[0], &wake_state->usage[0], 0, 0);
        while (__atomic_load_n(&wake_turn, __ATOMIC_ACQUIRE) != 2) sched_yield();
        printf("%llu\n", (unsigned long long)(__atomic_load_n(&wake_back, __ATOMIC_ACQUIRE) - wake_sent));
    }
    return NULL;
}

static int wake_latency(long n, const char *region) {
    char limits_path[4096];
    snprintf(limits_path, sizeof limits_path, "%s%s", region, TF_SHM_LIMITS_SUFFIX);
    wake_limits = map_rw(limits_path);
    wake_state = map_rw(region);
    if (wake_limits == NULL || wake_state == NULL) return 6;
    pthread_t t;
    pthread_create(&t, NULL, setter, (void *)n);
    for (long i = 0; i < n; i++) {
        while (__atomic_load_n(&wake_turn, __ATOMIC_ACQUIRE) != 1) sched_yield();
        if (cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL) != CUDA_SUCCESS) return 7;
        __atomic_store_n(&wake_back, tf_compute_now_ns(), __ATOMIC_RELEASE);
        __atomic_store_n(&wake_turn, 2, __ATOMIC_RELEASE);
    }
    pthread_join(t, NULL);
    return 0;
}

/* Stream-ordered: the hooks also decide whether the stream captures (one load outside capture). */
static int async_batch(long n) {
    for (long i = 0; i < n; i++) {
        CUdeviceptr p;
        if (cuMemAllocAsync(&p, 1 << 20, stream) != CUDA_SUCCESS || cuMemFreeAsync(p, stream) != CUDA_SUCCESS) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int wake = argc > 3 && strcmp(argv[1], "wake") == 0;
    long launches = argc > 1 && !wake ? atol(argv[1]) : 20000, allocs = argc > 2 && !wake ? atol(argv[2]) : 2000;
    long asyncs = argc > 3 && !wake ? atol(argv[3]) : allocs;
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
    *(void **)&cuMemAllocAsync = sym("cuMemAllocAsync");
    *(void **)&cuMemFreeAsync = sym("cuMemFreeAsync");
    CUcontext ctx;
    CUmodule mod;
    if (init(0) || retain(&ctx, 0) || set_current(ctx) || load(&mod, ".version 7.0\n.target sm_50\n.address_size 64\n.visible .entry k()\n{\n\tret;\n}\n") ||
        get_fn(&fn, mod, "k") ||
        stream_create(&stream, 0))
        return 4;
    if (wake) return wake_latency(atol(argv[2]), argv[3]);
    if (measure("cuLaunchKernel", launch_batch, launches) || measure("cuMemAlloc+cuMemFree", alloc_batch, allocs) ||
        measure("cuMemAllocAsync+cuMemFreeAsync", async_batch, asyncs))
        return 5;
    return 0;
}
