/*
 * shm_layout.h - THE shared-memory region contract between the hypervisor (Python, via
 * tfcore.ipc) and the shim inside workload processes (C).  One region per worker.
 *
 * Versioning rules
 *   - TF_SHM_VERSION_MAJOR changes when an existing field moves, changes size or meaning,
 *     or a structure changes size.  Readers reject any other major version.
 *   - TF_SHM_VERSION_MINOR changes when a field is carved out of reserved bytes with zero
 *     meaning "absent".  Readers accept any minor and ignore fields they do not know.
 *   - total_size in the header is the region size the writer used; a reader requires the
 *     file to be exactly that long and at least TF_SHM_REGION_SIZE of its own major.
 *
 * Concurrency rules (learned from the field): no locks and no sem_t in the region, so a
 * SIGKILL at any instruction cannot wedge other processes.  Fields marked "atomic" are only
 * read and written with the __atomic builtins below; everything else is written once by the
 * creator before the region is published (created under a temporary name, then renamed).
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
#define TF_SHM_VERSION_MAJOR 1
#define TF_SHM_VERSION_MINOR 0
#define TF_SHM_MAX_DEVICES 16
#define TF_SHM_MAX_PROCS 64
#define TF_SHM_UUID_LEN 48 /* "GPU-" + 36-char UUID + NUL fits with room to spare */

/* F(type, name, array_suffix): the suffix is empty for scalars. */
#define TF_SHM_HEADER_FIELDS(F)                                                            \
    F(uint32_t, magic, )            /* TF_SHM_MAGIC */                                     \
    F(uint16_t, version_major, )                                                           \
    F(uint16_t, version_minor, )                                                           \
    F(uint64_t, total_size, )       /* bytes, whole region */                              \
    F(uint32_t, device_count, )     /* used entries of devices[] */                        \
    F(uint32_t, max_devices, )      /* TF_SHM_MAX_DEVICES of the writer */                 \
    F(uint32_t, max_procs, )        /* TF_SHM_MAX_PROCS of the writer */                   \
    F(uint32_t, reserved0, )                                                               \
    F(uint64_t, generation, )       /* atomic: bumped when limits change */                \
    F(uint8_t, reserved1, [24])

#define TF_SHM_DEVICE_FIELDS(F)                                                            \
    F(char, uuid, [TF_SHM_UUID_LEN]) /* NUL-terminated, e.g. "GPU-8f2c..." */              \
    F(uint64_t, vram_limit_bytes, )                                                        \
    F(uint64_t, vram_used_bytes, )   /* atomic: sum over the worker's processes */          \
    F(uint64_t, tflops_request_milli, ) /* TFLOPS x 1000; 0 = none */                      \
    F(uint64_t, tflops_limit_milli, )                                                      \
    F(uint8_t, reserved, [48])

#define TF_SHM_PROC_FIELDS(F)                                                              \
    F(int32_t, pid, )                /* atomic: 0 = free slot, claimed by CAS */           \
    F(uint32_t, reserved0, )                                                               \
    F(uint64_t, heartbeat_ns, )      /* atomic: CLOCK_MONOTONIC of the last beat */        \
    F(uint64_t, used_bytes, [TF_SHM_MAX_DEVICES]) /* atomic each: per device */            \
    F(uint8_t, reserved1, [48])

#define TF_SHM_DECLARE_FIELD(type, name, suffix) type name suffix;

