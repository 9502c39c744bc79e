/* shim.h - internals of libtfshim.so shared by its translation units. */
#ifndef TF_SHIM_H
#define TF_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "tf/cuda_abi.h"
#include "tf/nvml_abi.h"
#include "tf/shm_layout.h"

#define TF_EXPORT __attribute__((visibility("default")))

enum { TF_LOG_ERROR = 0, TF_LOG_WARN = 1, TF_LOG_INFO = 2, TF_LOG_DEBUG = 3 };

/* Configuration, read once at init from the environment. */
typedef struct tf_shim_config {
    int log_level;   /* TF_LOG_LEVEL: error, warn (default), info, debug */
    int fail_closed; /* TF_SHIM_FAIL=closed: without a usable region, allocations fail */
    char shm_path[512]; /* TF_SHM_PATH; empty = not a tensor-fusion worker */
    char tier_dir[512]; /* TF_TIER_DIR: where frozen memory goes to disk; empty = no disk tier */
} tf_shim_config;

/* Runs init once (thread-safe) and returns the configuration. */
const tf_shim_config *tf_shim_config_get(void);

/* One line on stderr, prefixed, when level is enabled.  Never on a hot path at the default. */
void tf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One index per hooks.def row. */
enum {
#define TF_HOOK(base, symbol, ret, params, args) TF_HOOK_IDX_##symbol,
#include "tf/hooks.def"
#undef TF_HOOK
    TF_HOOK_COUNT
};

