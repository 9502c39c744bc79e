/*
 * VRAM accounting of the shim against the worker's region (ext/include/tf/shm_layout.h).
 *
 * Loaded once, on the first hook that needs it.  The limits file is mapped read-only from an
 * O_RDONLY descriptor: the tenant cannot write it (file mode, another uid) and cannot make
 * the mapping writable either (mprotect of a read-only shared file mapping fails).  The
 * state file is mapped read-write; this process owns one slot there, held by an OFD lock.
 *
 * Hot path: admission is an atomic add-then-check on the worker's usage (undone when over the
 * limit), never a lock; each allocation is remembered in a lock-free open-addressing table
 * so that its free, from any thread, returns exactly what it charged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "tf/shm_slots.h"

static pthread_once_t region_once = PTHREAD_ONCE_INIT;
static const tf_shm_limits *limits; /* read-only mapping */
static tf_shm_state *state;
const tf_shm_limits *tf_compute_limits; /* the same mappings, for the launch fast path */
tf_shm_state *tf_compute_state;
int tf_launch_mode; /* TF_LAUNCH_*: set before `loaded` is published */
static int state_fd = -1;
static int self_slot = -1;
static int exited; /* atomic: release_at_exit ran; what is freed after it was already returned */
static void refuse_without_slot(const char *path);
static int mode;   /* TF_ADMIT_PASS (no region) or TF_ADMIT_OK (enforcing) or TF_ADMIT_DENY (closed) */
static int loaded; /* atomic: load_region has finished (skips pthread_once on the hot path) */
int *const tf_region_loaded_flag = &loaded;
static void table_init(void);

/* ---- loading ---- */

static int region_missing; /* the region's file does not exist (as opposed to damaged) */

static void *map_file(const char *path, int writable, uint32_t kind, int *fd_out, const char **why) {
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        region_missing = errno == ENOENT;
        *why = strerror(errno);
        return NULL;
    }
    struct stat st;
    void *p = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= sizeof(tf_shm_header))
        p = mmap(NULL, (size_t)st.st_size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *why = tf_shm_status_text(TF_SHM_TOO_SMALL);
        close(fd);
        return NULL;
    }
    tf_shm_status status = tf_shm_validate(p, (uint64_t)st.st_size, kind);
    if (status != TF_SHM_OK) {
        *why = tf_shm_status_text(status);
        munmap(p, (size_t)st.st_size);
        close(fd);
        return NULL;
    }
    if (fd_out != NULL)
        *fd_out = fd;
    else
        close(fd);
    return p;
}