typedef struct tf_shm_header { TF_SHM_HEADER_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_header;
typedef struct tf_shm_device { TF_SHM_DEVICE_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_device;
typedef struct tf_shm_proc { TF_SHM_PROC_FIELDS(TF_SHM_DECLARE_FIELD) } tf_shm_proc;

typedef struct tf_shm_region {
    tf_shm_header header;
    tf_shm_device devices[TF_SHM_MAX_DEVICES];
    tf_shm_proc procs[TF_SHM_MAX_PROCS];
} tf_shm_region;

#define TF_SHM_REGION_SIZE sizeof(tf_shm_region)

_Static_assert(sizeof(tf_shm_header) == 64, "header is one cache line");
_Static_assert(sizeof(tf_shm_device) == 128, "device block is two cache lines");
_Static_assert(sizeof(tf_shm_proc) == 192, "process slot is three cache lines");
_Static_assert(offsetof(tf_shm_header, total_size) == 8, "header layout");
_Static_assert(offsetof(tf_shm_header, generation) == 32, "header layout");
_Static_assert(offsetof(tf_shm_device, vram_limit_bytes) == 48, "device layout");
_Static_assert(offsetof(tf_shm_device, tflops_limit_milli) == 72, "device layout");
_Static_assert(offsetof(tf_shm_proc, heartbeat_ns) == 8, "proc layout");
_Static_assert(offsetof(tf_shm_proc, used_bytes) == 16, "proc layout");
_Static_assert(offsetof(tf_shm_region, devices) == 64, "region layout");
_Static_assert(offsetof(tf_shm_region, procs) == 64 + 128 * TF_SHM_MAX_DEVICES, "region layout");
_Static_assert(sizeof(tf_shm_region) == 64 + 128 * TF_SHM_MAX_DEVICES + 192 * TF_SHM_MAX_PROCS,
               "region has no hidden padding");
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
#define TF_SHM_DEVICE_INFO(type, name, suffix) TF_SHM_FIELD_INFO(tf_shm_device, type, name, suffix)
#define TF_SHM_PROC_INFO(type, name, suffix) TF_SHM_FIELD_INFO(tf_shm_proc, type, name, suffix)

static const tf_shm_field_info tf_shm_fields[] = {
    TF_SHM_HEADER_FIELDS(TF_SHM_HEADER_INFO)
    TF_SHM_DEVICE_FIELDS(TF_SHM_DEVICE_INFO)
    TF_SHM_PROC_FIELDS(TF_SHM_PROC_INFO)
};
#define TF_SHM_FIELD_COUNT (sizeof(tf_shm_fields) / sizeof(tf_shm_fields[0]))

/* Validation, shared by the Python binding and the shim so both reject the same files. */
typedef enum tf_shm_status {
    TF_SHM_OK = 0,
    TF_SHM_TOO_SMALL,
    TF_SHM_BAD_MAGIC,
    TF_SHM_BAD_MAJOR,
    TF_SHM_SIZE_MISMATCH,
    TF_SHM_BAD_COUNTS
} tf_shm_status;

static inline const char *tf_shm_status_text(tf_shm_status s) {
    switch (s) {
    case TF_SHM_OK: return "ok";
    case TF_SHM_TOO_SMALL: return "file is smaller than a region header";
    case TF_SHM_BAD_MAGIC: return "bad magic (not a tensor-fusion region)";
    case TF_SHM_BAD_MAJOR: return "unsupported major version";
    case TF_SHM_SIZE_MISMATCH: return "file size does not match the header's total_size";
    case TF_SHM_BAD_COUNTS: return "device or process counts out of range";
    }
    return "unknown status";
}

/* Checks a region of file_size bytes mapped at base (base may be NULL if file_size is 0). */
static inline tf_shm_status tf_shm_validate(const void *base, uint64_t file_size) {
    tf_shm_header h;
    if (file_size < sizeof(tf_shm_header)) return TF_SHM_TOO_SMALL;
    memcpy(&h, base, sizeof h);
    if (h.magic != TF_SHM_MAGIC) return TF_SHM_BAD_MAGIC;
    if (h.version_major != TF_SHM_VERSION_MAJOR) return TF_SHM_BAD_MAJOR;
    if (h.total_size != file_size || file_size < TF_SHM_REGION_SIZE) return TF_SHM_SIZE_MISMATCH;
    if (h.device_count > TF_SHM_MAX_DEVICES || h.max_devices != TF_SHM_MAX_DEVICES ||
        h.max_procs != TF_SHM_MAX_PROCS)
        return TF_SHM_BAD_COUNTS;
    return TF_SHM_OK;
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

/* Claims a free process slot for pid; returns its index or -1 when all are taken. */
static inline int tf_shm_claim_slot(tf_shm_region *r, int32_t pid) {
    for (int i = 0; i < TF_SHM_MAX_PROCS; i++) {
        int32_t expected = 0;
        if (__atomic_compare_exchange_n(&r->procs[i].pid, &expected, pid, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return i;
    }
    return -1;
}

/* Frees a slot if pid still owns it: returns 1 when released, 0 otherwise. */
static inline int tf_shm_release_slot(tf_shm_region *r, int slot, int32_t pid) {
    if (slot < 0 || slot >= TF_SHM_MAX_PROCS) return 0;
    tf_shm_proc *p = &r->procs[slot];
    int32_t expected = pid;
    if (tf_shm_load_i32(&p->pid) != pid) return 0;
    for (int d = 0; d < TF_SHM_MAX_DEVICES; d++) tf_shm_store_u64(&p->used_bytes[d], 0);
    tf_shm_store_u64(&p->heartbeat_ns, 0);
    return __atomic_compare_exchange_n(&p->pid, &expected, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

#endif /* TF_SHM_LAYOUT_H */
