/*
 * VMM lifetimes: physical memory from cuMemCreate is charged until it is released AND its
 * last mapping is gone, in either order (the driver keeps mapped memory alive after
 * cuMemRelease, so crediting at release would let `create, map, release` escape the limit).
 * A handle imported from another process (cuMemImportFromShareableHandle) keeps the memory
 * alive too: it is charged here by the extent mapped from it (the API gives no size before),
 * admitted before each mapping that reaches further, for the same lifetime.
 *
 * Process-local book of handles and mappings under one mutex: VMM calls are rare (an
 * allocator maps big chunks), and a process-local lock dies with its process.
 */
#include <pthread.h>
#include <stdlib.h>

#include "shim.h"

typedef struct vmm_handle {
    uint64_t handle, bytes;
    int dev, maps, released, imported;
} vmm_handle;

typedef struct vmm_map {
    uint64_t ptr, size, handle;
} vmm_map;

static pthread_mutex_t vmm_lock = PTHREAD_MUTEX_INITIALIZER;
static vmm_handle *handles;
static size_t handle_count, handle_cap;
static vmm_map *maps;
static size_t map_count, map_cap;

static int grow(void **array, size_t *cap, size_t count, size_t item) {
    if (count < *cap) return 1;
    size_t cap2 = *cap ? *cap * 2 : 32;
    void *p = realloc(*array, cap2 * item);
    if (p == NULL) return 0;
    *array = p;
    *cap = cap2;
    return 1;
}

static vmm_handle *find_handle(uint64_t handle) {
    for (size_t i = 0; i < handle_count; i++)
        if (handles[i].handle == handle && !handles[i].released) return &handles[i];
    return NULL;
}

/* Drops a handle that is released and unmapped; bytes and dev say what to return. */
static int settle(vmm_handle *h, uint64_t *bytes, int *dev) {
    if (!h->released || h->maps > 0) return 0;
    *bytes = h->bytes;
    *dev = h->dev;
    *h = handles[--handle_count];
    return 1;
}

void tf_vmm_created(uint64_t handle, uint64_t bytes, int dev) {
    pthread_mutex_lock(&vmm_lock);
    int ok = grow((void **)&handles, &handle_cap, handle_count, sizeof *handles);
    if (ok) handles[handle_count++] = (vmm_handle){handle, bytes, dev, 0, 0, 0};
    pthread_mutex_unlock(&vmm_lock);
    /* Without a record the bytes stay charged for the process's life: conservative. */
    if (!ok) tf_log(TF_LOG_WARN, "VMM book full: %llu bytes stay charged", (unsigned long long)bytes);
}

/* An imported handle starts with nothing charged; 0 when the book is full (then its
 * mappings are refused: never free). */
int tf_vmm_imported(uint64_t handle, int dev) {
    pthread_mutex_lock(&vmm_lock);
    int ok = grow((void **)&handles, &handle_cap, handle_count, sizeof *handles);
    if (ok) handles[handle_count++] = (vmm_handle){handle, 0, dev, 0, 0, 1};
    pthread_mutex_unlock(&vmm_lock);
    return ok;
}

/* What mapping handle up to `extent` bytes adds to its charge (0 for created handles);
 * *dev says where.  -1 (UINT64_MAX) when an imported handle is not in the book. */
uint64_t tf_vmm_growth(uint64_t handle, uint64_t extent, int *dev) {
    uint64_t need = 0;
    pthread_mutex_lock(&vmm_lock);
    vmm_handle *h = find_handle(handle);
    if (h != NULL && h->imported) {
        need = extent > h->bytes ? extent - h->bytes : 0;
        *dev = h->dev;
    }
    pthread_mutex_unlock(&vmm_lock);
    return need;
}

/* The mapping that needed `need` more bytes was made: the handle's charge grows by it. */
void tf_vmm_grown(uint64_t handle, uint64_t need) {
    pthread_mutex_lock(&vmm_lock);
    vmm_handle *h = find_handle(handle);
    if (h != NULL) h->bytes += need;
    pthread_mutex_unlock(&vmm_lock);
}

void tf_vmm_mapped(uint64_t ptr, uint64_t size, uint64_t handle) {
    pthread_mutex_lock(&vmm_lock);
    vmm_handle *h = find_handle(handle);
    if (h != NULL && grow((void **)&maps, &map_cap, map_count, sizeof *maps)) {
        h->maps++;
        maps[map_count++] = (vmm_map){ptr, size, handle};
    }
    pthread_mutex_unlock(&vmm_lock);
}

void tf_vmm_unmapped(uint64_t ptr, uint64_t size) {
    uint64_t freed_bytes[8];
    int freed_dev[8], freed = 0;
    pthread_mutex_lock(&vmm_lock);
    for (size_t i = map_count; i-- > 0;) {
        vmm_map m = maps[i];
        if (m.ptr < ptr || m.ptr - ptr >= size) continue; /* not inside the unmapped range */
        maps[i] = maps[--map_count];
        for (size_t j = 0; j < handle_count; j++) {
            if (handles[j].handle != m.handle || handles[j].maps == 0) continue;
            handles[j].maps--;
            if (freed < 8 && settle(&handles[j], &freed_bytes[freed], &freed_dev[freed])) freed++;
            break;
        }
    }
    pthread_mutex_unlock(&vmm_lock);
    for (int i = 0; i < freed; i++) tf_release(freed_dev[i], freed_bytes[i]);
}

/* Marks handle released before the driver sees cuMemRelease (so a racing create that gets
 * the same number once it is free is a new record); 1 when the handle is ours. */
int tf_vmm_release_mark(uint64_t handle) {
    pthread_mutex_lock(&vmm_lock);
    vmm_handle *h = find_handle(handle);
    if (h != NULL) h->released = 1;
    pthread_mutex_unlock(&vmm_lock);
    return h != NULL;
}

/* After the driver's answer: a refused release is undone; a done one returns the bytes now
 * if nothing maps them any more (else the last unmap does). */
void tf_vmm_release_done(uint64_t handle, int succeeded) {
    uint64_t bytes = 0;
    int dev = -1, done = 0;
    pthread_mutex_lock(&vmm_lock);
    for (size_t i = 0; i < handle_count; i++) {
        if (handles[i].handle != handle || !handles[i].released) continue;
        if (!succeeded)
            handles[i].released = 0;
        else
            done = settle(&handles[i], &bytes, &dev);
        break;
    }
    pthread_mutex_unlock(&vmm_lock);
    if (done) tf_release(dev, bytes);
}

/* A lock a parent's thread held at fork() would never be released in the child. */
void tf_vmm_after_fork(void) { pthread_mutex_init(&vmm_lock, NULL); }
