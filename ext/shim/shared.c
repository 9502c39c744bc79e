/*
 * Memory shared with other processes of the worker: the process-local side of
 * tf/shm_shared.h.  In the state file a process holds an entry at most once (one bit); here
 * it counts how often it holds it (its exported allocation, its imports) and keeps the pool
 * an exported pool pointer came from.  Export and import are rare calls, so one
 * process-local mutex (it dies with its process) keeps the count and the bit in step; the
 * alloc and free hot paths never take it (a free reaches here only for a record whose aux
 * word is set, which pool pointers already had).
 */
#include <pthread.h>
#include <string.h>

#include "shim.h"
#include "tf/shm_shared.h"

typedef struct hold {
    uint32_t count; /* holds of this process: the bit is set while it is not 0 */
    uint64_t key;   /* the entry's key when this process first held it */
    uint64_t pool;  /* the exporter's pool of an exported pool pointer (0: none) */
} hold;

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static hold holds[TF_SHM_MAX_SHARED];

void tf_shared_export(uint64_t ptr, const void *ident, size_t n) {
    if (tf_region_active() != TF_ADMIT_OK) return;
    uint64_t id = tf_shm_shared_id(ident, n), bytes, aux, key;
    int dev;
    pthread_mutex_lock(&shared_lock);
    /* Only an allocation this process was charged for (by its base pointer) moves; another
     * export of one already shared changes nothing. */
    if (tf_untrack_aux(TF_ALLOC_PTR, ptr, &bytes, &dev, &aux)) {
        if ((aux & TF_SHARED_MARK) == 0 && bytes != 0) {
            int entry = tf_region_share_publish(dev, id, bytes, &key);
            if (entry >= 0) {
                holds[entry] = (hold){1, key, aux};
                aux = TF_SHARED_MARK | (uint64_t)entry;
            }
        }
        tf_track_aux(TF_ALLOC_PTR, ptr, bytes, dev, aux);
    }
    pthread_mutex_unlock(&shared_lock);
}

int tf_shared_import(const void *ident, size_t n, int dev, uint64_t size) {
    uint64_t id = tf_shm_shared_id(ident, n), key;
    int entry = -1;
    pthread_mutex_lock(&shared_lock);
    for (int i = 0; i < TF_SHM_MAX_SHARED && entry < 0; i++)
        if (holds[i].count != 0 && holds[i].key >> 16 == id) {
            holds[i].count++;
            entry = i;
        }
    if (entry < 0) {
        entry = tf_region_share_join(dev, id, size, &key);
        if (entry >= 0) holds[entry] = (hold){1, key, 0};
    }
    pthread_mutex_unlock(&shared_lock);
    return entry;
}

void tf_freed_aux(uint64_t aux, int dev, uint64_t bytes) {
    if ((aux & TF_SHARED_MARK) == 0) {
        tf_pool_freed((CUmemoryPool)(uintptr_t)aux, dev, bytes);
        return;
    }
    int entry = (int)(aux & 0xFFFF);
    uint64_t pool = 0;
    pthread_mutex_lock(&shared_lock);
    if (entry < TF_SHM_MAX_SHARED && holds[entry].count != 0 && --holds[entry].count == 0) {
        pool = holds[entry].pool;
        holds[entry].pool = 0;
        /* Freed into its pool, the memory is the pool's again once no importer maps it: the
         * bytes go back to this process's slot (charged twice until the bit is gone, never
         * not at all), where the pool's book keeps or returns them as for any free. */
        if (pool != 0) tf_region_charge(dev, bytes);
        tf_region_share_leave(entry);
    }
    pthread_mutex_unlock(&shared_lock);
    if (pool != 0) tf_pool_freed((CUmemoryPool)(uintptr_t)pool, dev, bytes);
}

/* In a forked child: the parent's holds are the parent's (its bits, its slot), and a lock a
 * parent's thread held at the fork would never be released here. */
void tf_shared_after_fork(void) {
    pthread_mutex_init(&shared_lock, NULL);
    memset(holds, 0, sizeof holds);
}
