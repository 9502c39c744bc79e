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
#include <stdio.h>
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
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void *self_base; /* load address of this library, to refuse our own functions */

typedef struct tf_hook_entry {
    const char *symbol;
    void *hook;
    void *real; /* atomic: first real pointer seen wins */
} tf_hook_entry;

static tf_hook_entry hooks[TF_HOOK_COUNT] = {
#define TF_HOOK(base, symbol, ret, params, args) {#symbol, (void *)&symbol, NULL},
#include "tf/hooks.def"
#undef TF_HOOK
};

TF_EARLY static uint64_t parse_limit(const char *name) {
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "tensor-fusion shim: ignoring %s=\"%s\" (want bytes as an integer)\n",
                name, text);
        return 0;
    }
    return value;
}

TF_EARLY static void init(void) {
    /* Never call dlsym here: it would re-enter this once-block. */
    real_dlsym = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (real_dlsym == NULL) real_dlsym = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    Dl_info info;
    if (dladdr((void *)&init, &info) != 0) self_base = info.dli_fbase;
    config.vram_limit = parse_limit("TF_VRAM_LIMIT");
}

TF_EARLY const tf_shim_config *tf_shim_config_get(void) {
    pthread_once(&init_once, init);
    return &config;
}

TF_EARLY static int is_own(void *p) {
    Dl_info info;
    return p != NULL && dladdr(p, &info) != 0 && info.dli_fbase == self_base;
}

TF_EARLY static void remember_real(int idx, void *real) {
    void *expected = NULL;
    if (real == NULL || is_own(real)) return; /* never route a hook to itself */
    __atomic_compare_exchange_n(&hooks[idx].real, &expected, real, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}

TF_EARLY static int hook_index(const char *symbol) {
    if (symbol == NULL || symbol[0] != 'c' || symbol[1] != 'u') return -1;
    for (int i = 0; i < TF_HOOK_COUNT; i++)
        if (strcmp(hooks[i].symbol, symbol) == 0) return i;
    return -1;
}

void *tf_real(int idx) {
    void *real = __atomic_load_n(&hooks[idx].real, __ATOMIC_ACQUIRE);
    if (real == NULL) {
        /* Called directly (program linked against libcuda): the driver is next in line. */
        tf_shim_config_get();
        if (real_dlsym != NULL) remember_real(idx, real_dlsym(RTLD_NEXT, hooks[idx].symbol));
        real = __atomic_load_n(&hooks[idx].real, __ATOMIC_ACQUIRE);
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
    if (__atomic_load_n(&hooks[idx].real, __ATOMIC_ACQUIRE) == *pfn) *pfn = hooks[idx].hook;
}

/* Our answer for a hooked name, or NULL to let the real dlsym answer. */
TF_EARLY static void *dlsym_hook(void *handle, const char *name) {
    int idx = hook_index(name);
    if (idx < 0) return NULL;
    void *real = real_dlsym(handle, name);
    if (real == NULL) return NULL;
    if (is_own(real)) real = real_dlsym(RTLD_NEXT, name); /* found our export first */
    remember_real(idx, real);
    return __atomic_load_n(&hooks[idx].real, __ATOMIC_ACQUIRE) != NULL ? hooks[idx].hook : NULL;
}

/*
 * glibc's dlsym resolves RTLD_NEXT relative to its caller's return address, so the
 * pass-through must be a tail call (the real dlsym then sees our caller's address).  The
 * optimize attribute keeps it a tail call in -O0 debug builds too; a test checks it.
 */
TF_EXPORT TF_EARLY __attribute__((optimize("O2", "optimize-sibling-calls"))) void *
dlsym(void *handle, const char *name) {
    tf_shim_config_get();
    if (real_dlsym == NULL) return NULL; /* no libdl to forward to: cannot happen on glibc */
    void *hook = dlsym_hook(handle, name);
    if (hook != NULL) return hook;
    return real_dlsym(handle, name);
}
