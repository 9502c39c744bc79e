/*
 * shm_layout.h - THE shared-memory region contract between the hypervisor (Python, via
 * tfcore.ipc) and the shim inside workload processes (C).  One region per worker.
 *
 * A region is two files, so that file permissions can keep the tenant away from its limits:
 *
 *   PATH.limits  kind LIMITS: header + per-device grants (uuid, VRAM limit, TFLOPS).  Written
 *                by the hypervisor only; the tenant can read it (mode 0644, another uid) and
 *                the shim maps it read-only from an O_RDONLY descriptor.
 *   PATH         kind STATE: header + per-device usage + per-process slots.  Written by every
 *                process of the worker with atomics only.  Writing garbage here can hurt only
 *                the worker itself, never raise its limit.
 *
 * Versioning rules
 *   - TF_SHM_VERSION_MAJOR changes when an existing field moves, changes size or meaning,
 *     or a structure changes size.  Readers reject any other major version.
 *   - TF_SHM_VERSION_MINOR changes when a field is carved out of reserved bytes with zero
 *     meaning "absent".  Readers accept any minor and ignore fields they do not know.
 *   - total_size in the header is the file size the writer used; a reader requires the file
 *     to be exactly that long and at least the size of its own major for that kind.
 *   - Major 2 split v1's single file into the two kinds above.
 *   - Major 4 appended the shared-allocation table to STATE (memory one process exported and
 *     others of the same worker imported, charged once; see tf/shm_shared.h) and carved
 *     shared_high_water out of the header's reserved bytes.
 *   - Minor 3.1 added the compute ceiling (compute_account/_ns/_ceiling/_seen_consumed in
 *     LIMITS): what the hypervisor lets the tenant-writable bucket grant (0 = not policed).
 *   - Minor 1 (2.1) added the compute token bucket: compute_rate/compute_burst in LIMITS and
 *     the bucket counters, stats and futex word in USAGE (zero = unlimited, nothing spent).
 *
 * Concurrency rules (learned from the field): no locks and no sem_t in the region, so a
 * SIGKILL at any instruction cannot wedge other processes.  Fields marked "atomic" are only
 * read and written with the __atomic builtins below; everything else is written once by the
 * creator before the file is published (created under a temporary name, then linked).
 *
 * Process liveness: a process owns its slot by holding an open-file-description (OFD) write
 * lock on the slot's first byte of the STATE file.  Nobody ever waits on these locks (only
 * F_OFD_SETLK, never F_OFD_SETLKW); the kernel drops them when the owner dies, however it
 * dies, so "lock can be taken" means "owner is gone".  This works across PID namespaces and
 * survives PID reuse, which a pid + kill(pid, 0) probe does not.
 *
 * Every field is declared once, in the X-macro lists, which generate both the structs and
 * the offset table (tf_shm_fields) that tests compare with tfcore/ipc/layout.py.
 */
#ifndef TF_SHM_LAYOUT_H
#define TF_SHM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TF_SHM_MAGIC 0x4D485354u /* bytes "TSHM" in little-endian order */
#define TF_SHM_VERSION_MAJOR 4
#define TF_SHM_VERSION_MINOR 0
#define TF_SHM_MAX_DEVICES 16
#define TF_SHM_MAX_PROCS 64
#define TF_SHM_MAX_SHARED 256 /* entries of the shared-allocation table (STATE) */
#define TF_SHM_UUID_LEN 48 /* "GPU-" + 36-char UUID + NUL fits with room to spare */
#define TF_SHM_KIND_LIMITS 1u
#define TF_SHM_KIND_STATE 2u
#define TF_SHM_LIMITS_SUFFIX ".limits"

