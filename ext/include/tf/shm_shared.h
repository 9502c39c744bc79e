/*
 * shm_shared.h - memory shared between processes of one worker, charged once.
 *
 * Process P1 exports an allocation (cuIpcGetMemHandle, cuMemPoolExportPointer); P2 of the
 * same worker imports it.  The driver keeps ONE physical allocation alive while any of them
 * holds it (the exporter until its free, each importer until its close or free), so the
 * worker is charged its bytes once, for exactly that long.  At export the exporter moves the
 * allocation's charge from its process slot into an entry of the state file's shared table,
 * with its own bit set in `holders`; an importer of the same worker finds the entry by the
 * handle's identity and sets its bit instead of charging its slot; each holder clears its bit
 * when it lets go; the entry's bytes count in the worker's usage while any bit is set
 * (tf_shm_vram_used); the sweep clears the bits of dead processes' slots.
 *
 * No lock: every change is one CAS on one word, so a SIGKILL between any two instructions
 * leaves either a state the sweep settles exactly or one that over-counts until then, never
 * memory reachable without a charge.
 *
 *   key   0                         free
 *         PENDING | slot<<16        being claimed by the process in `slot` (nobody matches it)
 *         id<<16 | gen              published: identity (47 bits of the handle's hash) and
 *                                   the claim's generation, so a reader can tell an entry
 *                                   freed and claimed again (ABA) from the one it found
 *
 *   claim    CAS key 0 -> PENDING; the winner bumps the generation; raise the table's high
 *            water; bytes, device; holders = own bit; take the bytes out of the own slot;
 *            key = id<<16|gen.
 *   join     find key with the id; CAS holders m -> m|bit (only while m != 0: an entry
 *            nobody holds is dying); re-read key: changed means it was freed and reused
 *            meanwhile, so the bit is taken back and the import is charged as any other.
 *   leave    read key (our bit pins it), CAS holders m -> m & ~bit; whoever leaves it at 0
 *            frees it (CAS key: that value -> 0, so an entry freed meanwhile by the sweep
 *            and claimed again is never touched).
 *   drop     (sweep, or a slot's new owner) leave for a dead slot; also frees a dead
 *            claimer's PENDING entry and an entry whose last holder died between its two
 *            CASes (holders 0, key still published).
 */
#ifndef TF_SHM_SHARED_H
#define TF_SHM_SHARED_H

#include "tf/shm_layout.h"

#define TF_SHM_SHARED_PENDING (1ULL << 63)
#define TF_SHM_SHARED_ID_BITS 47
#define TF_SHM_SHARED_GEN_MASK 0xFFFFULL
/* An import may map a little more than the exporter asked for (the driver's rounding). */
#define TF_SHM_SHARED_SLACK (2ULL << 20)

/* Identity of an export handle's bytes: 47 bits of FNV-1a, never 0. */
static inline uint64_t tf_shm_shared_id(const void *bytes, size_t n) {
    const unsigned char *p = (const unsigned char *)bytes;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    h &= (1ULL << TF_SHM_SHARED_ID_BITS) - 1;
    return h != 0 ? h : 1;
}

static inline uint32_t tf_shm_shared_entries(const tf_shm_state *s) {
    uint32_t n = __atomic_load_n(&s->header.shared_high_water, __ATOMIC_ACQUIRE);
    return n > TF_SHM_MAX_SHARED ? TF_SHM_MAX_SHARED : n;
}

/* Publishes `bytes` on device dev, already charged to `slot`, as shared memory of identity
 * id held by slot, and takes them out of the slot.  Returns the entry (its key in *key_out),
 * or -1 when the table is full: then the charge stays in the slot (an import of it is
 * charged again: twice, never free). */
