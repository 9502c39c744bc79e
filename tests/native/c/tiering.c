/* Host placement of VMM memory, as a tiering implementation uses it: usage tiering COMMAND MIB.
 *   move MIB    device memory at a VA, filled, then moved to host-located memory mapped at the
 *               same VA: prints the data check and the device's used memory at each step
 *   copy MIB    the simulated time of an async device-to-host copy of MIB (event elapsed, ms)
 *   hostoom MIB tries to create MIB of host-located memory (TF_SIM_HOST_MEM caps it)
 *   slow MIB    simulated time of one kernel with MIB of device memory, then with MIB more of
 *               host-located memory mapped (ms each) */
#include <string.h>

#include "driver.h"

#define MIB (1ULL << 20)

FN(cuMemCreate, CUresult, (CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long));
FN(cuMemRelease, CUresult, (CUmemGenericAllocationHandle));
FN(cuMemAddressReserve, CUresult, (CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long));
FN(cuMemAddressFree, CUresult, (CUdeviceptr, size_t));
FN(cuMemMap, CUresult, (CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long));
FN(cuMemUnmap, CUresult, (CUdeviceptr, size_t));
FN(cuMemSetAccess, CUresult, (CUdeviceptr, size_t, const CUmemAccessDesc *, size_t));
FN(cuMemcpyHtoD, CUresult, (CUdeviceptr, const void *, size_t));
FN(cuMemcpyDtoH, CUresult, (void *, CUdeviceptr, size_t));
FN(cuMemcpyDtoD, CUresult, (CUdeviceptr, CUdeviceptr, size_t));
FN(cuMemcpyDtoHAsync, CUresult, (void *, CUdeviceptr, size_t, CUstream));
FN(cuEventCreate, CUresult, (CUevent *, unsigned int));
FN(cuEventRecord, CUresult, (CUevent, CUstream));
FN(cuEventSynchronize, CUresult, (CUevent));
FN(cuEventElapsedTime, CUresult, (float *, CUevent, CUevent));
FN(cuModuleLoadData, CUresult, (CUmodule *, const void *));
FN(cuModuleGetFunction, CUresult, (CUfunction *, CUmodule, const char *));
FN(cuLaunchKernel, CUresult,
   (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **));

static size_t used_now(void) {
    size_t free_bytes = 0, total = 0;
    cuMemGetInfo(&free_bytes, &total);
    return total - free_bytes;
}

static CUresult create(CUmemGenericAllocationHandle *h, size_t bytes, int location) {
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = location;
    prop.location.id = 0;
    return cuMemCreate(h, bytes, &prop, 0);
}

static CUresult map_at(CUdeviceptr va, size_t bytes, CUmemGenericAllocationHandle h) {
    CUmemAccessDesc access = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, 3};
    CUresult rc = cuMemMap(va, bytes, 0, h, 0);
    return rc == CUDA_SUCCESS ? cuMemSetAccess(va, bytes, &access, 1) : rc;
}

static int move(size_t bytes) {
    CUdeviceptr va, scratch;
    CUmemGenericAllocationHandle dev, host;
    unsigned char *pattern = malloc(bytes), *back = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) pattern[i] = (unsigned char)(i * 131 + 7);
    printf("reserve=%d\n", cuMemAddressReserve(&va, bytes, 0, 0, 0) + cuMemAddressReserve(&scratch, bytes, 0, 0, 0));
    printf("create_device=%d\n", create(&dev, bytes, CU_MEM_LOCATION_TYPE_DEVICE));
    printf("map_device=%d\n", map_at(va, bytes, dev));
    printf("fill=%d\n", cuMemcpyHtoD(va, pattern, bytes));
    printf("used_device=%zu\n", used_now());
    printf("create_host=%d\n", create(&host, bytes, CU_MEM_LOCATION_TYPE_HOST_NUMA));
    printf("map_scratch=%d\n", map_at(scratch, bytes, host));
    printf("copy_out=%d\n", cuMemcpyDtoD(scratch, va, bytes));
    printf("unmap=%d\n", cuMemUnmap(va, bytes) + cuMemUnmap(scratch, bytes) + cuMemRelease(dev));
    printf("map_host=%d\n", map_at(va, bytes, host));
    printf("used_host=%zu\n", used_now());
    printf("read=%d\n", cuMemcpyDtoH(back, va, bytes));
    printf("same=%d\n", memcmp(back, pattern, bytes) == 0);
    printf("done=%d\n", cuMemUnmap(va, bytes) + cuMemRelease(host) + cuMemAddressFree(va, bytes) +
                            cuMemAddressFree(scratch, bytes));
    return 0;
}