/* F(type, name, array_suffix): the suffix is empty for scalars. */
#define TF_SHM_HEADER_FIELDS(F)                                                            \
    F(uint32_t, magic, )            /* TF_SHM_MAGIC */                                     \
    F(uint16_t, version_major, )                                                           \
    F(uint16_t, version_minor, )                                                           \
    F(uint64_t, total_size, )       /* bytes, whole file */                                \
    F(uint32_t, device_count, )     /* used entries of the per-device arrays */            \
    F(uint32_t, max_devices, )      /* TF_SHM_MAX_DEVICES of the writer */                 \
    F(uint32_t, max_procs, )        /* TF_SHM_MAX_PROCS of the writer */                   \
    F(uint32_t, kind, )             /* TF_SHM_KIND_LIMITS or TF_SHM_KIND_STATE */          \
    F(uint64_t, generation, )       /* atomic: bumped when limits change (LIMITS) */       \
    F(uint32_t, tier_flags, )       /* LIMITS: TF_TIER_* bits, set by the hypervisor */     \
    F(uint32_t, tier_request, )     /* LIMITS, atomic: TF_TIER_REQ_* the hypervisor asks */ \
    F(uint64_t, tier_request_seq, ) /* LIMITS, atomic: bumped with every request */         \
    F(uint32_t, shared_high_water, ) /* STATE, atomic: 1 + highest shared entry ever used */ \
    F(uint8_t, reserved1, [4])

/* What the worker is granted on one device (LIMITS file). */
#define TF_SHM_LIMIT_FIELDS(F)                                                             \
    F(char, uuid, [TF_SHM_UUID_LEN]) /* NUL-terminated, e.g. "GPU-8f2c..." */              \
    F(uint64_t, vram_limit_bytes, )  /* atomic; 0 = no limit */                            \
    F(uint64_t, tflops_request_milli, ) /* atomic: TFLOPS x 1000; 0 = none */              \
    F(uint64_t, tflops_limit_milli, )   /* atomic */                                       \
    F(uint64_t, compute_rate, )  /* atomic: launch cost units per second; 0 = unlimited */  \
    F(uint64_t, compute_burst, ) /* atomic: bucket depth in cost units; 0 = rate x 10 ms */ \
    F(uint64_t, compute_account, )   /* atomic: most tokens the bucket may have granted by ... */ \
    F(uint64_t, compute_account_ns, ) /* atomic: ... this CLOCK_MONOTONIC time (hypervisor) */ \
    F(uint64_t, compute_ceiling, )   /* atomic: account + a horizon's tokens; 0 = not policed */ \
    F(uint64_t, compute_seen_consumed, ) /* atomic: consumed at the last check (rewind test) */ \
    F(uint8_t, reserved, [8])

/* What the worker uses on one device (STATE file); one cache line each.  The compute token
 * bucket is two cumulative counters: level = compute_granted - compute_consumed (wrapping
 * arithmetic; negative = launches waiting their turn).  See ext/shim/compute.c. */
#define TF_SHM_USAGE_FIELDS(F)                                                             \
    F(uint64_t, unslotted_bytes, )   /* atomic: VRAM of processes that got no slot */       \
    F(uint64_t, compute_consumed, )  /* atomic: launch cost taken (admitted or waiting) */  \
    F(uint64_t, compute_granted, )   /* atomic: tokens refilled so far */                   \
    F(uint64_t, compute_refill_ns, ) /* atomic: CLOCK_MONOTONIC the refill accounted up to */ \
    F(uint64_t, compute_launches, )  /* atomic: launches admitted under a rate */           \
    F(uint64_t, compute_throttled, ) /* atomic: launches that had to wait */                \
    F(uint64_t, compute_waited_ns, ) /* atomic: total time launches waited */              \
    F(uint32_t, compute_futex, )     /* atomic: bumped on rate changes; waiters sleep on it */ \
    F(uint32_t, reserved, )

#define TF_SHM_PROC_FIELDS(F)                                                              \
    F(int32_t, pid, )                /* atomic: 0 = free; written by the lock holder only */ \
    F(uint32_t, reserved0, )                                                               \
    F(uint64_t, heartbeat_ns, )      /* atomic: CLOCK_MONOTONIC at claim (or last beat) */  \
    F(uint64_t, used_bytes, [TF_SHM_MAX_DEVICES]) /* atomic each: per device */            \
    F(uint64_t, tier_host_bytes, )   /* atomic: of used_bytes, held in host memory (warm) */ \
    F(uint64_t, tier_disk_bytes, )   /* atomic: of used_bytes, held on disk (cold) */        \
    F(uint64_t, tier_pinned_bytes, ) /* atomic: exported memory that never moves */          \
    F(uint32_t, tier_freezes, )      /* atomic: freezes done (cumulative) */                 \
    F(uint32_t, tier_resumes, )      /* atomic: resumes done (cumulative) */                 \
    F(uint32_t, tier_ack_seq, )      /* atomic: low 32 bits of the last request handled */   \
    F(uint16_t, tier_where, )        /* atomic: TF_TIER_AT_* | TF_TIER_WATCHING */           \
    F(uint16_t, tier_result, )       /* atomic: TF_TIER_OK or why the last request failed */ \
    F(uint8_t, reserved1, [8])

