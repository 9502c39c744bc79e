/*
 * libtfshim.so core: init, the real dlsym, and routing of driver symbols to hooks.
 *
 * cuda-python (and the CUDA runtime) reach the driver through dlsym(handle,
 * "cuGetProcAddress_v2") and then cuGetProcAddress for everything else, so the shim defines
 * dlsym and hands back its own cuGetProcAddress*, which substitute hooks from hooks.def.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "tf/driver_procs.h"

typedef void *(*dlsym_fn)(void *, const char *);

/* dlsym runs inside sanitizer runtimes' own start-up, before their shadow memory exists:
 * the code on that path must not be instrumented in the asan flavour. */
#define TF_EARLY __attribute__((no_sanitize("address", "undefined")))

static dlsym_fn real_dlsym;
static tf_shim_config config;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;   /* dlsym plumbing: may run inside sanitizer start-up */
static pthread_once_t config_once = PTHREAD_ONCE_INIT; /* settings: only on hooks' paths, never that early */
static void *self_base; /* load address of this library, to refuse our own functions */

tf_hook_entry tf_hooks[TF_HOOK_COUNT] = {
#define TF_HOOK(base, symbol, ret, params, args) {#symbol, (void *)&symbol, NULL},
#include "tf/hooks.def"
#undef TF_HOOK
};

static void *driver_handle; /* atomic: a dlopen handle a hooked cu* name was found through */
static void *nvml_uuid;  /* atomic: the real nvmlDeviceGetUUID */
static void *nvml_index; /* atomic: the real nvmlDeviceGetIndex */

void tf_log(int level, const char *fmt, ...) {
    if (level > config.log_level) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tensor-fusion shim: %s\n", line);
}

static void read_config(void) {
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    const char *level = getenv("TF_LOG_LEVEL");
    config.log_level = TF_LOG_WARN;
    if (level != NULL && *level != '\0') {
        int known = 0;
        for (int i = 0; i < 4; i++)
            if (strcasecmp(level, levels[i]) == 0) config.log_level = i, known = 1;
        if (strcasecmp(level, "warning") == 0) known = 1;
        if (!known) tf_log(TF_LOG_WARN, "ignoring TF_LOG_LEVEL=\"%s\" (want error, warn, info or debug)", level);
    }
    const char *fail = getenv("TF_SHIM_FAIL");
    if (fail != NULL && strcasecmp(fail, "closed") == 0)
        config.fail_closed = 1;
    else if (fail != NULL && *fail != '\0' && strcasecmp(fail, "open") != 0)
        tf_log(TF_LOG_WARN, "ignoring TF_SHIM_FAIL=\"%s\" (want open or closed); failing open", fail);
    const char *path = getenv("TF_SHM_PATH");
    if (path != NULL) snprintf(config.shm_path, sizeof config.shm_path, "%s", path);
    const char *tier_dir = getenv("TF_TIER_DIR");
    if (tier_dir != NULL) snprintf(config.tier_dir, sizeof config.tier_dir, "%s", tier_dir);
}

TF_EARLY static void init(void) {
    /* Never call dlsym here: it would re-enter this once-block. */
    real_dlsym = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (real_dlsym == NULL) real_dlsym = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    Dl_info info;
    if (dladdr((void *)&init, &info) != 0) self_base = info.dli_fbase;
}

TF_EARLY static void early_init(void) { pthread_once(&init_once, init); }

const tf_shim_config *tf_shim_config_get(void) {
    early_init();
    pthread_once(&config_once, read_config);
    return &config;
}

TF_EARLY static int is_own(void *p) {
    Dl_info info;
    return p != NULL && dladdr(p, &info) != 0 && info.dli_fbase == self_base;
}

