/* The simulated machine's shared state: creation, process slots, memory and busy time. */
#define _GNU_SOURCE
#include "sim_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static tf_sim_state *state;
static int state_fd = -1;
static int self_slot = -1;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

uint64_t tf_sim_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void describe(tf_sim_state *s) {
    const tf_sim_config *c = tf_sim_config_get();
    s->magic = 0;
    s->version = TF_SIM_STATE_VERSION;
    s->size = sizeof *s;
    s->device_count = (uint32_t)c->device_count;
    s->driver_version = c->driver_version;
    for (int i = 0; i < TF_SIM_MAX_DEVICES; i++) {
        tf_sim_device *d = &s->devices[i];
        /* Fixed, recognisable UUIDs: 5153494d = "SIM" marker, last byte = ordinal. */
        const unsigned char uuid[16] = {0x51, 0x53, 0x49, 0x4d, 0x00, 0x00, 0x40, 0x00,
                                        0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, (unsigned char)i};
        memcpy(d->uuid, uuid, sizeof uuid);
        snprintf(d->uuid_text, sizeof d->uuid_text,
                 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", uuid[0],
                 uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7], uuid[8], uuid[9],
                 uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
        snprintf(d->name, sizeof d->name, "%s", c->name);
        d->vram_bytes = c->vram;
        d->tflops_milli = c->tflops_milli;
        d->sm_count = c->sm_count;
        d->speed_percent = c->speed_percent;
        d->wave_ns = c->wave_ns;
    }
}

static int valid(const tf_sim_state *s, size_t size) {
    return size == sizeof *s && __atomic_load_n(&s->magic, __ATOMIC_ACQUIRE) == TF_SIM_STATE_MAGIC &&
           s->version == TF_SIM_STATE_VERSION && s->size == sizeof *s &&
           s->device_count <= TF_SIM_MAX_DEVICES;
}

/* Opens the shared file, creating it when absent; -1 with a reason on failure. */
static int open_shared(const char *path, const char **why) {
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) return fd;
        if (errno != ENOENT) break;
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) break;
        (void)fchmod(fd, 0666); /* every user on the machine shares the devices */
        tf_sim_state *s = MAP_FAILED;
        if (ftruncate(fd, sizeof *s) == 0)
            s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s != MAP_FAILED) {
            describe(s);
            __atomic_store_n(&s->magic, TF_SIM_STATE_MAGIC, __ATOMIC_RELEASE); /* last */
            munmap(s, sizeof *s);
        }
        int linked = s != MAP_FAILED && link(tmp, path) == 0;
        unlink(tmp);
        if (linked) return fd;
        close(fd); /* lost the race (EEXIST): open the winner's file */
        if (errno != EEXIST) break;
    }
    *why = strerror(errno);
    return -1;
}