/* Typed pointers to the real functions, and the hook prototypes. */
#define TF_HOOK(base, symbol, ret, params, args)                                          \
    typedef ret(*tf_pfn_##symbol) params;                                                \
    TF_EXPORT ret symbol params;
#include "tf/hooks.def"
#undef TF_HOOK

/* One routing slot per hooks.def row. */
typedef struct tf_hook_entry {
    const char *symbol;
    void *hook;
    void *real; /* atomic: first real pointer seen wins */
} tf_hook_entry;
extern tf_hook_entry tf_hooks[TF_HOOK_COUNT];

/* The real function behind hook idx, or NULL when no driver is loaded (slow path). */
void *tf_real(int idx);

/* The hot path: one load, and the slow path only until the real pointer is known. */
static inline void *tf_real_fast(int idx) {
    void *real = __atomic_load_n(&tf_hooks[idx].real, __ATOMIC_ACQUIRE);
    return real != NULL ? real : tf_real(idx);
}
#define TF_REAL(symbol) ((tf_pfn_##symbol)tf_real_fast(TF_HOOK_IDX_##symbol))

/* A driver function the hooks need but do not replace (cuCtxGetDevice...), resolved through
 * the real cuGetProcAddress once; NULL when unavailable. */
void *tf_driver_helper(const char *name);
/* The real nvmlDeviceGetUUID, captured when NVML's memory functions were looked up. */
void *tf_nvml_uuid_fn(void);
void *tf_nvml_index_fn(void); /* and nvmlDeviceGetIndex */

/* Replaces *pfn (returned by the real cuGetProcAddress for symbol) with the hook when the
 * driver returned exactly the variant a hook is written for. */
void tf_route(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);

/* ---- VRAM accounting (region.c) ---- */

/* Kinds of tracked allocations: keys of different kinds never match each other. */
enum { TF_ALLOC_PTR = 1, TF_ALLOC_VMM, TF_ALLOC_ARRAY, TF_ALLOC_MIPMAP, TF_GRAPH_COST, TF_BLOCK_SHAPE, TF_CTX_LIMIT, TF_GRAPH_MEMORY, TF_ALLOC_IPC };

/* Whether a region governs this process (loaded on first use).  0: pass everything through. */
int tf_region_active(void);

/* Region device index of a CUDA ordinal (-1: not granted to this worker). */
int tf_region_device(CUdevice ordinal);
/* Region device index of the current context's device; -1 with *ok = 0 when no context, and
 * with *ok = -1 (logged once) when the driver's cuCtxGetDevice cannot be resolved. */
int tf_region_current_device(int *ok);
/* Region device index of an NVML device handle (-1 when not granted or unknown). */
int tf_region_nvml_device(nvmlDevice_t device);

/* The allocation-hook decision before calling the driver:
 *   TF_ADMIT_PASS  no region governs: call the driver, track nothing
 *   TF_ADMIT_OK    bytes are reserved on *dev: call the driver, then commit or undo
 *   TF_ADMIT_DENY  out of the worker's VRAM (or fail-closed): return OUT_OF_MEMORY */
enum { TF_ADMIT_PASS = 0, TF_ADMIT_OK = 1, TF_ADMIT_DENY = 2 };
int tf_admit(int dev, uint64_t bytes);
void tf_admit_undo(int dev, uint64_t bytes);
/* Records a successful allocation so its free returns exactly its bytes. */
void tf_track(int kind, uint64_t key, uint64_t bytes, int dev);
/* Takes the record of key (0 if untracked).  A free that then fails puts it back (tf_track). */
int tf_untrack(int kind, uint64_t key, uint64_t *bytes, int *dev);
/* The same with an extra word kept beside the record (the pool an allocation came from). */
void tf_track_aux(int kind, uint64_t key, uint64_t bytes, int dev, uint64_t aux);
int tf_untrack_aux(int kind, uint64_t key, uint64_t *bytes, int *dev, uint64_t *aux);
/* Returns bytes of a completed free to the worker and this process. */
void tf_release(int dev, uint64_t bytes);

/* Finds a record without taking it (graph launch costs). */
int tf_lookup(int kind, uint64_t key, uint64_t *bytes);

/* Memory reporting: limit (0 = none) and worker usage of a region device. */
uint64_t tf_region_limit(int dev);
uint64_t tf_region_used(int dev);

/* ---- memory shared inside the worker (shared.c, region.c; tf/shm_shared.h) ---- */
/* The aux word of a tracked allocation whose charge lives in shared entry (aux & 0xFFFF). */
#define TF_SHARED_MARK (1ULL << 63)
/* After the driver exported the allocation at ptr (a handle of n identity bytes): its charge
 * moves into the worker's shared table, so imports by other processes of the worker join it. */
void tf_shared_export(uint64_t ptr, const void *ident, size_t n);
/* After an import of `size` bytes on dev: the shared entry it joined (>= 0, the aux to track
 * with TF_SHARED_MARK), or -1 when the worker does not hold it (charge the import). */
int tf_shared_import(const void *ident, size_t n, int dev, uint64_t size);
/* A tracked allocation whose aux is not 0 was freed: its pool's book, or its shared entry. */
void tf_freed_aux(uint64_t aux, int dev, uint64_t bytes);
/* In a forked child: a lock a parent's thread held at the fork would never be released there. */
void tf_vmm_after_fork(void);
void tf_pools_after_fork(void);
void tf_shared_after_fork(void);
int tf_region_share_publish(int dev, uint64_t id, uint64_t bytes, uint64_t *key);
int tf_region_share_join(int dev, uint64_t id, uint64_t size, uint64_t *key);
void tf_region_share_leave(int entry);
void tf_region_charge(int dev, uint64_t bytes);

/* ---- VMM lifetimes (vmm.c): charged from cuMemCreate until released and unmapped ---- */
void tf_vmm_created(uint64_t handle, uint64_t bytes, int dev);
void tf_vmm_mapped(uint64_t ptr, uint64_t size, uint64_t handle);
void tf_vmm_unmapped(uint64_t ptr, uint64_t size);
int tf_vmm_release_mark(uint64_t handle);
void tf_vmm_release_done(uint64_t handle, int succeeded);
int tf_vmm_imported(uint64_t handle, int dev);
uint64_t tf_vmm_growth(uint64_t handle, uint64_t extent, int *dev);
void tf_vmm_grown(uint64_t handle, uint64_t need);

/* ---- stream-ordered pools (pools.c): what a pool keeps after frees stays charged ---- */
uint64_t tf_pool_take(CUmemoryPool pool, int dev, uint64_t size);
void tf_pool_untake(CUmemoryPool pool, uint64_t bytes);
void tf_pool_freed(CUmemoryPool pool, int dev, uint64_t bytes);
void tf_pool_set_threshold(CUmemoryPool pool, uint64_t threshold);
void tf_pool_trim(CUmemoryPool pool, uint64_t keep);
void tf_pool_destroyed(CUmemoryPool pool);
/* The pool cuMemAllocAsync draws from on the current context's device (NULL: unknown). */
CUmemoryPool tf_pool_current(void);

/* This process's slot in the state file (NULL when it has none). */
tf_shm_proc *tf_region_self(void);

/* ---- VRAM tiering (tier.c) ---- */

#define TF_TIER_MIN_BYTES (2ULL << 20) /* smaller cuMemAlloc requests stay plain (pinned) */
/* Whether the worker's limits enable tiering (read once at region load). */
extern int tf_tier_flag;
/* Set once this process has movable memory: launches and copies pass the gate. */
extern int tf_tier_on;
/* The gate: waits for (or runs) a resume when the process is frozen; then counts the call in
 * flight until tf_tier_leave.  Non-zero: the memory could not come back (the call fails).
 * Out of line: the first call of a thread, a frozen process, the counter fallback. */
int tf_tier_enter(void);
void tf_tier_leave(void);
/* Atomic: some memory is off the device (set by a freeze, cleared by a resume). */
extern int tf_tier_frozen;
/* This thread's in-flight flag (NULL: none yet, or the shared counter is used instead). */
extern __thread int *tf_tier_my_flag __attribute__((tls_model("initial-exec")));

/* The gate's hot path, inline in the gated hooks: 1 when this thread's flag is now up and
 * nothing is frozen (the caller calls the driver, then tf_tier_flag_down); 0: take the slow
 * path (tf_tier_enter/tf_tier_leave).  One TLS load, one store, one load, and no fence: a
 * freeze sets tf_tier_frozen and then runs membarrier(PRIVATE_EXPEDITED), a full barrier on
 * every running thread, so each thread either sees the freeze or has its flag seen
 * (asymmetric Dekker; tier.c). */
static inline int tf_tier_flag_up(void) {
    int *flag = tf_tier_my_flag;
    if (__builtin_expect(flag == NULL, 0)) return 0; /* first gated call of this thread, or the counter */
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the compiler keeps the store before the load */
    if (__builtin_expect(!__atomic_load_n(&tf_tier_frozen, __ATOMIC_RELAXED), 1)) return 1;
    __atomic_store_n(flag, 0, __ATOMIC_RELEASE);
    return 0;
}

/* After a call that tf_tier_flag_up let through (the flag was set, so it is not NULL). */
static inline void tf_tier_flag_down(void) { __atomic_store_n(tf_tier_my_flag, 0, __ATOMIC_RELEASE); }

/* cuMemAlloc_v2 of movable memory, first from the cache of freed allocations: an entry that
 * fits (at most 1/8 larger) is handed out without a VMM call and without a new charge (the
 * entry's charge is settled to `bytes`; *dev: where it is charged).  CUDA_ERROR_NOT_FOUND:
 * none fits, or the difference does not fit the limit; the caller admits and allocates. */
CUresult tf_tier_reuse(CUdeviceptr *dptr, uint64_t bytes, int *dev);
/* A new VMM allocation (cuMemAlloc_v2, cuMemAllocPitch_v2); the caller has charged `bytes` on dev. */
CUresult tf_tier_alloc(CUdeviceptr *dptr, uint64_t bytes, int dev);
/* cuMemFree_v2 of movable memory, whose charge (bytes on dev) the caller took back:
 * *handled is TF_TIER_NOT_OURS (the caller calls the driver), TF_TIER_FREED (the caller
 * returns the charge) or TF_TIER_CACHED (the cache keeps the memory and its charge). */
enum { TF_TIER_NOT_OURS = 0, TF_TIER_FREED = 1, TF_TIER_CACHED = 2 };
CUresult tf_tier_free(CUdeviceptr ptr, uint64_t charged, int dev, int *handled);
/* Releases the cache to the driver (and its charge to the worker): 1 when it held anything.
 * Called when an allocation is refused (the limit, or the device is full), then retried. */
int tf_tier_cache_flush(void);
/* Charge the cache holds on region device dev (cuMemGetInfo counts it as free). */
uint64_t tf_tier_cached(int dev);
/* Whether ptr lies in movable memory (the driver refuses legacy IPC handles of it). */
int tf_tier_is_movable(CUdeviceptr ptr);

/* ---- the cold tier's file (tier_disk.c): O_DIRECT where the filesystem allows ---- */

#define TF_DISK_ALIGN 4096ULL /* O_DIRECT alignment of offsets, lengths and buffers */
/* Opens the unnamed tier file in TF_TIER_DIR once; 0 when there is none or it cannot be made. */
int tf_disk_open(void);
/* Bytes of file a move of `bytes` takes (whole aligned blocks). */
uint64_t tf_disk_span(uint64_t bytes);
/* Two bounce buffers and a stream for the moves of one request (NULL: no memory). */
typedef struct tf_tier_xfer tf_tier_xfer;
tf_tier_xfer *tf_xfer_begin(void);
void tf_xfer_end(tf_tier_xfer *x);
/* size bytes at va to the file at off, then fdatasync; 0 on any failure (disk full...). */
int tf_disk_write(tf_tier_xfer *x, CUdeviceptr va, uint64_t size, uint64_t off);
/* The file at off back into size bytes mapped at va; 0 on failure. */
int tf_disk_read(tf_tier_xfer *x, CUdeviceptr va, uint64_t size, uint64_t off);
void tf_disk_truncate(uint64_t length);
void tf_disk_forget(void); /* in a forked child */

/* ---- compute admission (compute.c; the bucket itself is tf/compute.h) ---- */

enum { TF_LAUNCH_PASS = 0, TF_LAUNCH_ONE_DEVICE = 1, TF_LAUNCH_MANY_DEVICES = 2 };
extern const tf_shm_limits *tf_compute_limits;
extern tf_shm_state *tf_compute_state;
extern int tf_launch_mode;
extern int *const tf_region_loaded_flag;


/* Whether a launch may have to be admitted: loads only, inline in every launch hook, so a
 * process without a rate pays a few loads and a tail call.  Unsure (region not loaded yet,
 * several devices) counts as yes; tf_launch_admit decides. */
static inline int tf_launch_maybe_limited(void) {
    if (__builtin_expect(!__atomic_load_n(tf_region_loaded_flag, __ATOMIC_ACQUIRE), 0)) return 1;
    int launch_mode = __atomic_load_n(&tf_launch_mode, __ATOMIC_RELAXED);
    if (launch_mode != TF_LAUNCH_ONE_DEVICE) return launch_mode != TF_LAUNCH_PASS;
    return __atomic_load_n(&tf_compute_limits->devices[0].compute_rate, __ATOMIC_RELAXED) != 0;
}

/* Admission of one launch of `cost` (out of line, compute.c): when the launch's device has a
 * rate, ONE atomic fetch-add takes the cost and returns the ticket; a ticket within the
 * tokens granted runs at once, others wait (bounded sleeps on the bucket's futex). */
void tf_launch_admit(uint64_t cost);

/* ---- stream capture (capture.c): captured allocations and launches run with their graph ---- */

/* Captures begun by this process and not seen ending (atomic). */
extern int tf_capture_count;
/* Whether stream captures (asks the driver; NULL is the per-thread stream for _ptsz hooks).
 * Call only when tf_capture_count is non-zero: it costs a driver call. */
int tf_stream_capturing(CUstream stream, int per_thread);
static inline int tf_stream_maybe_capturing(CUstream stream, int per_thread) {
    return __builtin_expect(__atomic_load_n(&tf_capture_count, __ATOMIC_RELAXED) != 0, 0) &&
           tf_stream_capturing(stream, per_thread);
}
/* Bookkeeping of the begin and end hooks. */
void tf_capture_begun(CUresult rc);
void tf_capture_ended(int was_capturing, CUstream stream, int per_thread);

/* Cost of a graph executable (sum of its kernel nodes), recorded at instantiation. */
uint64_t tf_graph_cost(CUgraphExec exec);
/* TF_ADMIT_DENY: its memory nodes do not fit; the caller destroys exec and fails. */
int tf_graph_instantiated(CUgraphExec exec, CUgraph graph);
void tf_graph_destroyed(CUgraphExec exec);

#endif /* TF_SHIM_H */
