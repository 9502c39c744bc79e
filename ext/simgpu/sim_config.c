/* Environment parsing for the simulated GPU: once, never exits, defaults on bad input. */
#include "sim_config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static tf_sim_config config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/* Parses env var `name` as an unsigned integer in [lo, hi]; else reports and returns dflt. */
static uint64_t env_u64(const char *name, uint64_t lo, uint64_t hi, uint64_t dflt) {
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') return dflt;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value < lo || value > hi) {
        fprintf(stderr,
                "tensor-fusion simgpu: ignoring %s=\"%s\" (want an integer in [%" PRIu64 ", %" PRIu64
                "]); using %" PRIu64 "\n",
                name, text, lo, hi, dflt);
        return dflt;
    }
    return value;
}

static void load_config(void) {
    config.device_count = (int)env_u64("TF_SIM_GPU_COUNT", 0, TF_SIM_MAX_DEVICES, 1);
    config.vram = env_u64("TF_SIM_GPU_VRAM", 1ULL << 20, 1ULL << 50, TF_SIM_DEFAULT_VRAM);
    config.driver_version =
        (int)env_u64("TF_SIM_DRIVER_VERSION", 2000, 99990, TF_SIM_DEFAULT_DRIVER_VERSION);
    for (int i = 0; i < TF_SIM_MAX_DEVICES; i++) {
        tf_sim_device *d = &config.devices[i];
        /* Fixed, recognisable UUIDs: 5153494d = "SIM" marker, last byte = ordinal. */
        const unsigned char uuid[16] = {0x51, 0x53, 0x49, 0x4d, 0x00, 0x00, 0x40, 0x00,
                                        0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, (unsigned char)i};
        for (int b = 0; b < 16; b++) d->uuid[b] = uuid[b];
        snprintf(d->uuid_text, sizeof d->uuid_text,
                 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", uuid[0],
                 uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7], uuid[8], uuid[9],
                 uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
        d->vram_bytes = config.vram;
    }
}

const tf_sim_config *tf_sim_config_get(void) {
    pthread_once(&config_once, load_config);
    return &config;
}
