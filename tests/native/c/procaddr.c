/* Driver-API probe for tests/native/test_shim.py: prints key=value lines.
 * Loads libcuda.so.1 by normal library search, like cuda-python does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "tf/cuda_abi.h"

static PFN_cuGetProcAddress_v12000 gpa;

static const char *where(void *p) {
    Dl_info info;
    if (p == NULL || dladdr(p, &info) == 0 || info.dli_fname == NULL) return "none";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

static const char *sname(void *p) {
    Dl_info info;
    return p != NULL && dladdr(p, &info) != 0 && info.dli_sname != NULL ? info.dli_sname : "none";
}

static void *lookup(const char *key, const char *symbol, int version, cuuint64_t flags) {
    void *pfn = (void *)1;
    CUdriverProcAddressQueryResult status = (CUdriverProcAddressQueryResult)99;
    CUresult rc = gpa(symbol, &pfn, version, flags, &status);
    printf("%s=rc:%d,status:%d,lib:%s,sym:%s\n", key, rc, status, where(pfn), sname(pfn));
    return pfn;
}

int main(void) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        printf("error=%s\n", dlerror());
        return 1;
    }
    gpa = (PFN_cuGetProcAddress_v12000)dlsym(lib, "cuGetProcAddress_v2");
    printf("gpa=lib:%s\n", where((void *)gpa));
    CUresult (*init)(unsigned int) = (CUresult(*)(unsigned int))dlsym(lib, "cuInit");
    printf("init=%d\n", init(0));

    /* Old cudaVersion must get the 32-bit variant: check it writes exactly 4 bytes. */
    PFN_cuDeviceTotalMem_v2000 total_v1 =
        (PFN_cuDeviceTotalMem_v2000)lookup("totalmem_2000", "cuDeviceTotalMem", 2000, 0);
    struct { unsigned int bytes; unsigned int canary; } small = {0, 0xC0FFEEu};
    if (total_v1 != NULL) {
        CUresult rc = total_v1(&small.bytes, 0);
        printf("totalmem_v1=rc:%d,bytes:%u,canary_ok:%d\n", rc, small.bytes, small.canary == 0xC0FFEEu);
    }
    PFN_cuDeviceTotalMem_v3020 total_v2 =
        (PFN_cuDeviceTotalMem_v3020)lookup("totalmem_13000", "cuDeviceTotalMem", 13000, 0);
    if (total_v2 != NULL) {
        size_t bytes = 0;
        CUresult rc = total_v2(&bytes, 0);
        printf("totalmem_v2=rc:%d,bytes:%zu\n", rc, bytes);
    }
    lookup("uuid_9000", "cuDeviceGetUuid", 9000, 0);
    lookup("uuid_11000", "cuDeviceGetUuid", 11000, 0);
    lookup("uuid_12000", "cuDeviceGetUuid", 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
    lookup("unknown", "cuNoSuchFunction", 12000, 0);
    CUresult (*stub)(void) = (CUresult(*)(void))lookup("unimplemented", "cuGraphAddMemcpyNode", 12000, 0);
    if (stub != NULL) printf("unimplemented_call=%d\n", stub());
    lookup("memalloc_13000", "cuMemAlloc", 13000, 0);
    lookup("memalloc_2000", "cuMemAlloc", 2000, 0);
    lookup("launch_ptsz", "cuLaunchKernel", 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
    lookup("too_new", "cuInit", 99000, 0);
    lookup("gpa_12000", "cuGetProcAddress", 12000, 0);
    lookup("gpa_11030", "cuGetProcAddress", 11030, 0);
    return 0;
}
