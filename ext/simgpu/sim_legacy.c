/*
 * The CUDA 2.x-era launch calls, still exported by the driver: the block shape is set on the
 * function first (cuFuncSetBlockShape), then cuLaunch (a 1x1 grid), cuLaunchGrid or
 * cuLaunchGridAsync; and the deprecated cuLaunchCooperativeKernelMultiDevice.  They run like
 * cuLaunchKernel of the same shape, so a tenant can reach them and the shim must price them.
 */
#include <pthread.h>

#include "sim_cuda.h"

#define SHAPES 256

/* sim_ctx.c */
CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                        unsigned int by, unsigned int bz, unsigned int shmem, CUstream stream, void **params,
                        void **extra);
CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                   unsigned int by, unsigned int bz, unsigned int shmem, CUstream stream,
                                   void **params);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* process-local */
static struct {
    CUfunction f;
    unsigned int x, y, z;
} shapes[SHAPES];

TF_SIM_API CUresult cuFuncSetBlockShape(CUfunction f, int x, int y, int z) {
    CUresult rc = tf_need_init();
    if (rc != CUDA_SUCCESS) return rc;
    if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
    if (x <= 0 || y <= 0 || z <= 0) return CUDA_ERROR_INVALID_VALUE;
    rc = CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SHAPES; i++)
        if (shapes[i].f == f || shapes[i].f == NULL) {
            shapes[i].f = f;
            shapes[i].x = (unsigned)x, shapes[i].y = (unsigned)y, shapes[i].z = (unsigned)z;
            rc = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&lock);
    return rc;
}

static CUresult grid_launch(CUfunction f, int gw, int gh, CUstream stream) {
    unsigned int x = 0, y = 0, z = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SHAPES && shapes[i].f != NULL; i++)
        if (shapes[i].f == f) x = shapes[i].x, y = shapes[i].y, z = shapes[i].z;
    pthread_mutex_unlock(&lock);
    if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
    if (x == 0 || gw <= 0 || gh <= 0) return CUDA_ERROR_INVALID_VALUE; /* no block shape set */
    return cuLaunchKernel(f, (unsigned)gw, (unsigned)gh, 1, x, y, z, 0, stream, NULL, NULL);
}

TF_SIM_API CUresult cuLaunch(CUfunction f) { return grid_launch(f, 1, 1, NULL); }
TF_SIM_API CUresult cuLaunchGrid(CUfunction f, int gw, int gh) { return grid_launch(f, gw, gh, NULL); }
TF_SIM_API CUresult cuLaunchGridAsync(CUfunction f, int gw, int gh, CUstream stream) {
    return grid_launch(f, gw, gh, stream);
}

TF_SIM_API CUresult cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS *list, unsigned int count,
                                                         unsigned int flags) {
    (void)flags;
    if (list == NULL || count == 0) return CUDA_ERROR_INVALID_VALUE;
    for (unsigned int i = 0; i < count; i++) {
        const CUDA_LAUNCH_PARAMS *p = &list[i];
        CUresult rc = cuLaunchCooperativeKernel(p->function, p->gridDimX, p->gridDimY, p->gridDimZ, p->blockDimX,
                                                p->blockDimY, p->blockDimZ, p->sharedMemBytes, p->hStream,
                                                p->kernelParams);
        if (rc != CUDA_SUCCESS) return rc;
    }
    return CUDA_SUCCESS;
}
