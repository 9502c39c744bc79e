/*
 * Simulated NVML (libnvidia-ml.so.1).  SIMULATED: reports the devices of the machine-wide
 * simulator state (sim_state.h): memory used by every process, running processes, and
 * utilization from the shared device timeline.  Init is reference counted like the real
 * library; everything but init and nvmlErrorString answers NVML_ERROR_UNINITIALIZED until
 * then.  Like the real NVML, it ignores CUDA_VISIBLE_DEVICES.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tf/nvml_abi.h"
#include "sim_config.h"
#include "sim_state.h"

#define TF_SIM_NVML_DRIVER "580.65.06"

static int init_count; /* atomic reference count */

/* Handles point into this array so they can be validated. */
static struct nvmlDevice_st {
    int index;
} handles[TF_SIM_MAX_DEVICES];

static int index_of(nvmlDevice_t handle) {
    const tf_sim_state *s = tf_sim_state_get();
    if (handle < &handles[0] || handle >= &handles[s->device_count]) return -1;
    return (int)(handle - &handles[0]);
}

static const tf_sim_device *device_of(nvmlDevice_t handle) {
    int i = index_of(handle);
    return i < 0 ? NULL : &tf_sim_state_get()->devices[i];
}

static nvmlReturn_t need_init(void) {
    return __atomic_load_n(&init_count, __ATOMIC_ACQUIRE) > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
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
    tf_sim_state_get();
    __atomic_add_fetch(&init_count, 1, __ATOMIC_ACQ_REL);
    return NVML_SUCCESS;
}
TF_SIM_API nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
TF_SIM_API nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

TF_SIM_API nvmlReturn_t nvmlShutdown(void) {
    int count = __atomic_load_n(&init_count, __ATOMIC_ACQUIRE);
    do {
        if (count <= 0) return NVML_ERROR_UNINITIALIZED;
    } while (!__atomic_compare_exchange_n(&init_count, &count, count - 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
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
    *version = tf_sim_state_get()->driver_version;
    return NVML_SUCCESS;
}
TF_SIM_API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) { return nvmlSystemGetCudaDriverVersion(version); }

TF_SIM_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = tf_sim_state_get()->device_count;
    return NVML_SUCCESS;
}
TF_SIM_API nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

TF_SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (device == NULL || index >= tf_sim_state_get()->device_count) return NVML_ERROR_INVALID_ARGUMENT;
    handles[index].index = (int)index;
    *device = &handles[index];
    return NVML_SUCCESS;
}
TF_SIM_API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (uuid == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const tf_sim_state *s = tf_sim_state_get();
    for (unsigned int i = 0; i < s->device_count; i++)
        if (strcmp(s->devices[i].uuid_text, uuid) == 0) return nvmlDeviceGetHandleByIndex_v2(i, device);
    return NVML_ERROR_NOT_FOUND;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    int i = index_of(device);
    if (i < 0 || index == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned int)i;
    return NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int len) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    const tf_sim_device *d = device_of(device);
    if (d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_text(name, len, d->name);
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int len) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    const tf_sim_device *d = device_of(device);
    if (d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_text(uuid, len, d->uuid_text);
}

/* Total, used and free of a device, after returning dead processes' memory. */
static nvmlReturn_t memory(nvmlDevice_t device, uint64_t *total, uint64_t *used) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    int i = index_of(device);
    if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
    tf_sim_sweep();
    *total = tf_sim_state_get()->devices[i].vram_bytes;
    *used = tf_sim_used(i);
    if (*used > *total) *used = *total;
    return NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *out) {
    uint64_t total, used;
    if (out == NULL) return need_init() != NVML_SUCCESS ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t rc = memory(device, &total, &used);
    if (rc != NVML_SUCCESS) return rc;
    out->total = total;
    out->used = used;
    out->free = total - used;
    return NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *out) {
    uint64_t total, used;
    if (out == NULL) return need_init() != NVML_SUCCESS ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
    if (out->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    nvmlReturn_t rc = memory(device, &total, &used);
    if (rc != NVML_SUCCESS) return rc;
    out->total = total;
    out->reserved = 0;
    out->used = used;
    out->free = total - used;
    return NVML_SUCCESS;
}

/* Processes holding memory on a device, with NVML's array-size protocol: too small a count
 * gives INSUFFICIENT_SIZE and the count needed. */
static nvmlReturn_t processes(nvmlDevice_t device, unsigned int *count, void *infos, size_t stride, int v1) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    int d = index_of(device);
    if (d < 0 || count == NULL || (infos == NULL && *count != 0)) return NVML_ERROR_INVALID_ARGUMENT;
    tf_sim_sweep();
    tf_sim_state *s = tf_sim_state_get();
    unsigned int found = 0, room = *count;
    uint32_t high = __atomic_load_n(&s->high_water, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < high && i < TF_SIM_MAX_PROCS; i++) {
        int32_t pid = __atomic_load_n(&s->procs[i].pid, __ATOMIC_ACQUIRE);
        uint64_t used = __atomic_load_n(&s->procs[i].used[d], __ATOMIC_ACQUIRE);
        if (pid == 0 || used == 0) continue;
        if (found < room) {
            char *at = (char *)infos + found * stride;
            if (v1) {
                nvmlProcessInfo_v1_t info = {(unsigned int)pid, used};
                memcpy(at, &info, sizeof info);
            } else {
                nvmlProcessInfo_t info = {(unsigned int)pid, used, 0xFFFFFFFFu, 0xFFFFFFFFu};
                memcpy(at, &info, sizeof info);
            }
        }
        found++;
    }
    *count = found;
    return found > room ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                                nvmlProcessInfo_t *infos) {
    return processes(device, count, infos, sizeof *infos, 0);
}
TF_SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count,
                                                                nvmlProcessInfo_t *infos) {
    return processes(device, count, infos, sizeof *infos, 0);
}
TF_SIM_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *count,
                                                             nvmlProcessInfo_v1_t *infos) {
    return processes(device, count, infos, sizeof *infos, 1);
}

