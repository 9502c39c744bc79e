/*
 * cuda_abi.h - the slice of the CUDA driver ABI that tensor-fusion's C code uses.
 *
 * Declared here (not taken from the toolkit's cuda.h) so the shim and the simulated
 * driver build on machines without the CUDA toolkit.  Values are ABI facts of the
 * driver; tests/native compare them against cuda.h when the toolkit is installed.
 */
#ifndef TF_CUDA_ABI_H
#define TF_CUDA_ABI_H

#include <stddef.h>
#include <stdint.h>

typedef int CUdevice;
typedef uint64_t cuuint64_t;
typedef uint64_t CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUuuid_st {
    char bytes[16];
} CUuuid;

/* TF_CU_RESULT(name, value, description): every code our C code returns or names. */
#define TF_CU_RESULTS(X)                                                               \
    X(CUDA_SUCCESS, 0, "no error")                                                     \
    X(CUDA_ERROR_INVALID_VALUE, 1, "invalid argument")                                 \
    X(CUDA_ERROR_OUT_OF_MEMORY, 2, "out of memory")                                    \
    X(CUDA_ERROR_NOT_INITIALIZED, 3, "initialization error")                           \
    X(CUDA_ERROR_DEINITIALIZED, 4, "driver shutting down")                             \
    X(CUDA_ERROR_NO_DEVICE, 100, "no CUDA-capable device is detected")                 \
    X(CUDA_ERROR_INVALID_DEVICE, 101, "invalid device ordinal")                        \
    X(CUDA_ERROR_INVALID_CONTEXT, 201, "invalid device context")                       \
    X(CUDA_ERROR_INVALID_HANDLE, 400, "invalid resource handle")                       \
    X(CUDA_ERROR_NOT_FOUND, 500, "named symbol not found")                             \
    X(CUDA_ERROR_NOT_SUPPORTED, 801, "operation not supported")                        \
    X(CUDA_ERROR_UNKNOWN, 999, "unknown error")

typedef enum cudaError_enum {
#define TF_CU_RESULT_ENUM(name, value, text) name = value,
    TF_CU_RESULTS(TF_CU_RESULT_ENUM)
#undef TF_CU_RESULT_ENUM
} CUresult;

/* cuGetProcAddress flags and symbol status. */
#define CU_GET_PROC_ADDRESS_DEFAULT 0
#define CU_GET_PROC_ADDRESS_LEGACY_STREAM (1ULL << 0)
#define CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM (1ULL << 1)

typedef enum CUdriverProcAddressQueryResult_enum {
    CU_GET_PROC_ADDRESS_SUCCESS = 0,
    CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND = 1,
    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT = 2
} CUdriverProcAddressQueryResult;

/* Function types, named after the cudaTypedefs.h variant they match. */
typedef CUresult (*PFN_cuGetProcAddress_v11030)(const char *symbol, void **pfn, int cudaVersion,
                                                 cuuint64_t flags);
typedef CUresult (*PFN_cuGetProcAddress_v12000)(const char *symbol, void **pfn, int cudaVersion,
                                                 cuuint64_t flags,
                                                 CUdriverProcAddressQueryResult *symbolStatus);
typedef CUresult (*PFN_cuDeviceTotalMem_v2000)(unsigned int *bytes, CUdevice dev);
typedef CUresult (*PFN_cuDeviceTotalMem_v3020)(size_t *bytes, CUdevice dev);
typedef CUresult (*PFN_cuDriverGetVersion_v2020)(int *driverVersion);

#endif /* TF_CUDA_ABI_H */
