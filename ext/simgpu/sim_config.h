/*
 * sim_config.h - configuration and device model of the SIMULATED GPU, shared by the
 * simulated libcuda.so.1 and libnvidia-ml.so.1.  Read once from the environment.
 */
#ifndef TF_SIM_CONFIG_H
#define TF_SIM_CONFIG_H

#include <stdint.h>

#define TF_SIM_API __attribute__((visibility("default")))
#define TF_SIM_MAX_DEVICES 16
#define TF_SIM_DEVICE_NAME "NVIDIA H100 80GB HBM3 (simulated)"
#define TF_SIM_DEFAULT_VRAM (80ULL << 30)
#define TF_SIM_DEFAULT_DRIVER_VERSION 13000

typedef struct tf_sim_device {
    unsigned char uuid[16];
    char uuid_text[48]; /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" as NVML prints it */
    uint64_t vram_bytes;
} tf_sim_device;

typedef struct tf_sim_config {
    int device_count;   /* TF_SIM_GPU_COUNT, 0..16, default 1 */
    uint64_t vram;      /* TF_SIM_GPU_VRAM in bytes, default 80 GiB */
    int driver_version; /* TF_SIM_DRIVER_VERSION, default 13000 */
    tf_sim_device devices[TF_SIM_MAX_DEVICES];
} tf_sim_config;

/* Parsed on first use (thread-safe); bad values print one stderr line and use defaults. */
const tf_sim_config *tf_sim_config_get(void);

#endif /* TF_SIM_CONFIG_H */