/* No graphics on a simulated GPU. */
TF_SIM_API nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                                 nvmlProcessInfo_t *infos) {
    (void)infos;
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    if (index_of(device) < 0 || count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = 0;
    return NVML_SUCCESS;
}

/* Utilization is kept in 10 ms buckets of busy time (sim_state.h).  Device utilization is
 * the busy share of the last 100 ms (the last complete buckets); a process sample is the
 * busy share of the complete buckets newer than the caller's lastSeen (at most 1 s back;
 * lastSeen 0: the last 100 ms, like the device figure),
 * so a controller polling every P ms with the previous sample's time stamp gets exactly
 * the last P ms at 10 ms resolution. */

/* The last complete bucket before now. */
static uint64_t last_epoch(void) { return tf_sim_now_ns() / TF_SIM_BUCKET_NS - 1; }

static unsigned int percent(uint64_t busy_ns, uint64_t buckets) {
    uint64_t span = buckets * TF_SIM_BUCKET_NS;
    uint64_t p = (busy_ns * 100 + span / 2) / span; /* rounded to the nearest point */
    return p > 100 ? 100 : (unsigned int)p;
}

static uint64_t busy_over(int device, int proc, uint64_t first, uint64_t last) {
    uint64_t busy = 0;
    for (uint64_t e = first; e <= last; e++) busy += tf_sim_bucket_busy(device, proc, e);
    return busy;
}

TF_SIM_API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    int d = index_of(device);
    if (d < 0 || util == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t last = last_epoch();
    util->gpu = percent(busy_over(d, -1, last - TF_SIM_DEVICE_PERIOD_BUCKETS + 1, last), TF_SIM_DEVICE_PERIOD_BUCKETS);
    util->memory = 0; /* simulated kernels move no memory */
    return NVML_SUCCESS;
}

/* Per-process SM utilization over the complete buckets newer than lastSeen (us, wall clock). */
TF_SIM_API nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *samples,
                                                        unsigned int *count, unsigned long long lastSeen) {
    nvmlReturn_t rc = need_init();
    if (rc != NVML_SUCCESS) return rc;
    int d = index_of(device);
    if (d < 0 || count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t mono = tf_sim_now_ns(), last = mono / TF_SIM_BUCKET_NS - 1;
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    uint64_t real_ns = (uint64_t)real.tv_sec * 1000000000ULL + (uint64_t)real.tv_nsec;
    /* Sample time: the end of the last complete bucket, on the wall clock NVML reports in. */
    uint64_t age_ns = mono - (last + 1) * TF_SIM_BUCKET_NS;
    uint64_t stamp_us = (real_ns - age_ns) / 1000;
    /* First bucket: the one after lastSeen's (on the monotonic clock), within the window. */
    uint64_t first = last + 1 - (lastSeen == 0 ? TF_SIM_DEVICE_PERIOD_BUCKETS : TF_SIM_MAX_WINDOW_BUCKETS);
    uint64_t seen_ns = (uint64_t)lastSeen * 1000;
    if (lastSeen != 0 && real_ns > mono && seen_ns > real_ns - mono) {
        uint64_t seen_mono = seen_ns - (real_ns - mono); /* lastSeen on the monotonic clock */
        uint64_t after = (seen_mono + TF_SIM_BUCKET_NS / 2) / TF_SIM_BUCKET_NS; /* buckets end on stamps */
        if (after > first) first = after;
    }
    tf_sim_state *s = tf_sim_state_get();
    unsigned int found = 0, room = samples == NULL ? 0 : *count;
    uint32_t high = __atomic_load_n(&s->high_water, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < high && i < TF_SIM_MAX_PROCS && first <= last && stamp_us > lastSeen; i++) {
        int32_t pid = __atomic_load_n(&s->procs[i].pid, __ATOMIC_ACQUIRE);
        uint64_t busy = pid == 0 ? 0 : busy_over(d, (int)i, first, last);
        if (busy == 0) continue;
        if (found < room)
            samples[found] = (nvmlProcessUtilizationSample_t){(unsigned int)pid, stamp_us, percent(busy, last - first + 1),
                                                              0, 0, 0};
        found++;
    }
    *count = found;
    if (found == 0) return NVML_ERROR_NOT_FOUND;
    return samples == NULL || found > room ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}
