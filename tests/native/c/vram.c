/* VRAM probe for tests/native: every allocation family, memory info, holding and looping.
 * Prints key=value lines.  Usage: vram COMMAND [ARGS] (see main). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

#define MIB (1ULL << 20)

FN(cuMemAllocPitch, CUresult, (CUdeviceptr *, size_t *, size_t, size_t, unsigned int));
FN(cuMemAllocManaged, CUresult, (CUdeviceptr *, size_t, unsigned int));
FN(cuMemAllocAsync, CUresult, (CUdeviceptr *, size_t, CUstream));
FN(cuMemFreeAsync, CUresult, (CUdeviceptr, CUstream));
FN(cuMemAllocFromPoolAsync, CUresult, (CUdeviceptr *, size_t, CUmemoryPool, CUstream));
FN(cuDeviceGetDefaultMemPool, CUresult, (CUmemoryPool *, CUdevice));
FN(cuMemCreate, CUresult, (CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long));
FN(cuMemRelease, CUresult, (CUmemGenericAllocationHandle));
FN(cuArrayCreate, CUresult, (CUarray *, const CUDA_ARRAY_DESCRIPTOR *));
FN(cuArray3DCreate, CUresult, (CUarray *, const CUDA_ARRAY3D_DESCRIPTOR *));
FN(cuArrayDestroy, CUresult, (CUarray));
FN(cuMipmappedArrayCreate, CUresult, (CUmipmappedArray *, const CUDA_ARRAY3D_DESCRIPTOR *, unsigned int));
FN(cuMipmappedArrayDestroy, CUresult, (CUmipmappedArray));
FN(cuStreamSynchronize, CUresult, (CUstream));

static CUdevice device;

/* xthread: frees from threads that did not allocate (each needs the context current). */
static CUcontext main_ctx;
typedef struct span {
    CUdeviceptr *ptrs;
    int count;
    CUresult rc;
} span;
FN(cuCtxGetCurrent, CUresult, (CUcontext *));

static void *free_span(void *arg) {
    span *s = arg;
    s->rc = cuCtxSetCurrent(main_ctx);
    for (int i = 0; i < s->count && s->rc == CUDA_SUCCESS; i++) s->rc = cuMemFree(s->ptrs[i]);
    return NULL;
}

/* One family: allocate `mib` MiB (or the family's nearest shape); returns rc, fills *handle. */
static CUresult family_alloc(const char *family, uint64_t mib, uint64_t *handle) {
    uint64_t bytes = mib * MIB;
    if (strcmp(family, "alloc") == 0) return cuMemAlloc((CUdeviceptr *)handle, bytes);
    if (strcmp(family, "pitch") == 0) {
        size_t pitch;
        return cuMemAllocPitch((CUdeviceptr *)handle, &pitch, 1024, bytes / 1024, 4);
    }
    if (strcmp(family, "managed") == 0) return cuMemAllocManaged((CUdeviceptr *)handle, bytes, CU_MEM_ATTACH_GLOBAL);
    if (strcmp(family, "async") == 0) return cuMemAllocAsync((CUdeviceptr *)handle, bytes, NULL);
    if (strcmp(family, "pool") == 0) {
        CUmemoryPool pool;
        CUresult rc = cuDeviceGetDefaultMemPool(&pool, device);
        return rc != CUDA_SUCCESS ? rc : cuMemAllocFromPoolAsync((CUdeviceptr *)handle, bytes, pool, NULL);
    }
    if (strcmp(family, "vmm") == 0) {
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = device;
        return cuMemCreate((CUmemGenericAllocationHandle *)handle, bytes, &prop, 0);
    }
    if (strcmp(family, "array") == 0) { /* 1 MiB rows of float4 -> mib MiB */
        CUDA_ARRAY_DESCRIPTOR d = {65536, mib, 0x20, 4};
        return cuArrayCreate((CUarray *)handle, &d);
    }
    if (strcmp(family, "array3d") == 0) {
        CUDA_ARRAY3D_DESCRIPTOR d = {1024, 256, mib, 0x20, 1, 0};
        return cuArray3DCreate((CUarray *)handle, &d);
    }
    if (strcmp(family, "mipmap") == 0) { /* levels: mib, mib/4, ... about 4/3 of the base */
        CUDA_ARRAY3D_DESCRIPTOR d = {1024, 256 * mib, 0, 0x20, 1, 0};
        return cuMipmappedArrayCreate((CUmipmappedArray *)handle, &d, 1);
    }
    return CUDA_ERROR_INVALID_VALUE;
}

