/*
 * Simulated NVML (libnvidia-ml.so.1).  SIMULATED: reports the devices of sim_config.h.
 * Init is reference counted like the real library; everything but init and
 * nvmlErrorString answers NVML_ERROR_UNINITIALIZED until then.
 */
#include <stdio.h>
#include <string.h>

#include "nvml_abi.h"
#include "sim_config.h"

#define TF_SIM_NVML_DRIVER "580.65.06"

static int init_count; /* atomic reference count */

/* Handles point into this array so they can be validated. */
static struct nvmlDevice_st {
    int index;
} handles[TF_SIM_MAX_DEVICES];

static const tf_sim_device *device_of(nvmlDevice_t handle) {
    const tf_sim_config *c = tf_sim_config_get();
    if (handle < &handles[0] || handle >= &handles[c->device_count]) return NULL;
    return &c->devices[handle - &handles[0]];
}

static nvmlReturn_t need_init(void) {
    return __atomic_load_n(&init_count, __ATOMIC_ACQUIRE) > 0 ? NVML_SUCCESS
                                                              : NVML_ERROR_UNINITIALIZED;
}

/* Copies text into buf of length len, or reports INSUFFICIENT_SIZE like NVML does. */
static nvmlReturn_t copy_text(char *buf, unsigned int len, const char *text) {
    if (buf == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, text, strlen(text) + 1);
    return NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    tf_sim_config_get();
    __atomic_add_fetch(&init_count, 1, __ATOMIC_ACQ_REL);
    return NVML_SUCCESS;
}
TF_SIM_API nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
TF_SIM_API nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

TF_SIM_API nvmlReturn_t nvmlShutdown(void) {
    int count = __atomic_load_n(&init_count, __ATOMIC_ACQUIRE);
    do {
        if (count <= 0) return NVML_ERROR_UNINITIALIZED;
    } while (!__atomic_compare_exchange_n(&init_count, &count, count - 1, 1, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    return NVML_SUCCESS;
}

TF_SIM_API const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
#define TF_NVML_TEXT(name, value, text) case name: return text;
        TF_NVML_RESULTS(TF_NVML_TEXT)
#undef TF_NVML_TEXT
    }
    return "Unknown Error";
}

TF_SIM_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int len) {
    nvmlReturn_t rc = need_init();
    return rc != NVML_SUCCESS ? rc : copy_text(version, len, TF_SIM_NVML_DRIVER);
}

TF_SIM_API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (version == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *version = tf_sim_config_get()->driver_version;
    return NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)tf_sim_config_get()->device_count;
    return NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (device == NULL || index >= (unsigned int)tf_sim_config_get()->device_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &handles[index];
    return NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int len) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (device_of(device) == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_text(name, len, TF_SIM_DEVICE_NAME);
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int len) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    const tf_sim_device *d = device_of(device);
    if (d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_text(uuid, len, d->uuid_text);
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    const tf_sim_device *d = device_of(device);
    if (d == NULL || memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    /* No simulated allocations exist yet: the whole device is free. */
    memory->total = d->vram_bytes;
    memory->used = 0;
    memory->free = d->vram_bytes;
    return NVML_SUCCESS;
}
