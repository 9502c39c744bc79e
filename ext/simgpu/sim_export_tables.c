/*
 * The private driver tables the CUDA runtime (libcudart 12.x/13.x, static or shared, and the
 * copy cuda-bindings embeds) fetches with cuGetExportTable before its first API call.  Slot
 * layouts and the integrity-check hash are public facts from ZLUDA's reverse engineering
 * (github.com/vosen/ZLUDA: dark_api/src/lib.rs, zluda/src/impl/driver.rs); this is our own
 * code (docs/native.md lists each fact and its source).  Unknown UUIDs keep answering
 * CUDA_ERROR_NOT_SUPPORTED, as the driver does for tables it does not have.
 *
 * The tables live at fixed addresses for the life of the process: the runtime hashes the
 * addresses of two of them into the integrity check and verifies the result.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_cuda.h"

#define SLOT_SIZE(n) ((void *)(uintptr_t)((n) * sizeof(void *)))

/* ---- tracing (TF_SIM_TRACE=1: one stderr line per table and entry point asked for) ---- */

static int trace_state; /* atomic: 0 unknown, 1 off, 2 on */

int tf_sim_trace(void) {
    int s = __atomic_load_n(&trace_state, __ATOMIC_ACQUIRE);
    if (s == 0) {
        const char *v = getenv("TF_SIM_TRACE");
        s = v != NULL && v[0] != '\0' && strcmp(v, "0") != 0 ? 2 : 1;
        __atomic_store_n(&trace_state, s, __ATOMIC_RELEASE);
    }
    return s == 2;
}

static void format_uuid(const CUuuid *id, char out[37]) {
    const unsigned char *b = (const unsigned char *)id->bytes;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* ---- context-local storage: the runtime keeps its per-context state here ---- */

typedef void (*cls_dtor)(CUcontext ctx, void *key, void *value);

typedef struct cls_entry {
    CUcontext ctx;
    void *key;
    void *value;
    cls_dtor dtor;
} cls_entry;

static pthread_mutex_t cls_lock = PTHREAD_MUTEX_INITIALIZER; /* process-local only */
static cls_entry *cls;
static size_t cls_count, cls_capacity;

/* NULL means the calling thread's current context. */
static CUresult cls_context(CUcontext *ctx) {
    if (*ctx != NULL) return CUDA_SUCCESS;
    CUresult rc;
    *ctx = tf_current(&rc);
    return rc;
}

static CUresult cls_put(CUcontext ctx, void *key, void *value, cls_dtor dtor) {
    CUresult rc = cls_context(&ctx);
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&cls_lock);
    for (size_t i = 0; i < cls_count; i++)
        if (cls[i].ctx == ctx && cls[i].key == key) {
            cls[i].value = value;
            cls[i].dtor = dtor;
            pthread_mutex_unlock(&cls_lock);
            return CUDA_SUCCESS;
        }
    if (cls_count == cls_capacity) {
        size_t cap = cls_capacity ? cls_capacity * 2 : 16;
        cls_entry *bigger = realloc(cls, cap * sizeof *bigger);
        if (bigger == NULL) {
            pthread_mutex_unlock(&cls_lock);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        cls = bigger;
        cls_capacity = cap;
    }
    cls[cls_count++] = (cls_entry){ctx, key, value, dtor};
    pthread_mutex_unlock(&cls_lock);
    return CUDA_SUCCESS;
}

static CUresult cls_delete(CUcontext ctx, void *key) {
    CUresult rc = cls_context(&ctx);
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&cls_lock);
    rc = CUDA_ERROR_INVALID_HANDLE;
    for (size_t i = 0; i < cls_count; i++)
        if (cls[i].ctx == ctx && cls[i].key == key) {
            cls[i] = cls[--cls_count];
            rc = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&cls_lock);
    return rc;
}

static CUresult cls_get(void **value, CUcontext ctx, void *key) {
    if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = cls_context(&ctx);
    if (rc != CUDA_SUCCESS) return rc;
    pthread_mutex_lock(&cls_lock);
    rc = CUDA_ERROR_INVALID_HANDLE; /* the runtime reads this as "no state yet" */
    for (size_t i = 0; i < cls_count; i++)
        if (cls[i].ctx == ctx && cls[i].key == key) {
            *value = cls[i].value;
            rc = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&cls_lock);
    return rc;
}

/* Runs (outside the lock: they may call back into the driver) and drops the destructors of
 * a context that is going away. */