static inline int tf_shm_shared_publish(tf_shm_state *s, int slot, int dev, uint64_t id, uint64_t bytes,
                                        uint64_t *key_out) {
    if (slot < 0 || slot >= TF_SHM_MAX_PROCS || dev < 0 || dev >= TF_SHM_MAX_DEVICES) return -1;
    for (int i = 0; i < TF_SHM_MAX_SHARED; i++) {
        tf_shm_shared *e = &s->shared[i];
        if (__atomic_load_n(&e->key, __ATOMIC_ACQUIRE) != 0) continue;
        uint64_t expected = 0, pending = TF_SHM_SHARED_PENDING | (uint64_t)slot << 16;
        if (!__atomic_compare_exchange_n(&e->key, &expected, pending, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        /* Bumped by the claim's winner only: every life of the entry has a key of its own. */
        uint32_t gen = __atomic_add_fetch(&e->generation, 1, __ATOMIC_ACQ_REL);
        /* Readers scan up to the high water: raise it before the entry can count. */
        uint32_t water = __atomic_load_n(&s->header.shared_high_water, __ATOMIC_ACQUIRE);
        while (water < (uint32_t)i + 1 &&
               !__atomic_compare_exchange_n(&s->header.shared_high_water, &water, (uint32_t)i + 1, 1,
                                            __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE)) {
        }
        __atomic_store_n(&e->bytes, bytes, __ATOMIC_RELAXED);
        __atomic_store_n(&e->device, (uint32_t)dev, __ATOMIC_RELAXED);
        /* Counted from here (twice, with the slot, until the next line): never not at all. */
        __atomic_store_n(&e->holders, 1ULL << slot, __ATOMIC_SEQ_CST);
        tf_shm_unreserve(s, slot, dev, bytes);
        uint64_t key = id << 16 | (gen & TF_SHM_SHARED_GEN_MASK);
        __atomic_store_n(&e->key, key, __ATOMIC_RELEASE);
        *key_out = key;
        return i;
    }
    return -1;
}

/* Removes slot from entry i's holders.  The holder that leaves nobody frees the entry and
 * gets its bytes back (what stopped counting); 0 while others still hold it. */
static inline uint64_t tf_shm_shared_leave(tf_shm_state *s, int i, int slot) {
    if (i < 0 || i >= TF_SHM_MAX_SHARED || slot < 0 || slot >= TF_SHM_MAX_PROCS) return 0;
    tf_shm_shared *e = &s->shared[i];
    /* Key and bytes are read while our bit still pins the entry: once the bit is gone, the
     * sweep may free the entry and another process claim it, and a key read then would be
     * that process's live entry, freed by our CAS below. */
    uint64_t key = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
    uint64_t bytes = __atomic_load_n(&e->bytes, __ATOMIC_RELAXED);
    uint64_t bit = 1ULL << slot, held = __atomic_load_n(&e->holders, __ATOMIC_ACQUIRE);
    do {
        if ((held & bit) == 0) return 0;
    } while (!__atomic_compare_exchange_n(&e->holders, &held, held & ~bit, 1, __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE));
    if ((held & ~bit) != 0) return 0;
    if (key != 0) __atomic_compare_exchange_n(&e->key, &key, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return bytes;
}

/* Adds slot to the holders of the published entry of identity id on device dev that covers
 * `size` bytes (the import's mapping); returns it (key in *key_out), or -1 when this worker
 * has no such entry (the importer is then charged as for any import). */
static inline int tf_shm_shared_join(tf_shm_state *s, int slot, int dev, uint64_t id, uint64_t size,
                                     uint64_t *key_out) {
    if (slot < 0 || slot >= TF_SHM_MAX_PROCS) return -1;
    uint64_t bit = 1ULL << slot;
    uint32_t entries = tf_shm_shared_entries(s);
    for (uint32_t i = 0; i < entries; i++) {
        tf_shm_shared *e = &s->shared[i];
        uint64_t key = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if ((key & TF_SHM_SHARED_PENDING) != 0 || key >> 16 != id) continue;
        uint64_t held = __atomic_load_n(&e->holders, __ATOMIC_ACQUIRE);
        do {
            if (held == 0) break; /* nobody holds it: being freed */
        } while (!__atomic_compare_exchange_n(&e->holders, &held, held | bit, 1, __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE));
        if (held == 0) continue;
        /* While our bit is set the entry cannot be freed: what we read now is stable. */
        uint64_t bytes = __atomic_load_n(&e->bytes, __ATOMIC_RELAXED);
        if (__atomic_load_n(&e->key, __ATOMIC_ACQUIRE) != key ||
            __atomic_load_n(&e->device, __ATOMIC_RELAXED) != (uint32_t)dev || size > bytes + TF_SHM_SHARED_SLACK) {
            if ((held & bit) == 0) tf_shm_shared_leave(s, (int)i, slot);
            continue;
        }
        *key_out = key;
        return (int)i;
    }
    return -1;
}

/* Lets go of everything `slot` held (its owner is gone, or it has a new owner that holds
 * nothing yet); adds the bytes that stopped counting to reclaimed[device] when not NULL.
 * Also frees a PENDING entry of that slot and entries whose last holder died between its
 * two CASes. */
static inline void tf_shm_shared_drop(tf_shm_state *s, int slot, uint64_t *reclaimed) {
    uint32_t entries = tf_shm_shared_entries(s);
    for (uint32_t i = 0; i < entries; i++) {
        tf_shm_shared *e = &s->shared[i];
        uint64_t key = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if (key == 0) continue;
        uint32_t dev = __atomic_load_n(&e->device, __ATOMIC_RELAXED);
        uint64_t bytes = tf_shm_shared_leave(s, (int)i, slot);
        if (bytes != 0 && reclaimed != NULL && dev < TF_SHM_MAX_DEVICES) reclaimed[dev] += bytes;
        key = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if (key == 0 || __atomic_load_n(&e->holders, __ATOMIC_ACQUIRE) != 0) continue;
        int pending = (key & TF_SHM_SHARED_PENDING) != 0;
        /* A live claimer's PENDING entry is not ours to free; any other unheld one is dead. */
        if (!pending || (int)((key >> 16) & 0x7F) == slot)
            __atomic_compare_exchange_n(&e->key, &key, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
}

#endif /* TF_SHM_SHARED_H */
