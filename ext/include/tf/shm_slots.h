/*
 * shm_slots.h - process slots of a region's STATE file: claim, release and sweep.
 *
 * Liveness is an OFD write lock on the slot's first byte (see shm_layout.h).  Every lock
 * call here is F_OFD_SETLK (try, never wait), so no path can block, and the kernel releases
 * a dead owner's lock whatever killed it.  OFD locks belong to an open file description:
 * two descriptors opened separately conflict even inside one process, so a sweeper must use
 * a descriptor of its own, and it must skip slots that descriptor itself holds.
 */
#ifndef TF_SHM_SLOTS_H
#define TF_SHM_SLOTS_H

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "tf/shm_layout.h"
#include "tf/shm_shared.h"

#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#endif

static inline off_t tf_shm_slot_offset(int slot) {
    return (off_t)(offsetof(tf_shm_state, procs) + (size_t)slot * sizeof(tf_shm_proc));
}

/* One never-waiting OFD lock call on a slot's first byte (type: F_WRLCK or F_UNLCK). */
static inline int tf_shm_slot_setlk(int fd, int slot, short type) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = tf_shm_slot_offset(slot);
    fl.l_len = 1;
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* 1: the lock is ours now (or already was, through this descriptor); 0: someone else holds
 * it; -1: locking failed (errno set). */
static inline int tf_shm_slot_trylock(int fd, int slot) {
    if (tf_shm_slot_setlk(fd, slot, F_WRLCK) == 0) return 1;
    return errno == EAGAIN || errno == EACCES ? 0 : -1;
}

static inline void tf_shm_slot_unlock(int fd, int slot) { (void)tf_shm_slot_setlk(fd, slot, F_UNLCK); }

/* Returns a slot's usage to the worker (zeroing it is the whole return: usage is the sum of
 * the slots, and the shared entries it held lose its bit) and frees it.  The caller holds the
 * slot's lock.
 * Adds what it took per device to reclaimed[] when reclaimed is not NULL. */
static inline void tf_shm_slot_reclaim(tf_shm_state *s, int slot, uint64_t *reclaimed) {
    tf_shm_proc *p = &s->procs[slot];
    for (uint32_t d = 0; d < TF_SHM_MAX_DEVICES; d++) {
        uint64_t bytes = __atomic_exchange_n(&p->used_bytes[d], 0, __ATOMIC_SEQ_CST);
        if (reclaimed != NULL) reclaimed[d] += bytes;
    }
    tf_shm_shared_drop(s, slot, reclaimed);
    tf_shm_store_u64(&p->heartbeat_ns, 0);
    /* Tier books are per process too: a process killed mid-move leaves nothing behind. */
    tf_shm_store_u64(&p->tier_host_bytes, 0);
    tf_shm_store_u64(&p->tier_disk_bytes, 0);
    tf_shm_store_u64(&p->tier_pinned_bytes, 0);
    __atomic_store_n(&p->tier_where, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->tier_result, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->tier_ack_seq, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->tier_freezes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->tier_resumes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->pid, 0, __ATOMIC_RELEASE);
}

/* Claims a free slot for pid and keeps its lock (released when fd closes or the process
 * dies).  Returns the slot, or -1 when every slot is live or locking is unavailable.
 * A slot whose previous owner died without releasing it is reclaimed on the way.  own_mask
 * names the slots fd already holds (bit i = slot i): its own locks never look free to it. */
static inline int tf_shm_slot_claim(tf_shm_state *s, int fd, int32_t pid, uint64_t now_ns, uint64_t own_mask) {
    for (int i = 0; i < TF_SHM_MAX_PROCS; i++) {
        if ((own_mask >> i) & 1u) continue;
        int got = tf_shm_slot_trylock(fd, i);
        if (got < 0) return -1;
        if (got == 0) continue;
        if (tf_shm_load_i32(&s->procs[i].pid) != 0)
            tf_shm_slot_reclaim(s, i, NULL);
        else
            tf_shm_shared_drop(s, i, NULL); /* a bit left by a racing thread of the last owner */
        tf_shm_store_u64(&s->procs[i].heartbeat_ns, now_ns);
        __atomic_store_n(&s->procs[i].pid, pid, __ATOMIC_RELEASE);
        return i;
    }
    return -1;
}

/* Releases a slot this descriptor holds: usage returned, pid cleared, lock dropped. */
static inline void tf_shm_slot_release(tf_shm_state *s, int fd, int slot) {
    if (slot < 0 || slot >= TF_SHM_MAX_PROCS) return;
    tf_shm_slot_reclaim(s, slot, NULL);
    tf_shm_slot_unlock(fd, slot);
}

/* Reclaims every occupied slot whose owner is gone, skipping those in own_mask (slots this
 * descriptor holds, bit i = slot i).  Returns how many it reclaimed; per-device bytes are
 * added to reclaimed[] (TF_SHM_MAX_DEVICES entries) when not NULL. */
static inline int tf_shm_sweep(tf_shm_state *s, int fd, uint64_t own_mask, uint64_t *reclaimed) {
    int count = 0;
    for (int i = 0; i < TF_SHM_MAX_PROCS; i++) {
        if ((own_mask >> i) & 1u) continue;
        if (tf_shm_load_i32(&s->procs[i].pid) == 0) continue;
        if (tf_shm_slot_trylock(fd, i) != 1) continue; /* live (or cannot tell): leave it */
        if (tf_shm_load_i32(&s->procs[i].pid) != 0) {
            tf_shm_slot_reclaim(s, i, reclaimed);
            count++;
        }
        tf_shm_slot_unlock(fd, i);
    }
    return count;
}

/* Whether a slot's owner is alive as seen through descriptor fd (1 alive, 0 gone/free). */
static inline int tf_shm_slot_alive(int fd, int slot) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = tf_shm_slot_offset(slot);
    fl.l_len = 1;
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return 1; /* cannot tell: assume alive */
    return fl.l_type != F_UNLCK;
}

#endif /* TF_SHM_SLOTS_H */
