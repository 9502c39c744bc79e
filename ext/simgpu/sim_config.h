/*
 * sim_config.h - configuration of the SIMULATED GPU, shared by the simulated libcuda.so.1
 * and libnvidia-ml.so.1.  Read once: an optional file (TF_SIM_CONFIG), then the environment,
 * which wins.  Every simulated device gets the same description.  The process that creates
 * the machine-wide state (sim_state.h) applies its configuration; later processes see the
 * devices that state describes, as processes on one machine see one set of GPUs.
 */
#ifndef TF_SIM_CONFIG_H
#define TF_SIM_CONFIG_H

#include <stdint.h>

#define TF_SIM_API __attribute__((visibility("default")))
#define TF_SIM_MAX_DEVICES 16
#define TF_SIM_NAME_LEN 96
#define TF_SIM_SUFFIX " (simulated)"
#define TF_SIM_DEFAULT_NAME "NVIDIA H100 80GB HBM3"
#define TF_SIM_DEFAULT_VRAM (80ULL << 30)
#define TF_SIM_DEFAULT_SMS 132
#define TF_SIM_DEFAULT_TFLOPS_MILLI 989000ULL /* dense BF16 of an H100 SXM */
#define TF_SIM_DEFAULT_DRIVER_VERSION 13000
#define TF_SIM_DEFAULT_WAVE_NS 5000ULL
#define TF_SIM_DEFAULT_STATE "/dev/shm/tensor-fusion-simgpu-v3.state"
#define TF_SIM_GRANULARITY (2ULL << 20) /* physical allocation granularity */
#define TF_SIM_DEFAULT_PCIE_MBPS 55000ULL   /* PCIe Gen5 x16, pinned, measured (H800) */
#define TF_SIM_DEFAULT_HOST_SLOWDOWN 400ULL /* percent: kernels on host-placed memory, 4x */

typedef struct tf_sim_config {
    int device_count;        /* count / TF_SIM_GPU_COUNT, 0..16, default 1 */
    char name[TF_SIM_NAME_LEN]; /* name / TF_SIM_GPU_NAME, always ends in " (simulated)" */
    uint64_t vram;           /* vram / TF_SIM_GPU_VRAM, bytes, default 80 GiB */
    uint32_t sm_count;       /* sm_count / TF_SIM_GPU_SMS, default 132 */
    uint64_t tflops_milli;   /* tflops / TF_SIM_GPU_TFLOPS (whole TFLOPS), rated speed */
    uint32_t speed_percent;  /* speed / TF_SIM_GPU_SPEED: scales kernel durations, 100 = model */
    uint64_t wave_ns;        /* wave_ns / TF_SIM_WAVE_NS: duration of one full wave */
    int driver_version;      /* driver_version / TF_SIM_DRIVER_VERSION, default 13000 */
    uint64_t pcie_mbps;      /* pcie_mbps / TF_SIM_PCIE_MBPS: host<->device copies, MB/s */
    uint32_t host_slowdown;  /* host_slowdown / TF_SIM_HOST_SLOWDOWN: percent, >= 100 */
    uint64_t host_mem;       /* host_mem / TF_SIM_HOST_MEM: host-located VMM bytes per process */
    char state_path[512];    /* TF_SIM_STATE, default /dev/shm/tensor-fusion-simgpu-v3.state */
} tf_sim_config;

/* Parsed on first use (thread-safe); bad values print one stderr line and use defaults. */
const tf_sim_config *tf_sim_config_get(void);

#endif /* TF_SIM_CONFIG_H */
