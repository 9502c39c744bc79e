/* cuGetProcAddress variant selection over the generated table (see driver_procs.h). */
#include "tf/driver_procs.h"

#include <string.h>

static const tf_proc_variant tf_procs[] = {
#define TF_DRIVER_PROC(base, symbol, version, per_thread) {#base, #symbol, version, per_thread},
#include "tf/driver_procs.inc"
#undef TF_DRIVER_PROC
};
#define TF_PROC_COUNT (sizeof(tf_procs) / sizeof(tf_procs[0]))

int tf_proc_table_version(void) { return TF_DRIVER_PROCS_CUDA_VERSION; }

/* Rows are sorted by base name (the generator sorts them): binary search the first one. */
static size_t first_row(const char *base) {
    size_t lo = 0, hi = TF_PROC_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(tf_procs[mid].base, base) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const tf_proc_variant *tf_proc_select(const char *base, int cuda_version, cuuint64_t flags,
                                      CUdriverProcAddressQueryResult *status) {
    const int per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    const tf_proc_variant *best = NULL;
    int known = 0;
    for (size_t i = base ? first_row(base) : TF_PROC_COUNT;
         i < TF_PROC_COUNT && strcmp(tf_procs[i].base, base) == 0; i++) {
        const tf_proc_variant *v = &tf_procs[i];
        known = 1;
        if (v->version > cuda_version || (v->per_thread && !per_thread)) continue;
        /* Newest version wins; at equal version the per-thread form wins. */
        if (!best || v->version > best->version ||
            (v->version == best->version && v->per_thread > best->per_thread))
            best = v;
    }
    *status = best ? CU_GET_PROC_ADDRESS_SUCCESS
                   : known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                           : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return best;
}

const tf_proc_variant *tf_proc_by_symbol(const char *symbol) {
    for (size_t i = 0; symbol && i < TF_PROC_COUNT; i++)
        if (strcmp(tf_procs[i].symbol, symbol) == 0) return &tf_procs[i];
    return NULL;
}
