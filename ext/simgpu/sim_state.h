/*
 * sim_state.h - the SIMULATED machine: state every process on the machine shares, like one
 * set of real GPUs.  One file (TF_SIM_STATE, default /dev/shm/tensor-fusion-simgpu-v3.state),
 * created race-free by the first process (built under a temporary name, then linked), then
 * mapped by everyone.  Lock-free: atomics only, and process liveness is an OFD lock on the
 * process slot (the kernel drops it when the process dies), so a SIGKILLed process can never
 * wedge the others and its memory returns at the next sweep.
 */
#ifndef TF_SIM_STATE_H
#define TF_SIM_STATE_H

#include <stdint.h>

#include "sim_config.h"

#define TF_SIM_STATE_MAGIC 0x4D495354u /* "TSIM" */
#define TF_SIM_STATE_VERSION 3u
#define TF_SIM_MAX_PROCS 256
#define TF_SIM_BUCKET_NS 10000000ULL /* utilization resolution: 10 ms */
/* A kernel's busy time is booked when it is launched, up to 1.6 s of it; launches run at
 * most 1 s ahead (the launch queue), so booking reaches 2.6 s ahead of now and a ring of
 * 3.2 s never overwrites the last complete second before it is read. */
#define TF_SIM_BUCKETS 320
#define TF_SIM_PROC_BUCKETS TF_SIM_BUCKETS
#define TF_SIM_BOOKED_BUCKETS 160
#define TF_SIM_DEVICE_PERIOD_BUCKETS 10 /* nvmlDeviceGetUtilizationRates: the last 100 ms */
#define TF_SIM_MAX_WINDOW_BUCKETS 100   /* process samples average at most the last 1 s */

/* A utilization bucket: (epoch << 32) | busy_ns, updated with one CAS. */
typedef uint64_t tf_sim_bucket;

typedef struct tf_sim_device {
    char name[TF_SIM_NAME_LEN];
    char uuid_text[48]; /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
    unsigned char uuid[16];
    uint64_t vram_bytes;
    uint64_t tflops_milli;
    uint32_t sm_count;
    uint32_t speed_percent;
    uint64_t wave_ns;
    uint64_t busy_until_ns; /* atomic: CLOCK_MONOTONIC end of the device timeline */
    tf_sim_bucket util[TF_SIM_BUCKETS];
} tf_sim_device;

typedef struct tf_sim_proc {
    int32_t pid;      /* atomic: 0 = free; written by the slot's lock holder */
    uint32_t reserved;
    uint64_t used[TF_SIM_MAX_DEVICES]; /* atomic: bytes charged (2 MiB granules), physical index */
    tf_sim_bucket util[TF_SIM_MAX_DEVICES][TF_SIM_PROC_BUCKETS];
} tf_sim_proc;

typedef struct tf_sim_state {
    uint32_t magic;
    uint32_t version;
    uint64_t size;
    uint32_t device_count;
    int32_t driver_version;
    uint32_t high_water; /* atomic: 1 + highest slot ever claimed */
    uint32_t reserved;
    tf_sim_device devices[TF_SIM_MAX_DEVICES];
    tf_sim_proc procs[TF_SIM_MAX_PROCS];
} tf_sim_state;

/* The machine, mapped on first use (thread-safe); never NULL: when the shared file cannot be
 * used it says so once on stderr and falls back to state private to this process. */
tf_sim_state *tf_sim_state_get(void);

/* This process's slot (claimed on first call), or -1 when none could be had. */
int tf_sim_self_slot(void);

/* Bytes charged on a physical device by live and not yet swept processes. */
uint64_t tf_sim_used(int device);

/* Reclaims slots of dead processes; returns how many. */
int tf_sim_sweep(void);

/* Charges bytes (rounded up to the granularity) to this process on a physical device;
 * 0 = out of memory.  tf_sim_uncharge undoes it. */
int tf_sim_charge(int device, uint64_t bytes);
void tf_sim_uncharge(int device, uint64_t bytes);
uint64_t tf_sim_round(uint64_t bytes);

/* Puts busy time [start, end) on a device's (and this process's) utilization buckets. */
void tf_sim_account_busy(int device, uint64_t start_ns, uint64_t end_ns);

/* Busy ns of a device (proc = -1) or a process slot in the bucket of epoch, 0 if stale. */
uint64_t tf_sim_bucket_busy(int device, int proc, uint64_t epoch);

uint64_t tf_sim_now_ns(void);

#endif /* TF_SIM_STATE_H */
