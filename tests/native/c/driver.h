/* Shared by the driver-API test programs: reaches the driver like cuda-python does
 * (dlopen libcuda.so.1, dlsym cuGetProcAddress_v2, everything else through it). */
#ifndef TF_TEST_DRIVER_H
#define TF_TEST_DRIVER_H
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "tf/cuda_abi.h"

static PFN_cuGetProcAddress_v12000 gpa;

static void *sym(const char *name) {
    void *p = NULL;
    CUdriverProcAddressQueryResult status;
    if (gpa(name, &p, 13000, 0, &status) != CUDA_SUCCESS || p == NULL) {
        printf("error=missing %s\n", name);
        exit(3);
    }
    return p;
}

/* A real module (PTX any driver since CUDA 11 JIT-compiles) defining the kernel "busy". */
static const char BUSY_PTX[] = ".version 7.0\n.target sm_50\n.address_size 64\n.visible .entry busy()\n{\n\tret;\n}\n";

#define FN(name, ret, params) static ret(*name) params
#define LOAD(name) *(void **)&name = sym(#name)

FN(cuInit, CUresult, (unsigned int));
FN(cuDeviceGet, CUresult, (CUdevice *, int));
FN(cuDeviceGetCount, CUresult, (int *));
FN(cuDevicePrimaryCtxRetain, CUresult, (CUcontext *, CUdevice));
FN(cuCtxSetCurrent, CUresult, (CUcontext));
FN(cuMemAlloc, CUresult, (CUdeviceptr *, size_t));
FN(cuMemFree, CUresult, (CUdeviceptr));
FN(cuMemGetInfo, CUresult, (size_t *, size_t *));
FN(cuDeviceTotalMem, CUresult, (size_t *, CUdevice));

/* Inits the driver and makes device ordinal's primary context current; exits 2 on error. */
static void open_driver(int ordinal) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        printf("error=%s\n", dlerror());
        exit(2);
    }
    gpa = (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2");
    LOAD(cuInit);
    LOAD(cuDeviceGet);
    LOAD(cuDeviceGetCount);
    LOAD(cuDevicePrimaryCtxRetain);
    LOAD(cuCtxSetCurrent);
    LOAD(cuMemAlloc);
    LOAD(cuMemFree);
    LOAD(cuMemGetInfo);
    LOAD(cuDeviceTotalMem);
    CUdevice dev;
    CUcontext ctx;
    CUresult rc = cuInit(0);
    if (rc == CUDA_SUCCESS) rc = cuDeviceGet(&dev, ordinal);
    if (rc == CUDA_SUCCESS) rc = cuDevicePrimaryCtxRetain(&ctx, dev);
    if (rc == CUDA_SUCCESS) rc = cuCtxSetCurrent(ctx);
    if (rc != CUDA_SUCCESS) {
        printf("error=driver init failed: %d\n", rc);
        exit(2);
    }
}

#endif
