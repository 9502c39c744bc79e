/*
 * driver_procs.h - cuGetProcAddress variant selection, shared by the simulated driver and
 * the shim so both resolve (symbol, cudaVersion, flags) the same way.  The table itself is
 * driver_procs.inc, generated from the toolkit's cudaTypedefs.h.
 */
#ifndef TF_DRIVER_PROCS_H
#define TF_DRIVER_PROCS_H

#include "tf/cuda_abi.h"

typedef struct tf_proc_variant {
    const char *base;   /* name callers pass to cuGetProcAddress, e.g. "cuMemAlloc" */
    const char *symbol; /* exported variant, e.g. "cuMemAlloc_v2" */
    int version;        /* CUDA version that introduced it, 1000*major + 10*minor */
    int per_thread;     /* 1 for _ptsz/_ptds forms */
} tf_proc_variant;

/* The CUDA version of the headers the table was generated from. */
int tf_proc_table_version(void);

/*
 * The variant cuGetProcAddress(base, cudaVersion, flags) resolves to, or NULL with *status
 * SYMBOL_NOT_FOUND (unknown base) or VERSION_NOT_SUFFICIENT (all variants newer).
 * Per-thread flag: the newest variant at or below cudaVersion, preferring its _ptsz/_ptds
 * form when one exists; otherwise only non-per-thread variants are considered.
 */
const tf_proc_variant *tf_proc_select(const char *base, int cuda_version, cuuint64_t flags,
                                      CUdriverProcAddressQueryResult *status);

/* Table row for an exported variant name, or NULL. */
const tf_proc_variant *tf_proc_by_symbol(const char *symbol);

#endif /* TF_DRIVER_PROCS_H */