void tf_cls_context_gone(CUcontext ctx) {
    for (;;) {
        cls_entry e = {0};
        int found = 0;
        pthread_mutex_lock(&cls_lock);
        for (size_t i = 0; i < cls_count; i++)
            if (cls[i].ctx == ctx) {
                e = cls[i];
                cls[i] = cls[--cls_count];
                found = 1;
                break;
            }
        pthread_mutex_unlock(&cls_lock);
        if (!found) return;
        if (e.dtor != NULL) e.dtor(e.ctx, e.key, e.value);
    }
}

/* ---- runtime interface: the primary context of a device, and module loading ---- */

static CUresult rt_primary_context(CUcontext *pctx, CUdevice dev) {
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    /* The runtime retains it itself afterwards; this only names it. */
    CUcontext c = NULL;
    CUresult rc = cuDevicePrimaryCtxRetain(&c, dev);
    if (rc == CUDA_SUCCESS) {
        cuDevicePrimaryCtxRelease_v2(dev);
        *pctx = c;
    }
    return rc;
}

static CUresult rt_module_from_wrapper(CUmodule *module, const void *wrapper) {
    if (module == NULL || wrapper == NULL) return CUDA_ERROR_INVALID_VALUE;
    return cuModuleLoadData(module, wrapper);
}

static CUresult rt_module_from_wrapper_ext(CUmodule *module, const void *wrapper, void *a3, void *a4,
                                           unsigned int a5) {
    if (a3 != NULL || a4 != NULL || a5 != 0) return CUDA_ERROR_NOT_SUPPORTED;
    return rt_module_from_wrapper(module, wrapper);
}

static CUresult rt_module_from_fatbin_ext(const void *fatbin, CUmodule *module, void *a3, void *a4,
                                          unsigned int a5) {
    return rt_module_from_wrapper_ext(module, fatbin, a3, a4, a5);
}

static void rt_noop(uintptr_t arg) { (void)arg; }
static CUresult rt_load_compilers(void) { return CUDA_SUCCESS; }

/* ---- tools hooks: driver-owned buffers the runtime writes its callback state into ---- */

static uint32_t hooks_buffer1[1024];
static uint32_t hooks_buffer2[14];

static void hooks_get_buffer1(void **ptr, size_t *size) {
    if (ptr != NULL) *ptr = hooks_buffer1;
    if (size != NULL) *size = sizeof hooks_buffer1 / sizeof hooks_buffer1[0];
}

static void hooks_get_buffer2(void **ptr, size_t *size) {
    if (ptr != NULL) *ptr = hooks_buffer2;
    if (size != NULL) *size = sizeof hooks_buffer2 / sizeof hooks_buffer2[0];
}

/* ---- context checks: bits that are never set on a simulated context ---- */

static CUresult ctx_check(CUcontext ctx, uint32_t *result, const void **unused) {
    (void)ctx;
    (void)unused;
    if (result == NULL) return CUDA_ERROR_INVALID_VALUE;
    *result = 0;
    return CUDA_SUCCESS;
}

static uint32_t ctx_check_fn3(void) { return 0; }

/* ---- integrity check: HMAC over MD2 (RFC 1319), 16-byte blocks ---- */

static CUresult integrity_check(uint32_t version, uint64_t unix_seconds, uint64_t result[2]);

static void *const cudart_interface[13] = {
    SLOT_SIZE(13),
    (void *)&rt_module_from_wrapper,
    (void *)&rt_primary_context,
    NULL, NULL, NULL,
    (void *)&rt_module_from_wrapper_ext,
    (void *)&rt_noop,
    (void *)&rt_module_from_fatbin_ext,
    NULL, NULL, NULL,
    (void *)&rt_load_compilers,
};
static void *const tools_hooks[7] = {SLOT_SIZE(7), NULL, (void *)&hooks_get_buffer1, NULL,
                                     NULL,          NULL, (void *)&hooks_get_buffer2};
static void *const tools_tls[4] = {SLOT_SIZE(4), NULL, NULL, NULL};
static void *const context_storage[4] = {(void *)&cls_put, (void *)&cls_delete, (void *)&cls_get, NULL};
static void *const context_checks[4] = {SLOT_SIZE(4), NULL, (void *)&ctx_check, (void *)&ctx_check_fn3};
static void *const integrity[3] = {SLOT_SIZE(3), (void *)&integrity_check, NULL};

