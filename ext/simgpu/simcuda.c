/*
 * Simulated CUDA driver (libcuda.so.1) for machines without a GPU.  SIMULATED: devices are
 * described by sim_config.h, nothing runs on hardware.  Implements the entry points listed
 * in SIM_CUDA_EXPORTS; cuGetProcAddress resolves through the generated variant table and
 * reports SYMBOL_NOT_FOUND for driver functions the simulator does not implement.
 */
#include <limits.h>
#include <string.h>

#include "sim_config.h"
#include "tf/cuda_abi.h"
#include "tf/driver_procs.h"

static int initialized; /* atomic */

static CUresult need_init(void) {
    return __atomic_load_n(&initialized, __ATOMIC_ACQUIRE) ? CUDA_SUCCESS
                                                           : CUDA_ERROR_NOT_INITIALIZED;
}

static const tf_sim_device *device_of(CUdevice dev) {
    const tf_sim_config *c = tf_sim_config_get();
    return dev >= 0 && dev < c->device_count ? &c->devices[dev] : NULL;
}

TF_SIM_API CUresult cuInit(unsigned int flags) {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (tf_sim_config_get()->device_count == 0) return CUDA_ERROR_NO_DEVICE;
    __atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDriverGetVersion(int *version) {
    if (version == NULL) return CUDA_ERROR_INVALID_VALUE;
    *version = tf_sim_config_get()->driver_version;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceGetCount(int *count) {
    CUresult rc = need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
    *count = tf_sim_config_get()->device_count;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    CUresult rc = need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (device_of(ordinal) == NULL) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
    CUresult rc = need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (name == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (device_of(dev) == NULL) return CUDA_ERROR_INVALID_DEVICE;
    strncpy(name, TF_SIM_DEVICE_NAME, (size_t)len - 1);
    name[len - 1] = '\0';
    return CUDA_SUCCESS;
}

static CUresult total_mem(uint64_t *bytes, CUdevice dev) {
    CUresult rc = need_init();
    if (rc != CUDA_SUCCESS) return rc;
    const tf_sim_device *d = device_of(dev);
    if (d == NULL) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = d->vram_bytes;
    return CUDA_SUCCESS;
}

/* CUDA 2.0 form with a 32-bit result: saturates, as it cannot express >= 4 GiB. */
TF_SIM_API CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev) {
    uint64_t total = 0;
    if (bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = total_mem(&total, dev);
    if (rc == CUDA_SUCCESS) *bytes = total > UINT_MAX ? UINT_MAX : (unsigned int)total;
    return rc;
}

TF_SIM_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    uint64_t total = 0;
    if (bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = total_mem(&total, dev);
    if (rc == CUDA_SUCCESS) *bytes = (size_t)total;
    return rc;
}

static CUresult get_uuid(CUuuid *uuid, CUdevice dev) {
    CUresult rc = need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (uuid == NULL) return CUDA_ERROR_INVALID_VALUE;
    const tf_sim_device *d = device_of(dev);
    if (d == NULL) return CUDA_ERROR_INVALID_DEVICE;
    memcpy(uuid->bytes, d->uuid, sizeof uuid->bytes);
    return CUDA_SUCCESS;
}

/* The two UUID variants differ only for MIG instances, which the simulator has none of. */
TF_SIM_API CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) { return get_uuid(uuid, dev); }
TF_SIM_API CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev) { return get_uuid(uuid, dev); }

TF_SIM_API CUresult cuGetErrorName(CUresult error, const char **text) {
    if (text == NULL) return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
#define TF_NAME_CASE(name, value, description) case name: *text = #name; return CUDA_SUCCESS;
        TF_CU_RESULTS(TF_NAME_CASE)
#undef TF_NAME_CASE
    }
    *text = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

TF_SIM_API CUresult cuGetErrorString(CUresult error, const char **text) {
    if (text == NULL) return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
#define TF_TEXT_CASE(name, value, description) case name: *text = description; return CUDA_SUCCESS;
        TF_CU_RESULTS(TF_TEXT_CASE)
#undef TF_TEXT_CASE
    }
    *text = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

/* Private driver tables used by the CUDA runtime: not simulated (see docs/native.md). */
TF_SIM_API CUresult cuGetExportTable(const void **table, const CUuuid *id) {
    (void)id;
    if (table != NULL) *table = NULL;
    return CUDA_ERROR_NOT_SUPPORTED;
}

TF_SIM_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags,
                                        CUdriverProcAddressQueryResult *symbolStatus);

TF_SIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                     cuuint64_t flags) {
    return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}

/* Every exported variant this simulator implements: X(symbol). */
#define SIM_CUDA_EXPORTS(X)                                                                 \
    X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName)   \
    X(cuDeviceTotalMem) X(cuDeviceTotalMem_v2) X(cuDeviceGetUuid) X(cuDeviceGetUuid_v2)     \
    X(cuGetErrorName) X(cuGetErrorString) X(cuGetExportTable) X(cuGetProcAddress)           \
    X(cuGetProcAddress_v2)

static void *implementation(const char *symbol) {
#define TF_IMPL(name) if (strcmp(symbol, #name) == 0) return (void *)&name;
    SIM_CUDA_EXPORTS(TF_IMPL)
#undef TF_IMPL
    return NULL;
}

TF_SIM_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags,
                                        CUdriverProcAddressQueryResult *symbolStatus) {
    CUdriverProcAddressQueryResult status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    if (symbol == NULL || pfn == NULL || cudaVersion > tf_sim_config_get()->driver_version ||
        flags > (CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)) {
        if (symbolStatus != NULL) *symbolStatus = status;
        return CUDA_ERROR_INVALID_VALUE;
    }
    const tf_proc_variant *v = tf_proc_select(symbol, cudaVersion, flags, &status);
    *pfn = v != NULL ? implementation(v->symbol) : NULL;
    if (v != NULL && *pfn == NULL) status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    if (symbolStatus != NULL) *symbolStatus = status;
    return CUDA_SUCCESS;
}
