/* A process of a worker that publishes, joins and leaves shared entries (tf/shm_shared.h) as
 * fast as it can, while a test SIGKILLs such processes at random instructions and sweeps.
 * Usage: shared_race STATE_PATH SEED.  Checks, at every step, that what it holds is still
 * held (its bit set, the entry's key unchanged): a sweep, a claimer or a racing process that
 * took either away while it lives would let memory stay mapped uncharged.  Prints
 * `violation=...` and exits 3 when that happens; runs until killed otherwise. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tf/shm_shared.h"
#include "tf/shm_slots.h"

#define HELD_MAX 16
#define IDS 6 /* few identities: joins race with publishes, leaves and reuse of the same ones */

typedef struct held {
    int entry;
    uint64_t key;
} held;

static uint64_t next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return 2;
    tf_shm_state *s = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED || tf_shm_validate(s, (uint64_t)st.st_size, TF_SHM_KIND_STATE) != TF_SHM_OK) return 2;
    int slot = tf_shm_slot_claim(s, fd, (int32_t)getpid(), 1, 0);
    if (slot < 0) return 2;
    uint64_t rng = strtoull(argv[2], NULL, 10) * 2654435761ULL + 1, bit = 1ULL << slot;
    held holds[HELD_MAX];
    int count = 0;
    printf("ready=%d\n", slot);
    fflush(stdout);
    for (uint64_t step = 1;; step++) {
        if (step % 256 == 0) usleep(50); /* leaves the test's CPUs to the others now and then */
        for (int i = 0; i < count; i++) {
            const tf_shm_shared *e = &s->shared[holds[i].entry];
            if ((__atomic_load_n(&e->holders, __ATOMIC_ACQUIRE) & bit) == 0 ||
                __atomic_load_n(&e->key, __ATOMIC_ACQUIRE) != holds[i].key) {
                printf("violation=entry %d lost slot %d's hold\n", holds[i].entry, slot);
                return 3;
            }
        }
        uint64_t r = next_random(&rng), id = 1 + r % IDS, key;
        uint64_t bytes = ((r >> 8) % 64 + 1) << 20;
        int action = (int)((r >> 16) % 3), entry = -1;
        if (action == 0 && count < HELD_MAX) {
            /* Export: charged to the slot first, then moved into an entry. */
            if (!tf_shm_reserve(s, slot, 0, bytes, 0)) return 2;
            entry = tf_shm_shared_publish(s, slot, 0, id, bytes, &key);
            if (entry < 0) tf_shm_unreserve(s, slot, 0, bytes);
        } else if (action == 1 && count < HELD_MAX) {
            /* Import: joins an entry of that identity that no hold of ours is in already. */
            int mine = 0;
            for (int i = 0; i < count; i++) mine |= holds[i].key >> 16 == id;
            if (!mine) entry = tf_shm_shared_join(s, slot, 0, id, 1, &key);
        } else if (count > 0) {
            int i = (int)((r >> 24) % (uint64_t)count);
            tf_shm_shared_leave(s, holds[i].entry, slot);
            holds[i] = holds[--count];
        }
        if (entry >= 0) holds[count++] = (held){entry, key};
    }
}