static const unsigned char md2_sbox[256] = {
    41,  46,  67,  201, 162, 216, 124, 1,   61,  54,  84,  161, 236, 240, 6,   19,  98,  167, 5,   243, 192, 199,
    115, 140, 152, 147, 43,  217, 188, 76,  130, 202, 30,  155, 87,  60,  253, 212, 224, 22,  103, 66,  111, 24,
    138, 23,  229, 18,  190, 78,  196, 214, 218, 158, 222, 73,  160, 251, 245, 142, 187, 47,  238, 122, 169, 104,
    121, 145, 21,  178, 7,   63,  148, 194, 16,  137, 11,  34,  95,  33,  128, 127, 93,  154, 90,  144, 50,  39,
    53,  62,  204, 231, 191, 247, 151, 3,   255, 25,  48,  179, 72,  165, 181, 209, 215, 94,  146, 42,  172, 86,
    170, 198, 79,  184, 56,  210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4,   241, 69,  157, 112, 89,
    100, 113, 135, 32,  134, 91,  207, 101, 230, 45,  168, 2,   27,  96,  37,  173, 174, 176, 185, 246, 28,  70,
    97,  105, 52,  64,  126, 15,  85,  71,  163, 35,  221, 81,  175, 58,  195, 92,  249, 206, 186, 197, 234, 38,
    44,  83,  13,  110, 133, 40,  132, 9,   211, 223, 205, 244, 65,  129, 77,  82,  106, 220, 55,  200, 108, 193,
    171, 250, 36,  225, 123, 8,   12,  189, 177, 74,  120, 136, 149, 139, 227, 99,  232, 109, 233, 203, 213, 254,
    59,  0,   29,  57,  242, 239, 183, 14,  102, 88,  208, 228, 166, 119, 114, 248, 235, 117, 75,  10,  49,  68,
    80,  180, 143, 237, 31,  26,  219, 153, 141, 51,  159, 17,  131, 20,
};

typedef struct md2 {
    unsigned char x[48], checksum[16], block[16];
    unsigned count;
} md2;

static void md2_compress(md2 *h) {
    for (int i = 0; i < 16; i++) {
        h->x[16 + i] = h->block[i];
        h->x[32 + i] = h->block[i] ^ h->x[i];
    }
    unsigned char t = 0;
    for (int round = 0; round < 18; round++) {
        for (int i = 0; i < 48; i++) t = h->x[i] ^= md2_sbox[t];
        t = (unsigned char)(t + round);
    }
    unsigned char last = h->checksum[15];
    for (int i = 0; i < 16; i++) last = h->checksum[i] ^= md2_sbox[h->block[i] ^ last];
}

static void md2_update(md2 *h, const void *data, size_t n, unsigned char mask) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h->block[h->count++] = p[i] ^ mask;
        if (h->count == 16) {
            md2_compress(h);
            h->count = 0;
        }
    }
}

static void md2_final(md2 *h, unsigned char out[16]) {
    unsigned char pad = (unsigned char)(16 - h->count);
    for (unsigned i = 0; i < pad; i++) md2_update(h, &pad, 1, 0);
    unsigned char checksum[16];
    memcpy(checksum, h->checksum, sizeof checksum);
    md2_update(h, checksum, sizeof checksum, 0);
    memcpy(out, h->x, 16);
}

/* The fixed HMAC key the runtime expects (ZLUDA: the result of a pass that uses no input). */
static const unsigned char integrity_key[16] = {0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7, 0x52,
                                                0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f};

struct integrity_input { /* hashed as laid out in memory (x86-64 / AArch64) */
    uint32_t driver_version, version, pid, thread;
    const void *cudart_table, *integrity_table, *function;
    uint64_t unix_seconds;
};

struct integrity_device {
    unsigned char uuid[16];
    int32_t pci_domain, pci_bus, pci_device;
};