static int timed_copy(size_t bytes) {
    CUdeviceptr d;
    CUevent a, b;
    float ms = 0;
    void *host = malloc(bytes);
    CUresult rc = cuMemAlloc(&d, bytes);
    if (rc == CUDA_SUCCESS) rc = cuEventCreate(&a, 0);
    if (rc == CUDA_SUCCESS) rc = cuEventCreate(&b, 0);
    if (rc == CUDA_SUCCESS) rc = cuEventRecord(a, NULL);
    if (rc == CUDA_SUCCESS) rc = cuMemcpyDtoHAsync(host, d, bytes, NULL);
    if (rc == CUDA_SUCCESS) rc = cuEventRecord(b, NULL);
    if (rc == CUDA_SUCCESS) rc = cuEventSynchronize(b);
    if (rc == CUDA_SUCCESS) rc = cuEventElapsedTime(&ms, a, b);
    printf("copy=%d,%.0f\n", rc, ms);
    return 0;
}

/* One kernel of 264000 blocks of 1024 threads timed on the simulated timeline. */
static float kernel_ms(CUfunction f) {
    CUevent a, b;
    float ms = -1;
    cuEventCreate(&a, 0);
    cuEventCreate(&b, 0);
    cuEventRecord(a, NULL);
    if (cuLaunchKernel(f, 132 * 2000, 1, 1, 1024, 1, 1, 0, NULL, NULL, NULL) != CUDA_SUCCESS) return -1;
    cuEventRecord(b, NULL);
    cuEventSynchronize(b);
    cuEventElapsedTime(&ms, a, b);
    return ms;
}

static int slow(size_t bytes) {
    CUmodule mod;
    CUfunction f;
    CUdeviceptr d, va;
    CUmemGenericAllocationHandle h;
    if (cuModuleLoadData(&mod, BUSY_PTX) || cuModuleGetFunction(&f, mod, "busy") || cuMemAlloc(&d, bytes)) return 2;
    printf("device_only=%.3f\n", kernel_ms(f));
    if (cuMemAddressReserve(&va, bytes, 0, 0, 0) || create(&h, bytes, CU_MEM_LOCATION_TYPE_HOST) || map_at(va, bytes, h))
        return 2;
    printf("half_on_host=%.3f\n", kernel_ms(f));
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    open_driver(0);
    LOAD(cuMemCreate);
    LOAD(cuMemRelease);
    LOAD(cuMemAddressReserve);
    LOAD(cuMemAddressFree);
    LOAD(cuMemMap);
    LOAD(cuMemUnmap);
    LOAD(cuMemSetAccess);
    LOAD(cuMemcpyHtoD);
    LOAD(cuMemcpyDtoH);
    LOAD(cuMemcpyDtoD);
    LOAD(cuMemcpyDtoHAsync);
    LOAD(cuEventCreate);
    LOAD(cuEventRecord);
    LOAD(cuEventSynchronize);
    LOAD(cuEventElapsedTime);
    LOAD(cuModuleLoadData);
    LOAD(cuModuleGetFunction);
    LOAD(cuLaunchKernel);
    size_t bytes = strtoull(argv[2], NULL, 10) * MIB;
    if (strcmp(argv[1], "move") == 0) return move(bytes);
    if (strcmp(argv[1], "copy") == 0) return timed_copy(bytes);
    if (strcmp(argv[1], "slow") == 0) return slow(bytes);
    if (strcmp(argv[1], "hostoom") == 0) {
        CUmemGenericAllocationHandle h;
        printf("create_host=%d\n", create(&h, bytes, CU_MEM_LOCATION_TYPE_HOST));
        return 0;
    }
    return 2;
}