TF_EARLY static void remember_real(int idx, void *real) {
    void *expected = NULL;
    if (real == NULL || is_own(real)) return; /* never route a hook to itself */
    __atomic_compare_exchange_n(&tf_hooks[idx].real, &expected, real, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}

TF_EARLY static int hook_index(const char *symbol) {
    if (symbol == NULL || !((symbol[0] == 'c' && symbol[1] == 'u') || (symbol[0] == 'n' && symbol[1] == 'v')))
        return -1;
    for (int i = 0; i < TF_HOOK_COUNT; i++)
        if (strcmp(tf_hooks[i].symbol, symbol) == 0) return i;
    return -1;
}

void *tf_real(int idx) {
    void *real = __atomic_load_n(&tf_hooks[idx].real, __ATOMIC_ACQUIRE);
    if (real == NULL) {
        /* Called directly (program linked against libcuda): the driver is next in line. */
        early_init();
        if (real_dlsym != NULL) remember_real(idx, real_dlsym(RTLD_NEXT, tf_hooks[idx].symbol));
        real = __atomic_load_n(&tf_hooks[idx].real, __ATOMIC_ACQUIRE);
        /* A driver dlopened RTLD_LOCAL is not next in line: ask the handle it came through. */
        void *handle = __atomic_load_n(&driver_handle, __ATOMIC_ACQUIRE);
        if (real == NULL && handle != NULL) {
            remember_real(idx, real_dlsym(handle, tf_hooks[idx].symbol));
            real = __atomic_load_n(&tf_hooks[idx].real, __ATOMIC_ACQUIRE);
        }
    }
    return real;
}

void tf_route(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
    if (pfn == NULL || *pfn == NULL || is_own(*pfn)) return;
    /* Preferred proof: the pointer is an exported driver symbol, so we know its variant. */
    Dl_info info;
    const char *returned = NULL;
    if (dladdr(*pfn, &info) != 0 && info.dli_saddr == *pfn) returned = info.dli_sname;
    if (returned == NULL || tf_proc_by_symbol(returned) == NULL) {
        /* Driver hands out unexported pointers: trust the table only within its versions. */
        CUdriverProcAddressQueryResult status;
        const tf_proc_variant *v = tf_proc_select(symbol, cudaVersion, flags, &status);
        if (v == NULL || cudaVersion > tf_proc_table_version()) return;
        returned = v->symbol;
    }
    int idx = hook_index(returned);
    if (idx < 0) return;
    remember_real(idx, *pfn);
    if (__atomic_load_n(&tf_hooks[idx].real, __ATOMIC_ACQUIRE) == *pfn) *pfn = tf_hooks[idx].hook;
}

/* Our answer for a hooked name, or NULL to let the real dlsym answer. */
TF_EARLY static void *dlsym_hook(void *handle, const char *name) {
    int idx = hook_index(name);
    if (idx < 0) return NULL;
    void *real = real_dlsym(handle, name);
    if (real == NULL) return NULL;
    if (is_own(real)) real = real_dlsym(RTLD_NEXT, name); /* found our export first */
    remember_real(idx, real);
    if (name[0] == 'c' && handle != RTLD_NEXT) __atomic_store_n(&driver_handle, handle, __ATOMIC_RELEASE);
    if (name[0] == 'n' && __atomic_load_n(&nvml_uuid, __ATOMIC_ACQUIRE) == NULL) {
        /* NVML memory hooks name devices by UUID: keep the real lookup from the same library. */
        void *uuid = real_dlsym(handle, "nvmlDeviceGetUUID"), *index = real_dlsym(handle, "nvmlDeviceGetIndex");
        if (index != NULL && !is_own(index)) __atomic_store_n(&nvml_index, index, __ATOMIC_RELEASE);
        if (uuid != NULL && !is_own(uuid)) __atomic_store_n(&nvml_uuid, uuid, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&tf_hooks[idx].real, __ATOMIC_ACQUIRE) != NULL ? tf_hooks[idx].hook : NULL;
}

void *tf_nvml_uuid_fn(void) { return __atomic_load_n(&nvml_uuid, __ATOMIC_ACQUIRE); }
void *tf_nvml_index_fn(void) { return __atomic_load_n(&nvml_index, __ATOMIC_ACQUIRE); }

void *tf_driver_helper(const char *name) {
    void *pfn = NULL;
    tf_pfn_cuGetProcAddress_v2 gpa2 = TF_REAL(cuGetProcAddress_v2);
    if (gpa2 != NULL) {
        CUdriverProcAddressQueryResult status;
        if (gpa2(name, &pfn, 12000, 0, &status) == CUDA_SUCCESS && pfn != NULL) return pfn;
    }
    tf_pfn_cuGetProcAddress gpa1 = TF_REAL(cuGetProcAddress);
    if (gpa1 != NULL && gpa1(name, &pfn, 11000, 0) == CUDA_SUCCESS && pfn != NULL) return pfn;
    if (real_dlsym == NULL) return NULL;
    void *found = real_dlsym(RTLD_NEXT, name), *handle = __atomic_load_n(&driver_handle, __ATOMIC_ACQUIRE);
    return found == NULL && handle != NULL ? real_dlsym(handle, name) : found;
}

/*
 * glibc's dlsym resolves RTLD_NEXT relative to its caller's return address, so the
 * pass-through must be a tail call (the real dlsym then sees our caller's address).  The
 * optimize attribute keeps it a tail call in -O0 debug builds too; a test checks it.
 */
TF_EXPORT TF_EARLY __attribute__((optimize("O2", "optimize-sibling-calls"))) void *
dlsym(void *handle, const char *name) {
    early_init();
    if (real_dlsym == NULL) return NULL; /* no libdl to forward to: cannot happen on glibc */
    void *hook = dlsym_hook(handle, name);
    if (hook != NULL) return hook;
    return real_dlsym(handle, name);
}