static CUresult integrity_check(uint32_t version, uint64_t unix_seconds, uint64_t result[2]) {
    if (result == NULL) return CUDA_ERROR_INVALID_VALUE;
    switch (version % 10) {
    case 0: result[0] = 0x3341181c03cb675cULL; result[1] = 0x8ed383aa1f4cd1e8ULL; return CUDA_SUCCESS;
    case 1: result[0] = 0x1841181c03cb675cULL; result[1] = 0x8ed383aa1f4cd1e8ULL; return CUDA_SUCCESS;
    default: break;
    }
    int driver_version = 0, count = 0;
    cuDriverGetVersion(&driver_version);
    CUresult rc = cuDeviceGetCount(&count);
    if (rc != CUDA_SUCCESS) return rc;
    struct integrity_input in;
    memset(&in, 0, sizeof in);
    in.driver_version = (uint32_t)driver_version;
    in.version = version;
    in.pid = (uint32_t)getpid();
    in.thread = (uint32_t)(uintptr_t)pthread_self();
    in.cudart_table = cudart_interface;
    in.integrity_table = integrity;
    in.function = integrity[1];
    in.unix_seconds = unix_seconds;
    md2 h;
    memset(&h, 0, sizeof h);
    md2_update(&h, integrity_key, sizeof integrity_key, 0x36);
    md2_update(&h, &in, sizeof in, 0);
    for (int dev = 0; dev < count; dev++) {
        struct integrity_device d;
        memset(&d, 0, sizeof d);
        CUuuid uuid;
        cuDeviceGetUuid_v2(&uuid, dev);
        memcpy(d.uuid, uuid.bytes, sizeof d.uuid);
        cuDeviceGetAttribute(&d.pci_domain, 50, dev); /* PCI_DOMAIN_ID */
        cuDeviceGetAttribute(&d.pci_bus, 33, dev);    /* PCI_BUS_ID */
        cuDeviceGetAttribute(&d.pci_device, 34, dev); /* PCI_DEVICE_ID */
        md2_update(&h, &d, sizeof d, 0);
    }
    unsigned char inner[16], outer[16];
    md2_final(&h, inner);
    memset(&h, 0, sizeof h);
    md2_update(&h, integrity_key, sizeof integrity_key, 0x5c);
    md2_update(&h, inner, sizeof inner, 0);
    md2_final(&h, outer);
    memcpy(result, outer, sizeof outer);
    return CUDA_SUCCESS;
}

/* ---- the table cuda-bindings 13.4's embedded runtime asks for: 95 slots, none seen
 * called; each answers NOT_SUPPORTED so a future caller fails cleanly. ---- */

static CUresult extra_not_supported(void) { return CUDA_ERROR_NOT_SUPPORTED; }
static void *bindings_extra[95];
static pthread_once_t bindings_extra_once = PTHREAD_ONCE_INIT;
static void fill_bindings_extra(void) {
    bindings_extra[0] = SLOT_SIZE(95);
    for (size_t i = 1; i < sizeof bindings_extra / sizeof bindings_extra[0]; i++)
        bindings_extra[i] = (void *)&extra_not_supported;
}

static const struct {
    unsigned char uuid[16];
    const char *name;
    void *const *table;
} tables[] = {
    {{0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9},
     "CUDART_INTERFACE", cudart_interface},
    {{0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74, 0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66},
     "TOOLS_RUNTIME_CALLBACK_HOOKS", tools_hooks},
    {{0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb, 0x47, 0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc},
     "TOOLS_TLS", tools_tls},
    {{0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11, 0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93},
     "CONTEXT_LOCAL_STORAGE", context_storage},
    {{0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43, 0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e},
     "CONTEXT_CHECKS", context_checks},
    {{0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b, 0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2},
     "INTEGRITY_CHECK", integrity},
    {{0x21, 0x31, 0x8c, 0x60, 0x97, 0x14, 0x32, 0x48, 0x8c, 0xa6, 0x41, 0xff, 0x73, 0x24, 0xc8, 0xf2},
     "BINDINGS_EXTRA", bindings_extra},
};

TF_SIM_API CUresult cuGetExportTable(const void **table, const CUuuid *id) {
    if (table == NULL || id == NULL) return CUDA_ERROR_INVALID_VALUE;
    pthread_once(&bindings_extra_once, fill_bindings_extra);
    const char *name = NULL;
    *table = NULL;
    for (size_t i = 0; i < sizeof tables / sizeof tables[0] && name == NULL; i++)
        if (memcmp(tables[i].uuid, id->bytes, 16) == 0) {
            *table = tables[i].table;
            name = tables[i].name;
        }
    if (tf_sim_trace()) {
        char text[37];
        format_uuid(id, text);
        fprintf(stderr, "tf-simgpu: cuGetExportTable %s -> %s\n", text, name != NULL ? name : "NOT_SUPPORTED");
    }
    return name != NULL ? CUDA_SUCCESS : CUDA_ERROR_NOT_SUPPORTED;
}