/* Memory shared between processes of the worker (layout 4.0): an allocation one process
 * exported (cuIpcGetMemHandle, cuMemPoolExportPointer) is charged here, once, for as long as
 * any holder (the exporter until its free, each importer until its close) holds it.  The
 * protocol (lock-free, exact after a SIGKILL of any holder) is in tf/shm_shared.h. */
#define TF_SHM_SHARED_FIELDS(F)                                                            \
    F(uint64_t, key, )       /* atomic: 0 free; identity << 16 | generation; see shm_shared.h */ \
    F(uint64_t, holders, )   /* atomic: bit i = process slot i holds it; 0 = counted nowhere */ \
    F(uint64_t, bytes, )     /* atomic: charged while holders != 0 */                       \
    F(uint32_t, device, )    /* atomic: region device index */                              \
    F(uint32_t, generation, ) /* atomic: bumped by every claim (ABA guard of key) */        \
    F(uint8_t, reserved, [32])

/* VRAM tiering (layout 3.2).  The hypervisor writes the request in the limits file (the
 * tenant cannot), the shim acknowledges in its process slot of the state file. */
#define TF_TIER_ENABLED 1u      /* tier_flags: this worker's cuMemAlloc memory may move */
#define TF_TIER_REQ_NONE 0u
#define TF_TIER_REQ_RESUME 1u   /* bring everything back to the device */
#define TF_TIER_REQ_HOST 2u     /* freeze: device memory to host memory */
#define TF_TIER_REQ_DISK 3u     /* freeze: to host, then to the tier directory */
#define TF_TIER_AT_DEVICE 0u
#define TF_TIER_AT_HOST 1u
#define TF_TIER_AT_DISK 2u
#define TF_TIER_WATCHING 0x100u /* tier_where: this process answers requests (has movable memory) */
#define TF_TIER_OK 0u
#define TF_TIER_ERR_BUSY 1u     /* work did not drain in time */
#define TF_TIER_ERR_HOST 2u     /* host memory ran out: nothing moved past what fit */
#define TF_TIER_ERR_DISK 3u     /* the tier directory refused (full, missing): stayed on host */
#define TF_TIER_ERR_DEVICE 4u   /* no device memory to resume into: stayed where it was */

#define TF_SHM_DECLARE_FIELD(type, name, suffix) type name suffix;

