/* One holder of shared device memory, driven line by line on stdin so that a test can
 * interleave several processes (of one worker or of two) and kill any of them at any step.
 * Each command prints one `name=value` line:
 *   alloc MIB        cuMemAlloc                         alloc_rc
 *   poolalloc MIB    from a pool made for descriptors   poolalloc_rc
 *   export           legacy IPC handle of the allocation handle=HEX
 *   poolexport       the pool's descriptor and pointer   pool=PID:FD:HEX
 *   open HEX         cuIpcOpenMemHandle                  open_rc
 *   poolimport P:F:H the pool's descriptor F of process P (pidfd_getfd, as NCCL and UCX
 *                    take it), then the pointer                          import_rc
 *   close            cuIpcCloseMemHandle of what open made             close_rc
 *   free             cuMemFree of the allocation (or of the imported pool pointer)  free_rc
 *   try MIB          cuMemAlloc and cuMemFree at once    try_rc
 *   info             cuMemGetInfo                        info=rc:R,free:F,total:T */
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "driver.h"

#define MIB (1ULL << 20)

FN(cuIpcGetMemHandle, CUresult, (CUipcMemHandle *, CUdeviceptr));
FN(cuIpcOpenMemHandle, CUresult, (CUdeviceptr *, CUipcMemHandle, unsigned int));
FN(cuIpcCloseMemHandle, CUresult, (CUdeviceptr));
FN(cuMemPoolCreate, CUresult, (CUmemoryPool *, const CUmemPoolProps *));
FN(cuMemAllocFromPoolAsync, CUresult, (CUdeviceptr *, size_t, CUmemoryPool, CUstream));
FN(cuStreamSynchronize, CUresult, (CUstream));
FN(cuMemPoolExportToShareableHandle, CUresult, (void *, CUmemoryPool, int, unsigned long long));
FN(cuMemPoolImportFromShareableHandle, CUresult, (CUmemoryPool *, void *, int, unsigned long long));
FN(cuMemPoolExportPointer, CUresult, (CUmemPoolPtrExportData *, CUdeviceptr));
FN(cuMemPoolImportPointer, CUresult, (CUdeviceptr *, CUmemoryPool, CUmemPoolPtrExportData *));

static void print_hex(const void *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", ((const unsigned char *)bytes)[i]);
}

static int parse_hex(const char *text, void *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        if (sscanf(text + 2 * i, "%2x", &byte) != 1) return 0;
        ((unsigned char *)out)[i] = (unsigned char)byte;
    }
    return 1;
}