static CUresult family_free(const char *family, uint64_t handle) {
    if (strcmp(family, "async") == 0 || strcmp(family, "pool") == 0) {
        CUresult rc = cuMemFreeAsync(handle, NULL);
        return rc != CUDA_SUCCESS ? rc : cuStreamSynchronize(NULL);
    }
    if (strcmp(family, "vmm") == 0) return cuMemRelease(handle);
    if (strcmp(family, "array") == 0 || strcmp(family, "array3d") == 0) return cuArrayDestroy((CUarray)handle);
    if (strcmp(family, "mipmap") == 0) return cuMipmappedArrayDestroy((CUmipmappedArray)handle);
    return cuMemFree(handle);
}

static void print_info(const char *key) {
    size_t free_bytes = 0, total = 0, dtotal = 0;
    CUresult rc = cuMemGetInfo(&free_bytes, &total);
    cuDeviceTotalMem(&dtotal, device);
    printf("%s=rc:%d,free:%zu,total:%zu,device_total:%zu\n", key, rc, free_bytes, total, dtotal);
}

static void load_all(void) {
    LOAD(cuMemAllocPitch);
    LOAD(cuMemAllocManaged);
    LOAD(cuMemAllocAsync);
    LOAD(cuMemFreeAsync);
    LOAD(cuMemAllocFromPoolAsync);
    LOAD(cuDeviceGetDefaultMemPool);
    LOAD(cuMemCreate);
    LOAD(cuMemRelease);
    LOAD(cuArrayCreate);
    LOAD(cuArray3DCreate);
    LOAD(cuArrayDestroy);
    LOAD(cuMipmappedArrayCreate);
    LOAD(cuMipmappedArrayDestroy);
    LOAD(cuStreamSynchronize);
    LOAD(cuCtxGetCurrent);
}

