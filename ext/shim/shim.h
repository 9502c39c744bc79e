/* shim.h - internals of libtfshim.so shared by its translation units. */
#ifndef TF_SHIM_H
#define TF_SHIM_H

#include <stdint.h>

#include "tf/cuda_abi.h"

#define TF_EXPORT __attribute__((visibility("default")))

/* Configuration, read once at init from the environment. */
typedef struct tf_shim_config {
    uint64_t vram_limit; /* TF_VRAM_LIMIT in bytes; 0 = no limit */
} tf_shim_config;

/* Runs init once (thread-safe) and returns the configuration. */
const tf_shim_config *tf_shim_config_get(void);

/* One index per hooks.def row. */
enum {
#define TF_HOOK(base, symbol, ret, params, args) TF_HOOK_IDX_##symbol,
#include "tf/hooks.def"
#undef TF_HOOK
    TF_HOOK_COUNT
};

/* Typed pointers to the real driver functions, and the hook prototypes. */
#define TF_HOOK(base, symbol, ret, params, args)                                          \
    typedef ret(*tf_pfn_##symbol) params;                                                \
    TF_EXPORT ret symbol params;
#include "tf/hooks.def"
#undef TF_HOOK

/* The real driver function behind hook idx, or NULL when no driver is loaded. */
void *tf_real(int idx);
#define TF_REAL(symbol) ((tf_pfn_##symbol)tf_real(TF_HOOK_IDX_##symbol))

/* Replaces *pfn (returned by the real cuGetProcAddress for symbol) with the hook when the
 * driver returned exactly the variant a hook is written for. */
void tf_route(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);

#endif /* TF_SHIM_H */