typedef struct tf_shm_header { TF_SHM_HEADER_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_header;
typedef struct tf_shm_limit { TF_SHM_LIMIT_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_limit;
typedef struct tf_shm_usage { TF_SHM_USAGE_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_usage;
typedef struct tf_shm_proc { TF_SHM_PROC_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_proc;
typedef struct tf_shm_shared { TF_SHM_SHARED_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_shared;

typedef struct tf_shm_limits {
    tf_shm_header header;
    tf_shm_limit devices[TF_SHM_MAX_DEVICES];
} tf_shm_limits;

typedef struct tf_shm_state {
    tf_shm_header header;
    tf_shm_usage usage[TF_SHM_MAX_DEVICES];
    tf_shm_proc procs[TF_SHM_MAX_PROCS];
    tf_shm_shared shared[TF_SHM_MAX_SHARED];
} tf_shm_state;

#define TF_SHM_LIMITS_SIZE sizeof(tf_shm_limits)
#define TF_SHM_STATE_SIZE sizeof(tf_shm_state)

_Static_assert(sizeof(tf_shm_header) == 64, "header is one cache line");
_Static_assert(sizeof(tf_shm_limit) == 128, "limit block is two cache lines");
_Static_assert(sizeof(tf_shm_usage) == 64, "usage block is one cache line");
_Static_assert(sizeof(tf_shm_proc) == 192, "process slot is three cache lines");
_Static_assert(sizeof(tf_shm_shared) == 64, "shared entry is one cache line");
_Static_assert(offsetof(tf_shm_header, total_size) == 8, "header layout");
_Static_assert(offsetof(tf_shm_header, kind) == 28, "header layout");
_Static_assert(offsetof(tf_shm_header, generation) == 32, "header layout");
_Static_assert(offsetof(tf_shm_limit, vram_limit_bytes) == 48, "limit layout");
_Static_assert(offsetof(tf_shm_limit, tflops_limit_milli) == 64, "limit layout");
_Static_assert(offsetof(tf_shm_limit, compute_rate) == 72, "limit layout");
_Static_assert(offsetof(tf_shm_usage, compute_futex) == 56, "usage layout");
_Static_assert(offsetof(tf_shm_proc, heartbeat_ns) == 8, "proc layout");
_Static_assert(offsetof(tf_shm_proc, used_bytes) == 16, "proc layout");
_Static_assert(offsetof(tf_shm_proc, tier_host_bytes) == 144, "proc layout");
_Static_assert(offsetof(tf_shm_header, tier_request_seq) == 48, "header layout");
_Static_assert(offsetof(tf_shm_limits, devices) == 64, "limits file layout");
_Static_assert(offsetof(tf_shm_state, usage) == 64, "state file layout");
_Static_assert(offsetof(tf_shm_state, procs) == 64 + 64 * TF_SHM_MAX_DEVICES, "state file layout");
_Static_assert(sizeof(tf_shm_limits) == 64 + 128 * TF_SHM_MAX_DEVICES, "no hidden padding");
_Static_assert(offsetof(tf_shm_state, shared) == 64 + 64 * TF_SHM_MAX_DEVICES + 192 * TF_SHM_MAX_PROCS,
               "state file layout");
_Static_assert(sizeof(tf_shm_state) ==
                   64 + 64 * TF_SHM_MAX_DEVICES + 192 * TF_SHM_MAX_PROCS + 64 * TF_SHM_MAX_SHARED,
               "no hidden padding");
_Static_assert(TF_SHM_MAX_PROCS <= 64, "shared holders are one 64-bit mask");
#if !defined(__GCC_ATOMIC_LLONG_LOCK_FREE) || __GCC_ATOMIC_LLONG_LOCK_FREE != 2
#error "64-bit atomics must be lock-free for a region shared across processes"
#endif

/* Offset table for layout tests: {struct, field, offset, size}. */
typedef struct tf_shm_field_info {
    const char *struct_name;
    const char *field;
    size_t offset;
    size_t size;
} tf_shm_field_info;

#define TF_SHM_FIELD_INFO(st, type, name, suffix) \
    {#st, #name, offsetof(st, name), sizeof(((st *)0)->name)},
#define TF_SHM_HEADER_INFO(type, name, suffix) TF_SHM_FIELD_INFO(tf_shm_header, type, name, suffix)
#define TF_SHM_LIMIT_INFO(type, name, suffix) TF_SHM_FIELD_INFO(tf_shm_limit, type, name, suffix)
#define TF_SHM_USAGE_INFO(type, name, suffix) TF_SHM_FIELD_INFO(tf_shm_usage, type, name, suffix)
#define TF_SHM_PROC_INFO(type, name, suffix) TF_SHM_FIELD_INFO(tf_shm_proc, type, name, suffix)
#define TF_SHM_SHARED_INFO(type, name, suffix) TF_SHM_FIELD_INFO(tf_shm_shared, type, name, suffix)

static const tf_shm_field_info tf_shm_fields[] = {
    TF_SHM_HEADER_FIELDS(TF_SHM_HEADER_INFO)
    TF_SHM_LIMIT_FIELDS(TF_SHM_LIMIT_INFO)
    TF_SHM_USAGE_FIELDS(TF_SHM_USAGE_INFO)
    TF_SHM_PROC_FIELDS(TF_SHM_PROC_INFO)
    TF_SHM_SHARED_FIELDS(TF_SHM_SHARED_INFO)
};
#define TF_SHM_FIELD_COUNT (sizeof(tf_shm_fields) / sizeof(tf_shm_fields[0]))

/* Validation, shared by the Python binding and the shim so both reject the same files. */
typedef enum tf_shm_status {
    TF_SHM_OK = 0,
    TF_SHM_TOO_SMALL,
    TF_SHM_BAD_MAGIC,
    TF_SHM_BAD_MAJOR,
    TF_SHM_BAD_KIND,
    TF_SHM_SIZE_MISMATCH,
    TF_SHM_BAD_COUNTS
} tf_shm_status;

static inline const char *tf_shm_status_text(tf_shm_status s) {
    switch (s) {
    case TF_SHM_OK: return "ok";
    case TF_SHM_TOO_SMALL: return "file is smaller than a region header";
    case TF_SHM_BAD_MAGIC: return "bad magic (not a tensor-fusion region)";
    case TF_SHM_BAD_MAJOR: return "unsupported major version";
    case TF_SHM_BAD_KIND: return "wrong file kind (limits and state files swapped?)";
    case TF_SHM_SIZE_MISMATCH: return "file size does not match the header's total_size";
    case TF_SHM_BAD_COUNTS: return "device or process counts out of range";
    }
    return "unknown status";
}

static inline uint64_t tf_shm_kind_size(uint32_t kind) {
    return kind == TF_SHM_KIND_LIMITS ? TF_SHM_LIMITS_SIZE : TF_SHM_STATE_SIZE;
}

/* Checks a file of file_size bytes mapped at base (base may be NULL if file_size is 0). */
static inline tf_shm_status tf_shm_validate(const void *base, uint64_t file_size, uint32_t kind) {
    tf_shm_header h;
    if (file_size < sizeof(tf_shm_header)) return TF_SHM_TOO_SMALL;
    memcpy(&h, base, sizeof h);
    if (h.magic != TF_SHM_MAGIC) return TF_SHM_BAD_MAGIC;
    if (h.version_major != TF_SHM_VERSION_MAJOR) return TF_SHM_BAD_MAJOR;
    if (h.kind != kind) return TF_SHM_BAD_KIND;
    if (h.total_size != file_size || file_size < tf_shm_kind_size(kind)) return TF_SHM_SIZE_MISMATCH;
    if (h.device_count > TF_SHM_MAX_DEVICES || h.max_devices != TF_SHM_MAX_DEVICES ||
        h.max_procs != TF_SHM_MAX_PROCS)
        return TF_SHM_BAD_COUNTS;
    return TF_SHM_OK;
}

/* Writes a valid header of kind over whatever is there (a file damaged by its tenant), in
 * place: magic cleared first and set last, so no reader sees a half-written header as valid.
 * The generation is kept. */
static inline void tf_shm_rebuild_header(tf_shm_header *h, uint32_t kind, uint32_t device_count) {
    __atomic_store_n(&h->magic, 0, __ATOMIC_RELEASE);
    h->version_major = TF_SHM_VERSION_MAJOR;
    h->version_minor = TF_SHM_VERSION_MINOR;
    h->total_size = tf_shm_kind_size(kind);
    h->device_count = device_count;
    h->max_devices = TF_SHM_MAX_DEVICES;
    h->max_procs = TF_SHM_MAX_PROCS;
    h->kind = kind;
    /* The tenant may have lowered it: count the whole shared table from now on. */
    __atomic_store_n(&h->shared_high_water, kind == TF_SHM_KIND_STATE ? TF_SHM_MAX_SHARED : 0, __ATOMIC_RELEASE);
    memset(h->reserved1, 0, sizeof h->reserved1);
    __atomic_store_n(&h->magic, TF_SHM_MAGIC, __ATOMIC_RELEASE);
}

/* Atomic accessors: the only way mutable fields are touched. */
static inline uint64_t tf_shm_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tf_shm_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int32_t tf_shm_load_i32(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

/* Adds delta (may be negative) and saturates at 0 and UINT64_MAX: a stray double free can
 * never wrap the counter into a huge bogus usage.  Returns the new value. */
static inline uint64_t tf_shm_add_saturating(uint64_t *p, int64_t delta) {
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED), new_value;
    do {
        if (delta < 0) {
            uint64_t d = (uint64_t)(-(delta + 1)) + 1u; /* |delta| without overflow */
            new_value = old > d ? old - d : 0;
        } else {
            new_value = UINT64_MAX - old < (uint64_t)delta ? UINT64_MAX : old + (uint64_t)delta;
        }
    } while (!__atomic_compare_exchange_n(p, &old, new_value, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    return new_value;
}

/* Subtracts bytes, saturating at 0. */
static inline void tf_shm_sub_u64(uint64_t *p, uint64_t bytes) {
    if (bytes != 0) tf_shm_add_saturating(p, bytes > INT64_MAX ? INT64_MIN : -(int64_t)bytes);
}

/* VRAM accounting has one source of truth: what each process slot holds (plus what
 * processes without a slot hold, in unslotted_bytes, and the shared entries someone holds).
 * A device's usage is their sum, so every
 * reservation or release is one atomic on one word and a process killed at any instruction
 * leaves nothing half-counted: the sweep zeroes its slot and the books balance exactly. */

/* Where the caller's bytes are counted: its slot, or the shared unslotted counter. */
static inline uint64_t *tf_shm_vram_counter(tf_shm_state *s, int slot, int dev) {
    return slot >= 0 && slot < TF_SHM_MAX_PROCS ? &s->procs[slot].used_bytes[dev] : &s->usage[dev].unslotted_bytes;
}

/* total plus the held shared entries' bytes on dev.  Out of line, and nothing live across
 * the call: otherwise the compiler spends a register move per slot of the loop below (64
 * instructions an allocation) on a table most workers never use. */
static __attribute__((noinline, unused)) uint64_t tf_shm_add_shared(const tf_shm_state *s, int dev,
                                                                    uint32_t entries, uint64_t total) {
    if (entries > TF_SHM_MAX_SHARED) entries = TF_SHM_MAX_SHARED;
    for (uint32_t i = 0; i < entries; i++) {
        const tf_shm_shared *e = &s->shared[i];
        if (__atomic_load_n(&e->holders, __ATOMIC_SEQ_CST) == 0 ||
            __atomic_load_n(&e->device, __ATOMIC_RELAXED) != (uint32_t)dev)
            continue;
        uint64_t held = __atomic_load_n(&e->bytes, __ATOMIC_RELAXED);
        total = UINT64_MAX - total < held ? UINT64_MAX : total + held;
    }
    return total;
}

/* VRAM used on device dev: the sum over slots (live, or dead and awaiting the sweep), the
 * unslotted counter and the held shared entries (none scanned while the table was never
 * used: one load).  Sequentially consistent loads: see tf_shm_reserve.  Slots are read
 * before entries because an export sets the entry's holders before it takes the bytes out
 * of the exporter's slot: a sum racing with it counts them twice, never not at all. */
static inline uint64_t tf_shm_vram_used(const tf_shm_state *s, int dev) {
    uint64_t total = __atomic_load_n(&s->usage[dev].unslotted_bytes, __ATOMIC_SEQ_CST);
    for (int i = 0; i < TF_SHM_MAX_PROCS; i++) {
        uint64_t held = __atomic_load_n(&s->procs[i].used_bytes[dev], __ATOMIC_SEQ_CST);
        total = UINT64_MAX - total < held ? UINT64_MAX : total + held;
    }
    uint32_t entries = __atomic_load_n(&s->header.shared_high_water, __ATOMIC_SEQ_CST);
    if (__builtin_expect(entries != 0, 0)) total = tf_shm_add_shared(s, dev, entries, total);
    return total;
}

/* VRAM reservation without a lock: add to the caller's own counter, sum, undo when over.
 * Every add precedes its sum in one sequentially consistent order, so of two racing
 * reservations the later one sees the earlier: both can fail near the limit (conservative),
 * never both succeed past it.  limit 0 = none. */
static inline int tf_shm_reserve(tf_shm_state *s, int slot, int dev, uint64_t bytes, uint64_t limit) {
    uint64_t *mine = tf_shm_vram_counter(s, slot, dev);
    uint64_t now = __atomic_add_fetch(mine, bytes, __ATOMIC_SEQ_CST);
    if (now < bytes || (limit != 0 && tf_shm_vram_used(s, dev) > limit)) {
        tf_shm_sub_u64(mine, bytes);
        return 0;
    }
    return 1;
}

/* Returns bytes the caller reserved (saturating at 0: a stray double free cannot wrap). */
static inline void tf_shm_unreserve(tf_shm_state *s, int slot, int dev, uint64_t bytes) {
    tf_shm_sub_u64(tf_shm_vram_counter(s, slot, dev), bytes);
}

#endif /* TF_SHM_LAYOUT_H */