static void after_fork_child(void) {
    /* The child shares our descriptor, hence our slot lock: give it a slot of its own. */
    if (state_fd < 0) return;
    int fd = open(tf_shim_config_get()->shm_path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup3(fd, state_fd, O_CLOEXEC);
        close(fd);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    self_slot = tf_shm_slot_claim(state, state_fd, (int32_t)getpid(),
                                  (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec, 0);
    tf_shared_after_fork(); /* the parent's holds are the parent's */
    tf_vmm_after_fork();
    tf_pools_after_fork();
    if (self_slot < 0) refuse_without_slot(tf_shim_config_get()->shm_path);
}

/* A process without a slot could hold memory no sweep can give back when it is killed, so it
 * gets none (tf_admit): the worker's 65th live process is refused device memory, with one line. */
static void refuse_without_slot(const char *path) {
    tf_log(TF_LOG_ERROR, "region %s: no free process slot (%d live processes of this worker hold them all): "
           "device allocations in this process fail", path, TF_SHM_MAX_PROCS);
}

/* A destructor, not an atexit handler: it runs after every exit handler (the dynamic linker's
 * finalizers come last), so an allocation in an atexit handler is still counted in the slot
 * and returned here.  What a later finalizer tries to allocate is refused. */
__attribute__((destructor)) static void release_at_exit(void) {
    if (!__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) return;
    /* A process's memory dies with it: hand its share back to the worker now. */
    __atomic_store_n(&exited, 1, __ATOMIC_RELEASE);
    if (self_slot >= 0) tf_shm_slot_release(state, state_fd, self_slot);
    self_slot = -1;
}

static void load_region(void) {
    const tf_shim_config *c = tf_shim_config_get();
    mode = TF_ADMIT_PASS;
    if (c->shm_path[0] == '\0') {
        if (c->fail_closed) {
            mode = TF_ADMIT_DENY;
            tf_log(TF_LOG_ERROR, "TF_SHM_PATH is not set and TF_SHIM_FAIL=closed: device allocations will fail");
        }
        return;
    }
    char limits_path[sizeof c->shm_path + sizeof TF_SHM_LIMITS_SUFFIX];
    snprintf(limits_path, sizeof limits_path, "%s%s", c->shm_path, TF_SHM_LIMITS_SUFFIX);
    const char *why = NULL, *which = limits_path;
    limits = map_file(limits_path, 0, TF_SHM_KIND_LIMITS, NULL, &why);
    if (limits != NULL) {
        which = c->shm_path;
        state = map_file(c->shm_path, 1, TF_SHM_KIND_STATE, &state_fd, &why);
        if (state != NULL && state->header.device_count != limits->header.device_count) {
            why = "limits and state files disagree on the device count";
            state = NULL;
        }
    }
    if (limits == NULL || state == NULL) {
        /* Absent: this may not be a worker after all (TF_SHIM_FAIL decides).  Present but
         * damaged or unreadable: a tenant can write its state file, so that never means
         * unlimited; the hypervisor rebuilds it. */
        int closed = c->fail_closed || !region_missing;
        mode = closed ? TF_ADMIT_DENY : TF_ADMIT_PASS;
        tf_log(TF_LOG_ERROR, "region %s unusable (%s); %s", which, why,
               !region_missing ? "failing closed: device allocations will fail"
               : c->fail_closed ? "TF_SHIM_FAIL=closed: device allocations will fail"
                                : "failing open: VRAM is not limited in this process");
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    self_slot = tf_shm_slot_claim(state, state_fd, (int32_t)getpid(), now, 0);
    if (self_slot < 0) {
        /* Dead processes may hold every slot: sweep once, then try again. */
        tf_shm_sweep(state, state_fd, 0, NULL);
        self_slot = tf_shm_slot_claim(state, state_fd, (int32_t)getpid(), now, 0);
    }
    pthread_atfork(NULL, NULL, after_fork_child);
    mode = TF_ADMIT_OK;
    if (self_slot < 0) refuse_without_slot(c->shm_path);
    tf_log(TF_LOG_INFO, "region %s: %u device(s), slot %d", c->shm_path, limits->header.device_count, self_slot);
}

static void load_once(void) {
    load_region();
    if (mode == TF_ADMIT_OK) {
        table_init();
        tf_compute_limits = limits;
        tf_compute_state = state;
        tf_launch_mode = limits->header.device_count == 1 ? TF_LAUNCH_ONE_DEVICE : TF_LAUNCH_MANY_DEVICES;
        tf_tier_flag = (__atomic_load_n(&limits->header.tier_flags, __ATOMIC_ACQUIRE) & TF_TIER_ENABLED) != 0;
    }
    __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
}

tf_shm_proc *tf_region_self(void) {
    int slot = __atomic_load_n(&self_slot, __ATOMIC_ACQUIRE);
    return state == NULL || slot < 0 ? NULL : &state->procs[slot];
}

int tf_tier_flag; /* TF_TIER_ENABLED in the limits file when the region was loaded */

int tf_region_active(void) {
    if (__builtin_expect(!__atomic_load_n(&loaded, __ATOMIC_ACQUIRE), 0)) pthread_once(&region_once, load_once);
    return mode;
}

/* ---- device mapping: CUDA ordinal / NVML handle -> region device ---- */

#define TF_MAX_ORDINALS 64
static int ordinal_map[TF_MAX_ORDINALS]; /* atomic: 0 unknown, else region index + 2 (1 = none) */

static int match_uuid(const char *uuid_text) {
    for (uint32_t i = 0; i < limits->header.device_count; i++)
        if (strncasecmp(limits->devices[i].uuid, uuid_text, TF_SHM_UUID_LEN) == 0) return (int)i;
    return -1;
}

static void format_uuid(const CUuuid *u, char *out, size_t len) {
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A decimal selector names a device by number: the CUDA ordinal for driver calls, the NVML
 * index for NVML calls (they differ under CUDA_VISIBLE_DEVICES: use UUIDs in production). */
static int match_number(long number) {
    for (uint32_t i = 0; i < limits->header.device_count; i++) {
        const char *sel = limits->devices[i].uuid;
        char *end = NULL;
        long v = strtol(sel, &end, 10);
        if (end != sel && *end == '\0' && v == number) return (int)i;
    }
    return -1;
}

int tf_region_device(CUdevice ordinal) {
    if (ordinal < 0 || ordinal >= TF_MAX_ORDINALS) return -1;
    int cached = __atomic_load_n(&ordinal_map[ordinal], __ATOMIC_ACQUIRE);
    if (cached != 0) return cached - 2;
    /* Region devices name GPUs by UUID (what the hypervisor writes), or by number (a
     * debugging convenience of `tensor-fusion region create --device N`). */
    int found = -1;
    typedef CUresult (*uuid_fn)(CUuuid *, CUdevice);
    uuid_fn get_uuid = (uuid_fn)tf_driver_helper("cuDeviceGetUuid");
    CUuuid u;
    if (get_uuid != NULL && get_uuid(&u, ordinal) == CUDA_SUCCESS) {
        char text[64];
        format_uuid(&u, text, sizeof text);
        found = match_uuid(text);
    }
    if (found < 0) found = match_number(ordinal);
    if (found < 0) tf_log(TF_LOG_WARN, "CUDA device %d is not granted to this worker: its allocations fail", ordinal);
    __atomic_store_n(&ordinal_map[ordinal], found + 2, __ATOMIC_RELEASE);
    return found;
}

int tf_region_current_device(int *ok) {
    typedef CUresult (*ctx_dev_fn)(CUdevice *);
    static ctx_dev_fn get; /* atomic */
    ctx_dev_fn f = __atomic_load_n(&get, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        f = (ctx_dev_fn)tf_driver_helper("cuCtxGetDevice");
        __atomic_store_n(&get, f, __ATOMIC_RELEASE);
    }
    if (f == NULL) {
        /* Not knowing the device must never mean "unlimited": the caller fails closed. */
        static int warned;
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_ACQ_REL))
            tf_log(TF_LOG_ERROR, "cannot resolve the driver's cuCtxGetDevice: device allocations fail");
        *ok = -1;
        return -1;
    }
    CUdevice dev;
    *ok = f(&dev) == CUDA_SUCCESS;
    return *ok ? tf_region_device(dev) : -1;
}

int tf_region_nvml_device(nvmlDevice_t device) {
    typedef nvmlReturn_t (*uuid_fn)(nvmlDevice_t, char *, unsigned int);
    uuid_fn f = (uuid_fn)tf_nvml_uuid_fn();
    typedef nvmlReturn_t (*index_fn)(nvmlDevice_t, unsigned int *);
    index_fn g = (index_fn)tf_nvml_index_fn();
    char text[96];
    unsigned int index;
    int found = f != NULL && f(device, text, sizeof text) == NVML_SUCCESS ? match_uuid(text) : -1;
    if (found < 0 && g != NULL && g(device, &index) == NVML_SUCCESS) found = match_number((long)index);
    return found;
}

/* ---- admission ---- */

uint64_t tf_region_limit(int dev) { return tf_shm_load_u64((uint64_t *)&limits->devices[dev].vram_limit_bytes); }
uint64_t tf_region_used(int dev) { return tf_shm_vram_used(state, dev); }

int tf_admit(int dev, uint64_t bytes) {
    int m = tf_region_active();
    if (m != TF_ADMIT_OK) return m;
    if (dev < 0) return TF_ADMIT_DENY;
    /* Counted in this process's slot only: the sweep returns the share of a process that dies
     * holding memory, and no kill can fall between two counters. */
    if (__atomic_load_n(&exited, __ATOMIC_ACQUIRE) || self_slot < 0) return TF_ADMIT_DENY; /* share returned */
    if (!tf_shm_reserve(state, self_slot, dev, bytes, tf_region_limit(dev))) {
        tf_log(TF_LOG_DEBUG, "denied %llu bytes on region device %d", (unsigned long long)bytes, dev);
        return TF_ADMIT_DENY;
    }
    return TF_ADMIT_OK;
}

void tf_release(int dev, uint64_t bytes) {
    if (!__atomic_load_n(&exited, __ATOMIC_ACQUIRE) && self_slot >= 0) tf_shm_unreserve(state, self_slot, dev, bytes);
}

void tf_admit_undo(int dev, uint64_t bytes) { tf_release(dev, bytes); }

/* ---- memory shared with other processes of the worker (tf/shm_shared.h) ---- */

int tf_region_share_publish(int dev, uint64_t id, uint64_t bytes, uint64_t *key) {
    if (__atomic_load_n(&exited, __ATOMIC_ACQUIRE) || self_slot < 0) return -1;
    return tf_shm_shared_publish(state, self_slot, dev, id, bytes, key);
}

int tf_region_share_join(int dev, uint64_t id, uint64_t size, uint64_t *key) {
    if (__atomic_load_n(&exited, __ATOMIC_ACQUIRE) || self_slot < 0) return -1;
    return tf_shm_shared_join(state, self_slot, dev, id, size, key);
}

void tf_region_share_leave(int entry) {
    if (!__atomic_load_n(&exited, __ATOMIC_ACQUIRE) && self_slot >= 0) tf_shm_shared_leave(state, entry, self_slot);
}

/* Bytes already charged elsewhere (a shared entry) that this process takes back on its own. */
void tf_region_charge(int dev, uint64_t bytes) {
    if (!__atomic_load_n(&exited, __ATOMIC_ACQUIRE) && self_slot >= 0)
        tf_shm_add_saturating(tf_shm_vram_counter(state, self_slot, dev), bytes > INT64_MAX ? INT64_MAX : (int64_t)bytes);
}

/* ---- allocation table: lock-free open addressing, process-local ---- */

#define TF_TABLE_BITS 20
#define TF_TABLE_SIZE (1u << TF_TABLE_BITS)
#define TF_EMPTY 0ULL
#define TF_TOMBSTONE UINT64_MAX
#define TF_MAX_PROBE 4096

typedef struct entry {
    uint64_t key;   /* atomic: TF_EMPTY, TF_TOMBSTONE or a tracked key */
    uint64_t bytes; /* written after the key is claimed, read after it is found */
    uint64_t aux;   /* the stream-ordered pool a pointer came from (0: none) */
    int32_t kind;
    int32_t dev;
} entry;

static entry *table; /* set before `loaded`; MAP_NORESERVE: pages appear as they are touched */

static void table_init(void) {
    void *p = mmap(NULL, sizeof(entry) * TF_TABLE_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    table = p == MAP_FAILED ? NULL : p;
    if (table == NULL) tf_log(TF_LOG_ERROR, "cannot map the allocation table: frees will not return VRAM");
}

static inline uint32_t slot_of(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (uint32_t)key & (TF_TABLE_SIZE - 1);
}

void tf_track(int kind, uint64_t key, uint64_t bytes, int dev) { tf_track_aux(kind, key, bytes, dev, 0); }

void tf_track_aux(int kind, uint64_t key, uint64_t bytes, int dev, uint64_t aux) {
    if (table == NULL || key == TF_EMPTY || key == TF_TOMBSTONE) return; /* stays charged: conservative */
    uint32_t i = slot_of(key);
    for (int n = 0; n < TF_MAX_PROBE; n++, i = (i + 1) & (TF_TABLE_SIZE - 1)) {
        uint64_t k = __atomic_load_n(&table[i].key, __ATOMIC_ACQUIRE);
        if ((k == TF_EMPTY || k == TF_TOMBSTONE) &&
            __atomic_compare_exchange_n(&table[i].key, &k, key, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            table[i].bytes = bytes;
            table[i].aux = aux;
            table[i].kind = kind;
            __atomic_store_n(&table[i].dev, dev, __ATOMIC_RELEASE);
            return;
        }
    }
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_ACQ_REL))
        tf_log(TF_LOG_WARN, "allocation table full: some frees will not return VRAM to the worker");
}

int tf_untrack(int kind, uint64_t key, uint64_t *bytes, int *dev) {
    uint64_t aux;
    return tf_untrack_aux(kind, key, bytes, dev, &aux);
}

int tf_untrack_aux(int kind, uint64_t key, uint64_t *bytes, int *dev, uint64_t *aux) {
    /* Nothing is tracked before the region is loaded (allocations load it first). */
    if (!__atomic_load_n(&loaded, __ATOMIC_ACQUIRE) || table == NULL || key == TF_EMPTY || key == TF_TOMBSTONE) return 0;
    uint32_t i = slot_of(key);
    for (int n = 0; n < TF_MAX_PROBE; n++, i = (i + 1) & (TF_TABLE_SIZE - 1)) {
        uint64_t k = __atomic_load_n(&table[i].key, __ATOMIC_ACQUIRE);
        if (k == TF_EMPTY) return 0;
        if (k != key) continue;
        int d = __atomic_load_n(&table[i].dev, __ATOMIC_ACQUIRE);
        if (table[i].kind != kind) continue;
        uint64_t b = table[i].bytes, a = table[i].aux;
        /* Exactly one of two racing frees of the same key wins the entry. */
        if (!__atomic_compare_exchange_n(&table[i].key, &k, TF_TOMBSTONE, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 0;
        *bytes = b;
        *dev = d;
        *aux = a;
        return 1;
    }
    return 0;
}

int tf_lookup(int kind, uint64_t key, uint64_t *bytes) {
    if (!__atomic_load_n(&loaded, __ATOMIC_ACQUIRE) || table == NULL || key == TF_EMPTY || key == TF_TOMBSTONE) return 0;
    uint32_t i = slot_of(key);
    for (int n = 0; n < TF_MAX_PROBE; n++, i = (i + 1) & (TF_TABLE_SIZE - 1)) {
        uint64_t k = __atomic_load_n(&table[i].key, __ATOMIC_ACQUIRE);
        if (k == TF_EMPTY) return 0;
        if (k != key || table[i].kind != kind) continue;
        *bytes = table[i].bytes;
        return 1;
    }
    return 0;
}