int main(void) {
    /* Another holder (a sibling, not a descendant) may take our pool's descriptor. */
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    open_driver(0);
    LOAD(cuIpcGetMemHandle);
    LOAD(cuIpcOpenMemHandle);
    LOAD(cuIpcCloseMemHandle);
    LOAD(cuMemPoolCreate);
    LOAD(cuMemAllocFromPoolAsync);
    LOAD(cuStreamSynchronize);
    LOAD(cuMemPoolExportToShareableHandle);
    LOAD(cuMemPoolImportFromShareableHandle);
    LOAD(cuMemPoolExportPointer);
    LOAD(cuMemPoolImportPointer);
    CUdeviceptr mine = 0, opened = 0;
    CUmemoryPool pool = NULL;
    char line[512], arg[400];
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready=%d\n", (int)getpid());
    while (fgets(line, sizeof line, stdin) != NULL) {
        unsigned long long mib = 0;
        arg[0] = '\0';
        if (sscanf(line, "alloc %llu", &mib) == 1) {
            printf("alloc_rc=%d\n", cuMemAlloc(&mine, mib * MIB));
        } else if (sscanf(line, "poolalloc %llu", &mib) == 1) {
            CUmemPoolProps props;
            memset(&props, 0, sizeof props);
            props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
            props.handleTypes = 1; /* CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR */
            props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
            CUresult rc = pool == NULL ? cuMemPoolCreate(&pool, &props) : CUDA_SUCCESS;
            if (rc == CUDA_SUCCESS) rc = cuMemAllocFromPoolAsync(&mine, mib * MIB, pool, NULL);
            if (rc == CUDA_SUCCESS) rc = cuStreamSynchronize(NULL);
            printf("poolalloc_rc=%d\n", rc);
        } else if (strncmp(line, "export", 6) == 0) {
            CUipcMemHandle h;
            CUresult rc = cuIpcGetMemHandle(&h, mine);
            if (rc != CUDA_SUCCESS) {
                printf("handle=error:%d\n", rc);
                continue;
            }
            printf("handle=");
            print_hex(h.reserved, sizeof h.reserved);
            printf("\n");
        } else if (strncmp(line, "poolexport", 10) == 0) {
            int fd = -1;
            CUmemPoolPtrExportData data;
            CUresult rc = cuMemPoolExportToShareableHandle(&fd, pool, 1, 0);
            if (rc == CUDA_SUCCESS) rc = cuMemPoolExportPointer(&data, mine);
            if (rc != CUDA_SUCCESS) {
                printf("pool=error:%d\n", rc);
                continue;
            }
            printf("pool=%d:%d:", (int)getpid(), fd);
            print_hex(data.reserved, sizeof data.reserved);
            printf("\n");
        } else if (sscanf(line, "open %399s", arg) == 1) {
            CUipcMemHandle h;
            if (!parse_hex(arg, h.reserved, sizeof h.reserved)) return printf("error=handle\n"), 1;
            printf("open_rc=%d\n", cuIpcOpenMemHandle(&opened, h, 1));
        } else if (sscanf(line, "poolimport %399s", arg) == 1) {
            int pid, fd, used = 0;
            CUmemPoolPtrExportData data;
            char path[64];
            if (sscanf(arg, "%d:%d:%n", &pid, &fd, &used) != 2 || !parse_hex(arg + used, data.reserved, sizeof data.reserved))
                return printf("error=pool\n"), 1;
            /* The very descriptor (the driver's is an open of its control device that carries
             * the export); reopening /proc/P/fd/F, enough for the simulator's, is the fallback
             * where pidfd_getfd is missing. */
            int pidfd = (int)syscall(434 /* SYS_pidfd_open */, pid, 0);
            int mine_fd = pidfd >= 0 ? (int)syscall(438 /* SYS_pidfd_getfd */, pidfd, fd, 0) : -1;
            if (pidfd >= 0) close(pidfd);
            snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
            if (mine_fd < 0) mine_fd = open(path, O_RDONLY | O_CLOEXEC);
            CUresult rc = mine_fd < 0 ? CUDA_ERROR_INVALID_VALUE
                                      : cuMemPoolImportFromShareableHandle(&pool, (void *)(intptr_t)mine_fd, 1, 0);
            if (rc == CUDA_SUCCESS) rc = cuMemPoolImportPointer(&mine, pool, &data);
            printf("import_rc=%d\n", rc);
        } else if (strncmp(line, "close", 5) == 0) {
            printf("close_rc=%d\n", cuIpcCloseMemHandle(opened));
        } else if (strncmp(line, "free", 4) == 0) {
            printf("free_rc=%d\n", cuMemFree(mine));
        } else if (sscanf(line, "try %llu", &mib) == 1) {
            CUdeviceptr p;
            CUresult rc = cuMemAlloc(&p, mib * MIB);
            if (rc == CUDA_SUCCESS) cuMemFree(p);
            printf("try_rc=%d\n", rc);
        } else if (strncmp(line, "info", 4) == 0) {
            size_t free_bytes = 0, total = 0;
            CUresult rc = cuMemGetInfo(&free_bytes, &total);
            printf("info=rc:%d,free:%zu,total:%zu\n", rc, free_bytes, total);
        } else {
            printf("error=unknown command\n");
        }
    }
    return 0;
}