static void load_state(void) {
    const tf_sim_config *c = tf_sim_config_get();
    const char *why = "not a simulator state file of this version";
    int fd = open_shared(c->state_path, &why);
    if (fd >= 0) {
        struct stat st;
        void *p = MAP_FAILED;
        if (fstat(fd, &st) == 0 && (size_t)st.st_size == sizeof(tf_sim_state))
            p = mmap(NULL, sizeof(tf_sim_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED && valid(p, (size_t)st.st_size)) {
            state = p;
            state_fd = fd;
            return;
        }
        if (p != MAP_FAILED) munmap(p, sizeof(tf_sim_state));
        close(fd);
    }
    fprintf(stderr, "tensor-fusion simgpu: cannot share state file %s (%s); this process "
            "simulates its own private GPUs\n", c->state_path, why);
    state = mmap(NULL, sizeof(tf_sim_state), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    describe(state);
    state->magic = TF_SIM_STATE_MAGIC;
}

tf_sim_state *tf_sim_state_get(void) {
    pthread_once(&state_once, load_state);
    return state;
}

static off_t slot_offset(int slot) {
    return (off_t)(offsetof(tf_sim_state, procs) + (size_t)slot * sizeof(tf_sim_proc));
}

static int slot_lock(int slot, int type) {
    struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET, .l_start = slot_offset(slot), .l_len = 1};
    return fcntl(state_fd, F_OFD_SETLK, &fl) == 0; /* never waits */
}

static void reclaim(tf_sim_proc *p) {
    for (int d = 0; d < TF_SIM_MAX_DEVICES; d++) __atomic_store_n(&p->used[d], 0, __ATOMIC_RELEASE);
    __atomic_store_n(&p->pid, 0, __ATOMIC_RELEASE);
}

int tf_sim_sweep(void) {
    tf_sim_state *s = tf_sim_state_get();
    if (state_fd < 0) return 0;
    int count = 0;
    uint32_t high = __atomic_load_n(&s->high_water, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < high && i < TF_SIM_MAX_PROCS; i++) {
        if ((int)i == self_slot || __atomic_load_n(&s->procs[i].pid, __ATOMIC_ACQUIRE) == 0) continue;
        if (!slot_lock((int)i, F_WRLCK)) continue; /* owner alive */
        if (__atomic_load_n(&s->procs[i].pid, __ATOMIC_ACQUIRE) != 0) {
            reclaim(&s->procs[i]);
            count++;
        }
        slot_lock((int)i, F_UNLCK);
    }
    return count;
}

static void release_self(void) {
    if (self_slot >= 0 && state != NULL) {
        reclaim(&state->procs[self_slot]); /* the process's memory dies with it */
        slot_lock(self_slot, F_UNLCK);
    }
}

static void forget_after_fork(void) {
    /* The child shares the parent's open file description, hence its lock: take our own. */
    if (state_fd >= 0) {
        int fd = open(tf_sim_config_get()->state_path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            dup3(fd, state_fd, O_CLOEXEC);
            close(fd);
        }
    }
    self_slot = -1;
    slot_once = (pthread_once_t)PTHREAD_ONCE_INIT;
}

static void claim_slot(void) {
    tf_sim_state *s = tf_sim_state_get();
    if (state_fd < 0) {
        self_slot = 0; /* private state: slot 0 is ours */
        s->high_water = 1;
        s->procs[0].pid = (int32_t)getpid();
        return;
    }
    for (int i = 0; i < TF_SIM_MAX_PROCS; i++) {
        if (!slot_lock(i, F_WRLCK)) continue;
        if (__atomic_load_n(&s->procs[i].pid, __ATOMIC_ACQUIRE) != 0) reclaim(&s->procs[i]);
        __atomic_store_n(&s->procs[i].pid, (int32_t)getpid(), __ATOMIC_RELEASE);
        uint32_t high = __atomic_load_n(&s->high_water, __ATOMIC_ACQUIRE);
        while (high < (uint32_t)i + 1 &&
               !__atomic_compare_exchange_n(&s->high_water, &high, (uint32_t)i + 1, 1, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
        }
        self_slot = i;
        static int registered;
        if (!registered) {
            registered = 1;
            atexit(release_self);
            pthread_atfork(NULL, NULL, forget_after_fork);
        }
        return;
    }
    fprintf(stderr, "tensor-fusion simgpu: all %d simulated process slots are live; this "
            "process's memory is not visible to others\n", TF_SIM_MAX_PROCS);
}

int tf_sim_self_slot(void) {
    pthread_once(&slot_once, claim_slot);
    return self_slot;
}

uint64_t tf_sim_used(int device) {
    tf_sim_state *s = tf_sim_state_get();
    uint64_t total = 0;
    uint32_t high = __atomic_load_n(&s->high_water, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < high && i < TF_SIM_MAX_PROCS; i++)
        total += __atomic_load_n(&s->procs[i].used[device], __ATOMIC_ACQUIRE);
    return total;
}

uint64_t tf_sim_round(uint64_t bytes) {
    if (bytes > UINT64_MAX - TF_SIM_GRANULARITY) return UINT64_MAX;
    return (bytes + TF_SIM_GRANULARITY - 1) / TF_SIM_GRANULARITY * TF_SIM_GRANULARITY;
}

static uint64_t private_used[TF_SIM_MAX_DEVICES]; /* when this process has no slot */

static uint64_t *own_counter(int device) {
    int slot = tf_sim_self_slot();
    return slot >= 0 ? &tf_sim_state_get()->procs[slot].used[device] : &private_used[device];
}

int tf_sim_charge(int device, uint64_t bytes) {
    tf_sim_state *s = tf_sim_state_get();
    uint64_t charged = tf_sim_round(bytes), vram = s->devices[device].vram_bytes;
    if (charged > vram) return 0;
    uint64_t *mine = own_counter(device);
    __atomic_add_fetch(mine, charged, __ATOMIC_ACQ_REL);
    /* Add, then check the machine-wide sum: racing processes may both fail near the top,
     * never both succeed past it.  Dead processes' memory is reclaimed before giving up. */
    if (tf_sim_used(device) + (mine == &private_used[device] ? *mine : 0) <= vram) return 1;
    if (tf_sim_sweep() > 0 && tf_sim_used(device) <= vram) return 1;
    __atomic_sub_fetch(mine, charged, __ATOMIC_ACQ_REL);
    return 0;
}

void tf_sim_uncharge(int device, uint64_t bytes) {
    uint64_t *mine = own_counter(device), charged = tf_sim_round(bytes);
    uint64_t old = __atomic_load_n(mine, __ATOMIC_ACQUIRE);
    while (!__atomic_compare_exchange_n(mine, &old, old > charged ? old - charged : 0, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
    }
}

static void bucket_add(tf_sim_bucket *b, uint64_t epoch, uint64_t ns) {
    uint64_t old = __atomic_load_n(b, __ATOMIC_ACQUIRE), tag = epoch & 0xffffffffULL, next;
    do {
        uint64_t have = old >> 32;
        if (have == tag)
            next = old + ns;
        else if ((uint32_t)(tag - have) < 0x80000000u) /* ours is newer: start the bucket */
            next = (tag << 32) | ns;
        else
            return; /* a newer epoch already owns it: our sample is too old to matter */
    } while (!__atomic_compare_exchange_n(b, &old, next, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

void tf_sim_account_busy(int device, uint64_t start_ns, uint64_t end_ns) {
    tf_sim_state *s = tf_sim_state_get();
    int slot = tf_sim_self_slot();
    uint64_t first = start_ns / TF_SIM_BUCKET_NS;
    for (uint64_t e = first; e * TF_SIM_BUCKET_NS < end_ns && e < first + TF_SIM_BOOKED_BUCKETS; e++) {
        uint64_t lo = e * TF_SIM_BUCKET_NS > start_ns ? e * TF_SIM_BUCKET_NS : start_ns;
        uint64_t hi = (e + 1) * TF_SIM_BUCKET_NS < end_ns ? (e + 1) * TF_SIM_BUCKET_NS : end_ns;
        bucket_add(&s->devices[device].util[e % TF_SIM_BUCKETS], e, hi - lo);
        if (slot >= 0) bucket_add(&s->procs[slot].util[device][e % TF_SIM_PROC_BUCKETS], e, hi - lo);
    }
}

uint64_t tf_sim_bucket_busy(int device, int proc, uint64_t epoch) {
    tf_sim_state *s = tf_sim_state_get();
    const tf_sim_bucket *b = proc < 0 ? &s->devices[device].util[epoch % TF_SIM_BUCKETS]
                                      : &s->procs[proc].util[device][epoch % TF_SIM_PROC_BUCKETS];
    uint64_t v = __atomic_load_n(b, __ATOMIC_ACQUIRE);
    return (v >> 32) == (epoch & 0xffffffffULL) ? (v & 0xffffffffULL) : 0;
}