int main(int argc, char **argv) {
    if (argc < 2) return 64;
    const char *ordinal = getenv("TF_TEST_ORDINAL");
    open_driver(ordinal ? atoi(ordinal) : 0);
    cuDeviceGet(&device, ordinal ? atoi(ordinal) : 0);
    load_all();
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *cmd = argv[1];
    if (strcmp(cmd, "family") == 0 && argc == 4) {
        /* family NAME MIB: a, then b (should not fit next to a), free a, then c. */
        uint64_t mib = strtoull(argv[3], NULL, 10), a = 0, b = 0, c = 0;
        CUresult ra = family_alloc(argv[2], mib, &a);
        CUresult rb = family_alloc(argv[2], mib, &b);
        print_info("info_held");
        CUresult fa = ra == CUDA_SUCCESS ? family_free(argv[2], a) : CUDA_SUCCESS;
        if (rb == CUDA_SUCCESS) family_free(argv[2], b);
        CUresult rc = family_alloc(argv[2], mib, &c);
        CUresult fc = rc == CUDA_SUCCESS ? family_free(argv[2], c) : CUDA_SUCCESS;
        printf("result=%d,%d,%d,%d,%d\n", ra, rb, fa, rc, fc);
        print_info("info_after");
        return 0;
    }
    if (strcmp(cmd, "info") == 0) {
        print_info("info");
        return 0;
    }
    if (strcmp(cmd, "hold") == 0 && argc == 4) {
        /* hold MIB SECONDS: allocate, report, keep it until killed or the time is up. */
        CUdeviceptr p;
        CUresult rc = cuMemAlloc(&p, strtoull(argv[2], NULL, 10) * MIB);
        printf("hold=%d\n", rc);
        print_info("info");
        sleep((unsigned int)atoi(argv[3]));
        return 0;
    }
    if (strcmp(cmd, "loop") == 0 && argc == 4) {
        /* loop ITERATIONS KIB: alloc/free pairs with the size varying; -1 = until killed. */
        long n = atol(argv[2]);
        uint64_t kib = strtoull(argv[3], NULL, 10);
        long failures = 0;
        printf("ready=1\n");
        for (long i = 0; n < 0 || i < n; i++) {
            CUdeviceptr p;
            CUresult rc = cuMemAlloc(&p, (kib + (uint64_t)(i % 7)) * 1024);
            if (rc == CUDA_SUCCESS)
                rc = cuMemFree(p);
            else
                failures++;
        }
        printf("loop=done,failures:%ld\n", failures);
        return 0;
    }
    if (strcmp(cmd, "xthread") == 0 && argc == 3) {
        /* xthread N: N allocations of 1 MiB here, freed by 4 other threads at once. */
        int n = atoi(argv[2]);
        CUdeviceptr *ptrs = calloc((size_t)n, sizeof *ptrs);
        cuCtxGetCurrent(&main_ctx);
        for (int i = 0; i < n; i++)
            if (cuMemAlloc(&ptrs[i], MIB) != CUDA_SUCCESS) return 5;
        print_info("info_held");
        pthread_t threads[4];
        span spans[4];
        for (int t = 0; t < 4; t++) {
            spans[t] = (span){ptrs + t * (n / 4), t == 3 ? n - 3 * (n / 4) : n / 4, CUDA_SUCCESS};
            pthread_create(&threads[t], NULL, free_span, &spans[t]);
        }
        for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
        printf("xthread=%d,%d,%d,%d\n", spans[0].rc, spans[1].rc, spans[2].rc, spans[3].rc);
        print_info("info_after");
        return 0;
    }
    if (strcmp(cmd, "fork") == 0) {
        /* fork: 100 MiB here; a forked child (a new process of the worker) takes 50 MiB and
         * exits; then report what the worker holds. */
        CUdeviceptr p;
        printf("parent=%d\n", cuMemAlloc(&p, 100 * MIB));
        pid_t child = fork();
        if (child == 0) {
            CUdeviceptr q;
            printf("child=%d\n", cuMemAlloc(&q, 50 * MIB));
            print_info("child_info");
            fflush(stdout);
            exit(0); /* normal exit: its share goes back */
        }
        int status = 0;
        waitpid(child, &status, 0);
        printf("child_exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        print_info("parent_info");
        return 0;
    }
    if (strcmp(cmd, "tamper") == 0 && argc == 4) {
        /* tamper LIMITS_PATH MIB: try to raise the limit, then allocate MIB. */
        print_info("info_before"); /* the shim maps the region on first use */
        int fd = open(argv[2], O_RDWR);
        printf("open_rdwr=%s\n", fd >= 0 ? "ok" : strerror(errno));
        if (fd >= 0) {
            uint64_t huge = 1ULL << 50;
            ssize_t n = pwrite(fd, &huge, sizeof huge, 64 + 48); /* devices[0].vram_limit_bytes */
            printf("pwrite=%zd\n", n);
            close(fd);
        }
        /* The shim's own read-only mapping of the limits file: find it and try to write it. */
        FILE *maps = fopen("/proc/self/maps", "r");
        char line[1024];
        int found = 0;
        while (maps != NULL && fgets(line, sizeof line, maps) != NULL) {
            if (strstr(line, argv[2]) == NULL) continue;
            unsigned long lo, hi;
            sscanf(line, "%lx-%lx", &lo, &hi);
            found = 1;
            int rc = mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE);
            printf("mprotect=%s\n", rc == 0 ? "ok" : strerror(errno));
            if (rc == 0) ((uint64_t *)lo)[(64 + 48) / 8] = 1ULL << 50;
        }
        if (maps != NULL) fclose(maps);
        printf("mapping_found=%d\n", found);
        CUdeviceptr p;
        printf("alloc=%d\n", cuMemAlloc(&p, strtoull(argv[3], NULL, 10) * MIB));
        print_info("info");
        return 0;
    }
    return 64;
}
