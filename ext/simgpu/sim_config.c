/* Configuration parsing for the simulated GPU: once, never exits, defaults on bad input. */
#include "sim_config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tf_sim_config config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

typedef struct setting {
    const char *key; /* in the config file */
    const char *env;
    uint64_t lo, hi;
} setting;

enum { S_COUNT, S_VRAM, S_SMS, S_TFLOPS, S_SPEED, S_WAVE, S_DRIVER, S_PCIE, S_SLOW, S_HOST_MEM, S_NAME, S_COUNT_ALL };
static const setting settings[S_COUNT_ALL] = {
    [S_COUNT] = {"count", "TF_SIM_GPU_COUNT", 0, TF_SIM_MAX_DEVICES},
    [S_VRAM] = {"vram", "TF_SIM_GPU_VRAM", 1ULL << 20, 1ULL << 50},
    [S_SMS] = {"sm_count", "TF_SIM_GPU_SMS", 1, 100000},
    [S_TFLOPS] = {"tflops", "TF_SIM_GPU_TFLOPS", 0, 1000000},
    [S_SPEED] = {"speed", "TF_SIM_GPU_SPEED", 1, 100000000},
    [S_WAVE] = {"wave_ns", "TF_SIM_WAVE_NS", 0, 1000000000},
    [S_DRIVER] = {"driver_version", "TF_SIM_DRIVER_VERSION", 2000, 99990},
    [S_PCIE] = {"pcie_mbps", "TF_SIM_PCIE_MBPS", 1, 100000000},
    [S_SLOW] = {"host_slowdown", "TF_SIM_HOST_SLOWDOWN", 100, 100000},
    [S_HOST_MEM] = {"host_mem", "TF_SIM_HOST_MEM", 0, 1ULL << 60},
    [S_NAME] = {"name", "TF_SIM_GPU_NAME", 0, 0},
};

/* Parses text as an integer in the setting's range; otherwise reports and keeps *value. */
static void apply(int which, const char *text, const char *where, uint64_t *value) {
    const setting *s = &settings[which];
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < s->lo || v > s->hi) {
        fprintf(stderr,
                "tensor-fusion simgpu: ignoring %s=\"%s\" from %s (want an integer in [%" PRIu64
                ", %" PRIu64 "]); using %" PRIu64 "\n",
                where == NULL ? s->env : s->key, text, where == NULL ? "the environment" : where,
                s->lo, s->hi, *value);
        return;
    }
    *value = v;
}

static void set_name(const char *text) {
    size_t room = sizeof config.name - sizeof TF_SIM_SUFFIX;
    snprintf(config.name, room + 1, "%s", text);
    size_t len = strlen(config.name), suffix = strlen(TF_SIM_SUFFIX);
    if (len < suffix || strcmp(config.name + len - suffix, TF_SIM_SUFFIX) != 0)
        strcat(config.name, TF_SIM_SUFFIX); /* the name always says what it is */
}

static void load_file(const char *path, uint64_t *values) {
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "tensor-fusion simgpu: cannot read TF_SIM_CONFIG=%s (%s); using defaults\n",
                path, strerror(errno));
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line, *eq, *end;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\0') continue;
        eq = strchr(p, '=');
        end = p + strcspn(p, "\r\n");
        *end = '\0';
        if (eq == NULL) {
            fprintf(stderr, "tensor-fusion simgpu: %s: ignoring line \"%s\" (want key = value)\n", path, p);
            continue;
        }
        char *key_end = eq;
        while (key_end > p && (key_end[-1] == ' ' || key_end[-1] == '\t')) key_end--;
        *key_end = '\0';
        char *value = eq + 1;
        while (*value == ' ' || *value == '\t') value++;
        while (end > value && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
        int known = 0;
        for (int i = 0; i < S_COUNT_ALL; i++) {
            if (strcmp(p, settings[i].key) != 0) continue;
            known = 1;
            if (i == S_NAME)
                set_name(value);
            else
                apply(i, value, path, &values[i]);
        }
        if (!known)
            fprintf(stderr, "tensor-fusion simgpu: %s: ignoring unknown key \"%s\"\n", path, p);
    }
    fclose(f);
}

static void load_config(void) {
    uint64_t values[S_COUNT_ALL] = {
        [S_COUNT] = 1, [S_VRAM] = TF_SIM_DEFAULT_VRAM, [S_SMS] = TF_SIM_DEFAULT_SMS,
        [S_TFLOPS] = TF_SIM_DEFAULT_TFLOPS_MILLI / 1000, [S_SPEED] = 100,
        [S_WAVE] = TF_SIM_DEFAULT_WAVE_NS, [S_DRIVER] = TF_SIM_DEFAULT_DRIVER_VERSION,
        [S_PCIE] = TF_SIM_DEFAULT_PCIE_MBPS, [S_SLOW] = TF_SIM_DEFAULT_HOST_SLOWDOWN, [S_HOST_MEM] = 1ULL << 60,
    };
    set_name(TF_SIM_DEFAULT_NAME);
    const char *file = getenv("TF_SIM_CONFIG");
    if (file != NULL && *file != '\0') load_file(file, values);
    for (int i = 0; i < S_COUNT_ALL; i++) {
        const char *text = getenv(settings[i].env);
        if (text == NULL || *text == '\0') continue;
        if (i == S_NAME)
            set_name(text);
        else
            apply(i, text, NULL, &values[i]);
    }
    config.device_count = (int)values[S_COUNT];
    config.vram = values[S_VRAM];
    config.sm_count = (uint32_t)values[S_SMS];
    config.tflops_milli = values[S_TFLOPS] * 1000;
    config.speed_percent = (uint32_t)values[S_SPEED];
    config.wave_ns = values[S_WAVE];
    config.driver_version = (int)values[S_DRIVER];
    config.pcie_mbps = values[S_PCIE];
    config.host_slowdown = (uint32_t)values[S_SLOW];
    config.host_mem = values[S_HOST_MEM];
    const char *state = getenv("TF_SIM_STATE");
    snprintf(config.state_path, sizeof config.state_path, "%s",
             state != NULL && *state != '\0' ? state : TF_SIM_DEFAULT_STATE);
}

const tf_sim_config *tf_sim_config_get(void) {
    pthread_once(&config_once, load_config);
    return &config;
}
