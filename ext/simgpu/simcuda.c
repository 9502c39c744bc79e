/*
 * Simulated CUDA driver (libcuda.so.1) for machines without a GPU.  SIMULATED: devices are
 * described by the machine-wide state (sim_state.h), nothing runs on hardware.  This file:
 * init, versions, devices, errors and cuGetProcAddress.  Contexts, streams, events, modules
 * and launches are in sim_ctx.c; memory in sim_mem.c; the exported list in sim_exports.c.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cuda.h"
#include "tf/driver_procs.h"

static int initialized; /* atomic */
static int visible[TF_SIM_MAX_DEVICES];
static int visible_count;

CUresult tf_need_init(void) {
    return __atomic_load_n(&initialized, __ATOMIC_ACQUIRE) ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
}

/* CUDA_VISIBLE_DEVICES: comma-separated ordinals or UUID prefixes ("GPU-5153..."); like the
 * real driver, the list ends at the first entry that names no device. */
static void parse_visible(const tf_sim_state *s) {
    const char *env = getenv("CUDA_VISIBLE_DEVICES");
    visible_count = 0;
    if (env == NULL) {
        for (uint32_t i = 0; i < s->device_count; i++) visible[visible_count++] = (int)i;
        return;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", env);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL && visible_count < TF_SIM_MAX_DEVICES;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        int found = -1;
        if (strncmp(tok, "GPU-", 4) == 0) {
            for (uint32_t i = 0; i < s->device_count && found < 0; i++)
                if (strncmp(s->devices[i].uuid_text, tok, strlen(tok)) == 0) found = (int)i;
        } else {
            char *end = NULL;
            long v = strtol(tok, &end, 10);
            if (end != tok && *end == '\0' && v >= 0 && v < (long)s->device_count) found = (int)v;
        }
        if (found < 0) break;
        visible[visible_count++] = found;
    }
}

int tf_visible_count(void) { return visible_count; }

int tf_physical(CUdevice ordinal) { return ordinal >= 0 && ordinal < visible_count ? visible[ordinal] : -1; }

static const tf_sim_device *device_of(CUdevice dev) {
    int p = tf_physical(dev);
    return p < 0 ? NULL : &tf_sim_state_get()->devices[p];
}

TF_SIM_API CUresult cuInit(unsigned int flags) {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (__atomic_load_n(&initialized, __ATOMIC_ACQUIRE)) return CUDA_SUCCESS;
    tf_sim_state *s = tf_sim_state_get();
    parse_visible(s);
    if (visible_count == 0) return CUDA_ERROR_NO_DEVICE;
    tf_sim_self_slot();
    __atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDriverGetVersion(int *version) {
    if (version == NULL) return CUDA_ERROR_INVALID_VALUE;
    *version = tf_sim_config_get()->driver_version;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceGetCount(int *count) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
    *count = visible_count;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (device_of(ordinal) == NULL) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (name == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    const tf_sim_device *d = device_of(dev);
    if (d == NULL) return CUDA_ERROR_INVALID_DEVICE;
    strncpy(name, d->name, (size_t)len - 1);
    name[len - 1] = '\0';
    return CUDA_SUCCESS;
}

static CUresult total_mem(uint64_t *bytes, CUdevice dev) {
    CUresult rc = tf_need_init();
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
    CUresult rc = tf_need_init();
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

/* The attributes programs commonly ask for; the rest are in sim_attrs.c. */
TF_SIM_API CUresult cuDeviceGetAttribute(int *value, CUdevice_attribute attribute, CUdevice dev) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    const tf_sim_device *d = device_of(dev);
    if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (d == NULL) return CUDA_ERROR_INVALID_DEVICE;
    switch (attribute) {
    case 1: *value = 1024; break;                 /* MAX_THREADS_PER_BLOCK */
    case 2: case 3: *value = 1024; break;         /* MAX_BLOCK_DIM_X/Y */
    case 4: *value = 64; break;                   /* MAX_BLOCK_DIM_Z */
    case 5: *value = INT_MAX; break;              /* MAX_GRID_DIM_X */
    case 6: case 7: *value = 65535; break;        /* MAX_GRID_DIM_Y/Z */
    case 8: *value = 49152; break;                /* MAX_SHARED_MEMORY_PER_BLOCK */
    case 10: *value = 32; break;                  /* WARP_SIZE */
    case 16: *value = (int)d->sm_count; break;    /* MULTIPROCESSOR_COUNT */
    case 33: *value = 0; break;                   /* PCI_BUS_ID */
    case 39: *value = 2048; break;                /* MAX_THREADS_PER_MULTIPROCESSOR */
    case 41: *value = 1; break;                   /* UNIFIED_ADDRESSING */
    case 75: *value = 9; break;                   /* COMPUTE_CAPABILITY_MAJOR */
    case 76: *value = 0; break;                   /* COMPUTE_CAPABILITY_MINOR */
    case 83: *value = 1; break;                   /* MANAGED_MEMORY */
    case 95: *value = 1; break;                   /* COOPERATIVE_LAUNCH */
    case 102: *value = 1; break;                  /* VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED */
    case 115: *value = 1; break;                  /* MEMORY_POOLS_SUPPORTED */
    default: *value = tf_sim_attribute_default((int)attribute, tf_physical(dev)); break;
    }
    return CUDA_SUCCESS;
}

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

/* What every driver function the simulator does not implement resolves to.  Safe to call
 * with any arguments: the SysV x86-64 and AArch64 ABIs leave them to the caller. */
static CUresult not_supported(void) { return CUDA_ERROR_NOT_SUPPORTED; }

void *tf_sim_export(const char *symbol); /* sim_exports.c */

TF_SIM_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                        cuuint64_t flags, CUdriverProcAddressQueryResult *symbolStatus) {
    CUdriverProcAddressQueryResult status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    if (symbol == NULL || pfn == NULL || cudaVersion > tf_sim_config_get()->driver_version ||
        flags > (CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)) {
        if (symbolStatus != NULL) *symbolStatus = status;
        return CUDA_ERROR_INVALID_VALUE;
    }
    const tf_proc_variant *v = tf_proc_select(symbol, cudaVersion, flags, &status);
    *pfn = NULL;
    if (v != NULL) {
        *pfn = tf_sim_export(v->symbol);
        if (tf_sim_trace())
            fprintf(stderr, "tf-simgpu: cuGetProcAddress %s (%d, flags %llu) -> %s%s\n", symbol, cudaVersion,
                    (unsigned long long)flags, v->symbol, *pfn == NULL ? " NOT_SUPPORTED" : "");
        if (*pfn == NULL) *pfn = (void *)&not_supported;
    } else if (tf_sim_trace()) {
        fprintf(stderr, "tf-simgpu: cuGetProcAddress %s (%d) -> not found\n", symbol, cudaVersion);
    }
    if (symbolStatus != NULL) *symbolStatus = status;
    return CUDA_SUCCESS;
}

TF_SIM_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
    return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}
